//! The semantic checks, section by section.

use super::*;
use crate::cardano::Network;

impl Settings {
    /// Every problem, as `dotted.path: reason`. Empty when valid.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut bad = |path: &str, reason: &str| p.push(format!("{path}: {reason}"));

        if self.server.host.trim().is_empty() {
            bad("server.host", "must not be empty");
        }
        if self.server.body_limit_bytes < 1024 || self.server.body_limit_bytes > 10 * 1024 * 1024 {
            bad("server.bodyLimitBytes", "must be between 1024 and 10485760");
        }
        if ms(self.server.request_timeout) < 1000 {
            bad("server.requestTimeoutMs", "must be at least 1000");
        }
        if self.server.request_timeout <= self.settlement.confirmation_timeout {
            bad(
                "server.requestTimeoutMs",
                "must be longer than settlement.confirmationTimeoutSeconds (a settle would be cut off mid-wait)",
            );
        }
        if self.server.max_concurrent_requests == 0 {
            bad("server.maxConcurrentRequests", "must be at least 1");
        }
        if secs(self.server.shutdown_grace) > 600 {
            bad("server.shutdownGraceSeconds", "must be at most 600");
        }
        let sv = &self.server;
        if !(100..=300_000).contains(&ms(sv.header_read_timeout)) {
            bad(
                "server.headerReadTimeoutMs",
                "must be between 100 and 300000",
            );
        }
        if ms(sv.keep_alive_timeout) < 100 || ms(sv.keep_alive_timeout) > ms(sv.header_read_timeout)
        {
            bad(
                "server.keepAliveTimeoutMs",
                "must be between 100 and server.headerReadTimeoutMs",
            );
        }
        if !(100..=600_000).contains(&ms(sv.body_read_timeout)) {
            bad("server.bodyReadTimeoutMs", "must be between 100 and 600000");
        }
        if !(16..=1_000_000).contains(&sv.max_connections) {
            bad("server.maxConnections", "must be between 16 and 1000000");
        }
        if ms(sv.health_cache) > 60_000 {
            bad("server.healthCacheMs", "must be at most 60000");
        }
        if !(0.0..=1.0).contains(&self.sentry.traces_sample_rate) {
            bad("sentry.tracesSampleRate", "must be between 0 and 1");
        }
        if let Some(dsn) = &self.sentry.dsn
            && !dsn.is_empty()
            && dsn.expose().parse::<sentry::types::Dsn>().is_err()
        {
            bad("sentry.dsn", "is not a valid Sentry DSN");
        }
        if self.rate_limit.enabled {
            if ms(self.rate_limit.window) < 100 {
                bad("rateLimit.windowMs", "must be at least 100");
            }
            if self.rate_limit.global == 0 {
                bad(
                    "rateLimit.global",
                    "must be at least 1 (set rateLimit.enabled to false to turn limits off)",
                );
            }
            if self.rate_limit.sensitive == 0 {
                bad(
                    "rateLimit.sensitive",
                    "must be at least 1 (set rateLimit.enabled to false to turn limits off)",
                );
            }
            if self.rate_limit.api_key_global == Some(0) {
                bad("rateLimit.apiKeyGlobal", "must be at least 1 when set");
            }
            if self.rate_limit.api_key_sensitive == Some(0) {
                bad("rateLimit.apiKeySensitive", "must be at least 1 when set");
            }
            if self.rate_limit.max_tracked_clients < 100 {
                bad("rateLimit.maxTrackedClients", "must be at least 100");
            }
        }
        // Masumi.
        for (i, h) in self.masumi.approved_deployments.iter().enumerate() {
            if h.len() != 56
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                bad(
                    &format!("masumi.approvedDeployments.{i}"),
                    "must be an escrow script hash (56 lowercase hex characters)",
                );
            }
        }
        for (i, a) in self.masumi.registered_agents.iter().enumerate() {
            let id = &a.agent_identifier;
            let hexy = id.len().is_multiple_of(2)
                && id.len() <= 120
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hexy || !id.starts_with(crate::scheme::masumi::verify::REGISTRY_POLICY) {
                bad(
                    &format!("masumi.registeredAgents.{i}.agentIdentifier"),
                    "must be lowercase hex starting with the Masumi V2 registry policy id",
                );
            }
            if crate::cardano::address::parse_shelley_bech32(&a.seller_address).is_err() {
                bad(
                    &format!("masumi.registeredAgents.{i}.sellerAddress"),
                    "must be a bech32 Shelley address",
                );
            }
        }

        // Store.
        let r = &self.store.redis;
        if self.store.backend == StoreBackend::Redis {
            let sentinel = r
                .sentinel
                .service_name
                .as_ref()
                .is_some_and(|s| !s.is_empty());
            if sentinel && r.sentinel.addresses.is_empty() {
                bad(
                    "store.redis.sentinel.addresses",
                    "at least one sentinel host:port is required with a serviceName",
                );
            }
            if !sentinel && r.socket.is_none() && r.host.trim().is_empty() {
                bad(
                    "store.redis.host",
                    "is required when store.backend is redis",
                );
            }
        }
        for (i, a) in r.sentinel.addresses.iter().enumerate() {
            if a.rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .is_none()
            {
                bad(
                    &format!("store.redis.sentinel.addresses.{i}"),
                    "must be host:port",
                );
            }
        }
        if r.db < 0 || r.db > 15 {
            bad("store.redis.db", "must be between 0 and 15");
        }
        if ms(r.connect_timeout) == 0 || ms(r.command_timeout) == 0 {
            bad(
                "store.redis.commandTimeoutMs",
                "timeouts must be at least 1 ms",
            );
        }
        if r.replica_acks > 5 {
            bad("store.redis.replicaAcks", "must be between 0 and 5");
        }
        if let Some(f) = &r.tls_ca_file
            && !std::path::Path::new(f).is_file()
        {
            bad("store.redis.tlsCaFile", "file not found");
        }
        if r.key_prefix.contains(char::is_whitespace) {
            bad("store.redis.keyPrefix", "must not contain white space");
        }

        // Settlement.
        let s = &self.settlement;
        if s.max_submissions == 0 || s.max_submissions > 20 {
            bad("settlement.maxSubmissions", "must be between 1 and 20");
        }
        if secs(s.rebroadcast_after) == 0 {
            bad("settlement.rebroadcastAfterSeconds", "must be at least 1");
        }
        if secs(s.confirmation_timeout) == 0 || secs(s.confirmation_timeout) > 85 {
            bad(
                "settlement.confirmationTimeoutSeconds",
                "must be between 1 and 85 (x402 clients wait 90 s)",
            );
        }
        if secs(s.retention) < 3_600 {
            bad("settlement.retentionSeconds", "must be at least 3600");
        }
        if ms(s.poll_interval) < 10 {
            bad("settlement.pollIntervalMs", "must be at least 10");
        }
        if ms(s.reconcile_interval) < 50 {
            bad("settlement.reconcileIntervalMs", "must be at least 50");
        }
        if s.stability_depth == 0 {
            bad("settlement.stabilityDepth", "must be at least 1");
        }

        if let Some(k) = &self.admin.api_key
            && k.expose().len() < 16
        {
            bad("admin.apiKey", "must be at least 16 characters");
        }
        if let Some(url) = &self.telemetry.otlp.endpoint
            && !url.is_empty()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bad("telemetry.otlp.endpoint", "must be an http(s) URL");
        }
        if !(0.0..=1.0).contains(&self.telemetry.otlp.sample_ratio) {
            bad("telemetry.otlp.sampleRatio", "must be between 0 and 1");
        }
        if self.telemetry.otlp.service_name.trim().is_empty() {
            bad("telemetry.otlp.serviceName", "must not be empty");
        }
        if self.metrics.port == Some(0) {
            bad("metrics.port", "must be a port number (1-65535)");
        }

        // The networks served: one (chain.*), or each entry of networks.*.
        if self.networks.is_empty() {
            p.extend(self.validate_network());
        } else {
            p.extend(self.validate_networks());
        }
        // Production: what only makes sense on a developer's machine is refused.
        if self.env == Environment::Production && self.logging.pretty {
            p.push(format!("logging.pretty: {PRODUCTION_PRETTY_MESSAGE}"));
        }
        p
    }

    /// The checks that depend on the network and its backend, for one network.
    fn validate_network(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut bad = |path: &str, reason: &str| p.push(format!("{path}: {reason}"));

        // Chain.
        let net = self.chain.network;
        let bf = &self.chain.blockfrost;
        let has_project = bf.project_id.as_ref().is_some_and(|s| !s.is_empty());
        let has_url = bf.url.as_ref().is_some_and(|s| !s.is_empty());
        if net.is_public() && !has_project && !has_url {
            bad(
                "chain.blockfrost.projectId",
                "Blockfrost project ID is required",
            );
        }
        if let Some(url) = &bf.url
            && (!(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10)
        {
            bad("chain.blockfrost.url", "must be an http(s) URL");
        }
        if ms(bf.request_timeout) < 100 {
            bad("chain.blockfrost.requestTimeoutMs", "must be at least 100");
        }
        if bf.max_retries > 10 {
            bad("chain.blockfrost.maxRetries", "must be at most 10");
        }
        if secs(self.chain.reservation.ttl) < 5 || secs(self.chain.reservation.ttl) > 86_400 {
            bad(
                "chain.reservation.ttlSeconds",
                "must be between 5 and 86400",
            );
        }
        if secs(self.chain.cache.protocol_params_ttl) == 0 {
            bad("chain.cache.protocolParamsTtlSeconds", "must be at least 1");
        }
        if secs(self.chain.cache.protocol_params_ttl) > 600 {
            bad(
                "chain.cache.protocolParamsTtlSeconds",
                "must be at most 600",
            );
        }
        if secs(self.chain.cache.spent_ttl) < secs(self.chain.cache.utxo_ttl) {
            bad(
                "chain.cache.spentTtlSeconds",
                "must be at least chain.cache.utxoTtlSeconds",
            );
        }
        if !bf.rate_limit.per_second.is_finite()
            || bf.rate_limit.per_second < 0.0
            || bf.rate_limit.per_second > 1_000_000.0
        {
            bad(
                "chain.blockfrost.rateLimit.perSecond",
                "must be between 0 (off) and 1000000",
            );
        }
        if bf.rate_limit.per_second > 0.0 && bf.rate_limit.burst == 0 {
            bad("chain.blockfrost.rateLimit.burst", "must be at least 1");
        }
        if ms(bf.tip_refresh) < 100 || ms(bf.tip_refresh) > 600_000 {
            bad(
                "chain.blockfrost.tipRefreshMs",
                "must be between 100 and 600000",
            );
        }
        if ms(self.chain.devnet.block_time) < 50 || ms(self.chain.devnet.block_time) > 600_000 {
            bad("chain.devnet.blockTimeMs", "must be between 50 and 600000");
        }
        for (i, g) in self.chain.devnet.genesis.iter().enumerate() {
            match pallas_addresses::Address::from_bech32(&g.address) {
                Ok(a) if a.network().map(|n| n.value()) == Some(0) => {}
                Ok(_) => bad(
                    &format!("chain.devnet.genesis.{i}.address"),
                    "must be a testnet (network id 0) address",
                ),
                Err(_) => bad(
                    &format!("chain.devnet.genesis.{i}.address"),
                    "is not a valid bech32 Cardano address",
                ),
            }
            if g.lovelace.parse::<u64>().map(|v| v == 0).unwrap_or(true) {
                bad(
                    &format!("chain.devnet.genesis.{i}.lovelace"),
                    "must be a positive integer string",
                );
            }
            for (unit, q) in &g.assets {
                if unit
                    .parse::<crate::cardano::Asset>()
                    .map(|a| a.is_lovelace())
                    .unwrap_or(true)
                {
                    bad(
                        &format!("chain.devnet.genesis.{i}.assets.{unit}"),
                        "must be keyed <policy hex>.<name hex>",
                    );
                }
                if q.parse::<u64>().map(|v| v == 0).unwrap_or(true) {
                    bad(
                        &format!("chain.devnet.genesis.{i}.assets.{unit}"),
                        "must be a positive integer string",
                    );
                }
            }
        }

        // Settlement.
        let s = &self.settlement;
        if !(-1..=20).contains(&s.default_confirmations) {
            bad(
                "settlement.defaultConfirmations",
                "must be between -1 and 20",
            );
        } else if s.default_confirmations < 0 && !s.accept_mempool {
            bad(
                "settlement.defaultConfirmations",
                "-1 (mempool) needs settlement.acceptMempool: true",
            );
        }
        if !(0..=20).contains(&s.max_confirmations) {
            bad("settlement.maxConfirmations", "must be between 0 and 20");
        } else if s.default_confirmations > s.max_confirmations {
            bad(
                "settlement.defaultConfirmations",
                "must not exceed settlement.maxConfirmations",
            );
        }
        // Production: the devnet and its faucet are for a developer's machine.
        if self.env == Environment::Production && self.chain.network == Network::Devnet {
            bad("chain.network", PRODUCTION_DEVNET_MESSAGE);
            if self.chain.devnet.faucet_enabled && self.chain.devnet.api_enabled {
                bad("chain.devnet.faucetEnabled", PRODUCTION_FAUCET_MESSAGE);
            }
        }
        p
    }

    /// Each `networks` entry: its key, then its effective settings, with
    /// every problem named where the operator wrote it.
    fn validate_networks(&self) -> Vec<String> {
        let mut p = Vec::new();
        for key in self.networks.keys() {
            if Network::from_caip2(key).is_none() {
                let known: Vec<&str> = Network::ALL.iter().map(|n| n.caip2()).collect();
                p.push(format!(
                    "networks.{key}: not a Cardano network (one of {})",
                    known.join(", ")
                ));
            }
        }
        for lane in self.lanes() {
            let key = lane.chain.network.caip2();
            for problem in lane.validate_network() {
                let moved = Settings::lane_problem(key, &problem);
                if !p.contains(&moved) {
                    p.push(moved);
                }
            }
        }
        p
    }
}

/// A duration setting in the unit its key is written in, for the checks.
fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs()
}
