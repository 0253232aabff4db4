//! The facilitator over a Blockfrost-compatible backend that another
//! in-process devnet serves: what each payment costs upstream, the client-side
//! rate limiter, the network proof (genesis `network_magic`), and the
//! "spent by us" guard in front of the UTxO cache.

use std::sync::Arc;

use serde_json::{Value as Json, json};
use x402_facilitator::buyer::{Buyer, ChainView};
use x402_facilitator::cardano::{Network, ProtocolParams, UtxoRef, UtxoState, Value};
use x402_facilitator::chain::blockfrost::BlockfrostProvider;
use x402_facilitator::chain::devnet::Devnet;
use x402_facilitator::chain::{ChainErrorKind, ChainProvider};
use x402_facilitator::config::{BlockfrostSettings, CacheSettings, Settings};
use x402_facilitator::protocol::types::PaymentRequirementsV2;

use crate::devnet_support::{ADA, settings as devnet_settings};
use crate::support::app::{TestApp, run_bin, spawn_app_with};
use crate::support::pay;

/// A devnet (no block producer) announcing `magic`, its API on port 0.
async fn backend(magic: u32) -> (Arc<Devnet>, String) {
    let mut s = devnet_settings(1_000, vec![]);
    s.network_magic = magic;
    let d = Devnet::manual(&s).unwrap();
    let base = crate::devnet_support::serve(d.clone()).await;
    (d, format!("{base}/api/v0"))
}

/// The facilitator on `network`, its chain the Blockfrost API at `url`.
async fn facilitator(network: Network, url: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(move |s| {
        s.chain.network = network;
        s.chain.blockfrost.url = Some(url);
        s.chain.blockfrost.retry_base_delay = std::time::Duration::from_millis(10);
        // No background reads while a test counts requests.
        s.chain.blockfrost.tip_refresh = std::time::Duration::from_millis(600_000);
        tweak(s);
    })
    .await
}

fn requirements(network: Network, confirmations: i64) -> PaymentRequirementsV2 {
    pay::requirements_on(network, 0x5e, 2 * ADA, confirmations)
}

/// A funded buyer on `d` and a signed payment body for `req`.
fn payment(d: &Devnet, network: Network, seed: u8, req: &PaymentRequirementsV2) -> (Json, UtxoRef) {
    let (body, _, nonce) = pay::funded_payment(d, network, seed, req);
    (body, nonce)
}

#[tokio::test]
async fn a_verify_costs_one_upstream_request_and_a_settle_adds_submit_and_evidence() {
    let (d, url) = backend(42).await;
    let app = facilitator(Network::Devnet, &url, |_| {}).await;
    let req = requirements(Network::Devnet, -1);
    let (body, _) = payment(&d, Network::Devnet, 1, &req);

    d.reset_api_calls();
    let (status, v) = app.post_json("/verify", &body).await;
    assert_eq!((status, &v["isValid"]), (200, &json!(true)), "{v}");
    assert_eq!(
        d.api_calls().into_iter().collect::<Vec<_>>(),
        vec![("GET /txs/{hash}/utxos".to_owned(), 1)],
        "tip and protocol parameters come from the background copies"
    );

    d.reset_api_calls();
    let (status, v) = app.post_json("/settle", &body).await;
    assert_eq!((status, &v["success"]), (200, &json!(true)), "{v}");
    let calls = d.api_calls();
    assert_eq!(calls.get("POST /tx/submit"), Some(&1), "{calls:?}");
    // The input lookup was answered by the cache the verify filled.
    assert_eq!(calls.get("GET /txs/{hash}/utxos"), None, "{calls:?}");
    // Mempool policy with the operator's opt-in: the submit acceptance is the
    // evidence (sheet 2.5 step 5), so no evidence poll at all.
    assert_eq!(calls.get("GET /txs/{hash}"), None, "{calls:?}");
    assert_eq!(calls.get("GET /mempool/{hash}"), None, "{calls:?}");
    assert_eq!(d.api_call_count(), 1, "{calls:?}");
    app.stop().await;
}

#[tokio::test]
async fn over_the_plan_quota_a_verify_fails_fast_with_503_and_sends_nothing() {
    let (d, url) = backend(42).await;
    // Startup takes 3 tokens (genesis, tip, parameters); 2 are left, and
    // they come back at one per 1000 s.
    let app = facilitator(Network::Devnet, &url, |s| {
        s.chain.blockfrost.rate_limit.per_second = 0.001;
        s.chain.blockfrost.rate_limit.burst = 5;
        s.chain.cache.utxo_ttl = std::time::Duration::from_secs(0);
    })
    .await;
    let req = requirements(Network::Devnet, -1);
    let (body, _) = payment(&d, Network::Devnet, 2, &req);
    d.reset_api_calls();
    for _ in 0..2 {
        let (status, v) = app.post_json("/verify", &body).await;
        assert_eq!((status, &v["isValid"]), (200, &json!(true)), "{v}");
    }
    assert_eq!(d.api_call_count(), 2);
    let r = app
        .client
        .post(app.url("/verify"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let v: Json = r.json().await.unwrap();
    assert_eq!(
        v["invalidReason"],
        "exact_cardano_facilitator_chain_lookup_failed"
    );
    assert!(
        v["invalidMessage"]
            .as_str()
            .is_some_and(|m| m.contains("rate limited")),
        "{v}"
    );
    assert_eq!(d.api_call_count(), 2, "the refused lookup was not sent");
    app.stop().await;
}

#[tokio::test]
async fn the_limiter_refuses_with_a_typed_error_at_once() {
    let (d, url) = backend(42).await;
    let bf = BlockfrostProvider::new(
        Network::Devnet,
        &BlockfrostSettings {
            url: Some(url),
            tip_refresh: std::time::Duration::from_millis(600_000),
            rate_limit: x402_facilitator::config::BlockfrostRateLimit {
                per_second: 0.001,
                burst: 3,
            },
            ..BlockfrostSettings::default()
        },
        &CacheSettings {
            utxo_ttl: std::time::Duration::from_secs(0),
            ..CacheSettings::default()
        },
    )
    .await
    .unwrap();
    // Construction spent the burst; the tip and parameters are cached.
    assert!(bf.tip().await.is_ok());
    assert!(bf.protocol_params().await.is_ok());
    d.reset_api_calls();
    let r = UtxoRef::new(x402_facilitator::cardano::TxId([7; 32]), 0);
    match &bf.utxos(&[r]).await[0] {
        UtxoState::Unknown(m) => assert!(m.contains("rate limited"), "{m}"),
        other => panic!("expected Unknown, got {other:?}"),
    }
    let e = bf
        .evidence(&x402_facilitator::cardano::TxId([7; 32]))
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, ChainErrorKind::RateLimited { retry_after_ms } if retry_after_ms > 0),
        "{e:?}"
    );
    // About 1000 s until the next token.
    assert!(e.retry_after_seconds() > 900, "{e:?}");
    assert_eq!(d.api_call_count(), 0);
}

#[tokio::test]
async fn a_replayed_payment_is_not_answered_from_the_utxo_cache() {
    let (d, url) = backend(42).await;
    let bf = BlockfrostProvider::new(
        Network::Devnet,
        &BlockfrostSettings {
            url: Some(url),
            tip_refresh: std::time::Duration::from_millis(600_000),
            ..BlockfrostSettings::default()
        },
        &CacheSettings {
            utxo_ttl: std::time::Duration::from_secs(600),
            ..CacheSettings::default()
        },
    )
    .await
    .unwrap();
    let req = requirements(Network::Devnet, -1);
    let b = Buyer::from_seed([3; 32], Network::Devnet);
    let value = Value::lovelace(10 * ADA);
    let src = d.fund_bytes(b.address_bytes(), value.clone()).unwrap();
    let view = ChainView {
        utxos: vec![(src, value)],
        params: ProtocolParams::mainnet_like(),
        tip_slot: d.current_slot(),
    };
    let (built, _) = b.pay(&req, &view).unwrap();

    // A verify fills the cache.
    assert!(matches!(bf.utxos(&[src]).await[0], UtxoState::Unspent(_)));
    d.reset_api_calls();
    assert!(matches!(bf.utxos(&[src]).await[0], UtxoState::Unspent(_)));
    assert_eq!(d.api_call_count(), 0, "answered from the cache");

    // This service submits the payment: its input leaves the cache for good.
    assert_eq!(
        bf.submit(&built.tx).await,
        x402_facilitator::chain::SubmitOutcome::Accepted
    );
    assert!(bf.is_spent_by_us(&src));
    d.reset_api_calls();
    // In the mempool the backend still calls it unspent (Blockfrost cannot
    // see the mempool), but the answer now comes from the backend...
    assert!(matches!(bf.utxos(&[src]).await[0], UtxoState::Unspent(_)));
    assert_eq!(d.api_call_count(), 1);
    // ...and is not cached: once the payment is in a block, a replay within
    // the cache TTL (600 s) sees it spent at once.
    d.produce_block();
    assert_eq!(bf.utxos(&[src]).await[0], UtxoState::Spent);
    assert_eq!(d.api_call_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_of_another_network_stops_startup() {
    // The devnet announces its own magic (42); the service is told preprod (1).
    let (_d, url) = backend(42).await;
    let config = json!({
        "server": {"host": "127.0.0.1", "port": 0},
        "chain": {"network": "preprod", "blockfrost": {"url": url}},
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/config.json"), config.to_string()).unwrap();
    let path = dir.path().to_owned();
    let (code, _stdout, stderr) =
        tokio::task::spawn_blocking(move || run_bin(&path, &["serve"], &[]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().last().unwrap_or_default(),
        format!(
            "chain provider initialization failed: genesis: the chain backend at {} serves network magic 42, but chain.network is cardano:preprod (magic 1)",
            // URLs are printed as scheme, host and port only (no path, key or userinfo).
            url.split("/devnet").next().unwrap_or_default()
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_backend_that_changes_network_is_refused_for_reads_and_submits() {
    // A devnet standing in for preprod (magic 1) behind the Blockfrost client.
    let (d, url) = backend(1).await;
    let app = facilitator(Network::Preprod, &url, |_| {}).await;
    let req = requirements(Network::Preprod, -1);
    let (body, _) = payment(&d, Network::Preprod, 4, &req);
    let (status, v) = app.post_json("/verify", &body).await;
    assert_eq!((status, &v["isValid"]), (200, &json!(true)), "{v}");
    let (_, h) = app.get_json("/health").await;
    assert_eq!(h["dependencies"]["chain"]["status"], "up", "{h}");

    // The endpoint now serves another network.
    d.set_network_magic(42);
    let (status, h) = app.get_json("/health").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["dependencies"]["chain"]["status"], "down", "{h}");
    // Without the admin key /health shows status and latency, not error text.
    assert!(h["dependencies"]["chain"].get("error").is_none(), "{h}");
    let (status, v) = app.post_json("/verify", &body).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(
        v["invalidReason"],
        "exact_cardano_facilitator_chain_lookup_failed"
    );
    d.reset_api_calls();
    let (status, v) = app.post_json("/settle", &body).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["success"], false);
    assert!(d.mempool().is_empty(), "nothing was submitted");
    assert_eq!(d.api_calls().get("POST /tx/submit"), None);
    // And the provider refuses a direct submission without sending it.
    let tx = base64_tx(&body);
    assert!(matches!(
        app.state.chain.submit(&tx).await,
        x402_facilitator::chain::SubmitOutcome::Unknown(m) if m.starts_with("not sent")
    ));
    assert_eq!(d.api_calls().get("POST /tx/submit"), None);

    // Back on the right network, it is proven again by the next probe.
    d.set_network_magic(1);
    let (_, h) = app.get_json("/health").await;
    assert_eq!(h["dependencies"]["chain"]["status"], "up", "{h}");
    let (status, v) = app.post_json("/verify", &body).await;
    assert_eq!((status, &v["isValid"]), (200, &json!(true)), "{v}");
    app.stop().await;
}

fn base64_tx(body: &Json) -> Vec<u8> {
    use base64::Engine;
    let b64 = body["paymentPayload"]["payload"]["transaction"]
        .as_str()
        .unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// /status answers from the journal and consults the chain at most once per
/// transaction per poll interval: 200 status calls in about a second cost a
/// handful of upstream requests.
#[tokio::test]
async fn two_hundred_status_calls_cost_a_handful_of_upstream_requests() {
    let (d, url) = backend(42).await;
    let app = facilitator(Network::Devnet, &url, |s| {
        s.settlement.poll_interval = std::time::Duration::from_millis(1_000);
    })
    .await;
    let req = requirements(Network::Devnet, -1);
    let (body, _) = payment(&d, Network::Devnet, 7, &req);
    let (status, v) = app.post_json("/settle", &body).await;
    assert_eq!((status, &v["success"]), (200, &json!(true)), "{v}");
    let tx = v["transaction"].as_str().unwrap().to_owned();
    d.reset_api_calls();
    let started = std::time::Instant::now();
    let path = format!("/status/{tx}");
    for _ in 0..20 {
        let calls = (0..10).map(|_| app.get_json(&path));
        for (code, st) in futures::future::join_all(calls).await {
            assert_eq!(code, 200, "{st}");
            assert_eq!(st["transaction"], tx);
        }
    }
    let elapsed = started.elapsed();
    let upstream = d.api_call_count();
    // At most one evidence lookup (`/txs/{id}` and `/mempool/{id}`) per
    // started second of the burst.
    let seconds = elapsed.as_secs() + 1;
    assert!(
        upstream <= 2 * seconds + 2,
        "200 /status calls in {elapsed:?} cost {upstream} upstream requests: {:?}",
        d.api_calls()
    );
    app.stop().await;
}
