//! Fault-injection hooks for fault tests and benchmarks, off unless their environment
//! variable names a file: a harness writes a number into the file, and the server reads
//! it again at most every [`FAULT_FILE_REREAD_MS`]. A missing or unreadable file, or one
//! that holds no number, means no fault.
//!
//! - [`FAULT_CLOCK_FILE_ENV`]: the wall clock reads as the real one plus this many
//!   milliseconds (ckjepsen's `clock` nemesis; see `clock.rs`).
//! - [`FAULT_FSYNC_STALL_FILE_ENV`]: every WAL flush first stalls this many
//!   milliseconds (a slow or stalling disk: `ckbench modes --slow-disk-ms`). The stall
//!   is on the flush's own thread, as a slow `fdatasync` would be.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// See the module docs.
pub const FAULT_CLOCK_FILE_ENV: &str = "CK_FAULT_CLOCK_FILE";
/// See the module docs.
pub const FAULT_FSYNC_STALL_FILE_ENV: &str = "CK_FAULT_FSYNC_STALL_FILE";
/// How often a hook's file is read again.
pub const FAULT_FILE_REREAD_MS: i64 = 50;
/// Longest flush stall the hook applies (a bigger number is taken as this).
pub const FAULT_FSYNC_STALL_MS_MAX: u64 = 60_000;

/// One hook: the file its variable names and the number last read from it.
pub struct FaultFile {
    env: &'static str,
    file: OnceLock<Option<PathBuf>>,
    value: AtomicI64,
    next_read_ms: AtomicI64,
}

impl FaultFile {
    pub const fn new(env: &'static str) -> FaultFile {
        FaultFile {
            env,
            file: OnceLock::new(),
            value: AtomicI64::new(0),
            next_read_ms: AtomicI64::new(0),
        }
    }

    /// The number in the hook's file (0 when the hook is off).
    pub fn value(&self) -> i64 {
        let Some(file) = self
            .file
            .get_or_init(|| std::env::var_os(self.env).map(PathBuf::from))
        else {
            return 0;
        };
        let now = super::clock::mono_ms();
        if now >= self.next_read_ms.load(Relaxed) {
            self.next_read_ms.store(now + FAULT_FILE_REREAD_MS, Relaxed);
            let v = std::fs::read_to_string(file)
                .ok()
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(0);
            self.value.store(v, Relaxed);
        }
        self.value.load(Relaxed)
    }
}

/// The wall-clock step hook.
pub static CLOCK_STEP_MS: FaultFile = FaultFile::new(FAULT_CLOCK_FILE_ENV);
/// The flush stall hook.
pub static FSYNC_STALL_MS: FaultFile = FaultFile::new(FAULT_FSYNC_STALL_FILE_ENV);

/// Sleeps as long as the flush stall hook says (nothing when it is off). Call it on
/// the thread about to flush.
pub fn fsync_stall() {
    let ms = FSYNC_STALL_MS
        .value()
        .clamp(0, FAULT_FSYNC_STALL_MS_MAX as i64);
    if ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(ms as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_reads_its_file_and_is_off_without_one() {
        static OFF: FaultFile = FaultFile::new("CK_TEST_FAULT_HOOK_UNSET");
        assert_eq!(OFF.value(), 0, "no variable: off");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stall");
        std::fs::write(&path, "250\n").unwrap();
        // SAFETY: this test's own variable, set before any thread reads it.
        unsafe { std::env::set_var("CK_TEST_FAULT_HOOK_SET", &path) };
        static SET: FaultFile = FaultFile::new("CK_TEST_FAULT_HOOK_SET");
        assert_eq!(SET.value(), 250);
        // SAFETY: as above.
        unsafe { std::env::set_var("CK_TEST_FAULT_HOOK_GARBAGE", dir.path().join("none")) };
        static MISSING: FaultFile = FaultFile::new("CK_TEST_FAULT_HOOK_GARBAGE");
        assert_eq!(MISSING.value(), 0, "a missing file: no fault");
    }
}
