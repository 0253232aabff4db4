//! Configuration: built-in defaults, then a JSON file, then `X402_*`
//! environment variables, merged with figment into typed [`Settings`] and
//! validated in one pass so that an operator sees every problem at once.
//!
//! Keys are camelCase as in `config/config.example.json`. Environment
//! variables name the same keys in SCREAMING_SNAKE_CASE with `__` between
//! levels: `X402_SERVER__BODY_LIMIT_BYTES=131072` sets `server.bodyLimitBytes`.
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Serialize` print
//! `[REDACTED]`, so that neither logs nor `check-config` can leak them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod access;
mod chain;
mod load;
mod masumi;
mod networks;
mod observability;
mod server;
mod settlement;
mod store;
#[cfg(test)]
mod tests;
mod validate;
mod values;

pub use access::{AdminSettings, AuthSettings, RateLimitSettings};
pub use chain::{
    BlockfrostRateLimit, BlockfrostSettings, CacheSettings, ChainSettings, DevnetSettings,
    GenesisUtxo, ReservationSettings,
};
pub use load::load;
pub use masumi::{MasumiSettings, RegisteredAgentSettings};
pub use networks::{NetworkPolicy, NetworkSettings, Networks};
pub use observability::{
    LoggingSettings, MetricsSettings, OtlpSettings, SentrySettings, TelemetrySettings,
};
pub use server::{CorsSettings, ServerSettings};
pub use settlement::SettlementSettings;
pub use store::{RedisSettings, SentinelSettings, StoreBackend, StoreSettings};
pub use values::{KeyDigest, LogLevel};

/// Default location of the configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/config.json";

/// The message the mainnet guard prints. Operators grep for it.
pub const MAINNET_GUARD_MESSAGE: &str =
    "Mainnet connection requires explicit MAINNET=true environment variable";

/// `env: "production"` refuses the devnet (`chain.network: <this>`).
pub const PRODUCTION_DEVNET_MESSAGE: &str =
    "the devnet is not allowed when env is production (use preprod, preview or mainnet)";
/// `env: "production"` refuses the devnet faucet.
pub const PRODUCTION_FAUCET_MESSAGE: &str =
    "the devnet faucet is not allowed when env is production";
/// `env: "production"` refuses human-readable logs.
pub const PRODUCTION_PRETTY_MESSAGE: &str =
    "must be false when env is production (logs must be JSON lines)";
/// Logged at startup and shown by /health when production runs on the memory store.
pub const PRODUCTION_MEMORY_STORE_WARNING: &str = "store.backend is memory in production: this must be the only replica (reservations and settlements are neither shared nor kept across restarts); use redis to run more than one";

/// A secret value (API key, password, DSN). Never printed.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is used (a header, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[REDACTED]")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
    Test,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    pub env: Environment,
    pub server: ServerSettings,
    pub logging: LoggingSettings,
    pub sentry: SentrySettings,
    pub rate_limit: RateLimitSettings,
    pub auth: AuthSettings,
    pub chain: ChainSettings,
    pub store: StoreSettings,
    pub settlement: SettlementSettings,
    pub admin: AdminSettings,
    pub metrics: MetricsSettings,
    pub masumi: MasumiSettings,
    pub telemetry: TelemetrySettings,
    /// Several networks in one instance (see [`networks`]); empty: `chain.network` only.
    pub networks: Networks,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            env: Environment::Development,
            server: ServerSettings::default(),
            logging: LoggingSettings::default(),
            sentry: SentrySettings::default(),
            rate_limit: RateLimitSettings::default(),
            auth: AuthSettings::default(),
            chain: ChainSettings::default(),
            store: StoreSettings::default(),
            settlement: SettlementSettings::default(),
            admin: AdminSettings::default(),
            metrics: MetricsSettings::default(),
            masumi: MasumiSettings::default(),
            telemetry: TelemetrySettings::default(),
            networks: Networks::new(),
        }
    }
}

/// Everything that can stop configuration from loading.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file not found: {0}")]
    FileNotFound(String),
    #[error("config file {path} could not be read: {reason}")]
    FileUnreadable { path: String, reason: String },
    #[error("config file {path} is not valid JSON at line {line}, column {column}: {reason}")]
    MalformedJson {
        path: String,
        line: usize,
        column: usize,
        reason: String,
    },
    /// Every problem as `dotted.path: reason`.
    #[error("ConfigInvalidError: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{MAINNET_GUARD_MESSAGE}")]
    MainnetGuard,
}

/// Where the file comes from and whether it was named explicitly.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    pub path: PathBuf,
    pub explicit: bool,
}

impl ConfigSource {
    /// `--config` wins, then `X402_CONFIG`, then the default path (optional).
    pub fn resolve(cli: Option<&Path>, env: Option<&str>) -> Self {
        match (cli, env) {
            (Some(p), _) => ConfigSource {
                path: p.to_path_buf(),
                explicit: true,
            },
            (None, Some(e)) if !e.is_empty() => ConfigSource {
                path: PathBuf::from(e),
                explicit: true,
            },
            _ => ConfigSource {
                path: PathBuf::from(DEFAULT_CONFIG_PATH),
                explicit: false,
            },
        }
    }
}

impl Settings {
    /// The startup warning for this configuration, if any (also shown by /health).
    pub fn production_warning(&self) -> Option<&'static str> {
        (self.env == Environment::Production && self.store.backend == StoreBackend::Memory)
            .then_some(PRODUCTION_MEMORY_STORE_WARNING)
    }

    /// The effective configuration as JSON with every secret replaced by
    /// `[REDACTED]` and every URL cut to scheme, host and port.
    pub fn redacted_json(&self) -> String {
        let mut v = match serde_json::to_value(self) {
            Ok(v) => v,
            Err(e) => return format!("{{\"error\":\"{e}\"}}"),
        };
        crate::redact::urls_in_json(&mut v);
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
