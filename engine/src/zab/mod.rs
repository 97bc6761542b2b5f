//! Zab, broadcast phase: pure leader and follower cores (raft-rs / etcd-raft style).
//!
//! Three pure cores so far: [`election`] (fast leader election: who leads, by the most
//! up-to-date history), [`discovery`] (the leader and a majority agree on a new epoch;
//! no member of that majority is newer than the leader), both simulated together with
//! a model of the rest of Zab in `tests/sim_election.rs`; and the broadcast phase of
//! an *established* leader of epoch `E` and its followers and observers: proposing,
//! acknowledging, committing, and synchronising a follower that (re)connects
//! (DIFF / TRUNC / SNAP), simulated in `tests/sim_zab.rs`. `tests/sim_cluster.rs`
//! runs all of them together through leader changes, with the driver rules the
//! runtime must follow (module docs of each core, and that simulation's docs).
//!
//! A new leader's uncommitted initial history commits, before anything of its own
//! epoch, once a majority has it durable; and nothing commits or is proposed until a
//! majority of voters acknowledged NEWLEADER, i.e. holds the leader's history durably
//! and took its epoch as current (`Action::SetCurrentEpoch`; see `leader`). A review
//! and `tests/sim_cluster.rs` showed what goes wrong without it: a committed txn lost
//! to a later leader, and a TRUNC that skips a txn. [`wire`] maps the cores' messages
//! to the peer wire (`transport::peer`) and back. The runtime runs the cores over TCP
//! through `peer::node::Node` (see `peer`).
//!
//! # Contract
//! The cores do no IO, read no clock and draw no random numbers. The caller (the shard
//! driver, or the simulator in `tests/sim_zab.rs`) feeds them inputs and carries out the
//! [`Action`]s they push, **in order**:
//! - [`Action::Persist`]: append the txn's bytes to the WAL. The driver reports
//!   durability with `persisted(upto)` (cumulative: everything up to `upto` is durable).
//!   An [`msg::Body::Ack`] leaves a follower only from `persisted`, so "send only after
//!   persist" (DESIGN principle 2) is explicit; the leader counts itself toward a quorum
//!   only from its own `persisted` too.
//! - [`Action::Send`]: put the message on the link to that server. Links are FIFO
//!   (TCP); a broken link drops what was in flight and is reported to both cores
//!   ([`Leader::follower_disconnected`], [`Follower::disconnected`]). Every new link
//!   (a reconnect too) starts with discovery (`LearnerDiscovery` on the learner; the
//!   leader routes `FollowerInfo`/`AckEpoch` to `LeaderDiscovery`), then, at
//!   `Accepted`, [`Follower::await_sync`] and the leader's `Sync`. ([`Follower::connect`]
//!   skips discovery: only the broadcast-only simulation uses it.)
//! - [`Action::Commit`]: apply every logged txn up to `upto_zxid`, in zxid order. The
//!   state a driver has applied at a point of the action stream is therefore exactly
//!   the last `Commit` before it, which is what [`Action::SendSnapshot`] relies on.
//! - [`Action::SendSnapshot`] (leader): send `Msg { epoch, body: Snap { zxid } }` with an
//!   image of the applied state at `zxid` on that link, at this point of its stream.
//! - [`Action::Truncate`] / [`Action::InstallSnapshot`] (follower): cut the WAL after a
//!   zxid / replace state and log with the received image; then report `persisted`.
//! - [`Action::Disconnect`] (leader): close the link to a follower that lags too far;
//!   it reconnects (through discovery, as every new link) and is synchronised again.
//!
//! Txn payloads are opaque bytes ([`TxnBytes`], shared so one proposal can go to many
//! links without copies); the runtime stores them in the WAL as they are.
//!
//! # Invariants (each a `debug_assert!` where it is established)
//! - Zxids are `epoch << 32 | counter`; within an epoch the leader's counters are
//!   contiguous from 1; the leader's log is in strictly increasing zxid order.
//! - The leader commits strictly in zxid order, never beyond what a majority of voters
//!   (observers never count) reported durable, and its commit point only grows.
//! - Uncommitted proposals never exceed `proposals_inflight_max`; the retained
//!   committed log never exceeds `committed_log_max`.
//! - A follower commits only what it has logged (`committed <= last_logged`), acks only
//!   what is durable (`acked <= durable <= last_logged`), and only after it has been
//!   synchronised on the current link, so every acked zxid names the leader's txn.
//! - Messages of another epoch are ignored and counted, never applied.
//!
//! # Bounded state
//! The leader's log holds at most `committed_log_max + proposals_inflight_max`
//! entries and one record per member (`MEMBERS_MAX`); a follower holds only
//! watermarks. One call pushes at most one message per member per log entry.
//! Each link's unacknowledged stream is bounded by `follower_lag_proposals_max`
//! (voters; observers get only committed txns).
//!
//! # Cost (`cargo bench -p bench --bench zab_step`)
//! Pure CPU per proposal (no IO), 3 voters, 100-byte txns, pipelines of N proposals,
//! measured 2026-11-21 on the shared 2-core dev machine (criterion medians):
//!
//! | N in flight | leader, acks per proposal | leader, one ack per follower | follower |
//! |------------:|--------------------------:|-----------------------------:|---------:|
//! |           1 |                    180 ns |                       171 ns |    34 ns |
//! |         100 |                    161 ns |                        62 ns |    15 ns |
//! |       1 000 |                    155 ns |                        68 ns |    16 ns |
//! |      16 384 |                    159 ns |                        64 ns |    16 ns |
//!
//! "Leader" is propose + its own persisted + both followers' acks + commit; batched
//! acks (what group commit produces) cost about 65 ns a proposal, i.e. ~15 M
//! proposals/s of core time, far above what a WAL flush or the network allows.

pub mod discovery;
pub mod election;
pub mod follower;
pub mod leader;
pub mod msg;
pub mod quorum;
pub mod wire;

use std::sync::Arc;

pub use discovery::{DiscoveryAction, DiscoveryError, History, LeaderDiscovery, LearnerDiscovery};
pub use election::{
    Decision, Election, ElectionAction, ElectionConfig, ElectionError, Notification, PeerState,
    Vote,
};
pub use follower::{Follower, FollowerConfig, FollowerError, FollowerStats};
pub use leader::{Leader, LeaderConfig, LeaderError, LeaderStats, Member, ProposeError, SyncKind};
pub use msg::{Body, Msg};

/// A transaction id: `epoch << 32 | counter`, as in ZooKeeper (and `Txn::zxid`).
pub type Zxid = i64;
/// A leader's term. Epoch 0 is "before any leader": no proposal carries it.
pub type Epoch = u32;
/// A server's id in the ensemble (`server.N` in zoo.cfg).
pub type ServerId = u64;
/// A txn's archived bytes, opaque to the cores.
pub type TxnBytes = Arc<[u8]>;

/// Proposed but not yet committed, per leader; beyond it [`Leader::propose`] returns
/// [`ProposeError::Throttled`] (the driver then stops taking writes).
pub const PROPOSALS_INFLIGHT_MAX: usize = 16_384;
/// Committed proposals the leader keeps for DIFF; a follower further behind gets a SNAP.
pub const COMMITTED_LOG_MAX: usize = 65_536;
/// Proposals sent to a synchronised voter and not acknowledged by it; beyond it the
/// leader drops the link ([`Action::Disconnect`]): this bounds each link's send queue.
pub const FOLLOWER_LAG_PROPOSALS_MAX: usize = 32_768;
/// Voters (participants, the leader included) in an ensemble.
pub const VOTERS_MAX: usize = 31;
/// Members (voters and observers) in an ensemble.
pub const MEMBERS_MAX: usize = 128;
/// The highest epoch: zxids are `i64` (as on ZooKeeper's wire), so the epoch must
/// leave the sign bit clear.
pub const EPOCH_MAX: Epoch = i32::MAX as u32;
/// One txn's bytes (ZooKeeper's jute.maxbuffer is 1 MiB; a txn adds headers).
pub const TXN_BYTES_MAX: usize = 2 << 20;
/// The last counter of an epoch. The txn that takes it is the epoch's last; once it
/// commits, the leader goes on in the next epoch without an election (see `leader`,
/// "Counter rollover"). Tests lower it (`Limits::zxid_counter_max`) to roll often.
pub const ZXID_COUNTER_MAX: u32 = u32::MAX;
/// The lowest `zxid_counter_max` a configuration may set.
pub const ZXID_COUNTER_MAX_MIN: u32 = 2;

// A voter keeping up with the commit point is never dropped for lagging.
const _: () = assert!(FOLLOWER_LAG_PROPOSALS_MAX >= PROPOSALS_INFLIGHT_MAX);
// A dropped lagger can still be synchronised by DIFF when it comes back at once.
const _: () = assert!(FOLLOWER_LAG_PROPOSALS_MAX <= COMMITTED_LOG_MAX + PROPOSALS_INFLIGHT_MAX);
const _: () = assert!(VOTERS_MAX <= MEMBERS_MAX);
// Within an epoch the counter (u32) must be able to hold the in-flight window.
const _: () = assert!(PROPOSALS_INFLIGHT_MAX < u32::MAX as usize);

/// The limits one leader runs with: [`Limits::DEFAULT`] (the constants above) in
/// production; smaller ones let tests reach throttling, SNAP and lag drops quickly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub proposals_inflight_max: usize,
    pub committed_log_max: usize,
    pub follower_lag_proposals_max: usize,
    /// The epoch's last counter ([`ZXID_COUNTER_MAX`] in production).
    pub zxid_counter_max: u32,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        proposals_inflight_max: PROPOSALS_INFLIGHT_MAX,
        committed_log_max: COMMITTED_LOG_MAX,
        follower_lag_proposals_max: FOLLOWER_LAG_PROPOSALS_MAX,
        zxid_counter_max: ZXID_COUNTER_MAX,
    };

    /// The same relations the constants are asserted to have, checked at run time.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let ok = self.proposals_inflight_max >= 1
            && self.proposals_inflight_max <= PROPOSALS_INFLIGHT_MAX
            && self.committed_log_max <= COMMITTED_LOG_MAX
            && self.follower_lag_proposals_max >= self.proposals_inflight_max
            && self.follower_lag_proposals_max
                <= self.committed_log_max + self.proposals_inflight_max
            && self.zxid_counter_max >= ZXID_COUNTER_MAX_MIN;
        if ok {
            Ok(())
        } else {
            Err(LeaderError::BadLimits(*self))
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Whether a member votes (counts toward quorums) or only learns committed txns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Participant,
    Observer,
}

/// What the driver must do, in the order pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Append `txn` at `zxid` to the WAL; report `persisted` once durable.
    Persist { zxid: Zxid, txn: TxnBytes },
    /// Put `msg` on the FIFO link to `to`.
    Send { to: ServerId, msg: Msg },
    /// Apply every logged txn up to and including `upto_zxid`, in zxid order.
    Commit { upto_zxid: Zxid },
    /// Leader: send a `Snap { zxid }` message with an image of the applied state at
    /// `zxid` (the last `Commit` pushed before this action) on the link to `to`.
    SendSnapshot { to: ServerId, zxid: Zxid },
    /// Leader: close the link to `to` (it lags too far); it will reconnect.
    Disconnect { to: ServerId },
    /// Follower: drop every logged txn after `after_zxid` (never a committed one).
    /// Appends still in flight must be finished or cancelled first, and a later
    /// `persisted` must not name a dropped zxid.
    Truncate { after_zxid: Zxid },
    /// Follower: replace the applied state and the log with the image received with
    /// the `Snap { zxid }` message, durably; then report `persisted(zxid)`.
    InstallSnapshot { zxid: Zxid },
    /// Make `epoch` this server's current epoch, durably, before the next action. A
    /// follower does it once it holds the leader's whole history; a leader once a
    /// majority of voters has (ZooKeeper's NEWLEADER). Election votes and discovery
    /// compare histories by it.
    SetCurrentEpoch(Epoch),
    /// Raise the accepted epoch to `epoch` (never lower it), durably, before the next
    /// action: pushed before the `Persist` of an epoch's last txn (counter rollover),
    /// so no majority acknowledges that txn without having promised the next epoch
    /// (see `leader`, "Counter rollover").
    SetAcceptedEpoch(Epoch),
}

/// The zxid of `counter` in `epoch`.
pub const fn make_zxid(epoch: Epoch, counter: u32) -> Zxid {
    ((epoch as i64) << 32) | counter as i64
}

/// The epoch a zxid belongs to.
pub const fn epoch_of(zxid: Zxid) -> Epoch {
    (zxid >> 32) as Epoch
}

/// The position of a zxid within its epoch (1 for the epoch's first proposal).
pub const fn counter_of(zxid: Zxid) -> u32 {
    zxid as u32
}

/// The zxid after `zxid` when epochs end at `counter_max`: the next counter, or the
/// first of the next epoch once `zxid` took the last one (counter rollover).
pub const fn zxid_after(zxid: Zxid, counter_max: u32) -> Zxid {
    if counter_of(zxid) >= counter_max {
        make_zxid(epoch_of(zxid) + 1, 1)
    } else {
        zxid + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_parts_round_trip() {
        let z = make_zxid(7, 42);
        assert_eq!(epoch_of(z), 7);
        assert_eq!(counter_of(z), 42);
        assert!(make_zxid(1, u32::MAX) < make_zxid(2, 0));
        assert_eq!(make_zxid(0, 0), 0);
    }

    #[test]
    fn the_zxid_after_an_epochs_last_is_the_next_epochs_first() {
        assert_eq!(zxid_after(make_zxid(3, 7), 10), make_zxid(3, 8));
        assert_eq!(zxid_after(make_zxid(3, 10), 10), make_zxid(4, 1));
        assert_eq!(
            zxid_after(make_zxid(3, u32::MAX), u32::MAX),
            make_zxid(4, 1)
        );
        assert_eq!(zxid_after(make_zxid(3, 0), 10), make_zxid(3, 1));
    }

    #[test]
    fn default_limits_are_valid_and_bad_ones_refused() {
        Limits::DEFAULT.validate().unwrap();
        let bad = Limits {
            follower_lag_proposals_max: 1,
            ..Limits::DEFAULT
        };
        assert!(bad.validate().is_err());
        let zero = Limits {
            proposals_inflight_max: 0,
            ..Limits::DEFAULT
        };
        assert!(zero.validate().is_err());
    }
}
