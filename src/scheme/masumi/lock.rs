//! The buyer's side: the escrow output a Masumi payment creates (its value and
//! `FundsLocked` datum), with the collateral computed as Masumi computes it.
//!
//! The facilitator never builds payments; the demo, the tests and the benches do.

use serde_json::Value as Json;

use super::datum::{FundsLocked, PdAddress};
use super::terms;
use super::verify::{collateral_for, post_result_min_utxo};
use crate::cardano::address::{self, ShelleyAddress};
use crate::cardano::{Asset, Network, Value};

/// The escrow output of a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Raw escrow address bytes (`payTo`).
    pub address: Vec<u8>,
    pub value: Value,
    pub datum: FundsLocked,
    /// Aiken-style CBOR of `datum`, for the output's inline datum.
    pub datum_cbor: Vec<u8>,
    pub collateral: u128,
}

/// The escrow output paying `req` (a Masumi `paymentRequirements`) from `buyer`.
pub fn lock_for(
    req: &Json,
    buyer: &ShelleyAddress,
    buyer_return: Option<&ShelleyAddress>,
    coins_per_utxo_byte: u64,
) -> Result<Lock, String> {
    let network = req["network"]
        .as_str()
        .and_then(Network::parse_any)
        .ok_or("network")?;
    let extra = terms::parse_extra(&req["extra"], network).map_err(|(_, m)| m)?;
    let t = &extra.terms;
    let asset: Asset = req["asset"]
        .as_str()
        .ok_or("asset")?
        .parse()
        .map_err(|e| format!("asset: {e}"))?;
    let amount: u64 = req["amount"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or("amount")?;
    let pay_to = address::parse_shelley_bech32(req["payTo"].as_str().ok_or("payTo")?)
        .map_err(|e| e.to_string())?;
    let hx = |s: &str| hex::decode(s).map_err(|e| e.to_string());
    let mut datum = FundsLocked {
        buyer: PdAddress::of(buyer),
        buyer_return: buyer_return.map(PdAddress::of),
        seller: PdAddress::of(&t.seller_address),
        seller_return: t.seller_return_address.as_ref().map(PdAddress::of),
        reference_key: extra.reference_key.clone(),
        reference_signature: extra.reference_signature.clone(),
        seller_nonce: hx(&t.seller_nonce)?,
        buyer_nonce: hx(&t.buyer_nonce)?,
        agent_identifier: hx(t.agent_identifier.hex())?,
        collateral_return_lovelace: 0,
        input_hash: t.input_hash.to_vec(),
        result_hash: Vec::new(),
        pay_by_time: t.pay_by_time,
        submit_result_time: t.submit_result_time,
        unlock_time: t.unlock_time,
        external_dispute_unlock_time: t.external_dispute_unlock_time,
        seller_cooldown_time: 0,
        buyer_cooldown_time: 0,
        state: 0,
    };
    let requested = if asset.is_lovelace() {
        u128::from(amount)
    } else {
        0
    };
    let tokens = usize::from(!asset.is_lovelace());
    // The collateral's own encoding changes the datum's length: iterate to the fixpoint.
    for _ in 0..8 {
        let len = datum.encode().len();
        let c = collateral_for(
            requested,
            post_result_min_utxo(len, tokens, coins_per_utxo_byte),
        );
        if c == datum.collateral_return_lovelace {
            break;
        }
        datum.collateral_return_lovelace = c;
    }
    let collateral = datum.collateral_return_lovelace;
    let coin = u64::try_from(requested + collateral).map_err(|_| "coin overflows")?;
    let mut value = Value::lovelace(coin);
    if let Asset::Native(id) = &asset {
        value
            .checked_add_asset(id.clone(), amount)
            .ok_or("amount overflows")?;
    }
    Ok(Lock {
        address: pay_to.bytes,
        value,
        datum_cbor: datum.encode(),
        datum,
        collateral,
    })
}

// Tests: `quote_vectors.json` (every vector, all four locks each: datum bytes,
// collateral and coin) runs through `lock_for` in `super::vectors`.
