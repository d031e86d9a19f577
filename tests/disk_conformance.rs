//! One conformance suite for the `Disk` trait, run against every backend.
//!
//! Goal: the WAL is written against `Disk` alone, so every backend (std pwrite+fdatasync,
//! io_uring in each write mode, and the simulated disk) must behave the same way on what the
//! trait promises: control operations, durable writes that come back exactly once with their
//! buffer and `user_data`, the `inflight_max` limit, renames and removals that readers notice,
//! and ENOSPC surfacing as an error with raw os error `ENOSPC`.
//!
//! Method: [`conformance`] takes a [`Backend`] (a constructor plus what it needs) and runs each
//! case on a fresh disk in a fresh temporary directory. The ENOSPC case runs real-file backends
//! on a 1 MiB tmpfs that it mounts (we run as root on the project machine); if mounting fails it
//! says so and skips that case. The io_uring backend is skipped with a message when the kernel
//! refuses io_uring; set `RATCHET_TEST_REQUIRE_URING=1` to make that a failure instead.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ratchet::wal::disk::sim::SimDisk;
use ratchet::wal::disk::std_disk::StdDisk;
use ratchet::wal::disk::uring::{UringDisk, WriteMode};
use ratchet::wal::disk::{open_dir, Completion, Disk, Engine, FileId, IoBuf, Submission};
use segment_format::{BLOCK_BYTES, FLUSHES_INFLIGHT_MAX};

/// Space of the file system the ENOSPC case runs on. Bytes.
const ENOSPC_SPACE_BYTES: u64 = 1 << 20;
/// How long any wait for completions may take before the suite calls it a hang.
const COMPLETION_WAIT_MAX: Duration = Duration::from_secs(30);

/// A backend under test.
struct Backend<'a, D> {
    name: &'static str,
    /// Opens a disk on `dir`. With `Some(bytes)` the disk must run out of space (ENOSPC) after
    /// about `bytes`: real-file backends get that from the tmpfs the suite mounts at `dir`; a
    /// simulated disk must enforce it itself.
    open: &'a dyn Fn(&Path, Option<u64>) -> io::Result<D>,
    /// Files live in `dir` on a real file system: reopening sees them, and the ENOSPC case needs
    /// a tmpfs mount.
    real_fs: bool,
}

/// A named case of the suite.
type Case<D> = (&'static str, fn(&mut D));

/// The suite: every case on a fresh disk.
fn conformance<D: Disk>(backend: &Backend<'_, D>) {
    let cases: [Case<D>; 7] = [
        ("control", case_control),
        ("durable writes, unregistered buffers", |d| case_durable_writes(d, false)),
        ("durable writes, registered buffers", |d| case_durable_writes(d, true)),
        ("inflight_max", case_inflight_max),
        ("complete(min)", case_complete_min),
        ("rename and remove", case_rename_remove),
        ("drop with writes in flight", case_drop_inflight),
    ];
    for (case, run) in cases {
        eprintln!("[{}] {case}", backend.name);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut disk = (backend.open)(dir.path(), None).expect("open disk");
        run(&mut disk);
        drop(disk);
    }
    if backend.real_fs {
        eprintln!("[{}] reopen", backend.name);
        let dir = tempfile::tempdir().expect("tempdir");
        case_reopen(backend, dir.path());
    }
    eprintln!("[{}] ENOSPC", backend.name);
    if backend.real_fs {
        match TinyTmpfs::mount(ENOSPC_SPACE_BYTES) {
            Ok(fs) => case_enospc(backend, fs.path()),
            Err(why) => {
                eprintln!("[{}] SKIPPED the ENOSPC case: cannot mount a tmpfs: {why}", backend.name)
            }
        }
    } else {
        let dir = tempfile::tempdir().expect("tempdir");
        case_enospc(backend, dir.path());
    }
}

#[test]
fn std_disk_conforms() {
    conformance(&Backend { name: "std", open: &|dir, _| StdDisk::open(dir), real_fs: true });
}

#[test]
fn uring_disk_conforms_in_every_write_mode() {
    if !uring_available() {
        return;
    }
    for mode in [WriteMode::Direct, WriteMode::BufferedRwfDsync, WriteMode::BufferedLinkedFsync] {
        let name = match mode {
            WriteMode::Direct => "uring direct",
            WriteMode::BufferedRwfDsync => "uring rwf_dsync",
            WriteMode::BufferedLinkedFsync => "uring linked fsync",
        };
        conformance(&Backend {
            name,
            open: &|dir, _| UringDisk::open_with(dir, mode),
            real_fs: true,
        });
    }
}

#[test]
fn sim_disk_conforms() {
    for aligned in [false, true] {
        conformance(&Backend {
            name: if aligned { "sim aligned" } else { "sim" },
            open: &|_dir, space_bytes_max| {
                let disk = SimDisk::new(0x5eed).with_aligned_writes(aligned);
                disk.control().set_capacity_bytes(space_bytes_max);
                Ok(disk)
            },
            real_fs: false,
        });
    }
}

/// Backend-specific: on this kernel the io_uring backend is what `Auto` picks, it registers
/// buffers, and it uses a registration only for the buffer it belongs to.
#[test]
fn uring_disk_registers_buffers_and_checks_them() {
    if !uring_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(open_dir(dir.path(), Engine::Auto).expect("auto").engine(), "uring");
    let mut disk = UringDisk::open(dir.path()).expect("open");
    assert_eq!(disk.write_mode(), WriteMode::Direct);
    assert!(disk.needs_aligned_writes());
    let mut bufs = vec![IoBuf::new(BLOCK_BYTES), IoBuf::new(2 * BLOCK_BYTES)];
    disk.register_buffers(&mut bufs).expect("register");
    assert_eq!(bufs[0].registered_index, Some(0), "registration should work as root");
    assert_eq!(bufs[1].registered_index, Some(1));

    let f = disk.open("seg", true).expect("create");
    let mut stray = IoBuf::new(BLOCK_BYTES);
    stray.registered_index = Some(0); // claims a registration that is not its own
    let mut writes = vec![(1, bufs.remove(0)), (2, bufs.remove(0)), (3, stray)];
    let mut offset = 0;
    for (user_data, buf) in writes.drain(..) {
        let sub = filled(user_data, f, offset, buf, buf_fill(user_data));
        offset += sub.buf.len() as u64;
        disk.submit(sub).expect("submit");
    }
    for c in complete_n(&mut disk, 3) {
        c.result.expect("write");
    }
    let mut got = vec![0u8; offset as usize];
    disk.reader().read_at("seg", 0, &mut got).expect("read");
    let mut want = pattern(1, BLOCK_BYTES);
    want.extend(pattern(2, 2 * BLOCK_BYTES));
    want.extend(pattern(3, BLOCK_BYTES));
    assert!(got == want, "data written through fixed and plain writes reads back");

    let mut unaligned = IoBuf::new(BLOCK_BYTES);
    unaligned.set_len(100);
    let err = disk.submit(Submission { user_data: 9, file: f, offset: 0, buf: unaligned });
    assert_eq!(err.expect_err("O_DIRECT needs alignment").kind(), io::ErrorKind::InvalidInput);
}

/// Opens, creates, lists, sizes, and the synchronous control path.
fn case_control<D: Disk>(disk: &mut D) {
    assert_eq!(disk.list().expect("list"), Vec::<String>::new());
    let err = disk.open("missing", false).expect_err("open without create");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    for bad in ["", ".", "..", "../escape", "a/b"] {
        assert!(disk.open(bad, true).is_err(), "name {bad:?} must be refused");
    }

    let a = disk.open("a", true).expect("create a");
    let b = disk.open("b", true).expect("create b");
    assert_ne!(a, b);
    assert_eq!(disk.list().expect("list"), ["a", "b"]);
    assert_eq!(disk.file_len(a).expect("len"), 0);

    disk.write_sync(a, 0, b"hello").expect("write_sync");
    assert_eq!(disk.file_len(a).expect("len"), 5);
    let mut buf = [0u8; 16];
    assert_eq!(disk.read_at(a, 0, &mut buf).expect("read"), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(disk.read_at(a, 3, &mut buf).expect("read"), 2);
    assert_eq!(&buf[..2], b"lo");
    assert_eq!(disk.read_at(a, 100, &mut buf).expect("read past end"), 0);

    // The control path takes unaligned writes whatever the backend; the gap reads as zeros.
    let offset = BLOCK_BYTES as u64 + 1;
    disk.write_sync(a, offset, b"0123456789").expect("unaligned write_sync");
    assert_eq!(disk.file_len(a).expect("len"), offset + 10);
    let mut whole = vec![0xffu8; offset as usize + 10];
    assert_eq!(disk.read_at(a, 0, &mut whole).expect("read"), whole.len());
    assert_eq!(&whole[..5], b"hello");
    assert!(whole[5..offset as usize].iter().all(|&x| x == 0));
    assert_eq!(&whole[offset as usize..], b"0123456789");
    let mut via_reader = vec![0u8; whole.len()];
    assert_eq!(disk.reader().read_at("a", 0, &mut via_reader).expect("reader"), whole.len());
    assert_eq!(via_reader, whole);

    disk.close(a);
    let a = disk.open("a", false).expect("reopen existing");
    assert_eq!(disk.file_len(a).expect("len"), offset + 10);
    assert_eq!(disk.file_len(b).expect("len"), 0);
}

/// Several durable writes per round, over three rounds reusing the buffers: each comes back
/// once, with its own buffer (same allocation, same registration) and `user_data`, and the
/// data is readable through the disk and through the reader.
fn case_durable_writes<D: Disk>(disk: &mut D, register: bool) {
    let n = disk.inflight_max();
    // One and two blocks, alternating, so lengths differ between writes.
    let mut bufs: Vec<IoBuf> = (0..n).map(|i| IoBuf::new((i % 2 + 1) * BLOCK_BYTES)).collect();
    if register {
        disk.register_buffers(&mut bufs).expect("register_buffers");
    }
    let files = [disk.open("a", true).expect("a"), disk.open("b", true).expect("b")];
    let mut ends: HashMap<FileId, u64> = HashMap::new();
    let mut want: HashMap<FileId, Vec<u8>> = HashMap::new();
    for round in 0..3u64 {
        let mut sent: HashMap<u64, (usize, Option<u16>, Vec<u8>)> = HashMap::new();
        for (i, buf) in bufs.drain(..).enumerate() {
            let user_data = 0x5eed_0000 + round * 100 + i as u64;
            let file = files[i % 2];
            let offset = *ends.get(&file).unwrap_or(&0);
            let sub = filled(user_data, file, offset, buf, buf_fill(user_data));
            let data = sub.buf.to_vec();
            ends.insert(file, offset + data.len() as u64);
            want.entry(file).or_default().extend(&data);
            sent.insert(user_data, (sub.buf.as_ptr() as usize, sub.buf.registered_index, data));
            disk.submit(sub).expect("submit");
        }
        for c in complete_n(disk, n) {
            let (ptr, registered, data) = sent.remove(&c.user_data).expect("known, once");
            c.result.expect("durable write");
            assert_eq!(c.buf.as_ptr() as usize, ptr, "the submission's own buffer comes back");
            assert_eq!(c.buf.registered_index, registered);
            assert!(c.buf[..] == data[..], "buffer contents untouched");
            let mut buf = c.buf;
            let used = buf.len();
            buf.clear_zeroed(used);
            bufs.push(buf);
        }
        assert!(sent.is_empty());
    }
    let reader = disk.reader();
    for (file, name) in files.iter().zip(["a", "b"]) {
        let want = &want[file];
        assert_eq!(disk.file_len(*file).expect("len"), want.len() as u64);
        let mut got = vec![0u8; want.len()];
        assert_eq!(disk.read_at(*file, 0, &mut got).expect("read"), want.len());
        assert!(&got == want, "{name}: disk.read_at sees completed writes");
        got.fill(0);
        assert_eq!(reader.read_at(name, 0, &mut got).expect("reader"), want.len());
        assert!(&got == want, "{name}: reader sees completed writes");
    }
}

/// The trait: `submit` fails once `inflight_max` submissions are queued (completed but not yet
/// collected ones count); nothing accepted is lost, and the refused one never completes.
fn case_inflight_max<D: Disk>(disk: &mut D) {
    let n = disk.inflight_max();
    assert!(n >= 1 && n as u64 <= FLUSHES_INFLIGHT_MAX, "inflight_max {n}");
    let f = disk.open("seg", true).expect("create");
    for i in 0..n as u64 {
        let sub = filled(i, f, i * BLOCK_BYTES as u64, IoBuf::new(BLOCK_BYTES), buf_fill(i));
        disk.submit(sub).expect("submit within the limit");
    }
    let over = filled(99, f, n as u64 * BLOCK_BYTES as u64, IoBuf::new(BLOCK_BYTES), 0xee);
    assert!(disk.submit(over).is_err(), "submission past inflight_max must be refused");
    let mut user_data: Vec<u64> = complete_n(disk, n)
        .into_iter()
        .map(|c| {
            c.result.expect("write");
            c.user_data
        })
        .collect();
    user_data.sort_unstable();
    assert_eq!(user_data, (0..n as u64).collect::<Vec<_>>());
    let mut out = Vec::new();
    disk.complete(1, &mut out).expect("complete with nothing in flight");
    assert!(out.is_empty(), "the refused submission never completes");
    assert_eq!(disk.file_len(f).expect("len"), n as u64 * BLOCK_BYTES as u64);
    // The slots are free again.
    disk.submit(filled(7, f, 0, IoBuf::new(BLOCK_BYTES), 7)).expect("submit after draining");
    complete_n(disk, 1).pop().expect("one").result.expect("write");
}

/// `complete(min)` returns at once with nothing in flight, gives everything when `min` exceeds
/// what is in flight, and `complete(0)` never blocks but does deliver eventually.
fn case_complete_min<D: Disk>(disk: &mut D) {
    let mut out: Vec<Completion> = Vec::new();
    disk.complete(1, &mut out).expect("nothing in flight");
    disk.complete(0, &mut out).expect("nothing in flight");
    assert!(out.is_empty());
    let f = disk.open("seg", true).expect("create");
    let n = disk.inflight_max().min(2) as u64;
    for i in 0..n {
        disk.submit(filled(i, f, i * BLOCK_BYTES as u64, IoBuf::new(BLOCK_BYTES), 1)).unwrap();
    }
    disk.complete(usize::MAX, &mut out).expect("complete(more than in flight)");
    assert_eq!(out.len(), n as usize, "complete(min > inflight) returns all in flight");
    out.clear();

    disk.submit(filled(42, f, 0, IoBuf::new(BLOCK_BYTES), 2)).expect("submit");
    let start = Instant::now();
    while out.is_empty() {
        disk.complete(0, &mut out).expect("complete(0)");
        assert!(start.elapsed() < COMPLETION_WAIT_MAX, "complete(0) never delivered");
        std::thread::yield_now();
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].user_data, 42);
}

/// Renames and removals show in `list`, and the reader never serves a stale handle.
fn case_rename_remove<D: Disk>(disk: &mut D) {
    let reader = disk.reader();
    let f = disk.open("seg-1", true).expect("create");
    disk.write_sync(f, 0, b"one").expect("write");
    disk.close(f);
    let mut buf = [0u8; 3];
    reader.read_at("seg-1", 0, &mut buf).expect("read, caching a handle");
    assert_eq!(&buf, b"one");

    disk.rename("seg-1", "seg-2").expect("rename");
    assert_eq!(disk.list().expect("list"), ["seg-2"]);
    reader.read_at("seg-2", 0, &mut buf).expect("read renamed");
    assert_eq!(&buf, b"one");
    let err = reader.read_at("seg-1", 0, &mut buf).expect_err("old name is gone");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);

    // A new file under the old name must not be read through the old handle.
    let f = disk.open("seg-1", true).expect("recreate");
    disk.write_sync(f, 0, b"two").expect("write");
    disk.close(f);
    reader.read_at("seg-1", 0, &mut buf).expect("read new file");
    assert_eq!(&buf, b"two");

    disk.remove("seg-2").expect("remove");
    assert_eq!(disk.list().expect("list"), ["seg-1"]);
    let err = reader.read_at("seg-2", 0, &mut buf).expect_err("removed");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(disk.remove("seg-2").is_err(), "removing a missing file is an error");
}

/// Dropping a disk with writes in flight neither hangs nor crashes (the io_uring backend
/// waits for them: the kernel reads their buffers).
fn case_drop_inflight<D: Disk>(disk: &mut D) {
    let f = disk.open("seg", true).expect("create");
    for i in 0..disk.inflight_max() as u64 {
        let sub = filled(i, f, i * BLOCK_BYTES as u64, IoBuf::new(BLOCK_BYTES), 3);
        disk.submit(sub).expect("submit");
    }
    // The caller drops the disk right after this case returns.
}

/// Files and completed writes are there after the disk is dropped and opened again.
fn case_reopen<D: Disk>(backend: &Backend<'_, D>, dir: &Path) {
    let mut disk = (backend.open)(dir, None).expect("open");
    let f = disk.open("seg", true).expect("create");
    disk.submit(filled(1, f, 0, IoBuf::new(BLOCK_BYTES), 0x77)).expect("submit");
    complete_n(&mut disk, 1).pop().expect("one").result.expect("write");
    drop(disk);
    let mut disk = (backend.open)(dir, None).expect("reopen");
    assert_eq!(disk.list().expect("list"), ["seg"]);
    let f = disk.open("seg", false).expect("open existing");
    let mut got = vec![0u8; BLOCK_BYTES];
    assert_eq!(disk.read_at(f, 0, &mut got).expect("read"), BLOCK_BYTES);
    assert!(got == pattern(0x77, BLOCK_BYTES));
}

/// Writing past the space of the file system fails with raw os error ENOSPC, on the durable
/// path and on the control path.
fn case_enospc<D: Disk>(backend: &Backend<'_, D>, dir: &Path) {
    let mut disk = (backend.open)(dir, Some(ENOSPC_SPACE_BYTES)).expect("open on small fs");
    let f = disk.open("big", true).expect("create");
    let chunk_bytes = 64 * BLOCK_BYTES;
    let mut buf = IoBuf::new(chunk_bytes);
    let mut offset = 0u64;
    let err = loop {
        disk.submit(filled(offset, f, offset, buf, 0x11)).expect("submit");
        let c = complete_n(&mut disk, 1).pop().expect("one");
        match c.result {
            Ok(()) => {
                offset += chunk_bytes as u64;
                assert!(offset <= 4 * ENOSPC_SPACE_BYTES, "no ENOSPC after {offset} bytes");
                buf = c.buf;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "durable write: {err}");
    let err = disk.write_sync(f, offset + chunk_bytes as u64, &vec![1u8; chunk_bytes]);
    let err = err.expect_err("control-path write on a full fs");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "write_sync: {err}");
}

/// Whether the io_uring backend can run here; prints why not when it cannot.
fn uring_available() -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    match UringDisk::open(dir.path()) {
        Ok(_) => true,
        Err(e)
            if matches!(e.kind(), io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied) =>
        {
            let required = std::env::var_os("RATCHET_TEST_REQUIRE_URING").is_some();
            assert!(!required, "io_uring required by RATCHET_TEST_REQUIRE_URING but: {e}");
            eprintln!("SKIPPED io_uring disk tests: io_uring is unavailable on this kernel: {e}");
            false
        }
        Err(e) => panic!("io_uring disk failed to open for an unexpected reason: {e}"),
    }
}

/// Collects `n` completions, failing if they take longer than [`COMPLETION_WAIT_MAX`].
fn complete_n<D: Disk>(disk: &mut D, n: usize) -> Vec<Completion> {
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < n {
        disk.complete(n - out.len(), &mut out).expect("complete");
        assert!(start.elapsed() < COMPLETION_WAIT_MAX, "only {} of {n} completions", out.len());
    }
    assert_eq!(out.len(), n, "no more completions than submissions");
    out
}

/// A submission of the whole of `buf`, filled with [`pattern`]`(seed)`.
fn filled(user_data: u64, file: FileId, offset: u64, mut buf: IoBuf, seed: u8) -> Submission {
    let len = buf.capacity();
    buf.full_mut().copy_from_slice(&pattern(seed, len));
    buf.set_len(len);
    Submission { user_data, file, offset, buf }
}

fn buf_fill(user_data: u64) -> u8 {
    (user_data % 251) as u8
}

/// Bytes that differ between seeds and along the buffer, so misplaced blocks show.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_mul(31).wrapping_add((i / 7) as u8)).collect()
}

/// A tmpfs of a given size mounted on a temporary directory; unmounted on drop.
struct TinyTmpfs {
    dir: tempfile::TempDir,
}

impl TinyTmpfs {
    fn mount(size_bytes: u64) -> Result<TinyTmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!("mount failed ({}): {}", out.status, stderr.trim()));
        }
        Ok(TinyTmpfs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let path: PathBuf = self.dir.path().to_path_buf();
        if let Err(e) = Command::new("umount").arg(&path).status() {
            eprintln!("could not unmount {}: {e}", path.display());
        }
    }
}
