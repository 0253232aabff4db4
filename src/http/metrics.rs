//! Prometheus exposition. The recorder is process-global (the `metrics`
//! facade has one), so it is installed once and shared by every App in the
//! process; tests that build several apps read the same registry.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process-wide handle, installing the recorder on first use.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Refresh the gauges that describe dependencies and the journal, then render.
pub async fn render(
    axum::extract::State(app): axum::extract::State<super::state::AppState>,
) -> Response {
    let _ = handle();
    refresh_gauges(&app).await;
    let text = handle().map(|h| h.render()).unwrap_or_default();
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

async fn refresh_gauges(app: &super::state::AppState) {
    let snap = super::health::snapshot(app).await;
    for (lane, probe) in app.facilitator.lanes().iter().zip(&snap.networks) {
        refresh_network(lane, probe).await;
    }
}

/// The gauges of one network, labelled with its CAIP-2 id.
async fn refresh_network(lane: &crate::facilitator::Lane, probe: &super::health::NetworkProbe) {
    use crate::chain::DependencyStatus;
    use crate::store::SettlementState;
    let network = lane.network.caip2();
    let (store, chain) = (&probe.store, &probe.chain);
    let up = |s: DependencyStatus| if s == DependencyStatus::Up { 1.0 } else { 0.0 };
    metrics::gauge!("store_up", "network" => network).set(up(store.status));
    // Round-trip of the store's health probe (a Redis PING), for dashboards.
    metrics::gauge!("store_ping_seconds", "network" => network).set(store.latency_ms / 1000.0);
    metrics::gauge!("chain_up", "network" => network).set(up(chain.status));
    if let Some(tip) = chain.tip {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        metrics::gauge!("chain_tip_age_seconds", "network" => network)
            .set((now - tip.time).max(0) as f64);
    }
    if store.status != DependencyStatus::Up {
        return;
    }
    if let Ok(n) = lane.store.reservations_active().await {
        metrics::gauge!("x402_reservations_active", "network" => network).set(n as f64);
    }
    if let Ok(counts) = lane.store.count_by_state().await {
        for (state, count) in counts {
            metrics::gauge!("x402_settlements", "network" => network, "state" => state.as_str())
                .set(count as f64);
        }
    }
    let mut oldest: Option<i64> = None;
    for state in [
        SettlementState::Submitting,
        SettlementState::Submitted,
        SettlementState::Pending,
    ] {
        if let Ok(page) = lane.store.list(Some(state), None, 200).await {
            for r in page.records {
                oldest = Some(oldest.map_or(r.created_at, |o| o.min(r.created_at)));
            }
        }
    }
    let age = oldest
        .map(|o| ((crate::settle::now_ms() - o) as f64 / 1000.0).max(0.0))
        .unwrap_or(0.0);
    metrics::gauge!("x402_settlements_oldest_unconfirmed_seconds", "network" => network).set(age);
}
