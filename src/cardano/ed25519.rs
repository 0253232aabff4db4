//! Strict Ed25519 verification of witnesses, with a small memo of the keys
//! it has already decoded.
//!
//! A verification first decodes the 32-byte public key into a curve point
//! (a field square root, about a tenth of the whole check) and then runs the
//! double-base scalar multiplication and the equality test. A buyer signs
//! every payment with the same payment key, and `/settle` checks again the
//! transaction `/verify` checked a moment before, so the decoded point is
//! worth keeping: [`verify`] remembers the decoded form (and the Blake2b-224
//! key hash) of keys that recently produced a **valid** signature, in a fixed
//! table of [`SLOTS`] entries, and skips the decoding when it meets one again.
//!
//! What is remembered is a pure function of the key bytes, so nothing a
//! caller sends can make an entry wrong: at worst a flood of fresh keys
//! pushes others out and their next check decodes them again. Every call
//! still runs the full `verify_strict` equation on the signature in hand;
//! a remembered key never stands in for a signature.

use std::sync::OnceLock;

use ed25519_dalek::{Signature, VerifyingKey};
use pallas_crypto::hash::Hasher;
use parking_lot::Mutex;

/// Entries in the table of decoded keys (about 260 bytes each, allocated on
/// the first verification, so an idle service does not carry it).
pub const SLOTS: usize = 1024;

/// One remembered key: its bytes, its decoded point, its key hash.
#[derive(Clone, Copy)]
struct Decoded {
    bytes: [u8; 32],
    key: VerifyingKey,
    hash: [u8; 28],
}

/// A table of [`SLOTS`] remembered keys.
struct KeyMemo {
    slots: Box<[Mutex<Option<Decoded>>]>,
}

impl KeyMemo {
    fn new() -> Self {
        KeyMemo {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self, vkey: &[u8; 32]) -> &Mutex<Option<Decoded>> {
        // `slot_of` is below SLOTS, the table's length: never out of bounds.
        &self.slots[slot_of(vkey)]
    }

    /// Whether `vkey` is remembered now.
    #[cfg(test)]
    fn holds(&self, vkey: &[u8; 32]) -> bool {
        self.slot(vkey).lock().is_some_and(|d| d.bytes == *vkey)
    }

    fn verify(&self, vkey: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> Option<[u8; 28]> {
        let sig = Signature::from_bytes(signature);
        let slot = self.slot(vkey);
        let known = *slot.lock();
        if let Some(d) = known.filter(|d| d.bytes == *vkey) {
            return d.key.verify_strict(msg, &sig).is_ok().then_some(d.hash);
        }
        let key = VerifyingKey::from_bytes(vkey).ok()?;
        key.verify_strict(msg, &sig).ok()?;
        let hash = key_hash(vkey);
        *slot.lock() = Some(Decoded {
            bytes: *vkey,
            key,
            hash,
        });
        Some(hash)
    }
}

/// The service's table, allocated on the first verification.
fn memo() -> &'static KeyMemo {
    static MEMO: OnceLock<KeyMemo> = OnceLock::new();
    MEMO.get_or_init(KeyMemo::new)
}

/// The slot a key lives in. The low bytes of a compressed point are those of
/// its y coordinate, uniform for honest keys; a key crafted to share a slot
/// with another only makes that other decode again.
fn slot_of(vkey: &[u8; 32]) -> usize {
    usize::from(u16::from_le_bytes([vkey[0], vkey[1]])) % SLOTS
}

/// Blake2b-224 of a 32-byte Ed25519 verification key.
pub fn key_hash(vkey: &[u8; 32]) -> [u8; 28] {
    *Hasher::<224>::hash(vkey)
}

/// Verify `signature` by `vkey` over `msg` with ed25519-dalek's
/// `verify_strict` (small-order keys and R points and non-canonical S
/// scalars are refused, as the node's libsodium check does). On success, the
/// Blake2b-224 hash of the key.
pub fn verify(vkey: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> Option<[u8; 28]> {
    memo().verify(vkey, msg, signature)
}

/// The same check without the table: the key is decoded on every call.
/// What one Ed25519 verification costs from bytes (the benchmarks' yardstick).
pub fn verify_uncached(vkey: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(vkey).is_ok_and(|key| {
        key.verify_strict(msg, &Signature::from_bytes(signature))
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signer(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// A key whose bytes fall in the same slot as `of` but differ.
    fn slot_mate(of: &[u8; 32]) -> SigningKey {
        (1..u32::MAX)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                SigningKey::from_bytes(&seed)
            })
            .find(|k| {
                let b = k.verifying_key().to_bytes();
                b != *of && slot_of(&b) == slot_of(of)
            })
            .unwrap()
    }

    #[test]
    fn a_remembered_key_never_stands_in_for_a_signature() {
        let memo = KeyMemo::new();
        let k = signer(11);
        let vkey = k.verifying_key().to_bytes();
        let msg = [3u8; 32];
        let good = k.sign(&msg).to_bytes();
        let hash = key_hash(&vkey);
        // A refused signature does not get its key remembered.
        let mut bad = good;
        bad[5] ^= 1;
        assert_eq!(memo.verify(&vkey, &msg, &bad), None);
        assert!(!memo.holds(&vkey));
        // The first good check decodes the key and remembers it; the second finds it.
        assert_eq!(memo.verify(&vkey, &msg, &good), Some(hash));
        assert!(memo.holds(&vkey));
        assert_eq!(memo.verify(&vkey, &msg, &good), Some(hash));
        // With the key remembered: a flipped signature bit, another message,
        // another key's signature are all still refused.
        assert_eq!(memo.verify(&vkey, &msg, &bad), None);
        assert_eq!(memo.verify(&vkey, &[4u8; 32], &good), None);
        let other = signer(12).sign(&msg).to_bytes();
        assert_eq!(memo.verify(&vkey, &msg, &other), None);
        // A non-canonical S (S + l) is refused by the strict check, remembered key or not.
        let mut high_s = good;
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for i in 0..32 {
            let s = u16::from(high_s[32 + i]) + u16::from(l[i]) + carry;
            high_s[32 + i] = s as u8;
            carry = s >> 8;
        }
        assert_eq!(memo.verify(&vkey, &msg, &high_s), None);
        assert!(!verify_uncached(&vkey, &msg, &high_s));
        // The remembered key still verifies its genuine signature.
        assert!(memo.holds(&vkey));
        assert_eq!(memo.verify(&vkey, &msg, &good), Some(hash));
    }

    #[test]
    fn keys_sharing_a_slot_are_told_apart_by_their_bytes() {
        let memo = KeyMemo::new();
        let a = signer(21);
        let a_bytes = a.verifying_key().to_bytes();
        let b = slot_mate(&a_bytes);
        let b_bytes = b.verifying_key().to_bytes();
        let msg = [9u8; 32];
        let (sa, sb) = (a.sign(&msg).to_bytes(), b.sign(&msg).to_bytes());
        assert_eq!(memo.verify(&a_bytes, &msg, &sa), Some(key_hash(&a_bytes)));
        assert!(memo.holds(&a_bytes));
        // With A in the slot, B's bytes do not find it: A's signature under
        // B's key fails, and B's own check decodes B and takes the slot.
        assert_eq!(memo.verify(&b_bytes, &msg, &sa), None);
        assert!(memo.holds(&a_bytes));
        assert_eq!(memo.verify(&b_bytes, &msg, &sb), Some(key_hash(&b_bytes)));
        assert!(memo.holds(&b_bytes) && !memo.holds(&a_bytes));
        assert_eq!(memo.verify(&a_bytes, &msg, &sb), None);
        assert_eq!(memo.verify(&a_bytes, &msg, &sa), Some(key_hash(&a_bytes)));
        assert!(memo.holds(&a_bytes));
    }

    #[test]
    fn invalid_keys_and_small_order_keys_are_refused_and_not_remembered() {
        let memo = KeyMemo::new();
        let msg = [1u8; 32];
        // y = 2 is not on the curve (no square root): not a key.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(memo.verify(&not_a_point, &msg, &[0u8; 64]), None);
        // The identity (y = 1) is of small order; with R = identity and S = 0
        // the plain equation holds for any message, and the strict check refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert!(!verify_uncached(&identity, &msg, &sig));
        assert_eq!(memo.verify(&identity, &msg, &sig), None);
        assert!(!memo.holds(&identity) && !memo.holds(&not_a_point));
    }

    #[test]
    fn remembered_and_fresh_checks_agree() {
        // Through the service's own table, as `ParsedTx::verify_witnesses` calls it.
        for seed in 30..60u8 {
            let k = signer(seed);
            let vkey = k.verifying_key().to_bytes();
            let msg = [seed; 32];
            let sig = k.sign(&msg).to_bytes();
            let mut bad = sig;
            bad[40] ^= 0x80;
            for _ in 0..2 {
                assert_eq!(
                    verify(&vkey, &msg, &sig).is_some(),
                    verify_uncached(&vkey, &msg, &sig)
                );
                assert_eq!(
                    verify(&vkey, &msg, &bad).is_some(),
                    verify_uncached(&vkey, &msg, &bad)
                );
                assert!(verify_uncached(&vkey, &msg, &sig));
                assert!(!verify_uncached(&vkey, &msg, &bad));
            }
        }
    }
}
