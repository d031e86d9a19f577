//! Deployments through the admin API and the real `restate` CLI: HTTP/1.1 (request-response)
//! deployments, update (`PATCH`), forced removal, one change at a time, and the OpenAPI
//! documents. Real SDK services; the CLI is npm's `@restatedev/restate`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{Fixture, Sdks};

const T: Duration = Duration::from_secs(10);

async fn sql(fx: &mut Fixture, query: &str) -> Vec<Value> {
    let h = [("content-type", "application/json"), ("accept", "application/json")];
    let body = Some(bytes::Bytes::from(json!({ "query": query }).to_string()));
    let r = fx.request("POST", &fx.admin_url("/query"), body, &h, T).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()["rows"].as_array().cloned().unwrap_or_default()
}

async fn send(fx: &mut Fixture, method: &str, path: &str, body: &str) -> support::Reply {
    let h = [("content-type", "application/json")];
    let url = fx.admin_url(path);
    fx.request(method, &url, Some(bytes::Bytes::from(body.to_string())), &h, T).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_deployments_are_registered_run_described_and_removed_with_the_cli() {
    let mut fx = Fixture::start("deploy_http11", Sdks::Ts).await;
    let port = fx.start_ts_script("service.mjs", &["--http1"]).await;
    let uri = format!("http://127.0.0.1:{port}");

    // Over HTTP/2 prior knowledge an HTTP/1.1 server cannot be discovered; nothing changes.
    let before = fx.admin("GET", "/deployments", None).await.json();
    let r = fx.admin("POST", "/deployments", Some(&json!({ "uri": uri }))).await;
    assert!(r.status >= 400, "{}", r.text());
    assert!(r.json()["message"].is_string(), "{}", r.text());
    assert_eq!(fx.admin("GET", "/deployments", None).await.json(), before);

    // The CLI's flow: a dry run (which stores nothing), then the registration.
    let (code, out) = fx.cli(&["--yes", "deployments", "register", &uri, "--use-http1.1"]).await;
    assert_eq!(code, 0, "restate deployments register:\n{out}");
    assert!(out.contains("DEPLOYMENT"), "register:\n{out}");
    let list = fx.admin("GET", "/deployments", None).await.json();
    let dps = list["deployments"].as_array().unwrap();
    assert_eq!(dps.len(), 2, "{list}");
    let h1 = dps.iter().find(|d| d["uri"].as_str().unwrap().contains(&port.to_string())).unwrap();
    let h1_id = h1["id"].as_str().unwrap().to_string();
    assert!(out.contains(&h1_id), "register names the new id:\n{out}");
    assert_eq!(h1["http_version"], "HTTP/1.1", "{h1}");
    assert_eq!(h1["protocol_type"], "RequestResponse", "{h1}");

    // Invocations now run over HTTP/1.1: a call, state, and a sleep (a suspension, since a
    // request-response attempt cannot be woken on the same request).
    let id = fx.call("/Greeter/greet", json!("Ann")).await.invocation_id();
    assert_eq!(fx.call("/Counter/h/add", json!(2)).await.json(), json!(2));
    assert_eq!(fx.call("/Counter/h/add", json!(3)).await.json(), json!(5));
    let r = fx.call("/Sleeper/sleep", json!({"tag": "h1", "ms": 50})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rows =
        sql(&mut fx, &format!("SELECT pinned_deployment_id FROM sys_invocation WHERE id = '{id}'"))
            .await;
    assert_eq!(rows, vec![json!({ "pinned_deployment_id": h1_id })]);

    let (code, out) = fx.cli(&["--yes", "deployments", "describe", &h1_id]).await;
    assert_eq!(code, 0, "deployments describe:\n{out}");
    assert!(out.contains("HTTP/1.1") && out.contains("Greeter"), "describe:\n{out}");
    let (code, out) = fx.cli(&["--yes", "services", "describe", "Greeter"]).await;
    assert_eq!(code, 0, "services describe:\n{out}");
    assert!(out.contains(&h1_id) && out.contains("greet"), "services describe:\n{out}");
    let (code, out) = fx.cli(&["--yes", "deployments", "list"]).await;
    assert_eq!(code, 0, "deployments list:\n{out}");
    assert!(out.contains(&h1_id), "deployments list:\n{out}");

    // Removal needs force (501 without), takes the services whose latest revision it served,
    // and survives a crash.
    let r = fx.admin("DELETE", &format!("/deployments/{h1_id}"), None).await;
    assert_eq!(r.status, 501, "{}", r.text());
    // The CLI refuses to remove the deployment serving the latest revisions without --force.
    let (code, out) = fx.cli(&["--yes", "deployments", "remove", &h1_id]).await;
    assert_eq!(code, 1, "deployments remove:\n{out}");
    assert!(out.contains("still Active"), "deployments remove:\n{out}");
    let (code, out) = fx.cli(&["--yes", "deployments", "remove", &h1_id, "--force"]).await;
    assert_eq!(code, 0, "deployments remove --force:\n{out}");
    assert!(out.contains(&h1_id), "deployments remove --force:\n{out}");
    fx.kill9_server();
    fx.restart_server().await;
    assert_eq!(fx.admin("GET", &format!("/deployments/{h1_id}"), None).await.status, 404);
    let r = fx.admin("GET", "/services/Greeter", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = fx.admin("DELETE", &format!("/deployments/{h1_id}?force=true"), None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = fx.admin("DELETE", "/deployments/dp_nope?force=true", None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // The first deployment is still there, and registering it again brings the services back.
    let list = fx.admin("GET", "/deployments", None).await.json();
    assert_eq!(list["deployments"].as_array().unwrap().len(), 1, "{list}");
    let ts_uri = list["deployments"][0]["uri"].as_str().unwrap().to_string();
    let r = fx.admin("POST", "/deployments", Some(&json!({"uri": ts_uri, "force": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(fx.call("/Counter/h/add", json!(1)).await.json(), json!(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_updated_in_place_and_changed_one_at_a_time() {
    let mut fx = Fixture::start("deploy_update", Sdks::Both).await;
    let ts = fx.ts_deployment.clone().unwrap();
    let rust = fx.rust_deployment.clone().unwrap();
    let path = format!("/deployments/{ts}");
    let original = fx.admin("GET", &path, None).await.json();
    let rust_uri = fx.admin("GET", &format!("/deployments/{rust}"), None).await.json()["uri"]
        .as_str()
        .unwrap()
        .to_string();

    // New headers: re-discovered, same id and revisions, sent on every attempt from now on.
    let r = send(&mut fx, "PATCH", &path, r#"{"additional_headers": {"x-extra": "1"}}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["id"], ts.as_str());
    assert_eq!(body["additional_headers"], json!({"x-extra": "1"}), "{body}");
    let greeter = body["services"].as_array().unwrap().iter().find(|s| s["name"] == "Greeter");
    assert_eq!(greeter.unwrap()["revision"], 1, "{body}");
    assert_eq!(fx.call("/Greeter/greet", json!("Bo")).await.status, 200);
    // An empty patch answers the deployment as it is.
    let r = send(&mut fx, "PATCH", &path, "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["additional_headers"], json!({"x-extra": "1"}));

    // Bad updates change nothing: another service set without overwrite, unknown and
    // malformed ids, bad JSON, an unreachable address.
    let moved = format!(r#"{{"uri": "{rust_uri}"}}"#);
    for (p, body, status) in [
        (path.as_str(), moved.as_str(), 400),
        ("/deployments/dp_17sztQp2rHr3a5GBmOqwNgM", r#"{"uri": "http://127.0.0.1:1"}"#, 404),
        ("/deployments/dp_nope", "{}", 400),
        (path.as_str(), "{not json", 400),
        (path.as_str(), r#"{"uri": "http://127.0.0.1:1"}"#, 500),
    ] {
        let r = send(&mut fx, "PATCH", p, body).await;
        assert_eq!(r.status, status, "PATCH {p} {body}: {}", r.text());
        assert!(r.json()["message"].is_string(), "{}", r.text());
    }
    let now = fx.admin("GET", &path, None).await.json();
    assert_eq!(now["uri"], original["uri"], "{now}");
    assert_eq!(now["additional_headers"], json!({"x-extra": "1"}), "{now}");

    // One change at a time: while a registration waits on a slow endpoint, another is refused
    // with 409; a dry run is not a change and goes on.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_uri = format!("http://{}", slow.local_addr().unwrap());
    let url = fx.admin_url("/deployments");
    let first = tokio::spawn(async move {
        use http_body_util::{BodyExt, Full};
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<bytes::Bytes>>();
        let body = bytes::Bytes::from(json!({ "uri": slow_uri }).to_string());
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&text).into_owned())
    });
    let (held, _) = tokio::time::timeout(T, slow.accept()).await.unwrap().unwrap();
    let r = send(&mut fx, "POST", "/deployments", &format!(r#"{{"uri": "{rust_uri}"}}"#)).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("in progress"), "{}", r.text());
    let r = send(
        &mut fx,
        "POST",
        "/deployments",
        &format!(r#"{{"uri": "{rust_uri}", "dry_run": true}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(held);
    drop(slow);
    let (status, text) = tokio::time::timeout(T, first).await.unwrap().unwrap();
    assert!(status >= 500, "{status}: {text}");
    // The slot is free again.
    let r = send(&mut fx, "PATCH", &path, r#"{"additional_headers": {}}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().get("additional_headers").is_none(), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_describe_the_admin_api_and_each_service() {
    let mut fx = Fixture::start("deploy_openapi", Sdks::Ts).await;
    let a = fx.admin("GET", "/services/Counter/openapi", None).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let b = fx.admin("GET", "/services/Counter/openapi", None).await;
    assert_eq!(a.body, b.body, "the same schema gives the same bytes");
    let doc = a.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Counter");
    assert_eq!(doc["info"]["version"], "1");
    assert_eq!(doc["servers"][0]["url"], fx.ingress_url("/"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/restate/call/Counter/{key}/add",
        "/restate/send/Counter/{key}/add",
        "/restate/invocation/Counter/{key}/add/{idempotencyKey}/attach",
        "/restate/invocation/Counter/{key}/add/{idempotencyKey}/output",
    ] {
        assert!(paths.contains_key(p), "{p} in {:?}", paths.keys().collect::<Vec<_>>());
    }
    // Every call path the document lists is served by the ingress.
    let send = &paths["/restate/send/Counter/{key}/add"]["post"];
    assert_eq!(send["operationId"], "addSend");
    let r = fx.ingress("POST", "/restate/call/Counter/o/add", Some(&json!(4))).await;
    assert_eq!(r.json(), json!(4));

    let wf = fx.admin("GET", "/services/Approval/openapi", None).await.json();
    let wf_paths = wf["paths"].as_object().unwrap();
    assert!(wf_paths.contains_key("/restate/workflow/Approval/{key}/attach"), "{wf}");
    assert!(!wf_paths.keys().any(|p| p.starts_with("/restate/invocation/")), "{wf}");
    let plain = fx.admin("GET", "/services/Greeter/openapi", None).await.json();
    assert!(plain["paths"].as_object().unwrap().contains_key("/restate/call/Greeter/greet"));

    let r = fx.admin("GET", "/services/Nope/openapi", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["message"], "The requested service 'Nope' does not exist");

    let admin = fx.admin("GET", "/openapi", None).await;
    assert_eq!(admin.status, 200, "{}", admin.text());
    let admin = admin.json();
    assert_eq!(admin["info"]["title"], "Admin API");
    for p in ["/deployments", "/services/{service}/openapi", "/invocations/{invocation_id}/kill"] {
        assert!(admin["paths"].get(p).is_some(), "{p}");
    }
}
