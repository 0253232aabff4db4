//! Issue 7, black-box: rate limits, API keys, Prometheus metrics, Sentry.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::app::{BinApp, spawn_app_with};
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};
use crate::support::redis_server::{PASSWORD, RedisServer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn rate_limits_per_client_with_headers_and_json_429() {
    let app = spawn_app_with(|s| {
        s.rate_limit.enabled = true;
        s.rate_limit.global = 5;
        s.rate_limit.sensitive = 2;
        s.rate_limit.window = std::time::Duration::from_millis(60_000);
    })
    .await;
    let one = client_from("127.0.0.1");
    for i in 0..5 {
        let r = one.get(app.url("/supported")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["ratelimit-limit"], "5");
        assert_eq!(
            r.headers()["ratelimit-remaining"],
            (4 - i).to_string().as_str()
        );
    }
    let r = one.get(app.url("/supported")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    assert_eq!(v["error"]["statusCode"], 429);

    // Another client address has its own budget; the sensitive routes a tighter one.
    let two = client_from("127.0.0.2");
    for _ in 0..2 {
        let r = two
            .post(app.url("/verify"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "bad body, but not limited");
    }
    let r = two
        .post(app.url("/verify"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "third sensitive call in the window");
    let r = two.get(app.url("/supported")).send().await.unwrap();
    assert_eq!(r.status(), 200, "non-sensitive routes still answer");
    app.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy_and_memory_stays_bounded() {
    let app = spawn_app_with(|s| {
        s.rate_limit.enabled = true;
        s.rate_limit.global = 1;
        s.rate_limit.max_tracked_clients = 100;
        s.server.trust_proxy = true;
    })
    .await;
    for ip in ["10.0.0.1", "10.0.0.2"] {
        let r = app
            .client
            .get(app.url("/supported"))
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ip} has its own bucket");
    }
    let r = app
        .client
        .get(app.url("/supported"))
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // A flood of distinct addresses: tracked clients stay bounded.
    for i in 0..400u32 {
        let ip = format!("10.1.{}.{}", i / 250, i % 250);
        let _ = app
            .client
            .get(app.url("/supported"))
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
    }
    let tracked = app.state.guard.tracked();
    assert!(tracked <= 101, "limiter state bounded: {tracked}");
    app.stop().await;

    // Without trustProxy the header is ignored: every request is the peer's.
    let app = spawn_app_with(|s| {
        s.rate_limit.enabled = true;
        s.rate_limit.global = 1;
    })
    .await;
    let r = app
        .client
        .get(app.url("/supported"))
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/supported"))
        .header("x-forwarded-for", "10.0.0.2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    app.stop().await;
}

#[tokio::test]
async fn api_keys_are_required_when_configured_and_carry_their_own_quota() {
    let digest = hex::encode(Sha256::digest(b"resource-server-key-0001"));
    let app = spawn_app_with(|s| {
        s.auth.api_keys = vec![x402_facilitator::config::KeyDigest::from_hex(&digest).unwrap()];
        s.rate_limit.enabled = true;
        s.rate_limit.sensitive = 2;
        s.rate_limit.api_key_sensitive = Some(10);
        s.rate_limit.api_key_global = Some(50);
    })
    .await;
    let r = app
        .client
        .post(app.url("/verify"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    let r = app
        .client
        .post(app.url("/verify"))
        .header("x-api-key", "wrong-key")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Public routes stay public.
    assert_eq!(
        app.client
            .get(app.url("/supported"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Unauthenticated calls spent the IP's sensitive budget (2)...
    let r = app
        .client
        .post(app.url("/verify"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "limits apply before authentication");
    // ...but the key's quota (10) replaces the IP's on sensitive routes.
    for i in 0..10 {
        let req = if i % 2 == 0 {
            app.client
                .post(app.url("/verify"))
                .bearer_auth("resource-server-key-0001")
        } else {
            app.client
                .post(app.url("/verify"))
                .header("x-api-key", "resource-server-key-0001")
        };
        let r = req.body("{}").send().await.unwrap();
        assert_eq!(
            r.status(),
            400,
            "authenticated call {i} reaches the handler"
        );
        assert_eq!(r.headers()["ratelimit-limit"], "10");
    }
    let r = app
        .client
        .post(app.url("/verify"))
        .bearer_auth("resource-server-key-0001")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    app.stop().await;
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test]
async fn metrics_are_scraped_and_move() {
    let app =
        spawn_app_with(|s| s.chain.devnet.block_time = std::time::Duration::from_millis(200)).await;
    let scrape = || async {
        let r = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        r.text().await.unwrap()
    };
    let before = scrape().await;
    let (buyer, _) = funded_buyer(&app.client, &app.base, 0x41, 10_000_000).await;
    let v = view(&app.client, &app.base, &buyer).await;
    let req = requirements(&seller(0x81), 1_000_000, 0);
    let (_, body) = pay(&buyer, &v, &req);
    let (_, verified) = app.post_json("/verify", &body).await;
    assert_eq!(verified["isValid"], true);
    let (_, bad) = app
        .post_json(
            "/verify",
            &json!({"x402Version": 2, "paymentPayload": {}, "paymentRequirements": {}}),
        )
        .await;
    assert_eq!(bad["isValid"], false);
    let (_, settled) = app.post_json("/settle", &body).await;
    assert_eq!(settled["success"], true);
    let after = scrape().await;

    let d = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    assert!(
        d("x402_verify_total", &[("result", "valid")]) >= 1.0,
        "{after}"
    );
    assert!(d("x402_verify_total", &[("result", "invalid")]) >= 1.0);
    assert!(d("x402_settle_total", &[("result", "success")]) >= 1.0);
    assert!(
        d(
            "http_requests_total",
            &[("route", "/verify"), ("method", "POST"), ("status", "200")]
        ) >= 2.0
    );
    assert!(
        d(
            "http_request_duration_seconds_count",
            &[("route", "/settle")]
        ) >= 1.0
    );
    assert!(
        after.contains("http_request_duration_seconds_bucket{route=\"/verify\""),
        "histogram buckets"
    );
    assert!(metric(&after, "x402_settlements", &[("state", "confirmed")]) >= 1.0);
    let devnet = [("network", "cardano:devnet")];
    assert_eq!(metric(&after, "store_up", &devnet), 1.0);
    assert_eq!(metric(&after, "chain_up", &devnet), 1.0);
    assert!(after.contains("chain_tip_age_seconds{network=\"cardano:devnet\"} "));
    assert!(after.contains("x402_reservations_active{network=\"cardano:devnet\"} "));
    assert!(
        after.contains(
            "chain_request_duration_seconds_bucket{network=\"cardano:devnet\",op=\"submit\""
        ),
        "{after}"
    );
    app.stop().await;
}

/// A local HTTP server posing as Sentry's ingest endpoint.
async fn fake_sentry() -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let router = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let sink = sink.clone();
        async move {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            axum::Json(json!({"id": "0123456789abcdef0123456789abcdef"}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_5xx_becomes_one_sentry_event_with_the_request_id_and_no_secrets() {
    let Some(mut redis) = RedisServer::start("sentry") else {
        return;
    };
    let (port, seen) = fake_sentry().await;
    let config = json!({
        "server": {"port": 0, "healthCacheMs": 0},
        "store": {"backend": "redis"},
        "chain": {"redis": {"host": "127.0.0.1", "port": redis.port(), "password": PASSWORD}},
        "sentry": {"dsn": format!("http://abcdef0123456789abcdef0123456789@127.0.0.1:{port}/42"), "tracesSampleRate": 0.0}
    });
    let app = BinApp::start(config, &[]);
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{}/ready", app.base()))
        .header("x-request-id", "fine-request-1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    redis.kill();
    let r = client
        .get(format!("{}/ready", app.base()))
        .header("x-request-id", "sentry-req-0001")
        .header("authorization", "Bearer secret-token-should-not-leak")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = seen.lock().unwrap().clone();
        let matching: Vec<&String> = events
            .iter()
            .filter(|e| e.contains("sentry-req-0001"))
            .collect();
        if !matching.is_empty() {
            assert_eq!(matching.len(), 1, "one event per 5xx");
            let e = matching[0];
            assert!(e.contains("\"route\":\"/ready\""), "{e}");
            assert!(e.contains("\"method\":\"GET\""), "{e}");
            assert!(e.contains("\"status\":\"503\""), "{e}");
            assert!(
                !e.contains("secret-token-should-not-leak"),
                "no secrets in events"
            );
            assert!(!e.contains(PASSWORD), "no Redis password in events");
            assert!(
                !events.iter().any(|e| e.contains("fine-request-1")),
                "no event for a 200"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no Sentry event arrived: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(app);
}

#[tokio::test]
async fn metrics_can_live_on_their_own_port() {
    let port = crate::support::app::free_port();
    let app = spawn_app_with(|s| s.metrics.port = Some(port)).await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404, "not on the main listener");
    let r = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("store_up"));
    app.stop().await;
}
