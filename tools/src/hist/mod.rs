//! `ckjepsen` (issue 13, standalone part): recorded histories of a seeded workload
//! against one server under faults, and the checkers that judge them.
//!
//! Modules, from pure to effectful:
//! - [`history`]: the JSON-lines history format (header with seed and fault schedule;
//!   invoke / ok / fail / unknown events with monotonic times, session, server, reply
//!   zxid and values) and its pairing back into ops;
//! - [`lin`]: per-key register linearizability (Wing & Gong with Lowe's memoisation),
//!   a brute-force cross-check and witness shrinking;
//! - [`check`]: every checker over a whole history: linearizability of writes + sync
//!   reads and of writes + all reads, ZooKeeper's session guarantees (zxid order,
//!   own writes, sequential names, ephemerals) and lost acknowledged writes;
//! - [`workload`]: the seeded workers and the recorder;
//! - [`nemesis`]: the fault schedule and kill -9 / restart / SIGSTOP / SIGCONT of one
//!   standalone server (started with bench's launcher);
//! - [`runner`]: one run end to end, the table, and the command line.
//!
//! Everything but `workload`, `nemesis` and `runner` is pure and unit-tested on
//! synthetic histories (planted bugs must be reported, clean histories accepted);
//! `tests/histories.rs` runs a short kill/restart run against a real corekeeper.

pub mod check;
pub mod history;
pub mod lin;
pub mod nemesis;
pub mod runner;
pub mod workload;
