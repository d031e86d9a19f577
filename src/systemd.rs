//! The two systemd protocols a service speaks, without linking libsystemd: socket activation
//! (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`: listening sockets handed over from fd 3 on)
//! and readiness notification (`NOTIFY_SOCKET`: `READY=1`, `STOPPING=1`, `WATCHDOG=1`).
//!
//! Invariants:
//! - Handed-over fds are taken only when `LISTEN_PID` names this process; they are then marked
//!   close-on-exec and the variables are removed, so no child inherits them.
//! - Every handed-over fd is used or the start fails: a count that does not match the names,
//!   an unknown name, more unnamed sockets of a kind than services, or an fd that is not a
//!   listening stream socket is an error naming the fd, never silently dropped. Named sockets
//!   may repeat (an IPv4 and an IPv6 address for one service).
//! - Without `NOTIFY_SOCKET` notifications do nothing, so one binary runs with and without
//!   systemd.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The first fd systemd hands over.
const LISTEN_FDS_START: RawFd = 3;
/// More than any real unit passes; a larger count is a malformed environment.
const LISTEN_FDS_MAX: usize = 64;

/// The services a handed-over socket can be for, by their `FileDescriptorName=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ingress,
    Admin,
    Fabric,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Ingress, Service::Admin, Service::Fabric];

    pub fn name(self) -> &'static str {
        match self {
            Service::Ingress => "ingress",
            Service::Admin => "admin",
            Service::Fabric => "fabric",
        }
    }

    /// Its position in [`Service::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What kind of socket an fd is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    Tcp,
    Unix,
}

impl SocketKind {
    pub fn name(self) -> &'static str {
        match self {
            SocketKind::Tcp => "TCP",
            SocketKind::Unix => "unix",
        }
    }
}

/// One listening socket handed over by the service manager.
#[derive(Debug)]
pub struct ActivatedFd {
    pub service: Service,
    pub kind: SocketKind,
    pub fd: OwnedFd,
    /// The fd number it arrived as, for messages.
    pub number: RawFd,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("socket activation: {0}")]
pub struct ActivationError(pub String);

/// Takes the sockets systemd passed to this process, if any (see the module invariants).
pub fn take_listen_fds() -> Result<Vec<ActivatedFd>, ActivationError> {
    let get = |k: &str| std::env::var(k).ok();
    let (pid, fds, names) = (get("LISTEN_PID"), get("LISTEN_FDS"), get("LISTEN_FDNAMES"));
    let Some(fds) = fds else { return Ok(Vec::new()) };
    match pid.as_deref().map(str::trim).map(str::parse::<u32>) {
        Some(Ok(p)) if p == std::process::id() => {}
        // Meant for another process (a parent that exec'd us without clearing them).
        _ => {
            tracing::warn!(
                "LISTEN_FDS is set for process {} (LISTEN_PID), not this one ({}); no sockets \
                 are taken over",
                pid.as_deref().unwrap_or("?"),
                std::process::id()
            );
            for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
                std::env::remove_var(k);
            }
            return Ok(Vec::new());
        }
    }
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // The process is still single-threaded here (called before the runtime starts).
        std::env::remove_var(k);
    }
    let n: usize = fds.trim().parse().map_err(|_| {
        ActivationError(format!("LISTEN_FDS=`{fds}` is not a number of file descriptors"))
    })?;
    if n > LISTEN_FDS_MAX {
        return Err(ActivationError(format!(
            "LISTEN_FDS={n} is more than the {LISTEN_FDS_MAX} this server accepts"
        )));
    }
    let names: Option<Vec<String>> =
        names.map(|v| v.split(':').map(str::to_string).collect::<Vec<_>>());
    if let Some(names) = &names {
        if names.len() != n {
            return Err(ActivationError(format!(
                "LISTEN_FDNAMES names {} sockets ({}) but LISTEN_FDS={n}",
                names.len(),
                names.join(":")
            )));
        }
    }
    let mut kinds = Vec::with_capacity(n);
    for i in 0..n {
        let fd = LISTEN_FDS_START + i as RawFd;
        kinds.push(check_listening(fd)?);
    }
    let mut out: Vec<ActivatedFd> = Vec::with_capacity(n);
    for (i, kind) in kinds.into_iter().enumerate() {
        let number = LISTEN_FDS_START + i as RawFd;
        let service = match &names {
            Some(names) => Service::from_name(&names[i]).ok_or_else(|| {
                ActivationError(format!(
                    "LISTEN_FDNAMES names fd {number} `{}`; expected admin, ingress or fabric \
                     (set FileDescriptorName= in the socket unit)",
                    names[i]
                ))
            })?,
            // Without names, as Restate: sockets of one kind go to ingress, admin, fabric in
            // that order.
            None => {
                let before = out.iter().filter(|a| a.kind == kind).count();
                *Service::ALL.get(before).ok_or_else(|| {
                    ActivationError(format!(
                        "LISTEN_FDS passes more than three {} sockets and LISTEN_FDNAMES does \
                         not say which is which",
                        kind.name()
                    ))
                })?
            }
        };
        // Named sockets may repeat (an IPv4 and an IPv6 address for one service); without
        // names the position decides, so each kind has one socket per service.
        // SAFETY: systemd hands these fds over to this process; nothing else owns them (the
        // variables naming them were removed above, so they are taken once).
        let fd = unsafe { OwnedFd::from_raw_fd(number) };
        // SAFETY: fcntl on an fd we own.
        unsafe {
            libc::fcntl(number, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        out.push(ActivatedFd { service, kind, fd, number });
    }
    Ok(out)
}

/// The kind of a listening stream socket, or why `fd` is not one.
fn check_listening(fd: RawFd) -> Result<SocketKind, ActivationError> {
    let not = |why: String| {
        ActivationError(format!(
            "LISTEN_FDS passes fd {fd}, which is not a listening socket: {why}"
        ))
    };
    let accepting = socket_option(fd, libc::SO_ACCEPTCONN).map_err(|e| not(e.to_string()))?;
    if accepting == 0 {
        return Err(not("it does not listen".into()));
    }
    if socket_option(fd, libc::SO_TYPE).ok() != Some(libc::SOCK_STREAM) {
        return Err(not("it is not a stream socket (ListenStream=)".into()));
    }
    // SAFETY: a zeroed sockaddr_storage is valid; getsockname writes at most `len` bytes.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len)
    };
    if r != 0 {
        return Err(not(std::io::Error::last_os_error().to_string()));
    }
    match i32::from(addr.ss_family) {
        libc::AF_INET | libc::AF_INET6 => Ok(SocketKind::Tcp),
        libc::AF_UNIX => Ok(SocketKind::Unix),
        other => Err(not(format!("address family {other}"))),
    }
}

/// An integer `SOL_SOCKET` option of `fd`.
fn socket_option(fd: RawFd, option: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends one notification to the service manager; nothing when not run by one. Failures are
/// logged, never fatal: a missed notification must not stop a working server.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("sd_notify: cannot create a socket: {e}");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let r = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = r {
        tracing::warn!("sd_notify {state:?} to {}: {e}", path.to_string_lossy());
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this process), if any.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
}
