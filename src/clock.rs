//! The clock seam: wall-clock milliseconds since the Unix epoch for everything that stamps or
//! schedules by time (WAL record timestamps, timers, retry back-off, ingress delays).
//!
//! Invariant: nothing in `fsm/` reads a clock (time reaches it in record headers); every
//! other component takes time from a [`Clock`], so the simulator can run the real code on
//! virtual time.

use std::fmt;
use std::sync::Arc;

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::timefmt::now_ms()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Virtual time: `base_ms` plus the time elapsed on tokio's clock since creation. Under a
/// runtime with paused time (the simulator) it advances only when every task is idle, so a
/// run is a pure function of its seed.
#[derive(Debug)]
pub struct TokioClock {
    base_ms: u64,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Must be created inside a tokio runtime.
    pub fn new(base_ms: u64) -> TokioClock {
        TokioClock { base_ms, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}
