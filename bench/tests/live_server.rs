//! Every workload against a live ZooKeeper-protocol server (Apache ZooKeeper or
//! corekeeper). It needs one, so it is `#[ignore]`d: a plain `cargo test` skips it
//! (and says so) instead of passing without checking anything. Run it with a server
//! named by `CKBENCH_LIVE_CONNECT`, e.g.
//! `CKBENCH_LIVE_CONNECT=127.0.0.1:2181/ckbench-test cargo test -p bench --test live_server -- --ignored`.
//! Bounded by op count.

use bench::config::{ConnectString, Load, RunConfig, Target};
use bench::progress::CollectProgress;
use bench::runner;
use bench::workload::{KeyDist, WorkloadKind, WorkloadSpec};
use bench::zk::ZkConnector;

#[test]
#[ignore = "needs a live server: CKBENCH_LIVE_CONNECT=host:port[/chroot] cargo test -p bench --test live_server -- --ignored"]
fn every_workload_runs_clean_on_a_live_server() {
    let connect = std::env::var("CKBENCH_LIVE_CONNECT")
        .expect("set CKBENCH_LIVE_CONNECT=host:port[/chroot] to name the server");
    let connect = ConnectString::parse(&connect).expect("CKBENCH_LIVE_CONNECT");
    let kinds = [
        WorkloadKind::Get,
        WorkloadKind::Set,
        WorkloadKind::Create,
        WorkloadKind::Delete,
        WorkloadKind::Exists,
        WorkloadKind::Children,
        WorkloadKind::Mix { read: 9, write: 1 },
        WorkloadKind::WatchFanout,
        WorkloadKind::Lock,
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        for load in [Load::Closed { inflight: 2 }, Load::Open { rate: 2000.0 }] {
            if kind == WorkloadKind::Lock && matches!(load, Load::Open { .. }) {
                continue;
            }
            let mut cfg = RunConfig::defaults(i as u64);
            cfg.target = Target::Zookeeper;
            cfg.connect = connect.clone();
            cfg.workload = WorkloadSpec {
                kind,
                key_count: 200,
                dist: KeyDist::Zipf(0.99),
                value_bytes: 64,
            };
            cfg.sessions = 5;
            cfg.load = load;
            cfg.warmup_s = 0;
            cfg.max_ops = Some(400);
            let zk = ZkConnector::new(connect.chroot.clone());
            let out = runner::run(&cfg, &zk, &mut CollectProgress::default())
                .unwrap_or_else(|e| panic!("{kind} {load:?}: {e}"));
            assert!(out.stats.ops() > 0, "{kind} {load:?}: no ops");
            assert!(
                out.stats.errors().is_empty(),
                "{kind} {load:?}: {:?}",
                out.stats.errors()
            );
            assert!(
                out.warnings.is_empty(),
                "{kind} {load:?}: {:?}",
                out.warnings
            );
            eprintln!(
                "{kind} {load:?}: {} ops, {:.0} ops/s",
                out.stats.ops(),
                out.stats.ops_per_s()
            );
        }
    }
}
