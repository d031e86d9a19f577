//! End-to-end tests of the ingress routes Restate 1.7 added, with the real TypeScript SDK:
//! `/restate/call|send/{service}[/{key}]/{handler}`, the body-target forms
//! `POST /restate/attach|output|lookup`, the scoped `/restate/scope/{scope}/call|send/...`,
//! `/restate/invocation/...` and `/restate/workflow/...`; and what the ingress prints and
//! forwards: timestamps and the headers a handler sees.
//!
//! Goal: a client that uses the 1.7 routes sees what it sees on Restate — the same handler
//! results, the same 202 answers to sends (delayed ones scheduled, not run), object keys
//! percent-decoded, headers forwarded; attach and output through a JSON body that names the
//! invocation by id, workflow or idempotency key (470 while it runs, 404 when there is none);
//! lookup answers the id the invocation really has, without looking it up; and bad requests
//! get Restate's statuses (a body that is not a target: 500, as Restate answers; a scope: 400,
//! as Restate answers without its experimental vqueues). A delayed send's `executionTime` has
//! a nanosecond fraction, `idempotency-expires` a millisecond one; handlers see Restate's set
//! of headers (`content-length` too, the first value of a repeated one); in
//! `/restate/invocation/...` only keys are percent-decoded; wrong shapes under `/restate` get
//! Restate's 400s and 404s.
//!
//! Method: each test starts a fresh fixture (`tests/support`) with the TS test service. The
//! tests assert only what Restate answers too (checked by running them with
//! `RATCHET_E2E_SERVER` naming a `restate-server` binary), except for message texts that
//! differ in wording. Every wait has a deadline.

mod support;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use support::{assert_reply, Deadline, Fixture, Reply, Sdk, Sdks};

const TIMEOUT: Duration = Duration::from_secs(15);

/// An ingress error: its status, `source` and a message that starts with `message`.
fn assert_error(r: &Reply, status: u16, source: &str, message: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], status, "{body}");
    assert_eq!(body["source"], source, "{body}");
    assert_eq!(r.header("x-restate-error-source"), Some(source));
    let got = body["message"].as_str().expect("message");
    assert!(got.starts_with(message), "message {got:?} does not start with {message:?}");
}

/// `POST` with a raw body (no content type unless given).
async fn post(fx: &mut Fixture, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let url = fx.ingress_url(path);
    fx.request("POST", &url, Some(Bytes::from(body.to_string())), headers, TIMEOUT).await
}

/// `POST` a JSON body with extra headers.
async fn post_json(fx: &mut Fixture, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    post(fx, path, &body.to_string(), &h).await
}

/// A 202 answer to a send: its invocation id (also in `x-restate-id`) and status.
fn accepted(r: &Reply) -> (String, String) {
    assert_eq!(r.status, 202, "{}", r.text());
    let body = r.json();
    let id = body["invocationId"].as_str().expect("invocationId").to_string();
    assert_eq!(r.header("x-restate-id"), Some(id.as_str()));
    (id, body["status"].as_str().expect("status").to_string())
}

/// `POST /restate/lookup` for `target`: the id it names.
async fn lookup(fx: &mut Fixture, target: Value) -> String {
    let r = fx.call("/restate/lookup", target).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-restate-id").is_none(), "{r:?}");
    let id = r.json()["invocationId"].as_str().expect("invocationId").to_string();
    assert!(id.starts_with("inv_1") && id.len() == 38, "not an invocation id: {id:?}");
    id
}

fn by_id(id: &str) -> Value {
    json!({"target": "invocation", "invocationId": id})
}

fn workflow(key: &str) -> Value {
    json!({"target": "workflow", "workflowName": "Approval", "workflowKey": key})
}

fn idempotent(service: &str, key: Option<&str>, handler: &str, ik: &str) -> Value {
    let mut t = json!({"target": "idempotentInvocation", "service": service, "handler": handler,
        "idempotencyKey": ik});
    if let Some(key) = key {
        t["key"] = json!(key);
    }
    t
}

// ---------------------------------------------------------------------------------------------
// /restate/call and /restate/send
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_sends_through_the_restate_forms() {
    let mut fx = Fixture::start("ingress_call_send", Sdks::Ts).await;
    // A call answers the handler's result.
    let r = fx.call("/restate/call/Greeter/greet", json!("Ada")).await;
    assert_reply(&r, 200, json!("Hello Ada!"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let greeted = r.invocation_id();

    // Object keys are percent-decoded: the handler sees `a b`, and the legacy form with the
    // same key reaches the same object. GET works as POST does.
    assert_reply(&fx.call("/restate/call/Counter/a%20b/add", json!(2)).await, 200, json!(2));
    assert_reply(&fx.ingress("GET", "/restate/call/Counter/a%20b/get", None).await, 200, json!(2));
    assert_reply(&fx.ingress("GET", "/Counter/a%20b/get", None).await, 200, json!(2));
    assert_reply(&fx.call("/restate/call/Counter/a%20b/hold", json!(1)).await, 200, json!("held"));
    assert_eq!(fx.stat(Sdk::Ts, "hold:a b").await, 1);
    // A `%` that starts no escape stays as it is, as in Restate.
    assert_reply(&fx.call("/restate/call/Counter/50%zz/add", json!(5)).await, 200, json!(5));
    assert_reply(&fx.ingress("GET", "/Counter/50%25zz/get", None).await, 200, json!(5));

    // Headers reach the handler, with the ingress path; the idempotency key does not.
    let names = json!(["x-custom", "x-restate-ingress-path", "idempotency-key"]);
    let r = post_json(
        &mut fx,
        "/restate/call/Core/headers?x=1",
        names,
        &[("x-custom", "hi"), ("idempotency-key", "hdr")],
    )
    .await;
    assert_reply(
        &r,
        200,
        json!({"x-custom": "hi", "x-restate-ingress-path": "/restate/call/Core/headers?x=1",
            "idempotency-key": null}),
    );

    // A send: 202 with the id, then its result by id.
    let r = fx.call("/restate/send/Counter/a%20b/add", json!(3)).await;
    let (sent, status) = accepted(&r);
    assert_eq!(status, "Accepted");
    assert_eq!(r.json().get("executionTime"), None, "{}", r.text());
    assert_reply(&fx.call("/restate/attach", by_id(&sent)).await, 200, json!(5));
    let r = fx.call("/restate/output", by_id(&greeted)).await;
    assert_reply(&r, 200, json!("Hello Ada!"));

    // A delayed send is scheduled: it has an execution time, no output yet, cannot be
    // resumed (425, not started) and does not run.
    let r = fx.call("/restate/send/Sleeper/sleep?delay=1h", json!({"ms": 1, "tag": "late"})).await;
    let (late, _) = accepted(&r);
    assert!(r.json()["executionTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", r.text());
    let r = fx.call("/restate/output", by_id(&late)).await;
    assert_error(&r, 470, "ingress", "the invocation exists but has not completed yet");
    let r = fx.admin("PATCH", &format!("/invocations/{late}/resume"), None).await;
    assert_eq!(r.status, 425, "{}", r.text());
    assert_eq!(fx.stat(Sdk::Ts, "sleep-attempt:late").await, 0, "a delayed send ran");
    assert_eq!(fx.admin("PATCH", &format!("/invocations/{late}/cancel"), None).await.status, 200);
    // A delay on a call is refused.
    let r = fx.call("/restate/call/Greeter/greet?delay=1s", json!("x")).await;
    assert_error(&r, 400, "ingress", "cannot use the delay query parameter with calls");

    // Idempotency keys: a second send is the same invocation, PreviouslyAccepted; a call with
    // the key answers its result.
    let ik = [("idempotency-key", "s-1")];
    let (first, status) =
        accepted(&post_json(&mut fx, "/restate/send/Idem/once", json!("s"), &ik).await);
    assert_eq!(status, "Accepted");
    let (again, status) =
        accepted(&post_json(&mut fx, "/restate/send/Idem/once", json!("s"), &ik).await);
    assert_eq!((again.as_str(), status.as_str()), (first.as_str(), "PreviouslyAccepted"));
    let r = post_json(&mut fx, "/restate/call/Idem/once", json!("s"), &ik).await;
    assert_reply(&r, 200, json!({"tag": "s", "n": 1}));
    assert_eq!(r.invocation_id(), first);
    assert_eq!(fx.stat(Sdk::Ts, "idem:s").await, 1);
    // Workflows: run submitted through /restate/send, another handler called by key.
    let (run, status) = accepted(&fx.call("/restate/send/Approval/w%201/run", json!("r")).await);
    assert_eq!(status, "Accepted");
    let (run2, status) = accepted(&fx.call("/restate/send/Approval/w%201/run", json!("r")).await);
    assert_eq!((run2.as_str(), status.as_str()), (run.as_str(), "PreviouslyAccepted"));
    let deadline = Deadline::after(Duration::from_secs(20), "the workflow to wait");
    while fx.call("/restate/call/Approval/w%201/status", json!(null)).await.json() != "waiting" {
        deadline.tick().await;
    }
    let r = fx.call("/restate/call/Approval/w%201/approve", json!("ok")).await;
    assert_reply(&r, 200, json!("approved"));
    let r = fx.call("/restate/attach", workflow("w 1")).await;
    assert_reply(&r, 200, json!({"input": "r", "decision": {"value": "ok"}}));
}

// ---------------------------------------------------------------------------------------------
// POST /restate/attach, /restate/output, /restate/lookup
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_targets_attach_output_and_lookup() {
    let mut fx = Fixture::start("ingress_body_targets", Sdks::Ts).await;
    // An idempotent call of a service: lookup names it, output and attach answer its result.
    let ik = [("idempotency-key", "k1")];
    let r = post_json(&mut fx, "/restate/call/Idem/once", json!("a"), &ik).await;
    assert_reply(&r, 200, json!({"tag": "a", "n": 1}));
    let id = r.invocation_id();
    let target = idempotent("Idem", None, "once", "k1");
    assert_eq!(lookup(&mut fx, target.clone()).await, id);
    for verb in ["output", "attach"] {
        let r = fx.call(&format!("/restate/{verb}"), target.clone()).await;
        assert_reply(&r, 200, json!({"tag": "a", "n": 1}));
        assert_eq!(r.invocation_id(), id);
        assert!(r.header("idempotency-expires").is_some(), "{r:?}");
        // By id: the same.
        assert_reply(
            &fx.call(&format!("/restate/{verb}"), by_id(&id)).await,
            200,
            json!({"tag": "a", "n": 1}),
        );
    }
    // An idempotent call of an object: the key is part of the target.
    let r = post_json(&mut fx, "/restate/call/Counter/a%20b/add", json!(4), &ik).await;
    assert_reply(&r, 200, json!(4));
    let id = r.invocation_id();
    assert_eq!(lookup(&mut fx, idempotent("Counter", Some("a b"), "add", "k1")).await, id);
    assert_ne!(lookup(&mut fx, idempotent("Counter", None, "add", "k1")).await, id);
    assert_ne!(lookup(&mut fx, idempotent("Counter", Some("a b"), "get", "k1")).await, id);
    let r = fx.call("/restate/output", idempotent("Counter", Some("a b"), "add", "k1")).await;
    assert_reply(&r, 200, json!(4));

    // A workflow: lookup names its run; output is 470 while it waits; an attach made then
    // answers once it ends.
    let (run, _) = accepted(&fx.call("/restate/send/Approval/w%201/run", json!("req")).await);
    assert_eq!(lookup(&mut fx, workflow("w 1")).await, run);
    let deadline = Deadline::after(Duration::from_secs(20), "the workflow to wait");
    while fx.call("/Approval/w%201/status", json!(null)).await.json() != "waiting" {
        deadline.tick().await;
    }
    let r = fx.call("/restate/output", workflow("w 1")).await;
    assert_error(&r, 470, "ingress", "the invocation exists but has not completed yet");
    let r = fx.call("/restate/output", by_id(&run)).await;
    assert_eq!(r.status, 470, "{}", r.text());
    let ingress = fx.handle();
    let attached =
        tokio::spawn(async move { ingress.call("/restate/attach", workflow("w 1")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!attached.is_finished(), "attach answered before the workflow ended");
    assert_reply(&fx.call("/Approval/w%201/approve", json!("yes")).await, 200, json!("approved"));
    let want = json!({"input": "req", "decision": {"value": "yes"}});
    let r = attached.await.expect("attach task");
    assert_reply(&r, 200, want.clone());
    assert_eq!(r.invocation_id(), run);
    assert_reply(&fx.call("/restate/output", workflow("w 1")).await, 200, want);

    // Nothing there: output 404 from the ingress, attach 404 as the invocation's failure.
    let unknown = "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw";
    for target in [workflow("nope"), idempotent("Idem", None, "once", "k2"), by_id(unknown)] {
        let r = fx.call("/restate/output", target.clone()).await;
        assert_error(&r, 404, "ingress", "invocation not found");
        let r = fx.call("/restate/attach", target.clone()).await;
        assert_error(&r, 404, "invocation", "not found");
    }

    // Lookup computes, it does not look: unknown names and ids are answered alike.
    assert_eq!(lookup(&mut fx, by_id(unknown)).await, unknown);
    let a =
        lookup(&mut fx, json!({"target": "workflow", "workflowName": "Nope", "workflowKey": "k"}))
            .await;
    let b =
        lookup(&mut fx, json!({"target": "workflow", "workflowName": "Nope", "workflowKey": "k"}))
            .await;
    assert_eq!(a, b);
    // A scope names another invocation (none exists: scoped invocations are refused).
    let mut scoped = workflow("w 1");
    scoped["scope"] = json!("s");
    assert_ne!(lookup(&mut fx, scoped.clone()).await, run);
    assert_error(&fx.call("/restate/output", scoped).await, 404, "ingress", "invocation not found");
    let mut unscoped = workflow("w 1");
    unscoped["scope"] = Value::Null;
    assert_eq!(lookup(&mut fx, unscoped).await, run);
}

// ---------------------------------------------------------------------------------------------
// Bad requests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_restates_statuses() {
    let mut fx = Fixture::start("ingress_bad_requests", Sdks::Ts).await;
    // A body that is not a target: 500 "cannot read body", as Restate answers.
    for (body, why) in [
        ("not json", "expected ident"),
        ("", "EOF while parsing"),
        ("{}", "missing field `target`"),
        (r#"{"target":"nope"}"#, "unknown variant `nope`"),
        (r#"{"target":"workflow","workflowName":"Approval"}"#, "missing field `workflowKey`"),
        (
            r#"{"target":"idempotentInvocation","service":"Idem","handler":"once"}"#,
            "missing field `idempotencyKey`",
        ),
        (r#"{"target":"invocation"}"#, "missing field `invocationId`"),
        (
            r#"{"target":"workflow","workflowName":"Approval","workflowKey":1}"#,
            "invalid type: integer `1`",
        ),
    ] {
        let ct = [("content-type", "application/json")];
        for (path, what) in [
            ("/restate/attach", "request"),
            ("/restate/output", "request"),
            ("/restate/lookup", "lookup"),
        ] {
            let r = post(&mut fx, path, body, &ct).await;
            let want = format!("cannot read body: invalid {what} body: {why}");
            assert_error(&r, 500, "ingress", &want);
        }
    }
    // No content type needed; unknown fields are ignored.
    let r = post(
        &mut fx,
        "/restate/lookup",
        &by_id("inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw").to_string(),
        &[],
    )
    .await;
    assert_reply(&r, 200, json!({"invocationId": "inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw"}));
    let mut extra = by_id("inv_105k1wlNFHb201SZwviYzes2mjOamuMJWw");
    extra["more"] = json!(1);
    assert_eq!(fx.call("/restate/lookup", extra).await.status, 200);
    // A malformed id: 400.
    for path in ["/restate/attach", "/restate/output", "/restate/lookup"] {
        let r = fx.call(path, by_id("garbage")).await;
        assert_error(&r, 400, "ingress", "");
        assert!(r.text().contains("bad invocation id 'garbage'"), "{}", r.text());
    }
    // Body targets take POST only; calls GET or POST.
    for path in ["/restate/attach", "/restate/output", "/restate/lookup"] {
        assert_error(&fx.ingress("GET", path, None).await, 405, "ingress", "method not allowed");
    }
    let url = fx.ingress_url("/restate/call/Greeter/greet");
    let r = fx.request("PUT", &url, Some(Bytes::from_static(b"\"x\"")), &[], TIMEOUT).await;
    assert_error(&r, 405, "ingress", "method not allowed");
    let url = fx.ingress_url("/restate/send/Greeter/greet");
    let r = fx.request("DELETE", &url, None, &[], TIMEOUT).await;
    assert_error(&r, 405, "ingress", "method not allowed");

    // Paths of the wrong shape: 400; unknown services and handlers: 404.
    for path in [
        "/restate/call/Greeter/k/greet",
        "/restate/call/Counter/add",
        "/restate/call/Greeter",
        "/restate/send/Counter/k/add/send",
        "/restate/call",
        "/restate/attach/a/b",
        "/restate/lookup/x",
        "/restate/scope/s1",
        "/restate/scope/s1/call",
        "/restate/scope/s1/other/Greeter/greet",
    ] {
        assert_error(&fx.call(path, json!(1)).await, 400, "ingress", "bad path");
    }
    assert_error(
        &fx.call("/restate/call/Counter/%ff/add", json!(1)).await,
        400,
        "ingress",
        "bad path",
    );
    for path in ["/restate/call/Nope/greet", "/restate/send/Nope/k/greet", "/restate/call/Nope"] {
        let r = fx.call(path, json!(1)).await;
        assert_error(&r, 404, "ingress", "service 'Nope' not found");
    }
    let r = fx.call("/restate/call/Greeter/nope", json!(1)).await;
    assert_error(
        &r,
        404,
        "ingress",
        "the service 'Greeter' exists, but the handler 'nope' was not found",
    );
    let r = fx.ingress("GET", "/restate/nope", None).await;
    assert_error(&r, 404, "ingress", "not found");
    let r =
        post_json(&mut fx, "/restate/call/Approval/k/run", json!(1), &[("idempotency-key", "x")])
            .await;
    assert_error(&r, 400, "ingress", "cannot use the idempotency key with workflow handlers");

    // Scoped calls and sends: 400 without vqueues, after the service and handler are found
    // and before the method is checked; nothing runs.
    let no_vqueues = "scoped invocations require vqueues to be enabled";
    for path in [
        "/restate/scope/s1/call/Greeter/greet",
        "/restate/scope/s1/send/Greeter/greet",
        "/restate/scope/s1/call/Counter/k/add",
        "/restate/scope/a.b-c_D9/send/Counter/k/add",
        "/restate/scope/s1/send/Greeter/greet?delay=1s",
    ] {
        assert_error(&fx.call(path, json!("x")).await, 400, "ingress", no_vqueues);
    }
    let url = fx.ingress_url("/restate/scope/s1/call/Greeter/greet");
    let r = fx.request("PUT", &url, None, &[], TIMEOUT).await;
    assert_error(&r, 400, "ingress", no_vqueues);
    let r = fx.call("/restate/scope/s1/call/Nope/greet", json!(1)).await;
    assert_error(&r, 404, "ingress", "service 'Nope' not found");
    let r = fx.call("/restate/scope/s1/call/Greeter/nope", json!(1)).await;
    assert_error(&r, 404, "ingress", "the service 'Greeter' exists");
    let r = fx.call("/restate/scope/s1/call/Counter/add", json!(1)).await;
    assert_error(&r, 400, "ingress", "bad path");
    let r = fx.call("/restate/scope/%ff/call/Greeter/greet", json!(1)).await;
    assert_error(&r, 400, "ingress", "bad path");
    assert_reply(&fx.ingress("GET", "/Counter/k/get", None).await, 200, json!(0));
    // A scope is 1 to 36 of [a-zA-Z0-9_.-], in a path as in a body target.
    let long = "a".repeat(37);
    for scope in ["s%201", "%C3%A9", long.as_str()] {
        let r = fx.call(&format!("/restate/scope/{scope}/send/Greeter/greet"), json!(1)).await;
        assert_error(&r, 400, "ingress", "bad scope value: ");
    }
    let ok = "a".repeat(36);
    let r = fx.call(&format!("/restate/scope/{ok}/send/Greeter/greet"), json!(1)).await;
    assert_error(&r, 400, "ingress", no_vqueues);
    for scope in ["", "s 1", long.as_str()] {
        for path in ["/restate/attach", "/restate/output", "/restate/lookup"] {
            let mut target = workflow("w");
            target["scope"] = json!(scope);
            assert_error(&fx.call(path, target).await, 400, "ingress", "bad scope value: ");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps and forwarded headers, as Restate prints and forwards them
// ---------------------------------------------------------------------------------------------

fn now_ms() -> u64 {
    ratchet::timefmt::now_ms()
}

/// `t` is one of the instants `lo..=hi` (ms) printed by `format`, and has `digits` fraction
/// digits (none on a whole second).
fn assert_instant(
    t: &str,
    lo: u64,
    hi: u64,
    digits: usize,
    suffix: &str,
    format: fn(u64) -> String,
) {
    let stem = t.strip_suffix(suffix).unwrap_or_else(|| panic!("{t:?} does not end in {suffix}"));
    match stem.split_once('.') {
        Some((_, frac)) => assert_eq!(frac.len(), digits, "fraction of {t:?}"),
        None => assert!(stem.ends_with(|c: char| c.is_ascii_digit()), "{t:?}"),
    }
    assert!(
        (lo..=hi).any(|ms| format(ms) == stem.to_string() + "Z"),
        "{t:?} is not in {lo}..={hi}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execution_times_and_expiries_are_printed_as_restate_prints_them() {
    let mut fx = Fixture::start("ingress_timestamps", Sdks::Ts).await;
    // A delayed send: `executionTime` in UTC with nanoseconds, this send's time plus the delay.
    let hour = 3_600_000;
    let lo = now_ms() + hour;
    let r = fx.call("/restate/send/Approval/late/run?delay=1h", json!("r")).await;
    let hi = now_ms() + hour;
    let (run, status) = accepted(&r);
    assert_eq!(status, "Accepted");
    let at = r.json()["executionTime"].as_str().expect("executionTime").to_string();
    assert_instant(&at, lo, hi, 9, "Z", ratchet::timefmt::rfc3339_ns);
    // Fields in Restate's order.
    assert!(r.text().starts_with(r#"{"invocationId":"#), "{}", r.text());
    assert!(r.text().ends_with(r#","status":"Accepted"}"#), "{}", r.text());
    // Sent again (with or without a delay) while it waits: PreviouslyAccepted, with the first
    // send's execution time.
    for path in ["/restate/send/Approval/late/run?delay=2h", "/restate/send/Approval/late/run"] {
        let r = fx.call(path, json!("r")).await;
        assert_reply(
            &r,
            202,
            json!({"invocationId": run, "executionTime": at, "status": "PreviouslyAccepted"}),
        );
    }
    assert_eq!(fx.admin("PATCH", &format!("/invocations/{run}/cancel"), None).await.status, 200);

    // Once a delayed idempotent send has started, a repeat has no execution time.
    let ik = [("idempotency-key", "soon")];
    let r = post_json(&mut fx, "/restate/send/Idem/once?delay=10ms", json!("soon"), &ik).await;
    let (soon, _) = accepted(&r);
    assert!(r.json()["executionTime"].is_string(), "{}", r.text());
    assert_reply(
        &fx.call("/restate/attach", by_id(&soon)).await,
        200,
        json!({"tag": "soon", "n": 1}),
    );
    let r = post_json(&mut fx, "/restate/send/Idem/once", json!("soon"), &ik).await;
    assert_reply(&r, 202, json!({"invocationId": soon, "status": "PreviouslyAccepted"}));
    // Without a delay there is none.
    let r = fx.call("/restate/send/Greeter/greet", json!("x")).await;
    assert_eq!(r.json().get("executionTime"), None, "{}", r.text());

    // `idempotency-expires` on an answer from a completed idempotent invocation: its
    // completion time plus the retention (a day by default), milliseconds and `+00:00`.
    let day = 86_400_000;
    let ik = [("idempotency-key", "exp")];
    let lo = now_ms() + day;
    let r = post_json(&mut fx, "/restate/call/Idem/once", json!("exp"), &ik).await;
    let hi = now_ms() + day;
    assert_reply(&r, 200, json!({"tag": "exp", "n": 1}));
    let r = post_json(&mut fx, "/restate/call/Idem/once", json!("exp"), &ik).await;
    let expires = r.header("idempotency-expires").expect("idempotency-expires").to_string();
    assert_instant(&expires, lo, hi, 3, "+00:00", ratchet::timefmt::rfc3339_ms);
    let r = fx.call("/restate/output", idempotent("Idem", None, "once", "exp")).await;
    assert_eq!(r.header("idempotency-expires"), Some(expires.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_see_the_headers_restate_forwards() {
    let mut fx = Fixture::start("ingress_headers", Sdks::Ts).await;
    let names = json!([
        "content-length",
        "content-type",
        "host",
        "connection",
        "idempotency-key",
        "idempotency-expires",
        "x-dup",
        "x-empty",
        "x-restate-ingress-path",
        "user-agent"
    ]);
    let body = names.to_string();
    let len = body.len().to_string();
    // Forwarded: content-length and the others, a repeated header's first value; not: host,
    // connection and the idempotency headers.
    let r = post(
        &mut fx,
        "/Core/headers",
        &body,
        &[
            ("content-type", "application/json"),
            ("x-dup", "1"),
            ("user-agent", "ua"),
            ("x-dup", "2"),
            ("x-empty", ""),
            ("connection", "keep-alive"),
            ("idempotency-expires", "x"),
        ],
    )
    .await;
    assert_reply(
        &r,
        200,
        json!({"content-length": len, "content-type": "application/json", "host": null,
            "connection": null, "idempotency-key": null, "idempotency-expires": null,
            "x-dup": "1", "x-empty": "", "x-restate-ingress-path": "/Core/headers",
            "user-agent": "ua"}),
    );
    // The same through a send, with an (empty) idempotency key, which is a key.
    let ik = [("idempotency-key", "")];
    let r = post(
        &mut fx,
        "/restate/send/Core/headers",
        &body,
        &[ik[0], ("content-type", "application/json")],
    )
    .await;
    let (sent, _) = accepted(&r);
    let r = fx.call("/restate/attach", by_id(&sent)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["content-length"], json!(len));
    assert_eq!(r.json()["idempotency-key"], Value::Null);
    let r = post(
        &mut fx,
        "/restate/send/Core/headers",
        &body,
        &[ik[0], ("content-type", "application/json")],
    )
    .await;
    assert_eq!(accepted(&r), (sent.clone(), "PreviouslyAccepted".to_string()));
    // Restate sends its `x-restate-ingress-path` first: a client's own comes after it, and the
    // SDK keeps the last.
    let names = json!(["x-restate-ingress-path"]);
    let r = post_json(&mut fx, "/Core/headers", names, &[("x-restate-ingress-path", "mine")]).await;
    assert_reply(&r, 200, json!({"x-restate-ingress-path": "mine"}));
    // A value that is not visible ASCII: 400 after the input is checked.
    let bad = [("content-type", "application/json"), ("x-bad", "café")];
    let r = post(&mut fx, "/Core/headers", "[]", &bad).await;
    assert_error(&r, 400, "ingress", "bad header x-bad: ToStrError { _priv: () }");
    let r = post(&mut fx, "/Core/headers", "[]", &[("content-type", "text/plain"), bad[1]]).await;
    assert_error(&r, 400, "ingress", "input validation error");
    let r = post(
        &mut fx,
        "/Core/headers",
        "[]",
        &[("content-type", "text/plain"), ("idempotency-key", "é")],
    )
    .await;
    assert_error(&r, 400, "ingress", "bad header idempotency-key: ToStrError { _priv: () }");
    // Not forwarded, not checked.
    let r = post(
        &mut fx,
        "/Core/headers",
        "[]",
        &[("content-type", "application/json"), ("idempotency-expires", "é")],
    )
    .await;
    assert_reply(&r, 200, json!({}));
}

// ---------------------------------------------------------------------------------------------
// /restate/invocation and /restate/workflow paths; wrong shapes under /restate
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_paths_decode_only_keys_and_wrong_shapes_get_restates_answers() {
    let mut fx = Fixture::start("ingress_invocation_paths", Sdks::Ts).await;
    // Idempotent invocations with the keys `k1` and `k%31` (taken as they are).
    let mut ids = Vec::new();
    for ik in ["k1", "k%31"] {
        let r = post_json(&mut fx, "/Idem/once", json!(ik), &[("idempotency-key", ik)]).await;
        assert_reply(&r, 200, json!({"tag": ik, "n": 1}));
        ids.push(r.invocation_id());
    }
    let r = post_json(&mut fx, "/Counter/a%20b/add", json!(7), &[("idempotency-key", "k1")]).await;
    assert_reply(&r, 200, json!(7));
    let keyed = r.invocation_id();

    // The idempotency-key segment is not percent-decoded: `k%31` names the key `k%31`.
    for (path, want) in [
        ("/restate/invocation/Idem/once/k1/output", Some((&ids[0], "k1"))),
        ("/restate/invocation/Idem/once/k%31/output", Some((&ids[1], "k%31"))),
        ("/restate/invocation/Idem/once/k%2531/output", None),
        // Nor is the handler segment.
        ("/restate/invocation/Idem/%6fnce/k1/output", None),
        // Nor segments past the verb, which are ignored.
        ("/restate/invocation/Idem/once/k1/output/more", Some((&ids[0], "k1"))),
    ] {
        let r = fx.ingress("GET", path, None).await;
        match want {
            Some((id, tag)) => {
                assert_reply(&r, 200, json!({"tag": tag, "n": 1}));
                assert_eq!(&r.invocation_id(), id, "{path}");
            }
            None => assert_error(&r, 404, "ingress", "invocation not found"),
        }
    }
    // The object key is decoded; the idempotency key after it is not.
    for path in [
        "/restate/invocation/Counter/a%20b/add/k1/output",
        "/restate/invocation/Counter/a%20b/add/k1/attach",
    ] {
        let r = fx.ingress("GET", path, None).await;
        assert_reply(&r, 200, json!(7));
        assert_eq!(r.invocation_id(), keyed);
    }
    let r = fx.ingress("GET", "/restate/invocation/Counter/a%20b/add/k%31/output", None).await;
    assert_error(&r, 404, "ingress", "invocation not found");
    let r = fx.ingress("GET", "/restate/invocation/Counter/%ff/add/k1/output", None).await;
    assert_error(
        &r,
        400,
        "ingress",
        "bad path, cannot decode key: FromUtf8Error { bytes: [255], error: Utf8Error { \
         valid_up_to: 0, error_len: Some(1) } }",
    );
    // The service segment is not decoded either, and the service must exist.
    for (path, service) in [
        ("/restate/invocation/Id%65m/once/k1/output", "Id%65m"),
        ("/restate/invocation/Nope/once/k1/output", "Nope"),
        ("/restate/invocation/x/y/z", "x"),
    ] {
        let r = fx.ingress("GET", path, None).await;
        assert_error(&r, 404, "ingress", &format!("service '{service}' not found"));
    }

    // Wrong shapes under /restate: 400 with Restate's message, 404 for an unknown verb.
    let invocation_shape = "bad path, expected either /restate/invocation/:invocation_id/output \
        or /restate/invocation/:invocation_id/attach or \
        /restate/invocation/:invocation_target/:idempotency_key/output or \
        /restate/invocation/:invocation_target/:idempotency_key/attach";
    let workflow_shape = "bad path, expected either \
        /restate/workflow/:workflow_name/:workflow_key/output or \
        /restate/workflow/:workflow_name/:workflow_key/attach";
    let awakeable_shape = "bad path, expected either /restate/awakeables/:id/resolve or \
        /restate/awakeables/:id/reject";
    for (path, status, message) in [
        ("/restate/invocation", 400, invocation_shape),
        ("/restate/invocation/x", 400, invocation_shape),
        // A keyed service needs its key segment; a plain one has none.
        ("/restate/invocation/Idem/once/k1", 400, invocation_shape),
        ("/restate/invocation/Counter/add/k1/output", 400, invocation_shape),
        ("/restate/invocation/Approval/run/k1/output", 400, invocation_shape),
        ("/restate/invocation/Counter/a/add/k1", 400, invocation_shape),
        ("/restate/invocation/Idem/x/once/k1/output", 404, "not found"),
        ("/restate/invocation/Idem/once/k1/nope", 404, "not found"),
        ("/restate/invocation/x/y", 404, "not found"),
        ("/restate/invocation/x/output", 400, ""),
        ("/restate/workflow", 400, workflow_shape),
        ("/restate/workflow/Approval", 400, workflow_shape),
        ("/restate/workflow/Approval/w", 400, workflow_shape),
        ("/restate/workflow/Approval/w/nope", 404, "not found"),
        ("/restate/workflow/Approval/w/output/more", 404, "invocation not found"),
        ("/restate/workflow/Approval/%ff/nope", 400, "bad path, cannot decode key: "),
        ("/restate/a", 400, awakeable_shape),
        ("/restate/awakeables", 400, awakeable_shape),
        ("/restate/a/x", 400, awakeable_shape),
        ("/restate/awakeables/x/nope", 404, "not found"),
        ("/restate/a/x/resolve/more", 405, "method not allowed"),
        ("/restate/attach/x/y", 400, "bad path, expected /restate/call/:service/:handler"),
        ("/restate/nope/x", 404, "not found"),
        ("/restate/invocation/a/b/c/d/e/f", 400, "bad path: /restate/invocation/a/b/c/d/e/f"),
    ] {
        let r = fx.ingress("GET", path, None).await;
        assert_error(&r, status, "ingress", message);
    }
    // The id is checked before the method; the verb before both.
    for (path, status, message) in [
        ("/restate/invocation/x/output", 400, "bad invocation id 'x'"),
        ("/restate/attach/x", 400, "bad invocation id 'x'"),
        ("/restate/invocation/Idem/once/k1/nope", 404, "not found"),
        ("/restate/invocation/Idem/once/k1/output", 405, "method not allowed"),
        ("/restate/health", 405, "method not allowed"),
    ] {
        let url = fx.ingress_url(path);
        let r = fx.request("POST", &url, None, &[], TIMEOUT).await;
        assert_error(&r, status, "ingress", "");
        assert!(r.text().contains(message), "POST {path}: {}", r.text());
    }
    // Health ignores segments after it (and takes GET only, above).
    assert_eq!(fx.ingress("GET", "/restate/health/x", None).await.status, 200);
}
