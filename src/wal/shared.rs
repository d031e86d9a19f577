//! State the writer thread publishes for everyone else: per-log durable tails, the segment
//! index readers navigate with, the poison flag, and a watch that wakes tailing readers.
//!
//! Invariant: everything here describes durable data only. The writer updates it after a
//! flush (and every flush before it) completed, never before.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use segment_format::{LogId, Lsn, SegmentId, Seq};
use tokio::sync::watch;

use super::disk::DiskRead;
use super::WalError;

/// Durable state of one log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogTail {
    /// Last LSN whose flush completed (`Lsn::INVALID` if none).
    pub lsn_durable: Lsn,
    /// Records at or below this LSN may be gone.
    pub lsn_trim: Lsn,
    pub sealed: bool,
    /// Appends of writers with a lower epoch are refused (0: never fenced).
    pub epoch: u64,
}

/// Where one log's records sit in one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegLog {
    pub first: Lsn,
    pub last: Lsn,
    /// Offset of the first frame in the segment holding a record of this log.
    pub first_offset: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct SegMeta {
    pub name: String,
    pub logs: HashMap<LogId, SegLog>,
    /// End of the durable frames in this segment.
    pub end_offset: u64,
}

impl SegMeta {
    pub fn note(&mut self, log: LogId, lsn: Lsn, frame_offset: u64) {
        self.logs.entry(log).and_modify(|s| s.last = lsn).or_insert(SegLog {
            first: lsn,
            last: lsn,
            first_offset: frame_offset,
        });
    }
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    pub logs: HashMap<LogId, LogTail>,
    pub segments: BTreeMap<SegmentId, SegMeta>,
}

/// What recovery found, handed to the writer and to [`Shared`].
#[derive(Debug)]
pub(crate) struct Recovered {
    pub wal_id: u64,
    pub logs: HashMap<LogId, LogTail>,
    pub control_lsn_last: Lsn,
    pub segments: BTreeMap<SegmentId, SegMeta>,
    /// The segment appends continue in, with its write position.
    pub active: Option<(SegmentId, u64)>,
    /// Format version of the active segment's header: an older one is not written to again
    /// (a segment is written entirely in one version), the first flush rolls instead.
    pub active_format_version: u16,
    pub seq_next: Seq,
    pub segment_id_next: SegmentId,
    pub spares: Vec<String>,
    pub spare_number_next: u64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub engine: &'static str,
    pub wal_id: u64,
    pub reader: Arc<dyn DiskRead>,
    index: Mutex<Index>,
    pub durable_tx: watch::Sender<Seq>,
    poisoned: Mutex<Option<WalError>>,
    /// Flushes completed since open (one durable write each).
    pub flushes: AtomicU64,
    recent: Mutex<RecentFrames>,
    recent_bytes_max: usize,
    /// The writer stopped (cleanly, or after poisoning the WAL).
    writer_exited: std::sync::atomic::AtomicBool,
}

/// The most recently flushed frames, kept in memory for tailing readers: with O_DIRECT
/// writes the page cache never holds them, and a reader would otherwise go to the disk for
/// every record it tails.
#[derive(Debug, Default)]
struct RecentFrames {
    /// (segment, frame offset, offset after the frame and its padding, frame bytes).
    frames: std::collections::VecDeque<(SegmentId, u64, u64, Arc<[u8]>)>,
    bytes: usize,
}

/// A frame served from memory: its bytes and where the next frame starts.
pub(crate) struct CachedFrame {
    pub bytes: Arc<[u8]>,
    pub next_offset: u64,
}

impl Shared {
    pub fn new(
        engine: &'static str,
        reader: Arc<dyn DiskRead>,
        r: &Recovered,
        recent_bytes_max: usize,
    ) -> Shared {
        let index = Index { logs: r.logs.clone(), segments: r.segments.clone() };
        Shared {
            engine,
            wal_id: r.wal_id,
            reader,
            index: Mutex::new(index),
            durable_tx: watch::Sender::new(Seq(r.seq_next.0 - 1)),
            poisoned: Mutex::new(None),
            flushes: AtomicU64::new(0),
            recent: Mutex::default(),
            recent_bytes_max,
            writer_exited: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn tail(&self, log: LogId) -> LogTail {
        self.index().logs.get(&log).copied().unwrap_or_default()
    }

    pub fn logs(&self) -> Vec<LogId> {
        let mut v: Vec<LogId> = self.index().logs.keys().copied().collect();
        v.sort();
        v
    }

    /// Remembers a durable frame for readers (the writer calls this in `Seq` order).
    pub fn remember_frame(
        &self,
        segment: SegmentId,
        offset: u64,
        next_offset: u64,
        bytes: Arc<[u8]>,
    ) {
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        r.bytes += bytes.len();
        r.frames.push_back((segment, offset, next_offset, bytes));
        while r.bytes > self.recent_bytes_max {
            match r.frames.pop_front() {
                Some((_, _, _, b)) => r.bytes -= b.len(),
                None => break,
            }
        }
    }

    /// The durable frame at exactly `(segment, offset)`, if it is still in memory.
    pub fn recent_frame(&self, segment: SegmentId, offset: u64) -> Option<CachedFrame> {
        let r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let first = r.frames.front()?;
        if (segment, offset) < (first.0, first.1) {
            return None;
        }
        // Frames are in position order: binary search.
        let i = r.frames.binary_search_by(|f| (f.0, f.1).cmp(&(segment, offset))).ok()?;
        let (_, _, next_offset, bytes) = &r.frames[i];
        Some(CachedFrame { bytes: bytes.clone(), next_offset: *next_offset })
    }

    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    pub fn poisoned(&self) -> Option<WalError> {
        self.poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn writer_exited(&self) {
        self.writer_exited.store(true, Ordering::SeqCst);
        self.durable_tx.send_modify(|_| {});
    }

    pub fn has_writer_exited(&self) -> bool {
        self.writer_exited.load(Ordering::SeqCst)
    }

    pub fn poison(&self, e: WalError) {
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            *p = Some(e);
        }
        drop(p);
        // Wake readers so they observe the poison instead of waiting forever.
        self.durable_tx.send_modify(|_| {});
    }
}
