//! What a snapshot costs the shard core, and what reads and applies cost, on trees of
//! 10k / 100k / 1M znodes with 100-byte values. Not a pass/fail check (timings are
//! machine-dependent); run with
//! `cargo test --release -p engine --test tree_snapshot_cost -- --ignored --nocapture`.
//!
//! Times are this thread's CPU time (not wall time, so a busy machine that preempts
//! the thread inflates them less), the best of `RUNS`.
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

use engine::op::Op;
use engine::session::SessionConfig;
use engine::tree::NodeKind;
use engine::tree::read::read;
use engine::txn::{CreateTxn, Db, Txn, TxnBody, TxnHeader, TxnOp};
use transport::jute::Acl;

/// Children per directory: the tree is `/d{k}/n{i}`.
const FANOUT: usize = 1000;
const VALUE_BYTES: usize = 100;
/// Reads and writes timed per size.
const OPS: usize = 200_000;
/// Repeats of each measurement; the fastest counts.
const RUNS: usize = 3;

/// The process's resident memory in MiB (rough: freed memory may stay resident).
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// This thread's CPU time in ns.
fn cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Best-of-`RUNS` CPU ns of `f`, and its last result.
fn best<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    let mut min = u64::MAX;
    for _ in 0..RUNS {
        let start = cpu_ns();
        let r = f();
        min = min.min(cpu_ns() - start);
        out = Some(r);
    }
    (min as f64, out.expect("RUNS > 0"))
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

/// A fixed pseudo-random sequence of leaf indexes below `n` (xorshift).
fn picks(n: usize, count: usize) -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        })
        .collect()
}

fn time_reads(db: &mut Db, n: usize) -> f64 {
    let ops: Vec<Op> = picks(n, OPS)
        .into_iter()
        .map(|i| Op::GetData {
            path: leaf(i),
            watch: false,
        })
        .collect();
    let (ns, _) = best(|| {
        for op in &ops {
            let r = read(&mut db.tree, 1, &[], op);
            debug_assert!(r.is_ok());
            std::hint::black_box(r.ok());
        }
    });
    ns / OPS as f64
}

fn set_txns(db: &Db, n: usize, count: usize) -> Vec<Txn> {
    let zxid = db.last_zxid();
    picks(n, count)
        .into_iter()
        .enumerate()
        .map(|(k, i)| {
            let op = TxnOp::SetData {
                path: leaf(i),
                data: Some(vec![k as u8; VALUE_BYTES]),
                version: 1,
            };
            txn(zxid + 1 + k as i64, op)
        })
        .collect()
}

/// CPU ns per apply of a batch of `count` setData txns on random leaves; with
/// `hold_image`, a snapshot image taken just before each batch is alive meanwhile, so
/// the first change to each node (and trie path) copies it.
fn time_applies(db: &mut Db, n: usize, count: usize, hold_image: bool) -> f64 {
    let mut min = u64::MAX;
    for _ in 0..RUNS {
        let txns = set_txns(db, n, count);
        let image = hold_image.then(|| db.snapshot_image());
        let start = cpu_ns();
        for t in &txns {
            std::hint::black_box(db.apply(t));
        }
        min = min.min(cpu_ns() - start);
        drop(image);
    }
    min as f64 / count as f64
}

#[test]
#[ignore]
fn snapshot_stall_and_hot_path_cost() {
    for n in [10_000, 100_000, 1_000_000] {
        let rss = rss_mib();
        let mut db = build(n);
        println!(
            "n={n:>9}: building it took {:.0} MiB more resident",
            rss_mib() - rss
        );
        let read_ns = time_reads(&mut db, n);
        let apply_ns = time_applies(&mut db, n, OPS, false);
        let (image_ns, image) = best(|| db.snapshot_image());
        let cow_ns = time_applies(&mut db, n, OPS / 10, true);
        let (bytes_ns, bytes) = best(|| image.to_bytes());
        drop(image);
        let (old_ns, _) = best(|| db.snapshot());
        println!(
            "n={n:>9}: on core: snapshot_image {:>8.3} ms (whole snapshot() on one thread {:>9.2} ms); \
             off core: to_bytes {:>9.2} ms ({} bytes); getData {read_ns:>5.0} ns; \
             setData apply {apply_ns:>5.0} ns, {cow_ns:>5.0} ns while an image is held",
            image_ns / 1e6,
            old_ns / 1e6,
            bytes_ns / 1e6,
            bytes.len(),
        );
    }
}
