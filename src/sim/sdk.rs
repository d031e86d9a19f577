//! A simulated SDK: the other end of the service protocol for the simulator, in process.
//!
//! [`SimTransport`] implements the invoker's `Transport`: opening an attempt spawns a task
//! that decodes the start message and the replayed journal from the real protocol bytes,
//! runs a scripted handler ([`super::handlers`]) as a future against a small re-implementation
//! of an SDK's shared core ([`Ctx`]), and writes real protocol frames back: commands, run
//! proposals, then `End`, `Suspension` or `Error`.
//!
//! The core follows the SDK rules that matter to the server:
//! - Replay: the k-th command the handler issues must match the k-th command of the replayed
//!   journal (by type and name), or the attempt ends with a journal-mismatch error (570):
//!   that is how a server that loses or reorders journal entries is caught.
//! - Completion ids are allocated in the order the handler issues commands, from 1.
//! - A `ctx.run` closure runs only if its result is not in the journal; each execution is
//!   reported to the world with the log's durable tail at that moment, which the simulator's
//!   "at most once after durable" check needs.
//! - The SDK suspends when the handler waits for something it does not have and the request
//!   stream is closed (bidirectional mode after the server closed it; always in
//!   request-response mode), naming what it waits for.
//!
//! - Reads of the response stream may take several messages at once or cut them anywhere
//!   (seeded), as network reads do.
//!
//! Invariant: everything here is driven by the simulation's seed (latencies, refused
//! connections, how reads cut the stream) and virtual time.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tokio::sync::mpsc;

use super::World;
use crate::invoker::driver::{Connection, SendError, Target, Transport, TransportError};
use crate::log::SharedLog;
use crate::partition::{log_of, partition_of};
use crate::protocol::codec::{decode_command, decode_notification};
use crate::protocol::framing::{encode_frame, Decoder};
use crate::protocol::ids::InvocationId;
use crate::protocol::messages::{self as pm, MessageType, NotificationId, NotificationResult};
use crate::wal::disk::sim::SimRng;

/// What a scripted handler returns.
pub type HandlerResult = Result<Bytes, HandlerError>;

/// How a scripted handler fails.
#[derive(Clone, Debug, PartialEq)]
pub enum HandlerError {
    /// A terminal error: the invocation completes with this failure.
    Terminal(u32, String),
    /// A retryable error: the attempt fails and is retried.
    Retryable(String),
    /// The attempt cannot go on (a journal mismatch, a suspension): internal to the core.
    Abort,
}

/// A handler's future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// Latency and fault knobs of the simulated SDK.
#[derive(Clone, Debug)]
pub struct SdkFaults {
    /// Per-mille of attempts whose connection is refused.
    pub refuse_per_mille: u64,
    /// Largest delay before a message leaves the SDK. Virtual ms.
    pub delay_ms_max: u64,
    /// A read of the response stream takes every message already sent, as a network read of
    /// several frames does.
    pub coalesce: bool,
    /// A read of the response stream takes a seeded part of what is there, cutting messages
    /// and their frame headers anywhere.
    pub fragment: bool,
}

/// The in-process transport of the simulator.
#[derive(Clone, Debug)]
pub struct SimTransport {
    pub world: Arc<Mutex<World>>,
    pub log: SharedLog,
    pub partitions: u16,
    pub rng: Arc<Mutex<SimRng>>,
    pub faults: SdkFaults,
    pub clock: crate::clock::SharedClock,
}

/// One simulated attempt stream, seen from the server.
#[derive(Debug)]
pub struct SimConn {
    content_type: String,
    req: Option<mpsc::Sender<Bytes>>,
    resp: mpsc::Receiver<Bytes>,
    /// Received and not read yet.
    buf: BytesMut,
    coalesce: bool,
    fragment: bool,
    rng: SimRng,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimTransport {
    fn below(&self, n: u64) -> u64 {
        lock(&self.rng).below(n.max(1))
    }
}

impl Transport for SimTransport {
    type Conn = SimConn;

    async fn open(
        &self,
        target: &Target,
        initial: Bytes,
        bidi: bool,
    ) -> Result<SimConn, TransportError> {
        tokio::time::sleep(Duration::from_millis(self.below(self.faults.delay_ms_max + 1))).await;
        if self.below(1000) < self.faults.refuse_per_mille {
            return Err(TransportError { code: 503, message: "sim: connection refused".into() });
        }
        let (req_tx, req_rx) = mpsc::channel(1024);
        let (resp_tx, resp_rx) = mpsc::channel(1024);
        req_tx
            .send(initial)
            .await
            .map_err(|_| TransportError { code: 500, message: "sim: request closed".into() })?;
        let name = format!("the SDK of {}/{}", target.service, target.handler);
        let sdk = Sdk {
            world: self.world.clone(),
            log: self.log.clone(),
            partitions: self.partitions,
            service: target.service.clone(),
            handler: target.handler.clone(),
            seed: self.below(u64::MAX),
            delay_ms_max: self.faults.delay_ms_max,
            clock: self.clock.clone(),
        };
        super::panics::spawn(name, sdk.run(req_rx, resp_tx));
        Ok(SimConn {
            content_type: target.version.content_type().to_string(),
            req: bidi.then_some(req_tx),
            resp: resp_rx,
            buf: BytesMut::new(),
            coalesce: self.faults.coalesce,
            fragment: self.faults.fragment,
            rng: SimRng::new(self.below(u64::MAX)),
        })
    }
}

impl Connection for SimConn {
    fn head(&self) -> (u16, String) {
        (200, self.content_type.clone())
    }
    fn send(&mut self, bytes: Bytes) -> Result<(), SendError> {
        use tokio::sync::mpsc::error::TrySendError;
        match &self.req {
            Some(tx) => tx.try_send(bytes).map_err(|e| match e {
                TrySendError::Full(_) => SendError::Full,
                TrySendError::Closed(_) => SendError::Closed,
            }),
            None => Err(SendError::Closed),
        }
    }
    fn close_request(&mut self) {
        self.req = None;
    }
    async fn recv(&mut self) -> Option<Result<Bytes, TransportError>> {
        if self.buf.is_empty() {
            let first = self.resp.recv().await?;
            self.buf.extend_from_slice(&first);
            while self.coalesce {
                match self.resp.try_recv() {
                    Ok(b) => self.buf.extend_from_slice(&b),
                    Err(_) => break,
                }
            }
        }
        let n = if self.fragment {
            1 + self.rng.below(self.buf.len() as u64) as usize
        } else {
            self.buf.len()
        };
        Some(Ok(self.buf.split_to(n).freeze()))
    }
}

/// The SDK side of one attempt.
struct Sdk {
    world: Arc<Mutex<World>>,
    log: SharedLog,
    partitions: u16,
    service: String,
    handler: String,
    seed: u64,
    delay_ms_max: u64,
    clock: crate::clock::SharedClock,
}

/// The shared state of one attempt: the replayed journal, completions, and what the handler
/// emits.
#[derive(Debug, Default)]
pub struct Core {
    pub id: Option<InvocationId>,
    pub key: String,
    pub input: Bytes,
    retry_count: u32,
    state: BTreeMap<Bytes, Bytes>,
    partial_state: bool,
    /// Replayed commands after the input, in order: (type, name, payload).
    replayed: Vec<(u16, String, Bytes)>,
    /// Commands issued so far by the handler (after the input).
    issued: usize,
    next_cid: u32,
    completions: BTreeMap<u32, NotificationResult>,
    awaiting: Vec<u32>,
    /// Awakeable signal indexes handed out so far (the next is 17 + this).
    awakeables: u32,
    signals: BTreeMap<u32, NotificationResult>,
    awaiting_signals: Vec<u32>,
    out: Vec<Bytes>,
    mismatch: Option<String>,
    /// Something the server must never do, seen by this SDK.
    protocol_violation: Option<String>,
}

/// The handle a scripted handler uses: the SDK API (get, set, run, sleep, call, send).
#[derive(Clone, Debug)]
pub struct Ctx {
    core: Arc<Mutex<Core>>,
    world: Arc<Mutex<World>>,
    log: SharedLog,
    partitions: u16,
    clock: crate::clock::SharedClock,
}

fn frame(ty: u16, msg: &impl prost::Message) -> Bytes {
    let mut out = BytesMut::new();
    encode_frame(ty, 0, &msg.encode_to_vec(), &mut out);
    out.freeze()
}

impl Ctx {
    fn core(&self) -> MutexGuard<'_, Core> {
        lock(&self.core)
    }

    pub fn key(&self) -> String {
        self.core().key.clone()
    }
    pub fn input(&self) -> Bytes {
        self.core().input.clone()
    }
    pub fn id(&self) -> InvocationId {
        self.core().id.expect("started")
    }
    /// Failed attempts since the last stored journal entry, as the start message said.
    pub fn retry_count(&self) -> u32 {
        self.core().retry_count
    }

    /// Issues a command: checks it against the replayed journal (returning the replayed
    /// payload), or emits it (returning `None`).
    fn command(
        &self,
        ty: u16,
        name: &str,
        encode: impl FnOnce() -> Bytes,
    ) -> Result<Option<Bytes>, HandlerError> {
        let mut c = self.core();
        let k = c.issued;
        c.issued += 1;
        match c.replayed.get(k) {
            Some((rty, rname, payload)) => {
                if *rty != ty || rname != name {
                    c.mismatch = Some(format!(
                        "journal mismatch at command {}: replayed {rty:#06x} '{rname}', handler issued {ty:#06x} '{name}'",
                        k + 1
                    ));
                    return Err(HandlerError::Abort);
                }
                Ok(Some(payload.clone()))
            }
            None => {
                let bytes = encode();
                c.out.push(bytes);
                Ok(None)
            }
        }
    }

    fn alloc(&self) -> u32 {
        let mut c = self.core();
        c.next_cid += 1;
        c.next_cid
    }

    /// Waits for a completion.
    fn await_completion(
        &self,
        cid: u32,
    ) -> impl Future<Output = NotificationResult> + Send + 'static {
        let core = self.core.clone();
        std::future::poll_fn(move |_cx: &mut Context<'_>| {
            let mut c = lock(&core);
            match c.completions.get(&cid) {
                Some(r) => Poll::Ready(r.clone()),
                None => {
                    c.awaiting.push(cid);
                    Poll::Pending
                }
            }
        })
    }

    /// A new awakeable: its `sign_1…` id and its signal index.
    pub fn awakeable(&self) -> (String, u32) {
        let mut c = self.core();
        let index = 17 + c.awakeables;
        c.awakeables += 1;
        let invocation_id = c.id.unwrap_or(InvocationId { partition_key: 0, uuid: 0 });
        let id = crate::protocol::ids::AwakeableId { invocation_id, signal_index: index };
        (id.to_string(), index)
    }

    /// Waits for the awakeable with signal `index`: its value, or its failure as terminal.
    pub async fn await_awakeable(&self, index: u32) -> HandlerResult {
        let core = self.core.clone();
        let r = std::future::poll_fn(move |_cx: &mut Context<'_>| {
            let mut c = lock(&core);
            match c.signals.get(&index) {
                Some(r) => Poll::Ready(r.clone()),
                None => {
                    c.awaiting_signals.push(index);
                    Poll::Pending
                }
            }
        })
        .await;
        match r {
            NotificationResult::Value(v) => Ok(v.content),
            NotificationResult::Failure(f) => Err(HandlerError::Terminal(f.code, f.message)),
            _ => Ok(Bytes::new()),
        }
    }

    /// Resolves an awakeable (of any invocation) with `value`.
    pub fn resolve_awakeable(&self, id: &str, value: Bytes) -> Result<(), HandlerError> {
        self.command(MessageType::COMPLETE_AWAKEABLE_COMMAND, "resolve", || {
            frame(
                MessageType::COMPLETE_AWAKEABLE_COMMAND,
                &pm::CompleteAwakeableCommandMessage {
                    awakeable_id: id.to_string(),
                    result: Some(pm::AwakeableResult::Value(pm::Value { content: value.clone() })),
                    name: "resolve".into(),
                },
            )
        })?;
        Ok(())
    }

    /// Reads a state key: from the eager state when it is complete (or has the key), else
    /// lazily from the server.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, HandlerError> {
        let key = Bytes::copy_from_slice(name.as_bytes());
        let eager = {
            let c = self.core();
            match c.state.get(&key) {
                Some(v) => Some(Some(v.clone())),
                None if !c.partial_state => Some(None),
                None => None,
            }
        };
        if let Some(v) = eager {
            let replayed = self.command(MessageType::GET_EAGER_STATE_COMMAND, name, || {
                let result = match &v {
                    Some(v) => pm::EagerStateResult::Value(pm::Value { content: v.clone() }),
                    None => pm::EagerStateResult::Void(pm::Void {}),
                };
                frame(
                    MessageType::GET_EAGER_STATE_COMMAND,
                    &pm::GetEagerStateCommandMessage {
                        key: key.clone(),
                        result: Some(result),
                        name: name.into(),
                    },
                )
            })?;
            // In replay the journal's value counts, not today's state.
            if let Some(payload) = replayed {
                let m = pm::GetEagerStateCommandMessage::decode(payload)
                    .map_err(|_| HandlerError::Abort)?;
                return Ok(match m.result {
                    Some(pm::EagerStateResult::Value(v)) => Some(v.content),
                    _ => None,
                });
            }
            return Ok(v);
        }
        let cid = self.alloc();
        self.command(MessageType::GET_LAZY_STATE_COMMAND, name, || {
            frame(
                MessageType::GET_LAZY_STATE_COMMAND,
                &pm::GetLazyStateCommandMessage {
                    key: key.clone(),
                    result_completion_id: cid,
                    name: name.into(),
                },
            )
        })?;
        match self.await_completion(cid).await {
            NotificationResult::Value(v) => {
                self.core().state.insert(key, v.content.clone());
                Ok(Some(v.content))
            }
            _ => Ok(None),
        }
    }

    /// Writes a state key.
    pub fn set(&self, name: &[u8], value: Bytes) -> Result<(), HandlerError> {
        let key = Bytes::copy_from_slice(name);
        let label = if name.len() <= 64 {
            String::from_utf8_lossy(name).into_owned()
        } else {
            "big".into()
        };
        self.command(MessageType::SET_STATE_COMMAND, &label, || {
            frame(
                MessageType::SET_STATE_COMMAND,
                &pm::SetStateCommandMessage {
                    key: key.clone(),
                    value: Some(pm::Value { content: value.clone() }),
                    name: label.clone(),
                },
            )
        })?;
        self.core().state.insert(key, value);
        Ok(())
    }

    /// Runs `name` as a side effect at most once (unless its result was never stored).
    pub async fn run(&self, name: &str) -> Result<Bytes, HandlerError> {
        let cid = self.alloc();
        self.command(MessageType::RUN_COMMAND, name, || {
            frame(
                MessageType::RUN_COMMAND,
                &pm::RunCommandMessage { result_completion_id: cid, name: name.into() },
            )
        })?;
        let known = self.core().completions.contains_key(&cid);
        if !known {
            let id = self.id();
            let p = partition_of(id.partition_key, self.partitions);
            let tail = self.log.tail(log_of(p)).lsn_durable;
            let n = lock(&self.world).ran(id, cid, tail, self.clock.now_ms());
            let value = Bytes::from(format!("{name}#{n}"));
            let proposal = pm::ProposeRunCompletionMessage {
                result_completion_id: cid,
                result: Some(pm::RunProposalResult::Value(value)),
            };
            self.core().out.push(frame(MessageType::PROPOSE_RUN_COMPLETION, &proposal));
        }
        match self.await_completion(cid).await {
            NotificationResult::Value(v) => Ok(v.content),
            NotificationResult::Failure(f) => Err(HandlerError::Terminal(f.code, f.message)),
            _ => Ok(Bytes::new()),
        }
    }

    /// Sleeps durably for `ms`.
    pub async fn sleep(&self, ms: u64) -> Result<(), HandlerError> {
        let cid = self.alloc();
        let wake = self.clock.now_ms() + ms;
        self.command(MessageType::SLEEP_COMMAND, "sleep", || {
            frame(
                MessageType::SLEEP_COMMAND,
                &pm::SleepCommandMessage {
                    wake_up_time: wake,
                    result_completion_id: cid,
                    name: "sleep".into(),
                },
            )
        })?;
        self.await_completion(cid).await;
        Ok(())
    }

    /// Calls a handler and waits for its result.
    pub async fn call(
        &self,
        service: &str,
        handler: &str,
        key: &str,
        input: Bytes,
    ) -> HandlerResult {
        let id_cid = self.alloc();
        let cid = self.alloc();
        let name = format!("{service}/{handler}");
        self.command(MessageType::CALL_COMMAND, &name, || {
            frame(
                MessageType::CALL_COMMAND,
                &pm::CallCommandMessage {
                    service_name: service.into(),
                    handler_name: handler.into(),
                    parameter: input.clone(),
                    key: key.into(),
                    invocation_id_notification_idx: id_cid,
                    result_completion_id: cid,
                    name: name.clone(),
                    ..Default::default()
                },
            )
        })?;
        match self.await_completion(cid).await {
            NotificationResult::Value(v) => Ok(v.content),
            NotificationResult::Failure(f) => Err(HandlerError::Terminal(f.code, f.message)),
            _ => Ok(Bytes::new()),
        }
    }

    /// Sends to a handler without waiting.
    pub fn send(
        &self,
        service: &str,
        handler: &str,
        key: &str,
        input: Bytes,
    ) -> Result<(), HandlerError> {
        let id_cid = self.alloc();
        let name = format!("{service}/{handler}");
        self.command(MessageType::ONE_WAY_CALL_COMMAND, &name, || {
            frame(
                MessageType::ONE_WAY_CALL_COMMAND,
                &pm::OneWayCallCommandMessage {
                    service_name: service.into(),
                    handler_name: handler.into(),
                    parameter: input.clone(),
                    key: key.into(),
                    invocation_id_notification_idx: id_cid,
                    name: name.clone(),
                    ..Default::default()
                },
            )
        })
        .map(|_| ())
    }
}

fn noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

impl Sdk {
    async fn delay(&self, rng: &mut SimRng) {
        let ms = rng.below(self.delay_ms_max + 1);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    async fn run(self, mut req: mpsc::Receiver<Bytes>, resp: mpsc::Sender<Bytes>) {
        let mut rng = SimRng::new(self.seed);
        let mut dec = Decoder::new();
        let core = Arc::new(Mutex::new(Core::default()));
        // Start message and the replayed journal.
        let mut expected: Option<u32> = None;
        let mut seen = 0u32;
        let mut input_closed = false;
        while expected.is_none_or(|n| seen < n) {
            match req.recv().await {
                Some(b) => dec.push(&b),
                None => {
                    input_closed = true;
                    if expected.is_none_or(|n| seen < n) {
                        return; // the server went away before the journal
                    }
                }
            }
            while let Ok(Some(f)) = dec.next_frame() {
                let mut c = lock(&core);
                if f.ty == MessageType::START {
                    let Ok(s) = pm::StartMessage::decode(f.payload) else { return };
                    c.id = InvocationId::from_bytes(&s.id).ok();
                    c.key = s.key.clone();
                    c.retry_count = s.retry_count_since_last_stored_entry;
                    c.partial_state = s.partial_state;
                    c.state = s.state_map.into_iter().map(|e| (e.key, e.value)).collect();
                    expected = Some(s.known_entries);
                    continue;
                }
                seen += 1;
                take_entry(&mut c, f.ty, f.payload);
            }
        }
        let ctx = Ctx {
            core: core.clone(),
            world: self.world.clone(),
            log: self.log.clone(),
            partitions: self.partitions,
            clock: self.clock.clone(),
        };
        let mut fut = match super::handlers::handler(&self.service, &self.handler, ctx) {
            Some(f) => f,
            None => {
                let e = pm::ErrorMessage {
                    code: 404,
                    message: "sim: unknown handler".into(),
                    ..Default::default()
                };
                let _ = resp.send(frame(MessageType::ERROR, &e)).await;
                return;
            }
        };
        let waker = noop_waker();
        loop {
            lock(&core).awaiting.clear();
            lock(&core).awaiting_signals.clear();
            let poll = fut.as_mut().poll(&mut Context::from_waker(&waker));
            let out = std::mem::take(&mut lock(&core).out);
            for b in out {
                self.delay(&mut rng).await;
                if resp.send(b).await.is_err() {
                    return;
                }
            }
            // One statement per lock: a guard in an `if let` scrutinee lives through its body,
            // and locking again there deadlocked the run instead of reporting the violation.
            let violation = lock(&core).protocol_violation.take();
            if let Some(v) = violation {
                let id = lock(&core).id.map(|i| i.to_string()).unwrap_or_default();
                lock(&self.world).violation(format!("SDK of {id}: {v}"));
            }
            let mismatch = lock(&core).mismatch.take();
            let end = match (poll, mismatch) {
                (_, Some(m)) => Some(vec![frame(
                    MessageType::ERROR,
                    &pm::ErrorMessage { code: 570, message: m, ..Default::default() },
                )]),
                (Poll::Ready(Ok(v)), None) => Some(vec![
                    frame(
                        MessageType::OUTPUT_COMMAND,
                        &pm::OutputCommandMessage {
                            result: Some(pm::OutputResult::Value(pm::Value { content: v })),
                            name: String::new(),
                        },
                    ),
                    frame(MessageType::END, &pm::EndMessage {}),
                ]),
                (Poll::Ready(Err(HandlerError::Terminal(code, message))), None) => Some(vec![
                    frame(
                        MessageType::OUTPUT_COMMAND,
                        &pm::OutputCommandMessage {
                            result: Some(pm::OutputResult::Failure(pm::Failure {
                                code,
                                message,
                                metadata: Vec::new(),
                            })),
                            name: String::new(),
                        },
                    ),
                    frame(MessageType::END, &pm::EndMessage {}),
                ]),
                (Poll::Ready(Err(HandlerError::Retryable(message))), None) => Some(vec![frame(
                    MessageType::ERROR,
                    &pm::ErrorMessage { code: 500, message, ..Default::default() },
                )]),
                (Poll::Ready(Err(HandlerError::Abort)), None) => Some(vec![frame(
                    MessageType::ERROR,
                    &pm::ErrorMessage {
                        code: 571,
                        message: "sim: aborted".into(),
                        ..Default::default()
                    },
                )]),
                (Poll::Pending, None) if input_closed => {
                    let mut waiting = lock(&core).awaiting.clone();
                    waiting.sort_unstable();
                    waiting.dedup();
                    let mut signals = lock(&core).awaiting_signals.clone();
                    signals.sort_unstable();
                    signals.dedup();
                    Some(vec![frame(
                        MessageType::SUSPENSION,
                        &pm::SuspensionMessage {
                            waiting_completions: waiting,
                            waiting_signals: signals,
                            ..Default::default()
                        },
                    )])
                }
                (Poll::Pending, None) => None,
            };
            if let Some(frames) = end {
                for b in frames {
                    self.delay(&mut rng).await;
                    if resp.send(b).await.is_err() {
                        return;
                    }
                }
                return;
            }
            // Blocked: wait for notifications or the end of the request stream.
            match req.recv().await {
                Some(b) => {
                    dec.push(&b);
                    while let Ok(Some(f)) = dec.next_frame() {
                        take_entry(&mut lock(&core), f.ty, f.payload);
                    }
                }
                None => input_closed = true,
            }
        }
    }
}

/// Takes one journal entry (replayed or live) into the core.
fn take_entry(c: &mut Core, ty: u16, payload: Bytes) {
    if ty == MessageType::INPUT_COMMAND {
        if let Ok(m) = pm::InputCommandMessage::decode(payload) {
            c.input = m.value.map(|v| v.content).unwrap_or_default();
        }
        return;
    }
    if pm::is_command(ty) {
        let name = decode_command(ty, payload.clone())
            .map(|r| r.command.entry_name().to_string())
            .unwrap_or_default();
        c.replayed.push((ty, name, payload));
        return;
    }
    if let Ok(n) = decode_notification(ty, payload) {
        match (n.id, n.result) {
            // A server bug: the SDK got the same completion twice (in the replayed journal
            // and live, or live twice).
            (Some(NotificationId::CompletionId(cid)), Some(r))
                if c.completions.insert(cid, r.clone()).is_some() =>
            {
                c.protocol_violation =
                    Some(format!("the server sent completion {cid} a second time"));
            }
            // An awakeable completes once: the server keeps the first completion only.
            (Some(NotificationId::SignalId(i)), Some(r))
                if c.signals.insert(i, r.clone()).is_some() =>
            {
                c.protocol_violation = Some(format!("the server sent signal {i} a second time"));
            }
            _ => {}
        }
    }
}
