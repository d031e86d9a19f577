//! The Debian package and the systemd units (`packaging/`, `systemd/`): runs
//! `packaging/check.sh` on the binary under test, which builds the .deb with dpkg-deb, checks
//! its files, modes and conffiles, installs, upgrades and purges it in a scratch root (the
//! maintainer scripts must succeed and create the `ratchet` account), runs
//! `systemd-analyze verify` and `systemd-analyze security` on the units, and checks the
//! example configuration against the binary's `--dump-config`.
//!
//! Never skipped: without dpkg-deb or systemd-analyze the test fails and says what to install.

use std::path::Path;
use std::process::Command;

/// Whether `tool` runs (`tool --version` exits 0).
fn available(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_debian_package_installs_verifies_and_purges_cleanly() {
    for (tool, package) in [("dpkg-deb", "dpkg"), ("dpkg", "dpkg"), ("systemd-analyze", "systemd")]
    {
        assert!(
            available(tool),
            "{tool} is not installed; this test needs it (Debian package `{package}`)"
        );
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("packaging/check.sh"))
        .arg(env!("CARGO_BIN_EXE_ratchet"))
        .current_dir(root)
        .output()
        .expect("run bash packaging/check.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");

    assert!(out.status.success(), "packaging/check.sh failed ({}):\n{report}", out.status);
    assert!(
        stdout.contains("Overall exposure level for ratchet.service:"),
        "packaging/check.sh printed no systemd-analyze security score:\n{report}"
    );
    assert!(
        stdout.contains("config.toml: every documented setting is at its default"),
        "the example configuration was not checked against the binary (it needs \
         `ratchet server --dump-config`, listed in `ratchet server --help`):\n{report}"
    );
    assert!(stdout.contains("packaging/check.sh: OK"), "no final OK line:\n{report}");
}
