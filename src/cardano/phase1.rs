//! Phase-1 ledger rules for simple payments, as pure functions.
//!
//! One implementation serves two masters: the verify pipeline calls the
//! individual checks (so each failure can carry its own x402 reason code), and
//! the devnet ledger calls [`validate_for_ledger`] to accept or reject a
//! submitted transaction exactly as a node would for the subset of Conway
//! this project supports. Errors name the node's failure (`node_reason`) so a
//! devnet rejection reads like a real one.
//!
//! Scope: key-witnessed spending of key-hash UTxOs with optional metadata and
//! required signers. Transactions using any of
//! [`ParsedTx::unsupported_features`] are rejected outright rather than
//! half-validated.

use std::collections::BTreeSet;

use pallas_crypto::hash::Hasher;

use super::address::{self, AddressKind, Credential};
use super::ledger::{ProtocolParams, RefScript, UtxoInfo, UtxoState};
use super::network::Network;
use super::tx::{ParsedTx, TxOut, WitnessError};
use super::types::{UtxoRef, Value};

/// A phase-1 rule the transaction breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Phase1Error {
    #[error("{}", self.node_reason())]
    UnsupportedFeatures(Vec<&'static str>),
    #[error("{}", self.node_reason())]
    MaxTxSize { size: u64, max: u64 },
    #[error("{}", self.node_reason())]
    WrongNetworkInTxBody { expected: u8, actual: u8 },
    #[error("{}", self.node_reason())]
    WrongNetwork { expected: u8, outputs: Vec<usize> },
    #[error("{}", self.node_reason())]
    OutsideValidityInterval {
        start: Option<u64>,
        ttl: Option<u64>,
        slot: u64,
    },
    #[error("{}", self.node_reason())]
    BadInputs(Vec<UtxoRef>),
    /// The ledger state for an input could not be determined (never for the devnet).
    #[error("{}", self.node_reason())]
    InputStateUnknown { input: UtxoRef, reason: String },
    #[error("{}", self.node_reason())]
    InvalidWitnesses { index: usize },
    #[error("{}", self.node_reason())]
    NoWitnesses,
    #[error("{}", self.node_reason())]
    MissingVKeyWitnesses(Vec<[u8; 28]>),
    /// An input is locked by a script or a Byron address; only key-hash owners are supported.
    #[error("{}", self.node_reason())]
    UnsupportedInputOwner { input: UtxoRef },
    #[error("{}", self.node_reason())]
    FeeTooSmall { supplied: u64, expected: u64 },
    #[error("{}", self.node_reason())]
    OutputTooSmall { index: usize, coin: u64, min: u64 },
    #[error("{}", self.node_reason())]
    ValueNotConserved { consumed: Value, produced: Value },
    #[error("{}", self.node_reason())]
    ValueOverflow,
    /// More reference-script bytes than Conway allows one transaction.
    #[error("{}", self.node_reason())]
    RefScriptsSizeTooBig { size: u64 },
    /// A spent output carries a reference script of unknown size (never for the devnet).
    #[error("{}", self.node_reason())]
    ReferenceScriptSizeUnknown,
    /// Body sets listing a member twice: the node cannot even decode the transaction.
    #[error("{}", self.node_reason())]
    DuplicateSetMembers(Vec<&'static str>),
    /// An output's value serializes to more than `maxValSize` bytes.
    #[error("{}", self.node_reason())]
    OutputTooBig { index: usize, size: u64, max: u64 },
    /// A Byron output address whose attributes exceed 64 bytes.
    #[error("{}", self.node_reason())]
    OutputBootAddrAttrsTooBig { index: usize, size: usize },
    #[error("{}", self.node_reason())]
    MetadataHash {
        body_hash: Option<[u8; 32]>,
        present: bool,
    },
}

fn fmt_value(v: &Value) -> String {
    let mut s = format!("{} lovelace", v.coin);
    for (id, q) in &v.assets {
        s.push_str(&format!(" + {q} {}", id.dotted()));
    }
    s
}

impl Phase1Error {
    /// The Cardano node's name for this failure, with details.
    pub fn node_reason(&self) -> String {
        match self {
            Phase1Error::UnsupportedFeatures(f) => {
                format!(
                    "UnsupportedFeature: this ledger does not validate {}",
                    f.join(", ")
                )
            }
            Phase1Error::MaxTxSize { size, max } => {
                format!("MaxTxSizeUTxO: size {size} bytes, maximum {max}")
            }
            Phase1Error::WrongNetworkInTxBody { expected, actual } => {
                format!("WrongNetworkInTxBody: expected network id {expected}, body says {actual}")
            }
            Phase1Error::WrongNetwork { expected, outputs } => {
                format!(
                    "WrongNetwork: expected network id {expected}; outputs {outputs:?} pay another network"
                )
            }
            Phase1Error::OutsideValidityInterval { start, ttl, slot } => format!(
                "OutsideValidityIntervalUTxO: current slot {slot} is outside [{}, {})",
                start.map_or("-inf".into(), |s| s.to_string()),
                ttl.map_or("+inf".into(), |s| s.to_string())
            ),
            Phase1Error::BadInputs(refs) => {
                let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
                format!("BadInputsUTxO: {} not in the UTxO set", refs.join(", "))
            }
            Phase1Error::InputStateUnknown { input, reason } => {
                format!("InputStateUnknown: could not resolve {input}: {reason}")
            }
            Phase1Error::InvalidWitnesses { index } => {
                format!(
                    "InvalidWitnessesUTXOW: vkey witness #{index} is malformed or does not sign the tx id"
                )
            }
            Phase1Error::NoWitnesses => {
                "MissingVKeyWitnessesUTXOW: the transaction has no vkey witness".into()
            }
            Phase1Error::MissingVKeyWitnesses(h) => {
                let h: Vec<String> = h.iter().map(hex::encode).collect();
                format!(
                    "MissingVKeyWitnessesUTXOW: no witness for key hash(es) {}",
                    h.join(", ")
                )
            }
            Phase1Error::UnsupportedInputOwner { input } => {
                format!("MissingScriptWitnessesUTXOW: input {input} is not locked by a payment key")
            }
            Phase1Error::FeeTooSmall { supplied, expected } => {
                format!("FeeTooSmallUTxO: supplied {supplied} lovelace, minimum {expected}")
            }
            Phase1Error::OutputTooSmall { index, coin, min } => {
                format!(
                    "BabbageOutputTooSmallUTxO: output #{index} holds {coin} lovelace, minimum {min}"
                )
            }
            Phase1Error::ValueNotConserved { consumed, produced } => format!(
                "ValueNotConservedUTxO: consumed {}, produced {}",
                fmt_value(consumed),
                fmt_value(produced)
            ),
            Phase1Error::ValueOverflow => {
                "ValueNotConservedUTxO: a value total overflows 64 bits".into()
            }
            Phase1Error::RefScriptsSizeTooBig { size } => format!(
                "ConwayTxRefScriptsSizeTooBig: {size} bytes of reference scripts, maximum {MAX_REF_SCRIPT_SIZE_PER_TX}"
            ),
            Phase1Error::ReferenceScriptSizeUnknown => {
                "InputStateUnknown: a spent output carries a reference script of unknown size"
                    .into()
            }
            Phase1Error::DuplicateSetMembers(sets) => format!(
                "DeserialiseFailure: the transaction body's set(s) {} list a member twice (refused since protocol version 9)",
                sets.join(", ")
            ),
            Phase1Error::OutputTooBig { index, size, max } => format!(
                "OutputTooBigUTxO: output #{index}'s value serializes to {size} bytes, maxValSize is {max}"
            ),
            Phase1Error::OutputBootAddrAttrsTooBig { index, size } => format!(
                "OutputBootAddrAttrsTooBig: output #{index}'s Byron address carries {size} bytes of attributes (max 64)"
            ),
            Phase1Error::MetadataHash {
                body_hash: Some(_),
                present: false,
            } => "MissingTxMetadata: the body commits to auxiliary data that is absent".into(),
            Phase1Error::MetadataHash {
                body_hash: None, ..
            } => "MissingTxBodyMetadataHash: auxiliary data present without a hash in the body"
                .into(),
            Phase1Error::MetadataHash { .. } => {
                "ConflictingMetadataHash: the body's auxiliary data hash does not match the data"
                    .into()
            }
        }
    }
}

/// Rejects any feature this ledger does not validate.
pub fn check_features(tx: &ParsedTx) -> Result<(), Phase1Error> {
    let f = tx.unsupported_features();
    if f.is_empty() {
        Ok(())
    } else {
        Err(Phase1Error::UnsupportedFeatures(f))
    }
}

/// `size <= max_tx_size`.
pub fn check_max_size(tx: &ParsedTx, params: &ProtocolParams) -> Result<(), Phase1Error> {
    let size = tx.size() as u64;
    if size > params.max_tx_size {
        return Err(Phase1Error::MaxTxSize {
            size,
            max: params.max_tx_size,
        });
    }
    Ok(())
}

/// The body's network id (if any) and every output address belong to `network`.
/// A Byron output belongs to mainnet without a network-magic attribute and to
/// a testnet with one (the ledger's `getNetwork`).
pub fn check_network(tx: &ParsedTx, network: Network) -> Result<(), Phase1Error> {
    let expected = network.network_id();
    if let Some(actual) = tx.network_id()
        && actual != expected
    {
        return Err(Phase1Error::WrongNetworkInTxBody { expected, actual });
    }
    let outputs: Vec<usize> = tx
        .outputs()
        .iter()
        .enumerate()
        .filter(|(_, o)| match address::classify(&o.address) {
            Ok(AddressKind::Shelley { network_id, .. }) => network_id != expected,
            Ok(AddressKind::Byron) => {
                address::parse_byron(&o.address).map_or(true, |b| b.network_id() != expected)
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .collect();
    if !outputs.is_empty() {
        return Err(Phase1Error::WrongNetwork { expected, outputs });
    }
    Ok(())
}

/// No body set lists a member twice (Conway, protocol version 9 on).
pub fn check_no_duplicates(tx: &ParsedTx) -> Result<(), Phase1Error> {
    let d = tx.duplicate_set_members();
    if d.is_empty() {
        Ok(())
    } else {
        Err(Phase1Error::DuplicateSetMembers(d.to_vec()))
    }
}

/// Size of a value as the ledger serializes it (canonically: a bare coin, or
/// `[coin, {policy: {name: quantity}}]` with definite lengths), whatever
/// encoding the transaction used.
pub fn value_serialized_size(v: &Value) -> u64 {
    fn uint(n: u64) -> u64 {
        match n {
            0..=23 => 1,
            24..=0xff => 2,
            0x100..=0xffff => 3,
            0x1_0000..=0xffff_ffff => 5,
            _ => 9,
        }
    }
    if v.assets.is_empty() {
        return uint(v.coin);
    }
    let mut policies: std::collections::BTreeMap<&[u8; 28], (u64, u64)> = Default::default();
    for (id, q) in &v.assets {
        let e = policies.entry(&id.policy).or_default();
        e.0 += 1;
        e.1 += uint(id.name.len() as u64) + id.name.len() as u64 + uint(*q);
    }
    let mut size = 1 + uint(v.coin) + uint(policies.len() as u64);
    for (count, names) in policies.values() {
        size += 2 + 28 + uint(*count) + names;
    }
    size
}

/// Every output's value serializes to at most `maxValSize` bytes (`OutputTooBigUTxO`),
/// and every Byron output's attributes to at most 64 (`OutputBootAddrAttrsTooBig`).
pub fn check_outputs(tx: &ParsedTx, params: &ProtocolParams) -> Result<(), Phase1Error> {
    for (index, o) in tx.outputs().iter().enumerate() {
        let size = value_serialized_size(&o.value);
        if size > params.max_val_size {
            return Err(Phase1Error::OutputTooBig {
                index,
                size,
                max: params.max_val_size,
            });
        }
        if let Ok(AddressKind::Byron) = address::classify(&o.address)
            && let Ok(b) = address::parse_byron(&o.address)
            && b.attrs_size > 64
        {
            return Err(Phase1Error::OutputBootAddrAttrsTooBig {
                index,
                size: b.attrs_size,
            });
        }
    }
    Ok(())
}

/// `validity_start <= slot < ttl` (start inclusive, ttl exclusive, as the ledger does).
pub fn check_validity_interval(tx: &ParsedTx, slot: u64) -> Result<(), Phase1Error> {
    let too_early = tx.validity_start().is_some_and(|s| slot < s);
    let too_late = tx.ttl().is_some_and(|t| slot >= t);
    if too_early || too_late {
        return Err(Phase1Error::OutsideValidityInterval {
            start: tx.validity_start(),
            ttl: tx.ttl(),
            slot,
        });
    }
    Ok(())
}

/// The linear minimum fee of this transaction.
pub fn min_fee(tx: &ParsedTx, params: &ProtocolParams) -> u64 {
    params.min_fee(tx.size() as u64)
}

/// Conway's ceiling on the reference scripts one transaction may use (200 KiB).
pub const MAX_REF_SCRIPT_SIZE_PER_TX: u64 = 200 * 1024;

/// Conway's tiered reference-script fee: each 25,600 bytes cost 1.2 times
/// the price per byte of the previous 25,600, starting at
/// `minFeeRefScriptCostPerByte`; the total is rounded down.
pub fn reference_script_fee(cost_per_byte: u64, size: u64) -> u64 {
    const STEP: u128 = 25_600;
    // The price is num/den; the accumulated fee is acc/den.
    let (mut num, mut den, mut acc) = (u128::from(cost_per_byte), 1u128, 0u128);
    let mut left = u128::from(size);
    while left >= STEP {
        let next = (|| {
            let acc = acc.checked_add(STEP.checked_mul(num)?)?.checked_mul(5)?;
            Some((acc, num.checked_mul(6)?, den.checked_mul(5)?))
        })();
        let Some((a, n, d)) = next else {
            return u64::MAX;
        };
        (acc, num, den) = (a, n, d);
        left -= STEP;
    }
    acc.checked_add(left.saturating_mul(num))
        .map_or(u64::MAX, |a| u64::try_from(a / den).unwrap_or(u64::MAX))
}

/// Total size of the reference scripts carried by the spent outputs.
pub fn reference_scripts_size(resolved: &[UtxoInfo]) -> Result<u64, Phase1Error> {
    let mut total = 0u64;
    for u in resolved {
        match u.reference_script {
            RefScript::None => {}
            RefScript::Size(n) => total = total.saturating_add(n),
            RefScript::SizeUnknown => return Err(Phase1Error::ReferenceScriptSizeUnknown),
        }
    }
    Ok(total)
}

/// The Conway minimum fee: linear in the size, plus the tiered fee of the
/// reference scripts the spent outputs carry (`getConwayMinFeeTxUtxo`).
/// More than 200 KiB of reference scripts is refused outright.
pub fn check_fee_with_reference_scripts(
    tx: &ParsedTx,
    params: &ProtocolParams,
    resolved: &[UtxoInfo],
) -> Result<(), Phase1Error> {
    let refs = reference_scripts_size(resolved)?;
    if refs > MAX_REF_SCRIPT_SIZE_PER_TX {
        return Err(Phase1Error::RefScriptsSizeTooBig { size: refs });
    }
    let expected = min_fee(tx, params).saturating_add(reference_script_fee(
        params.min_fee_ref_script_cost_per_byte,
        refs,
    ));
    if tx.fee() < expected {
        return Err(Phase1Error::FeeTooSmall {
            supplied: tx.fee(),
            expected,
        });
    }
    Ok(())
}

/// `fee >= min_fee_a * size + min_fee_b` (no reference scripts; see
/// [`check_fee_with_reference_scripts`] for the full Conway rule).
pub fn check_fee(tx: &ParsedTx, params: &ProtocolParams) -> Result<(), Phase1Error> {
    let expected = min_fee(tx, params);
    if tx.fee() < expected {
        return Err(Phase1Error::FeeTooSmall {
            supplied: tx.fee(),
            expected,
        });
    }
    Ok(())
}

/// Babbage/Conway minimum ada of an output: `(160 + serialized size) * coins_per_utxo_size`.
pub fn min_utxo(out: &TxOut, params: &ProtocolParams) -> u64 {
    (160u64.saturating_add(out.raw_cbor.len() as u64)).saturating_mul(params.coins_per_utxo_size)
}

/// Every output holds at least its minimum ada.
pub fn check_min_utxo(tx: &ParsedTx, params: &ProtocolParams) -> Result<(), Phase1Error> {
    for (index, o) in tx.outputs().iter().enumerate() {
        let min = min_utxo(o, params);
        if o.value.coin < min {
            return Err(Phase1Error::OutputTooSmall {
                index,
                coin: o.value.coin,
                min,
            });
        }
    }
    Ok(())
}

/// Sum of the resolved inputs' values.
pub fn consumed_value(resolved: &[UtxoInfo]) -> Result<Value, Phase1Error> {
    let mut total = Value::default();
    for u in resolved {
        total = total
            .checked_add(&u.value)
            .ok_or(Phase1Error::ValueOverflow)?;
    }
    Ok(total)
}

/// Per asset: sum of inputs == sum of outputs + fee (no mint, no deposits: those are unsupported).
pub fn check_value_conserved(tx: &ParsedTx, resolved: &[UtxoInfo]) -> Result<(), Phase1Error> {
    let consumed = consumed_value(resolved)?;
    let mut produced = tx.total_output().clone();
    produced.coin = produced
        .coin
        .checked_add(tx.fee())
        .ok_or(Phase1Error::ValueOverflow)?;
    if consumed != produced {
        return Err(Phase1Error::ValueNotConserved { consumed, produced });
    }
    Ok(())
}

/// Key hashes that must sign: the payment key of every input's owner and every
/// required signer. Inputs locked by scripts or Byron addresses are refused.
/// `resolved` is in input order.
pub fn required_key_hashes(
    tx: &ParsedTx,
    resolved: &[UtxoInfo],
) -> Result<BTreeSet<[u8; 28]>, Phase1Error> {
    let mut need = BTreeSet::new();
    for (input, u) in tx.inputs().iter().zip(resolved) {
        match address::classify(&u.address) {
            Ok(AddressKind::Shelley { payment, .. }) => match payment {
                Credential::KeyHash(h) => {
                    need.insert(h);
                }
                Credential::ScriptHash(_) => {
                    return Err(Phase1Error::UnsupportedInputOwner { input: *input });
                }
            },
            _ => return Err(Phase1Error::UnsupportedInputOwner { input: *input }),
        }
    }
    need.extend(tx.required_signers().iter().copied());
    Ok(need)
}

/// Every witness is valid and every required key hash has one.
/// Returns the set of key hashes that signed.
pub fn check_witnesses(
    tx: &ParsedTx,
    resolved: &[UtxoInfo],
) -> Result<BTreeSet<[u8; 28]>, Phase1Error> {
    let signers = tx.verify_witnesses().map_err(|e| match e {
        WitnessError::Unsigned => Phase1Error::NoWitnesses,
        WitnessError::Invalid { index } => Phase1Error::InvalidWitnesses { index },
    })?;
    let need = required_key_hashes(tx, resolved)?;
    let missing: Vec<[u8; 28]> = need.difference(&signers).copied().collect();
    if !missing.is_empty() {
        return Err(Phase1Error::MissingVKeyWitnesses(missing));
    }
    Ok(signers)
}

/// Auxiliary data and the body's hash of it agree.
pub fn check_auxiliary_data(tx: &ParsedTx) -> Result<(), Phase1Error> {
    let body_hash = tx.auxiliary_data_hash().copied();
    match (body_hash, tx.auxiliary_data_raw()) {
        (None, None) => Ok(()),
        (Some(h), Some(raw)) if *Hasher::<256>::hash(raw) == h => Ok(()),
        (h, raw) => Err(Phase1Error::MetadataHash {
            body_hash: h,
            present: raw.is_some(),
        }),
    }
}

/// Turn tri-state lookups into resolved inputs: anything not unspent is a bad input.
pub fn resolve_inputs(tx: &ParsedTx, states: &[UtxoState]) -> Result<Vec<UtxoInfo>, Phase1Error> {
    let mut bad = Vec::new();
    let mut out = Vec::with_capacity(states.len());
    for (i, input) in tx.inputs().iter().enumerate() {
        match states.get(i) {
            Some(UtxoState::Unspent(u)) => out.push(u.clone()),
            Some(UtxoState::Unknown(reason)) => {
                return Err(Phase1Error::InputStateUnknown {
                    input: *input,
                    reason: reason.clone(),
                });
            }
            Some(UtxoState::Spent) | None => bad.push(*input),
        }
    }
    if !bad.is_empty() {
        return Err(Phase1Error::BadInputs(bad));
    }
    Ok(out)
}

/// The full phase-1 check the devnet ledger runs on a submitted transaction.
/// `resolved` answers the tx's inputs in order; `slot` is the current slot.
pub fn validate_for_ledger(
    tx: &ParsedTx,
    resolved: &[UtxoState],
    params: &ProtocolParams,
    slot: u64,
    network: Network,
) -> Result<(), Phase1Error> {
    check_no_duplicates(tx)?;
    check_features(tx)?;
    check_max_size(tx, params)?;
    check_network(tx, network)?;
    check_validity_interval(tx, slot)?;
    let inputs = resolve_inputs(tx, resolved)?;
    check_witnesses(tx, &inputs)?;
    check_fee_with_reference_scripts(tx, params, &inputs)?;
    check_min_utxo(tx, params)?;
    check_outputs(tx, params)?;
    check_value_conserved(tx, &inputs)?;
    check_auxiliary_data(tx)?;
    Ok(())
}

// The fixtures are built and signed by the buyer's builder.
#[cfg(all(test, feature = "buyer"))]
mod tests {
    use super::*;
    use crate::buyer::builder::{self, InputSpec, OutputSpec, PaymentSpec};
    use crate::buyer::keys::SigningKey;
    use crate::cardano::types::{AssetId, TxId};

    struct Fx {
        key: SigningKey,
        tx: ParsedTx,
        states: Vec<UtxoState>,
        params: ProtocolParams,
    }

    fn fx() -> Fx {
        let key = SigningKey::from_seed([3; 32]);
        let me = key.enterprise_address_bytes(Network::Preprod);
        let seller = SigningKey::from_seed([4; 32]).enterprise_address_bytes(Network::Preprod);
        let token = AssetId {
            policy: [5; 28],
            name: b"USDM".to_vec(),
        };
        let mut v = Value::lovelace(10_000_000);
        v.checked_add_asset(token.clone(), 100).unwrap();
        let input = InputSpec {
            utxo: UtxoRef::new(TxId([7; 32]), 1),
            value: v.clone(),
        };
        let mut pay = Value::lovelace(1_500_000);
        pay.checked_add_asset(token, 40).unwrap();
        let spec = PaymentSpec {
            inputs: vec![input],
            outputs: vec![OutputSpec {
                address: seller,
                value: pay,
            }],
            change_address: me.clone(),
            ttl: Some(5_000),
            validity_start: Some(100),
            network_id: Some(0),
        };
        let params = ProtocolParams::mainnet_like();
        let built = builder::build_payment(&spec, &params, std::slice::from_ref(&key)).unwrap();
        let tx = ParsedTx::decode(&built.tx).unwrap();
        assert_eq!(
            built.fee,
            params.min_fee(built.tx.len() as u64),
            "the builder's fee is exact"
        );
        let states = vec![UtxoState::Unspent(UtxoInfo::new(me, v))];
        Fx {
            key,
            tx,
            states,
            params,
        }
    }

    #[test]
    fn a_built_payment_passes_every_rule() {
        let f = fx();
        validate_for_ledger(&f.tx, &f.states, &f.params, 1_000, Network::Preprod).unwrap();
        assert_eq!(f.tx.outputs().len(), 2, "payment + change");
    }

    #[test]
    fn each_rule_names_the_node_error() {
        let f = fx();
        let run = |states: &[UtxoState], params: &ProtocolParams, slot: u64, net: Network| {
            validate_for_ledger(&f.tx, states, params, slot, net)
                .unwrap_err()
                .node_reason()
        };
        assert!(
            run(&f.states, &f.params, 99, Network::Preprod)
                .starts_with("OutsideValidityIntervalUTxO")
        );
        assert!(
            run(&f.states, &f.params, 5_000, Network::Preprod)
                .starts_with("OutsideValidityIntervalUTxO")
        );
        assert!(
            run(&[UtxoState::Spent], &f.params, 1_000, Network::Preprod)
                .starts_with("BadInputsUTxO")
        );
        assert!(run(&[], &f.params, 1_000, Network::Preprod).starts_with("BadInputsUTxO"));
        assert!(
            run(&f.states, &f.params, 1_000, Network::Mainnet).starts_with("WrongNetworkInTxBody")
        );
        let mut p = f.params.clone();
        p.min_fee_b += 1;
        assert!(run(&f.states, &p, 1_000, Network::Preprod).starts_with("FeeTooSmallUTxO"));
        let mut p = f.params.clone();
        p.max_tx_size = 100;
        assert!(run(&f.states, &p, 1_000, Network::Preprod).starts_with("MaxTxSizeUTxO"));
        let mut p = f.params.clone();
        p.coins_per_utxo_size = 1_000_000;
        assert!(
            run(&f.states, &p, 1_000, Network::Preprod).starts_with("BabbageOutputTooSmallUTxO")
        );

        let UtxoState::Unspent(u) = &f.states[0] else {
            unreachable!()
        };
        let mut more = u.clone();
        more.value.coin += 1;
        let r = run(
            &[UtxoState::Unspent(more)],
            &f.params,
            1_000,
            Network::Preprod,
        );
        assert!(r.starts_with("ValueNotConservedUTxO"), "{r}");

        let mut other_owner = u.clone();
        other_owner.address =
            SigningKey::from_seed([9; 32]).enterprise_address_bytes(Network::Preprod);
        let r = run(
            &[UtxoState::Unspent(other_owner)],
            &f.params,
            1_000,
            Network::Preprod,
        );
        assert!(r.starts_with("MissingVKeyWitnessesUTXOW"), "{r}");

        let mut script_owner = u.clone();
        script_owner.address[0] = 0x70;
        let r = run(
            &[UtxoState::Unspent(script_owner)],
            &f.params,
            1_000,
            Network::Preprod,
        );
        assert!(r.starts_with("MissingScriptWitnessesUTXOW"), "{r}");
        assert_eq!(f.key.key_hash().len(), 28);
    }

    #[test]
    fn reference_script_fee_tiers() {
        assert_eq!(reference_script_fee(15, 0), 0);
        assert_eq!(reference_script_fee(15, 1_000), 15_000);
        assert_eq!(reference_script_fee(15, 25_600), 384_000);
        // 25,600 at 15, then 4,400 at 18.
        assert_eq!(reference_script_fee(15, 30_000), 384_000 + 79_200);
        // 25,600 at 15, 25,600 at 18, 1 at 21.6 (rounded down at the end).
        assert_eq!(reference_script_fee(15, 51_201), 384_000 + 460_800 + 21);
        assert_eq!(reference_script_fee(15, u64::MAX), u64::MAX);
    }

    #[test]
    fn min_utxo_formula() {
        let out = TxOut {
            address: vec![0x60; 29],
            value: Value::lovelace(1),
            raw_cbor: vec![0; 40],
            has_datum: false,
            has_script_ref: false,
            script_ref_size: None,
        };
        assert_eq!(min_utxo(&out, &ProtocolParams::mainnet_like()), 200 * 4_310);
    }
}
