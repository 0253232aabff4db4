//! Issue 7 point 6: `openapi.yaml` describes the service as it is.
//!
//! - The spec's operations are exactly the router's routes: a list kept here,
//!   checked both against the spec and against the `.route(...)` calls in the
//!   router's source, and every documented operation reaches a handler of the
//!   real app (never the router's 404 fallback, never 405).
//! - Real requests against the real app (embedded devnet, real payments built
//!   by the library's buyer) produce every (route, status) pair the service
//!   can answer without a crash: each answer's status must be documented for
//!   its path and method (or among the global answers for paths and methods
//!   that are not operations), its documented headers must be present, and
//!   its JSON body must validate against the documented schema.
//! - The reason-code and settlement-state enums of the spec are the code's.
//!
//! Chain and store outages are injected by wrapping the real devnet provider
//! and the real in-memory store with a switch.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::support::app::{TestApp, spawn_app_with, test_settings};
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};
use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use x402_facilitator::app::App;
use x402_facilitator::cardano::{Network, ProtocolParams, TxId, UtxoRef, UtxoState};
use x402_facilitator::chain::{
    ChainError, ChainHandle, ChainProvider, DependencyHealth, DependencyStatus, Evidence,
    SubmitOutcome, Tip,
};
use x402_facilitator::config::{Secret, Settings};
use x402_facilitator::protocol::reason::Reason;
use x402_facilitator::store::memory::MemoryStore;
use x402_facilitator::store::{
    CasOutcome, ClaimOutcome, IdempotencyOutcome, Page, ReserveOutcome, Schedule, SettlementRecord,
    SettlementState, Store, StoreError,
};

const ADMIN_KEY: &str = "openapi-admin-key-0001";
const API_KEY: &str = "openapi-resource-server-key-0001";
/// An address of network id 0 that no test funds.
const UNUSED_ADDRESS: &str = "addr_test1vz2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzerspjrlsz";
const ZERO_TX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every route the service serves: the shared route tables of the HTTP layer
/// and of the devnet API (mounted under `/devnet`).
fn routes() -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = x402_facilitator::http::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    all.extend(
        x402_facilitator::chain::devnet::api::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), format!("/devnet{p}"))),
    );
    all
}

/// Routes that need an API key when `auth.apiKeys` is configured.
const SENSITIVE: &[&str] = &["/verify", "/settle", "/status", "/status/{txid}"];

/// Codes this facilitator adds to the reference reason codes.
const PROJECT_REASONS: &[&str] = &[
    "exact_cardano_facilitator_store_unavailable",
    "settlement_paused",
    "settlement_state_conflict",
    "settlement_internal_error",
];

// ------------------------------------------------------------------ spec

struct Spec {
    doc: Value,
}

/// One answer, read whole.
struct Observed {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Observed {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Spec {
    fn load() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml is readable");
        let doc: Value = serde_norway::from_str(&text).expect("openapi.yaml is YAML");
        Spec { doc }
    }

    /// `(method, template)` of every operation.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for (method, _) in item.as_object().expect("path item") {
                if [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&method.as_str())
                {
                    out.insert((method.clone(), path.clone()));
                }
            }
        }
        out
    }

    fn operation(&self, method: &str, template: &str) -> Option<&Value> {
        self.doc["paths"].get(template)?.get(method)
    }

    /// Follow `$ref`s (local JSON pointers) until a value without one.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            v = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {r} does not resolve"));
        }
        panic!("$ref chain too long")
    }

    /// A validator for `schema`, with the component schemas as `$defs`.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": self.doc["components"]["schemas"],
            "allOf": [schema],
        });
        let text = root
            .to_string()
            .replace("\"#/components/schemas/", "\"#/$defs/");
        let root: Value = serde_json::from_str(&text).expect("rewritten schema");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema}"))
    }

    /// The documented response for this answer: the operation's own, or for
    /// a path or method that is no operation, the global one.
    fn response_for(
        &self,
        method: &str,
        template: Option<&str>,
        path: &str,
        status: u16,
    ) -> &Value {
        let code = status.to_string();
        if let Some(t) = template
            && let Some(op) = self.operation(method, t)
        {
            let r = op["responses"].get(&code).unwrap_or_else(|| {
                panic!(
                    "{} {t} answered {status}, which openapi.yaml does not document",
                    method.to_uppercase()
                )
            });
            return self.resolve(r);
        }
        if path.starts_with("/devnet/") && status == 404 {
            // Documented in the devnet tag: unknown paths there answer Blockfrost's 404.
            return self.resolve(&self.doc["components"]["responses"]["BlockfrostNotFound"]);
        }
        let r = self.doc["x-global-responses"]
            .get(&code)
            .unwrap_or_else(|| {
                panic!(
                    "{} {path} (no operation) answered {status}, not among x-global-responses",
                    method.to_uppercase()
                )
            });
        self.resolve(r)
    }

    /// Assert that `obs` is a documented answer and matches its description.
    fn conforms(&self, method: &str, template: Option<&str>, path: &str, obs: &Observed) {
        let what = format!("{} {path} -> {}", method.to_uppercase(), obs.status);
        let response = self.response_for(method, template, path, obs.status);
        if let Some(headers) = response.get("headers").and_then(Value::as_object) {
            for name in headers.keys() {
                assert!(
                    obs.header(&name.to_ascii_lowercase()).is_some(),
                    "{what}: documented header {name} is missing"
                );
            }
        }
        let content = response["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: the documented response has no content"));
        let content_type = obs.header("content-type").unwrap_or("");
        if content_type.starts_with("application/json") {
            let media = content
                .get("application/json")
                .unwrap_or_else(|| panic!("{what}: JSON answer, but no JSON content documented"));
            let body: Value = serde_json::from_slice(&obs.body)
                .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", obs.text()));
            let validator = self.validator(&media["schema"]);
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{what}: body does not match the documented schema: {errors:?}\n{body}"
            );
        } else if content_type.starts_with("text/plain") {
            assert!(
                content.contains_key("text/plain"),
                "{what}: text answer, but no text/plain content documented"
            );
        } else {
            panic!("{what}: undocumented content type {content_type:?}");
        }
    }
}

async fn observe(rb: reqwest::RequestBuilder) -> Observed {
    let resp = rb.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body read").to_vec();
    Observed {
        status,
        headers,
        body,
    }
}

/// Send, assert the status, and assert the answer is the documented one.
async fn check(
    spec: &Spec,
    app: &TestApp,
    method: &str,
    template: Option<&str>,
    path: &str,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    want: u16,
) -> Observed {
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let obs = observe(build(app.client.request(m, app.url(path)))).await;
    assert_eq!(
        obs.status,
        want,
        "{} {path}: {}",
        method.to_uppercase(),
        obs.text()
    );
    spec.conforms(method, template, path, &obs);
    obs
}

fn none(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb
}

fn admin(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.header("x-admin-key", ADMIN_KEY)
}

// ------------------------------------------------------- fault injection

/// The devnet provider behind a switch: 0 up, 1 down (every read fails),
/// 2 hanging (reads wait longer than any probe or request timeout).
struct SwitchedChain {
    inner: Arc<dyn ChainProvider>,
    mode: Arc<AtomicU8>,
}

impl SwitchedChain {
    async fn fault(&self, op: &'static str) -> Option<ChainError> {
        match self.mode.load(Ordering::SeqCst) {
            0 => None,
            1 => Some(ChainError::new(op, "injected outage")),
            _ => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Some(ChainError::new(op, "injected hang"))
            }
        }
    }
}

#[async_trait]
impl ChainProvider for SwitchedChain {
    fn network(&self) -> Network {
        self.inner.network()
    }
    async fn utxos(&self, refs: &[UtxoRef]) -> Vec<UtxoState> {
        match self.fault("utxos").await {
            None => self.inner.utxos(refs).await,
            Some(e) => refs
                .iter()
                .map(|_| UtxoState::Unknown(e.to_string()))
                .collect(),
        }
    }
    async fn tip(&self) -> Result<Tip, ChainError> {
        match self.fault("tip").await {
            None => self.inner.tip().await,
            Some(e) => Err(e),
        }
    }
    async fn protocol_params(&self) -> Result<Arc<ProtocolParams>, ChainError> {
        match self.fault("protocol_params").await {
            None => self.inner.protocol_params().await,
            Some(e) => Err(e),
        }
    }
    async fn submit(&self, tx_cbor: &[u8]) -> SubmitOutcome {
        match self.fault("submit").await {
            None => self.inner.submit(tx_cbor).await,
            Some(e) => SubmitOutcome::Unknown(e.to_string()),
        }
    }
    async fn evidence(&self, tx_id: &TxId) -> Result<Evidence, ChainError> {
        match self.fault("evidence").await {
            None => self.inner.evidence(tx_id).await,
            Some(e) => Err(e),
        }
    }
    fn invalidate(&self, spent: &[UtxoRef]) {
        self.inner.invalidate(spent)
    }
    fn slot_at(&self, unix_seconds: i64) -> u64 {
        self.inner.slot_at(unix_seconds)
    }
}

/// The in-memory store behind a switch: while `down`, every call fails.
struct SwitchedStore {
    inner: MemoryStore,
    down: Arc<AtomicU8>,
}

impl SwitchedStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) == 0 {
            Ok(())
        } else {
            Err(StoreError::Unavailable("injected outage".into()))
        }
    }
}

#[async_trait]
impl Store for SwitchedStore {
    async fn reserve(
        &self,
        inputs: &[UtxoRef],
        owner: &TxId,
        ttl: Duration,
    ) -> Result<ReserveOutcome, StoreError> {
        self.check()?;
        self.inner.reserve(inputs, owner, ttl).await
    }
    async fn release(&self, inputs: &[UtxoRef], owner: &TxId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release(inputs, owner).await
    }
    async fn holder(&self, input: &UtxoRef) -> Result<Option<TxId>, StoreError> {
        self.check()?;
        self.inner.holder(input).await
    }
    async fn reservations_active(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.reservations_active().await
    }
    async fn claim(
        &self,
        record: &SettlementRecord,
        reservation: Duration,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<ClaimOutcome, StoreError> {
        self.check()?;
        self.inner
            .claim(record, reservation, retention, schedule)
            .await
    }
    async fn release_claim(&self, tx_id: &TxId, attempt: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.release_claim(tx_id, attempt).await
    }
    async fn set_flag(&self, name: &str, value: bool) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set_flag(name, value).await
    }
    async fn flag(&self, name: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.flag(name).await
    }
    async fn logical_key_holder(&self, key: &str) -> Result<Option<TxId>, StoreError> {
        self.check()?;
        self.inner.logical_key_holder(key).await
    }
    async fn transition(
        &self,
        expected_state: SettlementState,
        expected_attempt: &str,
        next: &SettlementRecord,
        retention: Duration,
        schedule: Schedule,
    ) -> Result<CasOutcome, StoreError> {
        self.check()?;
        self.inner
            .transition(expected_state, expected_attempt, next, retention, schedule)
            .await
    }
    async fn get(&self, tx_id: &TxId) -> Result<Option<SettlementRecord>, StoreError> {
        self.check()?;
        self.inner.get(tx_id).await
    }
    async fn list(
        &self,
        state: Option<SettlementState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.check()?;
        self.inner.list(state, cursor, limit).await
    }
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<TxId>, StoreError> {
        self.check()?;
        self.inner.due(now_ms, limit).await
    }
    async fn count_by_state(&self) -> Result<Vec<(SettlementState, u64)>, StoreError> {
        self.check()?;
        self.inner.count_by_state().await
    }
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.acquire_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.release_lease(name, holder).await
    }
    async fn idempotency_begin(
        &self,
        id: &str,
        payload_digest: &str,
        ttl: Duration,
    ) -> Result<IdempotencyOutcome, StoreError> {
        self.check()?;
        self.inner.idempotency_begin(id, payload_digest, ttl).await
    }
    async fn idempotency_complete(
        &self,
        id: &str,
        payload_digest: &str,
        answer_json: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner
            .idempotency_complete(id, payload_digest, answer_json, ttl)
            .await
    }
    async fn idempotency_abort(&self, id: &str, payload_digest: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.idempotency_abort(id, payload_digest).await
    }
    async fn health(&self) -> DependencyHealth {
        match self.check() {
            Ok(()) => self.inner.health().await,
            Err(e) => DependencyHealth {
                status: DependencyStatus::Down,
                latency_ms: 0.0,
                tip: None,
                error: Some(e.to_string()),
            },
        }
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// The real app on the devnet, with switches on its chain and its store.
async fn spawn_switched(
    configure: impl FnOnce(&mut Settings),
) -> (TestApp, Arc<AtomicU8>, Arc<AtomicU8>) {
    let mut settings = test_settings();
    configure(&mut settings);
    let problems = settings.validate();
    assert!(problems.is_empty(), "test settings invalid: {problems:?}");
    let handle = x402_facilitator::chain::build(&settings)
        .await
        .expect("devnet starts");
    let chain_mode = Arc::new(AtomicU8::new(0));
    let store_down = Arc::new(AtomicU8::new(0));
    let chain = ChainHandle {
        provider: Arc::new(SwitchedChain {
            inner: handle.provider,
            mode: chain_mode.clone(),
        }),
        devnet: handle.devnet,
    };
    let store = Arc::new(SwitchedStore {
        inner: MemoryStore::new(),
        down: store_down.clone(),
    });
    let sentry = x402_facilitator::telemetry::init_sentry(&settings);
    let app = App::build_with(settings, store, chain, sentry)
        .await
        .expect("app builds");
    (crate::support::app::start(app), chain_mode, store_down)
}

// ------------------------------------------------------------------ tests

/// The `.route("...", method(...))` calls of one router source file.
/// A concrete path for a template, with a plausible value for each parameter.
fn sample_path(template: &str) -> String {
    template
        .replace("{txid}", ZERO_TX)
        .replace("{hash}", ZERO_TX)
        .replace("{hash_or_number}", "1")
        .replace("{address}", UNUSED_ADDRESS)
        .replace("{asset}", "lovelace")
}

#[tokio::test]
async fn spec_covers_exactly_the_routes_and_its_enums_are_the_codes() {
    let spec = Spec::load();
    assert!(
        spec.doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1"
    );

    // Routes: the shared route tables and the spec agree (the router serving
    // each entry is checked against the running app by
    // `every_listed_route_is_served`).
    let table = routes();
    let listed: BTreeSet<(String, String)> = table.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        table.len(),
        "no duplicate in the route tables"
    );
    let documented = spec.operations();
    let missing: Vec<_> = listed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "operations in openapi.yaml that no route serves: {extra:?}"
    );

    // Every $ref resolves and every component schema compiles.
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    refs.push(r);
                }
                m.values().for_each(|x| walk(x, refs));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, refs)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    walk(&spec.doc, &mut refs);
    for r in refs {
        let pointer = r.strip_prefix('#').expect("local $ref");
        assert!(
            spec.doc.pointer(pointer).is_some(),
            "$ref {r} does not resolve"
        );
    }
    for (name, schema) in spec.doc["components"]["schemas"]
        .as_object()
        .expect("component schemas")
    {
        let _ = spec.validator(schema);
        assert!(!name.is_empty());
    }

    // What every operation must document.
    let global = spec.doc["x-global-responses"]
        .as_object()
        .expect("x-global-responses");
    for code in ["404", "405", "413", "429", "500", "503", "504"] {
        assert!(global.contains_key(code), "x-global-responses lacks {code}");
    }
    let schemes = spec.doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["apiKeyAuth"]["name"], "X-API-Key");
    assert_eq!(schemes["adminKey"]["name"], "X-Admin-Key");
    for (method, path) in &listed {
        let op = spec.operation(method, path).expect("operation");
        let responses = op["responses"].as_object().expect("responses");
        let has = |c: &str| responses.contains_key(c);
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{method} {path}: no success answer"
        );
        for code in ["413", "500", "503", "504"] {
            assert!(has(code), "{method} {path}: {code} not documented");
        }
        let devnet = path.starts_with("/devnet/");
        assert_eq!(
            has("429"),
            !devnet,
            "{method} {path}: 429 only outside /devnet"
        );
        let security = op.get("security").cloned().unwrap_or(Value::Null);
        if SENSITIVE.contains(&path.as_str()) {
            assert!(has("401"), "{method} {path}: 401 not documented");
            assert_eq!(
                security,
                json!([{}, {"bearerAuth": []}, {"apiKeyAuth": []}]),
                "{method} {path}: the API key is optional"
            );
        } else if path.starts_with("/admin/") {
            for code in ["401", "403", "404"] {
                assert!(has(code), "{method} {path}: {code} not documented");
            }
            assert_eq!(security, json!([{"adminKey": []}]), "{method} {path}");
        } else {
            assert!(!has("401"), "{method} {path}: needs no key");
            assert!(security.is_null(), "{method} {path}: needs no key");
        }
    }

    // Enums are the code's.
    let enum_of = |name: &str| -> BTreeSet<String> {
        spec.doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} enum"))
            .iter()
            .map(|v| v.as_str().expect("string").to_owned())
            .collect()
    };
    let mut reasons: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    reasons.extend(PROJECT_REASONS.iter().map(|r| (*r).to_owned()));
    assert_eq!(enum_of("ReasonCode"), reasons, "ReasonCode enum");
    let states: BTreeSet<String> = SettlementState::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(enum_of("SettlementState"), states, "SettlementState enum");

    // Every documented operation reaches a handler of the real app.
    let app = spawn_app_with(|s| s.admin.api_key = Some(Secret::new(ADMIN_KEY))).await;
    for (method, template) in &documented {
        let path = sample_path(template);
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let mut rb = app
            .client
            .request(m, app.url(&path))
            .header("x-admin-key", ADMIN_KEY);
        if method == "post" {
            rb = if template.ends_with("/tx/submit") {
                rb.header("content-type", "application/cbor")
                    .body(vec![0x80])
            } else {
                rb.json(&json!({}))
            };
        }
        let obs = observe(rb).await;
        let body = obs.json();
        assert!(
            !(obs.status == 404 && body["error"]["message"] == "No such route"),
            "{method} {path}: the router's fallback answered"
        );
        assert_ne!(obs.status, 405, "{method} {path}: method not routed");
        spec.conforms(method, Some(template), &path, &obs);
    }
    app.stop().await;
}

#[tokio::test]
async fn payments_status_admin_and_devnet_answer_as_documented() {
    let spec = Spec::load();
    let app = spawn_app_with(|s| s.admin.api_key = Some(Secret::new(ADMIN_KEY))).await;
    let s = &spec;
    let a = &app;

    // Operations and global answers.
    check(s, a, "get", Some("/supported"), "/supported", none, 200).await;
    check(s, a, "get", Some("/health"), "/health", none, 200).await;
    check(s, a, "get", Some("/ready"), "/ready", none, 200).await;
    check(s, a, "get", Some("/metrics"), "/metrics", none, 200).await;
    check(s, a, "get", None, "/no/such/route", none, 404).await;
    let obs = check(s, a, "delete", None, "/verify", none, 405).await;
    assert_eq!(obs.header("allow"), Some("POST"));
    check(s, a, "get", None, "/settle", none, 405).await;
    check(s, a, "post", None, "/devnet/api/v0/health", none, 405).await;
    check(s, a, "get", None, "/devnet/api/v0/no/such/thing", none, 404).await;
    let big = vec![b' '; 70 * 1024];
    check(
        s,
        a,
        "get",
        Some("/supported"),
        "/supported",
        |r| r.body(big.clone()),
        413,
    )
    .await;

    // The devnet faucet, then a real buyer.
    let faucet = json!({"address": UNUSED_ADDRESS, "lovelace": "3000000"});
    let obs = check(
        s,
        a,
        "post",
        Some("/devnet/faucet"),
        "/devnet/faucet",
        |r| r.json(&faucet),
        200,
    )
    .await;
    let faucet_tx = obs.json()["txHash"].as_str().expect("txHash").to_owned();
    check(
        s,
        a,
        "post",
        Some("/devnet/faucet"),
        "/devnet/faucet",
        |r| r.json(&json!({"address": "nope", "lovelace": "1"})),
        400,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/devnet/faucet"),
        "/devnet/faucet",
        |r| r.body("not json"),
        400,
    )
    .await;
    let (buyer, _) = funded_buyer(&a.client, &a.base, 0x31, 30_000_000).await;
    let req = requirements(&seller(0x61), 1_500_000, 0);
    let v = view(&a.client, &a.base, &buyer).await;
    let (built, body) = pay(&buyer, &v, &req);
    let txid = built.tx_id.to_hex();

    // /verify: valid, rejected, not x402, too large.
    let obs = check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.json(&body),
        200,
    )
    .await;
    assert_eq!(obs.json()["isValid"], true);
    let mut dearer = body.clone();
    dearer["paymentRequirements"]["amount"] = json!("900000000");
    dearer["paymentPayload"]["accepted"]["amount"] = json!("900000000");
    let obs = check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.json(&dearer),
        200,
    )
    .await;
    assert_eq!(obs.json()["isValid"], false);
    let mut v3 = body.clone();
    v3["x402Version"] = json!(3);
    v3["paymentPayload"]["x402Version"] = json!(3);
    let obs = check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.json(&v3),
        200,
    )
    .await;
    assert_eq!(obs.json()["invalidReason"], "invalid_x402_version");
    let obs = check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.body("not json"),
        400,
    )
    .await;
    assert_eq!(obs.json()["invalidReason"], "invalid_payload");
    check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.body(big.clone()),
        413,
    )
    .await;

    // /settle: success, rejection, not x402, idempotency conflict.
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&body),
        200,
    )
    .await;
    assert_eq!(obs.json()["success"], true, "{}", obs.text());
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&v3),
        200,
    )
    .await;
    assert_eq!(obs.json()["success"], false);
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.body("[]"),
        400,
    )
    .await;
    assert_eq!(obs.json()["errorReason"], "invalid_payload");
    let (buyer2, _) = funded_buyer(&a.client, &a.base, 0x32, 30_000_000).await;
    let v2 = view(&a.client, &a.base, &buyer2).await;
    let (_, mut with_id) = pay(&buyer2, &v2, &req);
    let ext = json!({"payment-identifier": {"info": {"id": "openapi-order-0001-abcdef"}}});
    with_id["paymentPayload"]["extensions"] = ext.clone();
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&with_id),
        200,
    )
    .await;
    assert_eq!(obs.json()["success"], true, "{}", obs.text());
    let (buyer3, _) = funded_buyer(&a.client, &a.base, 0x33, 30_000_000).await;
    let v3view = view(&a.client, &a.base, &buyer3).await;
    let (_, mut other) = pay(&buyer3, &v3view, &req);
    other["paymentPayload"]["extensions"] = ext;
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&other),
        409,
    )
    .await;
    assert_eq!(obs.json()["error"]["code"], "payment_identifier_conflict");

    // /status, both forms.
    let st = format!("/status/{txid}");
    let obs = check(s, a, "get", Some("/status/{txid}"), &st, none, 200).await;
    assert_eq!(obs.json()["status"], "confirmed");
    check(
        s,
        a,
        "get",
        Some("/status/{txid}"),
        &format!("/status/{ZERO_TX}"),
        none,
        404,
    )
    .await;
    check(
        s,
        a,
        "get",
        Some("/status/{txid}"),
        "/status/xyz",
        none,
        400,
    )
    .await;
    let b64 = body["paymentPayload"]["payload"]["transaction"].clone();
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.json(&json!({"transaction": txid})),
        200,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.json(&json!({"transaction": b64})),
        200,
    )
    .await;
    let obs = check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.json(&json!({"transaction": ZERO_TX})),
        404,
    )
    .await;
    assert_eq!(obs.json()["status"], "not_found");
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.json(&json!({})),
        400,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.body("{"),
        400,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.json(&json!({"transaction": "!!"})),
        400,
    )
    .await;

    // /admin.
    let t = Some("/admin/settlement");
    check(s, a, "get", t, "/admin/settlement", none, 401).await;
    check(
        s,
        a,
        "get",
        t,
        "/admin/settlement",
        |r| r.header("x-admin-key", "wrong"),
        401,
    )
    .await;
    check(s, a, "get", t, "/admin/settlement", admin, 200).await;
    let t = Some("/admin/settlements");
    let obs = check(s, a, "get", t, "/admin/settlements", admin, 200).await;
    assert!(
        !obs.json()["records"]
            .as_array()
            .expect("records")
            .is_empty()
    );
    let obs = check(
        s,
        a,
        "get",
        t,
        "/admin/settlements?state=confirmed&limit=1",
        admin,
        200,
    )
    .await;
    let cursor = obs.json()["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    check(
        s,
        a,
        "get",
        t,
        &format!("/admin/settlements?cursor={cursor}"),
        admin,
        200,
    )
    .await;
    check(s, a, "get", t, "/admin/settlements?state=bogus", admin, 400).await;
    let obs = check(
        s,
        a,
        "get",
        t,
        "/admin/settlements?cursor=bogus",
        admin,
        400,
    )
    .await;
    assert_eq!(obs.json()["error"]["code"], "invalid_cursor");
    check(s, a, "get", t, "/admin/settlements?limit=abc", admin, 400).await;
    check(s, a, "get", t, "/admin/settlements", none, 401).await;
    let t = Some("/admin/settlements/{txid}");
    let obs = check(
        s,
        a,
        "get",
        t,
        &format!("/admin/settlements/{txid}"),
        admin,
        200,
    )
    .await;
    assert!(obs.json()["txCborB64"].is_string());
    check(
        s,
        a,
        "get",
        t,
        &format!("/admin/settlements/{ZERO_TX}"),
        admin,
        404,
    )
    .await;
    check(s, a, "get", t, "/admin/settlements/xyz", admin, 400).await;
    let t = Some("/admin/reconcile");
    check(s, a, "post", t, "/admin/reconcile", admin, 200).await;
    check(s, a, "post", t, "/admin/reconcile", none, 401).await;
    let t = Some("/admin/settlement/pause");
    check(s, a, "post", t, "/admin/settlement/pause", none, 401).await;
    let obs = check(s, a, "post", t, "/admin/settlement/pause", admin, 200).await;
    assert_eq!(obs.json()["paused"], true);

    // Paused: /settle answers 503 with Retry-After; /verify still works.
    let (buyer4, _) = funded_buyer(&a.client, &a.base, 0x34, 30_000_000).await;
    let v4 = view(&a.client, &a.base, &buyer4).await;
    let (_, paused_body) = pay(&buyer4, &v4, &req);
    check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.json(&paused_body),
        200,
    )
    .await;
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&paused_body),
        503,
    )
    .await;
    assert_eq!(obs.json()["errorReason"], "settlement_paused");
    assert_eq!(obs.header("retry-after"), Some("1"));
    let t = Some("/admin/settlement/resume");
    check(s, a, "post", t, "/admin/settlement/resume", none, 401).await;
    let obs = check(s, a, "post", t, "/admin/settlement/resume", admin, 200).await;
    assert_eq!(obs.json()["paused"], false);

    // The devnet's Blockfrost-compatible API.
    for p in [
        "/devnet/api/v0",
        "/devnet/api/v0/",
        "/devnet/api/v0/health",
        "/devnet/api/v0/genesis",
        "/devnet/api/v0/epochs/latest",
        "/devnet/api/v0/epochs/latest/parameters",
        "/devnet/api/v0/blocks/latest",
    ] {
        check(s, a, "get", Some(p), p, none, 200).await;
    }
    let obs = check(
        s,
        a,
        "get",
        Some("/devnet/api/v0/blocks/latest"),
        "/devnet/api/v0/blocks/latest",
        none,
        200,
    )
    .await;
    let tip_hash = obs.json()["hash"].as_str().expect("hash").to_owned();
    let t = Some("/devnet/api/v0/blocks/{hash_or_number}");
    check(s, a, "get", t, "/devnet/api/v0/blocks/1", none, 200).await;
    check(
        s,
        a,
        "get",
        t,
        &format!("/devnet/api/v0/blocks/{tip_hash}"),
        none,
        200,
    )
    .await;
    check(s, a, "get", t, "/devnet/api/v0/blocks/zz", none, 400).await;
    check(s, a, "get", t, "/devnet/api/v0/blocks/99999999", none, 404).await;
    let t = Some("/devnet/api/v0/addresses/{address}/utxos");
    let buyer_utxos = format!("/devnet/api/v0/addresses/{}/utxos", buyer.address());
    check(s, a, "get", t, &buyer_utxos, none, 200).await;
    check(s, a, "get", t, &format!("{buyer_utxos}?count=0"), none, 400).await;
    check(
        s,
        a,
        "get",
        t,
        "/devnet/api/v0/addresses/nope/utxos",
        none,
        400,
    )
    .await;
    let never_used = format!(
        "/devnet/api/v0/addresses/{}/utxos",
        x402_facilitator::buyer::keys::SigningKey::from_seed([0x7e; 32])
            .enterprise_address(Network::Devnet)
    );
    check(s, a, "get", t, &never_used, none, 404).await;
    let t = Some("/devnet/api/v0/addresses/{address}/utxos/{asset}");
    check(
        s,
        a,
        "get",
        t,
        &format!("{buyer_utxos}/lovelace"),
        none,
        200,
    )
    .await;
    check(
        s,
        a,
        "get",
        t,
        &format!("{buyer_utxos}/{}é", "a".repeat(55)),
        none,
        400,
    )
    .await;
    // Faucet transactions are synthetic: the devnet keeps no CBOR for them.
    for (template, suffix, faucet_status) in [
        ("/devnet/api/v0/txs/{hash}", "", 200),
        ("/devnet/api/v0/txs/{hash}/utxos", "/utxos", 200),
        ("/devnet/api/v0/txs/{hash}/cbor", "/cbor", 404),
    ] {
        let t = Some(template);
        check(
            s,
            a,
            "get",
            t,
            &format!("/devnet/api/v0/txs/{txid}{suffix}"),
            none,
            200,
        )
        .await;
        let faucet_path = format!("/devnet/api/v0/txs/{faucet_tx}{suffix}");
        check(s, a, "get", t, &faucet_path, none, faucet_status).await;
        check(
            s,
            a,
            "get",
            t,
            &format!("/devnet/api/v0/txs/zz{suffix}"),
            none,
            400,
        )
        .await;
        check(
            s,
            a,
            "get",
            t,
            &format!("/devnet/api/v0/txs/{ZERO_TX}{suffix}"),
            none,
            404,
        )
        .await;
    }
    let t = Some("/devnet/api/v0/mempool/{hash}");
    check(
        s,
        a,
        "get",
        t,
        &format!("/devnet/api/v0/mempool/{ZERO_TX}"),
        none,
        404,
    )
    .await;
    check(s, a, "get", t, "/devnet/api/v0/mempool/zz", none, 400).await;
    let t = Some("/devnet/api/v0/tx/submit");
    check(
        s,
        a,
        "post",
        t,
        "/devnet/api/v0/tx/submit",
        |r| r.json(&json!({})),
        400,
    )
    .await;
    check(
        s,
        a,
        "post",
        t,
        "/devnet/api/v0/tx/submit",
        |r| {
            r.header("content-type", "application/cbor")
                .body(vec![0x80])
        },
        400,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn mempool_pending_outages_overload_and_timeouts_answer_as_documented() {
    let spec = Spec::load();
    // No block is produced on a timer during the test (only faucet blocks), so
    // submitted transactions stay in the mempool; one request at a time.
    let (app, chain_mode, store_down) = spawn_switched(|s| {
        s.admin.api_key = Some(Secret::new(ADMIN_KEY));
        s.chain.devnet.block_time = std::time::Duration::from_millis(600_000);
        s.settlement.confirmation_timeout = std::time::Duration::from_secs(1);
        s.server.request_timeout = std::time::Duration::from_millis(2_000);
        s.server.body_read_timeout = std::time::Duration::from_millis(1_000);
        s.server.max_concurrent_requests = 1;
    })
    .await;
    let s = &spec;
    let a = &app;
    let (b1, _) = funded_buyer(&a.client, &a.base, 0x41, 10_000_000).await;
    let (b2, _) = funded_buyer(&a.client, &a.base, 0x42, 10_000_000).await;
    let (b3, _) = funded_buyer(&a.client, &a.base, 0x43, 10_000_000).await;
    let (b4, _) = funded_buyer(&a.client, &a.base, 0x44, 10_000_000).await;
    let in_block = requirements(&seller(0x71), 1_000_000, 0);
    let in_mempool = requirements(&seller(0x71), 1_000_000, -1);
    let (p1, _) = pay(&b1, &view(&a.client, &a.base, &b1).await, &in_block);
    let (_, p2) = pay(&b2, &view(&a.client, &a.base, &b2).await, &in_block);
    let (_, p3) = pay(&b3, &view(&a.client, &a.base, &b3).await, &in_mempool);
    let (_, p4) = pay(&b4, &view(&a.client, &a.base, &b4).await, &in_block);

    // Blockfrost submit, then the mempool entry.
    let t = Some("/devnet/api/v0/tx/submit");
    let obs = check(
        s,
        a,
        "post",
        t,
        "/devnet/api/v0/tx/submit",
        |r| {
            r.header("content-type", "application/cbor")
                .body(p1.tx.clone())
        },
        200,
    )
    .await;
    assert_eq!(obs.json(), json!(p1.tx_id.to_hex()));
    let mp = format!("/devnet/api/v0/mempool/{}", p1.tx_id.to_hex());
    check(
        s,
        a,
        "get",
        Some("/devnet/api/v0/mempool/{hash}"),
        &mp,
        none,
        200,
    )
    .await;
    let tx = format!("/devnet/api/v0/txs/{}", p1.tx_id.to_hex());
    check(
        s,
        a,
        "get",
        Some("/devnet/api/v0/txs/{hash}"),
        &tx,
        none,
        404,
    )
    .await;

    // Settle: pending (no block comes), then success on a mempool policy.
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&p2),
        200,
    )
    .await;
    let pending = obs.json();
    assert_eq!(pending["errorReason"], "settlement_pending", "{pending}");
    let txid2 = pending["transaction"].as_str().expect("tx id").to_owned();
    let obs = check(
        s,
        a,
        "get",
        Some("/status/{txid}"),
        &format!("/status/{txid2}"),
        none,
        200,
    )
    .await;
    assert!(["submitted", "pending"].contains(&obs.json()["status"].as_str().unwrap_or("")));
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&p3),
        200,
    )
    .await;
    assert_eq!(obs.json()["extra"]["status"], "mempool", "{}", obs.text());

    // The chain is down: verify and settle cannot decide (503), not ready, degraded.
    chain_mode.store(1, Ordering::SeqCst);
    let obs = check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.json(&p4),
        503,
    )
    .await;
    assert_eq!(obs.json()["isValid"], false);
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&p4),
        503,
    )
    .await;
    assert_eq!(obs.json()["success"], false);
    let obs = check(s, a, "get", Some("/ready"), "/ready", none, 503).await;
    assert_eq!(obs.json()["ready"], false);
    let obs = check(s, a, "get", Some("/health"), "/health", none, 200).await;
    assert_eq!(obs.json()["status"], "degraded");

    // The store is down too: unhealthy, and every store read fails closed.
    store_down.store(1, Ordering::SeqCst);
    let obs = check(s, a, "get", Some("/health"), "/health", none, 503).await;
    assert_eq!(obs.json()["status"], "unhealthy");
    chain_mode.store(0, Ordering::SeqCst);
    let obs = check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.json(&p4),
        503,
    )
    .await;
    assert_eq!(
        obs.json()["invalidReason"],
        "exact_cardano_facilitator_store_unavailable"
    );
    let obs = check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&p4),
        503,
    )
    .await;
    assert_eq!(
        obs.json()["errorReason"],
        "exact_cardano_facilitator_store_unavailable"
    );
    check(
        s,
        a,
        "get",
        Some("/status/{txid}"),
        &format!("/status/{txid2}"),
        none,
        503,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.json(&json!({"transaction": txid2})),
        503,
    )
    .await;
    check(
        s,
        a,
        "get",
        Some("/admin/settlements"),
        "/admin/settlements",
        admin,
        503,
    )
    .await;
    check(
        s,
        a,
        "get",
        Some("/admin/settlements/{txid}"),
        &format!("/admin/settlements/{txid2}"),
        admin,
        503,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/admin/reconcile"),
        "/admin/reconcile",
        admin,
        503,
    )
    .await;
    store_down.store(0, Ordering::SeqCst);

    // A hanging chain: /health outlives the request timeout (504), and while
    // it holds the only slot, other requests are shed (503 overloaded).
    chain_mode.store(2, Ordering::SeqCst);
    let slow = {
        let client = a.client.clone();
        let url = a.url("/health");
        tokio::spawn(async move { observe(client.get(url)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let obs = check(s, a, "get", Some("/supported"), "/supported", none, 503).await;
    assert_eq!(obs.json()["error"]["code"], "overloaded");
    let obs = slow.await.expect("slow request");
    assert_eq!(obs.status, 504, "{}", obs.text());
    spec.conforms("get", Some("/health"), "/health", &obs);
    assert_eq!(obs.json()["error"]["code"], "timeout");
    chain_mode.store(0, Ordering::SeqCst);
    app.stop().await;
}

#[tokio::test]
async fn api_keys_rate_limits_and_admin_guards_answer_as_documented() {
    let spec = Spec::load();
    let s = &spec;
    let digest = hex::encode(Sha256::digest(API_KEY.as_bytes()));
    // API keys required, tight sensitive limit, no admin key (admin disabled).
    let app = spawn_app_with(|st| {
        st.auth.api_keys = vec![x402_facilitator::config::KeyDigest::from_hex(&digest).unwrap()];
        st.rate_limit.enabled = true;
        st.rate_limit.global = 1_000;
        st.rate_limit.sensitive = 6;
    })
    .await;
    let a = &app;
    let sample = json!({"transaction": ZERO_TX});
    let obs = check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.json(&json!({})),
        401,
    )
    .await;
    assert_eq!(obs.header("www-authenticate"), Some("Bearer"));
    check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.json(&json!({})),
        401,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.json(&sample),
        401,
    )
    .await;
    let st = format!("/status/{ZERO_TX}");
    check(
        s,
        a,
        "get",
        Some("/status/{txid}"),
        &st,
        |r| r.header("x-api-key", "wrong"),
        401,
    )
    .await;
    // The key, in either header, opens the sensitive routes.
    check(
        s,
        a,
        "get",
        Some("/status/{txid}"),
        &st,
        |r| r.header("x-api-key", API_KEY),
        404,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/verify"),
        "/verify",
        |r| r.bearer_auth(API_KEY).body("x"),
        400,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/settle"),
        "/settle",
        |r| r.bearer_auth(API_KEY).body("x"),
        400,
    )
    .await;
    check(
        s,
        a,
        "post",
        Some("/status"),
        "/status",
        |r| r.bearer_auth(API_KEY).json(&sample),
        404,
    )
    .await;
    // Public routes stay public; the admin API does not exist.
    check(s, a, "get", Some("/supported"), "/supported", none, 200).await;
    let obs = check(
        s,
        a,
        "get",
        Some("/admin/settlement"),
        "/admin/settlement",
        admin,
        404,
    )
    .await;
    assert_eq!(obs.json()["error"]["code"], "not_found");
    check(
        s,
        a,
        "post",
        Some("/admin/settlement/pause"),
        "/admin/settlement/pause",
        admin,
        404,
    )
    .await;
    // The caller's address has spent its sensitive budget on the 401s.
    let mut limited = None;
    for _ in 0..8 {
        let obs = observe(a.client.post(a.url("/verify")).json(&json!({}))).await;
        if obs.status == 429 {
            limited = Some(obs);
            break;
        }
        assert_eq!(obs.status, 401, "{}", obs.text());
    }
    let obs = limited.expect("the sensitive limit is reached");
    spec.conforms("post", Some("/verify"), "/verify", &obs);
    assert_eq!(obs.json()["error"]["code"], "rate_limited");
    assert_eq!(obs.header("ratelimit-remaining"), Some("0"));
    app.stop().await;

    // The admin address list, and the global limit on public routes.
    let app = spawn_app_with(|st| {
        st.admin.api_key = Some(Secret::new(ADMIN_KEY));
        st.admin.allowed_ips = vec!["10.20.30.40".parse().unwrap()];
        st.rate_limit.enabled = true;
        st.rate_limit.global = 3;
    })
    .await;
    let a = &app;
    let obs = check(
        s,
        a,
        "get",
        Some("/admin/settlement"),
        "/admin/settlement",
        admin,
        403,
    )
    .await;
    assert_eq!(obs.json()["error"]["code"], "forbidden");
    let obs = check(s, a, "get", Some("/health"), "/health", none, 200).await;
    assert!(obs.header("ratelimit-limit").is_some());
    check(s, a, "get", Some("/supported"), "/supported", none, 200).await;
    let obs = check(s, a, "get", Some("/metrics"), "/metrics", none, 429).await;
    assert!(obs.header("retry-after").is_some());
    check(s, a, "get", None, "/no/such/route", none, 429).await;
    // The devnet is not rate limited.
    check(
        s,
        a,
        "get",
        Some("/devnet/api/v0/health"),
        "/devnet/api/v0/health",
        none,
        200,
    )
    .await;
    app.stop().await;
}

/// The router serves every entry of the shared route tables (none falls
/// through to "No such route" or 405), so the tables the OpenAPI check reads
/// are the routes themselves.
#[tokio::test]
async fn every_listed_route_is_served() {
    let app = spawn_app_with(|s| s.admin.api_key = Some(Secret::new(ADMIN_KEY))).await;
    for (method, template) in routes() {
        let url = app.url(&sample_path(&template));
        let req = match method.as_str() {
            "get" => app.client.get(&url),
            "post" => app
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body("{}"),
            other => panic!("unexpected method {other}"),
        };
        let r = req.header("x-admin-key", ADMIN_KEY).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {template}: {body}");
        assert!(
            !(status == 404 && body.contains("No such route")),
            "{method} {template} is listed but not served: {body}"
        );
    }
    app.stop().await;
}
