//! The operator's switches under `/admin`: pause and resume settlement,
//! inspect the journal, force a reconciliation pass.
//!
//! Off unless `admin.apiKey` is set. Every call needs `X-Admin-Key` (compared
//! in constant time over SHA-256 digests, so length leaks nothing) and, when
//! `admin.allowedIps` is not empty, a client address on that list. Every
//! action is logged with the caller's address.

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;
use crate::cardano::TxId;
use crate::store::SettlementState;

/// Who called, for the audit log line.
#[derive(Clone, Debug)]
struct AdminCaller(String);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/settlement", get(settlement_state))
        .route("/settlement/pause", post(pause))
        .route("/settlement/resume", post(resume))
        .route("/settlements", get(list))
        .route("/settlements/{txid}", get(show))
        .route("/reconcile", post(reconcile))
}

/// Key and address check for every admin route.
pub async fn authorize(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(expected) = app
        .settings
        .admin
        .api_key
        .as_ref()
        .filter(|k| !k.is_empty())
    else {
        return ApiError::not_found("The admin API is disabled (admin.apiKey is not set)")
            .into_response();
    };
    let ip = super::guard::client_ip(&req, app.settings.server.trust_proxy);
    let caller = ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into());
    if !app.settings.admin.allowed_ips.is_empty() {
        let allowed = ip.is_some_and(|ip| app.settings.admin.allowed_ips.contains(&ip));
        if !allowed {
            tracing::warn!(caller = %caller, path = %req.uri().path(), "admin call from an address not on admin.allowedIps");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "This address may not use the admin API",
            )
            .into_response();
        }
    }
    let presented = req
        .headers()
        .get("x-admin-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let a: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(expected.expose().as_bytes()).into();
    if presented.is_empty() || !bool::from(a.ct_eq(&b)) {
        tracing::warn!(caller = %caller, path = %req.uri().path(), "admin call with a missing or wrong key");
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid X-Admin-Key is required",
        )
        .into_response();
    }
    req.extensions_mut().insert(AdminCaller(caller));
    next.run(req).await
}

/// Whether `req` carries the admin key from an allowed address: such a caller
/// may see error detail elsewhere (/health, /ready). False when the admin API
/// is off.
pub fn presents_admin_key(app: &AppState, req: &Request) -> bool {
    let Some(expected) = app
        .settings
        .admin
        .api_key
        .as_ref()
        .filter(|k| !k.is_empty())
    else {
        return false;
    };
    if !app.settings.admin.allowed_ips.is_empty() {
        let ip = super::guard::client_ip(req, app.settings.server.trust_proxy);
        let allowed = ip.is_some_and(|ip| app.settings.admin.allowed_ips.contains(&ip));
        if !allowed {
            return false;
        }
    }
    let presented = req
        .headers()
        .get("x-admin-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let a: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(expected.expose().as_bytes()).into();
    !presented.is_empty() && bool::from(a.ct_eq(&b))
}

fn caller_of(req_caller: &Option<axum::Extension<AdminCaller>>) -> String {
    req_caller
        .as_ref()
        .map(|c| c.0.0.clone())
        .unwrap_or_default()
}

async fn settlement_state(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "paused": app.facilitator.is_paused() }))
}

/// Pause or resume settlement on every replica (the switch is in the store;
/// the others read it within one reconcile interval).
async fn switch(
    app: &AppState,
    caller: &Option<axum::Extension<AdminCaller>>,
    paused: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    app.facilitator.set_paused(paused).await.map_err(|e| {
        ApiError::unavailable(
            crate::protocol::reason::Reason::StoreUnavailable.as_str(),
            e.to_string(),
        )
    })?;
    if paused {
        tracing::warn!(admin_action = "pause_settlement", caller = %caller_of(caller), "admin: settlement paused on every replica");
    } else {
        tracing::warn!(admin_action = "resume_settlement", caller = %caller_of(caller), "admin: settlement resumed on every replica");
    }
    Ok(Json(json!({ "paused": app.facilitator.is_paused() })))
}

async fn pause(
    State(app): State<AppState>,
    caller: Option<axum::Extension<AdminCaller>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    switch(&app, &caller, true).await
}

async fn resume(
    State(app): State<AppState>,
    caller: Option<axum::Extension<AdminCaller>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    switch(&app, &caller, false).await
}

#[derive(Deserialize)]
struct ListQuery {
    /// CAIP-2 id of the network whose journal to list (default: the first served).
    network: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(app): State<AppState>,
    caller: Option<axum::Extension<AdminCaller>>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(
            SettlementState::parse(s)
                .ok_or_else(|| ApiError::bad_request("invalid_state", format!("unknown state {s:?}; one of claimed, submitting, submitted, pending, confirmed, failed, expired, rejected")))?,
        ),
    };
    // A cursor the store could not read is the caller's mistake (400), not a
    // store failure (503): check it here, and read an empty one as none.
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    if let Some(c) = cursor
        && crate::facilitator::Facilitator::parse_cursor(c).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "cursor is not a nextCursor this service handed out",
        ));
    }
    let network = match q.network.as_deref().filter(|n| !n.is_empty()) {
        None => None,
        Some(n) => Some(crate::cardano::Network::from_caip2(n).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_network",
                format!("unknown network {n:?}; a CAIP-2 id such as cardano:preprod"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let page = app
        .facilitator
        .list_settlements(network, state, cursor, limit)
        .await
        .map_err(|e| {
            ApiError::unavailable(
                crate::protocol::reason::Reason::StoreUnavailable.as_str(),
                e.to_string(),
            )
        })?
        .ok_or_else(|| {
            ApiError::bad_request("invalid_network", "this network is not served here")
        })?;
    tracing::info!(admin_action = "list_settlements", caller = %caller_of(&caller), state = ?state, count = page.records.len(), "admin: list settlements");
    let records: Vec<serde_json::Value> = page.records.iter().map(redact_record).collect();
    Ok(Json(
        json!({ "records": records, "nextCursor": page.next_cursor }),
    ))
}

async fn show(
    State(app): State<AppState>,
    caller: Option<axum::Extension<AdminCaller>>,
    Path(txid): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tx_id: TxId = txid.parse().map_err(|_| {
        ApiError::bad_request("invalid_transaction_id", "expected a 64-hex transaction id")
    })?;
    let rec = app
        .facilitator
        .settlement_record(&tx_id)
        .await
        .map_err(|e| {
            ApiError::unavailable(
                crate::protocol::reason::Reason::StoreUnavailable.as_str(),
                e.to_string(),
            )
        })?
        .ok_or_else(|| ApiError::not_found("No settlement for this transaction"))?;
    tracing::info!(admin_action = "show_settlement", caller = %caller_of(&caller), tx = %tx_id, "admin: show settlement");
    let mut v = serde_json::to_value(&rec).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("paused".into(), json!(app.facilitator.is_paused()));
    }
    Ok(Json(v))
}

/// Records in listings omit the transaction bytes (they can be large).
fn redact_record(r: &crate::store::SettlementRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("txCborB64");
    }
    v
}

async fn reconcile(
    State(app): State<AppState>,
    caller: Option<axum::Extension<AdminCaller>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    tracing::warn!(admin_action = "reconcile", caller = %caller_of(&caller), "admin: reconciliation pass requested");
    let n = app.facilitator.reconcile_now().await.map_err(|e| {
        ApiError::unavailable(
            crate::protocol::reason::Reason::StoreUnavailable.as_str(),
            e.to_string(),
        )
    })?;
    Ok(Json(json!({ "examined": n })))
}
