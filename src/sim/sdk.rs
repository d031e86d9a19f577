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
//!   request-response mode), naming what it waits for, always with the cancel signal.
//! - Implicit cancellation, as the SDKs' shared core does it: the cancel signal (index 1)
//!   ends the first await whose result did not come before it. The SDK then sends the cancel
//!   signal to the callee of every call whose result had not come (waiting for the callee's id
//!   if it must; one-way sends are left alone), and the await fails with a terminal 409
//!   `canceled`. Notifications keep the order they came in, the journal's, so a replay decides
//!   every await as the first attempt did.
//! - What only a wrong server does is reported as a violation: a completion or a signal sent
//!   twice, a completion for a command the handler never issued (seen when it ends), a sleep
//!   that ends before its journaled wake-up time.
//! - Durable promises of workflows (get, peek, complete) and signals to other invocations.
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
use crate::fsm::SIGNAL_CANCEL;
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
    /// Completions and signals received, each with its position among the notifications in
    /// the order they came (the journal's order, replayed or live): which of two came first
    /// decides what an await sees when the cancel signal is one of them.
    completions: BTreeMap<u32, (usize, NotificationResult)>,
    signals: BTreeMap<u32, (usize, NotificationResult)>,
    /// Notifications received so far: the next one's position.
    notes: usize,
    awaiting: Vec<u32>,
    /// Awakeable signal indexes handed out so far (the next is 17 + this).
    awakeables: u32,
    awaiting_signals: Vec<u32>,
    /// Where the cancel signal was when an await acted on it (it acts once).
    canceled_at: Option<usize>,
    /// The calls issued: (invocation-id completion, result completion), in order.
    calls: Vec<(u32, u32)>,
    /// Callee ids learnt from invocation-id notifications, not yet told to the world.
    callees: Vec<InvocationId>,
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

    /// Waits for a completion or a signal, or for the cancel signal before it. Implicit
    /// cancellation, as the SDKs' shared core does it: the cancel signal ends the first await
    /// whose result did not come before it, and every await that blocks also waits for it.
    fn await_note(&self, what: Awaited) -> impl Future<Output = Woken> + Send + 'static {
        let core = self.core.clone();
        std::future::poll_fn(move |_cx: &mut Context<'_>| {
            let mut c = lock(&core);
            let got = match what {
                Awaited::Completion(cid) => c.completions.get(&cid),
                Awaited::Signal(index) => c.signals.get(&index),
            }
            .cloned();
            let cancel = match c.canceled_at {
                Some(_) => None,
                None => c.signals.get(&SIGNAL_CANCEL).map(|(at, _)| *at),
            };
            match (got, cancel) {
                (Some((at, _)), Some(cancel)) if cancel < at => {
                    c.canceled_at = Some(cancel);
                    Poll::Ready(Woken::Canceled)
                }
                (Some((_, r)), _) => Poll::Ready(Woken::Result(r)),
                (None, Some(cancel)) => {
                    c.canceled_at = Some(cancel);
                    Poll::Ready(Woken::Canceled)
                }
                (None, None) => {
                    match what {
                        Awaited::Completion(cid) => c.awaiting.push(cid),
                        Awaited::Signal(index) => c.awaiting_signals.push(index),
                    }
                    if c.canceled_at.is_none() {
                        c.awaiting_signals.push(SIGNAL_CANCEL);
                    }
                    Poll::Pending
                }
            }
        })
    }

    /// Waits for a completion or a signal; canceled, cancels the calls it waits on and fails
    /// with a terminal 409.
    async fn wait(&self, what: Awaited) -> Result<NotificationResult, HandlerError> {
        match self.await_note(what).await {
            Woken::Result(r) => Ok(r),
            Woken::Canceled => {
                self.cancel_calls().await?;
                Err(HandlerError::Terminal(409, "canceled".into()))
            }
        }
    }

    /// Sends the cancel signal to the callee of every call whose result had not come before
    /// the cancel signal (one-way sends are left alone), as the SDKs do: waits for each
    /// callee's id first.
    async fn cancel_calls(&self) -> Result<(), HandlerError> {
        let (calls, at) = {
            let c = self.core();
            (c.calls.clone(), c.canceled_at.unwrap_or(usize::MAX))
        };
        for (id_cid, result_cid) in calls {
            if self.core().completions.get(&result_cid).is_some_and(|(done, _)| *done < at) {
                continue;
            }
            // The cancel is taken: this await is not canceled again.
            let woken = self.await_note(Awaited::Completion(id_cid)).await;
            if let Woken::Result(NotificationResult::InvocationId(callee)) = woken {
                self.send_signal(&callee, SIGNAL_CANCEL, "cancel")?;
            }
        }
        Ok(())
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
        value_of(self.wait(Awaited::Signal(index)).await?)
    }

    /// Sends signal `index` (void) to the invocation `target`: index 1 cancels it.
    pub fn send_signal(&self, target: &str, index: u32, name: &str) -> Result<(), HandlerError> {
        self.command(MessageType::SEND_SIGNAL_COMMAND, name, || {
            frame(
                MessageType::SEND_SIGNAL_COMMAND,
                &pm::SendSignalCommandMessage {
                    target_invocation_id: target.to_string(),
                    signal_id: Some(pm::SignalId::Idx(index)),
                    result: Some(pm::SignalResult::Void(pm::Void {})),
                    entry_name: name.into(),
                },
            )
        })?;
        Ok(())
    }

    /// Issues a promise command of the workflow (get, peek or complete) on promise `name`
    /// and waits for its completion.
    async fn promise_command<M: prost::Message>(
        &self,
        ty: u16,
        name: &str,
        message: impl FnOnce(u32) -> M,
    ) -> Result<NotificationResult, HandlerError> {
        let cid = self.alloc();
        self.command(ty, name, || frame(ty, &message(cid)))?;
        self.wait(Awaited::Completion(cid)).await
    }

    /// Waits for the workflow's durable promise `name`: its value, or its failure as terminal.
    pub async fn promise(&self, name: &str) -> HandlerResult {
        let r = self
            .promise_command(MessageType::GET_PROMISE_COMMAND, name, |cid| {
                pm::GetPromiseCommandMessage {
                    key: name.into(),
                    result_completion_id: cid,
                    name: name.into(),
                }
            })
            .await?;
        value_of(r)
    }

    /// The workflow's durable promise `name` now: its value, or `None` while unresolved.
    pub async fn peek_promise(&self, name: &str) -> Result<Option<Bytes>, HandlerError> {
        let r = self
            .promise_command(MessageType::PEEK_PROMISE_COMMAND, name, |cid| {
                pm::PeekPromiseCommandMessage {
                    key: name.into(),
                    result_completion_id: cid,
                    name: name.into(),
                }
            })
            .await?;
        match r {
            NotificationResult::Void(_) => Ok(None),
            r => value_of(r).map(Some),
        }
    }

    /// Resolves the workflow's durable promise `name` with `value`; `Err((code, message))`
    /// inside when the server refused (409: it was completed already).
    pub async fn complete_promise(
        &self,
        name: &str,
        value: Bytes,
    ) -> Result<Result<(), (u32, String)>, HandlerError> {
        let r = self
            .promise_command(MessageType::COMPLETE_PROMISE_COMMAND, name, |cid| {
                pm::CompletePromiseCommandMessage {
                    key: name.into(),
                    completion: Some(pm::PromiseCompletion::Value(pm::Value { content: value })),
                    result_completion_id: cid,
                    name: name.into(),
                }
            })
            .await?;
        Ok(match r {
            NotificationResult::Failure(f) => Err((f.code, f.message)),
            _ => Ok(()),
        })
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
        match self.wait(Awaited::Completion(cid)).await? {
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
        value_of(self.wait(Awaited::Completion(cid)).await?)
    }

    /// Sleeps durably for `ms`. A sleep that ends before its wake-up time (the journaled one)
    /// is a violation: a timer fired early, or a completion meant for something else.
    pub async fn sleep(&self, ms: u64) -> Result<(), HandlerError> {
        let cid = self.alloc();
        let wake = self.clock.now_ms() + ms;
        let replayed = self.command(MessageType::SLEEP_COMMAND, "sleep", || {
            frame(
                MessageType::SLEEP_COMMAND,
                &pm::SleepCommandMessage {
                    wake_up_time: wake,
                    result_completion_id: cid,
                    name: "sleep".into(),
                },
            )
        })?;
        let wake = replayed
            .and_then(|p| pm::SleepCommandMessage::decode(p).ok())
            .map_or(wake, |m| m.wake_up_time);
        self.wait(Awaited::Completion(cid)).await?;
        let now = self.clock.now_ms();
        if now < wake {
            self.core().protocol_violation =
                Some(format!("sleep {cid} ended at {now}, before its wake-up time {wake}"));
        }
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
        self.core().calls.push((id_cid, cid));
        value_of(self.wait(Awaited::Completion(cid)).await?)
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

/// What an await is for.
#[derive(Clone, Copy, Debug)]
enum Awaited {
    Completion(u32),
    Signal(u32),
}

/// How an await ended.
enum Woken {
    Result(NotificationResult),
    /// The cancel signal came first.
    Canceled,
}

/// A result as a handler sees it: a value, a failure as terminal, anything else as empty.
fn value_of(r: NotificationResult) -> HandlerResult {
    match r {
        NotificationResult::Value(v) => Ok(v.content),
        NotificationResult::Failure(f) => Err(HandlerError::Terminal(f.code, f.message)),
        _ => Ok(Bytes::new()),
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
            if matches!(poll, Poll::Ready(Ok(_) | Err(HandlerError::Terminal(..)))) {
                // Every completion is for a command the handler issued.
                let mut c = lock(&core);
                if let Some(cid) = c.completions.keys().find(|&&cid| cid > c.next_cid).copied() {
                    c.protocol_violation = Some(format!(
                        "the server sent completion {cid}, which the handler never asked for"
                    ));
                }
            }
            let out = std::mem::take(&mut lock(&core).out);
            for b in out {
                self.delay(&mut rng).await;
                if resp.send(b).await.is_err() {
                    return;
                }
            }
            // One statement per lock: a guard in an `if let` scrutinee lives through its body,
            // and locking again there deadlocked the run instead of reporting the violation.
            let callees = std::mem::take(&mut lock(&core).callees);
            let id = lock(&core).id;
            if let (false, Some(id)) = (callees.is_empty(), id) {
                lock(&self.world).called(id, callees);
            }
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
        let at = c.notes;
        let (seen, what) = match (n.id, n.result) {
            (Some(NotificationId::CompletionId(cid)), Some(r)) => {
                if let NotificationResult::InvocationId(callee) = &r {
                    c.callees.extend(callee.parse::<InvocationId>().ok());
                }
                (c.completions.insert(cid, (at, r)).is_some(), format!("completion {cid}"))
            }
            (Some(NotificationId::SignalId(i)), Some(r)) => {
                (c.signals.insert(i, (at, r)).is_some(), format!("signal {i}"))
            }
            _ => return,
        };
        c.notes += 1;
        // A server bug: the same completion twice (in the replayed journal and live, or live
        // twice), or an awakeable completed twice (the server keeps the first completion).
        if seen {
            c.protocol_violation = Some(format!("the server sent {what} a second time"));
        }
    }
}
