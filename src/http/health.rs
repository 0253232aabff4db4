//! `GET /health` (liveness with dependency detail) and `GET /ready`
//! (readiness: may this replica take payments right now?).
//!
//! | status | HTTP | meaning |
//! |---|---|---|
//! | healthy | 200 | every network's store and chain answer |
//! | degraded | 200 | some do not (payments on those fail closed meanwhile) |
//! | unhealthy | 503 | none answers |
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
use crate::cardano::Network;
use crate::chain::{DependencyHealth, DependencyStatus};
use crate::facilitator::Lane;

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

/// Both probes of one network, concurrently, uncached.
pub async fn dependencies(lane: &Lane) -> (DependencyHealth, DependencyHealth) {
    tokio::join!(probe(lane.store.health()), probe(lane.chain.health()))
}

/// One network's probe results.
#[derive(Debug)]
pub struct NetworkProbe {
    pub network: Network,
    pub store_backend: &'static str,
    pub store: DependencyHealth,
    pub chain: DependencyHealth,
}

impl NetworkProbe {
    fn up(&self) -> (bool, bool) {
        (
            self.store.status == DependencyStatus::Up,
            self.chain.status == DependencyStatus::Up,
        )
    }
}

/// One probe result shared by /health, /ready and the /metrics gauges: every
/// served network, the primary first.
#[derive(Debug)]
pub struct Snapshot {
    pub networks: Vec<NetworkProbe>,
}

/// Every network's probes, concurrently, uncached.
pub async fn snapshot(app: &AppState) -> Snapshot {
    let lanes = app.facilitator.lanes();
    let probes = futures::future::join_all(lanes.iter().map(dependencies)).await;
    Snapshot {
        networks: lanes
            .iter()
            .zip(probes)
            .map(|(lane, (store, chain))| NetworkProbe {
                network: lane.network,
                store_backend: lane.store.backend(),
                store,
                chain,
            })
            .collect(),
    }
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
        let snap = Arc::new(snapshot(app).await);
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

/// One network as `/health` shows it.
fn network_json(
    p: &NetworkProbe,
    detail: bool,
    now: i64,
) -> (serde_json::Value, serde_json::Value) {
    let mut chain_json = shown(&p.chain, detail);
    chain_json["network"] = json!(p.network.caip2());
    if let Some(tip) = p.chain.tip {
        chain_json["tip"] = serde_json::to_value(tip).unwrap_or_default();
        chain_json["tipAgeSeconds"] = json!((now - tip.time).max(0));
    }
    let mut store_json = shown(&p.store, detail);
    store_json["backend"] = json!(p.store_backend);
    (store_json, chain_json)
}

/// `healthy` when every dependency of every network answers, `unhealthy`
/// when none does, `degraded` in between.
fn overall(snap: &Snapshot) -> &'static str {
    let ups: Vec<bool> = snap
        .networks
        .iter()
        .flat_map(|p| {
            let (s, c) = p.up();
            [s, c]
        })
        .collect();
    if ups.iter().all(|u| *u) {
        "healthy"
    } else if ups.iter().any(|u| *u) {
        "degraded"
    } else {
        "unhealthy"
    }
}

pub async fn health(
    State(app): State<AppState>,
    Extension(probes): Extension<Arc<Probes>>,
    req: Request,
) -> Response {
    let detail = super::admin::presents_admin_key(&app, &req);
    let snap = probes.get(&app).await;
    let status = overall(&snap);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut networks = serde_json::Map::new();
    let mut primary = None;
    for p in &snap.networks {
        let (store_json, chain_json) = network_json(p, detail, now);
        let net_status = match p.up() {
            (true, true) => "healthy",
            (false, false) => "unhealthy",
            _ => "degraded",
        };
        networks.insert(
            p.network.caip2().to_owned(),
            json!({ "status": net_status, "store": store_json.clone(), "chain": chain_json.clone() }),
        );
        primary.get_or_insert((store_json, chain_json));
    }
    let (store_json, chain_json) = primary.unwrap_or_default();
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": app.started.elapsed().as_secs(),
        "timestamp": super::error::now_rfc3339(),
        // The primary network's dependencies (as before several networks),
        // then every network's.
        "dependencies": { "store": store_json, "chain": chain_json },
        "networks": networks,
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
    let several = snap.networks.len() > 1;
    for p in &snap.networks {
        for (name, h) in [("store", &p.store), ("chain", &p.chain)] {
            if h.status != DependencyStatus::Up {
                let name = if several {
                    format!("{} {name}", p.network.caip2())
                } else {
                    name.to_owned()
                };
                reasons.push(match (&h.error, detail) {
                    (Some(e), true) => format!("{name} down: {}", crate::redact::urls_in(e)),
                    _ => format!("{name} down"),
                });
            }
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
