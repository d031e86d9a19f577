//! Restate Rust SDK test services for Ratchet's end-to-end tests (`tests/e2e_sdk.rs`).
//!
//! Usage: `rust-test-service --port N [--stats-port M]`.
//!
//! Serves the SDK's own HTTP/2 cleartext server on `127.0.0.1:N` with `RustGreeter`
//! (a service with a success and a terminal-error handler), `RustCounter` (a virtual object
//! with eager state) and `RustRunner` (ctx.run then a durable sleep). With `--stats-port`, a
//! plain HTTP/1 `GET /stats` on `127.0.0.1:M` returns the in-process side-effect counters as
//! JSON, so a test can check that an effect ran exactly once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use restate_sdk::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const COUNT: &str = "count";
const RUN_SLEEP_MS: u64 = 200;
const STATS_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Side-effect counters by name; only ever incremented.
fn stats() -> &'static Mutex<BTreeMap<String, u64>> {
    static STATS: OnceLock<Mutex<BTreeMap<String, u64>>> = OnceLock::new();
    STATS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn bump(name: String) -> u64 {
    let mut stats = stats().lock().expect("stats lock poisoned");
    let count = stats.entry(name).or_insert(0);
    *count += 1;
    *count
}

struct Greeter;

#[service(name = "RustGreeter")]
impl Greeter {
    #[handler]
    async fn greet(&self, _ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        Ok(format!("Hello {name}!"))
    }

    #[handler]
    async fn fail(&self, _ctx: Context<'_>) -> Result<String, HandlerError> {
        Err(TerminalError::new_with_code(418, "bad input").into())
    }
}

struct Counter;

#[object(name = "RustCounter")]
impl Counter {
    #[handler]
    async fn add(&self, ctx: ObjectContext<'_>, n: i64) -> Result<i64, HandlerError> {
        let count = ctx.get::<i64>(COUNT).await?.unwrap_or(0) + n;
        ctx.set(COUNT, count);
        Ok(count)
    }

    #[handler]
    async fn get(&self, ctx: SharedObjectContext<'_>) -> Result<i64, HandlerError> {
        Ok(ctx.get::<i64>(COUNT).await?.unwrap_or(0))
    }

    #[handler]
    async fn clear(&self, ctx: ObjectContext<'_>) -> Result<(), HandlerError> {
        ctx.clear(COUNT);
        Ok(())
    }
}

struct Runner;

#[service(name = "RustRunner")]
impl Runner {
    /// Runs the side effect once per invocation, then sleeps durably.
    #[handler(name = "runAndSleep")]
    async fn run_and_sleep(&self, ctx: Context<'_>, tag: String) -> Result<u64, HandlerError> {
        let name = format!("run:{tag}");
        let first = ctx.run(|| async move { Ok(bump(name)) }).name("effect").await?;
        ctx.sleep(Duration::from_millis(RUN_SLEEP_MS)).await?;
        Ok(first)
    }
}

struct Args {
    port: u16,
    stats_port: Option<u16>,
}

fn parse_args() -> Result<Args, String> {
    let mut port = None;
    let mut stats_port = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("missing value after '{flag}'"))?;
        let value: u16 = value.parse().map_err(|e| format!("bad value for '{flag}': {e}"))?;
        match flag.as_str() {
            "--port" => port = Some(value),
            "--stats-port" => stats_port = Some(value),
            _ => return Err(format!("unknown argument '{flag}'")),
        }
    }
    let port = port.ok_or("--port N is required")?;
    Ok(Args { port, stats_port })
}

/// A minimal HTTP/1 server: every request gets the stats JSON (the test only asks `GET /stats`).
async fn serve_stats(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
                if request.len() > STATS_REQUEST_BYTES_MAX {
                    return;
                }
            }
            let body = {
                let stats = stats().lock().expect("stats lock poisoned");
                let entries: Vec<String> =
                    stats.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                format!("{{{}}}", entries.join(","))
            };
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("rust-test-service: {e}; usage: rust-test-service --port N [--stats-port M]");
            std::process::exit(2);
        }
    };
    if let Some(stats_port) = args.stats_port {
        let addr = SocketAddr::from(([127, 0, 0, 1], stats_port));
        let listener = TcpListener::bind(addr).await.expect("bind the stats port");
        tokio::spawn(serve_stats(listener));
    }
    let endpoint = Endpoint::builder().bind(Greeter).bind(Counter).bind(Runner).build();
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    println!("rust-test-service listening on {addr}");
    HttpServer::new(endpoint).listen_and_serve(addr).await;
}
