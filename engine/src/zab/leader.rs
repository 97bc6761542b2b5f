//! The leader of an established epoch: proposes, counts durable acks, commits in zxid
//! order, and synchronises followers that (re)connect.
//!
//! # Contract
//! - [`Leader::new`] takes the epoch `E` (established by discovery), the ensemble, and
//!   the leader's history: the txns of its durable log after `base_zxid` (what its
//!   snapshot covers), of which those up to `committed_zxid` are known committed (its
//!   applied state). The rest, txns of earlier epochs that may or may not have been
//!   committed, are Zab's "initial history": they are sent to followers like
//!   proposals and commit, in order and before any proposal of `E`, once a majority
//!   has them durable. Until then the driver's applied state is at `committed_zxid`,
//!   so nothing uncommitted is ever served.
//! - **NEWLEADER.** Every participant's sync stream ends with `NewLeader { zxid }`; the
//!   follower acknowledges nothing until that much is durable and it has taken the
//!   epoch as current (`Action::SetCurrentEpoch`), then answers `AckNewLeader`. The
//!   leader commits nothing and refuses proposals ([`ProposeError::NotReady`]) until
//!   a majority of voters (itself included) acknowledged NEWLEADER; then it takes the
//!   epoch as current itself. Without this, a majority holding a committed txn of
//!   the history could still carry an older current epoch and lose the next
//!   election to a server without it, and a leader could propose in its epoch with
//!   a log that later leaders truncate wrongly (both found by review and
//!   `tests/sim_cluster.rs`). Call [`Leader::start`] once after `new`.
//! - The leader owns zxids: [`Leader::next_zxid`] says which the next proposal of `E`
//!   gets (or why none is taken now), the shard preps its txn with it
//!   (`ShardCore::lead_from` starts prep at the epoch's base), and [`Leader::propose`]
//!   takes the txn only with that zxid, pushing `Persist` for the leader's own WAL and
//!   a `Proposal` to every synchronised participant. Asking first means a refusal never
//!   strands a txn that prep already counted. The leader
//!   counts toward a quorum only from [`Leader::persisted`] (its own durability), as a
//!   follower does from its acks.
//! - [`Leader::step`] takes `Ack` (cumulative durable zxid), `AckNewLeader`, and
//!   `FollowerInfo` of this epoch (a new link: synchronise, as
//!   [`Leader::follower_connected`]; the broadcast-only simulation uses it). A runtime
//!   routes every `FollowerInfo` to discovery instead, which calls
//!   `follower_connected` once the learner acked the epoch: a learner must never skip
//!   discovery's checks. Messages of another epoch, from unknown senders, duplicate or
//!   regressing acks, and acks beyond the log are ignored and counted in
//!   [`LeaderStats`].
//! - A commit is pushed as one `Commit { upto_zxid }` for the driver, one cumulative
//!   `Commit` message per synchronised participant, and one `Inform` per txn per
//!   synchronised observer.
//!
//! # Synchronisation (choosing DIFF, TRUNC or SNAP)
//! The log holds the last `committed_log_max` committed proposals after `log_base`,
//! then the in-flight ones. A follower reporting `last_zxid`:
//! - equal to `log_base` or to a zxid in the log: **DIFF** from there;
//! - above `log_base` but not in the log (a txn of an older epoch that the leader does
//!   not have, hence was never committed): **TRUNC** to the highest zxid of the log
//!   below it (or `log_base`), then as DIFF;
//! - below `log_base`: **SNAP**: the driver sends an image of the applied state at the
//!   commit point, then the in-flight proposals follow;
//! - of epoch `E` or later and beyond the log: refused ([`LeaderError::FollowerAhead`]):
//!   only this leader makes zxids of `E`, so that follower follows someone else.
//!
//! For a participant the missed committed proposals are followed by one cumulative
//! `Commit` (it also commits what the follower had but had not seen committed), then
//! the in-flight proposals; an observer gets `Inform`s of the committed ones only.
//!
//! # Counter rollover (a new epoch without an election)
//! The txn that takes an epoch's last counter (`Limits::zxid_counter_max`, 2^32 - 1 in
//! production) is that epoch's last; the zxid after it is `(E + 1) << 32 | 1`
//! ([`super::zxid_after`], which prep uses too). ZooKeeper forces an election here;
//! this leader moves on alone:
//! - Proposing the last txn of `E` pushes `SetAcceptedEpoch(E + 1)` before its
//!   `Persist`, on the leader and on every follower that logs it (`follower`). So
//!   once it commits, a majority has durably promised `E + 1`: any later discovery
//!   sees that promise and picks a higher epoch, and no other leader can establish
//!   `E + 1` (discovery never counts an ack of an epoch already accepted, the
//!   `repeat` rule), so zxids of `E + 1` name this leader's txns only.
//!   `tests/sim_cluster.rs` rolls over every few txns in half its seeds; a planted
//!   late promise (made durable only at commit) is caught there as an epoch taken
//!   by two leaders.
//! - Proposals of `E + 1` prepped meanwhile are held here, neither persisted nor
//!   sent, until that txn commits; then the leader goes on in `E + 1` and releases
//!   them. `E + 1` becomes its current epoch (`SetCurrentEpoch`) once that txn is
//!   durable here too, as on a follower: a current epoch always comes with the
//!   history it names, since elections rank servers by it.
//! - Every link keeps the epoch discovery gave it: messages on it carry that epoch,
//!   across rollovers, as on the wire (where only discovery names an epoch). A
//!   learner that connects after a rollover is offered the new epoch
//!   (`LeaderDiscovery::rolled_over`).
//! - Clients see a pause of one commit round: no election, no closed connection.
//!
//! # Invariants
//! See the module docs of `zab`; each is a `debug_assert!` where it is established.

use std::collections::VecDeque;

use thiserror::Error;

use super::msg::{Body, Msg};
use super::quorum::{commit_point, majority, reached_by};
use super::{
    Action, EPOCH_MAX, Epoch, Limits, MEMBERS_MAX, Role, ServerId, TXN_BYTES_MAX, TxnBytes,
    VOTERS_MAX, Zxid, counter_of, epoch_of, make_zxid, zxid_after,
};

/// One member of the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: ServerId,
    pub role: Role,
}

/// What a leader is configured with.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub id: ServerId,
    /// The established epoch (1..=`EPOCH_MAX`).
    pub epoch: Epoch,
    /// Every member, the leader included (as a participant).
    pub members: Vec<Member>,
    pub limits: Limits,
    /// Fault injection for tests only: commit once this many voters have a proposal
    /// durable instead of a majority. It exists so the simulation can prove that its
    /// checker catches an unsafe leader; never set it anywhere else.
    #[doc(hidden)]
    pub fault_commit_quorum: Option<usize>,
}

impl LeaderConfig {
    /// A leader `id` of `epoch` over `members`, with the default limits.
    pub fn new(id: ServerId, epoch: Epoch, members: Vec<Member>) -> LeaderConfig {
        LeaderConfig {
            id,
            epoch,
            members,
            limits: Limits::DEFAULT,
            fault_commit_quorum: None,
        }
    }
}

/// Why a leader refused a configuration or an input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LeaderError {
    #[error("zab limits out of range or inconsistent: {0:?}")]
    BadLimits(Limits),
    #[error("epoch {0} outside 1..={max}", max = EPOCH_MAX)]
    BadEpoch(Epoch),
    #[error("the leader {0} must be a participant of its ensemble")]
    LeaderNotParticipant(ServerId),
    #[error("server {0} appears twice in the ensemble")]
    DuplicateMember(ServerId),
    #[error("ensemble of {members} members / {voters} voters exceeds {members_max} / {voters_max}")]
    TooManyMembers {
        members: usize,
        voters: usize,
        members_max: usize,
        voters_max: usize,
    },
    #[error(
        "history zxid {zxid:#x} is not above the previous one ({prev:#x}) or not below epoch {epoch}"
    )]
    BadHistory {
        zxid: Zxid,
        prev: Zxid,
        epoch: Epoch,
    },
    #[error(
        "committed zxid {committed:#x} is neither the base {base:#x} nor in the history (last {last:#x})"
    )]
    BadCommitted {
        committed: Zxid,
        base: Zxid,
        last: Zxid,
    },
    #[error("server {0} is not a member of the ensemble")]
    UnknownMember(ServerId),
    #[error(
        "server {id} reports zxid {last_zxid:#x}, beyond this leader's log (last {leader_last:#x})"
    )]
    FollowerAhead {
        id: ServerId,
        last_zxid: Zxid,
        leader_last: Zxid,
    },
    #[error("persisted({upto:#x}) reported beyond the last proposal {last:#x}")]
    PersistedBeyondLog { upto: Zxid, last: Zxid },
    #[error(
        "server {id}'s link took epoch {link_epoch}, not one of this leader's {first}..={epoch}"
    )]
    BadLinkEpoch {
        id: ServerId,
        link_epoch: Epoch,
        first: Epoch,
        epoch: Epoch,
    },
}

/// Why [`Leader::propose`] refused a txn.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProposeError {
    #[error("throttled: {inflight} proposals in flight (max {max})")]
    Throttled { inflight: usize, max: usize },
    #[error("txn of {len} bytes exceeds {max}", max = TXN_BYTES_MAX)]
    TxnTooLarge { len: usize },
    #[error("epoch {0} is the last epoch: a zxid counter rollover is impossible")]
    ZxidExhausted(Epoch),
    #[error("not ready: a majority has not acknowledged NEWLEADER yet")]
    NotReady,
    #[error("txn prepped with zxid {zxid:#x}, but the next zxid is {expected:#x}")]
    NotNext { zxid: Zxid, expected: Zxid },
}

/// How a (re)connecting follower was synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Diff,
    Trunc,
    Snap,
    /// An observer's sync waits until the leader is ready (its commit point is
    /// known only then, and an observer's stream carries committed txns only).
    Deferred,
}

/// Counters of what the leader did and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderStats {
    pub proposals: u64,
    pub throttled: u64,
    /// Times the commit point advanced.
    pub commits: u64,
    pub msgs_stale_epoch: u64,
    pub msgs_unknown_sender: u64,
    /// A message a leader never expects (leader → follower kinds, observer acks).
    pub msgs_unexpected: u64,
    pub acks_duplicate: u64,
    pub acks_beyond_log: u64,
    /// Acks from a follower not synchronised on its current link.
    pub acks_unsynced: u64,
    /// A follower reported a log shorter than it had acknowledged (lost durable data).
    pub acks_regressed: u64,
    pub syncs_diff: u64,
    pub syncs_trunc: u64,
    pub syncs_snap: u64,
    pub lagging_dropped: u64,
    /// Counter rollovers: epochs this leader moved to without an election.
    pub rollovers: u64,
}

impl Peer {
    /// Its acks count: a voter in the config that streams as one.
    fn votes(&self) -> bool {
        self.role == Role::Participant && self.stream == Role::Participant
    }
}

struct Entry {
    zxid: Zxid,
    txn: TxnBytes,
}

struct Peer {
    id: ServerId,
    /// What the leader's config makes it: only a participant's acks count.
    role: Role,
    /// What it said it is on its current link (`Body::FollowerInfo`): the stream it
    /// gets (proposals and NEWLEADER, or informs). It differs from `role` while a
    /// reconfig of its role is committed here but not yet applied there.
    stream: Role,
    /// Synchronised on its current link: the live stream goes to it.
    synced: bool,
    /// Its highest durable zxid (cumulative acks). Durable data survives crashes and
    /// reconnects, so this is kept across them.
    acked: Zxid,
    /// The leader's last zxid when it was synchronised (lag is counted from here).
    sync_zxid: Zxid,
    /// It acknowledged a `NewLeader`: it holds the leader's history and epoch.
    newleader_acked: bool,
    /// The zxid of the `NewLeader` sent on its current link.
    newleader_zxid: Zxid,
    /// The epoch its current link took in discovery: every message on the link
    /// carries it, across counter rollovers, as on the wire (module docs).
    link_epoch: Epoch,
}

/// An established Zab leader.
pub struct Leader {
    id: ServerId,
    /// The epoch of this leader's zxids and messages: the established one, plus one
    /// per counter rollover (module docs).
    epoch: Epoch,
    /// The epoch discovery established.
    first_epoch: Epoch,
    /// The last txn of `epoch` is proposed and not yet committed (module docs).
    rolling: bool,
    /// The last epoch pushed as `SetCurrentEpoch` (0 until ready).
    current: Epoch,
    /// Proposals of the next epoch prepped while `rolling`: neither persisted nor
    /// sent until the rollover commits.
    held: VecDeque<Entry>,
    limits: Limits,
    quorum: usize,
    fault_quorum: bool,
    peers: Vec<Peer>,
    /// Retained committed proposals, then the in-flight ones; zxids increasing.
    log: VecDeque<Entry>,
    /// The zxid just before `log[0]`: what a snapshot must cover for DIFF to work.
    log_base: Zxid,
    /// How many entries at the front of `log` are committed.
    committed_len: usize,
    committed: Zxid,
    last_zxid: Zxid,
    /// The leader's own durable zxid.
    durable: Zxid,
    /// A majority of voters (the leader included) holds the history and the epoch:
    /// only from then on does the leader commit or propose.
    ready: bool,
    /// Observer-stream syncs that wait for `ready`: (learner, last zxid, link epoch).
    deferred_syncs: Vec<(ServerId, Zxid, Epoch)>,
    stats: LeaderStats,
}

impl Leader {
    /// A leader over `history` (`(zxid, txn)` increasing, after `base_zxid`, durable in
    /// the leader's WAL), committed up to `committed_zxid` (module docs).
    pub fn new(
        config: LeaderConfig,
        base_zxid: Zxid,
        committed_zxid: Zxid,
        history: Vec<(Zxid, TxnBytes)>,
    ) -> Result<Leader, LeaderError> {
        config.limits.validate()?;
        if config.epoch == 0 || config.epoch > EPOCH_MAX {
            return Err(LeaderError::BadEpoch(config.epoch));
        }
        let (peers, voters) = Self::peers(&config)?;
        if base_zxid < 0 || epoch_of(base_zxid) >= config.epoch {
            return Err(LeaderError::BadHistory {
                zxid: base_zxid,
                prev: 0,
                epoch: config.epoch,
            });
        }
        let mut prev = base_zxid;
        for &(zxid, _) in &history {
            if zxid <= prev || epoch_of(zxid) >= config.epoch {
                return Err(LeaderError::BadHistory {
                    zxid,
                    prev,
                    epoch: config.epoch,
                });
            }
            prev = zxid;
        }
        let committed_len = history.partition_point(|e| e.0 <= committed_zxid);
        let known = committed_zxid == base_zxid
            || (committed_len > 0 && history[committed_len - 1].0 == committed_zxid);
        if !known {
            return Err(LeaderError::BadCommitted {
                committed: committed_zxid,
                base: base_zxid,
                last: prev,
            });
        }
        let mut log: VecDeque<Entry> = history
            .into_iter()
            .map(|(zxid, txn)| Entry { zxid, txn })
            .collect();
        let mut log_base = base_zxid;
        let mut committed_len = committed_len;
        while committed_len > config.limits.committed_log_max {
            log_base = log.pop_front().map_or(log_base, |e| e.zxid);
            committed_len -= 1;
        }
        let quorum = config.fault_commit_quorum.unwrap_or(majority(voters));
        Ok(Leader {
            id: config.id,
            epoch: config.epoch,
            first_epoch: config.epoch,
            rolling: false,
            current: 0,
            held: VecDeque::new(),
            limits: config.limits,
            quorum,
            fault_quorum: config.fault_commit_quorum.is_some(),
            peers,
            committed_len,
            log,
            log_base,
            committed: committed_zxid,
            last_zxid: prev,
            durable: prev,
            ready: false,
            deferred_syncs: Vec::new(),
            stats: LeaderStats::default(),
        })
    }

    /// The other members, checked; and the number of voters (the leader included).
    fn peers(config: &LeaderConfig) -> Result<(Vec<Peer>, usize), LeaderError> {
        let mut peers: Vec<Peer> = Vec::with_capacity(config.members.len());
        let mut me = None;
        for m in &config.members {
            let seen = peers.iter().any(|p| p.id == m.id) || (m.id == config.id && me.is_some());
            if seen {
                return Err(LeaderError::DuplicateMember(m.id));
            }
            if m.id == config.id {
                me = Some(m.role);
                continue;
            }
            peers.push(Peer {
                id: m.id,
                role: m.role,
                stream: m.role,
                synced: false,
                acked: 0,
                sync_zxid: 0,
                newleader_acked: false,
                newleader_zxid: 0,
                link_epoch: config.epoch,
            });
        }
        if me != Some(Role::Participant) {
            return Err(LeaderError::LeaderNotParticipant(config.id));
        }
        let voters = 1 + peers.iter().filter(|p| p.role == Role::Participant).count();
        if config.members.len() > MEMBERS_MAX || voters > VOTERS_MAX {
            return Err(LeaderError::TooManyMembers {
                members: config.members.len(),
                voters,
                members_max: MEMBERS_MAX,
                voters_max: VOTERS_MAX,
            });
        }
        Ok((peers, voters))
    }

    pub fn id(&self) -> ServerId {
        self.id
    }
    /// The epoch of its zxids now (module docs, "Counter rollover").
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The epoch discovery established.
    pub fn first_epoch(&self) -> Epoch {
        self.first_epoch
    }
    /// The last zxid proposed (or of the history when nothing was proposed yet).
    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }
    /// The commit point: every txn up to it is committed.
    pub fn committed_zxid(&self) -> Zxid {
        self.committed
    }
    /// What the leader's own WAL has made durable (as reported by `persisted`).
    pub fn durable_zxid(&self) -> Zxid {
        self.durable
    }
    /// Proposals not yet committed.
    pub fn inflight(&self) -> usize {
        self.log.len() - self.committed_len + self.held.len()
    }
    /// The zxid just before the retained log: a follower below it needs a SNAP.
    pub fn log_base(&self) -> Zxid {
        self.log_base
    }
    pub fn stats(&self) -> &LeaderStats {
        &self.stats
    }
    /// Whether `id` is synchronised on its current link.
    pub fn is_synced(&self, id: ServerId) -> bool {
        self.peer(id).is_some_and(|i| self.peers[i].synced)
    }
    /// Whether `id` finished its synchronisation on its current link: a voter
    /// acknowledged everything the sync sent (it holds the leader's history durably,
    /// a SNAP loaded); an observer (which never acks) once the sync was sent. Until
    /// then it may be silent for initLimit rather than syncLimit (ZooKeeper's
    /// LearnerHandler does the same).
    pub fn sync_done(&self, id: ServerId) -> bool {
        self.peer(id).is_some_and(|i| {
            let p = &self.peers[i];
            p.synced && (!p.votes() || p.acked >= p.sync_zxid)
        })
    }
    /// The highest durable zxid `id` has acknowledged.
    pub fn acked_zxid(&self, id: ServerId) -> Option<Zxid> {
        self.peer(id).map(|i| self.peers[i].acked)
    }

    fn peer(&self, id: ServerId) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    /// The voters now: this leader and the participants of its config.
    fn voters(&self) -> usize {
        1 + self
            .peers
            .iter()
            .filter(|p| p.role == Role::Participant)
            .count()
    }

    /// Call once after [`Leader::new`]: a leader that is a majority alone (a single
    /// voter) is ready at once (module docs, "NEWLEADER").
    pub fn start(&mut self, out: &mut Vec<Action>) {
        self.check_ready(out);
    }

    /// A majority holds the history and the epoch: commits and proposals may flow.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    fn check_ready(&mut self, out: &mut Vec<Action>) {
        if self.ready {
            return;
        }
        let acked = self
            .peers
            .iter()
            .filter(|p| p.votes() && p.newleader_acked)
            .count();
        if 1 + acked >= self.quorum {
            self.ready = true;
            self.current = self.epoch;
            out.push(Action::SetCurrentEpoch(self.epoch));
            self.try_commit(out);
            for (id, last_zxid, link_epoch) in std::mem::take(&mut self.deferred_syncs) {
                let r = self.follower_connected_at(id, last_zxid, link_epoch, Role::Observer, out);
                if r.is_err() {
                    out.push(Action::Disconnect { to: id });
                }
            }
        }
    }

    /// The zxid the next proposal must carry, or why none is taken now (not ready,
    /// `proposals_inflight_max` uncommitted proposals, the epoch's counter exhausted).
    /// The leader is the one owner of zxids: the caller asks here, preps its txn with
    /// this zxid (the zxid is inside the txn's bytes), then calls [`Leader::propose`]
    /// in the same step, so a refusal never strands a prepped txn.
    pub fn next_zxid(&self) -> Result<Zxid, ProposeError> {
        if !self.ready {
            return Err(ProposeError::NotReady);
        }
        let inflight = self.inflight();
        if inflight >= self.limits.proposals_inflight_max {
            return Err(ProposeError::Throttled {
                inflight,
                max: self.limits.proposals_inflight_max,
            });
        }
        let last = self.held.back().map_or(self.last_zxid, |e| e.zxid);
        if epoch_of(last) < self.epoch {
            return Ok(make_zxid(self.epoch, 1));
        }
        let next = zxid_after(last, self.limits.zxid_counter_max);
        if epoch_of(next) > self.epoch + 1 || epoch_of(next) > EPOCH_MAX {
            // A second rollover before the first committed (a counter range smaller
            // than the window, in tests), or no epoch left.
            return Err(if epoch_of(next) > EPOCH_MAX {
                ProposeError::ZxidExhausted(self.epoch)
            } else {
                ProposeError::Throttled {
                    inflight: self.inflight(),
                    max: self.limits.proposals_inflight_max,
                }
            });
        }
        Ok(next)
    }

    /// Replicates `txn`, prepped with `zxid`, which must be [`Leader::next_zxid`]
    /// (refused otherwise, as are txns over [`TXN_BYTES_MAX`]: callers bound the
    /// size of what they prep).
    pub fn propose(
        &mut self,
        zxid: Zxid,
        txn: TxnBytes,
        out: &mut Vec<Action>,
    ) -> Result<(), ProposeError> {
        let expected = match self.next_zxid() {
            Ok(z) => z,
            Err(e) => {
                if matches!(e, ProposeError::Throttled { .. }) {
                    self.stats.throttled += 1;
                }
                return Err(e);
            }
        };
        if zxid != expected {
            debug_assert!(false, "proposed {zxid:#x}, the next zxid is {expected:#x}");
            return Err(ProposeError::NotNext { zxid, expected });
        }
        if txn.len() > TXN_BYTES_MAX {
            return Err(ProposeError::TxnTooLarge { len: txn.len() });
        }
        self.stats.proposals += 1;
        if epoch_of(zxid) > self.epoch {
            debug_assert!(self.rolling, "a next epoch's zxid only while rolling over");
            self.held.push_back(Entry { zxid, txn });
            return Ok(());
        }
        self.broadcast(zxid, txn, out);
        Ok(())
    }

    /// Log, persist and send a proposal of the current epoch.
    fn broadcast(&mut self, zxid: Zxid, txn: TxnBytes, out: &mut Vec<Action>) {
        let counter = counter_of(zxid);
        debug_assert!(zxid > self.last_zxid, "zxids strictly increase");
        debug_assert!(
            counter == 1 || self.last_zxid == zxid - 1,
            "zxids are contiguous within an epoch"
        );
        debug_assert!(
            epoch_of(zxid) == self.epoch,
            "broadcast in the current epoch"
        );
        self.last_zxid = zxid;
        self.log.push_back(Entry {
            zxid,
            txn: txn.clone(),
        });
        if counter == self.limits.zxid_counter_max {
            // The epoch's last txn: promise the next epoch before it is durable here.
            self.rolling = true;
            out.push(Action::SetAcceptedEpoch(self.epoch + 1));
        }
        out.push(Action::Persist {
            zxid,
            txn: txn.clone(),
        });
        self.drop_laggers(counter, out);
        for p in self
            .peers
            .iter()
            .filter(|p| p.synced && p.stream == Role::Participant)
        {
            out.push(Action::Send {
                to: p.id,
                msg: Msg::new(
                    p.link_epoch,
                    Body::Proposal {
                        zxid,
                        txn: txn.clone(),
                    },
                ),
            });
        }
        debug_assert!(
            self.inflight() <= self.limits.proposals_inflight_max,
            "in-flight proposals stay within the limit"
        );
    }

    /// Disconnect every synchronised voter more than `follower_lag_proposals_max`
    /// proposals behind `counter` (the newest of this epoch).
    fn drop_laggers(&mut self, counter: u32, out: &mut Vec<Action>) {
        let epoch = self.epoch;
        let max = self.limits.follower_lag_proposals_max;
        let counter_max = u64::from(self.limits.zxid_counter_max);
        for p in self.peers.iter_mut() {
            if !p.synced || p.stream != Role::Participant {
                continue;
            }
            let floor = p.acked.max(p.sync_zxid);
            let behind = if epoch_of(floor) == epoch {
                u64::from(counter - counter_of(floor))
            } else if epoch_of(floor) + 1 == epoch && epoch > self.first_epoch {
                // Across a rollover: the rest of the previous epoch, then this one's.
                counter_max - u64::from(counter_of(floor)) + u64::from(counter)
            } else {
                u64::from(counter)
            };
            if behind > max as u64 {
                p.synced = false;
                self.stats.lagging_dropped += 1;
                out.push(Action::Disconnect { to: p.id });
            }
        }
    }

    /// The leader's WAL has made everything up to `upto` durable.
    pub fn persisted(&mut self, upto: Zxid, out: &mut Vec<Action>) -> Result<(), LeaderError> {
        if upto > self.last_zxid {
            return Err(LeaderError::PersistedBeyondLog {
                upto,
                last: self.last_zxid,
            });
        }
        if upto > self.durable {
            self.durable = upto;
            self.try_commit(out);
            self.maybe_roll_over(out);
        }
        Ok(())
    }

    /// A message from `from`.
    pub fn step(
        &mut self,
        from: ServerId,
        msg: Msg,
        out: &mut Vec<Action>,
    ) -> Result<(), LeaderError> {
        let Some(i) = self.peer(from) else {
            self.stats.msgs_unknown_sender += 1;
            return Ok(());
        };
        let link_epoch = match msg.body {
            Body::FollowerInfo { .. } => self.epoch,
            _ => self.peers[i].link_epoch,
        };
        if msg.epoch != link_epoch {
            self.stats.msgs_stale_epoch += 1;
            return Ok(());
        }
        match msg.body {
            Body::FollowerInfo { last_zxid, role } => self
                .follower_connected_at(from, last_zxid, self.epoch, role, out)
                .map(drop),
            Body::Ack { zxid } => {
                self.on_ack(i, zxid, out);
                Ok(())
            }
            Body::AckNewLeader { zxid } => {
                let p = &mut self.peers[i];
                if p.stream == Role::Participant && p.synced && zxid >= p.newleader_zxid {
                    p.newleader_acked = true;
                    if zxid > p.acked {
                        self.on_ack(i, zxid, out);
                    }
                    self.check_ready(out);
                } else {
                    self.stats.msgs_unexpected += 1;
                }
                Ok(())
            }
            _ => {
                self.stats.msgs_unexpected += 1;
                Ok(())
            }
        }
    }

    fn on_ack(&mut self, i: usize, zxid: Zxid, out: &mut Vec<Action>) {
        let last = self.last_zxid;
        let p = &mut self.peers[i];
        if p.stream != Role::Participant {
            self.stats.msgs_unexpected += 1;
        } else if !p.synced {
            self.stats.acks_unsynced += 1;
        } else if zxid <= p.acked {
            self.stats.acks_duplicate += 1;
        } else if zxid > last {
            self.stats.acks_beyond_log += 1;
        } else {
            // Kept even while its config role does not vote (yet): durable data,
            // counted from the moment a reconfig makes it a voter here.
            p.acked = zxid;
            if p.votes() {
                self.try_commit(out);
            }
        }
    }

    /// Advance the commit point to what a quorum of voters has durable.
    fn try_commit(&mut self, out: &mut Vec<Action>) {
        if !self.ready {
            return;
        }
        let mut acked = [0 as Zxid; VOTERS_MAX];
        let n = self.voter_acks(&mut acked);
        let point = commit_point(&mut acked[..n], self.quorum).min(self.last_zxid);
        if point <= self.committed {
            return;
        }
        // Commit whole entries only: the highest zxid of the log at or below the point.
        let to = self.log.partition_point(|e| e.zxid <= point);
        if to <= self.committed_len {
            return;
        }
        let zxid = self.log[to - 1].zxid;
        debug_assert!(
            self.fault_quorum || reached_by(&acked[..n], zxid, majority(n)),
            "commit never passes what a majority of voters made durable"
        );
        debug_assert!(zxid > self.committed, "the commit point only grows");
        let from = self.committed_len;
        self.committed = zxid;
        self.committed_len = to;
        self.stats.commits += 1;
        out.push(Action::Commit { upto_zxid: zxid });
        self.send_commit(from, to, out);
        self.trim_log();
        self.maybe_roll_over(out);
    }

    /// Once the epoch's last txn is committed (a majority promised the next epoch),
    /// this leader goes on in the next epoch and releases what it held (module docs,
    /// "Counter rollover").
    fn maybe_roll_over(&mut self, out: &mut Vec<Action>) {
        let last = make_zxid(self.epoch, self.limits.zxid_counter_max);
        if self.rolling && self.committed >= last {
            debug_assert!(
                self.committed == self.last_zxid,
                "nothing beyond an epoch's last"
            );
            self.rolling = false;
            self.epoch += 1;
            self.stats.rollovers += 1;
            for e in std::mem::take(&mut self.held) {
                self.broadcast(e.zxid, e.txn, out);
            }
        }
        self.maybe_take_current(out);
    }

    /// A rolled-over epoch becomes current once the previous epoch's last txn is
    /// durable here: a current epoch always comes with the history it names (an
    /// election ranks servers by it).
    fn maybe_take_current(&mut self, out: &mut Vec<Action>) {
        if !self.ready {
            return;
        }
        let mut e = self.current;
        while e < self.epoch && self.durable >= make_zxid(e, self.limits.zxid_counter_max) {
            e += 1;
        }
        if e > self.current {
            self.current = e;
            out.push(Action::SetCurrentEpoch(e));
        }
    }

    /// The voters' durable zxids (the leader first) into `buf`; returns how many.
    fn voter_acks(&self, buf: &mut [Zxid; VOTERS_MAX]) -> usize {
        buf[0] = self.durable;
        let mut n = 1;
        for p in self.peers.iter().filter(|p| p.role == Role::Participant) {
            buf[n] = p.acked;
            n += 1;
        }
        n
    }

    /// Tell synchronised followers that `log[from..to]` is committed.
    fn send_commit(&self, from: usize, to: usize, out: &mut Vec<Action>) {
        let zxid = self.log[to - 1].zxid;
        for p in self.peers.iter().filter(|p| p.synced) {
            match p.stream {
                Role::Participant => out.push(Action::Send {
                    to: p.id,
                    msg: Msg::new(p.link_epoch, Body::Commit { zxid }),
                }),
                Role::Observer => {
                    for e in self.log.range(from..to) {
                        out.push(self.inform(p.id, e));
                    }
                }
            }
        }
    }

    fn inform(&self, to: ServerId, e: &Entry) -> Action {
        Action::Send {
            to,
            msg: Msg::new(
                self.link_epoch(to).unwrap_or(self.epoch),
                Body::Inform {
                    zxid: e.zxid,
                    txn: e.txn.clone(),
                },
            ),
        }
    }

    /// Keep at most `committed_log_max` committed entries.
    fn trim_log(&mut self) {
        while self.committed_len > self.limits.committed_log_max {
            if let Some(e) = self.log.pop_front() {
                self.log_base = e.zxid;
            }
            self.committed_len -= 1;
        }
        debug_assert!(
            self.committed_len <= self.limits.committed_log_max,
            "the retained committed log stays within its limit"
        );
    }

    /// The epoch of the link to `id` (what its messages carry).
    pub fn link_epoch(&self, id: ServerId) -> Option<Epoch> {
        self.peer(id).map(|i| self.peers[i].link_epoch)
    }

    /// A follower opened a new link in the current epoch and reports the last zxid of
    /// its log: synchronise it (module docs) and stream to it from now on.
    pub fn follower_connected(
        &mut self,
        id: ServerId,
        last_zxid: Zxid,
        out: &mut Vec<Action>,
    ) -> Result<SyncKind, LeaderError> {
        let i = self.peer(id).ok_or(LeaderError::UnknownMember(id))?;
        let role = self.peers[i].role;
        self.follower_connected_at(id, last_zxid, self.epoch, role, out)
    }

    /// As [`Leader::follower_connected`], for a link that took `link_epoch` in
    /// discovery (this leader's epoch then, which a counter rollover may have passed
    /// since), from a learner that says it is a `role` (`Body::FollowerInfo`).
    pub fn follower_connected_at(
        &mut self,
        id: ServerId,
        last_zxid: Zxid,
        link_epoch: Epoch,
        role: Role,
        out: &mut Vec<Action>,
    ) -> Result<SyncKind, LeaderError> {
        let i = self.peer(id).ok_or(LeaderError::UnknownMember(id))?;
        if link_epoch < self.first_epoch || link_epoch > self.epoch {
            return Err(LeaderError::BadLinkEpoch {
                id,
                link_epoch,
                first: self.first_epoch,
                epoch: self.epoch,
            });
        }
        self.peers[i].link_epoch = link_epoch;
        self.peers[i].stream = role;
        self.deferred_syncs.retain(|d| d.0 != id);
        if role == Role::Observer && !self.ready {
            self.peers[i].synced = false;
            self.deferred_syncs.push((id, last_zxid, link_epoch));
            return Ok(SyncKind::Deferred);
        }
        if last_zxid < 0 || (epoch_of(last_zxid) >= self.first_epoch && last_zxid > self.last_zxid)
        {
            return Err(LeaderError::FollowerAhead {
                id,
                last_zxid,
                leader_last: self.last_zxid,
            });
        }
        if last_zxid < self.peers[i].acked {
            // It lost durable data; never count what it no longer has.
            self.stats.acks_regressed += 1;
            self.peers[i].acked = last_zxid;
        }
        // An observer's stream carries committed txns only, and an observer commits
        // what it logged once synchronised: one that was a voter until a reconfig
        // may hold proposals not committed yet, so those are cut (it gets them again
        // as informs once they commit).
        let reported = last_zxid;
        let last_zxid = match role {
            Role::Observer => last_zxid.min(self.committed),
            Role::Participant => last_zxid,
        };
        let pos = self.log.partition_point(|e| e.zxid <= last_zxid);
        let (kind, start) = if last_zxid < reported && last_zxid >= self.log_base {
            debug_assert!(
                pos == self.committed_len,
                "cut to the commit point, which is in the log"
            );
            self.stats.syncs_trunc += 1;
            self.send(id, Body::Trunc { to: last_zxid }, out);
            (SyncKind::Trunc, pos)
        } else if last_zxid < self.log_base {
            self.stats.syncs_snap += 1;
            out.push(Action::SendSnapshot {
                to: id,
                zxid: self.committed,
            });
            (SyncKind::Snap, self.committed_len)
        } else if last_zxid == self.log_base || (pos > 0 && self.log[pos - 1].zxid == last_zxid) {
            self.stats.syncs_diff += 1;
            self.send(id, Body::Diff { from: last_zxid }, out);
            (SyncKind::Diff, pos)
        } else {
            let to = if pos == 0 {
                self.log_base
            } else {
                self.log[pos - 1].zxid
            };
            debug_assert!(
                to < last_zxid && (!self.peers[i].votes() || self.peers[i].acked <= to),
                "TRUNC cuts only txns the leader never had"
            );
            self.stats.syncs_trunc += 1;
            self.send(id, Body::Trunc { to }, out);
            (SyncKind::Trunc, pos)
        };
        self.stream_from(i, start, out);
        if self.peers[i].stream == Role::Participant {
            let zxid = self.last_zxid;
            self.send(id, Body::NewLeader { zxid }, out);
        }
        let p = &mut self.peers[i];
        p.synced = true;
        p.sync_zxid = self.last_zxid;
        p.newleader_zxid = self.last_zxid;
        Ok(kind)
    }

    fn send(&self, to: ServerId, body: Body, out: &mut Vec<Action>) {
        out.push(Action::Send {
            to,
            msg: Msg::new(self.link_epoch(to).unwrap_or(self.epoch), body),
        });
    }

    /// Send peer `i` the log from `start`: committed entries (then a cumulative
    /// commit) and in-flight proposals to a participant; committed informs to an
    /// observer.
    fn stream_from(&self, i: usize, start: usize, out: &mut Vec<Action>) {
        let p = &self.peers[i];
        let committed_end = self.committed_len.max(start);
        match p.stream {
            Role::Observer => {
                for e in self.log.range(start..committed_end) {
                    out.push(self.inform(p.id, e));
                }
            }
            Role::Participant => {
                for e in self.log.range(start..committed_end) {
                    self.send(p.id, self.proposal(e), out);
                }
                if self.committed > 0 {
                    self.send(
                        p.id,
                        Body::Commit {
                            zxid: self.committed,
                        },
                        out,
                    );
                }
                for e in self.log.range(committed_end..) {
                    self.send(p.id, self.proposal(e), out);
                }
            }
        }
    }

    fn proposal(&self, e: &Entry) -> Body {
        Body::Proposal {
            zxid: e.zxid,
            txn: e.txn.clone(),
        }
    }

    /// Dynamic reconfiguration, once the reconfig committed: `id` joins or takes a
    /// new role (`Some`), or leaves (`None`). Quorums count the new voters from now
    /// on; a learner keeps the stream it asked for on its current link until it
    /// reconnects as what the reconfig made it (it has to apply the reconfig to
    /// know, and its stream is what carries the reconfig to it). The leader's own
    /// role is the node's business (it steps down).
    ///
    /// Safety rests on two rules the caller (prep) keeps: one voter changes per
    /// reconfig, so every majority of the old voters meets every majority of the new
    /// ones, and a reconfig is proposed only once the previous one is carried out
    /// here; acks are cumulative, so the majority that committed a reconfig holds
    /// every txn before it (Ongaro's single-server changes, applied at commit).
    pub fn set_member(
        &mut self,
        id: ServerId,
        role: Option<Role>,
        out: &mut Vec<Action>,
    ) -> Result<(), LeaderError> {
        if id == self.id {
            return Ok(());
        }
        let i = self.peer(id);
        let members = self.peers.len() + 1 + usize::from(i.is_none() && role.is_some());
        let voters = self.voters() + usize::from(role == Some(Role::Participant))
            - usize::from(i.is_some_and(|i| self.peers[i].role == Role::Participant));
        if members > MEMBERS_MAX || voters > VOTERS_MAX {
            return Err(LeaderError::TooManyMembers {
                members,
                voters,
                members_max: MEMBERS_MAX,
                voters_max: VOTERS_MAX,
            });
        }
        match (i, role) {
            (Some(i), None) => {
                self.peers.remove(i);
                self.deferred_syncs.retain(|d| d.0 != id);
            }
            (Some(i), Some(role)) => self.peers[i].role = role,
            (None, Some(role)) => self.peers.push(Peer {
                id,
                role,
                stream: role,
                synced: false,
                acked: 0,
                sync_zxid: 0,
                newleader_acked: false,
                newleader_zxid: 0,
                link_epoch: self.epoch,
            }),
            (None, None) => {}
        }
        debug_assert_eq!(
            self.voters(),
            voters,
            "the voters counted before the change"
        );
        if !self.fault_quorum {
            self.quorum = majority(voters);
        }
        self.check_ready(out);
        self.try_commit(out);
        Ok(())
    }

    /// The link to `id` broke: stop streaming to it until it reconnects.
    pub fn follower_disconnected(&mut self, id: ServerId) -> Result<(), LeaderError> {
        let i = self.peer(id).ok_or(LeaderError::UnknownMember(id))?;
        self.peers[i].synced = false;
        self.deferred_syncs.retain(|d| d.0 != id);
        Ok(())
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
