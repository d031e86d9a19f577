//! Readers of one log: durable records from an LSN on, waking when new ones become durable.
//!
//! A reader finds its starting segment through the shared index, then walks frames forward
//! with a [`Scanner`], never past a segment's durable end; frames flushed recently come from
//! the writer's in-memory copy instead of the disk. Records of other logs are skipped.
//! If the segment under it is recycled (its records were trimmed), it reports
//! [`WalError::Trimmed`] for LSNs at or below the trim point.

use std::collections::VecDeque;
use std::sync::Arc;

use segment_format::{
    decode_frame, LogId, Lsn, Position, Record, SegmentId, Seq, SEGMENT_HEADER_BYTES,
};
use tokio::sync::watch;

use super::scan::{Scanner, Step};
use super::shared::Shared;
use super::WalError;

/// Reads one log. Not shared between tasks; make one per consumer.
#[derive(Debug)]
pub struct Reader {
    shared: Arc<Shared>,
    log: LogId,
    next: Lsn,
    cursor: Option<(SegmentId, u64)>,
    scanner: Option<(SegmentId, Scanner)>,
    buffered: VecDeque<Record>,
    durable_rx: watch::Receiver<Seq>,
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, log: LogId, from: Lsn) -> Reader {
        let durable_rx = shared.durable_tx.subscribe();
        Reader {
            shared,
            log,
            next: from.max(Lsn::FIRST),
            cursor: None,
            scanner: None,
            buffered: VecDeque::new(),
            durable_rx,
        }
    }

    /// The LSN the next record will have.
    pub fn next_lsn(&self) -> Lsn {
        self.buffered.front().map_or(self.next, |r| r.lsn)
    }

    /// The next durable record, or `None` at the durable tail.
    pub fn try_next(&mut self) -> Result<Option<Record>, WalError> {
        if let Some(r) = self.buffered.pop_front() {
            return Ok(Some(r));
        }
        if let Some(e) = self.shared.poisoned() {
            return Err(e);
        }
        loop {
            let (name, end, seg_id, mut offset) = {
                let idx = self.shared.index();
                let tail = idx.logs.get(&self.log).copied().unwrap_or_default();
                if self.next > tail.lsn_durable {
                    return Ok(None);
                }
                if self.next <= tail.lsn_trim {
                    return Err(WalError::Trimmed {
                        log: self.log,
                        lsn: self.next,
                        lsn_trim: tail.lsn_trim,
                    });
                }
                let cursor = match self.cursor {
                    Some(c) if idx.segments.contains_key(&c.0) => c,
                    _ => {
                        let found = idx.segments.iter().find_map(|(id, m)| {
                            m.logs
                                .get(&self.log)
                                .filter(|s| s.last >= self.next)
                                .map(|s| (*id, s.first_offset))
                        });
                        match found {
                            Some(c) => c,
                            None => {
                                return Err(WalError::Trimmed {
                                    log: self.log,
                                    lsn: self.next,
                                    lsn_trim: tail.lsn_trim,
                                })
                            }
                        }
                    }
                };
                let meta = &idx.segments[&cursor.0];
                if cursor.1 >= meta.end_offset {
                    // Done with this segment: continue in the next one, if any.
                    match idx.segments.range(SegmentId(cursor.0 .0 + 1)..).next() {
                        Some((next_id, _)) => {
                            self.cursor = Some((*next_id, SEGMENT_HEADER_BYTES as u64));
                            continue;
                        }
                        None => return Ok(None),
                    }
                }
                (meta.name.clone(), meta.end_offset, cursor.0, cursor.1)
            };
            let scanner = match &mut self.scanner {
                Some((id, s)) if *id == seg_id => s,
                slot => {
                    *slot = Some((
                        seg_id,
                        Scanner::new(self.shared.reader.clone(), name.clone(), seg_id),
                    ));
                    &mut slot.as_mut().expect("just set").1
                }
            };
            if let Some(cached) = self.shared.recent_frame(seg_id, offset) {
                let at = Position { segment_id: seg_id, offset };
                let frame = decode_frame(&cached.bytes, at).map_err(|e| WalError::Corrupt {
                    file: name.clone(),
                    offset,
                    detail: format!("cached frame: {e}"),
                })?;
                self.take(frame.records);
                self.cursor = Some((seg_id, cached.next_offset));
                if let Some(r) = self.buffered.pop_front() {
                    return Ok(Some(r));
                }
                continue;
            }
            let step = match scanner.step(offset, end) {
                Ok(s) => s,
                Err(e) => {
                    if !self.shared.index().segments.contains_key(&seg_id) {
                        self.cursor = None; // recycled under us
                        continue;
                    }
                    return Err(e);
                }
            };
            match step {
                Step::Frame(f) => {
                    offset += f.len_bytes;
                    self.take(f.records);
                }
                Step::Skip(n) => offset = n,
                Step::End => offset = end,
                Step::Invalid(e) => {
                    if !self.shared.index().segments.contains_key(&seg_id) {
                        self.cursor = None;
                        continue;
                    }
                    return Err(WalError::Corrupt { file: name, offset, detail: e.to_string() });
                }
            }
            self.cursor = Some((seg_id, offset));
            if let Some(r) = self.buffered.pop_front() {
                return Ok(Some(r));
            }
        }
    }

    /// Keeps the records of this log that the reader has not returned yet.
    fn take(&mut self, records: Vec<Record>) {
        for r in records {
            if r.log_id == self.log && r.lsn >= self.next {
                debug_assert_eq!(r.lsn, self.next, "LSNs are contiguous");
                self.next = r.lsn.next();
                self.buffered.push_back(r);
            }
        }
    }

    /// The next record, waiting until one is durable.
    pub async fn next(&mut self) -> Result<Record, WalError> {
        loop {
            self.durable_rx.borrow_and_update();
            if let Some(r) = self.try_next()? {
                return Ok(r);
            }
            if self.durable_rx.changed().await.is_err() {
                return Err(self.shared.poisoned().unwrap_or(WalError::Closed));
            }
        }
    }
}
