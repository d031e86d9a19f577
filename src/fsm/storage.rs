//! The state machine's view of the partition store: typed operations on invocation statuses,
//! journals, object state, inboxes, locks, timers, workflow promises, the outbox, the
//! de-duplication table and the Runnable index, implemented once over the store's
//! RocksDB-shaped views with the key encodings of `store::schema`.
//!
//! Invariants:
//! - This is the only place where the state machine's types meet store keys, so a change of
//!   encoding touches one file.
//! - Errors stay typed ([`StoreError`]); a stored value that does not decode is
//!   [`StoreError::Corrupt`], never a panic.
//! - Every read is bounded: journals by the entry limit, eager state by a byte cap, inbox
//!   appends by one reverse lookup (O(log n)).

use bytes::Bytes;
use prost::Message;

use crate::protocol::ids::InvocationId;
use crate::store::{schema, ReadView, Scan, StoreError, Table, WriteView};

use super::limits::JOURNAL_ENTRIES_MAX;
use super::{
    record, retained, InvokeAttempt, JournalEvent, OutboxEntry, Phase, PromiseEntry, Record,
    RecordHeader, Status,
};

fn corrupt(table: Table, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table, detail: detail.to_string() }
}

fn parse_id(table: Table, bytes: &[u8]) -> Result<InvocationId, StoreError> {
    InvocationId::from_bytes(bytes).map_err(|e| corrupt(table, format!("invocation id: {e}")))
}

/// A journal row's value: its entry type, then the entry.
fn journal_entry(v: Vec<u8>) -> Result<(u16, Bytes), StoreError> {
    if v.len() < 2 {
        return Err(corrupt(Table::Journal, "journal entry shorter than its type"));
    }
    Ok((u16::from_be_bytes([v[0], v[1]]), Bytes::from(v).slice(2..)))
}

/// Bounds a state scan: no object is read with more entries than this at once.
const STATE_ENTRIES_SCAN_MAX: usize = 1 << 20;

/// Typed reads the state machine (and the attempt loader) use; any [`ReadView`] has them.
pub trait FsmRead {
    fn status(&self, id: &InvocationId) -> Result<Option<Status>, StoreError>;
    fn journal(&self, id: &InvocationId, len: u32) -> Result<Vec<(u16, Bytes)>, StoreError>;
    /// The whole journal of `id` (`len` entries) if it is small enough to keep inside a
    /// retained block (see `retained::INLINE_ENTRIES_MAX` and `INLINE_BYTES_MAX`).
    fn journal_inline(
        &self,
        id: &InvocationId,
        len: u32,
    ) -> Result<Option<Vec<(u16, Bytes)>>, StoreError>;
    /// The stored value of the retained block `key` (see `retained::Block`), if it exists.
    fn retained_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keys of retained blocks after `after` whose bucket ended at or before `now_ms`, oldest
    /// first.
    fn retained_due(
        &self,
        after: Option<&[u8]>,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError>;
    fn state_get(
        &self,
        service: &str,
        key: &str,
        name: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// State keys of one object in key order while their total size stays within
    /// `bytes_max`; the flag says whether keys were left out. Values are not read.
    fn state_keys(
        &self,
        service: &str,
        key: &str,
        bytes_max: usize,
    ) -> Result<(Vec<Bytes>, bool), StoreError>;
    /// The payload of the last journal entry of type `ty` (the output of an ended
    /// invocation), reading from the end.
    fn journal_last_of(&self, id: &InvocationId, ty: u16) -> Result<Option<Bytes>, StoreError>;
    /// Journal entries `start..start + n` of `id` (fewer if the journal ends first).
    fn journal_page(
        &self,
        id: &InvocationId,
        start: u32,
        n: u32,
    ) -> Result<Vec<(u16, Bytes)>, StoreError>;
    /// Entries `start..start + n` of the journal of `id` whose status is `st`: from its
    /// retained block when completed with a small kept journal, else from the journal rows.
    fn journal_page_of(
        &self,
        id: &InvocationId,
        st: &Status,
        start: u32,
        n: u32,
    ) -> Result<Vec<(u16, Bytes)>, StoreError>;
    /// Journal event `seq` of `id`.
    fn journal_event(
        &self,
        id: &InvocationId,
        seq: u32,
    ) -> Result<Option<JournalEvent>, StoreError>;
    /// The journal events `0..len` of `id`, in order.
    fn journal_events(&self, id: &InvocationId, len: u32) -> Result<Vec<JournalEvent>, StoreError>;
    /// State entries in key order while their total size stays within `bytes_max`; the flag
    /// says whether entries were left out. Reads at most about `bytes_max` bytes.
    fn state_capped(
        &self,
        service: &str,
        key: &str,
        bytes_max: usize,
    ) -> Result<(Vec<(Bytes, Bytes)>, bool), StoreError>;
    fn lock(&self, service: &str, key: &str) -> Result<Option<InvocationId>, StoreError>;
    /// Entries queued in one object's inbox (an upper bound once entries leave from the
    /// middle; exact while they leave only from the front).
    fn inbox_len(&self, service: &str, key: &str) -> Result<u64, StoreError>;
    fn promise(
        &self,
        service: &str,
        key: &str,
        name: &str,
    ) -> Result<Option<PromiseEntry>, StoreError>;
    fn leader_epoch(&self) -> Result<u64, StoreError>;
    /// Highest outbox sequence number applied from `producer` (0: none yet).
    fn dedup_seq(&self, producer: u32) -> Result<u64, StoreError>;
    /// Outbox entries with `seq >= from` in sequence order: at most `limit`, and no more once
    /// their stored size reached `bytes_max` (at least one).
    fn outbox_from(
        &self,
        from: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<(u64, OutboxEntry)>, StoreError>;
    /// Runnable index entries after `after` (exclusive; `None`: from the start), at most
    /// `limit`, in the order the invocations became runnable.
    fn runnable_after(
        &self,
        after: Option<(u64, InvocationId)>,
        limit: usize,
    ) -> Result<Vec<(u64, InvocationId)>, StoreError>;
    /// Timers with key greater than `after` (or from the start), at most `limit`, in firing
    /// order: (wake ms, invocation id, completion id).
    fn timers_after(
        &self,
        after: Option<(u64, InvocationId, u32)>,
        limit: usize,
    ) -> Result<Vec<(u64, InvocationId, u32)>, StoreError>;
    /// Statuses of invocations with an id greater than `after` (or from the start), at most
    /// `limit`, in id order.
    fn statuses_after(
        &self,
        after: Option<InvocationId>,
        limit: usize,
    ) -> Result<Vec<(InvocationId, Status)>, StoreError>;
}

/// Typed writes the state machine uses; any [`WriteView`] has them.
pub trait FsmStore: FsmRead {
    fn put_status(&mut self, id: &InvocationId, st: &Status) -> Result<(), StoreError>;
    fn delete_status(&mut self, id: &InvocationId) -> Result<(), StoreError>;
    /// Adds `id` to the creation-time index (with the status it is created with).
    fn created_put(&mut self, id: &InvocationId, created_ms: u64) -> Result<(), StoreError>;
    /// Removes `id` from the creation-time index (with its status).
    fn created_delete(&mut self, id: &InvocationId, created_ms: u64) -> Result<(), StoreError>;
    fn promises_clear(&mut self, service: &str, key: &str) -> Result<(), StoreError>;
    fn put_promise(
        &mut self,
        service: &str,
        key: &str,
        name: &str,
        p: &PromiseEntry,
    ) -> Result<(), StoreError>;
    fn journal_put(
        &mut self,
        id: &InvocationId,
        index: u32,
        ty: u16,
        payload: &[u8],
    ) -> Result<(), StoreError>;
    fn journal_delete(&mut self, id: &InvocationId) -> Result<(), StoreError>;
    fn journal_event_put(
        &mut self,
        id: &InvocationId,
        seq: u32,
        event: &JournalEvent,
    ) -> Result<(), StoreError>;
    fn journal_events_delete(&mut self, id: &InvocationId) -> Result<(), StoreError>;
    /// Stores a retained block's value (see `retained::Block::encode`).
    fn retained_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn retained_delete(&mut self, key: &[u8]) -> Result<(), StoreError>;
    fn state_put(
        &mut self,
        service: &str,
        key: &str,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError>;
    fn state_delete(&mut self, service: &str, key: &str, name: &[u8]) -> Result<(), StoreError>;
    fn state_clear(&mut self, service: &str, key: &str) -> Result<(), StoreError>;
    fn set_lock(&mut self, service: &str, key: &str, id: &InvocationId) -> Result<(), StoreError>;
    fn clear_lock(&mut self, service: &str, key: &str) -> Result<(), StoreError>;
    /// Queues life `life` of `id` (see `Status::life`) behind an object's lock.
    fn inbox_push(
        &mut self,
        service: &str,
        key: &str,
        id: &InvocationId,
        life: u64,
    ) -> Result<(), StoreError>;
    /// Queues a state replacement behind an object's lock, in line with invocations.
    fn inbox_push_state(
        &mut self,
        service: &str,
        key: &str,
        m: &crate::fsm::ModifyState,
    ) -> Result<(), StoreError>;
    /// Takes the first entry queued behind an object's lock.
    fn inbox_pop(&mut self, service: &str, key: &str) -> Result<Option<InboxEntry>, StoreError>;
    /// Arms a timer of life `life` of `id` (see `Status::life`).
    fn timer_put(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
        life: u64,
    ) -> Result<(), StoreError>;
    /// Deletes a timer; returns the life it was armed for, if it existed.
    fn timer_delete(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
    ) -> Result<Option<u64>, StoreError>;
    fn set_leader_epoch(&mut self, epoch: u64) -> Result<(), StoreError>;
    fn set_dedup_seq(&mut self, producer: u32, seq: u64) -> Result<(), StoreError>;
    /// Appends a delivery of `kind` to the partition owning `partition_key`, stamped with
    /// `producer` and its new outbox sequence number; returns that number.
    fn outbox_push(
        &mut self,
        producer: u32,
        partition_key: u64,
        kind: record::Kind,
    ) -> Result<u64, StoreError>;
    /// Deletes outbox entries with `seq <= seq_through`.
    fn outbox_truncate(&mut self, seq_through: u64) -> Result<(), StoreError>;
    /// Adds an invocation to the Runnable index; returns its entry's sequence number.
    fn runnable_push(&mut self, id: &InvocationId) -> Result<u64, StoreError>;
    fn runnable_delete(&mut self, seq: u64, id: &InvocationId) -> Result<(), StoreError>;
}

impl<R: ReadView> FsmRead for R {
    fn status(&self, id: &InvocationId) -> Result<Option<Status>, StoreError> {
        let t = Table::InvocationStatus;
        match self.get(t, &schema::invocation_status_key(&id.to_bytes()))? {
            Some(v) => Status::decode(v.as_slice()).map(Some).map_err(|e| corrupt(t, e)),
            None => Ok(None),
        }
    }
    fn journal(&self, id: &InvocationId, len: u32) -> Result<Vec<(u16, Bytes)>, StoreError> {
        let out = self.journal_page(id, 0, len.min(JOURNAL_ENTRIES_MAX))?;
        if out.len() != len as usize {
            return Err(corrupt(
                Table::Journal,
                format!("journal has {} entries, status says {len}", out.len()),
            ));
        }
        Ok(out)
    }
    fn journal_inline(
        &self,
        id: &InvocationId,
        len: u32,
    ) -> Result<Option<Vec<(u16, Bytes)>>, StoreError> {
        if len > retained::INLINE_ENTRIES_MAX {
            return Ok(None);
        }
        let raw = id.to_bytes();
        let (from, end) = (schema::journal_key(&raw, 0), schema::journal_key(&raw, len));
        let budget = retained::INLINE_BYTES_MAX + len as usize * (2 + schema::JOURNAL_KEY_BYTES);
        let rows = self.scan_range_bytes(Table::Journal, &from, &end, len as usize, budget)?;
        let bytes: usize = rows.iter().map(|(_, v)| v.len().saturating_sub(2)).sum();
        if rows.len() != len as usize || bytes > retained::INLINE_BYTES_MAX {
            return Ok(None);
        }
        rows.into_iter().map(|(_, v)| journal_entry(v)).collect::<Result<_, _>>().map(Some)
    }
    fn retained_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(Table::Retained, key)
    }
    fn retained_due(
        &self,
        after: Option<&[u8]>,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let start = after.map(schema::key_after).unwrap_or_default();
        let end = schema::retained_key(now_ms.saturating_add(1), 0);
        let q = crate::store::Scan { limit, keys_only: true, ..Default::default() };
        let rows = self.scan_bounded(Table::Retained, &start, Some(&end), &q)?.0;
        Ok(rows.into_iter().map(|(k, _)| k).collect())
    }
    fn journal_page(
        &self,
        id: &InvocationId,
        start: u32,
        n: u32,
    ) -> Result<Vec<(u16, Bytes)>, StoreError> {
        let t = Table::Journal;
        let raw = id.to_bytes();
        let from = schema::journal_key(&raw, start);
        let end = match start.checked_add(n) {
            Some(e) => schema::journal_key(&raw, e),
            None => schema::key_after(&schema::journal_key(&raw, u32::MAX)),
        };
        let rows = self.scan_range(t, &from, &end, n as usize)?;
        rows.into_iter().map(|(_, v)| journal_entry(v)).collect()
    }
    fn journal_page_of(
        &self,
        id: &InvocationId,
        st: &Status,
        start: u32,
        n: u32,
    ) -> Result<Vec<(u16, Bytes)>, StoreError> {
        if !st.journal_archived {
            return self.journal_page(id, start, n);
        }
        // A block goes only after its live members were forgotten (see `retained`).
        let key = retained::block_key(st.purge_at_ms, st.retained_lsn);
        let Some(v) = self.retained_value(&key)? else {
            return Err(corrupt(Table::Retained, format!("no retained block for {id}")));
        };
        let member = retained::Block::decode(&v)?
            .decode_members()?
            .into_iter()
            .find(|m| m.id == *id && m.life == st.life)
            .ok_or_else(|| corrupt(Table::Retained, format!("{id} is not in its block")))?;
        let journal = member.journal.unwrap_or_default();
        Ok(journal.into_iter().skip(start as usize).take(n as usize).collect())
    }
    fn journal_event(
        &self,
        id: &InvocationId,
        seq: u32,
    ) -> Result<Option<JournalEvent>, StoreError> {
        let t = Table::JournalEvents;
        self.get(t, &schema::journal_key(&id.to_bytes(), seq))?
            .map(|v| JournalEvent::decode(v.as_slice()).map_err(|e| corrupt(t, e)))
            .transpose()
    }
    fn journal_events(&self, id: &InvocationId, len: u32) -> Result<Vec<JournalEvent>, StoreError> {
        let t = Table::JournalEvents;
        let limit = (len.min(crate::fsm::limits::JOURNAL_EVENTS_MAX) as usize).max(1);
        let rows = self.scan_prefix(t, &schema::journal_prefix(&id.to_bytes()), limit)?;
        rows.into_iter()
            .take(len as usize)
            .map(|(_, v)| JournalEvent::decode(v.as_slice()).map_err(|e| corrupt(t, e)))
            .collect()
    }
    fn state_get(
        &self,
        service: &str,
        key: &str,
        name: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(Table::State, &schema::state_key(service, key.as_bytes(), name))
    }
    fn state_keys(
        &self,
        service: &str,
        key: &str,
        bytes_max: usize,
    ) -> Result<(Vec<Bytes>, bool), StoreError> {
        let prefix = schema::state_prefix(service, key.as_bytes());
        let q =
            Scan { limit: STATE_ENTRIES_SCAN_MAX, bytes_max, keys_only: true, ..Scan::default() };
        let (rows, more) = self.scan_prefix_bounded(Table::State, &prefix, &q)?;
        let mut total = 0usize;
        let mut out = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            let (_, _, name) = schema::decode_state_key(&k)?;
            total = total.saturating_add(name.len());
            if total > bytes_max {
                return Ok((out, true));
            }
            out.push(Bytes::from(name));
        }
        Ok((out, more))
    }
    fn journal_last_of(&self, id: &InvocationId, ty: u16) -> Result<Option<Bytes>, StoreError> {
        let t = Table::Journal;
        let prefix = schema::journal_prefix(&id.to_bytes());
        let mut end = schema::prefix_end(&prefix);
        loop {
            let q = Scan { limit: 16, reverse: true, ..Scan::default() };
            let (rows, more) = self.scan_bounded(t, &prefix, end.as_deref(), &q)?;
            for (k, v) in &rows {
                if v.len() < 2 {
                    return Err(corrupt(t, "journal entry shorter than its type"));
                }
                if u16::from_be_bytes([v[0], v[1]]) == ty {
                    return Ok(Some(Bytes::copy_from_slice(&v[2..])));
                }
                end = Some(k.clone());
            }
            if !more {
                return Ok(None);
            }
        }
    }
    fn state_capped(
        &self,
        service: &str,
        key: &str,
        bytes_max: usize,
    ) -> Result<(Vec<(Bytes, Bytes)>, bool), StoreError> {
        let prefix = schema::state_prefix(service, key.as_bytes());
        let q = Scan { limit: STATE_ENTRIES_SCAN_MAX, bytes_max, ..Scan::default() };
        let (rows, more) = self.scan_prefix_bounded(Table::State, &prefix, &q)?;
        let mut total = 0usize;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            total = total.saturating_add(k.len() + v.len());
            if total > bytes_max {
                return Ok((out, true));
            }
            let (_, _, name) = schema::decode_state_key(&k)?;
            out.push((Bytes::from(name), Bytes::from(v)));
        }
        Ok((out, more))
    }
    fn lock(&self, service: &str, key: &str) -> Result<Option<InvocationId>, StoreError> {
        let t = Table::ObjectLock;
        match self.get(t, &schema::object_lock_key(service, key.as_bytes()))? {
            Some(v) => parse_id(t, &v).map(Some),
            None => Ok(None),
        }
    }
    fn promise(
        &self,
        service: &str,
        key: &str,
        name: &str,
    ) -> Result<Option<PromiseEntry>, StoreError> {
        let t = Table::Promises;
        match self.get(t, &schema::promise_key(service, key.as_bytes(), name.as_bytes()))? {
            Some(v) => PromiseEntry::decode(v.as_slice()).map(Some).map_err(|e| corrupt(t, e)),
            None => Ok(None),
        }
    }
    fn inbox_len(&self, service: &str, key: &str) -> Result<u64, StoreError> {
        let prefix = schema::inbox_prefix(service, key.as_bytes());
        let Some((last, _)) = self.last_in_prefix(Table::Inbox, &prefix)? else { return Ok(0) };
        let first = self.scan_prefix(Table::Inbox, &prefix, 1)?;
        let Some((first, _)) = first.into_iter().next() else { return Ok(0) };
        let (_, _, a) = schema::decode_inbox_key(&first)?;
        let (_, _, b) = schema::decode_inbox_key(&last)?;
        Ok(b.saturating_sub(a) + 1)
    }
    fn leader_epoch(&self) -> Result<u64, StoreError> {
        Ok(self.meta_u64(schema::META_LEADER_EPOCH)?.unwrap_or(0))
    }
    fn dedup_seq(&self, producer: u32) -> Result<u64, StoreError> {
        let t = Table::Dedup;
        match self.get(t, &schema::dedup_key(&producer.to_be_bytes()))? {
            None => Ok(0),
            Some(v) => {
                let a: [u8; 8] = v.as_slice().try_into().map_err(|_| corrupt(t, "seq length"))?;
                Ok(u64::from_be_bytes(a))
            }
        }
    }
    fn outbox_from(
        &self,
        from: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        let t = Table::Outbox;
        let end = [0xFFu8; 9];
        let rows = self.scan_range_bytes(t, &schema::outbox_key(from), &end, limit, bytes_max)?;
        rows.into_iter()
            .map(|(k, v)| {
                let seq = schema::decode_outbox_key(&k)?;
                let e = OutboxEntry::decode(v.as_slice()).map_err(|e| corrupt(t, e))?;
                Ok((seq, e))
            })
            .collect()
    }
    fn statuses_after(
        &self,
        after: Option<InvocationId>,
        limit: usize,
    ) -> Result<Vec<(InvocationId, Status)>, StoreError> {
        let t = Table::InvocationStatus;
        let start = match after {
            Some(id) => schema::key_after(&schema::invocation_status_key(&id.to_bytes())),
            None => Vec::new(),
        };
        let end = [0xFFu8; schema::INVOCATION_ID_BYTES + 1];
        let rows = self.scan_range(t, &start, &end, limit)?;
        rows.into_iter()
            .map(|(k, v)| {
                let st = Status::decode(v.as_slice()).map_err(|e| corrupt(t, e))?;
                let raw = schema::decode_invocation_status_key(&k)?;
                Ok((parse_id(t, &raw)?, st))
            })
            .collect()
    }
    fn runnable_after(
        &self,
        after: Option<(u64, InvocationId)>,
        limit: usize,
    ) -> Result<Vec<(u64, InvocationId)>, StoreError> {
        let t = Table::Runnable;
        let start = match after {
            Some((seq, id)) => schema::key_after(&schema::runnable_key(seq, &id.to_bytes())),
            None => Vec::new(),
        };
        let end = [0xFFu8; schema::RUNNABLE_KEY_BYTES + 1];
        let rows = self.scan_range(t, &start, &end, limit)?;
        rows.into_iter()
            .map(|(k, _)| {
                let (seq, id) = schema::decode_runnable_key(&k)?;
                Ok((seq, parse_id(t, &id)?))
            })
            .collect()
    }
    fn timers_after(
        &self,
        after: Option<(u64, InvocationId, u32)>,
        limit: usize,
    ) -> Result<Vec<(u64, InvocationId, u32)>, StoreError> {
        let t = Table::Timers;
        let start = match after {
            Some((wake, id, c)) => schema::key_after(&schema::timer_key(wake, &id.to_bytes(), c)),
            None => Vec::new(),
        };
        let end = [0xFFu8; schema::TIMER_KEY_BYTES + 1];
        let rows = self.scan_range(t, &start, &end, limit)?;
        rows.into_iter()
            .map(|(k, _)| {
                let (wake, id, c) = schema::decode_timer_key(&k)?;
                Ok((wake, parse_id(t, &id)?, c))
            })
            .collect()
    }
}

impl<W: WriteView> FsmStore for W {
    fn put_status(&mut self, id: &InvocationId, st: &Status) -> Result<(), StoreError> {
        self.put(
            Table::InvocationStatus,
            &schema::invocation_status_key(&id.to_bytes()),
            &st.encode_to_vec(),
        )
    }
    fn put_promise(
        &mut self,
        service: &str,
        key: &str,
        name: &str,
        p: &PromiseEntry,
    ) -> Result<(), StoreError> {
        let k = schema::promise_key(service, key.as_bytes(), name.as_bytes());
        self.put(Table::Promises, &k, &p.encode_to_vec())
    }
    fn promises_clear(&mut self, service: &str, key: &str) -> Result<(), StoreError> {
        self.delete_prefix(Table::Promises, &schema::promise_prefix(service, key.as_bytes()))
    }
    fn delete_status(&mut self, id: &InvocationId) -> Result<(), StoreError> {
        self.delete(Table::InvocationStatus, &schema::invocation_status_key(&id.to_bytes()))
    }
    fn created_put(&mut self, id: &InvocationId, created_ms: u64) -> Result<(), StoreError> {
        self.put(Table::Created, &schema::created_key(created_ms, &id.to_bytes()), &[])
    }
    fn created_delete(&mut self, id: &InvocationId, created_ms: u64) -> Result<(), StoreError> {
        self.delete(Table::Created, &schema::created_key(created_ms, &id.to_bytes()))
    }
    fn journal_put(
        &mut self,
        id: &InvocationId,
        index: u32,
        ty: u16,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let mut v = Vec::with_capacity(2 + payload.len());
        v.extend_from_slice(&ty.to_be_bytes());
        v.extend_from_slice(payload);
        self.put(Table::Journal, &schema::journal_key(&id.to_bytes(), index), &v)
    }
    fn journal_delete(&mut self, id: &InvocationId) -> Result<(), StoreError> {
        self.delete_prefix(Table::Journal, &schema::journal_prefix(&id.to_bytes()))
    }
    fn journal_event_put(
        &mut self,
        id: &InvocationId,
        seq: u32,
        event: &JournalEvent,
    ) -> Result<(), StoreError> {
        let key = schema::journal_key(&id.to_bytes(), seq);
        self.put(Table::JournalEvents, &key, &event.encode_to_vec())
    }
    fn journal_events_delete(&mut self, id: &InvocationId) -> Result<(), StoreError> {
        self.delete_prefix(Table::JournalEvents, &schema::journal_prefix(&id.to_bytes()))
    }
    fn retained_put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.put(Table::Retained, key, value)
    }
    fn retained_delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.delete(Table::Retained, key)
    }
    fn state_put(
        &mut self,
        service: &str,
        key: &str,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        self.put(Table::State, &schema::state_key(service, key.as_bytes(), name), value)
    }
    fn state_delete(&mut self, service: &str, key: &str, name: &[u8]) -> Result<(), StoreError> {
        self.delete(Table::State, &schema::state_key(service, key.as_bytes(), name))
    }
    fn state_clear(&mut self, service: &str, key: &str) -> Result<(), StoreError> {
        self.delete_prefix(Table::State, &schema::state_prefix(service, key.as_bytes()))
    }
    fn set_lock(&mut self, service: &str, key: &str, id: &InvocationId) -> Result<(), StoreError> {
        self.put(
            Table::ObjectLock,
            &schema::object_lock_key(service, key.as_bytes()),
            &id.to_bytes(),
        )
    }
    fn clear_lock(&mut self, service: &str, key: &str) -> Result<(), StoreError> {
        self.delete(Table::ObjectLock, &schema::object_lock_key(service, key.as_bytes()))
    }
    fn inbox_push(
        &mut self,
        service: &str,
        key: &str,
        id: &InvocationId,
        life: u64,
    ) -> Result<(), StoreError> {
        let mut value = id.to_bytes().to_vec();
        value.extend_from_slice(&life.to_be_bytes());
        inbox_append(self, service, key, &value)
    }
    fn inbox_push_state(
        &mut self,
        service: &str,
        key: &str,
        m: &crate::fsm::ModifyState,
    ) -> Result<(), StoreError> {
        use prost::Message;
        let mut value = INBOX_STATE_TAG.to_vec();
        m.encode(&mut value).expect("a Vec grows");
        inbox_append(self, service, key, &value)
    }
    fn inbox_pop(&mut self, service: &str, key: &str) -> Result<Option<InboxEntry>, StoreError> {
        let first =
            self.scan_prefix(Table::Inbox, &schema::inbox_prefix(service, key.as_bytes()), 1)?;
        let Some((k, v)) = first.into_iter().next() else { return Ok(None) };
        self.delete(Table::Inbox, &k)?;
        decode_inbox_value(&v).map(Some)
    }
    fn timer_put(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
        life: u64,
    ) -> Result<(), StoreError> {
        let key = schema::timer_key(wake_ms, &id.to_bytes(), completion_id);
        self.put(Table::Timers, &key, &life.to_be_bytes())
    }
    fn timer_delete(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
    ) -> Result<Option<u64>, StoreError> {
        let key = schema::timer_key(wake_ms, &id.to_bytes(), completion_id);
        let Some(value) = self.get(Table::Timers, &key)? else { return Ok(None) };
        // Timers armed before lives existed have an empty value: life 0.
        let life = match value.as_slice() {
            [] => 0,
            v => u64::from_be_bytes(
                v.try_into().map_err(|_| corrupt(Table::Timers, "timer value is not a life"))?,
            ),
        };
        self.delete(Table::Timers, &key)?;
        Ok(Some(life))
    }
    fn set_leader_epoch(&mut self, epoch: u64) -> Result<(), StoreError> {
        self.set_meta_u64(schema::META_LEADER_EPOCH, epoch)
    }
    fn set_dedup_seq(&mut self, producer: u32, seq: u64) -> Result<(), StoreError> {
        self.put(Table::Dedup, &schema::dedup_key(&producer.to_be_bytes()), &seq.to_be_bytes())
    }
    fn outbox_push(
        &mut self,
        producer: u32,
        partition_key: u64,
        kind: record::Kind,
    ) -> Result<u64, StoreError> {
        let seq = self.meta_u64(schema::META_OUTBOX_SEQ_NEXT)?.unwrap_or(1);
        let header = RecordHeader { epoch: 0, producer, producer_seq: seq };
        let entry = OutboxEntry {
            partition_key,
            record: Some(Record { header: Some(header), kind: Some(kind) }),
        };
        self.put(Table::Outbox, &schema::outbox_key(seq), &entry.encode_to_vec())?;
        self.set_meta_u64(schema::META_OUTBOX_SEQ_NEXT, seq + 1)?;
        Ok(seq)
    }
    fn outbox_truncate(&mut self, seq_through: u64) -> Result<(), StoreError> {
        match seq_through.checked_add(1) {
            Some(end) => self.delete_range(Table::Outbox, &[], &schema::outbox_key(end)),
            None => self.delete_prefix(Table::Outbox, &[]),
        }
    }
    fn runnable_push(&mut self, id: &InvocationId) -> Result<u64, StoreError> {
        let seq = self.meta_u64(schema::META_RUNNABLE_SEQ_NEXT)?.unwrap_or(1);
        self.put(Table::Runnable, &schema::runnable_key(seq, &id.to_bytes()), &[])?;
        self.set_meta_u64(schema::META_RUNNABLE_SEQ_NEXT, seq + 1)?;
        Ok(seq)
    }
    fn runnable_delete(&mut self, seq: u64, id: &InvocationId) -> Result<(), StoreError> {
        self.delete(Table::Runnable, &schema::runnable_key(seq, &id.to_bytes()))
    }
}

/// Reads what the invoker needs to start `attempt` of `id`, or `None` if that attempt is no
/// longer the invocation's current one (it moved on, or finished). `lazy_state` says whether
/// a (service, handler) reads state lazily. Eager state is capped at
/// `eager_state_bytes_max` and marked partial past it, so the SDK reads the rest lazily.
pub fn load_attempt<R: ReadView>(
    r: &R,
    id: &InvocationId,
    (life, attempt): (u64, u32),
    lazy_state: &dyn Fn(&str, &str) -> bool,
    eager_state_bytes_max: usize,
) -> Result<Option<InvokeAttempt>, StoreError> {
    let Some(st) = r.status(id)? else { return Ok(None) };
    if st.phase() != Phase::Invoked || st.attempt != attempt || st.life != life {
        return Ok(None);
    }
    let journal = r.journal(id, st.journal_len)?;
    let kind = st.kind();
    let (state, partial_state) = if !kind.is_keyed() {
        (None, true)
    } else if lazy_state(&st.service, &st.handler) {
        (Some(Vec::new()), true)
    } else {
        let (entries, partial) = r.state_capped(&st.service, &st.key, eager_state_bytes_max)?;
        (Some(entries), partial)
    };
    let pinned =
        (!st.deployment_id.is_empty()).then(|| (st.deployment_id.clone(), st.protocol_version));
    Ok(Some(InvokeAttempt {
        id: *id,
        life: st.life,
        attempt,
        service: st.service.clone(),
        handler: st.handler.clone(),
        key: st.key.clone(),
        kind,
        journal,
        state,
        partial_state,
        pinned,
        retry_count: st.retry_count,
        failures: st.failures,
        modified_ms: st.modified_ms,
        next_retry_at_ms: st.next_retry_at_ms,
        random_seed: match st.random_seed {
            0 => crate::protocol::ids::random_seed(id),
            seed => seed,
        },
        idempotency_key: st.idempotency_key.clone(),
    }))
}

/// What waits behind an object's lock.
#[derive(Clone, Debug, PartialEq)]
pub enum InboxEntry {
    /// An invocation and the life it was queued as (0: queued before lives).
    Invocation(InvocationId, u64),
    /// A state replacement from the admin API, applied when its turn comes.
    State(crate::fsm::ModifyState),
}

/// The first bytes of an inbox value that is a state replacement; an invocation entry is its
/// id (which starts with its creation time, never this) and life.
const INBOX_STATE_TAG: &[u8] = b"\xffSTATE";

/// Appends `value` at the end of an object's inbox.
fn inbox_append<W: WriteView + ?Sized>(
    w: &mut W,
    service: &str,
    key: &str,
    value: &[u8],
) -> Result<(), StoreError> {
    let prefix = schema::inbox_prefix(service, key.as_bytes());
    let seq = match w.last_in_prefix(Table::Inbox, &prefix)? {
        Some((k, _)) => schema::decode_inbox_key(&k)?.2 + 1,
        None => 0,
    };
    w.put(Table::Inbox, &schema::inbox_key(service, key.as_bytes(), seq), value)
}

/// Decodes an inbox value (see [`INBOX_STATE_TAG`]).
pub fn decode_inbox_value(v: &[u8]) -> Result<InboxEntry, StoreError> {
    if let Some(m) = v.strip_prefix(INBOX_STATE_TAG) {
        use prost::Message;
        let m = crate::fsm::ModifyState::decode(m)
            .map_err(|_| corrupt(Table::Inbox, "inbox state replacement does not decode"))?;
        return Ok(InboxEntry::State(m));
    }
    let (id, life) = v.split_at(v.len().min(schema::INVOCATION_ID_BYTES));
    let life = match life {
        [] => 0,
        l => u64::from_be_bytes(
            l.try_into().map_err(|_| corrupt(Table::Inbox, "inbox value is not id and life"))?,
        ),
    };
    Ok(InboxEntry::Invocation(parse_id(Table::Inbox, id)?, life))
}
