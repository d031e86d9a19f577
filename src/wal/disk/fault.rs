//! A fault-injecting wrapper of any [`Disk`]: after a given number of durable writes completed,
//! every further durable write completes with EIO, as a dying device does.
//!
//! Used by the fail-stop test of the real server (the environment variable
//! `RATCHET_TEST_WAL_EIO_AFTER_WRITES` turns it on in `runtime`); nothing else enables it.
//!
//! Invariant: before the threshold it is the wrapped disk, byte for byte.

use std::io;
use std::sync::Arc;

use super::{Completion, Disk, DiskRead, FileId, IoBuf, Submission};

/// See the module documentation.
#[derive(Debug)]
pub struct EioAfter<D> {
    inner: D,
    writes_ok_max: u64,
    writes_ok: u64,
}

impl<D: Disk> EioAfter<D> {
    pub fn new(inner: D, writes_ok_max: u64) -> EioAfter<D> {
        EioAfter { inner, writes_ok_max, writes_ok: 0 }
    }
}

impl<D: Disk> Disk for EioAfter<D> {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    fn needs_aligned_writes(&self) -> bool {
        self.inner.needs_aligned_writes()
    }
    fn inflight_max(&self) -> usize {
        self.inner.inflight_max()
    }
    fn register_buffers(&mut self, bufs: &mut [IoBuf]) -> io::Result<()> {
        self.inner.register_buffers(bufs)
    }
    fn list(&mut self) -> io::Result<Vec<String>> {
        self.inner.list()
    }
    fn open(&mut self, name: &str, create: bool) -> io::Result<FileId> {
        self.inner.open(name, create)
    }
    fn close(&mut self, file: FileId) {
        self.inner.close(file)
    }
    fn file_len(&mut self, file: FileId) -> io::Result<u64> {
        self.inner.file_len(file)
    }
    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(file, offset, buf)
    }
    fn write_sync(&mut self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        self.inner.write_sync(file, offset, data)
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn submit(&mut self, sub: Submission) -> io::Result<()> {
        self.inner.submit(sub)
    }
    fn complete(&mut self, min: usize, out: &mut Vec<Completion>) -> io::Result<()> {
        let from = out.len();
        self.inner.complete(min, out)?;
        for c in &mut out[from..] {
            if c.result.is_ok() {
                if self.writes_ok >= self.writes_ok_max {
                    c.result = Err(io::Error::from_raw_os_error(libc::EIO));
                } else {
                    self.writes_ok += 1;
                }
            }
        }
        Ok(())
    }
    fn reader(&self) -> Arc<dyn DiskRead> {
        self.inner.reader()
    }
}
