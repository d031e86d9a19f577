//! End-to-end test harness: a server under test plus real Restate SDK services, on loopback.
//!
//! Owns every process it starts and nothing else: the server under test (Ratchet by default,
//! or the real `restate-server` when `RATCHET_E2E_SERVER` names its binary), the TypeScript
//! SDK service (`tests/services/ts`, run by `node` from `PATH`) and the Rust SDK service
//! (`tests/services/rust`, built by `scripts/test`). Each child runs in its own process group
//! and the whole group is SIGKILLed when the [`Fixture`] drops (and, as a safety net, when the
//! test process dies). Invariants: every port is a free `127.0.0.1` port picked at start;
//! every wait has a deadline; a server that exits early fails the test with its exit status
//! and the tail of its log; in Ratchet mode an unexpected `ERROR`/`WARN` line in the server's
//! log fails the test when the fixture drops. Fixtures are serialized across test processes by
//! a file lock, so a parallel runner never overlaps two servers on the two cores we have.

#![allow(dead_code)] // Each test binary uses a different subset of the harness.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Names the real `restate-server` binary to test against instead of Ratchet.
pub const SERVER_ENV: &str = "RATCHET_E2E_SERVER";

const SERVER_HEALTHY_TIMEOUT: Duration = Duration::from_secs(15);
const SERVICE_READY_TIMEOUT: Duration = Duration::from_secs(20);
const REGISTERED_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
const E2E_LOCK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const LOG_TAIL_LINES: usize = 60;

/// Services of the TypeScript test service (`tests/services/ts/service.mjs`).
pub const TS_SERVICES: [&str; 15] = [
    "Approval",
    "Brief",
    "Caller",
    "Core",
    "Counter",
    "Flaky",
    "Forgetful",
    "Greeter",
    "Idem",
    "LazyCounter",
    "Runner",
    "Seq",
    "Signals",
    "Sleeper",
    "Stubborn",
];
/// Services of the Rust test service (`tests/services/rust`).
pub const RUST_SERVICES: [&str; 8] = [
    "RustApproval",
    "RustBrief",
    "RustCounter",
    "RustFlaky",
    "RustGreeter",
    "RustRunner",
    "RustSignals",
    "RustTally",
];

/// Which SDK services a fixture starts and registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sdks {
    Ts,
    Rust,
    Both,
}

impl Sdks {
    fn ts(self) -> bool {
        matches!(self, Sdks::Ts | Sdks::Both)
    }
    fn rust(self) -> bool {
        matches!(self, Sdks::Rust | Sdks::Both)
    }
}

/// Which SDK service a stats query goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sdk {
    Ts,
    Rust,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ServerKind {
    Ratchet(PathBuf),
    Restate(PathBuf),
}

impl ServerKind {
    fn from_env() -> ServerKind {
        match std::env::var_os(SERVER_ENV) {
            Some(path) if !path.is_empty() => {
                let path = PathBuf::from(path);
                assert!(path.is_file(), "{SERVER_ENV}={} is not a file", path.display());
                ServerKind::Restate(path)
            }
            _ => ServerKind::Ratchet(PathBuf::from(env!("CARGO_BIN_EXE_ratchet"))),
        }
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn ts_service_dir() -> PathBuf {
    manifest_dir().join("tests/services/ts")
}

fn rust_service_bin() -> PathBuf {
    manifest_dir().join("tests/services/rust/target/release/rust-test-service")
}

/// The `restate` CLI installed by `npm ci` in the TS service directory.
pub fn restate_cli() -> PathBuf {
    ts_service_dir().join("node_modules/.bin/restate")
}

/// Free loopback ports, all bound at once so no two are the same, then released.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port"))
        .collect();
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().expect("local addr").port();
    }
    ports
}

/// A child process in its own process group; the group is SIGKILLed on drop.
#[derive(Debug)]
struct Proc {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> Proc {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("clone log file handle");
        cmd.stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log_err));
        cmd.process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only makes one
        // async-signal-safe syscall. It is a safety net: if the test process dies without
        // running `Drop`, the child gets SIGKILL instead of outliving the test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Proc { name: name.to_string(), child, log_path: log_path.to_path_buf() }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// SIGKILLs the process group and reaps the leader.
    fn kill(&mut self) {
        if self.exited().is_none() {
            let pgid = i32::try_from(self.pid()).expect("pid fits i32");
            // SAFETY: plain syscall; `-pgid` addresses only the group this harness created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = strip_ansi(&read_lossy(path));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), as servers color their logs.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Log lines that report an error or a warning: a level token `ERROR`/`WARN` as the first or
/// second word (the tracing formats put it right after the timestamp), or a Rust panic.
fn error_or_warn_lines(log: &str) -> Vec<String> {
    strip_ansi(log)
        .lines()
        .filter(|line| {
            line.split_whitespace().take(2).any(|w| w == "ERROR" || w == "WARN")
                || line.contains("panicked at")
        })
        .map(str::to_string)
        .collect()
}

/// An HTTP response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Asserts a reply's status and JSON body.
pub fn assert_reply(r: &Reply, status: u16, body: Value) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json(), body);
}

/// Starts a handler with `/send` and returns its invocation id.
pub async fn send(fx: &mut Fixture, path: &str, body: Value) -> String {
    let r = fx.call(&format!("{path}/send"), body).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["invocationId"].as_str().expect("invocationId").to_string()
}

/// Attaches to an invocation through the ingress.
pub async fn attach(fx: &mut Fixture, id: &str) -> Reply {
    fx.ingress("GET", &format!("/restate/invocation/{id}/attach"), None).await
}

/// POSTs a JSON body given as text (for bodies `Fixture::call` cannot express, e.g. a bare
/// string for an awakeable).
pub async fn post_raw(fx: &mut Fixture, path: &str, body: &'static str) -> Reply {
    let url = fx.ingress_url(path);
    let ct = [("content-type", "application/json")];
    fx.request(
        "POST",
        &url,
        Some(Bytes::from_static(body.as_bytes())),
        &ct,
        Duration::from_secs(30),
    )
    .await
}

/// The wall clock in milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_millis()).expect("milliseconds fit u64")
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("header is visible ASCII"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("response (status {}) is not JSON ({e}): {:?}", self.status, self.text())
        })
    }

    /// The `x-restate-id` header, checked to look like an invocation id.
    pub fn invocation_id(&self) -> String {
        let id = self
            .header("x-restate-id")
            .unwrap_or_else(|| panic!("no x-restate-id header in {self:?}"))
            .to_string();
        assert!(id.starts_with("inv_1") && id.len() == 38, "not an invocation id: {id:?}");
        id
    }
}

/// Serializes fixtures across test processes (nextest runs one test per process).
#[derive(Debug)]
struct E2eLock {
    _file: File,
}

impl E2eLock {
    async fn acquire() -> E2eLock {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e_sdk.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let deadline = Instant::now() + E2E_LOCK_TIMEOUT;
        loop {
            // SAFETY: plain syscall on a file descriptor we own; released when `file` closes.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return E2eLock { _file: file };
            }
            assert!(Instant::now() < deadline, "waited too long for {}", path.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How a fixture differs from the default one.
#[derive(Clone, Debug, Default)]
pub struct FixtureOptions {
    /// Extra environment of the server (configuration as `RESTATE_*` variables).
    pub env: Vec<(String, String)>,
    /// The TS service speaks request-response instead of bidirectional streaming.
    pub ts_request_response: bool,
    /// The server's base directory (a fresh one in the scratch directory when `None`).
    pub base_dir: Option<PathBuf>,
    /// The harness holds the listening sockets, as systemd does, and hands them to every
    /// start of the server (`LISTEN_FDS`): TCP ingress, admin and fabric, and a unix ingress
    /// socket at [`Server::held_unix_ingress`]. Ratchet only.
    pub socket_activation: bool,
}

/// Listening sockets held across server restarts, in `LISTEN_FDNAMES` order.
#[derive(Debug)]
struct Held {
    tcp: [TcpListener; 3],
    unix: std::os::unix::net::UnixListener,
    unix_path: PathBuf,
}

/// The names the held sockets are handed over with.
const HELD_FDNAMES: &str = "ingress:admin:fabric:ingress";

/// The server under test, restartable on the same base directory and ports.
#[derive(Debug)]
pub struct Server {
    kind: ServerKind,
    pub base_dir: PathBuf,
    env: Vec<(String, String)>,
    log_path: PathBuf,
    pub ingress_port: u16,
    pub admin_port: u16,
    node_port: u16,
    proc: Option<Proc>,
    starts: u32,
    held: Option<Held>,
}

impl Server {
    fn command(&self) -> Command {
        let mut cmd = match &self.kind {
            ServerKind::Ratchet(bin) if self.held.is_some() => {
                // `LISTEN_PID` must be the server's pid: a shell learns its own and execs.
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg("LISTEN_PID=$$ exec \"$0\" \"$@\"").arg(bin).arg("server");
                cmd.env("LISTEN_FDS", "4").env("LISTEN_FDNAMES", HELD_FDNAMES);
                let held = self.held.as_ref().expect("held sockets");
                let fds: Vec<i32> =
                    held.tcp.iter().map(|l| l.as_raw_fd()).chain([held.unix.as_raw_fd()]).collect();
                // SAFETY: runs in the forked child before exec and makes only
                // async-signal-safe syscalls (dup, dup2, fcntl) on fds this process owns.
                unsafe {
                    cmd.pre_exec(move || {
                        // Out of the way first, so no source is overwritten by another's dup2.
                        // Close-on-exec: these temporary copies must not leak into the server.
                        let mut high = Vec::with_capacity(fds.len());
                        for fd in &fds {
                            let h = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                            if h < 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            high.push(h);
                        }
                        for (i, h) in high.iter().enumerate() {
                            // dup2 leaves FD_CLOEXEC clear on the new fd.
                            if libc::dup2(*h, 3 + i as i32) < 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                        }
                        Ok(())
                    });
                }
                cmd
            }
            ServerKind::Ratchet(bin) => {
                let mut cmd = Command::new(bin);
                cmd.arg("server");
                cmd
            }
            ServerKind::Restate(bin) => {
                let mut cmd = Command::new(bin);
                cmd.arg("--no-logo");
                cmd
            }
        };
        cmd.arg("--base-dir").arg(&self.base_dir);
        cmd.current_dir(&self.base_dir);
        cmd.env("RESTATE_INGRESS__BIND_ADDRESS", format!("127.0.0.1:{}", self.ingress_port));
        cmd.env("RESTATE_ADMIN__BIND_ADDRESS", format!("127.0.0.1:{}", self.admin_port));
        // The node-to-node (fabric) port: loopback too, never the default 0.0.0.0:5122.
        cmd.env("RESTATE_BIND_ADDRESS", format!("127.0.0.1:{}", self.node_port));
        cmd.env("RESTATE_DISABLE_TELEMETRY", "true");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn start(&mut self) {
        assert!(self.proc.is_none(), "server already running");
        self.starts += 1;
        let marker = format!("\n===== e2e harness: server start #{} =====\n", self.starts);
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, marker.as_bytes()));
        self.proc = Some(Proc::spawn("server under test", self.command(), &self.log_path));
    }

    /// SIGKILL: no shutdown hook runs, as in a crash.
    pub fn kill9(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Panics with the exit status and the log tail if the server has exited.
    fn assert_running(&mut self, while_doing: &str) {
        let Some(proc) = self.proc.as_mut() else {
            panic!("server under test is not running (while {while_doing})");
        };
        if let Some(status) = proc.exited() {
            panic!(
                "server under test exited with {status} while {while_doing}; last lines of {}:\n{}",
                self.log_path.display(),
                tail(&self.log_path, LOG_TAIL_LINES)
            );
        }
    }

    fn is_ratchet(&self) -> bool {
        matches!(self.kind, ServerKind::Ratchet(_))
    }

    /// Waits until the server exits by itself; its exit status, or `None` after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.proc.as_mut().and_then(|p| p.exited()) {
                self.proc = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Sends SIGTERM (a clean stop) and waits for the exit.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30)).await
    }

    /// Sends `sig` to the running server (not to its process group); nothing when it is not
    /// running.
    pub fn signal(&mut self, sig: i32) {
        if let Some(p) = self.proc.as_mut() {
            if p.exited().is_some() {
                return;
            }
            let pid = i32::try_from(p.pid()).expect("pid fits i32");
            // SAFETY: plain syscall on the process this harness started and has not reaped.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Everything the server wrote to its log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Starts the server without waiting for it to be healthy (for failures at start-up).
    pub fn start_only(&mut self) {
        self.start();
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// The unix ingress socket the harness holds (with `socket_activation`).
    pub fn held_unix_ingress(&self) -> Option<PathBuf> {
        self.held.as_ref().map(|h| h.unix_path.clone())
    }
}

#[derive(Debug)]
struct ServiceProc {
    proc: Proc,
    port: u16,
    stats_port: u16,
}

/// A server under test with SDK services started and registered.
#[derive(Debug)]
pub struct Fixture {
    name: String,
    dir: Option<tempfile::TempDir>,
    pub server: Server,
    ts: Option<ServiceProc>,
    rust: Option<ServiceProc>,
    /// Further services a test started ([`Fixture::start_ts_script`]).
    extra: Vec<Proc>,
    /// Deployment ids by SDK, from registration.
    pub ts_deployment: Option<String>,
    pub rust_deployment: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
    allowed_log_lines: Vec<String>,
    _lock: E2eLock,
}

impl Fixture {
    /// Starts the server under test and the chosen SDK services, and registers them.
    pub async fn start(name: &str, sdks: Sdks) -> Fixture {
        Fixture::start_with(name, sdks, FixtureOptions::default()).await
    }

    /// Like [`Fixture::start`], with options.
    pub async fn start_with(name: &str, sdks: Sdks, opts: FixtureOptions) -> Fixture {
        let lock = E2eLock::acquire().await;
        let kind = ServerKind::from_env();
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e_sdk");
        std::fs::create_dir_all(&root).expect("create the e2e scratch dir");
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(&root)
            .expect("create a scratch dir");
        let base_dir = opts.base_dir.clone().unwrap_or_else(|| dir.path().join("base"));
        std::fs::create_dir_all(&base_dir).expect("create the base dir");
        let [ingress_port, admin_port, node_port, ts_port, ts_stats, rust_port, rust_stats] =
            free_ports::<7>();
        let mut client = Client::builder(TokioExecutor::new());
        // No idle connections: the server is killed and restarted under the client's feet.
        client.pool_max_idle_per_host(0);
        let mut fx = Fixture {
            name: name.to_string(),
            server: Server {
                kind,
                base_dir,
                env: opts.env.clone(),
                log_path: dir.path().join("server.log"),
                ingress_port,
                admin_port,
                node_port,
                proc: None,
                starts: 0,
                held: opts.socket_activation.then(|| {
                    let tcp = [ingress_port, admin_port, node_port].map(|port| {
                        TcpListener::bind(("127.0.0.1", port)).expect("hold a loopback port")
                    });
                    let unix_path = dir.path().join("held-ingress.sock");
                    let unix = std::os::unix::net::UnixListener::bind(&unix_path)
                        .expect("hold a unix socket");
                    Held { tcp, unix, unix_path }
                }),
            },
            dir: Some(dir),
            ts: None,
            rust: None,
            extra: Vec::new(),
            ts_deployment: None,
            rust_deployment: None,
            client: client.build_http(),
            allowed_log_lines: Vec::new(),
            _lock: lock,
        };
        fx.server.start();
        if sdks.ts() {
            fx.ts = Some(fx.start_ts_service(ts_port, ts_stats, opts.ts_request_response));
        }
        if sdks.rust() {
            fx.rust = Some(fx.start_rust_service(rust_port, rust_stats));
        }
        fx.wait_server_healthy().await;
        if sdks.ts() {
            fx.wait_service_ready(Sdk::Ts).await;
            fx.ts_deployment = Some(fx.register(ts_port, &TS_SERVICES).await);
        }
        if sdks.rust() {
            fx.wait_service_ready(Sdk::Rust).await;
            fx.rust_deployment = Some(fx.register(rust_port, &RUST_SERVICES).await);
        }
        let mut names: Vec<&str> = Vec::new();
        if sdks.ts() {
            names.extend(TS_SERVICES);
        }
        if sdks.rust() {
            names.extend(RUST_SERVICES);
        }
        fx.wait_ingress_knows(&names).await;
        fx
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("scratch dir").path()
    }

    fn start_ts_service(&self, port: u16, stats_port: u16, request_response: bool) -> ServiceProc {
        let dir = ts_service_dir();
        assert!(
            dir.join("node_modules/@restatedev/restate-sdk").is_dir(),
            "the TS test service is not installed: run `npm ci --prefix tests/services/ts` \
             (scripts/test does)"
        );
        let mut cmd = Command::new("node");
        cmd.current_dir(&dir)
            .arg("service.mjs")
            .arg("--port")
            .arg(port.to_string())
            .arg("--stats-port")
            .arg(stats_port.to_string());
        if request_response {
            cmd.arg("--request-response");
        }
        let proc = Proc::spawn("TS test service (node)", cmd, &self.dir().join("ts-service.log"));
        ServiceProc { proc, port, stats_port }
    }

    /// Starts `node {script} --port P {args}` in the TS service directory on a free loopback
    /// port P, owned by the fixture like its other services, and waits until it listens.
    /// Returns P. The script is not registered.
    pub async fn start_ts_script(&mut self, script: &str, args: &[&str]) -> u16 {
        let dir = ts_service_dir();
        assert!(
            dir.join("node_modules/@restatedev/restate-sdk").is_dir(),
            "the TS test service is not installed: run `npm ci --prefix tests/services/ts` \
             (scripts/test does)"
        );
        let [port] = free_ports::<1>();
        let mut cmd = Command::new("node");
        cmd.current_dir(&dir).arg(script).arg("--port").arg(port.to_string()).args(args);
        let log = self.dir().join(format!("{script}-{port}.log"));
        let mut proc = Proc::spawn(&format!("TS script {script} (node)"), cmd, &log);
        let deadline = Instant::now() + SERVICE_READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = proc.exited() {
                panic!(
                    "{} exited with {status} at start-up; its log:\n{}",
                    proc.name,
                    tail(&log, LOG_TAIL_LINES)
                );
            }
            assert!(Instant::now() < deadline, "{script} not listening in time");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        self.extra.push(proc);
        port
    }

    fn start_rust_service(&self, port: u16, stats_port: u16) -> ServiceProc {
        let bin = rust_service_bin();
        assert!(
            bin.is_file(),
            "the Rust test service is not built: run `cargo build --release --manifest-path \
             tests/services/rust/Cargo.toml` (scripts/test does)"
        );
        let mut cmd = Command::new(bin);
        cmd.arg("--port").arg(port.to_string()).arg("--stats-port").arg(stats_port.to_string());
        let proc = Proc::spawn("Rust test service", cmd, &self.dir().join("rust-service.log"));
        ServiceProc { proc, port, stats_port }
    }

    fn service(&mut self, sdk: Sdk) -> &mut ServiceProc {
        match sdk {
            Sdk::Ts => self.ts.as_mut().expect("fixture started without the TS service"),
            Sdk::Rust => self.rust.as_mut().expect("fixture started without the Rust service"),
        }
    }

    async fn wait_service_ready(&mut self, sdk: Sdk) {
        let deadline = Instant::now() + SERVICE_READY_TIMEOUT;
        loop {
            let service = self.service(sdk);
            if let Some(status) = service.proc.exited() {
                panic!(
                    "{} exited with {status} at start-up; its log:\n{}",
                    service.proc.name,
                    tail(&service.proc.log_path, LOG_TAIL_LINES)
                );
            }
            let sdk_addr = SocketAddr::from(([127, 0, 0, 1], service.port));
            let stats_port = service.stats_port;
            let listening =
                TcpStream::connect_timeout(&sdk_addr, Duration::from_millis(200)).is_ok();
            if listening {
                let url = format!("http://127.0.0.1:{stats_port}/stats");
                if let Ok(reply) =
                    self.try_request("GET", &url, None, &[], Duration::from_secs(2)).await
                {
                    if reply.status == 200 {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "{sdk:?} test service not ready in time");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn wait_server_healthy(&mut self) {
        let deadline = Instant::now() + SERVER_HEALTHY_TIMEOUT;
        loop {
            self.server.assert_running("waiting for it to become healthy");
            let admin = self.admin_url("/health");
            let ingress = self.ingress_url("/restate/health");
            let timeout = Duration::from_secs(2);
            let admin_ok = matches!(
                self.try_request("GET", &admin, None, &[], timeout).await,
                Ok(r) if r.status == 200
            );
            let ingress_ok = admin_ok
                && matches!(
                    self.try_request("GET", &ingress, None, &[], timeout).await,
                    Ok(r) if r.status == 200
                );
            if admin_ok && ingress_ok {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "server under test not healthy after {SERVER_HEALTHY_TIMEOUT:?} (admin GET \
                     /health ok: {admin_ok}, ingress GET /restate/health ok: {ingress_ok}); last \
                     lines of {}:\n{}",
                    self.server.log_path.display(),
                    tail(&self.server.log_path, LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `POST /deployments` for the service on `port`; expects 201 and exactly `services`.
    async fn register(&mut self, port: u16, services: &[&str]) -> String {
        let body = serde_json::json!({ "uri": format!("http://127.0.0.1:{port}") });
        let reply = self.admin("POST", "/deployments", Some(&body)).await;
        assert_eq!(reply.status, 201, "registration of port {port}: {}", reply.text());
        let json = reply.json();
        let id = json["id"].as_str().expect("deployment id").to_string();
        assert!(id.starts_with("dp_"), "deployment id {id:?}");
        assert_eq!(reply.header("location"), Some(format!("deployments/{id}").as_str()));
        let names: BTreeSet<&str> = json["services"]
            .as_array()
            .expect("services array")
            .iter()
            .map(|s| s["name"].as_str().expect("service name"))
            .collect();
        let expected: BTreeSet<&str> = services.iter().copied().collect();
        assert_eq!(names, expected, "services registered from port {port}");
        id
    }

    /// Waits until ingress `GET /restate/health` lists every one of `names`.
    async fn wait_ingress_knows(&mut self, names: &[&str]) {
        let deadline = Instant::now() + REGISTERED_TIMEOUT;
        loop {
            let reply = self.ingress("GET", "/restate/health", None).await;
            assert_eq!(reply.status, 200, "ingress health: {}", reply.text());
            let json = reply.json();
            let known: BTreeSet<&str> = json["services"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if names.iter().all(|n| known.contains(n)) {
                return;
            }
            assert!(Instant::now() < deadline, "ingress knows only {known:?}, want {names:?}");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.server.admin_port)
    }

    pub fn ingress_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.server.ingress_port)
    }

    pub async fn try_request(
        &self,
        method: &str,
        url: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Reply, String> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(body.unwrap_or_default())).map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no response within {timeout:?}")),
        }
    }

    /// Sends a request; on a transport failure, fails the test with the server's state.
    pub async fn request(
        &mut self,
        method: &str,
        url: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Reply {
        match self.try_request(method, url, body, headers, timeout).await {
            Ok(reply) => reply,
            Err(e) => {
                self.server.assert_running(&format!("answering {method} {url}"));
                panic!("{method} {url} failed: {e}{}", self.dead_services());
            }
        }
    }

    /// Says which SDK service processes have died, if any (a dead service stalls invocations).
    fn dead_services(&mut self) -> String {
        let mut out = String::new();
        for service in [self.ts.as_mut(), self.rust.as_mut()].into_iter().flatten() {
            if let Some(status) = service.proc.exited() {
                out.push_str(&format!(
                    "\n{} had exited with {status}; its log:\n{}",
                    service.proc.name,
                    tail(&service.proc.log_path, LOG_TAIL_LINES)
                ));
            }
        }
        out
    }

    /// An ingress request with an optional JSON body (sent as `application/json`).
    pub async fn ingress(&mut self, method: &str, path: &str, json: Option<&Value>) -> Reply {
        let url = self.ingress_url(path);
        match json {
            Some(v) => {
                let body = Bytes::from(serde_json::to_vec(v).expect("serialize"));
                let ct = [("content-type", "application/json")];
                self.request(method, &url, Some(body), &ct, REQUEST_TIMEOUT).await
            }
            None => self.request(method, &url, None, &[], REQUEST_TIMEOUT).await,
        }
    }

    /// `POST` a JSON body to an ingress path.
    pub async fn call(&mut self, path: &str, json: Value) -> Reply {
        self.ingress("POST", path, Some(&json)).await
    }

    /// An ingress request with a raw body and content type.
    pub async fn ingress_raw(
        &mut self,
        path: &str,
        content_type: &str,
        body: &'static str,
    ) -> Reply {
        let url = self.ingress_url(path);
        let ct = [("content-type", content_type)];
        self.request("POST", &url, Some(Bytes::from_static(body.as_bytes())), &ct, REQUEST_TIMEOUT)
            .await
    }

    /// An admin request with an optional JSON body.
    pub async fn admin(&mut self, method: &str, path: &str, json: Option<&Value>) -> Reply {
        let url = self.admin_url(path);
        match json {
            Some(v) => {
                let body = Bytes::from(serde_json::to_vec(v).expect("serialize"));
                let ct = [("content-type", "application/json")];
                self.request(method, &url, Some(body), &ct, REQUEST_TIMEOUT).await
            }
            None => self.request(method, &url, None, &[], REQUEST_TIMEOUT).await,
        }
    }

    /// A cloneable ingress client for concurrent calls from spawned tasks.
    pub fn handle(&self) -> Ingress {
        Ingress { client: self.client.clone(), base: self.ingress_url("") }
    }

    /// The side-effect counters of an SDK service (`GET /stats`).
    pub async fn stats(&mut self, sdk: Sdk) -> Value {
        let port = self.service(sdk).stats_port;
        let url = format!("http://127.0.0.1:{port}/stats");
        let reply = self.request("GET", &url, None, &[], Duration::from_secs(5)).await;
        assert_eq!(reply.status, 200);
        reply.json()
    }

    /// One counter of [`Fixture::stats`]; 0 when it was never bumped.
    pub async fn stat(&mut self, sdk: Sdk, name: &str) -> u64 {
        self.stats(sdk).await[name].as_u64().unwrap_or(0)
    }

    /// SIGKILLs the server under test (the SDK services keep running).
    pub fn kill9_server(&mut self) {
        self.server.kill9();
    }

    /// Starts the server again on the same base dir and ports, and waits until it is healthy.
    pub async fn restart_server(&mut self) {
        self.server.start();
        self.wait_server_healthy().await;
    }

    /// Restarts the server without the environment variables `names`, and waits until it is
    /// healthy.
    pub async fn restart_without(&mut self, names: &[&str]) {
        self.server.env.retain(|(k, _)| !names.contains(&k.as_str()));
        self.server.kill9();
        self.restart_server().await;
    }

    /// Lets a Ratchet log line containing `needle` pass the ERROR/WARN check.
    pub fn allow_server_log(&mut self, needle: &str) {
        self.allowed_log_lines.push(needle.to_string());
    }

    /// Runs the real `restate` CLI against this server; returns (exit code, stdout+stderr).
    pub async fn cli(&self, args: &[&str]) -> (i32, String) {
        self.cli_with_env(args, &[]).await
    }

    /// [`Fixture::cli`] with extra environment (e.g. `EDITOR` for `state edit`).
    pub async fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let cli = restate_cli();
        assert!(
            cli.exists(),
            "the restate CLI is not installed: run `npm ci --prefix tests/services/ts`"
        );
        let home = self.dir().join("cli-home");
        std::fs::create_dir_all(&home).expect("create the CLI config dir");
        let name: String = args
            .join("_")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
            .take(100)
            .collect();
        let out_path = self.dir().join(format!("cli-{name}.log"));
        let mut cmd = Command::new(&cli);
        cmd.args(args)
            .current_dir(self.dir())
            .env("RESTATE_CLI_CONFIG_HOME", &home)
            .env("RESTATE_ADMIN_URL", self.admin_url("/"))
            .env("RESTATE_INGRESS_URL", self.ingress_url("/"))
            .env("NO_COLOR", "1")
            .env_remove("RESTATE_HOST")
            .env_remove("RESTATE_ENVIRONMENT")
            .env_remove("RESTATE_AUTH_TOKEN")
            .env_remove("RESTATE_CLI_CONFIG")
            .envs(env.iter().copied());
        let mut proc = Proc::spawn("restate CLI", cmd, &out_path);
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = proc.exited() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "`restate {}` did not finish in time",
                args.join(" ")
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        let output = strip_ansi(&read_lossy(&out_path));
        (status.code().unwrap_or(-1), output)
    }

    fn check_server_log(&self) {
        if !self.server.is_ratchet() {
            return;
        }
        let log = read_lossy(&self.server.log_path);
        let unexpected: Vec<String> = error_or_warn_lines(&log)
            .into_iter()
            .filter(|line| !self.allowed_log_lines.iter().any(|a| line.contains(a.as_str())))
            .collect();
        assert!(
            unexpected.is_empty(),
            "unexpected ERROR/WARN lines in the server log ({}):\n{}",
            self.server.log_path.display(),
            unexpected.join("\n")
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.kill9();
        if std::thread::panicking() {
            let dead = self.dead_services();
            if !dead.is_empty() {
                eprintln!("{dead}");
            }
        }
        self.ts = None;
        self.rust = None;
        self.extra.clear();
        if std::thread::panicking() {
            // Keep the logs and data of a failed test, and say where they are.
            if let Some(dir) = self.dir.take() {
                let path = dir.keep();
                eprintln!(
                    "e2e test '{}' failed; logs and data kept in {}",
                    self.name,
                    path.display()
                );
                eprintln!(
                    "last lines of the server log:\n{}",
                    tail(&path.join("server.log"), LOG_TAIL_LINES)
                );
            }
            return;
        }
        self.check_server_log();
    }
}

/// A cloneable ingress client (see [`Fixture::handle`]).
#[derive(Clone, Debug)]
pub struct Ingress {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Ingress {
    /// `POST` a JSON body to an ingress path; a transport failure is an `Err`.
    pub async fn try_call(&self, path: &str, json: Value) -> Result<Reply, String> {
        let body = Bytes::from(serde_json::to_vec(&json).expect("serialize"));
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("request");
        let resp = self.client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply { status: parts.status.as_u16(), headers: parts.headers, body })
    }

    /// `POST` a JSON body to an ingress path.
    pub async fn call(&self, path: &str, json: Value) -> Reply {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.try_call(path, json)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => panic!("POST {path} failed (is the server under test alive?): {e}"),
            Err(_) => panic!("POST {path}: no response within {REQUEST_TIMEOUT:?}"),
        }
    }
}

/// A deadline for a polling loop: `tick` sleeps a little, or fails the test once it passed.
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
    what: String,
}

impl Deadline {
    pub fn after(timeout: Duration, what: &str) -> Deadline {
        Deadline { at: Instant::now() + timeout, timeout, what: what.to_string() }
    }

    pub async fn tick(&self) {
        assert!(
            Instant::now() < self.at,
            "timed out after {:?} waiting for {}",
            self.timeout,
            self.what
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_found_through_colors() {
        let log = "\u{1b}[2m2026-01-01T00:00:00Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m ratchet: x\n\
                   2026-01-01T00:00:00Z  INFO ratchet: WARN in text is fine\n\
                   2026-01-01T00:00:00Z ERROR ratchet::wal: boom\n";
        let found = error_or_warn_lines(log);
        assert_eq!(found.len(), 2, "{found:?}");
    }
}
