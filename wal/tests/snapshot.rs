//! Snapshots: atomic writes, newest-valid loading, retention.

use std::path::Path;
use std::sync::Arc;

use wal::io::FaultStorage;
use wal::snapshot::snapshot_file_name;
use wal::{SnapshotStore, WalError};

/// The newest valid snapshot's zxid and payload.
fn newest(store: &SnapshotStore) -> Option<(u64, Vec<u8>)> {
    store
        .load_newest()
        .unwrap()
        .map(|(z, f)| (z, f.payload().to_vec()))
}

#[test]
fn write_load_newest_and_retain() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    assert_eq!(newest(&store), None);
    for zxid in [5u64, 1 << 33, 40] {
        store
            .write(zxid, format!("tree at {zxid}").as_bytes())
            .unwrap();
    }
    assert_eq!(store.list().unwrap(), vec![1 << 33, 40, 5]);
    assert_eq!(
        newest(&store),
        Some((1 << 33, format!("tree at {}", 1u64 << 33).into_bytes()))
    );
    assert_eq!(store.read(5).unwrap(), b"tree at 5");
    assert_eq!(store.retain(2).unwrap(), 1);
    assert_eq!(store.list().unwrap(), vec![1 << 33, 40]);
    assert_eq!(
        store.retain(0).unwrap(),
        1,
        "at least one snapshot is always kept"
    );
    assert_eq!(store.list().unwrap(), vec![1 << 33]);
}

#[test]
fn corrupt_or_short_newest_snapshot_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path()).unwrap();
    store.write(10, b"old").unwrap();
    store.write(20, b"newer").unwrap();
    let p20 = store.write(30, b"newest").unwrap();
    let mut bytes = std::fs::read(&p20).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&p20, &bytes).unwrap();
    assert_eq!(newest(&store), Some((20, b"newer".to_vec())));
    let err = store.read(30).unwrap_err();
    assert!(
        matches!(err, WalError::BadSnapshot { .. })
            && err.to_string().contains(&snapshot_file_name(30)),
        "{err}"
    );
    // A truncated file (say, a copy cut short) is skipped too.
    let p20 = dir.path().join(snapshot_file_name(20));
    let bytes = std::fs::read(&p20).unwrap();
    std::fs::write(&p20, &bytes[..bytes.len() - 2]).unwrap();
    assert_eq!(newest(&store), Some((10, b"old".to_vec())));
    // A file renamed to another zxid does not pass for that zxid.
    std::fs::rename(
        dir.path().join(snapshot_file_name(10)),
        dir.path().join(snapshot_file_name(50)),
    )
    .unwrap();
    assert_eq!(newest(&store), None);
}

#[test]
fn crash_mid_write_leaves_a_temp_file_that_is_ignored_and_removed() {
    let dir = Path::new("/snaps");
    let fs = FaultStorage::with_dir(dir);
    let store = SnapshotStore::open_with(dir, Arc::new(fs.clone())).unwrap();
    store.write(1, b"first").unwrap();
    // The fsync of the second snapshot fails: the write reports it, and no file with the
    // final name appears.
    fs.fail_next_flushes(1);
    let err = store.write(2, b"second").unwrap_err();
    assert!(err.to_string().contains("snap-0000000000000002"), "{err}");
    assert_eq!(store.list().unwrap(), vec![1]);
    // A crash while a temp file is there: it is ignored, then removed on open.
    let tmp = dir.join("snap-0000000000000003.snap.tmp");
    fs.set_contents(&tmp, b"half a snapshot".to_vec());
    let after = fs.crash(|_, _| 0);
    let store = SnapshotStore::open_with(dir, Arc::new(after.clone())).unwrap();
    assert_eq!(newest(&store), Some((1, b"first".to_vec())));
    assert_eq!(after.contents(&tmp), None);
}

#[test]
fn unsynced_snapshot_data_is_not_mistaken_for_a_snapshot() {
    let dir = Path::new("/snaps");
    let fs = FaultStorage::with_dir(dir);
    let store = SnapshotStore::open_with(dir, Arc::new(fs.clone())).unwrap();
    store.write(1, b"durable").unwrap();
    store.write(2, &vec![9u8; 10_000]).unwrap();
    // Tear the second file as if its data never reached the disk: (in this model its
    // rename was durable but its contents only partly).
    let p2 = dir.join(snapshot_file_name(2));
    let bytes = fs.contents(&p2).unwrap();
    fs.set_contents(&p2, bytes[..5000].to_vec());
    assert_eq!(newest(&store), Some((1, b"durable".to_vec())));
}

#[test]
fn short_writes_still_produce_whole_snapshots() {
    let dir = Path::new("/snaps");
    let fs = FaultStorage::with_dir(dir);
    fs.set_short_write_max(7);
    let store = SnapshotStore::open_with(dir, Arc::new(fs.clone())).unwrap();
    let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    store.write(9, &payload).unwrap();
    assert_eq!(newest(&store), Some((9, payload)));
}

#[test]
fn missing_snapshot_directory_is_a_clear_error() {
    let err = SnapshotStore::open("/definitely/not/here").unwrap_err();
    assert!(
        matches!(err, WalError::Dir { .. }) && err.to_string().contains("/definitely/not/here"),
        "{err}"
    );
}
