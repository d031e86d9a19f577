//! Blocks of completed invocations kept for their retention (`Table::Retained`): who expires
//! when, and the journals of those whose journal is small, compressed together.
//!
//! A completed invocation with a retention goes into the block keyed by the end of the
//! one-second bucket its retention ends in and by the window of 512 LSNs its completion was
//! applied in. The block lists its id and life and, when the journal is kept and small
//! (≤ [`INLINE_ENTRIES_MAX`] entries, ≤ [`INLINE_BYTES_MAX`] bytes), the whole journal; a
//! larger journal stays in its journal rows. Keeping a completed invocation thus costs one
//! compressed share of a block that is written at the end of the table, instead of rows
//! spread over the journal table — Restate's request headers repeat from one invocation to
//! the next, so a block of them compresses several times.
//!
//! Invariants:
//! - A block's content is a function of the log: its members are the completions of one
//!   window in LSN order, whatever the apply batches were (a batch that ends inside a window
//!   appends to the block the previous batch wrote). Rebuilding a store from the log gives
//!   the same bytes.
//! - A block is deleted only once its bucket has ended: every member's retention has passed,
//!   so no live status refers to a missing block unless it is itself expired.
//! - Reading a block is bounded by [`BLOCK_RAW_BYTES_MAX`]; anything else is corruption.

use bytes::Bytes;

use super::storage::FsmStore;
use crate::protocol::ids::InvocationId;
use crate::store::schema::{self, INVOCATION_ID_BYTES};
use crate::store::{StoreError, Table};

/// Width of a time bucket. Ms. A block lives at most this long past its first member's
/// retention. Under load a window of LSNs is much shorter, so blocks are as full with a
/// short bucket as with a long one.
pub const BUCKET_MS: u64 = 1_000;
/// A window spans `1 << WINDOW_LSN_BITS` LSNs.
pub const WINDOW_LSN_BITS: u32 = 9;
/// A journal of at most this many entries, and
pub const INLINE_ENTRIES_MAX: u32 = 256;
/// at most this many bytes of entries, is kept inside the block. Bytes.
pub const INLINE_BYTES_MAX: usize = 16 * 1024;
/// Bytes of one member's header: id, life, journal entry count (`u32::MAX`: not inline).
const MEMBER_HEAD_BYTES: usize = INVOCATION_ID_BYTES + 8 + 4;
/// Bytes of one inline entry's header: type, length.
const ENTRY_HEAD_BYTES: usize = 2 + 4;
/// Largest uncompressed block: a window's completions with inline journals. Bytes.
pub const BLOCK_RAW_BYTES_MAX: usize = (1 << WINDOW_LSN_BITS)
    * (MEMBER_HEAD_BYTES
        + INLINE_BYTES_MAX
        + INLINE_ENTRIES_MAX as usize * (ENTRY_HEAD_BYTES + schema::JOURNAL_KEY_BYTES));
/// First byte of a block value: zstd frame of the members follows.
const FORMAT_ZSTD: u8 = 1;
/// zstd level: fast; the blocks are small and written on the apply path.
const ZSTD_LEVEL: i32 = 1;
/// Not an inline journal.
const NOT_INLINE: u32 = u32::MAX;

/// The block a completion applied at `lsn` with retention ending at `purge_at_ms` belongs to.
pub fn block_key(purge_at_ms: u64, lsn: u64) -> [u8; 16] {
    let bucket_end = (purge_at_ms / BUCKET_MS).saturating_add(1).saturating_mul(BUCKET_MS);
    schema::retained_key(bucket_end, lsn >> WINDOW_LSN_BITS)
}

/// One member of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: InvocationId,
    /// The life of the id that completed (see `Status::life`).
    pub life: u64,
    /// The journal, when kept in the block.
    pub journal: Option<Vec<(u16, Bytes)>>,
}

fn corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table: Table::Retained, detail: detail.to_string() }
}

/// Appends the encoding of one member to `raw`.
pub fn encode_member(
    raw: &mut Vec<u8>,
    id: &InvocationId,
    life: u64,
    journal: Option<&[(u16, Bytes)]>,
) {
    raw.extend_from_slice(&id.to_bytes());
    raw.extend_from_slice(&life.to_be_bytes());
    match journal {
        None => raw.extend_from_slice(&NOT_INLINE.to_be_bytes()),
        Some(entries) => {
            raw.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (ty, payload) in entries {
                raw.extend_from_slice(&ty.to_be_bytes());
                raw.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                raw.extend_from_slice(payload);
            }
        }
    }
}

/// The members of a block's uncompressed bytes, in order.
pub fn decode_members(raw: &[u8]) -> Result<Vec<Member>, StoreError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], StoreError> {
        let s = raw.get(*at..*at + n).ok_or_else(|| corrupt("truncated block"))?;
        *at += n;
        Ok(s)
    };
    while at < raw.len() {
        let id = InvocationId::from_bytes(take(&mut at, INVOCATION_ID_BYTES)?)
            .map_err(|e| corrupt(format!("invocation id: {e}")))?;
        let life = u64::from_be_bytes(take(&mut at, 8)?.try_into().unwrap_or_default());
        let n = u32::from_be_bytes(take(&mut at, 4)?.try_into().unwrap_or_default());
        let journal = if n == NOT_INLINE {
            None
        } else {
            let mut entries = Vec::with_capacity(n.min(INLINE_ENTRIES_MAX) as usize);
            for _ in 0..n {
                let head = take(&mut at, ENTRY_HEAD_BYTES)?;
                let ty = u16::from_be_bytes([head[0], head[1]]);
                let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
                entries.push((ty, Bytes::copy_from_slice(take(&mut at, len)?)));
            }
            Some(entries)
        };
        out.push(Member { id, life, journal });
    }
    Ok(out)
}

/// The uncompressed bytes of a stored block value.
pub fn decode_value(v: &[u8]) -> Result<Vec<u8>, StoreError> {
    match v.split_first() {
        Some((&FORMAT_ZSTD, frame)) => {
            let size = zstd::zstd_safe::get_frame_content_size(frame)
                .map_err(|_| corrupt("not a zstd frame"))?
                .ok_or_else(|| corrupt("zstd frame without its size"))?;
            if size > BLOCK_RAW_BYTES_MAX as u64 {
                return Err(corrupt(format!("block of {size} bytes")));
            }
            zstd::bulk::decompress(frame, size as usize).map_err(corrupt)
        }
        Some((format, _)) => Err(corrupt(format!("unknown block format {format}"))),
        None => Err(corrupt("empty block")),
    }
}

/// The stored value of a block's uncompressed bytes.
pub fn encode_value(raw: &[u8]) -> Result<Vec<u8>, StoreError> {
    let frame = zstd::bulk::compress(raw, ZSTD_LEVEL).map_err(corrupt)?;
    let mut v = Vec::with_capacity(1 + frame.len());
    v.push(FORMAT_ZSTD);
    v.extend_from_slice(&frame);
    Ok(v)
}

/// The block members an apply batch added, by block, until [`Pending::flush`] writes them.
#[derive(Debug, Default)]
#[must_use = "pending members are lost unless flushed before the batch commits"]
pub struct Pending {
    blocks: std::collections::BTreeMap<[u8; 16], Vec<u8>>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Adds a member to the block `key` (members must come in LSN order).
    pub fn add(
        &mut self,
        key: [u8; 16],
        id: &InvocationId,
        life: u64,
        journal: Option<&[(u16, Bytes)]>,
    ) {
        encode_member(self.blocks.entry(key).or_default(), id, life, journal);
    }

    /// Writes every pending member into its block (after the members already stored).
    pub fn flush<S: FsmStore + ?Sized>(&mut self, s: &mut S) -> Result<(), StoreError> {
        for (key, new) in std::mem::take(&mut self.blocks) {
            let overwrite = crate::defect::active(crate::defect::Defect::RetainedBlockOverwritten);
            let raw = match s.retained_block(&key)?.filter(|_| !overwrite) {
                Some(mut raw) => {
                    raw.extend_from_slice(&new);
                    raw
                }
                None => new,
            };
            s.retained_put(&key, &raw)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_keys_sort_by_bucket_then_window() {
        let a = InvocationId::new(7, 1 << 100);
        let b = InvocationId::new(9, 2 << 100);
        let journal = vec![(1024u16, Bytes::from_static(b"in")), (1025, Bytes::new())];
        let mut raw = Vec::new();
        encode_member(&mut raw, &a, 3, Some(&journal));
        encode_member(&mut raw, &b, 0, None);
        let m = decode_members(&raw).unwrap();
        assert_eq!(m[0], Member { id: a, life: 3, journal: Some(journal) });
        assert_eq!(m[1], Member { id: b, life: 0, journal: None });
        assert!(decode_members(&raw[..raw.len() - 1]).is_err());
        assert_eq!(decode_value(&encode_value(&raw).unwrap()).unwrap(), raw);
        assert!(decode_value(&[FORMAT_ZSTD, 1, 2, 3]).is_err());
        assert!(decode_value(&[9]).is_err());
        assert_eq!(block_key(0, 0), schema::retained_key(BUCKET_MS, 0));
        assert_eq!(block_key(BUCKET_MS - 1, 511), block_key(0, 0));
        assert!(block_key(BUCKET_MS, 0) > block_key(BUCKET_MS - 1, 1 << 20));
        assert!(block_key(0, 512) > block_key(0, 511));
    }
}
