//! The leader's retention pass: walks a partition's invocation statuses in pages, finds
//! completed invocations whose retention has passed, and appends `Expire` records naming them;
//! applying those forgets them.
//!
//! Invariants:
//! - The pass only proposes: `apply` purges an invocation only if, at the `Expire` record's
//!   time, it is completed and its `purge_at_ms` has passed, so a stale or repeated proposal
//!   changes nothing, and replay needs no clock or configuration.
//! - It never blocks processing: it reads from its own read transactions, one page of at
//!   most `page_rows` statuses at a time, pausing `page_pause` between pages and `interval`
//!   between passes; its appends go through the log like any record.
//! - A full disk or a lost leadership ends a pass quietly (the next pass or leader retries);
//!   only a log that failed for good is an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::{AppendError, Handle};
use crate::clock::SharedClock;
use crate::fsm::{record, Expire, FsmRead, Phase, Record};
use crate::protocol::ids::InvocationId;
use crate::store::PartitionStore;

#[derive(Clone, Debug)]
pub struct Options {
    /// Pause between two passes over the statuses.
    pub interval: Duration,
    /// Statuses read per page.
    pub page_rows: usize,
    /// Pause between two pages of one pass.
    pub page_pause: Duration,
    /// Invocations named by one `Expire` record.
    pub ids_per_record: usize,
    /// Store rows (statuses, kept journal entries and journal events) one `Expire` record
    /// deletes, about: a record holds at least one invocation, whatever its size.
    pub rows_per_record: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: Duration::from_secs(10),
            page_rows: 1024,
            page_pause: Duration::from_millis(10),
            ids_per_record: 1024,
            rows_per_record: 16_384,
        }
    }
}

/// Runs passes until `stop` is set; `Err` only when the log failed for good.
pub async fn run(
    opts: Options,
    me: Handle,
    epoch: u64,
    store: Arc<PartitionStore>,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) -> Result<(), AppendError> {
    let mut cursor: Option<InvocationId> = None;
    loop {
        let now_ms = clock.now_ms();
        let page = store.begin_read().and_then(|r| r.statuses_after(cursor, opts.page_rows.max(1)));
        let (expired, done) = match page {
            Ok(rows) => {
                let done = rows.len() < opts.page_rows.max(1);
                cursor = rows.last().map(|(id, _)| *id);
                let expired: Vec<(InvocationId, usize)> = rows
                    .into_iter()
                    .filter(|(_, st)| {
                        st.phase() == Phase::Completed
                            && st.purge_at_ms != 0
                            && st.purge_at_ms <= now_ms
                    })
                    .map(|(id, st)| (id, 1 + st.journal_len as usize + st.events_len as usize))
                    .collect();
                (expired, done)
            }
            // The store is being recovered (a full disk) or closing: try again next pass.
            Err(e) => {
                tracing::debug!(partition = me.id, "retention pass cannot read: {e}");
                (Vec::new(), true)
            }
        };
        for chunk in chunks(&expired, opts.ids_per_record.max(1), opts.rows_per_record) {
            let e = Expire {
                invocation_ids: chunk
                    .iter()
                    .map(|(id, _)| Bytes::copy_from_slice(&id.to_bytes()))
                    .collect(),
            };
            let rec = Record { header: None, kind: Some(record::Kind::Expire(e)) };
            match me.append_as(epoch, vec![rec]).await {
                Ok(_) => {}
                Err(e @ AppendError::Log { .. }) => return Err(e),
                // Fenced, full, not running: the next pass (or leader) proposes them again.
                Err(e) => {
                    tracing::debug!(partition = me.id, "retention pass cannot append: {e}");
                    break;
                }
            }
        }
        let pause = if done {
            cursor = None;
            opts.interval
        } else {
            opts.page_pause
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(()),
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Splits `(id, rows)` into runs of at most `ids_max` ids whose rows stay within `rows_max`
/// (a run has at least one id).
fn chunks<T>(items: &[(T, usize)], ids_max: usize, rows_max: usize) -> Vec<&[(T, usize)]> {
    let mut out = Vec::new();
    let (mut start, mut rows) = (0, 0usize);
    for (i, (_, r)) in items.iter().enumerate() {
        if i > start && (i - start >= ids_max || rows + r > rows_max) {
            out.push(&items[start..i]);
            (start, rows) = (i, 0);
        }
        rows += r;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn expire_records_are_bounded_in_ids_and_rows() {
        let sizes = |items: &[(u8, usize)], ids, rows| -> Vec<usize> {
            super::chunks(items, ids, rows).iter().map(|c| c.len()).collect()
        };
        let small: Vec<(u8, usize)> = (0..5).map(|i| (i, 1)).collect();
        assert_eq!(sizes(&small, 2, 100), vec![2, 2, 1]);
        assert_eq!(sizes(&small, 10, 3), vec![3, 2]);
        // One invocation over the row budget still gets its own record.
        let big = [(0u8, 1), (1, 50), (2, 1), (3, 1)];
        assert_eq!(sizes(&big, 10, 10), vec![1, 1, 2]);
        assert!(super::chunks::<u8>(&[], 10, 10).is_empty());
    }
}
