//! Issue 6 point 7: the official x402 TypeScript SDK (npm `@x402/core`,
//! `@x402/express`, `@x402/fetch`) drives this facilitator.
//!
//! The Node side lives in `interop/x402/` (`npm ci --prefix interop/x402`):
//! `sdk_interop.mjs` uses the SDK's `HTTPFacilitatorClient`,
//! `x402ResourceServer`, Express `paymentMiddleware` and `wrapFetchWithPayment`;
//! `cardano_exact.mjs` is the minimal Cardano `exact` scheme the SDK lacks. Its
//! buyer side asks this test for a signed payment: a small HTTP endpoint here
//! (`POST /pay {requirements}`) answers `{transaction, nonce}` built by
//! [`Buyer`] from a fresh funded key, so every transaction is real and the
//! test knows each tx id and payer it must see.
//!
//! Two runs of the script against one facilitator:
//! - `basic`, blocks every 100 ms: `/supported` through the SDK, `/verify` and
//!   `/settle` through its facilitator client, then paid requests through the
//!   middleware and the fetch wrapper, on a route declaring the optional
//!   `payment-identifier` extension: one buyer sends no id, one adds an id
//!   with the SDK's helper and its payload is settled again (stored answer).
//! - `pending`, block production stopped: requirements ask for 3
//!   confirmations and the facilitator waits 1 s, so the first `/settle`
//!   answers `settlement_pending` with the tx id. Only once the journal shows
//!   that answer does the test make 4 blocks; the retry (the script calling
//!   the SDK client's `settle` again; the middleware's `x402ResourceServer` by
//!   itself) then succeeds, and the devnet saw exactly one submission.
//!
//! Without Node or `interop/x402/node_modules` the test prints a loud SKIPPED
//! and passes, unless `X402_INTEROP_REQUIRED=1` (CI sets it): then it fails.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::app::{TestApp, spawn_app_with};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};
use x402_facilitator::buyer::keys::SigningKey;
use x402_facilitator::buyer::{self, Buyer};
use x402_facilitator::cardano::{Network, TxId};
use x402_facilitator::protocol::types::PaymentRequirementsV2;
use x402_facilitator::store::SettlementState;

const NETWORK: &str = "cardano:devnet";
const BUYERS: u8 = 8;

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/x402")
}

/// Why the SDK cannot run here, if it cannot.
fn sdk_missing() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("`node` is not on PATH".into());
    }
    let marker = sdk_dir().join("node_modules/@x402/express/package.json");
    (!marker.exists()).then(|| format!("{} is missing", marker.display()))
}

/// One payment the signer built.
#[derive(Clone, Debug)]
struct Issued {
    tx_id: TxId,
    payer: String,
    transaction: String,
    nonce: String,
}

/// The buyer side's signing service: one fresh funded key per payment.
struct Signer {
    buyers: Mutex<Vec<Buyer>>,
    issued: Mutex<Vec<Issued>>,
    client: reqwest::Client,
    api: String,
}

impl Signer {
    fn issued(&self) -> Vec<Issued> {
        self.issued.lock().unwrap().clone()
    }
}

async fn pay(State(signer): State<Arc<Signer>>, body: axum::Json<Value>) -> Response {
    let fail = |status: StatusCode, msg: String| (status, msg).into_response();
    let req: PaymentRequirementsV2 = match serde_json::from_value(body["requirements"].clone()) {
        Ok(r) => r,
        Err(e) => return fail(StatusCode::BAD_REQUEST, format!("requirements: {e}")),
    };
    let Some(buyer) = signer.buyers.lock().unwrap().pop() else {
        return fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no funded buyer left".into(),
        );
    };
    let view = match buyer::chain_view(&signer.client, &signer.api, &buyer.address()).await {
        Ok(v) => v,
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (built, nonce) = match buyer.pay(&req, &view) {
        Ok(b) => b,
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let issued = Issued {
        tx_id: built.tx_id,
        payer: buyer.address(),
        transaction: base64::engine::general_purpose::STANDARD.encode(&built.tx),
        nonce: nonce.to_string(),
    };
    signer.issued.lock().unwrap().push(issued.clone());
    axum::Json(json!({
        "transaction": issued.transaction,
        "nonce": issued.nonce,
        "txId": issued.tx_id.to_hex(),
        "payer": issued.payer,
    }))
    .into_response()
}

/// Fund the buyers and serve `POST /pay`; returns the signer and its base URL.
async fn start_signer(app: &TestApp) -> (Arc<Signer>, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut buyers = Vec::new();
    for i in 0..BUYERS {
        let b = Buyer::from_seed([0x40 + i; 32], Network::Devnet);
        buyer::faucet(&client, &app.base, &b.address(), 10_000_000, &[])
            .await
            .expect("faucet funds a buyer");
        buyers.push(b);
    }
    let signer = Arc::new(Signer {
        buyers: Mutex::new(buyers),
        issued: Mutex::new(Vec::new()),
        client,
        api: app.url("/devnet/api/v0"),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/pay", post(pay))
        .with_state(signer.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (signer, url)
}

/// Run `node sdk_interop.mjs <mode>`; its stdout's last line is the result.
async fn run_sdk(mode: &str, app: &TestApp, signer_url: &str, pay_to: &str) -> Value {
    let started = Instant::now();
    let child = tokio::process::Command::new("node")
        .arg("sdk_interop.mjs")
        .arg(mode)
        .current_dir(sdk_dir())
        .env("X402_FACILITATOR_URL", &app.base)
        .env("X402_SIGNER_URL", signer_url)
        .env("X402_PAY_TO", pay_to)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("sdk_interop.mjs {mode} did not finish in 60 s"))
        .expect("node ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "--- sdk_interop.mjs {mode} ({} ms) stderr:\n{stderr}---",
        started.elapsed().as_millis()
    );
    assert!(
        out.status.success(),
        "sdk_interop.mjs {mode} failed ({}):\n{stderr}\nstdout: {stdout}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("sdk_interop.mjs {mode} printed nothing on stdout"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("result is not JSON ({e}): {line}"))
}

fn requirements(pay_to: &str, l1: i64) -> Value {
    json!({
        "scheme": "exact",
        "network": NETWORK,
        "amount": "1000000",
        "asset": "lovelace",
        "payTo": pay_to,
        "maxTimeoutSeconds": 600,
        "extra": { "confirmationPolicy": { "l1Confirmations": l1 } },
    })
}

/// The payload the SDK's client built around one of our signed transactions.
fn assert_payload(payload: &Value, req: &Value, issued: &Issued, resource_url: &str) {
    assert_eq!(payload["x402Version"], 2, "{payload}");
    assert_eq!(&payload["accepted"], req, "{payload}");
    assert_eq!(
        payload["payload"],
        json!({ "transaction": issued.transaction, "nonce": issued.nonce }),
    );
    assert_eq!(payload["resource"]["url"], resource_url, "{payload}");
}

fn assert_settled(settle: &Value, issued: &Issued, min_confirmations: u64) {
    assert_eq!(settle["success"], true, "{settle}");
    assert_eq!(settle["transaction"], issued.tx_id.to_hex(), "{settle}");
    assert_eq!(settle["network"], NETWORK, "{settle}");
    assert_eq!(settle["payer"], issued.payer.as_str(), "{settle}");
    assert!(settle.get("errorReason").is_none(), "{settle}");
    assert_eq!(settle["extra"]["status"], "confirmed", "{settle}");
    let confirmations = settle["extra"]["confirmations"].as_u64().unwrap_or(0);
    assert!(confirmations >= min_confirmations, "{settle}");
}

fn assert_pending(settle: &Value, issued: &Issued) {
    assert_eq!(settle["success"], false, "{settle}");
    assert_eq!(settle["errorReason"], "settlement_pending", "{settle}");
    assert_eq!(settle["transaction"], issued.tx_id.to_hex(), "{settle}");
    assert_eq!(settle["network"], NETWORK, "{settle}");
}

fn ops(calls: &Value) -> Vec<&str> {
    calls
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["op"].as_str()).collect())
        .unwrap_or_default()
}

/// A paid request through the middleware: 402 with PAYMENT-REQUIRED first,
/// then 200 with PAYMENT-RESPONSE for `issued`.
fn assert_paid_request(mw: &Value, req: &Value, issued: &Issued, min_confirmations: u64) {
    assert_eq!(mw["unpaid"]["status"], 402, "{mw}");
    let required = &mw["unpaid"]["paymentRequired"];
    assert_eq!(required["x402Version"], 2, "{required}");
    assert_eq!(required["accepts"], json!([req]), "{required}");
    let resource = required["resource"]["url"].as_str().unwrap_or("");
    assert!(resource.ends_with("/weather"), "{required}");

    assert_eq!(mw["paid"]["status"], 200, "{mw}");
    assert_eq!(
        mw["paid"]["body"],
        json!({ "forecast": "sunny", "temperatureC": 21 })
    );
    let response = &mw["paid"]["paymentResponse"];
    assert_settled(response, issued, min_confirmations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_typescript_sdk_drives_the_facilitator() {
    if let Some(why) = sdk_missing() {
        if std::env::var("X402_INTEROP_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("{why}: run `npm ci --prefix interop/x402` (X402_INTEROP_REQUIRED=1)");
        }
        // Straight to the process's stderr: libtest does not capture this, so
        // the skip shows even without --nocapture.
        let banner = "!".repeat(72);
        let _ = writeln!(
            std::io::stderr(),
            "\n{banner}\nSKIPPED: official_typescript_sdk_drives_the_facilitator: {why}.\n\
             Install the x402 SDK with: npm ci --prefix interop/x402\n{banner}"
        );
        return;
    }
    let started = Instant::now();
    let app = spawn_app_with(|s| {
        s.chain.devnet.block_time = std::time::Duration::from_millis(100);
        s.settlement.confirmation_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let devnet = app.state.devnet.clone().expect("embedded devnet");
    let seller = SigningKey::from_seed([0x5e; 32]).enterprise_address(Network::Devnet);
    let (signer, signer_url) = start_signer(&app).await;
    let (_, own_supported) = app.get_json("/supported").await;

    // ---- basic: /supported, /verify, /settle, middleware + fetch wrapper ----
    let out = run_sdk("basic", &app, &signer_url, &seller).await;
    let issued = signer.issued();
    assert_eq!(
        issued.len(),
        3,
        "one payment direct, two through the middleware"
    );

    // The SDK read our kinds, extensions and signers as we serve them.
    assert_eq!(out["supported"]["kinds"], own_supported["kinds"]);
    assert_eq!(
        out["supported"]["extensions"],
        json!(["payment-identifier"])
    );
    assert_eq!(out["supported"]["signers"], json!({ "cardano:*": [] }));
    assert_eq!(out["supportedKind"]["x402Version"], 2);
    assert_eq!(out["supportedKind"]["scheme"], "exact");
    assert_eq!(out["supportedKind"]["network"], NETWORK);
    assert_eq!(
        out["supportedKind"]["extra"]["assetTransferMethods"],
        json!(["default", "masumi", "script"])
    );
    assert_eq!(out["facilitatorExtensions"], json!(["payment-identifier"]));

    // HTTPFacilitatorClient.verify / settle with SDK-built requirements.
    let req1 = requirements(&seller, 1);
    let direct = &out["direct"];
    assert_eq!(direct["requirements"], req1);
    assert_payload(
        &direct["payload"],
        &req1,
        &issued[0],
        "urn:x402-interop:direct",
    );
    assert_eq!(
        direct["verify"],
        json!({ "isValid": true, "payer": issued[0].payer })
    );
    assert_settled(&direct["settle"], &issued[0], 1);

    // paymentMiddleware + wrapFetchWithPayment; the route declares the
    // optional payment-identifier extension and this buyer does not opt in:
    // its payload echoes the declaration without an id.
    let declared = json!({ "required": false });
    let mw = &out["middleware"];
    assert_paid_request(mw, &req1, &issued[1], 1);
    assert_eq!(
        mw["unpaid"]["paymentRequired"]["extensions"]["payment-identifier"]["info"],
        declared
    );
    assert_eq!(
        mw["payload"]["extensions"]["payment-identifier"]["info"],
        declared
    );
    assert_eq!(ops(&mw["facilitatorCalls"]), ["verify", "settle"], "{mw}");
    assert_eq!(
        mw["facilitatorCalls"][0]["result"],
        json!({ "isValid": true, "payer": issued[1].payer })
    );

    // A buyer that opts in: the SDK's helper adds an id; settling the same
    // payload again answers the stored result (and broadcasts nothing).
    let with_id = &out["withPaymentId"];
    assert_paid_request(with_id, &req1, &issued[2], 1);
    let id = with_id["payload"]["extensions"]["payment-identifier"]["info"]["id"]
        .as_str()
        .unwrap_or_default();
    assert!(id.starts_with("pay_") && id.len() >= 16, "{with_id}");
    assert_eq!(ops(&with_id["facilitatorCalls"]), ["verify", "settle"]);
    // The lost-response retry with the same id, payload and requirements:
    // the stored answer, not a duplicate.
    assert_eq!(with_id["replay"], with_id["facilitatorCalls"][1]["result"]);
    for i in &issued {
        assert_eq!(devnet.submissions(&i.tx_id), 1, "{}", i.tx_id);
    }

    // ---- replay: one payment header, 10 concurrent requests to the paid route ----
    let out = run_sdk("replay", &app, &signer_url, &seller).await;
    let issued = signer.issued();
    assert_eq!(issued.len(), 4, "one more payment");
    let statuses: Vec<u64> = out["replay"]["statuses"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(statuses.len(), 10, "{out}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "exactly one request gets the resource: {out}"
    );
    let settles: Vec<&Value> = out["replay"]["facilitatorCalls"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["op"] == "settle").collect())
        .unwrap_or_default();
    assert_eq!(
        settles
            .iter()
            .filter(|c| c["result"]["success"] == true)
            .count(),
        1,
        "{out}"
    );
    assert_eq!(devnet.submissions(&issued[3].tx_id), 1);

    // ---- pending: the chain stands still until the facilitator said pending ----
    devnet.shutdown().await;
    let store = app.state.store.clone();
    let watch_signer = signer.clone();
    let watch_devnet = devnet.clone();
    let mined_for = Arc::new(Mutex::new(Vec::<TxId>::new()));
    let mined = mined_for.clone();
    let already: HashSet<TxId> = issued.iter().map(|i| i.tx_id).collect();
    let watcher = tokio::spawn(async move {
        loop {
            for i in watch_signer.issued() {
                if already.contains(&i.tx_id) || mined.lock().unwrap().contains(&i.tx_id) {
                    continue;
                }
                if let Ok(Some(rec)) = store.get(&i.tx_id).await
                    && rec.state == SettlementState::Pending
                {
                    // The first settle gave up waiting: now the tx lands and gets 3 blocks on top.
                    for _ in 0..4 {
                        watch_devnet.produce_block();
                    }
                    mined.lock().unwrap().push(i.tx_id);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let out = run_sdk("pending", &app, &signer_url, &seller).await;
    watcher.abort();
    let issued = signer.issued();
    assert_eq!(issued.len(), 6, "two more payments");
    let (direct_tx, mw_tx) = (&issued[4], &issued[5]);
    assert_eq!(
        *mined_for.lock().unwrap(),
        vec![direct_tx.tx_id, mw_tx.tx_id],
        "each pending payment was journalled PENDING before any block"
    );

    // The SDK client's settle: pending with the tx id, then the same call succeeds.
    let req3 = requirements(&seller, 3);
    let direct = &out["direct"];
    assert_eq!(direct["requirements"], req3);
    assert_payload(
        &direct["payload"],
        &req3,
        direct_tx,
        "urn:x402-interop:pending",
    );
    assert_pending(&direct["settles"][0], direct_tx);
    assert_settled(&direct["settles"][1], direct_tx, 3);

    // The middleware: x402ResourceServer retried the pending settle once by itself.
    let mw = &out["middleware"];
    assert_paid_request(mw, &req3, mw_tx, 3);
    let calls = &mw["facilitatorCalls"];
    assert_eq!(ops(calls), ["verify", "settle", "settle"], "{mw}");
    assert_eq!(calls[0]["result"]["isValid"], true);
    assert_pending(&calls[1]["result"], mw_tx);
    assert_settled(&calls[2]["result"], mw_tx, 3);

    for i in [direct_tx, mw_tx] {
        assert_eq!(devnet.submissions(&i.tx_id), 1, "{}", i.tx_id);
        let rec = app
            .state
            .store
            .get(&i.tx_id)
            .await
            .unwrap()
            .expect("journal");
        assert_eq!(rec.state, SettlementState::Confirmed, "{}", i.tx_id);
    }
    eprintln!(
        "x402 SDK interop: {} ms in all",
        started.elapsed().as_millis()
    );
    app.stop().await;
}
