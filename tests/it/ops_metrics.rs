//! Issue 14 point 6: the shipped alert rules (docker/prometheus/alerts.yml)
//! and the Grafana dashboard (docker/grafana/*.json) only use metrics the
//! service exports. A facilitator (chain through the Blockfrost client, so
//! chain latency is recorded) serves real traffic: a valid and an invalid
//! verify, a settle, a replay with other requirements (duplicate), and
//! enough /status calls to be rate limited; then /metrics is scraped and
//! every metric name in every rule and panel query must be in it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::app::spawn_app_with;
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};

/// Series Prometheus makes itself rather than scraping them.
const SYNTHETIC: &[&str] = &["up"];

/// Operators, and aggregations (which may be followed by `by (...)` rather than `(`).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Metric names used by a PromQL expression: identifiers that are not
/// functions, keywords, label names (inside `{}`/`by ()`), durations or
/// numbers. Grafana's `$variables` only appear inside the removed blocks.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Drop string literals, label matchers and range selectors.
    let mut flat = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_str: Option<char> = None;
    for c in expr.chars() {
        if let Some(q) = in_str {
            if c == q {
                in_str = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_str = Some(c),
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace == 0 && depth_bracket == 0 => flat.push(c),
            _ => {}
        }
    }
    let chars: Vec<char> = flat.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    let mut skip_group = false; // the parenthesised label list after by/without/on/ignoring
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number, with an exponent (1e-9).
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let is_call = chars.get(j) == Some(&'(');
            let lower = word.to_ascii_lowercase();
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&lower.as_str())
            {
                skip_group = is_call;
                continue;
            }
            if is_call || KEYWORDS.contains(&lower.as_str()) {
                continue;
            }
            out.insert(word);
            continue;
        }
        if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
        }
        i += 1;
    }
    out
}

#[test]
fn the_promql_scanner_finds_metrics_only() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{route=~"/verify|/x"}[5m]))) > 0.5
           and sum(rate(x402_verify_total[10m])) + max by (state) (s_total) / clamp_min(sum(rate(b_total{a="b"}[$__rate_interval])), 1e-9) > 0.1 or up == 0"#,
    );
    let want: BTreeSet<String> = [
        "http_request_duration_seconds_bucket",
        "x402_verify_total",
        "b_total",
        "s_total",
        "up",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, want);
}

fn repo(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// (where, expression) of every alert rule.
fn alert_exprs() -> Vec<(String, String)> {
    let doc: serde_json::Value =
        serde_norway::from_str(&repo("docker/prometheus/alerts.yml")).expect("alerts.yml parses");
    let mut out = Vec::new();
    for g in doc["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("?");
            out.push((
                format!("alert {name}"),
                r["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    out
}

/// (where, expression) of every panel query and query variable of every dashboard.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/grafana");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("docker/grafana")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in docker/grafana");
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).expect("read"))
            .expect("dashboard is JSON");
        let file = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for p in d["panels"].as_array().expect("panels") {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((format!("{file}: panel {}", p["title"]), e.to_owned()));
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query"
                && let Some(q) = v["query"].as_str()
            {
                // label_values(metric, label)
                let inner = q
                    .trim()
                    .strip_prefix("label_values(")
                    .and_then(|s| s.split(',').next())
                    .unwrap_or(q);
                out.push((format!("{file}: variable {}", v["name"]), inner.to_owned()));
            }
        }
    }
    out
}

fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_alerts_and_dashboards_is_exported() {
    let used: Vec<(String, String)> = alert_exprs().into_iter().chain(dashboard_exprs()).collect();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for (_, e) in &used {
        wanted.extend(metric_names(e));
    }
    for s in SYNTHETIC {
        wanted.remove(*s);
    }
    assert!(wanted.len() >= 10, "too few metrics found: {wanted:?}");

    let host = spawn_app_with(|_| {}).await;
    let api = format!("{}/devnet/api/v0", host.base);
    let app = spawn_app_with(|s| {
        s.chain.blockfrost.url = Some(api);
        s.chain.cache.utxo_ttl = std::time::Duration::from_secs(1);
        s.rate_limit.enabled = true;
        s.rate_limit.sensitive = 8;
        s.rate_limit.global = 1000;
    })
    .await;

    let (buyer, _) = funded_buyer(&host.client, &host.base, 0x5b, 20_000_000).await;
    let v = view(&host.client, &host.base, &buyer).await;
    let req = requirements(&seller(0x5c), 1_000_000, 0);
    let (_built, body) = pay(&buyer, &v, &req);
    let (code, r) = app.post_json("/verify", &body).await;
    assert_eq!((code, r["isValid"].as_bool()), (200, Some(true)), "{r}");
    let (code, r) = app.post_json("/settle", &body).await;
    assert_eq!((code, r["success"].as_bool()), (200, Some(true)), "{r}");
    // The same transaction under other requirements: duplicate_settlement.
    let mut other = body.clone();
    other["paymentRequirements"]["extra"]["confirmationPolicy"]["l1Confirmations"] =
        serde_json::json!(1);
    other["paymentPayload"]["accepted"] = other["paymentRequirements"].clone();
    let (_, r) = app.post_json("/settle", &other).await;
    assert_eq!(r["errorReason"], "duplicate_settlement", "{r}");
    // An invalid payment (wrong amount).
    let mut bad = body.clone();
    bad["paymentRequirements"]["amount"] = serde_json::json!("999");
    bad["paymentPayload"]["accepted"] = bad["paymentRequirements"].clone();
    let (code, r) = app.post_json("/verify", &bad).await;
    assert_eq!((code, r["isValid"].as_bool()), (200, Some(false)), "{r}");
    // Past the sensitive limit: 429s.
    let mut limited = 0;
    for _ in 0..12 {
        let (code, _) = app.get_json("/status/00").await;
        if code == 429 {
            limited += 1;
        }
    }
    assert!(
        limited > 0,
        "no 429 after 12 status calls over a limit of 8"
    );

    // Gauges are refreshed on scrape; the reconciler's leader gauge when it
    // takes its lease. Scrape until everything is there (or report what is not).
    let deadline = Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let text = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        let have = exported(&text);
        let missing: Vec<&String> = wanted.iter().filter(|m| !have.contains(*m)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing
                .into_iter()
                .map(|m| {
                    let at: Vec<&str> = used
                        .iter()
                        .filter(|(_, e)| metric_names(e).contains(m))
                        .map(|(w, _)| w.as_str())
                        .collect();
                    format!("{m} (used by {at:?})")
                })
                .collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(missing.is_empty(), "not exported: {missing:#?}");
    app.stop().await;
    host.stop().await;
}
