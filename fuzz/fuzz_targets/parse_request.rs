//! Any bytes as a /verify body: parsing and the pure verify stages must answer, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x402_facilitator::cardano::Network;
use x402_facilitator::protocol::parse_request;
use x402_facilitator::scheme::exact_cardano::{
    VerifyLimits, check_envelope, decode_and_check_signatures,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        if let Ok(env) = check_envelope(Network::Preprod, &VerifyLimits::default(), &req) {
            let _ = decode_and_check_signatures(&env);
        }
    }
});
