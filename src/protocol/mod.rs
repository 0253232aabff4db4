//! x402 wire types (v1 and v2), header codecs and reason codes.
//!
//! This module knows JSON and the x402 envelope, not Cardano: the
//! scheme-specific parts (`payload`, `extra`) stay JSON values until
//! [`crate::scheme`] interprets them.
//!
//! | module | what it is for |
//! |---|---|
//! | [`types`] | request/response bodies, v2 and v1 |
//! | [`parse`] | [`parse_request`]: envelope errors (400) vs business rejections (200) |
//! | [`headers`] | base64 codecs for `PAYMENT-*` and `X-PAYMENT*` headers |
//! | [`reason`] | every reason code, spelled as the reference implementations do |
//! | [`key_order`] | the document order of `extra.parameters` keys (JSON maps here are sorted) |

pub mod headers;
pub mod key_order;
pub mod parse;
pub mod reason;
pub mod types;

pub use parse::{EnvelopeError, ParsedRequest, RequirementsView, parse_request};
pub use reason::Reason;
pub use types::*;
