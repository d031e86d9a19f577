//! The shuffler: delivers a partition's outbox (calls, sends, responses written by `apply`)
//! to the target partitions' logs, in sequence order, and lets the log know what is done.
//!
//! Loop: read the next batch of outbox entries from the store (a read snapshot), group them
//! by target partition keeping their order, append each group to its target (the groups
//! concurrently: targets have no order between them), retry with back-off until every group
//! is durable, then move on. Every so often (and when idle) append a `TruncateOutbox` record
//! to the own log; applying it deletes the delivered entries.
//!
//! Invariants:
//! - An entry is deleted only by applying a `TruncateOutbox` appended after the entry's
//!   delivery was durable; a crash before that delivers it again, and the receiver drops the
//!   duplicate by its (producer, seq).
//! - For each target, entries arrive in outbox sequence order: a batch starts only after the
//!   previous one is durable everywhere.
//! - Memory and append sizes are bounded: a batch reads at most `batch_entries_max` entries
//!   and about `batch_bytes_max` bytes; an append to one target carries at most
//!   `append_bytes_max` bytes (one record always goes), so it always fits the log.
//! - A full disk or a target that is not running is waited out with back-off, never dropped;
//!   being fenced (a newer leader) ends the shuffler quietly; any other log failure ends it
//!   with an error for the supervisor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::watch;

use super::{AppendError, Handle, Router};
use crate::defect::{self, Defect};
use crate::fsm::{record, FsmRead, Record, TruncateOutbox};
use crate::store::PartitionStore;

/// Tuning of a shuffler.
#[derive(Clone, Debug)]
pub struct Options {
    /// Entries read and delivered per batch.
    pub batch_entries_max: usize,
    /// Bytes of entries read per batch (at least one entry is read). Bytes.
    pub batch_bytes_max: usize,
    /// Bytes of records in one append to a target (at least one record); a group larger than
    /// this goes in several appends, in order. Keeps every append well inside what the log
    /// takes at once (one segment's room). Bytes.
    pub append_bytes_max: usize,
    /// Delivered entries after which a truncation is appended even while busy.
    pub truncate_every_entries: u64,
    pub retry_delay_min: Duration,
    pub retry_delay_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_entries_max: 256,
            batch_bytes_max: 4 * 1024 * 1024,
            append_bytes_max: 1024 * 1024,
            truncate_every_entries: 1024,
            retry_delay_min: Duration::from_millis(10),
            retry_delay_max: Duration::from_secs(2),
        }
    }
}

/// Why a shuffler stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShufflerError {
    #[error("partition {partition} shuffler: reading the outbox: {source}")]
    Store { partition: u16, source: crate::store::StoreError },
    #[error("partition {partition} shuffler: {source}")]
    Append { partition: u16, source: AppendError },
}

/// Runs until `stop` turns true, the leader is fenced, or a fatal error.
pub async fn run(
    opts: Options,
    me: Handle,
    epoch: u64,
    store: Arc<PartitionStore>,
    router: Router,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ShufflerError> {
    let partition = me.id;
    let store_err = |source| ShufflerError::Store { partition, source };
    let mut next_seq = 1u64;
    let mut delivered_through = 0u64;
    let mut truncated_through = 0u64;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        // Marked seen before reading: an entry committed after the read wakes the wait below.
        wake.borrow_and_update();
        let batch = {
            let r = store.begin_read().map_err(store_err)?;
            r.outbox_from(next_seq, opts.batch_entries_max, opts.batch_bytes_max)
                .map_err(store_err)?
        };
        if batch.is_empty() {
            if delivered_through > truncated_through {
                match truncate(&opts, &me, epoch, delivered_through, &mut stop).await? {
                    Some(()) => truncated_through = delivered_through,
                    None => return Ok(()),
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => {}
                r = wake.changed() => if r.is_err() { return Ok(()) },
            }
            continue;
        }
        let last = batch.last().map(|(s, _)| *s).expect("batch is not empty");
        if defect::active(Defect::ShufflerTruncatesFirst) {
            match truncate(&opts, &me, epoch, last, &mut stop).await? {
                Some(()) => truncated_through = last,
                None => return Ok(()),
            }
        }
        // Group by target, each group in sequence order, cut into appends of bounded size.
        let mut groups: BTreeMap<u16, Vec<Vec<Record>>> = BTreeMap::new();
        for (_, entry) in batch {
            let Some(record) = entry.record else { continue };
            let target = router.for_key(entry.partition_key).id;
            let chunks = groups.entry(target).or_default();
            let size = record.encoded_len();
            let fits = chunks.last().is_some_and(|c| {
                c.iter().map(|r| r.encoded_len()).sum::<usize>() + size <= opts.append_bytes_max
            });
            if !fits {
                chunks.push(Vec::new());
            }
            chunks.last_mut().expect("a chunk exists").push(record);
        }
        if defect::active(Defect::ShufflerReorders) {
            for g in groups.values_mut() {
                for c in g.iter_mut() {
                    c.reverse();
                }
            }
        }
        let deliveries = groups.into_iter().map(|(target, chunks)| {
            let target = router.partitions[usize::from(target)].clone();
            let stop = stop.clone();
            let opts = opts.clone();
            async move {
                for records in chunks {
                    if !deliver(&opts, &target, records, stop.clone()).await? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        });
        for r in futures_util::future::join_all(deliveries).await {
            match r {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(source) => return Err(ShufflerError::Append { partition, source }),
            }
        }
        next_seq = last + 1;
        delivered_through = last;
        if delivered_through - truncated_through >= opts.truncate_every_entries {
            match truncate(&opts, &me, epoch, delivered_through, &mut stop).await? {
                Some(()) => truncated_through = delivered_through,
                None => return Ok(()),
            }
        }
    }
}

/// Appends `records` to `target` until durable; `Ok(false)` if stopped first.
async fn deliver(
    opts: &Options,
    target: &Handle,
    records: Vec<Record>,
    mut stop: watch::Receiver<bool>,
) -> Result<bool, AppendError> {
    let mut delay = opts.retry_delay_min;
    loop {
        match target.append(records.clone()).await {
            Ok(_) => return Ok(true),
            Err(e) if e.is_retryable() => {
                tracing::debug!(partition = target.id, "delivery waits: {e}");
            }
            Err(e) => return Err(e),
        }
        if defect::active(Defect::ShufflerDropsFailedDelivery) {
            return Ok(true);
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(false),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(opts.retry_delay_max);
    }
}

/// Appends a truncation for `through` as the leader of `epoch`; `Ok(None)` if stopped or
/// fenced first.
async fn truncate(
    opts: &Options,
    me: &Handle,
    epoch: u64,
    through: u64,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<()>, ShufflerError> {
    let rec = Record {
        header: None,
        kind: Some(record::Kind::TruncateOutbox(TruncateOutbox { seq_through: through })),
    };
    let mut delay = opts.retry_delay_min;
    loop {
        match me.append_as(epoch, vec![rec.clone()]).await {
            Ok(_) => return Ok(Some(())),
            Err(AppendError::Fenced { .. }) => return Ok(None),
            Err(e) if e.is_retryable() => {}
            Err(source) => return Err(ShufflerError::Append { partition: me.id, source }),
        }
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(opts.retry_delay_max);
    }
}
