//! Issues 3 and 6, black-box: /verify, /settle and /status against the real
//! app on port 0 with the real embedded devnet.

use std::time::Duration;

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::pay::{body_for, funded_buyer, pay, requirements, seller, view};
use serde_json::{Value, json};
use x402_facilitator::buyer::builder;
use x402_facilitator::buyer::keys::SigningKey;
use x402_facilitator::cardano::TxId;

fn devnet_submissions(app: &TestApp, tx: &str) -> u32 {
    let id: TxId = tx.parse().unwrap();
    app.state.devnet.as_ref().expect("devnet").submissions(&id)
}

#[tokio::test]
async fn verify_then_settle_confirms_once_and_status_tells_the_truth() {
    let app = spawn_app().await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 1, 10_000_000).await;
    let req = requirements(&seller(0x51), 1_500_000, 1);
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let txid = built.tx_id.to_hex();

    let (code, verified) = app.post_json("/verify", &body).await;
    assert_eq!(code, 200, "{verified}");
    assert_eq!(verified, json!({"isValid": true, "payer": buyer.address()}));

    let (code, settled) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200, "{settled}");
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["transaction"], txid);
    assert_eq!(settled["network"], "cardano:devnet");
    assert_eq!(settled["payer"], buyer.address());
    assert_eq!(settled["extra"]["status"], "confirmed");
    assert!(settled["extra"]["confirmations"].as_u64().unwrap() >= 1);
    assert_eq!(devnet_submissions(&app, &txid), 1);

    let (code, status) = app.get_json(&format!("/status/{txid}")).await;
    assert_eq!(code, 200);
    assert_eq!(status["status"], "confirmed");
    assert_eq!(status["transaction"], txid);
    assert_eq!(status["payer"], buyer.address());
    assert_eq!(status["payTo"], seller(0x51));
    assert_eq!(status["asset"], "lovelace");
    assert_eq!(status["amount"], "1500000");
    assert_eq!(status["network"], "cardano:devnet");
    assert!(status["submittedAt"].is_string());
    assert!(status["confirmedAt"].is_string());
    assert!(status["confirmations"].as_u64().unwrap() >= 1);

    // POST /status with the base64 transaction finds the same record.
    let b64 = body["paymentPayload"]["payload"]["transaction"].clone();
    let (code, by_tx) = app.post_json("/status", &json!({"transaction": b64})).await;
    assert_eq!(code, 200);
    assert_eq!(by_tx["transaction"], txid);

    // A second settle answers from the journal: the payment's success was
    // delivered once, so this is a duplicate naming the same transaction,
    // and nothing is broadcast again.
    let (code, again) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(again["success"], false);
    assert_eq!(again["errorReason"], "duplicate_settlement");
    assert_eq!(again["transaction"], txid);
    assert_eq!(devnet_submissions(&app, &txid), 1);

    // Verifying the settled transaction again: the journal says it was paid out.
    let (_, reverify) = app.post_json("/verify", &body).await;
    assert_eq!(reverify["isValid"], false);
    assert_eq!(
        reverify["invalidReason"], "duplicate_settlement",
        "{reverify}"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_transactions_have_status_not_found() {
    let app = spawn_app().await;
    let id = "ab".repeat(32);
    let (code, v) = app.get_json(&format!("/status/{id}")).await;
    assert_eq!(code, 404);
    assert_eq!(v["status"], "not_found");
    assert_eq!(v["transaction"], id);
    let (code, v) = app.get_json("/status/not-a-tx-id").await;
    assert_eq!(code, 400);
    assert_eq!(v["error"]["code"], "invalid_transaction");
    app.stop().await;
}

#[tokio::test]
async fn mempool_policy_succeeds_without_waiting_for_a_block() {
    let app =
        spawn_app_with(|s| s.chain.devnet.block_time = std::time::Duration::from_millis(5_000))
            .await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 2, 10_000_000).await;
    let req = requirements(&seller(0x52), 1_000_000, -1);
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let started = std::time::Instant::now();
    let (code, settled) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["transaction"], built.tx_id.to_hex());
    assert_eq!(settled["extra"]["status"], "mempool");
    assert_eq!(settled["extra"]["confirmations"], -1);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "did not wait for the 5 s block"
    );
    app.stop().await;
}

#[tokio::test]
async fn settlement_pending_then_a_retry_resumes_without_rebroadcast() {
    let app = spawn_app_with(|s| {
        s.settlement.confirmation_timeout = std::time::Duration::from_secs(1);
        s.server.request_timeout = std::time::Duration::from_millis(5_000);
        s.chain.devnet.block_time = std::time::Duration::from_millis(300);
    })
    .await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 3, 10_000_000).await;
    let req = requirements(&seller(0x53), 1_000_000, 4);
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let txid = built.tx_id.to_hex();

    let (code, first) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(first["success"], false);
    assert_eq!(first["errorReason"], "settlement_pending");
    assert_eq!(
        first["transaction"], txid,
        "pending answers carry the tx id"
    );
    assert_eq!(first["network"], "cardano:devnet");
    let (_, st) = app.get_json(&format!("/status/{txid}")).await;
    assert!(
        ["pending", "submitted"].contains(&st["status"].as_str().unwrap()),
        "{st}"
    );

    // Keep retrying as a client would; each retry resumes observing.
    let mut last = Value::Null;
    for _ in 0..10 {
        let (code, again) = app.post_json("/settle", &body).await;
        assert_eq!(code, 200);
        last = again;
        if last["success"] == true {
            break;
        }
        assert_eq!(last["errorReason"], "settlement_pending");
    }
    assert_eq!(last["success"], true, "{last}");
    assert_eq!(last["transaction"], txid);
    assert!(last["extra"]["confirmations"].as_i64().unwrap() >= 4);
    assert_eq!(devnet_submissions(&app, &txid), 1, "never re-broadcast");
    app.stop().await;
}

#[tokio::test]
async fn the_same_transaction_under_other_requirements_is_a_duplicate() {
    let app = spawn_app().await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 4, 10_000_000).await;
    let req = requirements(&seller(0x54), 2_000_000, 0);
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let (_, settled) = app.post_json("/settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");

    // Same transaction, presented against cheaper requirements (different digest).
    let cheaper = requirements(&seller(0x54), 1_000_000, 0);
    let nonce = body["paymentPayload"]["payload"]["nonce"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let other = body_for(&cheaper, &built.tx, &nonce);
    let (code, dup) = app.post_json("/settle", &other).await;
    assert_eq!(code, 200);
    assert_eq!(dup["success"], false);
    assert_eq!(dup["errorReason"], "duplicate_settlement");
    assert_eq!(dup["transaction"], built.tx_id.to_hex());
    assert_eq!(devnet_submissions(&app, &built.tx_id.to_hex()), 1);
    app.stop().await;
}

#[tokio::test]
async fn reordered_witnesses_are_the_same_settlement() {
    let app = spawn_app().await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 5, 10_000_000).await;
    let req = requirements(&seller(0x55), 1_000_000, 0);
    let v = view(&app.client, &app.base, &buyer).await;
    // Signed by the buyer and a second key, so there are two witnesses to re-order.
    let extra = SigningKey::from_seed([0x77; 32]);
    let spec = builder::PaymentSpec {
        inputs: v
            .utxos
            .iter()
            .map(|(r, val)| builder::InputSpec {
                utxo: *r,
                value: val.clone(),
            })
            .collect(),
        outputs: vec![builder::OutputSpec {
            address: x402_facilitator::cardano::address::decode_bech32(&seller(0x55))
                .unwrap()
                .1,
            value: x402_facilitator::cardano::Value::lovelace(1_000_000),
        }],
        change_address: buyer.address_bytes(),
        validity_start: None,
        ttl: Some(v.tip_slot + 300),
        network_id: None,
    };
    let built =
        builder::build_payment(&spec, &v.params, &[buyer.key().clone(), extra.clone()]).unwrap();
    let ab = built.witnesses.clone();
    assert_eq!(ab.len(), 2);
    let ba: Vec<_> = ab.iter().rev().cloned().collect();
    let tx_ab = builder::assemble(
        &built.body_bytes,
        &builder::encode_witness_set(&ab),
        true,
        None,
    );
    let tx_ba = builder::assemble(
        &built.body_bytes,
        &builder::encode_witness_set(&ba),
        true,
        None,
    );
    assert_ne!(tx_ab, tx_ba, "different bytes");
    let nonce = built.body.inputs[0];

    let (_, first) = app
        .post_json("/settle", &body_for(&req, &tx_ab, &nonce))
        .await;
    assert_eq!(first["success"], true, "{first}");
    // The re-ordered copy is the same payment: its one success is already
    // delivered, so it is a duplicate (naming the same transaction).
    let (_, second) = app
        .post_json("/settle", &body_for(&req, &tx_ba, &nonce))
        .await;
    assert_eq!(second["success"], false, "{second}");
    assert_eq!(second["errorReason"], "duplicate_settlement", "{second}");
    assert_eq!(first["transaction"], second["transaction"]);
    assert_eq!(first["transaction"], built.tx_id.to_hex());
    assert_eq!(devnet_submissions(&app, &built.tx_id.to_hex()), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_payment_is_not_settled_and_names_its_reason() {
    let app = spawn_app().await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 6, 10_000_000).await;
    let req = requirements(&seller(0x56), 1_000_000, 0);
    let v = view(&app.client, &app.base, &buyer).await;
    let (_, body) = pay(&buyer, &v, &req);
    // Ask for more than the transaction pays.
    let mut greedy = body.clone();
    greedy["paymentRequirements"]["amount"] = json!("5000000");
    greedy["paymentPayload"]["accepted"]["amount"] = json!("5000000");
    let (code, r) = app.post_json("/settle", &greedy).await;
    assert_eq!(code, 200);
    assert_eq!(r["success"], false);
    assert_eq!(
        r["errorReason"],
        "invalid_exact_cardano_payload_amount_insufficient"
    );
    assert_eq!(r["transaction"], "", "nothing was broadcast");
    assert_eq!(r["network"], "cardano:devnet");

    // Not JSON at all: 400 with invalid_payload.
    let resp = app
        .client
        .post(app.url("/settle"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errorReason"], "invalid_payload");
    app.stop().await;
}

#[tokio::test]
async fn payment_identifier_returns_the_stored_answer_or_409() {
    let app = spawn_app().await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 7, 20_000_000).await;
    let req = requirements(&seller(0x57), 1_000_000, 0);
    let v = view(&app.client, &app.base, &buyer).await;
    let (_, mut body) = pay(&buyer, &v, &req);
    body["paymentPayload"]["extensions"] =
        json!({"payment-identifier": {"info": {"id": "order-0001-abcdef-XYZ"}}});
    let (code, first) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(first["success"], true, "{first}");
    let (code, again) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(again, first, "the stored answer, byte for byte");

    // Same id, another payload.
    let mut v2 = view(&app.client, &app.base, &buyer).await;
    v2.utxos.retain(|(r, _)| {
        r.to_string() != body["paymentPayload"]["payload"]["nonce"].as_str().unwrap()
    });
    let (_, mut other) = pay(&buyer, &v2, &req);
    other["paymentPayload"]["extensions"] = body["paymentPayload"]["extensions"].clone();
    let resp = app
        .client
        .post(app.url("/settle"))
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "payment_identifier_conflict");
    app.stop().await;
}

#[tokio::test]
async fn a_rollback_is_reported_then_the_transaction_reconfirms() {
    let app =
        spawn_app_with(|s| s.chain.devnet.block_time = std::time::Duration::from_millis(400)).await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 8, 10_000_000).await;
    let req = requirements(&seller(0x58), 1_000_000, 0);
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let txid = built.tx_id.to_hex();
    let (_, settled) = app.post_json("/settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    let devnet = app.state.devnet.clone().unwrap();
    // Roll back every block that could hold it.
    let depth = settled["extra"]["confirmations"].as_u64().unwrap();
    devnet.rollback(depth + 1).expect("rollback");
    let (_, st) = app.get_json(&format!("/status/{txid}")).await;
    assert_eq!(
        st["status"], "submitted",
        "fall-back after the rollback: {st}"
    );
    // The transaction returns to the mempool and lands again.
    let mut seen = Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (_, st) = app.get_json(&format!("/status/{txid}")).await;
        seen = st;
        if seen["status"] == "confirmed" {
            break;
        }
    }
    assert_eq!(seen["status"], "confirmed", "re-confirmed: {seen}");
    assert_eq!(devnet.submissions(&built.tx_id), 1);
    app.stop().await;
}

#[tokio::test]
async fn settlement_pause_answers_503_and_verify_keeps_working() {
    let app = spawn_app_with(|s| {
        s.admin.api_key = Some(x402_facilitator::config::Secret::new(
            "admin-key-for-tests-0001",
        ))
    })
    .await;
    let r = app
        .client
        .post(app.url("/admin/settlement/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(app.url("/admin/settlement/pause"))
        .header("x-admin-key", "admin-key-for-tests-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (buyer, _) = funded_buyer(&app.client, &app.base, 9, 10_000_000).await;
    let req = requirements(&seller(0x59), 1_000_000, 0);
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let (code, verified) = app.post_json("/verify", &body).await;
    assert_eq!((code, verified["isValid"].clone()), (200, json!(true)));
    let resp = app
        .client
        .post(app.url("/settle"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["errorReason"], "settlement_paused");
    assert_eq!(devnet_submissions(&app, &built.tx_id.to_hex()), 0);
    let r = app
        .client
        .post(app.url("/admin/settlement/resume"))
        .header("x-admin-key", "admin-key-for-tests-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, settled) = app.post_json("/settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    let r = app
        .client
        .get(app.url("/admin/settlements?state=confirmed"))
        .header("x-admin-key", "admin-key-for-tests-0001")
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert!(
        list["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["txId"] == built.tx_id.to_hex()),
        "{list}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_key_and_honours_its_ip_allow_list() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/admin/settlement"))
        .header("x-admin-key", "anything-at-all-000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "disabled without admin.apiKey");
    app.stop().await;

    let key = "admin-key-for-tests-0002";
    let app = spawn_app_with(|s| {
        s.admin.api_key = Some(x402_facilitator::config::Secret::new(key));
        s.admin.allowed_ips = vec!["127.0.0.7".parse().unwrap()];
    })
    .await;
    let r = app
        .client
        .get(app.url("/admin/settlement"))
        .header("x-admin-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "127.0.0.1 is not on the list");
    let allowed = reqwest::Client::builder()
        .local_address("127.0.0.7".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = allowed
        .get(app.url("/admin/settlement"))
        .header("x-admin-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"paused": false}));
    let r = allowed
        .get(app.url("/admin/settlement"))
        .header("x-admin-key", "wrong-key-wrong-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Settle something, then inspect it and force a reconciliation pass.
    let (buyer, _) = funded_buyer(&app.client, &app.base, 10, 10_000_000).await;
    let req = requirements(&seller(0x5a), 1_000_000, 0);
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let (_, settled) = app.post_json("/settle", &body).await;
    assert_eq!(settled["success"], true);
    let txid = built.tx_id.to_hex();
    let r = allowed
        .get(app.url(&format!("/admin/settlements/{txid}")))
        .header("x-admin-key", key)
        .send()
        .await
        .unwrap();
    let rec: Value = r.json().await.unwrap();
    assert_eq!(rec["txId"], txid);
    assert_eq!(rec["state"], "confirmed");
    assert_eq!(rec["payer"], buyer.address());
    assert_eq!(rec["submissions"], 1);
    let r = allowed
        .post(app.url("/admin/reconcile"))
        .header("x-admin-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["examined"].is_u64());
    let r = allowed
        .get(app.url("/admin/settlements?state=bogus"))
        .header("x-admin-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

/// The buyer double-spends behind the facilitator's back (straight to the
/// node): verification still sees the input unspent at the tip and the node
/// answers `BadInputsUTxO`. That verdict is not definitive (it is also what
/// the node says when the buyer broadcast this very transaction), the chain
/// does not show our transaction, so the settlement stays open, never
/// reported as paid and never as failed before the chain decides; a retry
/// does not broadcast again.
#[tokio::test]
async fn a_double_spend_behind_our_back_is_never_reported_paid_nor_failed_early() {
    let app = spawn_app_with(|s| {
        s.chain.devnet.block_time = std::time::Duration::from_millis(5_000);
        s.settlement.confirmation_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let (buyer, utxo) = funded_buyer(&app.client, &app.base, 11, 10_000_000).await;
    let v = view(&app.client, &app.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &requirements(&seller(0x5b), 1_000_000, 0));
    let (rival, _) = pay(&buyer, &v, &requirements(&seller(0x5c), 1_200_000, 0));
    let r = app
        .client
        .post(app.url("/devnet/api/v0/tx/submit"))
        .header("content-type", "application/cbor")
        .body(rival.tx.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the rival went straight to the node");

    let (code, settled) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(settled["success"], false, "{settled}");
    assert_eq!(settled["errorReason"], "settlement_pending", "{settled}");
    assert_eq!(
        settled["transaction"],
        built.tx_id.to_hex(),
        "it was handed to the node"
    );
    assert_eq!(settled["extra"]["status"], "pending");
    assert_eq!(settled["extra"]["transactionId"], built.tx_id.to_hex());
    // Its inputs stay held while it might still land.
    let holder = app.state.store.holder(&utxo).await.unwrap();
    assert_eq!(holder, Some(built.tx_id));
    let (_, st) = app
        .get_json(&format!("/status/{}", built.tx_id.to_hex()))
        .await;
    assert_eq!(st["status"], "submitting", "{st}");
    assert_eq!(st["delivered"], false);
    // A retry observes again without a second broadcast.
    let (_, again) = app.post_json("/settle", &body).await;
    assert_eq!(again["errorReason"], "settlement_pending");
    assert_eq!(devnet_submissions(&app, &built.tx_id.to_hex()), 1);
    app.stop().await;
}

/// `/supported` advertises the confirmation range this operator allows:
/// minimum -1 only with `settlement.acceptMempool`; a mempool policy without
/// it is refused at verify and at settle.
#[tokio::test]
async fn supported_advertises_the_allowed_confirmation_range() {
    let with = spawn_app().await; // test settings opt in to mempool settlement
    let (_, s) = with.get_json("/supported").await;
    assert_eq!(
        s["kinds"][0]["extra"]["l1Confirmations"],
        json!({"minimum": -1, "maximum": 20}),
        "{s}"
    );
    with.stop().await;
    let without = spawn_app_with(|s| s.settlement.accept_mempool = false).await;
    let (_, s) = without.get_json("/supported").await;
    assert_eq!(
        s["kinds"][0]["extra"]["l1Confirmations"],
        json!({"minimum": 0, "maximum": 20}),
        "{s}"
    );
    let (buyer, _) = funded_buyer(&without.client, &without.base, 0x2e, 10_000_000).await;
    let v = view(&without.client, &without.base, &buyer).await;
    let (_, body) = pay(&buyer, &v, &requirements(&seller(0x6e), 1_000_000, -1));
    let (_, ver) = without.post_json("/verify", &body).await;
    assert_eq!(
        ver["invalidReason"], "invalid_exact_cardano_requirements_policy",
        "{ver}"
    );
    let (_, set) = without.post_json("/settle", &body).await;
    assert_eq!(
        set["errorReason"], "invalid_exact_cardano_requirements_policy",
        "{set}"
    );
    assert_eq!(set["transaction"], "");
    without.stop().await;
}
