//! `GET /health` (liveness with dependency detail) and `GET /ready`
//! (readiness: may this replica take payments right now?).
//!
//! | status | HTTP | meaning |
//! |---|---|---|
//! | healthy | 200 | store and chain both answer |
//! | degraded | 200 | one of them does not (payments fail closed meanwhile) |
//! | unhealthy | 503 | neither answers |

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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

/// Both probes, concurrently.
pub async fn dependencies(app: &AppState) -> (DependencyHealth, DependencyHealth) {
    tokio::join!(probe(app.store.health()), probe(app.chain.health()))
}

pub async fn health(State(app): State<AppState>) -> Response {
    let (store, chain) = dependencies(&app).await;
    let up = |h: &DependencyHealth| h.status == DependencyStatus::Up;
    let status = match (up(&store), up(&chain)) {
        (true, true) => "healthy",
        (false, false) => "unhealthy",
        _ => "degraded",
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let tip_age = chain.tip.map(|t| (now - t.time).max(0));
    let mut chain_json = serde_json::to_value(&chain).unwrap_or_default();
    if let Some(obj) = chain_json.as_object_mut() {
        obj.insert("network".into(), json!(app.chain.network().caip2()));
        if let Some(age) = tip_age {
            obj.insert("tipAgeSeconds".into(), json!(age));
        }
    }
    let mut store_json = serde_json::to_value(&store).unwrap_or_default();
    if let Some(obj) = store_json.as_object_mut() {
        obj.insert("backend".into(), json!(app.store.backend()));
    }
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": app.started.elapsed().as_secs(),
        "timestamp": super::error::now_rfc3339(),
        "dependencies": { "store": store_json, "chain": chain_json },
    });
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

pub async fn ready(State(app): State<AppState>) -> Response {
    let mut reasons = Vec::new();
    if app.is_draining() {
        reasons.push("shutting down".to_owned());
    }
    let (store, chain) = dependencies(&app).await;
    if store.status != DependencyStatus::Up {
        reasons.push(format!("store down: {}", store.error.unwrap_or_default()));
    }
    if chain.status != DependencyStatus::Up {
        reasons.push(format!("chain down: {}", chain.error.unwrap_or_default()));
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
