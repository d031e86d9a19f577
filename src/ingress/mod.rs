//! The ingress: Restate's HTTP API for calling handlers (default port 8080).
//!
//! Routes in this version: `POST|GET /{Service}/{handler}[/send]`,
//! `/{Object}/{key}/{handler}[/send]` and their 1.7 forms `/restate/call|send/{Service}[/{key}]/{handler}`
//! (whether a key segment is expected follows from the registered service type;
//! `idempotency-key` and workflow `run` handlers get deterministic invocation ids;
//! `/restate/scope/{scope}/call|send/...` is refused with 400, as Restate does without its
//! experimental vqueues), `POST /restate/a|awakeables/{id}/resolve|reject`,
//! `GET /restate/invocation/{id}/attach|output`, `/restate/attach|output/{id}`,
//! `/restate/workflow/{name}/{key}/attach|output`,
//! `/restate/invocation/{service}[/{key}]/{handler}/{idempotency key}/attach|output` (only
//! object and workflow keys are percent-decoded, as in Restate: service, handler and
//! idempotency-key segments are taken as they are; the service must exist; segments after the
//! verb are ignored; other shapes under `/restate/...` are 400 with Restate's messages),
//! `POST /restate/attach|output|lookup` (a JSON body names the invocation: by id, workflow or
//! idempotency key; lookup answers its id without looking it up), and
//! `GET /restate/health`. Errors are JSON
//! `{"code","message","source":"ingress"}` with `x-restate-error-source: ingress`; a terminal
//! failure of the invocation is `{"code","message","source":"invocation"}` with `x-restate-error-source: invocation`
//! and the failure's code as status.
//!
//! Invariants: a call is answered only with the outcome the partition processor applied from
//! a durable record; a send is answered 202 only after its invocation record is durable, and
//! only by a partition that runs (otherwise 503 with a stable code). The ingress reaches
//! partitions only through `partition::Router`. Memory is bounded: at most
//! `concurrency_max` requests are served at once and request bodies in memory together stay
//! within `body_bytes_inflight_max`; past either the ingress answers 429 at once.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;

use crate::codes::{self, Code};
use crate::fsm::{
    idempotent_id, limits, outcome, partition_key_of, record, scoped_id, sink, workflow_id, Attach,
    Failure, FsmRead, HandlerKind, Header, Invoke, Outcome, Phase, Record, Signal, Sink, Status,
};
use crate::partition::{AppendError, Router};
use crate::protocol::discovery::ServiceType;
use crate::protocol::ids::{IdSource, InvocationId};
use crate::schema::{HandlerSchema, Registry};

/// Limits of the ingress.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body. Bytes.
    pub request_size_limit_bytes: usize,
    /// Requests served at once (`ingress.concurrent-api-requests-limit`).
    pub concurrency_max: usize,
    /// Request bodies held in memory at once, all requests together. Bytes.
    pub body_bytes_inflight_max: usize,
}

/// Shared state of the ingress server.
#[derive(Debug)]
pub struct IngressState {
    pub registry: Arc<Registry>,
    pub router: Router,
    pub limits: Limits,
    clock: crate::clock::SharedClock,
    ids: IdSource,
    concurrency: Arc<tokio::sync::Semaphore>,
    body_bytes: Arc<tokio::sync::Semaphore>,
}

impl IngressState {
    pub fn new(
        registry: Arc<Registry>,
        router: Router,
        limits: Limits,
        clock: crate::clock::SharedClock,
    ) -> IngressState {
        IngressState {
            registry,
            router,
            concurrency: Arc::new(tokio::sync::Semaphore::new(limits.concurrency_max.max(1))),
            body_bytes: Arc::new(tokio::sync::Semaphore::new(
                limits.body_bytes_inflight_max.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            ids: IdSource::new(clock.clone()),
            clock,
            limits,
        }
    }
}

/// The ingress router: everything goes through one handler that parses the path.
pub fn router(state: Arc<IngressState>) -> axum::Router {
    axum::Router::new().fallback(with_cors).with_state(state)
}

/// CORS as Restate's ingress answers it (the request's origin, method and headers mirrored,
/// credentials allowed, preflights answered here), so a page on another origin (the web UI's
/// playground on the admin port) can call handlers. `x-restate-id` is exposed as well, so
/// such a page can link a call to its invocation.
async fn with_cors(st: State<Arc<IngressState>>, req: Request<Body>) -> Response {
    use http::header as h;
    let origin = req.headers().get(h::ORIGIN).cloned();
    let Some(origin) = origin else { return handle(st, req).await };
    let preflight = req.method() == http::Method::OPTIONS
        && req.headers().contains_key(h::ACCESS_CONTROL_REQUEST_METHOD);
    let mut r = if preflight {
        let mut r = StatusCode::OK.into_response();
        let hs = r.headers_mut();
        if let Some(m) = req.headers().get(h::ACCESS_CONTROL_REQUEST_METHOD) {
            hs.insert(h::ACCESS_CONTROL_ALLOW_METHODS, m.clone());
        }
        if let Some(asked) = req.headers().get(h::ACCESS_CONTROL_REQUEST_HEADERS) {
            hs.insert(h::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        hs.insert(
            h::VARY,
            HeaderValue::from_static(
                "origin, access-control-request-method, access-control-request-headers",
            ),
        );
        r
    } else {
        let mut r = handle(st, req).await;
        r.headers_mut()
            .insert(h::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("x-restate-id"));
        r.headers_mut().append(h::VARY, HeaderValue::from_static("origin"));
        r
    };
    let hs = r.headers_mut();
    hs.insert(h::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    hs.insert(h::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    r
}

fn coded(code: Code, message: impl std::fmt::Display) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut r = error(status, codes::message(code, message));
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// The answer to an append that failed.
fn append_error(e: AppendError) -> Response {
    match e {
        AppendError::Unavailable { .. } | AppendError::Fenced { .. } => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        AppendError::NoSpace => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        AppendError::TooLarge { .. } => error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        AppendError::Log { .. } => {
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot accept the invocation: {e}"))
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"code": status.as_u16(), "message": message.into(), "source": "ingress"});
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert("x-restate-error-source", HeaderValue::from_static("ingress"));
    r
}

/// Percent-decodes a path segment; a `%` not followed by two hex digits stays as it is (as in
/// Restate). An error when the result is not UTF-8.
fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = match b.get(i..i + 3) {
            Some(&[b'%', h, l]) => char::from(h).to_digit(16).zip(char::from(l).to_digit(16)),
            _ => None,
        };
        match escaped {
            Some((h, l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

async fn handle(State(st): State<Arc<IngressState>>, req: Request<Body>) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let well_formed =
        (2..=7).contains(&(path.matches('/').count())) && segs.iter().all(|s| !s.is_empty());
    // Health is answered outside the concurrency limit. Restate ignores segments after it.
    if well_formed && segs.starts_with(&["restate", "health"]) {
        if req.method() != Method::GET {
            return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        if let Some(r) = not_running(&st.router) {
            return r;
        }
        let schema = st.registry.snapshot();
        let names: Vec<&String> = schema.services.keys().collect();
        return axum::Json(serde_json::json!({ "services": names })).into_response();
    }
    let Ok(_slot) = st.concurrency.clone().try_acquire_owned() else {
        return coded(
            Code::Overloaded,
            format!(
                "the ingress serves {} requests at once already; retry shortly",
                st.limits.concurrency_max
            ),
        );
    };
    if !well_formed {
        return error(StatusCode::BAD_REQUEST, format!("bad path: {path}"));
    }
    if segs[0] == "restate" {
        return restate_route(&st, &segs, req).await;
    }
    if segs[0] == "openapi" {
        return error(StatusCode::NOT_FOUND, "not found");
    }
    invoke(&st, req, segs[0], &segs[1..], Form::Legacy, None).await
}

/// How a request's path names the handler it calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// `/{service}[/{key}]/{handler}[/send]`: a trailing `send` segment makes it a send.
    Legacy,
    /// `/restate/call/{service}[/{key}]/{handler}`.
    Call,
    /// `/restate/send/{service}[/{key}]/{handler}`.
    Send,
}

fn service_not_found(service: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "service '{service}' not found, make sure to register the service before calling it."
        ),
    )
}

/// The answer to a `/restate/...` path of the wrong shape.
fn bad_restate_path() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad path, expected /restate/call/:service/:handler, /restate/send/:service/:handler, \
         /restate/scope/:scope/call/:service/:handler, /restate/attach/:invocation_id, \
         /restate/output/:invocation_id, or /restate/lookup",
    )
}

/// A key (object, workflow or scope) from a path segment, percent-decoded; the 400 when it is
/// not UTF-8 (with Restate's message, which shows the bytes). Only keys are decoded: service,
/// handler and idempotency-key segments are taken as they are, as Restate does.
fn path_key(seg: &str) -> Result<String, Box<Response>> {
    percent_decode(seg).map_err(|e| {
        Box::new(error(StatusCode::BAD_REQUEST, format!("bad path, cannot decode key: {e:?}")))
    })
}

/// Calls or sends to `service`: `rest` is the path after the service segment (see [`Form`]).
/// A request with a `scope` is refused, as Restate does without its experimental vqueues.
async fn invoke(
    st: &IngressState,
    req: Request<Body>,
    service: &str,
    rest: &[&str],
    form: Form,
    scope: Option<String>,
) -> Response {
    let schema = st.registry.snapshot();
    let Some(service) = schema.service(service) else {
        return service_not_found(service);
    };
    let keyed = service.ty != ServiceType::Service;
    let arity = if keyed { 2 } else { 1 };
    let (rest, send) = match form {
        Form::Legacy if rest.len() == arity + 1 && rest[arity] == "send" => (&rest[..arity], true),
        Form::Legacy | Form::Call => (rest, false),
        Form::Send => (rest, true),
    };
    if rest.len() != arity {
        return match form {
            Form::Legacy => error(
                StatusCode::BAD_REQUEST,
                "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler",
            ),
            Form::Call | Form::Send => bad_restate_path(),
        };
    }
    let (key, handler_name) = if keyed {
        match path_key(rest[0]) {
            Ok(key) => (key, rest[1]),
            Err(r) => return *r,
        }
    } else {
        (String::new(), rest[0])
    };
    let Some(handler) = service.handlers.get(handler_name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "the service '{}' exists, but the handler '{handler_name}' was not found, check that the handler exists in the latest registered service version.",
                service.name
            ),
        );
    };
    if !handler.public {
        return error(StatusCode::BAD_REQUEST, "the invoked service is not public");
    }
    // An empty idempotency key is a key, as in Restate.
    let idempotency_key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => match header_str("idempotency-key", v) {
            Ok(k) => Some(k.to_string()),
            Err(r) => return *r,
        },
    };
    let workflow_run = handler.kind.fsm_kind() == HandlerKind::WorkflowRun;
    if idempotency_key.is_some() && workflow_run {
        return error(
            StatusCode::BAD_REQUEST,
            "cannot use the idempotency key with workflow handlers. The handler invocation will already be idempotent by the workflow key itself.",
        );
    }
    if let Some(scope) = &scope {
        if let Err(r) = check_scope(scope) {
            return *r;
        }
        return error(StatusCode::BAD_REQUEST, "scoped invocations require vqueues to be enabled");
    }
    if req.method() != Method::GET && req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let delay_ms = match delay_of(req.uri().query()) {
        Ok(d) => d,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    if delay_ms.is_some() && !send {
        return error(
            StatusCode::BAD_REQUEST,
            "cannot use the delay query parameter with calls. The delay is supported only with sends",
        );
    }
    let headers = forwarded_headers(req.headers(), req.uri());
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Err(v) = limits::check_object_key(&key) {
        return coded(v.code, &v.detail);
    }
    let (body, _body_permit) = match read_body(st, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(msg) = validate_input(handler, content_type.as_deref(), &body) {
        return error(StatusCode::BAD_REQUEST, format!("input validation error: {msg}"));
    }
    let headers = match headers {
        Ok(h) => h,
        Err(r) => return *r,
    };

    let kind = handler.kind.fsm_kind();
    let id = if workflow_run {
        workflow_id(&service.name, &key)
    } else if let Some(ik) = &idempotency_key {
        idempotent_id(&service.name, keyed.then_some(key.as_str()), &handler.name, ik)
    } else {
        let (random_pk, uuid) = st.ids.next();
        let partition_key = if keyed { partition_key_of(&key) } else { random_pk };
        InvocationId { partition_key, uuid }
    };
    let deterministic = workflow_run || idempotency_key.is_some();
    let execute_at_ms = delay_ms.map(|d| st.clock.now_ms() + d).unwrap_or(0);
    let target = st.router.for_key(id.partition_key).clone();
    // A workflow or idempotent request seen before: a send says so, a repeated idempotent
    // call gets the stored result. (Two first requests racing both append; the state machine
    // keeps the first and treats the second as a duplicate.)
    if deterministic {
        let existing = match read_status(st, &target, &id) {
            Ok(s) => s,
            Err(r) => return *r,
        };
        match existing {
            Some(prev) if send => {
                return accepted(&id, "PreviouslyAccepted", scheduled_at_ms(&prev))
            }
            Some(prev) if prev.phase() == Phase::Completed && !workflow_run => {
                let purge_at_ms = prev.purge_at_ms;
                let mut r = respond(&id, Some(handler), prev.outcome.unwrap_or_default());
                expires_header(&mut r, purge_at_ms);
                return r;
            }
            _ => {}
        }
    }
    let mut invoke = Invoke {
        invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
        service: service.name.clone(),
        handler: handler.name.clone(),
        key,
        kind: kind as i32,
        input: body,
        headers,
        sink: None,
        execute_at_ms,
        retention_ms: Some(handler.retention_ms(idempotency_key.is_some(), &schema.retention)),
        ack_request: 0,
        journal_retention_ms: Some(handler.journal_retention_ms(&schema.retention)),
        idempotency_key: idempotency_key.clone().unwrap_or_default(),
        caller: Bytes::new(),
    };
    if send && !deterministic {
        let rec = Record { header: None, kind: Some(record::Kind::Invoke(invoke)) };
        if let Err(e) = target.append(vec![rec]).await {
            return append_error(e);
        }
        return accepted(&id, "Accepted", execute_at_ms);
    }
    if send {
        // Whether this send created the workflow or idempotent invocation is known only once
        // its record is applied (another request may have come first): wait for that.
        let (request_id, rx, _guard) = st.router.waiters.register();
        invoke.ack_request = request_id;
        let rec = Record { header: None, kind: Some(record::Kind::Invoke(invoke)) };
        if let Err(e) = target.append(vec![rec]).await {
            return append_error(e);
        }
        return match rx.await {
            Ok((_, o)) => {
                let previously = matches!(&o.result,
                    Some(outcome::Result::Value(v)) if v.as_ref() == crate::fsm::ACK_PREVIOUSLY);
                if !previously {
                    return accepted(&id, "Accepted", execute_at_ms);
                }
                // The execution time is the first request's, while it waits for it.
                let existing = read_status(st, &target, &id).ok().flatten();
                accepted(&id, "PreviouslyAccepted", existing.map_or(0, |s| scheduled_at_ms(&s)))
            }
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down; the send is durable, send it again to learn its status",
            ),
        };
    }
    let (request_id, rx, _guard) = st.router.waiters.register();
    invoke.sink = Some(Sink { kind: Some(sink::Kind::Ingress(request_id)) });
    let rec = Record { header: None, kind: Some(record::Kind::Invoke(invoke)) };
    if let Err(e) = target.append(vec![rec]).await {
        return append_error(e);
    }
    drop(_body_permit);
    match rx.await {
        Ok((id, outcome)) => respond(&id, Some(handler), outcome),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down; the invocation continues and can be retried safely only with an idempotency key"),
    }
}

/// The `/restate/...` namespace: calls and sends, awakeables, attach, output and lookup.
async fn restate_route(st: &IngressState, segs: &[&str], req: Request<Body>) -> Response {
    match segs {
        ["restate", verb @ ("call" | "send"), service, rest @ ..] => {
            let form = if *verb == "call" { Form::Call } else { Form::Send };
            invoke(st, req, service, rest, form, None).await
        }
        ["restate", "scope", scope, verb @ ("call" | "send"), service, rest @ ..] => {
            let form = if *verb == "call" { Form::Call } else { Form::Send };
            match path_key(scope) {
                Ok(scope) => invoke(st, req, service, rest, form, Some(scope)).await,
                Err(r) => *r,
            }
        }
        ["restate", verb @ ("attach" | "output")] => match body_target(st, req, "request").await {
            Ok(id) => invocation_result(st, id, *verb == "attach").await,
            Err(r) => *r,
        },
        ["restate", "lookup"] => match body_target(st, req, "lookup").await {
            Ok(id) => {
                axum::Json(serde_json::json!({"invocationId": id.to_string()})).into_response()
            }
            Err(r) => *r,
        },
        ["restate", "awakeables" | "a", rest @ ..] => match rest {
            [id, verb, ..] => match *verb {
                "resolve" | "reject" => complete_awakeable(st, id, *verb == "resolve", req).await,
                _ => not_found(),
            },
            _ => error(
                StatusCode::BAD_REQUEST,
                "bad path, expected either /restate/awakeables/:id/resolve or \
                 /restate/awakeables/:id/reject",
            ),
        },
        ["restate", "workflow", rest @ ..] => {
            let [name, key, verb, ..] = rest else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad path, expected either /restate/workflow/:workflow_name/:workflow_key/output \
                     or /restate/workflow/:workflow_name/:workflow_key/attach",
                );
            };
            let key = match path_key(key) {
                Ok(key) => key,
                Err(r) => return *r,
            };
            let Some(attach) = attach_verb(verb) else { return not_found() };
            if req.method() != Method::GET {
                return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            invocation_result(st, workflow_id(name, &key), attach).await
        }
        ["restate", "invocation", rest @ ..] => invocation_route(st, rest, req).await,
        ["restate", verb @ ("attach" | "output"), id] => {
            let id = match parse_id(id) {
                Ok(id) => id,
                Err(r) => return *r,
            };
            if req.method() != Method::GET {
                return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            invocation_result(st, id, *verb == "attach").await
        }
        ["restate", "call" | "send" | "scope" | "attach" | "output" | "lookup", ..] => {
            bad_restate_path()
        }
        _ => not_found(),
    }
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}

/// `Some(true)` for `attach`, `Some(false)` for `output`.
fn attach_verb(verb: &str) -> Option<bool> {
    match verb {
        "attach" => Some(true),
        "output" => Some(false),
        _ => None,
    }
}

/// `GET /restate/invocation/...` (`rest` is the path after `invocation`): either
/// `{invocation id}/attach|output`, or `{service}[/{key}]/{handler}/{idempotency key}/attach|output`
/// where the service's type says whether a key segment is there. As in Restate: the service
/// must exist (its name and the handler's are not percent-decoded, nor is the idempotency key;
/// the key is); the handler need not; segments after the verb are ignored.
async fn invocation_route(st: &IngressState, rest: &[&str], req: Request<Body>) -> Response {
    let bad_shape = || {
        error(
            StatusCode::BAD_REQUEST,
            "bad path, expected either /restate/invocation/:invocation_id/output or \
             /restate/invocation/:invocation_id/attach or \
             /restate/invocation/:invocation_target/:idempotency_key/output or \
             /restate/invocation/:invocation_target/:idempotency_key/attach",
        )
    };
    let (id, attach) = match rest {
        [] | [_] => return bad_shape(),
        [id, verb] => {
            let Some(attach) = attach_verb(verb) else { return not_found() };
            match parse_id(id) {
                Ok(id) => (id, attach),
                Err(r) => return *r,
            }
        }
        [service, tail @ ..] => {
            let schema = st.registry.snapshot();
            let Some(service) = schema.service(service) else {
                return service_not_found(service);
            };
            let (key, handler, ik, verb) = match (service.ty != ServiceType::Service, tail) {
                (true, [key, handler, ik, verb, ..]) => (Some(*key), handler, ik, verb),
                (false, [handler, ik, verb, ..]) => (None, handler, ik, verb),
                _ => return bad_shape(),
            };
            let key = match key.map(path_key).transpose() {
                Ok(key) => key,
                Err(r) => return *r,
            };
            let Some(attach) = attach_verb(verb) else { return not_found() };
            (idempotent_id(&service.name, key.as_deref(), handler, ik), attach)
        }
    };
    if req.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    invocation_result(st, id, attach).await
}

fn parse_id(id: &str) -> Result<InvocationId, Box<Response>> {
    id.parse()
        .map_err(|e| Box::new(coded(Code::InvalidId, format!("bad invocation id '{id}': {e}"))))
}

/// The invocation a JSON body names (`POST /restate/attach|output|lookup`), by id, by
/// workflow or by idempotency key. Its id is computed, not looked up.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "target", rename_all = "camelCase", rename_all_fields = "camelCase")]
enum BodyTarget {
    Workflow {
        workflow_name: String,
        workflow_key: String,
        scope: Option<String>,
    },
    IdempotentInvocation {
        service: String,
        key: Option<String>,
        handler: String,
        idempotency_key: String,
        scope: Option<String>,
    },
    Invocation {
        invocation_id: String,
    },
}

/// Reads a body target (POST only). A body that is not one answers 500 `cannot read body`,
/// as Restate does.
async fn body_target(
    st: &IngressState,
    req: Request<Body>,
    what: &str,
) -> Result<InvocationId, Box<Response>> {
    if req.method() != Method::POST {
        return Err(Box::new(error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")));
    }
    let (body, _permit) = read_body(st, req.into_body()).await.map_err(Box::new)?;
    let target: BodyTarget = serde_json::from_slice(&body).map_err(|e| {
        Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read body: invalid {what} body: {e}"),
        ))
    })?;
    let (id, scope) = match target {
        BodyTarget::Invocation { invocation_id } => return parse_id(&invocation_id),
        BodyTarget::Workflow { workflow_name, workflow_key, scope } => {
            (workflow_id(&workflow_name, &workflow_key), scope)
        }
        BodyTarget::IdempotentInvocation { service, key, handler, idempotency_key, scope } => {
            (idempotent_id(&service, key.as_deref(), &handler, &idempotency_key), scope)
        }
    };
    match scope {
        Some(scope) => check_scope(&scope).map(|()| scoped_id(id, &scope)),
        None => Ok(id),
    }
}

/// The longest scope. Bytes.
const SCOPE_BYTES_MAX: usize = 36;

/// A scope is 1 to [`SCOPE_BYTES_MAX`] of `[a-zA-Z0-9_.-]`, as in Restate.
fn check_scope(scope: &str) -> Result<(), Box<Response>> {
    let why = if scope.is_empty() {
        "value cannot be empty".to_string()
    } else if scope.len() > SCOPE_BYTES_MAX {
        format!("value too long: {} bytes (max {SCOPE_BYTES_MAX})", scope.len())
    } else if !scope.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        "value contains characters outside the allowed set [a-zA-Z0-9_.-]".to_string()
    } else {
        return Ok(());
    };
    Err(Box::new(error(StatusCode::BAD_REQUEST, format!("bad scope value: {why}"))))
}

/// `POST /restate/a/{id}/resolve|reject`: the body is the value (resolve) or the failure
/// message (reject, code 500). 202 once the signal is durable in the owner's partition.
async fn complete_awakeable(
    st: &IngressState,
    id: &str,
    resolve: bool,
    req: Request<Body>,
) -> Response {
    if req.method() != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let a = match crate::fsm::parse_awakeable(id) {
        Ok(a) => a,
        Err(v) => return coded(v.code, v.detail),
    };
    let (body, _permit) = match read_body(st, req.into_body()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let result = if resolve {
        outcome::Result::Value(body)
    } else {
        outcome::Result::Failure(Failure {
            code: 500,
            message: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    let sig = Signal {
        invocation_id: Bytes::copy_from_slice(&a.invocation_id.to_bytes()),
        index: a.signal_index,
        name: String::new(),
        outcome: Some(Outcome { result: Some(result) }),
    };
    let target = st.router.for_key(a.invocation_id.partition_key);
    let rec = Record { header: None, kind: Some(record::Kind::Signal(sig)) };
    match target.append(vec![rec]).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => append_error(e),
    }
}

/// An invocation's status from its partition's store, or the answer when it cannot be read
/// (the partition does not run: 503; the store failed: 500).
fn read_status(
    st: &IngressState,
    target: &crate::partition::Handle,
    id: &InvocationId,
) -> Result<Option<Status>, Box<Response>> {
    let Some(store) = target.store() else {
        return Err(Box::new(not_running(&st.router).unwrap_or_else(|| {
            coded(Code::PartitionUnavailable, "the invocation's partition is not running")
        })));
    };
    store.begin_read().and_then(|r| r.status(id)).map_err(|e| {
        Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the invocation: {e}"),
        ))
    })
}

/// An invocation's result: now (`output`: 470 while it runs) or when it ends (`attach`).
async fn invocation_result(st: &IngressState, id: InvocationId, attach: bool) -> Response {
    let target = st.router.for_key(id.partition_key).clone();
    let mut status = match read_status(st, &target, &id) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if status.is_none() {
        // It may be in the log but not applied yet (a send is answered once durable).
        target.applied_caught_up().await;
        status = match read_status(st, &target, &id) {
            Ok(s) => s,
            Err(r) => return *r,
        };
    }
    let schema = st.registry.snapshot();
    let handler_of = |st: &Status| {
        schema.service(&st.service).and_then(|s| s.handlers.get(&st.handler)).cloned()
    };
    match status {
        Some(s) if s.phase() == Phase::Completed => {
            let h = handler_of(&s);
            let purge_at_ms = s.purge_at_ms;
            let mut r = respond(&id, h.as_ref(), s.outcome.unwrap_or_default());
            expires_header(&mut r, purge_at_ms);
            return r;
        }
        None if !attach => return error(StatusCode::NOT_FOUND, "invocation not found"),
        Some(_) if !attach => {
            return error(
                StatusCode::from_u16(470).unwrap_or(StatusCode::CONFLICT),
                "the invocation exists but has not completed yet",
            )
        }
        _ => {}
    }
    let (request_id, rx, _guard) = st.router.waiters.register();
    let a = Attach {
        invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
        sink: Some(Sink { kind: Some(sink::Kind::Ingress(request_id)) }),
        now: false,
    };
    let rec = Record { header: None, kind: Some(record::Kind::Attach(a)) };
    if let Err(e) = target.append(vec![rec]).await {
        return append_error(e);
    }
    match rx.await {
        Ok((id, outcome)) => {
            let handler = read_status(st, st.router.for_key(id.partition_key), &id)
                .ok()
                .flatten()
                .and_then(|s| handler_of(&s));
            respond(&id, handler.as_ref(), outcome)
        }
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; attach again to get the result",
        ),
    }
}

/// `idempotency-expires`: when a retained completed invocation is forgotten (RFC 3339 with
/// `+00:00`, as Restate writes it); none when it is kept without a retention.
fn expires_header(r: &mut Response, purge_at_ms: u64) {
    if purge_at_ms > 0 {
        let v = crate::timefmt::rfc3339_ms(purge_at_ms).replace('Z', "+00:00");
        r.headers_mut().insert("idempotency-expires", header_value(&v));
    }
}

/// When a scheduled invocation is to start; 0 once it has started (or was never delayed).
fn scheduled_at_ms(s: &Status) -> u64 {
    if s.phase() == Phase::Scheduled {
        s.execute_at_ms
    } else {
        0
    }
}

/// The 202 answer to a send. `executionTime` (nanosecond fraction, as Restate prints it) when
/// the invocation waits for a delay: this send's, or for `PreviouslyAccepted` the first one's
/// while it has not started.
fn accepted(id: &InvocationId, status: &str, execute_at_ms: u64) -> Response {
    // Fields in Restate's order.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Accepted<'a> {
        invocation_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        execution_time: Option<String>,
        status: &'a str,
    }
    let body = Accepted {
        invocation_id: id.to_string(),
        execution_time: (execute_at_ms > 0).then(|| crate::timefmt::rfc3339_ns(execute_at_ms)),
        status,
    };
    let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    r.headers_mut().insert("x-restate-id", header_value(&id.to_string()));
    r
}

/// A 503 naming the partitions that do not run, if any.
pub fn not_running(router: &Router) -> Option<Response> {
    let down: Vec<String> = router
        .liveness()
        .into_iter()
        .filter(|(_, l)| !l.is_running())
        .map(|(id, l)| format!("partition {id}: {l:?}"))
        .collect();
    if down.is_empty() {
        return None;
    }
    Some(coded(
        Code::PartitionUnavailable,
        format!("not every partition runs: {}", down.join("; ")),
    ))
}

/// Reads a request body within the size limit and the ingress-wide memory budget; the permit
/// holds the body's share of the budget until it is dropped.
async fn read_body(
    st: &IngressState,
    body: Body,
) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit), Response> {
    let limit = st.limits.request_size_limit_bytes;
    let too_large = || {
        coded(
            Code::MessageTooLarge,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let over_budget = || {
        coded(
            Code::Overloaded,
            format!(
                "request bodies in memory reached the ingress budget of {} bytes; retry shortly",
                st.limits.body_bytes_inflight_max
            ),
        )
    };
    let mut permit = match st.body_bytes.clone().try_acquire_many_owned(0) {
        Ok(p) => p,
        Err(_) => return Err(over_budget()),
    };
    let mut buf = bytes::BytesMut::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > limit {
            return Err(too_large());
        }
        let n = u32::try_from(data.len()).map_err(|_| too_large())?;
        match st.body_bytes.clone().try_acquire_many_owned(n) {
            Ok(p) => permit.merge(p),
            Err(_) => return Err(over_budget()),
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), permit))
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn respond(id: &InvocationId, handler: Option<&HandlerSchema>, outcome: Outcome) -> Response {
    let mut r = match outcome.result {
        Some(outcome::Result::Failure(f)) => {
            let status = StatusCode::from_u16(f.code as u16)
                .ok()
                .filter(|_| (100..=999).contains(&f.code))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r =
                (status, axum::Json(serde_json::json!({"code": f.code, "message": f.message, "source": "invocation"})))
                    .into_response();
            r.headers_mut()
                .insert("x-restate-error-source", HeaderValue::from_static("invocation"));
            r
        }
        Some(outcome::Result::Value(v)) => ok_body(handler, v),
        None => ok_body(handler, Bytes::new()),
    };
    r.headers_mut().insert("x-restate-id", header_value(&id.to_string()));
    r
}

/// Success body with the content type from the handler's registered output rule (JSON when
/// the handler is gone from the schema).
fn ok_body(handler: Option<&HandlerSchema>, v: Bytes) -> Response {
    let (ct, if_empty) = match handler.and_then(|h| h.output.as_ref()) {
        Some(o) => (o.content_type.clone(), o.set_content_type_if_empty.unwrap_or(false)),
        None => (Some("application/json".to_string()), false),
    };
    let mut r = Response::new(Body::from(v.clone()));
    if let Some(ct) = ct {
        if !v.is_empty() || if_empty {
            r.headers_mut().insert(http::header::CONTENT_TYPE, header_value(&ct));
        }
    }
    r
}

/// The headers the handler sees, as Restate forwards them: `x-restate-ingress-path` (the
/// request's path and query) first, then each request header but `connection`, `host`,
/// `idempotency-key` and `idempotency-expires` in the order they came, with the first value of
/// a repeated name only (a client's own `x-restate-ingress-path` comes later, so an SDK that
/// keeps the last value sees the client's). A forwarded value that is not visible ASCII
/// answers 400.
fn forwarded_headers(h: &HeaderMap, uri: &http::Uri) -> Result<Vec<Header>, Box<Response>> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = vec![Header { key: "x-restate-ingress-path".into(), value: path.to_string() }];
    for name in h.keys() {
        if matches!(
            name.as_str(),
            "connection" | "host" | "idempotency-key" | "idempotency-expires"
        ) {
            continue;
        }
        let Some(value) = h.get(name) else { continue };
        let value = header_str(name.as_str(), value)?;
        out.push(Header { key: name.as_str().to_string(), value: value.to_string() });
    }
    Ok(out)
}

/// A header's value as text, or Restate's 400 when it is not visible ASCII.
fn header_str<'a>(name: &str, value: &'a HeaderValue) -> Result<&'a str, Box<Response>> {
    value
        .to_str()
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, format!("bad header {name}: {e:?}"))))
}

/// The longest `?delay=`: about 100 years, so that `now + delay` can never overflow.
const DELAY_MS_MAX: u64 = 100 * 366 * 86_400_000;

/// `?delay=` in milliseconds (Restate's friendly durations: `10s`, `500ms`, `1h 30m`, `PT10S`).
fn delay_of(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k.eq_ignore_ascii_case("delay") {
            let v = percent_decode(v).unwrap_or_default();
            let d = crate::config::parse_duration("delay", &v)
                .ok()
                .filter(|d| d.as_millis() <= DELAY_MS_MAX as u128)
                .ok_or_else(|| format!("bad delay query parameter '{v}'"))?;
            return Ok(Some(d.as_millis() as u64));
        }
    }
    Ok(None)
}

/// Checks the request against the handler's input rules.
fn validate_input(
    handler: &HandlerSchema,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let Some(input) = &handler.input else { return Ok(()) };
    let required = input.required.unwrap_or(false);
    if body.is_empty() && content_type.is_none() && !required {
        return Ok(());
    }
    let Some(expected) = &input.content_type else {
        return if body.is_empty() { Ok(()) } else { Err("the handler takes no input".into()) };
    };
    let Some(got) = content_type else {
        return Err("Empty content-type".into());
    };
    if !content_type_matches(expected, got) {
        return Err(format!("Content-type '{got}' does not match '{expected}'"));
    }
    if input.json_schema.is_some() && body.is_empty() {
        return Err("expected a JSON body".into());
    }
    Ok(())
}

fn content_type_matches(expected: &str, got: &str) -> bool {
    let base = |s: &str| s.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (e, g) = (base(expected), base(got));
    if e == "*/*" || e == g {
        return true;
    }
    match e.strip_suffix("/*") {
        Some(prefix) => g.split('/').next() == Some(prefix),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_match_like_accept_headers() {
        assert!(content_type_matches("application/json", "application/json; charset=utf-8"));
        assert!(content_type_matches("text/*", "text/plain"));
        assert!(content_type_matches("*/*", "anything/else"));
        assert!(!content_type_matches("application/json", "text/plain"));
    }

    #[test]
    fn delays_parse_friendly_durations() {
        assert_eq!(delay_of(Some("delay=10s")), Ok(Some(10_000)));
        assert_eq!(delay_of(Some("x=1&DELAY=500ms")), Ok(Some(500)));
        assert_eq!(delay_of(Some("x=1")), Ok(None));
        assert!(delay_of(Some("delay=soon")).is_err());
        assert!(delay_of(Some("delay=18446744073709551615ms")).is_err());
        assert!(delay_of(Some("delay=PT99999999999999999999999999S")).is_err());
        assert_eq!(delay_of(Some("delay=3650d")), Ok(Some(3650 * 86_400_000)));
    }

    #[test]
    fn keys_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b").ok().as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz%4").ok().as_deref(), Some("%zz%4"));
        assert!(percent_decode("%ff").is_err());
    }
}
