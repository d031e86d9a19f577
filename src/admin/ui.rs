//! The web UI on the admin port: the embedded files of `admin-ui/www/` at `/ui/`, and the
//! UI's own JSON routes under `/internal/ui/` (keyset-paged invocation lists, exact counts,
//! one invocation's story, size-gated payloads, object state, locks and inboxes, batch
//! actions by filter with a dry run) and its server-sent event feed. The reads themselves are
//! in [`super::ui_read`]; every action goes through the same code as the admin API's.
//!
//! Invariants:
//! - The files served are the ones embedded at build time (`build.rs`); a debug build prefers
//!   the source folder when it exists, so a page edit needs no rebuild.
//! - Store reads run on blocking threads; a request never waits on a partition processor.
//! - The event feed ends when the node starts stopping, so an open UI never holds a drain.
//! - Nothing larger than a preview goes into a JSON answer; whole values only as downloads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value as Json_};

use super::ui_read::{self as read, Filter, ReadError, View};
use super::{AdminError, Api};
use crate::protocol::ids::InvocationId;
use crate::timefmt::now_ms;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// Rows of one list page at most.
const PAGE_LIMIT_MAX: usize = 500;
/// Rows of one list page unless asked otherwise.
const PAGE_LIMIT_DEFAULT: usize = 50;
/// Invocations one batch call acts on at most; `more` tells the UI to call again.
const BATCH_MATCH_MAX: usize = 10_000;
/// Actions of one batch in flight at once (as the id-list batch route).
const BATCH_CONCURRENCY: usize = 16;
/// Events are coalesced over this long: a busy node sends a few events a second, not one per
/// applied batch.
const EVENT_COALESCE: Duration = Duration::from_millis(250);
/// A comment line this often keeps proxies from closing an idle stream.
const EVENT_KEEPALIVE: Duration = Duration::from_secs(15);
/// How often the feed looks for schema changes (deployments, service options).
const SCHEMA_CHECK: Duration = Duration::from_secs(1);
/// Longest cursor accepted, in hex digits: a status key, or the longest object key (the
/// state list's cursor).
const CURSOR_HEX_MAX: usize = 2 * (crate::fsm::limits::OBJECT_KEY_BYTES_MAX + 64);
/// Event feeds open at once; one more is answered 503 (each costs a task and a wake-up per
/// applied batch).
const EVENT_FEEDS_MAX: usize = 64;
/// Object keys one state page lists.
const STATE_KEYS_DEFAULT: usize = 100;

/// The UI routes, served without a version prefix only.
pub(super) fn routes(api: Api) -> Router {
    Router::new()
        .route("/", get(to_ui))
        .route("/ui", get(to_ui))
        .route("/ui/", get(ui_file_root))
        .route("/ui/{*path}", get(ui_file))
        .route("/internal/ui/invocations", get(list))
        .route("/internal/ui/counts", get(counts))
        .route("/internal/ui/invocations/{id}", get(detail))
        .route("/internal/ui/invocations/{id}/journal/{index}", get(payload))
        .route("/internal/ui/state/{service}", get(state_keys))
        .route("/internal/ui/state/{service}/{key}", get(state_of))
        .route("/internal/ui/state/{service}/{key}/{name}", get(state_value))
        .route("/internal/ui/objects/{service}/{key}", get(object))
        .route("/internal/ui/batch/{op}", axum::routing::post(batch))
        .route("/internal/ui/events", get(events))
        .with_state(api)
}

// ---------------------------------------------------------------------------------------------
// Files.

async fn to_ui() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, "/ui/")]).into_response()
}

async fn ui_file_root(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// First path segments of the app's own routes: their URLs get the app even when a segment
/// (a state key, a service name) has a dot in it.
const APP_ROUTES: [&str; 9] = [
    "invocations",
    "deployments",
    "services",
    "state",
    "objects",
    "workflows",
    "sql",
    "playground",
    "settings",
];

async fn ui_file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // Client routes get the app; anything else must be a file.
    let first = path.split('/').next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    if path.is_empty() || APP_ROUTES.contains(&first) || !last.contains('.') {
        return serve("index.html", &headers);
    }
    serve(&path, &headers)
}

/// The embedded file `path` (relative to `www/`), or 404.
pub fn asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    assets::ASSETS
        .binary_search_by(|(p, _, _)| (*p).cmp(path))
        .ok()
        .map(|i| (assets::ASSETS[i].1, assets::ASSETS[i].2))
}

/// Every embedded path, for tests and the size report.
pub fn asset_paths() -> impl Iterator<Item = &'static str> {
    assets::ASSETS.iter().map(|(p, _, _)| *p)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    if path.split('/').any(|c| c == ".." || c.is_empty()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (bytes, ty): (std::borrow::Cow<'static, [u8]>, &'static str) = match from_disk(path) {
        Some(found) => found,
        None => match asset(path) {
            Some((b, t)) => (b.into(), t),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&bytes));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(bytes.into_owned()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
        r
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

/// A debug build serves the source folder when it exists (edit, reload); release builds only
/// what they embedded.
#[cfg(debug_assertions)]
fn from_disk(path: &str) -> Option<(std::borrow::Cow<'static, [u8]>, &'static str)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("admin-ui").join("www");
    let bytes = std::fs::read(root.join(path)).ok()?;
    let ty = asset(path).map(|(_, t)| t).unwrap_or(match path.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    });
    Some((bytes.into(), ty))
}

#[cfg(not(debug_assertions))]
fn from_disk(_path: &str) -> Option<(std::borrow::Cow<'static, [u8]>, &'static str)> {
    None
}

// ---------------------------------------------------------------------------------------------
// Reads.

fn bad_filter(e: read::BadFilter) -> AdminError {
    AdminError::InvalidPathParam { param: e.param, reason: e.reason }
}

fn read_failed(e: ReadError) -> AdminError {
    match (e.unavailable, e.too_large) {
        (true, _) => AdminError::Unavailable(e.message),
        (_, true) => AdminError::TooLarge(e.message),
        _ => AdminError::Internal(e.message),
    }
}

fn partitions(api: &Api) -> Result<crate::partition::Router, AdminError> {
    api.state
        .partitions
        .clone()
        .ok_or_else(|| AdminError::Unavailable("this node runs no partitions".into()))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, AdminError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(read_failed),
        Err(e) => Err(AdminError::Internal(format!("read task failed: {e}"))),
    }
}

fn server_timing(mut r: Response, started: std::time::Instant) -> Response {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("read;dur={ms:.2}")) {
        r.headers_mut().insert("server-timing", v);
    }
    r
}

/// The cursor is the status key of the last row returned, in hex.
fn parse_cursor(params: &BTreeMap<String, String>) -> Result<Option<Vec<u8>>, AdminError> {
    let Some(c) = params.get("cursor").filter(|c| !c.is_empty()) else { return Ok(None) };
    let bad = || AdminError::InvalidPathParam {
        param: "cursor",
        reason: format!("'{c}' is not a cursor this server handed out"),
    };
    if c.len() % 2 != 0 || c.len() > CURSOR_HEX_MAX {
        return Err(bad());
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    c.as_bytes()
        .chunks(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<u8>, _>>()
        .map(Some)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_limit(
    params: &BTreeMap<String, String>,
    default: usize,
    max: usize,
) -> Result<usize, AdminError> {
    match params.get("limit").filter(|l| !l.is_empty()) {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(AdminError::InvalidPathParam {
                param: "limit",
                reason: format!("'{l}' is not a number from 1 to {max}"),
            }),
        },
    }
}

/// Runs `f` on every partition's snapshot in parallel; partitions that do not run are
/// reported as reasons.
async fn per_partition<T: Send + 'static>(
    router: &crate::partition::Router,
    f: impl Fn(&crate::store::ReadTxn) -> Result<T, ReadError> + Send + Sync + 'static,
) -> Result<(Vec<T>, Vec<String>), AdminError> {
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    let mut reasons = Vec::new();
    for h in router.partitions.iter() {
        match h.store() {
            Some(store) => {
                let f = f.clone();
                tasks.push(tokio::task::spawn_blocking(move || {
                    let txn = store.begin_read()?;
                    f(&txn)
                }));
            }
            None => reasons.push(format!("partition {} is not running", h.id)),
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => out.push(r.map_err(read_failed)?),
            Err(e) => return Err(AdminError::Internal(format!("read task failed: {e}"))),
        }
    }
    Ok((out, reasons))
}

async fn list(
    State(api): State<Api>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, AdminError> {
    let started = std::time::Instant::now();
    let filter = Filter::parse(&params, &["limit", "cursor", "order"]).map_err(bad_filter)?;
    let limit = parse_limit(&params, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX)?;
    let order = match params.get("order").map(String::as_str) {
        None | Some("") | Some("desc") => read::Order::Desc,
        Some("asc") => read::Order::Asc,
        Some(other) => {
            return Err(AdminError::InvalidPathParam {
                param: "order",
                reason: format!("'{other}' is not one of desc, asc"),
            })
        }
    };
    let cursor = parse_cursor(&params)?;
    let router = partitions(&api)?;
    let registry = api.state.registry.clone();
    let now = now_ms();
    let (parts, reasons) = per_partition(&router, {
        let filter = filter.clone();
        move |txn| {
            let schema = registry.snapshot();
            let view = View { schema: &schema, now_ms: now };
            read::page_part(txn, &filter, &view, cursor.as_deref(), limit, order)
        }
    })
    .await?;
    let (rows, next, scanned) = read::merge_pages(parts, limit, order);
    let schema = api.state.registry.snapshot();
    let view = View { schema: &schema, now_ms: now };
    let items: Vec<Json_> = rows.iter().map(|(id, st)| view.row(id, st)).collect();
    let body = json!({
        "items": items,
        "next_cursor": next.map(|c| hex(&c)),
        "scanned": scanned,
        "partial": !reasons.is_empty(),
        "reasons": reasons,
    });
    Ok(server_timing(Json(body).into_response(), started))
}

async fn counts(
    State(api): State<Api>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, AdminError> {
    let started = std::time::Instant::now();
    let filter = Filter::parse(&params, &[]).map_err(bad_filter)?;
    let router = partitions(&api)?;
    let registry = api.state.registry.clone();
    let now = now_ms();
    let (parts, reasons) = per_partition(&router, move |txn| {
        let schema = registry.snapshot();
        let view = View { schema: &schema, now_ms: now };
        let (mut counts, mut types) = (HashMap::new(), HashMap::new());
        read::count_part(txn, &filter, &view, &mut counts, &mut types)?;
        Ok((counts, types))
    })
    .await?;
    let (mut all, mut types) = (HashMap::new(), HashMap::new());
    for (c, t) in parts {
        for (k, n) in c {
            *all.entry(k).or_insert(0) += n;
        }
        types.extend(t);
    }
    let mut body = read::counts_json(all, types);
    body["partial"] = json!(!reasons.is_empty());
    body["reasons"] = json!(reasons);
    Ok(server_timing(Json(body).into_response(), started))
}

fn parse_invocation_id(id: &str) -> Result<InvocationId, AdminError> {
    id.parse().map_err(|e| AdminError::InvalidPathParam {
        param: "invocation_id",
        reason: format!("'{id}' is not an invocation id: {e}"),
    })
}

async fn detail(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, AdminError> {
    let started = std::time::Instant::now();
    let inv = parse_invocation_id(&id)?;
    let router = partitions(&api)?;
    let registry = api.state.registry.clone();
    let found = blocking(move || {
        let schema = registry.snapshot();
        read::detail(&router, &schema, &inv, now_ms())
    })
    .await?;
    match found {
        Some(body) => Ok(server_timing(Json(body).into_response(), started)),
        None => Err(AdminError::InvocationNotFound(id)),
    }
}

#[derive(serde::Deserialize, Default)]
struct DownloadParams {
    max: Option<usize>,
    download: Option<String>,
}

fn bytes_answer(bytes: Bytes, params: &DownloadParams, file: &str) -> Response {
    let download = params.download.as_deref().is_some_and(|d| d == "1" || d == "true");
    if download {
        let mut r = Response::new(Body::from(bytes));
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        let name: String = file
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        return r;
    }
    let max = params.max.unwrap_or(65_536).min(1 << 20);
    let total = bytes.len();
    let head = bytes.slice(..total.min(max));
    let mut r = Response::new(Body::from(head));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&total.to_string()) {
        h.insert("x-total-bytes", v);
    }
    r
}

async fn payload(
    State(api): State<Api>,
    Path((id, index)): Path<(String, String)>,
    Query(params): Query<DownloadParams>,
) -> Result<Response, AdminError> {
    let inv = parse_invocation_id(&id)?;
    let index: u32 = index.parse().map_err(|_| AdminError::InvalidPathParam {
        param: "index",
        reason: format!("'{index}' is not a journal index"),
    })?;
    let router = partitions(&api)?;
    let found = blocking(move || read::entry_payload(&router, &inv, index)).await?;
    match found {
        Some(bytes) => Ok(bytes_answer(bytes, &params, &format!("{id}-{index}.bin"))),
        None => Err(AdminError::InvocationNotFound(format!("{id} (journal entry {index})"))),
    }
}

fn keyed_service(api: &Api, service: &str) -> Result<(), AdminError> {
    let schema = api.state.registry.snapshot();
    match schema.services.get(service) {
        None => Err(AdminError::ServiceNotFound(service.to_string())),
        Some(s) if s.ty == crate::protocol::discovery::ServiceType::Service => {
            Err(AdminError::InvalidPathParam {
                param: "service",
                reason: format!("'{service}' is a plain service: it has no keys and no state"),
            })
        }
        Some(_) => Ok(()),
    }
}

async fn state_keys(
    State(api): State<Api>,
    Path(service): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, AdminError> {
    keyed_service(&api, &service)?;
    let limit = parse_limit(&params, STATE_KEYS_DEFAULT, 1000)?;
    let after = parse_cursor(&params)?;
    let router = partitions(&api)?;
    let (keys, more) =
        blocking(move || read::state_keys(&router, &service, after.as_deref(), limit)).await?;
    let next = match more {
        true => keys.last().map(|(k, _)| hex(k)),
        false => None,
    };
    let keys: Vec<Json_> = keys
        .iter()
        .map(|(k, n)| json!({"key": String::from_utf8_lossy(k), "entries": n}))
        .collect();
    Ok(Json(json!({"keys": keys, "next_cursor": next})).into_response())
}

async fn state_of(
    State(api): State<Api>,
    Path((service, key)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    keyed_service(&api, &service)?;
    let router = partitions(&api)?;
    let (s, k) = (service.clone(), key.clone());
    let entries = blocking(move || read::object_state(&router, &s, &k)).await?;
    let pairs: Vec<(&[u8], &[u8])> =
        entries.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
    let version = crate::fsm::state_version(&pairs);
    let entries: Vec<Json_> = entries
        .iter()
        .map(|(name, v)| {
            let (preview, truncated, is_json) = read::preview(v);
            json!({"name": String::from_utf8_lossy(name), "size": v.len(), "preview": preview,
                   "truncated": truncated, "json": is_json})
        })
        .collect();
    Ok(Json(json!({"service": service, "key": key, "version": version, "entries": entries}))
        .into_response())
}

async fn state_value(
    State(api): State<Api>,
    Path((service, key, name)): Path<(String, String, String)>,
    Query(mut params): Query<DownloadParams>,
) -> Result<Response, AdminError> {
    keyed_service(&api, &service)?;
    let router = partitions(&api)?;
    let (s, k, n) = (service.clone(), key.clone(), name.clone());
    let value = blocking(move || {
        let h = router.for_key(crate::fsm::partition_key_of(&k));
        let Some(store) = h.store() else {
            return Err(ReadError::not_running(h.id));
        };
        use crate::fsm::FsmRead;
        Ok(store.begin_read()?.state_get(&s, &k, n.as_bytes())?)
    })
    .await?;
    match value {
        Some(v) => {
            if params.download.is_none() && params.max.is_none() {
                params.download = Some("1".into());
            }
            Ok(bytes_answer(Bytes::from(v), &params, &format!("{service}-{key}-{name}")))
        }
        None => Err(AdminError::NotFound(format!("{service}/{key} has no state entry '{name}'"))),
    }
}

async fn object(
    State(api): State<Api>,
    Path((service, key)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    keyed_service(&api, &service)?;
    let router = partitions(&api)?;
    let registry = api.state.registry.clone();
    let body = blocking(move || {
        let schema = registry.snapshot();
        let view = View { schema: &schema, now_ms: now_ms() };
        read::object(&router, &view, &service, &key)
    })
    .await?;
    Ok(Json(body).into_response())
}

// ---------------------------------------------------------------------------------------------
// Batch actions by filter.

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchByFilter {
    #[serde(default)]
    filter: serde_json::Map<String, Json_>,
    #[serde(default)]
    dry_run: bool,
    /// Acting on every invocation needs saying so: an empty filter alone is refused.
    #[serde(default)]
    all: bool,
    /// Where the previous call stopped (its `next_cursor`): a run acts on at most
    /// [`BATCH_MATCH_MAX`] invocations, in the list's order.
    cursor: Option<String>,
    deployment: Option<String>,
}

/// A batch body's filter as the query parameters the list takes. Values are strings,
/// numbers or (for status lists) arrays of strings; anything else names the field.
fn filter_params(
    filter: &serde_json::Map<String, Json_>,
) -> Result<BTreeMap<String, String>, AdminError> {
    let mut out = BTreeMap::new();
    for (k, v) in filter {
        let bad = |why: &str| AdminError::InvalidField {
            field: "filter",
            reason: format!("'{k}': {why}"),
        };
        let text = match v {
            Json_::String(s) if s.trim().is_empty() => return Err(bad("is empty")),
            Json_::String(s) => s.clone(),
            Json_::Number(n) => n.to_string(),
            Json_::Array(_) if k != "status" && k != "status_not" => {
                return Err(bad("takes one value, not a list"))
            }
            Json_::Array(a) if a.is_empty() => return Err(bad("is an empty list")),
            Json_::Array(a) => a
                .iter()
                .map(|x| match x.as_str() {
                    Some(w) if !w.trim().is_empty() && !w.contains(',') => Ok(w.to_string()),
                    _ => Err(bad("lists only non-empty status words")),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ => return Err(bad("must be a string, a number or a list of strings")),
        };
        out.insert(k.clone(), text);
    }
    Ok(out)
}

async fn batch(
    State(api): State<Api>,
    Path(op): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    use futures_util::StreamExt;
    let Some(name) = super::OpName::parse(&op)? else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let req: BatchByFilter =
        serde_json::from_slice(&body).map_err(|e| AdminError::InvalidBody(e.to_string()))?;
    let filter = Filter::parse(&filter_params(&req.filter)?, &[]).map_err(bad_filter)?;
    if filter.is_empty() && !req.all {
        return Err(AdminError::InvalidField {
            field: "filter",
            reason: "an empty filter matches every invocation; say \"all\": true to mean that"
                .into(),
        });
    }
    let mut params = BTreeMap::new();
    if let Some(c) = &req.cursor {
        params.insert("cursor".to_string(), c.clone());
    }
    let cursor = parse_cursor(&params)?;
    // The deployment is checked before anything, a dry run included.
    let default = name.deployment_default().unwrap_or("");
    let deployment = super::deployment_param(&api, req.deployment, default)?;
    let router = partitions(&api)?;
    let registry = api.state.registry.clone();
    let now = now_ms();
    if req.dry_run {
        // Every match, to the end of every partition.
        let (parts, reasons) = per_partition(&router, move |txn| {
            let schema = registry.snapshot();
            let view = View { schema: &schema, now_ms: now };
            let mut matched = 0usize;
            read::walk_part(txn, &filter, &view, cursor.as_deref(), usize::MAX, |_, _| {
                matched += 1
            })?;
            Ok(matched)
        })
        .await?;
        let matched: usize = parts.iter().sum();
        return Ok(Json(json!({"matched": matched, "partial": !reasons.is_empty(),
                              "reasons": reasons}))
        .into_response());
    }
    // The next BATCH_MATCH_MAX matches in the list's order, and where to go on from: rows
    // acted on are never revisited by a later call with that cursor, even when they still
    // match (a cancelled invocation is still "failed"), and invocations created since (a
    // restart's new ones) sort above the cursor.
    let (parts, reasons) = per_partition(&router, move |txn| {
        let schema = registry.snapshot();
        let view = View { schema: &schema, now_ms: now };
        let mut matches = Vec::new();
        // Only the keys and ids are needed from here: the statuses are not kept.
        let frontier =
            read::walk_part(txn, &filter, &view, cursor.as_deref(), BATCH_MATCH_MAX, |k, id| {
                matches.push((k, id, Default::default()))
            })?;
        Ok(read::PartPage { scanned: 0, matches, frontier })
    })
    .await?;
    let (rows, next, _) = read::merge_pages(parts, BATCH_MATCH_MAX, read::Order::Desc);
    let matched = rows.len();
    let api_ref = &api;
    let results: Vec<(String, Result<(), AdminError>)> = futures_util::stream::iter(rows)
        .map(|(id, _)| {
            let deployment = deployment.clone();
            async move {
                let id = id.to_string();
                let r = super::run_named(api_ref, &id, name, deployment, 0).await.map(|_| ());
                (id, r)
            }
        })
        .buffer_unordered(BATCH_CONCURRENCY)
        .collect()
        .await;
    let mut succeeded = 0usize;
    let mut failed = Vec::new();
    for (id, r) in results {
        match r {
            Ok(()) => succeeded += 1,
            Err(e) => failed.push(json!({"invocation_id": id, "error": e.to_string()})),
        }
    }
    Ok(Json(json!({"matched": matched, "succeeded": succeeded, "failed": failed,
                   "more": next.is_some(), "next_cursor": next.map(|c| hex(&c)),
                   "partial": !reasons.is_empty(), "reasons": reasons}))
    .into_response())
}

// ---------------------------------------------------------------------------------------------
// Server-sent events.

/// Event feeds open now.
static EVENT_FEEDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts one open feed while it lives.
struct FeedSlot;

impl FeedSlot {
    fn take() -> Option<FeedSlot> {
        use std::sync::atomic::Ordering;
        let n = EVENT_FEEDS.fetch_add(1, Ordering::SeqCst);
        if n >= EVENT_FEEDS_MAX {
            EVENT_FEEDS.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(FeedSlot)
    }
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        EVENT_FEEDS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn events(State(api): State<Api>) -> Result<Response, AdminError> {
    let Some(slot) = FeedSlot::take() else {
        return Err(AdminError::Unavailable(format!(
            "{EVENT_FEEDS_MAX} event feeds are open already; close a UI tab"
        )));
    };
    let router = partitions(&api)?;
    let registry = api.state.registry.clone();
    let stopping = api.state.stopping.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(8);
    tokio::spawn(async move {
        let _slot = slot;
        let mut watches: Vec<(u16, tokio::sync::watch::Receiver<u64>)> =
            router.partitions.iter().map(|h| (h.id, h.subscribe_applied())).collect();
        for (_, w) in watches.iter_mut() {
            w.borrow_and_update();
        }
        let mut schema = registry.snapshot();
        let mut stopping = stopping;
        let mut last_sent = tokio::time::Instant::now();
        if tx
            .send(Ok(Bytes::from_static(b"retry: 2000\nevent: hello\ndata: {}\n\n")))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let changed = async {
                let futs = watches.iter_mut().map(|(_, w)| Box::pin(w.changed()));
                let (r, index, _) = futures_util::future::select_all(futs).await;
                r.map(|()| index)
            };
            let stop = async {
                match stopping.as_mut() {
                    Some(s) => {
                        let _ = s.wait_for(|v| *v).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let woke: Option<usize> = tokio::select! {
                r = changed => match r { Ok(i) => Some(i), Err(_) => return },
                _ = tokio::time::sleep(SCHEMA_CHECK) => None,
                _ = stop => return,
                _ = tx.closed() => return,
            };
            let mut out = String::new();
            if let Some(first) = woke {
                tokio::time::sleep(EVENT_COALESCE).await;
                // `changed` marked the first one seen already.
                let mut parts = vec![watches[first].0];
                for (id, w) in watches.iter_mut() {
                    if w.has_changed().unwrap_or(false) {
                        w.borrow_and_update();
                        if !parts.contains(id) {
                            parts.push(*id);
                        }
                    }
                }
                parts.sort_unstable();
                out.push_str(&format!(
                    "event: applied\ndata: {}\n\n",
                    json!({"partitions": parts})
                ));
            }
            let now_schema = registry.snapshot();
            if !Arc::ptr_eq(&now_schema, &schema) {
                schema = now_schema;
                out.push_str("event: schema\ndata: {}\n\n");
            }
            if out.is_empty() && last_sent.elapsed() >= EVENT_KEEPALIVE {
                out.push_str(": keepalive\n\n");
            }
            if !out.is_empty() {
                last_sent = tokio::time::Instant::now();
                if tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return;
                }
            }
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(r)
}
