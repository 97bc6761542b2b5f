//! The messages the Zab cores exchange, in the cores' own terms.
//!
//! The runtime maps them to the peer wire format (`transport::peer`) later; the cores
//! do not depend on it. Every message carries the sender's epoch: a core ignores (and
//! counts) messages of another epoch, so a late message from an old leader or to an
//! old follower can never be applied.
//!
//! A new link starts with discovery (`FollowerInfo`, `LeaderInfo`, `AckEpoch`; see
//! `discovery`). Then the leader's messages come in this order: exactly one of `Diff`,
//! `Trunc` or `Snap` (the synchronisation, answering the follower's `FollowerInfo`),
//! then the proposals and commits (or informs) the follower missed, then the live
//! stream of `Proposal` / `Commit` (participants) or `Inform` (observers).

use super::{Epoch, Role, TxnBytes, Zxid};

/// One message and the epoch it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub epoch: Epoch,
    pub body: Body,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Follower → leader, first on a new link: the last zxid in its log. In
    /// discovery the message's epoch is the follower's accepted epoch; to an
    /// established leader (the broadcast cores) it is the leader's epoch. `role` is
    /// what the learner takes itself to be: the leader shapes the link's stream by it
    /// (proposals or informs) but counts the learner's acks only where its own
    /// config makes it a voter too, so a learner that has not applied a reconfig of
    /// its role yet still gets the stream that carries that reconfig.
    FollowerInfo { last_zxid: Zxid, role: Role },
    /// Discovery, leader → follower: the new epoch (the message's epoch) to accept.
    LeaderInfo,
    /// Discovery, follower → leader: the new epoch (the message's epoch) is accepted
    /// durably; the follower's history, for the leader to check and synchronise.
    /// `repeat`: the epoch was accepted before this link, so this ack may already
    /// count for another leader and must not count again.
    AckEpoch {
        current_epoch: Epoch,
        last_zxid: Zxid,
        repeat: bool,
    },
    /// Follower → leader: everything up to `zxid` is durable at the sender
    /// (cumulative; a lower or equal one later is harmless).
    Ack { zxid: Zxid },
    /// Leader → follower: your log up to `from` matches mine; what follows continues it.
    Diff { from: Zxid },
    /// Leader → follower: drop your log after `to` (never committed); then as `Diff`.
    Trunc { to: Zxid },
    /// Leader → follower: comes with an image of the state at `zxid` (see
    /// `Action::SendSnapshot`); what follows continues from it.
    Snap { zxid: Zxid },
    /// Leader → participant, after the sync stream: everything up to `zxid` was sent.
    /// Once it is durable the follower takes the epoch as its current epoch (durably)
    /// and answers `AckNewLeader`; it acknowledges nothing before.
    NewLeader { zxid: Zxid },
    /// Participant → leader: the leader's history up to `zxid` is durable here and its
    /// epoch is this follower's current epoch.
    AckNewLeader { zxid: Zxid },
    /// Leader → participant: log this txn.
    Proposal { zxid: Zxid, txn: TxnBytes },
    /// Leader → participant: everything up to `zxid` is committed (cumulative).
    Commit { zxid: Zxid },
    /// Leader → observer: this txn is committed; log and apply it.
    Inform { zxid: Zxid, txn: TxnBytes },
}

impl Msg {
    pub fn new(epoch: Epoch, body: Body) -> Msg {
        Msg { epoch, body }
    }
}
