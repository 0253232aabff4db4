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
}
