//! Every reason code this facilitator answers with, spelled exactly as the
//! x402 Cardano reference implementations spell them, so resource servers and
//! clients written against those implementations understand our rejections.
//!
//! Project note: an input that is unspent on chain but *reserved* by another
//! payment this facilitator has verified and not yet settled is reported as
//! [`Reason::InputNotAvailable`] (`invalid_exact_cardano_payload_input_not_available`):
//! from the buyer's point of view the input is not available to this payment,
//! which is exactly what that code says, so no project-specific code is needed.

use std::fmt;

use serde::{Serialize, Serializer};

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident => $s:literal ),+ $(,)?) => {
        /// A machine-readable rejection or failure reason.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$doc])* $variant, )+
        }

        impl Reason {
            /// Every reason, for documentation and metrics pre-registration.
            pub const ALL: &'static [Reason] = &[ $( Reason::$variant, )+ ];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self { $( Reason::$variant => $s, )+ }
            }

            /// Parse a wire string back into a reason.
            pub fn from_wire(s: &str) -> Option<Reason> {
                match s { $( $s => Some(Reason::$variant), )+ _ => None }
            }
        }
    };
}

reasons! {
    /// The HTTP body is not JSON or lacks the `{x402Version, paymentPayload, paymentRequirements}` envelope (HTTP 400).
    InvalidPayload => "invalid_payload",
    /// The scheme is not `exact`, or `accepted.scheme` differs from the requirement's.
    UnsupportedScheme => "unsupported_scheme",
    /// The network is not the one this facilitator serves, or `accepted.network` differs.
    NetworkMismatch => "network_mismatch",
    /// `x402Version` is neither 1 nor 2, or the envelope and payload disagree.
    InvalidX402Version => "invalid_x402_version",
    /// The payload is malformed (shape, nonce syntax, size, `accepted` mismatch).
    InvalidPayloadShape => "invalid_exact_cardano_payload",
    /// A v2 envelope whose `paymentPayload.x402Version` is not 2.
    UnsupportedVersion => "invalid_exact_cardano_payload_unsupported_version",
    /// The payment requirements are malformed or ask for something unsupported.
    InvalidRequirements => "invalid_exact_cardano_requirements",
    /// `extra.confirmationPolicy` is malformed (not `{l1Confirmations: -1..=20}`),
    /// or asks for `-1` without the operator's mempool opt-in.
    RequirementsPolicy => "invalid_exact_cardano_requirements_policy",
    TransactionDecodeFailed => "invalid_exact_cardano_payload_transaction_decode_failed",
    NetworkIdMismatch => "invalid_exact_cardano_payload_network_id_mismatch",
    Unsigned => "invalid_exact_cardano_payload_unsigned",
    InvalidSignature => "invalid_exact_cardano_payload_invalid_signature",
    PayerNotWitness => "invalid_exact_cardano_payload_payer_not_witness",
    RecipientMismatch => "invalid_exact_cardano_payload_recipient_mismatch",
    AssetMismatch => "invalid_exact_cardano_payload_asset_mismatch",
    AmountInsufficient => "invalid_exact_cardano_payload_amount_insufficient",
    MinUtxoInsufficient => "invalid_exact_cardano_payload_min_utxo_insufficient",
    NonceInvalid => "invalid_exact_cardano_payload_nonce_invalid",
    NonceNotInInputs => "invalid_exact_cardano_payload_nonce_not_in_inputs",
    NonceNotOnChain => "invalid_exact_cardano_payload_nonce_not_on_chain",
    /// An input other than the nonce is spent, or any input is reserved by another pending payment.
    InputNotAvailable => "invalid_exact_cardano_payload_input_not_available",
    TtlExpired => "invalid_exact_cardano_payload_ttl_expired",
    NotYetValid => "invalid_exact_cardano_payload_not_yet_valid",
    TtlTooFar => "invalid_exact_cardano_payload_ttl_too_far",
    /// A phase-1 ledger rule not covered by a more specific code (features, size, witnesses of inputs, ...).
    Phase1Invalid => "invalid_exact_cardano_payload_phase1_invalid",
    /// `is_valid` is false: a failed-script transaction, which creates no outputs.
    Phase2Invalid => "invalid_exact_cardano_payload_phase2_invalid",
    ValueNotConserved => "invalid_exact_cardano_payload_value_not_conserved",
    FeeBelowMinimum => "invalid_exact_cardano_payload_fee_below_minimum",
    /// `script` method: `payTo`'s payment credential is not the script hash declared
    /// (`scriptHash`) or derived (`script` + `parameters`), or neither is given, or the
    /// script/parameters cannot be applied (as the TS reference answers).
    ScriptAddressMismatch => "invalid_exact_cardano_payload_script_address_mismatch",
    /// `script` method: the `payTo` output does not carry the datum the script can use: the
    /// requirements' `datum` is not there as an inline datum (absent, a hash, or different bytes),
    /// or a `plutusV1` script's output carries an inline datum (V1 cannot read one, so the funds
    /// would be locked for good). Java-reference code, reused for both.
    ScriptDatumMissing => "invalid_exact_cardano_payload_script_datum_missing",
    /// Retryable: a chain lookup failed or was ambiguous (HTTP 503).
    ChainLookupFailed => "exact_cardano_facilitator_chain_lookup_failed",
    /// Retryable: the value of an input could not be established (HTTP 503).
    InputValueUnavailable => "exact_cardano_facilitator_input_value_unavailable",
    SettlementFailed => "exact_cardano_settlement_failed",
    SettlementDefinitivelyRejected => "exact_cardano_settlement_definitively_rejected",
    /// Non-terminal: submitted, confirmations not yet reached.
    SettlementPending => "settlement_pending",
    /// This payment's one success was already delivered to another caller.
    DuplicateSettlement => "duplicate_settlement",
    /// The policy needs block depth and this chain backend cannot read it.
    EvidenceUnavailable => "exact_cardano_facilitator_evidence_unavailable",
    /// Mempool evidence only, without the operator's mempool opt-in or a depth reader.
    SettlementNotConfirmed => "exact_cardano_settlement_not_confirmed",
    /// Project code, retryable (503): the reservation and journal store cannot be reached.
    StoreUnavailable => "exact_cardano_facilitator_store_unavailable",
    /// Project code, retryable (503): an operator paused settlement.
    SettlementPaused => "settlement_paused",
    /// Project code, retryable (503): another request holds this transaction's claim right now.
    SettlementStateConflict => "settlement_state_conflict",
    /// Project code, retryable (503): the settlement task died.
    SettlementInternalError => "settlement_internal_error",
    /// Masumi: `extra` breaks the closed-object schema (unknown key, wrong type or syntax).
    MasumiSchema => "invalid_exact_cardano_requirements_masumi_schema",
    /// Masumi: a part digest or `inputHash` does not match the request commitment.
    MasumiCommitment => "invalid_exact_cardano_requirements_masumi_commitment",
    /// Masumi: the seller's CIP-8 signature over `termsDigest` is missing, malformed or wrong.
    MasumiSellerSignature => "invalid_exact_cardano_requirements_masumi_seller_signature",
    /// Masumi: `blockchainIdentifier` does not decode to the terms, keys and `payTo`.
    MasumiIdentifier => "invalid_exact_cardano_requirements_masumi_identifier",
    /// Masumi: a non-empty `agentIdentifier` outside the registry policy, or no registry validator configured.
    MasumiAgentIdentifier => "invalid_exact_cardano_requirements_masumi_agent_identifier",
    /// Masumi: `payTo` is not the escrow of the (default or approved) deployment.
    MasumiDeployment => "invalid_exact_cardano_requirements_masumi_deployment",
    /// Masumi: not exactly one output at the escrow address.
    MasumiEscrowOutputCount => "invalid_exact_cardano_payload_masumi_escrow_output_count",
    /// Masumi: the escrow output has no inline datum.
    MasumiDatumMissing => "invalid_exact_cardano_payload_masumi_datum_missing",
    /// Masumi: the escrow output carries a reference script.
    MasumiReferenceScript => "invalid_exact_cardano_payload_masumi_reference_script",
    /// Masumi: the inline datum is not a well-formed `FundsLocked` datum.
    MasumiDatumInvalid => "invalid_exact_cardano_payload_masumi_datum_invalid",
    /// Masumi: the datum disagrees with the terms, the buyer or the seller.
    MasumiDatumMismatch => "invalid_exact_cardano_payload_masumi_datum_mismatch",
    /// Masumi: deadline spacing broken, or the transaction's ttl is missing or after `payByTime`.
    MasumiDeadline => "invalid_exact_cardano_payload_masumi_deadline",
    /// Masumi: the escrow coin is not exactly amount + collateral, or the collateral is below the floor.
    MasumiCollateral => "invalid_exact_cardano_payload_masumi_collateral",
    /// Masumi: the escrow output carries another asset, or a token quantity other than `amount`.
    MasumiAsset => "invalid_exact_cardano_payload_masumi_asset",
    /// Masumi: the escrow coin is below the post-SubmitResult minimum UTxO.
    MasumiMinUtxo => "invalid_exact_cardano_payload_masumi_min_utxo",
}

impl Reason {
    /// Is this a transient condition the caller should retry (answered with HTTP 503)?
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Reason::ChainLookupFailed
                | Reason::InputValueUnavailable
                | Reason::StoreUnavailable
                | Reason::SettlementPaused
                | Reason::SettlementStateConflict
                | Reason::SettlementInternalError
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate {r}");
            assert_eq!(Reason::from_wire(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::ALL.len(), 57);
        assert_eq!(
            Reason::NonceNotOnChain.as_str(),
            "invalid_exact_cardano_payload_nonce_not_on_chain"
        );
        assert!(Reason::ChainLookupFailed.is_retryable());
        assert!(!Reason::TtlExpired.is_retryable());
    }
}
