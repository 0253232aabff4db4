//! Logs and error reporting.
//!
//! Production logs are one JSON object per line in the bunyan format, which
//! pino readers (`pino-pretty`) and bunyan readers both understand: numeric
//! `level` (10 trace … 60 fatal), `time`, `msg`, `pid`, `hostname`, `name`.
//! Every field of the enclosing spans is copied onto each line, which is how
//! `reqId` reaches every line logged while a request is served.
//!
//! tracing-bunyan-formatter also prints a line when a span opens and closes;
//! [`EventsOnly`] drops those, so a request produces its own lines plus one
//! access line and nothing else.

use std::io::Write;
use std::sync::OnceLock;

use tracing::Subscriber;
use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::Settings;

/// The `name` field of every log line and the Sentry release prefix.
pub const SERVICE_NAME: &str = "x402-facilitator";

/// Forwards only events to the wrapped layer: span open/close lines are noise
/// in an access-logged service, but span fields must still reach each event.
pub struct EventsOnly<L>(pub L);

impl<S, L> Layer<S> for EventsOnly<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        self.0.on_event(event, ctx)
    }
}

/// Build the subscriber for `settings.logging`, writing to `sink`.
pub fn subscriber<W>(settings: &Settings, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber_with(settings, sink, None)
}

/// The filter of the log lines: our crate at the chosen level, noisy
/// dependencies one step quieter.
fn log_filter(settings: &Settings) -> EnvFilter {
    let directive = settings.logging.level.directive();
    EnvFilter::try_new(format!(
        "{directive},hyper=warn,h2=warn,reqwest=warn,rustls=warn,tower_http=warn"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Only breadcrumbs at info and above travel to Sentry.
fn breadcrumb_level(md: &tracing::Metadata<'_>) -> bool {
    matches!(
        *md.level(),
        tracing::Level::ERROR | tracing::Level::WARN | tracing::Level::INFO
    )
}

/// Spans of this crate down to DEBUG (the stage, chain and store spans), to OTel.
fn otel_layer<S>(tracer: opentelemetry_sdk::trace::SdkTracer) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use tracing_subscriber::filter::{LevelFilter, Targets};
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_filter(
            Targets::new()
                .with_target("x402_facilitator", LevelFilter::DEBUG)
                .with_default(LevelFilter::OFF),
        )
}

/// The subscriber, plus an OpenTelemetry layer when `otel` is given (see
/// [`crate::otel`]). Without it the log filter is global, as it always was;
/// with it every layer has its own filter, so the OTel layer alone sees this
/// crate's DEBUG-level stage spans and the log lines do not change.
pub fn subscriber_with<W>(
    settings: &Settings,
    sink: W,
    otel: Option<opentelemetry_sdk::trace::SdkTracer>,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // 5xx and panics are captured explicitly with request context, so log
    // lines only travel as breadcrumbs: one failure is one Sentry event.
    let breadcrumbs = || sentry::integrations::tracing::BreadcrumbLayer::new();
    if let Some(tracer) = otel {
        use tracing_subscriber::filter::{FilterExt, filter_fn};
        let sentry_layer =
            breadcrumbs().with_filter(log_filter(settings).and(filter_fn(breadcrumb_level)));
        return if settings.logging.pretty {
            Box::new(
                Registry::default()
                    .with(sentry_layer)
                    .with(
                        tracing_subscriber::fmt::layer()
                            .with_writer(sink)
                            .with_target(false)
                            .compact()
                            .with_filter(log_filter(settings)),
                    )
                    .with(otel_layer(tracer)),
            )
        } else {
            Box::new(
                Registry::default()
                    .with(sentry_layer)
                    .with(
                        JsonStorageLayer
                            .and_then(EventsOnly(BunyanFormattingLayer::new(
                                SERVICE_NAME.to_owned(),
                                sink,
                            )))
                            .with_filter(log_filter(settings)),
                    )
                    .with(otel_layer(tracer)),
            )
        };
    }
    let filter = log_filter(settings);
    let sentry_layer =
        breadcrumbs().with_filter(tracing_subscriber::filter::filter_fn(breadcrumb_level));
    if settings.logging.pretty {
        Box::new(
            Registry::default().with(filter).with(sentry_layer).with(
                tracing_subscriber::fmt::layer()
                    .with_writer(sink)
                    .with_target(false)
                    .compact(),
            ),
        )
    } else {
        Box::new(
            Registry::default()
                .with(filter)
                .with(sentry_layer)
                .with(JsonStorageLayer)
                .with(EventsOnly(BunyanFormattingLayer::new(
                    SERVICE_NAME.to_owned(),
                    sink,
                ))),
        )
    }
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Install the global subscriber once per process (later calls are no-ops, so
/// tests that build several apps in one process keep the first one).
pub fn init(settings: &Settings) {
    INSTALLED.get_or_init(|| {
        let otel = crate::otel::tracer(settings);
        let _ = tracing::subscriber::set_global_default(subscriber_with(
            settings,
            std::io::stdout,
            otel,
        ));
    });
}

/// Install a JSON subscriber at info level for messages emitted before the
/// configuration is known (a configuration error is itself logged this way).
pub fn init_bootstrap() {
    init(&Settings::default());
}

/// Keeps the Sentry client alive; dropping it flushes pending events.
pub struct SentryGuard(Option<sentry::ClientInitGuard>);

impl SentryGuard {
    pub fn enabled(&self) -> bool {
        self.0.as_ref().is_some_and(|g| g.is_enabled())
    }

    /// Send what is queued, waiting at most `timeout`.
    pub fn flush(&self, timeout: std::time::Duration) {
        if let Some(g) = &self.0 {
            g.flush(Some(timeout));
        }
    }
}

/// Start Sentry when a DSN is configured. Request bodies and secrets are
/// never attached: `send_default_pii` stays off and `before_send` strips
/// request data and headers that could carry keys.
pub fn init_sentry(settings: &Settings) -> SentryGuard {
    let Some(dsn) = settings.sentry.dsn.as_ref().filter(|d| !d.is_empty()) else {
        return SentryGuard(None);
    };
    let dsn = match dsn.expose().parse::<sentry::types::Dsn>() {
        Ok(d) => d,
        Err(_) => return SentryGuard(None),
    };
    let environment = settings
        .sentry
        .environment
        .clone()
        .unwrap_or_else(|| format!("{:?}", settings.env).to_ascii_lowercase());
    let mut options = sentry::ClientOptions::new()
        .release(format!("{SERVICE_NAME}@{}", env!("CARGO_PKG_VERSION")))
        .environment(environment)
        .traces_sample_rate(settings.sentry.traces_sample_rate as f32)
        .send_default_pii(false)
        .attach_stacktrace(true);
    options.dsn = Some(dsn);
    options.before_send = Some(std::sync::Arc::new(|event| Some(scrub_event(event))));
    let guard = sentry::init(options);
    install_panic_hook();
    SentryGuard(Some(guard))
}

/// What leaves for Sentry: no request body, cookies or key-bearing headers,
/// and every URL in the message, exceptions and breadcrumbs cut to scheme,
/// host and port ([`crate::redact`]).
pub fn scrub_event(
    mut event: sentry::protocol::Event<'static>,
) -> sentry::protocol::Event<'static> {
    use crate::redact::urls_in;
    if let Some(req) = event.request.as_mut() {
        req.data = None;
        req.cookies = None;
        req.query_string = None;
        req.headers.retain(|k, _| {
            let k = k.to_ascii_lowercase();
            !(k == "authorization"
                || k == "x-api-key"
                || k == "x-admin-key"
                || k == "cookie"
                || k.starts_with("payment"))
        });
    }
    if let Some(m) = event.message.as_mut() {
        *m = urls_in(m);
    }
    if let Some(l) = event.logentry.as_mut() {
        l.message = urls_in(&l.message);
    }
    for e in event.exception.values.iter_mut() {
        if let Some(v) = e.value.as_mut() {
            *v = urls_in(v);
        }
    }
    for b in event.breadcrumbs.values.iter_mut() {
        if let Some(m) = b.message.as_mut() {
            *m = urls_in(m);
        }
        for v in b.data.values_mut() {
            crate::redact::urls_in_json(v);
        }
    }
    for v in event.extra.values_mut() {
        crate::redact::urls_in_json(v);
    }
    for v in event.tags.values_mut() {
        *v = urls_in(v);
    }
    event
}

/// Print a startup failure: one JSON log line naming the step, and the plain
/// message on stderr for a human at a terminal. URLs in it are redacted.
pub fn startup_failure(step: &str, message: &str) {
    let message = &crate::redact::urls_in(message);
    tracing::error!(step, "startup failed at step {step}: {message}");
    let _ = writeln!(std::io::stderr(), "{message}");
}

thread_local! {
    /// True while this thread polls a request's future (see [`RequestScope`]).
    static IN_REQUEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Wraps a request's future and marks every poll of it, so the panic hook
/// can tell a panic inside a request (caught, answered 500 and reported once
/// by the HTTP layer with the request's context) from any other panic
/// (reported by the hook itself).
pub struct RequestScope<F: ?Sized> {
    inner: std::pin::Pin<Box<F>>,
}

impl<F: ?Sized> RequestScope<F> {
    /// Around a boxed future (a `dyn Future` too, so it is boxed only once).
    pub fn from_box(inner: std::pin::Pin<Box<F>>) -> Self {
        RequestScope { inner }
    }
}

impl<F: std::future::Future + ?Sized> std::future::Future for RequestScope<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let before = IN_REQUEST.with(|c| c.replace(true));
        let out = self.inner.as_mut().poll(cx);
        IN_REQUEST.with(|c| c.set(before));
        out
    }
}

/// The text of a panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("panic")
}

static PANIC_HOOK: OnceLock<()> = OnceLock::new();

/// Report panics outside requests to Sentry (once per process; chains the
/// previous hook, so the panic is still printed). Panics inside a request
/// are left to the HTTP layer, which reports the resulting 500 with the
/// request id: one event per panic either way.
pub fn install_panic_hook() {
    PANIC_HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_REQUEST.with(|c| c.get()) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let text = format!("panic: {}{location}", panic_text(info.payload()));
                sentry::capture_message(&text, sentry::Level::Fatal);
            }
            previous(info);
        }));
    });
}

#[cfg(test)]
mod scrub_tests {
    use super::*;

    /// Sentry events carry no URL beyond scheme, host and port, wherever the
    /// URL appears (message, exception, breadcrumb).
    #[test]
    fn sentry_events_carry_no_url_secrets() {
        let leaky = "GET https://me:pw@bf.example/api/v0/KEY?token=t failed";
        let mut event = sentry::protocol::Event {
            message: Some(leaky.to_owned()),
            ..Default::default()
        };
        event.exception.values.push(sentry::protocol::Exception {
            ty: "ChainError".into(),
            value: Some(leaky.to_owned()),
            ..Default::default()
        });
        event.breadcrumbs.values.push(sentry::protocol::Breadcrumb {
            message: Some(leaky.to_owned()),
            ..Default::default()
        });
        let out = scrub_event(event);
        let text = serde_json::to_string(&out).unwrap();
        for leak in ["me:pw", "KEY", "token", "api/v0"] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
        assert_eq!(
            out.message.as_deref(),
            Some("GET https://bf.example failed")
        );
    }
}
