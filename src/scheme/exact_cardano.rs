//! The `exact` scheme on Cardano: the verify pipeline.
//!
//! [`verify`] turns a parsed x402 request into a [`VerifyOutcome`]. Checks run
//! cheapest first, so a malformed payload never costs a chain call:
//!
//! - **A, envelope (pure)**, in the order of the scheme's reference pipeline
//!   (the v2 payload-version rule runs before, in `protocol::parse`):
//!   scheme, network (CIP-34 aliases folded), `accepted` equal to
//!   `paymentRequirements` where it matters, requirement sanity (transfer
//!   method, amount, asset, payTo — a key-hash payee under `default` —,
//!   timeout), payload shape and the base64 length cap, confirmation policy
//!   (`…_requirements_policy`), nonce syntax, canonical padded base64 and the
//!   65,536-byte budget;
//! - **B, decode and signatures (pure)**: exactly one transaction as the node
//!   decodes it, at most 256 inputs, network id of body and outputs, every
//!   vkey witness valid over the canonical tx id, no repeated member in a
//!   body set, the nonce among the inputs, `is_valid` true;
//! - **C, validity window (chain: tip, slot clock)**: ttl present and not
//!   passed, start not in the future, ttl no later than now + maxTimeoutSeconds;
//! - **D, inputs (chain, tri-state, batches of at most 8)**: the nonce is unspent,
//!   every other input unspent; any `Unknown` is a retryable
//!   `exact_cardano_facilitator_chain_lookup_failed`;
//! - **E, value (pure on the resolved inputs + live protocol parameters)**:
//!   every input's value and reference-script size known (else the retryable
//!   `exact_cardano_facilitator_input_value_unavailable`), input owners
//!   witnessed and the payer among them, an output paying exactly `payTo` at
//!   least `amount` of exactly `asset`, its min-UTxO, every output within
//!   `maxValSize` (Byron attributes within 64 bytes), the Conway fee floor
//!   (linear plus the tiered reference-script fee), value conservation, and
//!   no feature this facilitator cannot fully validate (mint, withdrawals,
//!   certificates, votes, proposals, ...).
//!
//! Reservations are not this module's concern: on a `Valid` outcome the HTTP
//! layer reserves [`VerifiedPayment::inputs`] for [`VerifiedPayment::tx_id`].

use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::cardano::address::{self, Credential, ShelleyAddress};
use crate::cardano::phase1::{self, Phase1Error};
use crate::cardano::tx::{ParsedTx, TxDecodeError, WitnessError};
use crate::cardano::{
    Asset, Network, ProtocolParams, RefScript, TxId, UtxoInfo, UtxoRef, UtxoState,
};
use crate::chain::DynChain;
use crate::protocol::{
    ParsedRequest, Reason, RequirementsView, SupportedKind, SupportedResponse, VerifyResponse,
};
use crate::scheme::masumi::MasumiPolicy;
use crate::scheme::method::{PaymentCheck, SlotClock, TransferMethod};

/// The only scheme name this module serves.
pub const SCHEME: &str = "exact";

/// Transfer methods of the Cardano `exact` scheme this facilitator implements (see [`super::method`]).
pub const TRANSFER_METHODS_SUPPORTED: &[&str] = TransferMethod::SUPPORTED;

/// Confirmation policy bounds (`extra.confirmationPolicy.l1Confirmations`).
pub const MIN_L1_CONFIRMATIONS: i64 = -1;
pub const MAX_L1_CONFIRMATIONS: i64 = 20;
/// Policy when the requirements carry none.
pub const DEFAULT_L1_CONFIRMATIONS: i64 = 1;

/// The implementation limits of the scheme (spec "Implementation limits"):
/// work this facilitator bounds and refuses beyond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyLimits {
    /// Largest signed transaction accepted, in bytes (65,536). The base64 text
    /// is capped at `ceil(max/3)*4` characters before decoding
    /// (`invalid_exact_cardano_payload`); decoded bytes beyond the cap are
    /// `…_transaction_decode_failed`. The ledger's own `maxTxSize` is checked
    /// later, on live parameters (`…_phase1_invalid`).
    pub max_tx_bytes: usize,
    /// Most spent inputs resolved for one transaction (256); more is `…_phase1_invalid`.
    pub max_inputs: usize,
    /// Most input lookups in flight at once (8): inputs are resolved in
    /// sequential batches of at most this many references.
    pub max_concurrent_lookups: usize,
}

impl Default for VerifyLimits {
    fn default() -> Self {
        VerifyLimits {
            max_tx_bytes: 65_536,
            max_inputs: 256,
            max_concurrent_lookups: 8,
        }
    }
}

/// A wall clock in unix seconds; injectable so tests can fix "now".
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    })
}

/// Everything [`verify`] needs besides the request. Cheap to clone; shared by all requests.
#[derive(Clone)]
pub struct VerifyContext {
    pub chain: DynChain,
    /// The network this facilitator serves; requests for any other are rejected.
    pub network: Network,
    pub limits: VerifyLimits,
    pub clock: Clock,
    /// Operator policy for the `masumi` method (approved deployments, registry validator).
    pub masumi: Arc<MasumiPolicy>,
}

impl VerifyContext {
    pub fn new(chain: DynChain, network: Network) -> Self {
        VerifyContext {
            chain,
            network,
            limits: VerifyLimits::default(),
            clock: system_clock(),
            masumi: Arc::new(MasumiPolicy::default()),
        }
    }
}

/// A payment that passed every check. The settle path and the reservation
/// store key on `tx_id`; `inputs` are what must be reserved.
#[derive(Clone, Debug)]
pub struct VerifiedPayment {
    pub tx: Arc<ParsedTx>,
    pub tx_id: TxId,
    /// All spent inputs, in body order (the nonce among them).
    pub inputs: Vec<UtxoRef>,
    pub nonce: UtxoRef,
    /// Bech32 address owning the nonce.
    pub payer: String,
    pub network: Network,
    pub pay_to: String,
    pub asset: Asset,
    /// Required amount (from `paymentRequirements`).
    pub amount: u64,
    /// What the paying output actually carries of `asset`.
    pub paid: u64,
    /// Index of the output paying `payTo`.
    pub output_index: usize,
    /// The transaction's ttl (exclusive upper bound), in slots.
    pub ttl_slot: u64,
    /// Requested confirmation depth (`-1` mempool, `0` in a block, `n` blocks on top).
    pub l1_confirmations: i64,
    /// `masumi` only: the 32-byte `termsDigest` the seller signed, the logical
    /// replay key (one settlement per digest); `None` for the other methods.
    pub terms_digest: Option<[u8; 32]>,
}

/// The result of [`verify`].
#[derive(Clone, Debug)]
pub enum VerifyOutcome {
    Valid(Box<VerifiedPayment>),
    /// A definitive rejection (HTTP 200, `isValid:false`).
    Invalid {
        reason: Reason,
        message: String,
        payer: Option<String>,
    },
    /// A transient failure (HTTP 503): chain lookups failed or were ambiguous.
    Unavailable {
        reason: Reason,
        message: String,
    },
}

impl VerifyOutcome {
    pub fn is_valid(&self) -> bool {
        matches!(self, VerifyOutcome::Valid(_))
    }
    /// The reason code, if not valid.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            VerifyOutcome::Valid(_) => None,
            VerifyOutcome::Invalid { reason, .. } | VerifyOutcome::Unavailable { reason, .. } => {
                Some(*reason)
            }
        }
    }
    /// The `/verify` answer body.
    pub fn to_response(&self) -> VerifyResponse {
        match self {
            VerifyOutcome::Valid(p) => VerifyResponse::valid(p.payer.clone()),
            VerifyOutcome::Invalid {
                reason,
                message,
                payer,
            } => VerifyResponse::invalid(reason.as_str(), message.clone(), payer.clone()),
            VerifyOutcome::Unavailable { reason, message } => {
                VerifyResponse::invalid(reason.as_str(), message.clone(), None)
            }
        }
    }
}

/// An internal rejection, carried through the stages with `?`.
#[derive(Debug)]
struct Reject {
    reason: Reason,
    message: String,
    retryable: bool,
}

fn reject(reason: Reason, message: impl Into<String>) -> Reject {
    Reject {
        reason,
        message: message.into(),
        retryable: false,
    }
}

fn unavailable(reason: Reason, message: impl Into<String>) -> Reject {
    Reject {
        reason,
        message: message.into(),
        retryable: true,
    }
}

/// The outcome of stage A: the request's meaning, validated, with the raw tx bytes.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub network: Network,
    pub asset: Asset,
    pub amount: u64,
    pub pay_to: ShelleyAddress,
    pub max_timeout_seconds: u64,
    pub l1_confirmations: i64,
    /// Whether the requirements named a confirmation policy (else the
    /// operator's default applies, see [`apply_confirmation_policy`]).
    pub l1_declared: bool,
    pub nonce: UtxoRef,
    pub tx_bytes: Vec<u8>,
    /// The limits the envelope was checked under; the later stages apply them too.
    pub limits: VerifyLimits,
    /// `extra.assetTransferMethod`, parsed and checked against `payTo`.
    pub method: TransferMethod,
}

/// What the operator allows for confirmation policies (sheet 2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfirmationRules {
    /// Used when the requirements carry no policy (`settlement.defaultConfirmations`).
    pub default: i64,
    /// `-1` (settle on submit acceptance) is allowed (`settlement.acceptMempool`).
    pub accept_mempool: bool,
    /// The chain backend can read block depth (an evidence reader exists).
    pub reads_depth: bool,
    /// The most confirmations this operator waits for (`settlement.maxConfirmations`).
    pub max: i64,
}

impl Default for ConfirmationRules {
    fn default() -> Self {
        ConfirmationRules {
            default: DEFAULT_L1_CONFIRMATIONS,
            accept_mempool: false,
            reads_depth: true,
            max: MAX_L1_CONFIRMATIONS,
        }
    }
}

impl ConfirmationRules {
    /// The `l1Confirmations` range `/supported` advertises.
    pub fn range(&self) -> (i64, i64) {
        let min = if self.accept_mempool { -1 } else { 0 };
        let max = if self.reads_depth {
            self.max.clamp(0, MAX_L1_CONFIRMATIONS)
        } else {
            0
        };
        (min, max)
    }
}

/// Settle the envelope's confirmation policy against the operator's rules:
/// the default when none was declared; `-1` only with the mempool opt-in;
/// a depth above 0 only with an evidence reader.
pub fn apply_confirmation_policy(
    env: &mut Envelope,
    rules: &ConfirmationRules,
) -> Result<(), (Reason, String)> {
    if !env.l1_declared {
        env.l1_confirmations = rules.default;
    }
    if env.l1_confirmations < 0 && !rules.accept_mempool {
        return Err((
            Reason::RequirementsPolicy,
            "l1Confirmations -1 (mempool) is not accepted by this facilitator; ask for 0 or more"
                .into(),
        ));
    }
    if env.l1_confirmations > rules.max.max(0) && rules.reads_depth {
        return Err((
            Reason::RequirementsPolicy,
            format!(
                "l1Confirmations {} is more than this facilitator waits for (at most {})",
                env.l1_confirmations, rules.max
            ),
        ));
    }
    if env.l1_confirmations > 0 && !rules.reads_depth {
        return Err((
            Reason::EvidenceUnavailable,
            "this facilitator's chain backend cannot read block depth; ask for 0 or -1".into(),
        ));
    }
    Ok(())
}

/// Read `extra.confirmationPolicy.l1Confirmations` (default 1, range -1..=20).
pub fn confirmation_policy(extra: &Json) -> Result<i64, String> {
    let Some(policy) = extra.get("confirmationPolicy") else {
        return Ok(DEFAULT_L1_CONFIRMATIONS);
    };
    if policy.is_null() {
        return Ok(DEFAULT_L1_CONFIRMATIONS);
    }
    let Some(obj) = policy.as_object() else {
        return Err("extra.confirmationPolicy must be an object".into());
    };
    match obj.get("l1Confirmations") {
        None | Some(Json::Null) => Ok(DEFAULT_L1_CONFIRMATIONS),
        Some(v) => match v.as_i64() {
            Some(n) if (MIN_L1_CONFIRMATIONS..=MAX_L1_CONFIRMATIONS).contains(&n) => Ok(n),
            _ => Err(format!(
                "extra.confirmationPolicy.l1Confirmations must be an integer from {MIN_L1_CONFIRMATIONS} to {MAX_L1_CONFIRMATIONS}"
            )),
        },
    }
}

/// Is the method `default` (absent, null or `"default"`)?
fn is_default_method(extra: &Json) -> bool {
    match extra.get("assetTransferMethod") {
        None | Some(Json::Null) => true,
        Some(Json::String(s)) => s == "default",
        Some(_) => false,
    }
}

/// Canonical padded standard base64 only: decode, re-encode, compare (so one
/// transaction has exactly one accepted text, as the reference demands).
fn decode_canonical_base64(text: &str) -> Result<Vec<u8>, Reject> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let bytes = engine.decode(text.as_bytes()).map_err(|e| {
        reject(
            Reason::TransactionDecodeFailed,
            format!("transaction is not canonical padded standard base64: {e}"),
        )
    })?;
    if engine.encode(&bytes) != text {
        return Err(reject(
            Reason::TransactionDecodeFailed,
            "transaction is not canonical padded standard base64",
        ));
    }
    Ok(bytes)
}

/// A positive canonical decimal integer that fits 64 bits.
fn parse_amount(s: &str) -> Result<u64, Reject> {
    let bad = || {
        reject(
            Reason::InvalidRequirements,
            "amount must be a positive integer string in atomic units",
        )
    };
    if s.is_empty()
        || s.len() > 20
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad());
    }
    match s.parse::<u64>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

fn same_network(a: &str, b: &str) -> bool {
    match (Network::parse_any(a), Network::parse_any(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `accepted` must agree with `paymentRequirements` on every field that decides the payment.
fn check_accepted(req: &RequirementsView<'_>, acc: &RequirementsView<'_>) -> Result<(), Reject> {
    let mismatch = |field: &str| {
        reject(
            Reason::InvalidPayloadShape,
            format!("accepted.{field} does not match paymentRequirements.{field}"),
        )
    };
    if acc.amount != req.amount {
        return Err(mismatch("amount"));
    }
    if acc.asset != req.asset {
        return Err(mismatch("asset"));
    }
    if acc.pay_to != req.pay_to {
        return Err(mismatch("payTo"));
    }
    if acc.max_timeout_seconds != req.max_timeout_seconds {
        return Err(mismatch("maxTimeoutSeconds"));
    }
    let method = |e: &Json| e.get("assetTransferMethod").cloned().unwrap_or(Json::Null);
    if method(acc.extra) != method(req.extra) {
        return Err(mismatch("extra.assetTransferMethod"));
    }
    if confirmation_policy(acc.extra).ok() != confirmation_policy(req.extra).ok() {
        return Err(mismatch("extra.confirmationPolicy"));
    }
    let method_name = req.extra.get("assetTransferMethod").and_then(Json::as_str);
    for field in TransferMethod::committed_fields(method_name) {
        if acc.extra.get(*field) != req.extra.get(*field) {
            return Err(mismatch(&format!("extra.{field}")));
        }
    }
    Ok(())
}

/// Stage A: everything that can be checked on the JSON alone, under the
/// *default* Masumi policy (no custom deployment approved, no registry
/// validator). For tests, fuzzing and benches; the service must call
/// [`check_envelope_with`] with its configured `VerifyContext::masumi`, or it
/// refuses payments the operator approved.
pub fn check_envelope(
    network: Network,
    limits: &VerifyLimits,
    req: &ParsedRequest,
) -> Result<Envelope, (Reason, String)> {
    check_envelope_with(network, limits, &MasumiPolicy::default(), req)
}

/// [`check_envelope`] under the operator's Masumi policy.
pub fn check_envelope_with(
    network: Network,
    limits: &VerifyLimits,
    masumi: &MasumiPolicy,
    req: &ParsedRequest,
) -> Result<Envelope, (Reason, String)> {
    stage_a(network, limits, masumi, req).map_err(|r| (r.reason, r.message))
}

/// The Cardano `exact` payload's two fields, borrowed from the request's JSON
/// (the wire type is [`crate::protocol::CardanoExactPayload`]; this reads the same shape).
#[derive(serde::Deserialize)]
struct PayloadText<'a> {
    #[serde(borrow)]
    transaction: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    nonce: std::borrow::Cow<'a, str>,
}

fn stage_a(
    network: Network,
    limits: &VerifyLimits,
    masumi: &MasumiPolicy,
    req: &ParsedRequest,
) -> Result<Envelope, Reject> {
    // A DEBUG span: only the OTel layer enables it (see crate::otel).
    let _span = tracing::debug_span!("verify.envelope").entered();
    let q = req.requirements();
    if q.scheme != SCHEME {
        return Err(reject(
            Reason::UnsupportedScheme,
            format!("scheme must be \"{SCHEME}\""),
        ));
    }
    let (acc_scheme, acc_network) = req.accepted_scheme_network();
    if acc_scheme != q.scheme {
        return Err(reject(
            Reason::UnsupportedScheme,
            "the payload's scheme differs from paymentRequirements.scheme",
        ));
    }
    match Network::parse_any(q.network) {
        Some(n) if n == network => {}
        _ => {
            return Err(reject(
                Reason::NetworkMismatch,
                format!(
                    "this facilitator serves {} only",
                    if req.x402_version() == 1 {
                        network.v1_name()
                    } else {
                        network.caip2()
                    }
                ),
            ));
        }
    }
    if !same_network(acc_network, q.network) {
        return Err(reject(
            Reason::NetworkMismatch,
            "the payload's network differs from paymentRequirements.network",
        ));
    }
    if let Some(acc) = req.accepted_v2() {
        check_accepted(&q, &acc)?;
    }

    // Requirement sanity.
    let amount = parse_amount(q.amount)?;
    let asset = Asset::from_str(q.asset)
        .map_err(|e| reject(Reason::InvalidRequirements, format!("asset: {e}")))?;
    let pay_to = address::parse_shelley_bech32(q.pay_to).map_err(|e| {
        reject(
            Reason::InvalidRequirements,
            format!("payTo is not a Shelley payment address: {e}"),
        )
    })?;
    if pay_to.network_id != network.network_id() {
        return Err(reject(
            Reason::InvalidRequirements,
            format!("payTo is not an address of {}", network.name()),
        ));
    }
    if is_default_method(q.extra) && matches!(pay_to.payment, Credential::ScriptHash(_)) {
        // A script payee can only spend what it receives through its script;
        // the `default` method proves nothing about datums or the script's
        // rules, so such a payee is the `script` method's business.
        return Err(reject(
            Reason::RecipientMismatch,
            "payTo has a script payment credential; the \"default\" method pays key-hash addresses only (use assetTransferMethod \"script\" for script payees)",
        ));
    }
    if q.max_timeout_seconds == 0 {
        return Err(reject(
            Reason::InvalidRequirements,
            "maxTimeoutSeconds must be positive",
        ));
    }
    let method = TransferMethod::parse_with(
        &crate::scheme::method::MethodRequest {
            network,
            requirements: &q,
            pay_to: &pay_to,
        },
        masumi,
    )
    .map_err(|(reason, message)| reject(reason, message))?;

    // Payload shape, and the size cap on the base64 text before decoding it.
    // Read in place: the strings are borrowed from the request, not copied.
    let payload = PayloadText::deserialize(req.payload()).map_err(|e| {
        let mut m = e.to_string();
        crate::cardano::types::truncate_chars(&mut m, 200);
        reject(
            Reason::InvalidPayloadShape,
            format!("payload must be {{transaction, nonce}}: {m}"),
        )
    })?;
    let max_b64 = limits.max_tx_bytes.div_ceil(3) * 4;
    if payload.transaction.len() > max_b64 {
        return Err(reject(
            Reason::InvalidPayloadShape,
            format!(
                "transaction is longer than {max_b64} base64 characters ({} bytes)",
                limits.max_tx_bytes
            ),
        ));
    }
    let l1_confirmations =
        confirmation_policy(q.extra).map_err(|m| reject(Reason::RequirementsPolicy, m))?;
    let nonce = UtxoRef::from_str(&payload.nonce).map_err(|_| {
        reject(
            Reason::NonceInvalid,
            "nonce must be \"<64 lower-case hex tx id>#<output index>\"",
        )
    })?;
    let tx_bytes = decode_canonical_base64(&payload.transaction)?;
    if tx_bytes.len() > limits.max_tx_bytes {
        return Err(reject(
            Reason::TransactionDecodeFailed,
            format!("transaction is larger than {} bytes", limits.max_tx_bytes),
        ));
    }
    Ok(Envelope {
        network,
        asset,
        amount,
        pay_to,
        max_timeout_seconds: q.max_timeout_seconds,
        l1_confirmations,
        l1_declared: q
            .extra
            .get("confirmationPolicy")
            .and_then(|p| p.get("l1Confirmations"))
            .is_some_and(|v| !v.is_null()),
        nonce,
        tx_bytes,
        limits: *limits,
        method,
    })
}

/// Key hashes of the keys whose witnesses verified.
pub type Signers = std::collections::BTreeSet<[u8; 28]>;

/// Stage B: decode, network id, witnesses. Returns the tx and the key hashes that signed.
pub fn decode_and_check_signatures(
    env: &Envelope,
) -> Result<(ParsedTx, Signers), (Reason, String)> {
    stage_b(env).map_err(|r| (r.reason, r.message))
}

fn stage_b(env: &Envelope) -> Result<(ParsedTx, Signers), Reject> {
    let limits = &env.limits;
    let _span = tracing::debug_span!("verify.signatures").entered();
    let tx = ParsedTx::decode(&env.tx_bytes).map_err(|e: TxDecodeError| {
        reject(
            Reason::TransactionDecodeFailed,
            format!("not exactly one well-formed Conway transaction: {e}"),
        )
    })?;
    if tx.inputs().len() > limits.max_inputs {
        return Err(reject(
            Reason::Phase1Invalid,
            format!(
                "the transaction spends {} inputs; this facilitator resolves at most {}",
                tx.inputs().len(),
                limits.max_inputs
            ),
        ));
    }
    phase1::check_network(&tx, env.network)
        .map_err(|e| reject(Reason::NetworkIdMismatch, e.node_reason()))?;
    let signers = tx.verify_witnesses().map_err(|e| match e {
        WitnessError::Unsigned => reject(Reason::Unsigned, e.to_string()),
        WitnessError::Invalid { .. } => reject(Reason::InvalidSignature, e.to_string()),
    })?;
    phase1::check_no_duplicates(&tx).map_err(|e| reject(Reason::Phase1Invalid, e.node_reason()))?;
    Ok((tx, signers))
}

/// Pure checks on the decoded transaction that need the envelope: the nonce
/// is an input, and the transaction is not a failed-script (`is_valid: false`)
/// one, which creates no outputs and would only forfeit its collateral.
fn stage_b_payload(tx: &ParsedTx, env: &Envelope) -> Result<(), Reject> {
    if !tx.inputs().contains(&env.nonce) {
        return Err(reject(
            Reason::NonceNotInInputs,
            format!("nonce {} is not an input of the transaction", env.nonce),
        ));
    }
    if !tx.is_valid_flag() {
        return Err(reject(
            Reason::Phase2Invalid,
            "is_valid is false: the transaction declares a failed script and pays nothing",
        ));
    }
    Ok(())
}

/// Stage C: the validity window, in slots. `now_slot` is the current slot,
/// `horizon_slot` the slot at now + maxTimeoutSeconds.
fn stage_c(tx: &ParsedTx, now_slot: u64, horizon_slot: u64) -> Result<u64, Reject> {
    let _span = tracing::debug_span!("verify.validity_window").entered();
    let Some(ttl) = tx.ttl() else {
        return Err(reject(
            Reason::TtlTooFar,
            "the transaction has no ttl; it must expire within maxTimeoutSeconds",
        ));
    };
    if ttl <= now_slot {
        return Err(reject(
            Reason::TtlExpired,
            format!("ttl slot {ttl} has passed (current slot {now_slot})"),
        ));
    }
    if let Some(start) = tx.validity_start()
        && start > now_slot
    {
        return Err(reject(
            Reason::NotYetValid,
            format!("validity starts at slot {start}, current slot is {now_slot}"),
        ));
    }
    if ttl > horizon_slot {
        return Err(reject(
            Reason::TtlTooFar,
            format!("ttl slot {ttl} is later than now + maxTimeoutSeconds (slot {horizon_slot})"),
        ));
    }
    Ok(ttl)
}

/// Stage D on already-fetched answers: nonce first, then every other input.
fn stage_d(tx: &ParsedTx, nonce: &UtxoRef, states: &[UtxoState]) -> Result<Vec<UtxoInfo>, Reject> {
    let _span = tracing::debug_span!("verify.inputs").entered();
    if states.len() != tx.inputs().len() {
        return Err(unavailable(
            Reason::ChainLookupFailed,
            "the chain backend answered for the wrong number of inputs",
        ));
    }
    let nonce_ix = tx
        .inputs()
        .iter()
        .position(|i| i == nonce)
        .unwrap_or(usize::MAX);
    match states.get(nonce_ix) {
        Some(UtxoState::Unspent(_)) => {}
        Some(UtxoState::Spent) => {
            return Err(reject(
                Reason::NonceNotOnChain,
                format!("nonce {nonce} is not an unspent output on chain"),
            ));
        }
        Some(UtxoState::Unknown(why)) => {
            return Err(unavailable(
                Reason::ChainLookupFailed,
                format!("could not look up nonce {nonce}: {why}"),
            ));
        }
        None => {
            return Err(reject(
                Reason::NonceNotInInputs,
                "the nonce is not an input of the transaction",
            ));
        }
    }
    let mut resolved = Vec::with_capacity(states.len());
    let mut spent = None;
    for (input, state) in tx.inputs().iter().zip(states) {
        match state {
            UtxoState::Unspent(u) => resolved.push(u.clone()),
            UtxoState::Unknown(why) => {
                return Err(unavailable(
                    Reason::ChainLookupFailed,
                    format!("could not look up input {input}: {why}"),
                ));
            }
            UtxoState::Spent => {
                spent.get_or_insert(*input);
            }
        }
    }
    if let Some(input) = spent {
        return Err(reject(
            Reason::InputNotAvailable,
            format!("input {input} is already spent"),
        ));
    }
    Ok(resolved)
}

/// What stage E found.
struct Paid {
    output_index: usize,
    paid: u64,
}

fn phase1_reject(e: Phase1Error) -> Reject {
    let reason = match e {
        Phase1Error::FeeTooSmall { .. } => Reason::FeeBelowMinimum,
        Phase1Error::ValueNotConserved { .. } | Phase1Error::ValueOverflow => {
            Reason::ValueNotConserved
        }
        Phase1Error::WrongNetwork { .. } | Phase1Error::WrongNetworkInTxBody { .. } => {
            Reason::NetworkIdMismatch
        }
        _ => Reason::Phase1Invalid,
    };
    reject(reason, e.node_reason())
}

/// Stage E: witnesses of owners, the payment output, min-UTxO, fee, conservation, features.
fn stage_e(
    tx: &ParsedTx,
    env: &Envelope,
    resolved: &[UtxoInfo],
    signers: &Signers,
    params: &ProtocolParams,
    slot_clock: SlotClock<'_>,
) -> Result<Paid, Reject> {
    // Every UTxO on Cardano holds lovelace (at least its min-UTxO): an input
    // resolved without any is one whose value the backend did not establish,
    // and conservation and the fee cannot be judged on it. Retryable.
    if let Some((input, _)) = tx
        .inputs()
        .iter()
        .zip(resolved)
        .find(|(_, u)| u.value.coin == 0)
    {
        return Err(unavailable(
            Reason::InputValueUnavailable,
            format!("the value of input {input} could not be established"),
        ));
    }
    if let Some((input, _)) = tx
        .inputs()
        .iter()
        .zip(resolved)
        .find(|(_, u)| u.reference_script == RefScript::SizeUnknown)
    {
        return Err(unavailable(
            Reason::InputValueUnavailable,
            format!(
                "input {input} carries a reference script of unknown size: the Conway fee cannot be established"
            ),
        ));
    }
    let _span = tracing::debug_span!("verify.ledger_rules").entered();
    // The payer (the nonce's owner) must be a witnessed key.
    let nonce_ix = tx
        .inputs()
        .iter()
        .position(|i| *i == env.nonce)
        .unwrap_or(0);
    let payer_owner = resolved
        .get(nonce_ix)
        .map(|u| u.address.as_slice())
        .unwrap_or_default();
    match address::classify(payer_owner) {
        Ok(address::AddressKind::Shelley { payment, .. }) => match payment {
            Credential::KeyHash(h) if signers.contains(&h) => {}
            Credential::KeyHash(_) => {
                return Err(reject(
                    Reason::PayerNotWitness,
                    "the nonce's owner did not sign the transaction",
                ));
            }
            Credential::ScriptHash(_) => {
                return Err(reject(
                    Reason::PayerNotWitness,
                    "the nonce is locked by a script, not a payment key",
                ));
            }
        },
        _ => {
            return Err(reject(
                Reason::PayerNotWitness,
                "the nonce is not held by a Shelley payment key address",
            ));
        }
    }
    // Every other key-hash owner and required signer must have signed too.
    let need = phase1::required_key_hashes(tx, resolved).map_err(phase1_reject)?;
    if let Some(missing) = need.difference(signers).next() {
        return Err(reject(
            Reason::Phase1Invalid,
            format!(
                "MissingVKeyWitnessesUTXOW: no witness for key hash {}",
                hex::encode(missing)
            ),
        ));
    }

    let paid = check_payment_output(tx, env)?;
    let out = tx.outputs().get(paid.output_index).ok_or_else(|| {
        reject(
            Reason::RecipientMismatch,
            format!("no output pays {}", env.pay_to),
        )
    })?;
    let min = phase1::min_utxo(out, params);
    if out.value.coin < min {
        return Err(reject(
            Reason::MinUtxoInsufficient,
            format!(
                "the output to payTo holds {} lovelace, the ledger minimum is {min}",
                out.value.coin
            ),
        ));
    }
    env.method
        .check_payment(&PaymentCheck {
            tx,
            output_index: paid.output_index,
            output: out,
            resolved_inputs: resolved,
            signers,
            params,
            nonce: &env.nonce,
            slot_clock,
        })
        .map_err(|(reason, message)| reject(reason, message))?;
    phase1::check_min_utxo(tx, params).map_err(phase1_reject)?;
    phase1::check_outputs(tx, params).map_err(phase1_reject)?;
    phase1::check_max_size(tx, params).map_err(phase1_reject)?;
    phase1::check_fee_with_reference_scripts(tx, params, resolved).map_err(phase1_reject)?;
    phase1::check_value_conserved(tx, resolved).map_err(phase1_reject)?;
    phase1::check_features(tx).map_err(phase1_reject)?;
    phase1::check_auxiliary_data(tx).map_err(phase1_reject)?;
    Ok(paid)
}

/// Rules 2-4: an output paying exactly `payTo` at least `amount` of exactly
/// `asset`. Pure on the transaction; re-checked on every resume, so another
/// resource server cannot collect a payment made to someone else.
fn check_payment_output(tx: &ParsedTx, env: &Envelope) -> Result<Paid, Reject> {
    // An output paying exactly payTo, at least `amount` of exactly `asset`.
    let to_pay_to: Vec<(usize, &crate::cardano::TxOut)> = tx
        .outputs()
        .iter()
        .enumerate()
        .filter(|(_, o)| o.address == env.pay_to.bytes)
        .collect();
    if to_pay_to.is_empty() {
        return Err(reject(
            Reason::RecipientMismatch,
            format!("no output pays {}", env.pay_to),
        ));
    }
    let best = to_pay_to
        .iter()
        .max_by_key(|(_, o)| o.value.quantity(&env.asset))
        .copied();
    let Some((output_index, out)) = best else {
        return Err(reject(
            Reason::RecipientMismatch,
            format!("no output pays {}", env.pay_to),
        ));
    };
    let paid = out.value.quantity(&env.asset);
    if paid == 0 {
        return Err(reject(
            Reason::AssetMismatch,
            format!("the output to payTo carries no {}", env.asset),
        ));
    }
    if paid < env.amount {
        return Err(reject(
            Reason::AmountInsufficient,
            format!(
                "the output to payTo carries {paid} of {}, {} required",
                env.asset, env.amount
            ),
        ));
    }
    Ok(Paid { output_index, paid })
}

/// Verify one request. Never panics on request data; see the module docs for the order.
pub async fn verify(ctx: &VerifyContext, req: &ParsedRequest) -> VerifyOutcome {
    let mut payer = None;
    let result = async {
        // A and B: pure.
        let env = stage_a(ctx.network, &ctx.limits, &ctx.masumi, req)?;
        let (tx, signers) = stage_b(&env)?;
        run_checked(ctx, env, tx, signers, &mut payer).await
    }
    .await;
    outcome(result, payer)
}

/// Stages C to E for a request whose stages A and B already passed (the
/// envelope checked, the transaction decoded and its signatures verified by
/// [`check_envelope`] and [`decode_and_check_signatures`]). Lets /settle learn
/// the tx id from the pure stages and continue without redoing them.
pub async fn verify_checked(
    ctx: &VerifyContext,
    env: Envelope,
    tx: ParsedTx,
    signers: Signers,
) -> VerifyOutcome {
    let mut payer = None;
    let result = run_checked(ctx, env, tx, signers, &mut payer).await;
    outcome(result, payer)
}

fn outcome(result: Result<VerifiedPayment, Reject>, payer: Option<String>) -> VerifyOutcome {
    match result {
        Ok(p) => VerifyOutcome::Valid(Box::new(p)),
        Err(r) if r.retryable => VerifyOutcome::Unavailable {
            reason: r.reason,
            message: r.message,
        },
        Err(r) => VerifyOutcome::Invalid {
            reason: r.reason,
            message: r.message,
            payer,
        },
    }
}

async fn run_checked(
    ctx: &VerifyContext,
    env: Envelope,
    tx: ParsedTx,
    signers: Signers,
    payer: &mut Option<String>,
) -> Result<VerifiedPayment, Reject> {
    stage_b_payload(&tx, &env)?;

    // The chain lookups of C and D run concurrently; their checks keep their
    // order. D looks up at most `max_concurrent_lookups` references at a time.
    let lookups = async {
        let mut states = Vec::with_capacity(tx.inputs().len());
        for batch in tx.inputs().chunks(env.limits.max_concurrent_lookups.max(1)) {
            states.extend(ctx.chain.utxos(batch).await);
        }
        states
    };
    let (tip, states) = futures::join!(ctx.chain.tip(), lookups);
    // C: validity window against the chain's clock.
    let tip = tip.map_err(|e| unavailable(Reason::ChainLookupFailed, format!("chain tip: {e}")))?;
    let now = (ctx.clock)();
    let now_slot = tip.slot.max(ctx.chain.slot_at(now));
    let horizon = now.saturating_add(i64::try_from(env.max_timeout_seconds).unwrap_or(i64::MAX));
    let horizon_slot = ctx.chain.slot_at(horizon);
    let ttl_slot = stage_c(&tx, now_slot, horizon_slot)?;

    // D: inputs, tri-state.
    let nonce_ix = tx.inputs().iter().position(|i| *i == env.nonce);
    if let Some(UtxoState::Unspent(u)) = nonce_ix.and_then(|i| states.get(i)) {
        *payer = address::to_bech32(&u.address).ok();
    }
    let resolved = stage_d(&tx, &env.nonce, &states)?;

    // E: value rules on resolved inputs and live protocol parameters.
    let params = ctx.chain.protocol_params().await.map_err(|e| {
        unavailable(
            Reason::ChainLookupFailed,
            format!("protocol parameters: {e}"),
        )
    })?;
    let slot_at = |t: i64| ctx.chain.slot_at(t);
    let paid = stage_e(&tx, &env, &resolved, &signers, &params, SlotClock(&slot_at))?;

    let Some(payer_addr) = payer.clone() else {
        return Err(reject(
            Reason::PayerNotWitness,
            "the nonce's owner has no bech32 address",
        ));
    };
    Ok(VerifiedPayment {
        tx_id: tx.id(),
        inputs: tx.inputs().to_vec(),
        tx: Arc::new(tx),
        nonce: env.nonce,
        payer: payer_addr,
        network: env.network,
        pay_to: env.pay_to.to_bech32(),
        asset: env.asset,
        amount: env.amount,
        paid: paid.paid,
        output_index: paid.output_index,
        ttl_slot,
        l1_confirmations: env.l1_confirmations,
        terms_digest: env.method.terms_digest(),
    })
}

/// The pipeline for a transaction the ledger or this facilitator's journal
/// already accepted (broadcast by us, or seen on chain): its inputs are spent
/// by itself, so the unspent, ttl-expired and phase-1 checks no longer apply.
/// Recipient, asset and amount are re-checked against *these* requirements
/// (another resource server cannot collect the payment), and so is the ttl
/// horizon. `payer` comes from the journal (the nonce's owner when it was
/// verified fresh). Pure: no chain or store call.
pub fn verify_accepted(
    ctx: &VerifyContext,
    env: Envelope,
    tx: ParsedTx,
    payer: String,
) -> VerifyOutcome {
    let payer_hint = (!payer.is_empty()).then(|| payer.clone());
    let result = (|| {
        if !tx.inputs().contains(&env.nonce) {
            return Err(reject(
                Reason::NonceNotInInputs,
                format!("nonce {} is not an input of the transaction", env.nonce),
            ));
        }
        let now = (ctx.clock)();
        let horizon =
            now.saturating_add(i64::try_from(env.max_timeout_seconds).unwrap_or(i64::MAX));
        let horizon_slot = ctx.chain.slot_at(horizon);
        let Some(ttl_slot) = tx.ttl() else {
            return Err(reject(
                Reason::TtlTooFar,
                "the transaction has no ttl; it must expire within maxTimeoutSeconds",
            ));
        };
        if ttl_slot > horizon_slot {
            return Err(reject(
                Reason::TtlTooFar,
                format!(
                    "ttl slot {ttl_slot} is later than now + maxTimeoutSeconds (slot {horizon_slot})"
                ),
            ));
        }
        let paid = check_payment_output(&tx, &env)?;
        if payer.is_empty() {
            return Err(unavailable(
                Reason::ChainLookupFailed,
                "the payer of this accepted transaction is not known yet",
            ));
        }
        Ok(VerifiedPayment {
            tx_id: tx.id(),
            inputs: tx.inputs().to_vec(),
            tx: Arc::new(tx),
            nonce: env.nonce,
            payer: payer.clone(),
            network: env.network,
            pay_to: env.pay_to.to_bech32(),
            asset: env.asset,
            amount: env.amount,
            paid: paid.paid,
            output_index: paid.output_index,
            ttl_slot,
            l1_confirmations: env.l1_confirmations,
            terms_digest: env.method.terms_digest(),
        })
    })();
    outcome(result, payer_hint)
}

/// The pure part of the pipeline on already-resolved chain data, for benches and
/// property tests: stages A, B, C (with the given slots), D and E.
pub fn verify_offline(
    network: Network,
    limits: &VerifyLimits,
    req: &ParsedRequest,
    now_slot: u64,
    horizon_slot_for: impl Fn(u64) -> u64,
    lookup: impl Fn(&[UtxoRef]) -> Vec<UtxoState>,
    params: &ProtocolParams,
) -> Result<TxId, (Reason, String)> {
    let go = || -> Result<TxId, Reject> {
        let env = stage_a(network, limits, &MasumiPolicy::default(), req)?;
        let (tx, signers) = stage_b(&env)?;
        stage_b_payload(&tx, &env)?;
        stage_c(&tx, now_slot, horizon_slot_for(env.max_timeout_seconds))?;
        let resolved = stage_d(&tx, &env.nonce, &lookup(tx.inputs()))?;
        // The public networks' one-second slot clock (the devnet has no fixed anchor).
        let slot_at = move |t: i64| match network.shelley_anchor() {
            Some((slot, unix)) => slot.saturating_add(u64::try_from(t - unix).unwrap_or(0)),
            None => u64::MAX,
        };
        stage_e(&tx, &env, &resolved, &signers, params, SlotClock(&slot_at))?;
        Ok(tx.id())
    };
    go().map_err(|r| (r.reason, r.message))
}

/// `/supported` kinds for the served network: v2 (with capabilities) and v1.
pub fn supported_kinds(network: Network) -> Vec<SupportedKind> {
    vec![
        SupportedKind {
            x402_version: 2,
            scheme: SCHEME.into(),
            network: network.caip2().into(),
            extra: Some(json!({
                "assetTransferMethods": TRANSFER_METHODS_SUPPORTED,
                "areFeesSponsored": false,
                "l1Confirmations": {"minimum": MIN_L1_CONFIRMATIONS, "maximum": MAX_L1_CONFIRMATIONS},
            })),
        },
        SupportedKind {
            x402_version: 1,
            scheme: SCHEME.into(),
            network: network.v1_name().into(),
            extra: None,
        },
    ]
}

/// The whole `/supported` answer. This facilitator signs nothing, so its signer list is empty.
pub fn supported_response(network: Network) -> SupportedResponse {
    let mut signers = std::collections::BTreeMap::new();
    signers.insert("cardano:*".to_owned(), Vec::new());
    SupportedResponse {
        kinds: supported_kinds(network),
        extensions: Vec::new(),
        signers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_policy_defaults_and_bounds() {
        assert_eq!(confirmation_policy(&json!({})), Ok(1));
        assert_eq!(confirmation_policy(&Json::Null), Ok(1));
        assert_eq!(
            confirmation_policy(&json!({"confirmationPolicy": {"l1Confirmations": -1}})),
            Ok(-1)
        );
        assert_eq!(
            confirmation_policy(&json!({"confirmationPolicy": {"l1Confirmations": 20}})),
            Ok(20)
        );
        assert!(
            confirmation_policy(&json!({"confirmationPolicy": {"l1Confirmations": 21}})).is_err()
        );
        assert!(
            confirmation_policy(&json!({"confirmationPolicy": {"l1Confirmations": "1"}})).is_err()
        );
        assert!(confirmation_policy(&json!({"confirmationPolicy": 3})).is_err());
    }

    #[test]
    fn amounts_are_canonical_positive_integers() {
        assert_eq!(parse_amount("1").unwrap(), 1);
        assert_eq!(parse_amount("18446744073709551615").unwrap(), u64::MAX);
        for bad in [
            "",
            "0",
            "01",
            "-1",
            "+1",
            "1.0",
            "1e6",
            " 1",
            "18446744073709551616",
            "999999999999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn supported_advertises_implemented_methods() {
        let s = supported_response(Network::Preprod);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["kinds"][0]["network"], "cardano:preprod");
        assert_eq!(
            v["kinds"][0]["extra"]["assetTransferMethods"],
            json!(["default", "masumi", "script"])
        );
        assert_eq!(
            v["kinds"][0]["extra"]["l1Confirmations"],
            json!({"minimum": -1, "maximum": 20})
        );
        assert_eq!(v["kinds"][1]["network"], "cardano-preprod");
        assert_eq!(v["signers"], json!({"cardano:*": []}));
    }
}
