//! Micro-benchmarks of the verify hot path: decoding a payment, checking its
//! witnesses, and the whole pure pipeline on resolved inputs (no chain calls).
//!
//! `cargo bench --bench verify` (optimised), or for a quick look on a shared
//! machine: `cargo test --bench verify` (runs each bench once, unoptimised).

use std::hint::black_box;

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

use x402_facilitator::buyer::builder::{self, InputSpec, OutputDatums, OutputSpec, PaymentSpec};
use x402_facilitator::buyer::keys::Wallet;
use x402_facilitator::cardano::plutus::{self, PlutusData, PlutusVersion};
use x402_facilitator::cardano::{
    AssetId, Network, ParsedTx, ProtocolParams, TxId, UtxoInfo, UtxoRef, UtxoState, Value, address,
    ed25519,
};
use x402_facilitator::protocol::parse_request;
use x402_facilitator::scheme::exact_cardano::{VerifyLimits, check_envelope, verify_offline};

const NOW_SLOT: u64 = 10_000;

struct Case {
    tx: Vec<u8>,
    body: Vec<u8>,
    owner: Vec<u8>,
    input_value: Value,
}

/// The payment's recipient: the `default` method's key address, or a `script` method's script.
enum Method {
    Default,
    /// `extra` for the script method (without `payTo`, which is derived) and the inline datum.
    Script {
        extra: serde_json::Value,
        datum: Vec<u8>,
    },
}

/// The un-applied Masumi vested_pay V2 validator: a realistic 9.9 KB program.
const VESTED_PAY: &str = include_str!("../src/scheme/masumi/vested_pay_v2.hex");
const TRIVIAL_V3: &str = "4d01000033222220051200120011";

fn script_extra(code: &str) -> serde_json::Value {
    json!({
        "assetTransferMethod": "script",
        "script": {"type": "plutusV3", "code": code.trim()},
        "parameters": {
            "0": {"type": "integer", "value": "2"},
            "1": {"type": "bytes", "value": "fc16a1fcf309aed03ec18bb2176f5ea29acea70bb79145ebaffa8e75"},
            "2": {"type": "integer", "value": "420000"},
        },
        "datum": hex::encode(datum().encode()),
    })
}

fn datum() -> PlutusData {
    PlutusData::constr(
        0,
        vec![
            PlutusData::bytes(vec![0x5e; 28]),
            PlutusData::int(1_500_000),
        ],
    )
}

fn params_of(extra: &serde_json::Value) -> Vec<PlutusData> {
    let p = &extra["parameters"];
    vec![
        PlutusData::int(2),
        PlutusData::bytes(hex::decode(p["1"]["value"].as_str().expect("hex")).expect("hex")),
        PlutusData::int(420_000),
    ]
}

fn case() -> Case {
    case_for(Method::Default)
}

fn case_for(method: Method) -> Case {
    let wallet = Wallet::from_mnemonic(
        "test walk nut penalty hip pave soap entry language right filter choice",
        "",
    )
    .expect("mnemonic");
    let buyer = wallet.payment_key(0, 0);
    let owner = address::decode_bech32(&wallet.base_address(Network::Preprod))
        .expect("address")
        .1;
    let (seller, extra, datum) = match method {
        Method::Default => (
            wallet
                .payment_key(1, 0)
                .enterprise_address_bytes(Network::Preprod),
            json!({}),
            None,
        ),
        Method::Script { extra, datum } => {
            let code = hex::decode(extra["script"]["code"].as_str().expect("code")).expect("hex");
            let applied = plutus::apply_params(&code, &params_of(&extra)).expect("applies");
            let hash = plutus::script_hash(PlutusVersion::V3, &applied);
            (
                address::enterprise_script_address_bytes(0, &hash),
                extra,
                Some(datum),
            )
        }
    };
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
    let mut datums = OutputDatums::new();
    if let Some(d) = datum {
        datums.insert(0, d);
    }
    let built = builder::build_payment_with_datums(
        &spec,
        &datums,
        &ProtocolParams::mainnet_like(),
        &[buyer],
    )
    .expect("build");
    let reqs = json!({
        "scheme": "exact", "network": "cardano:preprod", "amount": "40", "asset": token.dotted(),
        "payTo": address::to_bech32(&seller).expect("bech32"), "maxTimeoutSeconds": 600, "extra": extra
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
    // The yardstick of issue 15, point 1: one strict Ed25519 verification
    // from the key's bytes (decoded every time), as any verifier pays it.
    let w = tx.vkey_witnesses()[0];
    let id = tx.id();
    c.bench_function(
        "ed25519 verify_strict (1 Ed25519 strict, key from bytes)",
        |b| {
            b.iter(|| {
                assert!(ed25519::verify_uncached(
                    black_box(&w.vkey),
                    black_box(id.as_bytes()),
                    black_box(&w.signature)
                ))
            })
        },
    );
    // What the service pays for a key it has met before (the key's decoded
    // point and hash are remembered: `cardano::ed25519`).
    c.bench_function("verify_witnesses (1 witness, key remembered)", |b| {
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

/// The Masumi steps one by one, on a quote signed by a real seller key (the
/// Go quote vector's terms), and all of steps 1-8 together.
fn masumi_benches(c: &mut Criterion) {
    use x402_facilitator::buyer::keys::SigningKey;
    use x402_facilitator::buyer::quote;
    use x402_facilitator::scheme::masumi::{
        MasumiPolicy, check_requirements, cose, datum, escrow, identifier, lock, terms,
    };

    let spec = quote::QuoteSpec {
        network: Network::Preprod,
        asset: "lovelace".into(),
        amount: "50000000".into(),
        max_timeout_seconds: 600,
        seller_address: "addr_test1vz9jrppy446d7fwntsh23cy55nzutt4jew6yysvnx9tfxycvp587p".into(),
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
    let req = quote::issue(&spec, &SigningKey::from_seed([7; 32])).expect("quote");
    let view = quote::view(&req).expect("view");
    let extra = terms::parse_extra(view.extra, Network::Preprod).expect("schema");
    let digest = terms::terms_digest(&extra, &view).expect("digest");
    let policy = MasumiPolicy::default();
    let buyer = address::parse_shelley_bech32(
        "addr_test1qp7573my7h0fyj9cd2fwrws5v6ep0e6urpx007pz0pjnmakny46m3vmfawqwv3m48dv2s6eysht6tjfdk48lrzrkmj5qpmyq7l",
    )
    .expect("buyer");
    let locked = lock::lock_for(&req, &buyer, None, 4310).expect("lock");

    c.bench_function("masumi: schema (closed objects)", |b| {
        b.iter(|| terms::parse_extra(black_box(view.extra), Network::Preprod).expect("schema"))
    });
    c.bench_function("masumi: commitment (JCS + SHA-256, 1 part)", |b| {
        b.iter(|| terms::check_commitment(black_box(&extra)).expect("commitment"))
    });
    c.bench_function("masumi: termsDigest (JCS + SHA-256)", |b| {
        b.iter(|| terms::terms_digest(black_box(&extra), &view).expect("digest"))
    });
    let seller = address::parse_shelley_bech32(&spec.seller_address).expect("seller");
    c.bench_function("masumi: COSE_Sign1 checks + 1 Ed25519", |b| {
        b.iter(|| {
            cose::verify_seller_signature(
                black_box(&extra.reference_key),
                &extra.reference_signature,
                &seller.bytes,
                &digest,
            )
            .expect("signature")
        })
    });
    let dep = escrow::default_deployment();
    c.bench_function(
        "masumi: escrow derivation (apply params + hash, uncached)",
        |b| b.iter(|| escrow::derive_uncached(black_box(&dep)).expect("escrow")),
    );
    c.bench_function("masumi: escrow hash (memoized)", |b| {
        b.iter(|| escrow::script_hash(black_box(&dep)).expect("escrow"))
    });
    c.bench_function(
        "masumi: blockchainIdentifier decode (bounded LZString)",
        |b| {
            b.iter(|| {
                identifier::decode(black_box(&extra.blockchain_identifier)).expect("identifier")
            })
        },
    );
    c.bench_function("masumi: datum parse (strict)", |b| {
        b.iter(|| datum::parse(black_box(&locked.datum_cbor)).expect("datum"))
    });
    c.bench_function("masumi: datum re-encode (min-UTxO size)", |b| {
        b.iter(|| black_box(&locked.datum).encode().len())
    });
    c.bench_function("masumi: requirements, steps 1-8", |b| {
        b.iter(|| check_requirements(black_box(&view), Network::Preprod, &policy).expect("valid"))
    });

    // The whole pure pipeline on a signed lock (ttl = payByTime's slot on preprod).
    let buyer_key = SigningKey::from_seed([0x21; 32]);
    let owner = buyer_key.enterprise_address_bytes(Network::Preprod);
    let me = address::parse_shelley_bytes(&owner).expect("buyer");
    let params = ProtocolParams::mainnet_like();
    let lock = lock::lock_for(&req, &me, None, params.coins_per_utxo_size).expect("lock");
    let ttl = 130_072_800; // slot of payByTime 1785756000000 on preprod
    let input_value = Value::lovelace(lock.value.coin + 5_000_000);
    let nonce = UtxoRef::new(TxId([2; 32]), 0);
    let spec = PaymentSpec {
        inputs: vec![InputSpec {
            utxo: nonce,
            value: input_value.clone(),
        }],
        outputs: vec![OutputSpec {
            address: lock.address.clone(),
            value: lock.value.clone(),
        }],
        change_address: owner.clone(),
        validity_start: None,
        ttl: Some(ttl),
        network_id: None,
    };
    let mut datums = builder::OutputDatums::new();
    datums.insert(0, lock.datum_cbor.clone());
    let built =
        builder::build_payment_with_datums(&spec, &datums, &params, &[buyer_key]).expect("build");
    let body = serde_json::to_vec(&json!({
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": req,
            "payload": {"transaction": base64::engine::general_purpose::STANDARD.encode(&built.tx),
                        "nonce": nonce.to_string()}},
        "paymentRequirements": req
    }))
    .expect("json");
    let state = UtxoState::Unspent(UtxoInfo {
        address: owner,
        value: input_value,
        reference_script: x402_facilitator::cardano::RefScript::None,
    });
    let now = ttl - 100;
    c.bench_function("masumi: full pure pipeline (parse..lock checks)", |b| {
        b.iter(|| {
            let r = parse_request(black_box(&body)).expect("parses");
            verify_offline(
                Network::Preprod,
                &VerifyLimits::default(),
                &r,
                now,
                |t| now + t,
                |refs| refs.iter().map(|_| state.clone()).collect(),
                &params,
            )
            .expect("valid")
        })
    });
}

/// The `script` method: deriving the script hash (apply parameters + hash) alone, and the whole
/// pure pipeline with it, for a trivial program and for a realistic 9.9 KB one.
fn script_benches(c: &mut Criterion) {
    let params = ProtocolParams::mainnet_like();
    for (name, code) in [("trivial", TRIVIAL_V3), ("vested_pay 9.9 KB", VESTED_PAY)] {
        let extra = script_extra(code);
        let program = hex::decode(code.trim()).expect("hex");
        let ps = params_of(&extra);
        c.bench_function(&format!("script: apply 3 params + hash ({name})"), |b| {
            b.iter(|| {
                let applied = plutus::apply_params(black_box(&program), &ps).expect("applies");
                plutus::script_hash(PlutusVersion::V3, &applied)
            })
        });
        let k = case_for(Method::Script {
            extra,
            datum: datum().encode(),
        });
        let state = UtxoState::Unspent(UtxoInfo {
            address: k.owner.clone(),
            value: k.input_value.clone(),
            reference_script: x402_facilitator::cardano::RefScript::None,
        });
        c.bench_function(
            &format!("full pure pipeline, script method ({name})"),
            |b| {
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
            },
        );
    }
}

criterion_group!(verify, benches, script_benches, masumi_benches);
criterion_main!(verify);
