//! The runtime's two clocks, read in one place.
//!
//! Wall-clock time (`SystemTime`) is what ZooKeeper stamps on znodes (ctime, mtime) and
//! what TTLs count from; it can step (NTP, an operator). Monotonic time (`Instant`)
//! never steps: session deadlines, flush latencies and request latencies use it, so a
//! wall-clock step forward does not expire every session at once and a step back does
//! not keep dead sessions alive. The pure cores take both as [`Now`] and never read a
//! clock themselves. For fault tests, [`FAULT_CLOCK_FILE_ENV`] lets a harness step
//! the wall clock of one server process (nothing else reads it).

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::shard::Now;

pub use super::fault::FAULT_CLOCK_FILE_ENV;

/// Milliseconds since the Unix epoch (shifted by the fault hook when it is set: the
/// wall clock reads as the real one plus the milliseconds written in the hook's file;
/// monotonic time is never shifted, that is the point).
pub fn wall_ms() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    real + super::fault::CLOCK_STEP_MS.value()
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
