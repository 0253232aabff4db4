//! Payment schemes. Only `exact` on Cardano for now; see [`exact_cardano`]
//! for the verify pipeline and the `/supported` capabilities.

pub mod exact_cardano;
pub mod masumi;

pub use exact_cardano::{
    VerifiedPayment, VerifyContext, VerifyLimits, VerifyOutcome, supported_kinds, verify,
};
