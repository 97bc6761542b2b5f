//! The replication links between servers, for the election port and the quorum port
//! alike: which exist and who dials ([`links::LinkBook`], pure) and the glommio side
//! that carries `transport::peer` frames over them ([`net::PeerNet`]), and fast
//! leader election run over them ([`elect::ElectionRunner`]).
//!
//! # How a replicated server runs (issue 12)
//! Per replication group (one per shard, so nothing here is a process-wide
//! singleton), on the core that owns the group:
//! 1. election on the election port: [`elect::ElectionRunner`];
//! 2. on a decision, [`node::Node`] (pure) sets the quorum port's [`links::Policy`]
//!    to `ToLeader(leader)` and runs discovery on every new link
//!    (`zab::LeaderDiscovery` / `LearnerDiscovery`); accepted and current epochs are
//!    durable in `runtime::epochs::EpochFiles`;
//! 3. sync and broadcast: `zab::Leader` / `zab::Follower` inside the node, carried out
//!    by the shard driver (`runtime/driver_repl.rs`) with the WAL (TRUNC, SNAP reset,
//!    flush generations) and the shard pipeline: the leader preps with the zxid
//!    `Leader::next_zxid` hands out; learners forward writes, sessions and `sync`
//!    ([`forward`]) and persist the leader's txn bytes as they arrived.
//!
//! `runtime::replica` starts the links and the election and turns frames into
//! driver messages; `tests/sim_node.rs` simulates the node as the driver runs it, and
//! `tests/ensemble.rs` runs real 3-node ensembles. Not yet: dynamic reconfiguration,
//! snapshot streaming without a full in-memory image.

pub mod elect;
pub mod forward;
pub mod links;
pub mod net;
pub mod node;

#[cfg(test)]
mod links_tests;
