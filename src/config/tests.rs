use super::load::env_key_to_path;
use std::time::Duration;

use super::*;
use crate::cardano::Network;

#[test]
fn env_keys_map_to_camel_case_paths() {
    assert_eq!(env_key_to_path("SERVER__PORT"), "server.port");
    assert_eq!(
        env_key_to_path("SERVER__BODY_LIMIT_BYTES"),
        "server.bodyLimitBytes"
    );
    assert_eq!(
        env_key_to_path("CHAIN__BLOCKFROST__PROJECT_ID"),
        "chain.blockfrost.projectId"
    );
    assert_eq!(env_key_to_path("RATE_LIMIT__ENABLED"), "rateLimit.enabled");
}

fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = std::env::temp_dir().join(format!(
        "x402-config-test-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.json");
    std::fs::write(&path, text).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = load(
        &ConfigSource {
            path: path.clone(),
            explicit: true,
        },
        &env,
    );
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn problems(r: Result<Settings, ConfigError>) -> Vec<String> {
    match r {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("expected ConfigInvalidError, got {other:?}"),
    }
}

#[test]
fn a_type_error_does_not_hide_the_next_one_or_a_semantic_one() {
    let p = problems(load_text(
        r#"{"server":{"port":"not-a-port","bodyLimitBytes":true},"logging":{"level":"shout"},"rateLimit":{"global":0}}"#,
        &[],
    ));
    assert_eq!(p.len(), 4, "{p:?}");
    // Type errors first, in the order serde meets them (logging.level is a
    // typed value now), then the checks on values.
    assert!(p[0].starts_with("logging.level: must be one of"), "{p:?}");
    assert!(
        p[1].starts_with("server.bodyLimitBytes: invalid type: boolean"),
        "{p:?}"
    );
    assert!(
        p[2].starts_with("server.port: invalid type: string \"not-a-port\""),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l.starts_with("logging.level: must be one of")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|l| l.starts_with("rateLimit.global: must be at least 1")),
        "{p:?}"
    );
}

#[test]
fn unknown_keys_are_errors_with_the_closest_known_key() {
    let p = problems(load_text(
        r#"{"rateLimit":{"globl":5},"servr":{},"chain":{"blockfrost":{"zzzzzzzz":1}}}"#,
        &[],
    ));
    assert_eq!(
        p,
        vec![
            "chain.blockfrost.zzzzzzzz: unknown key".to_owned(),
            "rateLimit.globl: unknown key (did you mean rateLimit.global?)".to_owned(),
            "servr: unknown key (did you mean server?)".to_owned(),
        ]
    );
}

#[test]
fn environment_keys_are_checked_too_and_keep_their_lenient_typing() {
    let p = problems(load_text(
        "{}",
        &[
            ("X402_RATE_LIMIT__GLOBL", "5"),
            ("X402_INTEROP_REQUIRED", "1"),
        ],
    ));
    assert_eq!(
        p,
        vec![
            "rateLimit.globl (X402_RATE_LIMIT__GLOBL): unknown key (did you mean rateLimit.global?)"
                .to_owned()
        ]
    );
    // A numeric-looking secret from the environment stays a string; a
    // quoted number in the file still reads as a number.
    let s = load_text(
        r#"{"server":{"port":"8080"}}"#,
        &[
            ("X402_ADMIN__API_KEY", "12345678901234567890"),
            ("X402_ENV", "test"),
        ],
    )
    .unwrap();
    assert_eq!(s.server.port, 8080);
    assert_eq!(
        s.admin.api_key.as_ref().map(Secret::expose),
        Some("12345678901234567890")
    );
    assert_eq!(s.env, Environment::Test);
}

#[test]
fn production_refuses_the_devnet_its_faucet_and_pretty_logs() {
    let p = problems(load_text(
        r#"{"env":"production","logging":{"pretty":true}}"#,
        &[],
    ));
    assert_eq!(
        p,
        vec![
            format!("chain.network: {PRODUCTION_DEVNET_MESSAGE}"),
            format!("chain.devnet.faucetEnabled: {PRODUCTION_FAUCET_MESSAGE}"),
            format!("logging.pretty: {PRODUCTION_PRETTY_MESSAGE}"),
        ]
    );
    let s = load_text(
        r#"{"env":"production","chain":{"network":"preprod","blockfrost":{"projectId":"preprodXXXXXXXXXXXXXXXX"}}}"#,
        &[],
    )
    .unwrap();
    assert_eq!(
        s.production_warning(),
        Some(PRODUCTION_MEMORY_STORE_WARNING)
    );
}

#[test]
fn check_config_shows_urls_as_scheme_host_and_port() {
    let mut s = Settings::default();
    s.chain.blockfrost.url = Some("https://me:pw@bf.example:8443/api/v0/KEY?token=t".into());
    let out = s.redacted_json();
    assert!(out.contains("\"https://bf.example:8443\""), "{out}");
    for leak in ["me:pw", "api/v0", "KEY", "token"] {
        assert!(!out.contains(leak), "{leak} leaked: {out}");
    }
}

#[test]
fn defaults_are_valid() {
    assert!(
        Settings::default().validate().is_empty(),
        "{:?}",
        Settings::default().validate()
    );
}

#[test]
fn secrets_never_print() {
    let mut s = Settings::default();
    s.store.redis.password = Some(Secret::new("hunter2hunter2"));
    s.admin.api_key = Some(Secret::new("admin-key-0123456789"));
    let out = s.redacted_json();
    assert!(!out.contains("hunter2"));
    assert!(!out.contains("admin-key"));
    assert!(format!("{s:?}").contains("[REDACTED]"));
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn chain_redis_is_read_as_store_redis() {
    let s = load_text(
        r#"{"store": {"backend": "redis"}, "chain": {"redis": {"host": "cache.internal", "port": 6380}}}"#,
        &[],
    )
    .unwrap();
    assert_eq!(
        (s.store.redis.host.as_str(), s.store.redis.port),
        ("cache.internal", 6380)
    );
    // The environment's old names are moved too, and keep their labels.
    let s = load_text("{}", &[("X402_CHAIN__REDIS__PORT", "6390")]).unwrap();
    assert_eq!(s.store.redis.port, 6390);
    let p = problems(load_text("{}", &[("X402_CHAIN__REDIS__DB", "99")]));
    assert_eq!(p, vec!["store.redis.db: must be between 0 and 15"]);
    // Both places at once is ambiguous.
    let p = problems(load_text(
        r#"{"chain": {"redis": {"port": 1}}, "store": {"redis": {"port": 2}}}"#,
        &[],
    ));
    assert_eq!(
        p,
        vec!["chain.redis: set store.redis only (chain.redis is its former name)"]
    );
}

#[test]
fn a_networks_section_gives_each_network_its_backend_and_policy() {
    let s = load_text(
        r#"{
          "settlement": {"acceptMempool": false, "defaultConfirmations": 1},
          "chain": {"reservation": {"ttlSeconds": 300}},
          "networks": {
            "cardano:devnet": {"devnet": {"blockTimeMs": 500}, "settlement": {"acceptMempool": true}},
            "cardano:preprod": {"blockfrost": {"projectId": "preprodKEY"},
                                "settlement": {"maxConfirmations": 5},
                                "reservation": {"ttlSeconds": 60}}
          }
        }"#,
        &[],
    )
    .unwrap();
    let lanes = s.lanes();
    assert_eq!(
        lanes.iter().map(|l| l.chain.network).collect::<Vec<_>>(),
        vec![Network::Devnet, Network::Preprod]
    );
    let (devnet, preprod) = (&lanes[0], &lanes[1]);
    assert_eq!(devnet.chain.devnet.block_time, Duration::from_millis(500));
    assert!(devnet.settlement.accept_mempool);
    assert_eq!(
        devnet.chain.reservation.ttl,
        Duration::from_secs(300),
        "inherited"
    );
    assert_eq!(devnet.store.redis.key_prefix, "x402:cardano:devnet:");
    assert!(!preprod.settlement.accept_mempool, "inherited");
    assert_eq!(preprod.settlement.max_confirmations, 5);
    assert_eq!(preprod.chain.reservation.ttl, Duration::from_secs(60));
    assert_eq!(
        preprod
            .chain
            .blockfrost
            .project_id
            .as_ref()
            .map(|p| p.expose()),
        Some("preprodKEY")
    );
    assert_eq!(preprod.store.redis.key_prefix, "x402:cardano:preprod:");
    // Without the section: one lane, the settings themselves.
    let single = load_text("{}", &[]).unwrap();
    assert_eq!(single.lanes().len(), 1);
    assert_eq!(single.lanes()[0].store.redis.key_prefix, "x402:");
}

#[test]
fn network_problems_are_named_where_they_were_written() {
    let p = problems(load_text(
        r#"{
          "chain": {"network": "preprod", "blockfrost": {"projectId": "x"}},
          "networks": {
            "cardano:preprod": {"settlement": {"defaultConfirmations": -1, "acceptMempool": false}},
            "cardano:testnet": {},
            "cardano:devnet": {"devnet": {"blockTimeMs": 1}, "blockfrost": {"urll": "x"}}
          }
        }"#,
        &[],
    ));
    assert_eq!(
        p,
        vec![
            "chain.network: not used with a networks section (each network is a key of networks)",
            "chain.blockfrost: not used with a networks section; set networks.<caip2>.blockfrost",
            "networks.cardano:devnet.blockfrost.urll: unknown key",
            "networks.cardano:testnet: not a Cardano network (one of cardano:mainnet, cardano:preprod, cardano:preview, cardano:devnet)",
            "networks.cardano:devnet.devnet.blockTimeMs: must be between 50 and 600000",
            "networks.cardano:preprod.blockfrost.projectId: Blockfrost project ID is required",
            "networks.cardano:preprod.settlement.defaultConfirmations: -1 (mempool) needs settlement.acceptMempool: true",
        ]
    );
}

#[test]
fn production_refuses_a_devnet_network_entry() {
    let p = problems(load_text(
        r#"{"env": "production", "networks": {"cardano:devnet": {}, "cardano:preprod": {"blockfrost": {"projectId": "k"}}}}"#,
        &[],
    ));
    assert_eq!(
        p,
        vec![
            format!("networks.cardano:devnet: {PRODUCTION_DEVNET_MESSAGE}"),
            format!("networks.cardano:devnet.devnet.faucetEnabled: {PRODUCTION_FAUCET_MESSAGE}"),
        ]
    );
}
