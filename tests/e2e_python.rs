//! End-to-end tests with the Restate Python SDK (PyPI `restate-sdk` 1.2, served by
//! hypercorn over HTTP/2 cleartext) next to the TypeScript SDK: calls, state, `ctx.run`,
//! sleep, terminal errors, awakeables, workflows with promises, and calls between services
//! written in different SDKs.
//!
//! Method: a fixture with the TS test service (`tests/support`), plus the Python service
//! (`tests/services/py/service.py`) started here from the virtual environment `scripts/test`
//! creates in `target/py-venv`, registered through the admin API like any deployment. A
//! missing virtual environment fails the test: it is never skipped.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use support::{assert_reply, Deadline, Fixture, Sdks};

/// The Python service's process, killed on drop.
struct PyService {
    child: Child,
    port: u16,
}

impl Drop for PyService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-venv/bin").join(name)
}

async fn start_python(fx: &mut Fixture) -> PyService {
    let hypercorn = venv_bin("hypercorn");
    assert!(
        hypercorn.is_file(),
        "{} is missing: scripts/test creates the Python virtual environment",
        hypercorn.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(fx.server.base_dir.with_file_name("python.log")).unwrap();
    let child = Command::new(&hypercorn)
        .args(["--bind", &format!("127.0.0.1:{port}"), "service:app"])
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/services/py"))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start hypercorn");
    let py = PyService { child, port };
    // Register once the endpoint answers discovery.
    let deadline = Deadline::after(Duration::from_secs(30), "the Python deployment to register");
    loop {
        let body = json!({"uri": format!("http://127.0.0.1:{}", py.port)});
        let r = fx.admin("POST", "/deployments", Some(&body)).await;
        if r.status == 201 || r.status == 200 {
            break;
        }
        deadline.tick().await;
    }
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_runs_on_ratchet_and_calls_across_sdks() {
    let mut fx = Fixture::start("python", Sdks::Ts).await;
    let _py = start_python(&mut fx).await;

    assert_reply(
        &fx.call("/PyGreeter/greet", json!("Ada")).await,
        200,
        json!("Hello Ada from Python!"),
    );
    let r = fx.ingress("POST", "/PyGreeter/fail", None).await;
    assert_eq!(r.status, 418, "{}", r.text());
    assert_eq!(r.json()["message"], "python says no");
    assert_reply(&fx.call("/PyCounter/a/add", json!(2)).await, 200, json!(2));
    assert_reply(&fx.call("/PyCounter/a/add", json!(3)).await, 200, json!(5));
    assert_reply(&fx.call("/PyGreeter/steps", json!(4)).await, 200, json!([0, 1, 4, 9]));
    // Python → TypeScript and TypeScript → Python.
    assert_reply(
        &fx.call("/PyGreeter/call_ts", json!("Bo")).await,
        200,
        json!("ts said: \"Hello Bo!\""),
    );
    assert_reply(
        &fx.call("/Signals/callPy", json!("Cy")).await,
        200,
        json!("Hello Cy from Python!"),
    );

    // An awakeable created in Python, resolved from the ingress.
    let r = fx.call("/PyGreeter/await_awakeable/send", json!("p1")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let inv = r.json()["invocationId"].as_str().unwrap().to_string();
    let deadline = Deadline::after(Duration::from_secs(20), "the awakeable id");
    let awk = loop {
        let r = fx.call("/PyCounter/awakeables/get_value", json!("p1")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // `None` comes back as an empty body.
        let v: Option<Value> = serde_json::from_slice(&r.body).ok();
        if let Some(id) = v.as_ref().and_then(Value::as_str) {
            break id.to_string();
        }
        deadline.tick().await;
    };
    let url = fx.ingress_url(&format!("/restate/a/{awk}/resolve"));
    let ct = [("content-type", "application/json")];
    let r = fx
        .request("POST", &url, Some(Bytes::from_static(b"\"yes\"")), &ct, Duration::from_secs(10))
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let r = fx.ingress("GET", &format!("/restate/invocation/{inv}/attach"), None).await;
    assert_reply(&r, 200, json!("yes"));

    // A Python workflow and its promise.
    let r = fx.call("/PyApproval/w/run/send", json!("req")).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        fx.call("/PyApproval/w/run/send", json!("again")).await.json()["status"],
        "PreviouslyAccepted"
    );
    assert_reply(&fx.call("/PyApproval/w/decide", json!("ok")).await, 200, json!("decided"));
    let r = fx.ingress("GET", "/restate/workflow/PyApproval/w/attach", None).await;
    assert_reply(&r, 200, json!({"request": "req", "decision": "ok"}));
}
