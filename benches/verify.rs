//! Micro-benchmarks of the verify hot path: decoding a payment, checking its
//! witnesses, and the whole pure pipeline on resolved inputs (no chain calls).
//!
//! `cargo bench --bench verify` (optimised), or for a quick look on a shared
//! machine: `cargo test --bench verify` (runs each bench once, unoptimised).

use std::hint::black_box;

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

use x402_facilitator::cardano::builder::{self, InputSpec, OutputSpec, PaymentSpec};
use x402_facilitator::cardano::keys::Wallet;
use x402_facilitator::cardano::{AssetId, Network, ParsedTx, TxId, UtxoRef, Value, address};
use x402_facilitator::chain::{ProtocolParams, UtxoInfo, UtxoState};
use x402_facilitator::protocol::parse_request;
use x402_facilitator::scheme::exact_cardano::{VerifyLimits, check_envelope, verify_offline};

const NOW_SLOT: u64 = 10_000;

struct Case {
    tx: Vec<u8>,
    body: Vec<u8>,
    owner: Vec<u8>,
    input_value: Value,
}

fn case() -> Case {
    let wallet = Wallet::from_mnemonic(
        "test walk nut penalty hip pave soap entry language right filter choice",
        "",
    )
    .expect("mnemonic");
    let buyer = wallet.payment_key(0, 0);
    let owner = address::decode_bech32(&wallet.base_address(Network::Preprod))
        .expect("address")
        .1;
    let seller = wallet
        .payment_key(1, 0)
        .enterprise_address_bytes(Network::Preprod);
    let token = AssetId {
        policy: [0xc4; 28],
        name: b"USDM".to_vec(),
    };
    let mut input_value = Value::lovelace(10_000_000);
    input_value
        .checked_add_asset(token.clone(), 500)
        .expect("value");
    let mut pay = Value::lovelace(1_500_000);
    pay.checked_add_asset(token.clone(), 40).expect("value");
    let nonce = UtxoRef::new(TxId([1; 32]), 0);
    let spec = PaymentSpec {
        inputs: vec![InputSpec {
            utxo: nonce,
            value: input_value.clone(),
        }],
        outputs: vec![OutputSpec {
            address: seller.clone(),
            value: pay,
        }],
        change_address: owner.clone(),
        validity_start: None,
        ttl: Some(NOW_SLOT + 300),
        network_id: None,
    };
    let built =
        builder::build_payment(&spec, &ProtocolParams::mainnet_like(), &[buyer]).expect("build");
    let reqs = json!({
        "scheme": "exact", "network": "cardano:preprod", "amount": "40", "asset": token.dotted(),
        "payTo": address::to_bech32(&seller).expect("bech32"), "maxTimeoutSeconds": 600, "extra": {}
    });
    let body = json!({
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": reqs,
            "payload": {"transaction": base64::engine::general_purpose::STANDARD.encode(&built.tx),
                        "nonce": nonce.to_string()}},
        "paymentRequirements": reqs
    });
    Case {
        tx: built.tx,
        body: serde_json::to_vec(&body).expect("json"),
        owner,
        input_value,
    }
}

fn benches(c: &mut Criterion) {
    let k = case();
    let params = ProtocolParams::mainnet_like();
    c.bench_function("decode", |b| {
        b.iter(|| ParsedTx::decode(black_box(&k.tx)).expect("decodes"))
    });
    let tx = ParsedTx::decode(&k.tx).expect("decodes");
    c.bench_function("verify_witnesses (1 Ed25519 strict)", |b| {
        b.iter(|| black_box(&tx).verify_witnesses().expect("valid"))
    });
    c.bench_function("decode + verify_witnesses", |b| {
        b.iter(|| {
            ParsedTx::decode(black_box(&k.tx))
                .expect("decodes")
                .verify_witnesses()
                .expect("valid")
        })
    });
    c.bench_function("parse_request + envelope", |b| {
        b.iter(|| {
            let req = parse_request(black_box(&k.body)).expect("parses");
            check_envelope(Network::Preprod, &VerifyLimits::default(), &req).expect("envelope")
        })
    });
    let state = UtxoState::Unspent(UtxoInfo::new(k.owner.clone(), k.input_value.clone()));
    c.bench_function("full pure pipeline (parse..conservation)", |b| {
        b.iter(|| {
            let req = parse_request(black_box(&k.body)).expect("parses");
            verify_offline(
                Network::Preprod,
                &VerifyLimits::default(),
                &req,
                NOW_SLOT,
                |t| NOW_SLOT + t,
                |refs| refs.iter().map(|_| state.clone()).collect(),
                &params,
            )
            .expect("valid")
        })
    });
}

criterion_group!(verify, benches);
criterion_main!(verify);
