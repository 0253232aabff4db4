//! Load driver: many distinct, valid, signed payments fired at `POST /verify`
//! (or `/settle`) over loopback by `C` concurrent keep-alive connections,
//! measuring what a resource server would see.
//!
//! ```text
//! cargo bench --bench load -- [--requests N] [--concurrency C]
//!     [--route verify|settle] [--store memory|redis] [--url http://127.0.0.1:PORT]
//!     [--duration SECS] [--warmup N] [--confirmations K] [--client-threads T] [--server-threads T]
//!     [--chain devnet|blockfrost] [--bf-rate R] [--bf-burst B] [--block-time-ms MS]
//!     [--rate R] [--run-seconds S] [--cycle]
//! ```
//!
//! By default it starts the real facilitator in this process on
//! 127.0.0.1:0 (embedded devnet, memory store, rate limits off, log level
//! warn, Prometheus recorder installed as in production), funds one buyer
//! UTxO per payment with a single `Devnet::fund_many` block, builds and signs
//! every payment before the clock starts, then measures. `--store redis`
//! starts a private redis-server (own port, `requirepass`, no persistence)
//! and uses the Redis store. `--url` targets a facilitator that is already
//! running on a loopback address and funds buyers through its devnet faucet.
//!
//! A payment that is not accepted (`isValid:true`, or `success:true` for
//! settle) is an error: it is counted by status and reason, and the first
//! message of each kind is printed. The process exits 1 if there was any.
//!
//! The server and the client run on separate tokio runtimes (threads named
//! `x402-srv` and `load-client`), so the CPU each one burnt is read per
//! thread from `/proc/self/task/*/schedstat` and reported per request.
//!
//! `--chain blockfrost` puts a Blockfrost-compatible HTTP API between the
//! facilitator and the ledger: a second in-process app (its own runtime,
//! threads `devnet-api`) runs the embedded devnet and serves its API, and the
//! measured facilitator uses the Blockfrost client against it
//! (`chain.blockfrost.url`), with the client-side limiter at `--bf-rate`
//! requests per second and burst `--bf-burst` (default: off). The devnet API
//! counts every request it serves, so the run reports the upstream calls per
//! request, by endpoint. Each buyer UTxO is then funded by its own faucet
//! transaction, as a wallet would be, so that a lookup reads one small
//! transaction.
//!
//! `--rate R` fixes the arrival rate (open loop): request `i` is due at
//! `i / R` seconds after the start and is sent by the first of the `C`
//! connections that is free. A request that waited for a free connection is
//! timed from when it was due (so a slow server cannot hide its stalls by
//! slowing the client down); one sent on time is timed from when it left.
//!
//! `--run-seconds S` makes a timed run: the measured phase lasts `S` seconds
//! and `--requests` is only the pool of prepared payments. With `--cycle`
//! (`/verify` only) the pool is reused round robin, as `wrk` does with a
//! fixed set of bodies: a verify is read-only, so the hundredth verify of a
//! payment costs what the first did. Without `--cycle` a pool used up before
//! `S` seconds ends the run early and counts as a failure.
//!
//! The last line is a `summary` of `key=value` pairs for scripts
//! (`scripts/bench-series.sh`).
//!
//! Run without `--bench` (`cargo test --bench load`), the defaults shrink to
//! a smoke run of 40 requests.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use support::redis_server::RedisServer;
use x402_facilitator::app::App;
use x402_facilitator::buyer::{self, Buyer, ChainView};
use x402_facilitator::cardano::{Network, ProtocolParams, UtxoRef, Value};
use x402_facilitator::config::{Settings, StoreBackend};
use x402_facilitator::protocol::types::PaymentRequirementsV2;

/// Lovelace in each funded buyer UTxO and the price of each payment.
const FUND_LOVELACE: u64 = 10_000_000;
const PRICE_LOVELACE: u64 = 2_000_000;
/// Buyer keys; payments take turns among them (each spends its own UTxO).
const BUYERS: usize = 32;
const SERVER_THREAD: &str = "x402-srv";
const UPSTREAM_THREAD: &str = "devnet-api";
const CLIENT_THREAD: &str = "load-client";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Verify,
    Settle,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Verify => "/verify",
            Route::Settle => "/settle",
        }
    }
}

#[derive(Debug)]
struct Options {
    requests: usize,
    concurrency: usize,
    route: Route,
    store: StoreBackend,
    store_given: bool,
    url: Option<String>,
    duration: Duration,
    warmup: Option<usize>,
    confirmations: i64,
    client_threads: usize,
    /// Worker threads of the in-process facilitator's runtime.
    server_threads: usize,
    blockfrost: bool,
    /// Limiter rate for the Blockfrost client (0 = off).
    bf_rate: f64,
    bf_burst: u32,
    block_time_ms: Option<u64>,
    /// Fixed arrival rate in requests per second (0 = closed loop).
    rate: f64,
    /// Timed run of this length (`--requests` is then the payment pool).
    run_seconds: Option<Duration>,
    /// Reuse the payment pool round robin (verify only).
    cycle: bool,
}

const USAGE: &str = "usage: cargo bench --bench load -- [--requests N] [--concurrency C] \
[--route verify|settle] [--store memory|redis] [--url http://127.0.0.1:PORT] [--duration SECS] \
[--warmup N] [--confirmations K] [--client-threads T] [--chain devnet|blockfrost] \
[--bf-rate R] [--bf-burst B] [--block-time-ms MS] [--rate R] [--run-seconds S] [--cycle]";

fn parse_args(args: &[String]) -> Result<Options, String> {
    let bench_mode = args.iter().any(|a| a == "--bench");
    let mut o = Options {
        requests: if bench_mode { 2_000 } else { 40 },
        concurrency: if bench_mode { 32 } else { 4 },
        route: Route::Verify,
        store: StoreBackend::Memory,
        store_given: false,
        url: None,
        duration: Duration::from_secs(120),
        warmup: None,
        confirmations: -1,
        client_threads: 1,
        server_threads: 2,
        blockfrost: false,
        bf_rate: 0.0,
        bf_burst: 500,
        block_time_ms: None,
        rate: 0.0,
        run_seconds: None,
        cycle: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |v: String| -> Result<usize, String> {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: {v:?} is not a non-negative integer"))
        };
        match flag {
            "--bench" => {}
            "--requests" | "-n" => o.requests = number(value()?)?,
            "--concurrency" | "-c" => o.concurrency = number(value()?)?,
            "--route" => {
                o.route = match value()?.as_str() {
                    "verify" => Route::Verify,
                    "settle" => Route::Settle,
                    v => return Err(format!("--route: {v:?} is not verify or settle")),
                }
            }
            "--store" => {
                o.store_given = true;
                o.store = match value()?.as_str() {
                    "memory" => StoreBackend::Memory,
                    "redis" => StoreBackend::Redis,
                    v => return Err(format!("--store: {v:?} is not memory or redis")),
                }
            }
            "--url" => o.url = Some(value()?),
            "--duration" => o.duration = Duration::from_secs(number(value()?)? as u64),
            "--warmup" => o.warmup = Some(number(value()?)?),
            "--confirmations" => {
                let v = value()?;
                o.confirmations = v
                    .parse()
                    .map_err(|_| format!("--confirmations: {v:?} is not an integer"))?;
            }
            "--client-threads" => o.client_threads = number(value()?)?,
            "--server-threads" => o.server_threads = number(value()?)?,
            "--chain" => {
                o.blockfrost = match value()?.as_str() {
                    "devnet" => false,
                    "blockfrost" => true,
                    v => return Err(format!("--chain: {v:?} is not devnet or blockfrost")),
                }
            }
            "--bf-rate" => {
                let v = value()?;
                o.bf_rate = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| format!("--bf-rate: {v:?} is not a non-negative number"))?;
            }
            "--bf-burst" => o.bf_burst = number(value()?)? as u32,
            "--block-time-ms" => o.block_time_ms = Some(number(value()?)? as u64),
            "--rate" => {
                let v = value()?;
                o.rate = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| format!("--rate: {v:?} is not a non-negative number"))?;
            }
            "--run-seconds" => {
                let secs = number(value()?)?;
                if secs == 0 {
                    return Err("--run-seconds must be positive".into());
                }
                o.run_seconds = Some(Duration::from_secs(secs as u64));
            }
            "--cycle" => o.cycle = true,
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.requests == 0 || o.concurrency == 0 || o.client_threads == 0 || o.server_threads == 0 {
        return Err("--requests, --concurrency and --client-threads must be positive".into());
    }
    if o.duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    if !(-1..=20).contains(&o.confirmations) {
        return Err("--confirmations must be from -1 to 20".into());
    }
    if o.url.is_some() && o.store_given {
        return Err("--store applies to the in-process facilitator only, not to --url".into());
    }
    if o.cycle && (o.route != Route::Verify || o.run_seconds.is_none()) {
        return Err("--cycle applies to timed (--run-seconds) /verify runs only".into());
    }
    if o.url.is_some() && o.blockfrost {
        return Err("--chain blockfrost applies to the in-process facilitator only".into());
    }
    Ok(o)
}

/// Only loopback targets: `http://<127.x.y.z | [::1] | localhost>[:port]`.
fn loopback_base(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url:?}: only http:// loopback URLs are allowed"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "--url {url:?}: host {host:?} is not a loopback address; this driver only targets this machine"
        ));
    }
    Ok(format!("http://{authority}"))
}

/// Total CPU time (ns) of this process's threads whose name starts with `prefix`.
fn thread_cpu_ns(prefix: &str) -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = entry.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        // A thread may exit between listing and reading: it then counts nothing.
        if let Ok(s) = std::fs::read_to_string(dir.join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}

/// used_cpu_sys + used_cpu_user of a redis-server, in ns.
fn redis_cpu_ns(server: &RedisServer) -> Option<u64> {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query(&mut server.connection())
        .ok()?;
    let secs: f64 = info
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "used_cpu_sys" || *k == "used_cpu_user")
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum();
    Some((secs * 1e9) as u64)
}

/// Calls per command of a redis-server (`INFO commandstats`), e.g. `evalsha` -> 2000.
fn redis_calls(server: &RedisServer) -> Option<BTreeMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.connection())
        .ok()?;
    Some(
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| {
                let (name, stats) = l.split_once(':')?;
                let calls = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))?
                    .parse()
                    .ok()?;
                Some((name.to_owned(), calls))
            })
            .collect(),
    )
}

#[derive(Default)]
struct CpuSnapshot {
    server: Option<u64>,
    client: Option<u64>,
    redis: Option<u64>,
    redis_calls: Option<BTreeMap<String, u64>>,
    /// The machine's (steal, all) clock ticks from /proc/stat.
    machine: Option<(u64, u64)>,
}

/// (steal, total) ticks of the whole machine since boot, from the `cpu`
/// line of /proc/stat. On a virtual machine, steal is the time the host ran
/// something else while this guest wanted its CPU: the share of the run it
/// takes says how far the wall-clock figures of that run can be trusted.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]:
    // guest time is already counted in user and nice.
    let total = fields.iter().take(8).sum();
    Some((*fields.get(7)?, total))
}

/// Steal as a percentage of all the machine's ticks between two snapshots.
fn steal_pct(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> String {
    match (a, b) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
            format!(
                "{:.1}",
                100.0 * s1.saturating_sub(s0) as f64 / (t1 - t0) as f64
            )
        }
        _ => "-".into(),
    }
}

fn cpu_snapshot(in_process: bool, redis: Option<&RedisServer>) -> CpuSnapshot {
    CpuSnapshot {
        server: in_process.then(|| thread_cpu_ns(SERVER_THREAD)).flatten(),
        client: thread_cpu_ns(CLIENT_THREAD),
        redis: redis.and_then(redis_cpu_ns),
        redis_calls: redis.and_then(redis_calls),
        machine: machine_ticks(),
    }
}

/// Where the payments go and how buyers get funded.
struct Target {
    base: String,
    /// Funding hook of the in-process facilitator (`None` with `--url`).
    devnet: Option<Arc<x402_facilitator::chain::devnet::Devnet>>,
    /// The devnet sits behind its Blockfrost-compatible API (`--chain blockfrost`).
    upstream: bool,
}

/// Fund `count` buyer UTxOs and build one signed payment on each.
async fn build_payments(
    target: &Target,
    client: &reqwest::Client,
    buyers: &[Buyer],
    req: &PaymentRequirementsV2,
    count: usize,
) -> Result<Vec<Bytes>, String> {
    let value = Value::lovelace(FUND_LOVELACE);
    let (utxos, params, tip_slot): (Vec<UtxoRef>, ProtocolParams, u64) = match &target.devnet {
        Some(devnet) if target.upstream => {
            // One faucet transaction per UTxO: a lookup reads one small transaction.
            let utxos = (0..count)
                .map(|i| {
                    devnet
                        .fund_bytes(buyers[i % buyers.len()].address_bytes(), value.clone())
                        .map_err(|e| format!("Devnet::fund_bytes: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (utxos, (*devnet.params()).clone(), devnet.current_slot())
        }
        Some(devnet) => {
            // An input index is 16 bits on the wire: one faucet transaction
            // per 65,536 outputs.
            const PER_TX: usize = 1 << 16;
            let mut utxos = Vec::with_capacity(count);
            for start in (0..count).step_by(PER_TX) {
                let end = (start + PER_TX).min(count);
                let outputs = (start..end)
                    .map(|i| (buyers[i % buyers.len()].address_bytes(), value.clone()))
                    .collect();
                let id = devnet
                    .fund_many(outputs)
                    .map_err(|e| format!("Devnet::fund_many: {e}"))?;
                utxos.extend((0..end - start).map(|i| UtxoRef::new(id, i as u32)));
            }
            (utxos, (*devnet.params()).clone(), devnet.current_slot())
        }
        None => {
            // One faucet call (and one devnet block) per UTxO, a few at a time.
            let mut funded: Vec<(usize, UtxoRef)> = futures::stream::iter((0..count).map(|i| {
                let address = buyers[i % buyers.len()].address();
                async move {
                    buyer::faucet(client, &target.base, &address, FUND_LOVELACE, &[])
                        .await
                        .map(|r| (i, r))
                }
            }))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("faucet at {}: {e}", target.base))?;
            funded.sort_by_key(|(i, _)| *i);
            let view = buyer::chain_view(
                client,
                &format!("{}/devnet/api/v0", target.base),
                &buyers[0].address(),
            )
            .await
            .map_err(|e| format!("chain view: {e}"))?;
            (
                funded.into_iter().map(|(_, r)| r).collect(),
                view.params,
                view.tip_slot,
            )
        }
    };
    utxos
        .into_iter()
        .enumerate()
        .map(|(i, utxo)| {
            let view = ChainView {
                utxos: vec![(utxo, value.clone())],
                params: params.clone(),
                tip_slot,
            };
            let (built, nonce) = buyers[i % buyers.len()]
                .pay(req, &view)
                .map_err(|e| format!("building payment {i}: {e}"))?;
            let body = support::pay::body_for(req, &built.tx, &nonce);
            serde_json::to_vec(&body)
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    ok: u64,
    /// Kind of failure -> (count, first message).
    errors: BTreeMap<String, (u64, String)>,
    /// For settle: `extensions.status` of the successes.
    ok_detail: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_ns.extend(other.latencies_ns);
        self.ok += other.ok;
        for (k, (n, m)) in other.errors {
            self.errors.entry(k).or_insert((0, m)).0 += n;
        }
        for (k, n) in other.ok_detail {
            *self.ok_detail.entry(k).or_default() += n;
        }
    }

    fn error(&mut self, kind: String, message: String) {
        self.errors.entry(kind).or_insert((0, message)).0 += 1;
    }
}

/// Classify one answer: `Ok(detail)` when the payment was accepted.
fn judge(route: Route, status: u16, body: &[u8]) -> Result<String, (String, String)> {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let short = || {
        let mut s = String::from_utf8_lossy(body).into_owned();
        s.truncate(300);
        s
    };
    if status != 200 {
        let reason = text("invalidReason")
            .or_else(|| text("errorReason"))
            .or_else(|| {
                json.pointer("/error/code")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "-".into());
        return Err((format!("HTTP {status} {reason}"), short()));
    }
    match route {
        Route::Verify if json.get("isValid") == Some(&serde_json::Value::Bool(true)) => {
            Ok(String::new())
        }
        Route::Verify => Err((
            format!(
                "HTTP 200 isValid:false {}",
                text("invalidReason").unwrap_or_else(|| "-".into())
            ),
            text("invalidMessage").unwrap_or_else(short),
        )),
        Route::Settle if json.get("success") == Some(&serde_json::Value::Bool(true)) => Ok(json
            .pointer("/extensions/status")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()),
        Route::Settle => Err((
            format!(
                "HTTP 200 success:false {}",
                text("errorReason").unwrap_or_else(|| "-".into())
            ),
            text("errorMessage").unwrap_or_else(short),
        )),
    }
}

/// How the measured phase is paced and when it ends.
#[derive(Clone, Copy)]
struct Pace {
    /// Fixed arrival rate in requests per second (0 = closed loop).
    rate: f64,
    /// Requests to send at most (may exceed the pool when cycling).
    count: usize,
    /// Reuse the pool round robin.
    cycle: bool,
    /// The phase ends at this time limit.
    limit: Duration,
}

/// Fire `bodies` at `url` from `concurrency` workers until `pace.count` are
/// sent or the time limit passes; returns the tally, the wall time and how
/// many were sent.
async fn fire(
    client: reqwest::Client,
    url: String,
    route: Route,
    bodies: Arc<Vec<Bytes>>,
    concurrency: usize,
    pace: Pace,
) -> (Tally, Duration, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + pace.limit;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, bodies, next) =
                (client.clone(), url.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut t = Tally {
                    latencies_ns: Vec::with_capacity(pace.count.min(1 << 20) / concurrency + 1),
                    ..Tally::default()
                };
                loop {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= pace.count {
                        break;
                    }
                    let body = if pace.cycle && !bodies.is_empty() {
                        bodies.get(i % bodies.len())
                    } else {
                        bodies.get(i)
                    };
                    let Some(body) = body else { break };
                    // With a fixed rate: wait until the request is due; if it
                    // is already late (every connection was busy), time it
                    // from when it was due.
                    let mut timed_from = None;
                    if pace.rate > 0.0 {
                        let due = started + Duration::from_secs_f64(i as f64 / pace.rate);
                        if due >= deadline {
                            break;
                        }
                        if Instant::now() < due {
                            tokio::time::sleep_until(due.into()).await;
                        } else {
                            timed_from = Some(due);
                        }
                    }
                    let sent = timed_from.unwrap_or_else(Instant::now);
                    let answer = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let answer = match answer {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            r.bytes().await.map(|b| (status, b))
                        }
                        Err(e) => Err(e),
                    };
                    let elapsed = sent.elapsed();
                    t.latencies_ns.push(elapsed.as_nanos() as u64);
                    match answer {
                        Ok((status, b)) => match judge(route, status, &b) {
                            Ok(detail) => {
                                t.ok += 1;
                                if !detail.is_empty() {
                                    *t.ok_detail.entry(detail).or_default() += 1;
                                }
                            }
                            Err((kind, message)) => t.error(kind, message),
                        },
                        Err(e) => {
                            let kind = if e.is_timeout() {
                                "transport timeout"
                            } else if e.is_connect() {
                                "transport connect"
                            } else {
                                "transport error"
                            };
                            t.error(kind.into(), e.to_string())
                        }
                    }
                }
                t
            })
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        match w.await {
            Ok(t) => total.merge(t),
            Err(e) => total.error("worker panicked".into(), e.to_string()),
        }
    }
    let wall = started.elapsed();
    let sent = total.latencies_ns.len();
    (total, wall, sent)
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match run(&opts) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    }
}

/// The whole run; `Ok(false)` when some request failed.
fn run(o: &Options) -> Result<bool, String> {
    let in_process = o.url.is_none();
    let redis = if in_process && o.store == StoreBackend::Redis {
        Some(
            RedisServer::start("benches/load --store redis")
                .ok_or("--store redis needs redis-server (install it or set REDIS_SERVER_BIN)")?,
        )
    } else {
        None
    };

    // The facilitator, on its own runtime (by default two workers: the machine's cores).
    let server_rt = if in_process {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(o.server_threads)
                .thread_name(SERVER_THREAD)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    // With --chain blockfrost: the upstream (devnet + its Blockfrost API), on its own runtime.
    let upstream_rt = if in_process && o.blockfrost {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(UPSTREAM_THREAD)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let mut upstream_shutdown = None;
    let upstream = match &upstream_rt {
        Some(rt) => {
            let mut settings = Settings::default();
            settings.server.host = "127.0.0.1".into();
            settings.server.port = 0;
            settings.rate_limit.enabled = false;
            settings.logging.level = x402_facilitator::config::LogLevel::parse("warn").unwrap();
            if let Some(ms) = o.block_time_ms {
                settings.chain.devnet.block_time = std::time::Duration::from_millis(ms);
            }
            let app = rt
                .block_on(App::build(settings))
                .map_err(|e| format!("upstream devnet did not start: {e}"))?;
            let url = format!("http://{}/devnet/api/v0", app.addr());
            let devnet = app
                .state()
                .devnet
                .clone()
                .ok_or("the upstream app has no devnet")?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            upstream_shutdown = Some(tx);
            rt.spawn(app.run(async move {
                let _ = rx.await;
            }));
            Some((url, devnet))
        }
        None => None,
    };
    let mut shutdown = None;
    let mut server_task = None;
    let target = match (&server_rt, &o.url) {
        (Some(rt), _) => {
            let mut settings = Settings::default();
            settings.server.host = "127.0.0.1".into();
            settings.server.port = 0;
            settings.rate_limit.enabled = false;
            settings.logging.level = x402_facilitator::config::LogLevel::parse("warn").unwrap();
            settings.store.backend = o.store;
            // `l1Confirmations: -1` (the default here) is refused unless the
            // operator opts in to the mempool policy.
            settings.settlement.accept_mempool = o.confirmations < 0;
            settings.server.max_concurrent_requests = settings
                .server
                .max_concurrent_requests
                .max(o.concurrency * 2);
            if let Some(r) = &redis {
                settings.store.redis = r.settings();
            }
            if let Some(ms) = o.block_time_ms {
                settings.chain.devnet.block_time = std::time::Duration::from_millis(ms);
            }
            if let Some((url, _)) = &upstream {
                settings.chain.blockfrost.url = Some(url.clone());
                settings.chain.blockfrost.rate_limit.per_second = o.bf_rate;
                settings.chain.blockfrost.rate_limit.burst = o.bf_burst.max(1);
            }
            let problems = settings.validate();
            if !problems.is_empty() {
                return Err(format!("settings: {problems:?}"));
            }
            x402_facilitator::telemetry::init(&settings);
            // Production scrapes /metrics, so the recorder is live there: make it live here too.
            let _ = x402_facilitator::http::metrics::handle();
            let app = rt
                .block_on(App::build(settings))
                .map_err(|e| format!("facilitator did not start: {e}"))?;
            let addr: SocketAddr = app.addr();
            let devnet = match &upstream {
                Some((_, d)) => Some(d.clone()),
                None => app.state().devnet.clone(),
            };
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            shutdown = Some(tx);
            server_task = Some(rt.spawn(app.run(async move {
                let _ = rx.await;
            })));
            Target {
                base: format!("http://{addr}"),
                devnet,
                upstream: upstream.is_some(),
            }
        }
        (None, Some(url)) => Target {
            base: loopback_base(url)?,
            devnet: None,
            upstream: false,
        },
        (None, None) => unreachable!("either in process or --url"),
    };

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.client_threads)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        // Below the server's default keep-alive (`server.keepAliveTimeoutMs`,
        // 5 s): a connection the pool keeps longer may be closed by the
        // server just as a request is put on it, which an open-loop run at a
        // low rate (idle connections) hits about once in 60,000 requests.
        .pool_idle_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| e.to_string())?;

    let seller = support::pay::seller(0x5e);
    let req = support::pay::requirements(&seller, PRICE_LOVELACE, o.confirmations);
    let buyers: Vec<Buyer> = (0..BUYERS)
        .map(|i| {
            let mut seed = [0xb7u8; 32];
            seed[0] = i as u8;
            Buyer::from_seed(seed, Network::Devnet)
        })
        .collect();
    let warmup = o.warmup.unwrap_or(o.concurrency);
    let profile = if cfg!(debug_assertions) {
        "dev (UNOPTIMISED: numbers are not representative; use cargo bench)"
    } else {
        "release/bench (optimised)"
    };
    println!(
        "x402 load: POST {} x {} (+{} warm-up), concurrency {}, {}",
        o.route.path(),
        o.requests,
        warmup,
        o.concurrency,
        match (&o.url, o.store) {
            (Some(_), _) => format!("external facilitator at {}", target.base),
            (None, StoreBackend::Memory) => format!(
                "in-process facilitator at {} (embedded devnet, memory store)",
                target.base
            ),
            (None, StoreBackend::Redis) => format!(
                "in-process facilitator at {} (embedded devnet, redis store on 127.0.0.1:{})",
                target.base,
                redis.as_ref().map(|r| r.port()).unwrap_or(0)
            ),
        }
    );
    println!(
        "profile {profile}; l1Confirmations {}; time limit {} s; client threads {}",
        o.confirmations,
        o.duration.as_secs(),
        o.client_threads
    );
    if let Some((url, _)) = &upstream {
        println!(
            "chain: Blockfrost client -> {url} (devnet in a second in-process app); limiter {}",
            if o.bf_rate > 0.0 {
                format!("{} req/s, burst {}", o.bf_rate, o.bf_burst)
            } else {
                "off".into()
            }
        );
    }

    let prep = Instant::now();
    let bodies = client_rt.block_on(build_payments(
        &target,
        &client,
        &buyers,
        &req,
        warmup + o.requests,
    ))?;
    println!(
        "prepared {} signed payments (one funded UTxO each, {}) in {:.2} s",
        bodies.len(),
        match (&target.devnet, target.upstream) {
            (Some(_), true) => "one faucet transaction each",
            (Some(_), false) => "one Devnet::fund_many block",
            (None, _) => "faucet",
        },
        prep.elapsed().as_secs_f64()
    );
    let (warm, measured) = bodies.split_at(warmup);
    let url = format!("{}{}", target.base, o.route.path());

    let mut all_ok = true;
    if warmup > 0 {
        let (t, _, sent) = client_rt.block_on(fire(
            client.clone(),
            url.clone(),
            o.route,
            Arc::new(warm.to_vec()),
            o.concurrency,
            Pace {
                rate: 0.0,
                count: warm.len(),
                cycle: false,
                limit: o.duration,
            },
        ));
        if !t.errors.is_empty() || t.ok as usize != sent {
            all_ok = false;
            println!("warm-up: {} of {sent} accepted; errors:", t.ok);
            print_errors(&t);
        }
    }

    let calls_before = upstream.as_ref().map(|(_, d)| d.api_calls());
    let before = cpu_snapshot(in_process, redis.as_ref());
    let pace = Pace {
        rate: o.rate,
        count: if o.cycle { usize::MAX } else { measured.len() },
        cycle: o.cycle,
        limit: o.run_seconds.unwrap_or(o.duration),
    };
    let (tally, wall, sent) = client_rt.block_on(fire(
        client.clone(),
        url,
        o.route,
        Arc::new(measured.to_vec()),
        o.concurrency,
        pace,
    ));
    let after = cpu_snapshot(in_process, redis.as_ref());
    let calls_after = upstream.as_ref().map(|(_, d)| d.api_calls());

    let mut lat = tally.latencies_ns.clone();
    lat.sort_unstable();
    let answered = lat.len();
    let errors: u64 = tally.errors.values().map(|(n, _)| n).sum();
    let secs = wall.as_secs_f64();
    println!("-- result");
    // A timed run without --cycle fails when it used up its pool early.
    let pool_used_up = o.run_seconds.is_some() && !o.cycle && sent >= measured.len();
    match o.run_seconds {
        Some(s) if o.cycle => println!(
            "requests    {sent} sent in a timed run of {} s (pool of {} payments cycled), {} accepted, {errors} errors",
            s.as_secs(),
            measured.len(),
            tally.ok
        ),
        Some(s) => println!(
            "requests    {sent} sent in a timed run of {} s (pool of {} payments{}), {} accepted, {errors} errors",
            s.as_secs(),
            measured.len(),
            if pool_used_up {
                ": USED UP before the end, raise --requests"
            } else {
                ""
            },
            tally.ok
        ),
        None => println!(
            "requests    {sent} sent, {answered} answered, {} accepted, {errors} errors, {} not sent (time limit)",
            tally.ok,
            o.requests - sent
        ),
    }
    println!("wall time   {secs:.3} s");
    if o.rate > 0.0 {
        println!(
            "rate        {:.1} req/s offered, {:.1} req/s achieved (open loop, latency from when each request was due if it waited for a connection)",
            o.rate,
            answered as f64 / secs
        );
    }
    println!(
        "throughput  {:.1} req/s (accepted: {:.1}/s)",
        answered as f64 / secs,
        tally.ok as f64 / secs
    );
    if answered > 0 {
        let mean = lat.iter().sum::<u64>() / answered as u64;
        println!(
            "latency     p50 {}  p90 {}  p99 {}  max {}  (mean {})",
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 90.0)),
            ms(percentile(&lat, 99.0)),
            ms(*lat.last().unwrap_or(&0)),
            ms(mean)
        );
    }
    let per_us = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if answered > 0 => {
            format!("{:.1}", b.saturating_sub(a) as f64 / 1e3 / answered as f64)
        }
        _ => "-".into(),
    };
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if answered > 0 => {
            let d = b.saturating_sub(a);
            format!(
                "{:.3} s ({:.0} us/req)",
                d as f64 / 1e9,
                d as f64 / 1e3 / answered as f64
            )
        }
        _ => "-".into(),
    };
    println!(
        "cpu         server {}; client {}; redis-server {}; host steal {} %",
        per(before.server, after.server),
        per(before.client, after.client),
        per(before.redis, after.redis),
        steal_pct(before.machine, after.machine)
    );
    if let (Some(a), Some(b)) = (&before.redis_calls, &after.redis_calls)
        && answered > 0
    {
        // Every store operation is one Lua script call (EVALSHA, or EVAL
        // after a NOSCRIPT), so those are the round trips; commandstats also
        // counts the commands the scripts run. The snapshots' own INFO and
        // AUTH calls are not the facilitator's.
        let per_req = |k: &str| {
            let calls = |m: &BTreeMap<String, u64>| m.get(k).copied().unwrap_or(0);
            calls(b).saturating_sub(calls(a)) as f64 / answered as f64
        };
        let inner: Vec<String> = b
            .keys()
            .filter(|k| {
                !matches!(
                    k.as_str(),
                    "info" | "auth" | "hello" | "evalsha" | "eval" | "client|setinfo"
                )
            })
            .filter(|k| per_req(k) > 0.0)
            .map(|k| format!("{k} {:.2}", per_req(k)))
            .collect();
        println!(
            "redis       round trips {:.2}/req (evalsha {:.2}, eval {:.2}); run by the scripts: {}",
            per_req("evalsha") + per_req("eval"),
            per_req("evalsha"),
            per_req("eval"),
            inner.join(", ")
        );
    }
    if let (Some(a), Some(b)) = (&calls_before, &calls_after)
        && answered > 0
    {
        // Includes the background tip/parameter refreshes during the run.
        let total: u64 = b.values().sum::<u64>() - a.values().sum::<u64>();
        let by: Vec<String> = b
            .iter()
            .map(|(k, n)| (k, n - a.get(k).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {:.3}", n as f64 / answered as f64))
            .collect();
        println!(
            "upstream    {total} Blockfrost API calls, {:.3}/req ({:.3}/accepted): {}",
            total as f64 / answered as f64,
            if tally.ok > 0 {
                total as f64 / tally.ok as f64
            } else {
                0.0
            },
            by.join(", ")
        );
    }
    if !tally.ok_detail.is_empty() {
        let d: Vec<String> = tally
            .ok_detail
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("accepted as {}", d.join(", "));
    }
    if tally.errors.is_empty() {
        println!("errors      none");
    } else {
        all_ok = false;
        print_errors(&tally);
    }
    if pool_used_up || (o.run_seconds.is_none() && sent < o.requests) {
        all_ok = false;
    }
    // One line for scripts.
    println!(
        "summary route={} store={} chain={} concurrency={} rate={} answered={answered} accepted={} errors={errors} wall_s={secs:.3} rps={:.1} accepted_rps={:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3} server_us={} client_us={} redis_us={} steal_pct={} ok={}",
        o.route.path().trim_start_matches('/'),
        match (&o.url, o.store) {
            (Some(_), _) => "external",
            (None, StoreBackend::Memory) => "memory",
            (None, StoreBackend::Redis) => "redis",
        },
        if o.blockfrost { "blockfrost" } else { "devnet" },
        o.concurrency,
        o.rate,
        tally.ok,
        answered as f64 / secs,
        tally.ok as f64 / secs,
        percentile(&lat, 50.0) as f64 / 1e6,
        percentile(&lat, 90.0) as f64 / 1e6,
        percentile(&lat, 99.0) as f64 / 1e6,
        lat.last().copied().unwrap_or(0) as f64 / 1e6,
        per_us(before.server, after.server),
        per_us(before.client, after.client),
        per_us(before.redis, after.redis),
        steal_pct(before.machine, after.machine),
        all_ok
    );

    if let (Some(rt), Some(tx), Some(task)) = (&server_rt, shutdown, server_task) {
        let _ = tx.send(());
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), task).await });
    }
    drop(client_rt);
    drop(server_rt);
    if let Some(tx) = upstream_shutdown {
        let _ = tx.send(());
    }
    drop(upstream_rt);
    drop(redis);
    Ok(all_ok)
}

fn print_errors(t: &Tally) {
    println!("errors by status/reason:");
    for (kind, (n, first)) in &t.errors {
        println!("  {n:>6}  {kind}  (first: {first})");
    }
}
