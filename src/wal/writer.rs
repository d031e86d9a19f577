//! The WAL writer thread: group commit, segment rolling, spare preparation, recycling.
//! The simulator runs the same loop as a future (`Writer::run_async`); only how it waits
//! differs (`Pace`).
//!
//! Loop: take queued requests (blocking only when idle), turn as many as fit into ONE frame
//! per flush (so a flush is atomic on disk), submit it as a durable write, and while it runs
//! let new requests queue up: they ride the next flush. Up to `Disk::inflight_max` flushes
//! may be in flight when enough bytes are waiting; completions may arrive in any order, but
//! results are published and acknowledged strictly in `Seq` order.
//!
//! Invariants:
//! - `inflight.len() <= min(disk.inflight_max(), FLUSHES_INFLIGHT_MAX)`: recovery relies on it.
//! - No flush is in flight in two segments at once: a roll drains all in-flight flushes first.
//! - Every segment's first flush starts with a checkpoint record and carries the header.
//! - After any error on the durable path the writer poisons the WAL and stops.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;

use segment_format::{
    align_up, encode_batch_frame, encode_record_frame, frame_bytes_for, ControlRecord,
    LogCheckpoint, LogId, Lsn, Position, RecordRef, SegmentHeader, SegmentId, Seq, BLOCK_BYTES,
    FLUSHES_INFLIGHT_MAX, FRAME_HEADER_BYTES, LOG_ID_CONTROL, SEGMENT_HEADER_BYTES,
};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::sync::oneshot;

use super::disk::{Completion, Disk, FileId, IoBuf, Submission};
use super::recovery::{zero_range, ZERO_CHUNK_BYTES};
use super::shared::{Recovered, SegMeta, Shared};
use super::{segment_name, Options, Request, WalError};

#[derive(Clone, Copy, Debug, Default)]
struct LogState {
    last: Lsn,
    trim: Lsn,
    sealed: bool,
    epoch: u64,
}

struct Active {
    id: SegmentId,
    file: FileId,
    /// Where the next frame goes.
    pos: u64,
    bytes: u64,
    header_pending: bool,
    /// End of the previous segment's frames, recorded in this segment's header.
    prev_end_offset: u32,
    /// Written by an older format version: roll before writing to it.
    outdated: bool,
}

struct Prep {
    name: String,
    number: u64,
    file: FileId,
    done_bytes: u64,
    /// Its size: the configured segment size, or [`FIRST_SEGMENT_BYTES`] for a segment a
    /// roll waits for with no spare ready.
    target_bytes: u64,
}

/// Size of a segment prepared while a roll waits for it (no spare ready, as on the first
/// start of a new data directory): zero filling a whole segment there would hold the
/// first append, and so the start, for tens of milliseconds. Segments may differ in size
/// (each header records its own); full-size spares are prepared in the background.
const FIRST_SEGMENT_BYTES: u64 = 256 * 1024;

enum Ack {
    Append(oneshot::Sender<Result<Lsn, WalError>>, Lsn),
    Trim(oneshot::Sender<Result<(), WalError>>),
    Seal(oneshot::Sender<Result<Lsn, WalError>>, Lsn),
    Fence(oneshot::Sender<Result<Lsn, WalError>>, Lsn),
}

impl Ack {
    fn fail(self, e: WalError) {
        match self {
            Ack::Append(tx, _) => drop(tx.send(Err(e))),
            Ack::Trim(tx) => drop(tx.send(Err(e))),
            Ack::Seal(tx, _) => drop(tx.send(Err(e))),
            Ack::Fence(tx, _) => drop(tx.send(Err(e))),
        }
    }
    fn succeed(self) {
        match self {
            Ack::Append(tx, lsn) => drop(tx.send(Ok(lsn))),
            Ack::Trim(tx) => drop(tx.send(Ok(()))),
            Ack::Seal(tx, lsn) => drop(tx.send(Ok(lsn))),
            Ack::Fence(tx, lsn) => drop(tx.send(Ok(lsn))),
        }
    }
}

/// One record source of a flush, in request order.
enum Item {
    Control(Vec<u8>, Lsn),
    Append(LogId, Lsn, Vec<Vec<u8>>),
}

struct Flush {
    seq: Seq,
    done: bool,
    /// Its durable write failed with ENOSPC.
    no_space: bool,
    /// It carried its segment's header (the segment's first write).
    with_header: bool,
    /// The control log's last LSN once this flush is durable.
    control_lsn: Lsn,
    segment: SegmentId,
    offset: u64,
    end: u64,
    acks: Vec<Ack>,
    /// (log, first, last) appended by this flush.
    appended: Vec<(LogId, Lsn, Lsn)>,
    trims: Vec<(LogId, Lsn)>,
    seals: Vec<LogId>,
    fences: Vec<(LogId, u64)>,
    /// The encoded frame, handed to readers' cache once durable.
    frame: Option<Arc<[u8]>>,
    /// When its durable write was submitted, and how many bytes it writes (metrics).
    submitted: std::time::Instant,
    write_bytes: usize,
}

pub(crate) struct Writer<D: Disk> {
    disk: D,
    opts: Options,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    wal_id: u64,
    active: Option<Active>,
    segment_id_next: SegmentId,
    seq_next: Seq,
    logs: HashMap<LogId, LogState>,
    control_lsn_last: Lsn,
    /// The control log's last durable LSN (what a rewind goes back to).
    control_lsn_durable: Lsn,
    /// The end offset the next segment's header records, when the active segment was given
    /// up after a failed first write.
    prev_end_override: Option<u32>,
    spares: VecDeque<String>,
    spare_number_next: u64,
    prep: Option<Prep>,
    /// Spare preparation hit a full disk; resume at the next roll.
    prep_paused: bool,
    inflight: VecDeque<Flush>,
    inflight_max: usize,
    aligned: bool,
    bufs: Vec<IoBuf>,
    buf_bytes: usize,
    pending: VecDeque<Request>,
    pending_bytes: usize,
    scratch: Vec<u8>,
    completions: Vec<Completion>,
}

fn request_bytes(r: &Request) -> usize {
    match r {
        Request::Append { bodies, .. } => {
            bodies.iter().map(|b| frame_bytes_for(b.len()) as usize).sum()
        }
        _ => frame_bytes_for(16) as usize,
    }
}

impl<D: Disk> Writer<D> {
    pub fn new(
        mut disk: D,
        opts: Options,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Request>,
        r: Recovered,
    ) -> Result<Writer<D>, WalError> {
        let inflight_max = disk.inflight_max().clamp(1, FLUSHES_INFLIGHT_MAX as usize);
        let aligned = disk.needs_aligned_writes();
        // Room for a header block, a full flush, frame headers and alignment.
        let buf_bytes = SEGMENT_HEADER_BYTES + opts.flush_bytes_max + 4 * BLOCK_BYTES;
        let mut bufs: Vec<IoBuf> = (0..inflight_max).map(|_| IoBuf::new(buf_bytes)).collect();
        disk.register_buffers(&mut bufs).map_err(|e| WalError::io("register buffers", &e))?;
        let active = match r.active {
            Some((id, pos)) => {
                let file = disk
                    .open(&segment_name(id), false)
                    .map_err(|e| WalError::io("open segment", &e))?;
                let bytes = disk.file_len(file).map_err(|e| WalError::io("stat segment", &e))?;
                let pos = if aligned { align_up(pos, BLOCK_BYTES as u64) } else { pos };
                Some(Active {
                    id,
                    file,
                    pos,
                    bytes,
                    header_pending: false,
                    prev_end_offset: 0,
                    outdated: r.active_format_version < segment_format::FORMAT_VERSION,
                })
            }
            None => None,
        };
        let logs = r
            .logs
            .iter()
            .map(|(l, t)| {
                (
                    *l,
                    LogState {
                        last: t.lsn_durable,
                        trim: t.lsn_trim,
                        sealed: t.sealed,
                        epoch: t.epoch,
                    },
                )
            })
            .collect();
        Ok(Writer {
            disk,
            opts,
            shared,
            rx,
            wal_id: r.wal_id,
            active,
            segment_id_next: r.segment_id_next,
            seq_next: r.seq_next,
            logs,
            control_lsn_last: r.control_lsn_last,
            control_lsn_durable: r.control_lsn_last,
            prev_end_override: None,
            spares: r.spares.into(),
            spare_number_next: r.spare_number_next,
            prep: None,
            prep_paused: false,
            inflight: VecDeque::new(),
            inflight_max,
            aligned,
            bufs,
            buf_bytes,
            pending: VecDeque::new(),
            pending_bytes: 0,
            scratch: Vec::new(),
            completions: Vec::new(),
        })
    }

    pub fn run(mut self) {
        // A panic poisons the WAL like an I/O failure: every appender and reader gets an
        // error naming it, and nothing waits forever on a writer that is gone.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Every wait of `Blocking` is over when polled: one poll runs the whole loop.
            futures_util::FutureExt::now_or_never(self.run_loop(&mut Blocking))
                .expect("the blocking writer loop never waits for a wake-up")
        }));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.poison(e),
            Err(panic) => self.poison(WalError::Io {
                op: "writer thread",
                message: format!("panicked: {}", panic_message(&panic)),
            }),
        }
        self.shared.writer_exited();
    }

    /// The loop of [`Writer::run`] as a future (see `Wal::open_inline`): waits for requests
    /// with `.await` instead of blocking, lets `latency` of virtual time pass before reaping
    /// completions, and yields between chunks of background work.
    pub async fn run_async(mut self, latency: impl FnMut() -> std::time::Duration) {
        if let Err(e) = self.run_loop(&mut Inline { latency }).await {
            self.poison(e);
        }
        self.shared.writer_exited();
    }

    fn push(&mut self, r: Request) {
        self.pending_bytes += request_bytes(&r);
        self.pending.push_back(r);
    }

    /// The writer loop of both the thread and the inline writer; `pace` is how it waits.
    async fn run_loop(&mut self, pace: &mut impl Pace) -> Result<(), WalError> {
        let mut open = true;
        loop {
            if open && self.pending.is_empty() && self.inflight.is_empty() {
                if self.spare_wanted() && !self.prep_paused {
                    match self.rx.try_recv() {
                        Ok(r) => self.push(r),
                        Err(TryRecvError::Empty) => {
                            self.prep_background()?;
                            pace.after_background().await;
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => open = false,
                    }
                } else {
                    match pace.recv(&mut self.rx).await {
                        Some(r) => self.push(r),
                        None => open = false,
                    }
                }
            }
            while open && self.pending_bytes < self.opts.flush_bytes_max {
                match self.rx.try_recv() {
                    Ok(r) => self.push(r),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            if !open && self.pending.is_empty() && self.inflight.is_empty() {
                return Ok(());
            }
            while !self.pending.is_empty()
                && self.inflight.len() < self.inflight_max
                && (self.inflight.is_empty()
                    || self.pending_bytes >= self.opts.flush_pipeline_bytes_min)
            {
                self.flush_one()?;
            }
            if !self.inflight.is_empty() {
                pace.before_reap().await;
                self.reap(1)?;
            }
            if self.spare_urgent() && !self.prep_paused {
                self.prep_background()?;
            }
        }
    }

    /// Bytes the first pending request needs in a fresh frame.
    fn frame_bytes_needed(&self, first_in_segment: bool) -> u64 {
        let mut n =
            FRAME_HEADER_BYTES as u64 + self.pending.front().map_or(0, |r| request_bytes(r) as u64);
        if first_in_segment {
            n += frame_bytes_for(segment_format::checkpoint_body_bytes(self.logs.len()));
        }
        n
    }

    fn fits(&self, a: &Active, frame_bytes: u64) -> bool {
        let end = a.pos + frame_bytes;
        let end = if self.aligned { align_up(end, BLOCK_BYTES as u64) } else { end };
        end <= a.bytes
    }

    /// Builds one frame from the front of the queue and submits it.
    fn flush_one(&mut self) -> Result<(), WalError> {
        let need_roll = match &self.active {
            None => true,
            Some(a) => a.outdated || !self.fits(a, self.frame_bytes_needed(a.header_pending)),
        };
        if need_roll {
            let segment_room =
                self.opts.segment_bytes - SEGMENT_HEADER_BYTES as u64 - BLOCK_BYTES as u64;
            if self.frame_bytes_needed(true) > segment_room {
                let r = self.pending.pop_front().expect("pending is not empty");
                self.pending_bytes -= request_bytes(&r);
                let bytes = request_bytes(&r);
                r.fail(WalError::TooLarge { bytes, limit_bytes: segment_room as usize });
                return Ok(());
            }
            if let Err(e) = self.roll() {
                if let WalError::NoSpace { .. } = e {
                    // Nothing was written: fail what needed the space, stay usable.
                    for r in self.pending.drain(..) {
                        r.fail(e.clone());
                    }
                    self.pending_bytes = 0;
                    return Ok(());
                }
                return Err(e);
            }
        }
        let a = self.active.as_ref().expect("a segment is active");
        let at = Position { segment_id: a.id, offset: a.pos };
        let header_pending = a.header_pending;
        let seq = self.seq_next;
        let ts = self.opts.clock.now_ms();

        // Take requests while they fit the flush and the segment; at least one.
        let mut taken: Vec<Request> = Vec::new();
        let mut frame_bytes = FRAME_HEADER_BYTES as u64;
        if header_pending {
            frame_bytes += frame_bytes_for(segment_format::checkpoint_body_bytes(self.logs.len()));
        }
        while let Some(r) = self.pending.front() {
            let b = request_bytes(r) as u64;
            let over_flush =
                frame_bytes + b > self.opts.flush_bytes_max as u64 + FRAME_HEADER_BYTES as u64;
            if !taken.is_empty() && (over_flush || !self.fits(a, frame_bytes + b)) {
                break;
            }
            frame_bytes += b;
            let r = self.pending.pop_front().expect("front exists");
            self.pending_bytes -= b as usize;
            taken.push(r);
        }

        // Assign LSNs, in request order; answer what needs no record right away.
        let mut flush = Flush {
            seq,
            done: false,
            no_space: false,
            with_header: header_pending,
            control_lsn: Lsn::INVALID,
            segment: at.segment_id,
            offset: at.offset,
            end: 0,
            acks: Vec::new(),
            appended: Vec::new(),
            trims: Vec::new(),
            seals: Vec::new(),
            fences: Vec::new(),
            frame: None,
            submitted: std::time::Instant::now(),
            write_bytes: 0,
        };
        let mut items: Vec<Item> = Vec::with_capacity(taken.len() + 1);
        if header_pending {
            let mut entries: Vec<LogCheckpoint> = self
                .logs
                .iter()
                .map(|(l, s)| LogCheckpoint {
                    log_id: *l,
                    lsn_trim: s.trim,
                    lsn_last: s.last,
                    sealed: s.sealed,
                    epoch: s.epoch,
                })
                .collect();
            entries.sort_by_key(|c| c.log_id);
            self.control_lsn_last = self.control_lsn_last.next();
            items.push(Item::Control(
                ControlRecord::Checkpoint(entries).encode(),
                self.control_lsn_last,
            ));
        }
        for r in taken {
            match r {
                Request::Append { log, epoch, bodies, ack } => {
                    let s = self.logs.entry(log).or_default();
                    if s.sealed {
                        drop(ack.send(Err(WalError::Sealed(log))));
                        continue;
                    }
                    if let Some(epoch) = epoch.filter(|e| *e < s.epoch) {
                        drop(ack.send(Err(WalError::Fenced { log, epoch, log_epoch: s.epoch })));
                        continue;
                    }
                    let first = s.last.next();
                    s.last = Lsn(s.last.0 + bodies.len() as u64);
                    flush.acks.push(Ack::Append(ack, s.last));
                    flush.appended.push((log, first, s.last));
                    items.push(Item::Append(log, first, bodies));
                }
                Request::Trim { log, lsn, ack } => {
                    let s = self.logs.entry(log).or_default();
                    let lsn = lsn.min(s.last);
                    if lsn <= s.trim {
                        drop(ack.send(Ok(())));
                        continue;
                    }
                    s.trim = lsn;
                    self.control_lsn_last = self.control_lsn_last.next();
                    items.push(Item::Control(
                        ControlRecord::Trim { log_id: log, lsn }.encode(),
                        self.control_lsn_last,
                    ));
                    flush.trims.push((log, lsn));
                    flush.acks.push(Ack::Trim(ack));
                }
                Request::Seal { log, ack } => {
                    let s = self.logs.entry(log).or_default();
                    let last = s.last;
                    if !s.sealed {
                        s.sealed = true;
                        self.control_lsn_last = self.control_lsn_last.next();
                        items.push(Item::Control(
                            ControlRecord::Seal { log_id: log }.encode(),
                            self.control_lsn_last,
                        ));
                        flush.seals.push(log);
                    }
                    flush.acks.push(Ack::Seal(ack, last));
                }
                Request::Fence { log, epoch, ack } => {
                    let s = self.logs.entry(log).or_default();
                    let last = s.last;
                    if epoch < s.epoch {
                        drop(ack.send(Err(WalError::Fenced { log, epoch, log_epoch: s.epoch })));
                        continue;
                    }
                    if epoch > s.epoch {
                        s.epoch = epoch;
                        self.control_lsn_last = self.control_lsn_last.next();
                        items.push(Item::Control(
                            ControlRecord::Fence { log_id: log, epoch }.encode(),
                            self.control_lsn_last,
                        ));
                        flush.fences.push((log, epoch));
                    }
                    flush.acks.push(Ack::Fence(ack, last));
                }
            }
        }
        let mut records: Vec<RecordRef<'_>> = Vec::new();
        let (mut appends, mut appended_bytes) = (0u64, 0u64);
        for item in &items {
            match item {
                Item::Control(body, lsn) => records.push(RecordRef {
                    log_id: LOG_ID_CONTROL,
                    lsn: *lsn,
                    timestamp_ms: ts,
                    body,
                }),
                Item::Append(log, first, bodies) => {
                    appends += bodies.len() as u64;
                    for (k, body) in bodies.iter().enumerate() {
                        appended_bytes += body.len() as u64;
                        records.push(RecordRef {
                            log_id: *log,
                            lsn: Lsn(first.0 + k as u64),
                            timestamp_ms: ts,
                            body,
                        });
                    }
                }
            }
        }
        metrics::counter!(crate::metrics::WAL_APPENDS).increment(appends);
        metrics::counter!(crate::metrics::WAL_APPENDED_BYTES).increment(appended_bytes);
        if records.is_empty() {
            // Everything was answered without a record (sealed logs, no-op trims).
            for ack in flush.acks {
                ack.succeed();
            }
            return Ok(());
        }

        self.scratch.clear();
        let frame_len = if records.len() == 1 {
            encode_record_frame(&mut self.scratch, at, seq, records[0])
        } else {
            encode_batch_frame(&mut self.scratch, at, seq, &records, self.opts.compression)
        };
        drop(records);
        flush.frame = Some(Arc::from(self.scratch.as_slice()));
        flush.control_lsn = self.control_lsn_last;
        let prefix = if header_pending { SEGMENT_HEADER_BYTES } else { 0 };
        let total = prefix + frame_len as usize;
        let write_len =
            if self.aligned { align_up(total as u64, BLOCK_BYTES as u64) as usize } else { total };
        let mut buf = match self.bufs.iter().position(|b| b.capacity() >= write_len) {
            Some(i) => self.bufs.swap_remove(i),
            None => IoBuf::new(write_len),
        };
        let a = self.active.as_mut().expect("a segment is active");
        {
            let full = buf.full_mut();
            if header_pending {
                SegmentHeader::new(a.id, self.wal_id, seq, ts, a.bytes, a.prev_end_offset)
                    .encode(&mut full[..SEGMENT_HEADER_BYTES]);
            }
            full[prefix..total].copy_from_slice(&self.scratch);
        }
        buf.set_len(write_len);
        let write_offset = if header_pending { 0 } else { a.pos };
        debug_assert!(!self.aligned || write_offset % BLOCK_BYTES as u64 == 0);
        let sub = Submission { user_data: seq.0, file: a.file, offset: write_offset, buf };
        a.pos += frame_len;
        if self.aligned {
            a.pos = align_up(a.pos, BLOCK_BYTES as u64);
        }
        a.header_pending = false;
        flush.end = a.pos;
        flush.write_bytes = write_len;
        flush.submitted = std::time::Instant::now();
        metrics::histogram!(crate::metrics::WAL_FLUSH_BYTES).record(write_len as f64);
        // Queued before the submission, so that poisoning (after an error, or a panic inside
        // `submit`) answers these callers with the cause.
        self.inflight.push_back(flush);
        self.disk.submit(sub).map_err(|e| WalError::io("submit durable write", &e))?;
        self.seq_next = seq.next();
        assert!(self.inflight.len() <= self.inflight_max);
        Ok(())
    }

    /// Waits for at least `min` completions and publishes every flush that is now durable
    /// together with all flushes before it.
    fn reap(&mut self, min: usize) -> Result<(), WalError> {
        self.collect(min)?;
        if self.inflight.iter().any(|f| f.no_space) {
            return self.rewind_no_space();
        }
        let mut trimmed = false;
        while self.inflight.front().is_some_and(|f| f.done) {
            let f = self.inflight.pop_front().expect("front exists");
            trimmed |= !f.trims.is_empty();
            self.publish(f);
        }
        if trimmed {
            self.recycle()?;
        }
        Ok(())
    }

    /// Waits for at least `min` completions and marks their flushes done. A failed write is
    /// fatal, except for a full disk, which marks the flush for [`Writer::rewind_no_space`].
    fn collect(&mut self, min: usize) -> Result<(), WalError> {
        let mut comps = std::mem::take(&mut self.completions);
        self.disk
            .complete(min, &mut comps)
            .map_err(|e| WalError::io("complete durable write", &e))?;
        let mut failed = None;
        for c in comps.drain(..) {
            let mut no_space = false;
            if let Err(e) = &c.result {
                match WalError::io("durable write", e) {
                    WalError::NoSpace { .. } => no_space = true,
                    other => {
                        failed.get_or_insert(other);
                    }
                }
            }
            if let Some(f) = self.inflight.iter_mut().find(|f| f.seq.0 == c.user_data) {
                f.done = true;
                f.no_space = no_space;
            }
            let mut buf = c.buf;
            if buf.capacity() == self.buf_bytes || buf.registered_index.is_some() {
                let used = buf.len();
                buf.clear_zeroed(used);
                self.bufs.push(buf);
            }
        }
        self.completions = comps;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A durable write found the disk full (on copy-on-write or thin-provisioned storage a
    /// write into a pre-written segment can). Backpressure, not failure: the flushes before
    /// it are published, it and every later one are answered `NoSpace` (nothing of them was
    /// acknowledged), the writer's state goes back to what is durable, and the rest of the
    /// segment is never written again: the next flush starts a new segment, whose header
    /// records where the durable frames end, so recovery never reads what the failed writes
    /// may have left behind. If no spare is ready that roll reports `NoSpace` itself until
    /// space returns.
    fn rewind_no_space(&mut self) -> Result<(), WalError> {
        while self.inflight.iter().any(|f| !f.done) {
            self.collect(1)?;
        }
        let mut trimmed = false;
        while self.inflight.front().is_some_and(|f| !f.no_space) {
            let f = self.inflight.pop_front().expect("front exists");
            trimmed |= !f.trims.is_empty();
            self.publish(f);
        }
        let err = WalError::NoSpace { op: "durable write" };
        let first_failed = self.inflight.front().map(|f| (f.seq, f.with_header, f.segment));
        for f in self.inflight.drain(..) {
            for ack in f.acks {
                ack.fail(err.clone());
            }
        }
        let Some((seq, with_header, segment)) = first_failed else { return Ok(()) };
        self.seq_next = seq;
        self.control_lsn_last = self.control_lsn_durable;
        {
            let idx = self.shared.index();
            self.logs.retain(|log, _| idx.logs.contains_key(log));
            for (log, st) in self.logs.iter_mut() {
                let t = idx.logs[log];
                *st = LogState {
                    last: t.lsn_durable,
                    trim: t.lsn_trim,
                    sealed: t.sealed,
                    epoch: t.epoch,
                };
            }
        }
        if with_header {
            // Nothing of the segment became durable: it goes back to the spares, and the
            // next segment continues after the one before it.
            let a = self.active.take().expect("a segment is active");
            debug_assert_eq!(a.id, segment);
            self.disk.close(a.file);
            let meta = self.shared.index().segments.remove(&a.id);
            let name = meta.map(|m| m.name).unwrap_or_else(|| segment_name(a.id));
            self.shared.reader.forget(&name);
            self.retire(name, "give back segment")?;
            self.prev_end_override = Some(a.prev_end_offset);
        } else if let Some(a) = self.active.as_mut() {
            let end = self.shared.index().segments.get(&a.id).map_or(a.pos, |m| m.end_offset);
            a.pos = end;
            a.outdated = true;
        }
        if trimmed {
            self.recycle()?;
        }
        Ok(())
    }

    fn publish(&mut self, f: Flush) {
        metrics::histogram!(crate::metrics::WAL_FSYNC_DURATION)
            .record(f.submitted.elapsed().as_secs_f64());
        metrics::counter!(crate::metrics::WAL_FSYNC_BYTES).increment(f.write_bytes as u64);
        self.control_lsn_durable = self.control_lsn_durable.max(f.control_lsn);
        {
            let mut idx = self.shared.index();
            let seg = idx.segments.get_mut(&f.segment).expect("active segment is indexed");
            for &(log, first, last) in &f.appended {
                seg.note(log, first, f.offset);
                seg.note(log, last, f.offset);
            }
            seg.end_offset = f.end;
            if let Some(bytes) = &f.frame {
                self.shared.remember_frame(f.segment, f.offset, f.end, bytes.clone());
            }
            for &(log, _, last) in &f.appended {
                idx.logs.entry(log).or_default().lsn_durable = last;
            }
            for &(log, lsn) in &f.trims {
                let t = idx.logs.entry(log).or_default();
                t.lsn_trim = t.lsn_trim.max(lsn);
            }
            for &log in &f.seals {
                idx.logs.entry(log).or_default().sealed = true;
            }
            for &(log, epoch) in &f.fences {
                let t = idx.logs.entry(log).or_default();
                t.epoch = t.epoch.max(epoch);
            }
        }
        self.shared.flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.durable_tx.send_replace(f.seq);
        for ack in f.acks {
            ack.succeed();
        }
    }

    /// Starts a new segment from a spare. Drains in-flight flushes first.
    fn roll(&mut self) -> Result<(), WalError> {
        while !self.inflight.is_empty() {
            self.reap(1)?;
        }
        let spare = match self.spares.pop_front() {
            Some(s) => s,
            None => {
                self.prep_paused = false;
                let small = FIRST_SEGMENT_BYTES.min(self.opts.segment_bytes);
                // A segment the pending flush fits in; else a full one.
                let need = self.frame_bytes_needed(true)
                    + SEGMENT_HEADER_BYTES as u64
                    + BLOCK_BYTES as u64;
                let urgent = if self.prep.is_none() && need <= small { Some(small) } else { None };
                while self.spares.is_empty() {
                    if let Err(e) = self.prep_step_sized(urgent) {
                        if let WalError::NoSpace { .. } = e {
                            self.abandon_prep();
                            self.prep_paused = true;
                        }
                        return Err(e);
                    }
                }
                self.spares.pop_front().expect("a spare was just prepared")
            }
        };
        let id = self.segment_id_next;
        let name = segment_name(id);
        // Renamed before anything else changes: if the rename fails (a full copy-on-write
        // disk can refuse even that) the writer is as before, spare included.
        if let Err(e) = self.disk.rename(&spare, &name) {
            self.spares.push_front(spare);
            return Err(WalError::io("activate segment", &e));
        }
        let mut prev_end_offset = self.prev_end_override.take().unwrap_or(0);
        if let Some(a) = self.active.take() {
            self.disk.close(a.file);
            prev_end_offset = u32::try_from(a.pos).expect("segment offsets fit u32");
        }
        self.shared.reader.forget(&name);
        let file = self.disk.open(&name, false).map_err(|e| WalError::io("open segment", &e))?;
        let bytes = self.disk.file_len(file).map_err(|e| WalError::io("stat segment", &e))?;
        self.segment_id_next = SegmentId(id.0 + 1);
        self.active = Some(Active {
            id,
            file,
            pos: SEGMENT_HEADER_BYTES as u64,
            bytes,
            header_pending: true,
            prev_end_offset,
            outdated: false,
        });
        self.shared.index().segments.insert(
            id,
            SegMeta { name, logs: HashMap::new(), end_offset: SEGMENT_HEADER_BYTES as u64 },
        );
        Ok(())
    }

    fn spare_wanted(&self) -> bool {
        self.spares.len() < self.opts.spares.max(1)
    }

    /// A spare is needed soon: the active segment is past half full and none is ready.
    fn spare_urgent(&self) -> bool {
        self.spares.is_empty() && self.active.as_ref().is_some_and(|a| a.pos > a.bytes / 2)
    }

    /// Prepares spares ahead of need. A full disk only pauses this until the next roll,
    /// which tries again and reports `NoSpace` to the appends that need the space.
    fn prep_background(&mut self) -> Result<(), WalError> {
        // Before the first segment of a new WAL exists, the first roll will wait for this
        // preparation: keep it small (see FIRST_SEGMENT_BYTES).
        let size = (self.active.is_none() && self.spares.is_empty())
            .then(|| FIRST_SEGMENT_BYTES.min(self.opts.segment_bytes));
        match self.prep_step_sized(size) {
            Err(WalError::NoSpace { .. }) => {
                self.abandon_prep();
                self.prep_paused = true;
                Ok(())
            }
            other => other,
        }
    }

    fn abandon_prep(&mut self) {
        if let Some(p) = self.prep.take() {
            self.disk.close(p.file);
            let _ = self.disk.remove(&p.name);
        }
    }

    /// Does one chunk of spare preparation: create, zero fill, then publish as a spare. A
    /// preparation it starts has `size` bytes (default: the configured segment size).
    fn prep_step_sized(&mut self, size: Option<u64>) -> Result<(), WalError> {
        if self.prep.is_none() {
            let number = self.spare_number_next;
            self.spare_number_next += 1;
            let name = format!("{number:016x}.prep");
            let file = self.disk.open(&name, true).map_err(|e| WalError::io("create spare", &e))?;
            let target_bytes = size.unwrap_or(self.opts.segment_bytes);
            self.prep = Some(Prep { name, number, file, done_bytes: 0, target_bytes });
        }
        let p = self.prep.as_mut().expect("preparing");
        let target = p.target_bytes;
        let to = (p.done_bytes + ZERO_CHUNK_BYTES as u64).min(target);
        let (file, from) = (p.file, p.done_bytes);
        zero_range(&mut self.disk, file, from, to)?;
        let p = self.prep.as_mut().expect("preparing");
        p.done_bytes = to;
        if to == target {
            let p = self.prep.take().expect("preparing");
            self.disk.close(p.file);
            let spare = format!("{:016x}.spare", p.number);
            if let Err(e) = self.disk.rename(&p.name, &spare) {
                // Not kept half-published: a later preparation starts over.
                let _ = self.disk.remove(&p.name);
                return Err(WalError::io("publish spare", &e));
            }
            self.spares.push_back(spare);
        }
        Ok(())
    }

    /// Recycles the oldest segments whose records are all trimmed.
    fn recycle(&mut self) -> Result<(), WalError> {
        loop {
            let name = {
                let mut idx = self.shared.index();
                let Some((&id, meta)) = idx.segments.iter().next() else { return Ok(()) };
                if self.active.as_ref().is_some_and(|a| a.id == id) {
                    return Ok(());
                }
                let all_trimmed = meta
                    .logs
                    .iter()
                    .all(|(log, sl)| idx.logs.get(log).is_some_and(|t| sl.last <= t.lsn_trim));
                if !all_trimmed {
                    return Ok(());
                }
                idx.segments.remove(&id).expect("present").name
            };
            self.shared.reader.forget(&name);
            self.retire(name, "recycle segment")?;
        }
    }

    /// Turns a segment file that holds nothing live into a spare, or removes it when spares
    /// are plenty or the rename finds the disk full: a full disk never fails recycling
    /// (removing frees space; the background preparation makes spares again later).
    fn retire(&mut self, name: String, op: &'static str) -> Result<(), WalError> {
        if self.spares.len() < self.opts.spares.max(1) {
            let spare = format!("{:016x}.spare", self.spare_number_next);
            self.spare_number_next += 1;
            match self.disk.rename(&name, &spare) {
                Ok(()) => {
                    self.spares.push_back(spare);
                    return Ok(());
                }
                Err(e) => match WalError::io(op, &e) {
                    WalError::NoSpace { .. } => {}
                    other => return Err(other),
                },
            }
        }
        self.disk.remove(&name).map_err(|e| WalError::io("remove segment", &e))
    }

    /// Stops for good: nothing is acknowledged after this, every caller learns why.
    fn poison(&mut self, e: WalError) {
        let err = WalError::Poisoned { cause: e.to_string() };
        self.shared.poison(err.clone());
        for f in self.inflight.drain(..) {
            for ack in f.acks {
                ack.fail(err.clone());
            }
        }
        for r in self.pending.drain(..) {
            r.fail(err.clone());
        }
        self.rx.close();
        while let Ok(r) = self.rx.try_recv() {
            r.fail(err.clone());
        }
    }
}

/// How the writer loop waits: the thread blocks, the simulator's inline writer awaits and
/// lets virtual time pass. One loop body serves both ([`Writer::run_loop`]).
trait Pace {
    /// The next request; `None` once every sender is gone.
    fn recv(&mut self, rx: &mut mpsc::Receiver<Request>) -> impl Future<Output = Option<Request>>;
    /// After a chunk of background work while idle.
    fn after_background(&mut self) -> impl Future<Output = ()>;
    /// Before waiting for completions of the flushes in flight.
    fn before_reap(&mut self) -> impl Future<Output = ()>;
}

/// The writer thread's pace: blocks for requests and never returns a pending future, so the
/// loop adds no wake-ups or task switches to the thread.
struct Blocking;

impl Pace for Blocking {
    fn recv(&mut self, rx: &mut mpsc::Receiver<Request>) -> impl Future<Output = Option<Request>> {
        std::future::ready(rx.blocking_recv())
    }
    fn after_background(&mut self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
    fn before_reap(&mut self) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

/// The inline writer's pace: awaits requests, lets other tasks run between chunks of
/// background work, and lets a durable write's (virtual) latency pass before reaping.
struct Inline<L> {
    latency: L,
}

impl<L: FnMut() -> std::time::Duration> Pace for Inline<L> {
    async fn recv(&mut self, rx: &mut mpsc::Receiver<Request>) -> Option<Request> {
        rx.recv().await
    }
    async fn after_background(&mut self) {
        tokio::task::yield_now().await
    }
    async fn before_reap(&mut self) {
        tokio::time::sleep((self.latency)()).await
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
