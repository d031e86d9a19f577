//! End-to-end tests of attaching to a workflow with the real TypeScript SDK: from the
//! ingress (`/restate/workflow/{name}/{key}/attach`) and from a handler, while the workflow
//! runs and after it completed, and across a SIGKILL of the server.
//!
//! Goal: an attach to a running workflow waits for its end and answers its result (with the
//! workflow's invocation id); after completion it answers at once, as often as asked; a
//! handler reaches the same workflow and result; a handler's attach that waits across a crash
//! completes after the restart.
//!
//! Method: a fresh fixture (`tests/support`) with the TS test service; the workflow is
//! `Approval` (`run` waits for the promise "approval" that the shared `approve` resolves). The
//! TS SDK 1.17 attaches from a handler by invocation id only (`ctx.invocation(id).attach()`,
//! no workflow target), so `Signals.attachWorkflow` first sends to the workflow's `run`
//! handler — de-duplicated into the existing workflow, answering its invocation id — and then
//! attaches to that id. Every wait has a deadline.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{assert_reply, send, Deadline, Fixture, Sdks};

async fn wait_waiting(fx: &mut Fixture, key: &str) {
    let deadline = Deadline::after(Duration::from_secs(20), &format!("Approval/{key} to wait"));
    let path = format!("/Approval/{key}/status");
    while fx.call(&path, json!(null)).await.json() != json!("waiting") {
        deadline.tick().await;
    }
}

/// Asserts that invocation `id` has no output yet (470), for a while.
async fn assert_still_running(fx: &mut Fixture, id: &str) {
    // A send's 202 comes once its record is durable, before it is applied: until then the
    // invocation is unknown (404).
    let deadline = Deadline::after(Duration::from_secs(10), &format!("{id} to be applied"));
    while fx.ingress("GET", &format!("/restate/invocation/{id}/output"), None).await.status == 404 {
        deadline.tick().await;
    }
    for _ in 0..3 {
        let r = fx.ingress("GET", &format!("/restate/invocation/{id}/output"), None).await;
        assert_eq!(r.status, 470, "{id}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_workflow_from_the_ingress_and_a_handler() {
    let mut fx = Fixture::start("ts_workflow_attach", Sdks::Ts).await;
    let wf = send(&mut fx, "/Approval/a/run", json!("req")).await;
    wait_waiting(&mut fx, "a").await;

    // A handler attaches while the workflow waits: it waits too.
    let attacher = send(&mut fx, "/Signals/attachWorkflow", json!("a")).await;
    assert_still_running(&mut fx, &attacher).await;
    let r = fx.ingress("GET", "/restate/workflow/Approval/a/output", None).await;
    assert_eq!(r.status, 470, "{}", r.text());

    // The ingress attaches while the workflow waits; the approval comes 500 ms later. The
    // attach must answer after the approval, with the result.
    let url = fx.ingress_url("/restate/workflow/Approval/a/attach");
    let ingress = fx.handle();
    let (attached, approved_at) = tokio::join!(
        async {
            let r = fx.try_request("GET", &url, None, &[], Duration::from_secs(30)).await;
            (r, Instant::now())
        },
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let at = Instant::now();
            let r = ingress.call("/Approval/a/approve", json!("yes")).await;
            assert_reply(&r, 200, json!("approved"));
            at
        }
    );
    let (reply, answered_at) = attached;
    let reply = reply.expect("the ingress attach");
    let want = json!({"input": "req", "decision": {"value": "yes"}});
    assert_reply(&reply, 200, want.clone());
    assert_eq!(reply.header("x-restate-id"), Some(wf.as_str()));
    assert!(answered_at > approved_at, "the attach answered before the approval");

    // The handler's attach ends with the same result, for the same invocation.
    let r = fx.ingress("GET", &format!("/restate/invocation/{attacher}/attach"), None).await;
    assert_reply(&r, 200, json!({"id": wf, "outcome": {"value": want}}));

    // After completion: at once, as often as asked, from the ingress and from a handler.
    for _ in 0..2 {
        let r = fx.ingress("GET", "/restate/workflow/Approval/a/attach", None).await;
        assert_reply(&r, 200, want.clone());
        assert_eq!(r.header("x-restate-id"), Some(wf.as_str()));
        let r = fx.call("/Signals/attachWorkflow", json!("a")).await;
        assert_reply(&r, 200, json!({"id": wf, "outcome": {"value": want}}));
    }
    let r = fx.ingress("GET", "/restate/workflow/Approval/a/output", None).await;
    assert_reply(&r, 200, want);
    // Calling `run` again from a handler is the conflict the ingress answers too.
    let r = fx.call("/Signals/callWorkflow", json!("a")).await;
    assert_reply(&r, 200, json!({"error": "the workflow method was already invoked", "code": 409}));
    // A workflow that never ran: 404.
    let r = fx.ingress("GET", "/restate/workflow/Approval/none/attach", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_waiting_on_a_workflow_survives_a_crash() {
    let mut fx = Fixture::start("ts_workflow_attach_sigkill", Sdks::Ts).await;
    let wf = send(&mut fx, "/Approval/k/run", json!("r")).await;
    wait_waiting(&mut fx, "k").await;
    let attacher = send(&mut fx, "/Signals/attachWorkflow", json!("k")).await;
    // The attacher waits (its send and attach commands take a few round trips) when the
    // server is killed.
    assert_still_running(&mut fx, &attacher).await;
    fx.kill9_server();
    fx.restart_server().await;
    assert_still_running(&mut fx, &attacher).await;
    assert_reply(&fx.call("/Approval/k/approve", json!("late")).await, 200, json!("approved"));
    let want = json!({"input": "r", "decision": {"value": "late"}});
    let r = fx.ingress("GET", &format!("/restate/invocation/{attacher}/attach"), None).await;
    assert_reply(&r, 200, json!({"id": wf, "outcome": {"value": want}}));
    let r = fx.ingress("GET", "/restate/workflow/Approval/k/attach", None).await;
    assert_reply(&r, 200, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_workflow_is_one_workflow_before_it_starts_and_across_a_crash() {
    let mut fx = Fixture::start("ts_workflow_delayed", Sdks::Ts).await;
    const DELAY: Duration = Duration::from_millis(2500);
    let sent = Instant::now();
    let r = fx.call("/Approval/d/run/send?delay=2500ms", json!("later")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "Accepted");
    let wf = r.json()["invocationId"].as_str().unwrap().to_string();
    let at = r.json()["executionTime"].clone();
    // Scheduled, not started: the same workflow (and execution time) for a send, a conflict
    // for a call, no output.
    let r = fx.call("/Approval/d/run/send", json!("again")).await;
    let want = json!({"invocationId": wf, "executionTime": at, "status": "PreviouslyAccepted"});
    assert_eq!(r.json(), want);
    let r = fx.call("/Approval/d/run", json!("again")).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = fx.ingress("GET", "/restate/workflow/Approval/d/output", None).await;
    assert_eq!(r.status, 470, "{}", r.text());
    // Its shared handlers already work; the promise may be completed before the run waits.
    assert_reply(&fx.call("/Approval/d/status", json!(null)).await, 200, json!(null));
    assert_reply(&fx.call("/Approval/d/approve", json!("early")).await, 200, json!("approved"));
    // A handler attaches to it before it starts.
    let attacher = send(&mut fx, "/Signals/attachWorkflow", json!("d")).await;

    fx.kill9_server();
    fx.restart_server().await;
    let r = fx.call("/Approval/d/run/send", json!("again")).await;
    let got = r.json();
    assert_eq!((&got["invocationId"], &got["status"]), (&json!(wf), &json!("PreviouslyAccepted")));
    // Still waiting (the same time), or started meanwhile (none).
    assert!(got.get("executionTime").is_none_or(|t| *t == at), "{got}");
    let want = json!({"input": "later", "decision": {"value": "early"}});
    let r = fx.ingress("GET", "/restate/workflow/Approval/d/attach", None).await;
    assert_reply(&r, 200, want.clone());
    assert!(sent.elapsed() >= DELAY, "the workflow ended {:?} after the send", sent.elapsed());
    let r = fx.ingress("GET", &format!("/restate/invocation/{attacher}/attach"), None).await;
    assert_reply(&r, 200, json!({"id": wf, "outcome": {"value": want}}));
    assert_eq!(fx.stat(support::Sdk::Ts, "wf-run:d").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_workflow_can_run_again_and_a_cancelled_one_sees_a_409() {
    let mut fx = Fixture::start("ts_workflow_purge", Sdks::Ts).await;
    let first = send(&mut fx, "/Approval/p/run", json!("one")).await;
    wait_waiting(&mut fx, "p").await;
    assert_reply(&fx.call("/Approval/p/approve", json!("yes")).await, 200, json!("approved"));
    let want = json!({"input": "one", "decision": {"value": "yes"}});
    let r = fx.ingress("GET", "/restate/workflow/Approval/p/attach", None).await;
    assert_reply(&r, 200, want);
    // Purged: its result, state and promise are gone; the key can run a new workflow.
    let r = fx.admin("PATCH", &format!("/invocations/{first}/purge"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Deadline::after(Duration::from_secs(10), "the purge to apply");
    while fx.ingress("GET", "/restate/workflow/Approval/p/output", None).await.status != 404 {
        deadline.tick().await;
    }
    assert_reply(&fx.call("/Approval/p/status", json!(null)).await, 200, json!(null));
    assert_reply(&fx.call("/Approval/p/peek", json!(null)).await, 200, json!(null));
    let r = fx.call("/Approval/p/run/send", json!("two")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["status"], "Accepted", "{}", r.text());
    wait_waiting(&mut fx, "p").await;
    assert_reply(&fx.call("/Approval/p/approve", json!("again")).await, 200, json!("approved"));
    let r = fx.ingress("GET", "/restate/workflow/Approval/p/attach", None).await;
    assert_reply(&r, 200, json!({"input": "two", "decision": {"value": "again"}}));
    assert_eq!(fx.stat(support::Sdk::Ts, "wf-run:p").await, 2);

    // Cancelled while it waits for its promise: the wait fails with a terminal 409, which this
    // workflow catches and returns as its decision; every attach sees that result.
    let wf = send(&mut fx, "/Approval/c/run", json!("x")).await;
    wait_waiting(&mut fx, "c").await;
    let attacher = send(&mut fx, "/Signals/attachWorkflow", json!("c")).await;
    assert_still_running(&mut fx, &attacher).await;
    let r = fx.admin("PATCH", &format!("/invocations/{wf}/cancel"), None).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let want = json!({"input": "x", "decision": {"error": "Cancelled", "code": 409}});
    let r = fx.ingress("GET", "/restate/workflow/Approval/c/attach", None).await;
    assert_reply(&r, 200, want.clone());
    let r = fx.ingress("GET", &format!("/restate/invocation/{attacher}/attach"), None).await;
    assert_reply(&r, 200, json!({"id": wf, "outcome": {"value": want}}));
    assert_eq!(fx.stat(support::Sdk::Ts, "wf-after:c").await, 1);
    // Completed: a late approval changes nothing.
    assert_reply(&fx.call("/Approval/c/approve", json!("late")).await, 200, json!("approved"));
    assert_reply(&fx.call("/Approval/c/peek", json!(null)).await, 200, json!("late"));
    let r = fx.ingress("GET", "/restate/workflow/Approval/c/output", None).await;
    assert_reply(&r, 200, want);
}
