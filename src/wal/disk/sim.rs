//! Simulated disk: in memory, deterministic from a seed, and able to crash.
//!
//! Every file keeps two images: `current` (what reads see) and `durable` (what survives a
//! crash). A durable write enters `current` at submission and `durable` at its completion;
//! completions are handed out in seeded random order, as a real device may reorder them.
//! Control operations (`write_sync`, `rename`, `remove`, `open` with create) are durable at once.
//!
//! A crash is armed with [`SimControl::crash_after_ops`]: after that many operations every
//! operation fails with EIO, as if the machine lost power. [`SimControl::crash_image`] then
//! builds the disk a restarted machine would see: the durable images plus, for each write that
//! was in flight, a seeded choice of dropped, fully written, or torn (only a prefix of its
//! sectors reached the disk). [`SimControl::set_capacity_bytes`] makes writes past a size fail
//! with ENOSPC, [`SimControl::set_writes_fail_no_space`] makes every durable write fail with it,
//! [`SimControl::set_renames_fail_no_space`] every rename, and [`SimControl::panic_on_submit`]
//! makes the next submission panic (a stand-in for a writer bug).
//!
//! Invariant: a completion reported `Ok` is in the durable image; nothing else is, except
//! what a crash image chooses to keep of in-flight writes.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use segment_format::SECTOR_BYTES;

use super::{Completion, Disk, DiskRead, FileId, IoBuf, Submission};

/// A tiny deterministic PRNG (splitmix64): the simulator must not depend on global state.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[derive(Clone, Debug, Default)]
struct SimFile {
    current: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug)]
struct InFlight {
    name: String,
    offset: u64,
    data: Vec<u8>,
}

#[derive(Debug)]
struct State {
    files: BTreeMap<String, SimFile>,
    /// In-flight durable writes by submission token, in submission order.
    inflight: BTreeMap<u64, InFlight>,
    ops: u64,
    crash_after_ops: Option<u64>,
    crashed: bool,
    capacity_bytes: Option<u64>,
    /// Durable writes fail with ENOSPC even inside a file (copy-on-write storage when full).
    writes_fail_no_space: bool,
    /// Renames fail with ENOSPC (a directory or copy-on-write metadata that cannot grow).
    renames_fail_no_space: bool,
    /// Test hook: the next `submit` panics (see [`SimControl::panic_on_submit`]).
    panic_on_submit: bool,
    rng: SimRng,
}

impl State {
    fn tick(&mut self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed());
        }
        self.ops += 1;
        if self.crash_after_ops.is_some_and(|n| self.ops > n) {
            self.crashed = true;
            return Err(crashed());
        }
        Ok(())
    }
    fn used_bytes(&self) -> u64 {
        self.files.values().map(|f| f.current.len() as u64).sum()
    }
    fn check_space(&self, name: &str, end: u64) -> io::Result<()> {
        if self.writes_fail_no_space {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let Some(cap) = self.capacity_bytes else { return Ok(()) };
        let cur = self.files.get(name).map_or(0, |f| f.current.len() as u64);
        if end > cur && self.used_bytes() + (end - cur) > cap {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the disk is gone")
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

/// Test-side handle to a [`SimDisk`]'s shared state: arm crashes, set capacity, take images.
#[derive(Clone, Debug)]
pub struct SimControl {
    state: Arc<Mutex<State>>,
}

impl SimControl {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// After `n` more operations, the disk fails every operation.
    pub fn crash_after_ops(&self, n: u64) {
        let mut s = self.lock();
        s.crash_after_ops = Some(s.ops + n);
    }
    /// Operations performed so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }
    /// While set, every durable write fails with ENOSPC, as on copy-on-write or
    /// thin-provisioned storage that ran full (writes into existing blocks need new ones).
    pub fn set_writes_fail_no_space(&self, fail: bool) {
        self.lock().writes_fail_no_space = fail;
    }
    /// While set, every rename fails with ENOSPC: on copy-on-write file systems, and when a
    /// directory must grow, even a rename can need space.
    pub fn set_renames_fail_no_space(&self, fail: bool) {
        self.lock().renames_fail_no_space = fail;
    }
    /// Test hook: once set, the next durable write submission clears the flag and panics,
    /// standing in for a bug in the writer, to test that a panicked writer poisons the WAL
    /// instead of leaving callers waiting.
    pub fn panic_on_submit(&self, panic: bool) {
        self.lock().panic_on_submit = panic;
    }
    /// Bytes the files take together now.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }
    /// Writes that would grow the files past `bytes` in total fail with ENOSPC.
    pub fn set_capacity_bytes(&self, bytes: Option<u64>) {
        self.lock().capacity_bytes = bytes;
    }
    /// Names of all files.
    pub fn names(&self) -> Vec<String> {
        self.lock().files.keys().cloned().collect()
    }
    /// Bytes of the named file as reads see them now (for tests).
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(|f| f.current.clone())
    }
    /// Overwrites bytes of a file in both images (for corruption tests).
    pub fn corrupt(&self, name: &str, offset: u64, data: &[u8]) {
        let mut s = self.lock();
        if let Some(f) = s.files.get_mut(name) {
            write_into(&mut f.current, offset, data);
            write_into(&mut f.durable, offset, data);
        }
    }
    /// The disk a machine sees after power loss now: durable images, plus a seeded choice
    /// for each in-flight write of dropped, fully written or torn at a sector boundary.
    pub fn crash_image(&self, seed: u64) -> SimDisk {
        let s = self.lock();
        let mut rng = SimRng::new(seed);
        let mut files: BTreeMap<String, SimFile> = s
            .files
            .iter()
            .map(|(n, f)| {
                (n.clone(), SimFile { current: f.durable.clone(), durable: f.durable.clone() })
            })
            .collect();
        for w in s.inflight.values() {
            let Some(f) = files.get_mut(&w.name) else { continue };
            let kept = match rng.below(3) {
                0 => 0,
                1 => w.data.len(),
                _ => {
                    // Keep whole sectors of the file up to a random one.
                    let sectors_start = w.offset / SECTOR_BYTES as u64;
                    let sectors_end =
                        (w.offset + w.data.len() as u64).div_ceil(SECTOR_BYTES as u64);
                    let cut = sectors_start + rng.below(sectors_end - sectors_start + 1);
                    (cut * SECTOR_BYTES as u64).saturating_sub(w.offset).min(w.data.len() as u64)
                        as usize
                }
            };
            write_into(&mut f.durable, w.offset, &w.data[..kept]);
            f.current = f.durable.clone();
        }
        SimDisk::from_state(State {
            files,
            inflight: BTreeMap::new(),
            ops: 0,
            crash_after_ops: None,
            crashed: false,
            capacity_bytes: s.capacity_bytes,
            writes_fail_no_space: false,
            renames_fail_no_space: false,
            panic_on_submit: false,
            rng: SimRng::new(seed ^ 0x5EED),
        })
    }
}

/// The simulated disk. See the module documentation.
#[derive(Debug)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
    names: HashMap<FileId, String>,
    next_file: u32,
    next_token: u64,
    /// token -> (user_data, buffer) for in-flight submissions.
    submitted: HashMap<u64, (u64, IoBuf)>,
    /// Submissions that failed at once (no space), reported by the next `complete`.
    failed: Vec<Completion>,
    aligned: bool,
}

impl SimDisk {
    pub const INFLIGHT_MAX: usize = 4;

    pub fn new(seed: u64) -> SimDisk {
        SimDisk::from_state(State {
            files: BTreeMap::new(),
            inflight: BTreeMap::new(),
            ops: 0,
            crash_after_ops: None,
            crashed: false,
            capacity_bytes: None,
            writes_fail_no_space: false,
            renames_fail_no_space: false,
            panic_on_submit: false,
            rng: SimRng::new(seed),
        })
    }

    fn from_state(state: State) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(state)),
            names: HashMap::new(),
            next_file: 1,
            next_token: 1,
            submitted: HashMap::new(),
            failed: Vec::new(),
            aligned: false,
        }
    }

    /// Makes the disk demand block-aligned submissions, like O_DIRECT (exercises the writer's
    /// padding path).
    pub fn with_aligned_writes(mut self, aligned: bool) -> SimDisk {
        self.aligned = aligned;
        self
    }

    pub fn control(&self) -> SimControl {
        SimControl { state: self.state.clone() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(&self, file: FileId) -> io::Result<String> {
        self.names
            .get(&file)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file id not open"))
    }
}

impl Disk for SimDisk {
    fn engine(&self) -> &'static str {
        "sim"
    }
    fn needs_aligned_writes(&self) -> bool {
        self.aligned
    }
    fn inflight_max(&self) -> usize {
        Self::INFLIGHT_MAX
    }
    fn register_buffers(&mut self, _bufs: &mut [IoBuf]) -> io::Result<()> {
        Ok(())
    }
    fn list(&mut self) -> io::Result<Vec<String>> {
        let mut s = self.lock();
        s.tick()?;
        Ok(s.files.keys().cloned().collect())
    }
    fn open(&mut self, name: &str, create: bool) -> io::Result<FileId> {
        super::std_disk::check_name(name)?;
        {
            let mut s = self.lock();
            s.tick()?;
            if !s.files.contains_key(name) {
                if !create {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{name} not found"),
                    ));
                }
                s.files.insert(name.to_string(), SimFile::default());
            }
        }
        let id = FileId(self.next_file);
        self.next_file += 1;
        self.names.insert(id, name.to_string());
        Ok(id)
    }
    fn close(&mut self, file: FileId) {
        self.names.remove(&file);
    }
    fn file_len(&mut self, file: FileId) -> io::Result<u64> {
        let name = self.name(file)?;
        let mut s = self.lock();
        s.tick()?;
        s.files
            .get(&name)
            .map(|f| f.current.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file removed"))
    }
    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let name = self.name(file)?;
        self.lock().tick()?;
        self.reader().read_at(&name, offset, buf)
    }
    fn write_sync(&mut self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        let name = self.name(file)?;
        let mut s = self.lock();
        s.tick()?;
        s.check_space(&name, offset + data.len() as u64)?;
        let f = s.files.get_mut(&name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        write_into(&mut f.current, offset, data);
        write_into(&mut f.durable, offset, data);
        Ok(())
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        if s.renames_fail_no_space {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let f = s
            .files
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{from} not found")))?;
        s.files.insert(to.to_string(), f);
        for w in s.inflight.values_mut() {
            if w.name == from {
                w.name = to.to_string();
            }
        }
        drop(s);
        for n in self.names.values_mut() {
            if n == from {
                *n = to.to_string();
            }
        }
        Ok(())
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut s = self.lock();
        s.tick()?;
        s.files
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name} not found")))
    }
    fn submit(&mut self, sub: Submission) -> io::Result<()> {
        if std::mem::take(&mut self.lock().panic_on_submit) {
            panic!("sim disk: panic_on_submit was set");
        }
        if self.submitted.len() + self.failed.len() >= Self::INFLIGHT_MAX {
            return Err(io::Error::other("sim disk: too many submissions in flight"));
        }
        if self.aligned {
            let b = segment_format::BLOCK_BYTES as u64;
            assert!(sub.offset % b == 0 && sub.buf.len() as u64 % b == 0, "unaligned write");
        }
        let name = self.name(sub.file)?;
        let token = self.next_token;
        self.next_token += 1;
        {
            let mut s = self.lock();
            s.tick()?;
            if let Err(e) = s.check_space(&name, sub.offset + sub.buf.len() as u64) {
                // Like a real disk: the write fails in its completion, which returns the buffer.
                drop(s);
                self.failed.push(Completion {
                    user_data: sub.user_data,
                    buf: sub.buf,
                    result: Err(e),
                });
                return Ok(());
            }
            let f =
                s.files.get_mut(&name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            write_into(&mut f.current, sub.offset, &sub.buf);
            s.inflight.insert(token, InFlight { name, offset: sub.offset, data: sub.buf.to_vec() });
        }
        self.submitted.insert(token, (sub.user_data, sub.buf));
        Ok(())
    }
    fn complete(&mut self, min: usize, out: &mut Vec<Completion>) -> io::Result<()> {
        let failed = self.failed.len();
        out.append(&mut self.failed);
        if self.submitted.is_empty() {
            return Ok(());
        }
        let min = min.saturating_sub(failed);
        let state = self.state.clone();
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.tick()?;
        let n_inflight = s.inflight.len();
        let want = min.max(1).min(n_inflight);
        let n = want + s.rng.below((n_inflight - want + 1) as u64) as usize;
        for _ in 0..n {
            let keys: Vec<u64> = s.inflight.keys().copied().collect();
            let token = keys[s.rng.below(keys.len() as u64) as usize];
            let w = s.inflight.remove(&token).expect("token in flight");
            if let Some(f) = s.files.get_mut(&w.name) {
                write_into(&mut f.durable, w.offset, &w.data);
            }
            let (user_data, buf) = self.submitted.remove(&token).expect("token submitted");
            out.push(Completion { user_data, buf, result: Ok(()) });
        }
        Ok(())
    }
    fn reader(&self) -> Arc<dyn DiskRead> {
        Arc::new(SimReader { state: self.state.clone() })
    }
}

#[derive(Debug)]
struct SimReader {
    state: Arc<Mutex<State>>,
}

impl DiskRead for SimReader {
    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.crashed {
            return Err(crashed());
        }
        let f = s
            .files
            .get(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name} not found")))?;
        let start = (offset as usize).min(f.current.len());
        let n = (f.current.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&f.current[start..start + n]);
        Ok(n)
    }
    fn forget(&self, _name: &str) {}
}
