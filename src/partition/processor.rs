//! The partition processor: leads one partition. It opens the partition's store, fences the
//! log at a new epoch, replays the log into the store, then applies each new durable record
//! through the state machine and carries out the resulting actions: attempts (invoker),
//! notifications, ingress replies, timers (fired by appending to its own log) and outbox
//! deliveries (the [`shuffler`](super::shuffler)).
//!
//! Shape: [`Processor::run`] owns the store, the log reader, the timer window and the
//! shuffler task; it talks to the invoker through `invoker::Handle` and to ingress waiters
//! through the `Router`.
//!
//! Invariants:
//! - Records are applied in LSN order, each exactly once per store state: `lsn_applied` is
//!   committed in the same transaction as the record's effects.
//! - The store belongs to exactly one log: its recorded log identity must match, and its
//!   `lsn_applied` may not be ahead of the log's durable tail (or behind its trim point); the
//!   processor refuses to start otherwise.
//! - Every leadership (start, and every in-process recovery) seals the log at a new epoch and
//!   announces it before replaying: writers of the previous leadership (attempts, timer
//!   firings, truncations in flight) are fenced, and `apply` ignores their records.
//! - Store commits are non-durable per batch; a durable checkpoint is written every
//!   `checkpoint_records` records or `checkpoint_interval`. Checkpoints never wait for
//!   deliveries (those live in the outbox). The log is trimmed up to the durable checkpoint.
//! - While replaying, only ingress replies leave the processor: attempts, timers and
//!   deliveries are re-derived from the store once replay is done.
//! - Fairness: each turn applies at most `batch_records_max` records and fires at most
//!   `timers_per_turn_max` timers, so timers fire on time under sustained load.
//! - A store failure on a full disk is not fatal: the processor drops the store, reports
//!   `Recovering`, and starts over (reopen, seal, replay) with back-off until it succeeds.
//!   Any other store or log failure ends `run` with an error, and the process stops.
//! - Timer firings are handed to a task that retries the append until it is durable (or the
//!   leadership ends); a firing is never dropped while the leader lives.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use prost::Message;
use segment_format::Lsn;
use tokio::sync::{mpsc, watch};

use super::timers::{Timer, Window};
use super::{log_of, shuffler, AppendError, Handle, Liveness, Router};
use crate::clock::SharedClock;
use crate::defect::{self, Defect};
use crate::fsm::{record, Action, AnnounceLeader, ApplyError, Fsm, Record, TimerFired};
use crate::invoker;
use crate::log::{DynReader, LogError, SharedLog};
use crate::store::{PartitionStore, ReadView, StoreError, WriteView};

/// Opens (or creates) the partition's store; called again on every recovery.
pub type StoreOpener = Box<dyn Fn() -> Result<PartitionStore, StoreError> + Send + Sync>;

#[derive(Clone, Debug)]
pub struct Options {
    pub id: u16,
    /// Durable checkpoints come at least this often. Also bounds the store file: pages that
    /// non-durable commits free can be reused only after the next durable commit (measured on
    /// the benchmark: 500 ms gave 316 bytes of store file per finished invocation, 100 ms 250).
    pub checkpoint_records: u64,
    pub checkpoint_interval: Duration,
    /// Records applied in one store transaction (one turn) at most.
    pub batch_records_max: usize,
    /// Timers held in memory; the rest wait in the store.
    pub timers_in_memory_max: usize,
    /// Timers fired per turn at most.
    pub timers_per_turn_max: usize,
    /// Batches of timer firings waiting for their append at most.
    pub firings_queued_max: usize,
    pub recovery_delay_min: Duration,
    pub recovery_delay_max: Duration,
    /// Trim the log up to each durable checkpoint (off in the simulator, which rebuilds every
    /// store from the whole log).
    pub trim_log: bool,
    pub shuffler: shuffler::Options,
    pub retention: super::retention::Options,
}

impl Options {
    pub fn new(id: u16) -> Options {
        Options {
            id,
            checkpoint_records: 500,
            checkpoint_interval: Duration::from_millis(100),
            batch_records_max: 256,
            timers_in_memory_max: 16_384,
            timers_per_turn_max: 512,
            firings_queued_max: 64,
            recovery_delay_min: Duration::from_millis(50),
            recovery_delay_max: Duration::from_secs(5),
            trim_log: true,
            shuffler: shuffler::Options::default(),
            retention: super::retention::Options::default(),
        }
    }
}

/// Why a processor stopped for good. Each is fatal for the process.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("partition {partition}: log: {source}")]
    Log { partition: u16, source: LogError },
    #[error("partition {partition}: store: {source}")]
    Store { partition: u16, source: StoreError },
    #[error("partition {partition}: appending to the log: {source}")]
    Append { partition: u16, source: AppendError },
    #[error(
        "partition {partition}: the store belongs to log {found_store:016x}/{found_log}, not to \
         this node's log {expected_store:016x}/{expected_log}; it was copied from another data \
         directory. Put back the store of this data directory"
    )]
    ForeignStore {
        partition: u16,
        found_store: u64,
        found_log: u32,
        expected_store: u64,
        expected_log: u32,
    },
    #[error(
        "partition {partition}: the store has applied the log up to LSN {applied}, but the log \
         ends at LSN {tail}: log records the store depends on are missing (the log was \
         replaced or lost data). Restore the data directory from a backup"
    )]
    StoreAheadOfLog { partition: u16, applied: Lsn, tail: Lsn },
    #[error(
        "partition {partition}: the store has applied the log up to LSN {applied}, but the log \
         is trimmed up to LSN {trim}: the records in between are gone. {advice}"
    )]
    StoreBehindLog { partition: u16, applied: Lsn, trim: Lsn, advice: &'static str },
    #[error("partition {partition}: the shuffler failed: {source}")]
    Shuffler { partition: u16, source: shuffler::ShufflerError },
    #[error("partition {partition}: {source}")]
    Stopped { partition: u16, source: Box<dyn std::error::Error + Send + Sync> },
}

/// How a leadership ended.
enum Exit {
    /// Shutdown was requested; a durable checkpoint was written.
    Shutdown,
    /// The store failed on a full disk: start over.
    Recover(String),
}

/// One partition's processor. See the module documentation.
pub struct Processor {
    opts: Options,
    log: SharedLog,
    open_store: StoreOpener,
    fsm: Fsm,
    handle: Handle,
    router: Router,
    invoker: invoker::Handle,
    clock: SharedClock,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("id", &self.opts.id).finish()
    }
}

/// State of one leadership.
struct Leader {
    store: Arc<PartitionStore>,
    epoch: u64,
    reader: Box<dyn DynReader>,
    lsn_applied: Lsn,
    lsn_durable: Lsn,
    records_since_checkpoint: u64,
    last_checkpoint: Instant,
    timers: Window,
    /// Only under [`Defect::TimersFromReplay`]: timers armed by replayed records.
    replayed_timers: Vec<Timer>,
    firings: mpsc::Sender<Vec<Timer>>,
    outbox_tx: watch::Sender<u64>,
    stop_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Errors of the leadership's tasks (shuffler, timer firing), reported as they happen.
    task_errors: mpsc::Receiver<ProcessorError>,
}

impl Processor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        opts: Options,
        log: SharedLog,
        open_store: StoreOpener,
        fsm: Fsm,
        handle: Handle,
        router: Router,
        invoker: invoker::Handle,
        clock: SharedClock,
    ) -> Processor {
        Processor { opts, log, open_store, fsm, handle, router, invoker, clock }
    }

    fn id(&self) -> u16 {
        self.opts.id
    }

    /// Runs until `shutdown` turns true (then checkpoints durably) or a fatal error.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProcessorError> {
        let mut delay = self.opts.recovery_delay_min;
        let r = loop {
            if *shutdown.borrow() {
                break Ok(());
            }
            match self.lead(&mut shutdown).await {
                Ok(Exit::Shutdown) => break Ok(()),
                Ok(Exit::Recover(reason)) => {
                    tracing::warn!(partition = self.id(), "recovering: {reason}");
                    self.handle.set_liveness(Liveness::Recovering { reason });
                    self.invoker.pause();
                    tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|s| *s) => break Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.opts.recovery_delay_max);
                }
                Err(e) => break Err(e),
            }
        };
        let reason = match &r {
            Ok(()) => "shut down".to_string(),
            Err(e) => e.to_string(),
        };
        self.invoker.pause();
        self.handle.set_liveness(Liveness::Stopped { reason });
        r
    }

    fn store_err(&self, source: StoreError) -> ProcessorError {
        ProcessorError::Store { partition: self.id(), source }
    }

    /// Maps a store failure: a full disk is recovered from, anything else is fatal.
    fn store_exit(&self, e: StoreError) -> Result<Exit, ProcessorError> {
        if e.is_no_space() && !defect::active(Defect::StoreFullStopsPartition) {
            Ok(Exit::Recover(format!("the partition store hit a full disk: {e}")))
        } else if e.is_already_open() {
            Ok(Exit::Recover(format!("the previous leadership still holds the store: {e}")))
        } else {
            Err(self.store_err(e))
        }
    }

    /// Appends as the leader, retrying a full disk; `Ok(None)` if shut down first.
    async fn append_leader(
        &self,
        epoch: u64,
        records: Vec<Record>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Lsn>, ProcessorError> {
        let mut delay = self.opts.recovery_delay_min;
        loop {
            match self.handle.append_as(epoch, records.clone()).await {
                Ok(lsn) => return Ok(Some(lsn)),
                Err(AppendError::NoSpace) => {}
                Err(source) => return Err(ProcessorError::Append { partition: self.id(), source }),
            }
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return Ok(None),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.opts.recovery_delay_max);
        }
    }

    /// One leadership: open, check, seal, replay, lead until shutdown or a store failure.
    async fn lead(&self, shutdown: &mut watch::Receiver<bool>) -> Result<Exit, ProcessorError> {
        let id = self.id();
        let log_id = log_of(id);
        let store = match tokio_blocking(|| (self.open_store)()) {
            Ok(s) => Arc::new(s),
            Err(e) => return self.store_exit(e),
        };
        // The store must belong to this log and be consistent with it.
        let (applied, identity) = {
            let r = store.begin_read().map_err(|e| self.store_err(e))?;
            (
                r.lsn_applied().map_err(|e| self.store_err(e))?,
                r.log_identity().map_err(|e| self.store_err(e))?,
            )
        };
        let expected = (self.log.identity(), log_id.0);
        match identity {
            // A store that applied nothing may be stamped again: a log whose first write
            // never became durable starts over with a new identity after a crash, and nothing
            // of the old one can be in the store (records are applied only once durable).
            Some(found) if found != expected && applied != Lsn::INVALID => {
                return Err(ProcessorError::ForeignStore {
                    partition: id,
                    found_store: found.0,
                    found_log: found.1,
                    expected_store: expected.0,
                    expected_log: expected.1,
                })
            }
            Some(found) if found == expected => {}
            _ => {
                let stamped = store.begin_write().and_then(|mut txn| {
                    txn.set_log_identity(expected.0, expected.1)?;
                    tokio_blocking(|| txn.commit(true))
                });
                if let Err(e) = stamped {
                    return self.store_exit(e);
                }
            }
        }
        let tail = self.log.tail(log_id);
        if applied > tail.lsn_durable {
            return Err(ProcessorError::StoreAheadOfLog {
                partition: id,
                applied,
                tail: tail.lsn_durable,
            });
        }
        if applied < tail.lsn_trim {
            return Err(ProcessorError::StoreBehindLog {
                partition: id,
                applied,
                trim: tail.lsn_trim,
                advice: "Restore the data directory from a backup; the store cannot be rebuilt \
                         from a trimmed log",
            });
        }

        // Fence every writer of the previous leadership, then announce the new one.
        let epoch = tail.epoch + 1;
        let mut delay = self.opts.recovery_delay_min;
        loop {
            match self.log.seal(log_id, epoch).await {
                Ok(_) => break,
                Err(LogError::NoSpace { .. }) => {}
                Err(source) => return Err(ProcessorError::Log { partition: id, source }),
            }
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => return Ok(Exit::Shutdown),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.opts.recovery_delay_max);
        }
        let announce = Record {
            header: None,
            kind: Some(record::Kind::AnnounceLeader(AnnounceLeader { epoch })),
        };
        if self.append_leader(epoch, vec![announce], shutdown).await?.is_none() {
            return Ok(Exit::Shutdown);
        }

        let (firings_tx, firings_rx) = mpsc::channel(self.opts.firings_queued_max.max(1));
        let (outbox_tx, outbox_rx) = watch::channel(0u64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (errors_tx, task_errors) = mpsc::channel(4);
        let mut leader = Leader {
            store: store.clone(),
            epoch,
            reader: self.log.reader(log_id, applied.next()),
            lsn_applied: applied,
            lsn_durable: applied,
            records_since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            timers: Window::new(self.opts.timers_in_memory_max),
            replayed_timers: Vec::new(),
            firings: firings_tx,
            outbox_tx,
            stop_tx,
            tasks: Vec::new(),
            task_errors,
        };

        // Replay everything durable now (the announcement included), effects suppressed.
        let replay_until = self.log.tail(log_id).lsn_durable;
        while leader.lsn_applied < replay_until {
            let mut batch = Vec::new();
            while batch.len() < self.opts.batch_records_max
                && leader.lsn_applied.0 + (batch.len() as u64) < replay_until.0
            {
                match leader.reader.try_next() {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) => break,
                    Err(source) => return Err(ProcessorError::Log { partition: id, source }),
                }
            }
            if batch.is_empty() {
                break;
            }
            if let Err(e) = self.apply_batch(&mut leader, batch, true) {
                return self.store_exit(e);
            }
        }

        // Take over: timers from the store, attempts from the Runnable index, the outbox.
        {
            let r = store.begin_read().map_err(|e| self.store_err(e))?;
            leader.timers.load(&r).map_err(|e| self.store_err(e))?;
            let replayed = std::mem::take(&mut leader.replayed_timers);
            leader.timers.put_back(replayed);
        }
        self.invoker.lead(epoch, store.clone());
        leader.tasks.push(supervised(
            id,
            errors_tx.clone(),
            shuffle(
                self.opts.shuffler.clone(),
                self.handle.clone(),
                epoch,
                store.clone(),
                self.router.clone(),
                outbox_rx,
                stop_rx.clone(),
            ),
        ));
        leader.tasks.push(supervised(
            id,
            errors_tx.clone(),
            expire(
                self.opts.retention.clone(),
                self.handle.clone(),
                epoch,
                store.clone(),
                self.clock.clone(),
                stop_rx.clone(),
            ),
        ));
        leader.tasks.push(supervised(
            id,
            errors_tx,
            fire_timers(
                self.handle.clone(),
                epoch,
                firings_rx,
                stop_rx,
                self.opts.recovery_delay_min,
                self.opts.recovery_delay_max,
            ),
        ));
        self.handle.set_store(Some(store.clone()));
        self.handle.set_liveness(Liveness::Running { epoch });
        tracing::debug!(partition = id, %epoch, lsn = %leader.lsn_applied, "partition leader ready");

        let exit = self.lead_loop(&mut leader, shutdown).await;
        self.handle.set_store(None);
        let _ = leader.stop_tx.send(true);
        for t in leader.tasks.drain(..) {
            let _ = t.await;
        }
        let exit = exit?;
        if let Ok(e) = leader.task_errors.try_recv() {
            // The store is being reopened after a full disk: its readers (the shuffler) fail
            // with it, which is a consequence, not a cause.
            if let Exit::Recover(reason) = &exit {
                tracing::debug!(partition = id, "{e} (while recovering: {reason})");
            } else {
                return Err(e);
            }
        }
        Ok(exit)
    }

    async fn lead_loop(
        &self,
        leader: &mut Leader,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Exit, ProcessorError> {
        let id = self.id();
        let mut pending: Option<segment_format::Record> = None;
        loop {
            if *shutdown.borrow() {
                return match self.checkpoint(leader, true).await {
                    Ok(()) => Ok(Exit::Shutdown),
                    Err(e) => self.store_exit(e),
                };
            }
            if let Ok(e) = leader.task_errors.try_recv() {
                return Err(e);
            }
            // 1. Apply what is durable, at most one batch per turn.
            let mut batch = Vec::new();
            if let Some(r) = pending.take() {
                batch.push(r);
            }
            while batch.len() < self.opts.batch_records_max {
                match leader.reader.try_next() {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) => break,
                    Err(source) => return Err(ProcessorError::Log { partition: id, source }),
                }
            }
            let worked = !batch.is_empty();
            if worked {
                if let Err(e) = self.apply_batch(leader, batch, false) {
                    return self.store_exit(e);
                }
            }
            // 2. Fire due timers.
            let fired = self.fire_due(leader);
            // 3. Keep the timer window filled.
            if leader.timers.wants_refill() {
                let r = leader.store.begin_read().map_err(|e| self.store_err(e))?;
                leader.timers.refill(&r).map_err(|e| self.store_err(e))?;
            }
            // 4. Checkpoint when due.
            if let Err(e) = self.checkpoint(leader, false).await {
                return self.store_exit(e);
            }
            if worked || fired {
                tokio::task::yield_now().await;
                continue;
            }
            // Idle: wait for a record, a timer, or the checkpoint interval.
            let next_wake = leader.timers.next_wake_ms();
            let now = self.clock.now_ms();
            let timer_in = next_wake.map(|w| Duration::from_millis(w.saturating_sub(now)));
            let checkpoint_in = (leader.lsn_applied > leader.lsn_durable).then(|| {
                self.opts.checkpoint_interval.saturating_sub(leader.last_checkpoint.elapsed())
            });
            let sleep_for = match (timer_in, checkpoint_in) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match sleep_for {
                    Some(d) => tokio::time::sleep(d.max(Duration::from_millis(1))).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                r = leader.reader.next() => match r {
                    Ok(r) => pending = Some(r),
                    Err(source) => return Err(ProcessorError::Log { partition: id, source }),
                },
                _ = sleep => {}
                e = leader.task_errors.recv() => if let Some(e) = e { return Err(e) },
            }
        }
    }

    /// Applies a batch in one store transaction, then carries out its actions.
    fn apply_batch(
        &self,
        leader: &mut Leader,
        batch: Vec<segment_format::Record>,
        replaying: bool,
    ) -> Result<(), StoreError> {
        let mut txn = leader.store.begin_write()?;
        let mut out = crate::fsm::Batch::new();
        let mut last = leader.lsn_applied;
        for rec in &batch {
            debug_assert_eq!(rec.lsn, last.next(), "records are applied in LSN order");
            match Record::decode(rec.body.as_slice()) {
                Ok(r) => {
                    match self.fsm.apply(&mut txn, &r, rec.lsn.0, rec.timestamp_ms, &mut out) {
                        Ok(_) => {}
                        Err(ApplyError::Invalid { reason }) => {
                            tracing::warn!(partition = self.id(), lsn = %rec.lsn, "skipping a record that cannot be applied: {reason}");
                        }
                        Err(ApplyError::Store(e)) => return Err(e),
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = self.id(), lsn = %rec.lsn, "skipping an undecodable record: {e}")
                }
            }
            last = rec.lsn;
        }
        match self.fsm.finish(&mut txn, &mut out) {
            Ok(()) => {}
            Err(ApplyError::Store(e)) => return Err(e),
            Err(ApplyError::Invalid { reason }) => {
                tracing::warn!(partition = self.id(), "finishing a batch: {reason}")
            }
        }
        txn.set_lsn_applied(last)?;
        txn.commit(false)?;
        leader.records_since_checkpoint += last.0 - leader.lsn_applied.0;
        leader.lsn_applied = last;
        self.handle.set_applied(last.0);
        let mut outbox_max = None;
        for a in std::mem::take(&mut out.actions) {
            match a {
                Action::IngressReply { request_id, id, outcome } => {
                    self.router.waiters.complete(request_id, id, outcome)
                }
                Action::Timer { wake_ms, id, completion_id } => {
                    if !replaying {
                        leader.timers.add((wake_ms, id, completion_id));
                    } else if defect::active(Defect::TimersFromReplay) {
                        leader.replayed_timers.push((wake_ms, id, completion_id));
                    }
                }
                _ if replaying => {}
                Action::Invoke { id, life, attempt, not_before_ms } => {
                    self.invoker.invoke(leader.epoch, id, (life, attempt), not_before_ms)
                }
                Action::Notify { id, life, attempt, index, ty, payload } => {
                    self.invoker.notify(leader.epoch, id, (life, attempt), index, ty, payload)
                }
                Action::Abort { id } => self.invoker.abort(leader.epoch, id),
                Action::Outbox { seq } => outbox_max = Some(seq),
                Action::Completed { id, service, handler, created_ms, completed_ms, failure } => {
                    if crate::otel::enabled() {
                        let at =
                            |ms: u64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                        crate::otel::emit(crate::otel::Span {
                            trace_id: crate::otel::trace_id(&id),
                            span_id: crate::otel::invocation_span_id(&id),
                            parent: None,
                            name: format!("invocation {service}/{handler}"),
                            kind: crate::otel::kind::INTERNAL,
                            start: at(created_ms),
                            end: at(completed_ms),
                            attributes: vec![
                                ("restate.invocation.id", crate::otel::Value::Str(id.to_string())),
                                (
                                    "restate.invocation.target",
                                    crate::otel::Value::Str(format!("{service}/{handler}")),
                                ),
                                (
                                    "restate.partition.id",
                                    crate::otel::Value::Int(i64::from(self.id())),
                                ),
                            ],
                            error: failure,
                        });
                    }
                }
            }
        }
        if let Some(seq) = outbox_max {
            leader.outbox_tx.send_replace(seq);
        }
        Ok(())
    }

    /// Hands due timers to the firing task; returns whether any were due.
    fn fire_due(&self, leader: &mut Leader) -> bool {
        let due = leader.timers.take_due(self.clock.now_ms(), self.opts.timers_per_turn_max);
        if due.is_empty() {
            return false;
        }
        match leader.firings.try_send(due) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(due) | mpsc::error::TrySendError::Closed(due)) => {
                // The firing task is behind: keep them, try again next turn.
                leader.timers.put_back(due);
                false
            }
        }
    }

    async fn checkpoint(&self, leader: &mut Leader, force: bool) -> Result<(), StoreError> {
        let due = leader.records_since_checkpoint >= self.opts.checkpoint_records
            || leader.last_checkpoint.elapsed() >= self.opts.checkpoint_interval;
        if leader.lsn_applied == leader.lsn_durable || !(due || force) {
            return Ok(());
        }
        let txn = leader.store.begin_write()?;
        tokio_blocking(|| txn.commit(true))?;
        leader.lsn_durable = leader.lsn_applied;
        leader.records_since_checkpoint = 0;
        leader.last_checkpoint = Instant::now();
        // Trimming is housekeeping: a failure only delays it to the next checkpoint (a
        // broken log is noticed by the next append or read).
        if self.opts.trim_log {
            if let Err(e) = self.log.trim(log_of(self.id()), leader.lsn_durable).await {
                tracing::debug!(partition = self.id(), "trimming the log failed: {e}");
            }
        }
        Ok(())
    }
}

/// Spawns a task of a leadership; its error, or its panic, reaches the leader at once. A
/// task that has nothing left to do parks until the leadership stops (see `wait_stopped`), so
/// ending early is only ever an error.
fn supervised(
    partition: u16,
    errors: mpsc::Sender<ProcessorError>,
    task: impl std::future::Future<Output = Result<(), ProcessorError>> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    use futures_util::FutureExt;
    tokio::spawn(async move {
        let e = match std::panic::AssertUnwindSafe(task).catch_unwind().await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(panic) => ProcessorError::Stopped {
                partition,
                source: format!("a task panicked: {}", panic_message(&panic)).into(),
            },
        };
        let _ = errors.send(e).await;
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

async fn shuffle(
    opts: shuffler::Options,
    me: Handle,
    epoch: u64,
    store: Arc<PartitionStore>,
    router: Router,
    wake: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) -> Result<(), ProcessorError> {
    let partition = me.id;
    match shuffler::run(opts, me, epoch, store, router, wake, stop.clone()).await {
        Ok(()) => wait_stopped(stop).await,
        Err(source) => Err(ProcessorError::Shuffler { partition, source }),
    }
}

async fn expire(
    opts: super::retention::Options,
    me: Handle,
    epoch: u64,
    store: Arc<PartitionStore>,
    clock: SharedClock,
    stop: watch::Receiver<bool>,
) -> Result<(), ProcessorError> {
    let partition = me.id;
    match super::retention::run(opts, me, epoch, store, clock, stop.clone()).await {
        Ok(()) => wait_stopped(stop).await,
        Err(e) => Err(ProcessorError::Stopped {
            partition,
            source: format!("the retention pass failed: {e}").into(),
        }),
    }
}

/// Parks a task that finished its work until its leadership stops, so an early end is only
/// ever an error.
async fn wait_stopped(mut stop: watch::Receiver<bool>) -> Result<(), ProcessorError> {
    let _ = stop.wait_for(|s| *s).await;
    Ok(())
}

/// Appends timer firings until durable, retrying a full disk; ends quietly when fenced or
/// stopped.
async fn fire_timers(
    me: Handle,
    epoch: u64,
    mut rx: mpsc::Receiver<Vec<Timer>>,
    mut stop: watch::Receiver<bool>,
    delay_min: Duration,
    delay_max: Duration,
) -> Result<(), ProcessorError> {
    loop {
        let due = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return Ok(()),
            d = rx.recv() => d,
        };
        let Some(due) = due else { return wait_stopped(stop).await };
        let records: Vec<Record> = due
            .into_iter()
            .map(|(wake_ms, id, completion_id)| Record {
                header: None,
                kind: Some(record::Kind::TimerFired(TimerFired {
                    invocation_id: Bytes::copy_from_slice(&id.to_bytes()),
                    completion_id,
                    wake_ms,
                })),
            })
            .collect();
        let mut delay = delay_min;
        loop {
            match me.append_as(epoch, records.clone()).await {
                Ok(_) => break,
                Err(AppendError::Fenced { .. }) => return wait_stopped(stop).await,
                Err(AppendError::NoSpace) if !defect::active(Defect::TimerFiringDropped) => {}
                Err(AppendError::NoSpace) => break,
                Err(source) => return Err(ProcessorError::Append { partition: me.id, source }),
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(delay_max);
        }
    }
}

/// Runs blocking store work (a durable commit's fsync) without stalling other tasks of a
/// multi-threaded runtime; inline on a current-thread runtime (the simulator).
pub fn tokio_blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
