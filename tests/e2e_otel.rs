//! OpenTelemetry export of invocation spans, checked against a real OTLP/gRPC receiver: a
//! Python gRPC server built on OpenTelemetry's own protocol package (`tests/otlp/`), so the
//! server's hand-written encoder is decoded by an independent implementation.
//!
//! Invariants checked: with `tracing-endpoint` set, an ingress call yields the invocation
//! span (the trace's root), the ingress request span and the attempt span, in one trace, with
//! consistent parents and times; a failed invocation's span has status ERROR; with the
//! collector gone, calls still succeed.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Fixture, FixtureOptions, Sdks};

const RECEIVER_START_MAX: Duration = Duration::from_secs(20);
/// Spans are batched for up to a second before export.
const SPANS_WAIT_MAX: Duration = Duration::from_secs(15);

struct Receiver {
    child: Child,
    spans: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_receiver() -> (Receiver, u16) {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-venv/bin/python");
    assert!(
        python.exists(),
        "the test virtual environment is missing: scripts/test creates target/py-venv with \
         tests/otlp/requirements.txt"
    );
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let spans = dir.path().join("spans.jsonl");
    let child = Command::new(python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/receiver.py"))
        .arg(&port_file)
        .arg(&spans)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the OTLP receiver");
    let mut r = Receiver { child, spans, _dir: dir };
    let deadline = Instant::now() + RECEIVER_START_MAX;
    loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            return (r, p.trim().parse().expect("a port"));
        }
        if let Some(status) = r.child.try_wait().unwrap() {
            panic!("the OTLP receiver exited at start: {status}");
        }
        assert!(Instant::now() < deadline, "the OTLP receiver did not start in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spans_of(r: &Receiver, invocation: &str) -> Vec<Value> {
    std::fs::read_to_string(&r.spans)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|s| s["attributes"]["restate.invocation.id"] == invocation)
        .collect()
}

async fn wait_spans(r: &Receiver, invocation: &str, want: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + SPANS_WAIT_MAX;
    loop {
        let spans = spans_of(r, invocation);
        let has = |prefix: &str| {
            spans.iter().any(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        };
        if want.iter().all(|w| has(w)) {
            return spans;
        }
        assert!(Instant::now() < deadline, "spans of {invocation} so far: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn one<'a>(spans: &'a [Value], prefix: &str) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .collect();
    assert_eq!(found.len(), 1, "one `{prefix}` span: {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_ingress_and_attempt_spans_reach_an_otlp_receiver_in_one_trace() {
    let (receiver, port) = start_receiver();
    let env = vec![("RESTATE_TRACING_ENDPOINT".to_string(), format!("http://127.0.0.1:{port}"))];
    let mut fx =
        Fixture::start_with("otel", Sdks::Ts, FixtureOptions { env, ..Default::default() }).await;

    let ok = fx.call("/Greeter/greet", json!("spans")).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let id = ok.header("x-restate-id").expect("the invocation id").to_string();
    let spans = wait_spans(&receiver, &id, &["invocation ", "ingress ", "attempt "]).await;
    let inv = one(&spans, "invocation Greeter/greet");
    let ingress = one(&spans, "ingress POST");
    let attempt = one(&spans, "attempt 1 Greeter/greet");
    let trace = inv["trace_id"].as_str().unwrap();
    assert_eq!(trace.len(), 32, "{inv}");
    for s in [ingress, attempt] {
        assert_eq!(s["trace_id"], inv["trace_id"], "one trace: {s}");
        assert_eq!(s["parent_span_id"], inv["span_id"], "a child of the invocation span: {s}");
    }
    assert_eq!(inv["parent_span_id"], "", "the invocation span is the root");
    assert_eq!(inv["resource"]["service.name"], "ratchet");
    assert_eq!(inv["status_code"], 0, "{inv}");
    assert_eq!(ingress["kind"], 2, "SERVER");
    assert_eq!(attempt["kind"], 3, "CLIENT");
    assert_eq!(ingress["attributes"]["http.response.status_code"], 200);
    let (a_start, a_end) = (attempt["start"].as_u64().unwrap(), attempt["end"].as_u64().unwrap());
    let (i_start, i_end) = (inv["start"].as_u64().unwrap(), inv["end"].as_u64().unwrap());
    // The invocation's times are the log's (milliseconds, stamped when records are appended);
    // the attempt ends once its last append is acknowledged, a little after.
    let slack = 50_000_000;
    assert!(i_start <= a_start + 1_000_000 && a_end <= i_end + slack, "{inv} {attempt}");
    assert!(a_start <= a_end && i_start <= i_end);

    // A failed invocation's span says so.
    let failed = fx.call("/Greeter/fail", json!(null)).await;
    assert!(failed.status >= 400, "{}", failed.text());
    let id = failed.header("x-restate-id").expect("the invocation id").to_string();
    let spans = wait_spans(&receiver, &id, &["invocation "]).await;
    assert_eq!(one(&spans, "invocation Greeter/fail")["status_code"], 2, "ERROR: {spans:#?}");

    // Without a collector calls go on; the export failure is a warning, not an error.
    drop(receiver);
    fx.allow_server_log("cannot export");
    for _ in 0..3 {
        let r = fx.call("/Greeter/greet", json!("no collector")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = fx.call("/Greeter/greet", json!("still fine")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
