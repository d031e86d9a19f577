//! Panics during a simulation run become violations of that run.
//!
//! Tokio keeps a task's panic in its `JoinHandle`, and the simulator drops most handles with
//! the runtime when a life crashes; a panicking processor, invoker, attempt, shuffler or SDK
//! task would vanish and show at most as a stuck invocation, and a panic of the simulator's
//! own code would abort the test without its seed. So a process-wide panic hook (installed
//! once, calling the previous hook afterwards) records every panic of a thread on which a run
//! is under way: the name of the task or step being run ([`Named`], [`within`]) and where it
//! panicked.
//!
//! Invariants: only a thread between [`start`] and [`stop`] records, so other tests and
//! threads see the previous hook alone; a run is single-threaded, so every panic of its tasks
//! happens on its thread. Tasks the core spawns itself (attempts, shufflers, timer firings)
//! carry no name; where they panicked tells which.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// Panics recorded since [`start`]; `None` when no run is under way on this thread.
    static RECORDED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    /// Names of the tasks or steps being run, innermost last.
    static NAMES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

const UNNAMED: &str = "a task the core spawned (an attempt, a shuffler, a timer firing)";

fn install() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            record(info);
            previous(info);
        }));
    });
}

fn record(info: &std::panic::PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let at = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
    let name = NAMES
        .try_with(|n| n.try_borrow().ok().and_then(|n| n.last().cloned()))
        .ok()
        .flatten()
        .unwrap_or_else(|| UNNAMED.into());
    let _ = RECORDED.try_with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            if let Some(r) = r.as_mut() {
                r.push(format!("{name} panicked{at}: {message}"));
            }
        }
    });
}

/// Starts recording this thread's panics.
pub fn start() {
    install();
    RECORDED.with(|r| *r.borrow_mut() = Some(Vec::new()));
    NAMES.with(|n| n.borrow_mut().clear());
}

/// Takes what was recorded so far; recording goes on.
pub fn take() -> Vec<String> {
    RECORDED.with(|r| r.borrow_mut().as_mut().map(std::mem::take).unwrap_or_default())
}

/// Stops recording; returns what was not taken yet.
pub fn stop() -> Vec<String> {
    NAMES.with(|n| n.borrow_mut().clear());
    RECORDED.with(|r| r.borrow_mut().take().unwrap_or_default())
}

/// Pops a name when its step ends, also when it ends by unwinding.
struct Pop;

impl Drop for Pop {
    fn drop(&mut self) {
        let _ = NAMES.try_with(|n| n.borrow_mut().pop());
    }
}

fn push(name: &str) -> Pop {
    NAMES.with(|n| n.borrow_mut().push(name.to_string()));
    Pop
}

/// Runs `f` under `name`: a panic in it is recorded with that name.
pub fn within<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let _pop = push(name);
    f()
}

/// A future whose panics are recorded with its name.
pub struct Named<F> {
    name: String,
    fut: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Named<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Named").field("name", &self.name).finish()
    }
}

impl<F: Future> Named<F> {
    pub fn new(name: impl Into<String>, fut: F) -> Named<F> {
        Named { name: name.into(), fut: Box::pin(fut) }
    }
}

impl<F: Future> Future for Named<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _pop = push(&self.name);
        self.fut.as_mut().poll(cx)
    }
}

/// Spawns `fut` on the current runtime under `name`.
pub fn spawn<F>(name: impl Into<String>, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Named::new(name, fut))
}
