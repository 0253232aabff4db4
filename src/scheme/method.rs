//! Asset transfer methods of the Cardano `exact` scheme (`extra.assetTransferMethod`).
//!
//! A method is parsed once, in stage A, from the requirements alone ([`TransferMethod::parse`]):
//! everything it can decide without the transaction (is `payTo` the right script address?) is
//! decided there. In stage E, after the output paying `payTo` has been found and its amount and
//! min-UTxO checked, [`TransferMethod::check_payment`] runs the method's own rules on it.
//!
//! Adding a method: a variant of [`TransferMethod`], its name in [`TransferMethod::SUPPORTED`]
//! (which `/supported` advertises), an arm in `parse` and in `check_payment`, and the `extra`
//! fields `accepted` must repeat in [`TransferMethod::committed_fields`].
//!
//! | method | module | what it adds |
//! |---|---|---|
//! | `default` | – | nothing: a plain payment to `payTo` |
//! | `script` | [`script`] | `payTo` is the script address of a declared or derived script hash; datum rules |
//! | `masumi` | [`crate::scheme::masumi`] | seller-signed terms, escrow address of a deployment, `FundsLocked` datum |

pub mod script;

use serde_json::Value as Json;

use crate::cardano::address::ShelleyAddress;
use crate::cardano::{Network, ParsedTx, ProtocolParams, TxOut, UtxoInfo, UtxoRef};
use crate::protocol::{Reason, RequirementsView};
use crate::scheme::masumi::{MasumiPolicy, MasumiTerms};

pub use script::ScriptMethod;

/// A method rejection: the reason code and a message for the caller.
pub type MethodError = (Reason, String);

/// The parsed, validated transfer method of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferMethod {
    /// `default` (or no `assetTransferMethod`): pay `payTo` directly.
    Default,
    /// `script`: pay a Plutus script address.
    Script(Box<ScriptMethod>),
    /// `masumi`: lock into the Masumi V2 escrow under seller-signed terms.
    Masumi(Box<MasumiTerms>),
}

/// What [`TransferMethod::parse`] reads: the requirements (never the client's `accepted` copy).
#[derive(Clone, Copy, Debug)]
pub struct MethodRequest<'a> {
    pub network: Network,
    /// `paymentRequirements`, with `extra` and the document order of `extra.parameters`.
    pub requirements: &'a RequirementsView<'a>,
    /// `payTo`, already parsed and checked to be a Shelley address of `network`.
    pub pay_to: &'a ShelleyAddress,
}

/// What [`TransferMethod::check_payment`] sees in stage E.
#[derive(Clone, Copy, Debug)]
pub struct PaymentCheck<'a> {
    pub tx: &'a ParsedTx,
    /// The output paying `payTo` that stage E chose, and its index among the outputs.
    pub output_index: usize,
    pub output: &'a TxOut,
    /// The transaction's inputs, resolved on chain, in body order.
    pub resolved_inputs: &'a [UtxoInfo],
    /// Key hashes whose witnesses verified.
    pub signers: &'a std::collections::BTreeSet<[u8; 28]>,
    pub params: &'a ProtocolParams,
    /// The payment's nonce (its owner is the payer).
    pub nonce: &'a UtxoRef,
    /// The chain's slot clock.
    pub slot_clock: SlotClock<'a>,
}

/// A slot clock: the slot at a unix time in seconds (the chain provider's `slot_at`).
#[derive(Clone, Copy)]
pub struct SlotClock<'a>(pub &'a (dyn Fn(i64) -> u64 + Sync));

impl SlotClock<'_> {
    /// The last slot starting at or before a POSIX time in milliseconds
    /// (Shelley-era slots are one second long).
    pub fn slot_of_ms(&self, ms: u128) -> u64 {
        (self.0)(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
    }
}

impl std::fmt::Debug for SlotClock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotClock")
    }
}

impl TransferMethod {
    /// Method names this facilitator implements, as `/supported` lists them.
    pub const SUPPORTED: &'static [&'static str] = &["default", "masumi", "script"];

    /// Names the spec defines that this build does not implement (a clear rejection, not "unknown").
    const KNOWN_UNSUPPORTED: &'static [&'static str] = &[];

    /// Read and validate `extra.assetTransferMethod` and the method's own `extra` fields,
    /// with no Masumi operator policy (no custom deployment approved, no registry).
    pub fn parse(req: &MethodRequest<'_>) -> Result<TransferMethod, MethodError> {
        Self::parse_with(req, &MasumiPolicy::default())
    }

    /// [`TransferMethod::parse`] under the operator's Masumi policy.
    pub fn parse_with(
        req: &MethodRequest<'_>,
        masumi: &MasumiPolicy,
    ) -> Result<TransferMethod, MethodError> {
        let extra = req.requirements.extra;
        let name = match extra.get("assetTransferMethod") {
            None | Some(Json::Null) => return Ok(TransferMethod::Default),
            Some(Json::String(s)) => s.as_str(),
            Some(_) => {
                return Err((
                    Reason::InvalidRequirements,
                    "extra.assetTransferMethod must be a string".into(),
                ));
            }
        };
        match name {
            "default" => Ok(TransferMethod::Default),
            "script" => Ok(TransferMethod::Script(Box::new(ScriptMethod::parse(req)?))),
            "masumi" => Ok(TransferMethod::Masumi(Box::new(
                crate::scheme::masumi::check_requirements(req.requirements, req.network, masumi)?,
            ))),
            n if Self::KNOWN_UNSUPPORTED.contains(&n) => Err((
                Reason::InvalidRequirements,
                format!(
                    "assetTransferMethod \"{n}\" is not supported by this facilitator (supported: {})",
                    Self::SUPPORTED.join(", ")
                ),
            )),
            other => {
                let mut other = other.to_owned();
                crate::cardano::types::truncate_chars(&mut other, 40);
                Err((
                    Reason::InvalidRequirements,
                    format!("unknown assetTransferMethod \"{other}\""),
                ))
            }
        }
    }

    /// The wire name.
    pub fn name(&self) -> &'static str {
        match self {
            TransferMethod::Default => "default",
            TransferMethod::Script(_) => "script",
            TransferMethod::Masumi(_) => "masumi",
        }
    }

    /// The method's rules on the output paying `payTo` (stage E).
    pub fn check_payment(&self, p: &PaymentCheck<'_>) -> Result<(), MethodError> {
        match self {
            TransferMethod::Default => Ok(()),
            TransferMethod::Script(s) => s.check_payment(p),
            TransferMethod::Masumi(m) => crate::scheme::masumi::check_payment(m, p),
        }
    }

    /// Masumi's `termsDigest` (the logical replay key), for the other methods `None`.
    pub fn terms_digest(&self) -> Option<[u8; 32]> {
        match self {
            TransferMethod::Masumi(m) => Some(m.terms_digest),
            _ => None,
        }
    }

    /// `extra` fields that decide the payment under the method named `method` (besides
    /// `assetTransferMethod` and `confirmationPolicy`): the client's `accepted` copy must
    /// repeat them exactly.
    pub fn committed_fields(method: Option<&str>) -> &'static [&'static str] {
        match method {
            Some("script") => script::COMMITTED_FIELDS,
            Some("masumi") => crate::scheme::masumi::COMMITTED_FIELDS,
            _ => &[],
        }
    }
}
