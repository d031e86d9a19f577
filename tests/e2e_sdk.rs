//! End-to-end tests: real, unmodified Restate SDK services against the server under test.
//!
//! Goal: prove that Ratchet is a drop-in Restate server for what users actually run: the
//! TypeScript SDK 1.17 and the Rust SDK 0.13 register through the admin API, are invoked
//! through the ingress, keep virtual-object state (eager and lazy), serialize exclusive
//! handlers per key, run `ctx.run` side effects exactly once, sleep durably, call and send to
//! each other, surface terminal errors with the right status and body, and survive a SIGKILL
//! of the server; and that the real `restate` CLI accepts the server.
//!
//! Method: each test starts a fresh fixture (`tests/support`): the server under test on free
//! loopback ports with its own base dir, the SDK services as child processes, registered with
//! `POST /deployments`. Tests talk plain HTTP/1.1 to the ingress and admin ports and read the
//! services' in-process side-effect counters over a side port. Every expectation (status
//! codes, bodies, headers) was taken from the real restate-server 1.7.12, which the same file
//! runs against when `RATCHET_E2E_SERVER` names its binary; where the reference docs and the
//! real server differ, the real server is asserted. Every wait has a deadline.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Deadline, Fixture, Reply, Sdk, Sdks, RUST_SERVICES, TS_SERVICES};

/// How long the TS `Counter.slowAdd` handler sleeps between its read and its write.
const SLOW_ADD_MS: u64 = 500;

fn assert_json_reply(reply: &Reply, status: u16, body: Value) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"), "{reply:?}");
    assert_eq!(reply.json(), body);
}

/// A handler that returns nothing: 200, empty body, and no content type.
fn assert_empty_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "body: {}", reply.text());
    assert!(reply.body.is_empty(), "body: {}", reply.text());
    assert_eq!(reply.header("content-type"), None);
    reply.invocation_id();
}

/// An error produced by the ingress itself: no invocation was created.
fn assert_ingress_error(reply: &Reply, status: u16, message: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.header("x-restate-error-source"), Some("ingress"));
    assert_eq!(reply.header("x-restate-id"), None);
    assert_json_reply(
        reply,
        status,
        json!({"code": status, "message": message, "source": "ingress"}),
    );
}

/// A terminal error of an invocation, passed through by the ingress.
fn assert_invocation_error(reply: &Reply, status: u16, message: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.header("x-restate-error-source"), Some("invocation"));
    reply.invocation_id();
    assert_json_reply(
        reply,
        status,
        json!({"code": status, "message": message, "source": "invocation"}),
    );
}

fn names(values: &Value) -> BTreeSet<String> {
    values
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_string())
        .collect()
}

/// A service descriptor with its handlers in name order (the server lists them in any order).
fn sorted_handlers(mut service: Value) -> Value {
    let handlers = service["handlers"].as_array_mut().expect("handlers array");
    handlers.sort_by_key(|h| h["name"].as_str().expect("handler name").to_string());
    service
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Admin API and CLI
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_health_version_and_ingress_health() {
    let mut fx = Fixture::start("admin_health_version", Sdks::Ts).await;

    let health = fx.admin("GET", "/health", None).await;
    assert_eq!(health.status, 200);
    assert!(health.body.is_empty(), "admin /health body: {}", health.text());

    let version = fx.admin("GET", "/version", None).await;
    assert_eq!(version.status, 200);
    assert_eq!(version.header("content-type"), Some("application/json"));
    let v = version.json();
    let semver = v["version"].as_str().expect("version is a string");
    let parts: Vec<u64> = semver
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("version {semver:?} is not semver")))
        .collect();
    assert_eq!(parts.len(), 3, "version {semver:?} is not semver");
    // The CLI takes older query paths for servers before 1.5.
    assert!((parts[0], parts[1]) >= (1, 5), "version {semver:?}");
    assert_eq!(v["min_admin_api_version"], json!(2));
    assert_eq!(v["max_admin_api_version"], json!(4));
    let ingress = format!("http://127.0.0.1:{}/", fx.server.ingress_port);
    assert_eq!(v["ingress_endpoint"], json!(ingress));

    let ingress_health = fx.ingress("GET", "/restate/health", None).await;
    assert_eq!(ingress_health.status, 200);
    assert_eq!(ingress_health.header("content-type"), Some("application/json"));
    let listed: BTreeSet<String> = ingress_health.json()["services"]
        .as_array()
        .expect("services array")
        .iter()
        .map(|s| s.as_str().expect("service name").to_string())
        .collect();
    assert_eq!(listed, set(&TS_SERVICES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_services_and_deployments() {
    let mut fx = Fixture::start("admin_lists", Sdks::Both).await;
    let ts_id = fx.ts_deployment.clone().expect("TS deployment");
    let rust_id = fx.rust_deployment.clone().expect("Rust deployment");

    let services = fx.admin("GET", "/services", None).await;
    assert_eq!(services.status, 200);
    let services = services.json()["services"].clone();
    let mut all: Vec<&str> = TS_SERVICES.to_vec();
    all.extend(RUST_SERVICES);
    assert_eq!(names(&services), set(&all));

    let find = |name: &str| -> Value {
        services.as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone()
    };
    let exclusive = ["add", "clear", "clearAll", "hold", "put", "slowAdd"];
    let shared = ["get", "keys", "read"];
    for object in ["Counter", "LazyCounter"] {
        let s = find(object);
        assert_eq!(s["ty"], "VirtualObject");
        assert_eq!(s["deployment_id"], json!(ts_id));
        assert_eq!(s["revision"], 1);
        assert_eq!(s["public"], true);
        assert_eq!(s["enable_lazy_state"], object == "LazyCounter");
        let mut all_handlers = exclusive.to_vec();
        all_handlers.extend(shared);
        assert_eq!(names(&s["handlers"]), set(&all_handlers));
        for h in s["handlers"].as_array().unwrap() {
            let name = h["name"].as_str().unwrap();
            let ty = if shared.contains(&name) { "Shared" } else { "Exclusive" };
            assert_eq!(h["ty"], ty, "{object}.{name}");
        }
    }
    for (service, handlers) in [
        ("Greeter", vec!["fail", "greet"]),
        ("Runner", vec!["once", "steps"]),
        ("Sleeper", vec!["sleep"]),
        ("Caller", vec!["addTo", "callFail", "callFailCaught", "callStubborn", "greet", "sendAdd"]),
    ] {
        let s = find(service);
        assert_eq!(s["ty"], "Service", "{service}");
        assert_eq!(s["deployment_id"], json!(ts_id));
        assert_eq!(names(&s["handlers"]), set(&handlers), "{service}");
        for h in s["handlers"].as_array().unwrap() {
            assert!(h.get("ty").is_none(), "plain service handlers have no ty: {h}");
        }
    }
    assert_eq!(find("RustCounter")["ty"], "VirtualObject");
    assert_eq!(find("RustGreeter")["ty"], "Service");
    assert_eq!(find("RustRunner")["deployment_id"], json!(rust_id));

    let one = fx.admin("GET", "/services/Greeter", None).await;
    assert_eq!(one.status, 200);
    assert_eq!(sorted_handlers(one.json()), sorted_handlers(find("Greeter")));
    let missing = fx.admin("GET", "/services/Nope", None).await;
    assert_json_reply(
        &missing,
        404,
        json!({"message": "The requested service 'Nope' does not exist", "restate_code": null}),
    );

    let deployments = fx.admin("GET", "/deployments", None).await;
    assert_eq!(deployments.status, 200);
    let deployments = deployments.json()["deployments"].clone();
    assert_eq!(deployments.as_array().unwrap().len(), 2);
    for (id, sdk, service_names) in [
        (&ts_id, "restate-sdk-typescript/1.17.", &TS_SERVICES[..]),
        (&rust_id, "restate-sdk-rust/0.13.", &RUST_SERVICES[..]),
    ] {
        let d = deployments.as_array().unwrap().iter().find(|d| d["id"] == json!(id)).unwrap();
        let uri = d["uri"].as_str().unwrap();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with('/'), "uri {uri}");
        assert_eq!(d["protocol_type"], "BidiStream");
        assert_eq!(d["http_version"], "HTTP/2.0");
        assert!(d["sdk_version"].as_str().unwrap().starts_with(sdk), "{d}");
        assert!(d["created_at"].as_str().unwrap().ends_with('Z'), "{d}");
        assert!(
            d["min_protocol_version"].as_i64().unwrap()
                <= d["max_protocol_version"].as_i64().unwrap()
        );
        assert_eq!(names(&d["services"]), set(service_names));
        for s in d["services"].as_array().unwrap() {
            assert_eq!(s["revision"], 1);
        }
    }

    // Registering the same endpoint again changes nothing: 200 with the same id.
    let uri = deployments.as_array().unwrap().iter().find(|d| d["id"] == json!(ts_id)).unwrap()
        ["uri"]
        .clone();
    let again = fx.admin("POST", "/deployments", Some(&json!({ "uri": uri }))).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], json!(ts_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restate_cli_accepts_the_server() {
    let fx = Fixture::start("restate_cli", Sdks::Ts).await;

    let (code, out) = fx.cli(&["--yes", "whoami"]).await;
    assert_eq!(code, 0, "restate whoami:\n{out}");
    assert!(out.contains("is healthy"), "restate whoami:\n{out}");

    let (code, out) = fx.cli(&["--yes", "services", "list"]).await;
    assert_eq!(code, 0, "restate services list:\n{out}");
    for name in TS_SERVICES {
        assert!(out.contains(name), "restate services list lacks {name}:\n{out}");
    }
    assert!(out.contains("virtual object"), "restate services list:\n{out}");

    let (code, out) = fx.cli(&["--yes", "deployments", "list"]).await;
    assert_eq!(code, 0, "restate deployments list:\n{out}");
    let id = fx.ts_deployment.as_deref().unwrap();
    assert!(out.contains(id), "restate deployments list lacks {id}:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// Ingress: calls, sends and errors (TS SDK)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_call_returns_output_and_invocation_id() {
    let mut fx = Fixture::start("ingress_call", Sdks::Ts).await;
    let reply = fx.call("/Greeter/greet", json!("Ann")).await;
    assert_json_reply(&reply, 200, json!("Hello Ann!"));
    assert_eq!(reply.header("x-restate-error-source"), None);
    let first = reply.invocation_id();
    let again = fx.call("/Greeter/greet", json!("Ann")).await;
    assert_ne!(again.invocation_id(), first, "each call is a new invocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_unknown_service_and_handler_are_404() {
    let mut fx = Fixture::start("ingress_unknown", Sdks::Ts).await;
    let reply = fx.call("/Nope/greet", json!("Ann")).await;
    assert_ingress_error(
        &reply,
        404,
        "service 'Nope' not found, make sure to register the service before calling it.",
    );
    let reply = fx.call("/Greeter/nope", json!("Ann")).await;
    assert_ingress_error(
        &reply,
        404,
        "the service 'Greeter' exists, but the handler 'nope' was not found, check that the \
         handler exists in the latest registered service version.",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_rejects_bad_input() {
    let mut fx = Fixture::start("ingress_bad_input", Sdks::Ts).await;
    // The ingress checks only the content type: the TS SDK declares `application/json`.
    let reply = fx.ingress_raw("/Greeter/greet", "text/plain", "\"Ann\"").await;
    assert_ingress_error(
        &reply,
        400,
        "input validation error: Content-type 'text/plain' does not match 'application/json'",
    );
    // Malformed JSON passes the ingress; the SDK fails the invocation terminally with 400.
    let reply = fx.ingress_raw("/Greeter/greet", "application/json", "{not json").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.header("x-restate-error-source"), Some("invocation"));
    reply.invocation_id();
    let body = reply.json();
    assert_eq!(body["code"], 400);
    assert_eq!(body["source"], "invocation");
    let message = body["message"].as_str().expect("message");
    assert!(message.starts_with("Failed to deserialize input: "), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_send_is_accepted_and_runs() {
    let mut fx = Fixture::start("ingress_send", Sdks::Ts).await;
    let reply = fx.call("/Greeter/greet/send", json!("Ann")).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.invocation_id();
    assert_json_reply(&reply, 202, json!({"invocationId": id, "status": "Accepted"}));

    let reply = fx.call("/Counter/sent/add/send", json!(5)).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json()["status"], "Accepted");
    let deadline = Deadline::after(Duration::from_secs(10), "the sent add to show up");
    loop {
        if fx.ingress("GET", "/Counter/sent/get", None).await.json() == json!(5) {
            break;
        }
        deadline.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_error_keeps_its_status_and_message() {
    let mut fx = Fixture::start("terminal_error", Sdks::Ts).await;
    let reply = fx.ingress("POST", "/Greeter/fail", None).await;
    assert_invocation_error(&reply, 418, "bad input");
}

// ---------------------------------------------------------------------------------------------
// Virtual objects
// ---------------------------------------------------------------------------------------------

/// get/set/clear/clearAll/stateKeys through the ingress, on two keys of `object`.
async fn exercise_state(fx: &mut Fixture, object: &str) {
    let path = |key: &str, handler: &str| format!("/{object}/{key}/{handler}");
    assert_json_reply(&fx.ingress("GET", &path("a", "get"), None).await, 200, json!(0));
    assert_json_reply(&fx.ingress("POST", &path("a", "keys"), None).await, 200, json!([]));

    assert_json_reply(&fx.call(&path("a", "add"), json!(5)).await, 200, json!(5));
    assert_json_reply(&fx.call(&path("a", "add"), json!(2)).await, 200, json!(7));
    assert_json_reply(&fx.ingress("GET", &path("a", "get"), None).await, 200, json!(7));
    assert_json_reply(&fx.ingress("POST", &path("a", "get"), None).await, 200, json!(7));
    // Another key of the same object has its own state.
    assert_json_reply(&fx.ingress("GET", &path("b", "get"), None).await, 200, json!(0));
    assert_json_reply(&fx.call(&path("b", "add"), json!(1)).await, 200, json!(1));

    assert_empty_ok(&fx.call(&path("a", "put"), json!({"name": "color", "value": "red"})).await);
    assert_json_reply(
        &fx.ingress("GET", &path("a", "keys"), None).await,
        200,
        json!(["color", "count"]),
    );
    assert_json_reply(&fx.call(&path("a", "read"), json!("color")).await, 200, json!("red"));

    assert_empty_ok(&fx.call(&path("a", "clear"), json!("color")).await);
    assert_json_reply(&fx.ingress("GET", &path("a", "keys"), None).await, 200, json!(["count"]));
    assert_json_reply(&fx.call(&path("a", "read"), json!("color")).await, 200, json!(null));
    assert_json_reply(&fx.ingress("GET", &path("a", "get"), None).await, 200, json!(7));

    assert_empty_ok(&fx.call(&path("a", "put"), json!({"name": "shape", "value": [1, 2]})).await);
    assert_json_reply(&fx.call(&path("a", "read"), json!("shape")).await, 200, json!([1, 2]));
    assert_empty_ok(&fx.ingress("POST", &path("a", "clearAll"), None).await);
    assert_json_reply(&fx.ingress("GET", &path("a", "keys"), None).await, 200, json!([]));
    assert_json_reply(&fx.ingress("GET", &path("a", "get"), None).await, 200, json!(0));
    // clearAll on one key leaves the other alone.
    assert_json_reply(&fx.ingress("GET", &path("b", "get"), None).await, 200, json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_state_eager() {
    let mut fx = Fixture::start("object_state_eager", Sdks::Ts).await;
    exercise_state(&mut fx, "Counter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_state_lazy() {
    let mut fx = Fixture::start("object_state_lazy", Sdks::Ts).await;
    exercise_state(&mut fx, "LazyCounter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_handlers_serialize_per_key() {
    let mut fx = Fixture::start("exclusive_serialize", Sdks::Ts).await;
    const CALLS: u64 = 4;
    let ingress = fx.handle();
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLS)
        .map(|_| {
            let ingress = ingress.clone();
            tokio::spawn(async move { ingress.call("/Counter/one/slowAdd", json!(1)).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, 200, "{}", reply.text());
        results.push(reply.json().as_u64().expect("a count"));
    }
    let elapsed = start.elapsed();
    results.sort_unstable();
    // Read-sleep-write with no lost update: each call saw the previous one's write.
    assert_eq!(results, (1..=CALLS).collect::<Vec<_>>());
    assert_json_reply(&fx.ingress("GET", "/Counter/one/get", None).await, 200, json!(CALLS));
    let serial = Duration::from_millis(CALLS * SLOW_ADD_MS);
    assert!(elapsed >= serial - Duration::from_millis(100), "{elapsed:?} < {serial:?}: overlapped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_handlers_on_different_keys_run_concurrently() {
    let mut fx = Fixture::start("exclusive_concurrent", Sdks::Ts).await;
    const KEYS: u64 = 6;
    // Touch every key first, so the timing below measures handlers, not server warm-up.
    for k in 0..KEYS {
        assert_json_reply(
            &fx.ingress("GET", &format!("/Counter/k{k}/get"), None).await,
            200,
            json!(0),
        );
    }
    let ingress = fx.handle();
    let start = Instant::now();
    let tasks: Vec<_> = (0..KEYS)
        .map(|k| {
            let ingress = ingress.clone();
            tokio::spawn(
                async move { ingress.call(&format!("/Counter/k{k}/slowAdd"), json!(1)).await },
            )
        })
        .collect();
    for task in tasks {
        let reply = task.await.expect("task");
        assert_json_reply(&reply, 200, json!(1));
    }
    let elapsed = start.elapsed();
    // Serialized they would take KEYS x 500 ms = 3 s; in parallel about 500 ms.
    let bound = Duration::from_millis(KEYS * SLOW_ADD_MS * 2 / 3);
    assert!(elapsed < bound, "{KEYS} keys took {elapsed:?} (>= {bound:?}): not concurrent");
    for k in 0..KEYS {
        assert_json_reply(
            &fx.ingress("GET", &format!("/Counter/k{k}/get"), None).await,
            200,
            json!(1),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_handler_runs_while_exclusive_holds_the_key() {
    let mut fx = Fixture::start("shared_while_exclusive", Sdks::Ts).await;
    const HOLD_MS: u64 = 2000;
    let ingress = fx.handle();
    let start = Instant::now();
    let hold = tokio::spawn({
        let ingress = ingress.clone();
        async move {
            let reply = ingress.call("/Counter/h/hold", json!(HOLD_MS)).await;
            (reply, start.elapsed())
        }
    });
    // Queue the exclusive add only once the hold is running and owns the key.
    let deadline = Deadline::after(Duration::from_secs(10), "the hold to start");
    while fx.stat(Sdk::Ts, "hold:h").await == 0 {
        deadline.tick().await;
    }
    let add = tokio::spawn({
        let ingress = ingress.clone();
        async move {
            let reply = ingress.call("/Counter/h/add", json!(1)).await;
            (reply, start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let get_sent = start.elapsed();
    let get = fx.ingress("GET", "/Counter/h/get", None).await;
    let get_done = start.elapsed();
    assert_json_reply(&get, 200, json!(0));
    assert!(!hold.is_finished(), "the hold ended before the shared get was answered");
    assert!(
        get_done - get_sent < Duration::from_millis(1000),
        "shared get took {:?}",
        get_done - get_sent
    );

    let (hold_reply, hold_done) = hold.await.expect("hold task");
    assert_json_reply(&hold_reply, 200, json!("held"));
    let (add_reply, add_done) = add.await.expect("add task");
    assert_json_reply(&add_reply, 200, json!(1));
    assert!(get_done < hold_done, "shared get {get_done:?} waited for the hold {hold_done:?}");
    assert!(add_done >= hold_done, "exclusive add {add_done:?} overtook the hold {hold_done:?}");
}

// ---------------------------------------------------------------------------------------------
// Side effects, timers, service-to-service
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_side_effect_executes_once_per_invocation() {
    let mut fx = Fixture::start("run_once", Sdks::Ts).await;
    assert_json_reply(&fx.call("/Runner/once", json!("r1")).await, 200, json!(1));
    assert_eq!(fx.stat(Sdk::Ts, "run:r1").await, 1);
    // A second invocation runs its own effect, once.
    assert_json_reply(&fx.call("/Runner/once", json!("r1")).await, 200, json!(2));
    assert_eq!(fx.stat(Sdk::Ts, "run:r1").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sleep_waits_then_continues() {
    let mut fx = Fixture::start("durable_sleep", Sdks::Ts).await;
    let start = Instant::now();
    let reply = fx.call("/Sleeper/sleep", json!({"ms": 1000, "tag": "s1"})).await;
    let elapsed = start.elapsed();
    assert_json_reply(&reply, 200, json!("slept 1000 ms"));
    assert!(elapsed >= Duration::from_millis(1000), "slept only {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "slept {elapsed:?}");
    assert_eq!(fx.stat(Sdk::Ts, "sleep-before:s1").await, 1);
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:s1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_call_and_send_to_each_other() {
    let mut fx = Fixture::start("calls_and_sends", Sdks::Ts).await;
    assert_json_reply(&fx.call("/Caller/greet", json!("Bo")).await, 200, json!("Hello Bo!"));
    assert_json_reply(&fx.call("/Caller/addTo", json!({"key": "c", "n": 3})).await, 200, json!(3));
    assert_json_reply(&fx.ingress("GET", "/Counter/c/get", None).await, 200, json!(3));

    // A one-way send from a handler: the caller returns at once, the add lands later.
    assert_json_reply(
        &fx.call("/Caller/sendAdd", json!({"key": "c", "n": 4})).await,
        200,
        json!("sent"),
    );
    let deadline = Deadline::after(Duration::from_secs(10), "the sent add to land on Counter/c");
    loop {
        let count = fx.ingress("GET", "/Counter/c/get", None).await.json();
        if count == json!(7) {
            break;
        }
        assert_eq!(count, json!(3), "the sent add applied wrongly");
        deadline.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_terminal_error_reaches_the_caller() {
    let mut fx = Fixture::start("callee_terminal_error", Sdks::Ts).await;
    let reply = fx.ingress("POST", "/Caller/callFail", None).await;
    assert_invocation_error(&reply, 418, "bad input");
    let reply = fx.ingress("POST", "/Caller/callFailCaught", None).await;
    assert_json_reply(&reply, 200, json!({"caught": true, "code": 418, "message": "bad input"}));
}

// ---------------------------------------------------------------------------------------------
// Rust SDK
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_calls_and_errors() {
    let mut fx = Fixture::start("rust_calls", Sdks::Rust).await;
    let reply = fx.call("/RustGreeter/greet", json!("Ann")).await;
    assert_json_reply(&reply, 200, json!("Hello Ann!"));
    reply.invocation_id();

    let reply = fx.ingress("POST", "/RustGreeter/fail", None).await;
    assert_invocation_error(&reply, 418, "bad input");

    // The Rust SDK declares its input as required JSON: an empty request fails at the ingress.
    let reply = fx.ingress("POST", "/RustGreeter/greet", None).await;
    assert_ingress_error(&reply, 400, "input validation error: Empty content-type");
    // Malformed JSON passes the ingress; the SDK fails the invocation terminally with 400.
    let reply = fx.ingress_raw("/RustGreeter/greet", "application/json", "{bad").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.header("x-restate-error-source"), Some("invocation"));
    let body = reply.json();
    assert_eq!(body["code"], 400);
    assert_eq!(body["source"], "invocation");
    let message = body["message"].as_str().expect("message");
    assert!(message.starts_with("Cannot decode input payload"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_object_state() {
    let mut fx = Fixture::start("rust_state", Sdks::Rust).await;
    assert_json_reply(&fx.ingress("GET", "/RustCounter/r/get", None).await, 200, json!(0));
    assert_json_reply(&fx.call("/RustCounter/r/add", json!(4)).await, 200, json!(4));
    assert_json_reply(&fx.call("/RustCounter/r/add", json!(4)).await, 200, json!(8));
    assert_json_reply(&fx.ingress("GET", "/RustCounter/r/get", None).await, 200, json!(8));
    assert_json_reply(&fx.ingress("GET", "/RustCounter/other/get", None).await, 200, json!(0));
    assert_empty_ok(&fx.ingress("POST", "/RustCounter/r/clear", None).await);
    assert_json_reply(&fx.ingress("GET", "/RustCounter/r/get", None).await, 200, json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_run_and_sleep() {
    let mut fx = Fixture::start("rust_run_sleep", Sdks::Rust).await;
    let start = Instant::now();
    assert_json_reply(&fx.call("/RustRunner/runAndSleep", json!("x")).await, 200, json!(1));
    assert!(start.elapsed() >= Duration::from_millis(200), "slept only {:?}", start.elapsed());
    assert_eq!(fx.stat(Sdk::Rust, "run:x").await, 1);
    assert_json_reply(&fx.call("/RustRunner/runAndSleep", json!("x")).await, 200, json!(2));
    assert_eq!(fx.stat(Sdk::Rust, "run:x").await, 2);
}

// ---------------------------------------------------------------------------------------------
// Durability: SIGKILL the server, restart it on the same base dir
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_durable_sleep_resumes_and_runs_once() {
    let mut fx = Fixture::start("sigkill_sleep", Sdks::Ts).await;
    const SLEEP_MS: u64 = 3000;
    let sent = Instant::now();
    let reply = fx.call("/Sleeper/sleep/send", json!({"ms": SLEEP_MS, "tag": "k"})).await;
    assert_eq!(reply.status, 202, "{}", reply.text());

    let deadline = Deadline::after(Duration::from_secs(10), "the sleeper to start");
    while fx.stat(Sdk::Ts, "sleep-before:k").await == 0 {
        deadline.tick().await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:k").await, 0, "woke up before the kill");

    fx.kill9_server();
    fx.restart_server().await;

    let deadline = Deadline::after(Duration::from_secs(30), "the sleeper to finish after restart");
    while fx.stat(Sdk::Ts, "sleep-after:k").await == 0 {
        deadline.tick().await;
    }
    let woke = sent.elapsed();
    assert!(woke >= Duration::from_millis(SLEEP_MS), "woke after {woke:?}");
    // Give a duplicate execution the chance to show itself.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = fx.stats(Sdk::Ts).await;
    assert_eq!(stats["sleep-before:k"], 1, "{stats}");
    assert_eq!(stats["sleep-after:k"], 1, "{stats}");
    // The invocation really was resumed by a new attempt after the restart.
    assert!(stats["sleep-attempt:k"].as_u64().unwrap() >= 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_state_and_accepted_invocations() {
    let mut fx = Fixture::start("sigkill_state", Sdks::Both).await;
    assert_json_reply(&fx.call("/Counter/d/add", json!(5)).await, 200, json!(5));
    assert_empty_ok(&fx.call("/Counter/d/put", json!({"name": "note", "value": "kept"})).await);
    assert_json_reply(&fx.call("/LazyCounter/d/add", json!(6)).await, 200, json!(6));
    assert_json_reply(&fx.call("/RustCounter/d/add", json!(4)).await, 200, json!(4));
    // Accepted (202) right before the crash; it must complete exactly once afterwards.
    let reply = fx.call("/Counter/d/slowAdd/send", json!(3)).await;
    assert_eq!(reply.status, 202, "{}", reply.text());

    fx.kill9_server();
    fx.restart_server().await;

    assert_json_reply(&fx.call("/Counter/d/read", json!("note")).await, 200, json!("kept"));
    assert_json_reply(&fx.ingress("GET", "/LazyCounter/d/get", None).await, 200, json!(6));
    assert_json_reply(&fx.ingress("GET", "/RustCounter/d/get", None).await, 200, json!(4));
    let deadline = Deadline::after(Duration::from_secs(30), "the accepted slowAdd to complete");
    loop {
        let count = fx.ingress("GET", "/Counter/d/get", None).await.json();
        if count == json!(8) {
            break;
        }
        assert_eq!(count, json!(5), "state after restart");
        deadline.tick().await;
    }
    // Give a duplicate execution the chance to show itself.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_json_reply(&fx.ingress("GET", "/Counter/d/get", None).await, 200, json!(8));
    // And the server takes new work on the recovered state.
    assert_json_reply(&fx.call("/Counter/d/add", json!(1)).await, 200, json!(9));
    assert_json_reply(&fx.call("/RustCounter/d/add", json!(1)).await, 200, json!(5));
}
