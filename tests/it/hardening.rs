//! Issue 11 (hardening): connection deadlines and the connection cap, the
//! cached single-flight health probe, secrets in URLs, production mode and
//! configuration errors. Black-box, against the real server on port 0 or the
//! real binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x402_facilitator::chain::devnet::{Devnet, api};
use x402_facilitator::config;

use crate::devnet_support::settings as devnet_settings;
use crate::support::app::{BinApp, run_bin, spawn_app_with};
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// Raise this process's open-file limit towards `want` (the in-process server
/// and the test's clients share it); returns the soft limit now in force.
fn raise_fd_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < want {
            let target = want.min(lim.rlim_max);
            let new = libc::rlimit {
                rlim_cur: target,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                lim.rlim_cur = target;
            }
        }
    }
    lim.rlim_cur
}

/// How one slow connection misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slow {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request head one byte at a time, never finishing it.
    TrickledHead,
    /// Sends a whole head announcing 1000 bytes of body, then trickles the body.
    TrickledBody,
}

/// Read until the server closes the connection; `None` if it is still open
/// after `wait`. A reset counts as closed.
async fn until_closed(mut r: tokio::net::tcp::OwnedReadHalf, wait: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|_| got)
}

/// 1,000 half-open or trickling connections: /health and a real /verify still
/// answer (each within a 1 s client timeout), trickling bodies hold no
/// concurrency slot (16 slots for 333 trickling bodies), and the server closes
/// every slow connection by its deadline, idle kept-alive ones included. The
/// slots outnumber the requests that do complete (10 kept-alive /health, then
/// one /health and one /verify), so none of those may be shed: a 503 here
/// means a slow connection held a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_connections_neither_starve_health_and_verify_nor_outlive_their_deadlines() {
    let limit = raise_fd_limit(8_192);
    // Each connection costs two descriptors in this process (client and server side).
    let n = 1_000usize.min((limit.saturating_sub(300) / 2) as usize);
    if n < 1_000 {
        eprintln!("NOTE: open-file limit {limit}: using {n} slow connections instead of 1000");
    }
    assert!(n >= 100, "open-file limit {limit} too low for this test");
    let app = spawn_app_with(|s| {
        s.server.header_read_timeout = std::time::Duration::from_millis(3_000);
        s.server.keep_alive_timeout = std::time::Duration::from_millis(1_000);
        s.server.body_read_timeout = std::time::Duration::from_millis(3_000);
        s.server.max_connections = n + 100;
        s.server.max_concurrent_requests = 16;
    })
    .await;
    // A real payment, prepared before the slow clients arrive.
    let (buyer, _) = funded_buyer(&app.client, &app.base, 0x51, 10_000_000).await;
    let v = view(&app.client, &app.base, &buyer).await;
    let (_, body) = pay(&buyer, &v, &requirements(&seller(0x52), 1_000_000, 0));

    let stop_writers = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::with_capacity(n);
    let mut silent = Vec::new();
    for i in 0..n {
        let kind = [Slow::Silent, Slow::TrickledHead, Slow::TrickledBody][i % 3];
        let stream = TcpStream::connect(app.addr).await.expect("connect");
        let (r, mut w) = stream.into_split();
        let stop = stop_writers.clone();
        let (first, drip): (&[u8], &[u8]) = match kind {
            Slow::Silent => (b"", b""),
            Slow::TrickledHead => (b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: a\r\n"),
            Slow::TrickledBody => (
                b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
                b" ",
            ),
        };
        let _ = w.write_all(first).await;
        if drip.is_empty() {
            // Dropping the write half would send FIN: keep the socket half-open.
            silent.push(w);
        } else {
            tokio::spawn(async move {
                let mut at = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    if w.write_all(&drip[at % drip.len()..at % drip.len() + 1])
                        .await
                        .is_err()
                    {
                        break;
                    }
                    at += 1;
                }
            });
        }
        readers.push((kind, r));
    }
    // Kept-alive connections that answer one request and then go idle.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(app.addr).await.expect("connect");
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (r, w) = s.into_split();
        idle.push(r);
        silent.push(w);
    }

    // While all of them are open, the service answers.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let h = quick
        .get(app.url("/health"))
        .send()
        .await
        .expect("/health answers within 1 s");
    assert_eq!(h.status(), 200);
    let r = quick
        .post(app.url("/verify"))
        .json(&body)
        .send()
        .await
        .expect("/verify answers within 1 s");
    assert_eq!(r.status(), 200);
    let verdict: Value = r.json().await.unwrap();
    assert_eq!(verdict["isValid"], true, "{verdict}");

    // Then every slow connection is closed by the server: the deadlines are
    // 3 s; allow 10 s more before calling one "still open".
    let waits = readers
        .into_iter()
        .map(|(kind, r)| async move { (kind, until_closed(r, Duration::from_secs(13)).await) });
    let results = futures::future::join_all(waits).await;
    stop_writers.store(true, Ordering::Relaxed);
    let open: Vec<Slow> = results
        .iter()
        .filter(|(_, got)| got.is_none())
        .map(|(k, _)| *k)
        .collect();
    assert!(
        open.is_empty(),
        "{} connections left open: {open:?}",
        open.len()
    );
    for (kind, got) in &results {
        let got = got.as_deref().unwrap_or_default();
        match kind {
            Slow::Silent | Slow::TrickledHead => {
                assert!(
                    got.is_empty(),
                    "{kind:?} got {:?}",
                    String::from_utf8_lossy(got)
                );
            }
            // The body deadline answers 408 before closing (a reset may eat it).
            Slow::TrickledBody => assert!(
                got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(got)
            ),
        }
    }
    for r in idle {
        let got = until_closed(r, Duration::from_secs(10))
            .await
            .expect("an idle kept-alive connection is closed");
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    drop(silent);
    // The slots were never held: the service is still fully available.
    let (code, _) = app.get_json("/health").await;
    assert_eq!(code, 200);
    app.stop().await;
}

// ---------------------------------------------------------------------------
// Health: cached, single flight, no URLs or error texts for anyone
// ---------------------------------------------------------------------------

/// A devnet's Blockfrost API under a secret-looking path, counting requests
/// for the tip and, when `fail` is set, answering 500 with a message that
/// names a credential-bearing URL.
struct Upstream {
    /// The Blockfrost base URL, with user info and a secret path.
    url: String,
    tip_hits: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
}

const LEAKY_MESSAGE: &str =
    "backend http://admin:SECRETPW@10.0.0.9:8080/proj-SECRETPATH?token=SECRETTOKEN failed";

async fn upstream() -> Upstream {
    let devnet = Devnet::start(&devnet_settings(200, vec![])).unwrap();
    let tip_hits = Arc::new(AtomicUsize::new(0));
    let fail = Arc::new(AtomicBool::new(false));
    async fn count(
        State((hits, fail)): State<(Arc<AtomicUsize>, Arc<AtomicBool>)>,
        req: Request,
        next: Next,
    ) -> Response {
        // Every upstream request counts (the probe reads /genesis to prove
        // the network; the tip comes from the provider's background copy).
        hits.fetch_add(1, Ordering::SeqCst);
        if fail.load(Ordering::SeqCst) {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(
                    json!({"status_code": 500, "error": "Internal", "message": LEAKY_MESSAGE}),
                ),
            )
                .into_response();
        }
        next.run(req).await
    }
    let router = axum::Router::new()
        .nest("/proj-SECRETPATH", api::router(devnet, true))
        .layer(axum::middleware::from_fn_with_state(
            (tip_hits.clone(), fail.clone()),
            count,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Upstream {
        url: format!("http://user:SECRETPW@127.0.0.1:{port}/proj-SECRETPATH/api/v0"),
        tip_hits,
        fail,
    }
}

/// 200 /health calls within about a second, ten at a time.
async fn burst(app: &crate::support::app::TestApp) {
    for _ in 0..20 {
        let calls = (0..10).map(|_| app.get_json("/health"));
        for (code, v) in futures::future::join_all(calls).await {
            assert_eq!(code, 200, "{v}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_health_calls_in_a_second_cost_a_handful_of_upstream_requests() {
    let up = upstream().await;
    let url = up.url.clone();
    let app = spawn_app_with(move |s| {
        s.chain.blockfrost.url = Some(url);
        s.server.health_cache = std::time::Duration::from_millis(1_000);
    })
    .await;
    up.tip_hits.store(0, Ordering::SeqCst);
    burst(&app).await;
    let cached = up.tip_hits.load(Ordering::SeqCst);
    assert!(
        (1..=6).contains(&cached),
        "200 /health calls cost {cached} upstream requests"
    );
    app.stop().await;

    // Without the cache every call is an upstream request: the count is real.
    let url = up.url.clone();
    let app = spawn_app_with(move |s| {
        s.chain.blockfrost.url = Some(url);
        s.server.health_cache = std::time::Duration::from_millis(0);
    })
    .await;
    up.tip_hits.store(0, Ordering::SeqCst);
    burst(&app).await;
    let uncached = up.tip_hits.load(Ordering::SeqCst);
    assert!(uncached >= 200, "uncached: {uncached} upstream requests");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_show_no_upstream_url_or_error_text_without_the_admin_key() {
    let up = upstream().await;
    let url = up.url.clone();
    let admin_key = "admin-key-0123456789abcdef";
    let app = spawn_app_with(move |s| {
        s.chain.blockfrost.url = Some(url);
        s.chain.blockfrost.max_retries = 0;
        s.server.health_cache = std::time::Duration::from_millis(0);
        s.admin.api_key = Some(config::Secret::new(admin_key));
    })
    .await;
    up.fail.store(true, Ordering::SeqCst);

    let no_secret = |text: &str| {
        for s in ["SECRET", "user:", "proj-", "token"] {
            assert!(!text.contains(s), "{s} leaked: {text}");
        }
    };
    for path in ["/health", "/ready"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        let text = r.text().await.unwrap();
        no_secret(&text);
        let v: Value = serde_json::from_str(&text).unwrap();
        if path == "/health" {
            assert_eq!(v["status"], "degraded", "{v}");
            let chain = &v["dependencies"]["chain"];
            assert_eq!(chain["status"], "down");
            assert!(chain["latencyMs"].is_number());
            assert!(chain.get("error").is_none(), "{v}");
        } else {
            assert_eq!(v["reasons"], json!(["chain down"]), "{v}");
        }

        // The operator sees the error, with the URL cut to scheme, host and port.
        let r = app
            .client
            .get(app.url(path))
            .header("x-admin-key", admin_key)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        no_secret(&text);
        assert!(
            text.contains("backend http://10.0.0.9:8080 failed"),
            "{text}"
        );
    }
    app.stop().await;
}

#[test]
fn check_config_shows_a_blockfrost_url_as_scheme_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(
        &path,
        json!({"chain": {"network": "preprod", "blockfrost": {
            "url": "https://me:SECRETPW@bf.example:8443/api/v0/SECRETPATH?token=SECRETTOKEN"
        }}})
        .to_string(),
    )
    .unwrap();
    let (code, out, err) = run_bin(
        dir.path(),
        &["--config", &path.display().to_string(), "check-config"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("SECRET"), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chain"]["blockfrost"]["url"], "https://bf.example:8443");
}

// ---------------------------------------------------------------------------
// Production mode
// ---------------------------------------------------------------------------

fn config_file(dir: &std::path::Path, v: &Value) -> String {
    let p = dir.join("c.json");
    std::fs::write(&p, v.to_string()).unwrap();
    p.display().to_string()
}

#[test]
fn production_refuses_the_devnet_and_its_faucet_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), &json!({"env": "production"}));
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!(
            "ConfigInvalidError: chain.network: {}; chain.devnet.faucetEnabled: {}",
            config::PRODUCTION_DEVNET_MESSAGE,
            config::PRODUCTION_FAUCET_MESSAGE
        )
    );
    assert_eq!(
        err.trim(),
        "ConfigInvalidError: chain.network: the devnet is not allowed when env is production (use preprod, preview or mainnet); chain.devnet.faucetEnabled: the devnet faucet is not allowed when env is production"
    );
    // Through the environment too.
    let (code, _, err) = run_bin(dir.path(), &["serve"], &[("X402_ENV", "production")]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("ConfigInvalidError: chain.network: the devnet is not allowed"),
        "{err}"
    );
}

#[test]
fn production_refuses_pretty_logs_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        dir.path(),
        &json!({"env": "production", "logging": {"pretty": true},
                "chain": {"network": "preprod", "blockfrost": {"projectId": "preprodXXXXXXXXXXXXXXXX"}}}),
    );
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "ConfigInvalidError: logging.pretty: must be false when env is production (logs must be JSON lines)"
    );
}

#[tokio::test]
async fn production_on_the_memory_store_warns_at_startup_and_in_health() {
    let app = BinApp::start(
        json!({"env": "production", "server": {"port": 0},
               "chain": {"network": "preprod", "blockfrost": {
                   "url": "http://127.0.0.1:9/api/v0", "maxRetries": 0, "requestTimeoutMs": 300}}}),
        &[],
    );
    let (code, v) = {
        let r = reqwest::get(format!("{}/health", app.base()))
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json::<Value>().await.unwrap())
    };
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["warning"], config::PRODUCTION_MEMORY_STORE_WARNING);
    assert_eq!(
        v["warning"],
        "store.backend is memory in production: this must be the only replica (reservations and settlements are neither shared nor kept across restarts); use redis to run more than one"
    );
    let lines = app.lines();
    let warned = lines.iter().any(|l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["level"] == 40
                && v["msg"]
                    == format!("WARNING: {}", config::PRODUCTION_MEMORY_STORE_WARNING).as_str()
        })
    });
    assert!(warned, "{lines:?}");

    // Development shows no warning.
    let dev = BinApp::start(json!({"server": {"port": 0}}), &[]);
    let v: Value = reqwest::get(format!("{}/health", dev.base()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v.get("warning").is_none(), "{v}");
}

// ---------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------

#[test]
fn every_invalid_key_is_in_the_one_config_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        dir.path(),
        &json!({"server": {"port": "not-a-port"}, "logging": {"level": "shout"}}),
    );
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    let line = err.trim();
    assert!(line.starts_with("ConfigInvalidError: "), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("server.port: invalid type: string \"not-a-port\", expected u16"),
        "{line}"
    );
    assert!(line.contains("logging.level: must be one of"), "{line}");
}

#[test]
fn an_unknown_key_is_an_error_with_the_closest_known_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), &json!({"rateLimit": {"globl": 5}}));
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "check-config"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "ConfigInvalidError: rateLimit.globl: unknown key (did you mean rateLimit.global?)"
    );
    let (code, _, err) = run_bin(
        dir.path(),
        &["check-config"],
        &[("X402_SERVER__HEADER_READ_TIMEOUT", "5000")],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "ConfigInvalidError: server.headerReadTimeout (X402_SERVER__HEADER_READ_TIMEOUT): unknown key (did you mean server.headerReadTimeoutMs?)"
    );
}
