//! Settlement: turning a verified payment into an on-chain transaction
//! exactly once, and telling callers the truth about where it stands.
//!
//! The journal state machine (DESIGN.md section 6) lives here; the store only
//! offers atomic claim and compare-and-set. Every transition names the
//! attempt that claimed the record, so a replica that lost its claim (it
//! stalled, another took over) can never overwrite newer state.
//!
//! ```text
//! CLAIMED -> SUBMITTING -> SUBMITTED -> CONFIRMED
//!               |              |-> PENDING (wait ran out; may still land)
//!               |-> FAILED (definitive node rejection only)
//! SUBMITTING (outcome unknown) stays until chain evidence decides.
//! CONFIRMED -> SUBMITTED on rollback; unconfirmed past ttl + margin -> EXPIRED.
//! ```
//!
//! The wait for confirmations runs in its own task: if the caller hangs up
//! or the request times out, the journal still moves on, and the reconciler
//! (one lease holder among all replicas) finishes whatever a request left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::cardano::{Network, TxId, UtxoRef};
use crate::chain::{DynChain, Evidence, SubmitOutcome};
use crate::config::Settings;
use crate::store::{
    CasOutcome, ClaimOutcome, DynStore, Schedule, SettlementRecord, SettlementState, StoreError,
};

/// A CLAIMED record this old whose claimant never moved it on is abandoned
/// (nothing was broadcast: SUBMITTING is written before any network I/O).
const STALE_CLAIM_MS: i64 = 30_000;
/// Marker in `error` of a CLAIMED record whose verification could not finish.
const RETRYABLE_MARK: &str = "retryable:";
const LEASE_NAME: &str = "reconciler";

/// What a settle call answers (translated to x402 JSON by the HTTP layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettleAnswer {
    /// The confirmation policy is met.
    Settled {
        record: SettlementRecord,
        status: &'static str,
        confirmations: u64,
    },
    /// Broadcast, not yet confirmed as asked: `settlement_pending` with the tx id.
    Pending { record: SettlementRecord },
    /// The node rejected it, or it can no longer land.
    Failed {
        record: SettlementRecord,
        reason: &'static str,
        message: String,
    },
    /// The same transaction was settled under different requirements.
    Duplicate { tx_id: TxId },
    /// Store or chain unavailable before anything was broadcast: retry.
    Unavailable {
        reason: &'static str,
        message: String,
    },
    /// Settlement is paused by an operator.
    Paused,
}

/// The facts of a verified payment that the journal keeps.
#[derive(Clone, Debug)]
pub struct Payment {
    pub tx_id: TxId,
    pub tx_cbor: Arc<Vec<u8>>,
    pub inputs: Vec<UtxoRef>,
    pub payer: String,
    pub pay_to: String,
    pub asset: String,
    pub amount: String,
    pub network: Network,
    pub requirements_digest: String,
    pub required_confirmations: i64,
    pub ttl_slot: Option<u64>,
}

/// Outcome of the claim step.
#[derive(Clone, Debug)]
pub enum Begin {
    /// This call owns the settlement; verify, then submit.
    Claimed(SettlementRecord),
    /// Already known: answer from the journal (see [`Settlement::resume`]).
    Existing(SettlementRecord),
}

pub struct Settlement {
    store: DynStore,
    chain: DynChain,
    settings: Arc<Settings>,
    paused: AtomicBool,
    /// This replica's identity for the reconciler lease.
    replica: String,
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Settlement {
    pub fn new(store: DynStore, chain: DynChain, settings: Arc<Settings>) -> Arc<Settlement> {
        let paused = AtomicBool::new(settings.settlement.paused);
        Arc::new(Settlement {
            store,
            chain,
            settings,
            paused,
            replica: uuid::Uuid::new_v4().to_string(),
        })
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn replica_id(&self) -> &str {
        &self.replica
    }

    fn retention(&self, rec: &SettlementRecord) -> Duration {
        let base = self.settings.settlement.retention_seconds;
        let margin = self.settings.settlement.rollback_margin_seconds;
        let window = rec
            .ttl_slot
            .map(|ttl| {
                let now_slot = self.chain.slot_at(now_ms() / 1000);
                ttl.saturating_sub(now_slot)
            })
            .unwrap_or(0);
        Duration::from_secs(base.max(window.saturating_add(margin)))
    }

    /// When an unconfirmed record may be expired: its ttl (as unix time) plus the margin.
    pub fn expiry_ms(&self, ttl_slot: Option<u64>) -> i64 {
        let margin_ms = (self.settings.settlement.rollback_margin_seconds as i64) * 1000;
        match ttl_slot {
            Some(ttl) => {
                let now = now_ms();
                let now_slot = self.chain.slot_at(now / 1000);
                let ahead = ttl.saturating_sub(now_slot) as i64;
                now + ahead * 1000 + margin_ms
            }
            None => now_ms() + (self.settings.settlement.retention_seconds as i64) * 1000,
        }
    }

    fn poll(&self) -> Duration {
        Duration::from_millis(self.settings.settlement.poll_interval_ms)
    }

    /// Build the record this payment would be journalled as.
    pub fn draft(&self, p: &Payment) -> SettlementRecord {
        let now = now_ms();
        SettlementRecord {
            tx_id: p.tx_id,
            state: SettlementState::Claimed,
            attempt: uuid::Uuid::new_v4().to_string(),
            network: p.network.caip2().to_owned(),
            payer: p.payer.clone(),
            pay_to: p.pay_to.clone(),
            asset: p.asset.clone(),
            amount: p.amount.clone(),
            requirements_digest: p.requirements_digest.clone(),
            required_confirmations: p.required_confirmations,
            inputs: p.inputs.clone(),
            ttl_slot: p.ttl_slot,
            created_at: now,
            updated_at: now,
            submitted_at: None,
            confirmed_at: None,
            confirmations: None,
            block_hash: None,
            block_height: None,
            error: None,
            submissions: 0,
            expires_at: self.expiry_ms(p.ttl_slot),
            tx_cbor_b64: base64_of(&p.tx_cbor),
        }
    }

    async fn cas(
        &self,
        from: &SettlementRecord,
        next: SettlementRecord,
        schedule: Schedule,
    ) -> Result<CasOutcome, StoreError> {
        let retention = self.retention(&next);
        let out = self
            .store
            .transition(from.state, &from.attempt, &next, retention, schedule)
            .await?;
        if let CasOutcome::Applied(r) = &out
            && r.state != from.state
        {
            tracing::info!(tx = %r.tx_id, from = from.state.as_str(), to = r.state.as_str(), attempt = %r.attempt, "settlement transition");
            metrics::counter!("x402_settlement_transitions_total", "to" => r.state.as_str())
                .increment(1);
        }
        Ok(out)
    }

    /// Atomically claim the settlement of `draft.tx_id`, or find the existing record.
    /// A stale or retryable CLAIMED record is taken over by compare-and-set.
    #[tracing::instrument(level = "debug", name = "settle.claim", skip_all)]
    pub async fn begin(&self, draft: SettlementRecord) -> Result<Begin, StoreError> {
        let retention = self.retention(&draft);
        match self
            .store
            .claim(&draft, retention, Schedule::At(now_ms() + STALE_CLAIM_MS))
            .await?
        {
            ClaimOutcome::Claimed(r) => Ok(Begin::Claimed(r)),
            ClaimOutcome::Existing(existing) => {
                let takeover = existing.state == SettlementState::Claimed
                    && existing.requirements_digest == draft.requirements_digest
                    && (now_ms() - existing.updated_at > STALE_CLAIM_MS
                        || existing
                            .error
                            .as_deref()
                            .is_some_and(|e| e.starts_with(RETRYABLE_MARK)));
                if !takeover {
                    return Ok(Begin::Existing(existing));
                }
                let mut next = draft.clone();
                next.created_at = existing.created_at;
                match self
                    .cas(&existing, next, Schedule::At(now_ms() + STALE_CLAIM_MS))
                    .await?
                {
                    CasOutcome::Applied(r) => Ok(Begin::Claimed(r)),
                    CasOutcome::Conflict(Some(now)) => Ok(Begin::Existing(now)),
                    CasOutcome::Conflict(None) => Err(StoreError::Unavailable(
                        "settlement record vanished during takeover".into(),
                    )),
                }
            }
        }
    }

    /// Verification failed after the claim. Definitive: the record becomes
    /// FAILED and the reservations are released. Retryable: the record stays
    /// CLAIMED, marked so that the next attempt takes it over at once.
    pub async fn abandon(
        &self,
        claimed: &SettlementRecord,
        retryable: bool,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut next = claimed.clone();
        next.updated_at = now_ms();
        if retryable {
            next.error = Some(format!("{RETRYABLE_MARK}{reason}"));
            self.cas(claimed, next, Schedule::At(now_ms() + STALE_CLAIM_MS))
                .await?;
        } else {
            next.state = SettlementState::Failed;
            next.error = Some(reason.to_owned());
            self.cas(claimed, next, Schedule::Done).await?;
            self.store.release(&claimed.inputs, &claimed.tx_id).await?;
        }
        Ok(())
    }

    /// CLAIMED -> SUBMITTING -> submit -> SUBMITTED (or FAILED, or stays SUBMITTING).
    /// Runs in its own task so a dropped request cannot cut a transition in half.
    #[tracing::instrument(level = "debug", name = "settle.submit_and_wait", skip_all)]
    pub async fn submit_and_wait(
        self: &Arc<Self>,
        claimed: SettlementRecord,
        tx_cbor: Arc<Vec<u8>>,
    ) -> SettleAnswer {
        let this = self.clone();
        // The task keeps the request's span, so its log lines carry the reqId.
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move { this.submit_inner(claimed, tx_cbor).await },
            span,
        ));
        match task.await {
            Ok(a) => a,
            Err(e) => SettleAnswer::Unavailable {
                reason: "settlement_internal_error",
                message: format!("settlement task failed: {e}"),
            },
        }
    }

    #[tracing::instrument(level = "debug", name = "settle.submit", skip_all)]
    async fn submit_inner(
        self: Arc<Self>,
        claimed: SettlementRecord,
        tx_cbor: Arc<Vec<u8>>,
    ) -> SettleAnswer {
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.settings.settlement.confirmation_timeout_seconds);
        if self.is_paused() {
            let _ = self.abandon(&claimed, true, "settlement paused").await;
            return SettleAnswer::Paused;
        }
        let mut submitting = claimed.clone();
        submitting.state = SettlementState::Submitting;
        submitting.updated_at = now_ms();
        submitting.submissions = claimed.submissions.saturating_add(1);
        // The reconciler looks at it soon in case this task dies mid-way.
        let submitting = match self
            .cas(&claimed, submitting, Schedule::At(now_ms() + 10_000))
            .await
        {
            Ok(CasOutcome::Applied(r)) => r,
            Ok(CasOutcome::Conflict(Some(now))) => {
                return self.resume(now, &claimed.requirements_digest).await;
            }
            Ok(CasOutcome::Conflict(None)) => {
                return SettleAnswer::Unavailable {
                    reason: "settlement_state_conflict",
                    message: "settlement record vanished".into(),
                };
            }
            Err(e) => return unavailable(e),
        };

        // The provider records its own chain_request_duration_seconds{op="submit"}.
        match self.chain.submit(&tx_cbor).await {
            SubmitOutcome::Accepted => {
                self.chain.invalidate(&submitting.inputs);
                let mut next = submitting.clone();
                next.state = SettlementState::Submitted;
                next.submitted_at = Some(now_ms());
                next.updated_at = now_ms();
                let rec = match self
                    .cas(
                        &submitting,
                        next,
                        Schedule::At(now_ms() + self.poll().as_millis() as i64 * 4),
                    )
                    .await
                {
                    Ok(CasOutcome::Applied(r)) => r,
                    Ok(CasOutcome::Conflict(Some(now))) => now,
                    Ok(CasOutcome::Conflict(None)) | Err(_) => {
                        // Broadcast happened; the reconciler will find the record SUBMITTING and resolve it.
                        return SettleAnswer::Pending { record: submitting };
                    }
                };
                self.observe_until(rec, deadline).await
            }
            SubmitOutcome::Rejected(reason) => {
                tracing::warn!(tx = %submitting.tx_id, reason = %reason, "node rejected the transaction");
                let mut next = submitting.clone();
                next.state = SettlementState::Failed;
                next.error = Some(reason.clone());
                next.updated_at = now_ms();
                let rec = match self.cas(&submitting, next, Schedule::Done).await {
                    Ok(CasOutcome::Applied(r)) => r,
                    Ok(CasOutcome::Conflict(Some(now))) => {
                        return self.resume(now, &submitting.requirements_digest).await;
                    }
                    _ => submitting.clone(),
                };
                let _ = self.store.release(&rec.inputs, &rec.tx_id).await;
                metrics::counter!("x402_settle_total", "result" => "failed").increment(1);
                SettleAnswer::Failed {
                    record: rec,
                    reason: "exact_cardano_settlement_failed",
                    message: reason,
                }
            }
            SubmitOutcome::Unknown(why) => {
                // Never reported as failed: the transaction may be on its way.
                tracing::warn!(tx = %submitting.tx_id, reason = %why, "submission outcome unknown; leaving SUBMITTING for the reconciler");
                self.observe_until(submitting, deadline).await
            }
        }
    }

    /// Answer a settle for a transaction the journal already knows.
    #[tracing::instrument(level = "debug", name = "settle.resume", skip_all)]
    pub async fn resume(&self, rec: SettlementRecord, requirements_digest: &str) -> SettleAnswer {
        if rec.requirements_digest != requirements_digest {
            metrics::counter!("x402_settle_total", "result" => "duplicate").increment(1);
            return SettleAnswer::Duplicate { tx_id: rec.tx_id };
        }
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.settings.settlement.confirmation_timeout_seconds);
        match rec.state {
            SettlementState::Failed => {
                let message = rec
                    .error
                    .clone()
                    .unwrap_or_else(|| "settlement failed".into());
                SettleAnswer::Failed {
                    record: rec,
                    reason: "exact_cardano_settlement_failed",
                    message,
                }
            }
            SettlementState::Expired => {
                let message = rec.error.clone().unwrap_or_else(|| {
                    "the transaction's validity window passed before it was confirmed".into()
                });
                SettleAnswer::Failed {
                    record: rec,
                    reason: "exact_cardano_settlement_failed",
                    message,
                }
            }
            SettlementState::Claimed => SettleAnswer::Pending { record: rec },
            _ => self.observe_until(rec, deadline).await,
        }
    }

    /// Confirmations the record's policy asks for, and whether `evidence` meets it.
    fn meets(required: i64, evidence: &Evidence) -> Option<(&'static str, u64)> {
        match evidence {
            Evidence::Mempool if required < 0 => Some(("mempool", 0)),
            Evidence::Included { depth, .. } if required < 0 || *depth >= required as u64 => {
                Some(("confirmed", *depth))
            }
            _ => None,
        }
    }

    /// Follow the chain until the policy is met or the deadline passes.
    #[tracing::instrument(level = "debug", name = "settle.confirmations", skip_all)]
    async fn observe_until(
        &self,
        mut rec: SettlementRecord,
        deadline: tokio::time::Instant,
    ) -> SettleAnswer {
        let mut rec_ok = true;
        loop {
            match self.chain.evidence(&rec.tx_id).await {
                Ok(ev) => {
                    if let Some(next) = self.apply_evidence(&rec, &ev).await {
                        rec = next;
                    }
                    if let Some((status, confirmations)) =
                        Self::meets(rec.required_confirmations, &ev)
                    {
                        metrics::counter!("x402_settle_total", "result" => "success").increment(1);
                        return SettleAnswer::Settled {
                            record: rec,
                            status,
                            confirmations,
                        };
                    }
                    if rec.state == SettlementState::Failed || rec.state == SettlementState::Expired
                    {
                        let message = rec.error.clone().unwrap_or_default();
                        return SettleAnswer::Failed {
                            record: rec,
                            reason: "exact_cardano_settlement_failed",
                            message,
                        };
                    }
                }
                Err(e) => {
                    if rec_ok {
                        tracing::warn!(tx = %rec.tx_id, error = %e, "evidence lookup failed; will retry");
                    }
                    rec_ok = false;
                }
            }
            if tokio::time::Instant::now() + self.poll() > deadline {
                break;
            }
            tokio::time::sleep(self.poll()).await;
        }
        // The wait ran out: SUBMITTED -> PENDING, handed to the reconciler.
        if rec.state == SettlementState::Submitted {
            let mut next = rec.clone();
            next.state = SettlementState::Pending;
            next.updated_at = now_ms();
            if let Ok(CasOutcome::Applied(r)) = self.cas(&rec, next, Schedule::At(now_ms())).await {
                rec = r;
            }
        }
        metrics::counter!("x402_settle_total", "result" => "pending").increment(1);
        SettleAnswer::Pending { record: rec }
    }

    /// Move the record as the evidence says; returns the new record if it changed.
    async fn apply_evidence(
        &self,
        rec: &SettlementRecord,
        ev: &Evidence,
    ) -> Option<SettlementRecord> {
        let now = now_ms();
        let stable = self.settings.settlement.stability_depth;
        let required = rec.required_confirmations;
        let mut next = rec.clone();
        next.updated_at = now;
        let schedule;
        match (rec.state, ev) {
            (SettlementState::Submitting, Evidence::Mempool | Evidence::Included { .. }) => {
                next.state = SettlementState::Submitted;
                next.submitted_at = next.submitted_at.or(Some(now));
                schedule = Schedule::At(now + 1000);
            }
            (
                SettlementState::Submitted | SettlementState::Pending,
                Evidence::Included {
                    depth,
                    height,
                    block,
                    ..
                },
            ) if required < 0 || *depth >= required as u64 => {
                next.state = SettlementState::Confirmed;
                next.confirmed_at = Some(now);
                next.confirmations = Some(*depth);
                next.block_height = Some(*height);
                next.block_hash = Some(hex::encode(block));
                next.error = None;
                schedule = if *depth >= stable {
                    Schedule::Done
                } else {
                    Schedule::At(now + 2000)
                };
            }
            (
                SettlementState::Confirmed,
                Evidence::Included {
                    depth,
                    height,
                    block,
                    ..
                },
            ) => {
                if rec.confirmations == Some(*depth) && rec.block_height == Some(*height) {
                    return None;
                }
                next.confirmations = Some(*depth);
                next.block_height = Some(*height);
                next.block_hash = Some(hex::encode(block));
                schedule = if *depth >= stable {
                    Schedule::Done
                } else {
                    Schedule::At(now + 2000)
                };
            }
            (SettlementState::Confirmed, Evidence::Mempool | Evidence::NotSeen) => {
                tracing::warn!(tx = %rec.tx_id, "rollback: confirmed transaction no longer in the chain; back to SUBMITTED");
                metrics::counter!("x402_rollbacks_total").increment(1);
                next.state = SettlementState::Submitted;
                next.confirmed_at = None;
                next.confirmations = None;
                next.block_hash = None;
                next.block_height = None;
                schedule = Schedule::At(now + 1000);
            }
            (
                SettlementState::Submitting | SettlementState::Submitted | SettlementState::Pending,
                Evidence::NotSeen,
            ) if now > rec.expires_at => {
                next.state = SettlementState::Expired;
                next.error = Some(
                    "the transaction's validity window passed and it never appeared on chain"
                        .into(),
                );
                schedule = Schedule::Done;
            }
            (
                SettlementState::Submitted | SettlementState::Pending,
                Evidence::Included { depth, .. },
            ) => {
                if rec.confirmations == Some(*depth) {
                    return None;
                }
                next.confirmations = Some(*depth);
                schedule = Schedule::Keep;
            }
            _ => return None,
        }
        match self.cas(rec, next, schedule).await {
            Ok(CasOutcome::Applied(r)) => {
                if matches!(
                    r.state,
                    SettlementState::Confirmed | SettlementState::Expired
                ) && r.state != rec.state
                {
                    let _ = self.store.release(&r.inputs, &r.tx_id).await;
                }
                Some(r)
            }
            Ok(CasOutcome::Conflict(Some(now))) => Some(now),
            _ => None,
        }
    }

    /// The record brought up to date with live chain evidence (for /status).
    /// Moves the journal the way the reconciler would; on a lookup error the
    /// stored record is returned as it is.
    pub async fn refresh(&self, rec: SettlementRecord) -> SettlementRecord {
        if matches!(
            rec.state,
            SettlementState::Claimed | SettlementState::Failed | SettlementState::Expired
        ) {
            return rec;
        }
        match self.chain.evidence(&rec.tx_id).await {
            Ok(ev) => self.apply_evidence(&rec, &ev).await.unwrap_or(rec),
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
                metrics::gauge!("x402_settlements", "state" => state.as_str()).set(count as f64);
            }
        }
        Ok(n)
    }

    #[tracing::instrument(level = "debug", name = "settle.reconcile_record", skip_all)]
    async fn reconcile_record(&self, rec: SettlementRecord) {
        let now = now_ms();
        match rec.state {
            SettlementState::Claimed => {
                if now - rec.updated_at > STALE_CLAIM_MS {
                    // Never broadcast; whoever claimed it is gone. Mark it free for takeover.
                    let mut next = rec.clone();
                    next.updated_at = now;
                    next.error = Some(format!("{RETRYABLE_MARK}claim abandoned"));
                    let _ = self.cas(&rec, next, Schedule::Done).await;
                } else {
                    let _ = self
                        .cas(
                            &rec,
                            rec.clone(),
                            Schedule::At(rec.updated_at + STALE_CLAIM_MS + 1),
                        )
                        .await;
                }
            }
            SettlementState::Failed | SettlementState::Expired => {
                let _ = self.cas(&rec, rec.clone(), Schedule::Done).await;
            }
            _ => match self.chain.evidence(&rec.tx_id).await {
                Ok(ev) => {
                    let changed = self.apply_evidence(&rec, &ev).await;
                    let moved = changed.is_some();
                    let current = changed.unwrap_or(rec);
                    let open = matches!(
                        current.state,
                        SettlementState::Submitting
                            | SettlementState::Submitted
                            | SettlementState::Pending
                    );
                    if open {
                        // Keep the inputs reserved while the transaction may still land.
                        let ttl = Duration::from_secs(self.settings.chain.reservation.ttl_seconds);
                        let _ = self
                            .store
                            .reserve(&current.inputs, &current.tx_id, ttl)
                            .await;
                    }
                    if !moved && (open || current.state == SettlementState::Confirmed) {
                        let _ = self
                            .cas(&current, current.clone(), Schedule::At(now + 1000))
                            .await;
                    }
                    tracing::debug!(tx = %current.tx_id, state = current.state.as_str(), "reconciled");
                }
                Err(e) => {
                    tracing::warn!(tx = %rec.tx_id, error = %e, "reconciler: evidence lookup failed; retrying later");
                    let _ = self.cas(&rec, rec.clone(), Schedule::At(now + 5000)).await;
                }
            },
        }
        metrics::counter!("x402_reconciler_records_total").increment(1);
    }

    /// The background reconciler: one lease holder among replicas runs passes.
    pub fn spawn_reconciler(
        self: &Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let interval = Duration::from_millis(this.settings.settlement.reconcile_interval_ms);
            let lease_ttl = interval.saturating_mul(5).max(Duration::from_secs(2));
            let mut holding = false;
            loop {
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
                        metrics::gauge!("x402_reconciler_leader").set(1.0);
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
                        metrics::gauge!("x402_reconciler_leader").set(0.0);
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

fn unavailable(e: StoreError) -> SettleAnswer {
    SettleAnswer::Unavailable {
        reason: "exact_cardano_facilitator_store_unavailable",
        message: e.to_string(),
    }
}
