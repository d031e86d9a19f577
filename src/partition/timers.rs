//! The in-memory window of a partition's durable timers: the earliest ones, at most
//! `in_memory_max`, loaded from the store's Timers table; the rest stay on disk until the
//! window reaches them.
//!
//! Invariants:
//! - Every stored timer with a key at or below `loaded_through` is in the window or was
//!   handed out by [`Window::take_due`]; with `complete`, every stored timer is.
//! - The window never holds more than `in_memory_max` timers: adding one past the cap evicts
//!   the latest, which the store still has.
//! - Timers are loaded only from the store after replay, never from replayed records, so a
//!   timer whose firing is already in the log is not fired again.

use std::collections::BTreeSet;

use crate::fsm::FsmRead;
use crate::protocol::ids::InvocationId;
use crate::store::StoreError;

/// A timer: (wake-up ms, invocation, completion id). Orders like the store's keys.
pub type Timer = (u64, InvocationId, u32);

/// See the module documentation.
#[derive(Debug)]
pub struct Window {
    set: BTreeSet<Timer>,
    loaded_through: Option<Timer>,
    complete: bool,
    in_memory_max: usize,
}

impl Window {
    pub fn new(in_memory_max: usize) -> Window {
        Window {
            set: BTreeSet::new(),
            loaded_through: None,
            complete: false,
            in_memory_max: in_memory_max.max(2),
        }
    }

    /// Loads the earliest timers of the store, dropping whatever the window held.
    pub fn load<R: FsmRead>(&mut self, r: &R) -> Result<(), StoreError> {
        self.set.clear();
        self.loaded_through = None;
        self.complete = false;
        self.refill(r)
    }

    /// Tops the window up from the store when it ran low.
    pub fn refill<R: FsmRead>(&mut self, r: &R) -> Result<(), StoreError> {
        if self.complete || self.set.len() > self.in_memory_max / 2 {
            return Ok(());
        }
        let want = self.in_memory_max - self.set.len();
        let got = r.timers_after(self.loaded_through, want)?;
        if got.len() < want {
            self.complete = true;
        }
        if let Some(last) = got.last() {
            self.loaded_through = Some(*last);
        }
        self.set.extend(got);
        Ok(())
    }

    /// Whether a refill would read something.
    pub fn wants_refill(&self) -> bool {
        !self.complete && self.set.len() <= self.in_memory_max / 2
    }

    /// A timer was just stored: keep it if it falls inside the window.
    pub fn add(&mut self, t: Timer) {
        let inside = self.complete || self.loaded_through.is_some_and(|l| t <= l);
        if !inside {
            return;
        }
        self.set.insert(t);
        if self.set.len() > self.in_memory_max {
            self.set.pop_last();
            self.complete = false;
            self.loaded_through = self.set.last().copied();
        }
    }

    /// The earliest wake-up time in the window.
    pub fn next_wake_ms(&self) -> Option<u64> {
        self.set.first().map(|t| t.0)
    }

    /// Removes and returns up to `max` timers due at `now_ms`, in firing order.
    pub fn take_due(&mut self, now_ms: u64, max: usize) -> Vec<Timer> {
        let mut due = Vec::new();
        while due.len() < max {
            match self.set.first() {
                Some(t) if t.0 <= now_ms => due.push(self.set.pop_first().expect("first exists")),
                _ => break,
            }
        }
        due
    }

    /// Puts timers back that could not be handed on (their firing will be retried).
    pub fn put_back(&mut self, timers: Vec<Timer>) {
        self.set.extend(timers);
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}
