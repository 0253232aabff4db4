//! The devnet's Blockfrost-compatible HTTP API, served as the application
//! serves it (nested under `/devnet`, on 127.0.0.1:0):
//!
//! * status codes, error bodies and field types checked from Rust;
//! * every answer validated against Blockfrost's official OpenAPI schemas by
//!   `interop/openapi-conformance.mjs` (npm `@blockfrost/openapi` + Ajv);
//! * a payment built, signed and submitted by lucid-evolution through its own
//!   Blockfrost provider (`interop/lucid-payment.mjs`).
//!
//! The Node tests need `npm ci --prefix interop` once. Without Node or
//! `interop/node_modules` they are skipped with a loud message, unless
//! `X402_INTEROP_REQUIRED=1` is set (CI sets it), which turns the skip into a failure.

use std::path::PathBuf;
use std::time::Duration;

use crate::devnet_support::*;
use serde_json::{Value as Json, json};
use x402_facilitator::cardano::{AssetId, TxId, UtxoRef, Value};
use x402_facilitator::chain::devnet::Devnet;
use x402_facilitator::chain::{ChainProvider, Evidence};

async fn get(url: &str) -> (u16, Json) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    assert!(
        res.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{url}"
    );
    (status, res.json().await.unwrap())
}

async fn post_cbor(url: &str, body: Vec<u8>, content_type: &str) -> (u16, Json) {
    let res = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn assert_error(body: &Json, status: u16) {
    assert_eq!(body["status_code"], json!(status), "{body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn blockfrost_endpoints_answer_with_blockfrost_shapes() {
    let d = Devnet::manual(&settings(1_000, vec![])).unwrap();
    let base = serve(d.clone()).await;
    let api = format!("{base}/api/v0");

    for path in ["", "/"] {
        let (s, b) = get(&format!("{api}{path}")).await;
        assert_eq!(s, 200);
        assert!(b["url"].is_string() && b["version"].is_string());
    }
    assert_eq!(
        get(&format!("{api}/health")).await,
        (200, json!({"is_healthy": true}))
    );
    let (_, g) = get(&format!("{api}/genesis")).await;
    assert_eq!(g["system_start"], json!(d.start_time()));
    assert_eq!(g["slot_length"], json!(1));
    assert_eq!(g["network_magic"], json!(42));
    assert!(g["max_lovelace_supply"].is_string());

    let (_, p) = get(&format!("{api}/epochs/latest/parameters")).await;
    assert_eq!(p["min_fee_a"], json!(44));
    assert_eq!(p["min_fee_b"], json!(155_381));
    assert_eq!(p["coins_per_utxo_size"], json!("4310"));
    assert_eq!(p["key_deposit"], json!("2000000"));
    assert_eq!(p["max_val_size"], json!("5000"));
    assert!(p["cost_models"]["PlutusV3"].is_object());
    let (_, e) = get(&format!("{api}/epochs/latest")).await;
    assert_eq!(e["epoch"], json!(0));
    assert!(e["active_stake"].is_null() && e["output"].is_string());

    // Faucet, then history lookups.
    let buyer = key(1);
    let unit = AssetId {
        policy: [7; 28],
        name: b"USDM".to_vec(),
    };
    let faucet = reqwest::Client::new()
        .post(format!("{base}/faucet"))
        .json(&json!({"address": addr(&buyer), "lovelace": "20000000", "assets": {unit.dotted(): "100"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(faucet.status(), 200);
    let f: Json = faucet.json().await.unwrap();
    assert_eq!(f["outputIndex"], json!(0));
    let funded = UtxoRef::new(f["txHash"].as_str().unwrap().parse().unwrap(), 0);

    let (s, list) = get(&format!("{api}/addresses/{}/utxos", addr(&buyer))).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let u = &list[0];
    assert_eq!(u["tx_hash"], json!(funded.tx_id.to_hex()));
    assert_eq!(
        (u["output_index"].clone(), u["tx_index"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(
        u["amount"],
        json!([{"unit": "lovelace", "quantity": "20000000"}, {"unit": unit.unit(), "quantity": "100"}])
    );
    assert!(
        u["data_hash"].is_null()
            && u["inline_datum"].is_null()
            && u["reference_script_hash"].is_null()
    );
    assert_eq!(u["block"], json!(hex::encode(d.tip().await.unwrap().hash)));

    // Never used -> 404; malformed or mainnet address, bad paging -> 400.
    let (s, b) = get(&format!("{api}/addresses/{}/utxos", addr(&key(9)))).await;
    assert_eq!(s, 404);
    assert_error(&b, 404);
    for q in [
        format!("/addresses/{}/utxos?count=101", addr(&buyer)),
        format!("/addresses/{}/utxos?count=0", addr(&buyer)),
        format!("/addresses/{}/utxos?page=x", addr(&buyer)),
        format!("/addresses/{}/utxos?order=sideways", addr(&buyer)),
        "/addresses/addr_test1xyz/utxos".to_string(),
        format!(
            "/addresses/{}/utxos",
            key(1).enterprise_address(x402_facilitator::cardano::Network::Mainnet)
        ),
        "/txs/ABC".to_string(),
    ] {
        let (s, b) = get(&format!("{api}{q}")).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert_error(&b, 400);
    }

    // Submit: wrong content type, garbage, valid, double spend.
    let tx = pay(
        &buyer,
        funded,
        {
            let mut v = Value::lovelace(20_000_000);
            v.checked_add_asset(unit.clone(), 100).unwrap();
            v
        },
        addr_bytes(&key(2)),
        3 * ADA,
    );
    let (s, b) = post_cbor(
        &format!("{api}/tx/submit"),
        tx.tx.clone(),
        "application/json",
    )
    .await;
    assert_eq!(s, 400);
    assert_error(&b, 400);
    let (s, b) = post_cbor(
        &format!("{api}/tx/submit"),
        b"junk".to_vec(),
        "application/cbor",
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("DeserialiseFailure"),
        "{b}"
    );
    let (s, b) = post_cbor(
        &format!("{api}/tx/submit"),
        tx.tx.clone(),
        "application/cbor",
    )
    .await;
    assert_eq!((s, b), (200, json!(tx.tx_id.to_hex())));
    let (s, b) = post_cbor(
        &format!("{api}/tx/submit"),
        tx.tx.clone(),
        "application/cbor",
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        b["message"].as_str().unwrap().contains("BadInputsUTxO"),
        "{b}"
    );

    // In the mempool: /mempool finds it, /txs does not yet.
    let (s, m) = get(&format!("{api}/mempool/{}", tx.tx_id)).await;
    assert_eq!(s, 200);
    assert_eq!(m["tx"]["hash"], json!(tx.tx_id.to_hex()));
    assert_eq!(m["inputs"][0]["tx_hash"], json!(funded.tx_id.to_hex()));
    assert_eq!(get(&format!("{api}/txs/{}", tx.tx_id)).await.0, 404);

    let tip = d.produce_block();
    let (s, t) = get(&format!("{api}/txs/{}", tx.tx_id)).await;
    assert_eq!(s, 200);
    assert_eq!(t["block_height"], json!(tip.height));
    assert_eq!(t["block"], json!(hex::encode(tip.hash)));
    assert_eq!(t["slot"], json!(tip.slot));
    assert_eq!(t["fees"], json!(tx.fee.to_string()));
    assert_eq!(t["size"], json!(tx.tx.len()));
    assert_eq!(t["index"], json!(0));
    assert!(t["invalid_before"].is_null() && t["invalid_hereafter"].is_null());
    assert_eq!(
        t["output_amount"][1],
        json!({"unit": unit.unit(), "quantity": "100"})
    );

    let (_, u) = get(&format!("{api}/txs/{}/utxos", tx.tx_id)).await;
    assert_eq!(u["inputs"][0]["tx_hash"], json!(funded.tx_id.to_hex()));
    assert_eq!(u["inputs"][0]["address"], json!(addr(&buyer)));
    assert_eq!(u["outputs"][0]["address"], json!(addr(&key(2))));
    assert_eq!(u["outputs"][0]["consumed_by_tx"], Json::Null);
    let (_, fu) = get(&format!("{api}/txs/{}/utxos", funded.tx_id)).await;
    assert_eq!(fu["outputs"][0]["consumed_by_tx"], json!(tx.tx_id.to_hex()));
    let (_, c) = get(&format!("{api}/txs/{}/cbor", tx.tx_id)).await;
    assert_eq!(c["cbor"], json!(hex::encode(&tx.tx)));

    // Blocks by height and by hash; confirmations and links.
    let (s, b1) = get(&format!("{api}/blocks/1")).await;
    assert_eq!(s, 200);
    assert_eq!(
        (b1["height"].clone(), b1["tx_count"].clone()),
        (json!(1), json!(1)),
        "the faucet block"
    );
    let (_, by_hash) = get(&format!("{api}/blocks/{}", b1["hash"].as_str().unwrap())).await;
    assert_eq!(by_hash, b1);
    assert_eq!(b1["confirmations"], json!(tip.height - 1));
    assert_eq!(b1["next_block"], json!(hex::encode(tip.hash)));
    assert_eq!(
        get(&format!("{api}/blocks/{}", tip.height + 1)).await.0,
        404
    );
    assert_eq!(get(&format!("{api}/blocks/nope")).await.0, 400);

    // UTxOs holding one asset.
    let (s, with_unit) = get(&format!(
        "{api}/addresses/{}/utxos/{}",
        addr(&buyer),
        unit.unit()
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(with_unit.as_array().unwrap().len(), 1);
    assert_eq!(
        with_unit[0]["tx_hash"],
        json!(tx.tx_id.to_hex()),
        "the change holds the tokens"
    );
    let other = AssetId {
        policy: [8; 28],
        name: vec![],
    };
    assert_eq!(
        get(&format!(
            "{api}/addresses/{}/utxos/{}",
            addr(&buyer),
            other.unit()
        ))
        .await,
        (200, json!([]))
    );

    let (_, blk) = get(&format!("{api}/blocks/latest")).await;
    assert_eq!(blk["height"], json!(tip.height));
    assert_eq!(blk["tx_count"], json!(1));
    assert_eq!(blk["fees"], json!(tx.fee.to_string()));
    assert!(blk["previous_block"].is_string() && blk["next_block"].is_null());

    // The spent address still exists (200, empty of that UTxO); paging and order.
    let (s, list) = get(&format!("{api}/addresses/{}/utxos", addr(&buyer))).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "only the change is left");
    d.fund(&addr(&buyer), Value::lovelace(ADA)).unwrap();
    let (_, asc) = get(&format!(
        "{api}/addresses/{}/utxos?count=1&page=1",
        addr(&buyer)
    ))
    .await;
    let (_, desc) = get(&format!(
        "{api}/addresses/{}/utxos?count=1&page=1&order=desc",
        addr(&buyer)
    ))
    .await;
    assert_eq!(asc[0]["tx_hash"], json!(tx.tx_id.to_hex()));
    assert_ne!(asc[0]["tx_hash"], desc[0]["tx_hash"]);
    let (s, past) = get(&format!(
        "{api}/addresses/{}/utxos?count=1&page=3",
        addr(&buyer)
    ))
    .await;
    assert_eq!((s, past), (200, json!([])));

    // Faucet errors and unknown paths.
    for bad in [
        json!({"address": "nope", "lovelace": "1"}),
        json!({"address": addr(&buyer), "lovelace": "x"}),
        json!({"address": addr(&buyer)}),
        json!({"address": addr(&buyer), "lovelace": "1", "assets": {"zz": "1"}}),
    ] {
        let res = reqwest::Client::new()
            .post(format!("{base}/faucet"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        assert_error(&res.json().await.unwrap(), 400);
    }
    let (s, b) = get(&format!("{api}/nonexistent/path")).await;
    assert_eq!(s, 404);
    assert_error(&b, 404);
}

#[tokio::test]
async fn faucet_route_is_absent_when_disabled() {
    let d = Devnet::manual(&settings(1_000, vec![])).unwrap();
    let app = axum::Router::new().nest(
        "/devnet",
        x402_facilitator::chain::devnet::api::router(d, false),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/devnet/faucet"))
        .json(&json!({"address": addr(&key(1)), "lovelace": "1000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

// ---------------------------------------------------------------------------
// Node-driven interop
// ---------------------------------------------------------------------------

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// `true` when Node and `interop/node_modules` are there; otherwise say so loudly
/// (and fail if the environment requires the interop tests).
fn node_ready(test: &str) -> bool {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let modules = interop_dir()
        .join("node_modules")
        .join("@blockfrost")
        .join("openapi")
        .exists()
        && interop_dir()
            .join("node_modules")
            .join("@lucid-evolution")
            .join("lucid")
            .exists();
    if node && modules {
        return true;
    }
    let why = if node {
        "interop/node_modules is missing: run `npm ci --prefix interop`"
    } else {
        "node is not installed"
    };
    if std::env::var("X402_INTEROP_REQUIRED").is_ok_and(|v| v == "1") {
        panic!("{test}: {why} (X402_INTEROP_REQUIRED=1)");
    }
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

/// Run `node interop/<script> <args>` with a time limit; returns stdout on success.
async fn run_node(script: &str, args: &[&str], limit: Duration) -> String {
    let child = tokio::process::Command::new("node")
        .arg(interop_dir().join(script))
        .args(args)
        .current_dir(interop_dir())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran past {limit:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test]
async fn openapi_conformance_of_real_answers() {
    if !node_ready("openapi_conformance_of_real_answers") {
        return;
    }
    let d = Devnet::manual(&settings(1_000, vec![])).unwrap();
    let base = serve(d.clone()).await;
    let buyer = key(1);
    let mut v = Value::lovelace(40 * ADA);
    v.checked_add_asset(
        AssetId {
            policy: [7; 28],
            name: b"USDM".to_vec(),
        },
        100,
    )
    .unwrap();
    let a = d.fund(&addr(&buyer), v.clone()).unwrap();
    let b = d.fund(&addr(&buyer), Value::lovelace(10 * ADA)).unwrap();
    let c = d.fund(&addr(&buyer), Value::lovelace(10 * ADA)).unwrap();
    let confirmed = pay(&buyer, a, v, addr_bytes(&key(2)), 2 * ADA);
    d.submit_tx(&confirmed.tx).unwrap();
    d.produce_block();
    let waiting = pay(
        &buyer,
        b,
        Value::lovelace(10 * ADA),
        addr_bytes(&key(2)),
        2 * ADA,
    );
    d.submit_tx(&waiting.tx).unwrap();
    let to_submit = pay(
        &buyer,
        c,
        Value::lovelace(10 * ADA),
        addr_bytes(&key(3)),
        2 * ADA,
    );
    let fixture = json!({
        "address": addr(&buyer),
        "unit": AssetId { policy: [7; 28], name: b"USDM".to_vec() }.unit(),
        "blockHash": hex::encode(d.with_ledger(|l| l.block(2).unwrap().hash)),
        "unusedAddress": addr(&key(99)),
        "confirmedTx": confirmed.tx_id.to_hex(),
        "mempoolTx": waiting.tx_id.to_hex(),
        "submitCbor": hex::encode(&to_submit.tx),
    });
    let out = run_node(
        "openapi-conformance.mjs",
        &[&base, &fixture.to_string()],
        Duration::from_secs(60),
    )
    .await;
    println!("{out}");
    assert!(out.contains(" 0 failed"), "{out}");
    assert_eq!(
        d.evidence(&to_submit.tx_id).await.unwrap(),
        Evidence::Mempool
    );
}

#[tokio::test]
async fn lucid_evolution_pays_through_the_devnet_api() {
    if !node_ready("lucid_evolution_pays_through_the_devnet_api") {
        return;
    }
    let d = Devnet::start(&settings(100, vec![])).unwrap();
    let base = serve(d.clone()).await;
    let out = run_node("lucid-payment.mjs", &[&base], Duration::from_secs(90)).await;
    let last: Json = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let tx_id: TxId = last["txHash"].as_str().unwrap().parse().unwrap();

    // It landed in a block, as /txs/{hash} and the ledger both say.
    let res = reqwest::get(format!("{base}/api/v0/txs/{tx_id}"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let t: Json = res.json().await.unwrap();
    assert_eq!(t["block_height"], last["blockHeight"]);
    assert!(matches!(
        d.evidence(&tx_id).await.unwrap(),
        Evidence::Included { .. }
    ));
    assert_eq!(d.submissions(&tx_id), 1);
    let paid = d
        .utxos(&[UtxoRef::new(tx_id, 0), UtxoRef::new(tx_id, 1)])
        .await;
    let recipient =
        x402_facilitator::cardano::address::decode_bech32(last["recipient"].as_str().unwrap())
            .unwrap()
            .1;
    assert!(
        paid.iter().any(|s| matches!(s, x402_facilitator::cardano::UtxoState::Unspent(i) if i.address == recipient && i.value == Value::lovelace(3 * ADA))),
        "{paid:?}"
    );
    d.shutdown().await;
}
