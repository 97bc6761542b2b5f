//! `ckbench compare --systems ... --matrix ...`: start the systems, run the same matrix
//! of workloads against each, interleaved, and put them side by side.
//!
//! Contract:
//! - every system is started once, data under one work directory, logs under
//!   `--out DIR/logs` (else the work directory); all are stopped (and the work directory
//!   removed) however the comparison ends;
//! - shape `standalone`: one server per system ([`crate::servers`]) on its own loopback
//!   address; shape `3node`: a 3-node ensemble per system ([`crate::ensemble`]:
//!   ZooKeeper on 127.0.0.21-23, corekeeper on 127.0.0.31-33, same tick and limits),
//!   the connect string lists all three and sessions go round-robin over them (writes
//!   reach the leader through followers, as ZooKeeper clients' do);
//! - the schedule is cell by cell, round by round, and within a round system by system
//!   (A B A B ...): slow drift of the machine (other jobs, thermal, page cache) lands on
//!   every system alike instead of on whichever ran last;
//! - every run is one `ckbench run` (same workload, seed and connection count per
//!   system), its CPU use measured from `/proc/<pid>/stat` for every server process
//!   (per node and in total) and ckbench;
//! - an ensemble's roles are checked after every run (`mntr`'s `zk_server_state`): a
//!   leader change becomes a warning in that run's report;
//! - the summary gives, per cell and system, the median over rounds and the spread
//!   (min..max), and, with two systems, the ratio of the second's median to the first's;
//! - plots per cell take, per system, the round with the median throughput.
//!
//! Limits: [`ROUNDS_MAX`], [`CELLS_MAX`], [`SYSTEMS_MAX`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{ConnectString, DURATION_S_MAX, Format, INFLIGHT_MAX, Load, RunConfig, Spread};
use crate::config::{SESSIONS_MAX, THREADS_MAX, Target};
use crate::output;
use crate::progress::{ProgressLine, ProgressSink, fmt_us};
use crate::report::RunReport;
use crate::runner;
use crate::server_stats;
use crate::server_stats::ServerStats;
use crate::servers::{Deployment, LaunchSpec, ServerProcess, System, find_corekeeper_bin};
use crate::workload::{KEYS_MAX, VALUE_BYTES_MAX, WorkloadKind};
use crate::zk::ZkConnector;

/// Most rounds per cell.
pub const ROUNDS_MAX: u32 = 100;
/// Most cells in a matrix.
pub const CELLS_MAX: usize = 64;
/// Most systems compared at once.
pub const SYSTEMS_MAX: usize = 2;
/// Most corekeeper executors asked for.
pub const CORES_MAX: usize = 256;

/// Cluster shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    #[serde(rename = "standalone")]
    Standalone,
    /// A 3-node ensemble: ZooKeeper only until corekeeper replicates.
    #[serde(rename = "3node")]
    ThreeNode,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Standalone => "standalone",
            Shape::ThreeNode => "3node",
        }
    }
}

/// One workload of the matrix: `KIND:SESSIONSxINFLIGHT`, e.g. `get:8x16`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub kind: WorkloadKind,
    pub sessions: usize,
    pub inflight: usize,
}

impl Cell {
    /// Parses `get:8x16` or `mix:90/10:8x16`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            || format!("bad matrix cell {s:?}: expected KIND:SESSIONSxINFLIGHT, e.g. get:8x16");
        let (kind, shape) = s.rsplit_once(':').ok_or_else(bad)?;
        let (sessions, inflight) = shape.split_once('x').ok_or_else(bad)?;
        let kind = WorkloadKind::parse(kind)?;
        if kind.is_recipe() {
            return Err(format!(
                "matrix cell {s:?}: recipes (watch-fanout, lock) are not in the matrix; \
                 use ckbench run for them"
            ));
        }
        let n = |v: &str, max: usize| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("matrix cell {s:?}: {v:?} is not in [1, {max}]"))
        };
        Ok(Cell {
            kind,
            sessions: n(sessions, SESSIONS_MAX)?,
            inflight: n(inflight, INFLIGHT_MAX)?,
        })
    }

    /// `get 8x16`, for tables.
    pub fn name(&self) -> String {
        format!("{} {}x{}", self.kind, self.sessions, self.inflight)
    }
}

/// Everything `ckbench compare --systems ...` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    pub systems: Vec<System>,
    pub shape: Shape,
    pub cells: Vec<Cell>,
    pub rounds: u32,
    pub warmup_s: u64,
    pub duration_s: u64,
    /// Seconds of unmeasured load on each system before the schedule (JIT, caches).
    pub prime_s: u64,
    pub value_bytes: usize,
    pub keys: u64,
    pub threads: usize,
    pub seed: u64,
    /// corekeeper's executors (0: the server's default).
    pub cores: usize,
    /// Extra `key=value` lines for corekeeper's zoo.cfg (`--ck-set`).
    pub ck_settings: Vec<String>,
    pub corekeeper_bin: Option<PathBuf>,
    /// Where the servers' data goes (default: a fresh directory under the temp dir).
    pub work_dir: Option<PathBuf>,
    pub out: Option<PathBuf>,
}

impl MatrixConfig {
    pub fn defaults(seed: u64) -> Self {
        MatrixConfig {
            systems: vec![System::Zookeeper, System::Corekeeper],
            shape: Shape::Standalone,
            cells: ["get:1x1", "set:1x1", "get:8x16", "set:8x16"]
                .iter()
                .map(|c| Cell::parse(c).expect("default cells parse"))
                .collect(),
            rounds: 3,
            warmup_s: 1,
            duration_s: 5,
            prime_s: 3,
            value_bytes: 100,
            keys: 1000,
            threads: 2,
            seed,
            cores: 0,
            ck_settings: Vec::new(),
            corekeeper_bin: None,
            work_dir: None,
            out: None,
        }
    }

    /// The `ckbench run` configuration of `cell` against `system` at `servers` (the
    /// connect string; sessions spread round-robin over it).
    pub fn run_config(&self, cell: &Cell, system: System, servers: &[String]) -> RunConfig {
        let mut c = RunConfig::defaults(self.seed);
        c.target = match system {
            System::Zookeeper => Target::Zookeeper,
            System::Corekeeper => Target::Corekeeper,
        };
        c.label = system.name().to_string();
        c.connect = ConnectString {
            servers: servers.to_vec(),
            chroot: None,
        };
        c.spread = Spread::RoundRobin;
        c.workload.kind = cell.kind;
        c.workload.value_bytes = self.value_bytes;
        c.workload.key_count = self.keys;
        c.sessions = cell.sessions;
        c.load = Load::Closed {
            inflight: cell.inflight,
        };
        c.warmup_s = self.warmup_s;
        c.duration_s = self.duration_s;
        c.threads = self.threads;
        c.format = Format::Text;
        c
    }

    /// Runs in schedule order: (cell, round, system) indices, systems interleaved.
    pub fn schedule(&self) -> Vec<(usize, u32, usize)> {
        let mut s = Vec::new();
        for c in 0..self.cells.len() {
            for r in 0..self.rounds {
                for y in 0..self.systems.len() {
                    s.push((c, r, y));
                }
            }
        }
        s
    }
}

/// Parses the flags of `ckbench compare --systems ...` (as split by `config`).
pub fn parse(flags: &[(String, String)], default_seed: u64) -> Result<MatrixConfig, String> {
    let mut c = MatrixConfig::defaults(default_seed);
    let num = |f: &str, v: &str, min: u64, max: u64| -> Result<u64, String> {
        v.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("{f}: {v:?} is not a number in [{min}, {max}]"))
    };
    for (flag, v) in flags {
        let f = flag.as_str();
        match f {
            "--systems" => {
                c.systems = v.split(',').map(System::parse).collect::<Result<_, _>>()?;
                let mut dedup = c.systems.clone();
                dedup.sort();
                dedup.dedup();
                if dedup.len() != c.systems.len() || c.systems.len() > SYSTEMS_MAX {
                    return Err(format!(
                        "--systems {v}: name each of zookeeper, corekeeper at most once"
                    ));
                }
            }
            "--shape" => {
                c.shape = match v.as_str() {
                    "standalone" => Shape::Standalone,
                    "3node" => Shape::ThreeNode,
                    _ => return Err(format!("--shape: {v:?} is not standalone or 3node")),
                }
            }
            "--matrix" => {
                c.cells = v.split(',').map(Cell::parse).collect::<Result<_, _>>()?;
                if c.cells.len() > CELLS_MAX {
                    return Err(format!("--matrix: at most {CELLS_MAX} cells"));
                }
            }
            "--rounds" => c.rounds = num(f, v, 1, ROUNDS_MAX.into())? as u32,
            "--warmup-s" => c.warmup_s = num(f, v, 0, DURATION_S_MAX)?,
            "--duration-s" => c.duration_s = num(f, v, 1, DURATION_S_MAX)?,
            "--prime-s" => c.prime_s = num(f, v, 0, DURATION_S_MAX)?,
            "--value-bytes" => c.value_bytes = num(f, v, 0, VALUE_BYTES_MAX as u64)? as usize,
            "--keys" => c.keys = num(f, v, 1, KEYS_MAX)?,
            "--threads" => c.threads = num(f, v, 1, THREADS_MAX as u64)? as usize,
            "--seed" => c.seed = num(f, v, 0, u64::MAX)?,
            "--cores" if v == "default" => c.cores = 0,
            "--cores" => c.cores = num(f, v, 1, CORES_MAX as u64)? as usize,
            "--ck-set" => {
                if !v.contains('=') || v.contains('\n') {
                    return Err(format!("--ck-set: expected KEY=VALUE, got {v:?}"));
                }
                c.ck_settings.push(v.to_string());
            }
            "--corekeeper-bin" => c.corekeeper_bin = Some(PathBuf::from(v)),
            "--work-dir" => c.work_dir = Some(PathBuf::from(v)),
            "--out" => c.out = Some(PathBuf::from(v)),
            "" => {
                return Err(format!(
                    "unexpected argument {v:?}: compare takes RUN.json files or --systems, \
                     not both"
                ));
            }
            _ => return Err(format!("unknown option {f} for compare --systems")),
        }
    }
    if c.systems.is_empty() || c.cells.is_empty() {
        return Err("compare --systems needs at least one system and one matrix cell".into());
    }

    Ok(c)
}

/// One run of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub cell: usize,
    pub round: u32,
    pub system: String,
    pub report: RunReport,
    /// Wall time of the whole run (connect, setup, warm-up, measure, cleanup).
    pub wall_s: f64,
    /// CPU seconds of the server processes together over `wall_s` (None if /proc was
    /// unreadable for any).
    pub server_cpu_s: Option<f64>,
    /// CPU seconds of each server process (node `i` is `node{i+1}`) over `wall_s`;
    /// one entry for a standalone server.
    #[serde(default)]
    pub node_cpu_s: Vec<Option<f64>>,
    /// CPU seconds of ckbench itself over `wall_s`.
    pub bench_cpu_s: Option<f64>,
}

impl Measurement {
    /// Cores' worth of CPU the server used (CPU seconds per wall second).
    pub fn server_cores(&self) -> Option<f64> {
        self.server_cpu_s.map(|c| c / self.wall_s.max(1e-9))
    }

    /// Cores' worth of CPU node `i` used.
    pub fn node_cores(&self, i: usize) -> Option<f64> {
        self.node_cpu_s
            .get(i)
            .copied()
            .flatten()
            .map(|c| c / self.wall_s.max(1e-9))
    }

    pub fn bench_cores(&self) -> Option<f64> {
        self.bench_cpu_s.map(|c| c / self.wall_s.max(1e-9))
    }

    pub fn errors(&self) -> u64 {
        self.report.errors.values().sum()
    }
}

/// The median of `v` (mean of the middle two for an even count); None when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// Median, min and max of `v`.
fn spread(v: &[f64]) -> Option<(f64, f64, f64)> {
    let med = median(v)?;
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((med, lo, hi))
}

/// Reads one number off a run (None: not measured).
type Getter = Box<dyn Fn(&Measurement) -> Option<f64>>;

/// One row of the table: its name, how to read it off a run, its unit.
struct Metric {
    name: String,
    get: Getter,
    unit: Unit,
}

fn metric(
    name: impl Into<String>,
    unit: Unit,
    get: impl Fn(&Measurement) -> Option<f64> + 'static,
) -> Metric {
    Metric {
        name: name.into(),
        get: Box::new(get),
        unit,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Rate,
    Micros,
    Cores,
    Count,
}

/// The rows of a cell; with `nodes` > 1 (an ensemble) the server CPU row is the total
/// and one row per node follows it.
fn metrics(nodes: usize) -> Vec<Metric> {
    let mut m = vec![
        metric("ops/s", Unit::Rate, |m| Some(m.report.ops_per_s)),
        metric("p50", Unit::Micros, |m| {
            Some(m.report.latency.p50_us as f64)
        }),
        metric("p99", Unit::Micros, |m| {
            Some(m.report.latency.p99_us as f64)
        }),
        metric("p99.9", Unit::Micros, |m| {
            Some(m.report.latency.p999_us as f64)
        }),
        metric("server cpu", Unit::Cores, Measurement::server_cores),
    ];
    if nodes > 1 {
        for i in 0..nodes {
            m.push(metric(
                format!(" node{} cpu", i + 1),
                Unit::Cores,
                move |m| m.node_cores(i),
            ));
        }
    }
    m.push(metric("ckbench cpu", Unit::Cores, Measurement::bench_cores));
    m.push(metric("errors", Unit::Count, |m| Some(m.errors() as f64)));
    m
}

fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Rate => format!("{v:.0}"),
        Unit::Micros => fmt_us(v.round() as u64),
        Unit::Cores => format!("{v:.2}"),
        Unit::Count => format!("{v:.0}"),
    }
}

fn cell_text((med, lo, hi): (f64, f64, f64), unit: Unit) -> String {
    if unit == Unit::Count || (lo == hi) {
        return fmt_value(med, unit);
    }
    format!(
        "{} ({}..{})",
        fmt_value(med, unit),
        fmt_value(lo, unit),
        fmt_value(hi, unit)
    )
}

/// The side-by-side table: per cell and metric, each system's median (min..max over
/// rounds) and each later system's ratio to the first (`corekeeper/zookeeper`); one
/// system gets no ratio column. Cells run on an ensemble get per-node CPU rows.
pub fn summary_table(cfg: &MatrixConfig, runs: &[Measurement]) -> String {
    const W: usize = 28;
    let names: Vec<&str> = cfg.systems.iter().map(|s| s.name()).collect();
    let mut t = String::new();
    // Wide enough for the longest cell name (`mix:90/10 8x16`) and a space.
    let cw = cfg
        .cells
        .iter()
        .map(|c| c.name().len() + 1)
        .max()
        .unwrap_or(0)
        .max(14);
    let _ = write!(t, "{:<cw$}{:<13}", "cell", "metric");
    for n in &names {
        let _ = write!(t, "{n:>W$}");
    }
    let ratio_w = names
        .iter()
        .map(|n| n.len() + names[0].len() + 3)
        .max()
        .unwrap_or(0);
    for n in names.iter().skip(1) {
        let _ = write!(t, "{:>ratio_w$}", format!("{n}/{}", names[0]));
    }
    t.push('\n');
    for (ci, cell) in cfg.cells.iter().enumerate() {
        let nodes = runs
            .iter()
            .filter(|m| m.cell == ci)
            .map(|m| m.node_cpu_s.len())
            .max()
            .unwrap_or(1);
        for (mi, Metric { name, get, unit }) in metrics(nodes).into_iter().enumerate() {
            let label = if mi == 0 { cell.name() } else { String::new() };
            let _ = write!(t, "{label:<cw$}{name:<13}");
            let meds: Vec<Option<(f64, f64, f64)>> = names
                .iter()
                .map(|n| {
                    let v: Vec<f64> = runs
                        .iter()
                        .filter(|m| m.cell == ci && m.system == *n)
                        .filter_map(&get)
                        .collect();
                    spread(&v)
                })
                .collect();
            for m in &meds {
                let s = m.map_or("-".into(), |m| cell_text(m, unit));
                let _ = write!(t, "{s:>W$}");
            }
            for m in meds.iter().skip(1) {
                let ratio = match (meds[0], m) {
                    (Some(base), Some(v)) if base.0 > 0.0 && unit != Unit::Count => {
                        format!("{:.2}x", v.0 / base.0)
                    }
                    _ => "-".into(),
                };
                let _ = write!(t, "{ratio:>ratio_w$}");
            }
            t.push('\n');
        }
    }
    t
}

/// Per system, the round of `cell` with the median throughput (for the plots).
pub fn median_runs<'a>(
    cfg: &MatrixConfig,
    runs: &'a [Measurement],
    cell: usize,
) -> Vec<&'a Measurement> {
    cfg.systems
        .iter()
        .filter_map(|s| {
            let mut mine: Vec<&Measurement> = runs
                .iter()
                .filter(|m| m.cell == cell && m.system == s.name())
                .collect();
            mine.sort_by(|a, b| a.report.ops_per_s.total_cmp(&b.report.ops_per_s));
            mine.get(mine.len().saturating_sub(1) / 2).copied()
        })
        .collect()
}

/// Ignores the per-second lines of the single runs (the matrix prints one line a run).
struct Quiet;

impl ProgressSink for Quiet {
    fn interval(&mut self, _line: &ProgressLine) {}
}

/// Removes the work directory when the comparison ends, after the servers stopped.
struct WorkDir {
    path: PathBuf,
    created: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn fmt_eta(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// What a comparison measured, and on what.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixOutcome {
    /// Every run, in schedule order.
    pub runs: Vec<Measurement>,
    /// Per system, in `--systems` order: where it ran (addresses; an ensemble's roles).
    pub deployments: Vec<String>,
}

/// Runs the whole comparison: starts the systems, runs the schedule, stops them.
pub fn run(cfg: &MatrixConfig) -> Result<MatrixOutcome, String> {
    let work = match &cfg.work_dir {
        Some(p) => WorkDir {
            path: p.clone(),
            created: false,
        },
        None => WorkDir {
            path: std::env::temp_dir().join(format!("ckbench-compare-{}", std::process::id())),
            created: true,
        },
    };
    let log_dir = match &cfg.out {
        Some(out) => out.join("logs"),
        None => work.path.join("logs"),
    };
    let systems = start_all(cfg, &work.path, &log_dir)?;
    for d in &systems {
        prime(cfg, d)?;
    }
    let schedule = cfg.schedule();
    let started = Instant::now();
    let mut runs = Vec::with_capacity(schedule.len());
    for (i, &(c, r, y)) in schedule.iter().enumerate() {
        let cell = &cfg.cells[c];
        let d = &systems[y];
        let eta = if i == 0 {
            (schedule.len() as u64 * (cfg.warmup_s + cfg.duration_s + 1)) as f64
        } else {
            started.elapsed().as_secs_f64() / i as f64 * (schedule.len() - i) as f64
        };
        eprintln!(
            "[{}/{}] {} round {}/{} {} on {} (ETA {})",
            i + 1,
            schedule.len(),
            cell.name(),
            r + 1,
            cfg.rounds,
            d.system.name(),
            d.servers().join(","),
            fmt_eta(eta)
        );
        let m = run_one(cfg, c, r, d)?;
        eprintln!(
            "        {:.0} ops/s, p50 {}, p99 {}, errors {}, server {} cores, ckbench {} cores",
            m.report.ops_per_s,
            fmt_us(m.report.latency.p50_us),
            fmt_us(m.report.latency.p99_us),
            m.errors(),
            m.server_cores().map_or("?".into(), |c| format!("{c:.2}")),
            m.bench_cores().map_or("?".into(), |c| format!("{c:.2}")),
        );
        for w in m.report.warnings.iter().filter(|w| w.contains(ROLE_CHANGE)) {
            eprintln!("        warning: {w}");
        }
        runs.push(m);
    }
    let deployments = systems.iter().map(Deployment::describe).collect();
    drop(systems);
    Ok(MatrixOutcome { runs, deployments })
}

fn start_all(cfg: &MatrixConfig, work: &Path, log_dir: &Path) -> Result<Vec<Deployment>, String> {
    let ck_bin = if cfg.systems.contains(&System::Corekeeper) {
        Some(find_corekeeper_bin(cfg.corekeeper_bin.as_deref())?)
    } else {
        None
    };
    let mut systems = Vec::new();
    for (i, system) in cfg.systems.iter().enumerate() {
        let dir = work.join(system.name());
        // On error the systems started so far are dropped, which stops them.
        let d = match cfg.shape {
            Shape::Standalone => {
                let spec = LaunchSpec {
                    system: *system,
                    // 127.0.0.2, .3: each system on its own address, clear in `cons` and
                    // logs.
                    host: format!("127.0.0.{}", i + 2),
                    dir,
                    corekeeper_bin: ck_bin.clone(),
                    cores: cfg.cores,
                    settings: cfg.ck_settings.clone(),
                    log: Some(log_dir.join(format!("{}.log", system.name()))),
                };
                eprintln!(
                    "starting {} on {} (data in {})",
                    system.name(),
                    spec.host,
                    spec.dir.display()
                );
                Deployment::standalone(ServerProcess::start(&spec)?)
            }
            Shape::ThreeNode => {
                let base = match system {
                    System::Zookeeper => crate::ensemble::HOST_OCTET_BASE,
                    System::Corekeeper => crate::ensemble::CK_HOST_OCTET_BASE,
                };
                eprintln!(
                    "starting a {}-node {} ensemble on 127.0.0.{}.. (data in {}, \
                     logs in {})",
                    crate::ensemble::ENSEMBLE_NODES,
                    system.name(),
                    base + 1,
                    dir.display(),
                    log_dir.display()
                );
                match system {
                    System::Zookeeper => crate::ensemble::start(&dir, log_dir)?,
                    System::Corekeeper => {
                        let ck = crate::ensemble::CkSpec {
                            bin: ck_bin.clone().ok_or("corekeeper: no binary")?,
                            args: Vec::new(),
                            cores: cfg.cores,
                            settings: cfg.ck_settings.clone(),
                        };
                        crate::ensemble::start_corekeeper(&dir, log_dir, &ck)?
                    }
                }
            }
        };
        eprintln!("ready: {}", d.describe());
        systems.push(d);
    }
    Ok(systems)
}

/// Unmeasured load on `d` (every cell's workload in turn, about `prime_s` in all), so
/// the first measured run does not pay for a cold JIT or cold caches.
fn prime(cfg: &MatrixConfig, d: &Deployment) -> Result<(), String> {
    if cfg.prime_s == 0 {
        return Ok(());
    }
    eprintln!(
        "priming {} for {} s (not measured: JIT, caches)",
        d.system.name(),
        cfg.prime_s
    );
    // Whole seconds per cell (the runner's unit), at least one.
    let per_cell_s = cfg.prime_s.div_ceil(cfg.cells.len() as u64).max(1);
    for cell in &cfg.cells {
        let mut rc = cfg.run_config(cell, d.system, &d.servers());
        rc.warmup_s = 0;
        rc.duration_s = per_cell_s;
        let zk = ZkConnector::new(None).with_failover(rc.connect.servers.clone());
        runner::run(&rc, &zk, &mut Quiet)
            .map_err(|e| format!("priming {}: {e}", d.system.name()))?;
    }
    Ok(())
}

/// Marks the warnings [`role_changes`] makes.
pub const ROLE_CHANGE: &str = "ensemble roles changed";

/// Warnings for the members of an ensemble whose `mntr` after a run reports another
/// role (`zk_server_state`) than at start-up (`leader`: the leader's index then).
pub fn role_changes(servers: &[String], leader: usize, stats: &[ServerStats]) -> Vec<String> {
    servers
        .iter()
        .enumerate()
        .filter_map(|(i, addr)| {
            let was = if i == leader { "leader" } else { "follower" };
            let now = stats
                .iter()
                .find(|s| s.server == *addr)?
                .after
                .get("zk_server_state")?;
            (now != was).then(|| {
                format!(
                    "{ROLE_CHANGE}: node{} {addr} is {now} after this run, was {was} at \
                     start-up (a leader election happened; this run's numbers include it)",
                    i + 1
                )
            })
        })
        .collect()
}

fn run_one(
    cfg: &MatrixConfig,
    cell: usize,
    round: u32,
    d: &Deployment,
) -> Result<Measurement, String> {
    let rc = cfg.run_config(&cfg.cells[cell], d.system, &d.servers());
    let servers = rc.connect.servers.clone();
    let mut warnings = Vec::new();
    let before = server_stats::snapshot(&servers, &mut warnings);
    let (srv0, me0) = (d.cpu_s(), crate::servers::cpu_s("/proc/self/stat").ok());
    let t0 = Instant::now();
    let zk = ZkConnector::new(None).with_failover(servers.clone());
    let outcome = runner::run(&rc, &zk, &mut Quiet).map_err(|e| {
        format!(
            "{} round {} on {}: {e}",
            cfg.cells[cell].name(),
            round + 1,
            d.system.name()
        )
    })?;
    let wall_s = t0.elapsed().as_secs_f64();
    let (srv1, me1) = (d.cpu_s(), crate::servers::cpu_s("/proc/self/stat").ok());
    let after = server_stats::snapshot(&servers, &mut Vec::new());
    warnings.extend(outcome.warnings);
    let mut report = RunReport::new(&rc, &outcome.stats, warnings);
    report.servers = server_stats::pair(&servers, before, after);
    if let Some(leader) = d.leader {
        let changes = role_changes(&servers, leader, &report.servers);
        report.warnings.extend(changes);
    }
    let diff = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
    let node_cpu_s: Vec<Option<f64>> = srv0.iter().zip(&srv1).map(|(a, b)| diff(*a, *b)).collect();
    Ok(Measurement {
        cell,
        round,
        system: d.system.name().to_string(),
        report,
        wall_s,
        server_cpu_s: node_cpu_s.iter().copied().sum(),
        node_cpu_s,
        bench_cpu_s: diff(me0, me1),
    })
}

/// A file-name stem for a cell: `get_8x16`.
pub fn cell_stem(cell: &Cell) -> String {
    output::file_stem(&cell.name().replace(' ', "_"))
}

/// The header of the summary: what ran, where (`deployments`, as [`MatrixOutcome`]
/// has them; may be empty), and how to read it.
pub fn summary_header(cfg: &MatrixConfig, deployments: &[String]) -> String {
    let names: Vec<&str> = cfg.systems.iter().map(|s| s.name()).collect();
    let cores = if cfg.systems.contains(&System::Corekeeper) {
        let cores = match cfg.cores {
            0 => "default".to_string(),
            n => n.to_string(),
        };
        let set: String = cfg.ck_settings.iter().map(|kv| format!(" {kv}")).collect();
        format!("corekeeper cores={cores}{set}; ")
    } else {
        String::new()
    };
    let mut h = format!(
        "ckbench compare: {shape}, {rounds} rounds x {d} s measured (+{w} s warm-up) per \
         system and cell, interleaved {order}; {cores}closed loop, \
         {vb}-byte values, {keys} keys, seed {seed}\n",
        shape = cfg.shape.name(),
        rounds = cfg.rounds,
        d = cfg.duration_s,
        w = cfg.warmup_s,
        order = names.join(" "),
        vb = cfg.value_bytes,
        keys = cfg.keys,
        seed = cfg.seed,
    );
    for d in deployments {
        let _ = writeln!(h, "{d}");
    }
    if cfg.shape == Shape::ThreeNode {
        h.push_str(
            "sessions round-robin over the connect string (session 1 on node1, 2 on node2, \
             3 on node3, 4 on node1, ...; a 1-session cell runs on node1); server cpu = all \
             nodes together, nodeN cpu = each JVM\n",
        );
    }
    let ratio = if names.len() > 1 {
        format!("ratio = median / {}'s median ", names[0])
    } else {
        String::new()
    };
    let _ = writeln!(
        h,
        "value = median over rounds (min..max); {ratio}(ops/s: higher is better; latency: \
         lower is better); cpu = CPU seconds per wall second of each run (1.00 = one core \
         busy)"
    );
    h
}

/// Writes every run's JSON, the summary and per-cell plots under `dir`.
pub fn write_outputs(
    dir: &Path,
    cfg: &MatrixConfig,
    outcome: &MatrixOutcome,
) -> Result<Vec<PathBuf>, String> {
    let runs = &outcome.runs;
    let mut files = Vec::new();
    let runs_dir = dir.join("runs");
    std::fs::create_dir_all(&runs_dir)
        .map_err(|e| format!("creating {}: {e}", runs_dir.display()))?;
    for m in runs {
        let p = runs_dir.join(format!(
            "{}-{}-r{}.json",
            cell_stem(&cfg.cells[m.cell]),
            m.system,
            m.round + 1
        ));
        std::fs::write(&p, m.report.to_json()).map_err(|e| format!("{}: {e}", p.display()))?;
        files.push(p);
    }
    let summary = dir.join("summary.txt");
    let text = format!(
        "{}\n{}",
        summary_header(cfg, &outcome.deployments),
        summary_table(cfg, runs)
    );
    std::fs::write(&summary, text).map_err(|e| format!("{}: {e}", summary.display()))?;
    files.push(summary);
    let all = dir.join("measurements.json");
    let json = serde_json::to_string(runs).map_err(|e| e.to_string())?;
    std::fs::write(&all, json).map_err(|e| format!("{}: {e}", all.display()))?;
    files.push(all);
    for (ci, cell) in cfg.cells.iter().enumerate() {
        let reports: Vec<RunReport> = median_runs(cfg, runs, ci)
            .into_iter()
            .map(|m| {
                // The legend names the cell too: the SVGs are read on their own.
                let mut r = m.report.clone();
                r.label = format!("{}, {}", m.system, cell.name());
                r
            })
            .collect();
        files.extend(output::write_compare(&dir.join(cell_stem(cell)), &reports)?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::RunStats;

    fn flags(s: &str) -> Vec<(String, String)> {
        let v: Vec<&str> = s.split_whitespace().collect();
        v.chunks(2)
            .map(|p| (p[0].to_string(), p[1].to_string()))
            .collect()
    }

    #[test]
    fn cells_parse_and_refuse_bad_ones() {
        let c = Cell::parse("mix:90/10:8x16").unwrap();
        assert_eq!(
            c.kind,
            WorkloadKind::Mix {
                read: 90,
                write: 10
            }
        );
        assert_eq!((c.sessions, c.inflight), (8, 16));
        assert_eq!(c.name(), "mix:90/10 8x16");
        assert_eq!(cell_stem(&c), "mix_90_10_8x16");
        assert!(
            Cell::parse("get:8")
                .unwrap_err()
                .contains("KIND:SESSIONSxINFLIGHT")
        );
        assert!(Cell::parse("get:0x1").unwrap_err().contains("\"0\""));
        assert!(Cell::parse("lock:1x1").unwrap_err().contains("recipes"));
        assert!(Cell::parse("frob:1x1").is_err());
    }

    #[test]
    fn flags_parse_with_clear_errors() {
        let c = parse(
            &flags(
                "--systems corekeeper,zookeeper --matrix get:1x1,set:4x2 --rounds 5 \
                 --duration-s 2 --cores 2 --out d",
            ),
            9,
        )
        .unwrap();
        assert_eq!(c.systems, [System::Corekeeper, System::Zookeeper]);
        assert_eq!(c.cells.len(), 2);
        assert_eq!((c.rounds, c.duration_s, c.cores, c.seed), (5, 2, 2, 9));
        // 3node: both systems as ensembles (corekeeper on 127.0.0.31..).
        let both = parse(&flags("--shape 3node"), 0).unwrap();
        assert_eq!(both.shape, Shape::ThreeNode);
        assert_eq!(both.systems, [System::Zookeeper, System::Corekeeper]);
        let z = parse(&flags("--systems zookeeper --shape 3node"), 0).unwrap();
        assert_eq!(
            (z.shape, &z.systems[..]),
            (Shape::ThreeNode, &[System::Zookeeper][..])
        );
        assert!(
            parse(&flags("--shape 5node"), 0)
                .unwrap_err()
                .contains("standalone or 3node")
        );
        assert!(
            parse(&flags("--systems zk,zk"), 0)
                .unwrap_err()
                .contains("once")
        );
        assert!(
            parse(&flags("--rounds 0"), 0)
                .unwrap_err()
                .contains("--rounds")
        );
        assert!(
            parse(&flags("--bogus 1"), 0)
                .unwrap_err()
                .contains("unknown")
        );
    }

    #[test]
    fn schedule_interleaves_systems_within_each_round() {
        let mut c = MatrixConfig::defaults(1);
        c.cells.truncate(2);
        c.rounds = 2;
        let s = c.schedule();
        assert_eq!(s.len(), 2 * 2 * 2);
        assert_eq!(&s[..4], &[(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1)]);
        let rc = c.run_config(&c.cells[1], System::Corekeeper, &["127.0.0.3:9".into()]);
        assert_eq!(rc.workload.kind, WorkloadKind::Set);
        assert_eq!(rc.target, Target::Corekeeper);
        assert_eq!(rc.connect.servers, ["127.0.0.3:9"]);
        let three: Vec<String> = (1..=3).map(|i| format!("127.0.0.2{i}:2181")).collect();
        let rc = c.run_config(&c.cells[1], System::Zookeeper, &three);
        assert_eq!(
            (rc.connect.servers.len(), rc.spread),
            (3, Spread::RoundRobin)
        );
    }

    fn measurement(cell: usize, round: u32, system: &str, ops_per_s: f64) -> Measurement {
        let mut rc = RunConfig::defaults(1);
        rc.label = system.into();
        let mut report = RunReport::new(&rc, &RunStats::new(0), vec![]);
        report.ops_per_s = ops_per_s;
        report.latency.p50_us = (1e6 / ops_per_s) as u64;
        Measurement {
            cell,
            round,
            system: system.into(),
            report,
            wall_s: 2.0,
            server_cpu_s: Some(1.0),
            node_cpu_s: vec![Some(1.0)],
            bench_cpu_s: None,
        }
    }

    #[test]
    fn table_has_medians_spread_and_ratios() {
        let mut c = MatrixConfig::defaults(1);
        c.cells.truncate(1);
        let runs = vec![
            measurement(0, 0, "zookeeper", 100.0),
            measurement(0, 0, "corekeeper", 300.0),
            measurement(0, 1, "zookeeper", 200.0),
            measurement(0, 1, "corekeeper", 500.0),
            measurement(0, 2, "zookeeper", 150.0),
            measurement(0, 2, "corekeeper", 400.0),
        ];
        let t = summary_table(&c, &runs);
        assert!(t.contains("corekeeper/zookeeper"), "{t}");
        let ops = t.lines().find(|l| l.contains("ops/s")).unwrap();
        assert!(
            ops.contains("150 (100..200)") && ops.contains("400 (300..500)"),
            "{t}"
        );
        assert!(ops.trim_end().ends_with("2.67x"), "{t}");
        let cpu = t.lines().find(|l| l.contains("server cpu")).unwrap();
        assert!(
            cpu.contains("0.50") && cpu.trim_end().ends_with("1.00x"),
            "{t}"
        );
        let bench = t.lines().find(|l| l.contains("ckbench cpu")).unwrap();
        assert!(bench.contains('-'), "{t}");
        let med = median_runs(&c, &runs, 0);
        assert_eq!(med.len(), 2);
        assert_eq!(med[0].report.ops_per_s, 150.0);
        assert_eq!(med[1].report.ops_per_s, 400.0);
        assert_eq!(median(&[1.0, 3.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn one_system_on_an_ensemble_has_node_rows_and_no_ratio() {
        let mut c = MatrixConfig::defaults(1);
        c.cells.truncate(1);
        c.systems = vec![System::Zookeeper];
        c.shape = Shape::ThreeNode;
        let runs: Vec<Measurement> = (0..3)
            .map(|r| {
                let mut m = measurement(0, r, "zookeeper", 100.0 * f64::from(r + 1));
                m.node_cpu_s = vec![Some(0.2), Some(0.4), Some(0.8 + f64::from(r) * 0.2)];
                m.server_cpu_s = m.node_cpu_s.iter().copied().sum();
                m
            })
            .collect();
        let t = summary_table(&c, &runs);
        assert!(
            !t.contains("/zookeeper") && !t.lines().any(|l| l.ends_with('x')),
            "no ratio column:\n{t}"
        );
        let row = |name: &str| t.lines().find(|l| l.contains(name)).unwrap().to_string();
        assert!(row("ops/s").contains("200 (100..300)"), "{t}");
        // wall 2 s: node3 used 0.8, 1.0, 1.2 s -> 0.40..0.60 cores; total 1.4..1.8 s.
        assert!(row("node3 cpu").contains("0.50 (0.40..0.60)"), "{t}");
        assert!(row("node1 cpu").trim_end().ends_with("0.10"), "{t}");
        assert!(row("server cpu").contains("0.80 (0.70..0.90)"), "{t}");
        let d = vec!["zookeeper ensemble of 3: node1 a:1 follower".to_string()];
        let h = summary_header(&c, &d);
        assert!(
            h.contains("3node") && h.contains("node1 a:1 follower"),
            "{h}"
        );
        assert!(
            !h.contains("ratio") && !h.contains("corekeeper cores"),
            "{h}"
        );
        // A standalone comparison of two keeps its header's ratio line.
        let h2 = summary_header(&MatrixConfig::defaults(1), &[]);
        assert!(h2.contains("ratio = median / zookeeper's median"), "{h2}");
    }

    #[test]
    fn a_long_cell_name_keeps_its_metric_apart() {
        let mut c = MatrixConfig::defaults(1);
        c.cells = vec![Cell::parse("mix:90/10:8x16").unwrap()];
        c.systems = vec![System::Zookeeper];
        let t = summary_table(&c, &[measurement(0, 0, "zookeeper", 100.0)]);
        let ops = t.lines().nth(1).unwrap();
        assert!(ops.starts_with("mix:90/10 8x16 ops/s"), "{t}");
        let header = t.lines().next().unwrap();
        assert_eq!(header.find("metric"), ops.find("ops/s"), "{t}");
    }

    fn mntr_state(server: &str, state: &str) -> ServerStats {
        let mut after = std::collections::BTreeMap::new();
        after.insert("zk_server_state".to_string(), state.to_string());
        ServerStats {
            server: server.into(),
            before: after.clone(),
            after,
        }
    }

    #[test]
    fn a_leader_change_is_a_warning() {
        let servers: Vec<String> = ["a:1", "b:2", "c:3"].map(String::from).to_vec();
        let same = [
            mntr_state("a:1", "follower"),
            mntr_state("b:2", "follower"),
            mntr_state("c:3", "leader"),
        ];
        assert!(role_changes(&servers, 2, &same).is_empty());
        // A node missing from the stats (mntr refused) says nothing.
        assert!(role_changes(&servers, 2, &same[1..]).is_empty());
        let moved = [
            mntr_state("a:1", "leader"),
            mntr_state("b:2", "follower"),
            mntr_state("c:3", "follower"),
        ];
        let w = role_changes(&servers, 2, &moved);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with(ROLE_CHANGE) && w[0].contains("node1 a:1 is leader"));
        assert!(w[1].contains("node3 c:3 is follower") && w[1].contains("was leader"));
    }
}
