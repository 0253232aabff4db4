//! What the ledger says: the state of one output (spent, unspent, or not
//! known) and the protocol parameters its rules use.
//!
//! These are Cardano facts, not facts about any backend: the verify pipeline,
//! the phase-1 rules and the devnet ledger all reason over them, and every
//! chain backend answers in them. They live here so that `cardano`
//! depends on nothing above it.

use serde::Serialize;

use super::types::Value;

/// What the facilitator needs to know about one unspent output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UtxoInfo {
    /// Owner address as raw bytes (header byte first).
    pub address: Vec<u8>,
    /// The full value held.
    pub value: Value,
    /// The reference script the output carries: Conway charges a fee per byte
    /// of the reference scripts of every spent (and referenced) output.
    pub reference_script: RefScript,
}

impl UtxoInfo {
    /// An output without a reference script.
    pub fn new(address: Vec<u8>, value: Value) -> Self {
        UtxoInfo {
            address,
            value,
            reference_script: RefScript::None,
        }
    }
}

/// Whether an output carries a reference script, and its size as the fee rule counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefScript {
    #[default]
    None,
    /// A reference script of this many bytes (see [`crate::cardano::shape::script_ref_size`]).
    Size(u64),
    /// The output carries one but the backend did not say how large it is:
    /// the fee cannot be established (`exact_cardano_facilitator_input_value_unavailable`).
    SizeUnknown,
}

/// The tri-state answer for one UTxO reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UtxoState {
    Unspent(UtxoInfo),
    /// Positive evidence that the output existed and was consumed, or that the
    /// producing transaction exists but has no output at that index.
    Spent,
    /// The backend could not say (error, timeout, ambiguity). Never treated as spent or unspent.
    Unknown(String),
}

/// The protocol parameters the verify pipeline and the devnet ledger use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolParams {
    pub min_fee_a: u64,
    pub min_fee_b: u64,
    pub max_tx_size: u64,
    pub max_val_size: u64,
    pub coins_per_utxo_size: u64,
    pub key_deposit: u64,
    pub pool_deposit: u64,
    pub max_collateral_inputs: u64,
    pub collateral_percent: u64,
    pub min_fee_ref_script_cost_per_byte: u64,
    pub protocol_major: u64,
    pub protocol_minor: u64,
    pub epoch: u64,
}

impl ProtocolParams {
    /// Mainnet's current values; the devnet uses these.
    pub fn mainnet_like() -> Self {
        ProtocolParams {
            min_fee_a: 44,
            min_fee_b: 155_381,
            max_tx_size: 16_384,
            max_val_size: 5_000,
            coins_per_utxo_size: 4_310,
            key_deposit: 2_000_000,
            pool_deposit: 500_000_000,
            max_collateral_inputs: 3,
            collateral_percent: 150,
            min_fee_ref_script_cost_per_byte: 15,
            protocol_major: 10,
            protocol_minor: 0,
            epoch: 0,
        }
    }

    /// Linear minimum fee for a transaction of `size` bytes.
    pub fn min_fee(&self, size: u64) -> u64 {
        self.min_fee_a
            .saturating_mul(size)
            .saturating_add(self.min_fee_b)
    }
}
