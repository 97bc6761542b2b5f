//! Options and limits of the WAL, in one place.
//!
//! Every limit is a named constant ending in `_max` (or `_min`), units last. The defaults
//! are checked against each other at compile time; user-chosen options are checked at
//! [`crate::Wal::open`] by [`WalOptions::validate`], which returns a clear error instead
//! of panicking later.

use crate::error::WalError;
use crate::record::{RECORD_HEADER_BYTES, align8};
use crate::segment::SEGMENT_HEADER_BYTES;

/// Default size of one segment file: 64 MiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Smallest segment allowed (tests use this to roll often).
pub const SEGMENT_BYTES_MIN: u64 = 64 << 10;
/// Largest segment allowed: offsets inside a segment stay well within `usize` on 64-bit
/// targets, and one map stays a reasonable share of the address space.
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;
/// Default largest payload of one record: 1 MiB (ZooKeeper's `jute.maxbuffer`).
pub const RECORD_BYTES_MAX_DEFAULT: u32 = 1 << 20;
/// Default of [`WalOptions::prefault_bytes_max`]: 64 KiB. The pre-fault's cost grows
/// with the window and lands on the flushing thread (measured: a 1 MiB window made a
/// synchronous append+flush ~1.3x a bare fdatasync, 16 KiB ~1.0x); 64 KiB covers the
/// bytes a typical group commit appends between flushes.
pub const PREFAULT_BYTES_MAX_DEFAULT: usize = 64 << 10;
/// How many snapshots [`crate::snapshot::SnapshotStore::retain`] keeps by default.
pub const SNAPSHOTS_RETAINED_DEFAULT: usize = 3;

// The default record must fit in a segment with its header, and segments must hold a
// record of the largest size at all (otherwise an append could never succeed).
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_DEFAULT.is_multiple_of(4096));
const _: () = assert!(SEGMENT_BYTES_MIN.is_multiple_of(4096));
const _: () = assert!(
    SEGMENT_HEADER_BYTES as u64 + RECORD_HEADER_BYTES as u64 + RECORD_BYTES_MAX_DEFAULT as u64
        <= SEGMENT_BYTES_DEFAULT
);
const _: () =
    assert!(SEGMENT_HEADER_BYTES.is_multiple_of(8) && RECORD_HEADER_BYTES.is_multiple_of(8));

/// How appended records are made durable. The log flushes only when a
/// [`crate::Syncer::flush`] is called; when to call it is the caller's choice
/// (`engine::shard::commit` schedules the server's flushes). The log treats `Always` and
/// `Batch` alike; they differ only in what the caller does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// The caller flushes after every record.
    Always,
    /// The caller flushes groups of records (group commit). The default.
    #[default]
    Batch,
    /// Nothing is ever flushed: a flush does no disk work but still moves the durable
    /// watermark. **Benchmarks only**: a crash of the machine loses data that was reported durable.
    Never,
}

/// Which system call makes a dirty range of the map durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlushMethod {
    /// `msync(MS_SYNC)` of exactly the dirty range (page-aligned). The default: it cost
    /// the same as `fdatasync` within the noise (see the crate docs) and flushes only the
    /// dirty range.
    #[default]
    Msync,
    /// `fdatasync` of the whole segment file.
    Fdatasync,
}

/// How an append puts the record's bytes into the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AppendMethod {
    /// `pwrite` into the page cache at the record's offset; the map (still used for
    /// reading records in place, and for recovery) sees the bytes at once. The default:
    /// on a quiet disk a durable single append + flush measured 0.80x a bare fdatasync
    /// this way against 2.05x through the map, and batches of 256 still made 414k
    /// durable records/s (see the crate docs). Costs a system call per append (~2 µs
    /// quiet, 3-8 µs on a loaded machine).
    #[default]
    Pwrite,
    /// `memcpy` into the memory map: no system call per append (~0.1 µs for 100 B), and
    /// the most records/s in large batches (754k/s at 256 on the quiet disk), but each
    /// flush of pages written through a shared map cost about twice a plain fdatasync.
    /// For throughput-bound logs.
    Map,
}

/// Options of [`crate::Wal::open`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Size of every segment file, a multiple of 4096 in
    /// [`SEGMENT_BYTES_MIN`]..=[`SEGMENT_BYTES_MAX`].
    pub segment_bytes: u64,
    /// Largest payload accepted by [`crate::Wal::append`].
    pub record_bytes_max: u32,
    /// Durability mode (see [`SyncMode`]).
    pub sync: SyncMode,
    /// System call used by a flush.
    pub flush_method: FlushMethod,
    /// How an append writes the record.
    pub append_method: AppendMethod,
    /// After each flush, the flushing thread pre-faults (`MADV_POPULATE_WRITE`) this many
    /// bytes past the end of the records, so that the appender does not take the write
    /// faults; 0 disables it. Only with [`FlushMethod::Msync`] and [`AppendMethod::Map`].
    pub prefault_bytes_max: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
            sync: SyncMode::default(),
            flush_method: FlushMethod::default(),
            append_method: AppendMethod::default(),
            prefault_bytes_max: PREFAULT_BYTES_MAX_DEFAULT,
        }
    }
}

impl WalOptions {
    /// Checks the options against the limits and each other.
    pub fn validate(&self) -> Result<(), WalError> {
        let bad = |why: String| Err(WalError::InvalidOptions(why));
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return bad(format!(
                "segment_bytes {} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                self.segment_bytes
            ));
        }
        if !self.segment_bytes.is_multiple_of(4096) {
            return bad(format!(
                "segment_bytes {} is not a multiple of 4096",
                self.segment_bytes
            ));
        }
        let largest = SEGMENT_HEADER_BYTES as u64
            + align8(RECORD_HEADER_BYTES + self.record_bytes_max as usize) as u64;
        if largest > self.segment_bytes {
            return bad(format!(
                "record_bytes_max {} does not fit in a segment of {} bytes with its headers",
                self.record_bytes_max, self.segment_bytes
            ));
        }
        Ok(())
    }
}
