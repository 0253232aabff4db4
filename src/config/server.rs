//! `server.*`: the listener, connection deadlines and CORS.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Upper bound for any request, /settle's confirmation wait included.
    #[serde(rename = "requestTimeoutMs", with = "super::values::millis")]
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    #[serde(rename = "shutdownGraceSeconds", with = "super::values::seconds")]
    pub shutdown_grace: Duration,
    /// Requests served at once; beyond it new requests are shed with 503.
    pub max_concurrent_requests: usize,
    /// Trust `X-Forwarded-For` for the client address (behind a proxy you run).
    pub trust_proxy: bool,
    pub cors: CorsSettings,
    /// A request head must arrive whole within this time of the connection
    /// becoming ready for it (accept, or the previous response); else closed.
    #[serde(rename = "headerReadTimeoutMs", with = "super::values::millis")]
    pub header_read_timeout: Duration,
    /// An idle kept-alive connection is closed after this long without a new
    /// request (at most `headerReadTimeoutMs`, which also runs while idle).
    #[serde(rename = "keepAliveTimeoutMs", with = "super::values::millis")]
    pub keep_alive_timeout: Duration,
    /// A request body must arrive whole within this time of its head; else 408
    /// and the connection is closed. Runs before the request holds a
    /// concurrency slot, so a trickling body never holds one.
    #[serde(rename = "bodyReadTimeoutMs", with = "super::values::millis")]
    pub body_read_timeout: Duration,
    /// Open client connections at most; beyond it new ones wait in the
    /// kernel's accept queue until one closes.
    pub max_connections: usize,
    /// How long one /health or /ready probe of the store and chain is reused
    /// (one refresh at a time, however many callers); 0 probes every call.
    #[serde(rename = "healthCacheMs", with = "super::values::millis")]
    pub health_cache: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".into(),
            port: 3000,
            request_timeout: Duration::from_millis(60_000),
            body_limit_bytes: 65_536,
            shutdown_grace: Duration::from_secs(15),
            max_concurrent_requests: 1024,
            trust_proxy: false,
            cors: CorsSettings::default(),
            header_read_timeout: Duration::from_millis(10_000),
            keep_alive_timeout: Duration::from_millis(5_000),
            body_read_timeout: Duration::from_millis(10_000),
            max_connections: 4_096,
            health_cache: Duration::from_millis(1_000),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CorsSettings {
    /// Origins allowed to call from a browser; empty disables CORS, `["*"]` allows any.
    pub allowed_origins: Vec<String>,
}
