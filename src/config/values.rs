//! Typed setting values, parsed once when the configuration loads: a bad
//! value is a configuration error named by its path, and the code that uses
//! a setting never parses it again.
//!
//! IP lists are `std::net::IpAddr` directly; durations are read through the
//! sections' accessors (`ServerSettings::request_timeout`, …).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The SHA-256 digest of an API key, written as 64 hex characters (either
/// case). Printed as `[REDACTED]`, like the secrets it stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub const MESSAGE: &'static str =
        "must be the SHA-256 hex digest of the key (64 hex characters)";

    pub fn from_hex(s: &str) -> Option<KeyDigest> {
        let mut d = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut d).ok()?;
        Some(KeyDigest(d))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest([REDACTED])")
    }
}

impl Serialize for KeyDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[REDACTED]")
    }
}

impl<'de> Deserialize<'de> for KeyDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyDigest::from_hex(&s).ok_or_else(|| serde::de::Error::custom(Self::MESSAGE))
    }
}

/// `logging.level`: a pino-style level name (`trace` … `fatal`, `silent`)
/// or a tracing filter directive (`x402_facilitator=debug,info`). Kept as
/// written (for `check-config`) and as the filter it means.
#[derive(Clone, PartialEq, Eq)]
pub struct LogLevel {
    written: String,
    directive: String,
}

impl LogLevel {
    pub const MESSAGE: &'static str =
        "must be one of trace, debug, info, warn, error, fatal, silent (or a tracing filter)";

    /// A level name or a filter directive. A bare word must be a level name:
    /// tracing would read `shout` as a target and log nothing.
    pub fn parse(level: &str) -> Option<LogLevel> {
        let l = level.trim().to_ascii_lowercase();
        let directive = match l.as_str() {
            "trace" | "debug" | "info" | "warn" | "error" | "off" => l.clone(),
            "fatal" => "error".into(),
            "silent" => "off".into(),
            _ if !l.contains(['=', ',', ':']) => return None,
            _ => {
                tracing_subscriber::EnvFilter::try_new(level.trim()).ok()?;
                level.trim().to_owned()
            }
        };
        Some(LogLevel {
            written: level.to_owned(),
            directive,
        })
    }

    /// The tracing filter directive this level means.
    pub fn directive(&self) -> &str {
        &self.directive
    }

    pub fn as_str(&self) -> &str {
        &self.written
    }
}

impl Default for LogLevel {
    fn default() -> Self {
        LogLevel {
            written: "info".into(),
            directive: "info".into(),
        }
    }
}

impl fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.written)
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written)
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LogLevel::parse(&s).ok_or_else(|| serde::de::Error::custom(Self::MESSAGE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_names_or_filters() {
        assert_eq!(LogLevel::parse("fatal").unwrap().directive(), "error");
        assert_eq!(LogLevel::parse("SILENT").unwrap().directive(), "off");
        assert_eq!(LogLevel::parse("Warn").unwrap().as_str(), "Warn");
        assert_eq!(
            LogLevel::parse("x402_facilitator=debug,info")
                .unwrap()
                .directive(),
            "x402_facilitator=debug,info"
        );
        assert!(LogLevel::parse("shout").is_none());
        assert!(LogLevel::parse("a=b=c,[").is_none());
    }

    #[test]
    fn key_digests_are_64_hex() {
        let d = KeyDigest::from_hex(&"AB".repeat(32)).unwrap();
        assert_eq!(d.bytes(), &[0xab; 32]);
        assert!(KeyDigest::from_hex(&"ab".repeat(31)).is_none());
        assert!(KeyDigest::from_hex(&"zz".repeat(32)).is_none());
        assert_eq!(format!("{d:?}"), "KeyDigest([REDACTED])");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"[REDACTED]\"");
    }
}

/// A duration written in milliseconds (`...Ms` keys).
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A duration written in seconds (`...Seconds` keys).
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}
