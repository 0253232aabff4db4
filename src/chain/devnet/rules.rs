//! The bridge between the devnet ledger and the `cardano` module: decoding
//! with [`ParsedTx::decode`] and phase-1 validation with
//! [`phase1::validate_for_ledger`], the very rules the verifier applies, so a
//! payment the facilitator accepts is one the devnet accepts and vice versa.
//!
//! This module adds only what the ledger needs around them: the node-style
//! rejection text, and the record of an accepted transaction.

use std::sync::Arc;

use pallas_traverse::{ComputeHash, Era, MultiEraOutput};

use crate::cardano::phase1;
use crate::cardano::{Network, ParsedTx, ProtocolParams, TxOut, UtxoRef, UtxoState};
use crate::chain::devnet::ledger::{OutputRecord, TxCounts, TxOrigin, TxRecord, TxStatus};

/// A transaction the devnet refused, in the node's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The node's name for the failure, e.g. `BadInputsUTxO`.
    pub reason: String,
    /// The name followed by details, e.g. `BadInputsUTxO: <ref> not in the UTxO set`.
    pub message: String,
}

impl Rejection {
    fn from_message(message: String) -> Self {
        let reason = message
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Rejection { reason, message }
    }

    /// The text the devnet's `POST /tx/submit` answers in its 400 body, shaped
    /// like the node error Blockfrost relays.
    pub fn submit_api_message(&self) -> String {
        format!(
            "transaction submit error ShelleyTxValidationError ShelleyBasedEraConway (ApplyTxError [{}])",
            self.message
        )
    }

    /// What a Blockfrost client makes of [`Rejection::submit_api_message`]; the
    /// devnet provider answers the same string, so both back ends agree.
    pub fn outcome_reason(&self) -> String {
        crate::chain::blockfrost::rejection_reason(&self.submit_api_message())
    }
}

/// Decode submitted bytes (`DeserialiseFailure` when they are not a transaction).
/// The same decoder as the verifier's, plus what the node refuses while
/// decoding and the verifier reports at a later step: repeated members of the
/// body's sets.
pub fn decode(bytes: &[u8]) -> Result<ParsedTx, Rejection> {
    let tx = ParsedTx::decode(bytes)
        .map_err(|e| Rejection::from_message(format!("DeserialiseFailure: {e}")))?;
    phase1::check_no_duplicates(&tx).map_err(|e| Rejection::from_message(e.node_reason()))?;
    Ok(tx)
}

/// Apply the phase-1 rules at `slot`, resolving inputs with `resolve`; on
/// success return the transaction's record (status `Mempool`).
pub fn check(
    tx: &ParsedTx,
    resolve: &dyn Fn(&UtxoRef) -> UtxoState,
    params: &ProtocolParams,
    slot: u64,
    network: Network,
) -> Result<TxRecord, Rejection> {
    let resolved: Vec<UtxoState> = tx.inputs().iter().map(resolve).collect();
    phase1::validate_for_ledger(tx, &resolved, params, slot, network)
        .map_err(|e| Rejection::from_message(e.node_reason()))?;
    Ok(record_of(tx))
}

fn record_of(tx: &ParsedTx) -> TxRecord {
    TxRecord {
        id: tx.id(),
        origin: TxOrigin::Submitted,
        inputs: tx.inputs().to_vec(),
        collateral_inputs: tx.collateral_inputs().to_vec(),
        reference_inputs: tx.reference_inputs().to_vec(),
        outputs: tx.outputs().iter().map(output_record).collect(),
        fee: tx.fee(),
        size: tx.size() as u64,
        invalid_before: tx.validity_start(),
        invalid_hereafter: tx.ttl(),
        counts: TxCounts::default(),
        cbor: Some(Arc::from(tx.raw())),
        status: TxStatus::Mempool,
    }
}

/// Copy an output, reading its datum and reference-script hash (for
/// Blockfrost's `data_hash`, `inline_datum`, `reference_script_hash`) only
/// when the decoder flagged them.
fn output_record(o: &TxOut) -> OutputRecord {
    let mut rec = OutputRecord::plain(o.address.clone(), o.value.clone());
    rec.script_ref_size = o.script_ref_size;
    if !(o.has_datum || o.has_script_ref) {
        return rec;
    }
    // pallas reads definite lengths only; the node accepts both.
    let definite = crate::cardano::cbor::definite_lengths(&o.raw_cbor)
        .ok()
        .flatten()
        .unwrap_or_else(|| o.raw_cbor.clone());
    let Ok(out) = MultiEraOutput::decode(Era::Conway, &definite) else {
        return rec;
    };
    match out.datum() {
        Some(pallas_primitives::conway::DatumOption::Hash(h)) => rec.datum_hash = Some(*h),
        Some(pallas_primitives::conway::DatumOption::Data(d)) => {
            let raw = d.0.raw_cbor();
            rec.datum_hash = Some(*pallas_crypto::hash::Hasher::<256>::hash(raw));
            rec.inline_datum = Some(raw.to_vec());
        }
        None => {}
    }
    rec.script_ref_hash = out.script_ref().map(|s| {
        use pallas_primitives::conway::ScriptRef;
        let h = match &s {
            ScriptRef::NativeScript(n) => {
                pallas_crypto::hash::Hasher::<224>::hash_tagged(n.raw_cbor(), 0)
            }
            ScriptRef::PlutusV1Script(p) => p.compute_hash(),
            ScriptRef::PlutusV2Script(p) => p.compute_hash(),
            ScriptRef::PlutusV3Script(p) => p.compute_hash(),
        };
        *h
    });
    rec
}
