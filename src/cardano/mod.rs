//! Cardano knowledge: transactions, addresses, assets, networks and the slot
//! clock. Nothing here knows HTTP or x402.
//!
//! | module | what it is for |
//! |---|---|
//! | [`types`] | ids, UTxO references, assets, values (no pallas) |
//! | [`network`] | networks and their constants |
//! | [`cbor`] | iterative CBOR well-formedness scanner guarding every decoder |
//! | [`tx`] | [`ParsedTx`], the owned view of one signed transaction |
//! | [`address`] | strict Shelley address parsing and bech32 |
//! | [`shape`] | the node's strict record shapes (exact element counts, set rules) |
//! | [`phase1`] | the ledger's phase-1 rules, shared by verify and the devnet |
//! | [`plutus`] | Plutus data (Aiken-exact CBOR, strict decode), UPLC parameter application, script hashes |
//! | [`keys`] | CIP-1852 HD keys from a BIP39 mnemonic (tests, demo, devnet faucet) |
//! | [`builder`] | building and signing simple payments |

pub mod address;
pub mod builder;
pub mod cbor;
pub mod keys;
pub mod network;
pub mod phase1;
pub mod plutus;
pub mod shape;
pub mod tx;
pub mod types;

pub use network::Network;
pub use tx::{ParsedTx, TxDecodeError, TxOut, VkeyWitness, WitnessError};
pub use types::{Asset, AssetId, TxId, UtxoRef, Value};
