//! The node's write-ahead log (being written).
pub mod disk;
