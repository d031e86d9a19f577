//! The scripted handlers the simulated SDK runs, and the services they belong to.
//!
//! Each handler is a plain async function over the simulated SDK's [`Ctx`]: deterministic in
//! its input and its journal, so replays issue the same commands. Together they exercise what
//! the core must get right: object state under per-key exclusivity (`Counter.add`,
//! `Log.append`), side effects and durable sleeps (`Worker.work`), calls and sends between
//! partitions in emission order (`Caller`), messages of hundreds of KiB that the shuffler must
//! split by bytes (`Caller.send_big` to `Sink.put`, which checks each payload), retryable and
//! terminal failures (`Flaky`), a command over a limit (`Big.set`), awakeables completed
//! through another partition's outbox, twice, of which only the first counts (`Awk`), and a
//! panicking SDK (`Flaky.panic`, planned only by the test of panic reporting).

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
    (
        "Caller",
        ServiceType::Service,
        &[("call_add", false), ("send_seq", false), ("send_big", false)],
    ),
    ("Flaky", ServiceType::Service, &[("flaky", false), ("fail", false), ("panic", false)]),
    ("Big", ServiceType::VirtualObject, &[("set", true)]),
    ("Sink", ServiceType::VirtualObject, &[("put", true)]),
    ("Awk", ServiceType::Service, &[("wait", false), ("resolve", false)]),
];

/// Bytes of the state key `Big.set` writes: over the store's key limit.
pub const BIG_KEY_BYTES: usize = 65 * 1024;

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn int(b: &Bytes) -> i64 {
    text(b).trim().parse().unwrap_or(0)
}

/// Creates an awakeable and sends its id with the input to `Awk.resolve`, which completes it
/// twice; returns what completed it (the first completion: the input).
async fn awk_wait(ctx: Ctx) -> HandlerResult {
    let (id, index) = ctx.awakeable();
    let input = text(&ctx.input());
    ctx.send("Awk", "resolve", "", Bytes::from(format!("{id}|{input}")))?;
    ctx.await_awakeable(index).await
}

/// Input `id|value`: resolves the awakeable with `value`, then again with something else
/// (which the server must ignore).
async fn awk_resolve(ctx: Ctx) -> HandlerResult {
    let input = text(&ctx.input());
    let (id, value) =
        input.split_once('|').ok_or(HandlerError::Terminal(400, "bad input".into()))?;
    ctx.resolve_awakeable(id, Bytes::from(value.to_string()))?;
    ctx.resolve_awakeable(id, Bytes::from_static(b"second"))?;
    Ok(Bytes::new())
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

/// A large message carrying `item`: `item;len;` and `len` filler bytes that depend on the item,
/// so a truncated, mixed-up or corrupted payload is told apart from the right one.
pub fn big_payload(item: &str, len: usize) -> Bytes {
    let salt = item.bytes().map(u64::from).sum::<u64>();
    let mut out = format!("{item};{len};").into_bytes();
    out.extend((0..len as u64).map(|j| b'a' + ((j * 31 + salt) % 26) as u8));
    Bytes::from(out)
}

/// The item a [`big_payload`] carries, if the payload is intact.
fn big_item(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, ';');
    let (item, len) = (parts.next()?, parts.next()?.parse::<usize>().ok()?);
    (big_payload(item, len) == payload).then(|| item.to_string())
}

/// Input `key:tag:k:bytes`: emits `Sink/key/put` of items `tag.i` for i in 0..k, each a
/// message of `bytes` bytes, in order: sends, then the last as a call it waits for.
async fn caller_send_big(ctx: Ctx) -> HandlerResult {
    let input = text(&ctx.input());
    let parts: Vec<&str> = input.split(':').collect();
    let [key, tag, k, bytes] = parts[..] else {
        return Err(HandlerError::Terminal(400, "bad input".into()));
    };
    let (k, bytes): (u32, usize) = (k.parse().unwrap_or(1).max(1), bytes.parse().unwrap_or(0));
    for i in 0..k - 1 {
        ctx.send("Sink", "put", key, big_payload(&format!("{tag}.{i}"), bytes))?;
    }
    ctx.call("Sink", "put", key, big_payload(&format!("{tag}.{}", k - 1), bytes)).await
}

/// Appends the item of a large message to `items` (like `Log.append`); a damaged payload
/// appends `tag.damaged`, which the reference model rejects.
async fn sink_put(ctx: Ctx) -> HandlerResult {
    let input = ctx.input();
    let item = big_item(&input).unwrap_or_else(|| {
        let tag = text(&input.slice(..input.len().min(32)));
        format!("{}.damaged", tag.split('.').next().unwrap_or(""))
    });
    let mut items = ctx.get("items").await?.map(|v| text(&v)).unwrap_or_default();
    items.push_str(&item);
    items.push(',');
    ctx.set(b"items", Bytes::from(items))?;
    Ok(Bytes::from(item))
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
        ("Caller", "send_big") => Box::pin(caller_send_big(ctx)),
        ("Sink", "put") => Box::pin(sink_put(ctx)),
        ("Flaky", "flaky") => Box::pin(flaky_flaky(ctx)),
        ("Flaky", "fail") => Box::pin(flaky_fail(ctx)),
        ("Flaky", "panic") => Box::pin(flaky_panic(ctx)),
        ("Big", "set") => Box::pin(big_set(ctx)),
        ("Awk", "wait") => Box::pin(awk_wait(ctx)),
        ("Awk", "resolve") => Box::pin(awk_resolve(ctx)),
        _ => return None,
    })
}
