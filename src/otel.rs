//! OpenTelemetry export of invocation spans over OTLP/gRPC (`tracing-endpoint`).
//!
//! Three kinds of span, all in one trace per invocation:
//! - `invocation <service>/<handler>`: the invocation's life in its partition, from its
//!   creation to its completion (emitted when it completes), the trace's root;
//! - `ingress <METHOD>`: an ingress request that created or reached it, a child (the path is
//!   left out: it carries object keys);
//! - `attempt <n> <service>/<handler>`: each attempt the invoker made, a child.
//!
//! Ids are derived from the invocation id (trace id: its 128-bit hash; the invocation span's
//! id: a 64-bit hash), so spans emitted by different components, at different times and
//! across restarts join the same trace without storing anything.
//!
//! Invariants:
//! - Export never slows or fails the work it describes: spans go through a bounded queue
//!   ([`QUEUE_MAX`]); when it is full, or the collector is down, spans are dropped and
//!   counted (`dropped` in the warnings), never waited for.
//! - Memory is bounded by the queue and one batch ([`BATCH_MAX`]).
//! - Spans are only emitted by the live leader (not while a partition replays its log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut as _, Bytes, BytesMut};
use prost::Message as _;
use tokio::sync::mpsc;

use crate::protocol::ids::InvocationId;

/// Spans waiting for export; more are dropped.
pub const QUEUE_MAX: usize = 8192;
/// Spans in one export request.
pub const BATCH_MAX: usize = 512;
/// Longest a span waits in a partial batch.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// One export request, connection included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// OTLP's span kinds.
pub mod kind {
    pub const INTERNAL: i32 = 1;
    pub const SERVER: i32 = 2;
    pub const CLIENT: i32 = 3;
}

/// A finished span.
#[derive(Clone, Debug)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: i32,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    /// Set when what the span describes failed.
    pub error: Option<String>,
}

impl Span {
    /// A span of something done for invocation `id` that started at `start` and ends now: a
    /// child of the invocation's span, its id derived from the invocation, `what` and the
    /// start, with the invocation id as its first attribute.
    pub fn for_invocation(
        id: &InvocationId,
        what: &[u8],
        name: String,
        kind: i32,
        start: SystemTime,
    ) -> Span {
        let tag = [what, &nanos(start).to_be_bytes()].concat();
        Span {
            trace_id: trace_id(id),
            span_id: span_id(id, &tag),
            parent: Some(invocation_span_id(id)),
            name,
            kind,
            start,
            end: SystemTime::now(),
            attributes: vec![("restate.invocation.id", Value::Str(id.to_string()))],
            error: None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Value {
    Str(String),
    Int(i64),
}

struct Exporter {
    tx: mpsc::Sender<Span>,
    dropped: AtomicU64,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Whether spans are exported (a `tracing-endpoint` is set); callers skip building spans
/// otherwise.
pub fn enabled() -> bool {
    EXPORTER.get().is_some()
}

/// Starts exporting to `endpoint` (an `http://host:port` OTLP/gRPC collector), once per
/// process. Must run inside the tokio runtime.
pub fn start(endpoint: &str, node_name: &str) {
    let (tx, rx) = mpsc::channel(QUEUE_MAX);
    if EXPORTER.set(Exporter { tx, dropped: AtomicU64::new(0) }).is_err() {
        return;
    }
    let url = format!(
        "{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        endpoint.trim_end_matches('/')
    );
    tracing::info!("exporting invocation spans to {endpoint} (OTLP/gRPC)");
    tokio::spawn(export_loop(url, node_name.to_string(), rx));
}

/// Longest text kept in a span's attribute or status (bytes): with [`BATCH_MAX`] spans a
/// batch stays far below gRPC's usual 4 MiB message limit.
pub const TEXT_MAX: usize = 1024;

fn truncate(s: &mut String) {
    if s.len() > TEXT_MAX {
        let mut end = TEXT_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// Queues a span for export; drops it when the queue is full.
pub fn emit(mut span: Span) {
    let Some(e) = EXPORTER.get() else { return };
    truncate(&mut span.name);
    if let Some(m) = span.error.as_mut() {
        truncate(m);
    }
    for (_, v) in span.attributes.iter_mut() {
        if let Value::Str(s) = v {
            truncate(s);
        }
    }
    if e.tx.try_send(span).is_err() {
        e.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The trace of an invocation.
pub fn trace_id(id: &InvocationId) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(&id.to_bytes()).to_be_bytes()
}

/// A span id derived from an invocation and what the span is.
pub fn span_id(id: &InvocationId, what: &[u8]) -> [u8; 8] {
    let mut b = id.to_bytes().to_vec();
    b.extend_from_slice(what);
    let h = xxhash_rust::xxh3::xxh3_64(&b);
    // The all-zero id is invalid in OTLP.
    (if h == 0 { 1 } else { h }).to_be_bytes()
}

/// The id of an invocation's root span.
pub fn invocation_span_id(id: &InvocationId) -> [u8; 8] {
    span_id(id, b"invocation")
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

async fn export_loop(url: String, node_name: String, mut rx: mpsc::Receiver<Span>) {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Full<Bytes>> =
        Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let mut failures_logged_at: Option<std::time::Instant> = None;
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len();
        let body = encode_request(&node_name, batch);
        let req = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(http_body_util::Full::new(body));
        let result = match req {
            Ok(req) => match tokio::time::timeout(EXPORT_TIMEOUT, client.request(req)).await {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    let grpc_status = |h: &http::HeaderMap| {
                        h.get("grpc-status").and_then(|v| v.to_str().ok()).map(str::to_string)
                    };
                    // In the headers of a trailers-only answer, else in the trailers.
                    let mut grpc = grpc_status(resp.headers());
                    if let Ok(body) = http_body_util::BodyExt::collect(resp.into_body()).await {
                        if let Some(t) = body.trailers() {
                            grpc = grpc.or_else(|| grpc_status(t));
                        }
                    }
                    match (status.is_success(), grpc.as_deref()) {
                        (true, None | Some("0")) => Ok(()),
                        (_, g) => Err(format!("HTTP {status}, grpc-status {}", g.unwrap_or("-"))),
                    }
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}")),
            },
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            let dropped = EXPORTER.get().map_or(0, |x| x.dropped.load(Ordering::Relaxed));
            // One warning a minute at most: a collector that is down must not flood the log.
            if failures_logged_at.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                failures_logged_at = Some(std::time::Instant::now());
                tracing::warn!(
                    "cannot export {n} spans to {url}: {e} (spans are dropped; {dropped} dropped \
                     because the queue was full)"
                );
            }
        }
    }
}

/// Encodes one `ExportTraceServiceRequest` in a gRPC frame.
fn encode_request(node_name: &str, spans: Vec<Span>) -> Bytes {
    let req = pb::ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            resource: Some(pb::Resource {
                attributes: vec![
                    kv("service.name", Value::Str("ratchet".into())),
                    kv("service.version", Value::Str(env!("CARGO_PKG_VERSION").into())),
                    kv("host.name", Value::Str(node_name.to_string())),
                ],
            }),
            scope_spans: vec![pb::ScopeSpans {
                scope: Some(pb::InstrumentationScope {
                    name: "ratchet".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans: spans.into_iter().map(to_pb).collect(),
            }],
        }],
    };
    let msg = req.encode_to_vec();
    let mut out = BytesMut::with_capacity(5 + msg.len());
    out.put_u8(0);
    out.put_u32(msg.len() as u32);
    out.put_slice(&msg);
    out.freeze()
}

fn kv(key: &str, v: Value) -> pb::KeyValue {
    let value = match v {
        Value::Str(s) => pb::any_value::Value::StringValue(s),
        Value::Int(i) => pb::any_value::Value::IntValue(i),
    };
    pb::KeyValue { key: key.to_string(), value: Some(pb::AnyValue { value: Some(value) }) }
}

fn to_pb(s: Span) -> pb::Span {
    pb::Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: s.name,
        kind: s.kind,
        start_time_unix_nano: nanos(s.start),
        end_time_unix_nano: nanos(s.end).max(nanos(s.start)),
        attributes: s.attributes.into_iter().map(|(k, v)| kv(k, v)).collect(),
        status: Some(match s.error {
            Some(message) => pb::Status { message, code: 2 },
            None => pb::Status { message: String::new(), code: 0 },
        }),
    }
}

/// The OTLP trace messages this exporter sends (field numbers of
/// `opentelemetry/proto/{collector/trace,trace,common,resource}/v1`), and which a test
/// collector decodes.
pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<InstrumentationScope>,
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InstrumentationScope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(string, tag = "2")]
        pub message: String,
        #[prost(int32, tag = "3")]
        pub code: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "any_value::Value", tags = "1, 3")]
        pub value: Option<any_value::Value>,
    }

    pub mod any_value {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(string, tag = "1")]
            StringValue(String),
            #[prost(int64, tag = "3")]
            IntValue(i64),
        }
    }
}
