//! Restart-as-new: which entries of a completed invocation's journal a new invocation starts
//! from.
//!
//! Invariants:
//! - The new journal is entries `0..=from` of the old one, followed by the completions those
//!   entries' commands wait for that came later in the old journal (in their old order): the
//!   SDK replays the commands, and the server never produces their results again, so a
//!   result found nowhere makes the request invalid (it would wait forever).
//! - The journal is read in pages of [`PAGE_ENTRIES`]; planning keeps only completion ids and
//!   entry indexes, so memory does not grow with the journal.
//! - Pure functions of the journal: the admin API (to answer 400 before appending) and
//!   `apply` (to decide, deterministically) agree.

use bytes::Bytes;
use prost::Message;

use super::ty;
use crate::protocol::messages as pm;
use crate::store::StoreError;

/// Journal entries read at once.
pub const PAGE_ENTRIES: u32 = 256;

/// Why a journal prefix cannot start a new invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("journal entry index {from} is out of range: the journal has {len} entries")]
    OutOfRange { from: u32, len: u32 },
    #[error(
        "the journal up to entry {from} cannot be restarted from: the command at entry {index} \
         waits for completion {completion}, which the journal does not hold"
    )]
    Incomplete { from: u32, index: u32, completion: u32 },
    #[error("journal entry {index} cannot be read: {reason}")]
    Undecodable { index: u32, reason: String },
}

/// How to build the new journal: entries `0..=from`, then the entries at `extra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub from: u32,
    /// Indexes after `from` of completions the kept commands wait for, in order.
    pub extra: Vec<u32>,
}

/// Plans the new journal of a restart from entry `from` of a journal of `len` entries;
/// `page(start, n)` reads entries `start..start + n`.
pub fn plan(
    len: u32,
    from: u32,
    mut page: impl FnMut(u32, u32) -> Result<Vec<(u16, Bytes)>, StoreError>,
) -> Result<Result<Plan, PrefixError>, StoreError> {
    if from >= len {
        return Ok(Err(PrefixError::OutOfRange { from, len }));
    }
    let mut awaited: Vec<(u32, u32)> = Vec::new();
    let mut present: Vec<u32> = Vec::new();
    let mut start = 0;
    while start <= from {
        let n = PAGE_ENTRIES.min(from + 1 - start);
        for (i, (t, payload)) in page(start, n)?.iter().enumerate() {
            let index = start + i as u32;
            let bad =
                |e: prost::DecodeError| PrefixError::Undecodable { index, reason: e.to_string() };
            if is_notification(*t) {
                match completion_of(payload).map_err(bad) {
                    Ok(Some(c)) => present.push(c),
                    Ok(None) => {}
                    Err(e) => return Ok(Err(e)),
                }
            } else {
                match awaited_completions(*t, payload).map_err(bad) {
                    Ok(cs) => awaited.extend(cs.into_iter().map(|c| (index, c))),
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        start += n;
    }
    let mut missing: Vec<(u32, u32)> =
        awaited.into_iter().filter(|(_, c)| !present.contains(c)).collect();
    let mut extra = Vec::new();
    let mut start = from + 1;
    while !missing.is_empty() && start < len {
        let n = PAGE_ENTRIES.min(len - start);
        for (i, (t, payload)) in page(start, n)?.iter().enumerate() {
            if !is_notification(*t) {
                continue;
            }
            let index = start + i as u32;
            if let Ok(Some(c)) = completion_of(payload) {
                if let Some(pos) = missing.iter().position(|(_, m)| *m == c) {
                    missing.swap_remove(pos);
                    extra.push(index);
                }
            }
        }
        start += n;
    }
    if let Some((index, completion)) = missing.into_iter().min() {
        return Ok(Err(PrefixError::Incomplete { from, index, completion }));
    }
    Ok(Ok(Plan { from, extra }))
}

fn is_notification(t: u16) -> bool {
    (pm::NOTIFICATION_ID_FIRST..pm::CUSTOM_ID_FIRST).contains(&t)
}

fn completion_of(payload: &[u8]) -> Result<Option<u32>, prost::DecodeError> {
    Ok(match pm::Notification::decode(payload)?.id {
        Some(pm::NotificationId::CompletionId(c)) => Some(c),
        _ => None,
    })
}

/// The completion ids a command's result arrives under.
fn awaited_completions(t: u16, payload: &[u8]) -> Result<Vec<u32>, prost::DecodeError> {
    Ok(match t {
        ty::GET_LAZY_STATE => {
            vec![pm::GetLazyStateCommandMessage::decode(payload)?.result_completion_id]
        }
        ty::GET_LAZY_STATE_KEYS => {
            vec![pm::GetLazyStateKeysCommandMessage::decode(payload)?.result_completion_id]
        }
        ty::GET_PROMISE => {
            vec![pm::GetPromiseCommandMessage::decode(payload)?.result_completion_id]
        }
        ty::PEEK_PROMISE => {
            vec![pm::PeekPromiseCommandMessage::decode(payload)?.result_completion_id]
        }
        ty::COMPLETE_PROMISE => {
            vec![pm::CompletePromiseCommandMessage::decode(payload)?.result_completion_id]
        }
        ty::SLEEP => vec![pm::SleepCommandMessage::decode(payload)?.result_completion_id],
        ty::CALL => {
            let m = pm::CallCommandMessage::decode(payload)?;
            vec![m.invocation_id_notification_idx, m.result_completion_id]
        }
        ty::ONE_WAY_CALL => {
            vec![pm::OneWayCallCommandMessage::decode(payload)?.invocation_id_notification_idx]
        }
        ty::RUN => vec![pm::RunCommandMessage::decode(payload)?.result_completion_id],
        ty::ATTACH_INVOCATION => {
            vec![pm::AttachInvocationCommandMessage::decode(payload)?.result_completion_id]
        }
        ty::GET_INVOCATION_OUTPUT => {
            vec![pm::GetInvocationOutputCommandMessage::decode(payload)?.result_completion_id]
        }
        _ => Vec::new(),
    })
}

/// What the state machine remembers of the notifications in `entries`: the completion ids,
/// signal indexes and signal names they hold (so a second delivery of one is ignored).
pub fn received(entries: &[(u16, Bytes)], into: &mut (Vec<u32>, Vec<u32>, Vec<String>)) {
    for (t, payload) in entries {
        if !is_notification(*t) {
            continue;
        }
        match pm::Notification::decode(payload.as_ref()).ok().and_then(|n| n.id) {
            Some(pm::NotificationId::CompletionId(c)) => into.0.push(c),
            Some(pm::NotificationId::SignalId(i)) => into.1.push(i),
            Some(pm::NotificationId::SignalName(n)) => into.2.push(n),
            None => {}
        }
    }
}
