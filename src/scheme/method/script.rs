//! The `script` transfer method: the buyer pays a Plutus script address.
//!
//! Requirements `extra` (not a closed object):
//!
//! | field | meaning |
//! |---|---|
//! | `scriptHash` | 56 lowercase hex: the script hash `payTo` must carry |
//! | `script` | `{type: plutusV1\|plutusV2\|plutusV3, code: hex}`: the compiled validator; when present it **wins** over `scriptHash` (which is then ignored) |
//! | `parameters` | `{name: {type, value}}`, applied to `script.code` in JavaScript property order (integer-like keys ascending, then the rest as written) |
//! | `datum` | CBOR hex of Plutus data the `payTo` output must carry as an inline datum |
//!
//! Rules, in order:
//! 1. stage A: `datum` well-formed Plutus data (else `invalid_exact_cardano_requirements`), and not
//!    paired with `plutusV1` (an inline datum at a V1 script is unspendable);
//! 2. stage A: `payTo`'s **payment credential** is a script hash equal to the derived or declared
//!    hash, else `invalid_exact_cardano_payload_script_address_mismatch`, which also covers neither
//!    field present and a script or parameter that cannot be applied (as the TS reference does);
//! 3. stage E, on the output paying `payTo`: if the requirements carry `datum`, that output's inline
//!    datum is exactly those bytes; if the script is `plutusV1`, it has no inline datum. Else
//!    `invalid_exact_cardano_payload_script_datum_missing` (the Java reference's code).
//!
//! Without `datum` the facilitator never looks at the output's datum beyond the V1 rule: the
//! resource server owns the datum's meaning (spec "Datum pass-through").

use serde_json::Value as Json;

use super::{MethodError, MethodRequest, PaymentCheck};
use crate::cardano::address::Credential;
use crate::cardano::plutus::{self, BigInt, OutputDatum, PlutusData, PlutusVersion};
use crate::protocol::Reason;

/// `extra` fields the client's `accepted` copy must repeat for this method.
pub const COMMITTED_FIELDS: &[&str] = &["scriptHash", "script", "parameters", "datum"];

/// Largest `script.code` accepted, in bytes after hex decoding (program plus CBOR wrappers).
pub const MAX_CODE_BYTES: usize = plutus::MAX_PROGRAM_BYTES + 16;
/// Largest `datum`, in bytes after hex decoding.
pub const MAX_DATUM_BYTES: usize = 64 * 1024;
/// Most decimal digits of an integer parameter (sign not counted).
pub const MAX_INTEGER_DIGITS: usize = 128;
/// JavaScript's `Number.MAX_SAFE_INTEGER`: JSON-number integer parameters must be within ±this.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A validated `script` method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptMethod {
    /// The hash `payTo`'s payment credential carries (derived from `script` when given).
    pub script_hash: [u8; 28],
    /// The Plutus version, known when `script` is given.
    pub version: Option<PlutusVersion>,
    /// CBOR of the inline datum the `payTo` output must carry.
    pub datum: Option<Vec<u8>>,
}

fn mismatch(message: impl Into<String>) -> MethodError {
    (Reason::ScriptAddressMismatch, message.into())
}

fn bad_requirements(message: impl Into<String>) -> MethodError {
    (Reason::InvalidRequirements, message.into())
}

/// Lowercase, even-length hex.
fn lower_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode(s).ok()
}

fn field<'a>(extra: &'a Json, name: &str) -> Option<&'a Json> {
    extra.get(name).filter(|v| !v.is_null())
}

impl ScriptMethod {
    /// Stage A: read the method's fields and check `payTo` against the script hash.
    pub fn parse(req: &MethodRequest<'_>) -> Result<ScriptMethod, MethodError> {
        let extra = req.requirements.extra;
        let datum = parse_datum(field(extra, "datum"))?;
        let (script_hash, version) = derive_script_hash(extra, req.requirements.parameter_order)?;
        if version == Some(PlutusVersion::V1) && datum.is_some() {
            return Err(bad_requirements(
                "extra.datum cannot be paired with a plutusV1 script: \
                 an inline datum at a V1 script address is unspendable",
            ));
        }
        match req.pay_to.payment {
            Credential::ScriptHash(h) if h == script_hash => {}
            Credential::ScriptHash(h) => {
                return Err(mismatch(format!(
                    "payTo is locked by script {}, the requirements name script {}",
                    hex::encode(h),
                    hex::encode(script_hash)
                )));
            }
            Credential::KeyHash(_) => {
                return Err(mismatch(format!(
                    "payTo is a key address, the requirements name script {}",
                    hex::encode(script_hash)
                )));
            }
        }
        Ok(ScriptMethod {
            script_hash,
            version,
            datum,
        })
    }

    /// Stage E: the datum rules on the output paying `payTo`.
    pub fn check_payment(&self, p: &PaymentCheck<'_>) -> Result<(), MethodError> {
        let needs_check = self.datum.is_some() || self.version == Some(PlutusVersion::V1);
        if !needs_check {
            return Ok(());
        }
        let found = if p.output.has_datum {
            plutus::output_datum(&p.output.raw_cbor).map_err(|e| {
                (
                    Reason::ScriptDatumMissing,
                    format!("the output to payTo has an unreadable datum: {e}"),
                )
            })?
        } else {
            OutputDatum::None
        };
        let missing = |m: String| (Reason::ScriptDatumMissing, m);
        if self.version == Some(PlutusVersion::V1) && matches!(found, OutputDatum::Inline(_)) {
            return Err(missing(format!(
                "output {} pays a plutusV1 script with an inline datum, which V1 cannot read: \
                 the funds would be locked for good",
                p.output_index
            )));
        }
        let Some(want) = &self.datum else {
            return Ok(());
        };
        match found {
            OutputDatum::Inline(got) if &got == want => Ok(()),
            OutputDatum::Inline(_) => Err(missing(format!(
                "output {} carries an inline datum other than extra.datum",
                p.output_index
            ))),
            OutputDatum::Hash(_) => Err(missing(format!(
                "output {} carries a datum hash; extra.datum must be inline",
                p.output_index
            ))),
            OutputDatum::None => Err(missing(format!(
                "output {} carries no datum; extra.datum must be inline",
                p.output_index
            ))),
        }
    }
}

/// The script hash the requirements' `extra` names: derived from `script` (+ `parameters`, in
/// `parameter_order` when known) if present, else `scriptHash`; with the Plutus version when
/// `script` gives it. Sellers use this to compute their `payTo`.
pub fn derive_script_hash(
    extra: &Json,
    parameter_order: Option<&[String]>,
) -> Result<([u8; 28], Option<PlutusVersion>), MethodError> {
    match field(extra, "script") {
        Some(script) => {
            let (version, code) = parse_script(script)?;
            let params = parse_parameters(field(extra, "parameters"), parameter_order)?;
            Ok((applied_script_hash(version, &code, &params)?, Some(version)))
        }
        None => match field(extra, "scriptHash") {
            Some(h) => Ok((parse_script_hash(h)?, None)),
            None => Err(mismatch(
                "the script method needs extra.script or extra.scriptHash",
            )),
        },
    }
}

/// How many derived script hashes [`applied_script_hash`] remembers.
const HASH_CACHE_ENTRIES: usize = 1024;

/// Derived hashes by blake2b-256 of (version, code, parameters). A resource server sends the
/// same requirements with every payment, so after the first one the derivation (a walk over the
/// whole program) is a lookup. Bounded: emptied when full. Failures are not remembered.
static HASH_CACHE: std::sync::LazyLock<
    parking_lot::Mutex<std::collections::HashMap<[u8; 32], [u8; 28]>>,
> = std::sync::LazyLock::new(Default::default);

/// `script_hash(version, apply_params(code, params))`, memoised.
pub fn applied_script_hash(
    version: PlutusVersion,
    code: &[u8],
    params: &[PlutusData],
) -> Result<[u8; 28], MethodError> {
    let mut h = pallas_crypto::hash::Hasher::<256>::new();
    h.input(&[version.language_tag()]);
    h.input(&(code.len() as u64).to_be_bytes());
    h.input(code);
    for p in params {
        let cbor = p.encode();
        h.input(&(cbor.len() as u64).to_be_bytes());
        h.input(&cbor);
    }
    let key = *h.finalize();
    if let Some(hash) = HASH_CACHE.lock().get(&key) {
        return Ok(*hash);
    }
    let applied = plutus::apply_params(code, params)
        .map_err(|e| mismatch(format!("extra.script.code cannot be applied: {e}")))?;
    let hash = plutus::script_hash(version, &applied);
    let mut cache = HASH_CACHE.lock();
    if cache.len() >= HASH_CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(key, hash);
    Ok(hash)
}

fn parse_datum(v: Option<&Json>) -> Result<Option<Vec<u8>>, MethodError> {
    let Some(v) = v else { return Ok(None) };
    let s = v
        .as_str()
        .ok_or_else(|| bad_requirements("extra.datum must be a CBOR hex string"))?;
    if s.is_empty() || s.len() > 2 * MAX_DATUM_BYTES {
        return Err(bad_requirements(format!(
            "extra.datum must be 1 to {MAX_DATUM_BYTES} bytes of CBOR hex"
        )));
    }
    let bytes = lower_hex(s)
        .ok_or_else(|| bad_requirements("extra.datum must be even-length lowercase hex"))?;
    plutus::decode(&bytes)
        .map_err(|e| bad_requirements(format!("extra.datum is not Plutus data: {e}")))?;
    Ok(Some(bytes))
}

fn parse_script_hash(v: &Json) -> Result<[u8; 28], MethodError> {
    v.as_str()
        .filter(|s| s.len() == 56)
        .and_then(lower_hex)
        .and_then(|b| <[u8; 28]>::try_from(b).ok())
        .ok_or_else(|| mismatch("extra.scriptHash must be 56 lowercase hex characters"))
}

fn parse_script(v: &Json) -> Result<(PlutusVersion, Vec<u8>), MethodError> {
    let obj = v
        .as_object()
        .ok_or_else(|| mismatch("extra.script must be an object {type, code}"))?;
    let version = obj
        .get("type")
        .and_then(Json::as_str)
        .and_then(PlutusVersion::from_x402)
        .ok_or_else(|| mismatch("extra.script.type must be plutusV1, plutusV2 or plutusV3"))?;
    let code = obj
        .get("code")
        .and_then(Json::as_str)
        .ok_or_else(|| mismatch("extra.script.code must be a hex string"))?;
    if code.is_empty() || code.len() > 2 * MAX_CODE_BYTES {
        return Err(mismatch(format!(
            "extra.script.code must be 1 to {MAX_CODE_BYTES} bytes of hex"
        )));
    }
    let code =
        lower_hex(code).ok_or_else(|| mismatch("extra.script.code must be lowercase hex"))?;
    Ok((version, code))
}

/// A canonical decimal below 2³²−1: a JavaScript array index, which objects enumerate first.
fn integer_like_key(k: &str) -> Option<u32> {
    if k.is_empty() || (k.len() > 1 && k.starts_with('0')) || !k.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    k.parse::<u32>().ok().filter(|n| *n < u32::MAX)
}

/// Parameter names in application order: integer-like keys ascending, then the others in
/// document order (`order`, when the parser kept it; else the map's own order).
pub fn parameter_names<'a>(
    params: &'a serde_json::Map<String, Json>,
    order: Option<&'a [String]>,
) -> Vec<&'a str> {
    let written: Vec<&str> = match order {
        Some(o) if o.len() == params.len() && o.iter().all(|k| params.contains_key(k)) => {
            o.iter().map(String::as_str).collect()
        }
        _ => params.keys().map(String::as_str).collect(),
    };
    let mut ints: Vec<(u32, &str)> = written
        .iter()
        .filter_map(|k| integer_like_key(k).map(|n| (n, *k)))
        .collect();
    ints.sort_unstable();
    let mut names: Vec<&str> = ints.into_iter().map(|(_, k)| k).collect();
    names.extend(written.iter().filter(|k| integer_like_key(k).is_none()));
    names
}

fn parse_parameters(
    v: Option<&Json>,
    order: Option<&[String]>,
) -> Result<Vec<PlutusData>, MethodError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let params = v
        .as_object()
        .ok_or_else(|| mismatch("extra.parameters must be an object {name: {type, value}}"))?;
    parameter_names(params, order)
        .into_iter()
        .map(|name| {
            let p = params.get(name).unwrap_or(&Json::Null);
            parse_parameter(p).map_err(|m| {
                let mut name = name.to_owned();
                crate::cardano::types::truncate_chars(&mut name, 40);
                mismatch(format!("extra.parameters.{name}: {m}"))
            })
        })
        .collect()
}

/// One `{type, value}` parameter as Plutus data.
pub fn parse_parameter(p: &Json) -> Result<PlutusData, String> {
    let ty = p
        .get("type")
        .and_then(Json::as_str)
        .ok_or("must be an object with a string \"type\"")?;
    let value = p.get("value").ok_or("has no \"value\"")?;
    match ty {
        "bytes" => value
            .as_str()
            .and_then(lower_hex)
            .map(PlutusData::Bytes)
            .ok_or_else(|| "a bytes value must be even-length lowercase hex".into()),
        "string" => value
            .as_str()
            .map(|s| PlutusData::Bytes(s.as_bytes().to_vec()))
            .ok_or_else(|| "a string value must be a JSON string".into()),
        "bigint" | "integer" => parse_integer(value).map(PlutusData::Int),
        "boolean" => value
            .as_bool()
            .map(PlutusData::bool)
            .ok_or_else(|| "a boolean value must be true or false".into()),
        "constr" | "list" | "map" => Err(format!("parameter type \"{ty}\" is not supported")),
        _ => Err("unknown parameter type".into()),
    }
}

/// A canonical decimal string of at most 128 digits, or a JSON integer within ±(2⁵³−1).
fn parse_integer(v: &Json) -> Result<BigInt, String> {
    match v {
        Json::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            let canonical = !digits.is_empty()
                && digits.len() <= MAX_INTEGER_DIGITS
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !(digits.len() > 1 && digits.starts_with('0'))
                && s != "-0";
            if !canonical {
                return Err(format!(
                    "an integer value must be a canonical decimal of at most {MAX_INTEGER_DIGITS} digits"
                ));
            }
            s.parse::<BigInt>().map_err(|e| e.to_string())
        }
        Json::Number(n) => n
            .as_i64()
            .filter(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER as u64)
            .map(BigInt::from)
            .ok_or_else(|| "a numeric integer value must be a safe integer (|n| < 2^53)".into()),
        _ => Err("an integer value must be a decimal string or a JSON integer".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cardano::Network;
    use crate::cardano::address::parse_shelley_bech32;
    use crate::protocol::RequirementsView;

    const CODE: &str = "4d01000033222220051200120011";
    const ADDR: &str = "addr_test1wp8l7eylksmjas7ypzm0q35dwnjdxxvsfn0z0lflqzgs55stpd682";
    const HASH: &str = "4fff649fb4372ec3c408b6f0468d74e4d319904cde27fd3f00910a52";

    fn parse(
        extra: Json,
        pay_to: &str,
        order: Option<&[String]>,
    ) -> Result<ScriptMethod, MethodError> {
        let pay_to = parse_shelley_bech32(pay_to).unwrap();
        let view = RequirementsView {
            scheme: "exact",
            network: "cardano:preprod",
            amount: "1",
            asset: "lovelace",
            pay_to: "",
            max_timeout_seconds: 60,
            extra: &extra,
            parameter_order: order,
        };
        ScriptMethod::parse(&MethodRequest {
            network: Network::Preprod,
            requirements: &view,
            pay_to: &pay_to,
        })
    }

    /// The enterprise testnet script address of a hash.
    fn addr_of(hash: &[u8; 28]) -> String {
        let mut b = vec![0x70];
        b.extend_from_slice(hash);
        crate::cardano::address::to_bech32(&b).unwrap()
    }

    #[test]
    fn code_or_hash_must_match_pay_to() {
        let m = parse(
            json!({"script": {"type": "plutusV3", "code": CODE}}),
            ADDR,
            None,
        )
        .unwrap();
        assert_eq!(hex::encode(m.script_hash), HASH);
        assert_eq!(m.version, Some(PlutusVersion::V3));
        let m = parse(json!({"scriptHash": HASH}), ADDR, None).unwrap();
        assert_eq!(m.version, None);
        // code wins: a wrong scriptHash beside the right code is ignored
        assert!(parse(json!({"scriptHash": "00".repeat(28), "script": {"type": "plutusV3", "code": CODE}}), ADDR, None).is_ok());
        // V2 of the same code is another script
        let e = parse(
            json!({"script": {"type": "plutusV2", "code": CODE}}),
            ADDR,
            None,
        )
        .unwrap_err();
        assert_eq!(e.0, Reason::ScriptAddressMismatch);
        // neither
        assert_eq!(
            parse(json!({}), ADDR, None).unwrap_err().0,
            Reason::ScriptAddressMismatch
        );
        // a key address
        let mut key_addr = vec![0x60];
        key_addr.extend_from_slice(&hex::decode(HASH).unwrap());
        let key_addr = crate::cardano::address::to_bech32(&key_addr).unwrap();
        assert_eq!(
            parse(json!({"scriptHash": HASH}), &key_addr, None)
                .unwrap_err()
                .0,
            Reason::ScriptAddressMismatch
        );
        // malformed hash / type / code / parameters: all mismatches
        for extra in [
            json!({"scriptHash": HASH.to_uppercase()}),
            json!({"script": {"type": "PlutusV3", "code": CODE}}),
            json!({"script": {"type": "plutusV3", "code": "4d0100"}}),
            json!({"script": {"type": "plutusV3", "code": CODE.to_uppercase()}}),
            json!({"script": {"type": "plutusV3", "code": CODE}, "parameters": {"a": {"type": "list", "value": []}}}),
            json!({"script": {"type": "plutusV3", "code": CODE}, "parameters": {"a": {"type": "integer", "value": "01"}}}),
            json!({"script": {"type": "plutusV3", "code": CODE}, "parameters": {"a": {"type": "integer", "value": 9007199254740992_i64}}}),
            json!({"script": {"type": "plutusV3", "code": CODE}, "parameters": {"a": {"type": "boolean", "value": "false"}}}),
            json!({"script": {"type": "plutusV3", "code": CODE}, "parameters": [1]}),
        ] {
            assert_eq!(
                parse(extra.clone(), ADDR, None).unwrap_err().0,
                Reason::ScriptAddressMismatch,
                "{extra}"
            );
        }
    }

    #[test]
    fn go_parameter_vectors_through_the_json_form() {
        let cases = [
            (
                json!({"p1": {"type": "bigint", "value": "42"}}),
                "7bfdc59e675e288dc869395143d2ed2d227bd23f0663449c847f6fcc",
            ),
            (
                json!({"p1": {"type": "integer", "value": 42}}),
                "7bfdc59e675e288dc869395143d2ed2d227bd23f0663449c847f6fcc",
            ),
            (
                json!({"p1": {"type": "integer", "value": "-42"}}),
                "1d5d4d7d73ca38a2ca11c819707ec8bda0fb6baf1ce066c1e9943794",
            ),
            (
                json!({"p1": {"type": "integer", "value": "123456789012345678901234567890"}}),
                "aaf6d5dec58fcc3a27e2bb5eb672e5514870280208dc4dce6b53c4e6",
            ),
            (
                json!({"a": {"type": "bytes", "value": "deadbeef"}, "b": {"type": "boolean", "value": true}}),
                "a187f932e7ec2d5e958917a9f7364bec5612a9459601059fbc2982a8",
            ),
            (
                json!({"a": {"type": "string", "value": "Hello World"}, "b": {"type": "boolean", "value": false}}),
                "c01db3b4dc8700c1f5cbd79467b955a1161f351bd33cfd61c6e96023",
            ),
            (
                json!({"a": {"type": "bytes", "value": "ab".repeat(80)}}),
                "4094961ab8a3813cc33c2e3b660f8dd52a21b1a52c9e5935875b5e39",
            ),
            (
                json!({"2": {"type": "integer", "value": "2"}, "10": {"type": "integer", "value": "10"}, "z": {"type": "integer", "value": "26"}}),
                "3b525cab64eb7506a25543d10503317d956c47dfcb6a3320dfddd7c2",
            ),
        ];
        for (params, want) in cases {
            let mut h = [0u8; 28];
            hex::decode_to_slice(want, &mut h).unwrap();
            let extra = json!({"script": {"type": "plutusV3", "code": CODE}, "parameters": params});
            let m = parse(extra, &addr_of(&h), None).unwrap_or_else(|e| panic!("{want}: {e:?}"));
            assert_eq!(hex::encode(m.script_hash), want);
        }
    }

    #[test]
    fn parameter_order_is_javascript_property_order() {
        let params = json!({"z": 1, "10": 2, "b": 3, "2": 4, "a": 5, "4294967295": 6, "01": 7});
        let map = params.as_object().unwrap();
        let written: Vec<String> = ["z", "10", "b", "2", "a", "4294967295", "01"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            parameter_names(map, Some(&written)),
            ["2", "10", "z", "b", "a", "4294967295", "01"]
        );
        // without the document order: the map's (sorted) order for the non-integer keys
        assert_eq!(
            parameter_names(map, None),
            ["2", "10", "01", "4294967295", "a", "b", "z"]
        );
        // an order that does not describe the map is ignored
        let wrong: Vec<String> = vec!["q".into()];
        assert_eq!(
            parameter_names(map, Some(&wrong)),
            parameter_names(map, None)
        );
    }

    #[test]
    fn insertion_order_changes_the_hash() {
        let extra = json!({"script": {"type": "plutusV3", "code": CODE}, "parameters": {
            "b": {"type": "integer", "value": "1"}, "a": {"type": "integer", "value": "2"}}});
        let ba: Vec<String> = vec!["b".into(), "a".into()];
        let h_ba = {
            let d = [PlutusData::int(1), PlutusData::int(2)];
            plutus::script_hash(
                PlutusVersion::V3,
                &plutus::apply_params(&hex::decode(CODE).unwrap(), &d).unwrap(),
            )
        };
        let m = parse(extra.clone(), &addr_of(&h_ba), Some(&ba)).unwrap();
        assert_eq!(m.script_hash, h_ba);
        // the same JSON read in sorted order gives another script
        assert_eq!(
            parse(extra, &addr_of(&h_ba), None).unwrap_err().0,
            Reason::ScriptAddressMismatch
        );
    }

    #[test]
    fn datum_requirements() {
        let ok = parse(json!({"scriptHash": HASH, "datum": "d87980"}), ADDR, None).unwrap();
        assert_eq!(ok.datum, Some(vec![0xd8, 0x79, 0x80]));
        for datum in [
            json!(""),
            json!("D87980"),
            json!("d879"),
            json!("6161"),
            json!(7),
        ] {
            let e = parse(json!({"scriptHash": HASH, "datum": datum}), ADDR, None).unwrap_err();
            assert_eq!(e.0, Reason::InvalidRequirements, "{datum}");
        }
        // V1 + datum is refused up front
        let e = parse(
            json!({"script": {"type": "plutusV1", "code": CODE}, "datum": "d87980"}),
            ADDR,
            None,
        )
        .unwrap_err();
        assert_eq!(e.0, Reason::InvalidRequirements);
    }
}
