//! Issue 14 point 7: OpenTelemetry traces over OTLP/HTTP. The real binary
//! runs with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a receiver in this
//! test (an axum route decoding the protobuf export); a paid request goes
//! through /verify and /settle with known request ids; on SIGTERM the binary
//! flushes its spans. Every pipeline stage, chain call and store call must
//! arrive as a span of the request's trace, each linked to its parent, up to
//! the `request` span that carries the request id.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use serde_json::json;

use crate::support::app::BinApp;
use crate::support::pay::{funded_buyer, pay, requirements, seller, view};

#[derive(Clone, Debug)]
struct Span {
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    attrs: HashMap<String, String>,
    service: String,
}

type Received = Arc<Mutex<Vec<Span>>>;

async fn receive(State(got): State<Received>, body: Bytes) -> &'static str {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return "";
    };
    let mut out = got.lock().expect("lock");
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attrs = s
                    .attributes
                    .iter()
                    .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref())?)))
                    .collect();
                out.push(Span {
                    name: s.name,
                    trace: s.trace_id,
                    id: s.span_id,
                    parent: s.parent_span_id,
                    attrs,
                    service: service.clone(),
                });
            }
        }
    }
    ""
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

/// The spans of the trace whose `request` span carries `req_id`, after
/// checking every parent link of that trace resolves, up to that root.
fn trace_of(spans: &[Span], req_id: &str) -> Vec<Span> {
    let root = spans
        .iter()
        .find(|s| s.name == "request" && s.attrs.get("reqId").map(String::as_str) == Some(req_id))
        .unwrap_or_else(|| panic!("no request span with reqId {req_id}"));
    assert!(root.parent.is_empty(), "the request span is a root");
    assert_eq!(root.service, "x402-facilitator");
    let trace: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace == root.trace)
        .cloned()
        .collect();
    let by_id: HashMap<&[u8], &Span> = trace.iter().map(|s| (s.id.as_slice(), s)).collect();
    for s in &trace {
        // Walk up: every ancestor was exported, and the walk ends at the root.
        let mut cur = s;
        let mut hops = 0;
        while !cur.parent.is_empty() {
            cur = by_id
                .get(cur.parent.as_slice())
                .unwrap_or_else(|| panic!("span {} has a parent that was not exported", s.name));
            hops += 1;
            assert!(hops < 32, "parent chain too long");
        }
        assert_eq!(
            cur.id, root.id,
            "span {} does not descend from the request",
            s.name
        );
    }
    trace
}

fn names(trace: &[Span]) -> HashSet<&str> {
    trace.iter().map(|s| s.name.as_str()).collect()
}

fn parent_name<'a>(trace: &'a [Span], child: &str) -> &'a str {
    let c = trace
        .iter()
        .find(|s| s.name == child)
        .unwrap_or_else(|| panic!("no span {child}"));
    trace
        .iter()
        .find(|s| s.id == c.parent)
        .map(|p| p.name.as_str())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_settle_export_one_span_per_stage_chain_and_store_call() {
    let got: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(got.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let config = json!({
        "server": {"port": 0},
        "rateLimit": {"enabled": false},
        "chain": {"devnet": {"blockTimeMs": 200}},
        "settlement": {"pollIntervalMs": 50}
    });
    let mut app = tokio::task::spawn_blocking(move || {
        BinApp::start(
            config,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.as_str())],
        )
    })
    .await
    .unwrap();
    let base = app.base();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let (buyer, _) = funded_buyer(&client, &base, 0x0e, 10_000_000).await;
    let v = view(&client, &base, &buyer).await;
    let req = requirements(&seller(0x7e), 1_000_000, 0);
    let (_built, body) = pay(&buyer, &v, &req);
    for (route, id) in [("/verify", "otel-verify-1"), ("/settle", "otel-settle-1")] {
        let r = client
            .post(format!("{base}{route}"))
            .header("x-request-id", id)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{route}");
        let answer: serde_json::Value = r.json().await.unwrap();
        let ok = answer["isValid"] == true || answer["success"] == true;
        assert!(ok, "{route} answered {answer}");
    }

    // SIGTERM: the drain ends with a flush of the queued spans.
    app.signal("TERM");
    assert_eq!(app.wait(Duration::from_secs(30)), Some(0), "clean exit");
    let spans = got.lock().unwrap().clone();
    assert!(!spans.is_empty(), "no span arrived at the OTLP receiver");

    let verify = trace_of(&spans, "otel-verify-1");
    let seen = names(&verify);
    for want in [
        "verify.envelope",
        "verify.signatures",
        "verify.validity_window",
        "verify.inputs",
        "verify.ledger_rules",
        "chain.tip",
        "chain.utxos",
        "chain.protocol_params",
        "store.get",
    ] {
        assert!(seen.contains(want), "verify trace lacks {want}: {seen:?}");
    }
    assert_eq!(parent_name(&verify, "verify.envelope"), "request");

    let settle = trace_of(&spans, "otel-settle-1");
    let seen = names(&settle);
    for want in [
        "verify.envelope",
        "verify.signatures",
        "settle.claim",
        "settle.submit",
        "chain.submit",
        "store.claim",
        "store.transition",
    ] {
        assert!(seen.contains(want), "settle trace lacks {want}: {seen:?}");
    }
    assert_eq!(parent_name(&settle, "chain.submit"), "settle.submit");
    assert_eq!(parent_name(&settle, "store.claim"), "settle.claim");
}
