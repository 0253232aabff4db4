//! The embedded devnet: an in-process Cardano-like ledger that needs no node,
//! no Docker and no internet, so the facilitator runs and is tested end to end
//! out of the box.
//!
//! * Network id 0, CAIP-2 `cardano:devnet`, 1-second slots with slot 0 at the
//!   moment the ledger starts, protocol parameters
//!   [`ProtocolParams::mainnet_like`].
//! * Submission applies the real phase-1 rules (`cardano::phase1`, through
//!   [`rules`]) against the confirmed UTxO set plus the mempool; a rejection
//!   carries the node's reason (`BadInputsUTxO`, `FeeTooSmallUTxO`, ...).
//! * A block every `chain.devnet.blockTimeMs`, made by a tokio task, holds the
//!   mempool's still-valid transactions in arrival order (validity is checked
//!   again at the block's slot).
//! * Full history for lookups, a faucet ([`Devnet::fund`]) and test hooks
//!   ([`Devnet::rollback`], [`Devnet::submissions`], [`Devnet::produce_block`],
//!   [`Devnet::drop_from_mempool`]).
//! * [`api::router`] serves all of it as a Blockfrost-compatible HTTP API, so
//!   wallet libraries and other facilitators can use it as their chain.
//!
//! As a [`ChainProvider`], the devnet answers what a Blockfrost client pointed
//! at its API answers: UTxO states describe the chain at the tip (an output of
//! a transaction still in the mempool is `Unknown`, as Blockfrost cannot see it
//! either), and evidence distinguishes mempool from inclusion.

pub mod api;
pub mod ledger;
pub mod rules;

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cardano::{Asset, Network, TxId, UtxoRef, Value};
use crate::chain::{
    ChainError, ChainProvider, Evidence, ProtocolParams, SubmitOutcome, Tip, UtxoState, observe,
};
use crate::config::DevnetSettings;

pub use ledger::{
    BlockRecord, Ledger, LedgerError, OutputRecord, RollbackReport, TxOrigin, TxRecord, TxStatus,
};
pub use rules::Rejection;

/// Why the devnet could not start or do what a caller asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevnetError {
    #[error("chain.devnet.genesis.{index}: {reason}")]
    Genesis { index: usize, reason: String },
    #[error("the devnet block producer needs a tokio runtime")]
    NoRuntime,
    #[error("invalid address: {0}")]
    Address(String),
    #[error("invalid value: {0}")]
    Value(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The devnet ledger plus its clock and block producer.
///
/// The ledger sits behind a `parking_lot` mutex: every operation on it is
/// synchronous, CPU-only and short (a map lookup, a phase-1 check of a few
/// microseconds), and it is never held across an `.await`, so an async mutex
/// would add cost and buy nothing. Tip changes are published on a `watch`
/// channel so that waiters do not poll the lock.
pub struct Devnet {
    start_unix: i64,
    params: Arc<ProtocolParams>,
    block_time: Duration,
    ledger: parking_lot::Mutex<Ledger>,
    tip: watch::Sender<Tip>,
    /// `true` asks the block producer to stop; dropping it (with the devnet) stops it too.
    stop: watch::Sender<bool>,
    producer: parking_lot::Mutex<Option<JoinHandle<()>>>,
    /// What `/genesis` announces (settable, so tests can change it under a client).
    network_magic: std::sync::atomic::AtomicU32,
    /// Requests served by the Blockfrost-compatible API, by `METHOD route`.
    api_calls: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet")
            .field("start_unix", &self.start_unix)
            .field("block_time", &self.block_time)
            .field("tip", &*self.tip.borrow())
            .finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Text form of raw address bytes: bech32 for Shelley, base58 for Byron, hex otherwise.
pub fn address_text(bytes: &[u8]) -> String {
    if let Ok(s) = crate::cardano::address::to_bech32(bytes) {
        return s;
    }
    match pallas_addresses::ByronAddress::from_bytes(bytes) {
        Ok(b) => b.to_base58(),
        Err(_) => hex::encode(bytes),
    }
}

/// Parse a bech32 payment address of the devnet (network id 0) into raw bytes.
pub fn parse_devnet_address(s: &str) -> Result<Vec<u8>, DevnetError> {
    let addr = crate::cardano::address::parse_shelley_bech32(s)
        .map_err(|e| DevnetError::Address(e.to_string()))?;
    if addr.network_id != Network::Devnet.network_id() {
        return Err(DevnetError::Address(format!(
            "{s} is not a testnet (network id 0) address"
        )));
    }
    let (_, bytes) = crate::cardano::address::decode_bech32(s)
        .map_err(|e| DevnetError::Address(e.to_string()))?;
    Ok(bytes)
}

/// Build a [`Value`] from lovelace and `<policy>.<name>` -> quantity strings (the config and faucet form).
pub fn value_from_strings<'a>(
    lovelace: &str,
    assets: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<Value, DevnetError> {
    let coin = lovelace
        .parse::<u64>()
        .map_err(|_| DevnetError::Value(format!("lovelace {lovelace:?} is not an integer")))?;
    let mut value = Value::lovelace(coin);
    for (unit, q) in assets {
        let id = match unit.parse::<Asset>() {
            Ok(Asset::Native(id)) => id,
            _ => {
                return Err(DevnetError::Value(format!(
                    "asset {unit:?} is not <policy hex>.<name hex>"
                )));
            }
        };
        let q = q.parse::<u64>().ok().filter(|q| *q > 0).ok_or_else(|| {
            DevnetError::Value(format!("quantity of {unit} must be a positive integer"))
        })?;
        value
            .checked_add_asset(id, q)
            .ok_or(DevnetError::Value("asset quantity overflows".into()))?;
    }
    Ok(value)
}

impl Devnet {
    /// Start the devnet and its block producer (one block every
    /// `settings.blockTimeMs`). Must be called inside a tokio runtime. The
    /// producer stops on [`Devnet::shutdown`] or when the last `Arc<Devnet>` is dropped.
    pub fn start(settings: &DevnetSettings) -> Result<Arc<Devnet>, DevnetError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| DevnetError::NoRuntime)?;
        let devnet = Arc::new(Self::build(settings)?);
        let weak = Arc::downgrade(&devnet);
        let stop = devnet.stop.subscribe();
        let task = handle.spawn(produce_blocks(weak, stop, devnet.block_time));
        *devnet.producer.lock() = Some(task);
        Ok(devnet)
    }

    /// A devnet without a block producer: blocks are made only by
    /// [`Devnet::produce_block`]. For tests that need exact control of time.
    pub fn manual(settings: &DevnetSettings) -> Result<Arc<Devnet>, DevnetError> {
        Ok(Arc::new(Self::build(settings)?))
    }

    fn build(settings: &DevnetSettings) -> Result<Devnet, DevnetError> {
        let mut genesis = Vec::with_capacity(settings.genesis.len());
        for (index, g) in settings.genesis.iter().enumerate() {
            let bad = |e: DevnetError| DevnetError::Genesis {
                index,
                reason: e.to_string(),
            };
            let address = parse_devnet_address(&g.address).map_err(bad)?;
            let value = value_from_strings(&g.lovelace, &g.assets).map_err(bad)?;
            genesis.push(OutputRecord::plain(address, value));
        }
        let params = Arc::new(ProtocolParams::mainnet_like());
        let start_unix = now_unix();
        let ledger = Ledger::new(Network::Devnet, params.clone(), start_unix, genesis);
        let (tip, _) = watch::channel(ledger.tip());
        let (stop, _) = watch::channel(false);
        Ok(Devnet {
            start_unix,
            params,
            block_time: settings.block_time.max(Duration::from_millis(1)),
            ledger: parking_lot::Mutex::new(ledger),
            tip,
            stop,
            producer: parking_lot::Mutex::new(None),
            network_magic: std::sync::atomic::AtomicU32::new(settings.network_magic),
            api_calls: parking_lot::Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// Stop the block producer and wait for it to finish. Idempotent; the
    /// ledger stays readable and writable afterwards (blocks then come only
    /// from [`Devnet::produce_block`]).
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self.producer.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Whether the block producer task is alive.
    pub fn is_producing(&self) -> bool {
        self.producer
            .lock()
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Unix time (seconds) of slot 0.
    pub fn start_time(&self) -> i64 {
        self.start_unix
    }

    pub fn block_time(&self) -> Duration {
        self.block_time
    }

    /// The slot now.
    pub fn current_slot(&self) -> u64 {
        self.slot_at(now_unix())
    }

    pub fn params(&self) -> Arc<ProtocolParams> {
        self.params.clone()
    }

    /// Make a block now from the mempool (the producer calls this on every tick).
    pub fn produce_block(&self) -> Tip {
        let now = now_unix();
        let slot = self.slot_at(now);
        let (tip, txs) = {
            let mut l = self.ledger.lock();
            let tip = l.produce_block(slot, now);
            let txs = l.block(tip.height).map(|b| b.txs.len()).unwrap_or(0);
            (tip, txs)
        };
        if txs > 0 {
            tracing::debug!(height = tip.height, slot = tip.slot, txs, "devnet block");
        }
        self.tip.send_replace(tip);
        tip
    }

    /// Submit signed transaction bytes; `Ok(tx id)` when it entered the mempool.
    ///
    /// Only the input lookups and the final admission hold the ledger lock:
    /// decoding and the phase-1 rules (signatures above all) run without it,
    /// against a snapshot of the inputs, which is compared again under the
    /// lock before the transaction is admitted (see [`Ledger::finish_submit`]).
    pub fn submit_tx(&self, tx_cbor: &[u8]) -> Result<TxId, Rejection> {
        let tx = rules::decode(tx_cbor)?;
        let slot = self.current_slot();
        let seen = self.ledger.lock().begin_submit(&tx);
        let inputs = tx.inputs();
        let resolve = |r: &UtxoRef| {
            inputs
                .iter()
                .position(|i| i == r)
                .and_then(|i| seen.get(i).cloned())
                .unwrap_or(UtxoState::Spent)
        };
        let record = rules::check(&tx, &resolve, &self.params, slot, Network::Devnet)?;
        self.ledger.lock().finish_submit(&tx, record, &seen, slot)
    }

    /// Faucet: create an output holding `value` at `address` (bech32, network
    /// id 0) at once, as a synthetic transaction in a block of its own.
    pub fn fund(&self, address: &str, value: Value) -> Result<UtxoRef, DevnetError> {
        let bytes = parse_devnet_address(address)?;
        self.fund_bytes(bytes, value)
    }

    /// [`Devnet::fund`] with raw address bytes (any network-0 Shelley address).
    pub fn fund_bytes(&self, address: Vec<u8>, value: Value) -> Result<UtxoRef, DevnetError> {
        let id = self.fund_many(vec![(address, value)])?;
        Ok(UtxoRef::new(id, 0))
    }

    /// Fund many addresses with one faucet transaction in one block (output
    /// `i` pays `outputs[i]`): seeding a load test costs one block, not thousands.
    pub fn fund_many(&self, outputs: Vec<(Vec<u8>, Value)>) -> Result<TxId, DevnetError> {
        if outputs.is_empty() {
            return Err(DevnetError::Value("nothing to fund".into()));
        }
        if outputs.len() > 1 << 16 {
            // An output index is 16 bits when it is spent.
            return Err(DevnetError::Value(
                "at most 65,536 outputs per faucet transaction".into(),
            ));
        }
        let mut records = Vec::with_capacity(outputs.len());
        for (address, value) in outputs {
            match crate::cardano::address::parse_shelley_bytes(&address) {
                Ok(a) if a.network_id == Network::Devnet.network_id() => {}
                Ok(_) => return Err(DevnetError::Address("not a network id 0 address".into())),
                Err(e) => return Err(DevnetError::Address(e.to_string())),
            }
            if value.coin == 0 {
                return Err(DevnetError::Value(
                    "a faucet output needs some lovelace".into(),
                ));
            }
            records.push(OutputRecord::plain(address, value));
        }
        let now = now_unix();
        let slot = self.slot_at(now);
        let (id, tip) = {
            let mut l = self.ledger.lock();
            let id = l.fund_many(records, slot, now);
            (id, l.tip())
        };
        self.tip.send_replace(tip);
        Ok(id)
    }

    /// Test hook: remove the last `n` blocks. Their submitted transactions go
    /// back to the mempool (ahead of those already waiting, in chain order)
    /// and are re-validated with it; faucet outputs created in those blocks
    /// disappear; outputs they spent are unspent again. Block 0 cannot be removed.
    pub fn rollback(&self, n: u64) -> Result<RollbackReport, DevnetError> {
        let slot = self.current_slot();
        let (report, tip) = {
            let mut l = self.ledger.lock();
            let report = l.rollback(n, slot)?;
            (report, l.tip())
        };
        self.tip.send_replace(tip);
        Ok(report)
    }

    /// Test hook: evict a waiting transaction (and anything in the mempool that depends on it).
    pub fn drop_from_mempool(&self, tx_id: &TxId) -> bool {
        let slot = self.current_slot();
        self.ledger.lock().drop_from_mempool(tx_id, slot)
    }

    /// How many times `tx_id` was submitted (accepted or not).
    pub fn submissions(&self, tx_id: &TxId) -> u32 {
        self.ledger.lock().submissions(tx_id)
    }

    /// Transactions waiting for a block, in arrival order.
    pub fn mempool(&self) -> Vec<TxId> {
        self.ledger.lock().mempool().to_vec()
    }

    /// Why a transaction left the mempool without a block (recent drops only).
    pub fn dropped_reason(&self, tx_id: &TxId) -> Option<String> {
        self.ledger.lock().dropped_reason(tx_id).map(str::to_owned)
    }

    /// The `network_magic` the API's `/genesis` announces.
    pub fn network_magic(&self) -> u32 {
        self.network_magic
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Test hook: announce another `network_magic` from now on (as if the
    /// endpoint behind a client's URL were swapped for another network's).
    pub fn set_network_magic(&self, magic: u32) {
        self.network_magic
            .store(magic, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn count_api_call(&self, method: &str, route: &str) {
        *self
            .api_calls
            .lock()
            .entry(format!("{method} {route}"))
            .or_insert(0) += 1;
    }

    /// Requests the Blockfrost-compatible API has served, by `METHOD route`
    /// (e.g. `GET /txs/{hash}/utxos`), since start or the last reset.
    pub fn api_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.api_calls.lock().clone()
    }

    /// Total of [`Devnet::api_calls`].
    pub fn api_call_count(&self) -> u64 {
        self.api_calls.lock().values().sum()
    }

    /// Forget the counts of [`Devnet::api_calls`].
    pub fn reset_api_calls(&self) {
        self.api_calls.lock().clear();
    }

    /// A receiver that sees every new tip.
    pub fn subscribe_tip(&self) -> watch::Receiver<Tip> {
        self.tip.subscribe()
    }

    /// Wait until the tip reaches `height`; `None` on timeout.
    pub async fn wait_for_height(&self, height: u64, timeout: Duration) -> Option<Tip> {
        let mut rx = self.tip.subscribe();
        let wait = rx.wait_for(|t| t.height >= height);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(t)) => Some(*t),
            _ => None,
        }
    }

    /// Read access to the ledger for the HTTP API and tests. Keep `f` short:
    /// it runs with the ledger locked.
    pub fn with_ledger<R>(&self, f: impl FnOnce(&Ledger) -> R) -> R {
        f(&self.ledger.lock())
    }
}

/// The block producer: one block per `period` until told to stop or the devnet is gone.
///
/// It holds only a `Weak` reference so that it never keeps the devnet alive.
async fn produce_blocks(devnet: Weak<Devnet>, mut stop: watch::Receiver<bool>, period: Duration) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
        }
        let Some(devnet) = devnet.upgrade() else {
            break;
        };
        devnet.produce_block();
    }
    tracing::debug!("devnet block producer stopped");
}

#[async_trait]
impl ChainProvider for Devnet {
    fn network(&self) -> Network {
        Network::Devnet
    }

    async fn utxos(&self, refs: &[UtxoRef]) -> Vec<UtxoState> {
        let started = Instant::now();
        let out = {
            let l = self.ledger.lock();
            refs.iter().map(|r| l.utxo_state(r)).collect()
        };
        observe(self.network(), "utxos", started);
        out
    }

    async fn tip(&self) -> Result<Tip, ChainError> {
        Ok(*self.tip.borrow())
    }

    async fn protocol_params(&self) -> Result<Arc<ProtocolParams>, ChainError> {
        Ok(self.params.clone())
    }

    async fn submit(&self, tx_cbor: &[u8]) -> SubmitOutcome {
        let started = Instant::now();
        let out = match self.submit_tx(tx_cbor) {
            Ok(_) => SubmitOutcome::Accepted,
            Err(r) => SubmitOutcome::Rejected(r.outcome_reason()),
        };
        observe(self.network(), "submit", started);
        out
    }

    async fn evidence(&self, tx_id: &TxId) -> Result<Evidence, ChainError> {
        Ok(self.ledger.lock().evidence(tx_id))
    }

    fn slot_at(&self, unix_seconds: i64) -> u64 {
        u64::try_from(unix_seconds.saturating_sub(self.start_unix)).unwrap_or(0)
    }

    async fn output_owner(&self, r: &UtxoRef) -> Result<Option<Vec<u8>>, ChainError> {
        let ledger = self.ledger.lock();
        Ok(ledger
            .tx(&r.tx_id)
            .and_then(|t| t.outputs.get(r.index as usize))
            .map(|o| o.address.clone()))
    }
}
