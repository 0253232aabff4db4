//! Issue 6 point 5: crash safety. The facilitator under test runs as a real
//! process with the Redis store; the chain is another facilitator's devnet
//! (in this test process) reached through the Blockfrost client, so the
//! ledger outlives the crash and counts submissions per transaction.

use std::time::{Duration, Instant};

use crate::support::app::{BinApp, spawn_app_with};
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};
use crate::support::redis_server::{Options, PASSWORD, RedisServer};
use serde_json::{Value, json};

const ADMIN_KEY: &str = "crash-test-admin-key-0001";

fn facilitator_config(devnet_api: &str, redis: &RedisServer) -> Value {
    json!({
        "server": {"port": 0, "requestTimeoutMs": 10000},
        "rateLimit": {"enabled": false},
        "store": {"backend": "redis"},
        "chain": {
            "network": "devnet",
            "blockfrost": {"url": devnet_api},
            "cache": {"utxoTtlSeconds": 1},
            "redis": {"host": "127.0.0.1", "port": redis.port(), "password": PASSWORD}
        },
        "settlement": {"confirmationTimeoutSeconds": 8, "pollIntervalMs": 50, "reconcileIntervalMs": 200},
        "admin": {"apiKey": ADMIN_KEY}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_submit_then_restart_confirms_without_a_second_broadcast() {
    let Some(redis) = RedisServer::start_with(
        "crash",
        Options {
            aof_always: true,
            ..Options::default()
        },
    ) else {
        return;
    };
    let chain_host =
        spawn_app_with(|s| s.chain.devnet.block_time = std::time::Duration::from_millis(300)).await;
    let devnet = chain_host.state.devnet.clone().unwrap();
    let api = format!("{}/devnet/api/v0", chain_host.base);

    let (buyer, _) = funded_buyer(&chain_host.client, &chain_host.base, 0x31, 10_000_000).await;
    let v = view(&chain_host.client, &chain_host.base, &buyer).await;
    // Three blocks on top: the settle call is still waiting when it dies.
    let req = requirements(&seller(0x71), 1_000_000, 3);
    let (built, body) = pay(&buyer, &v, &req);
    let txid = built.tx_id.to_hex();

    let mut first = BinApp::start(facilitator_config(&api, &redis), &[]);
    let client = reqwest::Client::new();
    let settle_url = format!("{}/settle", first.base());
    let inflight = {
        let client = client.clone();
        let body = body.clone();
        tokio::spawn(async move { client.post(settle_url).json(&body).send().await })
    };
    // Wait until the transaction reached the ledger, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(10);
    while devnet.submissions(&built.tx_id) == 0 {
        assert!(Instant::now() < deadline, "the facilitator never submitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.signal("KILL");
    assert_eq!(
        first.wait(Duration::from_secs(5)),
        None,
        "killed by a signal: no exit code"
    );
    assert!(
        inflight.await.unwrap().is_err(),
        "the in-flight settle died with the process"
    );

    // What the crashed process left in the journal: submitted, not confirmed.
    let mut conn = redis.connection();
    let state: Option<String> = redis::cmd("HGET")
        .arg(format!("x402:settle:{txid}"))
        .arg("state")
        .query(&mut conn)
        .unwrap();
    assert!(
        matches!(state.as_deref(), Some("submitted") | Some("submitting")),
        "journal after the crash: {state:?}"
    );

    // Restart: the reconciler (not a request) brings the record to CONFIRMED.
    let second = BinApp::start(facilitator_config(&api, &redis), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        let r = client
            .get(format!("{}/admin/settlements/{txid}", second.base()))
            .header("x-admin-key", ADMIN_KEY)
            .send()
            .await
            .unwrap();
        let rec: Value = r.json().await.unwrap();
        if rec["state"] == "confirmed" {
            break rec;
        }
        assert!(
            Instant::now() < deadline,
            "reconciler did not confirm: {rec}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(record["confirmations"].as_u64().unwrap() >= 3, "{record}");
    assert_eq!(record["submissions"], 1);

    // A retried settle answers success from the journal; the ledger saw one broadcast.
    let r = client
        .post(format!("{}/settle", second.base()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let settled: Value = r.json().await.unwrap();
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["transaction"], txid);
    assert_eq!(devnet.submissions(&built.tx_id), 1, "never re-broadcast");
    let lines = second.lines().join("\n");
    assert!(
        lines.contains("reconciler lease acquired"),
        "the reconciler ran in the restarted process"
    );
    chain_host.stop().await;
}
