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
    Met {
        confirmations: i64,
    },
    /// Broadcast (maybe), not met yet. `confirmations` when seen at all.
    Waiting {
        confirmations: Option<i64>,
    },
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
        SettlementState::Submitting => Standing::Waiting {
            confirmations: None,
        },
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
                write(
                    taken,
                    Schedule::At(now + policy.stale_claim_ms),
                    Effect::None,
                )
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
            if rec.submissions < policy.max_submissions && now - last >= policy.rebroadcast_after_ms
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cardano::TxId;
    use SettlementState as S;

    const NOW: i64 = 1_000_000;

    fn rec(state: SettlementState) -> SettlementRecord {
        SettlementRecord {
            tx_id: TxId([7; 32]),
            state,
            attempt: "v1".into(),
            network: "cardano:preprod".into(),
            payer: "addr_test1payer".into(),
            pay_to: "addr_test1seller".into(),
            asset: "lovelace".into(),
            amount: "1000000".into(),
            requirements_digest: "r".into(),
            required_confirmations: 1,
            inputs: vec![],
            ttl_slot: Some(500),
            created_at: NOW - 10_000,
            updated_at: NOW - 1_000,
            submitted_at: None,
            confirmed_at: None,
            confirmations: None,
            block_hash: None,
            block_height: None,
            error: None,
            submissions: 0,
            expires_at: NOW + 60_000,
            tx_cbor_b64: String::new(),
            delivered_at: None,
            delivery_key: None,
            logical_key: None,
            last_submit_at: None,
        }
    }

    fn block(depth: u64) -> Evidence {
        Evidence::Included {
            depth,
            height: 100,
            slot: 90,
            block: [9; 32],
        }
    }

    /// What a row expects.
    #[derive(Debug)]
    enum Want {
        Write(SettlementState, Effect, &'static str),
        Forget,
        Keep,
        Refuse(Refusal),
    }

    fn check(name: &str, r: &SettlementRecord, ev: Event<'_>, want: Want) {
        let policy = Policy::default();
        let got = step(r, ev, NOW, &policy);
        match (&want, &got) {
            (
                Want::Write(state, effect, sched),
                Decision::Write {
                    next,
                    schedule,
                    effect: e,
                },
            ) => {
                assert_eq!(next.state, *state, "{name}: state");
                assert_eq!(e, effect, "{name}: effect");
                let s = match schedule {
                    Schedule::At(_) => "at",
                    Schedule::Done => "done",
                    Schedule::Keep => "keep",
                };
                assert_eq!(s, *sched, "{name}: schedule");
                assert_eq!(next.updated_at, NOW, "{name}: updated_at");
            }
            (Want::Forget, Decision::Forget) | (Want::Keep, Decision::Keep) => {}
            (Want::Refuse(a), Decision::Refuse(b)) => assert_eq!(a, b, "{name}"),
            _ => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn every_transition_of_the_journal() {
        use Effect::{Broadcast as B, None as N, ReleaseInputs as R};
        let stale = {
            let mut r = rec(S::Claimed);
            r.updated_at = NOW - 31_000;
            r
        };
        let draft = rec(S::Claimed);
        let submitted = |depth: Option<u64>, required: i64| {
            let mut r = rec(S::Submitted);
            r.confirmations = depth;
            r.required_confirmations = required;
            r.submissions = 1;
            r.last_submit_at = Some(NOW - 5_000);
            r
        };
        let confirmed = |depth: u64| {
            let mut r = rec(S::Confirmed);
            r.confirmations = Some(depth);
            r.block_height = Some(100);
            r.block_hash = Some(hex::encode([9; 32]));
            r.submissions = 1;
            r
        };
        let submitting = |last_ago: Option<i64>, submissions: u32| {
            let mut r = rec(S::Submitting);
            r.submissions = submissions;
            r.last_submit_at = last_ago.map(|a| NOW - a);
            r.updated_at = NOW - 30_000;
            r
        };
        let expired_window = |state| {
            let mut r = rec(state);
            r.expires_at = NOW - 1;
            r.submissions = 1;
            r
        };
        let delivered = {
            let mut r = confirmed(3);
            r.delivered_at = Some(NOW - 10);
            r
        };
        let nf = Evidence::NotSeen;
        let mp = Evidence::Mempool;
        let (b0, b1, b3, b25) = (block(0), block(1), block(3), block(25));

        // claim and takeover
        check(
            "live claim is not taken over",
            &rec(S::Claimed),
            Event::Claim { draft: &draft },
            Want::Refuse(Refusal::Claimed),
        );
        check(
            "stale claim is taken over",
            &stale,
            Event::Claim { draft: &draft },
            Want::Write(S::Claimed, N, "at"),
        );
        check(
            "a claim never touches a broadcast record",
            &rec(S::Submitted),
            Event::Claim { draft: &draft },
            Want::Keep,
        );
        check(
            "the reconciler forgets a stale claim",
            &stale,
            Event::Tick,
            Want::Forget,
        );
        check(
            "the reconciler keeps a live claim",
            &rec(S::Claimed),
            Event::Tick,
            Want::Keep,
        );
        // broadcast and submit outcomes
        check(
            "intent before the network",
            &rec(S::Claimed),
            Event::Broadcast,
            Want::Write(S::Submitting, N, "at"),
        );
        check(
            "no second broadcast of a submitted record",
            &rec(S::Submitted),
            Event::Broadcast,
            Want::Refuse(Refusal::NotApplicable),
        );
        check(
            "node accepts",
            &rec(S::Submitting),
            Event::SubmitAccepted,
            Want::Write(S::Submitted, N, "at"),
        );
        check(
            "definitive rejection, chain has nothing: tombstone",
            &rec(S::Submitting),
            Event::SubmitRejected {
                reason: "FeeTooSmallUTxO",
                definitive: true,
                evidence: Some(&nf),
            },
            Want::Write(S::Rejected, R, "done"),
        );
        check(
            "rejection but the chain has it in the mempool: not a failure",
            &rec(S::Submitting),
            Event::SubmitRejected {
                reason: "BadInputsUTxO",
                definitive: false,
                evidence: Some(&mp),
            },
            Want::Write(S::Submitted, N, "at"),
        );
        check(
            "rejection but the chain has it in a block: confirmed",
            &rec(S::Submitting),
            Event::SubmitRejected {
                reason: "BadInputsUTxO",
                definitive: true,
                evidence: Some(&b3),
            },
            Want::Write(S::Confirmed, R, "at"),
        );
        check(
            "rejection, evidence lookup failed: stays submitting",
            &rec(S::Submitting),
            Event::SubmitRejected {
                reason: "FeeTooSmallUTxO",
                definitive: true,
                evidence: None,
            },
            Want::Write(S::Submitting, N, "at"),
        );
        check(
            "non-definitive rejection, unseen: stays submitting",
            &rec(S::Submitting),
            Event::SubmitRejected {
                reason: "BadInputsUTxO",
                definitive: false,
                evidence: Some(&nf),
            },
            Want::Write(S::Submitting, N, "at"),
        );
        check(
            "unknown outcome: stays submitting",
            &rec(S::Submitting),
            Event::SubmitUnknown { why: "timeout" },
            Want::Write(S::Submitting, N, "at"),
        );
        // evidence
        check(
            "mempool after unknown outcome",
            &rec(S::Submitting),
            Event::Evidence(&mp),
            Want::Write(S::Submitted, N, "at"),
        );
        check(
            "mempool while submitted: nothing new",
            &submitted(None, 1),
            Event::Evidence(&mp),
            Want::Keep,
        );
        check(
            "in the tip block, policy 1: not yet",
            &submitted(None, 1),
            Event::Evidence(&b0),
            Want::Write(S::Submitted, N, "at"),
        );
        check(
            "one block on top, policy 1: confirmed",
            &submitted(Some(0), 1),
            Event::Evidence(&b1),
            Want::Write(S::Confirmed, R, "at"),
        );
        check(
            "policy 0: the tip block is enough",
            &submitted(None, 0),
            Event::Evidence(&b0),
            Want::Write(S::Confirmed, R, "at"),
        );
        check(
            "confirmed deeper",
            &confirmed(1),
            Event::Evidence(&b3),
            Want::Write(S::Confirmed, N, "at"),
        );
        check(
            "confirmed at the same depth: nothing",
            &confirmed(3),
            Event::Evidence(&b3),
            Want::Keep,
        );
        check(
            "stable depth: out of the index",
            &confirmed(3),
            Event::Evidence(&b25),
            Want::Write(S::Confirmed, N, "done"),
        );
        check(
            "rollback",
            &confirmed(2),
            Event::Evidence(&nf),
            Want::Write(S::Submitted, N, "at"),
        );
        check(
            "rollback into the mempool",
            &confirmed(2),
            Event::Evidence(&mp),
            Want::Write(S::Submitted, N, "at"),
        );
        check(
            "unseen within the window: wait",
            &submitted(None, 1),
            Event::Evidence(&nf),
            Want::Keep,
        );
        check(
            "unseen past the window: expired",
            &expired_window(S::Submitted),
            Event::Evidence(&nf),
            Want::Write(S::Expired, R, "done"),
        );
        check(
            "pending past the window: expired",
            &expired_window(S::Pending),
            Event::Evidence(&nf),
            Want::Write(S::Expired, R, "done"),
        );
        check(
            "unknown outcome past the window: expired",
            &expired_window(S::Submitting),
            Event::Reconcile(&nf),
            Want::Write(S::Expired, R, "done"),
        );
        check(
            "a claim ignores evidence",
            &rec(S::Claimed),
            Event::Evidence(&b3),
            Want::Keep,
        );
        check(
            "final records leave the index",
            &rec(S::Rejected),
            Event::Evidence(&b3),
            Want::Write(S::Rejected, N, "done"),
        );
        check(
            "final records on tick",
            &rec(S::Expired),
            Event::Tick,
            Want::Write(S::Expired, N, "done"),
        );
        // re-broadcast by the reconciler only
        check(
            "reconciler re-broadcasts an unknown outcome",
            &submitting(Some(25_000), 1),
            Event::Reconcile(&nf),
            Want::Write(S::Submitting, B, "at"),
        );
        check(
            "reconciler re-broadcasts an intent that never reached the network",
            &submitting(None, 1),
            Event::Reconcile(&nf),
            Want::Write(S::Submitting, B, "at"),
        );
        check(
            "not before the delay",
            &submitting(Some(5_000), 1),
            Event::Reconcile(&nf),
            Want::Keep,
        );
        check(
            "not beyond the bound",
            &submitting(Some(25_000), 4),
            Event::Reconcile(&nf),
            Want::Keep,
        );
        check(
            "a request never re-broadcasts",
            &submitting(Some(25_000), 1),
            Event::Evidence(&nf),
            Want::Keep,
        );
        check(
            "reconciler sees it landed",
            &submitting(Some(25_000), 1),
            Event::Reconcile(&b3),
            Want::Write(S::Confirmed, R, "at"),
        );
        // waits
        check(
            "wait ran out",
            &submitted(None, 1),
            Event::WaitExpired,
            Want::Write(S::Pending, N, "at"),
        );
        check(
            "wait ran out when confirmed: nothing",
            &confirmed(2),
            Event::WaitExpired,
            Want::Keep,
        );
        // delivery
        check(
            "deliver when confirmed",
            &confirmed(1),
            Event::Deliver { key: None },
            Want::Write(S::Confirmed, N, "keep"),
        );
        check(
            "deliver twice",
            &delivered,
            Event::Deliver { key: None },
            Want::Refuse(Refusal::AlreadyDelivered),
        );
        check(
            "mempool policy: submit acceptance is enough",
            &submitted(None, -1),
            Event::Deliver { key: None },
            Want::Write(S::Submitted, N, "keep"),
        );
        check(
            "policy 1 not met in the mempool",
            &submitted(None, 1),
            Event::Deliver { key: None },
            Want::Refuse(Refusal::PolicyNotMet),
        );
        check(
            "policy 3 not met at depth 1",
            &submitted(Some(1), 3),
            Event::Deliver { key: None },
            Want::Refuse(Refusal::PolicyNotMet),
        );
        check(
            "nothing to deliver for a claim",
            &rec(S::Claimed),
            Event::Deliver { key: None },
            Want::Refuse(Refusal::PolicyNotMet),
        );
        check(
            "nothing to deliver for a tombstone",
            &rec(S::Rejected),
            Event::Deliver { key: None },
            Want::Refuse(Refusal::Final),
        );
        check(
            "nothing to deliver once expired",
            &rec(S::Expired),
            Event::Deliver { key: None },
            Want::Refuse(Refusal::Final),
        );
    }

    #[test]
    fn delivery_records_who_received_it_and_standing_reports_the_strongest_evidence() {
        let mut r = rec(S::Confirmed);
        r.confirmations = Some(4);
        assert_eq!(standing(&r), Standing::Met { confirmations: 4 });
        let Decision::Write { next, .. } = step(
            &r,
            Event::Deliver { key: Some("k") },
            NOW,
            &Policy::default(),
        ) else {
            panic!("deliver should write");
        };
        assert_eq!(next.delivered_at, Some(NOW));
        assert_eq!(next.delivery_key.as_deref(), Some("k"));
        let mut m = rec(S::Submitted);
        m.required_confirmations = -1;
        assert_eq!(standing(&m), Standing::Met { confirmations: -1 });
        m.required_confirmations = 0;
        assert_eq!(
            standing(&m),
            Standing::Waiting {
                confirmations: Some(-1)
            }
        );
        assert_eq!(
            standing(&rec(S::Submitting)),
            Standing::Waiting {
                confirmations: None
            }
        );
        assert_eq!(standing(&rec(S::Claimed)), Standing::Unbroadcast);
    }

    #[test]
    fn only_structural_node_verdicts_are_definitive() {
        use crate::settle::is_definitive_rejection as d;
        assert!(d("FeeTooSmallUTxO"));
        assert!(d("OutsideValidityIntervalUTxO: ..."));
        assert!(d("MissingVKeyWitnessesUTXOW"));
        assert!(!d("BadInputsUTxO"));
        assert!(!d("ValueNotConservedUTxO, BadInputsUTxO"));
        assert!(!d("something new"));
        assert!(!d(""));
    }
}
