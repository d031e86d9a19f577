//! Configuration: Restate's configuration schema for every key we share, so an existing
//! Restate setup moves over unchanged.
//!
//! Sources, later ones winning: built-in defaults, a TOML file (`--config-file`), environment
//! variables `RESTATE_<KEY>` with `__` separating nesting levels and `_` standing for `-` in key
//! names (`RESTATE_INGRESS__BIND_ADDRESS` → `ingress.bind-address`), then command-line flags
//! (`--base-dir`). Keys we do not know are reported (returned as `unknown_keys` and logged at
//! start-up), never silently ignored; keys with a bad value are an error naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::protocol::identity::{RequestSigner, VALIDITY_DEFAULT};

/// Everything the node reads from configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub base_dir: PathBuf,
    pub node_name: String,
    pub cluster_name: String,
    pub default_num_partitions: u16,
    pub ingress: IngressOptions,
    pub admin: AdminOptions,
    pub worker: WorkerOptions,
    pub wal: WalOptions,
    pub memory: MemoryOptions,
    /// Where the admin API, the ingress and the node (fabric) endpoint listen.
    pub listeners: Listeners,
    /// How long a stopping node waits for in-flight requests before it cancels them
    /// (`shutdown-timeout`).
    pub shutdown_timeout: Duration,
    pub log: LogOptions,
    pub tracing: TracingOptions,
    /// Keys present in the sources that this version does not understand.
    pub unknown_keys: Vec<String>,
    /// Things worth a warning at start-up (deprecated key names).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IngressOptions {
    /// Largest request body accepted. Bytes.
    pub request_size_limit_bytes: usize,
    /// Requests served at once (`ingress.concurrent-api-requests-limit`).
    pub concurrent_requests_max: usize,
}

/// The memory budget and the shares Restate's own keys can pin.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryOptions {
    /// Everything the node holds in its caches and buffers together (`memory-budget`,
    /// Ratchet's own key). Bytes.
    pub budget_bytes: u64,
    /// The partition stores' caches together (`rocksdb-total-memory-size`). Bytes.
    pub store_caches_bytes: Option<u64>,
    /// The WAL's cache of recent records (`bifrost.record-cache-memory-size`). Bytes.
    pub log_cache_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AdminOptions {
    /// Memory all running SQL queries may use together (`admin.query-engine.memory-size`);
    /// a query that needs more fails with a clear error. Bytes.
    pub query_memory_bytes: u64,
}

/// Default of [`AdminOptions::query_memory_bytes`]: enough for sorting and grouping what the
/// CLI and the UI ask for over hundreds of thousands of invocations.
pub const QUERY_MEMORY_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerOptions {
    /// Invoker: close the request stream after this long without traffic (lets the SDK suspend).
    pub inactivity_timeout: Duration,
    /// Invoker: abort an attempt this long after the request stream closed without an end.
    pub abort_timeout: Duration,
    /// Invoker retry policy (Restate's defaults: 500 ms, ×2, at most 60 s, 70 attempts).
    pub retry_initial_interval: Duration,
    pub retry_max_interval: Duration,
    pub retry_factor: f64,
    pub retry_attempts_max: u32,
    /// When the attempts are used up: pause the invocation (Restate's default) or fail it.
    pub retry_pause_on_max: bool,
    /// Invocations being attempted at once per partition before new ones wait.
    pub invocations_inflight_max: usize,
    /// Attempts waiting in memory per partition (`worker.invoker.in-memory-queue-length-limit`).
    pub invoker_queue_max: usize,
    /// Negotiate service protocol V7 when the deployment supports it.
    pub protocol_v7: bool,
    /// How often each partition looks for completed invocations whose retention passed
    /// (`worker.cleanup-interval`, Restate's default 1 h).
    pub cleanup_interval: Duration,
    /// Signs every request to deployments when set: the key of
    /// `worker.invoker.request-identity-private-key-pem-file`, read at start-up, with the
    /// token validity of `worker.invoker.request-identity-expiration`.
    pub request_identity: Option<Arc<RequestSigner>>,
    /// Where [`WorkerOptions::request_identity`] was read from, and its token validity.
    pub request_identity_file: Option<(PathBuf, Duration)>,
    /// Retention where services set none (`default-journal-retention`,
    /// `default-idempotency-retention`, `default-workflow-completion-retention`).
    pub retention: crate::schema::RetentionDefaults,
}

/// Restate's `listen-mode`: which kinds of listener a service gets. Also the value of the
/// `--listen-mode` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListenMode {
    /// Only unix domain sockets in the data directory
    Unix,
    /// Only TCP sockets
    Tcp,
    /// Both (the default)
    All,
}

impl ListenMode {
    pub fn parse(v: &str) -> Option<ListenMode> {
        match v {
            "tcp" => Some(ListenMode::Tcp),
            "unix" => Some(ListenMode::Unix),
            "all" => Some(ListenMode::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListenMode::Tcp => "tcp",
            ListenMode::Unix => "unix",
            ListenMode::All => "all",
        }
    }

    pub fn tcp(self) -> bool {
        self != ListenMode::Unix
    }

    pub fn unix(self) -> bool {
        self != ListenMode::Tcp
    }
}

/// One service's listeners, resolved from its own keys and the top-level ones.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerOptions {
    pub listen_mode: ListenMode,
    /// The TCP address; port 0 when random ports were asked for.
    pub bind_address: SocketAddr,
    /// An explicit URL to advertise (`advertised-address`, or the deprecated
    /// `advertised-admin-endpoint` / `advertised-ingress-endpoint`).
    pub advertised_address: Option<String>,
    /// The host to advertise with the bound port (`advertised-host`).
    pub advertised_host: Option<String>,
}

/// The three services that listen.
#[derive(Clone, Debug, PartialEq)]
pub struct Listeners {
    pub ingress: ListenerOptions,
    pub admin: ListenerOptions,
    /// Restate's node-to-node port: here the node's health and metrics endpoint.
    pub fabric: ListenerOptions,
}

/// Default ports, as Restate's.
pub const INGRESS_PORT: u16 = 8080;
pub const ADMIN_PORT: u16 = 9070;
pub const FABRIC_PORT: u16 = 5122;

/// Restate's `log-format`, also the value of the `--log-format` flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Compact,
    Json,
}

impl LogFormat {
    pub fn parse(v: &str) -> Option<LogFormat> {
        match v {
            "pretty" => Some(LogFormat::Pretty),
            "compact" => Some(LogFormat::Compact),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Compact => "compact",
            LogFormat::Json => "json",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogOptions {
    /// `log-filter`, in `RUST_LOG` syntax (`RUST_LOG` itself still wins).
    pub filter: String,
    pub format: LogFormat,
    pub disable_ansi_codes: bool,
}

/// Default of [`LogOptions::filter`].
pub const LOG_FILTER_DEFAULT: &str = "warn,ratchet=info";

#[derive(Clone, Debug, PartialEq)]
pub struct TracingOptions {
    /// OTLP/gRPC collector (`tracing-endpoint`), e.g. `http://127.0.0.1:4317`.
    pub endpoint: Option<String>,
    /// Which spans are exported (`tracing-filter`).
    pub filter: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WalOptions {
    /// "auto", "uring" or "std".
    pub engine: String,
    pub segment_size_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base_dir: PathBuf::from("restate-data"),
            node_name: default_node_name(),
            cluster_name: "localcluster".into(),
            default_num_partitions: default_partitions(),
            ingress: IngressOptions {
                request_size_limit_bytes: 32 * 1024 * 1024,
                concurrent_requests_max: 4096,
            },
            admin: AdminOptions { query_memory_bytes: QUERY_MEMORY_BYTES_DEFAULT },
            worker: WorkerOptions {
                inactivity_timeout: Duration::from_secs(60),
                abort_timeout: Duration::from_secs(600),
                retry_initial_interval: Duration::from_millis(500),
                retry_max_interval: Duration::from_secs(60),
                retry_factor: 2.0,
                retry_attempts_max: 70,
                retry_pause_on_max: true,
                invocations_inflight_max: 10_000,
                cleanup_interval: Duration::from_secs(3600),
                invoker_queue_max: 10_000,
                protocol_v7: false,
                request_identity: None,
                request_identity_file: None,
                retention: crate::schema::RetentionDefaults::default(),
            },
            wal: WalOptions { engine: "auto".into(), segment_size_bytes: 8 * 1024 * 1024 },
            memory: MemoryOptions {
                budget_bytes: 64 * 1024 * 1024,
                store_caches_bytes: None,
                log_cache_bytes: None,
            },
            listeners: Listeners {
                ingress: ListenerOptions::default_on(INGRESS_PORT),
                admin: ListenerOptions::default_on(ADMIN_PORT),
                fabric: ListenerOptions::default_on(FABRIC_PORT),
            },
            shutdown_timeout: Duration::from_secs(60),
            log: LogOptions {
                filter: LOG_FILTER_DEFAULT.into(),
                format: LogFormat::Pretty,
                disable_ansi_codes: false,
            },
            tracing: TracingOptions { endpoint: None, filter: "info".into() },
            unknown_keys: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl ListenerOptions {
    fn default_on(port: u16) -> ListenerOptions {
        ListenerOptions {
            listen_mode: ListenMode::All,
            bind_address: SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port),
            advertised_address: None,
            advertised_host: None,
        }
    }
}

/// Restate names a node after its host unless told otherwise.
fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A configuration problem, naming the key or file and what to do.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {message}")]
    Read { path: String, message: String },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Parse { path: String, message: String },
    #[error("configuration key `{key}` has an invalid value: {message}")]
    Invalid { key: String, message: String },
}

/// Raw view of the keys we understand, as they appear in Restate's schema.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Raw {
    base_dir: Option<String>,
    node_name: Option<String>,
    cluster_name: Option<String>,
    default_num_partitions: Option<u16>,
    ingress: Option<RawIngress>,
    admin: Option<RawAdmin>,
    worker: Option<RawWorker>,
    invocation: Option<RawInvocation>,
    default_retry_policy: Option<RawRetryPolicy>,
    default_journal_retention: Option<String>,
    default_idempotency_retention: Option<String>,
    default_workflow_completion_retention: Option<String>,
    rocksdb_total_memory_size: Option<toml::Value>,
    bifrost: Option<RawBifrost>,
    /// Restate's old place of `worker.invoker.request-identity-private-key-pem-file`.
    request_identity_private_key_pem_file: Option<String>,
    #[serde(flatten)]
    listen: RawListen,
    shutdown_timeout: Option<String>,
    log_filter: Option<String>,
    log_format: Option<String>,
    log_disable_ansi_codes: Option<bool>,
    tracing_endpoint: Option<String>,
    tracing_filter: Option<String>,
    // Ratchet's own keys.
    memory_budget: Option<toml::Value>,
    wal: Option<RawWal>,
}

/// The listener keys, the same at the top level (defaults for every service, and the
/// fabric's own) and in `[admin]` / `[ingress]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawListen {
    listen_mode: Option<String>,
    use_random_ports: Option<bool>,
    bind_ip: Option<String>,
    bind_port: Option<u16>,
    bind_address: Option<String>,
    advertised_host: Option<String>,
    advertised_address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawBifrost {
    record_cache_memory_size: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawIngress {
    #[serde(flatten)]
    listen: RawListen,
    /// Deprecated name of `advertised-address`.
    advertised_ingress_endpoint: Option<String>,
    request_size_limit: Option<toml::Value>,
    concurrent_api_requests_limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawAdmin {
    #[serde(flatten)]
    listen: RawListen,
    /// Deprecated name of `advertised-address`.
    advertised_admin_endpoint: Option<String>,
    query_engine: Option<RawQueryEngine>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawQueryEngine {
    memory_size: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawWorker {
    invoker: Option<RawInvoker>,
    cleanup_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawInvoker {
    inactivity_timeout: Option<String>,
    abort_timeout: Option<String>,
    in_flight_invocations_limit: Option<usize>,
    in_memory_queue_length_limit: Option<usize>,
    request_identity_private_key_pem_file: Option<String>,
    request_identity_expiration: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawInvocation {
    default_retry_policy: Option<RawRetryPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRetryPolicy {
    initial_interval: Option<String>,
    exponentiation_factor: Option<f64>,
    max_attempts: Option<u32>,
    max_interval: Option<String>,
    on_max_attempts: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawWal {
    engine: Option<String>,
    segment_size: Option<toml::Value>,
}

/// What a key's value is, so an environment variable (always text) becomes the value the
/// schema says, not a guess: `RESTATE_NODE_NAME=123` is the name "123".
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Table,
    Str,
    Int,
    Float,
    Bool,
    /// A size: a number of bytes or a string like `32 MiB`.
    Size,
}

/// Every key path this version understands (dotted, kebab-case), and its kind.
const SCHEMA: &[(&str, Kind)] = &[
    ("base-dir", Kind::Str),
    ("node-name", Kind::Str),
    ("cluster-name", Kind::Str),
    ("default-num-partitions", Kind::Int),
    ("shutdown-timeout", Kind::Str),
    ("log-filter", Kind::Str),
    ("log-format", Kind::Str),
    ("log-disable-ansi-codes", Kind::Bool),
    ("tracing-endpoint", Kind::Str),
    ("tracing-filter", Kind::Str),
    ("ingress", Kind::Table),
    ("ingress.request-size-limit", Kind::Size),
    ("ingress.concurrent-api-requests-limit", Kind::Int),
    ("ingress.advertised-ingress-endpoint", Kind::Str),
    ("rocksdb-total-memory-size", Kind::Size),
    ("bifrost", Kind::Table),
    ("bifrost.record-cache-memory-size", Kind::Size),
    ("memory-budget", Kind::Size),
    ("admin", Kind::Table),
    ("admin.advertised-admin-endpoint", Kind::Str),
    ("admin.query-engine", Kind::Table),
    ("admin.query-engine.memory-size", Kind::Size),
    ("worker", Kind::Table),
    ("worker.invoker", Kind::Table),
    ("worker.invoker.inactivity-timeout", Kind::Str),
    ("worker.invoker.abort-timeout", Kind::Str),
    ("worker.invoker.in-flight-invocations-limit", Kind::Int),
    ("worker.invoker.in-memory-queue-length-limit", Kind::Int),
    ("worker.invoker.request-identity-private-key-pem-file", Kind::Str),
    ("worker.invoker.request-identity-expiration", Kind::Str),
    ("request-identity-private-key-pem-file", Kind::Str),
    ("worker.cleanup-interval", Kind::Str),
    ("default-journal-retention", Kind::Str),
    ("default-idempotency-retention", Kind::Str),
    ("default-workflow-completion-retention", Kind::Str),
    ("default-retry-policy", Kind::Table),
    ("default-retry-policy.initial-interval", Kind::Str),
    ("default-retry-policy.exponentiation-factor", Kind::Float),
    ("default-retry-policy.max-attempts", Kind::Int),
    ("default-retry-policy.max-interval", Kind::Str),
    ("default-retry-policy.on-max-attempts", Kind::Str),
    ("invocation", Kind::Table),
    ("invocation.default-retry-policy", Kind::Table),
    ("invocation.default-retry-policy.initial-interval", Kind::Str),
    ("invocation.default-retry-policy.exponentiation-factor", Kind::Float),
    ("invocation.default-retry-policy.max-attempts", Kind::Int),
    ("invocation.default-retry-policy.max-interval", Kind::Str),
    ("invocation.default-retry-policy.on-max-attempts", Kind::Str),
    ("wal", Kind::Table),
    ("wal.engine", Kind::Str),
    ("wal.segment-size", Kind::Size),
];

/// The listener keys: at the top level (where `bind-port`, `bind-address` and
/// `advertised-address` are the fabric's) and in `[admin]` and `[ingress]`.
const LISTEN_SCHEMA: &[(&str, Kind)] = &[
    ("listen-mode", Kind::Str),
    ("use-random-ports", Kind::Bool),
    ("bind-ip", Kind::Str),
    ("bind-port", Kind::Int),
    ("bind-address", Kind::Str),
    ("advertised-host", Kind::Str),
    ("advertised-address", Kind::Str),
];

fn kind_of(key: &str) -> Option<Kind> {
    if let Some((_, k)) = SCHEMA.iter().find(|(name, _)| *name == key) {
        return Some(*k);
    }
    let field = key.strip_prefix("admin.").or_else(|| key.strip_prefix("ingress.")).unwrap_or(key);
    LISTEN_SCHEMA.iter().find(|(name, _)| *name == field).map(|(_, k)| *k)
}

impl Config {
    /// Loads configuration from an optional file, the process environment and overrides.
    pub fn load(file: Option<&Path>, base_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::load_from(file, &env, base_dir)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
        base_dir: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let flags = Flags { base_dir: base_dir.map(Path::to_path_buf), ..Flags::default() };
        Config::load_with(file, env, &flags)
    }

    /// Loads from a file, an environment and command-line flags, in that order of precedence.
    pub fn load_with(
        file: Option<&Path>,
        env: &[(String, String)],
        flags: &Flags,
    ) -> Result<Config, ConfigError> {
        let mut tree = toml::Table::new();
        if let Some(path) = file {
            let p = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Read { path: p.clone(), message: e.to_string() })?;
            tree = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse { path: p, message: e.to_string() })?;
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("RESTATE_") else { continue };
            if ENV_NOT_CONFIG.contains(&rest) {
                continue;
            }
            let path: Vec<String> =
                rest.split("__").map(|seg| seg.to_ascii_lowercase().replace('_', "-")).collect();
            let value = env_value(&path.join("."), name, value)?;
            insert(&mut tree, &path, value);
        }
        flags.apply(&mut tree);
        let mut unknown = Vec::new();
        collect_unknown(&tree, "", &mut unknown);
        check_kinds(&tree, "")?;
        let raw: Raw =
            toml::Value::Table(tree.clone()).try_into().map_err(|e: toml::de::Error| {
                ConfigError::Invalid { key: key_of(&e), message: e.message().to_string() }
            })?;
        let mut c = Config::default();
        if let Some(v) = raw.base_dir {
            c.base_dir = PathBuf::from(v);
        }
        if let Some(v) = raw.node_name {
            c.node_name = v;
        }
        if let Some(v) = raw.cluster_name {
            c.cluster_name = v;
        }
        if let Some(v) = raw.default_num_partitions {
            if v == 0 {
                return Err(invalid("default-num-partitions", "must be at least 1"));
            }
            if usize::from(v) > crate::wal::LOGS_MAX {
                // One log per partition in one WAL, whose checkpoints keep room for this many.
                let m = format!("must be at most {}", crate::wal::LOGS_MAX);
                return Err(invalid("default-num-partitions", &m));
            }
            c.default_num_partitions = v;
        }
        let top = raw.listen;
        let (ingress_listen, ingress_old) = match &raw.ingress {
            Some(i) => (Some(&i.listen), i.advertised_ingress_endpoint.as_deref()),
            None => (None, None),
        };
        let (admin_listen, admin_old) = match &raw.admin {
            Some(a) => (Some(&a.listen), a.advertised_admin_endpoint.as_deref()),
            None => (None, None),
        };
        c.listeners.ingress = resolve_listener(
            "ingress",
            &top,
            ingress_listen,
            ingress_old.map(|v| ("ingress.advertised-ingress-endpoint", v)),
            INGRESS_PORT,
            &mut c.warnings,
        )?;
        c.listeners.admin = resolve_listener(
            "admin",
            &top,
            admin_listen,
            admin_old.map(|v| ("admin.advertised-admin-endpoint", v)),
            ADMIN_PORT,
            &mut c.warnings,
        )?;
        c.listeners.fabric = resolve_listener("", &top, None, None, FABRIC_PORT, &mut c.warnings)?;
        if let Some(v) = raw.shutdown_timeout {
            c.shutdown_timeout = parse_duration("shutdown-timeout", &v)?;
        }
        if let Some(v) = raw.log_filter {
            c.log.filter = v;
        }
        if let Some(v) = raw.log_format {
            c.log.format = LogFormat::parse(&v).ok_or_else(|| {
                invalid("log-format", &format!("`{v}` is not pretty, compact or json"))
            })?;
        }
        if let Some(v) = raw.log_disable_ansi_codes {
            c.log.disable_ansi_codes = v;
        }
        if let Some(v) = raw.tracing_endpoint {
            let v = v.trim().to_string();
            if !v.is_empty() {
                if !is_url(&v, &["http"]) {
                    return Err(invalid(
                        "tracing-endpoint",
                        &format!("`{v}` is not an http:// URL of an OTLP/gRPC collector, like http://127.0.0.1:4317"),
                    ));
                }
                c.tracing.endpoint = Some(v);
            }
        }
        if let Some(v) = raw.tracing_filter {
            c.tracing.filter = v;
        }
        if let Some(i) = raw.ingress {
            if let Some(v) = i.request_size_limit {
                c.ingress.request_size_limit_bytes =
                    parse_bytes("ingress.request-size-limit", &v)? as usize;
            }
            if let Some(v) = i.concurrent_api_requests_limit {
                c.ingress.concurrent_requests_max = v.max(1);
            }
        }
        if let Some(v) = raw.memory_budget {
            c.memory.budget_bytes = parse_bytes("memory-budget", &v)?;
            if c.memory.budget_bytes < MEMORY_BUDGET_BYTES_MIN {
                return Err(invalid(
                    "memory-budget",
                    &format!("must be at least {} MiB", MEMORY_BUDGET_BYTES_MIN >> 20),
                ));
            }
        }
        if let Some(v) = raw.rocksdb_total_memory_size {
            c.memory.store_caches_bytes = Some(parse_bytes("rocksdb-total-memory-size", &v)?);
        }
        if let Some(v) = raw.bifrost.and_then(|b| b.record_cache_memory_size) {
            c.memory.log_cache_bytes = Some(parse_bytes("bifrost.record-cache-memory-size", &v)?);
        }
        if let Some(admin) = raw.admin {
            if let Some(v) = admin.query_engine.and_then(|q| q.memory_size) {
                let bytes = parse_bytes("admin.query-engine.memory-size", &v)?;
                if bytes < 1024 * 1024 {
                    return Err(invalid(
                        "admin.query-engine.memory-size",
                        "must be at least 1 MiB",
                    ));
                }
                c.admin.query_memory_bytes = bytes;
            }
        }
        for (key, v, field) in [
            ("default-journal-retention", raw.default_journal_retention, 0),
            ("default-idempotency-retention", raw.default_idempotency_retention, 1),
            ("default-workflow-completion-retention", raw.default_workflow_completion_retention, 2),
        ] {
            let Some(v) = v else { continue };
            let ms = u64::try_from(parse_duration(key, &v)?.as_millis()).unwrap_or(u64::MAX);
            let r = &mut c.worker.retention;
            *[&mut r.journal_ms, &mut r.idempotency_ms, &mut r.workflow_completion_ms][field] = ms;
        }
        // Restate 1.7 reads the policy at the top level; `[invocation.default-retry-policy]`
        // (where earlier notes put it) is still accepted, and the top level wins.
        let legacy = raw.invocation.and_then(|i| i.default_retry_policy);
        if legacy.is_some() {
            c.warnings.push(
                "configuration key `invocation.default-retry-policy` is not where Restate 1.7 \
                 reads it; use `[default-retry-policy]`"
                    .into(),
            );
        }
        let policy = match (raw.default_retry_policy, legacy) {
            (Some(p), _) => Some(("default-retry-policy", p)),
            (None, Some(p)) => Some(("invocation.default-retry-policy", p)),
            (None, None) => None,
        };
        if let Some((key, p)) = policy {
            if let Some(v) = p.initial_interval {
                c.worker.retry_initial_interval =
                    parse_duration(&format!("{key}.initial-interval"), &v)?;
            }
            if let Some(v) = p.max_interval {
                c.worker.retry_max_interval = parse_duration(&format!("{key}.max-interval"), &v)?;
            }
            if let Some(v) = p.exponentiation_factor {
                if !(v.is_finite() && v >= 1.0) {
                    return Err(invalid(
                        &format!("{key}.exponentiation-factor"),
                        "expected a number of at least 1.0",
                    ));
                }
                c.worker.retry_factor = v;
            }
            if let Some(v) = p.max_attempts {
                c.worker.retry_attempts_max = v.max(1);
            }
            if let Some(v) = p.on_max_attempts {
                c.worker.retry_pause_on_max = match v.to_ascii_lowercase().as_str() {
                    "pause" => true,
                    "kill" => false,
                    _ => {
                        return Err(invalid(
                            &format!("{key}.on-max-attempts"),
                            "expected pause or kill",
                        ))
                    }
                };
            }
        }
        let (worker_invoker, cleanup) =
            raw.worker.map(|w| (w.invoker, w.cleanup_interval)).unwrap_or_default();
        if let Some(v) = cleanup {
            c.worker.cleanup_interval = parse_duration("worker.cleanup-interval", &v)?;
        }
        let mut key_file =
            raw.request_identity_private_key_pem_file.map(|f| (DEPRECATED_KEY_FILE_KEY, f));
        if key_file.is_some() {
            c.warnings.push(format!(
                "configuration key `{DEPRECATED_KEY_FILE_KEY}` is deprecated; use \
                 `{KEY_FILE_KEY}` instead"
            ));
        }
        let mut validity = VALIDITY_DEFAULT;
        if let Some(inv) = worker_invoker {
            if let Some(f) = inv.request_identity_private_key_pem_file {
                key_file = Some((KEY_FILE_KEY, f));
            }
            if let Some(v) = inv.request_identity_expiration {
                validity = parse_duration("worker.invoker.request-identity-expiration", &v)?;
            }
            if let Some(v) = inv.inactivity_timeout {
                c.worker.inactivity_timeout =
                    parse_duration("worker.invoker.inactivity-timeout", &v)?;
            }
            if let Some(v) = inv.abort_timeout {
                c.worker.abort_timeout = parse_duration("worker.invoker.abort-timeout", &v)?;
            }
            if let Some(v) = inv.in_flight_invocations_limit {
                c.worker.invocations_inflight_max = v.max(1);
            }
            if let Some(v) = inv.in_memory_queue_length_limit {
                c.worker.invoker_queue_max = v.max(1);
            }
        }
        if let Some(w) = raw.wal {
            if let Some(e) = w.engine {
                if !["auto", "uring", "std"].contains(&e.as_str()) {
                    return Err(invalid("wal.engine", "expected auto, uring or std"));
                }
                c.wal.engine = e;
            }
            if let Some(v) = w.segment_size {
                let b = parse_bytes("wal.segment-size", &v)?;
                let (min, max) =
                    (segment_format::SEGMENT_BYTES_MIN, segment_format::SEGMENT_BYTES_MAX);
                if !(min..=max).contains(&b) || b % 4096 != 0 {
                    return Err(invalid(
                        "wal.segment-size",
                        &format!(
                            "must be a multiple of 4 KiB from {} KiB to {} MiB",
                            min >> 10,
                            max >> 20
                        ),
                    ));
                }
                c.wal.segment_size_bytes = b;
            }
        }
        if let Some((key, file)) = key_file {
            if file.trim().is_empty() {
                return Err(invalid(key, "is empty; name the PEM file of an Ed25519 private key"));
            }
            let signer = RequestSigner::from_pem_file(Path::new(&file), validity)
                .map_err(|e| invalid(key, &e.to_string()))?;
            c.worker.request_identity = Some(Arc::new(signer));
            c.worker.request_identity_file = Some((PathBuf::from(file), validity));
        }
        c.worker.protocol_v7 = env.iter().any(|(k, v)| {
            k == "RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7" && matches!(v.as_str(), "true" | "1")
        });
        c.unknown_keys = unknown;
        Ok(c)
    }
}

impl Config {
    /// The effective configuration in Restate's schema (`--dump-config`): every key this
    /// version reads, with its value. Loading the text back gives the same configuration.
    pub fn to_toml(&self) -> String {
        use toml::Value as V;
        let s = |v: &str| V::String(v.to_string());
        let mut t = toml::Table::new();
        t.insert("base-dir".into(), s(&self.base_dir.display().to_string()));
        t.insert("node-name".into(), s(&self.node_name));
        t.insert("cluster-name".into(), s(&self.cluster_name));
        t.insert("default-num-partitions".into(), V::Integer(self.default_num_partitions.into()));
        t.insert("shutdown-timeout".into(), s(&fmt_duration(self.shutdown_timeout)));
        t.insert("log-filter".into(), s(&self.log.filter));
        t.insert("log-format".into(), s(self.log.format.as_str()));
        t.insert("log-disable-ansi-codes".into(), V::Boolean(self.log.disable_ansi_codes));
        if let Some(e) = &self.tracing.endpoint {
            t.insert("tracing-endpoint".into(), s(e));
        }
        t.insert("tracing-filter".into(), s(&self.tracing.filter));
        t.insert("memory-budget".into(), s(&fmt_bytes(self.memory.budget_bytes)));
        if let Some(b) = self.memory.store_caches_bytes {
            t.insert("rocksdb-total-memory-size".into(), s(&fmt_bytes(b)));
        }
        let r = &self.worker.retention;
        for (k, ms) in [
            ("default-journal-retention", r.journal_ms),
            ("default-idempotency-retention", r.idempotency_ms),
            ("default-workflow-completion-retention", r.workflow_completion_ms),
        ] {
            t.insert(k.into(), s(&fmt_duration(Duration::from_millis(ms))));
        }
        let listener = |t: &mut toml::Table, l: &ListenerOptions, fabric: bool| {
            t.insert("listen-mode".into(), s(l.listen_mode.as_str()));
            t.insert("bind-address".into(), s(&l.bind_address.to_string()));
            if let Some(a) = &l.advertised_address {
                t.insert("advertised-address".into(), s(a));
            }
            if let Some(h) = &l.advertised_host {
                t.insert("advertised-host".into(), s(h));
            }
            let _ = fabric;
        };
        listener(&mut t, &self.listeners.fabric, true);
        let w = &self.worker;
        let mut policy = toml::Table::new();
        policy.insert("initial-interval".into(), s(&fmt_duration(w.retry_initial_interval)));
        policy.insert("exponentiation-factor".into(), V::Float(w.retry_factor));
        policy.insert("max-attempts".into(), V::Integer(w.retry_attempts_max.into()));
        policy.insert(
            "on-max-attempts".into(),
            s(if w.retry_pause_on_max { "pause" } else { "kill" }),
        );
        policy.insert("max-interval".into(), s(&fmt_duration(w.retry_max_interval)));
        t.insert("default-retry-policy".into(), V::Table(policy));
        let mut invoker = toml::Table::new();
        invoker.insert("inactivity-timeout".into(), s(&fmt_duration(w.inactivity_timeout)));
        invoker.insert("abort-timeout".into(), s(&fmt_duration(w.abort_timeout)));
        invoker.insert(
            "in-flight-invocations-limit".into(),
            V::Integer(w.invocations_inflight_max as i64),
        );
        invoker
            .insert("in-memory-queue-length-limit".into(), V::Integer(w.invoker_queue_max as i64));
        if let Some((file, validity)) = &w.request_identity_file {
            invoker.insert(
                "request-identity-private-key-pem-file".into(),
                s(&file.display().to_string()),
            );
            invoker.insert("request-identity-expiration".into(), s(&fmt_duration(*validity)));
        }
        let mut worker = toml::Table::new();
        worker.insert("cleanup-interval".into(), s(&fmt_duration(w.cleanup_interval)));
        worker.insert("invoker".into(), V::Table(invoker));
        t.insert("worker".into(), V::Table(worker));
        let mut admin = toml::Table::new();
        listener(&mut admin, &self.listeners.admin, false);
        let mut qe = toml::Table::new();
        qe.insert("memory-size".into(), s(&fmt_bytes(self.admin.query_memory_bytes)));
        admin.insert("query-engine".into(), V::Table(qe));
        t.insert("admin".into(), V::Table(admin));
        let mut ingress = toml::Table::new();
        listener(&mut ingress, &self.listeners.ingress, false);
        ingress.insert(
            "request-size-limit".into(),
            s(&fmt_bytes(self.ingress.request_size_limit_bytes as u64)),
        );
        ingress.insert(
            "concurrent-api-requests-limit".into(),
            V::Integer(self.ingress.concurrent_requests_max as i64),
        );
        t.insert("ingress".into(), V::Table(ingress));
        if let Some(b) = self.memory.log_cache_bytes {
            let mut bifrost = toml::Table::new();
            bifrost.insert("record-cache-memory-size".into(), s(&fmt_bytes(b)));
            t.insert("bifrost".into(), V::Table(bifrost));
        }
        let mut wal = toml::Table::new();
        wal.insert("engine".into(), s(&self.wal.engine));
        wal.insert("segment-size".into(), s(&fmt_bytes(self.wal.segment_size_bytes)));
        t.insert("wal".into(), V::Table(wal));
        toml::to_string(&t).unwrap_or_default()
    }
}

/// A duration in the largest unit that divides it (`1m`, `500ms`, `1d`).
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms > 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A size in the largest binary unit that divides it (`32 MiB`).
fn fmt_bytes(b: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if b > 0 && b % size == 0 {
            return format!("{} {unit}", b / size);
        }
    }
    format!("{b} B")
}

/// Partitions of a new data directory unless configured: one per core, at most 16. Measured
/// on the project's 2-core machine class, where 2 partitions beat 1, 4 and 8 (see
/// `docs/benchmarks.md`, "Partitions").
pub fn default_partitions() -> u16 {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    cores.clamp(1, 16) as u16
}

/// Where Restate reads the request identity private key from.
const KEY_FILE_KEY: &str = "worker.invoker.request-identity-private-key-pem-file";
/// Restate's deprecated top-level name of [`KEY_FILE_KEY`], still accepted.
const DEPRECATED_KEY_FILE_KEY: &str = "request-identity-private-key-pem-file";

/// The smallest memory budget accepted. Bytes.
pub const MEMORY_BUDGET_BYTES_MIN: u64 = 16 * 1024 * 1024;

/// `RESTATE_*` variables that are not configuration keys.
const ENV_NOT_CONFIG: &[&str] = &["DISABLE_TELEMETRY", "EXPERIMENTAL_ENABLE_PROTOCOL_V7", "CONFIG"];

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

fn key_of(e: &toml::de::Error) -> String {
    e.message().split('`').nth(1).unwrap_or("?").to_string()
}

/// An environment value as the schema types its key. Keys we do not know keep the old guess
/// (they are reported as unknown anyway).
fn env_value(key: &str, var: &str, v: &str) -> Result<toml::Value, ConfigError> {
    let bad = |what: &str| ConfigError::Invalid {
        key: key.to_string(),
        message: format!("{var}=`{v}` is not {what}"),
    };
    Ok(match kind_of(key) {
        Some(Kind::Str) => toml::Value::String(v.to_string()),
        Some(Kind::Int) => toml::Value::Integer(v.trim().parse().map_err(|_| bad("an integer"))?),
        Some(Kind::Float) => toml::Value::Float(v.trim().parse().map_err(|_| bad("a number"))?),
        Some(Kind::Bool) => toml::Value::Boolean(match v.trim() {
            "true" => true,
            "false" => false,
            _ => return Err(bad("true or false")),
        }),
        Some(Kind::Size) => match v.trim().parse::<i64>() {
            Ok(i) => toml::Value::Integer(i),
            Err(_) => toml::Value::String(v.to_string()),
        },
        Some(Kind::Table) => return Err(bad("a table; set its keys with __")),
        None => {
            if let Ok(i) = v.parse::<i64>() {
                toml::Value::Integer(i)
            } else {
                match v {
                    "true" => toml::Value::Boolean(true),
                    "false" => toml::Value::Boolean(false),
                    _ => toml::Value::String(v.to_string()),
                }
            }
        }
    })
}

fn insert(tree: &mut toml::Table, path: &[String], value: toml::Value) {
    let (first, rest) = path.split_first().expect("non-empty path");
    if rest.is_empty() {
        tree.insert(first.clone(), value);
        return;
    }
    let entry = tree.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    if let toml::Value::Table(t) = entry {
        insert(t, rest, value);
    }
}

/// Every known key's value has its schema's type (and an integer the range its field takes),
/// so a wrong value is reported by its key, not by the value the deserializer tripped on.
fn check_kinds(tree: &toml::Table, prefix: &str) -> Result<(), ConfigError> {
    use toml::Value as V;
    for (k, v) in tree {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let Some(kind) = kind_of(&key) else { continue };
        let max: i64 = if key.ends_with("bind-port") || key == "default-num-partitions" {
            i64::from(u16::MAX)
        } else {
            i64::from(u32::MAX)
        };
        let ok = match (kind, v) {
            (Kind::Table, V::Table(t)) => {
                check_kinds(t, &key)?;
                true
            }
            (Kind::Str, V::String(_)) | (Kind::Bool, V::Boolean(_)) => true,
            (Kind::Int, V::Integer(i)) => (0..=max).contains(i),
            (Kind::Float, V::Float(_) | V::Integer(_)) => true,
            (Kind::Size, V::Integer(_) | V::String(_)) => true,
            _ => false,
        };
        if !ok {
            let expected = match kind {
                Kind::Table => "a table".to_string(),
                Kind::Str => "a string".to_string(),
                Kind::Bool => "true or false".to_string(),
                Kind::Int => format!("an integer from 0 to {max}"),
                Kind::Float => "a number".to_string(),
                Kind::Size => "a size like 32 MiB".to_string(),
            };
            return Err(invalid(&key, &format!("`{v}` is not {expected}")));
        }
    }
    Ok(())
}

fn collect_unknown(tree: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in tree {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        if kind_of(&key).is_none() {
            out.push(key);
            continue;
        }
        if let toml::Value::Table(t) = v {
            collect_unknown(t, &key, out);
        }
    }
}

/// One service's listener from its own keys (`section`), falling back to the top-level ones.
/// The fabric has no section: the top-level `bind-port`, `bind-address` and
/// `advertised-address` are its own.
fn resolve_listener(
    section: &str,
    top: &RawListen,
    own: Option<&RawListen>,
    deprecated: Option<(&str, &str)>,
    default_port: u16,
    warnings: &mut Vec<String>,
) -> Result<ListenerOptions, ConfigError> {
    let name =
        |sec: &str, k: &str| if sec.is_empty() { k.to_string() } else { format!("{sec}.{k}") };
    let key = |k: &str| name(section, k);
    let own_or = |f: fn(&RawListen) -> Option<&String>| -> Option<(String, String)> {
        match own.and_then(f) {
            Some(v) => Some((section.to_string(), v.clone())),
            None => f(top).map(|v| (String::new(), v.clone())),
        }
    };
    let listen_mode = match own_or(|r| r.listen_mode.as_ref()) {
        Some((sec, v)) => ListenMode::parse(&v).ok_or_else(|| {
            invalid(&name(&sec, "listen-mode"), &format!("`{v}` is not tcp, unix or all"))
        })?,
        None => ListenMode::All,
    };
    let random = own.and_then(|r| r.use_random_ports).or(top.use_random_ports).unwrap_or(false);
    let ip: std::net::IpAddr = match own_or(|r| r.bind_ip.as_ref()) {
        Some((sec, v)) => v
            .trim()
            .parse()
            .map_err(|_| invalid(&name(&sec, "bind-ip"), &format!("`{v}` is not an IP address")))?,
        None => std::net::Ipv4Addr::UNSPECIFIED.into(),
    };
    // The fabric's port and address are the top-level keys; a service's are its own only.
    let (port, address) = if section.is_empty() {
        (top.bind_port, top.bind_address.as_ref())
    } else {
        (own.and_then(|r| r.bind_port), own.and_then(|r| r.bind_address.as_ref()))
    };
    // Random ports replace the default ports; a port or address set for the service wins (the
    // more specific setting).
    let port = port.unwrap_or(if random { 0 } else { default_port });
    let bind_address = match address {
        Some(a) => parse_addr(&key("bind-address"), a)?,
        None => SocketAddr::new(ip, port),
    };
    let advertised_host = own_or(|r| r.advertised_host.as_ref()).map(|(_, v)| v);
    let own_address = if section.is_empty() {
        top.advertised_address.clone()
    } else {
        own.and_then(|r| r.advertised_address.clone())
    };
    let mut advertised_address = own_address.map(|v| (key("advertised-address"), v));
    if let Some((old, v)) = deprecated {
        let new = key("advertised-address");
        warnings.push(format!("configuration key `{old}` is deprecated; use `{new}` instead"));
        // As in Restate, the old key wins when both are set.
        advertised_address = Some((old.to_string(), v.to_string()));
    }
    let advertised_address = match advertised_address {
        Some((k, v)) => {
            let v = v.trim().to_string();
            if !is_url(&v, &["http", "https"]) && !v.starts_with("unix:") {
                return Err(invalid(&k, &format!("`{v}` is not a URL like http://host:port/")));
            }
            Some(v)
        }
        None => None,
    };
    Ok(ListenerOptions { listen_mode, bind_address, advertised_address, advertised_host })
}

/// Command-line flags that override configuration (Restate's `restate-server` flags). The
/// listener flags apply to every service, as Restate applies them.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub base_dir: Option<PathBuf>,
    pub node_name: Option<String>,
    pub listen_mode: Option<ListenMode>,
    pub use_random_ports: Option<bool>,
    pub bind_ip: Option<std::net::IpAddr>,
    pub bind_port: Option<u16>,
    pub bind_address: Option<SocketAddr>,
    pub advertised_host: Option<String>,
    pub advertised_address: Option<String>,
    pub default_num_partitions: Option<u16>,
    pub shutdown_timeout: Option<String>,
    pub log_filter: Option<String>,
    pub log_format: Option<LogFormat>,
    pub log_disable_ansi_codes: Option<bool>,
    pub tracing_endpoint: Option<String>,
}

impl Flags {
    fn apply(&self, tree: &mut toml::Table) {
        use toml::Value as V;
        let mut top = |k: &str, v: Option<V>| {
            if let Some(v) = v {
                tree.insert(k.into(), v);
            }
        };
        top("base-dir", self.base_dir.as_ref().map(|d| V::String(d.display().to_string())));
        top("node-name", self.node_name.clone().map(V::String));
        top("bind-port", self.bind_port.map(|p| V::Integer(p.into())));
        top("bind-address", self.bind_address.map(|a| V::String(a.to_string())));
        top("advertised-address", self.advertised_address.clone().map(V::String));
        top("default-num-partitions", self.default_num_partitions.map(|n| V::Integer(n.into())));
        top("shutdown-timeout", self.shutdown_timeout.clone().map(V::String));
        top("log-filter", self.log_filter.clone().map(V::String));
        top("log-format", self.log_format.map(|f| V::String(f.as_str().into())));
        top("log-disable-ansi-codes", self.log_disable_ansi_codes.map(V::Boolean));
        top("tracing-endpoint", self.tracing_endpoint.clone().map(V::String));
        let every: [(&str, Option<V>); 4] = [
            ("listen-mode", self.listen_mode.map(|m| V::String(m.as_str().into()))),
            ("use-random-ports", self.use_random_ports.map(V::Boolean)),
            ("bind-ip", self.bind_ip.map(|ip| V::String(ip.to_string()))),
            ("advertised-host", self.advertised_host.clone().map(V::String)),
        ];
        for (k, v) in every {
            let Some(v) = v else { continue };
            tree.insert(k.into(), v.clone());
            for section in ["admin", "ingress"] {
                insert(tree, &[section.to_string(), k.to_string()], v.clone());
            }
        }
        // `--bind-ip` keeps every listener on that interface, also where an address is set.
        if let Some(ip) = self.bind_ip {
            let retarget = |t: &mut toml::Table| {
                if let Some(V::String(a)) = t.get_mut("bind-address") {
                    if let Ok(mut addr) = a.parse::<SocketAddr>() {
                        addr.set_ip(ip);
                        *a = addr.to_string();
                    }
                }
            };
            retarget(tree);
            for section in ["admin", "ingress"] {
                if let Some(V::Table(t)) = tree.get_mut(section) {
                    retarget(t);
                }
            }
        }
    }
}

/// Whether `v` is an absolute URL with one of `schemes` and a host.
fn is_url(v: &str, schemes: &[&str]) -> bool {
    v.parse::<http::Uri>().is_ok_and(|u| {
        u.scheme_str().is_some_and(|s| schemes.contains(&s)) && u.authority().is_some()
    })
}

fn parse_addr(key: &str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| invalid(key, &format!("`{v}` is not an address like 127.0.0.1:8080")))
}

/// Durations in Restate's friendly form: `500ms`, `10s`, `1m`, `1h`, `1h 30m`, or ISO `PT10S`.
pub fn parse_duration(key: &str, v: &str) -> Result<Duration, ConfigError> {
    let s = v.trim();
    let bad = || invalid(key, &format!("`{v}` is not a duration like 500ms, 10s, 5m or PT10S"));
    if let Some(iso) = s.strip_prefix("PT").or_else(|| s.strip_prefix("pt")) {
        let mut total = 0f64;
        let mut num = String::new();
        for ch in iso.chars() {
            match ch {
                '0'..='9' | '.' => num.push(ch),
                'H' | 'h' | 'M' | 'm' | 'S' | 's' => {
                    let n: f64 = num.parse().map_err(|_| bad())?;
                    num.clear();
                    total += n * match ch.to_ascii_uppercase() {
                        'H' => 3600.0,
                        'M' => 60.0,
                        _ => 1.0,
                    };
                }
                _ => return Err(bad()),
            }
        }
        // `try_from`: a huge or non-finite number is a bad value, not a panic (the ingress
        // parses `?delay=` with this).
        return if num.is_empty() {
            Duration::try_from_secs_f64(total).map_err(|_| bad())
        } else {
            Err(bad())
        };
    }
    let mut total = Duration::ZERO;
    let mut any = false;
    for part in s.split_whitespace() {
        let idx = part.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = part.split_at(idx);
        let n: u64 = n.parse().map_err(|_| bad())?;
        let part = match unit {
            "ms" => Some(Duration::from_millis(n)),
            "s" | "sec" | "secs" => Some(Duration::from_secs(n)),
            "m" | "min" | "mins" => n.checked_mul(60).map(Duration::from_secs),
            "h" | "hr" | "hrs" => n.checked_mul(3600).map(Duration::from_secs),
            "d" | "day" | "days" => n.checked_mul(86_400).map(Duration::from_secs),
            _ => return Err(bad()),
        };
        total = part.and_then(|p| total.checked_add(p)).ok_or_else(bad)?;
        any = true;
    }
    if any {
        Ok(total)
    } else {
        Err(bad())
    }
}

/// Sizes as a number of bytes or a string like `32 MiB`, `64MB`, `1GiB`.
fn parse_bytes(key: &str, v: &toml::Value) -> Result<u64, ConfigError> {
    match v {
        toml::Value::Integer(i) if *i > 0 => Ok(*i as u64),
        toml::Value::String(s) => {
            let s = s.trim();
            let idx = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
            let (n, unit) = s.split_at(idx);
            // Restate writes sizes with a fraction (`32.0 MiB`).
            let n: f64 = n.parse().map_err(|_| invalid(key, "expected a size like 32 MiB"))?;
            if !(n.is_finite() && n >= 0.0) {
                return Err(invalid(key, "expected a size like 32 MiB"));
            }
            let mult = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "kb" => 1000,
                "kib" => 1024,
                "mb" => 1000 * 1000,
                "mib" => 1024 * 1024,
                "gb" => 1000 * 1000 * 1000,
                "gib" => 1024 * 1024 * 1024,
                _ => return Err(invalid(key, "expected a size like 32 MiB")),
            };
            Ok((n * mult as f64).round() as u64)
        }
        _ => Err(invalid(key, "expected a positive size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_overrides_nest_with_double_underscore() {
        let c = Config::load_from(
            None,
            &env(&[
                ("RESTATE_INGRESS__BIND_ADDRESS", "127.0.0.1:18080"),
                ("RESTATE_ADMIN__BIND_ADDRESS", "127.0.0.1:19070"),
                ("RESTATE_BASE_DIR", "/data"),
                ("RESTATE_DEFAULT_NUM_PARTITIONS", "2"),
                ("PATH", "/bin"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.listeners.ingress.bind_address, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(c.listeners.admin.bind_address, "127.0.0.1:19070".parse().unwrap());
        assert_eq!(c.base_dir, PathBuf::from("/data"));
        assert_eq!(c.default_num_partitions, 2);
        assert!(c.unknown_keys.is_empty());
    }

    #[test]
    fn retention_and_retry_defaults_are_top_level_as_in_restate() {
        let c = Config::load_from(
            None,
            &env(&[
                ("RESTATE_DEFAULT_JOURNAL_RETENTION", "2h"),
                ("RESTATE_DEFAULT_IDEMPOTENCY_RETENTION", "0s"),
                ("RESTATE_DEFAULT_WORKFLOW_COMPLETION_RETENTION", "3d"),
                ("RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS", "4"),
                ("RESTATE_INVOCATION__DEFAULT_RETRY_POLICY__MAX_ATTEMPTS", "9"),
            ]),
            None,
        )
        .unwrap();
        let r = c.worker.retention;
        assert_eq!((r.journal_ms, r.idempotency_ms), (2 * 3_600_000, 0));
        assert_eq!(r.workflow_completion_ms, 3 * 86_400_000);
        assert_eq!(c.worker.retry_attempts_max, 4, "the top-level policy wins");
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        assert!(
            c.warnings.iter().any(|w| w.contains("`[default-retry-policy]`")),
            "{:?}",
            c.warnings
        );
        let legacy = Config::load_from(
            None,
            &env(&[("RESTATE_INVOCATION__DEFAULT_RETRY_POLICY__MAX_ATTEMPTS", "9")]),
            None,
        )
        .unwrap();
        assert_eq!(legacy.worker.retry_attempts_max, 9, "still accepted alone");
        let e =
            Config::load_from(None, &env(&[("RESTATE_DEFAULT_JOURNAL_RETENTION", "soon")]), None)
                .unwrap_err();
        assert!(e.to_string().contains("default-journal-retention"), "{e}");
    }

    #[test]
    fn the_query_memory_budget_is_restates_key_and_has_a_floor() {
        let d = Config::load_from(None, &env(&[]), None).unwrap();
        assert_eq!(d.admin.query_memory_bytes, QUERY_MEMORY_BYTES_DEFAULT);
        let c = Config::load_from(
            None,
            &env(&[("RESTATE_ADMIN__QUERY_ENGINE__MEMORY_SIZE", "128 MiB")]),
            None,
        )
        .unwrap();
        assert_eq!(c.admin.query_memory_bytes, 128 * 1024 * 1024);
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        let e = Config::load_from(
            None,
            &env(&[("RESTATE_ADMIN__QUERY_ENGINE__MEMORY_SIZE", "1000")]),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("admin.query-engine.memory-size"), "{e}");
    }

    #[test]
    fn file_then_env_then_flag() {
        let dir = std::env::temp_dir().join(format!("ratchet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "base-dir = \"/from-file\"\n[ingress]\nbind-address = \"127.0.0.1:1\"\n[worker.invoker]\ninactivity-timeout = \"5s\"\n[metadata-server]\ntype = \"replicated\"\n",
        )
        .unwrap();
        let c = Config::load_from(
            Some(&f),
            &env(&[("RESTATE_INGRESS__BIND_ADDRESS", "127.0.0.1:2")]),
            Some(Path::new("/from-flag")),
        )
        .unwrap();
        assert_eq!(c.base_dir, PathBuf::from("/from-flag"));
        assert_eq!(c.listeners.ingress.bind_address.port(), 2);
        assert_eq!(c.worker.inactivity_timeout, Duration::from_secs(5));
        assert_eq!(c.unknown_keys, vec!["metadata-server".to_string()]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::load_from(None, &env(&[("RESTATE_ADMIN__BIND_ADDRESS", "nope")]), None)
            .unwrap_err();
        assert!(
            matches!(e, ConfigError::Invalid { ref key, .. } if key == "admin.bind-address"),
            "{e}"
        );
        let e = Config::load_from(None, &env(&[("RESTATE_UNKNOWN_THING", "1")]), None).unwrap();
        assert_eq!(e.unknown_keys, vec!["unknown-thing".to_string()]);
        for n in ["0", "1025"] {
            let e = Config::load_from(None, &env(&[("RESTATE_DEFAULT_NUM_PARTITIONS", n)]), None)
                .unwrap_err();
            assert!(e.to_string().contains("default-num-partitions"), "{e}");
        }
    }

    /// A test-only key (`openssl genpkey -algorithm ed25519`) and its public key id.
    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHYXQgQIriHN8qdZlCYoC/T2DzEFzzCX2zfE+xDjgl3Y
-----END PRIVATE KEY-----
";
    const KEY_ID: &str = "publickeyv1_A6SeJhTcFFaiQSv8XAFDqCB6rL48XKe1mMw4Fj3MLsoA";
    const KEY_ENV: &str = "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE";

    #[test]
    fn request_identity_key_is_read_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, KEY_PEM).unwrap();
        let key_s = key.display().to_string();

        let c = Config::load_from(None, &[], None).unwrap();
        assert!(c.worker.request_identity.is_none());

        let c = Config::load_from(None, &env(&[(KEY_ENV, &key_s)]), None).unwrap();
        let signer = c.worker.request_identity.expect("a signer");
        assert_eq!(signer.key_id(), KEY_ID);
        assert_eq!(signer.validity(), Duration::from_secs(60));
        assert!(c.unknown_keys.is_empty() && c.warnings.is_empty());

        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            format!(
                "[worker.invoker]\nrequest-identity-private-key-pem-file = {key_s:?}\n\
                 request-identity-expiration = \"5m\"\n"
            ),
        )
        .unwrap();
        let c = Config::load_from(Some(&f), &[], None).unwrap();
        let signer = c.worker.request_identity.expect("a signer");
        assert_eq!(signer.validity(), Duration::from_secs(300));
        assert!(c.unknown_keys.is_empty());

        // Restate's deprecated top-level name still works, with a warning.
        std::fs::write(&f, format!("request-identity-private-key-pem-file = {key_s:?}\n")).unwrap();
        let c = Config::load_from(Some(&f), &[], None).unwrap();
        assert_eq!(c.worker.request_identity.expect("a signer").key_id(), KEY_ID);
        assert!(c.unknown_keys.is_empty());
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("worker.invoker.request-identity-private-key-pem-file"));
    }

    #[test]
    fn bad_request_identity_key_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let not_pem = dir.path().join("not-pem.pem");
        std::fs::write(&not_pem, "hello\n").unwrap();
        let rsa_label = dir.path().join("rsa.pem");
        std::fs::write(
            &rsa_label,
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        for file in [&missing, &not_pem, &rsa_label] {
            let shown = file.display().to_string();
            let e = Config::load_from(None, &env(&[(KEY_ENV, &shown)]), None).unwrap_err();
            assert!(
                matches!(e, ConfigError::Invalid { ref key, .. }
                    if key == "worker.invoker.request-identity-private-key-pem-file"),
                "{e}"
            );
            let text = e.to_string();
            assert!(
                text.contains("worker.invoker.request-identity-private-key-pem-file"),
                "{text}"
            );
            assert!(text.contains(&shown), "{text}");
        }
        let e = Config::load_from(None, &env(&[(KEY_ENV, "")]), None).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        let e = Config::load_from(
            None,
            &env(&[("RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_EXPIRATION", "soon")]),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("request-identity-expiration"), "{e}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("k", "1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("k", "PT10S").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("k", "250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("k", "soon").is_err());
        // Overflow is a bad value, never a panic.
        assert!(parse_duration("k", "18446744073709551615d").is_err());
        assert!(parse_duration("k", "18446744073709551615s 18446744073709551615s").is_err());
        assert!(parse_duration("k", "PT99999999999999999999999999S").is_err());
        assert_eq!(parse_bytes("k", &toml::Value::String("32 MiB".into())).unwrap(), 32 << 20);
    }

    #[test]
    fn listeners_resolve_per_service_over_top_level_and_flags_over_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            r#"
listen-mode = "unix"
bind-ip = "127.0.0.1"
bind-port = 6122
[ingress]
listen-mode = "tcp"
bind-port = 18080
advertised-ingress-endpoint = "http://ing.example.com:18888/"
[admin]
use-random-ports = true
"#,
        )
        .unwrap();
        let c = Config::load_from(Some(&file), &env(&[]), None).unwrap();
        let l = &c.listeners;
        assert_eq!(l.ingress.listen_mode, ListenMode::Tcp, "the service's own key wins");
        assert_eq!(l.admin.listen_mode, ListenMode::Unix, "the top-level key is the default");
        assert_eq!(l.fabric.listen_mode, ListenMode::Unix);
        assert_eq!(l.ingress.bind_address, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(l.admin.bind_address, "127.0.0.1:0".parse().unwrap(), "random port");
        assert_eq!(l.fabric.bind_address, "127.0.0.1:6122".parse().unwrap());
        assert_eq!(l.ingress.advertised_address.as_deref(), Some("http://ing.example.com:18888/"));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("advertised-ingress-endpoint") && w.contains("deprecated")));
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        // Flags apply to every service, over the file's per-service keys (as Restate's do).
        let flags = Flags { listen_mode: Some(ListenMode::All), ..Flags::default() };
        let c = Config::load_with(Some(&file), &env(&[]), &flags).unwrap();
        assert_eq!(c.listeners.ingress.listen_mode, ListenMode::All);
        assert_eq!(c.listeners.admin.listen_mode, ListenMode::All);
        // A bad mode names the key.
        let e = Config::load_from(None, &env(&[("RESTATE_INGRESS__LISTEN_MODE", "both")]), None)
            .unwrap_err();
        assert!(e.to_string().contains("ingress.listen-mode"), "{e}");
    }

    #[test]
    fn environment_values_are_typed_by_the_schema() {
        let c = Config::load_from(None, &env(&[("RESTATE_NODE_NAME", "123")]), None).unwrap();
        assert_eq!(c.node_name, "123", "a numeric name stays a name");
        let e = Config::load_from(None, &env(&[("RESTATE_DEFAULT_NUM_PARTITIONS", "two")]), None)
            .unwrap_err();
        assert!(e.to_string().contains("default-num-partitions"), "{e}");
        let e = Config::load_from(None, &env(&[("RESTATE_USE_RANDOM_PORTS", "yes")]), None)
            .unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
        let c = Config::load_from(None, &env(&[("RESTATE_LOG_FORMAT", "json")]), None).unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        let e = Config::load_from(None, &env(&[("RESTATE_LOG_FORMAT", "xml")]), None).unwrap_err();
        assert!(e.to_string().contains("log-format"), "{e}");
    }

    #[test]
    fn the_dumped_configuration_loads_back_to_the_same_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::load_from(
            None,
            &env(&[
                ("RESTATE_NODE_NAME", "007"),
                ("RESTATE_ADMIN__LISTEN_MODE", "tcp"),
                ("RESTATE_SHUTDOWN_TIMEOUT", "90s"),
                ("RESTATE_MEMORY_BUDGET", "48MiB"),
                ("RESTATE_TRACING_ENDPOINT", "http://127.0.0.1:4317"),
            ]),
            Some(dir.path()),
        )
        .unwrap();
        let file = dir.path().join("dump.toml");
        std::fs::write(&file, c.to_toml()).unwrap();
        let back = Config::load_from(Some(&file), &env(&[]), None).unwrap();
        assert_eq!(back, c, "{}", c.to_toml());
        assert!(c.to_toml().contains("node-name = \"007\""));
        // Restate's own dump writes sizes with a fraction.
        assert_eq!(parse_bytes("k", &toml::Value::String("32.0 MiB".into())).unwrap(), 32 << 20);
    }
}
