//! Several networks in one instance: one [`Facilitator`] per network (its
//! own chain backend, store namespace, policy and reconciler), and a router
//! that hands each request to the network its requirements name.
//!
//! A request for a network this instance does not serve goes to the first
//! network, whose pipeline refuses it with `unsupported_network`, exactly
//! as a single-network instance does. A payment for one network presented
//! as another is checked against the other network's chain, where its
//! inputs do not exist: it is refused there, and nothing is written.

use std::sync::Arc;

use crate::cardano::{Network, TxId};
use crate::chain::DynChain;
use crate::chain::devnet::Devnet;
use crate::config::Settings;
use crate::protocol::parse::ParsedRequest;
use crate::protocol::types::{SupportedResponse, VerifyResponse};
use crate::scheme::exact_cardano::VerifyContext;
use crate::store::{DynStore, Page, SettlementRecord, SettlementState, StoreError};

use super::{Answer, Caller, Facilitator, SettleResult, StatusAnswer};

/// Everything one served network has of its own.
pub struct Lane {
    pub network: Network,
    /// The effective settings of this network (`chain.*`, `settlement.*`,
    /// the store's key prefix are this network's).
    pub settings: Arc<Settings>,
    pub facilitator: Arc<Facilitator>,
    pub chain: DynChain,
    pub store: DynStore,
    /// The embedded ledger, when it is this network's backend.
    pub devnet: Option<Arc<Devnet>>,
}

impl Lane {
    /// Build a network's facilitator around its chain and store.
    pub fn new(
        settings: Arc<Settings>,
        chain: DynChain,
        store: DynStore,
        devnet: Option<Arc<Devnet>>,
    ) -> Lane {
        let facilitator = Arc::new(Facilitator::new(
            settings.clone(),
            chain.clone(),
            store.clone(),
        ));
        Lane {
            network: chain.network(),
            settings,
            facilitator,
            chain,
            store,
            devnet,
        }
    }
}

/// The facilitator of every served network, routed by the requirements' network.
pub struct Router {
    lanes: Vec<Lane>,
}

impl Router {
    /// At least one lane; the first is the primary network (it answers
    /// requests that name no served network). Two lanes for one network are
    /// a wiring mistake: the later one is dropped.
    pub fn new(lanes: Vec<Lane>) -> Option<Router> {
        let mut unique: Vec<Lane> = Vec::with_capacity(lanes.len());
        for lane in lanes {
            if !unique.iter().any(|l| l.network == lane.network) {
                unique.push(lane);
            }
        }
        (!unique.is_empty()).then_some(Router { lanes: unique })
    }

    pub fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    /// The first network: it answers what names no served network.
    pub fn primary(&self) -> &Lane {
        // `new` and `single` never build an empty router.
        &self.lanes[0]
    }

    /// The lane serving `network`, if this instance serves it.
    pub fn lane(&self, network: Network) -> Option<&Lane> {
        self.lanes.iter().find(|l| l.network == network)
    }

    /// The lane a request goes to: the network its requirements name, or
    /// the primary one (which refuses it as an unsupported network).
    pub fn route(&self, req: &ParsedRequest) -> &Lane {
        Network::parse_any(req.requirements().network)
            .and_then(|n| self.lane(n))
            .unwrap_or_else(|| self.primary())
    }

    /// The devnet lane, when one network runs on the embedded ledger.
    pub fn devnet(&self) -> Option<&Lane> {
        self.lanes.iter().find(|l| l.devnet.is_some())
    }

    pub async fn verify(&self, req: &ParsedRequest, caller: Caller<'_>) -> Answer<VerifyResponse> {
        self.route(req).facilitator.verify(req, caller).await
    }

    pub async fn settle(&self, req: &ParsedRequest, caller: Caller<'_>) -> SettleResult {
        self.route(req).facilitator.settle(req, caller).await
    }

    /// The network name of an answer to a request that could not be routed.
    pub fn network_label(&self, req: Option<&ParsedRequest>) -> String {
        match req {
            Some(r) => self.route(r).facilitator.network_label(req),
            None => self.primary().facilitator.network_label(None),
        }
    }

    /// The primary network's verification context (limits for `/status`).
    pub fn verify_context(&self) -> &VerifyContext {
        self.primary().facilitator.verify_context()
    }

    /// `/status`: the journal of every network is asked, in order; the first
    /// that knows the transaction answers.
    pub async fn status(&self, tx_id: TxId) -> StatusAnswer {
        let mut first_missing = None;
        let mut unavailable = None;
        for lane in &self.lanes {
            match lane.facilitator.status(tx_id).await {
                found @ StatusAnswer::Found(_) => return found,
                missing @ StatusAnswer::NotFound(_) => {
                    first_missing.get_or_insert(missing);
                }
                down @ StatusAnswer::Unavailable(_) => {
                    unavailable.get_or_insert(down);
                }
            }
        }
        // A store that could not answer may hold the record: say so rather
        // than "not found".
        unavailable
            .or(first_missing)
            .unwrap_or_else(|| StatusAnswer::Unavailable("no network is served".into()))
    }

    /// `/supported`: the kinds of every network, the extensions once.
    pub fn supported(&self) -> SupportedResponse {
        let mut all = self.primary().facilitator.supported();
        for lane in &self.lanes[1..] {
            let s = lane.facilitator.supported();
            all.kinds.extend(s.kinds);
            for (pattern, signers) in s.signers {
                all.signers.entry(pattern).or_default().extend(signers);
            }
        }
        all
    }

    /// Paused when any network is paused (the switch is set on all at once).
    pub fn is_paused(&self) -> bool {
        self.lanes.iter().any(|l| l.facilitator.is_paused())
    }

    /// Pause or resume settlement on every network and every replica.
    pub async fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        for lane in &self.lanes {
            lane.facilitator.set_paused(paused).await?;
        }
        Ok(())
    }

    /// One network's journal, page by page (`network`: the primary when none).
    pub async fn list_settlements(
        &self,
        network: Option<Network>,
        state: Option<SettlementState>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Option<Page>, StoreError> {
        let lane = match network {
            Some(n) => match self.lane(n) {
                Some(l) => l,
                None => return Ok(None),
            },
            None => self.primary(),
        };
        lane.facilitator
            .list_settlements(state, cursor, limit)
            .await
            .map(Some)
    }

    /// A transaction's record, from whichever network's journal holds it.
    pub async fn settlement_record(
        &self,
        tx_id: &TxId,
    ) -> Result<Option<SettlementRecord>, StoreError> {
        for lane in &self.lanes {
            if let Some(r) = lane.facilitator.settlement_record(tx_id).await? {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// One reconciliation pass on every network; the records examined.
    pub async fn reconcile_now(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for lane in &self.lanes {
            n += lane.facilitator.reconcile_now().await?;
        }
        Ok(n)
    }
}
