//! WAL append throughput and latency: append N records then one flush ("group commit of
//! N"; N = 1 is flush-every-record), for 100 B, 1 KiB and 4 KiB records, through
//!
//! - `wal_msync`: the `wal` crate, mmap appends + `msync` of the dirty range (default);
//! - `wal_fdatasync`: the `wal` crate, mmap appends + `fdatasync`;
//! - `pwrite_fdatasync`: one `pwrite` of the batch into a pre-written file + `fdatasync`;
//! - `glommio_dma`: glommio `DmaFile` (O_DIRECT, io_uring) write of the aligned pages the
//!   batch touches (re-writing the partial tail page, as a DMA log must) + `fdatasync`;
//!
//! and the baselines `bare/fdatasync_4k_overwrite` and `bare/fdatasync_4k_append`.
//! Throughput is in records per second (criterion's elements/s).
//!
//! The disk of a shared machine is noisy, so `interleaved` also runs the contenders in
//! turn, round after round, and prints each one's median and p90 next to the bare
//! fdatasync measured in the same rounds: those ratios are what the crate docs quote.
//!
//! Run: `cargo bench -p bench --bench wal_append` (a few minutes; filter with a name).

mod common;
use common::prewritten;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wal::{AppendMethod, FlushMethod, SyncMode, Wal, WalOptions};

const RECORD_SIZES: [usize; 3] = [100, 1024, 4096];
const BATCHES: [u64; 4] = [1, 16, 64, 256];
/// Size of the pre-written files of the non-WAL variants (writes wrap around in it).
const FILE_BYTES: u64 = 64 << 20;
const PAGE: usize = 4096;

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
}

fn bare(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("bare");
    g.throughput(Throughput::Elements(1));
    let page = vec![0x5au8; PAGE];
    let file = prewritten(&dir.path().join("overwrite"), 1 << 20);
    let mut off = 0u64;
    g.bench_function("fdatasync_4k_overwrite", |b| {
        b.iter(|| {
            file.write_all_at(&page, off).unwrap();
            file.sync_data().unwrap();
            off = (off + PAGE as u64) % (1 << 20);
        })
    });
    let file = prewritten(&dir.path().join("append"), 0);
    let mut end = 0u64;
    g.bench_function("fdatasync_4k_append", |b| {
        b.iter(|| {
            if end >= 64 << 20 {
                file.set_len(0).unwrap();
                end = 0;
            }
            file.write_all_at(&page, end).unwrap();
            file.sync_data().unwrap();
            end += PAGE as u64;
        })
    });
    g.finish();
}

fn wal_variant(c: &mut Criterion, name: &str, method: FlushMethod) {
    let mut g = c.benchmark_group(name);
    for size in RECORD_SIZES {
        for batch in BATCHES {
            let dir = tempfile::tempdir().unwrap();
            let opts = WalOptions {
                flush_method: method,
                sync: SyncMode::Batch,
                ..WalOptions::default()
            };
            let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
            wal.prepare_next_segment().unwrap();
            let payload = vec![0xabu8; size];
            let mut zxid = 0u64;
            g.throughput(Throughput::Elements(batch));
            g.bench_with_input(
                BenchmarkId::new(format!("{size}B"), batch),
                &batch,
                |b, &batch| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            // Keep the disk use bounded; deleting files is not what we measure.
                            if wal.segments().len() > 2 {
                                wal.purge_below(zxid).unwrap();
                            }
                            let t = Instant::now();
                            for _ in 0..batch {
                                zxid += 1;
                                wal.append(zxid, 0, &payload).unwrap();
                            }
                            wal.flush().unwrap();
                            total += t.elapsed();
                        }
                        total
                    })
                },
            );
            let stats = wal.stats();
            if stats.roll_waits > 0 {
                eprintln!(
                    "{name} {size}B x{batch}: {} rolls waited for a pre-write ({} ms)",
                    stats.roll_waits,
                    stats.roll_wait_ns / 1_000_000
                );
            }
        }
    }
    g.finish();
}

/// The shard core's cost: one append (no flush) of each size; a flush every 256 appends
/// runs outside the timed part, so pages are write-protected again as in real use.
fn append_only(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_only");
    for (method, size) in [AppendMethod::Pwrite, AppendMethod::Map]
        .into_iter()
        .flat_map(|m| RECORD_SIZES.map(|s| (m, s)))
    {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            append_method: method,
            ..WalOptions::default()
        };
        let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
        wal.prepare_next_segment().unwrap();
        let payload = vec![0xabu8; size];
        let mut zxid = 0u64;
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{method:?}/{size}B"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    if i % 256 == 0 {
                        wal.flush().unwrap();
                        if wal.segments().len() > 2 {
                            wal.purge_below(zxid).unwrap();
                        }
                    }
                    zxid += 1;
                    let t = Instant::now();
                    wal.append(zxid, 0, &payload).unwrap();
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn wal_msync(c: &mut Criterion) {
    wal_variant(c, "wal_msync", FlushMethod::Msync);
}

fn wal_fdatasync(c: &mut Criterion) {
    wal_variant(c, "wal_fdatasync", FlushMethod::Fdatasync);
}

/// Encodes `batch` records of `size` bytes into `buf` (what a pwrite/DMA log would do).
fn encode_batch(buf: &mut Vec<u8>, zxid: &mut u64, batch: u64, payload: &[u8]) {
    buf.clear();
    for _ in 0..batch {
        *zxid += 1;
        buf.extend_from_slice(&wal::record::encode(*zxid, 0, payload));
    }
}

fn pwrite_fdatasync(c: &mut Criterion) {
    let mut g = c.benchmark_group("pwrite_fdatasync");
    let dir = tempfile::tempdir().unwrap();
    let file = prewritten(&dir.path().join("log"), FILE_BYTES);
    let mut buf = Vec::new();
    for size in RECORD_SIZES {
        for batch in BATCHES {
            let payload = vec![0xabu8; size];
            let (mut zxid, mut off) = (0u64, 0u64);
            g.throughput(Throughput::Elements(batch));
            g.bench_with_input(
                BenchmarkId::new(format!("{size}B"), batch),
                &batch,
                |b, &batch| {
                    b.iter(|| {
                        encode_batch(&mut buf, &mut zxid, batch, &payload);
                        if off + buf.len() as u64 > FILE_BYTES {
                            off = 0;
                        }
                        file.write_all_at(&buf, off).unwrap();
                        file.sync_data().unwrap();
                        off += buf.len() as u64;
                    })
                },
            );
        }
    }
    g.finish();
}

/// A glommio executor for the DMA contenders and `path` opened for DMA on it.
fn dma_executor_and_file(path: &Path) -> (glommio::LocalExecutor, glommio::io::DmaFile) {
    // glommio locks its IO memory; `ulimit -l` is 8 MiB here, so keep it small (larger
    // buffers fall back to ordinary aligned allocations).
    let ex = glommio::LocalExecutorBuilder::default()
        .io_memory(512 << 10)
        .make()
        .expect("glommio executor (ulimit -l?)");
    // read+write: `DmaFile::create` opens write-only and reads would fail.
    let file = ex.run(async {
        glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(path)
            .await
            .unwrap()
    });
    (ex, file)
}

fn glommio_dma(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dma-log");
    drop(prewritten(&path, FILE_BYTES));
    let (ex, file) = dma_executor_and_file(&path);
    let mut g = c.benchmark_group("glommio_dma");
    let mut buf = Vec::new();
    for size in RECORD_SIZES {
        for batch in BATCHES {
            let payload = vec![0xabu8; size];
            let (mut zxid, mut end) = (0u64, 0usize);
            // The bytes of the partial page at the end of the log (a DMA write must
            // rewrite it whole).
            let mut tail: Vec<u8> = Vec::new();
            g.throughput(Throughput::Elements(batch));
            g.bench_with_input(
                BenchmarkId::new(format!("{size}B"), batch),
                &batch,
                |b, &batch| {
                    b.iter_custom(|iters| {
                        ex.run(async {
                            let start = Instant::now();
                            for _ in 0..iters {
                                encode_batch(&mut buf, &mut zxid, batch, &payload);
                                if (end + buf.len()) as u64 + PAGE as u64 > FILE_BYTES {
                                    end = 0;
                                    tail.clear();
                                }
                                let page_start = end - tail.len();
                                let len = (tail.len() + buf.len()).next_multiple_of(PAGE);
                                let mut dma = file.alloc_dma_buffer(len);
                                let bytes = dma.as_bytes_mut();
                                bytes[..tail.len()].copy_from_slice(&tail);
                                bytes[tail.len()..tail.len() + buf.len()].copy_from_slice(&buf);
                                bytes[tail.len() + buf.len()..].fill(0);
                                let used = tail.len() + buf.len();
                                let new_tail = bytes[used - used % PAGE..used].to_vec();
                                file.write_at(dma, page_start as u64).await.unwrap();
                                file.fdatasync().await.unwrap();
                                end += buf.len();
                                tail = new_tail;
                            }
                            start.elapsed()
                        })
                    })
                },
            );
        }
    }
    g.finish();
    ex.run(async move { file.close().await.unwrap() });
}

/// Rounds of the interleaved comparison.
const INTERLEAVED_ROUNDS: usize = 300;

/// A contender of the interleaved comparison.
enum Contender {
    Bare,
    /// Wal number `.0`, `.1` appends per flush.
    Wal(usize, u64),
    /// Wal number `.0`, one `append_batch` of `.1` records per flush.
    WalBatch(usize, u64),
    Pwrite,
    /// `.0` records per DMA write.
    Dma(u64),
}

/// One durable write by each contender per round, in rotating order; prints medians.
fn interleaved(_c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let page = vec![0x5au8; PAGE];
    let bare = prewritten(&dir.path().join("bare"), 1 << 20);
    let plain = prewritten(&dir.path().join("plain"), FILE_BYTES);
    let dma_path = dir.path().join("dma");
    drop(prewritten(&dma_path, FILE_BYTES));
    let (ex, dma) = dma_executor_and_file(&dma_path);
    let wal_kinds = [
        (
            "wal pwrite+msync (default)",
            AppendMethod::Pwrite,
            FlushMethod::Msync,
        ),
        (
            "wal pwrite+fdatasync",
            AppendMethod::Pwrite,
            FlushMethod::Fdatasync,
        ),
        ("wal map+msync", AppendMethod::Map, FlushMethod::Msync),
        (
            "wal map+fdatasync",
            AppendMethod::Map,
            FlushMethod::Fdatasync,
        ),
    ];
    let mut wals: Vec<(Wal, u64)> = wal_kinds
        .iter()
        .enumerate()
        .map(|(i, &(_, append_method, flush_method))| {
            let path = dir.path().join(format!("wal{i}"));
            std::fs::create_dir(&path).unwrap();
            let opts = WalOptions {
                append_method,
                flush_method,
                ..WalOptions::default()
            };
            let (mut wal, _) = Wal::open(&path, opts).unwrap();
            wal.prepare_next_segment().unwrap();
            (wal, 0)
        })
        .collect();
    let mut contenders: Vec<(String, Contender)> =
        vec![("bare fdatasync 4k overwrite".into(), Contender::Bare)];
    for (i, (name, _, _)) in wal_kinds.iter().enumerate() {
        contenders.push((format!("{name} 1x100B"), Contender::Wal(i, 1)));
    }
    contenders.push(("pwrite+fdatasync 1x100B".into(), Contender::Pwrite));
    contenders.push(("glommio dma 1x100B".into(), Contender::Dma(1)));
    contenders.push((
        format!("{} 256x100B", wal_kinds[0].0),
        Contender::Wal(0, 256),
    ));
    contenders.push((
        format!("{} 256x100B", wal_kinds[2].0),
        Contender::Wal(2, 256),
    ));
    contenders.push((
        format!("{} batch 256x100B", wal_kinds[0].0),
        Contender::WalBatch(0, 256),
    ));
    contenders.push(("glommio dma 256x100B".into(), Contender::Dma(256)));
    contenders.push((
        format!("{} 1024x100B", wal_kinds[0].0),
        Contender::Wal(0, 1024),
    ));
    contenders.push((
        format!("{} 1024x100B", wal_kinds[2].0),
        Contender::Wal(2, 1024),
    ));
    let payload = [0xabu8; 100];
    let (mut z_p, mut z_d, mut off_b, mut off_p) = (0u64, 0u64, 0u64, 0u64);
    let mut dma_end = 0usize;
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = Vec::new();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    for round in 0..INTERLEAVED_ROUNDS {
        for k in 0..contenders.len() {
            let which = (k + round) % contenders.len();
            let t = Instant::now();
            match contenders[which].1 {
                Contender::Bare => {
                    bare.write_all_at(&page, off_b).unwrap();
                    bare.sync_data().unwrap();
                    off_b = (off_b + PAGE as u64) % (1 << 20);
                }
                Contender::Wal(i, batch) => {
                    let (wal, zxid) = &mut wals[i];
                    for _ in 0..batch {
                        *zxid += 1;
                        wal.append(*zxid, 0, &payload).unwrap();
                    }
                    wal.flush().unwrap();
                }
                Contender::WalBatch(i, batch) => {
                    let (wal, zxid) = &mut wals[i];
                    let records: Vec<(u64, u8, &[u8])> =
                        (1..=batch).map(|k| (*zxid + k, 0, &payload[..])).collect();
                    *zxid += batch;
                    wal.append_batch(&records).unwrap();
                    wal.flush().unwrap();
                }
                Contender::Pwrite => {
                    encode_batch(&mut buf, &mut z_p, 1, &payload);
                    plain.write_all_at(&buf, off_p).unwrap();
                    plain.sync_data().unwrap();
                    off_p += buf.len() as u64;
                }
                Contender::Dma(batch) => {
                    encode_batch(&mut buf, &mut z_d, batch, &payload);
                    ex.run(async {
                        let page_start = dma_end - tail.len();
                        let used = tail.len() + buf.len();
                        let mut b = dma.alloc_dma_buffer(used.next_multiple_of(PAGE));
                        let bytes = b.as_bytes_mut();
                        bytes[..tail.len()].copy_from_slice(&tail);
                        bytes[tail.len()..used].copy_from_slice(&buf);
                        bytes[used..].fill(0);
                        let new_tail = bytes[used - used % PAGE..used].to_vec();
                        dma.write_at(b, page_start as u64).await.unwrap();
                        dma.fdatasync().await.unwrap();
                        dma_end += buf.len();
                        tail = new_tail;
                    });
                }
            }
            times[which].push(t.elapsed());
        }
    }
    let quantile = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6
    };
    let bare_median = quantile(&mut times[0], 0.5);
    eprintln!(
        "interleaved, {INTERLEAVED_ROUNDS} rounds (median / p90 µs, median ratio to bare fdatasync, records/s at the median):"
    );
    for (i, (name, contender)) in contenders.iter().enumerate() {
        let (med, p90) = (quantile(&mut times[i], 0.5), quantile(&mut times[i], 0.9));
        let records = match contender {
            Contender::Wal(_, n) | Contender::WalBatch(_, n) | Contender::Dma(n) => *n as f64,
            _ => 1.0,
        };
        eprintln!(
            "  {name:40} {med:9.1} / {p90:9.1}   x{:.2}   {:.0} rec/s",
            med / bare_median,
            records / med * 1e6
        );
    }
    ex.run(async move { dma.close().await.unwrap() });
}

/// Records the appender writes in one pipelined run.
const PIPELINED_RECORDS: u64 = 200_000;

/// The server's shape: one thread appends 100 B records as fast as it can while a second
/// thread runs `Syncer::flush` in a loop, one flush at a time, each covering everything
/// appended so far (what the shard driver does on glommio's blocking pool), until the last
/// record is durable. Prints the rate at which records become durable (time until the
/// last one is) and the flushes it took.
fn pipelined(_c: &mut Criterion) {
    // (append method, records per append_batch call; 1 = plain appends)
    let variants = [
        (AppendMethod::Pwrite, 1),
        (AppendMethod::Pwrite, 64),
        (AppendMethod::Map, 1),
    ];
    for (run, (append_method, per_call)) in variants.into_iter().flat_map(|v| [v, v]).enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            append_method,
            ..WalOptions::default()
        };
        let (mut wal, _) = Wal::open(dir.path(), opts).unwrap();
        wal.prepare_next_segment().unwrap();
        let syncer = wal.syncer();
        let flushes_before = syncer.flush_count();
        let flusher = {
            let syncer = wal.syncer();
            std::thread::spawn(move || {
                while syncer.durable_zxid() < PIPELINED_RECORDS {
                    if syncer.appended_zxid() > syncer.durable_zxid() {
                        syncer.flush().unwrap();
                    } else {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let payload = [0xabu8; 100];
        let t = Instant::now();
        let mut z = 0u64;
        while z < PIPELINED_RECORDS {
            if per_call == 1 {
                z += 1;
                wal.append(z, 0, &payload).unwrap();
            } else {
                let records: Vec<(u64, u8, &[u8])> = (z + 1..=z + per_call)
                    .map(|k| (k, 0, &payload[..]))
                    .collect();
                wal.append_batch(&records).unwrap();
                z += per_call;
            }
        }
        let appended = t.elapsed();
        syncer.wait_durable(PIPELINED_RECORDS).unwrap();
        let durable = t.elapsed();
        flusher.join().unwrap();
        let flushes = syncer.flush_count() - flushes_before;
        eprintln!(
            "pipelined run {run} ({append_method:?}, {per_call} per call): {PIPELINED_RECORDS} x 100 B appended in {:.1} ms, all durable after {:.1} ms = {:.0} durable rec/s, {flushes} flushes, roll waits {}",
            appended.as_secs_f64() * 1e3,
            durable.as_secs_f64() * 1e3,
            PIPELINED_RECORDS as f64 / durable.as_secs_f64(),
            wal.stats().roll_waits
        );
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = pipelined, interleaved, append_only, bare, wal_msync, wal_fdatasync, pwrite_fdatasync, glommio_dma
}
criterion_main!(benches);
