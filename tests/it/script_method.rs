//! The `script` asset transfer method through the real service: payments to a Plutus script
//! address settle on the devnet (memory store and a real redis-server), and every way a payment
//! can miss the script is rejected with its exact reason code.

use serde_json::{Value, json};
use x402_facilitator::buyer::{self, Buyer, DEMO_SCRIPT_CODE};
use x402_facilitator::cardano::address;
use x402_facilitator::cardano::plutus::{PlutusData, PlutusVersion};
use x402_facilitator::cardano::{Network, UtxoRef};
use x402_facilitator::config::{Settings, StoreBackend};
use x402_facilitator::protocol::types::PaymentRequirementsV2;
use x402_facilitator::scheme::method::script::derive_script_hash;

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::pay::{body_for, funded_buyer, seller, view};
use crate::support::redis_server::RedisServer;

const MISMATCH: &str = "invalid_exact_cardano_payload_script_address_mismatch";
const DATUM_MISSING: &str = "invalid_exact_cardano_payload_script_datum_missing";

/// `Constr 0 [Bytes(tag)]` as CBOR hex.
fn datum_hex(tag: &[u8]) -> String {
    hex::encode(PlutusData::constr(0, vec![PlutusData::bytes(tag.to_vec())]).encode())
}

fn script_req(
    version: PlutusVersion,
    amount: u64,
    parameters: Option<Value>,
    datum: Option<&str>,
) -> PaymentRequirementsV2 {
    buyer::script_requirements(
        Network::Devnet,
        amount,
        "lovelace",
        version,
        DEMO_SCRIPT_CODE,
        parameters,
        datum,
    )
    .expect("script requirements")
}

fn params() -> Value {
    json!({
        "seller": {"type": "bytes", "value": "5e".repeat(28)},
        "fee": {"type": "integer", "value": "42"},
        "live": {"type": "boolean", "value": true},
    })
}

fn script_address(hash: &[u8; 28]) -> String {
    address::to_bech32(&address::enterprise_script_address_bytes(0, hash)).unwrap()
}

async fn funded(app: &TestApp, seed: u8) -> (Buyer, x402_facilitator::buyer::ChainView) {
    let (b, _) = funded_buyer(&app.client, &app.base, seed, 20_000_000).await;
    let v = view(&app.client, &app.base, &b).await;
    (b, v)
}

/// The devnet's record of one output (Blockfrost `/txs/{hash}/utxos`).
async fn output_at(app: &TestApp, tx: &str, index: u64) -> Value {
    let (code, utxos) = app
        .get_json(&format!("/devnet/api/v0/txs/{tx}/utxos"))
        .await;
    assert_eq!(code, 200, "{utxos}");
    utxos["outputs"]
        .as_array()
        .and_then(|outs| {
            outs.iter()
                .find(|o| o["output_index"].as_u64() == Some(index))
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// Verify then settle one script payment; the script output carries the datum on chain.
async fn settles_through(app: &TestApp, seed: u8) {
    let datum = datum_hex(b"order-1");
    let req = script_req(PlutusVersion::V3, 1_500_000, Some(params()), Some(&datum));
    let (b, v) = funded(app, seed).await;
    let (built, nonce) = b.pay_script(&req, &v).expect("script payment");
    let body = body_for(&req, &built.tx, &nonce);
    let txid = built.tx_id.to_hex();

    let (code, verified) = app.post_json("/verify", &body).await;
    assert_eq!(code, 200, "{verified}");
    assert_eq!(verified, json!({"isValid": true, "payer": b.address()}));

    let (code, settled) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200, "{settled}");
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["transaction"], txid);
    assert_eq!(settled["payer"], b.address());
    assert_eq!(settled["extra"]["status"], "confirmed");

    let out = output_at(app, &txid, 0).await;
    assert_eq!(out["address"], req.pay_to, "{out}");
    assert_eq!(out["inline_datum"], datum, "{out}");
    assert_eq!(
        out["amount"][0],
        json!({"unit": "lovelace", "quantity": "1500000"})
    );

    let (code, status) = app.get_json(&format!("/status/{txid}")).await;
    assert_eq!(code, 200);
    assert_eq!(status["status"], "confirmed");
    assert_eq!(status["payTo"], req.pay_to);
}

#[tokio::test]
async fn script_payment_settles_on_the_memory_store() {
    let app = spawn_app().await;
    settles_through(&app, 0x71).await;
    app.stop().await;
}

#[tokio::test]
async fn script_payment_settles_on_redis() {
    let Some(redis) = RedisServer::start("script_method") else {
        return;
    };
    let app = spawn_app_with(|s: &mut Settings| {
        s.store.backend = StoreBackend::Redis;
        s.store.redis = redis.settings();
    })
    .await;
    settles_through(&app, 0x72).await;
    app.stop().await;
}

#[tokio::test]
async fn supported_lists_the_script_method() {
    let app = spawn_app().await;
    let (code, s) = app.get_json("/supported").await;
    assert_eq!(code, 200);
    assert_eq!(
        s["kinds"][0]["extra"]["assetTransferMethods"],
        json!(["default", "masumi", "script"])
    );
    app.stop().await;
}

/// Parameters are applied in the order the JSON text writes them (after integer-like keys):
/// the same object written `z, a` and `a, z` names two different scripts.
#[tokio::test]
async fn parameters_apply_in_document_order() {
    let app = spawn_app().await;
    let (b, v) = funded(&app, 0x73).await;
    let extra_za = r#"{"assetTransferMethod":"script","script":{"type":"plutusV3","code":"CODE"},"parameters":{"z":{"type":"integer","value":"1"},"a":{"type":"integer","value":"2"}}}"#
        .replace("CODE", DEMO_SCRIPT_CODE);
    let extra: Value = serde_json::from_str(&extra_za).unwrap();
    let order = vec!["z".to_string(), "a".to_string()];
    let (hash_za, _) = derive_script_hash(&extra, Some(&order)).unwrap();
    let (hash_az, _) = derive_script_hash(&extra, None).unwrap();
    assert_ne!(hash_za, hash_az);

    let mut req = script_req(PlutusVersion::V3, 1_000_000, None, None);
    req.pay_to = script_address(&hash_za);
    req.extra = extra;
    let (built, nonce) = b.pay_script(&req, &v).unwrap();
    // The body as text, so that `parameters` keeps the z-then-a order on the wire.
    let text = |req: &PaymentRequirementsV2, extra_text: &str| {
        let mut body = body_for(req, &built.tx, &nonce);
        body["paymentRequirements"]["extra"] = json!("EXTRA");
        body["paymentPayload"]["accepted"]["extra"] = json!("EXTRA");
        body.to_string().replace("\"EXTRA\"", extra_text)
    };
    let send = |body: String| {
        let client = app.client.clone();
        let url = app.url("/verify");
        async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let ok = send(text(&req, &extra_za)).await;
    assert_eq!(ok, json!({"isValid": true, "payer": b.address()}));

    // Written a-then-z, the same parameters derive hash_az, which payTo is not.
    let extra_az = r#"{"assetTransferMethod":"script","script":{"type":"plutusV3","code":"CODE"},"parameters":{"a":{"type":"integer","value":"2"},"z":{"type":"integer","value":"1"}}}"#
        .replace("CODE", DEMO_SCRIPT_CODE);
    let bad = send(text(&req, &extra_az)).await;
    assert_eq!(bad["isValid"], false, "{bad}");
    assert_eq!(bad["invalidReason"], MISMATCH);
    app.stop().await;
}

/// One `/verify` and its reason code (and payer, when the pipeline got that far).
async fn verify_reason(
    app: &TestApp,
    req: &PaymentRequirementsV2,
    tx: &[u8],
    nonce: &UtxoRef,
) -> Value {
    let (code, v) = app.post_json("/verify", &body_for(req, tx, nonce)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["isValid"], false, "{v}");
    v
}

#[tokio::test]
async fn rejections_carry_exact_reason_codes() {
    let app = spawn_app().await;
    let (b, v) = funded(&app, 0x74).await;
    let datum = datum_hex(b"order-2");
    let good = script_req(PlutusVersion::V3, 1_000_000, Some(params()), Some(&datum));
    let (built, nonce) = b.pay_script(&good, &v).unwrap();

    // A declared hash other than payTo's script.
    let mut wrong_hash = good.clone();
    wrong_hash.extra.as_object_mut().unwrap().remove("script");
    wrong_hash.extra["scriptHash"] = json!("ab".repeat(28));
    let r = verify_reason(&app, &wrong_hash, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], MISMATCH, "{r}");
    assert!(
        r["invalidMessage"]
            .as_str()
            .unwrap_or("")
            .contains(&"ab".repeat(28)),
        "{r}"
    );

    // The code wins over a wrong scriptHash: still valid.
    let mut code_wins = good.clone();
    code_wins.extra["scriptHash"] = json!("ab".repeat(28));
    let (code, ok) = app
        .post_json("/verify", &body_for(&code_wins, &built.tx, &nonce))
        .await;
    assert_eq!((code, ok["isValid"].clone()), (200, json!(true)), "{ok}");

    // Other parameters, another script.
    let mut other_params = good.clone();
    other_params.extra["parameters"]["fee"]["value"] = json!("43");
    let r = verify_reason(&app, &other_params, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], MISMATCH, "{r}");

    // payTo a key address under the script method.
    let mut key_pay_to = good.clone();
    key_pay_to.pay_to = seller(0x5e);
    let r = verify_reason(&app, &key_pay_to, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], MISMATCH, "{r}");

    // Neither script nor scriptHash.
    let mut neither = good.clone();
    neither.extra.as_object_mut().unwrap().remove("script");
    let r = verify_reason(&app, &neither, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], MISMATCH, "{r}");

    // An unsupported parameter type is a mismatch too (as the TS reference answers).
    let mut list_param = good.clone();
    list_param.extra["parameters"]["fee"] = json!({"type": "list", "value": []});
    let r = verify_reason(&app, &list_param, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], MISMATCH, "{r}");

    // A datum that is not Plutus data is a bad requirement.
    let mut bad_datum = good.clone();
    bad_datum.extra["datum"] = json!("ff");
    let r = verify_reason(&app, &bad_datum, &built.tx, &nonce).await;
    assert_eq!(
        r["invalidReason"], "invalid_exact_cardano_requirements",
        "{r}"
    );

    // accepted must repeat the script fields.
    let mut body = body_for(&good, &built.tx, &nonce);
    body["paymentPayload"]["accepted"]["extra"]["datum"] = json!(datum_hex(b"other"));
    let (_, r) = app.post_json("/verify", &body).await;
    assert_eq!(r["invalidReason"], "invalid_exact_cardano_payload", "{r}");
    app.stop().await;
}

#[tokio::test]
async fn datum_rules_on_the_paying_output() {
    let app = spawn_app().await;
    let (b, v) = funded(&app, 0x75).await;
    let datum = datum_hex(b"order-3");

    // Requirements with a datum, output without one.
    let with_datum = script_req(PlutusVersion::V3, 1_000_000, None, Some(&datum));
    let (built, nonce) = b.pay(&with_datum, &v).unwrap();
    let r = verify_reason(&app, &with_datum, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], DATUM_MISSING, "{r}");
    assert_eq!(r["payer"], b.address(), "{r}");

    // ... or with another datum.
    let other = hex::decode(datum_hex(b"order-4")).unwrap();
    let (built, nonce) = b.pay_with_datum(&with_datum, &v, Some(&other)).unwrap();
    let r = verify_reason(&app, &with_datum, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], DATUM_MISSING, "{r}");

    // A V1 script output with an inline datum: V1 cannot read it.
    let v1 = script_req(PlutusVersion::V1, 1_000_000, None, None);
    let (built, nonce) = b
        .pay_with_datum(&v1, &v, Some(&hex::decode(&datum).unwrap()))
        .unwrap();
    let r = verify_reason(&app, &v1, &built.tx, &nonce).await;
    assert_eq!(r["invalidReason"], DATUM_MISSING, "{r}");
    // ... while the same V1 script without a datum is fine.
    let (built, nonce) = b.pay_script(&v1, &v).unwrap();
    let (code, ok) = app
        .post_json("/verify", &body_for(&v1, &built.tx, &nonce))
        .await;
    assert_eq!((code, ok["isValid"].clone()), (200, json!(true)), "{ok}");

    // V1 paired with a datum in the requirements is refused before any transaction work.
    let mut v1_datum = v1.clone();
    v1_datum.extra["datum"] = json!(datum);
    let r = verify_reason(&app, &v1_datum, &built.tx, &nonce).await;
    assert_eq!(
        r["invalidReason"], "invalid_exact_cardano_requirements",
        "{r}"
    );

    // No datum in the requirements: whatever the output carries is the server's business.
    // (Another buyer: the valid V1 payment above holds the first buyer's input.)
    let (b, v) = funded(&app, 0x76).await;
    let no_datum = script_req(PlutusVersion::V3, 1_000_000, None, None);
    let (built, nonce) = b
        .pay_with_datum(&no_datum, &v, Some(&hex::decode(&datum).unwrap()))
        .unwrap();
    let (code, ok) = app
        .post_json("/verify", &body_for(&no_datum, &built.tx, &nonce))
        .await;
    assert_eq!((code, ok["isValid"].clone()), (200, json!(true)), "{ok}");
    app.stop().await;
}

#[test]
fn demo_runs_with_the_script_method() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        crate::support::app::run_bin(dir.path(), &["demo", "--method", "script"], &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for step in [
        "resource server up: GET http://127.0.0.1:",
        "paid to addr_test1w",
        "assetTransferMethod script: plutusV3 code 4d01000033222220051200120011",
        "inline datum d8799f581c",
        "/verify said valid",
        "status \"confirmed\", confirmations 1",
        "done: paid request served",
    ] {
        assert!(out.contains(step), "missing step {step:?} in:\n{out}");
    }
}
