//! The runtime's two clocks, read in one place.
//!
//! Wall-clock time (`SystemTime`) is what ZooKeeper stamps on znodes (ctime, mtime) and
//! what TTLs count from; it can step (NTP, an operator). Monotonic time (`Instant`)
//! never steps: session deadlines, flush latencies and request latencies use it, so a
//! wall-clock step forward does not expire every session at once and a step back does
//! not keep dead sessions alive. The pure cores take both as [`Now`] and never read a
//! clock themselves. For fault tests, [`FAULT_CLOCK_FILE_ENV`] lets a harness step
//! the wall clock of one server process (nothing else reads it).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::shard::Now;

/// The fault-injection hook for wall-clock steps (ckjepsen's `clock` nemesis): when
/// this variable names a file, the wall clock reads as the real one plus the
/// milliseconds written in it. Monotonic time is never shifted: that is the point.
pub const FAULT_CLOCK_FILE_ENV: &str = "CK_FAULT_CLOCK_FILE";
/// How often the hook's file is read again.
pub const FAULT_CLOCK_REREAD_MS: i64 = 50;

/// Milliseconds since the Unix epoch (shifted by the fault hook when it is set).
pub fn wall_ms() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    real + fault_offset_ms()
}

fn fault_offset_ms() -> i64 {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    static OFFSET: AtomicI64 = AtomicI64::new(0);
    static NEXT_READ: AtomicI64 = AtomicI64::new(0);
    let Some(file) = FILE.get_or_init(|| std::env::var_os(FAULT_CLOCK_FILE_ENV).map(PathBuf::from))
    else {
        return 0;
    };
    let now = mono_ms();
    if now >= NEXT_READ.load(Relaxed) {
        NEXT_READ.store(now + FAULT_CLOCK_REREAD_MS, Relaxed);
        // A missing or unreadable file means no step.
        let offset = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0);
        OFFSET.store(offset, Relaxed);
    }
    OFFSET.load(Relaxed)
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds on the process's monotonic clock (starts near 0, never goes back).
pub fn mono_ms() -> i64 {
    origin().elapsed().as_millis() as i64
}

/// Microseconds on the process's monotonic clock.
pub fn mono_us() -> u64 {
    origin().elapsed().as_micros() as u64
}

/// Both clocks, now.
pub fn now() -> Now {
    Now {
        wall_ms: wall_ms(),
        mono_ms: mono_ms(),
    }
}
