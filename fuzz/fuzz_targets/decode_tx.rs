//! Any bytes as a payment transaction: decoding must answer, never panic,
//! and a decoded transaction must survive every accessor and the witness check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x402_facilitator::cardano::cbor::{self, mutate};
use x402_facilitator::cardano::{ParsedTx, TxDecodeError};

fuzz_target!(|data: &[u8]| {
    // The definite-length copy pallas reads is one well-formed item too.
    if cbor::scan_single_item(data, cbor::DEFAULT_MAX_DEPTH).is_ok()
        && let Ok(Some(definite)) = cbor::definite_lengths(data)
    {
        assert!(cbor::scan_single_item(&definite, cbor::DEFAULT_MAX_DEPTH).is_ok());
    }
    match ParsedTx::decode(data) {
        Ok(tx) => {
            assert_eq!(tx.raw(), data);
            let _ = tx.verify_witnesses();
            let _ = tx.unsupported_features();
            for o in tx.outputs() {
                assert!(!o.raw_cbor.is_empty());
            }
            // The node's exact-count rule: a fifth element never decodes,
            // whatever the length encoding of the transaction array.
            let longer = mutate::with_extra_element(data, 0, &[0xf6]);
            assert!(longer.is_some_and(|l| ParsedTx::decode(&l).is_err()));
            // And an indefinite-length re-encoding decodes to the same transaction.
            if let Some(indef) = mutate::to_indefinite(data, 0) {
                let again = ParsedTx::decode(&indef).expect("indefinite re-encoding decodes");
                assert_eq!(again.id(), tx.id());
            }
        }
        // pallas panicked inside catch_unwind: a finding worth a crash report.
        Err(TxDecodeError::DecoderPanicked) => panic!("pallas decoder panicked"),
        Err(_) => {}
    }
});
