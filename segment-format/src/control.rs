//! Bodies of the WAL's own control records (records of log [`crate::LOG_ID_CONTROL`]).
//!
//! Control records keep per-log metadata in the WAL itself, so that it is durable through the
//! same group commit as data and needs no side file: trims, seals, fences (a log's epoch), and
//! a checkpoint of every log's state written at the start of each segment. Because every live
//! segment starts with a checkpoint, recycling old segments never loses a log's trim point,
//! last LSN, seal or epoch.
//!
//! Tag 1 (the version 1 checkpoint, without epochs) is still decoded, with epoch 0 for every
//! log, but never written: the encoder writes checkpoints as tag 5. Neither tag is ever reused.

use crate::{le_u32, le_u64, DecodeError, LogId, Lsn};

/// Version 1 checkpoint: read, no longer written.
const TAG_CHECKPOINT_V1: u8 = 1;
const TAG_TRIM: u8 = 2;
const TAG_SEAL: u8 = 3;
const TAG_FENCE: u8 = 4;
const TAG_CHECKPOINT: u8 = 5;
const CHECKPOINT_V1_ENTRY_BYTES: usize = 4 + 1 + 8 + 8;
/// Size of one log's entry in a checkpoint as written (tag 5): log id, flags, trim point,
/// last LSN, epoch. Bytes.
pub const CHECKPOINT_ENTRY_BYTES: usize = 4 + 1 + 8 + 8 + 8;
/// Tag and entry count in front of the entries of either checkpoint tag.
const CHECKPOINT_PREFIX_BYTES: usize = 1 + 4;
const CHECKPOINT_FLAG_SEALED: u8 = 1;

const _: () = assert!(CHECKPOINT_ENTRY_BYTES == 29);
const _: () = assert!(CHECKPOINT_V1_ENTRY_BYTES == 21);

/// Body size of a checkpoint of `logs` logs as the encoder writes it, so a writer can size
/// the frame that holds it. Bytes.
pub const fn checkpoint_body_bytes(logs: usize) -> usize {
    CHECKPOINT_PREFIX_BYTES + CHECKPOINT_ENTRY_BYTES * logs
}

/// One log's state in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub log_id: LogId,
    /// Records at or below this LSN are trimmed.
    pub lsn_trim: Lsn,
    /// The last LSN ever appended to this log (durable when the checkpoint is).
    pub lsn_last: Lsn,
    pub sealed: bool,
    /// The log's fence epoch: appends by writers with a smaller epoch are refused. 0 means
    /// never fenced (and is what a version 1 checkpoint decodes to).
    pub epoch: u64,
}

/// A control record body. Tags are stable; a retired tag is never reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlRecord {
    /// State of every log, as of the point just before this record.
    Checkpoint(Vec<LogCheckpoint>),
    /// Records of `log_id` at or below `lsn` are trimmed.
    Trim { log_id: LogId, lsn: Lsn },
    /// `log_id` accepts no further appends.
    Seal { log_id: LogId },
    /// From here on, appends to `log_id` by writers with an epoch below `epoch` are refused.
    /// A log's epoch never decreases.
    Fence { log_id: LogId, epoch: u64 },
}

impl ControlRecord {
    /// Encodes the body.
    ///
    /// Panics on a checkpoint entry with `lsn_trim > lsn_last` (the decoder rejects it, so
    /// writing it would make the segment unreadable): a writer bug.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ControlRecord::Checkpoint(logs) => {
                assert!(u32::try_from(logs.len()).is_ok(), "checkpoint entry count fits u32");
                let mut out = Vec::with_capacity(checkpoint_body_bytes(logs.len()));
                out.push(TAG_CHECKPOINT);
                out.extend_from_slice(&(logs.len() as u32).to_le_bytes());
                for l in logs {
                    assert!(l.lsn_trim <= l.lsn_last, "checkpoint trim point beyond last LSN");
                    out.extend_from_slice(&l.log_id.0.to_le_bytes());
                    out.push(if l.sealed { CHECKPOINT_FLAG_SEALED } else { 0 });
                    out.extend_from_slice(&l.lsn_trim.0.to_le_bytes());
                    out.extend_from_slice(&l.lsn_last.0.to_le_bytes());
                    out.extend_from_slice(&l.epoch.to_le_bytes());
                }
                debug_assert_eq!(out.len(), checkpoint_body_bytes(logs.len()));
                out
            }
            ControlRecord::Trim { log_id, lsn } => {
                let mut out = vec![TAG_TRIM];
                out.extend_from_slice(&log_id.0.to_le_bytes());
                out.extend_from_slice(&lsn.0.to_le_bytes());
                out
            }
            ControlRecord::Seal { log_id } => {
                let mut out = vec![TAG_SEAL];
                out.extend_from_slice(&log_id.0.to_le_bytes());
                out
            }
            ControlRecord::Fence { log_id, epoch } => {
                let mut out = vec![TAG_FENCE];
                out.extend_from_slice(&log_id.0.to_le_bytes());
                out.extend_from_slice(&epoch.to_le_bytes());
                out
            }
        }
    }

    /// Decodes a control record body. Never panics.
    pub fn decode(b: &[u8]) -> Result<ControlRecord, DecodeError> {
        let corrupt = |reason| Err(DecodeError::Corrupt { reason });
        let Some((&tag, rest)) = b.split_first() else {
            return corrupt("empty control record");
        };
        match tag {
            TAG_CHECKPOINT_V1 => decode_checkpoint(rest, CHECKPOINT_V1_ENTRY_BYTES),
            TAG_CHECKPOINT => decode_checkpoint(rest, CHECKPOINT_ENTRY_BYTES),
            TAG_TRIM if rest.len() == 12 => Ok(ControlRecord::Trim {
                log_id: LogId(le_u32(rest, 0)),
                lsn: Lsn(le_u64(rest, 4)),
            }),
            TAG_SEAL if rest.len() == 4 => {
                Ok(ControlRecord::Seal { log_id: LogId(le_u32(rest, 0)) })
            }
            TAG_FENCE if rest.len() == 12 => {
                Ok(ControlRecord::Fence { log_id: LogId(le_u32(rest, 0)), epoch: le_u64(rest, 4) })
            }
            TAG_TRIM | TAG_SEAL | TAG_FENCE => corrupt("control record length"),
            other => {
                Err(DecodeError::Unsupported { what: "control record tag", value: other.into() })
            }
        }
    }
}

/// Decodes the count and entries after a checkpoint tag. Both tags share the entry layout
/// up to `lsn_last`; a tag 5 entry appends the epoch, which a tag 1 entry lacks (epoch 0).
fn decode_checkpoint(rest: &[u8], entry_bytes: usize) -> Result<ControlRecord, DecodeError> {
    let corrupt = |reason| Err(DecodeError::Corrupt { reason });
    if rest.len() < 4 {
        return corrupt("checkpoint too short");
    }
    let n = le_u32(rest, 0) as usize;
    let entries = &rest[4..];
    if entries.len() != n.saturating_mul(entry_bytes) {
        return corrupt("checkpoint length does not match its count");
    }
    let mut logs = Vec::with_capacity(n);
    for e in entries.chunks_exact(entry_bytes) {
        let flags = e[4];
        if flags & !CHECKPOINT_FLAG_SEALED != 0 {
            return Err(DecodeError::Unsupported { what: "checkpoint flags", value: flags.into() });
        }
        let l = LogCheckpoint {
            log_id: LogId(le_u32(e, 0)),
            sealed: flags & CHECKPOINT_FLAG_SEALED != 0,
            lsn_trim: Lsn(le_u64(e, 5)),
            lsn_last: Lsn(le_u64(e, 13)),
            epoch: if entry_bytes == CHECKPOINT_ENTRY_BYTES { le_u64(e, 21) } else { 0 },
        };
        if l.lsn_trim > l.lsn_last {
            return corrupt("checkpoint trim point beyond last LSN");
        }
        logs.push(l);
    }
    Ok(ControlRecord::Checkpoint(logs))
}
