//! The web UI's real-browser tests, as one test of the Rust suite: runs
//! `node --test --test-concurrency=1 admin-ui/tests/` (Debian's Chromium driven by
//! playwright-core against this build's `ratchet` binary and the TypeScript SDK test service),
//! prints node's report and fails unless every browser test passed.
//!
//! What the browser tests cover lives in `admin-ui/tests/*.test.mjs`; their harness in
//! `admin-ui/tests/harness.mjs`. Screenshots of every step (and of a failure) and the logs of
//! the processes they start go to `target/ui-screenshots/`, node's whole report to
//! `target/ui-screenshots/node-test.log`.
//!
//! Nothing here skips: a missing Chromium or a missing `admin-ui/node_modules` fails the test
//! with the install step that provides it (`scripts/test` runs both).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole browser run may take this long before it is killed and fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

const CHROMIUM: &str = "/usr/bin/chromium";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn require(path: &Path, what: &str, install: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}). Install it with `{install}` (scripts/test does this).",
        path.display()
    );
}

#[test]
fn web_ui_in_a_real_browser() {
    let root = root();
    require(
        Path::new(CHROMIUM),
        "Chromium",
        "apt-get install -y --no-install-recommends chromium fonts-liberation",
    );
    require(
        &root.join("admin-ui/node_modules/playwright-core/package.json"),
        "playwright-core under admin-ui/node_modules",
        "npm ci --prefix admin-ui --no-audit --no-fund",
    );
    require(
        &root.join("tests/services/ts/node_modules/@restatedev/restate-sdk/package.json"),
        "the TypeScript SDK test service's packages",
        "npm ci --prefix tests/services/ts --no-audit --no-fund --ignore-scripts",
    );

    let out_dir = root.join("target/ui-screenshots");
    std::fs::create_dir_all(&out_dir).expect("create target/ui-screenshots");
    let log_path = out_dir.join("node-test.log");
    let log = std::fs::File::create(&log_path).expect("create the node log");
    let started = Instant::now();
    let mut child = Command::new("node")
        .args(["--test", "--test-concurrency=1", "admin-ui/tests/"])
        .current_dir(&root)
        .env("RATCHET_BIN", env!("CARGO_BIN_EXE_ratchet"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        // Its own process group, so a timeout can stop the servers and browsers it started.
        .process_group(0)
        .spawn()
        .expect("start `node` (is Node.js on PATH?)");

    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = Command::new("kill").args(["-KILL", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!("{report}");
    println!(
        "browser tests took {:.1} s; screenshots and logs in {}",
        started.elapsed().as_secs_f64(),
        out_dir.display()
    );
    match status {
        Some(s) => assert!(s.success(), "browser tests failed ({s}); see the report above"),
        None => panic!("browser tests still running after {RUN_TIMEOUT:?}; killed"),
    }
}
