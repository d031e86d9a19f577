//! Golden vectors: the bytes of every format version, checked in, and tested forever.
//!
//! Goal: no change to this crate can silently change what is on disk, and every released
//! format version stays readable (FORMAT.md, "Compatibility"). Method: each vector under
//! `tests/golden/v<N>/` is decoded and compared with values written out literally in this
//! file, then those values are encoded again and must give the identical bytes. Two
//! exceptions: another zstd version may compress differently, so only the zstd batch's
//! decoding is pinned; and the version 1 checkpoint is no longer written (version 2 writes
//! checkpoints with epochs), so its test pins the decoding (epoch 0) and the version 2 bytes
//! its value re-encodes to. The record frame, segment headers and control bodies are also
//! spelled out below as annotated hex, so the layout is pinned in the source, not only in a
//! binary file.
//!
//! Generating: `RATCHET_BLESS=1 cargo test -p segment-format --test golden` writes the vectors
//! that are *missing* and never overwrites one (a released vector is never changed). To
//! regenerate a vector of an unreleased version, delete the file first.

mod support;

use std::path::PathBuf;

use segment_format::{
    checkpoint_body_bytes, decode_frame, encode_batch_frame, encode_record_frame, Compression,
    ControlRecord, Frame, FrameKind, LogCheckpoint, LogId, Lsn, Position, Record, SegmentHeader,
    SegmentId, Seq, BLOCK_BYTES, FORMAT_VERSION, SEGMENT_HEADER_BYTES,
};
use support::{field, FLAG_ZSTD};

const SEGMENT: SegmentId = SegmentId(7);
const WAL_ID: u64 = 0x0123_4567_89ab_cdef;
/// 2026-01-01T00:00:00Z.
const T0_MS: u64 = 1_767_225_600_000;

/// `name` in the golden directory of format `version`.
fn golden_path(version: u16, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{version}")).join(name)
}

/// Reads the checked-in vector `name` of format `version`. With `RATCHET_BLESS=1`, first
/// writes `generated` there if no such file exists yet.
fn golden(version: u16, name: &str, generated: &[u8]) -> Vec<u8> {
    let path = golden_path(version, name);
    if std::env::var_os("RATCHET_BLESS").is_some_and(|v| v == "1") && !path.exists() {
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create golden dir");
        std::fs::write(&path, generated).expect("write golden vector");
        eprintln!("blessed new golden vector {}", path.display());
    }
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("golden vector {} unreadable ({e}); create it with RATCHET_BLESS=1", path.display())
    })
}

/// Parses annotated hex: on each line, everything after `|` is hex digits and spaces, and
/// everything before it is a label.
fn hex(annotated: &str) -> Vec<u8> {
    let digits: String = annotated
        .lines()
        .filter_map(|l| l.split_once('|').map(|(_, h)| h))
        .flat_map(|h| h.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

// ---- segment header --------------------------------------------------------------------------

fn header_value() -> SegmentHeader {
    SegmentHeader {
        format_version: 1,
        segment_id: SEGMENT,
        wal_id: WAL_ID,
        first_seq: Seq(1000),
        created_ms: T0_MS,
        segment_bytes: 64 * 1024 * 1024,
        prev_end_offset: 0x0012_3458,
    }
}

/// The 64 used bytes of the segment header vector (the rest of its 4096-byte block is zero).
const SEGMENT_HEADER_HEX: &str = "
    0  magic 'RTCHTSEG'        | 52 54 43 48 54 53 45 47
    8  format_version = 1      | 01 00
    10 used bytes = 64         | 40 00
    12 flags = 0               | 00 00 00 00
    16 segment_id = 7          | 07 00 00 00 00 00 00 00
    24 wal_id                  | ef cd ab 89 67 45 23 01
    32 first_seq = 1000        | e8 03 00 00 00 00 00 00
    40 created_ms              | 00 a8 da 76 9b 01 00 00
    48 segment_bytes = 64 MiB  | 00 00 00 04 00 00 00 00
    56 prev_end_offset         | 58 34 12 00
    60 crc32 of bytes 0..60    | 66 f9 eb 58
";

#[test]
fn segment_header_v1() {
    let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
    header_value().encode(&mut block);
    let bytes = golden(1, "segment_header.bin", &block);

    assert_eq!(bytes.len(), BLOCK_BYTES);
    assert_eq!(bytes[..64], hex(SEGMENT_HEADER_HEX)[..]);
    assert!(bytes[64..].iter().all(|&b| b == 0), "the rest of the block is zero");
    assert_eq!(SegmentHeader::decode(&bytes), Ok(header_value()));
    assert_eq!(block, bytes, "re-encoding gives identical bytes");
}

// ---- record frame ----------------------------------------------------------------------------

const RECORD_AT: Position = Position { segment_id: SEGMENT, offset: 4096 };

fn record_value() -> Record {
    Record { log_id: LogId(3), lsn: Lsn(42), timestamp_ms: T0_MS + 123, body: b"hello".to_vec() }
}

/// The whole record frame vector: 56-byte header, 5-byte body, 3 bytes of padding.
const RECORD_FRAME_HEX: &str = "
    0  crc32 of 4..61          | 19 b1 f7 ce
    4  magic 'RF'              | 52 46
    6  kind = 1 (record)       | 01
    7  flags = 0               | 00
    8  body_len = 5            | 05 00 00 00
    12 log_id = 3              | 03 00 00 00
    16 lsn = 42                | 2a 00 00 00 00 00 00 00
    24 timestamp_ms            | 7b a8 da 76 9b 01 00 00
    32 segment_id = 7          | 07 00 00 00 00 00 00 00
    40 offset = 4096           | 00 10 00 00 00 00 00 00
    48 seq = 1000              | e8 03 00 00 00 00 00 00
    56 body 'hello'            | 68 65 6c 6c 6f
    61 padding                 | 00 00 00
";

#[test]
fn record_frame_v1() {
    let mut encoded = Vec::new();
    encode_record_frame(&mut encoded, RECORD_AT, Seq(1000), record_value().as_ref());
    let bytes = golden(1, "record_frame.bin", &encoded);

    assert_eq!(bytes, hex(RECORD_FRAME_HEX));
    let frame = decode_frame(&bytes, RECORD_AT).expect("decodes");
    assert_eq!(
        frame,
        Frame {
            kind: FrameKind::Record,
            seq: Seq(1000),
            len_bytes: 64,
            records: vec![record_value()]
        }
    );
    assert_eq!(encoded, bytes, "re-encoding gives identical bytes");
}

// ---- batch frames ----------------------------------------------------------------------------

const BATCH_AT: Position = Position { segment_id: SEGMENT, offset: 4160 };

fn batch_records() -> Vec<Record> {
    vec![
        Record { log_id: LogId(3), lsn: Lsn(43), timestamp_ms: T0_MS + 200, body: b"a".to_vec() },
        Record { log_id: LogId(4), lsn: Lsn(1), timestamp_ms: T0_MS + 201, body: Vec::new() },
        Record {
            log_id: LogId(3),
            lsn: Lsn(44),
            timestamp_ms: T0_MS + 199,
            body: b"sixteen bytes!!!".to_vec(),
        },
    ]
}

#[test]
fn batch_frame_v1() {
    let records = batch_records();
    let refs: Vec<_> = records.iter().map(Record::as_ref).collect();
    let mut encoded = Vec::new();
    encode_batch_frame(&mut encoded, BATCH_AT, Seq(1001), &refs, Compression::None);
    let bytes = golden(1, "batch_frame.bin", &encoded);

    // Inner frames: 56+1 -> 64, 56+0 -> 56, 56+16 -> 72; outer: 56 + 192.
    assert_eq!(bytes.len(), 56 + 64 + 56 + 72);
    assert_eq!(bytes[field::KIND], 2);
    assert_eq!(bytes[field::FLAGS], 0);
    assert_eq!(support::get_u32(&bytes, field::BODY_LEN), 192);
    assert_eq!(support::get_u32(&bytes, field::LOG_ID), 0, "a batch names no log");
    assert_eq!(support::get_u64(&bytes, field::LSN), 3, "a batch's lsn field is its count");
    assert_eq!(support::get_u64(&bytes, field::TIMESTAMP_MS), T0_MS + 201, "the largest");
    // The inner records carry the batch's segment id, offset and seq.
    for inner_at in [56, 56 + 64, 56 + 64 + 56] {
        let inner = &bytes[inner_at..];
        assert_eq!(inner[field::KIND], 1);
        assert_eq!(support::get_u64(inner, field::SEGMENT_ID), SEGMENT.0);
        assert_eq!(support::get_u64(inner, field::OFFSET), BATCH_AT.offset);
        assert_eq!(support::get_u64(inner, field::SEQ), 1001);
    }
    let frame = decode_frame(&bytes, BATCH_AT).expect("decodes");
    assert_eq!(frame, Frame { kind: FrameKind::Batch, seq: Seq(1001), len_bytes: 248, records });
    assert_eq!(encoded, bytes, "re-encoding gives identical bytes");
}

const ZSTD_AT: Position = Position { segment_id: SEGMENT, offset: 8192 };

fn zstd_records() -> Vec<Record> {
    (0..4u64)
        .map(|i| Record {
            log_id: LogId(5),
            lsn: Lsn(100 + i),
            timestamp_ms: T0_MS + 300 + i,
            body: b"ratchet ".repeat(32),
        })
        .collect()
}

#[test]
fn batch_frame_zstd_v1() {
    let records = zstd_records();
    let refs: Vec<_> = records.iter().map(Record::as_ref).collect();
    let mut encoded = Vec::new();
    encode_batch_frame(&mut encoded, ZSTD_AT, Seq(1002), &refs, Compression::Zstd(3));
    let bytes = golden(1, "batch_frame_zstd.bin", &encoded);

    assert_eq!(bytes[field::KIND], 2);
    assert_eq!(bytes[field::FLAGS], FLAG_ZSTD, "the vector is compressed");
    // The stored body is a zstd frame (magic 28 b5 2f fd).
    assert_eq!(bytes[56..60], [0x28, 0xb5, 0x2f, 0xfd]);
    assert!(bytes.len() < 56 + 4 * (56 + 256), "compression made it smaller");
    let frame = decode_frame(&bytes, ZSTD_AT).expect("decodes");
    assert_eq!(frame.kind, FrameKind::Batch);
    assert_eq!(frame.seq, Seq(1002));
    assert_eq!(frame.len_bytes, bytes.len() as u64);
    assert_eq!(frame.records, records);
    // No re-encoding check: another zstd version may compress to different bytes.
}

// ---- control records -------------------------------------------------------------------------

/// The value of the version 1 checkpoint vector: a version 1 checkpoint has no epochs, so
/// every log decodes with epoch 0.
fn checkpoint_value() -> ControlRecord {
    ControlRecord::Checkpoint(vec![
        LogCheckpoint {
            log_id: LogId(1),
            lsn_trim: Lsn(10),
            lsn_last: Lsn(42),
            sealed: false,
            epoch: 0,
        },
        LogCheckpoint {
            log_id: LogId(2),
            lsn_trim: Lsn(5),
            lsn_last: Lsn(5),
            sealed: true,
            epoch: 0,
        },
    ])
}

const CHECKPOINT_HEX: &str = "
    tag = 1 (checkpoint)       | 01
    count = 2                  | 02 00 00 00
    [0] log_id = 1             | 01 00 00 00
    [0] flags = 0              | 00
    [0] lsn_trim = 10          | 0a 00 00 00 00 00 00 00
    [0] lsn_last = 42          | 2a 00 00 00 00 00 00 00
    [1] log_id = 2             | 02 00 00 00
    [1] flags = 1 (sealed)     | 01
    [1] lsn_trim = 5           | 05 00 00 00 00 00 00 00
    [1] lsn_last = 5           | 05 00 00 00 00 00 00 00
";

/// What the version 1 checkpoint's value encodes to now: the same logs as a version 2
/// checkpoint (tag 5), each entry followed by its epoch.
const CHECKPOINT_V1_REENCODED_HEX: &str = "
    tag = 5 (checkpoint v2)    | 05
    count = 2                  | 02 00 00 00
    [0] log_id = 1             | 01 00 00 00
    [0] flags = 0              | 00
    [0] lsn_trim = 10          | 0a 00 00 00 00 00 00 00
    [0] lsn_last = 42          | 2a 00 00 00 00 00 00 00
    [0] epoch = 0              | 00 00 00 00 00 00 00 00
    [1] log_id = 2             | 02 00 00 00
    [1] flags = 1 (sealed)     | 01
    [1] lsn_trim = 5           | 05 00 00 00 00 00 00 00
    [1] lsn_last = 5           | 05 00 00 00 00 00 00 00
    [1] epoch = 0              | 00 00 00 00 00 00 00 00
";

#[test]
fn control_checkpoint_v1() {
    // The encoder no longer writes tag 1, so a missing vector is blessed from the literal.
    let bytes = golden(1, "control_checkpoint.bin", &hex(CHECKPOINT_HEX));
    assert_eq!(bytes, hex(CHECKPOINT_HEX));
    assert_eq!(ControlRecord::decode(&bytes), Ok(checkpoint_value()));
    assert_eq!(checkpoint_value().encode(), hex(CHECKPOINT_V1_REENCODED_HEX));
}

#[test]
fn control_trim_v1() {
    let value = ControlRecord::Trim { log_id: LogId(3), lsn: Lsn(40) };
    let bytes = golden(1, "control_trim.bin", &value.encode());
    assert_eq!(
        bytes,
        hex("tag | 02\n log_id = 3 | 03 00 00 00\n lsn = 40 | 28 00 00 00 00 00 00 00")
    );
    assert_eq!(ControlRecord::decode(&bytes), Ok(value.clone()));
    assert_eq!(value.encode(), bytes);
}

#[test]
fn control_seal_v1() {
    let value = ControlRecord::Seal { log_id: LogId(2) };
    let bytes = golden(1, "control_seal.bin", &value.encode());
    assert_eq!(bytes, hex("tag | 03\n log_id = 2 | 02 00 00 00"));
    assert_eq!(ControlRecord::decode(&bytes), Ok(value.clone()));
    assert_eq!(value.encode(), bytes);
}

// ---- the first write of a segment ------------------------------------------------------------

/// The first write of segment 8: its header block and, in the same write, its first frame, a
/// record of the control log (log 0) holding a checkpoint.
fn segment_start_value() -> (SegmentHeader, Record) {
    let header = SegmentHeader {
        segment_id: SegmentId(8),
        first_seq: Seq(1003),
        // Segment 7's frames end after the zstd batch at 8192.
        prev_end_offset: 8192 + 168,
        ..header_value()
    };
    let checkpoint = Record {
        log_id: LogId(0),
        lsn: Lsn(17),
        timestamp_ms: T0_MS + 400,
        // A version 1 writer's checkpoint; the encoder now writes tag 5.
        body: hex(CHECKPOINT_HEX),
    };
    (header, checkpoint)
}

#[test]
fn segment_start_v1() {
    let (header, checkpoint) = segment_start_value();
    let at = Position { segment_id: header.segment_id, offset: SEGMENT_HEADER_BYTES as u64 };
    let mut encoded = vec![0u8; SEGMENT_HEADER_BYTES];
    header.encode(&mut encoded);
    encode_record_frame(&mut encoded, at, header.first_seq, checkpoint.as_ref());
    let bytes = golden(1, "segment_start.bin", &encoded);

    assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
    let frame = decode_frame(&bytes[SEGMENT_HEADER_BYTES..], at).expect("decodes");
    assert_eq!(frame.seq, header.first_seq, "the first frame's seq is the header's first_seq");
    assert_eq!(frame.records, vec![checkpoint.clone()]);
    assert_eq!(ControlRecord::decode(&frame.records[0].body), Ok(checkpoint_value()));
    assert_eq!(encoded, bytes, "re-encoding gives identical bytes");
}

// ---- version 2: fences and checkpoints with epochs ------------------------------------------

const SEGMENT_V2: SegmentId = SegmentId(9);
/// 2026-01-02T00:00:00Z.
const T1_MS: u64 = T0_MS + 86_400_000;

fn header_v2_value() -> SegmentHeader {
    SegmentHeader::new(SEGMENT_V2, WAL_ID, Seq(2000), T1_MS, 64 * 1024 * 1024, 0x0020_1000)
}

/// The 64 used bytes of the version 2 segment header vector: the layout of version 1, with
/// `format_version` 2.
const SEGMENT_HEADER_V2_HEX: &str = "
    0  magic 'RTCHTSEG'        | 52 54 43 48 54 53 45 47
    8  format_version = 2      | 02 00
    10 used bytes = 64         | 40 00
    12 flags = 0               | 00 00 00 00
    16 segment_id = 9          | 09 00 00 00 00 00 00 00
    24 wal_id                  | ef cd ab 89 67 45 23 01
    32 first_seq = 2000        | d0 07 00 00 00 00 00 00
    40 created_ms              | 00 04 01 7c 9b 01 00 00
    48 segment_bytes = 64 MiB  | 00 00 00 04 00 00 00 00
    56 prev_end_offset         | 00 10 20 00
    60 crc32 of bytes 0..60    | 5c 1d 1f a0
";

#[test]
fn segment_header_v2() {
    assert_eq!(FORMAT_VERSION, 2, "a new version needs its own golden directory");
    assert_eq!(header_v2_value().format_version, 2, "new segments are written in version 2");
    let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
    header_v2_value().encode(&mut block);
    let bytes = golden(2, "segment_header.bin", &block);

    assert_eq!(bytes.len(), BLOCK_BYTES);
    assert_eq!(bytes[..64], hex(SEGMENT_HEADER_V2_HEX)[..]);
    assert!(bytes[64..].iter().all(|&b| b == 0), "the rest of the block is zero");
    assert_eq!(SegmentHeader::decode(&bytes), Ok(header_v2_value()));
    assert_eq!(block, bytes, "re-encoding gives identical bytes");
}

/// The first frame of segment 9: a record of the control log holding a version 2 checkpoint
/// of two logs with different epochs, one of them sealed.
const CHECKPOINT_FRAME_AT: Position = Position { segment_id: SEGMENT_V2, offset: 4096 };

fn checkpoint_v2_value() -> ControlRecord {
    ControlRecord::Checkpoint(vec![
        LogCheckpoint {
            log_id: LogId(1),
            lsn_trim: Lsn(10),
            lsn_last: Lsn(42),
            sealed: false,
            epoch: 3,
        },
        LogCheckpoint {
            log_id: LogId(2),
            lsn_trim: Lsn(5),
            lsn_last: Lsn(5),
            sealed: true,
            epoch: 0x0000_0001_0000_0002,
        },
    ])
}

const CHECKPOINT_V2_HEX: &str = "
    tag = 5 (checkpoint v2)    | 05
    count = 2                  | 02 00 00 00
    [0] log_id = 1             | 01 00 00 00
    [0] flags = 0              | 00
    [0] lsn_trim = 10          | 0a 00 00 00 00 00 00 00
    [0] lsn_last = 42          | 2a 00 00 00 00 00 00 00
    [0] epoch = 3              | 03 00 00 00 00 00 00 00
    [1] log_id = 2             | 02 00 00 00
    [1] flags = 1 (sealed)     | 01
    [1] lsn_trim = 5           | 05 00 00 00 00 00 00 00
    [1] lsn_last = 5           | 05 00 00 00 00 00 00 00
    [1] epoch = 2^32 + 2       | 02 00 00 00 01 00 00 00
";

fn checkpoint_record() -> Record {
    Record { log_id: LogId(0), lsn: Lsn(30), timestamp_ms: T1_MS + 1, body: hex(CHECKPOINT_V2_HEX) }
}

#[test]
fn checkpoint_frame_v2() {
    assert_eq!(checkpoint_v2_value().encode(), hex(CHECKPOINT_V2_HEX));
    assert_eq!(checkpoint_body_bytes(2), hex(CHECKPOINT_V2_HEX).len());
    let mut encoded = Vec::new();
    encode_record_frame(&mut encoded, CHECKPOINT_FRAME_AT, Seq(2000), checkpoint_record().as_ref());
    let bytes = golden(2, "checkpoint_frame.bin", &encoded);

    // 56-byte header, 63-byte body, 1 byte of padding.
    assert_eq!(bytes.len(), 120);
    let frame = decode_frame(&bytes, CHECKPOINT_FRAME_AT).expect("decodes");
    assert_eq!(
        frame,
        Frame {
            kind: FrameKind::Record,
            seq: Seq(2000),
            len_bytes: 120,
            records: vec![checkpoint_record()]
        }
    );
    assert_eq!(ControlRecord::decode(&frame.records[0].body), Ok(checkpoint_v2_value()));
    assert_eq!(encoded, bytes, "re-encoding gives identical bytes");
}

/// The second frame of segment 9, right after the checkpoint: a fence of log 1 at epoch 4.
const FENCE_FRAME_AT: Position = Position { segment_id: SEGMENT_V2, offset: 4096 + 120 };

fn fence_value() -> ControlRecord {
    ControlRecord::Fence { log_id: LogId(1), epoch: 4 }
}

const FENCE_HEX: &str = "
    tag = 4 (fence)            | 04
    log_id = 1                 | 01 00 00 00
    epoch = 4                  | 04 00 00 00 00 00 00 00
";

fn fence_record() -> Record {
    Record { log_id: LogId(0), lsn: Lsn(31), timestamp_ms: T1_MS + 2, body: hex(FENCE_HEX) }
}

#[test]
fn fence_frame_v2() {
    assert_eq!(fence_value().encode(), hex(FENCE_HEX));
    let mut encoded = Vec::new();
    encode_record_frame(&mut encoded, FENCE_FRAME_AT, Seq(2001), fence_record().as_ref());
    let bytes = golden(2, "fence_frame.bin", &encoded);

    // 56-byte header, 13-byte body, 3 bytes of padding.
    assert_eq!(bytes.len(), 72);
    let frame = decode_frame(&bytes, FENCE_FRAME_AT).expect("decodes");
    assert_eq!(
        frame,
        Frame {
            kind: FrameKind::Record,
            seq: Seq(2001),
            len_bytes: 72,
            records: vec![fence_record()]
        }
    );
    assert_eq!(ControlRecord::decode(&frame.records[0].body), Ok(fence_value()));
    assert_eq!(encoded, bytes, "re-encoding gives identical bytes");
}

// ---- completeness ----------------------------------------------------------------------------

/// The sorted file names in the golden directory of `version`.
fn vector_names(version: u16) -> Vec<String> {
    let dir = golden_path(version, "");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every file in the v1 directory is covered by a test above: a vector nobody checks would
/// give false confidence.
#[test]
fn every_v1_vector_is_tested() {
    if std::env::var_os("RATCHET_BLESS").is_some() {
        return; // The other tests are writing the directory concurrently.
    }
    assert_eq!(
        vector_names(1),
        [
            "batch_frame.bin",
            "batch_frame_zstd.bin",
            "control_checkpoint.bin",
            "control_seal.bin",
            "control_trim.bin",
            "record_frame.bin",
            "segment_header.bin",
            "segment_start.bin",
        ]
    );
}

/// Every file in the v2 directory is covered by a test above.
#[test]
fn every_v2_vector_is_tested() {
    if std::env::var_os("RATCHET_BLESS").is_some() {
        return; // The other tests are writing the directory concurrently.
    }
    assert_eq!(vector_names(2), ["checkpoint_frame.bin", "fence_frame.bin", "segment_header.bin"]);
}
