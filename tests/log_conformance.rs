//! One conformance suite for the `Log` trait, run against every implementation: the node WAL
//! on the std disk, on io_uring (when the kernel offers it), on the simulated disk (plain and
//! with O_DIRECT-style aligned writes), and the in-memory log.
//!
//! Method: each case drives the implementation only through the trait and asserts what the
//! trait's contract promises (contiguous LSNs, reads in order, trim, fencing by epoch,
//! tailing readers).
//! Implementations differ only in the constructor passed to `suite`.

use std::time::Duration;

use ratchet::log::{Log, LogError, LogId, LogReader, Lsn, MemLog};
use ratchet::wal::disk::{sim::SimDisk, Engine};
use ratchet::wal::{Options, Wal};

fn small_opts(dir: &std::path::Path) -> Options {
    let mut o = Options::new(dir);
    o.segment_bytes = 256 * 1024;
    o.flush_bytes_max = 16 * 1024;
    o
}

async fn read_all<R: LogReader>(r: &mut R) -> Vec<(Lsn, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(rec) = r.try_next().expect("read") {
        out.push((rec.lsn, rec.body));
    }
    out
}

async fn suite<L: Log>(name: &str, log: L) {
    let a = LogId(1);
    let b = LogId(2);
    // Appends return the last LSN; LSNs start at 1 and are contiguous per log.
    assert_eq!(log.append(a, 0, vec![b"a1".to_vec()]).await.unwrap(), Lsn(1), "{name}");
    assert_eq!(
        log.append(a, 0, vec![b"a2".to_vec(), b"a3".to_vec()]).await.unwrap(),
        Lsn(3),
        "{name}"
    );
    assert_eq!(log.append(b, 0, vec![b"b1".to_vec()]).await.unwrap(), Lsn(1), "{name}");
    assert_eq!(log.tail(a).lsn_durable, Lsn(3), "{name}");
    assert_eq!(log.tail(LogId(99)).lsn_durable, Lsn::INVALID, "{name}");

    // Readers see one log's records in order, from any start.
    let got = read_all(&mut log.reader(a, Lsn(1))).await;
    assert_eq!(
        got,
        vec![(Lsn(1), b"a1".to_vec()), (Lsn(2), b"a2".to_vec()), (Lsn(3), b"a3".to_vec())],
        "{name}"
    );
    assert_eq!(
        read_all(&mut log.reader(a, Lsn(3))).await,
        vec![(Lsn(3), b"a3".to_vec())],
        "{name}"
    );
    assert!(read_all(&mut log.reader(a, Lsn(4))).await.is_empty(), "{name}");
    assert_eq!(read_all(&mut log.reader(b, Lsn::INVALID)).await.len(), 1, "{name}");

    // Many records, across flushes and (for the WAL) segments, interleaved between logs.
    let mut expect = Vec::new();
    for i in 0..400u32 {
        let body = vec![(i % 251) as u8; (i as usize * 37) % 3000];
        let lsn = log.append(a, 0, vec![body.clone()]).await.unwrap();
        assert_eq!(lsn, Lsn(4 + i as u64), "{name}");
        expect.push((lsn, body));
        log.append(b, 0, vec![i.to_le_bytes().to_vec()]).await.unwrap();
    }
    let got = read_all(&mut log.reader(a, Lsn(4))).await;
    assert_eq!(got.len(), expect.len(), "{name}");
    assert!(got == expect, "{name}: bodies differ");

    // A tailing reader wakes when a new record becomes durable.
    let mut tailing = log.reader(b, Lsn(402));
    assert!(tailing.try_next().unwrap().is_none(), "{name}");
    let waiter = async { tailing.next().await };
    let appender = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.append(b, 0, vec![b"late".to_vec()]).await.unwrap()
    };
    let (rec, lsn) = tokio::join!(waiter, appender);
    let rec = rec.unwrap();
    assert_eq!((rec.lsn, rec.body.as_slice()), (lsn, &b"late"[..]), "{name}");

    // Trim: LSNs at or below the point are gone, later ones stay readable.
    log.trim(a, Lsn(100)).await.unwrap();
    assert_eq!(log.tail(a).lsn_trim, Lsn(100), "{name}");
    match log.reader(a, Lsn(50)).try_next() {
        Err(LogError::Trimmed { lsn_trim, .. }) => assert_eq!(lsn_trim, Lsn(100), "{name}"),
        other => panic!("{name}: expected Trimmed, got {other:?}"),
    }
    let got = read_all(&mut log.reader(a, Lsn(101))).await;
    assert_eq!(got.first().map(|r| r.0), Some(Lsn(101)), "{name}");
    assert_eq!(got.len(), expect.len() - 97, "{name}");
    // Trimming beyond the end trims to the end; appends continue after it.
    log.trim(b, Lsn(1_000_000)).await.unwrap();
    assert_eq!(log.tail(b).lsn_trim, log.tail(b).lsn_durable, "{name}");
    let next_b = log.tail(b).lsn_durable.next();
    assert_eq!(log.append(b, 0, vec![b"after trim".to_vec()]).await.unwrap(), next_b, "{name}");

    // Fencing: a seal at epoch 5 refuses writers of lower epochs, keeps what came before,
    // and lets writers of epoch 5 and above go on.
    let before = log.tail(a).lsn_durable;
    let last = log.seal(a, 5).await.unwrap();
    assert_eq!(last, before, "{name}: seal returns the last LSN before it");
    assert_eq!(log.tail(a).epoch, 5, "{name}");
    match log.append(a, 4, vec![b"old writer".to_vec()]).await {
        Err(LogError::Fenced { epoch, log_epoch, .. }) => {
            assert_eq!((epoch, log_epoch), (4, 5), "{name}")
        }
        other => panic!("{name}: expected Fenced, got {other:?}"),
    }
    assert_eq!(log.tail(a).lsn_durable, last, "{name}: a fenced append writes nothing");
    assert_eq!(
        log.append(a, 5, vec![b"new writer".to_vec()]).await.unwrap(),
        last.next(),
        "{name}"
    );
    assert_eq!(
        log.append(a, 6, vec![b"newer".to_vec()]).await.unwrap(),
        last.next().next(),
        "{name}"
    );
    assert!(log.reader(a, last).try_next().unwrap().is_some(), "{name}: records before stay");
    // Sealing again at the same epoch is a no-op; at a lower one it is fenced.
    assert_eq!(log.seal(a, 5).await.unwrap(), log.tail(a).lsn_durable, "{name}");
    assert!(matches!(log.seal(a, 3).await, Err(LogError::Fenced { .. })), "{name}");
    assert_eq!(log.tail(a).epoch, 5, "{name}: the epoch never decreases");
    // Fences are per log.
    assert_eq!(log.tail(b).epoch, 0, "{name}");
    log.append(b, 0, vec![b"other log".to_vec()]).await.unwrap();
    // An append queued before a seal lands before it; appends after it are fenced.
    let queued = log.append(b, 1, vec![b"queued".to_vec()]);
    let seal = log.seal(b, 2);
    let (queued, seal) = tokio::join!(queued, seal);
    let queued = queued.unwrap();
    assert!(seal.unwrap() >= queued, "{name}: the seal comes after the queued append");
    assert!(
        matches!(log.append(b, 1, vec![vec![1]]).await, Err(LogError::Fenced { .. })),
        "{name}"
    );
    assert_ne!(log.identity(), 0, "{name}: a log store has an identity");

    // One append carries at most `append_bytes_max`: a record alone may use all of it;
    // records that each fit but not together are refused whole, and nothing is written.
    let c = LogId(3);
    let max = log.append_bytes_max();
    assert!(max >= 64 * 1024, "{name}: {max}");
    log.append(c, 0, vec![vec![7; max]]).await.unwrap();
    let tail = log.tail(c).lsn_durable;
    let half = max / 2 + 1;
    assert!(
        matches!(
            log.append(c, 0, vec![vec![8; half], vec![9; half]]).await,
            Err(LogError::TooLarge { .. })
        ),
        "{name}"
    );
    assert_eq!(log.tail(c).lsn_durable, tail, "{name}: a refused append wrote nothing");
    let fits = (max - 2 * ratchet::log::APPEND_RECORD_OVERHEAD_BYTES) / 2;
    let last = log.append(c, 0, vec![vec![8; fits], vec![9; fits]]).await.unwrap();
    assert_eq!(last, tail.next().next(), "{name}");
    log.trim(c, last).await.unwrap();

    // Log id 0 is reserved.
    assert!(
        matches!(log.append(LogId(0), 0, vec![vec![1]]).await, Err(LogError::ReservedLog)),
        "{name}"
    );
}

#[tokio::test]
async fn mem_log() {
    suite("mem", MemLog::new()).await;
}

#[tokio::test]
async fn wal_std() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = small_opts(dir.path());
    o.engine = Engine::Std;
    let wal = Wal::open(o).unwrap();
    assert_eq!(wal.engine(), "std");
    suite("wal-std", wal).await;
}

#[tokio::test]
async fn wal_uring() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = small_opts(dir.path());
    o.engine = Engine::Uring;
    match Wal::open(o) {
        Ok(wal) => {
            assert_eq!(wal.engine(), "uring");
            suite("wal-uring", wal).await;
        }
        Err(e) if std::env::var_os("RATCHET_TEST_REQUIRE_URING").is_some() => {
            panic!("io_uring is required (RATCHET_TEST_REQUIRE_URING) but unavailable: {e}")
        }
        Err(e) => eprintln!("io_uring unavailable on this kernel, uring case not run: {e}"),
    }
}

#[tokio::test]
async fn wal_sim() {
    let dir = tempfile::tempdir().unwrap();
    suite("wal-sim", Wal::open_with_disk(SimDisk::new(7), small_opts(dir.path())).unwrap()).await;
}

#[tokio::test]
async fn wal_sim_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SimDisk::new(8).with_aligned_writes(true);
    suite("wal-sim-aligned", Wal::open_with_disk(disk, small_opts(dir.path())).unwrap()).await;
}
