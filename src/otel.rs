//! OpenTelemetry traces over OTLP/HTTP (protobuf), off by default.
//!
//! Turned on by `telemetry.otlp.endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL, `/v1/traces` is appended), or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL, used as is).
//!
//! What is traced: the `request` span of every HTTP request (with `reqId`),
//! and under it one span per verify pipeline stage, per settlement step, per
//! chain call (`chain.*`) and per store call (`store.*`). The stage spans are
//! DEBUG-level spans of this crate: only the OTel layer enables them, so with
//! OTel off they are rejected by the global level check before anything is
//! allocated. The chain and store spans come from [`crate::chain::traced`]
//! and [`crate::store::traced`], wrappers installed only when OTel is on.
//!
//! Spans are batched on a background thread and sent with a blocking HTTP
//! client of their own, never on the request path; [`flush`] sends what is
//! queued (at shutdown).

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::Settings;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The OTLP/HTTP traces URL the configuration and environment ask for, if any.
/// Precedence: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (as is), then
/// `telemetry.otlp.endpoint`, then `OTEL_EXPORTER_OTLP_ENDPOINT` (both with
/// `/v1/traces` appended).
pub fn traces_url(settings: &Settings, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    if let Some(full) = nonempty(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        return Some(full);
    }
    let base = nonempty(settings.telemetry.otlp.endpoint.clone())
        .or_else(|| nonempty(env("OTEL_EXPORTER_OTLP_ENDPOINT")))?;
    let base = base.trim_end_matches('/');
    Some(if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    })
}

/// True once [`tracer`] has installed a provider in this process.
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Build the exporter and the tracer when traces are asked for. Called once,
/// by [`crate::telemetry::init`]; later calls return the first tracer's clone.
pub fn tracer(settings: &Settings) -> Option<SdkTracer> {
    let url = traces_url(settings, &|k| std::env::var(k).ok())?;
    let otlp = &settings.telemetry.otlp;
    let service = otlp.service_name.clone();
    let ratio = otlp.sample_ratio;
    // The blocking HTTP client starts its own runtime: build it off any async
    // runtime thread.
    let built = std::thread::spawn(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("OTLP exporter for {url}: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        Ok::<_, String>((provider, url))
    })
    .join();
    match built {
        Ok(Ok((provider, url))) => {
            let tracer = provider.tracer(crate::telemetry::SERVICE_NAME);
            let _ = PROVIDER.set(provider);
            eprintln!("x402-facilitator: exporting traces to {url} (OTLP/HTTP)");
            Some(tracer)
        }
        Ok(Err(e)) => {
            eprintln!("x402-facilitator: traces not exported: {e}");
            None
        }
        Err(_) => None,
    }
}

/// Send every finished span still queued (waits for the exporter, at most its
/// timeout). A no-op when traces are off. Safe to call more than once.
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let p = p.clone();
        let _ = std::thread::spawn(move || p.force_flush()).join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_precedence_and_path() {
        let mut s = Settings::default();
        let none = |_: &str| None;
        assert_eq!(traces_url(&s, &none), None);
        let generic = |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://collector:4318/".to_owned())
        };
        assert_eq!(
            traces_url(&s, &generic).as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        s.telemetry.otlp.endpoint = Some("http://cfg:4318".into());
        assert_eq!(
            traces_url(&s, &generic).as_deref(),
            Some("http://cfg:4318/v1/traces")
        );
        let full = |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").then(|| "http://full/x".to_owned())
        };
        assert_eq!(traces_url(&s, &full).as_deref(), Some("http://full/x"));
    }
}
