//! End-to-end tests of the programming model with the real Rust SDK (crates.io `restate-sdk`
//! 0.13), and of calls between the Rust and TypeScript SDKs on one server: workflows and
//! their durable promises, awakeables completed from the ingress and from handlers (in either
//! SDK), idempotent calls, attach by invocation id from a handler, delayed sends, and cancel
//! of a sleeping handler.
//!
//! Goal: what `tests/e2e_model.rs` pins with the TypeScript SDK holds for an unmodified Rust
//! SDK service too — a workflow runs once per key and a second `run` call is a 409, its
//! promise keeps its first value; the first completion of an awakeable wins; an idempotency
//! key answers the same invocation id and result; attach from a handler waits for the result
//! and reports failures with their codes; a delayed send runs once, not before its delay;
//! cancel reaches a sleeping Rust handler as a terminal error with code 409; and a Rust
//! handler calling a TS handler (and the reverse) gets the result or the terminal error.
//!
//! Method: each test starts a fresh fixture (`tests/support`) with the Rust test service
//! (`tests/services/rust`: `RustApproval`, `RustSignals`, `RustTally`), and the TS service
//! where a test crosses SDKs. The services publish the ids a test needs (awakeable ids) and
//! count their side effects in their stats maps. Every wait has a deadline.
//!
//! Not covered, because SDK 0.13 has no API for it: get-output (without waiting) from a
//! handler, and attach from a handler by workflow key or idempotency key (the SDK attaches by
//! invocation id only).

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::{assert_reply, attach, post_raw, send, unix_ms, Deadline, Fixture, Sdk, Sdks};

/// Waits until the SDK service published `name` and returns it.
async fn published(fx: &mut Fixture, sdk: Sdk, name: &str) -> Value {
    let deadline = Deadline::after(Duration::from_secs(20), &format!("`{name}` to be published"));
    loop {
        let v = fx.stats(sdk).await[name].clone();
        if !v.is_null() {
            return v;
        }
        deadline.tick().await;
    }
}

async fn published_str(fx: &mut Fixture, sdk: Sdk, name: &str) -> String {
    let v = published(fx, sdk, name).await;
    v.as_str().unwrap_or_else(|| panic!("`{name}` is not a string: {v}")).to_string()
}

async fn wait_status(fx: &mut Fixture, workflow: &str, key: &str, want: &str) {
    let deadline = Deadline::after(Duration::from_secs(20), &format!("{workflow}/{key} {want}"));
    let path = format!("/{workflow}/{key}/status");
    while fx.ingress("POST", &path, None).await.json() != json!(want) {
        deadline.tick().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Workflows and durable promises
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_workflow_runs_once_and_its_promise_keeps_its_first_value() {
    let mut fx = Fixture::start("rust_workflow", Sdks::Rust).await;
    let r = fx.call("/RustApproval/w1/run/send", json!("req-1")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "Accepted");
    let id = r.json()["invocationId"].as_str().unwrap().to_string();
    let r = fx.call("/RustApproval/w1/run/send", json!("req-2")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({"invocationId": id, "status": "PreviouslyAccepted"}));
    let r = fx.call("/RustApproval/w1/run", json!("req-3")).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["message"], "the workflow method was already invoked");

    let r = fx.ingress("GET", "/restate/workflow/RustApproval/w1/output", None).await;
    assert_eq!(r.status, 470, "{}", r.text());
    wait_status(&mut fx, "RustApproval", "w1", "waiting").await;
    assert_reply(&fx.ingress("POST", "/RustApproval/w1/peek", None).await, 200, json!(null));
    assert_reply(&fx.call("/RustApproval/w1/approve", json!("yes")).await, 200, json!("approved"));
    // The Rust SDK does not wait for a promise's completion to be acknowledged, so a second
    // completion answers like the first; the promise keeps the first value all the same.
    let r = fx.call("/RustApproval/w1/approve", json!("again")).await;
    assert_reply(&r, 200, json!("approved"));
    assert_reply(&fx.ingress("POST", "/RustApproval/w1/peek", None).await, 200, json!("yes"));

    let want = json!({"input": "req-1", "decision": {"value": "yes"}});
    let r = fx.ingress("GET", "/restate/workflow/RustApproval/w1/attach", None).await;
    assert_reply(&r, 200, want.clone());
    assert_eq!(r.header("x-restate-id"), Some(id.as_str()));
    let r = fx.ingress("GET", "/restate/workflow/RustApproval/w1/output", None).await;
    assert_reply(&r, 200, want.clone());
    assert_reply(&attach(&mut fx, &id).await, 200, want);
    assert_reply(&fx.ingress("POST", "/RustApproval/w1/status", None).await, 200, json!("decided"));
    // After completion: still one run, a send is PreviouslyAccepted and a call a 409.
    let r = fx.call("/RustApproval/w1/run/send", json!("req-4")).await;
    assert_eq!(r.json(), json!({"invocationId": id, "status": "PreviouslyAccepted"}));
    assert_eq!(fx.call("/RustApproval/w1/run", json!("req-5")).await.status, 409);
    let stats = fx.stats(Sdk::Rust).await;
    assert_eq!(stats["wf-run:w1"], 1, "{stats}");
    assert_eq!(stats["wf-after:w1"], 1, "{stats}");

    // A rejected promise reaches the workflow as a terminal error (code 500 by default).
    let id2 = send(&mut fx, "/RustApproval/w2/run", json!("req")).await;
    assert_ne!(id2, id);
    wait_status(&mut fx, "RustApproval", "w2", "waiting").await;
    assert_reply(&fx.call("/RustApproval/w2/deny", json!("nope")).await, 200, json!("denied"));
    let r = fx.ingress("GET", "/restate/workflow/RustApproval/w2/attach", None).await;
    assert_reply(&r, 200, json!({"input": "req", "decision": {"error": "nope", "code": 500}}));
    // A promise completed before the workflow waits for it: the workflow does not wait.
    assert_reply(
        &fx.call("/RustApproval/w3/approve", json!("early")).await,
        200,
        json!("approved"),
    );
    let r = fx.call("/RustApproval/w3/run", json!("late")).await;
    assert_reply(&r, 200, json!({"input": "late", "decision": {"value": "early"}}));
    // Unknown workflow key: 404.
    let r = fx.ingress("GET", "/restate/workflow/RustApproval/nope/output", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// Awakeables
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_awakeables_complete_from_the_ingress_once() {
    let mut fx = Fixture::start("rust_awakeable_ingress", Sdks::Rust).await;
    let inv = send(&mut fx, "/RustSignals/awaitAwakeable", json!("a")).await;
    let awk = published_str(&mut fx, Sdk::Rust, "awk:a").await;
    assert!(awk.starts_with("sign_1") && awk.len() == 44, "{awk}");
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/output"), None).await;
    assert_eq!(r.status, 470, "{}", r.text());

    let r = post_raw(&mut fx, &format!("/restate/awakeables/{awk}/resolve"), "\"first\"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "first"}));
    let r = post_raw(&mut fx, &format!("/restate/a/{awk}/resolve"), "\"second\"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/output"), None).await;
    assert_reply(&r, 200, json!({"value": "first"}));
    assert_eq!(fx.stat(Sdk::Rust, "awk-done:a").await, 1);

    // Rejected from the ingress: the body is the message, the code 500.
    let inv = send(&mut fx, "/RustSignals/awaitAwakeable", json!("b")).await;
    let awk = published_str(&mut fx, Sdk::Rust, "awk:b").await;
    let r = post_raw(&mut fx, &format!("/restate/awakeables/{awk}/reject"), "no way").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"error": "no way", "code": 500}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awakeables_complete_from_handlers_in_either_sdk() {
    let mut fx = Fixture::start("rust_awakeable_handlers", Sdks::Both).await;
    // A Rust awakeable resolved and rejected by a Rust handler.
    let inv = send(&mut fx, "/RustSignals/awaitAwakeable", json!("h1")).await;
    let awk = published_str(&mut fx, Sdk::Rust, "awk:h1").await;
    let r = fx.call("/RustSignals/resolve", json!({"id": awk, "value": "hi"})).await;
    assert_reply(&r, 200, json!("resolved"));
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "hi"}));
    let inv = send(&mut fx, "/RustSignals/awaitAwakeable", json!("h2")).await;
    let awk = published_str(&mut fx, Sdk::Rust, "awk:h2").await;
    let r = fx.call("/RustSignals/reject", json!({"id": awk, "reason": "denied"})).await;
    assert_reply(&r, 200, json!("rejected"));
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"error": "denied", "code": 500}));

    // Across SDKs: a Rust awakeable resolved by a TS handler, a TS one by a Rust handler.
    let inv = send(&mut fx, "/RustSignals/awaitAwakeable", json!("x1")).await;
    let awk = published_str(&mut fx, Sdk::Rust, "awk:x1").await;
    let r = fx.call("/Signals/resolve", json!({"id": awk, "value": "from ts"})).await;
    assert_reply(&r, 200, json!("resolved"));
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "from ts"}));
    let inv = send(&mut fx, "/Signals/awaitAwakeable", json!("x2")).await;
    let awk = published_str(&mut fx, Sdk::Ts, "awk:x2").await;
    let r = fx.call("/RustSignals/resolve", json!({"id": awk, "value": "from rust"})).await;
    assert_reply(&r, 200, json!("resolved"));
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "from rust"}));
    assert_eq!(fx.stat(Sdk::Rust, "awk-done:x1").await, 1);
    assert_eq!(fx.stat(Sdk::Ts, "awk-done:x2").await, 1);
}

// ---------------------------------------------------------------------------------------------
// Idempotency keys, attach
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_idempotent_calls_run_once_and_answer_alike() {
    let mut fx = Fixture::start("rust_idempotency", Sdks::Rust).await;
    let url = fx.ingress_url("/RustSignals/idemOnce");
    let h = [("content-type", "application/json"), ("idempotency-key", "key-1")];
    let body = || Some(Bytes::from_static(b"\"a\""));
    let first = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_reply(&first, 200, json!({"tag": "a", "n": 1}));
    let id = first.invocation_id();
    let again = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_reply(&again, 200, json!({"tag": "a", "n": 1}));
    assert_eq!(again.invocation_id(), id);
    let send_url = fx.ingress_url("/RustSignals/idemOnce/send");
    let r = fx.request("POST", &send_url, body(), &h, Duration::from_secs(10)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({"invocationId": id, "status": "PreviouslyAccepted"}));
    let r = fx.ingress("GET", "/restate/invocation/RustSignals/idemOnce/key-1/attach", None).await;
    assert_reply(&r, 200, json!({"tag": "a", "n": 1}));
    assert_eq!(fx.stat(Sdk::Rust, "idem:a").await, 1);
    // Another key is another invocation.
    let h2 = [("content-type", "application/json"), ("idempotency-key", "key-2")];
    let r = fx.request("POST", &url, body(), &h2, Duration::from_secs(10)).await;
    assert_reply(&r, 200, json!({"tag": "a", "n": 2}));
    assert_ne!(r.invocation_id(), id);

    // From a Rust handler: two calls with one key run once and answer alike.
    let r = fx.call("/RustSignals/callTwice", json!("h")).await;
    assert_reply(&r, 200, json!([{"tag": "h", "n": 1}, {"tag": "h", "n": 1}]));
    assert_eq!(fx.stat(Sdk::Rust, "idem:h").await, 1);
    // The handler's key is the same invocation for the ingress.
    let r = fx.ingress("GET", "/restate/invocation/RustSignals/idemOnce/k-h/output", None).await;
    assert_reply(&r, 200, json!({"tag": "h", "n": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_handler_attaches_by_invocation_id() {
    let mut fx = Fixture::start("rust_attach", Sdks::Rust).await;
    // Finished: the result at once.
    let done = fx.call("/RustGreeter/greet", json!("Ada")).await.invocation_id();
    let r = fx.call("/RustSignals/attachTo", json!(done)).await;
    assert_reply(&r, 200, json!({"value": "Hello Ada!"}));
    // Failed: the terminal error with its code.
    let failed = fx.ingress("POST", "/RustGreeter/fail", None).await.invocation_id();
    let r = fx.call("/RustSignals/attachTo", json!(failed)).await;
    assert_reply(&r, 200, json!({"error": "bad input", "code": 418}));
    // Running: the attach waits for the end.
    let later = send(&mut fx, "/RustSignals/sleep", json!({"ms": 1000, "tag": "at"})).await;
    let start = Instant::now();
    let r = fx.call("/RustSignals/attachTo", json!(later)).await;
    assert_reply(&r, 200, json!({"value": "slept 1000 ms"}));
    assert_eq!(fx.stat(Sdk::Rust, "sleep-after:at").await, 1, "attach answered before the end");
    assert!(start.elapsed() < Duration::from_secs(10), "attach took {:?}", start.elapsed());
    // Unknown: 404.
    let unknown = "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw";
    let r = fx.call("/RustSignals/attachTo", json!(unknown)).await;
    assert_reply(&r, 200, json!({"error": "not found", "code": 404}));
}

// ---------------------------------------------------------------------------------------------
// Delayed sends, cancel
// ---------------------------------------------------------------------------------------------

/// Waits for the one execution of `RustTally/<key>/hit` and returns its wall-clock time (ms).
async fn tally_hit_at(fx: &mut Fixture, key: &str) -> u64 {
    let deadline = Deadline::after(Duration::from_secs(30), &format!("RustTally/{key} to run"));
    while fx.stat(Sdk::Rust, &format!("hit:{key}")).await == 0 {
        deadline.tick().await;
    }
    published(fx, Sdk::Rust, &format!("hit-at:{key}")).await.as_u64().expect("hit-at is ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_sends_to_rust_handlers_run_once_after_their_delay() {
    let mut fx = Fixture::start("rust_delayed_send", Sdks::Rust).await;
    const DELAY_MS: u64 = 1500;
    // From a Rust handler (send_after) and from the ingress (?delay=).
    let t0 = unix_ms();
    let r = fx.call("/RustSignals/sendLater", json!({"key": "h", "ms": DELAY_MS})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let from_handler = r.json().as_str().expect("an invocation id").to_string();
    assert!(from_handler.starts_with("inv_1"), "{from_handler}");
    let t1 = unix_ms();
    let r = fx.call("/RustTally/i/hit/send?delay=1500ms", json!("ingress")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let from_ingress = r.json()["invocationId"].as_str().unwrap().to_string();
    // Not yet.
    let r = fx.ingress("GET", &format!("/restate/invocation/{from_handler}/output"), None).await;
    assert_eq!(r.status, 470, "{}", r.text());
    assert_reply(&fx.ingress("GET", "/RustTally/h/get", None).await, 200, json!(0));

    for (key, sent_at, id, source) in
        [("h", t0, &from_handler, "rust"), ("i", t1, &from_ingress, "ingress")]
    {
        let at = tally_hit_at(&mut fx, key).await;
        assert!(at >= sent_at + DELAY_MS, "{key} ran {} ms after the send", at - sent_at);
        assert!(at <= sent_at + DELAY_MS + 10_000, "{key} ran {} ms after the send", at - sent_at);
        assert_reply(&attach(&mut fx, id).await, 200, json!(1));
        assert_eq!(fx.stats(Sdk::Rust).await[format!("hit-from:{key}")], json!(source));
    }
    // Give a duplicate execution the chance to show itself.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for key in ["h", "i"] {
        assert_eq!(fx.stat(Sdk::Rust, &format!("hit:{key}")).await, 1, "{key}");
        let r = fx.ingress("GET", &format!("/RustTally/{key}/get"), None).await;
        assert_reply(&r, 200, json!(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_a_sleeping_rust_handler_as_a_terminal_409() {
    let mut fx = Fixture::start("rust_cancel", Sdks::Rust).await;
    for (tag, from_handler) in [("c1", false), ("c2", true)] {
        let inv = send(&mut fx, "/RustSignals/sleep", json!({"ms": 600_000, "tag": tag})).await;
        let deadline = Deadline::after(Duration::from_secs(20), "the sleeper to start");
        while fx.stat(Sdk::Rust, &format!("sleep-before:{tag}")).await == 0 {
            deadline.tick().await;
        }
        // The effect before the sleep ran; give the sleep a moment to be recorded, so that the
        // cancel normally meets the handler waiting on it (it holds wherever it lands).
        tokio::time::sleep(Duration::from_millis(300)).await;
        if from_handler {
            let r = fx.call("/RustSignals/cancelIt", json!(inv)).await;
            assert_reply(&r, 200, json!("cancelled"));
        } else {
            let r = fx.admin("PATCH", &format!("/invocations/{inv}/cancel"), None).await;
            assert_eq!(r.status, 202, "{}", r.text());
        }
        let got = attach(&mut fx, &inv).await;
        assert_eq!(got.status, 409, "{tag}: {}", got.text());
        assert_eq!(got.json()["source"], "invocation", "{tag}");
        // The handler saw the cancellation as a terminal error with code 409, once.
        let stats = fx.stats(Sdk::Rust).await;
        assert_eq!(stats[format!("sleep-cancelled:{tag}")], 1, "{tag}: {stats}");
        assert_eq!(stats[format!("cancel-code:{tag}")], 409, "{tag}: {stats}");
        assert!(stats.get(format!("sleep-after:{tag}")).is_none(), "{tag} went on: {stats}");
    }
}

// ---------------------------------------------------------------------------------------------
// Calls across SDKs
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_typescript_handlers_call_each_other() {
    let mut fx = Fixture::start("rust_ts_calls", Sdks::Both).await;
    // Rust → TypeScript: a service, a terminal error, a virtual object.
    let r = fx.call("/RustSignals/callTs", json!("Bo")).await;
    assert_reply(&r, 200, json!("ts said: Hello Bo!"));
    let r = fx.ingress("POST", "/RustSignals/callTsFail", None).await;
    assert_reply(&r, 200, json!({"error": "bad input", "code": 418}));
    assert_reply(&fx.call("/RustSignals/addTs", json!({"key": "x", "n": 3})).await, 200, json!(3));
    assert_reply(&fx.call("/RustSignals/addTs", json!({"key": "x", "n": 4})).await, 200, json!(7));
    assert_reply(&fx.ingress("GET", "/Counter/x/get", None).await, 200, json!(7));
    // TypeScript → Rust.
    assert_reply(&fx.call("/Signals/callRust", json!("Cy")).await, 200, json!("Hello Cy!"));
    let r = fx.ingress("POST", "/Signals/callRustFail", None).await;
    assert_reply(&r, 200, json!({"error": "bad input", "code": 418}));
    assert_reply(&fx.call("/Signals/addRust", json!({"key": "y", "n": 4})).await, 200, json!(4));
    assert_reply(&fx.call("/Signals/addRust", json!({"key": "y", "n": 1})).await, 200, json!(5));
    assert_reply(&fx.ingress("GET", "/RustCounter/y/get", None).await, 200, json!(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_kill_reach_across_sdks_to_the_called_child() {
    let mut fx = Fixture::start("rust_ts_cancel", Sdks::Both).await;
    // Cancel: the Rust parent's SDK passes the cancellation on to the TS child it waits for.
    let parent =
        send(&mut fx, "/RustSignals/callSleepTs", json!({"ms": 600_000, "tag": "c"})).await;
    let child = published_str(&mut fx, Sdk::Rust, "child:c").await;
    let deadline = Deadline::after(Duration::from_secs(20), "the TS child to start");
    while fx.stat(Sdk::Ts, "sleep-before:c").await == 0 {
        deadline.tick().await;
    }
    let r = fx.admin("PATCH", &format!("/invocations/{parent}/cancel"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    for id in [&parent, &child] {
        let got = attach(&mut fx, id).await;
        assert_eq!(got.status, 409, "{id}: {}", got.text());
    }
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:c").await, 0, "the child went on after cancel");

    // Kill: the server ends the whole tree.
    let parent =
        send(&mut fx, "/RustSignals/callSleepTs", json!({"ms": 600_000, "tag": "k"})).await;
    let child = published_str(&mut fx, Sdk::Rust, "child:k").await;
    let deadline = Deadline::after(Duration::from_secs(20), "the TS child to start");
    while fx.stat(Sdk::Ts, "sleep-before:k").await == 0 {
        deadline.tick().await;
    }
    let r = fx.admin("PATCH", &format!("/invocations/{parent}/kill"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for id in [&parent, &child] {
        let got = attach(&mut fx, id).await;
        assert_eq!(got.status, 409, "{id}: {}", got.text());
        assert_eq!(got.json()["message"], "killed", "{id}");
    }
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:k").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_rust_handler_resumes_for_its_timer_and_for_a_cancel() {
    // The server suspends an invocation whose stream stays idle for 300 ms.
    let env =
        vec![("RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT".to_string(), "300ms".to_string())];
    let o = support::FixtureOptions { env, ..support::FixtureOptions::default() };
    let mut fx = Fixture::start_with("rust_suspended", Sdks::Rust, o).await;
    // A 2 s sleep: suspended on the way, resumed by the timer, the effect after it once.
    let slept = send(&mut fx, "/RustSignals/sleep", json!({"ms": 2000, "tag": "t"})).await;
    // A long sleep, suspended, then cancelled: the cancel brings it back to fail with 409.
    let inv = send(&mut fx, "/RustSignals/sleep", json!({"ms": 600_000, "tag": "c"})).await;
    let deadline = Deadline::after(Duration::from_secs(20), "the sleepers to start");
    while fx.stat(Sdk::Rust, "sleep-before:c").await == 0 {
        deadline.tick().await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(fx.stat(Sdk::Rust, "sleep-attempt:c").await, 1, "no new attempt while it sleeps");
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/cancel"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = attach(&mut fx, &inv).await;
    assert_eq!(got.status, 409, "{}", got.text());
    let stats = fx.stats(Sdk::Rust).await;
    assert_eq!(stats["sleep-cancelled:c"], 1, "{stats}");
    assert_eq!(stats["cancel-code:c"], 409, "{stats}");
    assert_eq!(stats["sleep-attempt:c"], 2, "the cancel resumed it once: {stats}");

    assert_reply(&attach(&mut fx, &slept).await, 200, json!("slept 2000 ms"));
    let stats = fx.stats(Sdk::Rust).await;
    assert_eq!(stats["sleep-after:t"], 1, "{stats}");
    assert_eq!(stats["sleep-attempt:t"], 2, "suspended once, resumed once: {stats}");
}

// ---------------------------------------------------------------------------------------------
// Handler options from the Rust SDK's manifest
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_handler_options_set_retries_ingress_privacy_and_workflow_retention() {
    let env = vec![("RESTATE_WORKER__CLEANUP_INTERVAL".to_string(), "200ms".to_string())];
    let o = support::FixtureOptions { env, ..support::FixtureOptions::default() };
    let mut fx = Fixture::start_with("rust_options", Sdks::Rust, o).await;
    // `work`: two attempts, then paused until resumed.
    let inv = send(&mut fx, "/RustFlaky/work", json!("p")).await;
    let deadline = Deadline::after(Duration::from_secs(20), "two attempts");
    while fx.stat(Sdk::Rust, "attempts:p").await < 2 {
        deadline.tick().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fx.stat(Sdk::Rust, "attempts:p").await, 2, "paused: no third attempt");
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/output"), None).await;
    assert_eq!(r.status, 470, "{}", r.text());
    assert_reply(&fx.call("/RustFlaky/allow", json!("p")).await, 200, json!("allowed"));
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/resume"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!("done after 3 attempts"));

    // `workOrKill`: three attempts, then it fails for good.
    let r = fx.call("/RustFlaky/workOrKill", json!("k")).await;
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.starts_with("invocation failed after 3 attempts"), "{msg}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fx.stat(Sdk::Rust, "attempts:k").await, 3);

    // `hidden` is private to the ingress, not to handlers.
    let r = fx.call("/RustFlaky/hidden", json!("x")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_reply(&fx.call("/RustFlaky/callHidden", json!("x")).await, 200, json!("hidden x"));

    // RustBrief keeps a completed workflow for 1 s: then its result and state are gone and
    // the key runs a new workflow.
    let r = fx.call("/RustBrief/b/run", json!("one")).await;
    assert_reply(&r, 200, json!("one #1"));
    let done = Instant::now();
    let r = fx.ingress("GET", "/restate/workflow/RustBrief/b/output", None).await;
    assert_reply(&r, 200, json!("one #1"));
    assert_reply(&fx.ingress("POST", "/RustBrief/b/status", None).await, 200, json!("ran one"));
    let deadline = Deadline::after(Duration::from_secs(10), "the workflow retention to pass");
    while fx.ingress("GET", "/restate/workflow/RustBrief/b/output", None).await.status != 404 {
        deadline.tick().await;
    }
    assert!(done.elapsed() >= Duration::from_millis(900), "purged after {:?}", done.elapsed());
    assert_reply(&fx.ingress("POST", "/RustBrief/b/status", None).await, 200, json!("none"));
    assert_reply(&fx.call("/RustBrief/b/run", json!("two")).await, 200, json!("two #2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awakeable_raced_against_a_timer_in_rust_takes_the_first() {
    let mut fx = Fixture::start("rust_select", Sdks::Rust).await;
    // The timer first: the awakeable's later completion is accepted and changes nothing.
    let r = fx.call("/RustSignals/awaitWithTimeout", json!({"ms": 300, "tag": "t1"})).await;
    assert_reply(&r, 200, json!({"error": "timeout", "code": 408}));
    let inv = r.invocation_id();
    let awk = published_str(&mut fx, Sdk::Rust, "awk:t1").await;
    let r = post_raw(&mut fx, &format!("/restate/awakeables/{awk}/resolve"), "\"late\"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/output"), None).await;
    assert_reply(&r, 200, json!({"error": "timeout", "code": 408}));
    // The awakeable first (the timer is long enough for a slow machine to resolve it first):
    // the timer, still armed, changes nothing when it fires.
    let inv =
        send(&mut fx, "/RustSignals/awaitWithTimeout", json!({"ms": 3000, "tag": "t2"})).await;
    let awk = published_str(&mut fx, Sdk::Rust, "awk:t2").await;
    let r = post_raw(&mut fx, &format!("/restate/awakeables/{awk}/resolve"), "\"in time\"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "in time"}));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/output"), None).await;
    assert_reply(&r, 200, json!({"value": "in time"}));
    let stats = fx.stats(Sdk::Rust).await;
    assert_eq!(stats["awk-done:t1"], 1, "{stats}");
    assert_eq!(stats["awk-done:t2"], 1, "{stats}");
}
