//! The shared, atomic state of the facilitator: UTxO reservations, the
//! settlement journal, its index of records awaiting chain evidence, the
//! reconciler lease and payment-identifier idempotency records.
//!
//! Two implementations pass one test suite: [`memory::MemoryStore`] (the
//! embedded default, one process) and [`redis::RedisStore`] (any number of
//! replicas; every multi-key operation is one Lua script, so Redis is the
//! single arbiter). Both are fail-closed: an error is returned, never a guess.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cardano::{TxId, UtxoRef};
use crate::chain::DependencyHealth;

pub mod memory;
pub mod redis;
pub mod traced;

/// Outcome of an all-or-nothing reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every input is now held by the owner (new, or refreshed).
    Reserved,
    /// Nothing was written: `input` is held by another transaction.
    Conflict { input: UtxoRef, holder: TxId },
}

/// States of the settlement journal (DESIGN.md section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SettlementState {
    Claimed,
    Submitting,
    Submitted,
    Pending,
    Confirmed,
    Failed,
    Expired,
    /// Tombstone: the node definitively rejected a transaction that nothing
    /// else broadcast (it can never land as it is).
    Rejected,
}

impl SettlementState {
    pub const ALL: [SettlementState; 8] = [
        SettlementState::Claimed,
        SettlementState::Submitting,
        SettlementState::Submitted,
        SettlementState::Pending,
        SettlementState::Confirmed,
        SettlementState::Failed,
        SettlementState::Expired,
        SettlementState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettlementState::Claimed => "claimed",
            SettlementState::Submitting => "submitting",
            SettlementState::Submitted => "submitted",
            SettlementState::Pending => "pending",
            SettlementState::Confirmed => "confirmed",
            SettlementState::Failed => "failed",
            SettlementState::Expired => "expired",
            SettlementState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No further transition: the transaction can no longer land (or the
    /// record is a legacy failure). CONFIRMED is not final (rollbacks).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SettlementState::Failed | SettlementState::Expired | SettlementState::Rejected
        )
    }

    /// Broadcast (or possibly broadcast) and not yet final: the chain decides.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            SettlementState::Submitting | SettlementState::Submitted | SettlementState::Pending
        )
    }
}

/// One journal record. Every field the audit trail needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementRecord {
    pub tx_id: TxId,
    pub state: SettlementState,
    /// Fencing token: renewed on every journal write, so a compare-and-set
    /// applies only to the exact version its writer read (two writers that
    /// read the same version cannot both succeed).
    pub attempt: String,
    /// CAIP-2 network.
    pub network: String,
    pub payer: String,
    pub pay_to: String,
    pub asset: String,
    pub amount: String,
    /// Hex digest of the payment requirements this settlement was made under.
    pub requirements_digest: String,
    /// Confirmations the requirements asked for (-1 mempool, 0 in a block, n on top).
    pub required_confirmations: i64,
    pub inputs: Vec<UtxoRef>,
    /// Last slot at which the transaction can still land (its ttl), if bounded.
    pub ttl_slot: Option<u64>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub submitted_at: Option<i64>,
    pub confirmed_at: Option<i64>,
    pub confirmations: Option<u64>,
    pub block_hash: Option<String>,
    pub block_height: Option<u64>,
    pub error: Option<String>,
    /// How many times this record's transaction was handed to the network.
    pub submissions: u32,
    /// Unix milliseconds after which an unconfirmed record may be expired.
    pub expires_at: i64,
    /// Base64 of the signed transaction, for audit and recovery (and the
    /// reconciler's re-broadcast of the exact same bytes).
    pub tx_cbor_b64: String,
    /// Unix ms at which the one `success:true` for this payment was handed
    /// to a caller; `None` until then. Set by compare-and-set, exactly once.
    #[serde(default)]
    pub delivered_at: Option<i64>,
    /// Who received the success: the digest binding (tenant, payment
    /// identifier, payload, requirements) when the caller sent a
    /// `payment-identifier`, so that caller's idempotent retry sees it again.
    #[serde(default)]
    pub delivery_key: Option<String>,
    /// The logical replay key bound to this transaction in the same atomic
    /// claim (the Masumi `termsDigest`, hex), if the method has one.
    #[serde(default)]
    pub logical_key: Option<String>,
    /// Unix ms of the last hand-over of the bytes to the network.
    #[serde(default)]
    pub last_submit_at: Option<i64>,
}

/// Result of an atomic claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The record did not exist and now does, as given; its inputs are
    /// reserved for it and its logical key (if any) is bound to it.
    Claimed(SettlementRecord),
    /// A record already exists; nothing was written.
    Existing(SettlementRecord),
    /// Nothing written: `input` is reserved by another transaction.
    InputHeld { input: UtxoRef, holder: TxId },
    /// Nothing written: the record's logical key is bound to another transaction.
    KeyBound { holder: TxId },
}

/// Result of a compare-and-set transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    Applied(SettlementRecord),
    /// Current state or attempt did not match; the record as it is now (None if gone).
    Conflict(Option<SettlementRecord>),
}

/// When a record should next be looked at by the reconciler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Put (or move) the record in the pending index, due at this unix-ms time.
    At(i64),
    /// Take it out of the index.
    Done,
    /// Leave the index as it is.
    Keep,
}

/// A page of journal records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<SettlementRecord>,
    /// Opaque cursor for the next page; None at the end.
    pub next_cursor: Option<String>,
}

/// Answer of the payment-identifier idempotency check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyOutcome {
    /// First use of this id: the caller proceeds and later stores the answer.
    New,
    /// Same id, same payload, answer not stored yet (a concurrent request is working on it).
    InProgress,
    /// Same id, same payload: the stored answer (JSON text).
    Stored(String),
    /// Same id, different payload.
    Mismatch,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store data corrupt: {0}")]
    Corrupt(String),
}

/// The atomic shared state. Every method is one atomic step.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reserve every input for `owner` for `ttl`, all or nothing. Inputs already
    /// held by `owner` are refreshed.
    async fn reserve(
        &self,
        inputs: &[UtxoRef],
        owner: &TxId,
        ttl: Duration,
    ) -> Result<ReserveOutcome, StoreError>;

    /// Release the inputs held by `owner` (those held by someone else are left alone).
    async fn release(&self, inputs: &[UtxoRef], owner: &TxId) -> Result<(), StoreError>;

    /// Who holds this input now.
    async fn holder(&self, input: &UtxoRef) -> Result<Option<TxId>, StoreError>;

    /// Number of inputs currently reserved.
    async fn reservations_active(&self) -> Result<u64, StoreError>;

    /// In one atomic step: create the journal record if absent (state
    /// CLAIMED expected), reserve all its `inputs` for `reservation` (all or
    /// nothing) and bind its `logical_key`, if any, to its transaction. When
    /// any of the three is taken, nothing is written.
    async fn claim(
        &self,
        record: &SettlementRecord,
        reservation: Duration,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Undo a claim whose verification failed before anything was broadcast:
    /// iff the record is CLAIMED with this `attempt`, delete it, its index
    /// entries, its reservations and its logical-key binding. True when done.
    async fn release_claim(&self, tx_id: &TxId, attempt: &str) -> Result<bool, StoreError>;

    /// A shared boolean switch (e.g. `settlement-paused`), the same for every replica.
    async fn set_flag(&self, name: &str, value: bool) -> Result<(), StoreError>;

    async fn flag(&self, name: &str) -> Result<bool, StoreError>;

    /// Which transaction a logical key (Masumi terms digest) is bound to.
    async fn logical_key_holder(&self, key: &str) -> Result<Option<TxId>, StoreError>;

    /// Replace the record with `next` iff its current state is `from` and its
    /// attempt is `next.attempt`'s predecessor `expected_attempt`; update the index.
    /// The retention restarts from now. An `Err(Unavailable)` from `claim` or
    /// `transition` means the outcome is unknown (the write may have landed).
    async fn transition(
        &self,
        expected_state: SettlementState,
        expected_attempt: &str,
        next: &SettlementRecord,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<CasOutcome, StoreError>;

    async fn get(&self, tx_id: &TxId) -> Result<Option<SettlementRecord>, StoreError>;

    /// Records by state (all states when None), newest first, `limit` per page.
    /// Order is `(updated_at, tx_id)` descending; `limit` is clamped to
    /// `1..=MAX_PAGE`; a malformed cursor is `Err(Corrupt)` (see [`ListCursor`]).
    async fn list(
        &self,
        state: Option<SettlementState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Records whose next check is due at `now_ms`, oldest first.
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<TxId>, StoreError>;

    /// Count of records per state (for metrics).
    async fn count_by_state(&self) -> Result<Vec<(SettlementState, u64)>, StoreError>;

    /// Take or renew a named lease for `holder`; true when `holder` has it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// payment-identifier: begin (or look up) the request with this id and payload digest.
    async fn idempotency_begin(
        &self,
        id: &str,
        payload_digest: &str,
        ttl: Duration,
    ) -> Result<IdempotencyOutcome, StoreError>;

    /// Store the answer for an id begun with the same digest.
    /// If the entry expired meanwhile it is recreated with the answer; an id
    /// now held by a different digest is left untouched.
    async fn idempotency_complete(
        &self,
        id: &str,
        payload_digest: &str,
        answer_json: &str,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Forget an id whose request ended without an answer worth keeping (e.g. a 503).
    /// Only an in-progress entry of this digest is removed; a stored answer stays.
    async fn idempotency_abort(&self, id: &str, payload_digest: &str) -> Result<(), StoreError>;

    /// Round-trip probe for /health.
    async fn health(&self) -> DependencyHealth;

    /// Which backend this is (`memory` or `redis`).
    fn backend(&self) -> &'static str;

    /// Close connections at shutdown.
    async fn close(&self) {}
}

pub type DynStore = Arc<dyn Store>;

/// Largest page [`Store::list`] returns; larger limits are clamped to it (and 0 to 1).
pub const MAX_PAGE: usize = 1_000;

/// Position in a journal listing: the last record of the previous page.
///
/// Listings are ordered by `(updated_at, tx_id)`, newest first, in both stores,
/// so a cursor names one exact point in that order and paging neither skips nor
/// repeats records that did not change meanwhile. Callers treat the text as
/// opaque; the admin API can call [`ListCursor::parse`] to answer a malformed
/// cursor with 400 before asking the store (which reports it as
/// [`StoreError::Corrupt`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListCursor {
    pub updated_at: i64,
    pub tx_id: TxId,
}

impl ListCursor {
    /// The cursor a `list` call was given: none, or a well-formed one
    /// (a malformed cursor is `Corrupt`, as both stores report it).
    pub fn parse_arg(cursor: Option<&str>) -> Result<Option<ListCursor>, StoreError> {
        cursor
            .map(|c| {
                ListCursor::parse(c)
                    .ok_or_else(|| StoreError::Corrupt("malformed list cursor".into()))
            })
            .transpose()
    }

    /// The text handed to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.updated_at, self.tx_id)
    }

    /// Read a cursor produced by [`ListCursor::encode`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (at, id) = s.split_once('.')?;
        if at.is_empty() || at.len() > 20 {
            return None;
        }
        Some(ListCursor {
            updated_at: at.parse().ok()?,
            tx_id: id.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_cursor_round_trips_and_rejects_garbage() {
        let c = ListCursor {
            updated_at: 1_763_900_000_123,
            tx_id: TxId([7; 32]),
        };
        assert_eq!(ListCursor::parse(&c.encode()), Some(c));
        let negative = ListCursor {
            updated_at: -5,
            tx_id: TxId([0; 32]),
        };
        assert_eq!(ListCursor::parse(&negative.encode()), Some(negative));
        for bad in [
            "",
            ".",
            "12",
            "12.",
            ".0707",
            "x.0707",
            "1.zz",
            "99999999999999999999999.00",
        ] {
            assert_eq!(ListCursor::parse(bad), None, "{bad:?}");
        }
    }
}
