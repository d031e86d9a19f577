//! Identifier and sequence-number newtypes shared by every layer that touches the log.
//!
//! There are exactly two kinds of sequence number, both defined here:
//! - [`Lsn`]: the position of a record in one log (one partition's log, named by [`LogId`]).
//! - [`Seq`]: the position of a frame in a node's physical WAL, across all logs.

use std::fmt;

/// Log sequence number: the position of a record within one log.
///
/// The first record of a log has `Lsn(1)`; `Lsn::INVALID` (0) means "before the first
/// record". LSNs of one log are contiguous: the record after `n` is `n + 1`, with no gaps,
/// ever — not across segments, restarts, trims or crashes. Derived names used elsewhere:
/// `lsn_applied` (last LSN a partition processor applied), `lsn_durable` (last LSN whose
/// flush returned), `lsn_trim` (records at or below it may be gone).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const INVALID: Lsn = Lsn(0);
    pub const FIRST: Lsn = Lsn(1);
    pub const MAX: Lsn = Lsn(u64::MAX);

    pub const fn next(self) -> Lsn {
        Lsn(self.0 + 1)
    }
    pub const fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

/// Frame sequence number: the position of a frame (one flush) in a node's physical WAL.
///
/// Frames of one WAL are numbered 1, 2, 3, … contiguously across segments; recovery uses
/// this to prove that no frame and no segment went missing. Inner records of a batch carry
/// their batch's `Seq`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl Seq {
    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

/// Names one log multiplexed into the WAL. Id 0 is reserved for WAL control records.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId(pub u32);

/// Names one use of a segment file. Strictly increasing over the life of a WAL and never
/// reused, also not when a file is recycled (a recycled file gets a new id).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegmentId(pub u64);

macro_rules! display_as_number {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_as_number!(Lsn, Seq, LogId, SegmentId);
