//! Command line: `ckbench run ...` and `ckbench compare ...`, parsed by hand.
//!
//! Hand-rolled rather than clap: a dozen flags, no subcommand nesting, and one less
//! proc-macro crate to compile on a 2-core machine. Contract: every flag takes one value
//! (`--flag VALUE` or `--flag=VALUE`), except the boolean `--no-cleanup`; a bad value or a
//! missing one is an error naming the flag, the value and what was expected; every
//! numeric value is bounded by a named `*_max` limit.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::workload::{KEYS_MAX, KeyDist, VALUE_BYTES_MAX, WorkloadKind, WorkloadSpec};

/// Most sessions a run may open.
pub const SESSIONS_MAX: usize = 10_000;
/// Most requests in flight per session (closed loop).
pub const INFLIGHT_MAX: usize = 1_000;
/// Highest open-loop rate, ops/s.
pub const RATE_MAX: f64 = 10_000_000.0;
/// Longest warm-up and measurement (per-second interval histograms are kept in memory).
pub const DURATION_S_MAX: u64 = 3_600;
/// Most worker threads.
pub const THREADS_MAX: usize = 64;
/// Most servers in a connect string.
pub const SERVERS_MAX: usize = 64;

/// The usage text printed by `--help` and after an error.
pub const USAGE: &str = "\
ckbench: load generator for corekeeper and Apache ZooKeeper (same workload, same wire protocol)

usage:
  ckbench run [options]
  ckbench compare RUN.json RUN.json... [--out DIR] [--format text|json]
  ckbench compare --systems zookeeper,corekeeper [compare options]
  ckbench modes [--replicas 1,3,5] [--modes zab,zab-sync,craq,chain] ...  (Zab or CRAQ:
                                       `ckbench modes --help`)
  ckbench failover ...                 (time to recover from a leader's kill)

compare options (start the systems, run the matrix interleaved, print medians and ratios):
  --systems LIST                       systems, the first is the ratios' base
                                                               [zookeeper,corekeeper]
  --shape standalone|3node             3node: a 3-node ensemble per system (ZooKeeper on
                                       127.0.0.21-23, corekeeper on .31-33), sessions
                                       round-robin over it                   [standalone]
  --matrix KIND:SxI,...                cells: workload, sessions x in-flight per session
                                                     [get:1x1,set:1x1,get:8x16,set:8x16]
  --rounds N                           rounds per cell and system                    [3]
  --warmup-s N / --duration-s N        per run                                    [1 / 5]
  --prime-s N                          unmeasured load on each system first (JIT)    [3]
  --value-bytes N / --keys N / --threads N / --seed N                 as for run
  --cores N|default                    corekeeper's executors   [default: the server's]
  --ck-set KEY=VALUE                   an extra line of corekeeper's zoo.cfg (repeat)
  --corekeeper-bin PATH                [corekeeper next to ckbench]
  --work-dir DIR                       servers' data (same disk for both) [temp dir, removed]
  --out DIR                            summary.txt, runs/*.json, per-cell SVG plots,
                                       logs/ (the servers' logs)

run options (defaults in brackets):
  --target corekeeper|zookeeper        system under test, also its label in plots [corekeeper]
  --connect HOST:PORT[,HOST:PORT...][/chroot]                          [127.0.0.1:2181]
  --workload get|set|create|delete|exists|children|mix:R/W|watch-fanout|lock       [get]
  --sessions N                         client sessions (connections)                 [8]
  --inflight N                         closed loop: requests in flight per session   [1]
  --rate OPS                           open loop: fixed total rate, latency measured from
                                       each request's intended send time (no coordinated
                                       omission); excludes --inflight
  --value-bytes N                      data size for create/set                    [100]
  --keys N                             key space size                             [1000]
  --dist uniform|zipf:S                key distribution                        [uniform]
  --sync-reads                         every get is a sync then the get (ZooKeeper's
                                       linearizable read), measured as one op
  --warmup-s N                         seconds before measuring                      [2]
  --duration-s N                       seconds measured                             [10]
  --max-ops N                          stop after N measured ops (whichever first;
                                       watch-fanout counts writes, lock acquisitions)
  --spread round-robin|random          how sessions spread over the servers [round-robin]
  --threads N                          worker threads (sessions are split among them;
                                       watch-fanout and lock use one)                [2]
  --seed N                             workload seed (printed in the report)    [clock]
  --label NAME                         name of this run in reports and plots    [target]
  --out DIR                            write summary, JSON, hdr log and SVG plots here
  --format text|json                   what goes to stdout                        [text]
  --no-cleanup                         keep the znodes the run created
";

/// The system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    Corekeeper,
    Zookeeper,
    /// The in-process mock with a virtual clock (hidden; for tests and demos).
    Mock,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Corekeeper => "corekeeper",
            Target::Zookeeper => "zookeeper",
            Target::Mock => "mock",
        }
    }
}

/// Closed loop (fixed concurrency) or open loop (fixed rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Load {
    /// Each session keeps `inflight` requests outstanding.
    Closed { inflight: usize },
    /// `rate` requests per second in total, on a fixed schedule.
    Open { rate: f64 },
}

/// How sessions are assigned to the servers of the connect string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    RoundRobin,
    /// Seeded by the run's seed.
    Random,
}

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Text,
    Json,
}

/// `host:port,host:port[/chroot]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectString {
    pub servers: Vec<String>,
    pub chroot: Option<String>,
}

impl ConnectString {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (hosts, chroot) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let chroot = match chroot {
            None | Some("/") => None,
            Some(c) if c.ends_with('/') || c.contains("//") => {
                return Err(format!(
                    "bad chroot {c:?} in --connect: no trailing or empty segments"
                ));
            }
            Some(c) => Some(c.to_string()),
        };
        let servers: Vec<String> = hosts.split(',').map(|h| h.trim().to_string()).collect();
        if servers.len() > SERVERS_MAX {
            return Err(format!(
                "--connect names {} servers; at most {SERVERS_MAX}",
                servers.len()
            ));
        }
        for h in &servers {
            let ok = h
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("bad server {h:?} in --connect: expected host:port"));
            }
        }
        Ok(ConnectString { servers, chroot })
    }
}

/// Everything `ckbench run` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub target: Target,
    pub label: String,
    pub connect: ConnectString,
    pub workload: WorkloadSpec,
    pub sessions: usize,
    pub load: Load,
    pub warmup_s: u64,
    pub duration_s: u64,
    pub max_ops: Option<u64>,
    pub spread: Spread,
    pub threads: usize,
    pub seed: u64,
    #[serde(skip)]
    pub out: Option<PathBuf>,
    pub format: Format,
    pub cleanup: bool,
    /// Every get is preceded by a `sync` of its path on the same session (one op).
    pub sync_reads: bool,
}

impl RunConfig {
    /// The defaults of `ckbench run` with this seed.
    pub fn defaults(seed: u64) -> Self {
        RunConfig {
            target: Target::Corekeeper,
            label: String::new(),
            connect: ConnectString {
                servers: vec!["127.0.0.1:2181".into()],
                chroot: None,
            },
            workload: WorkloadSpec {
                kind: WorkloadKind::Get,
                key_count: 1000,
                dist: KeyDist::Uniform,
                value_bytes: 100,
            },
            sessions: 8,
            load: Load::Closed { inflight: 1 },
            warmup_s: 2,
            duration_s: 10,
            max_ops: None,
            spread: Spread::RoundRobin,
            threads: 2,
            seed,
            out: None,
            format: Format::Text,
            cleanup: true,
            sync_reads: false,
        }
    }

    /// Worker threads actually used: never more than sessions; the recipes use one (their
    /// state machines need every session's events in one place).
    pub fn workers(&self) -> usize {
        if self.workload.kind.is_recipe() {
            1
        } else {
            self.threads.min(self.sessions).max(1)
        }
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Box<RunConfig>),
    Compare {
        inputs: Vec<PathBuf>,
        out: Option<PathBuf>,
        format: Format,
    },
    /// `compare --systems ...`: start the systems and run a matrix against them.
    CompareRun(Box<crate::matrix::MatrixConfig>),
    Help,
}

/// Parses the arguments after the program name. `default_seed` is used without `--seed`.
pub fn parse_args<I, S>(args: I, default_seed: u64) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => Ok(Command::Help),
        Some("run") => parse_run(&args[1..], default_seed).map(|c| Command::Run(Box::new(c))),
        Some("compare") => parse_compare(&args[1..], default_seed),
        Some(other) => Err(format!(
            "unknown command {other:?}: expected run or compare"
        )),
    }
}

/// Splits `--flag=value` / `--flag value` pairs; `--no-cleanup` and `--help` stand alone.
fn flags(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !a.starts_with("--") {
            out.push((String::new(), a.clone()));
            continue;
        }
        if a == "--no-cleanup" || a == "--help" || a == "--sync-reads" {
            out.push((a.clone(), String::new()));
        } else if let Some((f, v)) = a.split_once('=') {
            out.push((f.to_string(), v.to_string()));
        } else {
            let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
            out.push((a.clone(), v.clone()));
        }
    }
    Ok(out)
}

fn num<T>(flag: &str, v: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = v
        .parse()
        .map_err(|_| format!("{flag}: {v:?} is not a number"))?;
    if n < min || n > max {
        return Err(format!("{flag}: {v} is out of range [{min}, {max}]"));
    }
    Ok(n)
}

fn parse_run(args: &[String], default_seed: u64) -> Result<RunConfig, String> {
    let mut c = RunConfig::defaults(default_seed);
    let mut inflight = None;
    let mut rate = None;
    for (flag, v) in flags(args)? {
        let f = flag.as_str();
        match f {
            "--target" => {
                c.target = match v.as_str() {
                    "corekeeper" => Target::Corekeeper,
                    "zookeeper" => Target::Zookeeper,
                    "mock" => Target::Mock,
                    _ => return Err(format!("--target: {v:?} is not corekeeper or zookeeper")),
                }
            }
            "--label" => c.label = v,
            "--connect" => c.connect = ConnectString::parse(&v)?,
            "--workload" => c.workload.kind = WorkloadKind::parse(&v)?,
            "--sessions" => c.sessions = num(f, &v, 1, SESSIONS_MAX)?,
            "--inflight" => inflight = Some(num(f, &v, 1, INFLIGHT_MAX)?),
            "--rate" => rate = Some(num(f, &v, 0.001, RATE_MAX)?),
            "--value-bytes" => c.workload.value_bytes = num(f, &v, 0, VALUE_BYTES_MAX)?,
            "--keys" => c.workload.key_count = num(f, &v, 1, KEYS_MAX)?,
            "--dist" => c.workload.dist = KeyDist::parse(&v)?,
            "--warmup-s" => c.warmup_s = num(f, &v, 0, DURATION_S_MAX)?,
            "--duration-s" => c.duration_s = num(f, &v, 1, DURATION_S_MAX)?,
            "--max-ops" => c.max_ops = Some(num(f, &v, 1, u64::MAX)?),
            "--spread" => {
                c.spread = match v.as_str() {
                    "round-robin" => Spread::RoundRobin,
                    "random" => Spread::Random,
                    _ => return Err(format!("--spread: {v:?} is not round-robin or random")),
                }
            }
            "--threads" => c.threads = num(f, &v, 1, THREADS_MAX)?,
            "--seed" => c.seed = num(f, &v, 0, u64::MAX)?,
            "--out" => c.out = Some(PathBuf::from(v)),
            "--format" => c.format = parse_format(&v)?,
            "--no-cleanup" => c.cleanup = false,
            "--sync-reads" => c.sync_reads = true,
            "" => return Err(format!("unexpected argument {v:?}")),
            _ => return Err(format!("unknown option {f}")),
        }
    }
    c.load = match (inflight, rate) {
        (Some(_), Some(_)) => return Err("--inflight and --rate exclude each other".into()),
        (_, Some(rate)) => Load::Open { rate },
        (inflight, None) => Load::Closed {
            inflight: inflight.unwrap_or(1),
        },
    };
    if c.label.is_empty() {
        c.label = c.target.name().to_string();
    }
    if c.workload.kind == WorkloadKind::Lock && matches!(c.load, Load::Open { .. }) {
        return Err("the lock recipe is closed-loop only: drop --rate".into());
    }
    Ok(c)
}

fn parse_format(v: &str) -> Result<Format, String> {
    match v {
        "text" => Ok(Format::Text),
        "json" => Ok(Format::Json),
        _ => Err(format!("--format: {v:?} is not text or json")),
    }
}

/// Flags that make `compare` start and run the systems instead of reading JSON files.
const COMPARE_RUN_FLAGS: &[&str] = &["--systems", "--matrix", "--shape", "--rounds"];

fn parse_compare(args: &[String], default_seed: u64) -> Result<Command, String> {
    let flags = flags(args)?;
    if flags
        .iter()
        .any(|(f, _)| COMPARE_RUN_FLAGS.contains(&f.as_str()))
    {
        let cfg = crate::matrix::parse(&flags, default_seed)?;
        return Ok(Command::CompareRun(Box::new(cfg)));
    }
    let mut inputs = Vec::new();
    let mut out = None;
    let mut format = Format::Text;
    for (flag, v) in flags {
        match flag.as_str() {
            "" => inputs.push(PathBuf::from(v)),
            "--out" => out = Some(PathBuf::from(v)),
            "--format" => format = parse_format(&v)?,
            f => return Err(format!("unknown option {f} for compare")),
        }
    }
    if inputs.is_empty() {
        return Err(
            "compare needs RUN.json files (written by run --out DIR) or --systems to run them"
                .into(),
        );
    }
    Ok(Command::Compare {
        inputs,
        out,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &str) -> Result<RunConfig, String> {
        let args = std::iter::once("run").chain(args.split_whitespace());
        match parse_args(args, 42)? {
            Command::Run(c) => Ok(*c),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn full_command_line() {
        let c = run(
            "--target zookeeper --connect a:1,b:2/app/x --workload mix:90/10 \
                     --sessions 16 --inflight 4 --value-bytes 256 --keys 5000 --dist zipf:0.99 \
                     --warmup-s 1 --duration-s 30 --spread random --out /tmp/o --format=json",
        )
        .unwrap();
        assert_eq!(c.target, Target::Zookeeper);
        assert_eq!(c.label, "zookeeper");
        assert_eq!(c.connect.servers, ["a:1", "b:2"]);
        assert_eq!(c.connect.chroot.as_deref(), Some("/app/x"));
        assert_eq!(
            c.workload.kind,
            WorkloadKind::Mix {
                read: 90,
                write: 10
            }
        );
        assert_eq!(c.sessions, 16);
        assert_eq!(c.load, Load::Closed { inflight: 4 });
        assert_eq!(c.workload.value_bytes, 256);
        assert_eq!(c.workload.key_count, 5000);
        assert_eq!(c.workload.dist, KeyDist::Zipf(0.99));
        assert_eq!((c.warmup_s, c.duration_s), (1, 30));
        assert_eq!(c.spread, Spread::Random);
        assert_eq!(c.format, Format::Json);
        assert_eq!(c.seed, 42);
        assert!(c.cleanup);
    }

    #[test]
    fn open_loop_and_defaults() {
        let c = run("--rate 5000 --seed 7 --no-cleanup").unwrap();
        assert_eq!(c.load, Load::Open { rate: 5000.0 });
        assert_eq!(c.seed, 7);
        assert!(!c.cleanup);
        assert_eq!(c.workers(), 2);
        assert_eq!(run("").unwrap().load, Load::Closed { inflight: 1 });
    }

    #[test]
    fn errors_name_the_flag_and_value() {
        let e = run("--sessions 0").unwrap_err();
        assert!(
            e.contains("--sessions") && e.contains("out of range"),
            "{e}"
        );
        let e = run("--sessions lots").unwrap_err();
        assert!(e.contains("\"lots\" is not a number"), "{e}");
        assert!(
            run("--inflight 2 --rate 10")
                .unwrap_err()
                .contains("exclude")
        );
        assert!(run("--connect nohost").unwrap_err().contains("host:port"));
        assert!(run("--connect a:1/x/").unwrap_err().contains("chroot"));
        assert!(run("--target redis").unwrap_err().contains("--target"));
        assert!(
            run("--frobnicate 1")
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(run("--keys").unwrap_err().contains("needs a value"));
        assert!(
            run("--workload lock --rate 5")
                .unwrap_err()
                .contains("closed-loop")
        );
        assert!(parse_args(["bogus"], 0).is_err());
        assert!(parse_args(["compare"], 0).is_err());
    }

    #[test]
    fn compare_and_help() {
        assert_eq!(parse_args(Vec::<String>::new(), 0).unwrap(), Command::Help);
        let c = parse_args(["compare", "a.json", "b.json", "--out", "d"], 0).unwrap();
        assert_eq!(
            c,
            Command::Compare {
                inputs: vec!["a.json".into(), "b.json".into()],
                out: Some("d".into()),
                format: Format::Text
            }
        );
        let Command::CompareRun(m) =
            parse_args(["compare", "--systems", "corekeeper", "--rounds=2"], 5).unwrap()
        else {
            panic!("not a compare run");
        };
        assert_eq!((m.rounds, m.seed, m.systems.len()), (2, 5, 1));
        assert!(
            parse_args(["compare", "a.json", "--systems", "zookeeper"], 0)
                .unwrap_err()
                .contains("not both")
        );
    }
}
