//! Shared by the segment-format tests and by the cargo-fuzz targets in `/fuzz` (which include
//! this file with `#[path]`, so the fuzz oracles are compiled and exercised by `cargo test`).
//!
//! Two things live here:
//! - **Oracles** (`check_*`): decode arbitrary bytes; never panic; when decoding succeeds,
//!   check that encoding the decoded value reproduces the input bytes (or, where the format
//!   allows more than one encoding, an equivalent frame; or, for a version 1 checkpoint, which
//!   the crate reads but no longer writes, the bytes of [`encode_checkpoint_v1`]).
//! - **Crafting helpers** for tests that need bytes no encoder produces: re-sealing a CRC after
//!   editing a field, so that a test reaches the checks that run after the checksum, and
//!   writing a version 1 checkpoint.
#![allow(dead_code)]

use segment_format::{
    decode_frame, encode_batch_frame, encode_record_frame, Compression, ControlRecord, DecodeError,
    Frame, FrameKind, LogCheckpoint, Position, Record, RecordRef, SegmentHeader, SegmentId,
    FRAME_ALIGN_BYTES, FRAME_HEADER_BYTES, SEGMENT_HEADER_USED_BYTES,
};

/// Frame header field offsets (FORMAT.md, "Frame header"). Pinned here, independently of the
/// crate's private constants, so that a layout change shows up as a test failure.
pub mod field {
    pub const CRC: usize = 0;
    pub const MAGIC: usize = 4;
    pub const KIND: usize = 6;
    pub const FLAGS: usize = 7;
    pub const BODY_LEN: usize = 8;
    pub const LOG_ID: usize = 12;
    pub const LSN: usize = 16;
    pub const TIMESTAMP_MS: usize = 24;
    pub const SEGMENT_ID: usize = 32;
    pub const OFFSET: usize = 40;
    pub const SEQ: usize = 48;
}

/// Segment header field offsets (FORMAT.md, "Segment header").
pub mod header_field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const USED_BYTES: usize = 10;
    pub const FLAGS: usize = 12;
    pub const SEGMENT_ID: usize = 16;
    pub const WAL_ID: usize = 24;
    pub const FIRST_SEQ: usize = 32;
    pub const CREATED_MS: usize = 40;
    pub const SEGMENT_BYTES: usize = 48;
    pub const PREV_END_OFFSET: usize = 56;
    pub const CRC: usize = 60;
}

/// `FLAG_ZSTD` (FORMAT.md): bit 0 of a batch frame's flags.
pub const FLAG_ZSTD: u8 = 1;

/// Control record tags (FORMAT.md, "The control log and control records").
pub mod tag {
    pub const CHECKPOINT_V1: u8 = 1;
    pub const TRIM: u8 = 2;
    pub const SEAL: u8 = 3;
    pub const FENCE: u8 = 4;
    pub const CHECKPOINT: u8 = 5;
}

/// A version 1 checkpoint (tag 1, 21-byte entries without an epoch), as a version 1 writer
/// wrote it: the crate still reads these but no longer writes them. Epochs are ignored.
pub fn encode_checkpoint_v1(logs: &[LogCheckpoint]) -> Vec<u8> {
    let mut out = vec![tag::CHECKPOINT_V1];
    out.extend_from_slice(&(logs.len() as u32).to_le_bytes());
    for l in logs {
        out.extend_from_slice(&l.log_id.0.to_le_bytes());
        out.push(u8::from(l.sealed));
        out.extend_from_slice(&l.lsn_trim.0.to_le_bytes());
        out.extend_from_slice(&l.lsn_last.0.to_le_bytes());
    }
    out
}

pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Recomputes the CRC of the frame at the start of `frame` from its (possibly edited) header
/// and the body length that header announces. Returns false, changing nothing, if the buffer
/// is too short to hold that body.
pub fn reseal_frame(frame: &mut [u8]) -> bool {
    if frame.len() < FRAME_HEADER_BYTES {
        return false;
    }
    let body_len = get_u32(frame, field::BODY_LEN) as usize;
    let Some(end) = FRAME_HEADER_BYTES.checked_add(body_len) else {
        return false;
    };
    if frame.len() < end {
        return false;
    }
    let crc = crc32fast::hash(&frame[4..end]);
    put_u32(frame, field::CRC, crc);
    true
}

/// Re-seals every inner record frame of an uncompressed batch body (as far as the inner
/// frames parse and carry the frame magic), then the batch itself.
pub fn reseal_batch(frame: &mut [u8]) -> bool {
    if frame.len() < FRAME_HEADER_BYTES {
        return false;
    }
    let body_len = get_u32(frame, field::BODY_LEN) as usize;
    let end = FRAME_HEADER_BYTES.saturating_add(body_len).min(frame.len());
    let mut at = FRAME_HEADER_BYTES;
    while at + FRAME_HEADER_BYTES <= end {
        let inner_body = get_u32(frame, at + field::BODY_LEN) as usize;
        let inner_len = frame_len_for(inner_body);
        let magic = &frame[at + field::MAGIC..at + field::MAGIC + 2];
        if magic != b"RF" || at.saturating_add(inner_len) > end {
            break;
        }
        if !reseal_frame(&mut frame[at..end]) {
            break;
        }
        at += inner_len;
    }
    reseal_frame(frame)
}

/// Recomputes the CRC of a segment header in place.
pub fn reseal_header(b: &mut [u8]) {
    let crc = crc32fast::hash(&b[..header_field::CRC]);
    put_u32(b, header_field::CRC, crc);
}

/// Bytes a frame with a `body_len`-byte body occupies (saturating, for hostile lengths).
pub fn frame_len_for(body_len: usize) -> usize {
    FRAME_HEADER_BYTES.saturating_add(body_len).saturating_add(FRAME_ALIGN_BYTES - 1)
        & !(FRAME_ALIGN_BYTES - 1)
}

/// The position a frame's own header claims (segment id, offset), or a default when the
/// buffer is too short to hold one.
pub fn own_position(frame: &[u8]) -> Position {
    if frame.len() < FRAME_HEADER_BYTES {
        return Position { segment_id: SegmentId(1), offset: 4096 };
    }
    Position {
        segment_id: SegmentId(get_u64(frame, field::SEGMENT_ID)),
        offset: get_u64(frame, field::OFFSET),
    }
}

/// Splits a fuzz input into a frame buffer and the position it is "read from". The first
/// byte chooses: even, the frame's own claimed position (so the fuzzer gets past the location
/// check and into the body); odd, a position taken from the next 16 bytes.
pub fn split_frame_input(data: &[u8]) -> (&[u8], Position) {
    match data.split_first() {
        None => (data, own_position(data)),
        Some((&mode, rest)) if mode & 1 == 0 => (rest, own_position(rest)),
        Some((_, rest)) if rest.len() >= 16 => (
            &rest[16..],
            Position { segment_id: SegmentId(get_u64(rest, 0)), offset: get_u64(rest, 8) },
        ),
        Some((_, rest)) => (rest, own_position(rest)),
    }
}

/// Decodes `buf` as a frame read from `at`. Never panics; on success checks the frame's
/// invariants and that re-encoding reproduces it. Returns the decode result.
pub fn check_frame(buf: &[u8], at: Position) -> Result<Frame, DecodeError> {
    let result = decode_frame(buf, at);
    let frame = match &result {
        Ok(frame) => frame,
        Err(e) => {
            check_error(e, buf.len());
            return result;
        }
    };
    let len = usize::try_from(frame.len_bytes).expect("frame length fits usize");
    assert!(len >= FRAME_HEADER_BYTES && len <= buf.len() && len % FRAME_ALIGN_BYTES == 0);
    assert!(frame.seq.0 >= 1);
    assert!(at.offset % FRAME_ALIGN_BYTES as u64 == 0, "decoded at an unaligned offset");
    assert!(!frame.records.is_empty());
    let stored = &buf[..len];
    let refs: Vec<RecordRef<'_>> = frame.records.iter().map(Record::as_ref).collect();
    let mut again = Vec::new();
    match frame.kind {
        FrameKind::Record => {
            assert_eq!(refs.len(), 1);
            encode_record_frame(&mut again, at, frame.seq, refs[0]);
            assert_eq!(again, stored, "a record frame has exactly one encoding");
        }
        FrameKind::Batch => {
            encode_batch_frame(&mut again, at, frame.seq, &refs, Compression::None);
            if stored[field::FLAGS] & FLAG_ZSTD == 0 {
                // One encoding, except for the batch timestamp, which readers do not check
                // (FORMAT.md), and hence the CRC.
                assert_eq!(again[4..field::TIMESTAMP_MS], stored[4..field::TIMESTAMP_MS]);
                assert_eq!(again[field::SEGMENT_ID..], stored[field::SEGMENT_ID..]);
            }
            let redecoded = decode_frame(&again, at).expect("re-encoded batch decodes");
            assert_eq!(redecoded.records, frame.records);
            assert_eq!(redecoded.seq, frame.seq);
        }
    }
    result
}

/// Checks the fields of an error are consistent with the input.
fn check_error(e: &DecodeError, available: usize) {
    match *e {
        DecodeError::Torn { needed_bytes, available_bytes } => {
            assert_eq!(available_bytes, available as u64);
            assert!(needed_bytes > available_bytes);
        }
        DecodeError::Stale { found, expected } => assert!(found < expected),
        DecodeError::Misdirected { .. }
        | DecodeError::Zeroed
        | DecodeError::Corrupt { .. }
        | DecodeError::Unsupported { .. } => {}
    }
    // Display never panics either.
    let _ = e.to_string();
}

/// Decodes `bytes` as a segment header. Never panics; on success the header re-encodes to
/// exactly the input's first 64 bytes.
pub fn check_header(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
    let result = SegmentHeader::decode(bytes);
    match &result {
        Ok(h) => {
            let mut again = [0u8; SEGMENT_HEADER_USED_BYTES];
            h.encode(&mut again);
            assert_eq!(again[..], bytes[..SEGMENT_HEADER_USED_BYTES]);
        }
        Err(e) => check_error(e, bytes.len()),
    }
    result
}

/// Decodes `bytes` as a control record body. Never panics; on success the record re-encodes
/// to exactly the input, except that a version 1 checkpoint decodes with epoch 0 everywhere,
/// is exactly what a version 1 writer produces, and re-encodes as a checkpoint of the current
/// version with the same value.
pub fn check_control(bytes: &[u8]) -> Result<ControlRecord, DecodeError> {
    let result = ControlRecord::decode(bytes);
    match &result {
        Ok(c @ ControlRecord::Checkpoint(logs)) if bytes[0] == tag::CHECKPOINT_V1 => {
            assert!(logs.iter().all(|l| l.epoch == 0), "a version 1 checkpoint has no epochs");
            assert_eq!(encode_checkpoint_v1(logs), bytes, "a v1 checkpoint has one encoding");
            let again = c.encode();
            assert_eq!(again[0], tag::CHECKPOINT, "checkpoints are written in the current form");
            assert_eq!(ControlRecord::decode(&again).as_ref(), Ok(c));
        }
        Ok(c) => assert_eq!(c.encode(), bytes, "a control record has exactly one encoding"),
        Err(e) => check_error(e, bytes.len()),
    }
    result
}
