//! The leader's retention pass: reads the retained blocks whose time bucket has ended and
//! appends `Expire` records naming them; applying those forgets their members (and their
//! kept journals) and deletes the blocks (see `fsm::retained`).
//!
//! Invariants:
//! - The pass only proposes: `apply` forgets a member only if, at the `Expire` record's time,
//!   the block's bucket has ended and the member is still the completed life the block names,
//!   so a stale or repeated proposal changes nothing, and replay needs no clock or
//!   configuration.
//! - Its work is proportional to what expired, not to what is kept: blocks are keyed by time,
//!   so it reads only the due ones, at most `blocks_per_pass` per pass.
//! - It never blocks processing: it reads from its own read transactions, pausing
//!   `page_pause` between full pages and `interval` between passes; its appends go through the
//!   log like any record.
//! - A full disk or a lost leadership ends a pass quietly (the next pass or leader retries);
//!   only a log that failed for good is an error.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::{AppendError, Handle};
use crate::clock::SharedClock;
use crate::fsm::{record, retained, Expire, FsmRead, Record};
use crate::store::PartitionStore;

#[derive(Clone, Debug)]
pub struct Options {
    /// Pause between two passes.
    pub interval: Duration,
    /// Due blocks read per pass.
    pub blocks_per_pass: usize,
    /// Pause before the next pass when a pass found a full page of due blocks.
    pub page_pause: Duration,
    /// Store rows (statuses, journal rows left in place, journal events) one `Expire` record
    /// deletes, about: a record names at least one block, whatever its size (a block holds at
    /// most one window of 128 completions).
    pub rows_per_record: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: Duration::from_secs(10),
            blocks_per_pass: 256,
            page_pause: Duration::from_millis(10),
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
    // The last block proposed: its record may not be applied yet when the next page is read.
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let now_ms = clock.now_ms();
        let due = store.begin_read().and_then(|r| {
            let keys = r.retained_due(cursor.as_deref(), now_ms, opts.blocks_per_pass.max(1))?;
            let mut sized = Vec::with_capacity(keys.len());
            for k in keys {
                // Each member deletes its status and its rows; the counts are uncompressed.
                match r.retained_value(&k)?.map(|v| retained::head(&v)).transpose() {
                    Ok(Some((members, rows))) => {
                        let weight = (members as usize).saturating_add(rows as usize);
                        sized.push((k, weight))
                    }
                    Ok(None) => {}
                    // Left alone (and reported): the rest still expire.
                    Err(e) => tracing::warn!(partition = me.id, "retained block {k:?}: {e}"),
                }
            }
            Ok(sized)
        });
        let (due, full) = match due {
            Ok(due) => {
                let full = due.len() >= opts.blocks_per_pass.max(1);
                (due, full)
            }
            // The store is being recovered (a full disk) or closing: try again next pass.
            Err(e) => {
                tracing::debug!(partition = me.id, "retention pass cannot read: {e}");
                (Vec::new(), false)
            }
        };
        let mut appended = true;
        for chunk in chunks(&due, usize::MAX, opts.rows_per_record) {
            let e = Expire {
                invocation_ids: Vec::new(),
                retained_blocks: chunk.iter().map(|(k, _)| Bytes::copy_from_slice(k)).collect(),
            };
            let rec = Record { header: None, kind: Some(record::Kind::Expire(e)) };
            match me.append_as(epoch, vec![rec]).await {
                Ok(_) => {}
                Err(e @ AppendError::Log { .. }) => return Err(e),
                // Fenced, full, not running: the next pass (or leader) proposes them again.
                Err(e) => {
                    tracing::debug!(partition = me.id, "retention pass cannot append: {e}");
                    appended = false;
                    break;
                }
            }
        }
        // After a short page (or a failure) the next pass starts over, so nothing proposed in
        // vain is left behind.
        let pause = if full && appended {
            cursor = due.last().map(|(k, _)| k.clone());
            opts.page_pause
        } else {
            cursor = None;
            opts.interval
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
