//! Cardano addresses: strict parsing of raw bytes and bech32 text.
//!
//! `payTo` in a payment requirement and every output address the facilitator
//! reasons about go through here. pallas-addresses is lenient about trailing
//! bytes after a Shelley payload, which would let two different byte strings
//! name "the same" address; this module insists on the exact CIP-19 lengths so
//! that comparing address bytes is comparing addresses.

use std::fmt;

use bech32::Bech32;
use bech32::primitives::decode::CheckedHrpstring;

/// Why an address could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("not valid bech32: {0}")]
    Bech32(String),
    #[error("unknown address header type {0:#04x}")]
    UnknownHeader(u8),
    #[error("wrong length {len} for a {kind} address")]
    BadLength { kind: &'static str, len: usize },
    #[error("bech32 prefix {hrp:?} does not match network id {network_id}")]
    PrefixMismatch { hrp: String, network_id: u8 },
    #[error("malformed pointer in a pointer address")]
    BadPointer,
    #[error("malformed Byron address")]
    BadByron,
    #[error("a {0} address cannot receive a payment here")]
    NotShelley(&'static str),
}

/// The payment (or stake) credential of an address: who may spend from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// Blake2b-224 hash of an Ed25519 verification key.
    KeyHash([u8; 28]),
    /// Hash of a native or Plutus script.
    ScriptHash([u8; 28]),
}

impl Credential {
    pub fn hash(&self) -> &[u8; 28] {
        match self {
            Credential::KeyHash(h) | Credential::ScriptHash(h) => h,
        }
    }
    pub fn key_hash(&self) -> Option<[u8; 28]> {
        match self {
            Credential::KeyHash(h) => Some(*h),
            Credential::ScriptHash(_) => None,
        }
    }
}

/// The delegation part of a Shelley address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StakePart {
    /// Enterprise address: no delegation.
    None,
    Credential(Credential),
    /// Pointer address (slot, tx index, cert index); deprecated but still spendable.
    Pointer(u64, u64, u64),
}

/// A parsed Shelley payment address (CIP-19 header types 0 to 7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShelleyAddress {
    /// The exact address bytes, header first.
    pub bytes: Vec<u8>,
    /// 1 mainnet, 0 testnets (the header's low nibble).
    pub network_id: u8,
    pub payment: Credential,
    pub stake: StakePart,
}

impl ShelleyAddress {
    pub fn is_enterprise(&self) -> bool {
        matches!(self.stake, StakePart::None)
    }
    pub fn to_bech32(&self) -> String {
        // A Shelley address is at most 57 bytes plus a pointer: always within bech32 limits.
        to_bech32(&self.bytes).unwrap_or_else(|_| hex::encode(&self.bytes))
    }
}

impl fmt::Display for ShelleyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_bech32())
    }
}

/// Any address that may appear in a transaction output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyAddress {
    Shelley(ShelleyAddress),
    /// A Byron (bootstrap) address; spendable only with bootstrap witnesses.
    Byron,
    /// A reward (stake) address: headers 14 and 15. Never valid in an output.
    Reward {
        network_id: u8,
        credential: Credential,
    },
}

/// What [`classify`] finds in address bytes: [`AnyAddress`] without a copy
/// of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Shelley {
        network_id: u8,
        payment: Credential,
        stake: StakePart,
    },
    Byron,
    Reward {
        network_id: u8,
        credential: Credential,
    },
}

fn hash28(b: &[u8]) -> [u8; 28] {
    let mut h = [0u8; 28];
    h.copy_from_slice(&b[..28]);
    h
}

fn read_varuint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v = v.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        if b & 0x80 == 0 {
            return Some(v);
        }
        if i == 9 {
            return None;
        }
    }
    None
}

/// Classify and strictly parse raw address bytes.
pub fn parse_any(bytes: &[u8]) -> Result<AnyAddress, AddressError> {
    Ok(match classify(bytes)? {
        AddressKind::Shelley {
            network_id,
            payment,
            stake,
        } => AnyAddress::Shelley(ShelleyAddress {
            bytes: bytes.to_vec(),
            network_id,
            payment,
            stake,
        }),
        AddressKind::Byron => AnyAddress::Byron,
        AddressKind::Reward {
            network_id,
            credential,
        } => AnyAddress::Reward {
            network_id,
            credential,
        },
    })
}

/// [`parse_any`] without copying the bytes: same checks, same errors.
pub fn classify(bytes: &[u8]) -> Result<AddressKind, AddressError> {
    let header = *bytes.first().ok_or(AddressError::Empty)?;
    let typ = header >> 4;
    let network_id = header & 0x0f;
    let len = bytes.len();
    let exact = |kind: &'static str, want: usize| {
        if len == want {
            Ok(())
        } else {
            Err(AddressError::BadLength { kind, len })
        }
    };
    let shelley = |payment: Credential, stake: StakePart| AddressKind::Shelley {
        network_id,
        payment,
        stake,
    };
    match typ {
        0..=3 => {
            exact("base", 57)?;
            let p = hash28(&bytes[1..29]);
            let s = hash28(&bytes[29..57]);
            let payment = if typ & 1 == 0 {
                Credential::KeyHash(p)
            } else {
                Credential::ScriptHash(p)
            };
            let stake = if typ & 2 == 0 {
                Credential::KeyHash(s)
            } else {
                Credential::ScriptHash(s)
            };
            Ok(shelley(payment, StakePart::Credential(stake)))
        }
        4 | 5 => {
            if len < 30 {
                return Err(AddressError::BadLength {
                    kind: "pointer",
                    len,
                });
            }
            let p = hash28(&bytes[1..29]);
            let payment = if typ == 4 {
                Credential::KeyHash(p)
            } else {
                Credential::ScriptHash(p)
            };
            let mut pos = 29;
            let a = read_varuint(bytes, &mut pos).ok_or(AddressError::BadPointer)?;
            let b = read_varuint(bytes, &mut pos).ok_or(AddressError::BadPointer)?;
            let c = read_varuint(bytes, &mut pos).ok_or(AddressError::BadPointer)?;
            if pos != len {
                return Err(AddressError::BadPointer);
            }
            Ok(shelley(payment, StakePart::Pointer(a, b, c)))
        }
        6 | 7 => {
            exact("enterprise", 29)?;
            let p = hash28(&bytes[1..29]);
            let payment = if typ == 6 {
                Credential::KeyHash(p)
            } else {
                Credential::ScriptHash(p)
            };
            Ok(shelley(payment, StakePart::None))
        }
        8 => {
            parse_byron(bytes)?;
            Ok(AddressKind::Byron)
        }
        14 | 15 => {
            exact("reward", 29)?;
            let h = hash28(&bytes[1..29]);
            let credential = if typ == 14 {
                Credential::KeyHash(h)
            } else {
                Credential::ScriptHash(h)
            };
            Ok(AddressKind::Reward {
                network_id,
                credential,
            })
        }
        _ => Err(AddressError::UnknownHeader(header)),
    }
}

/// What the Conway ledger reads from a Byron (bootstrap) address in an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByronInfo {
    /// The network-magic attribute: absent means mainnet, present means a testnet.
    pub network_magic: Option<u32>,
    /// `bootstrapAddressAttrsSize`: the HD payload's length plus the lengths of
    /// unknown attributes. The ledger refuses outputs where it exceeds 64
    /// (`OutputBootAddrAttrsTooBig`).
    pub attrs_size: usize,
}

impl ByronInfo {
    /// The network id the ledger assigns to the address (1 mainnet, 0 testnet).
    pub fn network_id(&self) -> u8 {
        if self.network_magic.is_some() { 0 } else { 1 }
    }
}

/// CRC-32 (IEEE 802.3, reflected), as Byron addresses protect their payload.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// Strictly parse a Byron address as the node's Byron decoder does:
/// `[#6.24(bytes .cbor [root(28), attributes, type]), crc32]`, every record
/// of exactly its size, the CRC matching, the type 0 (key) or 2 (redeem), the
/// attributes a canonical map whose derivation path (1) is a byte string and
/// whose network magic (2) is a 32-bit integer.
pub fn parse_byron(bytes: &[u8]) -> Result<ByronInfo, AddressError> {
    use pallas_codec::minicbor::Decoder;
    let bad = || AddressError::BadByron;
    super::cbor::scan_single_item(bytes, 8).map_err(|_| bad())?;
    let mut d = Decoder::new(bytes);
    if d.array().map_err(|_| bad())? != Some(2) {
        return Err(bad());
    }
    if d.tag().map_err(|_| bad())?.as_u64() != 24 {
        return Err(bad());
    }
    let payload = d.bytes().map_err(|_| bad())?;
    let crc = d.u32().map_err(|_| bad())?;
    if d.position() != bytes.len() || crc32(payload) != crc {
        return Err(bad());
    }
    super::cbor::scan_single_item(payload, 8).map_err(|_| bad())?;
    let mut p = Decoder::new(payload);
    if p.array().map_err(|_| bad())? != Some(3) {
        return Err(bad());
    }
    if p.bytes().map_err(|_| bad())?.len() != 28 {
        return Err(bad());
    }
    let n = p.map().map_err(|_| bad())?.ok_or_else(bad)?;
    let mut info = ByronInfo {
        network_magic: None,
        attrs_size: 0,
    };
    let mut last_key: Option<u64> = None;
    for _ in 0..n {
        let key = p.u64().map_err(|_| bad())?;
        if key > 255 || last_key.is_some_and(|k| key <= k) {
            return Err(bad());
        }
        last_key = Some(key);
        let value = p.bytes().map_err(|_| bad())?;
        match key {
            1 => {
                super::cbor::scan_single_item(value, 2).map_err(|_| bad())?;
                let hd = Decoder::new(value).bytes().map_err(|_| bad())?;
                info.attrs_size = info.attrs_size.saturating_add(hd.len());
            }
            2 => {
                // decodeWord32Canonical: the shortest encoding only.
                super::cbor::scan_single_item(value, 1).map_err(|_| bad())?;
                let magic = Decoder::new(value).u32().map_err(|_| bad())?;
                let canonical_len = match magic {
                    0..=23 => 1,
                    24..=0xff => 2,
                    0x100..=0xffff => 3,
                    _ => 5,
                };
                if value.len() != canonical_len {
                    return Err(bad());
                }
                info.network_magic = Some(magic);
            }
            _ => info.attrs_size = info.attrs_size.saturating_add(value.len()),
        }
    }
    // decodeWord8Canonical: the single byte 0 (key) or 2 (redeem), then nothing.
    let typ = payload.get(p.position()).copied();
    if !matches!(typ, Some(0x00 | 0x02)) || p.position() + 1 != payload.len() {
        return Err(bad());
    }
    Ok(info)
}

/// A Byron key address over `root` with the given attributes (ascending keys,
/// raw attribute values; key 1 derivation path, key 2 network magic), its
/// payload CRC-protected. For tests and the devnet; values up to 255 bytes.
pub fn byron_address_bytes(root: &[u8; 28], attrs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut payload = vec![0x83, 0x58, 0x1c];
    payload.extend_from_slice(root);
    payload.push(0xa0 | (attrs.len().min(23) as u8));
    for (k, v) in attrs.iter().take(23) {
        payload.push(*k);
        if v.len() < 24 {
            payload.push(0x40 | v.len() as u8);
        } else {
            payload.extend_from_slice(&[0x58, v.len().min(255) as u8]);
        }
        payload.extend_from_slice(&v[..v.len().min(255)]);
    }
    payload.push(0x00);
    let mut out = vec![0x82, 0xd8, 0x18];
    if payload.len() < 256 {
        out.extend_from_slice(&[0x58, payload.len() as u8]);
    } else {
        out.push(0x59);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&payload);
    out.push(0x1a);
    out.extend_from_slice(&crc32(&payload).to_be_bytes());
    out
}

/// Parse raw bytes that must be a Shelley payment address (no Byron, no reward address).
pub fn parse_shelley_bytes(bytes: &[u8]) -> Result<ShelleyAddress, AddressError> {
    match parse_any(bytes)? {
        AnyAddress::Shelley(a) => Ok(a),
        AnyAddress::Byron => Err(AddressError::NotShelley("Byron")),
        AnyAddress::Reward { .. } => Err(AddressError::NotShelley("reward")),
    }
}

/// Decode bech32 text (Bech32, not Bech32m) into its prefix and bytes.
pub fn decode_bech32(s: &str) -> Result<(String, Vec<u8>), AddressError> {
    let checked =
        CheckedHrpstring::new::<Bech32>(s).map_err(|e| AddressError::Bech32(e.to_string()))?;
    let hrp = checked.hrp().to_lowercase();
    Ok((hrp, checked.byte_iter().collect()))
}

/// Longest data part [`parse_shelley_bech32`] decodes on the stack: more than
/// any Shelley address (57 bytes, or a pointer address of at most 59).
const SHELLEY_BECH32_MAX: usize = 64;

/// Parse a bech32 Shelley payment address (`addr1...` / `addr_test1...`), checking
/// that the prefix agrees with the header's network id.
pub fn parse_shelley_bech32(s: &str) -> Result<ShelleyAddress, AddressError> {
    let checked =
        CheckedHrpstring::new::<Bech32>(s).map_err(|e| AddressError::Bech32(e.to_string()))?;
    // The data part goes to a stack buffer; one too long for it cannot be a
    // Shelley address and takes the general path for the same error.
    let mut buf = [0u8; SHELLEY_BECH32_MAX];
    let mut len = 0usize;
    for b in checked.byte_iter() {
        let Some(slot) = buf.get_mut(len) else {
            return parse_shelley_bech32_slow(s);
        };
        *slot = b;
        len += 1;
    }
    let bytes = buf.get(..len).unwrap_or_default();
    let kind = classify(bytes)?;
    let AddressKind::Shelley {
        network_id,
        payment,
        stake,
    } = kind
    else {
        return Err(not_shelley(kind));
    };
    let want = if network_id == 1 { "addr" } else { "addr_test" };
    if !checked.hrp().lowercase_byte_iter().eq(want.bytes()) {
        return Err(AddressError::PrefixMismatch {
            hrp: checked.hrp().to_lowercase(),
            network_id,
        });
    }
    Ok(ShelleyAddress {
        bytes: bytes.to_vec(),
        network_id,
        payment,
        stake,
    })
}

/// [`parse_shelley_bech32`] through [`decode_bech32`] (for data parts too
/// long for its buffer).
fn parse_shelley_bech32_slow(s: &str) -> Result<ShelleyAddress, AddressError> {
    let (hrp, bytes) = decode_bech32(s)?;
    let addr = parse_shelley_bytes(&bytes)?;
    let want = if addr.network_id == 1 {
        "addr"
    } else {
        "addr_test"
    };
    if hrp != want {
        return Err(AddressError::PrefixMismatch {
            hrp,
            network_id: addr.network_id,
        });
    }
    Ok(addr)
}

/// The error [`parse_shelley_bytes`] gives for an address that is not Shelley.
fn not_shelley(kind: AddressKind) -> AddressError {
    match kind {
        AddressKind::Reward { .. } => AddressError::NotShelley("reward"),
        _ => AddressError::NotShelley("Byron"),
    }
}

/// Bech32 text of raw Shelley payment or reward address bytes.
pub fn to_bech32(bytes: &[u8]) -> Result<String, AddressError> {
    let hrp = match classify(bytes)? {
        AddressKind::Shelley { network_id: 1, .. } => "addr",
        AddressKind::Shelley { .. } => "addr_test",
        AddressKind::Reward { network_id: 1, .. } => "stake",
        AddressKind::Reward { .. } => "stake_test",
        AddressKind::Byron => return Err(AddressError::NotShelley("Byron")),
    };
    Ok(bech32_text(hrp, bytes))
}

/// BIP-173 bech32 (not bech32m) of `data` under a lowercase ASCII `hrp`,
/// written straight into one `String`: an answer names the payer and the
/// payee, so this runs twice per verify (the `bech32` crate's encoder goes
/// through `fmt` one character at a time and costs about five times more).
/// Same text as `bech32::encode::<Bech32>` (checked in the tests).
fn bech32_text(hrp: &str, data: &[u8]) -> String {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    fn step(chk: u32, v: u8) -> u32 {
        let top = chk >> 25;
        let mut c = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            // Branch-free: all ones when bit i of `top` is set.
            c ^= g & ((top >> i) & 1).wrapping_neg();
        }
        c
    }
    let mut out: Vec<u8> = Vec::with_capacity(hrp.len() + 1 + (data.len() * 8).div_ceil(5) + 6);
    let mut chk = 1u32;
    for b in hrp.bytes() {
        chk = step(chk, b >> 5);
    }
    chk = step(chk, 0);
    for b in hrp.bytes() {
        chk = step(chk, b & 31);
    }
    out.extend_from_slice(hrp.as_bytes());
    out.push(b'1');
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = ((acc << 8) | u32::from(b)) & 0xfff;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let v = ((acc >> bits) & 31) as u8;
            chk = step(chk, v);
            out.push(CHARSET[usize::from(v)]);
        }
    }
    if bits > 0 {
        let v = ((acc << (5 - bits)) & 31) as u8;
        chk = step(chk, v);
        out.push(CHARSET[usize::from(v)]);
    }
    for _ in 0..6 {
        chk = step(chk, 0);
    }
    chk ^= 1;
    for i in 0..6 {
        out.push(CHARSET[((chk >> (5 * (5 - i))) & 31) as usize]);
    }
    // Only `hrp` (ASCII, ours) and charset letters: valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The payment key hash of an address's owner, if it is a key-hash Shelley address.
/// `None` for script, Byron, reward and malformed addresses.
pub fn payment_key_hash(bytes: &[u8]) -> Option<[u8; 28]> {
    match classify(bytes).ok()? {
        AddressKind::Shelley { payment, .. } => payment.key_hash(),
        _ => None,
    }
}

/// Raw bytes of an enterprise address for a payment key hash.
pub fn enterprise_address_bytes(network_id: u8, payment_key_hash: &[u8; 28]) -> Vec<u8> {
    let mut v = Vec::with_capacity(29);
    v.push(0x60 | (network_id & 0x0f));
    v.extend_from_slice(payment_key_hash);
    v
}

/// Raw bytes of an enterprise address locked by a script hash (header `0x70`/`0x71`).
pub fn enterprise_script_address_bytes(network_id: u8, script_hash: &[u8; 28]) -> Vec<u8> {
    let mut v = Vec::with_capacity(29);
    v.push(0x70 | (network_id & 0x0f));
    v.extend_from_slice(script_hash);
    v
}

/// Raw bytes of a base address (key payment, key stake).
pub fn base_address_bytes(
    network_id: u8,
    payment_key_hash: &[u8; 28],
    stake_key_hash: &[u8; 28],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(57);
    v.push(network_id & 0x0f);
    v.extend_from_slice(payment_key_hash);
    v.extend_from_slice(stake_key_hash);
    v
}

#[cfg(test)]
mod tests {
    /// The hand-written encoder gives the `bech32` crate's text for every
    /// length an address can have (and more), and every prefix we use.
    #[test]
    fn bech32_text_matches_the_bech32_crate() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for hrp in ["addr", "addr_test", "stake", "stake_test"] {
            for len in 0..=80usize {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let expected =
                    bech32::encode::<bech32::Bech32>(bech32::Hrp::parse(hrp).unwrap(), &data)
                        .unwrap();
                assert_eq!(super::bech32_text(hrp, &data), expected, "{hrp} {len}");
            }
        }
    }

    use super::*;

    // CIP-19 test vectors (payment key hash 9493315cd9..., stake key hash 337b62cfff...).
    const BASE_MAINNET: &str = "addr1qx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzer3n0d3vllmyqwsx5wktcd8cc3sq835lu7drv2xwl2wywfgse35a3x";
    const ENTERPRISE_MAINNET: &str = "addr1vx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzers66hrl8";
    const ENTERPRISE_TESTNET: &str =
        "addr_test1vz2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzerspjrlsz";
    const SCRIPT_ENTERPRISE: &str = "addr1w8phkx6acpnf78fuvxn0mkew3l0fd058hzquvz7w36x4gtcyjy7wx";
    const POINTER: &str = "addr1gx2fxv2umyhttkxyxp8x0dlpdt3k6cwng5pxj3jhsydzer5pnz75xxcrzqf96k";
    const STAKE: &str = "stake1uyehkck0lajq8gr28t9uxnuvgcqrc6070x3k9r8048z8y5gh6ffgw";
    const KEY_HASH: &str = "9493315cd92eb5d8c4304e67b7e16ae36d61d34502694657811a2c8e";

    #[test]
    fn parses_cip19_vectors() {
        let kh: [u8; 28] = hex::decode(KEY_HASH).unwrap().try_into().unwrap();
        let a = parse_shelley_bech32(BASE_MAINNET).unwrap();
        assert_eq!(a.network_id, 1);
        assert_eq!(a.payment, Credential::KeyHash(kh));
        assert!(matches!(
            a.stake,
            StakePart::Credential(Credential::KeyHash(_))
        ));
        assert_eq!(a.to_bech32(), BASE_MAINNET);

        let e = parse_shelley_bech32(ENTERPRISE_MAINNET).unwrap();
        assert!(e.is_enterprise());
        assert_eq!(e.bytes, enterprise_address_bytes(1, &kh));
        let t = parse_shelley_bech32(ENTERPRISE_TESTNET).unwrap();
        assert_eq!(t.network_id, 0);
        assert_eq!(to_bech32(&t.bytes).unwrap(), ENTERPRISE_TESTNET);

        let s = parse_shelley_bech32(SCRIPT_ENTERPRISE).unwrap();
        assert!(matches!(s.payment, Credential::ScriptHash(_)));
        assert_eq!(payment_key_hash(&s.bytes), None);

        let p = parse_shelley_bech32(POINTER).unwrap();
        assert_eq!(p.stake, StakePart::Pointer(2498243, 27, 3));
        assert_eq!(payment_key_hash(&p.bytes), Some(kh));
    }

    #[test]
    fn rejects_reward_byron_and_mismatched_prefix() {
        assert!(matches!(
            parse_shelley_bech32(STAKE),
            Err(AddressError::NotShelley("reward"))
        ));
        let (_, bytes) = decode_bech32(ENTERPRISE_MAINNET).unwrap();
        let wrong =
            bech32::encode::<Bech32>(bech32::Hrp::parse("addr_test").unwrap(), &bytes).unwrap();
        assert!(matches!(
            parse_shelley_bech32(&wrong),
            Err(AddressError::PrefixMismatch { .. })
        ));
        let byron = bs58_decode_byron();
        assert!(matches!(
            parse_shelley_bytes(&byron),
            Err(AddressError::NotShelley("Byron"))
        ));
        assert!(parse_shelley_bech32("not an address").is_err());
    }

    /// `classify` agrees with `parse_any`, and `parse_shelley_bech32` (stack
    /// buffer) with the path through `decode_bech32` it replaces, on good and
    /// bad addresses alike.
    #[test]
    fn borrowed_paths_agree_with_the_copying_ones() {
        let mut samples: Vec<Vec<u8>> = Vec::new();
        for s in [
            BASE_MAINNET,
            ENTERPRISE_MAINNET,
            ENTERPRISE_TESTNET,
            SCRIPT_ENTERPRISE,
            POINTER,
            STAKE,
        ] {
            let (_, b) = decode_bech32(s).unwrap();
            let mut longer = b.clone();
            longer.push(0);
            samples.extend([b.clone(), longer, b[..b.len() - 1].to_vec()]);
        }
        samples.extend([
            bs58_decode_byron(),
            vec![],
            vec![0x90; 29],
            vec![0x41; 70],
            vec![0x01; 80],
        ]);
        for b in &samples {
            let kind = classify(b);
            let any = parse_any(b);
            match (&kind, &any) {
                (Ok(AddressKind::Byron), Ok(AnyAddress::Byron)) => {}
                (
                    Ok(AddressKind::Reward {
                        network_id,
                        credential,
                    }),
                    Ok(AnyAddress::Reward {
                        network_id: n,
                        credential: c,
                    }),
                ) => assert_eq!((network_id, credential), (n, c)),
                (
                    Ok(AddressKind::Shelley {
                        network_id,
                        payment,
                        stake,
                    }),
                    Ok(AnyAddress::Shelley(a)),
                ) => {
                    assert_eq!(
                        (*network_id, *payment, *stake),
                        (a.network_id, a.payment, a.stake)
                    );
                    assert_eq!(&a.bytes, b);
                }
                (Err(e), Err(f)) => assert_eq!(e, f),
                other => panic!("{other:?}"),
            }
            for hrp in ["addr", "addr_test", "stake", "ADDR", "foo"] {
                let Ok(text) = bech32::encode::<Bech32>(bech32::Hrp::parse(hrp).unwrap(), b) else {
                    continue;
                };
                for t in [text.clone(), text.to_uppercase()] {
                    assert_eq!(
                        parse_shelley_bech32(&t),
                        parse_shelley_bech32_slow(&t),
                        "{t}"
                    );
                }
            }
        }
        for bad in ["", "addr1", "not an address", "addr1qqqqqq"] {
            assert_eq!(parse_shelley_bech32(bad), parse_shelley_bech32_slow(bad));
        }
    }

    #[test]
    fn strict_lengths() {
        let (_, mut bytes) = decode_bech32(ENTERPRISE_MAINNET).unwrap();
        bytes.push(0);
        assert!(matches!(
            parse_any(&bytes),
            Err(AddressError::BadLength { .. })
        ));
        assert!(matches!(parse_any(&[]), Err(AddressError::Empty)));
        assert!(matches!(
            parse_any(&[0x90; 29]),
            Err(AddressError::UnknownHeader(0x90))
        ));
    }

    #[test]
    fn byron_addresses_are_parsed_strictly() {
        let good = bs58_decode_byron();
        let info = parse_byron(&good).unwrap();
        assert_eq!(info.network_magic, None);
        assert_eq!(info.network_id(), 1);
        assert_eq!(info.attrs_size, 0);
        // A flipped CRC byte, a flipped root byte: refused.
        let mut crc = good.clone();
        *crc.last_mut().unwrap() ^= 1;
        assert_eq!(parse_byron(&crc), Err(AddressError::BadByron));
        let mut root = good.clone();
        root[10] ^= 1;
        assert_eq!(parse_byron(&root), Err(AddressError::BadByron));
        // A testnet address (network magic 1097911063) and one with oversized attributes.
        let testnet = byron_address_bytes(&[3; 28], &[(2, vec![0x1a, 0x41, 0x70, 0xcb, 0x17])]);
        let info = parse_byron(&testnet).unwrap();
        assert_eq!(info.network_magic, Some(1_097_911_063));
        assert_eq!(info.network_id(), 0);
        let mut hd = vec![0x58, 65];
        hd.extend_from_slice(&[7; 65]);
        let big = byron_address_bytes(&[3; 28], &[(1, hd)]);
        assert_eq!(parse_byron(&big).unwrap().attrs_size, 65);
        // A non-canonical network magic (1 spelled in 5 bytes) is refused, as the node does.
        let padded = byron_address_bytes(&[3; 28], &[(2, vec![0x1a, 0, 0, 0, 1])]);
        assert_eq!(parse_byron(&padded), Err(AddressError::BadByron));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        // Real addresses: a testnet one (magic 1097911063) and a Daedalus one
        // with an HD derivation-path attribute.
        let real = |b58: &str| {
            pallas_addresses::byron::ByronAddress::from_base58(b58)
                .unwrap()
                .to_vec()
        };
        let t = parse_byron(&real("37btjrVyb4KDXBNC4haBVPCrro8AQPHwvCMp3RFhhSVWwfFmZ6wwzSK6JK1hY6wHNmtrpTf1kdbva8TCneM2YsiXT7mrzT21EacHnPpz5YyUdj64na")).unwrap();
        assert_eq!(t.network_magic, Some(1_097_911_063));
        assert_eq!(t.network_id(), 0);
        let dd = parse_byron(&real("DdzFFzCqrht7PQiAhzrn6rNNoADJieTWBt8KeK9BZdUsGyX9ooYD9NpMCTGjQoUKcHN47g8JMXhvKogsGpQHtiQ65fZwiypjrC6d3a4Q")).unwrap();
        assert_eq!(dd.network_magic, None);
        assert!(
            dd.attrs_size > 0 && dd.attrs_size <= 64,
            "{}",
            dd.attrs_size
        );
    }

    /// `Ae2tdPwUPEZLs4HtbuNey7tK4hTKrwNwYtGqp7bDfCy2WdR3P6735W5Yfpe`, base58-decoded.
    fn bs58_decode_byron() -> Vec<u8> {
        hex::decode("82d818582183581cf11939f42338d59e21baa08645ac1f0038d5ee969f99fe98f402fe79a0001ac9d64e5b")
            .unwrap()
    }
}
