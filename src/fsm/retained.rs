//! Blocks of completed invocations kept for their retention (`Table::Retained`): who expires
//! when, and the journals of those whose journal is small, compressed together.
//!
//! A completed invocation with a retention goes into the block keyed by the end of the
//! one-second bucket its retention ends in and by the window of 128 LSNs its completion was
//! applied in. The block lists its id and life, how many store rows forgetting it deletes
//! besides its status, and, when the journal is kept and small (≤ [`INLINE_ENTRIES_MAX`]
//! entries, ≤ [`INLINE_BYTES_MAX`] bytes), the whole journal; a larger journal stays in its
//! journal rows. Keeping a completed invocation thus costs one compressed share of a block
//! written at the end of the table, instead of rows spread over the journal table — request
//! headers repeat from one invocation to the next, so a block of them compresses several
//! times.
//!
//! Invariants:
//! - A block's content is a function of the log: its members are the completions of one
//!   window in LSN order, whatever the apply batches were (a batch that ends inside a window
//!   appends to the block the previous batch wrote; a purge removes its member at the purge's
//!   place in the log). Rebuilding a store from the log gives the same bytes.
//! - A block is deleted only once its bucket has ended, after every member still alive in
//!   it was forgotten: no live status refers to a missing block.
//! - A block holds at most one window of completions (one completion per LSN), so its raw
//!   size is bounded ([`BLOCK_RAW_BYTES_MAX`]); decompression checks that bound first.
//! - The member and row counts sit uncompressed in front, so the retention pass sizes its
//!   records without decompressing.

use bytes::Bytes;

use crate::protocol::ids::InvocationId;
use crate::store::schema::{self, INVOCATION_ID_BYTES};
use crate::store::{StoreError, Table};

/// Width of a time bucket. Ms. A block lives at most this long past its first member's
/// retention. Under load a window of LSNs is much shorter, so blocks are as full with a
/// short bucket as with a long one.
pub const BUCKET_MS: u64 = 1_000;
/// A window spans `1 << WINDOW_LSN_BITS` LSNs. Small enough that a batch rewriting its block
/// (read, append, compress) stays cheap even when every batch is one record.
pub const WINDOW_LSN_BITS: u32 = 7;
/// A journal of at most this many entries, and
pub const INLINE_ENTRIES_MAX: u32 = 256;
/// at most this many bytes of entries, is kept inside the block. Bytes.
pub const INLINE_BYTES_MAX: usize = 8 * 1024;
/// Bytes of one member's header: id, life, rows, journal entry count (`u32::MAX`: not
/// inline).
const MEMBER_HEAD_BYTES: usize = INVOCATION_ID_BYTES + 8 + 4 + 4;
/// Bytes of one inline entry's header: type, length.
const ENTRY_HEAD_BYTES: usize = 2 + 4;
/// Largest uncompressed block: a window's completions with inline journals. Bytes.
pub const BLOCK_RAW_BYTES_MAX: usize = (1 << WINDOW_LSN_BITS)
    * (MEMBER_HEAD_BYTES + INLINE_BYTES_MAX + INLINE_ENTRIES_MAX as usize * ENTRY_HEAD_BYTES);
/// First byte of a block value: member count, row count, then a zstd frame of the members.
const FORMAT_ZSTD: u8 = 1;
/// Bytes before the frame: format, u32 members, u64 rows.
const VALUE_HEAD_BYTES: usize = 1 + 4 + 8;
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
    /// Store rows forgetting it deletes besides its status (journal rows left in place,
    /// journal events).
    pub rows: u32,
    /// The journal, when kept in the block.
    pub journal: Option<Vec<(u16, Bytes)>>,
}

fn corrupt(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table: Table::Retained, detail: detail.to_string() }
}

/// A block: its members' encodings in order, and their counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub members: u32,
    pub rows: u64,
    pub raw: Vec<u8>,
}

impl Block {
    /// Appends one member.
    pub fn push(
        &mut self,
        id: &InvocationId,
        life: u64,
        rows: u32,
        journal: Option<&[(u16, Bytes)]>,
    ) {
        let raw = &mut self.raw;
        raw.extend_from_slice(&id.to_bytes());
        raw.extend_from_slice(&life.to_be_bytes());
        raw.extend_from_slice(&rows.to_be_bytes());
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
        self.members += 1;
        self.rows += u64::from(rows);
    }

    /// Appends every member of `other`.
    pub fn append(&mut self, other: &Block) {
        self.raw.extend_from_slice(&other.raw);
        self.members += other.members;
        self.rows += other.rows;
    }

    /// The members, in order.
    pub fn decode_members(&self) -> Result<Vec<Member>, StoreError> {
        let raw = &self.raw;
        let mut out = Vec::new();
        let mut at = 0usize;
        let take = |at: &mut usize, n: usize| -> Result<&[u8], StoreError> {
            let s = raw.get(*at..*at + n).ok_or_else(|| corrupt("truncated block"))?;
            *at += n;
            Ok(s)
        };
        let u32_at = |s: &[u8]| u32::from_be_bytes(s.try_into().unwrap_or_default());
        while at < raw.len() {
            let id = InvocationId::from_bytes(take(&mut at, INVOCATION_ID_BYTES)?)
                .map_err(|e| corrupt(format!("invocation id: {e}")))?;
            let life = u64::from_be_bytes(take(&mut at, 8)?.try_into().unwrap_or_default());
            let rows = u32_at(take(&mut at, 4)?);
            let n = u32_at(take(&mut at, 4)?);
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
            out.push(Member { id, life, rows, journal });
        }
        if out.len() != self.members as usize {
            return Err(corrupt(format!(
                "{} members where the block says {}",
                out.len(),
                self.members
            )));
        }
        Ok(out)
    }

    /// The block without the member `(id, life)`.
    pub fn without(&self, id: &InvocationId, life: u64) -> Result<Block, StoreError> {
        let mut out = Block::default();
        for m in self.decode_members()? {
            if (m.id, m.life) != (*id, life) {
                out.push(&m.id, m.life, m.rows, m.journal.as_deref());
            }
        }
        Ok(out)
    }

    /// The stored value: counts, then the members compressed.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let frame = zstd::bulk::compress(&self.raw, ZSTD_LEVEL).map_err(corrupt)?;
        let mut v = Vec::with_capacity(VALUE_HEAD_BYTES + frame.len());
        v.push(FORMAT_ZSTD);
        v.extend_from_slice(&self.members.to_be_bytes());
        v.extend_from_slice(&self.rows.to_be_bytes());
        v.extend_from_slice(&frame);
        Ok(v)
    }

    /// Decodes a stored value.
    pub fn decode(v: &[u8]) -> Result<Block, StoreError> {
        let (members, rows) = head(v)?;
        let frame = &v[VALUE_HEAD_BYTES..];
        let size = zstd::zstd_safe::get_frame_content_size(frame)
            .map_err(|_| corrupt("not a zstd frame"))?
            .ok_or_else(|| corrupt("zstd frame without its size"))?;
        if size > BLOCK_RAW_BYTES_MAX as u64 {
            return Err(corrupt(format!("block of {size} bytes")));
        }
        let raw = zstd::bulk::decompress(frame, size as usize).map_err(corrupt)?;
        Ok(Block { members, rows, raw })
    }
}

/// The member and row counts of a stored value, without decompressing it.
pub fn head(v: &[u8]) -> Result<(u32, u64), StoreError> {
    match v.first() {
        Some(&FORMAT_ZSTD) if v.len() >= VALUE_HEAD_BYTES => Ok((
            u32::from_be_bytes(v[1..5].try_into().unwrap_or_default()),
            u64::from_be_bytes(v[5..13].try_into().unwrap_or_default()),
        )),
        Some(&FORMAT_ZSTD) => Err(corrupt("truncated block head")),
        Some(format) => Err(corrupt(format!("unknown block format {format}"))),
        None => Err(corrupt("empty block")),
    }
}

/// The block members an apply batch added, by block, until [`Pending::flush`] writes them.
#[derive(Debug, Default)]
pub struct Pending {
    blocks: std::collections::BTreeMap<[u8; 16], Block>,
}

impl Pending {
    /// Adds a member to the block `key` (members must come in LSN order).
    pub fn add(
        &mut self,
        key: [u8; 16],
        id: &InvocationId,
        life: u64,
        rows: u32,
        journal: Option<&[(u16, Bytes)]>,
    ) {
        self.blocks.entry(key).or_default().push(id, life, rows, journal);
    }

    /// Writes every pending member into its block (after the members already stored).
    pub fn flush<S: super::FsmStore + ?Sized>(&mut self, s: &mut S) -> Result<(), StoreError> {
        for (key, new) in std::mem::take(&mut self.blocks) {
            let overwrite = crate::defect::active(crate::defect::Defect::RetainedBlockOverwritten);
            let block = match s.retained_value(&key)?.filter(|_| !overwrite) {
                Some(v) => {
                    let mut block = Block::decode(&v)?;
                    block.append(&new);
                    block
                }
                None => new,
            };
            s.retained_put(&key, &block.encode()?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip_and_keys_sort_by_bucket_then_window() {
        let a = InvocationId::new(7, 1 << 100);
        let b = InvocationId::new(9, 2 << 100);
        let journal = vec![(1024u16, Bytes::from_static(b"in")), (1025, Bytes::new())];
        let mut block = Block::default();
        block.push(&a, 3, 0, Some(&journal));
        block.push(&b, 0, 5, None);
        let m = block.decode_members().unwrap();
        assert_eq!(m[0], Member { id: a, life: 3, rows: 0, journal: Some(journal) });
        assert_eq!(m[1], Member { id: b, life: 0, rows: 5, journal: None });
        assert_eq!((block.members, block.rows), (2, 5));
        let stored = block.encode().unwrap();
        assert_eq!(head(&stored).unwrap(), (2, 5));
        assert_eq!(Block::decode(&stored).unwrap(), block);
        assert_eq!(block.without(&a, 3).unwrap().decode_members().unwrap(), vec![m[1].clone()]);
        assert_eq!(block.without(&a, 4).unwrap(), block, "another life stays");
        let mut cut = block.clone();
        cut.raw.pop();
        assert!(cut.decode_members().is_err());
        let mut miscounted = block.clone();
        miscounted.members = 3;
        assert!(miscounted.decode_members().is_err());
        assert!(Block::decode(&[FORMAT_ZSTD, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]).is_err());
        assert!(Block::decode(&[9]).is_err());
        assert!(head(&[FORMAT_ZSTD, 1]).is_err());
        assert_eq!(block_key(0, 0), schema::retained_key(BUCKET_MS, 0));
        assert_eq!(block_key(BUCKET_MS - 1, 127), block_key(0, 0));
        assert!(block_key(BUCKET_MS, 0) > block_key(BUCKET_MS - 1, 1 << 20));
        assert!(block_key(0, 128) > block_key(0, 127));
    }
}
