//! `logging.*`, `sentry.*`, `metrics.*` and `telemetry.*`.

use serde::{Deserialize, Serialize};

use super::{LogLevel, Secret};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoggingSettings {
    /// trace, debug, info, warn, error, fatal, or a tracing filter directive.
    pub level: LogLevel,
    /// Human-readable lines instead of JSON.
    pub pretty: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SentrySettings {
    pub dsn: Option<Secret>,
    pub environment: Option<String>,
    pub traces_sample_rate: f64,
}

impl Default for SentrySettings {
    fn default() -> Self {
        SentrySettings {
            dsn: None,
            environment: None,
            traces_sample_rate: 0.1,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricsSettings {
    /// Serve /metrics on its own port instead of the main listener.
    pub port: Option<u16>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TelemetrySettings {
    pub otlp: OtlpSettings,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OtlpSettings {
    /// OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is appended).
    /// Traces are exported only when this or `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub endpoint: Option<String>,
    /// `service.name` of the exported traces.
    pub service_name: String,
    /// Fraction of requests traced (parent-based: a traced request traces all its spans).
    pub sample_ratio: f64,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        OtlpSettings {
            endpoint: None,
            service_name: "x402-facilitator".into(),
            sample_ratio: 1.0,
        }
    }
}
