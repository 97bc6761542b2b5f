//! Crash test: a child process appends and flushes under a seeded schedule and is
//! SIGKILLed at a seeded point; after reopening, every record it reported durable is
//! present and intact, and nothing after a gap is returned.
//!
//! Replay a failing run with the seed it prints:
//! `WAL_CRASH_SEED=<seed> cargo test -p wal --test crash`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{FlushLoop, append_range, check_all_from, opts};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use wal::Wal;

/// Rounds per run (each one kills a child); bounded so the test stays fast.
const ROUNDS: u64 = 12;
/// A child stops by itself after this many bursts if never killed.
const CHILD_BURSTS_MAX: u64 = 100_000;
const CHILD_ENV_DIR: &str = "WAL_CRASH_CHILD_DIR";
const CHILD_ENV_SEED: &str = "WAL_CRASH_CHILD_SEED";

fn seed() -> u64 {
    match std::env::var("WAL_CRASH_SEED") {
        Ok(s) => s.parse().expect("WAL_CRASH_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[test]
fn durable_records_survive_sigkill() {
    let seed = seed();
    let replay = format!("replay: WAL_CRASH_SEED={seed} cargo test -p wal --test crash");
    eprintln!("crash test seed {seed} ({replay})");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut durable_max = 0;
    for round in 0..ROUNDS {
        let kill_after = rng.random_range(1..40u32);
        let child_seed = rng.random::<u64>();
        let reported = run_child(dir.path(), child_seed, kill_after, &replay);
        assert!(
            reported.windows(2).all(|w| w[0] < w[1]),
            "round {round}: durable zxids go up ({replay})"
        );
        durable_max = durable_max.max(reported.last().copied().unwrap_or(0));
        let (wal, rec) = Wal::open(dir.path(), opts())
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e} ({replay})"));
        assert!(
            rec.last_zxid >= durable_max,
            "round {round}: lost durable zxid {durable_max}, recovered up to {} ({replay})",
            rec.last_zxid
        );
        // Contiguous from 1 and every payload intact (check_all_from asserts payloads).
        let all = check_all_from(&wal, 0);
        assert_eq!(
            all,
            (1..=rec.last_zxid).collect::<Vec<_>>(),
            "round {round}: a gap ({replay})"
        );
        eprintln!(
            "round {round}: child killed after {kill_after} flushes; durable {durable_max}, recovered {}",
            rec.last_zxid
        );
    }
    // The log is still usable after all those kills.
    let (mut wal, rec) = Wal::open(dir.path(), opts()).unwrap();
    append_range(&mut wal, rec.last_zxid + 1, rec.last_zxid + 10);
    wal.flush().unwrap();
}

/// Runs one child, kills it after `kill_after` "durable" lines; returns what it reported.
fn run_child(dir: &Path, seed: u64, kill_after: u32, replay: &str) -> Vec<u64> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV_DIR, dir)
        .env(CHILD_ENV_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut reported = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        // The harness may print "test crash_child ... " on the same line first.
        if let Some(z) = line.find("durable ").map(|i| &line[i + "durable ".len()..]) {
            reported.push(z.parse::<u64>().unwrap());
            if reported.len() as u32 >= kill_after {
                break;
            }
        }
    }
    assert_eq!(
        reported.len() as u32,
        kill_after,
        "child ended early ({replay})"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reported
}

/// The child role; does nothing unless started by `durable_records_survive_sigkill`.
#[test]
#[ignore = "child process of durable_records_survive_sigkill"]
fn crash_child() {
    let (Ok(dir), Ok(seed)) = (std::env::var(CHILD_ENV_DIR), std::env::var(CHILD_ENV_SEED)) else {
        return;
    };
    let mut rng = SmallRng::seed_from_u64(seed.parse().unwrap());
    let append_method = if rng.random_bool(0.5) {
        wal::AppendMethod::Map
    } else {
        wal::AppendMethod::Pwrite
    };
    let options = wal::WalOptions {
        append_method,
        ..opts()
    };
    let (mut wal, rec) = Wal::open(&dir, options).unwrap();
    let syncer = wal.syncer();
    // Half the runs flush from another thread while appends go on (group commit).
    let group = rng.random_bool(0.5).then(|| FlushLoop::start(wal.syncer()));
    let mut z = rec.last_zxid;
    for _ in 0..CHILD_BURSTS_MAX {
        let burst = rng.random_range(1..50);
        append_range(&mut wal, z + 1, z + burst);
        z += burst;
        if group.is_some() {
            syncer.wait_durable(z).unwrap();
        } else {
            wal.flush().unwrap();
        }
        println!("durable {}", syncer.durable_zxid());
    }
}

/// A second *process* opening a directory that is in use is refused clearly.
#[test]
fn second_process_is_refused_by_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (_wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV_DIR, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("open: ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("child said: {stdout}"));
    assert!(
        line.contains("in use by another process") && line.contains("LOCK"),
        "{line}"
    );
}

/// Child role of `second_process_is_refused_by_the_lock`: prints what opening gives.
#[test]
#[ignore = "child process of second_process_is_refused_by_the_lock"]
fn lock_child() {
    let Ok(dir) = std::env::var(CHILD_ENV_DIR) else {
        return;
    };
    match Wal::open(&dir, opts()) {
        Ok(_) => println!("open: succeeded"),
        Err(e) => println!("open: {e}"),
    }
}
