//! Lints that are tests: the dependency rules of `docs/ARCHITECTURE.md` and house rules that
//! a compiler cannot check.
//!
//! Method: read the source tree as text and fail with the offending file and line. The rules:
//! - `segment-format/` is pure: it names no async runtime, does no I/O, reads no clock, and
//!   depends on nothing but its format crates.
//! - `src/fsm/` (the deterministic state machine) never reaches for the invoker, ingress,
//!   admin, the WAL, a clock or randomness.
//! - Every Rust module opens with a `//!` comment saying what it owns.
//! - No machine-specific absolute paths in the sources.
//! - Components reach the log only through the `Log` seam, never the WAL type.
//! - Every stable error code has its row in `docs/errors.md`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target" || n == "node_modules") {
                continue;
            }
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Lines of `file` (comments excluded) containing any of `needles`.
fn offending(file: &Path, needles: &[&str]) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
        .map(|(i, l)| format!("{}:{}: {}", file.display(), i + 1, l.trim()))
        .collect()
}

#[test]
fn segment_format_is_pure() {
    let forbidden = [
        "tokio",
        "async ",
        ".await",
        "std::fs",
        "std::net",
        "std::thread",
        "std::process",
        "SystemTime",
        "Instant",
        "std::io",
        "File::",
        "libc",
    ];
    let bad: Vec<String> = rust_files(&root().join("segment-format/src"))
        .iter()
        .flat_map(|f| offending(f, &forbidden))
        .collect();
    assert!(
        bad.is_empty(),
        "segment-format must stay pure (no I/O, no async, no clock):\n{}",
        bad.join("\n")
    );

    let manifest = std::fs::read_to_string(root().join("segment-format/Cargo.toml")).unwrap();
    let deps =
        manifest.split("[dependencies]").nth(1).unwrap_or("").split("\n[").next().unwrap_or("");
    for line in deps.lines().filter(|l| l.contains('=')) {
        let name = line.split('=').next().unwrap().trim().trim_end_matches(".workspace");
        assert!(["crc32fast", "zstd"].contains(&name), "segment-format may not depend on {name}");
    }
}

#[test]
fn fsm_is_deterministic_and_knows_no_effects() {
    let forbidden = [
        "crate::invoker",
        "crate::ingress",
        "crate::admin",
        "crate::wal",
        "SystemTime",
        "Instant::now",
        "rand::",
        "tokio::time",
        "std::thread",
        "std::fs",
        "std::net",
    ];
    let bad: Vec<String> =
        rust_files(&root().join("src/fsm")).iter().flat_map(|f| offending(f, &forbidden)).collect();
    assert!(bad.is_empty(), "src/fsm must stay deterministic and effect-free:\n{}", bad.join("\n"));
}

#[test]
fn every_module_says_what_it_owns() {
    let mut files = rust_files(&root().join("src"));
    files.extend(rust_files(&root().join("segment-format/src")));
    files.extend(rust_files(&root().join("tests")));
    files.extend(rust_files(&root().join("benches")));
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading //! comment:\n{}", missing.join("\n"));
}

#[test]
fn no_machine_paths_in_sources() {
    let needles = ["/work/", "/root/", "/home/", "/tmp/bash_jobs"];
    let mut files = rust_files(&root().join("src"));
    files.extend(rust_files(&root().join("segment-format")));
    files.extend(rust_files(&root().join("benches")));
    let bad: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("tidy.rs"))
        .flat_map(|f| offending(f, &needles))
        .collect();
    assert!(bad.is_empty(), "machine-specific paths:\n{}", bad.join("\n"));
}

#[test]
fn components_reach_the_log_only_through_the_seam() {
    let forbidden = ["crate::wal::Wal", "wal::Wal", "Wal::", "crate::wal::Reader"];
    let mut bad = Vec::new();
    for dir in ["src/partition", "src/invoker", "src/ingress", "src/admin", "src/fsm"] {
        for f in rust_files(&root().join(dir)) {
            bad.extend(offending(&f, &forbidden));
        }
    }
    assert!(bad.is_empty(), "use the Log seam (SharedLog), not the WAL:\n{}", bad.join("\n"));
}

#[test]
fn every_error_code_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/errors.md")).unwrap();
    for code in ratchet::codes::Code::ALL {
        let row = format!("| {} | {} |", code.as_str(), code.http_status());
        assert!(doc.contains(&row), "docs/errors.md lacks the row starting `{row}`");
    }
}
