//! Plain Cardano value types shared by every layer: transaction ids, UTxO
//! references, assets and multi-asset values.
//!
//! They are deliberately independent of pallas so that the store, the chain
//! providers and the HTTP layer can name a UTxO without decoding CBOR.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a textual id, reference or asset could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("expected {expected}, got {got:?}")]
    Malformed { expected: &'static str, got: String },
}

fn malformed(expected: &'static str, got: &str) -> ParseError {
    let mut got = got.to_owned();
    truncate_chars(&mut got, 80);
    ParseError::Malformed { expected, got }
}

/// Shorten `s` to at most `max` bytes without splitting a UTF-8 character
/// (`String::truncate` panics inside a character, and request text is arbitrary).
pub fn truncate_chars(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Canonical transaction id: blake2b-256 of the original transaction-body bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub [u8; 32]);

impl TxId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxId({})", self.to_hex())
    }
}

impl FromStr for TxId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "64 lower-case hex characters";
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(malformed(expected, s));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| malformed(expected, s))?;
        Ok(TxId(out))
    }
}

impl Serialize for TxId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TxId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A transaction output reference, written `<tx id hex>#<index>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UtxoRef {
    pub tx_id: TxId,
    pub index: u32,
}

impl UtxoRef {
    pub fn new(tx_id: TxId, index: u32) -> Self {
        Self { tx_id, index }
    }
}

impl fmt::Display for UtxoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.tx_id, self.index)
    }
}

impl fmt::Debug for UtxoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UtxoRef({self})")
    }
}

impl FromStr for UtxoRef {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = "<64 hex>#<output index>";
        let (id, ix) = s.split_once('#').ok_or_else(|| malformed(expected, s))?;
        let tx_id = id.parse().map_err(|_| malformed(expected, s))?;
        if ix.is_empty()
            || ix.len() > 10
            || !ix.bytes().all(|b| b.is_ascii_digit())
            || (ix.len() > 1 && ix.starts_with('0'))
        {
            return Err(malformed(expected, s));
        }
        let index = ix.parse().map_err(|_| malformed(expected, s))?;
        Ok(UtxoRef { tx_id, index })
    }
}

impl Serialize for UtxoRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtxoRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A native asset: 28-byte policy id and an asset name of at most 32 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetId {
    pub policy: [u8; 28],
    pub name: Vec<u8>,
}

impl AssetId {
    /// `<policy hex>.<name hex>`, the x402 form.
    pub fn dotted(&self) -> String {
        format!("{}.{}", hex::encode(self.policy), hex::encode(&self.name))
    }
    /// `<policy hex><name hex>`, the Blockfrost `unit` form.
    pub fn unit(&self) -> String {
        format!("{}{}", hex::encode(self.policy), hex::encode(&self.name))
    }
    /// Parse Blockfrost's `unit` (policy and name concatenated, no dot).
    pub fn from_unit(unit: &str) -> Result<Self, ParseError> {
        // Split only where a char boundary falls: a unit with multi-byte
        // characters is malformed, not a reason to panic.
        let Some((p, n)) = unit.split_at_checked(56) else {
            return Err(malformed("a Blockfrost unit (56+ hex)", unit));
        };
        Self::from_parts(p, n, unit)
    }
    fn from_parts(policy: &str, name: &str, whole: &str) -> Result<Self, ParseError> {
        let expected = "<56 hex policy id>.<0-64 hex asset name> in lower case";
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if policy.len() != 56
            || name.len() > 64
            || !name.len().is_multiple_of(2)
            || !lower_hex(policy)
            || !lower_hex(name)
        {
            return Err(malformed(expected, whole));
        }
        let mut p = [0u8; 28];
        hex::decode_to_slice(policy, &mut p).map_err(|_| malformed(expected, whole))?;
        let name = hex::decode(name).map_err(|_| malformed(expected, whole))?;
        Ok(AssetId { policy: p, name })
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted())
    }
}

impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetId({})", self.dotted())
    }
}

/// What a payment requirement asks for: ada or one native asset.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Asset {
    Lovelace,
    Native(AssetId),
}

impl Asset {
    pub fn is_lovelace(&self) -> bool {
        matches!(self, Asset::Lovelace)
    }
}

impl fmt::Display for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Asset::Lovelace => f.write_str("lovelace"),
            Asset::Native(a) => f.write_str(&a.dotted()),
        }
    }
}

impl FromStr for Asset {
    type Err = ParseError;
    /// `lovelace` or `<policy>.<name>`; nothing else (no upper case, no Blockfrost unit).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "lovelace" {
            return Ok(Asset::Lovelace);
        }
        let (p, n) = s.split_once('.').ok_or_else(|| {
            malformed(
                "\"lovelace\" or <56 hex policy id>.<0-64 hex asset name>",
                s,
            )
        })?;
        Ok(Asset::Native(AssetId::from_parts(p, n, s)?))
    }
}

/// A multi-asset value: lovelace plus native-asset quantities (zero entries are never stored).
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Value {
    pub coin: u64,
    pub assets: BTreeMap<AssetId, u64>,
}

impl Value {
    pub fn lovelace(coin: u64) -> Self {
        Value {
            coin,
            assets: BTreeMap::new(),
        }
    }

    /// Quantity of one asset (lovelace included).
    pub fn quantity(&self, asset: &Asset) -> u64 {
        match asset {
            Asset::Lovelace => self.coin,
            Asset::Native(id) => self.assets.get(id).copied().unwrap_or(0),
        }
    }

    /// Add another value; `None` on overflow (a value that cannot exist on chain).
    pub fn checked_add(&self, other: &Value) -> Option<Value> {
        let mut out = self.clone();
        out.coin = out.coin.checked_add(other.coin)?;
        for (id, q) in &other.assets {
            let slot = out.assets.entry(id.clone()).or_insert(0);
            *slot = slot.checked_add(*q)?;
        }
        out.assets.retain(|_, q| *q != 0);
        Some(out)
    }

    /// Add one asset quantity; `None` on overflow.
    pub fn checked_add_asset(&mut self, id: AssetId, q: u64) -> Option<()> {
        if q == 0 {
            return Some(());
        }
        let slot = self.assets.entry(id).or_insert(0);
        *slot = slot.checked_add(q)?;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_never_split_characters() {
        let s = "é".repeat(100);
        assert!(s.parse::<TxId>().is_err());
        assert!(s.parse::<UtxoRef>().is_err());
        assert!(s.parse::<Asset>().is_err());
        // A unit whose 56th byte falls inside a character (found by the
        // schemathesis sweep of the devnet API).
        let unit = format!("{}é{}", "a".repeat(55), "b".repeat(10));
        assert!(AssetId::from_unit(&unit).is_err());
        assert!(AssetId::from_unit(&s).is_err());
        let mut t = "aé".repeat(10);
        truncate_chars(&mut t, 2);
        assert_eq!(t, "a");
    }
}
