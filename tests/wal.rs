//! Behaviour of the WAL at its edges, on real files (std engine) and on the simulated disk:
//! restart, corruption before the tail, a torn tail, a foreign segment, a failed durable
//! write (poison), a full disk, size limits, and trimming with segment recycling; fences
//! across restarts and recycling; ENOSPC on a durable write as backpressure; a panicking
//! writer.
//!
//! Method: each test drives the public `Wal` API, changes files between runs where the
//! scenario needs it, and asserts the observable outcome (errors by variant, with file and
//! offset for corruption; record contents; files in the directory).

use std::path::Path;

use ratchet::log::{LogId, Lsn};
use ratchet::wal::disk::sim::{SimControl, SimDisk};
use ratchet::wal::disk::Engine;
use ratchet::wal::{Options, Reader, Wal, WalError};

const A: LogId = LogId(1);
const B: LogId = LogId(2);

fn opts(dir: &Path) -> Options {
    let mut o = Options::new(dir);
    o.engine = Engine::Std;
    o.segment_bytes = 64 * 1024;
    o.flush_bytes_max = 8 * 1024;
    o
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

fn read_all(wal: &Wal, log: LogId, from: Lsn) -> Vec<(u64, Vec<u8>)> {
    let mut r = wal.reader(log, from);
    let mut out = Vec::new();
    while let Some(rec) = r.try_next().unwrap() {
        out.push((rec.lsn.0, rec.body));
    }
    out
}

/// Appends `n` records of 1 KiB to log A (and one to B every 10), returning nothing.
async fn fill(wal: &Wal, n: u64) {
    for i in 0..n {
        wal.append(A, vec![vec![(i % 200) as u8; 1024]]).await.unwrap();
        if i % 10 == 0 {
            wal.append(B, vec![i.to_le_bytes().to_vec()]).await.unwrap();
        }
    }
}

#[test]
fn records_survive_restart_and_lsns_continue() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let wal = Wal::open(opts(dir.path())).unwrap();
        rt.block_on(fill(&wal, 300));
    }
    assert!(segments(dir.path()).len() >= 4, "300 KiB spans several 64 KiB segments");
    let wal = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(wal.tail(A).lsn_durable, Lsn(300));
    assert_eq!(wal.tail(B).lsn_durable, Lsn(30));
    let all = read_all(&wal, A, Lsn(1));
    assert_eq!(all.len(), 300);
    assert!(all
        .iter()
        .enumerate()
        .all(|(i, (lsn, b))| *lsn == i as u64 + 1 && b == &vec![(i % 200) as u8; 1024]));
    assert_eq!(read_all(&wal, A, Lsn(250)).first().map(|r| r.0), Some(250));
    assert_eq!(rt.block_on(wal.append(A, vec![b"next".to_vec()])).unwrap(), Lsn(301));
}

/// A new WAL does not wait for a whole segment to be zero filled: the segment its first append
/// waits for is small, later ones have the configured size, and recovery reads across both.
#[test]
fn the_first_segment_of_a_new_wal_is_small_and_later_ones_full_size() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut o = opts(dir.path());
    o.segment_bytes = 1024 * 1024;
    let len = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
    {
        let wal = Wal::open(o.clone()).unwrap();
        rt.block_on(fill(&wal, 1));
        let first = segments(dir.path());
        assert_eq!(first.len(), 1);
        assert!(len(&first[0]) < o.segment_bytes, "{} bytes", len(&first[0]));
        rt.block_on(fill(&wal, 600));
    }
    let segs = segments(dir.path());
    assert!(segs.len() >= 2, "{segs:?}");
    assert!(segs[1..].iter().any(|s| len(s) == o.segment_bytes), "{segs:?}");
    let wal = Wal::open(o).unwrap();
    assert_eq!(wal.tail(A).lsn_durable, Lsn(601));
    assert_eq!(read_all(&wal, A, Lsn(1)).len(), 601);
}

#[test]
fn corruption_before_the_tail_refuses_to_start_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let wal = Wal::open(opts(dir.path())).unwrap();
        rt.block_on(fill(&wal, 200));
    }
    let first = &segments(dir.path())[0];
    // Flip one byte inside the body of a frame in the middle of the first segment.
    let path = dir.path().join(first);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20_000] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    match Wal::open(opts(dir.path())) {
        Err(WalError::Corrupt { file, offset, detail }) => {
            assert_eq!(&file, first);
            assert!(offset > 4096 && offset <= 20_000, "offset {offset} names the damaged frame");
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_torn_tail_is_cut_off_and_appending_continues() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    {
        let wal = Wal::open(opts(dir.path())).unwrap();
        rt.block_on(fill(&wal, 20));
    }
    let last = segments(dir.path()).pop().unwrap();
    let path = dir.path().join(&last);
    let mut bytes = std::fs::read(&path).unwrap();
    // Find the end of data and write half a frame there, as an interrupted write would.
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let end = end.div_ceil(8) * 8;
    bytes[end..end + 40].copy_from_slice(&[0xAB; 40]);
    std::fs::write(&path, &bytes).unwrap();
    let wal = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(wal.tail(A).lsn_durable, Lsn(20));
    assert_eq!(rt.block_on(wal.append(A, vec![b"after".to_vec()])).unwrap(), Lsn(21));
    drop(wal);
    let wal = Wal::open(opts(dir.path())).unwrap();
    assert_eq!(read_all(&wal, A, Lsn(21)), vec![(21, b"after".to_vec())]);
}

#[test]
fn a_segment_of_another_wal_is_refused() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let rt = rt();
    for d in [&one, &two] {
        let wal = Wal::open(opts(d.path())).unwrap();
        rt.block_on(fill(&wal, 100));
    }
    let segs = segments(one.path());
    std::fs::copy(two.path().join(&segs[1]), one.path().join(&segs[1])).unwrap();
    match Wal::open(opts(one.path())) {
        Err(WalError::Corrupt { file, detail, .. }) => {
            assert_eq!(file, segs[1]);
            assert!(detail.contains("another WAL"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_failed_durable_write_poisons_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let disk = SimDisk::new(1);
    let control = disk.control();
    let wal = Wal::open_with_disk(disk, opts(dir.path())).unwrap();
    rt.block_on(fill(&wal, 5));
    let before = wal.tail(A);
    control.crash_after_ops(0);
    let err = rt.block_on(wal.append(A, vec![b"lost".to_vec()])).unwrap_err();
    assert!(matches!(err, WalError::Poisoned { .. }), "{err:?}");
    // Every later call fails the same way; nothing more is acknowledged.
    for _ in 0..3 {
        assert!(matches!(
            rt.block_on(wal.append(B, vec![vec![1]])),
            Err(WalError::Poisoned { .. })
        ));
    }
    assert!(matches!(rt.block_on(wal.trim(A, Lsn(1))), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.reader(A, Lsn(1)).try_next(), Err(WalError::Poisoned { .. })));
    assert_eq!(wal.tail(A), before);
}

#[test]
fn a_full_disk_is_a_clear_error_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let disk = SimDisk::new(2);
    let control = disk.control();
    // Room for two segments (the first and one spare), not a third.
    control.set_capacity_bytes(Some(2 * 64 * 1024 + 100));
    let mut o = opts(dir.path());
    o.spares = 1;
    let wal = Wal::open_with_disk(disk, o.clone()).unwrap();
    let mut acked = 0u64;
    let err = rt.block_on(async {
        loop {
            match wal.append(A, vec![vec![7u8; 1024]]).await {
                Ok(lsn) => acked = lsn.0,
                Err(e) => break e,
            }
        }
    });
    assert!(matches!(err, WalError::NoSpace { .. }), "{err:?}");
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(acked > 50, "both segments were used before the disk filled ({acked})");
    // Not poisoned: once space is freed, appends continue with the next LSN.
    control.set_capacity_bytes(None);
    assert_eq!(rt.block_on(wal.append(A, vec![b"more".to_vec()])).unwrap(), Lsn(acked + 1));
    let all = read_all(&wal, A, Lsn(1));
    assert_eq!(all.len() as u64, acked + 1);
}

#[test]
fn oversized_records_are_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(opts(dir.path())).unwrap();
    let err = rt().block_on(wal.append(A, vec![vec![0; 100 * 1024]])).unwrap_err();
    match err {
        WalError::TooLarge { bytes, limit_bytes } => {
            assert_eq!(bytes, 100 * 1024);
            assert!(limit_bytes < 64 * 1024);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // A record that needs a whole flush of its own is fine.
    assert_eq!(rt().block_on(wal.append(A, vec![vec![1; 40 * 1024]])).unwrap(), Lsn(1));
}

#[test]
fn trimming_recycles_segments_and_restarts_keep_trim_points_and_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut o = opts(dir.path());
    o.spares = 2;
    {
        let wal = Wal::open(o.clone()).unwrap();
        for round in 0..10u64 {
            rt.block_on(fill(&wal, 100));
            let tail_a = wal.tail(A).lsn_durable;
            let tail_b = wal.tail(B).lsn_durable;
            rt.block_on(wal.trim(A, tail_a)).unwrap();
            rt.block_on(wal.trim(B, Lsn(tail_b.0 - 1))).unwrap();
            // Live segments stay bounded although 1 MB went through 64 KiB segments.
            let live = segments(dir.path()).len();
            assert!(live <= 3, "round {round}: {live} live segments");
        }
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files <= 3 + 2, "{files} files: live plus spares, no more");
    }
    let wal = Wal::open(o).unwrap();
    assert_eq!(wal.tail(A).lsn_durable, Lsn(1000));
    assert_eq!(wal.tail(A).lsn_trim, Lsn(1000));
    assert_eq!(wal.tail(B).lsn_durable, Lsn(100));
    assert_eq!(wal.tail(B).lsn_trim, Lsn(99));
    assert!(matches!(wal.reader(A, Lsn(5)).try_next(), Err(WalError::Trimmed { .. })));
    assert_eq!(read_all(&wal, B, Lsn(100)).len(), 1);
    assert_eq!(rt.block_on(wal.append(A, vec![b"x".to_vec()])).unwrap(), Lsn(1001));
}

#[test]
fn readers_see_the_same_records_from_memory_and_from_disk() {
    // More than the in-memory cache of recent frames holds, so a reader from LSN 1 starts on
    // disk and ends in memory; after a restart everything comes from disk.
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let mut o = opts(dir.path());
    o.segment_bytes = 1024 * 1024;
    o.flush_bytes_max = 64 * 1024;
    let before = {
        let wal = Wal::open(o.clone()).unwrap();
        rt.block_on(async {
            for i in 0..1500u32 {
                let body: Vec<u8> = (0..4000u32).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect();
                wal.append(A, vec![body]).await.unwrap();
            }
        });
        read_all(&wal, A, Lsn(1))
    };
    assert_eq!(before.len(), 1500);
    let wal = Wal::open(o).unwrap();
    let after = read_all(&wal, A, Lsn(1));
    assert!(before == after, "memory and disk disagree");
    assert_eq!(read_all(&wal, A, Lsn(1499)).len(), 2);
}

/// Where a scenario's WAL lives, so it runs on real files (std engine) and on the simulated
/// disk alike.
enum Backing {
    Std(tempfile::TempDir),
    /// `next` is the disk the next open uses; without one, the durable image of the last
    /// (cleanly closed) disk.
    Sim {
        next: Option<SimDisk>,
        control: SimControl,
    },
}

impl Backing {
    fn both(seed: u64) -> [Backing; 2] {
        let disk = SimDisk::new(seed);
        let control = disk.control();
        [Backing::Std(tempfile::tempdir().unwrap()), Backing::Sim { next: Some(disk), control }]
    }

    fn name(&self) -> &'static str {
        match self {
            Backing::Std(_) => "std",
            Backing::Sim { .. } => "sim",
        }
    }

    fn opts(&self) -> Options {
        match self {
            Backing::Std(dir) => opts(dir.path()),
            Backing::Sim { .. } => opts(Path::new("/nonexistent-sim")),
        }
    }

    /// Opens the WAL: fresh the first time, then over what the previous one left.
    fn open(&mut self, o: Options) -> Wal {
        match self {
            Backing::Std(_) => Wal::open(o).unwrap(),
            Backing::Sim { next, control } => {
                let disk = next.take().unwrap_or_else(|| control.crash_image(0));
                *control = disk.control();
                Wal::open_with_disk(disk, o).unwrap()
            }
        }
    }

    fn segments(&self) -> Vec<String> {
        match self {
            Backing::Std(dir) => segments(dir.path()),
            Backing::Sim { control, .. } => {
                control.names().into_iter().filter(|n| n.ends_with(".seg")).collect()
            }
        }
    }
}

#[test]
fn a_fence_survives_a_restart() {
    // Why: a fence forgotten on restart would let a deposed leader write into the log again.
    let rt = rt();
    for mut backing in Backing::both(11) {
        let disk = backing.name();
        let wal = backing.open(backing.opts());
        assert_eq!(rt.block_on(wal.append_fenced(A, 3, vec![b"old leader".to_vec()])), Ok(Lsn(1)));
        assert_eq!(rt.block_on(wal.fence(A, 7)), Ok(Lsn(1)));
        assert_eq!(wal.tail(A).epoch, 7, "{disk}");
        wal.close();

        let wal = backing.open(backing.opts());
        assert_eq!(wal.tail(A).epoch, 7, "{disk}: the fence is back after the restart");
        assert_eq!(wal.tail(B).epoch, 0, "{disk}: other logs are not fenced");
        assert_eq!(
            rt.block_on(wal.append_fenced(A, 6, vec![b"stale".to_vec()])),
            Err(WalError::Fenced { log: A, epoch: 6, log_epoch: 7 }),
            "{disk}"
        );
        assert!(
            matches!(rt.block_on(wal.fence(A, 6)), Err(WalError::Fenced { .. })),
            "{disk}: no fencing back down"
        );
        assert_eq!(rt.block_on(wal.append_fenced(A, 7, vec![b"new".to_vec()])), Ok(Lsn(2)));
        assert_eq!(
            read_all(&wal, A, Lsn(1)),
            vec![(1, b"old leader".to_vec()), (2, b"new".to_vec())],
            "{disk}: the refused append wrote nothing"
        );
    }
}

#[test]
fn a_fence_survives_the_recycling_of_the_segment_that_recorded_it() {
    // Why: the fence record goes away with its segment; the checkpoint at the head of every
    // later segment must carry the epoch, also for a log fenced but never written.
    let rt = rt();
    for mut backing in Backing::both(12) {
        let disk = backing.name();
        let wal = backing.open(backing.opts());
        rt.block_on(wal.fence(A, 7)).unwrap();
        rt.block_on(wal.fence(B, 3)).unwrap();
        let fenced_in = backing.segments();
        assert_eq!(fenced_in.len(), 1, "{disk}");
        rt.block_on(async {
            for i in 0..300u64 {
                wal.append_fenced(A, 7, vec![vec![(i % 256) as u8; 1024]]).await.unwrap();
            }
        });
        assert!(backing.segments().len() >= 4, "{disk}: several segments rolled");
        rt.block_on(wal.trim(A, Lsn(300))).unwrap();
        // The trim is answered before the segments are recycled: wait for it.
        eventually("the fence's segment is recycled", || {
            let live = backing.segments();
            !live.contains(&fenced_in[0]) && live.len() <= 2
        });
        wal.close();

        let wal = backing.open(backing.opts());
        assert_eq!(wal.tail(A).epoch, 7, "{disk}");
        assert_eq!(wal.tail(B).epoch, 3, "{disk}: a fenced log without records keeps its fence");
        assert_eq!(wal.tail(A).lsn_durable, Lsn(300), "{disk}");
        assert!(matches!(
            rt.block_on(wal.append_fenced(A, 6, vec![vec![1]])),
            Err(WalError::Fenced { log_epoch: 7, .. })
        ));
        assert!(matches!(
            rt.block_on(wal.append_fenced(B, 2, vec![vec![1]])),
            Err(WalError::Fenced { log_epoch: 3, .. })
        ));
        assert_eq!(rt.block_on(wal.append_fenced(A, 7, vec![vec![1]])), Ok(Lsn(301)), "{disk}");
    }
}

/// Waits (up to 10 s) until `cond` holds: for what the writer thread does right after it
/// answered.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "timed out waiting: {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Everything `reader` has now, without waiting.
fn drain(reader: &mut Reader) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(rec) = reader.try_next().unwrap() {
        out.push((rec.lsn.0, rec.body));
    }
    out
}

/// Appends `body` to log A and keeps it in `acked` if acknowledged; asserts contiguous LSNs.
fn append_acked(
    rt: &tokio::runtime::Runtime,
    wal: &Wal,
    acked: &mut Vec<(u64, Vec<u8>)>,
    body: Vec<u8>,
) -> Result<Lsn, WalError> {
    let r = rt.block_on(wal.append(A, vec![body.clone()]));
    if let Ok(lsn) = r {
        let expected = acked.last().map_or(1, |(l, _)| l + 1);
        assert_eq!(lsn.0, expected, "LSNs stay contiguous and are never reused");
        acked.push((lsn.0, body));
    }
    r
}

/// Checks the acknowledged records are all there, once, in order, and nothing else is;
/// after a restart on the crash image of the disk too.
fn check_acked_only(
    rt: &tokio::runtime::Runtime,
    wal: Wal,
    control: &SimControl,
    acked: &[(u64, Vec<u8>)],
    o: Options,
) {
    assert_eq!(read_all(&wal, A, Lsn(1)), acked, "a fresh reader");
    assert_eq!(wal.tail(A).lsn_durable.0, acked.len() as u64);
    drop(wal);
    for seed in 0..4 {
        let wal = Wal::open_with_disk(control.crash_image(seed), o.clone()).unwrap();
        assert_eq!(wal.tail(A).lsn_durable.0, acked.len() as u64, "crash image {seed}");
        assert_eq!(read_all(&wal, A, Lsn(1)), acked, "crash image {seed}");
        let next = rt.block_on(wal.append(A, vec![b"after restart".to_vec()])).unwrap();
        assert_eq!(next.0, acked.len() as u64 + 1, "crash image {seed}");
    }
}

#[test]
fn enospc_on_a_durable_write_is_backpressure_not_poison() {
    // Why: copy-on-write and thin-provisioned disks can refuse a write into a pre-written
    // segment; the node must wait for space, not stop, and must not lose or invent records.
    let rt = rt();
    let disk = SimDisk::new(21);
    let control = disk.control();
    let o = opts(Path::new("/nonexistent-sim"));
    let wal = Wal::open_with_disk(disk, o.clone()).unwrap();
    let mut tailing = wal.reader(A, Lsn(1));
    let mut acked = Vec::new();
    let mut read = Vec::new();
    for i in 0..10u8 {
        append_acked(&rt, &wal, &mut acked, vec![i; 100]).unwrap();
    }
    read.extend(drain(&mut tailing));

    control.set_writes_fail_no_space(true);
    for i in 0..3u8 {
        let err = append_acked(&rt, &wal, &mut acked, vec![0xE0 + i; 100]).unwrap_err();
        assert!(matches!(err, WalError::NoSpace { .. }), "{err:?}");
        assert_eq!(wal.poisoned(), None);
        assert_eq!(wal.tail(A).lsn_durable, Lsn(10), "nothing refused became durable");
    }
    read.extend(drain(&mut tailing));

    control.set_writes_fail_no_space(false);
    for i in 10..20u8 {
        append_acked(&rt, &wal, &mut acked, vec![i; 100]).unwrap();
    }
    assert_eq!(acked.len(), 20);
    read.extend(drain(&mut tailing));
    assert_eq!(read, acked, "a reader tailing through the failure");
    check_acked_only(&rt, wal, &control, &acked, o);
}

#[test]
fn enospc_on_the_first_write_of_a_fresh_segment_is_backpressure_not_poison() {
    // Why: the failed write carried the new segment's header; that segment must go back
    // to the spares and the next one must continue exactly where the last durable frame
    // ended, or recovery would find a gap or read leftovers.
    let rt = rt();
    let disk = SimDisk::new(22);
    let control = disk.control();
    let o = opts(Path::new("/nonexistent-sim"));
    let wal = Wal::open_with_disk(disk, o.clone()).unwrap();
    let mut tailing = wal.reader(A, Lsn(1));
    let mut acked = Vec::new();
    let mut read = Vec::new();
    let big = |b: u8| vec![b; 40 * 1024];
    append_acked(&rt, &wal, &mut acked, b"small".to_vec()).unwrap();
    append_acked(&rt, &wal, &mut acked, big(1)).unwrap();
    let first = backing_segments(&control);
    assert_eq!(first.len(), 1);
    // Wait for the spare the writer prepares in the background, so the next roll
    // succeeds and the failure hits the new segment's first write.
    eventually("a spare is prepared", || control.names().iter().any(|n| n.ends_with(".spare")));
    read.extend(drain(&mut tailing));

    control.set_writes_fail_no_space(true);
    for b in [0xE1, 0xE2] {
        // A second 40 KiB record does not fit the first segment: it needs a roll.
        let err = append_acked(&rt, &wal, &mut acked, big(b)).unwrap_err();
        assert!(matches!(err, WalError::NoSpace { .. }), "{err:?}");
        assert_eq!(wal.poisoned(), None);
        // The append is answered before the segment is given back: wait for it.
        eventually("the fresh segment is given back to the spares", || {
            backing_segments(&control) == first
                && control.names().iter().any(|n| n.ends_with(".spare"))
        });
    }
    let err = append_acked(&rt, &wal, &mut acked, b"tiny".to_vec()).unwrap_err();
    assert!(matches!(err, WalError::NoSpace { .. }), "{err:?}");
    read.extend(drain(&mut tailing));

    control.set_writes_fail_no_space(false);
    append_acked(&rt, &wal, &mut acked, big(2)).unwrap();
    assert_eq!(backing_segments(&control).len(), 2, "a new segment holds the record");
    for i in 0..5u8 {
        append_acked(&rt, &wal, &mut acked, vec![i; 10]).unwrap();
    }
    read.extend(drain(&mut tailing));
    assert_eq!(read, acked, "a reader tailing through the failure");
    check_acked_only(&rt, wal, &control, &acked, o);
}

#[test]
fn a_full_disk_that_refuses_renames_is_backpressure_and_recycling_still_frees_space() {
    // Why: on copy-on-write file systems, and when a directory must grow, a full disk can
    // refuse even a rename. Activating, publishing and recycling segments rename files; none
    // of that may poison the WAL, lose a spare, or lose where the previous segment ended.
    let rt = rt();
    let disk = SimDisk::new(23);
    let control = disk.control();
    let mut o = opts(Path::new("/nonexistent-sim"));
    // Room for more spares than exist, so that recycling tries to rename.
    o.spares = 8;
    let wal = Wal::open_with_disk(disk, o.clone()).unwrap();
    let mut acked = Vec::new();
    let rec = |i: u64| vec![(i % 251) as u8; 4 * 1024];
    for i in 0..40 {
        append_acked(&rt, &wal, &mut acked, rec(i)).unwrap();
    }
    let before = backing_segments(&control);
    assert!(before.len() >= 3, "{before:?}");

    control.set_renames_fail_no_space(true);
    // Trimming recycles the segments before the trim point: removed instead of renamed.
    let trim = acked[20].0;
    rt.block_on(wal.trim(A, Lsn(trim))).unwrap();
    eventually("the trimmed segments are removed", || {
        !backing_segments(&control).contains(&before[0])
    });
    assert_eq!(wal.poisoned(), None);
    // A roll cannot rename a spare into place: the appends that need it are refused.
    let mut refused = 0;
    for i in 40..80 {
        match append_acked(&rt, &wal, &mut acked, rec(i)) {
            Ok(_) => {}
            Err(WalError::NoSpace { .. }) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
        assert_eq!(wal.poisoned(), None);
    }
    assert!(refused > 0, "no append needed a new segment");

    control.set_renames_fail_no_space(false);
    for i in 80..100 {
        append_acked(&rt, &wal, &mut acked, rec(i)).unwrap();
    }
    let live: Vec<_> = acked.iter().filter(|(l, _)| *l > trim).cloned().collect();
    assert_eq!(read_all(&wal, A, Lsn(trim + 1)), live);
    let tail = acked.last().unwrap().0;
    drop(wal);
    for seed in 0..4 {
        let wal = Wal::open_with_disk(control.crash_image(seed), o.clone()).unwrap();
        assert_eq!(wal.tail(A).lsn_durable.0, tail, "crash image {seed}");
        assert_eq!(read_all(&wal, A, Lsn(trim + 1)), live, "crash image {seed}");
    }
}

fn backing_segments(control: &SimControl) -> Vec<String> {
    control.names().into_iter().filter(|n| n.ends_with(".seg")).collect()
}

#[test]
fn a_panic_in_the_writer_poisons_the_wal_and_wakes_waiting_readers() {
    // Why: a writer thread that died silently would leave appenders and tailing readers
    // waiting forever; a panic must stop the WAL as loudly as a failed write.
    let rt = rt();
    let disk = SimDisk::new(31);
    let control = disk.control();
    let wal = Wal::open_with_disk(disk, opts(Path::new("/nonexistent-sim"))).unwrap();
    rt.block_on(fill(&wal, 3));
    let mut waiting = wal.reader(A, Lsn(4));
    control.panic_on_submit(true);
    let (appended, read) = rt.block_on(async {
        tokio::join!(
            wal.append(A, vec![b"boom".to_vec()]),
            tokio::time::timeout(std::time::Duration::from_secs(5), waiting.next()),
        )
    });
    // Even the append whose flush was being submitted learns the cause: its answer was
    // queued before the submission panicked.
    assert!(matches!(appended, Err(WalError::Poisoned { .. })), "{appended:?}");
    let read = read.expect("the waiting reader was woken instead of hanging");
    assert!(matches!(read, Err(WalError::Poisoned { .. })), "{read:?}");
    let poisoned = wal.poisoned().expect("the WAL is poisoned");
    assert!(poisoned.to_string().contains("panicked"), "{poisoned}");
    // Later calls fail at once.
    for _ in 0..3 {
        let r = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), wal.append(B, vec![vec![1]]))
                .await
        });
        assert!(matches!(r, Ok(Err(WalError::Poisoned { .. }))), "{r:?}");
    }
    assert_eq!(wal.tail(A).lsn_durable, Lsn(3), "nothing after the panic is durable");
}
