//! `store.*`: where reservations and the settlement journal live.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Memory,
    Redis,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// The Redis connection (`chain.redis`, its old place, is read as an alias).
    pub redis: RedisSettings,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: StoreBackend::Memory,
            redis: RedisSettings::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub db: i64,
    /// Connect with TLS (`rediss://`).
    pub tls: bool,
    /// A unix socket path instead of host and port.
    pub socket: Option<String>,
    pub sentinel: SentinelSettings,
    pub key_prefix: String,
    #[serde(rename = "connectTimeoutMs", with = "super::values::millis")]
    pub connect_timeout: Duration,
    #[serde(rename = "commandTimeoutMs", with = "super::values::millis")]
    pub command_timeout: Duration,
    /// Replicas that must acknowledge every journal write (`WAIT n`); 0 = off.
    /// With Sentinel, set it to 1 so a failover cannot lose an acknowledged record.
    pub replica_acks: u32,
    /// PEM file of a private CA to trust for TLS (instead of the public roots).
    pub tls_ca_file: Option<String>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            host: "127.0.0.1".into(),
            port: 6379,
            username: None,
            password: None,
            db: 0,
            tls: false,
            socket: None,
            sentinel: SentinelSettings::default(),
            key_prefix: "x402:".into(),
            connect_timeout: Duration::from_millis(2_000),
            command_timeout: Duration::from_millis(1_000),
            replica_acks: 0,
            tls_ca_file: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SentinelSettings {
    /// The monitored master's name; when set, `addresses` are sentinels, not Redis.
    pub service_name: Option<String>,
    /// `host:port` of each sentinel.
    pub addresses: Vec<String>,
    pub password: Option<Secret>,
}
