//! Stable error codes of the errors a user can cause or must act on, as they appear in
//! messages (`[RA1001] …`), in ingress and admin error bodies, and in `docs/errors.md`.
//!
//! Invariants: a code's meaning never changes and a retired code is never reused; every code
//! has a row in `docs/errors.md` (checked by `tests/tidy.rs`).

use std::fmt;

/// One stable code. The number groups: 1xxx a limit was broken by the input (the invocation
/// fails, the partition goes on), 2xxx the server cannot take the work right now (retry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// A state key (with its service and object key) is over the store's key limit.
    StateKeyTooLarge,
    /// An invocation's journal reached its entry limit.
    JournalTooLong,
    /// A virtual object's inbox is full.
    InboxFull,
    /// An object or workflow key is over its limit.
    KeyTooLarge,
    /// A message or payload is over its size limit.
    MessageTooLarge,
    /// A handler that may not write state tried to.
    StateWriteNotAllowed,
    /// An invocation or awakeable id in a command or a request is malformed.
    InvalidId,
    /// The disk is full: new work is refused until space returns; nothing accepted is lost.
    DiskFull,
    /// The partition owning the request is not running (starting, recovering, or stopped).
    PartitionUnavailable,
    /// Too many requests at once: the ingress concurrency or body-memory cap is reached.
    Overloaded,
}

impl Code {
    /// Every code, for the documentation check.
    pub const ALL: [Code; 10] = [
        Code::StateKeyTooLarge,
        Code::JournalTooLong,
        Code::InboxFull,
        Code::KeyTooLarge,
        Code::MessageTooLarge,
        Code::StateWriteNotAllowed,
        Code::InvalidId,
        Code::DiskFull,
        Code::PartitionUnavailable,
        Code::Overloaded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Code::StateKeyTooLarge => "RA1001",
            Code::JournalTooLong => "RA1002",
            Code::InboxFull => "RA1003",
            Code::KeyTooLarge => "RA1004",
            Code::MessageTooLarge => "RA1005",
            Code::StateWriteNotAllowed => "RA1006",
            Code::InvalidId => "RA1007",
            Code::DiskFull => "RA2001",
            Code::PartitionUnavailable => "RA2002",
            Code::Overloaded => "RA2003",
        }
    }

    /// The HTTP-like status an invocation failing with this code completes with, and the
    /// status the ingress answers with.
    pub const fn http_status(self) -> u16 {
        match self {
            Code::StateKeyTooLarge | Code::KeyTooLarge | Code::MessageTooLarge => 413,
            Code::JournalTooLong => 413,
            Code::InboxFull => 429,
            Code::StateWriteNotAllowed | Code::InvalidId => 400,
            Code::Overloaded => 429,
            Code::DiskFull | Code::PartitionUnavailable => 503,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message prefixed with its code: `[RA1001] …`.
pub fn message(code: Code, text: impl fmt::Display) -> String {
    format!("[{code}] {text}")
}
