//! The protobuf messages of service protocol V5–V7 (package `dev.restate.service.protocol`),
//! written by hand as prost structs, and the table of message type ids.
//!
//! This module owns the wire schema: field numbers, field types and the id of every message.
//! It is pure data; what the server does with a message lives elsewhere.
//!
//! Invariants:
//! - Field numbers and types follow the protocol fact sheet exactly; a struct never carries a
//!   field the protocol does not define (unknown fields are skipped on decode, as proto3 does).
//! - Every notification id is encoded and decoded through the one [`Notification`] struct
//!   (the SDK decodes all notifications through the same template); the message id says
//!   which kind it is.
//! - A notification result is always a `oneof`, so a `Void` result is written explicitly as an
//!   empty sub-message at tag 4 (the SDK requires an id and a result to be present).
//! - Oneof and nested message fields are `Option`s: "absent" is distinguishable from "empty".

use bytes::Bytes;

// ---------------------------------------------------------------------------------------------
// Message type ids.

/// Namespace of message type ids (`MessageType::START`, ...). Not a value type: ids travel as
/// plain `u16` because custom ids (`0xFC00..=0xFFFF`) are open-ended.
#[derive(Debug)]
pub enum MessageType {}

impl MessageType {
    // Control messages.
    pub const START: u16 = 0x0000;
    pub const SUSPENSION: u16 = 0x0001;
    pub const ERROR: u16 = 0x0002;
    pub const END: u16 = 0x0003;
    pub const COMMAND_ACK: u16 = 0x0004;
    pub const PROPOSE_RUN_COMPLETION: u16 = 0x0005;
    pub const AWAITING_ON: u16 = 0x0006;
    pub const PROPOSE_RUN_COMPLETION_ACK: u16 = 0x0007;

    // Commands.
    pub const INPUT_COMMAND: u16 = 0x0400;
    pub const OUTPUT_COMMAND: u16 = 0x0401;
    pub const GET_LAZY_STATE_COMMAND: u16 = 0x0402;
    pub const SET_STATE_COMMAND: u16 = 0x0403;
    pub const CLEAR_STATE_COMMAND: u16 = 0x0404;
    pub const CLEAR_ALL_STATE_COMMAND: u16 = 0x0405;
    pub const GET_LAZY_STATE_KEYS_COMMAND: u16 = 0x0406;
    pub const GET_EAGER_STATE_COMMAND: u16 = 0x0407;
    pub const GET_EAGER_STATE_KEYS_COMMAND: u16 = 0x0408;
    pub const GET_PROMISE_COMMAND: u16 = 0x0409;
    pub const PEEK_PROMISE_COMMAND: u16 = 0x040A;
    pub const COMPLETE_PROMISE_COMMAND: u16 = 0x040B;
    pub const SLEEP_COMMAND: u16 = 0x040C;
    pub const CALL_COMMAND: u16 = 0x040D;
    pub const ONE_WAY_CALL_COMMAND: u16 = 0x040E;
    // 0x040F is unassigned.
    pub const SEND_SIGNAL_COMMAND: u16 = 0x0410;
    pub const RUN_COMMAND: u16 = 0x0411;
    pub const ATTACH_INVOCATION_COMMAND: u16 = 0x0412;
    pub const GET_INVOCATION_OUTPUT_COMMAND: u16 = 0x0413;
    pub const COMPLETE_AWAKEABLE_COMMAND: u16 = 0x0414;

    // Notifications.
    pub const GET_LAZY_STATE_COMPLETION: u16 = 0x8002;
    pub const GET_LAZY_STATE_KEYS_COMPLETION: u16 = 0x8006;
    pub const GET_PROMISE_COMPLETION: u16 = 0x8009;
    pub const PEEK_PROMISE_COMPLETION: u16 = 0x800A;
    pub const COMPLETE_PROMISE_COMPLETION: u16 = 0x800B;
    pub const SLEEP_COMPLETION: u16 = 0x800C;
    pub const CALL_COMPLETION: u16 = 0x800D;
    pub const CALL_INVOCATION_ID_COMPLETION: u16 = 0x800E;
    pub const RUN_COMPLETION: u16 = 0x8011;
    pub const ATTACH_INVOCATION_COMPLETION: u16 = 0x8012;
    pub const GET_INVOCATION_OUTPUT_COMPLETION: u16 = 0x8013;
    pub const SIGNAL_NOTIFICATION: u16 = 0xFBFF;
}

/// First id of the command namespace.
pub const COMMAND_ID_FIRST: u16 = 0x0400;
/// First id of the notification namespace.
pub const NOTIFICATION_ID_FIRST: u16 = 0x8000;
/// First id of the custom command namespace.
pub const CUSTOM_ID_FIRST: u16 = 0xFC00;
/// Ids with any of these bits set are entries (commands, notifications or custom entries).
pub const ENTRY_ID_MASK: u16 = 0xFC00;

const _: () = assert!(COMMAND_ID_FIRST == ENTRY_ID_MASK & 0x0400);
const _: () = assert!(NOTIFICATION_ID_FIRST > MessageType::COMPLETE_AWAKEABLE_COMMAND);
const _: () = assert!(CUSTOM_ID_FIRST > MessageType::SIGNAL_NOTIFICATION);

/// Every id this module knows, with the message name used by the protocol.
pub const MESSAGE_TYPES: &[(u16, &str)] = &[
    (MessageType::START, "StartMessage"),
    (MessageType::SUSPENSION, "SuspensionMessage"),
    (MessageType::ERROR, "ErrorMessage"),
    (MessageType::END, "EndMessage"),
    (MessageType::COMMAND_ACK, "CommandAckMessage"),
    (MessageType::PROPOSE_RUN_COMPLETION, "ProposeRunCompletionMessage"),
    (MessageType::AWAITING_ON, "AwaitingOnMessage"),
    (MessageType::PROPOSE_RUN_COMPLETION_ACK, "ProposeRunCompletionAckMessage"),
    (MessageType::INPUT_COMMAND, "InputCommandMessage"),
    (MessageType::OUTPUT_COMMAND, "OutputCommandMessage"),
    (MessageType::GET_LAZY_STATE_COMMAND, "GetLazyStateCommandMessage"),
    (MessageType::SET_STATE_COMMAND, "SetStateCommandMessage"),
    (MessageType::CLEAR_STATE_COMMAND, "ClearStateCommandMessage"),
    (MessageType::CLEAR_ALL_STATE_COMMAND, "ClearAllStateCommandMessage"),
    (MessageType::GET_LAZY_STATE_KEYS_COMMAND, "GetLazyStateKeysCommandMessage"),
    (MessageType::GET_EAGER_STATE_COMMAND, "GetEagerStateCommandMessage"),
    (MessageType::GET_EAGER_STATE_KEYS_COMMAND, "GetEagerStateKeysCommandMessage"),
    (MessageType::GET_PROMISE_COMMAND, "GetPromiseCommandMessage"),
    (MessageType::PEEK_PROMISE_COMMAND, "PeekPromiseCommandMessage"),
    (MessageType::COMPLETE_PROMISE_COMMAND, "CompletePromiseCommandMessage"),
    (MessageType::SLEEP_COMMAND, "SleepCommandMessage"),
    (MessageType::CALL_COMMAND, "CallCommandMessage"),
    (MessageType::ONE_WAY_CALL_COMMAND, "OneWayCallCommandMessage"),
    (MessageType::SEND_SIGNAL_COMMAND, "SendSignalCommandMessage"),
    (MessageType::RUN_COMMAND, "RunCommandMessage"),
    (MessageType::ATTACH_INVOCATION_COMMAND, "AttachInvocationCommandMessage"),
    (MessageType::GET_INVOCATION_OUTPUT_COMMAND, "GetInvocationOutputCommandMessage"),
    (MessageType::COMPLETE_AWAKEABLE_COMMAND, "CompleteAwakeableCommandMessage"),
    (MessageType::GET_LAZY_STATE_COMPLETION, "GetLazyStateCompletionNotificationMessage"),
    (MessageType::GET_LAZY_STATE_KEYS_COMPLETION, "GetLazyStateKeysCompletionNotificationMessage"),
    (MessageType::GET_PROMISE_COMPLETION, "GetPromiseCompletionNotificationMessage"),
    (MessageType::PEEK_PROMISE_COMPLETION, "PeekPromiseCompletionNotificationMessage"),
    (MessageType::COMPLETE_PROMISE_COMPLETION, "CompletePromiseCompletionNotificationMessage"),
    (MessageType::SLEEP_COMPLETION, "SleepCompletionNotificationMessage"),
    (MessageType::CALL_COMPLETION, "CallCompletionNotificationMessage"),
    (MessageType::CALL_INVOCATION_ID_COMPLETION, "CallInvocationIdCompletionNotificationMessage"),
    (MessageType::RUN_COMPLETION, "RunCompletionNotificationMessage"),
    (MessageType::ATTACH_INVOCATION_COMPLETION, "AttachInvocationCompletionNotificationMessage"),
    (
        MessageType::GET_INVOCATION_OUTPUT_COMPLETION,
        "GetInvocationOutputCompletionNotificationMessage",
    ),
    (MessageType::SIGNAL_NOTIFICATION, "SignalNotificationMessage"),
];

/// The protocol name of a known id, `None` for unknown (including custom) ids.
pub fn message_name(ty: u16) -> Option<&'static str> {
    MESSAGE_TYPES.iter().find(|(id, _)| *id == ty).map(|(_, name)| *name)
}

/// Whether `ty` is in the command namespace (`0x0400..=0x7FFF`) or the custom command
/// namespace (`0xFC00..=0xFFFF`); both are journaled as written by the SDK.
pub fn is_command(ty: u16) -> bool {
    (COMMAND_ID_FIRST..NOTIFICATION_ID_FIRST).contains(&ty) || ty >= CUSTOM_ID_FIRST
}

/// Whether `ty` is in the notification namespace (`0x8000..=0xFBFF`).
pub fn is_notification(ty: u16) -> bool {
    (NOTIFICATION_ID_FIRST..CUSTOM_ID_FIRST).contains(&ty)
}

/// Whether `ty` is a known notification id (one of the table's 12).
pub fn is_known_notification(ty: u16) -> bool {
    is_notification(ty) && message_name(ty).is_some()
}

// ---------------------------------------------------------------------------------------------
// Shared sub-messages.

/// A payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(bytes = "bytes", tag = "1")]
    pub content: Bytes,
}

/// The absence of a value (encoded as an empty message).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Void {}

/// A terminal failure.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Failure {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
    /// Since V6.
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<FailureMetadata>,
}

/// One key/value pair attached to a [`Failure`] (V6+).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FailureMetadata {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A request header passed to a handler.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A list of state keys.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateKeys {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub keys: Vec<Bytes>,
}

/// The run of a workflow, addressed by name and key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkflowTarget {
    #[prost(string, tag = "1")]
    pub workflow_name: String,
    #[prost(string, tag = "2")]
    pub workflow_key: String,
    /// Since V7.
    #[prost(string, optional, tag = "3")]
    pub scope: Option<String>,
}

/// An idempotent invocation, addressed by target and idempotency key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IdempotentRequestTarget {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(string, optional, tag = "2")]
    pub service_key: Option<String>,
    #[prost(string, tag = "3")]
    pub handler_name: String,
    #[prost(string, tag = "4")]
    pub idempotency_key: String,
    /// Since V7.
    #[prost(string, optional, tag = "5")]
    pub scope: Option<String>,
}

/// One eager state entry of a [`StartMessage`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct StateEntry {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// Built-in signal indexes (2–15 reserved, awakeables start at 17).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum BuiltInSignal {
    Unknown = 0,
    Cancel = 1,
}

// ---------------------------------------------------------------------------------------------
// Control messages.

/// 0x0000, server → SDK: first message of every attempt.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StartMessage {
    /// Raw invocation id (24 bytes: partition key BE ‖ uuid BE).
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    /// Printable invocation id (`inv_1…`).
    #[prost(string, tag = "2")]
    pub debug_id: String,
    /// Number of journal entries (commands + notifications) replayed after this message.
    #[prost(uint32, tag = "3")]
    pub known_entries: u32,
    #[prost(message, repeated, tag = "4")]
    pub state_map: Vec<StateEntry>,
    #[prost(bool, tag = "5")]
    pub partial_state: bool,
    #[prost(string, tag = "6")]
    pub key: String,
    #[prost(uint32, tag = "7")]
    pub retry_count_since_last_stored_entry: u32,
    /// Milliseconds.
    #[prost(uint64, tag = "8")]
    pub duration_since_last_stored_entry: u64,
    /// Since V6.
    #[prost(uint64, tag = "9")]
    pub random_seed: u64,
    /// Since V7.
    #[prost(string, optional, tag = "10")]
    pub scope: Option<String>,
    /// Since V7.
    #[prost(string, optional, tag = "11")]
    pub limit_key: Option<String>,
    /// Since V7.
    #[prost(string, optional, tag = "12")]
    pub idempotency_key: Option<String>,
}

/// 0x0001, SDK → server, terminal: the SDK waits for one of these.
///
/// V5/V6 use fields 1–3 (resume when any is available); V7 uses field 4 only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SuspensionMessage {
    #[prost(uint32, repeated, tag = "1")]
    pub waiting_completions: Vec<u32>,
    #[prost(uint32, repeated, tag = "2")]
    pub waiting_signals: Vec<u32>,
    #[prost(string, repeated, tag = "3")]
    pub waiting_named_signals: Vec<String>,
    /// Since V7.
    #[prost(message, optional, tag = "4")]
    pub awaiting_on: Option<Future>,
}

/// How the children of a [`Future`] node combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CombinatorType {
    /// Treated as first-completed.
    Unknown = 0,
    FirstCompleted = 1,
    AllCompleted = 2,
    FirstSucceededOrAllFailed = 3,
    AllSucceededOrFirstFailed = 4,
}

/// V7: a tree of awaited completions and signals.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Future {
    #[prost(uint32, repeated, tag = "1")]
    pub waiting_completions: Vec<u32>,
    #[prost(uint32, repeated, tag = "2")]
    pub waiting_signals: Vec<u32>,
    #[prost(string, repeated, tag = "3")]
    pub waiting_named_signals: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub nested_futures: Vec<Future>,
    #[prost(enumeration = "CombinatorType", tag = "5")]
    pub combinator_type: i32,
}

/// What the server should do after an [`ErrorMessage`] (V7; field was `bool should_pause`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorBehavior {
    Retry = 0,
    Pause = 1,
    Fail = 2,
}

/// 0x0002, SDK → server, terminal: the attempt failed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ErrorMessage {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(string, tag = "3")]
    pub stacktrace: String,
    #[prost(uint32, optional, tag = "4")]
    pub related_command_index: Option<u32>,
    #[prost(string, optional, tag = "5")]
    pub related_command_name: Option<String>,
    /// The message type id of the related command.
    #[prost(uint32, optional, tag = "6")]
    pub related_command_type: Option<u32>,
    /// Milliseconds; overrides the delay of the next retry only.
    #[prost(uint64, optional, tag = "8")]
    pub next_retry_delay: Option<u64>,
    /// Since V7.
    #[prost(enumeration = "ErrorBehavior", tag = "9")]
    pub behavior: i32,
}

/// 0x0003, SDK → server, terminal: the invocation finished.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct EndMessage {}

/// 0x0004, server → SDK. Defined for completeness; the SDKs cannot decode it, never send it.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct CommandAckMessage {
    #[prost(uint32, tag = "1")]
    pub command_index: u32,
}

/// Result of a [`ProposeRunCompletionMessage`]: note `value` is raw bytes here.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RunProposalResult {
    #[prost(bytes = "bytes", tag = "14")]
    Value(Bytes),
    #[prost(message, tag = "15")]
    Failure(Failure),
}

/// 0x0005, SDK → server: the result of a `ctx.run` closure.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProposeRunCompletionMessage {
    #[prost(uint32, tag = "1")]
    pub result_completion_id: u32,
    #[prost(oneof = "RunProposalResult", tags = "14, 15")]
    pub result: Option<RunProposalResult>,
}

/// 0x0006, SDK → server (V7): non-terminal hint of what the SDK is blocked on.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AwaitingOnMessage {
    #[prost(message, optional, tag = "1")]
    pub awaiting_on: Option<Future>,
    #[prost(bool, tag = "2")]
    pub executing_side_effects: bool,
}

/// 0x0007, server → SDK (V7): the proposal with this completion id is stored.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ProposeRunCompletionAckMessage {
    #[prost(uint32, tag = "1")]
    pub completion_id: u32,
}

// ---------------------------------------------------------------------------------------------
// Commands. Every command carries its observability name at tag 12.

/// 0x0400: journal entry 0, written by the server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InputCommandMessage {
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<Header>,
    #[prost(message, optional, tag = "14")]
    pub value: Option<Value>,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// Result of an [`OutputCommandMessage`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OutputResult {
    #[prost(message, tag = "14")]
    Value(Value),
    #[prost(message, tag = "15")]
    Failure(Failure),
}

/// 0x0401: the invocation's result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutputCommandMessage {
    #[prost(oneof = "OutputResult", tags = "14, 15")]
    pub result: Option<OutputResult>,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0402: read one state key from the server (→ 0x8002).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetLazyStateCommandMessage {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0403.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetStateCommandMessage {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "3")]
    pub value: Option<Value>,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0404.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClearStateCommandMessage {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0405.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClearAllStateCommandMessage {
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0406: list state keys from the server (→ 0x8006).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetLazyStateKeysCommandMessage {
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// Inline result of a [`GetEagerStateCommandMessage`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum EagerStateResult {
    #[prost(message, tag = "13")]
    Void(Void),
    #[prost(message, tag = "14")]
    Value(Value),
}

/// 0x0407: a state read answered from the eager state (result inline).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetEagerStateCommandMessage {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(oneof = "EagerStateResult", tags = "13, 14")]
    pub result: Option<EagerStateResult>,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0408: a keys listing answered from the eager state (result inline).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetEagerStateKeysCommandMessage {
    #[prost(message, optional, tag = "14")]
    pub value: Option<StateKeys>,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0409: wait for a durable promise (→ 0x8009).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPromiseCommandMessage {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x040A: look at a durable promise now (→ 0x800A).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeekPromiseCommandMessage {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// The value a [`CompletePromiseCommandMessage`] resolves the promise with.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PromiseCompletion {
    #[prost(message, tag = "2")]
    Value(Value),
    #[prost(message, tag = "3")]
    Failure(Failure),
}

/// 0x040B: resolve a durable promise (→ 0x800B).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompletePromiseCommandMessage {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(oneof = "PromiseCompletion", tags = "2, 3")]
    pub completion: Option<PromiseCompletion>,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x040C: a durable timer (→ 0x800C).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SleepCommandMessage {
    /// Absolute, milliseconds since the Unix epoch.
    #[prost(uint64, tag = "1")]
    pub wake_up_time: u64,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x040D: request-response call (→ 0x800E then 0x800D).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CallCommandMessage {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(string, tag = "2")]
    pub handler_name: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub parameter: Bytes,
    #[prost(message, repeated, tag = "4")]
    pub headers: Vec<Header>,
    #[prost(string, tag = "5")]
    pub key: String,
    #[prost(string, optional, tag = "6")]
    pub idempotency_key: Option<String>,
    /// Since V7.
    #[prost(string, optional, tag = "7")]
    pub scope: Option<String>,
    /// Since V7; requires `scope`.
    #[prost(string, optional, tag = "8")]
    pub limit_key: Option<String>,
    #[prost(uint32, tag = "10")]
    pub invocation_id_notification_idx: u32,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x040E: fire-and-forget call, maybe delayed (→ 0x800E).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OneWayCallCommandMessage {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(string, tag = "2")]
    pub handler_name: String,
    #[prost(bytes = "bytes", tag = "3")]
    pub parameter: Bytes,
    /// Milliseconds since the Unix epoch; 0 or past means now.
    #[prost(uint64, tag = "4")]
    pub invoke_time: u64,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    #[prost(string, tag = "6")]
    pub key: String,
    #[prost(string, optional, tag = "7")]
    pub idempotency_key: Option<String>,
    /// Since V7.
    #[prost(string, optional, tag = "8")]
    pub scope: Option<String>,
    /// Since V7; requires `scope`.
    #[prost(string, optional, tag = "9")]
    pub limit_key: Option<String>,
    #[prost(uint32, tag = "10")]
    pub invocation_id_notification_idx: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// Which signal a [`SendSignalCommandMessage`] sends.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SignalId {
    #[prost(uint32, tag = "2")]
    Idx(u32),
    #[prost(string, tag = "3")]
    Name(String),
}

/// The payload of a [`SendSignalCommandMessage`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum SignalResult {
    #[prost(message, tag = "4")]
    Void(Void),
    #[prost(message, tag = "5")]
    Value(Value),
    #[prost(message, tag = "6")]
    Failure(Failure),
}

/// 0x0410: deliver a signal to another invocation (idx 1 = cancel).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SendSignalCommandMessage {
    #[prost(string, tag = "1")]
    pub target_invocation_id: String,
    #[prost(oneof = "SignalId", tags = "2, 3")]
    pub signal_id: Option<SignalId>,
    #[prost(oneof = "SignalResult", tags = "4, 5, 6")]
    pub result: Option<SignalResult>,
    /// The observability name (this command calls it `entry_name`).
    #[prost(string, tag = "12")]
    pub entry_name: String,
}

/// 0x0411: a `ctx.run` side effect (→ 0x8011 via a proposal).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RunCommandMessage {
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// The invocation an attach / get-output command refers to.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum InvocationTarget {
    /// An `inv_1…` string.
    #[prost(string, tag = "1")]
    InvocationId(String),
    #[prost(message, tag = "3")]
    IdempotentRequest(IdempotentRequestTarget),
    #[prost(message, tag = "4")]
    Workflow(WorkflowTarget),
}

/// 0x0412: wait for another invocation's result (→ 0x8012).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttachInvocationCommandMessage {
    #[prost(oneof = "InvocationTarget", tags = "1, 3, 4")]
    pub target: Option<InvocationTarget>,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// 0x0413: another invocation's result if it has one now (→ 0x8013).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetInvocationOutputCommandMessage {
    #[prost(oneof = "InvocationTarget", tags = "1, 3, 4")]
    pub target: Option<InvocationTarget>,
    #[prost(uint32, tag = "11")]
    pub result_completion_id: u32,
    #[prost(string, tag = "12")]
    pub name: String,
}

/// The value an awakeable is resolved with.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AwakeableResult {
    #[prost(message, tag = "2")]
    Value(Value),
    #[prost(message, tag = "3")]
    Failure(Failure),
}

/// 0x0414: resolve an awakeable (a signal to its owner invocation).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompleteAwakeableCommandMessage {
    /// A `sign_1…` id (legacy `prom_1…` ids are possible from old SDKs).
    #[prost(string, tag = "1")]
    pub awakeable_id: String,
    #[prost(oneof = "AwakeableResult", tags = "2, 3")]
    pub result: Option<AwakeableResult>,
    #[prost(string, tag = "12")]
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// Notifications.

/// Which completion or signal a [`Notification`] is for.
#[derive(Clone, PartialEq, Eq, Hash, prost::Oneof)]
pub enum NotificationId {
    #[prost(uint32, tag = "1")]
    CompletionId(u32),
    #[prost(uint32, tag = "2")]
    SignalId(u32),
    #[prost(string, tag = "3")]
    SignalName(String),
}

/// The result a [`Notification`] carries. Which variants are allowed depends on the id.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NotificationResult {
    #[prost(message, tag = "4")]
    Void(Void),
    #[prost(message, tag = "5")]
    Value(Value),
    #[prost(message, tag = "6")]
    Failure(Failure),
    /// `inv_1…` string (0x800E only).
    #[prost(string, tag = "16")]
    InvocationId(String),
    /// 0x8006 only.
    #[prost(message, tag = "17")]
    StateKeys(StateKeys),
}

/// Every notification (0x8000..=0xFBFF) in the shared template shape; the message type id
/// says which kind it is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Notification {
    #[prost(oneof = "NotificationId", tags = "1, 2, 3")]
    pub id: Option<NotificationId>,
    #[prost(oneof = "NotificationResult", tags = "4, 5, 6, 16, 17")]
    pub result: Option<NotificationResult>,
}

impl Notification {
    /// A completion of the command that allocated `completion_id`.
    pub fn completion(completion_id: u32, result: NotificationResult) -> Self {
        Notification { id: Some(NotificationId::CompletionId(completion_id)), result: Some(result) }
    }

    /// A signal by index (1 = cancel, awakeables from 17).
    pub fn signal(signal_idx: u32, result: NotificationResult) -> Self {
        Notification { id: Some(NotificationId::SignalId(signal_idx)), result: Some(result) }
    }

    /// A named signal.
    pub fn named_signal(name: impl Into<String>, result: NotificationResult) -> Self {
        Notification { id: Some(NotificationId::SignalName(name.into())), result: Some(result) }
    }

    /// The cancel signal (index 1, void).
    pub fn cancel() -> Self {
        Notification::signal(BuiltInSignal::Cancel as u32, NotificationResult::Void(Void {}))
    }

    /// Turns a run proposal into the `RunCompletion` (0x8011) notification to store: the
    /// proposal's raw bytes (tag 14) become a `Value` (tag 5), its failure (tag 15) tag 6.
    /// `None` if the proposal carries no result.
    pub fn from_run_proposal(proposal: &ProposeRunCompletionMessage) -> Option<Self> {
        let result = match proposal.result.as_ref()? {
            RunProposalResult::Value(content) => {
                NotificationResult::Value(Value { content: content.clone() })
            }
            RunProposalResult::Failure(failure) => NotificationResult::Failure(failure.clone()),
        };
        Some(Notification::completion(proposal.result_completion_id, result))
    }
}

impl From<SignalResult> for NotificationResult {
    fn from(result: SignalResult) -> Self {
        match result {
            SignalResult::Void(v) => NotificationResult::Void(v),
            SignalResult::Value(v) => NotificationResult::Value(v),
            SignalResult::Failure(f) => NotificationResult::Failure(f),
        }
    }
}

impl From<AwakeableResult> for NotificationResult {
    fn from(result: AwakeableResult) -> Self {
        match result {
            AwakeableResult::Value(v) => NotificationResult::Value(v),
            AwakeableResult::Failure(f) => NotificationResult::Failure(f),
        }
    }
}

impl From<OutputResult> for NotificationResult {
    fn from(result: OutputResult) -> Self {
        match result {
            OutputResult::Value(v) => NotificationResult::Value(v),
            OutputResult::Failure(f) => NotificationResult::Failure(f),
        }
    }
}

impl From<PromiseCompletion> for NotificationResult {
    fn from(result: PromiseCompletion) -> Self {
        match result {
            PromiseCompletion::Value(v) => NotificationResult::Value(v),
            PromiseCompletion::Failure(f) => NotificationResult::Failure(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn table_has_unique_ids_and_consistent_namespaces() {
        for (i, (id, name)) in MESSAGE_TYPES.iter().enumerate() {
            assert!(MESSAGE_TYPES[i + 1..].iter().all(|(other, _)| other != id), "{name}");
            assert_eq!(name.ends_with("CommandMessage"), is_command(*id), "{name}");
            assert_eq!(name.ends_with("NotificationMessage"), is_notification(*id), "{name}");
        }
        assert_eq!(message_name(0x040F), None);
        assert!(is_command(0xFC00) && is_command(0xFFFF) && !is_notification(0xFC00));
        assert!(!is_command(0x0007) && !is_notification(0x0007));
    }

    #[test]
    fn void_notification_writes_tag_4_with_length_0() {
        let bytes = Notification::completion(1, NotificationResult::Void(Void {})).encode_to_vec();
        // Field 1 varint 1, then field 4 length-delimited with length 0.
        assert_eq!(bytes, vec![0x08, 0x01, 0x22, 0x00]);
    }

    #[test]
    fn run_proposal_transcodes_into_a_value_notification() {
        let proposal = ProposeRunCompletionMessage {
            result_completion_id: 3,
            result: Some(RunProposalResult::Value(Bytes::from_static(b"ok"))),
        };
        let notification = Notification::from_run_proposal(&proposal).unwrap();
        // completion_id = 3; field 5 (Value) containing field 1 bytes "ok".
        assert_eq!(
            notification.encode_to_vec(),
            vec![0x08, 0x03, 0x2A, 0x04, 0x0A, 0x02, b'o', b'k']
        );
    }
}
