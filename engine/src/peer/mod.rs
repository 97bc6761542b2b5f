//! The replication links between servers, for the election port and the quorum port
//! alike: which exist and who dials ([`links::LinkBook`], pure) and the glommio side
//! that carries `transport::peer` frames over them ([`net::PeerNet`]), and fast
//! leader election run over them ([`elect::ElectionRunner`]).
//!
//! # Where this is going (issue 12), and what exists for it
//! A replicated server runs, per replication group (one per shard, so nothing here is
//! a process-wide singleton), on the core that owns the group:
//! 1. election on the election port: [`elect::ElectionRunner`] (done, tested over
//!    loopback);
//! 2. on a decision, the quorum port's [`links::Policy`] becomes `ToLeader(leader)`
//!    and discovery runs over it (`zab::LeaderDiscovery` / `LearnerDiscovery`, pure,
//!    simulated in `tests/sim_cluster.rs`); accepted and current epochs are durable in
//!    `runtime::epochs::EpochFiles`;
//! 3. sync and broadcast: `zab::Leader` / `zab::Follower` (pure, simulated), with the
//!    WAL (`wal::Wal::truncate_after` for TRUNC, `reset_to` after a SNAP, flush results
//!    tagged with the log's generation so a stale one is dropped) and the shard
//!    pipeline: the leader's `ShardCore::lead_from(make_zxid(epoch, 0))` preps with the
//!    zxids `Leader::next_zxid` hands out (the leader owns zxids); a learner's
//!    `ShardCore` forwards its clients' writes (`Action::Forward`), persists the
//!    leader's txn bytes as they arrived (`learn`) and answers its clients by
//!    (session, cxid) when they commit; the leader preps forwarded writes with
//!    `request_forwarded`; a learner's `sync` goes to the leader
//!    (`Action::ForwardSync`, answered through `ShardCore::synced`).
//!
//! What is missing is the task that strings 2 and 3 together over [`net::PeerNet`]
//! (what `tests/sim_cluster.rs` does between its simulated servers), snapshot
//! streaming, forwarded sessions and pings, and the server's use of all of it.

pub mod elect;
pub mod forward;
pub mod links;
pub mod net;
pub mod node;

#[cfg(test)]
mod links_tests;
