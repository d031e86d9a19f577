//! Record frames and batch frames: encoding, and decoding that never panics.
//!
//! A frame is a 56-byte header, a stored body, and zero padding up to the next multiple of
//! [`FRAME_ALIGN_BYTES`]. A *record frame* carries one record. A *batch frame* carries record
//! frames back to back in its body, optionally zstd-compressed; its inner records name the
//! batch's own segment, offset and seq, so the location check covers them too. A writer turns
//! each flush into exactly one frame, which makes a flush atomic on disk: its CRC either
//! holds or not.

use crate::{
    align_up, le_u16, le_u32, le_u64, DecodeError, LogId, Lsn, SegmentId, Seq,
    BATCH_BODY_BYTES_MAX, BATCH_RECORDS_MAX, FRAME_ALIGN_BYTES, FRAME_HEADER_BYTES,
    RECORD_BODY_BYTES_MAX,
};

/// Marks the start of a frame header ("RF" little-endian). Never changes.
pub const FRAME_MAGIC: u16 = 0x4652;
/// Frame flag: the batch body is zstd-compressed.
pub const FLAG_ZSTD: u8 = 0b0000_0001;

/// What a frame holds. Tag values are stable; a retired tag is never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    // 0 is never a valid tag: zeroed space must not decode.
    Record = 1,
    Batch = 2,
}

/// How a batch body is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    /// zstd at the given level.
    Zstd(i32),
}

/// Where a frame is written, or expected: the segment id and the byte offset in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub segment_id: SegmentId,
    pub offset: u64,
}

/// A record to encode, borrowing its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub log_id: LogId,
    pub lsn: Lsn,
    /// Milliseconds since the Unix epoch, stamped by the writer.
    pub timestamp_ms: u64,
    pub body: &'a [u8],
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub log_id: LogId,
    pub lsn: Lsn,
    pub timestamp_ms: u64,
    pub body: Vec<u8>,
}

impl Record {
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            log_id: self.log_id,
            lsn: self.lsn,
            timestamp_ms: self.timestamp_ms,
            body: &self.body,
        }
    }
}

/// A decoded, validated frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub seq: Seq,
    /// Bytes the frame occupies on disk, header and padding included: the next frame starts
    /// this far after this one.
    pub len_bytes: u64,
    pub records: Vec<Record>,
}

/// Bytes a record frame with a body of `body_len` bytes occupies on disk.
pub const fn frame_bytes_for(body_len: usize) -> u64 {
    align_up((FRAME_HEADER_BYTES + body_len) as u64, FRAME_ALIGN_BYTES as u64)
}

struct RawHeader {
    kind: u8,
    flags: u8,
    body_len: usize,
    log_id: LogId,
    lsn: u64,
    timestamp_ms: u64,
    segment_id: SegmentId,
    offset: u64,
    seq: Seq,
}

fn write_header(out: &mut [u8], h: &RawHeader) {
    out[4..6].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    out[6] = h.kind;
    out[7] = h.flags;
    out[8..12].copy_from_slice(&(h.body_len as u32).to_le_bytes());
    out[12..16].copy_from_slice(&h.log_id.0.to_le_bytes());
    out[16..24].copy_from_slice(&h.lsn.to_le_bytes());
    out[24..32].copy_from_slice(&h.timestamp_ms.to_le_bytes());
    out[32..40].copy_from_slice(&h.segment_id.0.to_le_bytes());
    out[40..48].copy_from_slice(&h.offset.to_le_bytes());
    out[48..56].copy_from_slice(&h.seq.0.to_le_bytes());
}

/// Appends header + body + padding to `out` and seals the CRC.
fn push_frame(out: &mut Vec<u8>, h: &RawHeader, body: &[u8]) -> u64 {
    debug_assert_eq!(h.body_len, body.len());
    let start = out.len();
    let len = frame_bytes_for(body.len()) as usize;
    out.resize(start + FRAME_HEADER_BYTES, 0);
    write_header(&mut out[start..start + FRAME_HEADER_BYTES], h);
    out.extend_from_slice(body);
    out.resize(start + len, 0);
    let crc = crc_of(&out[start..start + FRAME_HEADER_BYTES], body);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    len as u64
}

fn crc_of(header: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[4..FRAME_HEADER_BYTES]);
    h.update(body);
    h.finalize()
}

fn record_header(at: Position, seq: Seq, r: &RecordRef<'_>) -> RawHeader {
    assert!(r.body.len() <= RECORD_BODY_BYTES_MAX, "record body over the limit");
    assert!(r.lsn != Lsn::INVALID, "records have an LSN of at least 1");
    RawHeader {
        kind: FrameKind::Record as u8,
        flags: 0,
        body_len: r.body.len(),
        log_id: r.log_id,
        lsn: r.lsn.0,
        timestamp_ms: r.timestamp_ms,
        segment_id: at.segment_id,
        offset: at.offset,
        seq,
    }
}

fn check_position(at: Position, seq: Seq) {
    assert!(at.offset % FRAME_ALIGN_BYTES as u64 == 0, "frames are 8-byte aligned");
    assert!(seq.0 >= 1, "frame seqs start at 1");
}

/// Appends one record frame for position `at` to `out`. Returns the bytes appended.
///
/// Panics if the record violates a limit (a writer bug: callers check limits first).
pub fn encode_record_frame(
    out: &mut Vec<u8>,
    at: Position,
    seq: Seq,
    record: RecordRef<'_>,
) -> u64 {
    check_position(at, seq);
    push_frame(out, &record_header(at, seq, &record), record.body)
}

/// Appends one batch frame holding `records` for position `at` to `out`. Returns the bytes
/// appended. With `Compression::Zstd` the body is compressed if that makes it smaller.
///
/// Panics on an empty batch or a violated limit (writer bugs).
pub fn encode_batch_frame(
    out: &mut Vec<u8>,
    at: Position,
    seq: Seq,
    records: &[RecordRef<'_>],
    compression: Compression,
) -> u64 {
    check_position(at, seq);
    assert!(!records.is_empty() && records.len() <= BATCH_RECORDS_MAX);
    let mut inner =
        Vec::with_capacity(records.iter().map(|r| frame_bytes_for(r.body.len()) as usize).sum());
    for r in records {
        push_frame(&mut inner, &record_header(at, seq, r), r.body);
    }
    assert!(inner.len() <= BATCH_BODY_BYTES_MAX, "batch over the limit");
    let (flags, body) = match compression {
        Compression::None => (0, inner),
        Compression::Zstd(level) => match compress(&inner, level) {
            Some(c) if c.len() < inner.len() => (FLAG_ZSTD, c),
            _ => (0, inner),
        },
    };
    let header = RawHeader {
        kind: FrameKind::Batch as u8,
        flags,
        body_len: body.len(),
        log_id: LogId(0),
        lsn: records.len() as u64,
        timestamp_ms: records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0),
        segment_id: at.segment_id,
        offset: at.offset,
        seq,
    };
    push_frame(out, &header, &body)
}

#[cfg(feature = "zstd")]
fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    zstd::bulk::compress(data, level).ok()
}
#[cfg(not(feature = "zstd"))]
fn compress(_data: &[u8], _level: i32) -> Option<Vec<u8>> {
    None
}

#[cfg(feature = "zstd")]
fn decompress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    // The capacity bounds the output: a hostile frame cannot make us allocate more.
    zstd::bulk::decompress(data, BATCH_BODY_BYTES_MAX)
        .map_err(|_| DecodeError::Corrupt { reason: "batch body does not decompress" })
}
#[cfg(not(feature = "zstd"))]
fn decompress(_data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    Err(DecodeError::Unsupported {
        what: "frame flags (zstd support not built)",
        value: FLAG_ZSTD.into(),
    })
}

fn parse_header(buf: &[u8]) -> Result<RawHeader, DecodeError> {
    if buf.len() < FRAME_HEADER_BYTES {
        if buf.iter().all(|&b| b == 0) {
            return Err(DecodeError::Zeroed);
        }
        return Err(DecodeError::Torn {
            needed_bytes: FRAME_HEADER_BYTES as u64,
            available_bytes: buf.len() as u64,
        });
    }
    let h = &buf[..FRAME_HEADER_BYTES];
    if h.iter().all(|&b| b == 0) {
        return Err(DecodeError::Zeroed);
    }
    if le_u16(h, 4) != FRAME_MAGIC {
        return Err(DecodeError::Corrupt { reason: "frame magic" });
    }
    Ok(RawHeader {
        kind: h[6],
        flags: h[7],
        body_len: le_u32(h, 8) as usize,
        log_id: LogId(le_u32(h, 12)),
        lsn: le_u64(h, 16),
        timestamp_ms: le_u64(h, 24),
        segment_id: SegmentId(le_u64(h, 32)),
        offset: le_u64(h, 40),
        seq: Seq(le_u64(h, 48)),
    })
}

/// Checks one frame's envelope (length, CRC, kind, flags, padding) and returns its header
/// and stored body. Location is not checked here.
fn parse_frame(buf: &[u8]) -> Result<(RawHeader, &[u8], u64), DecodeError> {
    let h = parse_header(buf)?;
    if h.body_len > BATCH_BODY_BYTES_MAX {
        return Err(DecodeError::Corrupt { reason: "frame length over the limit" });
    }
    let len = frame_bytes_for(h.body_len);
    if (buf.len() as u64) < len {
        return Err(DecodeError::Torn { needed_bytes: len, available_bytes: buf.len() as u64 });
    }
    let body = &buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + h.body_len];
    if crc_of(buf, body) != le_u32(buf, 0) {
        return Err(DecodeError::Corrupt { reason: "frame checksum" });
    }
    let kind = match h.kind {
        1 => FrameKind::Record,
        2 => FrameKind::Batch,
        other => return Err(DecodeError::Unsupported { what: "frame kind", value: other.into() }),
    };
    let known_flags = if kind == FrameKind::Batch { FLAG_ZSTD } else { 0 };
    if h.flags & !known_flags != 0 {
        return Err(DecodeError::Unsupported { what: "frame flags", value: h.flags.into() });
    }
    if buf[FRAME_HEADER_BYTES + h.body_len..len as usize].iter().any(|&b| b != 0) {
        return Err(DecodeError::Corrupt { reason: "frame padding is not zero" });
    }
    Ok((h, body, len))
}

fn record_of(h: &RawHeader, body: &[u8]) -> Result<Record, DecodeError> {
    if h.body_len > RECORD_BODY_BYTES_MAX {
        return Err(DecodeError::Corrupt { reason: "record length over the limit" });
    }
    if h.lsn == 0 {
        return Err(DecodeError::Corrupt { reason: "record LSN is zero" });
    }
    Ok(Record {
        log_id: h.log_id,
        lsn: Lsn(h.lsn),
        timestamp_ms: h.timestamp_ms,
        body: body.to_vec(),
    })
}

/// Decodes the frame at the start of `buf`, which was read from position `at`.
///
/// `buf` may extend past the frame (the caller does not know its length in advance); the
/// returned [`Frame::len_bytes`] says where the next frame starts. Never panics.
pub fn decode_frame(buf: &[u8], at: Position) -> Result<Frame, DecodeError> {
    let (h, body, len) = parse_frame(buf)?;
    if h.segment_id != at.segment_id {
        if h.segment_id < at.segment_id {
            return Err(DecodeError::Stale { found: h.segment_id, expected: at.segment_id });
        }
        return Err(DecodeError::Misdirected {
            found_segment: h.segment_id,
            found_offset: h.offset,
            expected_offset: at.offset,
        });
    }
    if h.offset != at.offset {
        return Err(DecodeError::Misdirected {
            found_segment: h.segment_id,
            found_offset: h.offset,
            expected_offset: at.offset,
        });
    }
    if h.offset % FRAME_ALIGN_BYTES as u64 != 0 {
        return Err(DecodeError::Corrupt { reason: "frame offset is not 8-byte aligned" });
    }
    if h.seq.0 == 0 {
        return Err(DecodeError::Corrupt { reason: "frame seq is zero" });
    }
    let records = match h.kind {
        1 => vec![record_of(&h, body)?],
        _ => decode_batch_body(&h, body)?,
    };
    let kind = if h.kind == 1 { FrameKind::Record } else { FrameKind::Batch };
    Ok(Frame { kind, seq: h.seq, len_bytes: len, records })
}

fn decode_batch_body(batch: &RawHeader, stored: &[u8]) -> Result<Vec<Record>, DecodeError> {
    if batch.log_id.0 != 0 {
        return Err(DecodeError::Corrupt { reason: "batch frame names a log" });
    }
    let count = batch.lsn;
    if count == 0 || count > BATCH_RECORDS_MAX as u64 {
        return Err(DecodeError::Corrupt { reason: "batch record count out of range" });
    }
    let decompressed;
    let mut rest: &[u8] = if batch.flags & FLAG_ZSTD != 0 {
        decompressed = decompress(stored)?;
        &decompressed
    } else {
        stored
    };
    let mut records = Vec::with_capacity(count.min(4096) as usize);
    while !rest.is_empty() {
        let (h, body, len) = match parse_frame(rest) {
            Ok(x) => x,
            Err(DecodeError::Torn { .. } | DecodeError::Zeroed) => {
                return Err(DecodeError::Corrupt { reason: "batch body ends inside a record" })
            }
            Err(e) => return Err(e),
        };
        if h.kind != FrameKind::Record as u8 {
            return Err(DecodeError::Corrupt { reason: "batch holds a non-record frame" });
        }
        if h.segment_id != batch.segment_id || h.offset != batch.offset || h.seq != batch.seq {
            return Err(DecodeError::Corrupt { reason: "batch record names another location" });
        }
        if records.len() as u64 == count {
            return Err(DecodeError::Corrupt { reason: "batch holds more records than announced" });
        }
        records.push(record_of(&h, body)?);
        rest = &rest[len as usize..];
    }
    if records.len() as u64 != count {
        return Err(DecodeError::Corrupt { reason: "batch holds fewer records than announced" });
    }
    Ok(records)
}
