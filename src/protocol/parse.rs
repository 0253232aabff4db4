//! Parsing a `/verify` or `/settle` body, aware of `x402Version`.
//!
//! Two kinds of failure are kept apart because they travel differently:
//!
//! - the body is not JSON, or lacks the `{x402Version?, paymentPayload,
//!   paymentRequirements}` envelope: the caller did not speak x402 at all, so
//!   HTTP answers 400 `invalid_payload` ([`EnvelopeError::Malformed`]);
//! - the envelope is there but its contents break the protocol (unknown
//!   version, a required field missing or of the wrong type): a business
//!   rejection, answered HTTP 200 with `isValid:false` / `success:false` and
//!   a reason code ([`EnvelopeError::Rejected`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value as Json;
use serde_json::value::RawValue;

use super::reason::Reason;
use super::types::{PaymentRequirementsV2, RequestV1, RequestV2};

/// A request whose envelope and field types are right (contents unchecked).
#[derive(Clone, Debug, PartialEq)]
pub enum ParsedRequest {
    V2(RequestV2),
    V1(RequestV1),
}

/// The requirement fields the verify pipeline uses, the same for v1 and v2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequirementsView<'a> {
    pub scheme: &'a str,
    pub network: &'a str,
    /// `amount` (v2) or `maxAmountRequired` (v1).
    pub amount: &'a str,
    pub asset: &'a str,
    pub pay_to: &'a str,
    pub max_timeout_seconds: u64,
    pub extra: &'a Json,
    /// Keys of `extra.parameters` in document order, when known (see [`super::key_order`]).
    pub parameter_order: Option<&'a [String]>,
}

impl ParsedRequest {
    pub fn x402_version(&self) -> u8 {
        match self {
            ParsedRequest::V2(_) => 2,
            ParsedRequest::V1(_) => 1,
        }
    }

    /// The policy: what `paymentRequirements` asks for (never the client's copy).
    pub fn requirements(&self) -> RequirementsView<'_> {
        match self {
            ParsedRequest::V2(r) => view_v2(&r.payment_requirements),
            ParsedRequest::V1(r) => {
                let q = &r.payment_requirements;
                RequirementsView {
                    scheme: &q.scheme,
                    network: &q.network,
                    amount: &q.max_amount_required,
                    asset: &q.asset,
                    pay_to: &q.pay_to,
                    max_timeout_seconds: q.max_timeout_seconds,
                    extra: &q.extra,
                    parameter_order: q.parameter_order.as_deref(),
                }
            }
        }
    }

    /// The scheme-specific payload object.
    pub fn payload(&self) -> &Json {
        match self {
            ParsedRequest::V2(r) => &r.payment_payload.payload,
            ParsedRequest::V1(r) => &r.payment_payload.payload,
        }
    }

    /// The requirement fields the buyer claims to have accepted: `accepted` (v2),
    /// or for v1 the payload's top-level scheme and network (the only ones it carries).
    pub fn accepted_scheme_network(&self) -> (&str, &str) {
        match self {
            ParsedRequest::V2(r) => (
                &r.payment_payload.accepted.scheme,
                &r.payment_payload.accepted.network,
            ),
            ParsedRequest::V1(r) => (&r.payment_payload.scheme, &r.payment_payload.network),
        }
    }

    /// v2's `accepted`, as a view.
    pub fn accepted_v2(&self) -> Option<RequirementsView<'_>> {
        match self {
            ParsedRequest::V2(r) => Some(view_v2(&r.payment_payload.accepted)),
            ParsedRequest::V1(_) => None,
        }
    }
}

fn view_v2(q: &PaymentRequirementsV2) -> RequirementsView<'_> {
    RequirementsView {
        scheme: &q.scheme,
        network: &q.network,
        amount: &q.amount,
        asset: &q.asset,
        pay_to: &q.pay_to,
        max_timeout_seconds: q.max_timeout_seconds,
        extra: &q.extra,
        parameter_order: q.parameter_order.as_deref(),
    }
}

/// Why a body is not a usable request; see the module docs for the two kinds.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// HTTP 400 `invalid_payload`.
    #[error("invalid_payload: {0}")]
    Malformed(String),
    /// HTTP 200 business rejection with `reason`.
    #[error("{reason}: {message}")]
    Rejected {
        reason: Reason,
        message: String,
        /// `paymentRequirements.network` as sent, if any (settle answers always carry a network).
        network: Option<String>,
    },
}

impl EnvelopeError {
    /// The reason code to answer with.
    pub fn reason(&self) -> Reason {
        match self {
            EnvelopeError::Malformed(_) => Reason::InvalidPayload,
            EnvelopeError::Rejected { reason, .. } => *reason,
        }
    }
    /// Should HTTP answer 400 (true) or 200 with a rejection (false)?
    pub fn is_bad_request(&self) -> bool {
        matches!(self, EnvelopeError::Malformed(_))
    }
}

fn first_line(e: &serde_json::Error) -> String {
    let mut s = e.to_string();
    crate::cardano::types::truncate_chars(&mut s, 200);
    s
}

/// `paymentRequirements` as the version's type, or the business rejection.
fn typed_requirements<T: serde::de::DeserializeOwned>(
    v: &Json,
    network: &Option<String>,
) -> Result<T, EnvelopeError> {
    // Deserialize from the borrowed tree: no copy of the requirements.
    T::deserialize(v).map_err(|e| EnvelopeError::Rejected {
        reason: Reason::InvalidRequirements,
        message: format!("paymentRequirements: {}", first_line(&e)),
        network: network.clone(),
    })
}

/// `paymentPayload` as the version's type (its own `x402Version` defaulting
/// to the envelope's), or the business rejection.
fn typed_payload<T: serde::de::DeserializeOwned>(
    v: &Json,
    version: u64,
    network: &Option<String>,
) -> Result<T, EnvelopeError> {
    // The usual payload carries its version: deserialize it in place. Only
    // one without gets copied, to add the envelope's.
    let typed = if v.get("x402Version").is_some() {
        T::deserialize(v)
    } else {
        let mut pp = v.clone();
        if let Some(m) = pp.as_object_mut() {
            m.insert("x402Version".into(), Json::from(version));
        }
        serde_json::from_value(pp)
    };
    typed.map_err(|e| EnvelopeError::Rejected {
        reason: Reason::InvalidPayloadShape,
        message: format!("paymentPayload: {}", first_line(&e)),
        network: network.clone(),
    })
}

/// Parse a verify/settle body. See the module docs for the error split.
///
/// A well-formed request is read straight into its typed form ([`fast_path`]);
/// anything else takes the general path, which builds a JSON tree first and
/// so can say precisely what is wrong. Both give the same answer for every
/// body: the fast path only ever returns a request the general path would
/// have returned too, and defers to it otherwise.
pub fn parse_request(body: &[u8]) -> Result<ParsedRequest, EnvelopeError> {
    if let Some(parsed) = fast_path(body) {
        return Ok(parsed);
    }
    general_path(body)
}

/// The envelope's three members, as raw JSON text borrowed from the body.
#[derive(Default)]
struct RawEnvelope<'a> {
    version: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
    requirements: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for RawEnvelope<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawEnvelope<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut env = RawEnvelope::default();
                // A repeated member: the last one counts, as in a JSON tree.
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "x402Version" => &mut env.version,
                        "paymentPayload" => &mut env.payload,
                        "paymentRequirements" => &mut env.requirements,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<&'de RawValue>()?);
                }
                Ok(env)
            }
        }
        d.deserialize_map(Members)
    }
}

/// The typed request read directly from the body, without a JSON tree, when
/// it is a well-formed v2 or v1 request whose envelope and payload both state
/// the same version; `None` for anything else (the general path decides).
fn fast_path(body: &[u8]) -> Option<ParsedRequest> {
    // serde_json limits nesting per parse; parsing the members one by one
    // would let a body one level deeper than the general path allows through.
    if nesting_exceeds(body, FAST_PATH_MAX_DEPTH) {
        return None;
    }
    let env: RawEnvelope<'_> = serde_json::from_slice(body).ok()?;
    let (version, payload, requirements) = (env.version?, env.payload?, env.requirements?);
    if !payload.get().starts_with('{') || !requirements.get().starts_with('{') {
        return None;
    }
    match version.get() {
        "2" => {
            let (payment_payload, payment_requirements) =
                typed_pair::<super::types::PaymentPayloadV2, PaymentRequirementsV2>(
                    payload,
                    requirements,
                    body,
                    |p| p.x402_version == 2,
                    |q| (&q.extra, &mut q.parameter_order),
                )?;
            Some(ParsedRequest::V2(RequestV2 {
                x402_version: 2,
                payment_payload,
                payment_requirements,
            }))
        }
        "1" => {
            let (payment_payload, payment_requirements) =
                typed_pair::<super::types::PaymentPayloadV1, super::types::PaymentRequirementsV1>(
                    payload,
                    requirements,
                    body,
                    |p| p.x402_version == 1,
                    |q| (&q.extra, &mut q.parameter_order),
                )?;
            Some(ParsedRequest::V1(RequestV1 {
                x402_version: 1,
                payment_payload,
                payment_requirements,
            }))
        }
        _ => None,
    }
}

/// One version's payload and requirements from their raw text, the payload's
/// own version checked by `same_version`, and the parameter key order set.
fn typed_pair<P, Q>(
    payload: &RawValue,
    requirements: &RawValue,
    body: &[u8],
    same_version: impl Fn(&P) -> bool,
    order_slot: impl Fn(&mut Q) -> (&Json, &mut Option<Vec<String>>),
) -> Option<(P, Q)>
where
    P: serde::de::DeserializeOwned,
    Q: serde::de::DeserializeOwned,
{
    let mut q: Q = serde_json::from_str(requirements.get()).ok()?;
    let p: P = serde_json::from_str(payload.get()).ok()?;
    if !same_version(&p) {
        return None;
    }
    let (extra, order) = order_slot(&mut q);
    *order = super::key_order::parameter_order(extra, body);
    Some((p, q))
}

/// Deeper bodies go the general path (well under serde_json's limit of 128).
const FAST_PATH_MAX_DEPTH: usize = 64;

/// Does `body` nest arrays and objects more than `limit` deep? Brackets
/// inside strings do not count; the body need not be valid JSON.
fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                // Skip the string: to its closing quote, past escaped characters.
                i += 1;
                while let Some(at) = memchr::memchr2(b'"', b'\\', body.get(i..).unwrap_or_default())
                {
                    i += at;
                    if body[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
                if i >= body.len() {
                    return false;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// The general path: the body as a JSON tree, then each part typed from it.
fn general_path(body: &[u8]) -> Result<ParsedRequest, EnvelopeError> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| EnvelopeError::Malformed(format!("body is not JSON: {}", first_line(&e))))?;
    let obj = json
        .as_object()
        .ok_or_else(|| EnvelopeError::Malformed("body is not a JSON object".into()))?;
    let payload = obj
        .get("paymentPayload")
        .filter(|v| v.is_object())
        .ok_or_else(|| {
            EnvelopeError::Malformed("paymentPayload is missing or not an object".into())
        })?;
    let requirements = obj
        .get("paymentRequirements")
        .filter(|v| v.is_object())
        .ok_or_else(|| {
            EnvelopeError::Malformed("paymentRequirements is missing or not an object".into())
        })?;
    // Echoed in settle answers: a CIP-34 alias is answered with its canonical id.
    let network = requirements.get("network").and_then(Json::as_str).map(|n| {
        match crate::cardano::Network::parse_any(n) {
            Some(net) if n.starts_with("cip34:") => net.caip2().to_owned(),
            _ => n.to_owned(),
        }
    });
    let reject = |reason: Reason, message: String| EnvelopeError::Rejected {
        reason,
        message,
        network: network.clone(),
    };

    let outer = obj.get("x402Version");
    let inner = payload.get("x402Version");
    let version = match (outer, inner) {
        (None, None) => return Err(EnvelopeError::Malformed("x402Version is missing".into())),
        // A v2 envelope carrying a payload of another version: the Cardano
        // scheme's own code (spec; TS and Java answer it too). A v1 envelope
        // keeps the core code, as v1 clients expect.
        (Some(o), Some(i)) if o != i && o.as_u64() == Some(2) => {
            return Err(reject(
                Reason::UnsupportedVersion,
                format!("paymentPayload.x402Version {i} is not supported (only 2 in a v2 request)"),
            ));
        }
        (Some(o), Some(i)) if o != i => {
            return Err(reject(
                Reason::InvalidX402Version,
                format!("x402Version {o} of the request differs from {i} of the payment payload"),
            ));
        }
        (Some(v), _) | (None, Some(v)) => v,
    };
    match version.as_u64() {
        Some(2) => {
            let mut payment_requirements: super::types::PaymentRequirementsV2 =
                typed_requirements(requirements, &network)?;
            payment_requirements.parameter_order =
                super::key_order::parameter_order(&payment_requirements.extra, body);
            let payment_payload = typed_payload(payload, 2, &network)?;
            Ok(ParsedRequest::V2(RequestV2 {
                x402_version: 2,
                payment_payload,
                payment_requirements,
            }))
        }
        Some(1) => {
            let mut payment_requirements: super::types::PaymentRequirementsV1 =
                typed_requirements(requirements, &network)?;
            payment_requirements.parameter_order =
                super::key_order::parameter_order(&payment_requirements.extra, body);
            let payment_payload = typed_payload(payload, 1, &network)?;
            Ok(ParsedRequest::V1(RequestV1 {
                x402_version: 1,
                payment_payload,
                payment_requirements,
            }))
        }
        _ => Err(reject(
            Reason::InvalidX402Version,
            format!("x402Version {version} is not supported (1 or 2)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req_v2() -> Json {
        json!({
            "x402Version": 2,
            "paymentPayload": {
                "x402Version": 2,
                "accepted": {"scheme": "exact", "network": "cardano:preprod", "amount": "1000000",
                             "asset": "lovelace", "payTo": "addr_test1x", "maxTimeoutSeconds": 600, "extra": {}},
                "payload": {"transaction": "AA==", "nonce": "x#0"}
            },
            "paymentRequirements": {"scheme": "exact", "network": "cardano:preprod", "amount": "1000000",
                                    "asset": "lovelace", "payTo": "addr_test1x", "maxTimeoutSeconds": 600, "extra": {}}
        })
    }

    fn parse(j: &Json) -> Result<ParsedRequest, EnvelopeError> {
        parse_request(&serde_json::to_vec(j).unwrap())
    }

    #[test]
    fn v2_and_v1_parse() {
        let r = parse(&req_v2()).unwrap();
        assert_eq!(r.x402_version(), 2);
        assert_eq!(r.requirements().amount, "1000000");
        assert_eq!(r.accepted_scheme_network(), ("exact", "cardano:preprod"));

        let v1 = json!({
            "x402Version": 1,
            "paymentPayload": {"x402Version": 1, "scheme": "exact", "network": "cardano-preprod",
                               "payload": {"transaction": "AA==", "nonce": "x#0"}},
            "paymentRequirements": {"scheme": "exact", "network": "cardano-preprod", "maxAmountRequired": "5",
                "resource": "https://x/y", "description": "", "mimeType": "application/json",
                "payTo": "addr_test1x", "maxTimeoutSeconds": 60, "asset": "lovelace", "extra": null}
        });
        let r = parse(&v1).unwrap();
        assert_eq!(r.x402_version(), 1);
        assert_eq!(r.requirements().amount, "5");
        assert_eq!(r.requirements().network, "cardano-preprod");
    }

    #[test]
    fn not_json_or_no_envelope_is_a_bad_request() {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"{\"x402Version\":2}",
            b"{\"x402Version\":2,\"paymentPayload\":1,\"paymentRequirements\":{}}",
        ] {
            let e = parse_request(body).unwrap_err();
            assert!(e.is_bad_request(), "{e}");
            assert_eq!(e.reason(), Reason::InvalidPayload);
        }
        let mut j = req_v2();
        j.as_object_mut().unwrap().remove("x402Version");
        j["paymentPayload"]
            .as_object_mut()
            .unwrap()
            .remove("x402Version");
        assert!(parse(&j).unwrap_err().is_bad_request());
    }

    #[test]
    fn business_rejections_carry_reason_codes() {
        let mut j = req_v2();
        j["x402Version"] = json!(3);
        j["paymentPayload"]["x402Version"] = json!(3);
        let e = parse(&j).unwrap_err();
        assert_eq!(e.reason(), Reason::InvalidX402Version);
        assert!(!e.is_bad_request());

        let mut j = req_v2();
        j["paymentPayload"]["x402Version"] = json!(1);
        assert_eq!(parse(&j).unwrap_err().reason(), Reason::UnsupportedVersion);
        j["paymentPayload"]["x402Version"] = json!("2");
        assert_eq!(parse(&j).unwrap_err().reason(), Reason::UnsupportedVersion);
        let mut j = req_v2();
        j["x402Version"] = json!(1);
        assert_eq!(parse(&j).unwrap_err().reason(), Reason::InvalidX402Version);
        let mut j = req_v2();
        j["paymentRequirements"]["network"] = json!("cip34:0-1");
        j["paymentRequirements"]
            .as_object_mut()
            .unwrap()
            .remove("payTo");
        assert!(matches!(parse(&j).unwrap_err(),
            EnvelopeError::Rejected { network: Some(ref n), .. } if n == "cardano:preprod"));

        let mut j = req_v2();
        j["paymentRequirements"]
            .as_object_mut()
            .unwrap()
            .remove("payTo");
        let e = parse(&j).unwrap_err();
        assert_eq!(e.reason(), Reason::InvalidRequirements);
        assert!(
            matches!(e, EnvelopeError::Rejected { network: Some(ref n), .. } if n == "cardano:preprod")
        );

        let mut j = req_v2();
        j["paymentPayload"]
            .as_object_mut()
            .unwrap()
            .remove("accepted");
        assert_eq!(parse(&j).unwrap_err().reason(), Reason::InvalidPayloadShape);

        let mut j = req_v2();
        j["paymentRequirements"]["maxTimeoutSeconds"] = json!(-5);
        assert_eq!(parse(&j).unwrap_err().reason(), Reason::InvalidRequirements);
    }

    /// Bodies around the fast path's edges: each must get the general path's
    /// answer, and the ordinary ones must take the fast path.
    #[test]
    fn the_fast_path_agrees_with_the_general_path() {
        const V2: &str = r#"{"x402Version":2,"paymentPayload":{"x402Version":2,"accepted":{"scheme":"exact","network":"cardano:preprod","amount":"1000000","asset":"lovelace","payTo":"addr_test1x","maxTimeoutSeconds":600,"extra":{}},"payload":{"transaction":"AA==","nonce":"x#0"}},"paymentRequirements":{"scheme":"exact","network":"cardano:preprod","amount":"1000000","asset":"lovelace","payTo":"addr_test1x","maxTimeoutSeconds":600,"extra":{}}}"#;
        const V1: &str = r#"{"x402Version":1,"paymentPayload":{"x402Version":1,"scheme":"exact","network":"cardano-preprod","payload":{"transaction":"AA==","nonce":"x#0"}},"paymentRequirements":{"scheme":"exact","network":"cardano-preprod","maxAmountRequired":"5","resource":"https://x/y","description":"","mimeType":"application/json","payTo":"addr_test1x","maxTimeoutSeconds":60,"asset":"lovelace","extra":null}}"#;
        let edit = |from: &str, to: &str| {
            assert!(V2.contains(from), "{from}");
            V2.replacen(from, to, 1)
        };
        let last_extra = r#""extra":{}}}"#;
        let with_params = edit(last_extra, r#""extra":{"parameters":{"b":1,"a":2}}}}"#);
        let deep = |n: usize| {
            edit(
                last_extra,
                &format!(r#""extra":{{"d":{}1{}}}}}}}"#, "[".repeat(n), "]".repeat(n)),
            )
        };
        let fast: Vec<String> = vec![
            V2.into(),
            V1.into(),
            with_params.clone(),
            format!(" \n{V2}\t "),
            edit("{", r#"{"other":[1,{"x":null},"\"}"],"#),
            // A repeated envelope member: the last one counts, in both paths.
            edit("{", r#"{"paymentPayload":{"x402Version":1},"#),
            edit(r#""paymentPayload""#, r#""payment\u0050ayload""#),
            edit(
                r#""payload":{"#,
                r#""extensions":{"payment-identifier":{"info":{"id":"abcdefghijklmnop"}}},"payload":{"#,
            ),
            deep(60),
            deep(FAST_PATH_MAX_DEPTH - 3),
        ];
        let general_only: Vec<String> = vec![
            // A repeated member inside the requirements (a tree keeps the last one).
            edit(
                r#""paymentRequirements":{"scheme""#,
                r#""paymentRequirements":{"amount":"1","scheme""#,
            ),
            edit(
                r#""paymentPayload":{"x402Version":2,"#,
                r#""paymentPayload":{"#,
            ),
            edit(
                r#"{"x402Version":2,"paymentPayload""#,
                r#"{"paymentPayload""#,
            ),
            edit(r#"{"x402Version":2,"#, r#"{"x402Version":2.0,"#),
            edit(r#"{"x402Version":2,"#, r#"{"x402Version":"2","#),
            edit(r#"{"x402Version":2,"#, r#"{"x402Version":3,"#),
            edit(
                r#""paymentPayload":{"x402Version":2,"#,
                r#""paymentPayload":{"x402Version":1,"#,
            ),
            edit(
                r#""payTo":"addr_test1x","maxTimeoutSeconds":600,"extra":{}}}"#,
                r#""maxTimeoutSeconds":600,"extra":{}}}"#,
            ),
            r#"{"x402Version":2,"paymentPayload":{},"paymentRequirements":[]}"#.into(),
            V2[..V2.len() - 1].into(),
            deep(FAST_PATH_MAX_DEPTH - 2),
            deep(200),
            edit(
                "{",
                r#"{"other":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],"#,
            ),
            "[]".into(),
            "null".into(),
            String::new(),
        ];
        for body in fast.iter().chain(&general_only) {
            let general = general_path(body.as_bytes());
            let quick = fast_path(body.as_bytes());
            assert_eq!(
                quick.is_some(),
                fast.contains(body),
                "fast path taken? {body}"
            );
            if let Some(q) = quick {
                assert_eq!(Ok(q), general, "{body}");
            }
            assert_eq!(parse_request(body.as_bytes()), general, "{body}");
        }
        // Near serde_json's nesting limit the two paths must still agree.
        let mut depth_ok = Vec::new();
        for n in 100..=140 {
            let body = deep(n);
            let general = general_path(body.as_bytes());
            if let Some(q) = fast_path(body.as_bytes()) {
                assert_eq!(Ok(q), general, "depth {n}");
            }
            depth_ok.push(general.is_ok());
        }
        assert!(depth_ok[0] && !depth_ok[40], "{depth_ok:?}");
        assert!(!nesting_exceeds(br#"{"a":"[[[[\"{{"}"#, 1));
        assert!(nesting_exceeds(br#"{"a":"\\",[]}"#, 1));
        assert!(nesting_exceeds(b"[[[", 2) && !nesting_exceeds(b"[[]]", 2));
        let parsed = parse_request(with_params.as_bytes()).unwrap();
        assert_eq!(
            parsed.requirements().parameter_order,
            Some(&["b".to_owned(), "a".to_owned()][..])
        );
    }

    #[test]
    fn version_may_come_from_either_place() {
        let mut j = req_v2();
        j.as_object_mut().unwrap().remove("x402Version");
        assert_eq!(parse(&j).unwrap().x402_version(), 2);
        let mut j = req_v2();
        j["paymentPayload"]
            .as_object_mut()
            .unwrap()
            .remove("x402Version");
        assert_eq!(parse(&j).unwrap().x402_version(), 2);
    }
}
