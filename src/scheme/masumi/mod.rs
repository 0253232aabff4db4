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
pub mod lock;
pub mod terms;
// The seller and buyer of the vectors come from `crate::buyer`.
#[cfg(all(test, feature = "buyer"))]
mod vectors;
pub mod verify;

pub use verify::{MasumiPolicy, MasumiTerms, check_lock, check_requirements};

/// `extra` fields the client's `accepted` copy must repeat exactly under `masumi`.
pub const COMMITTED_FIELDS: &[&str] = &[
    "areFeesSponsored",
    "inputCommitment",
    "terms",
    "referenceKey",
    "referenceSignature",
    "blockchainIdentifier",
    "deployment",
];

/// Steps 9–15 from the `exact` pipeline's stage E (the method dispatch).
pub fn check_payment(
    t: &MasumiTerms,
    p: &crate::scheme::method::PaymentCheck<'_>,
) -> Result<(), (crate::protocol::Reason, String)> {
    let nonce_ix = p.tx.inputs().iter().position(|i| i == p.nonce);
    let owner = nonce_ix
        .and_then(|i| p.resolved_inputs.get(i))
        .map(|u| u.address.as_slice())
        .unwrap_or_default();
    let asset = t.asset.clone();
    let clock = p.slot_clock;
    check_lock(
        t,
        &verify::LockFacts {
            tx: p.tx,
            asset: &asset,
            amount: t.amount,
            nonce_owner: owner,
            signers: p.signers,
            coins_per_utxo_byte: Some(p.params.coins_per_utxo_size),
            slot_of_ms: &move |ms| clock.slot_of_ms(ms),
        },
    )
}

#[cfg(test)]
mod hostile_input_tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any bytes reach a typed answer in every Masumi decoder: never a panic.
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = super::cbor::decode(&data);
            let _ = super::identifier::decode(&data);
            let _ = super::datum::parse(&data);
            let _ = super::verify::inline_datum(&data);
            let _ = super::cose::verify_seller_signature(&data, &data, &data, &[0; 32]);
        }

        /// Any JSON as `extra` gets a schema answer, never a panic.
        #[test]
        fn schema_never_panics(s in "\\PC{0,200}") {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
                let _ = super::terms::parse_extra(&v, crate::cardano::Network::Preprod);
            }
        }
    }
}
