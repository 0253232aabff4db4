//! The `exact` Cardano verify pipeline, rule by rule.
//!
//! Every test drives [`verify`] with real transactions signed by keys derived
//! from a BIP39 mnemonic, against a tiny in-test chain (a fixed UTxO map).
//! Each rule has one table-driven test asserting the exact reason code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

use x402_facilitator::buyer::builder::{self, Built, InputSpec, OutputSpec, PaymentSpec, TxBody};
use x402_facilitator::buyer::keys::{SigningKey, Wallet};
use x402_facilitator::cardano::{
    AssetId, Network, ProtocolParams, RefScript, TxId, UtxoInfo, UtxoRef, UtxoState, Value, address,
};
use x402_facilitator::chain::{ChainError, ChainProvider, Evidence, SubmitOutcome, Tip};
use x402_facilitator::protocol::{Reason, parse_request};
use x402_facilitator::scheme::exact_cardano::{
    self, VerifyContext, VerifyLimits, VerifyOutcome, verify, verify_offline,
};

// ---------------------------------------------------------------- test chain

/// Unix time of slot 0 on the test chain (1 slot per second).
const T0: i64 = 1_700_000_000;
/// "Now" for every test: slot 10 000.
const NOW_SLOT: u64 = 10_000;
const MAX_TIMEOUT: u64 = 600;

#[derive(Default)]
struct ChainState {
    utxos: HashMap<UtxoRef, UtxoState>,
    tip_fails: bool,
    params_fail: bool,
    params: Option<ProtocolParams>,
    /// Every chain call made (tip, utxos, protocol parameters, evidence).
    calls: usize,
    /// The number of references asked for by each `utxos` call.
    utxo_batches: Vec<usize>,
}

/// A fixed UTxO set. A reference that is not in the map is answered `Spent`
/// (positive evidence of absence, as a backend that knows the producing tx would).
#[derive(Clone, Default)]
struct TestChain(Arc<Mutex<ChainState>>);

impl TestChain {
    fn set(&self, r: UtxoRef, s: UtxoState) {
        self.0.lock().unwrap().utxos.insert(r, s);
    }
    fn with<R>(&self, f: impl FnOnce(&mut ChainState) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
    /// Chain calls made so far: pure rejections must leave this at zero.
    fn calls(&self) -> usize {
        self.0.lock().unwrap().calls
    }
}

#[async_trait]
impl ChainProvider for TestChain {
    fn network(&self) -> Network {
        Network::Preprod
    }
    async fn utxos(&self, refs: &[UtxoRef]) -> Vec<UtxoState> {
        let mut s = self.0.lock().unwrap();
        s.calls += 1;
        s.utxo_batches.push(refs.len());
        refs.iter()
            .map(|r| s.utxos.get(r).cloned().unwrap_or(UtxoState::Spent))
            .collect()
    }
    async fn tip(&self) -> Result<Tip, ChainError> {
        let fails = self.with(|s| {
            s.calls += 1;
            s.tip_fails
        });
        if fails {
            return Err(ChainError::new("tip", "connection refused"));
        }
        Ok(Tip {
            slot: NOW_SLOT - 15,
            height: 500,
            time: T0 + NOW_SLOT as i64 - 15,
            hash: [0; 32],
        })
    }
    async fn protocol_params(&self) -> Result<Arc<ProtocolParams>, ChainError> {
        let mut s = self.0.lock().unwrap();
        s.calls += 1;
        if s.params_fail {
            return Err(ChainError::new("protocol_params", "timeout"));
        }
        Ok(Arc::new(
            s.params
                .clone()
                .unwrap_or_else(ProtocolParams::mainnet_like),
        ))
    }
    async fn submit(&self, _tx: &[u8]) -> SubmitOutcome {
        SubmitOutcome::Unknown("not used".into())
    }
    async fn evidence(&self, _tx_id: &TxId) -> Result<Evidence, ChainError> {
        self.with(|s| s.calls += 1);
        Ok(Evidence::NotSeen)
    }
    fn slot_at(&self, unix_seconds: i64) -> u64 {
        u64::try_from(unix_seconds - T0).unwrap_or(0)
    }
}

// ---------------------------------------------------------------- fixture

const MNEMONIC: &str = "test walk nut penalty hip pave soap entry language right filter choice";
const POLICY: [u8; 28] = [0xc4; 28];

fn token() -> AssetId {
    AssetId {
        policy: POLICY,
        name: b"USDM".to_vec(),
    }
}

fn token_str() -> String {
    token().dotted()
}

fn value(coin: u64, tokens: u64) -> Value {
    let mut v = Value::lovelace(coin);
    v.checked_add_asset(token(), tokens).unwrap();
    v
}

fn utxo(n: u8, ix: u32) -> UtxoRef {
    UtxoRef::new(TxId([n; 32]), ix)
}

/// Buyer, seller, a third party, the chain, and the buyer's UTxOs.
struct World {
    chain: TestChain,
    buyer: SigningKey,
    buyer_addr: Vec<u8>,
    seller_addr: Vec<u8>,
    third: SigningKey,
    third_addr: Vec<u8>,
    /// Nonce UTxO: 10 ADA + 500 USDM, owned by the buyer.
    nonce: UtxoRef,
    /// A second buyer UTxO: 5 ADA.
    extra: UtxoRef,
    /// A UTxO owned by the third party: 3 ADA.
    foreign: UtxoRef,
}

fn world() -> World {
    let wallet = Wallet::from_mnemonic(MNEMONIC, "").unwrap();
    let buyer = wallet.payment_key(0, 0);
    let buyer_addr = address::decode_bech32(&wallet.base_address(Network::Preprod))
        .unwrap()
        .1;
    let seller_addr = wallet
        .payment_key(1, 0)
        .enterprise_address_bytes(Network::Preprod);
    let third = SigningKey::from_seed([33; 32]);
    let third_addr = third.enterprise_address_bytes(Network::Preprod);
    let chain = TestChain::default();
    let (nonce, extra, foreign) = (utxo(1, 0), utxo(2, 1), utxo(3, 2));
    let unspent =
        |address: &Vec<u8>, value: Value| UtxoState::Unspent(UtxoInfo::new(address.clone(), value));
    chain.set(nonce, unspent(&buyer_addr, value(10_000_000, 500)));
    chain.set(extra, unspent(&buyer_addr, Value::lovelace(5_000_000)));
    chain.set(foreign, unspent(&third_addr, Value::lovelace(3_000_000)));
    World {
        chain,
        buyer,
        buyer_addr,
        seller_addr,
        third,
        third_addr,
        nonce,
        extra,
        foreign,
    }
}

impl World {
    fn utxo_value(&self, r: &UtxoRef) -> Value {
        match self.chain.0.lock().unwrap().utxos.get(r) {
            Some(UtxoState::Unspent(u)) => u.value.clone(),
            _ => Value::default(),
        }
    }

    /// A payment spec paying `pay` to the seller from the nonce UTxO, ttl now + 300.
    fn spec(&self, pay: Value) -> PaymentSpec {
        PaymentSpec {
            inputs: vec![InputSpec {
                utxo: self.nonce,
                value: self.utxo_value(&self.nonce),
            }],
            outputs: vec![OutputSpec {
                address: self.seller_addr.clone(),
                value: pay,
            }],
            change_address: self.buyer_addr.clone(),
            validity_start: Some(NOW_SLOT - 100),
            ttl: Some(NOW_SLOT + 300),
            network_id: None,
        }
    }

    fn build(&self, spec: &PaymentSpec, keys: &[SigningKey]) -> Built {
        builder::build_payment(spec, &ProtocolParams::mainnet_like(), keys).unwrap()
    }

    /// The default payment: 2 ADA to the seller (lovelace requirement).
    fn lovelace_payment(&self) -> Built {
        self.build(
            &self.spec(Value::lovelace(2_000_000)),
            std::slice::from_ref(&self.buyer),
        )
    }

    /// 40 USDM + 1.5 ADA to the seller.
    fn token_payment(&self) -> Built {
        self.build(
            &self.spec(value(1_500_000, 40)),
            std::slice::from_ref(&self.buyer),
        )
    }

    fn ctx(&self) -> VerifyContext {
        let mut ctx = VerifyContext::new(Arc::new(self.chain.clone()), Network::Preprod);
        ctx.clock = Arc::new(|| T0 + NOW_SLOT as i64);
        ctx
    }

    fn seller_bech32(&self) -> String {
        address::to_bech32(&self.seller_addr).unwrap()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn requirements(w: &World, amount: &str, asset: &str) -> Json {
    json!({
        "scheme": "exact", "network": "cardano:preprod", "amount": amount, "asset": asset,
        "payTo": w.seller_bech32(), "maxTimeoutSeconds": MAX_TIMEOUT,
        "extra": {"confirmationPolicy": {"l1Confirmations": 1}}
    })
}

/// A v2 request body for `tx` with the given requirements (also used as `accepted`).
fn request_v2(tx: &[u8], nonce: &UtxoRef, reqs: &Json) -> Json {
    json!({
        "x402Version": 2,
        "paymentPayload": {
            "x402Version": 2,
            "resource": {"url": "https://api.example.com/premium"},
            "accepted": reqs,
            "payload": {"transaction": b64(tx), "nonce": nonce.to_string()}
        },
        "paymentRequirements": reqs
    })
}

fn lovelace_request(w: &World, tx: &[u8]) -> Json {
    request_v2(tx, &w.nonce, &requirements(w, "2000000", "lovelace"))
}

/// Verify a request body; an envelope rejection (the parse step) comes back as `Invalid`.
async fn run(w: &World, body: &Json) -> VerifyOutcome {
    match parse_request(&serde_json::to_vec(body).unwrap()) {
        Ok(req) => verify(&w.ctx(), &req).await,
        Err(e) => {
            assert!(!e.is_bad_request(), "{e}");
            VerifyOutcome::Invalid {
                reason: e.reason(),
                message: e.to_string(),
                payer: None,
            }
        }
    }
}

#[track_caller]
fn expect(case: &str, out: &VerifyOutcome, want: Reason) {
    match out {
        VerifyOutcome::Valid(_) => panic!("{case}: expected {want}, got Valid"),
        VerifyOutcome::Invalid {
            reason, message, ..
        }
        | VerifyOutcome::Unavailable { reason, message } => {
            assert_eq!(*reason, want, "{case}: {message}");
            assert!(!message.is_empty(), "{case}: empty message");
        }
    }
}

/// Re-sign an edited body with the given keys.
fn resign(body: &TxBody, keys: &[SigningKey]) -> Vec<u8> {
    builder::sign_body(body, keys).tx
}

// ---------------------------------------------------------------- happy paths

#[tokio::test]
async fn happy_path_lovelace() {
    let w = world();
    let built = w.lovelace_payment();
    let out = run(&w, &lovelace_request(&w, &built.tx)).await;
    let VerifyOutcome::Valid(p) = &out else {
        panic!("{out:?}")
    };
    assert_eq!(p.tx_id, built.tx_id);
    assert_eq!(p.inputs, vec![w.nonce]);
    assert_eq!(p.nonce, w.nonce);
    assert_eq!(p.payer, address::to_bech32(&w.buyer_addr).unwrap());
    assert_eq!(p.paid, 2_000_000);
    assert_eq!(p.ttl_slot, NOW_SLOT + 300);
    assert_eq!(p.l1_confirmations, 1);
    let resp = serde_json::to_value(out.to_response()).unwrap();
    assert_eq!(resp, json!({"isValid": true, "payer": p.payer}));
}

#[tokio::test]
async fn happy_path_native_token_two_inputs_and_cip34_alias() {
    let w = world();
    let mut spec = w.spec(value(1_500_000, 40));
    spec.inputs.push(InputSpec {
        utxo: w.extra,
        value: w.utxo_value(&w.extra),
    });
    let built = w.build(&spec, std::slice::from_ref(&w.buyer));
    let mut reqs = requirements(&w, "40", &token_str());
    reqs["network"] = json!("cip34:0-1");
    reqs["extra"] = json!({"confirmationPolicy": {"l1Confirmations": 3}});
    let out = run(&w, &request_v2(&built.tx, &w.nonce, &reqs)).await;
    let VerifyOutcome::Valid(p) = out else {
        panic!("{out:?}")
    };
    assert_eq!(p.paid, 40);
    assert_eq!(p.l1_confirmations, 3);
    assert_eq!(p.inputs.len(), 2);
    assert_eq!(p.asset.to_string(), token_str());
}

#[tokio::test]
async fn happy_path_v1_request() {
    let w = world();
    let built = w.lovelace_payment();
    let body = json!({
        "x402Version": 1,
        "paymentPayload": {"x402Version": 1, "scheme": "exact", "network": "cardano-preprod",
            "payload": {"transaction": b64(&built.tx), "nonce": w.nonce.to_string()}},
        "paymentRequirements": {"scheme": "exact", "network": "cardano-preprod", "maxAmountRequired": "2000000",
            "resource": "https://api.example.com/premium", "description": "premium data",
            "mimeType": "application/json", "payTo": w.seller_bech32(), "maxTimeoutSeconds": MAX_TIMEOUT,
            "asset": "lovelace", "extra": null}
    });
    let out = run(&w, &body).await;
    assert!(out.is_valid(), "{out:?}");
}

// ---------------------------------------------------------------- rule tables

#[tokio::test]
async fn rule_envelope() {
    let w = world();
    let built = w.lovelace_payment();
    let base = lovelace_request(&w, &built.tx);
    type Edit = fn(&mut Json, &World);
    let cases: Vec<(&str, Edit, Reason)> = vec![
        (
            "scheme not exact",
            |b, _| b["paymentRequirements"]["scheme"] = json!("upto"),
            Reason::UnsupportedScheme,
        ),
        (
            "accepted scheme differs",
            |b, _| b["paymentPayload"]["accepted"]["scheme"] = json!("upto"),
            Reason::UnsupportedScheme,
        ),
        (
            "network not served",
            |b, _| b["paymentRequirements"]["network"] = json!("cardano:mainnet"),
            Reason::NetworkMismatch,
        ),
        (
            "unknown network",
            |b, _| b["paymentRequirements"]["network"] = json!("eip155:8453"),
            Reason::NetworkMismatch,
        ),
        (
            "accepted network differs",
            |b, _| b["paymentPayload"]["accepted"]["network"] = json!("cardano:preview"),
            Reason::NetworkMismatch,
        ),
        (
            "accepted amount differs",
            |b, _| b["paymentPayload"]["accepted"]["amount"] = json!("1"),
            Reason::InvalidPayloadShape,
        ),
        (
            "accepted payTo differs",
            |b, w| {
                b["paymentPayload"]["accepted"]["payTo"] =
                    json!(address::to_bech32(&w.third_addr).unwrap())
            },
            Reason::InvalidPayloadShape,
        ),
        (
            "accepted asset differs",
            |b, _| b["paymentPayload"]["accepted"]["asset"] = json!(token_str()),
            Reason::InvalidPayloadShape,
        ),
        (
            "accepted timeout differs",
            |b, _| b["paymentPayload"]["accepted"]["maxTimeoutSeconds"] = json!(60000),
            Reason::InvalidPayloadShape,
        ),
        (
            "accepted policy differs",
            |b, _| {
                b["paymentPayload"]["accepted"]["extra"] =
                    json!({"confirmationPolicy": {"l1Confirmations": -1}})
            },
            Reason::InvalidPayloadShape,
        ),
        (
            "amount zero",
            |b, _| {
                b["paymentRequirements"]["amount"] = json!("0");
                b["paymentPayload"]["accepted"]["amount"] = json!("0");
            },
            Reason::InvalidRequirements,
        ),
        (
            "amount not an integer",
            |b, _| {
                b["paymentRequirements"]["amount"] = json!("1.5");
                b["paymentPayload"]["accepted"]["amount"] = json!("1.5");
            },
            Reason::InvalidRequirements,
        ),
        (
            "asset syntax",
            |b, _| {
                b["paymentRequirements"]["asset"] = json!("ADA");
                b["paymentPayload"]["accepted"]["asset"] = json!("ADA");
            },
            Reason::InvalidRequirements,
        ),
        (
            "asset upper case",
            |b, _| {
                let a = token_str().to_uppercase();
                b["paymentRequirements"]["asset"] = json!(a);
                b["paymentPayload"]["accepted"]["asset"] = json!(a);
            },
            Reason::InvalidRequirements,
        ),
        (
            "payTo mainnet",
            |b, _| {
                let a = "addr1vx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzers66hrl8";
                b["paymentRequirements"]["payTo"] = json!(a);
                b["paymentPayload"]["accepted"]["payTo"] = json!(a);
            },
            Reason::InvalidRequirements,
        ),
        (
            "payTo stake address",
            |b, _| {
                let a = "stake_test1uqehkck0lajq8gr28t9uxnuvgcqrc6070x3k9r8048z8y5gssrtvn";
                b["paymentRequirements"]["payTo"] = json!(a);
                b["paymentPayload"]["accepted"]["payTo"] = json!(a);
            },
            Reason::InvalidRequirements,
        ),
        (
            "payTo garbage",
            |b, _| {
                b["paymentRequirements"]["payTo"] = json!("bob");
                b["paymentPayload"]["accepted"]["payTo"] = json!("bob");
            },
            Reason::InvalidRequirements,
        ),
        (
            "masumi method without its extra",
            |b, _| {
                let e = json!({"assetTransferMethod": "masumi", "confirmationPolicy": {"l1Confirmations": 1}});
                b["paymentRequirements"]["extra"] = e.clone();
                b["paymentPayload"]["accepted"]["extra"] = e;
            },
            Reason::MasumiSchema,
        ),
        (
            // Sheet 4.1: `script` without `script` or `scriptHash` is a mismatch.
            "script method without a script",
            |b, _| {
                let e = json!({"assetTransferMethod": "script"});
                b["paymentRequirements"]["extra"] = e.clone();
                b["paymentPayload"]["accepted"]["extra"] = e;
            },
            Reason::ScriptAddressMismatch,
        ),
        (
            "confirmations out of range",
            |b, _| {
                let e = json!({"confirmationPolicy": {"l1Confirmations": 21}});
                b["paymentRequirements"]["extra"] = e.clone();
                b["paymentPayload"]["accepted"]["extra"] = e;
            },
            Reason::RequirementsPolicy,
        ),
        (
            "policy not an object",
            |b, _| {
                let e = json!({"confirmationPolicy": 2});
                b["paymentRequirements"]["extra"] = e.clone();
                b["paymentPayload"]["accepted"]["extra"] = e;
            },
            Reason::RequirementsPolicy,
        ),
        (
            "payload x402Version 1 in a v2 request",
            |b, _| b["paymentPayload"]["x402Version"] = json!(1),
            Reason::UnsupportedVersion,
        ),
        (
            "script payTo with the default method",
            |b, _| {
                let mut a = vec![0x70u8];
                a.extend_from_slice(&[7; 28]);
                let a = address::to_bech32(&a).unwrap();
                b["paymentRequirements"]["payTo"] = json!(a);
                b["paymentPayload"]["accepted"]["payTo"] = json!(a);
            },
            Reason::RecipientMismatch,
        ),
        (
            "script payTo (base address) with an explicit default method",
            |b, _| {
                let mut a = vec![0x30u8];
                a.extend_from_slice(&[7; 56]);
                let a = address::to_bech32(&a).unwrap();
                let e = json!({"assetTransferMethod": "default"});
                b["paymentRequirements"]["payTo"] = json!(a);
                b["paymentPayload"]["accepted"]["payTo"] = json!(a);
                b["paymentRequirements"]["extra"] = e.clone();
                b["paymentPayload"]["accepted"]["extra"] = e;
            },
            Reason::RecipientMismatch,
        ),
        (
            "decoded transaction over 65,536 bytes",
            |b, _| b["paymentPayload"]["payload"]["transaction"] = json!(b64(&[0u8; 65_537])),
            Reason::TransactionDecodeFailed,
        ),
        // Sheet 2.3 order, two faults at once: the earlier step answers.
        (
            "order: bad amount before bad policy",
            |b, _| {
                let e = json!({"confirmationPolicy": {"l1Confirmations": 99}});
                for k in ["paymentRequirements", "paymentPayload/accepted"] {
                    let q = b.pointer_mut(&format!("/{k}")).unwrap();
                    q["amount"] = json!("01");
                    q["extra"] = e.clone();
                }
            },
            Reason::InvalidRequirements,
        ),
        (
            "order: missing nonce before bad policy",
            |b, _| {
                let e = json!({"confirmationPolicy": {"l1Confirmations": 99}});
                b["paymentRequirements"]["extra"] = e.clone();
                b["paymentPayload"]["accepted"]["extra"] = e;
                b["paymentPayload"]["payload"]
                    .as_object_mut()
                    .unwrap()
                    .remove("nonce");
            },
            Reason::InvalidPayloadShape,
        ),
        (
            "order: bad policy before bad nonce",
            |b, _| {
                let e = json!({"confirmationPolicy": {"l1Confirmations": 99}});
                b["paymentRequirements"]["extra"] = e.clone();
                b["paymentPayload"]["accepted"]["extra"] = e;
                b["paymentPayload"]["payload"]["nonce"] = json!("x#0");
            },
            Reason::RequirementsPolicy,
        ),
        (
            "order: bad nonce before bad base64",
            |b, _| {
                b["paymentPayload"]["payload"]["nonce"] = json!("x#0");
                b["paymentPayload"]["payload"]["transaction"] = json!("****");
            },
            Reason::NonceInvalid,
        ),
        (
            "payload not an object",
            |b, _| b["paymentPayload"]["payload"] = json!("tx"),
            Reason::InvalidPayloadShape,
        ),
        (
            "payload without nonce",
            |b, _| {
                b["paymentPayload"]["payload"]
                    .as_object_mut()
                    .unwrap()
                    .remove("nonce");
            },
            Reason::InvalidPayloadShape,
        ),
        (
            "nonce without index",
            |b, _| b["paymentPayload"]["payload"]["nonce"] = json!("ab".repeat(32)),
            Reason::NonceInvalid,
        ),
        (
            "nonce upper case",
            |b, _| {
                b["paymentPayload"]["payload"]["nonce"] = json!(format!("{}#0", "AB".repeat(32)))
            },
            Reason::NonceInvalid,
        ),
        (
            "nonce leading zero index",
            |b, w| b["paymentPayload"]["payload"]["nonce"] = json!(format!("{}#00", w.nonce.tx_id)),
            Reason::NonceInvalid,
        ),
        (
            "transaction text over ceil(65536/3)*4 characters",
            |b, _| b["paymentPayload"]["payload"]["transaction"] = json!("A".repeat(87_388)),
            Reason::InvalidPayloadShape,
        ),
    ];
    for (name, edit, want) in cases {
        let mut body = base.clone();
        edit(&mut body, &w);
        expect(name, &run(&w, &body).await, want);
    }
    // Every rejection above is pure: not one chain call was made.
    assert_eq!(w.chain.calls(), 0, "stage A must not touch the chain");
    // Nothing in stage A costs a chain call: a dead chain changes nothing.
    w.chain.with(|s| s.tip_fails = true);
    let mut body = base.clone();
    body["paymentRequirements"]["scheme"] = json!("upto");
    expect(
        "dead chain, bad scheme",
        &run(&w, &body).await,
        Reason::UnsupportedScheme,
    );
}

#[tokio::test]
async fn rule_decode_exactly_one_transaction() {
    let w = world();
    let built = w.lovelace_payment();
    let mut trailing = built.tx.clone();
    trailing.push(0);
    let mut twice = built.tx.clone();
    twice.extend_from_slice(&built.tx);
    let mut prefixed = vec![0x80];
    prefixed.extend_from_slice(&built.tx);
    let truncated = built.tx[..built.tx.len() - 1].to_vec();
    let body_only = built.body_bytes.clone();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("trailing byte", trailing),
        ("two transactions", twice),
        ("garbage before", prefixed),
        ("truncated", truncated),
        ("body alone", body_only),
        ("empty", vec![]),
        ("not CBOR", b"hello world".to_vec()),
    ];
    for (name, tx) in cases {
        expect(
            name,
            &run(&w, &lovelace_request(&w, &tx)).await,
            Reason::TransactionDecodeFailed,
        );
    }
    let mut body = lovelace_request(&w, &built.tx);
    body["paymentPayload"]["payload"]["transaction"] = json!("not base64!");
    expect(
        "not base64",
        &run(&w, &body).await,
        Reason::TransactionDecodeFailed,
    );
    let mut body = lovelace_request(&w, &built.tx);
    body["paymentPayload"]["payload"]["transaction"] = json!(hex::encode(&built.tx));
    expect(
        "hex instead of base64",
        &run(&w, &body).await,
        Reason::TransactionDecodeFailed,
    );
    assert_eq!(w.chain.calls(), 0, "decoding must not touch the chain");
}

/// Canonical padded standard base64 only (sheet 2.2): one text per transaction.
#[tokio::test]
async fn rule_base64_is_canonical() {
    let w = world();
    // A transaction whose length is not a multiple of 3, so its text is padded.
    let mut tx = w.lovelace_payment().tx;
    let mut extra = 0;
    while tx.len().is_multiple_of(3) {
        extra += 1_000;
        let mut spec = w.spec(Value::lovelace(2_000_000 + extra));
        spec.validity_start = None;
        tx = w.build(&spec, std::slice::from_ref(&w.buyer)).tx;
    }
    let text = b64(&tx);
    assert!(text.ends_with('='));
    let unpadded = text.trim_end_matches('=').to_owned();
    let trailing_bits = {
        // Set an unused low bit in the last significant character.
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut chars: Vec<char> = unpadded.chars().collect();
        let last = chars.pop().unwrap();
        let ix = alphabet.find(last).unwrap();
        chars.push(alphabet.as_bytes()[ix | 1] as char);
        let mut t: String = chars.into_iter().collect();
        t.push_str(&text[unpadded.len()..]);
        t
    };
    assert_ne!(trailing_bits, text);
    let url_safe = text.replace('+', "-").replace('/', "_");
    let cases = [
        ("unpadded", unpadded),
        ("non-zero trailing bits", trailing_bits),
        ("line break", format!("{}\n{}", &text[..40], &text[40..])),
        ("leading space", format!(" {text}")),
        ("over-padded", format!("{text}=")),
    ];
    for (name, t) in cases {
        let mut body = lovelace_request(&w, &tx);
        body["paymentPayload"]["payload"]["transaction"] = json!(t);
        expect(name, &run(&w, &body).await, Reason::TransactionDecodeFailed);
    }
    if url_safe != text {
        let mut body = lovelace_request(&w, &tx);
        body["paymentPayload"]["payload"]["transaction"] = json!(url_safe);
        expect(
            "url-safe alphabet",
            &run(&w, &body).await,
            Reason::TransactionDecodeFailed,
        );
    }
    assert_eq!(w.chain.calls(), 0);
    assert!(run(&w, &lovelace_request(&w, &tx)).await.is_valid());
}

/// Offset of the transaction input record `[id, index]` for `r` in `bytes`.
fn input_record_at(bytes: &[u8], r: &UtxoRef) -> usize {
    let mut needle = vec![0x82, 0x58, 0x20];
    needle.extend_from_slice(r.tx_id.as_bytes());
    bytes
        .windows(needle.len())
        .position(|win| win == needle.as_slice())
        .expect("input record present")
}

/// The node decodes every fixed-shape record by its exact element count,
/// whatever the length encoding; so must verify (issue 11 point 2).
#[tokio::test]
async fn rule_records_have_exact_element_counts() {
    use x402_facilitator::cardano::cbor::mutate;
    let w = world();
    // Fee headroom, so re-encodings one or two bytes longer still pay enough.
    let mut body = w.lovelace_payment().body;
    body.fee += 2_000;
    body.outputs[1].value.coin -= 2_000;
    let built = builder::sign_body(&body, std::slice::from_ref(&w.buyer));
    let indefinite = mutate::to_indefinite(&built.tx, 0).unwrap();
    let at = input_record_at(&built.body_bytes, &w.nonce);
    let resigned = |body_bytes: &[u8]| {
        let wits = builder::sign(body_bytes, std::slice::from_ref(&w.buyer));
        builder::assemble(body_bytes, &builder::encode_witness_set(&wits), true, None)
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "indefinite transaction with a fifth element (the issue's example)",
            mutate::with_extra_element(&indefinite, 0, &[0xf6]).unwrap(),
        ),
        (
            "definite transaction with a fifth element",
            mutate::with_extra_element(&built.tx, 0, &[0xf6]).unwrap(),
        ),
        (
            "input with a third element",
            resigned(&mutate::with_extra_element(&built.body_bytes, at, &[0x00]).unwrap()),
        ),
        (
            "indefinite input with a third element",
            resigned(
                &mutate::with_extra_element(
                    &mutate::to_indefinite(&built.body_bytes, at).unwrap(),
                    at,
                    &[0x00],
                )
                .unwrap(),
            ),
        ),
    ];
    for (name, tx) in cases {
        expect(
            name,
            &run(&w, &lovelace_request(&w, &tx)).await,
            Reason::TransactionDecodeFailed,
        );
    }
    assert_eq!(w.chain.calls(), 0);
    // Indefinite lengths with the right counts are what the node accepts too.
    let out = run(&w, &lovelace_request(&w, &indefinite)).await;
    let VerifyOutcome::Valid(p) = &out else {
        panic!("indefinite 4-element transaction: {out:?}")
    };
    assert_eq!(p.tx_id, built.tx_id, "same body, same id");
    let indefinite_input = resigned(&mutate::to_indefinite(&built.body_bytes, at).unwrap());
    let out = run(&w, &lovelace_request(&w, &indefinite_input)).await;
    assert!(out.is_valid(), "indefinite 2-element input: {out:?}");
}

/// Sets (inputs, required signers), `is_valid`, and the input limit: all pure.
#[tokio::test]
async fn rule_sets_phase2_and_input_limit() {
    let w = world();
    let base = w.lovelace_payment();
    let headroom = |mut b: TxBody| {
        b.fee += 10_000;
        b.outputs[1].value.coin -= 10_000;
        b
    };
    let mut dup_inputs = headroom(base.body.clone());
    dup_inputs.inputs = vec![w.nonce, w.nonce];
    let mut dup_signers = headroom(base.body.clone());
    dup_signers.required_signers = vec![w.buyer.key_hash(), w.buyer.key_hash()];
    let phase2 = builder::assemble(
        &base.body_bytes,
        &builder::encode_witness_set(&base.witnesses),
        false,
        None,
    );
    let mut many = headroom(base.body.clone());
    many.inputs = (0..257).map(|i| utxo(50, i)).collect();
    many.inputs[0] = w.nonce;
    // Order: a bad signature (step 12) is found before the duplicate (step 13),
    // and a nonce outside the inputs (14) before is_valid false (15).
    let dup_bad_sig = {
        let bytes = builder::encode_body(&dup_inputs);
        let mut wits = builder::sign(&bytes, std::slice::from_ref(&w.buyer));
        wits[0].signature[3] ^= 1;
        builder::assemble(&bytes, &builder::encode_witness_set(&wits), true, None)
    };
    let cases: Vec<(&str, Vec<u8>, UtxoRef, Reason)> = vec![
        (
            "input listed twice",
            resign(&dup_inputs, std::slice::from_ref(&w.buyer)),
            w.nonce,
            Reason::Phase1Invalid,
        ),
        (
            "required signer listed twice",
            resign(&dup_signers, std::slice::from_ref(&w.buyer)),
            w.nonce,
            Reason::Phase1Invalid,
        ),
        (
            "is_valid false",
            phase2.clone(),
            w.nonce,
            Reason::Phase2Invalid,
        ),
        (
            "257 inputs",
            resign(&many, std::slice::from_ref(&w.buyer)),
            w.nonce,
            Reason::Phase1Invalid,
        ),
        (
            "order: bad signature before duplicate input",
            dup_bad_sig,
            w.nonce,
            Reason::InvalidSignature,
        ),
        (
            "order: nonce not an input before is_valid false",
            phase2,
            utxo(9, 9),
            Reason::NonceNotInInputs,
        ),
    ];
    let reqs = requirements(&w, "2000000", "lovelace");
    for (name, tx, nonce, want) in cases {
        let out = run(&w, &request_v2(&tx, &nonce, &reqs)).await;
        expect(name, &out, want);
        if name == "input listed twice" {
            assert!(format!("{out:?}").contains("inputs"), "{out:?}");
        }
    }
    assert_eq!(w.chain.calls(), 0, "all of these are pure rejections");

    // Conway still merges a repeated vkey witness (only Dijkstra refuses it).
    let body = headroom(base.body.clone());
    let bytes = builder::encode_body(&body);
    let wit = builder::sign(&bytes, std::slice::from_ref(&w.buyer))[0];
    let twice = builder::assemble(
        &bytes,
        &builder::encode_witness_set(&[wit, wit]),
        true,
        None,
    );
    let out = run(&w, &lovelace_request(&w, &twice)).await;
    assert!(out.is_valid(), "a repeated witness: {out:?}");
}

/// At most 8 input lookups in flight: 20 inputs are resolved as 8 + 8 + 4.
#[tokio::test]
async fn rule_input_lookups_are_batched_by_eight() {
    let w = world();
    let mut spec = w.spec(Value::lovelace(2_000_000));
    for i in 0..19 {
        let r = utxo(60, i);
        w.chain.set(
            r,
            UtxoState::Unspent(UtxoInfo::new(
                w.buyer_addr.clone(),
                Value::lovelace(1_000_000),
            )),
        );
        spec.inputs.push(InputSpec {
            utxo: r,
            value: Value::lovelace(1_000_000),
        });
    }
    let built = w.build(&spec, std::slice::from_ref(&w.buyer));
    let out = run(&w, &lovelace_request(&w, &built.tx)).await;
    assert!(out.is_valid(), "{out:?}");
    assert_eq!(w.chain.with(|s| s.utxo_batches.clone()), vec![8, 8, 4]);
}

/// An input the backend resolved without a value cannot be judged: retryable.
#[tokio::test]
async fn rule_input_value_unavailable() {
    let w = world();
    let mut spec = w.spec(Value::lovelace(2_000_000));
    spec.inputs.push(InputSpec {
        utxo: w.extra,
        value: w.utxo_value(&w.extra),
    });
    let built = w.build(&spec, std::slice::from_ref(&w.buyer));
    w.chain.set(
        w.extra,
        UtxoState::Unspent(UtxoInfo::new(w.buyer_addr.clone(), Value::default())),
    );
    let out = run(&w, &lovelace_request(&w, &built.tx)).await;
    expect("input without a value", &out, Reason::InputValueUnavailable);
    assert!(matches!(out, VerifyOutcome::Unavailable { .. }), "{out:?}");
}

/// `maxValSize`: an output whose value serializes beyond it fails at the node
/// (`OutputTooBigUTxO`), so verify refuses it on the live parameter.
#[tokio::test]
async fn rule_output_value_size() {
    let w = world();
    let rich = utxo(70, 0);
    let mut holdings = Value::lovelace(100_000_000);
    for i in 0..150u32 {
        let mut name = vec![b'T'; 28];
        name.extend_from_slice(&i.to_be_bytes());
        holdings
            .checked_add_asset(
                AssetId {
                    policy: [0xab; 28],
                    name,
                },
                1,
            )
            .unwrap();
    }
    w.chain.set(
        rich,
        UtxoState::Unspent(UtxoInfo::new(w.buyer_addr.clone(), holdings.clone())),
    );
    let mut pay = holdings.clone();
    pay.coin = 40_000_000;
    let spec = PaymentSpec {
        inputs: vec![InputSpec {
            utxo: rich,
            value: holdings,
        }],
        outputs: vec![OutputSpec {
            address: w.seller_addr.clone(),
            value: pay.clone(),
        }],
        change_address: w.buyer_addr.clone(),
        validity_start: None,
        ttl: Some(NOW_SLOT + 300),
        network_id: None,
    };
    let built = w.build(&spec, std::slice::from_ref(&w.buyer));
    let size = x402_facilitator::cardano::phase1::value_serialized_size(&pay);
    assert!(size > 5_000, "{size}");
    let reqs = requirements(&w, "40000000", "lovelace");
    let out = run(&w, &request_v2(&built.tx, &rich, &reqs)).await;
    expect("value over maxValSize", &out, Reason::Phase1Invalid);
    assert!(format!("{out:?}").contains("OutputTooBigUTxO"), "{out:?}");
    // The live parameter decides.
    w.chain.with(|s| {
        let mut p = ProtocolParams::mainnet_like();
        p.max_val_size = size;
        s.params = Some(p);
    });
    let out = run(&w, &request_v2(&built.tx, &rich, &reqs)).await;
    assert!(out.is_valid(), "at exactly maxValSize: {out:?}");
}

/// Byron outputs: accepted as the Conway ledger accepts them (network from the
/// magic attribute, attributes at most 64 bytes, CRC intact).
#[tokio::test]
async fn rule_byron_outputs() {
    let w = world();
    let magic_1 = (2u8, vec![0x01]);
    let testnet = address::byron_address_bytes(&[3; 28], std::slice::from_ref(&magic_1));
    let mainnet = address::byron_address_bytes(&[3; 28], &[]);
    let mut hd = vec![0x58, 65];
    hd.extend_from_slice(&[7; 65]);
    let big = address::byron_address_bytes(&[3; 28], &[(1, hd), magic_1.clone()]);
    let mut bad_crc = testnet.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let with_byron_change = |addr: &Vec<u8>| {
        let mut spec = w.spec(Value::lovelace(2_000_000));
        spec.change_address = addr.clone();
        w.build(&spec, std::slice::from_ref(&w.buyer)).tx
    };
    let with_byron_output = |addr: &Vec<u8>| {
        let mut body = w.lovelace_payment().body;
        body.outputs[1].address = addr.clone();
        body.fee += 20_000;
        body.outputs[1].value.coin -= 20_000;
        resign(&body, std::slice::from_ref(&w.buyer))
    };
    let cases = [
        (
            "mainnet Byron change",
            with_byron_change(&mainnet),
            Reason::NetworkIdMismatch,
        ),
        (
            "Byron attributes over 64 bytes",
            with_byron_change(&big),
            Reason::Phase1Invalid,
        ),
        (
            "Byron CRC broken",
            with_byron_output(&bad_crc),
            Reason::TransactionDecodeFailed,
        ),
    ];
    for (name, tx, want) in cases {
        expect(name, &run(&w, &lovelace_request(&w, &tx)).await, want);
    }
    let out = run(&w, &lovelace_request(&w, &with_byron_change(&testnet))).await;
    assert!(out.is_valid(), "testnet Byron change: {out:?}");
}

#[tokio::test]
async fn rule_network_id() {
    let w = world();
    let built = w.lovelace_payment();
    let mut body_mainnet_id = built.body.clone();
    body_mainnet_id.network_id = Some(1);
    let mut mainnet_output = built.body.clone();
    mainnet_output.outputs[1].address[0] = (mainnet_output.outputs[1].address[0] & 0xf0) | 1;
    let cases = [
        ("body network id 1", body_mainnet_id),
        ("change to a mainnet address", mainnet_output),
    ];
    for (name, body) in cases {
        let tx = resign(&body, std::slice::from_ref(&w.buyer));
        expect(
            name,
            &run(&w, &lovelace_request(&w, &tx)).await,
            Reason::NetworkIdMismatch,
        );
    }
    let mut body_testnet_id = built.body.clone();
    body_testnet_id.network_id = Some(0);
    let tx = resign(&body_testnet_id, std::slice::from_ref(&w.buyer));
    // The explicit testnet id costs no extra fee byte budget? It does add bytes: only check the network rule passed.
    let out = run(&w, &lovelace_request(&w, &tx)).await;
    assert_ne!(out.reason(), Some(Reason::NetworkIdMismatch), "{out:?}");
}

#[tokio::test]
async fn rule_signatures() {
    let w = world();
    let built = w.lovelace_payment();
    let unsigned = builder::assemble(
        &built.body_bytes,
        &builder::encode_witness_set(&[]),
        true,
        None,
    );
    let mut bad_sig = built.witnesses.clone();
    bad_sig[0].signature[10] ^= 0x40;
    let bad_sig = builder::assemble(
        &built.body_bytes,
        &builder::encode_witness_set(&bad_sig),
        true,
        None,
    );
    let wrong_msg = {
        let mut w2 = built.witnesses.clone();
        w2[0].signature = w.buyer.sign(&[0u8; 32]);
        builder::assemble(
            &built.body_bytes,
            &builder::encode_witness_set(&w2),
            true,
            None,
        )
    };
    let short_key = builder::assemble(
        &built.body_bytes,
        &builder::encode_witness_set_raw(&[(
            built.witnesses[0].vkey[..31].to_vec(),
            built.witnesses[0].signature.to_vec(),
        )]),
        true,
        None,
    );
    let extra_bad = {
        let mut ws = built.witnesses.clone();
        ws.push(x402_facilitator::cardano::VkeyWitness {
            vkey: w.third.public_key(),
            signature: [7; 64],
        });
        builder::assemble(
            &built.body_bytes,
            &builder::encode_witness_set(&ws),
            true,
            None,
        )
    };
    let cases = [
        ("no witnesses", unsigned, Reason::Unsigned),
        ("corrupted signature", bad_sig, Reason::InvalidSignature),
        (
            "signature over another message",
            wrong_msg,
            Reason::InvalidSignature,
        ),
        ("31-byte key", short_key, Reason::InvalidSignature),
        (
            "an extra invalid witness",
            extra_bad,
            Reason::InvalidSignature,
        ),
    ];
    for (name, tx, want) in cases {
        expect(name, &run(&w, &lovelace_request(&w, &tx)).await, want);
    }
    // Re-ordered witnesses: different bytes, same canonical id, both valid.
    let two = w.build(
        &w.spec(Value::lovelace(2_000_000)),
        &[w.buyer.clone(), w.third.clone()],
    );
    let mut rev = two.witnesses.clone();
    rev.reverse();
    let reordered = builder::assemble(
        &two.body_bytes,
        &builder::encode_witness_set(&rev),
        true,
        None,
    );
    assert_ne!(reordered, two.tx);
    let (a, b) = (
        run(&w, &lovelace_request(&w, &two.tx)).await,
        run(&w, &lovelace_request(&w, &reordered)).await,
    );
    match (&a, &b) {
        (VerifyOutcome::Valid(x), VerifyOutcome::Valid(y)) => assert_eq!(x.tx_id, y.tx_id),
        _ => panic!("{a:?} {b:?}"),
    }
}

#[tokio::test]
async fn rule_validity_window() {
    let w = world();
    let mk = |start: Option<u64>, ttl: Option<u64>| {
        let mut spec = w.spec(Value::lovelace(2_000_000));
        spec.validity_start = start;
        spec.ttl = ttl;
        w.build(&spec, std::slice::from_ref(&w.buyer)).tx
    };
    let cases = [
        ("no ttl", mk(None, None), Reason::TtlTooFar),
        (
            "ttl passed",
            mk(None, Some(NOW_SLOT - 1)),
            Reason::TtlExpired,
        ),
        ("ttl is now", mk(None, Some(NOW_SLOT)), Reason::TtlExpired),
        (
            "start in the future",
            mk(Some(NOW_SLOT + 5), Some(NOW_SLOT + 100)),
            Reason::NotYetValid,
        ),
        (
            "ttl beyond maxTimeoutSeconds",
            mk(None, Some(NOW_SLOT + MAX_TIMEOUT + 1)),
            Reason::TtlTooFar,
        ),
    ];
    for (name, tx, want) in cases {
        expect(name, &run(&w, &lovelace_request(&w, &tx)).await, want);
    }
    let edge = mk(Some(NOW_SLOT), Some(NOW_SLOT + MAX_TIMEOUT));
    assert!(
        run(&w, &lovelace_request(&w, &edge)).await.is_valid(),
        "start = now and ttl = now + max are fine"
    );
}

#[tokio::test]
async fn rule_inputs_and_nonce() {
    let w = world();
    let mut spec = w.spec(Value::lovelace(2_000_000));
    spec.inputs.push(InputSpec {
        utxo: w.extra,
        value: w.utxo_value(&w.extra),
    });
    let built = w.build(&spec, std::slice::from_ref(&w.buyer));
    let reqs = requirements(&w, "2000000", "lovelace");
    type Setup = fn(&World);
    let cases: Vec<(&str, UtxoRef, Setup, Reason)> = vec![
        (
            "nonce not an input",
            utxo(9, 9),
            |_| {},
            Reason::NonceNotInInputs,
        ),
        (
            "nonce spent",
            utxo(1, 0),
            |w| w.chain.set(w.nonce, UtxoState::Spent),
            Reason::NonceNotOnChain,
        ),
        (
            "nonce never existed",
            utxo(1, 0),
            |w| {
                w.chain.with(|s| s.utxos.remove(&w.nonce));
            },
            Reason::NonceNotOnChain,
        ),
        (
            "other input spent",
            utxo(1, 0),
            |w| w.chain.set(w.extra, UtxoState::Spent),
            Reason::InputNotAvailable,
        ),
        (
            "nonce unknown",
            utxo(1, 0),
            |w| w.chain.set(w.nonce, UtxoState::Unknown("502".into())),
            Reason::ChainLookupFailed,
        ),
        (
            "other input unknown",
            utxo(1, 0),
            |w| w.chain.set(w.extra, UtxoState::Unknown("timeout".into())),
            Reason::ChainLookupFailed,
        ),
        (
            "tip unavailable",
            utxo(1, 0),
            |w| w.chain.with(|s| s.tip_fails = true),
            Reason::ChainLookupFailed,
        ),
        (
            "params unavailable",
            utxo(1, 0),
            |w| w.chain.with(|s| s.params_fail = true),
            Reason::ChainLookupFailed,
        ),
    ];
    for (name, nonce, setup, want) in cases {
        let w = world();
        setup(&w);
        let out = run(&w, &request_v2(&built.tx, &nonce, &reqs)).await;
        expect(name, &out, want);
        if want.is_retryable() {
            assert!(
                matches!(out, VerifyOutcome::Unavailable { .. }),
                "{name}: retryable must be Unavailable"
            );
        } else {
            assert!(matches!(out, VerifyOutcome::Invalid { .. }), "{name}");
        }
    }
    // The second input as nonce is fine too.
    let out = run(&w, &request_v2(&built.tx, &w.extra, &reqs)).await;
    assert!(out.is_valid(), "{out:?}");
}

#[tokio::test]
async fn rule_owner_witnesses_and_payer() {
    let w = world();
    // Payer (nonce owner) did not sign: only the third party did.
    let by_third = w
        .build(
            &w.spec(Value::lovelace(2_000_000)),
            std::slice::from_ref(&w.third),
        )
        .tx;
    // A foreign input whose owner did not sign.
    let mut spec = w.spec(Value::lovelace(2_000_000));
    spec.inputs.push(InputSpec {
        utxo: w.foreign,
        value: w.utxo_value(&w.foreign),
    });
    let foreign_unsigned = w.build(&spec, std::slice::from_ref(&w.buyer)).tx;
    let foreign_signed = w.build(&spec, &[w.buyer.clone(), w.third.clone()]).tx;
    // A required signer that did not sign.
    let mut body = w.lovelace_payment().body;
    body.required_signers = vec![w.third.key_hash()];
    body.fee += 2_000;
    body.outputs[1].value.coin -= 2_000;
    let required_missing = resign(&body, std::slice::from_ref(&w.buyer));

    let cases = [
        ("payer did not sign", by_third, Reason::PayerNotWitness),
        (
            "foreign input owner did not sign",
            foreign_unsigned,
            Reason::Phase1Invalid,
        ),
        (
            "required signer did not sign",
            required_missing,
            Reason::Phase1Invalid,
        ),
    ];
    for (name, tx, want) in cases {
        expect(name, &run(&w, &lovelace_request(&w, &tx)).await, want);
    }
    let out = run(&w, &lovelace_request(&w, &foreign_signed)).await;
    assert!(out.is_valid(), "both owners signed: {out:?}");

    // The nonce locked by a script.
    let w2 = world();
    let mut script_addr = w2.buyer_addr.clone();
    script_addr[0] = 0x70;
    script_addr.truncate(29);
    w2.chain.set(
        w2.nonce,
        UtxoState::Unspent(UtxoInfo::new(script_addr, value(10_000_000, 500))),
    );
    let tx = w2.lovelace_payment().tx;
    expect(
        "nonce at a script address",
        &run(&w2, &lovelace_request(&w2, &tx)).await,
        Reason::PayerNotWitness,
    );
    // The payer is reported on rejections once known.
    if let VerifyOutcome::Invalid { payer, .. } = run(
        &w,
        &lovelace_request(
            &w,
            &w.build(
                &w.spec(Value::lovelace(2_000_000)),
                std::slice::from_ref(&w.third),
            )
            .tx,
        ),
    )
    .await
    {
        assert_eq!(payer, Some(address::to_bech32(&w.buyer_addr).unwrap()));
    }
}

#[tokio::test]
async fn rule_payment_output() {
    let w = world();
    let to = |addr: Vec<u8>, v: Value| {
        let mut spec = w.spec(v);
        spec.outputs[0].address = addr;
        w.build(&spec, std::slice::from_ref(&w.buyer)).tx
    };
    let seller_base = address::base_address_bytes(
        0,
        &address::payment_key_hash(&w.seller_addr).unwrap(),
        &[1; 28],
    );
    let lovelace = requirements(&w, "2000000", "lovelace");
    let tokens = requirements(&w, "40", &token_str());
    let other_token = {
        let mut r = requirements(
            &w,
            "40",
            &AssetId {
                policy: POLICY,
                name: b"USDX".to_vec(),
            }
            .dotted(),
        );
        r["payTo"] = json!(w.seller_bech32());
        r
    };
    let cases: Vec<(&str, Vec<u8>, Json, Reason)> = vec![
        (
            "pays someone else",
            to(w.third_addr.clone(), Value::lovelace(2_000_000)),
            lovelace.clone(),
            Reason::RecipientMismatch,
        ),
        (
            "same key, other stake part",
            to(seller_base, Value::lovelace(2_000_000)),
            lovelace.clone(),
            Reason::RecipientMismatch,
        ),
        (
            "one lovelace short",
            to(w.seller_addr.clone(), Value::lovelace(1_999_999)),
            lovelace.clone(),
            Reason::AmountInsufficient,
        ),
        (
            "ada instead of token",
            to(w.seller_addr.clone(), Value::lovelace(2_000_000)),
            tokens.clone(),
            Reason::AssetMismatch,
        ),
        (
            "other token name",
            to(w.seller_addr.clone(), value(1_500_000, 40)),
            other_token,
            Reason::AssetMismatch,
        ),
        (
            "one token short",
            to(w.seller_addr.clone(), value(1_500_000, 39)),
            tokens.clone(),
            Reason::AmountInsufficient,
        ),
    ];
    for (name, tx, reqs, want) in cases {
        expect(
            name,
            &run(&w, &request_v2(&tx, &w.nonce, &reqs)).await,
            want,
        );
    }
    let over = to(w.seller_addr.clone(), value(1_500_000, 41));
    assert!(
        run(&w, &request_v2(&over, &w.nonce, &tokens))
            .await
            .is_valid(),
        "paying more is fine"
    );
}

#[tokio::test]
async fn rule_min_utxo() {
    let w = world();
    let tokens = requirements(&w, "40", &token_str());
    let small_pay = w
        .build(&w.spec(value(900_000, 40)), std::slice::from_ref(&w.buyer))
        .tx;
    // The payment output is fine, but the change output is below its minimum.
    let mut body = w.token_payment().body;
    let moved = body.outputs[1].value.coin - 500_000;
    body.outputs[1].value.coin = 500_000;
    body.outputs[0].value.coin += moved;
    let small_change = resign(&body, std::slice::from_ref(&w.buyer));
    let cases = [
        (
            "payment output below min-UTxO",
            small_pay,
            Reason::MinUtxoInsufficient,
        ),
        (
            "change output below min-UTxO",
            small_change,
            Reason::Phase1Invalid,
        ),
    ];
    for (name, tx, want) in cases {
        expect(
            name,
            &run(&w, &request_v2(&tx, &w.nonce, &tokens)).await,
            want,
        );
    }
}

#[tokio::test]
async fn rule_fee_and_size() {
    let w = world();
    let built = w.lovelace_payment();
    let mut low = built.body.clone();
    low.fee -= 1_000;
    low.outputs[1].value.coin += 1_000;
    let mut zero = built.body.clone();
    zero.outputs[1].value.coin += zero.fee;
    zero.fee = 0;
    let cases = [
        (
            "fee 1000 below minimum",
            resign(&low, std::slice::from_ref(&w.buyer)),
            Reason::FeeBelowMinimum,
        ),
        (
            "zero fee",
            resign(&zero, std::slice::from_ref(&w.buyer)),
            Reason::FeeBelowMinimum,
        ),
    ];
    for (name, tx, want) in cases {
        expect(name, &run(&w, &lovelace_request(&w, &tx)).await, want);
    }
    // Live parameters decide: a higher min_fee_b makes the built fee too small.
    w.chain.with(|s| {
        let mut p = ProtocolParams::mainnet_like();
        p.min_fee_b += 1;
        s.params = Some(p);
    });
    expect(
        "live min_fee_b raised",
        &run(&w, &lovelace_request(&w, &built.tx)).await,
        Reason::FeeBelowMinimum,
    );
    w.chain.with(|s| {
        let mut p = ProtocolParams::mainnet_like();
        p.max_tx_size = 200;
        s.params = Some(p);
    });
    expect(
        "live max tx size",
        &run(&w, &lovelace_request(&w, &built.tx)).await,
        Reason::Phase1Invalid,
    );
}

#[tokio::test]
async fn rule_value_conserved() {
    let w = world();
    let built = w.token_payment();
    let mut lost_ada = built.body.clone();
    lost_ada.outputs[1].value.coin -= 1;
    let mut lost_token = built.body.clone();
    lost_token.outputs[1].value.assets.insert(token(), 459);
    let mut created_token = built.body.clone();
    created_token.outputs[1].value.assets.insert(token(), 461);
    let mut foreign_token = built.body.clone();
    foreign_token.outputs[1]
        .value
        .checked_add_asset(
            AssetId {
                policy: [1; 28],
                name: vec![],
            },
            5,
        )
        .unwrap();
    let tokens = requirements(&w, "40", &token_str());
    let cases = [
        ("one lovelace vanishes", lost_ada),
        ("one token vanishes", lost_token),
        ("one token appears", created_token),
        ("an unknown token appears", foreign_token),
    ];
    for (name, body) in cases {
        let mut body = body;
        body.fee += 3_000; // room for any size change; the fee stays above the floor
        body.outputs[1].value.coin -= 3_000;
        let tx = resign(&body, std::slice::from_ref(&w.buyer));
        expect(
            name,
            &run(&w, &request_v2(&tx, &w.nonce, &tokens)).await,
            Reason::ValueNotConserved,
        );
    }
    // The facilitator's own lookup decides, not the buyer's idea of the input.
    w.chain.set(
        w.nonce,
        UtxoState::Unspent(UtxoInfo::new(w.buyer_addr.clone(), value(10_000_001, 500))),
    );
    expect(
        "chain says the input holds more",
        &run(&w, &request_v2(&built.tx, &w.nonce, &tokens)).await,
        Reason::ValueNotConserved,
    );
}

/// `[[deposit 0, reward account, info action, anchor("", 0^32)]]`
fn proposal() -> Vec<u8> {
    let mut p = vec![0x81, 0x84, 0x00, 0x58, 0x1d, 0xe0];
    p.extend_from_slice(&[8; 28]);
    p.extend_from_slice(&[0x81, 0x06, 0x82, 0x60, 0x58, 0x20]);
    p.extend_from_slice(&[0; 32]);
    p
}

#[tokio::test]
async fn rule_unsupported_features() {
    let w = world();
    let built = w.lovelace_payment();
    let mint = {
        let mut m = vec![0xa1, 0x58, 0x1c];
        m.extend_from_slice(&[9; 28]);
        m.extend_from_slice(&[0xa1, 0x41, 0x41, 0x01]);
        m
    };
    let mut withdrawal = vec![0xa1, 0x58, 0x1d, 0xe0];
    withdrawal.extend_from_slice(&[8; 28]);
    withdrawal.push(0x00);
    let cases: Vec<(&str, u64, Vec<u8>)> = vec![
        ("mint", 9, mint),
        ("withdrawals", 5, withdrawal),
        (
            "certificates",
            4,
            hex::decode("d901028182008200581c")
                .unwrap()
                .into_iter()
                .chain([8u8; 28])
                .collect(),
        ),
        ("votes", 19, vec![0xa0]),
        ("proposals", 20, proposal()),
        ("donation", 22, vec![0x01]),
    ];
    for (name, key, raw) in cases {
        let mut body = built.body.clone();
        body.extra_fields = vec![(key, raw)];
        body.fee += 10_000;
        body.outputs[1].value.coin -= 10_000;
        let tx = resign(&body, std::slice::from_ref(&w.buyer));
        let out = run(&w, &lovelace_request(&w, &tx)).await;
        expect(name, &out, Reason::Phase1Invalid);
    }
}

#[tokio::test]
async fn supported_kinds_for_the_network() {
    let kinds = exact_cardano::supported_kinds(Network::Preprod);
    assert_eq!(kinds.len(), 2);
    assert_eq!(kinds[0].network, "cardano:preprod");
    assert_eq!(kinds[1].x402_version, 1);
}

// ---------------------------------------------------------------- properties

/// A valid request and the offline lookup for it, built once.
struct Offline {
    body: Json,
    states: Vec<(UtxoRef, UtxoState)>,
}

fn offline() -> &'static Offline {
    static CELL: std::sync::OnceLock<Offline> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let w = world();
        let built = w.token_payment();
        let body = request_v2(&built.tx, &w.nonce, &requirements(&w, "40", &token_str()));
        let states = w
            .chain
            .0
            .lock()
            .unwrap()
            .utxos
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        Offline { body, states }
    })
}

fn verify_body(body: &[u8]) -> Result<(), Reason> {
    let o = offline();
    let req = parse_request(body).map_err(|e| e.reason())?;
    let lookup = |refs: &[UtxoRef]| {
        refs.iter()
            .map(|r| {
                o.states
                    .iter()
                    .find(|(k, _)| k == r)
                    .map(|(_, s)| s.clone())
                    .unwrap_or(UtxoState::Spent)
            })
            .collect()
    };
    verify_offline(
        Network::Preprod,
        &VerifyLimits::default(),
        &req,
        NOW_SLOT,
        |t| NOW_SLOT + t,
        lookup,
        &ProtocolParams::mainnet_like(),
    )
    .map(|_| ())
    .map_err(|(r, _)| r)
}

#[test]
fn offline_baseline_is_valid() {
    assert_eq!(
        verify_body(&serde_json::to_vec(&offline().body).unwrap()),
        Ok(())
    );
}

fn tx_bytes() -> Vec<u8> {
    let t = offline().body["paymentPayload"]["payload"]["transaction"]
        .as_str()
        .unwrap();
    base64::engine::general_purpose::STANDARD.decode(t).unwrap()
}

fn with_tx(tx: &[u8]) -> Vec<u8> {
    let mut b = offline().body.clone();
    b["paymentPayload"]["payload"]["transaction"] = json!(b64(tx));
    serde_json::to_vec(&b).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Any byte flip, truncation or insertion in the CBOR gives a typed answer.
    #[test]
    fn mutated_cbor_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        insert in proptest::option::of((any::<prop::sample::Index>(), proptest::collection::vec(any::<u8>(), 1..8))),
    ) {
        let mut tx = tx_bytes();
        for (ix, b) in flips {
            let i = ix.index(tx.len());
            tx[i] ^= b;
        }
        if let Some((ix, bytes)) = insert {
            let i = ix.index(tx.len() + 1);
            tx.splice(i..i, bytes);
        }
        if let Some(ix) = cut {
            tx.truncate(ix.index(tx.len() + 1));
        }
        let r = verify_body(&with_tx(&tx));
        if r.is_ok() {
            // Still valid only if the bytes still mean the same payment (e.g. a flip of 0 bits).
            prop_assert!(x402_facilitator::cardano::ParsedTx::decode(&tx).is_ok());
        }
    }

    /// Random JSON values in any field of the request give a typed answer.
    #[test]
    fn mutated_json_never_panics(
        path in prop::sample::select(vec![
            "/x402Version", "/paymentPayload/x402Version", "/paymentPayload/accepted/amount",
            "/paymentPayload/payload/nonce", "/paymentPayload/payload/transaction", "/paymentPayload/payload",
            "/paymentRequirements/amount", "/paymentRequirements/asset", "/paymentRequirements/payTo",
            "/paymentRequirements/maxTimeoutSeconds", "/paymentRequirements/extra", "/paymentRequirements/network",
            "/paymentRequirements/extra/confirmationPolicy", "/paymentRequirements/scheme",
        ]),
        replacement in prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Json::from),
            ".{0,80}".prop_map(Json::from),
            Just(json!({})),
            Just(json!([1, "a", null])),
            Just(json!("0000000000000000000000000000000000000000000000000000000000000000#4294967296")),
        ],
    ) {
        let mut b = offline().body.clone();
        if let Some(slot) = b.pointer_mut(path) {
            *slot = replacement;
        }
        let _ = verify_body(&serde_json::to_vec(&b).unwrap());
    }

    /// Indefinite-length re-encodings of any arrays and maps decode like the
    /// definite original (the node accepts both), and one element more in any
    /// array, definite or indefinite, never decodes (issue 11 point 2).
    #[test]
    fn indefinite_encodings_and_extra_elements(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        extra in any::<prop::sample::Index>(),
    ) {
        use x402_facilitator::cardano::ParsedTx;
        use x402_facilitator::cardano::cbor::mutate;
        let original = tx_bytes();
        let reference = ParsedTx::decode(&original).unwrap();
        let containers: Vec<usize> = mutate::heads(&original)
            .into_iter()
            .filter(|(_, m)| *m == 4 || *m == 5)
            .map(|(p, _)| p)
            .collect();
        let mut chosen: Vec<usize> = picks.iter().map(|i| containers[i.index(containers.len())]).collect();
        chosen.sort_unstable();
        chosen.dedup();
        let mut tx = original.clone();
        // Back to front, so the offsets still to convert do not move.
        for p in chosen.iter().rev() {
            tx = mutate::to_indefinite(&tx, *p).unwrap();
        }
        let parsed = ParsedTx::decode(&tx);
        prop_assert!(parsed.is_ok(), "{:?} converting {:?}", parsed.err(), chosen);
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.inputs(), reference.inputs());
        prop_assert_eq!(parsed.outputs().len(), reference.outputs().len());
        prop_assert_eq!(parsed.fee(), reference.fee());
        prop_assert_eq!(parsed.total_output(), reference.total_output());
        prop_assert_eq!(parsed.ttl(), reference.ttl());
        let arrays: Vec<usize> = mutate::heads(&tx)
            .into_iter()
            .filter(|(_, m)| *m == 4)
            .map(|(p, _)| p)
            .collect();
        let at = arrays[extra.index(arrays.len())];
        let longer = mutate::with_extra_element(&tx, at, &[0x00]).unwrap();
        prop_assert!(ParsedTx::decode(&longer).is_err(), "one more element at offset {} decoded", at);
    }

    /// Arbitrary bytes as the whole transaction: typed rejection.
    #[test]
    fn arbitrary_transaction_bytes_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(verify_body(&with_tx(&bytes)).is_err());
    }

    /// Arbitrary bytes as the whole HTTP body: typed answer.
    #[test]
    fn arbitrary_bodies_are_typed(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = verify_body(&bytes);
    }
}

// ---------------------------------------------------------------- stable fuzz harness

/// Stable-toolchain stand-in for `cargo fuzz` (see fuzz/README.md): mutates a
/// corpus of real and built transactions and feeds every mutant to the decoder,
/// the witness check and (for one in eight) the whole offline pipeline.
/// Run: `FUZZ_ITERS=2000000 cargo test --test it -- --ignored --nocapture stable_fuzz`
#[test]
#[ignore]
fn stable_fuzz_decode_tx() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use x402_facilitator::cardano::{ParsedTx, TxDecodeError};

    let iters: u64 = std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x402);
    let mut rng = StdRng::seed_from_u64(seed);

    let w = world();
    let mut corpus: Vec<Vec<u8>> = vec![w.lovelace_payment().tx, w.token_payment().tx, tx_bytes()];
    corpus.push(
        w.build(
            &w.spec(Value::lovelace(2_000_000)),
            &[w.buyer.clone(), w.third.clone()],
        )
        .tx,
    );
    for f in ["mainnet_90bd64b1", "mainnet_3e1ae85c", "preview_b41ebebf"] {
        let path = format!(
            "{}/tests/it/fixtures/{f}.tx.hex",
            env!("CARGO_MANIFEST_DIR")
        );
        corpus.push(hex::decode(std::fs::read_to_string(path).unwrap().trim()).unwrap());
    }
    const INTERESTING: &[u8] = &[
        0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x3b, 0x40, 0x58, 0x5b, 0x5f, 0x60,
        0x7f, 0x80, 0x81, 0x84, 0x9b, 0x9f, 0xa0, 0xa1, 0xbb, 0xbf, 0xc0, 0xd8, 0xd9, 0xf4, 0xf5,
        0xf6, 0xf7, 0xfb, 0xff,
    ];

    let start = std::time::Instant::now();
    let (mut decoded, mut pipeline_runs) = (0u64, 0u64);
    for i in 0..iters {
        let mut data = corpus[rng.gen_range(0..corpus.len())].clone();
        let rounds = rng.gen_range(1..=4);
        for _ in 0..rounds {
            let len = data.len();
            match rng.gen_range(0..11) {
                9 | 10 => {
                    // Re-encode a container with indefinite length, or give an
                    // array one element more (the node's exact-count rule).
                    use x402_facilitator::cardano::cbor::mutate;
                    let want = if rng.gen_range(0..2) == 0 { 4 } else { 5 };
                    let heads: Vec<usize> = mutate::heads(&data)
                        .into_iter()
                        .filter(|(_, m)| *m == 4 || *m == want)
                        .map(|(p, _)| p)
                        .collect();
                    if !heads.is_empty() {
                        let at = heads[rng.gen_range(0..heads.len())];
                        let next = if rng.gen_range(0..2) == 0 {
                            mutate::to_indefinite(&data, at)
                        } else {
                            mutate::with_extra_element(&data, at, &[0x00])
                        };
                        if let Some(n) = next {
                            data = n;
                        }
                    }
                }
                0 if len > 0 => {
                    let p = rng.gen_range(0..len);
                    data[p] ^= 1 << rng.gen_range(0..8);
                }
                1 if len > 0 => {
                    let p = rng.gen_range(0..len);
                    data[p] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
                }
                2 => {
                    let p = rng.gen_range(0..=len);
                    let n = rng.gen_range(1..16);
                    let bytes: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
                    data.splice(p..p, bytes);
                }
                3 if len > 1 => {
                    let a = rng.gen_range(0..len);
                    let b = (a + rng.gen_range(1..64)).min(len);
                    data.drain(a..b);
                }
                4 if len > 1 => {
                    let a = rng.gen_range(0..len);
                    let b = (a + rng.gen_range(1..64)).min(len);
                    let chunk = data[a..b].to_vec();
                    let p = rng.gen_range(0..=data.len());
                    data.splice(p..p, chunk);
                }
                5 => {
                    let other = &corpus[rng.gen_range(0..corpus.len())];
                    let cut_a = rng.gen_range(0..=data.len());
                    let cut_b = rng.gen_range(0..=other.len());
                    data.truncate(cut_a);
                    data.extend_from_slice(&other[cut_b..]);
                }
                6 => data.truncate(rng.gen_range(0..=len)),
                7 => {
                    let n = rng.gen_range(0..512);
                    data = (0..n).map(|_| rng.r#gen()).collect();
                }
                _ if len > 0 => {
                    // Overwrite a run with a big length header.
                    let p = rng.gen_range(0..len);
                    let head = [0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
                    for (k, b) in head.iter().enumerate() {
                        if p + k < data.len() {
                            data[p + k] = *b;
                        }
                    }
                }
                _ => {}
            }
        }
        {
            use x402_facilitator::cardano::cbor;
            if cbor::scan_single_item(&data, cbor::DEFAULT_MAX_DEPTH).is_ok()
                && let Ok(Some(definite)) = cbor::definite_lengths(&data)
            {
                assert!(
                    cbor::scan_single_item(&definite, cbor::DEFAULT_MAX_DEPTH).is_ok(),
                    "definite copy of {} is not one item",
                    hex::encode(&data)
                );
            }
        }
        match ParsedTx::decode(&data) {
            Ok(tx) => {
                decoded += 1;
                assert_eq!(tx.raw(), &data[..]);
                let _ = tx.verify_witnesses();
                let _ = tx.unsupported_features();
            }
            Err(TxDecodeError::DecoderPanicked) => {
                panic!("pallas panicked on iteration {i}: {}", hex::encode(&data))
            }
            Err(_) => {}
        }
        if i % 8 == 0 {
            pipeline_runs += 1;
            let _ = verify_body(&with_tx(&data));
        }
    }
    println!(
        "stable fuzz: {iters} inputs (seed {seed}), {decoded} decoded as transactions, {pipeline_runs} full offline pipeline runs, {:.1}s",
        start.elapsed().as_secs_f64()
    );
}

/// Conway's reference-script fee: spending an output that carries a reference
/// script costs a tiered fee per script byte on top of the linear fee; a
/// size the backend cannot tell is a retryable `input_value_unavailable`.
#[tokio::test]
async fn rule_reference_script_fee() {
    let w = world();
    let built = w.lovelace_payment();
    let nonce_with = |r: RefScript| {
        let mut u = UtxoInfo::new(w.buyer_addr.clone(), value(10_000_000, 500));
        u.reference_script = r;
        w.chain.set(w.nonce, UtxoState::Unspent(u));
    };
    let paying = |extra: u64| {
        let mut body = built.body.clone();
        body.fee += extra;
        body.outputs[1].value.coin -= extra;
        resign(&body, std::slice::from_ref(&w.buyer))
    };
    nonce_with(RefScript::Size(30_000));
    // 25,600 bytes at 15 lovelace + 4,400 at 18 = 463,200.
    let cases = [
        ("linear fee only", paying(0), Reason::FeeBelowMinimum),
        (
            "one lovelace short",
            paying(463_199),
            Reason::FeeBelowMinimum,
        ),
    ];
    for (name, tx, want) in cases {
        expect(name, &run(&w, &lovelace_request(&w, &tx)).await, want);
    }
    let out = run(&w, &lovelace_request(&w, &paying(463_200))).await;
    assert!(out.is_valid(), "the tiered fee paid: {out:?}");

    nonce_with(RefScript::Size(204_801));
    let out = run(&w, &lovelace_request(&w, &paying(463_200))).await;
    expect(
        "over 200 KiB of reference scripts",
        &out,
        Reason::Phase1Invalid,
    );
    assert!(format!("{out:?}").contains("ConwayTxRefScriptsSizeTooBig"));

    nonce_with(RefScript::SizeUnknown);
    let out = run(&w, &lovelace_request(&w, &paying(463_200))).await;
    expect(
        "reference script of unknown size",
        &out,
        Reason::InputValueUnavailable,
    );
    assert!(matches!(out, VerifyOutcome::Unavailable { .. }), "{out:?}");
}
