//! One server's place in its Zab group, as a pure state machine: looking, leading
//! (discovery, then the broadcast [`Leader`]) or learning (discovery, then a
//! [`Follower`]), with the timers that send it back to election. It strings the pure
//! cores together exactly as `tests/sim_cluster.rs`'s reference driver does; the
//! runtime (`runtime::driver`) carries out its [`NodeAction`]s with real links, the
//! WAL, the epoch files and the shard.
//!
//! # Contract
//! - Inputs: an election [`Decision`] ([`Node::decided`]), link events
//!   ([`Node::link_up`], [`Node::link_down`]), core messages ([`Node::step`]), WAL
//!   durability ([`Node::persisted`]), a leader's history once discovery established
//!   its epoch ([`Node::start_leader`]), proposals ([`Node::propose`]) and ticks
//!   ([`Node::tick`], one per `tickTime`). Every input takes the server's durable
//!   [`History`] where a core needs it.
//! - Outputs, in order: [`NodeAction`]. `PersistAccepted` and `Zab(SetCurrentEpoch)`
//!   must be durable before the next action is carried out; `Look` means "what this
//!   server led or followed is over": the driver stops serving clients, answers what
//!   was in flight with `ConnectionLoss`, makes its WAL durable and starts a new
//!   election round.
//! - Timers: a learner still synchronising that has heard nothing from its leader for
//!   `init_ticks`, or a synchronised one that has heard nothing for `sync_ticks`,
//!   looks again. As in ZooKeeper, whose learner's initLimit is a read timeout while
//!   it syncs, not a deadline: a 1M-znode SNAP takes longer than 5 s to prepare, send,
//!   write and load, and a deadline made a learner drop the SNAP it had nearly loaded
//!   and ask for it again. The driver keeps the silence honest: the leader pings a
//!   learner while it prepares its SNAP, and a learner counts its own SNAP install as
//!   hearing its leader (its inbox may pause the links meanwhile). A leader that
//!   has not established within `init_ticks`, or has had no synchronised majority for
//!   `sync_ticks`, steps down; a leader drops a learner it has not heard from for
//!   `sync_ticks`, `init_ticks` while it is still synchronising (a paused process keeps
//!   its TCP links up: only silence shows it).
//!
//! # Invariants
//! - At most one of discovery / broadcast core is active per role; the cores' own
//!   invariants (module docs of `zab`) hold because every input reaches exactly the
//!   core the sim's driver would give it.
//! - A leader serves (takes writes) only once its core is ready and its history is
//!   committed; a learner serves only after the leader's `UpToDate`.

use std::collections::{BTreeMap, BTreeSet};

use super::links::Policy;
use crate::zab::election::{Decision, PeerState};
use crate::zab::quorum::majority;
use crate::zab::{
    Action, Body, DiscoveryAction, Epoch, Follower, FollowerConfig, History, Leader, LeaderConfig,
    LeaderDiscovery, LearnerDiscovery, Limits, Member, Msg, ProposeError, Role, ServerId, TxnBytes,
    Zxid,
};

/// Links a learner's chosen leader may refuse (it has not decided to lead yet, or
/// decided otherwise) before the learner goes back to election: with the links'
/// backoff (50 ms doubling) about 1.5 s, ZooKeeper's learners try 5 times a second
/// apart. A stale decision (a majority that moved on) costs that, not initLimit.
pub const LEADER_REFUSALS_MAX: u32 = 5;

/// What one server is configured with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: ServerId,
    pub role: Role,
    /// Every member, this server included.
    pub members: Vec<Member>,
    pub limits: Limits,
    /// `initLimit`: ticks to establish (leader) or synchronise (learner).
    pub init_ticks: u64,
    /// `syncLimit`: ticks of silence or of a lost quorum that end a leadership.
    pub sync_ticks: u64,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAction {
    /// A core's action (see `zab::Action`).
    Zab(Action),
    /// Make `epoch` the accepted epoch, durably, before the next action.
    PersistAccepted(Epoch),
    /// The quorum port's links from now on.
    Policy(Policy),
    /// Discovery established `epoch`: call [`Node::start_leader`] with the history.
    Establish { epoch: Epoch },
    /// Learner: discovery accepted the leader's `epoch`: call [`Node::start_follower`].
    Accepted { epoch: Epoch },
    /// Leader: send `UpToDate` to this learner (it may serve clients).
    UpToDate { to: ServerId },
    /// Start serving clients (a learner got `UpToDate`; a leader's history is
    /// committed: the driver then preps from `make_zxid(epoch, 0)`).
    Serve { epoch: Epoch },
    /// Close the link to `peer` (a protocol error or silence).
    Close { peer: ServerId, reason: String },
    /// Back to election (see module docs).
    Look { reason: String },
}

/// Where the server stands (one per server, so the size of `Leading` is no concern).
#[allow(clippy::large_enum_variant)]
enum Phase {
    Looking,
    Leading {
        disc: LeaderDiscovery,
        core: Option<Leader>,
        since: u64,
        quorum_seen: u64,
        serving: bool,
        uptodate: BTreeSet<ServerId>,
        heard: BTreeMap<ServerId, u64>,
        /// Learners discovery synchronised before the core existed.
        pending_syncs: Vec<(ServerId, Zxid, Epoch, Role)>,
    },
    Learning {
        leader: ServerId,
        disc: Option<LearnerDiscovery>,
        core: Option<Follower>,
        heard: u64,
        serving: bool,
        /// The leader answered on the current link. A link that closes before it
        /// did was refused (the leader has not decided yet, a common race right
        /// after an election): the learner redials instead of looking again, up to
        /// [`LEADER_REFUSALS_MAX`] times.
        answered: bool,
        refusals: u32,
    },
}

/// What the server is, for status reports (`srvr`, `mntr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Looking,
    Leading { serving: bool },
    Following { leader: ServerId, serving: bool },
    Observing { leader: ServerId, serving: bool },
}

/// One server's Zab group membership.
pub struct Node {
    cfg: NodeConfig,
    phase: Phase,
    ticks: u64,
}

fn zab(out: &mut Vec<NodeAction>, acts: Vec<Action>) {
    out.extend(acts.into_iter().map(NodeAction::Zab));
}

impl Node {
    /// A looking server; the driver starts election at once.
    pub fn new(cfg: NodeConfig) -> Node {
        debug_assert!(
            cfg.members
                .iter()
                .any(|m| m.id == cfg.id && m.role == cfg.role),
            "a node is a member of its ensemble"
        );
        Node {
            cfg,
            phase: Phase::Looking,
            ticks: 0,
        }
    }

    /// The Zab limits it runs with.
    pub fn limits(&self) -> &Limits {
        &self.cfg.limits
    }

    pub fn id(&self) -> ServerId {
        self.cfg.id
    }

    pub fn mode(&self) -> Mode {
        match &self.phase {
            Phase::Looking => Mode::Looking,
            Phase::Leading { serving, .. } => Mode::Leading { serving: *serving },
            Phase::Learning {
                leader, serving, ..
            } => match self.cfg.role {
                Role::Participant => Mode::Following {
                    leader: *leader,
                    serving: *serving,
                },
                Role::Observer => Mode::Observing {
                    leader: *leader,
                    serving: *serving,
                },
            },
        }
    }

    /// Whether clients may be served now.
    pub fn serving(&self) -> bool {
        matches!(
            self.phase,
            Phase::Leading { serving: true, .. } | Phase::Learning { serving: true, .. }
        )
    }

    /// The leader this server follows or is.
    pub fn leader(&self) -> Option<ServerId> {
        match &self.phase {
            Phase::Looking => None,
            Phase::Leading { .. } => Some(self.cfg.id),
            Phase::Learning { leader, .. } => Some(*leader),
        }
    }

    /// The broadcast leader core, when this server leads an established epoch.
    pub fn leader_core(&self) -> Option<&Leader> {
        match &self.phase {
            Phase::Leading { core, .. } => core.as_ref(),
            _ => None,
        }
    }

    /// The learners synchronised to this leader.
    pub fn synced_learners(&self) -> Vec<ServerId> {
        match self.leader_core() {
            Some(l) => self
                .cfg
                .members
                .iter()
                .filter(|m| m.id != self.cfg.id && l.is_synced(m.id))
                .map(|m| m.id)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether this server is a member (a reconfig may have removed it).
    pub fn is_member(&self) -> bool {
        self.cfg.members.iter().any(|m| m.id == self.cfg.id)
    }

    /// The voting members (participants), this server included if it is one.
    pub fn voters(&self) -> Vec<ServerId> {
        self.cfg
            .members
            .iter()
            .filter(|m| m.role == Role::Participant)
            .map(|m| m.id)
            .collect()
    }

    pub fn role_of(&self, id: ServerId) -> Role {
        self.cfg
            .members
            .iter()
            .find(|m| m.id == id)
            .map_or(Role::Observer, |m| m.role)
    }

    /// Election decided: lead (discovery starts) or learn from `d.vote.leader`.
    pub fn decided(&mut self, d: &Decision, own: History, out: &mut Vec<NodeAction>) {
        if !matches!(self.phase, Phase::Looking) {
            return; // a late decision of a round already acted on
        }
        if !self.is_member() {
            return; // removed by a reconfig: it leads and follows no one
        }
        let now = self.ticks;
        match d.state {
            PeerState::Leading => {
                let mut dout = Vec::new();
                match LeaderDiscovery::new(self.cfg.id, self.cfg.members.clone(), own, &mut dout) {
                    Ok(disc) => {
                        self.phase = Phase::Leading {
                            disc,
                            core: None,
                            since: now,
                            quorum_seen: now,
                            serving: false,
                            uptodate: BTreeSet::new(),
                            heard: BTreeMap::new(),
                            pending_syncs: Vec::new(),
                        };
                        out.push(NodeAction::Policy(Policy::ToLeader(Some(self.cfg.id))));
                        self.discovery_actions(dout, out);
                    }
                    Err(e) => self.look(format!("cannot lead: {e}"), out),
                }
            }
            PeerState::Following | PeerState::Observing => {
                self.phase = Phase::Learning {
                    leader: d.vote.leader,
                    disc: None,
                    core: None,
                    heard: now,
                    serving: false,
                    answered: false,
                    refusals: 0,
                };
                out.push(NodeAction::Policy(Policy::ToLeader(Some(d.vote.leader))));
            }
            PeerState::Looking => debug_assert!(false, "a decision is never Looking"),
        }
    }

    /// A quorum-port link to `peer` is up: a learner starts discovery on its link
    /// to the leader (every new link does, reconnects included).
    pub fn link_up(&mut self, peer: ServerId, own: History, out: &mut Vec<NodeAction>) {
        let now = self.ticks;
        let role = self.cfg.role;
        if let Phase::Learning {
            leader,
            disc,
            core,
            heard,
            ..
        } = &mut self.phase
            && *leader == peer
        {
            let mut dout = Vec::new();
            *disc = Some(LearnerDiscovery::new(peer, own, role, &mut dout));
            *core = None;
            *heard = now;
            self.discovery_actions(dout, out);
        }
    }

    /// The link to `peer` is gone: a learner whose leader link broke looks again; a
    /// leader forgets what the learner said on it.
    pub fn link_down(&mut self, peer: ServerId, out: &mut Vec<NodeAction>) {
        match &mut self.phase {
            Phase::Learning {
                leader,
                disc,
                core,
                answered: false,
                refusals,
                ..
            } if *leader == peer && *refusals < LEADER_REFUSALS_MAX => {
                // Refused before the leader said anything: it may not have decided
                // yet. The links redial (with backoff, 50 ms doubling).
                *refusals += 1;
                *disc = None;
                *core = None;
            }
            Phase::Learning {
                leader,
                answered: false,
                ..
            } if *leader == peer => self.look(
                format!("leader {peer} refused {LEADER_REFUSALS_MAX} links: it does not lead"),
                out,
            ),
            Phase::Learning { leader, .. } if *leader == peer => {
                self.look(format!("the link to leader {peer} closed"), out)
            }
            Phase::Leading {
                disc,
                core,
                uptodate,
                heard,
                ..
            } => {
                disc.disconnected(peer);
                uptodate.remove(&peer);
                heard.remove(&peer);
                if let Some(l) = core {
                    let _ = l.follower_disconnected(peer);
                }
            }
            _ => {}
        }
    }

    /// Something arrived from `peer`: it is alive.
    pub fn heard(&mut self, peer: ServerId) {
        let now = self.ticks;
        match &mut self.phase {
            Phase::Learning {
                leader,
                heard,
                answered,
                ..
            } if *leader == peer => {
                *heard = now;
                *answered = true;
            }
            Phase::Leading { heard, .. } => {
                heard.insert(peer, now);
            }
            _ => {}
        }
    }

    /// A core message from `from`.
    pub fn step(&mut self, from: ServerId, msg: Msg, out: &mut Vec<NodeAction>) {
        self.heard(from);
        let discovery = matches!(
            msg.body,
            Body::FollowerInfo { .. } | Body::LeaderInfo | Body::AckEpoch { .. }
        );
        let mut dout = Vec::new();
        let mut zout = Vec::new();
        match &mut self.phase {
            Phase::Leading { disc, .. } if discovery => {
                if let Err(e) = disc.step(from, msg, &mut dout) {
                    return self.look(format!("discovery: {e}"), out);
                }
                self.discovery_actions(dout, out);
            }
            Phase::Leading { core: Some(l), .. } => {
                if let Err(e) = l.step(from, msg, &mut zout) {
                    out.push(NodeAction::Close {
                        peer: from,
                        reason: format!("protocol error: {e}"),
                    });
                    return;
                }
                zab(out, zout);
                self.sync_rolled_epoch();
            }
            Phase::Learning {
                leader,
                disc: Some(d),
                core: None,
                ..
            } if discovery && *leader == from => {
                if let Err(e) = d.step(from, msg, &mut dout) {
                    return self.look(format!("discovery: {e}"), out);
                }
                self.discovery_actions(dout, out);
            }
            Phase::Learning {
                leader,
                core: Some(f),
                ..
            } if *leader == from => {
                if let Err(e) = f.step(from, msg, &mut zout) {
                    return self.look(format!("leader {from}'s stream: {e}"), out);
                }
                zab(out, zout);
            }
            _ => {} // not for this phase: stale or early, the cores' epochs decide
        }
    }

    /// Leader: the link to `to` carried `UpToDate`... (learner side) the leader said
    /// this learner is in sync: serve clients.
    pub fn up_to_date(&mut self, from: ServerId, out: &mut Vec<NodeAction>) {
        if let Phase::Learning {
            leader,
            core: Some(f),
            serving,
            ..
        } = &mut self.phase
            && *leader == from
            && !*serving
        {
            *serving = true;
            out.push(NodeAction::Serve {
                epoch: f.config().epoch,
            });
        }
    }

    fn discovery_actions(&mut self, dout: Vec<DiscoveryAction>, out: &mut Vec<NodeAction>) {
        for a in dout {
            match a {
                DiscoveryAction::PersistAcceptedEpoch(e) => {
                    out.push(NodeAction::PersistAccepted(e))
                }
                DiscoveryAction::Send { to, msg } => {
                    out.push(NodeAction::Zab(Action::Send { to, msg }))
                }
                DiscoveryAction::Established { epoch } => out.push(NodeAction::Establish { epoch }),
                DiscoveryAction::Sync {
                    to,
                    last_zxid,
                    epoch,
                    role,
                } => {
                    let mut zout = Vec::new();
                    let r = match &mut self.phase {
                        Phase::Leading { core: Some(l), .. } => {
                            l.follower_connected_at(to, last_zxid, epoch, role, &mut zout)
                        }
                        Phase::Leading {
                            core: None,
                            pending_syncs,
                            ..
                        } => {
                            // Established in this same step: the driver starts the
                            // core (`start_leader`), which synchronises these then.
                            pending_syncs.push((to, last_zxid, epoch, role));
                            continue;
                        }
                        _ => continue,
                    };
                    match r {
                        Ok(_) => {
                            zab(out, zout);
                            self.maybe_up_to_date(out);
                        }
                        Err(e) => out.push(NodeAction::Close {
                            peer: to,
                            reason: format!("cannot synchronise: {e}"),
                        }),
                    }
                }
                DiscoveryAction::Accepted { epoch } => out.push(NodeAction::Accepted { epoch }),
            }
        }
    }

    /// Learner, on [`NodeAction::Accepted`]: the follower core of `epoch` over the
    /// driver's log (`last_logged`, durable) and applied state (`committed`), waiting
    /// for the leader's sync.
    pub fn start_follower(
        &mut self,
        epoch: Epoch,
        last_logged: Zxid,
        committed: Zxid,
        out: &mut Vec<NodeAction>,
    ) {
        let (id, role) = (self.cfg.id, self.cfg.role);
        if let Phase::Learning { leader, core, .. } = &mut self.phase {
            let cfg = FollowerConfig {
                id,
                leader: *leader,
                epoch,
                role,
                zxid_counter_max: self.cfg.limits.zxid_counter_max,
            };
            match Follower::new(cfg, last_logged, committed) {
                Ok(mut f) => {
                    f.await_sync();
                    *core = Some(f);
                }
                Err(e) => self.look(format!("cannot follow: {e}"), out),
            }
        }
    }

    /// Leader: discovery established `epoch`; the broadcast core starts over the
    /// durable log (`history` after `base`, committed up to `committed`).
    pub fn start_leader(
        &mut self,
        epoch: Epoch,
        base: Zxid,
        committed: Zxid,
        history: Vec<(Zxid, TxnBytes)>,
        out: &mut Vec<NodeAction>,
    ) {
        let mut cfg = LeaderConfig::new(self.cfg.id, epoch, self.cfg.members.clone());
        cfg.limits = self.cfg.limits;
        let mut core = match Leader::new(cfg, base, committed, history) {
            Ok(l) => l,
            Err(e) => return self.look(format!("cannot start leading epoch {epoch}: {e}"), out),
        };
        let mut zout = Vec::new();
        core.start(&mut zout);
        let mut pending = Vec::new();
        if let Phase::Leading {
            core: c,
            pending_syncs,
            ..
        } = &mut self.phase
        {
            *c = Some(core);
            pending = std::mem::take(pending_syncs);
        }
        zab(out, zout);
        let syncs = pending
            .into_iter()
            .map(|(to, last_zxid, epoch, role)| DiscoveryAction::Sync {
                to,
                last_zxid,
                epoch,
                role,
            })
            .collect();
        self.discovery_actions(syncs, out);
    }

    /// Leader: once ready and its history applied (`applied_all`), it serves.
    pub fn maybe_serve(&mut self, applied_all: bool, out: &mut Vec<NodeAction>) {
        if let Phase::Leading {
            core: Some(l),
            serving,
            ..
        } = &mut self.phase
            && !*serving
            && l.is_ready()
            && applied_all
        {
            *serving = true;
            out.push(NodeAction::Serve { epoch: l.epoch() });
            self.maybe_up_to_date(out);
        }
    }

    /// Leader: every synchronised learner not yet told gets `UpToDate`, once the
    /// leader is ready (its history committed is on the link before it).
    fn maybe_up_to_date(&mut self, out: &mut Vec<NodeAction>) {
        if let Phase::Leading {
            core: Some(l),
            serving: true,
            uptodate,
            ..
        } = &mut self.phase
        {
            for m in &self.cfg.members {
                if m.id != self.cfg.id && l.is_synced(m.id) && uptodate.insert(m.id) {
                    out.push(NodeAction::UpToDate { to: m.id });
                }
            }
        }
    }

    /// Leader: the zxid the next proposal must carry.
    pub fn next_zxid(&self) -> Result<Zxid, ProposeError> {
        match &self.phase {
            Phase::Leading {
                core: Some(l),
                serving: true,
                ..
            } => l.next_zxid(),
            _ => Err(ProposeError::NotReady),
        }
    }

    /// Leader: replicate `txn` at `zxid` (from [`Node::next_zxid`]).
    pub fn propose(
        &mut self,
        zxid: Zxid,
        txn: TxnBytes,
        out: &mut Vec<NodeAction>,
    ) -> Result<(), ProposeError> {
        let Phase::Leading { core: Some(l), .. } = &mut self.phase else {
            return Err(ProposeError::NotReady);
        };
        let mut zout = Vec::new();
        l.propose(zxid, txn, &mut zout)?;
        zab(out, zout);
        Ok(())
    }

    /// Leader (CRAQ): the chain acknowledged `zxid`, so chain member `from` holds
    /// everything up to it durably: its ack for the broadcast core, which keeps the
    /// log learners synchronise from. Unlike [`Node::step`] it does not count as
    /// hearing from `from` (the member said nothing itself).
    pub fn chain_acked(&mut self, from: ServerId, zxid: Zxid, out: &mut Vec<NodeAction>) {
        let Phase::Leading { core: Some(l), .. } = &mut self.phase else {
            return;
        };
        let mut zout = Vec::new();
        let msg = Msg::new(l.epoch(), Body::Ack { zxid });
        if let Err(e) = l.step(from, msg, &mut zout) {
            return self.look(format!("chain ack from {from}: {e}"), out);
        }
        zab(out, zout);
        self.sync_rolled_epoch();
    }

    /// Dynamic reconfiguration, once the reconfig is applied here: `id` joins or
    /// takes a new role (`Some`), or leaves (`None`). This server's own new role
    /// (or its leaving) ends what it leads or follows: it goes back to election,
    /// where it takes part as what it is now (a removed server finds no leader that
    /// takes it). A leader counts the new voters from now on (`Leader::set_member`).
    pub fn set_member(&mut self, id: ServerId, role: Option<Role>, out: &mut Vec<NodeAction>) {
        self.cfg.members.retain(|m| m.id != id);
        if let Some(role) = role {
            self.cfg.members.push(Member { id, role });
        }
        if id == self.cfg.id {
            match role {
                None => self.look("this server left the ensemble (reconfig)".into(), out),
                Some(r) if r != self.cfg.role => {
                    self.cfg.role = r;
                    self.look(format!("this server is a {r:?} now (reconfig)"), out);
                }
                Some(_) => {}
            }
            return;
        }
        let mut zout = Vec::new();
        if let Phase::Leading {
            disc,
            core,
            uptodate,
            heard,
            ..
        } = &mut self.phase
        {
            disc.set_member(id, role);
            if role.is_none() {
                uptodate.remove(&id);
                heard.remove(&id);
            }
            if let Some(l) = core
                && let Err(e) = l.set_member(id, role, &mut zout)
            {
                // Its quorum would no longer be the ensemble's: lead no more.
                return self.look(format!("reconfig of {id} refused by the leader: {e}"), out);
            }
        }
        zab(out, zout);
    }

    /// Leader: discovery offers learners the epoch the core rolled its counter over
    /// to (`zab::leader`, "Counter rollover").
    fn sync_rolled_epoch(&mut self) {
        if let Phase::Leading {
            disc,
            core: Some(l),
            ..
        } = &mut self.phase
            && disc.established() != Some(l.epoch())
        {
            tracing::info!(
                epoch = l.epoch(),
                "zxid counter rolled over: leading the next epoch without an election"
            );
            disc.rolled_over(l.epoch());
        }
    }

    /// The WAL is durable up to `upto`.
    pub fn persisted(&mut self, upto: Zxid, out: &mut Vec<NodeAction>) {
        let mut zout = Vec::new();
        match &mut self.phase {
            Phase::Leading { core: Some(l), .. } => {
                if let Err(e) = l.persisted(upto, &mut zout) {
                    return self.look(format!("leader persisted: {e}"), out);
                }
                zab(out, zout);
                self.sync_rolled_epoch();
            }
            Phase::Learning { core: Some(f), .. } => {
                if let Err(e) = f.persisted(upto, &mut zout) {
                    return self.look(format!("follower persisted: {e}"), out);
                }
                zab(out, zout);
            }
            _ => {}
        }
    }

    /// One `tickTime` passed.
    pub fn tick(&mut self, out: &mut Vec<NodeAction>) {
        self.ticks += 1;
        let now = self.ticks;
        let (init, sync) = (self.cfg.init_ticks, self.cfg.sync_ticks);
        let voters: Vec<ServerId> = self
            .cfg
            .members
            .iter()
            .filter(|m| m.role == Role::Participant)
            .map(|m| m.id)
            .collect();
        let me = self.cfg.id;
        match &mut self.phase {
            Phase::Looking => {}
            Phase::Leading {
                core,
                since,
                quorum_seen,
                heard,
                ..
            } => {
                let Some(l) = core else {
                    if now - *since > init {
                        return self.look("no quorum established the new epoch".into(), out);
                    }
                    return;
                };
                // As ZooKeeper's LearnerHandler: a learner still synchronising (a SNAP
                // being received, written and loaded takes a while for a big tree) may
                // be silent for initLimit, a synchronised one for syncLimit.
                let silent: Vec<(ServerId, u64)> = heard
                    .iter()
                    .map(|(id, t)| (*id, if l.sync_done(*id) { sync } else { init }, *t))
                    .filter(|(_, limit, t)| now - *t > *limit)
                    .map(|(id, limit, _)| (id, limit))
                    .collect();
                for (peer, limit) in silent {
                    heard.remove(&peer);
                    out.push(NodeAction::Close {
                        peer,
                        reason: format!("silent for {limit} ticks"),
                    });
                }
                let synced = voters
                    .iter()
                    .filter(|&&v| v == me || (l.is_synced(v) && heard.contains_key(&v)))
                    .count();
                if synced >= majority(voters.len()) {
                    *quorum_seen = now;
                } else if now - *quorum_seen > sync.max(init) {
                    self.look("lost the quorum of synchronised followers".into(), out);
                }
            }
            Phase::Learning {
                core,
                heard,
                serving,
                ..
            } => {
                let limit = if *serving { sync } else { init };
                if now - *heard > limit {
                    let why = match (*serving, core.is_some()) {
                        (true, _) => "the leader is silent",
                        (false, true) => "could not synchronise: the leader silent for initLimit",
                        (false, false) => "could not connect: the leader silent for initLimit",
                    };
                    self.look(why.into(), out);
                }
            }
        }
    }

    /// Back to election.
    pub fn look(&mut self, reason: String, out: &mut Vec<NodeAction>) {
        if matches!(self.phase, Phase::Looking) {
            return;
        }
        tracing::warn!(id = self.cfg.id, %reason, "back to election");
        self.phase = Phase::Looking;
        out.push(NodeAction::Policy(Policy::ToLeader(None)));
        out.push(NodeAction::Look { reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::Vote;

    const INIT: u64 = 10;

    fn learner() -> Node {
        let members = [1, 2, 3]
            .map(|id| Member {
                id,
                role: Role::Participant,
            })
            .to_vec();
        let mut n = Node::new(NodeConfig {
            id: 1,
            role: Role::Participant,
            members,
            limits: Limits::default(),
            init_ticks: INIT,
            sync_ticks: 2,
        });
        let d = Decision {
            state: PeerState::Following,
            vote: Vote {
                leader: 2,
                zxid: 0,
                epoch: 0,
            },
            round: 1,
            quorum: vec![2, 3],
        };
        let own = History {
            accepted_epoch: 0,
            current_epoch: 0,
            last_zxid: 0,
        };
        n.decided(&d, own, &mut Vec::new());
        n
    }

    fn looked(out: &[NodeAction]) -> Option<&str> {
        out.iter().find_map(|a| match a {
            NodeAction::Look { reason } => Some(reason.as_str()),
            _ => None,
        })
    }

    #[test]
    fn a_synchronising_learner_gives_up_on_silence_not_on_a_slow_sync() {
        // Hearing its leader every few ticks (a big SNAP being prepared, sent and
        // loaded), it keeps going for many initLimits ...
        let mut n = learner();
        let mut out = Vec::new();
        for t in 1..INIT * 20 {
            if t % (INIT / 2) == 0 {
                n.heard(2);
            }
            n.tick(&mut out);
            assert_eq!(looked(&out), None, "tick {t}");
        }
        // Silent for initLimit: it looks then.
        let mut n = learner();
        let mut out = Vec::new();
        for _ in 0..INIT {
            n.tick(&mut out);
        }
        assert_eq!(looked(&out), None);
        n.tick(&mut out);
        let why = looked(&out).expect("silent for initLimit");
        assert!(why.contains("silent for initLimit"), "{why}");
    }
}
