//! The identities a settle call is judged by: which requirements a
//! settlement was made under, which exact request a payment identifier was
//! first used with, and which caller received a payment's one success.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::protocol::parse::ParsedRequest;

/// SHA-256 hex of a value's JSON text. serde_json maps are ordered (this
/// crate does not enable `preserve_order`), so equal values give equal text.
fn json_digest<T: serde::Serialize>(value: &T) -> String {
    let v = serde_json::to_value(value).unwrap_or(Value::Null);
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

/// Digest of the payment requirements: the settlement's policy identity.
pub fn requirements(req: &ParsedRequest) -> String {
    match req {
        ParsedRequest::V2(r) => json_digest(&r.payment_requirements),
        ParsedRequest::V1(r) => json_digest(&r.payment_requirements),
    }
}

/// Digest of the whole request: payload and requirements together. A
/// payment identifier is bound to it (the extension's fingerprint: the
/// exact payload, scheme, network, asset, amount, payTo, resource...).
pub fn request(req: &ParsedRequest) -> String {
    let (payload, requirements) = match req {
        ParsedRequest::V2(r) => (
            serde_json::to_value(&r.payment_payload),
            serde_json::to_value(&r.payment_requirements),
        ),
        ParsedRequest::V1(r) => (
            serde_json::to_value(&r.payment_payload),
            serde_json::to_value(&r.payment_requirements),
        ),
    };
    let both = serde_json::json!({
        "payload": payload.unwrap_or(Value::Null),
        "requirements": requirements.unwrap_or(Value::Null),
    });
    json_digest(&both)
}

/// The key a payment identifier is stored under: scoped by tenant (the API
/// key's identity, or `public` without keys), so two resource servers
/// cannot read each other's answers.
pub fn idempotency_id(tenant: Option<&str>, payment_id: &str) -> String {
    format!("{}:{payment_id}", tenant.unwrap_or("public"))
}

/// Who received a payment's success: binds tenant, payment identifier and
/// the request digest, so only that caller's idempotent retry sees it again.
pub fn delivery_key(tenant: Option<&str>, payment_id: &str, request_digest: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant.unwrap_or("public").as_bytes());
    h.update([0]);
    h.update(payment_id.as_bytes());
    h.update([0]);
    h.update(request_digest.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_tenants_ids_and_requests() {
        let a = delivery_key(Some("t1"), "pay_1234567890abcdef", "d1");
        assert_eq!(a, delivery_key(Some("t1"), "pay_1234567890abcdef", "d1"));
        assert_ne!(a, delivery_key(Some("t2"), "pay_1234567890abcdef", "d1"));
        assert_ne!(a, delivery_key(None, "pay_1234567890abcdef", "d1"));
        assert_ne!(a, delivery_key(Some("t1"), "pay_1234567890abcdeg", "d1"));
        assert_ne!(a, delivery_key(Some("t1"), "pay_1234567890abcdef", "d2"));
        assert_eq!(idempotency_id(None, "x"), "public:x");
        assert_eq!(idempotency_id(Some("k1"), "x"), "k1:x");
    }
}
