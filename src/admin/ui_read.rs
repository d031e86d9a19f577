//! What the web UI reads from the partition stores: invocation rows under a filter (newest
//! first, keyset paged), exact counts, one invocation's whole story (journal, events, caller,
//! callees, what it waits on and the chain of what blocks it), size-gated payloads, object
//! state, locks and inboxes.
//!
//! Invariants:
//! - Every read runs on a blocking thread from read transactions (snapshots): the UI never
//!   holds a write lock or a partition processor.
//! - Lists go in creation order through the creation-time index (`Table::Created`), newest
//!   first unless asked otherwise; a page reads at most [`SCAN_BUDGET`] index rows per
//!   partition, whatever the filter, so a selective filter over a big table answers in
//!   bounded time with a cursor to go on from.
//! - A keyset page never skips a row: rows at or above the lowest key every partition has
//!   fully examined (the frontier) are returned; the cursor continues strictly below.
//! - One status word per invocation ([`status_word`]), the same for the list, the counts, the
//!   detail and batch actions.
//! - Previews are at most [`PREVIEW_BYTES`]; whole payloads only through the download routes.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use prost::Message;
use serde_json::{json, Value as Json};

use crate::fsm::storage::{decode_inbox_value, InboxEntry};
use crate::fsm::{outcome, sink, ty, FsmRead, HandlerKind, Phase, Status};
use crate::partition::{partition_of, Router};
use crate::protocol::discovery::ServiceType;
use crate::protocol::ids::InvocationId;
use crate::protocol::messages as m;
use crate::schema::Schema;
use crate::store::{schema, ReadTxn, ReadView, Scan, StoreError, Table};

/// Why a read failed: the store failed or held something undecodable (500), or the
/// partition that owns the data does not run right now (503).
#[derive(Debug)]
pub struct ReadError {
    pub message: String,
    pub unavailable: bool,
    /// More than the UI reads at once (answered 413 with a pointer to the CLI).
    pub too_large: bool,
}

impl ReadError {
    fn corrupt(message: String) -> ReadError {
        ReadError { message, unavailable: false, too_large: false }
    }

    pub fn not_running(partition: u16) -> ReadError {
        ReadError {
            message: format!("partition {partition} is not running; retry shortly"),
            unavailable: true,
            too_large: false,
        }
    }
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> ReadError {
        ReadError { message: e.to_string(), unavailable: false, too_large: false }
    }
}

/// Index rows one page reads from one partition at most (each costs a status lookup).
pub const SCAN_BUDGET: usize = 10_000;
/// Bytes of a payload shown inline.
pub const PREVIEW_BYTES: usize = 4096;
/// Journal entries one detail answer lists at most.
const JOURNAL_ENTRIES_MAX: u32 = 1000;
/// Links of a blocked-by chain followed at most (calls can chain and cycle through locks).
const CHAIN_MAX: usize = 8;
/// State entries of one object the UI reads at most.
const STATE_ENTRIES_MAX: usize = 10_000;
/// Bytes of one object's state the UI reads at most (the version covers every value, so a
/// state is read whole or not at all).
const STATE_READ_BYTES_MAX: usize = 256 << 20;
/// Bytes of journal payloads one invocation's story reads at most; entries past it are not
/// listed (`journal_truncated`).
const JOURNAL_READ_BYTES_MAX: usize = 32 << 20;
/// Bytes of each journal entry's inline preview in the detail (the page shows 100 rows at
/// first: about 50 KiB of previews).
const JOURNAL_PREVIEW_BYTES: usize = 512;
/// Journal entries read per page while building a story.
const JOURNAL_PAGE: u32 = 128;
/// Inbox rows one object answer lists.
const INBOX_ROWS_MAX: usize = 100;

/// The status words, in the order the UI shows them.
pub const STATUSES: [&str; 9] = [
    "scheduled",
    "pending",
    "ready",
    "running",
    "backing-off",
    "suspended",
    "paused",
    "succeeded",
    "failed",
];

/// An invocation's status as users see it: `sys_invocation`'s word, with `completed` split by
/// outcome.
pub fn status_word(st: &Status, now_ms: u64) -> &'static str {
    match st.phase() {
        Phase::Inboxed => "pending",
        Phase::Scheduled => "scheduled",
        Phase::Suspended => "suspended",
        Phase::Paused => "paused",
        Phase::Completed => match st.outcome.as_ref().and_then(|o| o.result.as_ref()) {
            Some(outcome::Result::Failure(_)) => "failed",
            _ => "succeeded",
        },
        Phase::Invoked if st.next_retry_at_ms > now_ms => "backing-off",
        Phase::Invoked => "running",
        Phase::Unspecified if st.failures > 0 => "backing-off",
        Phase::Unspecified => "ready",
    }
}

fn status_bit(word: &str) -> Option<u16> {
    STATUSES.iter().position(|s| *s == word).map(|i| 1u16 << i)
}

/// The filter's parameter names.
pub const FILTER_NAMES: [&str; 15] = [
    "id",
    "status",
    "status_not",
    "service",
    "handler",
    "key",
    "service_type",
    "deployment",
    "invoked_by",
    "invoked_by_id",
    "idempotency_key",
    "created_after",
    "created_before",
    "modified_after",
    "modified_before",
];

/// Why a filter was refused: the parameter and what is wrong with it.
#[derive(Debug)]
pub struct BadFilter {
    pub param: &'static str,
    pub reason: String,
}

/// Which invocations a list, a count or a batch action is about.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub id: Option<InvocationId>,
    status: u16,
    status_not: u16,
    service: Option<String>,
    handler: Option<String>,
    key: Option<String>,
    service_type: Option<&'static str>,
    deployment: Option<String>,
    invoked_by: Option<&'static str>,
    invoked_by_id: Option<InvocationId>,
    idempotency_key: Option<String>,
    created_after: Option<u64>,
    created_before: Option<u64>,
    modified_after: Option<u64>,
    modified_before: Option<u64>,
}

impl Filter {
    /// From query parameters (or a batch body's `filter` object turned into strings). Names
    /// in `also` (`limit`, `cursor` on the same query string) are skipped; any other unknown
    /// name is refused, so a misspelt filter never silently matches everything. Empty values
    /// mean unset.
    pub fn parse(params: &BTreeMap<String, String>, also: &[&str]) -> Result<Filter, BadFilter> {
        let mut f = Filter::default();
        for (name, value) in params {
            if also.contains(&name.as_str()) {
                continue;
            }
            if !FILTER_NAMES.contains(&name.as_str()) {
                return Err(BadFilter {
                    param: "filter",
                    reason: format!("unknown filter '{name}' (known: {})", FILTER_NAMES.join(", ")),
                });
            }
            let v = value.trim();
            if v.is_empty() {
                continue;
            }
            let text = || Some(v.to_string());
            match name.as_str() {
                "id" => f.id = Some(parse_id("id", v)?),
                "status" => f.status = parse_statuses("status", v)?,
                "status_not" => f.status_not = parse_statuses("status_not", v)?,
                "service" => f.service = text(),
                "handler" => f.handler = text(),
                "key" => f.key = text(),
                "service_type" => {
                    f.service_type = Some(match v {
                        "service" => "service",
                        "virtual_object" => "virtual_object",
                        "workflow" => "workflow",
                        _ => {
                            return Err(BadFilter {
                                param: "service_type",
                                reason: format!(
                                    "'{v}' is not one of service, virtual_object, workflow"
                                ),
                            })
                        }
                    })
                }
                "deployment" => f.deployment = text(),
                "invoked_by" => {
                    f.invoked_by = Some(match v {
                        "ingress" => "ingress",
                        "service" => "service",
                        "restart_as_new" => "restart_as_new",
                        _ => {
                            return Err(BadFilter {
                                param: "invoked_by",
                                reason: format!(
                                    "'{v}' is not one of ingress, service, restart_as_new"
                                ),
                            })
                        }
                    })
                }
                "invoked_by_id" => f.invoked_by_id = Some(parse_id("invoked_by_id", v)?),
                "idempotency_key" => f.idempotency_key = text(),
                "created_after" => f.created_after = Some(parse_ms("created_after", v)?),
                "created_before" => f.created_before = Some(parse_ms("created_before", v)?),
                "modified_after" => f.modified_after = Some(parse_ms("modified_after", v)?),
                "modified_before" => f.modified_before = Some(parse_ms("modified_before", v)?),
                _ => {}
            }
        }
        Ok(f)
    }

    /// Whether the filter lets every invocation through.
    pub fn is_empty(&self) -> bool {
        self.id.is_none()
            && self.status == 0
            && self.status_not == 0
            && self.service.is_none()
            && self.handler.is_none()
            && self.key.is_none()
            && self.service_type.is_none()
            && self.deployment.is_none()
            && self.invoked_by.is_none()
            && self.invoked_by_id.is_none()
            && self.idempotency_key.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
            && self.modified_after.is_none()
            && self.modified_before.is_none()
    }

    fn matches(&self, id: &InvocationId, st: &Status, view: &View<'_>) -> bool {
        if self.id.is_some_and(|want| want != *id) {
            return false;
        }
        if self.status != 0 || self.status_not != 0 {
            let bit = status_bit(status_word(st, view.now_ms)).unwrap_or(0);
            if (self.status != 0 && self.status & bit == 0) || self.status_not & bit != 0 {
                return false;
            }
        }
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        if !eq(&self.service, &st.service)
            || !eq(&self.handler, &st.handler)
            || !eq(&self.key, &st.key)
            || !eq(&self.deployment, &st.deployment_id)
            || !eq(&self.idempotency_key, &st.idempotency_key)
        {
            return false;
        }
        if self.service_type.is_some_and(|t| t != view.service_type(st)) {
            return false;
        }
        if self.invoked_by.is_some() || self.invoked_by_id.is_some() {
            let (by, by_id) = invoked_by(st);
            if self.invoked_by.is_some_and(|w| w != by) {
                return false;
            }
            if self.invoked_by_id.is_some() && self.invoked_by_id != by_id {
                return false;
            }
        }
        let after = |bound: Option<u64>, t: u64| bound.is_none_or(|b| t > b);
        let before = |bound: Option<u64>, t: u64| bound.is_none_or(|b| t < b);
        after(self.created_after, st.created_ms)
            && before(self.created_before, st.created_ms)
            && after(self.modified_after, st.modified_ms)
            && before(self.modified_before, st.modified_ms)
    }
}

fn parse_id(param: &'static str, v: &str) -> Result<InvocationId, BadFilter> {
    v.parse()
        .map_err(|e| BadFilter { param, reason: format!("'{v}' is not an invocation id: {e}") })
}

fn parse_statuses(param: &'static str, v: &str) -> Result<u16, BadFilter> {
    let mut mask = 0;
    for word in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        // `completed` is both outcomes, as in `sys_invocation`.
        if word == "completed" {
            mask |= status_bit("succeeded").unwrap_or(0) | status_bit("failed").unwrap_or(0);
            continue;
        }
        mask |= status_bit(word).ok_or_else(|| BadFilter {
            param,
            reason: format!("'{word}' is not a status (one of {})", STATUSES.join(", ")),
        })?;
    }
    // `status=,` names no status: refused rather than read as "any status".
    if mask == 0 {
        return Err(BadFilter { param, reason: format!("'{v}' names no status") });
    }
    Ok(mask)
}

fn parse_ms(param: &'static str, v: &str) -> Result<u64, BadFilter> {
    v.parse().map_err(|_| BadFilter {
        param,
        reason: format!("'{v}' is not a time in ms since the epoch"),
    })
}

/// Who started an invocation, and the calling invocation when another one did.
pub fn invoked_by(st: &Status) -> (&'static str, Option<InvocationId>) {
    if !st.restarted_from.is_empty() {
        return ("restart_as_new", None);
    }
    if let Ok(caller) = InvocationId::from_bytes(&st.invoked_by) {
        return ("service", Some(caller));
    }
    // Statuses from before `invoked_by` was kept: a waiting caller still names itself.
    for s in &st.sinks {
        if let Some(sink::Kind::Caller(c)) = &s.kind {
            if c.notification_ty == 0 {
                return ("service", InvocationId::from_bytes(&c.invocation_id).ok());
            }
        }
    }
    ("ingress", None)
}

/// Per-request context: the schema (service types) and the time statuses are judged at.
#[derive(Debug)]
pub struct View<'a> {
    pub schema: &'a Schema,
    pub now_ms: u64,
}

impl View<'_> {
    fn service_type(&self, st: &Status) -> &'static str {
        match self.schema.services.get(&st.service).map(|s| s.ty) {
            Some(ServiceType::Service) => "service",
            Some(ServiceType::VirtualObject) => "virtual_object",
            Some(ServiceType::Workflow) => "workflow",
            None => match st.kind() {
                HandlerKind::Service | HandlerKind::Unspecified => "service",
                HandlerKind::WorkflowRun => "workflow",
                _ => "virtual_object",
            },
        }
    }

    fn keyed(&self, st: &Status) -> bool {
        !st.key.is_empty() || st.kind() != HandlerKind::Service
    }

    fn target(&self, st: &Status) -> String {
        match self.keyed(st) {
            true => format!("{}/{}/{}", st.service, st.key, st.handler),
            false => format!("{}/{}", st.service, st.handler),
        }
    }

    /// One list row.
    pub fn row(&self, id: &InvocationId, st: &Status) -> Json {
        let word = status_word(st, self.now_ms);
        let ms = |v: u64| if v == 0 { Json::Null } else { json!(v) };
        let text = |v: &str| if v.is_empty() { Json::Null } else { json!(v) };
        let (by, by_id) = invoked_by(st);
        let (result, failure) = match st.outcome.as_ref().and_then(|o| o.result.as_ref()) {
            Some(outcome::Result::Value(_)) => (json!("success"), Json::Null),
            Some(outcome::Result::Failure(f)) => {
                (json!("failure"), json!(format!("[{}] {}", f.code, f.message)))
            }
            None => (Json::Null, Json::Null),
        };
        json!({
            "id": id.to_string(),
            "target": self.target(st),
            "service": st.service,
            "handler": st.handler,
            "key": if self.keyed(st) { json!(st.key) } else { Json::Null },
            "service_type": self.service_type(st),
            "status": word,
            "created_at": ms(st.created_ms),
            "modified_at": ms(st.modified_ms),
            "scheduled_start_at": ms(st.execute_at_ms),
            "completed_at": if st.phase() == Phase::Completed { ms(st.modified_ms) } else { Json::Null },
            "retry_count": st.failures,
            "next_retry_at": if word == "backing-off" { ms(st.next_retry_at_ms) } else { Json::Null },
            "last_failure": text(&st.last_failure),
            "completion_result": result,
            "completion_failure": failure,
            "idempotency_key": text(&st.idempotency_key),
            "invoked_by": by,
            "invoked_by_id": by_id.map(|i| json!(i.to_string())).unwrap_or(Json::Null),
            "deployment_id": text(&st.deployment_id),
            "journal_size": st.journal_len,
            "restarted_from": InvocationId::from_bytes(&st.restarted_from)
                .map(|i| json!(i.to_string())).unwrap_or(Json::Null),
        })
    }
}

fn decode_row(k: &[u8], v: &[u8]) -> Result<(InvocationId, Status), ReadError> {
    let raw = schema::decode_invocation_status_key(k)
        .map_err(|e| ReadError::corrupt(format!("invocation status key: {e}")))?;
    let id = InvocationId::from_bytes(&raw)
        .map_err(|e| ReadError::corrupt(format!("invocation status key: {e}")))?;
    let st =
        Status::decode(v).map_err(|e| ReadError::corrupt(format!("invocation status: {e}")))?;
    Ok((id, st))
}

/// What one partition contributed to a page: its matches (newest first) and the lowest key
/// it examined when it stopped before its end (`None`: it read to its end).
#[derive(Debug)]
pub struct PartPage {
    pub matches: Vec<(Vec<u8>, InvocationId, Status)>,
    pub frontier: Option<Vec<u8>>,
    pub scanned: usize,
}

/// Which way a list goes through the id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Highest id first (newest first for ingress-made ids): the default.
    Desc,
    Asc,
}

impl Order {
    /// Whether `key` lies beyond `cursor` in this order (where the next page reads).
    fn beyond(self, key: &[u8], cursor: &[u8]) -> bool {
        match self {
            Order::Desc => key < cursor,
            Order::Asc => key > cursor,
        }
    }
}

/// Reads one partition in creation order (`order`), strictly beyond `cursor` (a key of the
/// creation-time index), until `limit` matches, its end, or [`SCAN_BUDGET`] index rows.
pub fn page_part(
    txn: &ReadTxn,
    filter: &Filter,
    view: &View<'_>,
    cursor: Option<&[u8]>,
    limit: usize,
    order: Order,
) -> Result<PartPage, ReadError> {
    let mut out = PartPage { matches: Vec::new(), frontier: None, scanned: 0 };
    if let Some(id) = filter.id {
        // A point lookup, whatever the cursor says (at most one row).
        if let Some(st) = txn.status(&id)? {
            out.scanned = 1;
            let key = schema::created_key(st.created_ms, &id.to_bytes());
            if cursor.is_none_or(|c| order.beyond(&key, c)) && filter.matches(&id, &st, view) {
                out.matches.push((key, id, st));
            }
        }
        return Ok(out);
    }
    // Descending: [start, end) with `end` moving down; ascending: `start` moving up.
    let mut end: Option<Vec<u8>> = match order {
        Order::Desc => cursor.map(<[u8]>::to_vec),
        Order::Asc => None,
    };
    let mut start: Vec<u8> = match (order, cursor) {
        (Order::Asc, Some(c)) => schema::key_after(c),
        _ => Vec::new(),
    };
    loop {
        let chunk = (SCAN_BUDGET - out.scanned).min(1024);
        let q = Scan {
            limit: chunk,
            bytes_max: usize::MAX,
            reverse: order == Order::Desc,
            keys_only: true,
        };
        let (rows, more) = txn.scan_bounded(Table::Created, &start, end.as_deref(), &q)?;
        let Some(last) = rows.last().map(|(k, _)| k.clone()) else { return Ok(out) };
        // The chunk's statuses in one pass over their table.
        let mut ids = Vec::with_capacity(rows.len());
        for (k, _) in &rows {
            let (created_ms, raw) =
                schema::decode_created_key(k).map_err(|e| ReadError::corrupt(e.to_string()))?;
            ids.push((created_ms, raw));
        }
        let keys: Vec<Vec<u8>> =
            ids.iter().map(|(_, raw)| schema::invocation_status_key(raw)).collect();
        let values = txn.get_many(Table::InvocationStatus, &keys)?;
        for (i, ((k, _), ((created_ms, raw), value))) in
            rows.iter().zip(ids.iter().zip(values)).enumerate()
        {
            out.scanned += 1;
            let id = InvocationId::from_bytes(raw)
                .map_err(|e| ReadError::corrupt(format!("creation index key: {e}")))?;
            // A row whose status is gone or was created again later is not this one's.
            let Some(value) = value else { continue };
            let st = Status::decode(value.as_slice())
                .map_err(|e| ReadError::corrupt(format!("invocation status: {e}")))?;
            if st.created_ms != *created_ms {
                continue;
            }
            if filter.matches(&id, &st, view) {
                out.matches.push((k.clone(), id, st));
                if out.matches.len() >= limit {
                    // Everything up to here was examined; the rest of the chunk was not.
                    let examined_all = i + 1 == rows.len() && !more;
                    out.frontier = if examined_all { None } else { Some(k.clone()) };
                    return Ok(out);
                }
            }
        }
        if !more {
            return Ok(out);
        }
        if out.scanned >= SCAN_BUDGET {
            out.frontier = Some(last);
            return Ok(out);
        }
        match order {
            Order::Desc => end = Some(last),
            Order::Asc => start = schema::key_after(&last),
        }
    }
}

/// Walks one partition newest first beyond `cursor`, page after page past the scan budget,
/// until `limit` matches or its end; `each` gets every match's key and id. Returns where it
/// stopped when that was before its end (the lowest key examined), for [`merge_pages`].
pub fn walk_part(
    txn: &ReadTxn,
    filter: &Filter,
    view: &View<'_>,
    cursor: Option<&[u8]>,
    limit: usize,
    mut each: impl FnMut(Vec<u8>, InvocationId),
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut found = 0usize;
    let mut below = cursor.map(<[u8]>::to_vec);
    loop {
        let page = page_part(txn, filter, view, below.as_deref(), limit - found, Order::Desc)?;
        found += page.matches.len();
        for (k, id, _) in page.matches {
            each(k, id);
        }
        if found >= limit || filter.id.is_some() {
            return Ok(page.frontier);
        }
        match page.frontier {
            Some(f) => below = Some(f),
            None => return Ok(None),
        }
    }
}

/// Merges partitions' pages in `order`: only rows up to the nearest frontier (every
/// partition examined at least that far), at most `limit`; and where the next page starts
/// (strictly beyond the returned key), if anywhere.
pub fn merge_pages(
    parts: Vec<PartPage>,
    limit: usize,
    order: Order,
) -> (Vec<(InvocationId, Status)>, Option<Vec<u8>>, usize) {
    let scanned = parts.iter().map(|p| p.scanned).sum();
    let frontiers = parts.iter().filter_map(|p| p.frontier.clone());
    let frontier = match order {
        Order::Desc => frontiers.max(),
        Order::Asc => frontiers.min(),
    };
    let mut all: Vec<(Vec<u8>, InvocationId, Status)> =
        parts.into_iter().flat_map(|p| p.matches).collect();
    match order {
        Order::Desc => all.sort_by(|a, b| b.0.cmp(&a.0)),
        Order::Asc => all.sort_by(|a, b| a.0.cmp(&b.0)),
    }
    if let Some(f) = &frontier {
        all.retain(|(k, _, _)| k == f || !order.beyond(k, f));
    }
    let cursor = if all.len() > limit {
        all.truncate(limit);
        all.last().map(|(k, _, _)| k.clone())
    } else if all.len() == limit && limit > 0 {
        // A full page: the next one starts beyond its last row (it may be empty).
        all.last().map(|(k, _, _)| k.clone()).or(frontier)
    } else {
        frontier
    };
    (all.into_iter().map(|(_, id, st)| (id, st)).collect(), cursor, scanned)
}

/// Exact counts of one partition's invocations under `filter`, keyed by (service, handler,
/// status).
pub fn count_part(
    txn: &ReadTxn,
    filter: &Filter,
    view: &View<'_>,
    into: &mut HashMap<(String, String, &'static str), u64>,
    types: &mut HashMap<String, &'static str>,
) -> Result<(), ReadError> {
    let mut start: Vec<u8> = Vec::new();
    loop {
        let q = Scan { limit: 4096, bytes_max: 16 << 20, reverse: false, keys_only: false };
        let (rows, more) = txn.scan_bounded(Table::InvocationStatus, &start, None, &q)?;
        for (k, v) in &rows {
            let (id, st) = decode_row(k, v)?;
            if !filter.matches(&id, &st, view) {
                continue;
            }
            let word = status_word(&st, view.now_ms);
            types.entry(st.service.clone()).or_insert_with(|| view.service_type(&st));
            *into.entry((st.service, st.handler, word)).or_default() += 1;
        }
        match (more, rows.last()) {
            (true, Some((k, _))) => start = schema::key_after(k),
            _ => return Ok(()),
        }
    }
}

/// Builds the counts answer from merged per-(service, handler, status) counts.
pub fn counts_json(
    counts: HashMap<(String, String, &'static str), u64>,
    types: HashMap<String, &'static str>,
) -> Json {
    let mut total = 0u64;
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let mut services: BTreeMap<String, BTreeMap<String, BTreeMap<&str, u64>>> = BTreeMap::new();
    for ((service, handler, word), n) in counts {
        total += n;
        *by_status.entry(word).or_default() += n;
        *services
            .entry(service)
            .or_default()
            .entry(handler)
            .or_default()
            .entry(word)
            .or_default() += n;
    }
    let services: Vec<Json> = services
        .into_iter()
        .map(|(service, handlers)| {
            let mut s_total = 0;
            let mut s_by: BTreeMap<&str, u64> = BTreeMap::new();
            let handlers: Vec<Json> = handlers
                .into_iter()
                .map(|(handler, by)| {
                    let h_total: u64 = by.values().sum();
                    s_total += h_total;
                    for (w, n) in &by {
                        *s_by.entry(w).or_default() += n;
                    }
                    json!({"handler": handler, "total": h_total, "by_status": by})
                })
                .collect();
            let ty = types.get(&service).copied().unwrap_or("service");
            json!({"service": service, "service_type": ty, "total": s_total, "by_status": s_by,
                   "handlers": handlers})
        })
        .collect();
    json!({"total": total, "by_status": by_status, "services": services})
}

// ---------------------------------------------------------------------------------------------
// One invocation.

/// Reads an invocation's status from the partition that owns it (`None`: unknown, or its
/// partition does not run).
pub fn read_status(router: &Router, id: &InvocationId) -> Result<Option<Status>, ReadError> {
    let n = router.partitions.len() as u16;
    let Some(h) = router.partitions.get(usize::from(partition_of(id.partition_key, n))) else {
        return Ok(None);
    };
    let Some(store) = h.store() else { return Ok(None) };
    Ok(store.begin_read()?.status(id)?)
}

/// The user-visible value an entry carries (input, output, state value, call parameter,
/// result), if any.
pub fn entry_value(t: u16, payload: &[u8]) -> Option<Bytes> {
    let value = |v: Option<m::Value>| v.map(|v| v.content);
    match t {
        ty::INPUT => value(m::InputCommandMessage::decode(payload).ok()?.value),
        ty::OUTPUT => match m::OutputCommandMessage::decode(payload).ok()?.result? {
            m::OutputResult::Value(v) => Some(v.content),
            m::OutputResult::Failure(f) => Some(Bytes::from(f.message)),
        },
        ty::SET_STATE => value(m::SetStateCommandMessage::decode(payload).ok()?.value),
        ty::CALL => Some(m::CallCommandMessage::decode(payload).ok()?.parameter),
        ty::ONE_WAY_CALL => Some(m::OneWayCallCommandMessage::decode(payload).ok()?.parameter),
        ty::COMPLETE_PROMISE => {
            match m::CompletePromiseCommandMessage::decode(payload).ok()?.completion? {
                m::PromiseCompletion::Value(v) => Some(v.content),
                m::PromiseCompletion::Failure(f) => Some(Bytes::from(f.message)),
            }
        }
        ty::COMPLETE_AWAKEABLE => {
            match m::CompleteAwakeableCommandMessage::decode(payload).ok()?.result? {
                m::AwakeableResult::Value(v) => Some(v.content),
                m::AwakeableResult::Failure(f) => Some(Bytes::from(f.message)),
            }
        }
        t if t >= 0x8000 => match m::Notification::decode(payload).ok()?.result? {
            m::NotificationResult::Value(v) => Some(v.content),
            m::NotificationResult::Failure(f) => Some(Bytes::from(f.message)),
            _ => None,
        },
        _ => None,
    }
}

/// An inline preview of `bytes`: text (cut to [`PREVIEW_BYTES`] at a character boundary) or
/// `base64:` of the first bytes; whether it was cut; whether the whole value is JSON.
pub fn preview(bytes: &[u8]) -> (String, bool, bool) {
    preview_n(bytes, PREVIEW_BYTES)
}

/// [`preview`] with at most `max` bytes.
pub fn preview_n(bytes: &[u8], max: usize) -> (String, bool, bool) {
    use base64::Engine as _;
    let truncated = bytes.len() > max;
    let head = &bytes[..bytes.len().min(max)];
    let is_json = !truncated && serde_json::from_slice::<Json>(bytes).is_ok();
    let text = match std::str::from_utf8(head) {
        Ok(t) => t.to_string(),
        Err(e) if truncated && e.error_len().is_none() => {
            // Cut inside a character: keep the whole characters.
            String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()
        }
        Err(_) => {
            let n = head.len().min(max * 3 / 4);
            format!("base64:{}", base64::engine::general_purpose::STANDARD.encode(&head[..n]))
        }
    };
    (text, truncated, is_json)
}

/// Restate's name of a journal entry type.
pub fn entry_type_name(t: u16) -> String {
    use ty::*;
    let name = match t {
        INPUT => "Command: Input",
        OUTPUT => "Command: Output",
        GET_LAZY_STATE => "Command: GetLazyState",
        SET_STATE => "Command: SetState",
        CLEAR_STATE => "Command: ClearState",
        CLEAR_ALL_STATE => "Command: ClearAllState",
        GET_LAZY_STATE_KEYS => "Command: GetLazyStateKeys",
        0x0407 => "Command: GetEagerState",
        0x0408 => "Command: GetEagerStateKeys",
        GET_PROMISE => "Command: GetPromise",
        PEEK_PROMISE => "Command: PeekPromise",
        COMPLETE_PROMISE => "Command: CompletePromise",
        SLEEP => "Command: Sleep",
        CALL => "Command: Call",
        ONE_WAY_CALL => "Command: OneWayCall",
        SEND_SIGNAL => "Command: SendSignal",
        RUN => "Command: Run",
        ATTACH_INVOCATION => "Command: AttachInvocation",
        GET_INVOCATION_OUTPUT => "Command: GetInvocationOutput",
        COMPLETE_AWAKEABLE => "Command: CompleteAwakeable",
        N_GET_LAZY_STATE => "Notification: GetLazyState",
        N_GET_LAZY_STATE_KEYS => "Notification: GetLazyStateKeys",
        N_GET_PROMISE => "Notification: GetPromise",
        N_PEEK_PROMISE => "Notification: PeekPromise",
        N_COMPLETE_PROMISE => "Notification: CompletePromise",
        N_SLEEP => "Notification: Sleep",
        N_CALL => "Notification: CallResult",
        N_CALL_INVOCATION_ID => "Notification: CallInvocationId",
        N_RUN => "Notification: Run",
        N_ATTACH_INVOCATION => "Notification: AttachInvocation",
        N_GET_INVOCATION_OUTPUT => "Notification: GetInvocationOutput",
        N_SIGNAL => "Notification: Signal",
        other => return format!("Unknown: 0x{other:04X}"),
    };
    name.to_string()
}

/// What a command waits for, by its result completion id.
#[derive(Debug, Clone)]
enum Awaited {
    Call { target: String, callee: Option<InvocationId> },
    Sleep { until_ms: u64 },
    Promise { name: String },
    Run { name: String },
    Other { what: String },
}

/// The facts of a journal entry the detail shows: its entry name, a JSON detail, the result
/// completion id it waits on and what that is, the call whose id notification it is.
struct EntryFacts {
    name: String,
    detail: Json,
    awaits: Option<(u32, Awaited)>,
    /// For call commands: the completion id of the notification carrying the callee's id.
    id_notification: Option<u32>,
}

fn entry_facts(t: u16, payload: &[u8]) -> EntryFacts {
    let mut f =
        EntryFacts { name: String::new(), detail: json!({}), awaits: None, id_notification: None };
    let target = |svc: &str, key: &str, handler: &str| match key.is_empty() {
        true => format!("{svc}/{handler}"),
        false => format!("{svc}/{key}/{handler}"),
    };
    match t {
        ty::INPUT => {
            if let Ok(c) = m::InputCommandMessage::decode(payload) {
                let headers: Vec<Json> = c
                    .headers
                    .iter()
                    .map(|h| json!({"key": h.key, "value": redact(&h.key, &h.value)}))
                    .collect();
                f.name = c.name;
                f.detail = json!({"headers": headers});
            }
        }
        ty::OUTPUT => {
            if let Ok(c) = m::OutputCommandMessage::decode(payload) {
                if let Some(m::OutputResult::Failure(e)) = &c.result {
                    f.detail = json!({"failure": format!("[{}] {}", e.code, e.message)});
                }
                f.name = c.name;
            }
        }
        ty::GET_LAZY_STATE | 0x0407 | ty::SET_STATE | ty::CLEAR_STATE => {
            let (key, name, done) = match t {
                ty::GET_LAZY_STATE => match m::GetLazyStateCommandMessage::decode(payload) {
                    Ok(c) => (c.key, c.name, Some(c.result_completion_id)),
                    Err(_) => (Bytes::new(), String::new(), None),
                },
                0x0407 => match m::GetEagerStateCommandMessage::decode(payload) {
                    Ok(c) => (c.key, c.name, None),
                    Err(_) => (Bytes::new(), String::new(), None),
                },
                ty::SET_STATE => match m::SetStateCommandMessage::decode(payload) {
                    Ok(c) => (c.key, c.name, None),
                    Err(_) => (Bytes::new(), String::new(), None),
                },
                _ => match m::ClearStateCommandMessage::decode(payload) {
                    Ok(c) => (c.key, c.name, None),
                    Err(_) => (Bytes::new(), String::new(), None),
                },
            };
            let key = String::from_utf8_lossy(&key).into_owned();
            if let Some(id) = done {
                f.awaits = Some((id, Awaited::Other { what: format!("state '{key}'") }));
            }
            f.detail = json!({"state_key": key});
            f.name = name;
        }
        ty::GET_PROMISE | ty::PEEK_PROMISE => {
            let c = match t {
                ty::GET_PROMISE => m::GetPromiseCommandMessage::decode(payload)
                    .map(|c| (c.key, c.result_completion_id, c.name)),
                _ => m::PeekPromiseCommandMessage::decode(payload)
                    .map(|c| (c.key, c.result_completion_id, c.name)),
            };
            if let Ok((key, id, name)) = c {
                f.detail = json!({"promise": key});
                if t == ty::GET_PROMISE {
                    f.awaits = Some((id, Awaited::Promise { name: key }));
                }
                f.name = name;
            }
        }
        ty::COMPLETE_PROMISE => {
            if let Ok(c) = m::CompletePromiseCommandMessage::decode(payload) {
                f.detail = json!({"promise": c.key});
                f.name = c.name;
            }
        }
        ty::SLEEP => {
            if let Ok(c) = m::SleepCommandMessage::decode(payload) {
                f.detail = json!({"wake_up_at": c.wake_up_time});
                f.awaits =
                    Some((c.result_completion_id, Awaited::Sleep { until_ms: c.wake_up_time }));
                f.name = c.name;
            }
        }
        ty::CALL => {
            if let Ok(c) = m::CallCommandMessage::decode(payload) {
                let tgt = target(&c.service_name, &c.key, &c.handler_name);
                f.detail = json!({"target": tgt, "idempotency_key": c.idempotency_key});
                f.awaits =
                    Some((c.result_completion_id, Awaited::Call { target: tgt, callee: None }));
                f.id_notification = Some(c.invocation_id_notification_idx);
                f.name = c.name;
            }
        }
        ty::ONE_WAY_CALL => {
            if let Ok(c) = m::OneWayCallCommandMessage::decode(payload) {
                let tgt = target(&c.service_name, &c.key, &c.handler_name);
                let at = if c.invoke_time > 0 { json!(c.invoke_time) } else { Json::Null };
                f.detail = json!({"target": tgt, "invoke_at": at});
                f.id_notification = Some(c.invocation_id_notification_idx);
                f.name = c.name;
            }
        }
        ty::RUN => {
            if let Ok(c) = m::RunCommandMessage::decode(payload) {
                f.awaits = Some((c.result_completion_id, Awaited::Run { name: c.name.clone() }));
                f.name = c.name;
            }
        }
        ty::ATTACH_INVOCATION | ty::GET_INVOCATION_OUTPUT => {
            let c = match t {
                ty::ATTACH_INVOCATION => m::AttachInvocationCommandMessage::decode(payload)
                    .map(|c| (c.result_completion_id, c.name)),
                _ => m::GetInvocationOutputCommandMessage::decode(payload)
                    .map(|c| (c.result_completion_id, c.name)),
            };
            if let Ok((id, name)) = c {
                f.awaits =
                    Some((id, Awaited::Other { what: "another invocation's result".into() }));
                f.name = name;
            }
        }
        ty::SEND_SIGNAL => {
            if let Ok(c) = m::SendSignalCommandMessage::decode(payload) {
                f.detail = json!({"target_invocation_id": c.target_invocation_id});
                f.name = c.entry_name;
            }
        }
        ty::COMPLETE_AWAKEABLE => {
            if let Ok(c) = m::CompleteAwakeableCommandMessage::decode(payload) {
                f.detail = json!({"awakeable_id": c.awakeable_id});
                f.name = c.name;
            }
        }
        t if t >= 0x8000 => {
            if let Ok(n) = m::Notification::decode(payload) {
                let id = match &n.id {
                    Some(m::NotificationId::CompletionId(c)) => json!({"completion_id": c}),
                    Some(m::NotificationId::SignalId(s)) => json!({"signal_id": s}),
                    Some(m::NotificationId::SignalName(s)) => json!({"signal_name": s}),
                    None => json!({}),
                };
                f.detail = id;
                match n.result {
                    Some(m::NotificationResult::InvocationId(i)) => {
                        f.detail["invocation_id"] = json!(i);
                    }
                    Some(m::NotificationResult::Failure(e)) => {
                        f.detail["failure"] = json!(format!("[{}] {}", e.code, e.message));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    f
}

/// Header values whose names look like secrets are not shown.
fn redact(name: &str, value: &str) -> String {
    let n = name.to_ascii_lowercase();
    let secret = ["authorization", "cookie", "token", "secret", "password", "api-key", "apikey"];
    match secret.iter().any(|s| n.contains(s)) {
        true => "(redacted)".to_string(),
        false => value.to_string(),
    }
}

/// One invocation's journal facts, read once for the detail and the blocked-by chain.
struct Story {
    entries: Vec<Json>,
    /// Completion ids with a command waiting on them and no notification yet.
    pending: Vec<(u32, Awaited)>,
    /// (result completion id, callee, target, journal index of the call).
    callees: Vec<(u32, InvocationId, String, usize)>,
    /// Entries past the byte budget were not read, or past JOURNAL_ENTRIES_MAX not listed.
    truncated: bool,
}

fn story(
    txn: &ReadTxn,
    id: &InvocationId,
    st: &Status,
    with_entries: bool,
) -> Result<Story, ReadError> {
    // Pages of entries until the journal or the byte budget ends: the whole journal counts
    // for what is pending (a call early on may be awaited late), the first
    // JOURNAL_ENTRIES_MAX are listed.
    let mut journal = Vec::new();
    let mut read_bytes = 0usize;
    let mut truncated = false;
    while (journal.len() as u32) < st.journal_len {
        let start = journal.len() as u32;
        let page = txn.journal_page_of(id, st, start, JOURNAL_PAGE.min(st.journal_len - start))?;
        if page.is_empty() {
            break;
        }
        read_bytes += page.iter().map(|(_, p)| p.len()).sum::<usize>();
        journal.extend(page);
        if read_bytes > JOURNAL_READ_BYTES_MAX {
            truncated = (journal.len() as u32) < st.journal_len;
            break;
        }
    }
    let mut awaited: BTreeMap<u32, Awaited> = BTreeMap::new();
    let mut done: HashSet<u32> = st.completed_ids.iter().copied().collect();
    let mut id_notif_to_call: HashMap<u32, (u32, String, usize)> = HashMap::new();
    let mut id_of_notif: HashMap<u32, InvocationId> = HashMap::new();
    let mut entries = Vec::new();
    for (index, (t, payload)) in journal.iter().enumerate() {
        let facts = entry_facts(*t, payload);
        if let Some((cid, a)) = &facts.awaits {
            awaited.insert(*cid, a.clone());
        }
        if let (Some(n), Some((cid, Awaited::Call { target, .. }))) =
            (facts.id_notification, &facts.awaits)
        {
            id_notif_to_call.insert(n, (*cid, target.clone(), index));
        } else if let (Some(n), ty::ONE_WAY_CALL) = (facts.id_notification, *t) {
            let target = facts.detail["target"].as_str().unwrap_or_default().to_string();
            id_notif_to_call.insert(n, (u32::MAX - index as u32, target, index));
        }
        if *t >= 0x8000 {
            if let Ok(n) = m::Notification::decode(payload.as_ref()) {
                if let Some(m::NotificationId::CompletionId(c)) = n.id {
                    done.insert(c);
                    if let Some(m::NotificationResult::InvocationId(s)) = n.result {
                        if let Ok(callee) = s.parse::<InvocationId>() {
                            id_of_notif.insert(c, callee);
                        }
                    }
                }
            }
        }
        if with_entries && (index as u32) < JOURNAL_ENTRIES_MAX {
            let value = entry_value(*t, payload);
            let (text, truncated, is_json) = match &value {
                Some(v) => preview_n(v, JOURNAL_PREVIEW_BYTES),
                None => (String::new(), false, false),
            };
            let size = value.as_ref().map(|v| v.len()).unwrap_or(0);
            let completed = *t >= 0x8000
                || st.phase() == Phase::Completed
                || facts.awaits.as_ref().is_none_or(|(c, _)| done.contains(c));
            entries.push(json!({
                "index": index,
                "type": entry_type_name(*t),
                "name": if facts.name.is_empty() { Json::Null } else { json!(facts.name) },
                "size": size,
                "entry_size": payload.len(),
                "completed": completed,
                "preview": if value.is_some() { json!(text) } else { Json::Null },
                "preview_truncated": truncated,
                "json": is_json,
                "callee_id": Json::Null,
                "detail": facts.detail,
            }));
        }
    }
    let mut callees = Vec::new();
    for (notif, (call_cid, target, index)) in &id_notif_to_call {
        if let Some(callee) = id_of_notif.get(notif) {
            callees.push((*call_cid, *callee, target.clone(), *index));
            if let Some(Awaited::Call { callee: c, .. }) = awaited.get_mut(call_cid) {
                *c = Some(*callee);
            }
        }
    }
    // Fill in the callee id on the call entries.
    if with_entries {
        for e in entries.iter_mut() {
            if e["type"] == "Command: Call" || e["type"] == "Command: OneWayCall" {
                let idx = e["index"].as_u64().unwrap_or(0) as usize;
                let found = callees.iter().find(|(_, _, _, at)| *at == idx);
                if let Some((_, callee, _, _)) = found {
                    e["callee_id"] = json!(callee.to_string());
                }
            }
        }
    }
    callees.sort_by_key(|(_, _, _, index)| *index);
    let pending = match st.phase() {
        Phase::Completed => Vec::new(),
        _ => awaited.into_iter().filter(|(c, _)| !done.contains(c)).collect(),
    };
    let truncated = truncated || st.journal_len > JOURNAL_ENTRIES_MAX;
    Ok(Story { entries, pending, callees, truncated })
}

/// The wait description of a pending completion.
fn waiting_json(a: &Awaited) -> Json {
    match a {
        Awaited::Call { target, callee } => json!({"kind": "call",
            "text": format!("the result of a call to {target}"),
            "invocation_id": callee.map(|c| json!(c.to_string())).unwrap_or(Json::Null),
            "until": Json::Null}),
        Awaited::Sleep { until_ms } => json!({"kind": "sleep", "text": "a timer",
            "invocation_id": Json::Null, "until": until_ms}),
        Awaited::Promise { name } => json!({"kind": "promise",
            "text": format!("the workflow promise '{name}'"), "invocation_id": Json::Null,
            "until": Json::Null}),
        Awaited::Run { name } => json!({"kind": "run",
            "text": format!("the result of ctx.run '{name}'"), "invocation_id": Json::Null,
            "until": Json::Null}),
        Awaited::Other { what } => json!({"kind": "other", "text": what,
            "invocation_id": Json::Null, "until": Json::Null}),
    }
}

/// Reads the detail bundle of `id`. `Ok(None)`: unknown.
pub fn detail(
    router: &Router,
    schema: &Schema,
    id: &InvocationId,
    now_ms: u64,
) -> Result<Option<Json>, ReadError> {
    let n = router.partitions.len() as u16;
    let Some(h) = router.partitions.get(usize::from(partition_of(id.partition_key, n))) else {
        return Ok(None);
    };
    let Some(store) = h.store() else {
        return Err(ReadError::not_running(h.id));
    };
    let txn = store.begin_read()?;
    let Some(st) = txn.status(id)? else { return Ok(None) };
    let view = View { schema, now_ms };
    let mut inv = view.row(id, &st);
    inv["attempt"] = json!(st.attempt);
    inv["waiting_completions"] = json!(st.waiting_completions);
    inv["waiting_signals"] = json!(st.waiting_signals);
    inv["waiting_named_signals"] = json!(st.waiting_named_signals);
    inv["purge_at"] = if st.purge_at_ms > 0 { json!(st.purge_at_ms) } else { Json::Null };
    inv["completion_retention"] = json!(st.retention_ms);
    inv["journal_retention"] = json!(st.journal_retention_ms);
    let mut s = story(&txn, id, &st, true)?;
    let journal = std::mem::take(&mut s.entries);
    inv["journal_truncated"] = json!(s.truncated);
    let events: Vec<Json> = match st.events_len {
        0 => Vec::new(),
        len => txn
            .journal_events(id, len)?
            .into_iter()
            .map(|e| {
                json!({"kind": format!("{:?}", e.kind()), "after_entry": e.after_journal_entry_index,
                       "at": e.appended_at_ms, "last_at": e.last_at_ms, "code": e.code,
                       "message": e.message, "count": e.count})
            })
            .collect(),
    };
    drop(txn);
    let caller = match invoked_by(&st) {
        (_, Some(c)) => {
            let target = read_status(router, &c)?.map(|cs| view.target(&cs));
            json!({"id": c.to_string(), "target": target})
        }
        _ => Json::Null,
    };
    let mut callees = Vec::new();
    for (_, callee, target, entry) in &s.callees {
        let status = read_status(router, callee)?.map(|cs| status_word(&cs, now_ms));
        callees.push(json!({"id": callee.to_string(), "entry": entry, "target": target,
                            "status": status}));
    }
    let waiting_on = waiting_on(router, &view, id, &st, &s)?;
    let blocked_by = blocked_by(router, &view, *id, st, s)?;
    Ok(Some(json!({
        "invocation": inv,
        "journal": journal,
        "events": events,
        "caller": caller,
        "callees": callees,
        "waiting_on": waiting_on,
        "blocked_by": blocked_by,
    })))
}

fn waiting_on(
    router: &Router,
    view: &View<'_>,
    _id: &InvocationId,
    st: &Status,
    s: &Story,
) -> Result<Vec<Json>, ReadError> {
    let mut out = Vec::new();
    match st.phase() {
        Phase::Completed => return Ok(out),
        Phase::Scheduled => out.push(json!({"kind": "scheduled", "text": "its scheduled start",
            "invocation_id": Json::Null, "until": st.execute_at_ms})),
        Phase::Inboxed => {
            let holder = lock_holder(router, &st.service, &st.key)?;
            out.push(json!({"kind": "inbox",
                "text": format!("the lock of {}/{}", st.service, st.key),
                "invocation_id": holder.map(|h| json!(h.to_string())).unwrap_or(Json::Null),
                "until": Json::Null}));
        }
        Phase::Paused => out.push(json!({"kind": "paused", "text": "a resume (it is paused)",
            "invocation_id": Json::Null, "until": Json::Null})),
        _ => {}
    }
    if status_word(st, view.now_ms) == "backing-off" {
        out.push(json!({"kind": "retry", "text": format!("its next attempt (retry {} so far)", st.failures),
            "invocation_id": Json::Null, "until": st.next_retry_at_ms}));
    }
    for (_, a) in &s.pending {
        out.push(waiting_json(a));
    }
    for sig in &st.waiting_signals {
        // Signal 1..=16 are built in (cancel); awakeables use 17 and up.
        if *sig > 16 {
            out.push(
                json!({"kind": "awakeable", "text": format!("awakeable #{sig} to be completed"),
                "invocation_id": Json::Null, "until": Json::Null}),
            );
        }
    }
    for name in &st.waiting_named_signals {
        out.push(json!({"kind": "signal", "text": format!("the signal '{name}'"),
            "invocation_id": Json::Null, "until": Json::Null}));
    }
    Ok(out)
}

/// The invocation holding the lock of object `service`/`key`.
pub fn lock_holder(
    router: &Router,
    service: &str,
    key: &str,
) -> Result<Option<InvocationId>, ReadError> {
    let h = router.for_key(crate::fsm::partition_key_of(key));
    let Some(store) = h.store() else { return Ok(None) };
    Ok(store.begin_read()?.lock(service, key)?)
}

/// The chain from `id` down to what keeps it from progressing.
fn blocked_by(
    router: &Router,
    view: &View<'_>,
    start: InvocationId,
    st: Status,
    story0: Story,
) -> Result<Vec<Json>, ReadError> {
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let (mut cur, mut st, mut first) = (start, st, Some(story0));
    for _ in 0..CHAIN_MAX {
        if !seen.insert(cur) {
            chain.push(json!({"invocation_id": cur.to_string(), "target": view.target(&st),
                "status": status_word(&st, view.now_ms), "reason": "a cycle: it waits on an invocation earlier in this chain",
                "action": {"op": "cancel", "invocation_id": cur.to_string()}}));
            break;
        }
        let word = status_word(&st, view.now_ms);
        let link = |reason: String, action: Option<&str>| {
            json!({"invocation_id": cur.to_string(), "target": view.target(&st), "status": word,
                   "reason": reason,
                   "action": action.map(|op| json!({"op": op, "invocation_id": cur.to_string()}))
                       .unwrap_or(Json::Null)})
        };
        let s = match first.take() {
            Some(s) => s,
            None => {
                let h = router.for_key(cur.partition_key);
                let Some(store) = h.store() else {
                    chain.push(link(format!("partition {} is not running", h.id), None));
                    break;
                };
                let txn = store.begin_read()?;
                story(&txn, &cur, &st, false)?
            }
        };
        let next: Option<InvocationId> = match st.phase() {
            Phase::Completed => break,
            Phase::Scheduled => {
                chain.push(link(
                    format!(
                        "scheduled to start at {}",
                        crate::timefmt::rfc3339_ms(st.execute_at_ms)
                    ),
                    Some("cancel"),
                ));
                break;
            }
            Phase::Paused => {
                let why = match st.last_failure.is_empty() {
                    true => "paused".to_string(),
                    false => format!(
                        "paused after {} failures: {}",
                        st.failures,
                        st.last_failure.lines().next().unwrap_or_default()
                    ),
                };
                chain.push(link(why, Some("resume")));
                break;
            }
            Phase::Inboxed => match lock_holder(router, &st.service, &st.key)? {
                Some(holder) if holder != cur => {
                    chain.push(link(
                        format!("queued behind the lock of {}/{}", st.service, st.key),
                        None,
                    ));
                    Some(holder)
                }
                _ => {
                    chain.push(link("queued; the lock is free, it starts next".into(), None));
                    break;
                }
            },
            _ if word == "backing-off" || (!st.last_failure.is_empty() && st.failures > 0) => {
                chain.push(link(
                    format!(
                        "failing: {} attempts failed, last: {}",
                        st.failures,
                        st.last_failure.lines().next().unwrap_or_default()
                    ),
                    Some(if word == "backing-off" { "resume" } else { "cancel" }),
                ));
                break;
            }
            _ => {
                let call = s.pending.iter().find_map(|(_, a)| match a {
                    Awaited::Call { target, callee: Some(c) } => {
                        Some((target.clone(), c.to_owned()))
                    }
                    _ => None,
                });
                match (call, s.pending.first()) {
                    (Some((target, callee)), _) => {
                        chain.push(link(
                            format!("waits for the result of its call to {target}"),
                            None,
                        ));
                        Some(callee)
                    }
                    (None, Some((_, a))) => {
                        let text = waiting_json(a)["text"].as_str().unwrap_or("").to_string();
                        let action = match a {
                            Awaited::Sleep { .. } | Awaited::Run { .. } => None,
                            _ => Some("cancel"),
                        };
                        chain.push(link(format!("waits for {text}"), action));
                        break;
                    }
                    (None, None) if st.phase() == Phase::Suspended => {
                        chain.push(link(
                            "suspended, waiting for a signal or an awakeable".into(),
                            Some("cancel"),
                        ));
                        break;
                    }
                    (None, None) => break,
                }
            }
        };
        let Some(next) = next else { break };
        match read_status(router, &next)? {
            Some(ns) => {
                cur = next;
                st = ns;
            }
            None => {
                chain.push(json!({"invocation_id": next.to_string(), "target": Json::Null,
                    "status": Json::Null, "reason": "unknown to this node (purged?)", "action": Json::Null}));
                break;
            }
        }
    }
    Ok(chain)
}

/// The value of journal entry `index` of `id` (the user value when the entry carries one,
/// else the entry's encoded bytes). `Ok(None)`: no such invocation or entry.
pub fn entry_payload(
    router: &Router,
    id: &InvocationId,
    index: u32,
) -> Result<Option<Bytes>, ReadError> {
    let h = router.for_key(id.partition_key);
    let Some(store) = h.store() else { return Ok(None) };
    let txn = store.begin_read()?;
    let Some(st) = txn.status(id)? else { return Ok(None) };
    if index >= st.journal_len {
        return Ok(None);
    }
    let page = txn.journal_page_of(id, &st, index, 1)?;
    Ok(page.into_iter().next().map(|(t, p)| entry_value(t, &p).unwrap_or(p)))
}

// ---------------------------------------------------------------------------------------------
// State, locks, inboxes.

/// An object key and how many state entries it has.
pub type KeyCount = (Vec<u8>, u64);
/// A state entry's name and value.
pub type NameValue = (Vec<u8>, Vec<u8>);

/// Object keys of `service` with state, in key order after `after`, from every partition.
pub fn state_keys(
    router: &Router,
    service: &str,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(Vec<KeyCount>, bool), ReadError> {
    let prefix = schema::state_service_prefix(service);
    let end = schema::prefix_end(&prefix);
    let mut keys: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut more = false;
    for h in router.partitions.iter() {
        let Some(store) = h.store() else { continue };
        let txn = store.begin_read()?;
        let mut start = match after {
            Some(k) => schema::key_after(&schema::state_prefix(service, k)).to_vec(),
            None => prefix.clone(),
        };
        // After the whole object `after`: its prefix's end.
        if let Some(k) = after {
            start = schema::prefix_end(&schema::state_prefix(service, k)).unwrap_or(start);
        }
        let mut distinct = 0usize;
        loop {
            let q = Scan { limit: 4096, bytes_max: 1 << 20, reverse: false, keys_only: true };
            let (rows, left) = txn.scan_bounded(Table::State, &start, end.as_deref(), &q)?;
            for (k, _) in &rows {
                let (_, object, _) = schema::decode_state_key(k)
                    .map_err(|e| ReadError::corrupt(format!("state key: {e}")))?;
                let e = keys.entry(object).or_insert(0);
                if *e == 0 {
                    distinct += 1;
                }
                *e += 1;
            }
            if distinct > limit {
                more = true;
                break;
            }
            match (left, rows.last()) {
                (true, Some((k, _))) => start = schema::key_after(k),
                _ => break,
            }
        }
    }
    if keys.len() > limit {
        more = true;
    }
    Ok((keys.into_iter().take(limit).collect(), more))
}

/// One object's state entries.
pub fn object_state(
    router: &Router,
    service: &str,
    key: &str,
) -> Result<Vec<NameValue>, ReadError> {
    let h = router.for_key(crate::fsm::partition_key_of(key));
    let Some(store) = h.store() else {
        return Err(ReadError::not_running(h.id));
    };
    let txn = store.begin_read()?;
    let prefix = schema::state_prefix(service, key.as_bytes());
    let q = Scan {
        limit: STATE_ENTRIES_MAX,
        bytes_max: STATE_READ_BYTES_MAX,
        reverse: false,
        keys_only: false,
    };
    let end = schema::prefix_end(&prefix);
    let (rows, more) = txn.scan_bounded(Table::State, &prefix, end.as_deref(), &q)?;
    if more {
        return Err(ReadError {
            message: format!(
                "the state of {service}/{key} is larger than the UI reads ({STATE_ENTRIES_MAX} \
                 entries or {} MiB); use `restate kv get` or SQL over `state`",
                STATE_READ_BYTES_MAX >> 20
            ),
            unavailable: false,
            too_large: true,
        });
    }
    rows.into_iter()
        .map(|(k, v)| {
            let (_, _, name) = schema::decode_state_key(&k)
                .map_err(|e| ReadError::corrupt(format!("state key: {e}")))?;
            Ok((name, v))
        })
        .collect()
}

/// One object's lock holder and the first rows of its inbox, and the inbox's length.
pub fn object(
    router: &Router,
    view: &View<'_>,
    service: &str,
    key: &str,
) -> Result<Json, ReadError> {
    let h = router.for_key(crate::fsm::partition_key_of(key));
    let Some(store) = h.store() else {
        return Err(ReadError::not_running(h.id));
    };
    let txn = store.begin_read()?;
    let lock = match txn.lock(service, key)? {
        Some(holder) => {
            let st = txn.status(&holder)?;
            json!({"invocation_id": holder.to_string(),
                   "handler": st.as_ref().map(|s| s.handler.clone()),
                   "status": st.as_ref().map(|s| status_word(s, view.now_ms))})
        }
        None => Json::Null,
    };
    let prefix = schema::inbox_prefix(service, key.as_bytes());
    let rows = txn.scan_prefix(Table::Inbox, &prefix, INBOX_ROWS_MAX)?;
    let mut inbox = Vec::new();
    for (position, (_, v)) in rows.iter().enumerate() {
        match decode_inbox_value(v)? {
            InboxEntry::Invocation(id, _) => {
                let st = txn.status(&id)?;
                inbox.push(json!({"invocation_id": id.to_string(), "position": position,
                    "handler": st.as_ref().map(|s| s.handler.clone()),
                    "created_at": st.as_ref().map(|s| s.created_ms)}));
            }
            InboxEntry::State(_) => inbox.push(json!({"invocation_id": Json::Null,
                "position": position, "handler": "(state edit)", "created_at": Json::Null})),
        }
    }
    let total = txn.inbox_len(service, key)?;
    let prefix = schema::state_prefix(service, key.as_bytes());
    let q =
        Scan { limit: STATE_ENTRIES_MAX, bytes_max: usize::MAX, reverse: false, keys_only: true };
    let end = schema::prefix_end(&prefix);
    let entries = txn.scan_bounded(Table::State, &prefix, end.as_deref(), &q)?.0.len();
    Ok(json!({"service": service, "key": key, "lock": lock, "inbox": inbox, "inbox_total": total,
              "state_entries": entries}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(keys: &[u8], frontier: Option<u8>) -> PartPage {
        PartPage {
            matches: keys
                .iter()
                .map(|k| {
                    (
                        vec![*k],
                        InvocationId { partition_key: 0, uuid: u128::from(*k) },
                        Status::default(),
                    )
                })
                .collect(),
            frontier: frontier.map(|f| vec![f]),
            scanned: keys.len(),
        }
    }

    fn keys(rows: &[(InvocationId, Status)]) -> Vec<u8> {
        rows.iter().map(|(id, _)| id.uuid as u8).collect()
    }

    #[test]
    fn a_page_stops_at_the_highest_frontier_and_goes_on_below_it() {
        // A stopped its scan at 5 (below it unexamined); B read to its end.
        let (rows, next, scanned) = merge_pages(
            vec![part(&[9, 7, 5], Some(5)), part(&[8, 6, 4, 2], None)],
            10,
            Order::Desc,
        );
        assert_eq!(keys(&rows), [9, 8, 7, 6, 5]);
        assert_eq!(next, Some(vec![5]));
        assert_eq!(scanned, 7);
        // The next page, strictly below 5: B's 4 and 2 come then, none twice.
        let (rows, next, _) =
            merge_pages(vec![part(&[3], None), part(&[4, 2], None)], 10, Order::Desc);
        assert_eq!(keys(&rows), [4, 3, 2]);
        assert_eq!(next, None);
    }

    #[test]
    fn the_frontier_nearest_the_start_bounds_the_page() {
        // Newest first: A examined down to 5, B down to 6; below 6, B is unexamined, so 5
        // must wait for the next page.
        let (rows, next, _) =
            merge_pages(vec![part(&[9, 5], Some(5)), part(&[8, 7, 6], Some(6))], 10, Order::Desc);
        assert_eq!(keys(&rows), [9, 8, 7, 6]);
        assert_eq!(next, Some(vec![6]));
        // Oldest first, the mirror: A up to 5, B up to 4.
        let (rows, next, _) =
            merge_pages(vec![part(&[1, 5], Some(5)), part(&[2, 3, 4], Some(4))], 10, Order::Asc);
        assert_eq!(keys(&rows), [1, 2, 3, 4]);
        assert_eq!(next, Some(vec![4]));
    }

    #[test]
    fn oldest_first_stops_at_the_lowest_frontier() {
        // A examined up to 5; B read to its end.
        let parts = vec![part(&[1, 3, 5], Some(5)), part(&[2, 4, 6, 8], None)];
        let (rows, next, _) = merge_pages(parts, 10, Order::Asc);
        assert_eq!(keys(&rows), [1, 2, 3, 4, 5]);
        assert_eq!(next, Some(vec![5]));
        let (rows, next, _) =
            merge_pages(vec![part(&[1, 3], None), part(&[2], None)], 2, Order::Asc);
        assert_eq!(keys(&rows), [1, 2]);
        assert_eq!(next, Some(vec![2]));
    }

    #[test]
    fn a_full_page_goes_on_below_its_last_row() {
        let (rows, next, _) =
            merge_pages(vec![part(&[9, 7], Some(7)), part(&[8, 6], Some(6))], 2, Order::Desc);
        assert_eq!(keys(&rows), [9, 8]);
        assert_eq!(next, Some(vec![8]));
        // Exactly `limit` rows and both read to their ends: the cursor still points below.
        let (rows, next, _) = merge_pages(vec![part(&[9], None), part(&[8], None)], 2, Order::Desc);
        assert_eq!(keys(&rows), [9, 8]);
        assert_eq!(next, Some(vec![8]));
        let (rows, next, _) = merge_pages(vec![part(&[], None), part(&[], None)], 2, Order::Desc);
        assert!(rows.is_empty());
        assert_eq!(next, None);
    }

    #[test]
    fn filters_refuse_unknown_names_and_bad_values() {
        let p = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(Filter::parse(&p(&[("servce", "X")]), &[]).is_err());
        assert!(Filter::parse(&p(&[("limit", "5")]), &["limit"]).unwrap().is_empty());
        assert!(Filter::parse(&p(&[("service", "")]), &[]).unwrap().is_empty());
        assert!(!Filter::parse(&p(&[("status", "completed")]), &[]).unwrap().is_empty());
        assert_eq!(Filter::parse(&p(&[("status", "done")]), &[]).unwrap_err().param, "status");
        assert_eq!(Filter::parse(&p(&[("status", ",")]), &[]).unwrap_err().param, "status");
        let f = Filter::parse(&p(&[("status", "succeeded,failed")]), &[]).unwrap();
        let st = Status::default();
        let schema = Schema::default();
        let view = View { schema: &schema, now_ms: 0 };
        let id = InvocationId { partition_key: 0, uuid: 1 };
        // A default status is `ready`: not completed.
        assert!(!f.matches(&id, &st, &view));
    }
}
