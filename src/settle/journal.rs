//! The settlement journal as a pure state machine.
//!
//! [`step`] is the only place that decides how a journal record moves: it is
//! a function of (record, event, now, policy) with no I/O, used alike by the
//! request path ([`super::Settlement`]) and by the reconciler. The caller
//! writes the decided record with a compare-and-set on the version it read
//! (the store renews the version token on every write), so two writers that
//! read the same record can never both succeed.
//!
//! ```text
//! CLAIMED ──Broadcast──> SUBMITTING ──SubmitAccepted──> SUBMITTED ──Evidence(depth ≥ n)──> CONFIRMED
//!    │ (stale: Claim takes over;           │  │                 │  ──WaitExpired──> PENDING
//!    │  Tick forgets it: nothing           │  │                 └──Evidence(NotSeen) past expiry──> EXPIRED
//!    │  was broadcast)                     │  └─SubmitRejected(definitive, NotSeen)──> REJECTED (tombstone)
//!    │                                     └─Evidence(NotSeen), outcome unknown: re-broadcast the same bytes
//! CONFIRMED ──Evidence(NotSeen | Mempool)──> SUBMITTED (rollback)
//! any state where the policy is met ──Deliver──> the same state with `delivered_at` set (once)
//! ```

use crate::chain::Evidence;
use crate::store::{Schedule, SettlementRecord, SettlementState};

/// The knobs the transitions depend on (from `settlement.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// A CLAIMED record this old was abandoned by its claimant (nothing was
    /// broadcast: SUBMITTING is written before any network I/O).
    pub stale_claim_ms: i64,
    /// Depth after which a confirmed record is no longer watched for rollback.
    pub stability_depth: u64,
    /// How soon after a submit with an unknown outcome (or a non-definitive
    /// rejection) the same bytes may be handed to the network again.
    pub rebroadcast_after_ms: i64,
    /// Most hand-overs of one transaction (the first submit included).
    pub max_submissions: u32,
    /// How often an open record is looked at again.
    pub poll_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            stale_claim_ms: 30_000,
            stability_depth: 20,
            rebroadcast_after_ms: 20_000,
            max_submissions: 4,
            poll_ms: 1_000,
        }
    }
}

/// Something that happened to a settlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A new claim for the same transaction found this record.
    Claim { draft: &'a SettlementRecord },
    /// This caller is about to hand the bytes to the network for the first time.
    Broadcast,
    /// The node accepted the bytes.
    SubmitAccepted,
    /// The node refused the bytes. `evidence` is what the chain said about
    /// this very transaction right after (None: that lookup failed).
    SubmitRejected {
        reason: &'a str,
        definitive: bool,
        evidence: Option<&'a Evidence>,
    },
    /// Nobody knows whether the node got the bytes (timeout, transport error).
    SubmitUnknown { why: &'a str },
    /// Chain evidence for the transaction, seen by a request.
    Evidence(&'a Evidence),
    /// Chain evidence seen by the reconciler: the same as [`Event::Evidence`],
    /// and it may also hand the bytes to the network again when the submit
    /// outcome stayed unknown (requests never re-broadcast).
    Reconcile(&'a Evidence),
    /// A request's bounded wait ran out before the policy was met.
    WaitExpired,
    /// The reconciler looks at a record without evidence (CLAIMED, final ones).
    Tick,
    /// Hand the one success for this payment to a caller.
    Deliver { key: Option<&'a str> },
}

/// What to do with the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Compare-and-set the record to `next`, then carry out `effect`.
    Write {
        next: Box<SettlementRecord>,
        schedule: Schedule,
        effect: Effect,
    },
    /// Delete the record: a claim abandoned before anything was broadcast.
    Forget,
    /// Nothing changes.
    Keep,
    /// The event is not allowed now.
    Refuse(Refusal),
}

/// Side effects that go with a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Hand the stored bytes to the network (again).
    Broadcast,
    /// The transaction can no longer spend its inputs: free their reservations.
    ReleaseInputs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The success was already handed to a caller.
    AlreadyDelivered,
    /// The confirmation policy is not met (yet).
    PolicyNotMet,
    /// The record is final (rejected, expired, failed).
    Final,
    /// The record is held by a live claimant.
    Claimed,
    /// The event does not apply to this state.
    NotApplicable,
}

/// Where a record stands, for answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The policy is met: `confirmations` is the strongest evidence held
    /// (-1 = accepted by our own submit / seen in the mempool).
    Met { confirmations: i64 },
    /// Broadcast (maybe), not met yet. `confirmations` when seen at all.
    Waiting { confirmations: Option<i64> },
    /// Nothing broadcast yet.
    Unbroadcast,
    Rejected,
    Expired,
    Failed,
}

/// The standing of `rec` under its own confirmation policy.
pub fn standing(rec: &SettlementRecord) -> Standing {
    let seen = seen_confirmations(rec);
    match rec.state {
        SettlementState::Claimed => Standing::Unbroadcast,
        SettlementState::Rejected => Standing::Rejected,
        SettlementState::Expired => Standing::Expired,
        SettlementState::Failed => Standing::Failed,
        SettlementState::Submitting => Standing::Waiting { confirmations: None },
        SettlementState::Submitted | SettlementState::Pending | SettlementState::Confirmed => {
            match seen {
                Some(c) if c >= rec.required_confirmations => Standing::Met { confirmations: c },
                _ => Standing::Waiting {
                    confirmations: seen,
                },
            }
        }
    }
}

/// The strongest verified evidence the record holds: depth when in a block,
/// -1 when only the node's acceptance (or the mempool) vouches for it.
fn seen_confirmations(rec: &SettlementRecord) -> Option<i64> {
    match rec.state {
        SettlementState::Confirmed => Some(rec.confirmations.unwrap_or(0) as i64),
        SettlementState::Submitted | SettlementState::Pending => {
            Some(rec.confirmations.map_or(-1, |c| c as i64))
        }
        _ => None,
    }
}

fn write(next: SettlementRecord, schedule: Schedule, effect: Effect) -> Decision {
    Decision::Write {
        next: Box::new(next),
        schedule,
        effect,
    }
}

fn in_block(rec: &mut SettlementRecord, depth: u64, height: u64, block: &[u8; 32]) {
    rec.confirmations = Some(depth);
    rec.block_height = Some(height);
    rec.block_hash = Some(hex::encode(block));
}

/// Apply one event. Pure: the same inputs always give the same decision.
pub fn step(rec: &SettlementRecord, event: Event<'_>, now: i64, policy: &Policy) -> Decision {
    use SettlementState as S;
    let mut next = rec.clone();
    next.updated_at = now;
    let soon = Schedule::At(now + policy.poll_ms);
    match (rec.state, event) {
        // A claim older than the stale limit was abandoned mid-verification.
        (S::Claimed, Event::Claim { draft }) => {
            if now - rec.updated_at > policy.stale_claim_ms {
                let mut taken = draft.clone();
                taken.created_at = rec.created_at;
                taken.updated_at = now;
                write(taken, Schedule::At(now + policy.stale_claim_ms), Effect::None)
            } else {
                Decision::Refuse(Refusal::Claimed)
            }
        }
        (_, Event::Claim { .. }) => Decision::Keep,
        (S::Claimed, Event::Tick) if now - rec.updated_at > policy.stale_claim_ms => {
            Decision::Forget
        }
        (S::Claimed, Event::Tick) => Decision::Keep,

        (S::Claimed, Event::Broadcast) => {
            // The intent is journalled before any network I/O; the hand-over
            // time is written when the submit returns. A caller that dies in
            // between leaves a SUBMITTING record the reconciler re-broadcasts.
            next.state = S::Submitting;
            next.submissions = rec.submissions.saturating_add(1);
            next.last_submit_at = None;
            write(next, soon, Effect::None)
        }
        (_, Event::Broadcast) => Decision::Refuse(Refusal::NotApplicable),

        (S::Submitting, Event::SubmitAccepted) => {
            next.state = S::Submitted;
            next.submitted_at = Some(now);
            next.last_submit_at = Some(now);
            next.error = None;
            write(next, soon, Effect::None)
        }
        (_, Event::SubmitAccepted) => Decision::Keep,

        (
            S::Submitting,
            Event::SubmitRejected {
                reason,
                definitive,
                evidence,
            },
        ) => match evidence {
            // The chain has it: whoever broadcast it, it is not a failure.
            Some(ev @ (Evidence::Mempool | Evidence::Included { .. })) => {
                step(rec, Event::Evidence(ev), now, policy)
            }
            Some(Evidence::NotSeen) if definitive => {
                next.state = S::Rejected;
                next.last_submit_at = Some(now);
                next.error = Some(reason.to_owned());
                write(next, Schedule::Done, Effect::ReleaseInputs)
            }
            // Not definitive, or the chain could not be asked: it may have
            // landed (or may still): the chain decides, by expiry at worst.
            _ => {
                next.last_submit_at = Some(now);
                next.error = Some(reason.to_owned());
                write(next, soon, Effect::None)
            }
        },
        (S::Submitting, Event::SubmitUnknown { why }) => {
            next.last_submit_at = Some(now);
            next.error = Some(why.to_owned());
            write(next, soon, Effect::None)
        }
        (_, Event::SubmitRejected { .. } | Event::SubmitUnknown { .. }) => Decision::Keep,

        // The reconciler's look: a submit whose outcome stayed unknown is
        // handed over again (same bytes, same id) while it can still land.
        (S::Submitting, Event::Reconcile(Evidence::NotSeen)) if now <= rec.expires_at => {
            let last = rec.last_submit_at.unwrap_or(rec.updated_at);
            if rec.submissions < policy.max_submissions
                && now - last >= policy.rebroadcast_after_ms
            {
                next.submissions = rec.submissions.saturating_add(1);
                next.last_submit_at = Some(now);
                write(next, soon, Effect::Broadcast)
            } else {
                Decision::Keep
            }
        }
        (_, Event::Reconcile(ev)) => step(rec, Event::Evidence(ev), now, policy),

        // Evidence.
        (S::Claimed, Event::Evidence(_)) => Decision::Keep,
        (S::Rejected | S::Expired | S::Failed, Event::Evidence(_) | Event::Tick) => {
            // Final: only take it out of the reconciler's index.
            write(next, Schedule::Done, Effect::None)
        }
        (S::Submitting | S::Submitted | S::Pending, Event::Evidence(Evidence::Mempool)) => {
            if rec.state == S::Submitting {
                next.state = S::Submitted;
                next.submitted_at = rec.submitted_at.or(Some(now));
                next.error = None;
                write(next, soon, Effect::None)
            } else {
                Decision::Keep
            }
        }
        (
            S::Submitting | S::Submitted | S::Pending | S::Confirmed,
            Event::Evidence(Evidence::Included {
                depth,
                height,
                block,
                ..
            }),
        ) => {
            let depth = *depth;
            next.submitted_at = rec.submitted_at.or(Some(now));
            next.error = None;
            in_block(&mut next, depth, *height, block);
            let met = depth as i64 >= rec.required_confirmations;
            if met {
                if rec.state != S::Confirmed {
                    next.state = S::Confirmed;
                    next.confirmed_at = Some(now);
                }
            } else if rec.state == S::Submitting {
                next.state = S::Submitted;
            }
            if next == *rec_with_time(rec, now) {
                return Decision::Keep;
            }
            let schedule = if met && depth >= policy.stability_depth {
                Schedule::Done
            } else {
                soon
            };
            // Once in a block the inputs are spent on chain: holds are moot.
            let effect = if rec.state != S::Confirmed && next.state == S::Confirmed {
                Effect::ReleaseInputs
            } else {
                Effect::None
            };
            write(next, schedule, effect)
        }
        (S::Confirmed, Event::Evidence(Evidence::Mempool | Evidence::NotSeen)) => {
            // Rollback: back to waiting. A success already delivered stays
            // delivered (it was true when it was said); the reconciler logs it.
            next.state = S::Submitted;
            next.confirmed_at = None;
            next.confirmations = None;
            next.block_hash = None;
            next.block_height = None;
            write(next, soon, Effect::None)
        }
        (S::Submitting | S::Submitted | S::Pending, Event::Evidence(Evidence::NotSeen)) => {
            if now > rec.expires_at {
                next.state = S::Expired;
                next.error = Some(
                    "the transaction's validity window (plus grace) passed and it never appeared on chain"
                        .into(),
                );
                return write(next, Schedule::Done, Effect::ReleaseInputs);
            }
            Decision::Keep
        }
        (S::Submitting | S::Submitted | S::Pending | S::Confirmed, Event::Tick) => Decision::Keep,

        (S::Submitted, Event::WaitExpired) => {
            next.state = S::Pending;
            write(next, Schedule::At(now), Effect::None)
        }
        (_, Event::WaitExpired) => Decision::Keep,

        (_, Event::Deliver { key }) => {
            if rec.delivered_at.is_some() {
                return Decision::Refuse(Refusal::AlreadyDelivered);
            }
            match standing(rec) {
                Standing::Met { .. } => {
                    next.delivered_at = Some(now);
                    next.delivery_key = key.map(str::to_owned);
                    // The record itself is unchanged otherwise: keep its index.
                    write(next, Schedule::Keep, Effect::None)
                }
                Standing::Rejected | Standing::Expired | Standing::Failed => {
                    Decision::Refuse(Refusal::Final)
                }
                _ => Decision::Refuse(Refusal::PolicyNotMet),
            }
        }
    }
}

/// `rec` as it would be if only its timestamp changed (to tell a real change).
fn rec_with_time(rec: &SettlementRecord, now: i64) -> Box<SettlementRecord> {
    let mut r = rec.clone();
    r.updated_at = now;
    r.submitted_at = rec.submitted_at.or(Some(now));
    r.error = None;
    Box::new(r)
}
