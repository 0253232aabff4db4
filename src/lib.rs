//! # x402-facilitator
//!
//! An x402 payment facilitator for Cardano. Resource servers (paid APIs) call
//! it to verify a buyer's signed transaction (`POST /verify`) and to submit it
//! exactly once and follow it to confirmation (`POST /settle`).
//!
//! ## Map of the crate
//!
//! | module | one reason to change |
//! |---|---|
//! | [`config`] | configuration layering, validation, the mainnet guard |
//! | [`telemetry`] | JSON (pino/bunyan) or pretty logs, Sentry |
//! | [`alloc`] | the process allocator (mimalloc, feature `mimalloc`) and the heap release after start-up |
//! | [`redact`] | URLs shown as scheme, host and port only (logs, health, check-config, Sentry) |
//! | [`otel`] | OpenTelemetry traces over OTLP/HTTP (off unless an endpoint is set) |
//! | [`app`] | wiring [`config::Settings`] into a running service; graceful shutdown |
//! | [`http`] | routes, the tower stack, errors as JSON |
//! | [`protocol`] | x402 v1/v2 wire types, header codecs, reason codes (no chain logic) |
//! | [`cardano`] | transactions over pallas, addresses, assets, networks, slot clock, UTxO states, protocol parameters |
//! | [`scheme`] | the `exact` Cardano verification pipeline |
//! | [`chain`] | [`chain::ChainProvider`]: the embedded devnet ledger and Blockfrost |
//! | [`store`] | [`store::Store`]: reservations and the settlement journal (memory, Redis) |
//! | [`settle`] | settlement service and reconciler (the journal state machine) |
//! | `buyer` | keys, transaction building and signing, the seller's Masumi quote (feature `buyer`) |
//! | `demo` | `x402-facilitator demo`: facilitator, resource server and buyer in one process (feature `buyer`) |
//!
//! `cardano` and `protocol` are the foundation and import nothing above
//! them (`tests/it/layering.rs` checks). The service core holds no keys and
//! signs nothing: `buyer` and `demo` exist only with the `buyer` cargo
//! feature (default), and `cargo build --no-default-features` builds the
//! facilitator without them.

pub mod alloc;
pub mod app;
#[cfg(feature = "buyer")]
pub mod buyer;
pub mod cardano;
pub mod chain;
pub mod config;
#[cfg(feature = "buyer")]
pub mod demo;
pub mod facilitator;
pub mod http;
pub mod otel;
pub mod protocol;
pub mod redact;
pub mod scheme;
pub mod settle;
pub mod store;
pub mod telemetry;
