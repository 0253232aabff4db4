//! `x402-facilitator demo`: one complete paid request on the embedded devnet,
//! every step printed with its timing.
//!
//! Three parties run in this process, talking HTTP on loopback like real ones:
//! the facilitator (the real [`App`]), a tiny resource server that sells one
//! route for 1 ada, and a buyer that pays with a signed transaction built
//! from the devnet's Blockfrost-compatible API.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value as Json, json};

use crate::app::App;
use crate::buyer::keys::SigningKey;
use crate::buyer::{self, Buyer};
use crate::cardano::Network;
use crate::cardano::plutus::{PlutusData, PlutusVersion};
use crate::config::{Settings, StoreBackend};
use crate::protocol::headers::{
    PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE, decode_header, encode_header,
};
use crate::protocol::types::{
    PaymentPayloadV2, PaymentRequiredV2, PaymentRequirementsV2, ResourceInfo, SettleResponse,
    VerifyResponse,
};

/// Which asset transfer method the demo's resource server asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoMethod {
    /// Pay the seller's key address.
    #[default]
    Default,
    /// Pay a Plutus V3 script address (parameterised with the seller's key hash), with an inline
    /// datum naming the seller.
    Script,
    /// Lock into the Masumi V2 escrow under terms the seller signed (CIP-8), with a
    /// `FundsLocked` inline datum naming the buyer.
    Masumi,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Step(String),
}

fn step(msg: impl Into<String>) -> DemoError {
    DemoError::Step(msg.into())
}

#[derive(Clone)]
struct Shop {
    facilitator: String,
    requirements: PaymentRequirementsV2,
    resource: String,
    client: reqwest::Client,
}

/// The resource server's one paid route.
async fn premium(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    let required = PaymentRequiredV2 {
        x402_version: 2,
        error: None,
        resource: Some(ResourceInfo {
            url: shop.resource.clone(),
            description: Some("Premium weather".into()),
            mime_type: Some("application/json".into()),
        }),
        accepts: vec![shop.requirements.clone()],
        extensions: None,
    };
    let refuse = |error: Option<String>| {
        let mut body = required.clone();
        body.error = error;
        let mut resp = (StatusCode::PAYMENT_REQUIRED, axum::Json(body.clone())).into_response();
        if let Ok(Ok(v)) = encode_header(&body).map(|h| HeaderValue::from_str(&h)) {
            resp.headers_mut().insert(PAYMENT_REQUIRED, v);
        }
        resp
    };
    let Some(sig) = headers.get(PAYMENT_SIGNATURE).and_then(|v| v.to_str().ok()) else {
        return refuse(None);
    };
    let Ok(payload) = decode_header::<PaymentPayloadV2>(sig) else {
        return refuse(Some("malformed PAYMENT-SIGNATURE".into()));
    };
    let body = json!({ "x402Version": 2, "paymentPayload": payload, "paymentRequirements": shop.requirements });
    let verify: VerifyResponse = match shop
        .client
        .post(format!("{}/verify", shop.facilitator))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => match r.json().await {
            Ok(v) => v,
            Err(e) => return refuse(Some(format!("verify answer unreadable: {e}"))),
        },
        Err(e) => return refuse(Some(format!("facilitator unreachable: {e}"))),
    };
    if !verify.is_valid {
        return refuse(verify.invalid_reason);
    }
    let settle: SettleResponse = match shop
        .client
        .post(format!("{}/settle", shop.facilitator))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => match r.json().await {
            Ok(v) => v,
            Err(e) => return refuse(Some(format!("settle answer unreadable: {e}"))),
        },
        Err(e) => return refuse(Some(format!("facilitator unreachable: {e}"))),
    };
    if !settle.success {
        return refuse(settle.error_reason);
    }
    let mut resp = axum::Json(json!({ "forecast": "sunny", "temperatureC": 21 })).into_response();
    if let Ok(Ok(v)) = encode_header(&settle).map(|h| HeaderValue::from_str(&h)) {
        resp.headers_mut().insert(PAYMENT_RESPONSE, v);
    }
    resp
}

struct Clock {
    start: Instant,
}

impl Clock {
    fn say(&self, what: &str) {
        println!("[{:>6} ms] {what}", self.start.elapsed().as_millis());
    }
}

/// Run the demo with the `default` method.
pub async fn run(settings: Settings) -> Result<(), DemoError> {
    run_with(settings, DemoMethod::Default).await
}

/// Requirements for `method`, paying `seller_key`'s key address or a script tied to it.
fn demo_requirements(
    method: DemoMethod,
    seller_key: &SigningKey,
) -> Result<PaymentRequirementsV2, DemoError> {
    let network = Network::Devnet;
    match method {
        DemoMethod::Default => Ok(PaymentRequirementsV2 {
            scheme: "exact".into(),
            network: network.caip2().into(),
            amount: "1000000".into(),
            asset: "lovelace".into(),
            pay_to: seller_key.enterprise_address(network),
            max_timeout_seconds: 600,
            extra: json!({ "confirmationPolicy": { "l1Confirmations": 1 } }),
            parameter_order: None,
        }),
        DemoMethod::Script => {
            let seller_hash = hex::encode(seller_key.key_hash());
            let datum = PlutusData::constr(0, vec![PlutusData::bytes(seller_key.key_hash())]);
            buyer::script_requirements(
                network,
                1_000_000,
                "lovelace",
                PlutusVersion::V3,
                buyer::DEMO_SCRIPT_CODE,
                Some(json!({ "seller": { "type": "bytes", "value": seller_hash } })),
                Some(&hex::encode(datum.encode())),
            )
            .map_err(|e| step(e.to_string()))
        }
        DemoMethod::Masumi => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let mut nonce = [0u8; 32];
            nonce[..16].copy_from_slice(&now_ms.to_be_bytes());
            buyer::masumi_requirements(network, 1_000_000, seller_key, now_ms, nonce)
                .map_err(|e| step(e.to_string()))
        }
    }
}

/// Run the demo. Uses the embedded devnet and memory store whatever the configuration says.
pub async fn run_with(mut settings: Settings, method: DemoMethod) -> Result<(), DemoError> {
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.chain.network = Network::Devnet;
    settings.chain.blockfrost.url = None;
    settings.chain.devnet.block_time = settings
        .chain
        .devnet
        .block_time
        .min(std::time::Duration::from_millis(500));
    settings.chain.devnet.api_enabled = true;
    settings.chain.devnet.faucet_enabled = true;
    settings.store.backend = StoreBackend::Memory;
    settings.rate_limit.enabled = false;
    settings.settlement.poll_interval = std::time::Duration::from_millis(100);

    let clock = Clock {
        start: Instant::now(),
    };
    println!("x402 on Cardano, end to end, on the embedded devnet\n");

    let app = App::build(settings)
        .await
        .map_err(|e| step(format!("facilitator did not start: {e}")))?;
    let facilitator = format!("http://{}", app.addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run(async move {
        let _ = stop_rx.await;
    }));
    clock.say(&format!(
        "facilitator up at {facilitator} (devnet, memory store)"
    ));

    let seller_key = SigningKey::from_seed([0x5e; 32]);
    let requirements = demo_requirements(method, &seller_key)?;
    let seller = requirements.pay_to.clone();
    let datum = requirements.extra["datum"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (resource, client, shop_task) = start_shop(&clock, &facilitator, requirements).await?;
    if method == DemoMethod::Masumi {
        clock.say(&format!(
            "assetTransferMethod masumi: escrow {seller} (vested_pay, default deployment), terms signed by the seller's key (CIP-8)"
        ));
    }
    if method == DemoMethod::Script {
        clock.say(&format!(
            "assetTransferMethod script: plutusV3 code {} applied to seller={}, inline datum {}",
            buyer::DEMO_SCRIPT_CODE,
            hex::encode(seller_key.key_hash()),
            datum
        ));
    }

    let result = buyer_flow(&clock, &client, &facilitator, &resource, [0xb7; 32]).await;

    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), served).await;
    shop_task.abort();
    match &result {
        Ok(()) => clock.say("done: paid request served, payment settled on chain"),
        Err(e) => clock.say(&format!("FAILED: {e}")),
    }
    result
}

/// The resource server: one paid route with `requirements`, paid through `facilitator`.
async fn start_shop(
    clock: &Clock,
    facilitator: &str,
    requirements: PaymentRequirementsV2,
) -> Result<(String, reqwest::Client, tokio::task::JoinHandle<()>), DemoError> {
    let facilitator = facilitator.trim_end_matches('/').to_owned();
    let seller = requirements.pay_to.clone();
    let shop_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| step(e.to_string()))?;
    let shop_addr: SocketAddr = shop_listener
        .local_addr()
        .map_err(|e| step(e.to_string()))?;
    let resource = format!("http://{shop_addr}/weather");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| step(e.to_string()))?;
    let shop = Shop {
        facilitator,
        requirements,
        resource: resource.clone(),
        client: client.clone(),
    };
    let shop_task = tokio::spawn(async move {
        let router = Router::new()
            .route("/weather", get(premium))
            .with_state(shop);
        let _ = axum::serve(shop_listener, router).await;
    });
    clock.say(&format!(
        "resource server up: GET {resource} costs 1 ada, paid to {seller}"
    ));
    Ok((resource, client, shop_task))
}

/// The buyer and the resource server of the demo, against a facilitator
/// running elsewhere (`facilitator`) whose chain is a devnet served at
/// `devnet` (its faucet and Blockfrost-compatible API); the resource server
/// asks for `confirmations` blocks on top. Used by the Docker smoke test: a
/// paid request through the production container.
pub async fn run_against(
    facilitator: &str,
    devnet: &str,
    confirmations: u32,
) -> Result<(), DemoError> {
    let clock = Clock {
        start: Instant::now(),
    };
    println!("x402 on Cardano: a paid request through the facilitator at {facilitator}\n");
    // The network the facilitator serves (a devnet may stand in for preprod).
    let probe = reqwest::Client::new();
    let supported: serde_json::Value = probe
        .get(format!("{}/supported", facilitator.trim_end_matches('/')))
        .send()
        .await
        .map_err(|e| step(format!("/supported: {e}")))?
        .json()
        .await
        .map_err(|e| step(format!("/supported: {e}")))?;
    let served = supported["kinds"]
        .as_array()
        .and_then(|kinds| kinds.iter().find(|k| k["x402Version"] == 2))
        .and_then(|k| k["network"].as_str())
        .unwrap_or("cardano:devnet")
        .to_owned();
    clock.say(&format!("the facilitator serves {served}"));
    let network = Network::Devnet;
    let requirements = PaymentRequirementsV2 {
        scheme: "exact".into(),
        network: served,
        amount: "1000000".into(),
        asset: "lovelace".into(),
        pay_to: SigningKey::from_seed([0x5e; 32]).enterprise_address(network),
        max_timeout_seconds: 600,
        extra: json!({ "confirmationPolicy": { "l1Confirmations": confirmations } }),
        parameter_order: None,
    };
    let (resource, client, shop_task) = start_shop(&clock, facilitator, requirements).await?;
    // A fresh buyer per run, so repeated runs never race for the same coins.
    let seed: [u8; 32] = rand::random();
    let result = buyer_flow(&clock, &client, devnet, &resource, seed).await;
    shop_task.abort();
    match &result {
        Ok(()) => clock.say("done: paid request served, payment settled on chain"),
        Err(e) => clock.say(&format!("FAILED: {e}")),
    }
    result
}

async fn buyer_flow(
    clock: &Clock,
    client: &reqwest::Client,
    chain_base: &str,
    resource: &str,
    seed: [u8; 32],
) -> Result<(), DemoError> {
    let buyer = Buyer::from_seed(seed, Network::Devnet);
    let funded = buyer::faucet(client, chain_base, &buyer.address(), 10_000_000, &[])
        .await
        .map_err(|e| step(e.to_string()))?;
    clock.say(&format!(
        "buyer {} funded with 10 ada by the devnet faucet ({funded})",
        buyer.address()
    ));

    let first = client
        .get(resource)
        .send()
        .await
        .map_err(|e| step(e.to_string()))?;
    if first.status() != StatusCode::PAYMENT_REQUIRED {
        return Err(step(format!("expected 402, got {}", first.status())));
    }
    let header = first
        .headers()
        .get(PAYMENT_REQUIRED)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| step("402 without PAYMENT-REQUIRED"))?
        .to_owned();
    let required: PaymentRequiredV2 = decode_header(&header).map_err(|e| step(e.to_string()))?;
    let req = required
        .accepts
        .first()
        .cloned()
        .ok_or_else(|| step("402 offers nothing"))?;
    clock.say(&format!(
        "402 Payment Required: {} {} to {} on {}",
        req.amount, req.asset, req.pay_to, req.network
    ));

    let api = format!("{}/devnet/api/v0", chain_base.trim_end_matches('/'));
    let view = buyer::chain_view(client, &api, &buyer.address())
        .await
        .map_err(|e| step(e.to_string()))?;
    let (built, nonce) = match req.extra.get("assetTransferMethod").and_then(Json::as_str) {
        Some("script") => buyer.pay_script(&req, &view),
        Some("masumi") => {
            // The wallet's slot clock: one slot per second from the tip it just read.
            let tip = view.tip_slot;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            buyer.pay_masumi(&req, &view, move |t| {
                tip.saturating_add(u64::try_from(t - now).unwrap_or(0))
            })
        }
        _ => buyer.pay(&req, &view),
    }
    .map_err(|e| step(e.to_string()))?;
    let payload = Buyer::payload(&req, &built, &nonce);
    let sig = encode_header(&payload).map_err(|e| step(e.to_string()))?;
    clock.say(&format!(
        "signed transaction {} ({} bytes, fee {} lovelace) in PAYMENT-SIGNATURE",
        built.tx_id,
        built.tx.len(),
        built.fee
    ));

    let paid = client
        .get(resource)
        .header(PAYMENT_SIGNATURE, sig)
        .send()
        .await
        .map_err(|e| step(e.to_string()))?;
    let status = paid.status();
    let response_header = paid
        .headers()
        .get(PAYMENT_RESPONSE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Json = paid.json().await.unwrap_or(Json::Null);
    if status != StatusCode::OK {
        return Err(step(format!("paid request answered {status}: {body}")));
    }
    clock.say("resource server: facilitator /verify said valid, /settle submitted and waited for 1 confirmation");
    let settle: SettleResponse = response_header
        .as_deref()
        .ok_or_else(|| step("200 without PAYMENT-RESPONSE"))
        .and_then(|h| decode_header(h).map_err(|e| step(e.to_string())))?;
    let ext = settle.extra.clone().unwrap_or(Json::Null);
    clock.say(&format!(
        "settled: transaction {} on {}, status {}, confirmations {}",
        settle.transaction, settle.network, ext["status"], ext["confirmations"]
    ));
    clock.say(&format!("200 OK with PAYMENT-RESPONSE; body {body}"));
    Ok(())
}
