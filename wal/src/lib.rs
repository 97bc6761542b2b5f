//! corekeeper's write-ahead log: segmented, pre-written, memory-mapped, with group
//! commit, a durable-zxid watermark, snapshots and crash recovery.
//!
//! Every later piece (Zab acks, CRAQ commits, restart recovery) trusts this crate never to
//! lose an acknowledged record.
//!
//! # Contract
//! - [`Wal::append`] copies a record into the active segment (through the memory map by
//!   default, or with `pwrite`: [`AppendMethod`]) and returns; it never waits for a
//!   flush, only when rolling to a segment whose background pre-write has not finished
//!   ([`WalStats::roll_waits`] counts that). A page write fault may still cost it a few
//!   µs (see "Measured").
//! - A record is *durable* once a [`Syncer::flush`] that started after its append has
//!   returned; then [`Syncer::durable_zxid`] is at least its zxid. Only a zxid at or below
//!   the durable watermark may be acknowledged to anyone.
//! - Zxids strictly increase ([`WalError::NonIncreasingZxid`] otherwise); payloads are at
//!   most `record_bytes_max` bytes ([`WalError::RecordTooLarge`]).
//! - After a crash, [`Wal::open`] returns every durable record, intact, in order, and
//!   nothing after a gap: recovery keeps the longest valid prefix.
//! - A failed flush poisons the log ([`WalError::Poisoned`]): the watermark stops and the
//!   process must reopen the log (after a failed fsync, a retry proves nothing).
//!
//! # Invariants
//! - Segments have consecutive sequence numbers; each is a complete, pre-written file of
//!   its header's size; records start at byte 32 and are 8-byte aligned, so payloads are
//!   8-byte aligned in the map (rkyv archives can be validated in place).
//! - Everything after the last record of a segment is zero (pre-writing and truncation
//!   both guarantee it), so "all zeros" means "end".
//! - Bytes below a segment's published end never change, except through
//!   [`Wal::truncate_after`] (which needs `&mut Wal`, so no read borrow is alive).
//!
//! # Layout on disk
//! ```text
//! dir/LOCK                          flock'ed while a Wal is open
//! dir/TRUNCATE                      only while a truncation is under way (see [`truncation`])
//! dir/00000000000000000001.wal      segment 1 (full)
//! dir/00000000000000000002.wal      segment 2 (active)
//! dir/00000000000000000003.wal      segment 3 (pre-written spare, all zeros)
//! dir/00000000000000000004.wal.tmp  being pre-written (removed on open)
//! ```
//! The segment header and record formats are drawn in [`segment`] and [`record`]:
//! ```text
//! record: magic u16 | version u8 | kind u8 | payload_len u32 | zxid u64 | crc32c u32 | 0u32 | payload | pad to 8
//! ```
//!
//! # Recovery
//! Recovery ([`recovery`]) first completes a truncation that a crash interrupted
//! ([`truncation`]), then scans to the last valid record. A torn tail in the last
//! segment holding data (partial record, crc mismatch, zeros in a header) is zeroed and
//! logged with `tracing::warn`. Damage followed by any valid record, or damage in an
//! earlier segment, refuses to open with [`WalError::Corrupt`] naming file and offset:
//! the log never silently drops what may have been acknowledged.
//!
//! Known limit: on *power loss* (not a process crash: the page cache survives those) the
//! kernel may have written back a later page of an unflushed batch without an earlier
//! one. None of those records was acknowledged, but the log cannot tell this case from
//! media corruption, so it refuses to open and names the offset; the operator decides.
//!
//! # Group commit
//! [`GroupCommit`] runs a thread that applies a [`FlushPolicy`] (flush at N records, B
//! bytes or T µs, whichever first; like ZooKeeper's `SyncRequestProcessor`) with a
//! [`Syncer`], and calls back with the new durable zxid. [`SyncMode`] selects `Always`
//! (a flush per record), `Batch` (the default) or `Never` (benchmarks only).
//!
//! # Measured (`cargo bench -p bench --bench wal_append`)
//! On this project's machine (ext4 on virtio, 2 cores shared with other jobs) one
//! `fdatasync` cost ~0.24 ms in a quiet minute and ~4 ms (bimodal, p90 ~8 ms) while other
//! jobs ran, which was most of the time; the brief's ~75 µs overwrite was never seen. So
//! sequential criterion numbers are not comparable with each other: the bench's
//! `interleaved` target runs every contender in turn for 300 rounds and reports medians
//! relative to a bare `pwrite`+`fdatasync` of a 4 KiB overwrite in the same rounds.
//! Ratios below; ranges are over runs (2026-11-21).
//!
//! | durable write of 100 B records      | loaded disk (12 runs) | quiet disk (1 run) |
//! |-------------------------------------|-----------------------|--------------------|
//! | 1, map + msync (**default**)        | 0.88–1.17x (a)        | 1.78x              |
//! | 1, map + fdatasync                  | 0.95–1.41x            | 1.88x              |
//! | 1, plain pwrite + fdatasync         | 0.93–1.03x            | 0.99x              |
//! | 1, glommio DMA + fdatasync          | 0.57–1.06x            | 1.21x              |
//! | 256, map + msync: records/s         | 61k–131k              | 602k               |
//! | 256, glommio DMA: records/s         | 62k–213k              | 865k               |
//! | 1024, map + msync: records/s        | 234k–409k             |                    |
//!
//! (a) 1.1–1.4x in the runs that pre-faulted a 1 MiB window (see below).
//!
//! - **Single append + flush vs a bare fdatasync** (target: within 1.2x): met while the
//!   disk was loaded (0.88–1.17x; the flush dominates), **missed in the one quiet window
//!   measured (1.7–1.9x)**, where a plain pwrite + fdatasync was 0.99x: writing through a
//!   shared map costs something per flush that a pwrite does not (a write fault after
//!   every writeback, and on ext4 an mtime update through a journal handle inside it). The
//!   `pwrite` append method ([`AppendMethod::Pwrite`]) exists for that case; its own
//!   quiet-disk ratio was not measured (the disk was never quiet again).
//! - **Group commit** (target: 200k durable 100 B records/s): flush-bound batches of 1024
//!   give 234k–409k/s on the loaded disk (256: 61k–131k). With the [`GroupCommit`]
//!   thread and the default policy (up to 1000 records a batch), the `pipelined` target
//!   (one thread appending as fast as it can) made 200 000 records durable at
//!   0.8M–3.6M records/s over 15 runs: appends, not flushes, bound it.
//! - **The append itself** (`append_only`, a flush every 256 appends outside the timing,
//!   loaded machine): through the map 0.09–0.17 µs for 100 B, 1.4–1.6 µs for 1 KiB,
//!   7–8 µs for 4 KiB; through `pwrite` 2.8–4.6 µs whatever the size. Pre-faulting the
//!   next 64 KiB from the flushing thread ([`WalOptions::prefault_bytes_max`]) cut the map
//!   numbers from 0.56 / 2.6 / 10.8 µs; a 1 MiB window cut them to 0.14 / 0.24 / 0.93 µs
//!   but made a synchronous flush 1.3x slower (its cost grows with the window). With
//!   `pwrite` appends the pipelined run fell to 80k–220k records/s. Hence the default:
//!   map appends, msync flushes (msync flushes only the dirty range; fdatasync tied).
//! - glommio DMA writes were faster in some runs (up to 2x for batches, and 865k
//!   records/s for batches of 256 in the quiet window) and equal in others. Adopting
//!   them would replace the map, and with it reading records in place; left for a
//!   measurement on a quiet, dedicated disk, as is mounting with `lazytime` (which keeps
//!   ext4's mtime update out of the write fault).
//!
//! # Modules
//! [`record`] (format), [`segment`] (files, pre-writing), [`recovery`], [`group`] (syncer,
//! policy, flusher thread), [`truncation`] (crash-safe truncate), [`snapshot`], [`io`] (the fault-injectable file trait),
//! [`options`] (limits).

pub mod error;
pub mod group;
pub mod io;
pub mod options;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod truncation;
mod wal;

pub use error::{Result, WalError};
pub use group::{Batch, FlushDecision, FlushPolicy, GroupCommit, OnDurable, Syncer};
pub use options::{AppendMethod, FlushMethod, SyncMode, WalOptions};
pub use record::RecordRef;
pub use recovery::Recovery;
pub use snapshot::SnapshotStore;
pub use wal::{Appended, LOCK_FILE_NAME, ReadIter, SegmentInfo, Wal, WalStats};
