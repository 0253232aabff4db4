//! A [`ChainProvider`] that wraps every call in a `chain.<op>` span (DEBUG
//! level), for the OpenTelemetry traces (see [`crate::otel`]). Installed only
//! when traces are exported; otherwise the provider is used unwrapped.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use super::{
    ChainError, ChainProvider, DependencyHealth, DynChain, Evidence, ProtocolParams, SubmitOutcome,
    Tip, UtxoState,
};
use crate::cardano::{Network, TxId, UtxoRef};

pub struct TracedChain(pub DynChain);

#[async_trait]
impl ChainProvider for TracedChain {
    fn network(&self) -> Network {
        self.0.network()
    }

    async fn utxos(&self, refs: &[UtxoRef]) -> Vec<UtxoState> {
        let span = tracing::debug_span!("chain.utxos", refs = refs.len());
        self.0.utxos(refs).instrument(span).await
    }

    async fn tip(&self) -> Result<Tip, ChainError> {
        self.0
            .tip()
            .instrument(tracing::debug_span!("chain.tip"))
            .await
    }

    async fn protocol_params(&self) -> Result<Arc<ProtocolParams>, ChainError> {
        self.0
            .protocol_params()
            .instrument(tracing::debug_span!("chain.protocol_params"))
            .await
    }

    async fn submit(&self, tx_cbor: &[u8]) -> SubmitOutcome {
        let span = tracing::debug_span!("chain.submit", bytes = tx_cbor.len());
        self.0.submit(tx_cbor).instrument(span).await
    }

    async fn evidence(&self, tx_id: &TxId) -> Result<Evidence, ChainError> {
        let span = tracing::debug_span!("chain.evidence", txId = %tx_id);
        self.0.evidence(tx_id).instrument(span).await
    }

    fn invalidate(&self, spent: &[UtxoRef]) {
        self.0.invalidate(spent)
    }

    async fn output_owner(&self, r: &UtxoRef) -> Result<Option<Vec<u8>>, ChainError> {
        let span = tracing::debug_span!("chain.output_owner");
        self.0.output_owner(r).instrument(span).await
    }

    fn reads_depth(&self) -> bool {
        self.0.reads_depth()
    }

    fn slot_at(&self, unix_seconds: i64) -> u64 {
        self.0.slot_at(unix_seconds)
    }

    async fn health(&self) -> DependencyHealth {
        self.0
            .health()
            .instrument(tracing::debug_span!("chain.health"))
            .await
    }
}
