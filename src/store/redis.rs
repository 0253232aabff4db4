//! The shared store: Redis, arbitrating every replica of the facilitator.
//!
//! Every operation that reads and then writes is one Lua script, so Redis
//! executes it atomically and it is the single arbiter of reservations and of
//! the settlement journal. The scripts live in `src/store/lua/`, are compiled
//! into the binary, are loaded once at startup and are called by their SHA1
//! (`EVALSHA`, with a `SCRIPT LOAD` fallback on `NOSCRIPT`, which covers a
//! restarted server or a newly promoted master).
//!
//! # Key layout (prefix `p`, default `x402:`)
//!
//! | key | type | content | expiry |
//! |---|---|---|---|
//! | `{p}resv:<txid>#<ix>` | string | owning tx id | reservation ttl |
//! | `{p}reservations` | zset | input -> reservation deadline (server ms) | entries pruned by the scripts |
//! | `{p}settle:<txid>` | hash | `data` (record JSON), `state`, `attempt`, `updatedAt` | retention |
//! | `{p}state:<state>` | zset | tx id -> `updated_at` | entries swept after the record expires |
//! | `{p}journal` | zset | tx id -> `updated_at`, every state | same |
//! | `{p}journal-expiry` | zset | tx id -> record deadline (server ms) | drives the sweep |
//! | `{p}pending` | zset | tx id -> next check (unix ms) | same |
//! | `{p}lease:<name>` | string | holder | lease ttl |
//! | `{p}idem:<id>` | hash | `digest`, `answer` once known | idempotency ttl |
//!
//! # Connection
//!
//! One multiplexed connection carries every command (Redis pipelines them), held
//! by [`Link`], which replaces it when it breaks: directly to the configured
//! address, or through Sentinel to whichever server is master *now*, so a
//! failover needs no restart. While Redis is unreachable every call fails fast
//! with [`StoreError::Unavailable`] (fail closed); the link redials in the
//! background with a short capped backoff and the store recovers by itself.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, Script, ServerErrorKind, TlsCertificates, TlsMode, Value,
};

use super::{
    CasOutcome, ClaimOutcome, IdempotencyOutcome, ListCursor, MAX_PAGE, Page, ReserveOutcome,
    Schedule, SettlementRecord, SettlementState, Store, StoreError,
};
use crate::cardano::{TxId, UtxoRef};
use crate::chain::{DependencyHealth, DependencyStatus};
use crate::config::RedisSettings;

/// Tuning that the plain settings do not carry.
#[derive(Clone)]
pub struct RedisStoreOptions {
    /// When above zero, every journal write that changed something (`claim`
    /// that created, `transition` that applied) is followed by `WAIT n` on the
    /// same connection, and reported as [`StoreError::Unavailable`] unless `n`
    /// replicas acknowledged it within [`Self::journal_replica_timeout`].
    ///
    /// Redis replicates asynchronously: without this, a record the master
    /// acknowledged can be lost if the master dies before a replica has it and
    /// Sentinel promotes that replica. With it, an `Ok` means the record is on
    /// the master and on `n` replicas, and Sentinel promotes the most
    /// up-to-date replica. The `Unavailable` in the other case means "outcome
    /// unknown" (the write is on the master), exactly like a timeout after
    /// sending; the settlement service already treats it that way.
    ///
    /// Cost: `WAIT` blocks the connection it is sent on until the replicas
    /// answer (about one round trip to them), and every command shares that
    /// connection, so enable it only with replicas close to the master.
    pub journal_replicas: u32,
    pub journal_replica_timeout: Duration,
    /// PEM of the CA that signed the servers' certificates, for TLS with a
    /// private CA; `None` trusts the public web PKI roots.
    pub tls_root_ca_pem: Option<Vec<u8>>,
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        RedisStoreOptions {
            journal_replicas: 0,
            journal_replica_timeout: Duration::from_millis(500),
            tls_root_ca_pem: None,
        }
    }
}

impl std::fmt::Debug for RedisStoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStoreOptions")
            .field("journal_replicas", &self.journal_replicas)
            .field("journal_replica_timeout", &self.journal_replica_timeout)
            .field(
                "tls_root_ca_pem",
                &self.tls_root_ca_pem.as_ref().map(|_| "set"),
            )
            .finish()
    }
}

/// The Redis-backed [`Store`]. Cheap to share behind an `Arc`; one instance per
/// process is enough (all calls are multiplexed over one connection).
pub struct RedisStore {
    link: Link,
    keys: Keys,
    command_timeout: Duration,
    options: RedisStoreOptions,
    scrub: Scrubber,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.link.target.describe)
            .field("prefix", &self.keys.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("options", &self.options)
            .finish()
    }
}

impl RedisStore {
    /// Connect, load the scripts, and return the store; fails when Redis (or
    /// every sentinel) is unreachable or refuses the credentials, so that the
    /// service does not start without its double-spend guard.
    pub async fn connect(settings: &RedisSettings) -> Result<RedisStore, StoreError> {
        Self::connect_with(settings, RedisStoreOptions::default()).await
    }

    /// [`RedisStore::connect`] with explicit [`RedisStoreOptions`].
    pub async fn connect_with(
        settings: &RedisSettings,
        options: RedisStoreOptions,
    ) -> Result<RedisStore, StoreError> {
        let scrub = Scrubber::new(settings);
        let connect_timeout = settings.connect_timeout.max(Duration::from_millis(1));
        if settings.tls {
            ensure_crypto_provider();
        }
        let target = Target::from_settings(settings, options.tls_root_ca_pem.as_deref())
            .map_err(|e| scrub.unavailable("invalid redis settings", &e))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            // Commands are bounded by `command_timeout` around each call instead.
            .set_response_timeout(None);
        let store = RedisStore {
            link: Link::new(target, config, connect_timeout, scrub.clone()),
            keys: Keys {
                prefix: settings.key_prefix.clone(),
            },
            command_timeout: settings.command_timeout.max(Duration::from_millis(1)),
            options,
            scrub,
        };

        let (_, mut conn) = match tokio::time::timeout(connect_timeout, store.link.get()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(StoreError::Unavailable(format!(
                    "{}: {e}",
                    store.link.target.describe
                )));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "{}: no connection within {} ms",
                    store.link.target.describe,
                    connect_timeout.as_millis()
                )));
            }
        };
        // Load every script now: it checks that the server accepts them, and
        // later calls go straight to EVALSHA.
        let load = async {
            for script in SCRIPTS.all() {
                script.prepare_invoke().load_async(&mut conn).await?;
            }
            Ok::<_, RedisError>(())
        };
        match tokio::time::timeout(store.command_timeout.max(connect_timeout), load).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(store
                    .scrub
                    .unavailable(&format!("{}: SCRIPT LOAD", store.link.target.describe), &e));
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "{}: SCRIPT LOAD timed out",
                    store.link.target.describe
                )));
            }
        }
        tracing::info!(target = %store.link.target.describe, prefix = %store.keys.prefix, "redis store connected");
        Ok(store)
    }

    /// The prefix every key of this store starts with.
    pub fn key_prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// Run one Redis exchange on the current connection, bounded by the
    /// command timeout. Connection-level failures retire the connection so the
    /// next call redials (through Sentinel when configured).
    async fn run<T, F, Fut>(&self, op: &'static str, extra: Duration, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut + Send,
        Fut: Future<Output = Result<T, RedisError>> + Send,
        T: Send,
    {
        const NONE: u64 = u64::MAX;
        let seen = AtomicU64::new(NONE);
        let attempt = async {
            let (generation, conn) = self
                .link
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(format!("redis {op}: {e}")))?;
            seen.store(generation, Ordering::Relaxed);
            match f(conn).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    if retires_connection(&e) {
                        self.link.retire(generation);
                    }
                    Err(self.scrub.error(&format!("redis {op}"), &e))
                }
            }
        };
        match tokio::time::timeout(self.command_timeout + extra, attempt).await {
            Ok(r) => r,
            Err(_) => {
                // A connection that does not answer may be half-open (a
                // partition, a frozen master): replace it rather than keep
                // queueing commands behind it.
                let generation = seen.load(Ordering::Relaxed);
                if generation != NONE {
                    self.link.retire(generation);
                }
                Err(StoreError::Unavailable(format!(
                    "redis {op}: no answer within {} ms",
                    (self.command_timeout + extra).as_millis()
                )))
            }
        }
    }

    /// Invoke a script; for journal writes (`durable`), wait for replicas as configured.
    async fn eval(
        &self,
        op: &'static str,
        script: &'static Script,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
        durable: bool,
    ) -> Result<Value, StoreError> {
        let replicas = if durable {
            self.options.journal_replicas
        } else {
            0
        };
        let wait = self.options.journal_replica_timeout;
        let extra = if replicas > 0 { wait } else { Duration::ZERO };
        let (value, acked) = self
            .run(op, extra, move |mut conn| async move {
                let mut inv = script.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                for a in &args {
                    inv.arg(a.as_slice());
                }
                let value: Value = inv.invoke_async(&mut conn).await?;
                if replicas == 0 || !wrote(op, &value) {
                    return Ok((value, None));
                }
                // Same connection: WAIT covers every write sent on it before.
                let acked: i64 = redis::cmd("WAIT")
                    .arg(replicas)
                    .arg(wait.as_millis() as u64)
                    .query_async(&mut conn)
                    .await?;
                Ok((value, Some(acked)))
            })
            .await?;
        match acked {
            Some(n) if n < i64::from(replicas) => Err(StoreError::Unavailable(format!(
                "redis {op}: written on the master but acknowledged by {n} of {replicas} replicas within {} ms; \
                 outcome unknown",
                wait.as_millis()
            ))),
            _ => Ok(value),
        }
    }
}

/// Whether a journal script's reply says it wrote (only then is WAIT worth it).
fn wrote(op: &str, v: &Value) -> bool {
    matches!(op, "claim" | "transition")
        && matches!(v, Value::Array(items) if items.first().and_then(int) == Some(1))
}

/// Errors after which the connection cannot be trusted (or points at a server
/// that is no longer master) and must be replaced.
fn retires_connection(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly)
                | ErrorKind::Server(ServerErrorKind::MasterDown)
        )
}

#[async_trait]
impl Store for RedisStore {
    async fn reserve(
        &self,
        inputs: &[UtxoRef],
        owner: &TxId,
        ttl: Duration,
    ) -> Result<ReserveOutcome, StoreError> {
        let keys = inputs.iter().map(|i| self.keys.reservation(i)).collect();
        let mut args = vec![
            self.keys.prefix_arg(),
            owner.to_hex().into_bytes(),
            ms(ttl).to_string().into_bytes(),
        ];
        args.extend(inputs.iter().map(|i| i.to_string().into_bytes()));
        let v = self
            .eval("reserve", &SCRIPTS.reserve, keys, args, false)
            .await?;
        let items = array(&v, "reserve")?;
        match items.first().and_then(int) {
            Some(0) => Ok(ReserveOutcome::Reserved),
            Some(i) => {
                let input = usize::try_from(i - 1)
                    .ok()
                    .and_then(|ix| inputs.get(ix))
                    .ok_or_else(|| corrupt("reserve", "conflict index out of range"))?;
                let holder = items
                    .get(1)
                    .and_then(text)
                    .ok_or_else(|| corrupt("reserve", "missing holder"))?;
                let holder = holder
                    .parse()
                    .map_err(|_| corrupt("reserve", "holder is not a tx id"))?;
                Ok(ReserveOutcome::Conflict {
                    input: *input,
                    holder,
                })
            }
            None => Err(corrupt("reserve", "unexpected reply")),
        }
    }

    async fn release(&self, inputs: &[UtxoRef], owner: &TxId) -> Result<(), StoreError> {
        if inputs.is_empty() {
            return Ok(());
        }
        let keys = inputs.iter().map(|i| self.keys.reservation(i)).collect();
        let mut args = vec![self.keys.prefix_arg(), owner.to_hex().into_bytes()];
        args.extend(inputs.iter().map(|i| i.to_string().into_bytes()));
        self.eval("release", &SCRIPTS.release, keys, args, false)
            .await?;
        Ok(())
    }

    async fn holder(&self, input: &UtxoRef) -> Result<Option<TxId>, StoreError> {
        let key = self.keys.reservation(input);
        let v: Option<String> = self
            .run("holder", Duration::ZERO, |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        v.map(|h| {
            h.parse()
                .map_err(|_| corrupt("holder", "holder is not a tx id"))
        })
        .transpose()
    }

    async fn reservations_active(&self) -> Result<u64, StoreError> {
        let v = self
            .eval(
                "reservations_active",
                &SCRIPTS.reservations_active,
                vec![],
                vec![self.keys.prefix_arg()],
                false,
            )
            .await?;
        int(&v)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| corrupt("reservations_active", "unexpected reply"))
    }

    async fn claim(
        &self,
        record: &SettlementRecord,
        reservation: Duration,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<ClaimOutcome, StoreError> {
        let data = to_json(record)?;
        let (kind, at) = schedule_args(schedule);
        let inputs = &record.inputs;
        let mut keys = Vec::with_capacity(inputs.len() + 2);
        keys.push(self.keys.record(&record.tx_id));
        keys.extend(inputs.iter().map(|i| self.keys.reservation(i)));
        if let Some(k) = &record.logical_key {
            keys.push(self.keys.logical(k));
        }
        let mut args = vec![
            self.keys.prefix_arg(),
            record.tx_id.to_hex().into_bytes(),
            data.into_bytes(),
            record.state.as_str().as_bytes().to_vec(),
            record.attempt.as_bytes().to_vec(),
            record.updated_at.to_string().into_bytes(),
            ms(retention).to_string().into_bytes(),
            kind.as_bytes().to_vec(),
            at.to_string().into_bytes(),
            ms(reservation).to_string().into_bytes(),
            inputs.len().to_string().into_bytes(),
            if record.logical_key.is_some() {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
        ];
        args.extend(inputs.iter().map(|i| i.to_string().into_bytes()));
        let v = self.eval("claim", &SCRIPTS.claim, keys, args, true).await?;
        let items = array(&v, "claim")?;
        let tx = |v: Option<&Value>| -> Result<TxId, StoreError> {
            v.and_then(text)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| corrupt("claim", "holder is not a tx id"))
        };
        match (items.first().and_then(int), items.get(1)) {
            (Some(1), _) => Ok(ClaimOutcome::Claimed(record.clone())),
            (Some(0), Some(data)) => Ok(ClaimOutcome::Existing(from_json("claim", data)?)),
            (Some(2), Some(ix)) => {
                let input = int(ix)
                    .and_then(|i| usize::try_from(i - 1).ok())
                    .and_then(|ix| inputs.get(ix))
                    .ok_or_else(|| corrupt("claim", "conflict index out of range"))?;
                Ok(ClaimOutcome::InputHeld {
                    input: *input,
                    holder: tx(items.get(2))?,
                })
            }
            (Some(3), holder) => Ok(ClaimOutcome::KeyBound {
                holder: tx(holder)?,
            }),
            _ => Err(corrupt("claim", "unexpected reply")),
        }
    }

    async fn release_claim(&self, tx_id: &TxId, attempt: &str) -> Result<bool, StoreError> {
        // The record names its inputs and logical key; read them first. The
        // script re-checks state and attempt, so a record changed in between
        // is left alone.
        let Some(rec) = self.get(tx_id).await? else {
            return Ok(false);
        };
        if rec.state != SettlementState::Claimed || rec.attempt != attempt {
            return Ok(false);
        }
        let mut keys = Vec::with_capacity(rec.inputs.len() + 2);
        keys.push(self.keys.record(tx_id));
        keys.extend(rec.inputs.iter().map(|i| self.keys.reservation(i)));
        if let Some(k) = &rec.logical_key {
            keys.push(self.keys.logical(k));
        }
        let mut args = vec![
            self.keys.prefix_arg(),
            tx_id.to_hex().into_bytes(),
            attempt.as_bytes().to_vec(),
            rec.inputs.len().to_string().into_bytes(),
            if rec.logical_key.is_some() {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
        ];
        args.extend(rec.inputs.iter().map(|i| i.to_string().into_bytes()));
        let v = self
            .eval("release_claim", &SCRIPTS.release_claim, keys, args, true)
            .await?;
        Ok(int(&v) == Some(1))
    }

    async fn set_flag(&self, name: &str, value: bool) -> Result<(), StoreError> {
        let key = self.keys.flag(name);
        let _: Value = self
            .run("set_flag", Duration::ZERO, |mut c| async move {
                if value {
                    redis::cmd("SET")
                        .arg(key)
                        .arg("1")
                        .query_async(&mut c)
                        .await
                } else {
                    redis::cmd("DEL").arg(key).query_async(&mut c).await
                }
            })
            .await?;
        Ok(())
    }

    async fn flag(&self, name: &str) -> Result<bool, StoreError> {
        let key = self.keys.flag(name);
        let v: Value = self
            .run("flag", Duration::ZERO, |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(!matches!(v, Value::Nil))
    }

    async fn logical_key_holder(&self, key: &str) -> Result<Option<TxId>, StoreError> {
        let key = self.keys.logical(key);
        let v: Value = self
            .run("logical_key_holder", Duration::ZERO, |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        Ok(text(&v).and_then(|t| t.parse().ok()))
    }

    async fn transition(
        &self,
        expected_state: SettlementState,
        expected_attempt: &str,
        next: &SettlementRecord,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<CasOutcome, StoreError> {
        let data = to_json(next)?;
        let (kind, at) = schedule_args(schedule);
        let args = vec![
            self.keys.prefix_arg(),
            next.tx_id.to_hex().into_bytes(),
            expected_state.as_str().as_bytes().to_vec(),
            expected_attempt.as_bytes().to_vec(),
            data.into_bytes(),
            next.state.as_str().as_bytes().to_vec(),
            next.attempt.as_bytes().to_vec(),
            next.updated_at.to_string().into_bytes(),
            ms(retention).to_string().into_bytes(),
            kind.as_bytes().to_vec(),
            at.to_string().into_bytes(),
        ];
        let v = self
            .eval(
                "transition",
                &SCRIPTS.transition,
                vec![self.keys.record(&next.tx_id)],
                args,
                true,
            )
            .await?;
        let items = array(&v, "transition")?;
        match (items.first().and_then(int), items.get(1)) {
            (Some(1), _) => Ok(CasOutcome::Applied(next.clone())),
            (Some(0), None) => Ok(CasOutcome::Conflict(None)),
            (Some(0), Some(data)) => Ok(CasOutcome::Conflict(Some(from_json("transition", data)?))),
            _ => Err(corrupt("transition", "unexpected reply")),
        }
    }

    async fn get(&self, tx_id: &TxId) -> Result<Option<SettlementRecord>, StoreError> {
        let key = self.keys.record(tx_id);
        let v: Value = self
            .run("get", Duration::ZERO, |mut c| async move {
                redis::cmd("HGET")
                    .arg(key)
                    .arg("data")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        match v {
            Value::Nil => Ok(None),
            other => from_json("get", &other).map(Some),
        }
    }

    async fn list(
        &self,
        state: Option<SettlementState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let after = ListCursor::parse_arg(cursor)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let index = match state {
            Some(s) => format!("state:{}", s.as_str()),
            None => "journal".to_owned(),
        };
        let (cs, cm) = match after {
            Some(c) => (c.updated_at.to_string(), c.tx_id.to_hex()),
            None => (String::new(), String::new()),
        };
        let args = vec![
            self.keys.prefix_arg(),
            index.into_bytes(),
            limit.to_string().into_bytes(),
            cs.into_bytes(),
            cm.into_bytes(),
        ];
        let v = self
            .eval("list", &SCRIPTS.list, vec![], args, false)
            .await?;
        let items = array(&v, "list")?;
        if items.len() < 3 {
            return Err(corrupt("list", "unexpected reply"));
        }
        let next_cursor = match int(&items[0]) {
            Some(1) => {
                let updated_at = text(&items[1])
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| corrupt("list", "cursor score is not an integer"))?;
                let tx_id = text(&items[2])
                    .and_then(|s| s.parse::<TxId>().ok())
                    .ok_or_else(|| corrupt("list", "cursor member is not a tx id"))?;
                Some(ListCursor { updated_at, tx_id }.encode())
            }
            _ => None,
        };
        let records = items[3..]
            .iter()
            .map(|d| from_json("list", d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            records,
            next_cursor,
        })
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<TxId>, StoreError> {
        let args = vec![
            self.keys.prefix_arg(),
            now_ms.to_string().into_bytes(),
            limit.to_string().into_bytes(),
        ];
        let v = self.eval("due", &SCRIPTS.due, vec![], args, false).await?;
        array(&v, "due")?
            .iter()
            .map(|m| {
                text(m)
                    .and_then(|s| s.parse::<TxId>().ok())
                    .ok_or_else(|| corrupt("due", "member is not a tx id"))
            })
            .collect()
    }

    async fn count_by_state(&self) -> Result<Vec<(SettlementState, u64)>, StoreError> {
        let v = self
            .eval(
                "count_by_state",
                &SCRIPTS.count_by_state,
                vec![],
                vec![self.keys.prefix_arg()],
                false,
            )
            .await?;
        let items = array(&v, "count_by_state")?;
        if items.len() != SettlementState::ALL.len() {
            return Err(corrupt("count_by_state", "unexpected reply"));
        }
        SettlementState::ALL
            .iter()
            .zip(items)
            .map(|(s, n)| {
                int(n)
                    .and_then(|n| u64::try_from(n).ok())
                    .map(|n| (*s, n))
                    .ok_or_else(|| corrupt("count_by_state", "count is not an integer"))
            })
            .collect()
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let args = vec![
            self.keys.prefix_arg(),
            holder.as_bytes().to_vec(),
            ms(ttl).to_string().into_bytes(),
        ];
        let v = self
            .eval(
                "acquire_lease",
                &SCRIPTS.lease_acquire,
                vec![self.keys.lease(name)],
                args,
                false,
            )
            .await?;
        Ok(int(&v) == Some(1))
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let args = vec![self.keys.prefix_arg(), holder.as_bytes().to_vec()];
        self.eval(
            "release_lease",
            &SCRIPTS.lease_release,
            vec![self.keys.lease(name)],
            args,
            false,
        )
        .await?;
        Ok(())
    }

    async fn idempotency_begin(
        &self,
        id: &str,
        payload_digest: &str,
        ttl: Duration,
    ) -> Result<IdempotencyOutcome, StoreError> {
        let args = vec![
            self.keys.prefix_arg(),
            payload_digest.as_bytes().to_vec(),
            ms(ttl).to_string().into_bytes(),
        ];
        let v = self
            .eval(
                "idempotency_begin",
                &SCRIPTS.idempotency_begin,
                vec![self.keys.idempotency(id)],
                args,
                false,
            )
            .await?;
        let items = array(&v, "idempotency_begin")?;
        match (items.first().and_then(text), items.get(1).and_then(text)) {
            (Some("new"), _) => Ok(IdempotencyOutcome::New),
            (Some("in_progress"), _) => Ok(IdempotencyOutcome::InProgress),
            (Some("mismatch"), _) => Ok(IdempotencyOutcome::Mismatch),
            (Some("stored"), Some(answer)) => Ok(IdempotencyOutcome::Stored(answer.to_owned())),
            _ => Err(corrupt("idempotency_begin", "unexpected reply")),
        }
    }

    async fn idempotency_complete(
        &self,
        id: &str,
        payload_digest: &str,
        answer_json: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let args = vec![
            self.keys.prefix_arg(),
            payload_digest.as_bytes().to_vec(),
            answer_json.as_bytes().to_vec(),
            ms(ttl).to_string().into_bytes(),
        ];
        self.eval(
            "idempotency_complete",
            &SCRIPTS.idempotency_complete,
            vec![self.keys.idempotency(id)],
            args,
            false,
        )
        .await?;
        Ok(())
    }

    async fn idempotency_abort(&self, id: &str, payload_digest: &str) -> Result<(), StoreError> {
        let args = vec![self.keys.prefix_arg(), payload_digest.as_bytes().to_vec()];
        self.eval(
            "idempotency_abort",
            &SCRIPTS.idempotency_abort,
            vec![self.keys.idempotency(id)],
            args,
            false,
        )
        .await?;
        Ok(())
    }

    async fn health(&self) -> DependencyHealth {
        let start = Instant::now();
        let r: Result<String, StoreError> = self
            .run("PING", Duration::ZERO, |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await;
        let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        match r {
            Ok(_) => DependencyHealth {
                status: DependencyStatus::Up,
                latency_ms,
                tip: None,
                error: None,
            },
            Err(e) => DependencyHealth {
                status: DependencyStatus::Down,
                latency_ms,
                tip: None,
                error: Some(e.to_string()),
            },
        }
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn close(&self) {
        self.link.close();
    }
}

// ---------------------------------------------------------------------------
// Keys and arguments

/// Builds every key from the configured prefix, so two deployments can share
/// one Redis without seeing each other's data.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn reservation(&self, input: &UtxoRef) -> String {
        format!("{}resv:{input}", self.prefix)
    }
    fn record(&self, id: &TxId) -> String {
        format!("{}settle:{id}", self.prefix)
    }
    fn lease(&self, name: &str) -> String {
        format!("{}lease:{name}", self.prefix)
    }
    fn idempotency(&self, id: &str) -> String {
        format!("{}idem:{id}", self.prefix)
    }
    fn logical(&self, key: &str) -> String {
        format!("{}terms:{key}", self.prefix)
    }
    fn flag(&self, name: &str) -> String {
        format!("{}flag:{name}", self.prefix)
    }
    fn prefix_arg(&self) -> Vec<u8> {
        self.prefix.as_bytes().to_vec()
    }
}

/// Milliseconds for PX/PEXPIRE: at least 1 (0 is an error in Redis), at most ~100 years.
fn ms(d: Duration) -> u64 {
    (d.as_millis().clamp(1, 100 * 365 * 24 * 3_600_000)) as u64
}

fn schedule_args(s: Schedule) -> (&'static str, i64) {
    match s {
        Schedule::At(at) => ("at", at),
        Schedule::Done => ("done", 0),
        Schedule::Keep => ("keep", 0),
    }
}

fn to_json(record: &SettlementRecord) -> Result<String, StoreError> {
    serde_json::to_string(record)
        .map_err(|e| StoreError::Corrupt(format!("record does not serialize: {e}")))
}

fn from_json(op: &str, v: &Value) -> Result<SettlementRecord, StoreError> {
    let s = text(v).ok_or_else(|| corrupt(op, "record is not text"))?;
    serde_json::from_str(s)
        .map_err(|e| StoreError::Corrupt(format!("redis {op}: stored record does not parse: {e}")))
}

fn corrupt(op: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis {op}: {what}"))
}

fn array<'a>(v: &'a Value, op: &str) -> Result<&'a [Value], StoreError> {
    match v {
        Value::Array(items) => Ok(items),
        _ => Err(corrupt(op, "expected an array reply")),
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Scripts

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Every Lua script, compiled into the binary and hashed once per process.
struct Scripts {
    reserve: Script,
    release: Script,
    reservations_active: Script,
    claim: Script,
    release_claim: Script,
    transition: Script,
    list: Script,
    due: Script,
    count_by_state: Script,
    lease_acquire: Script,
    lease_release: Script,
    idempotency_begin: Script,
    idempotency_complete: Script,
    idempotency_abort: Script,
}

impl Scripts {
    fn all(&self) -> [&Script; 14] {
        [
            &self.reserve,
            &self.release,
            &self.reservations_active,
            &self.claim,
            &self.release_claim,
            &self.transition,
            &self.list,
            &self.due,
            &self.count_by_state,
            &self.lease_acquire,
            &self.lease_release,
            &self.idempotency_begin,
            &self.idempotency_complete,
            &self.idempotency_abort,
        ]
    }
}

/// Prefix a script body with the state list (generated from
/// [`SettlementState::ALL`], so Rust and Lua cannot disagree) and the prelude.
fn script(body: &str) -> Script {
    let states: Vec<String> = SettlementState::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    Script::new(&format!(
        "local STATES = {{{}}}\n{PRELUDE}\n{body}",
        states.join(", ")
    ))
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    reserve: script(include_str!("lua/reserve.lua")),
    release: script(include_str!("lua/release.lua")),
    reservations_active: script(include_str!("lua/reservations_active.lua")),
    claim: script(include_str!("lua/claim.lua")),
    release_claim: script(include_str!("lua/release_claim.lua")),
    transition: script(include_str!("lua/transition.lua")),
    list: script(include_str!("lua/list.lua")),
    due: script(include_str!("lua/due.lua")),
    count_by_state: script(include_str!("lua/count_by_state.lua")),
    lease_acquire: script(include_str!("lua/lease_acquire.lua")),
    lease_release: script(include_str!("lua/lease_release.lua")),
    idempotency_begin: script(include_str!("lua/idempotency_begin.lua")),
    idempotency_complete: script(include_str!("lua/idempotency_complete.lua")),
    idempotency_abort: script(include_str!("lua/idempotency_abort.lua")),
});

/// rustls needs one process-wide crypto provider, and this dependency graph
/// compiles in two (so rustls will not guess and would panic on the first
/// handshake). Install one unless the application already did.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one first: fine either way.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

// ---------------------------------------------------------------------------
// Secrets

/// Removes configured passwords from any text that may reach a log or a
/// response. The redis crate does not print passwords in its errors, but an
/// error we did not foresee must not be the one that leaks them.
#[derive(Clone)]
struct Scrubber {
    secrets: Arc<Vec<String>>,
}

impl Scrubber {
    fn new(s: &RedisSettings) -> Self {
        let secrets = [s.password.as_ref(), s.sentinel.password.as_ref()]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .map(|p| p.expose().to_owned())
            .collect();
        Scrubber {
            secrets: Arc::new(secrets),
        }
    }

    fn text(&self, s: String) -> String {
        self.secrets
            .iter()
            .fold(s, |acc, secret| acc.replace(secret.as_str(), "[REDACTED]"))
    }

    fn unavailable(&self, context: &str, e: &RedisError) -> StoreError {
        StoreError::Unavailable(self.text(format!("{context}: {e}")))
    }

    /// Map a Redis error: data of the wrong type under our prefix is corrupt;
    /// everything else (I/O, timeouts, LOADING, READONLY, OOM, auth) means the
    /// store cannot answer now.
    fn error(&self, context: &str, e: &RedisError) -> StoreError {
        if e.code() == Some("WRONGTYPE") {
            StoreError::Corrupt(self.text(format!("{context}: {e}")))
        } else {
            self.unavailable(context, e)
        }
    }
}

// ---------------------------------------------------------------------------
// Connection

/// Where connections go: one fixed address, or the master a set of sentinels names.
struct Target {
    dialer: Dialer,
    /// Human-readable destination for logs and errors; never holds a secret.
    describe: String,
}

enum Dialer {
    Direct(Client),
    /// A tokio mutex because the lookup holds the client across `.await`s
    /// (it asks the sentinels, then checks the master's role).
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Target {
    fn from_settings(s: &RedisSettings, root_ca: Option<&[u8]>) -> Result<Target, RedisError> {
        let certificates = || TlsCertificates {
            client_tls: None,
            root_cert: root_ca.map(<[u8]>::to_vec),
        };
        let invalid = |what: &'static str| RedisError::from((ErrorKind::InvalidClientConfig, what));
        if let Some(service) = s.sentinel.service_name.as_deref().filter(|n| !n.is_empty()) {
            let mut sentinels = Vec::with_capacity(s.sentinel.addresses.len());
            for addr in &s.sentinel.addresses {
                let (host, port) = addr
                    .rsplit_once(':')
                    .ok_or_else(|| invalid("sentinel address must be host:port"))?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| invalid("sentinel address must be host:port"))?;
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                sentinels.push(if s.tls {
                    ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host, port)
                });
            }
            if sentinels.is_empty() {
                return Err(invalid("sentinel.addresses is empty"));
            }
            let mut b = SentinelClientBuilder::new(sentinels, service, SentinelServerType::Master)?
                .set_client_to_redis_db(s.db);
            if let Some(u) = s.username.as_deref().filter(|u| !u.is_empty()) {
                b = b.set_client_to_redis_username(u);
            }
            if let Some(p) = s.password.as_ref().filter(|p| !p.is_empty()) {
                b = b.set_client_to_redis_password(p.expose());
            }
            if let Some(p) = s.sentinel.password.as_ref().filter(|p| !p.is_empty()) {
                b = b.set_client_to_sentinel_password(p.expose());
            }
            if s.tls {
                b = b.set_client_to_redis_tls_mode(TlsMode::Secure);
                if root_ca.is_some() {
                    b = b
                        .set_client_to_redis_certificates(certificates())
                        .set_client_to_sentinel_certificates(certificates());
                }
            }
            return Ok(Target {
                dialer: Dialer::Sentinel(tokio::sync::Mutex::new(b.build()?)),
                describe: format!(
                    "redis sentinel master '{service}' via {}",
                    s.sentinel.addresses.join(",")
                ),
            });
        }
        let (addr, describe) = match s.socket.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => (
                ConnectionAddr::Unix(PathBuf::from(path)),
                format!("redis unix:{path}"),
            ),
            None if s.tls => (
                ConnectionAddr::TcpTls {
                    host: s.host.clone(),
                    port: s.port,
                    insecure: false,
                    tls_params: None,
                },
                format!("redis rediss://{}:{}", s.host, s.port),
            ),
            None => (
                ConnectionAddr::Tcp(s.host.clone(), s.port),
                format!("redis {}:{}", s.host, s.port),
            ),
        };
        let mut info = RedisConnectionInfo::default().set_db(s.db);
        if let Some(u) = s.username.as_deref().filter(|u| !u.is_empty()) {
            info = info.set_username(u);
        }
        if let Some(p) = s.password.as_ref().filter(|p| !p.is_empty()) {
            info = info.set_password(p.expose());
        }
        let info = addr.into_connection_info()?.set_redis_settings(info);
        let client = match root_ca {
            Some(_) if s.tls => Client::build_with_tls(info, certificates())?,
            _ => Client::open(info)?,
        };
        Ok(Target {
            dialer: Dialer::Direct(client),
            describe: format!("{describe} db {}", s.db),
        })
    }

    async fn dial(
        &self,
        config: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        match &self.dialer {
            Dialer::Direct(client) => {
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
            Dialer::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await
            }
        }
    }
}

/// A dial in progress, shared by every caller waiting for it.
type Dial = Shared<BoxFuture<'static, Result<(u64, MultiplexedConnection), String>>>;

enum LinkState {
    Ready(u64, MultiplexedConnection),
    Dialing(u64, Dial),
    /// No connection; the next caller dials, but not before `retry_at`.
    Idle {
        retry_at: Option<Instant>,
    },
    Closed,
}

struct Slot {
    state: LinkState,
    /// Incremented on every dial; names a connection so that a late failure
    /// report about an old one cannot retire its replacement.
    generation: u64,
    failures: u32,
}

/// The one connection the store talks through, replaced when it breaks.
///
/// Why not `redis::aio::ConnectionManager`: it reconnects to one fixed
/// address, while under Sentinel the master moves, and it waits out its own
/// retry schedule where we want a fast `Unavailable`. `Link` keeps the same
/// core idea (one multiplexed connection, a single shared reconnect) with the
/// behaviour the store needs, identically for both kinds of target:
///
/// - dials run in a spawned task, so a caller giving up on its timeout does not
///   abort the dial for everyone else;
/// - after a failed dial, callers fail at once until a short backoff
///   (25 ms doubling to 500 ms) has passed, so an outage costs neither a
///   connection storm nor slow errors, and recovery takes at most ~0.5 s;
/// - errors that condemn the connection (I/O, READONLY from a demoted master,
///   timeouts) retire it; the next call dials again, asking Sentinel afresh.
///
/// The slot is behind a `parking_lot::Mutex` held only to read or swap the
/// state (never across an `.await`).
struct Link {
    target: Arc<Target>,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    slot: Arc<parking_lot::Mutex<Slot>>,
    scrub: Scrubber,
}

const BACKOFF_MIN: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

impl Link {
    fn new(
        target: Target,
        config: AsyncConnectionConfig,
        connect_timeout: Duration,
        scrub: Scrubber,
    ) -> Self {
        Link {
            target: Arc::new(target),
            config,
            connect_timeout,
            slot: Arc::new(parking_lot::Mutex::new(Slot {
                state: LinkState::Idle { retry_at: None },
                generation: 0,
                failures: 0,
            })),
            scrub,
        }
    }

    /// The current connection and its generation, dialing if there is none.
    async fn get(&self) -> Result<(u64, MultiplexedConnection), String> {
        let dial = {
            let mut slot = self.slot.lock();
            match &slot.state {
                LinkState::Ready(generation, conn) => return Ok((*generation, conn.clone())),
                LinkState::Dialing(_, dial) => dial.clone(),
                LinkState::Closed => return Err("store closed".to_owned()),
                LinkState::Idle { retry_at: Some(at) } if Instant::now() < *at => {
                    return Err(format!(
                        "{} unreachable; retrying shortly",
                        self.target.describe
                    ));
                }
                LinkState::Idle { .. } => {
                    slot.generation += 1;
                    let generation = slot.generation;
                    let dial = self.start_dial(generation);
                    slot.state = LinkState::Dialing(generation, dial.clone());
                    dial
                }
            }
        };
        dial.await
    }

    fn start_dial(&self, generation: u64) -> Dial {
        let target = Arc::clone(&self.target);
        let config = self.config.clone();
        let slot = Arc::clone(&self.slot);
        let scrub = self.scrub.clone();
        let connect_timeout = self.connect_timeout;
        let dial: Dial = async move {
            let result = match tokio::time::timeout(connect_timeout, target.dial(&config)).await {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(scrub.text(format!("{}: {e}", target.describe))),
                Err(_) => Err(format!(
                    "{}: no connection within {} ms",
                    target.describe,
                    connect_timeout.as_millis()
                )),
            };
            let mut slot = slot.lock();
            let current = matches!(slot.state, LinkState::Dialing(g, _) if g == generation);
            match result {
                Ok(conn) => {
                    if current {
                        slot.state = LinkState::Ready(generation, conn.clone());
                        if slot.failures > 0 {
                            tracing::info!(target = %target.describe, "redis connection restored");
                        }
                        slot.failures = 0;
                    }
                    Ok((generation, conn))
                }
                Err(e) => {
                    if current {
                        slot.failures = slot.failures.saturating_add(1);
                        let backoff = BACKOFF_MIN
                            .saturating_mul(1 << slot.failures.min(8))
                            .min(BACKOFF_MAX);
                        slot.state = LinkState::Idle {
                            retry_at: Some(Instant::now() + backoff),
                        };
                        if slot.failures == 1 {
                            tracing::warn!(error = %e, "redis connection failed");
                        }
                    }
                    Err(e)
                }
            }
        }
        .boxed()
        .shared();
        // Driven to the end even if every caller stops waiting.
        tokio::spawn(dial.clone());
        dial
    }

    /// Stop using connection `generation` (if it is still the current one).
    fn retire(&self, generation: u64) {
        let mut slot = self.slot.lock();
        if matches!(slot.state, LinkState::Ready(g, _) if g == generation) {
            slot.state = LinkState::Idle { retry_at: None };
            tracing::warn!(target = %self.target.describe, "redis connection retired; redialing on next use");
        }
    }

    fn close(&self) {
        self.slot.lock().state = LinkState::Closed;
    }
}
