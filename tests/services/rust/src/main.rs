//! Restate Rust SDK test services for Ratchet's end-to-end tests (`tests/e2e_sdk.rs`,
//! `tests/e2e_rust_model.rs`, `tests/e2e_durability.rs`).
//!
//! Usage: `rust-test-service --port N [--stats-port M]`.
//!
//! Serves the SDK's own HTTP/2 cleartext server on `127.0.0.1:N` with `RustGreeter`
//! (a service with a success and a terminal-error handler), `RustCounter` (a virtual object
//! with eager state), `RustRunner` (ctx.run then a durable sleep), `RustApproval` (a workflow
//! waiting on a durable promise), `RustSignals` (awakeables, attach, cancel, idempotent calls,
//! delayed sends and calls into the TypeScript test service), `RustTally` (a virtual object
//! that records when and how often it ran, the target of delayed sends), `RustFlaky` (retry
//! policies and an ingress-private handler from the SDK's handler options) and `RustBrief` (a
//! workflow with a short completion retention). With `--stats-port`,
//! a plain HTTP/1 `GET /stats` on `127.0.0.1:M` returns the in-process side-effect counters
//! and published values (awakeable ids, execution times) as one JSON object, so a test can
//! check that an effect ran exactly once, and when.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use restate_sdk::context::{CallFuture, RequestTarget};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

/// Values published for the test by name (awakeable ids, invocation ids, times); the last
/// write wins. Served next to the counters by `GET /stats`.
fn published() -> &'static Mutex<BTreeMap<String, Value>> {
    static PUBLISHED: OnceLock<Mutex<BTreeMap<String, Value>>> = OnceLock::new();
    PUBLISHED.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn publish(name: String, value: Value) {
    published().lock().expect("published lock poisoned").insert(name, value);
}

fn unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    u64::try_from(since.as_millis()).expect("milliseconds fit u64")
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

/// How a durable future ended, as the TS test service reports it: `{"value": v}` or
/// `{"error": message, "code": code}`.
#[derive(Serialize, Deserialize, Debug, Default)]
struct Outcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

impl Outcome {
    fn of<T: Into<Value>>(result: Result<T, TerminalError>) -> Outcome {
        match result {
            Ok(v) => Outcome { value: Some(v.into()), ..Outcome::default() },
            Err(e) => Outcome {
                error: Some(e.message().to_string()),
                code: Some(e.code()),
                ..Outcome::default()
            },
        }
    }
}

const STATUS: &str = "status";
const APPROVAL: &str = "approval";

struct Approval;

/// A workflow: `run` waits for the durable promise "approval" that a shared handler completes.
#[workflow(name = "RustApproval")]
impl Approval {
    #[handler]
    async fn run(
        &self,
        ctx: WorkflowContext<'_>,
        req: String,
    ) -> Result<Json<Value>, HandlerError> {
        let key = ctx.key().to_string();
        let name = format!("wf-run:{key}");
        ctx.run(|| async move { Ok(bump(name)) }).name("count").await?;
        ctx.set(STATUS, "waiting".to_string());
        let decision = Outcome::of(ctx.promise::<String>(APPROVAL).await);
        ctx.set(STATUS, "decided".to_string());
        let name = format!("wf-after:{key}");
        ctx.run(|| async move { Ok(bump(name)) }).name("after").await?;
        Ok(Json(serde_json::json!({ "input": req, "decision": decision })))
    }

    #[handler]
    async fn approve(
        &self,
        ctx: SharedWorkflowContext<'_>,
        value: String,
    ) -> Result<String, HandlerError> {
        ctx.resolve_promise(APPROVAL, value);
        Ok("approved".to_string())
    }

    #[handler]
    async fn deny(
        &self,
        ctx: SharedWorkflowContext<'_>,
        reason: String,
    ) -> Result<String, HandlerError> {
        ctx.reject_promise(APPROVAL, TerminalError::new(reason));
        Ok("denied".to_string())
    }

    /// The promise's value, or null while it is not completed.
    #[handler]
    async fn peek(&self, ctx: SharedWorkflowContext<'_>) -> Result<Json<Value>, HandlerError> {
        let v = ctx.peek_promise::<String>(APPROVAL).await?;
        Ok(Json(v.map_or(Value::Null, Value::from)))
    }

    #[handler]
    async fn status(&self, ctx: SharedWorkflowContext<'_>) -> Result<String, HandlerError> {
        Ok(ctx.get::<String>(STATUS).await?.unwrap_or_else(|| "none".to_string()))
    }
}

#[derive(Serialize, Deserialize)]
struct Completion {
    id: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct SleepReq {
    ms: u64,
    tag: String,
}

#[derive(Serialize, Deserialize)]
struct Later {
    key: String,
    ms: u64,
    /// Sleeps this long after the send before answering.
    #[serde(default)]
    then_sleep_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct AddReq {
    key: String,
    n: i64,
}

struct Signals;

#[service(name = "RustSignals")]
impl Signals {
    /// Creates an awakeable, publishes its id as `awk:<tag>`, returns how it was completed.
    #[handler(name = "awaitAwakeable")]
    async fn await_awakeable(
        &self,
        ctx: Context<'_>,
        tag: String,
    ) -> Result<Json<Outcome>, HandlerError> {
        let (id, promise) = ctx.awakeable::<String>();
        let name = format!("awk:{tag}");
        ctx.run(|| async move {
            publish(name, Value::from(id));
            Ok(())
        })
        .name("publish")
        .await?;
        let outcome = Outcome::of(promise.await);
        let name = format!("awk-done:{tag}");
        ctx.run(|| async move { Ok(bump(name)) }).name("done").await?;
        Ok(Json(outcome))
    }

    /// As `awaitAwakeable`, but gives up after `ms`: `{"error": "timeout", "code": 408}`.
    #[handler(name = "awaitWithTimeout")]
    async fn await_with_timeout(
        &self,
        ctx: Context<'_>,
        req: Json<SleepReq>,
    ) -> Result<Json<Outcome>, HandlerError> {
        let SleepReq { ms, tag } = req.0;
        let (id, promise) = ctx.awakeable::<String>();
        let name = format!("awk:{tag}");
        ctx.run(|| async move {
            publish(name, Value::from(id));
            Ok(())
        })
        .name("publish")
        .await?;
        let outcome = restate_sdk::select! {
            res = promise => Outcome::of(res),
            _ = ctx.sleep(Duration::from_millis(ms)) => Outcome {
                error: Some("timeout".to_string()),
                code: Some(408),
                ..Outcome::default()
            },
        };
        let name = format!("awk-done:{tag}");
        ctx.run(|| async move { Ok(bump(name)) }).name("done").await?;
        Ok(Json(outcome))
    }

    #[handler]
    async fn resolve(&self, ctx: Context<'_>, c: Json<Completion>) -> Result<String, HandlerError> {
        ctx.resolve_awakeable(&c.0.id, c.0.value);
        Ok("resolved".to_string())
    }

    #[handler]
    async fn reject(&self, ctx: Context<'_>, c: Json<Completion>) -> Result<String, HandlerError> {
        ctx.reject_awakeable(&c.0.id, TerminalError::new(c.0.reason));
        Ok("rejected".to_string())
    }

    /// Attaches to an invocation by id and returns its outcome.
    #[handler(name = "attachTo")]
    async fn attach_to(&self, ctx: Context<'_>, id: String) -> Result<Json<Outcome>, HandlerError> {
        let result = ctx.invocation_handle(id).attach::<Json<Value>>().await;
        Ok(Json(Outcome::of(result.map(|v| v.0))))
    }

    /// Durable sleep between two effects. Cancellation reaches the handler as a terminal error
    /// from whichever await it meets (normally the sleep); the handler records it
    /// (`sleep-cancelled:<tag>`, and the code as `cancel-code:<tag>`) and fails with it.
    #[handler]
    async fn sleep(&self, ctx: Context<'_>, req: Json<SleepReq>) -> Result<String, HandlerError> {
        let SleepReq { ms, tag } = req.0;
        bump(format!("sleep-attempt:{tag}"));
        let steps = async {
            let name = format!("sleep-before:{tag}");
            ctx.run(|| async move { Ok(bump(name)) }).name("before").await?;
            ctx.sleep(Duration::from_millis(ms)).await?;
            let name = format!("sleep-after:{tag}");
            ctx.run(|| async move { Ok(bump(name)) }).name("after").await?;
            Ok::<_, TerminalError>(())
        };
        match steps.await {
            Ok(()) => Ok(format!("slept {ms} ms")),
            Err(e) => {
                let (name, code) = (tag.clone(), e.code());
                ctx.run(|| async move {
                    bump(format!("sleep-cancelled:{name}"));
                    publish(format!("cancel-code:{name}"), Value::from(code));
                    Ok(())
                })
                .name("cancelled")
                .await?;
                Err(e.into())
            }
        }
    }

    /// Cancels an invocation by id.
    #[handler(name = "cancelIt")]
    async fn cancel_it(&self, ctx: Context<'_>, id: String) -> Result<String, HandlerError> {
        ctx.invocation_handle(id).cancel();
        Ok("cancelled".to_string())
    }

    /// Runs once per invocation; `n` counts the executions for `tag`.
    #[handler(name = "idemOnce")]
    async fn idem_once(&self, ctx: Context<'_>, tag: String) -> Result<Json<Value>, HandlerError> {
        let name = format!("idem:{tag}");
        let n = ctx.run(|| async move { Ok(bump(name)) }).name("count").await?;
        Ok(Json(serde_json::json!({ "tag": tag, "n": n })))
    }

    /// Calls `idemOnce` twice with one idempotency key.
    #[handler(name = "callTwice")]
    async fn call_twice(&self, ctx: Context<'_>, tag: String) -> Result<Json<Value>, HandlerError> {
        let key = format!("k-{tag}");
        let target = || RequestTarget::service("RustSignals", "idemOnce");
        let a: Json<Value> =
            ctx.request(target(), tag.clone()).idempotency_key(key.clone()).call().await?;
        let b: Json<Value> = ctx.request(target(), tag).idempotency_key(key).call().await?;
        Ok(Json(Value::Array(vec![a.0, b.0])))
    }

    /// Sends `RustTally/<key>/hit` after `ms`, then sleeps `then_sleep_ms` if set (having
    /// counted `sent-later:<key>`); returns the new invocation's id.
    #[handler(name = "sendLater")]
    async fn send_later(&self, ctx: Context<'_>, req: Json<Later>) -> Result<String, HandlerError> {
        let Later { key, ms, then_sleep_ms } = req.0;
        let target = RequestTarget::object("RustTally", key.clone(), "hit");
        let handle = ctx
            .request::<_, ()>(target, "rust".to_string())
            .send_after(Duration::from_millis(ms))
            .await?;
        if then_sleep_ms > 0 {
            let name = format!("sent-later:{key}");
            ctx.run(|| async move { Ok(bump(name)) }).name("sent").await?;
            ctx.sleep(Duration::from_millis(then_sleep_ms)).await?;
        }
        Ok(handle.invocation_id().to_string())
    }

    /// A call into the TypeScript test service (`Greeter.greet`).
    #[handler(name = "callTs")]
    async fn call_ts(&self, ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        let target = RequestTarget::service("Greeter", "greet");
        let greeting: String = ctx.request(target, name).call().await?;
        Ok(format!("ts said: {greeting}"))
    }

    /// Calls the TypeScript `Sleeper.sleep` and publishes the child's invocation id as
    /// `child:<tag>` before waiting for it.
    #[handler(name = "callSleepTs")]
    async fn call_sleep_ts(
        &self,
        ctx: Context<'_>,
        req: Json<SleepReq>,
    ) -> Result<String, HandlerError> {
        let SleepReq { ms, tag } = req.0;
        let target = RequestTarget::service("Sleeper", "sleep");
        let input = Json(serde_json::json!({ "ms": ms, "tag": tag }));
        let call = ctx.request::<_, String>(target, input).call();
        let child = call.invocation_handle().await?.invocation_id().to_string();
        let name = format!("child:{tag}");
        ctx.run(|| async move {
            publish(name, Value::from(child));
            Ok(())
        })
        .name("publish")
        .await?;
        Ok(call.await?)
    }

    /// A TypeScript handler's terminal error, as a Rust caller sees it.
    #[handler(name = "callTsFail")]
    async fn call_ts_fail(&self, ctx: Context<'_>) -> Result<Json<Outcome>, HandlerError> {
        let target = RequestTarget::service("Greeter", "fail");
        let result = ctx.request::<_, String>(target, ()).call().await;
        Ok(Json(Outcome::of(result)))
    }

    /// A call to the TypeScript `Counter` virtual object.
    #[handler(name = "addTs")]
    async fn add_ts(&self, ctx: Context<'_>, req: Json<AddReq>) -> Result<i64, HandlerError> {
        let AddReq { key, n } = req.0;
        let target = RequestTarget::object("Counter", key, "add");
        Ok(ctx.request(target, n).call().await?)
    }
}

struct Tally;

/// The target of delayed sends: records each execution (in ctx.run: `hit:<key>` counts them,
/// `hit-at:<key>` is the wall-clock time in ms of the last one) and counts hits in its state.
#[object(name = "RustTally")]
impl Tally {
    #[handler]
    async fn hit(&self, ctx: ObjectContext<'_>, source: String) -> Result<u64, HandlerError> {
        let key = ctx.key().to_string();
        bump(format!("hit-attempt:{key}"));
        let name = key.clone();
        ctx.run(|| async move {
            bump(format!("hit:{name}"));
            publish(format!("hit-at:{name}"), Value::from(unix_ms()));
            publish(format!("hit-from:{name}"), Value::from(source));
            Ok(())
        })
        .name("record")
        .await?;
        let count = ctx.get::<u64>(COUNT).await?.unwrap_or(0) + 1;
        ctx.set(COUNT, count);
        Ok(count)
    }

    #[handler]
    async fn get(&self, ctx: SharedObjectContext<'_>) -> Result<u64, HandlerError> {
        Ok(ctx.get::<u64>(COUNT).await?.unwrap_or(0))
    }
}

/// Tags for which the `RustFlaky` handlers succeed.
fn allowed() -> &'static Mutex<std::collections::BTreeSet<String>> {
    static ALLOWED: OnceLock<Mutex<std::collections::BTreeSet<String>>> = OnceLock::new();
    ALLOWED.get_or_init(|| Mutex::new(std::collections::BTreeSet::new()))
}

/// Counts the attempt (`attempts:<tag>`); fails with a retryable error until `allow(tag)`.
fn flaky_attempt(tag: &str) -> Result<String, HandlerError> {
    let n = bump(format!("attempts:{tag}"));
    if !allowed().lock().expect("allowed lock poisoned").contains(tag) {
        return Err(format!("not yet (attempt {n})").into());
    }
    Ok(format!("done after {n} attempts"))
}

struct Flaky;

/// Retry policies from the SDK's handler options: `work` pauses after two attempts, `workOrKill`
/// fails for good after three. `hidden` is private to the ingress.
#[service(name = "RustFlaky")]
impl Flaky {
    #[handler(invocation_retry_policy(
        max_attempts = 2,
        initial_interval = "10ms",
        on_max_attempts = "pause"
    ))]
    async fn work(&self, _ctx: Context<'_>, tag: String) -> Result<String, HandlerError> {
        flaky_attempt(&tag)
    }

    #[handler(
        name = "workOrKill",
        invocation_retry_policy(
            max_attempts = 3,
            initial_interval = "10ms",
            on_max_attempts = "kill"
        )
    )]
    async fn work_or_kill(&self, _ctx: Context<'_>, tag: String) -> Result<String, HandlerError> {
        flaky_attempt(&tag)
    }

    #[handler]
    async fn allow(&self, _ctx: Context<'_>, tag: String) -> Result<String, HandlerError> {
        allowed().lock().expect("allowed lock poisoned").insert(tag);
        Ok("allowed".to_string())
    }

    #[handler(ingress_private)]
    async fn hidden(&self, _ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        Ok(format!("hidden {name}"))
    }

    /// Calls the ingress-private `hidden` from a handler.
    #[handler(name = "callHidden")]
    async fn call_hidden(&self, ctx: Context<'_>, name: String) -> Result<String, HandlerError> {
        let target = RequestTarget::service("RustFlaky", "hidden");
        Ok(ctx.request(target, name).call().await?)
    }
}

struct Brief;

/// A workflow kept for one second after it completes (its result, state and promises).
#[workflow(name = "RustBrief", workflow_completion_retention = "1s")]
impl Brief {
    #[handler]
    async fn run(&self, ctx: WorkflowContext<'_>, req: String) -> Result<String, HandlerError> {
        let name = format!("brief-run:{}", ctx.key());
        let n = ctx.run(|| async move { Ok(bump(name)) }).name("count").await?;
        ctx.set(STATUS, format!("ran {req}"));
        Ok(format!("{req} #{n}"))
    }

    #[handler]
    async fn status(&self, ctx: SharedWorkflowContext<'_>) -> Result<String, HandlerError> {
        Ok(ctx.get::<String>(STATUS).await?.unwrap_or_else(|| "none".to_string()))
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
                let mut all = serde_json::Map::new();
                for (k, v) in stats().lock().expect("stats lock poisoned").iter() {
                    all.insert(k.clone(), Value::from(*v));
                }
                for (k, v) in published().lock().expect("published lock poisoned").iter() {
                    all.insert(k.clone(), v.clone());
                }
                Value::Object(all).to_string()
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
    let endpoint = Endpoint::builder()
        .bind(Greeter)
        .bind(Counter)
        .bind(Runner)
        .bind(Approval)
        .bind(Signals)
        .bind(Tally)
        .bind(Flaky)
        .bind(Brief)
        .build();
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    println!("rust-test-service listening on {addr}");
    HttpServer::new(endpoint).listen_and_serve(addr).await;
}
