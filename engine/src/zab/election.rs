//! Fast leader election (ZooKeeper's FLE) as a pure state machine.
//!
//! Every voter proposes a leader and tells every other voter; a voter adopts any
//! proposal better than its own (higher `(epoch, zxid, id)`: the most up-to-date
//! history wins, ties broken by id) and re-broadcasts; once a majority of voters
//! propose the same leader in the same round and nothing better arrives for
//! `finalize_ticks`, the voter decides: it leads if the leader is itself, otherwise it
//! follows. A server that joins late (or restarts) while the others have decided
//! learns their decision from their replies and follows a leader once a majority of
//! voters say they follow or lead it and the leader itself says it leads (ZooKeeper
//! also requires their votes to carry the same epoch; see `step_decided` for why this
//! does not).
//!
//! # Contract
//! No IO, no clock, no randomness. The caller feeds notifications from the peer links
//! ([`Election::step`]), calls [`Election::tick`] at a fixed period, starts a round
//! with [`Election::look`] (at start-up and whenever Zab loses its leader or its
//! quorum) and carries out the [`ElectionAction`]s in order. Links may drop, delay and
//! break; only per-link FIFO order is assumed, and lost notifications are made up by
//! the re-broadcast that follows `resend_ticks_min` idle ticks (doubling up to
//! `resend_ticks_max`).
//!
//! Election alone does not make leadership safe: two servers may each decide to lead
//! (a slow voter can count a majority that has since moved on). Zab's discovery makes
//! it safe: a leader acts only after a majority accepts its new epoch. What election
//! guarantees, and what discovery relies on, is this:
//!
//! # Invariants (each a `debug_assert!` where it is established)
//! - A voter's proposal is never worse than its own history ([`Vote::of`] its last
//!   zxid and epoch): it starts as itself and only moves to better proposals. So a
//!   server that decides to lead from a majority's proposals has a history at least as
//!   up to date as every member of that majority, hence every txn a majority logged.
//! - Rounds only grow; a decision names the round it was made in and, for a leader,
//!   the majority that supported it ([`Decision::quorum`]).
//! - Observers never count toward a majority and never become leaders; votes naming a
//!   server that is not a voter are ignored (and counted in [`ElectionStats`]).
//!
//! # Bounded state
//! One vote per voter per map (`VOTERS_MAX` entries), no queues: every call pushes at
//! most one message per voter.

use std::collections::BTreeMap;

use super::quorum::majority;
use super::{Epoch, Role, ServerId, VOTERS_MAX, Zxid};

/// A proposal of a leader, with the history it would lead from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub leader: ServerId,
    /// The proposed leader's last logged zxid.
    pub zxid: Zxid,
    /// The proposed leader's current epoch (ZooKeeper's `peerEpoch`).
    pub epoch: Epoch,
}

impl Vote {
    /// A server's vote for itself.
    pub fn of(id: ServerId, last_zxid: Zxid, epoch: Epoch) -> Vote {
        Vote {
            leader: id,
            zxid: last_zxid,
            epoch,
        }
    }

    /// The order FLE elects by: epoch, then zxid, then server id.
    fn key(&self) -> (Epoch, Zxid, ServerId) {
        (self.epoch, self.zxid, self.leader)
    }

    /// Whether `self` would win against `other`.
    pub fn beats(&self, other: &Vote) -> bool {
        self.key() > other.key()
    }
}

/// What a server is doing, as it tells its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// One election message: the sender's round, proposal and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The sender's election round (ZooKeeper's `logicalclock` / `electionEpoch`).
    pub round: u64,
    pub vote: Vote,
    pub state: PeerState,
    /// The version (zxid) of the members the sender carried out last (0: zoo.cfg's).
    /// A server that knows newer members sends them to the sender
    /// ([`ElectionAction::SendConfig`]), as ZooKeeper's notifications carry configs:
    /// a learner that missed a reconfig making it a voter could otherwise never
    /// vote, and the voters could lack a majority without it.
    pub config: Zxid,
}

/// The outcome of an election at one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub state: PeerState,
    pub vote: Vote,
    pub round: u64,
    /// The voters whose proposals (or decisions) for `vote.leader` decided it.
    pub quorum: Vec<ServerId>,
}

/// What the driver must do, in the order pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionAction {
    /// Put the notification on the link to `to`.
    Send { to: ServerId, n: Notification },
    /// The election is over at this server: start Zab in `state` with `vote.leader`.
    Decided(Decision),
    /// Put the notification on the link to `to` with this server's members (`to`
    /// knows older ones): `to` takes them if they are still newer when they arrive.
    SendConfig { to: ServerId, n: Notification },
}

/// The ensemble and the timing of one server's election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    pub id: ServerId,
    pub role: Role,
    /// Every voter, this server included when it is a participant.
    pub voters: Vec<ServerId>,
    /// Ticks without a better proposal after a majority agrees, before deciding.
    pub finalize_ticks: u32,
    /// Idle ticks before re-broadcasting; doubles after each re-broadcast up to max.
    pub resend_ticks_min: u32,
    pub resend_ticks_max: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionError {
    #[error("the ensemble needs 1..={VOTERS_MAX} distinct voters, got {0:?}")]
    BadVoters(Vec<ServerId>),
    #[error("server {id} is {role:?} but is {} the voters", if *.listed { "among" } else { "not among" })]
    BadRole {
        id: ServerId,
        role: Role,
        listed: bool,
    },
    #[error(
        "election ticks must satisfy 1 <= resend_ticks_min <= resend_ticks_max, finalize_ticks >= 1"
    )]
    BadTicks,
}

/// Counters for `mntr` and the simulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElectionStats {
    pub rounds: u64,
    pub received: u64,
    pub sent: u64,
    pub resends: u64,
    /// Notifications naming a non-voter as leader, or from an unknown sender.
    pub ignored: u64,
}

/// One server's FLE state.
#[derive(Debug)]
pub struct Election {
    cfg: ElectionConfig,
    state: PeerState,
    round: u64,
    /// This server's own history, as a vote for itself.
    own: Vote,
    /// The current proposal (or, once decided, the decision).
    vote: Vote,
    /// Proposals of voters looking in `round` (this server's own included).
    looking: BTreeMap<ServerId, Vote>,
    /// Decisions voters reported: their round, vote and state (following or leading).
    decided: BTreeMap<ServerId, (u64, Vote, PeerState)>,
    /// The tick at which the current proposal, backed by a majority, is decided.
    finalize_at: Option<u64>,
    now: u64,
    idle_ticks: u32,
    resend_ticks: u32,
    stats: ElectionStats,
    /// See [`Notification::config`].
    config: Zxid,
}

impl Election {
    /// A server that has not looked yet (call [`Election::look`] to start).
    pub fn new(cfg: ElectionConfig) -> Result<Election, ElectionError> {
        Self::check(&cfg)?;
        let own = Vote::of(cfg.id, 0, 0);
        Ok(Election {
            resend_ticks: cfg.resend_ticks_min,
            cfg,
            state: PeerState::Looking,
            round: 0,
            own,
            vote: own,
            looking: BTreeMap::new(),
            decided: BTreeMap::new(),
            finalize_at: None,
            now: 0,
            idle_ticks: 0,
            stats: ElectionStats::default(),
            config: 0,
        })
    }

    fn check(cfg: &ElectionConfig) -> Result<(), ElectionError> {
        let mut sorted = cfg.voters.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() || sorted.len() != cfg.voters.len() || sorted.len() > VOTERS_MAX {
            return Err(ElectionError::BadVoters(cfg.voters.clone()));
        }
        let listed = sorted.contains(&cfg.id);
        if listed != (cfg.role == Role::Participant) {
            return Err(ElectionError::BadRole {
                id: cfg.id,
                role: cfg.role,
                listed,
            });
        }
        if cfg.finalize_ticks == 0
            || cfg.resend_ticks_min == 0
            || cfg.resend_ticks_min > cfg.resend_ticks_max
        {
            return Err(ElectionError::BadTicks);
        }
        Ok(())
    }

    pub fn state(&self) -> PeerState {
        self.state
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    /// The current proposal, or the decision once decided.
    pub fn vote(&self) -> Vote {
        self.vote
    }

    pub fn stats(&self) -> ElectionStats {
        self.stats
    }

    /// Dynamic reconfiguration: this server's `role` and the `voters` from now on,
    /// from members of version `config` (the reconfig's zxid), checked as
    /// [`Election::new`] checks them (refused: nothing changes). A round in progress
    /// starts over with them (not for a new version alone); a decided one stands
    /// (Zab's own timers send the server back here when its leader is gone).
    pub fn set_voters(
        &mut self,
        role: Role,
        voters: Vec<ServerId>,
        config: Zxid,
        out: &mut Vec<ElectionAction>,
    ) -> Result<(), ElectionError> {
        let cfg = ElectionConfig {
            role,
            voters,
            ..self.cfg.clone()
        };
        Self::check(&cfg)?;
        let same = cfg.role == self.cfg.role && cfg.voters == self.cfg.voters;
        self.cfg = cfg;
        self.config = config;
        if !same && self.state == PeerState::Looking && self.round > 0 {
            let own = self.own;
            self.look(own.zxid, own.epoch, out);
        }
        Ok(())
    }

    /// Starts a new round from this server's history: proposes itself to every voter.
    pub fn look(&mut self, last_zxid: Zxid, epoch: Epoch, out: &mut Vec<ElectionAction>) {
        self.state = PeerState::Looking;
        self.round += 1;
        self.stats.rounds += 1;
        self.own = Vote::of(self.cfg.id, last_zxid, epoch);
        self.looking.clear();
        self.decided.clear();
        self.finalize_at = None;
        self.resend_ticks = self.cfg.resend_ticks_min;
        self.idle_ticks = 0;
        match self.cfg.role {
            Role::Participant => self.propose(self.own, out),
            Role::Observer => {
                // Its notification only asks the voters to answer with what they know.
                // It names no history (zxid -1 loses to every vote): a voter that has
                // not applied the reconfig that made this server an observer (or
                // removed it) still counts it as a voter, and must never adopt it as
                // a leader that will not lead.
                self.vote = Vote::of(self.cfg.id, -1, 0);
                self.broadcast(out);
            }
        }
    }

    /// A notification from `from`.
    pub fn step(&mut self, from: ServerId, n: Notification, out: &mut Vec<ElectionAction>) {
        self.stats.received += 1;
        if from == self.cfg.id {
            self.stats.ignored += 1;
            return;
        }
        // Members travel from the newer side: pushed to a sender with older ones,
        // pulled (by answering, which makes the sender push) from a newer sender.
        if n.config < self.config {
            self.stats.sent += 1;
            out.push(ElectionAction::SendConfig {
                to: from,
                n: self.notification(),
            });
        } else if n.config > self.config {
            // Not counted until its members are here: counted among older voters
            // it could help a majority those voters no longer make.
            self.reply(from, out);
            return;
        }
        if !self.is_voter(from) {
            // An observer asking who leads: answer, never count it. Only a looking one:
            // answering a decided observer's reply would bounce forever.
            if n.state == PeerState::Looking {
                self.reply(from, out);
            }
            return;
        }
        if !self.is_voter(n.vote.leader) {
            self.stats.ignored += 1;
            return;
        }
        if self.state != PeerState::Looking {
            // Decided: tell a looking voter what was decided, so it can join.
            if n.state == PeerState::Looking {
                self.reply(from, out);
            }
            return;
        }
        self.idle_ticks = 0;
        match n.state {
            // Observers take no part in the vote: they wait for voters' decisions.
            PeerState::Looking if self.cfg.role == Role::Observer => {}
            PeerState::Looking => self.step_looking(from, n, out),
            PeerState::Following | PeerState::Leading => self.step_decided(from, n, out),
            PeerState::Observing => self.stats.ignored += 1,
        }
    }

    /// One period of the caller's clock: decides once the finalize wait is over, and
    /// re-broadcasts when nothing was heard for a while.
    pub fn tick(&mut self, out: &mut Vec<ElectionAction>) {
        self.now += 1;
        if self.state != PeerState::Looking {
            return;
        }
        if self.finalize_at.is_some_and(|at| self.now >= at) {
            self.finalize_at = None;
            if let Some(quorum) = self.backing(&self.looking, self.vote) {
                return self.decide(self.vote, self.round, quorum, out);
            }
        }
        self.idle_ticks += 1;
        if self.idle_ticks >= self.resend_ticks {
            self.idle_ticks = 0;
            self.resend_ticks = (self.resend_ticks * 2).min(self.cfg.resend_ticks_max);
            self.stats.resends += 1;
            self.broadcast(out);
        }
    }

    fn step_looking(&mut self, from: ServerId, n: Notification, out: &mut Vec<ElectionAction>) {
        self.decided.remove(&from);
        if n.round < self.round {
            // A voter behind: our proposal brings it to this round.
            return self.reply(from, out);
        }
        if n.round > self.round {
            self.round = n.round;
            self.looking.clear();
            let best = if n.vote.beats(&self.own) {
                n.vote
            } else {
                self.own
            };
            self.propose(best, out);
        } else if n.vote.beats(&self.vote) {
            self.propose(n.vote, out);
        }
        self.looking.insert(from, n.vote);
        self.arm_finalize();
    }

    fn step_decided(&mut self, from: ServerId, n: Notification, out: &mut Vec<ElectionAction>) {
        self.decided.insert(from, (n.round, n.vote, n.state));
        if n.round == self.round {
            self.looking.insert(from, n.vote);
            if let Some(quorum) = self.backing(&self.looking, n.vote)
                && self.leader_confirmed(n.vote.leader, n.round)
            {
                return self.decide(n.vote, n.round, quorum, out);
            }
        }
        // Joining an ensemble that decided without us: a majority follows or leads
        // the same leader, and that leader says it leads. Unlike ZooKeeper, the votes
        // need not carry the same epoch: a voter that decided in an older round holds
        // an older vote for the same leader, and requiring equal votes can leave a
        // restarted voter out for good (found by tests/sim_election.rs). Following a
        // stale leader is harmless: discovery fails and election runs again.
        let leader = n.vote.leader;
        let quorum: Vec<ServerId> = self
            .decided
            .iter()
            .filter(|(_, (_, v, _))| v.leader == leader)
            .map(|(&id, _)| id)
            .collect();
        if quorum.len() >= self.majority() && self.leader_confirmed(leader, n.round) {
            // The leader's own word on its vote and round, when it is not us.
            let (round, vote) = self
                .decided
                .get(&leader)
                .map_or((n.round, n.vote), |d| (d.0, d.1));
            self.round = self.round.max(round);
            self.decide(vote, self.round, quorum, out);
        }
    }

    /// Adopts `vote` as this round's proposal and tells every voter.
    fn propose(&mut self, vote: Vote, out: &mut Vec<ElectionAction>) {
        debug_assert!(
            self.cfg.role == Role::Participant,
            "observers do not propose"
        );
        debug_assert!(
            !self.own.beats(&vote),
            "a proposal is never worse than the proposer's own history"
        );
        self.vote = vote;
        self.finalize_at = None;
        if self.cfg.role == Role::Participant {
            self.looking.insert(self.cfg.id, vote);
        }
        self.broadcast(out);
        self.arm_finalize();
    }

    /// Starts the finalize wait when a majority backs the current proposal.
    fn arm_finalize(&mut self) {
        if self.finalize_at.is_none() && self.backing(&self.looking, self.vote).is_some() {
            self.finalize_at = Some(self.now + u64::from(self.cfg.finalize_ticks));
        }
    }

    fn decide(
        &mut self,
        vote: Vote,
        round: u64,
        quorum: Vec<ServerId>,
        out: &mut Vec<ElectionAction>,
    ) {
        debug_assert!(round >= self.round, "rounds only grow");
        debug_assert!(quorum.len() >= self.majority(), "decided by a majority");
        let state = match self.cfg.role {
            Role::Observer => PeerState::Observing,
            Role::Participant if vote.leader == self.cfg.id => PeerState::Leading,
            Role::Participant => PeerState::Following,
        };
        debug_assert!(
            self.cfg.role == Role::Participant || vote.leader != self.cfg.id,
            "observers never lead"
        );
        self.state = state;
        self.vote = vote;
        self.round = round;
        self.finalize_at = None;
        out.push(ElectionAction::Decided(Decision {
            state,
            vote,
            round,
            quorum,
        }));
    }

    /// The voters in `votes` proposing exactly `vote`, if they are a majority.
    fn backing(&self, votes: &BTreeMap<ServerId, Vote>, vote: Vote) -> Option<Vec<ServerId>> {
        let ids: Vec<ServerId> = votes
            .iter()
            .filter(|(id, v)| **v == vote && self.is_voter(**id))
            .map(|(&id, _)| id)
            .collect();
        (ids.len() >= self.majority()).then_some(ids)
    }

    /// ZooKeeper's `checkLeader`: we may follow `leader` only if it says it leads;
    /// we may lead only in the round we are in.
    fn leader_confirmed(&self, leader: ServerId, round: u64) -> bool {
        if leader == self.cfg.id {
            return self.cfg.role == Role::Participant && round == self.round;
        }
        self.decided
            .get(&leader)
            .is_some_and(|(_, v, s)| *s == PeerState::Leading && v.leader == leader)
    }

    fn reply(&mut self, to: ServerId, out: &mut Vec<ElectionAction>) {
        self.stats.sent += 1;
        out.push(ElectionAction::Send {
            to,
            n: self.notification(),
        });
    }

    fn broadcast(&mut self, out: &mut Vec<ElectionAction>) {
        let n = self.notification();
        for &to in self.cfg.voters.iter().filter(|&&v| v != self.cfg.id) {
            self.stats.sent += 1;
            out.push(ElectionAction::Send { to, n });
        }
    }

    fn notification(&self) -> Notification {
        Notification {
            round: self.round,
            vote: self.vote,
            state: self.state,
            config: self.config,
        }
    }

    fn is_voter(&self, id: ServerId) -> bool {
        self.cfg.voters.contains(&id)
    }

    fn majority(&self) -> usize {
        majority(self.cfg.voters.len())
    }
}

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;
