//! The partition store's schema: every table name and every key encoding, in one place.
//!
//! Owns: the [`Table`] list and the stable redb name of each table, the schema version stored
//! in the Meta table, the key builders the state machine uses, and the decoders for keys that
//! are read back from scans.
//!
//! Invariants:
//! - A table name is never changed and a retired name is never reused ([`TABLE_NAMES_RETIRED`];
//!   both checked at compile time). A table whose encoding changes gets a new name
//!   (`<name>.v2`) and the old name moves to the retired list.
//! - [`SCHEMA_VERSION`] goes up whenever a change needs a migration or would confuse older
//!   code; a file written by a newer schema is refused on open.
//! - Every key encoding is order-preserving under bytewise comparison, and a key built from
//!   components `c1..ck` starts with the prefix built from `c1..cj` (j ≤ k) and with no prefix
//!   built from different components. So a prefix scan returns exactly one object's (or one
//!   service's) rows, and never rows of a component that merely starts with the same bytes
//!   (object `"a"` vs `"ab"`, service `"S"` vs `"S2"`).
//!
//! Encodings (`‖` is concatenation):
//! - integers: fixed width, big-endian (`u32` 4 bytes, `u64` 8 bytes);
//! - invocation id: its 24 raw bytes ([`INVOCATION_ID_BYTES`]) reordered as u128 uuid ‖ u64
//!   partition key ([`id_key`]). A fresh uuid starts with its creation time, so tables keyed
//!   by invocation id grow at their end instead of at random places (the statuses of
//!   completed invocations stay for their retention; random placement made every batch dirty
//!   one page per invocation);
//! - strings and byte strings ("escaped"): every `0x00` byte becomes `0x00 0xFF`, then the
//!   terminator `0x00 0x01` follows. Bytewise order of encodings equals bytewise order of the
//!   raw strings, and no encoding is a prefix of another one (the byte after any `0x00` is
//!   `0x01` at the end and `0xFF` inside), whatever follows the component.
//!
//! Keys per table (schema version 3):
//!
//! | table | key |
//! |---|---|
//! | Meta | ASCII name ([`META_SCHEMA_VERSION`], [`META_LSN_APPLIED`], [`META_LOG_IDENTITY`], [`META_LEADER_EPOCH`], [`META_OUTBOX_SEQ_NEXT`], [`META_RUNNABLE_SEQ_NEXT`]) |
//! | InvocationStatus | invocation id |
//! | Journal | invocation id ‖ u32 entry index |
//! | State | esc(service) ‖ esc(object key) ‖ esc(state key) |
//! | Inbox | esc(service) ‖ esc(object key) ‖ u64 seq |
//! | ObjectLock | esc(service) ‖ esc(object key) |
//! | Timers | u64 wake-up ms ‖ invocation id ‖ u32 completion id |
//! | Outbox | u64 seq |
//! | Idempotency | esc(service) ‖ esc(object key) ‖ esc(handler) ‖ esc(idempotency key) |
//! | Promises | esc(service) ‖ esc(workflow key) ‖ esc(promise name) |
//! | Dedup | esc(producer id) |
//! | Runnable | u64 seq ‖ invocation id |
//! | JournalEvents | invocation id ‖ u32 event seq |
//! | Retained | u64 bucket-end ms ‖ u64 LSN window ([`retained_key`]) |
//! | Created | u64 created ms ‖ invocation id ([`created_key`]) |
//!
//! Values are opaque to the store; their encodings belong to the state machine (an Inbox
//! value is the invocation id and the life it queued as, a Timers value the life it was armed
//! for; rows written before lives hold the id only, or nothing).
//!
//! Version log: 1 — initial schema. 2 — the Runnable index (invocations with an attempt to
//! run, in the order they became runnable), the log identity, leader epoch and sequence
//! counters in Meta, and the Outbox and Dedup tables in use; a version 1 store lacks the index
//! and the identity, so it cannot be opened (no migration: it is rebuilt from the log).
//! Within version 2, tables added later (JournalEvents) are created when a store opens.
//! 3 — invocation ids in keys are time-first ([`id_key`]; `invocation_status.v2`,
//! `journal.v2`, `journal_events.v2`), and completed invocations kept for their retention are
//! indexed by blocks in `retained.v1` (which replaces `journal_archive.v1`). A version 2 store
//! is refused (no migration: nothing was released with it).

/// Schema version this code writes. Stored under [`META_SCHEMA_VERSION`] as a u32 BE.
pub const SCHEMA_VERSION: u32 = 3;
/// Oldest schema version this code can open (older files would need a migration).
pub const SCHEMA_VERSION_MIN: u32 = 3;
const _: () = assert!(SCHEMA_VERSION_MIN <= SCHEMA_VERSION && SCHEMA_VERSION_MIN >= 1);

/// Meta key of the schema version (value: u32 BE).
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// Meta key of the last log LSN whose effects are in the store (value: u64 BE).
pub const META_LSN_APPLIED: &[u8] = b"lsn_applied";
/// Meta key naming the log this store materializes (value: u64 BE log-store identity ‖ u32 BE
/// log id). A store is only ever applied from its own log.
pub const META_LOG_IDENTITY: &[u8] = b"log_identity";
/// Meta key of the highest leader epoch announced in the log (value: u64 BE).
pub const META_LEADER_EPOCH: &[u8] = b"leader_epoch";
/// Meta key of the sequence number the next outbox entry gets (value: u64 BE).
pub const META_OUTBOX_SEQ_NEXT: &[u8] = b"outbox_seq_next";
/// Meta key of the sequence number the next Runnable entry gets (value: u64 BE).
pub const META_RUNNABLE_SEQ_NEXT: &[u8] = b"runnable_seq_next";

/// Length of an invocation id. Bytes.
pub const INVOCATION_ID_BYTES: usize = 24;
/// An invocation id as stored in keys.
pub type InvocationIdBytes = [u8; INVOCATION_ID_BYTES];

/// Length of a timer key: u64 wake-up ‖ invocation id ‖ u32 completion id. Bytes.
pub const TIMER_KEY_BYTES: usize = 8 + INVOCATION_ID_BYTES + 4;
/// Length of a journal key: invocation id ‖ u32 entry index. Bytes.
pub const JOURNAL_KEY_BYTES: usize = INVOCATION_ID_BYTES + 4;

/// Largest key the store accepts. Bytes.
pub const KEY_BYTES_MAX: usize = 64 * 1024;
/// Largest value the store accepts. Bytes. Twice the largest log record body, so any value
/// derived from one record fits.
pub const VALUE_BYTES_MAX: usize = 64 * 1024 * 1024;
const _: () = assert!(VALUE_BYTES_MAX >= segment_format::RECORD_BODY_BYTES_MAX);
const _: () = assert!(KEY_BYTES_MAX >= TIMER_KEY_BYTES && KEY_BYTES_MAX >= JOURNAL_KEY_BYTES);

/// The logical tables of a partition store. Each maps to one redb table (a column family in
/// RocksDB terms). The stable on-disk name is [`Table::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Store bookkeeping: schema version, applied LSN.
    Meta,
    /// Invocation id → status of the invocation.
    InvocationStatus,
    /// (invocation id, entry index) → journal entry.
    Journal,
    /// (service, object key, state key) → user state value.
    State,
    /// (service, object key, seq) → invocation waiting for the object lock.
    Inbox,
    /// (service, object key) → invocation holding the object's exclusive lock.
    ObjectLock,
    /// (wake-up ms, invocation id, completion id) → timer.
    Timers,
    /// seq → message to another partition or to the outside.
    Outbox,
    /// (service, object key, handler, idempotency key) → invocation id.
    Idempotency,
    /// (service, workflow key, promise name) → durable promise.
    Promises,
    /// producer id → highest sequence number applied from that producer.
    Dedup,
    /// (seq, invocation id) → nothing: invocations that have an attempt to run.
    Runnable,
    /// (invocation id, seq) → what happened to the invocation besides its journal (transient
    /// errors, pauses): Restate's journal events.
    JournalEvents,
    /// (bucket-end ms, LSN window) → one block of the completed invocations kept for their
    /// retention whose retention ends before the bucket's end and whose completion falls in
    /// the window: which invocations (and lives) expire then, and their journals when small,
    /// compressed together (see `fsm::retained`). Appended in about time order; the retention
    /// pass reads only the blocks whose time has come.
    Retained,
    /// (created ms, invocation id) → nothing: every invocation's status by creation time,
    /// for listing them newest first (ids the server derives are hashes, not time-first).
    Created,
}

impl Table {
    /// Every table, in declaration order.
    pub const ALL: [Table; 15] = [
        Table::Meta,
        Table::InvocationStatus,
        Table::Journal,
        Table::State,
        Table::Inbox,
        Table::ObjectLock,
        Table::Timers,
        Table::Outbox,
        Table::Idempotency,
        Table::Promises,
        Table::Dedup,
        Table::Runnable,
        Table::JournalEvents,
        Table::Retained,
        Table::Created,
    ];

    /// The stable redb table name. Never changed; see the module invariants.
    pub const fn name(self) -> &'static str {
        match self {
            // Unversioned on purpose: the schema version itself lives here.
            Table::Meta => "meta",
            Table::InvocationStatus => "invocation_status.v2",
            Table::Journal => "journal.v2",
            Table::State => "state.v1",
            Table::Inbox => "inbox.v1",
            Table::ObjectLock => "object_lock.v1",
            Table::Timers => "timers.v1",
            Table::Outbox => "outbox.v1",
            Table::Idempotency => "idempotency.v1",
            Table::Promises => "promises.v1",
            Table::Dedup => "dedup.v1",
            Table::Runnable => "runnable.v1",
            Table::JournalEvents => "journal_events.v2",
            Table::Retained => "retained.v1",
            Table::Created => "invocation_created.v1",
        }
    }
}

/// Table names that were used by an earlier schema and must never be used again.
pub const TABLE_NAMES_RETIRED: &[&str] =
    &["invocation_status.v1", "journal.v1", "journal_events.v1", "journal_archive.v1"];

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// Names are unique and none is a retired one.
const _: () = {
    let mut i = 0;
    while i < Table::ALL.len() {
        let name = Table::ALL[i].name();
        let mut j = i + 1;
        while j < Table::ALL.len() {
            assert!(!str_eq(name, Table::ALL[j].name()), "duplicate table name");
            j += 1;
        }
        let mut r = 0;
        while r < TABLE_NAMES_RETIRED.len() {
            assert!(!str_eq(name, TABLE_NAMES_RETIRED[r]), "retired table name reused");
            r += 1;
        }
        i += 1;
    }
};

/// Bytes of a [`Table::Created`] key.
pub const CREATED_KEY_BYTES: usize = 8 + INVOCATION_ID_BYTES;

/// The key of an invocation in the creation-time index: created ms ‖ id key ([`id_key`]).
pub fn created_key(created_ms: u64, id: &InvocationIdBytes) -> Vec<u8> {
    let mut k = Vec::with_capacity(CREATED_KEY_BYTES);
    k.extend_from_slice(&created_ms.to_be_bytes());
    k.extend_from_slice(&id_key(id));
    k
}

/// Decodes a [`created_key`] into the creation time and the raw invocation id.
pub fn decode_created_key(key: &[u8]) -> Result<(u64, InvocationIdBytes), KeyError> {
    if key.len() != CREATED_KEY_BYTES {
        return Err(KeyError::Length {
            table: Table::Created,
            found_bytes: key.len(),
            expected_bytes: CREATED_KEY_BYTES,
        });
    }
    let ms = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
    let mut k = [0u8; INVOCATION_ID_BYTES];
    k.copy_from_slice(&key[8..]);
    Ok((ms, id_from_key(&k)))
}

/// The file name of partition `partition_id`'s store inside the data directory.
pub fn partition_file_name(partition_id: u32) -> String {
    format!("partition-{partition_id}.redb")
}

/// A key read back from the store did not decode.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{table:?} key has {found_bytes} bytes, expected {expected_bytes}")]
    Length { table: Table, found_bytes: usize, expected_bytes: usize },
    #[error("{table:?} key has a malformed string component at byte {offset}")]
    Escape { table: Table, offset: usize },
    #[error("{table:?} key has a service name that is not UTF-8")]
    Utf8 { table: Table },
}

// ---- component encoders ------------------------------------------------------------------

/// Appends the escaped encoding of `raw` (see the module doc) to `out`.
pub fn push_escaped(out: &mut Vec<u8>, raw: &[u8]) {
    out.reserve(raw.len() + 2);
    for &b in raw {
        if b == 0x00 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Decodes one escaped component at the start of `bytes`: the raw string and the number of
/// encoded bytes consumed. `None` if the component is malformed or unterminated.
fn take_escaped(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut raw = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != 0x00 {
            raw.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(0x01) => return Some((raw, i + 2)),
            Some(0xFF) => {
                raw.push(0x00);
                i += 2;
            }
            _ => return None,
        }
    }
    None
}

fn escaped_len(raw: &[u8]) -> usize {
    raw.len() + raw.iter().filter(|&&b| b == 0).count() + 2
}

fn key_of(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| escaped_len(p)).sum::<usize>() + 8);
    for part in parts {
        push_escaped(&mut key, part);
    }
    key
}

// ---- key builders ------------------------------------------------------------------------

/// An invocation id as it appears in keys: the raw id (partition key ‖ uuid) reordered as
/// uuid ‖ partition key, so fresh ids sort by creation time.
pub fn id_key(id: &InvocationIdBytes) -> InvocationIdBytes {
    let mut k = [0u8; INVOCATION_ID_BYTES];
    k[..16].copy_from_slice(&id[8..]);
    k[16..].copy_from_slice(&id[..8]);
    k
}

/// The raw invocation id of a key component made by [`id_key`].
pub fn id_from_key(k: &InvocationIdBytes) -> InvocationIdBytes {
    let mut id = [0u8; INVOCATION_ID_BYTES];
    id[..8].copy_from_slice(&k[16..]);
    id[8..].copy_from_slice(&k[..16]);
    id
}

/// InvocationStatus key.
pub fn invocation_status_key(id: &InvocationIdBytes) -> Vec<u8> {
    id_key(id).to_vec()
}

/// The raw invocation id of an InvocationStatus key.
pub fn decode_invocation_status_key(key: &[u8]) -> Result<InvocationIdBytes, KeyError> {
    if key.len() != INVOCATION_ID_BYTES {
        return Err(KeyError::Length {
            table: Table::InvocationStatus,
            found_bytes: key.len(),
            expected_bytes: INVOCATION_ID_BYTES,
        });
    }
    Ok(id_from_key(&to_array(key)))
}

/// Retained key: blocks sort by the end of their time bucket, then by LSN window.
pub fn retained_key(bucket_end_ms: u64, window: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&bucket_end_ms.to_be_bytes());
    k[8..].copy_from_slice(&window.to_be_bytes());
    k
}

/// Decodes a Retained key into (bucket-end ms, LSN window).
pub fn decode_retained_key(key: &[u8]) -> Result<(u64, u64), KeyError> {
    if key.len() != 16 {
        return Err(KeyError::Length {
            table: Table::Retained,
            found_bytes: key.len(),
            expected_bytes: 16,
        });
    }
    Ok((u64::from_be_bytes(to_array(&key[..8])), u64::from_be_bytes(to_array(&key[8..]))))
}

/// Journal key: entries of one invocation sort by index.
pub fn journal_key(id: &InvocationIdBytes, entry_index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(JOURNAL_KEY_BYTES);
    key.extend_from_slice(&id_key(id));
    key.extend_from_slice(&entry_index.to_be_bytes());
    key
}

/// Prefix of every journal entry of one invocation.
pub fn journal_prefix(id: &InvocationIdBytes) -> Vec<u8> {
    id_key(id).to_vec()
}

/// Decodes a journal key into (invocation id, entry index).
pub fn decode_journal_key(key: &[u8]) -> Result<(InvocationIdBytes, u32), KeyError> {
    if key.len() != JOURNAL_KEY_BYTES {
        return Err(KeyError::Length {
            table: Table::Journal,
            found_bytes: key.len(),
            expected_bytes: JOURNAL_KEY_BYTES,
        });
    }
    let (id, index) = key.split_at(INVOCATION_ID_BYTES);
    Ok((id_from_key(&to_array(id)), u32::from_be_bytes(to_array(index))))
}

/// State key of one user state entry.
pub fn state_key(service: &str, object_key: &[u8], state_key: &[u8]) -> Vec<u8> {
    key_of(&[service.as_bytes(), object_key, state_key])
}

/// Prefix of every state entry of one object.
pub fn state_prefix(service: &str, object_key: &[u8]) -> Vec<u8> {
    key_of(&[service.as_bytes(), object_key])
}

/// Prefix of every state entry of every object of one service.
pub fn state_service_prefix(service: &str) -> Vec<u8> {
    key_of(&[service.as_bytes()])
}

/// Decodes a state key into (service, object key, state key).
pub fn decode_state_key(key: &[u8]) -> Result<(String, Vec<u8>, Vec<u8>), KeyError> {
    let table = Table::State;
    let mut rest = key;
    let service = take_utf8(table, key, &mut rest)?;
    let object_key = take_component(table, key, &mut rest)?;
    let state_key = take_component(table, key, &mut rest)?;
    expect_end(table, key, rest)?;
    Ok((service, object_key, state_key))
}

/// Inbox key: entries of one object sort by sequence number.
pub fn inbox_key(service: &str, object_key: &[u8], seq: u64) -> Vec<u8> {
    let mut key = inbox_prefix(service, object_key);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Prefix of every inbox entry of one object.
pub fn inbox_prefix(service: &str, object_key: &[u8]) -> Vec<u8> {
    key_of(&[service.as_bytes(), object_key])
}

/// Decodes an inbox key into (service, object key, seq).
pub fn decode_inbox_key(key: &[u8]) -> Result<(String, Vec<u8>, u64), KeyError> {
    let table = Table::Inbox;
    let mut rest = key;
    let service = take_utf8(table, key, &mut rest)?;
    let object_key = take_component(table, key, &mut rest)?;
    if rest.len() != 8 {
        return Err(KeyError::Length {
            table,
            found_bytes: key.len(),
            expected_bytes: key.len() - rest.len() + 8,
        });
    }
    Ok((service, object_key, u64::from_be_bytes(to_array(rest))))
}

/// ObjectLock key of one virtual object (or workflow).
pub fn object_lock_key(service: &str, object_key: &[u8]) -> Vec<u8> {
    key_of(&[service.as_bytes(), object_key])
}

/// Decodes an ObjectLock key into (service, object key).
pub fn decode_object_lock_key(key: &[u8]) -> Result<(String, Vec<u8>), KeyError> {
    let table = Table::ObjectLock;
    let mut rest = key;
    let service = take_utf8(table, key, &mut rest)?;
    let object_key = take_component(table, key, &mut rest)?;
    expect_end(table, key, rest)?;
    Ok((service, object_key))
}

/// Decodes a Promises key into (service, workflow key, promise name).
pub fn decode_promise_key(key: &[u8]) -> Result<(String, Vec<u8>, Vec<u8>), KeyError> {
    let table = Table::Promises;
    let mut rest = key;
    let service = take_utf8(table, key, &mut rest)?;
    let workflow_key = take_component(table, key, &mut rest)?;
    let name = take_component(table, key, &mut rest)?;
    expect_end(table, key, rest)?;
    Ok((service, workflow_key, name))
}

/// Timer key. Timers sort by wake-up time, then invocation id, then completion id, so
/// `scan_range(Timers, &[], &timers_due_end(now_ms), n)` yields the due timers in firing order.
pub fn timer_key(wake_up_ms: u64, id: &InvocationIdBytes, completion_id: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(TIMER_KEY_BYTES);
    key.extend_from_slice(&wake_up_ms.to_be_bytes());
    key.extend_from_slice(id);
    key.extend_from_slice(&completion_id.to_be_bytes());
    key
}

/// Exclusive end of the range of timers due at `now_ms` (those with `wake_up_ms <= now_ms`).
pub fn timers_due_end(now_ms: u64) -> Vec<u8> {
    match now_ms.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        // Greater than every timer key: all of them are due.
        None => vec![0xFF; TIMER_KEY_BYTES + 1],
    }
}

/// Decodes a timer key into (wake-up ms, invocation id, completion id).
pub fn decode_timer_key(key: &[u8]) -> Result<(u64, InvocationIdBytes, u32), KeyError> {
    if key.len() != TIMER_KEY_BYTES {
        return Err(KeyError::Length {
            table: Table::Timers,
            found_bytes: key.len(),
            expected_bytes: TIMER_KEY_BYTES,
        });
    }
    let (wake, rest) = key.split_at(8);
    let (id, completion) = rest.split_at(INVOCATION_ID_BYTES);
    Ok((u64::from_be_bytes(to_array(wake)), to_array(id), u32::from_be_bytes(to_array(completion))))
}

/// Outbox key.
pub fn outbox_key(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

/// Decodes an outbox key into its sequence number.
pub fn decode_outbox_key(key: &[u8]) -> Result<u64, KeyError> {
    if key.len() != 8 {
        return Err(KeyError::Length {
            table: Table::Outbox,
            found_bytes: key.len(),
            expected_bytes: 8,
        });
    }
    Ok(u64::from_be_bytes(to_array(key)))
}

/// Idempotency key. `object_key` is empty for services that are not keyed.
pub fn idempotency_key(
    service: &str,
    object_key: &[u8],
    handler: &str,
    idempotency_key: &[u8],
) -> Vec<u8> {
    key_of(&[service.as_bytes(), object_key, handler.as_bytes(), idempotency_key])
}

/// Promise key of one durable promise of a workflow.
pub fn promise_key(service: &str, workflow_key: &[u8], promise_name: &[u8]) -> Vec<u8> {
    key_of(&[service.as_bytes(), workflow_key, promise_name])
}

/// Prefix of every promise of one workflow.
pub fn promise_prefix(service: &str, workflow_key: &[u8]) -> Vec<u8> {
    key_of(&[service.as_bytes(), workflow_key])
}

/// Dedup key of one producer.
pub fn dedup_key(producer_id: &[u8]) -> Vec<u8> {
    key_of(&[producer_id])
}

/// Length of a Runnable key: u64 seq ‖ invocation id. Bytes.
pub const RUNNABLE_KEY_BYTES: usize = 8 + INVOCATION_ID_BYTES;

/// Runnable key: entries sort by the order in which invocations became runnable.
pub fn runnable_key(seq: u64, id: &InvocationIdBytes) -> Vec<u8> {
    let mut key = Vec::with_capacity(RUNNABLE_KEY_BYTES);
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(id);
    key
}

/// Decodes a Runnable key into (seq, invocation id).
pub fn decode_runnable_key(key: &[u8]) -> Result<(u64, InvocationIdBytes), KeyError> {
    if key.len() != RUNNABLE_KEY_BYTES {
        return Err(KeyError::Length {
            table: Table::Runnable,
            found_bytes: key.len(),
            expected_bytes: RUNNABLE_KEY_BYTES,
        });
    }
    let (seq, id) = key.split_at(8);
    Ok((u64::from_be_bytes(to_array(seq)), to_array(id)))
}

// ---- generic key arithmetic --------------------------------------------------------------

/// The smallest key greater than `key`: continue a bounded scan after the last row returned
/// with `scan_range(t, &key_after(last), end, n)`.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0x00);
    next
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (empty prefix, or all bytes `0xFF`): the exclusive end of a prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

// ---- helpers -----------------------------------------------------------------------------

fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn take_component(table: Table, key: &[u8], rest: &mut &[u8]) -> Result<Vec<u8>, KeyError> {
    let offset = key.len() - rest.len();
    let (raw, used) = take_escaped(rest).ok_or(KeyError::Escape { table, offset })?;
    *rest = &rest[used..];
    Ok(raw)
}

fn take_utf8(table: Table, key: &[u8], rest: &mut &[u8]) -> Result<String, KeyError> {
    let raw = take_component(table, key, rest)?;
    String::from_utf8(raw).map_err(|_| KeyError::Utf8 { table })
}

fn expect_end(table: Table, key: &[u8], rest: &[u8]) -> Result<(), KeyError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(KeyError::Length {
            table,
            found_bytes: key.len(),
            expected_bytes: key.len() - rest.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_round_trip_and_order() {
        let samples: [&[u8]; 8] = [b"", b"\0", b"\0\0", b"\0\x01", b"a", b"a\0", b"a\0b", b"ab"];
        for a in samples {
            let mut ea = Vec::new();
            push_escaped(&mut ea, a);
            assert_eq!(take_escaped(&ea), Some((a.to_vec(), ea.len())));
            for b in samples {
                let mut eb = Vec::new();
                push_escaped(&mut eb, b);
                assert_eq!(a.cmp(b), ea.cmp(&eb), "{a:?} vs {b:?}");
                if a != b {
                    assert!(!eb.starts_with(&ea), "{a:?} encodes to a prefix of {b:?}");
                }
            }
        }
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        assert_eq!(take_escaped(b"a"), None);
        assert_eq!(take_escaped(b"a\0"), None);
        assert_eq!(take_escaped(b"a\0\x02"), None);
        assert!(decode_state_key(b"S\0\x01k\0\x01x\0\x01extra").is_err());
    }

    #[test]
    fn prefix_end_cases() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[0x01, 0xFF]), Some(vec![0x02]));
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
    }
}
