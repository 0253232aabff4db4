//! Cardano knowledge: transactions, addresses, assets, networks and the slot
//! clock. Nothing here knows HTTP or x402.

pub mod network;
pub mod types;

pub use network::Network;
pub use types::{Asset, AssetId, TxId, UtxoRef, Value};
