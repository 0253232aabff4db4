//! The Masumi requirements: the closed-object schema of `extra` (spec
//! "Masumi assetTransferMethod Schema"), the request commitment (`inputHash`)
//! and the seller-signed terms (`termsDigest`).
//!
//! Everything here is pure: JSON in, typed values or a reason code out.

use base64::Engine;
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};

use crate::cardano::Network;
use crate::cardano::address::{self, Credential, ShelleyAddress, StakePart};
use crate::protocol::{Reason, RequirementsView};

/// Domain separators (spec "Request commitment", "Seller-signed terms").
pub const INPUT_PREFIX: &[u8] = b"masumi:x402:input:v1\n";
pub const TERMS_PREFIX: &[u8] = b"masumi:x402:terms:v1\n";

/// Budgets (spec "Implementation limits").
pub const MAX_PARTS: usize = 32;
pub const MAX_PART_BYTES: usize = 1024 * 1024;
pub const MAX_JSON_DEPTH: usize = 64;
pub const MAX_JSON_VALUES: usize = 100_000;
pub const MAX_ADMIN_KEYS: usize = 64;
pub const MAX_IDENTIFIER_HEX: usize = 8 * 1024 * 2;
pub const MAX_COSE_HEX: usize = 16 * 1024 * 2;

/// `agentIdentifier` as received: absent, `null` and `""` are three different digests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentId {
    Absent,
    Null,
    /// `""` or lowercase even hex.
    Hex(String),
}

impl AgentId {
    /// The datum's / identifier's view: `""` when absent or null.
    pub fn hex(&self) -> &str {
        match self {
            AgentId::Hex(h) => h,
            _ => "",
        }
    }
}

/// An explicit deployment (`extra.deployment`): the three parameters of `vested_pay`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Deployment {
    pub required_admins: u64,
    /// 28-byte admin key hashes, declared order, duplicates kept.
    pub admin_vkeys: Vec<[u8; 28]>,
    /// Decimal, up to 20 digits (may exceed u64).
    pub cooldown_period: u128,
}

/// The typed `terms` object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    pub seller_address: ShelleyAddress,
    pub seller_return_address: Option<ShelleyAddress>,
    pub seller_nonce: String,
    pub buyer_nonce: String,
    pub agent_identifier: AgentId,
    pub input_hash: [u8; 32],
    pub pay_by_time: u128,
    pub submit_result_time: u128,
    pub unlock_time: u128,
    pub external_dispute_unlock_time: u128,
}

/// `extra` of a Masumi requirement, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasumiExtra {
    pub terms: Terms,
    /// `terms` exactly as received, for `signedTerms`.
    pub terms_raw: Map<String, Json>,
    pub input_commitment: Json,
    pub reference_key: Vec<u8>,
    pub reference_signature: Vec<u8>,
    pub reference_key_hex: String,
    pub reference_signature_hex: String,
    pub blockchain_identifier: Vec<u8>,
    pub deployment: Option<Deployment>,
}

/// A rejection with its code.
pub type Rejection = (Reason, String);

fn schema(m: impl Into<String>) -> Rejection {
    (Reason::MasumiSchema, m.into())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn closed(obj: &Map<String, Json>, allowed: &[&str], what: &str) -> Result<(), Rejection> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => {
            let mut k = k.clone();
            crate::cardano::types::truncate_chars(&mut k, 40);
            Err(schema(format!("{what} has an unknown member \"{k}\"")))
        }
        None => Ok(()),
    }
}

fn obj<'a>(v: Option<&'a Json>, what: &str) -> Result<&'a Map<String, Json>, Rejection> {
    v.and_then(Json::as_object)
        .ok_or_else(|| schema(format!("{what} must be an object")))
}

fn string<'a>(o: &'a Map<String, Json>, key: &str, what: &str) -> Result<&'a str, Rejection> {
    o.get(key)
        .and_then(Json::as_str)
        .ok_or_else(|| schema(format!("{what}.{key} must be a string")))
}

fn hex_field(o: &Map<String, Json>, key: &str, max_hex: usize) -> Result<Vec<u8>, Rejection> {
    let s = string(o, key, "extra")?;
    if s.is_empty() || s.len() > max_hex || !s.len().is_multiple_of(2) || !is_lower_hex(s) {
        return Err(schema(format!(
            "extra.{key} must be non-empty lowercase even-length hex of at most {} bytes",
            max_hex / 2
        )));
    }
    hex::decode(s).map_err(|_| schema(format!("extra.{key} is not hex")))
}

fn digest_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !is_lower_hex(s) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

fn posix_ms(o: &Map<String, Json>, key: &str) -> Result<u128, Rejection> {
    let s = string(o, key, "terms")?;
    let ok = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && !s.starts_with('0');
    if !ok {
        return Err(schema(format!(
            "terms.{key} must be a POSIX-millisecond decimal string"
        )));
    }
    s.parse::<u128>()
        .map_err(|_| schema(format!("terms.{key} is out of range")))
}

/// A key-credential seller address on `network`: enterprise, or base with two key hashes.
fn seller_address(s: &str, network: Network, key: &str) -> Result<ShelleyAddress, Rejection> {
    let a = address::parse_shelley_bech32(s)
        .map_err(|_| schema(format!("terms.{key} is not a Shelley address")))?;
    if a.network_id != network.network_id() {
        return Err(schema(format!("terms.{key} is not on {}", network.name())));
    }
    let keyed = matches!(a.payment, Credential::KeyHash(_))
        && matches!(
            a.stake,
            StakePart::None | StakePart::Credential(Credential::KeyHash(_))
        );
    if !keyed {
        return Err(schema(format!(
            "terms.{key} must be an enterprise or base address with key-hash credentials"
        )));
    }
    Ok(a)
}

fn buyer_nonce_ok(s: &str) -> bool {
    s.is_empty() || ((14..=26).contains(&s.len()) && s.len().is_multiple_of(2) && is_lower_hex(s))
}

/// JSON size budget: depth and number of values.
fn json_within(v: &Json, depth: usize, count: &mut usize) -> bool {
    *count += 1;
    if depth > MAX_JSON_DEPTH || *count > MAX_JSON_VALUES {
        return false;
    }
    match v {
        Json::Array(a) => a.iter().all(|x| json_within(x, depth + 1, count)),
        Json::Object(o) => o.values().all(|x| json_within(x, depth + 1, count)),
        _ => true,
    }
}

fn check_commitment_shape(ic: &Map<String, Json>) -> Result<[u8; 32], Rejection> {
    closed(
        ic,
        &["version", "algorithm", "parts", "digest"],
        "extra.inputCommitment",
    )?;
    if ic.get("version") != Some(&json!("1")) || ic.get("algorithm") != Some(&json!("sha256")) {
        return Err(schema(
            "extra.inputCommitment must have version \"1\" and algorithm \"sha256\"",
        ));
    }
    let digest = digest_hex(string(ic, "digest", "extra.inputCommitment")?)
        .ok_or_else(|| schema("extra.inputCommitment.digest must be 64 lowercase hex"))?;
    let parts = ic
        .get("parts")
        .and_then(Json::as_array)
        .ok_or_else(|| schema("extra.inputCommitment.parts must be an array"))?;
    if parts.is_empty() || parts.len() > MAX_PARTS {
        return Err(schema(format!(
            "extra.inputCommitment.parts must hold 1 to {MAX_PARTS} parts"
        )));
    }
    let mut names = std::collections::HashSet::new();
    for p in parts {
        let p = obj(Some(p), "a commitment part")?;
        closed(
            p,
            &["name", "canonicalization", "mediaType", "content", "digest"],
            "a commitment part",
        )?;
        let name = string(p, "name", "part")?;
        let n = name.chars().count();
        if !(1..=128).contains(&n) || !names.insert(name) {
            return Err(schema("part names must be 1 to 128 characters and unique"));
        }
        let canon = string(p, "canonicalization", "part")?;
        if let Some(mt) = p.get("mediaType") {
            match mt.as_str() {
                Some(s) if s.chars().count() <= 256 => {}
                _ => {
                    return Err(schema(
                        "part.mediaType must be a string of at most 256 characters",
                    ));
                }
            }
        }
        if digest_hex(string(p, "digest", "part")?).is_none() {
            return Err(schema("part.digest must be 64 lowercase hex"));
        }
        match (canon, p.get("content")) {
            ("jcs", None) | ("raw", None) => {}
            ("jcs", Some(c)) => {
                let mut count = 0;
                if !json_within(c, 0, &mut count) {
                    return Err(schema("part.content is too deep or too large"));
                }
            }
            ("raw", Some(c)) => {
                let s = c
                    .as_str()
                    .ok_or_else(|| schema("raw part.content must be a base64url string"))?;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .map_err(|_| schema("raw part.content must be canonical unpadded base64url"))?;
                if bytes.len() > MAX_PART_BYTES
                    || base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes) != s
                {
                    return Err(schema(
                        "raw part.content must be canonical unpadded base64url",
                    ));
                }
            }
            _ => return Err(schema("part.canonicalization must be \"jcs\" or \"raw\"")),
        }
    }
    Ok(digest)
}

/// Parse and validate `extra` against the closed schema (§3.1).
pub fn parse_extra(extra: &Json, network: Network) -> Result<MasumiExtra, Rejection> {
    let e = obj(Some(extra), "extra")?;
    closed(
        e,
        &[
            "assetTransferMethod",
            "confirmationPolicy",
            "areFeesSponsored",
            "inputCommitment",
            "terms",
            "referenceKey",
            "referenceSignature",
            "blockchainIdentifier",
            "deployment",
        ],
        "extra",
    )?;
    if e.get("assetTransferMethod") != Some(&json!("masumi")) {
        return Err(schema("extra.assetTransferMethod must be \"masumi\""));
    }
    match e.get("areFeesSponsored") {
        None | Some(Json::Bool(false)) => {}
        _ => return Err(schema("extra.areFeesSponsored must be absent or false")),
    }
    if let Some(cp) = e.get("confirmationPolicy") {
        closed(
            obj(Some(cp), "extra.confirmationPolicy")?,
            &["l1Confirmations"],
            "extra.confirmationPolicy",
        )?;
    }
    let ic = obj(e.get("inputCommitment"), "extra.inputCommitment")?;
    let commitment_digest = check_commitment_shape(ic)?;

    let t = obj(e.get("terms"), "extra.terms")?;
    closed(
        t,
        &[
            "version",
            "paymentType",
            "sellerAddress",
            "sellerReturnAddress",
            "sellerNonce",
            "buyerNonce",
            "agentIdentifier",
            "inputHash",
            "payByTime",
            "submitResultTime",
            "unlockTime",
            "externalDisputeUnlockTime",
        ],
        "extra.terms",
    )?;
    if string(t, "version", "terms")? != "1" {
        return Err(schema("terms.version must be \"1\""));
    }
    if string(t, "paymentType", "terms")? != "Web3CardanoV2" {
        return Err(schema("terms.paymentType must be \"Web3CardanoV2\""));
    }
    let seller = seller_address(
        string(t, "sellerAddress", "terms")?,
        network,
        "sellerAddress",
    )?;
    let seller_return = match t.get("sellerReturnAddress") {
        None => None,
        Some(Json::String(s)) => Some(seller_address(s, network, "sellerReturnAddress")?),
        Some(_) => {
            return Err(schema(
                "terms.sellerReturnAddress must be a string when present",
            ));
        }
    };
    let seller_nonce = string(t, "sellerNonce", "terms")?;
    if seller_nonce.len() != 64 || !is_lower_hex(seller_nonce) {
        return Err(schema("terms.sellerNonce must be 64 lowercase hex"));
    }
    let buyer_nonce = string(t, "buyerNonce", "terms")?;
    if !buyer_nonce_ok(buyer_nonce) {
        return Err(schema(
            "terms.buyerNonce must be \"\" or 14 to 26 lowercase even-length hex",
        ));
    }
    let agent = match t.get("agentIdentifier") {
        None => AgentId::Absent,
        Some(Json::Null) => AgentId::Null,
        Some(Json::String(s)) if s.len() <= 120 && s.len().is_multiple_of(2) && is_lower_hex(s) => {
            AgentId::Hex(s.clone())
        }
        Some(_) => {
            return Err(schema(
                "terms.agentIdentifier must be null, \"\" or lowercase even hex of at most 120 characters",
            ));
        }
    };
    let input_hash = digest_hex(string(t, "inputHash", "terms")?)
        .ok_or_else(|| schema("terms.inputHash must be 64 lowercase hex"))?;
    if input_hash != commitment_digest {
        return Err(schema(
            "terms.inputHash must equal extra.inputCommitment.digest",
        ));
    }
    let terms = Terms {
        seller_address: seller,
        seller_return_address: seller_return,
        seller_nonce: seller_nonce.to_owned(),
        buyer_nonce: buyer_nonce.to_owned(),
        agent_identifier: agent,
        input_hash,
        pay_by_time: posix_ms(t, "payByTime")?,
        submit_result_time: posix_ms(t, "submitResultTime")?,
        unlock_time: posix_ms(t, "unlockTime")?,
        external_dispute_unlock_time: posix_ms(t, "externalDisputeUnlockTime")?,
    };

    let reference_key = hex_field(e, "referenceKey", MAX_COSE_HEX)?;
    let reference_signature = hex_field(e, "referenceSignature", MAX_COSE_HEX)?;
    let blockchain_identifier = hex_field(e, "blockchainIdentifier", MAX_IDENTIFIER_HEX)?;
    let deployment = match e.get("deployment") {
        None => None,
        Some(d) => Some(parse_deployment(obj(Some(d), "extra.deployment")?)?),
    };
    Ok(MasumiExtra {
        terms,
        terms_raw: t.clone(),
        input_commitment: Json::Object(ic.clone()),
        reference_key_hex: hex::encode(&reference_key),
        reference_signature_hex: hex::encode(&reference_signature),
        reference_key,
        reference_signature,
        blockchain_identifier,
        deployment,
    })
}

fn parse_deployment(d: &Map<String, Json>) -> Result<Deployment, Rejection> {
    closed(
        d,
        &["requiredAdmins", "adminVkeys", "cooldownPeriod"],
        "extra.deployment",
    )?;
    let ra = string(d, "requiredAdmins", "deployment")?;
    if ra.is_empty()
        || ra.len() > 3
        || ra.starts_with('0')
        || !ra.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(schema(
            "deployment.requiredAdmins must be a positive decimal of at most 3 digits",
        ));
    }
    let required_admins: u64 = ra
        .parse()
        .map_err(|_| schema("deployment.requiredAdmins is not a number"))?;
    let keys = d
        .get("adminVkeys")
        .and_then(Json::as_array)
        .ok_or_else(|| schema("deployment.adminVkeys must be an array"))?;
    if keys.is_empty() || keys.len() > MAX_ADMIN_KEYS {
        return Err(schema("deployment.adminVkeys must hold 1 to 64 keys"));
    }
    let mut admin_vkeys = Vec::with_capacity(keys.len());
    for k in keys {
        let h = k
            .as_str()
            .filter(|s| s.len() == 56 && is_lower_hex(s))
            .and_then(|s| hex::decode(s).ok())
            .and_then(|b| <[u8; 28]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| schema("deployment.adminVkeys entries must be 56 lowercase hex"))?;
        admin_vkeys.push(h);
    }
    if required_admins > admin_vkeys.len() as u64 {
        return Err(schema(
            "deployment.requiredAdmins exceeds the number of admin keys",
        ));
    }
    let cp = string(d, "cooldownPeriod", "deployment")?;
    let cp_ok = !cp.is_empty()
        && cp.len() <= 20
        && cp.bytes().all(|b| b.is_ascii_digit())
        && (cp == "0" || !cp.starts_with('0'));
    if !cp_ok {
        return Err(schema(
            "deployment.cooldownPeriod must be a decimal of at most 20 digits",
        ));
    }
    Ok(Deployment {
        required_admins,
        admin_vkeys,
        cooldown_period: cp
            .parse()
            .map_err(|_| schema("deployment.cooldownPeriod is out of range"))?,
    })
}

fn sha256_prefixed(prefix: &[u8], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prefix);
    h.update(body);
    h.finalize().into()
}

/// RFC 8785 canonical JSON bytes.
pub fn jcs(v: &Json) -> Result<Vec<u8>, String> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| e.to_string())
}

/// The bytes a part's digest covers.
fn part_bytes(canon: &str, content: &Json) -> Result<Vec<u8>, String> {
    match canon {
        "jcs" => jcs(content),
        _ => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(content.as_str().unwrap_or_default())
            .map_err(|e| e.to_string()),
    }
}

/// `inputHash` of a commitment: SHA-256 over the prefix and JCS of its manifest.
pub fn input_hash(commitment: &Json) -> Result<[u8; 32], String> {
    let parts = commitment
        .get("parts")
        .and_then(Json::as_array)
        .ok_or("parts missing")?;
    let manifest_parts: Vec<Json> = parts
        .iter()
        .map(|p| {
            let mut m = Map::new();
            for k in ["name", "canonicalization", "mediaType", "digest"] {
                if let Some(v) = p.get(k) {
                    m.insert(k.to_owned(), v.clone());
                }
            }
            Json::Object(m)
        })
        .collect();
    let manifest = json!({
        "version": commitment.get("version"),
        "algorithm": commitment.get("algorithm"),
        "parts": manifest_parts,
    });
    Ok(sha256_prefixed(INPUT_PREFIX, &jcs(&manifest)?))
}

/// The digest a part's content hashes to (`hex`).
pub fn part_digest(canon: &str, content: &Json) -> Result<String, String> {
    Ok(hex::encode(Sha256::digest(part_bytes(canon, content)?)))
}

/// Check the request commitment (§3.2): part digests where content is present, then `inputHash`.
pub fn check_commitment(m: &MasumiExtra) -> Result<(), Rejection> {
    let bad = |msg: String| (Reason::MasumiCommitment, msg);
    let parts = m
        .input_commitment
        .get("parts")
        .and_then(Json::as_array)
        .ok_or_else(|| bad("parts missing".into()))?;
    for p in parts {
        let (Some(content), Some(canon), Some(digest)) = (
            p.get("content"),
            p.get("canonicalization").and_then(Json::as_str),
            p.get("digest").and_then(Json::as_str),
        ) else {
            continue;
        };
        let got = part_digest(canon, content).map_err(bad)?;
        if got != digest {
            let name = p.get("name").and_then(Json::as_str).unwrap_or_default();
            return Err(bad(format!(
                "part \"{name}\": content does not hash to its digest"
            )));
        }
    }
    let h = input_hash(&m.input_commitment).map_err(bad)?;
    if h != m.terms.input_hash {
        return Err(bad(
            "inputHash is not the hash of the commitment manifest".into()
        ));
    }
    Ok(())
}

/// `signedTerms` (§3.3): every received terms member plus the projected requirement fields.
pub fn signed_terms(m: &MasumiExtra, q: &RequirementsView<'_>) -> Json {
    let mut o = m.terms_raw.clone();
    o.insert("scheme".into(), json!(q.scheme));
    o.insert("assetTransferMethod".into(), json!("masumi"));
    o.insert("network".into(), json!(q.network));
    o.insert("contractAddress".into(), json!(q.pay_to));
    o.insert("amount".into(), json!(q.amount));
    o.insert("asset".into(), json!(q.asset));
    o.insert("maxTimeoutSeconds".into(), json!(q.max_timeout_seconds));
    Json::Object(o)
}

/// `termsDigest` = SHA-256(prefix ‖ JCS(signedTerms)).
pub fn terms_digest(m: &MasumiExtra, q: &RequirementsView<'_>) -> Result<[u8; 32], Rejection> {
    let bytes = jcs(&signed_terms(m, q)).map_err(|e| schema(format!("terms: {e}")))?;
    Ok(sha256_prefixed(TERMS_PREFIX, &bytes))
}

/// Deadline spacing (§3.6 step 2).
pub fn deadlines_ok(pay_by: u128, submit: u128, unlock: u128, dispute: u128) -> bool {
    pay_by.checked_add(300_000).is_some_and(|x| x <= submit)
        && submit.checked_add(900_000).is_some_and(|x| x <= unlock)
        && unlock.checked_add(900_000).is_some_and(|x| x <= dispute)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `jcs_vectors.json` @c0ed496a: every case, input -> canonical bytes.
    #[test]
    fn jcs_vectors() {
        #[derive(serde::Deserialize)]
        struct Case {
            input: String,
            jcs: String,
        }
        let cases: Vec<Case> =
            serde_json::from_str(include_str!("testdata/jcs_vectors.json")).unwrap();
        assert_eq!(cases.len(), 75);
        for Case { input, jcs: want } in cases {
            let v: Json = serde_json::from_str(&input).unwrap();
            assert_eq!(
                String::from_utf8(jcs(&v).unwrap()).unwrap(),
                want,
                "{input}"
            );
        }
        // A lone surrogate never reaches the canonicalizer: the JSON parser refuses it.
        assert!(serde_json::from_str::<Json>(r#""\ud800""#).is_err());
    }

    #[test]
    fn deadline_spacing() {
        assert!(deadlines_ok(0, 300_000, 1_200_000, 2_100_000));
        assert!(!deadlines_ok(0, 299_999, 1_200_000, 2_100_000));
        assert!(!deadlines_ok(0, 300_000, 1_199_999, 2_100_000));
        assert!(!deadlines_ok(0, 300_000, 1_200_000, 2_099_999));
        assert!(!deadlines_ok(u128::MAX, u128::MAX, u128::MAX, u128::MAX));
    }
}
