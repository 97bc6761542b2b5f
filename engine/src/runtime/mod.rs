//! The runtime: executors, clocks and the shard driver. With `server`'s socket tasks it
//! is where IO happens; every decision it acts on is made by a pure state machine
//! (`shard::{core, clients, commit}`, `server::conn_core`), simulated in
//! `engine/tests/sim_glue.rs`.
//!
//! One glommio executor per core, each pinned to its CPU ([`exec`]). Every core
//! accepts client connections (the listener uses SO_REUSEPORT, so the kernel spreads
//! connections); the state machines of a shard live on their owning core
//! ([`driver`]) and other cores reach them by message ([`msg`]), never by lock.
//! [`epochs`] keeps the Zab epochs durable in dataDir; [`replica`] runs an ensemble
//! member's links and election beside the driver, which carries out its Zab node's
//! actions (`driver_repl.rs`) and, with `replication=craq`, its CRAQ chain's
//! (`driver_chain.rs`).

pub mod clock;
pub mod driver;
pub mod epochs;
pub mod exec;
pub mod fault;
pub mod linkstats;
pub mod mailbox;
pub mod msg;
pub mod replica;
pub mod stats;
