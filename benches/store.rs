//! Cost of the store operations on the request path: `reserve` (every
//! /verify) and `claim` (every /settle), for the in-process store and for
//! Redis on a harness-started local redis-server (loopback TCP, AOF off).
//!
//! Run: `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`
//! (the Redis cases are skipped with a notice when redis-server is missing).

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use support::redis_server::RedisServer;
use x402_facilitator::cardano::{TxId, UtxoRef};
use x402_facilitator::store::memory::MemoryStore;
use x402_facilitator::store::redis::RedisStore;
use x402_facilitator::store::{DynStore, Schedule, SettlementRecord, SettlementState};

const TTL: Duration = Duration::from_secs(120);
const RETENTION: Duration = Duration::from_secs(86_400);
/// Reservation owners cycle through this many ids: the first pass creates
/// reservations, later passes refresh them (the same script path and cost).
const POOL: u64 = 100_000;

fn txid(n: u64) -> TxId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    TxId(b)
}

fn inputs(n: u64) -> [UtxoRef; 2] {
    let mut b = [0xeeu8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    [UtxoRef::new(TxId(b), 0), UtxoRef::new(TxId(b), 1)]
}

/// A record of realistic size (about 1.3 KB of JSON with a small transaction).
fn template() -> SettlementRecord {
    SettlementRecord {
        tx_id: txid(0),
        state: SettlementState::Claimed,
        attempt: "0b6f1f3c-3b0e-4d7c-9a51-6f1de0d7a0c4".into(),
        network: "cardano:preprod".into(),
        payer: "addr_test1qz2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzer3n0d3vllmyqwsx5wktcd8cc3sq835lu7drv2xwl2wywfgs68faae".into(),
        pay_to: "addr_test1qpw0djgj0x59ngrjvqthn7enhvruxnsavsw5th63la3mjel3tkc974sr23jmlzgq5zda4gtv8k9cy38756r9y3qgmkqqjz6aa7".into(),
        asset: "lovelace".into(),
        amount: "10000000".into(),
        requirements_digest: "9f".repeat(32),
        required_confirmations: 1,
        inputs: inputs(0).to_vec(),
        ttl_slot: Some(90_000_000),
        created_at: 1_763_900_000_000,
        updated_at: 1_763_900_000_000,
        submitted_at: None,
        confirmed_at: None,
        confirmations: None,
        block_hash: None,
        block_height: None,
        error: None,
        submissions: 0,
        expires_at: 1_763_907_200_000,
        tx_cbor_b64: "hKQAgYJYIA".repeat(60),
        delivered_at: None,
        delivery_key: None,
        logical_key: None,
        last_submit_at: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Reserve two inputs per call: one call at a time (latency), and 64 at once
/// (throughput over the one multiplexed connection). The timed loop runs
/// inside one task, so the figures are the store's cost, not the cost of
/// entering the runtime for every iteration.
fn bench_reserve(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &DynStore) {
    let mut g = c.benchmark_group("store/reserve");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new(name, "2 inputs"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = Arc::clone(store);
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let n = i % POOL;
                    store.reserve(&inputs(n), &txid(n), TTL).await.unwrap();
                }
                start.elapsed()
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("store/reserve_x64_concurrent");
    g.throughput(Throughput::Elements(64));
    g.bench_function(BenchmarkId::new(name, "2 inputs each"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let store = Arc::clone(store);
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let base = (i * 64) % POOL;
                    let calls = (base..base + 64).map(|n| {
                        let store = Arc::clone(&store);
                        async move { store.reserve(&inputs(n), &txid(n), TTL).await.unwrap() }
                    });
                    futures::future::join_all(calls).await;
                }
                start.elapsed()
            }
        })
    });
    g.finish();
}

/// Every claim creates a new record. Each sample starts from an empty journal
/// (`reset`, untimed) so memory does not grow across the run.
fn bench_claim<F, Fut>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, reset: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = DynStore>,
{
    let mut g = c.benchmark_group("store/claim");
    g.throughput(Throughput::Elements(1));
    let template = template();
    g.bench_function(BenchmarkId::new(name, "new record"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (template, fresh) = (template.clone(), reset());
            async move {
                let store = fresh.await;
                let start = Instant::now();
                for i in 0..iters {
                    let mut r = template.clone();
                    r.tx_id = txid(i);
                    store
                        .claim(&r, RETENTION, RETENTION, Schedule::At(r.updated_at + 2_000))
                        .await
                        .unwrap();
                }
                start.elapsed()
            }
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let rt = runtime();

    let memory: DynStore = Arc::new(MemoryStore::new());
    bench_reserve(c, &rt, "memory", &memory);
    bench_claim(c, &rt, "memory", || async {
        Arc::new(MemoryStore::new()) as DynStore
    });

    let Some(server) = RedisServer::start("benches/store redis") else {
        return;
    };
    let settings = server.settings();
    let redis: DynStore = Arc::new(rt.block_on(RedisStore::connect(&settings)).unwrap());
    bench_reserve(c, &rt, "redis", &redis);
    let server = Arc::new(server);
    bench_claim(c, &rt, "redis", || {
        let (server, redis) = (Arc::clone(&server), Arc::clone(&redis));
        async move {
            redis::cmd("FLUSHDB")
                .exec(&mut server.connection())
                .unwrap();
            redis
        }
    });
}

criterion_group!(store, benches);
criterion_main!(store);
