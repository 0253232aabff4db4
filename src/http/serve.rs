//! The connection layer: our own accept loop over hyper-util's connection
//! builder, so that a connection can hold nothing for long unless a request
//! on it is being processed.
//!
//! | what | bound | enforced by |
//! |---|---|---|
//! | open connections | `server.maxConnections` | a semaphore: at the cap, accepting waits (new clients queue in the kernel's backlog) |
//! | a request head | `server.headerReadTimeoutMs` from accept or the previous response | hyper's HTTP/1 header timer (which needs the `TokioTimer` that `axum::serve` never set) and, for the protocol-detection phase and HTTP/2, the watchdog below |
//! | an idle kept-alive connection | `server.keepAliveTimeoutMs` with no byte of a new request | the watchdog |
//! | a request body | `server.bodyReadTimeoutMs` from its head | the `ReadBody` layer of the tower stack (408, then the connection closes) |
//! | processing | `server.requestTimeoutMs` | the tower stack's timeout |
//!
//! The watchdog is one `select!` per connection: while no request on the
//! connection is in flight (a request counts until its response body has been
//! written), it sleeps until the connection's deadline and then drops the
//! connection, which closes the socket. A request in flight is never cut off
//! here; its own deadlines apply.
//!
//! Shutdown: the listener is dropped (new connections are refused), every
//! connection gets hyper's graceful shutdown (idle ones close at once, busy
//! ones finish their request), and [`serve`] returns when the last one is
//! gone. The caller bounds that wait with `server.shutdownGraceSeconds`;
//! dropping the future aborts whatever is left.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::config::ServerSettings;

/// The connection bounds of [`serve`].
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
}

impl ServeOptions {
    pub fn from_settings(s: &ServerSettings) -> Self {
        ServeOptions {
            header_read_timeout: s.header_read_timeout,
            keep_alive_timeout: s.keep_alive_timeout,
            max_connections: s.max_connections.max(1),
        }
    }
}

/// What the watchdog knows about one connection.
struct ConnTrack {
    /// Requests whose response has not been written yet.
    in_flight: AtomicUsize,
    /// Requests answered on this connection.
    served: AtomicU64,
    /// A byte arrived since the connection last became idle.
    got_bytes: AtomicBool,
    /// When the connection last became idle (accept, or the last response).
    idle_since: parking_lot::Mutex<Instant>,
    /// Wakes the watchdog when the connection becomes idle again.
    idle: Notify,
}

impl ConnTrack {
    fn new() -> Arc<Self> {
        Arc::new(ConnTrack {
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            got_bytes: AtomicBool::new(false),
            idle_since: parking_lot::Mutex::new(Instant::now()),
            idle: Notify::new(),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When this connection must be closed, if nothing changes; `None` while
    /// a request is in flight.
    fn deadline(&self, opts: &ServeOptions) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = *self.idle_since.lock();
        let first = self.served.load(Ordering::SeqCst) == 0;
        let limit = if first || self.got_bytes.load(Ordering::SeqCst) {
            opts.header_read_timeout
        } else {
            opts.keep_alive_timeout.min(opts.header_read_timeout)
        };
        Some(since + limit)
    }
}

/// One request in flight on a connection; dropped when its response body has
/// been written (or the request was abandoned).
struct InFlight(Arc<ConnTrack>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let t = &self.0;
        if t.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *t.idle_since.lock() = Instant::now();
            t.got_bytes.store(false, Ordering::SeqCst);
            t.served.fetch_add(1, Ordering::SeqCst);
            t.idle.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight until hyper
/// has written it and dropped it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting for the watchdog that bytes arrived.
struct Watched {
    inner: TcpStream,
    track: Arc<ConnTrack>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.track.got_bytes.store(true, Ordering::SeqCst);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accept errors that concern one connection only (retry at once), as
/// opposed to resource exhaustion such as EMFILE (back off first).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

fn builder(opts: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    b.http2().timer(TokioTimer::new());
    b
}

/// Serve `router` on `listener` until `shutdown` completes and every
/// connection has closed (see the module docs).
pub async fn serve<F>(listener: TcpListener, router: Router, opts: ServeOptions, shutdown: F)
where
    F: Future<Output = ()> + Send,
{
    let builder = Arc::new(builder(&opts));
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<()> = JoinSet::new();
    tokio::pin!(shutdown);

    'accept: loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break 'accept,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break 'accept,
            },
        };
        let (stream, peer) = loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break 'accept,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                r = listener.accept() => match r {
                    Ok(accepted) => break accepted,
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; backing off");
                        metrics::counter!("http_accept_errors_total").increment(1);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            peer,
            router.clone(),
            builder.clone(),
            opts,
            stop_rx.clone(),
            permit,
        ));
    }

    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Counts open connections in the `http_connections_open` gauge.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!("http_connections_open").increment(1.0);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("http_connections_open").decrement(1.0);
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    opts: ServeOptions,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _open = OpenGauge::new();
    let track = ConnTrack::new();
    let io = TokioIo::new(Watched {
        inner: stream,
        track: track.clone(),
    });
    let for_service = track.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let router = router.clone();
        let in_flight = for_service.begin();
        req.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let resp = router.oneshot(req).await;
            resp.map(|r| {
                r.map(|inner| {
                    Body::new(TrackedBody {
                        inner,
                        _in_flight: in_flight,
                    })
                })
            })
        }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = track.deadline(&opts);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|v| *v), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = track.idle.notified() => {}
            _ = sleep_until(deadline) => {
                if track.deadline(&opts).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(peer = %peer, "closing a connection with no complete request in time");
                    metrics::counter!("http_connections_timed_out_total").increment(1);
                    return;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
