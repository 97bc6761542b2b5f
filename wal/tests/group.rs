//! The syncer, the durable watermark and the group-commit thread.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::{append_range, opts};
use wal::io::FaultStorage;
use wal::{FlushPolicy, GroupCommit, SyncMode, Syncer, Wal, WalOptions};

const HOUR_US: u64 = 3_600_000_000;
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
    send::<GroupCommit>();
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
    let before = fs.flush_count();
    assert_eq!(syncer.flush().unwrap(), 10);
    assert!(fs.flush_count() > before, "a flush reached the storage");
    assert_eq!(wal.durable_zxid(), 10);
    // Flushing again with nothing new is harmless.
    assert_eq!(syncer.flush().unwrap(), 10);
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
fn group_commit_flushes_when_the_batch_is_full() {
    let (mut wal, _fs) = mem_wal(SyncMode::Batch);
    let policy = FlushPolicy {
        records_max: 16,
        bytes_max: u64::MAX,
        delay_us_max: HOUR_US,
    };
    let gc = GroupCommit::start(wal.syncer(), policy, None).unwrap();
    let syncer = wal.syncer();
    append_range(&mut wal, 1, 15);
    assert!(
        !syncer.wait_durable_timeout(1, NEVER).unwrap(),
        "15 records wait for the 16th"
    );
    append_range(&mut wal, 16, 16);
    syncer.wait_durable(16).unwrap();
    append_range(&mut wal, 17, 20);
    gc.stop().unwrap();
    assert_eq!(syncer.durable_zxid(), 20, "stop flushes one last time");
}

#[test]
fn group_commit_flushes_on_bytes() {
    let (mut wal, _fs) = mem_wal(SyncMode::Batch);
    let policy = FlushPolicy {
        records_max: u32::MAX,
        bytes_max: 4000,
        delay_us_max: HOUR_US,
    };
    let _gc = GroupCommit::start(wal.syncer(), policy, None).unwrap();
    wal.append(1, 0, &[1; 3000]).unwrap();
    assert!(!wal.syncer().wait_durable_timeout(1, NEVER).unwrap());
    wal.append(2, 0, &[2; 3000]).unwrap();
    wal.syncer().wait_durable(2).unwrap();
}

#[test]
fn group_commit_flushes_a_lone_record_after_the_delay() {
    let (mut wal, _fs) = mem_wal(SyncMode::Batch);
    let policy = FlushPolicy {
        records_max: u32::MAX,
        bytes_max: u64::MAX,
        delay_us_max: 200,
    };
    let (tx, rx) = mpsc::channel();
    let _gc = GroupCommit::start(
        wal.syncer(),
        policy,
        Some(Box::new(move |z| tx.send(z).unwrap())),
    )
    .unwrap();
    for z in 1..=5 {
        wal.append(z, 0, b"lone").unwrap();
        wal.syncer().wait_durable(z).unwrap();
    }
    // The callback runs after the watermark is published: wait for the one of zxid 5.
    let mut seen = vec![rx.recv().unwrap()];
    while seen.last() != Some(&5) {
        seen.push(rx.recv().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "callbacks {seen:?}");
}

#[test]
fn always_mode_makes_each_record_durable_without_explicit_flushes() {
    let (mut wal, fs) = mem_wal(SyncMode::Always);
    let _gc = GroupCommit::start(wal.syncer(), FlushPolicy::default(), None).unwrap();
    for z in 1..=50 {
        wal.append(z, 0, b"x").unwrap();
        wal.syncer().wait_durable(z).unwrap();
    }
    assert!(fs.flush_count() >= 50);
}

#[test]
fn never_mode_moves_the_watermark_without_flushing() {
    let (mut wal, fs) = mem_wal(SyncMode::Never);
    let before = fs.flush_count();
    append_range(&mut wal, 1, 100);
    assert_eq!(wal.flush().unwrap(), 100);
    assert_eq!(fs.flush_count(), before);
}

#[test]
fn concurrent_appends_and_group_commit_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let policy = FlushPolicy {
        records_max: 32,
        bytes_max: 64 << 10,
        delay_us_max: 500,
    };
    let gc = GroupCommit::start(wal.syncer(), policy, None).unwrap();
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
    gc.stop().unwrap();
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(rec.last_zxid, 2000);
    assert_eq!(common::check_all_from(&wal, 0).len(), 2000);
}
