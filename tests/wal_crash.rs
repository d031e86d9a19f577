//! Crash testing of the WAL on the simulated disk.
//!
//! Goal: prove the WAL's promises under power loss at any point: every acknowledged append
//! survives; nothing that was not written appears as valid (every record read back is exactly
//! the one appended at that LSN); LSNs stay contiguous per log; and recovery never mistakes a
//! torn tail for corruption.
//!
//! Method: for each of thousands of seeds, run concurrent appenders (one per log, each with
//! at most one append outstanding, so the body at each LSN is known in advance) plus trims
//! against a WAL on a `SimDisk` armed to crash after a seeded number of disk operations. Then
//! build the post-crash disk image (unsynced writes dropped, kept, or torn at a sector
//! boundary, chosen by the seed), reopen, verify, append more, reopen cleanly and verify again.
//! Seeds alternate between plain and O_DIRECT-style aligned writes. Reproduce one seed with
//! `RATCHET_CRASH_SEED_START=<seed> RATCHET_CRASH_SEEDS=1`; a failure prints the files and
//! the bytes around the offset recovery objected to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ratchet::log::{LogId, Lsn};
use ratchet::wal::disk::sim::{SimControl, SimDisk, SimRng};
use ratchet::wal::{Options, Wal, WalError};

const LOGS: u32 = 4;

/// The body appended to `log` at `lsn`: derived, so any record read back can be checked.
fn body(log: u32, lsn: u64, seed: u64) -> Vec<u8> {
    let mut rng = SimRng::new(seed ^ (u64::from(log) << 40) ^ lsn);
    let len = match rng.below(10) {
        0 => 0,
        1..=6 => rng.below(200) as usize,
        7 | 8 => rng.below(3000) as usize,
        _ => rng.below(20_000) as usize,
    };
    let mut b = Vec::with_capacity(len + 12);
    b.extend_from_slice(&log.to_le_bytes());
    b.extend_from_slice(&lsn.to_le_bytes());
    b.extend((0..len).map(|i| (i as u64).wrapping_mul(lsn | 1).wrapping_add(u64::from(log)) as u8));
    b
}

fn opts(seed: u64) -> Options {
    let mut o = Options::new("/nonexistent-sim");
    o.segment_bytes = 64 * 1024 * (1 + seed % 3);
    o.flush_bytes_max = 4096 * (1 + (seed as usize % 4));
    o.flush_pipeline_bytes_min = 1024;
    o.spares = 1 + seed as usize % 2;
    o
}

#[derive(Default)]
struct Acked {
    /// Highest acknowledged LSN per log.
    lsn: HashMap<u32, u64>,
    /// Highest acknowledged trim per log.
    trim: HashMap<u32, u64>,
}

async fn workload(wal: Arc<Wal>, seed: u64, appends_per_log: u64, acked: Arc<Mutex<Acked>>) {
    let mut tasks = Vec::new();
    for log in 1..=LOGS {
        let wal = wal.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SimRng::new(seed.wrapping_mul(31) + u64::from(log));
            let mut next = wal.tail(LogId(log)).lsn_durable.0 + 1;
            let end = next + appends_per_log;
            while next < end {
                let n = 1 + rng.below(3);
                let bodies = (next..next + n).map(|l| body(log, l, seed)).collect();
                match wal.append(LogId(log), bodies).await {
                    Ok(last) => {
                        assert_eq!(last.0, next + n - 1, "seed {seed}: LSNs are contiguous");
                        acked.lock().unwrap().lsn.insert(log, last.0);
                        next = last.0 + 1;
                    }
                    Err(WalError::Poisoned { .. }) | Err(WalError::Closed) => return,
                    Err(e) => panic!("seed {seed}: unexpected append error {e}"),
                }
                if rng.below(8) == 0 && next > 3 {
                    let to = next - 1 - rng.below(3);
                    match wal.trim(LogId(log), Lsn(to)).await {
                        Ok(()) => {
                            acked.lock().unwrap().trim.insert(log, to);
                        }
                        Err(WalError::Poisoned { .. }) | Err(WalError::Closed) => return,
                        Err(e) => panic!("seed {seed}: unexpected trim error {e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Reads every log fully and checks contents against what was appended and acknowledged.
fn verify(wal: &Wal, seed: u64, acked: &Acked) {
    for log in 1..=LOGS {
        let tail = wal.tail(LogId(log));
        let acked_lsn = acked.lsn.get(&log).copied().unwrap_or(0);
        let acked_trim = acked.trim.get(&log).copied().unwrap_or(0);
        assert!(
            tail.lsn_durable.0 >= acked_lsn,
            "seed {seed}: log {log} lost acknowledged records: tail {} < acked {acked_lsn}",
            tail.lsn_durable
        );
        assert!(tail.lsn_trim.0 >= acked_trim, "seed {seed}: log {log} lost an acknowledged trim");
        let mut reader = wal.reader(LogId(log), tail.lsn_trim.next());
        let mut expect = tail.lsn_trim.0 + 1;
        while let Some(rec) = reader.try_next().unwrap_or_else(|e| panic!("seed {seed}: read: {e}"))
        {
            assert_eq!(rec.lsn.0, expect, "seed {seed}: log {log} LSN gap");
            assert!(
                rec.body == body(log, rec.lsn.0, seed),
                "seed {seed}: log {log} lsn {} has a body that was never appended there",
                rec.lsn
            );
            expect += 1;
        }
        assert_eq!(expect - 1, tail.lsn_durable.0, "seed {seed}: log {log} reader stopped early");
    }
}

fn run_seed(seed: u64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut rng = SimRng::new(seed);
    let disk = SimDisk::new(seed).with_aligned_writes(seed % 2 == 1);
    let control: SimControl = disk.control();
    let wal = Arc::new(Wal::open_with_disk(disk, opts(seed)).unwrap());
    control.crash_after_ops(rng.below(400));
    let acked = Arc::new(Mutex::new(Acked::default()));
    rt.block_on(workload(wal.clone(), seed, 60, acked.clone()));
    drop(wal);

    let image = control.crash_image(seed);
    let ictl = image.control();
    let wal = Wal::open_with_disk(image, opts(seed)).unwrap_or_else(|e| {
        if let WalError::Corrupt { file, offset, .. } = &e {
            for n in ictl.names() {
                eprintln!("file {n}: {} bytes", ictl.file_bytes(&n).unwrap().len());
            }
            let b = ictl.file_bytes(file).unwrap();
            let o = *offset as usize;
            eprintln!("bytes at {}..: {:02x?}", o - 64, &b[o - 64..(o + 64).min(b.len())]);
        }
        panic!("seed {seed}: recovery refused a crash image: {e}")
    });
    let mut acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    verify(&wal, seed, &acked);

    // The recovered WAL keeps working and stays consistent across a clean restart.
    for log in 1..=LOGS {
        acked.lsn.insert(log, wal.tail(LogId(log)).lsn_durable.0);
        acked.trim.insert(log, wal.tail(LogId(log)).lsn_trim.0);
    }
    let wal = Arc::new(wal);
    let acked = Arc::new(Mutex::new(acked));
    rt.block_on(workload(wal.clone(), seed, 10, acked.clone()));
    let wal = Arc::try_unwrap(wal).ok().unwrap();
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    verify(&wal, seed, &acked);
    drop(wal);
}

#[test]
fn crash_at_thousands_of_points() {
    let seeds: u64 =
        std::env::var("RATCHET_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let start: u64 =
        std::env::var("RATCHET_CRASH_SEED_START").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    for seed in start..start + seeds {
        run_seed(seed);
    }
}
