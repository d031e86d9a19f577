//! `cargo bench --bench wal -- --appenders N --record-bytes B --seconds S --engine uring|std`
//!
//! Prints one JSON line per run (see `ratchet::wal::bench`). `--dir` chooses where the WAL
//! lives (default: `target/wal-bench`, on the same disk as the build). Compare against the
//! disk's serial fdatasync rate with `benches/wal-vs-fio.sh`.

use std::time::Duration;

use ratchet::wal::bench::{run, Params};
use ratchet::wal::disk::Engine;

fn main() {
    let mut params = Params {
        engine: Engine::Auto,
        appenders: 1,
        record_bytes: 1024,
        duration: Duration::from_secs(5),
        dir: "target/wal-bench".into(),
        segment_bytes: 64 * 1024 * 1024,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--appenders" => {
                params.appenders = val().parse().unwrap_or_else(|_| usage("bad --appenders"))
            }
            "--record-bytes" => {
                params.record_bytes = val().parse().unwrap_or_else(|_| usage("bad --record-bytes"))
            }
            "--seconds" => {
                params.duration = Duration::from_secs_f64(
                    val().parse().unwrap_or_else(|_| usage("bad --seconds")),
                )
            }
            "--engine" => params.engine = val().parse().unwrap_or_else(|e: String| usage(&e)),
            "--dir" => params.dir = val().into(),
            "--segment-bytes" => {
                params.segment_bytes =
                    val().parse().unwrap_or_else(|_| usage("bad --segment-bytes"))
            }
            // cargo bench passes this to every bench binary.
            "--bench" => {}
            other => usage(&format!("unknown argument {other}")),
        }
    }
    match run(&params) {
        Ok(r) => println!("{}", r.to_json()),
        Err(e) => {
            eprintln!("wal bench failed: {e}");
            std::process::exit(1);
        }
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: wal [--appenders N] [--record-bytes B] [--seconds S] [--engine uring|std|auto] [--dir PATH] [--segment-bytes N]");
    std::process::exit(2)
}
