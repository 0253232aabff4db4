//! Deterministic cost of one `POST /verify` through the real HTTP stack, for
//! `valgrind --tool=callgrind` (see `scripts/callgrind-verify.sh`).
//!
//! ```text
//! cargo bench --bench verify_callgrind --no-run
//! valgrind --tool=callgrind --separate-threads=yes target/release/deps/verify_callgrind-<hash> \
//!     [--requests N] [--warmup W] [--store memory|redis] [--log-level LEVEL]
//! ```
//!
//! The facilitator runs in this process exactly as `benches/load.rs` runs it
//! (embedded devnet, memory or Redis store, rate limits off, Prometheus
//! recorder installed), but on a runtime with ONE worker thread named
//! `x402-srv`, and the devnet produces no block during the run. The main
//! thread funds one buyer UTxO per payment, signs every payment, then sends
//! `W + N` valid payments one after the other over ONE keep-alive loopback
//! connection with a plain blocking socket, and checks that each answer is
//! `200` with `"isValid":true`. So every instruction the server spends on
//! the requests is on the server worker thread, and payment preparation and
//! the client are on the main thread. The script runs this twice (two values
//! of `N`) and divides the difference of the server threads' instruction
//! counts by the difference of `N`: fixed costs (startup, first-request
//! initialisation, idle runtime) cancel out.
//!
//! Run without valgrind it also works as a quick smoke check (it exits 1 if
//! any answer is not `isValid:true`).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use x402_facilitator::app::App;
use x402_facilitator::buyer::{Buyer, ChainView};
use x402_facilitator::cardano::{Network, UtxoRef, Value};
use x402_facilitator::config::{Settings, StoreBackend};

const FUND_LOVELACE: u64 = 10_000_000;
const PRICE_LOVELACE: u64 = 2_000_000;
const BUYERS: usize = 32;

struct Options {
    requests: usize,
    warmup: usize,
    store: StoreBackend,
    log_level: String,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        requests: 200,
        warmup: 10,
        store: StoreBackend::Memory,
        log_level: "warn".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--requests" => o.requests = value()?.parse().map_err(|e| format!("{e}"))?,
            "--warmup" => o.warmup = value()?.parse().map_err(|e| format!("{e}"))?,
            "--store" => {
                o.store = match value()?.as_str() {
                    "memory" => StoreBackend::Memory,
                    "redis" => StoreBackend::Redis,
                    other => return Err(format!("unknown store {other}")),
                }
            }
            "--log-level" => o.log_level = value()?,
            // cargo bench passes --bench; ignore it and anything else cargo adds.
            _ => {}
        }
    }
    Ok(o)
}

/// Send one request on `conn` and read one whole answer (Content-Length framed).
fn exchange(conn: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    conn.write_all(request).map_err(|e| e.to_string())?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or("answer without content-length")?;
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]);
                if !head.starts_with("http/1.1 200") || !body.contains("\"isValid\":true") {
                    return Err(format!("not accepted: {head} {body}"));
                }
                return Ok(());
            }
        }
        let n = conn.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn run(o: &Options) -> Result<(), String> {
    let redis = match o.store {
        StoreBackend::Redis => Some(
            support::redis_server::RedisServer::start("benches/verify_callgrind")
                .ok_or("--store redis needs redis-server")?,
        ),
        StoreBackend::Memory => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("x402-srv")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.rate_limit.enabled = false;
    settings.logging.level =
        x402_facilitator::config::LogLevel::parse(&o.log_level).expect("a log level");
    settings.store.backend = o.store;
    // No block during the run: the server thread does request work only.
    settings.chain.devnet.block_time = std::time::Duration::from_millis(3_600_000);
    if let Some(r) = &redis {
        settings.store.redis = r.settings();
    }
    x402_facilitator::telemetry::init(&settings);
    let _ = x402_facilitator::http::metrics::handle();
    let app = rt
        .block_on(App::build(settings))
        .map_err(|e| format!("facilitator did not start: {e}"))?;
    let addr: SocketAddr = app.addr();
    let devnet = app.state().devnet.clone().ok_or("no devnet")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(app.run(async move {
        let _ = rx.await;
    }));

    let seller = support::pay::seller(0x5e);
    let req = support::pay::requirements(&seller, PRICE_LOVELACE, 0);
    let buyers: Vec<Buyer> = (0..BUYERS)
        .map(|i| {
            let mut seed = [0xb7u8; 32];
            seed[0] = i as u8;
            Buyer::from_seed(seed, Network::Devnet)
        })
        .collect();
    let count = o.warmup + o.requests;
    let value = Value::lovelace(FUND_LOVELACE);
    let outputs = (0..count)
        .map(|i| (buyers[i % BUYERS].address_bytes(), value.clone()))
        .collect();
    let id = devnet.fund_many(outputs).map_err(|e| e.to_string())?;
    let params = (*devnet.params()).clone();
    let tip_slot = devnet.current_slot();
    let requests = (0..count)
        .map(|i| {
            let view = ChainView {
                utxos: vec![(UtxoRef::new(id, i as u32), value.clone())],
                params: params.clone(),
                tip_slot,
            };
            let (built, nonce) = buyers[i % BUYERS]
                .pay(&req, &view)
                .map_err(|e| format!("building payment {i}: {e}"))?;
            let body = serde_json::to_vec(&support::pay::body_for(&req, &built.tx, &nonce))
                .map_err(|e| e.to_string())?;
            let mut r = format!(
                "POST /verify HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            Ok(r)
        })
        .collect::<Result<Vec<_>, String>>()?;

    let mut conn = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    conn.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(8192);
    for r in &requests {
        exchange(&mut conn, r, &mut buf)?;
    }
    drop(conn);
    println!(
        "verify_callgrind: {} + {} warm-up /verify accepted ({:?} store, log level {})",
        o.requests, o.warmup, o.store, o.log_level
    );
    let _ = tx.send(());
    let _ = rt.block_on(server);
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|o| run(&o));
    if let Err(e) = result {
        eprintln!("verify_callgrind: {e}");
        std::process::exit(1);
    }
}
