//! `settlement.*`: confirmation policy, waits, retention, re-broadcast.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SettlementSettings {
    /// Longest /settle waits for confirmations before answering settlement_pending.
    #[serde(rename = "confirmationTimeoutSeconds", with = "super::values::seconds")]
    pub confirmation_timeout: Duration,
    /// l1Confirmations when the requirements do not say (-1 mempool, 0 in a block, n on top).
    pub default_confirmations: i64,
    /// The most `l1Confirmations` this facilitator will wait for (0..=20);
    /// requirements asking more are refused, and `/supported` advertises it.
    pub max_confirmations: i64,
    #[serde(rename = "retentionSeconds", with = "super::values::seconds")]
    pub retention: Duration,
    /// Added to a transaction's validity window before an unconfirmed record may expire,
    /// and to the retention of confirmed ones.
    #[serde(rename = "rollbackMarginSeconds", with = "super::values::seconds")]
    pub rollback_margin: Duration,
    /// Blocks after which a confirmed record is no longer checked for rollback.
    pub stability_depth: u64,
    #[serde(rename = "pollIntervalMs", with = "super::values::millis")]
    pub poll_interval: Duration,
    #[serde(rename = "reconcileIntervalMs", with = "super::values::millis")]
    pub reconcile_interval: Duration,
    /// Start with settlement paused on this replica (verify still answers).
    /// The operator's pause switch (`/admin/settlement/pause`) is shared by
    /// every replica through the store; this one is local.
    pub paused: bool,
    /// Accept `l1Confirmations: -1` (settle on our own submit acceptance,
    /// before any block). Off by default, as the scheme recommends.
    pub accept_mempool: bool,
    /// After the validity window closes, how long an unseen transaction is
    /// still awaited before it is expired (the scheme's 120 s).
    #[serde(rename = "expiryGraceSeconds", with = "super::values::seconds")]
    pub expiry_grace: Duration,
    /// A submit whose outcome is unknown is handed to the network again
    /// (the exact same bytes) after this delay if the chain has not seen it.
    #[serde(rename = "rebroadcastAfterSeconds", with = "super::values::seconds")]
    pub rebroadcast_after: Duration,
    /// Most hand-overs of one transaction, the first one included.
    pub max_submissions: u32,
    /// The x402 reference behaviour: every repeat `/settle` of a payment
    /// answers its stored outcome (`success:true` again). Off by default: a
    /// payment's success is delivered once (see SECURITY.md).
    pub repeat_success: bool,
}

impl Default for SettlementSettings {
    fn default() -> Self {
        SettlementSettings {
            confirmation_timeout: Duration::from_secs(50),
            default_confirmations: 1,
            max_confirmations: 20,
            retention: Duration::from_secs(86_400),
            rollback_margin: Duration::from_secs(3_600),
            stability_depth: 20,
            poll_interval: Duration::from_millis(250),
            reconcile_interval: Duration::from_millis(2_000),
            paused: false,
            accept_mempool: false,
            expiry_grace: Duration::from_secs(120),
            rebroadcast_after: Duration::from_secs(20),
            max_submissions: 4,
            repeat_success: false,
        }
    }
}
