//! The embedded store: all state in one process, behind one lock.
//!
//! [`MemoryStore`] is the default backend, for development, demos and
//! single-replica deployments that accept losing reservations and the journal
//! on restart. It keeps the exact semantics of [`super::redis::RedisStore`]
//! (the same test suite runs against both): time-to-live on reservations,
//! leases, idempotency entries and journal records; the same listing order and
//! cursors; the same all-or-nothing reservation rule.
//!
//! Expiry is lazy, as in Redis: an entry past its deadline is treated as absent
//! by every read, and is physically dropped by the next operation that touches
//! that kind of entry (through a deadline-ordered index, so the cost is
//! proportional to what expired, not to what is stored).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    CasOutcome, ClaimOutcome, IdempotencyOutcome, ListCursor, MAX_PAGE, Page, ReserveOutcome,
    Schedule, SettlementRecord, SettlementState, Store, StoreError,
};
use crate::cardano::{TxId, UtxoRef};
use crate::chain::{DependencyHealth, DependencyStatus};

/// The in-process [`Store`].
///
/// All state sits behind one `parking_lot::Mutex`, not a `tokio::sync::Mutex`:
/// every operation is a short, purely in-memory critical section that never
/// holds the lock across an `.await`, so an async-aware lock would only add
/// cost (it is a queue of wakers around a semaphore). A blocking lock held for
/// microseconds is the cheaper and simpler tool, and holding it across a whole
/// operation is exactly what makes each operation atomic, like a Lua script in
/// Redis. `parking_lot` rather than `std` because it has no poisoning: a panic
/// elsewhere cannot turn the store into a permanent error for every request.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// A value that stops existing at `until`.
#[derive(Debug, Clone)]
struct Expiring<T> {
    value: T,
    until: Instant,
}

/// One journal record and the index positions derived from it.
#[derive(Debug)]
struct StoredRecord {
    record: SettlementRecord,
    until: Instant,
}

#[derive(Debug, Clone)]
struct IdempotencyEntry {
    digest: String,
    answer: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    reservations: HashMap<UtxoRef, Expiring<TxId>>,
    reservation_deadlines: BTreeSet<(Instant, UtxoRef)>,

    records: HashMap<TxId, StoredRecord>,
    record_deadlines: BTreeSet<(Instant, TxId)>,
    /// Per state (in [`SettlementState::ALL`] order): `(updated_at, tx id)`.
    by_state: [BTreeSet<(i64, TxId)>; 7],
    /// Every record: `(updated_at, tx id)`.
    all: BTreeSet<(i64, TxId)>,
    /// `(next check unix ms, tx id)`, with the reverse map to move entries.
    pending: BTreeSet<(i64, TxId)>,
    pending_at: HashMap<TxId, i64>,

    leases: HashMap<String, Expiring<String>>,

    idempotency: HashMap<String, Expiring<IdempotencyEntry>>,
    idempotency_deadlines: BTreeSet<(Instant, String)>,
}

fn state_slot(state: SettlementState) -> usize {
    match state {
        SettlementState::Claimed => 0,
        SettlementState::Submitting => 1,
        SettlementState::Submitted => 2,
        SettlementState::Pending => 3,
        SettlementState::Confirmed => 4,
        SettlementState::Failed => 5,
        SettlementState::Expired => 6,
    }
}

/// Longest ttl honoured (as in the Redis store); longer ones are clamped, so
/// no caller-supplied duration can overflow an `Instant`.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Deadline `ttl` from `now`, with `ttl` clamped to `[1 ms, MAX_TTL]` (Redis
/// refuses a zero expiry; both stores treat it as the shortest one).
fn deadline(now: Instant, ttl: Duration) -> Instant {
    now + ttl.clamp(Duration::from_millis(1), MAX_TTL)
}

impl Inner {
    fn purge_reservations(&mut self, now: Instant) {
        while let Some(&(at, input)) = self.reservation_deadlines.first() {
            if at > now {
                break;
            }
            self.reservation_deadlines.pop_first();
            if self.reservations.get(&input).is_some_and(|h| h.until == at) {
                self.reservations.remove(&input);
            }
        }
    }

    fn live_holder(&self, input: &UtxoRef, now: Instant) -> Option<TxId> {
        self.reservations
            .get(input)
            .filter(|h| h.until > now)
            .map(|h| h.value)
    }

    fn set_reservation(&mut self, input: UtxoRef, owner: TxId, until: Instant) {
        if let Some(old) = self.reservations.insert(
            input,
            Expiring {
                value: owner,
                until,
            },
        ) {
            self.reservation_deadlines.remove(&(old.until, input));
        }
        self.reservation_deadlines.insert((until, input));
    }

    fn purge_records(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.record_deadlines.first() {
            if at > now {
                break;
            }
            self.record_deadlines.pop_first();
            if self.records.get(&id).is_some_and(|r| r.until == at) {
                self.remove_record(&id);
            }
        }
    }

    fn remove_record(&mut self, id: &TxId) {
        if let Some(old) = self.records.remove(id) {
            self.record_deadlines.remove(&(old.until, *id));
            self.unindex(&old.record);
        }
        self.unschedule(id);
    }

    fn unindex(&mut self, record: &SettlementRecord) {
        let key = (record.updated_at, record.tx_id);
        self.by_state[state_slot(record.state)].remove(&key);
        self.all.remove(&key);
    }

    fn index(&mut self, record: &SettlementRecord) {
        let key = (record.updated_at, record.tx_id);
        self.by_state[state_slot(record.state)].insert(key);
        self.all.insert(key);
    }

    fn unschedule(&mut self, id: &TxId) {
        if let Some(at) = self.pending_at.remove(id) {
            self.pending.remove(&(at, *id));
        }
    }

    fn schedule(&mut self, id: TxId, schedule: Schedule) {
        match schedule {
            Schedule::At(at) => {
                self.unschedule(&id);
                self.pending.insert((at, id));
                self.pending_at.insert(id, at);
            }
            Schedule::Done => self.unschedule(&id),
            Schedule::Keep => {}
        }
    }

    /// Write `record` (replacing any previous version) with a fresh retention.
    fn put_record(&mut self, record: SettlementRecord, until: Instant, schedule: Schedule) {
        let id = record.tx_id;
        if let Some(old) = self.records.remove(&id) {
            self.record_deadlines.remove(&(old.until, id));
            self.unindex(&old.record);
        }
        self.index(&record);
        self.record_deadlines.insert((until, id));
        self.records.insert(id, StoredRecord { record, until });
        self.schedule(id, schedule);
    }

    fn live_record(&self, id: &TxId, now: Instant) -> Option<&SettlementRecord> {
        self.records
            .get(id)
            .filter(|r| r.until > now)
            .map(|r| &r.record)
    }

    fn purge_idempotency(&mut self, now: Instant) {
        while let Some((at, id)) = self.idempotency_deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.idempotency_deadlines.pop_first();
            if self.idempotency.get(&id).is_some_and(|e| e.until == at) {
                self.idempotency.remove(&id);
            }
        }
    }

    fn set_idempotency(&mut self, id: &str, entry: IdempotencyEntry, until: Instant) {
        if let Some(old) = self.idempotency.insert(
            id.to_owned(),
            Expiring {
                value: entry,
                until,
            },
        ) {
            self.idempotency_deadlines
                .remove(&(old.until, id.to_owned()));
        }
        self.idempotency_deadlines.insert((until, id.to_owned()));
    }

    fn remove_idempotency(&mut self, id: &str) {
        if let Some(old) = self.idempotency.remove(id) {
            self.idempotency_deadlines
                .remove(&(old.until, id.to_owned()));
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn reserve(
        &self,
        inputs: &[UtxoRef],
        owner: &TxId,
        ttl: Duration,
    ) -> Result<ReserveOutcome, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_reservations(now);
        for input in inputs {
            if let Some(holder) = inner.live_holder(input, now)
                && holder != *owner
            {
                return Ok(ReserveOutcome::Conflict {
                    input: *input,
                    holder,
                });
            }
        }
        let until = deadline(now, ttl);
        for input in inputs {
            inner.set_reservation(*input, *owner, until);
        }
        Ok(ReserveOutcome::Reserved)
    }

    async fn release(&self, inputs: &[UtxoRef], owner: &TxId) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_reservations(now);
        for input in inputs {
            if inner.live_holder(input, now) == Some(*owner)
                && let Some(old) = inner.reservations.remove(input)
            {
                inner.reservation_deadlines.remove(&(old.until, *input));
            }
        }
        Ok(())
    }

    async fn holder(&self, input: &UtxoRef) -> Result<Option<TxId>, StoreError> {
        Ok(self.inner.lock().live_holder(input, Instant::now()))
    }

    async fn reservations_active(&self) -> Result<u64, StoreError> {
        let mut inner = self.inner.lock();
        inner.purge_reservations(Instant::now());
        Ok(inner.reservations.len() as u64)
    }

    async fn claim(
        &self,
        record: &SettlementRecord,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<ClaimOutcome, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_records(now);
        if let Some(existing) = inner.live_record(&record.tx_id, now) {
            return Ok(ClaimOutcome::Existing(existing.clone()));
        }
        inner.put_record(record.clone(), deadline(now, retention), schedule);
        Ok(ClaimOutcome::Claimed(record.clone()))
    }

    async fn transition(
        &self,
        expected_state: SettlementState,
        expected_attempt: &str,
        next: &SettlementRecord,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<CasOutcome, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_records(now);
        match inner.live_record(&next.tx_id, now) {
            None => return Ok(CasOutcome::Conflict(None)),
            Some(current)
                if current.state != expected_state || current.attempt != expected_attempt =>
            {
                return Ok(CasOutcome::Conflict(Some(current.clone())));
            }
            Some(_) => {}
        }
        inner.put_record(next.clone(), deadline(now, retention), schedule);
        Ok(CasOutcome::Applied(next.clone()))
    }

    async fn get(&self, tx_id: &TxId) -> Result<Option<SettlementRecord>, StoreError> {
        Ok(self
            .inner
            .lock()
            .live_record(tx_id, Instant::now())
            .cloned())
    }

    async fn list(
        &self,
        state: Option<SettlementState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let after = ListCursor::parse_arg(cursor)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut inner = self.inner.lock();
        inner.purge_records(Instant::now());
        let index = match state {
            Some(s) => &inner.by_state[state_slot(s)],
            None => &inner.all,
        };
        let keys: Vec<(i64, TxId)> = match after {
            Some(c) => index
                .range(..(c.updated_at, c.tx_id))
                .rev()
                .take(limit + 1)
                .copied()
                .collect(),
            None => index.iter().rev().take(limit + 1).copied().collect(),
        };
        let next_cursor = if keys.len() > limit {
            keys.get(limit - 1)
                .map(|&(updated_at, tx_id)| ListCursor { updated_at, tx_id }.encode())
        } else {
            None
        };
        let records = keys
            .iter()
            .take(limit)
            .filter_map(|(_, id)| inner.records.get(id).map(|r| r.record.clone()))
            .collect();
        Ok(Page {
            records,
            next_cursor,
        })
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<TxId>, StoreError> {
        let mut inner = self.inner.lock();
        inner.purge_records(Instant::now());
        Ok(inner
            .pending
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .map(|(_, id)| *id)
            .collect())
    }

    async fn count_by_state(&self) -> Result<Vec<(SettlementState, u64)>, StoreError> {
        let mut inner = self.inner.lock();
        inner.purge_records(Instant::now());
        Ok(SettlementState::ALL
            .iter()
            .map(|s| (*s, inner.by_state[state_slot(*s)].len() as u64))
            .collect())
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let until = deadline(now, ttl);
        let mut inner = self.inner.lock();
        match inner.leases.get_mut(name) {
            Some(lease) if lease.until > now && lease.value != holder => Ok(false),
            Some(lease) => {
                lease.value = holder.to_owned();
                lease.until = until;
                Ok(true)
            }
            None => {
                inner.leases.insert(
                    name.to_owned(),
                    Expiring {
                        value: holder.to_owned(),
                        until,
                    },
                );
                Ok(true)
            }
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if inner
            .leases
            .get(name)
            .is_some_and(|l| l.until <= now || l.value == holder)
        {
            inner.leases.remove(name);
        }
        Ok(())
    }

    async fn idempotency_begin(
        &self,
        id: &str,
        payload_digest: &str,
        ttl: Duration,
    ) -> Result<IdempotencyOutcome, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_idempotency(now);
        match inner.idempotency.get(id).filter(|e| e.until > now) {
            Some(e) if e.value.digest != payload_digest => Ok(IdempotencyOutcome::Mismatch),
            Some(e) => Ok(match &e.value.answer {
                Some(answer) => IdempotencyOutcome::Stored(answer.clone()),
                None => IdempotencyOutcome::InProgress,
            }),
            None => {
                let entry = IdempotencyEntry {
                    digest: payload_digest.to_owned(),
                    answer: None,
                };
                inner.set_idempotency(id, entry, deadline(now, ttl));
                Ok(IdempotencyOutcome::New)
            }
        }
    }

    async fn idempotency_complete(
        &self,
        id: &str,
        payload_digest: &str,
        answer_json: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_idempotency(now);
        if inner
            .idempotency
            .get(id)
            .is_some_and(|e| e.until > now && e.value.digest != payload_digest)
        {
            // The id now belongs to another payload; its entry is not ours to overwrite.
            return Ok(());
        }
        let entry = IdempotencyEntry {
            digest: payload_digest.to_owned(),
            answer: Some(answer_json.to_owned()),
        };
        inner.set_idempotency(id, entry, deadline(now, ttl));
        Ok(())
    }

    async fn idempotency_abort(&self, id: &str, payload_digest: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_idempotency(now);
        if inner.idempotency.get(id).is_some_and(|e| {
            e.until > now && e.value.digest == payload_digest && e.value.answer.is_none()
        }) {
            inner.remove_idempotency(id);
        }
        Ok(())
    }

    async fn health(&self) -> DependencyHealth {
        let start = Instant::now();
        drop(self.inner.lock());
        DependencyHealth {
            status: DependencyStatus::Up,
            latency_ms: start.elapsed().as_secs_f64() * 1000.0,
            tip: None,
            error: None,
        }
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
