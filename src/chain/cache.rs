//! Small caches in front of a remote chain backend.
//!
//! Two shapes are needed, and both are deliberately tiny:
//!
//! * [`RefreshingCell`]: one value (the protocol parameters) that every
//!   request reads and that changes at most once per epoch. It is refreshed
//!   after a TTL by exactly one caller at a time (single flight); callers that
//!   arrive while a refresh is under way wait for that refresh instead of
//!   sending their own request, so a burst of verifies after expiry costs one
//!   backend call, not hundreds.
//! * [`TtlCache`]: a short-lived map (UTxO reference -> unspent output). Only
//!   positive `Unspent` answers go in, each for a few seconds, and the
//!   facilitator drops entries itself for inputs it has just spent
//!   ([`crate::chain::ChainProvider::invalidate`]). It never stores a "spent" or
//!   "unknown" verdict: those are always asked again.
//! * [`UtxoCache`]: the UTxO cache the Blockfrost client uses, a
//!   [`TtlCache`]-like map plus a "spent by us" set with its own (longer)
//!   TTL. An input of a transaction this service submitted is marked spent
//!   before the submission leaves, and from then on it is never answered from
//!   the cache and never put back into it, whatever a lookup that was already
//!   in flight brings back: both sets live under one lock, so there is no
//!   window between the check and the insert.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chain::ChainError;

/// A single cached value refreshed by at most one caller at a time.
///
/// The value lives behind a `parking_lot` mutex because every access is a
/// few loads and an `Arc` clone: it is never held across an `.await`. The
/// refresh *gate* is a tokio mutex because its holder does await (the HTTP
/// request); waiting on it is exactly the "others await the one in flight"
/// behaviour we want.
pub struct RefreshingCell<T> {
    ttl: Duration,
    /// How long past its TTL a value may still be served when a refresh fails.
    max_stale: Duration,
    state: parking_lot::Mutex<CellState<T>>,
    gate: tokio::sync::Mutex<()>,
}

struct CellState<T> {
    value: Option<(Arc<T>, Instant)>,
    /// Bumped after every completed refresh attempt, successful or not, so a
    /// caller that waited at the gate can tell that someone else already tried.
    attempts: u64,
    last_error: Option<ChainError>,
}

impl<T> RefreshingCell<T> {
    pub fn new(ttl: Duration, max_stale: Duration) -> Self {
        RefreshingCell {
            ttl,
            max_stale,
            state: parking_lot::Mutex::new(CellState {
                value: None,
                attempts: 0,
                last_error: None,
            }),
            gate: tokio::sync::Mutex::new(()),
        }
    }

    /// The cached value if it is younger than the TTL.
    pub fn fresh(&self) -> Option<Arc<T>> {
        let s = self.state.lock();
        s.value
            .as_ref()
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    /// Forget the value (the next read refreshes).
    pub fn clear(&self) {
        self.state.lock().value = None;
    }

    /// How old the cached value is (`None` when there is none).
    pub fn age(&self) -> Option<Duration> {
        self.state.lock().value.as_ref().map(|(_, at)| at.elapsed())
    }

    /// Fetch a new value now, whatever the age of the current one, unless a
    /// refresh is already under way (then this waits for it and shares its
    /// result). For a background task that keeps the value from ever expiring
    /// in front of a request.
    pub async fn refresh<F, Fut>(&self, fetch: F) -> Result<Arc<T>, ChainError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let seen_attempts = self.state.lock().attempts;
        let _gate = self.gate.lock().await;
        {
            let s = self.state.lock();
            if s.attempts != seen_attempts {
                if let Some((v, at)) = &s.value
                    && at.elapsed() < self.ttl
                {
                    return Ok(v.clone());
                }
                if let Some(e) = &s.last_error {
                    return Err(e.clone());
                }
            }
        }
        let result = fetch().await;
        let mut s = self.state.lock();
        s.attempts = s.attempts.wrapping_add(1);
        match result {
            Ok(v) => {
                let v = Arc::new(v);
                s.value = Some((v.clone(), Instant::now()));
                s.last_error = None;
                Ok(v)
            }
            Err(e) => {
                s.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    fn stale_ok(&self) -> Option<Arc<T>> {
        let s = self.state.lock();
        s.value
            .as_ref()
            .filter(|(_, at)| at.elapsed() < self.ttl + self.max_stale)
            .map(|(v, _)| v.clone())
    }

    /// Return the fresh value, or refresh it with `fetch` (one caller at a time).
    ///
    /// When a refresh fails and a value younger than TTL + `max_stale` exists,
    /// that value is served (protocol parameters change only at epoch
    /// boundaries; refusing every payment because one refresh failed would be
    /// worse). Otherwise the error is returned to every caller that waited for
    /// that attempt.
    pub async fn get_or_refresh<F, Fut>(&self, fetch: F) -> Result<Arc<T>, ChainError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ChainError>>,
    {
        let seen_attempts = {
            let s = self.state.lock();
            if let Some((v, at)) = &s.value
                && at.elapsed() < self.ttl
            {
                return Ok(v.clone());
            }
            s.attempts
        };

        let _gate = self.gate.lock().await;
        {
            let s = self.state.lock();
            if s.attempts != seen_attempts {
                // Someone refreshed (or tried to) while we waited: share their result.
                if let Some((v, at)) = &s.value
                    && at.elapsed() < self.ttl
                {
                    return Ok(v.clone());
                }
                if let Some(e) = &s.last_error {
                    let e = e.clone();
                    drop(s);
                    return self.stale_ok().ok_or(e);
                }
            }
        }

        let result = fetch().await;
        let mut s = self.state.lock();
        s.attempts = s.attempts.wrapping_add(1);
        match result {
            Ok(v) => {
                let v = Arc::new(v);
                s.value = Some((v.clone(), Instant::now()));
                s.last_error = None;
                Ok(v)
            }
            Err(e) => {
                s.last_error = Some(e.clone());
                drop(s);
                match self.stale_ok() {
                    Some(v) => {
                        tracing::warn!(error = %e, "refresh failed; serving the previous value");
                        Ok(v)
                    }
                    None => Err(e),
                }
            }
        }
    }
}

/// A bounded map whose entries expire after a fixed TTL.
///
/// A plain mutex around a `HashMap`: lookups and inserts are O(1) and the lock
/// is never held across an `.await`, so contention stays negligible next to
/// the network round trips the cache saves.
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    map: parking_lot::Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// `ttl` of zero disables the cache (every `get` misses, `insert` is a no-op).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity: capacity.max(1),
            map: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn get(&self, k: &K) -> Option<V> {
        if !self.is_enabled() {
            return None;
        }
        let mut m = self.map.lock();
        match m.get(k) {
            Some((v, at)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                m.remove(k);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, k: K, v: V) {
        if !self.is_enabled() {
            return;
        }
        let mut m = self.map.lock();
        if m.len() >= self.capacity && !m.contains_key(&k) {
            let ttl = self.ttl;
            m.retain(|_, (_, at)| at.elapsed() < ttl);
            if m.len() >= self.capacity {
                // Still full of live entries: start over rather than grow without bound.
                m.clear();
            }
        }
        m.insert(k, (v, Instant::now()));
    }

    pub fn remove(&self, k: &K) {
        self.map.lock().remove(k);
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The UTxO cache with its "spent by us" set (see the module docs).
///
/// `get` answers only for a key that is not marked spent; `insert` ignores a
/// marked key; `mark_spent` drops the entry and marks the key for
/// `spent_ttl`. When the marks fill their capacity with live entries the
/// cache stops answering at all until they age out (it can no longer tell
/// which keys are protected, so it protects all of them).
pub struct UtxoCache<K, V> {
    ttl: Duration,
    spent_ttl: Duration,
    capacity: usize,
    inner: parking_lot::Mutex<UtxoCacheInner<K, V>>,
}

struct UtxoCacheInner<K, V> {
    entries: HashMap<K, (V, Instant)>,
    /// Key -> when its mark expires.
    spent: HashMap<K, Instant>,
    /// Set when the marks overflowed: no answers from the cache before then.
    bypass_until: Option<Instant>,
}

impl<K: Eq + Hash + Clone, V: Clone> UtxoCache<K, V> {
    /// `ttl` of zero disables the positive cache; the marks are kept anyway
    /// (they cost little and keep `is_marked` meaningful).
    pub fn new(ttl: Duration, spent_ttl: Duration, capacity: usize) -> Self {
        UtxoCache {
            ttl,
            spent_ttl: spent_ttl.max(ttl),
            capacity: capacity.max(1),
            inner: parking_lot::Mutex::new(UtxoCacheInner {
                entries: HashMap::new(),
                spent: HashMap::new(),
                bypass_until: None,
            }),
        }
    }

    fn bypassed(inner: &mut UtxoCacheInner<K, V>, now: Instant) -> bool {
        match inner.bypass_until {
            Some(t) if now < t => true,
            Some(_) => {
                inner.bypass_until = None;
                false
            }
            None => false,
        }
    }

    fn marked(inner: &mut UtxoCacheInner<K, V>, k: &K, now: Instant) -> bool {
        match inner.spent.get(k) {
            Some(until) if now < *until => true,
            Some(_) => {
                inner.spent.remove(k);
                false
            }
            None => false,
        }
    }

    /// The cached value, unless absent, expired, or marked spent by us.
    pub fn get(&self, k: &K) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let now = Instant::now();
        let mut g = self.inner.lock();
        if Self::bypassed(&mut g, now) || Self::marked(&mut g, k, now) {
            return None;
        }
        match g.entries.get(k) {
            Some((v, at)) if now.duration_since(*at) < self.ttl => Some(v.clone()),
            Some(_) => {
                g.entries.remove(k);
                None
            }
            None => None,
        }
    }

    /// Cache `v` for `k`, unless `k` is marked spent by us.
    pub fn insert(&self, k: K, v: V) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut g = self.inner.lock();
        if Self::bypassed(&mut g, now) || Self::marked(&mut g, &k, now) {
            return;
        }
        if g.entries.len() >= self.capacity && !g.entries.contains_key(&k) {
            let ttl = self.ttl;
            g.entries.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            if g.entries.len() >= self.capacity {
                g.entries.clear();
            }
        }
        g.entries.insert(k, (v, now));
    }

    /// Forget `k`'s entry and never answer or cache it for `spent_ttl`.
    pub fn mark_spent(&self, keys: &[K]) {
        let now = Instant::now();
        let until = now + self.spent_ttl;
        let mut g = self.inner.lock();
        for k in keys {
            g.entries.remove(k);
            if g.spent.len() >= self.capacity && !g.spent.contains_key(k) {
                g.spent.retain(|_, t| now < *t);
                if g.spent.len() >= self.capacity {
                    // Cannot remember one more mark: protect everything instead.
                    g.spent.clear();
                    g.entries.clear();
                    g.bypass_until = Some(until);
                    tracing::warn!(
                        capacity = self.capacity,
                        "spent-by-us set full; UTxO cache bypassed until the marks age out"
                    );
                    continue;
                }
            }
            g.spent.insert(k.clone(), until);
        }
    }

    /// Whether `k` is marked spent by us (or every key is, after an overflow).
    pub fn is_marked(&self, k: &K) -> bool {
        let now = Instant::now();
        let mut g = self.inner.lock();
        Self::bypassed(&mut g, now) || Self::marked(&mut g, k, now)
    }

    /// Cached entries (marks not counted).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn single_flight_shares_one_fetch() {
        let cell = Arc::new(RefreshingCell::<u32>::new(
            Duration::from_secs(60),
            Duration::ZERO,
        ));
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let cell = cell.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cell.get_or_refresh(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(7)
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(*t.await.unwrap().unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn waiters_share_a_failure_and_later_callers_retry() {
        let cell = Arc::new(RefreshingCell::<u32>::new(
            Duration::from_secs(60),
            Duration::ZERO,
        ));
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let cell = cell.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cell.get_or_refresh(|| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err::<u32, _>(ChainError::new("protocol_params", "down"))
                })
                .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let v = cell.get_or_refresh(|| async { Ok(9) }).await.unwrap();
        assert_eq!(*v, 9);
    }

    #[tokio::test]
    async fn stale_value_served_when_refresh_fails() {
        let cell = RefreshingCell::<u32>::new(Duration::from_millis(10), Duration::from_secs(60));
        cell.get_or_refresh(|| async { Ok(1) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(cell.fresh().is_none());
        let v = cell
            .get_or_refresh(|| async { Err(ChainError::new("p", "x")) })
            .await
            .unwrap();
        assert_eq!(*v, 1);
    }

    #[test]
    fn ttl_cache_expires_and_bounds() {
        let c = TtlCache::new(Duration::from_millis(20), 2);
        c.insert(1, "a");
        c.insert(2, "b");
        assert_eq!(c.get(&1), Some("a"));
        c.insert(3, "c");
        assert!(c.len() <= 2);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.get(&3), None);
        let off = TtlCache::new(Duration::ZERO, 10);
        off.insert(1, 1);
        assert_eq!(off.get(&1), None);
    }

    #[test]
    fn marked_keys_are_never_answered_nor_cached() {
        let c = UtxoCache::new(Duration::from_secs(60), Duration::from_secs(60), 10);
        c.insert(1, "unspent");
        assert_eq!(c.get(&1), Some("unspent"));
        c.mark_spent(&[1]);
        assert_eq!(c.get(&1), None);
        // A lookup that was in flight when the mark landed cannot put it back.
        c.insert(1, "unspent");
        assert_eq!(c.get(&1), None);
        assert!(c.is_marked(&1));
        assert!(!c.is_marked(&2));
        c.insert(2, "other");
        assert_eq!(c.get(&2), Some("other"));
    }

    #[test]
    fn marks_expire() {
        // The spent TTL is never shorter than the cache TTL.
        let c: UtxoCache<u32, &str> =
            UtxoCache::new(Duration::from_millis(10), Duration::from_millis(20), 10);
        c.mark_spent(&[1]);
        assert!(c.is_marked(&1));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!c.is_marked(&1));
    }

    #[test]
    fn overflowing_marks_protect_every_key() {
        let c = UtxoCache::new(Duration::from_secs(60), Duration::from_secs(60), 2);
        c.insert(9, "x");
        c.mark_spent(&[1, 2, 3]);
        assert!(c.is_marked(&1) && c.is_marked(&3) && c.is_marked(&9));
        assert_eq!(c.get(&9), None);
        c.insert(9, "x");
        assert_eq!(c.get(&9), None);
    }
}
