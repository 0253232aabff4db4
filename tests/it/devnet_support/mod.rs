//! Helpers shared by the devnet and Blockfrost-client integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use x402_facilitator::buyer::builder::{self, Built, InputSpec, OutputSpec, PaymentSpec};
use x402_facilitator::buyer::keys::SigningKey;
use x402_facilitator::cardano::{Network, ProtocolParams, UtxoRef, Value};
use x402_facilitator::chain::devnet::{Devnet, api};
use x402_facilitator::config::{DevnetSettings, GenesisUtxo};

pub const ADA: u64 = 1_000_000;

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

pub fn addr(k: &SigningKey) -> String {
    k.enterprise_address(Network::Devnet)
}

pub fn addr_bytes(k: &SigningKey) -> Vec<u8> {
    k.enterprise_address_bytes(Network::Devnet)
}

pub fn settings(block_time_ms: u64, genesis: Vec<GenesisUtxo>) -> DevnetSettings {
    DevnetSettings {
        block_time: std::time::Duration::from_millis(block_time_ms),
        api_enabled: true,
        faucet_enabled: true,
        genesis,
        ..DevnetSettings::default()
    }
}

/// A signed payment of `amount` lovelace from `from`'s UTxO to `to`, change back to `from`.
pub fn pay(
    from: &SigningKey,
    input: UtxoRef,
    input_value: Value,
    to: Vec<u8>,
    amount: u64,
) -> Built {
    pay_with(from, input, input_value, to, amount, |_| {})
}

/// Like [`pay`], letting the caller adjust the spec (validity interval, network id).
pub fn pay_with(
    from: &SigningKey,
    input: UtxoRef,
    input_value: Value,
    to: Vec<u8>,
    amount: u64,
    adjust: impl FnOnce(&mut PaymentSpec),
) -> Built {
    let mut spec = PaymentSpec {
        inputs: vec![InputSpec {
            utxo: input,
            value: input_value,
        }],
        outputs: vec![OutputSpec {
            address: to,
            value: Value::lovelace(amount),
        }],
        change_address: addr_bytes(from),
        ..PaymentSpec::default()
    };
    adjust(&mut spec);
    builder::build_payment(
        &spec,
        &ProtocolParams::mainnet_like(),
        std::slice::from_ref(from),
    )
    .unwrap()
}

/// Serve `router(devnet)` nested under `/devnet` on 127.0.0.1:0, as the application does.
/// Returns the devnet base (`http://127.0.0.1:PORT/devnet`).
pub async fn serve(devnet: Arc<Devnet>) -> String {
    let app = axum::Router::new().nest("/devnet", api::router(devnet, true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}/devnet")
}
