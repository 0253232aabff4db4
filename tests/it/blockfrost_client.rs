//! The Blockfrost client against (1) the devnet's own Blockfrost-compatible
//! API, where it must answer exactly what the devnet provider answers
//! (parity), and (2) misbehaving local HTTP servers, where it must never turn
//! garbage or a failure into a verdict.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::devnet_support::*;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use x402_facilitator::buyer::builder;
use x402_facilitator::cardano::{Network, TxId, UtxoRef, UtxoState, Value};
use x402_facilitator::chain::blockfrost::BlockfrostProvider;
use x402_facilitator::chain::devnet::Devnet;
use x402_facilitator::chain::{ChainProvider, Evidence, SubmitOutcome};
use x402_facilitator::config::{BlockfrostSettings, CacheSettings, Secret};

fn bf_settings(url: &str) -> BlockfrostSettings {
    BlockfrostSettings {
        project_id: None,
        url: Some(url.to_owned()),
        connect_timeout: std::time::Duration::from_millis(300),
        request_timeout: std::time::Duration::from_millis(400),
        max_retries: 2,
        retry_base_delay: std::time::Duration::from_millis(10),
        // No background reads during a test; tests read the tip themselves.
        tip_refresh: std::time::Duration::from_millis(600_000),
        ..BlockfrostSettings::default()
    }
}

fn no_cache() -> CacheSettings {
    CacheSettings {
        utxo_ttl: std::time::Duration::from_secs(0),
        protocol_params_ttl: std::time::Duration::from_secs(300),
        ..CacheSettings::default()
    }
}

/// A comparable form of a UTxO state (the `Unknown` text differs by backend).
fn kind(s: &UtxoState) -> String {
    match s {
        UtxoState::Unspent(i) => format!("unspent {} {:?}", hex::encode(&i.address), i.value),
        UtxoState::Spent => "spent".into(),
        UtxoState::Unknown(_) => "unknown".into(),
    }
}

fn kinds(v: &[UtxoState]) -> Vec<String> {
    v.iter().map(kind).collect()
}

// ---------------------------------------------------------------------------
// Parity with the devnet provider
// ---------------------------------------------------------------------------

#[tokio::test]
async fn client_over_devnet_api_answers_like_the_devnet() {
    let d = Devnet::manual(&settings(1_000, vec![])).unwrap();
    let base = serve(d.clone()).await;
    let bf = BlockfrostProvider::new(
        Network::Devnet,
        &bf_settings(&format!("{base}/api/v0")),
        &no_cache(),
    )
    .await
    .unwrap();
    let dev: &dyn ChainProvider = &*d;
    let cli: &dyn ChainProvider = &bf;

    // Clock, tip and parameters.
    let now = d.start_time() + 1_000;
    assert_eq!(cli.slot_at(now), dev.slot_at(now));
    assert_eq!(cli.slot_at(d.start_time()), 0);
    assert_eq!(cli.tip().await.unwrap(), dev.tip().await.unwrap());
    assert_eq!(
        cli.protocol_params().await.unwrap(),
        dev.protocol_params().await.unwrap()
    );

    // A funded buyer, one payment in a block, one in the mempool, one rejected.
    let buyer = key(1);
    let mut v = Value::lovelace(30 * ADA);
    v.checked_add_asset(
        x402_facilitator::cardano::AssetId {
            policy: [5; 28],
            name: b"tok".to_vec(),
        },
        9,
    )
    .unwrap();
    let funded = d.fund(&addr(&buyer), v.clone()).unwrap();
    let spent_src = d.fund(&addr(&buyer), Value::lovelace(10 * ADA)).unwrap();
    let confirmed = pay(
        &buyer,
        spent_src,
        Value::lovelace(10 * ADA),
        addr_bytes(&key(2)),
        2 * ADA,
    );
    assert_eq!(cli.submit(&confirmed.tx).await, SubmitOutcome::Accepted);
    assert_eq!(d.submissions(&confirmed.tx_id), 1);
    assert_eq!(
        cli.evidence(&confirmed.tx_id).await.unwrap(),
        Evidence::Mempool
    );
    assert_eq!(
        dev.evidence(&confirmed.tx_id).await.unwrap(),
        Evidence::Mempool
    );
    d.produce_block();

    let pending_src = d.fund(&addr(&buyer), Value::lovelace(10 * ADA)).unwrap();
    let pending = pay(
        &buyer,
        pending_src,
        Value::lovelace(10 * ADA),
        addr_bytes(&key(3)),
        2 * ADA,
    );
    assert_eq!(dev.submit(&pending.tx).await, SubmitOutcome::Accepted);
    d.produce_block();
    let waiting_src = d.fund(&addr(&buyer), Value::lovelace(10 * ADA)).unwrap();
    let waiting = pay(
        &buyer,
        waiting_src,
        Value::lovelace(10 * ADA),
        addr_bytes(&key(3)),
        2 * ADA,
    );
    assert_eq!(cli.submit(&waiting.tx).await, SubmitOutcome::Accepted);

    let refs = vec![
        funded,
        spent_src,
        UtxoRef::new(confirmed.tx_id, 0),
        UtxoRef::new(confirmed.tx_id, 1),
        UtxoRef::new(confirmed.tx_id, 7),
        pending_src,
        UtxoRef::new(pending.tx_id, 0),
        waiting_src,
        UtxoRef::new(waiting.tx_id, 0),
        UtxoRef::new(TxId([0xab; 32]), 0),
        funded, // duplicates are answered in place
    ];
    let from_dev = dev.utxos(&refs).await;
    let from_cli = cli.utxos(&refs).await;
    // Alike, but for an output of a transaction the chain never saw: the
    // ledger knows it is not on chain; through the API it is a 404, which a
    // Blockfrost client cannot tell from indexer lag.
    let (mut k_cli, mut k_dev) = (kinds(&from_cli), kinds(&from_dev));
    assert_eq!(
        (k_cli.remove(9), k_dev.remove(9)),
        ("unknown".to_owned(), "spent".to_owned())
    );
    assert_eq!(k_cli, k_dev);
    // And the expected verdicts, spelled out.
    let expect = [
        "unspent", "spent", "unspent", "unspent", "spent", "spent", "unspent", "unspent",
        "unknown", "unknown", "unspent",
    ];
    for (i, (k, e)) in kinds(&from_cli).iter().zip(expect).enumerate() {
        assert!(k.starts_with(e), "ref #{i}: {k} vs {e}");
    }

    // Evidence in every state (depth from the latest tip).
    bf.refresh_tip().await.unwrap();
    for id in [
        confirmed.tx_id,
        pending.tx_id,
        waiting.tx_id,
        funded.tx_id,
        TxId([0xcd; 32]),
    ] {
        assert_eq!(
            cli.evidence(&id).await.unwrap(),
            dev.evidence(&id).await.unwrap(),
            "{id}"
        );
    }
    assert!(matches!(
        cli.evidence(&confirmed.tx_id).await.unwrap(),
        Evidence::Included { depth: 3, .. }
    ));

    // Rejections read the same through both back ends.
    let double = pay(
        &buyer,
        spent_src,
        Value::lovelace(10 * ADA),
        addr_bytes(&key(4)),
        3 * ADA,
    );
    let cheap = builder::sign_body(
        &builder::TxBody {
            inputs: vec![funded],
            outputs: vec![builder::OutputSpec {
                address: addr_bytes(&key(2)),
                value: v.clone(),
            }],
            fee: 0,
            ..Default::default()
        },
        std::slice::from_ref(&buyer),
    );
    for tx in [
        &double.tx,
        &cheap.tx,
        &confirmed.tx,
        &b"garbage"[..].to_vec(),
    ] {
        let c = cli.submit(tx).await;
        let dv = dev.submit(tx).await;
        assert!(matches!(c, SubmitOutcome::Rejected(_)), "{c:?}");
        assert_eq!(c, dv);
    }
    assert_eq!(
        cli.submit(&double.tx).await,
        SubmitOutcome::Rejected("BadInputsUTxO".into())
    );
    assert_eq!(d.submissions(&confirmed.tx_id), 3);

    // After a block both agree on the waiting transaction too.
    d.produce_block();
    let (mut k_cli, mut k_dev) = (
        kinds(&cli.utxos(&refs).await),
        kinds(&dev.utxos(&refs).await),
    );
    assert_eq!(
        (k_cli.remove(9), k_dev.remove(9)),
        ("unknown".to_owned(), "spent".to_owned())
    );
    assert_eq!(k_cli, k_dev);
    // The client's tip is the background copy; read it now.
    bf.refresh_tip().await.unwrap();
    assert_eq!(cli.tip().await.unwrap(), dev.tip().await.unwrap());
    assert!(matches!(
        cli.health().await.status,
        x402_facilitator::chain::DependencyStatus::Up
    ));
}

#[tokio::test]
async fn unspent_answers_are_cached_until_invalidated() {
    let d = Devnet::manual(&settings(1_000, vec![])).unwrap();
    let base = serve(d.clone()).await;
    let cache = CacheSettings {
        utxo_ttl: std::time::Duration::from_secs(60),
        protocol_params_ttl: std::time::Duration::from_secs(300),
        ..CacheSettings::default()
    };
    let bf = BlockfrostProvider::new(
        Network::Devnet,
        &bf_settings(&format!("{base}/api/v0")),
        &cache,
    )
    .await
    .unwrap();
    let buyer = key(1);
    let src = d.fund(&addr(&buyer), Value::lovelace(10 * ADA)).unwrap();
    assert!(matches!(bf.utxos(&[src]).await[0], UtxoState::Unspent(_)));
    let tx = pay(
        &buyer,
        src,
        Value::lovelace(10 * ADA),
        addr_bytes(&key(2)),
        2 * ADA,
    );
    // Spent behind the client's back: the cache still says unspent (that is what a TTL means)...
    d.submit_tx(&tx.tx).unwrap();
    d.produce_block();
    assert!(matches!(bf.utxos(&[src]).await[0], UtxoState::Unspent(_)));
    // ...until this service says it spent it.
    bf.invalidate(&[src]);
    assert_eq!(bf.utxos(&[src]).await[0], UtxoState::Spent);
}

// ---------------------------------------------------------------------------
// Misbehaving servers
// ---------------------------------------------------------------------------

/// Preprod's `/genesis` (what these servers claim to be).
fn preprod_genesis() -> serde_json::Value {
    json!({"network_magic": 1, "slot_length": 1, "system_start": 1_654_041_600})
}

/// Serve `routes` (paths under `/api/v0`) on 127.0.0.1:0, with a preprod
/// `/genesis` added so that the client's network is proven; returns the base URL.
async fn spawn(routes: Router) -> String {
    spawn_raw(routes.route("/genesis", get(|| async { axum::Json(preprod_genesis()) }))).await
}

/// [`spawn`] without the added `/genesis`.
async fn spawn_raw(routes: Router) -> String {
    let app = Router::new().nest("/api/v0", routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}/api/v0")
}

async fn client(base: &str) -> BlockfrostProvider {
    // Preprod: when these servers cannot tell the slot clock, its Shelley anchor is used.
    BlockfrostProvider::new(Network::Preprod, &bf_settings(base), &no_cache())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_custom_url_supplies_the_slot_clock() {
    let routes = Router::new().route(
        "/blocks/latest",
        get(|| async {
            axum::Json(json!({"slot": 1000, "time": 1_700_000_000, "height": 5, "hash": TX}))
        }),
    );
    let base = spawn(routes).await;
    let bf = client(&base).await;
    assert_eq!(bf.slot_at(1_700_000_010), 1010);
    // Nothing to ask: a public network falls back to its anchor, a devnet cannot start.
    let empty = spawn_raw(Router::new()).await;
    assert_eq!(client(&empty).await.slot_at(1_655_769_600), 86_400);
    assert!(
        BlockfrostProvider::new(Network::Devnet, &bf_settings(&empty), &no_cache())
            .await
            .is_err()
    );
    // Hosted Blockfrost needs no request for its clock.
    let hosted = BlockfrostProvider::new(
        Network::Mainnet,
        &BlockfrostSettings::default(),
        &no_cache(),
    )
    .await
    .unwrap();
    assert_eq!(
        hosted.base_url(),
        "https://cardano-mainnet.blockfrost.io/api/v0"
    );
    assert_eq!(hosted.slot_at(1_596_059_091), 4_492_800);
}

const TX: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const ADDR: &str = "addr_test1vz09v9yfxguvlp0zsnrpa3tdtm7el8xufp3m5lsm7qxzclgmzkket";

fn tx_ref(ix: u32) -> UtxoRef {
    UtxoRef::new(TX.parse().unwrap(), ix)
}

fn utxos_body(consumed: serde_json::Value) -> serde_json::Value {
    json!({
        "hash": TX,
        "inputs": [],
        "outputs": [{
            "address": ADDR,
            "amount": [{"unit": "lovelace", "quantity": "5000000"}],
            "output_index": 0,
            "data_hash": null, "inline_datum": null, "collateral": false, "reference_script_hash": null,
            "consumed_by_tx": consumed
        }]
    })
}

type Hits = Arc<AtomicU32>;

fn hits() -> Hits {
    Arc::new(AtomicU32::new(0))
}

fn bf_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    (
        status,
        axum::Json(json!({"status_code": code, "error": "x", "message": "y"})),
    )
        .into_response()
}

#[tokio::test]
async fn rate_limited_then_success_is_retried() {
    let h = hits();
    let routes = Router::new()
        .route(
            "/txs/{hash}/utxos",
            get(|State(h): State<Hits>| async move {
                if h.fetch_add(1, Ordering::SeqCst) < 2 {
                    bf_error(429)
                } else {
                    axum::Json(utxos_body(json!(null))).into_response()
                }
            }),
        )
        .with_state(h.clone());
    let bf = client(&spawn(routes).await).await;
    let s = bf.utxos(&[tx_ref(0)]).await;
    assert!(
        matches!(&s[0], UtxoState::Unspent(i) if i.value == Value::lovelace(5_000_000)),
        "{s:?}"
    );
    assert_eq!(h.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn repeated_server_errors_are_unknown_or_chain_errors() {
    let h = hits();
    let routes = Router::new().fallback(|State(h): State<Hits>| async move {
        h.fetch_add(1, Ordering::SeqCst);
        bf_error(500)
    });
    let bf = client(&spawn(routes.with_state(h.clone())).await).await;
    h.store(0, Ordering::SeqCst); // construction asked /genesis for the slot clock
    assert!(matches!(
        bf.utxos(&[tx_ref(0)]).await[0],
        UtxoState::Unknown(_)
    ));
    assert_eq!(h.load(Ordering::SeqCst), 3, "1 try + 2 retries");
    assert!(bf.tip().await.is_err());
    assert!(bf.protocol_params().await.is_err());
    assert!(bf.evidence(&tx_ref(0).tx_id).await.is_err());
    assert!(matches!(
        bf.health().await.status,
        x402_facilitator::chain::DependencyStatus::Down
    ));
    // A 500 on submit may hide an accepted transaction: unknown, and never sent twice.
    h.store(0, Ordering::SeqCst);
    assert!(matches!(
        bf.submit(b"\x84").await,
        SubmitOutcome::Unknown(_)
    ));
    assert_eq!(h.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn timeouts_are_unknown_and_a_timed_out_submit_is_not_resent() {
    let h = hits();
    let routes = Router::new()
        .fallback(|State(h): State<Hits>| async move {
            h.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(3)).await;
            axum::Json(json!("late")).into_response()
        })
        .with_state(h.clone());
    let bf = client(&spawn(routes).await).await;
    h.store(0, Ordering::SeqCst); // construction asked /genesis for the slot clock
    let started = std::time::Instant::now();
    assert!(matches!(
        bf.submit(b"\x84").await,
        SubmitOutcome::Unknown(_)
    ));
    assert_eq!(
        h.load(Ordering::SeqCst),
        1,
        "a submit that may have arrived is never re-sent"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        bf.utxos(&[tx_ref(0)]).await[0],
        UtxoState::Unknown(_)
    ));
    assert!(bf.tip().await.is_err());
}

#[tokio::test]
async fn malformed_and_truncated_bodies_never_become_verdicts() {
    fn truncated() -> Response {
        let chunks: Vec<Result<&'static str, std::io::Error>> = vec![
            Ok("{\"hash\":\"11\",\"outputs\":[{\"address\":"),
            Err(std::io::Error::other("cut")),
        ];
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from_stream(futures::stream::iter(chunks)))
            .unwrap()
    }
    let h = hits();
    let routes = Router::new()
        .route("/txs/{hash}/utxos", get(|| async { truncated() }))
        .route(
            "/blocks/latest",
            get(|| async { (StatusCode::OK, "{\"slot\": 5, \"height\": ") }),
        )
        .route(
            "/epochs/latest/parameters",
            get(|| async { axum::Json(json!({"min_fee_a": "not a number"})) }),
        )
        .route(
            "/txs/{hash}",
            get(|| async { axum::Json(json!({"block": "zz", "block_height": 1, "slot": 2})) }),
        )
        .route(
            "/tx/submit",
            post(|State(h): State<Hits>| async move {
                h.fetch_add(1, Ordering::SeqCst);
                truncated()
            }),
        )
        .with_state(h.clone());
    let bf = client(&spawn(routes).await).await;
    assert!(matches!(
        bf.utxos(&[tx_ref(0)]).await[0],
        UtxoState::Unknown(_)
    ));
    assert!(bf.tip().await.is_err());
    assert!(bf.protocol_params().await.is_err());
    assert!(bf.evidence(&tx_ref(0).tx_id).await.is_err());
    assert!(matches!(
        bf.submit(b"\x84").await,
        SubmitOutcome::Unknown(_)
    ));
    assert_eq!(h.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let routes = Router::new().route(
        "/txs/{hash}/utxos",
        get(|| async { (StatusCode::OK, vec![b' '; 9 * 1024 * 1024]) }),
    );
    let bf = client(&spawn(routes).await).await;
    assert!(matches!(
        bf.utxos(&[tx_ref(0)]).await[0],
        UtxoState::Unknown(_)
    ));
}

#[tokio::test]
async fn odd_but_complete_answers_are_read_conservatively() {
    // Bad quantity, missing lovelace, duplicated index, collateral output, a
    // server without consumed_by_tx (fallback to the address listing).
    let routes = Router::new()
        .route(
            "/txs/{hash}/utxos",
            get(|| async {
                let out = |ix: u32, amount: serde_json::Value, extra: serde_json::Value| {
                    let mut o = json!({"address": ADDR, "amount": amount, "output_index": ix, "data_hash": null, "inline_datum": null, "collateral": false, "reference_script_hash": null});
                    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
                        o.extend(e.clone());
                    }
                    o
                };
                let ada = json!([{"unit": "lovelace", "quantity": "1000000"}]);
                axum::Json(json!({"hash": TX, "inputs": [], "outputs": [
                    out(0, json!([{"unit": "lovelace", "quantity": "-1"}]), json!({"consumed_by_tx": null})),
                    out(1, json!([{"unit": "abc", "quantity": "1"}]), json!({"consumed_by_tx": null})),
                    out(2, ada.clone(), json!({"consumed_by_tx": null})),
                    out(2, ada.clone(), json!({"consumed_by_tx": null})),
                    out(3, ada.clone(), json!({"collateral": true, "consumed_by_tx": null})),
                    out(4, ada.clone(), json!({})),
                    out(5, ada.clone(), json!({})),
                    out(6, ada.clone(), json!({"consumed_by_tx": TX})),
                ]}))
            }),
        )
        .route(
            "/addresses/{address}/utxos",
            get(|| async { axum::Json(json!([{"tx_hash": TX, "output_index": 4, "address": ADDR, "amount": [], "block": "", "data_hash": null, "inline_datum": null, "reference_script_hash": null, "tx_index": 4}])) }),
        );
    let bf = client(&spawn(routes).await).await;
    let s = bf.utxos(&(0..=7).map(tx_ref).collect::<Vec<_>>()).await;
    let k = kinds(&s);
    assert_eq!(
        &k[0..4],
        &["unknown", "unknown", "unknown", "unknown"],
        "{s:?}"
    );
    assert!(k[4].starts_with("unspent"), "in the owner's listing: {s:?}");
    assert_eq!(
        k[5], "unknown",
        "not reported consumed, not listed: no verdict"
    );
    assert_eq!(k[6], "spent");
    assert_eq!(k[7], "spent", "the transaction exists without output #7");
}

#[tokio::test]
async fn submit_retries_only_what_never_reached_the_node() {
    // 425 twice then success: retried (the server refused before the node saw it).
    let h = hits();
    let routes = Router::new()
        .route(
            "/tx/submit",
            post(|State(h): State<Hits>, headers: HeaderMap| async move {
                assert_eq!(headers.get("content-type").unwrap(), "application/cbor");
                if h.fetch_add(1, Ordering::SeqCst) < 2 {
                    bf_error(425)
                } else {
                    axum::Json(json!(TX)).into_response()
                }
            }),
        )
        .with_state(h.clone());
    let bf = client(&spawn(routes).await).await;
    assert_eq!(bf.submit(b"\x84").await, SubmitOutcome::Accepted);
    assert_eq!(h.load(Ordering::SeqCst), 3);

    // 425 forever: unknown, never rejected.
    let h = hits();
    let routes = Router::new()
        .route(
            "/tx/submit",
            post(|State(h): State<Hits>| async move {
                h.fetch_add(1, Ordering::SeqCst);
                bf_error(425)
            }),
        )
        .with_state(h.clone());
    let bf = client(&spawn(routes).await).await;
    assert!(matches!(
        bf.submit(b"\x84").await,
        SubmitOutcome::Unknown(_)
    ));
    assert_eq!(h.load(Ordering::SeqCst), 3);

    // 400 is the node's verdict, with its reason; a 200 without a tx id is not an acceptance.
    let routes = Router::new()
        .route(
            "/tx/submit",
            post(|body: axum::body::Bytes| async move {
                if body.as_ref() == b"\x01" {
                    (StatusCode::BAD_REQUEST, axum::Json(json!({"status_code": 400, "error": "Bad Request", "message": "transaction submit error ShelleyTxValidationError ShelleyBasedEraConway (ApplyTxError (ConwayUtxowFailure (UtxoFailure (ValueNotConservedUTxO (MaryValue (Coin 0) (MultiAsset (fromList []))) (MaryValue (Coin 1) (MultiAsset (fromList []))))) :| []))"}))).into_response()
                } else {
                    (StatusCode::OK, "\"oops\"").into_response()
                }
            }),
        );
    let bf = client(&spawn(routes).await).await;
    assert_eq!(
        bf.submit(b"\x01").await,
        SubmitOutcome::Rejected("ValueNotConservedUTxO".into())
    );
    assert!(matches!(
        bf.submit(b"\x02").await,
        SubmitOutcome::Unknown(_)
    ));

    // Nobody listening: connect errors are retried, then unknown.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bf = client(&format!("http://127.0.0.1:{port}/api/v0")).await;
    assert!(matches!(
        bf.submit(b"\x84").await,
        SubmitOutcome::Unknown(_)
    ));
    assert!(matches!(
        bf.utxos(&[tx_ref(0)]).await[0],
        UtxoState::Unknown(_)
    ));
}

#[tokio::test]
async fn evidence_uses_the_mempool_endpoint_and_404_means_not_seen() {
    let routes = Router::new()
        .route("/txs/{hash}", get(|| async { bf_error(404) }))
        .route(
            "/mempool/{hash}",
            get(
                |axum::extract::Path(hash): axum::extract::Path<String>| async move {
                    if hash == TX {
                        axum::Json(json!({"tx": {"hash": TX}})).into_response()
                    } else {
                        bf_error(404)
                    }
                },
            ),
        )
        .route("/txs/{hash}/utxos", get(|| async { bf_error(404) }));
    let bf = client(&spawn(routes).await).await;
    assert_eq!(
        bf.evidence(&TX.parse().unwrap()).await.unwrap(),
        Evidence::Mempool
    );
    assert_eq!(
        bf.evidence(&TxId([2; 32])).await.unwrap(),
        Evidence::NotSeen
    );
    assert!(
        matches!(bf.utxos(&[tx_ref(0)]).await[0], UtxoState::Unknown(_)),
        "404 on the tx is no verdict"
    );
}

#[tokio::test]
async fn protocol_parameters_are_fetched_once_for_a_burst_and_the_project_id_is_sent() {
    let h = hits();
    let routes = Router::new()
        .route(
            "/epochs/latest/parameters",
            get(|State(h): State<Hits>, headers: HeaderMap| async move {
                if headers.get("project_id").and_then(|v| v.to_str().ok()) != Some("preprodSECRET") {
                    return bf_error(403);
                }
                h.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                axum::Json(json!({
                    "epoch": 7, "min_fee_a": 44, "min_fee_b": 155381, "max_tx_size": 16384, "max_val_size": "5000",
                    "key_deposit": "2000000", "pool_deposit": "500000000", "protocol_major_ver": 10, "protocol_minor_ver": 0,
                    "coins_per_utxo_size": "4310", "collateral_percent": 150, "max_collateral_inputs": 3,
                    "min_fee_ref_script_cost_per_byte": 15.0
                }))
                .into_response()
            }),
        )
        .with_state(h.clone());
    let mut s = bf_settings(&spawn(routes).await);
    s.project_id = Some(Secret::new("preprodSECRET"));
    let bf = Arc::new(
        BlockfrostProvider::new(Network::Preprod, &s, &no_cache())
            .await
            .unwrap(),
    );
    assert!(!format!("{bf:?}").contains("SECRET"));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let bf = bf.clone();
            tokio::spawn(async move { bf.protocol_params().await })
        })
        .collect();
    for t in tasks {
        let p = t.await.unwrap().unwrap();
        assert_eq!(
            (
                p.epoch,
                p.min_fee_a,
                p.coins_per_utxo_size,
                p.min_fee_ref_script_cost_per_byte
            ),
            (7, 44, 4310, 15)
        );
    }
    bf.protocol_params().await.unwrap();
    assert_eq!(h.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn latency_is_recorded_per_operation() {
    // The application's own recorder (the one global recorder of this test
    // binary, shared with the HTTP tests that scrape /metrics).
    let handle = x402_facilitator::http::metrics::handle().expect("recorder installed");
    let d = Devnet::manual(&settings(1_000, vec![])).unwrap();
    let base = serve(d.clone()).await;
    let bf = BlockfrostProvider::new(
        Network::Devnet,
        &bf_settings(&format!("{base}/api/v0")),
        &no_cache(),
    )
    .await
    .unwrap();
    bf.tip().await.unwrap();
    bf.utxos(&[tx_ref(0)]).await;
    let text = handle.render();
    assert!(text.contains("chain_request_duration_seconds"), "{text}");
    assert!(
        text.contains("op=\"tip\"") && text.contains("op=\"utxos\""),
        "{text}"
    );
}
