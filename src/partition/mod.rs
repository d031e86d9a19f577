//! Partitions: routing by partition key, the [`Handle`] through which ingress, the invoker,
//! the shuffler and timers append to a partition's log, each partition's liveness, and the
//! [`processor`] that leads a partition: applies its log, delivers its outbox ([`shuffler`]),
//! fires its timers ([`timers`]) and drives its invoker.
//!
//! Invariants:
//! - A partition's log is `LogId(partition id + 1)` in the node's log store.
//! - Partition keys map to partitions by range: partition `i` of `n` owns
//!   `[i * 2^64 / n, (i + 1) * 2^64 / n)`, so the mapping is stable for a given `n`; keys are
//!   well mixed (xxh3), so ranges of equal width hold equal shares.
//! - Nothing is acknowledged for a partition that is not running: [`Handle::append`] refuses
//!   with [`AppendError::Unavailable`] unless its leader is up, and stamps every record with
//!   the leader's epoch, so a record written for an older leader is fenced by the log or
//!   ignored by `apply`.
//! - Ingress waiters are answered only by the processor, after the completing record was
//!   durable and applied.

pub mod processor;
pub mod retention;
pub mod shuffler;
pub mod timers;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prost::Message;
use segment_format::{LogId, Lsn};
use tokio::sync::{oneshot, watch};

use crate::codes::Code;
use crate::fsm::{Outcome, Record, RecordHeader};
use crate::log::{LogError, SharedLog};
use crate::protocol::ids::InvocationId;

/// The partition owning `partition_key` among `n`.
pub fn partition_of(partition_key: u64, n: u16) -> u16 {
    ((u128::from(partition_key) * u128::from(n)) >> 64) as u16
}

/// The log of partition `id`.
pub fn log_of(id: u16) -> LogId {
    LogId(u32::from(id) + 1)
}

/// Longest wait of [`Handle::applied_caught_up`]: how long a read that found nothing waits
/// for the log it saw to be applied before it answers that something does not exist.
pub const APPLY_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a partition's leader is in its life; what the health endpoints report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Opening its store and replaying its log.
    Starting,
    /// Leading at an epoch: accepts appends.
    Running { epoch: u64 },
    /// Its store failed on a full disk: reopening and replaying by itself.
    Recovering { reason: String },
    /// Stopped for good (the process is stopping).
    Stopped { reason: String },
}

impl Liveness {
    pub fn is_running(&self) -> bool {
        matches!(self, Liveness::Running { .. })
    }
}

/// Why an append through a [`Handle`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The partition has no running leader; nothing was written. Retryable.
    #[error("{}", crate::codes::message(Code::PartitionUnavailable, format!("partition {partition} is not running ({state}); retry later")))]
    Unavailable { partition: u16, state: String },
    /// The disk is full; nothing was written. Retryable once space returns.
    #[error(
        "{}",
        crate::codes::message(
            Code::DiskFull,
            "the disk is full; nothing was written, retry once space is freed"
        )
    )]
    NoSpace,
    /// A newer leader took over; this writer's records are refused. Retryable: the request
    /// reaches the new leader next time (to a client it is the same as `Unavailable`).
    #[error("{}", crate::codes::message(Code::PartitionUnavailable, format!("partition {partition} changed leader (epoch {log_epoch} > {epoch}); nothing was written, retry")))]
    Fenced { partition: u16, epoch: u64, log_epoch: u64 },
    /// A record is over the log's size limit; nothing was written.
    #[error("{}", crate::codes::message(Code::MessageTooLarge, format!("record of {bytes} bytes is over the log's limit of {limit_bytes} bytes")))]
    TooLarge { bytes: usize, limit_bytes: usize },
    /// The log failed for good (the process stops).
    #[error("partition {partition}: {source}")]
    Log { partition: u16, source: LogError },
}

impl AppendError {
    fn from_log(partition: u16, e: LogError) -> AppendError {
        match e {
            LogError::NoSpace { .. } => AppendError::NoSpace,
            LogError::Fenced { epoch, log_epoch, .. } => {
                AppendError::Fenced { partition, epoch, log_epoch }
            }
            LogError::TooLarge { bytes, limit_bytes } => {
                AppendError::TooLarge { bytes, limit_bytes }
            }
            source => AppendError::Log { partition, source },
        }
    }

    /// Whether retrying later can succeed (the process is not stopping because of it).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AppendError::Unavailable { .. } | AppendError::NoSpace | AppendError::Fenced { .. }
        )
    }
}

#[derive(Debug)]
struct Shared {
    epoch: AtomicU64,
    liveness: watch::Sender<Liveness>,
    /// The running leader's store, for read snapshots (introspection, the simulator).
    store: Mutex<Option<Arc<crate::store::PartitionStore>>>,
    /// The last LSN applied to the store, for watchers of changes (the UI's event feed).
    applied: watch::Sender<u64>,
}

/// Appends records to one partition's log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Handle {
    pub id: u16,
    log: SharedLog,
    shared: Arc<Shared>,
}

impl Handle {
    pub fn new(id: u16, log: SharedLog) -> Handle {
        Handle {
            id,
            log,
            shared: Arc::new(Shared {
                epoch: AtomicU64::new(0),
                liveness: watch::Sender::new(Liveness::Starting),
                store: Mutex::new(None),
                applied: watch::Sender::new(0),
            }),
        }
    }

    /// Waits until what this partition's log held when called is applied to its store, at
    /// most [`APPLY_WAIT_MAX`]: a read after it sees every record acknowledged before the
    /// call (a send is answered once its record is durable, and applied a moment later).
    /// Returns at once when the partition does not run.
    pub async fn applied_caught_up(&self) {
        let Some(store) = self.store() else { return };
        let durable = self.log.tail(log_of(self.id)).lsn_durable;
        let deadline = std::time::Instant::now() + APPLY_WAIT_MAX;
        while store.lsn_applied().is_ok_and(|applied| applied < durable)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub fn log(&self) -> &SharedLog {
        &self.log
    }

    pub fn liveness(&self) -> Liveness {
        self.shared.liveness.borrow().clone()
    }

    /// Watches liveness changes.
    pub fn subscribe(&self) -> watch::Receiver<Liveness> {
        self.shared.liveness.subscribe()
    }

    pub(crate) fn set_liveness(&self, l: Liveness) {
        if let Liveness::Running { epoch } = l {
            self.shared.epoch.store(epoch, Ordering::SeqCst);
        }
        self.shared.liveness.send_replace(l);
    }

    /// Watches the last LSN applied to the store: it changes after every applied batch.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.shared.applied.subscribe()
    }

    pub(crate) fn set_applied(&self, lsn: u64) {
        self.shared.applied.send_replace(lsn);
    }

    pub(crate) fn set_store(&self, store: Option<Arc<crate::store::PartitionStore>>) {
        *self.shared.store.lock().unwrap_or_else(|p| p.into_inner()) = store;
    }

    /// The running leader's store, to take read snapshots of; `None` while it does not run.
    /// Holding it keeps the store open: drop it soon.
    pub fn store(&self) -> Option<Arc<crate::store::PartitionStore>> {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The running leader's epoch, if it runs.
    pub fn epoch(&self) -> Option<u64> {
        match &*self.shared.liveness.borrow() {
            Liveness::Running { epoch } => Some(*epoch),
            _ => None,
        }
    }

    /// Appends records for the running leader; resolves once they are durable. Refused when
    /// the partition does not run. A leader change under the append is retried once.
    pub async fn append(&self, records: Vec<Record>) -> Result<Lsn, AppendError> {
        let mut tries = 0;
        loop {
            let Some(epoch) = self.epoch() else {
                return Err(AppendError::Unavailable {
                    partition: self.id,
                    state: format!("{:?}", self.liveness()),
                });
            };
            match self.append_as(epoch, records.clone()).await {
                Err(AppendError::Fenced { .. }) if tries == 0 => tries += 1,
                r => return r,
            }
        }
    }

    /// Appends records as a writer of `epoch` (the leader's own writers: attempts, timers,
    /// the shuffler's truncations): `Fenced` once a newer leader took over.
    ///
    /// Records that together exceed what one log append carries go in several appends, in
    /// order; an error may then come after some of them are durable. Every producer copes:
    /// the records are effects an attempt's replay finds in the journal, or deliveries the
    /// receiver deduplicates.
    pub async fn append_as(
        &self,
        epoch: u64,
        mut records: Vec<Record>,
    ) -> Result<Lsn, AppendError> {
        let bodies: Vec<Vec<u8>> = records
            .iter_mut()
            .map(|r| {
                let mut h = r.header.unwrap_or_default();
                h.epoch = epoch;
                r.header = Some(RecordHeader { ..h });
                r.encode_to_vec()
            })
            .collect();
        let mut last = None;
        for chunk in split_appends(bodies, self.log.append_bytes_max()) {
            let lsn = self
                .log
                .append(log_of(self.id), epoch, chunk)
                .await
                .map_err(|e| AppendError::from_log(self.id, e))?;
            last = Some(lsn);
        }
        Ok(last.unwrap_or_else(|| self.log.tail(log_of(self.id)).lsn_durable))
    }
}

/// Splits bodies, in order, into appends of at most `max` bytes each (counted as the log
/// counts them); a body over `max` goes alone, for the log to refuse with its limit.
pub fn split_appends(bodies: Vec<Vec<u8>>, max: usize) -> Vec<Vec<Vec<u8>>> {
    if crate::defect::active(crate::defect::Defect::AppendsNotSplit) {
        return vec![bodies];
    }
    let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut bytes = 0;
    for b in bodies {
        let size = b.len() + crate::log::APPEND_RECORD_OVERHEAD_BYTES;
        match out.last_mut() {
            Some(cur) if bytes + size <= max => cur.push(b),
            _ => {
                out.push(vec![b]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    out
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

    /// Whether every partition runs.
    pub fn all_running(&self) -> bool {
        self.partitions.iter().all(|p| p.liveness().is_running())
    }

    /// Resolves once every partition runs at the same moment (woken by liveness changes,
    /// not polled).
    pub async fn until_all_running(&self) {
        while !self.all_running() {
            for p in self.partitions.iter() {
                // The sender lives in the handle held here, so this only ends by running.
                let _ = p.subscribe().wait_for(Liveness::is_running).await;
            }
        }
    }

    /// (partition id, liveness) of every partition.
    pub fn liveness(&self) -> Vec<(u16, Liveness)> {
        self.partitions.iter().map(|p| (p.id, p.liveness())).collect()
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
