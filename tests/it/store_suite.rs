//! One behavioural suite for every `Store`, run against the in-process
//! `MemoryStore` and against `RedisStore` on a real redis-server started by the
//! harness; then the Redis-only properties: atomicity across instances,
//! outage and recovery, AOF durability, Sentinel failover, connection setup.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::redis_server::{self, Options, PASSWORD, RedisServer, SentinelDeployment};
use x402_facilitator::cardano::{TxId, UtxoRef};
use x402_facilitator::chain::DependencyStatus;
use x402_facilitator::config::{RedisSettings, Secret, SentinelSettings};
use x402_facilitator::store::memory::MemoryStore;
use x402_facilitator::store::redis::{RedisStore, RedisStoreOptions};
use x402_facilitator::store::{
    CasOutcome, ClaimOutcome, DynStore, IdempotencyOutcome, ListCursor, ReserveOutcome, Schedule,
    SettlementRecord, SettlementState, Store, StoreError,
};

const LONG: Duration = Duration::from_secs(3600);

fn txid(n: u32) -> TxId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[31] = 0x5a;
    TxId(b)
}

fn utxo(n: u32, ix: u32) -> UtxoRef {
    UtxoRef::new(txid(1_000_000 + n), ix)
}

fn record(n: u32, state: SettlementState, updated_at: i64) -> SettlementRecord {
    SettlementRecord {
        tx_id: txid(n),
        state,
        attempt: format!("attempt-{n}-a"),
        network: "cardano:preprod".into(),
        payer: "addr_test1payer".into(),
        pay_to: "addr_test1seller".into(),
        asset: "lovelace".into(),
        amount: format!("{}", 1_000_000 + n),
        requirements_digest: "ab".repeat(32),
        required_confirmations: 1,
        inputs: vec![utxo(n, 0), utxo(n, 1)],
        ttl_slot: Some(90_000_000),
        created_at: updated_at,
        updated_at,
        submitted_at: None,
        confirmed_at: None,
        confirmations: None,
        block_hash: None,
        block_height: None,
        error: None,
        submissions: 0,
        expires_at: updated_at + 7_200_000,
        tx_cbor_b64: "hKYAgYJYIA".repeat(20),
        delivered_at: None,
        delivery_key: None,
        logical_key: None,
        last_submit_at: None,
    }
}

fn memory() -> DynStore {
    Arc::new(MemoryStore::new())
}

async fn redis_store(server: &RedisServer) -> DynStore {
    Arc::new(RedisStore::connect(&server.settings()).await.unwrap())
}

fn ids(records: &[SettlementRecord]) -> Vec<TxId> {
    records.iter().map(|r| r.tx_id).collect()
}

/// Run each shared test against both stores.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(vec![super::memory()]).await;
                }
            )*
        }
        mod redis_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = super::RedisServer::start(stringify!($name)) else { return };
                    super::$name(vec![super::redis_store(&server).await]).await;
                }
            )*
        }
    };
}

suite!(
    reserve_conflict_refresh_all_or_nothing,
    release_only_own,
    expiry_frees_inputs,
    concurrent_reserve_single_winner,
    claim_once,
    claim_holds_inputs_and_binds_the_logical_key_or_writes_nothing,
    release_claim_only_for_the_claimant_and_only_before_broadcast,
    flags_are_shared,
    cas_fencing_by_state_and_attempt,
    pending_index_due_ordering,
    list_pages_newest_first_and_filters_by_state,
    count_by_state_follows_transitions,
    record_retention_expires_everywhere,
    lease_exclusive_renewable_and_expiring,
    idempotency_outcomes,
);

// ---------------------------------------------------------------------------
// Shared suite: each takes the stores to use (one for most tests).

async fn reserve_conflict_refresh_all_or_nothing(stores: Vec<DynStore>) {
    let s = &stores[0];
    let (a, b) = (txid(1), txid(2));
    let (x, y, z, w) = (utxo(1, 0), utxo(1, 1), utxo(1, 2), utxo(1, 3));

    assert_eq!(
        s.reserve(&[x, y], &a, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    // The owner may refresh and extend its set.
    assert_eq!(
        s.reserve(&[x, y, z], &a, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(s.holder(&z).await.unwrap(), Some(a));

    // Another tx wanting one free and one held input gets the first conflict, and nothing is written.
    assert_eq!(
        s.reserve(&[w, y, x], &b, LONG).await.unwrap(),
        ReserveOutcome::Conflict {
            input: y,
            holder: a
        }
    );
    assert_eq!(s.holder(&w).await.unwrap(), None);
    assert_eq!(s.holder(&y).await.unwrap(), Some(a));
    assert_eq!(s.reservations_active().await.unwrap(), 3);

    // Disjoint inputs are independent; an empty set is trivially reserved.
    assert_eq!(
        s.reserve(&[w], &b, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        s.reserve(&[], &b, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(s.reservations_active().await.unwrap(), 4);
}

async fn release_only_own(stores: Vec<DynStore>) {
    let s = &stores[0];
    let (a, b) = (txid(3), txid(4));
    let (x, y, w) = (utxo(3, 0), utxo(3, 1), utxo(3, 2));
    assert_eq!(
        s.reserve(&[x, y], &a, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        s.reserve(&[w], &b, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );

    s.release(&[x, w], &a).await.unwrap();
    assert_eq!(s.holder(&x).await.unwrap(), None);
    assert_eq!(
        s.holder(&w).await.unwrap(),
        Some(b),
        "b's input must survive a's release"
    );
    assert_eq!(
        s.holder(&y).await.unwrap(),
        Some(a),
        "inputs not named stay reserved"
    );

    s.release(&[y], &b).await.unwrap();
    assert_eq!(s.holder(&y).await.unwrap(), Some(a));
    assert_eq!(s.reservations_active().await.unwrap(), 2);

    // Released inputs are free for anyone.
    assert_eq!(
        s.reserve(&[x], &b, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    s.release(&[], &b).await.unwrap();
}

async fn expiry_frees_inputs(stores: Vec<DynStore>) {
    let s = &stores[0];
    let (a, b) = (txid(5), txid(6));
    let (x, y) = (utxo(5, 0), utxo(5, 1));
    assert_eq!(
        s.reserve(&[x], &a, Duration::from_secs(1)).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        s.reserve(&[y], &a, Duration::from_secs(1)).await.unwrap(),
        ReserveOutcome::Reserved
    );
    // A refresh extends the ttl.
    assert_eq!(
        s.reserve(&[y], &a, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        s.reserve(&[x], &b, LONG).await.unwrap(),
        ReserveOutcome::Conflict {
            input: x,
            holder: a
        }
    );

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(s.holder(&x).await.unwrap(), None);
    assert_eq!(s.holder(&y).await.unwrap(), Some(a));
    assert_eq!(s.reservations_active().await.unwrap(), 1);
    assert_eq!(
        s.reserve(&[x], &b, LONG).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(s.holder(&x).await.unwrap(), Some(b));
    assert_eq!(s.reservations_active().await.unwrap(), 2);
}

/// 200 concurrent reserve calls by 50 owners, all spending one shared UTxO plus
/// two of their own, spread over the given store instances: one owner wins,
/// and the losers wrote nothing.
async fn concurrent_reserve_single_winner(stores: Vec<DynStore>) {
    const OWNERS: u32 = 50;
    const CALLS: u32 = 200;
    let shared = utxo(7, 0);
    let own = |o: u32| [utxo(100 + o, 1), utxo(100 + o, 2)];
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLS as usize));
    let mut tasks = Vec::new();
    for call in 0..CALLS {
        let store = Arc::clone(&stores[call as usize % stores.len()]);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let o = call % OWNERS;
            let [p, q] = own(o);
            barrier.wait().await;
            (
                o,
                store
                    .reserve(&[shared, p, q], &txid(200 + o), LONG)
                    .await
                    .unwrap(),
            )
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let winners: BTreeSet<u32> = outcomes
        .iter()
        .filter(|(_, r)| *r == ReserveOutcome::Reserved)
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one owner may win: {winners:?}");
    let winner = *winners.first().unwrap();
    let winner_tx = txid(200 + winner);
    // Each of the winner's 4 calls succeeds (first reservation, then refreshes); every other call conflicts on the shared input.
    assert_eq!(
        outcomes
            .iter()
            .filter(|(_, r)| *r == ReserveOutcome::Reserved)
            .count(),
        (CALLS / OWNERS) as usize
    );
    for (o, r) in &outcomes {
        if *o != winner {
            assert_eq!(
                *r,
                ReserveOutcome::Conflict {
                    input: shared,
                    holder: winner_tx
                }
            );
        }
    }
    let s = &stores[0];
    assert_eq!(s.holder(&shared).await.unwrap(), Some(winner_tx));
    for o in 0..OWNERS {
        for input in own(o) {
            let expected = (o == winner).then_some(winner_tx);
            assert_eq!(
                s.holder(&input).await.unwrap(),
                expected,
                "owner {o} input {input}"
            );
        }
    }
    assert_eq!(s.reservations_active().await.unwrap(), 3);
}

async fn claim_once(stores: Vec<DynStore>) {
    let s = &stores[0];
    let r = record(10, SettlementState::Claimed, 1_000);
    assert_eq!(
        s.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Claimed(r.clone())
    );
    let mut other = r.clone();
    other.attempt = "attempt-10-b".into();
    other.payer = "addr_test1someoneelse".into();
    assert_eq!(
        s.claim(&other, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Existing(r.clone())
    );
    assert_eq!(s.get(&r.tx_id).await.unwrap(), Some(r.clone()));
    assert_eq!(s.get(&txid(999)).await.unwrap(), None);

    // Concurrent claims of one tx: one creates, all others see the winner's record.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = Arc::clone(s);
        tasks.push(tokio::spawn(async move {
            let mut r = record(11, SettlementState::Claimed, 2_000);
            r.attempt = format!("attempt-11-{i}");
            s.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap()
        }));
    }
    let mut claimed = Vec::new();
    let mut existing = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            ClaimOutcome::Claimed(r) => claimed.push(r),
            ClaimOutcome::Existing(r) => existing.push(r),
            other => panic!("unexpected claim outcome {other:?}"),
        }
    }
    assert_eq!(claimed.len(), 1);
    assert_eq!(existing.len(), 19);
    assert!(existing.iter().all(|e| *e == claimed[0]));
    assert_eq!(s.get(&txid(11)).await.unwrap(), Some(claimed[0].clone()));
}

async fn claim_holds_inputs_and_binds_the_logical_key_or_writes_nothing(stores: Vec<DynStore>) {
    let s = &stores[0];
    // A claim reserves every input of its transaction.
    let mut a = record(30, SettlementState::Claimed, 1_000);
    a.logical_key = Some("terms-30".into());
    assert_eq!(
        s.claim(&a, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Claimed(a.clone())
    );
    for input in &a.inputs {
        assert_eq!(s.holder(input).await.unwrap(), Some(a.tx_id));
    }
    assert_eq!(
        s.logical_key_holder("terms-30").await.unwrap(),
        Some(a.tx_id)
    );

    // Another transaction spending one of those inputs: nothing written.
    let mut b = record(31, SettlementState::Claimed, 1_001);
    b.inputs = vec![utxo(31, 0), a.inputs[1]];
    assert_eq!(
        s.claim(&b, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::InputHeld {
            input: a.inputs[1],
            holder: a.tx_id
        }
    );
    assert_eq!(s.get(&b.tx_id).await.unwrap(), None);
    assert_eq!(s.holder(&utxo(31, 0)).await.unwrap(), None);

    // Another transaction for the same terms (Masumi logical replay): nothing written.
    let mut c = record(32, SettlementState::Claimed, 1_002);
    c.logical_key = Some("terms-30".into());
    assert_eq!(
        s.claim(&c, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::KeyBound { holder: a.tx_id }
    );
    assert_eq!(s.get(&c.tx_id).await.unwrap(), None);
    for input in &c.inputs {
        assert_eq!(s.holder(input).await.unwrap(), None);
    }

    // Twenty transactions racing for one input across the given stores: one wins.
    let shared = utxo(33, 0);
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let st = Arc::clone(&stores[i as usize % stores.len()]);
        tasks.push(tokio::spawn(async move {
            let mut r = record(40 + i, SettlementState::Claimed, 2_000);
            r.inputs = vec![shared, utxo(40 + i, 5)];
            st.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            ClaimOutcome::Claimed(_) => won += 1,
            ClaimOutcome::InputHeld { input, .. } => assert_eq!(input, shared),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
}

async fn release_claim_only_for_the_claimant_and_only_before_broadcast(stores: Vec<DynStore>) {
    let s = &stores[0];
    let mut a = record(60, SettlementState::Claimed, 1_000);
    a.logical_key = Some("terms-60".into());
    s.claim(&a, LONG, LONG, Schedule::At(5)).await.unwrap();
    // Not the claimant's attempt: nothing happens.
    assert!(!s.release_claim(&a.tx_id, "someone-else").await.unwrap());
    assert!(s.get(&a.tx_id).await.unwrap().is_some());
    // The claimant: record, holds, key and index entries are gone.
    assert!(s.release_claim(&a.tx_id, &a.attempt).await.unwrap());
    assert_eq!(s.get(&a.tx_id).await.unwrap(), None);
    for input in &a.inputs {
        assert_eq!(s.holder(input).await.unwrap(), None);
    }
    assert_eq!(s.logical_key_holder("terms-60").await.unwrap(), None);
    assert_eq!(s.due(i64::MAX, 100).await.unwrap(), Vec::<TxId>::new());
    assert!(
        s.list(None, None, 100)
            .await
            .unwrap()
            .records
            .iter()
            .all(|r| r.tx_id != a.tx_id)
    );
    // The same body can be claimed again afterwards.
    assert!(matches!(
        s.claim(&a, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    // Once broadcast (SUBMITTING) a claim is never released.
    let mut next = a.clone();
    next.state = SettlementState::Submitting;
    next.attempt = "attempt-60-b".into();
    s.transition(
        SettlementState::Claimed,
        &a.attempt,
        &next,
        LONG,
        Schedule::Keep,
    )
    .await
    .unwrap();
    assert!(!s.release_claim(&a.tx_id, "attempt-60-b").await.unwrap());
    assert_eq!(
        s.get(&a.tx_id).await.unwrap().map(|r| r.state),
        Some(SettlementState::Submitting)
    );
}

async fn flags_are_shared(stores: Vec<DynStore>) {
    let (a, b) = (&stores[0], &stores[stores.len() - 1]);
    assert!(!a.flag("settlement-paused").await.unwrap());
    a.set_flag("settlement-paused", true).await.unwrap();
    assert!(b.flag("settlement-paused").await.unwrap());
    b.set_flag("settlement-paused", false).await.unwrap();
    assert!(!a.flag("settlement-paused").await.unwrap());
}

async fn cas_fencing_by_state_and_attempt(stores: Vec<DynStore>) {
    use SettlementState::*;
    let s = &stores[0];
    let r = record(20, Claimed, 1_000);
    s.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap();
    let mut next = r.clone();
    next.state = Submitting;
    next.updated_at = 1_001;
    next.submissions = 1;

    // Wrong state, wrong attempt: nothing written, the current record returned.
    assert_eq!(
        s.transition(Submitted, &r.attempt, &next, LONG, Schedule::Keep)
            .await
            .unwrap(),
        CasOutcome::Conflict(Some(r.clone()))
    );
    assert_eq!(
        s.transition(Claimed, "attempt-stale", &next, LONG, Schedule::Keep)
            .await
            .unwrap(),
        CasOutcome::Conflict(Some(r.clone()))
    );
    assert_eq!(s.get(&r.tx_id).await.unwrap(), Some(r.clone()));

    assert_eq!(
        s.transition(Claimed, &r.attempt, &next, LONG, Schedule::Keep)
            .await
            .unwrap(),
        CasOutcome::Applied(next.clone())
    );
    // Replaying the same step fails: the state moved on.
    assert_eq!(
        s.transition(Claimed, &r.attempt, &next, LONG, Schedule::Keep)
            .await
            .unwrap(),
        CasOutcome::Conflict(Some(next.clone()))
    );

    // A new attempt fences out the old one.
    let mut reclaimed = next.clone();
    reclaimed.attempt = "attempt-20-b".into();
    reclaimed.updated_at = 1_002;
    assert_eq!(
        s.transition(Submitting, &r.attempt, &reclaimed, LONG, Schedule::Keep)
            .await
            .unwrap(),
        CasOutcome::Applied(reclaimed.clone())
    );
    let mut stale = next.clone();
    stale.state = Submitted;
    assert_eq!(
        s.transition(Submitting, &r.attempt, &stale, LONG, Schedule::Keep)
            .await
            .unwrap(),
        CasOutcome::Conflict(Some(reclaimed.clone()))
    );

    // A missing record is a conflict with nothing.
    let ghost = record(21, Submitting, 5);
    assert_eq!(
        s.transition(Claimed, &ghost.attempt, &ghost, LONG, Schedule::Keep)
            .await
            .unwrap(),
        CasOutcome::Conflict(None)
    );
    assert_eq!(s.get(&ghost.tx_id).await.unwrap(), None);

    // The state index moved with the record.
    assert!(
        s.list(Some(Claimed), None, 10)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    assert_eq!(
        s.list(Some(Submitting), None, 10).await.unwrap().records,
        vec![reclaimed]
    );
}

async fn pending_index_due_ordering(stores: Vec<DynStore>) {
    use SettlementState::*;
    let s = &stores[0];
    let claim = |n: u32, sched: Schedule| {
        let s = Arc::clone(s);
        async move {
            s.claim(&record(n, Claimed, 1), LONG, LONG, sched)
                .await
                .unwrap()
        }
    };
    claim(31, Schedule::At(5_000)).await;
    claim(32, Schedule::At(3_000)).await;
    claim(33, Schedule::At(4_000)).await;
    claim(34, Schedule::Done).await;
    claim(35, Schedule::Keep).await;
    claim(30, Schedule::At(4_000)).await; // ties order by tx id

    assert_eq!(s.due(2_999, 10).await.unwrap(), vec![]);
    assert_eq!(s.due(3_000, 10).await.unwrap(), vec![txid(32)]);
    assert_eq!(
        s.due(4_000, 10).await.unwrap(),
        vec![txid(32), txid(30), txid(33)]
    );
    assert_eq!(
        s.due(10_000, 10).await.unwrap(),
        vec![txid(32), txid(30), txid(33), txid(31)]
    );
    assert_eq!(s.due(10_000, 2).await.unwrap(), vec![txid(32), txid(30)]);

    let step = |n: u32, sched: Schedule| {
        let s = Arc::clone(s);
        async move {
            let mut next = record(n, Submitted, 2);
            next.attempt = format!("attempt-{n}-a");
            assert!(matches!(
                s.transition(Claimed, &next.attempt, &next, LONG, sched)
                    .await
                    .unwrap(),
                CasOutcome::Applied(_)
            ));
        }
    };
    step(32, Schedule::At(6_000)).await; // moved later
    step(33, Schedule::Keep).await; // stays at 4000
    step(31, Schedule::Done).await; // removed
    step(35, Schedule::At(1_000)).await; // added by a transition
    assert_eq!(
        s.due(10_000, 10).await.unwrap(),
        vec![txid(35), txid(30), txid(33), txid(32)]
    );
    assert_eq!(
        s.due(5_999, 10).await.unwrap(),
        vec![txid(35), txid(30), txid(33)]
    );
}

async fn list_pages_newest_first_and_filters_by_state(stores: Vec<DynStore>) {
    use SettlementState::*;
    let s = &stores[0];
    // (n, state, updated_at): three share updated_at 200.
    let spec = [
        (40, Confirmed, 100),
        (41, Claimed, 200),
        (42, Confirmed, 200),
        (43, Failed, 200),
        (44, Confirmed, 300),
        (45, Claimed, 400),
        (46, Confirmed, 500),
    ];
    for (n, st, at) in spec {
        s.claim(&record(n, st, at), LONG, LONG, Schedule::Keep)
            .await
            .unwrap();
    }
    // Newest first; equal times by tx id, descending.
    let expected: Vec<TxId> = [46, 45, 44, 43, 42, 41, 40].map(txid).to_vec();

    let all = s.list(None, None, 100).await.unwrap();
    assert_eq!(ids(&all.records), expected);
    assert_eq!(all.next_cursor, None);

    // Pages of 4 then 2 split the tie at 200.
    let p1 = s.list(None, None, 4).await.unwrap();
    assert_eq!(ids(&p1.records), expected[..4]);
    let c1 = p1.next_cursor.unwrap();
    assert_eq!(
        ListCursor::parse(&c1),
        Some(ListCursor {
            updated_at: 200,
            tx_id: txid(43)
        })
    );
    let p2 = s.list(None, Some(&c1), 2).await.unwrap();
    assert_eq!(ids(&p2.records), expected[4..6]);
    let p3 = s.list(None, p2.next_cursor.as_deref(), 2).await.unwrap();
    assert_eq!(ids(&p3.records), expected[6..]);
    assert_eq!(p3.next_cursor, None);

    // Walking in pages of every size yields the full order exactly once.
    for size in 1..=7 {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = s.list(None, cursor.as_deref(), size).await.unwrap();
            assert!(page.records.len() <= size);
            seen.extend(ids(&page.records));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, expected, "page size {size}");
    }

    // Per-state filter.
    let confirmed = s.list(Some(Confirmed), None, 2).await.unwrap();
    assert_eq!(ids(&confirmed.records), vec![txid(46), txid(44)]);
    let rest = s
        .list(Some(Confirmed), confirmed.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(ids(&rest.records), vec![txid(42), txid(40)]);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(
        ids(&s.list(Some(Claimed), None, 10).await.unwrap().records),
        vec![txid(45), txid(41)]
    );
    assert!(
        s.list(Some(Expired), None, 10)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    // Full records come back.
    assert_eq!(
        s.list(Some(Failed), None, 10).await.unwrap().records,
        vec![record(43, Failed, 200)]
    );

    // Limit 0 is read as 1; a malformed cursor is an error, not a guess.
    assert_eq!(
        ids(&s.list(None, None, 0).await.unwrap().records),
        vec![txid(46)]
    );
    assert!(matches!(
        s.list(None, Some("garbage"), 5).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        s.list(None, Some("12.zz"), 5).await,
        Err(StoreError::Corrupt(_))
    ));
}

async fn count_by_state_follows_transitions(stores: Vec<DynStore>) {
    use SettlementState::*;
    let s = &stores[0];
    let zero: Vec<(SettlementState, u64)> =
        SettlementState::ALL.iter().map(|st| (*st, 0)).collect();
    assert_eq!(s.count_by_state().await.unwrap(), zero);
    for (n, st) in [
        (50, Claimed),
        (51, Claimed),
        (52, Submitted),
        (53, Confirmed),
        (54, Confirmed),
        (55, Confirmed),
    ] {
        s.claim(&record(n, st, 10), LONG, LONG, Schedule::Keep)
            .await
            .unwrap();
    }
    let mut failed = record(51, Failed, 11);
    failed.error = Some("BadInputsUTxO".into());
    assert!(matches!(
        s.transition(Claimed, &failed.attempt, &failed, LONG, Schedule::Done)
            .await
            .unwrap(),
        CasOutcome::Applied(_)
    ));
    assert_eq!(
        s.count_by_state().await.unwrap(),
        vec![
            (Claimed, 1),
            (Submitting, 0),
            (Submitted, 1),
            (Pending, 0),
            (Confirmed, 3),
            (Failed, 1),
            (Expired, 0),
            (Rejected, 0)
        ]
    );
}

async fn record_retention_expires_everywhere(stores: Vec<DynStore>) {
    use SettlementState::*;
    let s = &stores[0];
    let short = record(60, Claimed, 10);
    let kept = record(61, Claimed, 20);
    s.claim(&short, LONG, Duration::from_secs(1), Schedule::At(100))
        .await
        .unwrap();
    s.claim(&kept, LONG, LONG, Schedule::At(200)).await.unwrap();
    assert_eq!(s.due(1_000, 10).await.unwrap(), vec![txid(60), txid(61)]);

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(s.get(&short.tx_id).await.unwrap(), None);
    assert_eq!(s.due(1_000, 10).await.unwrap(), vec![txid(61)]);
    assert_eq!(
        ids(&s.list(None, None, 10).await.unwrap().records),
        vec![txid(61)]
    );
    assert_eq!(
        ids(&s.list(Some(Claimed), None, 10).await.unwrap().records),
        vec![txid(61)]
    );
    assert_eq!(s.count_by_state().await.unwrap()[0], (Claimed, 1));
    // The id can be claimed again after its record expired.
    assert!(matches!(
        s.claim(&short, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    // A transition renews the retention.
    let mut next = kept.clone();
    next.state = Submitting;
    s.transition(
        Claimed,
        &kept.attempt,
        &next,
        Duration::from_secs(1),
        Schedule::Keep,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(s.get(&kept.tx_id).await.unwrap(), None);
    assert_eq!(s.due(1_000, 10).await.unwrap(), vec![]);
    assert_eq!(s.count_by_state().await.unwrap()[0], (Claimed, 1));
}

async fn lease_exclusive_renewable_and_expiring(stores: Vec<DynStore>) {
    let s = &stores[0];
    let ttl = Duration::from_secs(1);
    assert!(
        s.acquire_lease("reconciler", "replica-a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !s.acquire_lease("reconciler", "replica-b", ttl)
            .await
            .unwrap()
    );
    assert!(
        s.acquire_lease("reconciler", "replica-a", ttl)
            .await
            .unwrap(),
        "the holder renews"
    );
    assert!(
        s.acquire_lease("other", "replica-b", LONG).await.unwrap(),
        "leases are independent"
    );

    // Releasing someone else's lease does nothing.
    s.release_lease("reconciler", "replica-b").await.unwrap();
    assert!(
        !s.acquire_lease("reconciler", "replica-b", ttl)
            .await
            .unwrap()
    );

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(
        s.acquire_lease("reconciler", "replica-b", LONG)
            .await
            .unwrap(),
        "an expired lease is free"
    );
    assert!(
        !s.acquire_lease("reconciler", "replica-a", ttl)
            .await
            .unwrap()
    );
    assert!(!s.acquire_lease("other", "replica-a", ttl).await.unwrap());

    s.release_lease("reconciler", "replica-b").await.unwrap();
    assert!(
        s.acquire_lease("reconciler", "replica-a", ttl)
            .await
            .unwrap()
    );
}

async fn idempotency_outcomes(stores: Vec<DynStore>) {
    use IdempotencyOutcome::*;
    let s = &stores[0];
    let ttl = LONG;
    assert_eq!(s.idempotency_begin("pay-1", "d1", ttl).await.unwrap(), New);
    assert_eq!(
        s.idempotency_begin("pay-1", "d1", ttl).await.unwrap(),
        InProgress
    );
    assert_eq!(
        s.idempotency_begin("pay-1", "d2", ttl).await.unwrap(),
        Mismatch
    );
    // Only the payload that began the id may store its answer.
    s.idempotency_complete("pay-1", "d2", r#"{"other":true}"#, ttl)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin("pay-1", "d1", ttl).await.unwrap(),
        InProgress
    );
    s.idempotency_complete("pay-1", "d1", r#"{"success":true}"#, ttl)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency_begin("pay-1", "d1", ttl).await.unwrap(),
        Stored(r#"{"success":true}"#.into())
    );
    assert_eq!(
        s.idempotency_begin("pay-1", "d2", ttl).await.unwrap(),
        Mismatch
    );
    // Abort never drops a stored answer.
    s.idempotency_abort("pay-1", "d1").await.unwrap();
    assert_eq!(
        s.idempotency_begin("pay-1", "d1", ttl).await.unwrap(),
        Stored(r#"{"success":true}"#.into())
    );

    // Abort of an in-progress id: only by its own digest; then the id is new again.
    assert_eq!(s.idempotency_begin("pay-2", "d1", ttl).await.unwrap(), New);
    s.idempotency_abort("pay-2", "d2").await.unwrap();
    assert_eq!(
        s.idempotency_begin("pay-2", "d1", ttl).await.unwrap(),
        InProgress
    );
    s.idempotency_abort("pay-2", "d1").await.unwrap();
    assert_eq!(s.idempotency_begin("pay-2", "d2", ttl).await.unwrap(), New);

    // Entries expire.
    assert_eq!(
        s.idempotency_begin("pay-3", "d1", Duration::from_secs(1))
            .await
            .unwrap(),
        New
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(s.idempotency_begin("pay-3", "d2", ttl).await.unwrap(), New);
}

// ---------------------------------------------------------------------------
// Redis only

async fn eventually_ok<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(StoreError::Unavailable(e)) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: still unavailable after {timeout:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_concurrent_reserve_across_three_instances() {
    let Some(server) = RedisServer::start("redis_concurrent_reserve_across_three_instances") else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(redis_store(&server).await);
    }
    concurrent_reserve_single_winner(stores).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_closed_and_recovers_by_itself() {
    let Some(mut server) = RedisServer::start("redis_outage_fails_closed_and_recovers_by_itself")
    else {
        return;
    };
    let store = Arc::new(RedisStore::connect(&server.settings()).await.unwrap());

    // Background traffic: (started, finished, ok, unavailable).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut log = Vec::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = store
                    .reserve(&[utxo(20_000 + n, 0)], &txid(20_000 + n), LONG)
                    .await;
                log.push((
                    started,
                    Instant::now(),
                    r.is_ok(),
                    matches!(r, Err(StoreError::Unavailable(_))),
                ));
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            log
        })
    };
    let store: DynStore = store;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Taken before the kill: an operation that ended before this instant
    // certainly ran against a live server.
    let killed = Instant::now();
    server.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let r = record(70, SettlementState::Claimed, 1);
    assert!(matches!(
        store.reserve(&[utxo(70, 0)], &txid(70), LONG).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.claim(&r, LONG, LONG, Schedule::Keep).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.get(&r.tx_id).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.acquire_lease("reconciler", "a", LONG).await,
        Err(StoreError::Unavailable(_))
    ));
    let health = store.health().await;
    assert_eq!(health.status, DependencyStatus::Down);
    let err = health.error.unwrap();
    assert!(!err.contains(PASSWORD), "password leaked: {err}");

    server.restart();
    let restarted = Instant::now();
    // The same instance serves again, by itself; the restarted server has no
    // scripts cached, so this also exercises the NOSCRIPT fallback.
    let outcome = eventually_ok("claim after restart", Duration::from_secs(5), || {
        store.claim(&r, LONG, LONG, Schedule::Keep)
    })
    .await;
    let recovery = restarted.elapsed();
    assert_eq!(outcome, ClaimOutcome::Claimed(r.clone()));
    assert_eq!(store.get(&r.tx_id).await.unwrap(), Some(r.clone()));
    assert_eq!(store.health().await.status, DependencyStatus::Up);
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;

    stop.store(true, Ordering::Relaxed);
    let log = traffic.await.unwrap();
    let before = log.iter().filter(|(_, end, ..)| *end < killed).count();
    let ok_before = log
        .iter()
        .filter(|(_, end, ok, _)| *end < killed && *ok)
        .count();
    let outage: Vec<_> = log
        .iter()
        .filter(|(start, end, ..)| *start > killed && *end < restarted)
        .collect();
    assert!(
        before > 5 && ok_before == before,
        "traffic before the kill succeeds ({ok_before}/{before})"
    );
    assert!(
        outage.len() > 5,
        "traffic ran during the outage ({})",
        outage.len()
    );
    assert!(
        outage
            .iter()
            .all(|(_, _, ok, unavailable)| !ok && *unavailable),
        "no success while redis is down"
    );
    let after: Vec<_> = log
        .iter()
        .filter(|(start, ..)| *start > recovered)
        .collect();
    assert!(
        !after.is_empty() && after.iter().all(|(_, _, ok, _)| *ok),
        "traffic succeeds again after the recovery"
    );
    eprintln!(
        "outage: {} calls failed closed; recovered {recovery:?} after restart",
        outage.len()
    );
    assert!(
        recovery < Duration::from_secs(2),
        "recovery took {recovery:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_aof_always_keeps_every_acknowledged_record_through_sigkill() {
    let options = Options {
        aof_always: true,
        ..Options::default()
    };
    let Some(mut server) =
        RedisServer::start_with("redis_aof_always_keeps_every_acknowledged_record", options)
    else {
        return;
    };
    let store = redis_store(&server).await;
    let mut expected = HashMap::new();
    for n in 0..60u32 {
        let r = record(80_000 + n, SettlementState::Claimed, 1_000 + i64::from(n));
        assert_eq!(
            store
                .claim(&r, LONG, LONG, Schedule::At(5_000))
                .await
                .unwrap(),
            ClaimOutcome::Claimed(r.clone())
        );
        if n % 2 == 0 {
            let mut next = r.clone();
            next.state = SettlementState::Submitted;
            next.submitted_at = Some(2_000);
            next.updated_at = 2_000 + i64::from(n);
            let out = store
                .transition(
                    SettlementState::Claimed,
                    &r.attempt,
                    &next,
                    LONG,
                    Schedule::Keep,
                )
                .await
                .unwrap();
            assert_eq!(out, CasOutcome::Applied(next.clone()));
            expected.insert(next.tx_id, next);
        } else {
            expected.insert(r.tx_id, r);
        }
    }
    server.kill(); // SIGKILL: no shutdown, no final fsync
    server.restart(); // same directory: replays the AOF

    for (id, r) in &expected {
        let got = eventually_ok("get after restart", Duration::from_secs(5), || {
            store.get(id)
        })
        .await;
        assert_eq!(got.as_ref(), Some(r));
    }
    let counts: HashMap<_, _> = store.count_by_state().await.unwrap().into_iter().collect();
    assert_eq!(counts[&SettlementState::Claimed], 30);
    assert_eq!(counts[&SettlementState::Submitted], 30);
    assert_eq!(store.due(5_000, 100).await.unwrap().len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_failover_keeps_acknowledged_records() {
    const TEST: &str = "redis_sentinel_failover_keeps_acknowledged_records";
    const SERVICE: &str = "x402-test";
    const SENTINEL_PASSWORD: &str = "sentinel-pass-77d1";
    let Some(deployment) = SentinelDeployment::start(TEST, SERVICE, SENTINEL_PASSWORD) else {
        return;
    };
    let settings = deployment.settings();
    let SentinelDeployment {
        mut master,
        replicas,
        sentinel,
        ..
    } = deployment;
    // "Acknowledged" = the master applied the write AND a replica has it
    // (WAIT 1): async replication alone can lose a write the master
    // acknowledged a moment before it died.
    let options = RedisStoreOptions {
        journal_replicas: 1,
        journal_replica_timeout: Duration::from_millis(1_000),
        ..RedisStoreOptions::default()
    };
    let store = RedisStore::connect_with(&settings, options).await.unwrap();
    let mut acked = Vec::new();
    for n in 0..30u32 {
        let r = record(90_000 + n, SettlementState::Claimed, 1_000);
        assert_eq!(
            store.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap(),
            ClaimOutcome::Claimed(r.clone())
        );
        acked.push(r);
    }

    let old_port = master.port();
    master.kill();
    let killed = Instant::now();
    let (mut unavailable, mut after, mut first_ok) = (0, 0, None);
    let mut n = 90_100u32;
    while after < 5 {
        assert!(
            killed.elapsed() < Duration::from_secs(25),
            "no failover within 25 s ({unavailable} failures)"
        );
        let r = record(n, SettlementState::Claimed, 2_000);
        n += 1;
        match store.claim(&r, LONG, LONG, Schedule::Keep).await {
            Ok(ClaimOutcome::Claimed(_)) => {
                first_ok.get_or_insert(killed.elapsed());
                after += 1;
                acked.push(r);
            }
            Err(StoreError::Unavailable(_)) => {
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let addr: (String, u16) = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(SERVICE)
        .query(&mut sentinel.connection())
        .unwrap();
    assert_ne!(addr.1, old_port);
    assert!(
        replicas.iter().any(|r| r.port() == addr.1),
        "a replica was promoted"
    );
    assert!(
        unavailable > 0,
        "the dead master must have caused failures, not silent success"
    );
    for r in &acked {
        assert_eq!(
            store.get(&r.tx_id).await.unwrap().as_ref(),
            Some(r),
            "lost {}",
            r.tx_id
        );
    }
    eprintln!(
        "failover: {unavailable} calls unavailable, first success {:?} after the kill; {} acknowledged records intact",
        first_ok.unwrap_or_default(),
        acked.len()
    );
}

#[tokio::test]
async fn redis_connect_fails_fast_when_unreachable_without_leaking_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = RedisSettings {
        port,
        password: Some(Secret::new("sup3r-secret-pw")),
        connect_timeout: std::time::Duration::from_millis(500),
        ..RedisSettings::default()
    };
    let started = Instant::now();
    let err = RedisStore::connect(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("sup3r"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let sentinel_settings = RedisSettings {
        password: Some(Secret::new("sup3r-secret-pw")),
        sentinel: SentinelSettings {
            service_name: Some("mymaster".into()),
            addresses: vec![format!("127.0.0.1:{port}")],
            password: Some(Secret::new("sentinel-s3cret")),
        },
        connect_timeout: std::time::Duration::from_millis(500),
        ..RedisSettings::default()
    };
    let err = RedisStore::connect(&sentinel_settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn redis_wrong_password_is_refused_at_startup() {
    let Some(server) = RedisServer::start("redis_wrong_password_is_refused_at_startup") else {
        return;
    };
    let mut settings = server.settings();
    settings.password = Some(Secret::new("not-the-password-42"));
    let err = RedisStore::connect(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-password-42"), "{err}");
    settings.password = None;
    assert!(RedisStore::connect(&settings).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unix_socket_db_and_key_prefix_layout() {
    let options = Options {
        unix_socket: true,
        ..Options::default()
    };
    let Some(server) =
        RedisServer::start_with("redis_unix_socket_db_and_key_prefix_layout", options)
    else {
        return;
    };
    let mut a_settings = server.settings();
    a_settings.socket = Some(server.socket_path().display().to_string());
    a_settings.port = 1; // ignored with a socket
    a_settings.db = 2;
    a_settings.key_prefix = "tenant-a:".into();
    let a = RedisStore::connect(&a_settings).await.unwrap();
    assert_eq!(a.key_prefix(), "tenant-a:");
    let mut b_settings = server.settings();
    b_settings.db = 2;
    b_settings.key_prefix = "tenant-b:".into();
    let b = RedisStore::connect(&b_settings).await.unwrap();

    let (x, owner) = (utxo(300, 0), txid(300));
    let r = record(300, SettlementState::Claimed, 7);
    assert_eq!(
        a.reserve(&[x], &owner, Duration::from_secs(60))
            .await
            .unwrap(),
        ReserveOutcome::Reserved
    );
    a.claim(
        &r,
        Duration::from_secs(60),
        Duration::from_secs(600),
        Schedule::At(9),
    )
    .await
    .unwrap();
    assert!(
        a.acquire_lease("reconciler", "replica-a", LONG)
            .await
            .unwrap()
    );
    assert_eq!(
        a.idempotency_begin("pay-9", "d", LONG).await.unwrap(),
        IdempotencyOutcome::New
    );

    // Another prefix is another namespace.
    assert_eq!(b.holder(&x).await.unwrap(), None);
    assert_eq!(b.get(&r.tx_id).await.unwrap(), None);
    assert!(matches!(
        b.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    assert!(
        b.acquire_lease("reconciler", "replica-b", LONG)
            .await
            .unwrap()
    );

    let mut conn = server.connection();
    let db0: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(db0, 0, "db 2 was configured");
    redis::cmd("SELECT").arg(2).exec(&mut conn).unwrap();
    let keys: BTreeSet<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("tenant-a:") || k.starts_with("tenant-b:")),
        "{keys:?}"
    );
    for k in [
        format!("tenant-a:resv:{x}"),
        "tenant-a:reservations".to_string(),
        format!("tenant-a:settle:{}", r.tx_id),
        "tenant-a:state:claimed".to_string(),
        "tenant-a:journal".to_string(),
        "tenant-a:journal-expiry".to_string(),
        "tenant-a:pending".to_string(),
        "tenant-a:lease:reconciler".to_string(),
        "tenant-a:idem:pay-9".to_string(),
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    let owner_hex: String = redis::cmd("GET")
        .arg(format!("tenant-a:resv:{x}"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(owner_hex, owner.to_hex());
    let resv_ttl: i64 = redis::cmd("PTTL")
        .arg(format!("tenant-a:resv:{x}"))
        .query(&mut conn)
        .unwrap();
    assert!((50_000..=60_000).contains(&resv_ttl), "{resv_ttl}");
    let record_ttl: i64 = redis::cmd("PTTL")
        .arg(format!("tenant-a:settle:{}", r.tx_id))
        .query(&mut conn)
        .unwrap();
    assert!((590_000..=600_000).contains(&record_ttl), "{record_ttl}");
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("tenant-a:settle:{}", r.tx_id))
        .query(&mut conn)
        .unwrap();
    assert_eq!(fields["state"], "claimed");
    assert_eq!(fields["attempt"], r.attempt);
    let _: SettlementRecord = serde_json::from_str(&fields["data"]).unwrap();
    assert_eq!(a.health().await.status, DependencyStatus::Up);

    // Scripts were loaded once at connect and are only ever called by SHA.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    assert!(stats.contains("cmdstat_evalsha:"), "{stats}");
    assert!(!stats.contains("cmdstat_eval:"), "{stats}");
    let script_loads = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_script|load:"))
        .unwrap_or_default();
    assert!(
        script_loads.starts_with("cmdstat_script|load:calls=28,"),
        "{script_loads}"
    );
}

#[test]
fn harness_reports_the_binary() {
    // Makes the skip visible in the test list when redis-server is absent.
    if redis_server::require("harness_reports_the_binary").is_some() {
        assert!(redis_server::binary().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_with_private_ca() {
    let options = Options {
        tls: true,
        ..Options::default()
    };
    let Some(server) = RedisServer::start_with("redis_tls_with_private_ca", options) else {
        return;
    };
    let mut settings = server.settings();
    settings.host = "localhost".into();
    settings.tls = true;

    // The public roots do not know this CA: startup fails cleanly (no panic, no password).
    let err = RedisStore::connect(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains(PASSWORD), "{err}");

    let options = RedisStoreOptions {
        tls_root_ca_pem: Some(redis_server::tls_ca_pem()),
        ..RedisStoreOptions::default()
    };
    let store = RedisStore::connect_with(&settings, options).await.unwrap();
    let r = record(400, SettlementState::Claimed, 1);
    assert_eq!(
        store
            .reserve(&[utxo(400, 0)], &r.tx_id, LONG)
            .await
            .unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        store.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Claimed(r.clone())
    );
    assert_eq!(store.get(&r.tx_id).await.unwrap(), Some(r));
    assert_eq!(store.health().await.status, DependencyStatus::Up);
}

/// Every map of the memory store has a bound and an eviction rule.
#[tokio::test]
async fn memory_store_maps_are_bounded() {
    use x402_facilitator::store::memory::MemoryLimits;
    let s = MemoryStore::with_limits(MemoryLimits {
        records: 3,
        reservations: 4,
        idempotency: 5,
    });
    // payment identifiers: the oldest entry makes room, the count never exceeds 5.
    for i in 0..50 {
        let out = s
            .idempotency_begin(&format!("public:id-{i:04}"), "digest", LONG)
            .await
            .unwrap();
        assert_eq!(out, IdempotencyOutcome::New);
    }
    // The newest five are still known (a repeat is in progress), the oldest are gone.
    assert_eq!(
        s.idempotency_begin("public:id-0049", "digest", LONG)
            .await
            .unwrap(),
        IdempotencyOutcome::InProgress
    );
    assert_eq!(
        s.idempotency_begin("public:id-0000", "digest", LONG)
            .await
            .unwrap(),
        IdempotencyOutcome::New
    );

    // Journal: three open claims fill it; a fourth is refused (503), nothing forgotten.
    let mut open = Vec::new();
    for n in 0..3 {
        let mut r = record(700 + n, SettlementState::Claimed, 1_000 + i64::from(n));
        r.inputs = vec![];
        assert!(matches!(
            s.claim(&r, LONG, LONG, Schedule::Keep).await.unwrap(),
            ClaimOutcome::Claimed(_)
        ));
        open.push(r);
    }
    let mut fourth = record(710, SettlementState::Claimed, 2_000);
    fourth.inputs = vec![];
    assert!(matches!(
        s.claim(&fourth, LONG, LONG, Schedule::Keep).await,
        Err(StoreError::Unavailable(_))
    ));
    // Once one is finished (expired), it is the one evicted to make room.
    let mut expired = open[1].clone();
    expired.state = SettlementState::Expired;
    expired.attempt = "gone".into();
    s.transition(
        SettlementState::Claimed,
        &open[1].attempt,
        &expired,
        LONG,
        Schedule::Done,
    )
    .await
    .unwrap();
    assert!(matches!(
        s.claim(&fourth, LONG, LONG, Schedule::Keep).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    assert_eq!(s.get(&open[1].tx_id).await.unwrap(), None);
    assert!(s.get(&open[0].tx_id).await.unwrap().is_some());
    assert!(s.get(&open[2].tx_id).await.unwrap().is_some());

    // Reservations: at most four inputs held; a fifth is refused, not forgotten.
    let owner = txid(720);
    assert_eq!(
        s.reserve(
            &[utxo(720, 0), utxo(720, 1), utxo(720, 2), utxo(720, 3)],
            &owner,
            LONG
        )
        .await
        .unwrap(),
        ReserveOutcome::Reserved
    );
    assert!(matches!(
        s.reserve(&[utxo(721, 0)], &txid(721), LONG).await,
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(s.reservations_active().await.unwrap(), 4);
}
