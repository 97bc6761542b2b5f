//! Seeded simulation of fast leader election (`engine::zab::Election`, the real core)
//! inside a model of the rest of Zab, checking the property election exists for:
//! **a leader that establishes an epoch holds every txn committed before it**.
//!
//! The world: 3 or 5 voters and 0 or 1 observer; per-link FIFO delivery with random
//! delays; links cut and healed, partitions of a minority, servers crashing (in-memory
//! election state lost, log and epochs kept: they are durable) and restarting. Zab
//! around the election is modelled at the granularity election cares about:
//! - discovery: a server that decided to lead establishes once a majority (itself
//!   included) follows it over working links: the new epoch is one more than the
//!   highest accepted epoch among them; if a follower's history is newer than the
//!   leader's (ZooKeeper's check on ACKEPOCH) the leader gives up and looks again;
//! - synchronisation: each follower's log becomes the leader's (truncating what the
//!   leader lacks), then their current epoch becomes the new one;
//! - broadcast: the established leader appends txns; each reaches a random subset of
//!   its followers; a txn on a majority of voters' logs is committed;
//! - failure detection: a leader without a majority of followers, or a follower whose
//!   leader is gone, looks again after a timeout, from its log and current epoch.
//!
//! Checked: every established leader's log contains every committed txn (in order);
//! no epoch is established twice; every decision names a majority. At the end all
//! faults stop and the run must settle within a bound: every voter follows one
//! established leader, which every observer observes.
//!
//! Replay one seed: `ELECTION_SIM_SEED=S cargo test -p engine --test sim_election`;
//! more seeds: `ELECTION_SIM_SEEDS=N` (default 300); ticks: `ELECTION_SIM_TICKS`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use engine::zab::quorum::majority;
use engine::zab::{
    Election, ElectionAction, ElectionConfig, Epoch, Notification, PeerState, Role, ServerId, Zxid,
    make_zxid,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SEEDS_DEFAULT: u64 = 300;
const TICKS_DEFAULT: u64 = 3_000;
/// Ticks the healed ensemble may take to settle (resends back off to 40 ticks).
const SETTLE_TICKS_MAX: u64 = 5_000;
const FINALIZE_TICKS: u32 = 2;
const RESEND_TICKS_MIN: u32 = 5;
const RESEND_TICKS_MAX: u32 = 40;
/// Ticks a leader may wait for a majority, or a follower for its leader.
const ESTABLISH_TICKS_MAX: u64 = 30;
const DELAY_TICKS_MAX: u64 = 4;

type Check = Result<(), String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zab {
    /// In election (or just decided and not yet connected).
    Looking,
    Leading {
        since: u64,
        epoch: Option<Epoch>,
    },
    Following {
        leader: ServerId,
        since: u64,
    },
    Observing {
        leader: ServerId,
        since: u64,
    },
}

struct Server {
    id: ServerId,
    role: Role,
    up: bool,
    election: Election,
    zab: Zab,
    /// The durable log: zxids in order.
    log: Vec<Zxid>,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    /// For followers: synchronised with the leader's established epoch.
    synced: bool,
}

impl Server {
    fn history(&self) -> (Epoch, Zxid) {
        (self.current_epoch, self.log.last().copied().unwrap_or(0))
    }
}

struct Sim {
    rng: SmallRng,
    now: u64,
    voters: Vec<ServerId>,
    servers: BTreeMap<ServerId, Server>,
    /// Per directed link: (deliver at, notification), FIFO.
    links: BTreeMap<(ServerId, ServerId), VecDeque<(u64, Notification)>>,
    cut: BTreeSet<(ServerId, ServerId)>,
    committed: Vec<Zxid>,
    established: BTreeMap<Epoch, ServerId>,
    faults: bool,
    plant: Plant,
    counts: Counts,
}

/// Bugs the checker must catch (`Plant::default()` is the real protocol).
#[derive(Debug, Default, Clone, Copy)]
struct Plant {
    /// Servers vote as if their logs were empty: election by id alone.
    votes_ignore_history: bool,
    /// Leaders skip discovery's "a follower is newer than me" check.
    skip_discovery_check: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    establishments: u64,
    commits: u64,
    abandoned: u64,
    crashes: u64,
}

fn config(id: ServerId, voters: &[ServerId]) -> ElectionConfig {
    ElectionConfig {
        id,
        role: if voters.contains(&id) {
            Role::Participant
        } else {
            Role::Observer
        },
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
        let observers: Vec<ServerId> = if rng.random_bool(0.5) {
            vec![9]
        } else {
            vec![]
        };
        let mut servers = BTreeMap::new();
        for &id in voters.iter().chain(&observers) {
            let role = config(id, &voters).role;
            servers.insert(
                id,
                Server {
                    id,
                    role,
                    up: true,
                    election: Election::new(config(id, &voters)).unwrap(),
                    zab: Zab::Looking,
                    log: Vec::new(),
                    accepted_epoch: 0,
                    current_epoch: 0,
                    synced: false,
                },
            );
        }
        let mut sim = Sim {
            rng,
            now: 0,
            voters,
            servers,
            links: BTreeMap::new(),
            cut: BTreeSet::new(),
            committed: Vec::new(),
            established: BTreeMap::new(),
            faults: true,
            plant,
            counts: Counts::default(),
        };
        let ids: Vec<ServerId> = sim.servers.keys().copied().collect();
        for id in ids {
            sim.look(id);
        }
        sim
    }

    fn connected(&self, a: ServerId, b: ServerId) -> bool {
        self.servers[&a].up && self.servers[&b].up && !self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn look(&mut self, id: ServerId) {
        if matches!(self.servers[&id].zab, Zab::Leading { .. }) {
            // A leader that gives up closes its followers' connections: they look too.
            let led: Vec<ServerId> = self
                .servers
                .values()
                .filter(|s| {
                    matches!(s.zab, Zab::Following { leader, .. } | Zab::Observing { leader, .. }
                        if leader == id)
                })
                .map(|s| s.id)
                .collect();
            self.servers.get_mut(&id).unwrap().zab = Zab::Looking;
            for f in led {
                self.look(f);
            }
        }
        let s = self.servers.get_mut(&id).unwrap();
        s.zab = Zab::Looking;
        s.synced = false;
        let (epoch, zxid) = if self.plant.votes_ignore_history {
            (0, 0)
        } else {
            s.history()
        };
        let mut out = Vec::new();
        s.election.look(zxid, epoch, &mut out);
        self.carry_out(id, out);
    }

    fn carry_out(&mut self, id: ServerId, out: Vec<ElectionAction>) {
        for a in out {
            match a {
                ElectionAction::Send { to, n } => {
                    if !self.connected(id, to) {
                        continue;
                    }
                    let q = self.links.entry((id, to)).or_default();
                    let earliest = q.back().map_or(self.now, |m| m.0);
                    let at = earliest.max(self.now + self.rng.random_range(0..=DELAY_TICKS_MAX));
                    q.push_back((at, n));
                }
                ElectionAction::Decided(d) => {
                    assert!(
                        d.quorum.len() >= majority(self.voters.len()),
                        "{id} decided on {:?} without a majority",
                        d.quorum
                    );
                    let since = self.now;
                    self.servers.get_mut(&id).unwrap().zab = match d.state {
                        PeerState::Leading => Zab::Leading { since, epoch: None },
                        PeerState::Following => Zab::Following {
                            leader: d.vote.leader,
                            since,
                        },
                        PeerState::Observing => Zab::Observing {
                            leader: d.vote.leader,
                            since,
                        },
                        PeerState::Looking => unreachable!("a decision is never Looking"),
                    };
                }
            }
        }
    }

    fn step(&mut self) -> Check {
        self.now += 1;
        if self.faults {
            self.inject_faults();
        }
        self.deliver();
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        for &id in &ids {
            if self.servers[&id].up {
                let mut out = Vec::new();
                self.servers.get_mut(&id).unwrap().election.tick(&mut out);
                self.carry_out(id, out);
            }
        }
        for &id in &ids {
            if self.servers[&id].up {
                self.drive_zab(id)?;
            }
        }
        Ok(())
    }

    fn deliver(&mut self) {
        let keys: Vec<(ServerId, ServerId)> = self.links.keys().copied().collect();
        for (from, to) in keys {
            while let Some(&(at, n)) = self.links[&(from, to)].front() {
                if at > self.now {
                    break;
                }
                self.links.get_mut(&(from, to)).unwrap().pop_front();
                let mut out = Vec::new();
                self.servers
                    .get_mut(&to)
                    .unwrap()
                    .election
                    .step(from, n, &mut out);
                self.carry_out(to, out);
            }
        }
    }

    fn inject_faults(&mut self) {
        let ids: Vec<ServerId> = self.servers.keys().copied().collect();
        let r = self.rng.random_range(0..1000);
        if r < 4 {
            let id = ids[self.rng.random_range(0..ids.len())];
            let down = self.servers.values().filter(|s| !s.up).count();
            if self.servers[&id].up && down + 1 < majority(self.voters.len()) + 1 {
                self.crash(id);
            }
        } else if r < 12 {
            let down: Vec<ServerId> = ids
                .iter()
                .copied()
                .filter(|i| !self.servers[i].up)
                .collect();
            if let Some(&id) = down.first() {
                self.restart(id);
            }
        } else if r < 18 {
            let a = ids[self.rng.random_range(0..ids.len())];
            let b = ids[self.rng.random_range(0..ids.len())];
            if a != b {
                self.cut_link(a, b);
            }
        } else if r < 20 {
            // Isolate one server from everyone.
            let a = ids[self.rng.random_range(0..ids.len())];
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

    fn cut_link(&mut self, a: ServerId, b: ServerId) {
        self.cut.insert((a.min(b), a.max(b)));
        self.links.remove(&(a, b));
        self.links.remove(&(b, a));
    }

    fn crash(&mut self, id: ServerId) {
        self.counts.crashes += 1;
        self.servers.get_mut(&id).unwrap().up = false;
        self.links.retain(|&(a, b), _| a != id && b != id);
    }

    fn restart(&mut self, id: ServerId) {
        let voters = self.voters.clone();
        let s = self.servers.get_mut(&id).unwrap();
        s.up = true;
        s.election = Election::new(config(id, &voters)).unwrap();
        self.look(id);
    }

    /// The model of discovery, sync, broadcast and failure detection for one server.
    fn drive_zab(&mut self, id: ServerId) -> Check {
        match self.servers[&id].zab {
            Zab::Looking => Ok(()),
            Zab::Leading { since, epoch: None } => self.try_establish(id, since),
            Zab::Leading { epoch: Some(e), .. } => self.lead(id, e),
            Zab::Following { leader, since } | Zab::Observing { leader, since } => {
                self.follow(id, leader, since);
                Ok(())
            }
        }
    }

    /// Voters following `leader` over working links (not the leader itself).
    fn followers_of(&self, leader: ServerId) -> Vec<ServerId> {
        self.voters
            .iter()
            .copied()
            .filter(|&f| {
                f != leader
                    && self.connected(leader, f)
                    && matches!(self.servers[&f].zab, Zab::Following { leader: l, .. } if l == leader)
            })
            .collect()
    }

    fn try_establish(&mut self, id: ServerId, since: u64) -> Check {
        let followers = self.followers_of(id);
        if followers.len() + 1 < majority(self.voters.len()) {
            if self.now - since > ESTABLISH_TICKS_MAX {
                self.look(id);
            }
            return Ok(());
        }
        // Discovery: a follower with a newer history than ours means we must not lead.
        let mine = self.servers[&id].history();
        if !self.plant.skip_discovery_check
            && followers.iter().any(|f| self.servers[f].history() > mine)
        {
            self.counts.abandoned += 1;
            self.look(id);
            return Ok(());
        }
        let epoch = followers
            .iter()
            .chain([&id])
            .map(|f| self.servers[f].accepted_epoch)
            .max()
            .unwrap()
            + 1;
        if let Some(other) = self.established.insert(epoch, id) {
            return Err(format!(
                "epoch {epoch} established twice: by {other} and {id}"
            ));
        }
        self.counts.establishments += 1;
        let log = self.servers[&id].log.clone();
        let mut missing = self.committed.iter().filter(|z| !log.contains(z));
        if let Some(z) = missing.next() {
            return Err(format!(
                "leader {id} established epoch {epoch} without committed txn {z:#x} \
                 (its history {mine:?}, followers {followers:?})"
            ));
        }
        let s = self.servers.get_mut(&id).unwrap();
        s.accepted_epoch = epoch;
        s.current_epoch = epoch;
        s.zab = Zab::Leading {
            since,
            epoch: Some(epoch),
        };
        for f in followers {
            self.sync(f, id);
        }
        Ok(())
    }

    /// The leader's log and epoch become the follower's.
    fn sync(&mut self, follower: ServerId, leader: ServerId) {
        let (log, epoch) = {
            let l = &self.servers[&leader];
            (l.log.clone(), l.current_epoch)
        };
        let f = self.servers.get_mut(&follower).unwrap();
        f.accepted_epoch = epoch;
        f.log = log;
        f.current_epoch = epoch;
        f.synced = true;
    }

    fn lead(&mut self, id: ServerId, epoch: Epoch) -> Check {
        let followers = self.followers_of(id);
        if followers.len() + 1 < majority(self.voters.len()) {
            self.look(id);
            return Ok(());
        }
        for &f in &followers {
            if !self.servers[&f].synced || self.servers[&f].current_epoch != epoch {
                self.sync(f, id);
            }
        }
        if !self.rng.random_bool(0.3) {
            return Ok(());
        }
        // Broadcast one txn; a random subset of followers log it.
        let counter = self.servers[&id]
            .log
            .iter()
            .filter(|z| (**z >> 32) as Epoch == epoch)
            .count() as u32
            + 1;
        let zxid = make_zxid(epoch, counter);
        self.servers.get_mut(&id).unwrap().log.push(zxid);
        let mut holders = 1;
        for f in followers {
            let s = self.servers.get_mut(&f).unwrap();
            if s.log.len() + 1 == self.servers[&id].log.len() && self.rng.random_bool(0.6) {
                self.servers.get_mut(&f).unwrap().log.push(zxid);
                holders += 1;
            } else {
                // It missed it: resynchronised on a later tick.
                self.servers.get_mut(&f).unwrap().synced = false;
            }
        }
        if holders >= majority(self.voters.len()) {
            self.counts.commits += 1;
            self.committed.push(zxid);
        }
        Ok(())
    }

    fn follow(&mut self, id: ServerId, leader: ServerId, since: u64) {
        let ok =
            self.connected(id, leader) && matches!(self.servers[&leader].zab, Zab::Leading { .. });
        if ok {
            let s = self.servers.get_mut(&id).unwrap();
            if let Zab::Following { since, .. } | Zab::Observing { since, .. } = &mut s.zab {
                *since = self.now;
            }
            if s.role == Role::Observer
                && let Zab::Leading { epoch: Some(_), .. } = self.servers[&leader].zab
            {
                self.sync(id, leader);
            }
        } else if self.now - since > ESTABLISH_TICKS_MAX {
            self.look(id);
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

    /// Every voter follows one established leader, which every observer observes.
    fn settled(&self) -> bool {
        let leaders: Vec<ServerId> = self
            .servers
            .values()
            .filter(|s| matches!(s.zab, Zab::Leading { epoch: Some(_), .. }))
            .map(|s| s.id)
            .collect();
        let [leader] = leaders[..] else { return false };
        self.servers.values().all(|s| match s.zab {
            Zab::Leading { .. } => s.id == leader,
            Zab::Following { leader: l, .. } => l == leader && s.synced,
            Zab::Observing { leader: l, .. } => l == leader,
            Zab::Looking => false,
        })
    }
}

fn run_seed(seed: u64, ticks: u64, plant: Plant) -> Result<Counts, String> {
    let mut sim = Sim::new(seed, plant);
    for _ in 0..ticks {
        sim.step()?;
    }
    sim.heal();
    let start = sim.now;
    while !sim.settled() {
        if sim.now - start > SETTLE_TICKS_MAX {
            let states: Vec<String> = sim
                .servers
                .values()
                .map(|s| format!("{}: {:?} up={} {:?}", s.id, s.zab, s.up, s.election))
                .collect();
            return Err(format!(
                "did not settle in {SETTLE_TICKS_MAX} ticks: {states:?}"
            ));
        }
        sim.step()?;
    }
    Ok(sim.counts)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

#[test]
fn elected_leaders_hold_every_committed_txn_and_the_ensemble_settles() {
    let ticks = env_u64("ELECTION_SIM_TICKS").unwrap_or(TICKS_DEFAULT);
    let seeds: Vec<u64> = match env_u64("ELECTION_SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("ELECTION_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT)).collect(),
    };
    let mut total = Counts::default();
    for seed in seeds {
        match run_seed(seed, ticks, Plant::default()) {
            Ok(c) => {
                total.establishments += c.establishments;
                total.commits += c.commits;
                total.abandoned += c.abandoned;
                total.crashes += c.crashes;
            }
            Err(e) => panic!(
                "seed {seed}: {e}\nreplay: ELECTION_SIM_SEED={seed} cargo test -p engine \
                 --test sim_election"
            ),
        }
    }
    eprintln!("sim_election: {total:?}");
    assert!(
        total.establishments > 0 && total.commits > 0,
        "the faults left no progress"
    );
}

#[test]
fn checker_catches_an_election_that_ignores_history() {
    let plant = Plant {
        votes_ignore_history: true,
        skip_discovery_check: true,
    };
    let caught = (0..20u64)
        .filter(|&seed| run_seed(seed, TICKS_DEFAULT, plant).is_err())
        .count();
    println!("the planted history-blind election was caught in {caught} of 20 seeds");
    assert!(
        caught >= 15,
        "the checker caught only {caught} of 20 unsafe runs"
    );
    let err = run_seed(0, TICKS_DEFAULT, plant).unwrap_err();
    assert!(err.contains("without committed txn"), "{err}");
}

#[test]
fn election_alone_keeps_committed_txns_in_this_model() {
    // Discovery's check is a second line of defence; with honest votes the elected
    // leader already holds every committed txn, so the check never fires here.
    let plant = Plant {
        skip_discovery_check: true,
        ..Plant::default()
    };
    for seed in 0..50u64 {
        if let Err(e) = run_seed(seed, TICKS_DEFAULT, plant) {
            panic!("seed {seed}: {e}");
        }
    }
}
