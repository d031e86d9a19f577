//! The scripted handlers the simulated SDK runs, and the services they belong to.
//!
//! Each handler is a plain async function over the simulated SDK's [`Ctx`]: deterministic in
//! its input and its journal, so replays issue the same commands. Together they exercise what
//! the core must get right: object state under per-key exclusivity (`Counter.add`,
//! `Log.append`), side effects and durable sleeps (`Worker.work`), calls and sends between
//! partitions in emission order (`Caller`), retryable and terminal failures (`Flaky`), a
//! command over a limit (`Big.set`), and a panicking SDK (`Flaky.panic`, planned only by the
//! test of panic reporting).

use bytes::Bytes;

use super::sdk::{Ctx, HandlerError, HandlerFuture, HandlerResult};
use crate::protocol::discovery::ServiceType;

/// A service: its name, type, and handlers (name, exclusive).
pub type ServiceDef = (&'static str, ServiceType, &'static [(&'static str, bool)]);

/// The simulated deployment's services.
pub const SERVICES: &[ServiceDef] = &[
    ("Counter", ServiceType::VirtualObject, &[("add", true), ("get", false)]),
    ("Log", ServiceType::VirtualObject, &[("append", true)]),
    ("Worker", ServiceType::Service, &[("work", false)]),
    ("Caller", ServiceType::Service, &[("call_add", false), ("send_seq", false)]),
    ("Flaky", ServiceType::Service, &[("flaky", false), ("fail", false), ("panic", false)]),
    ("Big", ServiceType::VirtualObject, &[("set", true)]),
];

/// Bytes of the state key `Big.set` writes: over the store's key limit.
pub const BIG_KEY_BYTES: usize = 65 * 1024;

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn int(b: &Bytes) -> i64 {
    text(b).trim().parse().unwrap_or(0)
}

async fn counter_add(ctx: Ctx) -> HandlerResult {
    let n = int(&ctx.input());
    let c = ctx.get("count").await?.map(|v| int(&v)).unwrap_or(0);
    ctx.set(b"count", Bytes::from((c + n).to_string()))?;
    Ok(Bytes::from((c + n).to_string()))
}

async fn counter_get(ctx: Ctx) -> HandlerResult {
    Ok(ctx.get("count").await?.unwrap_or_else(|| Bytes::from_static(b"0")))
}

async fn log_append(ctx: Ctx) -> HandlerResult {
    let item = text(&ctx.input());
    let mut items = ctx.get("items").await?.map(|v| text(&v)).unwrap_or_default();
    items.push_str(&item);
    items.push(',');
    ctx.set(b"items", Bytes::from(items))?;
    Ok(Bytes::new())
}

/// `run a`, sleep `input` ms, `run b`.
async fn worker_work(ctx: Ctx) -> HandlerResult {
    let ms = int(&ctx.input()).max(0) as u64;
    let a = ctx.run("a").await?;
    ctx.sleep(ms).await?;
    let b = ctx.run("b").await?;
    Ok(Bytes::from(format!("{}|{}", text(&a), text(&b))))
}

/// Input `key:n`: calls `Counter/key/add(n)`.
async fn caller_call_add(ctx: Ctx) -> HandlerResult {
    let input = text(&ctx.input());
    let (key, n) = input.split_once(':').ok_or(HandlerError::Terminal(400, "bad input".into()))?;
    ctx.call("Counter", "add", key, Bytes::from(n.to_string())).await
}

/// Input `key:tag:k`: sends `Log/key/append("tag.i")` for i in 0..k, in order.
async fn caller_send_seq(ctx: Ctx) -> HandlerResult {
    let input = text(&ctx.input());
    let mut parts = input.split(':');
    let (Some(key), Some(tag), Some(k)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(HandlerError::Terminal(400, "bad input".into()));
    };
    let k: u32 = k.parse().unwrap_or(0);
    for i in 0..k {
        ctx.send("Log", "append", key, Bytes::from(format!("{tag}.{i}")))?;
    }
    Ok(Bytes::new())
}

/// Fails retryably until its third attempt.
async fn flaky_flaky(ctx: Ctx) -> HandlerResult {
    if ctx.retry_count() < 2 {
        return Err(HandlerError::Retryable(format!("flaky attempt {}", ctx.retry_count())));
    }
    Ok(Bytes::from_static(b"ok"))
}

/// Panics in its first attempt (only planned by the test that shows panics are reported).
async fn flaky_panic(ctx: Ctx) -> HandlerResult {
    if ctx.retry_count() == 0 {
        panic!("Flaky.panic panics in its first attempt");
    }
    Ok(Bytes::from_static(b"ok"))
}

async fn flaky_fail(_ctx: Ctx) -> HandlerResult {
    Err(HandlerError::Terminal(418, "bad input".into()))
}

/// Writes a state key over the limit: the invocation must fail, the partition go on.
async fn big_set(ctx: Ctx) -> HandlerResult {
    ctx.set(&vec![b'x'; BIG_KEY_BYTES], Bytes::from_static(b"1"))?;
    Ok(Bytes::new())
}

/// The handler `service/handler`, ready to be polled.
pub fn handler(service: &str, handler: &str, ctx: Ctx) -> Option<HandlerFuture> {
    Some(match (service, handler) {
        ("Counter", "add") => Box::pin(counter_add(ctx)),
        ("Counter", "get") => Box::pin(counter_get(ctx)),
        ("Log", "append") => Box::pin(log_append(ctx)),
        ("Worker", "work") => Box::pin(worker_work(ctx)),
        ("Caller", "call_add") => Box::pin(caller_call_add(ctx)),
        ("Caller", "send_seq") => Box::pin(caller_send_seq(ctx)),
        ("Flaky", "flaky") => Box::pin(flaky_flaky(ctx)),
        ("Flaky", "fail") => Box::pin(flaky_fail(ctx)),
        ("Flaky", "panic") => Box::pin(flaky_panic(ctx)),
        ("Big", "set") => Box::pin(big_set(ctx)),
        _ => return None,
    })
}
