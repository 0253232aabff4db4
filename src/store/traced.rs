//! A [`Store`] that wraps every call in a `store.<op>` span (DEBUG level),
//! for the OpenTelemetry traces (see [`crate::otel`]). Installed only when
//! traces are exported; otherwise the store is used unwrapped.

use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument;

use super::{
    CasOutcome, ClaimOutcome, DynStore, IdempotencyOutcome, Page, ReserveOutcome, Schedule,
    SettlementRecord, SettlementState, Store, StoreError,
};
use crate::cardano::{TxId, UtxoRef};
use crate::chain::DependencyHealth;

pub struct TracedStore(pub DynStore);

macro_rules! span {
    ($op:literal, $self:ident) => {
        tracing::debug_span!(concat!("store.", $op), backend = $self.0.backend())
    };
}

#[async_trait]
impl Store for TracedStore {
    async fn reserve(
        &self,
        inputs: &[UtxoRef],
        owner: &TxId,
        ttl: Duration,
    ) -> Result<ReserveOutcome, StoreError> {
        let span = span!("reserve", self);
        self.0.reserve(inputs, owner, ttl).instrument(span).await
    }

    async fn release(&self, inputs: &[UtxoRef], owner: &TxId) -> Result<(), StoreError> {
        let span = span!("release", self);
        self.0.release(inputs, owner).instrument(span).await
    }

    async fn holder(&self, input: &UtxoRef) -> Result<Option<TxId>, StoreError> {
        let span = span!("holder", self);
        self.0.holder(input).instrument(span).await
    }

    async fn reservations_active(&self) -> Result<u64, StoreError> {
        let span = span!("reservations_active", self);
        self.0.reservations_active().instrument(span).await
    }

    async fn claim(
        &self,
        record: &SettlementRecord,
        reservation: Duration,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<ClaimOutcome, StoreError> {
        let span = span!("claim", self);
        self.0
            .claim(record, reservation, retention, schedule)
            .instrument(span)
            .await
    }

    async fn release_claim(&self, tx_id: &TxId, attempt: &str) -> Result<bool, StoreError> {
        let span = span!("release_claim", self);
        self.0.release_claim(tx_id, attempt).instrument(span).await
    }

    async fn set_flag(&self, name: &str, value: bool) -> Result<(), StoreError> {
        let span = span!("set_flag", self);
        self.0.set_flag(name, value).instrument(span).await
    }

    async fn flag(&self, name: &str) -> Result<bool, StoreError> {
        let span = span!("flag", self);
        self.0.flag(name).instrument(span).await
    }

    async fn logical_key_holder(&self, key: &str) -> Result<Option<TxId>, StoreError> {
        let span = span!("logical_key_holder", self);
        self.0.logical_key_holder(key).instrument(span).await
    }

    async fn transition(
        &self,
        expected_state: SettlementState,
        expected_attempt: &str,
        next: &SettlementRecord,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<CasOutcome, StoreError> {
        let span = span!("transition", self);
        self.0
            .transition(expected_state, expected_attempt, next, retention, schedule)
            .instrument(span)
            .await
    }

    async fn get(&self, tx_id: &TxId) -> Result<Option<SettlementRecord>, StoreError> {
        let span = span!("get", self);
        self.0.get(tx_id).instrument(span).await
    }

    async fn list(
        &self,
        state: Option<SettlementState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let span = span!("list", self);
        self.0.list(state, cursor, limit).instrument(span).await
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<TxId>, StoreError> {
        let span = span!("due", self);
        self.0.due(now_ms, limit).instrument(span).await
    }

    async fn count_by_state(&self) -> Result<Vec<(SettlementState, u64)>, StoreError> {
        let span = span!("count_by_state", self);
        self.0.count_by_state().instrument(span).await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let span = span!("acquire_lease", self);
        self.0
            .acquire_lease(name, holder, ttl)
            .instrument(span)
            .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let span = span!("release_lease", self);
        self.0.release_lease(name, holder).instrument(span).await
    }

    async fn idempotency_begin(
        &self,
        id: &str,
        payload_digest: &str,
        ttl: Duration,
    ) -> Result<IdempotencyOutcome, StoreError> {
        let span = span!("idempotency_begin", self);
        self.0
            .idempotency_begin(id, payload_digest, ttl)
            .instrument(span)
            .await
    }

    async fn idempotency_complete(
        &self,
        id: &str,
        payload_digest: &str,
        answer_json: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let span = span!("idempotency_complete", self);
        self.0
            .idempotency_complete(id, payload_digest, answer_json, ttl)
            .instrument(span)
            .await
    }

    async fn idempotency_abort(&self, id: &str, payload_digest: &str) -> Result<(), StoreError> {
        let span = span!("idempotency_abort", self);
        self.0
            .idempotency_abort(id, payload_digest)
            .instrument(span)
            .await
    }

    async fn health(&self) -> DependencyHealth {
        let span = span!("health", self);
        self.0.health().instrument(span).await
    }

    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    async fn close(&self) {
        self.0.close().await
    }
}
