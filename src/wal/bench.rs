//! The WAL benchmark's engine, shared by `cargo bench --bench wal` and a smoke test so the
//! benchmark cannot rot.
//!
//! N appender tasks each append one record and wait for its acknowledgement before the next
//! (an acknowledgement means durable), for a fixed time, each to its own log (as partitions
//! would). Logs are trimmed as they go so that segments are recycled, as in steady state.
//! The result is one JSON line with throughput, latency percentiles and durable writes per
//! second.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use segment_format::{LogId, Lsn};

use super::disk::Engine;
use super::{Options, Wal, WalError};

/// What to run.
#[derive(Clone, Debug)]
pub struct Params {
    pub engine: Engine,
    pub appenders: usize,
    pub record_bytes: usize,
    pub duration: Duration,
    pub dir: PathBuf,
    pub segment_bytes: u64,
}

/// What was measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub engine: &'static str,
    pub appenders: usize,
    pub record_bytes: usize,
    pub appends_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub fsyncs_per_s: f64,
}

impl Report {
    pub fn to_json(&self) -> String {
        format!(
            "{{\"engine\":\"{}\",\"appenders\":{},\"record_bytes\":{},\"appends_per_s\":{:.0},\"mb_per_s\":{:.2},\"p50_us\":{},\"p99_us\":{},\"fsyncs_per_s\":{:.0}}}",
            self.engine,
            self.appenders,
            self.record_bytes,
            self.appends_per_s,
            self.mb_per_s,
            self.p50_us,
            self.p99_us,
            self.fsyncs_per_s
        )
    }
}

/// Trim each log once this many records are behind its tail.
const TRIM_LAG_RECORDS: u64 = 4096;

/// Runs one benchmark in `params.dir` (created, and removed afterwards).
pub fn run(params: &Params) -> Result<Report, WalError> {
    let _ = std::fs::remove_dir_all(&params.dir);
    let mut opts = Options::new(&params.dir);
    opts.engine = params.engine;
    opts.segment_bytes = params.segment_bytes;
    // Small segments (the smoke test's) need flushes that fit them.
    opts.flush_bytes_max = opts.flush_bytes_max.min((params.segment_bytes / 4) as usize);
    opts.spares = 2;
    let wal = Arc::new(Wal::open(opts)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| WalError::io("start runtime", &e))?;
    let report = rt.block_on(async {
        // Warm-up: the first segment and its spares get prepared.
        for i in 0..params.appenders.max(1) {
            wal.append(LogId(i as u32 + 1), vec![vec![0; params.record_bytes]]).await?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let flushes_before = wal.flushes();
        let start = Instant::now();
        let deadline = start + params.duration;
        let mut tasks = Vec::new();
        for i in 0..params.appenders {
            let wal = wal.clone();
            let bytes = params.record_bytes;
            tasks.push(tokio::spawn(async move {
                let log = LogId(i as u32 + 1);
                let body = vec![0xA5u8; bytes];
                let mut lat_us: Vec<u32> = Vec::with_capacity(1 << 16);
                let mut trimmed = Lsn::INVALID;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let lsn = wal.append(log, vec![body.clone()]).await?;
                    lat_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    if lsn.0 > trimmed.0 + 2 * TRIM_LAG_RECORDS {
                        trimmed = Lsn(lsn.0 - TRIM_LAG_RECORDS);
                        wal.trim(log, trimmed).await?;
                    }
                }
                Ok::<_, WalError>(lat_us)
            }));
        }
        let mut lat: Vec<u32> = Vec::new();
        for t in tasks {
            lat.extend(t.await.map_err(|e| WalError::Io { op: "join", message: e.to_string() })??);
        }
        let secs = start.elapsed().as_secs_f64();
        let flushes = wal.flushes() - flushes_before;
        lat.sort_unstable();
        let pct =
            |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as u64;
        let n = lat.len() as f64;
        Ok::<_, WalError>(Report {
            engine: wal.engine(),
            appenders: params.appenders,
            record_bytes: params.record_bytes,
            appends_per_s: n / secs,
            mb_per_s: n * params.record_bytes as f64 / secs / 1e6,
            p50_us: pct(0.5),
            p99_us: pct(0.99),
            fsyncs_per_s: flushes as f64 / secs,
        })
    });
    drop(rt);
    drop(wal);
    let _ = std::fs::remove_dir_all(&params.dir);
    report
}
