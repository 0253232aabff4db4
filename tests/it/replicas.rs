//! Issue 5 at the level of the whole service: several facilitator replicas
//! sharing one real redis-server (password set), one chain (replica A hosts
//! the devnet; B and C read it through the Blockfrost client), and Redis
//! outages while traffic flows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::app::{TestApp, spawn_app_with};
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};
use crate::support::redis_server::RedisServer;
use serde_json::{Value, json};
use x402_facilitator::config::{Settings, StoreBackend};

fn with_redis(s: &mut Settings, redis: &RedisServer) {
    s.store.backend = StoreBackend::Redis;
    s.store.redis = redis.settings();
    // These tests exercise the verify-time hold (the operator's opt-in).
    s.chain.reservation.hold_on_verify = true;
}

async fn replica_of(host: &TestApp, redis: &RedisServer) -> TestApp {
    let url = format!("{}/devnet/api/v0", host.base);
    spawn_app_with(|s| {
        with_redis(s, redis);
        s.chain.blockfrost.url = Some(url);
    })
    .await
}

/// With `holdOnVerify` on, 200 concurrent verifies of 50 distinct valid
/// transactions that all spend one UTxO, spread over 3 replicas sharing one
/// Redis: exactly one
/// transaction is accepted; every other answer names the held input.
#[tokio::test]
async fn one_utxo_fifty_transactions_three_replicas_exactly_one_accepted() {
    let Some(redis) = RedisServer::start("replicas") else {
        return;
    };
    let a = spawn_app_with(|s| with_redis(s, &redis)).await;
    let b = replica_of(&a, &redis).await;
    let c = replica_of(&a, &redis).await;

    let (buyer, utxo) = funded_buyer(&a.client, &a.base, 0x21, 100_000_000).await;
    let v = view(&a.client, &a.base, &buyer).await;
    assert_eq!(v.utxos.len(), 1, "one UTxO to fight over");
    let mut bodies = Vec::new();
    let mut ids = BTreeSet::new();
    for i in 0..50u64 {
        let req = requirements(&seller(0x61), 1_000_000 + i, 1);
        let (built, body) = pay(&buyer, &v, &req);
        assert_eq!(built.body.inputs, vec![utxo]);
        ids.insert(built.tx_id.to_hex());
        bodies.push((built.tx_id.to_hex(), body));
    }
    assert_eq!(ids.len(), 50, "50 distinct transactions");

    let replicas = [&a, &b, &c];
    let mut tasks = Vec::new();
    for k in 0..200usize {
        let (txid, body) = bodies[k % 50].clone();
        let app = replicas[k % 3];
        let client = app.client.clone();
        let url = app.url("/verify");
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (txid, status, v)
        }));
    }
    let mut accepted = BTreeSet::new();
    let mut reasons = BTreeMap::<String, usize>::new();
    for t in tasks {
        let (txid, status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        if v["isValid"] == true {
            accepted.insert(txid);
        } else {
            *reasons
                .entry(v["invalidReason"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(
        accepted.len(),
        1,
        "exactly one transaction accepted: {accepted:?}"
    );
    assert_eq!(
        reasons.keys().collect::<Vec<_>>(),
        vec!["invalid_exact_cardano_payload_input_not_available"],
        "{reasons:?}"
    );

    // The winner settles through any replica, exactly once.
    let winner = accepted.into_iter().next().unwrap();
    let body = bodies
        .iter()
        .find(|(id, _)| *id == winner)
        .unwrap()
        .1
        .clone();
    let (code, settled) = c.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["transaction"], winner);
    let (_, st) = b.get_json(&format!("/status/{winner}")).await;
    assert_eq!(
        st["status"], "confirmed",
        "every replica reads the same journal: {st}"
    );
    let devnet = a.state.devnet.clone().unwrap();
    assert_eq!(devnet.submissions(&winner.parse().unwrap()), 1);
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// Redis stopped mid-traffic: verify and settle fail closed with 503, health
/// says degraded; Redis back: service resumes with no restart.
#[tokio::test]
async fn redis_outage_fails_closed_and_service_resumes_by_itself() {
    let Some(mut redis) = RedisServer::start("redis_outage") else {
        return;
    };
    let app = spawn_app_with(|s| with_redis(s, &redis)).await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 0x22, 30_000_000).await;
    let v = view(&app.client, &app.base, &buyer).await;
    let req = requirements(&seller(0x62), 1_000_000, 0);
    let (_, first) = pay(&buyer, &v, &req);
    let (code, ok) = app.post_json("/verify", &first).await;
    assert_eq!((code, ok["isValid"].clone()), (200, json!(true)), "{ok}");

    redis.kill();
    let (code, down) = app.post_json("/verify", &first).await;
    assert_eq!(code, 503, "{down}");
    assert_eq!(down["isValid"], false);
    assert_eq!(
        down["invalidReason"],
        "exact_cardano_facilitator_store_unavailable"
    );
    let r = app
        .client
        .post(app.url("/settle"))
        .json(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(
        body["errorReason"],
        "exact_cardano_facilitator_store_unavailable"
    );
    let (code, health) = app.get_json("/health").await;
    assert_eq!(code, 200);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["dependencies"]["store"]["status"], "down");
    assert_eq!(health["dependencies"]["chain"]["status"], "up");
    let (code, _) = app.get_json("/ready").await;
    assert_eq!(code, 503);

    redis.restart();
    let mut last = Value::Null;
    for _ in 0..50 {
        let (code, v) = app.post_json("/verify", &first).await;
        last = v;
        if code == 200 && last["isValid"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last["isValid"], true,
        "service resumed without a restart: {last}"
    );
    let (_, health) = app.get_json("/health").await;
    assert_eq!(health["status"], "healthy");
    let (code, settled) = app.post_json("/settle", &first).await;
    assert_eq!(code, 200);
    assert_eq!(settled["success"], true, "{settled}");
    app.stop().await;
}

/// Neither the store nor the chain answers: /health is unhealthy with 503.
#[tokio::test]
async fn health_is_unhealthy_when_every_dependency_is_down() {
    let Some(mut redis) = RedisServer::start("unhealthy") else {
        return;
    };
    let app = spawn_app_with(|s| {
        with_redis(s, &redis);
        s.chain.network = x402_facilitator::cardano::Network::Preprod;
        s.chain.blockfrost.url = Some("http://127.0.0.1:9/api/v0".into());
        s.chain.blockfrost.max_retries = 0;
        s.chain.blockfrost.request_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let (code, h) = app.get_json("/health").await;
    assert_eq!((code, h["status"].clone()), (200, json!("degraded")), "{h}");
    redis.kill();
    let (code, h) = app.get_json("/health").await;
    assert_eq!(code, 503, "{h}");
    assert_eq!(h["status"], "unhealthy");
    assert_eq!(h["dependencies"]["store"]["status"], "down");
    assert_eq!(h["dependencies"]["chain"]["status"], "down");
    // Without the admin key /health shows status and latency, not error text.
    assert!(h["dependencies"]["store"].get("error").is_none(), "{h}");
    app.stop().await;
}

/// A Sentinel deployment (master, two replicas, one sentinel): the master is
/// killed, Sentinel promotes a replica, and the facilitator keeps serving with
/// every settlement it acknowledged still in the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_serving_and_loses_no_settlement() {
    use crate::support::redis_server::SentinelDeployment;
    const TEST: &str = "app_sentinel_failover";
    const SERVICE: &str = "x402-app";
    const SENTINEL_PASSWORD: &str = "sentinel-pass-app-1";
    let Some(deployment) = SentinelDeployment::start(TEST, SERVICE, SENTINEL_PASSWORD) else {
        return;
    };
    let mut redis_settings = deployment.settings();
    redis_settings.replica_acks = 1;
    let SentinelDeployment { mut master, .. } = deployment;
    let app = spawn_app_with(|s| {
        s.store.backend = StoreBackend::Redis;
        s.store.redis = redis_settings;
    })
    .await;

    let (buyer, _) = funded_buyer(&app.client, &app.base, 0x23, 40_000_000).await;
    let mut settled = Vec::new();
    for i in 0..3u64 {
        let v = view(&app.client, &app.base, &buyer).await;
        let req = requirements(&seller(0x63), 1_000_000 + i, 0);
        let (built, body) = pay(&buyer, &v, &req);
        let (_, r) = app.post_json("/settle", &body).await;
        assert_eq!(r["success"], true, "{r}");
        settled.push(built.tx_id.to_hex());
        tokio::time::sleep(Duration::from_millis(450)).await;
    }

    master.kill();
    // Keep paying until the promoted master serves: fail closed meanwhile.
    let v = view(&app.client, &app.base, &buyer).await;
    let req = requirements(&seller(0x63), 2_000_000, 0);
    let (_, body) = pay(&buyer, &v, &req);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, r) = app.post_json("/verify", &body).await;
        if code == 200 && r["isValid"] == true {
            break;
        }
        assert!(
            code == 503 || code == 200,
            "only fail-closed answers during the failover: {code} {r}"
        );
        assert_ne!(r["isValid"], true);
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery after the failover: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for tx in &settled {
        let (code, st) = app.get_json(&format!("/status/{tx}")).await;
        assert_eq!(code, 200, "settlement {tx} survived the failover: {st}");
        assert_eq!(st["status"], "confirmed");
    }
    let (_, r) = app.post_json("/settle", &body).await;
    assert_eq!(r["success"], true, "{r}");
    app.stop().await;
}
