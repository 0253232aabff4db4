//! Strict structural check of a signed Conway transaction, as the node decodes it.
//!
//! pallas' derived decoders skip the surplus elements of a fixed-shape record
//! (they are written for forward compatibility), and an indefinite-length
//! array is read up to its break whatever it holds. The Cardano node is
//! stricter: every record (`decodeRecordNamed`) must hold *exactly* its
//! element count, whether the array is definite (`0x84`) or indefinite
//! (`0x9f ... 0xff`). A transaction the facilitator accepts but the node
//! cannot decode would pass `/verify` and then fail at settle, so this module
//! walks the parts of the CDDL that a payment can use and enforces what the
//! node enforces:
//!
//! - the transaction is `[body, witnesses, is_valid, auxiliary_data]`, exactly 4;
//! - a transaction input is `[id(32 bytes), index]`, exactly 2, with the index
//!   below 2^16 (the ledger's `TxIx` is a `Word16`);
//! - an output is `[address, value]` or `[address, value, datum_hash]`, or a
//!   map with keys 0..=3 of which 0 and 1 are required; a value is a coin or
//!   `[coin, multiasset]`, exactly 2; a datum option is exactly 2; a script
//!   reference is tag 24 over bytes;
//! - a vkey witness is exactly 2 elements, a bootstrap witness exactly 4;
//! - Shelley-MA auxiliary data `[metadata, scripts]` is exactly 2;
//! - body and witness-set keys are those of the Conway CDDL; fields 0, 1 and 2
//!   are present; the sets the ledger requires non-empty when present
//!   (collateral, required signers, reference inputs, vkey and bootstrap
//!   witnesses) are non-empty; a set may carry tag 258, no other tag.
//!
//! Sets whose members repeat are *recorded*, not refused here: from protocol
//! version 9 the ledger refuses duplicates in the body's sets (spent,
//! collateral and reference inputs, required signers); the verify pipeline
//! reports them with its own reason code at its own step, and the devnet
//! ledger refuses them as the node does, at deserialisation. (Conway still
//! merges duplicate vkey and bootstrap witnesses silently; only the Dijkstra
//! era refuses them, so they are not flagged.)
//!
//! The walk runs after [`super::cbor::scan_single_item`] has bounded every
//! length and the nesting depth, so it cannot allocate without bound; it uses
//! an explicit decoder and recursion only along the fixed shapes above.

use std::collections::BTreeSet;

use pallas_codec::minicbor::{self, data::Type};
use smallvec::SmallVec;

use super::tx::TxDecodeError;

type D<'b> = minicbor::Decoder<'b>;

/// Body map keys of the Conway CDDL (6, the pre-Conway protocol update, is gone).
pub const BODY_KEYS: &[u64] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
];
/// Witness-set map keys of the Conway CDDL.
pub const WITNESS_KEYS: &[u64] = &[0, 1, 2, 3, 4, 5, 6, 7];

/// What the walk learned besides "the shape is right".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShapeFacts {
    /// Body sets that list a member twice (`inputs`, `collateral_inputs`,
    /// `reference_inputs`, `required_signers`), in body order.
    pub duplicate_sets: Vec<&'static str>,
    /// Per output, in order: the size the ledger charges for its reference
    /// script (see [`script_ref_size`]), if it carries one.
    pub script_ref_sizes: Vec<Option<u64>>,
    /// Byte ranges, in the input, of the body, the witness set, each output
    /// and the auxiliary data (when not null): what is hashed and measured.
    pub body_span: (usize, usize),
    pub witness_span: (usize, usize),
    pub output_spans: Vec<(usize, usize)>,
    pub aux_span: Option<(usize, usize)>,
}

fn err(what: impl Into<String>) -> TxDecodeError {
    TxDecodeError::Shape(what.into())
}

fn ty(d: &D<'_>, what: &str) -> Result<Type, TxDecodeError> {
    d.datatype().map_err(|e| err(format!("{what}: {e}")))
}

/// A fixed-shape record: an array (definite or indefinite) whose element count
/// must be one of `allowed`; `field(d, i)` decodes element `i`.
fn record<'b>(
    d: &mut D<'b>,
    what: &str,
    allowed: &[u64],
    mut field: impl FnMut(&mut D<'b>, u64) -> Result<(), TxDecodeError>,
) -> Result<u64, TxDecodeError> {
    let max = allowed.iter().copied().max().unwrap_or(0);
    let want = || {
        allowed
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let len = d
        .array()
        .map_err(|_| err(format!("{what} is not an array")))?;
    let count = match len {
        Some(n) => {
            if !allowed.contains(&n) {
                return Err(err(format!("{what} has {n} elements, expected {}", want())));
            }
            for i in 0..n {
                field(d, i)?;
            }
            n
        }
        None => {
            let mut i = 0u64;
            while ty(d, what)? != Type::Break {
                if i >= max {
                    return Err(err(format!(
                        "{what} (indefinite-length) has more than {max} elements, expected {}",
                        want()
                    )));
                }
                field(d, i)?;
                i += 1;
            }
            d.skip().map_err(|e| err(format!("{what}: {e}")))?;
            if !allowed.contains(&i) {
                return Err(err(format!(
                    "{what} (indefinite-length) has {i} elements, expected {}",
                    want()
                )));
            }
            i
        }
    };
    Ok(count)
}

/// A homogeneous array (definite or indefinite); returns its length.
fn list<'b>(
    d: &mut D<'b>,
    what: &str,
    mut elem: impl FnMut(&mut D<'b>) -> Result<(), TxDecodeError>,
) -> Result<u64, TxDecodeError> {
    let len = d
        .array()
        .map_err(|_| err(format!("{what} is not an array")))?;
    match len {
        Some(n) => {
            for _ in 0..n {
                elem(d)?;
            }
            Ok(n)
        }
        None => {
            let mut n = 0u64;
            while ty(d, what)? != Type::Break {
                elem(d)?;
                n += 1;
            }
            d.skip().map_err(|e| err(format!("{what}: {e}")))?;
            Ok(n)
        }
    }
}

/// A map (definite or indefinite); `entry(d)` decodes one key and its value.
fn map<'b>(
    d: &mut D<'b>,
    what: &str,
    mut entry: impl FnMut(&mut D<'b>) -> Result<(), TxDecodeError>,
) -> Result<u64, TxDecodeError> {
    let len = d.map().map_err(|_| err(format!("{what} is not a map")))?;
    match len {
        Some(n) => {
            for _ in 0..n {
                entry(d)?;
            }
            Ok(n)
        }
        None => {
            let mut n = 0u64;
            while ty(d, what)? != Type::Break {
                entry(d)?;
                n += 1;
            }
            d.skip().map_err(|e| err(format!("{what}: {e}")))?;
            Ok(n)
        }
    }
}

/// Set members [`set`] compares linearly before it builds a tree.
const SET_LINEAR: usize = 16;

/// A Conway set: an optional tag 258 over an array. Returns whether a member repeats.
fn set<'b, K: Ord>(
    d: &mut D<'b>,
    what: &str,
    non_empty: bool,
    mut elem: impl FnMut(&mut D<'b>) -> Result<K, TxDecodeError>,
) -> Result<bool, TxDecodeError> {
    if ty(d, what)? == Type::Tag {
        let tag = d.tag().map_err(|e| err(format!("{what}: {e}")))?;
        if u64::from(tag) != 258 {
            return Err(err(format!(
                "{what} carries tag {}, only the set tag 258 is allowed",
                u64::from(tag)
            )));
        }
    }
    // Members compared one by one while few (no allocation for an ordinary
    // transaction's sets), in a tree once there are more.
    let mut few: SmallVec<[K; SET_LINEAR]> = SmallVec::new();
    let mut many: Option<BTreeSet<K>> = None;
    let mut duplicate = false;
    let n = list(d, what, |d| {
        let member = elem(d)?;
        if let Some(tree) = many.as_mut() {
            duplicate |= !tree.insert(member);
        } else if few.contains(&member) {
            duplicate = true;
        } else if few.len() < SET_LINEAR {
            few.push(member);
        } else {
            let mut tree: BTreeSet<K> = few.drain(..).collect();
            tree.insert(member);
            many = Some(tree);
        }
        Ok(())
    })?;
    if non_empty && n == 0 {
        return Err(err(format!("{what} must be non-empty when present")));
    }
    Ok(duplicate)
}

fn uint(d: &mut D<'_>, what: &str) -> Result<u64, TxDecodeError> {
    d.u64()
        .map_err(|_| err(format!("{what} is not an unsigned integer")))
}

fn bytes<'b>(d: &mut D<'b>, what: &str) -> Result<&'b [u8], TxDecodeError> {
    d.bytes()
        .map_err(|_| err(format!("{what} is not a definite-length byte string")))
}

fn hash<'b>(d: &mut D<'b>, what: &str, len: usize) -> Result<&'b [u8], TxDecodeError> {
    let b = bytes(d, what)?;
    if b.len() != len {
        return Err(err(format!("{what} has {} bytes, expected {len}", b.len())));
    }
    Ok(b)
}

fn skip(d: &mut D<'_>, what: &str) -> Result<(), TxDecodeError> {
    d.skip().map_err(|e| err(format!("{what}: {e}")))
}

/// `[transaction_id, index]`, exactly 2; the index is a `Word16` in the ledger.
fn input(d: &mut D<'_>, what: &str) -> Result<([u8; 32], u64), TxDecodeError> {
    let mut id = [0u8; 32];
    let mut index = 0u64;
    record(d, what, &[2], |d, i| {
        match i {
            0 => id.copy_from_slice(hash(d, "transaction input id", 32)?),
            _ => {
                index = uint(d, "transaction input index")?;
                if index > u64::from(u16::MAX) {
                    return Err(err(format!(
                        "transaction input index {index} does not fit 16 bits"
                    )));
                }
            }
        }
        Ok(())
    })?;
    Ok((id, index))
}

/// `coin / [coin, multiasset<positive_coin>]`.
fn value(d: &mut D<'_>) -> Result<(), TxDecodeError> {
    match ty(d, "output value")? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            uint(d, "output coin")?;
            Ok(())
        }
        _ => {
            record(d, "output value", &[2], |d, i| {
                if i == 0 {
                    uint(d, "output coin")?;
                    return Ok(());
                }
                map(d, "multiasset", |d| {
                    hash(d, "policy id", 28)?;
                    map(d, "asset map", |d| {
                        let name = bytes(d, "asset name")?;
                        if name.len() > 32 {
                            return Err(err(format!(
                                "asset name of {} bytes (max 32)",
                                name.len()
                            )));
                        }
                        uint(d, "asset quantity")?;
                        Ok(())
                    })?;
                    Ok(())
                })?;
                Ok(())
            })?;
            Ok(())
        }
    }
}

/// `[0, datum_hash] / [1, #6.24(bytes)]`, exactly 2.
fn datum_option(d: &mut D<'_>) -> Result<(), TxDecodeError> {
    let mut kind = 0;
    record(d, "datum option", &[2], |d, i| {
        if i == 0 {
            kind = uint(d, "datum option kind")?;
            if kind > 1 {
                return Err(err(format!("datum option kind {kind}")));
            }
            return Ok(());
        }
        if kind == 0 {
            hash(d, "datum hash", 32)?;
        } else {
            tag24(d, "inline datum")?;
        }
        Ok(())
    })?;
    Ok(())
}

fn tag24<'b>(d: &mut D<'b>, what: &str) -> Result<&'b [u8], TxDecodeError> {
    let t = d.tag().map_err(|_| err(format!("{what} is not tag 24")))?;
    if u64::from(t) != 24 {
        return Err(err(format!("{what} carries tag {}, not 24", u64::from(t))));
    }
    bytes(d, what)
}

/// The size the Conway fee rule charges for a reference script: the script's
/// original bytes (the Plutus program's flat bytes, or a native script's CBOR).
/// `script = [0, native_script] / [1..3, bytes]`, exactly 2.
pub fn script_ref_size(script_cbor: &[u8]) -> Result<u64, TxDecodeError> {
    let mut d = minicbor::Decoder::new(script_cbor);
    let mut kind = 0;
    let mut size = 0u64;
    record(&mut d, "reference script", &[2], |d, i| {
        if i == 0 {
            kind = uint(d, "script kind")?;
            if kind > 3 {
                return Err(err(format!("script kind {kind}")));
            }
            return Ok(());
        }
        if kind == 0 {
            let start = d.position();
            skip(d, "native script")?;
            size = (d.position() - start) as u64;
        } else {
            size = bytes(d, "plutus script")?.len() as u64;
        }
        Ok(())
    })?;
    if d.position() != script_cbor.len() {
        return Err(err("bytes after the reference script"));
    }
    Ok(size)
}

/// One output; returns the size of its reference script, if any.
fn output(d: &mut D<'_>) -> Result<Option<u64>, TxDecodeError> {
    match ty(d, "output")? {
        Type::Array | Type::ArrayIndef => {
            record(d, "legacy output", &[2, 3], |d, i| match i {
                0 => bytes(d, "output address").map(|_| ()),
                1 => value(d),
                _ => hash(d, "output datum hash", 32).map(|_| ()),
            })?;
            Ok(None)
        }
        Type::Map | Type::MapIndef => {
            // Keys seen, one bit each (only 0 to 3 get past the match).
            let mut keys = 0u8;
            let mut script = None;
            map(d, "output", |d| {
                let k = uint(d, "output key")?;
                if k < 4 {
                    keys |= 1 << k;
                }
                match k {
                    0 => bytes(d, "output address").map(|_| ()),
                    1 => value(d),
                    2 => datum_option(d),
                    3 => {
                        let inner = tag24(d, "script reference")?;
                        script = Some(script_ref_size(inner)?);
                        Ok(())
                    }
                    other => Err(err(format!("output has an unknown key {other}"))),
                }
            })?;
            if keys & 0b11 != 0b11 {
                return Err(err("output lacks its address (0) or value (1)"));
            }
            Ok(script)
        }
        other => Err(err(format!("output is a {other}, not an array or map"))),
    }
}

fn body(d: &mut D<'_>, facts: &mut ShapeFacts) -> Result<(), TxDecodeError> {
    // Keys seen, one bit each (every key in BODY_KEYS is below 64).
    let mut keys = 0u64;
    map(d, "transaction body", |d| {
        let k = d
            .u64()
            .map_err(|_| err("transaction body has a non-integer key"))?;
        if !BODY_KEYS.contains(&k) {
            return Err(TxDecodeError::UnknownBodyField(k));
        }
        keys |= 1 << k;
        let dup = |facts: &mut ShapeFacts, yes: bool, name| {
            if yes {
                facts.duplicate_sets.push(name);
            }
        };
        match k {
            0 => {
                let r = set(d, "inputs", false, |d| input(d, "transaction input"))?;
                dup(facts, r, "inputs");
            }
            13 => {
                let r = set(d, "collateral inputs", true, |d| {
                    input(d, "collateral input")
                })?;
                dup(facts, r, "collateral_inputs");
            }
            18 => {
                let r = set(d, "reference inputs", true, |d| input(d, "reference input"))?;
                dup(facts, r, "reference_inputs");
            }
            14 => {
                let r = set(d, "required signers", true, |d| {
                    hash(d, "required signer", 28)
                })?;
                dup(facts, r, "required_signers");
            }
            1 => {
                let (mut sizes, mut spans) = (Vec::new(), Vec::new());
                list(d, "outputs", |d| {
                    let start = d.position();
                    sizes.push(output(d)?);
                    spans.push((start, d.position()));
                    Ok(())
                })?;
                facts.script_ref_sizes = sizes;
                facts.output_spans = spans;
            }
            16 => {
                output(d)?;
            }
            2 | 3 | 8 | 17 => {
                uint(d, "transaction body integer field")?;
            }
            7 | 11 => {
                hash(d, "transaction body hash field", 32)?;
            }
            15 => {
                let n = uint(d, "network id")?;
                if n > 1 {
                    return Err(err(format!("network id {n} (0 or 1)")));
                }
            }
            // Certificates, withdrawals, mint, votes, proposals, treasury and
            // donation: this facilitator refuses them as unsupported features.
            _ => skip(d, "transaction body field")?,
        }
        Ok(())
    })?;
    for (k, name) in [(0, "inputs"), (1, "outputs"), (2, "fee")] {
        if keys & (1 << k) == 0 {
            return Err(err(format!("transaction body lacks field {k} ({name})")));
        }
    }
    Ok(())
}

fn witnesses(d: &mut D<'_>) -> Result<(), TxDecodeError> {
    map(d, "witness set", |d| {
        let k = d
            .u64()
            .map_err(|_| err("witness set has a non-integer key"))?;
        if !WITNESS_KEYS.contains(&k) {
            return Err(TxDecodeError::UnknownWitnessField(k));
        }
        match k {
            0 => {
                // Whether a witness repeats does not matter here: members
                // are compared by their encoding, without copying them.
                set(d, "vkey witnesses", true, |d| {
                    let start = d.position();
                    record(d, "vkey witness", &[2], |d, _| {
                        bytes(d, "vkey witness field").map(|_| ())
                    })?;
                    Ok(d.input().get(start..d.position()))
                })?;
            }
            2 => {
                set(d, "bootstrap witnesses", true, |d| {
                    let start = d.position();
                    record(d, "bootstrap witness", &[4], |d, _| {
                        bytes(d, "bootstrap witness field").map(|_| ())
                    })?;
                    Ok(d.input().get(start..d.position()))
                })?;
            }
            // Scripts, datums, redeemers: refused as unsupported features.
            _ => skip(d, "witness set field")?,
        }
        Ok(())
    })?;
    Ok(())
}

fn auxiliary_data(d: &mut D<'_>) -> Result<(), TxDecodeError> {
    match ty(d, "auxiliary data")? {
        Type::Null => skip(d, "auxiliary data"),
        Type::Map | Type::MapIndef => skip(d, "metadata"),
        Type::Array | Type::ArrayIndef => {
            record(d, "Shelley-MA auxiliary data", &[2], |d, i| {
                if i == 0 {
                    if !matches!(ty(d, "metadata")?, Type::Map | Type::MapIndef) {
                        return Err(err("auxiliary metadata is not a map"));
                    }
                    skip(d, "metadata")
                } else {
                    list(d, "auxiliary scripts", |d| skip(d, "auxiliary script")).map(|_| ())
                }
            })?;
            Ok(())
        }
        Type::Tag => {
            let t = d.tag().map_err(|e| err(e.to_string()))?;
            if u64::from(t) != 259 {
                return Err(err(format!(
                    "auxiliary data carries tag {}, not 259",
                    u64::from(t)
                )));
            }
            if !matches!(ty(d, "auxiliary data")?, Type::Map | Type::MapIndef) {
                return Err(err("Alonzo auxiliary data is not a map"));
            }
            skip(d, "auxiliary data")
        }
        other => Err(err(format!("auxiliary data is a {other}"))),
    }
}

/// Walk a whole transaction (already proven to be one well-formed CBOR item).
pub fn check(bytes: &[u8]) -> Result<ShapeFacts, TxDecodeError> {
    let mut d = minicbor::Decoder::new(bytes);
    let mut facts = ShapeFacts::default();
    record(&mut d, "transaction", &[4], |d, i| {
        let start = d.position();
        match i {
            0 => {
                body(d, &mut facts)?;
                facts.body_span = (start, d.position());
            }
            1 => {
                witnesses(d)?;
                facts.witness_span = (start, d.position());
            }
            2 => {
                d.bool().map_err(|_| err("is_valid is not a boolean"))?;
            }
            _ => {
                let null = ty(d, "auxiliary data")? == Type::Null;
                auxiliary_data(d)?;
                if !null {
                    facts.aux_span = Some((start, d.position()));
                }
            }
        }
        Ok(())
    })?;
    if d.position() != bytes.len() {
        return Err(err("bytes after the transaction"));
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(hex_s: &str) -> Result<ShapeFacts, TxDecodeError> {
        check(&hex::decode(hex_s.replace(' ', "")).unwrap())
    }

    /// `{0: [[h32, 0]], 1: [], 2: 0}` with the input array spelled `inputs`.
    fn body_with_inputs(inputs: &str) -> String {
        format!("a300{inputs}018002 00").replace(' ', "")
    }

    fn input_hex(byte: u8, ix: u8) -> String {
        format!("825820{}{:02x}", hex::encode([byte; 32]), ix)
    }

    #[test]
    fn transaction_record_is_exactly_four_in_any_encoding() {
        let body = body_with_inputs(&format!("81{}", input_hex(1, 0)));
        assert!(shape(&format!("84{body}a0f5f6")).is_ok());
        assert!(shape(&format!("9f{body}a0f5f6ff")).is_ok());
        assert!(shape(&format!("9f{body}a0f5f600ff")).is_err());
        assert!(shape(&format!("9f{body}a0f5ff")).is_err());
        assert!(shape(&format!("85{body}a0f5f600")).is_err());
    }

    #[test]
    fn inputs_are_records_of_two_and_16_bit_indices() {
        let ok = format!("81{}", input_hex(1, 0));
        assert!(shape(&format!("84{}a0f5f6", body_with_inputs(&ok))).is_ok());
        let three = format!("81835820{}0000", hex::encode([1; 32]));
        assert!(shape(&format!("84{}a0f5f6", body_with_inputs(&three))).is_err());
        let indef_three = format!("819f5820{}0000ff", hex::encode([1; 32]));
        assert!(shape(&format!("84{}a0f5f6", body_with_inputs(&indef_three))).is_err());
        let indef_two = format!("819f5820{}00ff", hex::encode([1; 32]));
        assert!(shape(&format!("84{}a0f5f6", body_with_inputs(&indef_two))).is_ok());
        let big_index = format!("81825820{}1a00010000", hex::encode([1; 32]));
        assert!(shape(&format!("84{}a0f5f6", body_with_inputs(&big_index))).is_err());
        let tagged = format!("d9010281{}", input_hex(1, 0));
        assert!(shape(&format!("84{}a0f5f6", body_with_inputs(&tagged))).is_ok());
        let other_tag = format!("d9010381{}", input_hex(1, 0));
        assert!(shape(&format!("84{}a0f5f6", body_with_inputs(&other_tag))).is_err());
    }

    #[test]
    fn duplicate_inputs_are_recorded_not_refused() {
        let twice = format!("82{}{}", input_hex(1, 0), input_hex(1, 0));
        let facts = shape(&format!("84{}a0f5f6", body_with_inputs(&twice))).unwrap();
        assert_eq!(facts.duplicate_sets, vec!["inputs"]);
        let distinct = format!("82{}{}", input_hex(1, 0), input_hex(1, 1));
        let facts = shape(&format!("84{}a0f5f6", body_with_inputs(&distinct))).unwrap();
        assert!(facts.duplicate_sets.is_empty());
    }

    #[test]
    fn witnesses_and_required_fields() {
        let body = body_with_inputs(&format!("81{}", input_hex(1, 0)));
        let wit = |inner: &str| format!("84{body}{inner}f5f6");
        let vk = format!("5820{}5840{}", hex::encode([2; 32]), hex::encode([3; 64]));
        assert!(shape(&wit(&format!("a10081 82{vk}").replace(' ', ""))).is_ok());
        assert!(shape(&wit(&format!("a100819f{vk}ff"))).is_ok());
        assert!(shape(&wit(&format!("a100819f{vk}00ff"))).is_err());
        assert!(shape(&wit(&format!("a1008183{vk}00"))).is_err());
        assert!(shape(&wit("a10080")).is_err(), "empty vkey set");
        // body lacking its fee
        assert!(shape(&format!("84a20081{}0180a0f5f6", input_hex(1, 0))).is_err());
    }

    #[test]
    fn outputs_values_and_auxiliary_data() {
        let addr = format!("581d60{}", hex::encode([4; 28]));
        let body_out = |out: &str| format!("84a30081{}0181{out}0200a0f5f6", input_hex(1, 0));
        assert!(shape(&body_out(&format!("82{addr}01"))).is_ok());
        assert!(shape(&body_out(&format!("9f{addr}01ff"))).is_ok());
        assert!(shape(&body_out(&format!("84{addr}0100 00"))).is_err());
        assert!(
            shape(&body_out(
                &format!("9f{addr}01 5820{} 00ff", hex::encode([0; 32])).replace(' ', "")
            ))
            .is_err()
        );
        assert!(
            shape(&body_out(
                &format!("a2 00{addr} 01 83 01a000").replace(' ', "")
            ))
            .is_err()
        );
        assert!(
            shape(&body_out(
                &format!("a2 00{addr} 01 9f01a0ff").replace(' ', "")
            ))
            .is_ok()
        );
        assert!(shape(&body_out(&format!("a1 00{addr}").replace(' ', ""))).is_err());
        assert!(
            shape(&body_out(
                &format!("a3 00{addr} 0101 04 00").replace(' ', "")
            ))
            .is_err()
        );
        let body = body_with_inputs(&format!("81{}", input_hex(1, 0)));
        assert!(shape(&format!("84{body}a0f5 82a080")).is_ok());
        assert!(shape(&format!("84{body}a0f5 83a08000").replace(' ', "")).is_err());
        assert!(shape(&format!("84{body}a0f5 d90103a0").replace(' ', "")).is_ok());
    }

    #[test]
    fn reference_script_sizes() {
        // Plutus V2 script of 5 bytes: [2, h'0102030405']
        assert_eq!(
            script_ref_size(&hex::decode("82024501 02030405".replace(' ', "")).unwrap()),
            Ok(5)
        );
        // native script [0, [0, h28]] measured as its CBOR (1 + 1 + 2 + 28 = 32... )
        let native = format!("8200 8200581c{}", hex::encode([5; 28])).replace(' ', "");
        assert_eq!(script_ref_size(&hex::decode(native).unwrap()), Ok(32));
        assert!(script_ref_size(&hex::decode("830245010203040500").unwrap()).is_err());
        assert!(script_ref_size(&hex::decode("9f02450102030405ff").unwrap()) == Ok(5));
    }
}
