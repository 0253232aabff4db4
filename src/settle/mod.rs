//! Settlement: turning a verified payment into an on-chain transaction
//! exactly once, following it to the confirmations its requirements ask for,
//! and handing its one success to exactly one caller.
//!
//! [`journal`] decides every move of a record (a pure function, table-tested);
//! this module does the I/O around it: it asks the chain, writes each decided
//! record with a compare-and-set on the version it read, and carries out the
//! decided effects (broadcast, release of input holds). The request path and
//! the reconciler use the same [`journal::step`].
//!
//! The broadcast and the wait for evidence run in their own task: if the
//! caller hangs up or the request times out, the journal still moves on, and
//! the reconciler (one lease holder among all replicas) finishes whatever a
//! request left.

pub mod journal;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cardano::TxId;
use crate::chain::{DynChain, SubmitOutcome};
use crate::config::Settings;
use crate::protocol::reason::Reason;
use crate::store::{
    CasOutcome, ClaimOutcome, DynStore, Schedule, SettlementRecord, SettlementState, StoreError,
};
use journal::{Decision, Effect, Event, Policy, Refusal, Standing};

const LEASE_NAME: &str = "reconciler";
/// The store flag behind the operator's pause switch.
pub const PAUSE_FLAG: &str = "settlement-paused";
/// How many times a caller re-reads a record that changed under its write.
const CAS_RETRIES: usize = 8;

/// What a settle call answers (translated to x402 JSON by the HTTP layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettleAnswer {
    /// The policy is met and this caller holds the payment's one success.
    /// `confirmations`: the strongest evidence (-1 = accepted, mempool).
    Settled {
        record: SettlementRecord,
        confirmations: i64,
    },
    /// Broadcast, the policy not met yet: `settlement_pending` with the tx id.
    Pending { record: SettlementRecord },
    /// The node definitively rejected it (tombstone).
    Rejected { record: SettlementRecord },
    /// Its validity window closed without inclusion.
    Expired { record: SettlementRecord },
    /// A record failed by an earlier version of this service.
    Failed {
        record: SettlementRecord,
        message: String,
    },
    /// The payment's success was already delivered to another caller.
    Duplicate { record: SettlementRecord },
    /// Store or chain unavailable: retry (HTTP 503).
    Unavailable { reason: Reason, message: String },
    /// Settlement is paused by an operator (HTTP 503).
    Paused,
}

/// Outcome of the claim step.
#[derive(Clone, Debug)]
pub enum Claim {
    /// This call owns the settlement: verify, then broadcast or release.
    Claimed(SettlementRecord),
    /// Already known: resume from the journal.
    Existing(SettlementRecord),
    /// An input is held by another transaction's settlement (or hold).
    InputHeld {
        input: crate::cardano::UtxoRef,
        holder: TxId,
    },
    /// The logical key (Masumi terms digest) is bound to another transaction.
    KeyBound { holder: TxId },
}

/// Outcome of handing the success to a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered(SettlementRecord),
    Duplicate(SettlementRecord),
    NotMet(SettlementRecord),
}

pub struct Settlement {
    store: DynStore,
    chain: DynChain,
    settings: Arc<Settings>,
    policy: Policy,
    /// This replica started paused (`settlement.paused`).
    paused_local: bool,
    /// The shared switch, as last read from the store (refreshed by every
    /// replica's reconciler loop, so all obey within one interval).
    paused_shared: AtomicBool,
    /// This replica's identity for the reconciler lease.
    replica: String,
    /// When /status last asked the chain about a transaction (at most once
    /// per poll interval per transaction); bounded.
    status_checked: Mutex<HashMap<TxId, i64>>,
}

/// Largest number of transactions /status remembers having refreshed.
const STATUS_MEMO: usize = 10_000;

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Does the node's rejection prove the transaction can never land as it is?
/// Only structural phase-1 verdicts that no later chain state can change.
/// Anything that may be caused by the transaction's own earlier arrival
/// (`BadInputsUTxO`: its inputs are already spent, perhaps by itself) or that
/// we do not recognise is not definitive: the chain decides by expiry.
pub fn is_definitive_rejection(reason: &str) -> bool {
    const DEFINITIVE: &[&str] = &[
        "FeeTooSmallUTxO",
        "ValueNotConservedUTxO",
        "OutsideValidityIntervalUTxO",
        "MaxTxSizeUTxO",
        "OutputTooSmallUTxO",
        "OutputTooBigUTxO",
        "OutputBootAddrAttrsTooBig",
        "WrongNetwork",
        "WrongNetworkWithdrawal",
        "WrongNetworkInTxBody",
        "InvalidWitnessesUTXOW",
        "MissingVKeyWitnessesUTXOW",
        "MissingScriptWitnessesUTXOW",
        "MissingTxBodyMetadataHash",
        "InsufficientCollateral",
        "TriesToForgeADA",
        "InputSetEmptyUTxO",
    ];
    const NEVER: &[&str] = &["BadInputsUTxO", "OutsideForecast", "UnknownReason"];
    if NEVER.iter().any(|n| reason.contains(n)) {
        return false;
    }
    DEFINITIVE.iter().any(|d| reason.contains(d))
}

fn unavailable(e: StoreError) -> SettleAnswer {
    SettleAnswer::Unavailable {
        reason: Reason::StoreUnavailable,
        message: e.to_string(),
    }
}

impl Settlement {
    pub fn new(store: DynStore, chain: DynChain, settings: Arc<Settings>) -> Arc<Settlement> {
        let s = &settings.settlement;
        let policy = Policy {
            stale_claim_ms: 30_000,
            stability_depth: s.stability_depth,
            rebroadcast_after_ms: (s.rebroadcast_after.as_millis() as i64),
            max_submissions: s.max_submissions,
            poll_ms: (s.poll_interval.as_millis() as i64).max(250) * 4,
        };
        Arc::new(Settlement {
            store,
            chain,
            policy,
            paused_local: s.paused,
            paused_shared: AtomicBool::new(false),
            settings,
            replica: uuid::Uuid::new_v4().to_string(),
            status_checked: Mutex::new(HashMap::new()),
        })
    }

    /// The CAIP-2 id of this settlement's network (a metrics label).
    pub fn network(&self) -> &'static str {
        self.settings.chain.network.caip2()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn is_paused(&self) -> bool {
        self.paused_local || self.paused_shared.load(Ordering::Relaxed)
    }

    /// The operator's switch: written to the store (every replica reads it
    /// within one reconcile interval) and applied here at once.
    pub async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.store.set_flag(PAUSE_FLAG, paused).await?;
        self.paused_shared.store(paused, Ordering::Relaxed);
        Ok(())
    }

    /// Read the shared switch again.
    pub async fn refresh_pause(&self) -> Result<bool, StoreError> {
        let shared = self.store.flag(PAUSE_FLAG).await?;
        self.paused_shared.store(shared, Ordering::Relaxed);
        Ok(self.is_paused())
    }

    fn retention(&self, rec: &SettlementRecord) -> Duration {
        let base = self.settings.settlement.retention.as_millis() as i64;
        let margin = self.settings.settlement.rollback_margin.as_millis() as i64;
        let window = rec
            .expires_at
            .saturating_sub(now_ms())
            .saturating_add(margin);
        Duration::from_millis(base.max(window).max(1) as u64)
    }

    /// Unix ms after which an unconfirmed transaction with this ttl is expired:
    /// the end of its validity window plus the grace (the scheme's 120 s).
    pub fn expiry_ms(&self, ttl_slot: u64) -> i64 {
        let grace_ms = self.settings.settlement.expiry_grace.as_millis() as i64;
        let now = now_ms();
        let now_slot = self.chain.slot_at(now / 1000);
        let ahead = ttl_slot.saturating_sub(now_slot) as i64;
        now + ahead * 1000 + grace_ms
    }

    /// How long a settling transaction's inputs stay held: until it can no
    /// longer land, and at least `chain.reservation.ttlSeconds`.
    fn hold(&self, rec: &SettlementRecord) -> Duration {
        let min = self.settings.chain.reservation.ttl.as_millis() as i64;
        Duration::from_millis(min.max(rec.expires_at - now_ms()).max(1) as u64)
    }

    /// Write `next` over `from` (compare-and-set on `from`'s version), with a
    /// fresh version token.
    async fn cas(
        &self,
        from: &SettlementRecord,
        mut next: SettlementRecord,
        schedule: Schedule,
    ) -> Result<CasOutcome, StoreError> {
        next.attempt = uuid::Uuid::new_v4().to_string();
        let retention = self.retention(&next);
        let out = self
            .store
            .transition(from.state, &from.attempt, &next, retention, schedule)
            .await?;
        if let CasOutcome::Applied(r) = &out
            && r.state != from.state
        {
            tracing::info!(tx = %r.tx_id, from = from.state.as_str(), to = r.state.as_str(), "settlement transition");
            metrics::counter!("x402_settlement_transitions_total", "network" => self.network(), "to" => r.state.as_str())
                .increment(1);
        }
        Ok(out)
    }

    /// Apply one event to `rec` and write the decision. Returns the record
    /// as it is now (after this write, or as a concurrent writer left it),
    /// the effect to carry out, and whether this call wrote.
    async fn apply(
        &self,
        rec: &SettlementRecord,
        event: Event<'_>,
    ) -> Result<(SettlementRecord, Effect, bool), StoreError> {
        match journal::step(rec, event, now_ms(), &self.policy) {
            Decision::Write {
                next,
                schedule,
                effect,
            } => match self.cas(rec, *next, schedule).await? {
                CasOutcome::Applied(r) => Ok((r, effect, true)),
                CasOutcome::Conflict(Some(now)) => Ok((now, Effect::None, false)),
                CasOutcome::Conflict(None) => Err(StoreError::Unavailable(
                    "settlement record vanished under a transition".into(),
                )),
            },
            Decision::Forget => {
                let gone = self.store.release_claim(&rec.tx_id, &rec.attempt).await?;
                if gone {
                    tracing::info!(tx = %rec.tx_id, "abandoned claim forgotten (nothing was broadcast)");
                }
                Ok((rec.clone(), Effect::None, gone))
            }
            Decision::Keep | Decision::Refuse(_) => Ok((rec.clone(), Effect::None, false)),
        }
    }

    async fn carry_out(&self, rec: &SettlementRecord, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::ReleaseInputs => {
                let _ = self.store.release(&rec.inputs, &rec.tx_id).await;
            }
            Effect::Broadcast => {
                use base64::Engine;
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&rec.tx_cbor_b64)
                else {
                    tracing::error!(tx = %rec.tx_id, "journal record holds undecodable transaction bytes");
                    return;
                };
                tracing::warn!(tx = %rec.tx_id, submissions = rec.submissions, "re-broadcasting a transaction whose submit outcome was unknown");
                metrics::counter!("x402_rebroadcasts_total", "network" => self.network())
                    .increment(1);
                let outcome = self.chain.submit(&bytes).await;
                let _ = self.record_submit(rec, outcome).await;
            }
        }
    }

    /// Atomically claim the settlement of `draft.tx_id` (reserving its inputs
    /// and binding its logical key), or find what stands in the way. A stale
    /// CLAIMED record (its claimant died mid-verification) is taken over.
    #[tracing::instrument(level = "debug", name = "settle.claim", skip_all)]
    pub async fn claim(&self, draft: SettlementRecord) -> Result<Claim, StoreError> {
        let retention = self.retention(&draft);
        let hold = self.hold(&draft);
        let schedule = Schedule::At(now_ms() + self.policy.stale_claim_ms);
        match self.store.claim(&draft, hold, retention, schedule).await? {
            ClaimOutcome::Claimed(r) => Ok(Claim::Claimed(r)),
            ClaimOutcome::InputHeld { input, holder } => Ok(Claim::InputHeld { input, holder }),
            ClaimOutcome::KeyBound { holder } => Ok(Claim::KeyBound { holder }),
            ClaimOutcome::Existing(existing) => {
                match journal::step(
                    &existing,
                    Event::Claim { draft: &draft },
                    now_ms(),
                    &self.policy,
                ) {
                    Decision::Write { next, schedule, .. } => {
                        match self.cas(&existing, *next, schedule).await? {
                            CasOutcome::Applied(r) => {
                                // The dead claimant's holds now belong to this claim.
                                self.store.reserve(&r.inputs, &r.tx_id, hold).await?;
                                Ok(Claim::Claimed(r))
                            }
                            CasOutcome::Conflict(Some(now)) => Ok(Claim::Existing(now)),
                            CasOutcome::Conflict(None) => Err(StoreError::Unavailable(
                                "settlement record vanished during takeover".into(),
                            )),
                        }
                    }
                    _ => Ok(Claim::Existing(existing)),
                }
            }
        }
    }

    /// Verification failed after the claim, before anything was broadcast:
    /// delete the claim, its holds and its logical key. No record is left, so
    /// a correct variant of the same body can settle afterwards.
    pub async fn release(&self, claimed: &SettlementRecord) -> Result<(), StoreError> {
        self.store
            .release_claim(&claimed.tx_id, &claimed.attempt)
            .await
            .map(|_| ())
    }

    /// Broadcast a claimed, verified payment and follow it: CLAIMED ->
    /// SUBMITTING -> submit -> SUBMITTED (or REJECTED, or SUBMITTING while the
    /// outcome is unknown) -> evidence -> the one success, or pending.
    /// Runs in its own task so a dropped request cannot cut it in half.
    pub async fn broadcast(
        self: &Arc<Self>,
        claimed: SettlementRecord,
        tx_cbor: Arc<Vec<u8>>,
        delivery_key: Option<String>,
    ) -> SettleAnswer {
        let this = self.clone();
        // The task keeps the request's span, so its log lines carry the reqId.
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move { this.broadcast_inner(claimed, tx_cbor, delivery_key).await },
            span,
        ));
        match task.await {
            Ok(a) => a,
            Err(e) => SettleAnswer::Unavailable {
                reason: Reason::SettlementInternalError,
                message: format!("settlement task failed: {e}"),
            },
        }
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.settings.settlement.confirmation_timeout
    }

    #[tracing::instrument(level = "debug", name = "settle.submit", skip_all)]
    async fn broadcast_inner(
        self: Arc<Self>,
        claimed: SettlementRecord,
        tx_cbor: Arc<Vec<u8>>,
        delivery_key: Option<String>,
    ) -> SettleAnswer {
        let deadline = self.deadline();
        if self.is_paused() {
            let _ = self.release(&claimed).await;
            return SettleAnswer::Paused;
        }
        // The intent is durable before any network I/O.
        let Decision::Write { next, schedule, .. } =
            journal::step(&claimed, Event::Broadcast, now_ms(), &self.policy)
        else {
            return self.resume(claimed, delivery_key.as_deref()).await;
        };
        let mut intent = *next;
        intent.attempt = uuid::Uuid::new_v4().to_string();
        let written = self
            .store
            .transition(
                claimed.state,
                &claimed.attempt,
                &intent,
                self.retention(&intent),
                schedule,
            )
            .await;
        let submitting = match written {
            Ok(CasOutcome::Applied(r)) => {
                tracing::info!(tx = %r.tx_id, from = claimed.state.as_str(), to = r.state.as_str(), "settlement transition");
                metrics::counter!("x402_settlement_transitions_total", "network" => self.network(), "to" => r.state.as_str())
                    .increment(1);
                r
            }
            Ok(CasOutcome::Conflict(Some(now))) => {
                return self.resume(now, delivery_key.as_deref()).await;
            }
            Ok(CasOutcome::Conflict(None)) => {
                return SettleAnswer::Unavailable {
                    reason: Reason::SettlementStateConflict,
                    message: "settlement record vanished before the broadcast".into(),
                };
            }
            Err(e) => {
                // E.g. written on the Redis master but not acknowledged by the
                // replicas: nothing was broadcast. Undo the intent where it
                // landed so the next attempt can take the payment over at once.
                tracing::warn!(tx = %claimed.tx_id, error = %e, "could not journal the broadcast intent; nothing was broadcast");
                self.undo_intent(&claimed, &intent).await;
                return unavailable(e);
            }
        };
        let outcome = self.chain.submit(&tx_cbor).await;
        if outcome == SubmitOutcome::Accepted
            && let Some(answer) = self
                .accept_and_deliver(&submitting, delivery_key.as_deref())
                .await
        {
            return answer;
        }
        let after = match self.record_submit(&submitting, outcome).await {
            Ok(r) => r,
            Err(e) => {
                // Broadcast may have happened; the reconciler resolves the record.
                tracing::warn!(tx = %submitting.tx_id, error = %e, "could not journal the submit outcome");
                return SettleAnswer::Pending { record: submitting };
            }
        };
        if after.state == SettlementState::Rejected {
            metrics::counter!("x402_settle_total", "network" => self.network(), "result" => "rejected").increment(1);
            return SettleAnswer::Rejected { record: after };
        }
        self.observe_until(after, deadline, delivery_key.as_deref())
            .await
    }

    /// The node accepted the bytes and that alone meets the policy (`-1`,
    /// with the operator's mempool opt-in): journal the acceptance and the
    /// delivery of the success in one compare-and-set (one store round trip).
    /// `None` when the policy needs more evidence, or the record moved
    /// meanwhile (the general path then takes over).
    async fn accept_and_deliver(
        &self,
        rec: &SettlementRecord,
        key: Option<&str>,
    ) -> Option<SettleAnswer> {
        let now = now_ms();
        let Decision::Write { next: accepted, .. } =
            journal::step(rec, Event::SubmitAccepted, now, &self.policy)
        else {
            return None;
        };
        let Decision::Write { next, schedule, .. } =
            journal::step(&accepted, Event::Deliver { key }, now, &self.policy)
        else {
            return None;
        };
        self.chain.invalidate(&rec.inputs);
        match self.cas(rec, *next, schedule).await {
            Ok(CasOutcome::Applied(r)) => {
                metrics::counter!("x402_settle_total", "network" => self.network(), "result" => "success").increment(1);
                Some(SettleAnswer::Settled {
                    confirmations: settled_confirmations(&r),
                    record: r,
                })
            }
            _ => None,
        }
    }

    /// Best effort after an intent write whose outcome is unknown: if the
    /// record holds exactly that intent (nothing was handed to the network),
    /// turn it back into a claim and release it; otherwise release the claim.
    async fn undo_intent(&self, claimed: &SettlementRecord, intent: &SettlementRecord) {
        let mut back = claimed.clone();
        back.attempt = uuid::Uuid::new_v4().to_string();
        back.updated_at = now_ms();
        let reverted = self
            .store
            .transition(
                SettlementState::Submitting,
                &intent.attempt,
                &back,
                self.retention(&back),
                Schedule::Keep,
            )
            .await;
        let token = match reverted {
            Ok(CasOutcome::Applied(r)) => r.attempt,
            _ => claimed.attempt.clone(),
        };
        let _ = self.store.release_claim(&claimed.tx_id, &token).await;
    }

    /// Journal what the node said about a hand-over of `rec`'s bytes. A
    /// rejection is checked against the chain first: a transaction the chain
    /// shows (e.g. the buyer broadcast it too) is not a failure.
    async fn record_submit(
        &self,
        rec: &SettlementRecord,
        outcome: SubmitOutcome,
    ) -> Result<SettlementRecord, StoreError> {
        match outcome {
            SubmitOutcome::Accepted => {
                self.chain.invalidate(&rec.inputs);
                self.apply(rec, Event::SubmitAccepted)
                    .await
                    .map(|(r, ..)| r)
            }
            SubmitOutcome::Rejected(reason) => {
                let evidence = self.chain.evidence(&rec.tx_id).await.ok();
                let definitive = is_definitive_rejection(&reason);
                tracing::warn!(tx = %rec.tx_id, reason = %reason, definitive, evidence = ?evidence, "node rejected the transaction");
                let (r, effect, _) = self
                    .apply(
                        rec,
                        Event::SubmitRejected {
                            reason: &reason,
                            definitive,
                            evidence: evidence.as_ref(),
                        },
                    )
                    .await?;
                // A tombstone frees the holds (the only effect this event has).
                if effect == Effect::ReleaseInputs {
                    let _ = self.store.release(&r.inputs, &r.tx_id).await;
                }
                Ok(r)
            }
            SubmitOutcome::Unknown(why) => {
                // Never reported as failed: the transaction may be on its way.
                tracing::warn!(tx = %rec.tx_id, reason = %why, "submission outcome unknown; the chain decides");
                self.apply(rec, Event::SubmitUnknown { why: &why })
                    .await
                    .map(|(r, ..)| r)
            }
        }
    }

    /// Hand the payment's one success to this caller, by compare-and-set.
    pub async fn deliver(
        &self,
        mut rec: SettlementRecord,
        key: Option<&str>,
    ) -> Result<Delivery, StoreError> {
        for _ in 0..CAS_RETRIES {
            match journal::step(&rec, Event::Deliver { key }, now_ms(), &self.policy) {
                Decision::Write { next, schedule, .. } => {
                    match self.cas(&rec, *next, schedule).await? {
                        CasOutcome::Applied(r) => {
                            metrics::counter!("x402_settle_total", "network" => self.network(), "result" => "success")
                                .increment(1);
                            return Ok(Delivery::Delivered(r));
                        }
                        CasOutcome::Conflict(Some(now)) => rec = now,
                        CasOutcome::Conflict(None) => {
                            return Err(StoreError::Unavailable(
                                "settlement record vanished before delivery".into(),
                            ));
                        }
                    }
                }
                Decision::Refuse(Refusal::AlreadyDelivered) => {
                    let same_caller = key.is_some() && rec.delivery_key.as_deref() == key;
                    if same_caller || self.settings.settlement.repeat_success {
                        return Ok(Delivery::Delivered(rec));
                    }
                    metrics::counter!("x402_settle_total", "network" => self.network(), "result" => "duplicate").increment(1);
                    return Ok(Delivery::Duplicate(rec));
                }
                _ => return Ok(Delivery::NotMet(rec)),
            }
        }
        Err(StoreError::Unavailable(
            "settlement record kept changing during delivery".into(),
        ))
    }

    /// Answer for a record found in the journal (a repeat or concurrent
    /// settle): never re-broadcasts; observes, then delivers once.
    #[tracing::instrument(level = "debug", name = "settle.resume", skip_all)]
    pub async fn resume(&self, rec: SettlementRecord, key: Option<&str>) -> SettleAnswer {
        if rec.delivered_at.is_some() {
            return self.delivered_answer(rec, key).await;
        }
        match rec.state {
            SettlementState::Rejected => SettleAnswer::Rejected { record: rec },
            SettlementState::Expired => SettleAnswer::Expired { record: rec },
            SettlementState::Failed => {
                let message = rec
                    .error
                    .clone()
                    .unwrap_or_else(|| "settlement failed".into());
                SettleAnswer::Failed {
                    record: rec,
                    message,
                }
            }
            SettlementState::Claimed => SettleAnswer::Unavailable {
                reason: Reason::SettlementStateConflict,
                message: "another request is verifying this transaction; retry shortly".into(),
            },
            _ => self.observe_until(rec, self.deadline(), key).await,
        }
    }

    async fn delivered_answer(&self, rec: SettlementRecord, key: Option<&str>) -> SettleAnswer {
        match self.deliver(rec, key).await {
            Ok(Delivery::Delivered(r)) => SettleAnswer::Settled {
                confirmations: settled_confirmations(&r),
                record: r,
            },
            Ok(Delivery::Duplicate(r)) => SettleAnswer::Duplicate { record: r },
            Ok(Delivery::NotMet(r)) => SettleAnswer::Pending { record: r },
            Err(e) => unavailable(e),
        }
    }

    /// Follow the chain until the policy is met (then deliver), the record
    /// turns final, or the deadline passes (then pending).
    #[tracing::instrument(level = "debug", name = "settle.confirmations", skip_all)]
    async fn observe_until(
        &self,
        mut rec: SettlementRecord,
        deadline: tokio::time::Instant,
        key: Option<&str>,
    ) -> SettleAnswer {
        let poll = self.settings.settlement.poll_interval;
        let mut warned = false;
        loop {
            match journal::standing(&rec) {
                Standing::Met { .. } => match self.deliver(rec, key).await {
                    Ok(Delivery::Delivered(r)) => {
                        return SettleAnswer::Settled {
                            confirmations: settled_confirmations(&r),
                            record: r,
                        };
                    }
                    Ok(Delivery::Duplicate(r)) => return SettleAnswer::Duplicate { record: r },
                    Ok(Delivery::NotMet(r)) => rec = r,
                    Err(e) => return unavailable(e),
                },
                Standing::Rejected => return SettleAnswer::Rejected { record: rec },
                Standing::Expired => return SettleAnswer::Expired { record: rec },
                Standing::Failed => {
                    let message = rec
                        .error
                        .clone()
                        .unwrap_or_else(|| "settlement failed".into());
                    return SettleAnswer::Failed {
                        record: rec,
                        message,
                    };
                }
                Standing::Waiting { .. } | Standing::Unbroadcast => {}
            }
            if rec.delivered_at.is_some() {
                return self.delivered_answer(rec, key).await;
            }
            match self.chain.evidence(&rec.tx_id).await {
                Ok(ev) => match self.apply(&rec, Event::Evidence(&ev)).await {
                    Ok((r, effect, _)) => {
                        self.carry_out(&r, effect).await;
                        rec = r;
                        if !matches!(journal::standing(&rec), Standing::Waiting { .. }) {
                            continue;
                        }
                    }
                    Err(e) => return unavailable(e),
                },
                Err(e) => {
                    if !warned {
                        tracing::warn!(tx = %rec.tx_id, error = %e, "evidence lookup failed; will retry");
                        warned = true;
                    }
                }
            }
            if tokio::time::Instant::now() + poll > deadline {
                break;
            }
            tokio::time::sleep(poll).await;
        }
        // The wait ran out: SUBMITTED -> PENDING, handed to the reconciler.
        if let Ok((r, ..)) = self.apply(&rec, Event::WaitExpired).await {
            rec = r;
        }
        metrics::counter!("x402_settle_total", "network" => self.network(), "result" => "pending")
            .increment(1);
        SettleAnswer::Pending { record: rec }
    }

    /// The record brought up to date with chain evidence, for /status: the
    /// chain is asked at most once per transaction per poll interval (per
    /// replica); on a lookup error the stored record is returned as it is.
    pub async fn refresh(&self, rec: SettlementRecord) -> SettlementRecord {
        if !(rec.state.is_open() || rec.state == SettlementState::Confirmed) {
            return rec;
        }
        let now = now_ms();
        let interval = self.settings.settlement.poll_interval.as_millis() as i64;
        {
            let mut seen = self.status_checked.lock();
            if seen.get(&rec.tx_id).is_some_and(|&at| now - at < interval) {
                return rec;
            }
            if seen.len() >= STATUS_MEMO {
                seen.retain(|_, at| now - *at < interval);
                if seen.len() >= STATUS_MEMO {
                    seen.clear();
                }
            }
            seen.insert(rec.tx_id, now);
        }
        match self.chain.evidence(&rec.tx_id).await {
            Ok(ev) => match self.apply(&rec, Event::Evidence(&ev)).await {
                Ok((r, effect, _)) => {
                    self.carry_out(&r, effect).await;
                    r
                }
                Err(_) => rec,
            },
            Err(_) => rec,
        }
    }

    /// One reconciler pass over the records that are due. Returns how many were examined.
    pub async fn reconcile_once(&self) -> Result<usize, StoreError> {
        let due = self.store.due(now_ms(), 200).await?;
        let mut n = 0;
        for tx_id in due {
            let Some(rec) = self.store.get(&tx_id).await? else {
                continue;
            };
            n += 1;
            self.reconcile_record(rec).await;
        }
        if let Ok(counts) = self.store.count_by_state().await {
            for (state, count) in counts {
                metrics::gauge!("x402_settlements", "network" => self.network(), "state" => state.as_str()).set(count as f64);
            }
        }
        Ok(n)
    }

    #[tracing::instrument(level = "debug", name = "settle.reconcile_record", skip_all)]
    async fn reconcile_record(&self, rec: SettlementRecord) {
        let now = now_ms();
        let result = if rec.state == SettlementState::Claimed || rec.state.is_final() {
            self.apply(&rec, Event::Tick).await
        } else {
            match self.chain.evidence(&rec.tx_id).await {
                Ok(ev) => self.apply(&rec, Event::Reconcile(&ev)).await,
                Err(e) => {
                    tracing::warn!(tx = %rec.tx_id, error = %e, "reconciler: evidence lookup failed; retrying later");
                    let _ = self.cas(&rec, rec.clone(), Schedule::At(now + 5_000)).await;
                    return;
                }
            }
        };
        match result {
            Ok((current, effect, wrote)) => {
                if rec.state == SettlementState::Confirmed
                    && current.state == SettlementState::Submitted
                {
                    metrics::counter!("x402_rollbacks_total", "network" => self.network())
                        .increment(1);
                    if rec.delivered_at.is_some() {
                        tracing::error!(tx = %rec.tx_id, "rollback of a settlement whose success was already delivered");
                        metrics::counter!("x402_rollbacks_after_delivery_total", "network" => self.network()).increment(1);
                    } else {
                        tracing::warn!(tx = %rec.tx_id, "rollback: confirmed transaction left the chain; back to SUBMITTED");
                    }
                }
                self.carry_out(&current, effect).await;
                // Unchanged but still watched: look again later (a live claim
                // is looked at once it would have gone stale).
                if !wrote {
                    let at = if current.state == SettlementState::Claimed {
                        current.updated_at + self.policy.stale_claim_ms + 1
                    } else {
                        now + self.policy.poll_ms
                    };
                    let _ = self.cas(&current, current.clone(), Schedule::At(at)).await;
                }
                tracing::debug!(tx = %current.tx_id, state = current.state.as_str(), "reconciled");
            }
            Err(e) => tracing::warn!(tx = %rec.tx_id, error = %e, "reconciler: could not write"),
        }
        metrics::counter!("x402_reconciler_records_total", "network" => self.network())
            .increment(1);
    }

    /// The background loop on every replica: refresh the shared pause switch;
    /// the one lease holder among replicas also runs reconciler passes.
    pub fn spawn_reconciler(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let interval = this.settings.settlement.reconcile_interval;
            let lease_ttl = interval.saturating_mul(5).max(Duration::from_secs(2));
            let mut holding = false;
            loop {
                if let Err(e) = this.refresh_pause().await {
                    tracing::debug!(error = %e, "could not read the shared pause switch");
                }
                match this
                    .store
                    .acquire_lease(LEASE_NAME, &this.replica, lease_ttl)
                    .await
                {
                    Ok(true) => {
                        if !holding {
                            tracing::info!(replica = %this.replica, "reconciler lease acquired");
                            holding = true;
                        }
                        metrics::gauge!("x402_reconciler_leader", "network" => this.network())
                            .set(1.0);
                        match this.reconcile_once().await {
                            Ok(n) if n > 0 => tracing::info!(records = n, "reconciler pass"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "reconciler pass failed"),
                        }
                    }
                    Ok(false) => {
                        if holding {
                            tracing::info!(replica = %this.replica, "reconciler lease lost");
                        }
                        holding = false;
                        metrics::gauge!("x402_reconciler_leader", "network" => this.network())
                            .set(0.0);
                    }
                    Err(e) => {
                        holding = false;
                        tracing::warn!(error = %e, "reconciler cannot reach the store");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = shutdown.wait_for(|v| *v) => break,
                }
            }
            if holding {
                let _ = this.store.release_lease(LEASE_NAME, &this.replica).await;
            }
        })
    }
}

/// The confirmations a settled record reports: its depth in a block, or -1
/// when the node's acceptance alone met a mempool policy.
pub fn settled_confirmations(rec: &SettlementRecord) -> i64 {
    match journal::standing(rec) {
        Standing::Met { confirmations } => confirmations,
        _ => rec.confirmations.map_or(-1, |c| c as i64),
    }
}
