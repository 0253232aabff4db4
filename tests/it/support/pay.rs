//! Real payments for black-box tests: buyers funded by the devnet faucet,
//! transactions built and signed by the library's buyer, requests as a
//! resource server would send them.

#![allow(dead_code)]

use serde_json::{Value, json};
use x402_facilitator::buyer::builder::Built;
use x402_facilitator::buyer::keys::SigningKey;
use x402_facilitator::buyer::{self, Buyer, ChainView};
use x402_facilitator::cardano::{Network, ProtocolParams, TxId, UtxoRef, Value as CardanoValue};
use x402_facilitator::chain::devnet::Devnet;
use x402_facilitator::protocol::types::PaymentRequirementsV2;

/// A seller address on the devnet.
pub fn seller(seed: u8) -> String {
    SigningKey::from_seed([seed; 32]).enterprise_address(Network::Devnet)
}

pub fn requirements(pay_to: &str, amount: u64, confirmations: i64) -> PaymentRequirementsV2 {
    PaymentRequirementsV2 {
        scheme: "exact".into(),
        network: "cardano:devnet".into(),
        amount: amount.to_string(),
        asset: "lovelace".into(),
        pay_to: pay_to.to_owned(),
        max_timeout_seconds: 600,
        extra: json!({ "confirmationPolicy": { "l1Confirmations": confirmations } }),
        parameter_order: None,
    }
}

/// A buyer with `lovelace` from the faucet of the facilitator at `base`.
pub async fn funded_buyer(
    client: &reqwest::Client,
    base: &str,
    seed: u8,
    lovelace: u64,
) -> (Buyer, UtxoRef) {
    let mut s = [seed; 32];
    s[0] = 0xb0;
    let b = Buyer::from_seed(s, Network::Devnet);
    let utxo = buyer::faucet(client, base, &b.address(), lovelace, &[])
        .await
        .expect("faucet");
    (b, utxo)
}

/// What the buyer's wallet sees through the devnet API of the facilitator at `base`.
pub async fn view(client: &reqwest::Client, base: &str, b: &Buyer) -> ChainView {
    buyer::chain_view(client, &format!("{base}/devnet/api/v0"), &b.address())
        .await
        .expect("chain view")
}

/// A signed payment for `req` and the facilitator request body carrying it.
pub fn pay(b: &Buyer, view: &ChainView, req: &PaymentRequirementsV2) -> (Built, Value) {
    let (built, nonce) = b.pay(req, view).expect("buyer builds a payment");
    let body = body_for(req, &built.tx, &nonce);
    (built, body)
}

/// A facilitator request body for raw transaction bytes.
pub fn body_for(req: &PaymentRequirementsV2, tx: &[u8], nonce: &UtxoRef) -> Value {
    use base64::Engine;
    json!({
        "x402Version": 2,
        "paymentPayload": {
            "x402Version": 2,
            "accepted": req,
            "payload": {
                "transaction": base64::engine::general_purpose::STANDARD.encode(tx),
                "nonce": nonce.to_string(),
            },
        },
        "paymentRequirements": req,
    })
}

/// Requirements on `network` paying `amount` lovelace to the enterprise
/// address of the key seeded with `seller_seed`.
pub fn requirements_on(
    network: Network,
    seller_seed: u8,
    amount: u64,
    confirmations: i64,
) -> PaymentRequirementsV2 {
    let pay_to = SigningKey::from_seed([seller_seed; 32]).enterprise_address(network);
    let mut r = requirements(&pay_to, amount, confirmations);
    r.network = network.caip2().into();
    r
}

/// A buyer funded with 10 ada directly on `devnet`'s ledger (no faucet
/// call), and a signed payment body for `req`: (body, tx id, nonce).
pub fn funded_payment(
    devnet: &Devnet,
    network: Network,
    seed: u8,
    req: &PaymentRequirementsV2,
) -> (Value, TxId, UtxoRef) {
    let b = Buyer::from_seed([seed; 32], network);
    let coin = CardanoValue::lovelace(10_000_000);
    let utxo = devnet
        .fund_bytes(b.address_bytes(), coin.clone())
        .expect("devnet funds the buyer");
    let view = ChainView {
        utxos: vec![(utxo, coin)],
        params: ProtocolParams::mainnet_like(),
        tip_slot: devnet.current_slot(),
    };
    let (built, body) = pay(&b, &view, req);
    (body, built.tx_id, utxo)
}

pub fn tx_id_hex(id: &TxId) -> String {
    id.to_hex()
}
