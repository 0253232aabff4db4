//! `masumi.*`: approved deployments and the registry validator.

use serde::{Deserialize, Serialize};

/// The `masumi` asset transfer method (see `scheme::masumi`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MasumiSettings {
    /// Custom `extra.deployment`s this operator approves, by escrow script hash (56 hex).
    /// The default deployment needs no approval; any other is refused unless listed.
    pub approved_deployments: Vec<String>,
    /// The registry validator: agents (by `agentIdentifier`) this operator vouches for.
    /// Empty means no validator, and a non-empty `agentIdentifier` is refused.
    pub registered_agents: Vec<RegisteredAgentSettings>,
}

/// One registered agent the static registry validator accepts.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegisteredAgentSettings {
    /// Lowercase hex, starting with the Masumi V2 registry policy id.
    pub agent_identifier: String,
    /// The seller address the agent's terms must name (bech32).
    pub seller_address: String,
    /// Only this asset (`lovelace` or `policy.name`), when set.
    pub asset: Option<String>,
    /// Only this exact price (atomic units), when set.
    pub amount: Option<String>,
}

impl MasumiSettings {
    /// The verify-time policy these settings describe (call after [`Settings::validate`]).
    pub fn policy(&self) -> crate::scheme::masumi::verify::MasumiPolicy {
        use crate::scheme::masumi::verify::{MasumiPolicy, RegisteredAgent, StaticRegistry};
        let approved_deployments = self
            .approved_deployments
            .iter()
            .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
            .collect();
        let registry = if self.registered_agents.is_empty() {
            None
        } else {
            let agents = self
                .registered_agents
                .iter()
                .map(|a| {
                    (
                        a.agent_identifier.clone(),
                        RegisteredAgent {
                            seller_address: a.seller_address.clone(),
                            asset: a.asset.clone(),
                            amount: a.amount.clone(),
                        },
                    )
                })
                .collect();
            let r: std::sync::Arc<dyn crate::scheme::masumi::verify::RegistryValidator> =
                std::sync::Arc::new(StaticRegistry { agents });
            Some(r)
        };
        MasumiPolicy {
            approved_deployments,
            registry,
        }
    }
}
