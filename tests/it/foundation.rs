//! Issue 2: configuration, startup errors, logs, the tower stack, health,
//! graceful shutdown — black-box, against the real binary or the real App.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::app::{BinApp, run_bin, spawn_app, spawn_app_with};
use serde_json::{Value, json};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write_config(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

#[test]
fn check_config_with_no_file_prints_the_defaults() {
    let dir = tmp();
    let (code, out, err) = run_bin(dir.path(), &["check-config"], &[]);
    assert_eq!(code, 0, "stderr: {err}");
    let v: Value = serde_json::from_str(&out).expect("check-config prints JSON");
    assert_eq!(v["server"]["host"], "127.0.0.1");
    assert_eq!(v["server"]["port"], 3000);
    assert_eq!(v["server"]["bodyLimitBytes"], 65536);
    assert_eq!(v["chain"]["network"], "devnet");
    assert_eq!(v["store"]["backend"], "memory");
    assert_eq!(v["chain"]["reservation"]["ttlSeconds"], 120);
    assert_eq!(v["rateLimit"]["global"], 100);
    assert_eq!(v["rateLimit"]["sensitive"], 20);
}

#[test]
fn check_config_redacts_every_secret() {
    let dir = tmp();
    let cfg = json!({
        "sentry": {"dsn": "https://abcdef0123456789@o1.ingest.sentry.io/42"},
        "chain": {
            "network": "preprod",
            "blockfrost": {"projectId": "preprodSECRETSECRETSECRET"},
            "redis": {"password": "redis-pass-SECRET", "sentinel": {"password": "sentinel-SECRET"}}
        },
        "networks": {},
        "admin": {"apiKey": "admin-key-SECRET-0123456789"},
        "auth": {"apiKeys": ["5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"]}
    });
    let path = write_config(dir.path(), "c.json", &cfg.to_string());
    let (code, out, err) = run_bin(dir.path(), &["--config", &path, "check-config"], &[]);
    assert_eq!(code, 0, "stderr: {err}");
    for secret in ["abcdef0123456789", "SECRET", "5e884898da"] {
        assert!(!out.contains(secret), "secret {secret} leaked: {out}");
    }
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["chain"]["blockfrost"]["projectId"], "[REDACTED]");
    // `chain.redis` is read as `store.redis`, its canonical place.
    assert_eq!(v["store"]["redis"]["password"], "[REDACTED]");
    assert_eq!(v["store"]["redis"]["sentinel"]["password"], "[REDACTED]");
    assert_eq!(v["admin"]["apiKey"], "[REDACTED]");
    assert_eq!(v["sentry"]["dsn"], "[REDACTED]");
    assert_eq!(v["chain"]["network"], "preprod");
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    let dir = tmp();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    write_config(
        dir.path(),
        "config/config.json",
        r#"{"server":{"port":4000,"bodyLimitBytes":2048},"logging":{"level":"warn"}}"#,
    );
    let (code, out, err) = run_bin(
        dir.path(),
        &["check-config"],
        &[
            ("X402_SERVER__PORT", "8080"),
            ("X402_RATE_LIMIT__SENSITIVE", "7"),
            ("X402_CHAIN__RESERVATION__TTL_SECONDS", "30"),
        ],
    );
    assert_eq!(code, 0, "stderr: {err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["server"]["port"], 8080, "env beats file");
    assert_eq!(v["server"]["bodyLimitBytes"], 2048, "file beats default");
    assert_eq!(v["logging"]["level"], "warn");
    assert_eq!(v["rateLimit"]["sensitive"], 7);
    assert_eq!(v["chain"]["reservation"]["ttlSeconds"], 30);
}

#[test]
fn x402_config_names_the_file() {
    let dir = tmp();
    let path = write_config(dir.path(), "elsewhere.json", r#"{"server":{"port":5055}}"#);
    let (code, out, _) = run_bin(dir.path(), &["check-config"], &[("X402_CONFIG", &path)]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["server"]["port"], 5055);
}

#[test]
fn an_explicit_config_file_that_is_missing_exits_1_naming_it() {
    let dir = tmp();
    let (code, out, err) = run_bin(
        dir.path(),
        &["--config", "nope/absent.json", "check-config"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("config file not found: nope/absent.json"),
        "stderr: {err}"
    );
    assert!(
        out.contains("\"step\":\"config\""),
        "one JSON log line naming the step: {out}"
    );
    let (code, _, err) = run_bin(dir.path(), &["serve"], &[("X402_CONFIG", "missing.json")]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.json"), "{err}");
}

#[test]
fn malformed_json_exits_1_with_file_line_and_column() {
    let dir = tmp();
    let path = write_config(
        dir.path(),
        "bad.json",
        "{\n  \"server\": {\n    \"port\": 3000,\n  }\n}\n",
    );
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.json"), "{err}");
    assert!(err.contains("line 4, column 3"), "{err}");
}

#[test]
fn invalid_values_are_all_reported_by_dotted_path() {
    let dir = tmp();
    let cfg = json!({
        "server": {"port": "not-a-port"},
        "chain": {"network": "preprod"},
        "settlement": {"defaultConfirmations": 99},
        "rateLimit": {"global": 0}
    });
    let path = write_config(dir.path(), "c.json", &cfg.to_string());
    // One line names them all: the type error and every semantic problem.
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    assert!(err.starts_with("ConfigInvalidError: "), "{err}");
    assert!(
        err.contains("server.port: invalid type: string \"not-a-port\", expected u16"),
        "{err}"
    );
    assert!(
        err.contains("chain.blockfrost.projectId: Blockfrost project ID is required"),
        "{err}"
    );
    assert!(
        err.contains("settlement.defaultConfirmations: must be between -1 and 20"),
        "{err}"
    );
    assert!(
        err.contains("rateLimit.global: must be at least 1"),
        "{err}"
    );
}

#[test]
fn unknown_network_is_a_config_error() {
    let dir = tmp();
    let path = write_config(dir.path(), "c.json", r#"{"chain":{"network":"solana"}}"#);
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "check-config"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("ConfigInvalidError: chain.network"), "{err}");
}

#[test]
fn mainnet_needs_the_explicit_guard() {
    let dir = tmp();
    let path = write_config(
        dir.path(),
        "c.json",
        r#"{"chain":{"network":"mainnet","blockfrost":{"projectId":"mainnetXXXXXXXXXXXXXXXX"}}}"#,
    );
    let (code, _, err) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Mainnet connection requires explicit MAINNET=true environment variable"
    );
    let (code, _, _) = run_bin(
        dir.path(),
        &["--config", &path, "check-config"],
        &[("MAINNET", "false")],
    );
    assert_eq!(code, 1);
    let (code, out, err) = run_bin(
        dir.path(),
        &["--config", &path, "check-config"],
        &[("MAINNET", "true")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"mainnet\""));
}

#[test]
fn a_store_that_cannot_connect_fails_startup_at_the_store_step() {
    let dir = tmp();
    // Nothing listens on port 1.
    let path = write_config(
        dir.path(),
        "c.json",
        r#"{"server":{"port":0},"store":{"backend":"redis"},"chain":{"redis":{"port":1,"connectTimeoutMs":300}}}"#,
    );
    let (code, out, _) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    let line = out
        .lines()
        .find(|l| l.contains("startup failed"))
        .expect("a startup failure line");
    let v: Value = serde_json::from_str(line).expect("JSON line");
    assert_eq!(v["step"], "store");
    assert_eq!(v["level"], 50);
}

#[test]
fn a_port_in_use_fails_startup_at_the_listener_step() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tmp();
    let path = write_config(
        dir.path(),
        "c.json",
        &format!(r#"{{"server":{{"port":{port}}}}}"#),
    );
    let (code, out, _) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1);
    let line = out
        .lines()
        .find(|l| l.contains("startup failed"))
        .expect("a startup failure line");
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["step"], "listener");
}

fn parse_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

#[tokio::test]
async fn logs_are_pino_compatible_json_with_request_ids_and_one_access_line() {
    let app = BinApp::start(
        json!({"server": {"port": 0}, "chain": {"devnet": {"blockTimeMs": 200}}}),
        &[],
    );
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/health", app.base()))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/nowhere", app.base()))
        .send()
        .await
        .unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        uuid::Uuid::parse_str(&generated).is_ok(),
        "a UUID when the caller sends none"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lines = app.lines();
    let parsed = parse_lines(&lines);
    for v in &parsed {
        let level = v["level"].as_u64().expect("numeric level");
        assert!((10..=60).contains(&level));
        assert!(v["time"].is_string());
        assert!(v["msg"].is_string());
        assert!(v["pid"].is_number());
        assert!(v["hostname"].is_string());
        assert_eq!(v["name"], "x402-facilitator");
    }
    let access: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["reqId"] == "req-abc-123")
        .collect();
    let access_lines: Vec<&&Value> = access
        .iter()
        .filter(|v| v["statusCode"].is_number())
        .collect();
    assert_eq!(access_lines.len(), 1, "exactly one access line: {access:?}");
    let a = access_lines[0];
    assert_eq!(a["method"], "GET");
    assert_eq!(a["url"], "/health");
    assert_eq!(a["statusCode"], 200);
    assert!(a["responseTime"].as_f64().unwrap() >= 0.0);
    let other: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["reqId"] == generated.as_str())
        .collect();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["statusCode"], 404);
}

#[test]
fn log_output_renders_through_pino_pretty() {
    let Some(pino) = crate::support::node::bin("pino-pretty") else {
        assert!(
            std::env::var("X402_INTEROP_REQUIRED").is_err(),
            "pino-pretty missing but X402_INTEROP_REQUIRED is set"
        );
        eprintln!("SKIPPED: pino-pretty not installed (npm ci --prefix interop)");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = BinApp::start(json!({"server": {"port": 0}}), &[]);
    rt.block_on(async {
        reqwest::get(format!("{}/health", app.base()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    let input = app.lines().join("\n") + "\n";
    let mut child = std::process::Command::new(pino)
        .arg("--colorize=false")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("INFO"),
        "pino-pretty shows the level name: {text}"
    );
    assert!(text.contains("request completed"), "{text}");
    assert!(text.contains("reqId"), "{text}");
    assert!(
        !text.contains("\"level\":30"),
        "lines were rendered, not passed through: {text}"
    );
}

#[tokio::test]
async fn pretty_logging_and_level_filtering() {
    let app = BinApp::start(
        json!({"server": {"port": 0}, "logging": {"pretty": true}}),
        &[],
    );
    reqwest::get(format!("{}/health", app.base()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = app.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request completed") && l.contains("INFO"))
    );
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "pretty lines are not JSON"
    );
    drop(app);

    let app = BinApp::start(
        json!({"server": {"port": 0}, "logging": {"level": "warn"}}),
        &[],
    );
    reqwest::get(format!("{}/health", app.base()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parsed = parse_lines(&app.lines());
    assert!(
        parsed.iter().all(|v| v["level"].as_u64().unwrap() >= 40),
        "{parsed:?}"
    );
    assert!(!parsed.iter().any(|v| {
        v["msg"]
            .as_str()
            .unwrap_or("")
            .contains("request completed")
    }));
}

#[tokio::test]
async fn errors_have_one_json_shape() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/no/such/route"))
        .header("x-request-id", "rid-404")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    assert_eq!(v["error"]["statusCode"], 404);
    assert!(v["error"]["message"].is_string());
    assert_eq!(v["requestId"], "rid-404");
    assert!(v["timestamp"].is_string());

    let r = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
    assert_eq!(v["error"]["statusCode"], 405);

    let big = vec![b'x'; 65_537];
    let r = app
        .client
        .post(app.url("/verify"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert_eq!(v["error"]["statusCode"], 413);
    app.stop().await;
}

#[tokio::test]
async fn body_limit_is_configurable() {
    let app = spawn_app_with(|s| s.server.body_limit_bytes = 2048).await;
    let r = app
        .client
        .post(app.url("/verify"))
        .header("content-type", "application/json")
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn health_reports_dependencies_and_ready_is_200_when_payments_can_be_taken() {
    let app = spawn_app().await;
    let (code, v) = app.get_json("/health").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptimeSeconds"].is_u64());
    assert!(v["timestamp"].is_string());
    assert_eq!(v["dependencies"]["store"]["status"], "up");
    assert_eq!(v["dependencies"]["store"]["backend"], "memory");
    assert!(v["dependencies"]["store"]["latencyMs"].is_number());
    assert_eq!(v["dependencies"]["chain"]["status"], "up");
    assert_eq!(v["dependencies"]["chain"]["network"], "cardano:devnet");
    assert!(v["dependencies"]["chain"]["tip"]["slot"].is_u64());
    let (code, v) = app.get_json("/ready").await;
    assert_eq!(code, 200);
    assert_eq!(v["ready"], true);
    app.stop().await;
}

#[tokio::test]
async fn healthcheck_subcommand_exits_0_only_for_a_live_service() {
    let app = spawn_app().await;
    let dir = tmp();
    let base = app.base.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        run_bin(dir.path(), &["healthcheck", "--url", &base], &[])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "healthy");
    app.stop().await;
    let dir = tmp();
    let (code, _, _) = run_bin(
        dir.path(),
        &["healthcheck", "--url", "http://127.0.0.1:1"],
        &[],
    );
    assert_eq!(code, 1);
}

/// SIGTERM during a slow request: the request completes, new connections are
/// refused during the drain, and the process exits 0.
#[test]
fn sigterm_drains_in_flight_requests_and_refuses_new_connections() {
    let mut app = BinApp::start(
        json!({"server": {"port": 0, "shutdownGraceSeconds": 10}}),
        &[],
    );
    let port = app.port;
    // An in-flight request: headers sent, body trickling.
    let body = br#"{"x402Version":2}"#;
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(slow, "POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
    slow.write_all(&body[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    app.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    let refused = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    );
    assert!(
        refused.is_err(),
        "new connections are refused while draining"
    );
    assert_eq!(
        app.child.try_wait().unwrap(),
        None,
        "still running while a request is in flight"
    );

    slow.write_all(&body[5..]).unwrap();
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "the in-flight request got its answer: {answer}"
    );
    assert!(answer.contains("invalid_payload"), "{answer}");
    assert_eq!(
        app.wait(Duration::from_secs(10)),
        Some(0),
        "exit 0 after the drain"
    );
    let lines = app.lines();
    assert!(
        lines.iter().any(|l| l.contains("shutdown complete")),
        "{lines:?}"
    );
}

/// config/config.example.json lists every key with its default: it parses to
/// exactly the built-in defaults, and the defaults have no key it lacks.
#[test]
fn config_example_lists_every_key_with_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/config.example.json");
    let example: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let defaults = serde_json::to_value(x402_facilitator::config::Settings::default()).unwrap();
    assert_eq!(
        example, defaults,
        "regenerate with: cargo run -- check-config > config/config.example.json"
    );
}

#[test]
fn a_chain_backend_that_cannot_be_reached_fails_startup_at_the_chain_step() {
    let dir = tmp();
    // A devnet reached through a Blockfrost URL must read that server's clock at startup.
    let path = write_config(
        dir.path(),
        "c.json",
        r#"{"server":{"port":0},"chain":{"network":"devnet","blockfrost":{"url":"http://127.0.0.1:9/api/v0","maxRetries":0,"requestTimeoutMs":500}}}"#,
    );
    let (code, out, err) = run_bin(dir.path(), &["--config", &path, "serve"], &[]);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("startup failed"))
        .expect("a startup failure line");
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["step"], "chain");
    assert!(
        err.contains("chain provider initialization failed"),
        "{err}"
    );
}

/// Lines logged deep inside a settlement (in its own task) still carry the request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_of_a_settlement_carries_its_request_id() {
    use crate::support::pay::{funded_buyer, pay, requirements, seller, view};
    let app = BinApp::start(
        json!({"server": {"port": 0}, "chain": {"devnet": {"blockTimeMs": 200}}}),
        &[],
    );
    let client = reqwest::Client::new();
    let (buyer, _) = funded_buyer(&client, &app.base(), 0x0f, 10_000_000).await;
    let v = view(&client, &app.base(), &buyer).await;
    let (built, body) = pay(&buyer, &v, &requirements(&seller(0x3f), 1_000_000, 0));
    let r = client
        .post(format!("{}/settle", app.base()))
        .header("x-request-id", "settle-rid-0001")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let settled: Value = r.json().await.unwrap();
    assert_eq!(settled["success"], true, "{settled}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parsed = parse_lines(&app.lines());
    let txid = built.tx_id.to_hex();
    let about_tx: Vec<&Value> = parsed
        .iter()
        .filter(|v| {
            v["tx"] == txid.as_str()
                && v["msg"]
                    .as_str()
                    .unwrap_or("")
                    .contains("settlement transition")
        })
        .collect();
    assert!(
        about_tx.len() >= 3,
        "claimed->submitting->submitted->confirmed lines: {about_tx:?}"
    );
    for line in about_tx {
        assert_eq!(line["reqId"], "settle-rid-0001", "{line}");
    }
}
