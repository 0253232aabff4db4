//! `chain.*`: the Cardano network and its backend (Blockfrost or the
//! embedded devnet), caches and input reservations.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;
use crate::cardano::Network;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChainSettings {
    pub network: Network,
    pub blockfrost: BlockfrostSettings,
    pub cache: CacheSettings,
    pub reservation: ReservationSettings,
    pub devnet: DevnetSettings,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            network: Network::Devnet,
            blockfrost: BlockfrostSettings::default(),
            cache: CacheSettings::default(),
            reservation: ReservationSettings::default(),
            devnet: DevnetSettings::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlockfrostSettings {
    pub project_id: Option<Secret>,
    /// Any Blockfrost-compatible base URL (ending in /api/v0); overrides the hosted one.
    pub url: Option<String>,
    #[serde(rename = "connectTimeoutMs", with = "super::values::millis")]
    pub connect_timeout: Duration,
    #[serde(rename = "requestTimeoutMs", with = "super::values::millis")]
    pub request_timeout: Duration,
    pub max_retries: u32,
    #[serde(rename = "retryBaseDelayMs", with = "super::values::millis")]
    pub retry_base_delay: Duration,
    /// Client-side limit on requests sent to the backend (the plan's quota).
    pub rate_limit: BlockfrostRateLimit,
    /// How often the chain tip is read in the background (verify never asks for it).
    #[serde(rename = "tipRefreshMs", with = "super::values::millis")]
    pub tip_refresh: Duration,
}

/// The Blockfrost plan's request quota, kept on this side so that a burst of
/// payments fails fast instead of being refused upstream (free plan: 10 per
/// second, burst 500). `perSecond: 0` turns the limiter off; fractions are
/// allowed (0.5 = one request every 2 s).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlockfrostRateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for BlockfrostRateLimit {
    fn default() -> Self {
        BlockfrostRateLimit {
            per_second: 10.0,
            burst: 500,
        }
    }
}

impl Default for BlockfrostSettings {
    fn default() -> Self {
        BlockfrostSettings {
            project_id: None,
            url: None,
            connect_timeout: Duration::from_millis(3_000),
            request_timeout: Duration::from_millis(10_000),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(200),
            rate_limit: BlockfrostRateLimit::default(),
            tip_refresh: Duration::from_millis(5_000),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CacheSettings {
    #[serde(rename = "utxoTtlSeconds", with = "super::values::seconds")]
    pub utxo_ttl: Duration,
    #[serde(rename = "protocolParamsTtlSeconds", with = "super::values::seconds")]
    pub protocol_params_ttl: Duration,
    /// How long the inputs of a transaction this service submitted bypass the
    /// UTxO cache (they are always asked upstream, never answered from cache).
    #[serde(rename = "spentTtlSeconds", with = "super::values::seconds")]
    pub spent_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            utxo_ttl: Duration::from_secs(10),
            protocol_params_ttl: Duration::from_secs(300),
            spent_ttl: Duration::from_secs(3_600),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReservationSettings {
    /// Shortest hold of a settling transaction's inputs; the hold lasts until
    /// the transaction can no longer land when that is longer.
    #[serde(rename = "ttlSeconds", with = "super::values::seconds")]
    pub ttl: Duration,
    /// Hold the inputs of a valid payment at /verify already (off: verify is
    /// read-only, as the x402 core spec says). For resource servers that
    /// deliver before they settle; see README and SECURITY.md.
    pub hold_on_verify: bool,
}

impl Default for ReservationSettings {
    fn default() -> Self {
        ReservationSettings {
            ttl: Duration::from_secs(120),
            hold_on_verify: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DevnetSettings {
    #[serde(rename = "blockTimeMs", with = "super::values::millis")]
    pub block_time: Duration,
    /// Serve the Blockfrost-compatible API under /devnet/api/v0.
    pub api_enabled: bool,
    /// Serve POST /devnet/faucet.
    pub faucet_enabled: bool,
    pub genesis: Vec<GenesisUtxo>,
    /// The `network_magic` the devnet's `/genesis` announces (42 by default;
    /// 1 lets a devnet stand in for preprod behind a Blockfrost client).
    pub network_magic: u32,
}

impl Default for DevnetSettings {
    fn default() -> Self {
        DevnetSettings {
            block_time: Duration::from_millis(1_000),
            api_enabled: true,
            faucet_enabled: true,
            genesis: Vec::new(),
            network_magic: crate::cardano::network::DEVNET_MAGIC,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GenesisUtxo {
    /// Bech32 address (network id 0).
    pub address: String,
    /// Lovelace as an integer string.
    pub lovelace: String,
    /// `<policy hex>.<name hex>` -> integer string.
    #[serde(default)]
    pub assets: std::collections::BTreeMap<String, String>,
}
