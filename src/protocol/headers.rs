//! Base64 header codecs for the x402 HTTP transport.
//!
//! v2: `PAYMENT-REQUIRED` (402 answer), `PAYMENT-SIGNATURE` (buyer payload),
//! `PAYMENT-RESPONSE` (settle result). v1: `X-PAYMENT`, `X-PAYMENT-RESPONSE`.
//! Each header is base64 (standard alphabet) of a JSON document. We always
//! *encode* with padding; we *decode* with or without it, because some
//! clients strip padding from header values.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// v2: payment requirements in a 402 answer.
pub const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
/// v2: the buyer's payment payload.
pub const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
/// v2: the settlement result.
pub const PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
/// v1: the buyer's payment payload.
pub const X_PAYMENT: &str = "X-PAYMENT";
/// v1: the settlement result.
pub const X_PAYMENT_RESPONSE: &str = "X-PAYMENT-RESPONSE";

/// Largest header value we decode (a 16 KiB transaction is ~22 KiB of base64, plus JSON).
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Standard alphabet, padding required on encode, optional on decode.
pub const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a header value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header value is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    #[error("header value is not base64: {0}")]
    Base64(String),
    #[error("header value is not the expected JSON: {0}")]
    Json(String),
}

/// Encode a value as a header: base64 (standard, padded) of its JSON.
pub fn encode_header<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_vec(value)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}

/// Decode a header value into `T`.
pub fn decode_header<T: DeserializeOwned>(value: &str) -> Result<T, HeaderError> {
    let bytes = decode_header_bytes(value)?;
    serde_json::from_slice(&bytes).map_err(|e| HeaderError::Json(e.to_string()))
}

/// Decode a header value to the raw JSON bytes.
pub fn decode_header_bytes(value: &str) -> Result<Vec<u8>, HeaderError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong);
    }
    STANDARD_LENIENT
        .decode(value.trim())
        .map_err(|e| HeaderError::Base64(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::SettleResponse;

    #[test]
    fn round_trip_padded_and_unpadded() {
        let r = SettleResponse {
            success: true,
            transaction: "ab".repeat(32),
            network: "cardano:preprod".into(),
            payer: Some("addr_test1x".into()),
            error_reason: None,
            error_message: None,
            extra: None,
            extensions: None,
        };
        let h = encode_header(&r).unwrap();
        assert!(h.len().is_multiple_of(4));
        assert_eq!(decode_header::<SettleResponse>(&h).unwrap(), r);
        let unpadded = h.trim_end_matches('=');
        assert_eq!(decode_header::<SettleResponse>(unpadded).unwrap(), r);
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            decode_header::<SettleResponse>("!!!"),
            Err(HeaderError::Base64(_))
        ));
        assert!(matches!(
            decode_header::<SettleResponse>("e30="),
            Err(HeaderError::Json(_))
        ));
        let long = "A".repeat(MAX_HEADER_LEN + 4);
        assert_eq!(
            decode_header::<SettleResponse>(&long),
            Err(HeaderError::TooLong)
        );
        // URL-safe alphabet is not the standard one.
        assert!(matches!(
            decode_header_bytes("-_-_"),
            Err(HeaderError::Base64(_))
        ));
    }
}
