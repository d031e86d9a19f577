//! The attempt machine (`ratchet::invoker::machine::Machine`) driven message by message.
//!
//! Goal: pin what one attempt of an invocation does with what the SDK sends, without a
//! network or a runtime: the bytes that open the stream, the effect batches it asks the
//! driver to make durable (their order, their attempt and invocation id, the deployment pin
//! riding the first batch only), the failure decisions it writes into `Failed` effects (retry
//! after the policy's or the SDK's delay, give up when the budget is spent or a command breaks
//! a limit), the frames it forwards, and when it closes the request stream so the SDK
//! suspends, or aborts.
//!
//! Method: build an `InvokeAttempt`, a `Config` and a `Schema` by hand, encode SDK messages
//! with `encode_frame` and the prost messages, feed them through `on_data` /
//! `on_notification` / `on_tick` / `on_end_of_stream` with explicit instants and wall-clock
//! milliseconds (the machine never reads a clock), and assert the exact outputs of
//! `poll_output` and the times `deadline` asks to be woken at.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tokio::time::Instant;

use ratchet::fsm::{
    effect, outcome, record, Command, Effect, Failed, HandlerKind, InvokeAttempt, Outcome, Pin,
    ProposeRun, Record, RetryPolicy, Suspended,
};
use ratchet::invoker::machine::{Config, Machine, Output, SuspendPolicy, Verdict};
use ratchet::protocol::discovery::ServiceType;
use ratchet::protocol::framing::{encode_frame, Decoder};
use ratchet::protocol::ids::InvocationId;
use ratchet::protocol::messages::{self as pm, MessageType};
use ratchet::protocol::version::ServiceProtocolVersion;
use ratchet::schema::{HandlerSchema, Schema, SchemaHandlerKind, ServiceSchema};

/// Wall-clock time of `t0`, in ms since the Unix epoch.
const NOW_MS: u64 = 1_700_000_000_000;
const INITIAL_RETRY_MS: u64 = 100;
const ATTEMPTS_MAX: u32 = 3;

fn invocation_id() -> InvocationId {
    InvocationId::new(0xABCD, 0x0123_4567_89AB_CDEF)
}

fn config() -> Config {
    Config {
        version: ServiceProtocolVersion::V6,
        bidi: true,
        inactivity_timeout: Duration::from_secs(10),
        abort_timeout: Duration::from_secs(5),
        message_bytes_max: 1024 * 1024,
        journal_entries_max: 1000,
        retry: RetryPolicy {
            initial_ms: INITIAL_RETRY_MS,
            factor: 2.0,
            max_interval_ms: 10_000,
            attempts_max: ATTEMPTS_MAX,
            pause_on_max: false,
        },
        suspend: SuspendPolicy {
            quiet: Duration::from_millis(20),
            timer_min: Duration::from_millis(500),
            external_after: Duration::from_secs(1),
        },
    }
}

fn handler(name: &str, kind: SchemaHandlerKind) -> (String, HandlerSchema) {
    (name.to_string(), HandlerSchema::new(name, kind))
}

fn service(name: &str, ty: ServiceType, handlers: Vec<(String, HandlerSchema)>) -> ServiceSchema {
    ServiceSchema {
        name: name.to_string(),
        ty,
        revision: 1,
        deployment_id: "dp_test".to_string(),
        handlers: handlers.into_iter().collect(),
        public: true,
        documentation: None,
        metadata: BTreeMap::new(),
        inactivity_timeout_ms: None,
        abort_timeout_ms: None,
        idempotency_retention_ms: None,
        journal_retention_ms: None,
        lazy_state: false,
    }
}

/// `Greeter` (a service) and `Counter` (a virtual object with an exclusive and a shared
/// handler).
fn schema() -> Arc<Schema> {
    let mut s = Schema::default();
    for svc in [
        service(
            "Greeter",
            ServiceType::Service,
            vec![handler("greet", SchemaHandlerKind::Service)],
        ),
        service(
            "Counter",
            ServiceType::VirtualObject,
            vec![
                handler("add", SchemaHandlerKind::Exclusive),
                handler("get", SchemaHandlerKind::Shared),
            ],
        ),
    ] {
        s.services.insert(svc.name.clone(), svc);
    }
    Arc::new(s)
}

fn input_entry() -> (u16, Bytes) {
    let input = pm::InputCommandMessage {
        headers: vec![],
        value: Some(pm::Value { content: Bytes::from_static(b"\"hi\"") }),
        name: String::new(),
    };
    (MessageType::INPUT_COMMAND, input.encode_to_vec().into())
}

/// An attempt of `Counter/add` (exclusive) for key "k", with only the input in its journal.
fn attempt() -> InvokeAttempt {
    InvokeAttempt {
        id: invocation_id(),
        life: 9,
        attempt: 4,
        service: "Counter".to_string(),
        handler: "add".to_string(),
        key: "k".to_string(),
        kind: HandlerKind::Exclusive,
        journal: vec![input_entry()],
        state: None,
        partial_state: false,
        pinned: None,
        retry_count: 0,
        failures: 0,
        modified_ms: NOW_MS,
        next_retry_at_ms: 0,
        random_seed: 77,
        idempotency_key: String::new(),
    }
}

fn pin() -> Pin {
    Pin { deployment_id: "dp_test".to_string(), protocol_version: 6 }
}

/// A running machine and the time base of its test.
struct Run {
    m: Machine,
    t0: Instant,
    /// The journal position the next live notification gets (after the replayed journal).
    next_index: u32,
}

impl Run {
    fn new(cfg: Config, a: &InvokeAttempt, pin: Option<Pin>) -> (Run, Bytes) {
        let t0 = Instant::now();
        let (m, start) = Machine::new(cfg, a, schema(), pin, t0, NOW_MS);
        // Live notifications get positions well after anything the tests replay or append.
        (Run { m, t0, next_index: a.journal.len() as u32 + 1000 }, start)
    }

    fn start(cfg: Config, a: &InvokeAttempt) -> Run {
        Run::new(cfg, a, None).0
    }

    /// The instant `ms` after `t0`.
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn data(&mut self, ms: u64, bytes: &[u8]) -> Vec<Output> {
        self.m.on_data(bytes, self.at(ms));
        self.outputs()
    }

    fn notify(&mut self, ms: u64, ty: u16, n: &pm::Notification) -> Vec<Output> {
        let index = self.next_index;
        self.next_index += 1;
        self.m.on_notification(index, ty, n.encode_to_vec().into(), self.at(ms));
        self.outputs()
    }

    fn tick(&mut self, ms: u64) -> Vec<Output> {
        self.m.on_tick(self.at(ms), NOW_MS + ms);
        self.outputs()
    }

    fn deadline(&self, ms: u64) -> Option<Instant> {
        self.m.deadline(NOW_MS + ms, self.at(ms))
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.m.poll_output()).collect()
    }
}

/// SDK messages framed back to back, as one chunk.
fn frames(msgs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for (ty, payload) in msgs {
        encode_frame(*ty, 0, payload, &mut out);
    }
    out.to_vec()
}

fn set_state(key: &[u8]) -> (u16, Vec<u8>) {
    let m = pm::SetStateCommandMessage {
        key: Bytes::copy_from_slice(key),
        value: Some(pm::Value { content: Bytes::from_static(b"1") }),
        name: String::new(),
    };
    (MessageType::SET_STATE_COMMAND, m.encode_to_vec())
}

fn sleep(completion: u32, wake_up_time: u64) -> (u16, Vec<u8>) {
    let m = pm::SleepCommandMessage {
        wake_up_time,
        result_completion_id: completion,
        name: String::new(),
    };
    (MessageType::SLEEP_COMMAND, m.encode_to_vec())
}

fn run_command(completion: u32) -> (u16, Vec<u8>) {
    let m = pm::RunCommandMessage { result_completion_id: completion, name: "side".to_string() };
    (MessageType::RUN_COMMAND, m.encode_to_vec())
}

fn call(service: &str, handler: &str, id_idx: u32, result: u32) -> (u16, Vec<u8>) {
    let m = pm::CallCommandMessage {
        service_name: service.to_string(),
        handler_name: handler.to_string(),
        parameter: Bytes::from_static(b"{}"),
        headers: vec![],
        key: "other".to_string(),
        idempotency_key: None,
        scope: None,
        limit_key: None,
        invocation_id_notification_idx: id_idx,
        result_completion_id: result,
        name: String::new(),
    };
    (MessageType::CALL_COMMAND, m.encode_to_vec())
}

fn output() -> (u16, Vec<u8>) {
    let m = pm::OutputCommandMessage {
        result: Some(pm::OutputResult::Value(pm::Value { content: Bytes::from_static(b"42") })),
        name: String::new(),
    };
    (MessageType::OUTPUT_COMMAND, m.encode_to_vec())
}

fn propose_run(completion: u32, value: &'static [u8]) -> (u16, Vec<u8>) {
    let m = pm::ProposeRunCompletionMessage {
        result_completion_id: completion,
        result: Some(pm::RunProposalResult::Value(Bytes::from_static(value))),
    };
    (MessageType::PROPOSE_RUN_COMPLETION, m.encode_to_vec())
}

fn error(code: u32, message: &str, next_retry_delay: Option<u64>) -> (u16, Vec<u8>) {
    let m = pm::ErrorMessage {
        code,
        message: message.to_string(),
        stacktrace: String::new(),
        related_command_index: None,
        related_command_name: None,
        related_command_type: None,
        next_retry_delay,
        behavior: 0,
    };
    (MessageType::ERROR, m.encode_to_vec())
}

fn end() -> (u16, Vec<u8>) {
    (MessageType::END, pm::EndMessage {}.encode_to_vec())
}

/// The effects of an `Append`, after checking each record is an effect of this attempt.
fn effects(records: &[Record]) -> Vec<effect::Kind> {
    let id = Bytes::copy_from_slice(&invocation_id().to_bytes());
    records
        .iter()
        .map(|r| match &r.kind {
            Some(record::Kind::Effect(Effect {
                invocation_id,
                attempt,
                kind: Some(kind),
                life,
            })) => {
                assert_eq!(invocation_id, &id, "effect of another invocation: {r:?}");
                assert_eq!(*attempt, 4, "effect of another attempt: {r:?}");
                assert_eq!(*life, 9, "effect of another life: {r:?}");
                kind.clone()
            }
            other => panic!("not an effect record: {other:?}"),
        })
        .collect()
}

fn command(ty: u16, payload: &[u8], callee_kind: HandlerKind) -> effect::Kind {
    effect::Kind::Command(Command {
        ty: u32::from(ty),
        payload: Bytes::copy_from_slice(payload),
        callee_kind: callee_kind as i32,
        callee_retention_ms: (callee_kind != HandlerKind::Unspecified)
            .then_some(ratchet::schema::DEFAULT_RETENTION_MS),
        callee_journal_retention_ms: (callee_kind != HandlerKind::Unspecified)
            .then_some(ratchet::schema::DEFAULT_RETENTION_MS),
    })
}

fn commands(msgs: &[(u16, Vec<u8>)]) -> Vec<effect::Kind> {
    msgs.iter().map(|(ty, p)| command(*ty, p, HandlerKind::Unspecified)).collect()
}

/// Splits the outputs of a failed attempt: the effects of its one `Append`, the `Failed`
/// effect (last of them) and the verdict. Checks the stream was closed when `bidi`.
fn failed(outputs: Vec<Output>, bidi: bool) -> (Vec<effect::Kind>, Failed, Verdict) {
    let mut it = outputs.into_iter();
    let mut kinds = match it.next() {
        Some(Output::Append(records)) => effects(&records),
        other => panic!("expected Append, got {other:?}"),
    };
    if bidi {
        assert_eq!(it.next(), Some(Output::CloseRequest));
    }
    let verdict = match it.next() {
        Some(Output::Done(v)) => v,
        other => panic!("expected Done, got {other:?}"),
    };
    assert_eq!(it.next(), None);
    let f = match kinds.pop() {
        Some(effect::Kind::Failed(f)) => f,
        other => panic!("the last effect is not Failed: {other:?}"),
    };
    // The verdict repeats the decision of the logged effect.
    assert_eq!(
        verdict,
        Verdict::Failed {
            code: f.code,
            message: f.message.clone(),
            give_up: f.give_up,
            retry_in_ms: f.retry_in_ms
        }
    );
    (kinds, f, verdict)
}

// ---------------------------------------------------------------------------------------------
// 1. Start bytes.

#[test]
fn start_bytes_are_the_start_message_then_the_journal_in_order() {
    // Why: the SDK replays from exactly these frames; a wrong count or order diverges replay.
    let mut a = attempt();
    let sleep_entry = sleep(1, NOW_MS + 60_000);
    let sleep_done =
        pm::Notification::completion(1, pm::NotificationResult::Void(pm::Void {})).encode_to_vec();
    a.journal.push((sleep_entry.0, sleep_entry.1.into()));
    a.journal.push((MessageType::SLEEP_COMPLETION, sleep_done.into()));
    a.retry_count = 2;
    a.modified_ms = NOW_MS - 1_500;
    let (_, start) = Run::new(config(), &a, None);

    let mut d = Decoder::new();
    d.push(&start);
    let first = d.next_frame().unwrap().expect("a start frame");
    assert_eq!(first.ty, MessageType::START);
    let sm = pm::StartMessage::decode(first.payload).unwrap();
    assert_eq!(sm.id.as_ref(), &invocation_id().to_bytes());
    assert_eq!(sm.debug_id, invocation_id().to_string());
    assert_eq!(sm.known_entries, 3);
    assert_eq!(sm.key, "k");
    assert_eq!(sm.retry_count_since_last_stored_entry, 2);
    assert_eq!(sm.duration_since_last_stored_entry, 1_500);
    assert_eq!(sm.random_seed, 77, "V6 carries the random seed");
    assert!(sm.partial_state, "no eager state means the SDK must read state lazily");
    assert!(sm.state_map.is_empty());
    for (ty, payload) in &a.journal {
        let f = d.next_frame().unwrap().expect("a journal frame");
        assert_eq!((f.ty, &f.payload), (*ty, payload));
    }
    assert_eq!(d.next_frame().unwrap(), None);
    d.finish().unwrap();
}

#[test]
fn start_message_carries_eager_state_and_its_completeness() {
    // Why: a complete eager state lets the SDK answer reads locally; claiming it complete
    // when it is not would make reads of missing keys return nothing.
    let mut a = attempt();
    a.state = Some(vec![(Bytes::from_static(b"count"), Bytes::from_static(b"3"))]);
    for partial in [false, true] {
        a.partial_state = partial;
        let (_, start) = Run::new(config(), &a, None);
        let mut d = Decoder::new();
        d.push(&start);
        let sm = pm::StartMessage::decode(d.next_frame().unwrap().unwrap().payload).unwrap();
        assert_eq!(sm.partial_state, partial);
        assert_eq!(
            sm.state_map,
            vec![pm::StateEntry {
                key: Bytes::from_static(b"count"),
                value: Bytes::from_static(b"3")
            }]
        );
    }
}

#[test]
fn v5_start_message_has_no_random_seed() {
    // Why: the field does not exist before V6; a V5 SDK must not see it.
    let mut cfg = config();
    cfg.version = ServiceProtocolVersion::V5;
    let (_, start) = Run::new(cfg, &attempt(), None);
    let mut d = Decoder::new();
    d.push(&start);
    let sm = pm::StartMessage::decode(d.next_frame().unwrap().unwrap().payload).unwrap();
    assert_eq!(sm.random_seed, 0);
}

// ---------------------------------------------------------------------------------------------
// 2. Commands become effects.

#[test]
fn commands_become_one_append_in_order_with_the_pin_first_in_the_first_batch_only() {
    // Why: effects must be durable in the SDK's order, and the pin exactly once, before them.
    let (mut r, _) = Run::new(config(), &attempt(), Some(pin()));
    let batch = [set_state(b"a"), sleep(1, NOW_MS + 50), set_state(b"b")];
    let out = r.data(0, &frames(&batch));
    let [Output::Append(records)] = &out[..] else { panic!("one Append expected: {out:?}") };
    let mut expected = vec![effect::Kind::Pin(pin())];
    expected.extend(commands(&batch));
    assert_eq!(effects(records), expected);
    assert!(records.iter().all(|r| r.header.is_none()), "the appender sets the header");

    let out = r.data(1, &frames(&[output()]));
    let [Output::Append(records)] = &out[..] else { panic!("one Append expected: {out:?}") };
    assert_eq!(effects(records), commands(&[output()]), "no second pin");
    assert!(!r.m.is_done());
}

#[test]
fn a_frame_split_across_chunks_is_one_command_and_nothing_is_appended_before_it_is_whole() {
    // Why: the transport splits frames arbitrarily; a half frame must not produce an effect.
    let mut r = Run::start(config(), &attempt());
    let bytes = frames(&[set_state(b"a"), set_state(b"b")]);
    let cut = bytes.len() - 3;
    let out = r.data(0, &bytes[..cut]);
    let [Output::Append(records)] = &out[..] else { panic!("one Append expected: {out:?}") };
    assert_eq!(effects(records), commands(&[set_state(b"a")]));
    assert_eq!(r.data(1, &bytes[cut..cut + 1]), vec![]);
    let out = r.data(2, &bytes[cut + 1..]);
    let [Output::Append(records)] = &out[..] else { panic!("one Append expected: {out:?}") };
    assert_eq!(effects(records), commands(&[set_state(b"b")]));
}

#[test]
fn calls_record_the_callee_kind_from_the_schema_and_unknown_callees_fail_retryably() {
    // Why: apply needs the callee's kind (lock or not) and must not guess it; an unknown
    // service may be registered later, so that failure is retried.
    let mut r = Run::start(config(), &attempt());
    let to_exclusive = call("Counter", "add", 1, 2);
    let to_shared = call("Counter", "get", 3, 4);
    let to_service = call("Greeter", "greet", 5, 6);
    let out = r.data(0, &frames(&[to_exclusive.clone(), to_shared.clone(), to_service.clone()]));
    let [Output::Append(records)] = &out[..] else { panic!("one Append expected: {out:?}") };
    assert_eq!(
        effects(records),
        vec![
            command(to_exclusive.0, &to_exclusive.1, HandlerKind::Exclusive),
            command(to_shared.0, &to_shared.1, HandlerKind::Shared),
            command(to_service.0, &to_service.1, HandlerKind::Service),
        ]
    );

    let (before, f, _) = failed(r.data(1, &frames(&[call("Nope", "x", 7, 8)])), true);
    assert!(before.is_empty());
    assert_eq!(f.code, 404);
    assert!(f.message.contains("service 'Nope' not found"), "{}", f.message);
    assert!(!f.give_up);
    assert_eq!(f.retry_in_ms, INITIAL_RETRY_MS);
}

#[test]
fn custom_entries_are_journaled_verbatim() {
    // Why: custom entries (0xFC00..) are the SDK's own; the server stores them untouched.
    let mut r = Run::start(config(), &attempt());
    let custom = (0xFC01u16, vec![1u8, 2, 3]);
    let out = r.data(0, &frames(std::slice::from_ref(&custom)));
    let [Output::Append(records)] = &out[..] else { panic!("one Append expected: {out:?}") };
    assert_eq!(effects(records), commands(&[custom]));
}

// ---------------------------------------------------------------------------------------------
// 3. and 4. Failures and the retry decision.

#[test]
fn a_run_proposal_and_an_error_in_one_chunk_keep_the_proposal_ahead_of_the_failure() {
    // Why: the SDK already acted on its ctx.run result; dropping the proposal would run the
    // side effect again on the next attempt.
    let mut r = Run::start(config(), &attempt());
    let out = r.data(0, &frames(&[run_command(1)]));
    assert!(matches!(&out[..], [Output::Append(_)]), "{out:?}");
    let (before, f, verdict) =
        failed(r.data(1, &frames(&[propose_run(1, b"result"), error(500, "boom", None)])), true);
    assert_eq!(
        before,
        vec![effect::Kind::ProposeRun(ProposeRun {
            completion_id: 1,
            outcome: Some(Outcome {
                result: Some(outcome::Result::Value(Bytes::from_static(b"result")))
            }),
        })]
    );
    assert_eq!(
        f,
        Failed {
            code: 500,
            message: "boom".to_string(),
            retry_after_ms: None,
            counts: true,
            retry_in_ms: INITIAL_RETRY_MS,
            give_up: false,
            pause: false,
        }
    );
    assert_eq!(
        verdict,
        Verdict::Failed {
            code: 500,
            message: "boom".into(),
            give_up: false,
            retry_in_ms: INITIAL_RETRY_MS
        }
    );
    assert!(r.m.is_done());
    assert_eq!(r.deadline(2), None, "a finished attempt needs no more ticks");
    // Whatever arrives afterwards changes nothing.
    assert_eq!(r.data(3, &frames(&[set_state(b"late")])), vec![]);
    r.m.on_end_of_stream();
    assert_eq!(r.outputs(), vec![]);
}

#[test]
fn the_retry_delay_grows_with_counted_failures() {
    // Why: the backoff is decided here from the failures so far, and logged.
    let mut a = attempt();
    a.failures = 1;
    let mut r = Run::start(config(), &a);
    let (_, f, _) = failed(r.data(0, &frames(&[error(500, "boom", None)])), true);
    assert_eq!((f.give_up, f.counts, f.retry_in_ms), (false, true, 2 * INITIAL_RETRY_MS));
}

#[test]
fn the_last_allowed_failure_gives_up_naming_the_attempts() {
    // Why: the retry budget is finite; the user learns how many attempts were made.
    let mut a = attempt();
    a.failures = ATTEMPTS_MAX - 1;
    let mut r = Run::start(config(), &a);
    let (_, f, _) = failed(r.data(0, &frames(&[error(500, "boom", None)])), true);
    assert!(f.give_up);
    assert_eq!(f.retry_in_ms, 0);
    assert_eq!(f.code, 500);
    assert_eq!(f.message, format!("invocation failed after {ATTEMPTS_MAX} attempts: boom"));
}

#[test]
fn an_sdk_chosen_retry_delay_is_used_and_does_not_count_against_the_budget() {
    // Why: an SDK asking to be retried later (for example rate limited) must not exhaust
    // the retry budget, and its delay wins over the policy's.
    let mut a = attempt();
    a.failures = ATTEMPTS_MAX - 1;
    let mut r = Run::start(config(), &a);
    let (_, f, _) = failed(r.data(0, &frames(&[error(503, "later", Some(7_000))])), true);
    assert_eq!(
        f,
        Failed {
            code: 503,
            message: "later".to_string(),
            retry_after_ms: Some(7_000),
            counts: false,
            retry_in_ms: 7_000,
            give_up: false,
            pause: false,
        }
    );
}

#[test]
fn an_error_stacktrace_is_kept_in_the_message() {
    // Why: the stacktrace is what a user debugs with.
    let mut r = Run::start(config(), &attempt());
    let m = pm::ErrorMessage {
        code: 500,
        message: "boom".to_string(),
        stacktrace: "at handler.ts:3".to_string(),
        related_command_index: None,
        related_command_name: None,
        related_command_type: None,
        next_retry_delay: None,
        behavior: 0,
    };
    let (_, f, _) = failed(r.data(0, &frames(&[(MessageType::ERROR, m.encode_to_vec())])), true);
    assert_eq!(f.message, "boom\nat handler.ts:3");
}

// ---------------------------------------------------------------------------------------------
// 5. Commands that break a limit or ask for what this server lacks.

#[test]
fn a_state_key_over_the_limit_gives_up_after_the_commands_before_it() {
    // Why: retrying would send the same key again; what the SDK did before it stays logged.
    let mut r = Run::start(config(), &attempt());
    let ok = [set_state(b"a"), sleep(1, NOW_MS + 50)];
    let mut batch = ok.to_vec();
    batch.push(set_state(&vec![b'x'; 65 * 1024]));
    batch.push(set_state(b"after"));
    let (before, f, _) = failed(r.data(0, &frames(&batch)), true);
    assert_eq!(before, commands(&ok), "the commands before, nothing after");
    assert!(f.give_up);
    assert_eq!(f.code, 413);
    assert!(f.message.starts_with("[RA1001]"), "{}", f.message);
}

#[test]
fn a_shared_handler_writing_state_gives_up() {
    // Why: shared handlers run concurrently per key; a write from one would race.
    let mut a = attempt();
    a.handler = "get".to_string();
    a.kind = HandlerKind::Shared;
    for write in [
        set_state(b"a"),
        (
            MessageType::CLEAR_STATE_COMMAND,
            pm::ClearStateCommandMessage { key: Bytes::from_static(b"a"), name: String::new() }
                .encode_to_vec(),
        ),
        (
            MessageType::CLEAR_ALL_STATE_COMMAND,
            pm::ClearAllStateCommandMessage { name: String::new() }.encode_to_vec(),
        ),
    ] {
        let mut r = Run::start(config(), &a);
        let (before, f, _) = failed(r.data(0, &frames(&[output(), write])), true);
        assert_eq!(before, commands(&[output()]));
        assert!(f.give_up);
        assert_eq!(f.code, 400);
        assert!(f.message.starts_with("[RA1006]"), "{}", f.message);
        assert!(f.message.contains("Counter/get"), "{}", f.message);
    }
}

#[test]
fn a_promise_command_outside_a_workflow_gives_up_with_400() {
    // Why: only workflows have durable promises; retrying cannot help. A virtual object's
    // handler is keyed too, but its promises would never be removed.
    let mut service = attempt();
    service.kind = HandlerKind::Service;
    service.key = String::new();
    for a in [service, attempt()] {
        let mut r = Run::start(config(), &a);
        let get_promise = pm::GetPromiseCommandMessage {
            key: "p".to_string(),
            result_completion_id: 1,
            name: String::new(),
        };
        let (before, f, _) = failed(
            r.data(0, &frames(&[(MessageType::GET_PROMISE_COMMAND, get_promise.encode_to_vec())])),
            true,
        );
        assert!(before.is_empty());
        assert_eq!((f.code, f.give_up), (400, true));
        assert!(f.message.starts_with("[RA1006]"), "{}", f.message);
    }
}

#[test]
fn a_malformed_awakeable_or_invocation_id_gives_up_with_400() {
    // Why: a malformed id can never become valid; the SDK hears at once.
    for (ty, payload) in [
        (
            MessageType::COMPLETE_AWAKEABLE_COMMAND,
            pm::CompleteAwakeableCommandMessage {
                awakeable_id: "sign_1nope".into(),
                result: None,
                name: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            MessageType::SEND_SIGNAL_COMMAND,
            pm::SendSignalCommandMessage {
                target_invocation_id: "inv_1nope".into(),
                signal_id: Some(pm::SignalId::Idx(1)),
                result: None,
                entry_name: String::new(),
            }
            .encode_to_vec(),
        ),
    ] {
        let mut r = Run::start(config(), &attempt());
        let (before, f, _) = failed(r.data(0, &frames(&[(ty, payload)])), true);
        assert!(before.is_empty());
        assert_eq!((f.code, f.give_up), (400, true));
        assert!(f.message.starts_with("[RA1007]"), "{}", f.message);
    }
}

#[test]
fn the_command_past_the_journal_limit_gives_up() {
    // Why: a journal without bound would grow the store and the replay without bound.
    let a = attempt();
    let mut cfg = config();
    cfg.journal_entries_max = a.journal.len() as u32 + 2;
    let mut r = Run::start(cfg, &a);
    let batch = [set_state(b"1"), set_state(b"2"), set_state(b"3")];
    let (before, f, _) = failed(r.data(0, &frames(&batch)), true);
    assert_eq!(before, commands(&batch[..2]));
    assert!(f.give_up);
    assert_eq!(f.code, 413);
    assert!(f.message.starts_with("[RA1002]"), "{}", f.message);
}

#[test]
fn notifications_count_towards_the_journal_limit() {
    // Why: the journal holds notifications too; the limit is on its whole length.
    let a = attempt();
    let mut cfg = config();
    cfg.journal_entries_max = a.journal.len() as u32 + 2;
    let mut r = Run::start(cfg, &a);
    let out = r.data(0, &frames(&[run_command(1)]));
    assert!(matches!(&out[..], [Output::Append(_)]), "{out:?}");
    let done = pm::Notification::completion(1, pm::NotificationResult::Void(pm::Void {}));
    assert_eq!(r.notify(1, MessageType::RUN_COMPLETION, &done).len(), 1);
    let (before, f, _) = failed(r.data(2, &frames(&[set_state(b"x")])), true);
    assert!(before.is_empty());
    assert!(f.message.starts_with("[RA1002]"), "{}", f.message);
}

// ---------------------------------------------------------------------------------------------
// 6. Terminal messages.

#[test]
fn end_appends_the_end_effect_closes_and_finishes() {
    // Why: the End effect completes the invocation; the stream is closed after it.
    let (mut r, _) = Run::new(config(), &attempt(), Some(pin()));
    let out = r.data(0, &frames(&[output(), end()]));
    let [Output::Append(records), Output::CloseRequest, Output::Done(Verdict::Finished)] = &out[..]
    else {
        panic!("Append, CloseRequest, Done expected: {out:?}")
    };
    let mut expected = vec![effect::Kind::Pin(pin())];
    expected.extend(commands(&[output()]));
    expected.push(effect::Kind::End(ratchet::fsm::End {}));
    assert_eq!(effects(records), expected);
    assert!(r.m.is_done());
}

#[test]
fn suspension_appends_what_the_sdk_waits_for() {
    // Why: the invocation is resumed when one of these completes; a lost id never resumes.
    let mut r = Run::start(config(), &attempt());
    let s = pm::SuspensionMessage {
        waiting_completions: vec![1, 3],
        waiting_signals: vec![17],
        waiting_named_signals: vec!["go".to_string()],
        awaiting_on: None,
    };
    let batch = [sleep(1, NOW_MS + 60_000), (MessageType::SUSPENSION, s.encode_to_vec())];
    let out = r.data(0, &frames(&batch));
    let [Output::Append(records), Output::CloseRequest, Output::Done(Verdict::Finished)] = &out[..]
    else {
        panic!("Append, CloseRequest, Done expected: {out:?}")
    };
    let mut expected = commands(&batch[..1]);
    expected.push(effect::Kind::Suspended(Suspended {
        completions: vec![1, 3],
        signals: vec![17],
        named_signals: vec!["go".to_string()],
    }));
    assert_eq!(effects(records), expected);
}

#[test]
fn request_response_mode_ends_without_closing_a_stream() {
    // Why: in request-response mode the request was closed after the journal; closing it
    // again is a driver error.
    let mut cfg = config();
    cfg.bidi = false;
    let mut r = Run::start(cfg, &attempt());
    let out = r.data(0, &frames(&[end()]));
    let [Output::Append(records), Output::Done(Verdict::Finished)] = &out[..] else {
        panic!("Append, Done expected: {out:?}")
    };
    assert_eq!(effects(records), vec![effect::Kind::End(ratchet::fsm::End {})]);
}

// ---------------------------------------------------------------------------------------------
// 7. Oversized and malformed input.

#[test]
fn a_message_over_the_size_limit_gives_up_with_ra1005() {
    // Why: the SDK would send the same message again; the limit bounds server memory.
    let mut cfg = config();
    cfg.message_bytes_max = 1024;
    let mut r = Run::start(cfg, &attempt());
    let big = pm::SetStateCommandMessage {
        key: Bytes::from_static(b"k"),
        value: Some(pm::Value { content: Bytes::from(vec![0u8; 2048]) }),
        name: String::new(),
    };
    let batch = [set_state(b"a"), (MessageType::SET_STATE_COMMAND, big.encode_to_vec())];
    let bytes = frames(&batch);
    // Only the big frame's header is needed to refuse it.
    let header_end = frames(&batch[..1]).len() + 8;
    let (before, f, _) = failed(r.data(0, &bytes[..header_end]), true);
    assert_eq!(before, commands(&batch[..1]));
    assert!(f.give_up);
    assert_eq!(f.code, 413);
    assert!(f.message.starts_with("[RA1005]"), "{}", f.message);
    assert!(f.message.contains("1024"), "names the limit: {}", f.message);
}

#[test]
fn a_malformed_message_fails_retryably_with_571() {
    // Why: a corrupt stream is a transport or SDK fault that a new attempt may not repeat.
    let undecodable = (MessageType::SET_STATE_COMMAND, vec![0xFF, 0xFF, 0xFF]);
    let from_server = (MessageType::START, vec![]);
    let unknown_control = (0x00FFu16, vec![]);
    for bad in [undecodable, from_server, unknown_control] {
        let mut r = Run::start(config(), &attempt());
        let (before, f, _) = failed(r.data(0, &frames(&[set_state(b"a"), bad.clone()])), true);
        assert_eq!(before, commands(&[set_state(b"a")]), "for {bad:?}");
        assert_eq!(f.code, 571, "for {bad:?}");
        assert!(!f.give_up, "for {bad:?}");
        assert!(f.counts);
        assert!(f.message.starts_with("protocol violation"), "{}", f.message);
    }
}

#[test]
fn a_frame_header_with_reserved_bits_fails_retryably_with_571() {
    // Why: framing has no resynchronisation point; the attempt must end.
    let mut r = Run::start(config(), &attempt());
    let raw: u64 = (u64::from(MessageType::SET_STATE_COMMAND) << 48) | (1 << 40);
    let (before, f, _) = failed(r.data(0, &raw.to_be_bytes()), true);
    assert!(before.is_empty());
    assert_eq!((f.code, f.give_up), (571, false));
    assert!(f.message.contains("reserved"), "{}", f.message);
}

// ---------------------------------------------------------------------------------------------
// 8. Notifications.

#[test]
fn a_notification_is_forwarded_as_exactly_its_frame_in_bidi_mode() {
    // Why: the SDK decodes it as a frame of the notification's type; any change breaks it.
    let mut r = Run::start(config(), &attempt());
    let n = pm::Notification::completion(
        2,
        pm::NotificationResult::Value(pm::Value { content: Bytes::from_static(b"v") }),
    );
    let out = r.notify(0, MessageType::CALL_COMPLETION, &n);
    let mut expected = BytesMut::new();
    encode_frame(MessageType::CALL_COMPLETION, 0, &n.encode_to_vec(), &mut expected);
    assert_eq!(out, vec![Output::Send(expected.freeze())]);
}

#[test]
fn a_notification_the_replay_already_held_is_not_sent_again() {
    // Why: an attempt is loaded from the store when it starts, which may already hold a
    // notification whose live copy is still on its way; the SDK must not see it twice.
    let mut a = attempt();
    let n = pm::Notification::completion(1, pm::NotificationResult::Void(pm::Void {}));
    a.journal.push((MessageType::SLEEP_COMPLETION, n.encode_to_vec().into()));
    let (mut m, _) = Machine::new(config(), &a, schema(), None, Instant::now(), NOW_MS);
    let replayed_at = a.journal.len() as u32 - 1;
    m.on_notification(
        replayed_at,
        MessageType::SLEEP_COMPLETION,
        n.encode_to_vec().into(),
        Instant::now(),
    );
    assert_eq!(m.poll_output(), None, "the replayed notification is not forwarded again");
    let next = pm::Notification::completion(2, pm::NotificationResult::Void(pm::Void {}));
    m.on_notification(
        replayed_at + 1,
        MessageType::SLEEP_COMPLETION,
        next.encode_to_vec().into(),
        Instant::now(),
    );
    assert!(matches!(m.poll_output(), Some(Output::Send(_))), "a later one is");
}

#[test]
fn a_notification_is_not_sent_in_request_response_mode() {
    // Why: the request stream is already closed; the next attempt replays it.
    let mut cfg = config();
    cfg.bidi = false;
    let mut r = Run::start(cfg, &attempt());
    let n = pm::Notification::completion(2, pm::NotificationResult::Void(pm::Void {}));
    assert_eq!(r.notify(0, MessageType::CALL_COMPLETION, &n), vec![]);
}

// ---------------------------------------------------------------------------------------------
// 9. Suspension policy.

#[test]
fn a_far_timer_and_a_quiet_sdk_close_the_stream_after_the_quiet_time() {
    // Why: an SDK sleeping for long should suspend and free its stream, not hold it open.
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.deadline(0), Some(r.at(10_000)), "only the inactivity timeout at first");
    assert_eq!(r.data(5, &frames(&[sleep(1, NOW_MS + 10_000)])).len(), 1);
    assert_eq!(r.deadline(5), Some(r.at(25)), "quiet time after the last SDK message");
    assert_eq!(r.tick(24), vec![]);
    assert_eq!(r.tick(25), vec![Output::CloseRequest]);
    assert_eq!(r.deadline(25), Some(r.at(25 + 5_000)), "now the abort timeout runs");
    // The SDK answers the close by suspending.
    let s = pm::SuspensionMessage {
        waiting_completions: vec![1],
        waiting_signals: vec![],
        waiting_named_signals: vec![],
        awaiting_on: None,
    };
    let out = r.data(30, &frames(&[(MessageType::SUSPENSION, s.encode_to_vec())]));
    assert!(
        matches!(&out[..], [Output::Append(_), Output::Done(Verdict::Finished)]),
        "no second close: {out:?}"
    );
}

#[test]
fn an_open_run_keeps_the_stream_until_its_result_is_durable() {
    // Why: closing while a ctx.run closure executes would throw its work away.
    let mut r = Run::start(config(), &attempt());
    let out = r.data(0, &frames(&[sleep(1, NOW_MS + 60_000), run_command(2)]));
    assert_eq!(out.len(), 1);
    assert_eq!(r.deadline(0), Some(r.at(10_000)));
    assert_eq!(r.tick(1_000), vec![]);
    // The proposal is on its way to the log: the SDK waits for its completion soon.
    assert_eq!(r.data(2_000, &frames(&[propose_run(2, b"x")])).len(), 1);
    assert_eq!(r.deadline(2_000), Some(r.at(12_000)));
    assert_eq!(r.tick(3_000), vec![]);
    let done = pm::Notification::completion(
        2,
        pm::NotificationResult::Value(pm::Value { content: Bytes::from_static(b"x") }),
    );
    assert!(matches!(&r.notify(3_000, MessageType::RUN_COMPLETION, &done)[..], [Output::Send(_)]));
    // Only the far timer is left, and the SDK has been quiet since the proposal.
    assert_eq!(r.deadline(3_000), Some(r.at(2_020)));
    assert_eq!(r.tick(3_000), vec![Output::CloseRequest]);
}

#[test]
fn a_near_timer_keeps_the_stream_until_the_inactivity_timeout() {
    // Why: suspending for a timer about to fire costs a new attempt for nothing.
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.data(0, &frames(&[sleep(1, NOW_MS + 100)])).len(), 1);
    assert_eq!(r.deadline(0), Some(r.at(10_000)));
    assert_eq!(r.tick(20), vec![]);
    assert_eq!(r.tick(5_000), vec![]);
    assert_eq!(r.tick(9_999), vec![]);
    assert_eq!(r.tick(10_000), vec![Output::CloseRequest]);
}

#[test]
fn a_timer_is_far_only_if_it_is_still_far_once_the_quiet_time_passed() {
    // Why: the rule compares the timer with the moment the stream would close, not now.
    let mut r = Run::start(config(), &attempt());
    // 510 ms away now: at the close (20 ms later) it is 490 ms away, under timer_min.
    assert_eq!(r.data(0, &frames(&[sleep(1, NOW_MS + 510)])).len(), 1);
    assert_eq!(r.deadline(0), Some(r.at(10_000)));
    assert_eq!(r.tick(20), vec![]);
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.data(0, &frames(&[sleep(1, NOW_MS + 520)])).len(), 1);
    assert_eq!(r.deadline(0), Some(r.at(20)));
    assert_eq!(r.tick(20), vec![Output::CloseRequest]);
}

#[test]
fn a_call_waiting_for_its_result_closes_after_external_after() {
    // Why: a callee may take arbitrarily long; the caller suspends instead of holding a
    // stream, but not before the call's invocation id (produced here, soon) arrived.
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.data(0, &frames(&[call("Greeter", "greet", 1, 2)])).len(), 1);
    assert_eq!(r.deadline(0), Some(r.at(10_000)), "the invocation id comes soon");
    assert_eq!(r.tick(1_500), vec![]);
    let id = pm::Notification::completion(
        1,
        pm::NotificationResult::InvocationId(InvocationId::new(1, 2).to_string()),
    );
    let out = r.notify(1_500, MessageType::CALL_INVOCATION_ID_COMPLETION, &id);
    assert!(matches!(&out[..], [Output::Send(_)]), "{out:?}");
    assert_eq!(r.deadline(1_500), Some(r.at(1_000)), "quiet since the call was sent");
    assert_eq!(r.tick(1_500), vec![Output::CloseRequest]);
}

#[test]
fn a_call_and_a_far_timer_wait_for_external_after() {
    // Why: the SDK waits for whichever comes first; the call may complete in a moment, so
    // the stream stays for `external_after`, not just the quiet time of the timer rule.
    let mut r = Run::start(config(), &attempt());
    let out = r.data(0, &frames(&[call("Greeter", "greet", 1, 2), sleep(3, NOW_MS + 3_600_000)]));
    assert_eq!(out.len(), 1);
    let id = pm::Notification::completion(
        1,
        pm::NotificationResult::InvocationId(InvocationId::new(1, 2).to_string()),
    );
    assert_eq!(r.notify(5, MessageType::CALL_INVOCATION_ID_COMPLETION, &id).len(), 1);
    assert_eq!(r.deadline(5), Some(r.at(1_000)));
    assert_eq!(r.tick(100), vec![]);
    assert_eq!(r.tick(1_000), vec![Output::CloseRequest]);
}

#[test]
fn sdk_messages_restart_the_quiet_time() {
    // Why: an SDK still sending is not idle, whatever it waits for.
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.data(0, &frames(&[call("Greeter", "greet", 1, 2)])).len(), 1);
    let id = pm::Notification::completion(
        1,
        pm::NotificationResult::InvocationId(InvocationId::new(1, 2).to_string()),
    );
    assert_eq!(r.notify(10, MessageType::CALL_INVOCATION_ID_COMPLETION, &id).len(), 1);
    assert_eq!(r.data(900, &frames(&[set_state(b"a")])).len(), 1);
    assert_eq!(r.deadline(900), Some(r.at(1_900)));
    assert_eq!(r.tick(1_899), vec![]);
    assert_eq!(r.tick(1_900), vec![Output::CloseRequest]);
}

#[test]
fn a_replayed_far_timer_counts_for_suspension() {
    // Why: after a restart the journal, not this attempt's messages, says what the SDK
    // waits for.
    let mut a = attempt();
    let s = sleep(1, NOW_MS + 60_000);
    a.journal.push((s.0, s.1.into()));
    let mut r = Run::start(config(), &a);
    assert_eq!(r.deadline(0), Some(r.at(20)));
    assert_eq!(r.tick(20), vec![Output::CloseRequest]);

    // A completion already in the journal is not waited for.
    let done =
        pm::Notification::completion(1, pm::NotificationResult::Void(pm::Void {})).encode_to_vec();
    a.journal.push((MessageType::SLEEP_COMPLETION, done.into()));
    let r = Run::start(config(), &a);
    assert_eq!(r.deadline(0), Some(r.at(10_000)));
}

// ---------------------------------------------------------------------------------------------
// 10. Ends without a terminal message.

#[test]
fn end_of_stream_without_a_terminal_message_fails_retryably_with_500() {
    // Why: the SDK crashed or the connection broke; a new attempt replays the journal.
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.data(0, &frames(&[set_state(b"a")])).len(), 1);
    r.m.on_end_of_stream();
    let (before, f, _) = failed(r.outputs(), true);
    assert!(before.is_empty());
    assert_eq!((f.code, f.give_up, f.counts), (500, false, true));
    assert_eq!(f.retry_in_ms, INITIAL_RETRY_MS);

    // A stream that ends inside a frame says so.
    let mut r = Run::start(config(), &attempt());
    let bytes = frames(&[set_state(b"a")]);
    assert_eq!(r.data(0, &bytes[..bytes.len() - 1]), vec![]);
    r.m.on_end_of_stream();
    let (before, f, _) = failed(r.outputs(), true);
    assert!(before.is_empty());
    assert_eq!((f.code, f.give_up), (500, false));
    assert!(f.message.contains("protocol violation"), "{}", f.message);
}

#[test]
fn no_answer_within_the_abort_timeout_after_close_fails_retryably_with_504() {
    // Why: an SDK that neither ends nor suspends after the close would hold the attempt
    // forever.
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.tick(10_000), vec![Output::CloseRequest], "inactivity timeout");
    assert_eq!(r.deadline(10_000), Some(r.at(15_000)));
    assert_eq!(r.tick(14_999), vec![]);
    let (before, f, _) = failed(r.tick(15_000), false);
    assert!(before.is_empty());
    assert_eq!((f.code, f.give_up), (504, false));
    assert!(f.message.starts_with("[RT0001]"), "{}", f.message);
    assert_eq!(r.deadline(15_000), None);
}

#[test]
fn request_response_mode_runs_the_abort_timeout_from_the_start() {
    // Why: without a request stream there is nothing to close; the abort timeout bounds
    // the whole attempt.
    let mut cfg = config();
    cfg.bidi = false;
    let mut r = Run::start(cfg, &attempt());
    assert_eq!(r.deadline(0), Some(r.at(5_000)));
    assert_eq!(r.data(100, &frames(&[sleep(1, NOW_MS + 60_000)])).len(), 1);
    assert_eq!(r.tick(4_999), vec![]);
    let (_, f, _) = failed(r.tick(5_000), false);
    assert_eq!(f.code, 504);
}

#[test]
fn a_transport_error_fails_retryably_with_its_code() {
    // Why: connection failures are transient; the decision is logged like any failure.
    let mut r = Run::start(config(), &attempt());
    assert_eq!(r.data(0, &frames(&[set_state(b"a")])).len(), 1);
    r.m.on_transport_error(502, "connection reset".to_string());
    let (before, f, _) = failed(r.outputs(), true);
    assert!(before.is_empty());
    assert_eq!(
        (f.code, f.message.as_str(), f.give_up, f.counts),
        (502, "connection reset", false, true)
    );
}

#[test]
fn a_suspension_waiting_for_nothing_fails_the_attempt_with_back_off() {
    // Why: resuming such an attempt at once would loop as fast as the SDK answers.
    let mut r = Run::start(config(), &attempt());
    let s = pm::SuspensionMessage {
        waiting_completions: vec![],
        waiting_signals: vec![],
        waiting_named_signals: vec![],
        awaiting_on: None,
    };
    let (before, f, _) =
        failed(r.data(0, &frames(&[(MessageType::SUSPENSION, s.encode_to_vec())])), true);
    assert!(before.is_empty());
    assert_eq!((f.code, f.give_up, f.counts), (571, false, true));
    assert!(f.retry_in_ms > 0, "retried after the policy's delay: {f:?}");
}

#[test]
fn used_up_attempts_pause_by_default_and_the_sdk_may_ask_to_pause_or_fail() {
    // Why: Restate pauses an invocation whose retries are used up (on-max-attempts = pause),
    // so nothing is lost to a bug that a new deployment fixes; V7 SDKs choose per error.
    let mut cfg = config();
    cfg.retry.pause_on_max = true;
    let mut a = attempt();
    a.failures = ATTEMPTS_MAX - 1;
    let mut r = Run::start(cfg.clone(), &a);
    let (_, f, _) = failed(r.data(0, &frames(&[error(500, "boom", None)])), true);
    assert_eq!((f.pause, f.give_up, f.retry_in_ms), (true, false, 0));
    assert!(f.message.starts_with("invocation paused after"), "{}", f.message);
    let with_behavior = |b: pm::ErrorBehavior| {
        let m = pm::ErrorMessage {
            code: 500,
            message: "x".into(),
            stacktrace: String::new(),
            related_command_index: None,
            related_command_name: None,
            related_command_type: None,
            next_retry_delay: None,
            behavior: b as i32,
        };
        (MessageType::ERROR, m.encode_to_vec())
    };
    let mut r = Run::start(cfg.clone(), &attempt());
    let (_, f, _) = failed(r.data(0, &frames(&[with_behavior(pm::ErrorBehavior::Pause)])), true);
    assert_eq!((f.pause, f.give_up), (true, false));
    let mut r = Run::start(cfg, &attempt());
    let (_, f, _) = failed(r.data(0, &frames(&[with_behavior(pm::ErrorBehavior::Fail)])), true);
    assert_eq!((f.pause, f.give_up), (false, true));
}

#[test]
fn a_journal_mismatch_pauses_the_invocation() {
    // Why: replaying a journal that does not match the code fails the same way every time;
    // Restate pauses it (nothing of the diverging attempt is appended) until it is resumed.
    let mut r = Run::start(config(), &attempt());
    let (before, f, _) = failed(r.data(0, &frames(&[error(570, "journal mismatch", None)])), true);
    assert!(before.is_empty());
    assert_eq!((f.code, f.pause, f.give_up), (570, true, false));
}
