//! Framing of the service protocol: every message on an invocation stream is an 8-byte header
//! followed by a protobuf payload.
//!
//! The header is one big-endian `u64`:
//!
//! ```text
//! bits 63..48  message type (u16)
//! bit  47      REQUESTED_ACK flag
//! bits 46..32  reserved, always 0
//! bits 31..0   payload length in bytes (header excluded)
//! ```
//!
//! This module owns that layout and nothing else: it does no I/O and knows no message types.
//! [`Decoder`] is sans-IO: callers `push` whatever bytes the transport delivered (chunks may
//! split or coalesce frames arbitrarily) and pull complete [`Frame`]s.
//!
//! Invariants:
//! - A frame is emitted only when its whole payload is buffered; its payload is exactly the
//!   length announced in the header.
//! - A header with reserved bits set, or announcing more than the decoder's
//!   `message_bytes_max`, is an error before any payload byte is waited for, so a hostile peer
//!   cannot make the decoder buffer more than `HEADER_BYTES + message_bytes_max` plus one
//!   pushed chunk.
//! - Decoding never panics, whatever the bytes. After an error the stream is unusable (every
//!   later call returns the same error): framing has no resynchronisation point.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of a frame header.
pub const HEADER_BYTES: usize = 8;

/// Default upper bound for one message payload (the real server's default networking limit).
pub const MESSAGE_BYTES_MAX: u32 = 32 * 1024 * 1024;

/// The REQUESTED_ACK bit within the 16 flag bits (bit 47 of the header).
pub const FLAG_REQUESTED_ACK: u16 = 0x8000;

/// Flag bits that must be zero (bits 46..32 of the header).
pub const FLAGS_RESERVED_MASK: u16 = !FLAG_REQUESTED_ACK;

const _: () = assert!(HEADER_BYTES == std::mem::size_of::<u64>());
const _: () = assert!(MESSAGE_BYTES_MAX as u64 <= u32::MAX as u64);
const _: () = assert!(FLAGS_RESERVED_MASK == 0x7FFF);

/// A complete message frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Message type id (see `messages::MessageType`).
    pub ty: u16,
    /// Whether the sender set the REQUESTED_ACK flag.
    pub requested_ack: bool,
    /// The protobuf payload, exactly as received.
    pub payload: Bytes,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type id.
    pub ty: u16,
    /// The 16 flag bits (only [`FLAG_REQUESTED_ACK`] may be set in a valid header).
    pub flags: u16,
    /// Payload length announced by the header.
    pub length_bytes: u32,
}

impl Header {
    /// Packs the header into its wire value.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.ty) << 48) | (u64::from(self.flags) << 32) | u64::from(self.length_bytes)
    }

    /// Unpacks a wire value; does not validate the flags.
    pub fn from_u64(raw: u64) -> Self {
        Header { ty: (raw >> 48) as u16, flags: (raw >> 32) as u16, length_bytes: raw as u32 }
    }

    /// Whether the REQUESTED_ACK flag is set.
    pub fn requested_ack(self) -> bool {
        self.flags & FLAG_REQUESTED_ACK != 0
    }
}

/// Why a byte stream is not a valid sequence of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A header has bits 46..32 set.
    #[error(
        "protocol frame header {header:#018x} (message type {ty:#06x}) has reserved flag bits \
         set; the peer speaks a different protocol or the stream is corrupt"
    )]
    ReservedBits { header: u64, ty: u16 },
    /// A header announces a payload larger than the configured limit.
    #[error(
        "protocol message of type {ty:#06x} announces {length_bytes} bytes, more than the limit \
         of {message_bytes_max} bytes; raise the message size limit or send smaller payloads"
    )]
    TooLarge { ty: u16, length_bytes: u32, message_bytes_max: u32 },
    /// The stream ended in the middle of a frame.
    #[error("protocol stream ended inside a frame ({buffered_bytes} bytes of it were received)")]
    Truncated { buffered_bytes: usize },
}

/// Appends one frame (`header ‖ payload`) to `out`.
///
/// # Panics
/// If `flags` has reserved bits set or `payload` is longer than `u32::MAX` bytes: both are bugs
/// in the caller, never a property of received data.
pub fn encode_frame(ty: u16, flags: u16, payload: &[u8], out: &mut BytesMut) {
    assert_eq!(flags & FLAGS_RESERVED_MASK, 0, "reserved frame flags set: {flags:#06x}");
    let length_bytes = u32::try_from(payload.len()).expect("frame payload longer than u32::MAX");
    let header = Header { ty, flags, length_bytes };
    out.reserve(HEADER_BYTES + payload.len());
    out.put_u64(header.to_u64());
    out.put_slice(payload);
}

/// Sans-IO frame decoder: push bytes in, pull frames out.
#[derive(Debug)]
pub struct Decoder {
    buffer: BytesMut,
    message_bytes_max: u32,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder with the default limit [`MESSAGE_BYTES_MAX`].
    pub fn new() -> Self {
        Decoder::with_message_bytes_max(MESSAGE_BYTES_MAX)
    }

    /// A decoder rejecting payloads longer than `message_bytes_max`.
    pub fn with_message_bytes_max(message_bytes_max: u32) -> Self {
        Decoder { buffer: BytesMut::new(), message_bytes_max }
    }

    /// The payload limit of this decoder.
    pub fn message_bytes_max(&self) -> u32 {
        self.message_bytes_max
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Returns the next complete frame, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(header_bytes) = self.buffer.first_chunk::<HEADER_BYTES>() else {
            return Ok(None);
        };
        let raw = u64::from_be_bytes(*header_bytes);
        let header = Header::from_u64(raw);
        if header.flags & FLAGS_RESERVED_MASK != 0 {
            return Err(FrameError::ReservedBits { header: raw, ty: header.ty });
        }
        if header.length_bytes > self.message_bytes_max {
            return Err(FrameError::TooLarge {
                ty: header.ty,
                length_bytes: header.length_bytes,
                message_bytes_max: self.message_bytes_max,
            });
        }
        // Lossless: u32 fits in usize on every platform we build for.
        let frame_bytes = HEADER_BYTES + header.length_bytes as usize;
        if self.buffer.len() < frame_bytes {
            // Make room once for the whole frame instead of growing chunk by chunk.
            self.buffer.reserve(frame_bytes - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(HEADER_BYTES);
        let payload = self.buffer.split_to(frame_bytes - HEADER_BYTES).freeze();
        debug_assert_eq!(payload.len(), header.length_bytes as usize);
        Ok(Some(Frame { ty: header.ty, requested_ack: header.requested_ack(), payload }))
    }

    /// Call at end of stream: an error if a partial frame is still buffered.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated { buffered_bytes: self.buffer.len() })
        }
    }
}

const _: () = assert!(std::mem::size_of::<usize>() >= std::mem::size_of::<u32>());

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(frames: &[(u16, bool, Vec<u8>)]) -> BytesMut {
        let mut out = BytesMut::new();
        for (ty, ack, payload) in frames {
            let flags = if *ack { FLAG_REQUESTED_ACK } else { 0 };
            encode_frame(*ty, flags, payload, &mut out);
        }
        out
    }

    fn drain(decoder: &mut Decoder) -> Vec<(u16, bool, Vec<u8>)> {
        let mut got = Vec::new();
        while let Some(frame) = decoder.next_frame().expect("valid stream") {
            got.push((frame.ty, frame.requested_ack, frame.payload.to_vec()));
        }
        got
    }

    #[test]
    fn header_layout_is_big_endian_type_flags_length() {
        let mut out = BytesMut::new();
        encode_frame(0x0005, FLAG_REQUESTED_ACK, &[0xAA, 0xBB, 0xCC], &mut out);
        assert_eq!(&out[..], &[0x00, 0x05, 0x80, 0x00, 0x00, 0x00, 0x00, 0x03, 0xAA, 0xBB, 0xCC]);
        let mut out = BytesMut::new();
        encode_frame(0xFBFF, 0, &[], &mut out);
        assert_eq!(&out[..], &[0xFB, 0xFF, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn zero_length_payload_is_a_frame() {
        let mut decoder = Decoder::new();
        decoder.push(&encode_all(&[(3, false, vec![])]));
        assert_eq!(drain(&mut decoder), vec![(3, false, vec![])]);
        decoder.finish().unwrap();
    }

    #[test]
    fn byte_by_byte_feeding_yields_the_same_frames() {
        let frames = vec![
            (0x0000, false, b"start".to_vec()),
            (0x0005, true, vec![1; 300]),
            (0x0003, false, vec![]),
            (0x8002, false, vec![0x22, 0x00]),
        ];
        let bytes = encode_all(&frames);
        let mut decoder = Decoder::new();
        let mut got = Vec::new();
        for b in bytes.iter() {
            decoder.push(std::slice::from_ref(b));
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, frames);
        decoder.finish().unwrap();
    }

    #[test]
    fn reserved_bits_are_rejected() {
        for bit in 32..47 {
            let raw: u64 = (0x0400u64 << 48) | (1u64 << bit);
            let mut decoder = Decoder::new();
            decoder.push(&raw.to_be_bytes());
            let err = decoder.next_frame().unwrap_err();
            assert_eq!(err, FrameError::ReservedBits { header: raw, ty: 0x0400 });
            // Sticky: the stream stays broken.
            assert_eq!(decoder.next_frame().unwrap_err(), err);
        }
    }

    #[test]
    fn oversized_message_is_rejected_from_the_header_alone() {
        let mut decoder = Decoder::with_message_bytes_max(16);
        let mut out = BytesMut::new();
        encode_frame(0x0401, 0, &[0; 16], &mut out);
        decoder.push(&out);
        assert!(decoder.next_frame().unwrap().is_some());
        let raw: u64 = (0x0401u64 << 48) | 17;
        decoder.push(&raw.to_be_bytes());
        assert_eq!(
            decoder.next_frame().unwrap_err(),
            FrameError::TooLarge { ty: 0x0401, length_bytes: 17, message_bytes_max: 16 }
        );
        let raw: u64 = (0x0401u64 << 48) | u64::from(u32::MAX);
        let mut decoder = Decoder::new();
        decoder.push(&raw.to_be_bytes());
        assert!(matches!(decoder.next_frame(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn truncated_stream_is_reported_by_finish() {
        let mut decoder = Decoder::new();
        let bytes = encode_all(&[(0x0401, false, vec![7; 10])]);
        decoder.push(&bytes[..12]);
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered_bytes: 12 }));
        decoder.push(&bytes[12..]);
        assert_eq!(drain(&mut decoder).len(), 1);
        decoder.finish().unwrap();
    }

    proptest! {
        #[test]
        fn any_split_of_any_frames_round_trips(
            frames in proptest::collection::vec(
                (any::<u16>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)),
                0..8,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let bytes = encode_all(&frames);
            let mut cuts: Vec<usize> =
                cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut decoder = Decoder::new();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts {
                decoder.push(&bytes[from..cut]);
                from = cut;
                got.extend(drain(&mut decoder));
            }
            prop_assert_eq!(got, frames);
            prop_assert_eq!(decoder.buffered_bytes(), 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            max in 0u32..64,
        ) {
            let mut decoder = Decoder::with_message_bytes_max(max);
            decoder.push(&bytes);
            let mut frames = 0;
            while let Ok(Some(frame)) = decoder.next_frame() {
                prop_assert!(frame.payload.len() <= max as usize);
                frames += 1;
                prop_assert!(frames <= bytes.len() / HEADER_BYTES);
            }
        }
    }
}
