//! One run end to end, and `ckjepsen`'s command line.
//!
//! A run: start a fresh standalone server ([`Target`]), create the run's skeleton, run
//! the workload ([`Worker`]s) and the nemesis' schedule side by side for the run's
//! duration (longer when restarts took so long that less than the planned healed
//! stretch, the last `100 - FAULT_SPAN_PERCENT` % of the run, was left), heal, make the
//! final reads, then read the history file back and check it
//! ([`check_history`]). Runs of one invocation use seeds `seed, seed + 1, ...`, each on
//! a fresh server, and end with one table line per system:
//! `system runs ops faults violations lost` (plus the unknown ops and what the
//! all-reads linearizability pass found).

use engine::config::Replication;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::check::{Report, check_history};
use super::history::{Fault, FaultKind, HISTORY_FORMAT, Header, History, Line};
use super::nemesis::{self, Launch, Target};
use super::workload::{
    self, KEYS_PER_WINDOW, OPS_PER_KEY_PER_WORKER_MAX, Recorder, Shared, Worker, WorkloadConfig,
};

/// Runs one invocation makes at most.
pub const RUNS_MAX: u64 = 1_000;
/// Longest run.
pub const DURATION_MS_MAX: u64 = 3_600_000;
/// Default run length, workers and faults per run.
pub const DURATION_MS_DEFAULT: u64 = 10_000;
pub const WORKERS_DEFAULT: u32 = 5;
pub const FAULTS_PER_RUN_DEFAULT: usize = 4;

/// What one run needs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub launch: Launch,
    pub seed: u64,
    pub duration: Duration,
    pub workers: u32,
    pub fault_kinds: Vec<FaultKind>,
    pub faults: usize,
    /// Session timeout the workers ask for (a silence outlasts it).
    pub session_timeout_ms: i32,
    /// Where the history (`<system>-<seed>.jsonl`) and the server's directory go.
    pub out: PathBuf,
    /// Members: 1 is a standalone server; 3 or 5 an ensemble (kill: the leader;
    /// pause: a member; partition and slow: its links).
    pub nodes: usize,
    /// An ensemble's tickTime (syncLimit and initLimit are in ticks).
    pub tick_ms: u32,
    /// How corekeeper ensembles replicate: with CRAQ or plain chain replication
    /// every read is promised linearizable, so a plain read that is not counts as a
    /// broken promise.
    pub replication: Replication,
    /// Ensembles: each member in its own network namespace, partitions made by
    /// nftables (`--net netns`), instead of a proxy on every peer link (`proxy`).
    pub netns: bool,
}

/// ckjepsen's ensembles tick faster than ckbench's (500 ms: syncLimit 2.5 s), so a
/// partition of a few seconds outlasts it and members notice, in both systems alike.
pub const ENSEMBLE_TICK_MS_DEFAULT: u32 = 500;
/// Fastest tick a run may ask for.
pub const TICK_MS_MIN: u32 = 100;

/// What one run found.
#[derive(Debug)]
pub struct RunResult {
    pub system: String,
    pub seed: u64,
    pub history: PathBuf,
    pub schedule: Vec<Fault>,
    pub faults: usize,
    pub report: Report,
}

/// Runs once: server, workload + nemesis, heal, final reads, check.
pub fn run_once(o: &RunOptions) -> Result<RunResult, String> {
    let system = system_name(o);
    fs::create_dir_all(&o.out).map_err(|e| format!("creating {}: {e}", o.out.display()))?;
    let server_dir = o.out.join(format!("{system}-{}-server", o.seed));
    let _ = fs::remove_dir_all(&server_dir);
    let needs_ensemble = o
        .fault_kinds
        .iter()
        .any(|k| matches!(k, FaultKind::Partition | FaultKind::Slow | FaultKind::Fsync));
    if needs_ensemble && o.nodes < 2 {
        return Err(
            "partition, slow and fsync faults need an ensemble (--shape 3node or 5node)".into(),
        );
    }
    if o.netns && o.fault_kinds.contains(&FaultKind::Slow) {
        return Err("slow links need the proxies (--net proxy): this kernel has no netem".into());
    }
    let mut target = if o.nodes > 1 {
        let shape = bench::ensemble::Options {
            nodes: o.nodes,
            tick_ms: o.tick_ms,
            mesh: !o.netns,
            clock_files: false, // set by the target for corekeeper
            replication: o.replication.name(),
            fsync_stall_files: false,
            netns: o.netns,
            fault_fs: o.fault_kinds.contains(&FaultKind::Fsync),
        };
        Target::start_ensemble(o.launch.clone(), &server_dir, o.seed, shape)?
    } else {
        Target::start(o.launch.clone(), &server_dir)?
    };
    let servers = target.servers();
    let addr = servers[0].clone();
    let mut cfg = WorkloadConfig::new(o.seed, o.workers, o.duration);
    cfg.session_timeout_ms = o.session_timeout_ms;
    let schedule = nemesis::schedule(
        o.seed,
        o.duration.as_millis() as u64,
        &o.fault_kinds,
        o.faults,
        cfg.session_timeout_ms,
    );
    let history = o.out.join(format!("{system}-{}.jsonl", o.seed));
    let file =
        fs::File::create(&history).map_err(|e| format!("creating {}: {e}", history.display()))?;
    // Plain chain replication: only the chain's tail takes clients.
    let tail_only = o.replication == Replication::Chain && o.nodes > 1;
    if tail_only {
        workload::setup_anywhere(&servers, &cfg)?;
    } else {
        workload::setup(&addr, &cfg).map_err(|e| format!("setting up on {addr}: {e}"))?;
    }

    let start = Instant::now();
    let rec = Recorder::new(start, Box::new(BufWriter::new(file)));
    rec.write_line(&Line::Header(Header {
        format: HISTORY_FORMAT,
        seed: o.seed,
        system: system.clone(),
        server: servers.join(","),
        root: cfg.root.clone(),
        workers: cfg.workers,
        duration_ms: o.duration.as_millis() as u64,
        keys_per_window: KEYS_PER_WINDOW,
        ops_per_key_per_worker: OPS_PER_KEY_PER_WORKER_MAX,
        session_timeout_ms: cfg.session_timeout_ms,
        schedule: schedule.clone(),
    }));
    let shared = Shared::new(&cfg, servers.clone(), &rec);
    let duration_ns = o.duration.as_nanos() as u64;
    if schedule.is_empty() {
        shared.stop_at(duration_ns);
    }
    // The nemesis runs on this thread: bench's launcher asks the kernel to kill a
    // server when the *thread* that started it exits, so restarts must come from a
    // thread that outlives the run.
    let faults = std::thread::scope(|s| {
        let workers: Vec<_> = (0..cfg.workers)
            .map(|id| {
                let sh = &shared;
                s.spawn(move || Worker::new(id, sh).run())
            })
            .collect();
        let silence = |i: usize, d: Duration| shared.silence(i, d);
        let faults = nemesis::run_schedule(&mut target, &schedule, start, &rec, &silence);
        // However long the restarts took, the run ends with the healed stretch it
        // planned (restarts are bounded, so the run is too).
        let tail_ns = duration_ns / 100 * (100 - nemesis::FAULT_SPAN_PERCENT);
        let stop = if faults.is_ok() {
            duration_ns.max(rec.now_ns() + tail_ns)
        } else {
            0
        };
        shared.stop_at(stop);
        for w in workers {
            w.join().map_err(|_| "a worker panicked".to_string())?;
        }
        faults
    });
    let faults = match faults {
        Ok(n) => n,
        Err(e) => {
            let _ = rec.flush();
            return Err(format!("{e} (history so far in {})", history.display()));
        }
    };
    target.heal()?;
    let max_window = shared.max_window.load(Ordering::Relaxed);
    if tail_only {
        workload::final_reads_at_tail(&servers, &cfg, &rec, max_window)?;
    } else {
        workload::final_reads(&servers, &cfg, &rec, max_window)?;
    }
    rec.flush()
        .map_err(|e| format!("writing {}: {e}", history.display()))?;
    drop(rec);
    drop(target);
    let text =
        fs::read_to_string(&history).map_err(|e| format!("reading {}: {e}", history.display()))?;
    let h = History::parse(&text).map_err(|e| format!("{}: {e}", history.display()))?;
    let report = check_history(&h);
    Ok(RunResult {
        system,
        seed: o.seed,
        history,
        schedule,
        faults,
        report,
    })
}

/// Checks a history file already recorded.
pub fn check_file(path: &Path) -> Result<Report, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let h = History::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(check_history(&h))
}

/// Totals over the runs of one system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub runs: u64,
    pub ops: usize,
    pub unknown: usize,
    pub faults: usize,
    /// Write + sync-read linearizability and session violations (ZooKeeper's promises).
    pub violations: usize,
    pub lost: usize,
    /// Keys whose all-reads history was not linearizable, and runs with any.
    pub all_reads_violations: usize,
    pub inconclusive: usize,
}

impl Totals {
    pub fn add(&mut self, r: &RunResult) {
        self.runs += 1;
        self.ops += r.report.ops;
        self.unknown += r.report.unknown;
        self.faults += r.faults;
        self.violations += r.report.lin_sync.violations + r.report.session_violations;
        self.lost += r.report.lost;
        self.all_reads_violations += r.report.lin_all.violations;
        self.inconclusive += r.report.lin_sync.inconclusive + r.report.lin_all.inconclusive;
    }
}

/// The table's header line.
pub const TABLE_HEADER: &str =
    "system      runs      ops  unknown  faults  violations  lost  all-reads-lin  inconclusive";

/// One table line.
pub fn table_line(system: &str, t: &Totals) -> String {
    let all = if t.all_reads_violations == 0 {
        "yes".to_string()
    } else {
        format!("no ({} keys)", t.all_reads_violations)
    };
    format!(
        "{system:<10} {:>5} {:>8} {:>8} {:>7} {:>11} {:>5}  {all:<13} {:>12}",
        t.runs, t.ops, t.unknown, t.faults, t.violations, t.lost, t.inconclusive
    )
}

/// The system a run's rows and files are named by: `corekeeper-craq` and
/// `corekeeper-chain` for chained ensembles.
pub fn system_name(o: &RunOptions) -> String {
    system_label(o.launch.system(), o.nodes, o.replication)
}

fn system_label(system: bench::servers::System, nodes: usize, r: Replication) -> String {
    if r.chained() && nodes > 1 && system == bench::servers::System::Corekeeper {
        format!("{}-{}", system.name(), r.name())
    } else {
        system.name().to_string()
    }
}

/// Whether a run broke a promise of its system's mode (CRAQ and chain replication
/// promise every read linearizable; Zab only writes and reads after `sync`).
pub fn broke_promise(o: &RunOptions, r: &RunResult) -> bool {
    let chained = system_name(o).ends_with("-craq") || system_name(o).ends_with("-chain");
    r.report.promise_violations() > 0 || (chained && r.report.lin_all.violations > 0)
}

/// One line per run.
pub fn run_line(r: &RunResult) -> String {
    let rep = &r.report;
    format!(
        "{} seed {}: {} ops ({} ok, {} fail, {} unknown), {} faults; linearizable: \
         writes+sync reads {}/{} keys, all reads {}/{} keys; session violations {}; \
         lost {}; history {}",
        r.system,
        r.seed,
        rep.ops,
        rep.ok,
        rep.fail,
        rep.unknown,
        r.faults,
        rep.lin_sync.keys - rep.lin_sync.violations - rep.lin_sync.inconclusive,
        rep.lin_sync.keys,
        rep.lin_all.keys - rep.lin_all.violations - rep.lin_all.inconclusive,
        rep.lin_all.keys,
        rep.session_violations,
        rep.lost,
        r.history.display()
    )
}

pub const USAGE: &str = "\
usage: ckjepsen run [--system corekeeper|zookeeper|both] [--runs N] [--seed S]
                    [--time-ms MS] [--workers N] [--faults kill,pause|none]
                    [--faults-per-run N] [--corekeeper-bin PATH] [--out DIR]
                    [--shape standalone|3node|5node] [--tick-ms MS]
                    [--session-timeout-ms MS] [--replication zab|craq|chain]
                    [--net proxy|netns]
faults: kill (an ensemble's leader), pause (a member), silence (a client goes
quiet past its session timeout), partition and slow (ensembles: links between
members cut, or delayed and lossy, through a proxy on each; clients unaffected),
clock (corekeeper: a server's wall clock steps up to an hour either way; sessions
must not expire for it), fsync (ensembles, root and /dev/fuse: a member's data
directory is a FUSE pass-through whose fsyncs stall, or fail with EIO so the member
stops; it is restarted once healed).
An ensemble ticks every --tick-ms (default 500: syncLimit 2.5 s). --replication craq
runs corekeeper ensembles with CRAQ, whose every read must be linearizable; chain
with plain chain replication (only the tail takes clients; workers move on through
the members until one does), whose every read must be linearizable too.
--net netns runs each member in its own network namespace (root, iproute2 and
nftables) and partitions with nftables drops, silent as a failed switch; the default,
proxy, cuts links in the proxies (which also make slow links).
       ckjepsen check HISTORY.jsonl...
       ckjepsen serve --config zoo.cfg      (corekeeper in this process)

run: per run, a fresh server or ensemble, a seeded workload and fault schedule, then
the checkers; one history file per run in --out (default ./ckjepsen-out). Exit 1 if
any promise was broken (write/sync-read linearizability, session guarantees, lost
writes); a plain read that is not linearizable is reported, not a failure.";

/// Parsed `run` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct RunArgs {
    pub systems: Vec<String>,
    pub runs: u64,
    pub seed: u64,
    pub time_ms: u64,
    pub workers: u32,
    pub kinds: Vec<FaultKind>,
    pub faults: usize,
    pub session_timeout_ms: i32,
    pub corekeeper_bin: Option<PathBuf>,
    pub out: PathBuf,
    /// `--shape`: 1 (standalone), 3 or 5 members.
    pub nodes: usize,
    pub tick_ms: u32,
    /// `--replication`.
    pub replication: Replication,
    /// `--net netns`.
    pub netns: bool,
}

pub fn parse_run_args(args: &[String]) -> Result<RunArgs, String> {
    let mut a = RunArgs {
        systems: vec!["corekeeper".into()],
        runs: 1,
        seed: 1,
        time_ms: DURATION_MS_DEFAULT,
        workers: WORKERS_DEFAULT,
        kinds: vec![FaultKind::Kill, FaultKind::Pause],
        faults: FAULTS_PER_RUN_DEFAULT,
        session_timeout_ms: workload::SESSION_TIMEOUT_MS,
        corekeeper_bin: None,
        out: PathBuf::from("ckjepsen-out"),
        nodes: 1,
        tick_ms: ENSEMBLE_TICK_MS_DEFAULT,
        replication: Replication::Zab,
        netns: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let num = |v: String| -> Result<u64, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--system" => {
                a.systems = match value()?.as_str() {
                    "both" => vec!["corekeeper".into(), "zookeeper".into()],
                    s @ ("corekeeper" | "ck") => vec![s.replace("ck", "corekeeper")],
                    "zookeeper" | "zk" => vec!["zookeeper".into()],
                    s => return Err(format!("--system {s}: corekeeper, zookeeper or both")),
                }
            }
            "--runs" => a.runs = num(value()?)?.clamp(1, RUNS_MAX),
            "--seed" => a.seed = num(value()?)?,
            "--time-ms" => a.time_ms = num(value()?)?.clamp(1, DURATION_MS_MAX),
            "--workers" => a.workers = num(value()?)?.clamp(1, workload::WORKERS_MAX as u64) as u32,
            "--faults-per-run" => a.faults = num(value()?)? as usize,
            "--session-timeout-ms" => {
                a.session_timeout_ms = num(value()?)?.clamp(
                    workload::SESSION_TIMEOUT_MS_MIN as u64,
                    workload::SESSION_TIMEOUT_MS_MAX as u64,
                ) as i32
            }
            "--faults" => {
                let v = value()?;
                a.kinds = if v == "none" {
                    Vec::new()
                } else {
                    v.split(',')
                        .map(|k| match k {
                            "kill" => Ok(FaultKind::Kill),
                            "pause" => Ok(FaultKind::Pause),
                            "silence" => Ok(FaultKind::Silence),
                            "partition" => Ok(FaultKind::Partition),
                            "slow" => Ok(FaultKind::Slow),
                            "clock" => Ok(FaultKind::Clock),
                            "fsync" => Ok(FaultKind::Fsync),
                            _ => Err(format!("--faults: unknown fault {k}")),
                        })
                        .collect::<Result<_, _>>()?
                };
            }
            "--corekeeper-bin" => a.corekeeper_bin = Some(PathBuf::from(value()?)),
            "--out" => a.out = PathBuf::from(value()?),
            "--shape" => {
                a.nodes = match value()?.as_str() {
                    "standalone" => 1,
                    "3node" => 3,
                    "5node" => 5,
                    s => return Err(format!("--shape {s}: standalone, 3node or 5node")),
                }
            }
            "--replication" => {
                a.replication = match value()?.as_str() {
                    "zab" => Replication::Zab,
                    "craq" => Replication::Craq,
                    "chain" => Replication::Chain,
                    s => return Err(format!("--replication {s}: zab, craq or chain")),
                }
            }
            "--net" => {
                a.netns = match value()?.as_str() {
                    "proxy" => false,
                    "netns" => true,
                    s => return Err(format!("--net {s}: proxy or netns")),
                }
            }
            "--tick-ms" => a.tick_ms = num(value()?)?.clamp(u64::from(TICK_MS_MIN), 60_000) as u32,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn launch_for(system: &str, a: &RunArgs) -> Result<Launch, String> {
    if system == "zookeeper" {
        return Ok(Launch::Zookeeper);
    }
    if let Some(bin) = &a.corekeeper_bin {
        return Ok(Launch::Binary(bin.clone()));
    }
    // ckjepsen's own `serve`: the engine this ckjepsen was built with, never a stale
    // binary left in a target directory.
    std::env::current_exe()
        .map(Launch::Serve)
        .map_err(|e| format!("locating ckjepsen: {e}"))
}

/// `ckjepsen run`; exit status.
pub fn run_main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let a = match parse_run_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(err, "ckjepsen: {e}\n{USAGE}");
            return 2;
        }
    };
    let mut table = Vec::new();
    let mut broken = false;
    for system in &a.systems {
        let launch = match launch_for(system, &a) {
            Ok(l) => l,
            Err(e) => {
                let _ = writeln!(err, "ckjepsen: {e}");
                return 2;
            }
        };
        let mut totals = Totals::default();
        for i in 0..a.runs {
            let o = RunOptions {
                launch: launch.clone(),
                seed: a.seed + i,
                duration: Duration::from_millis(a.time_ms),
                workers: a.workers,
                fault_kinds: a.kinds.clone(),
                faults: a.faults,
                session_timeout_ms: a.session_timeout_ms,
                out: a.out.clone(),
                nodes: a.nodes,
                tick_ms: a.tick_ms,
                replication: a.replication,
                netns: a.netns,
            };
            match run_once(&o) {
                Ok(r) => {
                    for v in &r.report.violations {
                        let _ = write!(out, "{}", v.render());
                    }
                    let _ = writeln!(out, "{}", run_line(&r));
                    broken |= broke_promise(&o, &r);
                    totals.add(&r);
                }
                Err(e) => {
                    let _ = writeln!(err, "ckjepsen: {system} seed {}: {e}", o.seed);
                    return 2;
                }
            }
        }
        let name = system_label(launch.system(), a.nodes, a.replication);
        table.push(table_line(&name, &totals));
    }
    let _ = writeln!(out, "\n{TABLE_HEADER}");
    for l in table {
        let _ = writeln!(out, "{l}");
    }
    i32::from(broken)
}

/// `ckjepsen check`; exit status.
pub fn check_main(files: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if files.is_empty() {
        let _ = writeln!(err, "ckjepsen check: no history files\n{USAGE}");
        return 2;
    }
    let mut broken = false;
    for f in files {
        match check_file(Path::new(f)) {
            Ok(rep) => {
                for v in &rep.violations {
                    let _ = write!(out, "{}", v.render());
                }
                let _ = writeln!(
                    out,
                    "{f}: {} ops; linearizability violations: writes+sync reads {}, all reads \
                     {}; session violations {}; lost {}",
                    rep.ops,
                    rep.lin_sync.violations,
                    rep.lin_all.violations,
                    rep.session_violations,
                    rep.lost
                );
                broken |= rep.promise_violations() > 0;
            }
            Err(e) => {
                let _ = writeln!(err, "ckjepsen: {e}");
                return 2;
            }
        }
    }
    i32::from(broken)
}

/// `ckjepsen serve --config FILE`: corekeeper in this process (what the tests kill).
pub fn serve_main(args: &[String], err: &mut dyn Write) -> i32 {
    engine::logging::init();
    let cfg = match engine::config::Config::from_args(args.to_vec()) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "ckjepsen serve: {e}");
            return 2;
        }
    };
    match engine::server::run(cfg) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "ckjepsen serve: {e}");
            1
        }
    }
}

/// The whole program.
pub fn main(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match args.first().map(String::as_str) {
        Some("run") => run_main(&args[1..], out, err),
        Some("check") => check_main(&args[1..], out, err),
        Some("serve") => serve_main(&args[1..], err),
        Some("--help" | "-h") => {
            let _ = writeln!(out, "{USAGE}");
            0
        }
        _ => {
            let _ = writeln!(err, "{USAGE}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn run_arguments_parse_with_defaults_and_limits() {
        let a = parse_run_args(&[]).unwrap();
        assert_eq!(a.systems, ["corekeeper"]);
        assert_eq!(a.kinds, [FaultKind::Kill, FaultKind::Pause]);
        let a = parse_run_args(&args(
            "--system both --runs 3 --seed 9 --time-ms 500 --faults kill --workers 999",
        ))
        .unwrap();
        assert_eq!(a.systems, ["corekeeper", "zookeeper"]);
        assert_eq!((a.runs, a.seed, a.time_ms), (3, 9, 500));
        assert_eq!(a.kinds, [FaultKind::Kill]);
        assert_eq!(a.workers, workload::WORKERS_MAX);
        assert!(
            parse_run_args(&args("--faults none"))
                .unwrap()
                .kinds
                .is_empty()
        );
        assert!(parse_run_args(&args("--faults fire")).is_err());
        assert!(parse_run_args(&args("--runs")).is_err());
        assert!(parse_run_args(&args("--system etcd")).is_err());
    }

    #[test]
    fn the_table_says_what_each_column_holds() {
        let t = Totals {
            runs: 2,
            ops: 1000,
            unknown: 3,
            faults: 8,
            violations: 0,
            lost: 0,
            all_reads_violations: 0,
            inconclusive: 0,
        };
        let line = table_line("corekeeper", &t);
        assert!(line.starts_with("corekeeper     2     1000"), "{line}");
        assert_eq!(
            TABLE_HEADER.split_whitespace().count(),
            line.split_whitespace().count(),
            "{line}"
        );
    }
}
