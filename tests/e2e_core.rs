//! End-to-end tests of the durable core with a real SDK: what a user sees when deliveries,
//! limits, a full disk, a failing disk, suspension, request-response mode and the invoker's
//! limits meet an unmodified TypeScript SDK service.
//!
//! Goal: each promise of the core holds from the outside — sends arrive in emission order; a
//! record over a limit fails its invocation with a stable code while the partition serves on
//! and restarts cleanly; a full disk is answered with retryable errors and waited out without
//! losing or duplicating anything accepted; a failing disk stops the process with one clear
//! message; a store refuses a log that is not its own or that lost records; sleeping
//! invocations give their stream back; request-response deployments work; the invoker and
//! ingress keep to their limits; eager state past its cap is sent partially and read lazily.
//!
//! Method: each test starts a fresh fixture (`tests/support`): Ratchet on free loopback ports
//! with the TS test service registered (`tests/services/ts/service.mjs`, services `Seq` and
//! `Core` exist for these tests), configured through `RESTATE_*` variables. Tests observe
//! only what users can: HTTP answers, the service's side-effect counters, the server's exit
//! status and log. Every wait has a deadline.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::{Deadline, Fixture, FixtureOptions, Sdk, Sdks};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn opts(pairs: &[(&str, &str)]) -> FixtureOptions {
    FixtureOptions { env: env(pairs), ..FixtureOptions::default() }
}

async fn list(fx: &mut Fixture, key: &str) -> Vec<Value> {
    let r = fx.call(&format!("/Seq/{key}/list"), json!(null)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().as_array().cloned().unwrap_or_default()
}

/// Polls `Seq/key/list` until it has `n` items.
async fn wait_list(fx: &mut Fixture, key: &str, n: usize) -> Vec<Value> {
    let deadline = Deadline::after(Duration::from_secs(20), &format!("{n} items in Seq/{key}"));
    loop {
        let l = list(fx, key).await;
        if l.len() >= n {
            return l;
        }
        deadline.tick().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery order
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_arrive_in_emission_order() {
    let mut fx = Fixture::start("sends_order", Sdks::Ts).await;
    // A handler that sends push(0) … push(19) to one key: the list must come out in order.
    for key in ["o1", "o2", "o3"] {
        let r = fx.call("/Core/sendSeq", json!({"key": key, "k": 20})).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for key in ["o1", "o2", "o3"] {
        let got = wait_list(&mut fx, key, 20).await;
        let want: Vec<Value> = (0..20).map(|i| json!(i)).collect();
        assert_eq!(got, want, "Seq/{key}");
    }
    // "add then reset", many times: two sends of one handler, every time in order.
    for _ in 0..30 {
        let r = fx.call("/Core/sendSeq", json!({"key": "pairs", "k": 2})).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let got = wait_list(&mut fx, "pairs", 60).await;
    for (i, pair) in got.chunks(2).enumerate() {
        assert_eq!(pair, [json!(0), json!(1)], "pair {i} of {got:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Limits fail the invocation, never the partition
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_key_over_the_limit_fails_only_its_invocation() {
    let mut fx = Fixture::start("state_key_limit", Sdks::Ts).await;
    let r = fx.call("/Seq/big/putBigKey", json!(null)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.header("x-restate-error-source"), Some("invocation"));
    let body = r.json();
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("[RA1001] state key of 66560 bytes"), "{body}");
    r.invocation_id();
    // The same key (so the same partition) goes on serving.
    let r = fx.call("/Seq/big/push", json!(7)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(list(&mut fx, "big").await, vec![json!(7)]);
    // A restart replays the log cleanly.
    fx.kill9_server();
    fx.restart_server().await;
    assert_eq!(list(&mut fx, "big").await, vec![json!(7)]);
    let r = fx.call("/Seq/big/push", json!(8)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(list(&mut fx, "big").await, vec![json!(7), json!(8)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_over_the_limit_fails_only_its_invocation() {
    let mut fx = Fixture::start("journal_limit", Sdks::Ts).await;
    let url = fx.ingress_url("/Seq/j/manySets");
    let body = Bytes::from("65536");
    let ct = [("content-type", "application/json")];
    let r = fx.request("POST", &url, Some(body), &ct, Duration::from_secs(120)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    let body = r.json();
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("[RA1002] the journal reached its limit of 65536 entries"), "{body}");
    // Under the limit it works, and the partition serves on.
    let r = fx.call("/Seq/j2/manySets", json!(100)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = fx.call("/Seq/j/push", json!(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    fx.kill9_server();
    fx.restart_server().await;
    assert_eq!(list(&mut fx, "j").await, vec![json!(1)]);
}

// ---------------------------------------------------------------------------------------------
// Suspension, request-response mode, invoker and ingress limits, eager state
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_invocations_give_their_slots_back() {
    // Four attempts at a time: if 40 two-second sleeps kept their streams, they would take
    // 20 s; suspended, they take about 2 s.
    let o = opts(&[("RESTATE_WORKER__INVOKER__IN_FLIGHT_INVOCATIONS_LIMIT", "4")]);
    let mut fx = Fixture::start_with("suspension", Sdks::Ts, o).await;
    let start = Instant::now();
    for i in 0..40 {
        let r = fx.call("/Sleeper/sleep/send", json!({"tag": format!("s{i}"), "ms": 2000})).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let deadline = Deadline::after(Duration::from_secs(15), "40 sleeps to finish");
    loop {
        let stats = fx.stats(Sdk::Ts).await;
        let done =
            (0..40).filter(|i| stats[format!("sleep-after:s{i}")].as_u64() == Some(1)).count();
        if done == 40 {
            break;
        }
        deadline.tick().await;
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(12), "40 sleeps took {took:?}: streams were held");
    let stats = fx.stats(Sdk::Ts).await;
    for i in 0..40 {
        // One attempt up to the sleep, one after it: the first one suspended.
        assert_eq!(stats[format!("sleep-attempt:s{i}")], json!(2), "s{i}: {stats}");
        assert_eq!(stats[format!("sleep-before:s{i}")], json!(1), "s{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_deployments_work() {
    let o = FixtureOptions { ts_request_response: true, ..FixtureOptions::default() };
    let mut fx = Fixture::start_with("request_response", Sdks::Ts, o).await;
    let d =
        fx.admin("GET", &format!("/deployments/{}", fx.ts_deployment.clone().unwrap()), None).await;
    assert_eq!(d.json()["protocol_type"], "RequestResponse", "{}", d.text());
    let r = fx.call("/Greeter/greet", json!("rr")).await;
    assert_eq!(r.json(), json!("Hello rr!"));
    // A ctx.run in request-response mode: propose, suspend, resume with the result.
    let r = fx.call("/Runner/once", json!("rr")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(fx.stat(Sdk::Ts, "run:rr").await, 1);
    let r = fx.call("/Sleeper/sleep", json!({"tag": "rr", "ms": 300})).await;
    assert_eq!(r.json(), json!("slept 300 ms"));
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:rr").await, 1);
    let r = fx.call("/Caller/addTo", json!({"key": "rr", "n": 5})).await;
    assert_eq!(r.json(), json!(5));
    let r = fx.call("/Counter/rr/add", json!(2)).await;
    assert_eq!(r.json(), json!(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_limit_is_honoured() {
    let o = opts(&[
        ("RESTATE_WORKER__INVOKER__IN_FLIGHT_INVOCATIONS_LIMIT", "2"),
        ("RESTATE_DEFAULT_NUM_PARTITIONS", "1"),
    ]);
    let mut fx = Fixture::start_with("in_flight_limit", Sdks::Ts, o).await;
    for _ in 0..8 {
        let r = fx.call("/Core/spin/send", json!(300)).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let deadline = Deadline::after(Duration::from_secs(20), "8 spins");
    while fx.stat(Sdk::Ts, "spin:started").await < 8 {
        deadline.tick().await;
    }
    assert_eq!(fx.stat(Sdk::Ts, "spin:max").await, 2, "attempts running at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_attempts_hold_at_most_the_invokers_share_of_the_memory_budget() {
    // A fifth of a 16 MiB budget for one partition's invoker: 3.2 MiB of journals and eager
    // state at once, so at most three attempts with a 1 MiB input run together.
    let o = opts(&[("RESTATE_MEMORY_BUDGET", "16MiB"), ("RESTATE_DEFAULT_NUM_PARTITIONS", "1")]);
    let mut fx = Fixture::start_with("inputs_budget", Sdks::Ts, o).await;
    let pad = "x".repeat(1 << 20);
    for _ in 0..8 {
        let r = fx.call("/Core/spinBig/send", json!({"ms": 300, "pad": pad})).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let deadline = Deadline::after(Duration::from_secs(30), "8 big spins");
    while fx.stat(Sdk::Ts, "spinBig:done").await < 8 {
        deadline.tick().await;
    }
    let max = fx.stat(Sdk::Ts, "spinBig:max").await;
    assert!((2..=3).contains(&max), "{max} attempts with 1 MiB inputs ran at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_refuses_past_its_caps_with_a_stable_code() {
    let o = opts(&[
        ("RESTATE_INGRESS__CONCURRENT_API_REQUESTS_LIMIT", "2"),
        ("RESTATE_MEMORY_BUDGET", "16MiB"),
    ]);
    let mut fx = Fixture::start_with("ingress_caps", Sdks::Ts, o).await;
    // A body over the ingress's share of the memory budget (a quarter: 4 MiB).
    let url = fx.ingress_url("/Greeter/greet");
    let big = Bytes::from(format!("\"{}\"", "x".repeat(6 << 20)));
    let ct = [("content-type", "application/json")];
    let r = fx.request("POST", &url, Some(big), &ct, Duration::from_secs(20)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.json()["message"].as_str().unwrap_or_default().starts_with("[RA2003]"),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
    // Three requests at once with room for two: one is refused at once, two are served.
    let port = fx.server.ingress_port;
    let calls: Vec<_> =
        (0..3).map(|_| tokio::spawn(raw_post(port, "/Core/spin", "1500"))).collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 429], "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_state_past_its_cap_is_partial_and_read_lazily() {
    // A 16 MiB budget caps the eager state of one attempt at 64 KiB.
    let o = opts(&[("RESTATE_MEMORY_BUDGET", "16MiB")]);
    let mut fx = Fixture::start_with("eager_state_cap", Sdks::Ts, o).await;
    for name in ["a", "b", "c"] {
        let r = fx.call("/Seq/e/putLarge", json!({"name": name, "kib": 40})).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for name in ["a", "b", "c"] {
        let r = fx.call("/Seq/e/lengthOf", json!(name)).await;
        assert_eq!(r.json(), json!(40 * 1024), "{name}: the whole value, not truncated");
    }
}

// ---------------------------------------------------------------------------------------------
// Timers under load
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_on_time_under_sustained_load() {
    let fx = Fixture::start("timers_under_load", Sdks::Ts).await;
    let h = fx.handle();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..32)
        .map(|i| {
            let (h, stop) = (h.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = h.call(&format!("/Counter/load{i}/add"), json!(1)).await;
                    assert_eq!(r.status, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sleeps: Vec<_> = (0..10)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let r = h.call("/Sleeper/sleep", json!({"tag": format!("t{i}"), "ms": 500})).await;
                assert_eq!(r.status, 200, "{}", r.text());
                start.elapsed()
            })
        })
        .collect();
    let mut late = Vec::new();
    for s in sleeps {
        late.push(s.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut calls = 0;
    for l in load {
        calls += l.await.unwrap();
    }
    assert!(calls > 100, "the load ran ({calls} calls)");
    for d in &late {
        // A 500 ms sleep finishing more than 2.5 s late means timers starved behind the load.
        assert!(*d < Duration::from_secs(3), "a 500 ms sleep took {d:?} under load: {late:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// A full disk is backpressure
// ---------------------------------------------------------------------------------------------

/// A tmpfs of a fixed size, mounted for one test (we run as root), unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed ({}): this test needs root to simulate a full disk",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path: path.to_path_buf() }
    }

    /// Fills the file system with `filler` until it is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).expect("create filler");
        let chunk = vec![0x5Au8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_waited_out_and_nothing_accepted_is_lost() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e_core_full_disk");
    let _ = Command::new("umount").arg("-l").arg(&root).status();
    let tmpfs = Tmpfs::mount(&root, 48 << 20);
    let base = root.join("base");
    let mut o =
        opts(&[("RESTATE_WAL__SEGMENT_SIZE", "4MiB"), ("RESTATE_DEFAULT_NUM_PARTITIONS", "2")]);
    o.base_dir = Some(base.clone());
    let mut fx = Fixture::start_with("full_disk", Sdks::Ts, o).await;
    fx.allow_server_log("recovering");
    fx.allow_server_log("full disk");
    fx.allow_server_log("No space left");
    // Two keys, so that whichever partitions they live on, both are exercised.
    let mut accepted = [0u64; 2];
    for (k, n) in accepted.iter_mut().enumerate() {
        for _ in 0..10 {
            let r = fx.call(&format!("/Counter/full{k}/add/send"), json!(1)).await;
            assert_eq!(r.status, 202);
            *n += 1;
        }
    }
    let filler = tmpfs.fill();
    // Keep sending while the disk is full: each answer is 202 (accepted, durable in the WAL's
    // pre-written segment) or a retryable 503 with a stable code, never anything else; until
    // a partition's store hits the full disk and health reports it.
    let mut refused = 0;
    let mut unhealthy = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0u64;
    while Instant::now() < deadline && (unhealthy.is_none() || refused == 0) {
        let url = fx.ingress_url(&format!("/Counter/full{}/add/send", i % 2));
        let ct = [("content-type", "application/json")];
        let r = fx
            .try_request("POST", &url, Some(Bytes::from("1")), &ct, Duration::from_secs(10))
            .await
            .expect("the server answers while the disk is full");
        match r.status {
            202 => accepted[(i % 2) as usize] += 1,
            503 => {
                let m = r.json()["message"].as_str().unwrap_or_default().to_string();
                assert!(m.starts_with("[RA2001]") || m.starts_with("[RA2002]"), "{m}");
                assert!(r.header("retry-after").is_some());
                refused += 1;
            }
            s => panic!("unexpected {s} while the disk is full: {}", r.text()),
        }
        if i % 10 == 0 && unhealthy.is_none() {
            let h = fx
                .try_request("GET", &fx.admin_url("/health"), None, &[], Duration::from_secs(5))
                .await
                .expect("health answers");
            if h.status == 503 {
                unhealthy = Some(h.text());
            }
        }
        i += 1;
    }
    let unhealthy =
        unhealthy.expect("admin /health never reported the partition that hit the full disk");
    assert!(unhealthy.contains("RA2002") && unhealthy.contains("Recovering"), "{unhealthy}");
    assert!(unhealthy.contains("full disk"), "{unhealthy}");
    assert!(refused > 0, "nothing was refused while a partition was recovering");
    assert!(fx.server.is_running(), "a full disk must not stop the server: {}", fx.server.log());
    // Space returns: the server resumes by itself.
    std::fs::remove_file(&filler).expect("remove the filler");
    let deadline = Deadline::after(Duration::from_secs(30), "health after space returned");
    loop {
        let h = fx
            .try_request("GET", &fx.admin_url("/health"), None, &[], Duration::from_secs(5))
            .await;
        if h.is_ok_and(|h| h.status == 200) {
            break;
        }
        deadline.tick().await;
    }
    // Every accepted add happened exactly once.
    for (k, &want) in accepted.iter().enumerate() {
        let deadline = Deadline::after(Duration::from_secs(30), "every accepted add to be applied");
        loop {
            let r = fx.call(&format!("/Counter/full{k}/get"), json!(null)).await;
            let n = r.json().as_u64().unwrap_or(0);
            assert!(n <= want, "full{k}: {n} adds applied, only {want} accepted");
            if n == want {
                break;
            }
            deadline.tick().await;
        }
    }
    drop(fx);
    drop(tmpfs);
}

// ---------------------------------------------------------------------------------------------
// Fail-stop, and a store that is not its log's
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_stops_the_process_with_one_clear_message() {
    let o = opts(&[("RATCHET_TEST_WAL_EIO_AFTER_WRITES", "60")]);
    let mut fx = Fixture::start_with("fail_stop", Sdks::Ts, o).await;
    fx.allow_server_log("RATCHET_TEST_WAL_EIO_AFTER_WRITES");
    fx.allow_server_log("stopping:");
    fx.allow_server_log("failed while stopping");
    let url = fx.ingress_url("/Counter/f/add");
    let ct = [("content-type", "application/json")];
    // Each acknowledged add answers with the count it made; unanswered ones may or may not
    // have been accepted before the disk failed.
    let (mut sent, mut acked) = (0u64, Vec::new());
    for _ in 0..200 {
        if !fx.server.is_running() {
            break;
        }
        sent += 1;
        let r = fx.try_request("POST", &url, Some(Bytes::from("1")), &ct, Duration::from_secs(2));
        if let Ok(r) = r.await {
            if r.status == 200 {
                acked.push(r.json().as_u64().expect("add answers with the count"));
            }
        }
    }
    assert!(!acked.is_empty(), "nothing was acknowledged before the disk failed");
    let status = fx.server.wait_exit(Duration::from_secs(20)).await.expect("the server stops");
    assert_eq!(status.code(), Some(3), "exit status {status}");
    let log = fx.server.log();
    let fatal: Vec<&str> = log.lines().filter(|l| l.starts_with("ratchet: fatal:")).collect();
    assert_eq!(fatal.len(), 1, "one fatal message: {log}");
    assert!(
        fatal[0].contains("WAL")
            && fatal[0].contains("durable write")
            && fatal[0].contains("I/O error"),
        "{}",
        fatal[0]
    );
    // Nothing acknowledged is lost: a restart without the fault recovers and serves.
    fx.restart_without(&["RATCHET_TEST_WAL_EIO_AFTER_WRITES"]).await;
    let mut counts = acked.clone();
    counts.sort_unstable();
    counts.dedup();
    assert_eq!(counts.len(), acked.len(), "two acknowledged adds saw the same count: {acked:?}");
    let r = fx.call("/Counter/f/add", json!(1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The count after restart covers every acknowledged add exactly once and nothing that was
    // never sent.
    let before = r.json().as_u64().unwrap() - 1;
    assert!(
        before >= *counts.last().unwrap(),
        "an acknowledged add was lost: {before} < {counts:?}"
    );
    assert!(
        before >= acked.len() as u64 && before <= sent,
        "{before} adds of {sent} sent, {} acked",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refuses_a_log_that_is_not_its_own_or_lost_records() {
    let mut fx = Fixture::start("foreign_store", Sdks::Ts).await;
    fx.allow_server_log("stopping:");
    fx.allow_server_log("failed while stopping");
    let base = fx.server.base_dir.clone();
    // An early copy of the WAL, then more work, then a clean stop.
    fx.call("/Counter/a/add", json!(1)).await;
    fx.server.stop().await.expect("clean stop");
    let wal_copy = base.with_file_name("wal-copy");
    copy_dir(&base.join("wal"), &wal_copy);
    fx.restart_server().await;
    for _ in 0..20 {
        fx.call("/Counter/a/add", json!(1)).await;
    }
    fx.server.stop().await.expect("clean stop");
    // The log lost its latest records: the stores are ahead of it.
    let wal_now = base.with_file_name("wal-now");
    std::fs::rename(base.join("wal"), &wal_now).unwrap();
    copy_dir(&wal_copy, &base.join("wal"));
    fx.server.start_only();
    let status = fx.server.wait_exit(Duration::from_secs(20)).await.expect("refuses to run");
    assert!(!status.success());
    let log = fx.server.log();
    assert!(log.contains("the store has applied the log up to LSN"), "{log}");
    assert!(log.contains("Restore the data directory from a backup"), "{log}");
    assert!(!log.contains("delete the store"), "never advises deleting the store: {log}");
    // A WAL of another data directory: the stores are not its own.
    std::fs::remove_dir_all(base.join("wal")).unwrap();
    let other = tempfile::tempdir().unwrap();
    {
        let w =
            ratchet::wal::Wal::open(ratchet::wal::Options::new(other.path().join("wal"))).unwrap();
        for p in 1..=4u32 {
            w.append_fenced(ratchet::log::LogId(p), 1, vec![b"x".to_vec(); 100]).await.unwrap();
        }
        w.close();
    }
    copy_dir(&other.path().join("wal"), &base.join("wal"));
    fx.server.start_only();
    let status = fx.server.wait_exit(Duration::from_secs(20)).await.expect("refuses to run");
    assert!(!status.success());
    let log = fx.server.log();
    assert!(log.contains("it was copied from another data directory"), "{log}");
    // Put everything back: it runs and nothing is lost.
    std::fs::remove_dir_all(base.join("wal")).unwrap();
    std::fs::rename(&wal_now, base.join("wal")).unwrap();
    fx.restart_server().await;
    let r = fx.call("/Counter/a/get", json!(null)).await;
    assert_eq!(r.json(), json!(21));
}

/// A POST on its own connection (HTTP/1.1, `connection: close`); returns the status code.
async fn raw_post(port: u16, path: &'static str, body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
