//! The state every route handler shares. It lives in the HTTP layer (the
//! application wiring in [`crate::app`] builds it), so `http` never imports
//! `app`.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::watch;

use crate::chain::DynChain;
use crate::chain::devnet::Devnet;
use crate::config::Settings;
use crate::facilitator::Router;
use crate::store::DynStore;

/// Shared, immutable-after-start state of one running facilitator.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub settings: Arc<Settings>,
    /// The use cases of every served network; handlers call exactly one of them.
    pub facilitator: Arc<Router>,
    /// The primary (first) network's chain backend and store.
    pub chain: DynChain,
    pub store: DynStore,
    /// The embedded ledger, when one network runs on it (its routes are served).
    pub devnet: Option<Arc<Devnet>>,
    pub started: Instant,
    /// API keys and rate limits, shared by every route.
    pub guard: Arc<super::guard::Guard>,
    /// Set when shutdown begins; /ready answers 503 from then on.
    draining: AtomicBool,
    /// Fires when shutdown begins, for background tasks.
    shutdown: watch::Receiver<bool>,
}

impl AppState {
    pub fn new(inner: AppInner) -> AppState {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppInner {
    pub fn new(
        settings: Arc<Settings>,
        facilitator: Arc<Router>,
        guard: Arc<super::guard::Guard>,
        shutdown: watch::Receiver<bool>,
    ) -> AppInner {
        let primary = facilitator.primary();
        let (chain, store) = (primary.chain.clone(), primary.store.clone());
        let devnet = facilitator.devnet().and_then(|l| l.devnet.clone());
        AppInner {
            settings,
            facilitator,
            chain,
            store,
            devnet,
            started: Instant::now(),
            guard,
            draining: AtomicBool::new(false),
            shutdown,
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Shutdown has begun: /ready answers 503 from now on.
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// A receiver that turns `true` when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}
