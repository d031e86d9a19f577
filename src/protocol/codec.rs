//! Typed decoding of what an SDK sends on an invocation stream, and framed encoding of what
//! the server sends back.
//!
//! This module owns the classification of message type ids on receipt:
//! 1. the explicit table of SDK → server messages (control messages and commands);
//! 2. ids the server itself sends (`StartMessage`, acks, known notifications) are a protocol
//!    violation when they come from an SDK;
//! 3. any other id with `(id & 0xFC00) != 0` is a custom entry, kept opaque;
//! 4. any other id below `0x0400` is an unknown control message: an error.
//!
//! Invariants:
//! - A decoded command keeps the exact bytes it was decoded from ([`RawCommand::raw`]): the
//!   server stores and replays commands byte for byte, never re-encodes them.
//! - Decoding never panics on arbitrary payloads (prost bounds nesting depth and lengths).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;

use super::framing::{self, HEADER_BYTES};
use super::messages::*;

/// Why a payload could not be turned into a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a valid encoding of the message its id names.
    #[error("cannot decode {name} (type {ty:#06x}): {source}; the SDK sent a malformed message")]
    Protobuf { ty: u16, name: &'static str, source: prost::DecodeError },
    /// A control id (below 0x0400) that this server does not know.
    #[error(
        "unknown control message type {ty:#06x}; the SDK speaks a newer protocol than the \
         negotiated one, re-register the deployment or use a supported SDK version"
    )]
    UnknownControl { ty: u16 },
    /// A message only the server may send arrived from the SDK.
    #[error("the SDK sent {name} ({ty:#06x}), which only the server may send; protocol violation")]
    WrongDirection { ty: u16, name: &'static str },
    /// [`decode_notification`] was given an id outside the notification namespace.
    #[error("message type {ty:#06x} is not a notification")]
    NotANotification { ty: u16 },
    /// [`decode_command`] was given an id that is not a known command.
    #[error("message type {ty:#06x} is not a known command")]
    NotACommand { ty: u16 },
}

fn decode_as<M: prost::Message + Default>(ty: u16, payload: &Bytes) -> Result<M, DecodeError> {
    M::decode(payload.clone()).map_err(|source| DecodeError::Protobuf {
        ty,
        name: message_name(ty).unwrap_or("custom message"),
        source,
    })
}

macro_rules! commands {
    ($($variant:ident($message:ty) = $id:expr, name: $name_field:ident;)*) => {
        /// One decoded command (0x0400–0x0414).
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $($variant($message),)*
        }

        impl Command {
            /// Decodes a known command id; `Ok(None)` if `ty` is not one.
            pub fn decode(ty: u16, payload: &Bytes) -> Result<Option<Command>, DecodeError> {
                $(if ty == $id {
                    return decode_as::<$message>(ty, payload).map(|m| Some(Command::$variant(m)));
                })*
                Ok(None)
            }

            /// The message type id of this command.
            pub fn message_type(&self) -> u16 {
                match self {
                    $(Command::$variant(_) => $id,)*
                }
            }

            /// The observability name of the entry (field 12).
            pub fn entry_name(&self) -> &str {
                match self {
                    $(Command::$variant(m) => &m.$name_field,)*
                }
            }

            /// Protobuf encoding of the command (without frame header).
            pub fn encode_to_vec(&self) -> Vec<u8> {
                match self {
                    $(Command::$variant(m) => m.encode_to_vec(),)*
                }
            }
        }
    };
}

commands! {
    Input(InputCommandMessage) = MessageType::INPUT_COMMAND, name: name;
    Output(OutputCommandMessage) = MessageType::OUTPUT_COMMAND, name: name;
    GetLazyState(GetLazyStateCommandMessage) = MessageType::GET_LAZY_STATE_COMMAND, name: name;
    SetState(SetStateCommandMessage) = MessageType::SET_STATE_COMMAND, name: name;
    ClearState(ClearStateCommandMessage) = MessageType::CLEAR_STATE_COMMAND, name: name;
    ClearAllState(ClearAllStateCommandMessage) = MessageType::CLEAR_ALL_STATE_COMMAND, name: name;
    GetLazyStateKeys(GetLazyStateKeysCommandMessage) =
        MessageType::GET_LAZY_STATE_KEYS_COMMAND, name: name;
    GetEagerState(GetEagerStateCommandMessage) = MessageType::GET_EAGER_STATE_COMMAND, name: name;
    GetEagerStateKeys(GetEagerStateKeysCommandMessage) =
        MessageType::GET_EAGER_STATE_KEYS_COMMAND, name: name;
    GetPromise(GetPromiseCommandMessage) = MessageType::GET_PROMISE_COMMAND, name: name;
    PeekPromise(PeekPromiseCommandMessage) = MessageType::PEEK_PROMISE_COMMAND, name: name;
    CompletePromise(CompletePromiseCommandMessage) =
        MessageType::COMPLETE_PROMISE_COMMAND, name: name;
    Sleep(SleepCommandMessage) = MessageType::SLEEP_COMMAND, name: name;
    Call(CallCommandMessage) = MessageType::CALL_COMMAND, name: name;
    OneWayCall(OneWayCallCommandMessage) = MessageType::ONE_WAY_CALL_COMMAND, name: name;
    SendSignal(SendSignalCommandMessage) = MessageType::SEND_SIGNAL_COMMAND, name: entry_name;
    Run(RunCommandMessage) = MessageType::RUN_COMMAND, name: name;
    AttachInvocation(AttachInvocationCommandMessage) =
        MessageType::ATTACH_INVOCATION_COMMAND, name: name;
    GetInvocationOutput(GetInvocationOutputCommandMessage) =
        MessageType::GET_INVOCATION_OUTPUT_COMMAND, name: name;
    CompleteAwakeable(CompleteAwakeableCommandMessage) =
        MessageType::COMPLETE_AWAKEABLE_COMMAND, name: name;
}

impl Command {
    /// The completion id of the notification that will complete this command's result, if the
    /// command is completable (for `Call`, the result, not the invocation-id notification).
    pub fn result_completion_id(&self) -> Option<u32> {
        match self {
            Command::GetLazyState(m) => Some(m.result_completion_id),
            Command::GetLazyStateKeys(m) => Some(m.result_completion_id),
            Command::GetPromise(m) => Some(m.result_completion_id),
            Command::PeekPromise(m) => Some(m.result_completion_id),
            Command::CompletePromise(m) => Some(m.result_completion_id),
            Command::Sleep(m) => Some(m.result_completion_id),
            Command::Call(m) => Some(m.result_completion_id),
            Command::Run(m) => Some(m.result_completion_id),
            Command::AttachInvocation(m) => Some(m.result_completion_id),
            Command::GetInvocationOutput(m) => Some(m.result_completion_id),
            _ => None,
        }
    }

    /// For `Call` and `OneWayCall`: the completion id of the invocation-id notification (0x800E).
    pub fn invocation_id_notification_idx(&self) -> Option<u32> {
        match self {
            Command::Call(m) => Some(m.invocation_id_notification_idx),
            Command::OneWayCall(m) => Some(m.invocation_id_notification_idx),
            _ => None,
        }
    }
}

/// A decoded command together with the exact payload bytes it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RawCommand {
    pub command: Command,
    /// The payload as received; store and replay this, never a re-encoding.
    pub raw: Bytes,
}

impl RawCommand {
    /// The message type id.
    pub fn message_type(&self) -> u16 {
        self.command.message_type()
    }
}

/// A message an SDK may send on an invocation stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Suspension(SuspensionMessage),
    Error(ErrorMessage),
    End(EndMessage),
    ProposeRunCompletion(ProposeRunCompletionMessage),
    AwaitingOn(AwaitingOnMessage),
    Command(RawCommand),
    /// An id outside the table with `(ty & 0xFC00) != 0`: opaque, journaled verbatim.
    Custom {
        ty: u16,
        payload: Bytes,
    },
}

impl Message {
    /// The message type id.
    pub fn message_type(&self) -> u16 {
        match self {
            Message::Suspension(_) => MessageType::SUSPENSION,
            Message::Error(_) => MessageType::ERROR,
            Message::End(_) => MessageType::END,
            Message::ProposeRunCompletion(_) => MessageType::PROPOSE_RUN_COMPLETION,
            Message::AwaitingOn(_) => MessageType::AWAITING_ON,
            Message::Command(c) => c.message_type(),
            Message::Custom { ty, .. } => *ty,
        }
    }

    /// Whether this message ends the attempt (End, Suspension, Error).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Message::Suspension(_) | Message::Error(_) | Message::End(_))
    }
}

/// Decodes one SDK → server message from its frame's type id and payload.
pub fn decode_message(ty: u16, payload: Bytes) -> Result<Message, DecodeError> {
    match ty {
        MessageType::SUSPENSION => decode_as(ty, &payload).map(Message::Suspension),
        MessageType::ERROR => decode_as(ty, &payload).map(Message::Error),
        MessageType::END => decode_as(ty, &payload).map(Message::End),
        MessageType::PROPOSE_RUN_COMPLETION => {
            decode_as(ty, &payload).map(Message::ProposeRunCompletion)
        }
        MessageType::AWAITING_ON => decode_as(ty, &payload).map(Message::AwaitingOn),
        MessageType::START | MessageType::COMMAND_ACK | MessageType::PROPOSE_RUN_COMPLETION_ACK => {
            Err(wrong_direction(ty))
        }
        _ if is_known_notification(ty) => Err(wrong_direction(ty)),
        _ => match Command::decode(ty, &payload)? {
            Some(command) => Ok(Message::Command(RawCommand { command, raw: payload })),
            None if ty & ENTRY_ID_MASK != 0 => Ok(Message::Custom { ty, payload }),
            None => Err(DecodeError::UnknownControl { ty }),
        },
    }
}

fn wrong_direction(ty: u16) -> DecodeError {
    DecodeError::WrongDirection { ty, name: message_name(ty).unwrap_or("unknown message") }
}

/// Decodes a known command (for example a stored journal entry), keeping its raw bytes.
pub fn decode_command(ty: u16, payload: Bytes) -> Result<RawCommand, DecodeError> {
    match Command::decode(ty, &payload)? {
        Some(command) => Ok(RawCommand { command, raw: payload }),
        None => Err(DecodeError::NotACommand { ty }),
    }
}

/// Decodes any notification id (0x8000..=0xFBFF) through the shared template.
pub fn decode_notification(ty: u16, payload: Bytes) -> Result<Notification, DecodeError> {
    if !is_notification(ty) {
        return Err(DecodeError::NotANotification { ty });
    }
    decode_as(ty, &payload)
}

/// Appends `message` framed with type `ty` and no flags to `out` (server → SDK direction).
///
/// # Panics
/// If the encoding is longer than `u32::MAX` bytes (a bug: the server builds these messages).
pub fn encode_message(ty: u16, message: &impl prost::Message, out: &mut BytesMut) {
    let length_bytes = message.encoded_len();
    let header = framing::Header {
        ty,
        flags: 0,
        length_bytes: u32::try_from(length_bytes).expect("message longer than u32::MAX"),
    };
    out.reserve(HEADER_BYTES + length_bytes);
    out.put_u64(header.to_u64());
    let before = out.len();
    // Cannot fail: capacity was reserved and BytesMut grows on demand anyway.
    message.encode_raw(out);
    assert_eq!(out.len() - before, length_bytes, "prost encoded_len disagrees with encode");
}
