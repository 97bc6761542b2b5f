//! Seeded simulation of Zab's broadcast phase driving the real cores (`engine::zab`):
//! one leader, 2 or 4 voting followers and one observer.
//!
//! The world: per-link FIFO delivery with random delays (each step delivers the head
//! of a random non-empty link, so messages reorder only across links, as over TCP);
//! link breaks that drop everything in flight on the link and force a reconnect and
//! a synchronisation; follower crash-restarts that lose every txn not yet durable;
//! WAL persistence that completes a random prefix of the pending appends at random
//! times; random client proposals (throttled at the leader's in-flight limit); small
//! random limits per seed so throttling, lag drops and SNAP all happen.
//!
//! Checked after every step (and at every apply):
//! - agreement: each replica applies exactly the leader's committed txns, in order,
//!   byte for byte, and its running hash equals the leader's at the same zxid
//!   (snapshots included);
//! - durability: everything the leader committed is on a majority of voters' durable
//!   logs (the storage's own view, not the core's), so the commit point never passes
//!   what a majority made durable; acks never claim more than the storage has durable;
//! - the commit point only grows; cores and storage agree on commit points; logged
//!   txns are contiguous and equal to what the leader proposed.
//!
//! At the end all faults stop, every follower reconnects, and the run settles: every
//! proposal is committed and every live follower and the observer reach the leader's
//! commit point and state; then every follower restarts (from an older commit point)
//! and the run settles and converges again. A planted bug (a leader committing on one voter) must be
//! caught (`checker_catches_a_minority_commit`).
//!
//! Replay one seed: `ZAB_SIM_SEED=S cargo test -p engine --test sim_zab`.
//! More seeds: `ZAB_SIM_SEEDS=N` (default 200); steps per seed: `ZAB_SIM_STEPS`
//! (default 20000).

mod sim_common;

use std::collections::VecDeque;
use std::sync::Arc;

use engine::zab::quorum::majority;
use engine::zab::{
    Action, Body, EPOCH_MAX, Epoch, Follower, FollowerConfig, Leader, LeaderConfig, Limits, Member,
    Msg, ProposeError, Role, ServerId, TxnBytes, Zxid, counter_of, make_zxid,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sim_common::{env_u64, for_each_seed};

const LEADER: ServerId = 0;
const EPOCH: Epoch = 1;
const SEEDS_DEFAULT: u64 = 200;
const STEPS_DEFAULT: usize = 20_000;
/// Events allowed for the final settling (far more than a run can need).
const SETTLE_EVENTS_MAX: usize = 1_000_000;
const _: () = assert!(EPOCH <= EPOCH_MAX);

type Check = Result<(), String>;

/// What a replica's WAL and state machine hold.
#[derive(Default)]
struct Store {
    /// Every txn logged, in order; the first `durable` are durable.
    log: Vec<(Zxid, TxnBytes)>,
    durable: usize,
    /// The first `applied` txns of `log` are applied; `hash` is the state after them.
    applied: usize,
    hash: u64,
}

impl Store {
    fn last_durable(&self) -> Zxid {
        self.durable.checked_sub(1).map_or(0, |i| self.log[i].0)
    }

    fn applied_zxid(&self) -> Zxid {
        self.applied.checked_sub(1).map_or(0, |i| self.log[i].0)
    }

    /// Append a txn; it must continue the log contiguously.
    fn append(&mut self, zxid: Zxid, txn: TxnBytes) -> Check {
        let last = self.log.last().map_or(0, |e| e.0);
        let next = if last == 0 {
            make_zxid(EPOCH, 1)
        } else {
            last + 1
        };
        if zxid != next {
            return Err(format!("logged {zxid:#x} after {last:#x}: not contiguous"));
        }
        self.log.push((zxid, txn));
        Ok(())
    }
}

/// The state machine: a running hash over (zxid, txn bytes).
fn hash_step(h: u64, zxid: Zxid, txn: &[u8]) -> u64 {
    let mut h = (h ^ zxid as u64).wrapping_mul(0x100_0000_01b3);
    for &b in txn {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// What travels on a leader → follower link.
enum Wire {
    Msg(Msg),
    /// A `Snap` message with the image of the leader's applied state.
    Snap {
        msg: Msg,
        image: Vec<(Zxid, TxnBytes)>,
    },
}

struct Fol {
    id: ServerId,
    role: Role,
    core: Follower,
    store: Store,
    up: bool,
    to_fol: VecDeque<Wire>,
    to_leader: VecDeque<Msg>,
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    proposals: u64,
    throttled: u64,
    breaks: u64,
    crashes: u64,
    lag_drops: u64,
    diffs: u64,
    truncs: u64,
    snaps: u64,
    follower_errors: u64,
    commits: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.proposals += o.proposals;
        self.throttled += o.throttled;
        self.breaks += o.breaks;
        self.crashes += o.crashes;
        self.lag_drops += o.lag_drops;
        self.diffs += o.diffs;
        self.truncs += o.truncs;
        self.snaps += o.snaps;
        self.follower_errors += o.follower_errors;
        self.commits += o.commits;
    }
}

/// Deliberate bugs, to prove the checker can fail.
#[derive(Clone, Copy, Default)]
struct Faults {
    commit_quorum: Option<usize>,
}

struct Sim {
    rng: SmallRng,
    leader: Leader,
    lstore: Store,
    /// The leader's hash after each of its applied txns: the reference state.
    ref_hashes: Vec<u64>,
    fols: Vec<Fol>,
    voters: usize,
    last_commit: Zxid,
    counts: Counts,
    txn_no: u64,
}

fn cfg_of(id: ServerId, role: Role) -> FollowerConfig {
    FollowerConfig {
        id,
        leader: LEADER,
        epoch: EPOCH,
        role,
        zxid_counter_max: u32::MAX,
    }
}

impl Sim {
    fn new(seed: u64, faults: Faults) -> Sim {
        let mut rng = SmallRng::seed_from_u64(seed);
        let voting_followers = if rng.random_bool(0.5) { 2 } else { 4 };
        let mut members = vec![Member {
            id: LEADER,
            role: Role::Participant,
        }];
        let mut fols = Vec::new();
        for i in 1..=voting_followers + 1 {
            let role = if i <= voting_followers {
                Role::Participant
            } else {
                Role::Observer
            };
            members.push(Member { id: i, role });
            fols.push(Fol {
                id: i,
                role,
                core: Follower::new(cfg_of(i, role), 0, 0).expect("fresh follower"),
                store: Store::default(),
                up: false,
                to_fol: VecDeque::new(),
                to_leader: VecDeque::new(),
            });
        }
        let inflight = rng.random_range(1..=16usize);
        let committed_log = rng.random_range(0..=48usize);
        let lag = rng.random_range(inflight..=committed_log + inflight);
        let mut config = LeaderConfig::new(LEADER, EPOCH, members);
        config.limits = Limits {
            proposals_inflight_max: inflight,
            committed_log_max: committed_log,
            follower_lag_proposals_max: lag,
            zxid_counter_max: u32::MAX,
        };
        config.fault_commit_quorum = faults.commit_quorum;
        let leader = Leader::new(config, 0, 0, Vec::new()).expect("valid leader config");
        Sim {
            rng,
            leader,
            lstore: Store::default(),
            ref_hashes: Vec::new(),
            fols,
            voters: 1 + voting_followers as usize,
            last_commit: 0,
            counts: Counts::default(),
            txn_no: 0,
        }
    }

    fn fol(&self, id: ServerId) -> usize {
        (id - 1) as usize
    }

    // ---- the leader's side ----

    fn leader_actions(&mut self, out: Vec<Action>) -> Check {
        for a in out {
            match a {
                Action::Persist { zxid, txn } => self.lstore.append(zxid, txn)?,
                Action::Send { to, msg } => {
                    let f = self.fol(to);
                    if self.fols[f].up {
                        self.fols[f].to_fol.push_back(Wire::Msg(msg));
                    }
                }
                Action::Commit { upto_zxid } => self.leader_apply(upto_zxid)?,
                Action::SendSnapshot { to, zxid } => self.send_snapshot(to, zxid)?,
                Action::Disconnect { to } => {
                    self.counts.lag_drops += 1;
                    self.break_link(self.fol(to));
                }
                // The leader's current epoch lives outside this simulation.
                Action::SetCurrentEpoch(e) if e == EPOCH => {}
                other => return Err(format!("leader pushed a follower action {other:?}")),
            }
        }
        Ok(())
    }

    fn leader_apply(&mut self, upto: Zxid) -> Check {
        let s = &mut self.lstore;
        while s.applied < s.log.len() && s.log[s.applied].0 <= upto {
            let (zxid, txn) = &s.log[s.applied];
            s.hash = hash_step(s.hash, *zxid, txn);
            self.ref_hashes.push(s.hash);
            s.applied += 1;
        }
        if s.applied_zxid() != upto {
            return Err(format!("leader committed {upto:#x} beyond its log"));
        }
        self.counts.commits += 1;
        Ok(())
    }

    fn send_snapshot(&mut self, to: ServerId, zxid: Zxid) -> Check {
        if self.lstore.applied_zxid() != zxid {
            return Err(format!(
                "snapshot asked at {zxid:#x} but the leader's state is at {:#x}",
                self.lstore.applied_zxid()
            ));
        }
        let image = self.lstore.log[..self.lstore.applied].to_vec();
        let f = self.fol(to);
        if self.fols[f].up {
            let msg = Msg::new(EPOCH, Body::Snap { zxid });
            self.fols[f].to_fol.push_back(Wire::Snap { msg, image });
        }
        Ok(())
    }

    // ---- a follower's side ----

    fn follower_actions(
        &mut self,
        f: usize,
        out: Vec<Action>,
        mut image: Option<Vec<(Zxid, TxnBytes)>>,
    ) -> Check {
        let mut work: VecDeque<Action> = out.into();
        while let Some(a) = work.pop_front() {
            match a {
                Action::Persist { zxid, txn } => self.follower_log(f, zxid, txn)?,
                Action::Send { to, msg } => {
                    if to != LEADER {
                        return Err(format!("follower sent to {to}"));
                    }
                    if self.fols[f].up {
                        self.fols[f].to_leader.push_back(msg);
                    }
                }
                Action::Commit { upto_zxid } => self.follower_apply(f, upto_zxid)?,
                Action::Truncate { after_zxid } => self.follower_truncate(f, after_zxid)?,
                Action::InstallSnapshot { zxid } => {
                    let img = image.take().ok_or("InstallSnapshot without an image")?;
                    let more = self.install(f, zxid, img)?;
                    work.extend(more);
                }
                Action::SetCurrentEpoch(e) if e == EPOCH => {}
                other => return Err(format!("follower pushed a leader action {other:?}")),
            }
        }
        Ok(())
    }

    /// A follower logs a txn: it must be exactly what the leader proposed at that zxid.
    fn follower_log(&mut self, f: usize, zxid: Zxid, txn: TxnBytes) -> Check {
        let i = counter_of(zxid) as usize;
        match self.lstore.log.get(i.wrapping_sub(1)) {
            Some((z, t)) if *z == zxid && t[..] == txn[..] => {}
            _ => {
                return Err(format!(
                    "follower {} logged {zxid:#x}, which the leader never proposed",
                    f + 1
                ));
            }
        }
        self.fols[f].store.append(zxid, txn)
    }

    /// Apply up to `upto`, comparing every txn and state with the leader's.
    fn follower_apply(&mut self, f: usize, upto: Zxid) -> Check {
        let id = self.fols[f].id;
        let s = &mut self.fols[f].store;
        while s.applied < s.log.len() && s.log[s.applied].0 <= upto {
            let i = s.applied;
            let (zxid, txn) = &s.log[i];
            let Some(reference) = self.ref_hashes.get(i) else {
                return Err(format!(
                    "server {id} committed {zxid:#x} beyond the leader's commit point"
                ));
            };
            let (lz, lt) = &self.lstore.log[i];
            if lz != zxid || lt[..] != txn[..] {
                return Err(format!(
                    "server {id} applied {zxid:#x} where the leader applied {lz:#x}"
                ));
            }
            s.hash = hash_step(s.hash, *zxid, txn);
            if s.hash != *reference {
                return Err(format!(
                    "server {id} state differs from the leader's at {zxid:#x}"
                ));
            }
            s.applied += 1;
        }
        if s.applied_zxid() != upto {
            return Err(format!(
                "server {id} was told to commit {upto:#x} beyond its log"
            ));
        }
        Ok(())
    }

    fn follower_truncate(&mut self, f: usize, after: Zxid) -> Check {
        self.counts.truncs += 1;
        let s = &mut self.fols[f].store;
        let keep = s.log.partition_point(|e| e.0 <= after);
        if keep < s.applied {
            return Err(format!("TRUNC to {after:#x} cuts applied txns"));
        }
        s.log.truncate(keep);
        s.durable = s.durable.min(keep);
        Ok(())
    }

    /// Replace the follower's state and log with the image, durably, then report it.
    fn install(
        &mut self,
        f: usize,
        zxid: Zxid,
        image: Vec<(Zxid, TxnBytes)>,
    ) -> Result<Vec<Action>, String> {
        self.counts.snaps += 1;
        if image.last().map_or(0, |e| e.0) != zxid {
            return Err(format!("image does not end at {zxid:#x}"));
        }
        let hash = image.iter().fold(0, |h, (z, t)| hash_step(h, *z, t));
        if image.len() > self.ref_hashes.len()
            || (!image.is_empty() && self.ref_hashes[image.len() - 1] != hash)
        {
            return Err(format!(
                "snapshot at {zxid:#x} differs from the leader's state"
            ));
        }
        let n = image.len();
        let fol = &mut self.fols[f];
        fol.store = Store {
            log: image,
            durable: n,
            applied: n,
            hash,
        };
        let mut out = Vec::new();
        fol.core
            .persisted(zxid, &mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    // ---- the world ----

    fn break_link(&mut self, f: usize) {
        let fol = &mut self.fols[f];
        if !fol.up {
            return;
        }
        fol.up = false;
        fol.to_fol.clear();
        fol.to_leader.clear();
        fol.core.disconnected();
        self.leader.follower_disconnected(fol.id).expect("a member");
        self.counts.breaks += 1;
    }

    fn reconnect(&mut self, f: usize) -> Check {
        if self.fols[f].up {
            return Ok(());
        }
        self.fols[f].up = true;
        let mut out = Vec::new();
        self.fols[f].core.connect(&mut out);
        self.follower_actions(f, out, None)
    }

    /// Lose everything not durable, and restart the core from the durable log.
    fn crash(&mut self, f: usize) -> Check {
        self.break_link(f);
        self.counts.crashes += 1;
        let fol = &mut self.fols[f];
        let s = &mut fol.store;
        s.log.truncate(s.durable);
        // The restarted driver may know an older commit point (say, its last
        // snapshot's) than it had applied: the leader's sync must bring it forward.
        s.applied = self.rng.random_range(0..=s.applied.min(s.durable));
        s.hash = s.log[..s.applied]
            .iter()
            .fold(0, |h, (z, t)| hash_step(h, *z, t));
        let config = cfg_of(fol.id, fol.role);
        fol.core =
            Follower::new(config, s.last_durable(), s.applied_zxid()).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn propose(&mut self) -> Check {
        self.txn_no += 1;
        let len = self.rng.random_range(0..=24usize);
        let mut bytes = self.txn_no.to_le_bytes().to_vec();
        bytes.extend((0..len).map(|_| self.rng.random::<u8>()));
        let mut out = Vec::new();
        let leader = &mut self.leader;
        match leader
            .next_zxid()
            .and_then(|z| leader.propose(z, Arc::from(bytes), &mut out).map(|()| z))
        {
            Ok(_) => self.counts.proposals += 1,
            Err(ProposeError::Throttled { .. }) => self.counts.throttled += 1,
            // Until a majority acknowledged NEWLEADER (followers still connecting).
            Err(ProposeError::NotReady) => {}
            Err(e) => return Err(format!("propose failed: {e}")),
        }
        self.leader_actions(out)
    }

    /// Deliver the head of one random non-empty link.
    fn deliver(&mut self) -> Check {
        let mut links = Vec::new();
        for (f, fol) in self.fols.iter().enumerate() {
            if !fol.to_fol.is_empty() {
                links.push((f, true));
            }
            if !fol.to_leader.is_empty() {
                links.push((f, false));
            }
        }
        if links.is_empty() {
            return Ok(());
        }
        let (f, to_fol) = links[self.rng.random_range(0..links.len())];
        if to_fol {
            self.deliver_to_follower(f)
        } else {
            let msg = self.fols[f].to_leader.pop_front().expect("non-empty");
            let mut out = Vec::new();
            self.leader
                .step(self.fols[f].id, msg, &mut out)
                .map_err(|e| format!("leader refused a message: {e}"))?;
            self.leader_actions(out)
        }
    }

    fn deliver_to_follower(&mut self, f: usize) -> Check {
        let (msg, image) = match self.fols[f].to_fol.pop_front().expect("non-empty") {
            Wire::Msg(m) => (m, None),
            Wire::Snap { msg, image } => (msg, Some(image)),
        };
        if let Body::Diff { .. } = msg.body {
            self.counts.diffs += 1;
        }
        let mut out = Vec::new();
        if self.fols[f].core.step(LEADER, msg, &mut out).is_err() {
            // A violation of the stream by the leader: re-synchronise.
            self.counts.follower_errors += 1;
            self.break_link(f);
        }
        self.follower_actions(f, out, image)
    }

    /// Make a random prefix of some replica's pending appends durable.
    fn persist(&mut self) -> Check {
        let mut pending = Vec::new();
        if self.lstore.durable < self.lstore.log.len() {
            pending.push(None);
        }
        for (f, fol) in self.fols.iter().enumerate() {
            if fol.store.durable < fol.store.log.len() {
                pending.push(Some(f));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        match pending[self.rng.random_range(0..pending.len())] {
            None => {
                let s = &mut self.lstore;
                s.durable += self.rng.random_range(1..=s.log.len() - s.durable);
                let upto = s.last_durable();
                self.leader
                    .persisted(upto, &mut out)
                    .map_err(|e| e.to_string())?;
                self.leader_actions(out)
            }
            Some(f) => {
                let s = &mut self.fols[f].store;
                s.durable += self.rng.random_range(1..=s.log.len() - s.durable);
                let upto = s.last_durable();
                self.fols[f]
                    .core
                    .persisted(upto, &mut out)
                    .map_err(|e| e.to_string())?;
                self.follower_actions(f, out, None)
            }
        }
    }

    fn random_fol(&mut self) -> usize {
        self.rng.random_range(0..self.fols.len())
    }

    fn step(&mut self) -> Check {
        // Weights in per mille: mostly work, some link trouble, rare crashes.
        match self.rng.random_range(0..1000u32) {
            0..200 => self.propose(),
            200..650 => self.deliver(),
            650..920 => self.persist(),
            920..935 => {
                let f = self.random_fol();
                self.break_link(f);
                Ok(())
            }
            935..995 => {
                let f = self.random_fol();
                self.reconnect(f)
            }
            _ => {
                let f = self.random_fol();
                self.crash(f)
            }
        }
    }

    // ---- the checker ----

    fn check(&mut self) -> Check {
        let c = self.leader.committed_zxid();
        if c < self.last_commit {
            return Err(format!(
                "commit point went back from {:#x} to {c:#x}",
                self.last_commit
            ));
        }
        self.last_commit = c;
        if self.lstore.applied_zxid() != c {
            return Err(format!(
                "leader core at {c:#x}, its state at {:#x}",
                self.lstore.applied_zxid()
            ));
        }
        if self.leader.durable_zxid() > self.lstore.last_durable() {
            return Err("the leader counts itself beyond its durable log".into());
        }
        // Independent of the cores: what the voters' storage holds durably.
        let mut durable = usize::from(self.lstore.last_durable() >= c);
        for fol in &self.fols {
            let d = fol.store.last_durable();
            if fol.role == Role::Participant {
                durable += usize::from(d >= c);
                let acked = self.leader.acked_zxid(fol.id).unwrap_or(0);
                if acked > d {
                    return Err(format!(
                        "server {} acked {acked:#x} but has only {d:#x} durable",
                        fol.id
                    ));
                }
            }
            if fol.core.committed_zxid() != fol.store.applied_zxid() {
                return Err(format!(
                    "server {} core and state disagree on the commit point",
                    fol.id
                ));
            }
        }
        if c > 0 && durable < majority(self.voters) {
            return Err(format!(
                "leader committed {c:#x} but only {durable} of {} voters have it durable",
                self.voters
            ));
        }
        Ok(())
    }

    /// Stop the faults, reconnect everyone and run until nothing is left to do.
    fn settle(&mut self) -> Check {
        for _ in 0..SETTLE_EVENTS_MAX {
            for f in 0..self.fols.len() {
                self.reconnect(f)?;
            }
            let busy = self.lstore.durable < self.lstore.log.len()
                || self.fols.iter().any(|f| {
                    !f.to_fol.is_empty()
                        || !f.to_leader.is_empty()
                        || f.store.durable < f.store.log.len()
                });
            if !busy {
                return self.check_converged();
            }
            if self.rng.random_bool(0.5) {
                self.deliver()?;
            } else {
                self.persist()?;
            }
            self.check()?;
        }
        Err("did not settle".into())
    }

    fn check_converged(&self) -> Check {
        let c = self.leader.committed_zxid();
        if c != self.leader.last_zxid() {
            return Err(format!(
                "settled with proposals uncommitted: {c:#x} < {:#x}",
                self.leader.last_zxid()
            ));
        }
        for fol in &self.fols {
            let s = &fol.store;
            if s.applied_zxid() != c || s.hash != self.lstore.hash {
                return Err(format!(
                    "server {} settled at {:#x}, the leader at {c:#x}",
                    fol.id,
                    s.applied_zxid()
                ));
            }
        }
        Ok(())
    }
}

/// One seeded run; `Err` names the step and the violated property.
fn run_seed(seed: u64, steps: usize, faults: Faults) -> Result<Counts, String> {
    let mut sim = Sim::new(seed, faults);
    for step in 0..steps {
        sim.step()
            .and_then(|()| sim.check())
            .map_err(|e| format!("step {step}: {e}"))?;
    }
    sim.settle().map_err(|e| format!("settling: {e}"))?;
    // Once more after restarting every follower with nothing in flight.
    for f in 0..sim.fols.len() {
        sim.crash(f)?;
    }
    sim.settle()
        .map_err(|e| format!("settling after restarts: {e}"))?;
    let s = sim.leader.stats();
    sim.counts.diffs = s.syncs_diff;
    sim.counts.truncs = s.syncs_trunc;
    Ok(sim.counts)
}

#[test]
fn broadcast_keeps_agreement_and_durability() {
    let steps = env_u64("ZAB_SIM_STEPS").map_or(STEPS_DEFAULT, |s| s as usize);
    let runs = for_each_seed("ZAB_SIM", "sim_zab", SEEDS_DEFAULT, |seed| {
        run_seed(seed, steps, Faults::default())
    });
    let mut total = Counts::default();
    for c in &runs {
        total.add(c);
    }
    println!("{} seeds x {steps} steps: {total:?}", runs.len());
    assert_eq!(
        total.follower_errors, 0,
        "a correct leader never breaks the stream"
    );
    if runs.len() >= 50 {
        // The seeds must reach the interesting paths, or the run proves little.
        assert!(
            total.throttled > 0 && total.lag_drops > 0 && total.crashes > 0,
            "{total:?}"
        );
        assert!(total.snaps > 0 && total.diffs > 0, "{total:?}");
    }
}

#[test]
fn checker_catches_a_minority_commit() {
    // A leader that commits once one voter (itself) has a txn durable.
    let faults = Faults {
        commit_quorum: Some(1),
    };
    let caught = (0..20u64)
        .filter(|&seed| run_seed(seed, STEPS_DEFAULT, faults).is_err())
        .count();
    println!("the planted minority commit was caught in {caught} of 20 seeds");
    assert!(
        caught >= 15,
        "the checker caught only {caught} of 20 unsafe runs"
    );
    let err = run_seed(0, STEPS_DEFAULT, faults).unwrap_err();
    assert!(err.contains("voters have it durable"), "{err}");
}
