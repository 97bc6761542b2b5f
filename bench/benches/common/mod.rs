//! Helpers shared by the disk benches (`wal_append`, `flush_path`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A file of `bytes` zeros, written and synced, opened for reading and writing:
/// overwriting it later costs what a pre-written WAL segment costs.
pub fn prewritten(path: &Path, bytes: u64) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for off in (0..bytes).step_by(zeros.len()) {
        file.write_all_at(&zeros, off).unwrap();
    }
    file.sync_all().unwrap();
    file
}
