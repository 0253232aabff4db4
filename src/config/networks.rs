//! `networks.*`: several Cardano networks served by one instance.
//!
//! Each key is a CAIP-2 id (`cardano:preprod`); its entry names that
//! network's chain backend and its own policy. Without a `networks` section
//! the single network of `chain.*` and `settlement.*` is served, exactly as
//! before. With one, `chain.network`, `chain.blockfrost` and `chain.devnet`
//! must not be set (they would be ambiguous): each network says its own.
//!
//! What a network entry does not say comes from the top-level sections:
//! caches and reservation from `chain.*`, the confirmation policy from
//! `settlement.*`. The Blockfrost credentials are never inherited (a project
//! id belongs to one network).
//!
//! Every network gets its own store namespace (`{keyPrefix}{caip2}:`), so
//! reservations, the journal, the payment-identifier cache and the
//! reconciler lease of one network never meet another's.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BlockfrostSettings, CacheSettings, DevnetSettings, ReservationSettings, Settings};
use crate::cardano::Network;

/// One network of the `networks` section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkSettings {
    /// A Blockfrost project or any Blockfrost-compatible URL for this network.
    /// Absent on `cardano:devnet`: the embedded devnet ledger is the backend.
    pub blockfrost: Option<BlockfrostSettings>,
    /// The embedded devnet's settings (only `cardano:devnet` without a URL uses them).
    pub devnet: Option<DevnetSettings>,
    /// Overrides `chain.cache` for this network.
    pub cache: Option<CacheSettings>,
    /// Overrides `chain.reservation` for this network (hold TTL, hold on verify).
    pub reservation: Option<ReservationSettings>,
    /// Overrides of the confirmation policy in `settlement.*`.
    pub settlement: NetworkPolicy,
}

/// The per-network part of the settlement policy; unset fields come from `settlement.*`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkPolicy {
    pub accept_mempool: Option<bool>,
    pub default_confirmations: Option<i64>,
    pub max_confirmations: Option<i64>,
}

/// The `networks` map, keyed by CAIP-2 id (sorted, so the order is stable).
pub type Networks = BTreeMap<String, NetworkSettings>;

/// Top-level keys that a `networks` section replaces.
pub(super) const REPLACED_BY_NETWORKS: [&str; 3] = ["network", "blockfrost", "devnet"];

impl Settings {
    /// Whether this instance is configured with a `networks` section.
    pub fn is_multi_network(&self) -> bool {
        !self.networks.is_empty()
    }

    /// The networks served, each as the complete settings that apply to it:
    /// `chain.*`, `settlement.*` and the store's key prefix are those of that
    /// network. Without a `networks` section, the settings themselves.
    /// Keys that are no network are skipped here (validation reports them).
    pub fn lanes(&self) -> Vec<Settings> {
        if self.networks.is_empty() {
            return vec![self.clone()];
        }
        self.networks
            .iter()
            .filter_map(|(key, entry)| Some(self.lane(Network::from_caip2(key)?, entry)))
            .collect()
    }

    /// [`Settings::lanes`], shared: the single-network form is these very
    /// settings (no second copy of a large devnet genesis is kept).
    pub fn shared_lanes(self: &Arc<Settings>) -> Vec<Arc<Settings>> {
        if self.networks.is_empty() {
            return vec![self.clone()];
        }
        self.lanes().into_iter().map(Arc::new).collect()
    }

    fn lane(&self, network: Network, entry: &NetworkSettings) -> Settings {
        let mut s = self.clone();
        s.networks = Networks::new();
        s.chain.network = network;
        s.chain.blockfrost = entry.blockfrost.clone().unwrap_or_default();
        s.chain.devnet = entry.devnet.clone().unwrap_or_default();
        if let Some(c) = &entry.cache {
            s.chain.cache = c.clone();
        }
        if let Some(r) = &entry.reservation {
            s.chain.reservation = r.clone();
        }
        let p = &entry.settlement;
        if let Some(v) = p.accept_mempool {
            s.settlement.accept_mempool = v;
        }
        if let Some(v) = p.default_confirmations {
            s.settlement.default_confirmations = v;
        }
        if let Some(v) = p.max_confirmations {
            s.settlement.max_confirmations = v;
        }
        s.store.redis.key_prefix = format!("{}{}:", self.store.redis.key_prefix, network.caip2());
        s
    }

    /// Every network this instance serves.
    pub fn served_networks(&self) -> Vec<Network> {
        if self.networks.is_empty() {
            return vec![self.chain.network];
        }
        self.networks
            .keys()
            .filter_map(|k| Network::from_caip2(k))
            .collect()
    }

    /// A problem found in a network's effective settings, moved to where the
    /// operator wrote it: `chain.blockfrost.url` of `cardano:preprod` is
    /// `networks.cardano:preprod.blockfrost.url`. Problems of sections a
    /// network does not override are left as they are.
    pub(super) fn lane_problem(key: &str, problem: &str) -> String {
        const MOVED: [(&str, &str); 8] = [
            ("chain.network", ""),
            ("chain.blockfrost", ".blockfrost"),
            ("chain.devnet", ".devnet"),
            ("chain.cache", ".cache"),
            ("chain.reservation", ".reservation"),
            ("settlement.acceptMempool", ".settlement.acceptMempool"),
            (
                "settlement.defaultConfirmations",
                ".settlement.defaultConfirmations",
            ),
            (
                "settlement.maxConfirmations",
                ".settlement.maxConfirmations",
            ),
        ];
        for (from, to) in MOVED {
            if let Some(rest) = problem.strip_prefix(from)
                && (rest.starts_with('.') || rest.starts_with(':'))
            {
                return format!("networks.{key}{to}{rest}");
            }
        }
        problem.to_owned()
    }
}
