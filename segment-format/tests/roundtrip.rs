//! Round trips and the decode error taxonomy.
//!
//! Goal: whatever a writer encodes decodes to the same values, and every way bytes can go wrong
//! on disk (never written, torn, flipped, stale, misdirected, written by a newer version) is
//! reported as the right `DecodeError` variant, never as `Ok` with other content and never as
//! a panic. Method: proptest round trips over headers (of every readable version), record
//! frames, batches (plain and zstd), control records (and version 1 checkpoints, read but no
//! longer written) and runs of frames; exhaustive truncation and single-bit-flip sweeps over
//! sample frames; and hand-crafted frames (with a re-sealed CRC where a check sits behind the
//! checksum) that hit each error variant and each `Corrupt` reason.

mod support;

use proptest::prelude::*;
use segment_format::{
    checkpoint_body_bytes, decode_frame, encode_batch_frame, encode_record_frame, frame_bytes_for,
    Compression, ControlRecord, DecodeError, Frame, FrameKind, LogCheckpoint, LogId, Lsn, Position,
    Record, RecordRef, SegmentHeader, SegmentId, Seq, BATCH_BODY_BYTES_MAX, BATCH_RECORDS_MAX,
    CHECKPOINT_ENTRY_BYTES, FORMAT_VERSIONS_READABLE, FRAME_ALIGN_BYTES, FRAME_HEADER_BYTES,
    RECORD_BODY_BYTES_MAX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_HEADER_BYTES,
    SEGMENT_HEADER_USED_BYTES,
};
use support::{
    encode_checkpoint_v1, field, get_u32, header_field, put_u16, put_u32, put_u64, reseal_batch,
    reseal_frame, reseal_header, tag, FLAG_ZSTD,
};

// ---- strategies ------------------------------------------------------------------------------

fn arb_record(body_bytes_max: usize) -> impl Strategy<Value = Record> {
    (
        any::<u32>(),
        1..=u64::MAX,
        any::<u64>(),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..=body_bytes_max),
            // Compressible bodies, so that zstd batches are sometimes actually compressed.
            (any::<u8>(), 0..=body_bytes_max).prop_map(|(b, n)| vec![b; n]),
        ],
    )
        .prop_map(|(log_id, lsn, timestamp_ms, body)| Record {
            log_id: LogId(log_id),
            lsn: Lsn(lsn),
            timestamp_ms,
            body,
        })
}

fn arb_position() -> impl Strategy<Value = Position> {
    (any::<u64>(), 0..SEGMENT_BYTES_MAX / FRAME_ALIGN_BYTES as u64).prop_map(|(id, slot)| {
        Position { segment_id: SegmentId(id), offset: slot * FRAME_ALIGN_BYTES as u64 }
    })
}

fn arb_seq() -> impl Strategy<Value = Seq> {
    (1..=u64::MAX).prop_map(Seq)
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::None), (1..=3i32).prop_map(Compression::Zstd)]
}

fn arb_header() -> impl Strategy<Value = SegmentHeader> {
    (
        any::<u64>(),
        any::<u64>(),
        1..=u64::MAX,
        any::<u64>(),
        SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX,
        0..=SEGMENT_BYTES_MAX as u32,
        // Segments written by an earlier version stay readable.
        prop::sample::select(FORMAT_VERSIONS_READABLE),
    )
        .prop_map(|(id, wal_id, first_seq, created_ms, segment_bytes, prev_end, version)| {
            SegmentHeader {
                format_version: version,
                ..SegmentHeader::new(
                    SegmentId(id),
                    wal_id,
                    Seq(first_seq),
                    created_ms,
                    segment_bytes,
                    prev_end,
                )
            }
        })
}

fn arb_log_checkpoint() -> impl Strategy<Value = LogCheckpoint> {
    (any::<u32>(), any::<u64>(), any::<u64>(), any::<bool>(), any::<u64>()).prop_map(
        |(log_id, a, b, sealed, epoch)| LogCheckpoint {
            log_id: LogId(log_id),
            lsn_trim: Lsn(a.min(b)),
            lsn_last: Lsn(a.max(b)),
            sealed,
            epoch,
        },
    )
}

fn arb_control() -> impl Strategy<Value = ControlRecord> {
    prop_oneof![
        prop::collection::vec(arb_log_checkpoint(), 0..20).prop_map(ControlRecord::Checkpoint),
        (any::<u32>(), any::<u64>())
            .prop_map(|(l, lsn)| ControlRecord::Trim { log_id: LogId(l), lsn: Lsn(lsn) }),
        any::<u32>().prop_map(|l| ControlRecord::Seal { log_id: LogId(l) }),
        (any::<u32>(), any::<u64>())
            .prop_map(|(l, epoch)| ControlRecord::Fence { log_id: LogId(l), epoch }),
    ]
}

fn refs(records: &[Record]) -> Vec<RecordRef<'_>> {
    records.iter().map(Record::as_ref).collect()
}

// ---- round trips -----------------------------------------------------------------------------

proptest! {
    #[test]
    fn header_round_trips(h in arb_header(), junk in any::<u8>()) {
        // The rest of the block is not the header's business: encode touches only 64 bytes.
        let mut block = vec![junk; SEGMENT_HEADER_BYTES];
        h.encode(&mut block);
        prop_assert!(block[SEGMENT_HEADER_USED_BYTES..].iter().all(|&b| b == junk));
        prop_assert_eq!(SegmentHeader::decode(&block), Ok(h));
        prop_assert_eq!(SegmentHeader::decode(&block[..SEGMENT_HEADER_USED_BYTES]), Ok(h));
    }

    #[test]
    fn record_frame_round_trips(
        r in arb_record(300),
        at in arb_position(),
        seq in arb_seq(),
        prefix in prop::collection::vec(any::<u8>(), 0..16),
        trailing in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut out = prefix.clone();
        let n = encode_record_frame(&mut out, at, seq, r.as_ref());
        prop_assert_eq!(&out[..prefix.len()], &prefix[..], "appends, never rewrites");
        prop_assert_eq!(n, frame_bytes_for(r.body.len()));
        prop_assert_eq!(n as usize, out.len() - prefix.len());
        prop_assert_eq!(n % FRAME_ALIGN_BYTES as u64, 0);
        let mut buf = out[prefix.len()..].to_vec();
        // Whatever follows the frame (the next frame, padding, junk) does not matter.
        buf.extend_from_slice(&trailing);
        let expected = Frame { kind: FrameKind::Record, seq, len_bytes: n, records: vec![r] };
        prop_assert_eq!(decode_frame(&buf, at), Ok(expected));
    }

    #[test]
    fn batch_round_trips(
        records in prop::collection::vec(arb_record(200), 1..24),
        at in arb_position(),
        seq in arb_seq(),
        compression in arb_compression(),
    ) {
        let mut out = Vec::new();
        let n = encode_batch_frame(&mut out, at, seq, &refs(&records), compression);
        prop_assert_eq!(n as usize, out.len());
        prop_assert_eq!(n % FRAME_ALIGN_BYTES as u64, 0);
        let inner: u64 = records.iter().map(|r| frame_bytes_for(r.body.len())).sum();
        if out[field::FLAGS] & FLAG_ZSTD == 0 {
            prop_assert_eq!(n, FRAME_HEADER_BYTES as u64 + inner);
        } else {
            prop_assert!(matches!(compression, Compression::Zstd(_)));
            // The stored body is smaller; the frame may not be, after padding.
            let stored = u64::from(get_u32(&out, field::BODY_LEN));
            prop_assert!(stored < inner, "compressed only when smaller");
            prop_assert!(n <= FRAME_HEADER_BYTES as u64 + inner);
        }
        let expected = Frame { kind: FrameKind::Batch, seq, len_bytes: n, records };
        prop_assert_eq!(decode_frame(&out, at), Ok(expected));
    }

    #[test]
    fn control_round_trips(c in arb_control()) {
        let bytes = c.encode();
        if let ControlRecord::Checkpoint(logs) = &c {
            // Writers size the frame of a checkpoint before encoding it.
            prop_assert_eq!(bytes.len(), checkpoint_body_bytes(logs.len()));
        }
        prop_assert_eq!(ControlRecord::decode(&bytes), Ok(c));
    }

    /// Segments written by version 1 start with tag 1 checkpoints; they must still decode,
    /// as logs that were never fenced, and are rewritten in the current form.
    #[test]
    fn v1_checkpoints_decode_with_epoch_zero(
        logs in prop::collection::vec(arb_log_checkpoint(), 0..20),
    ) {
        let unfenced: Vec<LogCheckpoint> =
            logs.iter().map(|l| LogCheckpoint { epoch: 0, ..*l }).collect();
        let decoded = ControlRecord::decode(&encode_checkpoint_v1(&logs));
        prop_assert_eq!(&decoded, &Ok(ControlRecord::Checkpoint(unfenced.clone())));
        let again = ControlRecord::Checkpoint(unfenced).encode();
        prop_assert_eq!(again[0], tag::CHECKPOINT);
        prop_assert_eq!(ControlRecord::decode(&again), decoded);
    }

    /// A segment's frames, written back to back from the header on, read back in order by
    /// following `len_bytes`; the scan ends on the zeroed space after the last frame.
    #[test]
    fn runs_of_frames_read_back_in_order(
        flushes in prop::collection::vec(
            (prop::collection::vec(arb_record(64), 1..5), arb_compression()), 1..12),
        segment_id in any::<u64>(),
        first_seq in 1..u64::MAX / 2,
    ) {
        let segment_id = SegmentId(segment_id);
        let mut segment = vec![0u8; SEGMENT_HEADER_BYTES];
        for (i, (records, compression)) in flushes.iter().enumerate() {
            let at = Position { segment_id, offset: segment.len() as u64 };
            let seq = Seq(first_seq + i as u64);
            if records.len() == 1 {
                encode_record_frame(&mut segment, at, seq, records[0].as_ref());
            } else {
                encode_batch_frame(&mut segment, at, seq, &refs(records), *compression);
            }
        }
        segment.resize(segment.len() + 4096, 0);

        let mut offset = SEGMENT_HEADER_BYTES as u64;
        for (i, (records, _)) in flushes.iter().enumerate() {
            let at = Position { segment_id, offset };
            let frame = decode_frame(&segment[offset as usize..], at).expect("valid frame");
            prop_assert_eq!(frame.seq, Seq(first_seq + i as u64));
            prop_assert_eq!(&frame.records, records);
            offset += frame.len_bytes;
        }
        let end = Position { segment_id, offset };
        prop_assert_eq!(decode_frame(&segment[offset as usize..], end), Err(DecodeError::Zeroed));
    }

    #[test]
    fn any_truncation_is_torn(
        records in prop::collection::vec(arb_record(100), 1..4),
        compression in arb_compression(),
        cut in any::<prop::sample::Index>(),
    ) {
        let at = Position { segment_id: SegmentId(3), offset: 8192 };
        let mut frame = Vec::new();
        encode_batch_frame(&mut frame, at, Seq(9), &refs(&records), compression);
        let n = 1 + cut.index(frame.len() - 1);
        assert_truncation_is_torn(&frame, n, at);
    }

    #[test]
    fn any_single_bit_flip_is_detected(
        r in arb_record(100),
        compression in arb_compression(),
        batch in any::<bool>(),
        bit in any::<prop::sample::Index>(),
        trailing_zeros in any::<bool>(),
    ) {
        let at = Position { segment_id: SegmentId(3), offset: 8192 };
        let mut frame = Vec::new();
        if batch {
            encode_batch_frame(&mut frame, at, Seq(9), &[r.as_ref(), r.as_ref()], compression);
        } else {
            encode_record_frame(&mut frame, at, Seq(9), r.as_ref());
        }
        assert_bit_flip_detected(&frame, bit.index(frame.len() * 8), at, trailing_zeros);
    }
}

// ---- sample frames ---------------------------------------------------------------------------

const AT: Position = Position { segment_id: SegmentId(5), offset: 4096 };

fn sample_record() -> Record {
    Record { log_id: LogId(3), lsn: Lsn(42), timestamp_ms: 1_000, body: b"hello".to_vec() }
}

fn sample_record_frame() -> Vec<u8> {
    let mut out = Vec::new();
    encode_record_frame(&mut out, AT, Seq(7), sample_record().as_ref());
    out
}

fn sample_batch_records() -> Vec<Record> {
    (0..3u64)
        .map(|i| Record {
            log_id: LogId(1 + i as u32),
            lsn: Lsn(10 + i),
            timestamp_ms: 2_000 + i,
            body: vec![b'x'; 5 + 40 * i as usize],
        })
        .collect()
}

fn sample_batch_frame(compression: Compression) -> Vec<u8> {
    let records = sample_batch_records();
    let mut out = Vec::new();
    encode_batch_frame(&mut out, AT, Seq(7), &refs(&records), compression);
    if let Compression::Zstd(_) = compression {
        assert_eq!(out[field::FLAGS], FLAG_ZSTD, "sample is compressible");
    }
    out
}

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("record", sample_record_frame()),
        ("batch", sample_batch_frame(Compression::None)),
        ("zstd batch", sample_batch_frame(Compression::Zstd(3))),
    ]
}

fn corrupt(reason: &'static str) -> Result<Frame, DecodeError> {
    Err(DecodeError::Corrupt { reason })
}

// ---- Zeroed ----------------------------------------------------------------------------------

#[test]
fn zeroed_space_is_zeroed() {
    for len in [0, 1, 8, FRAME_HEADER_BYTES - 1, FRAME_HEADER_BYTES, 4096] {
        assert_eq!(decode_frame(&vec![0; len], AT), Err(DecodeError::Zeroed), "len {len}");
    }
    // Only the header counts: a zero header is nothing written, whatever follows.
    let mut buf = vec![0u8; 4096];
    buf[FRAME_HEADER_BYTES..].fill(0xff);
    assert_eq!(decode_frame(&buf, AT), Err(DecodeError::Zeroed));

    for len in [0, 1, SEGMENT_HEADER_USED_BYTES - 1, SEGMENT_HEADER_USED_BYTES, 4096] {
        assert_eq!(SegmentHeader::decode(&vec![0; len]), Err(DecodeError::Zeroed), "len {len}");
    }
}

// ---- Torn ------------------------------------------------------------------------------------

fn assert_truncation_is_torn(frame: &[u8], n: usize, at: Position) {
    let got = decode_frame(&frame[..n], at);
    if frame[..n].iter().all(|&b| b == 0) {
        // A prefix of zeros (possible only inside the CRC) cannot be told from unwritten space.
        assert_eq!(got, Err(DecodeError::Zeroed));
        return;
    }
    let needed = if n < FRAME_HEADER_BYTES { FRAME_HEADER_BYTES } else { frame.len() };
    assert_eq!(
        got,
        Err(DecodeError::Torn { needed_bytes: needed as u64, available_bytes: n as u64 }),
        "cut at {n} of {}",
        frame.len()
    );
}

#[test]
fn every_truncation_of_a_frame_is_torn() {
    for (name, frame) in samples() {
        assert_eq!(decode_frame(&frame[..0], AT), Err(DecodeError::Zeroed), "{name}");
        for n in 1..frame.len() {
            assert_truncation_is_torn(&frame, n, AT);
        }
        assert!(decode_frame(&frame, AT).is_ok(), "{name}");
    }
}

#[test]
fn every_truncation_of_a_segment_header_is_torn() {
    let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
    let h = SegmentHeader::new(SegmentId(5), 99, Seq(1), 0, SEGMENT_BYTES_MIN, 0);
    h.encode(&mut block);
    for n in 1..SEGMENT_HEADER_USED_BYTES {
        assert_eq!(
            SegmentHeader::decode(&block[..n]),
            Err(DecodeError::Torn {
                needed_bytes: SEGMENT_HEADER_USED_BYTES as u64,
                available_bytes: n as u64
            })
        );
    }
    assert_eq!(SegmentHeader::decode(&block[..SEGMENT_HEADER_USED_BYTES]), Ok(h));
}

// ---- bit flips -------------------------------------------------------------------------------

/// Flips `bit` of `frame` and checks the damage is reported. The CRC catches every single-bit
/// error, so the result is `Corrupt` — except that a flip in `body_len` that makes the frame
/// longer than the buffer is `Torn` (the length is read before the CRC can be checked; a WAL
/// that hands in the whole segment treats a frame reaching past the segment's end as corrupt).
fn assert_bit_flip_detected(frame: &[u8], bit: usize, at: Position, trailing_zeros: bool) {
    let mut buf = frame.to_vec();
    buf[bit / 8] ^= 1 << (bit % 8);
    if trailing_zeros {
        buf.resize(buf.len() + 4096, 0);
    }
    let got = decode_frame(&buf, at);
    let byte = bit / 8;
    let in_body_len = (field::BODY_LEN..field::BODY_LEN + 4).contains(&byte);
    match got {
        Err(DecodeError::Corrupt { .. }) => {}
        Err(DecodeError::Torn { needed_bytes, .. }) if in_body_len => {
            assert!(needed_bytes > buf.len() as u64);
        }
        other => panic!("flip of bit {bit} (byte {byte}) of {} gave {other:?}", frame.len()),
    }
}

#[test]
fn every_single_bit_flip_in_a_frame_is_detected() {
    for (_, frame) in samples() {
        for bit in 0..frame.len() * 8 {
            assert_bit_flip_detected(&frame, bit, AT, false);
            assert_bit_flip_detected(&frame, bit, AT, true);
        }
    }
}

#[test]
fn every_single_bit_flip_in_a_segment_header_is_detected() {
    let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
    SegmentHeader::new(SegmentId(5), 99, Seq(1), 1_000, SEGMENT_BYTES_MIN, 8192).encode(&mut block);
    for bit in 0..SEGMENT_HEADER_USED_BYTES * 8 {
        let mut b = block.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        let got = SegmentHeader::decode(&b);
        assert!(matches!(got, Err(DecodeError::Corrupt { .. })), "bit {bit}: {got:?}");
    }
}

// ---- Stale and Misdirected -------------------------------------------------------------------

#[test]
fn older_segment_id_is_stale() {
    for (_, frame) in samples() {
        let read_as = Position { segment_id: SegmentId(6), offset: AT.offset };
        assert_eq!(
            decode_frame(&frame, read_as),
            Err(DecodeError::Stale { found: SegmentId(5), expected: SegmentId(6) })
        );
    }
}

#[test]
fn newer_segment_id_or_other_offset_is_misdirected() {
    for (_, frame) in samples() {
        let newer = Position { segment_id: SegmentId(4), offset: AT.offset };
        assert_eq!(
            decode_frame(&frame, newer),
            Err(DecodeError::Misdirected {
                found_segment: SegmentId(5),
                found_offset: AT.offset,
                expected_offset: AT.offset
            })
        );
        let moved = Position { segment_id: SegmentId(5), offset: AT.offset + 8 };
        assert_eq!(
            decode_frame(&frame, moved),
            Err(DecodeError::Misdirected {
                found_segment: SegmentId(5),
                found_offset: AT.offset,
                expected_offset: AT.offset + 8
            })
        );
        // Both at once: the segment id is reported.
        let both = Position { segment_id: SegmentId(9), offset: 0 };
        assert_eq!(
            decode_frame(&frame, both),
            Err(DecodeError::Stale { found: SegmentId(5), expected: SegmentId(9) })
        );
    }
}

// ---- Unsupported -----------------------------------------------------------------------------

#[test]
fn unknown_frame_kinds_are_unsupported() {
    for kind in [0u8, 3, 0x80, 0xff] {
        let mut frame = sample_record_frame();
        frame[field::KIND] = kind;
        assert!(reseal_frame(&mut frame));
        assert_eq!(
            decode_frame(&frame, AT),
            Err(DecodeError::Unsupported { what: "frame kind", value: kind.into() })
        );
    }
}

#[test]
fn unknown_frame_flags_are_unsupported() {
    // A record frame has no flags at all; a batch frame knows only bit 0 (zstd).
    let cases = [
        (sample_record_frame(), FLAG_ZSTD),
        (sample_record_frame(), 0x80),
        (sample_batch_frame(Compression::None), 0b10),
        (sample_batch_frame(Compression::None), 0xff),
    ];
    for (mut frame, flags) in cases {
        frame[field::FLAGS] = flags;
        assert!(reseal_frame(&mut frame));
        assert_eq!(
            decode_frame(&frame, AT),
            Err(DecodeError::Unsupported { what: "frame flags", value: flags.into() })
        );
    }
}

#[test]
fn unknown_segment_versions_and_flags_are_unsupported() {
    let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
    SegmentHeader::new(SegmentId(5), 99, Seq(1), 1_000, SEGMENT_BYTES_MIN, 8192).encode(&mut block);
    for version in [0u16, 3, u16::MAX] {
        let mut b = block.clone();
        put_u16(&mut b, header_field::VERSION, version);
        reseal_header(&mut b);
        assert_eq!(
            SegmentHeader::decode(&b),
            Err(DecodeError::Unsupported { what: "segment format version", value: version.into() })
        );
    }
    let mut b = block.clone();
    put_u32(&mut b, header_field::FLAGS, 1);
    reseal_header(&mut b);
    assert_eq!(
        SegmentHeader::decode(&b),
        Err(DecodeError::Unsupported { what: "segment header flags", value: 1 })
    );
}

/// A one-log checkpoint entry for the hand-crafted control records below.
fn sample_log_checkpoint() -> LogCheckpoint {
    LogCheckpoint { log_id: LogId(1), lsn_trim: Lsn(1), lsn_last: Lsn(2), sealed: false, epoch: 7 }
}

/// A version 2 checkpoint (tag 5) of two logs, as the encoder writes it.
fn sample_checkpoint_v2() -> Vec<u8> {
    let second =
        LogCheckpoint { log_id: LogId(2), sealed: true, epoch: 9, ..sample_log_checkpoint() };
    let cp = ControlRecord::Checkpoint(vec![sample_log_checkpoint(), second]).encode();
    assert_eq!(cp[0], tag::CHECKPOINT);
    cp
}

#[test]
fn unknown_control_tags_and_flags_are_unsupported() {
    for tag in [0u8, 6, 0xff] {
        assert_eq!(
            ControlRecord::decode(&[tag, 1, 2, 3, 4]),
            Err(DecodeError::Unsupported { what: "control record tag", value: tag.into() })
        );
    }
    let mut cp = encode_checkpoint_v1(&[sample_log_checkpoint()]);
    cp[1 + 4 + 4] = 0b11;
    assert_eq!(
        ControlRecord::decode(&cp),
        Err(DecodeError::Unsupported { what: "checkpoint flags", value: 3 })
    );
}

#[test]
fn unknown_flags_in_a_v2_checkpoint_entry_are_unsupported() {
    // The second entry, so that the flags are found at every entry, not only the first.
    let mut cp = sample_checkpoint_v2();
    cp[1 + 4 + CHECKPOINT_ENTRY_BYTES + 4] = 0x81;
    assert_eq!(
        ControlRecord::decode(&cp),
        Err(DecodeError::Unsupported { what: "checkpoint flags", value: 0x81 })
    );
}

// ---- Corrupt: the frame envelope -------------------------------------------------------------

#[test]
fn nonzero_padding_is_corrupt() {
    // "hello" leaves 3 bytes of padding; padding is outside the CRC and checked on its own.
    let frame = sample_record_frame();
    assert_eq!(frame.len(), 64);
    for at in 61..64 {
        let mut f = frame.clone();
        f[at] = 1;
        assert_eq!(decode_frame(&f, AT), corrupt("frame padding is not zero"));
    }
    // Padding of an inner record in a batch: the outer CRC covers it, so re-seal to reach it.
    let mut batch = sample_batch_frame(Compression::None);
    batch[FRAME_HEADER_BYTES + FRAME_HEADER_BYTES + 5] = 0xaa;
    assert!(reseal_frame(&mut batch));
    assert_eq!(decode_frame(&batch, AT), corrupt("frame padding is not zero"));
}

#[test]
fn bad_magic_is_corrupt() {
    let mut frame = sample_record_frame();
    frame[field::MAGIC] ^= 0x20;
    assert_eq!(decode_frame(&frame, AT), corrupt("frame magic"));
    // A lone nonzero byte in otherwise unwritten space.
    let mut buf = vec![0u8; 4096];
    buf[17] = 1;
    assert_eq!(decode_frame(&buf, AT), corrupt("frame magic"));
}

#[test]
fn checksum_mismatch_is_corrupt() {
    let mut frame = sample_record_frame();
    frame[field::CRC] ^= 1;
    assert_eq!(decode_frame(&frame, AT), corrupt("frame checksum"));
}

#[test]
fn frame_length_over_the_limit_is_corrupt_not_torn() {
    let mut frame = sample_record_frame();
    put_u32(&mut frame, field::BODY_LEN, BATCH_BODY_BYTES_MAX as u32 + 1);
    assert_eq!(decode_frame(&frame, AT), corrupt("frame length over the limit"));
    put_u32(&mut frame, field::BODY_LEN, u32::MAX);
    assert_eq!(decode_frame(&frame, AT), corrupt("frame length over the limit"));
}

#[test]
fn record_body_over_the_record_limit_is_corrupt() {
    // Within the frame limit (a batch may be that big) but over the record limit.
    let body_len = RECORD_BODY_BYTES_MAX + 8;
    let mut frame = vec![0u8; FRAME_HEADER_BYTES + body_len];
    frame[..FRAME_HEADER_BYTES].copy_from_slice(&sample_record_frame()[..FRAME_HEADER_BYTES]);
    put_u32(&mut frame, field::BODY_LEN, body_len as u32);
    assert!(reseal_frame(&mut frame));
    assert_eq!(decode_frame(&frame, AT), corrupt("record length over the limit"));
}

#[test]
fn frame_fields_out_of_range_are_corrupt() {
    let edit = |f: fn(&mut Vec<u8>)| {
        let mut frame = sample_record_frame();
        f(&mut frame);
        assert!(reseal_frame(&mut frame));
        decode_frame(&frame, AT)
    };
    assert_eq!(edit(|f| put_u64(f, field::SEQ, 0)), corrupt("frame seq is zero"));
    assert_eq!(edit(|f| put_u64(f, field::LSN, 0)), corrupt("record LSN is zero"));

    // A frame that names an unaligned offset, read from that offset (a caller bug) or from
    // anywhere else: never Ok, since no writer puts a frame there.
    let mut frame = sample_record_frame();
    put_u64(&mut frame, field::OFFSET, AT.offset + 4);
    assert!(reseal_frame(&mut frame));
    let unaligned = Position { segment_id: AT.segment_id, offset: AT.offset + 4 };
    assert_eq!(decode_frame(&frame, unaligned), corrupt("frame offset is not 8-byte aligned"));
    assert!(matches!(decode_frame(&frame, AT), Err(DecodeError::Misdirected { .. })));
}

// ---- Corrupt: batches ------------------------------------------------------------------------

/// Edits a sample uncompressed batch with `f`, re-seals the inner frames and the batch, and
/// decodes it.
fn edited_batch(f: impl FnOnce(&mut Vec<u8>)) -> Result<Frame, DecodeError> {
    let mut frame = sample_batch_frame(Compression::None);
    f(&mut frame);
    assert!(reseal_batch(&mut frame));
    decode_frame(&frame, AT)
}

/// Offset of the `i`th inner frame of the sample batch.
fn inner(i: usize) -> usize {
    let lens: Vec<usize> =
        sample_batch_records().iter().map(|r| frame_bytes_for(r.body.len()) as usize).collect();
    FRAME_HEADER_BYTES + lens[..i].iter().sum::<usize>()
}

#[test]
fn malformed_batches_are_corrupt() {
    assert!(edited_batch(|_| {}).is_ok(), "re-sealing alone changes nothing");
    assert_eq!(edited_batch(|f| put_u32(f, field::LOG_ID, 1)), corrupt("batch frame names a log"));
    assert_eq!(
        edited_batch(|f| put_u64(f, field::LSN, 0)),
        corrupt("batch record count out of range")
    );
    assert_eq!(
        edited_batch(|f| put_u64(f, field::LSN, BATCH_RECORDS_MAX as u64 + 1)),
        corrupt("batch record count out of range")
    );
    assert_eq!(
        edited_batch(|f| put_u64(f, field::LSN, 2)),
        corrupt("batch holds more records than announced")
    );
    assert_eq!(
        edited_batch(|f| put_u64(f, field::LSN, 4)),
        corrupt("batch holds fewer records than announced")
    );
    // The batch body ends inside its last inner frame.
    assert_eq!(
        edited_batch(|f| {
            let n = f.len() - 8;
            put_u32(f, field::BODY_LEN, (n - FRAME_HEADER_BYTES) as u32);
            f.truncate(n);
        }),
        corrupt("batch body ends inside a record")
    );
    // Trailing zeros inside the body, after the last inner frame.
    assert_eq!(
        edited_batch(|f| {
            f.resize(f.len() + 64, 0);
            let body_len = f.len() - FRAME_HEADER_BYTES;
            put_u32(f, field::BODY_LEN, body_len as u32);
        }),
        corrupt("batch body ends inside a record")
    );
    for (at, value) in [(field::SEGMENT_ID, 6), (field::OFFSET, 0), (field::SEQ, 8)] {
        assert_eq!(
            edited_batch(|f| put_u64(f, inner(1) + at, value)),
            corrupt("batch record names another location"),
            "inner field at {at}"
        );
    }
    assert_eq!(
        edited_batch(|f| f[inner(2) + field::KIND] = 2),
        corrupt("batch holds a non-record frame")
    );
    assert_eq!(
        edited_batch(|f| put_u64(f, inner(0) + field::LSN, 0)),
        corrupt("record LSN is zero")
    );
    // An inner frame whose own CRC is wrong (the batch's CRC re-sealed over it).
    let mut frame = sample_batch_frame(Compression::None);
    frame[inner(1) + field::TIMESTAMP_MS] ^= 1;
    assert!(reseal_frame(&mut frame));
    assert_eq!(decode_frame(&frame, AT), corrupt("frame checksum"));
}

#[test]
fn undecompressible_zstd_body_is_corrupt() {
    let mut frame = sample_batch_frame(Compression::Zstd(3));
    for b in &mut frame[FRAME_HEADER_BYTES + 4..] {
        *b = !*b;
    }
    let body_len = get_u32(&frame, field::BODY_LEN) as usize;
    frame[FRAME_HEADER_BYTES + body_len..].fill(0);
    assert!(reseal_frame(&mut frame));
    assert_eq!(decode_frame(&frame, AT), corrupt("batch body does not decompress"));
}

// ---- Corrupt: segment header and control records ---------------------------------------------

#[test]
fn malformed_segment_headers_are_corrupt() {
    let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
    SegmentHeader::new(SegmentId(5), 99, Seq(1), 1_000, SEGMENT_BYTES_MIN, 8192).encode(&mut block);
    let edit = |at: usize, value: u64, width: usize| {
        let mut b = block.clone();
        b[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        reseal_header(&mut b);
        SegmentHeader::decode(&b)
    };
    let corrupt = |reason| Err(DecodeError::Corrupt { reason });
    assert_eq!(edit(header_field::MAGIC, 0, 1), corrupt("segment header magic"));
    assert_eq!(edit(header_field::USED_BYTES, 65, 2), corrupt("segment header length"));
    for end in [SEGMENT_BYTES_MAX + 1, u64::from(u32::MAX)] {
        assert_eq!(
            edit(header_field::PREV_END_OFFSET, end, 4),
            corrupt("previous segment end out of range")
        );
    }
    for size in [0, SEGMENT_BYTES_MIN - 1, SEGMENT_BYTES_MAX + 1, u64::MAX] {
        assert_eq!(
            edit(header_field::SEGMENT_BYTES, size, 8),
            corrupt("segment size out of range")
        );
    }
    assert_eq!(edit(header_field::FIRST_SEQ, 0, 8), corrupt("segment first seq is zero"));
    let mut b = block.clone();
    b[header_field::CRC] ^= 1;
    assert_eq!(SegmentHeader::decode(&b), corrupt("segment header checksum"));
    // The fields the header does not constrain.
    assert!(edit(header_field::WAL_ID, 0, 8).is_ok());
    assert!(edit(header_field::CREATED_MS, u64::MAX, 8).is_ok());
    assert!(edit(header_field::SEGMENT_ID, 0, 8).is_ok());
}

#[test]
fn malformed_control_records_are_corrupt() {
    let corrupt = |reason| Err(DecodeError::Corrupt { reason });
    // A version 1 checkpoint, still read; version 2's have tests of their own below.
    let cp = encode_checkpoint_v1(&[sample_log_checkpoint()]);
    assert_eq!(ControlRecord::decode(&[]), corrupt("empty control record"));
    assert_eq!(ControlRecord::decode(&cp[..4]), corrupt("checkpoint too short"));
    for n in 5..cp.len() {
        assert_eq!(
            ControlRecord::decode(&cp[..n]),
            corrupt("checkpoint length does not match its count")
        );
    }
    let mut long = cp.clone();
    long.push(0);
    assert_eq!(ControlRecord::decode(&long), corrupt("checkpoint length does not match its count"));
    let mut huge = cp.clone();
    huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(ControlRecord::decode(&huge), corrupt("checkpoint length does not match its count"));
    let mut inverted = cp.clone();
    inverted[10..18].copy_from_slice(&3u64.to_le_bytes());
    assert_eq!(ControlRecord::decode(&inverted), corrupt("checkpoint trim point beyond last LSN"));

    let trim = ControlRecord::Trim { log_id: LogId(1), lsn: Lsn(1) }.encode();
    let seal = ControlRecord::Seal { log_id: LogId(1) }.encode();
    let longer = [trim.as_slice(), &[0]].concat();
    for bad in [&trim[..trim.len() - 1], &seal[..seal.len() - 1], longer.as_slice()] {
        assert_eq!(ControlRecord::decode(bad), corrupt("control record length"));
    }
}

#[test]
fn fence_of_the_wrong_length_is_corrupt() {
    let fence = ControlRecord::Fence { log_id: LogId(1), epoch: 7 }.encode();
    assert_eq!(fence.len(), 13);
    let longer = [fence.as_slice(), &[0]].concat();
    for bad in [&fence[..1], &fence[..5], &fence[..12], longer.as_slice()] {
        assert_eq!(
            ControlRecord::decode(bad),
            Err(DecodeError::Corrupt { reason: "control record length" }),
            "{} bytes",
            bad.len()
        );
    }
}

#[test]
fn v2_checkpoint_length_not_matching_its_count_is_corrupt() {
    let corrupt =
        Err(DecodeError::Corrupt { reason: "checkpoint length does not match its count" });
    let cp = sample_checkpoint_v2();
    assert_eq!(cp.len(), checkpoint_body_bytes(2));
    for n in 5..cp.len() {
        assert_eq!(ControlRecord::decode(&cp[..n]), corrupt, "cut at {n}");
    }
    let longer = [cp.as_slice(), &[0]].concat();
    assert_eq!(ControlRecord::decode(&longer), corrupt);
    let mut miscounted = cp.clone();
    miscounted[1..5].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(ControlRecord::decode(&miscounted), corrupt);
    // The entry size follows the tag: v2 entries under tag 1, or v1 entries under tag 5, do
    // not fit their count.
    let mut relabelled = cp.clone();
    relabelled[0] = tag::CHECKPOINT_V1;
    assert_eq!(ControlRecord::decode(&relabelled), corrupt);
    let mut relabelled = encode_checkpoint_v1(&[sample_log_checkpoint()]);
    relabelled[0] = tag::CHECKPOINT;
    assert_eq!(ControlRecord::decode(&relabelled), corrupt);
}

#[test]
fn v2_checkpoint_trim_point_beyond_last_lsn_is_corrupt() {
    let mut cp = sample_checkpoint_v2();
    let second = 1 + 4 + CHECKPOINT_ENTRY_BYTES;
    // lsn_trim of the second entry, past its lsn_last of 2.
    cp[second + 5..second + 13].copy_from_slice(&3u64.to_le_bytes());
    assert_eq!(
        ControlRecord::decode(&cp),
        Err(DecodeError::Corrupt { reason: "checkpoint trim point beyond last LSN" })
    );
}

// ---- the writer side: limits are asserted, so a writer cannot produce what cannot be read ----

#[test]
#[should_panic(expected = "frame seqs start at 1")]
fn encoding_seq_zero_panics() {
    encode_record_frame(&mut Vec::new(), AT, Seq(0), sample_record().as_ref());
}

#[test]
#[should_panic(expected = "frames are 8-byte aligned")]
fn encoding_at_an_unaligned_offset_panics() {
    let at = Position { segment_id: SegmentId(1), offset: 4 };
    encode_record_frame(&mut Vec::new(), at, Seq(1), sample_record().as_ref());
}

#[test]
#[should_panic(expected = "records have an LSN of at least 1")]
fn encoding_lsn_zero_panics() {
    let record = sample_record();
    let r = RecordRef { lsn: Lsn::INVALID, ..record.as_ref() };
    encode_record_frame(&mut Vec::new(), AT, Seq(1), r);
}

#[test]
#[should_panic(expected = "checkpoint trim point beyond last LSN")]
fn encoding_an_inverted_checkpoint_panics() {
    ControlRecord::Checkpoint(vec![LogCheckpoint { lsn_trim: Lsn(3), ..sample_log_checkpoint() }])
        .encode();
}

#[test]
#[should_panic(expected = "records.is_empty()")]
fn encoding_an_empty_batch_panics() {
    encode_batch_frame(&mut Vec::new(), AT, Seq(1), &[], Compression::None);
}

#[test]
#[should_panic(expected = "prev_end_offset")]
fn encoding_a_header_with_an_out_of_range_end_panics() {
    let h = SegmentHeader::new(SegmentId(1), 1, Seq(1), 0, SEGMENT_BYTES_MIN, u32::MAX);
    h.encode(&mut [0u8; SEGMENT_HEADER_USED_BYTES]);
}
