//! The partition processor: tails one partition's log, applies each durable record to the
//! store through the state machine, and carries out the resulting actions.
//!
//! Shape: `Processor::run` owns the store, the timer queue and the log reader; it talks to
//! the invoker through `invoker::Handle`, to other partitions through `Router`.
//!
//! Invariants:
//! - Records are applied in LSN order, each exactly once per store state: `lsn_applied` is
//!   committed in the same transaction as the record's effects.
//! - Store commits are non-durable per batch; a durable checkpoint is written every
//!   `checkpoint_records` records or `checkpoint_interval`, and only when no delivery to
//!   another log is still in flight (so a crash replays the records whose deliveries might
//!   have been lost). The WAL is trimmed up to the durable checkpoint.
//! - While replaying records that were in the log before start-up, actions with outside
//!   effects (attempts, notifications, ingress replies) are suppressed: their state is
//!   re-derived from the store once replay is done. Deliveries are re-sent (they are
//!   idempotent at the receiver).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use segment_format::Lsn;
use tokio::sync::watch;

use super::{log_of, Router};
use crate::fsm::{record, Action, Fsm, Phase, Record, Status, TimerFired};
use crate::invoker;
use crate::protocol::ids::InvocationId;
use crate::store::{schema, PartitionStore, ReadView, Table, WriteView};
use crate::timefmt::now_ms;
use crate::wal::{Wal, WalError};

/// Records applied in one store transaction at most.
const BATCH_RECORDS_MAX: usize = 256;

#[derive(Clone, Debug)]
pub struct Options {
    pub id: u16,
    pub checkpoint_records: u64,
    pub checkpoint_interval: Duration,
}

impl Options {
    pub fn new(id: u16) -> Options {
        Options { id, checkpoint_records: 10_000, checkpoint_interval: Duration::from_secs(2) }
    }
}

/// Why a processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("partition {partition}: log: {source}")]
    Log { partition: u16, source: WalError },
    #[error("partition {partition}: store: {message}")]
    Store { partition: u16, message: String },
}

pub struct Processor {
    opts: Options,
    wal: Arc<Wal>,
    store: PartitionStore,
    fsm: Fsm,
    invoker: invoker::Handle,
    router: Router,
    timers: BTreeSet<(u64, [u8; 24], u32)>,
    deliveries_pending: Arc<AtomicUsize>,
    lsn_applied: Lsn,
    lsn_durable: Lsn,
    last_checkpoint: Instant,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("id", &self.opts.id).finish()
    }
}

impl Processor {
    pub fn new(
        opts: Options,
        wal: Arc<Wal>,
        store: PartitionStore,
        fsm: Fsm,
        invoker: invoker::Handle,
        router: Router,
    ) -> Result<Processor, ProcessorError> {
        let lsn_applied = store
            .lsn_applied()
            .map_err(|e| ProcessorError::Store { partition: opts.id, message: e.to_string() })?;
        Ok(Processor {
            opts,
            wal,
            store,
            fsm,
            invoker,
            router,
            timers: BTreeSet::new(),
            deliveries_pending: Arc::new(AtomicUsize::new(0)),
            lsn_applied,
            lsn_durable: lsn_applied,
            last_checkpoint: Instant::now(),
        })
    }

    fn store_err(&self, e: impl std::fmt::Display) -> ProcessorError {
        ProcessorError::Store { partition: self.opts.id, message: e.to_string() }
    }

    /// Runs until `shutdown` turns true (then checkpoints durably) or a fatal error.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProcessorError> {
        let log = log_of(self.opts.id);
        let replay_until = self.wal.tail(log).lsn_durable;
        let mut reader = self.wal.reader(log, self.lsn_applied.next());
        // Replay what was logged before start-up, with outside effects suppressed.
        while self.lsn_applied < replay_until {
            let mut batch = Vec::new();
            while batch.len() < BATCH_RECORDS_MAX
                && self.lsn_applied.0 + (batch.len() as u64) < replay_until.0
            {
                match reader
                    .try_next()
                    .map_err(|e| ProcessorError::Log { partition: self.opts.id, source: e })?
                {
                    Some(r) => batch.push(r),
                    None => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            self.apply_batch(batch, true)?;
        }
        self.resume_from_store()?;
        tracing::debug!(partition = self.opts.id, lsn = %self.lsn_applied, "partition processor ready");

        loop {
            let next_timer = self.timers.first().map(|t| t.0);
            let timer_sleep = async {
                match next_timer {
                    Some(wake) => {
                        let now = now_ms();
                        if wake > now {
                            tokio::time::sleep(Duration::from_millis(wake - now)).await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
                rec = reader.next() => {
                    let first = rec.map_err(|e| ProcessorError::Log { partition: self.opts.id, source: e })?;
                    let mut batch = vec![first];
                    while batch.len() < BATCH_RECORDS_MAX {
                        match reader.try_next() {
                            Ok(Some(r)) => batch.push(r),
                            Ok(None) => break,
                            Err(e) => return Err(ProcessorError::Log { partition: self.opts.id, source: e }),
                        }
                    }
                    self.apply_batch(batch, false)?;
                }
                _ = timer_sleep => self.fire_due_timers(),
            }
            self.maybe_checkpoint(false).await?;
        }
        self.maybe_checkpoint(true).await?;
        Ok(())
    }

    fn apply_batch(
        &mut self,
        batch: Vec<segment_format::Record>,
        replaying: bool,
    ) -> Result<(), ProcessorError> {
        let mut txn = self.store.begin_write().map_err(|e| self.store_err(e))?;
        let mut actions = Vec::new();
        let mut last = self.lsn_applied;
        for rec in &batch {
            debug_assert_eq!(rec.lsn, last.next(), "records are applied in LSN order");
            match Record::decode(rec.body.as_slice()) {
                Ok(r) => {
                    if let Err(e) = self.fsm.apply(&mut txn, &r, rec.timestamp_ms, &mut actions) {
                        match e {
                            crate::fsm::FsmError::Invalid(msg) => {
                                tracing::warn!(partition = self.opts.id, lsn = %rec.lsn, "skipping a record that cannot be applied: {msg}");
                            }
                            crate::fsm::FsmError::Store(msg) => return Err(self.store_err(msg)),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = self.opts.id, lsn = %rec.lsn, "skipping an undecodable record: {e}")
                }
            }
            last = rec.lsn;
        }
        txn.set_lsn_applied(last).map_err(|e| self.store_err(e))?;
        txn.commit(false).map_err(|e| self.store_err(e))?;
        self.lsn_applied = last;
        for a in actions {
            self.dispatch(a, replaying);
        }
        Ok(())
    }

    fn dispatch(&mut self, action: Action, replaying: bool) {
        match action {
            Action::Deliver { partition_key, record } => {
                let target = self.router.for_key(partition_key).clone();
                let pending = self.deliveries_pending.clone();
                pending.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Err(e) = target.append(&[record]).await {
                        tracing::error!(partition = target.id, "cannot deliver a record: {e}");
                    }
                    pending.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Action::Timer { wake_ms, id, completion_id } => {
                self.timers.insert((wake_ms, id.to_bytes(), completion_id));
            }
            _ if replaying => {}
            Action::Invoke(attempt) => self.invoker.invoke(*attempt),
            Action::Notify { id, attempt, ty, payload } => {
                self.invoker.notify(id, attempt, ty, payload)
            }
            Action::Abort { id } => self.invoker.abort(id),
            Action::IngressReply { request_id, id, outcome } => {
                self.router.waiters.complete(request_id, id, outcome)
            }
        }
    }

    /// After replay: start attempts for invoked invocations and arm every stored timer.
    fn resume_from_store(&mut self) -> Result<(), ProcessorError> {
        // A write transaction that is never committed: the state machine's store interface
        // is defined on write views, and nothing else writes while this runs.
        let read = self.store.begin_write().map_err(|e| self.store_err(e))?;
        for (k, _) in
            read.scan_prefix(Table::Timers, &[], usize::MAX).map_err(|e| self.store_err(e))?
        {
            let (wake, id, completion) =
                schema::decode_timer_key(&k).map_err(|e| self.store_err(e))?;
            self.timers.insert((wake, id, completion));
        }
        let statuses = read
            .scan_prefix(Table::InvocationStatus, &[], usize::MAX)
            .map_err(|e| self.store_err(e))?;
        let mut attempts = Vec::new();
        for (k, v) in statuses {
            let st = Status::decode(v.as_slice()).map_err(|e| self.store_err(e))?;
            if st.phase() != Phase::Invoked {
                continue;
            }
            let id = InvocationId::from_bytes(&k).map_err(|e| self.store_err(e))?;
            let action =
                self.fsm.invoke_action(&read, &id, &st, 0).map_err(|e| self.store_err(e))?;
            attempts.push(action);
        }
        drop(read);
        for a in attempts {
            self.dispatch(a, false);
        }
        Ok(())
    }

    fn fire_due_timers(&mut self) {
        let now = now_ms();
        let mut due = Vec::new();
        while let Some(&t) = self.timers.first() {
            if t.0 > now {
                break;
            }
            self.timers.pop_first();
            due.push(t);
        }
        if due.is_empty() {
            return;
        }
        let records: Vec<Record> = due
            .into_iter()
            .map(|(wake_ms, id, completion_id)| Record {
                kind: Some(record::Kind::TimerFired(TimerFired {
                    invocation_id: Bytes::copy_from_slice(&id),
                    completion_id,
                    wake_ms,
                })),
            })
            .collect();
        let me = self.router.partitions[usize::from(self.opts.id)].clone();
        tokio::spawn(async move {
            if let Err(e) = me.append(&records).await {
                tracing::error!(partition = me.id, "cannot log fired timers: {e}");
            }
        });
    }

    async fn maybe_checkpoint(&mut self, force: bool) -> Result<(), ProcessorError> {
        let due = self.lsn_applied.0 - self.lsn_durable.0 >= self.opts.checkpoint_records
            || self.last_checkpoint.elapsed() >= self.opts.checkpoint_interval;
        if self.lsn_applied == self.lsn_durable || !(due || force) {
            return Ok(());
        }
        if self.deliveries_pending.load(Ordering::SeqCst) > 0 {
            if !force {
                return Ok(());
            }
            while self.deliveries_pending.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let txn = self.store.begin_write().map_err(|e| self.store_err(e))?;
        tokio::task::block_in_place(|| txn.commit(true)).map_err(|e| self.store_err(e))?;
        self.lsn_durable = self.lsn_applied;
        self.last_checkpoint = Instant::now();
        self.wal
            .trim(log_of(self.opts.id), self.lsn_durable)
            .await
            .map_err(|e| ProcessorError::Log { partition: self.opts.id, source: e })?;
        Ok(())
    }
}
