//! The syncer, the durable watermark, and group commit as a flush loop on another thread.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::{FlushLoop, append_range, opts};
use wal::io::FaultStorage;
use wal::{SyncMode, Syncer, Wal, WalOptions};

/// A generous bound for "this does not happen": exceeding it means a bug, not slowness.
const NEVER: Option<Duration> = Some(Duration::from_millis(100));

fn mem_wal(sync: SyncMode) -> (Wal, FaultStorage) {
    let dir = Path::new("/wal");
    let fs = FaultStorage::with_dir(dir);
    let (wal, _) =
        Wal::open_with(dir, WalOptions { sync, ..opts() }, Arc::new(fs.clone())).unwrap();
    (wal, fs)
}

#[test]
fn syncer_is_send_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Syncer>();
    fn send<T: Send>() {}
    send::<Wal>();
}

#[test]
fn flush_publishes_the_last_appended_zxid() {
    let (mut wal, fs) = mem_wal(SyncMode::Batch);
    let syncer = wal.syncer();
    assert_eq!((syncer.durable_zxid(), syncer.appended_zxid()), (0, 0));
    append_range(&mut wal, 1, 10);
    assert_eq!(
        (syncer.durable_zxid(), syncer.appended_zxid()),
        (0, 10),
        "append alone is not durable"
    );
    let (before, flushes) = (fs.flush_count(), syncer.flush_count());
    assert_eq!(syncer.flush().unwrap(), 10);
    assert!(fs.flush_count() > before, "a flush reached the storage");
    assert_eq!(wal.durable_zxid(), 10);
    // Flushing again with nothing new is harmless.
    assert_eq!(syncer.flush().unwrap(), 10);
    assert_eq!(syncer.flush_count(), flushes + 2, "every flush is counted");
}

type FlushThread = std::thread::JoinHandle<wal::Result<u64>>;

/// Two overlapping flushes held at the storage's gate: the first covers 1..=5, the
/// second (started after 6..=9 were appended) 1..=9. Neither has written anything,
/// and no other thread touches the storage (no roll: nine small records).
fn two_gated_flushes() -> (
    Wal,
    FaultStorage,
    Arc<wal::io::FlushGate>,
    Syncer,
    FlushThread,
    FlushThread,
) {
    let (mut wal, fs) = mem_wal(SyncMode::Batch);
    // The spare segment's background pre-write syncs too: let it finish first, so
    // that the storage's flushes (and an injected failure) are these two only.
    wal.prepare_next_segment().unwrap();
    let gate = fs.gate_flushes();
    let syncer = wal.syncer();
    append_range(&mut wal, 1, 5);
    let flush = |s: &Syncer| {
        let s = s.clone();
        std::thread::spawn(move || s.flush())
    };
    let first = flush(&syncer);
    gate.wait_arrived(1);
    append_range(&mut wal, 6, 9);
    let second = flush(&syncer);
    gate.wait_arrived(2);
    (wal, fs, gate, syncer, first, second)
}

#[test]
fn a_later_overlapping_flush_covers_the_earlier_ones_range() {
    let (wal, fs, gate, syncer, first, second) = two_gated_flushes();
    // The later flush ends first: its range started at the durable end, so it made
    // 1..=9 durable although the earlier flush (1..=5) still runs.
    gate.release(1);
    assert_eq!(second.join().unwrap().unwrap(), 9);
    assert_eq!(syncer.durable_zxid(), 9);
    let crashed = fs.crash(|_, _| 0);
    let (_, rec) = Wal::open_with(Path::new("/wal"), opts(), Arc::new(crashed)).unwrap();
    assert_eq!(rec.last_zxid, 9, "no hole below the published watermark");
    gate.release(0);
    assert_eq!(
        first.join().unwrap().unwrap(),
        9,
        "the watermark never goes back"
    );
    drop(wal);
}

#[test]
fn concurrent_flushers_keep_the_watermark_within_what_was_appended() {
    let (mut wal, _fs) = mem_wal(SyncMode::Batch);
    let syncer = wal.syncer();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flushers: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop) = (syncer.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    let d = s.flush().unwrap();
                    assert!(d <= s.appended_zxid(), "durable never passes appended");
                    assert!(s.durable_zxid() >= last, "the watermark only rises");
                    last = s.durable_zxid();
                }
            })
        })
        .collect();
    append_range(&mut wal, 1, 2000); // several segments
    stop.store(true, std::sync::atomic::Ordering::Release);
    for f in flushers {
        f.join().unwrap();
    }
    assert_eq!(syncer.flush().unwrap(), 2000);
}

#[test]
fn flushed_bytes_are_what_a_crash_keeps() {
    let (mut wal, fs) = mem_wal(SyncMode::Batch);
    append_range(&mut wal, 1, 300); // several segments
    wal.flush().unwrap();
    append_range(&mut wal, 301, 310); // never flushed
    let crashed = fs.crash(|_, _| 0);
    drop(wal);
    let (wal, rec) = Wal::open_with("/wal", opts(), Arc::new(crashed)).unwrap();
    assert_eq!(rec.last_zxid, 300);
    assert_eq!(
        common::check_all_from(&wal, 0),
        (1..=300).collect::<Vec<_>>()
    );
}

#[test]
fn waiters_on_other_threads_are_released_by_a_flush() {
    let (mut wal, _fs) = mem_wal(SyncMode::Batch);
    let syncer = wal.syncer();
    let (tx, rx) = mpsc::channel();
    let waiters: Vec<_> = [3u64, 7, 12]
        .into_iter()
        .map(|z| {
            let (s, tx) = (syncer.clone(), tx.clone());
            std::thread::spawn(move || {
                s.wait_durable(z).unwrap();
                tx.send(z).unwrap();
            })
        })
        .collect();
    append_range(&mut wal, 1, 7);
    assert!(
        !syncer.wait_durable_timeout(7, NEVER).unwrap(),
        "no flush yet"
    );
    let flusher = syncer.clone();
    std::thread::spawn(move || flusher.flush().unwrap())
        .join()
        .unwrap();
    let mut released = vec![rx.recv().unwrap(), rx.recv().unwrap()];
    released.sort();
    assert_eq!(released, vec![3, 7]);
    append_range(&mut wal, 8, 12);
    wal.flush().unwrap();
    assert_eq!(rx.recv().unwrap(), 12);
    waiters.into_iter().for_each(|w| w.join().unwrap());
}

#[test]
fn a_flush_loop_makes_each_lone_record_durable() {
    let (mut wal, _fs) = mem_wal(SyncMode::Batch);
    let flushing = FlushLoop::start(wal.syncer());
    let syncer = wal.syncer();
    for z in 1..=5 {
        wal.append(z, 0, b"lone").unwrap();
        syncer.wait_durable(z).unwrap();
    }
    append_range(&mut wal, 6, 20);
    flushing.stop().unwrap();
    assert_eq!(syncer.durable_zxid(), 20, "stop flushes one last time");
}

#[test]
fn always_and_batch_modes_flush_to_storage() {
    for mode in [SyncMode::Always, SyncMode::Batch] {
        let (mut wal, fs) = mem_wal(mode);
        for z in 1..=5 {
            wal.append(z, 0, b"x").unwrap();
            let before = fs.flush_count();
            assert_eq!(wal.flush().unwrap(), z);
            assert!(
                fs.flush_count() > before,
                "{mode:?}: zxid {z} reached storage"
            );
        }
    }
}

#[test]
fn never_mode_moves_the_watermark_without_flushing() {
    let (mut wal, fs) = mem_wal(SyncMode::Never);
    append_range(&mut wal, 1, 100);
    // Rolls pre-write the next segment on a background thread, which syncs the new
    // file; wait for it so that only the flush below could count.
    wal.prepare_next_segment().unwrap();
    let before = fs.flush_count();
    assert_eq!(wal.flush().unwrap(), 100);
    assert_eq!(fs.flush_count(), before, "sync=never flushes nothing");
}

#[test]
fn concurrent_appends_and_a_flush_loop_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let flushing = FlushLoop::start(wal.syncer());
    let syncer = wal.syncer();
    let watcher = std::thread::spawn(move || {
        let mut last = 0;
        while last < 2000 {
            let d = syncer.durable_zxid();
            assert!(d >= last, "watermark went back from {last} to {d}");
            last = d;
            syncer
                .wait_durable_timeout(last + 1, Some(Duration::from_millis(10)))
                .unwrap();
        }
    });
    append_range(&mut wal, 1, 2000);
    wal.syncer().wait_durable(2000).unwrap();
    watcher.join().unwrap();
    flushing.stop().unwrap();
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(rec.last_zxid, 2000);
    assert_eq!(common::check_all_from(&wal, 0).len(), 2000);
}

#[test]
fn truncation_keeps_unflushed_bytes_below_the_cut_pending() {
    let (mut wal, fs) = mem_wal(SyncMode::Batch);
    append_range(&mut wal, 1, 5);
    assert_eq!(wal.flush().unwrap(), 5);
    append_range(&mut wal, 6, 10); // appended, never flushed
    wal.truncate_after(8).unwrap(); // keeps 6..=8, which are still not durable
    assert_eq!(
        wal.durable_zxid(),
        5,
        "truncation does not make 6..=8 durable"
    );
    assert_eq!(wal.flush().unwrap(), 8, "the flush publishes 8 as durable");
    let crashed = fs.crash(|_, _| 0);
    drop(wal);
    let (_, rec) = Wal::open_with(Path::new("/wal"), opts(), Arc::new(crashed)).unwrap();
    assert_eq!(
        rec.last_zxid, 8,
        "a zxid published durable survives a crash"
    );
}

/// A failed flush poisons the log: a flush that was already running when another
/// failed publishes nothing afterwards (on Linux the writeback error of a shared page
/// is reported to one fsync/msync caller only, so the other may "succeed" for pages
/// the failed one could not write).
#[test]
fn a_flush_that_ends_after_another_failed_publishes_nothing() {
    let (_wal, fs, gate, syncer, first, second) = two_gated_flushes();
    fs.fail_next_flushes(1);
    gate.release(1);
    assert!(second.join().unwrap().is_err(), "the later flush fails");
    gate.release(0);
    let first = first.join().unwrap();
    assert_eq!(
        (syncer.durable_zxid(), first.is_err()),
        (0, true),
        "the watermark never moves after a failed flush"
    );
}
