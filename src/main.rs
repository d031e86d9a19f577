//! The `ratchet` binary: command-line entry point.
//!
//! `ratchet server` runs a node from configuration (file, `RESTATE_*` environment, flags).
//! `ratchet up` runs a developer node on 127.0.0.1 in a fresh temporary directory with one
//! partition, prints where it listens, and removes the directory on exit unless `--retain`.

use std::path::PathBuf;
use std::process::ExitCode;

use ratchet::config::Config;

mod query;

const USAGE: &str = "usage:
  ratchet server [--config-file FILE] [--base-dir DIR] [--bind-ip IP]
      Run a node. Configuration follows Restate's schema: a TOML file, RESTATE_* environment
      variables with __ for nesting (RESTATE_INGRESS__BIND_ADDRESS=127.0.0.1:8080), then flags.
  ratchet up [--retain] [--base-dir DIR]
      Run a developer node on 127.0.0.1 in a temporary directory (removed on exit unless --retain).
  ratchet version";

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

fn main() -> ExitCode {
    limit_malloc_arenas();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut config_file: Option<PathBuf> = None;
    let mut base_dir: Option<PathBuf> = None;
    let mut retain = false;
    let mut bind_ip: Option<std::net::IpAddr> = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let r = match flag {
            "--config-file" => value("--config-file").map(|v| config_file = Some(v.into())),
            "--base-dir" => value("--base-dir").map(|v| base_dir = Some(v.into())),
            "--bind-ip" => value("--bind-ip").and_then(|v| {
                v.parse()
                    .map(|ip| bind_ip = Some(ip))
                    .map_err(|_| format!("--bind-ip: `{v}` is not an IP address"))
            }),
            "--retain" => {
                retain = true;
                Ok(())
            }
            // Accepted for compatibility with restate-server command lines.
            "--no-logo" => Ok(()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument `{other}`")),
        };
        if let Err(e) = r {
            eprintln!("ratchet: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    match cmd.as_str() {
        "version" | "--version" | "-V" => {
            println!("ratchet {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "server" => {
            init_tracing();
            let mut config = match Config::load(config_file.as_deref(), base_dir.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ratchet: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(ip) = bind_ip {
                config.ingress.bind_address.set_ip(ip);
                config.admin.bind_address.set_ip(ip);
            }
            serve(config, |b| {
                tracing::info!(
                    "ingress listening on http://{}, admin on http://{}",
                    b.ingress,
                    b.admin
                );
            })
        }
        "up" => {
            init_tracing();
            let dir = base_dir.unwrap_or_else(|| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                std::env::temp_dir().join(format!("ratchet-up-{}-{nanos}", std::process::id()))
            });
            let mut config = match Config::load(config_file.as_deref(), Some(&dir)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ratchet: {e}");
                    return ExitCode::from(2);
                }
            };
            config.default_num_partitions = 1;
            let loopback = |a: std::net::SocketAddr| {
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port())
            };
            config.ingress.bind_address = loopback(config.ingress.bind_address);
            config.admin.bind_address = loopback(config.admin.bind_address);
            let code = serve(config, |b| {
                println!("Ratchet is up (data in {}).", dir.display());
                println!("  Admin:   http://{}", b.admin);
                println!("  Ingress: http://{}", b.ingress);
                println!(
                    "Register a service with: restate deployments register http://127.0.0.1:9080"
                );
                println!(
                    "Press Ctrl-C to stop{}.",
                    if retain { "" } else { " (the data directory is removed)" }
                );
            });
            if !retain {
                let _ = std::fs::remove_dir_all(&dir);
            }
            code
        }
        other => {
            eprintln!("ratchet: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    let filter = std::env::var("RESTATE_LOG_FILTER")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn serve(config: Config, on_ready: impl FnOnce(&ratchet::runtime::Bound)) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ratchet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(ratchet::runtime::run(
        config,
        Some(query::factory()),
        shutdown_signal(),
        on_ready,
    ));
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ ratchet::runtime::StartError::Fatal { .. }) => {
            eprintln!("ratchet: fatal: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("ratchet: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
