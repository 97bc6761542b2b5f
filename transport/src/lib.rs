//! corekeeper's wire formats.
//!
//! - [`jute`]: ZooKeeper's client protocol (the jute records of `zookeeper.jute`), byte
//!   compatible with ZooKeeper 3.5–3.8 clients.
//! - [`peer`]: the replication peer protocol (rkyv messages, 16-aligned crc'd frames).
//!
//! This crate knows nothing of the engine or the WAL: it only turns bytes into typed
//! records and back, within named limits.

pub mod client;
pub mod jute;
pub mod peer;
