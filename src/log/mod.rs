//! The virtual log: one [`Log`] trait for everything above storage (partition processors,
//! ingress, the cluster add-on), with implementations for the node WAL ([`crate::wal::Wal`])
//! and memory ([`MemLog`], for tests and simulation).
//!
//! Contract every implementation keeps (checked by `tests/log_conformance.rs`):
//! - `append` returns only once the records are durable (for `MemLog`: visible), with the LSN
//!   of the last one; LSNs of a log start at 1 and are contiguous.
//! - Readers see records in LSN order, each exactly once, and only durable ones.
//! - `trim(log, lsn)` makes LSNs at or below `lsn` unreadable (`Trimmed`), never others.
//! - After `seal(log)` appends fail with `Sealed`; the returned LSN is the last one.
//!
//! The trait is shaped so that a replicated log can stand behind it unchanged: appends are
//! async and may fail, readers are pull-based, and sealing is explicit.

mod mem;

use std::future::Future;

pub use mem::MemLog;
pub use segment_format::{LogId, Lsn, Record};

pub use crate::wal::{LogTail, WalError as LogError};

/// A set of logs addressed by [`LogId`].
pub trait Log: Send + Sync + 'static {
    type Reader: LogReader;

    /// Appends `bodies` as consecutive records; resolves to the last LSN once durable.
    fn append(
        &self,
        log: LogId,
        bodies: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Lsn, LogError>> + Send;
    /// Reads `log` from `from` on.
    fn reader(&self, log: LogId, from: Lsn) -> Self::Reader;
    /// Durable state of `log`.
    fn tail(&self, log: LogId) -> LogTail;
    /// Drops records of `log` up to `lsn`.
    fn trim(&self, log: LogId, lsn: Lsn) -> impl Future<Output = Result<(), LogError>> + Send;
    /// Stops appends to `log`; resolves to its last LSN.
    fn seal(&self, log: LogId) -> impl Future<Output = Result<Lsn, LogError>> + Send;
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

    fn append(
        &self,
        log: LogId,
        bodies: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Lsn, LogError>> + Send {
        crate::wal::Wal::append(self, log, bodies)
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
    fn seal(&self, log: LogId) -> impl Future<Output = Result<Lsn, LogError>> + Send {
        crate::wal::Wal::seal(self, log)
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
