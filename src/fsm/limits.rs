//! Size limits of what the state machine stores, and the one check of each that both the
//! producers of records (invoker, ingress) and `apply` use.
//!
//! Invariants: these are constants, never configuration: `apply` enforces them, and a replay
//! under another configuration must reach the same decisions. Producers check first so users
//! get the error at once; `apply` checks again and fails the invocation (never the
//! partition) if a record slipped through.

use crate::codes::{self, Code};
use crate::store::schema::{self, KEY_BYTES_MAX};

/// Journal entries (commands and notifications) of one invocation.
pub const JOURNAL_ENTRIES_MAX: u32 = 65_536;
/// Invocations waiting in one virtual object's inbox.
pub const INBOX_ENTRIES_MAX: u64 = 1_000_000;
/// Waiters (attached requests and callers) one invocation keeps: each is in its status,
/// which every record of the invocation rewrites.
pub const SINKS_MAX: usize = 256;
/// Journal events kept per invocation (the last one is updated once this many exist):
/// consecutive identical transient errors are one event with a count, so this bounds the
/// rows of an invocation that keeps failing in different ways.
pub const JOURNAL_EVENTS_MAX: u32 = 64;
/// The message of a journal event (a failure's message and stack trace); longer ones are
/// cut. Bytes.
pub const JOURNAL_EVENT_MESSAGE_BYTES_MAX: usize = 4 * 1024;
/// An object or workflow key. Bytes.
pub const OBJECT_KEY_BYTES_MAX: usize = 16 * 1024;
/// A state key. Bytes. The stored key (service, object key and state key, escaped) must also
/// fit the store's key limit.
pub const STATE_KEY_BYTES_MAX: usize = 32 * 1024;

/// The state keys of one object listed at once (`GetLazyStateKeys`). Bytes.
pub const STATE_KEYS_BYTES_MAX: usize = 16 * 1024 * 1024;

const _: () = assert!(OBJECT_KEY_BYTES_MAX < KEY_BYTES_MAX);
const _: () = assert!(STATE_KEYS_BYTES_MAX < crate::store::schema::VALUE_BYTES_MAX / 2);

/// A broken limit: its code and a message saying which and by how much.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", codes::message(*.code, .detail))]
pub struct Violation {
    pub code: Code,
    pub detail: String,
}

impl Violation {
    fn new(code: Code, detail: String) -> Violation {
        Violation { code, detail }
    }
}

/// Checks a state key of object `key` of `service`.
pub fn check_state_key(service: &str, key: &str, name: &[u8]) -> Result<(), Violation> {
    if name.len() > STATE_KEY_BYTES_MAX {
        return Err(Violation::new(
            Code::StateKeyTooLarge,
            format!(
                "state key of {} bytes is over the limit of {STATE_KEY_BYTES_MAX} bytes",
                name.len()
            ),
        ));
    }
    let stored = schema::state_key(service, key.as_bytes(), name).len();
    if stored > KEY_BYTES_MAX {
        return Err(Violation::new(
            Code::StateKeyTooLarge,
            format!(
                "state key with its service and object key takes {stored} bytes, over the limit \
                 of {KEY_BYTES_MAX} bytes"
            ),
        ));
    }
    Ok(())
}

/// Checks a durable promise operation: only handlers of a workflow (keyed) have promises, and
/// the promise name is stored like a state key.
pub fn check_promise(st: &super::Status, name: &str) -> Result<(), Violation> {
    if !st.kind().is_keyed() {
        return Err(Violation::new(
            Code::StateWriteNotAllowed,
            format!(
                "handler {}/{} has no durable promises (only workflows do)",
                st.service, st.handler
            ),
        ));
    }
    check_state_key(&st.service, &st.key, name.as_bytes())
}

/// Checks an object or workflow key.
pub fn check_object_key(key: &str) -> Result<(), Violation> {
    if key.len() > OBJECT_KEY_BYTES_MAX {
        return Err(Violation::new(
            Code::KeyTooLarge,
            format!("key of {} bytes is over the limit of {OBJECT_KEY_BYTES_MAX} bytes", key.len()),
        ));
    }
    Ok(())
}

/// Checks that a journal of `len` entries may grow by one.
pub fn check_journal_grows(len: u32) -> Result<(), Violation> {
    if len >= JOURNAL_ENTRIES_MAX {
        return Err(Violation::new(
            Code::JournalTooLong,
            format!("the journal reached its limit of {JOURNAL_ENTRIES_MAX} entries"),
        ));
    }
    Ok(())
}

/// Checks that an inbox of `len` entries may grow by one.
pub fn check_inbox_grows(len: u64) -> Result<(), Violation> {
    if len >= INBOX_ENTRIES_MAX {
        return Err(Violation::new(
            Code::InboxFull,
            format!("the object's inbox holds {len} invocations, its limit is {INBOX_ENTRIES_MAX}"),
        ));
    }
    Ok(())
}

/// Entries that may wait for an object before a state edit of it is refused instead of
/// queued behind them: an edit carries a whole state (up to the admin API's body limit), so
/// this bounds what edits can pile up behind a holder that does not finish.
pub const STATE_EDIT_QUEUE_BEHIND_MAX: u64 = 1_000;

/// Checks that a state edit may queue behind the `len` entries waiting for its object.
pub fn check_state_edit_queues(len: u64) -> Result<(), Violation> {
    if len >= STATE_EDIT_QUEUE_BEHIND_MAX {
        return Err(Violation::new(
            Code::InboxFull,
            format!(
                "{len} entries wait for the object; a state edit queues behind at most \
                 {STATE_EDIT_QUEUE_BEHIND_MAX}"
            ),
        ));
    }
    Ok(())
}

/// State read at most to check the version of a state edit (`ModifyState`); a larger state
/// cannot be edited with a version check. Bytes.
pub const STATE_VERSION_BYTES_MAX: usize = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_are_checked_with_their_prefix() {
        assert!(check_state_key("S", "k", &[b'x'; 100]).is_ok());
        let e = check_state_key("S", "k", &[b'x'; STATE_KEY_BYTES_MAX + 1]).unwrap_err();
        assert_eq!(e.code, Code::StateKeyTooLarge);
        assert!(e.to_string().starts_with("[RA1001] state key of 32769 bytes"), "{e}");
        // Zero bytes double when escaped: a key under the raw limit can still be too large.
        let zeros = vec![0u8; STATE_KEY_BYTES_MAX];
        let big_object = "k".repeat(OBJECT_KEY_BYTES_MAX);
        assert!(check_state_key("S", &big_object, &zeros).is_err());
    }

    #[test]
    fn journal_and_inbox_limits() {
        assert!(check_journal_grows(JOURNAL_ENTRIES_MAX - 1).is_ok());
        assert_eq!(
            check_journal_grows(JOURNAL_ENTRIES_MAX).unwrap_err().code,
            Code::JournalTooLong
        );
        assert!(check_inbox_grows(INBOX_ENTRIES_MAX - 1).is_ok());
        assert_eq!(check_inbox_grows(INBOX_ENTRIES_MAX).unwrap_err().code, Code::InboxFull);
        assert_eq!(
            check_object_key(&"k".repeat(OBJECT_KEY_BYTES_MAX + 1)).unwrap_err().code,
            Code::KeyTooLarge
        );
    }
}
