//! Fuzzes `SegmentHeader::decode`: never panics, and an accepted header re-encodes to exactly
//! the input's first 64 bytes (oracle shared with `segment-format/tests/fuzz_smoke.rs`).
#![no_main]

#[path = "../../segment-format/tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = support::check_header(data);
});
