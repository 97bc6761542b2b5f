//! Prep and apply without the shard core: what a write costs when writes are pipelined,
//! 64 prepped (each seeing the ones before it, as outstanding changes) before the 64
//! are encoded, decoded (as the WAL and a follower see them) and applied. One
//! iteration is a create, a setData and a delete of one node under `/t` (3 writes):
//! the creates of all iterations go first, then the sets, then the deletes, so the
//! tree grows to the iteration count and back.
//!
//! Run: `cargo bench -p bench --bench prep_apply`. (Moved from the ignored test
//! `throughput` in `engine/tests/tree_ops.rs`.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use engine::op::{Op, SESSION_PASSWORD_LEN};
use engine::prep::{Prep, PrepConfig, RequestCtx};
use engine::session::SessionConfig;
use engine::txn::{Db, Txn};
use transport::jute::{Acl, CreateMode};

const SESSION: i64 = 0xA;
/// Writes prepped before they are applied.
const BATCH: usize = 64;

struct Pipeline {
    db: Db,
    prep: Prep,
    batch: Vec<Txn>,
    cxid: i32,
}

impl Pipeline {
    fn new() -> Pipeline {
        let mut p = Pipeline {
            db: Db::new(SessionConfig::from_tick(100)),
            prep: Prep::new(0, PrepConfig::default()),
            batch: Vec::with_capacity(BATCH),
            cxid: 0,
        };
        p.write(&Op::CreateSession {
            session_id: SESSION,
            timeout_ms: 30_000,
            password: [7; SESSION_PASSWORD_LEN],
        });
        p.write(&create("/t".into()));
        p.apply_batch();
        p
    }

    /// Preps `op`; applies the batch once it holds `BATCH`.
    fn write(&mut self, op: &Op) {
        self.cxid = self.cxid.wrapping_add(1);
        let req = RequestCtx {
            session: SESSION,
            cxid: self.cxid,
            auth: &[],
        };
        let t = self.prep.prep(&self.db, &req, op, 10_000);
        self.batch.push(t);
        if self.batch.len() == BATCH {
            self.apply_batch();
        }
    }

    fn apply_batch(&mut self) {
        for t in self.batch.drain(..) {
            let bytes = t.to_bytes();
            let t = Txn::from_bytes(&bytes).expect("a txn round trip");
            let a = self.db.apply(&t);
            self.prep.applied(a.zxid);
            black_box(a);
        }
    }
}

fn create(path: String) -> Op {
    Op::Create {
        path,
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        mode: CreateMode::Persistent,
        ttl_ms: None,
        container: false,
    }
}

fn prep_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("prep_apply");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let mut p = Pipeline::new();
    g.bench_function("create_set_delete_batch64", |b| {
        b.iter_custom(|iters| {
            let paths: Vec<String> = (0..iters).map(|i| format!("/t/n{i}")).collect();
            let start = Instant::now();
            for path in &paths {
                p.write(&create(path.clone()));
            }
            for path in &paths {
                p.write(&Op::SetData {
                    path: path.clone(),
                    data: Some(b"w".to_vec()),
                    version: -1,
                });
            }
            for path in &paths {
                p.write(&Op::Delete {
                    path: path.clone(),
                    version: -1,
                });
            }
            p.apply_batch();
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, prep_apply);
criterion_main!(benches);
