//! Seeded smoke fuzzing of every decoder, run by plain `cargo test`.
//!
//! Goal: the decoders take bytes straight from disk, so no input may make them panic, and
//! any input they accept must be one a writer could have produced. Method: a deterministic
//! splitmix64 generator builds tens of thousands of inputs — arbitrary bytes, "frame-ish"
//! bytes with a valid magic and CRC, and valid frames, headers and control records after
//! random mutations (bit flips, interesting values in header fields, truncation, extension,
//! zeroed ranges; with and without re-sealing the CRC, and inside zstd batches by
//! decompressing, mutating and recompressing; control records of every tag, version 1
//! checkpoints included, also relabelled with another tag) — and feeds them to `decode_frame`,
//! `SegmentHeader::decode` and `ControlRecord::decode` through the oracles in
//! `support/mod.rs`, which also back the cargo-fuzz targets in `/fuzz`. An `Ok` result must
//! re-encode to the same bytes (or an equivalent frame where the format allows two
//! encodings); a single bit flip without a re-sealed CRC must never decode.
//!
//! Each case has its own generator derived from the seed and the case number, so a failure
//! prints both and replays alone: `RATCHET_FUZZ_SEED=<seed> RATCHET_FUZZ_CASE=<n>`. Run longer
//! with `RATCHET_FUZZ_CASES=<n>`; the default keeps the test to a few seconds.

mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use segment_format::{
    encode_batch_frame, encode_record_frame, Compression, ControlRecord, DecodeError,
    LogCheckpoint, LogId, Lsn, Position, Record, RecordRef, SegmentHeader, SegmentId, Seq,
    BATCH_BODY_BYTES_MAX, BATCH_RECORDS_MAX, FRAME_HEADER_BYTES, RECORD_BODY_BYTES_MAX,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_HEADER_USED_BYTES,
};
use support::{
    check_control, check_frame, check_header, encode_checkpoint_v1, field, get_u32, own_position,
    put_u32, reseal_batch, reseal_frame, reseal_header, split_frame_input, tag, FLAG_ZSTD,
};

const SEED_DEFAULT: u64 = 0x5eed_f00d_4a7c_04e7;
const CASES_DEFAULT: u64 = 240_000;
const ALL: &[&str] = &["Ok", "Zeroed", "Torn", "Corrupt", "Stale", "Misdirected", "Unsupported"];

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, case: u64) -> Rng {
        let mut r = Rng(seed ^ case.wrapping_mul(0xa076_1d64_78bd_642f));
        r.next_u64();
        r
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform-ish in `0..n`; `n > 0`.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// Counts decode outcomes, so a loop can prove it reached every one: a fuzzer whose inputs all
/// fail the first check tests nothing.
#[derive(Default)]
struct Tally(RefCell<BTreeMap<&'static str, u64>>);

impl Tally {
    fn note<T>(&self, result: &Result<T, DecodeError>) {
        let outcome = match result {
            Ok(_) => "Ok",
            Err(DecodeError::Zeroed) => "Zeroed",
            Err(DecodeError::Torn { .. }) => "Torn",
            Err(DecodeError::Corrupt { .. }) => "Corrupt",
            Err(DecodeError::Stale { .. }) => "Stale",
            Err(DecodeError::Misdirected { .. }) => "Misdirected",
            Err(DecodeError::Unsupported { .. }) => "Unsupported",
        };
        *self.0.borrow_mut().entry(outcome).or_default() += 1;
    }
}

/// Runs `case` for every case number, or only `RATCHET_FUZZ_CASE`; on a panic, says how to
/// replay it. A full run must have seen each of `outcomes`.
fn run(name: &str, cases_default: u64, outcomes: &[&str], case: impl Fn(&mut Rng, &Tally)) {
    let tally = Tally::default();
    let seed = env_u64("RATCHET_FUZZ_SEED").unwrap_or(SEED_DEFAULT);
    let cases = env_u64("RATCHET_FUZZ_CASES").unwrap_or(cases_default);
    let range = match env_u64("RATCHET_FUZZ_CASE") {
        Some(only) => only..only + 1,
        None => 0..cases,
    };
    for n in range {
        let mut rng = Rng::for_case(seed, n);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(&mut rng, &tally))) {
            eprintln!(
                "{name}: case {n} failed; replay with RATCHET_FUZZ_SEED={seed:#x} \
                 RATCHET_FUZZ_CASE={n} cargo test -p segment-format --test fuzz_smoke {name}"
            );
            resume_unwind(panic);
        }
    }
    let tally = tally.0.into_inner();
    eprintln!("{name}: {tally:?}");
    if env_u64("RATCHET_FUZZ_CASE").is_none() {
        for outcome in outcomes {
            assert!(tally.contains_key(outcome), "{name} never reached {outcome}: {tally:?}");
        }
    }
}

// ---- seeds -----------------------------------------------------------------------------------

struct FrameSeed {
    bytes: Vec<u8>,
    at: Position,
}

fn refs(rs: &[Record]) -> Vec<RecordRef<'_>> {
    rs.iter().map(Record::as_ref).collect()
}

fn frame_seeds() -> Vec<FrameSeed> {
    let at = |offset| Position { segment_id: SegmentId(11), offset };
    let rec = |log: u32, lsn: u64, body: &[u8]| Record {
        log_id: LogId(log),
        lsn: Lsn(lsn),
        timestamp_ms: 1_700_000_000_000 + lsn,
        body: body.to_vec(),
    };
    let checkpoint = control_seeds()[0].encode();
    let batch: Vec<Record> = (1..=5).map(|i| rec(i as u32, i, &b"abcdefg"[..i as usize])).collect();
    let squeezable: Vec<Record> = (1..=6).map(|i| rec(2, i, &[b'z'; 90])).collect();

    let mut seeds = Vec::new();
    let mut push = |offset: u64, encode: &dyn Fn(&mut Vec<u8>, Position)| {
        let mut bytes = Vec::new();
        encode(&mut bytes, at(offset));
        seeds.push(FrameSeed { bytes, at: at(offset) });
    };
    push(4096, &|o, p| {
        encode_record_frame(o, p, Seq(1), rec(1, 1, b"hello, ratchet").as_ref());
    });
    push(4160, &|o, p| {
        encode_record_frame(o, p, Seq(2), rec(7, 9, b"").as_ref());
    });
    push(8192, &|o, p| {
        encode_record_frame(o, p, Seq(3), rec(0, 1, &checkpoint).as_ref());
    });
    push(12288, &|o, p| {
        encode_batch_frame(o, p, Seq(4), &refs(&batch), Compression::None);
    });
    push(16384, &|o, p| {
        encode_batch_frame(o, p, Seq(5), &refs(&batch[..1]), Compression::None);
    });
    push(20480, &|o, p| {
        encode_batch_frame(o, p, Seq(6), &refs(&squeezable), Compression::Zstd(1));
    });
    assert_eq!(seeds[5].bytes[field::FLAGS], FLAG_ZSTD, "the zstd seed is compressed");
    seeds
}

fn header_seed() -> Vec<u8> {
    let mut b = vec![0u8; SEGMENT_HEADER_USED_BYTES];
    SegmentHeader::new(
        SegmentId(11),
        0xfeed,
        Seq(1),
        1_700_000_000_000,
        SEGMENT_BYTES_MIN,
        4096 + 64,
    )
    .encode(&mut b);
    b
}

fn log_checkpoint(log: u32, trim: u64, last: u64, sealed: bool, epoch: u64) -> LogCheckpoint {
    LogCheckpoint { log_id: LogId(log), lsn_trim: Lsn(trim), lsn_last: Lsn(last), sealed, epoch }
}

fn control_seeds() -> Vec<ControlRecord> {
    vec![
        ControlRecord::Checkpoint(vec![
            log_checkpoint(1, 0, 0, false, 0),
            log_checkpoint(2, 5, 9, true, 3),
            log_checkpoint(3, 7, 7, false, u64::MAX),
        ]),
        ControlRecord::Checkpoint(Vec::new()),
        ControlRecord::Trim { log_id: LogId(4), lsn: Lsn(100) },
        ControlRecord::Seal { log_id: LogId(4) },
        ControlRecord::Fence { log_id: LogId(4), epoch: 2 },
    ]
}

/// Version 1 checkpoints (tag 1), which segments written by version 1 start with.
fn control_v1_seeds() -> Vec<Vec<u8>> {
    vec![
        encode_checkpoint_v1(&[
            log_checkpoint(1, 0, 0, false, 0),
            log_checkpoint(2, 5, 9, true, 0),
            log_checkpoint(3, 7, 7, false, 0),
        ]),
        encode_checkpoint_v1(&[]),
    ]
}

// ---- mutations -------------------------------------------------------------------------------

const INTERESTING_U32: &[u32] = &[
    0,
    1,
    2,
    7,
    8,
    55,
    56,
    0x7f,
    0x80,
    0xff,
    0xffff,
    RECORD_BODY_BYTES_MAX as u32,
    BATCH_BODY_BYTES_MAX as u32,
    BATCH_BODY_BYTES_MAX as u32 + 1,
    BATCH_RECORDS_MAX as u32,
    BATCH_RECORDS_MAX as u32 + 1,
    i32::MAX as u32,
    u32::MAX,
];
const INTERESTING_U64: &[u64] = &[
    0,
    1,
    2,
    3,
    10,
    11,
    12,
    4096,
    4100,
    SEGMENT_BYTES_MIN,
    SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MAX + 1,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX,
];

/// Applies one to four random edits, biased towards the fixed-size fields at `fields`.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>, fields: &[(usize, usize)]) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(9) {
            0 | 1 if !b.is_empty() => {
                let i = rng.below(b.len() * 8);
                b[i / 8] ^= 1 << (i % 8);
            }
            2 if !b.is_empty() => {
                let i = rng.below(b.len());
                let random = rng.next_u64() as u8;
                b[i] = *rng.pick(&[0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, random]);
            }
            3 | 4 => {
                let &(at, width) = rng.pick(fields);
                if at + width <= b.len() {
                    let v = if width == 8 {
                        rng.pick(INTERESTING_U64).to_le_bytes().to_vec()
                    } else {
                        rng.pick(INTERESTING_U32).to_le_bytes()[..width].to_vec()
                    };
                    b[at..at + width].copy_from_slice(&v);
                }
            }
            5 if !b.is_empty() => {
                let n = rng.below(b.len());
                b.truncate(n);
            }
            6 => {
                let n = 1 + rng.below(64);
                if rng.chance(2) {
                    b.resize(b.len() + n, 0);
                } else {
                    b.extend(rng.bytes(n));
                }
            }
            7 if !b.is_empty() => {
                let start = rng.below(b.len());
                let end = start + rng.below(b.len() - start + 1);
                b[start..end].fill(0);
            }
            8 if b.len() >= 2 => {
                // Copy a chunk over another place: duplicated and shifted structure.
                let len = 1 + rng.below(b.len().min(64) - 1);
                let from = rng.below(b.len() - len + 1);
                let to = rng.below(b.len() - len + 1);
                b.copy_within(from..from + len, to);
            }
            _ => {}
        }
    }
}

/// Frame header fields as (offset, width).
const FRAME_FIELDS: &[(usize, usize)] = &[
    (field::MAGIC, 2),
    (field::KIND, 1),
    (field::FLAGS, 1),
    (field::BODY_LEN, 4),
    (field::LOG_ID, 4),
    (field::LSN, 8),
    (field::TIMESTAMP_MS, 8),
    (field::SEGMENT_ID, 8),
    (field::OFFSET, 8),
    (field::SEQ, 8),
];

/// Mutates a frame, and also the inner frames of a batch (header fields at inner offsets).
fn mutate_frame(rng: &mut Rng, b: &mut Vec<u8>) {
    let mut fields: Vec<(usize, usize)> = FRAME_FIELDS.to_vec();
    // Inner frame header fields, assuming the first inner frame starts right after the header.
    fields.extend(FRAME_FIELDS.iter().map(|&(at, w)| (FRAME_HEADER_BYTES + at, w)));
    mutate(rng, b, &fields);
}

/// Re-seals a frame's CRC (and, for an uncompressed batch, its inner frames' CRCs).
fn reseal(b: &mut [u8]) {
    if b.len() > field::FLAGS && b[field::KIND] == 2 && b[field::FLAGS] & FLAG_ZSTD == 0 {
        reseal_batch(b);
    } else {
        reseal_frame(b);
    }
}

/// Rebuilds a zstd batch after mutating its *decompressed* body, so the mutation reaches the
/// inner frames instead of failing decompression.
fn mutate_inside_zstd(rng: &mut Rng, zstd_batch: &[u8]) -> Vec<u8> {
    let body_len = get_u32(zstd_batch, field::BODY_LEN) as usize;
    let stored = &zstd_batch[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + body_len];
    let inner = zstd::bulk::decompress(stored, BATCH_BODY_BYTES_MAX).expect("seed decompresses");
    // Mutate the inner frames as an uncompressed batch, re-sealing them with `reseal_batch`.
    let mut plain = zstd_batch[..FRAME_HEADER_BYTES].to_vec();
    plain.extend_from_slice(&inner);
    mutate_frame(rng, &mut plain);
    if plain.len() < FRAME_HEADER_BYTES {
        plain.resize(FRAME_HEADER_BYTES, 0);
    }
    let inner_len = plain.len() - FRAME_HEADER_BYTES;
    put_u32(&mut plain, field::BODY_LEN, inner_len as u32);
    reseal_batch(&mut plain);
    let compressed = zstd::bulk::compress(&plain[FRAME_HEADER_BYTES..], 1).expect("compress");
    let mut out = plain[..FRAME_HEADER_BYTES].to_vec();
    out.extend_from_slice(&compressed);
    put_u32(&mut out, field::BODY_LEN, compressed.len() as u32);
    out.resize(support::frame_len_for(compressed.len()), 0);
    reseal_frame(&mut out);
    out
}

fn position_for(rng: &mut Rng, buf: &[u8], seed_at: Position) -> Position {
    match rng.below(10) {
        0 => own_position(buf),
        1 => Position {
            segment_id: SegmentId(
                seed_at.segment_id.0.wrapping_add(rng.below(3) as u64).wrapping_sub(1),
            ),
            offset: seed_at.offset.wrapping_add(8 * rng.below(3) as u64).wrapping_sub(8),
        },
        2 => Position { segment_id: SegmentId(rng.next_u64()), offset: rng.next_u64() },
        _ => seed_at,
    }
}

// ---- the loops -------------------------------------------------------------------------------

#[test]
fn mutated_frames() {
    let seeds = frame_seeds();
    run("mutated_frames", CASES_DEFAULT / 3, ALL, |rng, tally| {
        let seed = rng.pick(&seeds);
        let mut buf = seed.bytes.clone();
        match rng.below(8) {
            // One bit flip, CRC not re-sealed: the CRC must catch it.
            0 | 1 => {
                let bit = rng.below(buf.len() * 8);
                buf[bit / 8] ^= 1 << (bit % 8);
                let got = check_frame(&buf, seed.at);
                tally.note(&got);
                assert!(got.is_err(), "bit {bit} flipped yet decoded: {got:?}");
                return;
            }
            2 | 3 => mutate_frame(rng, &mut buf),
            4..=6 => {
                mutate_frame(rng, &mut buf);
                reseal(&mut buf);
            }
            _ => {
                if seed.bytes[field::FLAGS] & FLAG_ZSTD != 0 {
                    buf = mutate_inside_zstd(rng, &seed.bytes);
                } else {
                    mutate_frame(rng, &mut buf);
                    reseal(&mut buf);
                }
            }
        }
        if rng.chance(4) {
            // What follows a frame in a segment: zeros, the next frame, or junk.
            let n = rng.below(128);
            if rng.chance(2) {
                buf.resize(buf.len() + n, 0);
            } else {
                buf.extend(rng.bytes(n));
            }
        }
        let at = position_for(rng, &buf, seed.at);
        tally.note(&check_frame(&buf, at));
    });
}

#[test]
fn arbitrary_bytes() {
    run("arbitrary_bytes", CASES_DEFAULT / 3, ALL, |rng, tally| {
        let len_max = if rng.chance(8) { 512 } else { 96 };
        let len = rng.below(len_max);
        let mut buf = match rng.below(3) {
            0 => rng.bytes(len),
            1 => {
                // Mostly zero, like pre-allocated or padded space with a few stray bytes.
                let mut b = vec![0u8; len];
                for _ in 0..rng.below(4) {
                    if len > 0 {
                        let i = rng.below(len);
                        b[i] = rng.next_u64() as u8;
                    }
                }
                b
            }
            _ => {
                // Frame-ish: right magic, a known kind, a small length, a valid CRC.
                let mut b = rng.bytes(len.max(FRAME_HEADER_BYTES));
                b[field::MAGIC..field::MAGIC + 2].copy_from_slice(b"RF");
                b[field::KIND] = 1 + rng.below(2) as u8;
                b[field::FLAGS] &= 1;
                let body = rng.below(b.len() - FRAME_HEADER_BYTES + 1);
                put_u32(&mut b, field::BODY_LEN, body as u32);
                reseal_frame(&mut b);
                b
            }
        };
        if rng.chance(16) && buf.len() >= SEGMENT_HEADER_USED_BYTES {
            buf[..8].copy_from_slice(b"RTCHTSEG");
            reseal_header(&mut buf);
        }
        let at = position_for(rng, &buf, own_position(&buf));
        tally.note(&check_frame(&buf, at));
        let (frame, at) = split_frame_input(&buf);
        tally.note(&check_frame(frame, at));
        let _ = check_header(&buf);
        let _ = check_control(&buf);
    });
}

#[test]
fn mutated_segment_headers() {
    let seed = header_seed();
    let fields: &[(usize, usize)] =
        &[(8, 2), (10, 2), (12, 4), (16, 8), (24, 8), (32, 8), (40, 8), (48, 8), (56, 4), (60, 4)];
    let outcomes = &["Ok", "Torn", "Corrupt", "Unsupported"];
    run("mutated_segment_headers", CASES_DEFAULT / 6, outcomes, |rng, tally| {
        let mut b = seed.clone();
        if rng.chance(4) {
            let bit = rng.below(b.len() * 8);
            b[bit / 8] ^= 1 << (bit % 8);
            let got = check_header(&b);
            assert!(got.is_err(), "bit {bit} flipped yet decoded");
            tally.note(&got);
            return;
        }
        mutate(rng, &mut b, fields);
        if rng.chance(2) && b.len() >= SEGMENT_HEADER_USED_BYTES {
            reseal_header(&mut b);
        }
        tally.note(&check_header(&b));
    });
}

#[test]
fn mutated_control_records() {
    let mut seeds: Vec<Vec<u8>> = control_seeds().iter().map(ControlRecord::encode).collect();
    seeds.extend(control_v1_seeds());
    // Checkpoint: tag, count, then entries of log id, flags, trim, last, and (tag 5 only)
    // epoch: 29 bytes each in tag 5, 21 in tag 1. Fence: tag, log id, epoch.
    let fields: &[(usize, usize)] = &[
        (0, 1),
        (1, 4),
        (5, 4),
        (5, 8),
        (9, 1),
        (10, 8),
        (18, 8),
        (26, 8),
        (26, 4),
        (30, 1),
        (31, 8),
        (34, 4),
        (38, 1),
        (39, 8),
        (47, 8),
        (55, 8),
    ];
    let tags = [tag::CHECKPOINT_V1, tag::TRIM, tag::SEAL, tag::FENCE, tag::CHECKPOINT, 6];
    // Accepted inputs by tag: a loop whose mutations always broke one kind of record would
    // test that kind's decoding not at all.
    let accepted = RefCell::new(BTreeMap::<u8, u64>::new());
    let outcomes = &["Ok", "Corrupt", "Unsupported"];
    run("mutated_control_records", CASES_DEFAULT / 6, outcomes, |rng, tally| {
        let mut b = rng.pick(&seeds).clone();
        mutate(rng, &mut b, fields);
        if rng.chance(8) && !b.is_empty() {
            // Another tag over the same body: a v1 checkpoint read as v2, a fence as a trim.
            b[0] = *rng.pick(&tags);
        }
        let got = check_control(&b);
        if got.is_ok() {
            *accepted.borrow_mut().entry(b[0]).or_default() += 1;
        }
        tally.note(&got);
    });
    let accepted = accepted.into_inner();
    eprintln!("mutated_control_records accepted by tag: {accepted:?}");
    if env_u64("RATCHET_FUZZ_CASE").is_none() {
        for t in [tag::CHECKPOINT_V1, tag::TRIM, tag::SEAL, tag::FENCE, tag::CHECKPOINT] {
            assert!(accepted.contains_key(&t), "no control record with tag {t} was accepted");
        }
    }
}
