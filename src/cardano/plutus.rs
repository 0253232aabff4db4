//! Plutus data and Untyped Plutus Core (UPLC) parameter application.
//!
//! All on untrusted bytes, none of which may panic:
//!
//! * [`PlutusData`]: the ledger's `Data` type, [`PlutusData::encode`]d exactly the way Aiken and the
//!   Haskell ledger do (the hash of a parameterised script depends on every byte), and a strict,
//!   bounded [`decode`] that accepts only what the ledger's own `Data` decoder accepts.
//! * [`apply_params`]: wrap a compiled validator in `Apply(…, Constant(Data))` once per parameter,
//!   in order, and return the applied program in the single-CBOR-wrapped blueprint form.
//! * [`script_hash`]: `blake2b-224(language tag ‖ single-wrapped program)`.
//! * [`output_datum`]: the datum (none, hash, inline bytes verbatim) of a transaction output.
//!
//! ## Why no UPLC crate
//! The `uplc` crate (aiken-lang, 1.1.24) was evaluated and not taken:
//! * its flat decoder is recursive without a depth bound (`Term::decode` calls itself per `Delay`,
//!   `Lambda`, `Apply`…), so a 64 KiB program of nested `Delay`s (≈131k levels) overflows the
//!   stack, which aborts the process; `script.code` arrives in request data;
//! * it pulls 40 crates we do not have, among them a second pallas tree (0.35, whose `PlutusData`
//!   is a different type from our pallas 1.4 one) and two C builds (`blst`, `secp256k1-sys`) for
//!   a CEK machine we never run. Measured (`cargo build -p uplc --timings` on the shared
//!   target, dev profile, 2 cores at load 10): the units only `uplc` needs took 480 s of
//!   compile time, led by pallas-traverse 0.35 (75 s), minicbor-derive (51 s), uplc (50 s) and
//!   pallas-primitives 0.35 (45 s);
//! * pallas-codec's own `flat` primitives index the buffer unchecked and shift past 64 bits on long
//!   naturals, so they are not fit for hostile input either.
//!
//! So this module carries a small flat *copier*: it walks the program with an explicit stack (no
//! recursion on the term tree), copies every term bit for bit, re-aligns only byte-string fillers
//! (their padding depends on the bit offset, which the prepended `Apply` tags shift), and appends
//! the Data constants. Nothing is interpreted, so the result is byte-identical to decoding, applying
//! and re-encoding with Aiken for any canonically encoded input.

use num_bigint::Sign;
use pallas_crypto::hash::Hasher;

pub use num_bigint::BigInt;

/// Largest program [`apply_params`] accepts, after unwrapping (the spec caps `script.code` at 64 KiB).
pub const MAX_PROGRAM_BYTES: usize = 64 * 1024;

/// Byte strings inside `Data` are split into chunks of this many bytes (ledger rule).
const DATA_CHUNK: usize = 64;

/// Plutus `Data`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PlutusData {
    /// `Constr tag fields`.
    Constr {
        tag: u64,
        fields: Vec<PlutusData>,
    },
    /// Key/value pairs in their order (duplicates and order are significant on chain).
    Map(Vec<(PlutusData, PlutusData)>),
    List(Vec<PlutusData>),
    /// An integer of any size.
    Int(BigInt),
    Bytes(Vec<u8>),
}

/// Plutus language version of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlutusVersion {
    V1,
    V2,
    V3,
}

impl PlutusVersion {
    /// The ledger's language tag, prefixed to the script bytes before hashing.
    pub fn language_tag(self) -> u8 {
        match self {
            PlutusVersion::V1 => 1,
            PlutusVersion::V2 => 2,
            PlutusVersion::V3 => 3,
        }
    }

    /// The x402 `script.type` spelling: `plutusV1`, `plutusV2`, `plutusV3`.
    pub fn from_x402(s: &str) -> Option<Self> {
        match s {
            "plutusV1" => Some(PlutusVersion::V1),
            "plutusV2" => Some(PlutusVersion::V2),
            "plutusV3" => Some(PlutusVersion::V3),
            _ => None,
        }
    }

    pub fn as_x402(self) -> &'static str {
        match self {
            PlutusVersion::V1 => "plutusV1",
            PlutusVersion::V2 => "plutusV2",
            PlutusVersion::V3 => "plutusV3",
        }
    }
}

/// Why Data or a program was refused. `at` is a byte offset into the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlutusError {
    #[error("Data CBOR truncated at byte {at}")]
    Truncated { at: usize },
    #[error("Data CBOR not accepted at byte {at}: {what}")]
    BadData { at: usize, what: &'static str },
    #[error("Data nested deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("Data has more than {limit} items")]
    TooManyItems { limit: usize },
    #[error("input of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("{count} bytes follow the Data item")]
    TrailingBytes { count: usize },
    #[error("program not accepted at bit {bit}: {what}")]
    BadProgram { bit: usize, what: &'static str },
}

// ---------------------------------------------------------------------------------------------
// Data: construction and encoding
// ---------------------------------------------------------------------------------------------

impl PlutusData {
    pub fn int(i: i64) -> Self {
        PlutusData::Int(BigInt::from(i))
    }

    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        PlutusData::Bytes(b.into())
    }

    pub fn constr(tag: u64, fields: Vec<PlutusData>) -> Self {
        PlutusData::Constr { tag, fields }
    }

    /// Plutus booleans: `Constr 1 []` is true, `Constr 0 []` is false.
    pub fn bool(b: bool) -> Self {
        PlutusData::Constr {
            tag: u64::from(b),
            fields: Vec::new(),
        }
    }

    /// CBOR as Aiken and the Haskell ledger write it:
    /// * non-empty lists and constructor fields indefinite (`9f … ff`), empty ones `80`;
    /// * maps definite;
    /// * constructor tags 121–127 for 0–6, 1280+(i−7) for 7–127, otherwise tag 102 `[i, fields]`;
    /// * byte strings over 64 bytes as an indefinite string of 64-byte chunks;
    /// * integers in `[-2^64, 2^64-1]` as major types 0/1, beyond as tag 2/3 bignums.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            PlutusData::Constr { tag, fields } => {
                match *tag {
                    t @ 0..=6 => head(out, 6, 121 + t),
                    t @ 7..=127 => head(out, 6, 1280 + t - 7),
                    t => {
                        head(out, 6, 102);
                        head(out, 4, 2);
                        head(out, 0, t);
                    }
                }
                encode_list(out, fields);
            }
            PlutusData::Map(pairs) => {
                head(out, 5, pairs.len() as u64);
                for (k, v) in pairs {
                    k.encode_into(out);
                    v.encode_into(out);
                }
            }
            PlutusData::List(items) => encode_list(out, items),
            PlutusData::Int(n) => encode_int(out, n),
            PlutusData::Bytes(b) => encode_bytes(out, b),
        }
    }
}

fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= u64::from(u8::MAX) {
        out.push(m | 24);
        out.push(arg as u8);
    } else if arg <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

fn encode_list(out: &mut Vec<u8>, items: &[PlutusData]) {
    if items.is_empty() {
        out.push(0x80);
        return;
    }
    out.push(0x9f);
    for item in items {
        item.encode_into(out);
    }
    out.push(0xff);
}

fn encode_bytes(out: &mut Vec<u8>, b: &[u8]) {
    if b.len() <= DATA_CHUNK {
        head(out, 2, b.len() as u64);
        out.extend_from_slice(b);
        return;
    }
    out.push(0x5f);
    for chunk in b.chunks(DATA_CHUNK) {
        head(out, 2, chunk.len() as u64);
        out.extend_from_slice(chunk);
    }
    out.push(0xff);
}

fn encode_int(out: &mut Vec<u8>, n: &BigInt) {
    if n.sign() == Sign::Minus {
        // CBOR negative integers carry -1 - n.
        let m = -(n + 1u8);
        match u64::try_from(&m) {
            Ok(v) => head(out, 1, v),
            Err(_) => {
                head(out, 6, 3);
                encode_bytes(out, &m.to_bytes_be().1);
            }
        }
    } else {
        match u64::try_from(n) {
            Ok(v) => head(out, 0, v),
            Err(_) => {
                head(out, 6, 2);
                encode_bytes(out, &n.to_bytes_be().1);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data: strict decoding
// ---------------------------------------------------------------------------------------------

/// Bounds for [`decode_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Longest accepted input in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of lists, maps and constructors (a scalar at the top is depth 0).
    pub max_depth: usize,
    /// Most Data items (every scalar, list, map and constructor counts one).
    pub max_items: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 64 * 1024,
            max_depth: 64,
            max_items: 16 * 1024,
        }
    }
}

/// Decode one Data item filling all of `bytes`, with [`DecodeLimits::default`].
pub fn decode(bytes: &[u8]) -> Result<PlutusData, PlutusError> {
    decode_with(bytes, DecodeLimits::default())
}

/// Decode one Data item filling all of `bytes`.
///
/// Accepted is what the ledger's `Data` decoder accepts: definite and indefinite lists, maps and
/// byte strings; byte strings (and their chunks) of at most 64 bytes; integers as major types 0/1
/// or tag 2/3 bignums; constructors as tags 121–127, 1280–1400 or 102 `[uint64, list]`. Anything
/// else (text, floats, simple values, other tags) is refused.
pub fn decode_with(bytes: &[u8], limits: DecodeLimits) -> Result<PlutusData, PlutusError> {
    if bytes.len() > limits.max_bytes {
        return Err(PlutusError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let mut r = CborReader {
        buf: bytes,
        pos: 0,
        items: 0,
        limits,
    };
    let data = r.data(0)?;
    if r.pos != bytes.len() {
        return Err(PlutusError::TrailingBytes {
            count: bytes.len() - r.pos,
        });
    }
    Ok(data)
}

/// A CBOR head: major type and argument, or `None` for indefinite length.
struct Head {
    major: u8,
    arg: Option<u64>,
    at: usize,
}

struct CborReader<'a> {
    buf: &'a [u8],
    pos: usize,
    items: usize,
    limits: DecodeLimits,
}

impl CborReader<'_> {
    fn byte(&mut self) -> Result<u8, PlutusError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(PlutusError::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], PlutusError> {
        let remaining = self.buf.len() - self.pos;
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= remaining)
            .ok_or(PlutusError::Truncated { at: self.buf.len() })?;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn peek_break(&mut self) -> Result<bool, PlutusError> {
        match self.buf.get(self.pos) {
            Some(0xff) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(PlutusError::Truncated { at: self.pos }),
        }
    }

    fn head(&mut self) -> Result<Head, PlutusError> {
        let at = self.pos;
        let b = self.byte()?;
        let major = b >> 5;
        let info = b & 0x1f;
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.byte()?)),
            25 => Some(u64::from(u16::from_be_bytes(self.array()?))),
            26 => Some(u64::from(u32::from_be_bytes(self.array()?))),
            27 => Some(u64::from_be_bytes(self.array()?)),
            31 if matches!(major, 2 | 4 | 5) => None,
            _ => {
                return Err(PlutusError::BadData {
                    at,
                    what: "reserved or misplaced additional information",
                });
            }
        };
        Ok(Head { major, arg, at })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PlutusError> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn count_item(&mut self) -> Result<(), PlutusError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(PlutusError::TooManyItems {
                limit: self.limits.max_items,
            });
        }
        Ok(())
    }

    fn data(&mut self, depth: usize) -> Result<PlutusData, PlutusError> {
        if depth > self.limits.max_depth {
            return Err(PlutusError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        self.count_item()?;
        let h = self.head()?;
        match h.major {
            0 => Ok(PlutusData::Int(BigInt::from(h.arg.unwrap_or(0)))),
            1 => Ok(PlutusData::Int(-BigInt::from(h.arg.unwrap_or(0)) - 1)),
            2 => Ok(PlutusData::Bytes(self.bytes_after(&h)?)),
            4 => Ok(PlutusData::List(self.list_after(&h, depth)?)),
            5 => {
                let mut pairs = Vec::new();
                match h.arg {
                    Some(n) => {
                        for _ in 0..n {
                            let k = self.data(depth + 1)?;
                            let v = self.data(depth + 1)?;
                            pairs.push((k, v));
                        }
                    }
                    None => {
                        while !self.peek_break()? {
                            let k = self.data(depth + 1)?;
                            let v = self.data(depth + 1)?;
                            pairs.push((k, v));
                        }
                    }
                }
                Ok(PlutusData::Map(pairs))
            }
            6 => self.tagged(h.arg.unwrap_or(0), h.at, depth),
            _ => Err(PlutusError::BadData {
                at: h.at,
                what: "not a Data item (text, float or simple value)",
            }),
        }
    }

    fn tagged(&mut self, tag: u64, at: usize, depth: usize) -> Result<PlutusData, PlutusError> {
        match tag {
            121..=127 | 1280..=1400 => {
                let index = if tag <= 127 {
                    tag - 121
                } else {
                    tag - 1280 + 7
                };
                let fields = self.list(depth)?;
                Ok(PlutusData::Constr { tag: index, fields })
            }
            102 => {
                let h = self.head()?;
                if h.major != 4 || !matches!(h.arg, Some(2) | None) {
                    return Err(PlutusError::BadData {
                        at: h.at,
                        what: "tag 102 needs a two-element array",
                    });
                }
                let ih = self.head()?;
                let index = match (ih.major, ih.arg) {
                    (0, Some(i)) => i,
                    _ => {
                        return Err(PlutusError::BadData {
                            at: ih.at,
                            what: "constructor index must be an unsigned integer",
                        });
                    }
                };
                let fields = self.list(depth)?;
                if h.arg.is_none() && !self.peek_break()? {
                    return Err(PlutusError::BadData {
                        at: self.pos,
                        what: "tag 102 array has more than two elements",
                    });
                }
                Ok(PlutusData::Constr { tag: index, fields })
            }
            // cborg reads bignums only from the one-byte heads c2 and c3
            2 | 3 if self.pos == at + 1 => {
                let bh = self.head()?;
                if bh.major != 2 {
                    return Err(PlutusError::BadData {
                        at: bh.at,
                        what: "bignum needs a byte string",
                    });
                }
                let magnitude = BigInt::from_bytes_be(Sign::Plus, &self.bytes_after(&bh)?);
                Ok(PlutusData::Int(if tag == 2 {
                    magnitude
                } else {
                    -magnitude - 1
                }))
            }
            _ => Err(PlutusError::BadData {
                at,
                what: "tag not allowed in Data",
            }),
        }
    }

    /// A list (definite or indefinite), as constructor fields are.
    fn list(&mut self, depth: usize) -> Result<Vec<PlutusData>, PlutusError> {
        let h = self.head()?;
        if h.major != 4 {
            return Err(PlutusError::BadData {
                at: h.at,
                what: "constructor fields must be a list",
            });
        }
        self.list_after(&h, depth)
    }

    fn list_after(&mut self, h: &Head, depth: usize) -> Result<Vec<PlutusData>, PlutusError> {
        let mut items = Vec::new();
        match h.arg {
            Some(n) => {
                for _ in 0..n {
                    items.push(self.data(depth + 1)?);
                }
            }
            None => {
                while !self.peek_break()? {
                    items.push(self.data(depth + 1)?);
                }
            }
        }
        Ok(items)
    }

    /// The content of a byte string whose head was just read; every (chunk) length ≤ 64.
    fn bytes_after(&mut self, h: &Head) -> Result<Vec<u8>, PlutusError> {
        let chunk = |r: &mut Self, len: u64, at: usize| -> Result<Vec<u8>, PlutusError> {
            if len > DATA_CHUNK as u64 {
                return Err(PlutusError::BadData {
                    at,
                    what: "byte string (chunk) longer than 64 bytes",
                });
            }
            Ok(r.take(len)?.to_vec())
        };
        match h.arg {
            Some(len) => chunk(self, len, h.at),
            None => {
                let mut out = Vec::new();
                while !self.peek_break()? {
                    let ch = self.head()?;
                    match (ch.major, ch.arg) {
                        (2, Some(len)) => out.extend(chunk(self, len, ch.at)?),
                        _ => {
                            return Err(PlutusError::BadData {
                                at: ch.at,
                                what: "indefinite byte string chunk must be a definite byte string",
                            });
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Datums on transaction outputs
// ---------------------------------------------------------------------------------------------

/// The datum a transaction output carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputDatum {
    None,
    /// A datum hash (legacy or post-Alonzo option 0).
    Hash([u8; 32]),
    /// An inline datum: its CBOR exactly as the transaction carries it.
    Inline(Vec<u8>),
}

/// Read the datum of one output from its raw CBOR (as [`crate::cardano::TxOut::raw_cbor`] keeps
/// it). The bytes of an inline datum are returned verbatim, never re-encoded.
pub fn output_datum(raw_output: &[u8]) -> Result<OutputDatum, PlutusError> {
    use pallas_primitives::conway::DatumOption;
    use pallas_traverse::{Era, MultiEraOutput};
    let out =
        MultiEraOutput::decode(Era::Conway, raw_output).map_err(|_| PlutusError::BadData {
            at: 0,
            what: "not a Conway transaction output",
        })?;
    Ok(match out.datum() {
        Some(DatumOption::Hash(h)) => OutputDatum::Hash(*h),
        Some(DatumOption::Data(d)) => OutputDatum::Inline(d.0.raw_cbor().to_vec()),
        None => OutputDatum::None,
    })
}

// ---------------------------------------------------------------------------------------------
// UPLC: parameter application and hashing
// ---------------------------------------------------------------------------------------------

/// Apply `params` to a compiled program, in order: the result is
/// `Apply(…Apply(Apply(body, p1), p2)…, pn)` with every `pi` a `Constant(Data)`.
///
/// `code` may be the raw flat program or wrapped once or twice in a CBOR byte string. The answer
/// is wrapped exactly once (the blueprint `compiledCode` form, which [`script_hash`] hashes).
/// With no parameters this canonicalises the wrapping (and byte-string fillers) only.
pub fn apply_params(code: &[u8], params: &[PlutusData]) -> Result<Vec<u8>, PlutusError> {
    let flat = unwrap_program(code)?;
    if flat.len() > MAX_PROGRAM_BYTES {
        return Err(PlutusError::TooLarge {
            len: flat.len(),
            limit: MAX_PROGRAM_BYTES,
        });
    }
    let mut r = BitReader::new(flat);
    let mut w = BitWriter::with_capacity(flat.len() + params.len() * 64 + 8);
    // version: three naturals
    for _ in 0..3 {
        copy_natural(&mut r, &mut w)?;
    }
    for _ in params {
        w.bits(4, TERM_APPLY);
    }
    copy_term(&mut r, &mut w)?;
    r.filler()?;
    if !r.at_end() {
        return Err(r.err("bytes after the program's final filler"));
    }
    for p in params {
        w.bits(4, TERM_CONSTANT);
        // type list [data]: cons bit, tag 8, nil bit
        w.bit(true);
        w.bits(4, TYPE_DATA);
        w.bit(false);
        w.bytestring(&p.encode());
    }
    w.filler();
    let body = w.finish();
    let mut out = Vec::with_capacity(body.len() + 5);
    head(&mut out, 2, body.len() as u64);
    out.extend_from_slice(&body);
    Ok(out)
}

/// `blake2b-224(language tag ‖ single_wrapped_cbor)`: the script hash the ledger puts in a script
/// credential. `single_wrapped_cbor` is the blueprint `compiledCode` form (as [`apply_params`]
/// returns it).
pub fn script_hash(version: PlutusVersion, single_wrapped_cbor: &[u8]) -> [u8; 28] {
    *Hasher::<224>::hash_tagged(single_wrapped_cbor, version.language_tag())
}

/// Strip zero, one or two CBOR byte-string wrappers. A flat program begins with its version
/// (`01 …`), never with a byte-string head, so the two cannot be confused.
fn unwrap_program(code: &[u8]) -> Result<&[u8], PlutusError> {
    let mut inner = code;
    for _ in 0..2 {
        match unwrap_bstr(inner) {
            Some(next) => inner = next,
            None => break,
        }
    }
    if unwrap_bstr(inner).is_some() {
        return Err(PlutusError::BadProgram {
            bit: 0,
            what: "wrapped in more than two CBOR byte strings",
        });
    }
    Ok(inner)
}

/// The content of `b` if `b` is exactly one definite CBOR byte string.
fn unwrap_bstr(b: &[u8]) -> Option<&[u8]> {
    let first = *b.first()?;
    if first >> 5 != 2 {
        return None;
    }
    let (len, start) = match first & 0x1f {
        n @ 0..=23 => (u64::from(n), 1),
        24 => (u64::from(*b.get(1)?), 2),
        25 => (
            u64::from(u16::from_be_bytes(b.get(1..3)?.try_into().ok()?)),
            3,
        ),
        26 => (
            u64::from(u32::from_be_bytes(b.get(1..5)?.try_into().ok()?)),
            5,
        ),
        27 => (u64::from_be_bytes(b.get(1..9)?.try_into().ok()?), 9),
        _ => return None,
    };
    let rest = b.get(start..)?;
    (rest.len() as u64 == len).then_some(rest)
}

const TERM_APPLY: u8 = 3;
const TERM_CONSTANT: u8 = 4;
const TYPE_DATA: u8 = 8;
/// Longest accepted constant type (in 4-bit type tags).
const MAX_TYPE_TAGS: usize = 32;
/// Longest accepted natural, in 7-bit groups (a 64 KiB program cannot hold more anyway).
const MAX_NATURAL_GROUPS: usize = 64 * 1024;

/// What is left to copy, innermost last.
enum Task {
    Term,
    /// The rest of a list of terms (`Constr` fields, `Case` branches): a cons bit, then maybe more.
    TermList,
}

fn copy_term(r: &mut BitReader<'_>, w: &mut BitWriter) -> Result<(), PlutusError> {
    let mut stack = vec![Task::Term];
    while let Some(task) = stack.pop() {
        match task {
            Task::TermList => {
                let more = r.bit()?;
                w.bit(more);
                if more {
                    stack.push(Task::TermList);
                    stack.push(Task::Term);
                }
            }
            Task::Term => {
                let tag = r.bits(4)?;
                w.bits(4, tag);
                match tag {
                    // Var: de Bruijn index
                    0 => copy_natural(r, w)?,
                    // Delay, LamAbs (the binder of a de Bruijn program is empty), Force
                    1 | 2 | 5 => stack.push(Task::Term),
                    // Apply: function, argument
                    3 => {
                        stack.push(Task::Term);
                        stack.push(Task::Term);
                    }
                    4 => copy_constant(r, w)?,
                    // Error
                    6 => {}
                    // Builtin: 7-bit function tag
                    7 => {
                        let b = r.bits(7)?;
                        w.bits(7, b);
                    }
                    // Constr: tag, fields
                    8 => {
                        copy_natural(r, w)?;
                        stack.push(Task::TermList);
                    }
                    // Case: scrutinee, branches
                    9 => {
                        stack.push(Task::TermList);
                        stack.push(Task::Term);
                    }
                    _ => return Err(r.err("unknown term tag")),
                }
            }
        }
    }
    Ok(())
}

/// A constant's type, as the tag list spells it.
enum ConstType {
    Integer,
    Bytes,
    String,
    Unit,
    Bool,
    Data,
    List(Box<ConstType>),
    Pair(Box<ConstType>, Box<ConstType>),
}

fn copy_constant(r: &mut BitReader<'_>, w: &mut BitWriter) -> Result<(), PlutusError> {
    let mut tags = Vec::new();
    loop {
        let more = r.bit()?;
        w.bit(more);
        if !more {
            break;
        }
        if tags.len() == MAX_TYPE_TAGS {
            return Err(r.err("constant type too long"));
        }
        let t = r.bits(4)?;
        w.bits(4, t);
        tags.push(t);
    }
    let mut i = 0;
    let ty = parse_type(&tags, &mut i).ok_or_else(|| r.err("unsupported constant type"))?;
    if i != tags.len() {
        return Err(r.err("constant type has extra tags"));
    }
    copy_value(&ty, r, w)
}

/// Depth is bounded by [`MAX_TYPE_TAGS`].
fn parse_type(tags: &[u8], i: &mut usize) -> Option<ConstType> {
    let t = *tags.get(*i)?;
    *i += 1;
    Some(match t {
        0 => ConstType::Integer,
        1 => ConstType::Bytes,
        2 => ConstType::String,
        3 => ConstType::Unit,
        4 => ConstType::Bool,
        8 => ConstType::Data,
        // type application: `list a` is [7, 5, a], `pair a b` is [7, 7, 6, a, b]
        7 => match *tags.get(*i)? {
            5 => {
                *i += 1;
                ConstType::List(Box::new(parse_type(tags, i)?))
            }
            7 => {
                if *tags.get(*i + 1)? != 6 {
                    return None;
                }
                *i += 2;
                let a = parse_type(tags, i)?;
                let b = parse_type(tags, i)?;
                ConstType::Pair(Box::new(a), Box::new(b))
            }
            _ => return None,
        },
        // BLS elements cannot be flat-encoded; anything else is unknown
        _ => return None,
    })
}

/// Recursion follows the type, whose depth is bounded by [`MAX_TYPE_TAGS`].
fn copy_value(ty: &ConstType, r: &mut BitReader<'_>, w: &mut BitWriter) -> Result<(), PlutusError> {
    match ty {
        ConstType::Integer => copy_natural(r, w),
        ConstType::Bytes | ConstType::String | ConstType::Data => copy_bytestring(r, w),
        ConstType::Unit => Ok(()),
        ConstType::Bool => {
            let b = r.bit()?;
            w.bit(b);
            Ok(())
        }
        ConstType::List(elem) => loop {
            let more = r.bit()?;
            w.bit(more);
            if !more {
                return Ok(());
            }
            copy_value(elem, r, w)?;
        },
        ConstType::Pair(a, b) => {
            copy_value(a, r, w)?;
            copy_value(b, r, w)
        }
    }
}

/// A natural: 8-bit groups (continuation bit, 7 value bits), least significant first. Copied
/// verbatim, so even a non-minimal encoding survives unchanged.
fn copy_natural(r: &mut BitReader<'_>, w: &mut BitWriter) -> Result<(), PlutusError> {
    for _ in 0..MAX_NATURAL_GROUPS {
        let g = r.bits(8)?;
        w.bits(8, g);
        if g & 0x80 == 0 {
            return Ok(());
        }
    }
    Err(r.err("natural too long"))
}

/// A byte string: filler to the byte boundary, then chunks `len(1..=255) bytes…`, ended by `00`.
/// The filler is re-made for the writer's alignment; the chunks are copied as they are.
fn copy_bytestring(r: &mut BitReader<'_>, w: &mut BitWriter) -> Result<(), PlutusError> {
    r.filler()?;
    w.filler();
    loop {
        let len = r.bits(8)?;
        w.push_byte(len);
        if len == 0 {
            return Ok(());
        }
        let chunk = r.aligned_bytes(usize::from(len))?;
        w.extend_aligned(chunk);
    }
}

struct BitReader<'a> {
    buf: &'a [u8],
    /// Position in bits from the start of `buf`.
    bit: usize,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        BitReader { buf, bit: 0 }
    }

    fn err(&self, what: &'static str) -> PlutusError {
        PlutusError::BadProgram {
            bit: self.bit,
            what,
        }
    }

    fn bit(&mut self) -> Result<bool, PlutusError> {
        let byte = *self
            .buf
            .get(self.bit / 8)
            .ok_or_else(|| self.err("program truncated"))?;
        let b = byte & (0x80 >> (self.bit % 8)) != 0;
        self.bit += 1;
        Ok(b)
    }

    /// `n ≤ 8` bits, most significant first.
    fn bits(&mut self, n: u8) -> Result<u8, PlutusError> {
        let n = usize::from(n.min(8));
        if self.bit + n > self.buf.len() * 8 {
            return Err(self.err("program truncated"));
        }
        let at = self.bit / 8;
        let off = self.bit % 8;
        let hi = u16::from(self.buf.get(at).copied().unwrap_or(0));
        let lo = u16::from(self.buf.get(at + 1).copied().unwrap_or(0));
        let window = (hi << 8) | lo;
        let v = (window >> (16 - off - n)) & ((1u16 << n) - 1);
        self.bit += n;
        Ok(v as u8)
    }

    /// A filler: zero bits, then a one bit that ends a byte.
    fn filler(&mut self) -> Result<(), PlutusError> {
        while !self.bit()? {}
        if !self.bit.is_multiple_of(8) {
            return Err(self.err("filler does not end on a byte boundary"));
        }
        Ok(())
    }

    fn aligned_bytes(&mut self, n: usize) -> Result<&'a [u8], PlutusError> {
        let start = self.bit / 8;
        let s = self
            .buf
            .get(start..start + n)
            .ok_or_else(|| self.err("byte string truncated"))?;
        self.bit += n * 8;
        Ok(s)
    }

    fn at_end(&self) -> bool {
        self.bit == self.buf.len() * 8
    }
}

struct BitWriter {
    out: Vec<u8>,
    cur: u8,
    used: u8,
}

impl BitWriter {
    fn with_capacity(n: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(n),
            cur: 0,
            used: 0,
        }
    }

    fn bit(&mut self, b: bool) {
        if b {
            self.cur |= 0x80 >> self.used;
        }
        self.used += 1;
        if self.used == 8 {
            self.out.push(self.cur);
            self.cur = 0;
            self.used = 0;
        }
    }

    /// The `n ≤ 8` low bits of `v`, most significant first.
    fn bits(&mut self, n: u8, v: u8) {
        let n = n.min(8);
        let used = self.used;
        let v = u16::from(v) & ((1u16 << n) - 1);
        let window = (u16::from(self.cur) << 8) | (v << (16 - used - n));
        let total = used + n;
        if total >= 8 {
            self.out.push((window >> 8) as u8);
            self.cur = window as u8;
            self.used = total - 8;
        } else {
            self.cur = (window >> 8) as u8;
            self.used = total;
        }
    }

    /// Zero bits up to the last bit of the byte, which is one (a whole `01` byte when aligned).
    fn filler(&mut self) {
        while self.used != 7 {
            self.bit(false);
        }
        self.bit(true);
    }

    fn push_byte(&mut self, b: u8) {
        self.bits(8, b);
    }

    /// Only after a filler, when the writer is byte-aligned.
    fn extend_aligned(&mut self, b: &[u8]) {
        debug_assert_eq!(self.used, 0);
        self.out.extend_from_slice(b);
    }

    fn bytestring(&mut self, b: &[u8]) {
        self.filler();
        for chunk in b.chunks(255) {
            self.out.push(chunk.len() as u8);
            self.out.extend_from_slice(chunk);
        }
        self.out.push(0);
    }

    fn finish(self) -> Vec<u8> {
        debug_assert_eq!(self.used, 0);
        self.out
    }
}

#[cfg(test)]
mod tests;
