//! Bodies of the WAL's own control records (records of log [`crate::LOG_ID_CONTROL`]).
//!
//! Control records keep per-log metadata in the WAL itself, so that it is durable through the
//! same group commit as data and needs no side file: trims, seals, and a checkpoint of every
//! log's state written at the start of each segment. Because every live segment starts with a
//! checkpoint, recycling old segments never loses a log's trim point or last LSN.

use crate::{le_u32, le_u64, DecodeError, LogId, Lsn};

const TAG_CHECKPOINT: u8 = 1;
const TAG_TRIM: u8 = 2;
const TAG_SEAL: u8 = 3;
const CHECKPOINT_ENTRY_BYTES: usize = 4 + 1 + 8 + 8;
const CHECKPOINT_FLAG_SEALED: u8 = 1;

/// One log's state in a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub log_id: LogId,
    /// Records at or below this LSN are trimmed.
    pub lsn_trim: Lsn,
    /// The last LSN ever appended to this log (durable when the checkpoint is).
    pub lsn_last: Lsn,
    pub sealed: bool,
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
                let mut out = Vec::with_capacity(5 + logs.len() * CHECKPOINT_ENTRY_BYTES);
                out.push(TAG_CHECKPOINT);
                out.extend_from_slice(&(logs.len() as u32).to_le_bytes());
                for l in logs {
                    assert!(l.lsn_trim <= l.lsn_last, "checkpoint trim point beyond last LSN");
                    out.extend_from_slice(&l.log_id.0.to_le_bytes());
                    out.push(if l.sealed { CHECKPOINT_FLAG_SEALED } else { 0 });
                    out.extend_from_slice(&l.lsn_trim.0.to_le_bytes());
                    out.extend_from_slice(&l.lsn_last.0.to_le_bytes());
                }
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
        }
    }

    /// Decodes a control record body. Never panics.
    pub fn decode(b: &[u8]) -> Result<ControlRecord, DecodeError> {
        let corrupt = |reason| Err(DecodeError::Corrupt { reason });
        let Some((&tag, rest)) = b.split_first() else {
            return corrupt("empty control record");
        };
        match tag {
            TAG_CHECKPOINT => {
                if rest.len() < 4 {
                    return corrupt("checkpoint too short");
                }
                let n = le_u32(rest, 0) as usize;
                let entries = &rest[4..];
                if entries.len() != n.saturating_mul(CHECKPOINT_ENTRY_BYTES) {
                    return corrupt("checkpoint length does not match its count");
                }
                let mut logs = Vec::with_capacity(n);
                for e in entries.chunks_exact(CHECKPOINT_ENTRY_BYTES) {
                    let flags = e[4];
                    if flags & !CHECKPOINT_FLAG_SEALED != 0 {
                        return Err(DecodeError::Unsupported {
                            what: "checkpoint flags",
                            value: flags.into(),
                        });
                    }
                    let l = LogCheckpoint {
                        log_id: LogId(le_u32(e, 0)),
                        sealed: flags & CHECKPOINT_FLAG_SEALED != 0,
                        lsn_trim: Lsn(le_u64(e, 5)),
                        lsn_last: Lsn(le_u64(e, 13)),
                    };
                    if l.lsn_trim > l.lsn_last {
                        return corrupt("checkpoint trim point beyond last LSN");
                    }
                    logs.push(l);
                }
                Ok(ControlRecord::Checkpoint(logs))
            }
            TAG_TRIM if rest.len() == 12 => Ok(ControlRecord::Trim {
                log_id: LogId(le_u32(rest, 0)),
                lsn: Lsn(le_u64(rest, 4)),
            }),
            TAG_SEAL if rest.len() == 4 => {
                Ok(ControlRecord::Seal { log_id: LogId(le_u32(rest, 0)) })
            }
            TAG_TRIM | TAG_SEAL => corrupt("control record length"),
            other => {
                Err(DecodeError::Unsupported { what: "control record tag", value: other.into() })
            }
        }
    }
}
