//! The outermost layer: request id, the request span, the access line,
//! HTTP metrics and the Sentry event for every 5xx.
//!
//! It runs before routing (it wraps the whole router), so the route template
//! is learnt after the fact: [`RememberRoute`] runs inside the router and
//! writes axum's `MatchedPath` into the request's [`RouteSlot`].
//!
//! Both are hand-written tower services rather than `from_fn` middleware:
//! the whole answer to a request is one boxed future, and the route layer
//! adds none.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Instrument;

use super::error::ErrorPolicy;

/// The id of the request being served: the caller's `X-Request-Id` when it is
/// sane, else a fresh UUID. Echoed back in the `X-Request-Id` header. Kept as
/// the header value itself, so copies of it are reference counts.
#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The id as text (always visible ASCII: see [`sane_request_id`]).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// Set on a 500 produced by a caught panic: the panic's message, for the Sentry event.
#[derive(Clone, Debug)]
pub struct PanicMessage(pub String);

/// Where the router writes the route template that matched (`/status/{txid}`).
/// A shared slot rather than a response extension, so the route is known even
/// when the handler panics and the response is made outside the router.
#[derive(Clone, Debug, Default)]
pub struct RouteSlot(pub std::sync::Arc<parking_lot::Mutex<Option<Cow<'static, str>>>>);

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A caller-supplied id is kept only if it is short and made of safe characters,
/// so it can't inject anything into logs or headers.
fn sane_request_id(v: &HeaderValue) -> Option<HeaderValue> {
    let b = v.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
    ok.then(|| v.clone())
}

/// A fresh random (version 4) UUID as a header value, formatted on the stack.
fn fresh_request_id() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    // Hex digits and hyphens: always a valid header value.
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unknown"))
}

/// The template as a static string when it is one of this service's routes
/// (no copy per request), else a copy (the devnet API's templates).
fn route_label(template: &str) -> Cow<'static, str> {
    match super::ROUTES.iter().find(|(_, path)| *path == template) {
        Some((_, path)) => Cow::Borrowed(path),
        None => Cow::Owned(template.to_owned()),
    }
}

/// Inside the router, around each route: record which route template
/// matched. Synchronous, so it adds no future of its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct RememberRouteLayer;

impl<S> Layer<S> for RememberRouteLayer {
    type Service = RememberRoute<S>;
    fn layer(&self, inner: S) -> RememberRoute<S> {
        RememberRoute { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RememberRoute<S> {
    inner: S,
}

impl<S: Service<Request>> Service<Request> for RememberRoute<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> S::Future {
        if let (Some(slot), Some(m)) = (
            req.extensions().get::<RouteSlot>(),
            req.extensions().get::<MatchedPath>(),
        ) {
            *slot.0.lock() = Some(route_label(m.as_str()));
        }
        self.inner.call(req)
    }
}

/// The outermost layer: id, span, access line, metrics and Sentry, with the
/// error shaping of [`super::error::shape`] inside the span.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObserveLayer {
    pub policy: ErrorPolicy,
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            policy: self.policy,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Observe<S> {
    inner: S,
    policy: ErrorPolicy,
}

/// The whole answer to one request, boxed once.
type Answer = dyn Future<Output = Result<Response, Infallible>> + Send;

impl<S, B> Service<Request> for Observe<S>
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = crate::telemetry::RequestScope<Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let inner = super::take_ready(&mut self.inner);
        let policy = self.policy;
        let id = RequestId(
            req.headers()
                .get(REQUEST_ID_HEADER)
                .and_then(sane_request_id)
                .unwrap_or_else(fresh_request_id),
        );
        req.extensions_mut().insert(id.clone());
        let slot = RouteSlot::default();
        req.extensions_mut().insert(slot.clone());
        let method = req.method().clone();
        // The URL and the peer are only for the access line: skip formatting
        // them when that line is filtered out.
        let access_line = tracing::enabled!(tracing::Level::INFO);
        let url = if access_line {
            req.uri().to_string()
        } else {
            String::new()
        };
        let remote = match req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            Some(c) if access_line => c.0.ip().to_string(),
            _ => String::new(),
        };
        let span = tracing::info_span!("request", reqId = id.as_str());

        crate::telemetry::RequestScope::from_box(Box::pin(async move {
            let mut resp = async {
                let resp = super::answer_of(inner, req).await;
                super::error::shape(policy, Some(&id), resp).await
            }
            .instrument(span.clone())
            .await;

            let status = resp.status();
            let elapsed = start.elapsed();
            let route = slot.0.lock().take().unwrap_or(Cow::Borrowed("unmatched"));
            resp.headers_mut().insert(REQUEST_ID_HEADER, id.0.clone());

            if access_line {
                let response_time = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
                span.in_scope(|| {
                    tracing::info!(
                        method = %method,
                        url = %url,
                        route = %route,
                        statusCode = status.as_u16(),
                        responseTime = response_time,
                        remoteAddress = %remote,
                        "request completed"
                    );
                });
            }

            if status.is_server_error() {
                let panic = resp
                    .extensions()
                    .get::<PanicMessage>()
                    .map(|p| p.0.as_str());
                report_server_error(id.as_str(), method.as_str(), &route, status, panic);
            }

            metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method_label(&method), "status" => status_label(status))
                .increment(1);
            metrics::histogram!("http_request_duration_seconds", "route" => route)
                .record(elapsed.as_secs_f64());
            Ok(resp)
        }))
    }
}

/// The method as a metric label; the common ones without an allocation.
fn method_label(m: &axum::http::Method) -> std::borrow::Cow<'static, str> {
    use axum::http::Method;
    match *m {
        Method::GET => "GET".into(),
        Method::POST => "POST".into(),
        Method::HEAD => "HEAD".into(),
        Method::OPTIONS => "OPTIONS".into(),
        _ => m.as_str().to_owned().into(),
    }
}

/// The status code as a metric label; the common ones without an allocation.
fn status_label(s: StatusCode) -> std::borrow::Cow<'static, str> {
    match s.as_u16() {
        200 => "200".into(),
        400 => "400".into(),
        404 => "404".into(),
        409 => "409".into(),
        429 => "429".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

/// One Sentry event per 5xx, with the request id, method, route and status:
/// never the body, never headers (they may carry keys or payments).
fn report_server_error(
    id: &str,
    method: &str,
    route: &str,
    status: StatusCode,
    panic: Option<&str>,
) {
    if sentry::Hub::current()
        .client()
        .is_none_or(|c| !c.is_enabled())
    {
        return;
    }
    sentry::with_scope(
        |scope| {
            scope.set_tag("request_id", id);
            scope.set_tag("method", method);
            scope.set_tag("route", route);
            scope.set_tag("status", status.as_u16());
        },
        || {
            let text = match panic {
                Some(p) => format!("{method} {route} panicked: {p}"),
                None => format!("{method} {route} answered {}", status.as_u16()),
            };
            sentry::capture_message(&text, sentry::Level::Error);
        },
    );
}
