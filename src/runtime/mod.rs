//! Node start-up, supervision and shutdown: opens the data directory (WAL, schema), starts one
//! invoker and one processor per partition, serves ingress and admin, divides the memory
//! budget among the components, and stops the whole process when any of them fails.
//!
//! Invariants:
//! - The number of partitions of a data directory is fixed when it is created
//!   (`metadata/node.json`); changing the configuration later does not remap keys.
//! - Fail-stop: a component that ends on its own (a processor, an invoker, a server, the WAL
//!   writer) ends the process with a non-zero exit and one message naming the cause; nothing
//!   limps on with a dead partition. A full disk is not a failure: components wait it out.
//! - Health endpoints answer 200 only while every partition runs.
//! - Every component's memory comes from one budget ([`Budget`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::fsm::{Fsm, RetryPolicy};
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
    #[error("cannot listen on {addr} for {what}: {message} (is another server running? set {env} to another address)")]
    Bind { what: &'static str, addr: SocketAddr, env: &'static str, message: String },
    /// A component failed while the node ran; the node stopped.
    #[error("stopped because {component} failed: {cause}")]
    Fatal { component: String, cause: String },
}

/// Addresses the node listens on, once started.
#[derive(Clone, Debug)]
pub struct Bound {
    pub ingress: SocketAddr,
    pub admin: SocketAddr,
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

/// Connections a listener queues before it accepts them. The usual 128 overflows when a few
/// hundred clients connect at once, and a refused SYN is only retried after a second.
const LISTEN_BACKLOG: u32 = 1024;

async fn bind(
    what: &'static str,
    addr: SocketAddr,
    env: &'static str,
) -> Result<TcpListener, StartError> {
    let err = |e: std::io::Error| StartError::Bind { what, addr, env, message: e.to_string() };
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
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

/// A supervised task: its name and how it ended.
type TaskEnd = (String, Result<(), String>);

/// Runs a node until `shutdown` resolves or a component fails. `on_ready` is called once it
/// serves requests. `query` builds the engine behind `POST /query` (none: 503).
pub async fn run(
    config: Config,
    query: Option<admin::query::EngineFactory>,
    shutdown: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), StartError> {
    let base: PathBuf = config.base_dir.clone();
    std::fs::create_dir_all(&base).map_err(|e| data_dir_err(&base, e))?;
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
            (format!("partition {i}"), p.run(rx).await.map_err(|e| e.to_string()))
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

    let ingress_l =
        bind("ingress", config.ingress.bind_address, "RESTATE_INGRESS__BIND_ADDRESS").await?;
    let admin_l = bind("admin", config.admin.bind_address, "RESTATE_ADMIN__BIND_ADDRESS").await?;
    let bound = Bound {
        ingress: ingress_l.local_addr().map_err(|e| data_dir_err(&base, e))?,
        admin: admin_l.local_addr().map_err(|e| data_dir_err(&base, e))?,
    };
    let ingress_url = format!("http://{}/", advertised(bound.ingress));
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
    let admin_state = Arc::new(admin::AdminState {
        registry: registry.clone(),
        ingress_endpoint: ingress_url,
        server_version: admin::ADMIN_COMPAT_VERSION.to_string(),
        partitions: Some(router.clone()),
        request_identity: config.worker.request_identity.clone(),
        query: query.map(|make| {
            make(admin::query::Sources {
                registry: registry.clone(),
                partitions: router.clone(),
                memory_bytes: usize::try_from(config.admin.query_memory_bytes)
                    .unwrap_or(usize::MAX),
            })
        }),
    });
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let serve = |what: &'static str,
                 l: TcpListener,
                 app: axum::Router,
                 mut rx: watch::Receiver<bool>,
                 tasks: &mut JoinSet<TaskEnd>| {
        // Without TCP_NODELAY a response written in two segments waits for the client's
        // delayed ACK (~40 ms): small request/response traffic needs it off.
        let l = l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tasks.spawn(async move {
            let r = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
            (format!("the {what} server"), r.map_err(|e| e.to_string()))
        });
    };
    serve("ingress", ingress_l, ingress::router(ingress_state), http_stop_rx.clone(), &mut tasks);
    serve("admin", admin_l, admin::router(admin_state), http_stop_rx, &mut tasks);
    on_ready(&bound);

    // Supervise: the first component to end before shutdown stops the node.
    let fatal = tokio::select! {
        _ = shutdown => None,
        end = tasks.join_next() => Some(match end {
            Some(Ok((component, Ok(())))) => (component, ENDED_UNEXPECTEDLY.to_string()),
            Some(Ok((component, Err(cause)))) => (component, cause),
            Some(Err(e)) => ("a task".to_string(), format!("it panicked: {e}")),
            None => ("the node".to_string(), "no component is running".to_string()),
        }),
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
        None => tracing::info!("shutting down"),
        Some((component, cause)) => {
            tracing::error!("stopping: {component} failed: {cause}")
        }
    }
    let _ = http_stop_tx.send(true);
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
    match fatal {
        None => {
            tracing::info!("stopped");
            Ok(())
        }
        Some((component, cause)) => Err(StartError::Fatal { component, cause }),
    }
}

/// A wildcard bind address is advertised as loopback.
fn advertised(a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port())
    } else {
        a
    }
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
