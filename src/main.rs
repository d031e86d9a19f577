//! The `ratchet` binary: command-line entry point.
//!
//! `ratchet server` runs a node from configuration: a TOML file in Restate's schema,
//! `RESTATE_*` environment variables, then the flags `restate-server` has (flags win).
//! `ratchet up` runs a developer node on 127.0.0.1 in a fresh temporary directory with one
//! partition, prints where it listens, and removes the directory on exit unless `--retain`.
//!
//! Exit codes: 0 after a clean stop, 2 for a usage or configuration error, 1 when the node
//! cannot start (a listener, the data directory), 3 when a component failed while running.
//! Every failure prints one line starting `ratchet:` on standard error.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ratchet::config::{Config, Flags, ListenMode, LogFormat};
use ratchet::listeners::Service;

mod query;

#[derive(Debug, Parser)]
#[command(
    name = "ratchet",
    version,
    about = "A durable execution server for Restate SDK services",
    long_about = None,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node (configuration: Restate's schema, from a file, RESTATE_* variables and flags)
    Server(Box<ServerArgs>),
    /// Run a developer node on 127.0.0.1 in a temporary directory
    Up(UpArgs),
    /// Print the version
    Version,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Configuration file (TOML, Restate's schema)
    #[arg(short = 'c', long, value_name = "FILE", env = "RESTATE_CONFIG")]
    config_file: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit, creating nothing
    #[arg(long)]
    dump_config: bool,
    /// Do not print the name banner on a terminal
    #[arg(long)]
    no_logo: bool,
    /// Listen on unix sockets, TCP sockets, or both, for every service (over the services'
    /// own keys; RESTATE_LISTEN_MODE is the top-level key, which they override)
    #[arg(long, value_enum)]
    listen_mode: Option<ListenMode>,
    /// Let the kernel pick every TCP port (printed on standard output at start)
    #[arg(long, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    use_random_ports: Option<bool>,
    /// Host name to advertise for every service
    #[arg(long, value_name = "HOST")]
    advertised_host: Option<String>,
    /// Local interface address to listen on, for every service
    #[arg(long, value_name = "IP")]
    bind_ip: Option<std::net::IpAddr>,
    /// Port of the node (fabric) endpoint
    #[arg(long, value_name = "PORT", env = "RESTATE_BIND_PORT")]
    bind_port: Option<u16>,
    /// Address of the node (fabric) endpoint, e.g. 127.0.0.1:5122; overrides bind-ip and bind-port
    #[arg(long, value_name = "ADDRESS", env = "RESTATE_BIND_ADDRESS")]
    bind_address: Option<std::net::SocketAddr>,
    /// URL the node (fabric) endpoint advertises
    #[arg(long, value_name = "URL", env = "RESTATE_ADVERTISED_ADDRESS")]
    advertised_address: Option<String>,
    /// Name of this node (defaults to the host name)
    #[arg(long, value_name = "NAME", env = "RESTATE_NODE_NAME")]
    node_name: Option<String>,
    /// Data directory (default: restate-data under the working directory)
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Partitions of a new data directory (ignored for an existing one)
    #[arg(long, value_name = "N")]
    default_num_partitions: Option<u16>,
    /// How long a stopping node waits for requests in flight (e.g. 30s, 1m)
    #[arg(long, value_name = "DURATION")]
    shutdown_timeout: Option<String>,
    /// OTLP/gRPC collector to export invocation spans to, e.g. http://127.0.0.1:4317
    #[arg(long, value_name = "URL", env = "RESTATE_TRACING_ENDPOINT")]
    tracing_endpoint: Option<String>,
    /// Log filter in RUST_LOG syntax (RUST_LOG itself wins)
    #[arg(long, value_name = "FILTER")]
    log_filter: Option<String>,
    /// Log format
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// No ANSI colours in logs
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    log_disable_ansi_codes: Option<bool>,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Let the kernel pick every port
    #[arg(short = 'r', long)]
    use_random_ports: bool,
    /// Listen on unix sockets only (in the data directory)
    #[arg(short = 'u', long)]
    use_unix_sockets: bool,
    /// Keep the data directory after exit
    #[arg(long)]
    retain: bool,
    /// Use this data directory instead of a temporary one (kept after exit)
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// Configuration file (TOML, Restate's schema)
    #[arg(short = 'c', long, value_name = "FILE")]
    config_file: Option<PathBuf>,
}

/// glibc malloc arenas. By default glibc keeps up to 8 per core, each holding on to memory
/// freed by the threads that used it: under load that doubled the resident size for no gain
/// (measured in `docs/memory.md`). `MALLOC_ARENA_MAX` in the environment still wins.
const MALLOC_ARENAS_MAX: i32 = 2;

fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads start.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_MAX);
        }
    }
}

/// Blocks (or unblocks) SIGTERM and SIGINT in the calling thread; threads started meanwhile
/// inherit the mask. Blocked from the first instruction until the handlers exist, a signal
/// during start-up waits and then stops the node cleanly instead of killing it.
fn mask_stop_signals(block: bool) {
    // SAFETY: plain signal-mask calls on a set built here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let how = if block { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

fn main() -> ExitCode {
    mask_stop_signals(true);
    limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("ratchet {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Server(args) => server(*args),
        Command::Up(args) => up(args),
    }
}

fn server(a: ServerArgs) -> ExitCode {
    let flags = Flags {
        base_dir: a.base_dir,
        node_name: a.node_name,
        listen_mode: a.listen_mode,
        use_random_ports: a.use_random_ports,
        bind_ip: a.bind_ip,
        bind_port: a.bind_port,
        bind_address: a.bind_address,
        advertised_host: a.advertised_host,
        advertised_address: a.advertised_address,
        default_num_partitions: a.default_num_partitions,
        shutdown_timeout: a.shutdown_timeout,
        log_filter: a.log_filter,
        log_format: a.log_format,
        log_disable_ansi_codes: a.log_disable_ansi_codes,
        tracing_endpoint: a.tracing_endpoint,
    };
    let config = match load(a.config_file.as_deref(), &flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if a.dump_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    init_tracing(&config);
    if !a.no_logo && std::io::stdout().is_terminal() {
        println!("Ratchet {}\n", env!("CARGO_PKG_VERSION"));
    }
    serve(config, None, |b| {
        // The first lines of standard output: where to reach the node, also with random ports.
        println!("Admin: {}", b.advertised(Service::Admin));
        println!("HTTP Ingress: {}", b.advertised(Service::Ingress));
        println!("Message Fabric: {}", b.advertised(Service::Fabric));
    })
}

fn up(a: UpArgs) -> ExitCode {
    let temporary = a.base_dir.is_none();
    let dir = a.base_dir.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        std::env::temp_dir().join(format!("ratchet-up-{}-{nanos}", std::process::id()))
    });
    let flags = Flags {
        base_dir: Some(dir.clone()),
        node_name: Some("embedded".into()),
        listen_mode: a.use_unix_sockets.then_some(ListenMode::Unix),
        use_random_ports: a.use_random_ports.then_some(true),
        bind_ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
        default_num_partitions: Some(1),
        ..Flags::default()
    };
    // A developer node on loopback whatever a configuration file says: `bind_ip` moves
    // configured addresses too.
    let config = match load(a.config_file.as_deref(), &flags) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let remove = temporary && !a.retain;
    init_tracing(&config);
    let code = serve(config, remove.then(|| dir.clone()), |b| {
        println!("Ratchet {} is up.", env!("CARGO_PKG_VERSION"));
        println!("  Admin:          {}", b.advertised(Service::Admin));
        println!("  Ingress:        {}", b.advertised(Service::Ingress));
        let admin = b.advertised(Service::Admin).to_string();
        match admin.starts_with("http") {
            true => println!("  Web UI:         {}/ui/", admin.trim_end_matches('/')),
            false => println!("  Web UI:         (the admin API listens on a unix socket only)"),
        }
        println!("  Data directory: {}", dir.display());
        println!("Register a service with: restate deployments register http://localhost:9080");
        println!(
            "Press Ctrl-C to stop{}.",
            if remove { " (the data directory is then removed; --retain keeps it)" } else { "" }
        );
    });
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}

fn load(file: Option<&std::path::Path>, flags: &Flags) -> Result<Config, ExitCode> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    Config::load_with(file, &env, flags).map_err(|e| {
        eprintln!("ratchet: {e}");
        ExitCode::from(2)
    })
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    // RUST_LOG wins over log-filter, as in Restate.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.filter.clone());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("ratchet: log filter `{filter}` is not valid ({e}); using the default");
        EnvFilter::new(ratchet::config::LOG_FILTER_DEFAULT)
    });
    let ansi = !config.log.disable_ansi_codes && std::io::stderr().is_terminal();
    // Under systemd the journal takes each line as a record: pretty's multi-line records
    // would be split, so they are written compact there.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some() && !std::io::stderr().is_terminal();
    let format = match config.log.format {
        LogFormat::Pretty if journal => LogFormat::Compact,
        f => f,
    };
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => b.pretty().with_ansi(ansi).try_init(),
        LogFormat::Compact => b.compact().with_ansi(ansi).try_init(),
        LogFormat::Json => b.json().with_ansi(false).try_init(),
    };
}

fn serve(
    config: Config,
    cleanup: Option<PathBuf>,
    on_ready: impl FnOnce(&ratchet::runtime::Bound),
) -> ExitCode {
    // Before any thread starts: the handed-over fds are taken and their variables cleared.
    let activated = match ratchet::systemd::take_listen_fds() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ratchet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ratchet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let signals = match Signals::install(cleanup) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ratchet: cannot catch signals: {e}");
                return Err(None);
            }
        };
        // This thread (the one running the node) now takes them, through the handlers.
        mask_stop_signals(false);
        ratchet::runtime::run(config, activated, Some(query::factory()), signals.first(), |b| {
            on_ready(b);
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        })
        .await
        .map_err(Some)
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(None) => ExitCode::FAILURE,
        Err(Some(e @ ratchet::runtime::StartError::Fatal { .. })) => {
            eprintln!("ratchet: fatal: {e}");
            ExitCode::from(3)
        }
        Err(Some(e)) => {
            eprintln!("ratchet: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT, caught from before the node starts (a signal during a long recovery
/// stops it cleanly once it is up, instead of killing it). The first asks for a clean stop;
/// a second exits at once with status 1: everything acknowledged is already durable in the
/// log, only the drain is cut short.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    /// Removed on a second signal too (`ratchet up`'s temporary directory).
    cleanup: Option<PathBuf>,
}

impl Signals {
    fn install(cleanup: Option<PathBuf>) -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            cleanup,
        })
    }

    async fn first(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
            }
            eprintln!("ratchet: second signal during shutdown; exiting now without draining");
            if let Some(dir) = &self.cleanup {
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(1);
        });
    }
}
