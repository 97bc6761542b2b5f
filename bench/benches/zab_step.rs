//! Zab leader step: what the pure broadcast core (`engine::zab::Leader`) costs per
//! proposal with many in flight. Three voters (the leader and two followers); each
//! iteration proposes a pipeline of N txns of 100 bytes, reports the leader's own WAL
//! durable, feeds both followers' cumulative acks and drains the actions (commit
//! included). Acks come either one per proposal per follower (`ack_each`, the worst
//! case) or one per follower for the whole pipeline (`ack_batch`, what group commit
//! gives). No IO: the cost of the state machine alone, per proposal.
//!
//! Also `follower`: a follower taking N proposals, one persisted report and one
//! commit. The txn bytes are one shared `Arc<[u8]>`, as the runtime will hand over
//! the archived txn; the bench measures the core, not the allocation.
//!
//! Run: `cargo bench -p bench --bench zab_step`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::zab::{
    Action, Body, Follower, FollowerConfig, Leader, LeaderConfig, Member, Msg, Role, TxnBytes, Zxid,
};

const PIPELINES: [usize; 4] = [1, 100, 1000, 16_384];
const EPOCH: u32 = 1;
const TXN_BYTES: usize = 100;

fn leader() -> Leader {
    let members = [1, 2, 3]
        .map(|id| Member {
            id,
            role: Role::Participant,
        })
        .to_vec();
    let mut l = Leader::new(LeaderConfig::new(1, EPOCH, members), 0, 0, Vec::new()).unwrap();
    let mut out = Vec::new();
    for id in [2, 3] {
        l.follower_connected(id, 0, &mut out).unwrap();
        let nl = Msg::new(EPOCH, Body::AckNewLeader { zxid: 0 });
        l.step(id, nl, &mut out).unwrap();
    }
    assert!(l.is_ready());
    l
}

fn ack(l: &mut Leader, from: u64, zxid: Zxid, out: &mut Vec<Action>) {
    l.step(from, Msg::new(EPOCH, Body::Ack { zxid }), out)
        .unwrap();
}

/// One pipeline of `n` proposals through the leader, to commit.
fn pipeline(l: &mut Leader, txn: &TxnBytes, n: usize, batched: bool, out: &mut Vec<Action>) {
    // The first zxid of the pipeline (an epoch's first is counter 1, not last + 1).
    let first = l.next_zxid().unwrap();
    l.propose(first, txn.clone(), out).unwrap();
    for _ in 1..n {
        let z = l.next_zxid().unwrap();
        l.propose(z, txn.clone(), out).unwrap();
    }
    let last = l.last_zxid();
    l.persisted(last, out).unwrap();
    if batched {
        ack(l, 2, last, out);
        ack(l, 3, last, out);
    } else {
        for z in first..=last {
            ack(l, 2, z, out);
            ack(l, 3, z, out);
        }
    }
    debug_assert_eq!(l.committed_zxid(), last);
    black_box(out.len());
    out.clear();
}

fn zab_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("zab_step");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    let txn: TxnBytes = Arc::from(vec![7u8; TXN_BYTES]);
    for n in PIPELINES {
        g.throughput(Throughput::Elements(n as u64));
        for (name, batched) in [("ack_each", false), ("ack_batch", true)] {
            let mut l = leader();
            let mut out = Vec::new();
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| pipeline(&mut l, &txn, n, batched, &mut out))
            });
        }
        let config = FollowerConfig {
            id: 2,
            leader: 1,
            epoch: EPOCH,
            role: Role::Participant,
            zxid_counter_max: u32::MAX,
        };
        let mut f = Follower::new(config, 0, 0).unwrap();
        let mut out = Vec::new();
        f.connect(&mut out);
        f.step(1, Msg::new(EPOCH, Body::Diff { from: 0 }), &mut out)
            .unwrap();
        f.step(1, Msg::new(EPOCH, Body::NewLeader { zxid: 0 }), &mut out)
            .unwrap();
        g.bench_function(BenchmarkId::new("follower", n), |b| {
            b.iter(|| {
                let mut z = f.last_logged();
                for _ in 0..n {
                    z += 1;
                    let p = Body::Proposal {
                        zxid: z,
                        txn: txn.clone(),
                    };
                    f.step(1, Msg::new(EPOCH, p), &mut out).unwrap();
                }
                f.persisted(z, &mut out).unwrap();
                f.step(1, Msg::new(EPOCH, Body::Commit { zxid: z }), &mut out)
                    .unwrap();
                black_box(out.len());
                out.clear();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, zab_step);
criterion_main!(benches);
