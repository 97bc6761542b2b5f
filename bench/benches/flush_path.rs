//! Where a shard's flush runs: the latency of one durable 100 B write (a `pwrite` into a
//! pre-written file, then `fdatasync`) as a glommio executor sees it, three ways:
//!
//! - `inline`: `fdatasync` on the executor's own thread (it blocks the core: every
//!   other connection waits, so the server cannot do this; the floor of the others);
//! - `blocking_pool`: handed to glommio's blocking thread pool (`spawn_blocking`), the
//!   executor woken when it ends: what the shard driver does today
//!   (`engine/src/runtime/driver.rs`, `start_flush`);
//! - `io_uring`: `IORING_OP_FSYNC` (DATASYNC) through the executor's own ring
//!   (glommio `BufferedFile::fdatasync`), the completion reaped by the reactor.
//!
//! The executor parks at once when idle (no spin), as an ensemble member's does
//! (`SPIN_BEFORE_PARK_US_ENSEMBLE`). The contenders run in turn, round after round
//! (the disk is noisy), and each one's median and p90 are printed with its ratio to
//! `inline`.
//!
//! Run: `cargo bench -p bench --bench flush_path` (about 30 s).

mod common;
use common::prewritten;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use glommio::io::BufferedFile;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};

/// Rounds of the comparison (one durable write per contender each).
const ROUNDS: usize = 1500;
/// Size of each contender's pre-written file (writes wrap around in it).
const FILE_BYTES: u64 = 16 << 20;
const RECORD_BYTES: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn compare(_c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let paths: Vec<_> = ["inline", "pool", "uring"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    let files: Vec<Arc<File>> = paths
        .iter()
        .map(|p| Arc::new(prewritten(p, FILE_BYTES)))
        .collect();
    let uring_path = paths[2].clone();
    let results = LocalExecutorBuilder::new(Placement::Unbound)
        .name("flush-path")
        .io_memory(256 << 10)
        .spin_before_park(Duration::ZERO)
        .blocking_thread_pool_placement(PoolPlacement::Unbound(2))
        .spawn(move || async move {
            let uring = Rc::new(BufferedFile::open(&uring_path).await.unwrap());
            let record = [0x5au8; RECORD_BYTES];
            let mut lat: [Vec<Duration>; 3] = Default::default();
            let mut off = 0u64;
            for round in 0..ROUNDS {
                for k in 0..3 {
                    let who = (round + k) % 3;
                    let file = files[who].clone();
                    let started = Instant::now();
                    file.write_all_at(&record, off).unwrap();
                    match who {
                        0 => file.sync_data().unwrap(),
                        1 => glommio::executor()
                            .spawn_blocking(move || file.sync_data())
                            .await
                            .unwrap(),
                        _ => uring.fdatasync().await.unwrap(),
                    }
                    lat[who].push(started.elapsed());
                }
                off = (off + RECORD_BYTES as u64) % FILE_BYTES;
            }
            lat
        })
        .unwrap()
        .join()
        .unwrap();
    let names = ["inline", "blocking_pool", "io_uring"];
    let mut medians = [Duration::ZERO; 3];
    println!("flush_path: one durable {RECORD_BYTES} B write, {ROUNDS} interleaved rounds");
    for (i, mut l) in results.into_iter().enumerate() {
        l.sort();
        medians[i] = percentile(&l, 0.5);
        println!(
            "  {:<14} p50 {:>7.1} us  p90 {:>7.1} us  p50 vs inline {:.2}x",
            names[i],
            medians[i].as_secs_f64() * 1e6,
            percentile(&l, 0.9).as_secs_f64() * 1e6,
            medians[i].as_secs_f64() / medians[0].as_secs_f64(),
        );
    }
}

criterion_group!(benches, compare);
criterion_main!(benches);
