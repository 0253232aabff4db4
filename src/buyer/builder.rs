//! Building and signing simple payments.
//!
//! The facilitator never signs buyer payments. This module exists for the demo
//! buyer, the load driver and the tests, which need real,
//! signed Conway transactions — including deliberately broken ones. The
//! pieces are therefore exposed separately: a [`TxBody`] you can edit, the
//! body's encoding, witnesses, the witness set and the final assembly.
//!
//! Encoding follows what cardano-cli produces in Conway: sets carry tag 258,
//! outputs use the post-Alonzo map form, map keys are in ascending order.

use std::collections::BTreeMap;

use pallas_codec::minicbor::Encoder;
use pallas_crypto::hash::Hasher;

use super::keys::SigningKey;
use crate::cardano::ProtocolParams;
use crate::cardano::phase1;
use crate::cardano::tx::{ParsedTx, TxOut, VkeyWitness};
use crate::cardano::types::{AssetId, TxId, UtxoRef, Value};

/// Why a payment could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("no inputs")]
    NoInputs,
    #[error("inputs do not cover outputs plus fee: {0}")]
    InsufficientFunds(String),
    #[error("a value total overflows 64 bits")]
    Overflow,
    #[error("fee did not converge")]
    NoConvergence,
    #[error("the built transaction does not decode: {0}")]
    SelfCheck(String),
}

/// A spendable input and the value it holds (the builder needs it for change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub utxo: UtxoRef,
    pub value: Value,
}

/// An output to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// Raw address bytes.
    pub address: Vec<u8>,
    pub value: Value,
}

/// An editable transaction body. Encoded in ascending key order by [`encode_body`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxBody {
    pub inputs: Vec<UtxoRef>,
    pub outputs: Vec<OutputSpec>,
    pub fee: u64,
    pub ttl: Option<u64>,
    pub validity_start: Option<u64>,
    pub network_id: Option<u8>,
    pub required_signers: Vec<[u8; 28]>,
    pub auxiliary_data_hash: Option<[u8; 32]>,
    /// Extra body fields as (key, raw CBOR value), for tests that need e.g. a mint (9).
    pub extra_fields: Vec<(u64, Vec<u8>)>,
}

/// What a payment should do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentSpec {
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Where the remainder goes (raw address bytes).
    pub change_address: Vec<u8>,
    pub validity_start: Option<u64>,
    pub ttl: Option<u64>,
    /// Body field 15; `None` leaves it out (as most wallets do).
    pub network_id: Option<u8>,
}

/// A built, signed payment.
#[derive(Debug, Clone)]
pub struct Built {
    pub body: TxBody,
    pub body_bytes: Vec<u8>,
    pub tx_id: TxId,
    pub fee: u64,
    pub witnesses: Vec<VkeyWitness>,
    /// The signed transaction CBOR.
    pub tx: Vec<u8>,
}

fn enc_value(e: &mut Encoder<&mut Vec<u8>>, v: &Value) {
    // Writing to a Vec cannot fail; the results are ignored deliberately.
    if v.assets.is_empty() {
        let _ = e.u64(v.coin);
        return;
    }
    let mut by_policy: BTreeMap<[u8; 28], Vec<(&[u8], u64)>> = BTreeMap::new();
    for (AssetId { policy, name }, q) in &v.assets {
        by_policy.entry(*policy).or_default().push((name, *q));
    }
    let _ = e.array(2);
    let _ = e.u64(v.coin);
    let _ = e.map(by_policy.len() as u64);
    for (policy, names) in by_policy {
        let _ = e.bytes(&policy);
        let _ = e.map(names.len() as u64);
        for (name, q) in names {
            let _ = e.bytes(name);
            let _ = e.u64(q);
        }
    }
}

/// Encode one output in the post-Alonzo map form `{0: address, 1: value}`.
pub fn encode_output(o: &OutputSpec) -> Vec<u8> {
    encode_output_with_datum(o, None)
}

/// Inline datums to attach, by output index (the CBOR of each datum, written verbatim).
pub type OutputDatums = BTreeMap<usize, Vec<u8>>;

/// Encode one output, with an inline datum when given:
/// `{0: address, 1: value, 2: [1, #6.24(bytes .cbor datum)]}`.
pub fn encode_output_with_datum(o: &OutputSpec, inline_datum: Option<&[u8]>) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut e = Encoder::new(&mut buf);
    let _ = e.map(if inline_datum.is_some() { 3 } else { 2 });
    let _ = e.u8(0);
    let _ = e.bytes(&o.address);
    let _ = e.u8(1);
    enc_value(&mut e, &o.value);
    if let Some(d) = inline_datum {
        let _ = e.u8(2);
        let _ = e.array(2);
        let _ = e.u8(1);
        let _ = e.tag(pallas_codec::minicbor::data::Tag::new(24));
        let _ = e.bytes(d);
    }
    buf
}

fn enc_input_set(e: &mut Encoder<&mut Vec<u8>>, inputs: &[UtxoRef]) {
    let mut sorted = inputs.to_vec();
    sorted.sort();
    let _ = e.tag(pallas_codec::minicbor::data::Tag::new(258));
    let _ = e.array(sorted.len() as u64);
    for i in sorted {
        let _ = e.array(2);
        let _ = e.bytes(i.tx_id.as_bytes());
        let _ = e.u32(i.index);
    }
}

/// Encode a body as a CBOR map with ascending keys.
pub fn encode_body(b: &TxBody) -> Vec<u8> {
    encode_body_with_datums(b, &OutputDatums::new())
}

/// [`encode_body`], attaching `datums` as inline datums to the outputs they index.
pub fn encode_body_with_datums(b: &TxBody, datums: &OutputDatums) -> Vec<u8> {
    let mut fields: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut field = |k: u64, f: &dyn Fn(&mut Encoder<&mut Vec<u8>>)| {
        let mut buf = Vec::new();
        f(&mut Encoder::new(&mut buf));
        fields.push((k, buf));
    };
    field(0, &|e| enc_input_set(e, &b.inputs));
    field(1, &|e| {
        let _ = e.array(b.outputs.len() as u64);
        for (i, o) in b.outputs.iter().enumerate() {
            let datum = datums.get(&i).map(Vec::as_slice);
            e.writer_mut()
                .extend_from_slice(&encode_output_with_datum(o, datum));
        }
    });
    field(2, &|e| {
        let _ = e.u64(b.fee);
    });
    if let Some(t) = b.ttl {
        field(3, &|e| {
            let _ = e.u64(t);
        });
    }
    if let Some(h) = b.auxiliary_data_hash {
        field(7, &|e| {
            let _ = e.bytes(&h);
        });
    }
    if let Some(s) = b.validity_start {
        field(8, &|e| {
            let _ = e.u64(s);
        });
    }
    if !b.required_signers.is_empty() {
        field(14, &|e| {
            let _ = e.tag(pallas_codec::minicbor::data::Tag::new(258));
            let _ = e.array(b.required_signers.len() as u64);
            for h in &b.required_signers {
                let _ = e.bytes(h);
            }
        });
    }
    if let Some(n) = b.network_id {
        field(15, &|e| {
            let _ = e.u8(n);
        });
    }
    for (k, v) in &b.extra_fields {
        fields.push((*k, v.clone()));
    }
    fields.sort_by_key(|(k, _)| *k);
    let mut buf = Vec::new();
    let mut e = Encoder::new(&mut buf);
    let _ = e.map(fields.len() as u64);
    for (k, v) in fields {
        let _ = e.u64(k);
        buf_extend(&mut e, &v);
    }
    buf
}

fn buf_extend(e: &mut Encoder<&mut Vec<u8>>, raw: &[u8]) {
    e.writer_mut().extend_from_slice(raw);
}

/// Blake2b-256 of body bytes: the transaction id.
pub fn tx_id_of(body_bytes: &[u8]) -> TxId {
    TxId(*Hasher::<256>::hash(body_bytes))
}

/// One witness per distinct key, signing the tx id of `body_bytes`.
pub fn sign(body_bytes: &[u8], keys: &[SigningKey]) -> Vec<VkeyWitness> {
    let id = tx_id_of(body_bytes);
    let mut seen = std::collections::BTreeSet::new();
    keys.iter()
        .filter(|k| seen.insert(k.public_key()))
        .map(|k| VkeyWitness {
            vkey: k.public_key(),
            signature: k.sign(id.as_bytes()),
        })
        .collect()
}

/// Encode a witness set `{0: #6.258([[vkey, sig], ...])}` in the given order (empty map if none).
pub fn encode_witness_set(witnesses: &[VkeyWitness]) -> Vec<u8> {
    encode_witness_set_raw(
        &witnesses
            .iter()
            .map(|w| (w.vkey.to_vec(), w.signature.to_vec()))
            .collect::<Vec<_>>(),
    )
}

/// Like [`encode_witness_set`] but with arbitrary byte strings (for malformed-witness tests).
pub fn encode_witness_set_raw(witnesses: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut e = Encoder::new(&mut buf);
    if witnesses.is_empty() {
        let _ = e.map(0);
        return buf;
    }
    let _ = e.map(1);
    let _ = e.u8(0);
    let _ = e.tag(pallas_codec::minicbor::data::Tag::new(258));
    let _ = e.array(witnesses.len() as u64);
    for (vkey, sig) in witnesses {
        let _ = e.array(2);
        let _ = e.bytes(vkey);
        let _ = e.bytes(sig);
    }
    buf
}

/// `[body, witness_set, is_valid, auxiliary_data / null]` from raw parts.
pub fn assemble(
    body_bytes: &[u8],
    witness_set_bytes: &[u8],
    is_valid: bool,
    aux: Option<&[u8]>,
) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut e = Encoder::new(&mut buf);
    let _ = e.array(4);
    buf_extend(&mut e, body_bytes);
    buf_extend(&mut e, witness_set_bytes);
    let _ = e.bool(is_valid);
    match aux {
        Some(a) => buf_extend(&mut e, a),
        None => {
            let _ = e.null();
        }
    }
    buf
}

/// Encode, sign with every key and assemble a body as it is (no fee adjustment).
pub fn sign_body(body: &TxBody, keys: &[SigningKey]) -> Built {
    sign_body_with_datums(body, &OutputDatums::new(), keys)
}

/// [`sign_body`] with inline datums on the outputs `datums` indexes.
pub fn sign_body_with_datums(body: &TxBody, datums: &OutputDatums, keys: &[SigningKey]) -> Built {
    let body_bytes = encode_body_with_datums(body, datums);
    let witnesses = sign(&body_bytes, keys);
    let tx = assemble(&body_bytes, &encode_witness_set(&witnesses), true, None);
    Built {
        tx_id: tx_id_of(&body_bytes),
        fee: body.fee,
        body: body.clone(),
        body_bytes,
        witnesses,
        tx,
    }
}

fn sum(values: impl IntoIterator<Item = Value>) -> Result<Value, BuildError> {
    let mut total = Value::default();
    for v in values {
        total = total.checked_add(&v).ok_or(BuildError::Overflow)?;
    }
    Ok(total)
}

/// `a - b` per asset, `None` if any quantity would go negative.
fn checked_sub(a: &Value, b: &Value) -> Option<Value> {
    let mut out = a.clone();
    out.coin = out.coin.checked_sub(b.coin)?;
    for (id, q) in &b.assets {
        let have = out.assets.get_mut(id)?;
        *have = have.checked_sub(*q)?;
    }
    out.assets.retain(|_, q| *q != 0);
    Some(out)
}

/// Build and sign a payment with the exact minimum fee for its real signed size.
/// Leftover value goes to a change output; leftover ada too small for its own
/// output (and no tokens) is added to the fee instead.
pub fn build_payment(
    spec: &PaymentSpec,
    params: &ProtocolParams,
    keys: &[SigningKey],
) -> Result<Built, BuildError> {
    build_payment_with_datums(spec, &OutputDatums::new(), params, keys)
}

/// [`build_payment`] with inline datums on the `spec.outputs` that `datums` indexes (a script
/// payment). The change output, appended after them, never carries one.
pub fn build_payment_with_datums(
    spec: &PaymentSpec,
    datums: &OutputDatums,
    params: &ProtocolParams,
    keys: &[SigningKey],
) -> Result<Built, BuildError> {
    if spec.inputs.is_empty() {
        return Err(BuildError::NoInputs);
    }
    let available = sum(spec.inputs.iter().map(|i| i.value.clone()))?;
    let paid = sum(spec.outputs.iter().map(|o| o.value.clone()))?;
    let mut fee = 0u64;
    for _ in 0..16 {
        let mut spent = paid.clone();
        spent.coin = spent.coin.checked_add(fee).ok_or(BuildError::Overflow)?;
        let change = checked_sub(&available, &spent).ok_or_else(|| {
            BuildError::InsufficientFunds(format!(
                "need {} lovelace and {:?}",
                spent.coin, spent.assets
            ))
        })?;
        let mut body = TxBody {
            inputs: spec.inputs.iter().map(|i| i.utxo).collect(),
            outputs: spec.outputs.clone(),
            fee,
            ttl: spec.ttl,
            validity_start: spec.validity_start,
            network_id: spec.network_id,
            ..TxBody::default()
        };
        if change != Value::default() {
            let out = OutputSpec {
                address: spec.change_address.clone(),
                value: change.clone(),
            };
            let min = min_utxo_of(&out, params);
            if change.assets.is_empty() && change.coin < min {
                body.fee = fee.checked_add(change.coin).ok_or(BuildError::Overflow)?;
            } else if change.coin < min {
                return Err(BuildError::InsufficientFunds(format!(
                    "change with tokens needs {min} lovelace, only {} left",
                    change.coin
                )));
            } else {
                body.outputs.push(out);
            }
        }
        let built = sign_body_with_datums(&body, datums, keys);
        let needed = params.min_fee(built.tx.len() as u64);
        if built.fee >= needed {
            ParsedTx::decode(&built.tx).map_err(|e| BuildError::SelfCheck(e.to_string()))?;
            return Ok(built);
        }
        fee = needed;
    }
    Err(BuildError::NoConvergence)
}

/// Minimum ada of an output spec, measured on its encoding.
pub fn min_utxo_of(o: &OutputSpec, params: &ProtocolParams) -> u64 {
    min_utxo_with_datum(o, None, params)
}

/// Minimum ada of an output spec carrying `inline_datum`, measured on its encoding.
pub fn min_utxo_with_datum(
    o: &OutputSpec,
    inline_datum: Option<&[u8]>,
    params: &ProtocolParams,
) -> u64 {
    let out = TxOut {
        address: o.address.clone(),
        value: o.value.clone(),
        raw_cbor: encode_output_with_datum(o, inline_datum),
        has_datum: inline_datum.is_some(),
        has_script_ref: false,
        script_ref_size: None,
    };
    phase1::min_utxo(&out, params)
}
