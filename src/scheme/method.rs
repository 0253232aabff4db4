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

pub mod script;

use serde_json::Value as Json;

use crate::cardano::address::ShelleyAddress;
use crate::cardano::{Network, ParsedTx, TxOut};
use crate::chain::{ProtocolParams, UtxoInfo};
use crate::protocol::{Reason, RequirementsView};

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
}

impl TransferMethod {
    /// Method names this facilitator implements, as `/supported` lists them.
    pub const SUPPORTED: &'static [&'static str] = &["default", "script"];

    /// Names the spec defines that this build does not implement (a clear rejection, not "unknown").
    const KNOWN_UNSUPPORTED: &'static [&'static str] = &["masumi"];

    /// Read and validate `extra.assetTransferMethod` and the method's own `extra` fields.
    pub fn parse(req: &MethodRequest<'_>) -> Result<TransferMethod, MethodError> {
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
        }
    }

    /// The method's rules on the output paying `payTo` (stage E).
    pub fn check_payment(&self, p: &PaymentCheck<'_>) -> Result<(), MethodError> {
        match self {
            TransferMethod::Default => Ok(()),
            TransferMethod::Script(s) => s.check_payment(p),
        }
    }

    /// `extra` fields that decide the payment under the method named `method` (besides
    /// `assetTransferMethod` and `confirmationPolicy`): the client's `accepted` copy must
    /// repeat them exactly.
    pub fn committed_fields(method: Option<&str>) -> &'static [&'static str] {
        match method {
            Some("script") => script::COMMITTED_FIELDS,
            _ => &[],
        }
    }
}
