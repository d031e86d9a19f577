//! Defects that can be put back on purpose, one at a time, so the deterministic simulator
//! can show that it finds them (the way FoundationDB's BUGGIFY or mutation testing do).
//!
//! Each defect is a bug this code once had or could easily have: a fire-and-forget delivery,
//! a partition killed by a bad record, a processor that gives up on a full disk, replay that
//! depends on configuration, timers fired twice, a re-created id taking what its earlier life
//! left in flight. The code checks [`active`] at exactly the place the bug would be.
//!
//! Invariant: defects are per thread and off unless a test turns one on; the simulator runs
//! on one thread, so turning one on there changes nothing anywhere else.

use std::cell::Cell;

/// A defect that can be put back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// (1) The shuffler drops a delivery whose append failed instead of retrying it.
    ShufflerDropsFailedDelivery,
    /// (1) The shuffler truncates the outbox before the delivery is durable.
    ShufflerTruncatesFirst,
    /// (1) The shuffler sends a batch's entries to a target in reverse order.
    ShufflerReorders,
    /// (2) A record that breaks a limit fails the partition instead of its invocation.
    LimitFailsPartition,
    /// (3) A store commit that hits a full disk stops the partition for good.
    StoreFullStopsPartition,
    /// (4) `apply` decides retries with the configured policy instead of the record's decision.
    RetryFromConfig,
    /// (4) Timers armed by replayed records are fired again.
    TimersFromReplay,
    /// (4) A timer whose firing could not be appended is forgotten until restart.
    TimerFiringDropped,
    /// (2) Records that each fit the log go in one append even when together they do not:
    /// an SDK's messages read at once fail their invocation, a shuffler batch its partition.
    AppendsNotSplit,
    /// (programming model) A signal index already in the journal is taken again: an
    /// awakeable's later completions are delivered too, not only the first.
    SignalTakenTwice,
    /// (programming model) A re-created invocation id takes what its earlier life left in
    /// flight: that life's attempt effects, timers and answers to its calls.
    LifeIgnored,
    /// (programming model) A batch's retained members replace the block an earlier batch
    /// wrote instead of being appended to it.
    RetainedBlockOverwritten,
    /// (admin) A state edit replaces the state whatever version it was made against.
    StateEditIgnoresVersion,
    /// (UI) A purged invocation stays in the creation-time index the UI lists from.
    CreatedIndexLeftBehind,
}

impl Defect {
    pub const ALL: [Defect; 14] = [
        Defect::ShufflerDropsFailedDelivery,
        Defect::ShufflerTruncatesFirst,
        Defect::ShufflerReorders,
        Defect::LimitFailsPartition,
        Defect::StoreFullStopsPartition,
        Defect::RetryFromConfig,
        Defect::TimersFromReplay,
        Defect::TimerFiringDropped,
        Defect::AppendsNotSplit,
        Defect::SignalTakenTwice,
        Defect::LifeIgnored,
        Defect::RetainedBlockOverwritten,
        Defect::StateEditIgnoresVersion,
        Defect::CreatedIndexLeftBehind,
    ];
}

thread_local! {
    static ACTIVE: Cell<Option<Defect>> = const { Cell::new(None) };
}

/// Whether `d` is put back on this thread.
#[inline]
pub fn active(d: Defect) -> bool {
    ACTIVE.with(|a| a.get() == Some(d))
}

/// Puts `d` back on this thread (or none).
pub fn set(d: Option<Defect>) {
    ACTIVE.with(|a| a.set(d));
}
