//! The node's listeners: TCP and unix sockets for the ingress, the admin API and the node
//! (fabric) endpoint, bound from configuration or taken over from systemd, and the
//! addresses each service advertises.
//!
//! Invariants:
//! - Everything that can fail without touching the disk is checked first (socket path
//!   lengths, TCP binds), then the data directory is created and locked, then the unix
//!   sockets are bound: a taken port or a too-long path leaves nothing behind.
//! - One node per data directory: the lock (`flock` on `<base-dir>/LOCK`) is held for the
//!   process's life, so a second server on the same directory fails before it touches the
//!   first one's socket files.
//! - Socket files this process created are removed when [`Listeners::remove_socket_files`]
//!   runs at shutdown; handed-over sockets are never unlinked (they belong to the manager).
//! - A unix socket path is bound relative to the working directory when that is what keeps
//!   it within the kernel's 107-byte limit.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use crate::config::{Config, ListenerOptions};
pub use crate::systemd::{ActivatedFd, Service, SocketKind};

/// Longest unix socket path the kernel takes (`sun_path` is 108 bytes with the NUL).
pub const SOCKET_PATH_MAX: usize = 107;
/// Connections a TCP listener queues before it accepts them. The usual 128 overflows when a
/// few hundred clients connect at once, and a refused SYN is only retried after a second.
const LISTEN_BACKLOG: u32 = 1024;
/// The lock file that makes a data directory one node's.
pub const LOCK_FILE: &str = "LOCK";

/// A listener ready to accept.
#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Where a listener is bound.
#[derive(Clone, Debug, PartialEq)]
pub enum BoundAddr {
    Tcp(SocketAddr),
    /// The absolute path of the socket file.
    Unix(PathBuf),
}

impl std::fmt::Display for BoundAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundAddr::Tcp(a) => write!(f, "{a}"),
            BoundAddr::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug)]
pub struct BoundListener {
    pub service: Service,
    pub addr: BoundAddr,
    pub listener: Listener,
}

/// A start-up failure of the listeners or the data directory, with one clear message.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr} for the {service} endpoint: {message}")]
    Tcp { service: &'static str, addr: SocketAddr, message: String },
    #[error("cannot listen on unix socket {path} for the {service} endpoint: {message}")]
    Unix { service: &'static str, path: String, message: String },
    #[error(
        "the unix socket path {path} for the {service} endpoint is {len} bytes, longer than \
         {SOCKET_PATH_MAX} bytes even relative to the working directory; use a shorter \
         base-dir, start from a directory closer to it, or set listen-mode = \"tcp\""
    )]
    PathTooLong { service: &'static str, path: String, len: usize },
    #[error("{0}")]
    Activation(#[from] crate::systemd::ActivationError),
    #[error("data directory {dir} is not writable: {message}")]
    NotWritable { dir: String, message: String },
    #[error(
        "data directory {dir} is in use by another server (its {LOCK_FILE} file is locked); \
         stop it first or use another base-dir"
    )]
    Locked { dir: String },
    #[error("cannot use data directory {dir}: {message}")]
    DataDir { dir: String, message: String },
}

/// The bound listeners, the data directory lock, and what each service advertises.
#[derive(Debug)]
pub struct Listeners {
    pub bound: Vec<BoundListener>,
    /// The URL each service advertises, by [`Service`] order (ingress, admin, fabric).
    pub advertised: [String; 3],
    created_sockets: Vec<PathBuf>,
    _lock: File,
}

fn options(config: &Config, s: Service) -> &ListenerOptions {
    match s {
        Service::Ingress => &config.listeners.ingress,
        Service::Admin => &config.listeners.admin,
        Service::Fabric => &config.listeners.fabric,
    }
}

/// The socket file of a service in the data directory.
pub fn socket_path(base: &Path, s: Service) -> PathBuf {
    base.join(format!("{}.sock", s.name()))
}

/// The path to bind `abs` with: itself, or relative to the working directory when only that
/// fits the kernel's limit.
fn bind_path(abs: &Path, cwd: Option<&Path>) -> Option<PathBuf> {
    if abs.as_os_str().len() <= SOCKET_PATH_MAX {
        return Some(abs.to_path_buf());
    }
    let rel = abs.strip_prefix(cwd?).ok()?;
    (rel.as_os_str().len() <= SOCKET_PATH_MAX && !rel.as_os_str().is_empty())
        .then(|| rel.to_path_buf())
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|c| c.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Binds every listener of `config` (see the module invariants for the order), using the
/// sockets in `activated` where the service manager passed them.
pub fn bind_all(config: &Config, activated: Vec<ActivatedFd>) -> Result<Listeners, ListenError> {
    let base = absolute(&config.base_dir);
    let has = |s: Service, k: SocketKind| activated.iter().any(|a| a.service == s && a.kind == k);
    let cwd = std::env::current_dir().ok();
    // 1. What can be checked without touching anything.
    let mut unix_wanted: Vec<(Service, PathBuf, PathBuf)> = Vec::new();
    for s in Service::ALL {
        if options(config, s).listen_mode.unix() && !has(s, SocketKind::Unix) {
            let abs = socket_path(&base, s);
            let bind = bind_path(&abs, cwd.as_deref()).ok_or_else(|| ListenError::PathTooLong {
                service: s.name(),
                path: abs.display().to_string(),
                len: abs.as_os_str().len(),
            })?;
            unix_wanted.push((s, abs, bind));
        }
    }
    check_writable(&base)?;
    // What the node writes into, where it exists already.
    for sub in ["wal", "partitions", "metadata"] {
        let d = base.join(sub);
        if d.is_dir() {
            check_writable(&d)?;
        }
    }
    // 2. TCP: a taken port fails here, before the data directory is touched.
    let mut bound = Vec::new();
    for s in Service::ALL {
        let o = options(config, s);
        if o.listen_mode.tcp() && !has(s, SocketKind::Tcp) {
            let err = |e: std::io::Error| ListenError::Tcp {
                service: s.name(),
                addr: o.bind_address,
                message: e.to_string(),
            };
            let l = bind_tcp(o.bind_address).map_err(err)?;
            let addr = l.local_addr().map_err(err)?;
            bound.push(BoundListener {
                service: s,
                addr: BoundAddr::Tcp(addr),
                listener: Listener::Tcp(l),
            });
        }
    }
    for a in activated {
        let err = |e: std::io::Error| ListenError::Unix {
            service: a.service.name(),
            path: format!("fd {}", a.number),
            message: e.to_string(),
        };
        let (addr, listener) = match a.kind {
            SocketKind::Tcp => {
                let std_l = std::net::TcpListener::from(a.fd);
                std_l.set_nonblocking(true).map_err(err)?;
                let addr = std_l.local_addr().map_err(err)?;
                (
                    BoundAddr::Tcp(addr),
                    Listener::Tcp(tokio::net::TcpListener::from_std(std_l).map_err(err)?),
                )
            }
            SocketKind::Unix => {
                let std_l = std::os::unix::net::UnixListener::from(a.fd);
                std_l.set_nonblocking(true).map_err(err)?;
                let path = std_l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(absolute))
                    .unwrap_or_else(|| PathBuf::from(format!("fd {}", a.number)));
                (
                    BoundAddr::Unix(path),
                    Listener::Unix(tokio::net::UnixListener::from_std(std_l).map_err(err)?),
                )
            }
        };
        tracing::info!(
            "{}: using the {} socket handed over as fd {} ({addr})",
            a.service.name(),
            a.kind.name(),
            a.number
        );
        bound.push(BoundListener { service: a.service, addr, listener });
    }
    // 3. The data directory, locked.
    std::fs::create_dir_all(&base).map_err(|e| data_dir_err(&base, e))?;
    let lock = lock_dir(&base)?;
    // 4. Unix sockets.
    let mut created = Vec::new();
    for (s, abs, bind) in unix_wanted {
        let err = |e: std::io::Error| ListenError::Unix {
            service: s.name(),
            path: abs.display().to_string(),
            message: e.to_string(),
        };
        if let Ok(meta) = std::fs::symlink_metadata(&abs) {
            use std::os::unix::fs::FileTypeExt as _;
            if !meta.file_type().is_socket() {
                return Err(err(std::io::Error::other(
                    "a file that is not a socket is in the way; move it",
                )));
            }
            // Left by a process that did not stop cleanly: the lock says no server runs here.
            std::fs::remove_file(&abs).map_err(err)?;
        }
        let l = tokio::net::UnixListener::bind(&bind).map_err(err)?;
        created.push(abs.clone());
        bound.push(BoundListener {
            service: s,
            addr: BoundAddr::Unix(abs),
            listener: Listener::Unix(l),
        });
    }
    bound.sort_by_key(|b| (b.service, matches!(b.addr, BoundAddr::Unix(_))));
    let advertised = Service::ALL.map(|s| advertise(options(config, s), s, &bound));
    Ok(Listeners { bound, advertised, created_sockets: created, _lock: lock })
}

fn data_dir_err(dir: &Path, e: impl std::fmt::Display) -> ListenError {
    ListenError::DataDir { dir: dir.display().to_string(), message: e.to_string() }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The data directory, or the nearest ancestor that exists when it does not yet, must be
/// writable by this process.
fn check_writable(base: &Path) -> Result<(), ListenError> {
    if base.exists() && !base.is_dir() {
        return Err(ListenError::NotWritable {
            dir: base.display().to_string(),
            message: "it is not a directory".into(),
        });
    }
    let mut dir = base;
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| data_dir_err(base, e))?;
    // SAFETY: access only reads the NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        let message = if dir == base { e.to_string() } else { format!("{}: {e}", dir.display()) };
        return Err(ListenError::NotWritable { dir: base.display().to_string(), message });
    }
    Ok(())
}

fn lock_dir(base: &Path) -> Result<File, ListenError> {
    let path = base.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| data_dir_err(base, e))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            ListenError::Locked { dir: base.display().to_string() }
        } else {
            data_dir_err(base, e)
        });
    }
    Ok(f)
}

/// What a service tells clients to use: the configured address, else its host with the
/// bound port, else the bound address (a wildcard replaced by this machine's address).
fn advertise(o: &ListenerOptions, s: Service, bound: &[BoundListener]) -> String {
    if let Some(a) = &o.advertised_address {
        return a.clone();
    }
    let tcp = bound.iter().find_map(|b| match &b.addr {
        BoundAddr::Tcp(a) if b.service == s => Some(*a),
        _ => None,
    });
    let unix = bound.iter().find_map(|b| match &b.addr {
        BoundAddr::Unix(p) if b.service == s => Some(p.clone()),
        _ => None,
    });
    match (tcp, unix) {
        (Some(a), _) => {
            let host = match &o.advertised_host {
                Some(h) => h.clone(),
                None => host_of(if a.ip().is_unspecified() { local_ip() } else { a.ip() }),
            };
            format!("http://{host}:{}/", a.port())
        }
        (None, Some(p)) => format!("unix:{}", p.display()),
        (None, None) => String::new(),
    }
}

fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// This machine's address for a wildcard bind: the source address of its default route
/// (a UDP socket "connected" to a documentation address; nothing is sent, and it needs no
/// netlink, which hardened units forbid), else loopback: a machine with no route is reached
/// locally.
pub fn local_ip() -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    }
}

impl Listeners {
    /// The URL a service advertises (the ingress's is the admin API's `ingress_endpoint`).
    pub fn advertised(&self, s: Service) -> &str {
        &self.advertised[s.index()]
    }

    /// Name, address and kind of every listener (the node endpoint's `/health`).
    pub fn describe(&self) -> Vec<(Service, BoundAddr)> {
        self.bound.iter().map(|b| (b.service, b.addr.clone())).collect()
    }

    /// Takes the listeners out to serve them; the lock and the socket files stay here.
    pub fn take(&mut self) -> Vec<BoundListener> {
        std::mem::take(&mut self.bound)
    }

    /// Removes the socket files this process created.
    pub fn remove_socket_files(&mut self) {
        for p in self.created_sockets.drain(..) {
            let _ = std::fs::remove_file(&p);
        }
    }
}

impl Drop for Listeners {
    /// A start that fails after binding leaves no socket files behind either.
    fn drop(&mut self) {
        self.remove_socket_files();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_socket_path_is_bound_relative_to_the_working_directory_when_that_fits() {
        let cwd = PathBuf::from("/srv/".to_string() + &"c".repeat(60));
        let long = cwd.join("x".repeat(80)).join("admin.sock");
        assert!(long.as_os_str().len() > SOCKET_PATH_MAX);
        let rel = bind_path(&long, Some(&cwd)).expect("the relative path fits");
        assert_eq!(rel, PathBuf::from("x".repeat(80)).join("admin.sock"));
        // Too long even relative, or outside the working directory: refused.
        let too_long = cwd.join("y".repeat(120)).join("admin.sock");
        assert_eq!(bind_path(&too_long, Some(&cwd)), None);
        assert_eq!(bind_path(&long, Some(Path::new("/elsewhere"))), None);
        assert_eq!(bind_path(&long, None), None);
        let short = Path::new("/tmp/a.sock");
        assert_eq!(bind_path(short, None), Some(short.to_path_buf()));
    }

    #[test]
    fn a_service_index_is_its_place_in_the_list_of_all() {
        for (i, s) in Service::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i, "{s:?}");
        }
    }

    #[test]
    fn the_advertised_address_of_a_wildcard_bind_is_a_real_address() {
        let ip = local_ip();
        assert!(!ip.is_unspecified(), "{ip}");
    }
}
