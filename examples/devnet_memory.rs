//! Resident memory of the embedded devnet ledger per unspent output.
//!
//! ```text
//! cargo run --release --example devnet_memory -- [--outputs N] [--addresses K] [--batch B] [--base]
//! ```
//!
//! Starts a devnet without a block producer, reads `VmRSS` from
//! `/proc/self/status`, funds `N` outputs (default 100000) with faucet
//! transactions of `B` outputs each (default 1000), spread over `K`
//! distinct addresses (default `N`: every output its own owner, the worst
//! case), reads `VmRSS` again and prints the difference per output.
//! `--base` uses 57-byte base addresses instead of 29-byte enterprise ones.

use x402_facilitator::cardano::Value;
use x402_facilitator::chain::devnet::Devnet;
use x402_facilitator::config::DevnetSettings;

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn arg(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// A distinct network-0 address for owner `i` (enterprise, or base with `base`).
fn address(i: usize, base: bool) -> Vec<u8> {
    let mut a = Vec::with_capacity(57);
    a.push(if base { 0x00 } else { 0x60 });
    let seed = (i as u64).to_be_bytes();
    let len = if base { 56 } else { 28 };
    for j in 0..len {
        a.push(seed[j % 8] ^ (j as u8).wrapping_mul(31));
    }
    a
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let outputs = arg(&args, "--outputs").unwrap_or(100_000);
    let addresses = arg(&args, "--addresses").unwrap_or(outputs).max(1);
    let batch = arg(&args, "--batch").unwrap_or(1_000).max(1);
    let base = args.iter().any(|a| a == "--base");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let devnet = Devnet::manual(&DevnetSettings::default()).expect("devnet");
    // Build the addresses first so that only the ledger's growth is measured.
    let owners: Vec<Vec<u8>> = (0..addresses).map(|i| address(i, base)).collect();
    let before = vm_rss_kib();
    let mut funded = 0usize;
    while funded < outputs {
        let n = batch.min(outputs - funded);
        let batch_outputs = (funded..funded + n)
            .map(|i| (owners[i % addresses].clone(), Value::lovelace(2_000_000)))
            .collect();
        devnet.fund_many(batch_outputs).expect("fund");
        funded += n;
    }
    let after = vm_rss_kib();
    let grew = after.saturating_sub(before);
    println!(
        "devnet_memory: {outputs} unspent outputs ({} addresses of {} bytes, {} faucet txs of {batch})",
        addresses,
        if base { 57 } else { 29 },
        outputs.div_ceil(batch)
    );
    println!(
        "VmRSS before {before} KiB, after {after} KiB: +{grew} KiB = {:.0} bytes per unspent output",
        grew as f64 * 1024.0 / outputs as f64
    );
    drop(devnet);
}
