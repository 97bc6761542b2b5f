//! Zab discovery: after election, the prospective leader and a majority agree on a
//! new epoch, and the leader learns that no member of that majority has a newer
//! history than its own. Then synchronisation and broadcast (the [`super::Leader`] and
//! [`super::Follower`] cores) take over.
//!
//! # Protocol (ZooKeeper's Zab 1.0, phase 1)
//! 1. Each learner opens a link and sends `FollowerInfo { last_zxid }` with its
//!    *accepted* epoch as the message's epoch.
//! 2. Once the leader holds the accepted epochs of a majority of voters (its own
//!    included), it picks `epoch = max(accepted) + 1`, makes it its own accepted epoch
//!    durably, and sends `LeaderInfo` (message epoch = the new epoch) to every learner
//!    that reported, and to later ones at once.
//! 3. A learner refuses an epoch below its accepted one (it promised a newer leader);
//!    otherwise it makes the epoch durable as accepted and answers `AckEpoch
//!    { current_epoch, last_zxid, repeat }`. `repeat` says it had accepted this epoch
//!    before (from this or another leader): such an ack may already count for another
//!    leader of the same epoch, so it is never counted toward a majority, only
//!    synchronised once the epoch is established (ZooKeeper acks with epoch -1).
//! 4. Until it is established, the leader gives up ([`DiscoveryError::FollowerNewer`])
//!    if an ack shows a history newer than its own: election should have prevented it
//!    (a restart can make a vote stale), and leading would lose that history. Once a
//!    majority of voters (itself included) acked, the epoch is established: the driver
//!    starts a `Leader` at it and synchronises each acked learner from its `last_zxid`
//!    ([`DiscoveryAction::Sync`]); learners that ack later are synchronised as they do.
//!
//! A learner that already accepted a newer epoch than the leader's (offered by a
//! leader that then failed to establish it) has promised not to follow older epochs:
//! it cannot join. ZooKeeper leaves it out until the next election; here the leader
//! steps down ([`DiscoveryError::LearnerAhead`]) so that the next discovery picks an
//! epoch above the promise and every voter can rejoin. Stepping down is always safe;
//! `tests/sim_election.rs` found the stuck voter this avoids.
//!
//! Why a majority of accepted epochs is enough: any two majorities share a voter, so
//! the next leader's discovery sees an accepted epoch at least this one and picks a
//! larger one: no two leaders ever establish the same epoch, so a zxid names one txn.
//!
//! # Contract
//! Pure: the driver carries out the actions in order, and a
//! [`DiscoveryAction::PersistAcceptedEpoch`] is durable before any later action is
//! carried out (it is a tiny file; ZooKeeper writes `acceptedEpoch` the same way).
//! On an `Err` the server goes back to election.

use std::collections::BTreeMap;

use thiserror::Error;

use super::msg::{Body, Msg};
use super::quorum::majority;
use super::{EPOCH_MAX, Epoch, Member, Role, ServerId, VOTERS_MAX, Zxid};

/// What a server's durable state says about its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    /// The newest epoch it promised to follow (ZooKeeper's `acceptedEpoch`).
    pub accepted_epoch: Epoch,
    /// The epoch of the leader whose history it last synchronised to (`currentEpoch`).
    pub current_epoch: Epoch,
    pub last_zxid: Zxid,
}

impl History {
    /// The order histories are compared in (as election's votes are).
    pub fn key(&self) -> (Epoch, Zxid) {
        (self.current_epoch, self.last_zxid)
    }
}

/// What the driver must do, in the order pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryAction {
    /// Make `epoch` the accepted epoch, durably, before the next action.
    PersistAcceptedEpoch(Epoch),
    /// Put `msg` on the link to `to`.
    Send { to: ServerId, msg: Msg },
    /// Leader: `epoch` is established; start the broadcast-phase leader at it.
    Established { epoch: Epoch },
    /// Leader: synchronise `to` from its `last_zxid` on a link of `epoch`, the one it
    /// acked, as the `role` it said it is (`Leader::follower_connected_at`).
    Sync {
        to: ServerId,
        last_zxid: Zxid,
        epoch: Epoch,
        role: Role,
    },
    /// Learner: the leader's `epoch` is accepted; start a `Follower` at it and wait
    /// for the sync (`Follower::await_sync`).
    Accepted { epoch: Epoch },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DiscoveryError {
    #[error("learner {id} has a newer history {theirs:?} than the leader's {ours:?}")]
    FollowerNewer {
        id: ServerId,
        theirs: (Epoch, Zxid),
        ours: (Epoch, Zxid),
    },
    #[error("learner {id} accepted epoch {accepted}, newer than this leader's {epoch}")]
    LearnerAhead {
        id: ServerId,
        accepted: Epoch,
        epoch: Epoch,
    },
    #[error("the leader offers epoch {offered}, below the accepted epoch {accepted}")]
    StaleEpoch { offered: Epoch, accepted: Epoch },
    #[error("no epoch left after {0}")]
    EpochsExhausted(Epoch),
    #[error("the ensemble needs 1..={VOTERS_MAX} voters and this server among them")]
    BadEnsemble,
}

enum Phase {
    /// Collecting accepted epochs.
    Collecting,
    /// `LeaderInfo` sent; collecting acks.
    Proposed(Epoch),
    Established(Epoch),
}

/// The prospective leader's side.
pub struct LeaderDiscovery {
    id: ServerId,
    members: Vec<Member>,
    own: History,
    phase: Phase,
    /// Learners' accepted epochs and the roles they say they are, from
    /// `FollowerInfo` on their current link.
    infos: BTreeMap<ServerId, (Epoch, Role)>,
    /// Learners that acked the new epoch: their last zxid, and whether the ack counts
    /// toward the majority (it does not when they had accepted the epoch before).
    acks: BTreeMap<ServerId, (Zxid, bool)>,
    /// The epoch established (the phase's epoch moves on with counter rollovers).
    first: Option<Epoch>,
}

impl LeaderDiscovery {
    /// A server that election chose to lead, with its durable `own` history.
    pub fn new(
        id: ServerId,
        members: Vec<Member>,
        own: History,
        out: &mut Vec<DiscoveryAction>,
    ) -> Result<LeaderDiscovery, DiscoveryError> {
        let voters = members
            .iter()
            .filter(|m| m.role == Role::Participant)
            .count();
        let me = members.iter().find(|m| m.id == id);
        if voters == 0 || voters > VOTERS_MAX || me.is_none_or(|m| m.role != Role::Participant) {
            return Err(DiscoveryError::BadEnsemble);
        }
        let mut d = LeaderDiscovery {
            id,
            members,
            own,
            phase: Phase::Collecting,
            infos: BTreeMap::from([(id, (own.accepted_epoch, Role::Participant))]),
            acks: BTreeMap::new(),
            first: None,
        };
        d.maybe_propose(out)?;
        Ok(d)
    }

    /// Dynamic reconfiguration: `id` joins or changes its role (`Some`), or leaves.
    pub fn set_member(&mut self, id: ServerId, role: Option<Role>) {
        self.members.retain(|m| m.id != id);
        match role {
            Some(role) => self.members.push(Member { id, role }),
            None => self.disconnected(id),
        }
    }

    /// The leader rolled its zxid counter over into `epoch` (`leader`'s module docs):
    /// learners that connect from now on are offered that epoch (one that logged the
    /// previous epoch's last txn has accepted it already).
    pub fn rolled_over(&mut self, epoch: Epoch) {
        if let Phase::Established(e) = self.phase
            && epoch > e
        {
            self.phase = Phase::Established(epoch);
            self.own.accepted_epoch = self.own.accepted_epoch.max(epoch);
        }
    }

    /// The epoch once established.
    pub fn established(&self) -> Option<Epoch> {
        match self.phase {
            Phase::Established(e) => Some(e),
            _ => None,
        }
    }

    /// A message from `from`; messages other than discovery's are not for this core.
    pub fn step(
        &mut self,
        from: ServerId,
        msg: Msg,
        out: &mut Vec<DiscoveryAction>,
    ) -> Result<(), DiscoveryError> {
        if from == self.id || !self.members.iter().any(|m| m.id == from) {
            return Ok(());
        }
        match msg.body {
            Body::FollowerInfo { role, .. } => {
                self.infos.insert(from, (msg.epoch, role));
                self.acks.remove(&from);
                match self.phase {
                    Phase::Collecting => self.maybe_propose(out)?,
                    Phase::Proposed(e) | Phase::Established(e) if msg.epoch > e => {
                        return Err(DiscoveryError::LearnerAhead {
                            id: from,
                            accepted: msg.epoch,
                            epoch: e,
                        });
                    }
                    Phase::Proposed(e) | Phase::Established(e) => self.offer(from, e, out),
                }
            }
            Body::AckEpoch {
                current_epoch,
                last_zxid,
                repeat,
            } => self.on_ack(from, msg.epoch, (current_epoch, last_zxid), !repeat, out)?,
            _ => {}
        }
        Ok(())
    }

    /// The link to `id` broke: what it said on it no longer counts.
    pub fn disconnected(&mut self, id: ServerId) {
        if id != self.id {
            self.infos.remove(&id);
            self.acks.remove(&id);
        }
    }

    fn maybe_propose(&mut self, out: &mut Vec<DiscoveryAction>) -> Result<(), DiscoveryError> {
        if self.count_voters(self.infos.keys()) < self.majority() {
            return Ok(());
        }
        let max = self.infos.values().map(|i| i.0).max().unwrap_or(0);
        if max >= EPOCH_MAX {
            return Err(DiscoveryError::EpochsExhausted(max));
        }
        let epoch = max + 1;
        debug_assert!(
            epoch > self.own.accepted_epoch,
            "a new epoch is new to the leader too"
        );
        out.push(DiscoveryAction::PersistAcceptedEpoch(epoch));
        self.own.accepted_epoch = epoch;
        self.phase = Phase::Proposed(epoch);
        self.acks.insert(self.id, (self.own.last_zxid, true));
        let learners: Vec<ServerId> = self
            .infos
            .keys()
            .copied()
            .filter(|&l| l != self.id)
            .collect();
        for l in learners {
            self.offer(l, epoch, out);
        }
        self.maybe_establish(out);
        Ok(())
    }

    fn offer(&self, to: ServerId, epoch: Epoch, out: &mut Vec<DiscoveryAction>) {
        out.push(DiscoveryAction::Send {
            to,
            msg: Msg::new(epoch, Body::LeaderInfo),
        });
    }

    fn on_ack(
        &mut self,
        from: ServerId,
        epoch: Epoch,
        theirs: (Epoch, Zxid),
        counts: bool,
        out: &mut Vec<DiscoveryAction>,
    ) -> Result<(), DiscoveryError> {
        let (Phase::Proposed(e) | Phase::Established(e)) = self.phase else {
            return Ok(());
        };
        // Once established, an ack of an epoch this leader rolled its counter over
        // from (offered before the rollover) still counts: the link keeps that epoch.
        let first = self.first.unwrap_or(e);
        if epoch < first || epoch > e || !self.infos.contains_key(&from) {
            return Ok(()); // an ack from an older link or leader
        }
        if let Phase::Proposed(_) = self.phase
            && theirs > self.own.key()
        {
            return Err(DiscoveryError::FollowerNewer {
                id: from,
                theirs,
                ours: self.own.key(),
            });
        }
        self.acks.insert(from, (theirs.1, counts));
        match self.phase {
            Phase::Established(_) => out.push(DiscoveryAction::Sync {
                to: from,
                last_zxid: theirs.1,
                epoch,
                role: self.role_said(from),
            }),
            _ => self.maybe_establish(out),
        }
        Ok(())
    }

    fn maybe_establish(&mut self, out: &mut Vec<DiscoveryAction>) {
        let Phase::Proposed(epoch) = self.phase else {
            return;
        };
        let counted = self.acks.iter().filter(|(_, a)| a.1).map(|(id, _)| id);
        if self.count_voters(counted) < self.majority() {
            return;
        }
        self.phase = Phase::Established(epoch);
        self.first = Some(epoch);
        out.push(DiscoveryAction::Established { epoch });
        for (&to, &(last_zxid, _)) in self.acks.iter().filter(|(l, _)| **l != self.id) {
            out.push(DiscoveryAction::Sync {
                to,
                last_zxid,
                epoch,
                role: self.role_said(to),
            });
        }
    }

    /// The role `id` said it is on its current link.
    fn role_said(&self, id: ServerId) -> Role {
        self.infos.get(&id).map_or(Role::Observer, |i| i.1)
    }

    /// Those of `ids` that vote: voters in the config that say they are participants
    /// (a learner that has not applied its promotion yet takes no part).
    fn count_voters<'a>(&self, ids: impl Iterator<Item = &'a ServerId>) -> usize {
        ids.filter(|id| {
            self.role_said(**id) == Role::Participant
                && self
                    .members
                    .iter()
                    .any(|m| m.id == **id && m.role == Role::Participant)
        })
        .count()
    }

    fn majority(&self) -> usize {
        majority(
            self.members
                .iter()
                .filter(|m| m.role == Role::Participant)
                .count(),
        )
    }
}

/// A learner's side of discovery, on one link to the leader.
pub struct LearnerDiscovery {
    leader: ServerId,
    own: History,
    accepted: Option<Epoch>,
}

impl LearnerDiscovery {
    /// A new link to `leader`: report the accepted epoch and the log's end.
    /// `role` is what this learner takes itself to be (`Body::FollowerInfo`).
    pub fn new(leader: ServerId, own: History, role: Role, out: &mut Vec<DiscoveryAction>) -> Self {
        out.push(DiscoveryAction::Send {
            to: leader,
            msg: Msg::new(
                own.accepted_epoch,
                Body::FollowerInfo {
                    last_zxid: own.last_zxid,
                    role,
                },
            ),
        });
        LearnerDiscovery {
            leader,
            own,
            accepted: None,
        }
    }

    /// The epoch accepted on this link, once it is.
    pub fn accepted(&self) -> Option<Epoch> {
        self.accepted
    }

    /// A message from `from`; only the leader's `LeaderInfo` is discovery's.
    pub fn step(
        &mut self,
        from: ServerId,
        msg: Msg,
        out: &mut Vec<DiscoveryAction>,
    ) -> Result<(), DiscoveryError> {
        if from != self.leader || msg.body != Body::LeaderInfo || self.accepted.is_some() {
            return Ok(());
        }
        let offered = msg.epoch;
        if offered < self.own.accepted_epoch {
            return Err(DiscoveryError::StaleEpoch {
                offered,
                accepted: self.own.accepted_epoch,
            });
        }
        // An epoch accepted before this link may have been acked to another leader
        // already: this ack must not count twice (two leaders of one epoch).
        let repeat = offered == self.own.accepted_epoch;
        if !repeat {
            out.push(DiscoveryAction::PersistAcceptedEpoch(offered));
            self.own.accepted_epoch = offered;
        }
        out.push(DiscoveryAction::Send {
            to: self.leader,
            msg: Msg::new(
                offered,
                Body::AckEpoch {
                    current_epoch: self.own.current_epoch,
                    last_zxid: self.own.last_zxid,
                    repeat,
                },
            ),
        });
        self.accepted = Some(offered);
        out.push(DiscoveryAction::Accepted { epoch: offered });
        Ok(())
    }
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
