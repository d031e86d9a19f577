//! Zero-downtime restarts: the harness holds the listening sockets the way systemd does
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`: TCP ingress, admin, fabric and a unix ingress
//! socket) and hands them to every start of the server, while a bounded request loop runs on
//! loopback; the server is stopped with SIGTERM and started again several times under it.
//!
//! Invariants checked: no request fails (each client opens a new connection per request, so
//! connections made while no server runs wait in the held socket's backlog), every stop exits
//! 0, and no invocation is lost or applied twice: each client adds 1 to its own counter
//! object in sequence, so its answers must be exactly 1, 2, 3, … and the final count equals
//! the number of answers.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use support::{Fixture, FixtureOptions, Sdks};

/// Restarts under load.
const RESTARTS: usize = 3;
/// Clients over TCP; one more goes over the unix socket.
const TCP_CLIENTS: usize = 4;
/// Load runs this long before, between and after the restarts.
const LOAD_GAP: Duration = Duration::from_millis(700);
/// Bound on one request, including a restart it may wait through.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on the whole loop.
const LOOP_MAX: Duration = Duration::from_secs(60);

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    counts: Vec<u64>,
    failures: Vec<String>,
}

async fn add_over_tcp(client: &support::Ingress, key: &str) -> Result<u64, String> {
    let reply = tokio::time::timeout(
        REQUEST_TIMEOUT,
        client.try_call(&format!("/Counter/{key}/add"), json!(1)),
    )
    .await
    .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))??;
    if reply.status != 200 {
        return Err(format!("status {}: {}", reply.status, reply.text()));
    }
    reply.json().as_u64().ok_or_else(|| format!("not a count: {}", reply.text()))
}

async fn add_over_unix(path: &std::path::Path, key: &str) -> Result<u64, String> {
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("/Counter/{key}/add"))
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"1")))
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        if status != 200 {
            return Err(format!("status {status}: {}", String::from_utf8_lossy(&body)));
        }
        serde_json::from_slice::<u64>(&body).map_err(|e| format!("{e}: {body:?}"))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_on_held_sockets_fail_no_request_and_lose_or_repeat_no_invocation() {
    let opts = FixtureOptions { socket_activation: true, ..FixtureOptions::default() };
    let mut fx = Fixture::start_with("zero-downtime", Sdks::Ts, opts).await;
    let unix = fx.server.held_unix_ingress().expect("a held unix ingress socket");
    let log = fx.server.log();
    assert!(
        log.contains("using the TCP socket handed over as fd 3")
            && log.contains("using the unix socket handed over as fd 6"),
        "the server took over the held sockets:\n{log}"
    );
    assert!(
        !fx.server.base_dir.join("ingress.sock").exists(),
        "no ingress socket of its own when one is handed over"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..=TCP_CLIENTS {
        let stop = stop.clone();
        let ingress = fx.handle();
        let unix = unix.clone();
        let key = format!("restart-{c}");
        clients.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < LOOP_MAX {
                let r = if c == TCP_CLIENTS {
                    add_over_unix(&unix, &key).await
                } else {
                    add_over_tcp(&ingress, &key).await
                };
                match r {
                    Ok(n) => seen.counts.push(n),
                    Err(e) => seen.failures.push(e),
                }
            }
            (key, seen)
        }));
    }
    let mut stops = Vec::new();
    for _ in 0..RESTARTS {
        tokio::time::sleep(LOAD_GAP).await;
        let t = Instant::now();
        let status = fx.server.stop().await.expect("the server stops on SIGTERM");
        stops.push(t.elapsed());
        assert!(status.success(), "a SIGTERM stop exits 0: {status}");
        fx.restart_server().await;
    }
    tokio::time::sleep(LOAD_GAP).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0usize;
    for client in clients {
        let (key, seen) = client.await.expect("client task");
        assert!(seen.failures.is_empty(), "{key}: failed requests: {:?}", seen.failures);
        let expected: Vec<u64> = (1..=seen.counts.len() as u64).collect();
        assert_eq!(seen.counts, expected, "{key}: every add applied exactly once, in order");
        let last = fx.call(&format!("/Counter/{key}/add"), json!(0)).await;
        assert_eq!(last.json().as_u64(), Some(seen.counts.len() as u64), "{key}: final count");
        total += seen.counts.len();
    }
    assert!(total >= 50, "the loop made real traffic across the restarts: {total} requests");
    assert!(
        stops.iter().all(|d| *d < Duration::from_secs(10)),
        "each drain stayed well inside shutdown-timeout: {stops:?}"
    );
    eprintln!("{total} requests across {RESTARTS} restarts, stop times {stops:?}, no failure");
}
