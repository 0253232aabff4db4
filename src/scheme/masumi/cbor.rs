//! A small strict CBOR reader for the COSE structures the seller signs.
//!
//! Why not `coset`/`ciborium`: the Masumi COSE rules need to see things a
//! typed COSE library hides. Integers must be minimally encoded (a protected
//! header that spells `-8` in two bytes is refused, as the reference does),
//! a map may be indefinite, a repeated label is resolved "last wins", and a
//! bignum-tagged `1` still counts as the integer 1. The reader is bounded:
//! depth, item count and input length are all capped, and it never trusts a
//! declared length beyond the bytes actually present.

/// One decoded CBOR data item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A major-type 0/1 integer, or a tag 2/3 bignum that fits in an `i128`.
    Int(i128),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Item>),
    /// Entries in wire order; duplicates are kept (readers resolve them).
    Map(Vec<(Item, Item)>),
    Tag(u64, Box<Item>),
    Bool(bool),
    Null,
    Undefined,
    Float(f64),
}

impl Item {
    /// Look a label up in a map, the last occurrence winning.
    pub fn get(&self, label: &Item) -> Option<&Item> {
        match self {
            Item::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k == label)
                .map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn get_int(&self, label: i128) -> Option<&Item> {
        self.get(&Item::Int(label))
    }
    pub fn get_text(&self, label: &str) -> Option<&Item> {
        self.get(&Item::Text(label.to_owned()))
    }
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Item::Int(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Item::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Why bytes are not one acceptable CBOR item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CBOR: {0}")]
pub struct CborError(pub &'static str);

const MAX_DEPTH: usize = 32;
const MAX_ITEMS: usize = 100_000;

/// Decode exactly one item; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Item, CborError> {
    let mut r = Reader {
        buf: bytes,
        pos: 0,
        items: 0,
    };
    let item = r.item(0)?;
    if r.pos != bytes.len() {
        return Err(CborError("trailing bytes after the item"));
    }
    Ok(item)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    items: usize,
}

enum Arg {
    Value(u64),
    Indefinite,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.buf.get(self.pos).ok_or(CborError("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], CborError> {
        let n = usize::try_from(n).map_err(|_| CborError("length too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .ok_or(CborError("length too large"))?;
        let s = self.buf.get(self.pos..end).ok_or(CborError("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    /// Read a head's argument, refusing non-minimal encodings.
    fn arg(&mut self, info: u8) -> Result<Arg, CborError> {
        let v = match info {
            0..=23 => return Ok(Arg::Value(u64::from(info))),
            24 => {
                let v = u64::from(self.byte()?);
                if v < 24 {
                    return Err(CborError("non-minimal integer encoding"));
                }
                v
            }
            25 => {
                let s = self.take(2)?;
                let v = u64::from(u16::from_be_bytes([s[0], s[1]]));
                if v <= 0xff {
                    return Err(CborError("non-minimal integer encoding"));
                }
                v
            }
            26 => {
                let s = self.take(4)?;
                let v = u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
                if v <= 0xffff {
                    return Err(CborError("non-minimal integer encoding"));
                }
                v
            }
            27 => {
                let s = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                let v = u64::from_be_bytes(a);
                if v <= 0xffff_ffff {
                    return Err(CborError("non-minimal integer encoding"));
                }
                v
            }
            31 => return Ok(Arg::Indefinite),
            _ => return Err(CborError("reserved additional information")),
        };
        Ok(Arg::Value(v))
    }

    fn is_break(&self) -> bool {
        self.buf.get(self.pos) == Some(&0xff)
    }

    fn item(&mut self, depth: usize) -> Result<Item, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError("nested too deeply"));
        }
        self.items += 1;
        if self.items > MAX_ITEMS {
            return Err(CborError("too many items"));
        }
        let head = self.byte()?;
        let major = head >> 5;
        let info = head & 0x1f;
        match major {
            0 | 1 => {
                let Arg::Value(v) = self.arg(info)? else {
                    return Err(CborError("indefinite integer"));
                };
                let v = i128::from(v);
                Ok(Item::Int(if major == 0 { v } else { -1 - v }))
            }
            2 | 3 => {
                let data = match self.arg(info)? {
                    Arg::Value(n) => self.take(n)?.to_vec(),
                    Arg::Indefinite => {
                        let mut out = Vec::new();
                        loop {
                            if self.is_break() {
                                self.pos += 1;
                                break;
                            }
                            let h = self.byte()?;
                            if h >> 5 != major {
                                return Err(CborError("bad chunk in an indefinite string"));
                            }
                            let Arg::Value(n) = self.arg(h & 0x1f)? else {
                                return Err(CborError("nested indefinite string"));
                            };
                            out.extend_from_slice(self.take(n)?);
                        }
                        out
                    }
                };
                if major == 2 {
                    Ok(Item::Bytes(data))
                } else {
                    String::from_utf8(data)
                        .map(Item::Text)
                        .map_err(|_| CborError("text is not UTF-8"))
                }
            }
            4 => {
                let mut v = Vec::new();
                match self.arg(info)? {
                    Arg::Value(n) => {
                        for _ in 0..n {
                            v.push(self.item(depth + 1)?);
                        }
                    }
                    Arg::Indefinite => {
                        while !self.is_break() {
                            v.push(self.item(depth + 1)?);
                        }
                        self.pos += 1;
                    }
                }
                Ok(Item::Array(v))
            }
            5 => {
                let mut v = Vec::new();
                match self.arg(info)? {
                    Arg::Value(n) => {
                        for _ in 0..n {
                            let k = self.item(depth + 1)?;
                            let val = self.item(depth + 1)?;
                            v.push((k, val));
                        }
                    }
                    Arg::Indefinite => {
                        while !self.is_break() {
                            let k = self.item(depth + 1)?;
                            let val = self.item(depth + 1)?;
                            v.push((k, val));
                        }
                        self.pos += 1;
                    }
                }
                Ok(Item::Map(v))
            }
            6 => {
                let Arg::Value(tag) = self.arg(info)? else {
                    return Err(CborError("indefinite tag"));
                };
                let inner = self.item(depth + 1)?;
                match (tag, &inner) {
                    (2 | 3, Item::Bytes(b)) => {
                        let digits = b.iter().skip_while(|x| **x == 0).collect::<Vec<_>>();
                        if digits.len() > 15 {
                            return Err(CborError("bignum too large"));
                        }
                        let mut n: i128 = 0;
                        for d in digits {
                            n = (n << 8) | i128::from(*d);
                        }
                        Ok(Item::Int(if tag == 2 { n } else { -1 - n }))
                    }
                    (2 | 3, _) => Err(CborError("bignum tag on a non-byte-string")),
                    _ => Ok(Item::Tag(tag, Box::new(inner))),
                }
            }
            _ => match info {
                20 => Ok(Item::Bool(false)),
                21 => Ok(Item::Bool(true)),
                22 => Ok(Item::Null),
                23 => Ok(Item::Undefined),
                25 => {
                    let s = self.take(2)?;
                    Ok(Item::Float(half_to_f64(u16::from_be_bytes([s[0], s[1]]))))
                }
                26 => {
                    let s = self.take(4)?;
                    Ok(Item::Float(f64::from(f32::from_be_bytes([
                        s[0], s[1], s[2], s[3],
                    ]))))
                }
                27 => {
                    let s = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(s);
                    Ok(Item::Float(f64::from_be_bytes(a)))
                }
                31 => Err(CborError("unexpected break")),
                _ => Err(CborError("unsupported simple value")),
            },
        }
    }
}

fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    let v = match exp {
        0 => frac * 2f64.powi(-24),
        31 => {
            if frac == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    };
    sign * v
}

/// Minimal CBOR encoders for what this module writes (heads, byte and text strings).
pub mod enc {
    pub fn head(out: &mut Vec<u8>, major: u8, v: u64) {
        let m = major << 5;
        if v < 24 {
            out.push(m | v as u8);
        } else if v <= 0xff {
            out.push(m | 24);
            out.push(v as u8);
        } else if v <= 0xffff {
            out.push(m | 25);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= 0xffff_ffff {
            out.push(m | 26);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            out.push(m | 27);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        head(out, 2, b.len() as u64);
        out.extend_from_slice(b);
    }
    pub fn text(out: &mut Vec<u8>, s: &str) {
        head(out, 3, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(h: &str) -> Result<Item, CborError> {
        decode(&hex::decode(h).unwrap())
    }

    #[test]
    fn strictness() {
        assert_eq!(d("27").unwrap(), Item::Int(-8));
        assert!(d("3807").is_err(), "non-minimal -8");
        assert!(d("1817").is_err(), "non-minimal 23");
        assert_eq!(d("c24101").unwrap(), Item::Int(1));
        assert_eq!(d("f93c00").unwrap(), Item::Float(1.0));
        assert!(d("0000").is_err(), "trailing");
        assert!(d("5f4101").is_err(), "unterminated");
        assert_eq!(d("5f41014102ff").unwrap(), Item::Bytes(vec![1, 2]));
        assert_eq!(
            d("bf0102ff").unwrap(),
            Item::Map(vec![(Item::Int(1), Item::Int(2))])
        );
        assert!(d("ff").is_err());
        assert!(d("5b ffffffffffffffff".replace(' ', "").as_str()).is_err());
        // Duplicates resolve last-wins.
        let m = d("a201020103").unwrap();
        assert_eq!(m.get_int(1), Some(&Item::Int(3)));
        // Deep nesting is bounded, not a stack overflow.
        let deep = "81".repeat(10_000) + "00";
        assert!(d(&deep).is_err());
    }
}
