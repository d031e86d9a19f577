//! The deterministic simulator: one seed drives, on one thread and on virtual time, the real
//! WAL (on the simulated disk), the real partition stores (redb on a simulated backend), the
//! state machine, the processors, shufflers, timers and invokers, against a simulated SDK
//! ([`sdk`]) running scripted handlers ([`handlers`]).
//!
//! A run is a sequence of *lives*. In each life a fresh single-threaded tokio runtime with
//! paused time starts the node from the disks of the previous life, a client submits
//! invocations (and cancels, kills, purges and creates again some of them), and faults
//! happen: slow disk writes, a full disk for a while (WAL and stores), refused and slow SDK
//! connections. A life ends with a crash at a random virtual time after a random number of
//! scheduler steps: the runtime is dropped mid-flight, and the next life starts from crash
//! images of every disk (writes in flight dropped, kept or torn).
//! The last life runs until everything settled (it may still see a full disk for a while,
//! which the server must wait out), then the checks run:
//!
//! - every acknowledged invocation finished, exactly once, with the outcome its handler
//!   gives (success, terminal failure, or the limit violation `Big.set` must produce), or
//!   the one a cancel or a kill the client sent gives (409 `canceled` or `killed`), and the
//!   calls it waited on ended the same way; an id killed, purged and created again ends with
//!   its new life's outcome;
//! - a workflow's promise: the run gets the first completion, every other completion fails
//!   with 409;
//! - once completed, an invocation is left as it is by its attempts' effects, timers, answers,
//!   signals and kills (checked record by record in the rebuild from the log);
//! - no `ctx.run` body ran after its result was durable in the log;
//! - object state equals the reference model (`Counter` sums, `Log` and `Sink` items per
//!   sender in emission order, `Holder` touches; nothing after a killed holder's call);
//! - no partition is stuck and no component failed; nothing is left runnable, in an outbox
//!   or in a timer table;
//! - no timer fired twice;
//! - applying each partition's whole log to an empty store gives the live store (in seeds
//!   that trim the log, the whole log is an archive of every record read as it became
//!   durable, and what is left of the log must equal it; a check that cannot have the whole
//!   log is skipped and named in [`Report::skipped`] and the trace);
//! - nothing panicked: a panic of any task (named where the simulator spawns it) or of the
//!   simulator itself is a violation of the run ([`panics`]).
//!
//! Invariants: everything that varies comes from the seed (the [`SimRng`]s, virtual time);
//! nothing reads the wall clock or a global random source. [`run`] twice with the same
//! options gives the same [`Report::trace_hash`].

pub mod handlers;
pub mod panics;
pub mod sdk;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use tokio::sync::watch;

use crate::clock::{SharedClock, TokioClock};
use crate::defect::{self, Defect};
use crate::fsm::{
    self, outcome, record, Applied, Fsm, FsmRead, HandlerKind, Invoke, Phase, Record,
};
use crate::invoker;
use crate::log::SharedLog;
use crate::partition::{log_of, partition_of, processor, AppendError, Handle, Router, Waiters};
use crate::protocol::discovery::ServiceType;
use crate::protocol::ids::InvocationId;
use crate::schema::{
    Deployment, HandlerSchema, Registry, Schema, SchemaHandlerKind, ServiceSchema,
};
use crate::store::sim::{Crash, SimBackend};
use crate::store::{PartitionStore, ReadView, Table};
use crate::wal::disk::sim::{SimDisk, SimRng};
use crate::wal::{self, Wal};

/// The wall-clock time virtual time starts at (2026-01-01T00:00:00Z). Ms.
const EPOCH_MS: u64 = 1_767_225_600_000;
/// After the last fault, everything must have settled within this much virtual time.
const SETTLE_MS_MAX: u64 = 120_000;
/// The retry policy of the rebuild from the log; every life configures a different one.
const REBUILD_RETRY: fsm::RetryPolicy = fsm::RetryPolicy {
    initial_ms: 1,
    factor: 1.0,
    max_interval_ms: 1,
    attempts_max: 1,
    pause_on_max: false,
};

/// What one run does; [`Options::for_seed`] derives everything from the seed.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub partitions: u16,
    pub invocations: usize,
    /// Lives; every life but the last ends in a crash.
    pub lives: usize,
    pub disk_full: bool,
    /// The deployment speaks request-response instead of bidirectional streaming.
    pub request_response: bool,
    /// A defect put back on purpose (see [`crate::defect`]).
    pub defect: Option<Defect>,
    /// Processors trim the log up to each durable checkpoint; the final checks then read the
    /// trimmed records from an archive taken as they became durable.
    pub trim_log: bool,
    /// Plans messages of hundreds of KiB (`Caller.send_big`), on WAL segments large enough
    /// for them.
    pub big_messages: bool,
    /// Appends one record `apply` must refuse (an empty one) in the first life: shows that
    /// the rebuild reports it.
    pub invalid_record: bool,
    /// Adds one `Flaky.panic`, whose first attempt panics in the SDK: shows that a panicking
    /// task is reported.
    pub panicking_handler: bool,
}

impl Options {
    pub fn for_seed(seed: u64) -> Options {
        let mut rng = SimRng::new(seed ^ 0x005E_ED0F_5EED);
        Options {
            seed,
            partitions: 1 + rng.below(2) as u16,
            invocations: 8 + rng.below(20) as usize,
            lives: 1 + rng.below(4) as usize,
            disk_full: rng.below(10) < 5,
            request_response: rng.below(10) < 2,
            big_messages: rng.below(10) < 3,
            trim_log: rng.below(10) < 3,
            defect: None,
            invalid_record: false,
            panicking_handler: false,
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Report {
    pub options: Options,
    /// Everything that went wrong; empty for a passing run.
    pub violations: Vec<String>,
    pub acknowledged: usize,
    pub virtual_ms: u64,
    /// A digest of what happened, to check that a seed replays identically.
    pub trace_hash: u64,
    /// What happened, in order (acknowledgements, `ctx.run` executions, the end state).
    pub trace: Vec<String>,
    /// Partitions whose log was trimmed at the end.
    pub trimmed: usize,
    /// Checks that could not run, and why (also in the trace).
    pub skipped: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What a planned invocation must end with.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Success,
    /// Success with exactly this output.
    Output(String),
    /// A terminal failure whose message starts with this (code, prefix).
    Failure(u32, &'static str),
    /// Refused by `apply` without a trace: its key is over the limit. The client appends it
    /// directly, like a producer that skipped validation, so only `apply` can catch it.
    Refused,
    /// Success, or the 409 `canceled` failure: a cancel reaches it unless it finished first.
    SuccessOrCanceled,
    /// A `Wf` run or resolver: checked with its workflow's promise (see [`check_promises`]).
    Promise,
}

/// What the client appends for a planned entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// The invocation's `Invoke`.
    Invoke,
    /// The cancel signal (index 1) for the invocation `id`.
    Cancel,
    /// `Kill` for the invocation `id`.
    Kill,
    /// `Kill`, `Purge` and an `Invoke` with this entry's input for the (deterministic) id `id`,
    /// in one append: whatever the earlier life left in flight arrives after the new life.
    Recreate,
    /// An admin state edit (`ModifyState`) of the entry's object with a stale version: it
    /// waits behind the object's lock like an invocation, then must change nothing.
    EditState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    Not,
    InFlight,
    /// Its append was in flight when a life ended: it may or may not be in the log.
    Maybe,
    Acked,
}

#[derive(Clone, Debug)]
struct Planned {
    id: InvocationId,
    service: &'static str,
    handler: &'static str,
    key: String,
    input: String,
    expect: Expect,
    sent: Sent,
    /// Virtual time (since the start of the run) to submit it at.
    at_ms: u64,
    op: Op,
    /// Sent only once the `Invoke` of this id is acknowledged (earlier in the plan).
    after: Option<InvocationId>,
    /// Sent again by the next life if its append was in flight at a crash, as a client that
    /// retries does: appending it twice is harmless.
    resend: bool,
}

impl Planned {
    fn new(
        id: InvocationId,
        (service, handler): (&'static str, &'static str),
        key: &str,
        input: String,
        expect: Expect,
        at_ms: u64,
    ) -> Planned {
        Planned {
            id,
            service,
            handler,
            key: key.to_string(),
            input,
            expect,
            sent: Sent::Not,
            at_ms,
            op: Op::Invoke,
            after: None,
            resend: false,
        }
    }

    /// The same, appended by `op` once `after` is acknowledged, sent again after a crash.
    fn then(self, op: Op, after: InvocationId, at_ms: u64) -> Planned {
        Planned { op, after: Some(after), at_ms, resend: op != Op::Recreate, ..self }
    }
}

/// One execution of a `ctx.run` body.
#[derive(Clone, Debug)]
struct RunExec {
    /// The durable tail of the invocation's log when the body ran.
    tail: segment_format::Lsn,
}

/// The world outside the server: the client's plan and what the SDK's side effects did.
#[derive(Debug, Default)]
pub struct World {
    plan: Vec<Planned>,
    /// The callees each invocation's SDK learnt from its invocation-id notifications.
    callees: BTreeMap<InvocationId, BTreeSet<InvocationId>>,
    runs: BTreeMap<(InvocationId, u32), Vec<RunExec>>,
    violations: Vec<String>,
    trace: Vec<String>,
    now_ms: u64,
    /// Per partition, in seeds that trim the log.
    archives: Vec<Archive>,
    trimmed: usize,
    skipped: Vec<String>,
}

/// A partition log's records, copied as they became durable, for the checks that need the
/// whole log when the log itself is trimmed.
#[derive(Debug, Default)]
struct Archive {
    /// LSNs 1, 2, … without a hole.
    records: Vec<segment_format::Record>,
    /// Why archiving stopped: a record was trimmed before the archiver read it.
    missed: Option<String>,
}

impl Archive {
    fn next(&self) -> segment_format::Lsn {
        segment_format::Lsn(self.records.len() as u64 + 1)
    }
}

impl World {
    /// Records an execution of run `cid` of `id`; returns how many ran before it.
    pub fn ran(
        &mut self,
        id: InvocationId,
        cid: u32,
        tail: segment_format::Lsn,
        now_ms: u64,
    ) -> usize {
        let runs = self.runs.entry((id, cid)).or_default();
        runs.push(RunExec { tail });
        self.trace.push(format!("{} run {id} {cid} tail {tail}", now_ms.saturating_sub(EPOCH_MS)));
        runs.len() - 1
    }

    /// Records the callees `caller`'s SDK learnt of.
    pub fn called(&mut self, caller: InvocationId, callees: Vec<InvocationId>) {
        self.callees.entry(caller).or_default().extend(callees);
    }

    pub(crate) fn violation(&mut self, v: String) {
        if !self.violations.contains(&v) {
            self.violations.push(v);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The disks that survive a crash.
struct Disks {
    wal: SimDisk,
    stores: Vec<SimBackend>,
}

impl Disks {
    /// What a crash leaves of every disk.
    fn crash(&mut self, wal: &crate::wal::disk::sim::SimControl, seed: u64) {
        let mut crng = SimRng::new(seed ^ 0xC0FFEE);
        self.wal = wal.crash_image(crng.next_u64());
        self.stores = self
            .stores
            .iter()
            .map(|b| {
                b.crash_image(match crng.below(3) {
                    0 => Crash::LoseUnsynced,
                    1 => Crash::KeepUnsynced,
                    _ => Crash::Seeded(crng.next_u64()),
                })
            })
            .collect();
    }
}

/// The schema of the simulated deployment.
fn schema(request_response: bool) -> Schema {
    let dp = "dp_sim".to_string();
    let mut services = BTreeMap::new();
    for (name, ty, handlers) in handlers::SERVICES {
        let handlers = handlers
            .iter()
            .map(|(h, exclusive)| {
                let kind = match (ty, exclusive) {
                    (ServiceType::Service, _) => SchemaHandlerKind::Service,
                    (ServiceType::Workflow, true) => SchemaHandlerKind::WorkflowRun,
                    (ServiceType::Workflow, false) => SchemaHandlerKind::WorkflowShared,
                    (_, true) => SchemaHandlerKind::Exclusive,
                    (_, false) => SchemaHandlerKind::Shared,
                };
                let hs =
                    HandlerSchema { lazy_state: *name == "Log", ..HandlerSchema::new(h, kind) };
                (h.to_string(), hs)
            })
            .collect();
        services.insert(
            name.to_string(),
            ServiceSchema {
                name: name.to_string(),
                ty: *ty,
                revision: 1,
                deployment_id: dp.clone(),
                handlers,
                public: true,
                documentation: None,
                metadata: BTreeMap::new(),
                inactivity_timeout_ms: None,
                abort_timeout_ms: None,
                idempotency_retention_ms: None,
                journal_retention_ms: None,
                lazy_state: *name == "Log",
            },
        );
    }
    let deployment = Deployment {
        id: dp.clone(),
        uri: "sim://sdk".into(),
        bidi: !request_response,
        http_version: "HTTP/2.0".into(),
        min_protocol_version: 5,
        max_protocol_version: 6,
        sdk_version: None,
        additional_headers: BTreeMap::new(),
        metadata: BTreeMap::new(),
        created_ms: EPOCH_MS,
        services: services.keys().map(|s| (s.clone(), 1)).collect(),
    };
    Schema {
        version: 1,
        deployments: BTreeMap::from([(dp, deployment)]),
        services,
        retention: Default::default(),
    }
}

fn kind_of(service: &str, handler: &str) -> HandlerKind {
    for (name, ty, handlers) in handlers::SERVICES {
        if *name == service {
            for (h, exclusive) in *handlers {
                if *h == handler {
                    return match (ty, exclusive) {
                        (ServiceType::Service, _) => HandlerKind::Service,
                        (ServiceType::Workflow, true) => HandlerKind::WorkflowRun,
                        (_, true) => HandlerKind::Exclusive,
                        (_, false) => HandlerKind::Shared,
                    };
                }
            }
        }
    }
    HandlerKind::Unspecified
}

/// The client's plan: a seeded mix of every handler, on a few keys so objects contend.
fn plan(rng: &mut SimRng, options: &Options, horizon_ms: u64) -> Vec<Planned> {
    let n = options.invocations;
    let keys = ["k0", "k1", "k2", "k3"];
    let mut out = Vec::with_capacity(n);
    let mut send_seqs = 0;
    for i in 0..n {
        let key = keys[rng.below(keys.len() as u64) as usize].to_string();
        let uuid = (u128::from(rng.next_u64()) << 64) | i as u128;
        let big = options.big_messages && rng.below(4) == 0;
        let roll = if big { 100 } else { rng.below(100) };
        let (service, handler, key, input, expect) = match roll {
            100 => {
                send_seqs += 1;
                let k = 1 + rng.below(3);
                let bytes = 64 * 1024 + rng.below(320 * 1024);
                let input = format!("{key}:b{send_seqs}:{k}:{bytes}");
                ("Caller", "send_big", String::new(), input, Expect::Success)
            }
            0..=29 => ("Counter", "add", key, (1 + rng.below(9)).to_string(), Expect::Success),
            30..=44 => {
                let ms = if rng.below(2) == 0 { rng.below(80) } else { rng.below(1500) };
                ("Worker", "work", String::new(), ms.to_string(), Expect::Success)
            }
            45..=59 => {
                let n = 1 + rng.below(9);
                ("Caller", "call_add", String::new(), format!("{key}:{n}"), Expect::Success)
            }
            60..=74 => {
                send_seqs += 1;
                let k = 1 + rng.below(6);
                (
                    "Caller",
                    "send_seq",
                    String::new(),
                    format!("{key}:s{send_seqs}:{k}"),
                    Expect::Success,
                )
            }
            75..=79 => ("Flaky", "flaky", String::new(), String::new(), Expect::Success),
            80..=84 => {
                let v = format!("v{i}");
                ("Awk", "wait", String::new(), v.clone(), Expect::Output(v))
            }
            85..=91 => {
                ("Flaky", "fail", String::new(), String::new(), Expect::Failure(418, "bad input"))
            }
            92..=96 => ("Big", "set", key, String::new(), Expect::Failure(413, "[RA1001]")),
            97..=99 => {
                let key = "x".repeat(crate::fsm::limits::OBJECT_KEY_BYTES_MAX + 1);
                ("Counter", "add", key, "1".into(), Expect::Refused)
            }
            _ => unreachable!("a roll below 100, or 100 for a large message"),
        };
        let partition_key =
            if key.is_empty() { rng.next_u64() } else { fsm::partition_key_of(&key) };
        let id = InvocationId { partition_key, uuid };
        let at_ms = rng.below(horizon_ms.max(1));
        let counted_add = (service, handler, &expect) == ("Counter", "add", &Expect::Success);
        let planned = Planned::new(id, (service, handler), &key, input, expect, at_ms);
        // Every fourth counted add is followed by a stale state edit of its key, mostly while
        // the add holds the lock (decided from the id: the rest of the plan stays as it was).
        // It waits for nothing: a stale edit may land anywhere (also when a crash left the
        // add unacknowledged and not resent).
        let edit = Planned {
            after: None,
            ..planned.clone().then(Op::EditState, id, at_ms + (uuid >> 66) as u64 % 50)
        };
        out.push(planned);
        if counted_add && uuid >> 64 & 3 == 0 {
            out.push(edit);
        }
    }
    if options.panicking_handler {
        let id = InvocationId { partition_key: rng.next_u64(), uuid: u128::from(rng.next_u64()) };
        let at_ms = rng.below(horizon_ms.max(1));
        out.push(Planned::new(id, ("Flaky", "panic"), "", String::new(), Expect::Success, at_ms));
    }
    plan_model(&mut SimRng::new(options.seed ^ 0x00DE_10F1_1FE5), horizon_ms, &mut out);
    out.sort_by_key(|p| p.at_ms);
    out
}

/// The parts of the plan that go together: a workflow and the resolvers of its promise, a
/// cancel, a kill, and a deterministic id killed, purged and created again. Drawn from a
/// generator of their own, so that the rest of the plan is what it was without them.
fn plan_model(rng: &mut SimRng, horizon_ms: u64, out: &mut Vec<Planned>) {
    let at = |rng: &mut SimRng| rng.below(horizon_ms.max(1));
    let id_at = |rng: &mut SimRng, partition_key: u64| InvocationId {
        partition_key,
        uuid: (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()),
    };
    // A workflow run waits for its promise; one or two resolvers, at any time, complete it;
    // now and then a cancel reaches the run first.
    if rng.below(10) < 4 {
        let key = "w0";
        let pk = fsm::partition_key_of(key);
        let t = at(rng);
        let id = fsm::workflow_id("Wf", key);
        let run = Planned::new(id, ("Wf", "run"), key, String::new(), Expect::Promise, t);
        out.push(Planned { resend: true, ..run.clone() });
        if rng.below(4) == 0 {
            out.push(run.then(Op::Cancel, id, t + 1 + rng.below(1200)));
        }
        for j in 0..1 + rng.below(2) {
            let t = t.saturating_sub(300) + rng.below(1200);
            let id = id_at(rng, pk);
            let p = Planned::new(id, ("Wf", "resolve"), key, format!("r{j}"), Expect::Promise, t);
            out.push(Planned { resend: true, ..p });
        }
    }
    // A cancel, appended by the client or sent by `Cancel.cancel`: of a sleeping worker, of a
    // call to a counter, or of a call to `Hang.wait`, which only the cancel ends.
    if rng.below(10) < 5 {
        let (target, input, expect) = match rng.below(3) {
            0 => (("Worker", "work"), rng.below(1500).to_string(), Expect::SuccessOrCanceled),
            1 => {
                let input = format!("k{}:{}", rng.below(4), 1 + rng.below(9));
                (("Caller", "call_add"), input, Expect::SuccessOrCanceled)
            }
            _ => (("Caller", "call_hang"), String::new(), Expect::Failure(409, "canceled")),
        };
        let pk = rng.next_u64();
        let id = id_at(rng, pk);
        let t = at(rng);
        let p = Planned { resend: true, ..Planned::new(id, target, "", input, expect, t) };
        let tc = t + 1 + rng.below(1200);
        out.push(p.clone());
        if rng.below(2) == 0 {
            out.push(p.then(Op::Cancel, id, tc));
        } else {
            let pk = rng.next_u64();
            let by = id_at(rng, pk);
            let c = Planned::new(by, ("Cancel", "cancel"), "", id.to_string(), Expect::Success, tc);
            out.push(c.then(Op::Invoke, id, tc));
        }
    }
    // A kill of a holder of an object key waiting on a call; touches queue behind it.
    if rng.below(10) < 4 {
        let key = format!("k{}", rng.below(4));
        let pk = fsm::partition_key_of(&key);
        let t = at(rng);
        let id = id_at(rng, pk);
        let hold = Planned::new(
            id,
            ("Holder", "hold"),
            &key,
            String::new(),
            Expect::Failure(409, "killed"),
            t,
        );
        out.push(Planned { resend: true, ..hold.clone() });
        out.push(hold.then(Op::Kill, id, t + 1 + rng.below(1200)));
        for _ in 0..1 + rng.below(2) {
            let touch = id_at(rng, pk);
            let t = t + rng.below(1500);
            let p =
                Planned::new(touch, ("Holder", "touch"), &key, String::new(), Expect::Success, t);
            out.push(Planned { resend: true, ..p });
        }
    }
    // A deterministic id (idempotent or a workflow's) killed, purged and created again while
    // its sleep or its call may still be in flight.
    if rng.below(10) < 5 {
        let (target, id, key) = if rng.below(2) == 0 {
            (("Life", "run"), fsm::idempotent_id("Life", None, "run", "l0"), "")
        } else {
            (("LifeWf", "run"), fsm::workflow_id("LifeWf", "l0"), "l0")
        };
        let ms = 100 + rng.below(900);
        let t = at(rng);
        let first =
            Planned::new(id, target, key, format!("a:{ms}"), Expect::Output("a|a".into()), t);
        out.push(Planned { resend: true, ..first });
        let again = t + 1 + rng.below(ms + handlers::LIFE_ECHO_MS + 300);
        let input = format!("b:{}", 100 + rng.below(900));
        let second = Planned::new(id, target, key, input, Expect::Output("b|b".into()), again);
        out.push(second.then(Op::Recreate, id, again));
    }
}

/// Runs one seed and checks it. Never panics on a violation, nor on a panic of the code it
/// runs: both are in the report.
pub fn run(options: Options) -> Report {
    defect::set(options.defect);
    panics::start();
    let world = Arc::new(Mutex::new(World::default()));
    let mut elapsed_ms = 0;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_inner(&options, &world, &mut elapsed_ms)
    }));
    let mut w = lock(&world);
    for p in panics::stop() {
        w.violation(p);
    }
    if r.is_err() {
        w.violation("the run was cut short by the panic above".into());
    }
    defect::set(None);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    w.trace.hash(&mut h);
    w.violations.hash(&mut h);
    Report {
        acknowledged: w.plan.iter().filter(|p| p.sent == Sent::Acked).count(),
        violations: w.violations.clone(),
        virtual_ms: elapsed_ms,
        trace_hash: h.finish(),
        trace: w.trace.clone(),
        trimmed: w.trimmed,
        skipped: w.skipped.clone(),
        options,
    }
}

fn run_inner(options: &Options, world: &Arc<Mutex<World>>, elapsed_ms: &mut u64) {
    let mut rng = SimRng::new(options.seed);
    lock(world).plan = plan(&mut rng, options, 1500 * options.lives as u64);
    if options.trim_log {
        lock(world).archives = (0..options.partitions).map(|_| Archive::default()).collect();
    }
    let mut disks = Disks {
        wal: SimDisk::new(rng.next_u64()),
        stores: (0..options.partitions).map(|_| SimBackend::new()).collect(),
    };
    let mut life_report = None;
    for life in 0..options.lives {
        let last = life + 1 == options.lives;
        let life_seed = rng.next_u64();
        for p in lock(world).plan.iter_mut() {
            if p.sent == Sent::InFlight {
                p.sent = if p.resend { Sent::Not } else { Sent::Maybe };
            }
        }
        let wal_disk = std::mem::replace(&mut disks.wal, SimDisk::new(0));
        let wal_ctl = wal_disk.control();
        let r = run_life(options, world, wal_disk, &disks, life, last, life_seed, elapsed_ms);
        let panicked = panics::take();
        let mut w = lock(world);
        for p in &panicked {
            w.violation(format!("life {life}: {p}"));
        }
        drop(w);
        // The next life finds what a crash left.
        disks.crash(&wal_ctl, life_seed);
        match r {
            Ok(final_state) => life_report = final_state,
            Err(v) => {
                lock(world).violation(format!("life {life}: {v}"));
                break;
            }
        }
    }
    if let Some(state) = life_report {
        panics::within("the checks", || check(options, world, &state));
    }
}

/// Every table of a store: (key, value) rows in key order.
type Dump = BTreeMap<Table, Vec<(Vec<u8>, Vec<u8>)>>;

/// Everything the checks need from the last life.
struct FinalState {
    /// Per partition: every table's rows.
    stores: Vec<Dump>,
    /// Per partition: the whole log (LSN, timestamp, body), or `None` when it could not be
    /// had (trimmed, and the archive has a hole).
    logs: Vec<Option<Vec<segment_format::Record>>>,
    settled: bool,
}

fn wal_options(clock: SharedClock, big_messages: bool) -> wal::Options {
    let mut o = wal::Options::new("sim-wal");
    // Small segments roll, recycle and fill often; a large message needs one that holds it.
    o.segment_bytes = if big_messages { 1024 * 1024 } else { 64 * 1024 };
    o.flush_bytes_max = 16 * 1024;
    o.flush_pipeline_bytes_min = 4 * 1024;
    o.queue_len_max = 256;
    o.recent_frames_bytes_max = 64 * 1024;
    o.clock = clock;
    o
}

#[allow(clippy::too_many_arguments)]
fn run_life(
    options: &Options,
    world: &Arc<Mutex<World>>,
    wal_disk: SimDisk,
    disks: &Disks,
    life: usize,
    last: bool,
    seed: u64,
    elapsed_ms: &mut u64,
) -> Result<Option<FinalState>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let start_ms = *elapsed_ms;
    let driver = panics::Named::new("the simulation's driver", async {
        let mut rng = SimRng::new(seed);
        let clock: SharedClock = Arc::new(TokioClock::new(EPOCH_MS + start_ms));
        let slow_disk = rng.below(4) == 0;
        let mut lat_rng = SimRng::new(rng.next_u64());
        let latency = move || {
            let us = if slow_disk && lat_rng.below(20) == 0 {
                20_000 + lat_rng.below(200_000)
            } else {
                50 + lat_rng.below(1500)
            };
            Duration::from_micros(us)
        };
        let wal_ctl = wal_disk.control();
        let wal_opts = wal_options(clock.clone(), options.big_messages);
        if last {
            // Whoever filled the disk freed space before the last life.
            wal_ctl.set_capacity_bytes(None);
            for s in &disks.stores {
                s.set_capacity_bytes(None);
            }
        }
        let (wal, writer) = Wal::open_inline(wal_disk, wal_opts, latency)
            .map_err(|e| format!("the WAL refused to recover a crash image: {e}"))?;
        let wal = Arc::new(wal);
        panics::spawn("the WAL writer", writer);
        let log: SharedLog = wal.clone();
        let n = options.partitions;
        if options.trim_log {
            for p in 0..n {
                let from = lock(world).archives[usize::from(p)].next();
                let mut reader = log.reader(log_of(p), from);
                // Catch up before any processor runs, and so before it can trim.
                loop {
                    let r = match reader.try_next() {
                        Ok(Some(r)) => Ok(r),
                        Ok(None) => break,
                        Err(e) => Err(e),
                    };
                    if !archive(world, usize::from(p), r) {
                        break;
                    }
                }
                let w = world.clone();
                panics::spawn(format!("the log archiver of partition {p}"), async move {
                    while archive(&w, usize::from(p), reader.next().await) {}
                });
            }
        }
        let registry = Arc::new(Registry::in_memory(schema(options.request_response)));
        let handles: Vec<Handle> = (0..n).map(|i| Handle::new(i, log.clone())).collect();
        let router = Router {
            partitions: Arc::new(handles),
            waiters: Arc::new(Waiters::new(life as u64 + 1)),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let transport = sdk::SimTransport {
            world: world.clone(),
            log: log.clone(),
            partitions: n,
            rng: Arc::new(Mutex::new(SimRng::new(rng.next_u64()))),
            faults: sdk::SdkFaults {
                refuse_per_mille: if last { 0 } else { rng.below(60) },
                delay_ms_max: rng.below(5),
                coalesce: rng.below(3) == 0,
                fragment: rng.below(3) == 0,
            },
            clock: clock.clone(),
        };
        // Each life configures its own policy: the decisions are in the log, so nothing but
        // the attempts of this life may depend on it. Enough attempts that `Flaky` succeeds.
        let retry = fsm::RetryPolicy {
            initial_ms: 5 + rng.below(100),
            factor: [1.5, 2.0, 3.0][rng.below(3) as usize],
            max_interval_ms: 100 + rng.below(900),
            attempts_max: 100 + rng.below(900) as u32,
            pause_on_max: false,
        };
        // A quarter of the lives have tiny queues: every hint, notification and refill
        // meets a full queue, so the paths that must not lose one run all the time.
        let tiny = rng.below(4) == 0;
        let inflight_max = 1 + rng.below(8) as usize;
        let mut small = |usual: usize| if tiny { 1 + rng.below(2) as usize } else { usual };
        let inv_opts = invoker::Options {
            inactivity_timeout: Duration::from_secs(2),
            abort_timeout: Duration::from_secs(5),
            inflight_max: small(inflight_max),
            // The Runnable index is read in pages of half of it.
            queue_max: small(8),
            notifications_queued_max: small(256),
            commands_queued_max: small(64),
            eager_state_bytes_max: 64 + rng.below(256) as usize,
            retry_later_delay: Duration::from_millis(100),
            retry,
            ..invoker::Options::default()
        };
        if tiny {
            let o = &inv_opts;
            lock(world).trace.push(format!(
                "life {life}: tiny invoker queues: in flight {}, queued {}, notifications {}, commands {}",
                o.inflight_max, o.queue_max, o.notifications_queued_max, o.commands_queued_max
            ));
        }
        let store_opts = crate::store::Options { cache_bytes_max: 256 * 1024 };
        let mut tasks = Vec::new();
        for i in 0..n {
            let backend = disks.stores[usize::from(i)].clone();
            let so = store_opts.clone();
            let open: processor::StoreOpener =
                Box::new(move || PartitionStore::open_backend(backend.clone(), &so));
            let (inv, inv_handle) = invoker::Invoker::new(
                inv_opts.clone(),
                registry.clone(),
                router.partitions[usize::from(i)].clone(),
                transport.clone(),
                clock.clone(),
            );
            let w = world.clone();
            tasks.push(panics::spawn(format!("the invoker of partition {i}"), async move {
                if let Err(e) = inv.run().await {
                    lock(&w).violation(format!("the invoker of partition {i} failed: {e}"));
                }
            }));
            let mut popts = processor::Options::new(i);
            popts.checkpoint_records = 20 + rng.below(400);
            popts.checkpoint_interval = Duration::from_millis(100 + rng.below(3000));
            popts.batch_records_max = 1 + rng.below(32) as usize;
            popts.timers_in_memory_max = 2 + rng.below(8) as usize;
            popts.timers_per_turn_max = 1 + rng.below(4) as usize;
            popts.firings_queued_max = 1 + rng.below(3) as usize;
            popts.recovery_delay_min = Duration::from_millis(10);
            popts.recovery_delay_max = Duration::from_millis(500);
            popts.trim_log = options.trim_log;
            popts.shuffler.batch_entries_max = 1 + rng.below(8) as usize;
            if rng.below(2) == 0 {
                // Byte bounds that split batches and appends often (one entry always goes):
                // of small messages, or of large ones.
                let scale = if rng.below(2) == 0 { 512 } else { 512 * 1024 };
                popts.shuffler.batch_bytes_max = 64 + rng.below(scale) as usize;
                popts.shuffler.append_bytes_max = 64 + rng.below(scale / 2) as usize;
            }
            popts.shuffler.truncate_every_entries = 1 + rng.below(8);
            let mut fsm = Fsm::new(i);
            fsm.defect_retry = Some(inv_opts.retry.clone());
            let p = processor::Processor::new(
                popts,
                log.clone(),
                open,
                fsm,
                router.partitions[usize::from(i)].clone(),
                router.clone(),
                inv_handle,
                clock.clone(),
            );
            let rx = stop_rx.clone();
            let w = world.clone();
            tasks.push(panics::spawn(format!("the processor of partition {i}"), async move {
                if let Err(e) = p.run(rx).await {
                    lock(&w).violation(format!("partition {i} stopped: {e}"));
                }
            }));
        }
        // The client.
        {
            let w = world.clone();
            let router = router.clone();
            let clock = clock.clone();
            tasks.push(panics::spawn("the client", client(w, router, clock, start_ms)));
        }
        if options.invalid_record && life == 0 {
            let target = router.partitions[0].clone();
            panics::spawn("the producer of an invalid record", async move {
                while target.append(vec![Record { header: None, kind: None }]).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
        // A full disk for a while.
        if options.disk_full {
            let at = Duration::from_millis(rng.below(1000));
            let dur = Duration::from_millis(300 + rng.below(2500));
            let wal_ctl = wal_ctl.clone();
            // Copy-on-write storage: even writes into existing blocks fail while full.
            let cow = rng.below(2) == 0;
            let stores: Vec<SimBackend> = disks.stores.clone();
            tasks.push(panics::spawn("the disk filler", async move {
                tokio::time::sleep(at).await;
                wal_ctl.set_capacity_bytes(Some(wal_ctl.used_bytes()));
                wal_ctl.set_writes_fail_no_space(cow);
                for s in &stores {
                    s.set_capacity_bytes(Some(s.len_bytes()));
                }
                tokio::time::sleep(dur).await;
                wal_ctl.set_capacity_bytes(None);
                wal_ctl.set_writes_fail_no_space(false);
                for s in &stores {
                    s.set_capacity_bytes(None);
                }
            }));
        }
        let out = if last {
            settle(world, &router, &log, options, start_ms, &clock).await.map(Some)
        } else {
            let at = Duration::from_millis(100 + rng.below(2500));
            tokio::time::sleep(at).await;
            for _ in 0..rng.below(200) {
                tokio::task::yield_now().await;
            }
            Ok(None)
        };
        *elapsed_ms = clock.now_ms() - EPOCH_MS;
        if last {
            let _ = stop_tx.send(true);
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
            }
        }
        lock(world).now_ms = *elapsed_ms;
        out
    });
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(driver)));
    // Dropping the runtime drops every task still alive: the crash.
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        panics::within("dropping the runtime (the crash)", || drop(rt))
    }));
    match (out, dropped) {
        (Ok(out), Ok(())) => out,
        _ => Err("the life was cut short by a panic".into()),
    }
}

/// Submits the plan at its times; an append answered `Ok` is acknowledged.
async fn client(world: Arc<Mutex<World>>, router: Router, clock: SharedClock, start_ms: u64) {
    loop {
        let next = {
            let w = lock(&world);
            w.plan.iter().position(|p| p.sent == Sent::Not)
        };
        let Some(i) = next else { return };
        let p = lock(&world).plan[i].clone();
        let now = clock.now_ms() - EPOCH_MS;
        if p.at_ms > now {
            tokio::time::sleep(Duration::from_millis(p.at_ms - now)).await;
        }
        {
            let mut w = lock(&world);
            let dep_acked = |dep| {
                w.plan.iter().any(|q| q.op == Op::Invoke && q.id == dep && q.sent == Sent::Acked)
            };
            if let Some(dep) = p.after.filter(|dep| !dep_acked(*dep)) {
                w.violation(format!("the client's plan has {:?} {} before {dep}", p.op, p.id));
            }
            w.plan[i].sent = Sent::InFlight;
        }
        let _ = start_ms;
        let target = router.for_key(p.id.partition_key).clone();
        let records = records_of(&p);
        loop {
            match target.append(records.clone()).await {
                Ok(_) => {
                    let mut w = lock(&world);
                    w.plan[i].sent = Sent::Acked;
                    let t = clock.now_ms() - EPOCH_MS;
                    let op =
                        if p.op == Op::Invoke { String::new() } else { format!(" {:?}", p.op) };
                    w.trace.push(format!("{t} acked{op} {}", p.id));
                    break;
                }
                Err(e) if e.is_retryable() || matches!(e, AppendError::Fenced { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    lock(&world).violation(format!("the client's append failed for good: {e}"));
                    return;
                }
            }
        }
    }
}

/// Retention of the invocations that are kept: longer than any run, so they all stay.
const RETAINED_MS: u64 = 24 * 3600 * 1000;

/// What the client appends for `p`.
fn records_of(p: &Planned) -> Vec<Record> {
    let id = Bytes::copy_from_slice(&p.id.to_bytes());
    let kept = p.id.uuid % 2 == 0;
    let record = |kind| Record { header: None, kind: Some(kind) };
    let invoke = || {
        record(record::Kind::Invoke(Invoke {
            invocation_id: id.clone(),
            service: p.service.into(),
            handler: p.handler.into(),
            key: p.key.clone(),
            kind: kind_of(p.service, p.handler) as i32,
            input: Bytes::from(p.input.clone()),
            headers: vec![],
            sink: None,
            execute_at_ms: 0,
            // Half are kept (with their journals) past completion, in retained blocks.
            retention_ms: kept.then_some(RETAINED_MS),
            ack_request: 0,
            journal_retention_ms: kept.then_some(RETAINED_MS),
            idempotency_key: String::new(),
            caller: Bytes::new(),
        }))
    };
    let kill = || record(record::Kind::Kill(fsm::Kill { invocation_id: id.clone() }));
    match p.op {
        Op::Invoke => vec![invoke()],
        Op::Cancel => vec![record(record::Kind::Signal(fsm::Signal {
            invocation_id: id.clone(),
            index: fsm::SIGNAL_CANCEL,
            name: String::new(),
            outcome: None,
        }))],
        Op::Kill => vec![kill()],
        Op::EditState => vec![record(record::Kind::ModifyState(fsm::ModifyState {
            service: p.service.into(),
            key: p.key.clone(),
            entries: vec![fsm::StateEntry {
                key: Bytes::from_static(b"count"),
                value: Bytes::from_static(b"999999"),
            }],
            version: "stale".into(),
            ack_request: 0,
        }))],
        Op::Recreate => vec![
            kill(),
            record(record::Kind::Purge(fsm::Kill { invocation_id: id.clone() })),
            invoke(),
        ],
    }
}

/// Reads every table of a store.
fn dump(store: &PartitionStore) -> Result<Dump, String> {
    let r = store.begin_read().map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for t in Table::ALL {
        let mut rows = r.scan_prefix(t, &[], usize::MAX).map_err(|e| e.to_string())?;
        if t == Table::Meta {
            // Where the store is from is not part of what the log derives.
            rows.retain(|(k, _)| k.as_slice() != crate::store::schema::META_LOG_IDENTITY);
        }
        out.insert(t, rows);
    }
    Ok(out)
}

/// Runs the last life until every acknowledged (or possibly written) invocation completed
/// and nothing is left to do, or the settle time is over; then captures stores and logs.
async fn settle(
    world: &Arc<Mutex<World>>,
    router: &Router,
    log: &SharedLog,
    options: &Options,
    start_ms: u64,
    clock: &SharedClock,
) -> Result<FinalState, String> {
    let n = options.partitions;
    let deadline = start_ms + SETTLE_MS_MAX;
    let mut settled = false;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = clock.now_ms() - EPOCH_MS;
        let plan_done =
            lock(world).plan.iter().all(|p| !matches!(p.sent, Sent::Not | Sent::InFlight));
        if plan_done && quiet(router, n) {
            settled = true;
            break;
        }
        if now > deadline {
            break;
        }
    }
    // Let the last checkpoint and truncations land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut stores = Vec::new();
    let mut logs = Vec::new();
    for p in 0..n {
        let handle = &router.partitions[usize::from(p)];
        let store = handle.store().ok_or_else(|| {
            format!("partition {p} is not running at the end: {:?}", handle.liveness())
        })?;
        let dumped = dump(&store)?;
        let applied =
            store.begin_read().and_then(|r| r.lsn_applied()).map_err(|e| e.to_string())?;
        drop(store);
        let trim = log.tail(log_of(p)).lsn_trim;
        let mut reader = log.reader(log_of(p), trim.next());
        let mut records = Vec::new();
        while trim.0 + (records.len() as u64) < applied.0 {
            match reader.try_next() {
                Ok(Some(r)) => records.push(r),
                Ok(None) => break,
                Err(e) => return Err(format!("reading partition {p}'s log: {e}")),
            }
        }
        stores.push(dumped);
        if !options.trim_log {
            logs.push(Some(records));
            continue;
        }
        let mut w = lock(world);
        if trim > segment_format::Lsn::INVALID {
            w.trimmed += 1;
        }
        let a = &w.archives[usize::from(p)];
        // What is left of the log must be what was read when it became durable.
        let mismatch = records
            .iter()
            .find(|r| a.records.get((r.lsn.0 - 1) as usize).is_some_and(|x| x != *r))
            .map(|r| r.lsn);
        let whole = match &a.missed {
            Some(why) => Err(why.clone()),
            None if (a.records.len() as u64) < applied.0 => Err(format!(
                "the archive ends at LSN {}, the store applied {applied}",
                a.records.len()
            )),
            None => Ok(a.records[..applied.0 as usize].to_vec()),
        };
        if let Some(lsn) = mismatch {
            w.violation(format!(
                "partition {p}: the log's record at LSN {lsn} differs from the one read when it became durable"
            ));
        }
        match whole {
            Ok(records) => {
                w.trace.push(format!(
                    "partition {p}: log trimmed up to LSN {trim}, checked from the archive"
                ));
                logs.push(Some(records));
            }
            Err(why) => {
                let s = format!(
                    "partition {p}: the checks that need the whole log (rebuild, run after durable, timer fired twice) were skipped: the log is trimmed up to LSN {trim} and {why}"
                );
                w.trace.push(s.clone());
                w.skipped.push(s);
                logs.push(None);
            }
        }
    }
    Ok(FinalState { stores, logs, settled })
}

/// Takes one record read from partition `p`'s log into its archive; `false` once archiving
/// stops (a hole, or a failed log: the next life goes on from the archive's end).
fn archive(
    world: &Mutex<World>,
    p: usize,
    r: Result<segment_format::Record, crate::log::LogError>,
) -> bool {
    let mut w = lock(world);
    let a = &mut w.archives[p];
    if a.missed.is_some() {
        return false;
    }
    match r {
        Ok(r) if r.lsn == a.next() => {
            a.records.push(r);
            true
        }
        Ok(r) => {
            a.missed = Some(format!("the archiver read LSN {} where {} was next", r.lsn, a.next()));
            false
        }
        Err(e @ crate::log::LogError::Trimmed { .. }) => {
            a.missed = Some(format!("the archiver missed records: {e}"));
            false
        }
        Err(_) => false,
    }
}

/// Whether nothing is left to do: no invocation in flight, no delivery, no timer.
fn quiet(router: &Router, n: u16) -> bool {
    for p in 0..n {
        let Some(store) = router.partitions[usize::from(p)].store() else { return false };
        let Ok(r) = store.begin_read() else { return false };
        for t in [Table::Runnable, Table::Outbox, Table::Timers, Table::Inbox] {
            if !r.scan_prefix(t, &[], 1).map(|v| v.is_empty()).unwrap_or(false) {
                return false;
            }
        }
        let Ok(statuses) = r.scan_prefix(Table::InvocationStatus, &[], usize::MAX) else {
            return false;
        };
        for (_, v) in statuses {
            match fsm::Status::decode(v.as_slice()) {
                Ok(st) if st.phase() == Phase::Completed => {}
                _ => return false,
            }
        }
    }
    true
}

/// The invocation a record acts on that must leave it as it is once completed: what its
/// attempts did, its timers, answers to it, signals, kills.
fn acted_on(rec: &Record) -> Option<InvocationId> {
    let raw = match &rec.kind {
        Some(record::Kind::Effect(e)) => &e.invocation_id,
        Some(record::Kind::TimerFired(t)) => &t.invocation_id,
        Some(record::Kind::Response(r)) => &r.invocation_id,
        Some(record::Kind::Signal(s)) => &s.invocation_id,
        Some(record::Kind::Kill(k)) => &k.invocation_id,
        _ => return None,
    };
    InvocationId::from_bytes(raw).ok()
}

/// What an invocation ended with.
fn outcome_of(st: &fsm::Status) -> Option<outcome::Result> {
    st.outcome.as_ref().and_then(|o| o.result.clone())
}

/// Whether `got` is an outcome `e` allows.
fn outcome_is(e: &Expect, got: Option<&outcome::Result>) -> bool {
    use outcome::Result::{Failure, Value};
    match (e, got) {
        (Expect::Success | Expect::SuccessOrCanceled, Some(Value(_))) => true,
        (Expect::Output(want), Some(Value(v))) => v == want.as_bytes(),
        (Expect::Failure(code, prefix), Some(Failure(f))) => {
            f.code == *code && f.message.starts_with(prefix)
        }
        (Expect::SuccessOrCanceled, Some(Failure(f))) => (f.code, &*f.message) == (409, "canceled"),
        (Expect::Promise, _) => true,
        _ => false,
    }
}

/// The calls a cancel or a kill ended with their caller: a canceled `Caller.call_hang`'s
/// callee is canceled, a killed `Holder.hold`'s is killed (an unfinished one is caught as
/// stuck, since only a cancel or a kill ends `Hang.wait`); a canceled `Caller.call_add`
/// that succeeded had a callee that did.
fn check_callees(w: &World, statuses: &BTreeMap<InvocationId, fsm::Status>, v: &mut Vec<String>) {
    for p in w.plan.iter().filter(|p| p.op == Op::Invoke) {
        let Some(caller) = statuses.get(&p.id).filter(|st| st.phase() == Phase::Completed) else {
            continue;
        };
        let callees = w.callees.get(&p.id).cloned().unwrap_or_default();
        let (want, known) = match (p.service, p.handler, &p.expect) {
            ("Caller", "call_hang", _) => (Expect::Failure(409, "canceled"), true),
            ("Holder", "hold", _) => (Expect::Failure(409, "killed"), false),
            ("Caller", "call_add", Expect::SuccessOrCanceled) => match outcome_of(caller) {
                Some(outcome::Result::Value(_)) => (Expect::Success, true),
                _ => (Expect::SuccessOrCanceled, true),
            },
            _ => continue,
        };
        if known && callees.is_empty() {
            v.push(format!("{}/{} {}: its callee is unknown", p.service, p.handler, p.id));
        }
        for c in callees {
            let got = statuses.get(&c).filter(|st| st.phase() == Phase::Completed).map(outcome_of);
            if !got.as_ref().is_some_and(|got| outcome_is(&want, got.as_ref())) {
                v.push(format!(
                    "{}/{} {}: its callee {c} expected {want:?}, got {got:?}",
                    p.service, p.handler, p.id
                ));
            }
        }
    }
}

/// The workflow `Wf` of each key: one resolver output `won`, the others lost to its value,
/// and the run's output is that value (or the 409 `canceled` failure, if it was canceled).
fn check_promises(
    plan: &[Planned],
    statuses: &BTreeMap<InvocationId, fsm::Status>,
    v: &mut Vec<String>,
) {
    let of = |handler: &'static str| {
        plan.iter().filter(move |p| p.op == Op::Invoke && (p.service, p.handler) == ("Wf", handler))
    };
    let output = |p: &Planned| match statuses.get(&p.id).and_then(outcome_of) {
        Some(outcome::Result::Value(v)) => String::from_utf8_lossy(&v).into_owned(),
        Some(outcome::Result::Failure(f)) => format!("{} {}", f.code, f.message),
        None => "nothing".into(),
    };
    for run in of("run") {
        let resolvers: Vec<&Planned> = of("resolve").filter(|r| r.key == run.key).collect();
        let done =
            |p: &Planned| statuses.get(&p.id).is_some_and(|st| st.phase() == Phase::Completed);
        if !done(run) || !resolvers.iter().all(|r| done(r)) {
            continue; // reported as stuck
        }
        let value = output(run);
        let canceled = plan.iter().any(|q| q.op == Op::Cancel && q.id == run.id);
        let winners: Vec<&str> =
            resolvers.iter().filter(|r| output(r) == "won").map(|r| r.input.as_str()).collect();
        let lost = format!("lost to {}", winners.first().unwrap_or(&""));
        let run_ok =
            winners.first() == Some(&value.as_str()) || (canceled && value == "409 canceled");
        if winners.len() != 1
            || !run_ok
            || resolvers.iter().any(|r| ![lost.as_str(), "won"].contains(&output(r).as_str()))
        {
            let got: Vec<(String, String)> =
                resolvers.iter().map(|r| (r.input.clone(), output(r))).collect();
            v.push(format!(
                "workflow Wf/{}: the run got {value}, its resolvers (input, output) {got:?}",
                run.key
            ));
        }
    }
}

/// The checks of the module documentation.
fn check(options: &Options, world: &Arc<Mutex<World>>, state: &FinalState) {
    let mut v: Vec<String> = Vec::new();
    let n = options.partitions;
    if !state.settled {
        v.push(format!(
            "not settled within {SETTLE_MS_MAX} ms of virtual time after the last fault"
        ));
    }
    // Statuses by id, across partitions.
    let mut statuses: BTreeMap<InvocationId, fsm::Status> = BTreeMap::new();
    for (p, tables) in state.stores.iter().enumerate() {
        // The creation-time index holds exactly one row per status, at its creation time.
        let mut index_want: std::collections::BTreeSet<Vec<u8>> = Default::default();
        for (k, val) in &tables[&Table::InvocationStatus] {
            let id = crate::store::schema::decode_invocation_status_key(k)
                .map_err(|e| e.to_string())
                .and_then(|raw| InvocationId::from_bytes(&raw).map_err(|e| e.to_string()));
            match (id, fsm::Status::decode(val.as_slice())) {
                (Ok(id), Ok(st)) => {
                    index_want
                        .insert(crate::store::schema::created_key(st.created_ms, &id.to_bytes()));
                    statuses.insert(id, st);
                }
                _ => v.push(format!("partition {p}: an undecodable status")),
            }
        }
        let index_have: std::collections::BTreeSet<Vec<u8>> =
            tables[&Table::Created].iter().map(|(k, _)| k.clone()).collect();
        let (missing, extra) = (
            index_want.difference(&index_have).count(),
            index_have.difference(&index_want).count(),
        );
        if missing + extra > 0 {
            v.push(format!(
                "partition {p}: the creation index misses {missing} statuses and has {extra} rows \
                 without one"
            ));
        }
        for t in [
            Table::Runnable,
            Table::Outbox,
            Table::Timers,
            Table::Inbox,
            Table::ObjectLock,
            Table::Journal,
        ] {
            // A completed invocation keeps its journal for its journal retention: exactly its
            // `journal_len` entries.
            let kept = |k: &Vec<u8>| {
                t == Table::Journal
                    && crate::store::schema::decode_journal_key(k)
                        .ok()
                        .and_then(|(raw, index)| {
                            InvocationId::from_bytes(&raw).ok().map(|id| (id, index))
                        })
                        .and_then(|(id, index)| statuses.get(&id).map(|st| (st, index)))
                        .is_some_and(|(st, index)| {
                            st.phase() == fsm::Phase::Completed
                                && !st.journal_archived
                                && index < st.journal_len
                        })
            };
            let left = tables[&t].iter().filter(|(k, _)| !kept(k)).count();
            if left > 0 {
                v.push(format!("partition {p}: {left} rows left in {t:?} after settling"));
            }
        }
        // Every retained invocation is in the block its status names, with its whole journal
        // when the block holds it.
        let mut blocks: BTreeMap<Vec<u8>, Vec<fsm::retained::Member>> = BTreeMap::new();
        for (k, val) in &tables[&Table::Retained] {
            match fsm::retained::Block::decode(val).and_then(|b| b.decode_members()) {
                Ok(ms) => {
                    blocks.insert(k.clone(), ms);
                }
                Err(e) => v.push(format!("partition {p}: retained block {k:?}: {e}")),
            }
        }
        for (k, val) in &tables[&Table::InvocationStatus] {
            let (Ok(raw), Ok(st)) = (
                crate::store::schema::decode_invocation_status_key(k),
                fsm::Status::decode(val.as_slice()),
            ) else {
                continue;
            };
            let Ok(id) = InvocationId::from_bytes(&raw) else { continue };
            if st.phase() != Phase::Completed || st.purge_at_ms == 0 {
                continue;
            }
            let key = fsm::retained::block_key(st.purge_at_ms, st.retained_lsn);
            let member = blocks
                .get(key.as_slice())
                .and_then(|ms| ms.iter().find(|m| m.id == id && m.life == st.life));
            match member.map(|m| m.journal.as_ref().map(|j| j.len())) {
                None => v.push(format!("partition {p}: retained {id} is in no retained block")),
                Some(j) if st.journal_archived && j != Some(st.journal_len as usize) => {
                    v.push(format!(
                        "partition {p}: {id}'s kept journal of {} entries is not in its block ({j:?})",
                        st.journal_len
                    ))
                }
                Some(_) => {}
            }
        }
    }
    let w = lock(world);
    let mut trace = Vec::new();
    // 1. Every acknowledged invocation (and every one whose append may have landed) finished
    //    with the outcome its handler gives; an id created again, with its new life's (either
    //    life's when the re-creation may or may not have landed).
    let mut counted = Vec::new();
    for p in w.plan.iter().filter(|p| p.op == Op::Invoke) {
        let st = statuses.get(&p.id);
        if p.sent != Sent::Acked && st.is_none() {
            continue;
        }
        if p.expect == Expect::Refused {
            if st.is_some() {
                v.push(format!("invocation {} with a key over the limit was stored", p.id));
            }
            continue;
        }
        counted.push(p.clone());
        let Some(st) = st else {
            v.push(format!(
                "acknowledged invocation {} ({}/{}) is missing",
                p.id, p.service, p.handler
            ));
            continue;
        };
        if st.phase() != Phase::Completed {
            v.push(format!(
                "invocation {} ({}/{}) is stuck in {:?}",
                p.id,
                p.service,
                p.handler,
                st.phase()
            ));
            continue;
        }
        let again = w.plan.iter().find(|q| q.op == Op::Recreate && q.id == p.id);
        let expected = match again {
            Some(q) if q.sent == Sent::Acked => vec![&q.expect],
            Some(q) if q.sent == Sent::Maybe => vec![&p.expect, &q.expect],
            _ => vec![&p.expect],
        };
        let got = outcome_of(st);
        if !expected.iter().any(|e| outcome_is(e, got.as_ref())) {
            v.push(format!(
                "invocation {} ({}/{}) expected {}, got {got:?}",
                p.id,
                p.service,
                p.handler,
                expected.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>().join(" or ")
            ));
        }
    }
    for p in w.plan.iter().filter(|p| p.resend && p.op == Op::Invoke) {
        let got = statuses.get(&p.id).map(|st| (st.phase(), outcome_of(st)));
        let got = match got {
            Some((_, Some(outcome::Result::Value(v)))) => String::from_utf8_lossy(&v).into_owned(),
            Some((_, Some(outcome::Result::Failure(f)))) => format!("{} {}", f.code, f.message),
            other => format!("{other:?}"),
        };
        trace.push(format!("{}/{} {}: {got}", p.service, p.handler, p.id));
    }
    check_callees(&w, &statuses, &mut v);
    check_promises(&w.plan, &statuses, &mut v);
    // 2. Reference model of object state.
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut touches: BTreeMap<String, i64> = BTreeMap::new();
    // Per (service, key): the items each sender emitted.
    let mut logs: BTreeMap<(&str, String), BTreeMap<String, u32>> = BTreeMap::new();
    for p in &counted {
        match (p.service, p.handler) {
            ("Counter", "add") => {
                *counts.entry(p.key.clone()).or_default() += p.input.parse::<i64>().unwrap_or(0)
            }
            ("Caller", "call_add") => {
                // A canceled caller's add counts if its callee ran.
                let callees = w.callees.get(&p.id).into_iter().flatten();
                let ran = callees.filter_map(|c| statuses.get(c).and_then(outcome_of));
                if p.expect != Expect::SuccessOrCanceled
                    || ran.filter(|o| matches!(o, outcome::Result::Value(_))).count() > 0
                {
                    let (key, n) = p.input.split_once(':').unwrap_or(("", "0"));
                    *counts.entry(key.to_string()).or_default() += n.parse::<i64>().unwrap_or(0);
                }
            }
            ("Holder", "touch") => *touches.entry(p.key.clone()).or_default() += 1,
            ("Caller", "send_seq" | "send_big") => {
                let target = if p.handler == "send_seq" { "Log" } else { "Sink" };
                let mut parts = p.input.split(':');
                let (key, tag, k) = (
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or(""),
                    parts.next().unwrap_or("0"),
                );
                logs.entry((target, key.to_string()))
                    .or_default()
                    .insert(tag.to_string(), k.parse().unwrap_or(0));
            }
            _ => {}
        }
    }
    let state_of = |service: &str, key: &str, name: &str| -> Option<Vec<u8>> {
        let pk = fsm::partition_key_of(key);
        let p = partition_of(pk, n);
        let k = crate::store::schema::state_key(service, key.as_bytes(), name.as_bytes());
        state.stores[usize::from(p)][&Table::State]
            .iter()
            .find(|(sk, _)| *sk == k)
            .map(|(_, v)| v.clone())
    };
    let number_of = |service: &str, key: &str, name: &str| {
        state_of(service, key, name)
            .map(|v| String::from_utf8_lossy(&v).parse::<i64>().unwrap_or(-1))
            .unwrap_or(0)
    };
    for key in ["k0", "k1", "k2", "k3"] {
        let want = counts.get(key).copied().unwrap_or(0);
        let got = number_of("Counter", key, "count");
        if got != want {
            v.push(format!("Counter/{key}: count is {got}, the model says {want}"));
        }
        // Each touch ran once, the holders were killed before anything after their call.
        let want = touches.get(key).copied().unwrap_or(0);
        let got = number_of("Holder", key, "touched");
        if got != want {
            v.push(format!("Holder/{key}: touched {got} times, the model says {want}"));
        }
        if state_of("Holder", key, "after").is_some() {
            v.push(format!("Holder/{key}: a killed holder ran past its call"));
        }
        for service in ["Log", "Sink"] {
            let items = state_of(service, key, "items")
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for item in items.split(',').filter(|s| !s.is_empty()) {
                let (tag, i) = item.split_once('.').unwrap_or((item, "0"));
                seen.entry(tag.to_string()).or_default().push(i.parse().unwrap_or(u32::MAX));
            }
            let want_logs = logs.get(&(service, key.to_string())).cloned().unwrap_or_default();
            for (tag, k) in &want_logs {
                let got = seen.get(tag).cloned().unwrap_or_default();
                let expected: Vec<u32> = (0..*k).collect();
                if got != expected {
                    v.push(format!(
                        "{service}/{key}: sender {tag} delivered {got:?}, emitted {expected:?} in this order"
                    ));
                }
            }
            for tag in seen.keys() {
                if !want_logs.contains_key(tag) {
                    v.push(format!("{service}/{key}: items from {tag}, which never ran"));
                }
            }
        }
    }
    // 3. Rebuild each store from its log; learn which run proposals and timer firings took.
    let mut durable_runs: BTreeMap<(InvocationId, u32), segment_format::Lsn> = BTreeMap::new();
    let mut timers_fired: BTreeMap<(u64, InvocationId, u32), usize> = BTreeMap::new();
    for p in 0..n {
        let Some(records) = &state.logs[usize::from(p)] else { continue };
        let store = match PartitionStore::open_in_memory() {
            Ok(s) => s,
            Err(e) => {
                v.push(format!("rebuild: {e}"));
                continue;
            }
        };
        let mut fsm = Fsm::new(p);
        // A configuration no life had: a rebuild that depends on configuration differs.
        fsm.defect_retry = Some(REBUILD_RETRY);
        let mut last = segment_format::Lsn::INVALID;
        let mut txn = match store.begin_write() {
            Ok(t) => t,
            Err(e) => {
                v.push(format!("rebuild: {e}"));
                continue;
            }
        };
        // The whole log as one batch: a store must not depend on where batches ended.
        let mut out = fsm::Batch::new();
        for r in records {
            let rec = match Record::decode(r.body.as_slice()) {
                Ok(rec) => rec,
                Err(e) => {
                    v.push(format!(
                        "partition {p}: the record at LSN {} cannot be decoded: {e}",
                        r.lsn
                    ));
                    last = r.lsn;
                    continue;
                }
            };
            let before = match &rec.kind {
                Some(record::Kind::Effect(e)) => match &e.kind {
                    Some(fsm::effect::Kind::ProposeRun(pr)) => {
                        InvocationId::from_bytes(&e.invocation_id).ok().map(|id| {
                            (
                                id,
                                pr.completion_id,
                                txn.status(&id)
                                    .ok()
                                    .flatten()
                                    .map(|s| s.completed_ids.contains(&pr.completion_id)),
                            )
                        })
                    }
                    _ => None,
                },
                _ => None,
            };
            let completed = acted_on(&rec).and_then(|id| {
                let st = txn.status(&id).ok().flatten();
                st.filter(|st| st.phase() == Phase::Completed).map(|st| (id, st))
            });
            let applied = fsm.apply(&mut txn, &rec, r.lsn.0, r.timestamp_ms, &mut out);
            out.actions.clear();
            if let Some((id, st)) = completed {
                if txn.status(&id).ok().flatten().as_ref() != Some(&st) {
                    v.push(format!(
                        "partition {p}: the record at LSN {} changed the completed invocation {id}",
                        r.lsn
                    ));
                }
            }
            if let Some((id, cid, Some(false))) = before {
                if txn.status(&id).ok().flatten().is_some_and(|s| s.completed_ids.contains(&cid)) {
                    durable_runs.entry((id, cid)).or_insert(r.lsn);
                }
            }
            if let (Ok(Applied::Yes), Some(record::Kind::TimerFired(t))) = (&applied, &rec.kind) {
                if let Ok(id) = InvocationId::from_bytes(&t.invocation_id) {
                    *timers_fired.entry((t.wake_ms, id, t.completion_id)).or_default() += 1;
                }
            }
            match applied {
                Ok(_) => {}
                Err(fsm::ApplyError::Store(e)) => {
                    v.push(format!("rebuild of partition {p}: at LSN {}: {e}", r.lsn))
                }
                // The processor skips such a record with a warning; nothing the simulated
                // node writes may be one.
                Err(fsm::ApplyError::Invalid { reason }) => v.push(format!(
                    "partition {p}: the record at LSN {} cannot be applied: {reason}",
                    r.lsn
                )),
            }
            last = r.lsn;
        }
        if let Err(e) = fsm.finish(&mut txn, &mut out) {
            v.push(format!("rebuild of partition {p}: finishing the batch: {e}"));
        }
        let _ = crate::store::WriteView::set_lsn_applied(&mut txn, last);
        if let Err(e) = txn.commit(false) {
            v.push(format!("rebuild: {e}"));
            continue;
        }
        match dump(&store) {
            Ok(rebuilt) => {
                let live = &state.stores[usize::from(p)];
                for t in Table::ALL {
                    if rebuilt[&t] != live[&t] {
                        v.push(format!(
                            "partition {p}: the store rebuilt from the log differs in {t:?} ({} rows rebuilt, {} live)",
                            rebuilt[&t].len(),
                            live[&t].len()
                        ));
                    }
                }
            }
            Err(e) => v.push(format!("rebuild: {e}")),
        }
    }
    // 4. No run body ran after its result was durable.
    for ((id, cid), execs) in &w.runs {
        if let Some(lsn) = durable_runs.get(&(*id, *cid)) {
            for (k, e) in execs.iter().enumerate() {
                if e.tail >= *lsn {
                    v.push(format!(
                        "run {cid} of {id} ran again (execution {k}) after its result was durable at LSN {lsn} (the log's tail was {})",
                        e.tail
                    ));
                }
            }
        }
    }
    // 5. No timer fired twice.
    for ((wake, id, cid), count) in timers_fired {
        if count > 1 {
            v.push(format!("timer {cid} of {id} at {wake} fired {count} times"));
        }
    }
    drop(w);
    let mut w = lock(world);
    w.trace.extend(trace);
    for x in v {
        w.violation(x);
    }
    let mut summary = String::new();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    state.stores.hash(&mut h);
    let _ = write!(summary, "settled {} stores {:016x}", state.settled, h.finish());
    w.trace.push(summary);
}
