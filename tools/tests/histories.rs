//! `ckjepsen` end to end: one short run with a `kill -9` and restart of a real server
//! (corekeeper, run as `ckjepsen serve`; and ZooKeeper 3.8 when it is installed), its
//! history written, read back and checked. Bounded: a few seconds of workload, one
//! fault, the server's own readiness bound for the restart.

use std::path::PathBuf;
use std::time::Duration;

use tools::hist::history::{FaultKind, History};
use tools::hist::nemesis::Launch;
use tools::hist::runner::{RunOptions, RunResult, run_line, run_once};

/// Workload length of the run.
const RUN_MS: u64 = 3_000;
const WORKERS: u32 = 4;

fn short_run(launch: Launch, name: &str) -> RunResult {
    run_shape(launch, name, false)
}

fn run_shape(launch: Launch, name: &str, ensemble: bool) -> RunResult {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ckjepsen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = RunOptions {
        launch,
        seed: 7,
        duration: Duration::from_millis(RUN_MS),
        workers: WORKERS,
        fault_kinds: vec![FaultKind::Kill],
        faults: 1,
        session_timeout_ms: tools::hist::workload::SESSION_TIMEOUT_MS,
        out,
        ensemble,
    };
    let r = run_once(&o).unwrap_or_else(|e| panic!("{name} run: {e}"));
    for v in &r.report.violations {
        print!("{}", v.render());
    }
    println!("{}", run_line(&r));
    r
}

fn assert_clean(r: &RunResult) {
    let rep = &r.report;
    assert_eq!(r.faults, 1, "the kill and restart happened");
    assert!(rep.ok > 0, "some ops succeeded");
    assert_eq!(
        rep.lost, 0,
        "acknowledged writes lost: {:#?}",
        rep.violations
    );
    assert_eq!(
        (rep.lin_sync.violations, rep.lin_sync.inconclusive),
        (0, 0),
        "write + sync-read linearizability: {:#?}",
        rep.violations
    );
    assert_eq!(
        rep.session_violations, 0,
        "session guarantees: {:#?}",
        rep.violations
    );
    // The file says what happened: the schedule in the header, the kill's start and end.
    let h = History::parse(&std::fs::read_to_string(&r.history).unwrap()).unwrap();
    assert_eq!(h.header.schedule, r.schedule);
    let phases: Vec<&str> = h.nemesis.iter().map(|n| n.phase.as_str()).collect();
    assert_eq!(phases, ["start", "end"]);
    assert_eq!(h.ops.len(), rep.ops);
}

#[test]
fn a_kill_and_restart_of_corekeeper_loses_no_acknowledged_write() {
    let r = short_run(
        Launch::Serve(PathBuf::from(env!("CARGO_BIN_EXE_ckjepsen"))),
        "corekeeper",
    );
    assert_clean(&r);
}

/// ZooKeeper 3.8 is the reference row; it runs only where Debian's packages are
/// installed (tools/scripts/acceptance/run.sh installs them), and says so otherwise.
#[test]
fn a_kill_and_restart_of_zookeeper_when_installed() {
    use bench::servers::{JAVA_DIR, ZK_JARS};
    let missing: Vec<&&str> = ZK_JARS
        .iter()
        .filter(|j| !std::path::Path::new(JAVA_DIR).join(j).exists())
        .collect();
    let java = std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !missing.is_empty() || !java {
        eprintln!("skipped: ZooKeeper 3.8 is not installed (missing {missing:?}, java {java})");
        return;
    }
    let r = short_run(Launch::Zookeeper, "zookeeper");
    assert_clean(&r);
}

/// A client that goes silent longer than its session timeout: corekeeper expires the
/// session (the worker's reattach is refused with SESSIONEXPIRED) and the checkers see
/// no ephemeral of it afterwards, no lost write, no violation.
#[test]
fn a_silent_clients_session_expires_and_its_ephemerals_go() {
    use tools::hist::history::{Call, Outcome, Reply};
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ckjepsen-silence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = RunOptions {
        launch: Launch::Serve(PathBuf::from(env!("CARGO_BIN_EXE_ckjepsen"))),
        seed: 11,
        duration: Duration::from_millis(12_000),
        workers: WORKERS,
        fault_kinds: vec![FaultKind::Silence],
        faults: 1,
        session_timeout_ms: 4_000,
        out,
        ensemble: false,
    };
    let r = run_once(&o).unwrap_or_else(|e| panic!("silence run: {e}"));
    for v in &r.report.violations {
        print!("{}", v.render());
    }
    println!("{}", run_line(&r));
    assert_eq!(r.faults, 1, "the silence happened");
    assert!(r.report.violations.is_empty(), "no violation");
    assert_eq!(r.report.lost, 0);
    let h = History::parse(&std::fs::read_to_string(&r.history).unwrap()).unwrap();
    let expired = h
        .ops
        .iter()
        .filter(|op| {
            matches!(op.call, Call::Reconnect { .. })
                && matches!(op.outcome, Outcome::Fail(Reply::Error { code }) if code == -112)
        })
        .count();
    assert!(expired >= 1, "the silent worker's session expired");
}

/// A 3-node corekeeper ensemble whose leader is killed -9 under the workload and
/// restarted: no acknowledged write lost, writes and sync reads linearizable, session
/// guarantees kept across the moves to other members.
#[test]
fn a_kill_of_the_leader_of_a_corekeeper_ensemble_loses_no_acknowledged_write() {
    let r = run_shape(
        Launch::Serve(PathBuf::from(env!("CARGO_BIN_EXE_ckjepsen"))),
        "corekeeper-3node",
        true,
    );
    assert_clean(&r);
}
