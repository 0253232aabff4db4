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

/// Bounds on every map of the memory store. Redis bounds itself with
/// `maxmemory`; one process needs its own, so a flood of distinct payment
/// identifiers, holds or claims cannot grow it without limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Journal records. When full, the oldest finished record (failed,
    /// expired, rejected, then delivered/confirmed) is evicted; when every
    /// record is still open, a new claim fails (503) rather than forget one.
    pub records: usize,
    /// Reserved inputs. When full, a new reservation fails (503).
    pub reservations: usize,
    /// payment-identifier entries. When full, the entry closest to expiry goes.
    /// (Logical-key bindings need no bound of their own: one per record at most.)
    pub idempotency: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            records: 200_000,
            reservations: 500_000,
            idempotency: 200_000,
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: MemoryLimits) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                limits,
                ..Inner::default()
            }),
        }
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
    limits: MemoryLimits,
    reservations: HashMap<UtxoRef, Expiring<TxId>>,
    reservation_deadlines: BTreeSet<(Instant, UtxoRef)>,

    records: HashMap<TxId, StoredRecord>,
    record_deadlines: BTreeSet<(Instant, TxId)>,
    /// Per state (in [`SettlementState::ALL`] order): `(updated_at, tx id)`.
    by_state: [BTreeSet<(i64, TxId)>; 8],
    /// Every record: `(updated_at, tx id)`.
    all: BTreeSet<(i64, TxId)>,
    /// `(next check unix ms, tx id)`, with the reverse map to move entries.
    pending: BTreeSet<(i64, TxId)>,
    pending_at: HashMap<TxId, i64>,

    leases: HashMap<String, Expiring<String>>,

    idempotency: HashMap<String, Expiring<IdempotencyEntry>>,
    idempotency_deadlines: BTreeSet<(Instant, String)>,

    /// Logical key -> the transaction it is bound to (lives as long as that record).
    logical_keys: HashMap<String, TxId>,
    flags: HashMap<String, bool>,
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
        SettlementState::Rejected => 7,
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
            if let Some(key) = &old.record.logical_key
                && self.logical_keys.get(key) == Some(id)
            {
                self.logical_keys.remove(key);
            }
        }
        self.unschedule(id);
    }

    /// Make room for one more record: evict the oldest finished one, by
    /// class (failed/expired/rejected first, then delivered or confirmed).
    /// False when every record is still open (nothing may be forgotten).
    fn make_room_for_record(&mut self) -> bool {
        if self.records.len() < self.limits.records {
            return true;
        }
        let finished = [
            SettlementState::Failed,
            SettlementState::Expired,
            SettlementState::Rejected,
            SettlementState::Confirmed,
        ];
        for state in finished {
            let victim = self.by_state[state_slot(state)].first().map(|&(_, id)| id);
            if let Some(id) = victim {
                self.remove_record(&id);
                return true;
            }
        }
        // Delivered mempool settlements stay SUBMITTED; they are finished too.
        let delivered = self.by_state[state_slot(SettlementState::Submitted)]
            .iter()
            .find(|(_, id)| {
                self.records
                    .get(id)
                    .is_some_and(|r| r.record.delivered_at.is_some())
            })
            .map(|&(_, id)| id);
        if let Some(id) = delivered {
            self.remove_record(&id);
            return true;
        }
        false
    }

    fn release_owned(&mut self, inputs: &[UtxoRef], owner: &TxId, now: Instant) {
        for input in inputs {
            if self.live_holder(input, now) == Some(*owner)
                && let Some(old) = self.reservations.remove(input)
            {
                self.reservation_deadlines.remove(&(old.until, *input));
            }
        }
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
        if !self.idempotency.contains_key(id) && self.idempotency.len() >= self.limits.idempotency {
            // Full: the entry closest to its own expiry makes room.
            if let Some((_, victim)) = self.idempotency_deadlines.first().cloned() {
                self.remove_idempotency(&victim);
            }
        }
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
        let fresh = inputs
            .iter()
            .filter(|i| inner.live_holder(i, now).is_none())
            .count();
        if inner.reservations.len() + fresh > inner.limits.reservations {
            return Err(StoreError::Unavailable(
                "memory store: reservation capacity reached".into(),
            ));
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
        inner.release_owned(inputs, owner, now);
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
        reservation: Duration,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<ClaimOutcome, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_records(now);
        inner.purge_reservations(now);
        let id = record.tx_id;
        if let Some(existing) = inner.live_record(&id, now) {
            return Ok(ClaimOutcome::Existing(existing.clone()));
        }
        if let Some(key) = &record.logical_key
            && let Some(holder) = inner.logical_keys.get(key).copied()
            && holder != id
            && inner.live_record(&holder, now).is_some()
        {
            return Ok(ClaimOutcome::KeyBound { holder });
        }
        for input in &record.inputs {
            if let Some(holder) = inner.live_holder(input, now)
                && holder != id
            {
                return Ok(ClaimOutcome::InputHeld {
                    input: *input,
                    holder,
                });
            }
        }
        if !inner.make_room_for_record() {
            return Err(StoreError::Unavailable(
                "memory store: journal capacity reached with every settlement still open".into(),
            ));
        }
        let until = deadline(now, reservation);
        for input in &record.inputs {
            inner.set_reservation(*input, id, until);
        }
        if let Some(key) = &record.logical_key {
            inner.logical_keys.insert(key.clone(), id);
        }
        inner.put_record(record.clone(), deadline(now, retention), schedule);
        Ok(ClaimOutcome::Claimed(record.clone()))
    }

    async fn release_claim(&self, tx_id: &TxId, attempt: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        inner.purge_records(now);
        let Some(rec) = inner
            .live_record(tx_id, now)
            .filter(|r| r.state == SettlementState::Claimed && r.attempt == attempt)
            .cloned()
        else {
            return Ok(false);
        };
        inner.release_owned(&rec.inputs, tx_id, now);
        inner.remove_record(tx_id);
        Ok(true)
    }

    async fn set_flag(&self, name: &str, value: bool) -> Result<(), StoreError> {
        self.inner.lock().flags.insert(name.to_owned(), value);
        Ok(())
    }

    async fn flag(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.inner.lock().flags.get(name).copied().unwrap_or(false))
    }

    async fn logical_key_holder(&self, key: &str) -> Result<Option<TxId>, StoreError> {
        let now = Instant::now();
        let inner = self.inner.lock();
        Ok(inner
            .logical_keys
            .get(key)
            .copied()
            .filter(|id| inner.live_record(id, now).is_some()))
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
