//! The virtual log: one [`Log`] trait for everything above storage (partition processors,
//! ingress, the cluster add-on), with implementations for the node WAL ([`crate::wal::Wal`])
//! and memory ([`MemLog`], for tests and simulation).
//!
//! Contract every implementation keeps (checked by `tests/log_conformance.rs`):
//! - `append` returns only once the records are durable (for `MemLog`: visible), with the LSN
//!   of the last one; LSNs of a log start at 1 and are contiguous.
//! - Readers see records in LSN order, each exactly once, and only durable ones.
//! - `trim(log, lsn)` makes LSNs at or below `lsn` unreadable (`Trimmed`), never others.
//! - **Fencing.** Every append carries its writer's epoch. `seal(log, epoch)` makes `epoch`
//!   the log's epoch once durable: from then on appends (and seals) with a lower epoch fail
//!   with `Fenced` and write nothing, while records appended before the seal stay. A log's
//!   epoch never decreases; sealing at the current epoch again is a no-op. `seal` returns the
//!   last LSN written before it, which is where the new writer's records start after.
//! - `identity()` names the log store: a partition store records it and refuses to be applied
//!   from any other.
//! - One append carries at most `append_bytes_max()` bytes, counting each record's body plus
//!   [`APPEND_RECORD_OVERHEAD_BYTES`]; past that it fails with `TooLarge` and writes nothing.
//!   A record alone may use all of it. Producers with many records split them
//!   (`partition::Handle::append_as` does).
//!
//! The trait is shaped so that a replicated log (the cluster add-on: a chain of segments,
//! sealed at an f-majority and extended by the metadata store) can stand behind it unchanged:
//! appends are async and may fail, readers are pull-based, and the seal is the fence. What
//! travels between nodes are record bodies; frame headers carry node-local positions
//! (`docs/log.md`).

mod mem;

use std::future::Future;

pub use mem::MemLog;
pub use segment_format::{LogId, Lsn, Record};

pub use crate::wal::{LogTail, WalError as LogError};

/// What a record costs an append besides its body, for [`Log::append_bytes_max`]: the WAL's
/// frame header and alignment. Bytes.
pub const APPEND_RECORD_OVERHEAD_BYTES: usize =
    segment_format::FRAME_HEADER_BYTES + segment_format::FRAME_ALIGN_BYTES;

/// A set of logs addressed by [`LogId`].
pub trait Log: Send + Sync + 'static {
    type Reader: LogReader;

    /// The identity of this log store (the WAL's id; a random id for `MemLog`).
    fn identity(&self) -> u64;
    /// The most one append may carry: the sum of its records' body bytes plus
    /// [`APPEND_RECORD_OVERHEAD_BYTES`] each.
    fn append_bytes_max(&self) -> usize;
    /// Appends `bodies` as consecutive records for a writer of `epoch`; resolves to the last
    /// LSN once durable, or `Fenced` if the log was sealed at a higher epoch first.
    fn append(
        &self,
        log: LogId,
        epoch: u64,
        bodies: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Lsn, LogError>> + Send;
    /// Reads `log` from `from` on.
    fn reader(&self, log: LogId, from: Lsn) -> Self::Reader;
    /// Durable state of `log`, its epoch included.
    fn tail(&self, log: LogId) -> LogTail;
    /// Drops records of `log` up to `lsn`.
    fn trim(&self, log: LogId, lsn: Lsn) -> impl Future<Output = Result<(), LogError>> + Send;
    /// Fences writers of epochs below `epoch`; resolves to the last LSN once durable.
    fn seal(&self, log: LogId, epoch: u64) -> impl Future<Output = Result<Lsn, LogError>> + Send;
}

/// Reads one log in LSN order.
pub trait LogReader: Send {
    /// The next record, or `None` at the tail.
    fn try_next(&mut self) -> Result<Option<Record>, LogError>;
    /// The next record, waiting for it.
    fn next(&mut self) -> impl Future<Output = Result<Record, LogError>> + Send;
}

impl Log for crate::wal::Wal {
    type Reader = crate::wal::Reader;

    fn identity(&self) -> u64 {
        self.id()
    }
    fn append_bytes_max(&self) -> usize {
        crate::wal::Wal::append_bytes_max(self)
    }
    fn append(
        &self,
        log: LogId,
        epoch: u64,
        bodies: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Lsn, LogError>> + Send {
        crate::wal::Wal::append_fenced(self, log, epoch, bodies)
    }
    fn reader(&self, log: LogId, from: Lsn) -> Self::Reader {
        crate::wal::Wal::reader(self, log, from)
    }
    fn tail(&self, log: LogId) -> LogTail {
        crate::wal::Wal::tail(self, log)
    }
    fn trim(&self, log: LogId, lsn: Lsn) -> impl Future<Output = Result<(), LogError>> + Send {
        crate::wal::Wal::trim(self, log, lsn)
    }
    fn seal(&self, log: LogId, epoch: u64) -> impl Future<Output = Result<Lsn, LogError>> + Send {
        crate::wal::Wal::fence(self, log, epoch)
    }
}

/// A boxed future, for the object-safe [`DynLog`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Log`] as a trait object: what components hold ([`SharedLog`]), so they depend on the
/// seam and not on one implementation. Every [`Log`] is a `DynLog`.
pub trait DynLog: Send + Sync + std::fmt::Debug + 'static {
    fn identity(&self) -> u64;
    fn append_bytes_max(&self) -> usize;
    fn append(
        &self,
        log: LogId,
        epoch: u64,
        bodies: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Lsn, LogError>>;
    fn reader(&self, log: LogId, from: Lsn) -> Box<dyn DynReader>;
    fn tail(&self, log: LogId) -> LogTail;
    fn trim(&self, log: LogId, lsn: Lsn) -> BoxFuture<'_, Result<(), LogError>>;
    fn seal(&self, log: LogId, epoch: u64) -> BoxFuture<'_, Result<Lsn, LogError>>;
}

/// [`LogReader`] as a trait object.
pub trait DynReader: Send {
    fn try_next(&mut self) -> Result<Option<Record>, LogError>;
    fn next(&mut self) -> BoxFuture<'_, Result<Record, LogError>>;
}

/// The log as components hold it.
pub type SharedLog = std::sync::Arc<dyn DynLog>;

impl<L: Log + std::fmt::Debug> DynLog for L {
    fn identity(&self) -> u64 {
        Log::identity(self)
    }
    fn append_bytes_max(&self) -> usize {
        Log::append_bytes_max(self)
    }
    fn append(
        &self,
        log: LogId,
        epoch: u64,
        bodies: Vec<Vec<u8>>,
    ) -> BoxFuture<'_, Result<Lsn, LogError>> {
        Box::pin(Log::append(self, log, epoch, bodies))
    }
    fn reader(&self, log: LogId, from: Lsn) -> Box<dyn DynReader> {
        Box::new(Log::reader(self, log, from))
    }
    fn tail(&self, log: LogId) -> LogTail {
        Log::tail(self, log)
    }
    fn trim(&self, log: LogId, lsn: Lsn) -> BoxFuture<'_, Result<(), LogError>> {
        Box::pin(Log::trim(self, log, lsn))
    }
    fn seal(&self, log: LogId, epoch: u64) -> BoxFuture<'_, Result<Lsn, LogError>> {
        Box::pin(Log::seal(self, log, epoch))
    }
}

impl<R: LogReader> DynReader for R {
    fn try_next(&mut self) -> Result<Option<Record>, LogError> {
        LogReader::try_next(self)
    }
    fn next(&mut self) -> BoxFuture<'_, Result<Record, LogError>> {
        Box::pin(LogReader::next(self))
    }
}

impl LogReader for crate::wal::Reader {
    fn try_next(&mut self) -> Result<Option<Record>, LogError> {
        crate::wal::Reader::try_next(self)
    }
    fn next(&mut self) -> impl Future<Output = Result<Record, LogError>> + Send {
        crate::wal::Reader::next(self)
    }
}
