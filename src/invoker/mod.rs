//! The invoker: runs attempts of invocations against SDK deployments over the service
//! protocol, and reports what the SDK did as effects appended to the partition's log.
//!
//! Shape: one `Invoker` per partition owns the running attempts (one task each); the
//! processor talks to it through the cheap [`Handle`]. An attempt task resolves the
//! deployment (pinned after the first attempt), opens `POST /invoke/{service}/{handler}` over
//! HTTP/2, sends `StartMessage` and the journal, forwards live notifications in bidirectional
//! mode, and turns every message from the SDK into an [`Effect`] record.
//!
//! Invariants:
//! - The invoker never touches the store; everything it learns re-enters through the log.
//! - Effects of one attempt are appended in the order the SDK sent them, each batch only after
//!   the previous one is durable, so a later attempt's replay contains everything the SDK
//!   already acted upon.
//! - Commands are stored byte-for-byte as received.
//! - At most one attempt per invocation runs; a newer attempt aborts the older one.
//! - Commands this version does not implement fail the attempt with a message that names
//!   them, rather than leaving the SDK waiting forever.

mod body;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fsm::{
    effect, outcome, Command, Effect, Failed, Failure, HandlerKind, InvokeAttempt, Outcome, Pin,
    ProposeRun, Record, Suspended,
};
use crate::partition;
use crate::protocol::codec::{decode_message, Command as Cmd, Message};
use crate::protocol::framing::{encode_frame, Decoder};
use crate::protocol::http::{h2c_client, H2cClient};
use crate::protocol::ids::InvocationId;
use crate::protocol::messages::{self as pm, MessageType};
use crate::protocol::version::{negotiate, ServiceProtocolVersion};
use crate::schema::{Registry, Schema};

use body::ChannelBody;

/// Tuning and limits of the invoker.
#[derive(Clone, Debug)]
pub struct Options {
    pub inactivity_timeout: Duration,
    pub abort_timeout: Duration,
    pub protocol_v7: bool,
    pub message_bytes_max: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            inactivity_timeout: Duration::from_secs(60),
            abort_timeout: Duration::from_secs(600),
            protocol_v7: false,
            message_bytes_max: 32 * 1024 * 1024,
        }
    }
}

enum Cmd_ {
    Invoke(Box<InvokeAttempt>),
    Notify { id: InvocationId, attempt: u32, ty: u16, payload: Bytes },
    Abort { id: InvocationId },
}

/// Sends work to a partition's invoker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Cmd_>,
}

impl std::fmt::Debug for Cmd_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invoker command")
    }
}

impl Handle {
    pub fn invoke(&self, attempt: InvokeAttempt) {
        let _ = self.tx.send(Cmd_::Invoke(Box::new(attempt)));
    }
    pub fn notify(&self, id: InvocationId, attempt: u32, ty: u16, payload: Bytes) {
        let _ = self.tx.send(Cmd_::Notify { id, attempt, ty, payload });
    }
    pub fn abort(&self, id: InvocationId) {
        let _ = self.tx.send(Cmd_::Abort { id });
    }
}

struct Running {
    attempt: u32,
    notify: mpsc::UnboundedSender<(u16, Bytes)>,
    task: JoinHandle<()>,
}

/// The invoker of one partition.
pub struct Invoker {
    rx: mpsc::UnboundedReceiver<Cmd_>,
    ctx: Arc<Ctx>,
    running: HashMap<InvocationId, Running>,
    done_tx: mpsc::UnboundedSender<(InvocationId, u32)>,
    done_rx: mpsc::UnboundedReceiver<(InvocationId, u32)>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker").field("running", &self.running.len()).finish()
    }
}

struct Ctx {
    opts: Options,
    registry: Arc<Registry>,
    partition: partition::Handle,
    client: H2cClient<ChannelBody>,
}

impl Invoker {
    pub fn new(
        opts: Options,
        registry: Arc<Registry>,
        partition: partition::Handle,
    ) -> (Invoker, Handle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx { opts, registry, partition, client: h2c_client() });
        (Invoker { rx, ctx, running: HashMap::new(), done_tx, done_rx }, Handle { tx })
    }

    /// Runs until every handle is dropped; aborts running attempts on exit.
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(Cmd_::Invoke(a)) => self.start(*a),
                    Some(Cmd_::Notify { id, attempt, ty, payload }) => {
                        if let Some(r) = self.running.get(&id) {
                            if r.attempt == attempt {
                                let _ = r.notify.send((ty, payload));
                            }
                        }
                    }
                    Some(Cmd_::Abort { id }) => {
                        if let Some(r) = self.running.remove(&id) {
                            r.task.abort();
                        }
                    }
                    None => break,
                },
                Some((id, attempt)) = self.done_rx.recv() => {
                    if self.running.get(&id).is_some_and(|r| r.attempt == attempt) {
                        self.running.remove(&id);
                    }
                }
            }
        }
        for (_, r) in self.running.drain() {
            r.task.abort();
        }
    }

    fn start(&mut self, a: InvokeAttempt) {
        if let Some(old) = self.running.remove(&a.id) {
            old.task.abort();
        }
        let (notify, notify_rx) = mpsc::unbounded_channel();
        let ctx = self.ctx.clone();
        let done = self.done_tx.clone();
        let (id, attempt) = (a.id, a.attempt);
        let task = tokio::spawn(async move {
            run_attempt(&ctx, a, notify_rx).await;
            let _ = done.send((id, attempt));
        });
        self.running.insert(id, Running { attempt, notify, task });
    }
}

/// Why an attempt failed, and whether it counts against the retry budget.
struct AttemptError {
    code: u32,
    message: String,
    retry_after_ms: Option<u64>,
    counts: bool,
}

impl AttemptError {
    fn new(code: u32, message: impl Into<String>) -> AttemptError {
        AttemptError { code, message: message.into(), retry_after_ms: None, counts: true }
    }
    fn setup(message: impl Into<String>) -> AttemptError {
        AttemptError { code: 503, message: message.into(), retry_after_ms: None, counts: false }
    }
}

fn effect(id: &InvocationId, attempt: u32, kind: effect::Kind) -> Record {
    Record {
        kind: Some(crate::fsm::record::Kind::Effect(Effect {
            invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
            attempt,
            kind: Some(kind),
        })),
    }
}

async fn run_attempt(
    ctx: &Ctx,
    a: InvokeAttempt,
    notify_rx: mpsc::UnboundedReceiver<(u16, Bytes)>,
) {
    if a.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(a.delay_ms)).await;
    }
    let (id, attempt) = (a.id, a.attempt);
    match attempt_inner(ctx, &a, notify_rx).await {
        Ok(()) => {}
        Err(e) => {
            tracing::info!(invocation = %id, attempt, code = e.code, "attempt failed: {}", e.message);
            let rec = effect(
                &id,
                attempt,
                effect::Kind::Failed(Failed {
                    code: e.code,
                    message: e.message,
                    retry_after_ms: e.retry_after_ms,
                    counts: e.counts,
                }),
            );
            if let Err(err) = ctx.partition.append(&[rec]).await {
                tracing::error!(invocation = %id, "cannot log a failed attempt: {err}");
            }
        }
    }
}

fn callee_kind(schema: &Schema, service: &str, handler: &str) -> Result<HandlerKind, AttemptError> {
    let s = schema.service(service).ok_or_else(|| {
        AttemptError::new(
            404,
            format!("service '{service}' not found, make sure to register it before calling it"),
        )
    })?;
    let h = s.handlers.get(handler).ok_or_else(|| {
        AttemptError::new(
            404,
            format!("the service '{service}' exists, but the handler '{handler}' was not found"),
        )
    })?;
    Ok(h.kind.fsm_kind())
}

/// Turns one SDK message into an effect (and whether it ends the attempt), checking what
/// this version supports; `None` for hints that need no record.
fn to_effect(
    schema: &Schema,
    a: &InvokeAttempt,
    msg: Message,
) -> Result<Option<(effect::Kind, bool)>, AttemptError> {
    Ok(Some(match msg {
        Message::Command(raw) => {
            let ty = raw.message_type();
            let callee = match &raw.command {
                Cmd::Call(m) => callee_kind(schema, &m.service_name, &m.handler_name)?,
                Cmd::OneWayCall(m) => callee_kind(schema, &m.service_name, &m.handler_name)?,
                Cmd::SetState(_) | Cmd::ClearState(_) | Cmd::ClearAllState(_)
                    if !a.kind.can_write_state() =>
                {
                    return Err(AttemptError::new(
                        500,
                        format!("handler {}/{} cannot write state", a.service, a.handler),
                    ));
                }
                Cmd::GetPromise(_)
                | Cmd::PeekPromise(_)
                | Cmd::CompletePromise(_)
                | Cmd::SendSignal(_)
                | Cmd::AttachInvocation(_)
                | Cmd::GetInvocationOutput(_)
                | Cmd::CompleteAwakeable(_) => {
                    return Err(AttemptError::new(
                        501,
                        format!(
                            "{} is not supported by this server version yet",
                            pm::message_name(ty).unwrap_or("this command")
                        ),
                    ));
                }
                _ => HandlerKind::Unspecified,
            };
            (
                effect::Kind::Command(Command {
                    ty: u32::from(ty),
                    payload: raw.raw,
                    callee_kind: callee as i32,
                }),
                false,
            )
        }
        Message::Custom { ty, payload } => {
            (effect::Kind::Command(Command { ty: u32::from(ty), payload, callee_kind: 0 }), false)
        }
        Message::ProposeRunCompletion(p) => {
            let result = match p.result {
                Some(pm::RunProposalResult::Value(v)) => Some(outcome::Result::Value(v)),
                Some(pm::RunProposalResult::Failure(f)) => {
                    Some(outcome::Result::Failure(Failure { code: f.code, message: f.message }))
                }
                None => Some(outcome::Result::Value(Bytes::new())),
            };
            (
                effect::Kind::ProposeRun(ProposeRun {
                    completion_id: p.result_completion_id,
                    outcome: Some(Outcome { result }),
                }),
                false,
            )
        }
        Message::Suspension(s) => {
            let mut w = Suspended {
                completions: s.waiting_completions,
                signals: s.waiting_signals,
                named_signals: s.waiting_named_signals,
            };
            if let Some(f) = s.awaiting_on {
                flatten(&f, &mut w);
            }
            (effect::Kind::Suspended(w), true)
        }
        Message::End(_) => (effect::Kind::End(crate::fsm::End {}), true),
        Message::Error(e) => {
            return Err(AttemptError {
                code: e.code,
                message: if e.stacktrace.is_empty() {
                    e.message
                } else {
                    format!("{}\n{}", e.message, e.stacktrace)
                },
                retry_after_ms: e.next_retry_delay,
                counts: true,
            })
        }
        Message::AwaitingOn(_) => return Ok(None),
    }))
}

/// V7 suspension trees: resume on any leaf (resuming early is always safe).
fn flatten(f: &pm::Future, w: &mut Suspended) {
    w.completions.extend(&f.waiting_completions);
    w.signals.extend(&f.waiting_signals);
    w.named_signals.extend(f.waiting_named_signals.iter().cloned());
    for n in &f.nested_futures {
        flatten(n, w);
    }
}

async fn attempt_inner(
    ctx: &Ctx,
    a: &InvokeAttempt,
    mut notify_rx: mpsc::UnboundedReceiver<(u16, Bytes)>,
) -> Result<(), AttemptError> {
    let schema = ctx.registry.snapshot();
    let service = schema
        .service(&a.service)
        .ok_or_else(|| AttemptError::setup(format!("service '{}' is not registered", a.service)))?;
    let handler = service.handlers.get(&a.handler).ok_or_else(|| {
        AttemptError::setup(format!("handler '{}/{}' is not registered", a.service, a.handler))
    })?;
    let mut pending_pin = None;
    let (deployment, version) = match &a.pinned {
        Some((dp, v)) => {
            let d = schema.deployment(dp).ok_or_else(|| {
                AttemptError::setup(format!("pinned deployment {dp} was removed"))
            })?;
            let v = ServiceProtocolVersion::from_i32(*v as i32).ok_or_else(|| {
                AttemptError::setup(format!("pinned protocol version {v} is unknown"))
            })?;
            (d, v)
        }
        None => {
            let d = schema.deployment_for(&a.service).ok_or_else(|| {
                AttemptError::setup(format!("no deployment serves '{}'", a.service))
            })?;
            let v = negotiate(d.min_protocol_version, d.max_protocol_version, ctx.opts.protocol_v7)
                .ok_or_else(|| {
                    AttemptError::setup(format!(
                        "[RT0013] no common protocol version with deployment {}",
                        d.id
                    ))
                })?;
            // Logged with the attempt's first effects: no extra durable write before the call.
            pending_pin = Some(effect(
                &a.id,
                a.attempt,
                effect::Kind::Pin(Pin {
                    deployment_id: d.id.clone(),
                    protocol_version: v.as_i32() as u32,
                }),
            ));
            (d, v)
        }
    };
    let lazy = handler.lazy_state;
    let inactivity = handler
        .inactivity_timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(ctx.opts.inactivity_timeout);
    let abort_after =
        handler.abort_timeout_ms.map(Duration::from_millis).unwrap_or(ctx.opts.abort_timeout);

    // Start message and journal.
    let mut out = BytesMut::new();
    let (state_map, partial_state) = match (&a.state, lazy) {
        (Some(entries), false) => (
            entries
                .iter()
                .map(|(k, v)| pm::StateEntry { key: k.clone(), value: v.clone() })
                .collect(),
            false,
        ),
        _ => (Vec::new(), true),
    };
    let start = pm::StartMessage {
        id: Bytes::copy_from_slice(&a.id.to_bytes()),
        debug_id: a.id.to_string(),
        known_entries: a.journal.len() as u32,
        state_map,
        partial_state,
        key: a.key.clone(),
        retry_count_since_last_stored_entry: a.retry_count,
        duration_since_last_stored_entry: 0,
        random_seed: if version.has_random_seed() { a.random_seed } else { 0 },
        scope: None,
        limit_key: None,
        idempotency_key: None,
    };
    encode_frame(MessageType::START, 0, &start.encode_to_vec(), &mut out);
    for (ty, payload) in &a.journal {
        encode_frame(*ty, 0, payload, &mut out);
    }
    let (body_tx, body) = ChannelBody::channel(16);
    body_tx
        .send(out.freeze())
        .await
        .map_err(|_| AttemptError::new(500, "request body closed early"))?;
    let mut body_tx = if deployment.bidi { Some(body_tx) } else { None };

    let uri =
        format!("{}/invoke/{}/{}", deployment.uri.trim_end_matches('/'), a.service, a.handler);
    let ct = version.content_type();
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri(&uri)
        .header(http::header::CONTENT_TYPE, ct)
        .header(http::header::ACCEPT, ct)
        .header("x-restate-invocation-id", a.id.to_string());
    if a.kind.is_keyed() {
        req = req.header("x-restate-service-key", percent_encode(&a.key));
    }
    for (k, v) in &deployment.additional_headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req =
        req.body(body).map_err(|e| AttemptError::setup(format!("bad request for {uri}: {e}")))?;
    let resp = tokio::time::timeout(abort_after, ctx.client.request(req))
        .await
        .map_err(|_| {
            AttemptError::new(
                504,
                format!("deployment {} did not answer within {abort_after:?}", deployment.uri),
            )
        })?
        .map_err(|e| {
            AttemptError::new(503, format!("cannot reach deployment {}: {e}", deployment.uri))
        })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(AttemptError::new(
            status.as_u16().into(),
            match status.as_u16() {
                415 => format!(
                    "[RT0015] the SDK does not support protocol {ct}; re-register the deployment"
                ),
                s => format!("deployment answered HTTP {s}"),
            },
        ));
    }
    let got_ct =
        resp.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if got_ct != ct {
        return Err(AttemptError::new(
            500,
            format!("unexpected content type '{got_ct}' from the deployment (expected {ct})"),
        ));
    }
    let mut resp_body = resp.into_body();
    let mut decoder = Decoder::with_message_bytes_max(ctx.opts.message_bytes_max);
    let mut last_activity = tokio::time::Instant::now();
    let mut closed_at: Option<tokio::time::Instant> =
        if body_tx.is_none() { Some(last_activity) } else { None };
    loop {
        let deadline = match closed_at {
            None => last_activity + inactivity,
            Some(t) => t + abort_after,
        };
        tokio::select! {
            frame = resp_body.frame() => {
                let Some(frame) = frame else {
                    return Err(AttemptError::new(500, "the deployment closed the stream without an end, suspension or error message"));
                };
                let frame = frame.map_err(|e| AttemptError::new(503, format!("reading from the deployment: {e}")))?;
                let Ok(data) = frame.into_data() else { continue };
                last_activity = tokio::time::Instant::now();
                decoder.push(&data);
                let mut records = Vec::new();
                let mut terminal = false;
                while let Some(f) = decoder.next_frame().map_err(|e| AttemptError::new(571, format!("protocol violation: {e}")))? {
                    let msg = decode_message(f.ty, f.payload).map_err(|e| AttemptError::new(571, format!("protocol violation: {e}")))?;
                    let Some((kind, is_terminal)) = to_effect(&schema, a, msg)? else {
                        continue;
                    };
                    records.push(effect(&a.id, a.attempt, kind));
                    if is_terminal {
                        terminal = true;
                        break;
                    }
                }
                if !records.is_empty() {
                    if let Some(pin) = pending_pin.take() {
                        records.insert(0, pin);
                    }
                    ctx.partition.append(&records).await.map_err(|e| AttemptError::setup(format!("log: {e}")))?;
                }
                if terminal {
                    return Ok(());
                }
            }
            n = notify_rx.recv(), if body_tx.is_some() => {
                if let (Some((ty, payload)), Some(tx)) = (n, &body_tx) {
                    let mut out = BytesMut::new();
                    encode_frame(ty, 0, &payload, &mut out);
                    last_activity = tokio::time::Instant::now();
                    if tx.send(out.freeze()).await.is_err() {
                        body_tx = None;
                        closed_at = Some(tokio::time::Instant::now());
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if closed_at.is_none() {
                    // Inactivity: close the request stream so the SDK can suspend.
                    body_tx = None;
                    closed_at = Some(tokio::time::Instant::now());
                } else {
                    return Err(AttemptError::new(504, format!("[RT0001] no end, suspension or error within the abort timeout of {abort_after:?}")));
                }
            }
        }
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
