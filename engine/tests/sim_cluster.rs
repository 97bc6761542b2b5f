//! Seeded simulation of a whole Zab ensemble through leader changes: every real core
//! (`Election`, `LeaderDiscovery`/`LearnerDiscovery`, `Leader`/`Follower`) driven by
//! one reference driver, over faulty links, with crashes, for thousands of ticks.
//!
//! The world: 3 or 5 voters and 0 or 1 observer (2 in reconfig seeds); per-link FIFO
//! delivery with random
//! delays; links cut and healed, servers isolated, crashes that lose every txn not
//! yet durable (accepted and current epochs are durable); WAL appends made durable in
//! random prefixes at random times; an established leader proposes random txns; small
//! random limits per seed so throttling, lag drops and SNAP happen.
//!
//! The driver does what the runtime will do: election until a decision; discovery on
//! the links; at `Established` a `Leader` over the server's durable log (committed up
//! to its applied state); at `Accepted` a `Follower` waiting for the sync; the current
//! epoch changes only on the cores' `SetCurrentEpoch` (NEWLEADER); a follower whose
//! link to its leader breaks, and a leader without a synchronised majority for a
//! while, go back to election.
//!
//! Per seed, a learner whose link broke may reconnect to the same leader through a
//! fresh discovery (no election), a server going back to election may lose its
//! WAL tail that was not durable yet, and in half the seeds an epoch ends after 2-12
//! txns, so leaders roll their zxid counter over into the next epoch all the time
//! (`zab::leader`, "Counter rollover"): a rolled-over epoch counts as taken by that
//! leader, like an established one.
//!
//! In half the seeds leaders also propose reconfigs, as prep allows them: one server
//! becomes a voter or an observer, leaves the members, or joins them (2..=5 voters),
//! the next only once the leader and a majority of its voters have carried out the
//! last, and only with a majority of the new voters synchronised (prep's
//! NEWCONFIG_NO_QUORUM). Those seeds run server 7 from the start out of the members.
//! As in the runtime (`Node::decided`, `NON_MEMBER_LOOK_TICKS`), a non-member acts
//! on no election decision and starts a new round every 10 ticks, in which a peer
//! with newer members pushes them; once a reconfig adds it, it syncs (SNAP, DIFF)
//! like any learner. A removed server keeps its log while it runs and may be added
//! back with it (TRUNC included); once down it does not start again (the runtime
//! refuses), so the settle does not wait for it. Every server carries out a reconfig
//! once it applied it (the election's voters, the leader's members and quorum, its
//! own role: back to election when that changed) and keeps the members durably; a
//! looking server whose members are older than a peer's gets the peer's through the
//! election (`ElectionAction::SendConfig`). Quorums are checked against the voters of the
//! server that counts them.
//!
//! Checked after every action:
//! - agreement: every server applies one and the same sequence of txns (zxid and
//!   bytes), snapshots included; apply never goes back, and truncation never cuts an
//!   applied txn;
//! - durability: every txn a leader commits is durable, byte for byte, on a majority
//!   of voters (their storage's view), and so is every txn when it is first applied
//!   anywhere; an ack names a txn durable at its sender; a
//!   learner takes the leader's epoch only holding its starting history durably;
//!   every leader that establishes an epoch starts its log with every applied txn;
//!   no epoch is established twice; a TRUNC target is a txn the follower holds.
//!
//! At the end all faults stop; the ensemble must settle (one leader, every voter
//! synchronised), commit one more txn, and every voter and observer must apply it.
//!
//! Replay one seed: `CLUSTER_SIM_SEED=S cargo test -p engine --test sim_cluster`
//! (`SIM_TRACE=1` prints each reconfig proposed and carried out, and each epoch
//! established);
//! more seeds: `CLUSTER_SIM_SEEDS=N` (default 1000: ~4 s in debug); ticks: `CLUSTER_SIM_TICKS`.
//! Rare interleavings need more: a bug once showed first at seed 2906, so sweep
//! `CLUSTER_SIM_SEEDS=40000` in release (~2 min) after changing a core.

mod sim_common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use engine::zab::quorum::majority;
use engine::zab::{
    Action, Body, DiscoveryAction, Election, ElectionAction, ElectionConfig, Epoch, Follower,
    FollowerConfig, History, Leader, LeaderConfig, LeaderDiscovery, LearnerDiscovery, Limits,
    Member, Msg, Notification, PeerState, ProposeError, Role, ServerId, TxnBytes, Zxid, make_zxid,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sim_common::{apply_chosen, env_u64, for_each_seed};

const SEEDS_DEFAULT: u64 = 1_000;
const TICKS_DEFAULT: u64 = 2_000;
/// Ticks the healed ensemble may take to settle and commit a last txn.
const SETTLE_TICKS_MAX: u64 = 5_000;
const FINALIZE_TICKS: u32 = 2;
const RESEND_TICKS_MIN: u32 = 5;
const RESEND_TICKS_MAX: u32 = 40;
/// Ticks a leader may go without a synchronised majority, or wait to establish.
const QUORUM_LOST_TICKS_MAX: u64 = 30;
const DELAY_TICKS_MAX: u64 = 3;
/// The server that reconfig seeds start out of the members.
const NEW_ID: ServerId = 7;
/// Ticks between a non-member's election rounds (`driver_repl::NON_MEMBER_LOOK_TICKS`).
const NON_MEMBER_LOOK_TICKS: u64 = 10;

/// One member change of a reconfig: `id` takes `role`, or leaves (`None`).
type Change = (ServerId, Option<Role>);

type Check = Result<(), String>;

/// What travels on a link.
enum Wire {
    Vote(Notification),
    /// Election port: the sender's members and their version, then its vote.
    Members {
        members: Vec<Member>,
        version: Zxid,
        n: Notification,
    },
    Zab(Msg),
    /// A `Snap` message with the image of the leader's applied state.
    Snap {
        msg: Msg,
        image: Vec<(Zxid, TxnBytes)>,
    },
}

#[allow(clippy::large_enum_variant)] // one per simulated server
enum Role2 {
    Looking,
    /// Decided to lead: discovery, then (once established) the broadcast core.
    Leading {
        disc: LeaderDiscovery,
        core: Option<Leader>,
        /// Last tick with a synchronised majority (or the decision).
        quorum_seen: u64,
    },
    /// Decided to follow or observe `leader`.
    Learning {
        leader: ServerId,
        disc: Option<LearnerDiscovery>,
        core: Option<Follower>,
        since: u64,
    },
}

struct Server {
    id: ServerId,
    /// What its carried-out config makes it (kept in step with `members`): `None`
    /// out of the members (removed, or a new id not added yet).
    role: Option<Role>,
    /// The members it carried out last: durable (the runtime's `zoo.cfg.dynamic`),
    /// and their version (the reconfig's zxid; 0 for the initial ones).
    members: Vec<Member>,
    config: Zxid,
    /// Leader: the zxid of the last reconfig it proposed (cleared when it looks).
    reconfig_proposed: Zxid,
    up: bool,
    election: Election,
    zab: Role2,
    /// The WAL: the first `durable` entries are durable.
    log: Vec<(Zxid, TxnBytes)>,
    durable: usize,
    /// The first `applied` entries are applied (the state machine).
    applied: usize,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    /// `Plant::late_rollover_promise`: promised, not yet durable.
    late_promise: Epoch,
}

impl Server {
    fn last_durable(&self) -> Zxid {
        self.durable.checked_sub(1).map_or(0, |i| self.log[i].0)
    }

    fn applied_zxid(&self) -> Zxid {
        self.applied.checked_sub(1).map_or(0, |i| self.log[i].0)
    }

    fn history(&self) -> History {
        History {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: self.last_durable(),
        }
    }

    fn leader(&self) -> Option<ServerId> {
        match &self.zab {
            Role2::Learning { leader, .. } => Some(*leader),
            _ => None,
        }
    }

    /// A crash: txns not yet durable are gone, and the state machine restarts from
    /// what the WAL holds (a follower may apply a committed txn before its own copy
    /// is durable).
    fn lose_undurable(&mut self) {
        self.log.truncate(self.durable);
        self.applied = self.applied.min(self.durable);
    }

    /// Back to election: the driver flushes the WAL before it reports its history.
    fn flush(&mut self) {
        self.durable = self.log.len();
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    establishments: u64,
    proposals: u64,
    commits: u64,
    snaps: u64,
    truncs: u64,
    crashes: u64,
    /// Leaders that moved to the next epoch by counter rollover.
    rollovers: u64,
    /// Reconfigs applied (first anywhere) and servers that changed role on one.
    reconfigs: u64,
    role_changes: u64,
    /// Reconfigs (first applied anywhere) that added a non-member / removed a member.
    joins: u64,
    departures: u64,
    /// Joins of the server that started out of the members.
    new_id_joins: u64,
    /// Servers out of the members at some point (the new id, removed ones) that are
    /// members at the end, so the settle made them apply its last txn.
    outsiders_in_at_end: u64,
    /// Members a server took from another's election message.
    members_learned: u64,
}

/// Bugs the checker must catch (`Plant::default()` is the real protocol).
#[derive(Debug, Default, Clone, Copy)]
struct Plant {
    /// Leaders commit on their own durability alone.
    commit_quorum_one: bool,
    /// Learners take the new epoch as current at `Accepted`, before they hold the
    /// leader's history (ZooKeeper waits for NEWLEADER).
    early_current_epoch: bool,
    /// A new leader applies its whole history at once (this core's old contract).
    history_taken_as_committed: bool,
    /// Counter rollover with a late promise: servers make `SetAcceptedEpoch` durable
    /// only when they take the epoch as current, i.e. after acking the epoch's last
    /// txn rather than before.
    late_rollover_promise: bool,
    /// Reconfigs flip two servers' roles at once (prep allows one voter change).
    reconfig_two_at_once: bool,
}

struct Sim {
    plant: Plant,
    rng: SmallRng,
    now: u64,
    /// The members of the last config in `chosen` (crashes keep a majority of its
    /// voters up).
    members: Vec<Member>,
    /// Per seed: leaders propose reconfigs that make one server a voter or an
    /// observer (one voter change each, the next only once it is carried out).
    reconfig: bool,
    limits: Limits,
    servers: BTreeMap<ServerId, Server>,
    links: BTreeMap<(ServerId, ServerId), VecDeque<(u64, Wire)>>,
    cut: BTreeSet<(ServerId, ServerId)>,
    /// The one sequence every server applies a prefix of.
    chosen: Vec<(Zxid, TxnBytes)>,
    established: BTreeMap<Epoch, ServerId>,
    faults: bool,
    /// Per seed: a learner whose link broke often reconnects to the same leader
    /// through a fresh discovery instead of re-running election.
    reconnect_directly: bool,
    /// Per seed: a server going back to election sometimes loses its WAL tail that
    /// was not durable yet, instead of flushing it.
    lose_tail_on_look: bool,
    /// Each established epoch's starting history length (the leader's log then).
    history_len: BTreeMap<Epoch, usize>,
    counts: Counts,
    violation: Option<String>,
    txn_no: u64,
    /// Reconfigs applied and not carried out yet: `(server, from, to)` of its log.
    /// The runtime carries them out once the message that applied them is handled
    /// (`Driver::maybe_reconfigure`), so the sim does too ([`Sim::carry_out_pending`]).
    to_carry_out: VecDeque<(ServerId, usize, usize)>,
    /// Servers that were out of the members at some point (the new id, removed ones).
    ever_out: BTreeSet<ServerId>,
}

/// A non-member takes part in elections as an observer does: it learns who leads,
/// and a peer with newer members pushes them to it (`ElectionAction::SendConfig`).
fn election_config(id: ServerId, voters: &[ServerId], role: Option<Role>) -> ElectionConfig {
    ElectionConfig {
        id,
        role: role.unwrap_or(Role::Observer),
        voters: voters.to_vec(),
        finalize_ticks: FINALIZE_TICKS,
        resend_ticks_min: RESEND_TICKS_MIN,
        resend_ticks_max: RESEND_TICKS_MAX,
    }
}

impl Sim {
    fn new(seed: u64, plant: Plant) -> Sim {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = if rng.random_bool(0.5) { 3 } else { 5 };
        let voters: Vec<ServerId> = (1..=n).collect();
        let mut members: Vec<Member> = voters
            .iter()
            .map(|&id| Member {
                id,
                role: Role::Participant,
            })
            .collect();
        let reconfig = rng.random_bool(0.5);
        if reconfig {
            for id in [8, 9] {
                members.push(Member {
                    id,
                    role: Role::Observer,
                });
            }
        } else if rng.random_bool(0.5) {
            members.push(Member {
                id: 9,
                role: Role::Observer,
            });
        }
        let reconnect_directly = rng.random_bool(0.5);
        let lose_tail_on_look = rng.random_bool(0.3);
        let inflight = rng.random_range(1..=8usize);
        let committed_log = rng.random_range(0..=24usize);
        let limits = Limits {
            proposals_inflight_max: inflight,
            committed_log_max: committed_log,
            follower_lag_proposals_max: rng.random_range(inflight..=committed_log + inflight),
            // Half the seeds end each epoch after a few txns: counter rollovers
            // (`zab::leader`) then happen throughout, faults included.
            zxid_counter_max: if rng.random_bool(0.5) {
                rng.random_range(2..=12)
            } else {
                u32::MAX
            },
        };
        // In reconfig seeds server 7 runs from the start out of the members: a server
        // started before the reconfig that adds it, once it has learned members that
        // leave it out (its zoo.cfg must list it; `ckctl cluster add` reconfigures
        // first and starts it after).
        let outsiders: &[ServerId] = if reconfig { &[NEW_ID] } else { &[] };
        let servers = members
            .iter()
            .map(|m| (m.id, Some(m.role)))
            .chain(outsiders.iter().map(|&id| (id, None)))
            .map(|(id, role)| {
                let s = Server {
                    id,
                    role,
                    members: members.clone(),
                    config: 0,
                    reconfig_proposed: 0,
                    up: true,
                    election: Election::new(election_config(id, &voters, role)).unwrap(),
                    zab: Role2::Looking,
                    log: Vec::new(),
                    durable: 0,
                    applied: 0,
                    accepted_epoch: 0,
                    current_epoch: 0,
                    late_promise: 0,
                };
                (id, s)
            })
            .collect();
        let mut sim = Sim {
            plant,
            rng,
            now: 0,
            members,
            reconfig,
            limits,
            servers,
            links: BTreeMap::new(),
            cut: BTreeSet::new(),
            chosen: Vec::new(),
            established: BTreeMap::new(),
            faults: true,
            reconnect_directly,
            lose_tail_on_look,
            history_len: BTreeMap::new(),
            counts: Counts::default(),
            violation: None,
            txn_no: 0,
            to_carry_out: VecDeque::new(),
            ever_out: outsiders.iter().copied().collect(),
        };
        let ids: Vec<ServerId> = sim.servers.keys().copied().collect();
        for id in ids {
            sim.look(id);
        }
        sim
    }

    fn srv(&mut self, id: ServerId) -> &mut Server {
        self.servers.get_mut(&id).unwrap()
    }

    fn fail(&mut self, why: String) {
        self.violation.get_or_insert(why);
    }

    fn connected(&self, a: ServerId, b: ServerId) -> bool {
        self.servers[&a].up && self.servers[&b].up && !self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn send(&mut self, from: ServerId, to: ServerId, w: Wire) {
        if !self.connected(from, to) {
            return;
        }
        let delay = self.rng.random_range(0..=DELAY_TICKS_MAX);
        let q = self.links.entry((from, to)).or_default();
        let at = q.back().map_or(self.now, |m| m.0).max(self.now + delay);
        q.push_back((at, w));
    }

    // ---- election ----

    /// Back to election: what the server led or followed is over.
    fn look(&mut self, id: ServerId) {
        let old = std::mem::replace(&mut self.srv(id).zab, Role2::Looking);
        match old {
            Role2::Leading { .. } => {
                // Its learners' links close: they look again too.
                let led: Vec<ServerId> = self
                    .servers
                    .values()
                    .filter(|s| s.leader() == Some(id))
                    .map(|s| s.id)
                    .collect();
                for f in led {
                    self.look(f);
                }
            }
            Role2::Learning { leader, .. } => self.leader_lost_link(leader, id),
            Role2::Looking => {}
        }
        let lose = self.lose_tail_on_look && self.rng.random_bool(0.5);
        let s = self.srv(id);
        s.reconfig_proposed = 0;
        if lose {
            s.lose_undurable();
        } else {
            s.flush();
        }
        let h = s.history();
        let mut out = Vec::new();
        s.election.look(h.last_zxid, h.current_epoch, &mut out);
        self.election_actions(id, out);
    }

    fn election_actions(&mut self, id: ServerId, out: Vec<ElectionAction>) {
        for a in out {
            match a {
                ElectionAction::Send { to, n } => self.send(id, to, Wire::Vote(n)),
                ElectionAction::SendConfig { to, n } => {
                    let s = &self.servers[&id];
                    let (members, version) = (s.members.clone(), s.config);
                    self.send(
                        id,
                        to,
                        Wire::Members {
                            members,
                            version,
                            n,
                        },
                    );
                }
                ElectionAction::Decided(_) if self.servers[&id].role.is_none() => {
                    // Out of the members: it leads and follows no one (`Node::decided`)
                    // and asks the election again now and then (`step`).
                }
                ElectionAction::Decided(d) => {
                    let now = self.now;
                    match d.state {
                        PeerState::Leading => {
                            let own = self.servers[&id].history();
                            let mut out = Vec::new();
                            let disc = LeaderDiscovery::new(
                                id,
                                self.servers[&id].members.clone(),
                                own,
                                &mut out,
                            )
                            .expect("a voter can lead");
                            self.srv(id).zab = Role2::Leading {
                                disc,
                                core: None,
                                quorum_seen: now,
                            };
                            self.discovery_actions(id, out);
                        }
                        PeerState::Following | PeerState::Observing => {
                            self.srv(id).zab = Role2::Learning {
                                leader: d.vote.leader,
                                disc: None,
                                core: None,
                                since: now,
                            };
                        }
                        PeerState::Looking => unreachable!("a decision is never Looking"),
                    }
                }
            }
        }
    }

    // ---- discovery ----

    fn discovery_actions(&mut self, id: ServerId, out: Vec<DiscoveryAction>) {
        for a in out {
            match a {
                DiscoveryAction::PersistAcceptedEpoch(e) => {
                    let s = self.srv(id);
                    if e <= s.accepted_epoch {
                        let why = format!("{id}: accepted epoch {e} after {}", s.accepted_epoch);
                        self.fail(why);
                    }
                    self.srv(id).accepted_epoch = e;
                }
                DiscoveryAction::Send { to, msg } => self.send(id, to, Wire::Zab(msg)),
                DiscoveryAction::Established { epoch } => self.establish(id, epoch),
                DiscoveryAction::Sync {
                    to,
                    last_zxid,
                    epoch,
                    role,
                } => {
                    let mut out = Vec::new();
                    let r = match &mut self.srv(id).zab {
                        Role2::Leading { core: Some(l), .. } => {
                            l.follower_connected_at(to, last_zxid, epoch, role, &mut out)
                        }
                        _ => continue,
                    };
                    match r {
                        Ok(_) => self.leader_actions(id, out),
                        Err(_) => self.break_link(id, to),
                    }
                }
                DiscoveryAction::Accepted { epoch } => {
                    let counter_max = self.limits.zxid_counter_max;
                    let s = self.srv(id);
                    let (last, committed) = (s.last_durable(), s.applied_zxid());
                    let Role2::Learning { leader, core, .. } = &mut s.zab else {
                        continue;
                    };
                    let cfg = FollowerConfig {
                        id,
                        leader: *leader,
                        epoch,
                        role: s.role.unwrap_or(Role::Observer),
                        zxid_counter_max: counter_max,
                    };
                    let mut f = Follower::new(cfg, last, committed).expect("a valid restore");
                    f.await_sync();
                    *core = Some(f);
                    if self.plant.early_current_epoch {
                        self.srv(id).current_epoch = epoch;
                    }
                }
            }
        }
    }

    fn establish(&mut self, id: ServerId, epoch: Epoch) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!(
                "t={} {id} establishes {epoch} with voters {:?}",
                self.now,
                voters_of(&self.servers[&id].members)
            );
        }
        if let Some(other) = self.established.insert(epoch, id) {
            return self.fail(format!(
                "epoch {epoch} established twice: by {other} and {id}: {}",
                self.describe()
            ));
        }
        self.counts.establishments += 1;
        let s = &self.servers[&id];
        assert_eq!(s.durable, s.log.len(), "a leader starts from a durable log");
        // Every applied txn, in order and byte for byte, starts the leader's log.
        let differ = self.chosen.iter().enumerate().find(|(i, c)| {
            s.log
                .get(*i)
                .is_none_or(|e| e.0 != c.0 || e.1[..] != c.1[..])
        });
        if let Some((_, (z, _))) = differ {
            let why = format!("{id} established epoch {epoch} without applied txn {z:#x}");
            return self.fail(why);
        }
        let mut cfg = LeaderConfig::new(id, epoch, s.members.clone());
        cfg.limits = self.limits;
        if self.plant.commit_quorum_one {
            cfg.fault_commit_quorum = Some(1);
        }
        let history = s.log.clone();
        self.history_len.insert(epoch, history.len());
        let mut committed = s.applied_zxid();
        if self.plant.history_taken_as_committed && s.durable > 0 {
            committed = s.last_durable();
            self.apply(id, committed);
        }
        let mut core = Leader::new(cfg, 0, committed, history).expect("a valid leader");
        let mut out = Vec::new();
        core.start(&mut out);
        if let Role2::Leading { core: c, .. } = &mut self.srv(id).zab {
            *c = Some(core);
        }
        self.leader_actions(id, out);
    }

    // ---- the broadcast cores' actions ----

    fn leader_actions(&mut self, id: ServerId, out: Vec<Action>) {
        let rolled = match &mut self.srv(id).zab {
            Role2::Leading {
                disc,
                core: Some(l),
                ..
            } => {
                // As `peer::Node` does: learners are offered the rolled-over epoch.
                disc.rolled_over(l.epoch());
                (l.first_epoch() + 1..=l.epoch()).collect()
            }
            _ => Vec::new(),
        };
        for e in rolled {
            if self.established.get(&e) != Some(&id) {
                self.rolled_over(id, e);
            }
        }
        for a in out {
            match a {
                Action::Persist { zxid, txn } => self.srv(id).log.push((zxid, txn)),
                Action::Send { to, msg } => self.send(id, to, Wire::Zab(msg)),
                Action::Commit { upto_zxid } => {
                    let s = &self.servers[&id];
                    let newly: Vec<Zxid> = s.log[s.applied..]
                        .iter()
                        .map(|e| e.0)
                        .take_while(|&z| z <= upto_zxid)
                        .collect();
                    for z in newly {
                        self.check_majority_durable(id, z);
                    }
                    self.apply(id, upto_zxid);
                }
                Action::SendSnapshot { to, zxid } => {
                    let s = &self.servers[&id];
                    if s.applied_zxid() != zxid {
                        let why = format!(
                            "{id}: snapshot at {zxid:#x}, state at {:#x}",
                            s.applied_zxid()
                        );
                        return self.fail(why);
                    }
                    let image = s.log[..s.applied].to_vec();
                    let epoch = match &s.zab {
                        Role2::Leading { core: Some(l), .. } => l.link_epoch(to).unwrap_or(0),
                        _ => 0,
                    };
                    self.counts.snaps += 1;
                    let msg = Msg::new(epoch, Body::Snap { zxid });
                    self.send(id, to, Wire::Snap { msg, image });
                }
                Action::Disconnect { to } => self.break_link(id, to),
                Action::SetCurrentEpoch(e) => self.set_current_epoch(id, e),
                Action::SetAcceptedEpoch(e) => self.promise(id, e),
                other => self.fail(format!("leader {id} pushed {other:?}")),
            }
        }
    }

    fn learner_actions(
        &mut self,
        id: ServerId,
        out: Vec<Action>,
        mut image: Option<Vec<(Zxid, TxnBytes)>>,
    ) {
        let mut work: VecDeque<Action> = out.into();
        while let Some(a) = work.pop_front() {
            match a {
                Action::Persist { zxid, txn } => self.srv(id).log.push((zxid, txn)),
                Action::Send { to, msg } => {
                    if let Body::Ack { zxid } | Body::AckNewLeader { zxid } = msg.body
                        && let Err(e) = self.check_ack_durable(id, zxid)
                    {
                        return self.fail(e);
                    }
                    self.send(id, to, Wire::Zab(msg))
                }
                Action::Commit { upto_zxid } => self.apply(id, upto_zxid),
                Action::Truncate { after_zxid } => {
                    self.counts.truncs += 1;
                    let s = self.srv(id);
                    if after_zxid != 0 && !s.log.iter().any(|e| e.0 == after_zxid) {
                        let why = format!("{id}: truncate to {after_zxid:#x}, a txn it lacks");
                        return self.fail(why);
                    }
                    let keep = s.log.partition_point(|e| e.0 <= after_zxid);
                    if keep < s.applied {
                        let why = format!("{id}: truncate after {after_zxid:#x} cuts applied txns");
                        return self.fail(why);
                    }
                    s.log.truncate(keep);
                    s.durable = s.durable.min(keep);
                }
                Action::InstallSnapshot { zxid } => {
                    let Some(img) = image.take() else {
                        return self.fail(format!("{id}: InstallSnapshot without an image"));
                    };
                    if let Err(e) = self.check_prefix(id, &img) {
                        return self.fail(e);
                    }
                    let s = self.srv(id);
                    let from = s.applied;
                    s.applied = img.len();
                    s.durable = img.len();
                    s.log = img;
                    let to = s.applied;
                    let mut more = Vec::new();
                    if let Role2::Learning { core: Some(f), .. } = &mut s.zab {
                        f.persisted(zxid, &mut more).expect("the image is durable");
                    }
                    work.extend(more);
                    self.to_carry_out.push_back((id, from, to));
                }
                Action::SetAcceptedEpoch(e) => self.promise(id, e),
                Action::SetCurrentEpoch(e) => {
                    if let Err(e) = self.check_holds_history(id, e) {
                        return self.fail(e);
                    }
                    self.set_current_epoch(id, e)
                }
                other => self.fail(format!("learner {id} pushed {other:?}")),
            }
        }
    }

    /// An ack names a txn durable in the sender's storage when it is sent.
    fn check_ack_durable(&self, id: ServerId, zxid: Zxid) -> Check {
        let s = &self.servers[&id];
        if zxid == 0 || s.log[..s.durable].iter().any(|e| e.0 == zxid) {
            Ok(())
        } else {
            Err(format!("{id} acked {zxid:#x}, not durable here"))
        }
    }

    /// A learner takes its leader's epoch only holding the leader's starting history
    /// durably, byte for byte (what makes its votes safe from then on).
    fn check_holds_history(&self, id: ServerId, epoch: Epoch) -> Check {
        let s = &self.servers[&id];
        let leader = s
            .leader()
            .ok_or(format!("{id}: current epoch {epoch} while leading no one"))?;
        let l = &self.servers[&leader].log;
        let need = self.history_len.get(&epoch).copied().unwrap_or(usize::MAX);
        let same = s.durable <= l.len()
            && s.log[..s.durable]
                .iter()
                .zip(l)
                .all(|(a, b)| a.0 == b.0 && a.1[..] == b.1[..]);
        if s.durable >= need && same {
            Ok(())
        } else {
            Err(format!(
                "{id} took epoch {epoch} holding {} durable txns (to {:#x}, same: {same}), not the {need} of {leader}'s history (to {:#x})",
                s.durable,
                s.durable.checked_sub(1).map_or(0, |i| s.log[i].0),
                need.checked_sub(1)
                    .and_then(|i| l.get(i))
                    .map_or(0, |e| e.0),
            ))
        }
    }

    /// A leader's counter rolled over into `epoch`: like an establishment, no other
    /// leader may ever have that epoch, and learners take it holding the history up
    /// to the previous epoch's last txn.
    fn rolled_over(&mut self, id: ServerId, epoch: Epoch) {
        if let Some(other) = self.established.insert(epoch, id) {
            return self.fail(format!(
                "epoch {epoch} taken twice: established by {other}, rolled over into by {id}"
            ));
        }
        self.counts.rollovers += 1;
        let last = make_zxid(epoch - 1, self.limits.zxid_counter_max);
        let log = &self.servers[&id].log;
        let len = log.partition_point(|e| e.0 <= last);
        if len == 0 || log[len - 1].0 != last {
            return self.fail(format!("{id} rolled over into {epoch} without {last:#x}"));
        }
        self.history_len.insert(epoch, len);
    }

    /// `SetAcceptedEpoch`: a promise is only ever raised.
    fn promise(&mut self, id: ServerId, epoch: Epoch) {
        let late = self.plant.late_rollover_promise;
        let s = self.srv(id);
        if late {
            s.late_promise = s.late_promise.max(epoch);
        } else {
            s.accepted_epoch = s.accepted_epoch.max(epoch);
        }
    }

    fn set_current_epoch(&mut self, id: ServerId, epoch: Epoch) {
        let s = self.srv(id);
        if s.late_promise >= epoch {
            s.accepted_epoch = s.accepted_epoch.max(epoch);
        }
        if epoch < s.current_epoch || epoch > s.accepted_epoch {
            let why = format!(
                "{id}: current epoch {epoch} after {}, accepted {}",
                s.current_epoch, s.accepted_epoch
            );
            return self.fail(why);
        }
        s.current_epoch = epoch;
    }

    /// Applies `id`'s log up to `upto`, checking it against the chosen sequence.
    fn apply(&mut self, id: ServerId, upto: Zxid) {
        let s = &self.servers[&id];
        let end = s.log.partition_point(|e| e.0 <= upto);
        if end == 0 || s.log[end - 1].0 != upto {
            return self.fail(format!("{id} committed {upto:#x}, not in its log"));
        }
        // The first apply anywhere needs the txn durable on a majority of the
        // voters the applying server counts (its config before this range).
        let voters = voters_of(&s.members);
        let quorum = majority(voters.len());
        let mut chosen = std::mem::take(&mut self.chosen);
        let before = chosen.len();
        let (from, log) = (s.applied, &s.log);
        let r = apply_chosen(id, log, from, end, &mut chosen, quorum, |e| {
            self.durable_holders(e, &voters)
        });
        self.chosen = chosen;
        if let Err(why) = r {
            return self.fail(why);
        }
        let changes: Vec<Vec<Change>> = self.chosen[before..]
            .iter()
            .filter_map(|e| reconfig_of(&e.1))
            .collect();
        for c in changes {
            self.counts.reconfigs += 1;
            for (m, role) in c {
                match (role_in(&self.members, m), role) {
                    (None, Some(_)) => {
                        self.counts.joins += 1;
                        self.counts.new_id_joins += u64::from(m == NEW_ID);
                    }
                    (Some(_), None) => {
                        self.counts.departures += 1;
                        self.ever_out.insert(m);
                    }
                    _ => {}
                }
                set_role(&mut self.members, m, role);
            }
        }
        let s = self.srv(id);
        let from = s.applied;
        s.applied = s.applied.max(end);
        self.counts.commits += 1;
        self.to_carry_out.push_back((id, from, end));
    }

    /// See `to_carry_out`.
    fn carry_out_pending(&mut self) {
        while let Some((id, from, to)) = self.to_carry_out.pop_front() {
            self.carry_out(id, from, to);
        }
    }

    /// The reconfigs among `id`'s txns `from..to`, just applied, carried out in order
    /// as the runtime does (`runtime::driver_reconfig`): the election's voters, the
    /// leader's members and quorum, and its own role (back to election if changed).
    fn carry_out(&mut self, id: ServerId, from: usize, to: usize) {
        let changes: Vec<(Vec<Change>, Zxid)> = self.servers[&id].log[from..to]
            .iter()
            .filter_map(|e| reconfig_of(&e.1).map(|c| (c, e.0)))
            .collect();
        for (changes, version) in changes {
            if version <= self.servers[&id].config {
                continue; // learned through the election already
            }
            let mut members = self.servers[&id].members.clone();
            for (m, role) in changes {
                set_role(&mut members, m, role);
            }
            self.adopt(id, &members, version);
        }
    }

    /// Members another server carried out, learned through the election.
    fn adopt(&mut self, id: ServerId, members: &[Member], version: Zxid) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!(
                "t={} {id} adopts {version:#x}: {:?}",
                self.now,
                voters_of(members)
            );
        }
        let s = self.srv(id);
        // Joins, role changes and departures alike.
        let ids: BTreeSet<ServerId> = members.iter().chain(&s.members).map(|m| m.id).collect();
        let changes: Vec<Change> = ids
            .into_iter()
            .map(|m| (m, role_in(members, m)))
            .filter(|&(m, role)| role_in(&s.members, m) != role)
            .collect();
        s.members = members.to_vec();
        s.config = version;
        let mine = role_in(&s.members, id);
        let voters = voters_of(&s.members);
        let mut eout = Vec::new();
        s.election
            .set_voters(mine.unwrap_or(Role::Observer), voters, version, &mut eout)
            .expect("at least one voter");
        let mut out = Vec::new();
        if let Role2::Leading { disc, core, .. } = &mut s.zab {
            for &(m, role) in changes.iter().filter(|c| c.0 != id) {
                disc.set_member(m, role);
                if let Some(l) = core {
                    l.set_member(m, role, &mut out).expect("within the limits");
                }
            }
        }
        let changed = s.role != mine;
        s.role = mine;
        self.election_actions(id, eout);
        self.leader_actions(id, out);
        if changed {
            self.counts.role_changes += 1;
            if self.servers[&id].up {
                self.look(id);
            }
        }
    }

    fn check_prefix(&self, id: ServerId, img: &[(Zxid, TxnBytes)]) -> Check {
        let agree = img.len() <= self.chosen.len()
            && img
                .iter()
                .zip(&self.chosen)
                .all(|(a, b)| a.0 == b.0 && a.1[..] == b.1[..]);
        if agree && img.len() >= self.servers[&id].applied {
            Ok(())
        } else {
            Err(format!(
                "{id}: snapshot image of {} txns disagrees with what was applied",
                img.len()
            ))
        }
    }

    /// How many of `voters` hold `entry` durably, byte for byte.
    fn durable_holders(&self, entry: &(Zxid, TxnBytes), voters: &[ServerId]) -> usize {
        voters
            .iter()
            .filter(|v| {
                let s = &self.servers[v];
                s.log[..s.durable]
                    .iter()
                    .any(|e| e.0 == entry.0 && e.1[..] == entry.1[..])
            })
            .count()
    }

    /// `leader`'s txn at `zxid` is durable, byte for byte, on a majority of voters.
    fn check_majority_durable(&mut self, leader: ServerId, zxid: Zxid) {
        let Some(entry) = self.servers[&leader].log.iter().find(|e| e.0 == zxid) else {
            return self.fail(format!("{leader} committed {zxid:#x}, not in its log"));
        };
        let voters = voters_of(&self.servers[&leader].members);
        let holders = self.durable_holders(entry, &voters);
        if holders < majority(voters.len()) {
            self.fail(format!(
                "committed {zxid:#x} durable on only {holders} voters"
            ));
        }
    }

    // ---- links ----

    fn break_link(&mut self, a: ServerId, b: ServerId) {
        self.links.remove(&(a, b));
        self.links.remove(&(b, a));
        for (x, y) in [(a, b), (b, a)] {
            if self.servers[&y].up && self.servers[&y].leader() == Some(x) {
                if self.reconnect_directly && self.rng.random_bool(0.7) {
                    // A new link to the same leader: discovery again, no election.
                    let now = self.now;
                    let s = self.srv(y);
                    s.flush();
                    s.zab = Role2::Learning {
                        leader: x,
                        disc: None,
                        core: None,
                        since: now,
                    };
                } else {
                    self.look(y); // a learner whose link to its leader broke
                }
            }
        }
        self.leader_lost_link(a, b);
        self.leader_lost_link(b, a);
    }

    /// `leader` (if it leads) forgets what `learner` said on their link.
    fn leader_lost_link(&mut self, leader: ServerId, learner: ServerId) {
        if let Role2::Leading { disc, core, .. } = &mut self.srv(leader).zab {
            disc.disconnected(learner);
            if let Some(l) = core {
                let _ = l.follower_disconnected(learner);
            }
        }
    }

    fn cut_link(&mut self, a: ServerId, b: ServerId) {
        self.cut.insert((a.min(b), a.max(b)));
        self.break_link(a, b);
    }

    fn crash(&mut self, id: ServerId) {
        self.counts.crashes += 1;
        let s = self.srv(id);
        s.up = false;
        let was = std::mem::replace(&mut s.zab, Role2::Looking);
        s.lose_undurable();
        s.late_promise = 0;
        if let Role2::Learning { leader, .. } = was {
            self.leader_lost_link(leader, id);
        }
        let others: Vec<ServerId> = self.servers.keys().copied().filter(|&o| o != id).collect();
        for o in others {
            self.break_link(id, o); // its learners look again
        }
    }

    fn restart(&mut self, id: ServerId) {
        let s = self.srv(id);
        let voters = voters_of(&s.members);
        s.up = true;
        s.election = Election::new(election_config(id, &voters, s.role)).unwrap();
        s.election
            .set_voters(
                s.role.unwrap_or(Role::Observer),
                voters,
                s.config,
                &mut Vec::new(),
            )
            .unwrap();
        self.look(id);
    }

    // ---- time ----

    fn step(&mut self) -> Check {
        self.now += 1;
        if self.faults {
            self.inject_faults();
        }
        self.deliver();
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        for &id in &ids {
            if !self.servers[&id].up {
                continue;
            }
            let mut out = Vec::new();
            self.srv(id).election.tick(&mut out);
            self.election_actions(id, out);
            self.persist_some(id);
            self.carry_out_pending();
            self.drive(id);
            self.carry_out_pending();
            if self.servers[&id].role.is_none() && self.now.is_multiple_of(NON_MEMBER_LOOK_TICKS) {
                // As the runtime's non-members: a new round now and then, in which a
                // peer with newer members pushes them (`ElectionAction::SendConfig`).
                self.look(id);
            }
        }
        self.violation.take().map_or(Ok(()), Err)
    }

    fn deliver(&mut self) {
        let keys: Vec<(ServerId, ServerId)> = self.links.keys().copied().collect();
        for (from, to) in keys {
            // The link may break (be removed) while delivering.
            while let Some(q) = self.links.get_mut(&(from, to)) {
                if q.front().is_none_or(|m| m.0 > self.now) {
                    break;
                }
                let Some((_, w)) = q.pop_front() else { break };
                match w {
                    Wire::Vote(n) => {
                        let mut out = Vec::new();
                        self.srv(to).election.step(from, n, &mut out);
                        self.election_actions(to, out);
                    }
                    Wire::Members {
                        members,
                        version,
                        n,
                    } => {
                        if version > self.servers[&to].config {
                            self.counts.members_learned += 1;
                            self.adopt(to, &members, version);
                        }
                        if self.servers[&to].up {
                            let mut out = Vec::new();
                            self.srv(to).election.step(from, n, &mut out);
                            self.election_actions(to, out);
                        }
                    }
                    Wire::Zab(msg) => self.deliver_zab(from, to, msg, None),
                    Wire::Snap { msg, image } => self.deliver_zab(from, to, msg, Some(image)),
                }
                self.carry_out_pending();
            }
        }
    }

    fn deliver_zab(
        &mut self,
        from: ServerId,
        to: ServerId,
        msg: Msg,
        image: Option<Vec<(Zxid, TxnBytes)>>,
    ) {
        let discovery = matches!(
            msg.body,
            Body::FollowerInfo { .. } | Body::LeaderInfo | Body::AckEpoch { .. }
        );
        let mut dout = Vec::new();
        let mut out = Vec::new();
        let s = self.srv(to);
        match &mut s.zab {
            Role2::Leading { disc, .. } if discovery => {
                if disc.step(from, msg, &mut dout).is_err() {
                    return self.look(to);
                }
                self.discovery_actions(to, dout);
            }
            Role2::Leading { core: Some(l), .. } => {
                if l.step(from, msg, &mut out).is_err() {
                    return self.break_link(to, from);
                }
                self.leader_actions(to, out);
            }
            Role2::Learning {
                leader,
                disc: Some(d),
                ..
            } if discovery && *leader == from => {
                if d.step(from, msg, &mut dout).is_err() {
                    return self.look(to);
                }
                self.discovery_actions(to, dout);
            }
            Role2::Learning {
                leader,
                core: Some(f),
                ..
            } if *leader == from => {
                if f.step(from, msg, &mut out).is_err() {
                    return self.look(to);
                }
                self.learner_actions(to, out, image);
            }
            _ => {}
        }
    }

    /// WAL appends complete in random prefixes.
    fn persist_some(&mut self, id: ServerId) {
        let s = &self.servers[&id];
        let pending = s.log.len() - s.durable;
        if pending == 0 || !self.rng.random_bool(0.5) {
            return;
        }
        let n = self.rng.random_range(1..=pending);
        let s = self.srv(id);
        s.durable += n;
        let upto = s.last_durable();
        let mut out = Vec::new();
        match &mut s.zab {
            Role2::Leading { core: Some(l), .. } => {
                l.persisted(upto, &mut out)
                    .expect("persisted what was logged");
                self.leader_actions(id, out);
            }
            Role2::Learning { core: Some(f), .. } => {
                f.persisted(upto, &mut out)
                    .expect("persisted what was logged");
                self.learner_actions(id, out, None);
            }
            _ => {}
        }
    }

    /// Leaders propose and watch their quorum; learners connect to their leader.
    fn drive(&mut self, id: ServerId) {
        let now = self.now;
        let s = &self.servers[&id];
        let voters = voters_of(&s.members);
        match &s.zab {
            Role2::Looking => {}
            Role2::Leading {
                core, quorum_seen, ..
            } => {
                let synced = match core {
                    Some(l) => voters
                        .iter()
                        .filter(|&&v| v == id || (l.is_synced(v) && self.connected(id, v)))
                        .count(),
                    None => 0,
                };
                if synced >= majority(voters.len()) {
                    if let Role2::Leading { quorum_seen, .. } = &mut self.srv(id).zab {
                        *quorum_seen = now;
                    }
                    if self.reconfig && self.rng.random_bool(0.02) {
                        self.propose_reconfig(id);
                    } else if self.rng.random_bool(0.4) {
                        self.propose(id);
                    }
                } else if now - quorum_seen > QUORUM_LOST_TICKS_MAX {
                    self.look(id);
                }
            }
            Role2::Learning {
                leader,
                disc,
                since,
                ..
            } => {
                let leader = *leader;
                let listening = matches!(self.servers[&leader].zab, Role2::Leading { .. });
                if disc.is_none() && listening && self.connected(id, leader) {
                    let own = self.servers[&id].history();
                    let role = self.servers[&id].role.unwrap_or(Role::Observer);
                    let mut out = Vec::new();
                    let d = LearnerDiscovery::new(leader, own, role, &mut out);
                    if let Role2::Learning { disc, .. } = &mut self.srv(id).zab {
                        *disc = Some(d);
                    }
                    self.discovery_actions(id, out);
                } else if disc.is_none() && now - since > QUORUM_LOST_TICKS_MAX {
                    self.look(id);
                }
            }
        }
    }

    fn propose(&mut self, id: ServerId) {
        self.txn_no += 1;
        let len = self.rng.random_range(1..=16);
        let mut bytes = self.txn_no.to_le_bytes().to_vec();
        bytes.resize(len.max(8), (self.txn_no % 251) as u8);
        self.propose_txn(id, Arc::from(bytes));
    }

    /// As prep does: one voter changes (a server becomes a voter or an observer,
    /// 2..=5 voters remain), and only once the leader carried out every reconfig
    /// it logged (none in its log beyond what it applied).
    fn propose_reconfig(&mut self, id: ServerId) {
        let s = &self.servers[&id];
        if s.reconfig_proposed > s.config {
            return; // one in flight (it may be held by a rollover, not logged yet)
        }
        // A majority of the voters carried out the current members (the runtime
        // learns it from pings).
        let voters = voters_of(&s.members);
        let carried = voters
            .iter()
            .filter(|v| self.servers[v].config >= s.config)
            .count();
        if carried < majority(voters.len()) {
            return;
        }
        let n = if self.plant.reconfig_two_at_once {
            2
        } else {
            1
        };
        let mut members = s.members.clone();
        let mut changes = Vec::new();
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        for _ in 0..n {
            let m = ids[self.rng.random_range(0..ids.len())];
            if role_in(&members, m).is_none() && !self.servers[&m].up {
                return; // an operator adds a running server (a down one cannot start)
            }
            let voters = voters_of(&members).len();
            let leave = self.rng.random_bool(0.5);
            // A voter becomes an observer or leaves, an observer becomes a voter or
            // leaves, a non-member (removed, or the new id) joins as either.
            let role = match role_in(&members, m) {
                Some(Role::Participant) if voters > 2 => (!leave).then_some(Role::Observer),
                Some(Role::Observer) if leave => None,
                Some(Role::Observer) if voters < 5 => Some(Role::Participant),
                None if leave || voters >= 5 => Some(Role::Observer),
                None => Some(Role::Participant),
                _ => return,
            };
            set_role(&mut members, m, role);
            changes.push((m, role));
        }
        // Prep's NEWCONFIG_NO_QUORUM: a majority of the new voters is synchronised
        // with this leader (a voter that cannot sync, e.g. a removed server that
        // will not start again, is not made one while it would be needed).
        let Role2::Leading { core: Some(l), .. } = &self.servers[&id].zab else {
            return;
        };
        let next = voters_of(&members);
        let synced = next
            .iter()
            .filter(|&&v| v == id || (l.is_synced(v) && self.connected(id, v)))
            .count();
        if synced < majority(next.len()) {
            return;
        }
        self.txn_no += 1;
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!(
                "t={} {id} proposes {changes:?} (from {:?})",
                self.now,
                voters_of(&self.servers[&id].members)
            );
        }
        if let Some(z) = self.propose_txn(id, reconfig_txn(&changes, self.txn_no)) {
            self.srv(id).reconfig_proposed = z;
        }
    }

    /// Proposes `txn`; its zxid if the leader took it.
    fn propose_txn(&mut self, id: ServerId, txn: TxnBytes) -> Option<Zxid> {
        let mut out = Vec::new();
        let mut took = None;
        if let Role2::Leading { core: Some(l), .. } = &mut self.srv(id).zab {
            let zxid = l.next_zxid();
            match zxid.clone().and_then(|z| l.propose(z, txn, &mut out)) {
                Ok(_) => {
                    self.counts.proposals += 1;
                    took = zxid.ok();
                }
                Err(ProposeError::Throttled { .. } | ProposeError::NotReady) => {}
                Err(e) => {
                    self.fail(format!("{id}: propose failed: {e}"));
                    return None;
                }
            }
        }
        self.leader_actions(id, out);
        took
    }

    fn inject_faults(&mut self) {
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        let pick = |rng: &mut SmallRng| ids[rng.random_range(0..ids.len())];
        let r = self.rng.random_range(0..1000);
        if r < 3 {
            let id = pick(&mut self.rng);
            let down = self.servers.values().filter(|s| !s.up).count();
            if self.servers[&id].up && down < majority(voters_of(&self.members).len()) {
                self.crash(id);
            }
        } else if r < 10 {
            if let Some(id) = self
                .servers
                .values()
                .find(|s| !s.up && s.role.is_some())
                .map(|s| s.id)
            {
                self.restart(id);
            }
        } else if r < 15 {
            let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
            if a != b {
                self.cut_link(a, b);
            }
        } else if r < 17 {
            let a = pick(&mut self.rng);
            for &b in &ids {
                if a != b {
                    self.cut_link(a, b);
                }
            }
        } else if r < 40 && !self.cut.is_empty() {
            let i = self.rng.random_range(0..self.cut.len());
            let link = *self.cut.iter().nth(i).unwrap();
            self.cut.remove(&link);
        }
    }

    fn heal(&mut self) {
        self.faults = false;
        self.cut.clear();
        // A server whose durable members leave it out refuses to start (the runtime's
        // "removed by a reconfig"), so it stays down.
        let down: Vec<ServerId> = self
            .servers
            .values()
            .filter(|s| !s.up && s.role.is_some())
            .map(|s| s.id)
            .collect();
        for id in down {
            self.restart(id);
        }
    }

    /// The established leader, when every voter is synchronised to it.
    fn settled(&self) -> Option<ServerId> {
        let (id, l) = self.servers.values().find_map(|s| match &s.zab {
            Role2::Leading { core: Some(l), .. } => Some((s.id, l)),
            _ => None,
        })?;
        let voters = voters_of(&self.servers[&id].members);
        let all = voters
            .iter()
            .all(|&v| v == id || l.is_synced(v) || self.cannot_start(v));
        all.then_some(id)
    }

    /// Down, and its durable members leave it out: the runtime refuses to start it
    /// (a server removed by a reconfig), even if a later reconfig, which it never
    /// learned, added it back: an operator's mistake the ensemble survives while a
    /// majority of the voters can run.
    fn cannot_start(&self, id: ServerId) -> bool {
        let s = &self.servers[&id];
        !s.up && s.role.is_none()
    }

    fn describe(&self) -> String {
        let states: Vec<String> = self
            .servers
            .values()
            .map(|s| {
                let zab = match &s.zab {
                    Role2::Looking => "looking".to_string(),
                    Role2::Leading { core, .. } => match core {
                        Some(l) => format!(
                            "leading epoch {} (from {}, last {:#x}, committed {:#x}, inflight {})",
                            l.epoch(),
                            l.first_epoch(),
                            l.last_zxid(),
                            l.committed_zxid(),
                            l.inflight()
                        ),
                        None => "leading (not established)".to_string(),
                    },
                    Role2::Learning { leader, core, .. } => match core {
                        Some(f) => format!(
                            "learning from {leader} (epoch {} from {}, {:?}, last {:#x}, committed {:#x}, {:?})",
                            f.epoch(),
                            f.config().epoch,
                            f.link(),
                            f.last_logged(),
                            f.committed_zxid(),
                            f.stats()
                        ),
                        None => format!("learning from {leader} (discovery)"),
                    },
                };
                format!(
                    "{}: up={} {:?} voters={:?} {zab} history={:?} applied={:#x} election={:?}",
                    s.id,
                    s.up,
                    s.role,
                    voters_of(&s.members),
                    s.history(),
                    s.applied_zxid(),
                    s.election.state()
                )
            })
            .collect();
        states.join("; ")
    }
}

/// A reconfig txn (17 bytes, unlike any other txn of the sim: those have 8..=16):
/// server `id` becomes a `role`.
/// (Only `Plant::reconfig_two_at_once` makes two changes.)
fn reconfig_txn(changes: &[Change], no: u64) -> TxnBytes {
    let mut b = vec![0xFF];
    for &(id, role) in changes {
        let code = match role {
            Some(Role::Observer) => 0,
            Some(Role::Participant) => 1,
            None => 2,
        };
        b.extend([id as u8, code]);
    }
    b.resize(5, 0);
    b.extend_from_slice(&no.to_le_bytes());
    b.resize(17, 0);
    Arc::from(b)
}

fn reconfig_of(txn: &[u8]) -> Option<Vec<Change>> {
    (txn.len() == 17 && txn[0] == 0xFF).then(|| {
        txn[1..5]
            .chunks(2)
            .filter(|c| c[0] != 0)
            .map(|c| {
                let role = match c[1] {
                    0 => Some(Role::Observer),
                    1 => Some(Role::Participant),
                    _ => None,
                };
                (ServerId::from(c[0]), role)
            })
            .collect()
    })
}

/// `id` takes `role` (joining if new) or leaves; members stay sorted by id.
fn set_role(members: &mut Vec<Member>, id: ServerId, role: Option<Role>) {
    members.retain(|m| m.id != id);
    if let Some(role) = role {
        members.push(Member { id, role });
        members.sort_by_key(|m| m.id);
    }
}

fn role_in(members: &[Member], id: ServerId) -> Option<Role> {
    members.iter().find(|m| m.id == id).map(|m| m.role)
}

fn voters_of(members: &[Member]) -> Vec<ServerId> {
    members
        .iter()
        .filter(|m| m.role == Role::Participant)
        .map(|m| m.id)
        .collect()
}

fn run_seed(seed: u64, ticks: u64, plant: Plant) -> Result<Counts, String> {
    let mut sim = Sim::new(seed, plant);
    for _ in 0..ticks {
        sim.step()?;
    }
    sim.heal();
    let start = sim.now;
    let leader = loop {
        if let Some(l) = sim.settled() {
            break l;
        }
        if sim.now - start > SETTLE_TICKS_MAX {
            return Err(format!("did not settle: {}", sim.describe()));
        }
        sim.step()?;
    };
    // One more txn must reach every server's state.
    let target = sim.chosen.len() + 1;
    sim.propose(leader);
    while sim.servers.values().any(|s| {
        s.applied < target && role_in(&sim.members, s.id).is_some() && !sim.cannot_start(s.id)
    }) {
        if sim.now - start > SETTLE_TICKS_MAX {
            return Err(format!(
                "the last txn was not applied everywhere: {}",
                sim.describe()
            ));
        }
        sim.step()?;
    }
    sim.counts.outsiders_in_at_end = sim
        .ever_out
        .iter()
        .filter(|&&id| role_in(&sim.members, id).is_some())
        .count() as u64;
    Ok(sim.counts)
}

#[test]
fn an_ensemble_agrees_and_keeps_commits_through_leader_changes() {
    let ticks = env_u64("CLUSTER_SIM_TICKS").unwrap_or(TICKS_DEFAULT);
    let mut total = Counts::default();
    for c in for_each_seed("CLUSTER_SIM", "sim_cluster", SEEDS_DEFAULT, |seed| {
        run_seed(seed, ticks, Plant::default())
    }) {
        total.establishments += c.establishments;
        total.proposals += c.proposals;
        total.commits += c.commits;
        total.snaps += c.snaps;
        total.truncs += c.truncs;
        total.crashes += c.crashes;
        total.rollovers += c.rollovers;
        total.reconfigs += c.reconfigs;
        total.role_changes += c.role_changes;
        total.members_learned += c.members_learned;
        total.joins += c.joins;
        total.departures += c.departures;
        total.new_id_joins += c.new_id_joins;
        total.outsiders_in_at_end += c.outsiders_in_at_end;
    }
    eprintln!("sim_cluster: {total:?}");
    assert!(
        total.establishments > 0 && total.commits > 0,
        "no progress at all"
    );
    assert!(total.rollovers > 0, "no counter rollover exercised");
    assert!(
        total.reconfigs > 0
            && total.role_changes > 0
            && total.departures > 0
            && total.new_id_joins > 0
            && total.outsiders_in_at_end > 0,
        "no reconfig exercised"
    );
}

/// Seeds a plant is swept over before the test gives up on its checker: far more
/// than any plant needs (the early epoch, the rarest, is caught by about 1 seed in
/// 100; the history by about 6 in 10), so the test does not hang on where a change
/// to the simulator moves the catching seeds. `PLANT_SEEDS=N` overrides it.
const PLANT_SEEDS_CAP: u64 = 20_000;

/// Runs `seeds` seeds with `plant`; returns how many failed and the first error.
fn caught(plant: Plant, seeds: u64) -> (usize, String) {
    let seeds = env_u64("PLANT_SEEDS").unwrap_or(seeds);
    let errs: Vec<String> = (0..seeds)
        .filter_map(|seed| {
            run_seed(seed, TICKS_DEFAULT, plant)
                .err()
                .map(|e| format!("seed {seed}: {e}"))
        })
        .collect();
    (errs.len(), errs.into_iter().next().unwrap_or_default())
}

/// Sweeps seeds 0.. with `plant` until one fails, i.e. the checker caught the bug:
/// a rare bug costs only the seeds up to its first catch, and the cap bounds a
/// checker that misses it. The first failing seed and its error.
fn first_caught(plant: Plant) -> Result<(u64, String), String> {
    let cap = env_u64("PLANT_SEEDS").unwrap_or(PLANT_SEEDS_CAP);
    (0..cap)
        .find_map(|seed| {
            run_seed(seed, TICKS_DEFAULT, plant)
                .err()
                .map(|e| (seed, e))
        })
        .ok_or_else(|| format!("not caught in {cap} seeds"))
}

#[test]
fn checker_catches_a_minority_commit() {
    let (n, err) = caught(
        Plant {
            commit_quorum_one: true,
            ..Plant::default()
        },
        20,
    );
    println!("minority commit caught in {n} of 20 seeds");
    assert!(n >= 10, "caught in only {n} of 20 seeds");
    assert!(err.contains("durable on only"), "{err}");
}

/// Caught only in rare interleavings: a voter that took the epoch too early crashes in
/// the few ticks before a majority holds the leader's history, and a later leader
/// lacks a txn.
#[test]
fn checker_catches_an_epoch_taken_before_the_history() {
    let (seed, err) = first_caught(Plant {
        early_current_epoch: true,
        ..Plant::default()
    })
    .unwrap();
    println!("early current epoch first caught at seed {seed}: {err}");
}

/// A new leader that applies its whole history at establishment applies a tail that
/// a majority may not hold: the first apply of a txn anywhere must find it durable on
/// a majority of voters, which fails at once (in most seeds, not only in the rare
/// ones where a later leader then lacks the txn).
#[test]
fn checker_catches_a_history_applied_before_a_majority_has_it() {
    let (seed, err) = first_caught(Plant {
        history_taken_as_committed: true,
        ..Plant::default()
    })
    .unwrap();
    println!("history taken as committed first caught at seed {seed}: {err}");
    assert!(err.contains("first while it was durable on only"), "{err}");
}

/// A leader that rolls its counter over before a majority durably promised the next
/// epoch can share that epoch with a leader elected meanwhile (whose discovery saw
/// no promise): caught as an epoch taken twice, or as diverging histories.
#[test]
fn checker_catches_a_rollover_promised_too_late() {
    let (seed, err) = first_caught(Plant {
        late_rollover_promise: true,
        ..Plant::default()
    })
    .unwrap();
    println!("late rollover promise first caught at seed {seed}: {err}");
    assert!(err.contains("twice"), "{err}");
}

/// Two voters changed by one reconfig: a majority of the old voters and one of the
/// new need not meet (3 voters + 2 = 5: {1, 2} committed, {3, 8, 9} elect), so a
/// committed txn can be lost; prep allows one voter change per reconfig.
#[test]
fn checker_catches_two_voter_changes_at_once() {
    let (seed, err) = first_caught(Plant {
        reconfig_two_at_once: true,
        ..Plant::default()
    })
    .unwrap();
    println!("two voter changes at once first caught at seed {seed}: {err}");
}
