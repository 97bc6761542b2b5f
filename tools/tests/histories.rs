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
    run_shape(launch, name, 1)
}

fn run_shape(launch: Launch, name: &str, nodes: usize) -> RunResult {
    run_with(launch, name, nodes, FaultKind::Kill, 7, RUN_MS)
}

/// Ensembles of one system take the same addresses (bench's plan, ports picked when
/// free): the tests here that start one take turns.
static ENSEMBLES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_with(
    launch: Launch,
    name: &str,
    nodes: usize,
    fault: FaultKind,
    seed: u64,
    run_ms: u64,
) -> RunResult {
    let o = options(name, nodes, fault, seed, run_ms);
    run_options(launch, name, o)
}

/// A run's options: one fault of `fault`, the workload's session timeout.
fn options(name: &str, nodes: usize, fault: FaultKind, seed: u64, run_ms: u64) -> RunOptions {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ckjepsen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    RunOptions {
        launch: Launch::Zookeeper, // set by run_options
        seed,
        duration: Duration::from_millis(run_ms),
        workers: WORKERS,
        fault_kinds: vec![fault],
        faults: 1,
        session_timeout_ms: tools::hist::workload::SESSION_TIMEOUT_MS,
        out,
        nodes,
        tick_ms: tools::hist::runner::ENSEMBLE_TICK_MS_DEFAULT,
        replication: engine::config::Replication::Zab,
        netns: false,
    }
}

/// Runs `o` with `launch` (ensembles one at a time) and prints what it found.
fn run_options(launch: Launch, name: &str, o: RunOptions) -> RunResult {
    let _turn = (o.nodes > 1).then(|| ENSEMBLES.lock().unwrap_or_else(|e| e.into_inner()));
    let o = RunOptions { launch, ..o };
    let r = run_once(&o).unwrap_or_else(|e| panic!("{name} run: {e}"));
    for v in &r.report.violations {
        print!("{}", v.render());
    }
    println!("{}", run_line(&r));
    r
}

fn corekeeper() -> Launch {
    Launch::Serve(PathBuf::from(env!("CARGO_BIN_EXE_ckjepsen")))
}

/// Reattaches the server refused with SESSIONEXPIRED.
fn expired_reattaches(r: &RunResult) -> usize {
    use tools::hist::history::{Call, Outcome, Reply};
    let h = History::parse(&std::fs::read_to_string(&r.history).unwrap()).unwrap();
    h.ops
        .iter()
        .filter(|op| {
            matches!(op.call, Call::Reconnect { .. })
                && matches!(op.outcome, Outcome::Fail(Reply::Error { code }) if code == -112)
        })
        .count()
}

/// How many servers the final reads were made at (one process per server).
fn final_readers(h: &History) -> usize {
    let finals: std::collections::HashSet<u32> = h
        .ops
        .iter()
        .filter(|o| tools::hist::history::is_final(o.process))
        .map(|o| o.process)
        .collect();
    finals.len()
}

/// `faults` happened, something succeeded, and no acknowledged write was lost.
fn assert_nothing_lost(r: &RunResult, faults: usize) {
    assert_eq!(r.faults, faults, "the faults happened: {:?}", r.schedule);
    let rep = &r.report;
    assert!(rep.ok > 0, "some ops succeeded");
    assert_eq!(
        rep.lost, 0,
        "acknowledged writes lost: {:#?}",
        rep.violations
    );
}

fn assert_clean(r: &RunResult) {
    assert_nothing_lost(r, 1);
    let rep = &r.report;
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
    let r = short_run(corekeeper(), "corekeeper");
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
    let o = RunOptions {
        session_timeout_ms: 4_000,
        ..options("silence", 1, FaultKind::Silence, 11, 12_000)
    };
    let r = run_options(corekeeper(), "silence", o);
    assert_eq!(r.faults, 1, "the silence happened");
    assert!(r.report.violations.is_empty(), "no violation");
    assert_eq!(r.report.lost, 0);
    assert!(
        expired_reattaches(&r) >= 1,
        "the silent worker's session expired"
    );
}

/// A 3-node corekeeper ensemble whose leader is killed -9 under the workload and
/// restarted: no acknowledged write lost, writes and sync reads linearizable, session
/// guarantees kept across the moves to other members.
#[test]
fn a_kill_of_the_leader_of_a_corekeeper_ensemble_loses_no_acknowledged_write() {
    let r = run_shape(corekeeper(), "corekeeper-3node", 3);
    assert_clean(&r);
}

/// A 3-node corekeeper ensemble partitioned (its peer links cut through the mesh's
/// proxies, clients still reaching every member) for longer than syncLimit: the side
/// without a majority stops serving, the other elects or keeps a leader; after healing
/// nothing acknowledged is lost, writes and sync reads are linearizable, and every
/// server's final state is the same.
#[test]
fn a_partitioned_corekeeper_ensemble_loses_no_acknowledged_write() {
    let seed = 21;
    let run_ms = 9_000;
    let r = run_with(
        corekeeper(),
        "corekeeper-partition",
        3,
        FaultKind::Partition,
        seed,
        run_ms,
    );
    // The seed's partition outlasts syncLimit (5 ticks), so members notice it.
    let sync_limit_ms = 5 * u64::from(tools::hist::runner::ENSEMBLE_TICK_MS_DEFAULT);
    assert!(
        r.schedule[0].for_ms > sync_limit_ms,
        "pick a seed whose partition outlasts syncLimit: {:?}",
        r.schedule
    );
    assert_clean(&r);
    let h = History::parse(&std::fs::read_to_string(&r.history).unwrap()).unwrap();
    assert!(h.nemesis[0].detail.contains('|'), "{:?}", h.nemesis);
    assert_eq!(final_readers(&h), 3, "final reads at every member");
}

/// The same partition made by the kernel: every member in its own network namespace
/// and nftables dropping the packets between sides (established connections go
/// silent, no reset), clients still reaching every member through the lab's bridge.
#[test]
fn a_partition_by_nftables_between_network_namespaces_loses_no_acknowledged_write() {
    let mut o = options("corekeeper-netns", 3, FaultKind::Partition, 21, 9_000);
    o.netns = true;
    let r = run_options(corekeeper(), "corekeeper-netns", o);
    assert_clean(&r);
    let h = History::parse(&std::fs::read_to_string(&r.history).unwrap()).unwrap();
    assert!(h.nemesis[0].detail.contains('|'), "{:?}", h.nemesis);
    assert!(
        h.header
            .server
            .split(',')
            .all(|s| s.starts_with(&format!("{}.", bench::netns::SUBNET_PREFIX))),
        "members in the lab's namespaces: {}",
        h.header.server
    );
}

/// Each member's data directory on a FUSE pass-through: fsyncs of one member stall
/// (its acks wait; the others still make a quorum), or fail with EIO (it stops rather
/// than acknowledge what may not be durable, and is restarted on its data once
/// healed). Nothing acknowledged is lost, no promise is broken, and every member
/// serves the final reads.
#[test]
fn stalled_and_failing_fsyncs_lose_no_acknowledged_write() {
    // A FUSE mount needs the device (and root, which CI has); the faultfs unit tests
    // skip the same way.
    if !std::path::Path::new("/dev/fuse").exists() {
        eprintln!("skipped: no /dev/fuse on this machine");
        return;
    }
    let mut o = options("corekeeper-fsync", 3, FaultKind::Fsync, 3, 9_000);
    o.faults = 4;
    let out = o.out.clone();
    let r = run_options(corekeeper(), "corekeeper-fsync", o);
    assert_nothing_lost(&r, 4);
    let rep = &r.report;
    assert_eq!(rep.promise_violations(), 0, "{:#?}", rep.violations);
    let h = History::parse(&std::fs::read_to_string(&r.history).unwrap()).unwrap();
    let details: Vec<&str> = h.nemesis.iter().map(|n| n.detail.as_str()).collect();
    // The seed's draws: three stalls, then EIO at node 3.
    assert!(details.iter().any(|d| d.contains("stall")), "{details:?}");
    assert!(
        details.contains(&"node3: fsyncs fail with EIO"),
        "{details:?}"
    );
    let log =
        std::fs::read_to_string(out.join("corekeeper-3-server/logs/corekeeper-node3.log")).unwrap();
    if log.contains("stopping to avoid acknowledging lost writes") {
        assert!(
            log.matches("corekeeper serving").count() >= 2,
            "node 3 stopped on EIO and was not restarted"
        );
    }
    assert_eq!(final_readers(&h), 3, "final reads at every member");
}

/// The wall clock of a standalone corekeeper steps by up to an hour, forward and back,
/// under the workload (the engine's fault hook): sessions live on the monotonic clock,
/// so none expires for it, and nothing is lost or out of order.
#[test]
fn wall_clock_steps_expire_no_session_and_lose_nothing() {
    assert_eq!(
        bench::ensemble::FAULT_CLOCK_FILE_ENV,
        engine::runtime::clock::FAULT_CLOCK_FILE_ENV,
        "bench names the engine's hook"
    );
    assert_eq!(
        bench::ensemble::FAULT_FSYNC_STALL_FILE_ENV,
        engine::runtime::fault::FAULT_FSYNC_STALL_FILE_ENV,
        "bench names the engine's hook"
    );
    let o = RunOptions {
        faults: 3,
        session_timeout_ms: 4_000,
        ..options("clock", 1, FaultKind::Clock, 5, 8_000)
    };
    let r = run_options(corekeeper(), "clock", o);
    assert_eq!(r.faults, 3, "the steps happened");
    assert!(r.report.violations.is_empty(), "no violation");
    assert_eq!(r.report.lost, 0);
    let h = History::parse(&std::fs::read_to_string(&r.history).unwrap()).unwrap();
    let steps: Vec<&str> = h
        .nemesis
        .iter()
        .filter(|n| n.phase == "start")
        .map(|n| n.detail.as_str())
        .collect();
    assert!(steps.iter().all(|d| d.contains("wall clock")), "{steps:?}");
    assert_eq!(
        expired_reattaches(&r),
        0,
        "a wall-clock step expired a session"
    );
}

/// The same kind of run with CRAQ (`--replication craq`): a partition and a slow,
/// lossy link between members, and still every read at every server is
/// linearizable (Zab promises that only for reads after `sync`), nothing is lost, and
/// every server ends with the same state.
#[test]
fn a_craq_ensemble_under_partition_and_slow_links_answers_only_linearizable_reads() {
    let mut o = options("corekeeper-craq", 3, FaultKind::Partition, 21, 9_000);
    o.fault_kinds = vec![FaultKind::Partition, FaultKind::Slow];
    o.faults = 2;
    o.replication = engine::config::Replication::Craq;
    let r = run_options(corekeeper(), "corekeeper-craq", o);
    assert_every_read_linearizable(&r, "corekeeper-craq", 2);
}

/// A chained mode's run (CRAQ, plain chain): `faults` happened, something succeeded,
/// nothing acknowledged was lost, and every read, plain ones too, was linearizable.
fn assert_every_read_linearizable(r: &RunResult, system: &str, faults: usize) {
    assert_eq!(r.system, system);
    assert_nothing_lost(r, faults);
    let rep = &r.report;
    assert_eq!(
        (rep.lin_all.violations, rep.lin_all.inconclusive),
        (0, 0),
        "{system}: every read is linearizable: {:#?}",
        rep.violations
    );
    assert_eq!(rep.promise_violations(), 0, "{:#?}", rep.violations);
}

/// Plain chain replication (`--replication chain`): only the tail takes clients, so
/// workers move through the members until the tail takes them; a partition between
/// members, and still nothing is lost and every read is linearizable.
#[test]
fn a_chain_ensemble_under_partition_loses_nothing_and_reads_linearizably() {
    let mut o = options("corekeeper-chain", 3, FaultKind::Partition, 23, 7_000);
    o.replication = engine::config::Replication::Chain;
    let r = run_options(corekeeper(), "corekeeper-chain", o);
    assert_every_read_linearizable(&r, "corekeeper-chain", 1);
}
