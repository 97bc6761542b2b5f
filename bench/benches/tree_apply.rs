//! Tree apply: what one request costs the shard's pure pipeline (`ShardCore`: prep,
//! archive the txn, apply, reply) on trees of 10k and 1M znodes, for getData, setData
//! and a create+delete pair. No IO: "durable" is reported right after each write, so
//! this is the CPU a shard core spends per request, the ceiling its disk and network
//! then lower.
//!
//! Run: `cargo bench -p bench --bench tree_apply` (setting up the 1M tree takes a few
//! seconds).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use engine::op::{Op, SESSION_PASSWORD_LEN};
use engine::prep::PrepConfig;
use engine::session::SessionConfig;
use engine::shard::{Action, ClientRef, ConnId, ShardCore};
use engine::txn::Db;
use transport::jute::{Acl, CreateMode};

const SESSION: i64 = 1;
const SIZES: [usize; 2] = [10_000, 1_000_000];

struct Bench {
    core: ShardCore,
    out: Vec<Action>,
    xid: i32,
    n: usize,
}

impl Bench {
    /// A core with one session and `n` znodes of 100 bytes under `/b`.
    fn new(n: usize) -> Bench {
        let core = ShardCore::new(
            Db::new(SessionConfig::from_tick(2000)),
            PrepConfig::default(),
        );
        let mut b = Bench {
            core,
            out: Vec::new(),
            xid: 0,
            n,
        };
        let password = [7; SESSION_PASSWORD_LEN];
        b.write(Op::CreateSession {
            session_id: SESSION,
            timeout_ms: 30_000,
            password,
        });
        b.write(create("/b".into()));
        for i in 0..n {
            b.send(create(format!("/b/n{i}")));
            if i % 1024 == 1023 {
                b.durable();
            }
        }
        b.durable();
        b
    }

    fn send(&mut self, op: Op) {
        self.xid = self.xid.wrapping_add(1);
        let client = ClientRef {
            conn: ConnId { core: 0, id: 1 },
            session: SESSION,
            xid: self.xid,
        };
        self.core
            .request(client, &[], op, engine::shard::Now::at(0), &mut self.out);
    }

    fn durable(&mut self) {
        self.core
            .durable(self.core.last_prepped_zxid(), &mut self.out);
        self.out.clear();
    }

    /// One request through the pipeline, made durable at once.
    fn write(&mut self, op: Op) {
        self.send(op);
        self.durable();
    }
}

fn create(path: String) -> Op {
    Op::Create {
        path,
        data: Some(vec![1; 100]),
        acl: Acl::open_unsafe(),
        mode: CreateMode::Persistent,
        ttl_ms: None,
        container: false,
    }
}

fn tree_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_apply");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in SIZES {
        let mut b = Bench::new(n);
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("get", n), |bench| {
            bench.iter(|| {
                i = (i + 7919) % b.n;
                b.send(Op::GetData {
                    path: format!("/b/n{i}"),
                    watch: false,
                });
                black_box(b.out.pop());
            })
        });
        g.bench_function(BenchmarkId::new("set", n), |bench| {
            bench.iter(|| {
                i = (i + 7919) % b.n;
                b.write(Op::SetData {
                    path: format!("/b/n{i}"),
                    data: Some(vec![2; 100]),
                    version: -1,
                });
            })
        });
        g.bench_function(BenchmarkId::new("create_delete", n), |bench| {
            bench.iter(|| {
                b.write(create("/b/x".into()));
                b.write(Op::Delete {
                    path: "/b/x".into(),
                    version: -1,
                });
            })
        });
    }
    g.finish();
}

criterion_group!(benches, tree_apply);
criterion_main!(benches);
