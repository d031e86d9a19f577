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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: Duration::from_secs(10),
            page_rows: 1024,
            page_pause: Duration::from_millis(10),
            ids_per_record: 1024,
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
                let expired: Vec<InvocationId> = rows
                    .into_iter()
                    .filter(|(_, st)| {
                        st.phase() == Phase::Completed
                            && st.purge_at_ms != 0
                            && st.purge_at_ms <= now_ms
                    })
                    .map(|(id, _)| id)
                    .collect();
                (expired, done)
            }
            // The store is being recovered (a full disk) or closing: try again next pass.
            Err(e) => {
                tracing::debug!(partition = me.id, "retention pass cannot read: {e}");
                (Vec::new(), true)
            }
        };
        for chunk in expired.chunks(opts.ids_per_record.max(1)) {
            let e = Expire {
                invocation_ids: chunk
                    .iter()
                    .map(|id| Bytes::copy_from_slice(&id.to_bytes()))
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
