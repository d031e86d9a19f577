//! Node start-up and shutdown: opens the data directory (WAL, partition stores, schema),
//! starts one invoker and one processor per partition, serves ingress and admin, and on a
//! shutdown signal stops accepting requests, lets processors write a durable checkpoint, and
//! closes the WAL.
//!
//! Invariants:
//! - The number of partitions of a data directory is fixed when it is created
//!   (`metadata/node.json`); changing the configuration later does not remap keys.
//! - Nothing binds before recovery finished: a server that answers health checks has
//!   replayed its logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::fsm::{Fsm, RetryPolicy};
use crate::partition::{processor, Handle, Router, Waiters};
use crate::schema::Registry;
use crate::store::PartitionStore;
use crate::wal::{self, Wal};
use crate::{admin, ingress, invoker};

/// Facts about a data directory that never change after it was created.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct NodeMeta {
    num_partitions: u16,
}

const NODE_META_FILE: &str = "metadata/node.json";

/// A start-up failure, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {dir}: {message}")]
    DataDir { dir: String, message: String },
    #[error("{0}")]
    Wal(#[from] wal::WalError),
    #[error("partition store: {0}")]
    Store(String),
    #[error("cannot listen on {addr} for {what}: {message} (is another server running? set {env} to another address)")]
    Bind { what: &'static str, addr: SocketAddr, env: &'static str, message: String },
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
            let meta: NodeMeta = serde_json::from_slice(&bytes)
                .map_err(|e| data_dir_err(base, format!("{}: {e}", path.display())))?;
            if meta.num_partitions != configured {
                tracing::info!(
                    "this data directory has {} partitions; default-num-partitions = {configured} applies only to new directories",
                    meta.num_partitions
                );
            }
            Ok(meta.num_partitions)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = NodeMeta { num_partitions: configured };
            let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| data_dir_err(base, e))?;
            crate::fsutil::write_atomic(&path, &bytes).map_err(|e| data_dir_err(base, e))?;
            Ok(configured)
        }
        Err(e) => Err(data_dir_err(base, e)),
    }
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
    env: &'static str,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError::Bind {
        what,
        addr,
        env,
        message: e.to_string(),
    })
}

/// Runs a node until `shutdown` resolves. `on_ready` is called once it serves requests.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), StartError> {
    let base: PathBuf = config.base_dir.clone();
    std::fs::create_dir_all(&base).map_err(|e| data_dir_err(&base, e))?;
    for key in &config.unknown_keys {
        tracing::warn!("ignoring unknown configuration key `{key}`");
    }
    let n = num_partitions(&base, config.default_num_partitions)?;

    let mut wal_opts = wal::Options::new(base.join("wal"));
    wal_opts.engine = config.wal.engine.parse().unwrap_or_default();
    wal_opts.segment_bytes = config.wal.segment_size_bytes;
    let wal_ = Arc::new(tokio::task::block_in_place(|| Wal::open(wal_opts))?);
    tracing::info!(engine = wal_.engine(), partitions = n, dir = %base.display(), "WAL open");

    let registry = Arc::new(Registry::open(&base).map_err(|e| data_dir_err(&base, e))?);
    let boot_nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let handles: Vec<Handle> = (0..n).map(|i| Handle::new(i, wal_.clone())).collect();
    let router =
        Router { partitions: Arc::new(handles), waiters: Arc::new(Waiters::new(boot_nonce)) };
    let retry = RetryPolicy {
        initial_ms: config.worker.retry_initial_interval.as_millis() as u64,
        factor: config.worker.retry_factor,
        max_interval_ms: config.worker.retry_max_interval.as_millis() as u64,
        attempts_max: config.worker.retry_attempts_max,
    };
    let inv_opts = invoker::Options {
        inactivity_timeout: config.worker.inactivity_timeout,
        abort_timeout: config.worker.abort_timeout,
        protocol_v7: config.worker.protocol_v7,
        ..invoker::Options::default()
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut processors = Vec::new();
    let mut invokers = Vec::new();
    let parts_dir = base.join("partitions");
    std::fs::create_dir_all(&parts_dir).map_err(|e| data_dir_err(&base, e))?;
    for i in 0..n {
        let path = parts_dir.join(crate::store::schema::partition_file_name(u32::from(i)));
        let store = tokio::task::block_in_place(|| PartitionStore::open(&path))
            .map_err(|e| StartError::Store(e.to_string()))?;
        let (inv, inv_handle) = invoker::Invoker::new(
            inv_opts.clone(),
            registry.clone(),
            router.partitions[usize::from(i)].clone(),
        );
        invokers.push(tokio::spawn(inv.run()));
        let p = processor::Processor::new(
            processor::Options::new(i),
            wal_.clone(),
            store,
            Fsm::new(retry.clone()),
            inv_handle,
            router.clone(),
        )
        .map_err(|e| StartError::Store(e.to_string()))?;
        let rx = stop_rx.clone();
        processors.push(tokio::spawn(async move {
            if let Err(e) = p.run(rx).await {
                tracing::error!("{e}");
            }
        }));
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
        config.ingress.request_size_limit_bytes,
    ));
    let admin_state = Arc::new(admin::AdminState {
        registry: registry.clone(),
        ingress_endpoint: ingress_url,
        server_version: admin::ADMIN_COMPAT_VERSION.to_string(),
    });
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let serve = |l: TcpListener, app: axum::Router, mut rx: watch::Receiver<bool>| {
        // Without TCP_NODELAY a response written in two segments waits for the client's
        // delayed ACK (~40 ms): small request/response traffic needs it off.
        let l = l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
        })
    };
    let ingress_task = serve(ingress_l, ingress::router(ingress_state), http_stop_rx.clone());
    let admin_task = serve(admin_l, admin::router(admin_state), http_stop_rx);
    on_ready(&bound);

    shutdown.await;
    tracing::info!("shutting down");
    let _ = http_stop_tx.send(true);
    // Requests waiting for an outcome would hold graceful shutdown open: answer them now.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = ingress_task.await;
        let _ = admin_task.await;
    })
    .await;
    let _ = stop_tx.send(true);
    for p in processors {
        let _ = p.await;
    }
    for i in invokers {
        i.abort();
    }
    drop(router);
    match Arc::try_unwrap(wal_) {
        Ok(w) => tokio::task::block_in_place(|| w.close()),
        Err(_) => {
            tracing::debug!("WAL still referenced at shutdown; it closes when the last user goes")
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// A wildcard bind address is advertised as loopback.
fn advertised(a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port())
    } else {
        a
    }
}
