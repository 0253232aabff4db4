//! Errors that are not x402 business outcomes, as one JSON shape:
//! `{"error":{"code","message","statusCode"},"requestId","timestamp"}`.
//!
//! Handlers return [`ApiError`]. Responses produced by tower layers (413 from
//! the body limit, 503 from load shedding, 408 from timeouts, 404/405 from the
//! router) are rewritten into the same shape by [`shape`], so a caller
//! never has to parse plain text.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::observe::RequestId;

/// A non-protocol error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with_retry_after(1)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
}

/// The JSON body for an error; the request id is filled in by [`shape`].
pub fn error_body(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: Option<&str>,
) -> serde_json::Value {
    json!({
        "error": { "code": code, "message": message, "statusCode": status.as_u16() },
        "requestId": request_id,
        "timestamp": now_rfc3339(),
    })
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Marker so [`shape`] leaves already-shaped bodies alone and can fill in the request id.
#[derive(Clone)]
struct Shaped {
    code: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            axum::Json(error_body(self.status, self.code, &self.message, None)),
        )
            .into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp.extensions_mut().insert(Shaped {
            code: self.code,
            message: self.message,
        });
        resp
    }
}

fn default_code(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("bad_request", "The request is malformed"),
        401 => ("unauthorized", "Authentication is required"),
        403 => ("forbidden", "Access denied"),
        404 => ("not_found", "No such route"),
        405 => ("method_not_allowed", "Method not allowed on this route"),
        408 => ("request_timeout", "The request took too long"),
        413 => (
            "payload_too_large",
            "The request body exceeds the configured limit",
        ),
        415 => ("unsupported_media_type", "Unsupported content type"),
        422 => (
            "unprocessable_entity",
            "The request body could not be processed",
        ),
        429 => ("rate_limited", "Too many requests"),
        500 => ("internal_error", "Internal server error"),
        503 => (
            "service_unavailable",
            "The service is overloaded or unavailable; retry later",
        ),
        504 => ("timeout", "The request timed out"),
        _ => ("error", "Request failed"),
    }
}

/// What error answers may say.
#[derive(Clone, Copy, Debug, Default)]
pub struct ErrorPolicy {
    /// `env: "production"`: a 5xx answer carries its code but no internal
    /// message (store or chain error texts); the log line keeps the detail.
    pub hide_internal: bool,
}

/// The message a 5xx answer carries in production instead of internal detail.
pub const WITHHELD_MESSAGE: &str =
    "Internal error details are not shown; the server log has them under this request id";

/// Fields of a JSON answer that may carry internal error text.
const MESSAGE_FIELDS: [&str; 3] = ["message", "invalidMessage", "errorMessage"];

/// Replace every message field of a 5xx JSON answer, logging what it said.
async fn withhold_json_messages(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    // 5xx answers are small; a body that cannot be read is replaced whole.
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
    let mut withheld = Vec::new();
    let mut scrub = |obj: &mut serde_json::Map<String, serde_json::Value>| {
        for f in MESSAGE_FIELDS {
            if let Some(serde_json::Value::String(m)) = obj.get_mut(f)
                && !m.is_empty()
                && m != WITHHELD_MESSAGE
            {
                withheld.push(std::mem::replace(m, WITHHELD_MESSAGE.to_owned()));
            }
        }
    };
    if let Some(obj) = v.as_object_mut() {
        scrub(obj);
        if let Some(serde_json::Value::Object(inner)) = obj.get_mut("error") {
            scrub(inner);
        }
    }
    if !withheld.is_empty() {
        tracing::warn!(
            status = parts.status.as_u16(),
            detail = %crate::redact::urls_in(&withheld.join("; ")),
            "error detail withheld from the answer (env: production)"
        );
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(v.to_string()))
}

/// Rewrite every error response (4xx/5xx) into the JSON error shape, unless a
/// handler already produced a protocol or JSON answer of its own. Under
/// [`ErrorPolicy::hide_internal`], no 5xx answer carries an internal message.
/// Called by the outermost layer ([`super::observe::Observe`]) on every answer.
pub async fn shape(
    policy: ErrorPolicy,
    request_id: Option<&RequestId>,
    resp: Response,
) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let hide = policy.hide_internal && status.is_server_error();
    if let Some(shaped) = resp.extensions().get::<Shaped>().cloned() {
        let (mut parts, _) = resp.into_parts();
        // Codes whose messages are fixed texts of ours keep them.
        let fixed = matches!(shaped.code, "overloaded" | "timeout")
            || shaped.message == default_code(status).1;
        let message = if hide && !fixed {
            tracing::warn!(
                status = status.as_u16(),
                detail = %crate::redact::urls_in(&shaped.message),
                "error detail withheld from the answer (env: production)"
            );
            WITHHELD_MESSAGE
        } else {
            shaped.message.as_str()
        };
        let body = error_body(
            status,
            shaped.code,
            message,
            request_id.map(RequestId::as_str),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(body.to_string()));
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return if hide {
            withhold_json_messages(resp).await
        } else {
            resp
        };
    }
    let (mut parts, _) = resp.into_parts();
    let (code, message) = default_code(status);
    let body = error_body(status, code, message, request_id.map(RequestId::as_str));
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if matches!(status, StatusCode::SERVICE_UNAVAILABLE)
        && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    Response::from_parts(parts, Body::from(body.to_string()))
}
