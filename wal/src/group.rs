//! Group commit: the [`Syncer`] that makes appended records durable and publishes the
//! durable-zxid watermark. Group commit is the caller running [`Syncer::flush`] off its
//! hot thread while appends go on: each flush covers everything appended when it
//! started, so records appended during one flush are batched into the next. The
//! server's scheduling of those flushes (a few overlapping, on glommio's blocking
//! pool) lives in `engine::shard::commit`.
//!
//! Contract:
//! - The appender (the shard's core) never waits for a flush. It publishes each record by
//!   storing the segment's end and then the appended zxid (release); a flush reads the
//!   appended zxid first (acquire), then flushes every segment up to its end, so the zxid it
//!   publishes as durable is covered by what it flushed.
//! - Flushes may overlap. Each flushes from the oldest byte not yet durable to the end
//!   it read, so its range includes what a running earlier flush covers: the kernel
//!   writes the new dirty pages at once, waits for the pages the earlier flush has
//!   under writeback, then flushes the device cache. A flush that ends has made
//!   everything below its end durable whatever the others do, so it publishes its zxid
//!   (the watermark takes the maximum): no byte is published as durable while a byte
//!   before it may not be. What overlaps is the writing of new pages with the earlier
//!   flush's wait for the disk. Truncation takes the sync lock exclusively, flushes
//!   share it.
//! - The durable watermark only grows, except through `Wal::truncate_after`, which lowers
//!   it to the truncation point (those records no longer exist).
//! - A failed flush poisons the log: the watermark never moves again and every later
//!   flush, append and wait returns [`WalError::Poisoned`]. After a failed fsync the kernel
//!   may have dropped the dirty pages and cleared the error, so a retry that "succeeds"
//!   proves nothing; only reopening (recovery from what is on disk) is safe.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::error::{Result, WalError};
use crate::io::lock;
use crate::options::SyncMode;
use crate::segment::SegShared;

/// A segment that may hold bytes not yet flushed.
pub(crate) struct PendingSeg {
    pub seg: Arc<SegShared>,
    /// Bytes below this offset are durable.
    pub synced: usize,
}

impl PendingSeg {
    /// A segment whose first `end` bytes are durable.
    pub fn durable_to(seg: Arc<SegShared>, end: usize) -> Self {
        PendingSeg { seg, synced: end }
    }
}

/// What one flush covers: the appended zxid it read, and per segment the range it
/// flushes (from the durable end to the published end).
struct Claim {
    zxid: u64,
    /// (segment, from, to)
    work: Vec<(Arc<SegShared>, usize, usize)>,
}

/// State shared by the `Wal` (appender) and its `Syncer`s.
pub(crate) struct Shared {
    pub mode: SyncMode,
    /// How far past the flushed end a flush pre-faults the active segment for writing.
    pub prefault_bytes: usize,
    /// Segments with possibly unflushed bytes, oldest first.
    pub pending: Mutex<Vec<PendingSeg>>,
    /// Shared by flushes, taken exclusively by truncation (which rewrites what flushes
    /// would read).
    pub sync_lock: RwLock<()>,
    pub appended_zxid: AtomicU64,
    pub durable_zxid: AtomicU64,
    /// Bumped (under the exclusive sync lock) by every truncation or reset: a flush
    /// result tagged with an older generation may name records that no longer exist.
    pub generation: AtomicU64,
    pub flushes: AtomicU64,
    poisoned: AtomicBool,
    poison_reason: Mutex<Option<String>>,
    durable_mx: Mutex<()>,
    durable_cv: Condvar,
}

impl Shared {
    pub fn new(mode: SyncMode, prefault_bytes: usize, last_zxid: u64) -> Self {
        Shared {
            mode,
            prefault_bytes,
            pending: Mutex::new(Vec::new()),
            sync_lock: RwLock::new(()),
            appended_zxid: AtomicU64::new(last_zxid),
            durable_zxid: AtomicU64::new(last_zxid),
            generation: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(None),
            durable_mx: Mutex::new(()),
            durable_cv: Condvar::new(),
        }
    }

    pub fn check_poisoned(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let reason = lock(&self.poison_reason).clone().unwrap_or_default();
            return Err(WalError::Poisoned { reason });
        }
        Ok(())
    }

    pub fn poison(&self, reason: String) {
        tracing::error!(%reason, "wal flush failed; the log is poisoned until reopened");
        lock(&self.poison_reason).get_or_insert(reason);
        self.poisoned.store(true, Ordering::Release);
        self.notify_waiters();
    }

    /// Called by the appender after storing the segment's new end: publishes `zxid` as
    /// appended, so that the next flush covers it.
    pub fn note_appended(&self, zxid: u64) {
        self.appended_zxid.store(zxid, Ordering::Release);
    }

    /// Sets the durable watermark (under the `pending` lock) and wakes waiters.
    pub fn publish_durable(&self, zxid: u64) {
        self.durable_zxid.store(zxid, Ordering::Release);
        self.notify_waiters();
    }

    fn notify_waiters(&self) {
        let _g = lock(&self.durable_mx);
        self.durable_cv.notify_all();
    }
}

/// A `Send + Clone` handle that makes everything appended so far durable and tells who
/// waits when it is. Call [`Syncer::flush`] from a thread other than the appender's.
#[derive(Clone)]
pub struct Syncer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer")
            .field("durable_zxid", &self.durable_zxid())
            .finish()
    }
}

impl Syncer {
    /// Flushes every byte appended so far and not yet durable (msync of the dirty
    /// ranges, or fdatasync) and publishes the last appended zxid it read as durable.
    /// Returns the durable watermark (at least what this flush covered). Several
    /// threads may flush at once (group commit with overlapping flushes, see the module
    /// docs). In [`SyncMode::Never`] nothing is flushed but the watermark still moves.
    pub fn flush(&self) -> Result<u64> {
        self.flush_tagged().map(|(_, zxid)| zxid)
    }

    /// [`Syncer::flush`], with the log's generation the flush ran in (see
    /// [`Syncer::generation`]): a caller that hears of a flush after a truncation or
    /// reset drops a result of an older generation.
    pub fn flush_tagged(&self) -> Result<(u64, u64)> {
        let shared = &*self.shared;
        let guard = shared.sync_lock.read().unwrap_or_else(|e| e.into_inner());
        // Stable while the read lock is held: only truncation and reset bump it.
        let generation = shared.generation.load(Ordering::Acquire);
        shared.check_poisoned()?;
        let claim = self.claim();
        if shared.mode != SyncMode::Never {
            self.write_out(&claim)?;
        }
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        let active = claim.work.last().map(|(seg, _, to)| (seg.clone(), *to));
        let durable = self.finish(claim)?;
        drop(guard);
        // Writeback write-protected the pages just flushed: fault the active segment's
        // next pages back in (writable) here, after waiters were released and outside the
        // lock, so that the appender on the shard core does not take those faults.
        if let Some((seg, end)) = active
            && shared.mode != SyncMode::Never
            && shared.prefault_bytes > 0
        {
            seg.region.prefault(end, shared.prefault_bytes);
        }
        Ok((generation, durable))
    }

    /// The log's generation: bumped by every `Wal::truncate_after` and `Wal::reset_to`.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The appended zxid first, then the segment ends: the ends cover at least what
    /// the zxid promised. Each range starts at the segment's durable end.
    fn claim(&self) -> Claim {
        let shared = &*self.shared;
        let pending = lock(&shared.pending);
        let zxid = shared.appended_zxid.load(Ordering::Acquire);
        let work = pending
            .iter()
            .map(|p| (p.seg.clone(), p.synced, p.seg.end()))
            .collect();
        Claim { zxid, work }
    }

    /// Flushes the claimed ranges; a failure poisons the log.
    fn write_out(&self, claim: &Claim) -> Result<()> {
        for (seg, from, to) in &claim.work {
            if to <= from {
                continue;
            }
            debug_assert!(*to <= seg.region.len(), "published end lies within the map");
            if let Err(e) = seg.region.flush(*from, to - from) {
                let reason = format!("flush of {} bytes {from}..{to}: {e}", seg.path.display());
                self.shared.poison(reason);
                return Err(WalError::io("flush", &seg.path, e));
            }
        }
        Ok(())
    }

    /// Everything below the claim's ends is durable now: raises the segments' durable
    /// ends and the watermark. Returns the watermark.
    fn finish(&self, claim: Claim) -> Result<u64> {
        let shared = &*self.shared;
        let mut pending = lock(&shared.pending);
        // An overlapping flush failed: its error may have been about pages this one
        // covered too (the kernel reports a writeback error to one caller only).
        shared.check_poisoned()?;
        for (seg, _, to) in &claim.work {
            if let Some(p) = pending.iter_mut().find(|p| p.seg.seq == seg.seq) {
                p.synced = p.synced.max(*to);
            }
        }
        if claim.zxid > shared.durable_zxid.load(Ordering::Acquire) {
            shared.publish_durable(claim.zxid);
        }
        let mut retired = Vec::new();
        pending.retain(|p| {
            let done = p.seg.sealed.load(Ordering::Acquire) && p.synced >= p.seg.end();
            if done {
                retired.push(p.seg.clone());
            }
            !done
        });
        let durable = shared.durable_zxid.load(Ordering::Acquire);
        drop(pending);
        // A sealed, durable segment is read again only by a learner's DIFF: its pages
        // leave the resident set (off the appender's core, outside the lock).
        for seg in retired {
            seg.region.release();
        }
        Ok(durable)
    }

    /// The highest zxid known durable (0: none). Never blocks.
    pub fn durable_zxid(&self) -> u64 {
        self.shared.durable_zxid.load(Ordering::Acquire)
    }

    /// The highest zxid appended (published) so far.
    pub fn appended_zxid(&self) -> u64 {
        self.shared.appended_zxid.load(Ordering::Acquire)
    }

    /// Number of flushes done so far (for metrics).
    pub fn flush_count(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// Blocks until `zxid` is durable, or the log is poisoned.
    pub fn wait_durable(&self, zxid: u64) -> Result<()> {
        self.wait_durable_timeout(zxid, None).map(|_| ())
    }

    /// Like [`Syncer::wait_durable`] with an optional timeout; `Ok(false)` on timeout.
    pub fn wait_durable_timeout(&self, zxid: u64, timeout: Option<Duration>) -> Result<bool> {
        let shared = &*self.shared;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut guard = lock(&shared.durable_mx);
        loop {
            if self.durable_zxid() >= zxid {
                return Ok(true);
            }
            shared.check_poisoned()?;
            guard = match deadline {
                None => shared
                    .durable_cv
                    .wait(guard)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(false);
                    }
                    shared
                        .durable_cv
                        .wait_timeout(guard, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}
