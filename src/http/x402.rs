//! The x402 facilitator routes: `POST /verify`, `POST /settle`,
//! `GET /status/{txid}`, `POST /status`, `GET /supported`.
//!
//! Translation only: the pipeline is `scheme::exact_cardano`, the journal
//! is `settle`, the arbiter is the store. Business outcomes are HTTP 200
//! (`isValid:false` / `success:false` with a reason code); a body that is not
//! an x402 request is 400; anything retryable (store or chain unavailable,
//! settlement paused) is 503 with `Retry-After`.
//!
//! Project-specific reason codes (no reference code fits):
//! `exact_cardano_facilitator_store_unavailable` (the reservation and journal
//! store cannot be reached: fail closed, retry) and `settlement_paused` (an
//! operator paused settlement); and, for faults inside this service, the
//! retryable `settlement_state_conflict` (the journal record vanished under a
//! transition) and `settlement_internal_error` (the settlement task died).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::app::AppState;
use crate::cardano::TxId;
use crate::cardano::tx::ParsedTx;
use crate::protocol::parse::{EnvelopeError, ParsedRequest, parse_request};
use crate::protocol::reason::Reason;
use crate::protocol::types::{SettleResponse, VerifyResponse};
use crate::scheme::exact_cardano::{self, VerifyOutcome};
use crate::settle::{Begin, Payment, SettleAnswer};
use crate::store::{IdempotencyOutcome, ReserveOutcome, SettlementRecord, SettlementState};

pub const STORE_UNAVAILABLE: &str = "exact_cardano_facilitator_store_unavailable";
pub const SETTLEMENT_PAUSED: &str = "settlement_paused";

fn with_retry_after(mut resp: Response, secs: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn verify_json(status: StatusCode, body: VerifyResponse) -> Response {
    let resp = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        with_retry_after(resp, 1)
    } else {
        resp
    }
}

/// The network name in the request's own version (CAIP-2 for v2, v1 names for v1).
fn network_label(app: &AppState, req: Option<&ParsedRequest>) -> String {
    let n = app.chain.network();
    match req {
        Some(ParsedRequest::V1(_)) => n.v1_name().to_owned(),
        _ => n.caip2().to_owned(),
    }
}

fn count_verify(result: &'static str, reason: &str) {
    metrics::counter!("x402_verify_total", "result" => result, "reason" => reason.to_owned())
        .increment(1);
}

/// `POST /verify`.
pub async fn verify(State(app): State<AppState>, body: Bytes) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(e) => return envelope_verify_error(e),
    };
    match exact_cardano::verify(&app.verify_ctx, &req).await {
        VerifyOutcome::Valid(p) => {
            let ttl = std::time::Duration::from_secs(app.settings.chain.reservation.ttl_seconds);
            match app.store.reserve(&p.inputs, &p.tx_id, ttl).await {
                Ok(ReserveOutcome::Reserved) => {
                    count_verify("valid", "");
                    tracing::info!(tx = %p.tx_id, payer = %p.payer, amount = p.amount, asset = %p.asset, "payment verified; inputs reserved");
                    verify_json(StatusCode::OK, VerifyResponse::valid(p.payer.clone()))
                }
                Ok(ReserveOutcome::Conflict { input, holder }) => {
                    count_verify("invalid", Reason::InputNotAvailable.as_str());
                    tracing::info!(tx = %p.tx_id, input = %input, holder = %holder, "input reserved by another pending payment");
                    verify_json(
                        StatusCode::OK,
                        VerifyResponse::invalid(
                            Reason::InputNotAvailable.as_str(),
                            format!("input {input} is held by a pending payment"),
                            Some(p.payer.clone()),
                        ),
                    )
                }
                Err(e) => {
                    count_verify("unavailable", STORE_UNAVAILABLE);
                    tracing::error!(error = %e, "reservation store unavailable; failing closed");
                    verify_json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        VerifyResponse::invalid(
                            STORE_UNAVAILABLE,
                            "the reservation store is unavailable; retry shortly",
                            None,
                        ),
                    )
                }
            }
        }
        outcome @ VerifyOutcome::Invalid { .. } => {
            count_verify(
                "invalid",
                outcome.reason().map(|r| r.as_str()).unwrap_or(""),
            );
            verify_json(StatusCode::OK, outcome.to_response())
        }
        outcome @ VerifyOutcome::Unavailable { .. } => {
            count_verify(
                "unavailable",
                outcome.reason().map(|r| r.as_str()).unwrap_or(""),
            );
            verify_json(StatusCode::SERVICE_UNAVAILABLE, outcome.to_response())
        }
    }
}

fn envelope_verify_error(e: EnvelopeError) -> Response {
    let reason = e.reason();
    count_verify(
        if e.is_bad_request() {
            "bad_request"
        } else {
            "invalid"
        },
        reason.as_str(),
    );
    let message = match &e {
        EnvelopeError::Malformed(m) => m.clone(),
        EnvelopeError::Rejected { message, .. } => message.clone(),
    };
    let status = if e.is_bad_request() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    verify_json(
        status,
        VerifyResponse::invalid(reason.as_str(), message, None),
    )
}

/// SHA-256 hex of a value's JSON text. serde_json maps are ordered, so the
/// text (and the digest) is canonical for equal values.
fn json_digest<T: serde::Serialize>(value: &T) -> String {
    let v = serde_json::to_value(value).unwrap_or(Value::Null);
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// Digest of the payment requirements: the settlement's policy identity.
fn requirements_digest(req: &ParsedRequest) -> String {
    match req {
        ParsedRequest::V2(r) => json_digest(&r.payment_requirements),
        ParsedRequest::V1(r) => json_digest(&r.payment_requirements),
    }
}

/// Digest of the payment payload, for the payment-identifier extension.
fn payload_digest(req: &ParsedRequest) -> String {
    match req {
        ParsedRequest::V2(r) => json_digest(&r.payment_payload),
        ParsedRequest::V1(r) => json_digest(&r.payment_payload),
    }
}

struct SettleOut {
    status: StatusCode,
    body: SettleResponse,
}

impl SettleOut {
    fn ok(body: SettleResponse) -> Self {
        SettleOut {
            status: StatusCode::OK,
            body,
        }
    }
    fn into_response(self) -> Response {
        let resp = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            with_retry_after(resp, 1)
        } else {
            resp
        }
    }
}

fn settle_failure(
    network: String,
    transaction: String,
    reason: &str,
    message: impl Into<String>,
    payer: Option<String>,
) -> SettleResponse {
    SettleResponse {
        success: false,
        transaction,
        network,
        payer,
        error_reason: Some(reason.to_owned()),
        error_message: Some(message.into()),
        extensions: None,
    }
}

fn answer_to_out(network: String, answer: SettleAnswer) -> SettleOut {
    let payer_of = |r: &SettlementRecord| (!r.payer.is_empty()).then(|| r.payer.clone());
    match answer {
        SettleAnswer::Settled {
            record,
            status,
            confirmations,
        } => SettleOut::ok(SettleResponse {
            success: true,
            transaction: record.tx_id.to_hex(),
            network,
            payer: payer_of(&record),
            error_reason: None,
            error_message: None,
            extensions: Some(json!({ "status": status, "confirmations": confirmations })),
        }),
        SettleAnswer::Pending { record } => {
            let mut body = settle_failure(
                network,
                record.tx_id.to_hex(),
                Reason::SettlementPending.as_str(),
                "submitted; the requested confirmations were not reached yet: retry /settle or poll /status",
                payer_of(&record),
            );
            body.extensions = Some(
                json!({ "status": "pending", "confirmations": record.confirmations.unwrap_or(0) }),
            );
            SettleOut::ok(body)
        }
        SettleAnswer::Failed {
            record,
            reason,
            message,
        } => {
            let broadcast = record.submissions > 0;
            SettleOut::ok(settle_failure(
                network,
                if broadcast {
                    record.tx_id.to_hex()
                } else {
                    String::new()
                },
                reason,
                message,
                payer_of(&record),
            ))
        }
        SettleAnswer::Duplicate { tx_id } => SettleOut::ok(settle_failure(
            network,
            tx_id.to_hex(),
            Reason::DuplicateSettlement.as_str(),
            "this transaction is already being settled under different payment requirements",
            None,
        )),
        SettleAnswer::Unavailable { reason, message } => SettleOut {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: settle_failure(network, String::new(), reason, message, None),
        },
        SettleAnswer::Paused => SettleOut {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: settle_failure(
                network,
                String::new(),
                SETTLEMENT_PAUSED,
                "settlement is paused by the operator; retry later",
                None,
            ),
        },
    }
}

/// `POST /settle`.
pub async fn settle(State(app): State<AppState>, body: Bytes) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(e) => {
            let network = match &e {
                EnvelopeError::Rejected {
                    network: Some(n), ..
                } => n.clone(),
                _ => app.chain.network().caip2().to_owned(),
            };
            let status = if e.is_bad_request() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            let message = match &e {
                EnvelopeError::Malformed(m) => m.clone(),
                EnvelopeError::Rejected { message, .. } => message.clone(),
            };
            metrics::counter!("x402_settle_total", "result" => "rejected").increment(1);
            return SettleOut {
                status,
                body: settle_failure(network, String::new(), e.reason().as_str(), message, None),
            }
            .into_response();
        }
    };
    let network = network_label(&app, Some(&req));

    // payment-identifier idempotency (v2 extension).
    let idem = match &req {
        ParsedRequest::V2(r) => match r.payment_payload.payment_identifier() {
            None => None,
            Some(Ok(id)) => Some(id.to_owned()),
            Some(Err(e)) => {
                return SettleOut::ok(settle_failure(
                    network,
                    String::new(),
                    Reason::InvalidPayloadShape.as_str(),
                    e.to_string(),
                    None,
                ))
                .into_response();
            }
        },
        ParsedRequest::V1(_) => None,
    };
    let idem_ttl = std::time::Duration::from_secs(app.settings.settlement.retention_seconds);
    let digest = payload_digest(&req);
    if let Some(id) = &idem {
        match app.store.idempotency_begin(id, &digest, idem_ttl).await {
            Ok(IdempotencyOutcome::Stored(answer)) => {
                if let Ok(body) = serde_json::from_str::<SettleResponse>(&answer) {
                    return SettleOut::ok(body).into_response();
                }
            }
            Ok(IdempotencyOutcome::Mismatch) => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "payment_identifier_conflict",
                    "this payment-identifier was already used with a different payment payload",
                )
                .into_response();
            }
            Ok(IdempotencyOutcome::New | IdempotencyOutcome::InProgress) => {}
            Err(e) => {
                return answer_to_out(
                    network,
                    SettleAnswer::Unavailable {
                        reason: STORE_UNAVAILABLE,
                        message: e.to_string(),
                    },
                )
                .into_response();
            }
        }
    }

    let out = settle_inner(&app, &req, network).await;
    if let Some(id) = &idem {
        let keep = out.status == StatusCode::OK
            && (out.body.success
                || out.body.error_reason.as_deref() != Some(Reason::SettlementPending.as_str()));
        if keep {
            if let Ok(text) = serde_json::to_string(&out.body) {
                let _ = app
                    .store
                    .idempotency_complete(id, &digest, &text, idem_ttl)
                    .await;
            }
        } else {
            let _ = app.store.idempotency_abort(id, &digest).await;
        }
    }
    out.into_response()
}

async fn settle_inner(app: &AppState, req: &ParsedRequest, network: String) -> SettleOut {
    if app.settlement.is_paused() {
        return answer_to_out(network, SettleAnswer::Paused);
    }
    // Pure stages first: a malformed payment never touches the journal.
    let env = match exact_cardano::check_envelope_with(
        app.verify_ctx.network,
        &app.verify_ctx.limits,
        &app.verify_ctx.masumi,
        req,
    ) {
        Ok(e) => e,
        Err((reason, message)) => {
            return SettleOut::ok(settle_failure(
                network,
                String::new(),
                reason.as_str(),
                message,
                None,
            ));
        }
    };
    let (tx, signers) = match exact_cardano::decode_and_check_signatures(&env) {
        Ok(decoded) => decoded,
        Err((reason, message)) => {
            return SettleOut::ok(settle_failure(
                network,
                String::new(),
                reason.as_str(),
                message,
                None,
            ));
        }
    };

    let tx_id = tx.id();
    let requirements_digest = requirements_digest(req);
    let q = req.requirements();
    let draft_payment = Payment {
        tx_id,
        tx_cbor: std::sync::Arc::new(env.tx_bytes.clone()),
        inputs: Vec::new(),
        payer: String::new(),
        pay_to: q.pay_to.to_owned(),
        asset: q.asset.to_owned(),
        amount: q.amount.to_owned(),
        network: env.network,
        requirements_digest: requirements_digest.clone(),
        required_confirmations: env.l1_confirmations,
        ttl_slot: None,
    };
    let draft = app.settlement.draft(&draft_payment);
    let claimed = match app.settlement.begin(draft).await {
        Ok(Begin::Claimed(r)) => r,
        Ok(Begin::Existing(existing)) => {
            tracing::info!(tx = %tx_id, state = existing.state.as_str(), "settle for a known transaction; answering from the journal");
            let answer = app.settlement.resume(existing, &requirements_digest).await;
            return answer_to_out(network, answer);
        }
        Err(e) => {
            return answer_to_out(
                network,
                SettleAnswer::Unavailable {
                    reason: STORE_UNAVAILABLE,
                    message: e.to_string(),
                },
            );
        }
    };

    // The rest of the pipeline (chain stages), on the transaction already decoded
    // and signature-checked above; its own reservation counts as free.
    let verified = match exact_cardano::verify_checked(&app.verify_ctx, env, tx, signers).await {
        VerifyOutcome::Valid(p) => p,
        VerifyOutcome::Invalid {
            reason,
            message,
            payer,
        } => {
            let _ = app
                .settlement
                .abandon(&claimed, false, &format!("{}: {message}", reason.as_str()))
                .await;
            metrics::counter!("x402_settle_total", "result" => "invalid").increment(1);
            return SettleOut::ok(settle_failure(
                network,
                String::new(),
                reason.as_str(),
                message,
                payer,
            ));
        }
        VerifyOutcome::Unavailable { reason, message } => {
            let _ = app
                .settlement
                .abandon(&claimed, true, reason.as_str())
                .await;
            return SettleOut {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: settle_failure(network, String::new(), reason.as_str(), message, None),
            };
        }
    };
    let ttl = std::time::Duration::from_secs(app.settings.chain.reservation.ttl_seconds);
    match app
        .store
        .reserve(&verified.inputs, &verified.tx_id, ttl)
        .await
    {
        Ok(ReserveOutcome::Reserved) => {}
        Ok(ReserveOutcome::Conflict { input, holder }) => {
            tracing::info!(tx = %tx_id, input = %input, holder = %holder, "settle: input held by another pending payment");
            let _ = app
                .settlement
                .abandon(&claimed, true, "input reserved by another payment")
                .await;
            return SettleOut::ok(settle_failure(
                network,
                String::new(),
                Reason::InputNotAvailable.as_str(),
                format!("input {input} is held by a pending payment"),
                Some(verified.payer.clone()),
            ));
        }
        Err(e) => {
            let _ = app
                .settlement
                .abandon(&claimed, true, STORE_UNAVAILABLE)
                .await;
            return answer_to_out(
                network,
                SettleAnswer::Unavailable {
                    reason: STORE_UNAVAILABLE,
                    message: e.to_string(),
                },
            );
        }
    }

    let mut record = claimed;
    record.payer = verified.payer.clone();
    record.pay_to = verified.pay_to.clone();
    record.inputs = verified.inputs.clone();
    record.ttl_slot = Some(verified.ttl_slot);
    record.expires_at = app.settlement.expiry_ms(record.ttl_slot);
    let tx_bytes = std::sync::Arc::new(verified.tx.raw().to_vec());
    let answer = app.settlement.submit_and_wait(record, tx_bytes).await;
    answer_to_out(network, answer)
}

/// `GET /supported`.
pub async fn supported(State(app): State<AppState>) -> Response {
    let mut s = exact_cardano::supported_response(app.chain.network());
    s.extensions = vec!["payment-identifier".to_owned()];
    Json(s).into_response()
}

fn rfc3339_ms(ms: Option<i64>) -> Value {
    ms.and_then(|ms| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
    })
    .and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map(Value::String)
    .unwrap_or(Value::Null)
}

async fn status_of(app: &AppState, tx_id: TxId) -> Response {
    let rec = match app.store.get(&tx_id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "transaction": tx_id.to_hex(), "network": app.chain.network().caip2(), "status": "not_found" })),
            )
                .into_response();
        }
        Err(e) => return ApiError::unavailable(STORE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let rec = app.settlement.refresh(rec).await;
    let confirmations = match rec.state {
        SettlementState::Confirmed | SettlementState::Submitted | SettlementState::Pending => {
            rec.confirmations.unwrap_or(0)
        }
        _ => 0,
    };
    let error_reason = match rec.state {
        SettlementState::Failed | SettlementState::Expired => rec.error.clone(),
        _ => None,
    };
    Json(json!({
        "transaction": rec.tx_id.to_hex(),
        "network": rec.network,
        "status": rec.state.as_str(),
        "confirmations": confirmations,
        "requiredConfirmations": rec.required_confirmations,
        "payer": rec.payer,
        "payTo": rec.pay_to,
        "asset": rec.asset,
        "amount": rec.amount,
        "submittedAt": rfc3339_ms(rec.submitted_at),
        "confirmedAt": rfc3339_ms(rec.confirmed_at),
        "block": rec.block_hash,
        "blockHeight": rec.block_height,
        "errorReason": error_reason,
    }))
    .into_response()
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
    let bytes = match base64::engine::general_purpose::STANDARD.decode(t.trim()) {
        Ok(b) if b.len() <= app.verify_ctx.limits.max_tx_bytes => b,
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
