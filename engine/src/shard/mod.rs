//! Shards: one replicated state machine each, owned by one core.
//!
//! [`core::ShardCore`] sequences a shard's requests (prep → persist → durable → apply →
//! events → reply) as a pure state machine; [`clients::Clients`] decides which
//! connection serves each session (handshakes, moves, auth, closes) and
//! [`commit::Committer`] when the WAL is appended to and flushed. The runtime's shard
//! driver turns their decisions into WAL appends, flushes and socket writes. Standalone mode persists
//! locally; Zab replaces "durable on this node" with "committed by a quorum" without
//! changing the sequencing here.

pub mod clients;
pub mod commit;
pub mod core;

pub use self::core::{Action, ClientRef, ConnId, Now, Reply, Role, ShardCore};
