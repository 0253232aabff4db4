//! `GET /health` (liveness with dependency detail) and `GET /ready`
//! (readiness: may this replica take payments right now?).
//!
//! | status | HTTP | meaning |
//! |---|---|---|
//! | healthy | 200 | store and chain both answer |
//! | degraded | 200 | one of them does not (payments fail closed meanwhile) |
//! | unhealthy | 503 | neither answers |
//!
//! Both routes share one probe of the store and the chain, reused for
//! `server.healthCacheMs` (default 1 s) and refreshed by one caller at a time
//! ([`Probes`]): a burst of probes, or a load balancer polling every replica,
//! costs the upstream (a metered Blockfrost quota, Redis) at most one request
//! per dependency per period.
//!
//! Anyone may call these routes, so they show each dependency's status and
//! latency but no error text (an HTTP client's error names the upstream URL,
//! and a URL can carry a key). A caller presenting the admin key
//! (`X-Admin-Key`, from an allowed address) also gets the error texts, with
//! URLs cut to scheme, host and port.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::state::AppState;
use crate::chain::{DependencyHealth, DependencyStatus};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

async fn probe<F>(fut: F) -> DependencyHealth
where
    F: std::future::Future<Output = DependencyHealth>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(h) => h,
        Err(_) => DependencyHealth {
            status: DependencyStatus::Down,
            latency_ms: PROBE_TIMEOUT.as_secs_f64() * 1000.0,
            tip: None,
            error: Some("probe timed out".into()),
        },
    }
}

/// Both probes, concurrently, uncached.
pub async fn dependencies(app: &AppState) -> (DependencyHealth, DependencyHealth) {
    tokio::join!(probe(app.store.health()), probe(app.chain.health()))
}

/// One probe result shared by /health and /ready.
#[derive(Debug)]
pub struct Snapshot {
    pub store: DependencyHealth,
    pub chain: DependencyHealth,
}

/// The cached, single-flight dependency probe.
///
/// A tokio mutex, held across the probe: whoever finds the snapshot stale
/// probes while the others wait for the lock and then read the fresh
/// snapshot, so concurrent callers never start a second probe.
pub struct Probes {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl Probes {
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Probes {
            ttl,
            last: tokio::sync::Mutex::new(None),
        })
    }

    /// The current snapshot, probing only when the cached one is older than the TTL.
    pub async fn get(&self, app: &AppState) -> Arc<Snapshot> {
        let mut last = self.last.lock().await;
        if let Some((at, snap)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return snap.clone();
        }
        let (store, chain) = dependencies(app).await;
        let snap = Arc::new(Snapshot { store, chain });
        *last = Some((Instant::now(), snap.clone()));
        snap
    }
}

/// A dependency as shown to anyone: status and latency; the error text (URLs
/// redacted) only for a caller with the admin key.
fn shown(h: &DependencyHealth, detail: bool) -> serde_json::Value {
    let mut v = json!({ "status": h.status, "latencyMs": h.latency_ms });
    if detail && let Some(e) = &h.error {
        v["error"] = json!(crate::redact::urls_in(e));
    }
    v
}

pub async fn health(
    State(app): State<AppState>,
    Extension(probes): Extension<Arc<Probes>>,
    req: Request,
) -> Response {
    let detail = super::admin::presents_admin_key(&app, &req);
    let snap = probes.get(&app).await;
    let (store, chain) = (&snap.store, &snap.chain);
    let up = |h: &DependencyHealth| h.status == DependencyStatus::Up;
    let status = match (up(store), up(chain)) {
        (true, true) => "healthy",
        (false, false) => "unhealthy",
        _ => "degraded",
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut chain_json = shown(chain, detail);
    chain_json["network"] = json!(app.chain.network().caip2());
    if let Some(tip) = chain.tip {
        chain_json["tip"] = serde_json::to_value(tip).unwrap_or_default();
        chain_json["tipAgeSeconds"] = json!((now - tip.time).max(0));
    }
    let mut store_json = shown(store, detail);
    store_json["backend"] = json!(app.store.backend());
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": app.started.elapsed().as_secs(),
        "timestamp": super::error::now_rfc3339(),
        "dependencies": { "store": store_json, "chain": chain_json },
    });
    if let Some(w) = app.settings.production_warning() {
        body["warning"] = json!(w);
    }
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

pub async fn ready(
    State(app): State<AppState>,
    Extension(probes): Extension<Arc<Probes>>,
    req: Request,
) -> Response {
    let detail = super::admin::presents_admin_key(&app, &req);
    let mut reasons = Vec::new();
    if app.is_draining() {
        reasons.push("shutting down".to_owned());
    }
    let snap = probes.get(&app).await;
    for (name, h) in [("store", &snap.store), ("chain", &snap.chain)] {
        if h.status != DependencyStatus::Up {
            reasons.push(match (&h.error, detail) {
                (Some(e), true) => format!("{name} down: {}", crate::redact::urls_in(e)),
                _ => format!("{name} down"),
            });
        }
    }
    if reasons.is_empty() {
        (StatusCode::OK, Json(json!({ "ready": true }))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "ready": false, "reasons": reasons })),
        )
            .into_response()
    }
}
