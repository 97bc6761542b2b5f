//! Pinned glommio executors, one per core.
//!
//! glommio registers io_uring buffers in locked memory; this machine allows 8 MiB of
//! it (`ulimit -l`), so every executor sets `io_memory` explicitly rather than taking
//! glommio's 10 MiB default, which would fail to start beyond the limit.

use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};

/// io_uring buffer memory per executor. 8 MiB locked / 256 KiB leaves room for 32 cores.
pub const IO_MEMORY_BYTES_PER_CORE: usize = 256 << 10;
/// Threads of each executor's blocking pool (flushes, snapshot writes, purges): enough
/// for `FLUSHES_INFLIGHT_MAX` overlapping flushes beside a snapshot and a purge. They
/// are not pinned: they mostly wait on the disk, and the scheduler may run their
/// syscalls' CPU work on any core. (glommio's default is one thread pinned to the
/// executor's CPU, which would serialise every flush behind a snapshot write.)
/// Measured against the same threads pinned to the executor's CPU (ckbench, 100 B
/// setData, 2 quiet rounds each, 2-core dev machine, 2026-12-06): set 8x16 162k-168k
/// ops/s unpinned vs 135k-136k pinned (the flush's kernel work runs beside the
/// executor), set 1x1 2.8k-3.1k (p50 280-308 us) unpinned vs 3.7k-3.9k (236-245 us)
/// pinned (no wake-up on the other core). Throughput under load wins here; a
/// latency-first deployment would pin.
pub const BLOCKING_THREADS_PER_EXECUTOR: usize = crate::shard::commit::FLUSHES_INFLIGHT_MAX + 2;
/// A standalone server's executors spin this long before parking: a client's next
/// request, or a cross-core message, arriving within it skips the wake-up (tens to
/// hundreds of µs on a loaded 2-core machine). Measured (ckbench, standalone, 100 B,
/// 2 quiet A/B rounds each, 2-core dev machine, 2026-12-07): get 1x1 p50 51-52 us
/// spinning vs 70-80 us not; set 8x16 148k-158k vs 137k-146k ops/s.
pub const SPIN_BEFORE_PARK_US_STANDALONE: u64 = 50;
/// An ensemble member's executors park at once. A member's next event after it acts
/// is mostly a peer's answer, at least a round trip through another server away, so
/// spinning rarely catches it, and the spin takes the CPU the other servers on the
/// machine (and, under a CPU quota, its own budget) need. Measured (3-node ensemble
/// on 127.0.0.x, set 1x1 p50, 2 A/B rounds, 2-core dev machine, 2026-12-07): at the
/// leader 533 us with 0 vs 656-672 us with 50 us of spin, at a follower 712-722 us vs
/// 859-916 us; on tmpfs with `sync=never` (the network path alone) 267 vs 473-517 us,
/// and 200 / 1000 us of spin 1.08 / 3.32 ms.
pub const SPIN_BEFORE_PARK_US_ENSEMBLE: u64 = 0;
/// Upper bound of `spinBeforeParkUs`.
pub const SPIN_BEFORE_PARK_US_MAX: u64 = 10_000;

const _: () = assert!(
    SPIN_BEFORE_PARK_US_STANDALONE <= SPIN_BEFORE_PARK_US_MAX
        && SPIN_BEFORE_PARK_US_ENSEMBLE < SPIN_BEFORE_PARK_US_STANDALONE,
    "defaults within the config's bound; an ensemble member spins less"
);

/// The spin of a server that did not set `spinBeforeParkUs`.
pub fn spin_before_park_us_default(ensemble: bool) -> u64 {
    if ensemble {
        SPIN_BEFORE_PARK_US_ENSEMBLE
    } else {
        SPIN_BEFORE_PARK_US_STANDALONE
    }
}

const _: () = assert!(
    IO_MEMORY_BYTES_PER_CORE >= 64 << 10,
    "glommio needs at least 64 KiB per ring"
);

/// The CPUs executors may be pinned to, in order.
pub fn usable_cpus() -> Vec<usize> {
    let ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    } else {
        ids
    }
}

/// Starts `cores` executors, executor `i` pinned to the `i`-th usable CPU (wrapping
/// when more executors than CPUs are asked for), each running `task(i)`. Returns the
/// results in executor order once every executor has finished. An idle executor spins
/// `spin_us` before it parks.
pub fn run_on_cores<F, Fut, T>(cores: usize, spin_us: u64, task: F) -> std::io::Result<Vec<T>>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    debug_assert!(cores >= 1, "a server runs at least one executor");
    debug_assert!(spin_us <= SPIN_BEFORE_PARK_US_MAX, "config bounds the spin");
    let cpus = usable_cpus();
    let mut handles = Vec::with_capacity(cores);
    for i in 0..cores {
        let task = task.clone();
        let cpu = cpus[i % cpus.len()];
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("ck-core-{i}"))
            .io_memory(IO_MEMORY_BYTES_PER_CORE)
            .spin_before_park(Duration::from_micros(spin_us))
            .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS_PER_EXECUTOR))
            .spawn(move || task(i))
            .map_err(|e| {
                std::io::Error::other(format!("cannot start executor {i} on cpu {cpu}: {e}"))
            })?;
        handles.push(handle);
    }
    handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            h.join()
                .map_err(|e| std::io::Error::other(format!("executor {i} failed: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors_run_and_return_in_order() {
        let out =
            run_on_cores(2, SPIN_BEFORE_PARK_US_STANDALONE, |i| async move { i * 10 }).unwrap();
        assert_eq!(out, vec![0, 10]);
    }
}
