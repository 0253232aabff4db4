//! Payment schemes. Only `exact` on Cardano for now; see [`exact_cardano`]
//! for the verify pipeline and the `/supported` capabilities, [`method`] for the
//! asset transfer methods (`default`, `script`, `masumi`).

pub mod exact_cardano;
pub mod masumi;
pub mod method;

pub use exact_cardano::{
    VerifiedPayment, VerifyContext, VerifyLimits, VerifyOutcome, supported_kinds, verify,
};
