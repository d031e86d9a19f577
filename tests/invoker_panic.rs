//! A panic inside an attempt (a bug of this server) stops the invoker with an error naming
//! the invocation, so the runtime fails stop; it never leaves the invocation running for good
//! with its in-flight slot taken.
//!
//! Method: a real processor and invoker on a `MemLog`, with a transport whose `open` panics
//! (or, as the control, fails retryably); the test awaits the invoker's end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ratchet::fsm::{record, HandlerKind, Invoke, Record};
use ratchet::invoker::{self, Connection, SendError, Target, Transport, TransportError};
use ratchet::log::{MemLog, SharedLog};
use ratchet::partition::{processor, Handle, Router, Waiters};
use ratchet::protocol::discovery::ServiceType;
use ratchet::protocol::ids::InvocationId;
use ratchet::schema::{
    Deployment, HandlerSchema, Registry, Schema, SchemaHandlerKind, ServiceSchema,
};
use ratchet::store::PartitionStore;

struct NeverConn;
impl Connection for NeverConn {
    fn head(&self) -> (u16, String) {
        (500, String::new())
    }
    fn send(&mut self, _b: Bytes) -> Result<(), SendError> {
        Err(SendError::Closed)
    }
    fn close_request(&mut self) {}
    async fn recv(&mut self) -> Option<Result<Bytes, TransportError>> {
        None
    }
}

struct Flaky {
    panic: bool,
    opens: Arc<AtomicUsize>,
}
impl Transport for Flaky {
    type Conn = NeverConn;
    async fn open(&self, _t: &Target, _i: Bytes, _b: bool) -> Result<NeverConn, TransportError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        assert!(!self.panic, "a bug in an attempt");
        Err(TransportError { code: 503, message: "refused".into() })
    }
}

fn schema() -> Schema {
    let h = HandlerSchema::new("h", SchemaHandlerKind::Service);
    let s = ServiceSchema {
        name: "Svc".into(),
        ty: ServiceType::Service,
        revision: 1,
        deployment_id: "dp".into(),
        handlers: BTreeMap::from([("h".to_string(), h)]),
        public: true,
        documentation: None,
        metadata: BTreeMap::new(),
        inactivity_timeout_ms: None,
        abort_timeout_ms: None,
        idempotency_retention_ms: None,
        journal_retention_ms: None,
        lazy_state: false,
    };
    let d = Deployment {
        id: "dp".into(),
        uri: "http://127.0.0.1:1".into(),
        bidi: true,
        http_version: "HTTP/2.0".into(),
        min_protocol_version: 5,
        max_protocol_version: 6,
        sdk_version: None,
        additional_headers: BTreeMap::new(),
        metadata: BTreeMap::new(),
        created_ms: 0,
        services: vec![("Svc".into(), 1)],
    };
    Schema {
        version: 1,
        deployments: BTreeMap::from([("dp".into(), d)]),
        services: BTreeMap::from([("Svc".into(), s)]),
        retention: Default::default(),
    }
}

/// Runs one invocation against the transport; returns the invoker's end (None: still
/// running after `wait`) and how many attempts opened a stream.
async fn scenario(panic: bool, wait: Duration) -> (Option<String>, usize) {
    let log: SharedLog = Arc::new(MemLog::new());
    let handle = Handle::new(0, log.clone());
    let router =
        Router { partitions: Arc::new(vec![handle.clone()]), waiters: Arc::new(Waiters::new(1)) };
    let registry = Arc::new(Registry::in_memory(schema()));
    let opens = Arc::new(AtomicUsize::new(0));
    let mut o = invoker::Options { inflight_max: 1, ..invoker::Options::default() };
    o.retry.initial_ms = 20;
    o.retry.max_interval_ms = 20;
    let transport = Flaky { panic, opens: opens.clone() };
    let (inv, ih) =
        invoker::Invoker::new(o, registry, handle.clone(), transport, ratchet::clock::system());
    let invoker = tokio::spawn(inv.run());
    let p = processor::Processor::new(
        processor::Options::new(0),
        log.clone(),
        Box::new(PartitionStore::open_in_memory),
        ratchet::fsm::Fsm::new(0),
        handle.clone(),
        router.clone(),
        ih,
        ratchet::clock::system(),
    );
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(p.run(stop_rx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !handle.liveness().is_running() {
        assert!(tokio::time::Instant::now() < deadline, "the partition never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = InvocationId { partition_key: 7, uuid: 1 };
    let rec = Record {
        header: None,
        kind: Some(record::Kind::Invoke(Invoke {
            invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
            service: "Svc".into(),
            handler: "h".into(),
            key: String::new(),
            kind: HandlerKind::Service as i32,
            input: Bytes::new(),
            headers: vec![],
            sink: None,
            execute_at_ms: 0,
            retention_ms: None,
            ack_request: 0,
            journal_retention_ms: None,
            idempotency_key: String::new(),
        })),
    };
    handle.append(vec![rec]).await.unwrap();
    let end = match tokio::time::timeout(wait, invoker).await {
        Ok(Ok(Ok(()))) => Some("ended without an error".to_string()),
        Ok(Ok(Err(e))) => Some(e.to_string()),
        Ok(Err(join)) => Some(format!("the invoker task itself failed: {join}")),
        Err(_) => None,
    };
    (end, opens.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_attempt_stops_the_invoker_with_its_cause() {
    // Control: a transport error is retried, the invoker goes on.
    let (end, opens) = scenario(false, Duration::from_millis(500)).await;
    assert_eq!(end, None, "the invoker ended on a retryable error");
    assert!(opens >= 3, "failing attempts are retried: {opens}");
    // A panic ends the invoker with an error naming the invocation and the panic.
    let (end, opens) = scenario(true, Duration::from_secs(10)).await;
    let end = end.expect("the invoker stops after a panicking attempt");
    assert!(end.contains("panicked") && end.contains("a bug in an attempt"), "{end}");
    assert!(end.contains(&InvocationId { partition_key: 7, uuid: 1 }.to_string()), "{end}");
    assert_eq!(opens, 1);
}
