//! The invoker between a real processor and a scripted transport.
//!
//! Goals: a panic inside an attempt (a bug of this server) stops the invoker with an error
//! naming the invocation, so the runtime fails stop, and never leaves the invocation running
//! for good with its in-flight slot taken; an id killed, purged and created again starts its
//! new life at once although an attempt of its earlier life was still waiting to start
//! (attempt numbers start again at 1 in a new life: an invoker that tells attempts apart by
//! their number alone takes the new life's first attempt for an older one than the earlier
//! life's second, and drops it).
//!
//! Method: a real processor and invoker on a `MemLog`, with a transport whose `open` panics
//! or fails retryably, counting the attempts it sees by their input; each test awaits the
//! invoker's end or the attempts it expects.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ratchet::fsm::{record, FsmRead, HandlerKind, Invoke, Kill, Record};
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

/// Fails every attempt retryably, after a wait for some: the first attempt with the input
/// `first-life` waits for stage 1, an attempt of `blocker` for stage 2. Records the input of
/// every attempt it opens.
struct Gated {
    stage: tokio::sync::watch::Receiver<u8>,
    opened: Arc<std::sync::Mutex<Vec<&'static str>>>,
}
impl Transport for Gated {
    type Conn = NeverConn;
    async fn open(&self, _t: &Target, i: Bytes, _b: bool) -> Result<NeverConn, TransportError> {
        let input = ["first-life", "second-life", "blocker"]
            .into_iter()
            .find(|m| i.windows(m.len()).any(|w| w == m.as_bytes()))
            .unwrap_or("");
        let before = {
            let mut opened = self.opened.lock().unwrap();
            opened.push(input);
            opened.iter().filter(|x| **x == input).count() - 1
        };
        let wait_for = match (input, before) {
            ("first-life", 0) => 1,
            ("blocker", _) => 2,
            _ => 0,
        };
        let _ = self.stage.clone().wait_for(|s| *s >= wait_for).await;
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

/// A running partition (processor and invoker, one attempt at a time) on a `MemLog`; returns
/// its handle and the invoker's task.
async fn partition<T: Transport>(
    transport: T,
) -> (Handle, tokio::task::JoinHandle<Result<(), invoker::InvokerError>>) {
    let log: SharedLog = Arc::new(MemLog::new());
    let handle = Handle::new(0, log.clone());
    let router =
        Router { partitions: Arc::new(vec![handle.clone()]), waiters: Arc::new(Waiters::new(1)) };
    let registry = Arc::new(Registry::in_memory(schema()));
    let mut o = invoker::Options { inflight_max: 1, ..invoker::Options::default() };
    o.retry.initial_ms = 20;
    o.retry.max_interval_ms = 20;
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
    (handle, invoker)
}

const ID: InvocationId = InvocationId { partition_key: 7, uuid: 1 };
const BLOCKER: InvocationId = InvocationId { partition_key: 7, uuid: 2 };

fn record(kind: record::Kind) -> Record {
    Record { header: None, kind: Some(kind) }
}

/// `Svc.h` of id `id` with `input`.
fn invoke(id: InvocationId, input: &'static [u8]) -> Record {
    record(record::Kind::Invoke(Invoke {
        invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
        service: "Svc".into(),
        handler: "h".into(),
        key: String::new(),
        kind: HandlerKind::Service as i32,
        input: Bytes::from_static(input),
        headers: vec![],
        sink: None,
        execute_at_ms: 0,
        retention_ms: None,
        ack_request: 0,
        journal_retention_ms: None,
        idempotency_key: String::new(),
        caller: Bytes::new(),
    }))
}

/// Runs one invocation against the transport; returns the invoker's end (None: still
/// running after `wait`) and how many attempts opened a stream.
async fn scenario(panic: bool, wait: Duration) -> (Option<String>, usize) {
    let opens = Arc::new(AtomicUsize::new(0));
    let (handle, invoker) = partition(Flaky { panic, opens: opens.clone() }).await;
    handle.append(vec![invoke(ID, b"")]).await.unwrap();
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
    assert!(end.contains(&ID.to_string()), "{end}");
    assert_eq!(opens, 1);
}

/// Waits (10 s at most) until `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_id_starts_although_its_earlier_life_had_an_attempt_waiting() {
    let (stage_tx, stage) = tokio::sync::watch::channel(0u8);
    let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (handle, _invoker) = partition(Gated { stage, opened: opened.clone() }).await;
    let status = || handle.store().and_then(|s| s.begin_read().ok()?.status(&ID).ok()?);
    let opens = |input| opened.lock().unwrap().iter().filter(|x| **x == input).count();
    // The first life's attempt 1 runs (and will fail); the blocker is queued behind it.
    handle.append(vec![invoke(ID, b"first-life")]).await.unwrap();
    until("the first attempt", || opens("first-life") == 1).await;
    handle.append(vec![invoke(BLOCKER, b"blocker")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Attempt 1 fails; the blocker takes the one place, attempt 2 waits behind it.
    stage_tx.send_replace(1);
    until("the blocker's attempt", || opens("blocker") == 1).await;
    until("attempt 2 of the first life", || status().is_some_and(|st| st.attempt == 2)).await;
    // Killed, purged and created again: the new life's attempt 1 is due.
    let raw = Bytes::copy_from_slice(&ID.to_bytes());
    let kill = record(record::Kind::Kill(Kill { invocation_id: raw.clone() }));
    let purge = record(record::Kind::Purge(Kill { invocation_id: raw }));
    handle.append(vec![kill, purge, invoke(ID, b"second-life")]).await.unwrap();
    until("the new life", || status().is_some_and(|st| st.attempt == 1)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The blocker ends: the new life's attempt must start, not the earlier life's attempt 2.
    stage_tx.send_replace(2);
    until("an attempt of the new life", || opens("second-life") > 0).await;
    assert_eq!(opens("first-life"), 1, "the earlier life ran again");
}
