//! `rateLimit.*`, `auth.*` and `admin.*`: who may call, and how often.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::net::IpAddr;

use super::{KeyDigest, Secret};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RateLimitSettings {
    pub enabled: bool,
    #[serde(rename = "windowMs", with = "super::values::millis")]
    pub window: Duration,
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
            window: Duration::from_millis(60_000),
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
    pub api_keys: Vec<KeyDigest>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdminSettings {
    /// Key for the X-Admin-Key header; the admin API is off when unset.
    pub api_key: Option<Secret>,
    /// Client IPs allowed to call /admin; empty allows any (the key still applies).
    pub allowed_ips: Vec<IpAddr>,
}
