//! Any bytes as a payment transaction: decoding must answer, never panic,
//! and a decoded transaction must survive every accessor and the witness check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x402_facilitator::cardano::{ParsedTx, TxDecodeError};

fuzz_target!(|data: &[u8]| {
    match ParsedTx::decode(data) {
        Ok(tx) => {
            assert_eq!(tx.raw(), data);
            let _ = tx.verify_witnesses();
            let _ = tx.unsupported_features();
            for o in tx.outputs() {
                assert!(!o.raw_cbor.is_empty());
            }
        }
        // pallas panicked inside catch_unwind: a finding worth a crash report.
        Err(TxDecodeError::DecoderPanicked) => panic!("pallas decoder panicked"),
        Err(_) => {}
    }
});
