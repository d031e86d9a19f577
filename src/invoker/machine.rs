//! One attempt of an invocation as a sans-IO state machine: bytes and notifications in,
//! bytes, effect batches and a verdict out. The HTTP/2 driver (`driver.rs`) and the
//! simulator feed it; tests drive it message by message.
//!
//! Inputs: [`Machine::on_data`] (bytes from the SDK), [`Machine::on_end_of_stream`],
//! [`Machine::on_transport_error`], [`Machine::on_notification`] (a durable notification for
//! the open attempt, with its journal position: one the replay already held is skipped, so
//! the SDK never sees a completion twice), [`Machine::on_tick`] (time passed). Outputs, in order, through
//! [`Machine::poll_output`]: `Send` (bytes for the request stream), `Append` (effects to make
//! durable before anything else happens), `CloseRequest`, `Done`.
//!
//! Invariants:
//! - Effects leave in the order the SDK sent them; each `Append` batch must be durable before
//!   the driver feeds more input (the driver awaits it).
//! - On a failure (an SDK error message, a protocol violation, a command over a limit, a
//!   timeout, a broken transport) every command and run proposal decoded before it is in the
//!   same `Append` as the `Failed` effect, ahead of it: nothing the SDK already acted on is
//!   dropped, in particular never a proposed `ctx.run` result.
//! - What follows a failure is decided here, once, and carried in the `Failed` effect (retry
//!   after a delay, or give up): `apply` never consults a retry policy.
//! - A command that breaks a limit, writes state from a handler that may not, or asks for a
//!   feature this server lacks fails the invocation at once (give up): retrying would send
//!   the same command again.
//! - Suspension: in bidirectional mode the request stream is closed (so the SDK suspends and
//!   frees its stream) when the SDK has been quiet and waits only for far timers or for
//!   something outside the attempt (calls); otherwise after the inactivity timeout.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tokio::time::Instant;

use crate::codes::Code;
use crate::fsm::{
    self, effect, limits, outcome, Command, Effect, Failed, Failure, HandlerKind, InvokeAttempt,
    Outcome, Pin, ProposeRun, Record, RetryPolicy, Suspended,
};
use crate::protocol::codec::{decode_message, decode_notification, Command as Cmd, Message};
use crate::protocol::framing::{encode_frame, Decoder};
use crate::protocol::messages::{self as pm, MessageType, NotificationId};
use crate::protocol::version::ServiceProtocolVersion;
use crate::schema::Schema;

/// When an attempt gives up its stream so the SDK suspends.
#[derive(Clone, Debug, PartialEq)]
pub struct SuspendPolicy {
    /// The SDK has sent nothing for this long…
    pub quiet: Duration,
    /// …and the earliest timer it waits for is at least this far away.
    pub timer_min: Duration,
    /// Or it waits only for calls (or other outside completions) and was quiet this long.
    pub external_after: Duration,
}

impl Default for SuspendPolicy {
    fn default() -> Self {
        SuspendPolicy {
            quiet: Duration::from_millis(20),
            timer_min: Duration::from_millis(500),
            external_after: Duration::from_secs(1),
        }
    }
}

/// Everything an attempt's rules depend on.
#[derive(Clone, Debug)]
pub struct Config {
    pub version: ServiceProtocolVersion,
    pub bidi: bool,
    pub inactivity_timeout: Duration,
    pub abort_timeout: Duration,
    pub message_bytes_max: u32,
    /// The invoker-side journal limit (at most [`limits::JOURNAL_ENTRIES_MAX`]).
    pub journal_entries_max: u32,
    pub retry: RetryPolicy,
    pub suspend: SuspendPolicy,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Bytes for the request stream.
    Send(Bytes),
    /// Effects to append, in order, and await before anything else (one log append unless
    /// they exceed what one carries: `partition::Handle::append_as` splits them).
    Append(Vec<Record>),
    /// Close the request stream: the SDK finishes or suspends.
    CloseRequest,
    /// The attempt is over.
    Done(Verdict),
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The SDK ended or suspended; its terminal effect was in the last `Append`.
    Finished,
    /// The attempt failed; the `Failed` effect (with its decision) was in the last `Append`.
    Failed { code: u32, message: String, give_up: bool, retry_in_ms: u64 },
}

/// What an open completion waits for, for the suspension rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// This server produces it soon (lazy state, invocation ids, run results).
    Soon,
    /// A timer at this time (ms since the epoch).
    Timer(u64),
    /// Something outside the attempt (a call's result).
    External,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Streaming,
    /// The request stream is closed (or was never open, in request-response mode).
    Closed {
        at: Instant,
    },
    Done,
}

/// The attempt machine. See the module documentation.
#[derive(Debug)]
pub struct Machine {
    cfg: Config,
    id: crate::protocol::ids::InvocationId,
    life: u64,
    attempt: u32,
    service: String,
    handler: String,
    key: String,
    kind: HandlerKind,
    failures: u32,
    schema: Arc<Schema>,
    decoder: Decoder,
    pin: Option<Record>,
    journal_len: u32,
    /// Entries of the journal the start message replayed.
    replayed_len: u32,
    pending: Vec<Record>,
    outputs: VecDeque<Output>,
    phase: Phase,
    last_sdk_activity: Instant,
    last_activity: Instant,
    waits: BTreeMap<u32, Wait>,
    /// `ctx.run` closures started (Run command seen) without a proposal yet.
    runs_open: BTreeSet<u32>,
    /// The SDK said (V7 `AwaitingOn`) that it waits for a signal (an awakeable, a named
    /// signal): something outside, like a call's result. Stale once a notification is sent.
    awaiting_signal: bool,
}

impl Machine {
    /// A machine for `attempt`, and the bytes that open the stream (start message and the
    /// journal). `pin` is logged with the first effects when the deployment was just chosen.
    pub fn new(
        cfg: Config,
        attempt: &InvokeAttempt,
        schema: Arc<Schema>,
        pin: Option<Pin>,
        now: Instant,
        now_ms: u64,
    ) -> (Machine, Bytes) {
        let mut out = BytesMut::new();
        let (state_map, partial_state) = match &attempt.state {
            Some(entries) => (
                entries
                    .iter()
                    .map(|(k, v)| pm::StateEntry { key: k.clone(), value: v.clone() })
                    .collect(),
                attempt.partial_state,
            ),
            None => (Vec::new(), true),
        };
        let start = pm::StartMessage {
            id: Bytes::copy_from_slice(&attempt.id.to_bytes()),
            debug_id: attempt.id.to_string(),
            known_entries: attempt.journal.len() as u32,
            state_map,
            partial_state,
            key: attempt.key.clone(),
            retry_count_since_last_stored_entry: attempt.retry_count,
            duration_since_last_stored_entry: now_ms.saturating_sub(attempt.modified_ms),
            random_seed: if cfg.version.has_random_seed() { attempt.random_seed } else { 0 },
            scope: None,
            limit_key: None,
            idempotency_key: Some(attempt.idempotency_key.clone())
                .filter(|k| !k.is_empty() && cfg.version.has_futures_and_run_ack()),
        };
        encode_frame(MessageType::START, 0, &start.encode_to_vec(), &mut out);
        for (ty, payload) in &attempt.journal {
            encode_frame(*ty, 0, payload, &mut out);
        }
        let mut cfg = cfg;
        if let Some(h) =
            schema.service(&attempt.service).and_then(|s| s.handlers.get(&attempt.handler))
        {
            cfg.retry = h.retry(&cfg.retry);
        }
        let mut m = Machine {
            decoder: Decoder::with_message_bytes_max(cfg.message_bytes_max),
            phase: if cfg.bidi { Phase::Streaming } else { Phase::Closed { at: now } },
            cfg,
            id: attempt.id,
            life: attempt.life,
            attempt: attempt.attempt,
            service: attempt.service.clone(),
            handler: attempt.handler.clone(),
            key: attempt.key.clone(),
            kind: attempt.kind,
            failures: attempt.failures,
            schema,
            pin: pin.map(|p| {
                effect_record(&attempt.id, attempt.life, attempt.attempt, effect::Kind::Pin(p))
            }),
            journal_len: attempt.journal.len() as u32,
            replayed_len: attempt.journal.len() as u32,
            pending: Vec::new(),
            outputs: VecDeque::new(),
            last_sdk_activity: now,
            last_activity: now,
            waits: BTreeMap::new(),
            runs_open: BTreeSet::new(),
            awaiting_signal: false,
        };
        m.replayed(&attempt.journal);
        (m, out.freeze())
    }

    /// Learns what the replayed journal still waits for.
    fn replayed(&mut self, journal: &[(u16, Bytes)]) {
        for (ty, payload) in journal {
            if pm::is_command(*ty) {
                if let Ok(raw) = crate::protocol::codec::decode_command(*ty, payload.clone()) {
                    self.track_command(&raw.command);
                }
            } else if let Ok(n) = decode_notification(*ty, payload.clone()) {
                self.track_notification(&n);
            }
        }
    }

    fn track_command(&mut self, c: &Cmd) {
        match c {
            Cmd::Sleep(m) => {
                self.waits.insert(m.result_completion_id, Wait::Timer(m.wake_up_time));
            }
            Cmd::Call(m) => {
                self.waits.insert(m.invocation_id_notification_idx, Wait::Soon);
                self.waits.insert(m.result_completion_id, Wait::External);
            }
            Cmd::OneWayCall(m) => {
                self.waits.insert(m.invocation_id_notification_idx, Wait::Soon);
            }
            Cmd::Run(m) => {
                self.runs_open.insert(m.result_completion_id);
            }
            Cmd::AttachInvocation(m) => {
                self.waits.insert(m.result_completion_id, Wait::External);
            }
            Cmd::GetPromise(m) => {
                self.waits.insert(m.result_completion_id, Wait::External);
            }
            other => {
                if let Some(cid) = other.result_completion_id() {
                    self.waits.insert(cid, Wait::Soon);
                }
            }
        }
    }

    fn track_notification(&mut self, n: &pm::Notification) {
        if let Some(NotificationId::CompletionId(cid)) = n.id {
            self.waits.remove(&cid);
            self.runs_open.remove(&cid);
        }
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// When [`Machine::on_tick`] must be called next, if ever.
    pub fn deadline(&self, now_ms: u64, now: Instant) -> Option<Instant> {
        match self.phase {
            Phase::Done => None,
            Phase::Closed { at } => Some(at + self.cfg.abort_timeout),
            Phase::Streaming => {
                let inactivity = self.last_activity + self.cfg.inactivity_timeout;
                Some(match self.suspend_after(now_ms, now) {
                    Some(t) => t.min(inactivity),
                    None => inactivity,
                })
            }
        }
    }

    /// When the suspension rule closes the stream, if it applies now.
    fn suspend_after(&self, now_ms: u64, now: Instant) -> Option<Instant> {
        if !self.runs_open.is_empty() || (self.waits.is_empty() && !self.awaiting_signal) {
            return None;
        }
        if self.waits.values().any(|w| *w == Wait::Soon) {
            return None;
        }
        let earliest_timer = self
            .waits
            .values()
            .filter_map(|w| if let Wait::Timer(t) = w { Some(*t) } else { None })
            .min();
        let quiet_since = self.last_sdk_activity;
        let external = self.awaiting_signal || self.waits.values().any(|w| *w == Wait::External);
        match earliest_timer {
            // Waiting for a call too: it may complete soon, give it `external_after`.
            _ if external => Some(quiet_since + self.cfg.suspend.external_after),
            Some(t) => {
                let away = Duration::from_millis(t.saturating_sub(now_ms));
                // A timer is far if it is still `timer_min` away once the quiet time passed.
                let at = quiet_since + self.cfg.suspend.quiet;
                let far = away >= self.cfg.suspend.timer_min + at.saturating_duration_since(now);
                far.then_some(at)
            }
            None => None,
        }
    }

    /// Time passed: close the stream (suspension or inactivity) or abort (abort timeout).
    pub fn on_tick(&mut self, now: Instant, now_ms: u64) {
        match self.phase {
            Phase::Done => {}
            Phase::Closed { at } => {
                if now >= at + self.cfg.abort_timeout {
                    let msg = format!(
                        "[RT0001] no end, suspension or error within the abort timeout of {:?}",
                        self.cfg.abort_timeout
                    );
                    self.fail(504, msg, None, true, false);
                }
            }
            Phase::Streaming => {
                let suspend = self.suspend_after(now_ms, now).is_some_and(|t| now >= t);
                if suspend || now >= self.last_activity + self.cfg.inactivity_timeout {
                    self.close_request(now);
                }
            }
        }
    }

    fn close_request(&mut self, now: Instant) {
        if self.phase == Phase::Streaming {
            self.phase = Phase::Closed { at: now };
            self.outputs.push_back(Output::CloseRequest);
        }
    }

    /// A durable notification for this attempt, at journal position `index`: forwards it
    /// while the stream is open, unless the replayed journal held it already (the attempt was
    /// loaded after the notification was applied).
    pub fn on_notification(&mut self, index: u32, ty: u16, payload: Bytes, now: Instant) {
        if self.phase == Phase::Done || index < self.replayed_len {
            return;
        }
        self.journal_len += 1;
        self.awaiting_signal = false;
        if let Ok(n) = decode_notification(ty, payload.clone()) {
            self.track_notification(&n);
        }
        if self.phase == Phase::Streaming {
            let mut out = BytesMut::new();
            encode_frame(ty, 0, &payload, &mut out);
            self.last_activity = now;
            self.outputs.push_back(Output::Send(out.freeze()));
        }
    }

    /// The deployment answered with a non-success status or a wrong content type.
    pub fn on_response_head(&mut self, status: u16, content_type: &str) {
        if self.phase == Phase::Done {
            return;
        }
        let ct = self.cfg.version.content_type();
        if !(200..300).contains(&status) {
            let message = match status {
                415 => format!(
                    "[RT0015] the SDK does not support protocol {ct}; re-register the deployment"
                ),
                401 => "deployment answered HTTP 401 Unauthorized: it refused the request's \
                        identity; configure `worker.invoker.request-identity-private-key-pem-file` \
                        with the private key whose public key the SDK trusts (identityKeys)"
                    .to_string(),
                s => format!("deployment answered HTTP {s}"),
            };
            self.fail(u32::from(status), message, None, true, false);
        } else if content_type != ct {
            let message = format!(
                "unexpected content type '{content_type}' from the deployment (expected {ct})"
            );
            self.fail(500, message, None, true, false);
        }
    }

    /// The transport broke (connection refused or reset, a timeout of the head).
    pub fn on_transport_error(&mut self, code: u32, message: String) {
        self.fail(code, message, None, true, false);
    }

    /// The deployment could not even be addressed (unknown service, removed deployment):
    /// retried without using up the retry budget.
    pub fn on_setup_error(&mut self, message: String) {
        self.fail(503, message, None, false, false);
    }

    /// The response stream ended.
    pub fn on_end_of_stream(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        let message = match self.decoder.finish() {
            Err(e) => format!("protocol violation: {e}"),
            Ok(()) => "the deployment closed the stream without an end, suspension or error \
                       message"
                .to_string(),
        };
        self.fail(500, message, None, true, false);
    }

    /// Bytes from the SDK.
    pub fn on_data(&mut self, data: &[u8], now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        self.last_sdk_activity = now;
        self.last_activity = now;
        self.decoder.push(data);
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(crate::protocol::framing::FrameError::TooLarge {
                    ty,
                    length_bytes,
                    message_bytes_max,
                }) => {
                    let msg = crate::codes::message(
                        Code::MessageTooLarge,
                        format!(
                            "the SDK sent a message of type {ty:#06x} with {length_bytes} bytes, \
                             over the limit of {message_bytes_max} bytes"
                        ),
                    );
                    self.fail(
                        u32::from(Code::MessageTooLarge.http_status()),
                        msg,
                        None,
                        true,
                        true,
                    );
                    return;
                }
                Err(e) => {
                    self.fail(571, format!("protocol violation: {e}"), None, true, false);
                    return;
                }
            };
            let msg = match decode_message(frame.ty, frame.payload) {
                Ok(m) => m,
                Err(e) => {
                    self.fail(571, format!("protocol violation: {e}"), None, true, false);
                    return;
                }
            };
            if self.take(msg) {
                return;
            }
        }
        self.flush_pending();
    }

    /// Moves decoded effects into an `Append` output.
    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.pending);
        if let Some(pin) = self.pin.take() {
            batch.insert(0, pin);
        }
        self.outputs.push_back(Output::Append(batch));
    }

    fn effect(&mut self, kind: effect::Kind) {
        self.pending.push(effect_record(&self.id, self.life, self.attempt, kind));
    }

    /// Takes one SDK message; `true` when the attempt is over.
    fn take(&mut self, msg: Message) -> bool {
        match msg {
            Message::Command(raw) => {
                if let Err((code, message)) = self.check_command(&raw.command) {
                    self.fail(code, message, None, true, true);
                    return true;
                }
                let ik = |k: &Option<String>| k.as_deref().is_some_and(|k| !k.is_empty());
                let callee = match &raw.command {
                    Cmd::Call(m) => {
                        self.callee_kind(&m.service_name, &m.handler_name, ik(&m.idempotency_key))
                    }
                    Cmd::OneWayCall(m) => {
                        self.callee_kind(&m.service_name, &m.handler_name, ik(&m.idempotency_key))
                    }
                    _ => Ok((HandlerKind::Unspecified, None, None)),
                };
                let (callee, callee_retention_ms, callee_journal_retention_ms) = match callee {
                    Ok(k) => k,
                    Err(message) => {
                        self.fail(404, message, None, true, false);
                        return true;
                    }
                };
                self.track_command(&raw.command);
                self.journal_len += 1;
                let ty = raw.message_type();
                self.effect(effect::Kind::Command(Command {
                    ty: u32::from(ty),
                    payload: raw.raw,
                    callee_kind: callee as i32,
                    callee_retention_ms,
                    callee_journal_retention_ms,
                }));
                false
            }
            Message::Custom { ty, payload } => {
                if let Err((code, message)) = self.check_journal_grows() {
                    self.fail(code, message, None, true, true);
                    return true;
                }
                self.journal_len += 1;
                self.effect(effect::Kind::Command(Command {
                    ty: u32::from(ty),
                    payload,
                    callee_kind: 0,
                    callee_retention_ms: None,
                    callee_journal_retention_ms: None,
                }));
                false
            }
            Message::ProposeRunCompletion(p) => {
                self.runs_open.remove(&p.result_completion_id);
                self.waits.insert(p.result_completion_id, Wait::Soon);
                let result = match p.result {
                    Some(pm::RunProposalResult::Value(v)) => Some(outcome::Result::Value(v)),
                    Some(pm::RunProposalResult::Failure(f)) => {
                        Some(outcome::Result::Failure(Failure { code: f.code, message: f.message }))
                    }
                    None => Some(outcome::Result::Value(Bytes::new())),
                };
                self.effect(effect::Kind::ProposeRun(ProposeRun {
                    completion_id: p.result_completion_id,
                    outcome: Some(Outcome { result }),
                }));
                false
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
                if w.completions.is_empty() && w.signals.is_empty() && w.named_signals.is_empty() {
                    // Resuming at once would loop as fast as the SDK answers: a failed
                    // attempt, retried with the policy's back-off.
                    let message = "protocol violation: the SDK suspended waiting for nothing";
                    self.fail(571, message.into(), None, true, false);
                    return true;
                }
                self.effect(effect::Kind::Suspended(w));
                self.finish();
                true
            }
            Message::End(_) => {
                self.effect(effect::Kind::End(fsm::End {}));
                self.finish();
                true
            }
            Message::Error(e) => {
                let message = if e.stacktrace.is_empty() {
                    e.message
                } else {
                    format!("{}\n{}", e.message, e.stacktrace)
                };
                // A delay the SDK chose does not use up the retry budget.
                let counts = e.next_retry_delay.is_none();
                match pm::ErrorBehavior::try_from(e.behavior) {
                    Ok(pm::ErrorBehavior::Fail) => self.fail(e.code, message, None, true, true),
                    Ok(pm::ErrorBehavior::Pause) => self.pause(e.code, message),
                    // A journal mismatch (non-deterministic code, or a changed deployment)
                    // repeats on every retry: pause until someone fixes and resumes it.
                    _ if e.code == JOURNAL_MISMATCH => self.pause(e.code, message),
                    _ => self.fail(e.code, message, e.next_retry_delay, counts, false),
                }
                true
            }
            Message::AwaitingOn(a) => {
                let mut w = Suspended::default();
                if let Some(f) = &a.awaiting_on {
                    flatten(f, &mut w);
                }
                // Cancellation is in every wait of an SDK with implicit cancellation: only
                // other signals say the SDK waits for something outside.
                self.awaiting_signal = w.signals.iter().any(|&i| i != fsm::SIGNAL_CANCEL)
                    || !w.named_signals.is_empty();
                false
            }
        }
    }

    fn check_journal_grows(&self) -> Result<(), (u32, String)> {
        if self.journal_len >= self.cfg.journal_entries_max.min(limits::JOURNAL_ENTRIES_MAX) {
            let code = Code::JournalTooLong;
            return Err((
                u32::from(code.http_status()),
                crate::codes::message(
                    code,
                    format!(
                        "the journal reached its limit of {} entries",
                        self.cfg.journal_entries_max.min(limits::JOURNAL_ENTRIES_MAX)
                    ),
                ),
            ));
        }
        Ok(())
    }

    /// Checks a command against the limits and this server's features.
    fn check_command(&self, c: &Cmd) -> Result<(), (u32, String)> {
        let violation = |v: limits::Violation| (u32::from(v.code.http_status()), v.to_string());
        self.check_journal_grows()?;
        match c {
            Cmd::SetState(_) | Cmd::ClearState(_) | Cmd::ClearAllState(_)
                if !self.kind.can_write_state() =>
            {
                let code = Code::StateWriteNotAllowed;
                Err((
                    u32::from(code.http_status()),
                    crate::codes::message(
                        code,
                        format!("handler {}/{} cannot write state", self.service, self.handler),
                    ),
                ))
            }
            Cmd::SetState(m) => {
                limits::check_state_key(&self.service, &self.key, &m.key).map_err(violation)
            }
            Cmd::ClearState(m) => {
                limits::check_state_key(&self.service, &self.key, &m.key).map_err(violation)
            }
            Cmd::GetLazyState(m) => {
                limits::check_state_key(&self.service, &self.key, &m.key).map_err(violation)
            }
            Cmd::Call(m) => limits::check_object_key(&m.key).map_err(violation),
            Cmd::OneWayCall(m) => limits::check_object_key(&m.key).map_err(violation),
            Cmd::SendSignal(m) => m
                .target_invocation_id
                .parse::<crate::protocol::ids::InvocationId>()
                .map(|_| ())
                .map_err(|e| {
                    invalid_id(format!("bad invocation id '{}': {e}", m.target_invocation_id))
                }),
            Cmd::CompleteAwakeable(m) => {
                crate::fsm::parse_awakeable(&m.awakeable_id).map(|_| ()).map_err(violation)
            }
            Cmd::AttachInvocation(m) => {
                crate::fsm::attach_target(m.target.as_ref()).map(|_| ()).map_err(violation)
            }
            Cmd::GetInvocationOutput(m) => {
                crate::fsm::attach_target(m.target.as_ref()).map(|_| ()).map_err(violation)
            }
            Cmd::GetPromise(pm::GetPromiseCommandMessage { key, .. })
            | Cmd::PeekPromise(pm::PeekPromiseCommandMessage { key, .. })
            | Cmd::CompletePromise(pm::CompletePromiseCommandMessage { key, .. }) => {
                // Only workflows have promises (an object's shared handler is keyed too, and
                // its promises would never be removed).
                let workflow = self
                    .schema
                    .service(&self.service)
                    .is_some_and(|s| s.ty == crate::protocol::discovery::ServiceType::Workflow);
                if !workflow {
                    let code = Code::StateWriteNotAllowed;
                    return Err((
                        u32::from(code.http_status()),
                        crate::codes::message(
                            code,
                            format!(
                                "handler {}/{} has no durable promises (only workflows do)",
                                self.service, self.handler
                            ),
                        ),
                    ));
                }
                limits::check_state_key(&self.service, &self.key, key.as_bytes()).map_err(violation)
            }
            _ => Ok(()),
        }
    }

    /// The callee's handler kind and retention, from the schema.
    fn callee_kind(
        &self,
        service: &str,
        handler: &str,
        idempotent: bool,
    ) -> Result<(HandlerKind, Option<u64>, Option<u64>), String> {
        let s = self.schema.service(service).ok_or_else(|| {
            format!("service '{service}' not found, make sure to register it before calling it")
        })?;
        let h = s.handlers.get(handler).ok_or_else(|| {
            format!("the service '{service}' exists, but the handler '{handler}' was not found")
        })?;
        let d = &self.schema.retention;
        Ok((
            h.kind.fsm_kind(),
            Some(h.retention_ms(idempotent, d)),
            Some(h.journal_retention_ms(d)),
        ))
    }

    fn finish(&mut self) {
        self.end(Verdict::Finished);
    }

    /// Ends the attempt: the pending effects in one `Output::Append`, the request stream
    /// closed, then the verdict.
    fn end(&mut self, verdict: Verdict) {
        self.flush_pending();
        if self.phase == Phase::Streaming {
            self.outputs.push_back(Output::CloseRequest);
        }
        self.phase = Phase::Done;
        self.outputs.push_back(Output::Done(verdict));
    }

    /// Ends the attempt with a failure: the effects decoded so far, then `Failed` carrying
    /// the decision, in one `Output::Append` (the failure always last).
    fn fail(
        &mut self,
        code: u32,
        message: String,
        retry_after_ms: Option<u64>,
        counts: bool,
        terminal: bool,
    ) {
        if self.phase == Phase::Done {
            return;
        }
        let failures = self.failures + u32::from(counts);
        let mut pause = false;
        let (give_up, retry_in_ms, message) = if terminal {
            (true, 0, message)
        } else if failures >= self.cfg.retry.attempts_max.max(1) {
            if self.cfg.retry.pause_on_max {
                pause = true;
                (false, 0, format!("invocation paused after {failures} attempts: {message}"))
            } else {
                (true, 0, format!("invocation failed after {failures} attempts: {message}"))
            }
        } else {
            let delay = retry_after_ms.unwrap_or_else(|| self.cfg.retry.delay_ms(failures.max(1)));
            (false, delay, message)
        };
        self.end_failed(Failed {
            code,
            message,
            retry_after_ms,
            counts,
            retry_in_ms,
            give_up,
            pause,
        });
    }

    /// Ends the attempt with `f`: the effects decoded so far, then `f` last, in one
    /// `Output::Append`; the request stream closed; the verdict repeating the decision.
    fn end_failed(&mut self, f: Failed) {
        let verdict = Verdict::Failed {
            code: f.code,
            message: f.message.clone(),
            give_up: f.give_up,
            retry_in_ms: f.retry_in_ms,
        };
        self.effect(effect::Kind::Failed(f));
        self.end(verdict);
    }
}

impl Machine {
    /// The SDK asked to pause the invocation (V7 `ErrorMessage.behavior = PAUSE`).
    fn pause(&mut self, code: u32, message: String) {
        if self.phase == Phase::Done {
            return;
        }
        self.end_failed(Failed {
            code,
            message,
            retry_after_ms: None,
            counts: true,
            retry_in_ms: 0,
            give_up: false,
            pause: true,
        });
    }
}

/// The SDK's error code for a journal that does not match the handler's code.
const JOURNAL_MISMATCH: u32 = 570;

fn invalid_id(detail: String) -> (u32, String) {
    let code = Code::InvalidId;
    (u32::from(code.http_status()), crate::codes::message(code, detail))
}

impl Machine {
    /// The `Failed` effect for an attempt whose effect was over the log's record limit.
    pub fn too_large(&mut self, bytes: usize, limit_bytes: usize) -> Record {
        let code = Code::MessageTooLarge;
        let message = crate::codes::message(
            code,
            format!(
                "an effect of the attempt ({bytes} bytes as a log record) is over the log's \
                 limit of {limit_bytes} bytes"
            ),
        );
        self.phase = Phase::Done;
        effect_record(
            &self.id,
            self.life,
            self.attempt,
            effect::Kind::Failed(Failed {
                code: u32::from(code.http_status()),
                message,
                retry_after_ms: None,
                counts: true,
                retry_in_ms: 0,
                give_up: true,
                pause: false,
            }),
        )
    }
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

/// An effect record of one attempt.
pub fn effect_record(
    id: &crate::protocol::ids::InvocationId,
    life: u64,
    attempt: u32,
    kind: effect::Kind,
) -> Record {
    Record {
        header: None,
        kind: Some(fsm::record::Kind::Effect(Effect {
            invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
            attempt,
            kind: Some(kind),
            life,
        })),
    }
}
