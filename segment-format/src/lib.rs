//! Ratchet's on-disk log format, and nothing else.
//!
//! This crate owns the byte layout of WAL segment files: the segment header, the record frame,
//! batch frames (optionally zstd-compressed), the WAL's own control records, every size limit,
//! and the typed errors a decoder returns. `FORMAT.md` beside this crate is the normative
//! description; this code and that page change together.
//!
//! Invariants:
//! - Pure: no I/O, no async, no clock, no randomness. Callers hand in bytes and positions.
//! - Decoding never panics, whatever the input; every failure is a [`DecodeError`].
//! - A frame is valid only at the position it was written for: its header names its segment
//!   id and byte offset, and the CRC covers both, so stale frames (from an earlier use of a
//!   recycled file) and misdirected writes are told apart from valid ones.
//! - Retired tags and versions are never reused (see `FORMAT.md`, "Version log").

mod control;
mod error;
mod frame;
mod header;
mod ids;

pub use control::{checkpoint_body_bytes, ControlRecord, LogCheckpoint, CHECKPOINT_ENTRY_BYTES};
pub use error::DecodeError;
pub use frame::{
    decode_frame, encode_batch_frame, encode_record_frame, frame_bytes_for, Compression, Frame,
    FrameKind, Position, Record, RecordRef,
};
pub use header::SegmentHeader;
pub use ids::{LogId, Lsn, SegmentId, Seq};

/// The format version this code writes. Readers accept every version in
/// [`FORMAT_VERSIONS_READABLE`]. Version 2 is version 1 plus the control records
/// [`ControlRecord::Fence`] and the checkpoint with epochs.
pub const FORMAT_VERSION: u16 = 2;
/// Versions this code can read. A version is readable here before any writer uses it.
pub const FORMAT_VERSIONS_READABLE: &[u16] = &[1, 2];

/// Device block: unit of alignment for segment headers and for writers that pad flushes
/// (O_DIRECT). Bytes.
pub const BLOCK_BYTES: usize = 4096;
/// Sector: the unit a disk writes atomically. Torn writes tear at this granularity. Bytes.
pub const SECTOR_BYTES: usize = 512;
/// Space reserved at the start of every segment for its header. Bytes.
pub const SEGMENT_HEADER_BYTES: usize = BLOCK_BYTES;
/// Bytes of the segment header that carry data (the rest of the block is zero).
pub const SEGMENT_HEADER_USED_BYTES: usize = 64;
/// Fixed size of every frame header (record and batch). Bytes.
pub const FRAME_HEADER_BYTES: usize = 56;
/// Frames start at multiples of this. Bytes.
pub const FRAME_ALIGN_BYTES: usize = 8;
/// Largest record body. Bytes.
pub const RECORD_BODY_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Largest stored body of a batch frame (after compression). Bytes.
pub const BATCH_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest number of records in one batch frame.
pub const BATCH_RECORDS_MAX: usize = 1 << 20;
/// Smallest segment file. Bytes.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest segment file (offsets in frames must fit; kept well below `u32::MAX`). Bytes.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;
/// Writers keep at most this many flushes (frames) in flight at once, where a flush is in
/// flight from its submission until it *and every flush before it* have completed. Recovery
/// relies on it: a hole in a segment followed by valid frames is a torn tail only if every
/// frame after the hole is within this many sequence numbers of the last frame before it.
pub const FLUSHES_INFLIGHT_MAX: u64 = 4;
/// Log id 0 is reserved for the WAL's own control records ([`ControlRecord`]).
pub const LOG_ID_CONTROL: LogId = LogId(0);

const _: () = assert!(FRAME_HEADER_BYTES % FRAME_ALIGN_BYTES == 0);
const _: () = assert!(SEGMENT_HEADER_BYTES % BLOCK_BYTES == 0);
const _: () = assert!(BLOCK_BYTES % SECTOR_BYTES == 0);
const _: () = assert!(SEGMENT_HEADER_USED_BYTES <= SEGMENT_HEADER_BYTES);
const _: () = assert!(SEGMENT_BYTES_MAX < u32::MAX as u64);
const _: () = assert!(SEGMENT_BYTES_MIN as usize > SEGMENT_HEADER_BYTES + FRAME_HEADER_BYTES);
const _: () = assert!(RECORD_BODY_BYTES_MAX <= BATCH_BODY_BYTES_MAX);

/// Rounds `n` up to the next multiple of `align` (a power of two).
pub const fn align_up(n: u64, align: u64) -> u64 {
    (n + align - 1) & !(align - 1)
}

/// Reads a little-endian integer at `at`; the caller has checked the bounds.
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
