//! The one error type of decoding. Callers branch on the variant: a WAL treats `Zeroed` and
//! `Stale` as the clean end of a segment, `Torn` at the tail as an interrupted write, and
//! everything else before the tail as corruption.

use std::fmt;

use crate::SegmentId;

/// Why bytes did not decode as a valid header or frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// All header bytes are zero: nothing was ever written here (pre-written space or padding).
    Zeroed,
    /// The bytes end before the header or the body it announces: an interrupted write, or a
    /// buffer that was cut short.
    Torn { needed_bytes: u64, available_bytes: u64 },
    /// The bytes are not what a writer of this format produces: bad magic, checksum mismatch,
    /// a length out of range, non-zero reserved or padding bytes, a malformed batch.
    Corrupt { reason: &'static str },
    /// A well-formed frame written for an earlier use of this (recycled) file.
    Stale { found: SegmentId, expected: SegmentId },
    /// A well-formed frame that belongs somewhere else: another segment id (newer than this
    /// one) or another offset.
    Misdirected { found_segment: SegmentId, found_offset: u64, expected_offset: u64 },
    /// A version, kind or flag this code does not understand (written by a newer writer).
    Unsupported { what: &'static str, value: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Zeroed => write!(f, "zeroed (no data written here)"),
            DecodeError::Torn { needed_bytes, available_bytes } => {
                write!(f, "torn: needs {needed_bytes} bytes but only {available_bytes} are present")
            }
            DecodeError::Corrupt { reason } => write!(f, "corrupt: {reason}"),
            DecodeError::Stale { found, expected } => {
                write!(f, "stale frame of segment {found} (expected segment {expected})")
            }
            DecodeError::Misdirected { found_segment, found_offset, expected_offset } => write!(
                f,
                "misdirected frame: written for segment {found_segment} offset {found_offset}, \
                 found at offset {expected_offset}"
            ),
            DecodeError::Unsupported { what, value } => {
                write!(f, "unsupported {what} {value} (written by a newer version?)")
            }
        }
    }
}

impl std::error::Error for DecodeError {}
