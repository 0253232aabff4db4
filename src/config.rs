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
    /// A request head must arrive whole within this time of the connection
    /// becoming ready for it (accept, or the previous response); else closed.
    pub header_read_timeout_ms: u64,
    /// An idle kept-alive connection is closed after this long without a new
    /// request (at most `headerReadTimeoutMs`, which also runs while idle).
    pub keep_alive_timeout_ms: u64,
    /// A request body must arrive whole within this time of its head; else 408
    /// and the connection is closed. Runs before the request holds a
    /// concurrency slot, so a trickling body never holds one.
    pub body_read_timeout_ms: u64,
    /// Open client connections at most; beyond it new ones wait in the
    /// kernel's accept queue until one closes.
    pub max_connections: usize,
    /// How long one /health or /ready probe of the store and chain is reused
    /// (one refresh at a time, however many callers); 0 probes every call.
    pub health_cache_ms: u64,
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
            header_read_timeout_ms: 10_000,
            keep_alive_timeout_ms: 5_000,
            body_read_timeout_ms: 10_000,
            max_connections: 4_096,
            health_cache_ms: 1_000,
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
    /// Client-side limit on requests sent to the backend (the plan's quota).
    pub rate_limit: BlockfrostRateLimit,
    /// How often the chain tip is read in the background (verify never asks for it).
    pub tip_refresh_ms: u64,
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
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            max_retries: 3,
            retry_base_delay_ms: 200,
            rate_limit: BlockfrostRateLimit::default(),
            tip_refresh_ms: 5_000,
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
    /// How long the inputs of a transaction this service submitted bypass the
    /// UTxO cache (they are always asked upstream, never answered from cache).
    pub spent_ttl_seconds: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            utxo_ttl_seconds: 10,
            protocol_params_ttl_seconds: 300,
            spent_ttl_seconds: 3_600,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReservationSettings {
    /// Shortest hold of a settling transaction's inputs; the hold lasts until
    /// the transaction can no longer land when that is longer.
    pub ttl_seconds: u64,
    /// Hold the inputs of a valid payment at /verify already (off: verify is
    /// read-only, as the x402 core spec says). For resource servers that
    /// deliver before they settle; see README and SECURITY.md.
    pub hold_on_verify: bool,
}

impl Default for ReservationSettings {
    fn default() -> Self {
        ReservationSettings {
            ttl_seconds: 120,
            hold_on_verify: false,
        }
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
    /// The `network_magic` the devnet's `/genesis` announces (42 by default;
    /// 1 lets a devnet stand in for preprod behind a Blockfrost client).
    pub network_magic: u32,
}

impl Default for DevnetSettings {
    fn default() -> Self {
        DevnetSettings {
            block_time_ms: 1_000,
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
    /// Start with settlement paused on this replica (verify still answers).
    /// The operator's pause switch (`/admin/settlement/pause`) is shared by
    /// every replica through the store; this one is local.
    pub paused: bool,
    /// Accept `l1Confirmations: -1` (settle on our own submit acceptance,
    /// before any block). Off by default, as the scheme recommends.
    pub accept_mempool: bool,
    /// After the validity window closes, how long an unseen transaction is
    /// still awaited before it is expired (the scheme's 120 s).
    pub expiry_grace_seconds: u64,
    /// A submit whose outcome is unknown is handed to the network again
    /// (the exact same bytes) after this delay if the chain has not seen it.
    pub rebroadcast_after_seconds: u64,
    /// Most hand-overs of one transaction, the first one included.
    pub max_submissions: u32,
    /// The x402 reference behaviour: every repeat `/settle` of a payment
    /// answers its stored outcome (`success:true` again). Off by default: a
    /// payment's success is delivered once (see SECURITY.md).
    pub repeat_success: bool,
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
            accept_mempool: false,
            expiry_grace_seconds: 120,
            rebroadcast_after_seconds: 20,
            max_submissions: 4,
            repeat_success: false,
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
///
/// Every problem lands in one [`ConfigError::Invalid`]: type errors (each
/// bad value is reported and its key falls back to the default, so one does
/// not hide the next), unknown keys (with the closest known key as a hint),
/// then the semantic checks of [`Settings::validate`].
pub fn load(source: &ConfigSource, env: &[(String, String)]) -> Result<Settings, ConfigError> {
    // Defaults are not merged into the tree: every struct is `#[serde(default)]`,
    // so the tree holds exactly what the operator wrote, and only that is checked.
    let mut figment = Figment::new();

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

    // Environment overrides, from the given list only. A single-segment name
    // that is no top-level key (`X402_INTEROP_REQUIRED`) belongs to other
    // tooling and is left alone; anything nested is checked like the file.
    let known = known_tree();
    let mut env_dict = figment::value::Dict::new();
    let mut env_origin = std::collections::BTreeMap::new();
    for (k, v) in env {
        let Some(rest) = k.strip_prefix("X402_") else {
            continue;
        };
        if rest == "CONFIG" || rest.is_empty() {
            continue;
        }
        let path = env_key_to_path(rest);
        if !rest.contains("__") && known.get(&path).is_none() {
            continue;
        }
        let value: figment::value::Value = v
            .parse()
            .unwrap_or_else(|_| figment::value::Value::from(v.clone()));
        let nested = nest(&path, value);
        env_dict = merge_dicts(env_dict, nested);
        env_origin.insert(path, k.clone());
    }
    figment = figment.merge(Serialized::defaults(env_dict));

    let tree: serde_json::Value = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(vec![e.to_string()]))?;
    let (settings, mut problems) = typed_settings(tree, &env_origin, &known);

    let reported: Vec<String> = problems
        .iter()
        .filter_map(|p| p.split(':').next())
        .map(|p| p.split(' ').next().unwrap_or(p).to_owned())
        .collect();
    for p in settings.validate() {
        let path = p.split(':').next().unwrap_or_default();
        // A key whose value was rejected already holds the default; do not
        // report it twice.
        if !reported.iter().any(|r| r == path) {
            problems.push(p);
        }
    }
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

/// The built-in defaults as JSON: the map of known keys. It is derived from
/// the typed [`Settings`], so a key added there is known here with no edit.
fn known_tree() -> serde_json::Value {
    serde_json::to_value(Settings::default()).unwrap_or_default()
}

/// Dotted path of a `serde_path_to_error` path.
fn error_path(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// Dotted path of a `serde_ignored` path (Option and newtype layers are invisible in JSON).
fn ignored_path(path: &serde_ignored::Path) -> Vec<String> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    let mut cur = path;
    loop {
        match cur {
            Path::Root => break,
            Path::Seq { parent, index } => {
                out.push(index.to_string());
                cur = parent;
            }
            Path::Map { parent, key } => {
                out.push(key.clone());
                cur = parent;
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    out.reverse();
    out
}

fn value_at<'a>(
    tree: &'a mut serde_json::Value,
    path: &[String],
) -> Option<&'a mut serde_json::Value> {
    let mut cur = tree;
    for seg in path {
        cur = match cur {
            serde_json::Value::Object(m) => m.get_mut(seg)?,
            serde_json::Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Remove the value at `path` so that its default applies. An array element
/// takes its whole array with it (removing one would renumber the others).
fn remove_at(tree: &mut serde_json::Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match value_at(tree, parent) {
        Some(serde_json::Value::Object(m)) => m.remove(last).is_some(),
        Some(serde_json::Value::Array(_)) => remove_at(tree, parent),
        _ => false,
    }
}

/// The lenient reading the loader always had: `"8080"` for a number, and (for
/// environment values, which arrive untyped) `12345` for a string.
fn coerced(v: &serde_json::Value, from_env: bool) -> Option<serde_json::Value> {
    match v {
        serde_json::Value::String(s) => match serde_json::from_str::<serde_json::Value>(s.trim()) {
            Ok(n @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Some(n),
            _ => None,
        },
        serde_json::Value::Number(n) if from_env => Some(serde_json::Value::String(n.to_string())),
        serde_json::Value::Bool(b) if from_env => Some(serde_json::Value::String(b.to_string())),
        _ => None,
    }
}

/// Levenshtein distance, case-insensitive (a wrong case is a typo too).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known sibling closest to an unknown key, when one is close enough.
fn closest_key(known: &serde_json::Value, path: &[String]) -> Option<String> {
    let (last, parent) = path.split_last()?;
    let mut node = known;
    for seg in parent {
        node = match node {
            serde_json::Value::Object(m) => m.get(seg)?,
            _ => return None,
        };
    }
    let serde_json::Value::Object(siblings) = node else {
        return None;
    };
    let limit = (last.chars().count() / 3).max(2);
    siblings
        .keys()
        .map(|k| (edit_distance(last, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| {
            let mut p = parent.to_vec();
            p.push(k.clone());
            p.join(".")
        })
}

/// Deserialize the merged tree into [`Settings`], collecting every type error
/// and unknown key as `dotted.path: reason`. A rejected value is removed (its
/// default applies) and deserialization runs again, until it succeeds.
fn typed_settings(
    mut tree: serde_json::Value,
    env_origin: &std::collections::BTreeMap<String, String>,
    known: &serde_json::Value,
) -> (Settings, Vec<String>) {
    let label = |path: &[String]| {
        let dotted = path.join(".");
        match env_origin.get(&dotted) {
            Some(var) => format!("{dotted} ({var})"),
            None => dotted,
        }
    };
    let mut problems = Vec::new();
    let mut coerced_paths: std::collections::BTreeMap<Vec<String>, String> = Default::default();
    // Each round removes or rewrites one value, so this bound is never reached
    // by a real file; it only guards against a loop.
    for _ in 0..10_000 {
        let mut unknown = Vec::new();
        let result: Result<Settings, _> = serde_path_to_error::deserialize(
            serde_ignored::Deserializer::new(&tree, &mut |p: serde_ignored::Path| {
                unknown.push(ignored_path(&p))
            }),
        );
        match result {
            Ok(settings) => {
                for path in unknown {
                    let hint = closest_key(known, &path)
                        .map(|k| format!(" (did you mean {k}?)"))
                        .unwrap_or_default();
                    problems.push(format!("{}: unknown key{hint}", label(&path)));
                }
                return (settings, problems);
            }
            Err(e) => {
                let path = error_path(e.path());
                let reason = e.inner().to_string();
                let reason = match coerced_paths.entry(path.clone()) {
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        let from_env = env_origin.contains_key(&path.join("."));
                        if let Some(v) = value_at(&mut tree, &path)
                            && let Some(alt) = coerced(v, from_env)
                        {
                            *v = alt;
                            slot.insert(reason);
                            continue;
                        }
                        reason
                    }
                    // The lenient reading did not help: report the original problem.
                    std::collections::btree_map::Entry::Occupied(first) => first.get().clone(),
                };
                problems.push(if path.is_empty() {
                    reason
                } else {
                    format!("{}: {reason}", label(&path))
                });
                if !remove_at(&mut tree, &path) {
                    // Nothing left to remove: the defaults are the answer.
                    return (Settings::default(), problems);
                }
            }
        }
    }
    (Settings::default(), problems)
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
        let sv = &self.server;
        if !(100..=300_000).contains(&sv.header_read_timeout_ms) {
            bad(
                "server.headerReadTimeoutMs",
                "must be between 100 and 300000",
            );
        }
        if sv.keep_alive_timeout_ms < 100 || sv.keep_alive_timeout_ms > sv.header_read_timeout_ms {
            bad(
                "server.keepAliveTimeoutMs",
                "must be between 100 and server.headerReadTimeoutMs",
            );
        }
        if !(100..=600_000).contains(&sv.body_read_timeout_ms) {
            bad("server.bodyReadTimeoutMs", "must be between 100 and 600000");
        }
        if !(16..=1_000_000).contains(&sv.max_connections) {
            bad("server.maxConnections", "must be between 16 and 1000000");
        }
        if sv.health_cache_ms > 60_000 {
            bad("server.healthCacheMs", "must be at most 60000");
        }
        // A bare word is a level name; tracing would read `shout` as a target.
        let level = self.logging.level.trim().to_ascii_lowercase();
        let bare_word = !level.contains(['=', ',', ':']);
        let level_name = matches!(
            level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent" | "off"
        );
        if crate::telemetry::parse_level(&self.logging.level).is_none()
            || (bare_word && !level_name)
        {
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

        // Masumi.
        for (i, h) in self.masumi.approved_deployments.iter().enumerate() {
            if h.len() != 56
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                bad(
                    &format!("masumi.approvedDeployments.{i}"),
                    "must be an escrow script hash (56 lowercase hex characters)",
                );
            }
        }
        for (i, a) in self.masumi.registered_agents.iter().enumerate() {
            let id = &a.agent_identifier;
            let hexy = id.len().is_multiple_of(2)
                && id.len() <= 120
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hexy || !id.starts_with(crate::scheme::masumi::verify::REGISTRY_POLICY) {
                bad(
                    &format!("masumi.registeredAgents.{i}.agentIdentifier"),
                    "must be lowercase hex starting with the Masumi V2 registry policy id",
                );
            }
            if crate::cardano::address::parse_shelley_bech32(&a.seller_address).is_err() {
                bad(
                    &format!("masumi.registeredAgents.{i}.sellerAddress"),
                    "must be a bech32 Shelley address",
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
        if self.chain.cache.protocol_params_ttl_seconds > 600 {
            bad(
                "chain.cache.protocolParamsTtlSeconds",
                "must be at most 600",
            );
        }
        if self.chain.cache.spent_ttl_seconds < self.chain.cache.utxo_ttl_seconds {
            bad(
                "chain.cache.spentTtlSeconds",
                "must be at least chain.cache.utxoTtlSeconds",
            );
        }
        if !bf.rate_limit.per_second.is_finite()
            || bf.rate_limit.per_second < 0.0
            || bf.rate_limit.per_second > 1_000_000.0
        {
            bad(
                "chain.blockfrost.rateLimit.perSecond",
                "must be between 0 (off) and 1000000",
            );
        }
        if bf.rate_limit.per_second > 0.0 && bf.rate_limit.burst == 0 {
            bad("chain.blockfrost.rateLimit.burst", "must be at least 1");
        }
        if bf.tip_refresh_ms < 100 || bf.tip_refresh_ms > 600_000 {
            bad(
                "chain.blockfrost.tipRefreshMs",
                "must be between 100 and 600000",
            );
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
        } else if s.default_confirmations < 0 && !s.accept_mempool {
            bad(
                "settlement.defaultConfirmations",
                "-1 (mempool) needs settlement.acceptMempool: true",
            );
        }
        if s.max_submissions == 0 || s.max_submissions > 20 {
            bad("settlement.maxSubmissions", "must be between 1 and 20");
        }
        if s.rebroadcast_after_seconds == 0 {
            bad("settlement.rebroadcastAfterSeconds", "must be at least 1");
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

        // Production: what only makes sense on a developer's machine is refused.
        if self.env == Environment::Production {
            if self.chain.network == Network::Devnet {
                bad("chain.network", PRODUCTION_DEVNET_MESSAGE);
                if self.chain.devnet.faucet_enabled && self.chain.devnet.api_enabled {
                    bad("chain.devnet.faucetEnabled", PRODUCTION_FAUCET_MESSAGE);
                }
            }
            if self.logging.pretty {
                bad("logging.pretty", PRODUCTION_PRETTY_MESSAGE);
            }
        }
        p
    }

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

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "x402-config-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        std::fs::write(&path, text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let r = load(
            &ConfigSource {
                path: path.clone(),
                explicit: true,
            },
            &env,
        );
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn problems(r: Result<Settings, ConfigError>) -> Vec<String> {
        match r {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected ConfigInvalidError, got {other:?}"),
        }
    }

    #[test]
    fn a_type_error_does_not_hide_the_next_one_or_a_semantic_one() {
        let p = problems(load_text(
            r#"{"server":{"port":"not-a-port","bodyLimitBytes":true},"logging":{"level":"shout"},"rateLimit":{"global":0}}"#,
            &[],
        ));
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            p[0].starts_with("server.bodyLimitBytes: invalid type: boolean"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("server.port: invalid type: string \"not-a-port\""),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("logging.level: must be one of")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("rateLimit.global: must be at least 1")),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_the_closest_known_key() {
        let p = problems(load_text(
            r#"{"rateLimit":{"globl":5},"servr":{},"chain":{"blockfrost":{"zzzzzzzz":1}}}"#,
            &[],
        ));
        assert_eq!(
            p,
            vec![
                "chain.blockfrost.zzzzzzzz: unknown key".to_owned(),
                "rateLimit.globl: unknown key (did you mean rateLimit.global?)".to_owned(),
                "servr: unknown key (did you mean server?)".to_owned(),
            ]
        );
    }

    #[test]
    fn environment_keys_are_checked_too_and_keep_their_lenient_typing() {
        let p = problems(load_text(
            "{}",
            &[
                ("X402_RATE_LIMIT__GLOBL", "5"),
                ("X402_INTEROP_REQUIRED", "1"),
            ],
        ));
        assert_eq!(
            p,
            vec![
                "rateLimit.globl (X402_RATE_LIMIT__GLOBL): unknown key (did you mean rateLimit.global?)"
                    .to_owned()
            ]
        );
        // A numeric-looking secret from the environment stays a string; a
        // quoted number in the file still reads as a number.
        let s = load_text(
            r#"{"server":{"port":"8080"}}"#,
            &[
                ("X402_ADMIN__API_KEY", "12345678901234567890"),
                ("X402_ENV", "test"),
            ],
        )
        .unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(
            s.admin.api_key.as_ref().map(Secret::expose),
            Some("12345678901234567890")
        );
        assert_eq!(s.env, Environment::Test);
    }

    #[test]
    fn production_refuses_the_devnet_its_faucet_and_pretty_logs() {
        let p = problems(load_text(
            r#"{"env":"production","logging":{"pretty":true}}"#,
            &[],
        ));
        assert_eq!(
            p,
            vec![
                format!("chain.network: {PRODUCTION_DEVNET_MESSAGE}"),
                format!("chain.devnet.faucetEnabled: {PRODUCTION_FAUCET_MESSAGE}"),
                format!("logging.pretty: {PRODUCTION_PRETTY_MESSAGE}"),
            ]
        );
        let s = load_text(
            r#"{"env":"production","chain":{"network":"preprod","blockfrost":{"projectId":"preprodXXXXXXXXXXXXXXXX"}}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(
            s.production_warning(),
            Some(PRODUCTION_MEMORY_STORE_WARNING)
        );
    }

    #[test]
    fn check_config_shows_urls_as_scheme_host_and_port() {
        let mut s = Settings::default();
        s.chain.blockfrost.url = Some("https://me:pw@bf.example:8443/api/v0/KEY?token=t".into());
        let out = s.redacted_json();
        assert!(out.contains("\"https://bf.example:8443\""), "{out}");
        for leak in ["me:pw", "api/v0", "KEY", "token"] {
            assert!(!out.contains(leak), "{leak} leaked: {out}");
        }
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
