//! The devnet's Blockfrost-compatible HTTP API and faucet.
//!
//! [`router`] serves `/api/v0/...` and `/faucet`; the application nests it
//! under `/devnet`. Every answer carries all the fields that Blockfrost's
//! OpenAPI (npm `@blockfrost/openapi`) marks as required for its endpoint,
//! with Blockfrost's JSON types (quantities and deposits as strings, counts
//! and slots as numbers, absent values as `null`), and errors use Blockfrost's
//! `{status_code, error, message}` shape and status codes. The interop tests
//! validate real answers against that schema and drive the API with a wallet
//! library (see `interop/`).
//!
//! Served endpoints: `/`, `/health`, `/genesis`, `/epochs/latest`,
//! `/epochs/latest/parameters`, `/blocks/latest`, `/blocks/{hash_or_number}`,
//! `/addresses/{address}/utxos`, `/addresses/{address}/utxos/{asset}`,
//! `/txs/{hash}`, `/txs/{hash}/utxos`, `/txs/{hash}/cbor`, `/mempool/{hash}`,
//! `POST /tx/submit`, and (when enabled) `POST /faucet`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ledger::{EPOCH_LENGTH, Ledger, MAX_BLOCK_BODY_SIZE, OutputRecord, TxRecord, TxStatus};
use super::{Devnet, address_text, parse_devnet_address, value_from_strings};
use crate::cardano::{AssetId, TxId, UtxoRef, Value};

/// Largest request body accepted (a transaction is at most 16 KiB).
const BODY_LIMIT: usize = 256 * 1024;

/// Build the devnet router: `/api/v0/...` (Blockfrost-compatible) and, when
/// `faucet_enabled`, `POST /faucet`. Unknown paths answer Blockfrost's 404.
/// Every route of the devnet's API, as (method, path template) relative to
/// where it is mounted (`/devnet` in the service); `/faucet` only when enabled.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/faucet"),
    ("get", "/api/v0"),
    ("get", "/api/v0/"),
    ("get", "/api/v0/health"),
    ("get", "/api/v0/genesis"),
    ("get", "/api/v0/epochs/latest"),
    ("get", "/api/v0/epochs/latest/parameters"),
    ("get", "/api/v0/blocks/latest"),
    ("get", "/api/v0/blocks/{hash_or_number}"),
    ("get", "/api/v0/addresses/{address}/utxos"),
    ("get", "/api/v0/addresses/{address}/utxos/{asset}"),
    ("get", "/api/v0/txs/{hash}"),
    ("get", "/api/v0/txs/{hash}/utxos"),
    ("get", "/api/v0/txs/{hash}/cbor"),
    ("get", "/api/v0/mempool/{hash}"),
    ("post", "/api/v0/tx/submit"),
];

pub fn router(devnet: Arc<Devnet>, faucet_enabled: bool) -> Router {
    let mut r = Router::new()
        .route("/api/v0", get(root))
        .route("/api/v0/", get(root))
        .route("/api/v0/health", get(health))
        .route("/api/v0/genesis", get(genesis))
        .route("/api/v0/epochs/latest", get(epoch_latest))
        .route("/api/v0/epochs/latest/parameters", get(epoch_parameters))
        .route("/api/v0/blocks/latest", get(block_latest))
        .route("/api/v0/blocks/{hash_or_number}", get(block_by_id))
        .route("/api/v0/addresses/{address}/utxos", get(address_utxos))
        .route(
            "/api/v0/addresses/{address}/utxos/{asset}",
            get(address_asset_utxos),
        )
        .route("/api/v0/txs/{hash}", get(tx_content))
        .route("/api/v0/txs/{hash}/utxos", get(tx_utxos))
        .route("/api/v0/txs/{hash}/cbor", get(tx_cbor))
        .route("/api/v0/mempool/{hash}", get(mempool_tx))
        .route("/api/v0/tx/submit", post(submit));
    if faucet_enabled {
        r = r.route("/faucet", post(faucet));
    }
    r.route_layer(axum::middleware::from_fn_with_state(
        devnet.clone(),
        count_call,
    ))
    .fallback(not_found)
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
    .with_state(devnet)
}

/// Count every request to a served endpoint by its route, so that tests and
/// the load driver can see what a Blockfrost client costs
/// ([`Devnet::api_calls`]).
async fn count_call(
    State(d): State<Arc<Devnet>>,
    matched: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(m) = matched {
        let path = m.as_str();
        let route = path.find("/api/v0").map_or(path, |i| &path[i + 7..]);
        d.count_api_call(req.method().as_str(), route);
    }
    next.run(req).await
}

/// A Blockfrost-shaped error answer, small enough to return by value.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Blockfrost's error body.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let phrase = match status.as_u16() {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        425 => "Mempool Full",
        429 => "Project Over Limit",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    let body =
        json!({ "status_code": status.as_u16(), "error": phrase, "message": message.into() });
    (status, Json(body)).into_response()
}

fn not_found_component() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "The requested component has not been found.",
    )
}

async fn not_found() -> Response {
    not_found_component()
}

fn parse_hash(hash: &str) -> Result<TxId, ApiError> {
    hash.parse::<TxId>()
        .map_err(|_| bad_request("Invalid or malformed hash format."))
}

#[derive(Serialize)]
struct Amount {
    unit: String,
    quantity: String,
}

/// Blockfrost `amount`: lovelace first, then assets by unit.
fn amounts(v: &Value) -> Vec<Amount> {
    let mut out = vec![Amount {
        unit: "lovelace".into(),
        quantity: v.coin.to_string(),
    }];
    out.extend(v.assets.iter().map(|(id, q)| Amount {
        unit: id.unit(),
        quantity: q.to_string(),
    }));
    out
}

/// Sum of several values (in u128, so no total can overflow).
fn summed_amounts(values: impl IntoIterator<Item = Value>) -> Vec<Amount> {
    let mut coin = 0u128;
    let mut assets: BTreeMap<String, u128> = BTreeMap::new();
    for v in values {
        coin += u128::from(v.coin);
        for (id, q) in &v.assets {
            *assets.entry(id.unit()).or_insert(0) += u128::from(*q);
        }
    }
    let mut out = vec![Amount {
        unit: "lovelace".into(),
        quantity: coin.to_string(),
    }];
    out.extend(assets.into_iter().map(|(unit, q)| Amount {
        unit,
        quantity: q.to_string(),
    }));
    out
}

async fn root() -> Response {
    Json(json!({ "url": "https://docs.blockfrost.io/", "version": env!("CARGO_PKG_VERSION") }))
        .into_response()
}

async fn health() -> Response {
    Json(json!({ "is_healthy": true })).into_response()
}

async fn genesis(State(d): State<Arc<Devnet>>) -> Response {
    Json(json!({
        "active_slots_coefficient": 1.0,
        "update_quorum": 5,
        "max_lovelace_supply": "45000000000000000",
        "network_magic": d.network_magic(),
        "epoch_length": EPOCH_LENGTH,
        "system_start": d.start_time(),
        "slots_per_kes_period": 129_600,
        "slot_length": 1,
        "max_kes_evolutions": 62,
        "security_param": 2160,
    }))
    .into_response()
}

async fn epoch_latest(State(d): State<Arc<Devnet>>) -> Response {
    let start = d.start_time();
    let body = d.with_ledger(|l| {
        let tip = l.tip();
        let epoch = tip.slot / EPOCH_LENGTH;
        let first_slot = epoch * EPOCH_LENGTH;
        let blocks = l.blocks_since_slot(first_slot);
        let tx_count: usize = blocks.iter().map(|b| b.txs.len()).sum();
        let output: u128 = blocks.iter().map(|b| b.output).sum();
        let fees: u128 = blocks.iter().map(|b| u128::from(b.fees)).sum();
        let epoch_start = start.saturating_add(first_slot as i64);
        json!({
            "epoch": epoch,
            "start_time": epoch_start,
            "end_time": epoch_start.saturating_add(EPOCH_LENGTH as i64),
            "first_block_time": blocks.first().map(|b| b.time).unwrap_or(epoch_start),
            "last_block_time": blocks.last().map(|b| b.time).unwrap_or(epoch_start),
            "block_count": blocks.len(),
            "tx_count": tx_count,
            "output": output.to_string(),
            "fees": fees.to_string(),
            "active_stake": null,
        })
    });
    Json(body).into_response()
}

/// Blockfrost's `epoch_param_content`: every field is required, nullable
/// ones included. Strings and numbers follow Blockfrost's types exactly.
#[derive(Serialize)]
struct EpochParameters {
    epoch: u64,
    min_fee_a: u64,
    min_fee_b: u64,
    max_block_size: u64,
    max_tx_size: u64,
    max_block_header_size: u64,
    key_deposit: String,
    pool_deposit: String,
    e_max: u64,
    n_opt: u64,
    a0: f64,
    rho: f64,
    tau: f64,
    decentralisation_param: f64,
    extra_entropy: Option<String>,
    protocol_major_ver: u64,
    protocol_minor_ver: u64,
    min_utxo: String,
    min_pool_cost: String,
    nonce: String,
    cost_models: serde_json::Value,
    cost_models_raw: serde_json::Value,
    price_mem: f64,
    price_step: f64,
    max_tx_ex_mem: String,
    max_tx_ex_steps: String,
    max_block_ex_mem: String,
    max_block_ex_steps: String,
    max_val_size: String,
    collateral_percent: u64,
    max_collateral_inputs: u64,
    coins_per_utxo_size: String,
    coins_per_utxo_word: String,
    pvt_motion_no_confidence: f64,
    pvt_committee_normal: f64,
    pvt_committee_no_confidence: f64,
    pvt_hard_fork_initiation: f64,
    dvt_motion_no_confidence: f64,
    dvt_committee_normal: f64,
    dvt_committee_no_confidence: f64,
    dvt_update_to_constitution: f64,
    dvt_hard_fork_initiation: f64,
    dvt_p_p_network_group: f64,
    dvt_p_p_economic_group: f64,
    dvt_p_p_technical_group: f64,
    dvt_p_p_gov_group: f64,
    dvt_treasury_withdrawal: f64,
    committee_min_size: String,
    committee_max_term_length: String,
    gov_action_lifetime: String,
    gov_action_deposit: String,
    drep_deposit: String,
    drep_activity: String,
    pvtpp_security_group: f64,
    pvt_p_p_security_group: f64,
    min_fee_ref_script_cost_per_byte: u64,
}

async fn epoch_parameters(State(d): State<Arc<Devnet>>) -> Response {
    let p = d.params();
    let epoch = d.with_ledger(|l| l.tip().slot / EPOCH_LENGTH);
    // The devnet validates no Plutus script (phase 1 only), so it publishes
    // empty cost models: libraries get the shape they expect and no numbers
    // that nothing here would honour.
    let body = EpochParameters {
        epoch,
        min_fee_a: p.min_fee_a,
        min_fee_b: p.min_fee_b,
        max_block_size: MAX_BLOCK_BODY_SIZE,
        max_tx_size: p.max_tx_size,
        max_block_header_size: 1100,
        key_deposit: p.key_deposit.to_string(),
        pool_deposit: p.pool_deposit.to_string(),
        e_max: 18,
        n_opt: 500,
        a0: 0.3,
        rho: 0.003,
        tau: 0.2,
        decentralisation_param: 0.0,
        extra_entropy: None,
        protocol_major_ver: p.protocol_major,
        protocol_minor_ver: p.protocol_minor,
        min_utxo: p.coins_per_utxo_size.to_string(),
        min_pool_cost: "170000000".into(),
        nonce: hex::encode([0u8; 32]),
        cost_models: json!({ "PlutusV1": {}, "PlutusV2": {}, "PlutusV3": {} }),
        cost_models_raw: json!({ "PlutusV1": [], "PlutusV2": [], "PlutusV3": [] }),
        price_mem: 0.0577,
        price_step: 0.0000721,
        max_tx_ex_mem: "14000000".into(),
        max_tx_ex_steps: "10000000000".into(),
        max_block_ex_mem: "62000000".into(),
        max_block_ex_steps: "20000000000".into(),
        max_val_size: p.max_val_size.to_string(),
        collateral_percent: p.collateral_percent,
        max_collateral_inputs: p.max_collateral_inputs,
        coins_per_utxo_size: p.coins_per_utxo_size.to_string(),
        coins_per_utxo_word: p.coins_per_utxo_size.to_string(),
        pvt_motion_no_confidence: 0.51,
        pvt_committee_normal: 0.51,
        pvt_committee_no_confidence: 0.51,
        pvt_hard_fork_initiation: 0.51,
        dvt_motion_no_confidence: 0.67,
        dvt_committee_normal: 0.67,
        dvt_committee_no_confidence: 0.6,
        dvt_update_to_constitution: 0.75,
        dvt_hard_fork_initiation: 0.6,
        dvt_p_p_network_group: 0.67,
        dvt_p_p_economic_group: 0.67,
        dvt_p_p_technical_group: 0.67,
        dvt_p_p_gov_group: 0.75,
        dvt_treasury_withdrawal: 0.67,
        committee_min_size: "7".into(),
        committee_max_term_length: "146".into(),
        gov_action_lifetime: "6".into(),
        gov_action_deposit: "100000000000".into(),
        drep_deposit: "500000000".into(),
        drep_activity: "20".into(),
        pvtpp_security_group: 0.51,
        pvt_p_p_security_group: 0.51,
        min_fee_ref_script_cost_per_byte: p.min_fee_ref_script_cost_per_byte,
    };
    Json(body).into_response()
}

/// Blockfrost's `block_content` for the block at `height`.
fn block_json(l: &Ledger, height: u64) -> Option<serde_json::Value> {
    let b = l.block(height)?;
    let tip = l.tip().height;
    Some(json!({
        "time": b.time,
        "height": b.height,
        "hash": hex::encode(b.hash),
        "slot": b.slot,
        "epoch": b.slot / EPOCH_LENGTH,
        "epoch_slot": b.slot % EPOCH_LENGTH,
        "slot_leader": "x402-devnet",
        "size": b.size,
        "tx_count": b.txs.len(),
        "output": (!b.txs.is_empty()).then(|| b.output.to_string()),
        "fees": (!b.txs.is_empty()).then(|| b.fees.to_string()),
        "block_vrf": null,
        "op_cert": null,
        "op_cert_counter": null,
        "previous_block": b.prev.map(hex::encode),
        "next_block": l.block(height + 1).map(|n| hex::encode(n.hash)),
        "confirmations": tip.saturating_sub(height),
    }))
}

async fn block_latest(State(d): State<Arc<Devnet>>) -> Response {
    match d.with_ledger(|l| block_json(l, l.tip().height)) {
        Some(b) => Json(b).into_response(),
        None => not_found_component(),
    }
}

/// `/blocks/{hash_or_number}`: a height, or a block hash.
async fn block_by_id(State(d): State<Arc<Devnet>>, Path(id): Path<String>) -> Response {
    let body = if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        match id.parse::<u64>() {
            Ok(h) => d.with_ledger(|l| block_json(l, h)),
            Err(_) => None,
        }
    } else {
        let mut hash = [0u8; 32];
        if id.len() != 64 || hex::decode_to_slice(&id, &mut hash).is_err() {
            return error(
                StatusCode::BAD_REQUEST,
                "Missing, out of range or malformed path parameter hash_or_number.",
            );
        }
        d.with_ledger(|l| {
            let height = l.blocks().iter().rev().find(|b| b.hash == hash)?.height;
            block_json(l, height)
        })
    };
    match body {
        Some(b) => Json(b).into_response(),
        None => not_found_component(),
    }
}

#[derive(Deserialize)]
struct Paging {
    count: Option<String>,
    page: Option<String>,
    order: Option<String>,
}

/// Validate Blockfrost's paging parameters: `count` 1..=100, `page` 1..=21474836, `order` asc|desc.
fn paging(q: Result<Query<Paging>, QueryRejection>) -> Result<(usize, usize, bool), ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let int =
        |name: &str, v: Option<String>, default: usize, max: usize| -> Result<usize, ApiError> {
            match v {
                None => Ok(default),
                Some(s) => match s.parse::<usize>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    Ok(n) if n < 1 => Err(bad_request(format!("querystring/{name} must be >= 1"))),
                    Ok(_) => Err(bad_request(format!("querystring/{name} must be <= {max}"))),
                    Err(_) => Err(bad_request(format!("querystring/{name} must be integer"))),
                },
            }
        };
    let count = int("count", q.count, 100, 100)?;
    let page = int("page", q.page, 1, 21_474_836)?;
    let desc = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(bad_request(
                "querystring/order must be equal to one of the allowed values",
            ));
        }
    };
    Ok((count, page, desc))
}

#[derive(Serialize)]
struct AddressUtxo {
    address: String,
    tx_hash: String,
    tx_index: u32,
    output_index: u32,
    amount: Vec<Amount>,
    block: String,
    data_hash: Option<String>,
    inline_datum: Option<String>,
    reference_script_hash: Option<String>,
}

async fn address_utxos(
    State(d): State<Arc<Devnet>>,
    Path(address): Path<String>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Response {
    list_address_utxos(&d, address, None, q)
}

async fn address_asset_utxos(
    State(d): State<Arc<Devnet>>,
    Path((address, asset)): Path<(String, String)>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Response {
    if asset == "lovelace" {
        return list_address_utxos(&d, address, None, q);
    }
    match AssetId::from_unit(&asset) {
        Ok(id) => list_address_utxos(&d, address, Some(id), q),
        Err(_) => error(
            StatusCode::BAD_REQUEST,
            "Invalid or malformed asset format.",
        ),
    }
}

/// `/addresses/{address}/utxos[/{asset}]`: one page of the address's
/// confirmed UTxOs (holding `asset` when given); 404 for an address never used.
fn list_address_utxos(
    d: &Devnet,
    address: String,
    asset: Option<AssetId>,
    q: Result<Query<Paging>, QueryRejection>,
) -> Response {
    let (count, page, desc) = match paging(q) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Ok(bytes) = parse_devnet_address(&address) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid address for this network or malformed address format.",
        );
    };
    let skip = (page - 1).saturating_mul(count);
    let items = d.with_ledger(|l| {
        let refs = l.address_utxos(&bytes, skip, count, desc, asset.as_ref())?;
        let items: Vec<AddressUtxo> = refs
            .iter()
            .filter_map(|(pos, r)| {
                let out = l
                    .tx(&r.tx_id)
                    .and_then(|t| t.outputs.get(r.index as usize))?;
                let block = l.block(pos.0)?;
                Some(AddressUtxo {
                    address: address.clone(),
                    tx_hash: r.tx_id.to_hex(),
                    tx_index: r.index,
                    output_index: r.index,
                    amount: amounts(&out.value),
                    block: hex::encode(block.hash),
                    data_hash: out.datum_hash.map(hex::encode),
                    inline_datum: out.inline_datum.as_ref().map(hex::encode),
                    reference_script_hash: out.script_ref_hash.map(hex::encode),
                })
            })
            .collect();
        Some(items)
    });
    match items {
        Some(items) => Json(items).into_response(),
        None => not_found_component(),
    }
}

/// The fields `/txs/{hash}` and `/mempool/{hash}` share.
fn tx_summary(t: &TxRecord) -> serde_json::Map<String, serde_json::Value> {
    let v = json!({
        "hash": t.id.to_hex(),
        "output_amount": summed_amounts(t.outputs.iter().map(|o| o.value)),
        "fees": t.fee.to_string(),
        "deposit": "0",
        "size": t.size,
        "invalid_before": t.invalid_before.map(|s| s.to_string()),
        "invalid_hereafter": t.invalid_hereafter.map(|s| s.to_string()),
        "utxo_count": t.inputs.len() + t.outputs.len(),
        "withdrawal_count": t.counts.withdrawals,
        "mir_cert_count": 0,
        "delegation_count": 0,
        "stake_cert_count": t.counts.certificates,
        "pool_update_count": 0,
        "pool_retire_count": 0,
        "asset_mint_or_burn_count": t.counts.mint_or_burn,
        "redeemer_count": t.counts.redeemers,
        "valid_contract": true,
    });
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

async fn tx_content(State(d): State<Arc<Devnet>>, Path(hash): Path<String>) -> Response {
    let id = match parse_hash(&hash) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let body = d.with_ledger(|l| {
        let t = l.tx(&id)?;
        let TxStatus::InBlock { height, index } = t.status else {
            return None;
        };
        let b = l.block(height)?;
        let mut m = tx_summary(t);
        m.insert("block".into(), json!(hex::encode(b.hash)));
        m.insert("block_height".into(), json!(height));
        m.insert("block_time".into(), json!(b.time));
        m.insert("slot".into(), json!(b.slot));
        m.insert("index".into(), json!(index));
        m.insert("treasury_donation".into(), json!("0"));
        Some(serde_json::Value::Object(m))
    });
    match body {
        Some(b) => Json(b).into_response(),
        None => not_found_component(),
    }
}

/// An input as `/txs/{hash}/utxos` lists it (the spent output's data included).
fn input_json(l: &Ledger, r: &UtxoRef, collateral: bool, reference: bool) -> serde_json::Value {
    let out: Option<OutputRecord> = l.tx(&r.tx_id).and_then(|t| t.outputs.get(r.index as usize));
    let out = out.as_ref();
    json!({
        "address": out.map(|o| address_text(&o.address)).unwrap_or_default(),
        "amount": out.map(|o| amounts(&o.value)).unwrap_or_default(),
        "tx_hash": r.tx_id.to_hex(),
        "output_index": r.index,
        "data_hash": out.and_then(|o| o.datum_hash).map(hex::encode),
        "inline_datum": out.and_then(|o| o.inline_datum.as_ref()).map(hex::encode),
        "reference_script_hash": out.and_then(|o| o.script_ref_hash).map(hex::encode),
        "collateral": collateral,
        "reference": reference,
    })
}

fn output_json(o: &OutputRecord, index: usize, consumed_by: Option<TxId>) -> serde_json::Value {
    json!({
        "address": address_text(&o.address),
        "amount": amounts(&o.value),
        "output_index": index,
        "data_hash": o.datum_hash.map(hex::encode),
        "inline_datum": o.inline_datum.as_ref().map(hex::encode),
        "collateral": false,
        "reference_script_hash": o.script_ref_hash.map(hex::encode),
        "consumed_by_tx": consumed_by.map(|t| t.to_hex()),
    })
}

fn inputs_json(l: &Ledger, t: &TxRecord) -> Vec<serde_json::Value> {
    let mut inputs: Vec<serde_json::Value> = t
        .inputs
        .iter()
        .map(|r| input_json(l, r, false, false))
        .collect();
    inputs.extend(
        t.collateral_inputs
            .iter()
            .map(|r| input_json(l, r, true, false)),
    );
    inputs.extend(
        t.reference_inputs
            .iter()
            .map(|r| input_json(l, r, false, true)),
    );
    inputs
}

async fn tx_utxos(State(d): State<Arc<Devnet>>, Path(hash): Path<String>) -> Response {
    let id = match parse_hash(&hash) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let body = d.with_ledger(|l| {
        let t = l
            .tx(&id)
            .filter(|t| matches!(t.status, TxStatus::InBlock { .. }))?;
        let outputs: Vec<serde_json::Value> = t
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| output_json(&o, i, l.consumed_by(&UtxoRef::new(id, i as u32))))
            .collect();
        Some(json!({ "hash": id.to_hex(), "inputs": inputs_json(l, t), "outputs": outputs }))
    });
    match body {
        Some(b) => Json(b).into_response(),
        None => not_found_component(),
    }
}

async fn tx_cbor(State(d): State<Arc<Devnet>>, Path(hash): Path<String>) -> Response {
    let id = match parse_hash(&hash) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let cbor = d.with_ledger(|l| {
        l.tx(&id)
            .filter(|t| matches!(t.status, TxStatus::InBlock { .. }))
            .and_then(|t| t.cbor.clone())
    });
    match cbor {
        Some(c) => Json(json!({ "cbor": hex::encode(&*c) })).into_response(),
        None => not_found_component(),
    }
}

async fn mempool_tx(State(d): State<Arc<Devnet>>, Path(hash): Path<String>) -> Response {
    let id = match parse_hash(&hash) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let body = d.with_ledger(|l| {
        let t = l.tx(&id).filter(|t| t.status == TxStatus::Mempool)?;
        let inputs: Vec<serde_json::Value> = inputs_json(l, t)
            .into_iter()
            .map(|mut i| {
                if let Some(m) = i.as_object_mut() {
                    m.retain(|k, _| {
                        matches!(
                            k.as_str(),
                            "address" | "tx_hash" | "output_index" | "collateral" | "reference"
                        )
                    });
                }
                i
            })
            .collect();
        let outputs: Vec<serde_json::Value> = t
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut v = output_json(&o, i, None);
                if let Some(m) = v.as_object_mut() {
                    m.remove("consumed_by_tx");
                }
                v
            })
            .collect();
        Some(json!({ "tx": tx_summary(t), "inputs": inputs, "outputs": outputs, "redeemers": [] }))
    });
    match body {
        Some(b) => Json(b).into_response(),
        None => not_found_component(),
    }
}

async fn submit(State(d): State<Arc<Devnet>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/cbor") {
        return error(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/cbor and the body the raw transaction bytes.",
        );
    }
    match d.submit_tx(&body) {
        Ok(id) => Json(id.to_hex()).into_response(),
        Err(r) => error(StatusCode::BAD_REQUEST, r.submit_api_message()),
    }
}

/// Quantities may be sent as strings (preferred) or JSON integers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Quantity {
    Text(String),
    Number(u64),
}

impl Quantity {
    fn text(&self) -> String {
        match self {
            Quantity::Text(s) => s.clone(),
            Quantity::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaucetRequest {
    address: String,
    lovelace: Quantity,
    #[serde(default)]
    assets: BTreeMap<String, Quantity>,
}

async fn faucet(
    State(d): State<Arc<Devnet>>,
    req: Result<Json<FaucetRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match req {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let assets: Vec<(String, String)> = req
        .assets
        .iter()
        .map(|(k, v)| (k.clone(), v.text()))
        .collect();
    let value = match value_from_strings(&req.lovelace.text(), assets.iter().map(|(k, v)| (k, v))) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match d.fund(&req.address, value) {
        Ok(r) => {
            Json(json!({ "txHash": r.tx_id.to_hex(), "outputIndex": r.index })).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
