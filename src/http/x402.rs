//! The x402 facilitator routes: `POST /verify`, `POST /settle`,
//! `GET /status/{txid}`, `POST /status`, `GET /supported`.
//!
//! Translation only: parse the body, call one use case of
//! [`crate::facilitator::Facilitator`], map its typed answer to JSON and a
//! status code. Business outcomes are HTTP 200 (`isValid:false` /
//! `success:false` with a reason code); a body that is not an x402 request is
//! 400; anything retryable (store or chain unavailable, settlement paused) is
//! 503 with `Retry-After`; a payment identifier reused with another request,
//! or resent while its first request is still in flight, is 409.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::guard::Caller;
use super::state::AppState;
use crate::cardano::TxId;
use crate::cardano::tx::ParsedTx;
use crate::facilitator::{self, Answer, IdempotencyError, SettleResult, StatusAnswer};
use crate::protocol::parse::{EnvelopeError, parse_request};
use crate::protocol::reason::Reason;
use crate::protocol::types::{SettleResponse, VerifyResponse};

/// The answer class as an HTTP status (503 carries `Retry-After: 1`).
fn respond<T: Serialize>(answer: Answer<T>) -> Response {
    let (status, body) = match answer {
        Answer::Done(b) => (StatusCode::OK, b),
        Answer::Retry(b) => (StatusCode::SERVICE_UNAVAILABLE, b),
        Answer::BadRequest(b) => (StatusCode::BAD_REQUEST, b),
    };
    let mut resp = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// The tenant scope of the caller (an API key's identity), from the guard.
fn tenant(app: &AppState, caller: Option<&axum::Extension<Caller>>) -> Option<String> {
    caller.and_then(|c| app.guard.tenant_of(&c.0))
}

fn envelope_class<T>(e: &EnvelopeError, body: T) -> Answer<T> {
    if e.is_bad_request() {
        Answer::BadRequest(body)
    } else {
        Answer::Done(body)
    }
}

fn envelope_message(e: &EnvelopeError) -> String {
    match e {
        EnvelopeError::Malformed(m) => m.clone(),
        EnvelopeError::Rejected { message, .. } => message.clone(),
    }
}

/// `POST /verify`.
pub async fn verify(
    State(app): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(e) => {
            let reason = e.reason();
            metrics::counter!("x402_verify_total", "result" => if e.is_bad_request() { "bad_request" } else { "invalid" }, "reason" => reason.as_str()).increment(1);
            let body = VerifyResponse::invalid(reason.as_str(), envelope_message(&e), None);
            return respond(envelope_class(&e, body));
        }
    };
    let tenant = tenant(&app, caller.as_ref());
    let who = facilitator::Caller {
        tenant: tenant.as_deref(),
    };
    respond(app.facilitator.verify(&req, who).await)
}

/// `POST /settle`.
pub async fn settle(
    State(app): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    body: Bytes,
) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(e) => {
            let network = match &e {
                EnvelopeError::Rejected {
                    network: Some(n), ..
                } => n.clone(),
                _ => app.facilitator.network_label(None),
            };
            metrics::counter!("x402_settle_total", "result" => "rejected").increment(1);
            let body = SettleResponse {
                success: false,
                transaction: String::new(),
                network,
                payer: None,
                error_reason: Some(e.reason().as_str().to_owned()),
                error_message: Some(envelope_message(&e)),
                extra: None,
                extensions: None,
            };
            return respond(envelope_class(&e, body));
        }
    };
    let tenant = tenant(&app, caller.as_ref());
    let who = facilitator::Caller {
        tenant: tenant.as_deref(),
    };
    match app.facilitator.settle(&req, who).await {
        SettleResult::Answer(a) => respond(a),
        SettleResult::Idempotency(IdempotencyError::Conflict) => ApiError::new(
            StatusCode::CONFLICT,
            "payment_identifier_conflict",
            "this payment-identifier was already used with a different payment payload or different requirements",
        )
        .into_response(),
        SettleResult::Idempotency(IdempotencyError::InFlight) => ApiError::new(
            StatusCode::CONFLICT,
            "payment_identifier_in_flight",
            "a request with this payment-identifier is still being processed; retry shortly",
        )
        .with_retry_after(1)
        .into_response(),
    }
}

/// `GET /supported`.
pub async fn supported(State(app): State<AppState>) -> Response {
    Json(app.facilitator.supported()).into_response()
}

async fn status_of(app: &AppState, tx_id: TxId) -> Response {
    match app.facilitator.status(tx_id).await {
        StatusAnswer::Found(v) => Json(v).into_response(),
        StatusAnswer::NotFound(v) => (StatusCode::NOT_FOUND, Json(v)).into_response(),
        StatusAnswer::Unavailable(m) => {
            ApiError::unavailable(Reason::StoreUnavailable.as_str(), m).into_response()
        }
    }
}

/// `GET /status/{txid}`.
pub async fn status_get(State(app): State<AppState>, Path(txid): Path<String>) -> Response {
    match txid.parse::<TxId>() {
        Ok(id) => status_of(&app, id).await,
        Err(_) => ApiError::bad_request("invalid_transaction", "expected a 64-hex transaction id")
            .into_response(),
    }
}

/// `POST /status` with `{"transaction": "<tx id hex or base64 signed tx>"}`.
pub async fn status_post(State(app): State<AppState>, body: Bytes) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::bad_request("invalid_payload", format!("body is not JSON: {e}"))
                .into_response();
        }
    };
    let Some(t) = v.get("transaction").and_then(Value::as_str) else {
        return ApiError::bad_request(
            "invalid_payload",
            "expected {\"transaction\": \"<tx id or base64 transaction>\"}",
        )
        .into_response();
    };
    if let Ok(id) = t.parse::<TxId>() {
        return status_of(&app, id).await;
    }
    use base64::Engine;
    let limit = app.facilitator.verify_context().limits.max_tx_bytes;
    let bytes = match base64::engine::general_purpose::STANDARD.decode(t.trim()) {
        Ok(b) if b.len() <= limit => b,
        _ => {
            return ApiError::bad_request(
                "invalid_transaction",
                "transaction is neither a tx id nor a base64 transaction",
            )
            .into_response();
        }
    };
    match ParsedTx::decode(&bytes) {
        Ok(tx) => status_of(&app, tx.id()).await,
        Err(e) => ApiError::bad_request(
            "invalid_transaction",
            format!("transaction could not be decoded: {e}"),
        )
        .into_response(),
    }
}
