//! The seller's side of the `masumi` method: issuing Masumi payment
//! requirements (a "quote") signed as a CIP-30 wallet's `signData` would.
//!
//! The facilitator never issues quotes nor signs anything: it only verifies
//! (`crate::scheme::masumi`). This lives with the buyer because the demo, the
//! tests and the benches need a counterparty that signs with a real key.

use serde_json::{Map, Value as Json, json};

use super::keys::SigningKey;
use crate::cardano::Network;
use crate::protocol::RequirementsView;
use crate::scheme::masumi::cbor::enc;
use crate::scheme::masumi::cose::sig_structure;
use crate::scheme::masumi::escrow;
use crate::scheme::masumi::identifier::IdentifierParts;
use crate::scheme::masumi::terms::{self, Deployment};

/// Everything a quote says.
#[derive(Clone, Debug)]
pub struct QuoteSpec {
    pub network: Network,
    pub asset: String,
    pub amount: String,
    pub max_timeout_seconds: u64,
    /// Bech32 seller address (its payment key is `seller_key`).
    pub seller_address: String,
    pub seller_return_address: Option<String>,
    /// Commitment parts: `{name, canonicalization, mediaType?, content, echoContent?}`.
    /// Digests are filled in; `echoContent: false` keeps the content out of the
    /// requirement (the buyer learns it elsewhere), its digest still commits to it.
    pub parts: Vec<Json>,
    pub pay_by_time: u128,
    pub submit_result_time: u128,
    pub unlock_time: u128,
    pub external_dispute_unlock_time: u128,
    pub seller_nonce: String,
    pub buyer_nonce: String,
    /// `None` leaves the member out; `Some(Json::Null)` or a string is sent as is.
    pub agent_identifier: Option<Json>,
    /// `None`: the network's default deployment.
    pub deployment: Option<Deployment>,
}

fn deployment_json(d: &Deployment) -> Json {
    json!({
        "requiredAdmins": d.required_admins.to_string(),
        "adminVkeys": d.admin_vkeys.iter().map(hex::encode).collect::<Vec<_>>(),
        "cooldownPeriod": d.cooldown_period.to_string(),
    })
}

/// What a quote may say besides its [`QuoteSpec`].
#[derive(Clone, Debug, Default)]
pub struct IssueOptions {
    /// The network identifier written into the requirement, e.g. the CIP-34
    /// alias `cip34:0-1` of preprod; `None` writes the CAIP-2 name. It is signed
    /// verbatim, so it must name `spec.network`.
    pub network_id: Option<String>,
    /// `extra.confirmationPolicy`, if the seller asks for one (not signed).
    pub confirmation_policy: Option<Json>,
}

/// The `paymentRequirements` of a quote, signed by `seller_key`.
pub fn issue(spec: &QuoteSpec, seller_key: &SigningKey) -> Result<Json, String> {
    issue_with(spec, &IssueOptions::default(), seller_key)
}

/// [`issue`] with [`IssueOptions`].
pub fn issue_with(
    spec: &QuoteSpec,
    opts: &IssueOptions,
    seller_key: &SigningKey,
) -> Result<Json, String> {
    let network_id = match &opts.network_id {
        Some(id) if Network::parse_any(id) == Some(spec.network) => id.clone(),
        Some(id) => {
            return Err(format!(
                "network {id} does not name {}",
                spec.network.name()
            ));
        }
        None => spec.network.caip2().to_owned(),
    };
    let dep = match &spec.deployment {
        Some(d) => d.clone(),
        None => escrow::network_default(spec.network).ok_or("no default deployment")?,
    };
    let hash = escrow::script_hash(&dep)?;
    let pay_to = escrow::address_of(&hash, spec.network).to_bech32();

    let mut parts = Vec::new();
    for p in &spec.parts {
        let mut p = p.as_object().cloned().ok_or("a part must be an object")?;
        let canon = p
            .get("canonicalization")
            .and_then(Json::as_str)
            .unwrap_or("jcs")
            .to_owned();
        let echo = match p.remove("echoContent") {
            None => true,
            Some(Json::Bool(b)) => b,
            Some(_) => return Err("echoContent must be a boolean".into()),
        };
        let content = if echo {
            p.get("content").cloned()
        } else {
            p.remove("content")
        }
        .ok_or("a quote part needs content")?;
        p.insert(
            "digest".into(),
            json!(terms::part_digest(&canon, &content)?),
        );
        parts.push(Json::Object(p));
    }
    let mut commitment = json!({"version": "1", "algorithm": "sha256", "parts": parts});
    let input_hash = hex::encode(terms::input_hash(&commitment)?);
    commitment["digest"] = json!(input_hash);

    let mut t = Map::new();
    t.insert("version".into(), json!("1"));
    t.insert("paymentType".into(), json!("Web3CardanoV2"));
    t.insert("sellerAddress".into(), json!(spec.seller_address));
    if let Some(r) = &spec.seller_return_address {
        t.insert("sellerReturnAddress".into(), json!(r));
    }
    t.insert("sellerNonce".into(), json!(spec.seller_nonce));
    t.insert("buyerNonce".into(), json!(spec.buyer_nonce));
    if let Some(a) = &spec.agent_identifier {
        t.insert("agentIdentifier".into(), a.clone());
    }
    t.insert("inputHash".into(), json!(input_hash));
    t.insert("payByTime".into(), json!(spec.pay_by_time.to_string()));
    t.insert(
        "submitResultTime".into(),
        json!(spec.submit_result_time.to_string()),
    );
    t.insert("unlockTime".into(), json!(spec.unlock_time.to_string()));
    t.insert(
        "externalDisputeUnlockTime".into(),
        json!(spec.external_dispute_unlock_time.to_string()),
    );

    let mut extra = Map::new();
    extra.insert("assetTransferMethod".into(), json!("masumi"));
    if let Some(c) = &opts.confirmation_policy {
        extra.insert("confirmationPolicy".into(), c.clone());
    }
    extra.insert("inputCommitment".into(), commitment);
    extra.insert("terms".into(), Json::Object(t));
    if let Some(d) = &spec.deployment {
        extra.insert("deployment".into(), deployment_json(d));
    }
    let mut req = json!({
        "scheme": "exact",
        "network": network_id,
        "asset": spec.asset,
        "amount": spec.amount,
        "payTo": pay_to,
        "maxTimeoutSeconds": spec.max_timeout_seconds,
        "extra": Json::Object(extra),
    });
    sign_into(&mut req, seller_key)?;
    Ok(req)
}

/// (Re)compute `termsDigest`, sign it with `seller_key` and set `referenceKey`,
/// `referenceSignature` and `blockchainIdentifier` in `req.extra`.
pub fn sign_into(req: &mut Json, seller_key: &SigningKey) -> Result<(), String> {
    let network = req["network"]
        .as_str()
        .and_then(Network::parse_any)
        .ok_or("bad network")?;
    // Placeholders so the schema parses; the digest does not cover them.
    for k in ["referenceKey", "referenceSignature", "blockchainIdentifier"] {
        if req["extra"].get(k).is_none() {
            req["extra"][k] = json!("00");
        }
    }
    let digest = {
        let q = view(req).ok_or("requirements shape")?;
        let m = terms::parse_extra(q.extra, network).map_err(|(_, m)| m)?;
        terms::terms_digest(&m, &q).map_err(|(_, m)| m)?
    };
    let t = &req["extra"]["terms"];
    let seller = crate::cardano::address::parse_shelley_bech32(
        t["sellerAddress"].as_str().unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    let (key, sig) = sign_data(seller_key, &seller.bytes, &digest);
    let parts = IdentifierParts {
        seller_nonce: t["sellerNonce"].as_str().unwrap_or_default().to_owned(),
        agent_identifier: t["agentIdentifier"].as_str().unwrap_or_default().to_owned(),
        buyer_nonce: t["buyerNonce"].as_str().unwrap_or_default().to_owned(),
        reference_signature: hex::encode(&sig),
        reference_key: hex::encode(&key),
        contract_address: req["payTo"].as_str().unwrap_or_default().to_owned(),
    };
    req["extra"]["referenceKey"] = json!(hex::encode(&key));
    req["extra"]["referenceSignature"] = json!(hex::encode(&sig));
    req["extra"]["blockchainIdentifier"] = json!(hex::encode(parts.encode()));
    Ok(())
}

/// A [`RequirementsView`] over a `paymentRequirements` JSON object.
pub fn view(req: &Json) -> Option<RequirementsView<'_>> {
    Some(RequirementsView {
        scheme: req.get("scheme")?.as_str()?,
        network: req.get("network")?.as_str()?,
        amount: req.get("amount")?.as_str()?,
        asset: req.get("asset")?.as_str()?,
        pay_to: req.get("payTo")?.as_str()?,
        max_timeout_seconds: req.get("maxTimeoutSeconds")?.as_u64()?,
        extra: req.get("extra")?,
        parameter_order: None,
    })
}

/// A CIP-30 `signData` answer: `(COSE_Key bytes, COSE_Sign1 bytes)`, exactly
/// the bytes a wallet produces (checked against the x402 Go vectors).
pub fn sign_data(key: &SigningKey, address: &[u8], payload: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let x = key.public_key();
    let mut cose_key = vec![0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21];
    enc::bytes(&mut cose_key, &x);

    let mut protected = vec![0xa2, 0x01, 0x27];
    enc::text(&mut protected, "address");
    enc::bytes(&mut protected, address);
    let sig = key.sign(&sig_structure(&protected, payload));

    let mut s = vec![0x84];
    enc::bytes(&mut s, &protected);
    s.push(0xa1);
    enc::text(&mut s, "hashed");
    s.push(0xf4);
    enc::bytes(&mut s, payload);
    enc::bytes(&mut s, &sig);
    (cose_key, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cardano::address::decode_bech32;
    use crate::scheme::masumi::cose::verify_seller_signature;

    fn addr(bech: &str) -> Vec<u8> {
        decode_bech32(bech).map(|(_, b)| b).unwrap_or_default()
    }

    fn seed(h: &str) -> SigningKey {
        let mut s = [0u8; 32];
        s.copy_from_slice(&hex::decode(h).unwrap());
        SigningKey::from_seed(s)
    }

    /// `cose_vectors.json` "signed" and `cose_go_vectors.json`: our signer
    /// reproduces every vector byte for byte, and the 32-byte ones verify.
    #[test]
    fn signer_reproduces_the_go_vectors() {
        let cases: &[(&str, &str, &str, &str, &str)] =
            &include!("../scheme/masumi/testdata/cose_signed.in");
        for (seed_hex, address, payload, key, signature) in cases {
            let k = seed(seed_hex);
            let a = addr(address);
            let p = hex::decode(payload).unwrap();
            let (ck, s1) = sign_data(&k, &a, &p);
            assert_eq!(hex::encode(&ck), *key, "{address} {payload}");
            assert_eq!(hex::encode(&s1), *signature, "{address} {payload}");
            if let Ok(d) = <[u8; 32]>::try_from(p.as_slice()) {
                assert!(verify_seller_signature(&ck, &s1, &a, &d).is_ok());
            }
        }
    }
}
