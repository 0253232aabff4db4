//! The `masumi` asset transfer method of the Cardano `exact` scheme.
//!
//! The buyer locks one asset into the Masumi V2 `vested_pay` escrow under a
//! `FundsLocked` inline datum; the seller authorised the terms beforehand with
//! a CIP-8 signature over `termsDigest`. A settled Masumi payment means
//! "locked", not "delivered": release, refund and dispute happen later, on
//! Masumi's side.
//!
//! Map of the module (each piece is pure and table-tested):
//! - [`terms`]: the closed `extra` schema, the request commitment
//!   (`inputHash`, RFC 8785 JCS) and `signedTerms` / `termsDigest`;
//! - [`cose`] (over the strict reader in [`cbor`]): the seller's COSE_Sign1;
//! - [`identifier`]: `blockchainIdentifier` (bounded LZString);
//! - [`escrow`]: the `vested_pay` escrow address of a deployment (memoized);
//! - [`datum`]: the `FundsLocked` inline datum, strict parse and Aiken-style encode;
//! - [`verify`]: the checks in the reference order: [`check_requirements`]
//!   (steps 1-8, on the JSON) and [`check_lock`] (steps 9-15, on the transaction).

pub mod cbor;
pub mod cose;
pub mod datum;
pub mod escrow;
pub mod identifier;
pub mod quote;
pub mod terms;
pub mod verify;

pub use verify::{MasumiPolicy, MasumiTerms, check_lock, check_requirements};
