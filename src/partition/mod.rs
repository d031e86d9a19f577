//! Partitions: routing by partition key, the [`Handle`] through which ingress and the invoker
//! reach a partition, and the [`processor`] that applies a partition's log to its store.
//!
//! Invariants:
//! - A partition's log is `LogId(partition id + 1)` in the node's one WAL.
//! - Partition keys map to partitions by range: partition `i` of `n` owns
//!   `[i * 2^64 / n, (i + 1) * 2^64 / n)`, so the mapping is stable for a given `n`.
//! - Ingress waiters are answered only by the processor, after the completing record was
//!   durable and applied.

pub mod processor;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prost::Message;
use segment_format::{LogId, Lsn};
use tokio::sync::oneshot;

use crate::fsm::{Outcome, Record};
use crate::protocol::ids::InvocationId;
use crate::wal::{Wal, WalError};

/// The partition owning `partition_key` among `n`.
pub fn partition_of(partition_key: u64, n: u16) -> u16 {
    ((u128::from(partition_key) * u128::from(n)) >> 64) as u16
}

/// The WAL log of partition `id`.
pub fn log_of(id: u16) -> LogId {
    LogId(u32::from(id) + 1)
}

/// Ingress requests waiting for an invocation's outcome, keyed by request id.
#[derive(Debug)]
pub struct Waiters {
    /// High bits unique per process start, so ids of a previous run never match.
    boot: u64,
    next: AtomicU64,
    map: Mutex<HashMap<u64, oneshot::Sender<(InvocationId, Outcome)>>>,
}

impl Waiters {
    pub fn new(boot_nonce: u64) -> Waiters {
        Waiters { boot: boot_nonce << 32, next: AtomicU64::new(1), map: Mutex::default() }
    }

    /// Registers a waiter; the returned guard removes it if the request goes away.
    pub fn register(
        self: &Arc<Self>,
    ) -> (u64, oneshot::Receiver<(InvocationId, Outcome)>, WaiterGuard) {
        let id = self.boot | (self.next.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF);
        let (tx, rx) = oneshot::channel();
        self.map.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        (id, rx, WaiterGuard { waiters: self.clone(), id })
    }

    pub fn complete(&self, request_id: u64, id: InvocationId, outcome: Outcome) {
        if let Some(tx) = self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&request_id) {
            let _ = tx.send((id, outcome));
        }
    }
}

/// Removes its waiter on drop (client disconnected before the answer).
#[derive(Debug)]
pub struct WaiterGuard {
    waiters: Arc<Waiters>,
    id: u64,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.waiters.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Appends records to one partition's log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Handle {
    pub id: u16,
    wal: Arc<Wal>,
}

impl Handle {
    pub fn new(id: u16, wal: Arc<Wal>) -> Handle {
        Handle { id, wal }
    }

    /// Appends records; resolves once they are durable.
    pub async fn append(&self, records: &[Record]) -> Result<Lsn, WalError> {
        let bodies = records.iter().map(|r| r.encode_to_vec()).collect();
        self.wal.append(log_of(self.id), bodies).await
    }
}

/// Every partition of the node, for routing by partition key.
#[derive(Clone, Debug)]
pub struct Router {
    pub partitions: Arc<Vec<Handle>>,
    pub waiters: Arc<Waiters>,
}

impl Router {
    pub fn for_key(&self, partition_key: u64) -> &Handle {
        let n = self.partitions.len() as u16;
        &self.partitions[usize::from(partition_of(partition_key, n))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ranges_cover_the_key_space_in_order() {
        assert_eq!(partition_of(0, 4), 0);
        assert_eq!(partition_of(u64::MAX, 4), 3);
        assert_eq!(partition_of(1 << 62, 4), 1);
        assert_eq!(partition_of((1 << 62) - 1, 4), 0);
        assert_eq!(partition_of(u64::MAX, 1), 0);
    }

    #[test]
    fn waiter_ids_differ_between_boots() {
        let a = Arc::new(Waiters::new(1));
        let b = Arc::new(Waiters::new(2));
        assert_ne!(a.register().0, b.register().0);
    }
}
