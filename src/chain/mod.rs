//! Chain access. Everything the facilitator knows about the ledger comes
//! through [`ChainProvider`], so the verify pipeline and the settlement
//! service never care whether the answer came from the embedded devnet or
//! from a Blockfrost-compatible HTTP API.
//!
//! The one rule every implementation keeps (DESIGN.md invariant 1): **an
//! error is never absence**. A lookup that failed or was ambiguous is
//! [`UtxoState::Unknown`], never `Spent` and never `Unspent`.
//!
//! The answers themselves ([`UtxoState`], [`ProtocolParams`]) are Cardano
//! types and live in [`crate::cardano::ledger`]; the slot clock that
//! Blockfrost backends anchor is [`crate::cardano::SlotClock`].

pub mod blockfrost;
pub mod cache;
pub mod devnet;
pub mod traced;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::cardano::{Network, ProtocolParams, TxId, UtxoRef, UtxoState};

/// The chain tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tip {
    pub slot: u64,
    pub height: u64,
    /// Unix seconds of the tip block.
    pub time: i64,
    #[serde(serialize_with = "ser_hex32")]
    pub hash: [u8; 32],
}

fn ser_hex32<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(h))
}

/// Result of handing a transaction to the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    Accepted,
    /// A definitive rejection by the node, with its reason (e.g. `BadInputsUTxO`).
    Rejected(String),
    /// The outcome cannot be known (timeout after sending, 5xx, transport error).
    Unknown(String),
}

/// What the chain says about a transaction id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Evidence {
    NotSeen,
    Mempool,
    /// In a block; `depth` counts blocks on top of it (0 = in the tip block).
    Included {
        depth: u64,
        height: u64,
        slot: u64,
        #[serde(serialize_with = "ser_hex32")]
        block: [u8; 32],
    },
}

/// A backend failure (not a verdict about any UTxO or transaction).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct ChainError {
    pub op: &'static str,
    pub message: String,
    /// What kind of failure, for callers that treat them differently.
    pub kind: ChainErrorKind,
}

/// Why a chain operation gave no answer. Every kind is retryable from the
/// caller's point of view (the HTTP layer answers 503 with `Retry-After`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainErrorKind {
    /// The backend failed, timed out or answered something unreadable.
    Backend,
    /// Not sent: the client-side limiter (`chain.blockfrost.rateLimit`) has
    /// no token now; one is available again after `retry_after_ms`.
    RateLimited { retry_after_ms: u64 },
    /// Not sent: the backend serves another network than the configured one
    /// (its genesis `network_magic` differs), or has not proven its network yet.
    WrongNetwork,
}

impl ChainError {
    pub fn new(op: &'static str, message: impl Into<String>) -> Self {
        ChainError {
            op,
            message: message.into(),
            kind: ChainErrorKind::Backend,
        }
    }

    /// A request refused by the client-side rate limiter.
    pub fn rate_limited(op: &'static str, retry_after: std::time::Duration) -> Self {
        let ms = u64::try_from(retry_after.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        ChainError {
            op,
            message: format!(
                "rate limited: the backend's request quota (chain.blockfrost.rateLimit) is used up; retry in {ms} ms"
            ),
            kind: ChainErrorKind::RateLimited { retry_after_ms: ms },
        }
    }

    /// A request refused because the backend's network is not (proven to be) ours.
    pub fn wrong_network(op: &'static str, message: impl Into<String>) -> Self {
        ChainError {
            op,
            message: message.into(),
            kind: ChainErrorKind::WrongNetwork,
        }
    }

    /// Whole seconds a caller should wait before retrying (at least 1).
    pub fn retry_after_seconds(&self) -> u64 {
        match self.kind {
            ChainErrorKind::RateLimited { retry_after_ms } => retry_after_ms.div_ceil(1000).max(1),
            _ => 1,
        }
    }
}

/// Health of a dependency as reported by /health.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DependencyHealth {
    pub status: DependencyStatus,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tip: Option<Tip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DependencyStatus {
    Up,
    Down,
}

/// Read and submit access to one Cardano network.
#[async_trait]
pub trait ChainProvider: Send + Sync + 'static {
    /// The network this provider serves.
    fn network(&self) -> Network;

    /// Tri-state lookup of a batch of references; the answer has one entry per ref, in order.
    async fn utxos(&self, refs: &[UtxoRef]) -> Vec<UtxoState>;

    async fn tip(&self) -> Result<Tip, ChainError>;

    async fn protocol_params(&self) -> Result<Arc<ProtocolParams>, ChainError>;

    /// Submit signed transaction CBOR.
    async fn submit(&self, tx_cbor: &[u8]) -> SubmitOutcome;

    async fn evidence(&self, tx_id: &TxId) -> Result<Evidence, ChainError>;

    /// Called after this service submitted `tx_id` spending `spent`: drop cached answers.
    fn invalidate(&self, _spent: &[UtxoRef]) {}

    /// Slot for a unix time, from the provider's slot clock.
    fn slot_at(&self, unix_seconds: i64) -> u64;

    /// The address that owned an output, spent or not (read from the
    /// producing transaction): the payer of a payment whose nonce is already
    /// spent by the payment itself. `Ok(None)` when the backend cannot tell.
    async fn output_owner(&self, _r: &UtxoRef) -> Result<Option<Vec<u8>>, ChainError> {
        Ok(None)
    }

    /// Whether this backend can read a transaction's block depth (an evidence
    /// reader); without one, policies above 0 cannot be honoured.
    fn reads_depth(&self) -> bool {
        true
    }

    /// Cheap liveness probe for /health (a tip query, measured).
    async fn health(&self) -> DependencyHealth {
        let start = std::time::Instant::now();
        let r = self.tip().await;
        let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(tip) => DependencyHealth {
                status: DependencyStatus::Up,
                latency_ms,
                tip: Some(tip),
                error: None,
            },
            Err(e) => DependencyHealth {
                status: DependencyStatus::Down,
                latency_ms,
                tip: None,
                error: Some(e.to_string()),
            },
        }
    }
}

pub type DynChain = Arc<dyn ChainProvider>;

/// The configured chain backend, and the devnet itself when it is the backend
/// (the app serves its API and tests drive its clock and rollbacks).
pub struct ChainHandle {
    pub provider: DynChain,
    pub devnet: Option<Arc<devnet::Devnet>>,
}

/// Build the provider named by the configuration: the embedded devnet when
/// `chain.network` is `devnet` and no Blockfrost URL is set, else Blockfrost.
pub async fn build(settings: &crate::config::Settings) -> Result<ChainHandle, ChainError> {
    let chain = &settings.chain;
    let has_url = chain.blockfrost.url.as_ref().is_some_and(|u| !u.is_empty());
    if chain.network == Network::Devnet && !has_url {
        let devnet = devnet::Devnet::start(&chain.devnet)
            .map_err(|e| ChainError::new("devnet", e.to_string()))?;
        return Ok(ChainHandle {
            provider: devnet.clone(),
            devnet: Some(devnet),
        });
    }
    let bf =
        blockfrost::BlockfrostProvider::new(chain.network, &chain.blockfrost, &chain.cache).await?;
    Ok(ChainHandle {
        provider: Arc::new(bf),
        devnet: None,
    })
}

/// Record one chain operation's latency in the `chain_request_duration_seconds`
/// histogram, labelled by network and `op` (`utxos`, `tip`, `protocol_params`,
/// `submit`, `evidence`).
pub(crate) fn observe(network: Network, op: &'static str, started: std::time::Instant) {
    metrics::histogram!("chain_request_duration_seconds", "network" => network.caip2(), "op" => op)
        .record(started.elapsed().as_secs_f64());
}
