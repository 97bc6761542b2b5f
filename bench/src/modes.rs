//! `ckbench modes`: "Zab or CRAQ?" measured. The same corekeeper, replicated by Zab
//! or by CRAQ, run on one machine with every server held to its own CPU budget, so
//! that replicas behave like separate machines and read throughput can grow with
//! their number.
//!
//! How reads are served, per mode:
//! - `zab`: `replication=zab`, gets at every server (local; sequentially consistent,
//!   may be stale);
//! - `zab-sync`: `replication=zab`, every get preceded by a `sync` (ZooKeeper's
//!   linearizable read: a trip through the leader);
//! - `craq`: `replication=craq`, gets at every server (linearizable);
//! - `chain`: `replication=craq` with every session on the chain's tail: plain chain
//!   replication's read path, where the tail answers every read (writes entering at
//!   the tail are forwarded to the head, which costs the tail a little more than a
//!   client writing to the head directly).
//!
//! Contract:
//! - per replica count and replication, one ensemble (`crate::ensemble`, corekeeper's
//!   addresses), every server in a cgroup v1 `cpu` group of its own with
//!   `cpu.cfs_quota_us = --cpu x cpu.cfs_period_us` (as root; `--cpu 0` runs without
//!   budgets, and an unwritable `/sys/fs/cgroup/cpu` is an error saying so); the
//!   groups are removed however the run ends;
//! - every cell is one `ckbench run` of `mix:R/W` (`get` for 100/0, `set` for 0/100)
//!   with the same seed, sessions and load; a cell's row gives total, read and write
//!   throughput and read/write latency percentiles, and the run's errors;
//! - `--slow-ms N` delays every peer link of the last member by N ms one way (the
//!   mesh's proxies; `crate::mesh`), the "one slow server" case;
//! - the table is printed; with `--out DIR`, `modes.json` and one SVG per mix (read
//!   throughput against replicas, one line per mode).
//!
//! Limits: [`REPLICAS_MAX`], [`CELLS_MAX`]. The pure parts (arguments, the cell
//! plan, the quota, the table) are unit tested; the runs are benchmarks.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConnectString, Load, RunConfig, Spread, Target};
use crate::ensemble::{CkSpec, Options};
use crate::progress::{ProgressLine, ProgressSink, format_line};
use crate::report::RunReport;
use crate::workload::{OpKind, WorkloadKind};
use crate::zk::ZkConnector;

/// Largest ensemble measured.
pub const REPLICAS_MAX: usize = 7;
/// Most cells (replica counts x modes x mixes) in one invocation.
pub const CELLS_MAX: usize = 128;
/// Most runs of one cell.
pub const ROUNDS_MAX: u32 = 9;
/// The cgroup v1 `cpu` hierarchy.
pub const CGROUP_CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
/// The scheduler period the budgets are set against by default (`--period-us`): short,
/// so a server that spent its budget waits milliseconds, not a default period of
/// 100 ms, for the next.
pub const CFS_PERIOD_US: u64 = 10_000;
/// Longest `--slow-disk-ms` (the engine's hook takes at most a minute).
pub const SLOW_DISK_MS_MAX: u64 = 60_000;
/// The kernel's smallest `cpu.cfs_quota_us` (and period).
pub const CFS_QUOTA_US_MIN: u64 = 1_000;
/// The kernel's largest `cpu.cfs_period_us`.
pub const CFS_PERIOD_US_MAX: u64 = 1_000_000;

pub const USAGE: &str = "\
usage: ckbench modes [--replicas 1,3,5] [--modes zab,zab-sync,craq,chain]
                     [--mixes 100/0,90/10,50/50] [--cpu 0.25] [--period-us 10000]
                     [--duration-s 5]
                     [--warmup-s 1] [--sessions 24] [--inflight 4] [--keys 1000]
                     [--value-bytes 100] [--threads 2] [--slow-ms 0] [--slow-disk-ms 0]
                     [--rounds 1]
                     [--corekeeper-bin PATH] [--seed N] [--out DIR]

Zab or CRAQ: per replica count, a corekeeper ensemble replicated by Zab and one by
CRAQ, each server held to --cpu CPUs (cgroup v1 cpu quota, as root; --cpu 0: none),
and the same read/write mixes run against each read mode:
  zab       gets at every server (local, may be stale)
  zab-sync  sync + get (linearizable, through the leader)
  craq      gets at every server (linearizable)
  chain     every session on the chain's tail (plain chain replication's reads)
--slow-ms delays every peer link of one member that does not lead (one slow server);
--slow-disk-ms stalls each of that member's WAL flushes (one slow disk). With --rounds N
each cell runs N times on its ensemble and its row is the run with the median
throughput; `spread` is (max - min) / median of the N.";

/// How reads are served (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    Zab,
    ZabSync,
    Craq,
    Chain,
}

impl ReadMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "zab" => ReadMode::Zab,
            "zab-sync" => ReadMode::ZabSync,
            "craq" => ReadMode::Craq,
            "chain" => ReadMode::Chain,
            _ => return Err(format!("mode {s:?}: zab, zab-sync, craq or chain")),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ReadMode::Zab => "zab",
            ReadMode::ZabSync => "zab-sync",
            ReadMode::Craq => "craq",
            ReadMode::Chain => "chain",
        }
    }

    /// Whether the ensemble replicates with CRAQ.
    pub fn craq(self) -> bool {
        matches!(self, ReadMode::Craq | ReadMode::Chain)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModesConfig {
    pub replicas: Vec<usize>,
    pub modes: Vec<ReadMode>,
    /// (read, write) shares.
    pub mixes: Vec<(u32, u32)>,
    /// CPUs per server; 0: no budget.
    pub cpu: f64,
    /// The budget's scheduler period, microseconds.
    pub period_us: u64,
    pub duration_s: u64,
    pub warmup_s: u64,
    pub sessions: usize,
    pub inflight: usize,
    pub keys: u64,
    pub value_bytes: usize,
    pub threads: usize,
    pub slow_ms: u64,
    /// Every WAL flush of the slow member stalls this long (0: none).
    pub slow_disk_ms: u64,
    pub corekeeper_bin: Option<PathBuf>,
    pub seed: u64,
    pub out: Option<PathBuf>,
    pub rounds: u32,
}

fn list<T>(v: &str, f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    v.split(',').map(|x| f(x.trim())).collect()
}

fn mix(s: &str) -> Result<(u32, u32), String> {
    let (r, w) = s
        .split_once('/')
        .ok_or_else(|| format!("mix {s:?}: R/W, as 90/10"))?;
    let n = |x: &str| x.parse::<u32>().map_err(|_| format!("mix {s:?}: R/W"));
    let (r, w) = (n(r)?, n(w)?);
    if r + w == 0 || r + w > 1_000 {
        return Err(format!("mix {s:?}: shares of at most 1000 ops"));
    }
    Ok((r, w))
}

pub fn parse(args: &[String], seed: u64) -> Result<ModesConfig, String> {
    let mut c = ModesConfig {
        replicas: vec![1, 3, 5],
        modes: vec![
            ReadMode::Zab,
            ReadMode::ZabSync,
            ReadMode::Craq,
            ReadMode::Chain,
        ],
        mixes: vec![(100, 0), (90, 10), (50, 50)],
        cpu: 0.25,
        period_us: CFS_PERIOD_US,
        duration_s: 5,
        warmup_s: 1,
        sessions: 24,
        inflight: 4,
        keys: 1_000,
        value_bytes: 100,
        threads: 2,
        slow_ms: 0,
        slow_disk_ms: 0,
        corekeeper_bin: None,
        seed,
        out: None,
        rounds: 1,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |max: u64| -> Result<u64, String> {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{flag}: {v:?} is not a number up to {max}"))
        };
        match flag.as_str() {
            "--replicas" => {
                c.replicas = list(v, |x| {
                    x.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=REPLICAS_MAX).contains(n))
                        .ok_or_else(|| format!("--replicas {x}: 1 to {REPLICAS_MAX}"))
                })?
            }
            "--modes" => c.modes = list(v, ReadMode::parse)?,
            "--mixes" => c.mixes = list(v, mix)?,
            "--cpu" => {
                c.cpu = v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| (0.0..=64.0).contains(x))
                    .ok_or_else(|| format!("--cpu {v}: CPUs per server, 0 for none"))?
            }
            "--period-us" => {
                c.period_us = num(CFS_PERIOD_US_MAX)?;
                if c.period_us < CFS_QUOTA_US_MIN {
                    return Err(format!("--period-us {v}: at least {CFS_QUOTA_US_MIN}"));
                }
            }
            "--duration-s" => c.duration_s = num(crate::config::DURATION_S_MAX)?.max(1),
            "--warmup-s" => c.warmup_s = num(crate::config::DURATION_S_MAX)?,
            "--sessions" => c.sessions = num(crate::config::SESSIONS_MAX as u64)?.max(1) as usize,
            "--inflight" => c.inflight = num(crate::config::INFLIGHT_MAX as u64)?.max(1) as usize,
            "--keys" => c.keys = num(crate::workload::KEYS_MAX)?.max(1),
            "--value-bytes" => {
                c.value_bytes = num(crate::workload::VALUE_BYTES_MAX as u64)? as usize
            }
            "--threads" => c.threads = num(crate::config::THREADS_MAX as u64)?.max(1) as usize,
            "--slow-ms" => c.slow_ms = num(crate::mesh::LINK_DELAY_MS_MAX)?,
            "--slow-disk-ms" => c.slow_disk_ms = num(SLOW_DISK_MS_MAX)?,
            "--corekeeper-bin" => c.corekeeper_bin = Some(PathBuf::from(v)),
            "--seed" => c.seed = num(u64::MAX)?,
            "--out" => c.out = Some(PathBuf::from(v)),
            "--rounds" => c.rounds = num(u64::from(ROUNDS_MAX))?.max(1) as u32,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if c.replicas.is_empty() || c.modes.is_empty() || c.mixes.is_empty() {
        return Err("--replicas, --modes and --mixes each need one value at least".into());
    }
    if cells(&c).len() > CELLS_MAX {
        return Err(format!("more than {CELLS_MAX} cells"));
    }
    if (c.slow_ms > 0 || c.slow_disk_ms > 0) && c.replicas.contains(&1) {
        return Err(
            "--slow-ms and --slow-disk-ms slow one member of several: every replica count \
             must be 2 or more"
                .into(),
        );
    }
    if c.cpu > 0.0 && c.cpu * (c.period_us as f64) < CFS_QUOTA_US_MIN as f64 {
        return Err(format!(
            "--cpu {} of a {} us period is under the kernel's smallest quota ({CFS_QUOTA_US_MIN} \
             us): a longer --period-us",
            c.cpu, c.period_us
        ));
    }
    Ok(c)
}

/// One measurement: a replica count, a read mode, a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub replicas: usize,
    pub mode: ReadMode,
    pub mix: (u32, u32),
}

/// The cells in run order: by replica count, then by replication (Zab's modes on one
/// ensemble, CRAQ's on another), mode and mix.
pub fn cells(c: &ModesConfig) -> Vec<Cell> {
    let mut out = Vec::new();
    for &replicas in &c.replicas {
        for craq in [false, true] {
            for &mode in c.modes.iter().filter(|m| m.craq() == craq) {
                for &mix in &c.mixes {
                    out.push(Cell {
                        replicas,
                        mode,
                        mix,
                    });
                }
            }
        }
    }
    out
}

/// The workload of a mix.
pub fn workload(mix: (u32, u32)) -> WorkloadKind {
    match mix {
        (_, 0) => WorkloadKind::Get,
        (0, _) => WorkloadKind::Set,
        (read, write) => WorkloadKind::Mix { read, write },
    }
}

/// One row of the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub replicas: usize,
    pub mode: ReadMode,
    pub mix: String,
    pub ops_per_s: f64,
    pub read_ops_per_s: f64,
    pub write_ops_per_s: f64,
    pub read_p50_us: u64,
    pub read_p99_us: u64,
    pub write_p50_us: u64,
    pub write_p99_us: u64,
    pub errors: u64,
    /// (max - min) / median throughput over the cell's rounds (0 for one).
    #[serde(default)]
    pub spread: f64,
}

impl Row {
    pub fn of(cell: &Cell, r: &RunReport) -> Row {
        let kind = |k: OpKind| r.kinds.iter().find(|x| x.kind == k);
        let (read, write) = (kind(OpKind::Get), kind(OpKind::Set));
        Row {
            replicas: cell.replicas,
            mode: cell.mode,
            mix: format!("{}/{}", cell.mix.0, cell.mix.1),
            ops_per_s: r.ops_per_s,
            read_ops_per_s: read.map_or(0.0, |k| k.ops_per_s),
            write_ops_per_s: write.map_or(0.0, |k| k.ops_per_s),
            read_p50_us: read.map_or(0, |k| k.latency.p50_us),
            read_p99_us: read.map_or(0, |k| k.latency.p99_us),
            write_p50_us: write.map_or(0, |k| k.latency.p50_us),
            write_p99_us: write.map_or(0, |k| k.latency.p99_us),
            errors: r.errors.values().sum(),
            spread: 0.0,
        }
    }

    /// The row of the median-throughput round, with the rounds' spread.
    pub fn median(mut rounds: Vec<Row>) -> Option<Row> {
        rounds.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
        let (lo, hi) = (rounds.first()?.ops_per_s, rounds.last()?.ops_per_s);
        let mut mid = rounds.swap_remove(rounds.len() / 2);
        mid.spread = if mid.ops_per_s > 0.0 {
            (hi - lo) / mid.ops_per_s
        } else {
            0.0
        };
        Some(mid)
    }
}

/// The result table, one line per row.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "replicas  mode      mix      ops/s    reads/s   writes/s  read p50  read p99  \
         write p50  write p99  errors  spread\n",
    );
    let us = |v: u64| crate::progress::fmt_us(v);
    for r in rows {
        let _ = writeln!(
            s,
            "{:>8}  {:<8}  {:<6} {:>8.0} {:>10.0} {:>10.0} {:>9} {:>9} {:>10} {:>10} {:>7} {:>6.0}%",
            r.replicas,
            r.mode.name(),
            r.mix,
            r.ops_per_s,
            r.read_ops_per_s,
            r.write_ops_per_s,
            us(r.read_p50_us),
            us(r.read_p99_us),
            us(r.write_p50_us),
            us(r.write_p99_us),
            r.errors,
            100.0 * r.spread
        );
    }
    s
}

/// `cpu.cfs_quota_us` for `cpu` CPUs in periods of `period_us`.
pub fn quota_us(cpu: f64, period_us: u64) -> u64 {
    ((cpu * period_us as f64).round() as u64).max(CFS_QUOTA_US_MIN)
}

/// A cgroup v1 `cpu` group holding one server; removed when dropped (its processes
/// gone back to the root group).
struct CpuGroup {
    dir: PathBuf,
}

impl CpuGroup {
    fn limit(name: &str, pid: u32, cpu: f64, period_us: u64) -> Result<CpuGroup, String> {
        let dir = Path::new(CGROUP_CPU_ROOT).join(name);
        let hint = "per-server CPU budgets need cgroup v1's cpu controller writable (run as \
                    root), or --cpu 0 to run without them";
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("creating {}: {e} ({hint})", dir.display()))?;
        let g = CpuGroup { dir };
        let write = |file: &str, v: String| {
            let p = g.dir.join(file);
            std::fs::write(&p, v).map_err(|e| format!("writing {}: {e} ({hint})", p.display()))
        };
        write("cpu.cfs_period_us", period_us.to_string())?;
        write("cpu.cfs_quota_us", quota_us(cpu, period_us).to_string())?;
        write("cgroup.procs", pid.to_string())?;
        Ok(g)
    }
}

/// Removes the groups of earlier runs that were killed before they could (named
/// `ckbench-modes-<pid>-...` after a process that is gone).
fn remove_stale_groups() {
    let Ok(dirs) = std::fs::read_dir(CGROUP_CPU_ROOT) else {
        return;
    };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("ckbench-modes-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            drop(CpuGroup { dir: d.path() });
        }
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        let root = Path::new(CGROUP_CPU_ROOT).join("cgroup.procs");
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write(&root, pid);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The ensembles' directories (removed at the end).
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Result<WorkDir, String> {
        let dir = std::env::temp_dir().join(format!("ckbench-modes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Progress lines on stderr, each with its cell's name.
struct Labelled(String);

impl ProgressSink for Labelled {
    fn interval(&mut self, line: &ProgressLine) {
        eprintln!("{} {}", self.0, format_line(line));
    }
}

/// The member whose `mntr` says it is the chain's tail.
/// The member `--slow-ms` and `--slow-disk-ms` slow (1-based): the last one that does
/// not lead, so the case is "one slow follower" whichever member won the election (a slow Zab leader
/// slows every write; in CRAQ every member is on the write path anyway).
fn slow_member(servers: &[String]) -> u32 {
    let leads = |s: &String| {
        crate::servers::four_letter(s, "srvr")
            .ok()
            .and_then(|t| crate::ensemble::parse_mode(&t))
            == Some(crate::ensemble::Mode::Leader)
    };
    (0..servers.len())
        .rev()
        .find(|&i| !leads(&servers[i]))
        .map_or(servers.len(), |i| i + 1) as u32
}

fn chain_tail(servers: &[String]) -> Result<String, String> {
    for s in servers {
        let text = crate::servers::four_letter(s, "mntr")?;
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        if let (Some(p), Some(n)) = (get("ck_chain_position"), get("ck_chain_members"))
            && p + 1 == n
        {
            return Ok(s.clone());
        }
    }
    Err("no member says it is the chain's tail (ck_chain_position)".into())
}

fn run_config(c: &ModesConfig, cell: &Cell, servers: Vec<String>) -> RunConfig {
    let mut rc = RunConfig::defaults(c.seed);
    rc.target = Target::Corekeeper;
    rc.label = format!("{} x{}", cell.mode.name(), cell.replicas);
    rc.connect = ConnectString {
        servers,
        chroot: None,
    };
    rc.spread = Spread::RoundRobin;
    rc.workload.kind = workload(cell.mix);
    rc.workload.key_count = c.keys;
    rc.workload.value_bytes = c.value_bytes;
    rc.sessions = c.sessions;
    rc.load = Load::Closed {
        inflight: c.inflight,
    };
    rc.warmup_s = c.warmup_s;
    rc.duration_s = c.duration_s;
    rc.threads = c.threads;
    rc.sync_reads = cell.mode == ReadMode::ZabSync;
    rc
}

/// Runs every cell; returns the rows (and writes the outputs under `--out`).
pub fn run(c: &ModesConfig) -> Result<Vec<Row>, String> {
    let bin = crate::servers::find_corekeeper_bin(c.corekeeper_bin.as_deref())?;
    let work = WorkDir::new()?;
    let log_dir = c.out.clone().unwrap_or_else(|| work.0.clone());
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let plan = cells(c);
    let mut rows = Vec::new();
    let mut i = 0;
    while i < plan.len() {
        let (replicas, craq) = (plan[i].replicas, plan[i].mode.craq());
        let group: Vec<Cell> = plan[i..]
            .iter()
            .take_while(|x| x.replicas == replicas && x.mode.craq() == craq)
            .copied()
            .collect();
        i += group.len();
        let dir = work
            .0
            .join(format!("x{replicas}-{}", if craq { "craq" } else { "zab" }));
        let ck = CkSpec {
            bin: bin.clone(),
            args: Vec::new(),
            cores: 1,
            settings: Vec::new(),
        };
        let o = Options {
            nodes: replicas,
            mesh: c.slow_ms > 0,
            // Chain mode reads at the tail of the same CRAQ chain.
            replication: if craq { "craq" } else { "zab" },
            fsync_stall_files: c.slow_disk_ms > 0,
            ..Options::default()
        };
        let (d, mesh) = crate::ensemble::start_corekeeper_with(&dir, &log_dir, &ck, o)?;
        let mut groups = Vec::new();
        if c.cpu > 0.0 {
            remove_stale_groups();
            for (n, node) in d.nodes.iter().enumerate() {
                let name = format!("ckbench-modes-{}-node{}", std::process::id(), n + 1);
                groups.push(CpuGroup::limit(&name, node.pid(), c.cpu, c.period_us)?);
            }
        }
        let slow = if c.slow_ms > 0 || c.slow_disk_ms > 0 {
            slow_member(&d.servers())
        } else {
            0 // nobody: no member is slowed
        };
        if c.slow_disk_ms > 0 {
            eprintln!(
                "x{replicas}: node{slow}'s WAL flushes stall {} ms",
                c.slow_disk_ms
            );
            let f = crate::ensemble::fsync_stall_file(&dir, slow);
            std::fs::write(&f, c.slow_disk_ms.to_string())
                .map_err(|e| format!("{}: {e}", f.display()))?;
        }
        if let Some(m) = &mesh {
            eprintln!(
                "x{replicas}: node{slow} is the slow one (every peer link {} ms)",
                c.slow_ms
            );
            for other in (1..=replicas as u32).filter(|&o| o != slow) {
                m.set(
                    other,
                    slow,
                    crate::mesh::LinkFault {
                        delay_ms: c.slow_ms,
                        ..Default::default()
                    },
                );
            }
        }
        for cell in &group {
            let servers = match cell.mode {
                // One server is standalone: it is the whole chain.
                ReadMode::Chain if replicas > 1 => vec![chain_tail(&d.servers())?],
                _ => d.servers(),
            };
            let rc = run_config(c, cell, servers.clone());
            let mut rounds = Vec::new();
            for round in 0..c.rounds {
                let mut progress = Labelled(format!(
                    "x{} {} {}/{} round {}",
                    cell.replicas,
                    cell.mode.name(),
                    cell.mix.0,
                    cell.mix.1,
                    round + 1
                ));
                let zk = ZkConnector::new(None)
                    .with_failover(servers.clone())
                    .with_sync_reads(rc.sync_reads);
                let outcome = crate::runner::run(&rc, &zk, &mut progress)
                    .map_err(|e| format!("{}: {e}", rc.label))?;
                let report = RunReport::new(&rc, &outcome.stats, outcome.warnings);
                rounds.push(Row::of(cell, &report));
            }
            let row = Row::median(rounds).expect("at least one round");
            eprintln!(
                "{}",
                table(std::slice::from_ref(&row))
                    .lines()
                    .nth(1)
                    .unwrap_or("")
            );
            rows.push(row);
        }
        drop(groups);
        drop(mesh);
        drop(d);
    }
    if let Some(out) = &c.out {
        write_outputs(c, &rows, out)?;
    }
    Ok(rows)
}

fn write_outputs(c: &ModesConfig, rows: &[Row], out: &Path) -> Result<(), String> {
    let json = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
    let path = out.join("modes.json");
    std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    for &(r, w) in &c.mixes {
        let mix = format!("{r}/{w}");
        let series: Vec<(String, Vec<(f64, f64)>)> = c
            .modes
            .iter()
            .map(|m| {
                let points = rows
                    .iter()
                    .filter(|x| x.mode == *m && x.mix == mix)
                    .map(|x| {
                        (
                            x.replicas as f64,
                            if r > 0 {
                                x.read_ops_per_s
                            } else {
                                x.write_ops_per_s
                            },
                        )
                    })
                    .collect();
                (m.name().to_string(), points)
            })
            .collect();
        let what = if r > 0 { "reads" } else { "writes" };
        let path = out.join(format!("modes-{r}-{w}.svg"));
        crate::plot::lines_svg(
            &path,
            &format!(
                "{what}/s against replicas, mix {mix}, {} CPU per server",
                c.cpu
            ),
            "replicas",
            &format!("{what}/s"),
            &series,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse(&[], 7).unwrap();
        assert_eq!(c.replicas, [1, 3, 5]);
        assert_eq!(c.modes.len(), 4);
        assert_eq!(c.mixes, [(100, 0), (90, 10), (50, 50)]);
        let c = parse(
            &args("--replicas 3 --modes craq,zab-sync --mixes 90/10 --cpu 0.5"),
            1,
        )
        .unwrap();
        assert_eq!((c.replicas.as_slice(), c.cpu), (&[3][..], 0.5));
        assert_eq!(c.modes, [ReadMode::Craq, ReadMode::ZabSync]);
        for bad in [
            "--replicas 0",
            "--replicas 9",
            "--modes paxos",
            "--mixes 90",
            "--mixes 0/0",
            "--cpu -1",
            "--slow-ms 5",
            "--bogus 1",
            "--cpu",
            "--period-us 999",
            "--slow-disk-ms 100",
            "--replicas 3 --slow-disk-ms 60001",
            "--cpu 0.25 --period-us 3000",
        ] {
            assert!(parse(&args(bad), 1).is_err(), "{bad}");
        }
        assert!(parse(&args("--replicas 3,5 --slow-ms 5"), 1).is_ok());
        let c = parse(&args("--cpu 0.25 --period-us 4000"), 1).unwrap();
        assert_eq!(quota_us(c.cpu, c.period_us), 1_000);
    }

    #[test]
    fn cells_group_by_ensemble_and_mixes_become_workloads() {
        let c = parse(
            &args("--replicas 1,3 --modes craq,zab --mixes 100/0,50/50"),
            1,
        )
        .unwrap();
        let cs = cells(&c);
        assert_eq!(cs.len(), 8);
        // Zab's modes first on each replica count, so each ensemble starts once.
        let order: Vec<(usize, bool)> = cs.iter().map(|x| (x.replicas, x.mode.craq())).collect();
        assert_eq!(
            order,
            [
                (1, false),
                (1, false),
                (1, true),
                (1, true),
                (3, false),
                (3, false),
                (3, true),
                (3, true)
            ]
        );
        assert_eq!(workload((100, 0)), WorkloadKind::Get);
        assert_eq!(workload((0, 100)), WorkloadKind::Set);
        assert_eq!(
            workload((90, 10)),
            WorkloadKind::Mix {
                read: 90,
                write: 10
            }
        );
    }

    #[test]
    fn quotas_and_the_table() {
        assert_eq!(quota_us(0.25, CFS_PERIOD_US), 2_500);
        assert_eq!(quota_us(2.0, CFS_PERIOD_US), 20_000);
        assert_eq!(quota_us(0.25, 4_000), 1_000);
        assert_eq!(
            quota_us(0.0001, CFS_PERIOD_US),
            1_000,
            "the kernel's minimum"
        );
        let row = Row {
            replicas: 3,
            mode: ReadMode::Craq,
            mix: "90/10".into(),
            ops_per_s: 1000.0,
            read_ops_per_s: 900.0,
            write_ops_per_s: 100.0,
            read_p50_us: 150,
            read_p99_us: 900,
            write_p50_us: 2_500,
            write_p99_us: 9_000,
            errors: 0,
            spread: 0.0,
        };
        let t = table(std::slice::from_ref(&row));
        assert!(t.lines().nth(1).unwrap().contains("craq"), "{t}");
        assert_eq!(t.lines().count(), 2);
        // The median of three rounds, and how far apart they were.
        let at = |ops: f64| Row {
            ops_per_s: ops,
            ..row.clone()
        };
        let m = Row::median(vec![at(900.0), at(1200.0), at(1000.0)]).unwrap();
        assert_eq!(m.ops_per_s, 1000.0);
        assert!((m.spread - 0.3).abs() < 1e-9, "{}", m.spread);
        assert!(Row::median(Vec::new()).is_none());
    }
}
