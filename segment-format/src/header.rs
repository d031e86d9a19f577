//! The segment header: the first block of every segment file.
//!
//! Layout (little-endian; see `FORMAT.md`): magic, format version, used length, flags,
//! segment id, WAL id, first frame `Seq`, creation time, segment size, the previous segment's
//! end offset, CRC-32. The rest of the block is zero. A header is written together with the
//! segment's first frame, so a segment whose header does not decode holds nothing that was
//! ever acknowledged.

use crate::{
    le_u16, le_u32, le_u64, DecodeError, SegmentId, Seq, FORMAT_VERSION, FORMAT_VERSIONS_READABLE,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_HEADER_USED_BYTES,
};

/// Identifies a Ratchet segment file. Never changes.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RTCHTSEG";

/// The decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub format_version: u16,
    pub segment_id: SegmentId,
    /// Random identity of the WAL that owns this segment, fixed when the WAL was created; a
    /// segment carrying another WAL's id is misdirected (copied from elsewhere).
    pub wal_id: u64,
    /// `Seq` of the first frame in this segment ("first LSN" of the physical WAL).
    pub first_seq: Seq,
    /// Wall-clock time the segment was started, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Capacity of the segment file, header included. Bytes.
    pub segment_bytes: u64,
    /// Where the frames of the previous segment end (0 for a WAL's first segment). Bytes.
    /// The previous segment's file may be recycled, with old frames past that point, so
    /// its end cannot be found by scanning alone.
    pub prev_end_offset: u32,
}

impl SegmentHeader {
    /// Writes the header into the first [`SEGMENT_HEADER_USED_BYTES`] bytes of `out`.
    ///
    /// Panics if `out` is too short or the header violates a limit: both are writer bugs.
    pub fn encode(&self, out: &mut [u8]) {
        assert!(out.len() >= SEGMENT_HEADER_USED_BYTES);
        assert!((SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes));
        assert!(self.first_seq.0 >= 1);
        assert!(u64::from(self.prev_end_offset) <= SEGMENT_BYTES_MAX);
        let b = &mut out[..SEGMENT_HEADER_USED_BYTES];
        b.fill(0);
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&self.format_version.to_le_bytes());
        b[10..12].copy_from_slice(&(SEGMENT_HEADER_USED_BYTES as u16).to_le_bytes());
        // 12..16: flags, none defined.
        b[16..24].copy_from_slice(&self.segment_id.0.to_le_bytes());
        b[24..32].copy_from_slice(&self.wal_id.to_le_bytes());
        b[32..40].copy_from_slice(&self.first_seq.0.to_le_bytes());
        b[40..48].copy_from_slice(&self.created_ms.to_le_bytes());
        b[48..56].copy_from_slice(&self.segment_bytes.to_le_bytes());
        b[56..60].copy_from_slice(&self.prev_end_offset.to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(SegmentHeader::decode(b), Ok(*self));
    }

    /// Decodes a header from the start of `bytes`. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, DecodeError> {
        if bytes.len() < SEGMENT_HEADER_USED_BYTES {
            if bytes.iter().all(|&x| x == 0) {
                return Err(DecodeError::Zeroed);
            }
            return Err(DecodeError::Torn {
                needed_bytes: SEGMENT_HEADER_USED_BYTES as u64,
                available_bytes: bytes.len() as u64,
            });
        }
        let b = &bytes[..SEGMENT_HEADER_USED_BYTES];
        if b.iter().all(|&x| x == 0) {
            return Err(DecodeError::Zeroed);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(DecodeError::Corrupt { reason: "segment header magic" });
        }
        if crc32fast::hash(&b[..60]) != le_u32(b, 60) {
            return Err(DecodeError::Corrupt { reason: "segment header checksum" });
        }
        let format_version = le_u16(b, 8);
        if !FORMAT_VERSIONS_READABLE.contains(&format_version) {
            return Err(DecodeError::Unsupported {
                what: "segment format version",
                value: format_version.into(),
            });
        }
        if usize::from(le_u16(b, 10)) != SEGMENT_HEADER_USED_BYTES {
            return Err(DecodeError::Corrupt { reason: "segment header length" });
        }
        let flags = le_u32(b, 12);
        if flags != 0 {
            return Err(DecodeError::Unsupported {
                what: "segment header flags",
                value: flags.into(),
            });
        }
        let prev_end_offset = le_u32(b, 56);
        if u64::from(prev_end_offset) > SEGMENT_BYTES_MAX {
            return Err(DecodeError::Corrupt { reason: "previous segment end out of range" });
        }
        let segment_bytes = le_u64(b, 48);
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&segment_bytes) {
            return Err(DecodeError::Corrupt { reason: "segment size out of range" });
        }
        let first_seq = Seq(le_u64(b, 32));
        if first_seq.0 == 0 {
            return Err(DecodeError::Corrupt { reason: "segment first seq is zero" });
        }
        Ok(SegmentHeader {
            format_version,
            segment_id: SegmentId(le_u64(b, 16)),
            wal_id: le_u64(b, 24),
            first_seq,
            created_ms: le_u64(b, 40),
            segment_bytes,
            prev_end_offset,
        })
    }

    /// A header for a new segment written by this version.
    pub fn new(
        segment_id: SegmentId,
        wal_id: u64,
        first_seq: Seq,
        created_ms: u64,
        segment_bytes: u64,
        prev_end_offset: u32,
    ) -> Self {
        SegmentHeader {
            format_version: FORMAT_VERSION,
            segment_id,
            wal_id,
            first_seq,
            created_ms,
            segment_bytes,
            prev_end_offset,
        }
    }
}
