//! The deterministic state machine: `apply(store, record) -> actions`.
//!
//! Owns the meaning of every log record: invocation lifecycle (scheduled, inboxed, invoked,
//! suspended, completed), journals, object state, the per-key inbox and lock of virtual
//! objects, durable timers, the outbox of deliveries to other partitions (and to itself), the
//! de-duplication of deliveries received, leader epochs, and the size limits of everything
//! stored.
//!
//! Invariants:
//! - No I/O beyond the store transaction it is given, no clock (time is the record header's
//!   `now_ms`), no randomness, no configuration: the same records applied to the same store
//!   give the same store and the same actions, on every replay. Decisions that depend on
//!   policy (retry or give up, and when) arrive made, inside the records.
//! - A record that breaks a limit fails its *invocation* with a stable code
//!   ([`crate::codes`]); `apply` returns an error only when the store itself failed.
//! - The leader's own records (attempt effects, timer firings, outbox truncations) of a
//!   superseded leader epoch are ignored; a delivery `(producer, seq)` is applied at most
//!   once, and only if its `seq` is above every `seq` applied from that producer.
//! - Every delivery to another invocation goes through the outbox in the same transaction as
//!   the record that produced it; nothing here hands work to a task.
//! - Effects of a superseded attempt are ignored.
//! - At most one exclusive invocation holds a virtual object key; the others wait in its
//!   inbox in arrival order.
//! - An invocation is in the Runnable index exactly while its phase is `Invoked`.

pub mod limits;
pub mod restart;
pub mod retained;
pub mod storage;
pub mod types;

use bytes::Bytes;
use prost::Message;

use crate::codes::Code;
use crate::protocol::ids::{AwakeableId, InvocationId};
use crate::protocol::messages as pm;
use crate::store::StoreError;

pub use limits::Violation;
pub use storage::{load_attempt, FsmRead, FsmStore, InboxEntry};
pub use types::*;

/// What can stop `apply`.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The store failed. The processor reopens it and replays (a full disk) or stops the
    /// process (anything else); the record is applied again then.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The record cannot be applied (undecodable or inconsistent). The processor skips it,
    /// deterministically, with a warning.
    #[error("invalid record: {reason}")]
    Invalid { reason: String },
}

/// How a record was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Yes,
    /// Written under a leader epoch older than one announced before it.
    Superseded,
    /// A delivery already applied (or older than one applied) from the same producer.
    Duplicate,
}

/// The retry policy for failed attempts (Restate's defaults). Used by the invoker to decide;
/// the decision travels in the `Failed` record.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub initial_ms: u64,
    pub factor: f64,
    pub max_interval_ms: u64,
    /// Attempts including the first.
    pub attempts_max: u32,
    /// When the attempts are used up: pause (Restate's default) instead of failing.
    pub pause_on_max: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_ms: 500,
            factor: 2.0,
            max_interval_ms: 60_000,
            attempts_max: 70,
            pause_on_max: true,
        }
    }
}

impl RetryPolicy {
    /// Delay before the attempt that follows `failures` failed ones.
    pub fn delay_ms(&self, failures: u32) -> u64 {
        let exp = self.factor.powi(failures.saturating_sub(1).min(64) as i32);
        ((self.initial_ms as f64) * exp).min(self.max_interval_ms as f64) as u64
    }
}

/// Message types the state machine writes or inspects.
pub mod ty {
    pub const INPUT: u16 = 0x0400;
    pub const OUTPUT: u16 = 0x0401;
    pub const GET_LAZY_STATE: u16 = 0x0402;
    pub const SET_STATE: u16 = 0x0403;
    pub const CLEAR_STATE: u16 = 0x0404;
    pub const CLEAR_ALL_STATE: u16 = 0x0405;
    pub const GET_LAZY_STATE_KEYS: u16 = 0x0406;
    pub const GET_PROMISE: u16 = 0x0409;
    pub const PEEK_PROMISE: u16 = 0x040A;
    pub const COMPLETE_PROMISE: u16 = 0x040B;
    pub const SLEEP: u16 = 0x040C;
    pub const CALL: u16 = 0x040D;
    pub const ONE_WAY_CALL: u16 = 0x040E;
    pub const SEND_SIGNAL: u16 = 0x0410;
    pub const RUN: u16 = 0x0411;
    pub const ATTACH_INVOCATION: u16 = 0x0412;
    pub const GET_INVOCATION_OUTPUT: u16 = 0x0413;
    pub const COMPLETE_AWAKEABLE: u16 = 0x0414;
    pub const N_GET_LAZY_STATE: u16 = 0x8002;
    pub const N_GET_LAZY_STATE_KEYS: u16 = 0x8006;
    pub const N_GET_PROMISE: u16 = 0x8009;
    pub const N_PEEK_PROMISE: u16 = 0x800A;
    pub const N_COMPLETE_PROMISE: u16 = 0x800B;
    pub const N_SLEEP: u16 = 0x800C;
    pub const N_CALL: u16 = 0x800D;
    pub const N_CALL_INVOCATION_ID: u16 = 0x800E;
    pub const N_RUN: u16 = 0x8011;
    pub const N_ATTACH_INVOCATION: u16 = 0x8012;
    pub const N_GET_INVOCATION_OUTPUT: u16 = 0x8013;
    pub const N_SIGNAL: u16 = 0xFBFF;
}

/// The version of an object's state as Restate computes it (and the `restate` CLI, to edit
/// state): SHA-256 over the entries in key order, each as its index (u64 BE), `0x01`, key,
/// `0x02`, value, `0x03`; base64url without padding.
pub fn state_version(entries: &[(&[u8], &[u8])]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut sorted: Vec<&(&[u8], &[u8])> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = sha2::Sha256::new();
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        h.update((i as u64).to_be_bytes());
        h.update([1u8]);
        h.update(k);
        h.update([2u8]);
        h.update(v);
        h.update([3u8]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// What a send's `ack_request` hears: the invocation was created by it, or existed already.
pub const ACK_NEW: &[u8] = b"Accepted";
pub const ACK_PREVIOUSLY: &[u8] = b"PreviouslyAccepted";

/// `RestartAsNew.deployment_id` asking for the old invocation's deployment and protocol.
pub const RESTART_KEEP_DEPLOYMENT: &str = "keep";

/// A timer with this completion id starts a scheduled invocation instead of completing one.
pub const TIMER_START: u32 = 0;

/// The name of [`partition_key_of`]'s function, recorded in each data directory
/// (`metadata/node.json`), which then refuses to start under another.
pub const PARTITION_KEY_HASH: &str = "xxh3-64";

/// The partition key of an object or workflow key: xxh3 (64 bit, seed 0) of the key's bytes.
/// Not Restate's value: Restate hashes the key through Rust's `Hash` (the bytes, then `0xff`).
/// Frozen: partition keys are part of invocation ids and of every store key, so changing this
/// would move keys between partitions (see `docs/partitioning.md`).
pub fn partition_key_of(key: &str) -> u64 {
    // Changing this function needs a new `PARTITION_KEY_HASH`: data directories record it.
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The id of the invocation a call/send creates: a pure function of the caller, its life
/// (see `Status::life`) and the journal position, so re-applying the command yields the same
/// callee and a re-created caller id gets new ones.
pub fn callee_id(
    caller: &InvocationId,
    caller_life: u64,
    journal_index: u32,
    keyed_key: Option<&str>,
) -> InvocationId {
    // Life 0 (statuses from before lives) mixes nothing: their callees keep their ids.
    let life = if caller_life == 0 { 0 } else { mix64(caller_life ^ 0x6C69_6665) };
    let hi = mix64(caller.uuid as u64 ^ mix64(u64::from(journal_index) + 1) ^ life);
    let lo = mix64((caller.uuid >> 64) as u64 ^ hi ^ 0x9E37_79B9_7F4A_7C15);
    let partition_key = match keyed_key {
        Some(key) => partition_key_of(key),
        None => mix64(caller.partition_key ^ mix64(u64::from(journal_index) + 0x51)),
    };
    InvocationId { partition_key, uuid: (u128::from(hi) << 64) | u128::from(lo) }
}

/// A deterministic uuid over length-prefixed parts (xxh3-128). Frozen like the partition key:
/// workflow and idempotent invocation ids are on disk and in clients' hands.
fn uuid_of(tag: &[u8], parts: &[&[u8]]) -> u128 {
    let mut buf = Vec::with_capacity(tag.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    buf.extend_from_slice(tag);
    for p in parts {
        buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
        buf.extend_from_slice(p);
    }
    xxhash_rust::xxh3::xxh3_128(&buf)
}

/// The id of a workflow's `run` invocation: one per (workflow, key), so a second submission
/// finds the first.
pub fn workflow_id(service: &str, key: &str) -> InvocationId {
    InvocationId {
        partition_key: partition_key_of(key),
        uuid: uuid_of(b"wf", &[service.as_bytes(), key.as_bytes()]),
    }
}

/// The id of an invocation made with an idempotency key: one per (service, object key,
/// handler, idempotency key). Keyed invocations live with their object; others are placed by
/// the idempotency key.
pub fn idempotent_id(
    service: &str,
    key: Option<&str>,
    handler: &str,
    idempotency_key: &str,
) -> InvocationId {
    let partition_key = match key {
        Some(k) => partition_key_of(k),
        None => partition_key_of(idempotency_key),
    };
    let uuid = uuid_of(
        b"ik",
        &[
            service.as_bytes(),
            key.unwrap_or("").as_bytes(),
            &[u8::from(key.is_some())],
            handler.as_bytes(),
            idempotency_key.as_bytes(),
        ],
    );
    InvocationId { partition_key, uuid }
}

/// The id of a workflow or idempotent invocation (`id`) made in a flow-control scope: placed
/// by the scope. Ratchet runs no scoped invocations yet; this names where one would be.
pub fn scoped_id(id: InvocationId, scope: &str) -> InvocationId {
    InvocationId {
        partition_key: partition_key_of(scope),
        uuid: uuid_of(b"sc", &[scope.as_bytes(), &id.uuid.to_be_bytes()]),
    }
}

/// A journal event of kind `kind` happening now, after the last entry of `st`'s journal.
fn event(
    kind: JournalEventKind,
    st: &Status,
    code: u32,
    message: &str,
    now_ms: u64,
) -> JournalEvent {
    JournalEvent {
        kind: kind as i32,
        after_journal_entry_index: st.journal_len.saturating_sub(1),
        appended_at_ms: now_ms,
        code,
        message: cut(message, limits::JOURNAL_EVENT_MESSAGE_BYTES_MAX).to_string(),
        count: 1,
        last_at_ms: now_ms,
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether something stamped with life `theirs` is for the status of life `ours` (see
/// `Status::life`). [`Defect::LifeIgnored`](crate::defect::Defect::LifeIgnored) takes anything.
fn same_life(ours: u64, theirs: u64) -> bool {
    ours == theirs || crate::defect::active(crate::defect::Defect::LifeIgnored)
}

fn invalid(reason: impl Into<String>) -> ApplyError {
    ApplyError::Invalid { reason: reason.into() }
}

fn id_of(bytes: &[u8]) -> Result<InvocationId, ApplyError> {
    InvocationId::from_bytes(bytes).map_err(|e| invalid(format!("invocation id: {e}")))
}

fn decode<M: Message + Default>(what: &str, payload: &[u8]) -> Result<M, ApplyError> {
    M::decode(payload).map_err(|e| invalid(format!("{what}: {e}")))
}

/// Which notification of an invocation: a completion, a signal by index, or a named signal.
#[derive(Clone, Copy, Debug)]
enum Nid<'a> {
    Completion(u32),
    Signal(u32),
    Named(&'a str),
}

fn signal_notification(sig: &Signal) -> Bytes {
    let result = match &sig.outcome {
        Some(o) => outcome_result(o),
        None => pm::NotificationResult::Void(pm::Void {}),
    };
    let n = if sig.name.is_empty() {
        pm::Notification::signal(sig.index, result)
    } else {
        pm::Notification::named_signal(sig.name.clone(), result)
    };
    Bytes::from(n.encode_to_vec())
}

/// The outcome a signal carries (`None`: void).
fn signal_outcome(r: Option<pm::SignalResult>) -> Option<Outcome> {
    match r {
        None | Some(pm::SignalResult::Void(_)) => None,
        Some(pm::SignalResult::Value(v)) => {
            Some(Outcome { result: Some(outcome::Result::Value(v.content)) })
        }
        Some(pm::SignalResult::Failure(f)) => Some(failure_outcome(f.code, f.message)),
    }
}

fn awakeable_outcome(r: Option<pm::AwakeableResult>) -> Option<Outcome> {
    match r {
        None => None,
        Some(pm::AwakeableResult::Value(v)) => {
            Some(Outcome { result: Some(outcome::Result::Value(v.content)) })
        }
        Some(pm::AwakeableResult::Failure(f)) => Some(failure_outcome(f.code, f.message)),
    }
}

/// Awakeables created by SDKs have signal indexes from 17; lower ones are built-in signals
/// (1 is cancel) that an awakeable id must not reach.
pub const AWAKEABLE_INDEX_MIN: u32 = 17;

/// An awakeable id, checked: well-formed, and an awakeable's signal index.
pub fn parse_awakeable(id: &str) -> Result<AwakeableId, Violation> {
    let bad = |detail: String| Violation { code: Code::InvalidId, detail };
    let a: AwakeableId = id.parse().map_err(|e| bad(format!("bad awakeable id '{id}': {e}")))?;
    if a.signal_index < AWAKEABLE_INDEX_MIN {
        return Err(bad(format!(
            "bad awakeable id '{id}': signal index {} is not an awakeable's",
            a.signal_index
        )));
    }
    Ok(a)
}

/// The invocation an attach or get-output command targets: by id, by workflow key, or by
/// idempotency key.
pub fn attach_target(t: Option<&pm::InvocationTarget>) -> Result<InvocationId, Violation> {
    let bad = |detail: String| Violation { code: Code::InvalidId, detail };
    match t {
        Some(pm::InvocationTarget::InvocationId(s)) => {
            s.parse().map_err(|e| bad(format!("bad invocation id '{s}': {e}")))
        }
        Some(pm::InvocationTarget::Workflow(w)) => {
            Ok(workflow_id(&w.workflow_name, &w.workflow_key))
        }
        Some(pm::InvocationTarget::IdempotentRequest(r)) => Ok(idempotent_id(
            &r.service_name,
            r.service_key.as_deref(),
            &r.handler_name,
            &r.idempotency_key,
        )),
        None => Err(bad("attach or get-output without a target".into())),
    }
}

/// The answer to a waiter past [`limits::SINKS_MAX`]: retry later (nothing is attached).
fn too_many_waiters() -> Outcome {
    let code = Code::Overloaded;
    failure_outcome(
        u32::from(code.http_status()),
        crate::codes::message(
            code,
            format!("the invocation has {} waiters already; attach again later", limits::SINKS_MAX),
        ),
    )
}

fn notification(completion_id: u32, result: pm::NotificationResult) -> Bytes {
    pm::Notification::completion(completion_id, result).encode_to_vec().into()
}

fn outcome_result(o: &Outcome) -> pm::NotificationResult {
    match &o.result {
        Some(outcome::Result::Value(v)) => {
            pm::NotificationResult::Value(pm::Value { content: v.clone() })
        }
        Some(outcome::Result::Failure(f)) => pm::NotificationResult::Failure(pm::Failure {
            code: f.code,
            message: f.message.clone(),
            metadata: Vec::new(),
        }),
        None => pm::NotificationResult::Void(pm::Void {}),
    }
}

/// The outcome of an invocation that broke a limit.
pub fn violation_outcome(v: &Violation) -> Outcome {
    failure_outcome(u32::from(v.code.http_status()), v.to_string())
}

fn failure_outcome(code: u32, message: String) -> Outcome {
    Outcome { result: Some(outcome::Result::Failure(Failure { code, message })) }
}

/// A command `apply` acts on, decoded before anything is written.
enum Cmd {
    SetState(pm::SetStateCommandMessage),
    ClearState(pm::ClearStateCommandMessage),
    ClearAllState,
    GetLazyState(pm::GetLazyStateCommandMessage),
    GetLazyStateKeys(pm::GetLazyStateKeysCommandMessage),
    Sleep(pm::SleepCommandMessage),
    Call(pm::CallCommandMessage),
    Send(pm::OneWayCallCommandMessage),
    SendSignal(pm::SendSignalCommandMessage),
    CompleteAwakeable(pm::CompleteAwakeableCommandMessage),
    Attach(pm::AttachInvocationCommandMessage),
    GetOutput(pm::GetInvocationOutputCommandMessage),
    GetPromise(pm::GetPromiseCommandMessage),
    PeekPromise(pm::PeekPromiseCommandMessage),
    CompletePromise(pm::CompletePromiseCommandMessage),
    Other,
}

/// A call or send command, decoded.
struct Call<'a> {
    service: &'a str,
    handler: &'a str,
    key: &'a str,
    parameter: Bytes,
    headers: &'a [pm::Header],
    sink: Option<Sink>,
    execute_at_ms: u64,
    /// Completion id of the caller's invocation-id notification.
    id_notification: u32,
    idempotency_key: Option<&'a str>,
    retention_ms: Option<u64>,
    journal_retention_ms: Option<u64>,
}

/// What applying one batch of records produced: the actions to carry out once the batch's
/// transaction committed, and the retained-block members to write before it commits
/// ([`Fsm::finish`]).
#[derive(Debug, Default)]
pub struct Batch {
    pub actions: Vec<Action>,
    retained: retained::Pending,
    /// LSN of the record being applied.
    lsn: u64,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }
    fn push(&mut self, a: Action) {
        self.actions.push(a);
    }
}

/// The state machine of one partition. Stateless itself: everything lives in the store.
#[derive(Clone, Debug)]
pub struct Fsm {
    /// This partition's id: the producer id of its outbox entries is `partition + 1`.
    pub partition: u16,
    /// Only for [`Defect::RetryFromConfig`](crate::defect::Defect::RetryFromConfig): the
    /// configured policy a defective `apply` would consult.
    pub defect_retry: Option<RetryPolicy>,
}

impl Fsm {
    pub fn new(partition: u16) -> Fsm {
        Fsm { partition, defect_retry: None }
    }

    /// Writes what the batch's records left pending; call it once after the last `apply` of a
    /// batch, before its transaction commits.
    pub fn finish<S: FsmStore>(&self, s: &mut S, out: &mut Batch) -> Result<(), ApplyError> {
        out.retained.flush(s)?;
        Ok(())
    }

    /// Applies one record of a batch (see [`Fsm::finish`]). `lsn` is its position in the
    /// partition's log and `now_ms` its timestamp.
    pub fn apply<S: FsmStore>(
        &self,
        s: &mut S,
        record: &Record,
        lsn: u64,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<Applied, ApplyError> {
        out.lsn = lsn;
        let header = record.header.unwrap_or_default();
        let leader_epoch = s.leader_epoch()?;
        if let Some(record::Kind::AnnounceLeader(a)) = &record.kind {
            if a.epoch > leader_epoch {
                s.set_leader_epoch(a.epoch)?;
                return Ok(Applied::Yes);
            }
            return Ok(Applied::Superseded);
        }
        // Only the leader's own records are fenced by epoch: an ingress request or a delivery
        // that the log acknowledged was promised to its producer and must be applied.
        let leaders_own = matches!(
            record.kind,
            Some(
                record::Kind::Effect(_)
                    | record::Kind::TimerFired(_)
                    | record::Kind::TruncateOutbox(_)
                    | record::Kind::Expire(_)
            )
        );
        if leaders_own && header.epoch < leader_epoch {
            return Ok(Applied::Superseded);
        }
        if header.producer != 0 {
            if header.producer_seq <= s.dedup_seq(header.producer)? {
                return Ok(Applied::Duplicate);
            }
            s.set_dedup_seq(header.producer, header.producer_seq)?;
        }
        match &record.kind {
            Some(record::Kind::Invoke(inv)) => self.on_invoke(s, inv, lsn, now_ms, out)?,
            Some(record::Kind::Effect(e)) => self.on_effect(s, e, now_ms, out)?,
            Some(record::Kind::TimerFired(t)) => self.on_timer(s, t, now_ms, out)?,
            Some(record::Kind::Response(r)) => {
                let id = id_of(&r.invocation_id)?;
                // An answer to a call of an earlier life of a re-created id is not for this one.
                if let Some(mut st) = s.status(&id)?.filter(|st| same_life(st.life, r.life)) {
                    let default = Outcome::default();
                    let payload = notification(
                        r.completion_id,
                        outcome_result(r.outcome.as_ref().unwrap_or(&default)),
                    );
                    let t = match u16::try_from(r.notification_ty) {
                        Ok(0) => ty::N_CALL,
                        Ok(t @ (ty::N_ATTACH_INVOCATION | ty::N_GET_INVOCATION_OUTPUT)) => t,
                        _ => return Err(invalid("response with an unknown notification type")),
                    };
                    let nid = Nid::Completion(r.completion_id);
                    self.notify(s, &id, &mut st, t, payload, nid, now_ms, out)?;
                }
            }
            Some(record::Kind::Signal(sig)) => self.on_signal(s, sig, now_ms, out)?,
            Some(record::Kind::Attach(a)) => self.on_attach(s, a, out)?,
            Some(record::Kind::Kill(k)) => {
                let id = id_of(&k.invocation_id)?;
                self.kill(s, &id, now_ms, out)?;
            }
            Some(record::Kind::Expire(e)) => {
                for raw in &e.invocation_ids {
                    let id = id_of(raw)?;
                    if let Some(st) = s.status(&id)? {
                        if st.purge_at_ms != 0 && st.purge_at_ms <= now_ms {
                            self.purge(s, &id, &st)?;
                        }
                    }
                }
                // A block members of this batch were added to is written first, so what is
                // deleted here is all of it.
                out.retained.flush(s)?;
                for key in &e.retained_blocks {
                    self.expire_block(s, key, now_ms)?;
                }
            }
            Some(record::Kind::Pause(k)) => {
                let id = id_of(&k.invocation_id)?;
                if let Some(mut st) = s.status(&id)? {
                    if matches!(st.phase(), Phase::Invoked | Phase::Suspended) {
                        let ev =
                            event(JournalEventKind::Paused, &st, 0, "paused on request", now_ms);
                        self.record_event(s, &id, &mut st, ev)?;
                        out.push(Action::Abort { id });
                        self.leave_runnable(s, &id, &mut st)?;
                        st.phase = Phase::Paused as i32;
                        st.next_retry_at_ms = 0;
                        st.modified_ms = now_ms;
                        s.put_status(&id, &st)?;
                    }
                }
            }
            Some(record::Kind::Resume(r)) => {
                let id = id_of(&r.invocation_id)?;
                if let Some(mut st) = s.status(&id)? {
                    // A paused one runs again; a backing-off one retries now. A running
                    // attempt is left alone.
                    let backing_off = st.phase() == Phase::Invoked && st.next_retry_at_ms > now_ms;
                    if st.phase() == Phase::Paused || backing_off {
                        match r.deployment_id.as_str() {
                            "" => {}
                            "latest" => st.deployment_id.clear(),
                            d => st.deployment_id = d.to_string(),
                        }
                        // A fresh retry budget: whoever resumed it changed something.
                        st.failures = 0;
                        self.new_attempt(s, &id, &mut st, 0, now_ms, out)?;
                    }
                }
            }
            Some(record::Kind::Purge(k)) => {
                let id = id_of(&k.invocation_id)?;
                if let Some(st) = s.status(&id)? {
                    if st.phase() == Phase::Completed && st.purge_at_ms != 0 {
                        // Asked to forget it now: its journal leaves its block too (the
                        // member may still be pending in this batch).
                        out.retained.flush(s)?;
                        let key = retained::block_key(st.purge_at_ms, st.retained_lsn);
                        if let Some(v) = s.retained_value(&key)? {
                            let rest = retained::Block::decode(&v)?.without(&id, st.life)?;
                            match rest.members {
                                0 => s.retained_delete(&key)?,
                                _ => s.retained_put(&key, &rest.encode()?)?,
                            }
                        }
                    }
                    self.purge(s, &id, &st)?;
                }
            }
            Some(record::Kind::RestartAsNew(r)) => {
                // The journal it copies may be in a block this batch is still adding to.
                out.retained.flush(s)?;
                self.restart_as_new(s, r, lsn, now_ms, out)?
            }
            Some(record::Kind::ModifyState(m)) => self.modify_state(s, m, out)?,
            Some(record::Kind::TruncateOutbox(t)) => s.outbox_truncate(t.seq_through)?,
            Some(record::Kind::AnnounceLeader(_)) => {}
            None => return Err(invalid("empty record")),
        }
        Ok(Applied::Yes)
    }

    /// Writes a delivery to the outbox.
    fn deliver<S: FsmStore>(
        &self,
        s: &mut S,
        partition_key: u64,
        kind: record::Kind,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let seq = s.outbox_push(u32::from(self.partition) + 1, partition_key, kind)?;
        out.push(Action::Outbox { seq });
        Ok(())
    }

    fn on_invoke<S: FsmStore>(
        &self,
        s: &mut S,
        inv: &Invoke,
        lsn: u64,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let id = id_of(&inv.invocation_id)?;
        let existing = s.status(&id)?;
        if inv.ack_request != 0 {
            let status = if existing.is_some() { ACK_PREVIOUSLY } else { ACK_NEW };
            let outcome =
                Outcome { result: Some(outcome::Result::Value(Bytes::from_static(status))) };
            out.push(Action::IngressReply { request_id: inv.ack_request, id, outcome });
        }
        if let Some(mut st) = existing {
            // The same id again: a workflow submitted twice or an idempotent request repeated
            // (deliveries themselves are de-duplicated). A workflow runs once: a second call
            // of `run` fails; a repeated idempotent call gets the first one's result.
            if let Some(sink) = &inv.sink {
                if inv.kind == HandlerKind::WorkflowRun as i32 {
                    let o = failure_outcome(409, "the workflow method was already invoked".into());
                    self.answer(s, sink, &id, &o, out)?;
                } else if st.phase() == Phase::Completed {
                    let o = st.outcome.clone().unwrap_or_default();
                    self.answer(s, sink, &id, &o, out)?;
                } else if !st.sinks.contains(sink) {
                    if st.sinks.len() >= limits::SINKS_MAX {
                        return self.answer(s, sink, &id, &too_many_waiters(), out);
                    }
                    st.sinks.push(sink.clone());
                    s.put_status(&id, &st)?;
                }
            }
            return Ok(());
        }
        let kind = HandlerKind::try_from(inv.kind).unwrap_or(HandlerKind::Unspecified);
        if kind == HandlerKind::Unspecified {
            return Err(invalid("invoke without a handler kind"));
        }
        if let Err(v) = limits::check_object_key(&inv.key) {
            if crate::defect::active(crate::defect::Defect::LimitFailsPartition) {
                return Err(ApplyError::Store(StoreError::KeyTooLarge {
                    table: crate::store::Table::InvocationStatus,
                    bytes: inv.key.len(),
                    limit_bytes: limits::OBJECT_KEY_BYTES_MAX,
                }));
            }
            // Nothing is stored for it: answer its waiter with the failure.
            if let Some(sink) = &inv.sink {
                self.answer(s, sink, &id, &violation_outcome(&v), out)?;
            }
            return Ok(());
        }
        let mut st = Status {
            phase: Phase::Scheduled as i32,
            service: inv.service.clone(),
            handler: inv.handler.clone(),
            key: inv.key.clone(),
            kind: kind as i32,
            sinks: inv.sink.iter().cloned().collect(),
            created_ms: now_ms,
            modified_ms: now_ms,
            execute_at_ms: inv.execute_at_ms,
            retention_ms: inv.retention_ms,
            journal_retention_ms: inv.journal_retention_ms,
            idempotency_key: inv.idempotency_key.clone(),
            life: lsn.max(1),
            invoked_by: inv.caller.clone(),
            ..Status::default()
        };
        let input = pm::InputCommandMessage {
            headers: inv
                .headers
                .iter()
                .map(|h| pm::Header { key: h.key.clone(), value: h.value.clone() })
                .collect(),
            value: Some(pm::Value { content: inv.input.clone() }),
            name: String::new(),
        };
        s.journal_put(&id, 0, ty::INPUT, &input.encode_to_vec())?;
        s.created_put(&id, now_ms)?;
        st.journal_len = 1;
        if inv.execute_at_ms > now_ms {
            s.timer_put(inv.execute_at_ms, &id, TIMER_START, st.life)?;
            s.put_status(&id, &st)?;
            out.push(Action::Timer { wake_ms: inv.execute_at_ms, id, completion_id: TIMER_START });
            return Ok(());
        }
        self.start(s, &id, st, now_ms, out)
    }

    /// Takes the object lock (or queues in the inbox) and starts the first attempt.
    fn start<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        mut st: Status,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        if st.kind().takes_lock() {
            match s.lock(&st.service, &st.key)? {
                Some(holder) if holder != *id => {
                    if let Err(v) = limits::check_inbox_grows(s.inbox_len(&st.service, &st.key)?) {
                        return self.complete(s, id, st, violation_outcome(&v), now_ms, out);
                    }
                    st.phase = Phase::Inboxed as i32;
                    st.modified_ms = now_ms;
                    s.inbox_push(&st.service, &st.key, id, st.life)?;
                    s.put_status(id, &st)?;
                    return Ok(());
                }
                Some(_) => {}
                None => s.set_lock(&st.service, &st.key, id)?,
            }
        }
        self.new_attempt(s, id, &mut st, 0, now_ms, out)
    }

    fn new_attempt<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        st: &mut Status,
        delay_ms: u64,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        if st.runnable_seq == 0 {
            st.runnable_seq = s.runnable_push(id)?;
        }
        st.phase = Phase::Invoked as i32;
        st.attempt += 1;
        st.waiting_completions.clear();
        st.waiting_signals.clear();
        st.waiting_named_signals.clear();
        st.modified_ms = now_ms;
        st.next_retry_at_ms = if delay_ms > 0 { now_ms.saturating_add(delay_ms) } else { 0 };
        s.put_status(id, st)?;
        out.push(Action::Invoke {
            id: *id,
            life: st.life,
            attempt: st.attempt,
            not_before_ms: st.next_retry_at_ms,
        });
        Ok(())
    }

    /// Leaves the `Invoked` phase: the invocation is no longer runnable.
    fn leave_runnable<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        st: &mut Status,
    ) -> Result<(), ApplyError> {
        if st.runnable_seq != 0 {
            s.runnable_delete(st.runnable_seq, id)?;
            st.runnable_seq = 0;
        }
        Ok(())
    }

    fn on_effect<S: FsmStore>(
        &self,
        s: &mut S,
        e: &Effect,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let id = id_of(&e.invocation_id)?;
        let Some(mut st) = s.status(&id)? else { return Ok(()) };
        if st.phase() != Phase::Invoked || st.attempt != e.attempt || !same_life(st.life, e.life) {
            return Ok(()); // from a superseded attempt, or an earlier life of the id
        }
        st.modified_ms = now_ms;
        match &e.kind {
            None => Err(invalid("empty effect")),
            Some(effect::Kind::Pin(p)) => {
                // Unpinned, or a deployment chosen without a protocol version yet.
                if st.deployment_id.is_empty() || st.protocol_version == 0 {
                    st.deployment_id = p.deployment_id.clone();
                    st.protocol_version = p.protocol_version;
                    s.put_status(&id, &st)?;
                }
                Ok(())
            }
            Some(effect::Kind::Command(c)) => self.on_command(s, &id, st, c, now_ms, out),
            Some(effect::Kind::ProposeRun(p)) => {
                st.retry_count = 0;
                let default = Outcome::default();
                let payload = notification(
                    p.completion_id,
                    outcome_result(p.outcome.as_ref().unwrap_or(&default)),
                );
                let nid = Nid::Completion(p.completion_id);
                self.notify(s, &id, &mut st, ty::N_RUN, payload, nid, now_ms, out)
            }
            Some(effect::Kind::Suspended(w)) => {
                let ready = w.completions.iter().any(|c| st.completed_ids.contains(c))
                    || w.signals.iter().any(|i| st.signals_received.contains(i))
                    || w.named_signals.iter().any(|n| st.named_signals_received.contains(n));
                if ready
                    || (w.completions.is_empty()
                        && w.signals.is_empty()
                        && w.named_signals.is_empty())
                {
                    // Resuming early is always safe; an empty set would otherwise hang.
                    return self.new_attempt(s, &id, &mut st, 0, now_ms, out);
                }
                self.leave_runnable(s, &id, &mut st)?;
                st.phase = Phase::Suspended as i32;
                st.waiting_completions = w.completions.clone();
                st.waiting_signals = w.signals.clone();
                st.waiting_named_signals = w.named_signals.clone();
                s.put_status(&id, &st)?;
                Ok(())
            }
            Some(effect::Kind::End(_)) => {
                let outcome = self.output_of(s, &id)?;
                self.complete(s, &id, st, outcome, now_ms, out)
            }
            Some(effect::Kind::Failed(f)) => {
                if f.counts {
                    st.failures = st.failures.saturating_add(1);
                }
                st.retry_count = st.retry_count.saturating_add(1);
                st.last_failure = format!("[{}] {}", f.code, f.message);
                let ev = event(JournalEventKind::TransientError, &st, f.code, &f.message, now_ms);
                self.record_event(s, &id, &mut st, ev)?;
                if let (true, Some(p)) = (
                    crate::defect::active(crate::defect::Defect::RetryFromConfig),
                    &self.defect_retry,
                ) {
                    if st.failures >= p.attempts_max {
                        let outcome = failure_outcome(f.code, f.message.clone());
                        return self.complete(s, &id, st, outcome, now_ms, out);
                    }
                    let delay = p.delay_ms(st.failures);
                    return self.new_attempt(s, &id, &mut st, delay, now_ms, out);
                }
                if f.give_up {
                    let outcome = failure_outcome(f.code, f.message.clone());
                    return self.complete(s, &id, st, outcome, now_ms, out);
                }
                if f.pause {
                    let ev = event(JournalEventKind::Paused, &st, f.code, &f.message, now_ms);
                    self.record_event(s, &id, &mut st, ev)?;
                    self.leave_runnable(s, &id, &mut st)?;
                    st.phase = Phase::Paused as i32;
                    st.next_retry_at_ms = 0;
                    s.put_status(&id, &st)?;
                    return Ok(());
                }
                self.new_attempt(s, &id, &mut st, f.retry_in_ms, now_ms, out)
            }
        }
    }

    /// Fails an invocation whose record broke a limit, stopping its running attempt.
    fn fail_on_violation<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        st: Status,
        v: &Violation,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        if crate::defect::active(crate::defect::Defect::LimitFailsPartition) {
            return Err(ApplyError::Store(StoreError::KeyTooLarge {
                table: crate::store::Table::State,
                bytes: v.detail.len(),
                limit_bytes: 0,
            }));
        }
        out.push(Action::Abort { id: *id });
        self.complete(s, id, st, violation_outcome(v), now_ms, out)
    }

    fn on_command<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        mut st: Status,
        c: &Command,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let t = u16::try_from(c.ty).map_err(|_| invalid("command type out of range"))?;
        // Everything is decoded and checked before anything is written: a record that cannot
        // be applied is skipped whole.
        let cmd = match t {
            ty::SET_STATE => Cmd::SetState(decode("set state", &c.payload)?),
            ty::CLEAR_STATE => Cmd::ClearState(decode("clear state", &c.payload)?),
            ty::CLEAR_ALL_STATE => Cmd::ClearAllState,
            ty::GET_LAZY_STATE => Cmd::GetLazyState(decode("get lazy state", &c.payload)?),
            ty::GET_LAZY_STATE_KEYS => {
                Cmd::GetLazyStateKeys(decode("get lazy state keys", &c.payload)?)
            }
            ty::SLEEP => Cmd::Sleep(decode("sleep", &c.payload)?),
            ty::CALL => Cmd::Call(decode("call", &c.payload)?),
            ty::ONE_WAY_CALL => Cmd::Send(decode("send", &c.payload)?),
            ty::SEND_SIGNAL => Cmd::SendSignal(decode("send signal", &c.payload)?),
            ty::COMPLETE_AWAKEABLE => {
                Cmd::CompleteAwakeable(decode("complete awakeable", &c.payload)?)
            }
            ty::ATTACH_INVOCATION => Cmd::Attach(decode("attach invocation", &c.payload)?),
            ty::GET_INVOCATION_OUTPUT => {
                Cmd::GetOutput(decode("get invocation output", &c.payload)?)
            }
            ty::GET_PROMISE => Cmd::GetPromise(decode("get promise", &c.payload)?),
            ty::PEEK_PROMISE => Cmd::PeekPromise(decode("peek promise", &c.payload)?),
            ty::COMPLETE_PROMISE => Cmd::CompletePromise(decode("complete promise", &c.payload)?),
            // Output, Run, eager state reads, custom entries: journaled as they are.
            _ => Cmd::Other,
        };
        if matches!(cmd, Cmd::Call(_) | Cmd::Send(_))
            && HandlerKind::try_from(c.callee_kind).unwrap_or(HandlerKind::Unspecified)
                == HandlerKind::Unspecified
        {
            return Err(invalid("call or send without a resolved handler kind"));
        }
        let violation = limits::check_journal_grows(st.journal_len).err().or_else(|| match &cmd {
            Cmd::SetState(_) | Cmd::ClearState(_) | Cmd::ClearAllState
                if !st.kind().can_write_state() =>
            {
                Some(Violation {
                    code: Code::StateWriteNotAllowed,
                    detail: format!("handler {}/{} cannot write state", st.service, st.handler),
                })
            }
            Cmd::SetState(m) => limits::check_state_key(&st.service, &st.key, &m.key).err(),
            Cmd::ClearState(m) => limits::check_state_key(&st.service, &st.key, &m.key).err(),
            Cmd::GetLazyState(m) => limits::check_state_key(&st.service, &st.key, &m.key).err(),
            Cmd::Call(m) => limits::check_object_key(&m.key).err(),
            Cmd::Send(m) => limits::check_object_key(&m.key).err(),
            Cmd::SendSignal(m) => m
                .target_invocation_id
                .parse::<InvocationId>()
                .map_err(|e| Violation {
                    code: Code::InvalidId,
                    detail: format!("bad invocation id '{}': {e}", m.target_invocation_id),
                })
                .err(),
            Cmd::CompleteAwakeable(m) => parse_awakeable(&m.awakeable_id).err(),
            Cmd::Attach(m) => attach_target(m.target.as_ref()).err(),
            Cmd::GetOutput(m) => attach_target(m.target.as_ref()).err(),
            Cmd::GetPromise(pm::GetPromiseCommandMessage { key, .. })
            | Cmd::PeekPromise(pm::PeekPromiseCommandMessage { key, .. })
            | Cmd::CompletePromise(pm::CompletePromiseCommandMessage { key, .. }) => {
                limits::check_promise(&st, key).err()
            }
            _ => None,
        });
        if let Some(v) = violation {
            return self.fail_on_violation(s, id, st, &v, now_ms, out);
        }
        let index = st.journal_len;
        s.journal_put(id, index, t, &c.payload)?;
        st.journal_len += 1;
        st.retry_count = 0;
        match cmd {
            Cmd::SetState(m) => {
                let value = m.value.map(|v| v.content).unwrap_or_default();
                s.state_put(&st.service, &st.key, &m.key, &value)?;
            }
            Cmd::ClearState(m) => s.state_delete(&st.service, &st.key, &m.key)?,
            Cmd::ClearAllState => s.state_clear(&st.service, &st.key)?,
            Cmd::GetLazyState(m) => {
                let result = match s.state_get(&st.service, &st.key, &m.key)? {
                    Some(v) => pm::NotificationResult::Value(pm::Value { content: v.into() }),
                    None => pm::NotificationResult::Void(pm::Void {}),
                };
                let payload = notification(m.result_completion_id, result);
                return self.notify(
                    s,
                    id,
                    &mut st,
                    ty::N_GET_LAZY_STATE,
                    payload,
                    Nid::Completion(m.result_completion_id),
                    now_ms,
                    out,
                );
            }
            Cmd::GetLazyStateKeys(m) => {
                let (keys, more) =
                    s.state_keys(&st.service, &st.key, limits::STATE_KEYS_BYTES_MAX)?;
                if more {
                    let v = Violation {
                        code: Code::MessageTooLarge,
                        detail: format!(
                            "the object's state keys take more than {} bytes; list them in parts",
                            limits::STATE_KEYS_BYTES_MAX
                        ),
                    };
                    return self.fail_on_violation(s, id, st, &v, now_ms, out);
                }
                let payload = notification(
                    m.result_completion_id,
                    pm::NotificationResult::StateKeys(pm::StateKeys { keys }),
                );
                return self.notify(
                    s,
                    id,
                    &mut st,
                    ty::N_GET_LAZY_STATE_KEYS,
                    payload,
                    Nid::Completion(m.result_completion_id),
                    now_ms,
                    out,
                );
            }
            Cmd::Sleep(m) => {
                s.timer_put(m.wake_up_time, id, m.result_completion_id, st.life)?;
                out.push(Action::Timer {
                    wake_ms: m.wake_up_time,
                    id: *id,
                    completion_id: m.result_completion_id,
                });
            }
            Cmd::Call(m) => {
                let caller = Caller {
                    invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
                    completion_id: m.result_completion_id,
                    notification_ty: 0,
                    life: st.life,
                };
                let call = Call {
                    service: &m.service_name,
                    handler: &m.handler_name,
                    key: &m.key,
                    parameter: m.parameter.clone(),
                    headers: &m.headers,
                    sink: Some(Sink { kind: Some(sink::Kind::Caller(caller)) }),
                    execute_at_ms: 0,
                    id_notification: m.invocation_id_notification_idx,
                    idempotency_key: m.idempotency_key.as_deref().filter(|k| !k.is_empty()),
                    retention_ms: c.callee_retention_ms,
                    journal_retention_ms: c.callee_journal_retention_ms,
                };
                return self.call(s, id, &mut st, index, c.callee_kind, call, now_ms, out);
            }
            Cmd::Send(m) => {
                let call = Call {
                    service: &m.service_name,
                    handler: &m.handler_name,
                    key: &m.key,
                    parameter: m.parameter.clone(),
                    headers: &m.headers,
                    sink: None,
                    execute_at_ms: m.invoke_time,
                    id_notification: m.invocation_id_notification_idx,
                    idempotency_key: m.idempotency_key.as_deref().filter(|k| !k.is_empty()),
                    retention_ms: c.callee_retention_ms,
                    journal_retention_ms: c.callee_journal_retention_ms,
                };
                return self.call(s, id, &mut st, index, c.callee_kind, call, now_ms, out);
            }
            Cmd::SendSignal(m) => {
                let target: InvocationId = m
                    .target_invocation_id
                    .parse()
                    .map_err(|_| invalid("send signal to a malformed id"))?;
                let (index, name) = match m.signal_id {
                    Some(pm::SignalId::Idx(i)) => (i, String::new()),
                    Some(pm::SignalId::Name(n)) => (0, n),
                    None => return Err(invalid("send signal without a signal id")),
                };
                let sig = Signal {
                    invocation_id: Bytes::copy_from_slice(&target.to_bytes()),
                    index,
                    name,
                    outcome: signal_outcome(m.result),
                };
                self.deliver(s, target.partition_key, record::Kind::Signal(sig), out)?;
            }
            Cmd::CompleteAwakeable(m) => {
                let a = parse_awakeable(&m.awakeable_id).map_err(|v| invalid(v.detail))?;
                let sig = Signal {
                    invocation_id: Bytes::copy_from_slice(&a.invocation_id.to_bytes()),
                    index: a.signal_index,
                    name: String::new(),
                    outcome: awakeable_outcome(m.result),
                };
                let pk = a.invocation_id.partition_key;
                self.deliver(s, pk, record::Kind::Signal(sig), out)?;
            }
            Cmd::Attach(m) => {
                let target = attach_target(m.target.as_ref()).map_err(|v| invalid(v.detail))?;
                self.attach_from(s, (id, &st), target, m.result_completion_id, false, out)?;
            }
            Cmd::GetOutput(m) => {
                let target = attach_target(m.target.as_ref()).map_err(|v| invalid(v.detail))?;
                self.attach_from(s, (id, &st), target, m.result_completion_id, true, out)?;
            }
            Cmd::GetPromise(m) => {
                let mut p = s.promise(&st.service, &st.key, &m.key)?.unwrap_or_default();
                if let Some(o) = &p.outcome {
                    let payload = notification(m.result_completion_id, outcome_result(o));
                    let nid = Nid::Completion(m.result_completion_id);
                    return self.notify(
                        s,
                        id,
                        &mut st,
                        ty::N_GET_PROMISE,
                        payload,
                        nid,
                        now_ms,
                        out,
                    );
                }
                let me = Caller {
                    invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
                    completion_id: m.result_completion_id,
                    notification_ty: u32::from(ty::N_GET_PROMISE),
                    life: st.life,
                };
                if !p.listeners.contains(&me) {
                    p.listeners.push(me);
                }
                s.put_promise(&st.service, &st.key, &m.key, &p)?;
            }
            Cmd::PeekPromise(m) => {
                let p = s.promise(&st.service, &st.key, &m.key)?.unwrap_or_default();
                let result = match &p.outcome {
                    Some(o) => outcome_result(o),
                    None => pm::NotificationResult::Void(pm::Void {}),
                };
                let payload = notification(m.result_completion_id, result);
                let nid = Nid::Completion(m.result_completion_id);
                return self.notify(s, id, &mut st, ty::N_PEEK_PROMISE, payload, nid, now_ms, out);
            }
            Cmd::CompletePromise(m) => {
                let mut p = s.promise(&st.service, &st.key, &m.key)?.unwrap_or_default();
                let result = if p.outcome.is_some() {
                    pm::NotificationResult::Failure(pm::Failure {
                        code: 409,
                        message: "promise was already completed".into(),
                        metadata: Vec::new(),
                    })
                } else {
                    let o = match m.completion {
                        Some(pm::PromiseCompletion::Value(v)) => {
                            Outcome { result: Some(outcome::Result::Value(v.content)) }
                        }
                        Some(pm::PromiseCompletion::Failure(f)) => {
                            failure_outcome(f.code, f.message)
                        }
                        None => Outcome { result: Some(outcome::Result::Value(Bytes::new())) },
                    };
                    let listeners = std::mem::take(&mut p.listeners);
                    p.outcome = Some(o.clone());
                    s.put_promise(&st.service, &st.key, &m.key, &p)?;
                    // Waiters are invocations of this workflow key, so of this partition.
                    for l in listeners {
                        let Ok(lid) = InvocationId::from_bytes(&l.invocation_id) else { continue };
                        let payload = notification(l.completion_id, outcome_result(&o));
                        let nid = Nid::Completion(l.completion_id);
                        let t = ty::N_GET_PROMISE;
                        if lid == *id {
                            // It awaits the promise it completes: `st` is its status in hand.
                            self.notify(s, id, &mut st, t, payload, nid, now_ms, out)?;
                        } else if let Some(mut lst) = s.status(&lid)?.filter(|x| x.life == l.life) {
                            self.notify(s, &lid, &mut lst, t, payload, nid, now_ms, out)?;
                        }
                    }
                    pm::NotificationResult::Void(pm::Void {})
                };
                let payload = notification(m.result_completion_id, result);
                let nid = Nid::Completion(m.result_completion_id);
                return self.notify(
                    s,
                    id,
                    &mut st,
                    ty::N_COMPLETE_PROMISE,
                    payload,
                    nid,
                    now_ms,
                    out,
                );
            }
            Cmd::Other => {}
        }
        s.put_status(id, &st)?;
        Ok(())
    }

    /// Asks `target`'s partition for its result, to complete `completion_id` of `caller`
    /// (of life `caller_st.life`).
    fn attach_from<S: FsmStore>(
        &self,
        s: &mut S,
        (caller, caller_st): (&InvocationId, &Status),
        target: InvocationId,
        completion_id: u32,
        now: bool,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let notification_ty =
            u32::from(if now { ty::N_GET_INVOCATION_OUTPUT } else { ty::N_ATTACH_INVOCATION });
        let sink = Sink {
            kind: Some(sink::Kind::Caller(Caller {
                invocation_id: Bytes::copy_from_slice(&caller.to_bytes()),
                completion_id,
                notification_ty,
                life: caller_st.life,
            })),
        };
        let a = Attach {
            invocation_id: Bytes::copy_from_slice(&target.to_bytes()),
            sink: Some(sink),
            now,
        };
        self.deliver(s, target.partition_key, record::Kind::Attach(a), out)
    }

    /// A signal reached its invocation: cancel ends one that has not started; otherwise the
    /// signal joins the journal (once per index: an awakeable's first completion wins).
    fn on_signal<S: FsmStore>(
        &self,
        s: &mut S,
        sig: &Signal,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let id = id_of(&sig.invocation_id)?;
        let Some(mut st) = s.status(&id)? else { return Ok(()) };
        if sig.name.is_empty() && sig.index == 0 {
            return Err(invalid("signal without an index or a name"));
        }
        match st.phase() {
            Phase::Completed => Ok(()),
            Phase::Scheduled | Phase::Inboxed
                if sig.name.is_empty() && sig.index == SIGNAL_CANCEL =>
            {
                self.complete(s, &id, st, failure_outcome(409, "canceled".into()), now_ms, out)
            }
            _ => {
                let payload = signal_notification(sig);
                let nid = if sig.name.is_empty() {
                    Nid::Signal(sig.index)
                } else {
                    Nid::Named(&sig.name)
                };
                self.notify(s, &id, &mut st, ty::N_SIGNAL, payload, nid, now_ms, out)
            }
        }
    }

    /// Someone wants an invocation's result: now (get-output: void while it runs) or when it
    /// ends (attach). An unknown invocation answers 404.
    fn on_attach<S: FsmStore>(
        &self,
        s: &mut S,
        a: &Attach,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let id = id_of(&a.invocation_id)?;
        let Some(sink) = &a.sink else { return Err(invalid("attach without a sink")) };
        match s.status(&id)? {
            None => self.answer(s, sink, &id, &failure_outcome(404, "not found".into()), out),
            Some(st) if st.phase() == Phase::Completed => {
                let o = st.outcome.clone().unwrap_or_default();
                self.answer(s, sink, &id, &o, out)
            }
            Some(_) if a.now => self.answer(s, sink, &id, &Outcome::default(), out),
            Some(mut st) => {
                if !st.sinks.contains(sink) {
                    if st.sinks.len() >= limits::SINKS_MAX {
                        return self.answer(s, sink, &id, &too_many_waiters(), out);
                    }
                    st.sinks.push(sink.clone());
                    s.put_status(&id, &st)?;
                }
                Ok(())
            }
        }
    }

    /// Ends an invocation without running its handler again, and kills the calls it waits
    /// on (not its one-way sends).
    fn kill<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let Some(st) = s.status(id)? else { return Ok(()) };
        if st.phase() == Phase::Completed {
            return Ok(());
        }
        // Calls whose result is not in the journal yet: their invocation ids came back in
        // invocation-id notifications.
        let mut pending: Vec<u32> = Vec::new();
        let mut ids: Vec<(u32, String)> = Vec::new();
        for (t, payload) in s.journal(id, st.journal_len)? {
            match t {
                ty::CALL => {
                    if let Ok(m) = pm::CallCommandMessage::decode(payload) {
                        if !st.completed_ids.contains(&m.result_completion_id) {
                            pending.push(m.invocation_id_notification_idx);
                        }
                    }
                }
                ty::N_CALL_INVOCATION_ID => {
                    if let Ok(n) = pm::Notification::decode(payload) {
                        if let (
                            Some(pm::NotificationId::CompletionId(c)),
                            Some(pm::NotificationResult::InvocationId(callee)),
                        ) = (n.id, n.result)
                        {
                            ids.push((c, callee));
                        }
                    }
                }
                _ => {}
            }
        }
        for (c, callee) in ids {
            if !pending.contains(&c) {
                continue;
            }
            if let Ok(callee) = callee.parse::<InvocationId>() {
                let k = Kill { invocation_id: Bytes::copy_from_slice(&callee.to_bytes()) };
                self.deliver(s, callee.partition_key, record::Kind::Kill(k), out)?;
            }
        }
        out.push(Action::Abort { id: *id });
        self.complete(s, id, st, failure_outcome(409, "killed".into()), now_ms, out)
    }

    /// Creates the callee of a call or send (a delivery through the outbox) and completes the
    /// caller's invocation-id notification.
    #[allow(clippy::too_many_arguments)]
    fn call<S: FsmStore>(
        &self,
        s: &mut S,
        caller: &InvocationId,
        st: &mut Status,
        index: u32,
        callee_kind: i32,
        call: Call<'_>,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let kind = HandlerKind::try_from(callee_kind).unwrap_or(HandlerKind::Unspecified);
        if kind == HandlerKind::Unspecified {
            return Err(invalid(format!(
                "call to {}/{} without a resolved handler kind",
                call.service, call.handler
            )));
        }
        let keyed = kind.is_keyed().then_some(call.key);
        let callee = match (call.idempotency_key, kind) {
            (_, HandlerKind::WorkflowRun) => workflow_id(call.service, call.key),
            (Some(ik), _) => idempotent_id(call.service, keyed, call.handler, ik),
            (None, _) => callee_id(caller, st.life, index, keyed),
        };
        let invoke = Invoke {
            invocation_id: Bytes::copy_from_slice(&callee.to_bytes()),
            service: call.service.to_string(),
            handler: call.handler.to_string(),
            key: if kind.is_keyed() { call.key.to_string() } else { String::new() },
            kind: kind as i32,
            input: call.parameter,
            headers: call
                .headers
                .iter()
                .map(|h| Header { key: h.key.clone(), value: h.value.clone() })
                .collect(),
            sink: call.sink,
            execute_at_ms: call.execute_at_ms,
            retention_ms: call.retention_ms,
            ack_request: 0,
            journal_retention_ms: call.journal_retention_ms,
            idempotency_key: call.idempotency_key.unwrap_or_default().to_string(),
            caller: Bytes::copy_from_slice(&caller.to_bytes()),
        };
        self.deliver(s, callee.partition_key, record::Kind::Invoke(invoke), out)?;
        let payload = notification(
            call.id_notification,
            pm::NotificationResult::InvocationId(callee.to_string()),
        );
        self.notify(
            s,
            caller,
            st,
            ty::N_CALL_INVOCATION_ID,
            payload,
            Nid::Completion(call.id_notification),
            now_ms,
            out,
        )
    }

    /// Appends a notification to the journal, forwards it to a running attempt, or resumes a
    /// suspended invocation waiting for it. Ignores a completion id or signal index already
    /// present (named signals queue).
    #[allow(clippy::too_many_arguments)]
    fn notify<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        st: &mut Status,
        t: u16,
        payload: Bytes,
        nid: Nid<'_>,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let seen = match nid {
            Nid::Completion(c) => st.completed_ids.contains(&c),
            Nid::Signal(i) => {
                st.signals_received.contains(&i)
                    && !crate::defect::active(crate::defect::Defect::SignalTakenTwice)
            }
            Nid::Named(_) => false,
        };
        if st.phase() == Phase::Completed || seen {
            s.put_status(id, st)?;
            return Ok(());
        }
        if let Err(v) = limits::check_journal_grows(st.journal_len) {
            return self.fail_on_violation(s, id, st.clone(), &v, now_ms, out);
        }
        let index = st.journal_len;
        s.journal_put(id, index, t, &payload)?;
        st.journal_len += 1;
        let awaited = match nid {
            Nid::Completion(c) => {
                st.completed_ids.push(c);
                st.waiting_completions.contains(&c)
            }
            Nid::Signal(i) => {
                st.signals_received.push(i);
                st.waiting_signals.contains(&i)
            }
            Nid::Named(n) => {
                if !st.named_signals_received.iter().any(|x| x == n) {
                    st.named_signals_received.push(n.to_string());
                }
                st.waiting_named_signals.iter().any(|x| x == n)
            }
        };
        st.modified_ms = now_ms;
        match st.phase() {
            Phase::Invoked => {
                s.put_status(id, st)?;
                let (life, attempt) = (st.life, st.attempt);
                out.push(Action::Notify { id: *id, life, attempt, index, ty: t, payload });
                Ok(())
            }
            Phase::Suspended if awaited => self.new_attempt(s, id, st, 0, now_ms, out),
            _ => {
                s.put_status(id, st)?;
                Ok(())
            }
        }
    }

    fn on_timer<S: FsmStore>(
        &self,
        s: &mut S,
        t: &TimerFired,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let id = id_of(&t.invocation_id)?;
        let Some(life) = s.timer_delete(t.wake_ms, &id, t.completion_id)? else {
            return Ok(()); // fired already
        };
        // A timer of an earlier life of a re-created id (its sleep died with it).
        let Some(mut st) = s.status(&id)?.filter(|st| same_life(st.life, life)) else {
            return Ok(());
        };
        if t.completion_id == TIMER_START {
            if st.phase() == Phase::Scheduled {
                return self.start(s, &id, st, now_ms, out);
            }
            return Ok(());
        }
        let payload = notification(t.completion_id, pm::NotificationResult::Void(pm::Void {}));
        let nid = Nid::Completion(t.completion_id);
        self.notify(s, &id, &mut st, ty::N_SLEEP, payload, nid, now_ms, out)
    }

    /// The result of an ended invocation: its last output command.
    fn output_of<S: FsmRead>(&self, s: &S, id: &InvocationId) -> Result<Outcome, ApplyError> {
        let Some(payload) = s.journal_last_of(id, ty::OUTPUT)? else {
            return Ok(failure_outcome(500, "the handler ended without an output".into()));
        };
        let m: pm::OutputCommandMessage = decode("output", &payload)?;
        Ok(Outcome {
            result: Some(match m.result {
                Some(pm::OutputResult::Value(v)) => outcome::Result::Value(v.content),
                Some(pm::OutputResult::Failure(f)) => {
                    outcome::Result::Failure(Failure { code: f.code, message: f.message })
                }
                None => outcome::Result::Value(Bytes::new()),
            }),
        })
    }

    fn answer<S: FsmStore>(
        &self,
        s: &mut S,
        sink: &Sink,
        id: &InvocationId,
        outcome: &Outcome,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        match &sink.kind {
            Some(sink::Kind::Ingress(request_id)) => out.push(Action::IngressReply {
                request_id: *request_id,
                id: *id,
                outcome: outcome.clone(),
            }),
            Some(sink::Kind::Caller(c)) => {
                if let Ok(caller) = InvocationId::from_bytes(&c.invocation_id) {
                    let response = InvocationResponse {
                        invocation_id: c.invocation_id.clone(),
                        completion_id: c.completion_id,
                        outcome: Some(outcome.clone()),
                        notification_ty: c.notification_ty,
                        life: c.life,
                    };
                    self.deliver(s, caller.partition_key, record::Kind::Response(response), out)?;
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Starts a completed invocation again under a new id from a prefix of its journal. The
    /// admin API checked the request; anything that changed since (purged, or the new id
    /// taken) makes this a no-op.
    fn restart_as_new<S: FsmStore>(
        &self,
        s: &mut S,
        r: &RestartAsNew,
        lsn: u64,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        let (old_id, new_id) = (id_of(&r.invocation_id)?, id_of(&r.new_invocation_id)?);
        if old_id.partition_key != new_id.partition_key {
            return Err(invalid("restart-as-new into another partition"));
        }
        // Whoever asked hears the outcome: the admin API checked, but things may have changed
        // since (purged by retention, say).
        let refuse = |out: &mut Batch, code: u32, message: String| {
            if r.ack_request != 0 {
                let outcome = failure_outcome(code, message);
                out.push(Action::IngressReply { request_id: r.ack_request, id: old_id, outcome });
            }
            Ok(())
        };
        let Some(old) = s.status(&old_id)? else {
            return refuse(out, 404, format!("invocation {old_id} not found"));
        };
        if old.phase() != Phase::Completed || old.journal_len == 0 {
            let m = format!("invocation {old_id} is not completed with its journal kept");
            return refuse(out, 409, m);
        }
        if old.kind() == HandlerKind::WorkflowRun || s.status(&new_id)?.is_some() {
            return refuse(
                out,
                409,
                format!("invocation {old_id} cannot be restarted as {new_id}"),
            );
        }
        let plan = match restart::plan(old.journal_len, r.from, |at, n| {
            s.journal_page_of(&old_id, &old, at, n)
        })? {
            Ok(plan) => plan,
            Err(e) => return refuse(out, 400, e.to_string()),
        };
        // Copied page by page: entries 0..=from, then the later completions they wait for.
        let pages = (0..=plan.from)
            .step_by(restart::PAGE_ENTRIES as usize)
            .map(|at| (at, restart::PAGE_ENTRIES.min(plan.from + 1 - at)))
            .chain(plan.extra.iter().map(|&i| (i, 1)));
        let mut received = Default::default();
        let mut index = 0u32;
        for (at, n) in pages {
            let entries = s.journal_page_of(&old_id, &old, at, n)?;
            restart::received(&entries, &mut received);
            for (t, payload) in &entries {
                s.journal_put(&new_id, index, *t, payload)?;
                index += 1;
            }
        }
        let (completed_ids, signals_received, named_signals_received) = received;
        // The kept entries were written under the old protocol version: a chosen deployment
        // runs them under it (the admin API checked that it can); `latest` negotiates anew.
        let (deployment_id, protocol_version) = match r.deployment_id.as_str() {
            RESTART_KEEP_DEPLOYMENT => (old.deployment_id.clone(), old.protocol_version),
            "" | "latest" => (String::new(), 0),
            d => (d.to_string(), old.protocol_version),
        };
        let random_seed = match old.random_seed {
            0 => crate::protocol::ids::random_seed(&old_id),
            seed => seed,
        };
        let st = Status {
            phase: Phase::Scheduled as i32,
            service: old.service.clone(),
            handler: old.handler.clone(),
            key: old.key.clone(),
            kind: old.kind,
            journal_len: index,
            deployment_id,
            protocol_version,
            created_ms: now_ms,
            modified_ms: now_ms,
            completed_ids,
            signals_received,
            named_signals_received,
            retention_ms: old.retention_ms,
            journal_retention_ms: old.journal_retention_ms,
            life: lsn.max(1),
            restarted_from: r.invocation_id.clone(),
            random_seed,
            ..Status::default()
        };
        if r.ack_request != 0 {
            let ok = Outcome { result: Some(outcome::Result::Value(Bytes::from_static(ACK_NEW))) };
            out.push(Action::IngressReply { request_id: r.ack_request, id: new_id, outcome: ok });
        }
        s.created_put(&new_id, now_ms)?;
        self.start(s, &new_id, st, now_ms, out)
    }

    /// Stores a journal event of `id`: one more, or, when it repeats the last one (same kind,
    /// code, message and journal position), the last one counted again. At
    /// [`limits::JOURNAL_EVENTS_MAX`] events the last one is replaced.
    fn record_event<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        st: &mut Status,
        ev: JournalEvent,
    ) -> Result<(), ApplyError> {
        if st.events_len > 0 {
            let last = st.events_len - 1;
            if let Some(mut prev) = s.journal_event(id, last)? {
                let same = (prev.kind, prev.code, prev.after_journal_entry_index, &prev.message)
                    == (ev.kind, ev.code, ev.after_journal_entry_index, &ev.message);
                if same {
                    prev.count = prev.count.saturating_add(1);
                    prev.last_at_ms = ev.last_at_ms;
                    s.journal_event_put(id, last, &prev)?;
                    return Ok(());
                }
            }
            if st.events_len >= limits::JOURNAL_EVENTS_MAX {
                s.journal_event_put(id, last, &ev)?;
                return Ok(());
            }
        }
        s.journal_event_put(id, st.events_len, &ev)?;
        st.events_len += 1;
        Ok(())
    }

    /// Forgets a completed invocation (after its retention, or on request): its status, and
    /// for a workflow run the workflow's state and promises. Anything else is left alone.
    fn purge<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        st: &Status,
    ) -> Result<(), ApplyError> {
        if st.phase() != Phase::Completed {
            return Ok(());
        }
        // A journal kept in its retained block goes with the block (see `expire_block`).
        if !st.journal_archived {
            s.journal_delete(id)?;
        }
        if st.events_len > 0 {
            s.journal_events_delete(id)?;
        }
        s.delete_status(id)?;
        if !crate::defect::active(crate::defect::Defect::CreatedIndexLeftBehind) {
            s.created_delete(id, st.created_ms)?;
        }
        if st.kind() == HandlerKind::WorkflowRun {
            s.state_clear(&st.service, &st.key)?;
            s.promises_clear(&st.service, &st.key)?;
        }
        Ok(())
    }

    /// Replaces an object's whole state once no invocation holds its lock: at once when it
    /// is free, else queued in its inbox behind the invocations that came first (so a handler
    /// never sees its state change under it).
    fn modify_state<S: FsmStore>(
        &self,
        s: &mut S,
        m: &ModifyState,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        // Whoever asked hears whether the edit was taken or why not.
        let answer = |out: &mut Batch, refused: Option<limits::Violation>| {
            if m.ack_request != 0 {
                let outcome = match refused {
                    None => Outcome { result: Some(outcome::Result::Value(Bytes::new())) },
                    Some(v) => violation_outcome(&v),
                };
                let id = InvocationId { partition_key: 0, uuid: 0 };
                out.push(Action::IngressReply { request_id: m.ack_request, id, outcome });
            }
        };
        // The admin API checks these; a record that breaks them anyway is refused, never
        // stored (an oversized key would fail the store and stop the partition).
        let checked = limits::check_object_key(&m.key).and_then(|()| {
            m.entries.iter().try_for_each(|e| limits::check_state_key(&m.service, &m.key, &e.key))
        });
        if let Err(v) = checked {
            answer(out, Some(v));
            return Ok(());
        }
        if s.lock(&m.service, &m.key)?.is_none() {
            replace_state(s, m)?;
            answer(out, None);
            return Ok(());
        }
        if let Err(v) = limits::check_state_edit_queues(s.inbox_len(&m.service, &m.key)?) {
            answer(out, Some(v));
            return Ok(());
        }
        s.inbox_push_state(&m.service, &m.key, m)?;
        answer(out, None);
        Ok(())
    }
}

/// Replaces an object's whole state, unless a version was given and the current state no
/// longer has it (then nothing changes: the asker edited a state that moved on).
fn replace_state<S: FsmStore>(s: &mut S, m: &ModifyState) -> Result<(), ApplyError> {
    let ignore_version = crate::defect::active(crate::defect::Defect::StateEditIgnoresVersion);
    if !m.version.is_empty() && !ignore_version {
        let (current, partial) =
            s.state_capped(&m.service, &m.key, limits::STATE_VERSION_BYTES_MAX)?;
        let entries: Vec<(&[u8], &[u8])> =
            current.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
        if partial || state_version(&entries) != m.version {
            return Ok(());
        }
    }
    s.state_clear(&m.service, &m.key)?;
    for e in &m.entries {
        s.state_put(&m.service, &m.key, &e.key, &e.value)?;
    }
    Ok(())
}

impl Fsm {
    /// Forgets the members of a retained block whose bucket has ended (each only if the status
    /// is still the life the block names: a re-created id is a new invocation), then the block.
    fn expire_block<S: FsmStore>(
        &self,
        s: &mut S,
        key: &[u8],
        now_ms: u64,
    ) -> Result<(), ApplyError> {
        let Ok((bucket_end, _)) = crate::store::schema::decode_retained_key(key) else {
            return Err(invalid("expire of a malformed retained block key"));
        };
        if bucket_end > now_ms {
            return Ok(());
        }
        let Some(v) = s.retained_value(key)? else { return Ok(()) };
        for m in retained::Block::decode(&v)?.decode_members()? {
            if let Some(st) = s.status(&m.id)? {
                let expired = st.purge_at_ms != 0 && st.purge_at_ms <= now_ms;
                if st.life == m.life && st.phase() == Phase::Completed && expired {
                    self.purge(s, &m.id, &st)?;
                }
            }
        }
        s.retained_delete(key)?;
        Ok(())
    }

    /// Ends an invocation: keeps its outcome, drops its journal, answers every waiter, and
    /// hands the object lock to the next in line.
    fn complete<S: FsmStore>(
        &self,
        s: &mut S,
        id: &InvocationId,
        mut st: Status,
        outcome: Outcome,
        now_ms: u64,
        out: &mut Batch,
    ) -> Result<(), ApplyError> {
        for sink in &st.sinks {
            self.answer(s, sink, id, &outcome, out)?;
        }
        let failure = match &outcome.result {
            Some(outcome::Result::Failure(f)) => Some(format!("[{}] {}", f.code, f.message)),
            _ => None,
        };
        out.push(Action::Completed {
            id: *id,
            service: st.service.clone(),
            handler: st.handler.clone(),
            created_ms: st.created_ms,
            completed_ms: now_ms,
            failure,
        });
        // A kept journal goes with the status when its retention ends (see `purge`).
        let keep_journal = st.journal_retention_ms.is_some_and(|ms| ms > 0)
            && st.retention_ms.is_some_and(|ms| ms > 0);
        if !keep_journal {
            s.journal_delete(id)?;
            st.journal_len = 0;
            if st.events_len > 0 {
                s.journal_events_delete(id)?;
                st.events_len = 0;
            }
        }
        self.leave_runnable(s, id, &mut st)?;
        let (service, key, kind) = (st.service.clone(), st.key.clone(), st.kind());
        st.phase = Phase::Completed as i32;
        st.outcome = Some(outcome);
        st.sinks.clear();
        st.completed_ids.clear();
        st.waiting_completions.clear();
        st.waiting_signals.clear();
        st.waiting_named_signals.clear();
        st.signals_received.clear();
        st.named_signals_received.clear();
        st.next_retry_at_ms = 0;
        st.modified_ms = now_ms;
        match st.retention_ms {
            // Not kept: nobody can attach to it or de-duplicate against it later.
            Some(0) => self.purge(s, id, &st)?,
            // The leader's retention pass finds it once this passed (see `Record::Expire`).
            Some(ms) => {
                st.purge_at_ms = now_ms.saturating_add(ms).max(1);
                let inline = match keep_journal && st.journal_len > 0 {
                    true => s.journal_inline(id, st.journal_len)?,
                    false => None,
                };
                if inline.is_some() {
                    s.journal_delete(id)?;
                    st.journal_archived = true;
                }
                st.retained_lsn = out.lsn;
                let key = retained::block_key(st.purge_at_ms, out.lsn);
                let in_rows = if st.journal_archived { 0 } else { st.journal_len };
                let rows = in_rows.saturating_add(st.events_len);
                out.retained.add(key, id, st.life, rows, inline.as_deref());
                s.put_status(id, &st)?;
            }
            None => s.put_status(id, &st)?,
        }
        if kind.takes_lock() && s.lock(&service, &key)? == Some(*id) {
            s.clear_lock(&service, &key)?;
            // Hand the key to the next queued invocation, skipping any that are gone (or were
            // queued by an earlier life of their id: the new life has its own, later place).
            // State replacements queued in between apply in their turn.
            while let Some(entry) = s.inbox_pop(&service, &key)? {
                let (next, life) = match entry {
                    InboxEntry::State(m) => {
                        replace_state(s, &m)?;
                        continue;
                    }
                    InboxEntry::Invocation(next, life) => (next, life),
                };
                if let Some(next_st) = s.status(&next)? {
                    if next_st.phase() == Phase::Inboxed && (life == 0 || next_st.life == life) {
                        return self.start(s, &next, next_st, now_ms, out);
                    }
                }
            }
        }
        Ok(())
    }
}
