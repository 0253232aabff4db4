//! The facilitator's use cases: `verify`, `settle`, `status`, `supported`,
//! and the operator's switches. Each tells one story in one place, with the
//! verification pipeline ([`crate::scheme::exact_cardano`]), the chain
//! provider, the store and the settlement journal ([`crate::settle`]) behind
//! it. Answers are typed x402 answers plus a class ([`Answer`]) that the
//! HTTP layer maps to a status code; nothing here knows HTTP.
//!
//! The guarantees (SECURITY.md names the tests):
//! - verify is read-only towards the payment unless the operator opted in
//!   to holding inputs (`chain.reservation.holdOnVerify`);
//! - verify knows the journal: a payment already paid out, rejected,
//!   failed or expired is not valid, whatever any cache says;
//! - for one canonical transaction, across replicas and restarts, at most
//!   one settle answers `success:true`; only an idempotent retry (same
//!   payment identifier, payload and requirements, same tenant) sees it again;
//! - a failure found before anything was broadcast leaves no record behind.

pub mod digest;
pub mod router;

pub use router::{Lane, Router};

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cardano::tx::ParsedTx;
use crate::cardano::{TxId, address};
use crate::chain::{DynChain, Evidence};
use crate::config::Settings;
use crate::protocol::parse::ParsedRequest;
use crate::protocol::reason::Reason;
use crate::protocol::types::{SettleResponse, SupportedResponse, VerifyResponse};
use crate::scheme::exact_cardano::{
    self, ConfirmationRules, Envelope, Signers, VerifiedPayment, VerifyContext, VerifyOutcome,
};
use crate::settle::{Claim, SettleAnswer, Settlement, now_ms};
use crate::store::{
    DynStore, IdempotencyOutcome, ListCursor, Page, ReserveOutcome, SettlementRecord,
    SettlementState, StoreError,
};

/// How an answer travels: the HTTP layer maps each class to a status code.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer<T> {
    /// A business outcome (valid or not, settled or not): HTTP 200.
    Done(T),
    /// Retry later (store, chain, pause): HTTP 503 with `Retry-After`.
    Retry(T),
    /// The request body is not a usable x402 request: HTTP 400.
    BadRequest(T),
}

impl<T> Answer<T> {
    pub fn body(&self) -> &T {
        match self {
            Answer::Done(b) | Answer::Retry(b) | Answer::BadRequest(b) => b,
        }
    }
}

/// A settle call that cannot be answered with an x402 body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyError {
    /// The payment identifier was first used with another payload or other
    /// requirements (the extension's 409).
    Conflict,
    /// The first request with this identifier is still being processed.
    InFlight,
}

/// The outcome of [`Facilitator::settle`].
#[derive(Clone, Debug, PartialEq)]
pub enum SettleResult {
    Answer(Answer<SettleResponse>),
    Idempotency(IdempotencyError),
}

/// Where a settlement stands, for `/status`.
#[derive(Clone, Debug, PartialEq)]
pub enum StatusAnswer {
    Found(Value),
    NotFound(Value),
    Unavailable(String),
}

/// Who is calling: the tenant (an API key's identity) scopes payment identifiers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller<'a> {
    pub tenant: Option<&'a str>,
}

pub struct Facilitator {
    settings: Arc<Settings>,
    chain: DynChain,
    store: DynStore,
    verify_ctx: VerifyContext,
    rules: ConfirmationRules,
    settlement: Arc<Settlement>,
}

/// The payment-identifier facts of one request.
struct Identified {
    id: String,
    request_digest: String,
    delivery_key: String,
}

fn count_verify(network: &'static str, result: &'static str, reason: &str) {
    // Every answered reason is one of ours: label it with the static wire
    // string, so counting allocates nothing.
    match Reason::from_wire(reason) {
        Some(r) => metrics::counter!("x402_verify_total", "network" => network, "result" => result, "reason" => r.as_str())
            .increment(1),
        None if reason.is_empty() => {
            metrics::counter!("x402_verify_total", "network" => network, "result" => result, "reason" => "").increment(1)
        }
        None => metrics::counter!("x402_verify_total", "network" => network, "result" => result, "reason" => reason.to_owned())
            .increment(1),
    }
}

impl Facilitator {
    pub fn new(settings: Arc<Settings>, chain: DynChain, store: DynStore) -> Facilitator {
        let mut verify_ctx = VerifyContext::new(chain.clone(), chain.network());
        verify_ctx.masumi = Arc::new(settings.masumi.policy());
        let rules = ConfirmationRules {
            default: settings.settlement.default_confirmations,
            accept_mempool: settings.settlement.accept_mempool,
            reads_depth: chain.reads_depth(),
            max: settings.settlement.max_confirmations,
        };
        let settlement = Settlement::new(store.clone(), chain.clone(), settings.clone());
        Facilitator {
            settings,
            chain,
            store,
            verify_ctx,
            rules,
            settlement,
        }
    }

    /// Replace the verification context (tests fix the clock or limits).
    pub fn with_verify_context(mut self, ctx: VerifyContext) -> Self {
        self.verify_ctx = ctx;
        self
    }

    /// This network's chain backend.
    pub fn chain(&self) -> &DynChain {
        &self.chain
    }

    /// This network's store namespace.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub fn settlement(&self) -> &Arc<Settlement> {
        &self.settlement
    }

    pub fn verify_context(&self) -> &VerifyContext {
        &self.verify_ctx
    }

    /// The network name in the request's own version (CAIP-2 for v2, v1 names for v1).
    pub fn network_label(&self, req: Option<&ParsedRequest>) -> String {
        let n = self.chain.network();
        match req {
            Some(ParsedRequest::V1(_)) => n.v1_name().to_owned(),
            _ => n.caip2().to_owned(),
        }
    }

    /// The pure stages: envelope, policy, decoding, signatures. No I/O.
    fn pure_stages(
        &self,
        req: &ParsedRequest,
    ) -> Result<(Envelope, ParsedTx, Signers), (Reason, String)> {
        let mut env = exact_cardano::check_envelope_with(
            self.verify_ctx.network,
            &self.verify_ctx.limits,
            &self.verify_ctx.masumi,
            req,
        )?;
        exact_cardano::apply_confirmation_policy(&mut env, &self.rules)?;
        let (tx, signers) = exact_cardano::decode_and_check_signatures(&env)?;
        Ok((env, tx, signers))
    }

    /// The payment identifier of a v2 request, bound to this caller and request.
    fn identify(
        &self,
        req: &ParsedRequest,
        caller: Caller<'_>,
    ) -> Result<Option<Identified>, String> {
        let ParsedRequest::V2(r) = req else {
            return Ok(None);
        };
        match r.payment_payload.payment_identifier() {
            None => Ok(None),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(id)) => {
                let request_digest = digest::request(req);
                Ok(Some(Identified {
                    id: digest::idempotency_id(caller.tenant, id),
                    delivery_key: digest::delivery_key(caller.tenant, id, &request_digest),
                    request_digest,
                }))
            }
        }
    }

    // -----------------------------------------------------------------
    // verify

    /// `POST /verify`: is this a valid, unspent, correctly signed payment
    /// of these requirements that has not been paid out yet? Read-only
    /// towards the payment (unless `holdOnVerify`); one store round trip.
    pub async fn verify(&self, req: &ParsedRequest, caller: Caller<'_>) -> Answer<VerifyResponse> {
        let answer = self.verify_inner(req, caller).await;
        let (result, reason) = match &answer {
            Answer::Done(b) if b.is_valid => ("valid", ""),
            Answer::Done(b) => ("invalid", b.invalid_reason.as_deref().unwrap_or("")),
            Answer::Retry(b) => ("unavailable", b.invalid_reason.as_deref().unwrap_or("")),
            Answer::BadRequest(b) => ("bad_request", b.invalid_reason.as_deref().unwrap_or("")),
        };
        count_verify(self.verify_ctx.network.caip2(), result, reason);
        answer
    }

    async fn verify_inner(
        &self,
        req: &ParsedRequest,
        caller: Caller<'_>,
    ) -> Answer<VerifyResponse> {
        let invalid = |reason: Reason, message: String, payer: Option<String>| {
            Answer::Done(VerifyResponse::invalid(reason.as_str(), message, payer))
        };
        let (env, tx, signers) = match self.pure_stages(req) {
            Ok(x) => x,
            Err((reason, message)) => return invalid(reason, message, None),
        };
        let tx_id = tx.id();
        let record = match self.store.get(&tx_id).await {
            Ok(r) => r,
            Err(e) => return store_down_verify(e),
        };
        if let Some(rec) = record {
            match self.journal_verdict(&rec, req, caller) {
                JournalVerdict::Refuse(reason, message) => {
                    return invalid(
                        reason,
                        message,
                        (!rec.payer.is_empty()).then(|| rec.payer.clone()),
                    );
                }
                JournalVerdict::Accepted => {
                    let payer = rec.payer.clone();
                    return self
                        .answer_verified(
                            exact_cardano::verify_accepted(&self.verify_ctx, env, tx, payer),
                            false,
                        )
                        .await;
                }
                JournalVerdict::Fresh => {}
            }
        }
        let outcome = exact_cardano::verify_checked(&self.verify_ctx, env, tx, signers).await;
        // Only a payment found spent needs the envelope and the transaction
        // again (`ledger_probe` asks the chain about the transaction itself):
        // rebuild them from the request on that path instead of copying both
        // for every verify. Their signatures were checked on these very bytes
        // above, so they are decoded, not checked again.
        let spent = matches!(
            outcome.reason(),
            Some(Reason::NonceNotOnChain | Reason::InputNotAvailable)
        );
        let outcome = if spent {
            let rebuilt = exact_cardano::check_envelope_with(
                self.verify_ctx.network,
                &self.verify_ctx.limits,
                &self.verify_ctx.masumi,
                req,
            )
            .and_then(|mut env| {
                exact_cardano::apply_confirmation_policy(&mut env, &self.rules)?;
                Ok(env)
            })
            .and_then(|env| match ParsedTx::decode(&env.tx_bytes) {
                Ok(tx) => Ok((env, tx)),
                Err(e) => Err((Reason::TransactionDecodeFailed, e.to_string())),
            });
            match rebuilt {
                Ok((env, tx)) => self.ledger_probe(outcome, env, tx).await,
                // It was built from the same request a moment ago: unreachable.
                Err(_) => outcome,
            }
        } else {
            outcome
        };
        self.answer_verified(outcome, self.settings.chain.reservation.hold_on_verify)
            .await
    }

    /// What the journal says about verifying a known transaction.
    fn journal_verdict(
        &self,
        rec: &SettlementRecord,
        req: &ParsedRequest,
        caller: Caller<'_>,
    ) -> JournalVerdict {
        if rec.delivered_at.is_some() {
            let same_caller = match (self.identify(req, caller), &rec.delivery_key) {
                (Ok(Some(ident)), Some(key)) => ident.delivery_key == *key,
                _ => false,
            };
            if same_caller || self.settings.settlement.repeat_success {
                return JournalVerdict::Accepted;
            }
            return JournalVerdict::Refuse(
                Reason::DuplicateSettlement,
                format!(
                    "transaction {} was already settled and its success delivered; one payment pays for one resource",
                    rec.tx_id
                ),
            );
        }
        match rec.state {
            SettlementState::Rejected => JournalVerdict::Refuse(
                Reason::SettlementDefinitivelyRejected,
                format!(
                    "the node definitively rejected transaction {}: {}",
                    rec.tx_id,
                    rec.error.as_deref().unwrap_or("")
                ),
            ),
            SettlementState::Expired => JournalVerdict::Refuse(
                Reason::TtlExpired,
                format!(
                    "transaction {} expired before it reached the chain",
                    rec.tx_id
                ),
            ),
            SettlementState::Failed => JournalVerdict::Refuse(
                Reason::SettlementFailed,
                format!("the settlement of transaction {} failed", rec.tx_id),
            ),
            // Broadcast (maybe) and not paid out yet: still verifiable, so a
            // retry after settlement_pending works.
            SettlementState::Submitting
            | SettlementState::Submitted
            | SettlementState::Pending
            | SettlementState::Confirmed => JournalVerdict::Accepted,
            // Someone is verifying it right now; nothing was broadcast.
            SettlementState::Claimed => JournalVerdict::Fresh,
        }
    }

    /// A fresh verification that found the nonce or an input spent: maybe by
    /// this very transaction (the buyer broadcast it). Ask the chain about
    /// the transaction itself; if it holds it, verify it as accepted.
    async fn ledger_probe(
        &self,
        outcome: VerifyOutcome,
        env: Envelope,
        tx: ParsedTx,
    ) -> VerifyOutcome {
        let spent = matches!(
            outcome.reason(),
            Some(Reason::NonceNotOnChain | Reason::InputNotAvailable)
        );
        if !spent {
            return outcome;
        }
        match self.chain.evidence(&tx.id()).await {
            Ok(Evidence::Mempool | Evidence::Included { .. }) => {}
            _ => return outcome,
        }
        let payer = match self.chain.output_owner(&env.nonce).await {
            Ok(Some(owner)) => address::to_bech32(&owner).unwrap_or_default(),
            Ok(None) => String::new(),
            Err(e) => {
                return VerifyOutcome::Unavailable {
                    reason: Reason::ChainLookupFailed,
                    message: format!("the payer of an accepted transaction: {e}"),
                };
            }
        };
        exact_cardano::verify_accepted(&self.verify_ctx, env, tx, payer)
    }

    async fn answer_verified(&self, outcome: VerifyOutcome, hold: bool) -> Answer<VerifyResponse> {
        match outcome {
            VerifyOutcome::Valid(p) => {
                if hold {
                    let ttl = self.settings.chain.reservation.ttl;
                    match self.store.reserve(&p.inputs, &p.tx_id, ttl).await {
                        Ok(ReserveOutcome::Reserved) => {}
                        Ok(ReserveOutcome::Conflict { input, holder }) => {
                            tracing::info!(tx = %p.tx_id, input = %input, holder = %holder, "input held by another pending payment");
                            return Answer::Done(VerifyResponse::invalid(
                                Reason::InputNotAvailable.as_str(),
                                format!("input {input} is held by a pending payment"),
                                Some(p.payer.clone()),
                            ));
                        }
                        Err(e) => return store_down_verify(e),
                    }
                }
                tracing::info!(tx = %p.tx_id, payer = %p.payer, amount = p.amount, asset = %p.asset, held = hold, "payment verified");
                Answer::Done(VerifyResponse::valid(p.payer.clone()))
            }
            o @ VerifyOutcome::Invalid { .. } => Answer::Done(o.to_response()),
            o @ VerifyOutcome::Unavailable { .. } => Answer::Retry(o.to_response()),
        }
    }

    // -----------------------------------------------------------------
    // settle

    /// `POST /settle`: idempotency lookup, digests, claim (with the input
    /// holds and the logical key), verification, broadcast, observation,
    /// and the answer, with the payment's one success delivered once.
    pub async fn settle(&self, req: &ParsedRequest, caller: Caller<'_>) -> SettleResult {
        let network = self.network_label(Some(req));
        let ident = match self.identify(req, caller) {
            Ok(i) => i,
            Err(message) => {
                return SettleResult::Answer(Answer::Done(failure(
                    &network,
                    "",
                    Reason::InvalidPayloadShape,
                    message,
                    None,
                )));
            }
        };
        let retention = self.settings.settlement.retention;
        if let Some(i) = &ident {
            match self
                .store
                .idempotency_begin(&i.id, &i.request_digest, retention)
                .await
            {
                Ok(IdempotencyOutcome::New) => {}
                Ok(IdempotencyOutcome::Stored(answer)) => {
                    match serde_json::from_str::<SettleResponse>(&answer) {
                        Ok(body) => return SettleResult::Answer(Answer::Done(body)),
                        Err(_) => {
                            return SettleResult::Answer(Answer::Retry(failure(
                                &network,
                                "",
                                Reason::StoreUnavailable,
                                "the stored answer for this payment identifier is unreadable",
                                None,
                            )));
                        }
                    }
                }
                Ok(IdempotencyOutcome::Mismatch) => {
                    return SettleResult::Idempotency(IdempotencyError::Conflict);
                }
                Ok(IdempotencyOutcome::InProgress) => {
                    return SettleResult::Idempotency(IdempotencyError::InFlight);
                }
                Err(e) => return SettleResult::Answer(Answer::Retry(store_down(&network, e))),
            }
        }
        let answer = self.settle_claimed(req, &network, ident.as_ref()).await;
        if let Some(i) = &ident {
            // Only final answers are kept: a success, or a broadcast
            // transaction's terminal failure. Anything transient (503s,
            // pending, inputs held, verification failures) is retried anew.
            if is_final_answer(&answer) {
                if let Ok(text) = serde_json::to_string(answer.body()) {
                    let _ = self
                        .store
                        .idempotency_complete(&i.id, &i.request_digest, &text, retention)
                        .await;
                }
            } else {
                let _ = self.store.idempotency_abort(&i.id, &i.request_digest).await;
            }
        }
        SettleResult::Answer(answer)
    }

    async fn settle_claimed(
        &self,
        req: &ParsedRequest,
        network: &str,
        ident: Option<&Identified>,
    ) -> Answer<SettleResponse> {
        if self.settlement.is_paused() {
            return Answer::Retry(failure(
                network,
                "",
                Reason::SettlementPaused,
                "settlement is paused by the operator; retry later",
                None,
            ));
        }
        // Pure stages first: a malformed payment never touches the journal.
        let (env, tx, signers) = match self.pure_stages(req) {
            Ok(x) => x,
            Err((reason, message)) => {
                metrics::counter!("x402_settle_total", "result" => "rejected").increment(1);
                return Answer::Done(failure(network, "", reason, message, None));
            }
        };
        let key = ident.map(|i| i.delivery_key.as_str());
        let draft = self.draft(req, &env, &tx);
        // A claim held by a live request that is verifying it right now: wait
        // briefly for it to move on (its verification may fail, or it may
        // broadcast), rather than refuse a genuine payment.
        let mut waited = Duration::ZERO;
        let claimed = loop {
            match self.settlement.claim(draft.clone()).await {
                Ok(Claim::Claimed(r)) => break r,
                Ok(Claim::Existing(rec)) if rec.state == SettlementState::Claimed => {
                    if waited >= CLAIM_WAIT {
                        return answer_of(
                            network,
                            SettleAnswer::Unavailable {
                                reason: Reason::SettlementStateConflict,
                                message:
                                    "another request is verifying this transaction; retry shortly"
                                        .into(),
                            },
                        );
                    }
                    tokio::time::sleep(CLAIM_POLL).await;
                    waited += CLAIM_POLL;
                }
                Ok(Claim::Existing(rec)) => return self.resume(network, rec, env, tx, key).await,
                Ok(Claim::InputHeld { input, holder }) => {
                    tracing::info!(tx = %draft.tx_id, input = %input, holder = %holder, "settle: input held by another payment");
                    return Answer::Done(failure(
                        network,
                        "",
                        Reason::InputNotAvailable,
                        format!("input {input} is held by another pending payment"),
                        None,
                    ));
                }
                Ok(Claim::KeyBound { holder }) => {
                    metrics::counter!("x402_settle_total", "result" => "duplicate").increment(1);
                    return Answer::Done(failure(
                        network,
                        "",
                        Reason::DuplicateSettlement,
                        format!("these payment terms are already bound to transaction {holder}"),
                        None,
                    ));
                }
                Err(e) => {
                    // The claim's outcome is unknown (e.g. written on the Redis
                    // master but not acknowledged by the replicas asked for).
                    // Nothing was broadcast: undo it where it may have landed,
                    // so the next attempt claims afresh instead of waiting for
                    // it to go stale.
                    let _ = self.settlement.release(&draft).await;
                    return Answer::Retry(store_down(network, e));
                }
            }
        };

        // The chain stages, on the transaction already decoded and
        // signature-checked above.
        let outcome =
            exact_cardano::verify_checked(&self.verify_ctx, env.clone(), tx.clone(), signers).await;
        let outcome = self.ledger_probe(outcome, env, tx).await;
        let verified: Box<VerifiedPayment> = match outcome {
            VerifyOutcome::Valid(p) => p,
            VerifyOutcome::Invalid {
                reason,
                message,
                payer,
            } => {
                // Nothing was broadcast: leave no record behind, so a correct
                // variant of the same body settles normally afterwards.
                if let Err(e) = self.settlement.release(&claimed).await {
                    tracing::warn!(tx = %claimed.tx_id, error = %e, "could not release the claim; it goes stale");
                }
                metrics::counter!("x402_settle_total", "result" => "invalid").increment(1);
                return Answer::Done(failure(network, "", reason, message, payer));
            }
            VerifyOutcome::Unavailable { reason, message } => {
                let _ = self.settlement.release(&claimed).await;
                return Answer::Retry(failure(network, "", reason, message, None));
            }
        };
        let mut record = claimed;
        record.payer = verified.payer.clone();
        let tx_bytes = Arc::new(verified.tx.raw().to_vec());
        let answer = self
            .settlement
            .broadcast(record, tx_bytes, ident.map(|i| i.delivery_key.clone()))
            .await;
        answer_of(network, answer)
    }

    /// A repeat or concurrent settle of a known transaction: re-check that
    /// the transaction pays *these* requirements, then answer from the
    /// journal (never re-broadcast).
    async fn resume(
        &self,
        network: &str,
        rec: SettlementRecord,
        env: Envelope,
        tx: ParsedTx,
        key: Option<&str>,
    ) -> Answer<SettleResponse> {
        tracing::info!(tx = %rec.tx_id, state = rec.state.as_str(), "settle for a known transaction; answering from the journal");
        if !rec.state.is_final() {
            let payer = rec.payer.clone();
            match exact_cardano::verify_accepted(&self.verify_ctx, env, tx, payer) {
                VerifyOutcome::Valid(_) => {}
                VerifyOutcome::Invalid {
                    reason,
                    message,
                    payer,
                } => return Answer::Done(failure(network, "", reason, message, payer)),
                VerifyOutcome::Unavailable { reason, message } => {
                    return Answer::Retry(failure(network, "", reason, message, None));
                }
            }
        }
        let answer = self.settlement.resume(rec, key).await;
        answer_of(network, answer)
    }

    fn draft(&self, req: &ParsedRequest, env: &Envelope, tx: &ParsedTx) -> SettlementRecord {
        use base64::Engine;
        let now = now_ms();
        let q = req.requirements();
        let expires_at = match tx.ttl() {
            Some(ttl) => self.settlement.expiry_ms(ttl),
            None => now + (self.settings.settlement.retention.as_millis() as i64),
        };
        SettlementRecord {
            tx_id: tx.id(),
            state: SettlementState::Claimed,
            attempt: uuid::Uuid::new_v4().to_string(),
            network: env.network.caip2().to_owned(),
            payer: String::new(),
            pay_to: q.pay_to.to_owned(),
            asset: q.asset.to_owned(),
            amount: q.amount.to_owned(),
            requirements_digest: digest::requirements(req),
            required_confirmations: env.l1_confirmations,
            inputs: tx.inputs().to_vec(),
            ttl_slot: tx.ttl(),
            created_at: now,
            updated_at: now,
            submitted_at: None,
            confirmed_at: None,
            confirmations: None,
            block_hash: None,
            block_height: None,
            error: None,
            submissions: 0,
            expires_at,
            tx_cbor_b64: base64::engine::general_purpose::STANDARD.encode(tx.raw()),
            delivered_at: None,
            delivery_key: None,
            // The Masumi terms digest: bound to this transaction in the same
            // atomic claim (a second transaction for the same terms is a duplicate).
            logical_key: env.method.terms_digest().map(hex::encode),
            last_submit_at: None,
        }
    }

    // -----------------------------------------------------------------
    // status, supported, operator switches

    /// `/status`: where a settlement stands, from the journal; the chain is
    /// consulted at most once per transaction per poll interval.
    pub async fn status(&self, tx_id: TxId) -> StatusAnswer {
        let rec = match self.store.get(&tx_id).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return StatusAnswer::NotFound(json!({
                    "transaction": tx_id.to_hex(),
                    "network": self.chain.network().caip2(),
                    "status": "not_found",
                }));
            }
            Err(e) => return StatusAnswer::Unavailable(e.to_string()),
        };
        let rec = self.settlement.refresh(rec).await;
        let confirmations = match rec.state {
            SettlementState::Confirmed | SettlementState::Submitted | SettlementState::Pending => {
                rec.confirmations.unwrap_or(0)
            }
            _ => 0,
        };
        let error_reason = match rec.state {
            SettlementState::Failed => Some(Reason::SettlementFailed.as_str()),
            SettlementState::Expired => Some(Reason::SettlementFailed.as_str()),
            SettlementState::Rejected => Some(Reason::SettlementDefinitivelyRejected.as_str()),
            _ => None,
        };
        StatusAnswer::Found(json!({
            "transaction": rec.tx_id.to_hex(),
            "network": rec.network,
            "status": rec.state.as_str(),
            "confirmations": confirmations,
            "requiredConfirmations": rec.required_confirmations,
            "delivered": rec.delivered_at.is_some(),
            "payer": rec.payer,
            "payTo": rec.pay_to,
            "asset": rec.asset,
            "amount": rec.amount,
            "submittedAt": rfc3339_ms(rec.submitted_at),
            "confirmedAt": rfc3339_ms(rec.confirmed_at),
            "block": rec.block_hash,
            "blockHeight": rec.block_height,
            "errorReason": error_reason,
            "errorMessage": if error_reason.is_some() { rec.error.clone() } else { None },
        }))
    }

    /// `/supported`: every (version, scheme, network) kind served, with the
    /// confirmation range this operator allows.
    pub fn supported(&self) -> SupportedResponse {
        let mut s = exact_cardano::supported_response(self.chain.network());
        let (min, max) = self.rules.range();
        for k in &mut s.kinds {
            if let Some(Value::Object(extra)) = k.extra.as_mut() {
                extra.insert(
                    "l1Confirmations".into(),
                    json!({"minimum": min, "maximum": max}),
                );
            }
        }
        s.extensions = vec!["payment-identifier".to_owned()];
        s
    }

    pub fn is_paused(&self) -> bool {
        self.settlement.is_paused()
    }

    /// The operator's pause switch, shared by every replica through the store.
    pub async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.settlement.set_paused(paused).await
    }

    pub async fn list_settlements(
        &self,
        state: Option<SettlementState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.store.list(state, cursor, limit).await
    }

    pub async fn settlement_record(
        &self,
        tx_id: &TxId,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        self.store.get(tx_id).await
    }

    pub async fn reconcile_now(&self) -> Result<usize, StoreError> {
        self.settlement.reconcile_once().await
    }

    /// Validate an admin listing cursor before asking the store.
    pub fn parse_cursor(c: &str) -> Option<ListCursor> {
        ListCursor::parse(c)
    }
}

/// How long a settle waits for another request's live claim to move on.
const CLAIM_WAIT: Duration = Duration::from_secs(3);
const CLAIM_POLL: Duration = Duration::from_millis(25);

enum JournalVerdict {
    Refuse(Reason, String),
    Accepted,
    Fresh,
}

fn store_down_verify(e: StoreError) -> Answer<VerifyResponse> {
    tracing::error!(error = %e, "store unavailable; failing closed");
    Answer::Retry(VerifyResponse::invalid(
        Reason::StoreUnavailable.as_str(),
        "the reservation and journal store is unavailable; retry shortly",
        None,
    ))
}

fn store_down(network: &str, e: StoreError) -> SettleResponse {
    tracing::error!(error = %e, "store unavailable; failing closed");
    failure(
        network,
        "",
        Reason::StoreUnavailable,
        "the reservation and journal store is unavailable; retry shortly",
        None,
    )
}

fn failure(
    network: &str,
    transaction: &str,
    reason: Reason,
    message: impl Into<String>,
    payer: Option<String>,
) -> SettleResponse {
    SettleResponse {
        success: false,
        transaction: transaction.to_owned(),
        network: network.to_owned(),
        payer,
        error_reason: Some(reason.as_str().to_owned()),
        error_message: Some(message.into()),
        extra: None,
        extensions: None,
    }
}

/// Was anything handed to the network for this record?
fn broadcast(rec: &SettlementRecord) -> bool {
    rec.submissions > 0
}

fn payer_of(r: &SettlementRecord) -> Option<String> {
    (!r.payer.is_empty()).then(|| r.payer.clone())
}

/// The x402 answer for a journal outcome (sheet 2.5).
fn answer_of(network: &str, answer: SettleAnswer) -> Answer<SettleResponse> {
    match answer {
        SettleAnswer::Settled {
            record,
            confirmations,
        } => {
            let status = if confirmations < 0 {
                "mempool"
            } else {
                "confirmed"
            };
            Answer::Done(SettleResponse {
                success: true,
                transaction: record.tx_id.to_hex(),
                network: network.to_owned(),
                payer: payer_of(&record),
                error_reason: None,
                error_message: None,
                extra: Some(json!({ "status": status, "confirmations": confirmations })),
                extensions: None,
            })
        }
        SettleAnswer::Pending { record } => {
            let tx = record.tx_id.to_hex();
            let mut extra = json!({ "status": "pending", "transactionId": tx });
            match crate::settle::journal::standing(&record) {
                crate::settle::journal::Standing::Waiting {
                    confirmations: Some(c),
                }
                | crate::settle::journal::Standing::Met { confirmations: c } => {
                    extra["confirmations"] = json!(c);
                }
                _ => {}
            }
            let mut body = failure(
                network,
                &tx,
                Reason::SettlementPending,
                "broadcast; the requested confirmations were not reached yet: retry /settle or poll /status",
                payer_of(&record),
            );
            body.extra = Some(extra);
            Answer::Done(body)
        }
        SettleAnswer::Rejected { record } => {
            let message = record
                .error
                .clone()
                .unwrap_or_else(|| "the node rejected the transaction".into());
            let mut body = failure(
                network,
                &record.tx_id.to_hex(),
                Reason::SettlementDefinitivelyRejected,
                message,
                payer_of(&record),
            );
            body.extra = Some(json!({ "status": "rejected" }));
            Answer::Done(body)
        }
        SettleAnswer::Expired { record } => {
            let tx = if broadcast(&record) {
                record.tx_id.to_hex()
            } else {
                String::new()
            };
            let mut body = failure(
                network,
                &tx,
                Reason::SettlementFailed,
                "the transaction's validity window closed before it was included in a block",
                payer_of(&record),
            );
            body.extra = Some(json!({ "status": "expired" }));
            Answer::Done(body)
        }
        SettleAnswer::Failed { record, message } => {
            let tx = if broadcast(&record) {
                record.tx_id.to_hex()
            } else {
                String::new()
            };
            Answer::Done(failure(
                network,
                &tx,
                Reason::SettlementFailed,
                message,
                payer_of(&record),
            ))
        }
        SettleAnswer::Duplicate { record } => Answer::Done(failure(
            network,
            &record.tx_id.to_hex(),
            Reason::DuplicateSettlement,
            "this payment was already settled and its success delivered to another request; see /status",
            payer_of(&record),
        )),
        SettleAnswer::Unavailable { reason, message } => {
            Answer::Retry(failure(network, "", reason, message, None))
        }
        SettleAnswer::Paused => Answer::Retry(failure(
            network,
            "",
            Reason::SettlementPaused,
            "settlement is paused by the operator; retry later",
            None,
        )),
    }
}

/// Answers worth keeping for a payment identifier: a success, or the
/// terminal failure of a transaction that was broadcast.
fn is_final_answer(answer: &Answer<SettleResponse>) -> bool {
    let Answer::Done(body) = answer else {
        return false;
    };
    if body.success {
        return true;
    }
    matches!(
        body.error_reason.as_deref().and_then(Reason::from_wire),
        Some(
            Reason::SettlementDefinitivelyRejected
                | Reason::SettlementFailed
                | Reason::DuplicateSettlement
        )
    ) && !body.transaction.is_empty()
}

fn rfc3339_ms(ms: Option<i64>) -> Value {
    ms.and_then(|ms| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
    })
    .and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map(Value::String)
    .unwrap_or(Value::Null)
}
