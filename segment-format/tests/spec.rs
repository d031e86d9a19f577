//! FORMAT.md and the code agree on every named limit.
//!
//! Goal: the spec is normative, so a constant changed in code but not in `FORMAT.md` (or the
//! reverse) must fail a test rather than mislead a reader. Method: parse the "Limits and
//! constants" table of `FORMAT.md` and compare each row's value with the crate's constant;
//! also require a row for every constant, so a new limit cannot go undocumented.

use std::collections::BTreeMap;

use segment_format::{
    BATCH_BODY_BYTES_MAX, BATCH_RECORDS_MAX, BLOCK_BYTES, CHECKPOINT_ENTRY_BYTES,
    FLUSHES_INFLIGHT_MAX, FORMAT_VERSION, FORMAT_VERSIONS_READABLE, FRAME_ALIGN_BYTES,
    FRAME_HEADER_BYTES, LOG_ID_CONTROL, RECORD_BODY_BYTES_MAX, SECTOR_BYTES, SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN, SEGMENT_HEADER_BYTES, SEGMENT_HEADER_USED_BYTES,
};

/// `name -> value column` of the limits table.
fn limits_table() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md");
    let spec = std::fs::read_to_string(path).expect("FORMAT.md is readable");
    let section =
        spec.split("## Limits and constants").nth(1).expect("FORMAT.md has a limits section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(2)?.to_string()))
        })
        .collect()
}

/// The number at the start of a value cell: "33,554,432 (32 MiB)" is 33554432.
fn leading_number(cell: &str) -> u64 {
    let digits: String =
        cell.split_whitespace().next().unwrap_or("").chars().filter(|c| *c != ',').collect();
    digits.parse().unwrap_or_else(|_| panic!("no number at the start of {cell:?}"))
}

#[test]
fn limits_table_matches_the_code() {
    let table = limits_table();
    let expected: &[(&str, u64)] = &[
        ("FORMAT_VERSION", FORMAT_VERSION.into()),
        ("BLOCK_BYTES", BLOCK_BYTES as u64),
        ("SECTOR_BYTES", SECTOR_BYTES as u64),
        ("SEGMENT_HEADER_BYTES", SEGMENT_HEADER_BYTES as u64),
        ("SEGMENT_HEADER_USED_BYTES", SEGMENT_HEADER_USED_BYTES as u64),
        ("FRAME_HEADER_BYTES", FRAME_HEADER_BYTES as u64),
        ("FRAME_ALIGN_BYTES", FRAME_ALIGN_BYTES as u64),
        ("RECORD_BODY_BYTES_MAX", RECORD_BODY_BYTES_MAX as u64),
        ("BATCH_BODY_BYTES_MAX", BATCH_BODY_BYTES_MAX as u64),
        ("BATCH_RECORDS_MAX", BATCH_RECORDS_MAX as u64),
        ("SEGMENT_BYTES_MIN", SEGMENT_BYTES_MIN),
        ("SEGMENT_BYTES_MAX", SEGMENT_BYTES_MAX),
        ("FLUSHES_INFLIGHT_MAX", FLUSHES_INFLIGHT_MAX),
        ("LOG_ID_CONTROL", LOG_ID_CONTROL.0.into()),
        ("CHECKPOINT_ENTRY_BYTES", CHECKPOINT_ENTRY_BYTES as u64),
    ];
    for &(name, value) in expected {
        let cell = table.get(name).unwrap_or_else(|| panic!("FORMAT.md has no row for {name}"));
        assert_eq!(leading_number(cell), value, "FORMAT.md's value of {name}");
    }
    let readable: Vec<String> = FORMAT_VERSIONS_READABLE.iter().map(u16::to_string).collect();
    assert_eq!(
        table.get("FORMAT_VERSIONS_READABLE").map(String::as_str),
        Some(format!("[{}]", readable.join(", ")).as_str())
    );
    assert_eq!(
        table.len(),
        expected.len() + 1,
        "FORMAT.md lists a constant this test does not check: {table:?}"
    );
}

#[test]
fn version_log_has_a_row_for_the_current_version() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/FORMAT.md");
    let spec = std::fs::read_to_string(path).expect("FORMAT.md is readable");
    let log = spec.split("## Version log").nth(1).expect("FORMAT.md has a version log");
    let version = FORMAT_VERSION.to_string();
    let current = log.lines().any(|l| {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        cells.get(1) == Some(&version.as_str()) && cells.get(2) == Some(&"current")
    });
    assert!(current, "the version log has no row marking version {FORMAT_VERSION} current");
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
    assert!(
        std::path::Path::new(golden).join(format!("v{FORMAT_VERSION}")).is_dir(),
        "the current version has no golden vectors"
    );
}
