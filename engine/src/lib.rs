//! The corekeeper server: configuration, the thread-per-core runtime, the client server
//! built on it, and the pure state machines it drives. The module map is in
//! `../shared/DESIGN.md`.

pub mod config;
pub mod craq;
pub mod logging;
pub mod op;
pub mod peer;
pub mod prep;
pub mod runtime;
pub mod server;
pub mod session;
pub mod shard;
pub mod tree;
pub mod txn;
pub mod zab;
