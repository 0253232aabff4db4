//! The escrow address: the Masumi V2 `vested_pay` validator with a deployment's
//! three parameters applied (spec "Deployment and escrow address").
//!
//! `hash = blake2b-224(0x03 ‖ applied single-wrapped CBOR)`; the address is the
//! enterprise script address of that hash. Applying parameters walks the
//! ~10 KB program, so hashes are memoized per parameter set (at most
//! [`MEMO_CAPACITY`] sets; the default deployment is the common case).

use std::collections::HashMap;
use std::sync::OnceLock;

use parking_lot::Mutex;

use super::terms::Deployment;
use crate::cardano::Network;
use crate::cardano::address::{self, ShelleyAddress};
use crate::cardano::plutus::{self, BigInt, PlutusData, PlutusVersion};

/// The un-applied `vested_pay.vested_pay.spend` compiled code (Plutus V3), from
/// the Masumi payment-service blueprint `smart-contracts/payment-v2/plutus.json`.
const COMPILED_HEX: &str = include_str!("vested_pay_v2.hex");

/// Memoized parameter sets.
pub const MEMO_CAPACITY: usize = 256;

/// The default deployment's admin key hashes (mainnet and preprod).
pub const DEFAULT_ADMINS: [&str; 3] = [
    "fc16a1fcf309aed03ec18bb2176f5ea29acea70bb79145ebaffa8e75",
    "7f78161369549d8e2b138fee724c9fa606d6107a66720bdb4c48ada6",
    "89eef9ea84e0ee7fe4921fa93eb2873ff6e34473f751d5d52cb75aa6",
];
pub const DEFAULT_REQUIRED_ADMINS: u64 = 2;
pub const DEFAULT_COOLDOWN_MS: u128 = 420_000;
/// Its script hash (spec; Go `escrow_vectors.json`).
pub const DEFAULT_SCRIPT_HASH: &str = "a15ce9d82d2f67645fc624e2edac03c6f1c106d0ad1af5815a3b14ad";

/// The default deployment.
pub fn default_deployment() -> Deployment {
    Deployment {
        required_admins: DEFAULT_REQUIRED_ADMINS,
        admin_vkeys: DEFAULT_ADMINS
            .iter()
            .map(|h| {
                let mut a = [0u8; 28];
                if let Ok(b) = hex::decode(h) {
                    a.copy_from_slice(&b);
                }
                a
            })
            .collect(),
        cooldown_period: DEFAULT_COOLDOWN_MS,
    }
}

/// The deployment a network uses when `extra.deployment` is absent. Preview
/// has none (the requirement must name one). The embedded devnet follows the
/// public testnets' default so demos and tests lock into the real escrow address.
pub fn network_default(network: Network) -> Option<Deployment> {
    match network {
        Network::Mainnet | Network::Preprod | Network::Devnet => Some(default_deployment()),
        Network::Preview => None,
    }
}

fn compiled() -> Result<&'static [u8], String> {
    static CODE: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    CODE.get_or_init(|| hex::decode(COMPILED_HEX.trim()).map_err(|e| e.to_string()))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The parameters in the validator's order.
pub fn params(d: &Deployment) -> Vec<PlutusData> {
    vec![
        PlutusData::Int(BigInt::from(d.required_admins)),
        PlutusData::List(
            d.admin_vkeys
                .iter()
                .map(|k| PlutusData::bytes(k.to_vec()))
                .collect(),
        ),
        PlutusData::Int(BigInt::from(d.cooldown_period)),
    ]
}

/// The applied script (single-wrapped CBOR) and its hash, without the memo.
pub fn derive_uncached(d: &Deployment) -> Result<(Vec<u8>, [u8; 28]), String> {
    let applied = plutus::apply_params(compiled()?, &params(d)).map_err(|e| e.to_string())?;
    let hash = plutus::script_hash(PlutusVersion::V3, &applied);
    Ok((applied, hash))
}

/// The escrow script hash of a deployment (memoized).
pub fn script_hash(d: &Deployment) -> Result<[u8; 28], String> {
    static MEMO: OnceLock<Mutex<HashMap<Deployment, [u8; 28]>>> = OnceLock::new();
    let memo = MEMO.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(h) = memo.lock().get(d) {
        return Ok(*h);
    }
    let (_, h) = derive_uncached(d)?;
    let mut m = memo.lock();
    if m.len() >= MEMO_CAPACITY {
        m.clear();
    }
    m.insert(d.clone(), h);
    Ok(h)
}

/// The enterprise script address of an escrow hash on `network`.
pub fn address_of(hash: &[u8; 28], network: Network) -> ShelleyAddress {
    let mut bytes = Vec::with_capacity(29);
    bytes.push(0x70 | (network.network_id() & 0x0f));
    bytes.extend_from_slice(hash);
    ShelleyAddress {
        bytes,
        network_id: network.network_id(),
        payment: address::Credential::ScriptHash(*hash),
        stake: address::StakePart::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(ra: u64, keys: &[&str], cd: u128) -> Deployment {
        Deployment {
            required_admins: ra,
            admin_vkeys: keys
                .iter()
                .map(|k| hex::decode(k).unwrap().try_into().unwrap())
                .collect(),
            cooldown_period: cd,
        }
    }

    /// `escrow_vectors.json` @c0ed496a: every deployment's hash and its
    /// mainnet and testnet addresses (the default one is the spec's).
    #[test]
    fn escrow_vectors() {
        let [a, b, c] = DEFAULT_ADMINS;
        let cases: Vec<(Deployment, &str, &str, &str)> = vec![
            (
                dep(2, &[a, b, c], 420_000),
                "a15ce9d82d2f67645fc624e2edac03c6f1c106d0ad1af5815a3b14ad",
                "addr1wxs4e6wc95hkwezlccjw9mdvq0r0rsgx6zk34avptga3ftgge2j6d",
                "addr_test1wzs4e6wc95hkwezlccjw9mdvq0r0rsgx6zk34avptga3ftgn37w4g",
            ),
            (
                dep(3, &[a, b, c], 420_000),
                "982fc37afa4b395c291fdfe4822fb1668319777d6792e5232a1b96e1",
                "addr1wxvzlsm6lf9njhpfrl07fq30k9ngxxth04ne9efr9gdedcg3f5gld",
                "addr_test1wzvzlsm6lf9njhpfrl07fq30k9ngxxth04ne9efr9gdedcg2pq5sg",
            ),
            (
                dep(2, &[a, b, c], 999_999),
                "e5c67b7e8246342c822224cac0f109cbc6e0032974c6decc847f13ba",
                "addr1w8juv7m7sfrrgtyzygjv4s83p89udcqr996vdhkvs3l38wsxu2y8z",
                "addr_test1wrjuv7m7sfrrgtyzygjv4s83p89udcqr996vdhkvs3l38wsa57cg8",
            ),
            (
                dep(2, &[a, b, c], 0),
                "8f9bdf8f7e7eb5d83065d6d54cf965b420013f7d151fef79f2bdb181",
                "addr1wx8ehhu00elttkpsvhtd2n8evk6zqqfl0523lmme727mrqg8s838z",
                "addr_test1wz8ehhu00elttkpsvhtd2n8evk6zqqfl0523lmme727mrqgucndg8",
            ),
            (
                dep(2, &[a, b, c], 99_999_999_999_999_999_999),
                "6a0b8df59e2a7ef4d05d9f537803a13522aa5edfb9408a3a76ac4e09",
                "addr1w94qhr04nc48aaxstk04x7qr5y6j92j7m7u5pz36w6kyuzgvlqmr3",
                "addr_test1wp4qhr04nc48aaxstk04x7qr5y6j92j7m7u5pz36w6kyuzghh58v5",
            ),
            (
                dep(2, &[a, a, b], 420_000),
                "6477a8ff1936a4370f17abd77d84ae54947dc7c2cf953a2d83d35854",
                "addr1w9j8028lrym2gdc0z74awlvy4e2fglw8ct8e2w3ds0f4s4qvyxplw",
                "addr_test1wpj8028lrym2gdc0z74awlvy4e2fglw8ct8e2w3ds0f4s4qhvjast",
            ),
            (
                dep(
                    1,
                    &["7de92d339b85784e501e046e33c1a9863c5758287aa0e4f2a9eb40da"],
                    1,
                ),
                "1064540f7d79862915a65c5a0576217f1749d1679a2ffd3d341745d1",
                "addr1wygxg4q004ucv2g45ew95ptky9l3wjw3v7dzllfaxst5t5gpzrqgh",
                "addr_test1wqgxg4q004ucv2g45ew95ptky9l3wjw3v7dzllfaxst5t5g62hu8j",
            ),
            (
                dep(
                    5,
                    &[
                        "fc2a33a3c9579c74da043dd31fe4ce6775b9223ac284f1dbe93ce40f",
                        "a25fb56b2adea0a673a9470cadd08b792708b361645c07e6e05661e8",
                        "c4389160bb0d5ded646a95f1328152e1b480930e347f8afb30295c2e",
                        "1ebccccf1649042125a055583ecfb9874c6d8a81fd0b7bc2addc4927",
                        "681137e314855e54445596a583e263e4856187d8a19ce74fa83aa267",
                        "ada3377de7377fee99a21cb21f2d7a5e64f2bf9c8fa0e38d0f5da8c7",
                        "999872a4aa8457c36978a1404cdda6470fa367c80dfd6a372369ff19",
                    ],
                    3_600_000,
                ),
                "d4b9617ba1f59c1c3017107b24550a14b06f485a7707396dccf37051",
                "addr1w82tjctm586ec8pszug8kfz4pg2tqm6gtfmswwtdenehq5gvtzfw6",
                "addr_test1wr2tjctm586ec8pszug8kfz4pg2tqm6gtfmswwtdenehq5ghrk4pl",
            ),
        ];
        for (d, hash, mainnet, testnet) in cases {
            let h = script_hash(&d).unwrap();
            assert_eq!(hex::encode(h), hash);
            assert_eq!(address_of(&h, Network::Mainnet).to_bech32(), mainnet);
            for n in [Network::Preprod, Network::Preview, Network::Devnet] {
                assert_eq!(address_of(&h, n).to_bech32(), testnet);
            }
            // The memo answers the same.
            assert_eq!(script_hash(&d).unwrap(), h);
        }
        assert_eq!(
            hex::encode(script_hash(&default_deployment()).unwrap()),
            DEFAULT_SCRIPT_HASH
        );
        assert!(network_default(Network::Preview).is_none());
    }
}
