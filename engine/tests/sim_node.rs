//! Seeded simulation of the runtime's replication glue: every server is a real
//! `peer::node::Node` (the state machine `runtime::driver_repl` drives) fed by a real
//! `Election`, and this simulator carries out the node's actions exactly as the
//! driver does (persist, send, commit, snapshot, truncate, epochs, quorum-link
//! policies, look), over faulty links, with crashes.
//!
//! The world: 3 or 5 voters and 0 or 1 observer; election links (every pair) and
//! quorum links (learner to leader, up only while the learner's policy names a
//! leader whose policy says it leads, as `LinkBook` does; a dial to a server that
//! does not lead yet is seen up by the dialler, then closed, and retried); per-link FIFO with random delays;
//! links cut and healed; crashes that lose what was not durable; WAL appends made
//! durable in random prefixes; a serving leader proposes random txns. Node ticks
//! (`tickTime`) come every step, with small initLimit/syncLimit so timers fire.
//!
//! Checked after every action: every server applies one and the same sequence of
//! txns; a txn first applied anywhere is durable on a majority of voters; truncation
//! never cuts an applied txn; a learner takes its leader's epoch as current only
//! holding that leader's log durably. At the end the faults stop and within a bound
//! every server must serve one leader, which then commits a txn every server applies
//! (the liveness a stuck learner, like the initLimit deadlock found by
//! `ckbench failover`, would break).
//!
//! Replay one seed: `NODE_SIM_SEED=S cargo test -p engine --test sim_node`; more seeds:
//! `NODE_SIM_SEEDS=N` (default 300).

mod sim_common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use engine::peer::links::Policy;
use engine::peer::node::{Mode, Node, NodeAction, NodeConfig};
use engine::zab::election::Decision;
use engine::zab::quorum::majority;
use engine::zab::{
    Action, Body, Election, ElectionAction, ElectionConfig, Epoch, History, Limits, Member, Msg,
    Notification, Role, ServerId, TxnBytes, Zxid, counter_of, epoch_of,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sim_common::{apply_chosen, env_u64, for_each_seed};

const SEEDS_DEFAULT: u64 = 300;
const TICKS: u64 = 1_500;
const SETTLE_TICKS_MAX: u64 = 3_000;
const DELAY_TICKS_MAX: u64 = 3;
const INIT_TICKS: u64 = 40;
const SYNC_TICKS: u64 = 10;

enum Wire {
    Vote(Notification),
    Zab(Msg),
    Snap(Msg, Vec<(Zxid, TxnBytes)>),
    UpToDate,
}

struct Server {
    id: ServerId,
    role: Role,
    up: bool,
    election: Election,
    node: Node,
    policy: Policy,
    log: Vec<(Zxid, TxnBytes)>,
    durable: usize,
    applied: usize,
    accepted: Epoch,
    current: Epoch,
    /// The leader whose epoch it took last (for the history check).
    snap_in: Option<Vec<(Zxid, TxnBytes)>>,
}

impl Server {
    fn last_durable(&self) -> Zxid {
        self.durable.checked_sub(1).map_or(0, |i| self.log[i].0)
    }
    fn applied_zxid(&self) -> Zxid {
        self.applied.checked_sub(1).map_or(0, |i| self.log[i].0)
    }
    fn last_logged(&self) -> Zxid {
        self.log.last().map_or(0, |e| e.0)
    }
    fn history(&self) -> History {
        History {
            accepted_epoch: self.accepted,
            current_epoch: self.current,
            last_zxid: self.last_durable(),
        }
    }
}

struct Sim {
    rng: SmallRng,
    members: Vec<Member>,
    limits: Limits,
    now: u64,
    voters: Vec<ServerId>,
    servers: BTreeMap<ServerId, Server>,
    /// Election links: every ordered pair.
    elinks: BTreeMap<(ServerId, ServerId), VecDeque<(u64, Wire)>>,
    /// Quorum links that are up (unordered: learner, leader) and their queues.
    qlinks: BTreeSet<(ServerId, ServerId)>,
    qqueues: BTreeMap<(ServerId, ServerId), VecDeque<(u64, Wire)>>,
    cut: BTreeSet<(ServerId, ServerId)>,
    chosen: Vec<(Zxid, TxnBytes)>,
    faults: bool,
    violation: Option<String>,
    txn_no: u64,
    proposals: u64,
}

fn pair(a: ServerId, b: ServerId) -> (ServerId, ServerId) {
    (a.min(b), a.max(b))
}

impl Sim {
    fn new(seed: u64) -> Sim {
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
        if rng.random_bool(0.5) {
            members.push(Member {
                id: 9,
                role: Role::Observer,
            });
        }
        let inflight = rng.random_range(1..=8usize);
        let committed = rng.random_range(0..=24usize);
        let limits = Limits {
            proposals_inflight_max: inflight,
            committed_log_max: committed,
            follower_lag_proposals_max: rng.random_range(inflight..=committed + inflight),
            // Half the seeds roll the zxid counter over every few txns.
            zxid_counter_max: if rng.random_bool(0.5) {
                rng.random_range(2..=12)
            } else {
                u32::MAX
            },
        };
        let servers = members
            .iter()
            .map(|m| {
                let ecfg = ElectionConfig {
                    id: m.id,
                    role: m.role,
                    voters: voters.clone(),
                    finalize_ticks: 2,
                    resend_ticks_min: 5,
                    resend_ticks_max: 40,
                };
                let node = Node::new(NodeConfig {
                    id: m.id,
                    role: m.role,
                    members: members.clone(),
                    limits,
                    init_ticks: INIT_TICKS,
                    sync_ticks: SYNC_TICKS,
                });
                let s = Server {
                    id: m.id,
                    role: m.role,
                    up: true,
                    election: Election::new(ecfg).unwrap(),
                    node,
                    policy: Policy::ToLeader(None),
                    log: Vec::new(),
                    durable: 0,
                    applied: 0,
                    accepted: 0,
                    current: 0,
                    snap_in: None,
                };
                (m.id, s)
            })
            .collect();
        let mut sim = Sim {
            rng,
            members,
            limits,
            now: 0,
            voters,
            servers,
            elinks: BTreeMap::new(),
            qlinks: BTreeSet::new(),
            qqueues: BTreeMap::new(),
            cut: BTreeSet::new(),
            chosen: Vec::new(),
            faults: true,
            violation: None,
            txn_no: 0,
            proposals: 0,
        };
        let ids: Vec<ServerId> = sim.servers.keys().copied().collect();
        for id in ids {
            sim.start_election(id);
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
        self.servers[&a].up && self.servers[&b].up && !self.cut.contains(&pair(a, b))
    }

    fn delay(&mut self) -> u64 {
        self.rng.random_range(0..=DELAY_TICKS_MAX)
    }

    fn send_vote(&mut self, from: ServerId, to: ServerId, n: Notification) {
        if !self.connected(from, to) {
            return;
        }
        let d = self.delay();
        let now = self.now;
        let q = self.elinks.entry((from, to)).or_default();
        let at = q.back().map_or(now, |m| m.0).max(now + d);
        q.push_back((at, Wire::Vote(n)));
    }

    fn send_q(&mut self, from: ServerId, to: ServerId, w: Wire) {
        if !self.qlinks.contains(&pair(from, to)) {
            return; // no link: lost, as PeerNet drops sends without a link
        }
        let d = self.delay();
        let now = self.now;
        let q = self.qqueues.entry((from, to)).or_default();
        let at = q.back().map_or(now, |m| m.0).max(now + d);
        q.push_back((at, w));
    }

    // ---- election ----

    fn start_election(&mut self, id: ServerId) {
        let s = self.srv(id);
        let h = s.history();
        let mut out = Vec::new();
        s.election.look(h.last_zxid, h.current_epoch, &mut out);
        self.election_actions(id, out);
    }

    fn election_actions(&mut self, id: ServerId, out: Vec<ElectionAction>) {
        for a in out {
            match a {
                ElectionAction::Send { to, n } | ElectionAction::SendConfig { to, n } => {
                    self.send_vote(id, to, n)
                }
                ElectionAction::Decided(d) => self.decided(id, d),
            }
        }
    }

    fn decided(&mut self, id: ServerId, d: Decision) {
        let s = self.srv(id);
        let own = s.history();
        let mut acts = Vec::new();
        s.node.decided(&d, own, &mut acts);
        self.node_actions(id, acts);
    }

    // ---- the driver's side ----

    fn node_actions(&mut self, id: ServerId, acts: Vec<NodeAction>) {
        let mut work: VecDeque<NodeAction> = acts.into();
        while let Some(a) = work.pop_front() {
            if self.violation.is_some() || !self.servers[&id].up {
                return;
            }
            let mut more = Vec::new();
            match a {
                NodeAction::Zab(z) => self.zab_action(id, z, &mut more),
                NodeAction::PersistAccepted(e) => {
                    let s = self.srv(id);
                    if e <= s.accepted {
                        let why = format!("{id}: accepted epoch {e} after {}", s.accepted);
                        self.fail(why);
                    }
                    self.srv(id).accepted = e;
                }
                NodeAction::Policy(p) => self.set_policy(id, p),
                NodeAction::Establish { epoch } => {
                    let s = self.srv(id);
                    s.durable = s.log.len(); // a leader starts from a durable log
                    let base = s.applied_zxid();
                    let history = s.log[s.applied..].to_vec();
                    s.node.start_leader(epoch, base, base, history, &mut more);
                }
                NodeAction::Accepted { epoch } => {
                    let s = self.srv(id);
                    let (last, committed) = (s.last_logged(), s.applied_zxid());
                    s.node.start_follower(epoch, last, committed, &mut more);
                }
                NodeAction::UpToDate { to } => self.send_q(id, to, Wire::UpToDate),
                NodeAction::Serve { .. } => {}
                NodeAction::Close { peer, .. } => self.break_q(id, peer),
                NodeAction::Look { .. } => {
                    let s = self.srv(id);
                    s.durable = s.log.len(); // the driver flushes before it looks
                    s.snap_in = None;
                    self.start_election(id);
                }
            }
            work.extend(more);
            if work.is_empty() {
                // The driver's `maybe_serve` after each pass: a leader whose history
                // is applied starts serving.
                let s = self.srv(id);
                let applied_all = s.applied == s.log.len();
                let mut serve = Vec::new();
                s.node.maybe_serve(applied_all, &mut serve);
                work.extend(serve);
            }
        }
    }

    fn zab_action(&mut self, id: ServerId, z: Action, more: &mut Vec<NodeAction>) {
        match z {
            Action::Persist { zxid, txn } => {
                let s = self.srv(id);
                if s.log.last().is_some_and(|e| e.0 >= zxid) {
                    let why = format!("{id}: persisted {zxid:#x} out of order");
                    return self.fail(why);
                }
                s.log.push((zxid, txn));
            }
            Action::Send { to, msg } => {
                if let Body::Ack { zxid } | Body::AckNewLeader { zxid } = msg.body {
                    let s = &self.servers[&id];
                    if zxid != 0 && !s.log[..s.durable].iter().any(|e| e.0 == zxid) {
                        return self.fail(format!("{id} acked {zxid:#x}, not durable"));
                    }
                }
                self.send_q(id, to, Wire::Zab(msg));
            }
            Action::Commit { upto_zxid } => self.apply(id, upto_zxid),
            Action::SendSnapshot { to, zxid } => {
                let s = &self.servers[&id];
                if s.applied_zxid() != zxid {
                    let why = format!(
                        "{id}: snapshot at {zxid:#x}, applied {:#x}",
                        s.applied_zxid()
                    );
                    return self.fail(why);
                }
                let image = s.log[..s.applied].to_vec();
                let epoch = s.node.leader_core().map_or(0, |l| l.epoch());
                self.send_q(
                    id,
                    to,
                    Wire::Snap(Msg::new(epoch, Body::Snap { zxid }), image),
                );
            }
            Action::Disconnect { to } => self.break_q(id, to),
            Action::Truncate { after_zxid } => {
                let s = self.srv(id);
                let keep = s.log.partition_point(|e| e.0 <= after_zxid);
                if keep < s.applied {
                    let why = format!("{id}: TRUNC after {after_zxid:#x} cuts applied txns");
                    return self.fail(why);
                }
                s.log.truncate(keep);
                s.durable = s.durable.min(keep);
            }
            Action::InstallSnapshot { zxid } => {
                let Some(img) = self.srv(id).snap_in.take() else {
                    return self.fail(format!("{id}: InstallSnapshot without an image"));
                };
                let agree = img.len() <= self.chosen.len()
                    && img
                        .iter()
                        .zip(&self.chosen)
                        .all(|(a, b)| a.0 == b.0 && a.1[..] == b.1[..]);
                if !agree || img.len() < self.servers[&id].applied {
                    return self.fail(format!("{id}: snapshot disagrees with what was applied"));
                }
                let s = self.srv(id);
                s.applied = img.len();
                s.durable = img.len();
                s.log = img;
                s.node.persisted(zxid, more);
            }
            Action::SetAcceptedEpoch(e) => {
                let s = self.srv(id);
                s.accepted = s.accepted.max(e);
            }
            Action::SetCurrentEpoch(e) => {
                let s = self.srv(id);
                if e < s.current || e > s.accepted {
                    let why = format!(
                        "{id}: current epoch {e}, was {}, accepted {}",
                        s.current, s.accepted
                    );
                    return self.fail(why);
                }
                s.current = e;
            }
        }
    }

    fn apply(&mut self, id: ServerId, upto: Zxid) {
        let s = &self.servers[&id];
        let end = s.log.partition_point(|e| e.0 <= upto);
        if end == 0 || s.log[end - 1].0 != upto {
            return self.fail(format!("{id} committed {upto:#x}, not in its log"));
        }
        let quorum = majority(self.voters.len());
        let mut chosen = std::mem::take(&mut self.chosen);
        let (from, log) = (s.applied, &s.log);
        let r = apply_chosen(id, log, from, end, &mut chosen, quorum, |e| {
            self.voters
                .iter()
                .filter(|v| {
                    let s = &self.servers[v];
                    s.log[..s.durable]
                        .iter()
                        .any(|x| x.0 == e.0 && x.1[..] == e.1[..])
                })
                .count()
        });
        self.chosen = chosen;
        if let Err(why) = r {
            return self.fail(why);
        }
        let s = self.srv(id);
        s.applied = s.applied.max(end);
    }

    // ---- quorum links, as LinkBook and PeerNet make them ----

    fn set_policy(&mut self, id: ServerId, p: Policy) {
        self.srv(id).policy = p;
        let links: Vec<(ServerId, ServerId)> = self
            .qlinks
            .iter()
            .copied()
            .filter(|l| l.0 == id || l.1 == id)
            .collect();
        for (a, b) in links {
            let other = if a == id { b } else { a };
            if !self.fits(id, other) {
                self.break_q(a, b);
            }
        }
    }

    /// Whether a quorum link between `a` and `b` fits both policies: one leads
    /// (`ToLeader(Some(itself))`) and the other names it.
    fn fits(&self, a: ServerId, b: ServerId) -> bool {
        let (pa, pb) = (self.servers[&a].policy, self.servers[&b].policy);
        (pa == Policy::ToLeader(Some(a)) && pb == Policy::ToLeader(Some(a)))
            || (pb == Policy::ToLeader(Some(b)) && pa == Policy::ToLeader(Some(b)))
    }

    fn break_q(&mut self, a: ServerId, b: ServerId) {
        if !self.qlinks.remove(&pair(a, b)) {
            return;
        }
        self.qqueues.remove(&(a, b));
        self.qqueues.remove(&(b, a));
        for (x, y) in [(a, b), (b, a)] {
            if self.servers[&x].up {
                let s = self.srv(x);
                s.snap_in = None;
                let mut acts = Vec::new();
                s.node.link_down(y, &mut acts);
                self.node_actions(x, acts);
            }
        }
    }

    /// Learners whose policy names a leading, reachable server get their link.
    fn dial(&mut self) {
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        for id in ids {
            let Policy::ToLeader(Some(l)) = self.servers[&id].policy else {
                continue;
            };
            if l == id || self.qlinks.contains(&pair(id, l)) || !self.connected(id, l) {
                continue;
            }
            if !self.fits(id, l) {
                if self.rng.random_bool(0.5) {
                    // Refused: the dialler saw its link up (its hello was written),
                    // then closed by a server that does not lead (yet).
                    let s = self.srv(id);
                    let own = s.history();
                    let mut acts = Vec::new();
                    s.node.link_up(l, own, &mut acts);
                    s.node.link_down(l, &mut acts);
                    self.node_actions(id, acts);
                }
                continue;
            }
            if !self.rng.random_bool(0.5) {
                continue; // still dialling
            }
            self.qlinks.insert(pair(id, l));
            for (x, y) in [(id, l), (l, id)] {
                let s = self.srv(x);
                let own = s.history();
                let mut acts = Vec::new();
                s.node.link_up(y, own, &mut acts);
                self.node_actions(x, acts);
            }
        }
    }

    // ---- time ----

    fn step(&mut self) -> Result<(), String> {
        self.now += 1;
        if self.faults {
            self.inject_faults();
        }
        self.dial();
        self.deliver();
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        for &id in &ids {
            if !self.servers[&id].up {
                continue;
            }
            let mut out = Vec::new();
            self.srv(id).election.tick(&mut out);
            self.election_actions(id, out);
            let mut acts = Vec::new();
            self.srv(id).node.tick(&mut acts);
            self.node_actions(id, acts);
            self.persist_some(id);
            if self.rng.random_bool(0.4) {
                self.propose(id);
            }
        }
        self.violation.take().map_or(Ok(()), Err)
    }

    fn deliver(&mut self) {
        let keys: Vec<(ServerId, ServerId)> = self.elinks.keys().copied().collect();
        for (from, to) in keys {
            while let Some(q) = self.elinks.get_mut(&(from, to)) {
                if q.front().is_none_or(|m| m.0 > self.now) {
                    break;
                }
                let Some((_, Wire::Vote(n))) = q.pop_front() else {
                    break;
                };
                let mut out = Vec::new();
                self.srv(to).election.step(from, n, &mut out);
                self.election_actions(to, out);
            }
        }
        let keys: Vec<(ServerId, ServerId)> = self.qqueues.keys().copied().collect();
        for (from, to) in keys {
            while let Some(q) = self.qqueues.get_mut(&(from, to)) {
                if q.front().is_none_or(|m| m.0 > self.now) {
                    break;
                }
                let Some((_, w)) = q.pop_front() else { break };
                let mut acts = Vec::new();
                let s = self.srv(to);
                match w {
                    Wire::Zab(msg) => s.node.step(from, msg, &mut acts),
                    Wire::Snap(msg, image) => {
                        s.snap_in = Some(image);
                        s.node.step(from, msg, &mut acts);
                    }
                    Wire::UpToDate => s.node.up_to_date(from, &mut acts),
                    Wire::Vote(_) => {}
                }
                self.node_actions(to, acts);
            }
        }
    }

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
        let mut acts = Vec::new();
        s.node.persisted(upto, &mut acts);
        self.node_actions(id, acts);
    }

    fn propose(&mut self, id: ServerId) {
        let s = &self.servers[&id];
        if !matches!(s.node.mode(), Mode::Leading { serving: true }) {
            return;
        }
        let Ok(zxid) = s.node.next_zxid() else { return };
        self.txn_no += 1;
        let mut bytes = self.txn_no.to_le_bytes().to_vec();
        bytes.push((self.txn_no % 251) as u8);
        let mut acts = Vec::new();
        match self.srv(id).node.propose(zxid, Arc::from(bytes), &mut acts) {
            Ok(()) => self.proposals += 1,
            Err(e) => return self.fail(format!("{id}: propose at next_zxid failed: {e}")),
        }
        self.node_actions(id, acts);
    }

    fn crash(&mut self, id: ServerId) {
        let s = self.srv(id);
        s.up = false;
        s.log.truncate(s.durable);
        // Recovery restarts from a snapshot of the applied state (at most what is
        // durable) and holds the rest of the log back until a leader commits it.
        s.applied = s.applied.min(s.durable);
        s.snap_in = None;
        let others: Vec<ServerId> = self.servers.keys().copied().filter(|&o| o != id).collect();
        for o in others {
            self.break_q(id, o);
        }
        self.elinks.retain(|k, _| k.0 != id && k.1 != id);
    }

    fn restart(&mut self, id: ServerId) {
        let cfg = NodeConfig {
            id,
            role: self.servers[&id].role,
            members: self.members.clone(),
            limits: self.limits,
            init_ticks: INIT_TICKS,
            sync_ticks: SYNC_TICKS,
        };
        let s = self.srv(id);
        s.up = true;
        s.node = Node::new(cfg);
        s.policy = Policy::ToLeader(None);
        self.start_election(id);
    }

    fn inject_faults(&mut self) {
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        let pick = |rng: &mut SmallRng| ids[rng.random_range(0..ids.len())];
        let r = self.rng.random_range(0..1000);
        if r < 3 {
            let id = pick(&mut self.rng);
            let down = self.servers.values().filter(|s| !s.up).count();
            if self.servers[&id].up && down < majority(self.voters.len()) - 1 {
                self.crash(id);
            }
        } else if r < 10 {
            if let Some(id) = self.servers.values().find(|s| !s.up).map(|s| s.id) {
                self.restart(id);
            }
        } else if r < 15 {
            let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
            if a != b {
                self.cut.insert(pair(a, b));
                self.break_q(a, b);
                self.elinks.remove(&(a, b));
                self.elinks.remove(&(b, a));
            }
        } else if r < 40 && !self.cut.is_empty() {
            let i = self.rng.random_range(0..self.cut.len());
            let link = *self.cut.iter().nth(i).unwrap();
            self.cut.remove(&link);
        }
        // A quorum link over a cut pair breaks.
        let cut: Vec<(ServerId, ServerId)> = self
            .qlinks
            .iter()
            .copied()
            .filter(|l| self.cut.contains(l))
            .collect();
        for (a, b) in cut {
            self.break_q(a, b);
        }
    }

    fn heal(&mut self) {
        self.faults = false;
        self.cut.clear();
        let down: Vec<ServerId> = self
            .servers
            .values()
            .filter(|s| !s.up)
            .map(|s| s.id)
            .collect();
        for id in down {
            self.restart(id);
        }
    }

    fn settled(&self) -> Option<ServerId> {
        let leaders: Vec<ServerId> = self
            .servers
            .values()
            .filter(|s| matches!(s.node.mode(), Mode::Leading { serving: true }))
            .map(|s| s.id)
            .collect();
        let [l] = leaders[..] else { return None };
        let all = self
            .servers
            .values()
            .all(|s| s.node.serving() && s.node.leader() == Some(l));
        all.then_some(l)
    }

    fn describe(&self) -> String {
        let v: Vec<String> = self
            .servers
            .values()
            .map(|s| {
                format!(
                    "{}: up={} {:?} policy={:?} history={:?} applied={:#x}",
                    s.id,
                    s.up,
                    s.node.mode(),
                    s.policy,
                    s.history(),
                    s.applied_zxid()
                )
            })
            .collect();
        v.join("; ")
    }
}

fn run_seed(seed: u64) -> Result<(u64, usize, usize), String> {
    let mut sim = Sim::new(seed);
    for _ in 0..TICKS {
        sim.step()?;
    }
    sim.heal();
    let start = sim.now;
    while sim.settled().is_none() {
        if sim.now - start > SETTLE_TICKS_MAX {
            return Err(format!("did not settle: {}", sim.describe()));
        }
        sim.step()?;
    }
    let target = sim.chosen.len() + 1;
    while sim.servers.values().any(|s| s.applied < target) {
        if sim.now - start > SETTLE_TICKS_MAX {
            return Err(format!(
                "the next txn was not applied everywhere: {}",
                sim.describe()
            ));
        }
        sim.step()?;
    }
    // Counter rollovers among the chosen txns: an epoch's last, then the next's first.
    let max = sim.limits.zxid_counter_max;
    let rollovers = sim
        .chosen
        .windows(2)
        .filter(|w| counter_of(w[0].0) == max && epoch_of(w[1].0) == epoch_of(w[0].0) + 1)
        .count();
    Ok((sim.proposals, sim.chosen.len(), rollovers))
}

#[test]
fn the_runtime_glue_agrees_keeps_commits_and_settles() {
    let seeds = env_u64("NODE_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    let results = for_each_seed("NODE_SIM", "sim_node", seeds, run_seed);
    let chosen: usize = results.iter().map(|r| r.1).sum();
    let rollovers: usize = results.iter().map(|r| r.2).sum();
    eprintln!(
        "sim_node: {} seeds, {chosen} txns chosen, {rollovers} counter rollovers",
        results.len()
    );
    assert!(chosen > 0, "no progress at all");
    assert!(rollovers > 0, "no counter rollover exercised");
}
