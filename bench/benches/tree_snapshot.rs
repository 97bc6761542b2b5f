//! What a snapshot costs the shard core, and what reads and applies cost around it, on
//! trees of 10k / 100k / 1M znodes (`/d{k}/n{i}`, 1000 children a directory, 100-byte
//! values), straight on `Db` (no prep, no IO):
//! - `image`: `Db::snapshot_image`, the copy-on-write image the shard core takes (the
//!   stall a snapshot costs it);
//! - `to_bytes`: serialising that image, done on another thread in the server;
//! - `restore`: `Db::restore` of those bytes (validate, decode, rebuild the tree), what
//!   a restart and a follower's SNAP cost before serving;
//! - `get`: a getData read;
//! - `set_apply`: applying a setData txn, and `set_apply_image_held` the same while an
//!   image taken just before every 20k applies is alive, so the first change to each
//!   node (and map shard) copies it.
//!
//! Setting up prints how much resident memory each tree took (rough: freed memory may
//! stay resident).
//!
//! Run: `cargo bench -p bench --bench tree_snapshot` (the 1M tree takes a few seconds
//! to build; `to_bytes` at 1M over a second an iteration).
//!
//! Measured on a busy 2-core machine (+-30%), at 10k / 100k / 1M znodes, before the
//! copy-on-write tree (whole `snapshot()` on the shard core) -> after:
//! - on-core stall per snapshot: 3.3-7 ms / 89-117 ms / 1.46-1.8 s -> 1 / 2 / 14 us
//! - getData: 134-177 / 408-584 / 852-1078 ns -> 209-263 / 491-652 / 891-1293 ns
//! - setData apply: 130-178 / 400-650 / 806-1058 ns -> 199-269 / 541-662 / 917-1234 ns,
//!   and 314-490 / 1026-1240 / 7400-8300 ns over the first 20k writes while an image
//!   is held (each shard is copied on its first change: O(n) in all, spread out)
//! - serialising, now on another thread: 1.15-1.4 s at 1M
//! - resident memory of the 1M tree: ~468 MiB -> ~481 MiB
//!
//! (Moved from the ignored test `engine/tests/tree_snapshot_cost.rs`, which timed
//! thread CPU time, best of 3.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use engine::op::Op;
use engine::session::SessionConfig;
use engine::tree::NodeKind;
use engine::tree::read::read;
use engine::txn::{CreateTxn, Db, Txn, TxnBody, TxnHeader, TxnOp};
use transport::jute::Acl;

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// Children per directory: the tree is `/d{k}/n{i}`.
const FANOUT: usize = 1000;
const VALUE_BYTES: usize = 100;
/// Distinct getData requests, made before the timing and cycled through.
const GETS: usize = 1 << 16;
/// setData applies per image in `set_apply_image_held`.
const APPLIES_PER_IMAGE: u64 = 20_000;

/// The process's resident memory in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

fn txn(zxid: i64, op: TxnOp) -> Txn {
    Txn {
        header: TxnHeader {
            session: 0,
            cxid: 0,
            zxid,
            time_ms: zxid,
        },
        body: TxnBody::Op(op),
    }
}

fn create(path: String, parent_cversion: i32) -> TxnOp {
    TxnOp::Create(CreateTxn {
        path,
        data: Some(vec![7; VALUE_BYTES]),
        acl: Acl::open_unsafe(),
        kind: NodeKind::Persistent,
        parent_cversion,
    })
}

fn leaf(i: usize) -> String {
    format!("/d{}/n{i}", i / FANOUT)
}

fn build(n: usize) -> Db {
    let mut db = Db::new(SessionConfig::default());
    let mut zxid = 0;
    for d in 0..n.div_ceil(FANOUT) {
        zxid += 1;
        db.apply(&txn(zxid, create(format!("/d{d}"), d as i32 + 1)));
    }
    for i in 0..n {
        zxid += 1;
        db.apply(&txn(zxid, create(leaf(i), (i % FANOUT) as i32 + 1)));
    }
    db
}

/// A pseudo-random leaf index below `n` (xorshift on `x`).
fn pick(x: &mut u64, n: usize) -> usize {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    (*x % n as u64) as usize
}

/// `count` setData txns on random leaves, after the state's last zxid.
fn set_txns(db: &Db, n: usize, count: u64, x: &mut u64) -> Vec<Txn> {
    let zxid = db.last_zxid();
    (0..count)
        .map(|k| {
            let op = TxnOp::SetData {
                path: leaf(pick(x, n)),
                data: Some(vec![k as u8; VALUE_BYTES]),
                version: 1,
            };
            txn(zxid + 1 + k as i64, op)
        })
        .collect()
}

/// Time to apply `iters` setData txns (made outside the timing); with `hold_image`, a
/// fresh image is alive during every `APPLIES_PER_IMAGE` of them.
fn time_applies(db: &mut Db, n: usize, iters: u64, hold_image: bool, x: &mut u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let count = left.min(APPLIES_PER_IMAGE);
        let txns = set_txns(db, n, count, x);
        let image = hold_image.then(|| db.snapshot_image());
        let start = Instant::now();
        for t in &txns {
            black_box(db.apply(t));
        }
        total += start.elapsed();
        drop(image);
        left -= count;
    }
    total
}

fn tree_snapshot(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_snapshot");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in SIZES {
        let rss = rss_mib();
        let mut db = build(n);
        eprintln!(
            "tree_snapshot: n={n}: building it took {:.0} MiB more resident",
            rss_mib() - rss
        );
        g.bench_function(BenchmarkId::new("image", n), |b| {
            b.iter_with_large_drop(|| db.snapshot_image())
        });
        let image = db.snapshot_image();
        g.bench_function(BenchmarkId::new("to_bytes", n), |b| {
            b.iter_with_large_drop(|| image.to_bytes())
        });
        let bytes = image.to_bytes();
        drop(image);
        g.bench_function(BenchmarkId::new("restore", n), |b| {
            b.iter_with_large_drop(|| Db::restore(&bytes, SessionConfig::default(), 0).unwrap())
        });
        drop(bytes);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let gets: Vec<Op> = (0..GETS)
            .map(|_| Op::GetData {
                path: leaf(pick(&mut x, n)),
                watch: false,
            })
            .collect();
        let mut i = 0;
        g.bench_function(BenchmarkId::new("get", n), |b| {
            b.iter(|| {
                i = (i + 1) % GETS;
                black_box(read(&mut db.tree, 1, &[], &gets[i]).ok())
            })
        });
        g.bench_function(BenchmarkId::new("set_apply", n), |b| {
            b.iter_custom(|iters| time_applies(&mut db, n, iters, false, &mut x))
        });
        g.bench_function(BenchmarkId::new("set_apply_image_held", n), |b| {
            b.iter_custom(|iters| time_applies(&mut db, n, iters, true, &mut x))
        });
    }
    g.finish();
}

criterion_group!(benches, tree_snapshot);
criterion_main!(benches);
