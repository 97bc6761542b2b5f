//! Fault injection through the io trait: failed flushes, short writes, a full disk and
//! torn pages on a simulated power loss.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{FlushLoop, append_range, check_all_from, kind, opts, payload};
use wal::io::FaultStorage;
use wal::record::encoded_len;
use wal::{Wal, WalError};

const DIR: &str = "/wal";

fn open(fs: &FaultStorage) -> (Wal, wal::Recovery) {
    Wal::open_with(DIR, opts(), Arc::new(fs.clone())).expect("open")
}

fn new_fs() -> FaultStorage {
    FaultStorage::with_dir(Path::new(DIR))
}

#[test]
fn failed_flush_keeps_the_watermark_and_poisons_the_log() {
    let fs = new_fs();
    let (mut wal, _) = open(&fs);
    append_range(&mut wal, 1, 10);
    assert_eq!(wal.flush().unwrap(), 10);
    append_range(&mut wal, 11, 20);
    wal.prepare_next_segment().unwrap(); // a pre-write under way would take the failure
    fs.fail_next_flushes(1);
    let err = wal.flush().unwrap_err();
    assert!(
        matches!(&err, WalError::Io { op: "flush", path, .. } if path.to_string_lossy().ends_with(".wal")),
        "{err}"
    );
    assert_eq!(
        wal.durable_zxid(),
        10,
        "a failed flush must not advance the watermark"
    );
    // The storage works again, but a retry proves nothing after a failed fsync.
    assert!(matches!(wal.flush(), Err(WalError::Poisoned { .. })));
    assert!(
        matches!(
            wal.syncer().wait_durable(20),
            Err(WalError::Poisoned { .. })
        ),
        "waiters are not left hanging"
    );
    let err = wal.append(21, 0, b"x").unwrap_err();
    assert!(err.to_string().contains("reopen"), "{err}");
    assert_eq!(wal.durable_zxid(), 10);
    // Reopening recovers at least everything that was durable.
    let crashed = fs.crash(|_, _| 0);
    drop(wal);
    let (wal, rec) = open(&crashed);
    assert!(rec.last_zxid >= 10);
    assert_eq!(
        check_all_from(&wal, 0),
        (1..=rec.last_zxid).collect::<Vec<_>>()
    );
}

#[test]
fn failed_flush_on_the_flushing_thread_reaches_waiters() {
    let fs = new_fs();
    let (mut wal, _) = open(&fs);
    let flushing = FlushLoop::start(wal.syncer());
    append_range(&mut wal, 1, 4);
    wal.syncer().wait_durable(4).unwrap();
    wal.prepare_next_segment().unwrap(); // a pre-write under way would take the failure
    fs.fail_next_flushes(1);
    // One record: the loop may flush as soon as it is appended, and a later append would
    // find the log poisoned.
    append_range(&mut wal, 5, 5);
    assert!(matches!(
        wal.syncer().wait_durable(5),
        Err(WalError::Poisoned { .. })
    ));
    assert_eq!(wal.durable_zxid(), 4);
    assert!(
        matches!(flushing.stop(), Err(WalError::Io { op: "flush", .. })),
        "the thread reports the failed flush"
    );
}

#[test]
fn short_writes_while_pre_writing_still_give_whole_segments() {
    let fs = new_fs();
    fs.set_short_write_max(1000);
    let (mut wal, _) = open(&fs);
    append_range(&mut wal, 1, 400);
    assert!(wal.segments().len() >= 3);
    wal.flush().unwrap();
    drop(wal);
    let (wal, rec) = open(&fs);
    assert_eq!(rec.last_zxid, 400);
    assert_eq!(check_all_from(&wal, 0).len(), 400);
}

#[test]
fn disk_full_while_pre_writing_is_reported_and_recoverable() {
    let fs = new_fs();
    fs.set_space_left(1000);
    let err = Wal::open_with(DIR, opts(), Arc::new(fs.clone())).unwrap_err();
    assert!(
        matches!(err, WalError::DiskFull { .. }) && err.to_string().contains("ENOSPC"),
        "{err}"
    );
    assert!(
        err.to_string().contains(".wal.tmp"),
        "names the file: {err}"
    );

    let fs = new_fs();
    fs.set_space_left((64 << 10) + 32); // room for the first segment (zeros + header) only
    let (mut wal, _) = open(&fs);
    let mut z = 0;
    let err = loop {
        z += 1;
        match wal.append(z, kind(z), &payload(z)) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, WalError::DiskFull { .. }), "{err}");
    // The failed append changed nothing; once there is space again, appends go on (the
    // retry that was already under way may still fail: at most two more tries).
    fs.set_space_left(u64::MAX);
    let tries = (0..3).position(|_| wal.append(z, kind(z), &payload(z)).is_ok());
    assert!(tries.is_some(), "appends resume after the disk has room");
    append_range(&mut wal, z + 1, z + 10);
    wal.flush().unwrap();
    drop(wal);
    let (wal, rec) = open(&fs);
    assert_eq!(rec.last_zxid, z + 10);
    assert_eq!(check_all_from(&wal, 0), (1..=z + 10).collect::<Vec<_>>());
}

/// Every possible torn prefix of an unflushed last record, on a simulated power loss.
#[test]
fn torn_page_at_every_byte_of_the_last_record() {
    let fs = new_fs();
    let (mut wal, _) = open(&fs);
    append_range(&mut wal, 1, 99);
    wal.flush().unwrap();
    let n = (100..).find(|&z| payload(z).len() > 200).unwrap();
    append_range(&mut wal, 100, n - 1);
    wal.flush().unwrap();
    wal.append(n, kind(n), &payload(n)).unwrap();
    let len = encoded_len(payload(n).len());
    for keep in 0..=len {
        let crashed = fs.crash(|path, span| {
            let is_segment = path.extension().is_some_and(|e| e == "wal");
            assert!(!is_segment || span <= len, "only the last record is dirty");
            keep
        });
        let (mut wal2, rec) = open(&crashed);
        let whole = keep >= wal::record::RECORD_HEADER_BYTES + payload(n).len();
        assert_eq!(
            rec.last_zxid,
            if whole { n } else { n - 1 },
            "kept {keep} of {len} bytes"
        );
        assert_eq!(check_all_from(&wal2, n - 2).first(), Some(&(n - 2)));
        let next = rec.last_zxid + 1;
        wal2.append(next, kind(next), &payload(next)).unwrap();
        wal2.flush().unwrap();
        drop(wal2);
        let (wal3, rec) = open(&crashed);
        assert_eq!((rec.last_zxid, rec.torn_tail), (next, None));
        assert_eq!(check_all_from(&wal3, 0), (1..=next).collect::<Vec<_>>());
    }
    drop(wal);
}

/// Power loss in the middle of a flush of many records that reached the disk in order:
/// recovery keeps a prefix and never returns anything after a gap.
#[test]
fn torn_batch_keeps_a_prefix() {
    let fs = new_fs();
    let (mut wal, _) = open(&fs);
    append_range(&mut wal, 1, 50);
    wal.flush().unwrap();
    append_range(&mut wal, 51, 60);
    let mut span_seen = 0;
    let mut last_seen = 0;
    for keep in (0..).step_by(5) {
        let crashed = fs.crash(|path, span| {
            if path.extension().is_some_and(|e| e == "wal") {
                span_seen = span;
            }
            keep.min(span)
        });
        let (wal2, rec) = open(&crashed);
        assert!(
            rec.last_zxid >= 50 && rec.last_zxid >= last_seen,
            "kept {keep}: {rec:?}"
        );
        last_seen = rec.last_zxid;
        assert_eq!(
            check_all_from(&wal2, 0),
            (1..=rec.last_zxid).collect::<Vec<_>>()
        );
        if keep >= span_seen {
            assert_eq!(rec.last_zxid, 60);
            break;
        }
    }
    drop(wal);
}

/// The documented limit: if a later page of an unflushed batch reached the disk and an
/// earlier one did not, the log cannot tell this from corruption, so it refuses to open
/// and names the place (it never guesses).
#[test]
fn out_of_order_page_loss_is_refused_with_file_and_offset() {
    let fs = new_fs();
    let (mut wal, _) = open(&fs);
    append_range(&mut wal, 1, 5);
    wal.flush().unwrap();
    let lost = wal.append(6, 0, &[6; 100]).unwrap();
    wal.append(7, 0, &[7; 100]).unwrap();
    wal.flush().unwrap();
    let path: PathBuf = wal.segments().last().unwrap().path.clone();
    drop(wal);
    let mut bytes = fs.contents(&path).unwrap();
    let start = lost.offset as usize;
    bytes[start..start + encoded_len(100)].fill(0);
    fs.set_contents(&path, bytes);
    let err = Wal::open_with(DIR, opts(), Arc::new(fs.clone())).unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { offset, .. } if *offset == lost.offset),
        "{err}"
    );
    assert!(
        err.to_string().contains("followed by a valid record"),
        "{err}"
    );
}

#[test]
fn failed_truncation_poisons_the_log() {
    let fs = new_fs();
    let (mut wal, _) = open(&fs);
    append_range(&mut wal, 1, 300);
    wal.flush().unwrap();
    // No pre-write may be under way: it would take the injected failure.
    wal.prepare_next_segment().unwrap();
    fs.fail_next_flushes(1);
    let err = wal.truncate_after(100).unwrap_err();
    assert!(err.to_string().contains("truncation intent"), "{err}");
    assert!(matches!(
        wal.append(301, 0, b""),
        Err(WalError::Poisoned { .. })
    ));
    assert!(matches!(
        wal.truncate_after(50),
        Err(WalError::Poisoned { .. })
    ));
    // The intent never became durable, so nothing was cut: reopening finds all 300.
    let crashed = fs.crash(|_, span| span / 2);
    drop(wal);
    let (wal, rec) = open(&crashed);
    assert_eq!(rec.last_zxid, 300);
    assert_eq!(check_all_from(&wal, 0), (1..=300).collect::<Vec<_>>());
}

/// A power loss at any step of a truncation (after the k-th successful sync, for every
/// k) ends in either the untouched log or the truncated one, never anything else.
#[test]
fn truncation_is_crash_safe_at_every_step() {
    let base = new_fs();
    let (mut wal, _) = open(&base);
    append_range(&mut wal, 1, 500);
    wal.flush().unwrap();
    wal.prepare_next_segment().unwrap();
    assert!(wal.segments().len() >= 3);
    drop(wal);
    for k in 0.. {
        let fs = base.crash(|_, span| span); // a fresh copy of the log
        let (mut wal, _) = open(&fs);
        wal.prepare_next_segment().unwrap();
        fs.fail_flushes_after(k);
        let done = wal.truncate_after(120);
        let crashed = fs.crash(|_, span| span / 2);
        drop(wal);
        let (wal, rec) = open(&crashed);
        assert!(
            rec.last_zxid == 120 || (done.is_err() && rec.last_zxid == 500),
            "step {k}: {rec:?}"
        );
        assert_eq!(
            check_all_from(&wal, 0),
            (1..=rec.last_zxid).collect::<Vec<_>>(),
            "step {k}"
        );
        if done.is_ok() {
            break;
        }
        assert!(k < 50, "truncation never finished");
    }
}
