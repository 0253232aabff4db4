//! The `masumi` transfer method, black-box: a seller key signs the terms
//! (CIP-8), the buyer locks into the real `vested_pay` escrow address under a
//! `FundsLocked` inline datum, and the real service verifies and settles it on
//! the embedded devnet, with the memory store and with a real redis-server.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use x402_facilitator::buyer::keys::SigningKey;
use x402_facilitator::buyer::quote;
use x402_facilitator::buyer::{self, Buyer, ChainView};
use x402_facilitator::cardano::Network;
use x402_facilitator::config::StoreBackend;
use x402_facilitator::protocol::parse_request;
use x402_facilitator::protocol::types::PaymentRequirementsV2;
use x402_facilitator::scheme::exact_cardano::{VerifyOutcome, verify};
use x402_facilitator::scheme::masumi::{escrow, terms};

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::pay::{body_for, funded_buyer, view};
use crate::support::redis_server::RedisServer;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn seller_key() -> SigningKey {
    SigningKey::from_seed([0x5a; 32])
}

fn masumi_req(amount: u64, nonce: u8) -> PaymentRequirementsV2 {
    buyer::masumi_requirements(
        Network::Devnet,
        amount,
        &seller_key(),
        now_ms(),
        [nonce; 32],
    )
    .expect("seller signs a quote")
}

/// The devnet's slot clock as a wallet sees it: one slot per second from the tip.
fn slot_clock(v: &ChainView) -> impl Fn(i64) -> u64 {
    let tip = v.tip_slot;
    let now = (now_ms() / 1000) as i64;
    move |t| tip.saturating_add(u64::try_from(t - now).unwrap_or(0))
}

fn lock_body(b: &Buyer, v: &ChainView, req: &PaymentRequirementsV2) -> (String, Value) {
    let (built, nonce) = b.pay_masumi(req, v, slot_clock(v)).expect("buyer locks");
    (built.tx_id.to_hex(), body_for(req, &built.tx, &nonce))
}

fn expected_digest(req: &PaymentRequirementsV2) -> [u8; 32] {
    let j = serde_json::to_value(req).unwrap();
    let q = quote::view(&j).unwrap();
    let m = terms::parse_extra(q.extra, Network::Devnet).unwrap();
    terms::terms_digest(&m, &q).unwrap()
}

async fn settles_once(app: &TestApp, seed: u8) {
    let (b, _) = funded_buyer(&app.client, &app.base, seed, 20_000_000).await;
    let req = masumi_req(3_000_000, seed);
    assert_eq!(
        req.pay_to,
        escrow::address_of(
            &escrow::script_hash(&escrow::default_deployment()).unwrap(),
            Network::Devnet
        )
        .to_bech32()
    );
    let v = view(&app.client, &app.base, &b).await;
    let (txid, body) = lock_body(&b, &v, &req);

    // The library's verify exposes termsDigest, the logical replay key.
    let parsed = parse_request(&serde_json::to_vec(&body).unwrap()).unwrap();
    match verify(app.state.facilitator.verify_context(), &parsed).await {
        VerifyOutcome::Valid(p) => {
            assert_eq!(p.terms_digest, Some(expected_digest(&req)));
            assert_eq!(p.tx_id.to_hex(), txid);
        }
        other => panic!("not valid: {other:?}"),
    }

    let (code, verified) = app.post_json("/verify", &body).await;
    assert_eq!(code, 200, "{verified}");
    assert_eq!(verified, json!({"isValid": true, "payer": b.address()}));

    let (code, settled) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200, "{settled}");
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["transaction"], txid);
    assert_eq!(settled["payer"], b.address());

    // The lock is on chain at the escrow, with its inline datum.
    let (code, utxos) = app
        .get_json(&format!("/devnet/api/v0/addresses/{}/utxos", req.pay_to))
        .await;
    assert_eq!(code, 200, "{utxos}");
    let ours: Vec<&Value> = utxos
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["tx_hash"] == txid)
        .collect();
    assert_eq!(ours.len(), 1, "{utxos}");
    assert!(
        ours[0]["inline_datum"]
            .as_str()
            .is_some_and(|d| d.starts_with("d8799f"))
    );
    // 3 ada plus Masumi's minimum collateral: at the devnet's 4,310 lovelace per
    // byte the post-result minimum (~3.5 ada) exceeds the price alone.
    assert_eq!(ours[0]["amount"][0]["quantity"], "4435230");

    // A second settle of the same lock is answered from the journal: the same
    // result, and the transaction was broadcast once.
    let (code, again) = app.post_json("/settle", &body).await;
    assert_eq!(code, 200);
    assert_eq!(again["transaction"], txid, "{again}");
    let id: x402_facilitator::cardano::TxId = txid.parse().unwrap();
    assert_eq!(
        app.state.devnet.as_ref().expect("devnet").submissions(&id),
        1
    );
}

#[tokio::test]
async fn masumi_payment_settles_on_the_memory_store() {
    let app = spawn_app().await;
    let (code, supported) = app.get_json("/supported").await;
    assert_eq!(code, 200);
    assert_eq!(
        supported["kinds"][0]["extra"]["assetTransferMethods"],
        json!(["default", "masumi", "script"])
    );
    settles_once(&app, 0x61).await;
    app.stop().await;
}

#[tokio::test]
async fn masumi_payment_settles_on_redis() {
    let Some(redis) = RedisServer::start("masumi") else {
        return;
    };
    let app = spawn_app_with(|s| {
        s.store.backend = StoreBackend::Redis;
        s.store.redis = redis.settings();
    })
    .await;
    settles_once(&app, 0x62).await;
    app.stop().await;
}

#[tokio::test]
async fn masumi_rejections_over_http() {
    let app = spawn_app().await;
    let (b, _) = funded_buyer(&app.client, &app.base, 0x63, 40_000_000).await;
    let v = view(&app.client, &app.base, &b).await;
    let reason = |r: &Value| r["invalidReason"].as_str().unwrap_or_default().to_owned();

    // The price changed after the seller signed: refused before any chain call.
    let req = masumi_req(3_000_000, 1);
    let (_, mut body) = lock_body(&b, &v, &req);
    for side in ["paymentRequirements", "paymentPayload"] {
        let target = if side == "paymentPayload" {
            &mut body[side]["accepted"]
        } else {
            &mut body[side]
        };
        target["amount"] = json!("3000001");
    }
    let (code, r) = app.post_json("/verify", &body).await;
    assert_eq!(code, 200);
    assert_eq!(
        reason(&r),
        "invalid_exact_cardano_requirements_masumi_seller_signature",
        "{r}"
    );

    // A plain payment to the escrow, without the datum.
    let req = masumi_req(3_000_000, 2);
    let (built, nonce) = b.pay(&req, &v).expect("plain payment");
    let (_, r) = app
        .post_json("/verify", &body_for(&req, &built.tx, &nonce))
        .await;
    assert_eq!(
        reason(&r),
        "invalid_exact_cardano_payload_masumi_datum_missing",
        "{r}"
    );

    // An inline datum that is not a vested_pay datum.
    let (built, nonce) = b
        .pay_with_datum(&req, &v, Some(&[0xd8, 0x79, 0x80]))
        .expect("datum payment");
    let (_, r) = app
        .post_json("/verify", &body_for(&req, &built.tx, &nonce))
        .await;
    assert_eq!(
        reason(&r),
        "invalid_exact_cardano_payload_masumi_datum_invalid",
        "{r}"
    );

    // A custom deployment this operator never approved.
    let mut custom = serde_json::to_value(masumi_req(3_000_000, 3)).unwrap();
    let mut dep = escrow::default_deployment();
    dep.cooldown_period = 999_999;
    custom["extra"]["deployment"] = json!({
        "requiredAdmins": "2",
        "adminVkeys": dep.admin_vkeys.iter().map(hex::encode).collect::<Vec<_>>(),
        "cooldownPeriod": "999999",
    });
    custom["payTo"] =
        json!(escrow::address_of(&escrow::script_hash(&dep).unwrap(), Network::Devnet).to_bech32());
    quote::sign_into(&mut custom, &seller_key()).unwrap();
    let custom: PaymentRequirementsV2 = serde_json::from_value(custom).unwrap();
    let (_, body) = lock_body(&b, &v, &custom);
    let (_, r) = app.post_json("/verify", &body).await;
    assert_eq!(
        reason(&r),
        "invalid_exact_cardano_requirements_masumi_deployment",
        "{r}"
    );

    // ... which an operator can approve.
    let approving = spawn_app_with(|s| {
        s.masumi.approved_deployments = vec![hex::encode(escrow::script_hash(&dep).unwrap())];
    })
    .await;
    let (b2, _) = funded_buyer(&approving.client, &approving.base, 0x64, 20_000_000).await;
    let v2 = view(&approving.client, &approving.base, &b2).await;
    let (_, body) = lock_body(&b2, &v2, &custom);
    let (code, r) = approving.post_json("/verify", &body).await;
    assert_eq!(code, 200);
    assert_eq!(r["isValid"], true, "{r}");
    approving.stop().await;
    app.stop().await;
}

/// `x402-facilitator demo --method masumi`: the whole paid-request flow with a lock.
#[test]
fn demo_pays_with_a_masumi_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        crate::support::app::run_bin(dir.path(), &["demo", "--method", "masumi"], &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for step in [
        "assetTransferMethod masumi: escrow addr_test1wzs4e6wc95hkwezlccjw9mdvq0r0rsgx6zk34avptga3ftgn37w4g",
        "402 Payment Required: 1000000 lovelace to addr_test1wzs4e6wc95hkwezlccjw9mdvq0r0rsgx6zk34avptga3ftgn37w4g",
        "/verify said valid",
        "200 OK with PAYMENT-RESPONSE",
        "done: paid request served",
    ] {
        assert!(out.contains(step), "missing step {step:?} in:\n{out}");
    }
}

/// The logical replay key: two different lock transactions for one set of
/// seller-signed terms, settled at the same moment at two replicas sharing
/// one Redis: the terms digest is bound to the first transaction in the same
/// atomic claim as its id, so exactly one settles and the other is
/// `duplicate_settlement` with nothing broadcast.
#[tokio::test]
async fn one_set_of_terms_settles_once_across_replicas() {
    let Some(redis) = RedisServer::start("masumi_terms_once") else {
        return;
    };
    let a = spawn_app_with(|s| {
        s.store.backend = StoreBackend::Redis;
        s.store.redis = redis.settings();
    })
    .await;
    let url = format!("{}/devnet/api/v0", a.base);
    let b = spawn_app_with(|s| {
        s.store.backend = StoreBackend::Redis;
        s.store.redis = redis.settings();
        s.chain.blockfrost.url = Some(url);
    })
    .await;
    let req = masumi_req(3_000_000, 0x7e);
    let (buyer1, _) = funded_buyer(&a.client, &a.base, 0x71, 20_000_000).await;
    let (buyer2, _) = funded_buyer(&a.client, &a.base, 0x72, 20_000_000).await;
    let v1 = view(&a.client, &a.base, &buyer1).await;
    let v2 = view(&a.client, &a.base, &buyer2).await;
    let (tx1, body1) = lock_body(&buyer1, &v1, &req);
    let (tx2, body2) = lock_body(&buyer2, &v2, &req);
    assert_ne!(tx1, tx2, "two distinct locks for the same terms");

    let (r1, r2) = tokio::join!(
        a.post_json("/settle", &body1),
        b.post_json("/settle", &body2)
    );
    let answers = [(tx1.clone(), r1), (tx2.clone(), r2)];
    let successes: Vec<&String> = answers
        .iter()
        .filter(|(_, (code, v))| *code == 200 && v["success"] == true)
        .map(|(tx, _)| tx)
        .collect();
    assert_eq!(successes.len(), 1, "{answers:?}");
    let (loser_tx, (code, loser)) = answers
        .iter()
        .find(|(_, (_, v))| v["success"] != true)
        .unwrap();
    assert_eq!(*code, 200, "{loser}");
    assert_eq!(loser["errorReason"], "duplicate_settlement", "{loser}");
    assert_eq!(loser["transaction"], "", "nothing was broadcast: {loser}");
    let devnet = a.state.devnet.clone().unwrap();
    assert_eq!(devnet.submissions(&loser_tx.parse().unwrap()), 0);
    assert_eq!(devnet.submissions(&successes[0].parse().unwrap()), 1);
    b.stop().await;
    a.stop().await;
}
