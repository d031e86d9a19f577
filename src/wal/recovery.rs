//! Recovery on open: verify every live segment, rebuild the index, cut off a torn tail, and
//! refuse to start on corruption anywhere before it.
//!
//! Rules (see `segment-format/FORMAT.md`):
//! - Live segments are `<id>.seg` files in id order; a segment's header must name its own id
//!   and this WAL's id. Only the last one may lack a valid header (its first write never
//!   completed, so it holds nothing acknowledged).
//! - Frame `Seq`s run contiguously across segments and each log's LSNs run contiguously.
//! - A segment is followed by another only after all its writes completed, so an invalid
//!   frame in any segment but the last is corruption.
//! - In the last segment, the first invalid or missing frame is the tail, provided every valid
//!   frame after it is within [`FLUSHES_INFLIGHT_MAX`] sequence numbers (it was in flight
//!   together with the hole, hence never acknowledged). Such leftovers are zeroed so they can
//!   never be mistaken for new frames later.

use std::collections::{BTreeMap, HashMap};

use segment_format::{
    ControlRecord, DecodeError, LogId, Lsn, SegmentHeader, SegmentId, Seq, FLUSHES_INFLIGHT_MAX,
    FRAME_ALIGN_BYTES, LOG_ID_CONTROL, SEGMENT_HEADER_BYTES,
};

use super::disk::{Disk, FileId};
use super::scan::{Scanner, Step};
use super::shared::{LogTail, Recovered, SegMeta};
use super::{parse_numbered, Options, WalError};

/// Zero fill is written in chunks of this size. Bytes.
pub(crate) const ZERO_CHUNK_BYTES: usize = 4 * 1024 * 1024;

fn corrupt(file: &str, offset: u64, detail: impl Into<String>) -> WalError {
    WalError::Corrupt { file: file.to_string(), offset, detail: detail.into() }
}

struct LogsState {
    logs: HashMap<LogId, LogTail>,
    control_last: Lsn,
    /// A checkpoint seeds logs only at the first live segment; later ones must agree.
    seeded: bool,
}

impl LogsState {
    fn apply(
        &mut self,
        name: &str,
        offset: u64,
        rec: &segment_format::Record,
        first_record_of_wal: bool,
    ) -> Result<(), WalError> {
        if rec.log_id == LOG_ID_CONTROL {
            if !first_record_of_wal && rec.lsn != self.control_last.next() {
                return Err(corrupt(name, offset, format!("control log LSN gap at {}", rec.lsn)));
            }
            self.control_last = rec.lsn;
            let ctl = ControlRecord::decode(&rec.body)
                .map_err(|e| corrupt(name, offset, format!("control record: {e}")))?;
            match ctl {
                ControlRecord::Checkpoint(entries) => {
                    for e in entries {
                        let t = self.logs.entry(e.log_id).or_default();
                        if !self.seeded {
                            *t = LogTail {
                                lsn_durable: e.lsn_last,
                                lsn_trim: e.lsn_trim,
                                sealed: e.sealed,
                                epoch: e.epoch,
                            };
                        } else if t.lsn_durable != e.lsn_last {
                            return Err(corrupt(
                                name,
                                offset,
                                format!(
                                    "checkpoint says log {} ends at {}, records say {}",
                                    e.log_id, e.lsn_last, t.lsn_durable
                                ),
                            ));
                        }
                    }
                }
                ControlRecord::Trim { log_id, lsn } => {
                    let t = self.logs.entry(log_id).or_default();
                    t.lsn_trim = t.lsn_trim.max(lsn.min(t.lsn_durable));
                }
                ControlRecord::Seal { log_id } => {
                    self.logs.entry(log_id).or_default().sealed = true
                }
                ControlRecord::Fence { log_id, epoch } => {
                    let t = self.logs.entry(log_id).or_default();
                    t.epoch = t.epoch.max(epoch);
                }
            }
            self.seeded = true;
            return Ok(());
        }
        self.seeded = true;
        let t = self.logs.entry(rec.log_id).or_default();
        if rec.lsn != t.lsn_durable.next() {
            return Err(corrupt(
                name,
                offset,
                format!("log {} jumps from LSN {} to {}", rec.log_id, t.lsn_durable, rec.lsn),
            ));
        }
        t.lsn_durable = rec.lsn;
        Ok(())
    }
}

pub(crate) fn recover<D: Disk>(disk: &mut D, _opts: &Options) -> Result<Recovered, WalError> {
    let names = disk.list().map_err(|e| WalError::io("list WAL directory", &e))?;
    let mut live: Vec<(u64, String)> = Vec::new();
    let mut spares = Vec::new();
    let mut spare_number_next = 0;
    for name in names {
        if let Some(id) = parse_numbered(&name, "seg") {
            live.push((id, name));
        } else if let Some(n) = parse_numbered(&name, "spare") {
            spare_number_next = spare_number_next.max(n + 1);
            spares.push(name);
        } else if let Some(n) = parse_numbered(&name, "prep") {
            // An interrupted preparation: its zero fill may be incomplete.
            spare_number_next = spare_number_next.max(n + 1);
            disk.remove(&name).map_err(|e| WalError::io("remove unfinished spare", &e))?;
        }
    }
    live.sort();
    let reader = disk.reader();
    let mut state = LogsState { logs: HashMap::new(), control_last: Lsn::INVALID, seeded: false };
    let mut segments = BTreeMap::new();
    let mut wal_id: Option<u64> = None;
    let mut seq_next: Option<Seq> = None;
    let mut active = None;
    let mut active_format_version = segment_format::FORMAT_VERSION;
    let segment_id_next = SegmentId(live.last().map_or(1, |(id, _)| id + 1));

    // Headers first: a segment's end is recorded in its successor's header.
    let mut headers: Vec<(String, SegmentHeader)> = Vec::with_capacity(live.len());
    for (i, (id, name)) in live.iter().enumerate() {
        let last = i + 1 == live.len();
        let mut header_bytes = vec![0u8; SEGMENT_HEADER_BYTES];
        let n = reader
            .read_at(name, 0, &mut header_bytes)
            .map_err(|e| WalError::io("read segment header", &e))?;
        header_bytes.truncate(n);
        match SegmentHeader::decode(&header_bytes) {
            Ok(h) if h.segment_id == SegmentId(*id) => headers.push((name.clone(), h)),
            Ok(h) if !last => {
                return Err(corrupt(name, 0, format!("header names segment {}", h.segment_id)))
            }
            Err(e) if !last => return Err(corrupt(name, 0, format!("segment header: {e}"))),
            _ => {
                // The last segment's first write never completed: nothing in it was
                // acknowledged. Return the file to the spare pool.
                let spare = format!("{spare_number_next:016x}.spare");
                spare_number_next += 1;
                disk.rename(name, &spare).map_err(|e| WalError::io("recycle empty segment", &e))?;
                reader.forget(name);
                spares.push(spare);
            }
        }
    }

    for (i, (name, header)) in headers.iter().enumerate() {
        let last = i + 1 == headers.len();
        match wal_id {
            None => wal_id = Some(header.wal_id),
            Some(w) if w != header.wal_id => {
                return Err(corrupt(name, 0, "segment belongs to another WAL (wal id differs)"))
            }
            Some(_) => {}
        }
        let mut expected = match seq_next {
            None => header.first_seq,
            Some(s) if s == header.first_seq => s,
            Some(s) => {
                return Err(corrupt(
                    name,
                    0,
                    format!(
                        "frames missing: expected seq {s}, segment starts at {}",
                        header.first_seq
                    ),
                ))
            }
        };
        let first_segment = i == 0;
        // Past the recorded end of a non-last segment lie old frames of a recycled file.
        let limit = match headers.get(i + 1) {
            Some((_, next)) => u64::from(next.prev_end_offset),
            None => header.segment_bytes,
        };
        if limit > header.segment_bytes || limit < SEGMENT_HEADER_BYTES as u64 {
            return Err(corrupt(name, 0, format!("recorded segment end {limit} is out of range")));
        }
        let mut meta = SegMeta { name: name.clone(), logs: HashMap::new(), end_offset: 0 };
        let mut scanner = Scanner::new(reader.clone(), name.clone(), header.segment_id);
        let mut offset = SEGMENT_HEADER_BYTES as u64;
        let tail_reason = loop {
            match scanner.step(offset, limit)? {
                Step::Frame(f) if f.seq == expected => {
                    for (k, rec) in f.records.iter().enumerate() {
                        let first_of_wal =
                            first_segment && offset == SEGMENT_HEADER_BYTES as u64 && k == 0;
                        state.apply(name, offset, rec, first_of_wal)?;
                        if rec.log_id != LOG_ID_CONTROL {
                            meta.note(rec.log_id, rec.lsn, offset);
                        }
                    }
                    offset += f.len_bytes;
                    expected = expected.next();
                }
                Step::Frame(f) => {
                    break Some(format!("frame seq {} where {expected} was expected", f.seq))
                }
                Step::Skip(next) => offset = next,
                Step::End if !last && offset < limit => {
                    break Some(format!("segment data ends before its recorded end {limit}"))
                }
                Step::End => break None,
                // A well-formed frame this version cannot read, or one written for another
                // place, is never a torn write: refuse rather than overwrite it.
                Step::Invalid(
                    e @ (DecodeError::Unsupported { .. } | DecodeError::Misdirected { .. }),
                ) => return Err(corrupt(name, offset, e.to_string())),
                Step::Invalid(e) => break Some(e.to_string()),
            }
        };
        if !last {
            if let Some(reason) = tail_reason {
                return Err(corrupt(name, offset, reason));
            }
        } else {
            cut_tail(disk, &mut scanner, name, offset, limit, expected, tail_reason)?;
            active = Some((header.segment_id, offset));
            active_format_version = header.format_version;
        }
        meta.end_offset = offset;
        seq_next = Some(expected);
        segments.insert(header.segment_id, meta);
    }

    let wal_id = match wal_id {
        Some(w) => w,
        None => fresh_wal_id(),
    };
    let control_lsn_last = state.control_last;
    state.logs.remove(&LOG_ID_CONTROL);
    Ok(Recovered {
        wal_id,
        logs: state.logs,
        control_lsn_last,
        segments,
        active,
        active_format_version,
        seq_next: seq_next.unwrap_or(Seq(1)),
        segment_id_next,
        spares,
        spare_number_next,
    })
}

/// In the last segment, checks that nothing acknowledged lies past `tail`, and zeroes valid
/// leftovers of in-flight writes there.
fn cut_tail<D: Disk>(
    disk: &mut D,
    scanner: &mut Scanner,
    name: &str,
    tail: u64,
    limit: u64,
    seq_expected: Seq,
    reason: Option<String>,
) -> Result<(), WalError> {
    let seq_window_end = seq_expected.0 - 1 + FLUSHES_INFLIGHT_MAX;
    let mut leftovers_end = None;
    let mut q = tail;
    while q < limit {
        if let Step::Frame(f) = scanner.step(q, limit)? {
            if f.seq < seq_expected || f.seq.0 > seq_window_end {
                return Err(corrupt(
                    name,
                    tail,
                    format!(
                        "{}; a valid frame with seq {} follows at offset {q}, so this is not a torn tail",
                        reason.as_deref().unwrap_or("data missing"),
                        f.seq
                    ),
                ));
            }
            q += f.len_bytes;
            leftovers_end = Some(q);
            continue;
        }
        q += FRAME_ALIGN_BYTES as u64;
    }
    if let Some(end) = leftovers_end {
        let file = disk.open(name, false).map_err(|e| WalError::io("open segment", &e))?;
        let r = zero_range(disk, file, tail, end);
        disk.close(file);
        r?;
        scanner_forget(scanner);
    }
    Ok(())
}

fn scanner_forget(scanner: &mut Scanner) {
    // The window may hold bytes we just zeroed.
    scanner.invalidate();
}

/// Writes zeros over `[from, to)` durably.
pub(crate) fn zero_range<D: Disk>(
    disk: &mut D,
    file: FileId,
    from: u64,
    to: u64,
) -> Result<(), WalError> {
    let zeros = vec![0u8; ZERO_CHUNK_BYTES];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(ZERO_CHUNK_BYTES);
        disk.write_sync(file, at, &zeros[..n]).map_err(|e| WalError::io("zero fill", &e))?;
        at += n as u64;
    }
    Ok(())
}

/// A WAL id for a new WAL: unique enough to tell WAL directories apart.
fn fresh_wal_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() | 1
}
