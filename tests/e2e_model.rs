//! End-to-end tests of the programming model beyond calls and state, with the real
//! TypeScript SDK: awakeables (completed from handlers and from the ingress), named signals,
//! cancel and kill (from the admin API and from handlers), attach and get-output (from
//! handlers and from the ingress), and their durability across a SIGKILL.
//!
//! Goal: what a Restate user observes holds on Ratchet — the first completion of an
//! awakeable wins and later ones are accepted and ignored; cancel reaches a running handler as
//! a terminal 409 and ends a queued one at once; kill ends the whole call tree without running
//! handler code; attach waits for the result, output answers 470 while there is none; bad ids
//! are 400 and unknown invocations 404; a waiting invocation survives a crash and completes
//! exactly once.
//!
//! Method: each test starts a fresh fixture (`tests/support`) with the TS test service, whose
//! `Signals` service publishes the ids a test needs (awakeable ids, its own invocation id,
//! its child's id) into the service's stats map. Every wait has a deadline.

mod support;

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use support::{assert_reply, attach, post_raw, send, Deadline, Fixture, FixtureOptions, Sdk, Sdks};

/// Waits until the TS service published `name` and returns it.
async fn published(fx: &mut Fixture, name: &str) -> String {
    let deadline = Deadline::after(Duration::from_secs(20), &format!("`{name}` to be published"));
    loop {
        if let Some(v) = fx.stats(Sdk::Ts).await[name].as_str() {
            return v.to_string();
        }
        deadline.tick().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Awakeables and signals
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awakeables_complete_from_the_ingress_once() {
    let mut fx = Fixture::start("awakeable_ingress", Sdks::Ts).await;
    let inv = send(&mut fx, "/Signals/awaitAwakeable", json!("a")).await;
    let awk = published(&mut fx, "awk:a").await;
    assert!(awk.starts_with("sign_1") && awk.len() == 44, "{awk}");

    // Output while it waits: 470.
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/output"), None).await;
    assert_eq!(r.status, 470, "{}", r.text());
    assert_eq!(r.json()["message"], "the invocation exists but has not completed yet");

    let r = post_raw(&mut fx, &format!("/restate/a/{awk}/resolve"), "\"first\"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "first"}));
    // A completion after the invocation ended is accepted and ignored (the first-completion
    // rule for a waiting invocation is pinned in tests/fsm.rs and the simulator).
    let r = post_raw(&mut fx, &format!("/restate/awakeables/{awk}/resolve"), "\"second\"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = fx.ingress("GET", &format!("/restate/output/{inv}"), None).await;
    assert_reply(&r, 200, json!({"value": "first"}));
    assert_eq!(fx.stat(Sdk::Ts, "awk-done:a").await, 1);

    // Reject from the ingress: the body is the message, the code 500.
    let inv = send(&mut fx, "/Signals/awaitAwakeable", json!("b")).await;
    let awk = published(&mut fx, "awk:b").await;
    let r = post_raw(&mut fx, &format!("/restate/awakeables/{awk}/reject"), "no way").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"error": "no way", "code": 500}));

    // Bad input: a malformed id, and a well-formed one whose index is a built-in signal (1 is
    // cancel), not an awakeable.
    let cancel_id = ratchet::protocol::ids::AwakeableId {
        invocation_id: inv.parse().unwrap(),
        signal_index: 1,
    }
    .to_string();
    let r = post_raw(&mut fx, &format!("/restate/a/{cancel_id}/resolve"), "1").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not an awakeable"), "{}", r.text());
    let r = post_raw(&mut fx, "/restate/a/sign_1garbage/resolve", "1").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("bad awakeable id"), "{}", r.text());
    let r = fx.ingress("GET", &format!("/restate/a/{awk}/resolve"), None).await;
    assert_eq!(r.status, 405, "{}", r.text());
    let r = fx.ingress("GET", "/restate/invocation/inv_1nope/output", None).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awakeables_and_signals_complete_from_handlers() {
    let mut fx = Fixture::start("awakeable_handlers", Sdks::Ts).await;
    let inv = send(&mut fx, "/Signals/awaitAwakeable", json!("h1")).await;
    let awk = published(&mut fx, "awk:h1").await;
    let r = fx.call("/Signals/resolve", json!({"id": awk, "value": {"n": 7}})).await;
    assert_reply(&r, 200, json!("resolved"));
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": {"n": 7}}));

    let inv = send(&mut fx, "/Signals/awaitAwakeable", json!("h2")).await;
    let awk = published(&mut fx, "awk:h2").await;
    let r = fx.call("/Signals/reject", json!({"id": awk, "reason": "denied"})).await;
    assert_reply(&r, 200, json!("rejected"));
    let got = attach(&mut fx, &inv).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["error"], "denied");

    // A named signal sent to an invocation by id.
    let inv = send(&mut fx, "/Signals/awaitSignal", json!("s1")).await;
    let own = published(&mut fx, "sig:s1").await;
    assert_eq!(own, inv);
    let r = fx.call("/Signals/sendSignal", json!({"id": inv, "value": "go!"})).await;
    assert_reply(&r, 200, json!("sent"));
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "go!"}));

    // A handler completing a malformed awakeable id fails with a terminal 400, at once.
    let r = fx.call("/Signals/resolve", json!({"id": "sign_1bad", "value": 1})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("RA1007"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_awakeable_survives_a_crash_and_completes_once() {
    let mut fx = Fixture::start("awakeable_sigkill", Sdks::Ts).await;
    let inv = send(&mut fx, "/Signals/awaitAwakeable", json!("k")).await;
    let awk = published(&mut fx, "awk:k").await;
    fx.kill9_server();
    fx.restart_server().await;
    let r = post_raw(&mut fx, &format!("/restate/a/{awk}/resolve"), "\"after\"").await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!({"value": "after"}));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fx.stat(Sdk::Ts, "awk-done:k").await, 1);
}

// ---------------------------------------------------------------------------------------------
// Cancel and kill
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_handler_or_ends_a_queued_invocation() {
    let mut fx = Fixture::start("cancel", Sdks::Ts).await;
    let inv = send(&mut fx, "/Sleeper/sleep", json!({"ms": 600_000, "tag": "c"})).await;
    let deadline = Deadline::after(Duration::from_secs(20), "the sleeper to start");
    while fx.stat(Sdk::Ts, "sleep-before:c").await == 0 {
        deadline.tick().await;
    }
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/cancel"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let got = attach(&mut fx, &inv).await;
    assert_eq!(got.status, 409, "{}", got.text());
    assert_eq!(got.json()["source"], "invocation");
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:c").await, 0, "the handler went on after cancel");
    // Completed: cancel and kill are conflicts; purge forgets it.
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/cancel"), None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/kill"), None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/purge"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Deadline::after(Duration::from_secs(10), "the purge to apply");
    loop {
        let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/output"), None).await;
        if r.status == 404 {
            break;
        }
        deadline.tick().await;
    }

    // A delayed send is cancelled at once (200) and never runs.
    let r = fx.call("/Sleeper/sleep/send?delay=1h", json!({"ms": 1, "tag": "late"})).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let late = r.json()["invocationId"].as_str().unwrap().to_string();
    let r = fx.admin("PATCH", &format!("/invocations/{late}/cancel"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = attach(&mut fx, &late).await;
    assert_eq!(got.status, 409, "{}", got.text());
    assert_eq!(got.json()["message"], "canceled");
    assert_eq!(fx.stat(Sdk::Ts, "sleep-attempt:late").await, 0, "a cancelled send ran");

    // Cancel from a handler, through the deprecated DELETE form as well.
    let a = send(&mut fx, "/Sleeper/sleep", json!({"ms": 600_000, "tag": "c2"})).await;
    let r = fx.call("/Signals/cancelIt", json!(a)).await;
    assert_reply(&r, 200, json!("cancelled"));
    assert_eq!(attach(&mut fx, &a).await.status, 409);
    let b = send(&mut fx, "/Sleeper/sleep", json!({"ms": 600_000, "tag": "c3"})).await;
    let r = fx.admin("DELETE", &format!("/invocations/{b}?mode=cancel"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(attach(&mut fx, &b).await.status, 409);

    // Bad input.
    let r = fx.admin("PATCH", "/invocations/inv_1nope/cancel", None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let unknown = "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw";
    let r = fx.admin("PATCH", &format!("/invocations/{unknown}/kill"), None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = fx.admin("DELETE", &format!("/invocations/{b}?mode=maybe"), None).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_the_call_tree_without_running_handler_code() {
    let mut fx = Fixture::start("kill", Sdks::Ts).await;
    let parent = send(&mut fx, "/Signals/callSleep", json!({"ms": 600_000, "tag": "k"})).await;
    let child = published(&mut fx, "child:k").await;
    let deadline = Deadline::after(Duration::from_secs(20), "the child to start");
    while fx.stat(Sdk::Ts, "sleep-before:k").await == 0 {
        deadline.tick().await;
    }
    let r = fx.admin("PATCH", &format!("/invocations/{parent}/kill"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for id in [&parent, &child] {
        let got = attach(&mut fx, id).await;
        assert_eq!(got.status, 409, "{}", got.text());
        assert_eq!(got.json()["message"], "killed", "{id}");
    }
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:k").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Attach and output
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_and_output_from_handlers_and_the_ingress() {
    let mut fx = Fixture::start("attach", Sdks::Ts).await;
    let r = fx.call("/Greeter/greet", json!("Ada")).await;
    let done = r.invocation_id();
    let r = fx.ingress("GET", &format!("/restate/invocation/{done}/output"), None).await;
    assert_reply(&r, 200, json!("Hello Ada!"));
    assert_eq!(r.header("x-restate-id"), Some(done.as_str()));
    // From a handler: attach to a finished invocation, and to one that finishes later.
    assert_reply(
        &fx.call("/Signals/attachTo", json!(done)).await,
        200,
        json!({"value": "Hello Ada!"}),
    );
    let later = send(&mut fx, "/Sleeper/sleep", json!({"ms": 300, "tag": "at"})).await;
    let r = fx.call("/Signals/attachTo", json!(later)).await;
    assert_reply(&r, 200, json!({"value": "slept 300 ms"}));
    // Unknown invocations: 404 from attach (an invocation failure), from output (ingress).
    let unknown = "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw";
    let r = attach(&mut fx, unknown).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = fx.ingress("GET", &format!("/restate/output/{unknown}"), None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["source"], "ingress");
    let r = fx.call("/Signals/attachTo", json!(unknown)).await;
    assert_reply(&r, 200, json!({"error": "not found", "code": 404}));
    let r = fx.ingress("POST", &format!("/restate/invocation/{done}/attach"), None).await;
    assert_eq!(r.status, 405, "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// Workflows and durable promises
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_once_and_its_promise_completes_once() {
    let mut fx = Fixture::start("workflow", Sdks::Ts).await;
    let r = fx.call("/Approval/w1/run/send", json!("req-1")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "Accepted");
    let id = r.json()["invocationId"].as_str().unwrap().to_string();
    // A second submission is the same workflow.
    let r = fx.call("/Approval/w1/run/send", json!("req-2")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({"invocationId": id, "status": "PreviouslyAccepted"}));
    let r = fx.call("/Approval/w1/run", json!("req-3")).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["message"], "the workflow method was already invoked");

    let r = fx.ingress("GET", "/restate/workflow/Approval/w1/output", None).await;
    assert_eq!(r.status, 470, "{}", r.text());
    let deadline = Deadline::after(Duration::from_secs(20), "the workflow to wait");
    while fx.call("/Approval/w1/status", json!(null)).await.json() != json!("waiting") {
        deadline.tick().await;
    }
    assert_reply(&fx.call("/Approval/w1/peek", json!(null)).await, 200, json!(null));
    assert_reply(&fx.call("/Approval/w1/approve", json!("yes")).await, 200, json!("approved"));
    // Completing twice: the handler sees 409.
    let r = fx.call("/Approval/w1/approve", json!("again")).await;
    assert_reply(&r, 200, json!({"error": "promise was already completed", "code": 409}));
    assert_reply(&fx.call("/Approval/w1/peek", json!(null)).await, 200, json!("yes"));

    let want = json!({"input": "req-1", "decision": {"value": "yes"}});
    let r = fx.ingress("GET", "/restate/workflow/Approval/w1/attach", None).await;
    assert_reply(&r, 200, want.clone());
    assert_eq!(r.header("x-restate-id"), Some(id.as_str()));
    assert_reply(&fx.ingress("GET", "/restate/workflow/Approval/w1/output", None).await, 200, want);
    assert_eq!(fx.stat(Sdk::Ts, "wf-run:w1").await, 1);
    // After completion: a send is still PreviouslyAccepted, a call still 409.
    let r = fx.call("/Approval/w1/run/send", json!("req-4")).await;
    assert_eq!(r.json()["status"], "PreviouslyAccepted");
    assert_eq!(fx.call("/Approval/w1/run", json!("req-5")).await.status, 409);
    // Unknown workflow key: 404.
    let r = fx.ingress("GET", "/restate/workflow/Approval/nope/output", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // Idempotency keys are refused on workflow run handlers.
    let url = fx.ingress_url("/Approval/w2/run");
    let h = [("content-type", "application/json"), ("idempotency-key", "x")];
    let r =
        fx.request("POST", &url, Some(Bytes::from_static(b"1")), &h, Duration::from_secs(10)).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_waiting_on_its_promise_survives_a_crash() {
    let mut fx = Fixture::start("workflow_sigkill", Sdks::Ts).await;
    assert_eq!(fx.call("/Approval/k/run/send", json!("r")).await.status, 202);
    let deadline = Deadline::after(Duration::from_secs(20), "the workflow to wait");
    while fx.call("/Approval/k/status", json!(null)).await.json() != json!("waiting") {
        deadline.tick().await;
    }
    fx.kill9_server();
    fx.restart_server().await;
    assert_reply(&fx.call("/Approval/k/deny", json!("nope")).await, 200, json!("denied"));
    let r = fx.ingress("GET", "/restate/workflow/Approval/k/attach", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["decision"]["error"], "nope");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fx.stat(Sdk::Ts, "wf-after:k").await, 1);
}

// ---------------------------------------------------------------------------------------------
// Idempotency keys
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_run_once_and_answer_alike() {
    let mut fx = Fixture::start("idempotency", Sdks::Ts).await;
    let url = fx.ingress_url("/Idem/once");
    let h = [("content-type", "application/json"), ("idempotency-key", "key-1")];
    let body = || Some(Bytes::from_static(b"\"a\""));
    let first = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_reply(&first, 200, json!({"tag": "a", "n": 1}));
    assert!(first.header("idempotency-expires").is_none());
    let id = first.invocation_id();
    let again = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_reply(&again, 200, json!({"tag": "a", "n": 1}));
    assert_eq!(again.invocation_id(), id);
    assert!(again.header("idempotency-expires").unwrap().ends_with("+00:00"), "{again:?}");
    let send_url = fx.ingress_url("/Idem/once/send");
    let r = fx.request("POST", &send_url, body(), &h, Duration::from_secs(10)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({"invocationId": id, "status": "PreviouslyAccepted"}));
    assert_eq!(fx.stat(Sdk::Ts, "idem:a").await, 1);
    // Attach and output by service, handler and idempotency key.
    let r = fx.ingress("GET", "/restate/invocation/Idem/once/key-1/output", None).await;
    assert_reply(&r, 200, json!({"tag": "a", "n": 1}));
    let r = fx.ingress("GET", "/restate/invocation/Idem/once/key-2/output", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // Another key is another invocation.
    let h2 = [("content-type", "application/json"), ("idempotency-key", "key-2")];
    let r = fx.request("POST", &url, body(), &h2, Duration::from_secs(10)).await;
    assert_reply(&r, 200, json!({"tag": "a", "n": 2}));
    assert_ne!(r.invocation_id(), id);
    // From a handler: two calls with one key run once.
    let r = fx.call("/Idem/callTwice", json!("h")).await;
    assert_reply(&r, 200, json!([{"tag": "h", "n": 1}, {"tag": "h", "n": 1}]));
    assert_eq!(fx.stat(Sdk::Ts, "idem:h").await, 1); // Under protocol V6 (the default, as in Restate 1.7) the handler does not see its key.
    let key_url = fx.ingress_url("/Idem/key");
    let h3 = [("content-type", "application/json"), ("idempotency-key", "seen-0")];
    let r = fx.request("POST", &key_url, None, &h3, Duration::from_secs(10)).await;
    assert_reply(&r, 200, json!(null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_protocol_v7_a_handler_sees_its_idempotency_key() {
    let env = vec![("RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7".to_string(), "true".to_string())];
    let o = FixtureOptions { env, ..FixtureOptions::default() };
    let mut fx = Fixture::start_with("idempotency_v7", Sdks::Ts, o).await;
    let key_url = fx.ingress_url("/Idem/key");
    let h = [("content-type", "application/json"), ("idempotency-key", "seen-1")];
    let r = fx.request("POST", &key_url, None, &h, Duration::from_secs(10)).await;
    assert_reply(&r, 200, json!("seen-1"));
    // From a handler's call, and none without a key.
    assert_reply(&fx.call("/Idem/callKey", json!("seen-2")).await, 200, json!("seen-2"));
    let r = fx.request("POST", &key_url, None, &[], Duration::from_secs(10)).await;
    assert_reply(&r, 200, json!(null));
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_invocations_are_kept_for_their_retention_then_purged() {
    let env = vec![("RESTATE_WORKER__CLEANUP_INTERVAL".to_string(), "200ms".to_string())];
    let o = FixtureOptions { env, ..FixtureOptions::default() };
    let mut fx = Fixture::start_with("retention", Sdks::Ts, o).await;
    // Brief keeps completions for 1 s (journalRetention and idempotencyRetention).
    let r = fx.call("/Brief/once", json!("a")).await;
    assert_reply(&r, 200, json!({"tag": "a", "n": 1}));
    let id = r.invocation_id();
    let url = fx.ingress_url("/Brief/once");
    let h = [("content-type", "application/json"), ("idempotency-key", "r1")];
    let body = || Some(Bytes::from_static(b"\"i\""));
    let first = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_reply(&first, 200, json!({"tag": "i", "n": 1}));
    let output = format!("/restate/invocation/{id}/output");
    assert_eq!(fx.ingress("GET", &output, None).await.status, 200);
    let ik_output = "/restate/invocation/Brief/once/r1/output";
    assert_reply(&fx.ingress("GET", ik_output, None).await, 200, json!({"tag": "i", "n": 1}));
    // Greeter keeps the default 24 h.
    let g = fx.call("/Greeter/greet", json!("x")).await.invocation_id();

    // Both Brief invocations go once their retention has passed. The idempotent one completed
    // a little later, so a cleanup pass can fall between the two: wait for each.
    let deadline = Deadline::after(Duration::from_secs(10), "the retention to pass");
    for path in [output.as_str(), ik_output] {
        while fx.ingress("GET", path, None).await.status != 404 {
            deadline.tick().await;
        }
    }
    // The idempotency key is free again: a new execution.
    let again = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_reply(&again, 200, json!({"tag": "i", "n": 2}));
    let r = fx.ingress("GET", &format!("/restate/invocation/{g}/output"), None).await;
    assert_reply(&r, 200, json!("Hello x!"));
    // A restart keeps the armed retention: the new idempotent invocation goes too.
    fx.kill9_server();
    fx.restart_server().await;
    let deadline = Deadline::after(Duration::from_secs(10), "the retention to pass after restart");
    while fx.ingress("GET", ik_output, None).await.status != 404 {
        deadline.tick().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Retries, pause and resume
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_up_retries_pause_and_resume_runs_again() {
    let mut fx = Fixture::start("pause_resume", Sdks::Ts).await;
    // Flaky's own policy: 2 attempts, then pause.
    let inv = send(&mut fx, "/Flaky/work", json!("p")).await;
    let deadline = Deadline::after(Duration::from_secs(20), "two attempts");
    while fx.stat(Sdk::Ts, "attempts:p").await < 2 {
        deadline.tick().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fx.stat(Sdk::Ts, "attempts:p").await, 2, "paused: no third attempt");
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/pause"), None).await;
    assert_eq!(r.status, 200, "already paused: {}", r.text());
    assert_eq!(fx.ingress("GET", &format!("/restate/output/{inv}"), None).await.status, 470);
    // Bad input to resume.
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/resume?deployment=dp_nope"), None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Fixed (the handler now succeeds), resumed: it completes.
    assert_reply(&fx.call("/Flaky/allow", json!("p")).await, 200, json!("allowed"));
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/resume"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_reply(&attach(&mut fx, &inv).await, 200, json!("done after 3 attempts"));
    let r = fx.admin("PATCH", &format!("/invocations/{inv}/resume"), None).await;
    assert_eq!(r.status, 409, "completed: {}", r.text());

    // A running invocation paused on request, then resumed.
    let s = send(&mut fx, "/Sleeper/sleep", json!({"ms": 1500, "tag": "pz"})).await;
    let deadline = Deadline::after(Duration::from_secs(20), "the sleeper to start");
    while fx.stat(Sdk::Ts, "sleep-before:pz").await == 0 {
        deadline.tick().await;
    }
    let r = fx.admin("PATCH", &format!("/invocations/{s}/pause"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = Deadline::after(Duration::from_secs(10), "the pause to apply");
    while fx.admin("PATCH", &format!("/invocations/{s}/pause"), None).await.status != 200 {
        deadline.tick().await;
    }
    let r = fx.admin("PATCH", &format!("/invocations/{s}/resume?deployment=latest"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_reply(&attach(&mut fx, &s).await, 200, json!("slept 1500 ms"));
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:pz").await, 1);

    // Not started yet: 425.
    let r = fx.call("/Sleeper/sleep/send?delay=1h", json!({"ms": 1, "tag": "later"})).await;
    let later = r.json()["invocationId"].as_str().unwrap().to_string();
    let r = fx.admin("PATCH", &format!("/invocations/{later}/resume"), None).await;
    assert_eq!(r.status, 425, "{}", r.text());

    // The failures and pauses are journal events, kept with the completed invocations.
    fx.server.stop().await;
    let kinds = |id: &str| -> Vec<(i32, String)> {
        use ratchet::fsm::FsmRead;
        let id: ratchet::protocol::ids::InvocationId = id.parse().unwrap();
        let dir = fx.server.base_dir.join("partitions");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let store = ratchet::store::PartitionStore::open(&entry.unwrap().path()).unwrap();
            let r = store.begin_read().unwrap();
            if let Some(st) = r.status(&id).unwrap() {
                let e = r.journal_events(&id, st.events_len).unwrap();
                return e.into_iter().map(|e| (e.kind, e.message)).collect();
            }
        }
        panic!("invocation {id} not found in {}", dir.display());
    };
    let (t, p) = (1, 2); // TransientError, Paused
    let flaky = kinds(&inv);
    assert_eq!(flaky.iter().map(|e| e.0).collect::<Vec<_>>(), vec![t, t, p], "{flaky:?}");
    assert!(flaky[0].1.contains("not yet (attempt 1)"), "{flaky:?}");
    assert_eq!(kinds(&s), vec![(p, "paused on request".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_retry_policy_comes_from_the_configuration() {
    // Restate 1.7's names: the policy and the retention defaults are top-level keys.
    let env = [
        ("RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS", "3"),
        ("RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL", "10ms"),
        ("RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS", "kill"),
        ("RESTATE_DEFAULT_JOURNAL_RETENTION", "0s"),
        ("RESTATE_DEFAULT_IDEMPOTENCY_RETENTION", "1h"),
    ];
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let o = FixtureOptions { env, ..FixtureOptions::default() };
    let mut fx = Fixture::start_with("retry_config", Sdks::Ts, o).await;
    let r = fx.call("/Stubborn/work", json!("k")).await;
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("invocation failed after 3 attempts"), "{msg}");
    assert_eq!(fx.stat(Sdk::Ts, "attempts:k").await, 3);
    // No journal retention by default: a plain call's result is not kept after it completes,
    // so it cannot be read again nor restarted as new; an idempotent one's is kept (1 h).
    let g = fx.call("/Greeter/greet", json!("x")).await;
    assert_reply(&g, 200, json!("Hello x!"));
    let output = format!("/restate/invocation/{}/output", g.invocation_id());
    assert_eq!(fx.ingress("GET", &output, None).await.status, 404);
    let url = fx.ingress_url("/Greeter/greet");
    let h = [("content-type", "application/json"), ("idempotency-key", "g1")];
    let r = fx
        .request("POST", &url, Some(Bytes::from_static(b"\"y\"")), &h, Duration::from_secs(10))
        .await;
    assert_reply(&r, 200, json!("Hello y!"));
    let again = fx
        .request("POST", &url, Some(Bytes::from_static(b"\"z\"")), &h, Duration::from_secs(10))
        .await;
    assert_reply(&again, 200, json!("Hello y!"));
    assert!(again.header("idempotency-expires").is_some(), "{:?}", again.headers);
    let id = r.invocation_id();
    let output = format!("/restate/invocation/{id}/output");
    assert_reply(&fx.ingress("GET", &output, None).await, 200, json!("Hello y!"));
    let r = fx.admin("PATCH", &format!("/invocations/{id}/restart-as-new"), None).await;
    assert_eq!(r.status, 410, "its journal was not kept: {}", r.text());
    // The service descriptor reports the server's defaults.
    let d = fx.admin("GET", "/services/Greeter", None).await.json();
    assert_eq!(d["idempotency_retention"], "1h", "{d}");
    assert!(d.get("journal_retention").is_none_or(|v| v.is_null()), "{d}");
}

// ---------------------------------------------------------------------------------------------
// Restart-as-new
// ---------------------------------------------------------------------------------------------

/// `PATCH /invocations/{id}/restart-as-new`, asked again while the invocation is not known yet.
async fn restart_once_known(fx: &mut Fixture, id: &str) -> support::Reply {
    let deadline = Deadline::after(Duration::from_secs(10), "the invocation to be known");
    loop {
        let r = fx.admin("PATCH", &format!("/invocations/{id}/restart-as-new"), None).await;
        if r.status != 404 {
            return r;
        }
        deadline.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_as_new_runs_again_from_a_journal_prefix() {
    let mut fx = Fixture::start("restart_as_new", Sdks::Ts).await;
    let r = fx.call("/Runner/steps", json!("t")).await;
    assert_reply(&r, 200, json!({"a": 1, "b": 1}));
    let old = r.invocation_id();
    let restart = |q: &str| format!("/invocations/{old}/restart-as-new{q}");

    // From the input only: both steps run again, under a new id.
    let r = fx.admin("PATCH", &restart(""), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["new_invocation_id"].as_str().expect("new_invocation_id").to_string();
    assert!(new.starts_with("inv_") && new != old, "{new}");
    assert_reply(&attach(&mut fx, &new).await, 200, json!({"a": 2, "b": 2}));

    // Journal: 0 input, 1 run a, 2 its result, 3 run b, 4 its result, 5 output. From entry 2
    // step `a` is replayed from the journal and only `b` runs.
    let r = fx.admin("PATCH", &restart("?from=2"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["new_invocation_id"].as_str().unwrap().to_string();
    assert_reply(&attach(&mut fx, &new).await, 200, json!({"a": 1, "b": 3}));
    assert_eq!(fx.stat(Sdk::Ts, "steps-a:t").await, 2);
    assert_eq!(fx.stat(Sdk::Ts, "steps-b:t").await, 3);
    // The restarted one can itself be restarted.
    let r = fx.admin("PATCH", &format!("/invocations/{new}/restart-as-new?from=4"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let newer = r.json()["new_invocation_id"].as_str().unwrap().to_string();
    assert_reply(&attach(&mut fx, &newer).await, 200, json!({"a": 1, "b": 3}));
    assert_eq!(fx.stat(Sdk::Ts, "steps-b:t").await, 3, "both steps came from the journal");

    // From entry 1 (step `a`'s command): its result, entry 2, is copied too; `b` runs again.
    let r = fx.admin("PATCH", &restart("?from=1"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["new_invocation_id"].as_str().unwrap().to_string();
    assert_reply(&attach(&mut fx, &new).await, 200, json!({"a": 1, "b": 4}));
    // On the same deployment (`keep`) or a named one.
    let dp = fx.ts_deployment.clone().expect("the TS deployment");
    for q in ["?from=2&deployment=keep".to_string(), format!("?from=2&deployment={dp}")] {
        let r = fx.admin("PATCH", &restart(&q), None).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let new = r.json()["new_invocation_id"].as_str().unwrap().to_string();
        let got = attach(&mut fx, &new).await;
        assert_eq!(got.status, 200, "{q}: {}", got.text());
        assert_eq!(got.json()["a"], 1, "{q}: {}", got.text());
    }
    assert_eq!(fx.stat(Sdk::Ts, "steps-b:t").await, 6);

    // Bad requests change nothing.
    let r = fx.admin("PATCH", &restart("?from=99"), None).await;
    assert_eq!(r.status, 400, "out of range: {}", r.text());
    let r = fx.admin("PATCH", &restart("?deployment=dp_nope"), None).await;
    assert_eq!(r.status, 400, "unknown deployment: {}", r.text());
    let r = fx.admin("PATCH", "/invocations/inv_nope/restart-as-new", None).await;
    assert_eq!(r.status, 400, "malformed id: {}", r.text());
    let unknown = "inv_1aiqX0vFEFNH1Umgre58JiCLgHfTtztYK5";
    let r = fx.admin("PATCH", &format!("/invocations/{unknown}/restart-as-new"), None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(fx.stat(Sdk::Ts, "steps-b:t").await, 6);
    // Still running: 409; not started: 425. (A send's 202 comes once its record is durable,
    // before it is applied: until then the invocation is unknown, 404.)
    let s = send(&mut fx, "/Sleeper/sleep", json!({"ms": 60_000, "tag": "ra"})).await;
    let r = restart_once_known(&mut fx, &s).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = fx.call("/Sleeper/sleep/send?delay=1h", json!({"ms": 1, "tag": "rb"})).await;
    let later = r.json()["invocationId"].as_str().unwrap().to_string();
    let r = restart_once_known(&mut fx, &later).await;
    assert_eq!(r.status, 425, "{}", r.text());
    // A workflow: 409 while it runs, 422 once completed.
    let wf = send(&mut fx, "/Approval/ra/run", json!("req")).await;
    let r = fx.admin("PATCH", &format!("/invocations/{wf}/restart-as-new"), None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_reply(&fx.call("/Approval/ra/approve", json!("ok")).await, 200, json!("approved"));
    assert_eq!(attach(&mut fx, &wf).await.status, 200);
    let r = fx.admin("PATCH", &format!("/invocations/{wf}/restart-as-new"), None).await;
    assert_eq!(r.status, 422, "{}", r.text());
    // Its journal not kept (journalRetention 0; the idempotent result is): 410.
    let url = fx.ingress_url("/Forgetful/once");
    let h = [("content-type", "application/json"), ("idempotency-key", "f1")];
    let body = Some(Bytes::from_static(b"\"f\""));
    let r = fx.request("POST", &url, body, &h, Duration::from_secs(10)).await;
    assert_reply(&r, 200, json!("f"));
    let f = r.invocation_id();
    let r = fx.admin("PATCH", &format!("/invocations/{f}/restart-as-new"), None).await;
    assert_eq!(r.status, 410, "{}", r.text());

    // Restarted invocations survive a crash like any other.
    let r = fx.admin("PATCH", &restart(""), None).await;
    let last = r.json()["new_invocation_id"].as_str().unwrap().to_string();
    fx.kill9_server();
    fx.restart_server().await;
    let got = attach(&mut fx, &last).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let b = got.json()["b"].as_u64().unwrap();
    assert!((7..=8).contains(&b), "{}", got.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_idempotent_invocation_starts_at_once_after_its_backing_off_life_was_killed() {
    let mut fx = Fixture::start("lives", Sdks::Ts).await;
    let url = fx.ingress_url("/Stubborn/work/send");
    let h = [("content-type", "application/json"), ("idempotency-key", "life")];
    let body = || Some(Bytes::from_static(b"\"z\""));
    let r = fx.request("POST", &url, body(), &h, Duration::from_secs(10)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["invocationId"].as_str().unwrap().to_string();
    // The server's policy backs off 0.5, 1, 2, 4 s...: after four attempts the next is seconds
    // away, queued in the invoker.
    let deadline = Deadline::after(Duration::from_secs(20), "four attempts");
    while fx.stat(Sdk::Ts, "attempts:z").await < 4 {
        deadline.tick().await;
    }
    // Let the fourth failure be applied, so the fifth attempt waits in the invoker's queue
    // (it fails at once; if it took longer the test would only get weaker, never fail).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = fx.admin("PATCH", &format!("/invocations/{id}/kill"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Deadline::after(Duration::from_secs(10), "the kill to apply");
    while fx.admin("PATCH", &format!("/invocations/{id}/purge"), None).await.status != 200 {
        deadline.tick().await;
    }
    assert_reply(&fx.call("/Stubborn/allow", json!("z")).await, 200, json!("allowed"));
    // Same key, same id, a new life: its first attempt runs now, not when the old life's
    // queued retry would have been due.
    let started = std::time::Instant::now();
    let url = fx.ingress_url("/Stubborn/work");
    let r = fx.request("POST", &url, body(), &h, Duration::from_secs(30)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.invocation_id(), id);
    assert_eq!(r.json(), json!("done after 5 attempts"));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}
