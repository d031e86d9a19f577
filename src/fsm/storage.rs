//! The state machine's view of the partition store: typed operations on invocation statuses,
//! journals, object state, inboxes, locks and timers, implemented once over the store's
//! RocksDB-shaped [`WriteView`] with the key encodings of `store::schema`.
//!
//! Invariant: this is the only place where the state machine's types meet store keys, so a
//! change of encoding touches one file.

use bytes::Bytes;
use prost::Message;

use crate::protocol::ids::InvocationId;
use crate::store::{schema, Table, WriteView};

use super::{FsmError, Status};

fn store_err(e: impl std::fmt::Display) -> FsmError {
    FsmError::Store(e.to_string())
}

/// Scans are bounded: no object holds more state keys, no invocation more journal entries.
const SCAN_ENTRIES_MAX: usize = 1 << 20;

/// Typed store operations the state machine uses.
pub trait FsmStore {
    fn status(&self, id: &InvocationId) -> Result<Option<Status>, FsmError>;
    fn put_status(&mut self, id: &InvocationId, st: &Status) -> Result<(), FsmError>;
    fn journal_put(
        &mut self,
        id: &InvocationId,
        index: u32,
        ty: u16,
        payload: &[u8],
    ) -> Result<(), FsmError>;
    fn journal(&self, id: &InvocationId, len: u32) -> Result<Vec<(u16, Bytes)>, FsmError>;
    fn journal_delete(&mut self, id: &InvocationId, len: u32) -> Result<(), FsmError>;
    fn state_get(&self, service: &str, key: &str, name: &[u8])
        -> Result<Option<Vec<u8>>, FsmError>;
    fn state_put(
        &mut self,
        service: &str,
        key: &str,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), FsmError>;
    fn state_delete(&mut self, service: &str, key: &str, name: &[u8]) -> Result<(), FsmError>;
    fn state_clear(&mut self, service: &str, key: &str) -> Result<(), FsmError>;
    fn state_all(&self, service: &str, key: &str) -> Result<Vec<(Bytes, Bytes)>, FsmError>;
    fn lock(&self, service: &str, key: &str) -> Result<Option<InvocationId>, FsmError>;
    fn set_lock(&mut self, service: &str, key: &str, id: &InvocationId) -> Result<(), FsmError>;
    fn clear_lock(&mut self, service: &str, key: &str) -> Result<(), FsmError>;
    fn inbox_push(&mut self, service: &str, key: &str, id: &InvocationId) -> Result<(), FsmError>;
    fn inbox_pop(&mut self, service: &str, key: &str) -> Result<Option<InvocationId>, FsmError>;
    fn timer_put(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
    ) -> Result<(), FsmError>;
    fn timer_delete(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
    ) -> Result<(), FsmError>;
}

fn parse_id(bytes: &[u8]) -> Result<InvocationId, FsmError> {
    InvocationId::from_bytes(bytes)
        .map_err(|e| FsmError::Store(format!("stored invocation id: {e}")))
}

impl<W: WriteView> FsmStore for W {
    fn status(&self, id: &InvocationId) -> Result<Option<Status>, FsmError> {
        match self
            .get(Table::InvocationStatus, &schema::invocation_status_key(&id.to_bytes()))
            .map_err(store_err)?
        {
            Some(v) => Status::decode(v.as_slice()).map(Some).map_err(store_err),
            None => Ok(None),
        }
    }
    fn put_status(&mut self, id: &InvocationId, st: &Status) -> Result<(), FsmError> {
        self.put(
            Table::InvocationStatus,
            &schema::invocation_status_key(&id.to_bytes()),
            &st.encode_to_vec(),
        )
        .map_err(store_err)
    }
    fn journal_put(
        &mut self,
        id: &InvocationId,
        index: u32,
        ty: u16,
        payload: &[u8],
    ) -> Result<(), FsmError> {
        let mut v = Vec::with_capacity(2 + payload.len());
        v.extend_from_slice(&ty.to_be_bytes());
        v.extend_from_slice(payload);
        self.put(Table::Journal, &schema::journal_key(&id.to_bytes(), index), &v).map_err(store_err)
    }
    fn journal(&self, id: &InvocationId, len: u32) -> Result<Vec<(u16, Bytes)>, FsmError> {
        let rows = self
            .scan_prefix(Table::Journal, &schema::journal_prefix(&id.to_bytes()), SCAN_ENTRIES_MAX)
            .map_err(store_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for (_, v) in rows.into_iter().take(len as usize) {
            if v.len() < 2 {
                return Err(FsmError::Store("journal entry shorter than its type".into()));
            }
            let t = u16::from_be_bytes([v[0], v[1]]);
            out.push((t, Bytes::from(v).slice(2..)));
        }
        if out.len() != len as usize {
            return Err(FsmError::Store(format!(
                "journal has {} entries, status says {len}",
                out.len()
            )));
        }
        Ok(out)
    }
    fn journal_delete(&mut self, id: &InvocationId, _len: u32) -> Result<(), FsmError> {
        self.delete_prefix(Table::Journal, &schema::journal_prefix(&id.to_bytes()))
            .map_err(store_err)
    }
    fn state_get(
        &self,
        service: &str,
        key: &str,
        name: &[u8],
    ) -> Result<Option<Vec<u8>>, FsmError> {
        self.get(Table::State, &schema::state_key(service, key.as_bytes(), name)).map_err(store_err)
    }
    fn state_put(
        &mut self,
        service: &str,
        key: &str,
        name: &[u8],
        value: &[u8],
    ) -> Result<(), FsmError> {
        self.put(Table::State, &schema::state_key(service, key.as_bytes(), name), value)
            .map_err(store_err)
    }
    fn state_delete(&mut self, service: &str, key: &str, name: &[u8]) -> Result<(), FsmError> {
        self.delete(Table::State, &schema::state_key(service, key.as_bytes(), name))
            .map_err(store_err)
    }
    fn state_clear(&mut self, service: &str, key: &str) -> Result<(), FsmError> {
        self.delete_prefix(Table::State, &schema::state_prefix(service, key.as_bytes()))
            .map_err(store_err)
    }
    fn state_all(&self, service: &str, key: &str) -> Result<Vec<(Bytes, Bytes)>, FsmError> {
        let prefix = schema::state_prefix(service, key.as_bytes());
        let rows = self.scan_prefix(Table::State, &prefix, SCAN_ENTRIES_MAX).map_err(store_err)?;
        rows.into_iter()
            .map(|(k, v)| {
                let (_, _, name) = schema::decode_state_key(&k).map_err(store_err)?;
                Ok((Bytes::from(name), Bytes::from(v)))
            })
            .collect()
    }
    fn lock(&self, service: &str, key: &str) -> Result<Option<InvocationId>, FsmError> {
        match self
            .get(Table::ObjectLock, &schema::object_lock_key(service, key.as_bytes()))
            .map_err(store_err)?
        {
            Some(v) => parse_id(&v).map(Some),
            None => Ok(None),
        }
    }
    fn set_lock(&mut self, service: &str, key: &str, id: &InvocationId) -> Result<(), FsmError> {
        self.put(
            Table::ObjectLock,
            &schema::object_lock_key(service, key.as_bytes()),
            &id.to_bytes(),
        )
        .map_err(store_err)
    }
    fn clear_lock(&mut self, service: &str, key: &str) -> Result<(), FsmError> {
        self.delete(Table::ObjectLock, &schema::object_lock_key(service, key.as_bytes()))
            .map_err(store_err)
    }
    fn inbox_push(&mut self, service: &str, key: &str, id: &InvocationId) -> Result<(), FsmError> {
        let prefix = schema::inbox_prefix(service, key.as_bytes());
        let last =
            self.scan_prefix(Table::Inbox, &prefix, SCAN_ENTRIES_MAX).map_err(store_err)?.pop();
        let seq = match last {
            Some((k, _)) => schema::decode_inbox_key(&k).map_err(store_err)?.2 + 1,
            None => 0,
        };
        self.put(Table::Inbox, &schema::inbox_key(service, key.as_bytes(), seq), &id.to_bytes())
            .map_err(store_err)
    }
    fn inbox_pop(&mut self, service: &str, key: &str) -> Result<Option<InvocationId>, FsmError> {
        let first = self
            .scan_prefix(Table::Inbox, &schema::inbox_prefix(service, key.as_bytes()), 1)
            .map_err(store_err)?;
        let Some((k, v)) = first.into_iter().next() else { return Ok(None) };
        self.delete(Table::Inbox, &k).map_err(store_err)?;
        parse_id(&v).map(Some)
    }
    fn timer_put(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
    ) -> Result<(), FsmError> {
        self.put(Table::Timers, &schema::timer_key(wake_ms, &id.to_bytes(), completion_id), &[])
            .map_err(store_err)
    }
    fn timer_delete(
        &mut self,
        wake_ms: u64,
        id: &InvocationId,
        completion_id: u32,
    ) -> Result<(), FsmError> {
        self.delete(Table::Timers, &schema::timer_key(wake_ms, &id.to_bytes(), completion_id))
            .map_err(store_err)
    }
}
