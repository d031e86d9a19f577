//! Fuzzes `decode_frame`: never panics, and an accepted frame re-encodes to its own bytes.
//! The first input byte picks the read position (see `split_frame_input`); the oracle is the
//! one the seeded smoke loop in `segment-format/tests/fuzz_smoke.rs` runs under `cargo test`.
#![no_main]

#[path = "../../segment-format/tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (frame, at) = support::split_frame_input(data);
    let _ = support::check_frame(frame, at);
});
