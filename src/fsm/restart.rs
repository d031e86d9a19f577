//! Restart-as-new: the prefix of a completed invocation's journal that a new invocation starts
//! from.
//!
//! Invariants:
//! - A prefix is usable only when every completion its commands wait for is in it: the SDK
//!   replays those commands, and the server never produces their results again, so a missing
//!   one would leave the new invocation waiting forever.
//! - Pure functions of the journal: the admin API (to answer 400 before appending) and
//!   `apply` (to decide, deterministically) agree.
//! - Cancel signals are not carried over: the new invocation was not canceled.

use bytes::Bytes;
use prost::Message;

use super::ty;
use crate::protocol::messages as pm;

/// Why a journal prefix cannot start a new invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("journal entry index {from} is out of range: the journal has {len} entries")]
    OutOfRange { from: u32, len: u32 },
    #[error(
        "the journal prefix up to entry {from} is incomplete: the command at entry {index} \
         waits for completion {completion}, which comes after it; choose another entry"
    )]
    Incomplete { from: u32, index: u32, completion: u32 },
    #[error("journal entry {index} cannot be read: {reason}")]
    Undecodable { index: u32, reason: String },
}

/// The entries to start from: `journal[0..=from]` without cancel signals, checked complete.
pub fn journal_prefix(
    journal: &[(u16, Bytes)],
    from: u32,
) -> Result<Vec<(u16, Bytes)>, PrefixError> {
    let len = journal.len() as u32;
    if from >= len {
        return Err(PrefixError::OutOfRange { from, len });
    }
    let prefix = &journal[..=from as usize];
    let mut awaited = Vec::new();
    let mut present = Vec::new();
    let mut kept = Vec::with_capacity(prefix.len());
    for (i, (t, payload)) in prefix.iter().enumerate() {
        let bad = |e: prost::DecodeError| PrefixError::Undecodable {
            index: i as u32,
            reason: e.to_string(),
        };
        if is_notification(*t) {
            let n = pm::Notification::decode(payload.as_ref()).map_err(bad)?;
            match n.id {
                Some(pm::NotificationId::CompletionId(c)) => present.push(c),
                Some(pm::NotificationId::SignalId(super::SIGNAL_CANCEL)) => continue,
                _ => {}
            }
        } else {
            for c in awaited_completions(*t, payload).map_err(bad)? {
                awaited.push((i as u32, c));
            }
        }
        kept.push((*t, payload.clone()));
    }
    if let Some((index, completion)) = awaited.into_iter().find(|(_, c)| !present.contains(c)) {
        return Err(PrefixError::Incomplete { from, index, completion });
    }
    Ok(kept)
}

fn is_notification(t: u16) -> bool {
    (pm::NOTIFICATION_ID_FIRST..pm::CUSTOM_ID_FIRST).contains(&t)
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

/// What the state machine remembers of the notifications in a journal: the completion ids,
/// signal indexes and signal names it holds (so a second delivery of one is ignored).
pub fn received(journal: &[(u16, Bytes)]) -> (Vec<u32>, Vec<u32>, Vec<String>) {
    let (mut completions, mut signals, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for (t, payload) in journal {
        if !is_notification(*t) {
            continue;
        }
        match pm::Notification::decode(payload.as_ref()).ok().and_then(|n| n.id) {
            Some(pm::NotificationId::CompletionId(c)) => completions.push(c),
            Some(pm::NotificationId::SignalId(i)) => signals.push(i),
            Some(pm::NotificationId::SignalName(n)) => names.push(n),
            None => {}
        }
    }
    (completions, signals, names)
}
