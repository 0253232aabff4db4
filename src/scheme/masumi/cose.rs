//! CIP-8 / CIP-30 `signData` signatures: the seller's authorization of `termsDigest`.
//!
//! [`verify_seller_signature`] applies every check of the Masumi spec's
//! "Seller-signed terms" section; any failure is one [`CoseError`] that the
//! caller maps to `invalid_exact_cardano_requirements_masumi_seller_signature`.
//! The signing side (what a CIP-30 wallet produces) is
//! `crate::buyer::quote::sign_data`, outside the service core.

use ed25519_dalek::{Signature, VerifyingKey};

use super::cbor::{self, Item, enc};
use crate::cardano::address::{self, Credential};

/// Largest accepted `referenceKey` / `referenceSignature`, in bytes (spec limit 16 KiB).
pub const MAX_COSE_BYTES: usize = 16 * 1024;

/// Why a seller signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoseError {
    #[error("COSE_Key: {0}")]
    Key(String),
    #[error("COSE_Sign1: {0}")]
    Sign1(String),
    #[error("the signed payload is not the 32-byte terms digest")]
    Payload,
    #[error("the key id of COSE_Key and the protected header differ")]
    KidMismatch,
    #[error("the protected address is not the seller's address")]
    Address,
    #[error("the seller's payment credential is not the hash of the signing key")]
    Binding,
    #[error("the Ed25519 signature does not verify")]
    Signature,
}

/// The verified signing key (its 32 bytes), for diagnostics.
pub type VerifiedKey = [u8; 32];

fn key_err(m: &str) -> CoseError {
    CoseError::Key(m.to_owned())
}
fn s1_err(m: &str) -> CoseError {
    CoseError::Sign1(m.to_owned())
}

/// Check `sign1` (a COSE_Sign1) by `key` (a COSE_Key) over `digest`, bound to
/// `seller_address` (raw address bytes).
pub fn verify_seller_signature(
    key: &[u8],
    sign1: &[u8],
    seller_address: &[u8],
    digest: &[u8; 32],
) -> Result<VerifiedKey, CoseError> {
    if key.len() > MAX_COSE_BYTES || sign1.len() > MAX_COSE_BYTES {
        return Err(key_err("larger than 16 KiB"));
    }
    // COSE_Key.
    let k = cbor::decode(key).map_err(|e| CoseError::Key(e.to_string()))?;
    if !matches!(k, Item::Map(_)) {
        return Err(key_err("not a map"));
    }
    if k.get_int(1).and_then(Item::as_int) != Some(1) {
        return Err(key_err("kty must be 1 (OKP)"));
    }
    if k.get_int(3).and_then(Item::as_int) != Some(-8) {
        return Err(key_err("alg must be -8 (EdDSA)"));
    }
    if k.get_int(-1).and_then(Item::as_int) != Some(6) {
        return Err(key_err("crv must be 6 (Ed25519)"));
    }
    if k.get_int(-4).is_some() {
        return Err(key_err("carries private key material (-4)"));
    }
    if let Some(ops) = k.get_int(4)
        && !matches!(ops, Item::Array(_))
    {
        return Err(key_err("key_ops must be an array"));
    }
    let x: [u8; 32] = k
        .get_int(-2)
        .and_then(Item::as_bytes)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| key_err("x must be a 32-byte string"))?;
    let key_kid = match k.get_int(2) {
        None => None,
        Some(Item::Bytes(b)) => Some(b.clone()),
        Some(_) => return Err(key_err("kid must be a byte string")),
    };

    // COSE_Sign1, untagged, exactly four members.
    let s = cbor::decode(sign1).map_err(|e| CoseError::Sign1(e.to_string()))?;
    let Item::Array(parts) = s else {
        return Err(s1_err("not an untagged array"));
    };
    let [protected, unprotected, payload, signature] = parts.as_slice() else {
        return Err(s1_err("must have exactly four members"));
    };
    let Item::Bytes(protected_raw) = protected else {
        return Err(s1_err("protected header must be a byte string"));
    };
    if protected_raw.is_empty() {
        return Err(s1_err("protected header is empty"));
    }
    let ph = cbor::decode(protected_raw).map_err(|e| CoseError::Sign1(e.to_string()))?;
    if !matches!(ph, Item::Map(_)) {
        return Err(s1_err("protected header is not a map"));
    }
    if ph.get_int(1).and_then(Item::as_int) != Some(-8) {
        return Err(s1_err("protected alg must be -8 (EdDSA)"));
    }
    let addr = ph
        .get_text("address")
        .and_then(Item::as_bytes)
        .ok_or_else(|| s1_err("protected header lacks \"address\""))?;
    if !matches!(unprotected, Item::Map(_)) {
        return Err(s1_err("unprotected header is not a map"));
    }
    if unprotected.get_text("hashed") != Some(&Item::Bool(false)) {
        return Err(s1_err("unprotected \"hashed\" must be false"));
    }
    let Item::Bytes(payload) = payload else {
        return Err(CoseError::Payload);
    };
    if payload.as_slice() != digest.as_slice() {
        return Err(CoseError::Payload);
    }
    let sig: [u8; 64] = signature
        .as_bytes()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| s1_err("signature must be 64 bytes"))?;
    if let (Some(a), Some(b)) = (&key_kid, ph.get_int(4))
        && b.as_bytes() != Some(a.as_slice())
    {
        return Err(CoseError::KidMismatch);
    }

    // Address binding: the signed address is the seller's, whose payment key is x.
    if addr != seller_address {
        return Err(CoseError::Address);
    }
    let seller = address::parse_shelley_bytes(seller_address).map_err(|_| CoseError::Address)?;
    match seller.payment {
        Credential::KeyHash(h) if h == crate::cardano::tx::key_hash(&x) => {}
        _ => return Err(CoseError::Binding),
    }

    // Ed25519 over Sig_structure = ["Signature1", protected, h'', payload].
    let tbs = sig_structure(protected_raw, payload);
    let vk = VerifyingKey::from_bytes(&x).map_err(|_| key_err("x is not an Ed25519 point"))?;
    vk.verify_strict(&tbs, &Signature::from_bytes(&sig))
        .map_err(|_| CoseError::Signature)?;
    Ok(x)
}

/// The COSE `Sig_structure` ("Signature1", protected header, empty external
/// data, payload) that the Ed25519 signature covers.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut tbs = Vec::with_capacity(protected.len() + payload.len() + 20);
    tbs.push(0x84);
    enc::text(&mut tbs, "Signature1");
    enc::bytes(&mut tbs, protected);
    enc::bytes(&mut tbs, &[]);
    enc::bytes(&mut tbs, payload);
    tbs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cardano::address::decode_bech32;

    fn addr(bech: &str) -> Vec<u8> {
        decode_bech32(bech).map(|(_, b)| b).unwrap_or_default()
    }

    /// `cose_vectors.json` "verify": every case, with its expected verdict.
    #[test]
    fn verify_vectors() {
        let cases: &[(&str, &str, &str, &str, &str, bool)] = &include!("testdata/cose_verify.in");
        for (name, key, signature, address, digest, valid) in cases {
            let d: [u8; 32] = hex::decode(digest).unwrap().try_into().unwrap();
            let got = verify_seller_signature(
                &hex::decode(key).unwrap(),
                &hex::decode(signature).unwrap(),
                &addr(address),
                &d,
            );
            assert_eq!(got.is_ok(), *valid, "{name}: {got:?}");
        }
    }
}
