//! The `Disk` seam: everything the WAL does to storage goes through this trait.
//!
//! The trait is completion-based and shaped like io_uring: the writer submits durable writes
//! with a caller-chosen `user_data` and an owned, block-aligned buffer, and later collects
//! completions that hand the buffer back. A completion with `Ok` means the bytes are on stable
//! storage (the backend did whatever it takes: fdatasync, O_DSYNC, linked fsync). Control
//! operations (open, list, rename, zero-fill) are synchronous: they are rare and off the
//! append path.
//!
//! Implementations: [`std_disk::StdDisk`] (pwrite + fdatasync, portable), [`uring::UringDisk`]
//! (io_uring, O_DIRECT|O_DSYNC with registered buffers), [`sim::SimDisk`] (in memory, drops
//! unsynced writes and tears the last one on a simulated crash). One conformance suite
//! (`tests/disk_conformance.rs`) runs against all three.
//!
//! Invariants every implementation keeps:
//! - A completion is reported at most once per submission, with the submission's buffer.
//! - `Ok` on a durable write means durable; an `Err` is final (the WAL poisons itself).
//! - Reads through [`DiskRead`] see every completed write.

pub mod fault;
pub mod sim;
pub mod std_disk;
pub mod uring;

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;

use segment_format::BLOCK_BYTES;

/// A file opened through a [`Disk`]; meaningful only to the disk that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(pub u32);

/// A heap buffer aligned to [`BLOCK_BYTES`], with a capacity that is a multiple of it, as
/// O_DIRECT needs. Owned by exactly one party at a time: the writer, or the disk while a
/// write is in flight.
pub struct IoBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    /// Index of this buffer in the disk's registered set, if it was registered.
    pub registered_index: Option<u16>,
}

// SAFETY: IoBuf uniquely owns its allocation, like a Vec<u8>.
unsafe impl Send for IoBuf {}
unsafe impl Sync for IoBuf {}

impl IoBuf {
    /// A zeroed buffer of at least `cap_bytes`, rounded up to whole blocks.
    pub fn new(cap_bytes: usize) -> IoBuf {
        let cap = cap_bytes.max(1).div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        let layout = Layout::from_size_align(cap, BLOCK_BYTES).expect("valid layout");
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        IoBuf { ptr, len: 0, cap, registered_index: None }
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Sets the length of the valid prefix. Bytes past the old length keep their contents
    /// (zero for a fresh buffer or after [`IoBuf::clear_zeroed`]).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.cap);
        self.len = len;
    }
    /// Empties the buffer and zeroes its first `bytes` bytes (what was in use).
    pub fn clear_zeroed(&mut self, bytes: usize) {
        let n = bytes.min(self.cap);
        self.full_mut()[..n].fill(0);
        self.len = 0;
    }
    /// The whole capacity, for filling in place.
    pub fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for cap bytes and uniquely owned.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl std::ops::Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for cap >= len bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.cap, BLOCK_BYTES).expect("valid layout");
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoBuf").field("len", &self.len).field("cap", &self.cap).finish()
    }
}

/// A durable write: `buf[..buf.len()]` goes to `file` at `offset`. Both `offset` and
/// `buf.len()` are multiples of [`BLOCK_BYTES`] when the disk asks for aligned writes
/// ([`Disk::needs_aligned_writes`]).
#[derive(Debug)]
pub struct Submission {
    pub user_data: u64,
    pub file: FileId,
    pub offset: u64,
    pub buf: IoBuf,
}

/// The outcome of one [`Submission`].
#[derive(Debug)]
pub struct Completion {
    pub user_data: u64,
    pub buf: IoBuf,
    pub result: io::Result<()>,
}

/// Storage for one WAL directory. Used from one thread (the WAL thread).
pub trait Disk: Send + 'static {
    /// Short name for reports and benchmarks: "std", "uring", "sim".
    fn engine(&self) -> &'static str;
    /// Whether submissions must be block-aligned in offset and length (O_DIRECT).
    fn needs_aligned_writes(&self) -> bool;
    /// How many submissions may be in flight at once.
    fn inflight_max(&self) -> usize;
    /// Registers the writer's buffers with the kernel, where the backend can use that; sets
    /// each buffer's `registered_index`. The buffers must outlive the disk's use of them.
    fn register_buffers(&mut self, bufs: &mut [IoBuf]) -> io::Result<()>;

    /// Names of the regular files in the directory.
    fn list(&mut self) -> io::Result<Vec<String>>;
    /// Opens `name` for reading and writing, creating it empty if `create` and missing.
    fn open(&mut self, name: &str, create: bool) -> io::Result<FileId>;
    fn close(&mut self, file: FileId);
    fn file_len(&mut self, file: FileId) -> io::Result<u64>;
    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes `data` at `offset` and makes it durable before returning (control path).
    fn write_sync(&mut self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Renames a file and makes the rename durable (directory sync).
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file and makes the removal durable (directory sync).
    fn remove(&mut self, name: &str) -> io::Result<()>;

    /// Queues a durable write. Fails only if `inflight_max` submissions are already queued
    /// (a writer bug) or the disk is dead.
    fn submit(&mut self, sub: Submission) -> io::Result<()>;
    /// Blocks until at least `min` completions are ready (fewer if fewer are in flight) and
    /// appends every ready completion to `out`.
    fn complete(&mut self, min: usize, out: &mut Vec<Completion>) -> io::Result<()>;

    /// A thread-safe handle that reads files by name, for WAL readers.
    fn reader(&self) -> Arc<dyn DiskRead>;
}

/// Reads WAL files by name from any thread.
pub trait DiskRead: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (short at EOF).
    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Drops any cached handle to `name` (after the file was renamed or removed).
    fn forget(&self, name: &str);
}

/// Which backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Engine {
    /// io_uring when the kernel offers what we need, else std.
    #[default]
    Auto,
    Uring,
    Std,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Engine::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(Engine::Uring),
            "std" | "pwrite" => Ok(Engine::Std),
            other => Err(format!("unknown WAL engine {other:?}: expected auto, uring or std")),
        }
    }
}

/// Opens the directory with the chosen engine. `Auto` falls back to std when io_uring is
/// unavailable (no kernel support, blocked by seccomp, disabled by sysctl, or missing ops).
pub fn open_dir(dir: &std::path::Path, engine: Engine) -> io::Result<Box<dyn Disk>> {
    match engine {
        Engine::Std => Ok(Box::new(std_disk::StdDisk::open(dir)?)),
        Engine::Uring => Ok(Box::new(uring::UringDisk::open(dir)?)),
        Engine::Auto => match uring::UringDisk::open(dir) {
            Ok(d) => Ok(Box::new(d)),
            Err(_) => Ok(Box::new(std_disk::StdDisk::open(dir)?)),
        },
    }
}

impl Disk for Box<dyn Disk> {
    fn engine(&self) -> &'static str {
        (**self).engine()
    }
    fn needs_aligned_writes(&self) -> bool {
        (**self).needs_aligned_writes()
    }
    fn inflight_max(&self) -> usize {
        (**self).inflight_max()
    }
    fn register_buffers(&mut self, bufs: &mut [IoBuf]) -> io::Result<()> {
        (**self).register_buffers(bufs)
    }
    fn list(&mut self) -> io::Result<Vec<String>> {
        (**self).list()
    }
    fn open(&mut self, name: &str, create: bool) -> io::Result<FileId> {
        (**self).open(name, create)
    }
    fn close(&mut self, file: FileId) {
        (**self).close(file)
    }
    fn file_len(&mut self, file: FileId) -> io::Result<u64> {
        (**self).file_len(file)
    }
    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(file, offset, buf)
    }
    fn write_sync(&mut self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        (**self).write_sync(file, offset, data)
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        (**self).rename(from, to)
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        (**self).remove(name)
    }
    fn submit(&mut self, sub: Submission) -> io::Result<()> {
        (**self).submit(sub)
    }
    fn complete(&mut self, min: usize, out: &mut Vec<Completion>) -> io::Result<()> {
        (**self).complete(min, out)
    }
    fn reader(&self) -> Arc<dyn DiskRead> {
        (**self).reader()
    }
}
