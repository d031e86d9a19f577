//! Prometheus metrics: the names the code records under, the process-wide recorder, and the
//! text served at `/metrics` on the admin and node endpoints.
//!
//! Code records through the `metrics` facade macros (a no-op when no recorder is installed,
//! as in unit tests); the exporter renders the Prometheus text. Names follow Prometheus'
//! rules: base units (`_seconds`, `_bytes`), `_total` on counters only, no unit twice.
//! Latencies are summaries (quantiles 0.5, 0.9, 0.99 and 1), as Restate's are.
//!
//! Invariants:
//! - One recorder per process, installed at most once ([`install`]); a second node in the
//!   same process shares it.
//! - Memory is bounded: labels are partition numbers and fixed words (never ids, keys or
//!   service names), and [`upkeep`] drains buffered samples into the bounded summaries.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const INGRESS_REQUESTS: &str = "restate_ingress_requests_total";
pub const INGRESS_REQUEST_DURATION: &str = "restate_ingress_request_duration_seconds";
pub const INVOKER_ATTEMPTS: &str = "restate_invoker_attempts_total";
pub const INVOKER_ATTEMPT_DURATION: &str = "restate_invoker_attempt_duration_seconds";
pub const WAL_APPENDS: &str = "restate_wal_appends_total";
pub const WAL_APPENDED_BYTES: &str = "restate_wal_appended_bytes_total";
pub const WAL_FLUSH_BYTES: &str = "restate_wal_flush_bytes";
pub const WAL_FSYNC_DURATION: &str = "restate_wal_fsync_duration_seconds";
pub const WAL_FSYNC_BYTES: &str = "restate_wal_fsync_bytes_total";
pub const WAL_SIZE: &str = "restate_wal_size_bytes";
pub const PARTITION_APPLIED_LSN: &str = "restate_partition_applied_lsn";
pub const PARTITION_APPLIED_LSN_LAG: &str = "restate_partition_applied_lsn_lag";
pub const PARTITION_START: &str = "restate_partition_start_total";
pub const PARTITION_STOP: &str = "restate_partition_stop_total";
pub const STORE_SIZE: &str = "restate_store_size_bytes";
pub const PROCESS_RESIDENT_MEMORY: &str = "process_resident_memory_bytes";
pub const PROCESS_VIRTUAL_MEMORY: &str = "process_virtual_memory_bytes";
pub const BUILD_INFO: &str = "restate_build_info";

/// How often buffered samples are folded into the summaries.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once) and describes every metric.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_quantiles(&[0.5, 0.9, 0.99, 1.0]).ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                return None;
            }
            describe();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        INGRESS_REQUESTS,
        "Ingress requests answered, by status: completed (2xx/3xx), rejected (4xx), failed (5xx)"
    );
    describe_histogram!(
        INGRESS_REQUEST_DURATION,
        Unit::Seconds,
        "Time from an ingress request's arrival to its response head"
    );
    describe_counter!(INVOKER_ATTEMPTS, "Invocation attempts that ended, by partition and outcome");
    describe_histogram!(
        INVOKER_ATTEMPT_DURATION,
        Unit::Seconds,
        "Duration of invocation attempts, by partition"
    );
    describe_counter!(WAL_APPENDS, "Records appended to the write-ahead log");
    describe_counter!(
        WAL_APPENDED_BYTES,
        Unit::Bytes,
        "Bytes of records appended to the write-ahead log"
    );
    describe_histogram!(WAL_FLUSH_BYTES, Unit::Bytes, "Bytes written by one write-ahead log flush");
    describe_histogram!(
        WAL_FSYNC_DURATION,
        Unit::Seconds,
        "Time a write-ahead log flush took to become durable"
    );
    describe_counter!(
        WAL_FSYNC_BYTES,
        Unit::Bytes,
        "Bytes made durable by write-ahead log flushes"
    );
    describe_gauge!(WAL_SIZE, Unit::Bytes, "Size of the write-ahead log's segment files");
    describe_gauge!(PARTITION_APPLIED_LSN, "Last log position a partition applied");
    describe_gauge!(
        PARTITION_APPLIED_LSN_LAG,
        "Records a partition's log holds that it has not applied yet"
    );
    describe_counter!(PARTITION_START, "Partition processor starts, by partition and type");
    describe_counter!(
        PARTITION_STOP,
        "Partition processor stops, by partition and type (shutdown or failure)"
    );
    describe_gauge!(STORE_SIZE, Unit::Bytes, "Size of the partition store files");
    describe_gauge!(PROCESS_RESIDENT_MEMORY, Unit::Bytes, "Resident memory of the process");
    describe_gauge!(PROCESS_VIRTUAL_MEMORY, Unit::Bytes, "Virtual memory of the process");
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label");
}

/// Folds buffered samples into the summaries; called every [`UPKEEP_INTERVAL`].
pub fn upkeep() {
    if let Some(Some(h)) = HANDLE.get() {
        h.run_upkeep();
    }
}

/// The Prometheus text, after sampling the process's memory.
pub fn render() -> Option<String> {
    let h = HANDLE.get()?.as_ref()?;
    if let Some((virt, rss)) = process_memory() {
        metrics::gauge!(PROCESS_VIRTUAL_MEMORY).set(virt as f64);
        metrics::gauge!(PROCESS_RESIDENT_MEMORY).set(rss as f64);
    }
    Some(h.render())
}

/// Virtual and resident bytes of this process (`/proc/self/statm`).
fn process_memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (virt, rss) = (it.next()??, it.next()??);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096);
    Some((virt * page, rss * page))
}

/// Total size of the regular files under `dir` (not following links).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}
