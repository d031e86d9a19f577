//! Simulated storage for the partition store: a redb [`StorageBackend`] in memory that can
//! crash, for tests and the deterministic simulator.
//!
//! Owns two images of the "file": `current` (what reads see: every write so far) and
//! `durable` (what survives a power loss: the state at the last successful `sync_data`), plus
//! the list of operations issued since that sync. [`SimBackend::crash_image`] builds the file a
//! restarted machine would find: the durable image, plus none, all, or a seeded choice of the
//! unsynced operations, where a chosen write may also be torn (only some of its 512-byte
//! sectors reach the disk). [`SimBackend::set_sync_fails`] makes `sync_data` fail with EIO;
//! [`SimBackend::set_capacity_bytes`] makes writes and growth past a file size fail with
//! ENOSPC, as a full disk does.
//!
//! Invariants: a successful `sync_data` makes `durable == current`; nothing reaches `durable`
//! any other way; a crash image never contains data that was not written. Memory is not
//! bounded beyond the file size plus the unsynced writes: this is a test seam.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

/// Granularity at which a crash image may tear a write. Bytes.
pub const SECTOR_BYTES: usize = 512;

/// Which unsynced operations a crash image keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Power loss before anything unsynced reached the disk.
    LoseUnsynced,
    /// Process crash: everything written reached the OS, so all of it survives.
    KeepUnsynced,
    /// Power loss with a seeded choice per unsynced operation: dropped, kept, or (for
    /// writes) torn at sector granularity.
    Seeded(u64),
}

/// A cloneable handle to one simulated file; clones share the file. Hand one clone to
/// redb and keep another to inspect it, fail syncs, or take crash images.
#[derive(Clone, Default)]
pub struct SimBackend {
    state: Arc<Mutex<SimState>>,
}

#[derive(Default)]
struct SimState {
    current: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Op>,
    syncs: u64,
    sync_fails: bool,
    capacity_bytes: Option<usize>,
}

enum Op {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("SimBackend")
            .field("current_bytes", &s.current.len())
            .field("durable_bytes", &s.durable.len())
            .field("unsynced_ops", &s.unsynced.len())
            .field("syncs", &s.syncs)
            .finish()
    }
}

impl SimBackend {
    /// An empty file.
    pub fn new() -> SimBackend {
        SimBackend::default()
    }

    /// How many `sync_data` calls succeeded so far.
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// How many operations were issued since the last successful sync.
    pub fn unsynced_ops(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// From now on, `sync_data` fails with EIO (and makes nothing durable) while `fails`.
    pub fn set_sync_fails(&self, fails: bool) {
        self.lock().sync_fails = fails;
    }

    /// Writes or growth that would make the file longer than `bytes` fail with ENOSPC (and
    /// change nothing) while set.
    pub fn set_capacity_bytes(&self, bytes: Option<usize>) {
        self.lock().capacity_bytes = bytes;
    }

    /// The file's current length (what reads see). Bytes.
    pub fn len_bytes(&self) -> usize {
        self.lock().current.len()
    }

    /// The file a restarted machine would see, as a new, independent backend.
    pub fn crash_image(&self, crash: Crash) -> SimBackend {
        let s = self.lock();
        let image = match crash {
            Crash::LoseUnsynced => s.durable.clone(),
            Crash::KeepUnsynced => s.current.clone(),
            Crash::Seeded(seed) => {
                let mut rng = SplitMix(seed);
                let mut image = s.durable.clone();
                for op in &s.unsynced {
                    match (op, rng.next() % 3) {
                        (_, 0) => {}
                        (Op::SetLen(len), _) => image.resize(*len, 0),
                        (Op::Write { offset, data }, 1) => write_into(&mut image, *offset, data),
                        (Op::Write { offset, data }, _) => {
                            for (i, sector) in data.chunks(SECTOR_BYTES).enumerate() {
                                if rng.next() % 2 == 0 {
                                    write_into(&mut image, offset + i * SECTOR_BYTES, sector);
                                }
                            }
                        }
                    }
                }
                image
            }
        };
        let state = SimState { current: image.clone(), durable: image, ..SimState::default() };
        SimBackend { state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panicking test thread must not hide the file from the rest of the test.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn write_into(image: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(data);
}

fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl SimState {
    fn check_space(&self, end: usize) -> io::Result<()> {
        match self.capacity_bytes {
            Some(cap) if end > cap && end > self.current.len() => Err(no_space()),
            _ => Ok(()),
        }
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "simulated file: access past the end")
}

impl StorageBackend for SimBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.lock().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let s = self.lock();
        let offset = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = offset.checked_add(out.len()).ok_or_else(out_of_range)?;
        let src = s.current.get(offset..end).ok_or_else(out_of_range)?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut s = self.lock();
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        s.check_space(len)?;
        s.current.resize(len, 0);
        s.unsynced.push(Op::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut s = self.lock();
        if s.sync_fails {
            return Err(io::Error::other("simulated fsync failure (EIO)"));
        }
        let SimState { durable, unsynced, .. } = &mut *s;
        for op in unsynced.drain(..) {
            match op {
                Op::SetLen(len) => durable.resize(len, 0),
                Op::Write { offset, data } => write_into(durable, offset, &data),
            }
        }
        debug_assert!(s.durable == s.current);
        s.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut s = self.lock();
        let offset = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = offset.checked_add(data.len()).ok_or_else(out_of_range)?;
        s.current.get_mut(offset..end).ok_or_else(out_of_range)?.copy_from_slice(data);
        s.unsynced.push(Op::Write { offset, data: data.to_vec() });
        Ok(())
    }
}

/// splitmix64: deterministic, no global state.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
