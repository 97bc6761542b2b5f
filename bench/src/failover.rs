//! `ckbench failover`: how long a 3-node ensemble cannot take writes after `kill -9`
//! of its leader, for ZooKeeper 3.8 and corekeeper in the same run, with the same
//! client.
//!
//! Contract, per system (its ensemble from [`crate::ensemble`], same tick and limits):
//! - a trial waits for one leader and two followers, opens a session on a follower
//!   (which survives), writes once, then SIGKILLs the leader and starts a clock; the
//!   client retries a create every [`RETRY_MS`] (reconnecting to either survivor
//!   when its connection is lost, a new session each time, as a client whose server
//!   went back to election does) until one succeeds: that time is the trial's
//!   result. Then the killed member is started again and the ensemble must settle
//!   (leader, followers, a write through every node) before the next trial.
//! - each attempt is bounded ([`ATTEMPT_TIMEOUT_MS`]) and the whole trial by
//!   [`FAILOVER_MS_MAX`]; a trial over it fails the command.
//! - the report gives every trial and the median, min and max per system, and the
//!   ratio of the medians.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use transport::client::Client;
use transport::jute::CreateMode;

use crate::ensemble::{self, CkSpec};
use crate::servers::{Deployment, System, find_corekeeper_bin};

/// Pause between write attempts.
pub const RETRY_MS: u64 = 5;
/// Longest a connect or a write attempt may take.
pub const ATTEMPT_TIMEOUT_MS: u64 = 1_000;
/// Longest a failover may take before the trial fails.
pub const FAILOVER_MS_MAX: u64 = 120_000;
/// Most trials per system.
pub const TRIALS_MAX: usize = 100;

pub const USAGE: &str = "\
usage: ckbench failover [--systems zookeeper,corekeeper] [--trials N] [--corekeeper-bin PATH]
                        [--work-dir DIR]

kill -9 of a 3-node ensemble's leader: time until a write through a surviving server
succeeds (ZooKeeper 3.8 and corekeeper, same client, same tick and limits).";

#[derive(Debug, Clone)]
pub struct FailoverConfig {
    pub systems: Vec<System>,
    pub trials: usize,
    pub corekeeper_bin: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
}

pub fn parse(args: &[String]) -> Result<FailoverConfig, String> {
    let mut c = FailoverConfig {
        systems: vec![System::Zookeeper, System::Corekeeper],
        trials: 5,
        corekeeper_bin: None,
        work_dir: None,
    };
    let mut it = args.iter();
    while let Some(f) = it.next() {
        let v = it.next().ok_or_else(|| format!("{f} needs a value"))?;
        match f.as_str() {
            "--systems" => c.systems = v.split(',').map(System::parse).collect::<Result<_, _>>()?,
            "--trials" => {
                c.trials = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=TRIALS_MAX).contains(n))
                    .ok_or_else(|| format!("--trials {v}: 1..={TRIALS_MAX}"))?
            }
            "--corekeeper-bin" => c.corekeeper_bin = Some(PathBuf::from(v)),
            "--work-dir" => c.work_dir = Some(PathBuf::from(v)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(c)
}

fn settle(d: &Deployment) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_millis(FAILOVER_MS_MAX);
    let poll = Duration::from_millis(50);
    let leader = ensemble::wait_for_leader(&d.servers(), deadline, poll, || Ok(()))?;
    ensemble::wait_for_writes(&d.servers(), deadline, poll)?;
    Ok(leader)
}

fn connect(addr: &str) -> Option<Client> {
    let c = Client::connect(addr, 10_000).ok()?;
    let t = Some(Duration::from_millis(ATTEMPT_TIMEOUT_MS));
    c.set_read_timeout(t).ok()?;
    c.set_write_timeout(t).ok()?;
    Some(c)
}

/// One trial: the failover time.
fn trial(d: &mut Deployment, n: usize) -> Result<Duration, String> {
    let leader = settle(d)?;
    let addrs = d.servers();
    let survivors: Vec<String> = (0..addrs.len())
        .filter(|&i| i != leader)
        .map(|i| addrs[i].clone())
        .collect();
    let mut c = connect(&survivors[0]).ok_or("cannot connect to a follower")?;
    c.create(
        &format!("/failover-{n}-before"),
        b"x",
        CreateMode::Persistent,
    )
    .map_err(|e| format!("write before the kill: {e}"))?;
    d.nodes[leader].kill();
    let killed = Instant::now();
    let mut client = Some(c);
    let mut next = 0usize;
    let path = format!("/failover-{n}-after");
    loop {
        if killed.elapsed() > Duration::from_millis(FAILOVER_MS_MAX) {
            return Err(format!("no write within {FAILOVER_MS_MAX} ms of the kill"));
        }
        if client.is_none() {
            client = connect(&survivors[next % survivors.len()]);
            next += 1;
        }
        if let Some(c) = &mut client {
            match c.create(&path, b"x", CreateMode::Persistent) {
                Ok(_) => break,
                Err(e) if e.to_string().contains("NodeExists") => break,
                Err(_) => client = None,
            }
        }
        std::thread::sleep(Duration::from_millis(RETRY_MS));
    }
    let took = killed.elapsed();
    d.nodes[leader].relaunch()?;
    settle(d)?;
    Ok(took)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs every trial of every system; the report.
pub fn run(cfg: &FailoverConfig) -> Result<String, String> {
    let tmp = match &cfg.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("ckbench-failover-{}", std::process::id())),
    };
    let mut results: Vec<(System, Vec<Duration>)> = Vec::new();
    for &system in &cfg.systems {
        let dir = tmp.join(system.name());
        let logs = tmp.join("logs");
        eprintln!("starting a 3-node {} ensemble", system.name());
        let mut d = match system {
            System::Zookeeper => ensemble::start(&dir, &logs)?,
            System::Corekeeper => ensemble::start_corekeeper(
                &dir,
                &logs,
                &CkSpec {
                    bin: find_corekeeper_bin(cfg.corekeeper_bin.as_deref())?,
                    args: Vec::new(),
                    cores: 0,
                    settings: Vec::new(),
                },
            )?,
        };
        let mut times = Vec::new();
        for n in 0..cfg.trials {
            let t = trial(&mut d, n).map_err(|e| format!("{} trial {n}: {e}", system.name()))?;
            eprintln!("{} trial {}: {:.0} ms", system.name(), n + 1, ms(t));
            times.push(t);
        }
        drop(d);
        results.push((system, times));
    }
    if cfg.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(report(&results))
}

/// The table: each trial, then median / min / max per system and the medians' ratio.
pub fn report(results: &[(System, Vec<Duration>)]) -> String {
    let mut s = String::from("kill -9 of the leader -> first write through a survivor (ms)\n");
    let med = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    for (system, times) in results {
        let list: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
        let (min, max) = (times.iter().min(), times.iter().max());
        let _ = writeln!(
            s,
            "{:<11} median {:>6.0}  min {:>6.0}  max {:>6.0}  trials: {}",
            system.name(),
            ms(med(times)),
            min.map_or(0.0, |t| ms(*t)),
            max.map_or(0.0, |t| ms(*t)),
            list.join(" ")
        );
    }
    if let [(a, ta), (b, tb)] = results {
        let _ = writeln!(
            s,
            "{}/{} median ratio: {:.2}x",
            b.name(),
            a.name(),
            ms(med(tb)) / ms(med(ta))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked_and_the_report_has_medians_and_the_ratio() {
        let c = parse(&["--trials".into(), "3".into()]).unwrap();
        assert_eq!((c.trials, c.systems.len()), (3, 2));
        assert!(parse(&["--trials".into(), "0".into()]).is_err());
        assert!(parse(&["--bogus".into(), "1".into()]).is_err());
        let ms = Duration::from_millis;
        let r = report(&[
            (System::Zookeeper, vec![ms(600), ms(900), ms(500)]),
            (System::Corekeeper, vec![ms(200), ms(300), ms(100)]),
        ]);
        assert!(r.contains("zookeeper   median    600"), "{r}");
        assert!(
            r.contains("corekeeper/zookeeper median ratio: 0.33x"),
            "{r}"
        );
    }
}
