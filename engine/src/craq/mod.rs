//! CRAQ: chain replication with apportioned queries (Terrace & Freedman, ATC 2009),
//! corekeeper's second replication mode, as a pure core (no IO, no clock, no random
//! numbers), in the style of the Zab cores: the caller feeds inputs and carries out
//! the [`ChainAction`]s in order. Simulated in `tests/sim_craq.rs`; run by the server
//! (`replication=craq`) in `runtime/driver_chain.rs`.
//!
//! # The chain
//! A [`ChainConfig`] orders the members head first. The configuration manager (the
//! Zab leader of the same servers in the server; the simulator's oracle) decides every
//! change, numbers it with a new `version`, and grants each member a read lease with
//! it. Every chain message carries the version; a member drops messages of an older
//! one and holds those of a newer one until it learns it.
//!
//! # Writes
//! The head prepares a txn (zxid, bytes, the keys it touches) and [`ChainNode::propose`]s
//! it: the head persists it and forwards the same [`Entry`] down the chain at once;
//! each member persists and forwards without waiting for its own flush. After each
//! flush a member tells the tail directly how far it is durable (`Durable`: one hop,
//! so the tail's commit waits for the slowest flush plus one hop, not a hop per
//! member). The tail commits what is durable on it and on every other member (so a
//! commit anywhere means "durable on every member of the chain") and tells every
//! member directly (`Ack`, one hop each, not back up the chain hop by hop). A member
//! applies a txn once it knows the tail committed it (the tail's `Ack`, or a tail
//! query's answer), and may answer the client of a write once it applied it
//! ([`ChainAction::Answerable`]): an answered write is durable on every member, so it
//! survives the crash of every member but one, and a power loss of all
//! followed by a restart of any of them (Zab's election among any quorum finds it).
//!
//! # Reads (apportioned queries)
//! A read at a member names the keys it depends on (a znode's path, its parent's for
//! children lists). With no uncommitted txn touching those keys the member answers
//! from its applied state: every txn the tail committed passed through it first, so a
//! clean key's applied value is the tail's latest. A dirty key makes the member ask the
//! tail for its commit point (one query in flight, later reads wait for the next, so
//! a read never uses an answer given before it arrived); the txns up to that point are
//! committed, the member applies them and answers. The tail answers reads itself once
//! it is *ready*: it has committed everything it held when it became tail and the
//! floor its predecessor sent (what that one knew committed), so a new tail never
//! answers below what the old one had answered. A member without a valid lease, or
//! outside the chain, refuses reads (retryable): the manager removes a member only
//! after its lease ran out, so a member cut off from the chain stops reading first.
//!
//! # Repair
//! On every configuration and every new link a member sends its predecessor `Need {
//! after }` (what it holds) and its successor a `Floor`; the predecessor answers with
//! `Resend { after }` and what follows, from its log, or first a snapshot of its applied state ([`ChainAction::SendSnapshot`]) when the
//! successor's point is not in its log (too old, or a txn the chain never committed:
//! histories match up to a zxid iff both hold that zxid, as in Zab and Raft). A member
//! answers `Need` only once it is synced itself, so "synced" means "holds every
//! committed txn" all down the chain. A removed tail's predecessor becomes tail and
//! commits what it holds; a returning member joins at the tail.
//!
//! # What the manager must do
//! Add a returning (restarted, or cut off and removed) member at the tail; count it
//! *caught up* once it reports being synced, and until then never make it head or put
//! it before a caught-up member (the head must hold every committed txn); remove a
//! member it cannot reach only after its lease ran out; never remove the last
//! caught-up member; change one thing per version.

pub mod chain;
pub mod keys;
pub mod manager;
pub mod wire;

pub use chain::{ChainNode, NodeRole, ReadMode};

pub use crate::zab::{ServerId, TxnBytes, Zxid};

/// Uncommitted and recently committed entries a member keeps for resending; a
/// successor further behind gets a snapshot.
pub const CHAIN_LOG_ENTRIES_MAX: usize = 65_536;
/// Reads waiting at one member for a tail query or for its own readiness; more are
/// refused (retryable).
pub const CHAIN_READS_WAITING_MAX: usize = 65_536;
/// Members of a chain.
pub const CHAIN_MEMBERS_MAX: usize = 16;
/// Messages of a configuration this member has not learned yet, held until it does
/// (more are dropped; the repair handshake recovers what they carried).
pub const CHAIN_FUTURE_MSGS_MAX: usize = 4_096;

const _: () = assert!(CHAIN_LOG_ENTRIES_MAX >= crate::zab::PROPOSALS_INFLIGHT_MAX);

/// Which state a txn may change: the keys (hashed paths) it touches, or all of it
/// (session closes, whose ephemerals are known only at apply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    All,
    Some(Vec<u64>),
}

/// One txn as the chain carries it: the same bytes on every member's WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub zxid: Zxid,
    /// The zxid of the entry before it (0 for the first): a member takes an entry only
    /// right after the one it names.
    pub prev: Zxid,
    pub txn: TxnBytes,
    pub keys: Keys,
}

/// The chain's members in order (head first) and the version that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    pub version: u64,
    pub chain: Vec<ServerId>,
}

impl ChainConfig {
    pub fn position(&self, id: ServerId) -> Option<usize> {
        self.chain.iter().position(|&m| m == id)
    }
    pub fn head(&self) -> Option<ServerId> {
        self.chain.first().copied()
    }
    pub fn tail(&self) -> Option<ServerId> {
        self.chain.last().copied()
    }
    pub fn predecessor(&self, id: ServerId) -> Option<ServerId> {
        let i = self.position(id)?;
        i.checked_sub(1).map(|p| self.chain[p])
    }
    pub fn successor(&self, id: ServerId) -> Option<ServerId> {
        let i = self.position(id)?;
        self.chain.get(i + 1).copied()
    }
}

/// Chain messages (each carries the configuration version it was sent in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainMsg {
    /// Down: an entry to persist and pass on.
    Propagate { version: u64, entry: Entry },
    /// From the tail to every member: everything up to `zxid` is committed (so
    /// durable on every member).
    Ack { version: u64, zxid: Zxid },
    /// Up: the sender holds everything up to `after` and knows everything up to
    /// `committed` committed; send what follows.
    Need {
        version: u64,
        after: Zxid,
        committed: Zxid,
    },
    /// Down, answering `Need`: the entries after `after` up to `upto` come next
    /// (none if level). After a snapshot, `after` is the snapshot's zxid.
    Resend {
        version: u64,
        after: Zxid,
        upto: Zxid,
    },
    /// Down: the sender knows everything up to `zxid` committed.
    Floor { version: u64, zxid: Zxid },
    /// To the tail: everything up to `zxid` is durable on the sender (the tail commits
    /// only what is durable on every member).
    Durable { version: u64, zxid: Zxid },
    /// To the tail: what have you committed?
    Query { version: u64, qid: u64 },
    /// From the tail.
    QueryReply { version: u64, qid: u64, zxid: Zxid },
}

impl ChainMsg {
    pub fn version(&self) -> u64 {
        match self {
            ChainMsg::Propagate { version, .. }
            | ChainMsg::Ack { version, .. }
            | ChainMsg::Need { version, .. }
            | ChainMsg::Resend { version, .. }
            | ChainMsg::Floor { version, .. }
            | ChainMsg::Durable { version, .. }
            | ChainMsg::Query { version, .. }
            | ChainMsg::QueryReply { version, .. } => *version,
        }
    }
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainAction {
    Send {
        to: ServerId,
        msg: ChainMsg,
    },
    /// Append the entry to the WAL; report with [`ChainNode::persisted`] (cumulative).
    Persist(Entry),
    /// Apply this committed txn to the state machine (zxid order, each once).
    Apply {
        zxid: Zxid,
        txn: TxnBytes,
    },
    /// Writes up to `upto` are durable here and below: their clients may be answered
    /// (once applied, which they are).
    Answerable {
        upto: Zxid,
    },
    /// Run read `id` on the applied state now.
    ReadReady {
        id: u64,
    },
    /// Refuse read `id` with a retryable error.
    ReadRefused {
        id: u64,
        why: &'static str,
    },
    /// Drop the WAL's entries after `after` (never committed ones; the predecessor
    /// sends what follows). Flushes of the dropped entries must not be reported.
    Truncate {
        after: Zxid,
    },
    /// Send `to` a snapshot of the applied state (at `zxid`, the last `Apply`), before
    /// the `Propagate`s that follow this action.
    SendSnapshot {
        to: ServerId,
        zxid: Zxid,
    },
}
