//! Fuzzes `ControlRecord::decode`: never panics, and an accepted record re-encodes to exactly
//! the input, or for a version 1 checkpoint (read, no longer written) to the current form of
//! the same value (oracle shared with `segment-format/tests/fuzz_smoke.rs`).
#![no_main]

#[path = "../../segment-format/tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = support::check_control(data);
});
