//! The HTTP surface: routes, the tower stack in front of them, and errors as
//! JSON. Handlers only translate between HTTP and the domain modules.
//!
//! Stack, outermost first (every request passes all of them):
//! `Observe` (request id, span, access line, metrics, Sentry; inside its span
//! `error::shape`: every error as JSON, in production no internal detail in a
//! 5xx) → catch panic (500, the process lives on) → `ReadBody` (the whole body within
//! `server.bodyReadTimeoutMs`, else 408; at most `server.bodyLimitBytes`,
//! else 413) → timeout → load shedding (503 beyond
//! `server.maxConcurrentRequests`, no unbounded queue) → body limit (413) →
//! CORS → router.
//!
//! The body is read before the concurrency limit, so a client trickling its
//! body holds a connection (bounded by `server.maxConnections` and its own
//! deadline) but never one of the slots that requests being processed need.
//! Connections themselves are served by [`serve`].

pub mod admin;
pub mod error;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod serve;
pub mod state;
pub mod x402;

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any as AnyOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use self::state::AppState;
use crate::config::Settings;
pub use error::ApiError;

/// The routes, with the per-route layer that records the matched template.
pub fn routes(state: AppState) -> Router {
    let mut router = Router::new();
    if let Some(lane) = state.facilitator.devnet()
        && let Some(devnet) = lane.devnet.clone()
        && lane.settings.chain.devnet.api_enabled
    {
        let faucet = lane.settings.chain.devnet.faucet_enabled;
        router = router.nest_service("/devnet", crate::chain::devnet::api::router(devnet, faucet));
    }
    if state.settings.metrics.port.is_none() {
        router = router.route("/metrics", get(metrics::render));
    }
    let probes = health::Probes::new(state.settings.server.health_cache);
    router
        .route("/verify", post(x402::verify))
        .route("/settle", post(x402::settle))
        .route("/status", post(x402::status_post))
        .route("/status/{txid}", get(x402::status_get))
        .route("/supported", get(x402::supported))
        .route(
            "/health",
            get(health::health).layer(axum::Extension(probes.clone())),
        )
        .route("/ready", get(health::ready).layer(axum::Extension(probes)))
        .nest(
            "/admin",
            admin::routes().route_layer(middleware::from_fn_with_state(
                state.clone(),
                admin::authorize,
            )),
        )
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(observe::RememberRouteLayer)
        .with_state(state)
}

/// Every route this service serves, as (method, path template), the admin
/// API included; the embedded devnet's own API is [`crate::chain::devnet::api::ROUTES`]
/// under `/devnet`. The OpenAPI description is checked against this table,
/// and a test checks the router serves each entry.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/verify"),
    ("post", "/settle"),
    ("post", "/status"),
    ("get", "/status/{txid}"),
    ("get", "/supported"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/admin/settlement"),
    ("post", "/admin/settlement/pause"),
    ("post", "/admin/settlement/resume"),
    ("get", "/admin/settlements"),
    ("get", "/admin/settlements/{txid}"),
    ("post", "/admin/reconcile"),
];

async fn fallback() -> ApiError {
    ApiError::not_found("No such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed on this route",
    )
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = crate::telemetry::panic_text(err.as_ref()).to_owned();
    tracing::error!(panic = %detail, "handler panicked; answered 500");
    let mut resp = ApiError::internal("Internal server error").into_response();
    resp.extensions_mut().insert(observe::PanicMessage(detail));
    resp
}

async fn overloaded(err: BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        return ApiError::unavailable("overloaded", "Too many requests in flight; retry shortly")
            .into_response();
    }
    ApiError::internal("Request failed").into_response()
}

fn cors(settings: &Settings) -> Option<CorsLayer> {
    let origins = &settings.server.cors.allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AnyOrigin)
        .expose_headers([
            axum::http::HeaderName::from_static(observe::REQUEST_ID_HEADER),
            axum::http::HeaderName::from_static("payment-response"),
            axum::http::HeaderName::from_static("retry-after"),
        ]);
    if origins.iter().any(|o| o == "*") {
        return Some(base.allow_origin(AnyOrigin));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(base.allow_origin(AllowOrigin::list(list)))
}

/// The service `poll_ready` made ready, leaving a clone in its place: the
/// tower idiom for a service whose future outlives `&mut self`.
fn take_ready<S: Clone>(slot: &mut S) -> S {
    let fresh = slot.clone();
    std::mem::replace(slot, fresh)
}

/// Call a layer of the stack that cannot fail, giving its answer axum's body
/// type (a body that already is one is not boxed again).
async fn answer_of<S, B>(mut inner: S, req: axum::extract::Request) -> Response
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::http::Response<B>,
            Error = std::convert::Infallible,
        >,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    match inner.call(req).await {
        Ok(resp) => resp.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// Read the whole request body before the request may take a concurrency
/// slot: within `deadline` (else 408 and the connection is closed) and at
/// most `max_bytes` (else 413, without reading it when Content-Length says so).
#[derive(Clone, Copy, Debug)]
struct ReadBodyLayer {
    max_bytes: usize,
    deadline: Duration,
}

impl<S> tower::Layer<S> for ReadBodyLayer {
    type Service = ReadBody<S>;
    fn layer(&self, inner: S) -> ReadBody<S> {
        ReadBody {
            inner,
            limits: *self,
        }
    }
}

#[derive(Clone, Debug)]
struct ReadBody<S> {
    inner: S,
    limits: ReadBodyLayer,
}

impl<S, B> tower::Service<axum::extract::Request> for ReadBody<S>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::http::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    /// Always ready: the layers below (load shedding, the concurrency limit)
    /// are asked only once the body is in, since asking takes a slot.
    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let mut inner = self.inner.clone();
        let limits = self.limits;
        Box::pin(async move {
            Ok(match read_body(limits, req).await {
                Ok(req) => match tower::ServiceExt::ready(&mut inner).await {
                    Ok(ready) => answer_of(ready, req).await,
                    Err(never) => match never {},
                },
                Err(refusal) => refusal,
            })
        })
    }
}

/// The request with its body read whole, or the refusal to answer instead.
async fn read_body(
    limits: ReadBodyLayer,
    req: axum::extract::Request,
) -> Result<axum::extract::Request, Response> {
    use hyper::body::Body as _;
    if req.body().is_end_stream() {
        return Ok(req);
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body exceeds the configured limit",
        )
        .into_response()
    };
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, limits.max_bytes);
    match tokio::time::timeout(limits.deadline, http_body_util::BodyExt::collect(limited)).await {
        Ok(Ok(collected)) => Ok(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(collected.to_bytes()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::bad_request(
            "bad_request",
            "The request body could not be read",
        )
        .into_response()),
        Err(_) => {
            ::metrics::counter!("http_body_read_timeouts_total").increment(1);
            let mut resp = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body did not arrive in time",
            )
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
            Err(resp)
        }
    }
}

/// The whole service: the routes wrapped in the global stack.
pub fn service(state: AppState) -> Router {
    let settings = state.settings.clone();
    let guard = state.guard.clone();
    let routes = routes(state).layer(guard::GuardLayer::new(guard));
    stack(routes, &settings)
}

/// Wrap any router in the global stack. Global layers wrap the router as a
/// whole (not `Router::layer`, which would give each route its own
/// concurrency limit).
pub fn stack(routes: Router, settings: &Settings) -> Router {
    let timeout = settings.server.request_timeout;
    let inner = routes
        .layer(tower::util::option_layer(cors(settings)))
        .layer(RequestBodyLimitLayer::new(settings.server.body_limit_bytes));
    let limits = ReadBodyLayer {
        max_bytes: settings.server.body_limit_bytes,
        deadline: settings.server.body_read_timeout,
    };
    let policy = error::ErrorPolicy {
        hide_internal: settings.env == crate::config::Environment::Production,
    };
    let stacked = ServiceBuilder::new()
        .layer(observe::ObserveLayer { policy })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(limits)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(
            settings.server.max_concurrent_requests,
        ))
        .service(inner);
    Router::new().fallback_service(stacked)
}

#[cfg(test)]
mod tests {
    //! The stack's behaviours that no production route can trigger on demand
    //! (a panic, a handler slower than the timeout) are tested here around
    //! purpose-built routes; everything else is tested black-box in tests/.

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn json_of(resp: Response) -> serde_json::Value {
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    /// `GET path` through `svc`, with an empty body.
    async fn fetch(svc: &Router, path: &str) -> Response {
        svc.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn test_router() -> Router {
        Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("deliberate test panic")
                    }
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    "done"
                }),
            )
            .route("/fast", get(|| async { "ok" }))
            .route_layer(observe::RememberRouteLayer)
    }

    fn settings(max: usize, timeout_ms: u64) -> Settings {
        let mut s = Settings::default();
        s.server.max_concurrent_requests = max;
        s.server.request_timeout = std::time::Duration::from_millis(timeout_ms);
        s
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500_json_answer_and_service_continues() {
        let svc = stack(test_router(), &settings(16, 10_000));
        let resp = svc
            .clone()
            .oneshot(
                Request::get("/boom")
                    .header("x-request-id", "panic-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()["x-request-id"], "panic-1");
        let body = json_of(resp).await;
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(body["error"]["statusCode"], 500);
        assert_eq!(body["requestId"], "panic-1");
        assert!(body["timestamp"].is_string());
        let again = fetch(&svc, "/fast").await;
        assert_eq!(again.status(), StatusCode::OK);
    }

    /// A panic in a handler is exactly one Sentry event, carrying the request
    /// id, method, route and status (the panic hook stays quiet inside requests).
    #[test]
    fn a_panic_is_one_sentry_event_with_the_request_context() {
        crate::telemetry::install_panic_hook();
        let events = sentry::test::with_captured_events(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let svc = stack(test_router(), &settings(16, 10_000));
                let req = Request::get("/boom")
                    .header("x-request-id", "panic-evt-1")
                    .body(Body::empty())
                    .unwrap();
                let resp = svc.oneshot(req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
            });
        });
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(
            e.tags.get("request_id").map(String::as_str),
            Some("panic-evt-1")
        );
        assert_eq!(e.tags.get("method").map(String::as_str), Some("GET"));
        assert_eq!(e.tags.get("route").map(String::as_str), Some("/boom"));
        assert_eq!(e.tags.get("status").map(String::as_str), Some("500"));
        assert!(
            e.message
                .as_deref()
                .unwrap_or("")
                .contains("deliberate test panic"),
            "{:?}",
            e.message
        );
    }

    #[tokio::test]
    async fn requests_beyond_the_concurrency_limit_are_shed_with_503() {
        let svc = stack(test_router(), &settings(1, 10_000));
        let slow = tokio::spawn(
            svc.clone()
                .oneshot(Request::get("/slow").body(Body::empty()).unwrap()),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let shed = fetch(&svc, "/fast").await;
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        let body = json_of(shed).await;
        assert_eq!(body["error"]["code"], "overloaded");
        let first = slow.await.unwrap().unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let after = fetch(&svc, "/fast").await;
        assert_eq!(after.status(), StatusCode::OK);
    }

    /// A request still sending its body holds no concurrency slot: with one
    /// slot, another request is served while the first body trickles, and the
    /// first is served once its body is in.
    #[tokio::test]
    async fn a_body_still_arriving_holds_no_concurrency_slot() {
        let svc = stack(test_router(), &settings(1, 10_000));
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<axum::body::Bytes, BoxError>>();
        tx.unbounded_send(Ok(axum::body::Bytes::from_static(b"{")))
            .unwrap();
        let trickling = tokio::spawn(
            svc.clone()
                .oneshot(Request::get("/fast").body(Body::from_stream(rx)).unwrap()),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!trickling.is_finished());
        for _ in 0..3 {
            let other = fetch(&svc, "/fast").await;
            assert_eq!(other.status(), StatusCode::OK);
        }
        tx.unbounded_send(Ok(axum::body::Bytes::from_static(b"}")))
            .unwrap();
        drop(tx);
        let first = trickling.await.unwrap().unwrap();
        assert_eq!(first.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_handler_slower_than_the_timeout_answers_504_json() {
        let svc = stack(test_router(), &settings(16, 300));
        let resp = fetch(&svc, "/slow").await;
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = json_of(resp).await;
        assert_eq!(body["error"]["code"], "timeout");
        assert_eq!(body["error"]["statusCode"], 504);
    }

    fn leaky_router() -> Router {
        Router::new()
            .route(
                "/store",
                get(|| async {
                    ApiError::unavailable(
                        "exact_cardano_facilitator_store_unavailable",
                        "redis://:pw@10.1.1.1:6379 connection refused",
                    )
                }),
            )
            .route(
                "/verify",
                get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({
                            "isValid": false,
                            "invalidReason": "exact_cardano_facilitator_chain_lookup_failed",
                            "invalidMessage": "transport: https://bf.example/api/v0/KEY timed out",
                        })),
                    )
                }),
            )
            .route(
                "/bad",
                get(|| async { ApiError::bad_request("invalid_payload", "body is not JSON") }),
            )
    }

    /// `env: "production"`: a 5xx answer keeps its code and reason but no
    /// internal message; 4xx messages (about the caller's input) stay.
    #[tokio::test]
    async fn production_error_answers_carry_no_internal_message() {
        let mut prod = settings(16, 10_000);
        prod.env = crate::config::Environment::Production;
        let svc = stack(leaky_router(), &prod);
        let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();

        let resp = svc.clone().oneshot(get("/store")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = json_of(resp).await;
        assert_eq!(
            body["error"]["code"],
            "exact_cardano_facilitator_store_unavailable"
        );
        assert_eq!(body["error"]["message"], error::WITHHELD_MESSAGE);

        let resp = svc.clone().oneshot(get("/verify")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = json_of(resp).await;
        assert_eq!(
            body["invalidReason"],
            "exact_cardano_facilitator_chain_lookup_failed"
        );
        assert_eq!(body["invalidMessage"], error::WITHHELD_MESSAGE);

        let body = json_of(svc.clone().oneshot(get("/bad")).await.unwrap()).await;
        assert_eq!(body["error"]["message"], "body is not JSON");

        // Development keeps the detail.
        let svc = stack(leaky_router(), &settings(16, 10_000));
        let body = json_of(svc.clone().oneshot(get("/store")).await.unwrap()).await;
        assert_eq!(
            body["error"]["message"],
            "redis://:pw@10.1.1.1:6379 connection refused"
        );
        let body = json_of(svc.oneshot(get("/verify")).await.unwrap()).await;
        assert!(
            body["invalidMessage"]
                .as_str()
                .unwrap_or("")
                .contains("timed out")
        );
    }

    /// A body that stops arriving is answered 408 (and the connection closed)
    /// by its own deadline, before it could take a concurrency slot.
    #[tokio::test]
    async fn a_body_that_stops_arriving_is_answered_408_by_its_deadline() {
        let mut s = settings(1, 10_000);
        s.server.body_read_timeout = std::time::Duration::from_millis(200);
        let router =
            Router::new().route("/echo", axum::routing::post(|b: String| async move { b }));
        let svc = stack(router, &s);
        let (tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let stalled = Body::from_stream(rx);
        let resp = svc
            .clone()
            .oneshot(Request::post("/echo").body(stalled).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(resp.headers()["connection"], "close");
        assert_eq!(json_of(resp).await["error"]["code"], "request_timeout");
        drop(tx);
        let resp = svc
            .oneshot(Request::post("/echo").body(Body::from("hello")).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn cors_is_off_by_default_and_on_when_configured() {
        let svc = stack(test_router(), &settings(16, 10_000));
        let resp = svc
            .oneshot(
                Request::get("/fast")
                    .header("origin", "https://shop.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(resp.headers().get("access-control-allow-origin").is_none());
        let mut s = settings(16, 10_000);
        s.server.cors.allowed_origins = vec!["https://shop.example".into()];
        let svc = stack(test_router(), &s);
        let resp = svc
            .oneshot(
                Request::get("/fast")
                    .header("origin", "https://shop.example")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "https://shop.example"
        );
    }
}
