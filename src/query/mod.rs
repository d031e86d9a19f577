//! The SQL engine behind the admin API's `POST /query`: Apache DataFusion over the node's
//! tables (`sys_invocation`, `sys_invocation_status`, `sys_journal`, `state`, ...), with the
//! column names and types Restate's introspection has, so the `restate` CLI's statements run
//! unchanged.
//!
//! It lives in the binary, not the library (see `ratchet::admin::query`): only the `ratchet`
//! executable links DataFusion.
//!
//! Invariants:
//! - Tables stream: each partition is read in pages of [`tables::PAGE_ROWS`] rows from one
//!   read transaction on a blocking thread, so a query holds a snapshot, never the write lock,
//!   and never blocks a partition processor or the async runtime.
//! - All queries share one memory pool of `admin.query-engine.memory-size`; an operator that
//!   needs more (a sort, a group by, a join) fails the query with DataFusion's "Resources
//!   exhausted" message instead of growing the process.
//! - An `id = '…'` or `id IN (…)` filter reads only those invocations (point lookups in the
//!   owning partitions).
//! - Errors before the first batch are answered as admin errors: 400 for what the planner
//!   refuses, 500 for what failed while running.

mod json;
mod tables;

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http::StatusCode;
use ratchet::admin::query::{AnswerStream, Engine, EngineFactory, Format, QueryError, Sources};

/// Rows per batch DataFusion passes between operators (Restate uses 128).
const BATCH_ROWS: usize = 128;
/// Longest SQL text accepted. Bytes. Deeply nested expressions would exhaust the planner's
/// stack; no statement the CLI or the UI sends comes near this.
const SQL_BYTES_MAX: usize = 64 * 1024;
/// Most operators (`+`, `=`, `<<`, `::`, `AND`, `IS`, ...; see [`operators`]) in one query.
/// The parser bounds nesting by parentheses and prefixes (depth 50), but a chain `1+1+...`
/// nests one level per operator, and parts of the planner walk it recursively (cloning
/// included) and some of its passes take time that grows faster than the chain: a chain of
/// thousands overflows the stack and takes the process down. No introspection query needs
/// this many; the tokenizer that counts them does not recurse.
const SQL_OPERATORS_MAX: usize = 500;
/// Queries running at once; one more is answered 429 with `Retry-After`.
const QUERIES_CONCURRENT_MAX: usize = 4;
/// A query (planning, then its whole answer) ends after this long.
const QUERY_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// The factory `runtime::run` calls once the partitions exist.
pub fn factory() -> EngineFactory {
    Box::new(|sources: Sources| -> Arc<dyn Engine> { Arc::new(DfEngine::new(sources)) })
}

#[derive(Debug)]
struct DfEngine {
    sources: Sources,
    runtime: Arc<RuntimeEnv>,
    running: Arc<tokio::sync::Semaphore>,
}

impl DfEngine {
    fn new(sources: Sources) -> DfEngine {
        let pool = Arc::new(FairSpillPool::new(sources.memory_bytes));
        // No spilling: an operator over the pool fails its query instead of writing
        // temporary files.
        let disk = DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .with_disk_manager_builder(disk)
            .build_arc()
            .expect("a runtime environment without a disk manager builds");
        let running = Arc::new(tokio::sync::Semaphore::new(QUERIES_CONCURRENT_MAX));
        DfEngine { sources, runtime, running }
    }

    fn context(&self) -> Result<SessionContext, DataFusionError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("restate", "public")
            .with_batch_size(BATCH_ROWS)
            .with_target_partitions(1);
        let ctx = SessionContext::new_with_config_rt(config, self.runtime.clone());
        tables::register(&ctx, &self.sources)?;
        Ok(ctx)
    }
}

fn planning(e: DataFusionError) -> QueryError {
    QueryError { status: StatusCode::BAD_REQUEST, message: e.to_string() }
}

fn running(e: DataFusionError) -> QueryError {
    let status = match e.find_root() {
        DataFusionError::ResourcesExhausted(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    QueryError { status, message: e.to_string() }
}

fn refused(status: StatusCode, message: impl Into<String>) -> QueryError {
    QueryError { status, message: message.into() }
}

impl Engine for DfEngine {
    fn query(
        &self,
        sql: String,
        format: Format,
    ) -> BoxFuture<'static, Result<AnswerStream, QueryError>> {
        let ctx = self.context();
        let permit = self.running.clone().try_acquire_owned();
        Box::pin(async move {
            if sql.len() > SQL_BYTES_MAX {
                let m = format!("the query has {} bytes, more than {SQL_BYTES_MAX}", sql.len());
                return Err(refused(StatusCode::BAD_REQUEST, m));
            }
            let operators = operators(&sql)
                .map_err(|e| refused(StatusCode::BAD_REQUEST, format!("SQL error: {e}")))?;
            if operators > SQL_OPERATORS_MAX {
                let m = format!(
                    "the query has {operators} operators, more than {SQL_OPERATORS_MAX}; split \
                     it into simpler queries"
                );
                return Err(refused(StatusCode::BAD_REQUEST, m));
            }
            let Ok(permit) = permit else {
                let m = format!("{QUERIES_CONCURRENT_MAX} queries are running; retry shortly");
                return Err(refused(StatusCode::TOO_MANY_REQUESTS, m));
            };
            let ctx = ctx.map_err(running)?;
            // Planned and run on the query threads (see `query_threads`); the answer comes
            // back through a small channel, so a slow reader slows the query, and a reader
            // that goes away stops it.
            let (mut first_tx, first_rx) = tokio::sync::oneshot::channel();
            query_threads().spawn(async move {
                let deadline = tokio::time::Instant::now() + QUERY_TIME_MAX;
                let planned = tokio::time::timeout_at(deadline, plan(ctx, sql));
                let planned = tokio::select! {
                    r = planned => r,
                    _ = first_tx.closed() => return,
                };
                let (first, stream) = match planned {
                    // Planning does not yield, so it can end past the deadline: then there is
                    // no time left to answer in.
                    Ok(Ok(_)) if tokio::time::Instant::now() >= deadline => {
                        return drop(first_tx.send(Err(timed_out())))
                    }
                    Ok(Ok(answer)) => answer,
                    Ok(Err(e)) => return drop(first_tx.send(Err(e))),
                    Err(_) => return drop(first_tx.send(Err(timed_out()))),
                };
                let answer = match format {
                    Format::Json => json_answer(first, stream),
                    Format::ArrowStream => match arrow_answer(first, stream) {
                        Ok(a) => a,
                        Err(e) => return drop(first_tx.send(Err(running(e)))),
                    },
                };
                let (tx, rx) = tokio::sync::mpsc::channel(ANSWER_CHUNKS_QUEUED);
                if first_tx.send(Ok(rx)).is_err() {
                    return;
                }
                // Cut short at the deadline; the permit is held until the answer ends.
                let mut answer =
                    std::pin::pin!(answer.take_until(tokio::time::sleep_until(deadline)));
                while let Some(chunk) = answer.next().await {
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
                drop(permit);
            });
            // Bounded here too: planning that does not yield cannot be cut short where it
            // runs, but the asker is answered in time.
            let rx = tokio::time::timeout(QUERY_TIME_MAX, first_rx)
                .await
                .map_err(|_| timed_out())?
                .map_err(|_| {
                    refused(StatusCode::INTERNAL_SERVER_ERROR, "the query stopped unexpectedly")
                })??;
            let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|chunk| (chunk, rx))
            });
            Ok(chunks.boxed())
        })
    }
}

/// Answer chunks queued between the query threads and the HTTP response.
const ANSWER_CHUNKS_QUEUED: usize = 2;
/// Stack of each query thread. Bytes. The planner and the evaluator recurse once per
/// operator in an expression ([`SQL_OPERATORS_MAX`] of them at most), with large frames in
/// unoptimized builds; only the pages touched are resident.
const QUERY_THREAD_STACK_BYTES: usize = 64 << 20;
/// Threads that plan and run queries.
const QUERY_THREADS: usize = QUERIES_CONCURRENT_MAX;

/// The runtime queries run on, apart from the server's: its threads have deep stacks (see
/// [`QUERY_THREAD_STACK_BYTES`]), and a heavy query never occupies the threads that serve
/// the ingress and the partitions. Built on first use; lives as long as the process.
fn query_threads() -> &'static tokio::runtime::Handle {
    static THREADS: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    THREADS
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(QUERY_THREADS)
                .thread_stack_size(QUERY_THREAD_STACK_BYTES)
                .thread_name("ratchet-query")
                .enable_all()
                .build()
                .expect("the query runtime starts")
        })
        .handle()
}

fn timed_out() -> QueryError {
    refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the query ran longer than {QUERY_TIME_MAX:?}"),
    )
}

/// Plans `sql` (only queries: DDL, DML and statements are refused) and runs it up to its
/// first non-empty batch, which decides between an error status and an answer.
async fn plan(
    ctx: SessionContext,
    sql: String,
) -> Result<(Option<RecordBatch>, SendableRecordBatchStream), QueryError> {
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(&sql, options).await.map_err(planning)?;
    let mut stream = df.execute_stream().await.map_err(planning)?;
    let first = loop {
        match stream.next().await {
            Some(Ok(b)) if b.num_rows() == 0 => continue,
            Some(Ok(b)) => break Some(b),
            Some(Err(e)) => return Err(running(e)),
            None => break None,
        }
    };
    Ok((first, stream))
}

/// The operators in `sql`, or why it does not tokenize: every token
/// that is not a name, a literal, a comma, a parenthesis or a period, and the keywords that
/// join expressions (`AND`, `IS`, `LIKE`, ...). Counting everything but atoms, rather than a
/// list of operators, keeps an operator forgotten here from building an unbounded chain.
fn operators(sql: &str) -> Result<usize, String> {
    // The dialect the session parses with (DataFusion's default), so what does not tokenize
    // here would not parse there either.
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().map_err(|e| e.to_string())?;
    let n = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(
                w.keyword,
                Keyword::AND
                    | Keyword::OR
                    | Keyword::NOT
                    | Keyword::IS
                    | Keyword::IN
                    | Keyword::LIKE
                    | Keyword::ILIKE
                    | Keyword::SIMILAR
                    | Keyword::BETWEEN
                    | Keyword::COLLATE
                    | Keyword::AT
                    | Keyword::OPERATOR
                    | Keyword::ESCAPE
                    | Keyword::REGEXP
                    | Keyword::RLIKE
                    | Keyword::DIV
                    | Keyword::XOR
                    | Keyword::OVERLAPS
                    | Keyword::MATCH
            ),
            Token::Number(..)
            | Token::Char(_)
            | Token::Comma
            | Token::Whitespace(_)
            | Token::LParen
            | Token::RParen
            | Token::Period
            | Token::SemiColon
            | Token::EOF => false,
            // Every string and byte literal variant's name ends in `String` or `Literal`
            // (`StringConcat` is an operator).
            other => {
                let debug = format!("{other:?}");
                let variant = debug.split('(').next().unwrap_or("");
                !(variant.ends_with("String") || variant.ends_with("Literal"))
            }
        })
        .count();
    Ok(n)
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// `{"rows": [...]}`, one object per row, written batch by batch.
fn json_answer(first: Option<RecordBatch>, rest: SendableRecordBatchStream) -> AnswerStream {
    let head = futures_util::stream::once(async { Ok(Bytes::from_static(b"{\"rows\":[")) });
    let mut any = false;
    let batches = futures_util::stream::iter(first.map(Ok)).chain(rest).map(move |b| {
        let b = b.map_err(io)?;
        let mut out = Vec::with_capacity(b.num_rows() * 64);
        json::write_rows(&b, &mut out, &mut any).map_err(io)?;
        Ok(Bytes::from(out))
    });
    let tail = futures_util::stream::once(async { Ok(Bytes::from_static(b"]}")) });
    head.chain(batches).chain(tail).boxed()
}

/// An Arrow IPC stream: the schema, then each batch, then the end marker.
fn arrow_answer(
    first: Option<RecordBatch>,
    rest: SendableRecordBatchStream,
) -> Result<AnswerStream, DataFusionError> {
    let schema = rest.schema();
    let mut writer = StreamWriter::try_new(Vec::new(), &schema)?;
    if let Some(b) = &first {
        writer.write(b)?;
    }
    let head = std::mem::take(writer.get_mut());
    let writer = Arc::new(std::sync::Mutex::new(writer));
    let w = writer.clone();
    let batches = rest.map(move |b| {
        let b = b.map_err(io)?;
        let mut w = w.lock().map_err(io)?;
        w.write(&b).map_err(io)?;
        Ok(Bytes::from(std::mem::take(w.get_mut())))
    });
    let tail = futures_util::stream::once(async move {
        let mut w = writer.lock().map_err(io)?;
        w.finish().map_err(io)?;
        Ok(Bytes::from(std::mem::take(w.get_mut())))
    });
    Ok(futures_util::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(batches)
        .chain(tail)
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine over one partition that never started (no store, not running).
    fn engine_without_a_running_partition() -> DfEngine {
        use ratchet::partition::{Handle, Router, Waiters};
        let log: ratchet::log::SharedLog = Arc::new(ratchet::log::MemLog::new());
        let partitions = Router {
            partitions: Arc::new(vec![Handle::new(0, log)]),
            waiters: Arc::new(Waiters::new(0)),
        };
        let registry = Arc::new(ratchet::schema::Registry::in_memory(Default::default()));
        DfEngine::new(Sources { registry, partitions, memory_bytes: 16 << 20 })
    }

    async fn answer(engine: &DfEngine, sql: &str) -> Result<String, QueryError> {
        let mut stream = engine.query(sql.to_string(), Format::Json).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.expect("a chunk"));
        }
        Ok(String::from_utf8(out).expect("JSON"))
    }

    #[tokio::test]
    async fn a_lookup_in_a_stopped_partition_fails_while_a_scan_skips_it() {
        let engine = engine_without_a_running_partition();
        let id = "inv_1ccuW2GmKmIs3AH2t9M19yZSq0xrIZDxpn";
        let err = answer(&engine, &format!("SELECT id FROM sys_invocation WHERE id = '{id}'"))
            .await
            .expect_err("the partition that owns the id does not run");
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(err.message.contains("is not running"), "{}", err.message);
        let rows = answer(&engine, "SELECT count(*) AS n FROM sys_invocation").await.unwrap();
        assert_eq!(rows, r#"{"rows":[{"n":0}]}"#);
    }
}
