//! End to end, in plain `cargo test`: a count-bounded ckbench run (3 s at most) against
//! a standalone corekeeper that this test starts in-process (`engine::server::run` on a
//! background thread: it never returns, which is fine for a test process), on a free
//! 127.0.0.1 port with a temporary data directory and one core.
//!
//! Asserts on counts only, never on speed: every op counted is a reply received (per
//! kind, per second and in total), the server saw at least that many requests and sent
//! at least that many replies (`mntr`), no errors, no warnings, and a run that ended
//! before its 3 s did so because it reached `--max-ops`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bench::config::{ConnectString, Load, RunConfig, Target};
use bench::progress::CollectProgress;
use bench::report::RunReport;
use bench::servers::four_letter;
use bench::workload::WorkloadKind;
use bench::zk::ZkConnector;
use bench::{output, runner, server_stats};

/// Longest wait for the in-process server to answer `ruok`.
const READY_TIMEOUT_MS_MAX: u64 = 20_000;
/// The op bound of the run (the 3 s duration is only the upper bound).
const MAX_OPS: u64 = 600;

/// Starts corekeeper in this process; returns its address once it answers `ruok`.
fn start_corekeeper(data: &std::path::Path) -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let text = format!(
        "dataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         4lw.commands.whitelist=*\ncores=1\npreAllocSize=4096\n",
        data.display()
    );
    let cfg = engine::config::Config::parse_zoo_cfg(&text).expect("zoo.cfg parses");
    let server = std::thread::spawn(move || engine::server::run(cfg));
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS_MAX);
    loop {
        if four_letter(&addr, "ruok").is_ok_and(|a| a == "imok") {
            return addr;
        }
        if server.is_finished() {
            panic!("corekeeper stopped during start-up: {:?}", server.join());
        }
        assert!(
            Instant::now() < deadline,
            "corekeeper did not answer ruok on {addr} within {READY_TIMEOUT_MS_MAX} ms"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counter(s: &server_stats::ServerStats, key: &str) -> f64 {
    *s.deltas()
        .get(key)
        .unwrap_or_else(|| panic!("mntr has no {key}: {:?}", s.after))
}

#[test]
fn a_short_bench_against_corekeeper_counts_every_reply() {
    let data = tempfile::tempdir().expect("tempdir");
    let addr = start_corekeeper(data.path());

    let mut cfg = RunConfig::defaults(7);
    cfg.target = Target::Corekeeper;
    cfg.label = "corekeeper".into();
    cfg.connect = ConnectString::parse(&addr).unwrap();
    cfg.workload.kind = WorkloadKind::Mix { read: 3, write: 1 };
    cfg.workload.key_count = 50;
    cfg.sessions = 4;
    cfg.load = Load::Closed { inflight: 4 };
    cfg.warmup_s = 0;
    cfg.duration_s = 3;
    cfg.max_ops = Some(MAX_OPS);

    let servers = cfg.connect.servers.clone();
    let mut warnings = Vec::new();
    let before = server_stats::snapshot(&servers, &mut warnings);
    let zk = ZkConnector::new(None).with_failover(servers.clone());
    let outcome = runner::run(&cfg, &zk, &mut CollectProgress::default()).expect("run");
    let after = server_stats::snapshot(&servers, &mut warnings);
    warnings.extend(outcome.warnings.clone());
    let mut report = RunReport::new(&cfg, &outcome.stats, warnings);
    report.servers = server_stats::pair(&servers, before, after);

    // Every op counted is one reply received, whichever way it is summed.
    assert!(report.ops > 0, "no ops: {}", report.to_text());
    assert!(report.ops <= MAX_OPS, "{} ops > --max-ops", report.ops);
    assert_eq!(report.latency.count, report.ops);
    let by_kind: u64 = report.kinds.iter().map(|k| k.ops).sum();
    assert_eq!(by_kind, report.ops, "{}", report.to_text());
    let by_second: u64 = report.intervals.iter().map(|i| i.ops).sum();
    assert_eq!(by_second, report.ops, "{}", report.to_text());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.kinds.len(), 2, "a 3/1 mix has gets and sets");
    if report.measured_s < cfg.duration_s as f64 {
        assert_eq!(
            report.ops, MAX_OPS,
            "ended early without reaching --max-ops"
        );
    }

    // The server agrees: at least one request in and one reply out per op counted.
    let [srv] = report.servers.as_slice() else {
        panic!("mntr before and after: {:?}", report.servers);
    };
    assert!(counter(srv, "zk_packets_received") >= report.ops as f64);
    assert!(counter(srv, "zk_packets_sent") >= report.ops as f64);
    assert!(!srv.per_core().is_empty(), "no ck_core_<n>_* keys in mntr");

    // The files a run writes, and the JSON reads back as it was.
    let out = tempfile::tempdir().expect("tempdir");
    output::write_run(out.path(), &report, &outcome.stats).expect("write");
    let back = output::read_reports(&[out.path().join("corekeeper.json")]).expect("read");
    assert_eq!(back, [report]);
}
