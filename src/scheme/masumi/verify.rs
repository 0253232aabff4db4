//! The Masumi checks in the reference order (spec "additional rules"; TS
//! `verify.ts`): [`check_requirements`] is steps 1–8 (pure, on the JSON),
//! [`check_lock`] steps 9–15 (pure, on the decoded transaction and the
//! resolved nonce owner). The common `exact` pipeline runs around them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use super::datum::{self, FundsLocked, PdAddress, PdStake};
use super::terms::{self, MasumiExtra, Rejection};
use super::{cose, escrow, identifier};
use crate::cardano::address::{self, Credential, ShelleyAddress};
use crate::cardano::tx::ParsedTx;
use crate::cardano::{Asset, Network};
use crate::protocol::{Reason, RequirementsView};

/// The Masumi V2 registry policy every non-empty `agentIdentifier` starts with.
pub const REGISTRY_POLICY: &str = "67ab0c92c4ac1610895a1c965ee50aba41a8f1513b15240723b3bd0b";
/// Smallest non-zero collateral (Masumi `constants.ts`).
pub const MIN_COLLATERAL: u128 = 1_435_230;
/// Masumi's post-SubmitResult min-UTxO overhead, in bytes besides the datum and tokens.
pub const MIN_UTXO_OVERHEAD: u128 = 33 + 160 + 50 + 15 + 100;
pub const MIN_UTXO_PER_TOKEN: u128 = 50;

/// What a registry validator is asked about a registered agent.
#[derive(Debug)]
pub struct RegistryQuery<'a> {
    pub network: Network,
    pub agent_identifier: &'a str,
    pub seller_address: &'a ShelleyAddress,
    pub asset: &'a str,
    pub amount: &'a str,
}

/// Confirms a registered agent (asset, seller authorization, price, ...).
/// Without one, a non-empty `agentIdentifier` is refused.
pub trait RegistryValidator: Send + Sync + fmt::Debug {
    fn validate(&self, q: &RegistryQuery<'_>) -> Result<(), String>;
}

/// One operator-approved registered agent (config `masumi.registeredAgents`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredAgent {
    pub seller_address: String,
    /// Restrict to this asset (`lovelace` or `policy.name`), if set.
    pub asset: Option<String>,
    /// Restrict to this exact price, if set.
    pub amount: Option<String>,
}

/// A static registry: the agents the operator vouches for, keyed by `agentIdentifier`.
#[derive(Clone, Debug, Default)]
pub struct StaticRegistry {
    pub agents: HashMap<String, RegisteredAgent>,
}

impl RegistryValidator for StaticRegistry {
    fn validate(&self, q: &RegistryQuery<'_>) -> Result<(), String> {
        let a = self
            .agents
            .get(q.agent_identifier)
            .ok_or("the agent is not in the configured registry")?;
        if a.seller_address != q.seller_address.to_bech32() {
            return Err("the registry names another seller address for this agent".into());
        }
        if a.asset.as_deref().is_some_and(|x| x != q.asset) {
            return Err("the registry prices this agent in another asset".into());
        }
        if a.amount.as_deref().is_some_and(|x| x != q.amount) {
            return Err("the registry lists another price for this agent".into());
        }
        Ok(())
    }
}

/// Operator policy for the Masumi method.
#[derive(Clone, Debug, Default)]
pub struct MasumiPolicy {
    /// Custom deployments (script hashes) the operator approved.
    pub approved_deployments: HashSet<[u8; 28]>,
    pub registry: Option<Arc<dyn RegistryValidator>>,
}

/// A requirement that passed steps 1–8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasumiTerms {
    pub extra: MasumiExtra,
    /// The requirement's asset and amount (as the common pipeline parsed them).
    pub asset: Asset,
    pub amount: u64,
    /// SHA-256 of the signed terms: the logical replay key (one settlement per digest).
    pub terms_digest: [u8; 32],
    pub escrow: ShelleyAddress,
    pub escrow_hash: [u8; 28],
}

fn rej(reason: Reason, m: impl Into<String>) -> Rejection {
    (reason, m.into())
}

/// Steps 1–8: schema, deadlines, commitment, escrow address, seller signature,
/// custom-deployment approval, identity, identifier.
pub fn check_requirements(
    q: &RequirementsView<'_>,
    network: Network,
    policy: &MasumiPolicy,
) -> Result<MasumiTerms, Rejection> {
    // 1. schema
    let extra = terms::parse_extra(q.extra, network)?;
    let t = &extra.terms;
    // 2. deadlines
    if !terms::deadlines_ok(
        t.pay_by_time,
        t.submit_result_time,
        t.unlock_time,
        t.external_dispute_unlock_time,
    ) {
        return Err(rej(
            Reason::MasumiDeadline,
            "terms deadlines must be spaced payBy+5min <= submitResult, +15min <= unlock, +15min <= externalDisputeUnlock",
        ));
    }
    // 3. commitment
    terms::check_commitment(&extra)?;
    // 4. escrow address
    let (deployment, custom) = match (&extra.deployment, escrow::network_default(network)) {
        (Some(d), default) => (d.clone(), default.as_ref() != Some(d)),
        (None, Some(d)) => (d, false),
        (None, None) => {
            return Err(rej(
                Reason::MasumiDeployment,
                format!(
                    "{} has no default Masumi deployment: extra.deployment is required",
                    network.name()
                ),
            ));
        }
    };
    let escrow_hash = escrow::script_hash(&deployment)
        .map_err(|e| rej(Reason::MasumiDeployment, format!("escrow derivation: {e}")))?;
    let escrow_addr = escrow::address_of(&escrow_hash, network);
    let pay_to = address::parse_shelley_bech32(q.pay_to)
        .map_err(|_| rej(Reason::MasumiDeployment, "payTo is not an address"))?;
    if pay_to.bytes != escrow_addr.bytes {
        return Err(rej(
            Reason::MasumiDeployment,
            format!("payTo is not the deployment's escrow address {escrow_addr}"),
        ));
    }
    // 5. seller signature over termsDigest
    let terms_digest = terms::terms_digest(&extra, q)?;
    cose::verify_seller_signature(
        &extra.reference_key,
        &extra.reference_signature,
        &t.seller_address.bytes,
        &terms_digest,
    )
    .map_err(|e| rej(Reason::MasumiSellerSignature, e.to_string()))?;
    // 6. custom deployment approval (the seller's signature is not approval)
    if custom && !policy.approved_deployments.contains(&escrow_hash) {
        return Err(rej(
            Reason::MasumiDeployment,
            format!(
                "custom deployment {} is not approved by this facilitator",
                hex::encode(escrow_hash)
            ),
        ));
    }
    // 7. identity
    let agent = t.agent_identifier.hex();
    if !agent.is_empty() {
        if !agent.starts_with(REGISTRY_POLICY) {
            return Err(rej(
                Reason::MasumiAgentIdentifier,
                "agentIdentifier is not under the Masumi V2 registry policy",
            ));
        }
        let Some(registry) = &policy.registry else {
            return Err(rej(
                Reason::MasumiAgentIdentifier,
                "a registered agentIdentifier needs a registry validator, and none is configured",
            ));
        };
        registry
            .validate(&RegistryQuery {
                network,
                agent_identifier: agent,
                seller_address: &t.seller_address,
                asset: q.asset,
                amount: q.amount,
            })
            .map_err(|e| rej(Reason::MasumiAgentIdentifier, e))?;
    }
    // 8. blockchainIdentifier
    let id = identifier::decode(&extra.blockchain_identifier).map_err(|e| {
        rej(
            Reason::MasumiIdentifier,
            format!("blockchainIdentifier: {e}"),
        )
    })?;
    let mismatch = [
        (id.seller_nonce == t.seller_nonce, "sellerNonce"),
        (id.agent_identifier == agent, "agentIdentifier"),
        (id.buyer_nonce == t.buyer_nonce, "buyerNonce"),
        (
            id.reference_signature == extra.reference_signature_hex,
            "referenceSignature",
        ),
        (id.reference_key == extra.reference_key_hex, "referenceKey"),
        (id.contract_address == q.pay_to, "payTo"),
    ]
    .into_iter()
    .find(|(ok, _)| !ok);
    if let Some((_, what)) = mismatch {
        return Err(rej(
            Reason::MasumiIdentifier,
            format!("blockchainIdentifier does not carry this request's {what}"),
        ));
    }
    let asset: Asset = q.asset.parse().map_err(|_| {
        rej(
            Reason::InvalidRequirements,
            "asset is not lovelace or policy.name",
        )
    })?;
    let amount: u64 = q
        .amount
        .parse()
        .map_err(|_| rej(Reason::InvalidRequirements, "amount is not an integer"))?;
    Ok(MasumiTerms {
        extra,
        asset,
        amount,
        terms_digest,
        escrow: escrow_addr,
        escrow_hash,
    })
}

/// What [`check_lock`] needs besides the terms.
pub struct LockFacts<'a> {
    pub tx: &'a ParsedTx,
    pub asset: &'a Asset,
    pub amount: u64,
    /// Raw address bytes of the nonce's owner.
    pub nonce_owner: &'a [u8],
    /// Key hashes with a valid vkey witness.
    pub signers: &'a BTreeSet<[u8; 28]>,
    /// Live `coinsPerUtxoByte`, when known.
    pub coins_per_utxo_byte: Option<u64>,
    /// The last slot whose start is at or before a POSIX-millisecond time.
    pub slot_of_ms: &'a dyn Fn(u128) -> u64,
}

/// An output whose datum field is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedOutput;

/// The inline datum of an output, from its raw CBOR: `Ok(None)` when there is none.
pub fn inline_datum(raw_output: &[u8]) -> Result<Option<Vec<u8>>, MalformedOutput> {
    use super::cbor::Item;
    let out = super::cbor::decode(raw_output).map_err(|_| MalformedOutput)?;
    let Item::Map(_) = out else {
        // Legacy (array) outputs carry at most a datum hash.
        return Ok(None);
    };
    match out.get_int(2) {
        None => Ok(None),
        Some(Item::Array(a)) => match a.as_slice() {
            [Item::Int(1), Item::Tag(24, inner)] => match inner.as_ref() {
                Item::Bytes(b) => Ok(Some(b.clone())),
                _ => Err(MalformedOutput),
            },
            [Item::Int(0), _] => Ok(None),
            _ => Err(MalformedOutput),
        },
        Some(_) => Err(MalformedOutput),
    }
}

fn has_script_or_pointer(a: &PdAddress) -> bool {
    matches!(a.payment, Credential::ScriptHash(_))
        || matches!(
            a.stake,
            PdStake::Inline(Credential::ScriptHash(_)) | PdStake::Pointer(..)
        )
}

fn touches(a: &PdAddress, h: &[u8; 28]) -> bool {
    a.payment.hash() == h || matches!(&a.stake, PdStake::Inline(c) if c.hash() == h)
}

/// Step 10's invariants on a parsed datum.
fn datum_invariants(d: &FundsLocked, escrow_hash: &[u8; 28]) -> Result<(), Rejection> {
    let bad = |m: &str| rej(Reason::MasumiDatumInvalid, m);
    if d.state != 0 {
        return Err(bad("state is not FundsLocked"));
    }
    if !d.result_hash.is_empty() {
        return Err(bad("result_hash must be empty"));
    }
    if d.seller_cooldown_time != 0 || d.buyer_cooldown_time != 0 {
        return Err(bad("cooldown times must be 0"));
    }
    let addrs = [
        Some(&d.buyer),
        d.buyer_return.as_ref(),
        Some(&d.seller),
        d.seller_return.as_ref(),
    ];
    for a in addrs.into_iter().flatten() {
        if has_script_or_pointer(a) {
            return Err(bad(
                "datum addresses must use key credentials without pointers",
            ));
        }
        if touches(a, escrow_hash) {
            return Err(bad("a datum address uses the escrow's credential"));
        }
    }
    if d.reference_signature.len() < 16 {
        return Err(bad("reference_signature is shorter than 16 bytes"));
    }
    let buyer_target = d.buyer_return.as_ref().unwrap_or(&d.buyer);
    let seller_target = d.seller_return.as_ref().unwrap_or(&d.seller);
    if buyer_target == seller_target {
        return Err(bad(
            "the buyer's and the seller's payout targets are the same",
        ));
    }
    if !terms::deadlines_ok(
        d.pay_by_time,
        d.submit_result_time,
        d.unlock_time,
        d.external_dispute_unlock_time,
    ) {
        return Err(rej(
            Reason::MasumiDeadline,
            "the datum's deadlines are not spaced as the terms require",
        ));
    }
    Ok(())
}

/// Masumi's post-SubmitResult minimum for the escrow output.
pub fn post_result_min_utxo(datum_len: usize, tokens: usize, coins_per_utxo_byte: u64) -> u128 {
    u128::from(coins_per_utxo_byte)
        * (datum_len as u128 + MIN_UTXO_OVERHEAD + MIN_UTXO_PER_TOKEN * tokens as u128)
}

/// The collateral a buyer adds so the escrow stays above the post-result minimum.
pub fn collateral_for(requested_lovelace: u128, min_utxo: u128) -> u128 {
    if requested_lovelace >= min_utxo {
        0
    } else {
        MIN_COLLATERAL.max(min_utxo - requested_lovelace)
    }
}

/// Steps 9–15 on the transaction.
pub fn check_lock(t: &MasumiTerms, f: &LockFacts<'_>) -> Result<(), Rejection> {
    let terms = &t.extra.terms;
    // 9. exactly one escrow output, inline datum, no reference script
    let at_escrow: Vec<_> =
        f.tx.outputs()
            .iter()
            .filter(|o| o.address == t.escrow.bytes)
            .collect();
    let [out] = at_escrow.as_slice() else {
        return Err(rej(
            Reason::MasumiEscrowOutputCount,
            format!(
                "{} outputs pay the escrow address; exactly one must",
                at_escrow.len()
            ),
        ));
    };
    let datum_bytes = match inline_datum(&out.raw_cbor) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return Err(rej(
                Reason::MasumiDatumMissing,
                "the escrow output has no inline datum",
            ));
        }
        Err(MalformedOutput) => {
            return Err(rej(
                Reason::MasumiDatumInvalid,
                "the escrow output's datum is malformed",
            ));
        }
    };
    if out.has_script_ref {
        return Err(rej(
            Reason::MasumiReferenceScript,
            "the escrow output carries a reference script",
        ));
    }
    // 10. datum
    let d =
        datum::parse(&datum_bytes).map_err(|e| rej(Reason::MasumiDatumInvalid, e.to_string()))?;
    datum_invariants(&d, &t.escrow_hash)?;
    // 11. ttl no later than payByTime
    match f.tx.ttl() {
        Some(ttl) if ttl <= (f.slot_of_ms)(d.pay_by_time) => {}
        Some(ttl) => {
            return Err(rej(
                Reason::MasumiDeadline,
                format!("ttl slot {ttl} is after pay_by_time"),
            ));
        }
        None => return Err(rej(Reason::MasumiDeadline, "the transaction has no ttl")),
    }
    // 12. buyer = the nonce owner's payment key, and a witness
    let mismatch = |m: &str| rej(Reason::MasumiDatumMismatch, m);
    let owner = address::parse_shelley_bytes(f.nonce_owner)
        .map_err(|_| mismatch("the nonce owner is not a Shelley key address"))?;
    match (d.buyer.payment, owner.payment) {
        (Credential::KeyHash(b), Credential::KeyHash(o)) if b == o && f.signers.contains(&b) => {}
        _ => {
            return Err(mismatch(
                "the datum's buyer is not the nonce owner's payment key, or it did not sign",
            ));
        }
    }
    // 13. seller and seller return address
    if d.seller != PdAddress::of(&terms.seller_address) {
        return Err(mismatch("the datum's seller is not terms.sellerAddress"));
    }
    if d.seller_return != terms.seller_return_address.as_ref().map(PdAddress::of) {
        return Err(mismatch(
            "the datum's seller return address does not match terms.sellerReturnAddress",
        ));
    }
    // 14. exact equality of the signed values
    let hx = |s: &str| hex::decode(s).unwrap_or_default();
    let eq = [
        (d.reference_key == t.extra.reference_key, "reference_key"),
        (
            d.reference_signature == t.extra.reference_signature,
            "reference_signature",
        ),
        (d.seller_nonce == hx(&terms.seller_nonce), "seller_nonce"),
        (d.buyer_nonce == hx(&terms.buyer_nonce), "buyer_nonce"),
        (d.input_hash == terms.input_hash, "input_hash"),
        (
            d.agent_identifier == hx(terms.agent_identifier.hex()),
            "agent_identifier",
        ),
        (d.pay_by_time == terms.pay_by_time, "pay_by_time"),
        (
            d.submit_result_time == terms.submit_result_time,
            "submit_result_time",
        ),
        (d.unlock_time == terms.unlock_time, "unlock_time"),
        (
            d.external_dispute_unlock_time == terms.external_dispute_unlock_time,
            "external_dispute_unlock_time",
        ),
    ];
    if let Some((_, what)) = eq.iter().find(|(ok, _)| !ok) {
        return Err(mismatch(&format!(
            "the datum's {what} differs from the terms"
        )));
    }
    // 15. value: collateral, asset, min-UTxO
    let requested = if f.asset.is_lovelace() {
        u128::from(f.amount)
    } else {
        0
    };
    let collateral = d.collateral_return_lovelace;
    if collateral != 0 && collateral < MIN_COLLATERAL {
        return Err(rej(
            Reason::MasumiCollateral,
            format!("collateral_return_lovelace must be 0 or at least {MIN_COLLATERAL}"),
        ));
    }
    if requested.checked_add(collateral) != Some(u128::from(out.value.coin)) {
        return Err(rej(
            Reason::MasumiCollateral,
            format!(
                "the escrow holds {} lovelace; amount + collateral is {}",
                out.value.coin,
                requested.saturating_add(collateral)
            ),
        ));
    }
    let asset_ok = match f.asset {
        Asset::Lovelace => out.value.assets.is_empty(),
        Asset::Native(id) => {
            out.value.assets.len() == 1 && out.value.assets.get(id) == Some(&f.amount)
        }
    };
    if !asset_ok {
        return Err(rej(
            Reason::MasumiAsset,
            "the escrow output must carry exactly the requested asset and amount",
        ));
    }
    if let Some(cpb) = f.coins_per_utxo_byte {
        let min = post_result_min_utxo(d.encode().len(), out.value.assets.len(), cpb);
        if u128::from(out.value.coin) < min {
            return Err(rej(
                Reason::MasumiMinUtxo,
                format!(
                    "the escrow holds {} lovelace, below the post-result minimum {min}",
                    out.value.coin
                ),
            ));
        }
    }
    Ok(())
}

// The seller's quotes and the buyer's transactions come from `crate::buyer`.
#[cfg(all(test, feature = "buyer"))]
mod tests {
    use super::*;

    use serde_json::{Value as Json, json};

    use crate::buyer::keys::SigningKey;
    use crate::buyer::quote::{self, QuoteSpec};

    /// The requirements of three `quote_vectors.json` vectors, under the names
    /// of the `lock_verify_vectors.json` cases that verify them as valid.
    fn vectors() -> Json {
        let v: Json = serde_json::from_str(include_str!("testdata/quote_vectors.json")).unwrap();
        let by = |name: &str| {
            let all = v["vectors"].as_array().unwrap();
            all.iter().find(|q| q["name"] == name).unwrap()["requirements"].clone()
        };
        json!({
            "valid lovelace": by("lovelace unregistered absent"),
            "valid token": by("token custom deployment multi part"),
            "valid registered": by("registered with return address"),
        })
    }

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_seed([byte; 32])
    }

    fn check(
        req: &Json,
        network: Network,
        policy: &MasumiPolicy,
    ) -> Result<MasumiTerms, Rejection> {
        check_requirements(&quote::view(req).unwrap(), network, policy)
    }

    fn code(r: Result<MasumiTerms, Rejection>) -> Option<Reason> {
        r.err().map(|(c, _)| c)
    }

    /// `quote_vectors.json` "lovelace unregistered absent": our seller side
    /// issues the vector's requirements byte for byte (signature included),
    /// and they verify with its termsDigest.
    #[test]
    fn quote_vector_is_reproduced_and_verifies() {
        let want = vectors()["valid lovelace"].clone();
        let spec = QuoteSpec {
            network: Network::Preprod,
            asset: "lovelace".into(),
            amount: "50000000".into(),
            max_timeout_seconds: 600,
            seller_address: "addr_test1vz9jrppy446d7fwntsh23cy55nzutt4jew6yysvnx9tfxycvp587p"
                .into(),
            seller_return_address: None,
            parts: vec![
                json!({"name": "body", "canonicalization": "jcs", "mediaType": "application/json", "content": {"days": 3, "units": "metric"}}),
            ],
            pay_by_time: 1_785_756_000_000,
            submit_result_time: 1_785_756_300_000,
            unlock_time: 1_785_757_200_000,
            external_dispute_unlock_time: 1_785_758_100_000,
            seller_nonce: "ab".repeat(32),
            buyer_nonce: String::new(),
            agent_identifier: None,
            deployment: None,
        };
        let got = quote::issue(&spec, &key(7)).unwrap();
        assert_eq!(got, want);
        let t = check(&want, Network::Preprod, &MasumiPolicy::default()).unwrap();
        assert_eq!(
            hex::encode(t.terms_digest),
            "819c00819a599aa6e048d01b08ab7c034b83f6a142ea3e86998eed4601d03ee1"
        );
        assert_eq!(hex::encode(t.escrow_hash), escrow::DEFAULT_SCRIPT_HASH);
        // The signed terms are the vector's JCS bytes.
        let m = terms::parse_extra(&want["extra"], Network::Preprod).unwrap();
        let signed = terms::jcs(&terms::signed_terms(&m, &quote::view(&want).unwrap())).unwrap();
        assert_eq!(
            String::from_utf8(signed).unwrap(),
            r#"{"amount":"50000000","asset":"lovelace","assetTransferMethod":"masumi","buyerNonce":"","contractAddress":"addr_test1wzs4e6wc95hkwezlccjw9mdvq0r0rsgx6zk34avptga3ftgn37w4g","externalDisputeUnlockTime":"1785758100000","inputHash":"f336fadcc1b29faacba71b6e0ec7f80bc5bc4673db6b8fc93f59e5f9fb3c49c7","maxTimeoutSeconds":600,"network":"cardano:preprod","payByTime":"1785756000000","paymentType":"Web3CardanoV2","scheme":"exact","sellerAddress":"addr_test1vz9jrppy446d7fwntsh23cy55nzutt4jew6yysvnx9tfxycvp587p","sellerNonce":"abababababababababababababababababababababababababababababababab","submitResultTime":"1785756300000","unlockTime":"1785757200000","version":"1"}"#
        );
    }

    /// `agentIdentifier` absent, `null` and `""` are three different digests
    /// (quote vector "agentIdentifier null": 79f3cb0f...).
    #[test]
    fn agent_identifier_forms_digest_differently() {
        let mut req = vectors()["valid lovelace"].clone();
        req["amount"] = json!("1000000");
        let mut digests = std::collections::HashSet::new();
        for form in [None, Some(Json::Null), Some(json!(""))] {
            let mut r = req.clone();
            if let Some(f) = form.clone() {
                r["extra"]["terms"]["agentIdentifier"] = f;
            }
            quote::sign_into(&mut r, &key(7)).unwrap();
            let t = check(&r, Network::Preprod, &MasumiPolicy::default()).unwrap();
            if form == Some(Json::Null) {
                assert_eq!(
                    hex::encode(t.terms_digest),
                    "79f3cb0fdc8ac05efc226f9370c1be134fa08bcf91e64a3503c38a4e2b5c3f71"
                );
            }
            digests.insert(t.terms_digest);
        }
        assert_eq!(digests.len(), 3);
    }

    /// lock_verify "valid token": a custom deployment (multi-part commitment,
    /// a raw part without content) needs the operator's approval.
    #[test]
    fn custom_deployment_needs_approval() {
        let req = vectors()["valid token"].clone();
        assert_eq!(
            code(check(&req, Network::Preprod, &MasumiPolicy::default())),
            Some(Reason::MasumiDeployment)
        );
        let mut policy = MasumiPolicy::default();
        let hash = escrow::address_of(&[0; 28], Network::Preprod); // not it
        policy.approved_deployments.insert(*hash.payment.hash());
        assert_eq!(
            code(check(&req, Network::Preprod, &policy)),
            Some(Reason::MasumiDeployment)
        );
        let want = address::parse_shelley_bech32(req["payTo"].as_str().unwrap()).unwrap();
        policy.approved_deployments.insert(*want.payment.hash());
        assert!(check(&req, Network::Preprod, &policy).is_ok());
    }

    /// lock_verify "valid registered" / "registered without validator".
    #[test]
    fn registered_agent_needs_a_validator() {
        let req = vectors()["valid registered"].clone();
        assert_eq!(
            code(check(&req, Network::Preprod, &MasumiPolicy::default())),
            Some(Reason::MasumiAgentIdentifier)
        );
        let agent = req["extra"]["terms"]["agentIdentifier"]
            .as_str()
            .unwrap()
            .to_owned();
        let seller = req["extra"]["terms"]["sellerAddress"]
            .as_str()
            .unwrap()
            .to_owned();
        let registry = |seller: &str, amount: Option<&str>| {
            let mut agents = HashMap::new();
            agents.insert(
                agent.clone(),
                RegisteredAgent {
                    seller_address: seller.to_owned(),
                    asset: Some("lovelace".into()),
                    amount: amount.map(str::to_owned),
                },
            );
            MasumiPolicy {
                approved_deployments: HashSet::new(),
                registry: Some(Arc::new(StaticRegistry { agents })),
            }
        };
        assert!(check(&req, Network::Preprod, &registry(&seller, Some("2500000"))).is_ok());
        assert_eq!(
            code(check(&req, Network::Preprod, &registry(&seller, Some("1")))),
            Some(Reason::MasumiAgentIdentifier)
        );
        assert_eq!(
            code(check(
                &req,
                Network::Preprod,
                &registry(
                    "addr_test1vz9jrppy446d7fwntsh23cy55nzutt4jew6yysvnx9tfxycvp587p",
                    None
                )
            )),
            Some(Reason::MasumiAgentIdentifier)
        );
    }

    /// One mutation per requirements reason code (and the schema's closed objects).
    #[test]
    fn requirement_rejections() {
        let base = vectors()["valid lovelace"].clone();
        let none = MasumiPolicy::default();
        // (name, mutation, re-sign as the seller?, expected)
        type Mutation = fn(&mut Json);
        let cases: Vec<(&str, Mutation, bool, Reason)> = vec![
            (
                "unknown extra key",
                |r| r["extra"]["x"] = json!(1),
                false,
                Reason::MasumiSchema,
            ),
            (
                "submissionPolicy (Java-only)",
                |r| r["extra"]["submissionPolicy"] = json!({}),
                false,
                Reason::MasumiSchema,
            ),
            (
                "unknown terms key",
                |r| r["extra"]["terms"]["scheme"] = json!("exact"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "unknown part key",
                |r| r["extra"]["inputCommitment"]["parts"][0]["x"] = json!(1),
                false,
                Reason::MasumiSchema,
            ),
            (
                "unknown commitment key",
                |r| r["extra"]["inputCommitment"]["x"] = json!(1),
                false,
                Reason::MasumiSchema,
            ),
            (
                "unknown confirmationPolicy key",
                |r| r["extra"]["confirmationPolicy"] = json!({"x": 1}),
                false,
                Reason::MasumiSchema,
            ),
            (
                "terms.version 2",
                |r| r["extra"]["terms"]["version"] = json!("2"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "paymentType",
                |r| r["extra"]["terms"]["paymentType"] = json!("Web3CardanoV1"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "fees sponsored",
                |r| r["extra"]["areFeesSponsored"] = json!(true),
                false,
                Reason::MasumiSchema,
            ),
            (
                "script seller",
                |r| {
                    r["extra"]["terms"]["sellerAddress"] =
                        json!("addr_test1wzs4e6wc95hkwezlccjw9mdvq0r0rsgx6zk34avptga3ftgn37w4g")
                },
                false,
                Reason::MasumiSchema,
            ),
            (
                "mainnet seller",
                |r| {
                    r["extra"]["terms"]["sellerAddress"] =
                        json!("addr1vyjhzsk56euudsj6cjf8av3q4ph6q0stqlqy6scsjc0vnmqvstjme")
                },
                false,
                Reason::MasumiSchema,
            ),
            (
                "null return address",
                |r| r["extra"]["terms"]["sellerReturnAddress"] = Json::Null,
                false,
                Reason::MasumiSchema,
            ),
            (
                "short buyer nonce",
                |r| r["extra"]["terms"]["buyerNonce"] = json!("0102"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "upper-case seller nonce",
                |r| r["extra"]["terms"]["sellerNonce"] = json!("AB".repeat(32)),
                false,
                Reason::MasumiSchema,
            ),
            (
                "odd agent id",
                |r| r["extra"]["terms"]["agentIdentifier"] = json!("abc"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "leading-zero time",
                |r| r["extra"]["terms"]["payByTime"] = json!("01785756000000"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "inputHash != digest",
                |r| r["extra"]["terms"]["inputHash"] = json!("00".repeat(32)),
                false,
                Reason::MasumiSchema,
            ),
            (
                "upper-case key hex",
                |r| r["extra"]["referenceKey"] = json!("A4"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "empty identifier",
                |r| r["extra"]["blockchainIdentifier"] = json!(""),
                false,
                Reason::MasumiSchema,
            ),
            (
                "zero parts",
                |r| r["extra"]["inputCommitment"]["parts"] = json!([]),
                false,
                Reason::MasumiSchema,
            ),
            (
                "bad canonicalization",
                |r| r["extra"]["inputCommitment"]["parts"][0]["canonicalization"] = json!("xml"),
                false,
                Reason::MasumiSchema,
            ),
            (
                "deployment admins > keys",
                |r| r["extra"]["deployment"] = json!({"requiredAdmins": "2", "adminVkeys": ["00".repeat(28)], "cooldownPeriod": "0"}),
                false,
                Reason::MasumiSchema,
            ),
            (
                "deployment leading zero",
                |r| r["extra"]["deployment"] = json!({"requiredAdmins": "01", "adminVkeys": ["00".repeat(28)], "cooldownPeriod": "0"}),
                false,
                Reason::MasumiSchema,
            ),
            (
                "deadlines too close",
                |r| r["extra"]["terms"]["submitResultTime"] = json!("1785756299999"),
                false,
                Reason::MasumiDeadline,
            ),
            (
                "part content changed",
                |r| r["extra"]["inputCommitment"]["parts"][0]["content"]["days"] = json!(4),
                false,
                Reason::MasumiCommitment,
            ),
            (
                "manifest changed",
                |r| {
                    r["extra"]["inputCommitment"]["parts"][0]["mediaType"] = json!("text/plain");
                },
                false,
                Reason::MasumiCommitment,
            ),
            (
                "payTo is another escrow",
                |r| {
                    r["payTo"] =
                        json!("addr_test1wzvzlsm6lf9njhpfrl07fq30k9ngxxth04ne9efr9gdedcg2pq5sg")
                },
                false,
                Reason::MasumiDeployment,
            ),
            (
                "amount changed after signing",
                |r| r["amount"] = json!("50000001"),
                false,
                Reason::MasumiSellerSignature,
            ),
            (
                "maxTimeoutSeconds changed after signing",
                |r| r["maxTimeoutSeconds"] = json!(601),
                false,
                Reason::MasumiSellerSignature,
            ),
            (
                "signature by another key",
                |r| {
                    r["extra"]["referenceKey"] = json!(
                        "a401010327200621582066be7e332c7a453332bd9d0a7f7db055f5c5ef1a06ada66d98b39fb6810c473a"
                    );
                },
                false,
                Reason::MasumiSellerSignature,
            ),
            (
                "agent outside the registry policy",
                |r| r["extra"]["terms"]["agentIdentifier"] = json!("0011"),
                true,
                Reason::MasumiAgentIdentifier,
            ),
            (
                "registered agent, no validator",
                |r| r["extra"]["terms"]["agentIdentifier"] = json!(format!("{REGISTRY_POLICY}01")),
                true,
                Reason::MasumiAgentIdentifier,
            ),
            (
                "identifier of other terms",
                |r| {
                    let mut other = r.clone();
                    other["extra"]["terms"]["buyerNonce"] = json!("0102030405060708");
                    quote::sign_into(&mut other, &SigningKey::from_seed([7; 32])).unwrap();
                    r["extra"]["blockchainIdentifier"] =
                        other["extra"]["blockchainIdentifier"].clone();
                },
                true,
                Reason::MasumiIdentifier,
            ),
            (
                "identifier not LZString",
                |r| r["extra"]["blockchainIdentifier"] = json!("ffff"),
                false,
                Reason::MasumiIdentifier,
            ),
        ];
        for (name, mutate, resign, want) in cases {
            let mut r = base.clone();
            mutate(&mut r);
            if resign {
                let id = r["extra"]["blockchainIdentifier"].clone();
                quote::sign_into(&mut r, &key(7)).unwrap();
                if want == Reason::MasumiIdentifier {
                    r["extra"]["blockchainIdentifier"] = id;
                }
            }
            assert_eq!(
                code(check(&r, Network::Preprod, &none)),
                Some(want),
                "{name}"
            );
        }
        // Preview has no default deployment.
        let mut r = base.clone();
        r["network"] = json!("cardano:preview");
        assert_eq!(
            code(check(&r, Network::Preview, &none)),
            Some(Reason::MasumiDeployment)
        );
        // The base passes.
        assert!(check(&base, Network::Preprod, &none).is_ok());
    }

    /// `collateral_vectors.json` @c0ed496a, every case: the whole "collateral"
    /// grid (datumBytes 0/1/300/450/1000/12345, tokens 0/1/3, coinsPerUtxoByte
    /// 0/1/44/4310, the five requested amounts) gives the post-result minimum and
    /// the collateral a buyer adds; every "intervals" case gives the deadline
    /// spacing verdict.
    #[test]
    fn collateral_vectors() {
        const REQUESTED: [u128; 5] = [0, 1_000_000, 1_435_230, 2_000_000, 50_000_000];
        let (mut grid, mut intervals) = (0, 0);
        for line in include_str!("testdata/collateral.in").lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() || f[0].starts_with('#') {
                continue;
            }
            if f[0] == "interval" {
                let t: Vec<u128> = f[1..5].iter().map(|x| x.parse().unwrap()).collect();
                let hold: bool = f[5].parse().unwrap();
                assert_eq!(
                    crate::scheme::masumi::terms::deadlines_ok(t[0], t[1], t[2], t[3]),
                    hold,
                    "{line}"
                );
                intervals += 1;
                continue;
            }
            let datum: usize = f[0].parse().unwrap();
            let tokens: usize = f[1].parse().unwrap();
            let cpb: u64 = f[2].parse().unwrap();
            let min: u128 = f[3].parse().unwrap();
            assert_eq!(post_result_min_utxo(datum, tokens, cpb), min, "{line}");
            assert_eq!(f.len(), 4 + REQUESTED.len(), "{line}");
            for (requested, want) in REQUESTED.iter().zip(&f[4..]) {
                let want: u128 = want.parse().unwrap();
                assert_eq!(collateral_for(*requested, min), want, "{line} @{requested}");
                grid += 1;
            }
        }
        // 6 datum sizes x 3 token counts x 4 prices x 5 requested amounts.
        assert_eq!(grid, 360);
        assert_eq!(intervals, 6);
    }

    mod lock_checks {
        use super::*;
        use crate::buyer::builder::{self, OutputDatums, OutputSpec, TxBody};
        use crate::cardano::{AssetId, TxId, UtxoRef, Value};
        use crate::scheme::masumi::lock::{self, Lock};

        struct Fx {
            terms: MasumiTerms,
            buyer: SigningKey,
            lock: Lock,
            pay_by_slot: u64,
        }

        /// lock_verify "valid lovelace" with a buyer key of ours.
        fn fx() -> Fx {
            let req = vectors()["valid lovelace"].clone();
            let terms = check(&req, Network::Preprod, &MasumiPolicy::default()).unwrap();
            let buyer = key(0x21);
            let addr =
                address::parse_shelley_bytes(&buyer.enterprise_address_bytes(Network::Preprod))
                    .unwrap();
            let lock = lock::lock_for(&req, &addr, None, 4310).unwrap();
            let pay_by_slot = (lock.datum.pay_by_time / 1000) as u64;
            Fx {
                terms,
                buyer,
                lock,
                pay_by_slot,
            }
        }

        fn nonce() -> UtxoRef {
            UtxoRef {
                tx_id: TxId([7; 32]),
                index: 0,
            }
        }

        /// A signed transaction with the given (output, inline datum) list.
        fn tx(f: &Fx, outs: Vec<(OutputSpec, Option<Vec<u8>>)>, ttl: Option<u64>) -> ParsedTx {
            let mut datums = OutputDatums::new();
            let mut outputs = Vec::new();
            for (i, (o, d)) in outs.into_iter().enumerate() {
                if let Some(d) = d {
                    datums.insert(i, d);
                }
                outputs.push(o);
            }
            let body = TxBody {
                inputs: vec![nonce()],
                outputs,
                fee: 200_000,
                ttl,
                ..TxBody::default()
            };
            let built =
                builder::sign_body_with_datums(&body, &datums, std::slice::from_ref(&f.buyer));
            ParsedTx::decode(&built.tx).unwrap()
        }

        fn escrow_out(f: &Fx) -> (OutputSpec, Option<Vec<u8>>) {
            (
                OutputSpec {
                    address: f.lock.address.clone(),
                    value: f.lock.value.clone(),
                },
                Some(f.lock.datum_cbor.clone()),
            )
        }

        fn run(
            f: &Fx,
            t: &ParsedTx,
            owner: &SigningKey,
            signed: bool,
            cpb: u64,
        ) -> Result<(), Rejection> {
            let owner_addr = owner.enterprise_address_bytes(Network::Preprod);
            let mut signers = BTreeSet::new();
            if signed {
                signers.insert(owner.key_hash());
            }
            let slot = |ms: u128| (ms / 1000) as u64;
            check_lock(
                &f.terms,
                &LockFacts {
                    tx: t,
                    asset: &Asset::Lovelace,
                    amount: 50_000_000,
                    nonce_owner: &owner_addr,
                    signers: &signers,
                    coins_per_utxo_byte: Some(cpb),
                    slot_of_ms: &slot,
                },
            )
        }

        fn with_datum(f: &Fx, edit: impl Fn(&mut FundsLocked)) -> (OutputSpec, Option<Vec<u8>>) {
            let mut d = f.lock.datum.clone();
            edit(&mut d);
            let (o, _) = escrow_out(f);
            (o, Some(d.encode()))
        }

        /// A lock carrying a reference script: the escrow output's map gets key 3.
        fn with_reference_script(f: &Fx) -> ParsedTx {
            let (o, d) = escrow_out(f);
            let plain = builder::encode_output_with_datum(&o, d.as_deref());
            let mut patched = plain.clone();
            patched[0] = 0xa4; // map(3) -> map(4)
            patched
                .extend_from_slice(&[0x03, 0xd8, 0x18, 0x46, 0x82, 0x03, 0x43, 0x01, 0x02, 0x03]);
            let body = TxBody {
                inputs: vec![nonce()],
                outputs: vec![o],
                fee: 200_000,
                ttl: Some(f.pay_by_slot),
                ..TxBody::default()
            };
            let mut datums = OutputDatums::new();
            datums.insert(0, d.unwrap_or_default());
            let body_bytes = builder::encode_body_with_datums(&body, &datums);
            let at = body_bytes
                .windows(plain.len())
                .position(|w| w == plain.as_slice())
                .unwrap();
            let mut b2 = body_bytes[..at].to_vec();
            b2.extend_from_slice(&patched);
            b2.extend_from_slice(&body_bytes[at + plain.len()..]);
            let w = builder::sign(&b2, std::slice::from_ref(&f.buyer));
            let raw = builder::assemble(&b2, &builder::encode_witness_set(&w), true, None);
            ParsedTx::decode(&raw).unwrap()
        }

        /// One case per payload reason code of the lock (steps 9-15).
        #[test]
        fn lock_rejections() {
            let f = fx();
            let ttl = Some(f.pay_by_slot);
            let other = key(0x22);
            let change = (
                OutputSpec {
                    address: f.buyer.enterprise_address_bytes(Network::Preprod),
                    value: Value::lovelace(5_000_000),
                },
                None,
            );
            let token = AssetId {
                policy: [9; 28],
                name: b"t".to_vec(),
            };
            let mut with_token = escrow_out(&f);
            with_token.0.value.checked_add_asset(token, 1).unwrap();
            let mut plus_one = escrow_out(&f);
            plus_one.0.value.coin += 1;

            assert_eq!(
                run(
                    &f,
                    &tx(&f, vec![escrow_out(&f), change.clone()], ttl),
                    &f.buyer,
                    true,
                    4310
                ),
                Ok(())
            );
            let code = |r: Result<(), Rejection>| r.err().map(|(c, _)| c);
            let cases: Vec<(&str, ParsedTx, &SigningKey, bool, u64, Reason)> = vec![
                (
                    "two escrow outputs",
                    tx(&f, vec![escrow_out(&f), escrow_out(&f)], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiEscrowOutputCount,
                ),
                (
                    "no escrow output",
                    tx(&f, vec![change.clone()], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiEscrowOutputCount,
                ),
                (
                    "no datum",
                    tx(&f, vec![(escrow_out(&f).0, None)], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMissing,
                ),
                (
                    "reference script",
                    with_reference_script(&f),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiReferenceScript,
                ),
                (
                    "not Plutus data",
                    tx(&f, vec![(escrow_out(&f).0, Some(vec![0xa0]))], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "not FundsLocked",
                    tx(&f, vec![with_datum(&f, |d| d.state = 1)], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "result hash set",
                    tx(&f, vec![with_datum(&f, |d| d.result_hash = vec![1])], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "cooldown set",
                    tx(&f, vec![with_datum(&f, |d| d.buyer_cooldown_time = 1)], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "short reference signature",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| d.reference_signature = vec![1; 15])],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "buyer returns to the seller",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| d.buyer_return = Some(d.seller.clone()))],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "script buyer",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| {
                            d.buyer.payment = Credential::ScriptHash([3; 28])
                        })],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "escrow as buyer stake",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| {
                            d.buyer.stake =
                                PdStake::Inline(Credential::KeyHash(f.terms.escrow_hash))
                        })],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumInvalid,
                ),
                (
                    "datum deadlines too close",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| d.submit_result_time = d.pay_by_time)],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDeadline,
                ),
                (
                    "ttl after payByTime",
                    tx(&f, vec![escrow_out(&f)], Some(f.pay_by_slot + 1)),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDeadline,
                ),
                (
                    "no ttl",
                    tx(&f, vec![escrow_out(&f)], None),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDeadline,
                ),
                (
                    "buyer is not the nonce owner",
                    tx(&f, vec![escrow_out(&f)], ttl),
                    &other,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "buyer did not sign",
                    tx(&f, vec![escrow_out(&f)], ttl),
                    &f.buyer,
                    false,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "other seller",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| {
                            d.seller.payment = Credential::KeyHash([4; 28])
                        })],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "undeclared seller return",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| {
                            d.seller_return = Some(PdAddress {
                                payment: Credential::KeyHash([5; 28]),
                                stake: PdStake::None,
                            })
                        })],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "other seller nonce",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| d.seller_nonce = vec![0; 32])],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "other input hash",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| d.input_hash = vec![0; 32])],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "other reference key",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| d.reference_key = vec![0; 4])],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "agent identifier added",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| d.agent_identifier = vec![1])],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "shifted deadlines",
                    tx(
                        &f,
                        vec![with_datum(&f, |d| {
                            d.pay_by_time += 1000;
                            d.submit_result_time += 1000;
                            d.unlock_time += 1000;
                            d.external_dispute_unlock_time += 1000;
                        })],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiDatumMismatch,
                ),
                (
                    "collateral below the floor",
                    tx(
                        &f,
                        vec![{
                            let (mut o, _) =
                                with_datum(&f, |d| d.collateral_return_lovelace = 1000);
                            o.value.coin += 1000;
                            (
                                o,
                                Some({
                                    let mut d = f.lock.datum.clone();
                                    d.collateral_return_lovelace = 1000;
                                    d.encode()
                                }),
                            )
                        }],
                        ttl,
                    ),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiCollateral,
                ),
                (
                    "coin is not amount + collateral",
                    tx(&f, vec![plus_one], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiCollateral,
                ),
                (
                    "an extra token",
                    tx(&f, vec![with_token], ttl),
                    &f.buyer,
                    true,
                    4310,
                    Reason::MasumiAsset,
                ),
                (
                    "below the post-result minimum",
                    tx(&f, vec![escrow_out(&f)], ttl),
                    &f.buyer,
                    true,
                    100_000,
                    Reason::MasumiMinUtxo,
                ),
            ];
            for (name, t, owner, signed, cpb, want) in cases {
                assert_eq!(code(run(&f, &t, owner, signed, cpb)), Some(want), "{name}");
            }
        }

        #[test]
        fn inline_datum_forms() {
            assert_eq!(
                inline_datum(&hex::decode("a200410001182a").unwrap()),
                Ok(None)
            );
            assert_eq!(inline_datum(&hex::decode("8241000a").unwrap()), Ok(None));
            assert_eq!(
                inline_datum(&hex::decode("a3004100010a028200410a").unwrap()),
                Ok(None)
            );
            assert_eq!(
                inline_datum(&hex::decode("a3004100010a028201d8184180").unwrap()),
                Ok(Some(vec![0x80]))
            );
            assert_eq!(
                inline_datum(&hex::decode("a3004100010a028202d8184180").unwrap()),
                Err(MalformedOutput)
            );
            assert_eq!(
                inline_datum(&hex::decode("ff").unwrap()),
                Err(MalformedOutput)
            );
        }
    }
}
