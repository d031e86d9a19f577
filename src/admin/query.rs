//! `POST /query`: SQL introspection, answered by a query engine that the binary plugs in.
//!
//! The engine (Apache DataFusion, `src/query/` in the binary) is not part of the library, so
//! the library's many test binaries do not link it; this module owns only the HTTP side:
//! the request shape `{"query": "<sql>"}`, the choice of format (`accept` exactly
//! `application/json` → `{"rows": [...]}`, anything else → an Arrow IPC stream, as Restate
//! answers), and the error shape.
//!
//! Invariants:
//! - A query that fails before its first rows is an admin error (`{"message", "restate_code"}`)
//!   with the engine's status: 400 for SQL the engine refuses (parse, plan, unknown table or
//!   column), 500 for a failure while executing, 503 when no engine is running; a failure
//!   after the first bytes ends the stream early.
//! - The engine runs queries on its own threads and reads the partition stores through read
//!   transactions: a query never holds up a partition processor.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use super::model::ErrorBody;
use super::Api;

/// What a query answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"rows": [{column: value, ...}, ...]}`, `content-type: application/json`.
    Json,
    /// Arrow IPC stream, `content-type: application/vnd.apache.arrow.stream`.
    ArrowStream,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::ArrowStream => "application/vnd.apache.arrow.stream",
        }
    }
}

/// Why a query failed before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub status: StatusCode,
    pub message: String,
}

/// The bytes of an answer, produced as the query runs.
pub type AnswerStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A SQL engine over the node's tables.
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Runs `sql`; resolves once the first rows (or the error) are known.
    fn query(
        &self,
        sql: String,
        format: Format,
    ) -> BoxFuture<'static, Result<AnswerStream, QueryError>>;
}

/// What an engine reads: the schema registry and the partitions' stores.
#[derive(Debug, Clone)]
pub struct Sources {
    pub registry: Arc<crate::schema::Registry>,
    pub partitions: crate::partition::Router,
    /// Memory all running queries may use together (`admin.query-engine.memory-size`).
    /// Bytes.
    pub memory_bytes: usize,
}

/// Builds the engine once the node's partitions exist.
pub type EngineFactory = Box<dyn FnOnce(Sources) -> Arc<dyn Engine> + Send>;

#[derive(serde::Deserialize)]
pub(super) struct QueryRequest {
    query: String,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorBody { message, restate_code: None })).into_response()
}

pub(super) async fn query(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<Json<QueryRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid query request: {e}")),
    };
    let Some(engine) = api.state.query.clone() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "Query service not available".into());
    };
    let json = headers.get(header::ACCEPT).is_some_and(|v| v.as_bytes() == b"application/json");
    let format = if json { Format::Json } else { Format::ArrowStream };
    match engine.query(req.query, format).await {
        Ok(stream) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, format.content_type())
            .body(Body::from_stream(stream))
            .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            let mut r = error(e.status, e.message);
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
        Err(e) => error(e.status, e.message),
    }
}
