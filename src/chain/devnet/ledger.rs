//! The devnet's ledger state: confirmed UTxO set, mempool, full block and
//! transaction history, and the operations that change them (submit, block
//! production, faucet, rollback).
//!
//! Everything here is synchronous and takes the current slot and time as
//! arguments, so it is deterministic and testable without a runtime or a
//! clock; [`super::Devnet`] owns one `Ledger` behind a mutex and supplies time.
//!
//! Validation is not decided here: every submitted transaction goes through
//! [`super::rules`], which applies the same phase-1 rules the verifier applies
//! (`cardano::phase1`); the ledger only says what each input resolves to. When
//! a block is built, each waiting transaction is checked again for what can
//! have changed since (see `Ledger::recheck`).
//!
//! Memory is kept small per unspent output (a devnet seeded with 100,000
//! outputs fits in a few tens of MiB; BENCHMARKS.md has the figure):
//!
//! * outputs are stored as [`Outputs`]: per output an interned address (one
//!   shared allocation per distinct address), the lovelace, and a boxed extra
//!   only when the output carries tokens, a datum or a reference script;
//! * the unspent set is not stored at all: an output is unspent when its
//!   transaction is in a block and no block transaction spent it
//!   (`spent_by`), and its chain position follows from its transaction's;
//! * the per-address index is one ordered set of (address, position) pairs
//!   rather than a map of small trees (a one-entry tree costs a whole node).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::cardano::{
    AssetId, Network, ParsedTx, ProtocolParams, RefScript, TxId, UtxoInfo, UtxoRef, UtxoState,
    Value,
};
use crate::chain::devnet::rules::{self, Rejection};
use crate::chain::{Evidence, Tip};

/// Position of an output on chain: (block height, index of its transaction in
/// the block, output index). Orders address listings oldest first.
pub type ChainPos = (u64, u32, u32);

/// Most bytes of transactions in one block (mainnet's `max_block_size`).
pub const MAX_BLOCK_BODY_SIZE: u64 = 90_112;
/// Slots per epoch (mainnet's; the devnet has 1-second slots).
pub const EPOCH_LENGTH: u64 = 432_000;
/// How many dropped-transaction reasons are remembered for diagnostics.
const DROPPED_MEMORY: usize = 10_000;

/// One transaction output as the ledger keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    pub address: Vec<u8>,
    pub value: Value,
    pub datum_hash: Option<[u8; 32]>,
    /// CBOR of an inline datum.
    pub inline_datum: Option<Vec<u8>>,
    pub script_ref_hash: Option<[u8; 28]>,
    /// The reference script's size as the Conway fee rule counts it.
    pub script_ref_size: Option<u64>,
}

impl OutputRecord {
    pub fn plain(address: Vec<u8>, value: Value) -> Self {
        OutputRecord {
            address,
            value,
            datum_hash: None,
            inline_datum: None,
            script_ref_hash: None,
            script_ref_size: None,
        }
    }
}

/// The outputs of one transaction, stored compactly (32 bytes per plain
/// output plus its share of an interned address). [`OutputRecord`]s go in
/// (`collect()`) and come out (`get`, `iter`) as values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs(Box<[CompactOutput]>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct CompactOutput {
    address: Arc<[u8]>,
    coin: u64,
    /// Tokens, datum, reference script: absent for a plain ADA output.
    extra: Option<Box<OutputExtra>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct OutputExtra {
    assets: BTreeMap<AssetId, u64>,
    datum_hash: Option<[u8; 32]>,
    inline_datum: Option<Box<[u8]>>,
    script_ref_hash: Option<[u8; 28]>,
    script_ref_size: Option<u64>,
}

impl CompactOutput {
    fn from_record(o: OutputRecord) -> Self {
        let plain = o.value.assets.is_empty()
            && o.datum_hash.is_none()
            && o.inline_datum.is_none()
            && o.script_ref_hash.is_none()
            && o.script_ref_size.is_none();
        CompactOutput {
            address: Arc::from(o.address),
            coin: o.value.coin,
            extra: (!plain).then(|| {
                Box::new(OutputExtra {
                    assets: o.value.assets,
                    datum_hash: o.datum_hash,
                    inline_datum: o.inline_datum.map(Vec::into_boxed_slice),
                    script_ref_hash: o.script_ref_hash,
                    script_ref_size: o.script_ref_size,
                })
            }),
        }
    }

    fn value(&self) -> Value {
        Value {
            coin: self.coin,
            assets: self
                .extra
                .as_ref()
                .map(|e| e.assets.clone())
                .unwrap_or_default(),
        }
    }

    fn record(&self) -> OutputRecord {
        let e = self.extra.as_deref();
        OutputRecord {
            address: self.address.to_vec(),
            value: self.value(),
            datum_hash: e.and_then(|e| e.datum_hash),
            inline_datum: e.and_then(|e| e.inline_datum.as_ref()).map(|d| d.to_vec()),
            script_ref_hash: e.and_then(|e| e.script_ref_hash),
            script_ref_size: e.and_then(|e| e.script_ref_size),
        }
    }
}

impl Outputs {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Output `i`, expanded.
    pub fn get(&self, i: usize) -> Option<OutputRecord> {
        self.0.get(i).map(CompactOutput::record)
    }

    /// Every output, expanded, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = OutputRecord> + '_ {
        self.0.iter().map(CompactOutput::record)
    }

    /// The owner of output `i` (no copy).
    pub fn address(&self, i: usize) -> Option<&[u8]> {
        self.0.get(i).map(|o| &*o.address)
    }

    /// The size of the reference script output `i` carries, if any.
    pub fn script_ref_size(&self, i: usize) -> Option<u64> {
        self.0
            .get(i)
            .and_then(|o| o.extra.as_ref())
            .and_then(|e| e.script_ref_size)
    }

    /// The value of output `i`.
    pub fn value(&self, i: usize) -> Option<Value> {
        self.0.get(i).map(CompactOutput::value)
    }

    /// Lovelace of every output.
    pub fn coins(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|o| o.coin)
    }

    /// Whether output `i` holds some of `asset`.
    pub fn holds(&self, i: usize, asset: &AssetId) -> bool {
        self.0
            .get(i)
            .and_then(|o| o.extra.as_ref())
            .is_some_and(|e| e.assets.contains_key(asset))
    }
}

impl FromIterator<OutputRecord> for Outputs {
    fn from_iter<I: IntoIterator<Item = OutputRecord>>(iter: I) -> Self {
        Outputs(iter.into_iter().map(CompactOutput::from_record).collect())
    }
}

impl From<Vec<OutputRecord>> for Outputs {
    fn from(v: Vec<OutputRecord>) -> Self {
        v.into_iter().collect()
    }
}

/// Where a transaction came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOrigin {
    /// The synthetic transaction that creates the configured genesis UTxOs.
    Genesis,
    /// A synthetic transaction created by [`Ledger::fund`].
    Faucet,
    /// A real, signed transaction submitted by someone.
    Submitted,
}

/// Where a known transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Mempool,
    InBlock { height: u64, index: u32 },
}

/// Counters of transaction body features, for Blockfrost's `/txs/{hash}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCounts {
    pub withdrawals: u32,
    pub certificates: u32,
    pub mint_or_burn: u32,
    pub redeemers: u32,
}

/// Everything recorded about one transaction (history lookups are served from it).
#[derive(Clone, Debug)]
pub struct TxRecord {
    pub id: TxId,
    pub origin: TxOrigin,
    pub inputs: Vec<UtxoRef>,
    pub collateral_inputs: Vec<UtxoRef>,
    pub reference_inputs: Vec<UtxoRef>,
    pub outputs: Outputs,
    pub fee: u64,
    pub size: u64,
    pub invalid_before: Option<u64>,
    pub invalid_hereafter: Option<u64>,
    pub counts: TxCounts,
    /// The submitted bytes (`None` for synthetic transactions).
    pub cbor: Option<Arc<[u8]>>,
    pub status: TxStatus,
}

/// One block of the devnet chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    pub height: u64,
    pub slot: u64,
    /// Unix seconds.
    pub time: i64,
    pub hash: [u8; 32],
    pub prev: Option<[u8; 32]>,
    pub txs: Vec<TxId>,
    /// Sum of the sizes of its transactions.
    pub size: u64,
    pub fees: u64,
    /// Sum of the lovelace of every output of its transactions.
    pub output: u128,
}

/// What [`Ledger::rollback`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollbackReport {
    pub removed_blocks: u64,
    /// Submitted transactions of the removed blocks that are back in the mempool.
    pub requeued: Vec<TxId>,
    /// Transactions (from the removed blocks or the mempool) no longer valid, dropped.
    pub dropped: Vec<TxId>,
    /// Synthetic faucet transactions of the removed blocks, gone with their outputs.
    pub removed_faucet: Vec<TxId>,
}

/// Why a ledger operation could not be done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot roll back {requested} blocks: the chain has {available} blocks above genesis")]
    RollbackTooDeep { requested: u64, available: u64 },
    #[error("value overflow")]
    Overflow,
}

/// The devnet's whole state. See the module docs.
pub struct Ledger {
    network: Network,
    params: Arc<ProtocolParams>,
    start_unix: i64,
    blocks: Vec<BlockRecord>,
    txs: HashMap<TxId, TxRecord>,
    /// Confirmed spends: output -> the transaction that consumed it. An
    /// output of a block transaction that is not in here is unspent.
    spent_by: HashMap<UtxoRef, TxId>,
    /// Confirmed unspent outputs by owner, in chain order.
    by_address: BTreeSet<(Arc<[u8]>, ChainPos)>,
    /// Every address an output on chain has (had), interned, with the
    /// number of such outputs (an address with none is "never used": 404).
    addresses: HashMap<Arc<[u8]>, u64>,
    /// Waiting transactions, in arrival order.
    mempool: Vec<TxId>,
    /// Outputs spent by mempool transactions.
    mempool_spent: HashMap<UtxoRef, TxId>,
    submissions: HashMap<TxId, u32>,
    dropped: VecDeque<(TxId, String)>,
    /// Bumped for every block ever made, so a block re-made at the same height after a
    /// rollback gets a different hash.
    block_nonce: u64,
    faucet_counter: u64,
}

fn blake2b256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = pallas_crypto::hash::Hasher::<256>::new();
    for p in parts {
        h.input(p);
    }
    *h.finalize()
}

impl Ledger {
    /// A chain whose block 0 (slot 0, `start_unix`) holds the genesis outputs.
    pub fn new(
        network: Network,
        params: Arc<ProtocolParams>,
        start_unix: i64,
        genesis: Vec<OutputRecord>,
    ) -> Self {
        let mut ledger = Ledger {
            network,
            params,
            start_unix,
            blocks: Vec::new(),
            txs: HashMap::new(),
            spent_by: HashMap::new(),
            by_address: BTreeSet::new(),
            addresses: HashMap::new(),
            mempool: Vec::new(),
            mempool_spent: HashMap::new(),
            submissions: HashMap::new(),
            dropped: VecDeque::new(),
            block_nonce: 0,
            faucet_counter: 0,
        };
        let mut txs = Vec::new();
        if !genesis.is_empty() {
            // Deterministic for a given configuration, so genesis UTxO refs are stable across restarts.
            let mut seed: Vec<u8> = b"x402-devnet/genesis/v1".to_vec();
            for o in &genesis {
                seed.extend_from_slice(&(o.address.len() as u32).to_be_bytes());
                seed.extend_from_slice(&o.address);
                seed.extend_from_slice(&o.value.coin.to_be_bytes());
                for (id, q) in &o.value.assets {
                    seed.extend_from_slice(&id.policy);
                    seed.extend_from_slice(&id.name);
                    seed.extend_from_slice(&q.to_be_bytes());
                }
            }
            let id = TxId(blake2b256(&[&seed]));
            ledger
                .txs
                .insert(id, synthetic(id, TxOrigin::Genesis, genesis));
            ledger.apply_to_chain(id, 0, 0);
            txs.push(id);
        }
        ledger.push_block(txs, 0, start_unix);
        ledger
    }

    pub fn network(&self) -> Network {
        self.network
    }

    pub fn params(&self) -> &Arc<ProtocolParams> {
        &self.params
    }

    /// Unix time of slot 0.
    pub fn start_unix(&self) -> i64 {
        self.start_unix
    }

    pub fn tip(&self) -> Tip {
        // `new` always creates block 0 and rollback never removes it, so there
        // is a last block; the fallback (slot 0 at start) is never used.
        match self.blocks.last() {
            Some(b) => Tip {
                slot: b.slot,
                height: b.height,
                time: b.time,
                hash: b.hash,
            },
            None => Tip {
                slot: 0,
                height: 0,
                time: self.start_unix,
                hash: [0; 32],
            },
        }
    }

    pub fn block(&self, height: u64) -> Option<&BlockRecord> {
        usize::try_from(height)
            .ok()
            .and_then(|h| self.blocks.get(h))
    }

    pub fn blocks(&self) -> &[BlockRecord] {
        &self.blocks
    }

    pub fn tx(&self, id: &TxId) -> Option<&TxRecord> {
        self.txs.get(id)
    }

    /// The transaction that consumed `r` on chain, if any.
    pub fn consumed_by(&self, r: &UtxoRef) -> Option<TxId> {
        self.spent_by.get(r).copied()
    }

    pub fn mempool(&self) -> &[TxId] {
        &self.mempool
    }

    pub fn submissions(&self, id: &TxId) -> u32 {
        self.submissions.get(id).copied().unwrap_or(0)
    }

    /// Why a transaction was dropped from the mempool (recent drops only).
    pub fn dropped_reason(&self, id: &TxId) -> Option<&str> {
        self.dropped
            .iter()
            .rev()
            .find(|(d, _)| d == id)
            .map(|(_, r)| r.as_str())
    }

    fn info(&self, r: &UtxoRef) -> Option<UtxoInfo> {
        let outputs = &self.txs.get(&r.tx_id)?.outputs;
        let i = usize::try_from(r.index).ok()?;
        Some(UtxoInfo {
            address: outputs.address(i)?.to_vec(),
            value: outputs.value(i)?,
            reference_script: outputs
                .script_ref_size(i)
                .map_or(RefScript::None, RefScript::Size),
        })
    }

    /// Where `r` sits on chain, when it is a confirmed unspent output.
    fn unspent_pos(&self, r: &UtxoRef) -> Option<ChainPos> {
        let tx = self.txs.get(&r.tx_id)?;
        let TxStatus::InBlock { height, index } = tx.status else {
            return None;
        };
        if (r.index as usize) >= tx.outputs.len() || self.spent_by.contains_key(r) {
            return None;
        }
        Some((height, index, r.index))
    }

    fn is_unspent(&self, r: &UtxoRef) -> bool {
        self.unspent_pos(r).is_some()
    }

    /// The confirmed view, as a Blockfrost client would see it: unspent at the
    /// tip, spent by a transaction in a block, or unknown (the producing
    /// transaction is not in a block yet). An output of a transaction this
    /// chain never saw is not on chain (`Spent`).
    pub fn utxo_state(&self, r: &UtxoRef) -> UtxoState {
        if self.is_unspent(r) {
            return match self.info(r) {
                Some(i) => UtxoState::Unspent(i),
                None => UtxoState::Unknown("ledger inconsistency".into()),
            };
        }
        match self.txs.get(&r.tx_id) {
            Some(tx) if matches!(tx.status, TxStatus::InBlock { .. }) => {
                if (r.index as usize) >= tx.outputs.len() || self.spent_by.contains_key(r) {
                    UtxoState::Spent
                } else {
                    UtxoState::Unknown("ledger inconsistency".into())
                }
            }
            Some(_) => UtxoState::Unknown(format!("transaction {} is not yet in a block", r.tx_id)),
            // The ledger has seen every transaction of its chain, in a block
            // or waiting: one it never saw produced nothing here. (Blockfrost
            // cannot say that: its 404 may be indexer lag.)
            None => UtxoState::Spent,
        }
    }

    /// What a new transaction's input resolves to: the confirmed UTxO set with
    /// the mempool applied on top (outputs of waiting transactions can be
    /// spent; outputs they spend cannot). A missing output is `Spent`, which
    /// the rules report as `BadInputsUTxO`.
    fn resolve_pending(&self, r: &UtxoRef) -> UtxoState {
        if self.mempool_spent.contains_key(r) {
            return UtxoState::Spent;
        }
        if self.is_unspent(r) {
            return self
                .info(r)
                .map(UtxoState::Unspent)
                .unwrap_or(UtxoState::Spent);
        }
        match self.txs.get(&r.tx_id) {
            Some(tx) if tx.status == TxStatus::Mempool => self
                .info(r)
                .map(UtxoState::Unspent)
                .unwrap_or(UtxoState::Spent),
            _ => UtxoState::Spent,
        }
    }

    fn resolve_confirmed(&self, r: &UtxoRef) -> UtxoState {
        if self.is_unspent(r) {
            self.info(r)
                .map(UtxoState::Unspent)
                .unwrap_or(UtxoState::Spent)
        } else {
            UtxoState::Spent
        }
    }

    pub fn evidence(&self, id: &TxId) -> Evidence {
        match self.txs.get(id).map(|t| t.status) {
            Some(TxStatus::InBlock { height, .. }) => match self.block(height) {
                Some(b) => Evidence::Included {
                    depth: self.tip().height.saturating_sub(height),
                    height,
                    slot: b.slot,
                    block: b.hash,
                },
                None => Evidence::NotSeen,
            },
            Some(TxStatus::Mempool) => Evidence::Mempool,
            None => Evidence::NotSeen,
        }
    }

    /// One page of the confirmed unspent outputs of `address`, in chain order
    /// (or reversed with `desc`), keeping only those `keep` accepts. `None`:
    /// the address never held anything on chain, which Blockfrost answers with 404.
    pub fn address_utxos(
        &self,
        address: &[u8],
        skip: usize,
        take: usize,
        desc: bool,
        asset: Option<&AssetId>,
    ) -> Option<Vec<(ChainPos, UtxoRef)>> {
        let (key, _) = self.addresses.get_key_value(address)?;
        let lo = (key.clone(), (0, 0, 0));
        let hi = (key.clone(), (u64::MAX, u32::MAX, u32::MAX));
        let to_ref = |pos: &ChainPos| -> Option<(ChainPos, UtxoRef)> {
            let id = *self.block(pos.0)?.txs.get(pos.1 as usize)?;
            Some((*pos, UtxoRef::new(id, pos.2)))
        };
        let wanted = |(_, r): &(ChainPos, UtxoRef)| {
            asset.is_none_or(|a| {
                self.txs
                    .get(&r.tx_id)
                    .is_some_and(|t| t.outputs.holds(r.index as usize, a))
            })
        };
        let range = self.by_address.range(lo..=hi).map(|(_, p)| p);
        let page = if desc {
            range
                .rev()
                .filter_map(to_ref)
                .filter(wanted)
                .skip(skip)
                .take(take)
                .collect()
        } else {
            range
                .filter_map(to_ref)
                .filter(wanted)
                .skip(skip)
                .take(take)
                .collect()
        };
        Some(page)
    }

    /// Blocks from the first one at or after `slot` to the tip.
    pub fn blocks_since_slot(&self, slot: u64) -> &[BlockRecord] {
        let first = self.blocks.partition_point(|b| b.slot < slot);
        &self.blocks[first..]
    }

    /// Submit a signed transaction: it must pass the phase-1 rules against the
    /// confirmed state plus the mempool, at `slot`. Counted in
    /// [`Ledger::submissions`] whenever the bytes decode to a transaction.
    pub fn submit(&mut self, bytes: &[u8], slot: u64) -> Result<TxId, Rejection> {
        let decoded = rules::decode(bytes)?;
        self.submit_decoded(&decoded, slot)
    }

    /// [`Ledger::submit`] for a transaction decoded beforehand (so that the
    /// caller can decode without holding the ledger lock).
    pub fn submit_decoded(&mut self, tx: &ParsedTx, slot: u64) -> Result<TxId, Rejection> {
        let id = tx.id();
        let n = self.submissions.entry(id).or_insert(0);
        *n = n.saturating_add(1);
        let record = rules::check(
            tx,
            &|r| self.resolve_pending(r),
            &self.params,
            slot,
            self.network,
        )?;
        self.add_to_mempool(record);
        Ok(id)
    }

    /// First half of a submission whose phase-1 check runs without the
    /// ledger lock: count it and say what its inputs resolve to now.
    pub fn begin_submit(&mut self, tx: &ParsedTx) -> Vec<UtxoState> {
        let n = self.submissions.entry(tx.id()).or_insert(0);
        *n = n.saturating_add(1);
        tx.inputs()
            .iter()
            .map(|r| self.resolve_pending(r))
            .collect()
    }

    /// Second half: `record` passed the rules against `seen` (the answer of
    /// [`Ledger::begin_submit`]). If the inputs still resolve the same way it
    /// enters the mempool at once; otherwise (something spent or restored an
    /// input meanwhile) the rules run again here, against the state now.
    pub fn finish_submit(
        &mut self,
        tx: &ParsedTx,
        record: TxRecord,
        seen: &[UtxoState],
        slot: u64,
    ) -> Result<TxId, Rejection> {
        let unchanged = tx
            .inputs()
            .iter()
            .zip(seen)
            .all(|(r, s)| self.resolve_pending(r) == *s);
        let record = if unchanged && seen.len() == tx.inputs().len() {
            record
        } else {
            rules::check(
                tx,
                &|r| self.resolve_pending(r),
                &self.params,
                slot,
                self.network,
            )?
        };
        let id = record.id;
        self.add_to_mempool(record);
        Ok(id)
    }

    fn add_to_mempool(&mut self, mut record: TxRecord) {
        record.status = TxStatus::Mempool;
        for i in &record.inputs {
            self.mempool_spent.insert(*i, record.id);
        }
        self.mempool.push(record.id);
        self.txs.insert(record.id, record);
    }

    fn forget_dropped(&mut self, id: TxId, why: String) {
        self.txs.remove(&id);
        if self.dropped.len() >= DROPPED_MEMORY {
            self.dropped.pop_front();
        }
        tracing::debug!(tx = %id, reason = %why, "devnet dropped a transaction");
        self.dropped.push_back((id, why));
    }

    /// Re-check `candidates` (in order) as a fresh mempool on top of the
    /// confirmed state; keep the valid ones, drop the rest. Returns the dropped ids.
    fn rebuild_mempool(&mut self, candidates: Vec<TxId>, slot: u64) -> Vec<TxId> {
        self.mempool.clear();
        self.mempool_spent.clear();
        // Taken out of the records until re-validated, so none resolves against a later one.
        let pending: Vec<TxRecord> = candidates
            .iter()
            .filter_map(|id| self.txs.remove(id))
            .collect();
        let mut dropped = Vec::new();
        for rec in pending {
            let id = rec.id;
            match self.recheck(&rec, slot, true) {
                Ok(()) => self.add_to_mempool(rec),
                Err(why) => {
                    self.forget_dropped(id, why);
                    dropped.push(id);
                }
            }
        }
        dropped
    }

    /// Check again a transaction that was accepted earlier, against the
    /// confirmed state (plus the mempool when `with_mempool`) at `slot`.
    ///
    /// Only two things can have changed since it passed the full phase-1
    /// rules: the slot (its validity interval) and the availability of its
    /// inputs (a rollback, an eviction, an expired parent). Everything else
    /// the rules look at (witnesses, fee, size, value, network) is a function
    /// of the transaction and of those same inputs. So the quick check tests
    /// those two, and only when one fails do the full rules run again, to name
    /// the failure in the node's words. This keeps signature verification out
    /// of block production, which holds the ledger lock.
    fn recheck(&self, rec: &TxRecord, slot: u64, with_mempool: bool) -> Result<(), String> {
        let resolve = |r: &UtxoRef| {
            if with_mempool {
                self.resolve_pending(r)
            } else {
                self.resolve_confirmed(r)
            }
        };
        let in_interval = rec.invalid_before.is_none_or(|s| slot >= s)
            && rec.invalid_hereafter.is_none_or(|t| slot < t);
        if in_interval
            && rec
                .inputs
                .iter()
                .all(|r| matches!(resolve(r), UtxoState::Unspent(_)))
        {
            return Ok(());
        }
        let Some(cbor) = &rec.cbor else {
            return Err("synthetic transaction cannot be re-validated".into());
        };
        let decoded = rules::decode(cbor).map_err(|r| r.message)?;
        rules::check(&decoded, &resolve, &self.params, slot, self.network)
            .map(|_| ())
            .map_err(|r| r.message)
    }

    /// Build the next block at `slot`/`time` from the mempool, in arrival
    /// order: each transaction is validated again at the block's slot against
    /// the state left by the ones before it; invalid ones are dropped. A
    /// transaction that would overflow the block waits, with everything after
    /// it, for the next block.
    pub fn produce_block(&mut self, slot: u64, time: i64) -> Tip {
        let tip = self.tip();
        let slot = slot.max(tip.slot);
        let time = time.max(tip.time);
        let height = tip.height + 1;
        // Only the block's share of the mempool is touched: the transactions
        // that stay keep their places and their input claims, so the work
        // under the ledger lock grows with the block, not with the backlog.
        // (Rebuilding the whole mempool here made every block stall requests
        // for tens of milliseconds once a backlog built up.)
        let mut included = Vec::new();
        let mut size = 0u64;
        let mut taken = 0usize;
        while let Some(&id) = self.mempool.get(taken) {
            let Some(rec) = self.txs.get(&id) else {
                taken += 1;
                continue;
            };
            if size.saturating_add(rec.size) > MAX_BLOCK_BODY_SIZE {
                break;
            }
            taken += 1;
            let tx_size = rec.size;
            let verdict = self.recheck(rec, slot, false);
            let inputs = rec.inputs.clone();
            for i in &inputs {
                if self.mempool_spent.get(i) == Some(&id) {
                    self.mempool_spent.remove(i);
                }
            }
            match verdict {
                Ok(()) => {
                    size += tx_size;
                    self.apply_to_chain(id, height, included.len() as u32);
                    included.push(id);
                }
                // Waiting transactions that spend its outputs fail their own
                // re-check when their turn comes.
                Err(why) => self.forget_dropped(id, why),
            }
        }
        self.mempool.drain(..taken);
        self.push_block(included, slot, time);
        self.tip()
    }

    /// Record a block whose transactions are already applied.
    fn push_block(&mut self, txs: Vec<TxId>, slot: u64, time: i64) {
        let height = self.blocks.len() as u64;
        let prev = self.blocks.last().map(|b| b.hash);
        self.block_nonce += 1;
        let mut size = 0u64;
        let mut fees = 0u64;
        let mut output = 0u128;
        let mut seed = Vec::with_capacity(96 + txs.len() * 32);
        seed.extend_from_slice(b"x402-devnet/block/v1");
        seed.extend_from_slice(&prev.unwrap_or([0; 32]));
        seed.extend_from_slice(&height.to_be_bytes());
        seed.extend_from_slice(&slot.to_be_bytes());
        seed.extend_from_slice(&time.to_be_bytes());
        seed.extend_from_slice(&self.block_nonce.to_be_bytes());
        seed.extend_from_slice(&self.start_unix.to_be_bytes());
        for id in &txs {
            seed.extend_from_slice(&id.0);
            if let Some(t) = self.txs.get(id) {
                size = size.saturating_add(t.size);
                fees = fees.saturating_add(t.fee);
                output += t.outputs.coins().map(u128::from).sum::<u128>();
            }
        }
        let hash = blake2b256(&[&seed]);
        self.blocks.push(BlockRecord {
            height,
            slot,
            time,
            hash,
            prev,
            txs,
            size,
            fees,
            output,
        });
    }

    fn apply_to_chain(&mut self, id: TxId, height: u64, index: u32) {
        let Some(inputs) = self.txs.get(&id).map(|r| r.inputs.clone()) else {
            return;
        };
        for input in inputs {
            if let Some(pos) = self.unspent_pos(&input)
                && let Some(addr) = self.address_arc(&input)
            {
                self.by_address.remove(&(addr, pos));
            }
            self.spent_by.insert(input, id);
        }
        let Ledger {
            txs,
            addresses,
            by_address,
            ..
        } = self;
        let Some(rec) = txs.get_mut(&id) else {
            return;
        };
        rec.status = TxStatus::InBlock { height, index };
        for (i, out) in rec.outputs.0.iter_mut().enumerate() {
            // Share one copy of each address across the whole ledger.
            let canonical = match addresses.get_key_value(&*out.address) {
                Some((k, _)) => k.clone(),
                None => out.address.clone(),
            };
            *addresses.entry(canonical.clone()).or_insert(0) += 1;
            out.address = canonical.clone();
            by_address.insert((canonical, (height, index, i as u32)));
        }
    }

    /// The interned address of output `r` (for index keys).
    fn address_arc(&self, r: &UtxoRef) -> Option<Arc<[u8]>> {
        self.txs
            .get(&r.tx_id)?
            .outputs
            .0
            .get(usize::try_from(r.index).ok()?)
            .map(|o| o.address.clone())
    }

    /// Undo [`Ledger::apply_to_chain`]: remove the outputs, restore the spent inputs.
    fn unapply(&mut self, id: TxId) {
        let Ledger {
            txs,
            addresses,
            by_address,
            spent_by,
            ..
        } = self;
        let Some(rec) = txs.get_mut(&id) else {
            return;
        };
        if let TxStatus::InBlock { height, index } = rec.status {
            for (i, out) in rec.outputs.0.iter().enumerate() {
                let r = UtxoRef::new(id, i as u32);
                if !spent_by.contains_key(&r) {
                    by_address.remove(&(out.address.clone(), (height, index, i as u32)));
                }
                if let Some(n) = addresses.get_mut(&*out.address) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        addresses.remove(&*out.address);
                    }
                }
            }
        }
        rec.status = TxStatus::Mempool;
        let inputs = rec.inputs.clone();
        for input in inputs {
            self.spent_by.remove(&input);
            if let Some(pos) = self.unspent_pos(&input)
                && let Some(addr) = self.address_arc(&input)
            {
                self.by_address.insert((addr, pos));
            }
        }
    }

    /// Create an output at once, as a synthetic faucet transaction in a block
    /// of its own (so history lookups find it like any other transaction).
    pub fn fund(&mut self, address: Vec<u8>, value: Value, slot: u64, time: i64) -> UtxoRef {
        let id = self.fund_many(vec![OutputRecord::plain(address, value)], slot, time);
        UtxoRef::new(id, 0)
    }

    /// Create several outputs at once with one synthetic faucet transaction
    /// (output `i` is `outputs[i]`) in a block of its own; returns its id.
    pub fn fund_many(&mut self, outputs: Vec<OutputRecord>, slot: u64, time: i64) -> TxId {
        self.faucet_counter += 1;
        let mut seed: Vec<u8> = b"x402-devnet/faucet/v1".to_vec();
        seed.extend_from_slice(&self.start_unix.to_be_bytes());
        seed.extend_from_slice(&self.faucet_counter.to_be_bytes());
        seed.extend_from_slice(&self.block_nonce.to_be_bytes());
        for o in &outputs {
            seed.extend_from_slice(&o.address);
        }
        let id = TxId(blake2b256(&[&seed]));
        self.txs
            .insert(id, synthetic(id, TxOrigin::Faucet, outputs));
        let tip = self.tip();
        let height = tip.height + 1;
        self.apply_to_chain(id, height, 0);
        self.push_block(vec![id], slot.max(tip.slot), time.max(tip.time));
        id
    }

    /// Remove the last `n` blocks (never block 0). Their submitted
    /// transactions go back to the mempool, ahead of the ones already waiting
    /// and in their original order, and the whole mempool is validated again
    /// at `slot` (what no longer passes is dropped). Faucet transactions of the
    /// removed blocks disappear with their outputs. Spent outputs are restored.
    pub fn rollback(&mut self, n: u64, slot: u64) -> Result<RollbackReport, LedgerError> {
        let available = self.tip().height;
        if n > available {
            return Err(LedgerError::RollbackTooDeep {
                requested: n,
                available,
            });
        }
        let mut report = RollbackReport {
            removed_blocks: n,
            ..Default::default()
        };
        let mut requeue_rev: Vec<TxId> = Vec::new();
        for _ in 0..n {
            let Some(block) = self.blocks.pop() else {
                break;
            };
            for id in block.txs.iter().rev() {
                self.unapply(*id);
                match self.txs.get(id).map(|t| t.origin) {
                    Some(TxOrigin::Submitted) => requeue_rev.push(*id),
                    _ => {
                        self.txs.remove(id);
                        report.removed_faucet.push(*id);
                    }
                }
            }
        }
        requeue_rev.reverse();
        let mut candidates = requeue_rev.clone();
        candidates.extend(std::mem::take(&mut self.mempool));
        report.dropped = self.rebuild_mempool(candidates, slot);
        report.requeued = requeue_rev
            .into_iter()
            .filter(|id| self.mempool.contains(id))
            .collect();
        Ok(report)
    }

    /// Test hook: remove a waiting transaction as if the node had evicted it
    /// (its dependants in the mempool go too). `false` if it was not waiting.
    pub fn drop_from_mempool(&mut self, id: &TxId, slot: u64) -> bool {
        let Some(pos) = self.mempool.iter().position(|m| m == id) else {
            return false;
        };
        let mut rest = std::mem::take(&mut self.mempool);
        rest.remove(pos);
        self.forget_dropped(*id, "evicted by the test hook".into());
        self.rebuild_mempool(rest, slot);
        true
    }
}

fn synthetic(id: TxId, origin: TxOrigin, outputs: Vec<OutputRecord>) -> TxRecord {
    TxRecord {
        id,
        origin,
        inputs: Vec::new(),
        collateral_inputs: Vec::new(),
        reference_inputs: Vec::new(),
        outputs: outputs.into(),
        fee: 0,
        size: 0,
        invalid_before: None,
        invalid_hereafter: None,
        counts: TxCounts::default(),
        cbor: None,
        status: TxStatus::Mempool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_round_trip_and_stay_small() {
        let plain = OutputRecord::plain(vec![0x60; 29], Value::lovelace(5));
        let mut rich = OutputRecord::plain(vec![0x70; 29], Value::lovelace(7));
        rich.value.assets.insert(
            AssetId {
                policy: [1; 28],
                name: b"t".to_vec(),
            },
            3,
        );
        rich.datum_hash = Some([2; 32]);
        rich.inline_datum = Some(vec![0xd8, 0x79, 0x80]);
        rich.script_ref_hash = Some([3; 28]);
        let outs: Outputs = vec![plain.clone(), rich.clone()].into();
        assert_eq!(outs.len(), 2);
        assert_eq!(outs.get(0), Some(plain.clone()));
        assert_eq!(outs.get(1), Some(rich.clone()));
        assert_eq!(outs.iter().collect::<Vec<_>>(), vec![plain, rich]);
        assert_eq!(outs.coins().collect::<Vec<_>>(), vec![5, 7]);
        assert!(outs.holds(
            1,
            &AssetId {
                policy: [1; 28],
                name: b"t".to_vec()
            }
        ));
        assert_eq!(outs.get(2), None);
        // A plain output is an address pointer, the lovelace and an empty box pointer.
        assert_eq!(std::mem::size_of::<CompactOutput>(), 32);
    }
}
