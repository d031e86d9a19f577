//! The virtual log (being written).
