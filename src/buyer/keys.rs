//! Hierarchical deterministic keys from a BIP39 mnemonic, along CIP-1852.
//!
//! The facilitator itself holds no buyer keys. These keys exist for the demo
//! buyer, the load driver and tests: they let us sign real transactions that
//! any Cardano wallet restoring the same phrase would recognise.
//!
//! Master key: CIP-3 "Icarus": PBKDF2-HMAC-SHA512(password = passphrase,
//! salt = mnemonic entropy, 4096 iterations, 96 bytes), then the scalar bits are
//! clamped (bits 0-2 of byte 0 cleared; byte 31: top bit and third-highest bit
//! cleared, second-highest bit set). Child keys: Ed25519-BIP32 (V2 derivation)
//! along `m/1852'/1815'/account'/role/index`.

use std::fmt;

use cryptoxide::hmac::Hmac;
use cryptoxide::pbkdf2::pbkdf2;
use cryptoxide::sha2::Sha512;
use ed25519_bip32::{DerivationScheme, XPrv};

use crate::cardano::address;
use crate::cardano::network::Network;
use crate::cardano::tx::key_hash;

/// Why a wallet could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid BIP39 mnemonic: {0}")]
    Mnemonic(String),
    #[error("derived key is not a valid extended key")]
    BadKey,
}

const HARDENED: u32 = 0x8000_0000;
/// CIP-1852 purpose and Cardano coin type.
const PURPOSE: u32 = 1852;
const COIN_TYPE: u32 = 1815;
/// CIP-1852 roles.
pub const ROLE_EXTERNAL: u32 = 0;
pub const ROLE_INTERNAL: u32 = 1;
pub const ROLE_STAKE: u32 = 2;

/// An Ed25519 signing key: either a BIP32-Ed25519 extended key (from a wallet)
/// or a plain 32-byte seed key (for tests and simple tools).
#[derive(Clone)]
pub struct SigningKey(KeyKind);

#[derive(Clone)]
enum KeyKind {
    Extended(XPrv),
    Plain(ed25519_dalek::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secret material; the public key hash identifies the key.
        write!(f, "SigningKey(key_hash={})", hex::encode(self.key_hash()))
    }
}

impl SigningKey {
    /// A plain Ed25519 key from a 32-byte seed (RFC 8032 key generation).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(KeyKind::Plain(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The 32-byte verification key.
    pub fn public_key(&self) -> [u8; 32] {
        match &self.0 {
            KeyKind::Extended(x) => x.public().public_key(),
            KeyKind::Plain(k) => k.verifying_key().to_bytes(),
        }
    }

    /// Blake2b-224 of the verification key: what addresses and witnesses name.
    pub fn key_hash(&self) -> [u8; 28] {
        key_hash(&self.public_key())
    }

    /// Ed25519 signature of `msg` (for a transaction, `msg` is the 32-byte tx id).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        match &self.0 {
            KeyKind::Extended(x) => *x.sign::<()>(msg).to_bytes(),
            KeyKind::Plain(k) => {
                use ed25519_dalek::Signer;
                k.sign(msg).to_bytes()
            }
        }
    }

    /// Enterprise address (payment key only) as bech32.
    pub fn enterprise_address(&self, network: Network) -> String {
        let bytes = address::enterprise_address_bytes(network.network_id(), &self.key_hash());
        address::to_bech32(&bytes).unwrap_or_default()
    }

    /// Raw bytes of this key's enterprise address.
    pub fn enterprise_address_bytes(&self, network: Network) -> Vec<u8> {
        address::enterprise_address_bytes(network.network_id(), &self.key_hash())
    }
}

/// A restored HD wallet: the root of CIP-1852 derivation.
#[derive(Clone)]
pub struct Wallet {
    root: XPrv,
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Wallet(<redacted>)")
    }
}

/// CIP-3 Icarus master key from BIP39 entropy and an optional passphrase.
pub fn icarus_master_key(entropy: &[u8], passphrase: &[u8]) -> [u8; 96] {
    let mut out = [0u8; 96];
    let mut mac = Hmac::new(Sha512::new(), passphrase);
    pbkdf2(&mut mac, entropy, 4096, &mut out);
    out[0] &= 0b1111_1000;
    out[31] &= 0b0001_1111;
    out[31] |= 0b0100_0000;
    out
}

impl Wallet {
    /// Restore from an English BIP39 phrase (12-24 words) and a passphrase ("" for none).
    pub fn from_mnemonic(phrase: &str, password: &str) -> Result<Wallet, KeyError> {
        let m = bip39::Mnemonic::parse_normalized(phrase.trim())
            .map_err(|e| KeyError::Mnemonic(e.to_string()))?;
        let master = icarus_master_key(&m.to_entropy(), password.as_bytes());
        let root = XPrv::from_bytes_verified(master).map_err(|_| KeyError::BadKey)?;
        Ok(Wallet { root })
    }

    /// The 96-byte master key (extended secret + chain code). Secret material.
    pub fn master_key_bytes(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        out[..64].copy_from_slice(self.root.extended_secret_key_bytes());
        out[64..].copy_from_slice(self.root.chain_code());
        out
    }

    fn account(&self, account: u32) -> XPrv {
        let v2 = DerivationScheme::V2;
        self.root
            .derive(v2, HARDENED | PURPOSE)
            .derive(v2, HARDENED | COIN_TYPE)
            .derive(v2, HARDENED | (account & !HARDENED))
    }

    /// Key at `m/1852'/1815'/account'/role/index`.
    pub fn key(&self, account: u32, role: u32, index: u32) -> SigningKey {
        let v2 = DerivationScheme::V2;
        SigningKey(KeyKind::Extended(
            self.account(account).derive(v2, role).derive(v2, index),
        ))
    }

    /// External payment key `m/1852'/1815'/account'/0/index`.
    pub fn payment_key(&self, account: u32, index: u32) -> SigningKey {
        self.key(account, ROLE_EXTERNAL, index)
    }

    /// Stake key `m/1852'/1815'/account'/2/0`.
    pub fn stake_key(&self, account: u32) -> SigningKey {
        self.key(account, ROLE_STAKE, 0)
    }

    /// Enterprise address of payment key (account 0, index 0), bech32.
    pub fn enterprise_address(&self, network: Network) -> String {
        self.payment_key(0, 0).enterprise_address(network)
    }

    /// Base address of payment key (0, 0) delegating to stake key 0, bech32.
    pub fn base_address(&self, network: Network) -> String {
        address::to_bech32(&self.base_address_bytes(network)).unwrap_or_default()
    }

    /// Raw bytes of [`Wallet::base_address`].
    pub fn base_address_bytes(&self, network: Network) -> Vec<u8> {
        address::base_address_bytes(
            network.network_id(),
            &self.payment_key(0, 0).key_hash(),
            &self.stake_key(0).key_hash(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIP3_PHRASE: &str = "eight country switch draw meat scout mystery blade tip drift useless good keep usage title";

    #[test]
    fn cip3_icarus_vectors() {
        let w = Wallet::from_mnemonic(CIP3_PHRASE, "").unwrap();
        assert_eq!(
            hex::encode(w.master_key_bytes()),
            "c065afd2832cd8b087c4d9ab7011f481ee1e0721e78ea5dd609f3ab3f156d245d176bd8fd4ec60b4731c3918a2a72a0226c0cd119ec35b47e4d55884667f552a23f7fdcd4a10c6cd2c7393ac61d877873e248f417634aa3d812af327ffe9d620"
        );
        let w = Wallet::from_mnemonic(CIP3_PHRASE, "foo").unwrap();
        assert_eq!(
            hex::encode(w.master_key_bytes()),
            "70531039904019351e1afb361cd1b312a4d0565d4ff9f8062d38acf4b15cce41d7b5738d9c893feea55512a3004acb0d222c35d3e3d5cde943a15a9824cbac59443cf67e589614076ba01e354b1a432e0e6db3b59e37fc56b5fb0222970a010e"
        );
    }

    /// CIP-19's payment key hash comes from this phrase at 1852'/1815'/0'/0/0; the base
    /// address (stake key at 2/0) is the one other wallet libraries derive for it.
    #[test]
    fn cip19_addresses_from_cip1852_derivation() {
        let w = Wallet::from_mnemonic(
            "test walk nut penalty hip pave soap entry language right filter choice",
            "",
        )
        .unwrap();
        assert_eq!(
            w.base_address(Network::Preprod),
            "addr_test1qz2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzer3jcu5d8ps7zex2k2xt3uqxgjqnnj83ws8lhrn648jjxtwq2ytjqp"
        );
        assert_eq!(
            w.enterprise_address(Network::Mainnet),
            "addr1vx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzers66hrl8"
        );
        assert_eq!(
            w.enterprise_address(Network::Preprod),
            "addr_test1vz2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzerspjrlsz"
        );
    }

    #[test]
    fn signatures_verify_strictly() {
        let w = Wallet::from_mnemonic(CIP3_PHRASE, "").unwrap();
        for k in [
            w.payment_key(0, 0),
            w.payment_key(0, 7),
            SigningKey::from_seed([7u8; 32]),
        ] {
            let msg = [42u8; 32];
            let sig = k.sign(&msg);
            assert!(crate::cardano::tx::verify_ed25519(
                &k.public_key(),
                &msg,
                &sig
            ));
            assert!(!crate::cardano::tx::verify_ed25519(
                &k.public_key(),
                &[0u8; 32],
                &sig
            ));
        }
        assert_ne!(
            w.payment_key(0, 0).public_key(),
            w.payment_key(0, 1).public_key()
        );
        assert!(!format!("{:?}", w.payment_key(0, 0)).contains(&hex::encode(w.master_key_bytes())));
    }

    #[test]
    fn bad_mnemonic_is_an_error() {
        assert!(Wallet::from_mnemonic("not a mnemonic", "").is_err());
        assert!(Wallet::from_mnemonic(&CIP3_PHRASE.replace("title", "eight"), "").is_err());
    }
}
