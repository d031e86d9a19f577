//! The invoker: runs attempts of invocations against SDK deployments over the service
//! protocol, and reports what the SDK did as effects appended to the partition's log.
//!
//! Shape: one `Invoker` per partition owns the running attempts (one task each, at most
//! `inflight_max`), a bounded queue of attempts ready to start and a bounded set of attempts
//! waiting for their retry time. The processor talks to it through the cheap [`Handle`]:
//! hints that an attempt is due, notifications, aborts, and the leadership (epoch and store)
//! it works for. An attempt is one sans-IO [`machine::Machine`] pumped by
//! [`driver::run_attempt`] over a [`driver::Transport`] (HTTP/2 in the server, an in-process
//! SDK in the simulator).
//!
//! Invariants:
//! - The invoker never writes the store; it reads an attempt's journal and state from the
//!   leader's store when it starts the attempt, and everything it learns re-enters through
//!   the log, appended with the leader's epoch.
//! - Memory is bounded: at most `inflight_max` attempts run, holding at most
//!   `inputs_bytes_max` of journals and eager state together, at most `queue_max` wait in
//!   memory; the rest stay in the store's Runnable index, which the invoker reads again
//!   (from a cursor) when its queue runs low or hints were dropped. Start-up therefore never
//!   launches every pending invocation at once.
//! - At most one attempt per invocation runs; a newer attempt aborts the older one.
//! - A hint or notification that does not fit the bounded channel is never silently lost:
//!   a dropped hint triggers a refill from the store; a dropped notification restarts the
//!   attempt (so it replays the journal, which has it).

mod body;
pub mod driver;
pub mod http;
pub mod machine;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::fsm::{effect, load_attempt, Failed, FsmRead, RetryPolicy};
use crate::partition::{self, AppendError};
use crate::protocol::ids::InvocationId;
use crate::schema::Registry;
use crate::store::PartitionStore;

pub use driver::{AttemptEnd, Connection, SendError, Target, Transport, TransportError};
pub use machine::SuspendPolicy;

/// Tuning and limits of the invoker.
#[derive(Clone, Debug)]
pub struct Options {
    pub inactivity_timeout: Duration,
    pub abort_timeout: Duration,
    pub protocol_v7: bool,
    /// Largest message an SDK may send. Bytes.
    pub message_bytes_max: u32,
    /// Journal entries an invocation may reach (at most the state machine's limit).
    pub journal_entries_max: u32,
    /// Attempts running at once (`worker.invoker.in-flight-invocations-limit`).
    pub inflight_max: usize,
    /// Attempts waiting in memory to start, and waiting for their retry time, each.
    pub queue_max: usize,
    /// Eager state sent with a start message; past it the state is partial. Bytes.
    pub eager_state_bytes_max: usize,
    /// Journals and eager state held by the running attempts together. An attempt that does
    /// not fit waits until one ends (one attempt always runs, whatever its size: a journal
    /// is bounded by the journal limits). Bytes.
    pub inputs_bytes_max: usize,
    /// Notifications queued for one running attempt.
    pub notifications_queued_max: usize,
    /// Commands queued from the processor.
    pub commands_queued_max: usize,
    /// How long an attempt whose effects hit a full disk waits before it runs again.
    pub retry_later_delay: Duration,
    pub retry: RetryPolicy,
    pub suspend: SuspendPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            inactivity_timeout: Duration::from_secs(60),
            abort_timeout: Duration::from_secs(600),
            protocol_v7: false,
            message_bytes_max: 32 * 1024 * 1024,
            journal_entries_max: crate::fsm::limits::JOURNAL_ENTRIES_MAX,
            inflight_max: 10_000,
            queue_max: 10_000,
            eager_state_bytes_max: 1024 * 1024,
            inputs_bytes_max: 64 * 1024 * 1024,
            notifications_queued_max: 256,
            commands_queued_max: 4096,
            retry_later_delay: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            suspend: SuspendPolicy::default(),
        }
    }
}

/// Which attempt: the invocation's life (see `fsm::Status::life`), then its attempt number.
/// A new life of an id has a higher life (an LSN), so its attempts order after the old
/// life's, whatever their numbers (they start again at 1).
pub type AttemptKey = (u64, u32);

/// What the processor asks; `epoch` is the leadership that asks, and a command of another
/// leadership than the current one is dropped (it was queued before a leadership change).
enum Cmd {
    Invoke {
        epoch: u64,
        id: InvocationId,
        attempt: AttemptKey,
        not_before_ms: u64,
    },
    Notify {
        epoch: u64,
        id: InvocationId,
        attempt: AttemptKey,
        index: u32,
        ty: u16,
        payload: Bytes,
    },
    Abort {
        epoch: u64,
        id: InvocationId,
    },
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invoker command")
    }
}

/// Who the invoker works for: the leader's epoch and store, or nobody (paused).
type Leadership = Option<(u64, Arc<PartitionStore>)>;

/// Bounded number of invocations remembered as having lost a notification; past it the
/// invoker restarts every running attempt.
const LOST_MAX: usize = 4096;

#[derive(Debug, Default)]
struct Overflow {
    refill: AtomicBool,
    lost_all: AtomicBool,
    lost: Mutex<BTreeSet<InvocationId>>,
    wake: Notify,
}

/// Sends work to a partition's invoker. Cheap to clone; never blocks.
#[derive(Clone, Debug)]
pub struct Handle {
    tx: mpsc::Sender<Cmd>,
    overflow: Arc<Overflow>,
    leadership: Arc<watch::Sender<Leadership>>,
}

impl Handle {
    /// An attempt is due (a hint: the store is the truth).
    pub fn invoke(&self, epoch: u64, id: InvocationId, attempt: AttemptKey, not_before_ms: u64) {
        if self.tx.try_send(Cmd::Invoke { epoch, id, attempt, not_before_ms }).is_err() {
            self.overflow.refill.store(true, Ordering::SeqCst);
            self.overflow.wake.notify_one();
        }
    }
    pub fn notify(
        &self,
        epoch: u64,
        id: InvocationId,
        attempt: AttemptKey,
        index: u32,
        ty: u16,
        payload: Bytes,
    ) {
        if self.tx.try_send(Cmd::Notify { epoch, id, attempt, index, ty, payload }).is_err() {
            self.lost(id);
        }
    }
    pub fn abort(&self, epoch: u64, id: InvocationId) {
        if self.tx.try_send(Cmd::Abort { epoch, id }).is_err() {
            self.lost(id);
        }
    }
    fn lost(&self, id: InvocationId) {
        let mut lost = self.overflow.lost.lock().unwrap_or_else(|p| p.into_inner());
        if lost.len() < LOST_MAX {
            lost.insert(id);
        } else {
            self.overflow.lost_all.store(true, Ordering::SeqCst);
        }
        drop(lost);
        self.overflow.wake.notify_one();
    }
    /// Works for the leader of `epoch`, reading attempts from `store`; starts from the
    /// Runnable index.
    pub fn lead(&self, epoch: u64, store: Arc<PartitionStore>) {
        self.leadership.send_replace(Some((epoch, store)));
    }
    /// Stops every attempt and waits for the next leader.
    pub fn pause(&self) {
        self.leadership.send_replace(None);
    }
}

/// Why an invoker stopped.
#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    #[error("partition {partition} invoker: appending effects: {source}")]
    Append { partition: u16, source: AppendError },
    #[error("partition {partition} invoker: an attempt of {invocation} panicked: {message}")]
    Panicked { partition: u16, invocation: InvocationId, message: String },
}

struct Running {
    attempt: AttemptKey,
    /// Its journal and eager state, counted against `inputs_bytes_max`.
    input_bytes: usize,
    notify: mpsc::Sender<(u32, u16, Bytes)>,
    task: JoinHandle<()>,
    /// Not an attempt: the append of the `Failed` effect that restarts one. Holding the
    /// invocation's place keeps a refill from starting the same attempt again meanwhile.
    restarting: bool,
}

/// The running attempts by invocation, and the bytes of inputs they hold together.
#[derive(Default)]
struct RunningSet {
    map: BTreeMap<InvocationId, Running>,
    input_bytes: usize,
}

impl RunningSet {
    fn len(&self) -> usize {
        self.map.len()
    }
    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    fn get(&self, id: &InvocationId) -> Option<&Running> {
        self.map.get(id)
    }
    fn keys(&self) -> impl Iterator<Item = &InvocationId> {
        self.map.keys()
    }
    fn insert(&mut self, id: InvocationId, r: Running) {
        self.input_bytes += r.input_bytes;
        if let Some(old) = self.map.insert(id, r) {
            self.input_bytes -= old.input_bytes;
        }
    }
    fn remove(&mut self, id: &InvocationId) -> Option<Running> {
        let r = self.map.remove(id)?;
        self.input_bytes -= r.input_bytes;
        Some(r)
    }
    fn into_values(self) -> impl Iterator<Item = Running> {
        self.map.into_values()
    }
}

/// What attempts need from their invoker, shared by their tasks.
pub struct Ctx<T: Transport> {
    pub opts: Options,
    pub registry: Arc<Registry>,
    pub partition: partition::Handle,
    pub transport: T,
    pub clock: SharedClock,
}

impl<T: Transport> std::fmt::Debug for Ctx<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("partition", &self.partition.id).finish()
    }
}

/// The invoker of one partition.
pub struct Invoker<T: Transport> {
    ctx: Arc<Ctx<T>>,
    rx: mpsc::Receiver<Cmd>,
    overflow: Arc<Overflow>,
    leadership_rx: watch::Receiver<Leadership>,
    leader: Leadership,
    running: RunningSet,
    ready: VecDeque<(InvocationId, AttemptKey)>,
    delayed: BTreeSet<(u64, InvocationId, AttemptKey)>,
    /// Invocations in `ready` or `delayed`, with their attempt.
    queued: BTreeMap<InvocationId, AttemptKey>,
    /// Reading the Runnable index: `Some(cursor)` while a pass is under way.
    refill: Option<Option<(u64, InvocationId)>>,
    /// Another pass is due when the one under way ends: it was asked for while the cursor
    /// may already have been past what asked.
    refill_again: bool,
    /// A new refill pass is due at this time (after the store could not be read).
    refill_at_ms: Option<u64>,
    /// Attempts were not queued because the waiting set was full.
    delayed_overflowed: bool,
    done_tx: mpsc::Sender<(InvocationId, AttemptKey, AttemptEnd)>,
    done_rx: mpsc::Receiver<(InvocationId, AttemptKey, AttemptEnd)>,
}

impl<T: Transport> std::fmt::Debug for Invoker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker").field("running", &self.running.len()).finish()
    }
}

impl<T: Transport> Invoker<T> {
    pub fn new(
        opts: Options,
        registry: Arc<Registry>,
        partition: partition::Handle,
        transport: T,
        clock: SharedClock,
    ) -> (Invoker<T>, Handle) {
        let (tx, rx) = mpsc::channel(opts.commands_queued_max.max(1));
        // Each running attempt reports once: room for all of them.
        let (done_tx, done_rx) = mpsc::channel(opts.inflight_max.max(1) + 1);
        let (leadership, leadership_rx) = watch::channel(None);
        let overflow = Arc::new(Overflow::default());
        let ctx = Arc::new(Ctx { opts, registry, partition, transport, clock });
        (
            Invoker {
                ctx,
                rx,
                overflow: overflow.clone(),
                leadership_rx,
                leader: None,
                running: RunningSet::default(),
                ready: VecDeque::new(),
                delayed: BTreeSet::new(),
                queued: BTreeMap::new(),
                refill: None,
                refill_again: false,
                refill_at_ms: None,
                delayed_overflowed: false,
                done_tx,
                done_rx,
            },
            Handle { tx, overflow, leadership: Arc::new(leadership) },
        )
    }

    fn partition(&self) -> u16 {
        self.ctx.partition.id
    }

    /// Runs until every handle is dropped; aborts running attempts on exit.
    pub async fn run(mut self) -> Result<(), InvokerError> {
        let r = self.run_loop().await;
        for r in std::mem::take(&mut self.running).into_values() {
            r.task.abort();
        }
        r
    }

    async fn run_loop(&mut self) -> Result<(), InvokerError> {
        loop {
            if self.leadership_rx.has_changed().unwrap_or(false) {
                let l = self.leadership_rx.borrow_and_update().clone();
                self.change_leader(l);
            }
            self.take_overflow();
            if self.fill() {
                // More of the Runnable index to read: take what arrived meanwhile, let others
                // run, then go on.
                while let Ok((id, attempt, end)) = self.done_rx.try_recv() {
                    self.finished(id, attempt, end)?;
                }
                for _ in 0..64 {
                    match self.rx.try_recv() {
                        Ok(c) => self.command(c),
                        Err(_) => break,
                    }
                }
                tokio::task::yield_now().await;
                continue;
            }
            // A waiting attempt that is due can only move when the ready queue has room; until
            // then an attempt's end (not a timer) is what wakes the loop.
            let next_due = (self.ready.len() < self.ctx.opts.queue_max)
                .then(|| self.delayed.first().map(|d| d.0))
                .flatten();
            let wake_ms = match (next_due, self.refill_at_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wake_ms {
                    Some(ms) => {
                        let now = self.ctx.clock.now_ms();
                        tokio::time::sleep(Duration::from_millis(ms.saturating_sub(now))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = self.leadership_rx.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    let l = self.leadership_rx.borrow_and_update().clone();
                    self.change_leader(l);
                }
                done = self.done_rx.recv() => {
                    if let Some((id, attempt, end)) = done {
                        self.finished(id, attempt, end)?;
                    }
                }
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => return Ok(()),
                },
                _ = self.overflow.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }

    fn change_leader(&mut self, l: Leadership) {
        for r in std::mem::take(&mut self.running).into_values() {
            r.task.abort();
        }
        self.ready.clear();
        self.delayed.clear();
        self.queued.clear();
        self.refill = l.as_ref().map(|_| None);
        self.refill_again = false;
        self.refill_at_ms = None;
        self.delayed_overflowed = false;
        self.leader = l;
    }

    fn take_overflow(&mut self) {
        if self.overflow.refill.swap(false, Ordering::SeqCst) {
            self.want_refill();
        }
        let lost: Vec<InvocationId> = {
            let mut l = self.overflow.lost.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *l).into_iter().collect()
        };
        let lost_all = self.overflow.lost_all.swap(false, Ordering::SeqCst);
        let ids: Vec<InvocationId> =
            if lost_all { self.running.keys().copied().collect() } else { lost };
        for id in ids {
            self.restart(id);
        }
    }

    /// A notification (or abort) for `id` was dropped: stop its attempt and log a failure
    /// that asks for a new one, which replays the journal with everything in it.
    fn restart(&mut self, id: InvocationId) {
        let Some(r) = self.running.remove(&id) else { return };
        if r.restarting {
            self.running.insert(id, r);
            return;
        }
        r.task.abort();
        let Some((epoch, _)) = &self.leader else { return };
        let failed = machine::effect_record(
            &id,
            r.attempt.0,
            r.attempt.1,
            effect::Kind::Failed(Failed {
                code: 503,
                message: "the attempt fell behind its notifications; restarting it".into(),
                retry_after_ms: None,
                counts: false,
                retry_in_ms: 0,
                give_up: false,
                pause: false,
            }),
        );
        let partition = self.ctx.partition.clone();
        let epoch = *epoch;
        let attempt = r.attempt;
        let done = self.done_tx.clone();
        // Until the append ends the invocation keeps its place in `running`, so no refill
        // starts attempt `attempt` a second time; its end is reported like an attempt's: a
        // full disk retries later, a lost leadership drops it.
        let task = tokio::spawn(async move {
            let end = match partition.append_as(epoch, vec![failed]).await {
                Ok(_) => AttemptEnd::Logged,
                Err(AppendError::Fenced { .. }) => AttemptEnd::Fenced,
                Err(AppendError::NoSpace | AppendError::Unavailable { .. }) => {
                    AttemptEnd::RetryLater
                }
                Err(e) => AttemptEnd::Fatal(e),
            };
            let _ = done.send((id, attempt, end)).await;
        });
        let (notify, _) = mpsc::channel(1);
        self.running
            .insert(id, Running { attempt, input_bytes: 0, notify, task, restarting: true });
    }

    fn command(&mut self, c: Cmd) {
        let epoch = match &c {
            Cmd::Invoke { epoch, .. } | Cmd::Notify { epoch, .. } | Cmd::Abort { epoch, .. } => {
                *epoch
            }
        };
        if self.leader.as_ref().map(|l| l.0) != Some(epoch) {
            return;
        }
        match c {
            Cmd::Invoke { id, attempt, not_before_ms, .. } => {
                if self.running.get(&id).is_some_and(|r| r.attempt >= attempt)
                    || self.queued.get(&id).is_some_and(|a| *a >= attempt)
                {
                    return;
                }
                let _ = self.enqueue(id, attempt, not_before_ms);
            }
            Cmd::Notify { id, attempt, index, ty, payload, .. } => {
                if let Some(r) = self.running.get(&id) {
                    // A restarting attempt needs none: its successor replays the journal.
                    if r.attempt == attempt
                        && !r.restarting
                        && r.notify.try_send((index, ty, payload)).is_err()
                    {
                        self.restart(id);
                    }
                }
            }
            Cmd::Abort { id, .. } => {
                if let Some(r) = self.running.remove(&id) {
                    r.task.abort();
                }
                // A queued retry of the aborted attempt is moot too.
                if let Some(a) = self.queued.remove(&id) {
                    self.ready.retain(|(i, _)| *i != id);
                    self.delayed.retain(|(_, i, x)| !(*i == id && *x == a));
                }
            }
        }
    }

    /// Queues an attempt, ready or waiting for its time; `false` when the queue for it is full
    /// (the store keeps it runnable, and a later pass over the Runnable index finds it).
    fn enqueue(&mut self, id: InvocationId, attempt: AttemptKey, not_before_ms: u64) -> bool {
        if not_before_ms > self.ctx.clock.now_ms() {
            if self.delayed.len() >= self.ctx.opts.queue_max {
                // Look again once the waiting set has drained.
                self.delayed_overflowed = true;
                return false;
            }
            self.delayed.insert((not_before_ms, id, attempt));
        } else {
            if self.ready.len() >= self.ctx.opts.queue_max {
                self.want_refill();
                return false;
            }
            self.ready.push_back((id, attempt));
        }
        if let Some(old) = self.queued.insert(id, attempt) {
            if old < attempt {
                self.ready.retain(|(i, a)| !(*i == id && *a == old));
                self.delayed.retain(|(_, i, a)| !(*i == id && *a == old));
            }
        }
        true
    }

    /// Starts attempts while there is room. Reads at most one page of the Runnable index per
    /// call, so a long pass never holds the loop; `true` if it should be called again soon.
    fn fill(&mut self) -> bool {
        let Some((epoch, store)) = self.leader.clone() else { return false };
        let now = self.ctx.clock.now_ms();
        if self.refill_at_ms.is_some_and(|t| t <= now) {
            self.refill_at_ms = None;
            self.want_refill();
        }
        while let Some(&(due, id, attempt)) = self.delayed.first() {
            if due > now || self.ready.len() >= self.ctx.opts.queue_max {
                break;
            }
            self.delayed.pop_first();
            self.ready.push_back((id, attempt));
        }
        // At least one free place: with `queue_max` 1, half of it is none, and the pass would
        // never come.
        if self.delayed_overflowed && self.delayed.len() < (self.ctx.opts.queue_max / 2).max(1) {
            // Attempts were left in the store when the waiting set was full: a new pass.
            self.delayed_overflowed = false;
            self.want_refill();
        }
        let mut paged = false;
        while self.running.len() < self.ctx.opts.inflight_max {
            let Some((id, attempt)) = self.ready.pop_front() else {
                if paged || self.refill.is_none() {
                    break;
                }
                paged = true;
                self.refill_page(&store);
                continue;
            };
            if self.queued.get(&id) == Some(&attempt) {
                self.queued.remove(&id);
            }
            if !self.start(epoch, &store, id, attempt, now) {
                break;
            }
        }
        self.refill.is_some() && self.running.len() < self.ctx.opts.inflight_max
    }

    /// Reads the next page of the Runnable index into the queues. The pass ends at the end of
    /// the index; it stops early (to go on later from its cursor) when the ready queue fills.
    fn refill_page(&mut self, store: &PartitionStore) {
        let Some(cursor) = self.refill else { return };
        let want = (self.ctx.opts.queue_max / 2).max(1);
        let read = store.begin_read().and_then(|r| {
            let rows = r.runnable_after(cursor, want)?;
            let mut out = Vec::with_capacity(rows.len());
            for (seq, id) in rows {
                let st = r.status(&id)?;
                out.push((seq, id, st));
            }
            Ok(out)
        });
        let rows = match read {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(partition = self.partition(), "reading runnable invocations: {e}");
                self.refill = None;
                self.refill_at_ms = Some(self.ctx.clock.now_ms() + 1000);
                return;
            }
        };
        let complete = rows.len() < want;
        let mut last = cursor;
        for (seq, id, st) in rows {
            if let Some(st) = st {
                // An older attempt still running or queued does not count: the newer one
                // replaces it (as for a hint), or nothing would start it once the old ends.
                let attempt = (st.life, st.attempt);
                if self.running.get(&id).is_none_or(|r| r.attempt < attempt)
                    && self.queued.get(&id).is_none_or(|a| *a < attempt)
                    && !self.enqueue(id, attempt, st.next_retry_at_ms)
                    && self.ready.len() >= self.ctx.opts.queue_max
                {
                    // The ready queue is full: go on from here next time.
                    self.refill = Some(last);
                    return;
                }
            }
            last = Some((seq, id));
        }
        self.refill = match (complete, std::mem::take(&mut self.refill_again)) {
            (false, again) => {
                self.refill_again = again;
                Some(last)
            }
            (true, true) => Some(None),
            (true, false) => None,
        };
    }

    /// Asks for a pass over the Runnable index from its start. A pass under way may be past
    /// what asked (a dropped hint, an attempt the full queue could not take), so another
    /// follows it.
    fn want_refill(&mut self) {
        if self.refill.is_none() {
            self.refill = Some(None);
        } else {
            self.refill_again = true;
        }
    }

    /// Starts the attempt if it is still due; `false` (the attempt is queued again, first)
    /// when its inputs do not fit next to those of the running attempts.
    fn start(
        &mut self,
        epoch: u64,
        store: &PartitionStore,
        id: InvocationId,
        attempt: AttemptKey,
        now_ms: u64,
    ) -> bool {
        if let Some(r) = self.running.get(&id) {
            if r.attempt >= attempt {
                return true;
            }
        }
        let schema = self.ctx.registry.snapshot();
        let lazy = |service: &str, handler: &str| {
            schema
                .service(service)
                .and_then(|s| s.handlers.get(handler))
                .is_some_and(|h| h.lazy_state)
        };
        let loaded = store.begin_read().and_then(|r| {
            load_attempt(&r, &id, attempt, &lazy, self.ctx.opts.eager_state_bytes_max)
        });
        let a = match loaded {
            Ok(Some(a)) => a,
            Ok(None) => return true, // moved on, or finished
            Err(e) => {
                tracing::warn!(invocation = %id, "cannot read the attempt to start: {e}");
                self.delayed.insert((now_ms + 1000, id, attempt));
                self.queued.insert(id, attempt);
                return true;
            }
        };
        if a.next_retry_at_ms > now_ms {
            self.delayed.insert((a.next_retry_at_ms, id, attempt));
            self.queued.insert(id, attempt);
            return true;
        }
        let input_bytes = attempt_input_bytes(&a);
        let in_use = self.running.input_bytes;
        if !self.running.is_empty() && in_use + input_bytes > self.ctx.opts.inputs_bytes_max {
            // Read again when it is its turn: the inputs are not kept while it waits.
            self.ready.push_front((id, attempt));
            self.queued.insert(id, attempt);
            return false;
        }
        if let Some(old) = self.running.remove(&id) {
            old.task.abort();
        }
        let (notify, notify_rx) = mpsc::channel(self.ctx.opts.notifications_queued_max.max(1));
        let ctx = self.ctx.clone();
        let done = self.done_tx.clone();
        let task = tokio::spawn(async move {
            // A panic must not leave the invocation running for good with its slot taken:
            // it ends the attempt like any end, as a fatal one.
            use futures_util::FutureExt;
            let run = std::panic::AssertUnwindSafe(driver::run_attempt(&ctx, epoch, a, notify_rx));
            let end = match run.catch_unwind().await {
                Ok(end) => end,
                Err(p) => AttemptEnd::Panicked(panic_message(p.as_ref())),
            };
            let _ = done.send((id, attempt, end)).await;
        });
        let running = Running { attempt, input_bytes, notify, task, restarting: false };
        self.running.insert(id, running);
        true
    }

    fn finished(
        &mut self,
        id: InvocationId,
        attempt: AttemptKey,
        end: AttemptEnd,
    ) -> Result<(), InvokerError> {
        if self.running.get(&id).is_some_and(|r| r.attempt == attempt) {
            self.running.remove(&id);
        }
        match end {
            AttemptEnd::Logged | AttemptEnd::Fenced => Ok(()),
            AttemptEnd::RetryLater => {
                if self.leader.is_some() && !self.queued.contains_key(&id) {
                    let at = self.ctx.clock.now_ms()
                        + self.ctx.opts.retry_later_delay.as_millis() as u64;
                    self.delayed.insert((at, id, attempt));
                    self.queued.insert(id, attempt);
                }
                Ok(())
            }
            AttemptEnd::Fatal(source) => {
                Err(InvokerError::Append { partition: self.partition(), source })
            }
            AttemptEnd::Panicked(message) => {
                Err(InvokerError::Panicked { partition: self.partition(), invocation: id, message })
            }
        }
    }
}

/// The text of a panic payload.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The bytes of an attempt's inputs held while it runs: journal entries and eager state.
fn attempt_input_bytes(a: &crate::fsm::InvokeAttempt) -> usize {
    let journal: usize = a.journal.iter().map(|(_, b)| b.len() + 8).sum();
    let state: usize = a.state.iter().flatten().map(|(k, v)| k.len() + v.len() + 16).sum();
    journal + state
}
