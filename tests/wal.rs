//! Behaviour of the WAL at its edges, on real files (std engine) and on the simulated disk:
//! restart, corruption before the tail, a torn tail, a foreign segment, a failed durable
//! write (poison), a full disk, size limits, and trimming with segment recycling.
//!
//! Method: each test drives the public `Wal` API, changes files between runs where the
//! scenario needs it, and asserts the observable outcome (errors by variant, with file and
//! offset for corruption; record contents; files in the directory).

use std::path::Path;

use ratchet::log::{LogId, Lsn};
use ratchet::wal::disk::{sim::SimDisk, Engine};
use ratchet::wal::{Options, Wal, WalError};

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
