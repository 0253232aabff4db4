//! x402 wire types, v2 and v1 (legacy but still in use).
//!
//! Field names are camelCase on the wire. Unknown fields are tolerated (the
//! protocol grows by adding fields); required fields are enforced by serde, and
//! the verify pipeline enforces their *contents*. Scheme-specific parts
//! (`payload`, `extra`, `extensions`) stay as JSON values here: this module
//! knows JSON, not Cardano.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// What a resource server asks for (v2). Also the `accepted` copy inside a v2 payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV2 {
    pub scheme: String,
    /// CAIP-2 network (`cardano:preprod`); CIP-34 aliases are accepted and normalised.
    pub network: String,
    /// Integer string in atomic units of `asset`.
    pub amount: String,
    /// `lovelace` or `<policy hex>.<asset name hex>`.
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    /// Scheme-specific options (`confirmationPolicy`, `assetTransferMethod`, ...).
    #[serde(default)]
    pub extra: Json,
    /// Keys of `extra.parameters` in the order the JSON text wrote them, which `Json` maps
    /// forget; filled by [`parse_request`](super::parse_request) when that order can matter.
    /// Never on the wire.
    #[serde(skip)]
    pub parameter_order: Option<Vec<String>>,
}

/// What a resource server asks for (v1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV1 {
    pub scheme: String,
    /// v1 network name (`cardano-preprod`).
    pub network: String,
    pub max_amount_required: String,
    pub resource: String,
    pub description: String,
    pub mime_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Json>,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub asset: String,
    #[serde(default)]
    pub extra: Json,
    /// As [`PaymentRequirementsV2::parameter_order`].
    #[serde(skip)]
    pub parameter_order: Option<Vec<String>>,
}

/// The paid resource, as described in a v2 payload or 402 answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The buyer's payment (v2): carried base64-encoded in `PAYMENT-SIGNATURE`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV2 {
    pub x402_version: u8,
    /// The requirements the buyer chose; must match `paymentRequirements`.
    pub accepted: PaymentRequirementsV2,
    /// Scheme-specific; for Cardano `exact` see [`CardanoExactPayload`].
    pub payload: Json,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Map<String, Json>>,
}

/// Why a `payment-identifier` extension value is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("payment-identifier id must be 16-128 characters of [A-Za-z0-9_-]")]
pub struct PaymentIdentifierError;

impl PaymentPayloadV2 {
    /// The idempotency key of the `payment-identifier` extension
    /// (`extensions["payment-identifier"].info.id`), if the buyer sent one.
    ///
    /// An entry without an `id` (absent or null) carries no key: clients echo
    /// the resource server's declaration (`{info: {required: false}, schema}`)
    /// into every payload, and only those that opt in add an `id` to it.
    pub fn payment_identifier(&self) -> Option<Result<&str, PaymentIdentifierError>> {
        let ext = self.extensions.as_ref()?.get("payment-identifier")?;
        let id = ext.get("info").and_then(|i| i.get("id"))?;
        if id.is_null() {
            return None;
        }
        Some(match id.as_str() {
            Some(s)
                if (16..=128).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                Ok(s)
            }
            _ => Err(PaymentIdentifierError),
        })
    }
}

/// The buyer's payment (v1): carried base64-encoded in `X-PAYMENT`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV1 {
    pub x402_version: u8,
    pub scheme: String,
    pub network: String,
    pub payload: Json,
}

/// The Cardano `exact` scheme payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardanoExactPayload {
    /// Base64 (standard alphabet) of the signed transaction CBOR.
    pub transaction: String,
    /// `<64 hex tx id>#<output index>`: one of the transaction's inputs.
    pub nonce: String,
}

/// `POST /verify` and `POST /settle` body, v2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestV2 {
    pub x402_version: u8,
    pub payment_payload: PaymentPayloadV2,
    pub payment_requirements: PaymentRequirementsV2,
}

/// `POST /verify` and `POST /settle` body, v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestV1 {
    pub x402_version: u8,
    pub payment_payload: PaymentPayloadV1,
    pub payment_requirements: PaymentRequirementsV1,
}

/// Names for the two verify/settle request bodies (same shape).
pub type VerifyRequest = RequestV2;
pub type SettleRequest = RequestV2;

/// `POST /verify` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub is_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_message: Option<String>,
    /// Bech32 address of the payer (the nonce's owner), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Json>,
}

impl VerifyResponse {
    pub fn valid(payer: impl Into<String>) -> Self {
        VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            invalid_message: None,
            payer: Some(payer.into()),
            extensions: None,
        }
    }
    pub fn invalid(reason: &str, message: impl Into<String>, payer: Option<String>) -> Self {
        VerifyResponse {
            is_valid: false,
            invalid_reason: Some(reason.to_owned()),
            invalid_message: Some(message.into()),
            payer,
            extensions: None,
        }
    }
}

/// `POST /settle` answer (also the decoded `PAYMENT-RESPONSE` header).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    /// Tx id; `""` when nothing was broadcast; always the id for `settlement_pending`.
    pub transaction: String,
    /// Always filled.
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The Cardano scheme's settlement status (sheet 2.5):
    /// `{status: "confirmed"|"mempool"|"pending"|"expired"|"rejected",
    /// confirmations?, transactionId?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Json>,
    /// Extension outcomes (none today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Json>,
}

/// One (version, scheme, network) this facilitator handles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    pub x402_version: u8,
    pub scheme: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Json>,
}

/// `GET /supported` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SupportedResponse {
    pub kinds: Vec<SupportedKind>,
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Signer addresses by CAIP-2 pattern (`cardano:*`); empty: this facilitator signs nothing.
    #[serde(default)]
    pub signers: BTreeMap<String, Vec<String>>,
}

/// The 402 answer body (v2), carried base64-encoded in `PAYMENT-REQUIRED`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV2 {
    pub x402_version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    pub accepts: Vec<PaymentRequirementsV2>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Json>,
}

/// The 402 answer body (v1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1 {
    pub x402_version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub accepts: Vec<PaymentRequirementsV1>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v2_requirements_round_trip_and_tolerate_unknown_fields() {
        let j = json!({
            "scheme": "exact", "network": "cardano:preprod", "amount": "1000000",
            "asset": "lovelace", "payTo": "addr_test1...", "maxTimeoutSeconds": 600,
            "extra": {"confirmationPolicy": {"l1Confirmations": 1}}, "somethingNew": true
        });
        let r: PaymentRequirementsV2 = serde_json::from_value(j).unwrap();
        assert_eq!(r.pay_to, "addr_test1...");
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["maxTimeoutSeconds"], 600);
        assert!(back.get("somethingNew").is_none());
    }

    #[test]
    fn required_fields_are_enforced() {
        let j = json!({"scheme": "exact", "network": "cardano:preprod", "asset": "lovelace",
                       "payTo": "x", "maxTimeoutSeconds": 600});
        assert!(serde_json::from_value::<PaymentRequirementsV2>(j).is_err());
        let j = json!({"transaction": "AA=="});
        assert!(serde_json::from_value::<CardanoExactPayload>(j).is_err());
    }

    #[test]
    fn responses_omit_absent_fields() {
        let v = serde_json::to_value(VerifyResponse::valid("addr_test1xyz")).unwrap();
        assert_eq!(v, json!({"isValid": true, "payer": "addr_test1xyz"}));
        let v = serde_json::to_value(VerifyResponse::invalid("unsupported_scheme", "no", None))
            .unwrap();
        assert_eq!(
            v,
            json!({"isValid": false, "invalidReason": "unsupported_scheme", "invalidMessage": "no"})
        );
    }

    #[test]
    fn payment_identifier_extension() {
        let mut p: PaymentPayloadV2 = serde_json::from_value(json!({
            "x402Version": 2,
            "accepted": {"scheme": "exact", "network": "cardano:preprod", "amount": "1",
                         "asset": "lovelace", "payTo": "x", "maxTimeoutSeconds": 1},
            "payload": {},
            "extensions": {"payment-identifier": {"info": {"id": "abcdefgh_12345678"}}}
        }))
        .unwrap();
        assert_eq!(p.payment_identifier(), Some(Ok("abcdefgh_12345678")));
        p.extensions = Some(
            serde_json::from_value(json!({"payment-identifier": {"info": {"id": "short"}}}))
                .unwrap(),
        );
        assert_eq!(p.payment_identifier(), Some(Err(PaymentIdentifierError)));
        p.extensions = Some(
            serde_json::from_value(
                json!({"payment-identifier": {"info": {"id": 12345678901234567_u64}}}),
            )
            .unwrap(),
        );
        assert_eq!(p.payment_identifier(), Some(Err(PaymentIdentifierError)));
        p.extensions = None;
        assert_eq!(p.payment_identifier(), None);
        // A declaration echoed back without an id (what the TypeScript SDK
        // sends when the buyer does not opt in) is no identifier.
        for echoed in [
            json!({"payment-identifier": {"info": {"required": false}, "schema": {"type": "object"}}}),
            json!({"payment-identifier": {"info": {"required": true, "id": null}}}),
            json!({"payment-identifier": {}}),
        ] {
            p.extensions = Some(serde_json::from_value(echoed).unwrap());
            assert_eq!(p.payment_identifier(), None);
        }
    }
}
