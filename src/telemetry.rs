//! Logging and error reporting.

/// Map a pino-style level name (or a tracing filter directive) to a filter string.
pub fn parse_level(level: &str) -> Option<String> {
    let l = level.trim().to_ascii_lowercase();
    let mapped = match l.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => l.clone(),
        "fatal" => "error".into(),
        "silent" => "off".into(),
        _ => {
            tracing_subscriber::EnvFilter::try_new(level).ok()?;
            level.to_owned()
        }
    };
    Some(mapped)
}
