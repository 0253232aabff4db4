//! Who may call, and how often: API keys and rate limits (governor).
//!
//! One middleware does both because they depend on each other: a caller that
//! presents a valid API key is limited by the key's quota (when configured),
//! everyone else by client IP. Keys are configured as SHA-256 digests and
//! compared in constant time, so neither the config file nor timing reveals
//! a key.
//!
//! Memory stays bounded: the keyed stores are pruned every window, and when
//! more than `rateLimit.maxTrackedClients` addresses are tracked at once,
//! addresses not yet seen share one overflow bucket until the flood passes.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Settings;

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One quota: `limit` requests per `window`, refilled smoothly.
struct Bucket {
    limiter: Limiter,
    limit: u32,
    window: Duration,
}

impl Bucket {
    fn new(limit: u32, window: Duration) -> Option<Bucket> {
        let n = NonZeroU32::new(limit)?;
        let period = window.checked_div(limit)?.max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)?.allow_burst(n);
        Some(Bucket {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            limit,
            window,
        })
    }
}

/// Result of a rate-limit check, for the `RateLimit-*` headers.
struct Verdict {
    limit: u32,
    remaining: u32,
    reset_secs: u64,
    retry_after: Option<u64>,
}

/// The caller's identity for limits and auth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Index of the matching configured key.
    ApiKey(usize),
    Ip(String),
}

pub struct Guard {
    key_digests: Vec<[u8; 32]>,
    enabled: bool,
    trust_proxy: bool,
    max_tracked: usize,
    ip_global: Option<Bucket>,
    ip_sensitive: Option<Bucket>,
    key_global: Option<Bucket>,
    key_sensitive: Option<Bucket>,
    clock: DefaultClock,
}

const OVERFLOW_KEY: &str = "overflow";

/// The caller's address: the peer, or with `trust_proxy` the right-most
/// `X-Forwarded-For` entry (the one our own proxy appended).
pub fn client_ip(req: &Request, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.rsplit(',')
                    .map(str::trim)
                    .find_map(|s| s.parse::<IpAddr>().ok())
            });
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Routes whose every call costs chain or store work.
pub fn is_sensitive(path: &str) -> bool {
    path == "/verify" || path == "/settle" || path == "/status" || path.starts_with("/status/")
}

/// Routes that need an API key when keys are configured.
fn needs_key(path: &str) -> bool {
    is_sensitive(path)
}

impl Guard {
    pub fn new(settings: &Settings) -> Arc<Guard> {
        let rl = &settings.rate_limit;
        let window = rl.window.max(Duration::from_millis(1));
        let key_digests = settings.auth.api_keys.iter().map(|k| *k.bytes()).collect();
        Arc::new(Guard {
            key_digests,
            enabled: rl.enabled,
            trust_proxy: settings.server.trust_proxy,
            max_tracked: rl.max_tracked_clients,
            ip_global: Bucket::new(rl.global, window),
            ip_sensitive: Bucket::new(rl.sensitive, window),
            key_global: rl.api_key_global.and_then(|n| Bucket::new(n, window)),
            key_sensitive: rl.api_key_sensitive.and_then(|n| Bucket::new(n, window)),
            clock: DefaultClock::default(),
        })
    }

    /// Forget clients whose buckets are full again (called every window).
    pub fn prune(&self) {
        for b in [
            &self.ip_global,
            &self.ip_sensitive,
            &self.key_global,
            &self.key_sensitive,
        ]
        .into_iter()
        .flatten()
        {
            b.limiter.retain_recent();
            b.limiter.shrink_to_fit();
        }
    }

    /// Number of tracked client keys (largest bucket), for tests and metrics.
    pub fn tracked(&self) -> usize {
        [&self.ip_global, &self.ip_sensitive]
            .into_iter()
            .flatten()
            .map(|b| b.limiter.len())
            .max()
            .unwrap_or(0)
    }

    /// The presented key, if any: `Authorization: Bearer <key>` or `X-API-Key`.
    fn presented_key(headers: &HeaderMap) -> Option<&str> {
        if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            return Some(v.trim());
        }
        let auth = headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, rest) = auth.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    }

    /// Constant-time match of a presented key against every configured digest.
    /// The tenant scope of a caller: an API key's identity (a prefix of its
    /// digest, stable across replicas and key reordering), or None.
    pub fn tenant_of(&self, caller: &Caller) -> Option<String> {
        match caller {
            Caller::ApiKey(i) => self
                .key_digests
                .get(*i)
                .map(|d| format!("k{}", hex::encode(&d[..12]))),
            Caller::Ip(_) => None,
        }
    }

    fn match_key(&self, key: &str) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (i, d) in self.key_digests.iter().enumerate() {
            if bool::from(d.ct_eq(&digest)) && found.is_none() {
                found = Some(i);
            }
        }
        found
    }

    fn client_ip(&self, req: &Request) -> String {
        client_ip(req, self.trust_proxy)
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    fn check(&self, bucket: &Bucket, key: &str) -> Verdict {
        let per_request = bucket.window.as_secs_f64() / f64::from(bucket.limit);
        match bucket.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = bucket.limit.saturating_sub(remaining);
                Verdict {
                    limit: bucket.limit,
                    remaining,
                    reset_secs: (f64::from(used) * per_request).ceil() as u64,
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                Verdict {
                    limit: bucket.limit,
                    remaining: 0,
                    reset_secs: (bucket.window.as_secs_f64().ceil() as u64).max(secs),
                    retry_after: Some(secs),
                }
            }
        }
    }
}

fn set_headers(resp: &mut Response, v: &Verdict) {
    let h = resp.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", v.limit as u64),
        ("ratelimit-remaining", v.remaining as u64),
        ("ratelimit-reset", v.reset_secs),
    ] {
        if let Ok(val) = HeaderValue::from_str(&value.to_string()) {
            h.insert(name, val);
        }
    }
}

/// The middleware: identify, limit, authorize.
pub async fn guard(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    // The embedded devnet's API is a development tool with its own callers
    // (wallet libraries polling it); it is not subject to payment-route limits.
    if path.starts_with("/devnet/") {
        return next.run(req).await;
    }
    let sensitive = is_sensitive(&path);
    let presented = Guard::presented_key(req.headers()).map(str::to_owned);
    let matched = presented.as_deref().and_then(|k| guard.match_key(k));
    let caller = match matched {
        Some(i) => Caller::ApiKey(i),
        None => Caller::Ip(guard.client_ip(&req)),
    };
    req.extensions_mut().insert(caller.clone());

    let mut verdict: Option<Verdict> = None;
    if guard.enabled {
        let (global, sens, key) = match &caller {
            Caller::ApiKey(i) if guard.key_global.is_some() || guard.key_sensitive.is_some() => (
                guard.key_global.as_ref().or(guard.ip_global.as_ref()),
                guard.key_sensitive.as_ref().or(guard.ip_sensitive.as_ref()),
                format!("key:{i}"),
            ),
            Caller::ApiKey(i) => (
                guard.ip_global.as_ref(),
                guard.ip_sensitive.as_ref(),
                format!("key:{i}"),
            ),
            Caller::Ip(ip) => {
                let key = if guard.tracked() >= guard.max_tracked {
                    guard.prune();
                    if guard.tracked() >= guard.max_tracked {
                        OVERFLOW_KEY.to_owned()
                    } else {
                        format!("ip:{ip}")
                    }
                } else {
                    format!("ip:{ip}")
                };
                (guard.ip_global.as_ref(), guard.ip_sensitive.as_ref(), key)
            }
        };
        let mut checks = Vec::new();
        if let Some(b) = global {
            checks.push(guard.check(b, &key));
        }
        if sensitive && let Some(b) = sens {
            checks.push(guard.check(b, &key));
        }
        // Report the tightest limit; reject if any is exhausted.
        if let Some(denied) = checks.iter().position(|v| v.retry_after.is_some()) {
            let v = checks.swap_remove(denied);
            let secs = v.retry_after.unwrap_or(1);
            tracing::warn!(caller = ?caller, path = %path, retry_after = secs, "rate limited");
            metrics::counter!("http_rate_limited_total", "route_class" => if sensitive { "sensitive" } else { "global" }).increment(1);
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("Rate limit exceeded; retry in {secs} s"),
            )
            .with_retry_after(secs)
            .into_response();
            set_headers(&mut resp, &v);
            return resp;
        }
        verdict = checks.into_iter().min_by_key(|v| v.remaining);
    }

    if needs_key(&path) && !guard.key_digests.is_empty() && matched.is_none() {
        let msg = if presented.is_some() {
            "Invalid API key"
        } else {
            "An API key is required (Authorization: Bearer <key> or X-API-Key)"
        };
        let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg).into_response();
        resp.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        return resp;
    }

    let mut resp = next.run(req).await;
    if let Some(v) = verdict {
        set_headers(&mut resp, &v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_by_digest_only() {
        let mut s = Settings::default();
        let digest = hex::encode(Sha256::digest(b"resource-server-key-1"));
        s.auth.api_keys = vec![crate::config::KeyDigest::from_hex(&digest).unwrap()];
        let g = Guard::new(&s);
        assert_eq!(g.match_key("resource-server-key-1"), Some(0));
        assert_eq!(g.match_key("resource-server-key-2"), None);
        assert_eq!(g.match_key(""), None);
    }

    #[test]
    fn sensitive_routes() {
        assert!(is_sensitive("/verify"));
        assert!(is_sensitive("/settle"));
        assert!(is_sensitive("/status"));
        assert!(is_sensitive("/status/abc"));
        assert!(!is_sensitive("/supported"));
        assert!(!is_sensitive("/health"));
    }
}
