//! `Committer`: when the shard's WAL is appended to and flushed, as a pure state machine.
//!
//! The driver appends what [`Committer::persist`] and [`Committer::next_flush`] hand
//! back, starts the flush that `next_flush` asks for, and reports its end to
//! [`Committer::flushed`]; the returned watermark goes to `ShardCore::durable`. Rules:
//! - **Batch** (group commit, the default): persisted txns wait in memory until a
//!   flush starts, then are appended all at once (one `pwrite` per flush, not one per
//!   driver pass: a txn cannot become durable before the next flush starts anyway);
//!   up to `flushes_max` flushes (config `flushesInflightMax`, at most
//!   [`FLUSHES_INFLIGHT_MAX`]) run at a time, off the shard's core; each covers what was
//!   appended since the previous one started (the running flushes are the batching
//!   window, as in ZooKeeper's SyncRequestProcessor without its timer). The WAL's
//!   syncer lets flushes overlap: each writes from the durable end, so the one that
//!   ends has made all it covered durable (`wal/src/group.rs`); a flush's end reports
//!   the WAL's watermark.
//!
//!   Measured (ckbench, corekeeper alone, 100 B setData, one 4 s run per setting,
//!   interleaved, three times, on the 2-core dev machine with nothing else running,
//!   2026-12-06): one flush in flight vs two overlapping: set 8x16 159.6k-163.5k vs
//!   155.7k-159.5k ops/s, set 4x4 32.0k-33.0k vs 31.6k-32.6k, set 1x8 16.0k-19.1k vs
//!   17.2k-18.3k, set 1x1 2.9k-3.0k vs 3.0k-3.1k: no difference on this virtio ext4
//!   disk, whose flushes serialise in the journal anyway. So the default is one; a
//!   disk that can overlap flushes (several NVMe queues) can take
//!   `flushesInflightMax` > 1. Appending at flush start (one `pwrite` per flush instead
//!   of one per driver pass) is what moved set 8x16 from 108k-112k ops/s (commit
//!   150e60b, server CPU 1.15 cores) to 161k-168k (1.0 core) in the same quiet runs.
//!   Where the flush runs (`cargo bench -p bench --bench flush_path`, one durable
//!   100 B write as a non-spinning executor sees it, 3 runs of 1500 interleaved
//!   rounds, 2-core dev machine, 2026-12-07): p50 96-119 us with `fdatasync` inline
//!   (blocking the core, so not an option), 153-173 us handed to the blocking pool
//!   (today's path: a thread wake-up each way), 111-140 us as an io_uring `FSYNC`
//!   from the shard's own ring. io_uring saves 30-40 us per flush, about 7% of a
//!   3-node set 1x1 (533 us) where one follower's flush is on the path; it is not
//!   adopted yet because the syncer's flush (claim, write out, publish) holds the
//!   log's truncation lock across the sync, which an executor awaiting its own ring
//!   cannot do while the same core may truncate (a TRUNC or SNAP): that needs the
//!   driver to hold truncations until in-flight flushes end.
//! - **Always**: one txn is appended and flushed at a time, each with a flush of its
//!   own; the others wait, in order, unappended.
//! - **Never**: appended at every pass, nothing reaches the disk; the watermark moves
//!   inline (benchmarks).
//!
//! Invariants: `durable <= covered <= appended`; the watermark only rises; nothing is
//! reported durable that was not appended before the flush that covers it started (a
//! flush's thread may start after more was appended, and then covers that too); a
//! flush starts only with something new to cover.

use std::collections::VecDeque;

use rkyv::util::AlignedVec;

use crate::config::SyncPolicy;

/// Upper bound on flushes running at once (the `flushesInflightMax` setting).
pub const FLUSHES_INFLIGHT_MAX: usize = 8;
/// Flushes running at once unless configured: see the module docs for the measurements.
pub const FLUSHES_INFLIGHT_DEFAULT: usize = 1;

const _: () =
    assert!(FLUSHES_INFLIGHT_DEFAULT >= 1 && FLUSHES_INFLIGHT_DEFAULT <= FLUSHES_INFLIGHT_MAX);

/// A flush to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// On the blocking pool; report its end with [`Committer::flushed`].
    Background { covers: i64 },
    /// Right now, on this core (`sync=never`: no disk work).
    Inline { covers: i64 },
}

/// The group-commit state of one shard's WAL.
#[derive(Debug)]
pub struct Committer {
    policy: SyncPolicy,
    appended: i64,
    /// The highest zxid a started flush covers.
    covered: i64,
    durable: i64,
    flushing: usize,
    flushes_max: usize,
    /// `Always`: txns waiting for their own append + flush; `Batch`: for the next
    /// flush; oldest first.
    held: VecDeque<(i64, AlignedVec)>,
}

impl Committer {
    /// A log whose last (durable) record is `last_zxid`.
    pub fn new(policy: SyncPolicy, last_zxid: i64) -> Self {
        Committer {
            policy,
            appended: last_zxid,
            covered: last_zxid,
            durable: last_zxid,
            flushing: 0,
            flushes_max: FLUSHES_INFLIGHT_DEFAULT,
            held: VecDeque::new(),
        }
    }

    /// Lets up to `n` flushes run at once (`Batch` only; 1..=[`FLUSHES_INFLIGHT_MAX`]).
    pub fn with_flushes_max(mut self, n: usize) -> Self {
        debug_assert!((1..=FLUSHES_INFLIGHT_MAX).contains(&n), "config bounds it");
        self.flushes_max = n.clamp(1, FLUSHES_INFLIGHT_MAX);
        self
    }

    /// The highest zxid a started flush covers.
    pub fn covered(&self) -> i64 {
        self.covered
    }

    /// Flushes running now.
    pub fn flushing(&self) -> usize {
        self.flushing
    }

    pub fn durable(&self) -> i64 {
        self.durable
    }

    pub fn appended(&self) -> i64 {
        self.appended
    }

    /// Txns appended but not durable, plus those held back (`Always`).
    pub fn backlog(&self) -> usize {
        (self.appended - self.durable) as usize + self.held.len()
    }

    /// A txn to persist: pushed to `append` (to append now, in order) or held.
    pub fn persist(&mut self, zxid: i64, bytes: AlignedVec, append: &mut Vec<(i64, AlignedVec)>) {
        debug_assert!(
            zxid > self.appended && self.held.back().is_none_or(|(z, _)| *z < zxid),
            "txns are persisted in zxid order"
        );
        match self.policy {
            SyncPolicy::Always | SyncPolicy::Batch => self.held.push_back((zxid, bytes)),
            SyncPolicy::Never => {
                debug_assert!(append.last().is_none_or(|(z, _)| *z < zxid));
                append.push((zxid, bytes));
            }
        }
    }

    /// Hands every held txn to `append` now (a Zab member going back to election,
    /// or cutting its log, must have in the WAL everything it applied or logged).
    pub fn drain_held(&mut self, append: &mut Vec<(i64, AlignedVec)>) {
        if let Some(&(last, _)) = self.held.back() {
            debug_assert!(append.last().is_none_or(|(z, _)| *z < self.held[0].0));
            append.extend(self.held.drain(..));
            self.appended = last;
        }
    }

    /// The driver appended everything up to `zxid`.
    pub fn appended_to(&mut self, zxid: i64) {
        debug_assert!(zxid >= self.appended, "appends go forward");
        self.appended = zxid;
    }

    /// The flush to start now, if any; `Always` first hands one held txn to `append`
    /// (the caller appends it before flushing).
    pub fn next_flush(&mut self, append: &mut Vec<(i64, AlignedVec)>) -> Option<Flush> {
        let max = match self.policy {
            SyncPolicy::Batch => self.flushes_max,
            SyncPolicy::Always | SyncPolicy::Never => 1,
        };
        if self.flushing >= max {
            return None;
        }
        match self.policy {
            SyncPolicy::Always if self.appended == self.durable => {
                let (zxid, bytes) = self.held.pop_front()?;
                append.push((zxid, bytes));
                self.appended = zxid;
            }
            SyncPolicy::Batch => {
                if let Some(&(last, _)) = self.held.back() {
                    debug_assert!(append.last().is_none_or(|(z, _)| *z < self.held[0].0));
                    append.extend(self.held.drain(..));
                    self.appended = last;
                }
            }
            _ => {}
        }
        if self.appended <= self.covered {
            return None;
        }
        let covers = self.appended;
        self.covered = covers;
        if self.policy == SyncPolicy::Never {
            return Some(Flush::Inline { covers });
        }
        self.flushing += 1;
        Some(Flush::Background { covers })
    }

    /// A flush ended whose result is stale: the log was truncated or reset after it
    /// started (the WAL's generation moved), so what it names may be gone.
    pub fn flushed_stale(&mut self, inline: bool) {
        if !inline {
            debug_assert!(self.flushing > 0, "a flush was running");
            self.flushing = self.flushing.saturating_sub(1);
        }
    }

    /// The log was truncated or reset to end at `zxid` (Zab TRUNC or SNAP), and the
    /// WAL's watermark is now `durable` (`min(old, zxid)` after a truncation, `zxid`
    /// after a reset to a snapshot): what was held, appended or covered beyond `zxid`
    /// is gone; records between `durable` and `zxid` still need a flush. Flushes still
    /// running report through [`Committer::flushed_stale`].
    pub fn reset(&mut self, zxid: i64, durable: i64) {
        debug_assert!(durable <= zxid, "nothing past the end is durable");
        self.held.clear();
        self.appended = zxid;
        self.durable = durable;
        self.covered = durable;
    }

    /// A flush ended, durable up to `zxid` (what the WAL says; at least what it
    /// covered). Returns the new watermark.
    pub fn flushed(&mut self, zxid: i64, inline: bool) -> i64 {
        if !inline {
            debug_assert!(self.flushing > 0, "a flush was running");
            self.flushing -= 1;
        }
        // A flush covers what the WAL holds when its thread starts, which may be more
        // than `covers` said when it was scheduled: never more than was appended.
        debug_assert!(
            zxid <= self.appended,
            "only appended records become durable"
        );
        self.durable = self.durable.max(zxid);
        self.covered = self.covered.max(self.durable);
        self.durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes() -> AlignedVec {
        AlignedVec::new()
    }

    /// The zxids in `append`, which it then empties (the driver appended them).
    fn took(append: &mut Vec<(i64, AlignedVec)>) -> Vec<i64> {
        append.drain(..).map(|(z, _)| z).collect()
    }

    #[test]
    fn batch_appends_when_a_flush_starts_and_flushes_one_at_a_time() {
        let mut c = Committer::new(SyncPolicy::Batch, 0).with_flushes_max(1);
        let mut append = Vec::new();
        c.persist(1, bytes(), &mut append);
        c.persist(2, bytes(), &mut append);
        assert!(append.is_empty(), "held until a flush starts");
        assert_eq!(c.backlog(), 2);
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 2 })
        );
        assert_eq!(took(&mut append), [1, 2], "one append for the flush");
        c.persist(3, bytes(), &mut append);
        assert_eq!(c.next_flush(&mut append), None, "one flush in flight");
        assert!(append.is_empty(), "3 waits for the next flush");
        assert_eq!(c.flushed(2, false), 2);
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 3 })
        );
        assert_eq!(took(&mut append), [3]);
        assert_eq!(c.flushed(3, false), 3);
        assert_eq!(c.backlog(), 0);
    }

    #[test]
    fn batch_overlaps_flushes_each_covering_what_is_new() {
        let mut c = Committer::new(SyncPolicy::Batch, 0).with_flushes_max(2);
        let mut append = Vec::new();
        c.persist(1, bytes(), &mut append);
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 1 })
        );
        assert_eq!(took(&mut append), [1]);
        assert_eq!(c.next_flush(&mut append), None, "nothing new to cover");
        c.persist(2, bytes(), &mut append);
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 2 })
        );
        assert_eq!(took(&mut append), [2]);
        c.persist(3, bytes(), &mut append);
        assert_eq!(c.next_flush(&mut append), None, "two flushes in flight");
        // The second ends first and made 1..=2 durable.
        assert_eq!(c.flushed(2, false), 2);
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 3 })
        );
        assert_eq!(took(&mut append), [3]);
        assert_eq!(
            c.flushed(2, false),
            2,
            "the first ends: the WAL says 2 still"
        );
        assert_eq!(c.flushed(3, false), 3);
        assert_eq!((c.backlog(), c.flushing()), (0, 0));
    }

    #[test]
    fn a_reset_forgets_what_it_cut_and_a_stale_flush_only_frees_its_slot() {
        let mut c = Committer::new(SyncPolicy::Batch, 0).with_flushes_max(1);
        let mut append = Vec::new();
        for z in 1..=3 {
            c.persist(z, bytes(), &mut append);
        }
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 3 })
        );
        c.persist(4, bytes(), &mut append);
        c.reset(2, 0);
        assert_eq!((c.appended(), c.durable(), c.backlog()), (2, 0, 2));
        c.flushed_stale(false);
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 2 }),
            "what the cut kept still needs its flush"
        );
        assert_eq!(c.flushed(2, false), 2);
        c.persist(3, bytes(), &mut append);
        append.clear();
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 3 })
        );
        assert_eq!(c.flushed(3, false), 3);
    }

    #[test]
    fn always_appends_and_flushes_each_txn_alone() {
        let mut c = Committer::new(SyncPolicy::Always, 10);
        let mut append = Vec::new();
        c.persist(11, bytes(), &mut append);
        c.persist(12, bytes(), &mut append);
        assert!(append.is_empty(), "held until their turn");
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 11 })
        );
        assert_eq!(append.iter().map(|(z, _)| *z).collect::<Vec<_>>(), [11]);
        append.clear();
        assert_eq!(c.next_flush(&mut append), None);
        c.flushed(11, false);
        assert_eq!(
            c.next_flush(&mut append),
            Some(Flush::Background { covers: 12 })
        );
    }

    #[test]
    fn never_moves_the_watermark_inline() {
        let mut c = Committer::new(SyncPolicy::Never, 0);
        let mut append = Vec::new();
        c.persist(1, bytes(), &mut append);
        c.appended_to(1);
        assert_eq!(c.next_flush(&mut append), Some(Flush::Inline { covers: 1 }));
        assert_eq!(c.flushed(1, true), 1);
        assert_eq!(c.next_flush(&mut append), None);
    }
}
