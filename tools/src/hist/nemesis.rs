//! A nemesis for one standalone server or an ensemble: `kill -9` then restart (same
//! port, same data), SIGSTOP then SIGCONT, and for ensembles network partitions and
//! slow links between members (bench's [`bench::mesh`] proxies every peer link, so a
//! fault is set on a link while clients still reach every server; or, with
//! [`bench::netns`], every member in its own network namespace and a partition made
//! of nftables drops), fsyncs of one member that stall or fail with EIO (its data
//! directory on [`bench::faultfs`]; a member that stops on EIO is restarted when
//! healed), on a seeded schedule, bounded in time.
//!
//! Contract:
//! - [`schedule`] is a function of its arguments only: `count` faults (at most
//!   [`FAULTS_MAX`]), one in each of `count` equal slots of the first
//!   [`FAULT_SPAN_PERCENT`] % of the run, each lasting at most [`KILL_DOWN_MS_MAX`] /
//!   [`PAUSE_MS_MAX`] / [`PARTITION_MS_MAX`] / [`SLOW_MS_MAX`] and ending inside its
//!   slot, so the server is healed well before the workload ends;
//! - which member a fault hits and a partition's shape ([`partition_sides`]) come from
//!   the run's seed and the leader of the moment; the history records them;
//! - a [`Target`] is a server this process started (bench's launcher: corekeeper's
//!   binary, or ZooKeeper 3.8 from Debian's packages); it owns the process, so dropping
//!   it kills and reaps it; [`Target::restart`] returns once the server answers `ruok`
//!   again (bounded by bench's `READY_TIMEOUT_MS_MAX`);
//! - [`run_schedule`] sleeps until each fault's time (the schedule, not a guess), and
//!   records every fault's start and end in the history; a silence is the workload's
//!   (the `silence` callback makes worker `i % workers` go quiet), the server is left
//!   alone;
//! - a server is killed when the thread that started it exits (bench's launcher sets
//!   the parent-death signal, which Linux ties to the thread): start, restart and drop
//!   a `Target` from one thread that lives as long as the run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bench::mesh::{LinkFault, Mesh};
use bench::servers::{self, LaunchSpec, ServerProcess, System};

use super::history::{Fault, FaultKind};
use super::workload::Recorder;
use crate::diff::rng::Rng;

/// Faults in one run at most.
pub const FAULTS_MAX: usize = 16;
/// `preAllocSize` (KiB) of the servers a run starts: a local cluster's (a run writes a
/// few MiB per server, and CI's disk holds many runs' data directories).
pub const CK_PREALLOC_KIB: u64 = crate::cluster::CLUSTER_PREALLOC_KIB;
/// Share of the run (from its start) in which faults happen; the rest runs healed.
pub const FAULT_SPAN_PERCENT: u64 = 70;
/// Longest a killed server stays down before its restart begins.
pub const KILL_DOWN_MS_MAX: u64 = 1_000;
/// Longest a pause lasts.
pub const PAUSE_MS_MAX: u64 = 1_500;
/// Longest partition (long enough to outlast syncLimit at ckjepsen's ensemble tick).
pub const PARTITION_MS_MAX: u64 = 6_000;
/// Longest slow-link fault, its one-way delay and lost share at most.
pub const SLOW_MS_MAX: u64 = 3_000;
pub const SLOW_DELAY_MS_MAX: u64 = 100;
pub const SLOW_LOSS_PERCENT_MAX: u8 = 20;
/// Longest fsync fault (stalled or failing fsyncs of one member).
pub const FSYNC_MS_MAX: u64 = 3_000;
/// Longest wall-clock step, and the largest step (either way).
pub const CLOCK_MS_MAX: u64 = 3_000;
pub const CLOCK_STEP_S_MAX: u64 = 3_600;
/// Shortest fault.
pub const FAULT_MS_MIN: u64 = 50;
/// How far a silence outlasts the session timeout: the server expires sessions on its
/// ticks (ZooKeeper's default tick is 2 s), so this covers the timeout, a tick, and
/// as much again for a slow machine.
pub const SILENCE_MARGIN_MS: u64 = 4_000;

/// How long a silence lasts for sessions of `session_timeout_ms`.
pub fn silence_ms(session_timeout_ms: i32) -> u64 {
    session_timeout_ms.max(0) as u64 + SILENCE_MARGIN_MS
}

/// `count` faults of the given kinds over a run of `duration_ms`. A silence lasts
/// [`silence_ms`] of the session timeout and ends with its slot; it is left out when
/// its slot is too short for it.
pub fn schedule(
    seed: u64,
    duration_ms: u64,
    kinds: &[FaultKind],
    count: usize,
    session_timeout_ms: i32,
) -> Vec<Fault> {
    let count = count.min(FAULTS_MAX);
    if kinds.is_empty() || count == 0 {
        return Vec::new();
    }
    let mut rng = Rng::new(seed ^ 0xFA17);
    let span = duration_ms * FAULT_SPAN_PERCENT / 100;
    let slot = span / count as u64;
    (0..count as u64)
        .filter_map(|i| {
            let kind = *rng.pick(kinds);
            let max = match kind {
                FaultKind::Kill => KILL_DOWN_MS_MAX,
                FaultKind::Pause => PAUSE_MS_MAX,
                FaultKind::Partition => PARTITION_MS_MAX,
                FaultKind::Slow => SLOW_MS_MAX,
                FaultKind::Clock => CLOCK_MS_MAX,
                FaultKind::Fsync => FSYNC_MS_MAX,
                FaultKind::Silence => {
                    // It ends with its slot, so it starts as late as it can: the
                    // worker has a session to lose by then.
                    let for_ms = silence_ms(session_timeout_ms);
                    return (for_ms <= slot).then(|| Fault {
                        at_ms: i * slot + (slot - for_ms),
                        kind,
                        for_ms,
                    });
                }
            };
            // Each fault starts in the first half of its slot and ends inside it.
            let half = slot / 2;
            let for_ms = max.min(half);
            if for_ms < FAULT_MS_MIN {
                return None;
            }
            let for_ms = FAULT_MS_MIN + rng.below((for_ms - FAULT_MS_MIN) as usize + 1) as u64;
            let at_ms = i * slot + rng.below(half as usize + 1) as u64;
            Some(Fault {
                at_ms,
                kind,
                for_ms,
            })
        })
        .collect()
}

/// How to run corekeeper.
#[derive(Debug, Clone)]
pub enum Launch {
    /// The `corekeeper` binary (`--config zoo.cfg`).
    Binary(PathBuf),
    /// A program that runs corekeeper with `serve --config zoo.cfg` (ckjepsen itself).
    Serve(PathBuf),
    Zookeeper,
}

impl Launch {
    pub fn system(&self) -> System {
        match self {
            Launch::Zookeeper => System::Zookeeper,
            _ => System::Corekeeper,
        }
    }
}

/// One standalone server, or a 3-node ensemble, under test.
pub struct Target {
    pub launch: Launch,
    pub addr: String,
    dir: PathBuf,
    cfg: PathBuf,
    proc: Option<ServerProcess>,
    starts: u32,
    paused: bool,
    /// An ensemble instead of `proc`: kill takes down the leader of the moment,
    /// pause stops a member picked by the seed.
    ensemble: Option<Members>,
    /// corekeeper: each server's wall-clock fault file (empty for ZooKeeper).
    clock_files: Vec<PathBuf>,
    clock_rng: Rng,
}

struct Members {
    d: bench::servers::Deployment,
    /// Every peer link goes through it (declared after `d`, so dropped after the
    /// members are killed).
    mesh: Option<Mesh>,
    paused: Option<usize>,
    rng: Rng,
}

/// The shapes [`partition_sides`] draws from.
pub const PARTITION_SHAPES: usize = 3;

/// The sides of partition `shape` (0: the leader alone; 1: a minority and a majority,
/// the leader on either; 2: two sides joined by one bridging member that keeps all its
/// links) of members `1..=n`, drawn with `rng`. Members on no side keep every link.
pub fn partition_sides(shape: usize, n: usize, leader: u32, rng: &mut Rng) -> Vec<Vec<u32>> {
    debug_assert!(
        n >= 2 && (1..=n as u32).contains(&leader),
        "an ensemble and its leader"
    );
    let mut ids: Vec<u32> = (1..=n as u32).collect();
    // Fisher-Yates from the seed.
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.below(i + 1));
    }
    match shape % PARTITION_SHAPES {
        0 => vec![
            vec![leader],
            (1..=n as u32).filter(|&i| i != leader).collect(),
        ],
        1 => {
            let (minority, majority) = ids.split_at(n / 2);
            vec![sorted(minority), sorted(majority)]
        }
        _ => {
            // ids[0] bridges; the rest split in two.
            let rest = &ids[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            vec![sorted(a), sorted(b)]
        }
    }
}

fn sorted(xs: &[u32]) -> Vec<u32> {
    let mut v = xs.to_vec();
    v.sort_unstable();
    v
}

/// `{1} | {2,3}`.
pub fn describe_sides(sides: &[Vec<u32>]) -> String {
    sides
        .iter()
        .map(|s| {
            let ids: Vec<String> = s.iter().map(u32::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

impl Target {
    /// Starts an ensemble of `launch`'s system (bench's launcher: the same configs as
    /// `ckbench compare --shape 3node`, laid out as `o` says), data and logs under
    /// `dir`.
    pub fn start_ensemble(
        launch: Launch,
        dir: &Path,
        seed: u64,
        o: bench::ensemble::Options,
    ) -> Result<Target, String> {
        let logs = dir.join("logs");
        let o = bench::ensemble::Options {
            clock_files: launch.system() == System::Corekeeper,
            ..o
        };
        let clock_files = if o.clock_files {
            (1..=o.nodes as u32)
                .map(|id| bench::ensemble::clock_file(dir, id))
                .collect()
        } else {
            Vec::new()
        };
        let (d, mesh) = match &launch {
            Launch::Zookeeper => bench::ensemble::start_with(dir, &logs, o)?,
            Launch::Binary(bin) | Launch::Serve(bin) => {
                let args = match &launch {
                    Launch::Serve(_) => vec!["serve".to_string()],
                    _ => Vec::new(),
                };
                let ck = bench::ensemble::CkSpec {
                    bin: bin.clone(),
                    args,
                    cores: 1,
                    settings: vec![format!("preAllocSize={CK_PREALLOC_KIB}")],
                };
                bench::ensemble::start_corekeeper_with(dir, &logs, &ck, o)?
            }
        };
        Ok(Target {
            launch,
            addr: d.servers().join(","),
            dir: dir.to_path_buf(),
            cfg: PathBuf::new(),
            proc: None,
            starts: 1,
            paused: false,
            ensemble: Some(Members {
                d,
                mesh,
                paused: None,
                rng: Rng::new(seed ^ 0x3A0DE),
            }),
            clock_files,
            clock_rng: Rng::new(seed ^ 0xC10C),
        })
    }

    /// The client addresses (one, or every member's).
    pub fn servers(&self) -> Vec<String> {
        match &self.ensemble {
            Some(m) => m.d.servers(),
            None => vec![self.addr.clone()],
        }
    }

    fn ensemble_leader(m: &Members) -> usize {
        m.d.servers()
            .iter()
            .position(|a| {
                servers::four_letter(a, "srvr")
                    .ok()
                    .and_then(|t| bench::ensemble::parse_mode(&t))
                    == Some(bench::ensemble::Mode::Leader)
            })
            .unwrap_or(0)
    }

    /// Starts a server with its config and data under `dir` (created; must be fresh).
    pub fn start(launch: Launch, dir: &Path) -> Result<Target, String> {
        std::fs::create_dir_all(dir.join("data"))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let host = "127.0.0.1";
        let port = servers::free_port(host)?;
        let spec = LaunchSpec {
            system: launch.system(),
            host: host.into(),
            dir: dir.to_path_buf(),
            corekeeper_bin: None,
            cores: 1,
            settings: vec![format!("preAllocSize={CK_PREALLOC_KIB}")],
            log: None,
        };
        let cfg = dir.join("zoo.cfg");
        std::fs::write(&cfg, servers::zoo_cfg(&spec, port))
            .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
        let mut t = Target {
            launch,
            addr: format!("{host}:{port}"),
            dir: dir.to_path_buf(),
            cfg,
            proc: None,
            starts: 0,
            paused: false,
            ensemble: None,
            clock_files: Vec::new(),
            clock_rng: Rng::new(0xC10C),
        };
        if t.launch.system() == System::Corekeeper {
            t.clock_files = vec![dir.join("clock-offset-ms")];
        }
        t.spawn()?;
        Ok(t)
    }

    fn command(&self) -> Result<Command, String> {
        let mut c = match &self.launch {
            Launch::Binary(bin) => {
                let mut c = Command::new(bin);
                c.arg("--config").arg(&self.cfg);
                c
            }
            Launch::Serve(bin) => {
                let mut c = Command::new(bin);
                c.arg("serve").arg("--config").arg(&self.cfg);
                c
            }
            Launch::Zookeeper => servers::zookeeper_command(&self.cfg)?,
        };
        if let Some(f) = self.clock_files.first() {
            c.env(bench::ensemble::FAULT_CLOCK_FILE_ENV, f);
        }
        Ok(c)
    }

    /// Steps one server's wall clock (drawn from the seed) by up to an hour either
    /// way; says how. ZooKeeper has no hook: nothing happens to it.
    pub fn clock_step(&mut self) -> Result<String, String> {
        if self.clock_files.is_empty() {
            return Ok("no wall-clock hook: nothing done".into());
        }
        let i = self.clock_rng.below(self.clock_files.len());
        let s = 1 + self.clock_rng.below(CLOCK_STEP_S_MAX as usize) as i64;
        let step_s = if self.clock_rng.below(2) == 0 { s } else { -s };
        let f = &self.clock_files[i];
        std::fs::write(f, format!("{}\n", step_s * 1000))
            .map_err(|e| format!("writing {}: {e}", f.display()))?;
        Ok(format!("node{}: wall clock {step_s:+} s", i + 1))
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log = self.dir.join(format!("server-{}.log", self.starts));
        let mut p = ServerProcess::spawn(
            self.launch.system(),
            self.addr.clone(),
            self.command()?,
            log,
        )?;
        p.wait_ready(Duration::from_millis(servers::READY_TIMEOUT_MS_MAX))?;
        self.proc = Some(p);
        Ok(())
    }

    fn signal(&self, sig: i32) {
        if let Some(p) = &self.proc {
            // SAFETY: kill(2) on the pid of a child we have not reaped yet (the
            // ServerProcess reaps it only on drop), so the pid is still ours.
            unsafe {
                libc::kill(p.pid() as i32, sig);
            }
        }
    }

    /// `kill -9` (an ensemble's leader); the process is reaped.
    pub fn kill(&mut self) {
        if let Some(m) = &mut self.ensemble {
            let i = Self::ensemble_leader(m);
            m.d.nodes[i].kill();
            return;
        }
        self.signal(libc::SIGKILL);
        self.proc = None; // drop reaps
        self.paused = false;
    }

    pub fn restart(&mut self) -> Result<(), String> {
        if let Some(m) = &mut self.ensemble {
            // Every member that is down comes back on its data: the one killed, and one
            // that stopped on its own (a failed fsync, or a crash).
            for node in &mut m.d.nodes {
                if node.exit_status().is_some() {
                    self.starts += 1;
                    node.relaunch()?;
                    node.wait_ready(Duration::from_millis(servers::READY_TIMEOUT_MS_MAX))?;
                }
            }
            return Ok(());
        }
        if self.proc.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    pub fn pause(&mut self) {
        if let Some(m) = &mut self.ensemble {
            let i = m.rng.below(m.d.nodes.len());
            signal_pid(m.d.nodes[i].pid(), libc::SIGSTOP);
            m.paused = Some(i);
            return;
        }
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    pub fn resume(&mut self) {
        if let Some(m) = &mut self.ensemble {
            if let Some(i) = m.paused.take() {
                signal_pid(m.d.nodes[i].pid(), libc::SIGCONT);
            }
            return;
        }
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// Cuts the ensemble's links as a partition drawn from the seed; says how.
    pub fn partition(&mut self) -> Result<String, String> {
        let Some(m) = &mut self.ensemble else {
            return Ok("standalone: no links to cut".into());
        };
        if m.mesh.is_none() && m.d.lab.is_none() {
            return Ok("no mesh nor namespaces: links left alone".into());
        }
        let leader = Self::ensemble_leader(m) as u32 + 1;
        let shape = m.rng.below(PARTITION_SHAPES);
        let sides = partition_sides(shape, m.d.nodes.len(), leader, &mut m.rng);
        if let Some(mesh) = &m.mesh {
            mesh.partition(&sides);
        }
        if let Some(lab) = &m.d.lab {
            lab.partition(&sides)?;
        }
        Ok(format!("{} (leader node{leader})", describe_sides(&sides)))
    }

    /// Slows every link of one member drawn from the seed; says how.
    pub fn slow(&mut self) -> String {
        let Some(m) = &mut self.ensemble else {
            return "standalone: no links to slow".into();
        };
        let Some(mesh) = &m.mesh else {
            return "no mesh: links left alone".into();
        };
        let n = m.d.nodes.len() as u32;
        let who = m.rng.below(n as usize) as u32 + 1;
        let fault = LinkFault {
            cut: false,
            delay_ms: 1 + m.rng.below(SLOW_DELAY_MS_MAX as usize) as u64,
            loss_percent: m.rng.below(usize::from(SLOW_LOSS_PERCENT_MAX) + 1) as u8,
        };
        for other in (1..=n).filter(|&o| o != who) {
            mesh.set(who, other, fault);
        }
        format!(
            "node{who}: {} ms one way, {}% lost",
            fault.delay_ms, fault.loss_percent
        )
    }

    /// Makes the fsyncs of one member (drawn from the seed) stall or fail with EIO;
    /// says how.
    pub fn fsync_fault(&mut self) -> String {
        let Some(m) = &mut self.ensemble else {
            return "standalone: no fault file system".into();
        };
        if m.d.disks.is_empty() {
            return "no fault file system: fsyncs left alone".into();
        }
        let i = m.rng.below(m.d.disks.len());
        let (fault, how) = if m.rng.below(2) == 0 {
            (bench::faultfs::DiskFault::Stall, "fsyncs stall")
        } else {
            (bench::faultfs::DiskFault::Eio, "fsyncs fail with EIO")
        };
        m.d.disks[i].set(fault);
        format!("node{}: {how}", i + 1)
    }

    /// Undoes whatever fault is in force.
    pub fn heal(&mut self) -> Result<(), String> {
        for f in &self.clock_files {
            if f.exists() {
                std::fs::write(f, "0\n").map_err(|e| format!("writing {}: {e}", f.display()))?;
            }
        }
        if let Some(mesh) = self.ensemble.as_ref().and_then(|m| m.mesh.as_ref()) {
            mesh.heal();
        }
        if let Some(lab) = self.ensemble.as_ref().and_then(|m| m.d.lab.as_ref()) {
            lab.heal()?;
        }
        if let Some(m) = &mut self.ensemble {
            for disk in &m.d.disks {
                disk.set(bench::faultfs::DiskFault::Healthy);
            }
        }
        if self.paused || self.ensemble.as_ref().is_some_and(|m| m.paused.is_some()) {
            self.resume();
        }
        self.restart()
    }

    /// Times the server was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

fn signal_pid(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the pid of a child not reaped yet (ServerProcess reaps only
    // on kill or drop), so the pid is still ours.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Runs `faults` against `target` (times from `start`), recording each; heals at the
/// end. Returns the number of faults injected.
pub fn run_schedule(
    target: &mut Target,
    faults: &[Fault],
    start: Instant,
    rec: &Recorder,
    silence: &dyn Fn(usize, Duration),
) -> Result<usize, String> {
    let mut done = 0;
    for (i, f) in faults.iter().enumerate() {
        let at = start + Duration::from_millis(f.at_ms);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let detail = match f.kind {
            FaultKind::Kill => {
                target.kill();
                String::new()
            }
            FaultKind::Pause => {
                target.pause();
                String::new()
            }
            FaultKind::Silence => {
                silence(i, Duration::from_millis(f.for_ms));
                String::new()
            }
            FaultKind::Partition => target.partition()?,
            FaultKind::Slow => target.slow(),
            FaultKind::Clock => target.clock_step()?,
            FaultKind::Fsync => target.fsync_fault(),
        };
        rec.nemesis(f.kind, "start", &detail);
        std::thread::sleep(Duration::from_millis(f.for_ms));
        target.heal()?;
        rec.nemesis(f.kind, "end", "");
        done += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_seeded_bounded_and_inside_the_run() {
        let kinds = [FaultKind::Kill, FaultKind::Pause];
        let a = schedule(7, 10_000, &kinds, 4, 4_000);
        assert_eq!(a, schedule(7, 10_000, &kinds, 4, 4_000));
        assert_ne!(a, schedule(8, 10_000, &kinds, 4, 4_000));
        assert_eq!(a.len(), 4);
        let span = 10_000 * FAULT_SPAN_PERCENT / 100;
        let mut end = 0;
        for f in &a {
            assert!(f.at_ms >= end, "faults do not overlap: {a:?}");
            end = f.at_ms + f.for_ms;
            assert!(end <= span, "{a:?}");
        }
        assert_eq!(schedule(7, 10_000, &kinds, 100, 4_000).len(), FAULTS_MAX);
        assert!(schedule(7, 10_000, &[], 3, 4_000).is_empty());
        // Too short a run for any fault to fit.
        assert!(schedule(7, 50, &kinds, 3, 4_000).is_empty());
        // A silence outlasts the session timeout, in a slot long enough for it only.
        let s = schedule(7, 12_000, &[FaultKind::Silence], 1, 4_000);
        // (a 12 s run: its one slot is 8.4 s, room for 4 s + the margin)
        assert_eq!(
            s,
            [Fault {
                at_ms: 8_400 - 4_000 - SILENCE_MARGIN_MS,
                kind: FaultKind::Silence,
                for_ms: 4_000 + SILENCE_MARGIN_MS
            }]
        );
        assert!(schedule(7, 12_000, &[FaultKind::Silence], 2, 4_000).is_empty());
        assert!(schedule(7, 10_000, &[FaultKind::Silence], 1, 4_000).is_empty());
        // Partitions may last longer than pauses, still inside their slots.
        let p = schedule(3, 40_000, &[FaultKind::Partition], 2, 4_000);
        assert_eq!(p.len(), 2);
        assert!(
            p.iter()
                .all(|f| f.for_ms <= PARTITION_MS_MAX && f.for_ms >= FAULT_MS_MIN)
        );
    }

    #[test]
    fn partitions_split_the_members_as_their_shape_says() {
        let mut rng = Rng::new(5);
        for n in [3usize, 5] {
            for leader in 1..=n as u32 {
                let alone = partition_sides(0, n, leader, &mut rng);
                assert_eq!(alone[0], [leader]);
                assert_eq!(alone[1].len(), n - 1);
                let halves = partition_sides(1, n, leader, &mut rng);
                assert_eq!((halves[0].len(), halves[1].len()), (n / 2, n - n / 2));
                let bridge = partition_sides(2, n, leader, &mut rng);
                let on_sides: usize = bridge.iter().map(Vec::len).sum();
                assert_eq!(on_sides, n - 1, "one member bridges: {bridge:?}");
                for sides in [alone, halves, bridge] {
                    let mut all: Vec<u32> = sides.concat();
                    all.sort_unstable();
                    all.dedup();
                    assert_eq!(all.len(), sides.iter().map(Vec::len).sum::<usize>());
                }
            }
        }
        assert_eq!(describe_sides(&[vec![1], vec![2, 3]]), "{1} | {2,3}");
    }
}
