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

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use super::error::ApiError;
use crate::config::Settings;

type Limiter = RateLimiter<
    ClientKey,
    DefaultKeyedStateStore<ClientKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Whose bucket a request draws from: small and `Copy`, so a rate-limit
/// check allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ClientKey {
    /// The index of a configured API key.
    Key(usize),
    Ip(IpAddr),
    /// A peer whose address is not known.
    UnknownIp,
    /// Addresses not yet seen while `rateLimit.maxTrackedClients` are tracked.
    Overflow,
}

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
    /// The client address (see [`client_ip`]), when known.
    Ip(Option<IpAddr>),
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

    fn check(&self, bucket: &Bucket, key: ClientKey) -> Verdict {
        let per_request = bucket.window.as_secs_f64() / f64::from(bucket.limit);
        match bucket.limiter.check_key(&key) {
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

impl Guard {
    /// Identify, limit, authorize: the request may go on (with the verdict
    /// whose `RateLimit-*` headers its answer carries), or this is the answer.
    fn admit(&self, req: &mut Request) -> Admission {
        let path = req.uri().path();
        // The embedded devnet's API is a development tool with its own callers
        // (wallet libraries polling it); it is not subject to payment-route limits.
        if path.starts_with("/devnet/") {
            return Admission::Pass(None);
        }
        let sensitive = is_sensitive(path);
        let key_required = needs_key(path);
        let presented = Guard::presented_key(req.headers());
        let key_presented = presented.is_some();
        let matched = presented.and_then(|k| self.match_key(k));
        let caller = match matched {
            Some(i) => Caller::ApiKey(i),
            None => Caller::Ip(client_ip(req, self.trust_proxy)),
        };

        let mut verdict: Option<Verdict> = None;
        if self.enabled {
            let (global, sens, key) = match caller {
                Caller::ApiKey(i) if self.key_global.is_some() || self.key_sensitive.is_some() => (
                    self.key_global.as_ref().or(self.ip_global.as_ref()),
                    self.key_sensitive.as_ref().or(self.ip_sensitive.as_ref()),
                    ClientKey::Key(i),
                ),
                Caller::ApiKey(i) => (
                    self.ip_global.as_ref(),
                    self.ip_sensitive.as_ref(),
                    ClientKey::Key(i),
                ),
                Caller::Ip(ip) => {
                    let own = ip.map_or(ClientKey::UnknownIp, ClientKey::Ip);
                    let key = if self.tracked() >= self.max_tracked {
                        self.prune();
                        if self.tracked() >= self.max_tracked {
                            ClientKey::Overflow
                        } else {
                            own
                        }
                    } else {
                        own
                    };
                    (self.ip_global.as_ref(), self.ip_sensitive.as_ref(), key)
                }
            };
            let global = global.map(|b| self.check(b, key));
            let sens = sens.filter(|_| sensitive).map(|b| self.check(b, key));
            // Reject if any quota is exhausted (the first one that is);
            // otherwise report the tightest.
            let denied = [&global, &sens]
                .into_iter()
                .flatten()
                .find(|v| v.retry_after.is_some());
            if let Some(v) = denied {
                let secs = v.retry_after.unwrap_or(1);
                tracing::warn!(caller = ?caller, path = %req.uri().path(), retry_after = secs, "rate limited");
                metrics::counter!("http_rate_limited_total", "route_class" => if sensitive { "sensitive" } else { "global" }).increment(1);
                let mut resp = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("Rate limit exceeded; retry in {secs} s"),
                )
                .with_retry_after(secs)
                .into_response();
                set_headers(&mut resp, v);
                return Admission::Refuse(resp);
            }
            verdict = [global, sens]
                .into_iter()
                .flatten()
                .min_by_key(|v| v.remaining);
        }

        if key_required && !self.key_digests.is_empty() && matched.is_none() {
            let msg = if key_presented {
                "Invalid API key"
            } else {
                "An API key is required (Authorization: Bearer <key> or X-API-Key)"
            };
            let mut resp =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", msg).into_response();
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return Admission::Refuse(resp);
        }
        req.extensions_mut().insert(caller);
        Admission::Pass(verdict)
    }
}

/// What [`Guard::admit`] decided.
enum Admission {
    /// The request goes on; its answer carries this verdict's headers.
    Pass(Option<Verdict>),
    /// This is the answer (429 or 401).
    Refuse(Response),
}

/// Around every route: [`Guard::admit`], then the route, then the
/// `RateLimit-*` headers on its answer.
#[derive(Clone)]
pub struct GuardLayer {
    guard: Arc<Guard>,
}

impl GuardLayer {
    pub fn new(guard: Arc<Guard>) -> GuardLayer {
        GuardLayer { guard }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guarded<S>;
    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            guard: self.guard.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    guard: Arc<Guard>,
}

impl<S> Service<Request> for Guarded<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let verdict = match self.guard.admit(&mut req) {
            Admission::Pass(verdict) => verdict,
            Admission::Refuse(answer) => return Box::pin(std::future::ready(Ok(answer))),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            if let Some(v) = verdict {
                set_headers(&mut resp, &v);
            }
            Ok(resp)
        })
    }
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
