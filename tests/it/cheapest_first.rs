//! Cheapest checks first, proven: every pure rejection (envelope, decoding,
//! signatures, policy) is answered with zero chain and zero store calls, by
//! both use cases. A provider and a store that count their calls wrap the
//! real devnet and the real memory store.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::app::spawn_app;
use crate::support::counting::{CountingChain, CountingStore};
use crate::support::pay::{body_for, funded_buyer, pay, requirements, seller, view};
use x402_facilitator::config::Settings;
use x402_facilitator::facilitator::{Answer, Caller, Facilitator, SettleResult};
use x402_facilitator::protocol::parse::parse_request;
use x402_facilitator::store::memory::MemoryStore;

#[tokio::test]
async fn pure_rejections_cost_no_chain_and_no_store_call() {
    let app = spawn_app().await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 0x41, 20_000_000).await;
    let v = view(&app.client, &app.base, &buyer).await;
    let req = requirements(&seller(0x81), 2_000_000, 0);
    let (built, body) = pay(&buyer, &v, &req);

    let devnet = app.state.devnet.clone().expect("embedded devnet");
    let chain = CountingChain::new(devnet);
    let store = CountingStore::new(Arc::new(MemoryStore::new()));
    let store_calls = store.calls.clone();
    let settings = Arc::new(Settings::default()); // acceptMempool off
    let f = Facilitator::new(settings, Arc::new(chain.clone()), Arc::new(store));

    let set = |path: &str, value: Value| {
        let mut b = body.clone();
        *b.pointer_mut(path).unwrap() = value;
        b
    };
    let mut tampered = built.tx.clone();
    let n = tampered.len();
    tampered[n - 3] ^= 0x01;
    let nonce = built.body.inputs[0];
    let mut other_nonce = nonce;
    other_nonce.index += 7;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "scheme",
            set("/paymentRequirements/scheme", json!("upto")),
            "unsupported_scheme",
        ),
        (
            "network",
            set("/paymentRequirements/network", json!("cardano:mainnet")),
            "network_mismatch",
        ),
        (
            "amount",
            set("/paymentRequirements/amount", json!("01")),
            "invalid_exact_cardano_payload",
        ),
        (
            "accepted",
            set("/paymentPayload/accepted/amount", json!("1")),
            "invalid_exact_cardano_payload",
        ),
        (
            "nonce syntax",
            set("/paymentPayload/payload/nonce", json!("zz#0")),
            "invalid_exact_cardano_payload_nonce_invalid",
        ),
        (
            "base64",
            set("/paymentPayload/payload/transaction", json!("%%%")),
            "invalid_exact_cardano_payload_transaction_decode_failed",
        ),
        (
            "cbor",
            set("/paymentPayload/payload/transaction", json!("AAEC")),
            "invalid_exact_cardano_payload_transaction_decode_failed",
        ),
        (
            "signature",
            body_for(&req, &tampered, &nonce),
            "invalid_exact_cardano_payload_",
        ),
        (
            "mempool policy without the opt-in",
            {
                let mut r = req.clone();
                r.extra = json!({"confirmationPolicy": {"l1Confirmations": -1}});
                body_for(&r, &built.tx, &nonce)
            },
            "invalid_exact_cardano_requirements_policy",
        ),
    ];
    let _ = other_nonce;
    for (name, b, want) in cases {
        let parsed = parse_request(serde_json::to_vec(&b).unwrap().as_slice())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let verified = f.verify(&parsed, Caller::default()).await;
        let Answer::Done(v) = verified else {
            panic!("{name}: {verified:?}")
        };
        assert!(!v.is_valid, "{name}");
        let reason = v.invalid_reason.clone().unwrap_or_default();
        assert!(reason.starts_with(want), "{name}: {reason}");
        let SettleResult::Answer(Answer::Done(s)) = f.settle(&parsed, Caller::default()).await
        else {
            panic!("{name}: settle did not answer 200");
        };
        assert!(!s.success, "{name}");
        assert_eq!(s.error_reason.as_deref(), Some(reason.as_str()), "{name}");
        assert_eq!(s.transaction, "", "{name}: nothing broadcast");
        assert_eq!(chain.count(), 0, "{name}: chain calls");
        assert_eq!(
            store_calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{name}: store calls"
        );
    }

    // A valid payment, for contrast: verify costs one store read and the chain lookups.
    let mut ok = req.clone();
    ok.extra = json!({"confirmationPolicy": {"l1Confirmations": 0}});
    let (_, good) = pay(&buyer, &v, &ok);
    let parsed = parse_request(serde_json::to_vec(&good).unwrap().as_slice()).unwrap();
    let Answer::Done(v) = f.verify(&parsed, Caller::default()).await else {
        panic!("valid verify");
    };
    assert!(v.is_valid, "{v:?}");
    assert_eq!(
        store_calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one store round trip per verify"
    );
    assert!(chain.count() >= 2, "tip and UTxO lookups");
    app.stop().await;
}
