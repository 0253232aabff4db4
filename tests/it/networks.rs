//! Several networks in one instance (issue 12, point 6): the embedded devnet
//! and a second network, `cardano:preprod`, whose backend is another
//! facilitator's devnet API announcing preprod's magic. Each payment settles
//! on its own chain, in its own store namespace; a payment for one network
//! presented as the other is refused and leaves nothing behind.

use serde_json::{Value as Json, json};
use x402_facilitator::app::App;
use x402_facilitator::cardano::{Network, TxId};
use x402_facilitator::chain::devnet::Devnet;
use x402_facilitator::config::{
    BlockfrostSettings, DevnetSettings, NetworkSettings, Settings, StoreBackend,
};
use x402_facilitator::protocol::types::PaymentRequirementsV2;

use crate::devnet_support::ADA;
use crate::support::app::{TestApp, spawn_app_with, start, test_settings};
use crate::support::pay;
use crate::support::redis_server::RedisServer;

/// Another facilitator whose devnet announces preprod's network magic (1).
async fn preprod_stand_in() -> TestApp {
    spawn_app_with(|s| s.chain.devnet.network_magic = Network::Preprod.magic()).await
}

/// One instance serving `cardano:devnet` (embedded) and `cardano:preprod`
/// (the stand-in's Blockfrost-compatible API).
fn two_networks(preprod_api: &str, tweak: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = test_settings();
    let mut devnet = NetworkSettings {
        devnet: Some(DevnetSettings {
            block_time: std::time::Duration::from_millis(200),
            ..DevnetSettings::default()
        }),
        ..NetworkSettings::default()
    };
    devnet.settlement.accept_mempool = Some(true);
    let mut preprod = NetworkSettings {
        blockfrost: Some(BlockfrostSettings {
            url: Some(preprod_api.to_owned()),
            retry_base_delay: std::time::Duration::from_millis(10),
            ..BlockfrostSettings::default()
        }),
        ..NetworkSettings::default()
    };
    preprod.settlement.accept_mempool = Some(true);
    // Preprod waits for one block at most here: the bound is per network.
    preprod.settlement.max_confirmations = Some(1);
    s.networks.insert("cardano:devnet".into(), devnet);
    s.networks.insert("cardano:preprod".into(), preprod);
    tweak(&mut s);
    let problems = s.validate();
    assert!(problems.is_empty(), "{problems:?}");
    s
}

fn requirements(
    network: Network,
    seller_seed: u8,
    amount: u64,
    confirmations: i64,
) -> PaymentRequirementsV2 {
    pay::requirements_on(network, seller_seed, amount, confirmations)
}

/// A buyer funded directly on `devnet`'s ledger, and a signed payment for `req`.
fn payment(
    devnet: &Devnet,
    network: Network,
    seed: u8,
    req: &PaymentRequirementsV2,
) -> (Json, TxId) {
    let (body, tx_id, _) = pay::funded_payment(devnet, network, seed, req);
    (body, tx_id)
}

/// The same payment, its requirements (and the accepted copy) naming `network`.
fn presented_as(body: &Json, network: Network) -> Json {
    let mut b = body.clone();
    b["paymentRequirements"]["network"] = json!(network.caip2());
    b["paymentPayload"]["accepted"]["network"] = json!(network.caip2());
    b
}

async fn each_settles_on_its_own_chain(app: &TestApp, other: &TestApp) {
    let here = app.state.devnet.clone().expect("the embedded devnet");
    let there = other.state.devnet.clone().expect("the stand-in's devnet");
    let router = app.state.facilitator.clone();
    assert_eq!(
        router.lanes().iter().map(|l| l.network).collect::<Vec<_>>(),
        vec![Network::Devnet, Network::Preprod]
    );

    // /supported lists every network, each with its own confirmation bounds.
    let (status, sup) = app.get_json("/supported").await;
    assert_eq!(status, 200, "{sup}");
    let kinds = sup["kinds"].as_array().unwrap();
    let mut networks: Vec<&str> = kinds.iter().filter_map(|k| k["network"].as_str()).collect();
    networks.sort();
    networks.dedup();
    assert!(
        networks.contains(&"cardano:devnet") && networks.contains(&"cardano:preprod"),
        "{sup}"
    );
    for (network, maximum) in [("cardano:preprod", 1), ("cardano:devnet", 20)] {
        let kind = kinds
            .iter()
            .find(|k| k["network"] == network && k["x402Version"] == 2)
            .expect("a v2 kind of each network");
        assert_eq!(
            kind["extra"]["l1Confirmations"],
            json!({"minimum": -1, "maximum": maximum}),
            "{sup}"
        );
    }

    // A devnet payment settles on the embedded ledger.
    let devnet_req = requirements(Network::Devnet, 0x71, 2 * ADA, -1);
    let (devnet_body, devnet_tx) = payment(&here, Network::Devnet, 0x72, &devnet_req);
    let (status, v) = app.post_json("/settle", &devnet_body).await;
    assert_eq!((status, &v["success"]), (200, &json!(true)), "{v}");
    assert_eq!(v["network"], "cardano:devnet");
    assert_eq!(v["transaction"], devnet_tx.to_hex());
    assert_eq!(here.submissions(&devnet_tx), 1);
    assert_eq!(there.submissions(&devnet_tx), 0);

    // A preprod payment settles on the stand-in's ledger, through its API.
    let preprod_req = requirements(Network::Preprod, 0x73, 3 * ADA, -1);
    let (preprod_body, preprod_tx) = payment(&there, Network::Preprod, 0x74, &preprod_req);
    let (status, v) = app.post_json("/settle", &preprod_body).await;
    assert_eq!((status, &v["success"]), (200, &json!(true)), "{v}");
    assert_eq!(v["network"], "cardano:preprod");
    assert_eq!(v["transaction"], preprod_tx.to_hex());
    assert_eq!(there.submissions(&preprod_tx), 1);
    assert_eq!(here.submissions(&preprod_tx), 0);

    // Each journal holds its own network's record and not the other's.
    let devnet_lane = router.lane(Network::Devnet).unwrap();
    let preprod_lane = router.lane(Network::Preprod).unwrap();
    let rec = devnet_lane
        .store
        .get(&devnet_tx)
        .await
        .unwrap()
        .expect("devnet record");
    assert_eq!(rec.network, "cardano:devnet");
    assert!(devnet_lane.store.get(&preprod_tx).await.unwrap().is_none());
    let rec = preprod_lane
        .store
        .get(&preprod_tx)
        .await
        .unwrap()
        .expect("preprod record");
    assert_eq!(rec.network, "cardano:preprod");
    assert!(preprod_lane.store.get(&devnet_tx).await.unwrap().is_none());

    // /status finds each in its own journal.
    let (status, s) = app
        .get_json(&format!("/status/{}", preprod_tx.to_hex()))
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (&s["network"], &s["status"]),
        (&json!("cardano:preprod"), &json!("submitted")),
        "{s}"
    );
    let (status, s) = app
        .get_json(&format!("/status/{}", devnet_tx.to_hex()))
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["network"], "cardano:devnet", "{s}");

    // A payment for one network presented as the other is refused, and
    // nothing is written or submitted anywhere.
    let req = requirements(Network::Preprod, 0x75, 2 * ADA, -1);
    let (body, tx) = payment(&there, Network::Preprod, 0x76, &req);
    let as_devnet = presented_as(&body, Network::Devnet);
    let (status, v) = app.post_json("/verify", &as_devnet).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["isValid"], &v["invalidReason"]),
        (
            &json!(false),
            &json!("invalid_exact_cardano_payload_nonce_not_on_chain")
        ),
        "{v}"
    );
    let (status, v) = app.post_json("/settle", &as_devnet).await;
    assert_eq!((status, &v["success"]), (200, &json!(false)), "{v}");
    assert_eq!(
        v["errorReason"], "invalid_exact_cardano_payload_nonce_not_on_chain",
        "{v}"
    );
    assert_eq!(v["transaction"], "");
    assert_eq!(here.submissions(&tx) + there.submissions(&tx), 0);
    assert!(devnet_lane.store.get(&tx).await.unwrap().is_none());
    assert!(preprod_lane.store.get(&tx).await.unwrap().is_none());
    // Asking preprod for more than its bound is a policy refusal there only.
    let deep = requirements(Network::Preprod, 0x77, 2 * ADA, 3);
    let (body, _) = payment(&there, Network::Preprod, 0x78, &deep);
    let (_, v) = app.post_json("/verify", &body).await;
    assert_eq!(
        v["invalidReason"], "invalid_exact_cardano_requirements_policy",
        "{v}"
    );
    // The genuine preprod payment still settles afterwards.
    let (status, v) = app.post_json("/settle", &body_with_policy(&body, -1)).await;
    assert_eq!(status, 200, "{v}");

    // The operator's pause switch stops settlement on every network at once.
    router.set_paused(true).await.unwrap();
    assert!(router.lanes().iter().all(|l| l.facilitator.is_paused()));
    let paused_req = requirements(Network::Preprod, 0x79, 2 * ADA, -1);
    let (paused_body, paused_tx) = payment(&there, Network::Preprod, 0x7a, &paused_req);
    let (status, v) = app.post_json("/settle", &paused_body).await;
    assert_eq!(
        (status, &v["errorReason"]),
        (503, &json!("settlement_paused")),
        "{v}"
    );
    let (status, v) = app.post_json("/settle", &devnet_body).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(there.submissions(&paused_tx), 0);
    router.set_paused(false).await.unwrap();
    let (status, v) = app.post_json("/settle", &paused_body).await;
    assert_eq!((status, &v["success"]), (200, &json!(true)), "{v}");
    assert_eq!(there.submissions(&paused_tx), 1);

    // /health shows every network; /metrics labels by network.
    let (status, h) = app.get_json("/health").await;
    assert_eq!((status, &h["status"]), (200, &json!("healthy")), "{h}");
    for n in ["cardano:devnet", "cardano:preprod"] {
        assert_eq!(h["networks"][n]["status"], "healthy", "{h}");
        assert_eq!(h["networks"][n]["chain"]["network"], n, "{h}");
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for n in ["cardano:devnet", "cardano:preprod"] {
        let line = format!("chain_up{{network=\"{n}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("x402_settle_total{")
                    && l.contains(&format!("network=\"{n}\""))),
            "no x402_settle_total for {n}"
        );
    }
}

/// The requirements' policy changed, the payment left as signed (the policy
/// is not part of the transaction).
fn body_with_policy(body: &Json, confirmations: i64) -> Json {
    let mut b = body.clone();
    let policy = json!({ "l1Confirmations": confirmations });
    b["paymentRequirements"]["extra"]["confirmationPolicy"] = policy.clone();
    b["paymentPayload"]["accepted"]["extra"]["confirmationPolicy"] = policy;
    b
}

#[tokio::test]
async fn two_networks_on_the_memory_store() {
    let other = preprod_stand_in().await;
    let api = other.url("/devnet/api/v0");
    let app = start(
        App::build(two_networks(&api, |_| {}))
            .await
            .expect("app builds"),
    );
    each_settles_on_its_own_chain(&app, &other).await;
    app.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn two_networks_on_redis_keep_their_keys_apart() {
    let Some(redis) = RedisServer::start("networks") else {
        return;
    };
    let other = preprod_stand_in().await;
    let api = other.url("/devnet/api/v0");
    let settings = two_networks(&api, |s| {
        s.store.backend = StoreBackend::Redis;
        s.store.redis = redis.settings();
    });
    let app = start(App::build(settings).await.expect("app builds"));
    each_settles_on_its_own_chain(&app, &other).await;
    // Every key lives under its network's prefix; the reconciler holds one
    // lease per network.
    let all = redis.keys("*");
    assert!(!all.is_empty());
    for k in &all {
        assert!(
            k.starts_with("x402:cardano:devnet:") || k.starts_with("x402:cardano:preprod:"),
            "key outside the network namespaces: {k}"
        );
    }
    assert!(
        redis
            .keys("x402:cardano:devnet:*")
            .iter()
            .any(|k| k.contains("lease")),
        "{all:?}"
    );
    assert!(
        redis
            .keys("x402:cardano:preprod:*")
            .iter()
            .any(|k| k.contains("lease")),
        "{all:?}"
    );
    app.stop().await;
    other.stop().await;
}

/// Two replicas serving both networks on one Redis: the same preprod payment
/// sent to both at once, ten times, is paid once and submitted once.
#[tokio::test]
async fn two_replicas_of_a_two_network_instance_settle_a_payment_once() {
    let Some(redis) = RedisServer::start("networks-replicas") else {
        return;
    };
    let other = preprod_stand_in().await;
    let api = other.url("/devnet/api/v0");
    let replica = || {
        two_networks(&api, |s| {
            s.store.backend = StoreBackend::Redis;
            s.store.redis = redis.settings();
        })
    };
    let a = start(App::build(replica()).await.expect("replica a builds"));
    let b = start(App::build(replica()).await.expect("replica b builds"));
    let there = other.state.devnet.clone().expect("the stand-in's devnet");
    let req = requirements(Network::Preprod, 0x7b, 2 * ADA, -1);
    let (body, tx) = payment(&there, Network::Preprod, 0x7c, &req);

    let answers = futures::future::join_all((0..10).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.post_json("/settle", &body)
    }))
    .await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|(status, v)| match (status, &v["success"]) {
            (200, Json::Bool(true)) => "success".to_owned(),
            _ => format!("{status} {}", v["errorReason"].as_str().unwrap_or("?")),
        })
        .collect();
    outcomes.sort();
    let successes = outcomes.iter().filter(|o| *o == "success").count();
    let duplicates = outcomes
        .iter()
        .filter(|o| *o == "200 duplicate_settlement")
        .count();
    assert_eq!((successes, duplicates), (1, 9), "{outcomes:?}");
    assert_eq!(there.submissions(&tx), 1);
    a.stop().await;
    b.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn the_mainnet_guard_applies_when_any_network_is_mainnet() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        "{}",
        json!({
            "networks": {
                "cardano:preprod": { "blockfrost": { "projectId": "preprodabc" } },
                "cardano:mainnet": { "blockfrost": { "projectId": "mainnetabc" } }
            }
        })
    )
    .unwrap();
    let source = x402_facilitator::config::ConfigSource {
        path: path.clone(),
        explicit: true,
    };
    let err = x402_facilitator::config::load(&source, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        x402_facilitator::config::MAINNET_GUARD_MESSAGE
    );
    let ok = x402_facilitator::config::load(&source, &[("MAINNET".into(), "true".into())]).unwrap();
    assert_eq!(
        ok.served_networks(),
        vec![Network::Mainnet, Network::Preprod]
    );
}
