//! Liveness of the journal: a submit whose outcome was unknown (and which in
//! truth never reached the node) is handed to the network again by the
//! reconciler, the exact same bytes, bounded, and the payment settles with
//! one record and one success.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use x402_facilitator::cardano::{Network, ProtocolParams, TxId, UtxoRef, UtxoState};
use x402_facilitator::chain::{ChainError, ChainProvider, DynChain, Evidence, SubmitOutcome, Tip};
use x402_facilitator::facilitator::{Answer, Caller, Facilitator, SettleResult};
use x402_facilitator::protocol::parse::parse_request;
use x402_facilitator::store::SettlementState;
use x402_facilitator::store::memory::MemoryStore;

use crate::support::app::{spawn_app, test_settings};
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};

/// A chain whose first submit is lost on the way: the caller sees a timeout
/// (an unknown outcome), the node never saw the bytes.
struct LosesFirstSubmit {
    inner: DynChain,
    lost: AtomicBool,
}

#[async_trait]
impl ChainProvider for LosesFirstSubmit {
    fn network(&self) -> Network {
        self.inner.network()
    }
    async fn utxos(&self, refs: &[UtxoRef]) -> Vec<UtxoState> {
        self.inner.utxos(refs).await
    }
    async fn tip(&self) -> Result<Tip, ChainError> {
        self.inner.tip().await
    }
    async fn protocol_params(&self) -> Result<Arc<ProtocolParams>, ChainError> {
        self.inner.protocol_params().await
    }
    async fn submit(&self, tx_cbor: &[u8]) -> SubmitOutcome {
        if !self.lost.swap(true, Ordering::SeqCst) {
            return SubmitOutcome::Unknown("timed out after sending".into());
        }
        self.inner.submit(tx_cbor).await
    }
    async fn evidence(&self, tx_id: &TxId) -> Result<Evidence, ChainError> {
        self.inner.evidence(tx_id).await
    }
    fn slot_at(&self, unix_seconds: i64) -> u64 {
        self.inner.slot_at(unix_seconds)
    }
    async fn output_owner(&self, r: &UtxoRef) -> Result<Option<Vec<u8>>, ChainError> {
        self.inner.output_owner(r).await
    }
}

#[tokio::test]
async fn an_unknown_submit_is_rebroadcast_by_the_reconciler_and_settles_once() {
    let app = spawn_app().await;
    let devnet = app.state.devnet.clone().expect("embedded devnet");
    let (buyer, _) = funded_buyer(&app.client, &app.base, 0x51, 20_000_000).await;
    let v = view(&app.client, &app.base, &buyer).await;
    let req = requirements(&seller(0x91), 2_000_000, 0);
    let (built, body) = pay(&buyer, &v, &req);

    let mut s = test_settings();
    s.settlement.confirmation_timeout = std::time::Duration::from_secs(1);
    s.settlement.rebroadcast_after = std::time::Duration::from_secs(1);
    let chain = Arc::new(LosesFirstSubmit {
        inner: devnet.clone(),
        lost: AtomicBool::new(false),
    });
    let store = Arc::new(MemoryStore::new());
    let f = Facilitator::new(Arc::new(s), chain, store.clone());
    let parsed = parse_request(serde_json::to_vec(&body).unwrap().as_slice()).unwrap();

    // The first settle: the submit outcome is unknown, the chain never sees
    // it within the wait: pending, never failed.
    let SettleResult::Answer(Answer::Done(first)) = f.settle(&parsed, Caller::default()).await
    else {
        panic!("settle answered 200");
    };
    assert!(!first.success, "{first:?}");
    assert_eq!(first.error_reason.as_deref(), Some("settlement_pending"));
    assert_eq!(first.transaction, built.tx_id.to_hex());
    assert_eq!(devnet.submissions(&built.tx_id), 0, "the bytes were lost");

    // The reconciler hands the same bytes over again, once the delay passed.
    let mut state = None;
    for _ in 0..60 {
        f.reconcile_now().await.unwrap();
        let rec = f.settlement_record(&built.tx_id).await.unwrap().unwrap();
        state = Some(rec.state);
        if rec.state == SettlementState::Confirmed {
            assert_eq!(
                rec.submissions, 2,
                "one lost hand-over and one re-broadcast"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, Some(SettlementState::Confirmed));
    assert_eq!(devnet.submissions(&built.tx_id), 1);

    // The caller's retry observes the confirmation and gets the one success.
    let SettleResult::Answer(Answer::Done(again)) = f.settle(&parsed, Caller::default()).await
    else {
        panic!("settle answered 200");
    };
    assert!(again.success, "{again:?}");
    let page = f.list_settlements(None, None, 100).await.unwrap();
    assert_eq!(
        page.records
            .iter()
            .filter(|r| r.tx_id == built.tx_id)
            .count(),
        1,
        "never a second record"
    );
    app.stop().await;
}
