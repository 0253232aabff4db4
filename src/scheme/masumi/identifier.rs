//! `blockchainIdentifier`: the Masumi compatibility identifier (spec "Identity
//! and compatibility identifier").
//!
//! Text form: `(sellerNonce ‖ agentId) "." buyerNonce "." referenceSignature "."
//! referenceKey "." payTo`; wire form: hex of LZString `compressToUint8Array`.
//! Decoding uses our own bounded LZString decompressor: a hostile 8 KiB input
//! can never make it produce more than [`MAX_TEXT_UNITS`] UTF-16 units.

/// Largest decompressed identifier, in UTF-16 code units (spec limit).
pub const MAX_TEXT_UNITS: usize = 32_768;

/// The six values an identifier carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifierParts {
    pub seller_nonce: String,
    pub agent_identifier: String,
    pub buyer_nonce: String,
    pub reference_signature: String,
    pub reference_key: String,
    pub contract_address: String,
}

impl IdentifierParts {
    pub fn text(&self) -> String {
        format!(
            "{}{}.{}.{}.{}.{}",
            self.seller_nonce,
            self.agent_identifier,
            self.buyer_nonce,
            self.reference_signature,
            self.reference_key,
            self.contract_address
        )
    }

    /// The wire bytes (LZString compressToUint8Array of the text).
    pub fn encode(&self) -> Vec<u8> {
        lz_str::compress_to_uint8_array(self.text().as_str())
    }
}

/// Why an identifier does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("not LZString data: {0}")]
    Lz(&'static str),
    #[error("decompresses to more than {MAX_TEXT_UNITS} characters")]
    TooLong,
    #[error("the text is not five dot-separated segments with a 64-character first segment")]
    Shape,
}

/// Decode wire bytes into the six parts.
pub fn decode(bytes: &[u8]) -> Result<IdentifierParts, IdentifierError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(IdentifierError::Lz("odd byte length"));
    }
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    let text = decompress(&units)?;
    let text = String::from_utf16(&text).map_err(|_| IdentifierError::Lz("lone surrogate"))?;
    let segs: Vec<&str> = text.split('.').collect();
    let [first, buyer, sig, key, addr] = segs.as_slice() else {
        return Err(IdentifierError::Shape);
    };
    // The nonce is the first 64 characters (UTF-16 units in the reference; the
    // nonce is ASCII hex, so characters and units agree whenever it matches).
    let Some((split, _)) = first
        .char_indices()
        .nth(64)
        .or(if first.chars().count() == 64 {
            Some((first.len(), ' '))
        } else {
            None
        })
    else {
        return Err(IdentifierError::Shape);
    };
    Ok(IdentifierParts {
        seller_nonce: first[..split].to_owned(),
        agent_identifier: first[split..].to_owned(),
        buyer_nonce: (*buyer).to_owned(),
        reference_signature: (*sig).to_owned(),
        reference_key: (*key).to_owned(),
        contract_address: (*addr).to_owned(),
    })
}

struct Bits<'a> {
    input: &'a [u16],
    val: u16,
    position: u16,
    index: usize,
}

const RESET: u16 = 32768;

impl Bits<'_> {
    fn next_unit(&self, i: usize) -> u16 {
        self.input.get(i).copied().unwrap_or(0)
    }
    fn read(&mut self, n: u32) -> u32 {
        let mut bits = 0u32;
        for k in 0..n {
            let b = self.val & self.position;
            self.position >>= 1;
            if self.position == 0 {
                self.position = RESET;
                self.val = self.next_unit(self.index);
                self.index += 1;
            }
            if b != 0 {
                bits |= 1 << k;
            }
        }
        bits
    }
}

/// A dictionary entry: a literal not yet emitted, or a range of the output
/// (every non-literal entry is the previous phrase plus one character, and the
/// two were emitted next to each other, so it is a contiguous slice of `out`).
#[derive(Clone, Copy)]
enum Entry {
    Reserved,
    Literal(u16),
    Range(usize, usize),
}

/// LZString's 16-bit-per-character decompression, bounded.
fn decompress(input: &[u16]) -> Result<Vec<u16>, IdentifierError> {
    let Some(&first_unit) = input.first() else {
        return Err(IdentifierError::Lz("empty"));
    };
    let mut r = Bits {
        input,
        val: first_unit,
        position: RESET,
        index: 1,
    };
    // Codes 0..3 are reserved; dictionary codes start at 3.
    let mut dict: Vec<Entry> = vec![Entry::Reserved; 3];
    let mut enlarge_in: u64 = 4;
    let mut num_bits: u32 = 3;
    let first = match r.read(2) {
        0 => r.read(8) as u16,
        1 => r.read(16) as u16,
        2 => return Err(IdentifierError::Lz("empty stream")),
        _ => return Err(IdentifierError::Lz("bad first code")),
    };
    dict.push(Entry::Literal(first));
    let mut out = vec![first];
    // The previous phrase, as a range of `out`.
    let mut prev = (0usize, 1usize);
    loop {
        if r.index > input.len() {
            return Err(IdentifierError::Lz("truncated"));
        }
        if num_bits > 24 {
            return Err(IdentifierError::Lz("code width overflow"));
        }
        let mut c = r.read(num_bits) as usize;
        match c {
            0 | 1 => {
                let unit = r.read(if c == 0 { 8 } else { 16 }) as u16;
                dict.push(Entry::Literal(unit));
                c = dict.len() - 1;
                enlarge_in -= 1;
            }
            2 => return Ok(out),
            _ => {}
        }
        if enlarge_in == 0 {
            enlarge_in = 1u64 << num_bits;
            num_bits += 1;
        }
        let start = out.len();
        match dict.get(c).copied() {
            Some(Entry::Literal(u)) => out.push(u),
            Some(Entry::Range(s, l)) => {
                if start + l > MAX_TEXT_UNITS {
                    return Err(IdentifierError::TooLong);
                }
                out.extend_from_within(s..s + l);
            }
            // The phrase being defined: the previous phrase plus its own first unit.
            None if c == dict.len() => {
                if start + prev.1 + 1 > MAX_TEXT_UNITS {
                    return Err(IdentifierError::TooLong);
                }
                out.extend_from_within(prev.0..prev.0 + prev.1);
                out.push(out[prev.0]);
            }
            _ => return Err(IdentifierError::Lz("bad code")),
        }
        if out.len() > MAX_TEXT_UNITS {
            return Err(IdentifierError::TooLong);
        }
        // prev followed directly by this phrase's first unit.
        dict.push(Entry::Range(prev.0, prev.1 + 1));
        enlarge_in -= 1;
        prev = (start, out.len() - start);
        if enlarge_in == 0 {
            enlarge_in = 1u64 << num_bits;
            num_bits += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(v: [&str; 6]) -> IdentifierParts {
        IdentifierParts {
            seller_nonce: v[0].into(),
            agent_identifier: v[1].into(),
            buyer_nonce: v[2].into(),
            reference_signature: v[3].into(),
            reference_key: v[4].into(),
            contract_address: v[5].into(),
        }
    }

    /// `identifier_vectors.json` @c0ed496a, every "cases" entry (28; the spec's
    /// two vectors are its first two): text, wire hex and decoding, both ways.
    #[test]
    fn vectors() {
        let mut cases: Vec<([&str; 6], &str)> = include!("testdata/identifier.in");
        cases.extend::<Vec<([&str; 6], &str)>>(include!("testdata/identifier_more.in"));
        let n = cases.len();
        for (p, hex_wire) in cases {
            let p = parts(p);
            assert_eq!(hex::encode(p.encode()), hex_wire, "{}", p.text());
            assert_eq!(decode(&hex::decode(hex_wire).unwrap()).unwrap(), p);
        }
        assert_eq!(n, 28);
    }

    /// `identifier_vectors.json` @c0ed496a, every "invalid" entry: refused on the
    /// wire. The hex gate is the one `terms` applies to `blockchainIdentifier`
    /// (non-empty, even length, lowercase); what passes it must fail `decode`.
    #[test]
    fn invalid_vectors() {
        let cases: Vec<&str> = include!("testdata/identifier_invalid.in");
        assert_eq!(cases.len(), 9);
        let mut decoded_and_refused = 0;
        for h in cases {
            let gate = !h.is_empty()
                && h.len().is_multiple_of(2)
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if gate {
                assert!(decode(&hex::decode(h).unwrap()).is_err(), "{h}");
                decoded_and_refused += 1;
            }
        }
        // "00", "0000", the over-long text, the bad shape and the short segment.
        assert_eq!(decoded_and_refused, 5);
        // The uppercase copy of case 1 is refused by the gate alone: its bytes decode.
        let upper = "230D7C6574F41D1C0ACC96ADE8EAE04360019F607004D8809C07D005C053019CAE007700BCE8058680D89818C04E44002C035931A2C00DAF5E00AC9BF00B6C401B80473C6535D00E6003CB8B110199DB615001CA8EECC6019B58076C603B13763A80";
        assert!(decode(&hex::decode(upper).unwrap()).is_ok());
    }

    #[test]
    fn hostile_inputs_are_refused() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[0x12]).is_err());
        assert!(decode(&[0xff; 64]).is_err());
        // Many dots but the wrong shape.
        let p = IdentifierParts {
            seller_nonce: "ab".repeat(32),
            agent_identifier: ".".into(),
            buyer_nonce: String::new(),
            reference_signature: String::new(),
            reference_key: String::new(),
            contract_address: String::new(),
        };
        assert_eq!(decode(&p.encode()), Err(IdentifierError::Shape));
        // A text longer than the bound decompresses to TooLong, not an allocation storm.
        let long = lz_str::compress_to_uint8_array("a".repeat(MAX_TEXT_UNITS + 10).as_str());
        assert_eq!(decode(&long), Err(IdentifierError::TooLong));
        // A short first segment.
        let short = lz_str::compress_to_uint8_array("abc.d.e.f.g");
        assert_eq!(decode(&short), Err(IdentifierError::Shape));
    }
}
