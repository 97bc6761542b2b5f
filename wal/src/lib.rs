//! corekeeper's write-ahead log: segmented, pre-written, memory-mapped, with group
//! commit, a durable-zxid watermark, snapshots and crash recovery.
//!
//! Every later piece (Zab acks, CRAQ commits, restart recovery) trusts this crate never to
//! lose an acknowledged record.
//!
//! # Contract
//! - [`Wal::append`] copies a record into the active segment (with `pwrite` into the
//!   page cache by default, or through the memory map: [`AppendMethod`]) and returns; it
//!   never waits for a flush, only when rolling to a segment whose background pre-write
//!   has not finished ([`WalStats::roll_waits`] counts that). Either way the bytes are
//!   readable in place from the map at once (one page cache).
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
//! Group commit is the caller running [`Syncer::flush`] off its hot thread while the
//! appender goes on: each flush covers everything appended when it started, so what is
//! appended during one flush goes out with the next. The crate has no flusher thread and
//! no batching policy of its own; the server's scheduling (one flush at a time on
//! glommio's blocking pool, or one per txn with `sync=always`) lives in
//! `engine::shard::commit`. [`SyncMode`] `Never` (benchmarks only) makes flushes do no
//! disk work; the log flushes alike under `Always` and `Batch` (only the caller's schedule
//! differs).
//!
//! # Measured (`cargo bench -p bench --bench wal_append`)
//! On this project's machine (ext4 on virtio, 2 cores shared with other jobs) one
//! `fdatasync` of a 4 KiB overwrite cost 0.15–0.24 ms in quiet minutes and ~4 ms
//! (bimodal, p90 ~8 ms) while other jobs ran, which was most of the time. So sequential
//! criterion numbers are not comparable with each other: the bench's `interleaved`
//! target runs every contender in turn for 300 rounds and reports medians relative to a
//! bare `pwrite`+`fdatasync` of a 4 KiB overwrite in the same rounds (2026-11-21).
//!
//! | durable write of 100 B records        | loaded disk           | quiet disk        |
//! |---------------------------------------|-----------------------|-------------------|
//! | 1, pwrite append + msync (**default**)| 0.99–1.08x (3 runs)   | **0.69x–0.86x** (4)|
//! | 1, pwrite append + fdatasync          | 0.95–1.00x            | 0.90x–1.01x (4)   |
//! | 1, map append + msync                 | 0.88–1.17x (a)        | 1.52x–2.05x (5)   |
//! | 1, map append + fdatasync             | 0.95–1.41x            | 1.60x–1.88x (5)   |
//! | 1, plain pwrite + fdatasync (no WAL)  | 0.93–1.03x            | 0.89x–0.99x (5)   |
//! | 1, glommio DMA + fdatasync            | 0.57–1.06x            | 1.08x–1.90x (5)   |
//! | 256, pwrite append + msync: records/s | 46k–64k               | 185k–414k (4)     |
//! | 256, one `append_batch`: records/s    |                       | **683k, 741k**    |
//! | 256, map append + msync: records/s    | 61k–131k              | 331k–754k (5)     |
//! | 256, glommio DMA: records/s           | 62k–213k              | 415k–1.38M (5)    |
//! | 1024, map append + msync: records/s   | 234k–409k             | 0.82M–1.94M (4)   |
//!
//! (a) 1.1–1.4x in runs that pre-faulted a 1 MiB window (see below). Loaded ranges are
//! over up to 12 runs; the quiet column has two to five runs, (n) where a range (the
//! disk was rarely quiet).
//!
//! - **Single append + flush vs a bare fdatasync** (target: within 1.2x): 0.69–0.86x on
//!   the (quieter) disk and 0.99–1.08x on the loaded one with the default `pwrite` appends.
//!   Appends through the shared map ([`AppendMethod::Map`]) missed it on the quiet disk
//!   (1.5–2.1x): a flush of pages written through a shared map cost about twice a plain
//!   fdatasync here (each page takes a write fault after writeback, where ext4 also
//!   updates the mtime through a journal handle), so the map serves reads and recovery
//!   and, by default, not appends.
//! - **Group commit** (target: 200k durable 100 B records/s): 256 records written with
//!   one [`Wal::append_batch`] (one `pwrite`) and one flush made 683k–741k records/s,
//!   costing the same as a bare fdatasync (1.00–1.04x); one `pwrite` per record gave 185k–414k/s and
//!   map appends 331k–754k/s (1024 through the map: 0.82M–1.94M/s). On the loaded disk a flush took ~4 ms, so only batches
//!   of ~1000 reach it (234k–409k/s through the map). The `pipelined` target models the
//!   server: one thread appends 200 000 records as fast as it can while a second loops
//!   [`Syncer::flush`] (one at a time, each covering everything appended so far) until
//!   the last is durable. In two runs each on the loaded machine (2026-12-06), `pwrite`
//!   appends through `append_batch` of 64 made them durable at 1.9M–2.2M records/s
//!   (224–318 flushes), map appends at 1.1M–1.5M/s (147–206 flushes), one-by-one `pwrite`
//!   appends only at 138k–188k/s (3474–4704 flushes), each `pwrite` costing 3–8 µs on
//!   this loaded 2-core machine. **The engine should append its proposals with
//!   `append_batch`.**
//! - **The append itself** (`append_only`, a flush every 256 appends outside the timing,
//!   loaded machine): `pwrite` 2.8–4.6 µs whatever the size; through the map 0.09–0.17
//!   µs for 100 B, 1.4–1.6 µs for 1 KiB, 7–8 µs for 4 KiB, with the flushing thread
//!   pre-faulting the next 64 KiB ([`WalOptions::prefault_bytes_max`]; without it 0.56 /
//!   2.6 / 10.8 µs; a 1 MiB window gave 0.14 / 0.24 / 0.93 µs but made each flush 1.3x
//!   slower, its cost growing with the window).
//! - msync (of the dirty range only) tied with fdatasync or beat it (0.69x against 0.98x
//!   with pwrite appends in a quiet run); it is the default flush. glommio DMA writes were the fastest for batches on the quiet disk
//!   (1.38M records/s at 256) and tied elsewhere; adopting them would replace the page
//!   cache path (and reading records in place from the map), so that is left for a
//!   measurement on a quiet, dedicated disk, as is mounting with `lazytime`.
//!
//! # Modules
//! [`record`] (format), [`segment`] (files, pre-writing), [`recovery`], [`group`] (the
//! syncer: flush, durable watermark, poisoning), [`truncation`] (crash-safe truncate), [`snapshot`], [`io`] (the fault-injectable file trait),
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
pub use group::Syncer;
pub use options::{AppendMethod, FlushMethod, SyncMode, WalOptions};
pub use record::RecordRef;
pub use recovery::Recovery;
pub use snapshot::{SnapshotFile, SnapshotStore, SnapshotWriter};
pub use wal::{Appended, LOCK_FILE_NAME, PurgeJob, ReadIter, SegmentInfo, Wal, WalStats};
