//! A small, iterative CBOR well-formedness scanner.
//!
//! pallas' decoders are recursive and trust declared lengths, so a hostile
//! payload (deeply nested arrays, a length header claiming 2^60 items, a
//! duplicated map key that the decoder silently overwrites) could exhaust the
//! stack, allocate without bound, or make our view of a transaction differ
//! from the node's. Every byte of a request therefore passes through
//! [`scan_single_item`] before pallas sees it. The scanner never recurses,
//! proves that the input is exactly one well-formed data item, and works on
//! the stack for ordinary transactions: it touches the heap only past 16
//! nested containers, 32 pending map keys or a map of more than 16 keys
//! (then a little per key, never more than the input's size allows).

use std::collections::HashSet;

use smallvec::SmallVec;

/// Why a byte string is not exactly one acceptable CBOR data item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("input is empty")]
    Empty,
    #[error("input ends in the middle of a CBOR item (offset {0})")]
    Truncated(usize),
    #[error("malformed CBOR at offset {offset}: {what}")]
    Malformed { offset: usize, what: &'static str },
    #[error("CBOR nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("duplicate map key at offset {0}")]
    DuplicateKey(usize),
    #[error("{trailing} unexpected byte(s) after the CBOR item (which ends at offset {end})")]
    TrailingBytes { end: usize, trailing: usize },
}

/// Default nesting limit. Real transactions nest well under 20 levels (a
/// multi-asset output inside the outputs array inside the body inside the tx);
/// Plutus data may go deeper, but this facilitator rejects scripts anyway.
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Keys a map compares one by one before it switches to a hash set. Real
/// transaction maps (body, output, witness set, a policy's assets) stay well
/// under this, so the scanner does not allocate for them.
const LINEAR_KEYS: usize = 16;

/// Frames and key slots kept on the stack before spilling to the heap.
const INLINE_FRAMES: usize = 16;
const INLINE_KEYS: usize = 32;

/// A map key's identity for duplicate detection: integers and definite
/// strings by value (so `0x01` and `0x18 0x01` collide), anything else by its
/// raw bytes. Two keys are duplicates exactly when their identities are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KeyId<'a> {
    /// Major type 0 or 1 and its argument.
    Int(u8, u64),
    /// Major type 2 or 3 (definite length) and its content.
    Str(u8, &'a [u8]),
    /// Any other key, by its encoding.
    Raw(&'a [u8]),
}

#[derive(Debug)]
enum Kind<'a> {
    Array,
    Map {
        /// Where this map's keys begin in the shared key list (while the map
        /// compares linearly; a hashed map keeps none there).
        key_base: usize,
        key_start: usize,
        /// Every key so far, once the map has more than [`LINEAR_KEYS`].
        hashed: Option<HashSet<KeyId<'a>>>,
    },
    Tag,
    /// Indefinite-length byte (2) or text (3) string: only definite chunks of the same major type.
    Chunks(u8),
}

#[derive(Debug)]
struct Frame<'a> {
    kind: Kind<'a>,
    /// Items still expected; `None` for indefinite length (ends with a break).
    remaining: Option<u64>,
    seen: u64,
    start: usize,
}

type Frames<'a> = SmallVec<[Frame<'a>; INLINE_FRAMES]>;
type Keys<'a> = SmallVec<[KeyId<'a>; INLINE_KEYS]>;

struct Head {
    major: u8,
    info: u8,
    /// Argument value (length, integer, tag number); 0 for indefinite/break.
    arg: u64,
}

fn read_head(bytes: &[u8], pos: &mut usize) -> Result<Head, CborError> {
    let start = *pos;
    let ib = *bytes.get(start).ok_or(CborError::Truncated(start))?;
    let major = ib >> 5;
    let info = ib & 0x1f;
    let extra = match info {
        0..=23 => 0usize,
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 => 0,
        _ => {
            return Err(CborError::Malformed {
                offset: start,
                what: "reserved additional information",
            });
        }
    };
    let end = start
        .checked_add(1 + extra)
        .ok_or(CborError::Truncated(start))?;
    let arg_bytes = bytes
        .get(start + 1..end)
        .ok_or(CborError::Truncated(start))?;
    let arg = if info < 24 {
        u64::from(info)
    } else {
        arg_bytes
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    };
    *pos = end;
    Ok(Head { major, info, arg })
}

/// The identity of the map key spanning `start..end`.
fn key_id(bytes: &[u8], start: usize, end: usize) -> KeyId<'_> {
    let mut pos = start;
    if let Ok(h) = read_head(bytes, &mut pos) {
        match h.major {
            0 | 1 if pos == end => return KeyId::Int(h.major, h.arg),
            2 | 3 if h.info != 31 => {
                return KeyId::Str(h.major, bytes.get(pos..end).unwrap_or_default());
            }
            _ => {}
        }
    }
    KeyId::Raw(bytes.get(start..end).unwrap_or_default())
}

/// Check that `bytes` is exactly one well-formed CBOR data item, nested at most
/// `max_depth` levels, with no duplicate key in any map and nothing after it.
/// Returns the length of the item (always `bytes.len()` on success).
pub fn scan_single_item(bytes: &[u8], max_depth: usize) -> Result<usize, CborError> {
    if bytes.is_empty() {
        return Err(CborError::Empty);
    }
    let end = scan_prefix(bytes, max_depth)?;
    if end != bytes.len() {
        return Err(CborError::TrailingBytes {
            end,
            trailing: bytes.len() - end,
        });
    }
    Ok(end)
}

/// Scan the first data item of `bytes` and return where it ends.
pub fn scan_prefix<'a>(bytes: &'a [u8], max_depth: usize) -> Result<usize, CborError> {
    let mut stack: Frames<'a> = SmallVec::new();
    let mut keys: Keys<'a> = SmallVec::new();
    let mut pos = 0usize;
    loop {
        let item_start = pos;
        let remaining_bytes = (bytes.len() - pos) as u64;
        // Record where a map key begins so we can check it once complete.
        if let Some(Frame {
            kind: Kind::Map { key_start, .. },
            seen,
            ..
        }) = stack.last_mut()
            && *seen % 2 == 0
        {
            *key_start = item_start;
        }
        let head = read_head(bytes, &mut pos)?;
        let in_chunks = match stack.last() {
            Some(Frame {
                kind: Kind::Chunks(m),
                ..
            }) => Some(*m),
            _ => None,
        };
        // A break code closes the innermost indefinite container.
        if head.major == 7 && head.info == 31 {
            let Some(frame) = stack.pop() else {
                return Err(CborError::Malformed {
                    offset: item_start,
                    what: "unexpected break",
                });
            };
            if frame.remaining.is_some() || matches!(frame.kind, Kind::Tag) {
                return Err(CborError::Malformed {
                    offset: item_start,
                    what: "break inside a definite-length item",
                });
            }
            if let Kind::Map { key_base, .. } = frame.kind {
                if frame.seen % 2 != 0 {
                    return Err(CborError::Malformed {
                        offset: item_start,
                        what: "map ends after a key without a value",
                    });
                }
                keys.truncate(key_base);
            }
            if let Some(done) = complete(&mut stack, &mut keys, bytes, frame.start, pos)? {
                return Ok(done);
            }
            continue;
        }
        if let Some(m) = in_chunks
            && (head.major != m || head.info == 31)
        {
            return Err(CborError::Malformed {
                offset: item_start,
                what: "bad chunk in an indefinite-length string",
            });
        }
        let mut push = |kind: Kind<'a>, remaining: Option<u64>| -> Result<(), CborError> {
            if stack.len() >= max_depth {
                return Err(CborError::TooDeep(max_depth));
            }
            stack.push(Frame {
                kind,
                remaining,
                seen: 0,
                start: item_start,
            });
            Ok(())
        };
        match head.major {
            0 | 1 => {
                if head.info == 31 {
                    return Err(CborError::Malformed {
                        offset: item_start,
                        what: "indefinite integer",
                    });
                }
            }
            2 | 3 => {
                if head.info == 31 {
                    push(Kind::Chunks(head.major), None)?;
                    continue;
                }
                if head.arg > remaining_bytes {
                    return Err(CborError::Truncated(item_start));
                }
                pos += head.arg as usize;
                if pos > bytes.len() {
                    return Err(CborError::Truncated(item_start));
                }
                if head.major == 3
                    && std::str::from_utf8(&bytes[pos - head.arg as usize..pos]).is_err()
                {
                    return Err(CborError::Malformed {
                        offset: item_start,
                        what: "text string is not UTF-8",
                    });
                }
            }
            4 => {
                if head.info == 31 {
                    push(Kind::Array, None)?;
                    continue;
                }
                if head.arg > remaining_bytes {
                    return Err(CborError::Truncated(item_start));
                }
                if head.arg > 0 {
                    push(Kind::Array, Some(head.arg))?;
                    continue;
                }
            }
            5 => {
                let map = Kind::Map {
                    key_base: keys.len(),
                    key_start: 0,
                    hashed: None,
                };
                if head.info == 31 {
                    push(map, None)?;
                    continue;
                }
                if head.arg > remaining_bytes / 2 {
                    return Err(CborError::Truncated(item_start));
                }
                if head.arg > 0 {
                    push(map, Some(head.arg * 2))?;
                    continue;
                }
            }
            6 => {
                if head.info == 31 {
                    return Err(CborError::Malformed {
                        offset: item_start,
                        what: "indefinite tag",
                    });
                }
                push(Kind::Tag, Some(1))?;
                continue;
            }
            _ => {
                // major 7: simple values and floats
                if head.info == 24 && head.arg < 32 {
                    return Err(CborError::Malformed {
                        offset: item_start,
                        what: "non-canonical simple value",
                    });
                }
            }
        }
        if let Some(done) = complete(&mut stack, &mut keys, bytes, item_start, pos)? {
            return Ok(done);
        }
    }
}

/// An item spanning `start..end` is complete: account for it in the enclosing
/// frames, closing any definite containers it finishes. `Some(end)` when the
/// root item is complete.
fn complete<'a>(
    stack: &mut Frames<'a>,
    keys: &mut Keys<'a>,
    bytes: &'a [u8],
    mut start: usize,
    end: usize,
) -> Result<Option<usize>, CborError> {
    loop {
        let Some(frame) = stack.last_mut() else {
            return Ok(Some(end));
        };
        if let Kind::Map {
            key_base,
            key_start,
            hashed,
        } = &mut frame.kind
            && frame.seen % 2 == 0
        {
            debug_assert_eq!(*key_start, start);
            let id = key_id(bytes, start, end);
            if let Some(set) = hashed {
                if !set.insert(id) {
                    return Err(CborError::DuplicateKey(start));
                }
            } else {
                let mine = keys.get(*key_base..).unwrap_or_default();
                if mine.contains(&id) {
                    return Err(CborError::DuplicateKey(start));
                }
                if mine.len() < LINEAR_KEYS {
                    keys.push(id);
                } else {
                    // A big map: move its (distinct) keys into a set.
                    let mut set: HashSet<KeyId<'a>> = mine.iter().copied().collect();
                    set.insert(id);
                    keys.truncate(*key_base);
                    *hashed = Some(set);
                }
            }
        }
        frame.seen += 1;
        match frame.remaining.as_mut() {
            Some(r) => {
                *r -= 1;
                if *r == 0 {
                    start = frame.start;
                    if let Kind::Map { key_base, .. } = frame.kind {
                        keys.truncate(key_base);
                    }
                    stack.pop();
                    continue;
                }
                return Ok(None);
            }
            None => return Ok(None),
        }
    }
}

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The same data item with every indefinite-length array and map re-encoded
/// with its definite length (strings untouched); `None` when there is none.
///
/// The node decodes indefinite-length arrays and maps wherever it decodes
/// definite ones; some pallas decoders (outputs, values, auxiliary data) do
/// not. [`super::tx::ParsedTx::decode`] hands pallas this copy to read the
/// fields from, and keeps every byte it hashes or measures (body, witness
/// set, outputs) from the original. Iterative; `bytes` must already have
/// passed [`scan_single_item`].
pub fn definite_lengths(bytes: &[u8]) -> Result<Option<Vec<u8>>, CborError> {
    // Fast path: without an indefinite array or map head byte anywhere there
    // is nothing to rewrite (such a byte inside a string only costs the walk).
    if !bytes.iter().any(|b| *b == 0x9f || *b == 0xbf) {
        return Ok(None);
    }
    struct F {
        start: usize,
        /// Indefinite array (4) or map (5) whose length gets written.
        rewrite: Option<u8>,
        remaining: Option<u64>,
        children: u64,
    }
    let mut lengths: std::collections::HashMap<usize, (u8, u64)> = Default::default();
    let mut breaks: HashSet<usize> = HashSet::new();
    let mut stack: SmallVec<[F; INLINE_FRAMES]> = SmallVec::new();
    let mut pos = 0usize;
    'items: loop {
        let at = pos;
        let h = read_head(bytes, &mut pos)?;
        if h.major == 7 && h.info == 31 {
            let f = stack.pop().ok_or(CborError::Malformed {
                offset: at,
                what: "unexpected break",
            })?;
            if let Some(major) = f.rewrite {
                let n = if major == 5 {
                    f.children / 2
                } else {
                    f.children
                };
                lengths.insert(f.start, (major, n));
                breaks.insert(at);
            }
        } else {
            if let Some(top) = stack.last_mut() {
                top.children += 1;
            }
            let open = |rewrite, remaining| F {
                start: at,
                rewrite,
                remaining,
                children: 0,
            };
            match (h.major, h.info) {
                (2 | 3, 31) => {
                    stack.push(open(None, None));
                    continue;
                }
                (2 | 3, _) => {
                    pos = usize::try_from(h.arg)
                        .ok()
                        .and_then(|n| pos.checked_add(n))
                        .filter(|p| *p <= bytes.len())
                        .ok_or(CborError::Truncated(at))?;
                }
                (4 | 5, 31) => {
                    stack.push(open(Some(h.major), None));
                    continue;
                }
                (4 | 5, _) => {
                    let n = if h.major == 5 {
                        h.arg.saturating_mul(2)
                    } else {
                        h.arg
                    };
                    if n > 0 {
                        stack.push(open(None, Some(n)));
                        continue;
                    }
                }
                (6, _) => {
                    stack.push(open(None, Some(1)));
                    continue;
                }
                _ => {}
            }
        }
        // An item (or a container closed by its break) is complete.
        loop {
            let Some(top) = stack.last_mut() else {
                break 'items;
            };
            match top.remaining.as_mut() {
                Some(r) => {
                    *r -= 1;
                    if *r > 0 {
                        break;
                    }
                    stack.pop();
                }
                None => break,
            }
        }
    }
    if lengths.is_empty() {
        return Ok(None);
    }
    let end = pos;
    let mut out = Vec::with_capacity(end);
    let mut pos = 0usize;
    while pos < end {
        let at = pos;
        let h = read_head(bytes, &mut pos)?;
        if let Some((major, n)) = lengths.get(&at) {
            write_head(&mut out, *major, *n);
        } else if breaks.contains(&at) {
        } else {
            out.extend_from_slice(&bytes[at..pos]);
            if matches!(h.major, 2 | 3) && h.info != 31 {
                let stop = pos + h.arg as usize;
                out.extend_from_slice(&bytes[pos..stop]);
                pos = stop;
            }
        }
    }
    Ok(Some(out))
}

/// Re-encodings for property tests and fuzz targets: the same data items
/// with other length encodings, or a fixed-shape record with one element too
/// many. Each function returns `None` when `at` is not what it needs.
pub mod mutate {
    use super::{DEFAULT_MAX_DEPTH, read_head, scan_prefix};

    /// Offsets and major types of every data item head in a well-formed item,
    /// in document order (chunks of indefinite strings included).
    pub fn heads(bytes: &[u8]) -> Vec<(usize, u8)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let at = pos;
            let Ok(h) = read_head(bytes, &mut pos) else {
                break;
            };
            out.push((at, h.major));
            if matches!(h.major, 2 | 3) && h.info != 31 {
                pos = pos.saturating_add(usize::try_from(h.arg).unwrap_or(usize::MAX));
            }
        }
        out
    }

    fn span(bytes: &[u8], at: usize) -> Option<(u8, u8, u64, usize, usize)> {
        let mut pos = at;
        let h = read_head(bytes, &mut pos).ok()?;
        let len = scan_prefix(bytes.get(at..)?, DEFAULT_MAX_DEPTH).ok()?;
        Some((h.major, h.info, h.arg, pos, at + len))
    }

    /// The definite array or map at `at`, re-encoded with indefinite length.
    pub fn to_indefinite(bytes: &[u8], at: usize) -> Option<Vec<u8>> {
        let (major, info, _, body, end) = span(bytes, at)?;
        if !matches!(major, 4 | 5) || info == 31 {
            return None;
        }
        let mut out = bytes[..at].to_vec();
        out.push(if major == 4 { 0x9f } else { 0xbf });
        out.extend_from_slice(&bytes[body..end]);
        out.push(0xff);
        out.extend_from_slice(&bytes[end..]);
        Some(out)
    }

    /// The array at `at` (definite or indefinite) with `element` appended.
    pub fn with_extra_element(bytes: &[u8], at: usize, element: &[u8]) -> Option<Vec<u8>> {
        let (major, info, n, body, end) = span(bytes, at)?;
        if major != 4 {
            return None;
        }
        let mut out = bytes[..at].to_vec();
        if info == 31 {
            out.push(0x9f);
            out.extend_from_slice(&bytes[body..end - 1]);
            out.extend_from_slice(element);
            out.push(0xff);
        } else {
            let n = n.checked_add(1)?;
            match n {
                0..=23 => out.push(0x80 | n as u8),
                24..=0xff => out.extend_from_slice(&[0x98, n as u8]),
                0x100..=0xffff => {
                    out.push(0x99);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                _ => return None,
            }
            out.extend_from_slice(&bytes[body..end]);
            out.extend_from_slice(element);
        }
        out.extend_from_slice(&bytes[end..]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(hex_s: &str) -> Result<usize, CborError> {
        scan_single_item(&hex::decode(hex_s).unwrap(), DEFAULT_MAX_DEPTH)
    }

    #[test]
    fn accepts_well_formed_items() {
        for s in [
            "00",
            "17",
            "1818",
            "1b0000000000000001",
            "20",
            "40",
            "4401020304",
            "60",
            "6161",
            "80",
            "83010203",
            "9f0102ff",
            "a0",
            "a201020304",
            "bf0102ff",
            "c24101",
            "5f4101ff",
            "f4",
            "f5",
            "f6",
            "f90000",
            "fa00000000",
            "fb0000000000000000",
            "8301820203820405",
        ] {
            assert!(ok(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_ill_formed_items() {
        for s in [
            "",
            "18",
            "1c",
            "41",
            "62",
            "81",
            "8201",
            "9f01",
            "bf01ff",
            "ff",
            "5f01ff",
            "5f4101",
            "c2",
            "f818",
            "7f6161ff00",
            "61ff",
        ] {
            assert!(ok(s).is_err(), "{s}");
        }
    }

    #[test]
    fn rejects_trailing_bytes() {
        assert_eq!(
            ok("0000"),
            Err(CborError::TrailingBytes {
                end: 1,
                trailing: 1
            })
        );
        assert!(matches!(ok("8001"), Err(CborError::TrailingBytes { .. })));
    }

    #[test]
    fn rejects_duplicate_keys_even_when_encoded_differently() {
        assert!(matches!(ok("a201020103"), Err(CborError::DuplicateKey(_))));
        assert!(matches!(
            ok("a20102180103"),
            Err(CborError::DuplicateKey(_))
        ));
        assert!(matches!(
            ok("bf41aa0141aa02ff"),
            Err(CborError::DuplicateKey(_))
        ));
        assert!(ok("a2410102410203").is_ok());
    }

    /// A map header for `n` pairs (definite).
    fn map_head(n: usize) -> String {
        match n {
            0..=23 => format!("{:02x}", 0xa0 + n),
            _ => format!("b8{n:02x}"),
        }
    }

    /// Integer keys 0..n, each with value 0, canonical encoding (n < 256).
    fn int_pairs(n: usize) -> String {
        (0..n)
            .map(|k| match k {
                0..=23 => format!("{k:02x}00"),
                _ => format!("18{k:02x}00"),
            })
            .collect()
    }

    #[test]
    fn duplicate_keys_in_big_maps_are_caught() {
        for n in [LINEAR_KEYS - 1, LINEAR_KEYS, LINEAR_KEYS + 1, 40, 200] {
            // Distinct keys: accepted, definite and indefinite.
            assert!(
                ok(&format!("{}{}", map_head(n), int_pairs(n))).is_ok(),
                "{n}"
            );
            assert!(ok(&format!("bf{}ff", int_pairs(n))).is_ok(), "{n}");
            // One more pair repeating key 0, canonically or not, first or last.
            for dup in ["0000", "180000", "19000000"] {
                let last = format!("{}{}{dup}", map_head(n + 1), int_pairs(n));
                let at = hex::decode(map_head(n + 1)).unwrap().len()
                    + hex::decode(int_pairs(n)).unwrap().len();
                assert_eq!(ok(&last), Err(CborError::DuplicateKey(at)), "{n} {dup}");
                let first = format!("bf{dup}{}ff", int_pairs(n));
                assert_eq!(ok(&first), Err(CborError::DuplicateKey(1 + dup.len() / 2)));
            }
            // Repeating the last key, after the map has switched to a set.
            let k = n - 1;
            let again = if k < 24 {
                format!("{k:02x}00")
            } else {
                format!("19{k:04x}00")
            };
            assert!(matches!(
                ok(&format!("bf{}{again}ff", int_pairs(n))),
                Err(CborError::DuplicateKey(_))
            ));
        }
    }

    #[test]
    fn key_identity_by_value_for_integers_and_strings_by_bytes_otherwise() {
        // -1 canonical, then with a one-byte argument.
        assert_eq!(ok("a22000380000"), Err(CborError::DuplicateKey(3)));
        // 0 and -1 are different keys.
        assert!(ok("a220000000").is_ok());
        // A byte string and a text string with the same content differ.
        assert!(ok("a2416100616100").is_ok());
        // The same string with a longer length head is a duplicate.
        assert_eq!(ok("a241aa005801aa00"), Err(CborError::DuplicateKey(4)));
        assert_eq!(ok("a261610078016100"), Err(CborError::DuplicateKey(4)));
        // Indefinite strings, maps and tags compare by their encoding.
        assert!(ok("a26161007f6161ff00").is_ok());
        assert_eq!(
            ok("a27f6161ff007f6161ff00"),
            Err(CborError::DuplicateKey(6))
        );
        assert_eq!(ok("a2a1010200a1010200"), Err(CborError::DuplicateKey(5)));
        assert!(ok("a2a1010200a118010200").is_ok());
        assert_eq!(ok("a2c10100c10100"), Err(CborError::DuplicateKey(4)));
    }

    #[test]
    fn nested_maps_keep_their_own_keys() {
        // The inner map may reuse the outer map's keys, and vice versa.
        assert!(ok("a201a1010002a10200").is_ok());
        // The outer map still sees its own keys once an inner one closes.
        assert_eq!(ok("a301a1020002000100"), Err(CborError::DuplicateKey(7)));
        assert_eq!(
            ok("bf01bf0200ff02000100ff"),
            Err(CborError::DuplicateKey(8))
        );
        // A map used as a key.
        assert!(ok("a20100a1010000").is_ok());
        // Big inner maps (hashed) inside small and big outer maps.
        let big = format!("{}{}", map_head(30), int_pairs(30));
        assert!(ok(&format!("a201{big}02{big}")).is_ok());
        assert!(matches!(
            ok(&format!("a301{big}02{big}0100")),
            Err(CborError::DuplicateKey(_))
        ));
        let outer: String = (0..30).map(|k| format!("18{:02x}{big}", k + 40)).collect();
        assert!(ok(&format!("b81e{outer}")).is_ok());
        assert!(matches!(
            ok(&format!("b81f{outer}1828{big}")),
            Err(CborError::DuplicateKey(_))
        ));
        // Sibling maps with the same keys do not see each other's.
        let sibs = "a201000200".repeat(50);
        assert!(ok(&format!("9832{sibs}")).is_ok());
    }

    /// Random maps over a pool of key encodings whose identities are known:
    /// refused for a duplicate exactly when two keys share an identity, at
    /// every size (linear and hashed) and when nested.
    #[test]
    fn random_maps_are_refused_exactly_for_repeated_identities() {
        const POOL: &[(&str, u8)] = &[
            ("01", 0),
            ("1801", 0),
            ("190001", 0),
            ("1b0000000000000001", 0),
            ("05", 1),
            ("1805", 1),
            ("20", 2),
            ("3800", 2),
            ("181e", 3),
            ("19001e", 3),
            ("41aa", 4),
            ("5801aa", 4),
            ("590001aa", 4),
            ("6161", 5),
            ("780161", 5),
            ("4161", 6),
            ("7f6161ff", 7),
            ("7f616160ff", 8),
            ("a10102", 9),
            ("a1180102", 10),
            ("c101", 11),
            ("820102", 12),
            ("9f0102ff", 13),
            ("f93c00", 14),
            ("f4", 15),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m as u64) as usize
        };
        for round in 0..3000 {
            // Distinct integer keys 100.. pad the map so it may pass LINEAR_KEYS.
            let pad = next(3) * 12;
            let picks = 1 + next(5);
            let mut ids = Vec::new();
            let mut pairs = Vec::new();
            for i in 0..pad {
                pairs.push(format!("18{:02x}00", 100 + i));
            }
            for _ in 0..picks {
                let (enc, id) = POOL[next(POOL.len())];
                ids.push(id);
                pairs.insert(next(pairs.len() + 1), format!("{enc}00"));
            }
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let dup = sorted.len() != ids.len();
            let inner = format!("{}{}", map_head(pairs.len()), pairs.concat());
            let indef = format!("bf{}ff", pairs.concat());
            for item in [
                inner.clone(),
                indef.clone(),
                format!("a200{inner}01{indef}"),
                format!("82{indef}{inner}"),
            ] {
                match ok(&item) {
                    Ok(_) => assert!(!dup, "{round}: {item}"),
                    Err(CborError::DuplicateKey(_)) => assert!(dup, "{round}: {item}"),
                    Err(e) => panic!("{round}: {item}: {e}"),
                }
            }
        }
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        assert!(ok("9b7fffffffffffffff").is_err());
        assert!(ok("bb7fffffffffffffff").is_err());
        assert!(ok("5b7fffffffffffffff").is_err());
        assert!(ok("5bffffffffffffffff").is_err());
    }

    #[test]
    fn definite_lengths_rewrites_only_indefinite_containers() {
        let d = |h: &str| {
            definite_lengths(&hex::decode(h).unwrap())
                .unwrap()
                .map(hex::encode)
        };
        assert_eq!(d("83010203"), None);
        assert_eq!(d("9f010203ff").as_deref(), Some("83010203"));
        assert_eq!(
            d("9f9fff819f01ffbf0102ffff").as_deref(),
            Some("8380818101a10102")
        );
        // Indefinite strings keep their chunks and break; tags pass through.
        assert_eq!(
            d("9f5f4101ffc29f00ffff").as_deref(),
            Some("825f4101ffc28100")
        );
        let long: String = std::iter::once("9f".to_string())
            .chain((0..30).map(|_| "00".to_string()))
            .chain(std::iter::once("ff".to_string()))
            .collect();
        assert_eq!(d(&long).unwrap(), format!("981e{}", "00".repeat(30)));
    }

    #[test]
    fn mutations_keep_or_break_shapes_as_asked() {
        let b = hex::decode("8301820203a10405").unwrap();
        let heads = mutate::heads(&b);
        assert_eq!(heads.iter().filter(|(_, m)| *m == 4).count(), 2);
        let indef = mutate::to_indefinite(&b, 0).unwrap();
        assert_eq!(hex::encode(&indef), "9f01820203a10405ff");
        let inner = mutate::to_indefinite(&b, 2).unwrap();
        assert_eq!(hex::encode(&inner), "83019f0203ffa10405");
        let map = mutate::to_indefinite(&b, 5).unwrap();
        assert_eq!(hex::encode(&map), "8301820203bf0405ff");
        assert_eq!(
            hex::encode(mutate::with_extra_element(&b, 2, &[0]).unwrap()),
            "830183020300a10405"
        );
        assert_eq!(
            hex::encode(mutate::with_extra_element(&indef, 0, &[0]).unwrap()),
            "9f01820203a1040500ff"
        );
        assert!(mutate::to_indefinite(&b, 1).is_none());
        for m in [indef, inner, map] {
            assert!(scan_single_item(&m, DEFAULT_MAX_DEPTH).is_ok());
        }
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let mut deep = vec![0x81u8; 1_000_000];
        deep.push(0x00);
        assert_eq!(
            scan_single_item(&deep, DEFAULT_MAX_DEPTH),
            Err(CborError::TooDeep(DEFAULT_MAX_DEPTH))
        );
        let mut fine = vec![0x81u8; 10];
        fine.push(0x00);
        assert!(scan_single_item(&fine, DEFAULT_MAX_DEPTH).is_ok());
    }
}
