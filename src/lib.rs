//! Ratchet: a durable execution server that real Restate SDK services and the `restate` CLI
//! work against. See `docs/ARCHITECTURE.md` for the map.
//!
//! Invariant of the whole crate: the log is the ground truth. Nothing is acknowledged to
//! anyone before the record that caused it is durable in the WAL.

pub mod admin;
pub mod clock;
pub mod codes;
pub mod config;
pub mod defect;
pub mod fsm;
pub mod fsutil;
pub mod ingress;
pub mod invoker;
pub mod listeners;
pub mod log;
pub mod metrics;
pub mod otel;
pub mod partition;
pub mod protocol;
pub mod runtime;
pub mod schema;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod systemd;
pub mod timefmt;
pub mod wal;
