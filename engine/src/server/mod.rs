//! The client-facing server: listening, connection limits, connections, 4lw.

pub mod convert;
pub mod listen;
