//! Cardano knowledge: transactions, addresses, assets, networks and the slot
//! clock. Nothing here knows HTTP or x402.
//!
//! | module | what it is for |
//! |---|---|
//! | [`types`] | ids, UTxO references, assets, values (no pallas) |
//! | [`network`] | networks and their constants |
//! | [`slot`] | [`SlotClock`]: POSIX time to slots |
//! | [`ledger`] | [`UtxoState`] (tri-state lookup answer), [`UtxoInfo`], [`ProtocolParams`] |
//! | [`cbor`] | iterative CBOR well-formedness scanner guarding every decoder |
//! | [`tx`] | [`ParsedTx`], the owned view of one signed transaction |
//! | [`ed25519`] | strict witness signature checks, remembering recently decoded keys |
//! | [`address`] | strict Shelley address parsing and bech32 |
//! | [`shape`] | the node's strict record shapes (exact element counts, set rules) |
//! | [`phase1`] | the ledger's phase-1 rules, shared by verify and the devnet |
//! | [`plutus`] | Plutus data (Aiken-exact CBOR, strict decode), UPLC parameter application, script hashes |
//!
//! `cardano` is the foundation: it imports nothing from the rest of the crate
//! (tests/it/layering.rs checks). Building and signing payments is the
//! buyer's business and lives in the `buyer` module (feature `buyer`).

pub mod address;
pub mod cbor;
pub mod ed25519;
pub mod ledger;
pub mod network;
pub mod phase1;
pub mod plutus;
pub mod shape;
pub mod slot;
pub mod tx;
pub mod types;

pub use ledger::{ProtocolParams, RefScript, UtxoInfo, UtxoState};
pub use network::Network;
pub use slot::SlotClock;
pub use tx::{ParsedTx, TxDecodeError, TxOut, VkeyWitness, WitnessError};
pub use types::{Asset, AssetId, TxId, UtxoRef, Value};
