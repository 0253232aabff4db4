//! The buyer's side of the Cardano `exact` scheme: turn payment requirements
//! into a signed transaction and the x402 payload that carries it.
//!
//! The facilitator itself never signs anything; this module exists for the
//! demo, the load driver and black-box tests, which need a real buyer. It
//! reads the chain through any Blockfrost-compatible API (the devnet's own,
//! by default), as a wallet would.
//!
//! Everything that holds a key is here, outside the service core, and is
//! compiled only with the `buyer` cargo feature (on by default):
//!
//! | module | what it is for |
//! |---|---|
//! | [`keys`] | CIP-1852 HD keys from a BIP39 mnemonic; Ed25519 signing |
//! | [`builder`] | building and signing Conway payments (and deliberately broken ones, for tests) |
//! | [`quote`] | the seller's signed Masumi requirements (CIP-30 `signData`) |
//! | this module | [`Buyer`]: requirements in, signed x402 payload out |
//!
//! A facilitator built with `--no-default-features` has none of it: no
//! mnemonic handling, no signing, no `demo` subcommand.

pub mod builder;
pub mod keys;
pub mod quote;

use base64::Engine;
use serde_json::{Value as Json, json};

use crate::cardano::{Asset, AssetId, Network, ProtocolParams, UtxoRef, Value, address};
use crate::protocol::types::{PaymentPayloadV2, PaymentRequirementsV2, RequestV2};
use builder::{Built, InputSpec, OutputSpec, PaymentSpec};
use keys::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum BuyerError {
    #[error("requirements: {0}")]
    Requirements(String),
    #[error("not enough funds: {0}")]
    Funds(String),
    #[error("building the transaction: {0}")]
    Build(String),
    #[error("chain API: {0}")]
    Api(String),
}

/// A buyer with one payment key and its enterprise address.
pub struct Buyer {
    key: SigningKey,
    network: Network,
}

/// What a wallet needs to know about the chain to pay.
#[derive(Clone, Debug)]
pub struct ChainView {
    pub utxos: Vec<(UtxoRef, Value)>,
    pub params: ProtocolParams,
    pub tip_slot: u64,
}

impl Buyer {
    pub fn new(key: SigningKey, network: Network) -> Buyer {
        Buyer { key, network }
    }

    /// A buyer from a 32-byte seed (tests and the demo).
    pub fn from_seed(seed: [u8; 32], network: Network) -> Buyer {
        Buyer::new(SigningKey::from_seed(seed), network)
    }

    pub fn address(&self) -> String {
        self.key.enterprise_address(self.network)
    }

    pub fn address_bytes(&self) -> Vec<u8> {
        self.key.enterprise_address_bytes(self.network)
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Build and sign a transaction paying `req`, spending from `view.utxos`
    /// (smallest set, in the given order, that covers the payment and ~2 ada
    /// for fee and change). The nonce is the first input.
    pub fn pay(
        &self,
        req: &PaymentRequirementsV2,
        view: &ChainView,
    ) -> Result<(Built, UtxoRef), BuyerError> {
        self.pay_with_datum(req, view, None)
    }

    /// Pay a `script`-method requirement: as [`Buyer::pay`], with `extra.datum` (if any) attached
    /// verbatim as the inline datum of the output to `payTo` (spec "Datum pass-through").
    pub fn pay_script(
        &self,
        req: &PaymentRequirementsV2,
        view: &ChainView,
    ) -> Result<(Built, UtxoRef), BuyerError> {
        let datum = match req.extra.get("datum").filter(|d| !d.is_null()) {
            None => None,
            Some(d) => Some(
                d.as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| BuyerError::Requirements("extra.datum is not hex".into()))?,
            ),
        };
        self.pay_with_datum(req, view, datum.as_deref())
    }

    /// [`Buyer::pay`] with an optional inline datum on the output to `payTo`.
    pub fn pay_with_datum(
        &self,
        req: &PaymentRequirementsV2,
        view: &ChainView,
        inline_datum: Option<&[u8]>,
    ) -> Result<(Built, UtxoRef), BuyerError> {
        let asset: Asset = req
            .asset
            .parse()
            .map_err(|e| BuyerError::Requirements(format!("asset: {e}")))?;
        let amount: u64 = req
            .amount
            .parse()
            .map_err(|_| BuyerError::Requirements("amount".into()))?;
        let pay_to = address::decode_bech32(&req.pay_to)
            .map_err(|e| BuyerError::Requirements(format!("payTo: {e}")))?
            .1;
        let mut out_value = Value::default();
        match &asset {
            Asset::Lovelace => out_value.coin = amount,
            Asset::Native(id) => {
                out_value
                    .checked_add_asset(id.clone(), amount)
                    .ok_or_else(|| BuyerError::Requirements("amount overflows".into()))?;
            }
        }
        let mut output = OutputSpec {
            address: pay_to,
            value: out_value,
        };
        // The minimum depends on the output's own size, which grows with the
        // coin it holds: raise the coin until the minimum stops moving.
        for _ in 0..4 {
            let min_ada = builder::min_utxo_with_datum(&output, inline_datum, &view.params);
            if output.value.coin >= min_ada {
                break;
            }
            output.value.coin = min_ada;
        }

        let (chosen, nonce) = select_inputs(view, &output.value)?;
        let window = req.max_timeout_seconds.clamp(30, 600) / 2;
        let spec = PaymentSpec {
            inputs: chosen,
            outputs: vec![output],
            change_address: self.address_bytes(),
            validity_start: None,
            ttl: Some(view.tip_slot + window),
            network_id: None,
        };
        let built = self.sign_with_datum(&spec, inline_datum.map(<[u8]>::to_vec), view)?;
        Ok((built, nonce))
    }

    /// Pay a `masumi`-method requirement: lock `amount` of `asset` (plus the
    /// collateral Masumi computes) at the escrow `payTo`, under the
    /// `FundsLocked` inline datum naming this buyer (spec "Escrow datum").
    /// The transaction's ttl never passes the terms' `payByTime`.
    pub fn pay_masumi(
        &self,
        req: &PaymentRequirementsV2,
        view: &ChainView,
        slot_at_unix: impl Fn(i64) -> u64,
    ) -> Result<(Built, UtxoRef), BuyerError> {
        let req_json =
            serde_json::to_value(req).map_err(|e| BuyerError::Requirements(e.to_string()))?;
        let me = address::parse_shelley_bytes(&self.address_bytes())
            .map_err(|e| BuyerError::Requirements(e.to_string()))?;
        let lock = crate::scheme::masumi::lock::lock_for(
            &req_json,
            &me,
            None,
            view.params.coins_per_utxo_size,
        )
        .map_err(BuyerError::Requirements)?;
        let output = OutputSpec {
            address: lock.address.clone(),
            value: lock.value.clone(),
        };
        let (chosen, nonce) = select_inputs(view, &output.value)?;
        let window = req.max_timeout_seconds.clamp(30, 600) / 2;
        let pay_by_slot =
            slot_at_unix(i64::try_from(lock.datum.pay_by_time / 1000).unwrap_or(i64::MAX));
        let spec = PaymentSpec {
            inputs: chosen,
            outputs: vec![output],
            change_address: self.address_bytes(),
            validity_start: None,
            ttl: Some((view.tip_slot + window).min(pay_by_slot)),
            network_id: None,
        };
        let built = self.sign_with_datum(&spec, Some(lock.datum_cbor), view)?;
        Ok((built, nonce))
    }

    /// Build and sign `spec`, its first output carrying `datum` inline.
    fn sign_with_datum(
        &self,
        spec: &PaymentSpec,
        datum: Option<Vec<u8>>,
        view: &ChainView,
    ) -> Result<Built, BuyerError> {
        let mut datums = builder::OutputDatums::new();
        if let Some(d) = datum {
            datums.insert(0, d);
        }
        builder::build_payment_with_datums(
            spec,
            &datums,
            &view.params,
            std::slice::from_ref(&self.key),
        )
        .map_err(|e| BuyerError::Build(e.to_string()))
    }

    /// The v2 payment payload for a built transaction.
    pub fn payload(
        req: &PaymentRequirementsV2,
        built: &Built,
        nonce: &UtxoRef,
    ) -> PaymentPayloadV2 {
        PaymentPayloadV2 {
            x402_version: 2,
            accepted: req.clone(),
            payload: json!({
                "transaction": base64::engine::general_purpose::STANDARD.encode(&built.tx),
                "nonce": nonce.to_string(),
            }),
            resource: None,
            extensions: None,
        }
    }
}

/// The trivial Plutus V3 validator of the x402 script test vectors (single-wrapped flat). Demo and
/// tests pay it; the devnet never runs scripts, and nothing here ever spends from it.
pub const DEMO_SCRIPT_CODE: &str = "4d01000033222220051200120011";

/// `script`-method requirements: `extra` carries `script` ({`type`, `code`}), `parameters` and
/// `datum` as given, and `payTo` is the enterprise address of the script hash they derive.
pub fn script_requirements(
    network: Network,
    amount: u64,
    asset: &str,
    version: crate::cardano::plutus::PlutusVersion,
    code_hex: &str,
    parameters: Option<Json>,
    datum_hex: Option<&str>,
) -> Result<PaymentRequirementsV2, BuyerError> {
    let mut extra = json!({
        "assetTransferMethod": "script",
        "script": {"type": version.as_x402(), "code": code_hex},
        "confirmationPolicy": {"l1Confirmations": 1},
    });
    if let Some(p) = parameters {
        extra["parameters"] = p;
    }
    if let Some(d) = datum_hex {
        extra["datum"] = json!(d);
    }
    let (hash, _) = crate::scheme::method::script::derive_script_hash(&extra, None)
        .map_err(|(_, m)| BuyerError::Requirements(m))?;
    let pay_to = address::to_bech32(&address::enterprise_script_address_bytes(
        network.network_id(),
        &hash,
    ))
    .map_err(|e| BuyerError::Requirements(e.to_string()))?;
    Ok(PaymentRequirementsV2 {
        scheme: "exact".into(),
        network: network.caip2().into(),
        amount: amount.to_string(),
        asset: asset.into(),
        pay_to,
        max_timeout_seconds: 600,
        extra,
        parameter_order: None,
    })
}

/// A facilitator request body for a payload and the requirements it answers.
pub fn request(payload: &PaymentPayloadV2, req: &PaymentRequirementsV2) -> RequestV2 {
    RequestV2 {
        x402_version: 2,
        payment_payload: payload.clone(),
        payment_requirements: req.clone(),
    }
}

fn covers(have: &Value, need: &Value) -> bool {
    have.coin >= need.coin
        && need
            .assets
            .iter()
            .all(|(id, q)| have.assets.get(id).copied().unwrap_or(0) >= *q)
}

/// Read what a wallet needs from a Blockfrost-compatible API (`base` ends in `/api/v0`).
pub async fn chain_view(
    client: &reqwest::Client,
    base: &str,
    address: &str,
) -> Result<ChainView, BuyerError> {
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{}", base.trim_end_matches('/'), path);
        async move {
            let r = client
                .get(&url)
                .send()
                .await
                .map_err(|e| BuyerError::Api(format!("{url}: {e}")))?;
            let status = r.status();
            let body: Json = r
                .json()
                .await
                .map_err(|e| BuyerError::Api(format!("{url}: {e}")))?;
            Ok::<(u16, Json), BuyerError>((status.as_u16(), body))
        }
    };
    let (_, tip) = get("/blocks/latest".into()).await?;
    let tip_slot = tip
        .get("slot")
        .and_then(Json::as_u64)
        .ok_or_else(|| BuyerError::Api("blocks/latest: no slot".into()))?;
    let (_, p) = get("/epochs/latest/parameters".into()).await?;
    let num = |k: &str| -> Result<u64, BuyerError> {
        match p.get(k) {
            Some(Json::Number(n)) => n
                .as_u64()
                .ok_or_else(|| BuyerError::Api(format!("parameter {k}"))),
            Some(Json::String(s)) => s
                .parse()
                .map_err(|_| BuyerError::Api(format!("parameter {k}"))),
            _ => Err(BuyerError::Api(format!("parameter {k} missing"))),
        }
    };
    let mut params = ProtocolParams::mainnet_like();
    params.min_fee_a = num("min_fee_a")?;
    params.min_fee_b = num("min_fee_b")?;
    params.max_tx_size = num("max_tx_size")?;
    params.coins_per_utxo_size = num("coins_per_utxo_size")?;
    let (status, list) = get(format!("/addresses/{address}/utxos?count=100&page=1")).await?;
    let mut utxos = Vec::new();
    if status == 200 {
        for u in list.as_array().cloned().unwrap_or_default() {
            let (Some(h), Some(ix)) = (
                u.get("tx_hash").and_then(Json::as_str),
                u.get("output_index").and_then(Json::as_u64),
            ) else {
                continue;
            };
            let Ok(tx_id) = h.parse() else { continue };
            let mut v = Value::default();
            for a in u
                .get("amount")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let unit = a.get("unit").and_then(Json::as_str).unwrap_or("");
                let q: u64 = a
                    .get("quantity")
                    .and_then(Json::as_str)
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(0);
                if unit == "lovelace" {
                    v.coin = q;
                } else if let Ok(id) = AssetId::from_unit(unit) {
                    let _ = v.checked_add_asset(id, q);
                }
            }
            utxos.push((UtxoRef::new(tx_id, ix as u32), v));
        }
    }
    Ok(ChainView {
        utxos,
        params,
        tip_slot,
    })
}

/// Ask the devnet faucet for funds (`base` is the facilitator's base URL).
pub async fn faucet(
    client: &reqwest::Client,
    base: &str,
    address: &str,
    lovelace: u64,
    assets: &[(String, u64)],
) -> Result<UtxoRef, BuyerError> {
    let assets: serde_json::Map<String, Json> = assets
        .iter()
        .map(|(u, q)| (u.clone(), json!(q.to_string())))
        .collect();
    let r = client
        .post(format!("{}/devnet/faucet", base.trim_end_matches('/')))
        .json(&json!({ "address": address, "lovelace": lovelace.to_string(), "assets": assets }))
        .send()
        .await
        .map_err(|e| BuyerError::Api(e.to_string()))?;
    let body: Json = r.json().await.map_err(|e| BuyerError::Api(e.to_string()))?;
    let h = body
        .get("txHash")
        .and_then(Json::as_str)
        .ok_or_else(|| BuyerError::Api(format!("faucet: {body}")))?;
    let ix = body.get("outputIndex").and_then(Json::as_u64).unwrap_or(0);
    Ok(UtxoRef::new(
        h.parse()
            .map_err(|_| BuyerError::Api("faucet tx hash".into()))?,
        ix as u32,
    ))
}

/// `masumi`-method requirements signed by `seller_key` (whose enterprise address
/// is the seller), on `network`'s default escrow, with deadlines starting one
/// hour after `now_ms` (demo and tests).
pub fn masumi_requirements(
    network: Network,
    amount: u64,
    seller_key: &SigningKey,
    now_ms: u128,
    seller_nonce: [u8; 32],
) -> Result<PaymentRequirementsV2, BuyerError> {
    use quote::{QuoteSpec, issue};
    let pay_by = now_ms + 3_600_000;
    let spec = QuoteSpec {
        network,
        asset: "lovelace".into(),
        amount: amount.to_string(),
        max_timeout_seconds: 600,
        seller_address: seller_key.enterprise_address(network),
        seller_return_address: None,
        parts: vec![json!({
            "name": "body",
            "canonicalization": "jcs",
            "mediaType": "application/json",
            "content": {"city": "Zurich", "days": 3},
        })],
        pay_by_time: pay_by,
        submit_result_time: pay_by + 300_000,
        unlock_time: pay_by + 1_200_000,
        external_dispute_unlock_time: pay_by + 2_100_000,
        seller_nonce: hex::encode(seller_nonce),
        buyer_nonce: String::new(),
        agent_identifier: None,
        deployment: None,
    };
    let mut req = issue(&spec, seller_key).map_err(BuyerError::Requirements)?;
    req["extra"]["confirmationPolicy"] = json!({"l1Confirmations": 1});
    serde_json::from_value(req).map_err(|e| BuyerError::Requirements(e.to_string()))
}

/// Enough of the wallet's UTxOs to pay `value` plus about 2 ada for the fee
/// and change, in the view's order; the first one is the payment's nonce.
fn select_inputs(view: &ChainView, value: &Value) -> Result<(Vec<InputSpec>, UtxoRef), BuyerError> {
    let mut need = value.clone();
    need.coin = need.coin.saturating_add(2_000_000);
    let mut chosen = Vec::new();
    let mut have = Value::default();
    for (r, v) in &view.utxos {
        if covers(&have, &need) {
            break;
        }
        chosen.push(InputSpec {
            utxo: *r,
            value: v.clone(),
        });
        have = have
            .checked_add(v)
            .ok_or_else(|| BuyerError::Funds("value overflow".into()))?;
    }
    if !covers(&have, &need) {
        return Err(BuyerError::Funds(format!(
            "have {} lovelace, need about {}",
            have.coin, need.coin
        )));
    }
    let nonce = chosen
        .first()
        .map(|i| i.utxo)
        .ok_or_else(|| BuyerError::Funds("no UTxO".into()))?;
    Ok((chosen, nonce))
}
