//! A follower (participant) or observer of an established leader.
//!
//! # Contract
//! - [`Follower::new`] takes what the driver recovered: the last zxid of its durable
//!   log and the zxid its applied state is at.
//! - A new link: after discovery accepted the leader's epoch, [`Follower::await_sync`]
//!   waits for exactly one of `Diff` / `Trunc` / `Snap`; until then it logs, commits
//!   and acknowledges nothing. ([`Follower::connect`] sends its own `FollowerInfo`
//!   instead, skipping discovery: for the broadcast-only simulation, never a runtime,
//!   since discovery refuses a learner that promised a newer epoch.)
//!   [`Follower::disconnected`] reports a broken link.
//! - `Proposal` → `Persist` (participants); `Inform` → `Persist` + `Commit` (observers;
//!   an observer's log holds only committed txns, so after a sync it also commits
//!   whatever it had logged but not applied).
//! - [`Follower::persisted`] (cumulative) → `Ack { durable }` to the leader, only once
//!   synchronised and only for participants: an ack always means "durable here".
//!   A participant's sync ends with `NewLeader { zxid }`: it acknowledges nothing
//!   before that much is durable; then it pushes `SetCurrentEpoch(epoch)` and answers
//!   `AckNewLeader { durable }` (its first ack on the link), then acks as usual.
//! - `Commit { zxid }` → `Commit { upto_zxid }` when it has logged that far.
//! - Any protocol violation (a commit beyond the log, a gap in the proposals, a sync
//!   that does not match what it reported, a message before the sync) returns a
//!   [`FollowerError`] and leaves the follower disconnected: the driver must drop the
//!   link and start a new one (discovery, then `await_sync`), which re-synchronises it.
//! - Messages of another epoch or from another server than the leader are ignored
//!   and counted.
//! - Counter rollover (`leader`'s module docs): logging the txn that takes an epoch's
//!   last counter pushes `SetAcceptedEpoch(epoch + 1)` before its `Persist`;
//!   committing it moves the follower to the next epoch, and `SetCurrentEpoch` follows
//!   once its NEWLEADER is done and that txn is durable here (a current epoch always
//!   comes with the history it names: an election ranks by it). Messages keep the
//!   link's epoch (the one discovery gave it), as on the wire.
//!
//! # Invariants
//! `committed <= last_logged`, `acked <= durable <= last_logged`, the commit point
//! never decreases (TRUNC never cuts below it, SNAP only moves it forward), and the
//! zxids it logs in the leader's epoch are contiguous.

use thiserror::Error;

use super::msg::{Body, Msg};
use super::{Action, Epoch, Role, ServerId, TxnBytes, Zxid, counter_of, epoch_of, make_zxid};

/// What a follower is configured with.
#[derive(Debug, Clone, Copy)]
pub struct FollowerConfig {
    pub id: ServerId,
    pub leader: ServerId,
    /// The established leader's epoch.
    pub epoch: Epoch,
    pub role: Role,
    /// An epoch's last counter (`Limits::zxid_counter_max`, the same on every server).
    pub zxid_counter_max: u32,
}

/// Where the link to the leader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Disconnected,
    /// `FollowerInfo` sent; waiting for `Diff` / `Trunc` / `Snap`.
    Syncing,
    Following,
}

/// A protocol violation by the leader's stream; the follower must re-synchronise.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FollowerError {
    #[error("restored state committed at {committed:#x} beyond the log's last zxid {last:#x}")]
    BadRestore { committed: Zxid, last: Zxid },
    #[error("{what} received before the link was synchronised")]
    BeforeSync { what: &'static str },
    #[error("{what} received while already synchronised")]
    SyncTwice { what: &'static str },
    #[error("DIFF from {from:#x} but this follower reported {last_logged:#x}")]
    DiffMismatch { from: Zxid, last_logged: Zxid },
    #[error("TRUNC to {to:#x} outside [commit point {committed:#x}, last logged {last_logged:#x}]")]
    BadTrunc {
        to: Zxid,
        committed: Zxid,
        last_logged: Zxid,
    },
    #[error("SNAP at {zxid:#x} behind the commit point {committed:#x}")]
    SnapBehind { zxid: Zxid, committed: Zxid },
    #[error("txn {zxid:#x} does not continue the log at {last_logged:#x} in epoch {epoch}")]
    NotNext {
        zxid: Zxid,
        last_logged: Zxid,
        epoch: Epoch,
    },
    #[error("commit of {zxid:#x} beyond the last logged txn {last_logged:#x}")]
    CommitBeyondLog { zxid: Zxid, last_logged: Zxid },
    #[error("{what} is not for a {role:?}")]
    WrongRole { what: &'static str, role: Role },
    #[error("NEWLEADER at {zxid:#x} beyond the last logged txn {last_logged:#x}, or twice")]
    BadNewLeader { zxid: Zxid, last_logged: Zxid },
    #[error("persisted({upto:#x}) reported beyond the last logged txn {last_logged:#x}")]
    PersistedBeyondLog { upto: Zxid, last_logged: Zxid },
}

/// Counters of what the follower did and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerStats {
    pub logged: u64,
    pub acks_sent: u64,
    pub commits: u64,
    pub commits_duplicate: u64,
    pub msgs_stale_epoch: u64,
    pub msgs_not_from_leader: u64,
    /// Messages while disconnected, and leader-bound kinds.
    pub msgs_ignored: u64,
    pub errors: u64,
}

/// A follower or observer of one leader's epoch.
pub struct Follower {
    config: FollowerConfig,
    /// The leader's epoch now: `config.epoch`, plus one per rollover committed.
    epoch: Epoch,
    /// The last epoch pushed as `SetCurrentEpoch` on this link (0: none yet).
    taken: Epoch,
    link: LinkState,
    last_logged: Zxid,
    durable: Zxid,
    committed: Zxid,
    /// The highest ack sent on the current link.
    acked: Zxid,
    /// Where the current link stands with NEWLEADER (module docs).
    newleader: NewLeader,
    stats: FollowerStats,
}

/// A participant acknowledges nothing on a link until it holds the leader's history
/// durably and has taken the leader's epoch as current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NewLeader {
    /// Not received yet on this link.
    Waiting,
    /// Received: done once everything up to this zxid is durable.
    Pending(Zxid),
    Done,
}

impl Follower {
    /// A follower whose durable log ends at `last_zxid` and whose applied state is at
    /// `committed_zxid`; disconnected until [`Follower::connect`].
    pub fn new(
        config: FollowerConfig,
        last_zxid: Zxid,
        committed_zxid: Zxid,
    ) -> Result<Follower, FollowerError> {
        if committed_zxid > last_zxid || committed_zxid < 0 {
            return Err(FollowerError::BadRestore {
                committed: committed_zxid,
                last: last_zxid,
            });
        }
        Ok(Follower {
            epoch: config.epoch,
            taken: 0,
            config,
            link: LinkState::Disconnected,
            last_logged: last_zxid,
            durable: last_zxid,
            committed: committed_zxid,
            acked: 0,
            newleader: NewLeader::Waiting,
            stats: FollowerStats::default(),
        })
    }

    pub fn config(&self) -> &FollowerConfig {
        &self.config
    }
    pub fn link(&self) -> LinkState {
        self.link
    }
    /// The last zxid handed to `Persist` (or recovered).
    pub fn last_logged(&self) -> Zxid {
        self.last_logged
    }
    pub fn durable_zxid(&self) -> Zxid {
        self.durable
    }
    pub fn committed_zxid(&self) -> Zxid {
        self.committed
    }
    pub fn stats(&self) -> &FollowerStats {
        &self.stats
    }
    /// The leader's epoch now (rollovers included).
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// A new link to the leader: report the log's end and wait for the sync.
    pub fn connect(&mut self, out: &mut Vec<Action>) {
        self.link = LinkState::Syncing;
        self.acked = 0;
        self.newleader = NewLeader::Waiting;
        self.send(
            Body::FollowerInfo {
                last_zxid: self.last_logged,
                role: self.config.role,
            },
            out,
        );
    }

    /// A new link on which discovery already told the leader the log's end (its
    /// `AckEpoch`): wait for the sync without sending `FollowerInfo` again.
    pub fn await_sync(&mut self) {
        self.taken = 0;
        self.link = LinkState::Syncing;
        self.acked = 0;
        self.newleader = NewLeader::Waiting;
    }

    /// The link to the leader broke (or the driver dropped it).
    pub fn disconnected(&mut self) {
        self.link = LinkState::Disconnected;
    }

    fn send(&self, body: Body, out: &mut Vec<Action>) {
        out.push(Action::Send {
            to: self.config.leader,
            msg: Msg::new(self.config.epoch, body),
        });
    }

    /// A message from `from`. On `Err` the follower is disconnected (see module docs).
    pub fn step(
        &mut self,
        from: ServerId,
        msg: Msg,
        out: &mut Vec<Action>,
    ) -> Result<(), FollowerError> {
        if from != self.config.leader {
            self.stats.msgs_not_from_leader += 1;
            return Ok(());
        }
        if msg.epoch != self.config.epoch {
            self.stats.msgs_stale_epoch += 1;
            return Ok(());
        }
        if self.link == LinkState::Disconnected {
            self.stats.msgs_ignored += 1;
            return Ok(());
        }
        let r = self.on_msg(msg.body, out);
        if r.is_err() {
            self.stats.errors += 1;
            self.link = LinkState::Disconnected;
        }
        self.check();
        r
    }

    fn on_msg(&mut self, body: Body, out: &mut Vec<Action>) -> Result<(), FollowerError> {
        match body {
            Body::Diff { from } => self.on_diff(from, out),
            Body::Trunc { to } => self.on_trunc(to, out),
            Body::Snap { zxid } => self.on_snap(zxid, out),
            Body::Proposal { zxid, txn } => self.on_proposal(zxid, txn, out),
            Body::Inform { zxid, txn } => self.on_inform(zxid, txn, out),
            Body::Commit { zxid } => self.on_commit(zxid, out),
            Body::NewLeader { zxid } => self.on_newleader(zxid, out),
            Body::AckNewLeader { .. }
            | Body::FollowerInfo { .. }
            | Body::Ack { .. }
            | Body::LeaderInfo
            | Body::AckEpoch { .. } => {
                self.stats.msgs_ignored += 1;
                Ok(())
            }
        }
    }

    fn start_following(&mut self, what: &'static str) -> Result<(), FollowerError> {
        if self.link != LinkState::Syncing {
            return Err(FollowerError::SyncTwice { what });
        }
        self.link = LinkState::Following;
        Ok(())
    }

    fn on_diff(&mut self, from: Zxid, out: &mut Vec<Action>) -> Result<(), FollowerError> {
        if from != self.last_logged {
            return Err(FollowerError::DiffMismatch {
                from,
                last_logged: self.last_logged,
            });
        }
        self.start_following("DIFF")?;
        self.after_sync(out);
        Ok(())
    }

    fn on_trunc(&mut self, to: Zxid, out: &mut Vec<Action>) -> Result<(), FollowerError> {
        if to < self.committed || to > self.last_logged {
            return Err(FollowerError::BadTrunc {
                to,
                committed: self.committed,
                last_logged: self.last_logged,
            });
        }
        self.start_following("TRUNC")?;
        out.push(Action::Truncate { after_zxid: to });
        self.last_logged = to;
        self.durable = self.durable.min(to);
        self.after_sync(out);
        Ok(())
    }

    /// A participant acknowledges what was durable before this link (it is durable
    /// still); an observer's log holds only informed, hence committed, txns, so it
    /// applies what it had logged but not applied before a restart.
    fn after_sync(&mut self, out: &mut Vec<Action>) {
        match self.config.role {
            Role::Participant => self.maybe_ack(out),
            Role::Observer if self.last_logged > self.committed => {
                self.commit(self.last_logged, out);
            }
            Role::Observer => {}
        }
    }

    fn on_snap(&mut self, zxid: Zxid, out: &mut Vec<Action>) -> Result<(), FollowerError> {
        if zxid < self.committed {
            return Err(FollowerError::SnapBehind {
                zxid,
                committed: self.committed,
            });
        }
        self.start_following("SNAP")?;
        out.push(Action::InstallSnapshot { zxid });
        // The image replaces the log: durable again only once `persisted(zxid)`.
        self.durable = self.durable.min(zxid);
        self.last_logged = zxid;
        self.committed = zxid;
        Ok(())
    }

    /// The next txn of the stream must follow the log (contiguously within an epoch).
    fn log_next(
        &mut self,
        what: &'static str,
        zxid: Zxid,
        txn: TxnBytes,
        out: &mut Vec<Action>,
    ) -> Result<(), FollowerError> {
        if self.link != LinkState::Following {
            return Err(FollowerError::BeforeSync { what });
        }
        let e = epoch_of(zxid);
        let contiguous = if e == epoch_of(self.last_logged) {
            zxid == self.last_logged + 1
        } else {
            zxid > self.last_logged
        };
        if !contiguous || e > self.epoch {
            return Err(FollowerError::NotNext {
                zxid,
                last_logged: self.last_logged,
                epoch: self.epoch,
            });
        }
        self.last_logged = zxid;
        self.stats.logged += 1;
        if counter_of(zxid) >= self.config.zxid_counter_max {
            // An epoch's last txn: acked only once the next epoch is promised.
            out.push(Action::SetAcceptedEpoch(e + 1));
        }
        out.push(Action::Persist { zxid, txn });
        Ok(())
    }

    fn on_proposal(
        &mut self,
        zxid: Zxid,
        txn: TxnBytes,
        out: &mut Vec<Action>,
    ) -> Result<(), FollowerError> {
        if self.config.role != Role::Participant {
            return Err(FollowerError::WrongRole {
                what: "Proposal",
                role: self.config.role,
            });
        }
        self.log_next("Proposal", zxid, txn, out)
    }

    fn on_inform(
        &mut self,
        zxid: Zxid,
        txn: TxnBytes,
        out: &mut Vec<Action>,
    ) -> Result<(), FollowerError> {
        if self.config.role != Role::Observer {
            return Err(FollowerError::WrongRole {
                what: "Inform",
                role: self.config.role,
            });
        }
        self.log_next("Inform", zxid, txn, out)?;
        self.commit(zxid, out);
        Ok(())
    }

    fn on_commit(&mut self, zxid: Zxid, out: &mut Vec<Action>) -> Result<(), FollowerError> {
        if self.config.role != Role::Participant {
            return Err(FollowerError::WrongRole {
                what: "Commit",
                role: self.config.role,
            });
        }
        if self.link != LinkState::Following {
            return Err(FollowerError::BeforeSync { what: "Commit" });
        }
        if zxid <= self.committed {
            self.stats.commits_duplicate += 1;
            return Ok(());
        }
        if zxid > self.last_logged {
            return Err(FollowerError::CommitBeyondLog {
                zxid,
                last_logged: self.last_logged,
            });
        }
        self.commit(zxid, out);
        Ok(())
    }

    fn commit(&mut self, zxid: Zxid, out: &mut Vec<Action>) {
        debug_assert!(zxid > self.committed, "the commit point only grows");
        debug_assert!(zxid <= self.last_logged, "commit only what is logged");
        self.committed = zxid;
        self.stats.commits += 1;
        out.push(Action::Commit { upto_zxid: zxid });
        if zxid >= make_zxid(self.epoch, self.config.zxid_counter_max) {
            // The epoch's last txn committed (this commit covers it): the leader goes
            // on in the next one.
            let e = epoch_of(zxid);
            self.epoch = if counter_of(zxid) >= self.config.zxid_counter_max {
                e + 1
            } else {
                e
            };
            self.take_epochs(out);
        }
    }

    /// Once NEWLEADER is done: the link's epoch becomes current, and each epoch the
    /// leader rolled over to once the previous epoch's last txn is durable here (a
    /// current epoch always comes with the history it names).
    fn take_epochs(&mut self, out: &mut Vec<Action>) {
        if self.newleader != NewLeader::Done {
            return;
        }
        let mut e = self.taken.max(self.config.epoch);
        while e < self.epoch && self.durable >= make_zxid(e, self.config.zxid_counter_max) {
            e += 1;
        }
        if e > self.taken {
            self.taken = e;
            out.push(Action::SetCurrentEpoch(e));
        }
    }

    /// The WAL has made everything up to `upto` durable.
    pub fn persisted(&mut self, upto: Zxid, out: &mut Vec<Action>) -> Result<(), FollowerError> {
        if upto > self.last_logged {
            return Err(FollowerError::PersistedBeyondLog {
                upto,
                last_logged: self.last_logged,
            });
        }
        if upto > self.durable {
            self.durable = upto;
            self.maybe_ack(out);
            self.take_epochs(out);
        }
        self.check();
        Ok(())
    }

    fn on_newleader(&mut self, zxid: Zxid, out: &mut Vec<Action>) -> Result<(), FollowerError> {
        if self.link != LinkState::Following {
            return Err(FollowerError::BeforeSync { what: "NEWLEADER" });
        }
        if self.config.role != Role::Participant {
            return Err(FollowerError::WrongRole {
                what: "NEWLEADER",
                role: self.config.role,
            });
        }
        if zxid > self.last_logged || self.newleader != NewLeader::Waiting {
            return Err(FollowerError::BadNewLeader {
                zxid,
                last_logged: self.last_logged,
            });
        }
        self.newleader = NewLeader::Pending(zxid);
        self.maybe_ack(out);
        Ok(())
    }

    /// Acknowledge what is durable, once synchronised, for participants; the first
    /// acknowledgement on a link is `AckNewLeader`, after the epoch is taken.
    fn maybe_ack(&mut self, out: &mut Vec<Action>) {
        if let NewLeader::Pending(z) = self.newleader
            && self.durable >= z
            && self.link == LinkState::Following
        {
            self.newleader = NewLeader::Done;
            self.take_epochs(out);
            debug_assert!(self.taken >= self.config.epoch, "NEWLEADER takes the epoch");
            self.acked = self.durable;
            self.stats.acks_sent += 1;
            return self.send(Body::AckNewLeader { zxid: self.durable }, out);
        }
        let ready = self.link == LinkState::Following
            && self.config.role == Role::Participant
            && self.newleader == NewLeader::Done;
        if ready && self.durable > self.acked {
            self.acked = self.durable;
            self.stats.acks_sent += 1;
            self.send(Body::Ack { zxid: self.durable }, out);
        }
    }

    fn check(&self) {
        debug_assert!(
            self.committed <= self.last_logged,
            "commit only what is logged"
        );
        debug_assert!(
            self.durable <= self.last_logged,
            "durable only what is logged"
        );
        debug_assert!(
            self.acked <= self.durable || self.link != LinkState::Following,
            "ack only what is durable"
        );
    }
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
