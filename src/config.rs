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

use figment::Figment;
use figment::providers::{Format, Json, Serialized};
use serde::{Deserialize, Serialize};

use crate::cardano::Network;

/// Default location of the configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/config.json";

/// The message the mainnet guard prints. Operators grep for it.
pub const MAINNET_GUARD_MESSAGE: &str =
    "Mainnet connection requires explicit MAINNET=true environment variable";

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
    pub telemetry: TelemetrySettings,
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
            telemetry: TelemetrySettings::default(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Upper bound for any request, /settle's confirmation wait included.
    pub request_timeout_ms: u64,
    pub body_limit_bytes: usize,
    pub shutdown_grace_seconds: u64,
    /// Requests served at once; beyond it new requests are shed with 503.
    pub max_concurrent_requests: usize,
    /// Trust `X-Forwarded-For` for the client address (behind a proxy you run).
    pub trust_proxy: bool,
    pub cors: CorsSettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".into(),
            port: 3000,
            request_timeout_ms: 60_000,
            body_limit_bytes: 65_536,
            shutdown_grace_seconds: 15,
            max_concurrent_requests: 1024,
            trust_proxy: false,
            cors: CorsSettings::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CorsSettings {
    /// Origins allowed to call from a browser; empty disables CORS, `["*"]` allows any.
    pub allowed_origins: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoggingSettings {
    /// trace, debug, info, warn, error, fatal, or a tracing filter directive.
    pub level: String,
    /// Human-readable lines instead of JSON.
    pub pretty: bool,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        LoggingSettings {
            level: "info".into(),
            pretty: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SentrySettings {
    pub dsn: Option<Secret>,
    pub environment: Option<String>,
    pub traces_sample_rate: f64,
}

impl Default for SentrySettings {
    fn default() -> Self {
        SentrySettings {
            dsn: None,
            environment: None,
            traces_sample_rate: 0.1,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub window_ms: u64,
    /// Requests per window per client on every route.
    pub global: u32,
    /// Requests per window per client on /verify, /settle and /status.
    pub sensitive: u32,
    /// Quota per window for an authenticated API key on every route (replaces the IP quota).
    pub api_key_global: Option<u32>,
    /// Quota per window for an authenticated API key on the sensitive routes.
    pub api_key_sensitive: Option<u32>,
    /// Most client keys tracked at once; beyond it the oldest are forgotten.
    pub max_tracked_clients: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            window_ms: 60_000,
            global: 100,
            sensitive: 20,
            api_key_global: None,
            api_key_sensitive: None,
            max_tracked_clients: 100_000,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthSettings {
    /// SHA-256 hex digests of the API keys resource servers present. Empty: no key required.
    pub api_keys: Vec<Secret>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ChainSettings {
    pub network: Network,
    pub blockfrost: BlockfrostSettings,
    pub redis: RedisSettings,
    pub cache: CacheSettings,
    pub reservation: ReservationSettings,
    pub devnet: DevnetSettings,
}

impl Default for ChainSettings {
    fn default() -> Self {
        ChainSettings {
            network: Network::Devnet,
            blockfrost: BlockfrostSettings::default(),
            redis: RedisSettings::default(),
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
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub max_retries: u32,
    pub retry_base_delay_ms: u64,
}

impl Default for BlockfrostSettings {
    fn default() -> Self {
        BlockfrostSettings {
            project_id: None,
            url: None,
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            max_retries: 3,
            retry_base_delay_ms: 200,
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
    pub connect_timeout_ms: u64,
    pub command_timeout_ms: u64,
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
            connect_timeout_ms: 2_000,
            command_timeout_ms: 1_000,
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CacheSettings {
    pub utxo_ttl_seconds: u64,
    pub protocol_params_ttl_seconds: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            utxo_ttl_seconds: 10,
            protocol_params_ttl_seconds: 300,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReservationSettings {
    pub ttl_seconds: u64,
}

impl Default for ReservationSettings {
    fn default() -> Self {
        ReservationSettings { ttl_seconds: 120 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DevnetSettings {
    pub block_time_ms: u64,
    /// Serve the Blockfrost-compatible API under /devnet/api/v0.
    pub api_enabled: bool,
    /// Serve POST /devnet/faucet.
    pub faucet_enabled: bool,
    pub genesis: Vec<GenesisUtxo>,
}

impl Default for DevnetSettings {
    fn default() -> Self {
        DevnetSettings {
            block_time_ms: 1_000,
            api_enabled: true,
            faucet_enabled: true,
            genesis: Vec::new(),
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
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: StoreBackend::Memory,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SettlementSettings {
    /// Longest /settle waits for confirmations before answering settlement_pending.
    pub confirmation_timeout_seconds: u64,
    /// l1Confirmations when the requirements do not say (-1 mempool, 0 in a block, n on top).
    pub default_confirmations: i64,
    pub retention_seconds: u64,
    /// Added to a transaction's validity window before an unconfirmed record may expire,
    /// and to the retention of confirmed ones.
    pub rollback_margin_seconds: u64,
    /// Blocks after which a confirmed record is no longer checked for rollback.
    pub stability_depth: u64,
    pub poll_interval_ms: u64,
    pub reconcile_interval_ms: u64,
    /// Start with settlement paused (verify still answers).
    pub paused: bool,
}

impl Default for SettlementSettings {
    fn default() -> Self {
        SettlementSettings {
            confirmation_timeout_seconds: 50,
            default_confirmations: 1,
            retention_seconds: 86_400,
            rollback_margin_seconds: 3_600,
            stability_depth: 20,
            poll_interval_ms: 250,
            reconcile_interval_ms: 2_000,
            paused: false,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdminSettings {
    /// Key for the X-Admin-Key header; the admin API is off when unset.
    pub api_key: Option<Secret>,
    /// Client IPs allowed to call /admin; empty allows any (the key still applies).
    pub allowed_ips: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricsSettings {
    /// Serve /metrics on its own port instead of the main listener.
    pub port: Option<u16>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TelemetrySettings {
    pub otlp: OtlpSettings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OtlpSettings {
    /// OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is appended).
    /// Traces are exported only when this or `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub endpoint: Option<String>,
    /// `service.name` of the exported traces.
    pub service_name: String,
    /// Fraction of requests traced (parent-based: a traced request traces all its spans).
    pub sample_ratio: f64,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        OtlpSettings {
            endpoint: None,
            service_name: "x402-facilitator".into(),
            sample_ratio: 1.0,
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

/// Convert `SERVER__BODY_LIMIT_BYTES` into `server.bodyLimitBytes`.
fn env_key_to_path(key: &str) -> String {
    key.split("__")
        .map(|seg| {
            let mut out = String::with_capacity(seg.len());
            let mut upper_next = false;
            for (i, ch) in seg.chars().enumerate() {
                if ch == '_' {
                    upper_next = i > 0;
                    continue;
                }
                if upper_next {
                    out.extend(ch.to_uppercase());
                    upper_next = false;
                } else {
                    out.extend(ch.to_lowercase());
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Load settings from defaults, the file and `env` (an iterator of variables, so
/// tests need not touch the process environment).
pub fn load(source: &ConfigSource, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));

    match std::fs::read_to_string(&source.path) {
        Ok(text) => {
            let display = source.path.display().to_string();
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                return Err(ConfigError::MalformedJson {
                    path: display,
                    line: e.line(),
                    column: e.column(),
                    reason: e.to_string(),
                });
            }
            figment = figment.merge(Json::string(&text));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if source.explicit {
                return Err(ConfigError::FileNotFound(source.path.display().to_string()));
            }
        }
        Err(e) => {
            return Err(ConfigError::FileUnreadable {
                path: source.path.display().to_string(),
                reason: e.to_string(),
            });
        }
    }

    // Environment overrides, from the given list only.
    let mut env_dict = figment::value::Dict::new();
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("X402_") else {
            continue;
        };
        if rest == "CONFIG" || rest.is_empty() {
            continue;
        }
        let path = env_key_to_path(rest);
        let value: figment::value::Value = v
            .parse()
            .unwrap_or_else(|_| figment::value::Value::from(v.clone()));
        let nested = nest(&path, value);
        env_dict = merge_dicts(env_dict, nested);
    }
    figment = figment.merge(Serialized::defaults(env_dict));

    let settings: Settings = figment.extract().map_err(|e| {
        let mut problems = Vec::new();
        for err in e {
            let path = err.path.join(".");
            let reason = err.kind.to_string();
            problems.push(if path.is_empty() {
                reason
            } else {
                format!("{path}: {reason}")
            });
        }
        ConfigError::Invalid(problems)
    })?;

    let problems = settings.validate();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    let mainnet_ok = env
        .iter()
        .any(|(k, v)| k == "MAINNET" && v.eq_ignore_ascii_case("true"));
    if settings.chain.network == Network::Mainnet && !mainnet_ok {
        return Err(ConfigError::MainnetGuard);
    }
    Ok(settings)
}

fn nest(path: &str, value: figment::value::Value) -> figment::value::Dict {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut dict = figment::value::Dict::new();
    dict.insert(last.to_owned(), value);
    while let Some(p) = parts.pop() {
        let mut outer = figment::value::Dict::new();
        outer.insert(p.to_owned(), figment::value::Value::from(dict));
        dict = outer;
    }
    dict
}

fn merge_dicts(mut a: figment::value::Dict, b: figment::value::Dict) -> figment::value::Dict {
    use figment::value::Value;
    for (k, v) in b {
        match (a.remove(&k), v) {
            (Some(Value::Dict(_, da)), Value::Dict(tag, db)) => {
                a.insert(k, Value::Dict(tag, merge_dicts(da, db)));
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
    a
}

impl Settings {
    /// Every problem, as `dotted.path: reason`. Empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut bad = |path: &str, reason: &str| p.push(format!("{path}: {reason}"));

        if self.server.host.trim().is_empty() {
            bad("server.host", "must not be empty");
        }
        if self.server.body_limit_bytes < 1024 || self.server.body_limit_bytes > 10 * 1024 * 1024 {
            bad("server.bodyLimitBytes", "must be between 1024 and 10485760");
        }
        if self.server.request_timeout_ms < 1000 {
            bad("server.requestTimeoutMs", "must be at least 1000");
        }
        if self.server.request_timeout_ms
            <= self
                .settlement
                .confirmation_timeout_seconds
                .saturating_mul(1000)
        {
            bad(
                "server.requestTimeoutMs",
                "must be longer than settlement.confirmationTimeoutSeconds (a settle would be cut off mid-wait)",
            );
        }
        if self.server.max_concurrent_requests == 0 {
            bad("server.maxConcurrentRequests", "must be at least 1");
        }
        if self.server.shutdown_grace_seconds > 600 {
            bad("server.shutdownGraceSeconds", "must be at most 600");
        }
        if crate::telemetry::parse_level(&self.logging.level).is_none() {
            bad(
                "logging.level",
                "must be one of trace, debug, info, warn, error, fatal, silent (or a tracing filter)",
            );
        }
        if !(0.0..=1.0).contains(&self.sentry.traces_sample_rate) {
            bad("sentry.tracesSampleRate", "must be between 0 and 1");
        }
        if let Some(dsn) = &self.sentry.dsn
            && !dsn.is_empty()
            && dsn.expose().parse::<sentry::types::Dsn>().is_err()
        {
            bad("sentry.dsn", "is not a valid Sentry DSN");
        }
        if self.rate_limit.enabled {
            if self.rate_limit.window_ms < 100 {
                bad("rateLimit.windowMs", "must be at least 100");
            }
            if self.rate_limit.global == 0 {
                bad(
                    "rateLimit.global",
                    "must be at least 1 (set rateLimit.enabled to false to turn limits off)",
                );
            }
            if self.rate_limit.sensitive == 0 {
                bad(
                    "rateLimit.sensitive",
                    "must be at least 1 (set rateLimit.enabled to false to turn limits off)",
                );
            }
            if self.rate_limit.api_key_global == Some(0) {
                bad("rateLimit.apiKeyGlobal", "must be at least 1 when set");
            }
            if self.rate_limit.api_key_sensitive == Some(0) {
                bad("rateLimit.apiKeySensitive", "must be at least 1 when set");
            }
            if self.rate_limit.max_tracked_clients < 100 {
                bad("rateLimit.maxTrackedClients", "must be at least 100");
            }
        }
        for (i, k) in self.auth.api_keys.iter().enumerate() {
            let s = k.expose();
            if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                bad(
                    &format!("auth.apiKeys.{i}"),
                    "must be the SHA-256 hex digest of the key (64 hex characters)",
                );
            }
        }

        // Chain.
        let net = self.chain.network;
        let bf = &self.chain.blockfrost;
        let has_project = bf.project_id.as_ref().is_some_and(|s| !s.is_empty());
        let has_url = bf.url.as_ref().is_some_and(|s| !s.is_empty());
        if net.is_public() && !has_project && !has_url {
            bad(
                "chain.blockfrost.projectId",
                "Blockfrost project ID is required",
            );
        }
        if let Some(url) = &bf.url
            && (!(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10)
        {
            bad("chain.blockfrost.url", "must be an http(s) URL");
        }
        if bf.request_timeout_ms < 100 {
            bad("chain.blockfrost.requestTimeoutMs", "must be at least 100");
        }
        if bf.max_retries > 10 {
            bad("chain.blockfrost.maxRetries", "must be at most 10");
        }
        if self.chain.reservation.ttl_seconds < 5 || self.chain.reservation.ttl_seconds > 86_400 {
            bad(
                "chain.reservation.ttlSeconds",
                "must be between 5 and 86400",
            );
        }
        if self.chain.cache.protocol_params_ttl_seconds == 0 {
            bad("chain.cache.protocolParamsTtlSeconds", "must be at least 1");
        }
        if self.chain.devnet.block_time_ms < 50 || self.chain.devnet.block_time_ms > 600_000 {
            bad("chain.devnet.blockTimeMs", "must be between 50 and 600000");
        }
        for (i, g) in self.chain.devnet.genesis.iter().enumerate() {
            match pallas_addresses::Address::from_bech32(&g.address) {
                Ok(a) if a.network().map(|n| n.value()) == Some(0) => {}
                Ok(_) => bad(
                    &format!("chain.devnet.genesis.{i}.address"),
                    "must be a testnet (network id 0) address",
                ),
                Err(_) => bad(
                    &format!("chain.devnet.genesis.{i}.address"),
                    "is not a valid bech32 Cardano address",
                ),
            }
            if g.lovelace.parse::<u64>().map(|v| v == 0).unwrap_or(true) {
                bad(
                    &format!("chain.devnet.genesis.{i}.lovelace"),
                    "must be a positive integer string",
                );
            }
            for (unit, q) in &g.assets {
                if unit
                    .parse::<crate::cardano::Asset>()
                    .map(|a| a.is_lovelace())
                    .unwrap_or(true)
                {
                    bad(
                        &format!("chain.devnet.genesis.{i}.assets.{unit}"),
                        "must be keyed <policy hex>.<name hex>",
                    );
                }
                if q.parse::<u64>().map(|v| v == 0).unwrap_or(true) {
                    bad(
                        &format!("chain.devnet.genesis.{i}.assets.{unit}"),
                        "must be a positive integer string",
                    );
                }
            }
        }

        // Store.
        let r = &self.chain.redis;
        if self.store.backend == StoreBackend::Redis {
            let sentinel = r
                .sentinel
                .service_name
                .as_ref()
                .is_some_and(|s| !s.is_empty());
            if sentinel && r.sentinel.addresses.is_empty() {
                bad(
                    "chain.redis.sentinel.addresses",
                    "at least one sentinel host:port is required with a serviceName",
                );
            }
            if !sentinel && r.socket.is_none() && r.host.trim().is_empty() {
                bad(
                    "chain.redis.host",
                    "is required when store.backend is redis",
                );
            }
        }
        for (i, a) in r.sentinel.addresses.iter().enumerate() {
            if a.rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .is_none()
            {
                bad(
                    &format!("chain.redis.sentinel.addresses.{i}"),
                    "must be host:port",
                );
            }
        }
        if r.db < 0 || r.db > 15 {
            bad("chain.redis.db", "must be between 0 and 15");
        }
        if r.connect_timeout_ms == 0 || r.command_timeout_ms == 0 {
            bad(
                "chain.redis.commandTimeoutMs",
                "timeouts must be at least 1 ms",
            );
        }
        if r.replica_acks > 5 {
            bad("chain.redis.replicaAcks", "must be between 0 and 5");
        }
        if let Some(f) = &r.tls_ca_file
            && !std::path::Path::new(f).is_file()
        {
            bad("chain.redis.tlsCaFile", "file not found");
        }
        if r.key_prefix.contains(char::is_whitespace) {
            bad("chain.redis.keyPrefix", "must not contain white space");
        }

        // Settlement.
        let s = &self.settlement;
        if !(-1..=20).contains(&s.default_confirmations) {
            bad(
                "settlement.defaultConfirmations",
                "must be between -1 and 20",
            );
        }
        if s.confirmation_timeout_seconds == 0 || s.confirmation_timeout_seconds > 85 {
            bad(
                "settlement.confirmationTimeoutSeconds",
                "must be between 1 and 85 (x402 clients wait 90 s)",
            );
        }
        if s.retention_seconds < 3_600 {
            bad("settlement.retentionSeconds", "must be at least 3600");
        }
        if s.poll_interval_ms < 10 {
            bad("settlement.pollIntervalMs", "must be at least 10");
        }
        if s.reconcile_interval_ms < 50 {
            bad("settlement.reconcileIntervalMs", "must be at least 50");
        }
        if s.stability_depth == 0 {
            bad("settlement.stabilityDepth", "must be at least 1");
        }

        if let Some(k) = &self.admin.api_key
            && k.expose().len() < 16
        {
            bad("admin.apiKey", "must be at least 16 characters");
        }
        for (i, ip) in self.admin.allowed_ips.iter().enumerate() {
            if ip.parse::<std::net::IpAddr>().is_err() {
                bad(&format!("admin.allowedIps.{i}"), "must be an IP address");
            }
        }
        if let Some(url) = &self.telemetry.otlp.endpoint
            && !url.is_empty()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bad("telemetry.otlp.endpoint", "must be an http(s) URL");
        }
        if !(0.0..=1.0).contains(&self.telemetry.otlp.sample_ratio) {
            bad("telemetry.otlp.sampleRatio", "must be between 0 and 1");
        }
        if self.telemetry.otlp.service_name.trim().is_empty() {
            bad("telemetry.otlp.serviceName", "must not be empty");
        }
        if self.metrics.port == Some(0) {
            bad("metrics.port", "must be a port number (1-65535)");
        }
        p
    }

    /// The effective configuration as JSON with every secret replaced by `[REDACTED]`.
    pub fn redacted_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_map_to_camel_case_paths() {
        assert_eq!(env_key_to_path("SERVER__PORT"), "server.port");
        assert_eq!(
            env_key_to_path("SERVER__BODY_LIMIT_BYTES"),
            "server.bodyLimitBytes"
        );
        assert_eq!(
            env_key_to_path("CHAIN__BLOCKFROST__PROJECT_ID"),
            "chain.blockfrost.projectId"
        );
        assert_eq!(env_key_to_path("RATE_LIMIT__ENABLED"), "rateLimit.enabled");
    }

    #[test]
    fn defaults_are_valid() {
        assert!(
            Settings::default().validate().is_empty(),
            "{:?}",
            Settings::default().validate()
        );
    }

    #[test]
    fn secrets_never_print() {
        let mut s = Settings::default();
        s.chain.redis.password = Some(Secret::new("hunter2hunter2"));
        s.admin.api_key = Some(Secret::new("admin-key-0123456789"));
        let out = s.redacted_json();
        assert!(!out.contains("hunter2"));
        assert!(!out.contains("admin-key"));
        assert!(format!("{s:?}").contains("[REDACTED]"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
