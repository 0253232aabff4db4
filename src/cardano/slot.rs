//! The slot clock: which slot a POSIX time falls in.
//!
//! Validity intervals are in slots while x402 deadlines are in seconds; the
//! chain backends convert with this clock, anchored on their network.

use super::network::Network;

/// Converts unix time to slots for one network.
///
/// Slots have been 1 s long since Shelley, so one (slot, time) anchor after
/// the Shelley fork is enough; `slot_length` is kept for a custom devnet whose
/// genesis says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotClock {
    pub anchor_slot: u64,
    pub anchor_time: i64,
    pub slot_length: u64,
}

impl SlotClock {
    /// The clock of a public network, from its Shelley anchor; `None` for the
    /// devnet, whose anchor is only known once its ledger has started.
    pub fn shelley(network: Network) -> Option<SlotClock> {
        network.shelley_anchor().map(|(slot, time)| SlotClock {
            anchor_slot: slot,
            anchor_time: time,
            slot_length: 1,
        })
    }

    /// The slot `unix_seconds` falls in (0 for any time before slot 0).
    pub fn slot_at(&self, unix_seconds: i64) -> u64 {
        let len = self.slot_length.max(1) as i64;
        if unix_seconds >= self.anchor_time {
            let ahead = (unix_seconds - self.anchor_time) / len;
            self.anchor_slot.saturating_add(ahead as u64)
        } else {
            let behind = (self.anchor_time - unix_seconds) / len;
            self.anchor_slot.saturating_sub(behind as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_clock_extrapolates_both_ways() {
        let c = SlotClock {
            anchor_slot: 4_492_800,
            anchor_time: 1_596_059_091,
            slot_length: 1,
        };
        assert_eq!(c.slot_at(1_596_059_091 + 10), 4_492_810);
        assert_eq!(c.slot_at(1_596_059_091 - 10), 4_492_790);
        assert_eq!(c.slot_at(0), 0);
    }

    #[test]
    fn public_networks_have_a_shelley_clock_and_the_devnet_has_none() {
        let mainnet = SlotClock::shelley(Network::Mainnet).unwrap();
        assert_eq!(mainnet.slot_at(1_596_059_091), 4_492_800);
        let preview = SlotClock::shelley(Network::Preview).unwrap();
        assert_eq!(preview.slot_at(1_666_656_000 + 86_400), 86_400);
        assert_eq!(SlotClock::shelley(Network::Devnet), None);
    }
}
