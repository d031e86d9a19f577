//! The operations surface of the `ratchet` binary, seen from outside: the command line
//! (`--help`, `--version`, usage errors), `--dump-config`, the listeners in each listen mode
//! (TCP on 127.0.0.1, unix sockets in the data directory, the start-up banner), the real
//! `restate` CLI over the admin unix socket, advertised addresses, start-up failures, log
//! formats, Prometheus `/metrics` (and the Grafana dashboard's check script), sd_notify,
//! `ratchet up`, and the drain on SIGTERM (calls in flight finish, bounded by
//! `shutdown-timeout`; a second signal cuts it; a signal during start-up is a clean stop).
//!
//! Invariants of this file:
//! - Every process it starts runs in its own process group behind a guard that SIGKILLs the
//!   group on drop (and gets SIGKILL if the test process dies first).
//! - Every TCP address is on 127.0.0.1; servers pick random ports (`--use-random-ports`) or
//!   free ports picked here.
//! - Every wait has a deadline and fails the test with the child's output when it passes.
//! - Children get a cleared environment (only `PATH` and what a test sets), so `RESTATE_*`
//!   variables of the caller never leak into what is asserted.
//! - Nothing is skipped: a missing tool (`python3`, the `restate` CLI, `node`) or a missing
//!   `grafana/check_dashboard.py` fails the test.

mod support;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd as _, RawFd};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::{Fixture, FixtureOptions, Sdk, Sdks};

const BIN: &str = env!("CARGO_BIN_EXE_ratchet");
/// A server prints its banner within this.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// A server answers `/health` with 200 within this after its banner.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(15);
/// A stopping server exits within this after SIGTERM (nothing is in flight).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// A start-up failure is reported within this: it fails rather than hangs (a taken port
/// fails in milliseconds; the bound is for a loaded machine).
const FAIL_FAST: Duration = Duration::from_secs(10);
/// One-shot commands (`--help`, `--dump-config`, python, the CLI) finish within this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------
// Processes

/// A child process in its own process group; the group is SIGKILLed when this drops. Its
/// standard output and error are collected by reader threads.
struct Proc {
    what: String,
    child: std::process::Child,
    status: Option<ExitStatus>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    mut from: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let to = buf.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => to.lock().expect("output buffer").extend_from_slice(&chunk[..n]),
            }
        }
    });
    (buf, reader)
}

impl Proc {
    fn spawn(what: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.process_group(0);
        // SAFETY: runs in the forked child before exec; one async-signal-safe syscall. If the
        // test process dies without dropping the guard, the child gets SIGKILL.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (stdout, out_reader) = collect(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = collect(child.stderr.take().expect("piped stderr"));
        Proc {
            what: what.to_string(),
            child,
            status: None,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("stdout")).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr")).into_owned()
    }

    fn output(&self) -> String {
        format!("--- stdout of {}\n{}\n--- stderr\n{}", self.what, self.stdout(), self.stderr())
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on the process this guard started (not yet reaped).
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Its exit status, waiting at most `timeout`; fails the test (with the output) after it.
    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                // Let the reader threads take what the pipes still hold (they end at EOF).
                let drained = Instant::now() + Duration::from_secs(2);
                while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < drained {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {timeout:?}\n{}",
                self.what,
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until standard output holds `n` complete lines; fails if the process exits first.
    async fn wait_stdout_lines(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            let complete = out.matches('\n').count();
            if complete >= n {
                return out.lines().take(n).map(str::to_string).collect();
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited with {status} before printing {n} lines\n{}",
                    self.what,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} printed fewer than {n} lines in {timeout:?}\n{}",
                self.what,
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until standard output has a complete line starting (after leading blanks) with
    /// each of `labels`; returns what follows each label, trimmed. Fails if the process exits
    /// first.
    async fn wait_stdout_labels(&mut self, labels: &[&str], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.stdout();
            let complete = out.rsplit_once('\n').map_or("", |(lines, _)| lines);
            let found: Vec<Option<String>> = labels
                .iter()
                .map(|label| {
                    complete
                        .lines()
                        .find_map(|l| l.trim_start().strip_prefix(label))
                        .map(|v| v.trim().to_string())
                })
                .collect();
            if found.iter().all(Option::is_some) {
                return found.into_iter().flatten().collect();
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited with {status} before printing {labels:?}\n{}",
                    self.what,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print {labels:?} in {timeout:?}\n{}",
                self.what,
                self.output()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            // SAFETY: `-pid` addresses only the process group this guard created.
            unsafe {
                libc::kill(-self.pid(), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

/// What a one-shot command did.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!("killed by signal {:?}: {}", self.status.signal(), self.report())
        })
    }

    fn report(&self) -> String {
        format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.status, self.stdout, self.stderr)
    }

    /// The one `ratchet: ...` line a start-up failure prints on standard error.
    fn failure_line(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "want exactly one line on stderr: {}", self.report());
        assert!(
            lines[0].starts_with("ratchet: "),
            "the line must start `ratchet: `: {}",
            self.report()
        );
        lines[0].to_string()
    }
}

/// Runs `cmd` to its end, which must come within `timeout`.
async fn run(what: &str, cmd: Command, timeout: Duration) -> Ran {
    let mut p = Proc::spawn(what, cmd);
    let status = p.wait_exit(timeout).await;
    Ran { status, stdout: p.stdout(), stderr: p.stderr() }
}

/// `ratchet` with a cleared environment (only `PATH`).
fn ratchet(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.args(args);
    cmd
}

/// `ratchet server` on `base` with loopback random ports.
fn server_cmd(base: &Path, extra: &[&str]) -> Command {
    let mut cmd = ratchet(&["server", "--base-dir"]);
    cmd.arg(base).args(["--bind-ip", "127.0.0.1", "--use-random-ports", "true"]).args(extra);
    cmd
}

fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("create a scratch dir")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("addr")
        .port()
}

// ---------------------------------------------------------------------------------------
// HTTP over TCP and unix sockets

#[derive(Clone, Debug, PartialEq)]
enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// An advertised URL whose host is a name, not an address here (nothing to connect to).
    Elsewhere(String),
}

impl Addr {
    /// The address behind an advertised URL: `http://127.0.0.1:P/` or `unix:/path`.
    fn from_url(url: &str) -> Addr {
        if let Some(path) = url.strip_prefix("unix:") {
            return Addr::Unix(PathBuf::from(path));
        }
        let hostport = url
            .strip_prefix("http://")
            .and_then(|r| r.strip_suffix('/'))
            .unwrap_or_else(|| panic!("not an http://host:port/ URL: {url:?}"));
        match hostport.parse() {
            Ok(a) => Addr::Tcp(a),
            Err(_) => Addr::Elsewhere(url.to_string()),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Addr::Tcp(a) => a.port(),
            other => panic!("{other:?} is not a TCP address here"),
        }
    }
}

async fn exchange<T>(io: T, req: http::Request<Full<Bytes>>) -> Result<(u16, String), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One HTTP/1.1 request on a fresh connection.
async fn request(
    addr: &Addr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    request_with(addr, method, path, body, &[], REQUEST_TIMEOUT).await
}

/// [`request`] with extra headers and its own deadline.
async fn request_with(
    addr: &Addr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| e.to_string())?;
    let go = async {
        match addr {
            Addr::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(|e| format!("connect {a}: {e}"))?;
                exchange(TokioIo::new(s), req).await
            }
            Addr::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| format!("connect {}: {e}", p.display()))?;
                exchange(TokioIo::new(s), req).await
            }
            Addr::Elsewhere(url) => Err(format!("{url} is not on this machine")),
        }
    };
    match tokio::time::timeout(timeout, go).await {
        Ok(r) => r,
        Err(_) => Err(format!("{method} {path} on {addr:?}: no answer in {timeout:?}")),
    }
}

async fn get(addr: &Addr, path: &str) -> (u16, String) {
    request(addr, "GET", path, "").await.unwrap_or_else(|e| panic!("GET {path} on {addr:?}: {e}"))
}

// ---------------------------------------------------------------------------------------
// A server under test

/// A `ratchet server` started by a test, with the addresses of its banner.
struct Node {
    proc: Proc,
    base: PathBuf,
    banner: Vec<String>,
    admin: Addr,
    ingress: Addr,
    fabric: Addr,
}

impl Node {
    async fn start(what: &str, cmd: Command, base: &Path) -> Node {
        let mut proc = Proc::spawn(what, cmd);
        let banner = proc.wait_stdout_lines(3, START_TIMEOUT).await;
        let field = |i: usize, label: &str| -> Addr {
            let url = banner[i]
                .strip_prefix(label)
                .unwrap_or_else(|| panic!("banner line {} is not `{label}...`: {banner:?}", i + 1));
            Addr::from_url(url)
        };
        let (admin, ingress, fabric) =
            (field(0, "Admin: "), field(1, "HTTP Ingress: "), field(2, "Message Fabric: "));
        wait_status(&mut proc, &admin, "/health", 200).await;
        Node { proc, base: base.to_path_buf(), banner, admin, ingress, fabric }
    }

    async fn wait_status(&mut self, addr: &Addr, path: &str, status: u16) -> String {
        wait_status(&mut self.proc, addr, path, status).await
    }

    /// SIGTERM, then the exit status (which must come within [`STOP_TIMEOUT`]).
    async fn stop(&mut self) -> ExitStatus {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(STOP_TIMEOUT).await
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.base.join(format!("{name}.sock"))
    }
}

/// Polls `GET path` on `addr` until it answers `status`; fails if `proc` exits first.
async fn wait_status(proc: &mut Proc, addr: &Addr, path: &str, status: u16) -> String {
    let deadline = Instant::now() + HEALTHY_TIMEOUT;
    loop {
        let last = request(addr, "GET", path, "").await;
        if let Ok((s, body)) = &last {
            if *s == status {
                return body.clone();
            }
        }
        if let Some(st) = proc.exited() {
            panic!("{} exited with {st} while waiting for {path}\n{}", proc.what, proc.output());
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} on {addr:?} never answered {status} (last: {last:?})\n{}",
            proc.output()
        );
        tokio::time::sleep(POLL).await;
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// The TCP addresses a process listens on, from `/proc` (its socket inodes in LISTEN state).
fn tcp_listeners(pid: i32) -> BTreeSet<SocketAddr> {
    let mut inodes = BTreeSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read the child's fds").flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(n.to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" || !inodes.contains(f[9]) {
                continue;
            }
            let (ip, port) = f[1].split_once(':').expect("ip:port");
            let port = u16::from_str_radix(port, 16).expect("hex port");
            let word = |i: usize| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).expect("hex ip");
            let addr = if ip.len() == 8 {
                SocketAddr::from((Ipv4Addr::from(word(0).to_ne_bytes()), port))
            } else {
                let mut b = [0u8; 16];
                for i in 0..4 {
                    b[i * 4..i * 4 + 4].copy_from_slice(&word(i).to_ne_bytes());
                }
                SocketAddr::from((Ipv6Addr::from(b), port))
            };
            out.insert(addr);
        }
    }
    out
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

// ---------------------------------------------------------------------------------------
// 1. The command line

#[tokio::test]
async fn help_version_and_usage_errors() {
    let r = run("ratchet --help", ratchet(&["--help"]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 0, "{}", r.report());
    let commands: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for c in ["server", "up"] {
        assert!(commands.contains(&c), "`ratchet --help` lists no `{c}` command: {}", r.report());
    }

    let r = run("ratchet server --help", ratchet(&["server", "--help"]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 0, "{}", r.report());
    for flag in [
        "--config-file",
        "--dump-config",
        "--listen-mode",
        "--use-random-ports",
        "--advertised-host",
        "--advertised-address",
        "--bind-ip",
        "--bind-port",
        "--bind-address",
        "--node-name",
        "--base-dir",
        "--default-num-partitions",
        "--shutdown-timeout",
        "--log-filter",
        "--log-format",
        "--tracing-endpoint",
    ] {
        assert!(r.stdout.contains(flag), "`ratchet server --help` lacks {flag}: {}", r.report());
    }

    let r = run("ratchet up --help", ratchet(&["up", "--help"]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 0, "{}", r.report());
    for flag in ["--use-random-ports", "--use-unix-sockets", "--retain", "--base-dir"] {
        assert!(r.stdout.contains(flag), "`ratchet up --help` lacks {flag}: {}", r.report());
    }

    let r = run("ratchet --version", ratchet(&["--version"]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 0, "{}", r.report());
    assert_eq!(r.stdout, format!("ratchet {}\n", env!("CARGO_PKG_VERSION")), "{}", r.report());

    // No command: usage on stderr, exit 2.
    let r = run("ratchet", ratchet(&[]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 2, "{}", r.report());
    assert!(r.stderr.contains("Usage:"), "{}", r.report());

    let r = run("ratchet --no-such-flag", ratchet(&["--no-such-flag"]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 2, "{}", r.report());
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.report());

    let dir = scratch("ops-usage-");
    let base = dir.path().join("data");
    let mut cmd = server_cmd(&base, &["--listen-mode", "both"]);
    cmd.current_dir(dir.path());
    let r = run("ratchet server --listen-mode both", cmd, COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 2, "{}", r.report());
    assert!(r.stderr.contains("--listen-mode"), "{}", r.report());
    assert!(!base.exists(), "a usage error created the data dir");
}

// ---------------------------------------------------------------------------------------
// 2. --dump-config

#[tokio::test]
async fn dump_config_prints_parseable_toml_creates_nothing_and_round_trips() {
    let dir = scratch("ops-dump-");
    let base = dir.path().join("never-created");
    let dump = |env: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = ratchet(&["server", "--dump-config", "--base-dir"]);
        cmd.arg(&base).args(extra).envs(env.iter().copied()).current_dir(dir.path());
        cmd
    };

    let r = run("--dump-config", dump(&[("RESTATE_NODE_NAME", "123")], &[]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 0, "{}", r.report());
    let table: toml::Table =
        r.stdout.parse().unwrap_or_else(|e| panic!("not TOML ({e}): {}", r.report()));
    assert_eq!(table.get("node-name"), Some(&toml::Value::String("123".into())), "{}", r.stdout);
    assert!(r.stdout.lines().any(|l| l == "node-name = \"123\""), "{}", r.stdout);
    assert_eq!(table.get("base-dir").and_then(|v| v.as_str()), base.to_str(), "{}", r.stdout);
    for section in ["admin", "ingress"] {
        let s = table
            .get(section)
            .and_then(|v| v.as_table())
            .unwrap_or_else(|| panic!("no [{section}]: {}", r.stdout));
        assert!(
            s.contains_key("listen-mode") && s.contains_key("bind-address"),
            "[{section}]: {}",
            r.stdout
        );
    }
    assert!(!base.exists(), "--dump-config created the base dir");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("list").count(),
        0,
        "--dump-config wrote a file"
    );

    // Flags win over the environment.
    let r2 = run(
        "--dump-config --node-name",
        dump(&[("RESTATE_NODE_NAME", "123")], &["--node-name", "flag"]),
        COMMAND_TIMEOUT,
    )
    .await;
    assert_eq!(r2.code(), 0, "{}", r2.report());
    assert!(r2.stdout.lines().any(|l| l == "node-name = \"flag\""), "{}", r2.stdout);

    // The dump, loaded back as the configuration file, dumps identically.
    let file = dir.path().join("dumped.toml");
    std::fs::write(&file, &r.stdout).expect("write the dump");
    let mut cmd = ratchet(&["server", "--dump-config", "--config-file"]);
    cmd.arg(&file).current_dir(dir.path());
    let again = run("--config-file <dump> --dump-config", cmd, COMMAND_TIMEOUT).await;
    assert_eq!(again.code(), 0, "{}", again.report());
    assert_eq!(again.stdout, r.stdout, "the dump does not round-trip");
    assert!(!base.exists(), "--dump-config created the base dir");

    // A value of the wrong type names its key; exit 2.
    let r = run(
        "bad partitions",
        dump(&[("RESTATE_DEFAULT_NUM_PARTITIONS", "abc")], &[]),
        COMMAND_TIMEOUT,
    )
    .await;
    assert_eq!(r.code(), 2, "{}", r.report());
    let line = r.failure_line();
    assert!(line.contains("default-num-partitions"), "{line}");
    assert!(r.stdout.is_empty(), "{}", r.report());
    assert!(!base.exists());
}

// ---------------------------------------------------------------------------------------
// 3. Listen modes

#[tokio::test]
async fn default_mode_listens_on_tcp_and_unix_and_cleans_up_on_sigterm() {
    let dir = scratch("ops-all-");
    let base = dir.path().join("data");
    let mut cmd = server_cmd(&base, &[]);
    cmd.current_dir(dir.path());
    let mut node = Node::start("server (listen-mode all)", cmd, &base).await;

    // The banner: three TCP URLs on loopback, then the logs go to stderr only.
    let (a, i, f) = (node.admin.port(), node.ingress.port(), node.fabric.port());
    assert_eq!(
        node.banner,
        vec![
            format!("Admin: http://127.0.0.1:{a}/"),
            format!("HTTP Ingress: http://127.0.0.1:{i}/"),
            format!("Message Fabric: http://127.0.0.1:{f}/"),
        ]
    );
    assert_eq!(BTreeSet::from([a, i, f]).len(), 3, "three distinct ports: {:?}", node.banner);
    assert_eq!(
        tcp_listeners(node.proc.pid()),
        BTreeSet::from([loopback(a), loopback(i), loopback(f)])
    );
    for name in ["admin", "ingress", "fabric"] {
        assert!(is_socket(&node.socket(name)), "{name}.sock is not a socket in the data dir");
    }

    // Admin /health over TCP and over its unix socket.
    assert_eq!(get(&node.admin, "/health").await.0, 200);
    let admin_unix = Addr::Unix(node.socket("admin"));
    assert_eq!(get(&admin_unix, "/health").await.0, 200);
    // The ingress answers on both too.
    assert_eq!(get(&node.ingress, "/restate/health").await.0, 200);
    assert_eq!(get(&Addr::Unix(node.socket("ingress")), "/restate/health").await.0, 200);

    // The fabric's /health: what is bound and what is advertised.
    let fabric = node.fabric.clone();
    let body = node.wait_status(&fabric, "/health", 200).await;
    let health: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let bound: BTreeSet<(String, String, String)> = health["bound_addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("no bound_addresses: {health}"))
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().into(),
                b["kind"].as_str().unwrap().into(),
                b["address"].as_str().unwrap().into(),
            )
        })
        .collect();
    let sock = |n: &str| node.socket(n).display().to_string();
    let want: BTreeSet<(String, String, String)> = [
        ("admin-api-server", "tcp", format!("127.0.0.1:{a}")),
        ("admin-api-server", "unix", sock("admin")),
        ("http-ingress-server", "tcp", format!("127.0.0.1:{i}")),
        ("http-ingress-server", "unix", sock("ingress")),
        ("message-fabric-server", "tcp", format!("127.0.0.1:{f}")),
        ("message-fabric-server", "unix", sock("fabric")),
    ]
    .into_iter()
    .map(|(n, k, a)| (n.to_string(), k.to_string(), a))
    .collect();
    assert_eq!(bound, want, "{health}");
    let advertised: BTreeSet<(String, String)> = health["advertised_addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("no advertised_addresses: {health}"))
        .iter()
        .map(|b| (b["name"].as_str().unwrap().into(), b["address"].as_str().unwrap().into()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("admin-api-server", format!("http://127.0.0.1:{a}/")),
        ("http-ingress-server", format!("http://127.0.0.1:{i}/")),
        ("message-fabric-server", format!("http://127.0.0.1:{f}/")),
    ]
    .into_iter()
    .map(|(n, a)| (n.to_string(), a))
    .collect();
    assert_eq!(advertised, want, "{health}");
    // The fabric's unix socket serves the same.
    assert_eq!(get(&Addr::Unix(node.socket("fabric")), "/health").await.0, 200);

    let status = node.stop().await;
    assert_eq!(status.code(), Some(0), "SIGTERM: {status}\n{}", node.proc.output());
    for name in ["admin", "ingress", "fabric"] {
        assert!(!node.socket(name).exists(), "{name}.sock left behind after a clean stop");
    }
    assert!(
        node.proc.stdout().lines().count() == 3,
        "stdout holds only the banner: {}",
        node.proc.output()
    );
}

#[tokio::test]
async fn unix_mode_has_no_tcp_and_a_service_can_override_it() {
    let dir = scratch("ops-unix-");
    // Everything on unix sockets.
    let unix_base = dir.path().join("unix");
    let unix_conf = dir.path().join("unix.toml");
    std::fs::write(&unix_conf, "listen-mode = \"unix\"\n").expect("write config");
    let mut cmd = server_cmd(&unix_base, &["--config-file", unix_conf.to_str().expect("utf-8")]);
    cmd.current_dir(dir.path());
    // Mixed: unix at the top level, the ingress on TCP only.
    let mixed_base = dir.path().join("mixed");
    let mixed_conf = dir.path().join("mixed.toml");
    std::fs::write(&mixed_conf, "listen-mode = \"unix\"\n\n[ingress]\nlisten-mode = \"tcp\"\n")
        .expect("write config");
    let mut cmd2 = server_cmd(&mixed_base, &["--config-file", mixed_conf.to_str().expect("utf-8")]);
    cmd2.current_dir(dir.path());

    let mut unix = Node::start("server (listen-mode unix)", cmd, &unix_base).await;
    let mut mixed = Node::start("server (unix, ingress tcp)", cmd2, &mixed_base).await;

    let sock = |n: &Node, s: &str| format!("unix:{}", n.socket(s).display());
    assert_eq!(
        unix.banner,
        vec![
            format!("Admin: {}", sock(&unix, "admin")),
            format!("HTTP Ingress: {}", sock(&unix, "ingress")),
            format!("Message Fabric: {}", sock(&unix, "fabric")),
        ]
    );
    assert_eq!(tcp_listeners(unix.proc.pid()), BTreeSet::new(), "listen-mode unix bound TCP");
    for s in ["admin", "ingress", "fabric"] {
        assert!(is_socket(&unix.socket(s)), "{s}.sock missing");
    }
    assert_eq!(get(&unix.ingress, "/restate/health").await.0, 200);
    let fabric = unix.fabric.clone();
    let health: Value =
        serde_json::from_str(&unix.wait_status(&fabric, "/health", 200).await).expect("JSON");
    let kinds: BTreeSet<&str> = health["bound_addresses"]
        .as_array()
        .expect("bound")
        .iter()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["unix"]), "{health}");

    let i = mixed.ingress.port();
    assert_eq!(
        mixed.banner,
        vec![
            format!("Admin: {}", sock(&mixed, "admin")),
            format!("HTTP Ingress: http://127.0.0.1:{i}/"),
            format!("Message Fabric: {}", sock(&mixed, "fabric")),
        ]
    );
    assert_eq!(tcp_listeners(mixed.proc.pid()), BTreeSet::from([loopback(i)]));
    assert!(is_socket(&mixed.socket("admin")) && is_socket(&mixed.socket("fabric")));
    assert!(!mixed.socket("ingress").exists(), "ingress listen-mode tcp bound a unix socket");
    assert_eq!(get(&mixed.ingress, "/restate/health").await.0, 200);

    for n in [&mut unix, &mut mixed] {
        let status = n.stop().await;
        assert_eq!(status.code(), Some(0), "{}", n.proc.output());
        for s in ["admin", "ingress", "fabric"] {
            assert!(!n.socket(s).exists(), "{s}.sock left behind");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. The restate CLI over the admin unix socket

#[tokio::test]
async fn the_restate_cli_talks_to_the_admin_unix_socket() {
    let cli = support::restate_cli();
    assert!(
        cli.exists(),
        "the restate CLI is not installed: run `npm ci --prefix tests/services/ts`"
    );
    let dir = scratch("ops-cli-");
    let base = dir.path().join("data");
    let mut cmd = server_cmd(&base, &["--listen-mode", "unix"]);
    cmd.current_dir(dir.path());
    let node = Node::start("server (unix only, for the CLI)", cmd, &base).await;
    let home = dir.path().join("cli-home");
    std::fs::create_dir_all(&home).expect("CLI home");
    let restate = |admin_url: &str, args: &[&str]| {
        let mut c = Command::new(&cli);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("RESTATE_CLI_CONFIG_HOME", &home)
            .env("RESTATE_ADMIN_URL", admin_url)
            .env("NO_COLOR", "1")
            .args(args)
            .current_dir(dir.path());
        c
    };
    let url = format!("unix:{}", node.socket("admin").display());

    let r = run("restate whoami", restate(&url, &["whoami"]), COMMAND_TIMEOUT).await;
    let out = support::strip_ansi(&format!("{}{}", r.stdout, r.stderr));
    assert_eq!(r.code(), 0, "{}", r.report());
    assert!(out.contains("is healthy"), "whoami did not reach the admin API:\n{out}");
    assert!(
        out.contains(&format!("unix:{}", node.socket("ingress").display())),
        "whoami shows no ingress address:\n{out}"
    );

    let r =
        run("restate services list", restate(&url, &["services", "list"]), COMMAND_TIMEOUT).await;
    assert_eq!(r.code(), 0, "{}", r.report());
    let r = run("restate sql", restate(&url, &["sql", "SELECT 41 + 1 AS answer"]), COMMAND_TIMEOUT)
        .await;
    assert_eq!(r.code(), 0, "{}", r.report());
    assert!(r.stdout.contains("42"), "{}", r.report());

    // The control: the same command against a socket nobody serves fails.
    let nobody = format!("unix:{}", dir.path().join("nobody.sock").display());
    let r = run(
        "restate services list (no server)",
        restate(&nobody, &["services", "list"]),
        COMMAND_TIMEOUT,
    )
    .await;
    assert_ne!(r.code(), 0, "{}", r.report());
}

// ---------------------------------------------------------------------------------------
// 5. Advertised addresses

#[tokio::test]
async fn advertised_host_and_deprecated_ingress_endpoint() {
    let dir = scratch("ops-adv-");
    let host_base = dir.path().join("host");
    let mut cmd = server_cmd(&host_base, &["--advertised-host", "myhost", "--listen-mode", "tcp"]);
    cmd.current_dir(dir.path());
    let old_base = dir.path().join("old");
    let conf = dir.path().join("old.toml");
    std::fs::write(
        &conf,
        "[ingress]\nadvertised-ingress-endpoint = \"http://ing.example.com:18888/\"\n",
    )
    .expect("config");
    let mut cmd2 = server_cmd(
        &old_base,
        &[
            "--config-file",
            conf.to_str().expect("utf-8"),
            "--log-format",
            "compact",
            "--listen-mode",
            "tcp",
        ],
    );
    cmd2.current_dir(dir.path());

    // The banner advertises myhost; the sockets are still on 127.0.0.1.
    let mut proc = Proc::spawn("server (advertised-host)", cmd);
    let banner = proc.wait_stdout_lines(3, START_TIMEOUT).await;
    let port = |i: usize, label: &str| -> u16 {
        let url = banner[i].strip_prefix(label).unwrap_or_else(|| panic!("{banner:?}"));
        let rest = url.strip_prefix("http://myhost:").and_then(|r| r.strip_suffix('/'));
        rest.unwrap_or_else(|| panic!("{label} does not advertise myhost: {banner:?}"))
            .parse()
            .expect("port")
    };
    let (a, i, f) = (port(0, "Admin: "), port(1, "HTTP Ingress: "), port(2, "Message Fabric: "));
    assert_eq!(tcp_listeners(proc.pid()), BTreeSet::from([loopback(a), loopback(i), loopback(f)]));
    let admin = Addr::Tcp(loopback(a));
    let version: Value =
        serde_json::from_str(&wait_status(&mut proc, &admin, "/version", 200).await).expect("JSON");
    assert_eq!(version["ingress_endpoint"], json!(format!("http://myhost:{i}/")), "{version}");
    assert_eq!(get(&Addr::Tcp(loopback(i)), "/restate/health").await.0, 200);
    proc.signal(libc::SIGTERM);
    assert_eq!(proc.wait_exit(STOP_TIMEOUT).await.code(), Some(0), "{}", proc.output());

    let mut old = Node::start("server (advertised-ingress-endpoint)", cmd2, &old_base).await;
    assert_eq!(old.banner[1], "HTTP Ingress: http://ing.example.com:18888/");
    let admin = old.admin.clone();
    let version: Value =
        serde_json::from_str(&old.wait_status(&admin, "/version", 200).await).expect("JSON");
    assert_eq!(version["ingress_endpoint"], json!("http://ing.example.com:18888/"), "{version}");
    let stderr = old.proc.stderr();
    let warned = stderr.lines().any(|l| {
        l.split_whitespace().nth(1) == Some("WARN")
            && l.contains("deprecated")
            && l.contains("advertised-ingress-endpoint")
    });
    assert!(warned, "no WARN line about the deprecated key:\n{stderr}");
    assert_eq!(old.stop().await.code(), Some(0), "{}", old.proc.output());
}

// ---------------------------------------------------------------------------------------
// 6. Start-up failures

/// Runs a server that must fail at start: non-zero within [`FAIL_FAST`], one `ratchet:` line.
async fn must_fail(what: &str, cmd: Command, code: i32) -> String {
    // `run` fails the test when the exit does not come within the deadline.
    let r = run(what, cmd, FAIL_FAST).await;
    assert_eq!(r.code(), code, "{what}: {}", r.report());
    assert!(r.stdout.is_empty(), "{what} printed a banner: {}", r.report());
    r.failure_line()
}

#[tokio::test]
async fn a_taken_port_a_too_long_path_and_bad_config_fail_fast_and_write_nothing() {
    let dir = scratch("ops-fail-");

    // A taken TCP port: names the admin listener, the address, "in use".
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let base = dir.path().join("taken");
    let mut cmd = server_cmd(&base, &[]);
    cmd.env("RESTATE_ADMIN__BIND_ADDRESS", addr.to_string()).current_dir(dir.path());
    let line = must_fail("taken admin port", cmd, 1).await;
    assert!(
        line.contains("admin") && line.contains(&addr.to_string()) && line.contains("in use"),
        "{line}"
    );
    assert!(!base.exists(), "a taken port created the data dir");
    drop(taken);

    // A socket path over 107 bytes even from the root directory.
    let long = dir.path().join("x".repeat(120));
    let mut cmd = server_cmd(&long, &[]);
    cmd.current_dir("/");
    let line = must_fail("long socket path", cmd, 1).await;
    assert!(line.contains("107 bytes"), "{line}");
    assert!(line.contains(&long.display().to_string()), "names the socket path: {line}");
    assert!(line.contains("listen-mode = \"tcp\""), "suggests tcp: {line}");
    assert!(!long.exists(), "a too-long path created the data dir");

    // A bad listen-mode in a configuration file: a configuration error (2).
    let conf = dir.path().join("both.toml");
    std::fs::write(&conf, "listen-mode = \"both\"\n").expect("config");
    let base = dir.path().join("both");
    let mut cmd = server_cmd(&base, &["--config-file", conf.to_str().expect("utf-8")]);
    cmd.current_dir(dir.path());
    let line = must_fail("listen-mode both", cmd, 2).await;
    assert!(line.contains("listen-mode") && line.contains("both"), "{line}");
    assert!(!base.exists());

    let left: Vec<_> =
        std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("both.toml")],
        "failed starts left files behind"
    );
}

/// `sh -c 'LISTEN_PID=$$ ... exec ratchet server ...'` so `LISTEN_PID` is the server's pid,
/// with `fd` as fd 3.
fn activated_cmd(base: &Path, vars: &str, fd: RawFd) -> Command {
    let mut cmd = Command::new("sh");
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ {vars} exec \"$0\" server --base-dir \"$1\" \
             --bind-ip 127.0.0.1 --use-random-ports true"
        ))
        .arg(BIN)
        .arg(base);
    // SAFETY: dup2 in the forked child before exec; async-signal-safe. dup2 clears
    // close-on-exec on fd 3.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

#[tokio::test]
async fn bad_socket_activation_fails_fast_naming_the_variables() {
    let dir = scratch("ops-fds-");
    let listening = TcpListener::bind("127.0.0.1:0").expect("bind");
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let cases: [(&str, &str, RawFd, &[&str]); 3] = [
        (
            "two names for one fd",
            "LISTEN_FDS=1 LISTEN_FDNAMES=a:b",
            listening.as_raw_fd(),
            &["LISTEN_FDNAMES", "LISTEN_FDS"],
        ),
        (
            "an unknown name",
            "LISTEN_FDS=1 LISTEN_FDNAMES=bogus",
            listening.as_raw_fd(),
            &["LISTEN_FDNAMES", "bogus"],
        ),
        (
            "fd 3 is /dev/null",
            "LISTEN_FDS=1",
            null.as_raw_fd(),
            &["LISTEN_FDS", "not a listening socket"],
        ),
    ];
    for (i, (what, vars, fd, needles)) in cases.into_iter().enumerate() {
        let base = dir.path().join(format!("case{i}"));
        let mut cmd = activated_cmd(&base, vars, fd);
        cmd.current_dir(dir.path());
        let line = must_fail(what, cmd, 1).await;
        for n in needles {
            assert!(line.contains(n), "{what}: {line}");
        }
        assert!(!base.exists(), "{what}: created the data dir");
    }
    // The control: a well-formed hand-over is used (the banner shows the handed-over port).
    let port = listening.local_addr().expect("addr").port();
    let base = dir.path().join("ok");
    let mut cmd =
        activated_cmd(&base, "LISTEN_FDS=1 LISTEN_FDNAMES=ingress", listening.as_raw_fd());
    cmd.current_dir(dir.path());
    let node = Node::start("server (activated ingress)", cmd, &base).await;
    assert_eq!(
        node.banner[1],
        format!("HTTP Ingress: http://127.0.0.1:{port}/"),
        "{:?}",
        node.banner
    );
    assert_eq!(get(&node.ingress, "/restate/health").await.0, 200);
}

/// Whether a user other than the owner can execute `path` (every directory above it and the
/// file itself have the others' execute bit).
fn others_can_execute(path: &Path) -> bool {
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
    path.ancestors().all(|p| p.as_os_str().is_empty() || mode(p) & 0o001 != 0)
}

#[tokio::test]
async fn a_data_dir_without_write_permission_fails_fast() {
    let dir = scratch("ops-perm-");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    // SAFETY: geteuid only reads the process's credentials.
    let root = unsafe { libc::geteuid() } == 0;
    let bin = std::fs::canonicalize(BIN).expect("the binary");
    let bin = if !root || others_can_execute(&bin) {
        bin
    } else {
        let copy = dir.path().join("ratchet");
        std::fs::copy(&bin, &copy).expect("copy the binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        copy
    };
    if root {
        // Root writes anywhere: the server runs as nobody, on a directory root owns (0755).
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    } else {
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    }
    for (what, base) in [
        ("an existing read-only dir", ro.clone()),
        ("a dir to create in a read-only one", ro.join("data")),
    ] {
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .arg("server")
            .arg("--base-dir")
            .arg(&base)
            .args(["--bind-ip", "127.0.0.1", "--use-random-ports", "true"])
            .current_dir(dir.path());
        if root {
            cmd.uid(65534).gid(65534);
        }
        let line = must_fail(what, cmd, 1).await;
        assert!(line.contains(&base.display().to_string()), "{what}: names the dir: {line}");
        assert!(
            line.contains("not writable") || line.contains("ermission denied"),
            "{what}: {line}"
        );
        assert_eq!(std::fs::read_dir(&ro).expect("list").count(), 0, "{what}: wrote into the dir");
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_fails_and_the_first_keeps_serving() {
    let dir = scratch("ops-lock-");
    let base = dir.path().join("data");
    let mut cmd = server_cmd(&base, &[]);
    cmd.current_dir(dir.path());
    let mut first = Node::start("first server", cmd, &base).await;
    let names = |d: &Path| -> BTreeSet<std::ffi::OsString> {
        std::fs::read_dir(d).expect("list").flatten().map(|e| e.file_name()).collect()
    };
    let before = names(&base);

    let mut cmd = server_cmd(&base, &[]);
    cmd.current_dir(dir.path());
    let line = must_fail("second server", cmd, 1).await;
    assert!(line.contains("in use") && line.contains(&base.display().to_string()), "{line}");

    assert_eq!(names(&base), before, "the second server changed the data dir");
    let unix = Addr::Unix(first.socket("admin"));
    assert_eq!(get(&unix, "/health").await.0, 200, "the first server lost its admin socket");
    assert_eq!(get(&Addr::Unix(first.socket("ingress")), "/restate/health").await.0, 200);
    assert_eq!(first.stop().await.code(), Some(0), "{}", first.proc.output());
}

#[tokio::test]
async fn socket_files_left_by_a_killed_server_are_replaced_on_restart() {
    let dir = scratch("ops-stale-");
    let base = dir.path().join("data");
    let mut cmd = server_cmd(&base, &[]);
    cmd.current_dir(dir.path());
    let mut first = Node::start("server (to be killed)", cmd, &base).await;
    first.proc.signal(libc::SIGKILL);
    first.proc.wait_exit(STOP_TIMEOUT).await;
    for s in ["admin", "ingress", "fabric"] {
        assert!(is_socket(&first.socket(s)), "SIGKILL cannot remove {s}.sock; the test needs it");
    }
    let stale = Addr::Unix(first.socket("admin"));
    assert!(request(&stale, "GET", "/health", "").await.is_err(), "nobody serves a stale socket");

    let mut cmd = server_cmd(&base, &[]);
    cmd.current_dir(dir.path());
    let mut second = Node::start("server (restarted)", cmd, &base).await;
    assert_eq!(get(&stale, "/health").await.0, 200, "the stale admin.sock was not rebound");
    assert_eq!(get(&Addr::Unix(second.socket("ingress")), "/restate/health").await.0, 200);
    assert_eq!(second.stop().await.code(), Some(0), "{}", second.proc.output());
}

// ---------------------------------------------------------------------------------------
// 7. Log formats

fn is_timestamp(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && word.ends_with('Z')
}

#[tokio::test]
async fn log_formats_json_and_compact_are_one_record_per_line() {
    let dir = scratch("ops-logs-");
    let mut nodes = Vec::new();
    for format in ["json", "compact"] {
        let base = dir.path().join(format);
        let mut cmd = server_cmd(&base, &["--log-format", format]);
        cmd.current_dir(dir.path());
        nodes.push((
            format,
            Node::start(&format!("server (--log-format {format})"), cmd, &base).await,
        ));
    }
    for (format, node) in &mut nodes {
        assert_eq!(node.stop().await.code(), Some(0), "{}", node.proc.output());
        let stderr = node.proc.stderr();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
        // One record per listener at least, and the stop.
        let listening = lines.iter().filter(|l| l.contains("listening on")).count();
        assert_eq!(listening, 6, "--log-format {format}: want 6 `listening on` records:\n{stderr}");
        for line in &lines {
            if *format == "json" {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{stderr}"));
                assert!(v["level"].is_string(), "no level: {line}");
                assert!(v["fields"].is_object(), "no fields: {line}");
            } else {
                let mut words = line.split_whitespace();
                let (ts, level) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                assert!(
                    is_timestamp(ts)
                        && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
                    "not the start of a record (a record spans lines?): {line:?}\n{stderr}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 8. Metrics

/// The samples of `name` in a Prometheus text: (labels, value).
fn samples<'a>(text: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, value)| {
            let labels = if series == name {
                ""
            } else {
                series.strip_prefix(name)?.strip_prefix('{')?.strip_suffix('}')?
            };
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

fn type_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix("# TYPE ")?.strip_prefix(name)?.strip_prefix(' '))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_admin_and_fabric_and_cover_the_dashboard() {
    let fabric_port = free_port();
    let opts = FixtureOptions {
        env: vec![("RESTATE_BIND_ADDRESS".into(), format!("127.0.0.1:{fabric_port}"))],
        ..FixtureOptions::default()
    };
    let mut fx = Fixture::start_with("ops_metrics", Sdks::Ts, opts).await;
    for _ in 0..3 {
        let r = fx.ingress("POST", "/NoSuchService/handler", Some(&json!({}))).await;
        assert_eq!(r.status, 404, "{}", r.text());
    }
    for name in ["Ann", "Bob"] {
        let r = fx.call("/Greeter/greet", json!(name)).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(fx.call("/Counter/metrics/add", json!(2)).await.json(), json!(2));

    // An attempt's metrics are recorded when it ends, which may follow the response a little.
    let deadline = support::Deadline::after(Duration::from_secs(10), "invoker metrics");
    let r = loop {
        let r = fx.admin("GET", "/metrics", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if type_of(&r.text(), "restate_invoker_attempts_total").is_some() {
            break r;
        }
        deadline.tick().await;
    };
    let ct = r.header("content-type").unwrap_or_default().to_string();
    assert!(ct.starts_with("text/plain"), "content-type {ct:?}");
    let (status, fabric_text) = get(&Addr::Tcp(loopback(fabric_port)), "/metrics").await;
    assert_eq!(status, 200, "{fabric_text}");

    for (where_, text) in [("admin", r.text()), ("fabric", fabric_text)] {
        assert_eq!(
            type_of(&text, "restate_ingress_requests_total"),
            Some("counter"),
            "{where_}:\n{text}"
        );
        let rejected = samples(&text, "restate_ingress_requests_total")
            .into_iter()
            .find(|(l, _)| *l == "status=\"rejected\"")
            .map(|(_, v)| v);
        assert!(rejected.is_some_and(|v| v >= 3.0), "{where_}: rejected {rejected:?}:\n{text}");
        let completed = samples(&text, "restate_ingress_requests_total")
            .into_iter()
            .find(|(l, _)| *l == "status=\"completed\"")
            .map(|(_, v)| v);
        assert!(completed.is_some_and(|v| v >= 3.0), "{where_}: completed {completed:?}:\n{text}");
        let lsn = samples(&text, "restate_partition_applied_lsn");
        assert!(
            !lsn.is_empty() && lsn.iter().all(|(l, _)| l.starts_with("partition=\"")),
            "{where_}:\n{text}"
        );
        assert!(lsn.iter().any(|(_, v)| *v > 0.0), "{where_}: nothing applied: {lsn:?}");
        let rss = samples(&text, "process_resident_memory_bytes");
        assert!(rss.len() == 1 && rss[0].1 > 1e6, "{where_}: rss {rss:?}");
        let appends = samples(&text, "restate_wal_appends_total");
        assert!(appends.len() == 1 && appends[0].1 >= 3.0, "{where_}: appends {appends:?}");
        assert_eq!(
            type_of(&text, "restate_ingress_request_duration_seconds"),
            Some("summary"),
            "{where_}"
        );
        assert_eq!(
            type_of(&text, "restate_invoker_attempts_total"),
            Some("counter"),
            "{where_}:\n{text}"
        );
        let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
        let build = samples(&text, "restate_build_info");
        assert_eq!(build, vec![(version.as_str(), 1.0)], "{where_}");
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/check_dashboard.py");
    assert!(script.exists(), "grafana/check_dashboard.py is missing");
    // A second scrape after the traffic: every metric the dashboard reads must be declared.
    let text = fx.admin("GET", "/metrics", None).await.text();
    let dir = scratch("ops-scrape-");
    let file = dir.path().join("scrape.txt");
    std::fs::write(&file, &text).expect("write the scrape");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(&file);
    let r = run("python3 grafana/check_dashboard.py", cmd, COMMAND_TIMEOUT).await;
    assert_eq!(
        r.code(),
        0,
        "the dashboard reads metrics this scrape lacks: {}\n--- scrape\n{text}",
        r.report()
    );
    assert!(r.stdout.starts_with("ok:"), "{}", r.report());
}

// ---------------------------------------------------------------------------------------
// 9. sd_notify

/// Receives notifications into `seen` until one has the line `want`.
async fn recv_until(
    sock: &tokio::net::UnixDatagram,
    want: &str,
    seen: &mut Vec<String>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = msg.lines().any(|l| l == want);
                seen.push(msg);
                if hit {
                    return;
                }
            }
            Ok(Err(e)) => panic!("recv on the notify socket: {e}"),
            Err(_) => panic!("no {want} within {timeout:?}; got {seen:?}"),
        }
    }
}

#[tokio::test]
async fn sd_notify_ready_watchdog_and_stopping() {
    let dir = scratch("ops-notify-");
    let path = dir.path().join("notify.sock");
    let sock = tokio::net::UnixDatagram::bind(&path).expect("bind the notify socket");
    let base = dir.path().join("data");
    let mut cmd = server_cmd(&base, &[]);
    cmd.env("NOTIFY_SOCKET", &path).env("WATCHDOG_USEC", "200000").current_dir(dir.path());
    let mut proc = Proc::spawn("server (sd_notify)", cmd);

    let mut seen: Vec<String> = Vec::new();
    recv_until(&sock, "READY=1", &mut seen, START_TIMEOUT).await;
    assert_eq!(seen.len(), 1, "READY=1 is the first notification: {seen:?}");
    // READY=1 comes once the node serves.
    let banner = proc.wait_stdout_lines(3, START_TIMEOUT).await;
    let admin = Addr::from_url(banner[0].strip_prefix("Admin: ").expect("banner"));
    assert_eq!(get(&admin, "/health").await.0, 200);
    // WATCHDOG=1 every 100 ms: two of them within a few seconds.
    recv_until(&sock, "WATCHDOG=1", &mut seen, Duration::from_secs(3)).await;
    recv_until(&sock, "WATCHDOG=1", &mut seen, Duration::from_secs(3)).await;
    proc.signal(libc::SIGTERM);
    recv_until(&sock, "STOPPING=1", &mut seen, STOP_TIMEOUT).await;
    let status = proc.wait_exit(STOP_TIMEOUT).await;
    assert_eq!(status.code(), Some(0), "{}", proc.output());
    let ready = seen.iter().filter(|m| m.lines().any(|l| l == "READY=1")).count();
    assert_eq!(ready, 1, "READY=1 sent once: {seen:?}");
    assert!(!proc.stderr().contains("sd_notify"), "notification errors logged:\n{}", proc.stderr());
}

// ---------------------------------------------------------------------------------------
// 10. `ratchet up`

/// A `ratchet up` started with `TMPDIR` set to `tmp`, and what its banner says.
struct Up {
    proc: Proc,
    admin: Addr,
    ingress: Addr,
    data_dir: PathBuf,
}

impl Up {
    /// Starts it and waits until its admin API answers `/health`.
    async fn start(what: &str, tmp: &Path, args: &[&str], env: &[(&str, &str)]) -> Up {
        let mut cmd = ratchet(&["up"]);
        cmd.args(args).envs(env.iter().copied()).env("TMPDIR", tmp).current_dir(tmp);
        let mut proc = Proc::spawn(what, cmd);
        let v = proc
            .wait_stdout_labels(&["Admin:", "Ingress:", "Data directory:"], START_TIMEOUT)
            .await;
        let (admin, ingress, data_dir) =
            (Addr::from_url(&v[0]), Addr::from_url(&v[1]), PathBuf::from(&v[2]));
        assert!(
            data_dir.starts_with(tmp) && data_dir != tmp,
            "the data directory is not a new one in TMPDIR ({}):\n{}",
            tmp.display(),
            proc.output()
        );
        assert!(data_dir.is_dir(), "the data directory does not exist:\n{}", proc.output());
        wait_status(&mut proc, &admin, "/health", 200).await;
        Up { proc, admin, ingress, data_dir }
    }

    /// SIGTERM, then the exit status (which must come within [`STOP_TIMEOUT`]).
    async fn stop(&mut self) -> ExitStatus {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(STOP_TIMEOUT).await
    }
}

#[tokio::test]
async fn up_with_random_ports_serves_on_loopback_and_removes_its_data_dir() {
    let tmp = scratch("ops-up-");
    // Wildcard addresses in the configuration: `up` stays on 127.0.0.1 whatever it says.
    let wildcard = [
        ("RESTATE_ADMIN__BIND_ADDRESS", "0.0.0.0:9070"),
        ("RESTATE_INGRESS__BIND_ADDRESS", "0.0.0.0:8080"),
        ("RESTATE_BIND_ADDRESS", "0.0.0.0:5122"),
    ];
    let mut up = Up::start("ratchet up -r", tmp.path(), &["-r"], &wildcard).await;
    let (a, i) = (up.admin.port(), up.ingress.port());
    let listeners = tcp_listeners(up.proc.pid());
    assert!(
        listeners.contains(&loopback(a)) && listeners.contains(&loopback(i)),
        "the banner's admin {a} and ingress {i} are not among the listeners {listeners:?}"
    );
    assert_eq!(listeners.len(), 3, "admin, ingress and fabric: {listeners:?}");
    assert!(
        listeners.iter().all(|l| l.ip() == std::net::IpAddr::from(Ipv4Addr::LOCALHOST)),
        "`ratchet up` listens beyond 127.0.0.1: {listeners:?}"
    );
    assert_eq!(get(&up.ingress, "/restate/health").await.0, 200);
    // The banner names the web UI, and it is there.
    let ui = format!("Web UI:         http://127.0.0.1:{a}/ui/");
    assert!(up.proc.output().contains(&ui), "no `{ui}` in:\n{}", up.proc.output());
    assert_eq!(get(&up.admin, "/ui/").await.0, 200);

    let status = up.stop().await;
    assert_eq!(status.code(), Some(0), "SIGTERM: {status}\n{}", up.proc.output());
    assert!(
        !up.data_dir.exists(),
        "the temporary data directory is left after a stop:\n{}",
        up.proc.output()
    );
}

#[tokio::test]
async fn up_retain_keeps_the_data_dir() {
    let tmp = scratch("ops-up-retain-");
    let mut up = Up::start("ratchet up -r --retain", tmp.path(), &["-r", "--retain"], &[]).await;
    let status = up.stop().await;
    assert_eq!(status.code(), Some(0), "SIGTERM: {status}\n{}", up.proc.output());
    assert!(up.data_dir.is_dir(), "--retain removed the data directory:\n{}", up.proc.output());
    assert!(
        std::fs::read_dir(&up.data_dir).expect("list").count() > 0,
        "the retained data directory is empty"
    );
}

#[tokio::test]
async fn up_with_unix_sockets_has_no_tcp_listener() {
    let tmp = scratch("ops-up-unix-");
    let mut up = Up::start("ratchet up -u", tmp.path(), &["-u"], &[]).await;
    let admin_sock = up.data_dir.join("admin.sock");
    assert_eq!(up.admin, Addr::Unix(admin_sock.clone()), "{}", up.proc.output());
    assert_eq!(up.ingress, Addr::Unix(up.data_dir.join("ingress.sock")), "{}", up.proc.output());
    assert_eq!(tcp_listeners(up.proc.pid()), BTreeSet::new(), "`ratchet up -u` bound TCP");
    assert!(
        up.proc.output().contains("Web UI:         (the admin API listens on a unix socket only)"),
        "{}",
        up.proc.output()
    );
    assert_eq!(get(&Addr::Unix(admin_sock), "/health").await.0, 200);
    assert_eq!(get(&up.ingress, "/restate/health").await.0, 200);

    let status = up.stop().await;
    assert_eq!(status.code(), Some(0), "SIGTERM: {status}\n{}", up.proc.output());
    assert!(!up.data_dir.exists(), "the temporary data directory is left after a stop");
}

// ---------------------------------------------------------------------------------------
// 11. The drain on SIGTERM

/// `Sleeper/sleep` (sleeps `ms` durably, counting `sleep-before:<tag>` and
/// `sleep-after:<tag>` in the TS service) called through the ingress at `port`, in a task:
/// the answer, or why none came.
fn sleep_call(
    port: u16,
    tag: &str,
    ms: u64,
    idempotency_key: Option<&str>,
) -> tokio::task::JoinHandle<Result<(u16, String), String>> {
    let body = json!({"tag": tag, "ms": ms}).to_string();
    let key = idempotency_key.map(str::to_string);
    let timeout = Duration::from_millis(ms) + Duration::from_secs(30);
    tokio::spawn(async move {
        let headers: Vec<(&str, &str)> =
            key.iter().map(|k| ("idempotency-key", k.as_str())).collect();
        let ingress = Addr::Tcp(loopback(port));
        request_with(&ingress, "POST", "/Sleeper/sleep", &body, &headers, timeout).await
    })
}

/// Waits until the sleeper tagged `tag` has run its step before the sleep: it is sleeping.
async fn wait_sleeping(fx: &mut Fixture, tag: &str) {
    let name = format!("sleep-before:{tag}");
    let deadline = support::Deadline::after(START_TIMEOUT, &name);
    while fx.stat(Sdk::Ts, &name).await == 0 {
        deadline.tick().await;
    }
}

/// The sleeper's answer for `ms`.
fn slept(ms: u64) -> Value {
    json!(format!("slept {ms} ms"))
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_call_in_flight_finish_then_exits_0() {
    // Long enough to be still asleep when the test sees it started, on a loaded machine.
    const MS: u64 = 2000;
    let mut fx = Fixture::start("ops_drain_finish", Sdks::Ts).await;
    let call = sleep_call(fx.server.ingress_port, "finish", MS, None);
    wait_sleeping(&mut fx, "finish").await;
    assert!(!call.is_finished(), "the call ended before SIGTERM: {:?}", call.await);
    fx.server.signal(libc::SIGTERM);

    let answer = tokio::time::timeout(COMMAND_TIMEOUT, call)
        .await
        .expect("the call answers within its deadline")
        .expect("the call task");
    let (status, body) =
        answer.unwrap_or_else(|e| panic!("the call in flight failed: {e}\n{}", fx.server.log()));
    assert_eq!(status, 200, "{body}\n{}", fx.server.log());
    assert_eq!(json_of(&body), slept(MS));
    let exit = fx.server.wait_exit(STOP_TIMEOUT).await.unwrap_or_else(|| {
        panic!("still running {STOP_TIMEOUT:?} after the call ended:\n{}", fx.server.log())
    });
    assert_eq!(exit.code(), Some(0), "{exit}\n{}", fx.server.log());
    assert!(
        !fx.server.log().contains("still in flight"),
        "the drain cut a call that finished:\n{}",
        fx.server.log()
    );
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:finish").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded_by_shutdown_timeout_and_the_cut_invocation_completes_after_restart() {
    // Far longer than the drain: a server that waited for it would exit after MS.
    const MS: u64 = 12_000;
    let opts = FixtureOptions {
        env: vec![("RESTATE_SHUTDOWN_TIMEOUT".into(), "2s".into())],
        ..FixtureOptions::default()
    };
    let mut fx = Fixture::start_with("ops_drain_cut", Sdks::Ts, opts).await;
    fx.allow_server_log("still in flight");
    let port = fx.server.ingress_port;
    let call = sleep_call(port, "cut", MS, Some("drain-cut"));
    wait_sleeping(&mut fx, "cut").await;
    assert!(!call.is_finished(), "the call ended before SIGTERM: {:?}", call.await);
    let stopping = Instant::now();
    fx.server.signal(libc::SIGTERM);

    let exit = fx.server.wait_exit(Duration::from_secs(8)).await.unwrap_or_else(|| {
        panic!("still running 8 s after SIGTERM with shutdown-timeout 2s:\n{}", fx.server.log())
    });
    let took = stopping.elapsed();
    assert_eq!(exit.code(), Some(0), "{exit}\n{}", fx.server.log());
    assert!(
        took >= Duration::from_millis(1900),
        "exited {took:?} after SIGTERM: it did not wait for the call in flight\n{}",
        fx.server.log()
    );
    let log = fx.server.log();
    assert!(log.contains("still in flight"), "no warning about the cut call:\n{log}");
    let cut = tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .expect("the cut call ends with the server")
        .expect("the call task");
    assert!(!matches!(cut, Ok((200, _))), "the cut call has an answer: {cut:?}");

    // The invocation goes on after a restart; the same idempotency key attaches to it.
    fx.restart_server().await;
    let again = sleep_call(port, "cut", MS, Some("drain-cut")).await.expect("the call task");
    let (status, body) =
        again.unwrap_or_else(|e| panic!("the call after restart failed: {e}\n{}", fx.server.log()));
    assert_eq!(status, 200, "{body}\n{}", fx.server.log());
    assert_eq!(json_of(&body), slept(MS));
    assert_eq!(fx.stat(Sdk::Ts, "sleep-before:cut").await, 1, "the invocation started twice");
    assert_eq!(fx.stat(Sdk::Ts, "sleep-after:cut").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_exits_at_once() {
    let opts = FixtureOptions {
        env: vec![("RESTATE_SHUTDOWN_TIMEOUT".into(), "60s".into())],
        ..FixtureOptions::default()
    };
    let mut fx = Fixture::start_with("ops_drain_twice", Sdks::Ts, opts).await;
    let call = sleep_call(fx.server.ingress_port, "long", 600_000, None);
    wait_sleeping(&mut fx, "long").await;
    fx.server.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        fx.server.is_running(),
        "stopped within 300 ms with a call in flight and shutdown-timeout 60s:\n{}",
        fx.server.log()
    );

    fx.server.signal(libc::SIGTERM);
    let exit = fx.server.wait_exit(Duration::from_secs(3)).await.unwrap_or_else(|| {
        panic!("still running 3 s after a second SIGTERM:\n{}", fx.server.log())
    });
    assert_eq!(exit.signal(), None, "killed by a signal: {exit}\n{}", fx.server.log());
    assert_ne!(exit.code(), Some(0), "a cut drain is not a clean stop:\n{}", fx.server.log());
    assert!(fx.server.log().contains("second signal"), "{}", fx.server.log());
    call.abort();
}

/// Whether process `pid` has a handler for `sig` (the `SigCgt` mask of `/proc/<pid>/status`).
fn catches(pid: i32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Starts a server in `base`, sends SIGTERM `later` after it catches SIGTERM, and checks the
/// stop is clean: exit 0 (not killed by the signal), no socket file left. Returns whether the
/// signal came before the banner, that is during the start.
async fn sigterm_at_start(base: &Path, later: Duration) -> bool {
    let what = format!("server (SIGTERM {later:?} after it catches SIGTERM)");
    let mut cmd = server_cmd(base, &[]);
    cmd.current_dir(base.parent().expect("a parent dir"));
    let mut proc = Proc::spawn(&what, cmd);
    let deadline = Instant::now() + START_TIMEOUT;
    // A busy wait: the handler comes a few milliseconds before the banner.
    while !catches(proc.pid(), libc::SIGTERM) {
        if let Some(status) = proc.exited() {
            panic!("{what} exited with {status} at start\n{}", proc.output());
        }
        assert!(Instant::now() < deadline, "{what}: no SIGTERM handler\n{}", proc.output());
        std::thread::yield_now();
    }
    if !later.is_zero() {
        tokio::time::sleep(later).await;
    }
    proc.signal(libc::SIGTERM);
    // Stdout still empty after the signal: it came before the banner.
    let during_start = proc.stdout().is_empty();
    let status = proc.wait_exit(STOP_TIMEOUT).await;
    assert_eq!(status.signal(), None, "{what}: killed by SIGTERM\n{}", proc.output());
    assert_eq!(status.code(), Some(0), "{what}\n{}", proc.output());
    let sockets: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension() == Some("sock".as_ref()))
                .collect()
        })
        .unwrap_or_default();
    assert!(sockets.is_empty(), "{what}: left {sockets:?}");
    during_start
}

/// A SIGTERM during start-up (from the moment the process catches it, before its banner, and
/// a little later) is a clean stop. Before the handler exists (the first milliseconds after
/// exec) the signal's default action applies; the test waits for the handler so that window
/// cannot make it flaky.
#[tokio::test]
async fn sigterm_during_start_exits_0_and_leaves_no_socket_file() {
    let dir = scratch("ops-early-");
    // At once: the handler comes some milliseconds before the banner; a loaded machine may
    // run the start past it, so a few tries, each of which must stop cleanly.
    const TRIES: usize = 5;
    let mut before_banner = false;
    for t in 0..TRIES {
        if sigterm_at_start(&dir.path().join(format!("at-once-{t}")), Duration::ZERO).await {
            before_banner = true;
            break;
        }
    }
    assert!(before_banner, "in {TRIES} tries no SIGTERM came before the banner");
    for later_ms in [20u64, 200] {
        let base = dir.path().join(format!("later-{later_ms}ms"));
        sigterm_at_start(&base, Duration::from_millis(later_ms)).await;
    }
}
