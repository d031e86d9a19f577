//! The scripted handlers the simulated SDK runs, and the services they belong to.
//!
//! Each handler is a plain async function over the simulated SDK's [`Ctx`]: deterministic in
//! its input and its journal, so replays issue the same commands. Together they exercise what
//! the core must get right: object state under per-key exclusivity (`Counter.add`,
//! `Log.append`), side effects and durable sleeps (`Worker.work`), calls and sends between
//! partitions in emission order (`Caller`), messages of hundreds of KiB that the shuffler must
//! split by bytes (`Caller.send_big` to `Sink.put`, which checks each payload), retryable and
//! terminal failures (`Flaky`), a command over a limit (`Big.set`), awakeables completed
//! through another partition's outbox, twice, of which only the first counts (`Awk`), a
//! workflow's durable promise awaited by its run and completed (twice) by shared handlers of
//! the same key (`Wf`), cancellation (`Cancel.cancel` sends the signal; `Caller.call_hang`
//! waits on `Hang.wait`, which only a cancel or a kill ends), a kill that must release an
//! object's lock (`Holder.hold` waits on `Hang.wait` holding `Holder/key`; `Holder.touch`
//! queues behind it), an invocation whose deterministic id is killed, purged and created again
//! while its sleep and call are still in flight (`Life.run`, `LifeWf.run`), and a panicking SDK
//! (`Flaky.panic`, planned only by the test of panic reporting).

use bytes::Bytes;

use super::sdk::{Ctx, HandlerError, HandlerFuture, HandlerResult};
use crate::protocol::discovery::ServiceType;

/// A service: its name, type, and handlers (name, exclusive; for a workflow: its `run`).
pub type ServiceDef = (&'static str, ServiceType, &'static [(&'static str, bool)]);

/// The simulated deployment's services.
pub const SERVICES: &[ServiceDef] = &[
    ("Counter", ServiceType::VirtualObject, &[("add", true), ("get", false)]),
    ("Log", ServiceType::VirtualObject, &[("append", true)]),
    ("Worker", ServiceType::Service, &[("work", false)]),
    (
        "Caller",
        ServiceType::Service,
        &[("call_add", false), ("send_seq", false), ("send_big", false), ("call_hang", false)],
    ),
    ("Flaky", ServiceType::Service, &[("flaky", false), ("fail", false), ("panic", false)]),
    ("Big", ServiceType::VirtualObject, &[("set", true)]),
    ("Sink", ServiceType::VirtualObject, &[("put", true)]),
    ("Awk", ServiceType::Service, &[("wait", false), ("resolve", false)]),
    ("Wf", ServiceType::Workflow, &[("run", true), ("resolve", false)]),
    ("Hang", ServiceType::Service, &[("wait", false)]),
    ("Cancel", ServiceType::Service, &[("cancel", false)]),
    ("Holder", ServiceType::VirtualObject, &[("hold", true), ("touch", true)]),
    ("Life", ServiceType::Service, &[("run", false), ("echo", false)]),
    ("LifeWf", ServiceType::Workflow, &[("run", true)]),
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

/// Workflow `Wf.run`: waits for the promise `p`; a peek must then give the same value.
async fn wf_run(ctx: Ctx) -> HandlerResult {
    let v = ctx.promise("p").await?;
    match ctx.peek_promise("p").await? {
        Some(peeked) if peeked == v => Ok(v),
        other => Err(HandlerError::Terminal(
            500,
            format!("the promise gave {}, a peek then {other:?}", text(&v)),
        )),
    }
}

/// `Wf.resolve` (shared): completes the promise `p` with its input, then again with something
/// else. The first completion succeeds unless another resolver's came first; the second must
/// fail with 409; a peek then gives the value that won. Output: `won` or `lost to <value>`.
async fn wf_resolve(ctx: Ctx) -> HandlerResult {
    let v = ctx.input();
    let first = ctx.complete_promise("p", v.clone()).await?;
    let second = ctx.complete_promise("p", Bytes::from_static(b"again")).await?;
    let now = ctx.peek_promise("p").await?;
    match (first, second, now) {
        (Ok(()), Err((409, _)), Some(now)) if now == v => Ok(Bytes::from_static(b"won")),
        (Err((409, _)), Err((409, _)), Some(now)) if now != v => {
            Ok(Bytes::from(format!("lost to {}", text(&now))))
        }
        (first, second, now) => Err(HandlerError::Terminal(
            500,
            format!("completing twice gave {first:?} then {second:?}; the promise is {now:?}"),
        )),
    }
}

/// Waits on an awakeable nobody completes: only a cancel or a kill ends it.
async fn hang_wait(ctx: Ctx) -> HandlerResult {
    let (_, index) = ctx.awakeable();
    ctx.await_awakeable(index).await
}

/// Calls `Hang.wait`: a cancel must reach the callee too.
async fn caller_call_hang(ctx: Ctx) -> HandlerResult {
    ctx.call("Hang", "wait", "", Bytes::new()).await
}

/// Input: an invocation id; sends it the cancel signal.
async fn cancel_cancel(ctx: Ctx) -> HandlerResult {
    ctx.send_signal(&text(&ctx.input()), crate::fsm::SIGNAL_CANCEL, "cancel")?;
    Ok(Bytes::new())
}

/// Holds `Holder/key` while it waits on `Hang.wait`, until killed; what follows the call must
/// never run.
async fn holder_hold(ctx: Ctx) -> HandlerResult {
    ctx.call("Hang", "wait", "", Bytes::new()).await?;
    ctx.set(b"after", Bytes::from_static(b"1"))?;
    Ok(Bytes::new())
}

/// Counts itself in `touched`: it runs once the holder of the key is gone.
async fn holder_touch(ctx: Ctx) -> HandlerResult {
    let n = ctx.get("touched").await?.map(|v| int(&v)).unwrap_or(0);
    ctx.set(b"touched", Bytes::from((n + 1).to_string()))?;
    Ok(Bytes::new())
}

/// Input `tag:ms`: sleeps `ms`, calls `Life.echo(tag)`; output `tag|<echo>`. Each life of a
/// re-created id has its own tag, so anything of an earlier life shows.
async fn life_run(ctx: Ctx) -> HandlerResult {
    let input = text(&ctx.input());
    let (tag, ms) = input.split_once(':').ok_or(HandlerError::Terminal(400, "bad input".into()))?;
    ctx.sleep(ms.parse().unwrap_or(0)).await?;
    let echo = ctx.call("Life", "echo", "", Bytes::from(tag.to_string())).await?;
    Ok(Bytes::from(format!("{tag}|{}", text(&echo))))
}

/// Sleeps a while, then returns its input.
async fn life_echo(ctx: Ctx) -> HandlerResult {
    ctx.sleep(LIFE_ECHO_MS).await?;
    Ok(ctx.input())
}

/// How long `Life.echo` sleeps: the caller's call stays pending that long.
pub const LIFE_ECHO_MS: u64 = 300;

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
        ("Wf", "run") => Box::pin(wf_run(ctx)),
        ("Wf", "resolve") => Box::pin(wf_resolve(ctx)),
        ("Hang", "wait") => Box::pin(hang_wait(ctx)),
        ("Caller", "call_hang") => Box::pin(caller_call_hang(ctx)),
        ("Cancel", "cancel") => Box::pin(cancel_cancel(ctx)),
        ("Holder", "hold") => Box::pin(holder_hold(ctx)),
        ("Holder", "touch") => Box::pin(holder_touch(ctx)),
        ("Life" | "LifeWf", "run") => Box::pin(life_run(ctx)),
        ("Life", "echo") => Box::pin(life_echo(ctx)),
        _ => return None,
    })
}
