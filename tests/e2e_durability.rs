//! End-to-end tests of delayed sends across a crash: a send that is waiting for its delay
//! when the server is SIGKILLed runs exactly once after the restart, and not before its time.
//!
//! Goal: the durable timer behind a delayed send — one accepted by the ingress
//! (`/send?delay=`) or one emitted by a handler through an SDK (Rust `send_after`, TS
//! `sendOpts({delay})`) — survives a crash: its target runs once, no earlier than the delay
//! after the send, and not much later; a timer that came due while the server was down fires
//! right after the restart; sends of which some had fired before the crash and some had not
//! all run, none twice.
//!
//! Method: each test starts a fresh fixture (`tests/support`) with both SDK services. The
//! targets record each execution in their service's stats map, inside `ctx.run` (so once per
//! invocation): `RustTally/<key>/hit` counts `hit:<key>` and publishes the wall-clock time
//! `hit-at:<key>`; the TS `Signals/stamp` counts `stamp:<tag>` with the time `stamp-at:<tag>`.
//! The test and the services share the machine's clock. Exactly-once is checked after a
//! grace period in which a duplicate would have shown, also in the tally's durable state.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{assert_reply, unix_ms, Deadline, Fixture, Sdk, Sdks};

/// How late after its due time a delayed send may run (restart and scheduling included).
const LATE_MAX_MS: u64 = 15_000;

/// A delayed send under test: where its effect is recorded, and when it became due at the
/// earliest (the send's start plus the delay).
struct Pending {
    what: &'static str,
    sdk: Sdk,
    count: String,
    at: String,
    due_ms: u64,
    invocation: String,
    result: Value,
}

impl Pending {
    fn rust(what: &'static str, key: &str, due_ms: u64, invocation: String) -> Pending {
        Pending {
            what,
            sdk: Sdk::Rust,
            count: format!("hit:{key}"),
            at: format!("hit-at:{key}"),
            due_ms,
            invocation,
            result: json!(1),
        }
    }

    fn ts(what: &'static str, tag: &str, due_ms: u64, invocation: String) -> Pending {
        Pending {
            what,
            sdk: Sdk::Ts,
            count: format!("stamp:{tag}"),
            at: format!("stamp-at:{tag}"),
            due_ms,
            invocation,
            result: json!(tag),
        }
    }
}

async fn ingress_send(fx: &mut Fixture, path: &str, body: Value) -> String {
    let r = fx.call(path, body).await;
    assert_eq!(r.status, 202, "{path}: {}", r.text());
    assert_eq!(r.json()["status"], "Accepted", "{path}");
    r.json()["invocationId"].as_str().expect("invocationId").to_string()
}

/// Calls a handler that emits a delayed send and answers the send's invocation id.
async fn handler_send(fx: &mut Fixture, path: &str, body: Value) -> String {
    let r = fx.call(path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let id = r.json().as_str().unwrap_or_else(|| panic!("{path}: {}", r.text())).to_string();
    assert!(id.starts_with("inv_1"), "{path}: {id}");
    id
}

/// Sends one delayed invocation of each kind (ingress and handler, Rust and TS targets), each
/// due `delay_ms` after its send. `tag` keeps the keys of one call apart from another's.
async fn send_all(fx: &mut Fixture, tag: &str, delay_ms: u64) -> Vec<Pending> {
    let delay = format!("{delay_ms}ms");
    let mut all = Vec::new();
    let key = format!("{tag}-ingress");
    let t = unix_ms();
    let id =
        ingress_send(fx, &format!("/RustTally/{key}/hit/send?delay={delay}"), json!("x")).await;
    all.push(Pending::rust("ingress → Rust", &key, t + delay_ms, id));

    let key = format!("{tag}-handler");
    let t = unix_ms();
    let id = handler_send(fx, "/RustSignals/sendLater", json!({"key": key, "ms": delay_ms})).await;
    all.push(Pending::rust("Rust handler → Rust", &key, t + delay_ms, id));

    let stamp = format!("{tag}-ts-ingress");
    let t = unix_ms();
    let id = ingress_send(fx, &format!("/Signals/stamp/send?delay={delay}"), json!(stamp)).await;
    all.push(Pending::ts("ingress → TS", &stamp, t + delay_ms, id));

    let stamp = format!("{tag}-ts-handler");
    let t = unix_ms();
    let id = handler_send(fx, "/Signals/sendLater", json!({"tag": stamp, "ms": delay_ms})).await;
    all.push(Pending::ts("TS handler → TS", &stamp, t + delay_ms, id));
    all
}

/// Asserts that none of `pending` ran yet (valid while their due times are ahead).
async fn assert_none_ran(fx: &mut Fixture, pending: &[Pending], when: &str) {
    for sdk in [Sdk::Rust, Sdk::Ts] {
        let stats = fx.stats(sdk).await;
        for p in pending.iter().filter(|p| p.sdk == sdk) {
            assert!(stats.get(&p.count).is_none(), "{} ran {when}: {stats}", p.what);
        }
    }
}

/// Waits until every one of `pending` ran; checks each ran once, in its time window
/// (`earliest_ms` at the earliest, which is never before its due time), and answers its
/// result to attach.
async fn assert_each_ran_once_in_time(fx: &mut Fixture, pending: &[Pending], earliest_ms: u64) {
    let deadline = Deadline::after(Duration::from_secs(40), "every delayed send to run");
    'wait: loop {
        for sdk in [Sdk::Rust, Sdk::Ts] {
            let stats = fx.stats(sdk).await;
            if pending.iter().filter(|p| p.sdk == sdk).any(|p| stats.get(&p.count).is_none()) {
                deadline.tick().await;
                continue 'wait;
            }
        }
        break;
    }
    // Give a duplicate execution the chance to show itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for p in pending {
        let stats = fx.stats(p.sdk).await;
        assert_eq!(stats[&p.count], 1, "{} ran more than once: {stats}", p.what);
        let at = stats[&p.at].as_u64().unwrap_or_else(|| panic!("{}: no time in {stats}", p.what));
        let earliest = earliest_ms.max(p.due_ms);
        assert!(at >= earliest, "{} ran {} ms too early", p.what, earliest - at);
        assert!(
            at <= earliest + LATE_MAX_MS,
            "{} ran {} ms after it could have",
            p.what,
            at - earliest
        );
        let r =
            fx.ingress("GET", &format!("/restate/invocation/{}/attach", p.invocation), None).await;
        assert_reply(&r, 200, p.result.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_sends_pending_across_a_sigkill_run_once_on_time() {
    let mut fx = Fixture::start("delayed_send_sigkill", Sdks::Both).await;
    const DELAY_MS: u64 = 3000;
    let pending = send_all(&mut fx, "k", DELAY_MS).await;
    fx.kill9_server();
    fx.restart_server().await;
    // Each target records when it ran: none may have run before its due time.
    assert_each_ran_once_in_time(&mut fx, &pending, 0).await;
    for key in ["k-ingress", "k-handler"] {
        let r = fx.ingress("GET", &format!("/RustTally/{key}/get"), None).await;
        assert_reply(&r, 200, json!(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_sends_due_while_the_server_was_down_run_once_after_the_restart() {
    let mut fx = Fixture::start("delayed_send_down", Sdks::Both).await;
    const DELAY_MS: u64 = 1500;
    let pending = send_all(&mut fx, "d", DELAY_MS).await;
    fx.kill9_server();
    let last_due = pending.iter().map(|p| p.due_ms).max().unwrap();
    tokio::time::sleep(Duration::from_millis(last_due.saturating_sub(unix_ms()) + 1000)).await;
    // All of them came due while the server was down: nothing ran them.
    assert_none_ran(&mut fx, &pending, "while the server was down").await;
    let restarted = unix_ms();
    fx.restart_server().await;
    assert_each_ran_once_in_time(&mut fx, &pending, restarted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_sends_that_fired_before_a_crash_do_not_run_again() {
    let mut fx = Fixture::start("delayed_send_mixed", Sdks::Both).await;
    // Twelve sends to one key, due 0.2 s to 4.6 s from now; the crash comes after about 2 s,
    // when some have run and some have not.
    const SENDS: u64 = 12;
    let t0 = unix_ms();
    for i in 0..SENDS {
        let path = format!("/RustTally/mixed/hit/send?delay={}ms", 200 + i * 400);
        ingress_send(&mut fx, &path, json!(format!("s{i}"))).await;
    }
    let deadline = Deadline::after(Duration::from_secs(20), "some sends to run before the crash");
    while fx.stat(Sdk::Rust, "hit:mixed").await < 3 {
        deadline.tick().await;
    }
    fx.kill9_server();
    let before = fx.stat(Sdk::Rust, "hit:mixed").await;
    assert!(before < SENDS, "all {SENDS} sends ran before the crash: nothing was left pending");
    fx.restart_server().await;
    let deadline = Deadline::after(Duration::from_secs(30), "every send to run");
    while fx.stat(Sdk::Rust, "hit:mixed").await < SENDS {
        deadline.tick().await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let executions = fx.stat(Sdk::Rust, "hit:mixed").await;
    assert_eq!(executions, SENDS, "{before} had run before the crash");
    let r = fx.ingress("GET", "/RustTally/mixed/get", None).await;
    assert_reply(&r, 200, json!(SENDS));
    let last = fx.stats(Sdk::Rust).await["hit-at:mixed"].as_u64().unwrap();
    assert!(last >= t0 + 200 + (SENDS - 1) * 400, "the last send ran {} ms after t0", last - t0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_delayed_send_is_one_invocation_across_a_crash() {
    let mut fx = Fixture::start("delayed_send_idempotent", Sdks::Ts).await;
    const DELAY_MS: u64 = 2000;
    let url = fx.ingress_url("/Idem/once/send?delay=2s");
    let h = [("content-type", "application/json"), ("idempotency-key", "ik")];
    let body = || Some(bytes::Bytes::from_static(b"\"t\""));
    let t0 = unix_ms();
    let r = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "Accepted");
    let id = r.json()["invocationId"].as_str().unwrap().to_string();
    let at = r.json()["executionTime"].clone();
    assert!(at.is_string(), "{}", r.text());
    // While it waits, a repeat carries the first send's execution time (as Restate answers).
    let previously =
        json!({"invocationId": id, "executionTime": at, "status": "PreviouslyAccepted"});
    let r = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_eq!(r.json(), previously);
    let r = fx.ingress("GET", "/restate/invocation/Idem/once/ik/output", None).await;
    assert_eq!(r.status, 470, "{}", r.text());
    fx.kill9_server();
    fx.restart_server().await;
    let r = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    let got = r.json();
    assert_eq!((&got["invocationId"], &got["status"]), (&json!(id), &json!("PreviouslyAccepted")));
    // Still waiting (the same time), or started meanwhile (none).
    assert!(got.get("executionTime").is_none_or(|t| *t == at), "{got}");
    // A call with the key waits for the same invocation.
    let call_url = fx.ingress_url("/Idem/once");
    let r = fx.request("POST", &call_url, body(), &h, Duration::from_secs(20)).await;
    assert_reply(&r, 200, json!({"tag": "t", "n": 1}));
    assert_eq!(r.invocation_id(), id);
    assert!(unix_ms() >= t0 + DELAY_MS, "answered {} ms after the send", unix_ms() - t0);
    let r = fx.ingress("GET", "/restate/invocation/Idem/once/ik/attach", None).await;
    assert_reply(&r, 200, json!({"tag": "t", "n": 1}));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(fx.stat(Sdk::Ts, "idem:t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_send_queued_behind_a_busy_key_runs_once_across_a_crash() {
    let mut fx = Fixture::start("delayed_send_inboxed", Sdks::Ts).await;
    // Counter/q is held for 6 s; an add to it comes due after 0.5 s and must wait its turn
    // (6 s leaves room for a slow machine between the hold's start and the read below).
    let r = fx.call("/Counter/q/hold/send", json!(6000)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = Deadline::after(Duration::from_secs(20), "the hold to start");
    while fx.stat(Sdk::Ts, "hold:q").await == 0 {
        deadline.tick().await;
    }
    let r = fx.call("/Counter/q/add/send?delay=500ms", json!(5)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let add = r.json()["invocationId"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_reply(&fx.ingress("GET", "/Counter/q/get", None).await, 200, json!(0));
    fx.kill9_server();
    fx.restart_server().await;
    let r = fx.ingress("GET", &format!("/restate/invocation/{add}/attach"), None).await;
    assert_reply(&r, 200, json!(5));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_reply(&fx.ingress("GET", "/Counter/q/get", None).await, 200, json!(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_awakeables_and_workflows_waiting_across_a_crash_complete_once() {
    let mut fx = Fixture::start("rust_waiting_sigkill", Sdks::Rust).await;
    let r = fx.call("/RustSignals/awaitAwakeable/send", json!("k")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let inv = r.json()["invocationId"].as_str().unwrap().to_string();
    let r = fx.call("/RustApproval/k/run/send", json!("r")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = Deadline::after(Duration::from_secs(20), "the awakeable id and the workflow");
    let awk = loop {
        let stats = fx.stats(Sdk::Rust).await;
        let waiting = fx.ingress("POST", "/RustApproval/k/status", None).await.json();
        if let (Some(awk), true) = (stats["awk:k"].as_str(), waiting == json!("waiting")) {
            break awk.to_string();
        }
        deadline.tick().await;
    };
    fx.kill9_server();
    fx.restart_server().await;
    let url = fx.ingress_url(&format!("/restate/awakeables/{awk}/resolve"));
    let ct = [("content-type", "application/json")];
    let body = Some(bytes::Bytes::from_static(b"\"after\""));
    let r = fx.request("POST", &url, body, &ct, Duration::from_secs(10)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/attach"), None).await;
    assert_reply(&r, 200, json!({"value": "after"}));
    assert_reply(&fx.call("/RustApproval/k/deny", json!("nope")).await, 200, json!("denied"));
    let r = fx.ingress("GET", "/restate/workflow/RustApproval/k/attach", None).await;
    assert_reply(&r, 200, json!({"input": "r", "decision": {"error": "nope", "code": 500}}));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = fx.stats(Sdk::Rust).await;
    assert_eq!(stats["awk-done:k"], 1, "{stats}");
    assert_eq!(stats["wf-run:k"], 1, "{stats}");
    assert_eq!(stats["wf-after:k"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_killed_after_its_delayed_send_does_not_send_it_again() {
    let mut fx = Fixture::start("delayed_send_replayed", Sdks::Rust).await;
    // The handler sends (due in 2 s), then sleeps 3 s; the server dies during that sleep.
    // After the restart the handler replays its send and finishes: one send, one execution.
    let t0 = unix_ms();
    let body = json!({"key": "r", "ms": 2000, "then_sleep_ms": 3000});
    let r = fx.call("/RustSignals/sendLater/send", body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let sender = r.json()["invocationId"].as_str().unwrap().to_string();
    let deadline = Deadline::after(Duration::from_secs(20), "the send to be made");
    while fx.stat(Sdk::Rust, "sent-later:r").await == 0 {
        deadline.tick().await;
    }
    // The run that counted is acknowledged once its result is in the journal; a crash before
    // that runs it again (at least once, as Restate). Crash only after it.
    let sql = format!(
        "SELECT index FROM sys_journal WHERE id = '{sender}' AND entry_type = 'Notification: Run'"
    );
    let body = Some(bytes::Bytes::from(json!({ "query": sql }).to_string()));
    let url = fx.admin_url("/query");
    let h = [("content-type", "application/json"), ("accept", "application/json")];
    loop {
        let r = fx.request("POST", &url, body.clone(), &h, Duration::from_secs(10)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if !r.json()["rows"].as_array().is_some_and(|rows| rows.is_empty()) {
            break;
        }
        deadline.tick().await;
    }
    fx.kill9_server();
    fx.restart_server().await;
    let r = fx.ingress("GET", &format!("/restate/invocation/{sender}/attach"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let target = r.json().as_str().expect("the send's invocation id").to_string();
    let r = fx.ingress("GET", &format!("/restate/invocation/{target}/attach"), None).await;
    assert_reply(&r, 200, json!(1));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = fx.stats(Sdk::Rust).await;
    assert_eq!(stats["hit:r"], 1, "{stats}");
    assert_eq!(stats["sent-later:r"], 1, "{stats}");
    let at = stats["hit-at:r"].as_u64().unwrap();
    assert!(at >= t0 + 2000, "ran {} ms after the send", at - t0);
    assert_reply(&fx.ingress("GET", "/RustTally/r/get", None).await, 200, json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_send_from_a_handler_cancelled_before_its_time_never_runs() {
    let mut fx = Fixture::start("delayed_send_cancelled", Sdks::Rust).await;
    let r = fx.call("/RustSignals/sendLater", json!({"key": "x", "ms": 1500})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let target = r.json().as_str().unwrap().to_string();
    let r = fx.call("/RustSignals/cancelIt", json!(target)).await;
    assert_reply(&r, 200, json!("cancelled"));
    let r = fx.ingress("GET", &format!("/restate/invocation/{target}/attach"), None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["message"], "canceled");
    fx.kill9_server();
    fx.restart_server().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(fx.stat(Sdk::Rust, "hit-attempt:x").await, 0, "a cancelled send ran");
    assert_reply(&fx.ingress("GET", "/RustTally/x/get", None).await, 200, json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awakeable_timeout_armed_before_a_crash_fires_once_after_it() {
    let mut fx = Fixture::start("awakeable_timeout_sigkill", Sdks::Rust).await;
    let t0 = unix_ms();
    let r = fx.call("/RustSignals/awaitWithTimeout/send", json!({"ms": 2500, "tag": "k"})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let inv = r.json()["invocationId"].as_str().unwrap().to_string();
    let deadline = Deadline::after(Duration::from_secs(20), "the awakeable id");
    while fx.stats(Sdk::Rust).await["awk:k"].is_null() {
        deadline.tick().await;
    }
    fx.kill9_server();
    fx.restart_server().await;
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/attach"), None).await;
    assert_reply(&r, 200, json!({"error": "timeout", "code": 408}));
    assert!(unix_ms() >= t0 + 2500, "timed out {} ms after the start", unix_ms() - t0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(fx.stat(Sdk::Rust, "awk-done:k").await, 1);
}
