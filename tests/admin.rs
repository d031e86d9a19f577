//! The admin API over real HTTP, in the exact JSON shapes the `restate` CLI deserializes.
//!
//! Goal: prove that health, version negotiation, errors, deployment registration and the
//! service/deployment descriptors are what the CLI 1.7 and the web UI expect (routes
//! unprefixed and under `/v2`..`/v4`, JSON error bodies with `restate_code`, durations in the
//! friendly form, `Z` timestamps), without starting an SDK.
//!
//! Method: each test starts `admin::router` on a loopback port over a `Registry` in a fresh
//! temporary directory and talks to it with a hyper client. Registration through
//! `POST /deployments` is driven against a small in-test h2c server that answers `/discover`
//! with hand-written manifests; the descriptor tests register a hand-built
//! `DiscoveredEndpoint` through `Registry::register` directly and compare whole JSON documents.
//! A process-wide tracing subscriber captures WARN/ERROR events; every test ends by asserting
//! that the server logged none.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

use ratchet::admin::{self, AdminState, ADMIN_COMPAT_VERSION};
use ratchet::protocol::discovery::{DiscoveredEndpoint, Endpoint};
use ratchet::protocol::ids::DeploymentId;
use ratchet::protocol::ManifestVersion;
use ratchet::schema::{Registration, Registry};

// ---------------------------------------------------------------------------------------------
// Harness.

/// WARN/ERROR lines logged by anything in this test process.
fn captured_warnings() -> &'static Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        // Another test binary may not share this process; inside it, only this sets one.
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_no_warnings() {
    let log = captured_warnings().lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(log.is_empty(), "unexpected WARN/ERROR log lines:\n{}", String::from_utf8_lossy(&log));
}

struct Server {
    base: String,
    registry: Arc<Registry>,
    _dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn start() -> Server {
    captured_warnings();
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::open(dir.path()).unwrap());
    let state = Arc::new(AdminState {
        registry: registry.clone(),
        ingress_endpoint: "http://127.0.0.1:8080/".to_owned(),
        server_version: ADMIN_COMPAT_VERSION.to_owned(),
        partitions: None,
        request_identity: None,
        query: None,
        stopping: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, admin::router(state)).await.unwrap();
    });
    Server {
        base: format!("http://{addr}"),
        registry,
        _dir: dir,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn content_type(&self) -> &str {
        self.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
    /// Asserts the JSON error shape and returns the body.
    fn error(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type(), "application/json");
        let body = self.json();
        let fields: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["message", "restate_code"], "{body}");
        assert!(body["message"].is_string());
        body
    }
}

impl Server {
    async fn call(&self, method: Method, path: &str, body: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or("").to_owned()))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply { status, headers, body }
    }
    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }
    async fn get_json(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.content_type(), "application/json");
        reply.json()
    }
    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(&body.to_string())).await
    }
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An h2c server answering `GET /{name}/discover` with `manifests[name]`.
async fn manifest_server(manifests: BTreeMap<&'static str, Value>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let manifests = Arc::new(manifests);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let manifests = manifests.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let manifests = manifests.clone();
                        async move {
                            let name = request
                                .uri()
                                .path()
                                .trim_start_matches('/')
                                .trim_end_matches("/discover");
                            let response = match manifests.get(name) {
                                Some(manifest) => Response::builder()
                                    .header(
                                        header::CONTENT_TYPE,
                                        ManifestVersion::V3.content_type(),
                                    )
                                    .header("x-restate-server", "fake-sdk/0.1.0")
                                    .body(Full::new(Bytes::from(manifest.to_string()))),
                                None => {
                                    Response::builder().status(404).body(Full::new(Bytes::new()))
                                }
                            };
                            Ok::<_, Infallible>(response.unwrap())
                        }
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A manifest with a plain service `Greeter` and a virtual object `Counter`.
fn manifest(counter_ty: &str) -> Value {
    json!({
        "protocolMode": "BIDI_STREAM",
        "minProtocolVersion": 5,
        "maxProtocolVersion": 6,
        "services": [
            {
                "name": "Greeter",
                "ty": "SERVICE",
                "documentation": "Says hello.",
                "handlers": [{
                    "name": "greet",
                    "input": {
                        "required": false,
                        "contentType": "application/json",
                        "jsonSchema": {"title": "Person", "type": "object"}
                    },
                    "output": {"contentType": "application/json", "setContentTypeIfEmpty": false}
                }]
            },
            {
                "name": "Counter",
                "ty": counter_ty,
                "metadata": {"owner": "team-a"},
                "idempotencyRetention": 3_600_000,
                "handlers": if counter_ty == "VIRTUAL_OBJECT" {
                    json!([
                        {"name": "add", "ty": "EXCLUSIVE", "inactivityTimeout": 90_000, "input": {"contentType": "application/json"}},
                        {"name": "get", "ty": "SHARED", "output": {"contentType": "application/json", "jsonSchema": {"type": "number"}}}
                    ])
                } else {
                    json!([{"name": "add"}])
                }
            }
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Health, version, mounting.

#[tokio::test]
async fn health_and_version_are_served_unprefixed_and_versioned() {
    let server = start().await;
    for path in ["/health", "/v2/health", "/v3/health", "/v4/health"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.body.is_empty(), "{path}");
    }
    let expected = json!({
        "version": "1.7.12",
        "min_admin_api_version": 2,
        "max_admin_api_version": 4,
        "ingress_endpoint": "http://127.0.0.1:8080/",
        "features": {}
    });
    assert_eq!(server.get_json("/version").await, expected);
    assert_eq!(server.get_json("/v4/version").await, expected);

    let v1 = server.get("/v1/services").await;
    assert_eq!(v1.status, StatusCode::BAD_REQUEST);
    assert!(v1.content_type().starts_with("text/plain"), "{}", v1.content_type());
    assert_eq!(
        String::from_utf8_lossy(&v1.body),
        "Unsupported Admin API version V1. This server supports versions between V2 and V4."
    );
    assert_eq!(server.get("/v5/services").await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.get("/no/such/route").await.status, StatusCode::NOT_FOUND);
    assert_no_warnings();
}

#[tokio::test]
async fn an_empty_registry_lists_nothing() {
    let server = start().await;
    assert_eq!(server.get_json("/v4/services").await, json!({"services": []}));
    assert_eq!(server.get_json("/services").await, json!({"services": []}));
    assert_eq!(server.get_json("/v4/deployments").await, json!({"deployments": []}));
    assert_no_warnings();
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[tokio::test]
async fn unknown_things_are_404_json() {
    let server = start().await;
    let body = server.get("/v4/services/Nope").await.error(StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"message": "The requested service 'Nope' does not exist", "restate_code": null})
    );
    server.get("/v4/services/Nope/handlers").await.error(StatusCode::NOT_FOUND);
    server.get("/v4/services/Nope/handlers/h").await.error(StatusCode::NOT_FOUND);

    let unknown = DeploymentId(42).to_string();
    let body = server.get(&format!("/v4/deployments/{unknown}")).await.error(StatusCode::NOT_FOUND);
    assert_eq!(body["message"], format!("The requested deployment '{unknown}' does not exist"));
    server.get("/v4/deployments/not-an-id").await.error(StatusCode::BAD_REQUEST);
    assert_no_warnings();
}

#[tokio::test]
async fn registering_an_unreachable_deployment_is_500_meta0003() {
    let server = start().await;
    let uri = format!("http://127.0.0.1:{}", closed_port());
    let body = server
        .post("/v4/deployments", &json!({"uri": uri}))
        .await
        .error(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["restate_code"], "META0003", "{body}");
    assert!(body["message"].as_str().unwrap().contains("cannot reach"), "{body}");
    assert_eq!(server.get_json("/v4/deployments").await, json!({"deployments": []}));
    assert_no_warnings();
}

#[tokio::test]
async fn bad_registration_requests_are_400() {
    let server = start().await;
    let body = server
        .post("/v4/deployments", &json!({"uri": "/just/a/path"}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "message": "The request field 'uri' is invalid. Reason: The provided uri /just/a/path is not \
                        absolute, only absolute URIs can be used.",
            "restate_code": null
        })
    );
    server
        .post("/v4/deployments", &json!({"uri": "http://exa mple"}))
        .await
        .error(StatusCode::BAD_REQUEST);
    server.post("/v4/deployments", &json!({})).await.error(StatusCode::BAD_REQUEST);
    server.post("/v4/deployments", &json!({"uri": 7})).await.error(StatusCode::BAD_REQUEST);
    server
        .call(Method::POST, "/v4/deployments", Some("{not json"))
        .await
        .error(StatusCode::BAD_REQUEST);
    let lambda = json!({"arn": "arn:aws:lambda:eu-central-1:1:function:f:1"});
    let body = server.post("/v4/deployments", &lambda).await.error(StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("'arn'"), "{body}");
    let bad_header =
        json!({"uri": "http://127.0.0.1:1", "additional_headers": {"bad header": "x"}});
    server.post("/v4/deployments", &bad_header).await.error(StatusCode::BAD_REQUEST);
    assert_no_warnings();
}

// ---------------------------------------------------------------------------------------------
// Registration through POST /deployments.

#[tokio::test]
async fn post_deployments_registers_and_reregisters_per_api_version() {
    let manifests = BTreeMap::from([("a", manifest("VIRTUAL_OBJECT")), ("b", manifest("SERVICE"))]);
    let sdk = manifest_server(manifests).await;
    let server = start().await;
    let uri_a = format!("http://{sdk}/a");

    // Dry run: validated, nothing stored.
    let reply = server.post("/v4/deployments", &json!({"uri": uri_a, "dry_run": true})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(server.get_json("/v4/deployments").await, json!({"deployments": []}));

    let reply =
        server.post("/v4/deployments", &json!({"uri": uri_a, "metadata": {"k": "v"}})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
    let created = reply.json();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.parse::<DeploymentId>().is_ok(), "{id}");
    assert_eq!(reply.headers[header::LOCATION], format!("deployments/{id}").as_str());
    assert_eq!(created["min_protocol_version"], 5);
    assert_eq!(created["max_protocol_version"], 6);
    assert_eq!(created["sdk_version"], "fake-sdk/0.1.0");
    let names: Vec<(&str, u64)> = created["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["revision"].as_u64().unwrap()))
        .collect();
    assert_eq!(names, [("Greeter", 1), ("Counter", 1)]);
    assert_eq!(created["services"][0], server.get_json("/v4/services/Greeter").await);

    // Same address again: V3+ answers 200 with the same id and no change, V2 answers 409.
    let again = server.post("/v4/deployments", &json!({"uri": uri_a})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["id"], id.as_str());
    assert_eq!(server.get_json("/v4/services/Counter").await["revision"], 1);
    server
        .post("/v2/deployments", &json!({"uri": uri_a, "force": false}))
        .await
        .error(StatusCode::CONFLICT);

    // Forced: overwritten in place, new revisions; V2 reports it as created.
    let forced = server.post("/v4/deployments", &json!({"uri": uri_a, "force": true})).await;
    assert_eq!(forced.status, StatusCode::OK);
    assert_eq!(forced.json()["id"], id.as_str());
    assert_eq!(server.get_json("/v4/services/Counter").await["revision"], 2);
    let forced_v2 = server.post("/v2/deployments", &json!({"uri": uri_a})).await;
    assert_eq!(forced_v2.status, StatusCode::CREATED, "V2 defaults force to true");

    // Another deployment changing Counter's type: 409 META0006 unless breaking.
    let uri_b = format!("http://{sdk}/b");
    let body =
        server.post("/v4/deployments", &json!({"uri": uri_b})).await.error(StatusCode::CONFLICT);
    assert_eq!(body["restate_code"], "META0006", "{body}");
    let breaking = server.post("/v4/deployments", &json!({"uri": uri_b, "breaking": true})).await;
    assert_eq!(breaking.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&breaking.body));
    let counter = server.get_json("/v4/services/Counter").await;
    assert_eq!(counter["ty"], "Service");
    assert_eq!(counter["deployment_id"], breaking.json()["id"]);
    assert_eq!(
        server.get_json("/v4/deployments").await["deployments"].as_array().unwrap().len(),
        2
    );

    // A missing /discover is a discovery failure.
    let missing = json!({"uri": format!("http://{sdk}/missing")});
    let body =
        server.post("/v4/deployments", &missing).await.error(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["restate_code"], "META0003", "{body}");
    assert_no_warnings();
}

// ---------------------------------------------------------------------------------------------
// Exact descriptors.

const CREATED_MS: u64 = 1_767_323_045_123; // 2026-01-02T03:04:05.123Z

/// Registers `manifest("VIRTUAL_OBJECT")` at a fixed id and time; returns the id.
fn register_directly(server: &Server) -> String {
    let endpoint: Endpoint = serde_json::from_value(manifest("VIRTUAL_OBJECT")).unwrap();
    let discovered = DiscoveredEndpoint {
        manifest_version: ManifestVersion::V3,
        endpoint,
        http_version: http::Version::HTTP_2,
        server: Some("restate-sdk-typescript/1.16.8".to_owned()),
    };
    let id = DeploymentId(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    server
        .registry
        .register(
            Registration {
                uri: "http://127.0.0.1:9080/".to_owned(),
                additional_headers: BTreeMap::from([("x-api-key".to_owned(), "secret".to_owned())]),
                metadata: BTreeMap::from([("env".to_owned(), "test".to_owned())]),
                force: false,
                dry_run: false,
                now_ms: CREATED_MS,
                new_id: id,
            },
            &discovered,
        )
        .unwrap();
    id.to_string()
}

fn expected_greeter(id: &str) -> Value {
    json!({
        "name": "Greeter",
        "ty": "Service",
        "handlers": [{
            "name": "greet",
            "public": true,
            "input_description": "JSON 'Person'",
            "output_description": "application/json",
            "input_json_schema": {"title": "Person", "type": "object"},
            "retry_policy": {"max_attempts": null}
        }],
        "documentation": "Says hello.",
        "deployment_id": id,
        "revision": 1,
        "public": true,
        "idempotency_retention": "1d",
        "journal_retention": "1d",
        "inactivity_timeout": "1m",
        "abort_timeout": "10m",
        "enable_lazy_state": false,
        "retry_policy": {
            "initial_interval": "500ms",
            "exponentiation_factor": 2.0,
            "max_attempts": 70,
            "max_interval": "1m",
            "on_max_attempts": "Pause"
        }
    })
}

fn expected_counter_handlers() -> Value {
    json!([
        {
            "name": "add",
            "ty": "Exclusive",
            "inactivity_timeout": "1m 30s",
            "public": true,
            "input_description": "application/json",
            "output_description": "application/json",
            "retry_policy": {"max_attempts": null}
        },
        {
            "name": "get",
            "ty": "Shared",
            "public": true,
            "input_description": "*/*",
            "output_description": "JSON number",
            "output_json_schema": {"type": "number"},
            "retry_policy": {"max_attempts": null}
        }
    ])
}

fn expected_counter(id: &str) -> Value {
    json!({
        "name": "Counter",
        "ty": "VirtualObject",
        "handlers": expected_counter_handlers(),
        "metadata": {"owner": "team-a"},
        "deployment_id": id,
        "revision": 1,
        "public": true,
        "idempotency_retention": "1h",
        "journal_retention": "1d",
        "inactivity_timeout": "1m",
        "abort_timeout": "10m",
        "enable_lazy_state": false,
        "retry_policy": {
            "initial_interval": "500ms",
            "exponentiation_factor": 2.0,
            "max_attempts": 70,
            "max_interval": "1m",
            "on_max_attempts": "Pause"
        }
    })
}

#[tokio::test]
async fn service_descriptors_are_exact() {
    let server = start().await;
    let id = register_directly(&server);

    // Services are listed by name.
    let services = json!({"services": [expected_counter(&id), expected_greeter(&id)]});
    assert_eq!(server.get_json("/v4/services").await, services);
    assert_eq!(server.get_json("/services").await, services);
    assert_eq!(server.get_json("/v3/services/Counter").await, expected_counter(&id));
    assert_eq!(server.get_json("/v4/services/Greeter").await, expected_greeter(&id));
    assert_eq!(
        server.get_json("/v4/services/Counter/handlers").await,
        json!({"handlers": expected_counter_handlers()})
    );
    assert_eq!(
        server.get_json("/v4/services/Counter/handlers/get").await,
        expected_counter_handlers()[1]
    );
    let body = server.get("/v4/services/Counter/handlers/nope").await.error(StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "The requested handler 'nope' on service 'Counter' does not exist");
    assert_no_warnings();
}

#[tokio::test]
async fn deployment_descriptors_are_exact() {
    let server = start().await;
    let id = register_directly(&server);

    let common = json!({
        "id": id,
        "uri": "http://127.0.0.1:9080/",
        "protocol_type": "BidiStream",
        "http_version": "HTTP/2.0",
        "additional_headers": {"x-api-key": "secret"},
        "metadata": {"env": "test"},
        "created_at": "2026-01-02T03:04:05.123Z",
        "min_protocol_version": 5,
        "max_protocol_version": 6,
        "sdk_version": "restate-sdk-typescript/1.16.8",
    });
    let with_services = |services: Value| {
        let mut d = common.clone();
        d["services"] = services;
        d
    };
    assert_eq!(
        server.get_json("/v4/deployments").await,
        json!({"deployments": [with_services(json!([
            {"name": "Greeter", "revision": 1},
            {"name": "Counter", "revision": 1}
        ]))]})
    );
    assert_eq!(
        server.get_json(&format!("/v4/deployments/{id}")).await,
        with_services(json!([expected_greeter(&id), expected_counter(&id)]))
    );

    // DELETE without force: 501 with no body, as Restate; PUT is deprecated under V3+.
    let delete = server.call(Method::DELETE, &format!("/v4/deployments/{id}"), None).await;
    assert_eq!(delete.status, StatusCode::NOT_IMPLEMENTED);
    assert!(delete.body.is_empty());
    server
        .call(Method::PUT, &format!("/v4/deployments/{id}"), Some("{}"))
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    // Forced removal takes the deployment and the services it served.
    let delete =
        server.call(Method::DELETE, &format!("/v4/deployments/{id}?force=true"), None).await;
    assert_eq!(delete.status, StatusCode::ACCEPTED);
    assert_eq!(server.get_json("/v4/deployments").await, json!({"deployments": []}));
    assert_eq!(server.get_json("/v4/services").await, json!({"services": []}));
    assert_no_warnings();
}

// ---------------------------------------------------------------------------------------------
// Updating a deployment (`PATCH /deployments/{id}`) at the registry.

fn discovered(manifest: Value) -> DiscoveredEndpoint {
    DiscoveredEndpoint {
        manifest_version: ManifestVersion::V3,
        endpoint: serde_json::from_value(manifest).unwrap(),
        http_version: http::Version::HTTP_2,
        server: None,
    }
}

#[tokio::test]
async fn deployment_updates_keep_pinned_invocations_servable_unless_overwritten() {
    let server = start().await;
    let id = register_directly(&server);
    let registry = &server.registry;
    let headers = BTreeMap::new();
    let update = |m: Value, overwrite: bool| {
        registry.update(
            &id,
            "http://127.0.0.1:9081/",
            headers.clone(),
            overwrite,
            false,
            &discovered(m),
        )
    };
    let before = registry.snapshot();
    // Without overwrite: a dropped service, a dropped handler, a type change or other
    // protocol versions are refused, and nothing changes.
    let mut no_counter = manifest("VIRTUAL_OBJECT");
    no_counter["services"].as_array_mut().unwrap().retain(|s| s["name"] != "Counter");
    let mut no_get = manifest("VIRTUAL_OBJECT");
    no_get["services"][1]["handlers"].as_array_mut().unwrap().retain(|h| h["name"] != "get");
    let mut other_versions = manifest("VIRTUAL_OBJECT");
    other_versions["maxProtocolVersion"] = json!(7);
    for (m, says) in [
        (no_counter.clone(), "does not serve service 'Counter'"),
        (no_get, "no handler 'get'"),
        (manifest("WORKFLOW"), "is a Workflow"),
        (other_versions, "protocol versions 5..=7"),
    ] {
        let err = update(m, false).expect_err(says).to_string();
        assert!(err.contains(says), "{err}");
    }
    assert_eq!(registry.snapshot().services, before.services);
    assert_eq!(registry.snapshot().deployments, before.deployments);
    // Added services are fine; the address moves, the id and revisions stay.
    let mut extra = manifest("VIRTUAL_OBJECT");
    extra["services"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "Extra", "ty": "SERVICE", "handlers": []}));
    let (d, _) = update(extra, false).unwrap().unwrap();
    assert_eq!(d.id, id);
    assert_eq!(d.uri, "http://127.0.0.1:9081/");
    let schema = registry.snapshot();
    assert_eq!(schema.service("Counter").unwrap().revision, 1);
    assert_eq!(schema.service("Extra").unwrap().deployment_id, id);
    // With overwrite the dropped services go: nothing would answer their calls.
    let (d, _) = update(no_counter, true).unwrap().unwrap();
    let schema = registry.snapshot();
    assert!(schema.service("Counter").is_none() && schema.service("Extra").is_none());
    assert_eq!(d.services, vec![("Greeter".to_string(), 1)]);
    assert_eq!(schema.deployment(&id).unwrap().services, d.services);
    // Another deployment's address and headers are refused.
    let other = DeploymentId(0x0fed_cba9_8765_4321_0fed_cba9_8765_4321);
    registry
        .register(
            Registration {
                uri: "http://127.0.0.1:9082/".to_owned(),
                additional_headers: BTreeMap::new(),
                metadata: BTreeMap::new(),
                force: true,
                dry_run: false,
                now_ms: CREATED_MS,
                new_id: other,
            },
            &discovered(manifest("VIRTUAL_OBJECT")),
        )
        .unwrap();
    let err = registry
        .update(
            &id,
            "http://127.0.0.1:9082/",
            BTreeMap::new(),
            true,
            false,
            &discovered(manifest("VIRTUAL_OBJECT")),
        )
        .expect_err("a twin")
        .to_string();
    assert!(err.contains("already has this address"), "{err}");
    assert_no_warnings();
}
