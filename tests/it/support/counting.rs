//! Wrappers that count every call a use case makes to the chain provider and
//! the store, to prove the cheapest checks run first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use x402_facilitator::cardano::{Network, ProtocolParams, TxId, UtxoRef, UtxoState};
use x402_facilitator::chain::{
    ChainError, ChainProvider, DependencyHealth, DynChain, Evidence, SubmitOutcome, Tip,
};
use x402_facilitator::store::{
    CasOutcome, ClaimOutcome, DynStore, IdempotencyOutcome, Page, ReserveOutcome, Schedule,
    SettlementRecord, SettlementState, Store, StoreError,
};

#[derive(Clone)]
pub struct CountingChain {
    inner: DynChain,
    pub calls: Arc<AtomicUsize>,
}

impl CountingChain {
    pub fn new(inner: DynChain) -> Self {
        CountingChain {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
    pub fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ChainProvider for CountingChain {
    fn network(&self) -> Network {
        self.inner.network()
    }
    async fn utxos(&self, refs: &[UtxoRef]) -> Vec<UtxoState> {
        self.hit();
        self.inner.utxos(refs).await
    }
    async fn tip(&self) -> Result<Tip, ChainError> {
        self.hit();
        self.inner.tip().await
    }
    async fn protocol_params(&self) -> Result<Arc<ProtocolParams>, ChainError> {
        self.hit();
        self.inner.protocol_params().await
    }
    async fn submit(&self, tx_cbor: &[u8]) -> SubmitOutcome {
        self.hit();
        self.inner.submit(tx_cbor).await
    }
    async fn evidence(&self, tx_id: &TxId) -> Result<Evidence, ChainError> {
        self.hit();
        self.inner.evidence(tx_id).await
    }
    fn slot_at(&self, unix_seconds: i64) -> u64 {
        self.inner.slot_at(unix_seconds)
    }
    async fn output_owner(&self, r: &UtxoRef) -> Result<Option<Vec<u8>>, ChainError> {
        self.hit();
        self.inner.output_owner(r).await
    }
}

pub struct CountingStore {
    inner: DynStore,
    pub calls: Arc<AtomicUsize>,
}

impl CountingStore {
    pub fn new(inner: DynStore) -> Self {
        CountingStore {
            inner,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
    fn hit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn reserve(
        &self,
        i: &[UtxoRef],
        o: &TxId,
        t: Duration,
    ) -> Result<ReserveOutcome, StoreError> {
        self.hit();
        self.inner.reserve(i, o, t).await
    }
    async fn release(&self, i: &[UtxoRef], o: &TxId) -> Result<(), StoreError> {
        self.hit();
        self.inner.release(i, o).await
    }
    async fn holder(&self, i: &UtxoRef) -> Result<Option<TxId>, StoreError> {
        self.hit();
        self.inner.holder(i).await
    }
    async fn reservations_active(&self) -> Result<u64, StoreError> {
        self.hit();
        self.inner.reservations_active().await
    }
    async fn claim(
        &self,
        r: &SettlementRecord,
        hold: Duration,
        retention: Duration,
        s: Schedule,
    ) -> Result<ClaimOutcome, StoreError> {
        self.hit();
        self.inner.claim(r, hold, retention, s).await
    }
    async fn release_claim(&self, t: &TxId, a: &str) -> Result<bool, StoreError> {
        self.hit();
        self.inner.release_claim(t, a).await
    }
    async fn set_flag(&self, n: &str, v: bool) -> Result<(), StoreError> {
        self.hit();
        self.inner.set_flag(n, v).await
    }
    async fn flag(&self, n: &str) -> Result<bool, StoreError> {
        self.hit();
        self.inner.flag(n).await
    }
    async fn logical_key_holder(&self, k: &str) -> Result<Option<TxId>, StoreError> {
        self.hit();
        self.inner.logical_key_holder(k).await
    }
    async fn transition(
        &self,
        st: SettlementState,
        a: &str,
        n: &SettlementRecord,
        r: Duration,
        s: Schedule,
    ) -> Result<CasOutcome, StoreError> {
        self.hit();
        self.inner.transition(st, a, n, r, s).await
    }
    async fn get(&self, t: &TxId) -> Result<Option<SettlementRecord>, StoreError> {
        self.hit();
        self.inner.get(t).await
    }
    async fn list(
        &self,
        s: Option<SettlementState>,
        c: Option<&str>,
        l: usize,
    ) -> Result<Page, StoreError> {
        self.hit();
        self.inner.list(s, c, l).await
    }
    async fn due(&self, n: i64, l: usize) -> Result<Vec<TxId>, StoreError> {
        self.hit();
        self.inner.due(n, l).await
    }
    async fn count_by_state(&self) -> Result<Vec<(SettlementState, u64)>, StoreError> {
        self.hit();
        self.inner.count_by_state().await
    }
    async fn acquire_lease(&self, n: &str, h: &str, t: Duration) -> Result<bool, StoreError> {
        self.hit();
        self.inner.acquire_lease(n, h, t).await
    }
    async fn release_lease(&self, n: &str, h: &str) -> Result<(), StoreError> {
        self.hit();
        self.inner.release_lease(n, h).await
    }
    async fn idempotency_begin(
        &self,
        i: &str,
        d: &str,
        t: Duration,
    ) -> Result<IdempotencyOutcome, StoreError> {
        self.hit();
        self.inner.idempotency_begin(i, d, t).await
    }
    async fn idempotency_complete(
        &self,
        i: &str,
        d: &str,
        a: &str,
        t: Duration,
    ) -> Result<(), StoreError> {
        self.hit();
        self.inner.idempotency_complete(i, d, a, t).await
    }
    async fn idempotency_abort(&self, i: &str, d: &str) -> Result<(), StoreError> {
        self.hit();
        self.inner.idempotency_abort(i, d).await
    }
    async fn health(&self) -> DependencyHealth {
        self.inner.health().await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
