//! The introspection tables as DataFusion table providers, with Restate's names, column
//! order and types (Utf8, UInt32/64, Boolean, `Timestamp(ms, "+00:00")`, `Duration(ms)`,
//! `List<UInt32>`, LargeBinary).
//!
//! Invariants:
//! - A partitioned table scans each running partition in pages of [`PAGE_ROWS`] rows, every
//!   page from one read transaction taken when the scan starts, on a blocking thread.
//! - `id = '…'` / `id IN (…)` filters on invocation tables are pushed down as point lookups
//!   (reported Inexact, so DataFusion still applies them).
//! - A partition that is not running contributes no rows to a scan (a query never waits for
//!   one); a point lookup of an id it owns fails the query instead.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, DurationMillisecondBuilder, LargeBinaryBuilder, ListBuilder,
    StringBuilder, TimestampMillisecondBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::SessionContext;
use ratchet::admin::query::Sources;
use ratchet::fsm::{outcome, FsmRead, HandlerKind, Phase, PromiseEntry, Status};
use ratchet::protocol::discovery::ServiceType;
use ratchet::protocol::ids::InvocationId;
use ratchet::store::{schema, PartitionStore, ReadTxn, ReadView, Table};

/// Rows read from a partition per page.
pub const PAGE_ROWS: usize = 1024;
/// Bytes of keys and values one page reads, about (a page has at least one row).
const PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Invocations whose journals one `sys_journal` page reads.
const JOURNAL_INVOCATIONS_PER_PAGE: usize = 64;
/// Entries of one invocation's journal `sys_journal` shows at most.
const JOURNAL_ENTRIES_MAX: u32 = 4096;

/// One cell.
#[derive(Clone, Debug)]
enum Val {
    Null,
    Str(String),
    U64(u64),
    U32(u32),
    Bool(bool),
    /// Ms since the epoch.
    Ts(u64),
    /// Ms.
    Dur(u64),
    ListU32(Vec<u32>),
    Bin(Vec<u8>),
}

fn s(v: impl Into<String>) -> Val {
    Val::Str(v.into())
}

fn opt_s(v: &str) -> Val {
    if v.is_empty() {
        Val::Null
    } else {
        Val::Str(v.to_string())
    }
}

fn ts(ms: u64) -> Val {
    if ms == 0 {
        Val::Null
    } else {
        Val::Ts(ms)
    }
}

fn utf8() -> DataType {
    DataType::Utf8
}
fn tstamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
}
fn dur() -> DataType {
    DataType::Duration(TimeUnit::Millisecond)
}
fn list_u32() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::UInt32, true)))
}

/// The target columns, which `sys_invocation_status` and `sys_invocation` share in this order.
fn target_columns() -> Vec<(&'static str, DataType)> {
    vec![
        ("target", utf8()),
        ("target_service_name", utf8()),
        ("target_service_key", utf8()),
        ("target_handler_name", utf8()),
        ("target_service_ty", utf8()),
        ("scope", utf8()),
        ("limit_key", utf8()),
        ("idempotency_key", utf8()),
    ]
}

/// The columns from `restarted_from` to `suspended_waiting_future_json`, which
/// `sys_invocation_status` and `sys_invocation` share in this order.
fn lifecycle_columns() -> Vec<(&'static str, DataType)> {
    vec![
        ("restarted_from", utf8()),
        ("pinned_deployment_id", utf8()),
        ("pinned_service_protocol_version", DataType::UInt32),
        ("trace_id", utf8()),
        ("journal_size", DataType::UInt32),
        ("journal_commands_size", DataType::UInt32),
        ("created_at", tstamp()),
        ("created_using_restate_version", utf8()),
        ("modified_at", tstamp()),
        ("inboxed_at", tstamp()),
        ("scheduled_at", tstamp()),
        ("scheduled_start_at", tstamp()),
        ("running_at", tstamp()),
        ("completed_at", tstamp()),
        ("completion_retention", dur()),
        ("journal_retention", dur()),
        ("suspended_waiting_for_completions", list_u32()),
        ("suspended_waiting_for_signals", list_u32()),
        ("suspended_waiting_future_json", utf8()),
    ]
}

fn schema_of(cols: &[(&str, DataType)]) -> SchemaRef {
    Arc::new(Schema::new(
        cols.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>(),
    ))
}

/// Builds a batch of `schema` from rows of cells (in column order).
fn batch(schema: &SchemaRef, rows: &[Vec<Val>]) -> DfResult<RecordBatch> {
    if let Some(r) = rows.iter().find(|r| r.len() != schema.fields().len()) {
        return Err(DataFusionError::Internal(format!(
            "a row of {} cells for {} columns",
            r.len(),
            schema.fields().len()
        )));
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (c, field) in schema.fields().iter().enumerate() {
        let cells = rows.iter().map(|r| r.get(c).unwrap_or(&Val::Null));
        // One builder per type; a cell of another variant is NULL.
        macro_rules! column {
            ($builder:expr, $pat:pat => $v:expr) => {{
                let mut b = $builder;
                for v in cells {
                    match v {
                        $pat => b.append_value($v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish()) as ArrayRef
            }};
        }
        let array: ArrayRef = match field.data_type() {
            DataType::Utf8 => column!(StringBuilder::new(), Val::Str(x) => x),
            DataType::UInt64 => column!(UInt64Builder::new(), Val::U64(x) => *x),
            DataType::UInt32 => column!(UInt32Builder::new(), Val::U32(x) => *x),
            DataType::Boolean => column!(BooleanBuilder::new(), Val::Bool(x) => *x),
            DataType::Timestamp(..) => column!(
                TimestampMillisecondBuilder::new().with_timezone("+00:00"),
                Val::Ts(x) => *x as i64
            ),
            DataType::Duration(..) => {
                column!(DurationMillisecondBuilder::new(), Val::Dur(x) => *x as i64)
            }
            DataType::List(_) => {
                let mut b = ListBuilder::new(UInt32Builder::new());
                for v in cells {
                    match v {
                        Val::ListU32(xs) => {
                            for x in xs {
                                b.values().append_value(*x);
                            }
                            b.append(true);
                        }
                        _ => b.append(false),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::LargeBinary => column!(LargeBinaryBuilder::new(), Val::Bin(x) => x),
            other => {
                return Err(DataFusionError::Internal(format!("no builder for {other}")));
            }
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Which table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    InvocationStatus,
    InvocationState,
    Invocation,
    Journal,
    JournalEvents,
    State,
    Inbox,
    KeyedServiceStatus,
    Promise,
    Service,
    Deployment,
}

impl Kind {
    const ALL: [(Kind, &'static str); 11] = [
        (Kind::InvocationStatus, "sys_invocation_status"),
        (Kind::InvocationState, "sys_invocation_state"),
        (Kind::Invocation, "sys_invocation"),
        (Kind::Journal, "sys_journal"),
        (Kind::JournalEvents, "sys_journal_events"),
        (Kind::State, "state"),
        (Kind::Inbox, "sys_inbox"),
        (Kind::KeyedServiceStatus, "sys_keyed_service_status"),
        (Kind::Promise, "sys_promise"),
        (Kind::Service, "sys_service"),
        (Kind::Deployment, "sys_deployment"),
    ];

    fn partitioned(self) -> bool {
        !matches!(self, Kind::Service | Kind::Deployment)
    }

    /// Whether rows are per invocation (an `id` filter narrows them to point lookups).
    fn by_invocation(self) -> bool {
        matches!(
            self,
            Kind::InvocationStatus
                | Kind::InvocationState
                | Kind::Invocation
                | Kind::Journal
                | Kind::JournalEvents
        )
    }

    fn schema(self) -> SchemaRef {
        let pk = ("partition_key", DataType::UInt64);
        match self {
            Kind::InvocationStatus => schema_of(
                &[
                    vec![
                        pk,
                        ("id", utf8()),
                        ("vqueue_id", utf8()),
                        ("status", utf8()),
                        ("completion_result", utf8()),
                        ("completion_failure", utf8()),
                    ],
                    target_columns(),
                    vec![
                        ("invoked_by", utf8()),
                        ("invoked_by_id", utf8()),
                        ("invoked_by_subscription_id", utf8()),
                        ("invoked_by_service_name", utf8()),
                        ("invoked_by_target", utf8()),
                    ],
                    lifecycle_columns(),
                ]
                .concat(),
            ),
            Kind::InvocationState => schema_of(&[
                pk,
                ("id", utf8()),
                ("in_flight", DataType::Boolean),
                ("retry_count", DataType::UInt64),
                ("last_start_at", tstamp()),
                ("last_attempt_deployment_id", utf8()),
                ("last_attempt_server", utf8()),
                ("next_retry_at", tstamp()),
                ("last_failure", utf8()),
                ("last_failure_error_code", utf8()),
                ("last_failure_related_command_index", DataType::UInt64),
                ("last_failure_related_command_name", utf8()),
                ("last_failure_related_command_type", utf8()),
                ("last_failure_related_entry_index", DataType::UInt64),
                ("last_failure_related_entry_name", utf8()),
                ("last_failure_related_entry_type", utf8()),
                ("last_awaiting_on_future_json", utf8()),
            ]),
            Kind::Invocation => schema_of(
                &[
                    vec![("id", utf8()), ("vqueue_id", utf8())],
                    target_columns(),
                    vec![
                        ("invoked_by", utf8()),
                        ("invoked_by_service_name", utf8()),
                        ("invoked_by_id", utf8()),
                        ("invoked_by_subscription_id", utf8()),
                        ("invoked_by_target", utf8()),
                    ],
                    lifecycle_columns(),
                    vec![
                        ("retry_count", DataType::UInt64),
                        ("last_start_at", tstamp()),
                        ("next_retry_at", tstamp()),
                        ("last_attempt_deployment_id", utf8()),
                        ("last_attempt_server", utf8()),
                        ("last_failure", utf8()),
                        ("last_failure_error_code", utf8()),
                        ("last_failure_related_entry_index", DataType::UInt64),
                        ("last_failure_related_entry_name", utf8()),
                        ("last_failure_related_entry_type", utf8()),
                        ("last_failure_related_command_index", DataType::UInt64),
                        ("last_failure_related_command_name", utf8()),
                        ("last_failure_related_command_type", utf8()),
                        ("last_awaiting_on_future_json", utf8()),
                        ("status", utf8()),
                        ("completion_result", utf8()),
                        ("completion_failure", utf8()),
                    ],
                ]
                .concat(),
            ),
            Kind::Journal => schema_of(&[
                pk,
                ("id", utf8()),
                ("index", DataType::UInt32),
                ("entry_type", utf8()),
                ("name", utf8()),
                ("completed", DataType::Boolean),
                ("invoked_id", utf8()),
                ("invoked_target", utf8()),
                ("sleep_wakeup_at", tstamp()),
                ("promise_name", utf8()),
                ("raw", DataType::LargeBinary),
                ("raw_length", DataType::UInt64),
                ("version", DataType::UInt32),
                ("entry_json", utf8()),
                ("entry_lite_json", utf8()),
                ("appended_at", tstamp()),
            ]),
            Kind::JournalEvents => schema_of(&[
                pk,
                ("id", utf8()),
                ("after_journal_entry_index", DataType::UInt32),
                ("appended_at", tstamp()),
                ("event_type", utf8()),
                ("event_json", utf8()),
            ]),
            Kind::State => schema_of(&[
                pk,
                ("scope", utf8()),
                ("service_name", utf8()),
                ("service_key", utf8()),
                ("key", utf8()),
                ("key_length", DataType::UInt64),
                ("value_utf8", utf8()),
                ("value", DataType::LargeBinary),
                ("value_length", DataType::UInt64),
            ]),
            Kind::Inbox => schema_of(&[
                pk,
                ("service_name", utf8()),
                ("service_key", utf8()),
                ("id", utf8()),
                ("sequence_number", DataType::UInt64),
                ("created_at", tstamp()),
            ]),
            Kind::KeyedServiceStatus => schema_of(&[
                pk,
                ("service_name", utf8()),
                ("service_key", utf8()),
                ("invocation_id", utf8()),
            ]),
            Kind::Promise => schema_of(&[
                pk,
                ("scope", utf8()),
                ("service_name", utf8()),
                ("service_key", utf8()),
                ("key", utf8()),
                ("completed", DataType::Boolean),
                ("completion_success_value", DataType::LargeBinary),
                ("completion_success_value_utf8", utf8()),
                ("completion_failure", utf8()),
            ]),
            Kind::Service => schema_of(&[
                ("name", utf8()),
                ("revision", DataType::UInt64),
                ("public", DataType::Boolean),
                ("ty", utf8()),
                ("deployment_id", utf8()),
            ]),
            Kind::Deployment => schema_of(&[
                ("id", utf8()),
                ("ty", utf8()),
                ("endpoint", utf8()),
                ("created_at", tstamp()),
                ("min_service_protocol_version", DataType::UInt32),
                ("max_service_protocol_version", DataType::UInt32),
                ("services", DataType::List(Arc::new(Field::new("item", utf8(), true)))),
            ]),
        }
    }
}

/// Registers every table in `ctx`.
pub fn register(ctx: &SessionContext, sources: &Sources) -> DfResult<()> {
    for (kind, name) in Kind::ALL {
        let t = Arc::new(Provider { kind, schema: kind.schema(), sources: sources.clone() });
        ctx.register_table(name, t)?;
    }
    Ok(())
}

struct Provider {
    kind: Kind,
    schema: SchemaRef,
    sources: Sources,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Provider({:?})", self.kind)
    }
}

/// The invocation ids an `id = '…'` or `id IN ('…', …)` filter names.
fn ids_of(e: &Expr) -> Option<Vec<InvocationId>> {
    let lit_id = |e: &Expr| match e {
        Expr::Literal(ScalarValue::Utf8(Some(v)) | ScalarValue::LargeUtf8(Some(v)), _) => {
            v.parse::<InvocationId>().ok()
        }
        _ => None,
    };
    let is_id = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "id");
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            if is_id(left) {
                lit_id(right).map(|i| vec![i])
            } else if is_id(right) {
                lit_id(left).map(|i| vec![i])
            } else {
                None
            }
        }
        Expr::InList(l) if !l.negated && is_id(&l.expr) => {
            l.list.iter().map(lit_id).collect::<Option<Vec<_>>>()
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for Provider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.kind.by_invocation() && ids_of(f).is_some() {
                true => TableProviderFilterPushDown::Inexact,
                false => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let ids = match self.kind.by_invocation() {
            true => filters.iter().find_map(ids_of),
            false => None,
        };
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let projection = projection.cloned();
        let parts: Vec<Arc<dyn PartitionStream>> = if self.kind.partitioned() {
            let n = self.sources.partitions.partitions.len();
            (0..n)
                .map(|p| {
                    Arc::new(Part {
                        kind: self.kind,
                        table_schema: self.schema.clone(),
                        projection: projection.clone(),
                        projected: projected.clone(),
                        sources: self.sources.clone(),
                        partition: Some(p),
                        ids: ids.clone(),
                    }) as Arc<dyn PartitionStream>
                })
                .collect()
        } else {
            vec![Arc::new(Part {
                kind: self.kind,
                table_schema: self.schema.clone(),
                projection: projection.clone(),
                projected: projected.clone(),
                sources: self.sources.clone(),
                partition: None,
                ids: None,
            })]
        };
        // The parts produce projected batches themselves.
        Ok(Arc::new(StreamingTableExec::try_new(projected, parts, None, Vec::new(), false, limit)?))
    }
}

/// One partition of one table.
struct Part {
    kind: Kind,
    /// The table's whole schema.
    table_schema: SchemaRef,
    /// The columns the query reads, and their schema.
    projection: Option<Vec<usize>>,
    projected: SchemaRef,
    sources: Sources,
    partition: Option<usize>,
    ids: Option<Vec<InvocationId>>,
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Part({:?}, {:?})", self.kind, self.partition)
    }
}

/// Where a scan of one partition stands.
enum Cursor {
    Start,
    After(Vec<u8>),
    Done,
}

impl PartitionStream for Part {
    fn schema(&self) -> &SchemaRef {
        &self.projected
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let kind = self.kind;
        let schema = self.table_schema.clone();
        let projected = self.projected.clone();
        let projection = self.projection.clone();
        let sources = self.sources.clone();
        let store: Option<Arc<PartitionStore>> = self
            .partition
            .and_then(|p| sources.partitions.partitions.get(p).and_then(|h| h.store()));
        let partition = self.partition;
        let running = partition
            .and_then(|p| sources.partitions.partitions.get(p))
            .is_some_and(|h| h.liveness().is_running());
        let n = sources.partitions.partitions.len() as u16;
        // Point lookups: only the ids this partition owns.
        let ids: Option<Vec<InvocationId>> = self.ids.as_ref().map(|ids| {
            ids.iter()
                .copied()
                .filter(|id| {
                    partition.is_some_and(|p| {
                        usize::from(ratchet::partition::partition_of(id.partition_key, n)) == p
                    })
                })
                .collect()
        });
        let stream = futures_util::stream::unfold(Cursor::Start, move |cursor| {
            let (schema, sources, store, ids, projection) =
                (schema.clone(), sources.clone(), store.clone(), ids.clone(), projection.clone());
            async move {
                if matches!(cursor, Cursor::Done) {
                    return None;
                }
                // Asking for an id a partition owns while it does not run (what it applied
                // may be behind what it accepted) is an error, not a silent "no such
                // invocation"; a scan goes on without it.
                if kind.partitioned() && !running && ids.as_ref().is_some_and(|i| !i.is_empty()) {
                    let p = partition.unwrap_or_default();
                    let e = format!(
                        "partition {p}, which owns an invocation asked for, is not running; \
                         retry shortly"
                    );
                    return Some((Err(DataFusionError::Execution(e)), Cursor::Done));
                }
                if kind.partitioned() && store.is_none() {
                    return None;
                }
                // A read transaction per page: a slow reader never pins old store pages.
                let page = tokio::task::spawn_blocking(move || {
                    let txn = match &store {
                        Some(s) => Some(s.begin_read().map_err(store_err)?),
                        None => None,
                    };
                    let count_only = projection.as_ref().is_some_and(|p| p.is_empty());
                    let (b, next) = page(
                        kind,
                        &schema,
                        &sources,
                        txn.as_ref(),
                        ids.as_deref(),
                        cursor,
                        projection.as_deref(),
                    )?;
                    let b = match (&projection, count_only) {
                        (_, true) if b.num_columns() == 0 => b,
                        (_, true) => b.project(&[])?,
                        (Some(p), false) => b.project(p)?,
                        (None, false) => b,
                    };
                    Ok((b, next))
                })
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))
                .and_then(|r| r);
                match page {
                    Ok((b, next)) => Some((Ok(b), next)),
                    Err(e) => Some((Err(e), Cursor::Done)),
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(projected, stream))
    }
}

fn store_err(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// Reads one page of `kind` after `cursor`: the rows and where the next page starts.
fn page(
    kind: Kind,
    schema: &SchemaRef,
    sources: &Sources,
    txn: Option<&ReadTxn>,
    ids: Option<&[InvocationId]>,
    cursor: Cursor,
    projection: Option<&[usize]>,
) -> DfResult<(RecordBatch, Cursor)> {
    // `count(*)`: no columns at all.
    let count_only = projection.is_some_and(|p| p.is_empty());
    let after = match cursor {
        Cursor::Start => None,
        Cursor::After(k) => Some(k),
        Cursor::Done => return Ok((RecordBatch::new_empty(schema.clone()), Cursor::Done)),
    };
    let registry = sources.registry.snapshot();
    let service_ty = |name: &str, kind: HandlerKind| -> &'static str {
        match registry.services.get(name).map(|s| s.ty) {
            Some(ServiceType::Service) => "service",
            Some(ServiceType::VirtualObject) => "virtual_object",
            Some(ServiceType::Workflow) => "workflow",
            None => match kind {
                HandlerKind::Service | HandlerKind::Unspecified => "service",
                HandlerKind::WorkflowRun => "workflow",
                _ => "virtual_object",
            },
        }
    };
    let mut rows: Vec<Vec<Val>> = Vec::new();
    let mut next;
    match kind {
        Kind::Service => {
            for svc in registry.services.values() {
                let ty = match svc.ty {
                    ServiceType::Service => "service",
                    ServiceType::VirtualObject => "virtual_object",
                    ServiceType::Workflow => "workflow",
                };
                rows.push(vec![
                    s(&svc.name),
                    Val::U64(u64::from(svc.revision)),
                    Val::Bool(svc.public),
                    s(ty),
                    s(&svc.deployment_id),
                ]);
            }
            return Ok((batch(schema, &rows)?, Cursor::Done));
        }
        Kind::Deployment => {
            let mut columns: Vec<ArrayRef> = Vec::new();
            let mut id = StringBuilder::new();
            let mut ty = StringBuilder::new();
            let mut endpoint = StringBuilder::new();
            let mut created = TimestampMillisecondBuilder::new().with_timezone("+00:00");
            let mut min = UInt32Builder::new();
            let mut max = UInt32Builder::new();
            let mut services = ListBuilder::new(StringBuilder::new());
            for d in registry.deployments.values() {
                id.append_value(&d.id);
                ty.append_value("http");
                endpoint.append_value(&d.uri);
                created.append_value(d.created_ms as i64);
                min.append_value(d.min_protocol_version.max(0) as u32);
                max.append_value(d.max_protocol_version.max(0) as u32);
                for (name, _) in &d.services {
                    services.values().append_value(name);
                }
                services.append(true);
            }
            columns.push(Arc::new(id.finish()));
            columns.push(Arc::new(ty.finish()));
            columns.push(Arc::new(endpoint.finish()));
            columns.push(Arc::new(created.finish()));
            columns.push(Arc::new(min.finish()));
            columns.push(Arc::new(max.finish()));
            columns.push(Arc::new(services.finish()));
            return Ok((RecordBatch::try_new(schema.clone(), columns)?, Cursor::Done));
        }
        _ => {}
    }
    let Some(txn) = txn else { return Ok((RecordBatch::new_empty(schema.clone()), Cursor::Done)) };
    // Invocation tables: the statuses of this page.
    let statuses = |limit: usize| -> DfResult<(Vec<(InvocationId, Status)>, Cursor)> {
        if let Some(ids) = ids {
            let mut out = Vec::new();
            for id in ids {
                if let Some(st) = txn.status(id).map_err(store_err)? {
                    out.push((*id, st));
                }
            }
            return Ok((out, Cursor::Done));
        }
        let after_id = match &after {
            Some(k) => Some(
                InvocationId::from_bytes(k)
                    .map_err(|e| DataFusionError::Internal(e.to_string()))?,
            ),
            None => None,
        };
        let page = txn.statuses_after(after_id, limit).map_err(store_err)?;
        let next = match page.len() < limit {
            true => Cursor::Done,
            false => page
                .last()
                .map(|(id, _)| Cursor::After(id.to_bytes().to_vec()))
                .unwrap_or(Cursor::Done),
        };
        Ok((page, next))
    };
    match kind {
        Kind::InvocationStatus | Kind::InvocationState | Kind::Invocation => {
            let (page, n) = statuses(PAGE_ROWS)?;
            next = n;
            if count_only {
                // `count(*)`: rows without columns, nothing to format.
                let options = RecordBatchOptions::new().with_row_count(Some(page.len()));
                let empty = Arc::new(Schema::empty());
                return Ok((RecordBatch::try_new_with_options(empty, vec![], &options)?, next));
            }
            let now = ratchet::timefmt::now_ms();
            let wanted: Vec<bool> = (0..schema.fields().len())
                .map(|i| projection.is_none_or(|p| p.contains(&i)))
                .collect();
            for (id, st) in &page {
                let cx = InvocationCx::new(id, st, now, &service_ty);
                rows.push(invocation_row(kind, &cx, schema, &wanted));
            }
        }
        Kind::Journal => {
            let (page, n) = statuses(JOURNAL_INVOCATIONS_PER_PAGE)?;
            next = n;
            let mut bytes = 0usize;
            let mut last_done: Option<InvocationId> = None;
            for (id, st) in &page {
                if bytes > PAGE_BYTES_MAX && ids.is_none() {
                    // The rest of this page of invocations comes in the next one.
                    if let Some(done) = last_done {
                        next = Cursor::After(done.to_bytes().to_vec());
                    }
                    break;
                }
                last_done = Some(*id);
                let len = st.journal_len.min(JOURNAL_ENTRIES_MAX);
                if len == 0 {
                    continue;
                }
                let entries = txn.journal_page_of(id, st, 0, len).map_err(store_err)?;
                for (index, (ty, payload)) in entries.iter().enumerate() {
                    bytes += payload.len();
                    rows.push(vec![
                        Val::U64(id.partition_key),
                        s(id.to_string()),
                        Val::U32(index as u32),
                        s(entry_type(*ty)),
                        Val::Null,
                        Val::Bool(entry_completed(*ty, st)),
                        Val::Null,
                        Val::Null,
                        Val::Null,
                        Val::Null,
                        Val::Bin(payload.to_vec()),
                        Val::U64(payload.len() as u64),
                        Val::U32(2),
                        Val::Null,
                        Val::Null,
                        Val::Null,
                    ]);
                }
            }
        }
        Kind::JournalEvents => {
            let (page, n) = statuses(PAGE_ROWS)?;
            next = n;
            for (id, st) in &page {
                if st.events_len == 0 {
                    continue;
                }
                for ev in txn.journal_events(id, st.events_len).map_err(store_err)? {
                    let json = serde_json::json!({
                        "code": ev.code,
                        "message": ev.message,
                        "count": ev.count,
                    });
                    rows.push(vec![
                        Val::U64(id.partition_key),
                        s(id.to_string()),
                        Val::U32(ev.after_journal_entry_index),
                        ts(ev.appended_at_ms),
                        s(format!("{:?}", ev.kind())),
                        s(json.to_string()),
                    ]);
                }
            }
        }
        Kind::State | Kind::Inbox | Kind::KeyedServiceStatus | Kind::Promise => {
            let table = match kind {
                Kind::State => Table::State,
                Kind::Inbox => Table::Inbox,
                Kind::KeyedServiceStatus => Table::ObjectLock,
                _ => Table::Promises,
            };
            let start = after.as_deref().map(schema::key_after).unwrap_or_default();
            let end = [0xFFu8; 9];
            let raw = txn
                .scan_range_bytes(table, &start, &end, PAGE_ROWS, PAGE_BYTES_MAX)
                .map_err(store_err)?;
            next = match raw.is_empty() {
                true => Cursor::Done,
                false => raw.last().map(|(k, _)| Cursor::After(k.clone())).unwrap_or(Cursor::Done),
            };
            for (k, v) in raw {
                if let Some(row) = keyed_row(kind, &k, &v).map_err(store_err)? {
                    rows.push(row);
                }
            }
        }
        Kind::Service | Kind::Deployment => unreachable!("handled above"),
    }
    Ok((batch(schema, &rows)?, next))
}

fn pk_of_key(_service: &str, key: &[u8]) -> u64 {
    ratchet::fsm::partition_key_of(&String::from_utf8_lossy(key))
}

fn keyed_row(kind: Kind, k: &[u8], v: &[u8]) -> Result<Option<Vec<Val>>, String> {
    let text = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(t) => s(t),
        Err(_) => Val::Null,
    };
    Ok(Some(match kind {
        Kind::State => {
            let (service, key, name) = schema::decode_state_key(k).map_err(|e| e.to_string())?;
            vec![
                Val::U64(pk_of_key(&service, &key)),
                Val::Null,
                s(&service),
                text(&key),
                text(&name),
                Val::U64(name.len() as u64),
                text(v),
                Val::Bin(v.to_vec()),
                Val::U64(v.len() as u64),
            ]
        }
        Kind::Inbox => {
            let (service, key, seq) = schema::decode_inbox_key(k).map_err(|e| e.to_string())?;
            // State replacements wait in the inbox too; the table lists invocations only.
            let id = match ratchet::fsm::storage::decode_inbox_value(v) {
                Ok(ratchet::fsm::InboxEntry::State(_)) => return Ok(None),
                Ok(ratchet::fsm::InboxEntry::Invocation(id, _)) => Some(id),
                Err(_) => None,
            };
            vec![
                Val::U64(pk_of_key(&service, &key)),
                s(&service),
                text(&key),
                id.map(|i| s(i.to_string())).unwrap_or(Val::Null),
                Val::U64(seq),
                Val::Null,
            ]
        }
        Kind::KeyedServiceStatus => {
            let (service, key) = schema::decode_object_lock_key(k).map_err(|e| e.to_string())?;
            let id = InvocationId::from_bytes(v).ok();
            vec![
                Val::U64(pk_of_key(&service, &key)),
                s(&service),
                text(&key),
                id.map(|i| s(i.to_string())).unwrap_or(Val::Null),
            ]
        }
        Kind::Promise => {
            use prost::Message;
            let (service, key, name) = schema::decode_promise_key(k).map_err(|e| e.to_string())?;
            let p = PromiseEntry::decode(v).map_err(|e| e.to_string())?;
            let (completed, value, failure) = match p.outcome.and_then(|o| o.result) {
                Some(outcome::Result::Value(b)) => (true, Some(b.to_vec()), None),
                Some(outcome::Result::Failure(f)) => {
                    (true, None, Some(format!("[{}] {}", f.code, f.message)))
                }
                None => (false, None, None),
            };
            vec![
                Val::U64(pk_of_key(&service, &key)),
                Val::Null,
                s(&service),
                text(&key),
                text(&name),
                Val::Bool(completed),
                value.clone().map(Val::Bin).unwrap_or(Val::Null),
                value.as_deref().map(text).unwrap_or(Val::Null),
                failure.map(s).unwrap_or(Val::Null),
            ]
        }
        _ => return Ok(None),
    }))
}

/// Restate's names of journal entries (protocol V4+ "v2" journal).
fn entry_type(ty: u16) -> String {
    ratchet::admin::ui_read::entry_type_name(ty)
}

/// Whether an entry is done: notifications always, commands once the invocation ended.
fn entry_completed(ty: u16, st: &Status) -> bool {
    ty >= 0x8000 || st.phase() == Phase::Completed
}

/// A row of `sys_invocation_status`, `sys_invocation_state` or `sys_invocation` in the order
/// of `schema`; only the `wanted` columns are computed (the others are NULL and projected
/// away), so a query that reads a few columns formats no ids, targets or timestamps it does
/// not need.
fn invocation_row(kind: Kind, cx: &InvocationCx<'_>, schema: &Schema, wanted: &[bool]) -> Vec<Val> {
    schema
        .fields()
        .iter()
        .zip(wanted)
        .map(|(f, w)| if *w { invocation_cell(kind, f.name(), cx) } else { Val::Null })
        .collect()
}

/// What the cells of one invocation's row are computed from.
struct InvocationCx<'a> {
    /// The derived status word ([`ratchet::admin::ui_read::status_word`]).
    word: &'static str,
    id: &'a InvocationId,
    st: &'a Status,
    phase: Phase,
    keyed: bool,
    in_flight: bool,
    backing_off: bool,
    service_ty: &'a dyn Fn(&str, HandlerKind) -> &'static str,
}

impl<'a> InvocationCx<'a> {
    fn new(
        id: &'a InvocationId,
        st: &'a Status,
        now_ms: u64,
        service_ty: &'a dyn Fn(&str, HandlerKind) -> &'static str,
    ) -> InvocationCx<'a> {
        let phase = st.phase();
        let backing_off = phase == Phase::Invoked && st.next_retry_at_ms > now_ms;
        InvocationCx {
            word: ratchet::admin::ui_read::status_word(st, now_ms),
            id,
            st,
            phase,
            keyed: !st.key.is_empty() || st.kind() != HandlerKind::Service,
            in_flight: phase == Phase::Invoked && !backing_off,
            backing_off,
            service_ty,
        }
    }
}

/// The cell of column `col` of an invocation table (`kind`); columns Ratchet does not track
/// are NULL.
fn invocation_cell(kind: Kind, col: &str, cx: &InvocationCx<'_>) -> Val {
    let (id, st, phase) = (cx.id, cx.st, cx.phase);
    let retry_count = u64::from(st.failures);
    match col {
        "partition_key" => Val::U64(id.partition_key),
        "id" => s(id.to_string()),
        // The status table's raw phase; `sys_invocation`'s derived one, the same word the UI
        // shows (with its two outcomes as one).
        "status" if kind == Kind::Invocation => s(match cx.word {
            "succeeded" | "failed" => "completed",
            word => word,
        }),
        "status" => s(match phase {
            Phase::Scheduled => "scheduled",
            Phase::Inboxed => "inboxed",
            Phase::Invoked | Phase::Unspecified => "invoked",
            Phase::Suspended => "suspended",
            Phase::Completed => "completed",
            Phase::Paused => "paused",
        }),
        "completion_result" => match st.outcome.as_ref().and_then(|o| o.result.as_ref()) {
            Some(outcome::Result::Value(_)) => s("success"),
            Some(outcome::Result::Failure(_)) => s("failure"),
            None => Val::Null,
        },
        "completion_failure" => match st.outcome.as_ref().and_then(|o| o.result.as_ref()) {
            Some(outcome::Result::Failure(f)) => s(format!("[{}] {}", f.code, f.message)),
            _ => Val::Null,
        },
        "target" => s(match cx.keyed {
            true => format!("{}/{}/{}", st.service, st.key, st.handler),
            false => format!("{}/{}", st.service, st.handler),
        }),
        "target_service_name" => s(&st.service),
        "target_service_key" if cx.keyed => s(&st.key),
        "target_handler_name" => s(&st.handler),
        "target_service_ty" => s((cx.service_ty)(&st.service, st.kind())),
        "idempotency_key" => opt_s(&st.idempotency_key),
        "invoked_by" => s(ratchet::admin::ui_read::invoked_by(st).0),
        "invoked_by_id" => match ratchet::admin::ui_read::invoked_by(st).1 {
            Some(caller) => s(caller.to_string()),
            None => Val::Null,
        },
        "restarted_from" => match InvocationId::from_bytes(&st.restarted_from) {
            Ok(r) => s(r.to_string()),
            Err(_) => Val::Null,
        },
        "pinned_deployment_id" | "last_attempt_deployment_id" => opt_s(&st.deployment_id),
        "pinned_service_protocol_version" if st.protocol_version > 0 => {
            Val::U32(st.protocol_version)
        }
        "journal_size" | "journal_commands_size" => Val::U32(st.journal_len),
        "created_at" => ts(st.created_ms),
        "created_using_restate_version" => s(env!("CARGO_PKG_VERSION")),
        "modified_at" => ts(st.modified_ms),
        "inboxed_at" if phase == Phase::Inboxed => ts(st.modified_ms),
        "scheduled_at" if st.execute_at_ms > 0 => ts(st.created_ms),
        "scheduled_start_at" if st.execute_at_ms > 0 => ts(st.execute_at_ms),
        "completed_at" if phase == Phase::Completed => ts(st.modified_ms),
        "completion_retention" => st.retention_ms.map(Val::Dur).unwrap_or(Val::Null),
        "journal_retention" => st.journal_retention_ms.map(Val::Dur).unwrap_or(Val::Null),
        "suspended_waiting_for_completions" if phase == Phase::Suspended => {
            Val::ListU32(st.waiting_completions.clone())
        }
        "suspended_waiting_for_signals" if phase == Phase::Suspended => {
            Val::ListU32(st.waiting_signals.clone())
        }
        "in_flight" => Val::Bool(cx.in_flight),
        // The invoker forgets a completed invocation (Restate: NULL through the join).
        "retry_count" if kind == Kind::InvocationState && phase == Phase::Completed => Val::Null,
        "retry_count" => Val::U64(retry_count),
        "next_retry_at" if cx.backing_off => ts(st.next_retry_at_ms),
        "last_failure" => opt_s(&st.last_failure),
        _ => Val::Null,
    }
}
