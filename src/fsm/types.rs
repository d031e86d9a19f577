//! The state machine's vocabulary: the log records it applies, the invocation status it keeps,
//! and the actions it asks the effectful shell to perform.
//!
//! Records and statuses are protobuf (prost) messages so their encoding is stable and can grow
//! by adding fields; field numbers are never reused. Every record is self-contained: applying
//! it needs nothing but the store and the record (time comes from the log record header).

use bytes::Bytes;

use crate::protocol::ids::InvocationId;

/// One entry of a partition log. Its encoded bytes are what travels between nodes (see
/// `docs/log.md`): everything `apply` needs is in the body, nothing in the frame around it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    #[prost(message, optional, tag = "15")]
    pub header: Option<RecordHeader>,
    #[prost(oneof = "record::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16")]
    pub kind: Option<record::Kind>,
}

/// Who wrote a record, for fencing and de-duplication.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct RecordHeader {
    /// The partition's leader epoch the writer appended under. `apply` ignores the leader's own
    /// records (effects, timer firings, outbox truncations) whose epoch is below the highest
    /// epoch announced before them in the log.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// For deliveries from a partition's outbox: the producing partition's id + 1 (0: none).
    #[prost(uint32, tag = "2")]
    pub producer: u32,
    /// The delivery's outbox sequence number at the producer; a receiver applies each
    /// (producer, seq) once and in increasing order.
    #[prost(uint64, tag = "3")]
    pub producer_seq: u64,
}

pub mod record {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// A new invocation (from ingress, or a call/send of another invocation).
        #[prost(message, tag = "1")]
        Invoke(super::Invoke),
        /// Something an attempt of an invocation did (the invoker reports these).
        #[prost(message, tag = "2")]
        Effect(super::Effect),
        /// A durable timer fired.
        #[prost(message, tag = "3")]
        TimerFired(super::TimerFired),
        /// A callee finished: complete the caller's call.
        #[prost(message, tag = "4")]
        Response(super::InvocationResponse),
        /// A new leader took over the partition: records of older epochs are ignored.
        #[prost(message, tag = "5")]
        AnnounceLeader(super::AnnounceLeader),
        /// The shuffler delivered every outbox entry up to a sequence number durably.
        #[prost(message, tag = "6")]
        TruncateOutbox(super::TruncateOutbox),
        /// A signal for an invocation: an awakeable's completion, a named signal, or cancel
        /// (index 1).
        #[prost(message, tag = "7")]
        Signal(super::Signal),
        /// Someone waits for an invocation's result (attach) or asks for it now (output).
        #[prost(message, tag = "8")]
        Attach(super::Attach),
        /// End an invocation and the calls it waits on, without running handler code.
        #[prost(message, tag = "9")]
        Kill(super::Kill),
        /// Forget a completed invocation.
        #[prost(message, tag = "10")]
        Purge(super::Kill),
        /// Forget these completed invocations if their retention has passed by the record's
        /// time (the leader's retention pass found them).
        #[prost(message, tag = "11")]
        Expire(super::Expire),
        /// Stop a running or suspended invocation until it is resumed.
        #[prost(message, tag = "12")]
        Pause(super::Kill),
        /// Run a paused invocation again (or a retry now), optionally on another deployment.
        #[prost(message, tag = "13")]
        Resume(super::Resume),
        /// Start a completed invocation again under a new id, from a prefix of its journal.
        #[prost(message, tag = "14")]
        RestartAsNew(super::RestartAsNew),
        /// Replace a virtual object's (or workflow's) whole state, if it still has the
        /// version the asker saw (admin API `POST /services/{service}/state`). (15 is
        /// `Record.header`.)
        #[prost(message, tag = "16")]
        ModifyState(super::ModifyState),
    }
}

/// A workflow's durable promise: its result once completed, and who waits for it until then
/// (invocations of the same workflow key, so of this partition).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PromiseEntry {
    #[prost(message, optional, tag = "1")]
    pub outcome: Option<Outcome>,
    #[prost(message, repeated, tag = "2")]
    pub listeners: Vec<Caller>,
}

/// The built-in signal index of cancellation.
pub const SIGNAL_CANCEL: u32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Signal {
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    /// The signal index (1 = cancel, from 17 awakeables); 0 when `name` is set.
    #[prost(uint32, tag = "2")]
    pub index: u32,
    #[prost(string, tag = "3")]
    pub name: String,
    /// No result: void.
    #[prost(message, optional, tag = "4")]
    pub outcome: Option<Outcome>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Attach {
    /// The invocation whose result is wanted.
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    /// Who gets it.
    #[prost(message, optional, tag = "2")]
    pub sink: Option<Sink>,
    /// Answer now, with void while the invocation runs (get-output), instead of waiting.
    #[prost(bool, tag = "3")]
    pub now: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModifyState {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub key: String,
    /// The whole new state.
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<StateEntry>,
    /// The version (`fsm::state_version`) the current state must have; empty: replace
    /// whatever is there.
    #[prost(string, tag = "4")]
    pub version: String,
    /// Who hears whether the edit was taken (applied or queued) or refused; 0: nobody.
    #[prost(uint64, tag = "5")]
    pub ack_request: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StateEntry {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Expire {
    /// Completed invocations to forget if their retention has passed.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub invocation_ids: Vec<Bytes>,
    /// Retained blocks (`Table::Retained` keys) whose bucket has ended: their members are
    /// forgotten and the blocks deleted.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub retained_blocks: Vec<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RestartAsNew {
    /// The completed invocation.
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    /// The new invocation's id, chosen by whoever asked (same partition key).
    #[prost(bytes = "bytes", tag = "2")]
    pub new_invocation_id: Bytes,
    /// The last journal entry index kept (0: only the input).
    #[prost(uint32, tag = "3")]
    pub from: u32,
    /// Pin this deployment (empty or `latest`: choose anew; `keep`: the old one's).
    #[prost(string, tag = "4")]
    pub deployment_id: String,
    /// Who hears what apply decided (0: nobody): the new id's start, or why not.
    #[prost(uint64, tag = "5")]
    pub ack_request: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resume {
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    /// Pin this deployment instead (empty: keep the pinned one; `latest`: choose anew).
    #[prost(string, tag = "2")]
    pub deployment_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Kill {
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
}

#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct AnnounceLeader {
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct TruncateOutbox {
    /// Entries with a sequence number at or below this one are delivered.
    #[prost(uint64, tag = "1")]
    pub seq_through: u64,
}

/// A delivery waiting in the outbox: the record and the partition key it goes to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutboxEntry {
    #[prost(uint64, tag = "1")]
    pub partition_key: u64,
    /// Carries `header.producer` and `header.producer_seq`; the appender sets the epoch.
    #[prost(message, optional, tag = "2")]
    pub record: Option<Record>,
}

/// How a handler runs, resolved from the schema when the invocation is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum HandlerKind {
    Unspecified = 0,
    /// Plain service handler: no key, no state.
    Service = 1,
    /// Virtual object exclusive handler: one at a time per key, reads and writes state.
    Exclusive = 2,
    /// Virtual object or workflow shared handler: concurrent, reads state.
    Shared = 3,
    /// Workflow run handler: once per key, reads and writes state.
    WorkflowRun = 4,
}

impl HandlerKind {
    pub fn is_keyed(self) -> bool {
        !matches!(self, HandlerKind::Service | HandlerKind::Unspecified)
    }
    pub fn takes_lock(self) -> bool {
        matches!(self, HandlerKind::Exclusive | HandlerKind::WorkflowRun)
    }
    pub fn can_write_state(self) -> bool {
        self.takes_lock()
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Failure {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The result of an invocation or a call.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Outcome {
    #[prost(oneof = "outcome::Result", tags = "1, 2")]
    pub result: Option<outcome::Result>,
}

pub mod outcome {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Result {
        #[prost(bytes = "bytes", tag = "1")]
        Value(bytes::Bytes),
        #[prost(message, tag = "2")]
        Failure(super::Failure),
    }
}

/// Who waits for an invocation's result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sink {
    #[prost(oneof = "sink::Kind", tags = "1, 2")]
    pub kind: Option<sink::Kind>,
}

pub mod sink {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// An ingress request of this process generation waits (not durable across restarts:
        /// the HTTP connection is gone then anyway).
        #[prost(uint64, tag = "1")]
        Ingress(u64),
        /// Another invocation's call command waits.
        #[prost(message, tag = "2")]
        Caller(super::Caller),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Caller {
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    #[prost(uint32, tag = "2")]
    pub completion_id: u32,
    /// The notification the caller's journal gets (0: a call's result; else an attach's or a
    /// get-output's).
    #[prost(uint32, tag = "3")]
    pub notification_ty: u32,
    /// The caller's life (see `Status::life`): an answer for an earlier life is dropped.
    #[prost(uint64, tag = "4")]
    pub life: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Invoke {
    /// 24-byte raw invocation id.
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    #[prost(string, tag = "2")]
    pub service: String,
    #[prost(string, tag = "3")]
    pub handler: String,
    #[prost(string, tag = "4")]
    pub key: String,
    #[prost(enumeration = "HandlerKind", tag = "5")]
    pub kind: i32,
    #[prost(bytes = "bytes", tag = "6")]
    pub input: Bytes,
    #[prost(message, repeated, tag = "7")]
    pub headers: Vec<Header>,
    #[prost(message, optional, tag = "8")]
    pub sink: Option<Sink>,
    /// Run no earlier than this (ms since the Unix epoch); 0 = now.
    #[prost(uint64, tag = "9")]
    pub execute_at_ms: u64,
    /// Keep the completed invocation this long (0: forget it at once; unset: keep it).
    /// Decided from the schema by whoever made the record, so replay never consults it.
    #[prost(uint64, optional, tag = "10")]
    pub retention_ms: Option<u64>,
    /// An ingress request of this process generation waiting to hear whether this send
    /// created the invocation (`Accepted`) or found it (`PreviouslyAccepted`); 0: none.
    #[prost(uint64, tag = "11")]
    pub ack_request: u64,
    /// How long its journal is kept after it completes (unset or 0: dropped at completion).
    /// Kept journals go with the completed invocation when its retention ends.
    #[prost(uint64, optional, tag = "12")]
    pub journal_retention_ms: Option<u64>,
    /// The idempotency key it was made with (empty: none); the SDK sees it in `StartMessage`.
    #[prost(string, tag = "13")]
    pub idempotency_key: String,
    /// The invocation whose call or send created this one (empty: the ingress or the admin
    /// API). Kept in its status for introspection.
    #[prost(bytes = "bytes", tag = "14")]
    pub caller: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Effect {
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    /// The attempt that produced it; effects of an older attempt are ignored.
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
    #[prost(oneof = "effect::Kind", tags = "3, 4, 5, 6, 7, 8")]
    pub kind: Option<effect::Kind>,
    /// The life of the invocation the attempt ran for (see `Status::life`): attempt numbers
    /// start again at 1 in a new life, so the number alone cannot tell them apart.
    #[prost(uint64, tag = "9")]
    pub life: u64,
}

pub mod effect {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// The attempt chose a deployment and protocol version: pin them.
        #[prost(message, tag = "3")]
        Pin(super::Pin),
        /// A journal command sent by the SDK, stored verbatim.
        #[prost(message, tag = "4")]
        Command(super::Command),
        /// The result of a `ctx.run` closure.
        #[prost(message, tag = "5")]
        ProposeRun(super::ProposeRun),
        #[prost(message, tag = "6")]
        Suspended(super::Suspended),
        #[prost(message, tag = "7")]
        End(super::End),
        #[prost(message, tag = "8")]
        Failed(super::Failed),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Pin {
    #[prost(string, tag = "1")]
    pub deployment_id: String,
    #[prost(uint32, tag = "2")]
    pub protocol_version: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Command {
    /// Service-protocol message type id.
    #[prost(uint32, tag = "1")]
    pub ty: u32,
    /// The message payload exactly as the SDK sent it.
    #[prost(bytes = "bytes", tag = "2")]
    pub payload: Bytes,
    /// For calls and sends: the callee's handler kind, resolved by the invoker from the schema.
    #[prost(enumeration = "HandlerKind", tag = "3")]
    pub callee_kind: i32,
    /// For calls and sends: the callee's retention (see [`Invoke::retention_ms`]).
    #[prost(uint64, optional, tag = "4")]
    pub callee_retention_ms: Option<u64>,
    /// For calls and sends: the callee's journal retention (see
    /// [`Invoke::journal_retention_ms`]).
    #[prost(uint64, optional, tag = "5")]
    pub callee_journal_retention_ms: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProposeRun {
    #[prost(uint32, tag = "1")]
    pub completion_id: u32,
    #[prost(message, optional, tag = "2")]
    pub outcome: Option<Outcome>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Suspended {
    #[prost(uint32, repeated, tag = "1")]
    pub completions: Vec<u32>,
    #[prost(uint32, repeated, tag = "2")]
    pub signals: Vec<u32>,
    #[prost(string, repeated, tag = "3")]
    pub named_signals: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct End {}

/// An attempt failed. What happens next was decided once, by the invoker that saw the
/// failure, and is carried here: `apply` follows it and never consults a retry policy, so
/// replaying the log under another configuration reaches the same state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Failed {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
    /// The SDK asked for this delay before the next attempt (informational).
    #[prost(uint64, optional, tag = "3")]
    pub retry_after_ms: Option<u64>,
    /// Counts against the retry budget (false for setup failures on our side and for
    /// retries whose delay the SDK chose).
    #[prost(bool, tag = "4")]
    pub counts: bool,
    /// Start the next attempt after this delay (unless `give_up`).
    #[prost(uint64, tag = "5")]
    pub retry_in_ms: u64,
    /// No further attempt: the invocation completes with the failure `code` and `message`.
    #[prost(bool, tag = "6")]
    pub give_up: bool,
    /// No further attempt until resumed: the invocation is paused.
    #[prost(bool, tag = "7")]
    pub pause: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimerFired {
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    #[prost(uint32, tag = "2")]
    pub completion_id: u32,
    #[prost(uint64, tag = "3")]
    pub wake_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InvocationResponse {
    /// The caller to complete.
    #[prost(bytes = "bytes", tag = "1")]
    pub invocation_id: Bytes,
    #[prost(uint32, tag = "2")]
    pub completion_id: u32,
    #[prost(message, optional, tag = "3")]
    pub outcome: Option<Outcome>,
    /// The notification the caller's journal gets (0: a call's result).
    #[prost(uint32, tag = "4")]
    pub notification_ty: u32,
    /// The caller's life, from its `Caller` sink.
    #[prost(uint64, tag = "5")]
    pub life: u64,
}

/// Where an invocation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Phase {
    Unspecified = 0,
    /// Waiting for its execution time.
    Scheduled = 1,
    /// Waiting in a virtual object's queue for the key's lock.
    Inboxed = 2,
    /// An attempt is running or about to.
    Invoked = 3,
    /// Waiting for a completion or signal; no attempt runs.
    Suspended = 4,
    /// Finished; kept for its result.
    Completed = 5,
    /// Stopped after its retries were used up (or on request); runs again when resumed.
    Paused = 6,
}

/// Everything the state machine keeps about one invocation (besides its journal).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(enumeration = "Phase", tag = "1")]
    pub phase: i32,
    #[prost(string, tag = "2")]
    pub service: String,
    #[prost(string, tag = "3")]
    pub handler: String,
    #[prost(string, tag = "4")]
    pub key: String,
    #[prost(enumeration = "HandlerKind", tag = "5")]
    pub kind: i32,
    #[prost(message, repeated, tag = "6")]
    pub sinks: Vec<Sink>,
    /// Entries in the journal (commands and notifications).
    #[prost(uint32, tag = "7")]
    pub journal_len: u32,
    #[prost(uint32, tag = "8")]
    pub attempt: u32,
    #[prost(string, tag = "9")]
    pub deployment_id: String,
    #[prost(uint32, tag = "10")]
    pub protocol_version: u32,
    /// Failed attempts since the last stored command.
    #[prost(uint32, tag = "11")]
    pub retry_count: u32,
    #[prost(uint32, repeated, tag = "12")]
    pub waiting_completions: Vec<u32>,
    #[prost(uint32, repeated, tag = "13")]
    pub waiting_signals: Vec<u32>,
    #[prost(message, optional, tag = "14")]
    pub outcome: Option<Outcome>,
    #[prost(uint64, tag = "15")]
    pub created_ms: u64,
    #[prost(uint64, tag = "16")]
    pub modified_ms: u64,
    #[prost(uint64, tag = "17")]
    pub execute_at_ms: u64,
    /// Failed attempts in total (for the retry budget).
    #[prost(uint32, tag = "18")]
    pub failures: u32,
    #[prost(string, tag = "19")]
    pub last_failure: String,
    /// Completion ids whose notification is in the journal.
    #[prost(uint32, repeated, tag = "20")]
    pub completed_ids: Vec<u32>,
    /// The invocation's entry in the Runnable index while it is `Invoked` (0: none).
    #[prost(uint64, tag = "21")]
    pub runnable_seq: u64,
    /// The current attempt starts no earlier than this (retry backoff). Ms since the epoch.
    #[prost(uint64, tag = "22")]
    pub next_retry_at_ms: u64,
    /// Signal indexes whose notification is in the journal (the first completion of an
    /// awakeable wins; later ones are ignored).
    #[prost(uint32, repeated, tag = "23")]
    pub signals_received: Vec<u32>,
    /// Named signals a suspended invocation waits for.
    #[prost(string, repeated, tag = "24")]
    pub waiting_named_signals: Vec<String>,
    /// Names of the named signals whose notification is in the journal.
    #[prost(string, repeated, tag = "25")]
    pub named_signals_received: Vec<String>,
    /// From [`Invoke::retention_ms`].
    #[prost(uint64, optional, tag = "26")]
    pub retention_ms: Option<u64>,
    /// When completed and retained: when its retention ends (0: kept).
    #[prost(uint64, tag = "27")]
    pub purge_at_ms: u64,
    /// Which life of its id this is: the LSN of the record that created it. Workflow and
    /// idempotent ids are deterministic, so an id purged and created again is a new life;
    /// attempts' effects, timers and answers to its calls carry the life they belong to and
    /// are dropped when it is not the current one (0: created before lives existed).
    #[prost(uint64, tag = "28")]
    pub life: u64,
    /// See [`Invoke::journal_retention_ms`].
    #[prost(uint64, optional, tag = "29")]
    pub journal_retention_ms: Option<u64>,
    /// The invocation this one was restarted from (restart-as-new; empty: none).
    #[prost(bytes = "bytes", tag = "30")]
    pub restarted_from: Bytes,
    /// See [`Invoke::idempotency_key`].
    #[prost(string, tag = "31")]
    pub idempotency_key: String,
    /// Journal events stored for it (their sequence numbers are `0..events_len`).
    #[prost(uint32, tag = "32")]
    pub events_len: u32,
    /// The seed of the SDK's deterministic random (0: derived from the id). A restarted
    /// invocation keeps the old one's, so its replayed prefix draws the same numbers.
    #[prost(uint64, tag = "33")]
    pub random_seed: u64,
    /// Completed with its journal kept in its retained block (see `fsm::retained`), not in
    /// journal rows.
    #[prost(bool, tag = "34")]
    pub journal_archived: bool,
    /// Completed and retained: the LSN its completion was applied at, which with
    /// `purge_at_ms` names its retained block (`retained::block_key`).
    #[prost(uint64, tag = "35")]
    pub retained_lsn: u64,
    /// See [`Invoke::caller`] (empty: started by the ingress, the admin API or a restart).
    #[prost(bytes = "bytes", tag = "36")]
    pub invoked_by: Bytes,
}

/// Something that happened to an invocation outside its journal: Restate's journal events
/// (`sys_journal_events`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct JournalEvent {
    #[prost(enumeration = "JournalEventKind", tag = "1")]
    pub kind: i32,
    /// The journal entry it came after (the last one stored then).
    #[prost(uint32, tag = "2")]
    pub after_journal_entry_index: u32,
    /// When it first happened. Ms since the epoch.
    #[prost(uint64, tag = "3")]
    pub appended_at_ms: u64,
    #[prost(uint32, tag = "4")]
    pub code: u32,
    #[prost(string, tag = "5")]
    pub message: String,
    /// How many times in a row it happened (identical transient errors are one event).
    #[prost(uint32, tag = "6")]
    pub count: u32,
    /// When it last happened. Ms since the epoch.
    #[prost(uint64, tag = "7")]
    pub last_at_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum JournalEventKind {
    Unspecified = 0,
    /// An attempt failed and the invocation retries (or gives up).
    TransientError = 1,
    /// The invocation was paused (retries used up, a journal mismatch, or on request).
    Paused = 2,
}

/// What the shell must do after a record was applied (and its transaction committed).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// An attempt is due: the invoker loads it from the store when it has room.
    Invoke { id: InvocationId, life: u64, attempt: u32, not_before_ms: u64 },
    /// Send a notification to the open attempt (bidi streams), after it is durable. `index`
    /// is its position in the journal: an attempt that replayed it already skips it.
    Notify { id: InvocationId, life: u64, attempt: u32, index: u32, ty: u16, payload: Bytes },
    /// Stop a running attempt (its invocation ended or was superseded).
    Abort { id: InvocationId },
    /// Answer a waiting ingress request.
    IngressReply { request_id: u64, id: InvocationId, outcome: Outcome },
    /// Arm a durable timer (it is in the Timers table already).
    Timer { wake_ms: u64, id: InvocationId, completion_id: u32 },
    /// A delivery was written to the outbox with this sequence number.
    Outbox { seq: u64 },
    /// An invocation completed (for its trace span): when it was created and when it ended.
    Completed {
        id: InvocationId,
        service: String,
        handler: String,
        created_ms: u64,
        completed_ms: u64,
        /// The failure it ended with, if it failed.
        failure: Option<String>,
    },
}

/// Everything an attempt needs, read from the store when the invoker starts it.
#[derive(Clone, Debug, PartialEq)]
pub struct InvokeAttempt {
    pub id: InvocationId,
    /// The invocation's life (see `Status::life`), stamped on the attempt's effects.
    pub life: u64,
    pub attempt: u32,
    pub service: String,
    pub handler: String,
    pub key: String,
    pub kind: HandlerKind,
    /// Journal entries in order: (message type, payload).
    pub journal: Vec<(u16, Bytes)>,
    /// Eager state; `None` for services (no state).
    pub state: Option<Vec<(Bytes, Bytes)>>,
    /// The eager state is incomplete (over the size cap, or lazy): the SDK reads the rest.
    pub partial_state: bool,
    pub pinned: Option<(String, u32)>,
    /// Failed attempts since the last stored journal entry.
    pub retry_count: u32,
    /// Failed attempts counted against the retry budget.
    pub failures: u32,
    /// When the journal last changed. Ms since the epoch.
    pub modified_ms: u64,
    pub next_retry_at_ms: u64,
    pub random_seed: u64,
    /// The idempotency key it was made with (empty: none).
    pub idempotency_key: String,
}
