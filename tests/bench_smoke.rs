//! Keeps the WAL benchmark from rotting: runs its engine for a fraction of a second on each
//! backend and checks the report is sane. No timing assertions: speed lives in the benchmark.

use std::time::Duration;

use ratchet::wal::bench::{run, Params};
use ratchet::wal::disk::Engine;

#[test]
fn wal_bench_runs_on_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    for engine in [Engine::Std, Engine::Uring] {
        let params = Params {
            engine,
            appenders: 4,
            record_bytes: 512,
            duration: Duration::from_millis(200),
            dir: dir.path().join("wal"),
            segment_bytes: 1024 * 1024,
        };
        let r = run(&params).unwrap();
        assert!(r.appends_per_s > 0.0 && r.fsyncs_per_s > 0.0, "{}", r.to_json());
        assert!(r.p50_us <= r.p99_us);
        let json = r.to_json();
        for key in [
            "engine",
            "appenders",
            "record_bytes",
            "appends_per_s",
            "mb_per_s",
            "p50_us",
            "p99_us",
            "fsyncs_per_s",
        ] {
            assert!(json.contains(&format!("\"{key}\":")), "{json}");
        }
    }
}
