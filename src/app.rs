//! Wiring: turns [`Settings`] into a running service, in the runbook's
//! startup order, and drains it on shutdown.
//!
//! Startup order (each failure is one log line naming the step, then exit 1):
//! configuration (in `main`), Sentry, store, chain provider, HTTP listener,
//! signal handlers (in `main`, handed in as the shutdown future).
//!
//! Shutdown is an explicit future passed to [`App::run`], so tests can drive
//! it without signals: on it, the listener closes (new connections are
//! refused), `/ready` answers 503, in-flight requests get
//! `server.shutdownGraceSeconds` to finish, background tasks stop, the store
//! closes and Sentry is flushed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::chain::{ChainHandle, DynChain};
use crate::config::{Settings, StoreBackend};
use crate::store::DynStore;
use crate::telemetry::SentryGuard;

pub use crate::http::state::{AppInner, AppState};

/// A startup step failed.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("store initialization failed: {0}")]
    Store(String),
    #[error("chain provider initialization failed: {0}")]
    Chain(String),
    #[error("HTTP listener could not bind {addr}: {reason}")]
    Listener { addr: String, reason: String },
}

impl StartupError {
    /// The startup step, as named in logs and the runbook.
    pub fn step(&self) -> &'static str {
        match self {
            StartupError::Store(_) => "store",
            StartupError::Chain(_) => "chain",
            StartupError::Listener { .. } => "listener",
        }
    }
}

/// A built, bound, not yet serving facilitator.
pub struct App {
    state: AppState,
    listener: TcpListener,
    addr: SocketAddr,
    sentry: SentryGuard,
    shutdown_tx: watch::Sender<bool>,
    /// The separate /metrics listener, when `metrics.port` is set.
    metrics_listener: Option<TcpListener>,
}

/// Build the store named by `store.backend`.
pub async fn build_store(settings: &Settings) -> Result<DynStore, StartupError> {
    match settings.store.backend {
        StoreBackend::Memory => Ok(Arc::new(crate::store::memory::MemoryStore::new())),
        StoreBackend::Redis => {
            let redis = &settings.store.redis;
            let mut options = crate::store::redis::RedisStoreOptions {
                journal_replicas: redis.replica_acks,
                ..Default::default()
            };
            if let Some(path) = &redis.tls_ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    StartupError::Store(format!("store.redis.tlsCaFile {path}: {e}"))
                })?;
                options.tls_root_ca_pem = Some(pem);
            }
            let store = crate::store::redis::RedisStore::connect_with(redis, options)
                .await
                .map_err(|e| StartupError::Store(e.to_string()))?;
            Ok(Arc::new(store))
        }
    }
}

impl App {
    /// Steps 2 to 5 of startup. Binds `server.host:server.port` (port 0 picks a free one).
    pub async fn build(settings: Settings) -> Result<App, StartupError> {
        // Install the metrics recorder before anything records.
        let _ = crate::http::metrics::handle();
        let sentry = crate::telemetry::init_sentry(&settings);
        tracing::info!(
            step = "sentry",
            enabled = sentry.enabled(),
            "startup: sentry"
        );

        if let Some(warning) = settings.production_warning() {
            tracing::warn!(step = "store", "WARNING: {warning}");
        }
        let settings = Arc::new(settings);
        let mut lanes = Vec::new();
        for lane in settings.shared_lanes() {
            // Each network its own store namespace (`{keyPrefix}{caip2}:`).
            let store = build_store(&lane).await?;
            tracing::info!(
                step = "store",
                backend = store.backend(),
                network = lane.chain.network.caip2(),
                "startup: store ready"
            );
            let chain = crate::chain::build(&lane)
                .await
                .map_err(|e| StartupError::Chain(e.to_string()))?;
            tracing::info!(
                step = "chain",
                network = chain.provider.network().caip2(),
                "startup: chain provider ready"
            );
            lanes.push((lane, store, chain));
        }
        Self::build_lanes(settings, lanes, sentry).await
    }

    /// Build around given providers (used by `build`, and by tests that share a devnet).
    pub async fn build_with(
        settings: Settings,
        store: DynStore,
        chain: ChainHandle,
        sentry: SentryGuard,
    ) -> Result<App, StartupError> {
        let settings = Arc::new(settings);
        Self::build_lanes(settings.clone(), vec![(settings, store, chain)], sentry).await
    }

    /// Build around one (settings, store, chain) per served network; the
    /// first is the primary network.
    pub async fn build_lanes(
        settings: Arc<Settings>,
        lanes: Vec<(Arc<Settings>, DynStore, ChainHandle)>,
        sentry: SentryGuard,
    ) -> Result<App, StartupError> {
        let lanes: Vec<crate::facilitator::Lane> = lanes
            .into_iter()
            .map(|(lane, store, chain)| {
                let ChainHandle {
                    provider: chain,
                    devnet,
                } = chain;
                // With OpenTelemetry on, every chain and store call gets its own span.
                let (chain, store): (DynChain, DynStore) = if crate::otel::enabled() {
                    (
                        Arc::new(crate::chain::traced::TracedChain(chain)),
                        Arc::new(crate::store::traced::TracedStore(store)),
                    )
                } else {
                    (chain, store)
                };
                crate::facilitator::Lane::new(lane, chain, store, devnet)
            })
            .collect();
        let router = crate::facilitator::Router::new(lanes)
            .ok_or_else(|| StartupError::Chain("no network to serve".into()))?;
        let addr_text = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&addr_text)
            .await
            .map_err(|e| StartupError::Listener {
                addr: addr_text.clone(),
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| StartupError::Listener {
            addr: addr_text.clone(),
            reason: e.to_string(),
        })?;
        let metrics_listener = match settings.metrics.port {
            Some(port) => {
                let maddr = format!("{}:{port}", settings.server.host);
                let l = TcpListener::bind(&maddr)
                    .await
                    .map_err(|e| StartupError::Listener {
                        addr: maddr.clone(),
                        reason: e.to_string(),
                    })?;
                tracing::info!(step = "listener", address = %maddr, "startup: metrics on a separate port");
                Some(l)
            }
            None => None,
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let guard = crate::http::guard::Guard::new(&settings);
        let state = AppState::new(AppInner::new(
            settings,
            Arc::new(router),
            guard,
            shutdown_rx,
        ));
        tracing::info!(step = "listener", address = %addr, "startup: listening on http://{addr}");
        Ok(App {
            state,
            listener,
            addr,
            sentry,
            shutdown_tx,
            metrics_listener,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` completes, then drain (see the module docs).
    pub async fn run<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let App {
            state,
            listener,
            addr: _,
            sentry,
            shutdown_tx,
            metrics_listener,
        } = self;
        let grace = state.settings.server.shutdown_grace;
        let conn_opts = crate::http::serve::ServeOptions::from_settings(&state.settings.server);
        let service = crate::http::service(state.clone());

        let reconcilers: Vec<_> = state
            .facilitator
            .lanes()
            .iter()
            .map(|l| {
                l.facilitator
                    .settlement()
                    .spawn_reconciler(state.shutdown_signal())
            })
            .collect();
        let guard = state.guard.clone();
        let mut prune_stop = state.shutdown_signal();
        let prune_every = state
            .settings
            .rate_limit
            .window
            .max(Duration::from_millis(1000));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(prune_every) => guard.prune(),
                    _ = prune_stop.wait_for(|v| *v) => break,
                }
            }
        });

        if let Some(l) = metrics_listener {
            let mut stop = state.shutdown_signal();
            let router: axum::Router = axum::Router::new()
                .route("/metrics", axum::routing::get(crate::http::metrics::render))
                .with_state(state.clone());
            tokio::spawn(crate::http::serve::serve(
                l,
                router,
                conn_opts,
                async move {
                    let _ = stop.wait_for(|v| *v).await;
                },
            ));
        }

        let signal_state = state.clone();
        let mut begun = shutdown_tx.subscribe();
        tokio::spawn(async move {
            shutdown.await;
            signal_state.begin_draining();
            tracing::info!("shutdown signal received; draining in-flight requests");
            let _ = shutdown_tx.send(true);
        });

        let mut for_server = begun.clone();
        let serve = crate::http::serve::serve(listener, service, conn_opts, async move {
            let _ = for_server.wait_for(|v| *v).await;
        });
        tokio::pin!(serve);
        let deadline = async move {
            let _ = begun.wait_for(|v| *v).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            _ = &mut serve => {}
            _ = deadline => {
                tracing::warn!(grace_seconds = grace.as_secs(), "shutdown grace elapsed; abandoning requests still in flight");
            }
        };
        let result = Ok(());

        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            futures::future::join_all(reconcilers),
        )
        .await;
        for lane in state.facilitator.lanes() {
            if let Some(d) = &lane.devnet {
                d.shutdown().await;
            }
            lane.store.close().await;
        }
        tracing::info!("store closed; shutdown complete");
        sentry.flush(Duration::from_secs(2));
        crate::otel::flush();
        result
    }
}
