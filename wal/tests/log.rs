//! Append, read, recovery, torn tails, corruption and environment errors, on real files.

mod common;

use std::path::{Path, PathBuf};

use common::{append_range, check_all_from, open, opts, payload};
use wal::{Wal, WalError, WalOptions};

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

#[test]
fn append_read_reopen_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, rec) = open(dir.path());
    assert_eq!(
        (rec.last_zxid, rec.records, rec.torn_tail.clone()),
        (0, 0, None)
    );
    append_range(&mut wal, 1, 500);
    assert!(
        wal.segments().len() >= 3,
        "small segments roll: {:?}",
        wal.segments().len()
    );
    assert_eq!(check_all_from(&wal, 0), (1..=500).collect::<Vec<_>>());
    assert_eq!(check_all_from(&wal, 250), (250..=500).collect::<Vec<_>>());
    assert_eq!(check_all_from(&wal, 501), Vec::<u64>::new());
    assert_eq!(wal.flush().unwrap(), 500);
    // The flush released the sealed segments' pages (`Region::release`): they read
    // back the same, from the page cache.
    assert_eq!(check_all_from(&wal, 0), (1..=500).collect::<Vec<_>>());
    let segments = wal.segments();
    drop(wal);

    let (mut wal, rec) = open(dir.path());
    assert_eq!(
        (
            rec.first_zxid,
            rec.last_zxid,
            rec.records,
            rec.bytes_truncated
        ),
        (1, 500, 500, 0)
    );
    assert_eq!(rec.segments, segments.len());
    assert_eq!(wal.segments(), segments);
    assert_eq!(
        wal.durable_zxid(),
        500,
        "recovered records are flushed on open"
    );
    append_range(&mut wal, 501, 600);
    assert_eq!(check_all_from(&wal, 0), (1..=600).collect::<Vec<_>>());
}

#[test]
fn gaps_in_zxids_are_fine_but_they_must_increase() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.append(10, 0, b"a").unwrap();
    wal.append(1 << 32, 0, b"b").unwrap();
    let err = wal.append(1 << 32, 0, b"c").unwrap_err();
    assert!(
        matches!(err, WalError::NonIncreasingZxid { zxid, last } if zxid == 1 << 32 && last == 1 << 32),
        "{err}"
    );
    assert!(err.to_string().contains("not greater"), "{err}");
    assert!(matches!(
        wal.append(5, 0, b"d"),
        Err(WalError::NonIncreasingZxid { .. })
    ));
    assert!(matches!(
        Wal::open(tempfile::tempdir().unwrap().path(), opts())
            .unwrap()
            .0
            .append(0, 0, b""),
        Err(WalError::NonIncreasingZxid { .. })
    ));
    let got: Vec<u64> = wal.read_from(11).map(|r| r.unwrap().zxid).collect();
    assert_eq!(got, vec![1 << 32]);
}

#[test]
fn record_over_the_limit_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.append(1, 0, &vec![7; 4096]).unwrap();
    let err = wal.append(2, 0, &vec![7; 4097]).unwrap_err();
    assert!(matches!(
        err,
        WalError::RecordTooLarge {
            len: 4097,
            max: 4096
        }
    ));
    assert!(err.to_string().contains("record_bytes_max"), "{err}");
    wal.append(2, 0, b"still fine").unwrap();
}

#[test]
fn options_out_of_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        WalOptions {
            segment_bytes: 4096,
            ..opts()
        },
        WalOptions {
            segment_bytes: (64 << 10) + 1,
            ..opts()
        },
        WalOptions {
            record_bytes_max: 64 << 10,
            ..opts()
        },
    ] {
        let err = Wal::open(dir.path(), bad).unwrap_err();
        assert!(matches!(err, WalError::InvalidOptions(_)), "{err}");
    }
}

#[test]
fn missing_and_unusable_directories_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Wal::open(&missing, opts()).unwrap_err();
    assert!(
        err.to_string().contains("nope") && err.to_string().contains("does not exist"),
        "{err}"
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Wal::open(&file, opts()).unwrap_err();
    assert!(
        matches!(err, WalError::Dir { .. }) && err.to_string().contains("a-file"),
        "{err}"
    );

    // Unwritable: /proc/self is a directory no one (not even root) can create files in.
    let err = Wal::open("/proc/self", opts()).unwrap_err();
    assert!(
        matches!(err, WalError::Dir { .. }) && err.to_string().contains("lock file"),
        "{err}"
    );
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = open(dir.path());
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("LOCK") && err.to_string().contains("in use"),
        "{err}"
    );
    drop(wal);
    open(dir.path());
}

/// Appends 1..=n, flushes and closes; returns where record `n` went.
fn write_log(dir: &Path, n: u64) -> (PathBuf, usize, usize) {
    let (mut wal, _) = open(dir);
    append_range(&mut wal, 1, n - 1);
    let at = wal.append(n, common::kind(n), &payload(n)).unwrap();
    wal.flush().unwrap();
    let path = wal
        .segments()
        .iter()
        .find(|s| s.seq == at.segment)
        .unwrap()
        .path
        .clone();
    (
        path,
        at.offset as usize,
        wal::record::encoded_len(payload(n).len()),
    )
}

#[test]
fn torn_last_record_at_every_byte_offset_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    // Pick n so that the last record has a sizeable payload.
    let n = (150..).find(|&z| payload(z).len() > 300).unwrap();
    let (path, off, len) = write_log(dir.path(), n);
    let original = std::fs::read(&path).unwrap();
    // Real files are slow to rewrite and sync hundreds of times, so this test samples the
    // offsets (every header byte, every 7th payload byte, the last bytes); the in-memory
    // test in `faults.rs` covers every single offset.
    let covered = off + wal::record::RECORD_HEADER_BYTES + payload(n).len();
    let cuts = (off..off + 24)
        .chain((off + 24..covered).step_by(7))
        .chain(covered.saturating_sub(3)..off + len);
    for cut in cuts {
        for garbage in [false, true] {
            if cut >= covered && !garbage {
                continue; // zeroing the padding changes nothing
            }
            let mut torn = original.clone();
            for (i, b) in torn[cut..off + len].iter_mut().enumerate() {
                *b = if garbage { (i as u8) ^ 0x5a } else { 0 };
            }
            std::fs::write(&path, &torn).unwrap();
            let (mut wal, rec) = open(dir.path());
            assert_eq!(rec.last_zxid, n - 1, "cut at {cut}, garbage {garbage}");
            let torn_reported = rec.torn_tail.is_some();
            assert_eq!(torn_reported, cut > off || garbage, "cut at {cut}: {rec:?}");
            if torn_reported {
                assert_eq!(rec.torn_tail, Some((path.clone(), off as u64)));
            }
            assert_eq!(check_all_from(&wal, n - 3), vec![n - 3, n - 2, n - 1]);
            wal.append(n, common::kind(n), &payload(n)).unwrap();
            wal.append(n + 1, common::kind(n + 1), &payload(n + 1))
                .unwrap();
            wal.flush().unwrap();
            drop(wal);
            let (wal, rec) = open(dir.path());
            assert_eq!(
                (rec.last_zxid, rec.torn_tail),
                (n + 1, None),
                "cut at {cut}"
            );
            assert_eq!(check_all_from(&wal, 0), (1..=n + 1).collect::<Vec<_>>());
            drop(wal);
            std::fs::write(&path, &original).unwrap();
            // Record n + 1 may have gone to this segment or the next: start over cleanly.
            for p in segment_paths(dir.path()) {
                if p > path {
                    std::fs::remove_file(p).unwrap();
                }
            }
        }
    }
}

#[test]
fn flipped_byte_in_a_middle_record_refuses_to_open_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 5);
    let middle = wal.append(6, 0, b"middle record").unwrap();
    append_range(&mut wal, 7, 9);
    wal.flush().unwrap();
    let path = wal.segments().last().unwrap().path.clone();
    drop(wal);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[middle.offset as usize + 30] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, WalError::Corrupt { offset, .. } if offset == middle.offset),
        "{msg}"
    );
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains(&format!("byte offset {}", middle.offset)),
        "{msg}"
    );
    // Nothing was changed: fixing the byte makes the log whole again.
    bytes[middle.offset as usize + 30] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(open(dir.path()).1.last_zxid, 9);
}

#[test]
fn damage_in_a_non_final_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 500);
    wal.flush().unwrap();
    let first = wal.segments()[0].clone();
    assert!(wal.segments().len() >= 3);
    drop(wal);
    // Damage the very last record of the first segment: a "torn tail" in a segment that
    // has successors can only be lost acknowledged data.
    let mut bytes = std::fs::read(&first.path).unwrap();
    let last_byte = first.bytes_used as usize - 9;
    bytes[last_byte] ^= 0xff;
    std::fs::write(&first.path, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    assert!(
        matches!(&err, WalError::Corrupt { path, .. } if *path == first.path),
        "{err}"
    );
    assert!(err.to_string().contains("not the last"), "{err}");
}

#[test]
fn missing_middle_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 300);
    let second = wal.segments()[1].path.clone();
    drop(wal);
    std::fs::remove_file(&second).unwrap();
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    assert!(
        err.to_string().contains("missing")
            && err.to_string().contains(&second.display().to_string()),
        "{err}"
    );
}

#[test]
fn leftover_temp_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 10);
    drop(wal);
    let tmp = dir.path().join("00000000000000000009.wal.tmp");
    std::fs::write(&tmp, b"half").unwrap();
    let (wal, rec) = open(dir.path());
    assert_eq!(rec.last_zxid, 10);
    assert!(!tmp.exists());
    drop(wal);
}

#[test]
fn truncate_after_removes_later_records_durably() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 400);
    wal.flush().unwrap();
    let segs_before = wal.segments().len();
    wal.truncate_after(120).unwrap();
    assert_eq!(wal.last_zxid(), 120);
    assert_eq!(
        wal.durable_zxid(),
        120,
        "watermark drops to the truncation point"
    );
    assert!(wal.segments().len() < segs_before);
    assert_eq!(check_all_from(&wal, 0), (1..=120).collect::<Vec<_>>());
    assert!(matches!(
        wal.append(120, 0, b""),
        Err(WalError::NonIncreasingZxid { .. })
    ));
    append_range(&mut wal, 121, 200);
    wal.flush().unwrap();
    drop(wal);
    let (mut wal, rec) = open(dir.path());
    assert_eq!((rec.last_zxid, rec.torn_tail), (200, None));
    assert_eq!(check_all_from(&wal, 0), (1..=200).collect::<Vec<_>>());
    // Truncating before everything empties the log; truncating past the end is a no-op.
    wal.truncate_after(500).unwrap();
    wal.truncate_after(0).unwrap();
    assert_eq!(check_all_from(&wal, 0), Vec::<u64>::new());
    append_range(&mut wal, 1, 3);
    drop(wal);
    assert_eq!(open(dir.path()).1.last_zxid, 3);
}

#[test]
fn reset_to_a_snapshot_above_the_log_continues_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 10);
    wal.reset_to(20).unwrap();
    assert_eq!((wal.last_zxid(), wal.durable_zxid()), (20, 20));
    assert!(matches!(
        wal.append(15, 0, b""),
        Err(WalError::NonIncreasingZxid { .. })
    ));
    append_range(&mut wal, 21, 23);
    wal.flush().unwrap();
    drop(wal);
    let (wal, rec) = open(dir.path());
    assert_eq!(rec.last_zxid, 23);
    let mut want: Vec<u64> = (1..=10).collect();
    want.extend(21..=23);
    assert_eq!(
        check_all_from(&wal, 0),
        want,
        "recovery skips what the snapshot covers"
    );
}

#[test]
fn reset_to_a_snapshot_below_the_end_removes_the_diverging_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 300);
    wal.flush().unwrap();
    wal.reset_to(100).unwrap();
    assert_eq!((wal.last_zxid(), wal.durable_zxid()), (100, 100));
    wal.append(101, 7, b"the leader's 101").unwrap();
    wal.flush().unwrap();
    drop(wal);
    let (wal, rec) = open(dir.path());
    assert_eq!(rec.last_zxid, 101);
    let last = wal.read_from(101).next().unwrap().unwrap();
    assert_eq!((last.zxid, last.payload), (101, &b"the leader's 101"[..]));
}

#[test]
fn truncation_and_reset_bump_the_generation_flushes_report() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    let syncer = wal.syncer();
    append_range(&mut wal, 1, 10);
    let g = wal.generation();
    assert_eq!(syncer.flush_tagged().unwrap(), (g, 10));
    wal.truncate_after(5).unwrap();
    assert_eq!(syncer.generation(), g + 1);
    append_range(&mut wal, 6, 8);
    assert_eq!(syncer.flush_tagged().unwrap(), (g + 1, 8));
    wal.reset_to(8).unwrap();
    assert_eq!(
        (wal.generation(), syncer.flush_tagged().unwrap()),
        (g + 2, (g + 2, 8)),
        "a reset bumps it even when nothing is removed"
    );
}

#[test]
fn truncate_between_zxids_keeps_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    for z in [10, 20, 30] {
        wal.append(z, 0, b"x").unwrap();
    }
    wal.truncate_after(25).unwrap();
    assert_eq!(wal.last_zxid(), 25);
    assert!(wal.append(25, 0, b"").is_err());
    wal.append(26, 0, b"").unwrap();
    let got: Vec<u64> = wal.read_from(0).map(|r| r.unwrap().zxid).collect();
    assert_eq!(got, vec![10, 20, 26]);
}

#[test]
fn purge_below_removes_whole_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 400);
    let segs = wal.segments();
    let (_, last_of_second) = segs[1].zxids.unwrap();
    assert_eq!(
        wal.purge_below(last_of_second).unwrap(),
        1,
        "second segment still holds {last_of_second}"
    );
    assert_eq!(wal.purge_below(last_of_second + 1).unwrap(), 1);
    assert_eq!(wal.segments()[0].seq, segs[2].seq);
    assert!(!segs[0].path.exists() && !segs[1].path.exists());
    let first_left = segs[2].zxids.unwrap().0;
    assert_eq!(
        check_all_from(&wal, 0),
        (first_left..=400).collect::<Vec<_>>()
    );
    // Never the active segment, whatever the zxid.
    wal.purge_below(u64::MAX).unwrap();
    assert_eq!(wal.segments().len(), 1);
    let active_first = wal.segments()[0].zxids.unwrap().0;
    drop(wal);
    let (wal, rec) = open(dir.path());
    assert_eq!((rec.first_zxid, rec.last_zxid), (active_first, 400));
    assert_eq!(
        check_all_from(&wal, 0),
        (active_first..=400).collect::<Vec<_>>()
    );
}

#[test]
fn segments_lists_ranges_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    append_range(&mut wal, 1, 300);
    let segs = wal.segments();
    let mut next = 1;
    for (i, s) in segs.iter().enumerate() {
        let (a, b) = s.zxids.unwrap();
        assert_eq!(a, next);
        assert!(b >= a && s.bytes_used <= s.bytes_total && s.bytes_total == 64 << 10);
        assert_eq!(s.seq, segs[0].seq + i as u64);
        next = b + 1;
    }
    assert_eq!(next, 301);
}

#[test]
fn lowering_record_bytes_max_keeps_larger_records_already_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = open(dir.path());
    wal.append(1, 0, &[1; 4000]).unwrap();
    wal.append(2, 0, &[2; 4000]).unwrap();
    wal.flush().unwrap();
    drop(wal);
    let small = WalOptions {
        record_bytes_max: 100,
        ..opts()
    };
    let (mut wal, rec) = Wal::open(dir.path(), small).unwrap();
    assert_eq!(
        (rec.last_zxid, rec.torn_tail),
        (2, None),
        "big records are not mistaken for damage"
    );
    assert_eq!(
        wal.read_from(0)
            .map(|r| r.unwrap().payload.len())
            .collect::<Vec<_>>(),
        vec![4000, 4000]
    );
    assert!(matches!(
        wal.append(3, 0, &[3; 101]),
        Err(WalError::RecordTooLarge { .. })
    ));
}

#[test]
fn both_append_methods_write_the_same_log() {
    use wal::AppendMethod;
    let dir = tempfile::tempdir().unwrap();
    for (i, method) in [AppendMethod::Map, AppendMethod::Pwrite, AppendMethod::Map]
        .into_iter()
        .enumerate()
    {
        let options = WalOptions {
            append_method: method,
            ..opts()
        };
        let (mut wal, rec) = Wal::open(dir.path(), options).unwrap();
        let from = i as u64 * 200 + 1;
        assert_eq!(rec.last_zxid, from - 1);
        append_range(&mut wal, from, from + 199);
        // Records appended either way are readable through the map at once.
        assert_eq!(
            check_all_from(&wal, 0),
            (1..=from + 199).collect::<Vec<_>>()
        );
        wal.flush().unwrap();
    }
    let (wal, rec) = open(dir.path());
    assert_eq!((rec.last_zxid, rec.torn_tail), (600, None));
    assert_eq!(check_all_from(&wal, 0).len(), 600);
}

#[test]
fn append_batch_writes_across_segments_and_checks_everything_first() {
    use wal::AppendMethod;
    for method in [AppendMethod::Pwrite, AppendMethod::Map] {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(
            dir.path(),
            WalOptions {
                append_method: method,
                ..opts()
            },
        )
        .unwrap();
        let payloads: Vec<Vec<u8>> = (1..=400).map(payload).collect();
        let batch: Vec<(u64, u8, &[u8])> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, common::kind(i as u64 + 1), &p[..]))
            .collect();
        wal.append_batch(&batch[..250]).unwrap();
        wal.append_batch(&batch[250..]).unwrap();
        assert!(wal.segments().len() >= 3, "the batch rolled segments");
        assert_eq!(check_all_from(&wal, 0), (1..=400).collect::<Vec<_>>());
        // A bad record anywhere refuses the whole batch, before writing anything.
        let big = vec![0u8; 5000];
        let err = wal
            .append_batch(&[(401, 0, b"ok"), (402, 0, &big)])
            .unwrap_err();
        assert!(matches!(err, WalError::RecordTooLarge { .. }));
        let err = wal
            .append_batch(&[(401, 0, b"ok"), (401, 0, b"again")])
            .unwrap_err();
        assert!(matches!(err, WalError::NonIncreasingZxid { .. }));
        assert_eq!(wal.last_zxid(), 400);
        wal.flush().unwrap();
        drop(wal);
        let (wal, rec) = open(dir.path());
        assert_eq!((rec.last_zxid, rec.torn_tail), (400, None));
        assert_eq!(check_all_from(&wal, 0).len(), 400);
    }
}
