//! The `ratchet` binary: command-line entry point.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "--version" | "version" => {
            println!("ratchet {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "up" | "server" => {
            eprintln!(
                "ratchet: `ratchet {cmd}` is not built yet: this version has the storage \
                 foundation (segment format and WAL) only. Run the tests with `bash .ci/run`."
            );
            ExitCode::from(2)
        }
        _ => {
            eprintln!("usage: ratchet <up|server|version>");
            ExitCode::from(2)
        }
    }
}
