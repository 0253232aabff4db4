//! The Cardano networks this facilitator can serve, with the constants that
//! follow from each: network id, magic, CAIP-2 name, and the slot clock.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Cardano network. `Devnet` is this project's embedded ledger.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Mainnet,
    Preprod,
    Preview,
    Devnet,
}

/// Network magic of the embedded devnet (not a public network's magic).
pub const DEVNET_MAGIC: u32 = 42;

impl Network {
    pub const ALL: [Network; 4] = [
        Network::Mainnet,
        Network::Preprod,
        Network::Preview,
        Network::Devnet,
    ];

    /// Network id carried in addresses and transaction bodies: 1 mainnet, 0 otherwise.
    pub fn network_id(self) -> u8 {
        match self {
            Network::Mainnet => 1,
            _ => 0,
        }
    }

    pub fn magic(self) -> u32 {
        match self {
            Network::Mainnet => 764_824_073,
            Network::Preprod => 1,
            Network::Preview => 2,
            Network::Devnet => DEVNET_MAGIC,
        }
    }

    /// The lower-case config name (`mainnet`, `preprod`, `preview`, `devnet`).
    pub fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "mainnet",
            Network::Preprod => "preprod",
            Network::Preview => "preview",
            Network::Devnet => "devnet",
        }
    }

    /// CAIP-2 identifier used by x402 v2 (`cardano:preprod`).
    pub fn caip2(self) -> &'static str {
        match self {
            Network::Mainnet => "cardano:mainnet",
            Network::Preprod => "cardano:preprod",
            Network::Preview => "cardano:preview",
            Network::Devnet => "cardano:devnet",
        }
    }

    /// Network name used by x402 v1 (`cardano-preprod`).
    pub fn v1_name(self) -> &'static str {
        match self {
            Network::Mainnet => "cardano-mainnet",
            Network::Preprod => "cardano-preprod",
            Network::Preview => "cardano-preview",
            Network::Devnet => "cardano-devnet",
        }
    }

    /// The network of an exact CAIP-2 id (no aliases).
    pub fn from_caip2(s: &str) -> Option<Network> {
        Network::ALL.into_iter().find(|n| n.caip2() == s)
    }

    /// Parse any accepted spelling: CAIP-2, CIP-34, v1 name or bare config name.
    pub fn parse_any(s: &str) -> Option<Network> {
        let n = match s {
            "cardano:mainnet" | "cip34:1-764824073" | "cardano-mainnet" | "mainnet" => {
                Network::Mainnet
            }
            "cardano:preprod" | "cip34:0-1" | "cardano-preprod" | "preprod" => Network::Preprod,
            "cardano:preview" | "cip34:0-2" | "cardano-preview" | "preview" => Network::Preview,
            "cardano:devnet" | "cardano-devnet" | "devnet" => Network::Devnet,
            _ => {
                if s == format!("cip34:0-{DEVNET_MAGIC}") {
                    Network::Devnet
                } else {
                    return None;
                }
            }
        };
        Some(n)
    }

    /// Is this a public network reached through Blockfrost by default?
    pub fn is_public(self) -> bool {
        !matches!(self, Network::Devnet)
    }

    /// Hosted Blockfrost base URL for public networks.
    pub fn blockfrost_url(self) -> Option<&'static str> {
        match self {
            Network::Mainnet => Some("https://cardano-mainnet.blockfrost.io/api/v0"),
            Network::Preprod => Some("https://cardano-preprod.blockfrost.io/api/v0"),
            Network::Preview => Some("https://cardano-preview.blockfrost.io/api/v0"),
            Network::Devnet => None,
        }
    }

    /// Shelley-era anchor of the slot clock: (slot, unix seconds). Slots are 1 s since Shelley.
    /// The devnet's anchor is set by the ledger at start-up and is not known statically.
    pub fn shelley_anchor(self) -> Option<(u64, i64)> {
        match self {
            // 2020-07-29T21:44:51Z
            Network::Mainnet => Some((4_492_800, 1_596_059_091)),
            // 2022-06-21T00:00:00Z
            Network::Preprod => Some((86_400, 1_655_769_600)),
            // 2022-10-25T00:00:00Z
            Network::Preview => Some((0, 1_666_656_000)),
            Network::Devnet => None,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.caip2())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_normalises() {
        for n in Network::ALL {
            assert_eq!(Network::parse_any(n.caip2()), Some(n));
            assert_eq!(Network::parse_any(n.v1_name()), Some(n));
            assert_eq!(Network::parse_any(n.name()), Some(n));
        }
        assert_eq!(
            Network::parse_any("cip34:1-764824073"),
            Some(Network::Mainnet)
        );
        assert_eq!(Network::parse_any("cip34:0-1"), Some(Network::Preprod));
        assert_eq!(Network::parse_any("cip34:0-2"), Some(Network::Preview));
        assert_eq!(Network::parse_any("cardano:MAINNET"), None);
        assert_eq!(Network::parse_any("eip155:8453"), None);
    }
}
