//! An in-memory [`Log`]: the reference implementation the conformance suite also runs
//! against, and the log of deterministic simulations. Nothing survives a drop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use segment_format::{LogId, Lsn, Record, LOG_ID_CONTROL};
use tokio::sync::watch;

use super::{Log, LogError, LogReader, LogTail};

#[derive(Debug, Default)]
struct MemState {
    /// Records after the trim point, in LSN order.
    records: Vec<Record>,
    tail: LogTail,
}

#[derive(Debug)]
struct Inner {
    logs: Mutex<HashMap<LogId, MemState>>,
    changed: watch::Sender<u64>,
    identity: u64,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct MemLog {
    inner: Arc<Inner>,
}

impl Default for MemLog {
    fn default() -> Self {
        MemLog::with_identity(0x4D45_4D4C_4F47)
    }
}

impl MemLog {
    pub fn new() -> MemLog {
        MemLog::default()
    }
    /// A log store with a chosen identity (two `MemLog`s with different identities are
    /// different log stores to a partition store).
    pub fn with_identity(identity: u64) -> MemLog {
        MemLog {
            inner: Arc::new(Inner {
                logs: Mutex::default(),
                changed: watch::Sender::new(0),
                identity,
            }),
        }
    }
    fn logs(&self) -> MutexGuard<'_, HashMap<LogId, MemState>> {
        self.inner.logs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The most one append to a [`MemLog`] carries: the WAL's largest record.
const MEM_APPEND_BYTES_MAX: usize = segment_format::RECORD_BODY_BYTES_MAX;

impl Log for MemLog {
    type Reader = MemReader;

    fn identity(&self) -> u64 {
        self.inner.identity
    }

    fn append_bytes_max(&self) -> usize {
        MEM_APPEND_BYTES_MAX
    }

    async fn append(&self, log: LogId, epoch: u64, bodies: Vec<Vec<u8>>) -> Result<Lsn, LogError> {
        if log == LOG_ID_CONTROL {
            return Err(LogError::ReservedLog);
        }
        let bytes = crate::wal::append_bytes(&bodies);
        if bytes > MEM_APPEND_BYTES_MAX && bodies.len() > 1 {
            return Err(LogError::TooLarge { bytes, limit_bytes: MEM_APPEND_BYTES_MAX });
        }
        if let Some(b) = bodies.iter().find(|b| b.len() > MEM_APPEND_BYTES_MAX) {
            return Err(LogError::TooLarge { bytes: b.len(), limit_bytes: MEM_APPEND_BYTES_MAX });
        }
        let last = {
            let mut logs = self.logs();
            let s = logs.entry(log).or_default();
            if s.tail.sealed {
                return Err(LogError::Sealed(log));
            }
            if epoch < s.tail.epoch {
                return Err(LogError::Fenced { log, epoch, log_epoch: s.tail.epoch });
            }
            for body in bodies {
                let lsn = s.tail.lsn_durable.next();
                s.records.push(Record { log_id: log, lsn, timestamp_ms: 0, body });
                s.tail.lsn_durable = lsn;
            }
            s.tail.lsn_durable
        };
        self.inner.changed.send_modify(|n| *n += 1);
        Ok(last)
    }

    fn reader(&self, log: LogId, from: Lsn) -> MemReader {
        MemReader {
            log: self.clone(),
            id: log,
            next: from.max(Lsn::FIRST),
            rx: self.inner.changed.subscribe(),
        }
    }

    fn tail(&self, log: LogId) -> LogTail {
        self.logs().get(&log).map(|s| s.tail).unwrap_or_default()
    }

    async fn trim(&self, log: LogId, lsn: Lsn) -> Result<(), LogError> {
        if log == LOG_ID_CONTROL {
            return Err(LogError::ReservedLog);
        }
        let mut logs = self.logs();
        let s = logs.entry(log).or_default();
        let lsn = lsn.min(s.tail.lsn_durable);
        if lsn > s.tail.lsn_trim {
            s.records.retain(|r| r.lsn > lsn);
            s.tail.lsn_trim = lsn;
        }
        Ok(())
    }

    async fn seal(&self, log: LogId, epoch: u64) -> Result<Lsn, LogError> {
        if log == LOG_ID_CONTROL {
            return Err(LogError::ReservedLog);
        }
        let mut logs = self.logs();
        let s = logs.entry(log).or_default();
        if epoch < s.tail.epoch {
            return Err(LogError::Fenced { log, epoch, log_epoch: s.tail.epoch });
        }
        s.tail.epoch = epoch;
        Ok(s.tail.lsn_durable)
    }
}

/// Reader of a [`MemLog`].
#[derive(Debug)]
pub struct MemReader {
    log: MemLog,
    id: LogId,
    next: Lsn,
    rx: watch::Receiver<u64>,
}

impl LogReader for MemReader {
    fn try_next(&mut self) -> Result<Option<Record>, LogError> {
        let logs = self.log.logs();
        let Some(s) = logs.get(&self.id) else { return Ok(None) };
        if self.next <= s.tail.lsn_trim {
            return Err(LogError::Trimmed {
                log: self.id,
                lsn: self.next,
                lsn_trim: s.tail.lsn_trim,
            });
        }
        let Some(first) = s.records.first() else { return Ok(None) };
        let idx = (self.next.0 - first.lsn.0) as usize;
        let r = s.records.get(idx).cloned();
        if r.is_some() {
            self.next = self.next.next();
        }
        Ok(r)
    }

    async fn next(&mut self) -> Result<Record, LogError> {
        loop {
            self.rx.borrow_and_update();
            if let Some(r) = self.try_next()? {
                return Ok(r);
            }
            if self.rx.changed().await.is_err() {
                return Err(LogError::Closed);
            }
        }
    }
}
