//! The black-box verify suite, run twice: against a facilitator on the
//! embedded devnet, and against a facilitator whose Blockfrost client reads
//! another facilitator's devnet API (issue 4 point 6). Same answers expected.

use std::time::Duration;

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::pay::{body_for, funded_buyer, pay, requirements, seller, view};
use serde_json::{Value, json};
use x402_facilitator::buyer;

/// The app under test and the app whose faucet and devnet it uses (may be the same).
struct Rig {
    under_test: TestApp,
    chain_host: Option<TestApp>,
}

impl Rig {
    fn host(&self) -> &TestApp {
        self.chain_host.as_ref().unwrap_or(&self.under_test)
    }
    async fn stop(self) {
        self.under_test.stop().await;
        if let Some(h) = self.chain_host {
            h.stop().await;
        }
    }
}

async fn embedded() -> Rig {
    Rig {
        under_test: spawn_app().await,
        chain_host: None,
    }
}

async fn through_blockfrost() -> Rig {
    let host = spawn_app().await;
    let url = format!("{}/devnet/api/v0", host.base);
    let under_test = spawn_app_with(|s| {
        s.chain.blockfrost.url = Some(url);
        s.chain.cache.utxo_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    Rig {
        under_test,
        chain_host: Some(host),
    }
}

async fn suite(rig: Rig) {
    let app = &rig.under_test;
    let host = rig.host();
    let (buyer, _) = funded_buyer(&host.client, &host.base, 0x11, 50_000_000).await;
    let v = view(&host.client, &host.base, &buyer).await;
    let req = requirements(&seller(0x91), 2_000_000, 1);
    let (built, body) = pay(&buyer, &v, &req);

    // Valid, with the payer's address.
    let (code, r) = app.post_json("/verify", &body).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r, json!({"isValid": true, "payer": buyer.address()}));
    // Verifying the same transaction again refreshes its own reservation.
    let (_, again) = app.post_json("/verify", &body).await;
    assert_eq!(again["isValid"], true);

    // Asking for more than is paid.
    let mut greedy = body.clone();
    for p in [
        "/paymentRequirements/amount",
        "/paymentPayload/accepted/amount",
    ] {
        *greedy.pointer_mut(p).unwrap() = json!("2000001");
    }
    let (_, r) = app.post_json("/verify", &greedy).await;
    assert_eq!(
        r["invalidReason"], "invalid_exact_cardano_payload_amount_insufficient",
        "{r}"
    );
    assert_eq!(r["payer"], buyer.address());

    // Paying someone else.
    let mut elsewhere = body.clone();
    for p in [
        "/paymentRequirements/payTo",
        "/paymentPayload/accepted/payTo",
    ] {
        *elsewhere.pointer_mut(p).unwrap() = json!(seller(0x92));
    }
    let (_, r) = app.post_json("/verify", &elsewhere).await;
    assert_eq!(
        r["invalidReason"], "invalid_exact_cardano_payload_recipient_mismatch",
        "{r}"
    );

    // `accepted` that differs from the requirements.
    let mut forged = body.clone();
    *forged
        .pointer_mut("/paymentPayload/accepted/amount")
        .unwrap() = json!("1");
    let (_, r) = app.post_json("/verify", &forged).await;
    assert_eq!(r["invalidReason"], "invalid_exact_cardano_payload", "{r}");

    // A v2 request whose payment payload says version 1.
    let mut old_payload = body.clone();
    *old_payload
        .pointer_mut("/paymentPayload/x402Version")
        .unwrap() = json!(1);
    let (code, r) = app.post_json("/verify", &old_payload).await;
    assert_eq!(code, 200);
    assert_eq!(
        r["invalidReason"], "invalid_exact_cardano_payload_unsupported_version",
        "{r}"
    );

    // CIP-34 aliases are folded before matching, and answers carry the canonical id.
    let mut alias = body.clone();
    for p in [
        "/paymentRequirements/network",
        "/paymentPayload/accepted/network",
    ] {
        *alias.pointer_mut(p).unwrap() = json!("cip34:0-42");
    }
    let (_, r) = app.post_json("/verify", &alias).await;
    assert_eq!(r["isValid"], true, "{r}");
    alias["paymentRequirements"]
        .as_object_mut()
        .unwrap()
        .remove("payTo");
    let (_, r) = app.post_json("/settle", &alias).await;
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(r["network"], "cardano:devnet", "{r}");

    // A nonce that is not an input.
    let mut wrong_nonce = body.clone();
    *wrong_nonce
        .pointer_mut("/paymentPayload/payload/nonce")
        .unwrap() = json!(format!("{}#7", "cd".repeat(32)));
    let (_, r) = app.post_json("/verify", &wrong_nonce).await;
    assert_eq!(
        r["invalidReason"], "invalid_exact_cardano_payload_nonce_not_in_inputs",
        "{r}"
    );

    // A broken signature.
    let mut tampered = built.tx.clone();
    let n = tampered.len();
    tampered[n - 3] ^= 0x01;
    let (_, r) = app
        .post_json("/verify", &body_for(&req, &tampered, &built.body.inputs[0]))
        .await;
    let reason = r["invalidReason"].as_str().unwrap();
    assert!(
        reason == "invalid_exact_cardano_payload_invalid_signature"
            || reason == "invalid_exact_cardano_payload_transaction_decode_failed",
        "{r}"
    );

    // Verify is read-only: another transaction spending the same UTxO is
    // still valid (nothing was held); only a settle claims the inputs.
    let other_req = requirements(&seller(0x91), 2_500_000, 1);
    let (rival, rival_body) = pay(&buyer, &v, &other_req);
    assert_ne!(rival.tx_id, built.tx_id);
    let (_, r) = app.post_json("/verify", &rival_body).await;
    assert_eq!(r["isValid"], true, "{r}");
    let (_, r) = app.post_json("/verify", &body).await;
    assert_eq!(r["isValid"], true, "verifying twice changes nothing: {r}");

    // The wrong network.
    let mut preprod = body.clone();
    for p in [
        "/paymentRequirements/network",
        "/paymentPayload/accepted/network",
    ] {
        *preprod.pointer_mut(p).unwrap() = json!("cardano:preprod");
    }
    let (_, r) = app.post_json("/verify", &preprod).await;
    assert_eq!(r["invalidReason"], "network_mismatch", "{r}");

    // Not an x402 body: 400.
    let resp = app
        .client
        .post(app.url("/verify"))
        .body("[1,2,3]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["isValid"], false);
    assert_eq!(r["invalidReason"], "invalid_payload");

    // A native token payment.
    let policy = "1d".repeat(28);
    let unit = format!("{policy}.55534444");
    let token_buyer =
        buyer::Buyer::from_seed([0x12; 32], x402_facilitator::cardano::Network::Devnet);
    buyer::faucet(
        &host.client,
        &host.base,
        &token_buyer.address(),
        5_000_000,
        &[(unit.clone(), 1_000)],
    )
    .await
    .unwrap();
    let tv = view(&host.client, &host.base, &token_buyer).await;
    let mut treq = requirements(&seller(0x93), 250, 1);
    treq.asset = unit.clone();
    let (_, tbody) = pay(&token_buyer, &tv, &treq);
    let (code, r) = app.post_json("/verify", &tbody).await;
    assert_eq!(code, 200);
    assert_eq!(r, json!({"isValid": true, "payer": token_buyer.address()}));
    // The same token payment checked against another asset.
    let mut wrong_asset = tbody.clone();
    for p in [
        "/paymentRequirements/asset",
        "/paymentPayload/accepted/asset",
    ] {
        *wrong_asset.pointer_mut(p).unwrap() = json!(format!("{policy}.55534445"));
    }
    let (_, r) = app.post_json("/verify", &wrong_asset).await;
    assert_eq!(
        r["invalidReason"], "invalid_exact_cardano_payload_asset_mismatch",
        "{r}"
    );

    // v1: same payment, v1 envelope and names; a v1-shaped answer.
    let v1 = json!({
        "x402Version": 1,
        "paymentPayload": {"x402Version": 1, "scheme": "exact", "network": "cardano-devnet", "payload": body["paymentPayload"]["payload"]},
        "paymentRequirements": {
            "scheme": "exact", "network": "cardano-devnet", "maxAmountRequired": "2000000",
            "resource": "https://shop.example/item", "description": "item", "mimeType": "application/json",
            "payTo": seller(0x91), "maxTimeoutSeconds": 600, "asset": "lovelace", "extra": {}
        }
    });
    let (code, r) = app.post_json("/verify", &v1).await;
    assert_eq!(code, 200);
    assert_eq!(r, json!({"isValid": true, "payer": buyer.address()}));

    // Settle it, then the spent inputs are recognised as such.
    let (_, settled) = app.post_json("/settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, r) = app.post_json("/verify", &rival_body).await;
    let reason = r["invalidReason"].as_str().unwrap();
    assert!(
        reason == "invalid_exact_cardano_payload_nonce_not_on_chain"
            || reason == "invalid_exact_cardano_payload_input_not_available",
        "{r}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_suite_on_the_embedded_devnet() {
    suite(embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_suite_through_the_blockfrost_client() {
    suite(through_blockfrost().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_chain_answers_503_retryable() {
    // A Blockfrost URL where nothing listens; preprod has a static slot clock, so startup succeeds.
    let app = spawn_app_with(|s| {
        s.chain.network = x402_facilitator::cardano::Network::Preprod;
        s.chain.blockfrost.url = Some("http://127.0.0.1:9/api/v0".into());
        s.chain.blockfrost.max_retries = 0;
        s.chain.blockfrost.request_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let host = spawn_app().await;
    let (buyer, _) = funded_buyer(&host.client, &host.base, 0x13, 10_000_000).await;
    let v = view(&host.client, &host.base, &buyer).await;
    let mut req = requirements(&seller(0x94), 1_000_000, 1);
    req.network = "cardano:preprod".into();
    let (_, body) = pay(&buyer, &v, &req);
    let resp = app
        .client
        .post(app.url("/verify"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["isValid"], false);
    assert_eq!(
        r["invalidReason"],
        "exact_cardano_facilitator_chain_lookup_failed"
    );
    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 200);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["dependencies"]["chain"]["status"], "down");
    app.stop().await;
    host.stop().await;
}
