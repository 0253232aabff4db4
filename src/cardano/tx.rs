//! [`ParsedTx`]: a read-only, owned view over one signed Cardano transaction.
//!
//! Every payload the facilitator receives is decoded exactly once, here, and
//! the rest of the service (verify pipeline, devnet ledger, settlement) reads
//! the plain Rust fields of the result. Decoding is *total*: any byte string
//! yields either a `ParsedTx` or a typed [`TxDecodeError`], never a panic,
//! a stack overflow or an unbounded allocation:
//!
//! 1. [`super::cbor::scan_single_item`] proves the input is exactly one
//!    well-formed CBOR item (bounded depth, no duplicate map keys, no trailing
//!    bytes) without recursion;
//! 2. [`super::shape::check`] walks the record shapes as the node decodes
//!    them: every fixed-shape record (the transaction, inputs, outputs,
//!    values, witnesses, ...) holds exactly its element count whether its
//!    length is definite or indefinite, body and witness-set keys are those
//!    of the Conway CDDL, and repeated set members are recorded;
//! 3. pallas decodes it as a Conway `Tx` (the Conway CDDL also covers
//!    Alonzo/Babbage-formatted transactions, which is also how a Conway node
//!    reads them) inside `catch_unwind` as a last line of defence;
//! 4. the fields are copied out into owned, validated Rust types.
//!
//! The transaction id is blake2b-256 of the body bytes exactly as received
//! (pallas `KeepRaw`), never of a re-encoding.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pallas_codec::minicbor;
use pallas_crypto::hash::Hasher;
use pallas_primitives::conway;

use super::address::{self, AddressKind};
use super::cbor::{self, CborError};
use super::shape::{self, ShapeFacts};
use super::types::{AssetId, TxId, UtxoRef, Value};

/// Why a byte string is not an acceptable signed transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxDecodeError {
    #[error("not a single well-formed CBOR item: {0}")]
    Cbor(#[from] CborError),
    #[error("not a transaction: {0}")]
    Shape(String),
    #[error("transaction body has an unknown or unsupported field {0}")]
    UnknownBodyField(u64),
    #[error("witness set has an unknown field {0}")]
    UnknownWitnessField(u64),
    #[error("transaction does not decode: {0}")]
    Decode(String),
    #[error("invalid field: {0}")]
    InvalidField(String),
    #[error("the outputs' total value overflows 64 bits")]
    ValueOverflow,
    #[error("the decoder failed unexpectedly on this input")]
    DecoderPanicked,
}

/// One transaction output, copied out of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOut {
    /// Raw address bytes (header first), already checked to be a Shelley or Byron address.
    pub address: Vec<u8>,
    pub value: Value,
    /// The output's bytes exactly as they appear in the body; the min-UTxO rule sizes these.
    pub raw_cbor: Vec<u8>,
    pub has_datum: bool,
    pub has_script_ref: bool,
    /// Size the Conway fee rule charges for this output's reference script
    /// when a later transaction spends or references it ([`shape::script_ref_size`]).
    pub script_ref_size: Option<u64>,
}

/// A verification-key witness whose sizes are right (32-byte key, 64-byte signature).
/// Whether the signature is *valid* is [`ParsedTx::verify_witnesses`]'s business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VkeyWitness {
    pub vkey: [u8; 32],
    pub signature: [u8; 64],
}

impl VkeyWitness {
    /// Blake2b-224 of the verification key: the key hash addresses commit to.
    pub fn key_hash(&self) -> [u8; 28] {
        key_hash(&self.vkey)
    }
}

pub use super::ed25519::key_hash;

/// Why the witnesses do not authorise the transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    #[error("the transaction carries no verification-key witness")]
    Unsigned,
    #[error("verification-key witness #{index} is malformed or its signature is invalid")]
    Invalid { index: usize },
}

/// The decoded transaction. Cheap to share behind an `Arc`; immutable.
#[derive(Debug, Clone)]
pub struct ParsedTx {
    raw: Vec<u8>,
    /// Where the body, the witness set and the auxiliary data lie in `raw`.
    body_span: (usize, usize),
    witness_span: (usize, usize),
    id: TxId,
    inputs: Vec<UtxoRef>,
    reference_inputs: Vec<UtxoRef>,
    collateral_inputs: Vec<UtxoRef>,
    outputs: Vec<TxOut>,
    total_output: Value,
    fee: u64,
    ttl: Option<u64>,
    validity_start: Option<u64>,
    network_id: Option<u8>,
    is_valid: bool,
    vkey_witnesses: Vec<VkeyWitness>,
    /// Index of the first witness whose key or signature has the wrong size.
    malformed_witness: Option<usize>,
    required_signers: Vec<[u8; 28]>,
    aux_data_hash: Option<[u8; 32]>,
    aux_span: Option<(usize, usize)>,
    features: Vec<&'static str>,
    /// Body sets listing a member twice (see [`ParsedTx::duplicate_set_members`]).
    duplicate_sets: Vec<&'static str>,
}

fn utxo_ref(i: &conway::TransactionInput) -> Result<UtxoRef, TxDecodeError> {
    let index = u32::try_from(i.index).map_err(|_| {
        TxDecodeError::InvalidField(format!("input index {} does not fit 32 bits", i.index))
    })?;
    Ok(UtxoRef::new(TxId(*i.transaction_id), index))
}

fn refs<'a>(
    it: impl IntoIterator<Item = &'a conway::TransactionInput>,
) -> Result<Vec<UtxoRef>, TxDecodeError> {
    it.into_iter().map(utxo_ref).collect()
}

fn asset_id(policy: &pallas_crypto::hash::Hash<28>, name: &[u8]) -> Result<AssetId, TxDecodeError> {
    if name.len() > 32 {
        return Err(TxDecodeError::InvalidField(format!(
            "asset name of {} bytes (max 32)",
            name.len()
        )));
    }
    Ok(AssetId {
        policy: **policy,
        name: name.to_vec(),
    })
}

fn conway_value(v: &conway::Value) -> Result<Value, TxDecodeError> {
    match v {
        conway::Value::Coin(c) => Ok(Value::lovelace(*c)),
        conway::Value::Multiasset(c, ma) => {
            let mut out = Value::lovelace(*c);
            for (policy, names) in ma.iter() {
                if names.is_empty() {
                    return Err(TxDecodeError::InvalidField(
                        "a policy with no assets in an output value".into(),
                    ));
                }
                for (name, q) in names.iter() {
                    out.checked_add_asset(asset_id(policy, name)?, u64::from(q))
                        .ok_or(TxDecodeError::ValueOverflow)?;
                }
            }
            Ok(out)
        }
    }
}

fn legacy_value(v: &pallas_primitives::alonzo::Value) -> Result<Value, TxDecodeError> {
    match v {
        pallas_primitives::alonzo::Value::Coin(c) => Ok(Value::lovelace(*c)),
        pallas_primitives::alonzo::Value::Multiasset(c, ma) => {
            let mut out = Value::lovelace(*c);
            for (policy, names) in ma.iter() {
                if names.is_empty() {
                    return Err(TxDecodeError::InvalidField(
                        "a policy with no assets in an output value".into(),
                    ));
                }
                for (name, q) in names.iter() {
                    if *q == 0 {
                        return Err(TxDecodeError::InvalidField(
                            "zero asset quantity in an output".into(),
                        ));
                    }
                    out.checked_add_asset(asset_id(policy, name)?, *q)
                        .ok_or(TxDecodeError::ValueOverflow)?;
                }
            }
            Ok(out)
        }
    }
}

/// Output `ix`; `raw` is its bytes as received and `script_ref_size` what the
/// shape walk measured for it.
fn output(
    ix: usize,
    o: &conway::TransactionOutput<'_>,
    raw: &[u8],
    script_ref_size: Option<u64>,
) -> Result<TxOut, TxDecodeError> {
    let (addr, value, has_datum, has_script_ref) = match o {
        conway::TransactionOutput::Legacy(l) => (
            &l.address[..],
            legacy_value(&l.amount)?,
            l.datum_hash.is_some(),
            false,
        ),
        conway::TransactionOutput::PostAlonzo(p) => (
            &p.address[..],
            conway_value(&p.value)?,
            p.datum_option.is_some(),
            p.script_ref.is_some(),
        ),
    };
    match address::classify(addr) {
        Ok(AddressKind::Shelley { .. } | AddressKind::Byron) => {}
        Ok(AddressKind::Reward { .. }) => {
            return Err(TxDecodeError::InvalidField(format!(
                "output {ix} pays a reward address"
            )));
        }
        Err(e) => {
            return Err(TxDecodeError::InvalidField(format!(
                "output {ix} address: {e}"
            )));
        }
    }
    Ok(TxOut {
        address: addr.to_vec(),
        value,
        raw_cbor: raw.to_vec(),
        has_datum,
        has_script_ref,
        script_ref_size,
    })
}

impl ParsedTx {
    /// Decode exactly one signed transaction; see the module docs for the guarantees.
    pub fn decode(bytes: &[u8]) -> Result<ParsedTx, TxDecodeError> {
        cbor::scan_single_item(bytes, cbor::DEFAULT_MAX_DEPTH)?;
        let facts = shape::check(bytes)?;
        match catch_unwind(AssertUnwindSafe(|| Self::decode_checked(bytes, facts))) {
            Ok(r) => r,
            Err(_) => Err(TxDecodeError::DecoderPanicked),
        }
    }

    fn decode_checked(bytes: &[u8], facts: ShapeFacts) -> Result<ParsedTx, TxDecodeError> {
        // pallas reads the fields from a copy with definite lengths (some of
        // its decoders refuse indefinite ones the node accepts); every byte
        // that is hashed or measured comes from the original.
        let definite = cbor::definite_lengths(bytes)?;
        let input = definite.as_deref().unwrap_or(bytes);
        let mut d = minicbor::Decoder::new(input);
        let tx: conway::Tx<'_> = d
            .decode()
            .map_err(|e| TxDecodeError::Decode(e.to_string()))?;
        if d.position() != input.len() {
            // The scanner already proved this; keep the decoder honest too.
            return Err(TxDecodeError::Cbor(CborError::TrailingBytes {
                end: d.position(),
                trailing: input.len() - d.position(),
            }));
        }
        let span = |(a, b): (usize, usize)| bytes.get(a..b).unwrap_or_default();
        let body_raw = span(facts.body_span);
        let body = &tx.transaction_body;
        let wits = &tx.transaction_witness_set;
        let id = TxId(*Hasher::<256>::hash(body_raw));

        let inputs = refs(body.inputs.iter())?;
        if inputs.is_empty() {
            return Err(TxDecodeError::InvalidField(
                "the transaction has no inputs".into(),
            ));
        }
        // A repeated input is not refused here but recorded (facts.duplicate_sets):
        // the verify pipeline and the ledger refuse it, each at its own step.
        let reference_inputs = match &body.reference_inputs {
            Some(r) => refs(r.iter())?,
            None => Vec::new(),
        };
        let collateral_inputs = match &body.collateral {
            Some(r) => refs(r.iter())?,
            None => Vec::new(),
        };
        // Each output's bytes come from the shape walk's spans (the
        // original encoding); a count mismatch is refused just below.
        let mut outputs = Vec::with_capacity(body.outputs.len());
        for (i, o) in body.outputs.iter().enumerate() {
            let raw = facts.output_spans.get(i).map_or(&[][..], |at| span(*at));
            let size = facts.script_ref_sizes.get(i).copied().flatten();
            outputs.push(output(i, o, raw, size)?);
        }
        if outputs.len() != facts.output_spans.len() {
            return Err(TxDecodeError::Decode("output count disagrees".into()));
        }
        let mut total_output = Value::default();
        for o in &outputs {
            total_output = total_output
                .checked_add(&o.value)
                .ok_or(TxDecodeError::ValueOverflow)?;
        }
        // Outputs plus fee is the "consumed" side of value conservation; it must fit too.
        total_output
            .coin
            .checked_add(body.fee)
            .ok_or(TxDecodeError::ValueOverflow)?;

        let mut vkey_witnesses = Vec::new();
        let mut malformed_witness = None;
        if let Some(ws) = &wits.vkeywitness {
            for (i, w) in ws.iter().enumerate() {
                match (
                    <[u8; 32]>::try_from(&w.vkey[..]),
                    <[u8; 64]>::try_from(&w.signature[..]),
                ) {
                    (Ok(vkey), Ok(signature)) => {
                        vkey_witnesses.push(VkeyWitness { vkey, signature })
                    }
                    _ => {
                        if malformed_witness.is_none() {
                            malformed_witness = Some(i);
                        }
                    }
                }
            }
        }

        let mut features = Vec::new();
        if body.mint.is_some() {
            features.push("mint");
        }
        if body.withdrawals.is_some() {
            features.push("withdrawals");
        }
        if body.certificates.is_some() {
            features.push("certificates");
        }
        if body.voting_procedures.is_some() {
            features.push("votes");
        }
        if body.proposal_procedures.is_some() {
            features.push("proposals");
        }
        if body.treasury_value.is_some() || body.donation.is_some() {
            features.push("treasury");
        }
        if body.script_data_hash.is_some()
            || wits.native_script.is_some()
            || wits.plutus_v1_script.is_some()
            || wits.plutus_v2_script.is_some()
            || wits.plutus_v3_script.is_some()
            || wits.plutus_data.is_some()
            || wits.redeemer.is_some()
        {
            features.push("scripts");
        }
        if body.collateral.is_some()
            || body.collateral_return.is_some()
            || body.total_collateral.is_some()
        {
            features.push("collateral");
        }
        if body.reference_inputs.is_some() {
            features.push("reference_inputs");
        }
        if wits.bootstrap_witness.is_some() {
            features.push("bootstrap_witnesses");
        }
        if !tx.success {
            features.push("is_valid_false");
        }

        let required_signers = match &body.required_signers {
            Some(s) => s.iter().map(|h| **h).collect(),
            None => Vec::new(),
        };
        // The body, witness set and auxiliary data are kept as spans, not
        // copies: `raw` below holds the same bytes at the same offsets.

        Ok(ParsedTx {
            raw: bytes.to_vec(),
            body_span: facts.body_span,
            witness_span: facts.witness_span,
            id,
            inputs,
            reference_inputs,
            collateral_inputs,
            outputs,
            total_output,
            fee: body.fee,
            ttl: body.ttl,
            validity_start: body.validity_interval_start,
            network_id: body.network_id.map(u8::from),
            is_valid: tx.success,
            vkey_witnesses,
            malformed_witness,
            required_signers,
            aux_data_hash: body.auxiliary_data_hash.map(|h| *h),
            aux_span: facts.aux_span,
            features,
            duplicate_sets: facts.duplicate_sets,
        })
    }

    /// Canonical id: blake2b-256 of the original body bytes.
    pub fn id(&self) -> TxId {
        self.id
    }
    /// The whole transaction exactly as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
    /// Serialized size in bytes (what the fee and max-size rules measure).
    pub fn size(&self) -> usize {
        self.raw.len()
    }
    /// The body bytes exactly as received (the id hashes these).
    pub fn body_raw(&self) -> &[u8] {
        self.slice(self.body_span)
    }
    /// The witness-set bytes exactly as received.
    pub fn witness_set_raw(&self) -> &[u8] {
        self.slice(self.witness_span)
    }
    /// Spent inputs, in the order the body lists them.
    pub fn inputs(&self) -> &[UtxoRef] {
        &self.inputs
    }
    pub fn reference_inputs(&self) -> &[UtxoRef] {
        &self.reference_inputs
    }
    pub fn collateral_inputs(&self) -> &[UtxoRef] {
        &self.collateral_inputs
    }
    pub fn outputs(&self) -> &[TxOut] {
        &self.outputs
    }
    /// Sum of all output values (checked at decode time to fit 64 bits per asset).
    pub fn total_output(&self) -> &Value {
        &self.total_output
    }
    pub fn fee(&self) -> u64 {
        self.fee
    }
    /// Upper validity bound (exclusive), in slots.
    pub fn ttl(&self) -> Option<u64> {
        self.ttl
    }
    /// Lower validity bound (inclusive), in slots.
    pub fn validity_start(&self) -> Option<u64> {
        self.validity_start
    }
    /// Body field 15, when present.
    pub fn network_id(&self) -> Option<u8> {
        self.network_id
    }
    pub fn is_valid_flag(&self) -> bool {
        self.is_valid
    }
    /// Well-sized vkey witnesses, in witness-set order (malformed ones excluded;
    /// [`ParsedTx::verify_witnesses`] reports those).
    pub fn vkey_witnesses(&self) -> &[VkeyWitness] {
        &self.vkey_witnesses
    }
    pub fn required_signers(&self) -> &[[u8; 28]] {
        &self.required_signers
    }
    /// Body field 7.
    pub fn auxiliary_data_hash(&self) -> Option<&[u8; 32]> {
        self.aux_data_hash.as_ref()
    }
    /// The auxiliary data bytes exactly as received.
    pub fn auxiliary_data_raw(&self) -> Option<&[u8]> {
        self.aux_span.map(|at| self.slice(at))
    }
    /// The bytes of `raw` in `a..b` (empty if out of range, as the copies were).
    fn slice(&self, (a, b): (usize, usize)) -> &[u8] {
        self.raw.get(a..b).unwrap_or_default()
    }

    /// Body sets that list a member twice: any of `inputs`,
    /// `collateral_inputs`, `reference_inputs`, `required_signers`. The Conway
    /// ledger (protocol version 9 on) cannot decode such a transaction.
    pub fn duplicate_set_members(&self) -> &[&'static str] {
        &self.duplicate_sets
    }

    /// Features a plain payment never needs, which this facilitator and the
    /// devnet ledger do not validate: any of `mint`, `withdrawals`,
    /// `certificates`, `votes`, `proposals`, `treasury`, `scripts` (script
    /// witnesses, datums, redeemers or a script data hash), `collateral`,
    /// `reference_inputs`, `bootstrap_witnesses`, `is_valid_false`.
    /// Required signers are supported (they must be witnessed).
    pub fn unsupported_features(&self) -> Vec<&'static str> {
        self.features.clone()
    }

    /// Check every vkey witness and return the key hashes of the signers.
    ///
    /// Each witness must be well-sized and carry a valid Ed25519 signature over
    /// the 32-byte tx id. Verification uses ed25519-dalek's `verify_strict`,
    /// which — like the libsodium verification the Cardano node uses — rejects
    /// small-order public keys and R points and non-canonical S scalars, so a
    /// signature accepted here is not one the node would refuse for malleability.
    pub fn verify_witnesses(&self) -> Result<BTreeSet<[u8; 28]>, WitnessError> {
        if let Some(index) = self.malformed_witness {
            return Err(WitnessError::Invalid { index });
        }
        if self.vkey_witnesses.is_empty() {
            return Err(WitnessError::Unsigned);
        }
        let mut signers = BTreeSet::new();
        for (index, w) in self.vkey_witnesses.iter().enumerate() {
            let Some(signer) = super::ed25519::verify(&w.vkey, self.id.as_bytes(), &w.signature)
            else {
                return Err(WitnessError::Invalid { index });
            };
            signers.insert(signer);
        }
        Ok(signers)
    }
}

/// Strict Ed25519 verification (see [`ParsedTx::verify_witnesses`] and
/// [`super::ed25519`]).
pub fn verify_ed25519(vkey: &[u8; 32], msg: &[u8], signature: &[u8; 64]) -> bool {
    super::ed25519::verify(vkey, msg, signature).is_some()
}

// The fixtures are built and signed by the buyer's builder.
#[cfg(all(test, feature = "buyer"))]
mod tests {
    use super::*;
    use crate::buyer::builder::{self, OutputSpec, TxBody};
    use crate::buyer::keys::SigningKey;

    fn fixture(hex_text: &str) -> Vec<u8> {
        hex::decode(hex_text.trim()).unwrap()
    }

    const FIXTURES: &[(&str, &str)] = &[
        (
            include_str!("../../tests/it/fixtures/mainnet_90bd64b1.tx.hex"),
            "90bd64b133e327daecfa0cc60c26f3b96fc6f0285a6d96cc122819908b3aaf93",
        ),
        (
            include_str!("../../tests/it/fixtures/mainnet_3e1ae85c.tx.hex"),
            "3e1ae85c08b610d5d03e67cf90e78980d1d2f54ffc50c21672e24180b450d354",
        ),
        (
            include_str!("../../tests/it/fixtures/preview_b41ebebf.tx.hex"),
            "b41ebebf5234b645f9b0767ac541e1d9ea680b763d9b105554ef3b41acdbd36f",
        ),
    ];

    #[test]
    fn real_transactions_decode_to_their_on_chain_ids() {
        for (hex_text, id) in FIXTURES {
            let bytes = fixture(hex_text);
            let tx = ParsedTx::decode(&bytes).unwrap();
            assert_eq!(tx.id().to_hex(), *id);
            assert_eq!(tx.raw(), &bytes[..]);
            assert_eq!(tx.size(), bytes.len());
            // The witnesses sign the id we computed: an independent check of the hashing.
            let signers = tx.verify_witnesses().unwrap();
            assert_eq!(signers.len(), tx.vkey_witnesses().len());
        }
    }

    #[test]
    fn simple_mainnet_payment_fields() {
        let tx = ParsedTx::decode(&fixture(FIXTURES[0].0)).unwrap();
        assert_eq!(tx.inputs().len(), 1);
        assert_eq!(
            tx.inputs()[0].to_string(),
            "3f62dbe3279603d26f4e54728e6f10cdc479974f1f6d94c32fe39a0689efa981#0"
        );
        assert_eq!(tx.outputs().len(), 2);
        assert_eq!(tx.outputs()[0].value, Value::lovelace(10_000_000));
        assert_eq!(tx.outputs()[1].value, Value::lovelace(5_000_000));
        assert_eq!(tx.fee(), 5_000_000);
        assert_eq!(tx.ttl(), None);
        assert_eq!(tx.network_id(), None);
        assert!(tx.is_valid_flag());
        assert!(tx.unsupported_features().is_empty());
        assert_eq!(tx.outputs()[0].raw_cbor.len(), 1 + 2 + 57 + 5);
    }

    #[test]
    fn script_transactions_report_unsupported_features() {
        let tx = ParsedTx::decode(&fixture(FIXTURES[1].0)).unwrap();
        let f = tx.unsupported_features();
        assert!(f.contains(&"scripts"), "{f:?}");
        assert!(f.contains(&"collateral"), "{f:?}");
        assert!(f.contains(&"reference_inputs"), "{f:?}");
        assert_eq!(tx.collateral_inputs().len(), 1);
        assert_eq!(tx.reference_inputs().len(), 1);
    }

    #[test]
    fn nothing_before_or_after_the_transaction() {
        let bytes = fixture(FIXTURES[0].0);
        let mut trailing = bytes.clone();
        trailing.push(0x00);
        assert!(matches!(
            ParsedTx::decode(&trailing),
            Err(TxDecodeError::Cbor(CborError::TrailingBytes { .. }))
        ));
        let mut twice = bytes.clone();
        twice.extend_from_slice(&bytes);
        assert!(ParsedTx::decode(&twice).is_err());
        let mut prefixed = vec![0x00];
        prefixed.extend_from_slice(&bytes);
        assert!(ParsedTx::decode(&prefixed).is_err());
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(ParsedTx::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(ParsedTx::decode(&[]).is_err());
    }

    #[test]
    fn wrong_shapes_are_typed_errors() {
        // a bare integer, an empty array, a 3-element (pre-Alonzo) tx, a body with field 6
        for hex_s in ["00", "80", "83a0a0f6", "84a10600a0f5f6", "84a0a0f5f6"] {
            let r = ParsedTx::decode(&hex::decode(hex_s).unwrap());
            assert!(r.is_err(), "{hex_s}: {r:?}");
        }
        assert_eq!(
            ParsedTx::decode(&hex::decode("84a10600a0f5f6").unwrap()).unwrap_err(),
            TxDecodeError::UnknownBodyField(6)
        );
    }

    fn sample_body(key: &SigningKey) -> TxBody {
        let addr = key.enterprise_address_bytes(crate::cardano::Network::Preprod);
        TxBody {
            inputs: vec![
                UtxoRef::new(TxId([1; 32]), 0),
                UtxoRef::new(TxId([2; 32]), 3),
            ],
            outputs: vec![OutputSpec {
                address: addr,
                value: Value::lovelace(2_000_000),
            }],
            fee: 200_000,
            ttl: Some(1_000),
            validity_start: Some(10),
            network_id: Some(0),
            ..TxBody::default()
        }
    }

    #[test]
    fn witness_order_does_not_change_the_id() {
        let (k1, k2) = (
            SigningKey::from_seed([1; 32]),
            SigningKey::from_seed([2; 32]),
        );
        let body = sample_body(&k1);
        let built = builder::sign_body(&body, &[k1, k2]);
        let a = ParsedTx::decode(&built.tx).unwrap();
        let mut rev = built.witnesses.clone();
        rev.reverse();
        let reordered = builder::assemble(
            &built.body_bytes,
            &builder::encode_witness_set(&rev),
            true,
            None,
        );
        let b = ParsedTx::decode(&reordered).unwrap();
        assert_ne!(a.raw(), b.raw());
        assert_eq!(a.id(), b.id());
        assert_eq!(a.verify_witnesses().unwrap(), b.verify_witnesses().unwrap());
        assert_eq!(a.ttl(), Some(1_000));
        assert_eq!(a.validity_start(), Some(10));
        assert_eq!(a.network_id(), Some(0));
    }

    #[test]
    fn witness_errors() {
        let k = SigningKey::from_seed([1; 32]);
        let body = sample_body(&k);
        let body_bytes = builder::encode_body(&body);
        let unsigned =
            builder::assemble(&body_bytes, &builder::encode_witness_set(&[]), true, None);
        assert_eq!(
            ParsedTx::decode(&unsigned).unwrap().verify_witnesses(),
            Err(WitnessError::Unsigned)
        );

        let mut w = builder::sign(&body_bytes, std::slice::from_ref(&k));
        w[0].signature[5] ^= 1;
        let bad = builder::assemble(&body_bytes, &builder::encode_witness_set(&w), true, None);
        assert_eq!(
            ParsedTx::decode(&bad).unwrap().verify_witnesses(),
            Err(WitnessError::Invalid { index: 0 })
        );

        let good = builder::sign(&body_bytes, &[k]);
        let raw = vec![
            (good[0].vkey.to_vec(), good[0].signature.to_vec()),
            (vec![1; 31], vec![2; 64]),
        ];
        let malformed = builder::assemble(
            &body_bytes,
            &builder::encode_witness_set_raw(&raw),
            true,
            None,
        );
        assert_eq!(
            ParsedTx::decode(&malformed).unwrap().verify_witnesses(),
            Err(WitnessError::Invalid { index: 1 })
        );

        // A small-order public key (the identity point) with an all-zero-ish signature: strict rejects.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let weak = builder::assemble(
            &body_bytes,
            &builder::encode_witness_set(&[VkeyWitness {
                vkey: ident,
                signature: sig,
            }]),
            true,
            None,
        );
        assert_eq!(
            ParsedTx::decode(&weak).unwrap().verify_witnesses(),
            Err(WitnessError::Invalid { index: 0 })
        );
    }

    #[test]
    fn output_value_overflow_is_a_typed_error() {
        let k = SigningKey::from_seed([1; 32]);
        let mut body = sample_body(&k);
        let addr = body.outputs[0].address.clone();
        body.outputs = vec![
            OutputSpec {
                address: addr.clone(),
                value: Value::lovelace(u64::MAX),
            },
            OutputSpec {
                address: addr,
                value: Value::lovelace(1),
            },
        ];
        let built = builder::sign_body(&body, &[k]);
        assert_eq!(
            ParsedTx::decode(&built.tx).unwrap_err(),
            TxDecodeError::ValueOverflow
        );
    }

    #[test]
    fn duplicate_inputs_and_unsupported_fields() {
        let k = SigningKey::from_seed([1; 32]);
        let mut body = sample_body(&k);
        body.inputs = vec![
            UtxoRef::new(TxId([1; 32]), 0),
            UtxoRef::new(TxId([1; 32]), 0),
        ];
        let built = builder::sign_body(&body, std::slice::from_ref(&k));
        let twice = ParsedTx::decode(&built.tx).unwrap();
        assert_eq!(twice.duplicate_set_members(), ["inputs"]);
        assert_eq!(twice.inputs().len(), 2);

        let mut body = sample_body(&k);
        // mint: {policy: {name: 1}}
        let mut mint = vec![0xa1, 0x58, 0x1c];
        mint.extend_from_slice(&[9; 28]);
        mint.extend_from_slice(&[0xa1, 0x41, 0x41, 0x01]);
        body.extra_fields = vec![(9, mint), (5, vec![0xa0])];
        let built = builder::sign_body(&body, &[k]);
        let tx = ParsedTx::decode(&built.tx).unwrap();
        assert_eq!(tx.unsupported_features(), vec!["mint", "withdrawals"]);
    }
}
