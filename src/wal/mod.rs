//! The node's write-ahead log: one physical, segmented, append-only log that multiplexes many
//! logical logs (one per partition, named by [`LogId`]), so that one durable write covers the
//! appends of every partition at once.
//!
//! Shape: [`Wal::open`] recovers the directory, then a dedicated thread ([`writer`]) owns the
//! [`disk::Disk`] and runs group commit; callers talk to it through a bounded channel and get
//! an acknowledgement only after the write that covers their records completed durably.
//! Readers ([`Reader`]) read durable records from the segment files and wake on new ones.
//!
//! Invariants:
//! - An append is acknowledged only after the flush that holds it, and every flush before it,
//!   completed durably. Acknowledgements go out in `Seq` order.
//! - LSNs of every log are contiguous; recovery verifies it and refuses to start otherwise.
//! - A failed durable write poisons the WAL: nothing is acknowledged after it, every later
//!   call fails with [`WalError::Poisoned`]. Failures are never retried.
//! - ENOSPC while preparing a segment is [`WalError::NoSpace`] for the appends that needed the
//!   space; nothing was written, so the WAL stays usable. Segments are pre-written (zero
//!   filled) before use, which also makes their fdatasyncs cheaper.
//! - Corruption before the tail stops recovery with [`WalError::Corrupt`] naming file and
//!   offset; a torn tail (an interrupted, unacknowledged write) is cut off.
//!
//! Files: live segments `<id:016x>.seg`, pre-written spares `<n:016x>.spare`, spares being
//! prepared `<n:016x>.prep` (discarded on recovery).

pub mod bench;
pub mod disk;
mod reader;
mod recovery;
mod scan;
mod shared;
mod writer;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use segment_format::{Compression, LogId, Lsn, LOG_ID_CONTROL, RECORD_BODY_BYTES_MAX};
use tokio::sync::{mpsc, oneshot};

pub use reader::Reader;
pub use shared::LogTail;

use disk::{Disk, Engine};
use shared::Shared;

/// Everything that can go wrong, with the cause callers branch on.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalError {
    #[error("WAL I/O error during {op}: {message}")]
    Io { op: &'static str, message: String },
    #[error(
        "no space left on the WAL's disk during {op}: free disk space; nothing that was \
         acknowledged is lost"
    )]
    NoSpace { op: &'static str },
    #[error("the WAL stopped after an earlier I/O failure ({cause}); restart the process")]
    Poisoned { cause: String },
    #[error("WAL corruption in {file} at offset {offset}: {detail}; refusing to start")]
    Corrupt { file: String, offset: u64, detail: String },
    #[error("record of {bytes} bytes is larger than the limit of {limit_bytes} bytes")]
    TooLarge { bytes: usize, limit_bytes: usize },
    #[error("log {0} is sealed and accepts no appends")]
    Sealed(LogId),
    /// A newer writer fenced this one: the append or fence came with an epoch below the
    /// log's. Nothing was written.
    #[error(
        "log {log} is fenced at epoch {log_epoch}; a writer of epoch {epoch} may not write it"
    )]
    Fenced { log: LogId, epoch: u64, log_epoch: u64 },
    #[error("log {log}: records up to LSN {lsn_trim} are trimmed; LSN {lsn} was requested")]
    Trimmed { log: LogId, lsn: Lsn, lsn_trim: Lsn },
    #[error("log id 0 is reserved for the WAL's own records")]
    ReservedLog,
    #[error("invalid WAL options: {0}")]
    Options(String),
    #[error("the WAL is shut down")]
    Closed,
}

impl WalError {
    pub(crate) fn io(op: &'static str, e: &io::Error) -> WalError {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull {
            WalError::NoSpace { op }
        } else {
            WalError::Io { op, message: e.to_string() }
        }
    }
}

/// Logs one WAL holds at most, so that a segment's checkpoint record always leaves room for
/// a record of [`Options::record_bytes_max`] (a partition has one log).
pub const LOGS_MAX: usize = 1024;

/// Where and how the WAL runs. Limits are named with their unit last.
#[derive(Clone, Debug)]
pub struct Options {
    pub dir: PathBuf,
    pub engine: Engine,
    /// Size of every segment file, header included.
    pub segment_bytes: u64,
    /// A flush gathers queued appends up to this many body bytes (a larger record goes
    /// alone).
    pub flush_bytes_max: usize,
    /// Start another flush while one is in flight once this many bytes are queued.
    pub flush_pipeline_bytes_min: usize,
    /// Pre-written segments kept ready.
    pub spares: usize,
    /// Appends queued to the writer thread before callers wait.
    pub queue_len_max: usize,
    pub compression: Compression,
    /// Stamps every record's `timestamp_ms`.
    pub clock: crate::clock::SharedClock,
    /// Bytes of recently flushed frames kept in memory for tailing readers.
    pub recent_frames_bytes_max: usize,
}

impl Options {
    pub fn new(dir: impl Into<PathBuf>) -> Options {
        Options {
            dir: dir.into(),
            engine: Engine::Auto,
            segment_bytes: 64 * 1024 * 1024,
            flush_bytes_max: 1024 * 1024,
            flush_pipeline_bytes_min: 64 * 1024,
            spares: 1,
            queue_len_max: 4096,
            compression: Compression::None,
            clock: crate::clock::system(),
            recent_frames_bytes_max: 4 * 1024 * 1024,
        }
    }

    fn validate(&self) -> Result<(), WalError> {
        use segment_format::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_HEADER_BYTES};
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes)
            || self.segment_bytes % segment_format::BLOCK_BYTES as u64 != 0
        {
            return Err(WalError::Options(format!(
                "segment_bytes {} must be a multiple of 4096 in {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            )));
        }
        if self.flush_bytes_max == 0
            || self.flush_bytes_max as u64 > self.segment_bytes - 2 * SEGMENT_HEADER_BYTES as u64
        {
            return Err(WalError::Options("flush_bytes_max must be > 0 and fit a segment".into()));
        }
        if self.queue_len_max == 0 {
            return Err(WalError::Options("queue_len_max must be > 0".into()));
        }
        Ok(())
    }

    /// The largest record body this configuration accepts, and the most one append may carry
    /// (bodies plus `log::APPEND_RECORD_OVERHEAD_BYTES` each): it must fit an empty segment
    /// after its checkpoint record, which has an entry per log. Room is kept for the
    /// checkpoint of [`LOGS_MAX`] logs, or an eighth of the segment if that is less (tests use
    /// tiny segments); the writer still refuses, with `TooLarge`, what does not fit.
    pub fn record_bytes_max(&self) -> usize {
        let segment = self.segment_bytes as usize;
        let checkpoint = (segment_format::checkpoint_body_bytes(LOGS_MAX)
            + 2 * segment_format::FRAME_HEADER_BYTES
            + segment_format::FRAME_ALIGN_BYTES)
            .min(segment / 8);
        let room = segment.saturating_sub(2 * segment_format::SEGMENT_HEADER_BYTES + checkpoint);
        RECORD_BODY_BYTES_MAX.min(room)
    }
}

pub(crate) enum Request {
    Append {
        log: LogId,
        /// The writer's epoch; `None` for unfenced appends (tools and benchmarks).
        epoch: Option<u64>,
        bodies: Vec<Vec<u8>>,
        ack: oneshot::Sender<Result<Lsn, WalError>>,
    },
    Trim {
        log: LogId,
        lsn: Lsn,
        ack: oneshot::Sender<Result<(), WalError>>,
    },
    Seal {
        log: LogId,
        ack: oneshot::Sender<Result<Lsn, WalError>>,
    },
    Fence {
        log: LogId,
        epoch: u64,
        ack: oneshot::Sender<Result<Lsn, WalError>>,
    },
}

impl Request {
    fn fail(self, e: WalError) {
        match self {
            Request::Append { ack, .. } => drop(ack.send(Err(e))),
            Request::Trim { ack, .. } => drop(ack.send(Err(e))),
            Request::Seal { ack, .. } => drop(ack.send(Err(e))),
            Request::Fence { ack, .. } => drop(ack.send(Err(e))),
        }
    }
}

/// Handle to an open WAL. Cheap to share behind an `Arc`; dropping the last handle stops the
/// writer thread after it finished what was queued.
#[derive(Debug)]
pub struct Wal {
    tx: Option<mpsc::Sender<Request>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    record_bytes_max: usize,
}

impl Wal {
    /// Opens (or creates) the WAL in `opts.dir` with the configured engine.
    pub fn open(opts: Options) -> Result<Wal, WalError> {
        opts.validate()?;
        let disk = disk::open_dir(&opts.dir, opts.engine).map_err(|e| WalError::io("open", &e))?;
        Wal::open_with_disk(disk, opts)
    }

    /// Opens the WAL on a given disk (the simulator's, in tests).
    pub fn open_with_disk<D: Disk>(disk: D, opts: Options) -> Result<Wal, WalError> {
        let (mut wal, writer) = Wal::prepare(disk, opts)?;
        let thread = std::thread::Builder::new()
            .name("ratchet-wal".into())
            .spawn(move || writer.run())
            .map_err(|e| WalError::io("spawn writer thread", &e))?;
        wal.thread = Some(thread);
        Ok(wal)
    }

    /// Opens the WAL with its writer as a future instead of a thread, for a single-threaded
    /// deterministic simulation on a disk whose completions never block (the sim disk). The
    /// caller spawns the future; `latency` gives the (virtual) time each durable write takes.
    pub fn open_inline<D: Disk>(
        disk: D,
        opts: Options,
        latency: impl FnMut() -> std::time::Duration + Send + 'static,
    ) -> Result<(Wal, impl std::future::Future<Output = ()> + Send + 'static), WalError> {
        let (wal, writer) = Wal::prepare(disk, opts)?;
        Ok((wal, writer.run_async(latency)))
    }

    fn prepare<D: Disk>(mut disk: D, opts: Options) -> Result<(Wal, writer::Writer<D>), WalError> {
        opts.validate()?;
        let recovered = recovery::recover(&mut disk, &opts)?;
        let shared = Arc::new(Shared::new(
            disk.engine(),
            disk.reader(),
            &recovered,
            opts.recent_frames_bytes_max,
        ));
        let (tx, rx) = mpsc::channel(opts.queue_len_max);
        let record_bytes_max = opts.record_bytes_max();
        let writer = writer::Writer::new(disk, opts, shared.clone(), rx, recovered)?;
        Ok((Wal { tx: Some(tx), shared, thread: None, record_bytes_max }, writer))
    }

    /// Why the WAL stopped for good, if it did (a failed durable write, a panicked writer).
    pub fn poisoned(&self) -> Option<WalError> {
        self.shared.poisoned()
    }

    /// Resolves once the WAL is poisoned: for the process supervisor.
    pub async fn wait_poisoned(&self) -> WalError {
        let mut rx = self.shared.durable_tx.subscribe();
        loop {
            if let Some(e) = self.shared.poisoned() {
                return e;
            }
            if rx.changed().await.is_err() {
                return self.shared.poisoned().unwrap_or(WalError::Closed);
            }
        }
    }

    /// Which disk engine is in use ("uring", "std", "sim").
    pub fn engine(&self) -> &'static str {
        self.shared.engine
    }

    fn closed_error(&self) -> WalError {
        self.shared.poisoned().unwrap_or(WalError::Closed)
    }

    /// The error for a request the writer dropped: the poison that is being set (a writer
    /// that panicked drops requests while it unwinds, before it poisons the WAL), or
    /// `Closed` once the writer is gone without one.
    async fn dropped_error(&self) -> WalError {
        let mut rx = self.shared.durable_tx.subscribe();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if let Some(e) = self.shared.poisoned() {
                return e;
            }
            if self.shared.has_writer_exited() || self.tx.is_none() {
                return self.closed_error();
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.closed_error(),
            }
        }
    }

    async fn send(&self, req: Request) -> Result<(), WalError> {
        let tx = self.tx.as_ref().ok_or(WalError::Closed)?;
        if let Some(e) = self.shared.poisoned() {
            return Err(e);
        }
        match tx.send(req).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.dropped_error().await),
        }
    }

    /// Appends `bodies` to `log` as consecutive records; returns the LSN of the last one once
    /// all are durable. Unfenced: for tools and benchmarks; servers use [`Wal::append_fenced`].
    pub async fn append(&self, log: LogId, bodies: Vec<Vec<u8>>) -> Result<Lsn, WalError> {
        self.append_inner(log, None, bodies).await
    }

    /// Like [`Wal::append`], for a writer of `epoch`: fails with [`WalError::Fenced`] (and
    /// writes nothing) if the log was fenced at a higher epoch before this append.
    pub async fn append_fenced(
        &self,
        log: LogId,
        epoch: u64,
        bodies: Vec<Vec<u8>>,
    ) -> Result<Lsn, WalError> {
        self.append_inner(log, Some(epoch), bodies).await
    }

    async fn append_inner(
        &self,
        log: LogId,
        epoch: Option<u64>,
        bodies: Vec<Vec<u8>>,
    ) -> Result<Lsn, WalError> {
        if log == LOG_ID_CONTROL {
            return Err(WalError::ReservedLog);
        }
        if let Some(b) = bodies.iter().find(|b| b.len() > self.record_bytes_max) {
            return Err(WalError::TooLarge { bytes: b.len(), limit_bytes: self.record_bytes_max });
        }
        if bodies.len() > 1 {
            let total = append_bytes(&bodies);
            if total > self.record_bytes_max {
                return Err(WalError::TooLarge {
                    bytes: total,
                    limit_bytes: self.record_bytes_max,
                });
            }
        }
        if bodies.is_empty() {
            return Ok(self.tail(log).lsn_durable);
        }
        let (ack, rx) = oneshot::channel();
        self.send(Request::Append { log, epoch, bodies, ack }).await?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.dropped_error().await),
        }
    }

    /// Marks records of `log` up to `lsn` as no longer needed. Segments whose records are all
    /// trimmed are recycled. Trimming beyond the last LSN trims to the last LSN.
    pub async fn trim(&self, log: LogId, lsn: Lsn) -> Result<(), WalError> {
        if log == LOG_ID_CONTROL {
            return Err(WalError::ReservedLog);
        }
        let (ack, rx) = oneshot::channel();
        self.send(Request::Trim { log, lsn, ack }).await?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.dropped_error().await),
        }
    }

    /// Seals `log`: later appends fail with [`WalError::Sealed`]. Returns the last LSN.
    pub async fn seal(&self, log: LogId) -> Result<Lsn, WalError> {
        if log == LOG_ID_CONTROL {
            return Err(WalError::ReservedLog);
        }
        let (ack, rx) = oneshot::channel();
        self.send(Request::Seal { log, ack }).await?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.dropped_error().await),
        }
    }

    /// Fences `log` at `epoch`: appends of writers with a lower epoch fail with
    /// [`WalError::Fenced`] from here on. Returns the last LSN once the fence is durable.
    /// Fencing at the current epoch again is a no-op; at a lower one it is `Fenced`.
    pub async fn fence(&self, log: LogId, epoch: u64) -> Result<Lsn, WalError> {
        if log == LOG_ID_CONTROL {
            return Err(WalError::ReservedLog);
        }
        let (ack, rx) = oneshot::channel();
        self.send(Request::Fence { log, epoch, ack }).await?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(self.dropped_error().await),
        }
    }

    /// The most one append may carry (see `log::Log::append_bytes_max`).
    pub fn append_bytes_max(&self) -> usize {
        self.record_bytes_max
    }

    /// The identity of this WAL, chosen when it was created and written into every segment
    /// header: a partition store records it and is only ever applied from this WAL.
    pub fn id(&self) -> u64 {
        self.shared.wal_id
    }

    /// Durable state of `log`.
    pub fn tail(&self, log: LogId) -> LogTail {
        self.shared.tail(log)
    }

    /// Reads `log` from `from` on: durable records only; waits for new ones at the tail.
    pub fn reader(&self, log: LogId, from: Lsn) -> Reader {
        Reader::new(self.shared.clone(), log, from)
    }

    /// Flushes (durable writes) completed since open.
    pub fn flushes(&self) -> u64 {
        self.shared.flushes()
    }

    /// Logs that have ever been written.
    pub fn logs(&self) -> Vec<LogId> {
        self.shared.logs()
    }

    /// Stops the writer after it finished queued work, and waits for it.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn segment_name(id: segment_format::SegmentId) -> String {
    format!("{:016x}.seg", id.0)
}

pub(crate) fn parse_numbered(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 16 {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// What an append of `bodies` counts against `Options::record_bytes_max`.
pub fn append_bytes(bodies: &[Vec<u8>]) -> usize {
    bodies.iter().map(|b| b.len() + crate::log::APPEND_RECORD_OVERHEAD_BYTES).sum()
}
