//! Node start-up, supervision and shutdown: binds the listeners, opens the data directory
//! (WAL, schema), starts one invoker and one processor per partition, serves ingress, admin
//! and the node endpoint, divides the memory budget among the components, drains in-flight
//! requests on shutdown, and stops the whole process when any component fails.
//!
//! Invariants:
//! - Every listener is bound before the data directory is opened (`listeners::bind_all`).
//! - Shutdown order: stop accepting, let in-flight requests finish (at most
//!   `shutdown-timeout`), then stop the partitions (they checkpoint), then remove the socket
//!   files. Accepted work that did not finish is in the log and resumes on the next start.
//! - The number of partitions of a data directory is fixed when it is created
//!   (`metadata/node.json`); changing the configuration later does not remap keys.
//! - Fail-stop: a component that ends on its own (a processor, an invoker, a server, the WAL
//!   writer) ends the process with a non-zero exit and one message naming the cause; nothing
//!   limps on with a dead partition. A full disk is not a failure: components wait it out.
//! - Health endpoints answer 200 only while every partition runs.
//! - Every component's memory comes from one budget ([`Budget`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::fsm::{Fsm, RetryPolicy};
use crate::listeners::{ActivatedFd, BoundAddr, Listener, Service};
use crate::log::SharedLog;
use crate::partition::{processor, Handle, Router, Waiters};
use crate::schema::Registry;
use crate::store::PartitionStore;
use crate::wal::{self, Wal};
use crate::{admin, ingress, invoker};

/// What the supervisor says of a component that returned without an error.
const ENDED_UNEXPECTEDLY: &str = "it ended unexpectedly";
/// How long the supervisor waits, after a component ended without an error, for another to
/// report the failure that made it end.
const CAUSE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Facts about a data directory that never change after it was created.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct NodeMeta {
    num_partitions: u16,
    /// The function that maps keys to partition keys (`fsm::PARTITION_KEY_HASH`). Partition
    /// keys are inside invocation ids and store keys, so a directory only ever runs with the
    /// function it was created with. Absent in directories made before the marker existed;
    /// those already used the current function (older hashes went with older store schemas,
    /// which the stores refuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partition_key_hash: Option<String>,
}

const NODE_META_FILE: &str = "metadata/node.json";

/// A start-up failure, or a fatal failure while running, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {dir}: {message}")]
    DataDir { dir: String, message: String },
    #[error("{0}")]
    Wal(#[from] wal::WalError),
    #[error("{0}")]
    Listen(#[from] crate::listeners::ListenError),
    /// A component failed while the node ran; the node stopped.
    #[error("stopped because {component} failed: {cause}")]
    Fatal { component: String, cause: String },
}

/// Addresses the node listens on and advertises, once started.
#[derive(Clone, Debug)]
pub struct Bound {
    pub listeners: Vec<(Service, BoundAddr)>,
    /// What ingress, admin and fabric advertise, in [`Service::ALL`] order.
    pub advertised: [String; 3],
}

impl Bound {
    /// The advertised URL of a service.
    pub fn advertised(&self, s: Service) -> &str {
        &self.advertised[s.index()]
    }
}

fn data_dir_err(dir: &Path, e: impl std::fmt::Display) -> StartError {
    StartError::DataDir { dir: dir.display().to_string(), message: e.to_string() }
}

fn num_partitions(base: &Path, configured: u16) -> Result<u16, StartError> {
    let path = base.join(NODE_META_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut meta: NodeMeta = serde_json::from_slice(&bytes)
                .map_err(|e| data_dir_err(base, format!("{}: {e}", path.display())))?;
            if meta.num_partitions == 0 || usize::from(meta.num_partitions) > wal::LOGS_MAX {
                return Err(data_dir_err(
                    base,
                    format!(
                        "{}: num_partitions is {}, it must be 1 to {}; the file was edited or damaged",
                        path.display(),
                        meta.num_partitions,
                        wal::LOGS_MAX
                    ),
                ));
            }
            match meta.partition_key_hash.as_deref() {
                Some(h) if h == crate::fsm::PARTITION_KEY_HASH => {}
                Some(h) => {
                    return Err(data_dir_err(
                        base,
                        format!(
                            "{}: its keys were placed with partition-key hash `{h}`, this version uses `{}`; run the version that created it",
                            path.display(),
                            crate::fsm::PARTITION_KEY_HASH
                        ),
                    ))
                }
                None => {
                    meta.partition_key_hash = Some(crate::fsm::PARTITION_KEY_HASH.to_string());
                    let bytes =
                        serde_json::to_vec_pretty(&meta).map_err(|e| data_dir_err(base, e))?;
                    crate::fsutil::write_atomic(&path, &bytes).map_err(|e| data_dir_err(base, e))?;
                }
            }
            if meta.num_partitions != configured {
                tracing::info!(
                    "this data directory has {} partitions; default-num-partitions = {configured} applies only to new directories",
                    meta.num_partitions
                );
            }
            Ok(meta.num_partitions)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = NodeMeta {
                num_partitions: configured,
                partition_key_hash: Some(crate::fsm::PARTITION_KEY_HASH.to_string()),
            };
            let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| data_dir_err(base, e))?;
            crate::fsutil::write_atomic(&path, &bytes).map_err(|e| data_dir_err(base, e))?;
            Ok(configured)
        }
        Err(e) => Err(data_dir_err(base, e)),
    }
}

/// How the memory budget is divided. Bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// Cache of each partition store.
    pub store_cache_bytes: usize,
    /// The WAL's recent-frame cache.
    pub log_cache_bytes: usize,
    /// Request bodies held by the ingress at once.
    pub ingress_bodies_bytes: usize,
    /// Eager state sent with one start message.
    pub eager_state_bytes: usize,
    /// Journals and eager state of the running attempts of one partition's invoker, together.
    pub attempt_inputs_bytes: usize,
}

impl Budget {
    /// Half the budget to the stores' caches, a twentieth to the log cache, a quarter to
    /// ingress bodies, and a fifth to the invokers (the journals and eager state of running
    /// attempts, split evenly per partition). Restate's keys for the first two pin their
    /// shares.
    pub fn divide(config: &Config, partitions: u16) -> Budget {
        let total = config.memory.budget_bytes;
        let stores = config.memory.store_caches_bytes.unwrap_or(total / 2);
        let log = config.memory.log_cache_bytes.unwrap_or(total / 20);
        let invokers = total / 5;
        Budget {
            store_cache_bytes: (stores / u64::from(partitions.max(1))).max(1 << 20) as usize,
            log_cache_bytes: log.max(256 * 1024) as usize,
            ingress_bodies_bytes: (total / 4).max(1 << 20) as usize,
            eager_state_bytes: (invokers / 64).clamp(64 * 1024, 1 << 20) as usize,
            attempt_inputs_bytes: (invokers / u64::from(partitions.max(1))).max(1 << 20) as usize,
        }
    }
}

/// Turns on the WAL's EIO fault injection (the fail-stop test): durable writes fail after
/// this many succeeded.
pub const EIO_AFTER_ENV: &str = "RATCHET_TEST_WAL_EIO_AFTER_WRITES";

/// Longest time the ingress holds back accepting while partitions start.
const INGRESS_GATE_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// A supervised task: its name and how it ended.
type TaskEnd = (String, Result<(), String>);

/// Runs a node until `shutdown` resolves or a component fails. `on_ready` is called once it
/// serves requests. `query` builds the engine behind `POST /query` (none: 503).
pub async fn run(
    config: Config,
    activated: Vec<ActivatedFd>,
    query: Option<admin::query::EngineFactory>,
    shutdown: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), StartError> {
    let base: PathBuf = config.base_dir.clone();
    // Listeners first: a taken port or a bad socket fails before the data is touched.
    let mut listeners = crate::listeners::bind_all(&config, activated)?;
    if let Some(endpoint) = &config.tracing.endpoint {
        crate::otel::start(endpoint, &config.node_name);
    }
    let handle_metrics = crate::metrics::install().is_some();
    for key in &config.unknown_keys {
        tracing::warn!("ignoring unknown configuration key `{key}`");
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(signer) = &config.worker.request_identity {
        tracing::info!(
            "signing requests to deployments with request identity key {} (the public key \
             to give SDKs)",
            signer.key_id()
        );
    }
    let n = num_partitions(&base, config.default_num_partitions)?;
    let budget = Budget::divide(&config, n);
    let clock: SharedClock = crate::clock::system();

    let mut wal_opts = wal::Options::new(base.join("wal"));
    wal_opts.engine = config.wal.engine.parse().unwrap_or_default();
    wal_opts.segment_bytes = config.wal.segment_size_bytes;
    // One flush must fit a segment with room to spare.
    wal_opts.flush_bytes_max =
        wal_opts.flush_bytes_max.min((config.wal.segment_size_bytes / 4).max(4096) as usize);
    wal_opts.recent_frames_bytes_max = budget.log_cache_bytes;
    wal_opts.clock = clock.clone();
    let record_bytes_max = wal_opts.record_bytes_max();
    let disk = wal::disk::open_dir(&wal_opts.dir, wal_opts.engine)
        .map_err(|e| wal::WalError::io("open", &e))?;
    // Fault injection for the fail-stop test only (see `wal::disk::fault`).
    let disk: Box<dyn wal::disk::Disk> =
        match std::env::var(EIO_AFTER_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
            Some(n) => {
                tracing::warn!("{EIO_AFTER_ENV}={n}: durable WAL writes fail with EIO after {n}");
                Box::new(wal::disk::fault::EioAfter::new(disk, n))
            }
            None => disk,
        };
    let wal_ = Arc::new(processor::tokio_blocking(|| Wal::open_with_disk(disk, wal_opts))?);
    tracing::info!(engine = wal_.engine(), partitions = n, dir = %base.display(), "WAL open");
    let log: SharedLog = wal_.clone();

    let registry = Arc::new(Registry::open(&base).map_err(|e| data_dir_err(&base, e))?);
    registry.set_retention_defaults(config.worker.retention);
    let boot_nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let handles: Vec<Handle> = (0..n).map(|i| Handle::new(i, log.clone())).collect();
    let router =
        Router { partitions: Arc::new(handles), waiters: Arc::new(Waiters::new(boot_nonce)) };
    let retry = RetryPolicy {
        initial_ms: config.worker.retry_initial_interval.as_millis() as u64,
        factor: config.worker.retry_factor,
        max_interval_ms: config.worker.retry_max_interval.as_millis() as u64,
        attempts_max: config.worker.retry_attempts_max,
        pause_on_max: config.worker.retry_pause_on_max,
    };
    // A message must fit one log record with room for the record's own fields.
    let message_bytes_max = (record_bytes_max.saturating_sub(64 * 1024)).min(32 << 20) as u32;
    let inv_opts = invoker::Options {
        inactivity_timeout: config.worker.inactivity_timeout,
        abort_timeout: config.worker.abort_timeout,
        protocol_v7: config.worker.protocol_v7,
        message_bytes_max,
        inflight_max: config.worker.invocations_inflight_max,
        queue_max: config.worker.invoker_queue_max,
        eager_state_bytes_max: budget.eager_state_bytes,
        inputs_bytes_max: budget.attempt_inputs_bytes,
        retry,
        ..invoker::Options::default()
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<TaskEnd> = JoinSet::new();
    let parts_dir = base.join("partitions");
    std::fs::create_dir_all(&parts_dir).map_err(|e| data_dir_err(&base, e))?;
    let store_opts = crate::store::Options { cache_bytes_max: budget.store_cache_bytes };
    for i in 0..n {
        let path = parts_dir.join(crate::store::schema::partition_file_name(u32::from(i)));
        let opts = store_opts.clone();
        let open: processor::StoreOpener =
            Box::new(move || PartitionStore::open_with(&path, &opts));
        let (inv, inv_handle) = invoker::Invoker::new(
            inv_opts.clone(),
            registry.clone(),
            router.partitions[usize::from(i)].clone(),
            invoker::http::Http2::new(config.worker.request_identity.clone()),
            clock.clone(),
        );
        tasks.spawn(async move {
            (format!("the invoker of partition {i}"), inv.run().await.map_err(|e| e.to_string()))
        });
        let mut popts = processor::Options::new(i);
        popts.retention.interval = config.worker.cleanup_interval;
        let p = processor::Processor::new(
            popts,
            log.clone(),
            open,
            Fsm::new(i),
            router.partitions[usize::from(i)].clone(),
            router.clone(),
            inv_handle,
            clock.clone(),
        );
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            let partition = i.to_string();
            // A single node leads every partition it runs.
            metrics::counter!(crate::metrics::PARTITION_START, "partition" => partition.clone(), "type" => "leader")
                .increment(1);
            // Both stop series exist from the start, so dashboards see zero, not nothing.
            for how in ["shutdown", "failure"] {
                metrics::counter!(crate::metrics::PARTITION_STOP, "partition" => partition.clone(), "type" => how)
                    .increment(0);
            }
            let r = p.run(rx).await.map_err(|e| e.to_string());
            let how = if r.is_ok() { "shutdown" } else { "failure" };
            metrics::counter!(crate::metrics::PARTITION_STOP, "partition" => partition, "type" => how)
                .increment(1);
            (format!("partition {i}"), r)
        });
    }
    {
        let w = wal_.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            tokio::select! {
                e = w.wait_poisoned() => ("the WAL".to_string(), Err(e.to_string())),
                _ = stop.wait_for(|s| *s) => ("the WAL".to_string(), Ok(())),
            }
        });
    }

    let bound = Bound { listeners: listeners.describe(), advertised: listeners.advertised.clone() };
    let ingress_url = listeners.advertised(Service::Ingress).to_string();
    let ingress_state = Arc::new(ingress::IngressState::new(
        registry.clone(),
        router.clone(),
        ingress::Limits {
            request_size_limit_bytes: config
                .ingress
                .request_size_limit_bytes
                .min(record_bytes_max.saturating_sub(64 * 1024)),
            concurrency_max: config.ingress.concurrent_requests_max,
            body_bytes_inflight_max: budget.ingress_bodies_bytes,
        },
        clock.clone(),
    ));
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let admin_state = Arc::new(admin::AdminState {
        registry: registry.clone(),
        ingress_endpoint: ingress_url,
        server_version: admin::ADMIN_COMPAT_VERSION.to_string(),
        partitions: Some(router.clone()),
        request_identity: config.worker.request_identity.clone(),
        stopping: Some(http_stop_rx.clone()),
        query: query.map(|make| {
            make(admin::query::Sources {
                registry: registry.clone(),
                partitions: router.clone(),
                memory_bytes: usize::try_from(config.admin.query_memory_bytes)
                    .unwrap_or(usize::MAX),
            })
        }),
    });
    let sources = Arc::new(MetricSources {
        router: router.clone(),
        wal_dir: base.join("wal"),
        parts_dir: parts_dir.clone(),
    });
    let metrics_route = {
        let sources = sources.clone();
        axum::routing::get(move || {
            let sources = sources.clone();
            async move { metrics_text(&sources) }
        })
    };
    let ingress_app =
        ingress::router(ingress_state).layer(axum::middleware::from_fn(count_ingress_request));
    let admin_app = admin::router(admin_state).route("/metrics", metrics_route.clone());
    let fabric_app = fabric_router(
        Arc::new(NodeInfo {
            node_name: config.node_name.clone(),
            cluster_name: config.cluster_name.clone(),
            bound: bound.clone(),
            router: router.clone(),
        }),
        metrics_route,
    );
    let mut servers: JoinSet<TaskEnd> = JoinSet::new();
    for b in listeners.take() {
        let app = match b.service {
            Service::Ingress => ingress_app.clone(),
            Service::Admin => admin_app.clone(),
            Service::Fabric => fabric_app.clone(),
        };
        let what = format!("the {} listener on {}", b.service.name(), b.addr);
        // The ingress accepts once every partition leads: until then connections wait in the
        // listen backlog (on a restart with handed-over sockets, that is where the requests
        // of the gap wait) instead of being answered 503. Bounded, so a partition that cannot
        // start gets clear 503 answers rather than silence.
        let gate = (b.service == Service::Ingress).then(|| {
            let router = router.clone();
            async move {
                let _ = tokio::time::timeout(INGRESS_GATE_MAX, router.until_all_running()).await;
            }
        });
        spawn_server(&mut servers, what, b.listener, app, http_stop_rx.clone(), gate);
    }
    // The servers hold their own clones; the WAL closes once the last user is gone.
    drop((ingress_app, admin_app, fabric_app, sources));
    for (s, a) in &bound.listeners {
        tracing::info!("{} listening on {a}", s.name());
    }
    on_ready(&bound);
    {
        // READY=1 once every partition leads (what /health reports as healthy).
        let router = router.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = async {
                    router.until_all_running().await;
                    crate::systemd::notify("READY=1\nSTATUS=serving");
                    match crate::systemd::watchdog_interval() {
                        Some(every) => loop {
                            tokio::time::sleep(every / 2).await;
                            // Alive unless a partition stopped (a full disk only pauses it).
                            let stopped = router
                                .liveness()
                                .iter()
                                .any(|(_, l)| matches!(l, crate::partition::Liveness::Stopped { .. }));
                            if !stopped {
                                crate::systemd::notify("WATCHDOG=1");
                            }
                        },
                        None => std::future::pending::<()>().await,
                    }
                } => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            ("the readiness notifier".to_string(), Ok(()))
        });
    }
    if handle_metrics {
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(crate::metrics::UPKEEP_INTERVAL) => crate::metrics::upkeep(),
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            ("the metrics upkeep".to_string(), Ok(()))
        });
    }

    // Supervise: the first component to end before shutdown stops the node.
    let ended = |end: Option<Result<TaskEnd, tokio::task::JoinError>>| match end {
        Some(Ok((component, Ok(())))) => (component, ENDED_UNEXPECTEDLY.to_string()),
        Some(Ok((component, Err(cause)))) => (component, cause),
        Some(Err(e)) => ("a task".to_string(), format!("it panicked: {e}")),
        None => ("the node".to_string(), "no component is running".to_string()),
    };
    let fatal = tokio::select! {
        _ = shutdown => None,
        end = tasks.join_next() => Some(ended(end)),
        end = servers.join_next() => Some(ended(end)),
    };
    // A component that ended without an error mostly ended because another one failed (its
    // channel closed): name the failure, when one follows shortly, as the cause.
    let fatal = match fatal {
        Some((component, cause)) if cause == ENDED_UNEXPECTEDLY => {
            let failure = async {
                loop {
                    match tasks.join_next().await {
                        Some(Ok((c, Err(e)))) => return Some((c, e)),
                        Some(Err(e)) => {
                            return Some(("a task".to_string(), format!("it panicked: {e}")))
                        }
                        Some(Ok((_, Ok(())))) => continue,
                        None => return None,
                    }
                }
            };
            match tokio::time::timeout(CAUSE_WAIT, failure).await {
                Ok(Some(f)) => Some(f),
                _ => Some((component, cause)),
            }
        }
        other => other,
    };
    match &fatal {
        None => tracing::info!(
            "shutting down: no new connections; waiting up to {:?} (shutdown-timeout) for \
             requests in flight",
            config.shutdown_timeout
        ),
        Some((component, cause)) => {
            tracing::error!("stopping: {component} failed: {cause}")
        }
    }
    crate::systemd::notify("STOPPING=1");
    let _ = http_stop_tx.send(true);
    // A failed node cannot finish what is in flight; a stopping one gets its drain time.
    let drain = if fatal.is_some() {
        std::time::Duration::from_millis(500)
    } else {
        config.shutdown_timeout
    };
    let drain_started = std::time::Instant::now();
    let drained = tokio::time::timeout(drain, async {
        while let Some(end) = servers.join_next().await {
            if let Ok((component, Err(cause))) = end {
                tracing::warn!("{component} failed while draining: {cause}");
            }
        }
    })
    .await;
    match drained {
        Ok(()) => tracing::info!(
            "requests in flight drained in {} ms",
            drain_started.elapsed().as_millis()
        ),
        Err(_) => {
            if fatal.is_none() {
                tracing::warn!(
                    "requests still in flight after {drain:?} (shutdown-timeout); cancelling \
                     them (their invocations go on after the next start)"
                );
            }
            servers.abort_all();
        }
    }
    let _ = stop_tx.send(true);
    drop(router);
    // Let processors write their checkpoint; bounded so a wedged component cannot hold the
    // process.
    let drained = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(end) = tasks.join_next().await {
            if let Ok((component, Err(cause))) = end {
                if fatal.is_none() {
                    tracing::warn!("{component} failed while stopping: {cause}");
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some components did not stop within 10 s");
        tasks.abort_all();
    }
    drop(log);
    match Arc::try_unwrap(wal_) {
        Ok(w) => processor::tokio_blocking(|| w.close()),
        Err(_) => {
            tracing::debug!("WAL still referenced at shutdown; it closes when the last user goes")
        }
    }
    listeners.remove_socket_files();
    match fatal {
        None => {
            tracing::info!("stopped");
            Ok(())
        }
        Some((component, cause)) => Err(StartError::Fatal { component, cause }),
    }
}

fn spawn_server<G: std::future::Future<Output = ()> + Send + 'static>(
    servers: &mut JoinSet<TaskEnd>,
    what: String,
    listener: Listener,
    app: axum::Router,
    rx: watch::Receiver<bool>,
    gate: Option<G>,
) {
    let mut gate_stop = rx.clone();
    let gate = async move {
        if let Some(g) = gate {
            tokio::select! {
                _ = g => {}
                _ = gate_stop.wait_for(|s| *s) => {}
            }
        }
    };
    fn spawn<L>(
        servers: &mut JoinSet<TaskEnd>,
        what: String,
        l: L,
        app: axum::Router,
        rx: watch::Receiver<bool>,
        gate: impl std::future::Future<Output = ()> + Send + 'static,
    ) where
        L: axum::serve::Listener,
        L::Io: Unpin,
    {
        servers.spawn(async move {
            gate.await;
            serve_connections(l, app, rx).await;
            (what, Ok(()))
        });
    }
    match listener {
        // Without TCP_NODELAY a response written in two segments waits for the client's
        // delayed ACK (~40 ms): small request/response traffic needs it off.
        Listener::Tcp(l) => spawn(
            servers,
            what,
            l.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            app,
            rx,
            gate,
        ),
        Listener::Unix(l) => spawn(servers, what, l, app, rx, gate),
    }
}

/// How long a stopping server keeps serving connections it accepted but that have not sent
/// a request yet. A client writes its request right after connecting; closing such a
/// connection at once would reset a request the client already sent.
const ACCEPTED_LINGER: std::time::Duration = std::time::Duration::from_millis(250);

/// Serves HTTP/1.1 and HTTP/2 (with and without TLS-less prior knowledge) on `l` until `stop`
/// turns true; then stops accepting (the socket stays open when the service manager holds
/// it, and new connections wait in its backlog for the next process), gives just-accepted
/// connections [`ACCEPTED_LINGER`] to send their request, and waits for every request in
/// flight (the caller bounds that wait).
async fn serve_connections<L>(mut l: L, app: axum::Router, mut stop: watch::Receiver<bool>)
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its request head must not hold a drain (or a slot).
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    // Owned here: when the caller aborts this task (the drain ran out of time), every
    // connection still open is aborted with it instead of outliving the node.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            // Stop first: once stopping, what waits in the backlog is the next process's.
            biased;
            _ = stop.wait_for(|s| *s) => break,
            (io, _) = l.accept() => {
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc).into_owned();
                let conn = graceful.watch(conn);
                conns.spawn(async move {
                    let _ = conn.await;
                });
            }
            // Reap finished connections so the set does not grow.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(l);
    tokio::time::sleep(ACCEPTED_LINGER).await;
    graceful.shutdown().await;
    while conns.join_next().await.is_some() {}
}

/// Longest time a client may take to send a request head.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What `/metrics` samples when it is scraped.
struct MetricSources {
    router: Router,
    wal_dir: PathBuf,
    parts_dir: PathBuf,
}

fn metrics_text(s: &MetricSources) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    for h in s.router.partitions.iter() {
        let partition = h.id.to_string();
        let tail = h.log().tail(crate::partition::log_of(h.id)).lsn_durable.0;
        if let Some(applied) = h.store().and_then(|st| st.lsn_applied().ok()) {
            metrics::gauge!(crate::metrics::PARTITION_APPLIED_LSN, "partition" => partition.clone())
                .set(applied.0 as f64);
            metrics::gauge!(crate::metrics::PARTITION_APPLIED_LSN_LAG, "partition" => partition)
                .set(tail.saturating_sub(applied.0) as f64);
        }
    }
    metrics::gauge!(crate::metrics::WAL_SIZE).set(crate::metrics::dir_size(&s.wal_dir) as f64);
    metrics::gauge!(crate::metrics::STORE_SIZE).set(crate::metrics::dir_size(&s.parts_dir) as f64);
    match crate::metrics::render() {
        Some(text) => {
            ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
                .into_response()
        }
        None => (http::StatusCode::SERVICE_UNAVAILABLE, "metrics are not recorded in this process")
            .into_response(),
    }
}

/// Counts and times every ingress request by its answer's class.
async fn count_ingress_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let started_at = std::time::SystemTime::now();
    let traced = crate::otel::enabled() && req.method() == http::Method::POST;
    let res = next.run(req).await;
    if traced {
        let id = res
            .headers()
            .get("x-restate-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<crate::protocol::ids::InvocationId>().ok());
        if let Some(id) = id {
            use crate::otel::{kind, Span, Value};
            let code = res.status().as_u16();
            let mut span = Span::for_invocation(
                &id,
                b"ingress",
                "ingress POST".into(),
                kind::SERVER,
                started_at,
            );
            span.attributes.push(("http.response.status_code", Value::Int(i64::from(code))));
            span.error = (code >= 500).then(|| format!("HTTP {code}"));
            crate::otel::emit(span);
        }
    }
    let status = match res.status().as_u16() {
        0..=399 => "completed",
        400..=499 => "rejected",
        _ => "failed",
    };
    metrics::counter!(crate::metrics::INGRESS_REQUESTS, "status" => status).increment(1);
    metrics::histogram!(crate::metrics::INGRESS_REQUEST_DURATION)
        .record(started.elapsed().as_secs_f64());
    res
}

/// What the node endpoint reports about this node.
struct NodeInfo {
    node_name: String,
    cluster_name: String,
    bound: Bound,
    router: Router,
}

/// Restate's server names, which its tools show.
fn server_name(s: Service) -> &'static str {
    match s {
        Service::Ingress => "http-ingress-server",
        Service::Admin => "admin-api-server",
        Service::Fabric => "message-fabric-server",
    }
}

/// The node (fabric) endpoint: this node's health, with what it binds and advertises, and
/// the metrics. Single-node Ratchet has no node-to-node traffic.
fn fabric_router(info: Arc<NodeInfo>, metrics_route: axum::routing::MethodRouter) -> axum::Router {
    let health = move || {
        let info = info.clone();
        async move {
            let running = info.router.all_running();
            let bound: Vec<serde_json::Value> = info
                .bound
                .listeners
                .iter()
                .map(|(s, a)| {
                    let kind = match a {
                        BoundAddr::Tcp(_) => "tcp",
                        BoundAddr::Unix(_) => "unix",
                    };
                    serde_json::json!({"name": server_name(*s), "address": a.to_string(), "kind": kind})
                })
                .collect();
            let advertised: Vec<serde_json::Value> = Service::ALL
                .iter()
                .map(|s| {
                    let a = info.bound.advertised(*s);
                    let kind = if a.starts_with("unix:") { "unix" } else { "http" };
                    serde_json::json!({"name": server_name(*s), "address": a, "kind": kind})
                })
                .collect();
            let body = serde_json::json!({
                "status": if running { "Alive" } else { "Starting" },
                "node_name": info.node_name,
                "cluster_name": info.cluster_name,
                "bound_addresses": bound,
                "advertised_addresses": advertised,
            });
            let code =
                if running { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE };
            (code, axum::Json(body))
        }
    };
    axum::Router::new()
        .route("/health", axum::routing::get(health))
        .route("/metrics", metrics_route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(base: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(base.join(NODE_META_FILE)).unwrap()).unwrap()
    }

    #[test]
    fn a_data_directory_keeps_its_partitions_and_partition_key_hash() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("metadata")).unwrap();
        assert_eq!(num_partitions(base, 4).unwrap(), 4);
        assert_eq!(meta(base)["partition_key_hash"], crate::fsm::PARTITION_KEY_HASH);
        // The configuration applies to new directories only.
        assert_eq!(num_partitions(base, 8).unwrap(), 4);
        // A directory from before the marker gets it.
        std::fs::write(base.join(NODE_META_FILE), br#"{"num_partitions": 2}"#).unwrap();
        assert_eq!(num_partitions(base, 8).unwrap(), 2);
        assert_eq!(meta(base)["partition_key_hash"], crate::fsm::PARTITION_KEY_HASH);
        // A directory whose keys were placed by another function is refused, by name.
        let other = br#"{"num_partitions": 2, "partition_key_hash": "fnv1a-64"}"#;
        std::fs::write(base.join(NODE_META_FILE), other).unwrap();
        let e = num_partitions(base, 2).unwrap_err().to_string();
        assert!(e.contains("fnv1a-64") && e.contains("xxh3-64"), "{e}");
        // A partition count no node can run is refused, by name.
        for n in [0u32, 1025] {
            let bad = format!(r#"{{"num_partitions": {n}, "partition_key_hash": "xxh3-64"}}"#);
            std::fs::write(base.join(NODE_META_FILE), bad).unwrap();
            let e = num_partitions(base, 2).unwrap_err().to_string();
            assert!(e.contains(&format!("num_partitions is {n}")), "{e}");
        }
    }
}
