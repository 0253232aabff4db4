//! One payment buys one resource: the tests a thief would write. Black box,
//! real redis-server, several replicas sharing it (replica A hosts the
//! devnet; the others read it through the Blockfrost client).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::pay::{body_for, funded_buyer, pay, requirements, seller, view};
use crate::support::redis_server::RedisServer;
use x402_facilitator::config::{Settings, StoreBackend};

fn with_redis(s: &mut Settings, redis: &RedisServer) {
    s.store.backend = StoreBackend::Redis;
    s.store.redis = redis.settings();
}

async fn replica_of(
    host: &TestApp,
    redis: &RedisServer,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let url = format!("{}/devnet/api/v0", host.base);
    spawn_app_with(|s| {
        with_redis(s, redis);
        s.chain.blockfrost.url = Some(url);
        tweak(s);
    })
    .await
}

fn reason(v: &Value) -> String {
    v["errorReason"]
        .as_str()
        .or(v["invalidReason"].as_str())
        .unwrap_or("")
        .to_owned()
}

/// 20 concurrent verify-then-settle sequences of one signed payment across
/// three replicas: exactly one `success:true`, nineteen
/// `duplicate_settlement` carrying the tx id, one payment on chain.
#[tokio::test]
async fn twenty_concurrent_settles_of_one_payment_three_replicas_one_success() {
    let Some(redis) = RedisServer::start("one_payment_20") else {
        return;
    };
    let a = spawn_app_with(|s| with_redis(s, &redis)).await;
    let b = replica_of(&a, &redis, |_| {}).await;
    let c = replica_of(&a, &redis, |_| {}).await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x31, 50_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    let req = requirements(&seller(0x71), 2_000_000, 1);
    let (built, body) = pay(&buyer, &v, &req);
    let txid = built.tx_id.to_hex();

    let replicas = [&a, &b, &c];
    let mut tasks = Vec::new();
    for k in 0..20usize {
        let app = replicas[k % 3];
        let client = app.client.clone();
        let (vu, su) = (app.url("/verify"), app.url("/settle"));
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = client.post(vu).json(&body).send().await.unwrap();
            let verified: Value = r.json().await.unwrap();
            let r = client.post(su).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let settled: Value = r.json().await.unwrap();
            (verified, status, settled)
        }));
    }
    let mut outcomes = BTreeMap::<String, usize>::new();
    for t in tasks {
        let (verified, status, settled) = t.await.unwrap();
        assert_eq!(status, 200, "{settled}");
        // Read-only verify: every concurrent verify of the unsettled payment is valid,
        // or (once the success is out) names the duplicate.
        assert!(
            verified["isValid"] == true || reason(&verified) == "duplicate_settlement",
            "{verified}"
        );
        let key = if settled["success"] == true {
            "success".to_owned()
        } else {
            reason(&settled)
        };
        if settled["success"] == true || key == "duplicate_settlement" {
            assert_eq!(settled["transaction"], txid, "{settled}");
        }
        *outcomes.entry(key).or_default() += 1;
    }
    assert_eq!(
        outcomes,
        BTreeMap::from([
            ("duplicate_settlement".to_owned(), 19),
            ("success".to_owned(), 1)
        ]),
        "exactly one success"
    );
    let devnet = a.state.devnet.clone().unwrap();
    assert_eq!(devnet.submissions(&built.tx_id), 1, "broadcast once");
    // And later, one at a time, to any replica: still a duplicate.
    for app in replicas {
        let (code, again) = app.post_json("/settle", &body).await;
        assert_eq!(code, 200);
        assert_eq!(reason(&again), "duplicate_settlement", "{again}");
        let (_, ver) = app.post_json("/verify", &body).await;
        assert_eq!(ver["isValid"], false, "{ver}");
        assert_eq!(reason(&ver), "duplicate_settlement", "{ver}");
    }
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// The same payment replayed one request at a time after it confirmed,
/// through the Blockfrost client (whose UTxO cache still remembers the
/// inputs as unspent): rejected at verify and at settle.
#[tokio::test]
async fn replay_after_confirmation_through_the_blockfrost_cache_is_rejected() {
    let Some(redis) = RedisServer::start("one_payment_replay") else {
        return;
    };
    let a = spawn_app_with(|s| with_redis(s, &redis)).await;
    let b = replica_of(&a, &redis, |s| {
        s.chain.cache.utxo_ttl = std::time::Duration::from_secs(300)
    })
    .await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x32, 50_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    let req = requirements(&seller(0x72), 2_000_000, 0);
    let (built, body) = pay(&buyer, &v, &req);
    // B verifies first: its cache now holds the inputs as unspent.
    let (_, ver) = b.post_json("/verify", &body).await;
    assert_eq!(ver["isValid"], true, "{ver}");
    let (_, settled) = b.post_json("/settle", &body).await;
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["extra"]["status"], "confirmed", "{settled}");
    for _ in 0..3 {
        let (_, ver) = b.post_json("/verify", &body).await;
        assert_eq!(ver["isValid"], false, "{ver}");
        assert_eq!(reason(&ver), "duplicate_settlement");
        let (_, again) = b.post_json("/settle", &body).await;
        assert_eq!(again["success"], false, "{again}");
        assert_eq!(reason(&again), "duplicate_settlement");
        assert_eq!(again["transaction"], built.tx_id.to_hex());
    }
    b.stop().await;
    a.stop().await;
}

/// Someone holding the signed transaction re-signs its body with their own
/// key and settles that variant first: it fails and leaves no record, so the
/// genuine payment settles and pays afterwards.
#[tokio::test]
async fn witness_swapped_variant_first_then_the_genuine_payment_settles() {
    let Some(redis) = RedisServer::start("one_payment_swap") else {
        return;
    };
    let a = spawn_app_with(|s| with_redis(s, &redis)).await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x33, 50_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    let req = requirements(&seller(0x73), 2_000_000, 0);
    let (built, body) = pay(&buyer, &v, &req);
    use x402_facilitator::buyer::builder;
    let thief = x402_facilitator::buyer::keys::SigningKey::from_seed([0xee; 32]);
    let witnesses = builder::sign(&built.body_bytes, &[thief]);
    let forged = builder::assemble(
        &built.body_bytes,
        &builder::encode_witness_set(&witnesses),
        true,
        None,
    );
    assert_ne!(forged, built.tx);
    let nonce: x402_facilitator::cardano::UtxoRef = body["paymentPayload"]["payload"]["nonce"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let forged_body = body_for(&req, &forged, &nonce);
    let (code, first) = a.post_json("/settle", &forged_body).await;
    assert_eq!(code, 200);
    assert_eq!(first["success"], false, "{first}");
    assert_eq!(first["transaction"], "", "nothing was broadcast: {first}");
    let (code, st) = a
        .get_json(&format!("/status/{}", built.tx_id.to_hex()))
        .await;
    assert_eq!(code, 404, "no record left behind: {st}");
    let (_, genuine) = a.post_json("/settle", &body).await;
    assert_eq!(genuine["success"], true, "{genuine}");
    assert_eq!(genuine["transaction"], built.tx_id.to_hex());
    let devnet = a.state.devnet.clone().unwrap();
    assert_eq!(devnet.submissions(&built.tx_id), 1);
    a.stop().await;
}

/// The buyer's wallet broadcasts the transaction itself, then the resource
/// server settles it: success once (not `BadInputsUTxO`), /status confirmed.
#[tokio::test]
async fn buyer_broadcasts_first_then_settle_succeeds_once() {
    let Some(redis) = RedisServer::start("one_payment_buyer_first") else {
        return;
    };
    let a = spawn_app_with(|s| with_redis(s, &redis)).await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x34, 50_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    let req = requirements(&seller(0x74), 2_000_000, 0);
    let (built, body) = pay(&buyer, &v, &req);
    // The wallet submits through the devnet's Blockfrost-compatible API.
    let r = a
        .client
        .post(a.url("/devnet/api/v0/tx/submit"))
        .header("content-type", "application/cbor")
        .body(built.tx.clone())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "wallet submit: {}", r.status());
    let (code, settled) = a.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["transaction"], built.tx_id.to_hex());
    let payer = settled["payer"].as_str().unwrap_or("");
    assert_eq!(
        payer,
        buyer.address(),
        "payer read from the producing transaction"
    );
    let (_, again) = a.post_json("/settle", &body).await;
    assert_eq!(reason(&again), "duplicate_settlement", "{again}");
    let (_, st) = a
        .get_json(&format!("/status/{}", built.tx_id.to_hex()))
        .await;
    assert_eq!(st["status"], "confirmed", "{st}");
    assert_eq!(st["delivered"], true, "{st}");
    a.stop().await;
}

/// payment-identifier: the same id under other requirements is 409; the
/// same id, payload and requirements gets the stored answer; another tenant
/// cannot read it.
#[tokio::test]
async fn payment_identifier_is_bound_to_the_whole_request_and_the_tenant() {
    use sha2::Digest;
    let keys = ["tenant-a-key-0123456789", "tenant-b-key-0123456789"];
    let a = spawn_app_with(|s| {
        s.auth.api_keys = keys
            .iter()
            .map(|k| {
                x402_facilitator::config::KeyDigest::from_hex(&hex::encode(sha2::Sha256::digest(
                    k.as_bytes(),
                )))
                .unwrap()
            })
            .collect();
    })
    .await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x35, 50_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    let req = requirements(&seller(0x75), 2_000_000, 0);
    let (built, mut body) = pay(&buyer, &v, &req);
    body["paymentPayload"]["extensions"] =
        json!({"payment-identifier": {"info": {"id": "pay_0123456789abcdef0123"}}});
    let send = |key: &'static str, body: Value| {
        let client = a.client.clone();
        let url = a.url("/settle");
        async move {
            let r = client
                .post(url)
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (code, first) = send(keys[0], body.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(first["success"], true, "{first}");
    // The lost-response retry: same tenant, id, payload, requirements.
    let (code, again) = send(keys[0], body.clone()).await;
    assert_eq!((code, again.clone()), (200, first.clone()));
    // Seller B's requirements under the same id: 409, never A's success.
    let mut other = body.clone();
    other["paymentRequirements"]["amount"] = json!("1000000000");
    other["paymentRequirements"]["payTo"] = json!(seller(0x76));
    let (code, conflict) = send(keys[0], other).await;
    assert_eq!(code, 409, "{conflict}");
    // Another tenant with the same id and request: not A's stored answer;
    // the payment's success was already delivered, so a duplicate.
    let (code, b) = send(keys[1], body.clone()).await;
    assert_eq!(code, 200);
    assert_eq!(reason(&b), "duplicate_settlement", "{b}");
    assert_eq!(b["transaction"], built.tx_id.to_hex());
    // The verify of the settled payment with the same identifier still
    // answers valid (the buyer who lost the response gets the resource).
    let r = a
        .client
        .post(a.url("/verify"))
        .header("x-api-key", keys[0])
        .json(&body)
        .send()
        .await
        .unwrap();
    let ver: Value = r.json().await.unwrap();
    assert_eq!(ver["isValid"], true, "{ver}");
    a.stop().await;
}

/// `settlement.defaultConfirmations` applies when the requirements carry no
/// confirmation policy.
#[tokio::test]
async fn default_confirmations_apply_when_the_requirements_say_nothing() {
    for depth in [0i64, 3] {
        let a = spawn_app_with(|s| s.settlement.default_confirmations = depth).await;
        let (buyer, _) = funded_buyer(&a.client, &a.base, 0x36 + depth as u8, 50_000_000).await;
        let v = view(&a.client, &a.base, &buyer).await;
        let mut req = requirements(&seller(0x77), 2_000_000, 0);
        req.extra = json!({});
        let (built, body) = pay(&buyer, &v, &req);
        let (_, settled) = a.post_json("/settle", &body).await;
        assert_eq!(settled["success"], true, "{settled}");
        assert_eq!(settled["extra"]["status"], "confirmed");
        let got = settled["extra"]["confirmations"].as_i64().unwrap();
        assert!(got >= depth, "depth {depth}: {settled}");
        let (_, st) = a
            .get_json(&format!("/status/{}", built.tx_id.to_hex()))
            .await;
        assert_eq!(st["requiredConfirmations"], depth, "{st}");
        a.stop().await;
    }
}

/// Pause and resume are shared: a pause sent to one replica stops
/// settlement on the other within one reconcile interval.
#[tokio::test]
async fn pause_on_one_replica_pauses_every_replica() {
    let Some(redis) = RedisServer::start("one_payment_pause") else {
        return;
    };
    let admin = "admin-key-0123456789abcdef";
    let a = spawn_app_with(|s| {
        with_redis(s, &redis);
        s.admin.api_key = Some(x402_facilitator::config::Secret::new(admin));
    })
    .await;
    let b = replica_of(&a, &redis, |_| {}).await;
    let r = a
        .client
        .post(a.url("/admin/settlement/pause"))
        .header("x-admin-key", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // B's reconcile interval is 200 ms in tests.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x3a, 50_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    let req = requirements(&seller(0x78), 2_000_000, 0);
    let (_, body) = pay(&buyer, &v, &req);
    let (code, paused) = b.post_json("/settle", &body).await;
    assert_eq!(code, 503, "{paused}");
    assert_eq!(reason(&paused), "settlement_paused");
    let r = a
        .client
        .post(a.url("/admin/settlement/resume"))
        .header("x-admin-key", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (code, settled) = b.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(settled["success"], true, "{settled}");
    b.stop().await;
    a.stop().await;
}

/// A journal write the Redis replicas do not acknowledge (here: one replica
/// asked for, none attached) aborts the settle with 503 before anything is
/// broadcast, and leaves nothing that blocks the next attempt: a replica
/// configured without acknowledgements settles the same payment at once.
#[tokio::test]
async fn a_replica_ack_shortfall_aborts_with_503_and_the_next_attempt_settles() {
    let Some(redis) = RedisServer::start("one_payment_acks") else {
        return;
    };
    let a = spawn_app_with(|s| with_redis(s, &redis)).await;
    let strict = replica_of(&a, &redis, |s| {
        s.store.redis.replica_acks = 1;
    })
    .await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x3c, 50_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    let req = requirements(&seller(0x7c), 2_000_000, 0);
    let (built, body) = pay(&buyer, &v, &req);
    let (code, short) = strict.post_json("/settle", &body).await;
    assert_eq!(code, 503, "{short}");
    assert_eq!(
        reason(&short),
        "exact_cardano_facilitator_store_unavailable"
    );
    assert_eq!(short["transaction"], "", "nothing was broadcast: {short}");
    let devnet = a.state.devnet.clone().unwrap();
    assert_eq!(devnet.submissions(&built.tx_id), 0);
    let (code, settled) = a.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(devnet.submissions(&built.tx_id), 1);
    strict.stop().await;
    a.stop().await;
}
