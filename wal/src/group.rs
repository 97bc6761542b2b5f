//! Group commit: the [`Syncer`] that makes appended records durable and publishes the
//! durable-zxid watermark, the pure [`FlushPolicy`], and the [`GroupCommit`] thread that
//! applies the policy (what ZooKeeper's `SyncRequestProcessor` does).
//!
//! Contract:
//! - The appender (the shard's core) never waits for a flush. It publishes each record by
//!   storing the segment's end and then the appended zxid (release); a flush reads the
//!   appended zxid first (acquire), then flushes every segment up to its end, so the zxid it
//!   publishes as durable is covered by what it flushed.
//! - The durable watermark only grows, except through `Wal::truncate_after`, which lowers
//!   it to the truncation point (those records no longer exist).
//! - A failed flush poisons the log: the watermark never moves again and every later
//!   flush, append and wait returns [`WalError::Poisoned`]. After a failed fsync the kernel
//!   may have dropped the dirty pages and cleared the error, so a retry that "succeeds"
//!   proves nothing; only reopening (recovery from what is on disk) is safe.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crate::error::{Result, WalError};
use crate::io::lock;
use crate::options::{
    FLUSH_BYTES_MAX_DEFAULT, FLUSH_DELAY_US_MAX_DEFAULT, FLUSH_RECORDS_MAX_DEFAULT, SyncMode,
};
use crate::segment::SegShared;

/// A segment that may hold bytes not yet flushed.
pub(crate) struct PendingSeg {
    pub seg: Arc<SegShared>,
    /// Bytes below this offset are durable.
    pub synced: usize,
}

/// State shared by the `Wal` (appender), its `Syncer`s and the group-commit thread.
pub(crate) struct Shared {
    pub mode: SyncMode,
    /// How far past the flushed end a flush pre-faults the active segment for writing.
    pub prefault_bytes: usize,
    /// Segments with possibly unflushed bytes, oldest first.
    pub pending: Mutex<Vec<PendingSeg>>,
    /// Serialises flushes with each other and with truncation and purging.
    pub sync_lock: Mutex<()>,
    pub appended_zxid: AtomicU64,
    pub durable_zxid: AtomicU64,
    pub appended_records: AtomicU64,
    pub appended_bytes: AtomicU64,
    pub flushed_records: AtomicU64,
    pub flushed_bytes: AtomicU64,
    pub flushes: AtomicU64,
    poisoned: AtomicBool,
    poison_reason: Mutex<Option<String>>,
    durable_mx: Mutex<()>,
    durable_cv: Condvar,
    /// The group-commit thread to wake, with its thresholds.
    flusher: Mutex<Option<Thread>>,
    has_flusher: AtomicBool,
    wake_records: AtomicU64,
    wake_bytes: AtomicU64,
}

impl Shared {
    pub fn new(mode: SyncMode, prefault_bytes: usize, last_zxid: u64) -> Self {
        Shared {
            mode,
            prefault_bytes,
            pending: Mutex::new(Vec::new()),
            sync_lock: Mutex::new(()),
            appended_zxid: AtomicU64::new(last_zxid),
            durable_zxid: AtomicU64::new(last_zxid),
            appended_records: AtomicU64::new(0),
            appended_bytes: AtomicU64::new(0),
            flushed_records: AtomicU64::new(0),
            flushed_bytes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            poison_reason: Mutex::new(None),
            durable_mx: Mutex::new(()),
            durable_cv: Condvar::new(),
            flusher: Mutex::new(None),
            has_flusher: AtomicBool::new(false),
            wake_records: AtomicU64::new(u64::MAX),
            wake_bytes: AtomicU64::new(u64::MAX),
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

    /// Called by the appender after publishing a record; wakes the flusher when the
    /// batch starts or reaches a threshold (not on every append: that would cost a
    /// futex wake per record).
    pub fn note_appended(&self, zxid: u64, count: u64, bytes: usize) {
        let records = self.appended_records.fetch_add(count, Ordering::SeqCst) + count;
        let total_bytes = self
            .appended_bytes
            .fetch_add(bytes as u64, Ordering::SeqCst)
            + bytes as u64;
        self.appended_zxid.store(zxid, Ordering::Release);
        if !self.has_flusher.load(Ordering::Acquire) {
            return;
        }
        let pending_records = records.saturating_sub(self.flushed_records.load(Ordering::SeqCst));
        let pending_bytes = total_bytes.saturating_sub(self.flushed_bytes.load(Ordering::SeqCst));
        // Thresholds are read from atomics so that the common case takes no lock.
        if (pending_records <= count
            || pending_records >= self.wake_records.load(Ordering::Relaxed)
            || pending_bytes >= self.wake_bytes.load(Ordering::Relaxed))
            && let Some(thread) = lock(&self.flusher).as_ref()
        {
            thread.unpark();
        }
    }

    /// Sets the durable watermark (under `sync_lock`) and wakes waiters.
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
/// waits when it is. Give one to a dedicated flusher thread (or use [`GroupCommit`]).
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
    /// Flushes every byte appended so far (msync of the dirty ranges, or fdatasync) and
    /// publishes the last appended zxid as durable. Returns the durable zxid.
    /// In [`SyncMode::Never`] nothing is flushed but the watermark still moves.
    pub fn flush(&self) -> Result<u64> {
        let shared = &*self.shared;
        let guard = lock(&shared.sync_lock);
        shared.check_poisoned()?;
        // Counters first, then the zxid, then the segment ends: each later read covers at
        // least what the earlier one promised.
        let records = shared.appended_records.load(Ordering::SeqCst);
        let bytes = shared.appended_bytes.load(Ordering::SeqCst);
        let zxid = shared.appended_zxid.load(Ordering::Acquire);
        let active = if shared.mode != SyncMode::Never {
            self.flush_pending()?
        } else {
            None
        };
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        if zxid > shared.durable_zxid.load(Ordering::Acquire) {
            shared.publish_durable(zxid);
        }
        shared.flushed_records.store(records, Ordering::SeqCst);
        shared.flushed_bytes.store(bytes, Ordering::SeqCst);
        drop(guard);
        // Writeback write-protected the pages just flushed: fault the active segment's
        // next pages back in (writable) here, after waiters were released and outside the
        // lock, so that the appender on the shard core does not take those faults.
        if let Some((seg, end)) = active.filter(|_| shared.prefault_bytes > 0) {
            seg.region.prefault(end, shared.prefault_bytes);
        }
        Ok(zxid)
    }

    /// Flushes every pending range; returns the active segment and its flushed end.
    fn flush_pending(&self) -> Result<Option<(Arc<SegShared>, usize)>> {
        let shared = &*self.shared;
        let mut work: Vec<(Arc<SegShared>, usize, usize)> = lock(&shared.pending)
            .iter()
            .map(|p| (p.seg.clone(), p.synced, p.seg.end()))
            .collect();
        for (seg, from, to) in &work {
            if to <= from {
                continue;
            }
            debug_assert!(*to <= seg.region.len(), "published end lies within the map");
            if let Err(e) = seg.region.flush(*from, to - from) {
                let reason = format!("flush of {} bytes {from}..{to}: {e}", seg.path.display());
                shared.poison(reason);
                return Err(WalError::io("flush", &seg.path, e));
            }
        }
        let mut pending = lock(&shared.pending);
        for p in pending.iter_mut() {
            if let Some((_, _, to)) = work.iter().find(|(s, _, _)| s.seq == p.seg.seq) {
                p.synced = p.synced.max(*to);
            }
        }
        pending.retain(|p| !(p.seg.sealed.load(Ordering::Acquire) && p.synced >= p.seg.end()));
        Ok(work.pop().map(|(seg, _, to)| (seg, to)))
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

/// When to flush: when the batch reaches `records_max` records or `bytes_max` bytes, or
/// its oldest record has waited `delay_us_max` microseconds, whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    pub records_max: u32,
    pub bytes_max: u64,
    pub delay_us_max: u64,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            records_max: FLUSH_RECORDS_MAX_DEFAULT,
            bytes_max: FLUSH_BYTES_MAX_DEFAULT,
            delay_us_max: FLUSH_DELAY_US_MAX_DEFAULT,
        }
    }
}

/// The unflushed batch, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub records: u64,
    pub bytes: u64,
    /// When the oldest unflushed record was noticed.
    pub oldest: Instant,
}

/// What the policy says to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushDecision {
    /// Nothing to flush: sleep until woken.
    Idle,
    /// Flush now.
    FlushNow,
    /// Wait until this instant (or until woken), then ask again.
    WaitUntil(Instant),
}

impl FlushPolicy {
    /// The policy [`GroupCommit`] applies for `mode`: `Always` flushes every record.
    pub fn for_mode(self, mode: SyncMode) -> Self {
        match mode {
            SyncMode::Always => FlushPolicy {
                records_max: 1,
                bytes_max: 0,
                delay_us_max: 0,
            },
            SyncMode::Batch | SyncMode::Never => self,
        }
    }

    /// Decides, without reading any clock: `now` is an input.
    pub fn decide(&self, batch: Option<Batch>, now: Instant) -> FlushDecision {
        let Some(b) = batch.filter(|b| b.records > 0) else {
            return FlushDecision::Idle;
        };
        let deadline = b.oldest + Duration::from_micros(self.delay_us_max);
        if b.records >= u64::from(self.records_max) || b.bytes >= self.bytes_max || now >= deadline
        {
            FlushDecision::FlushNow
        } else {
            FlushDecision::WaitUntil(deadline)
        }
    }
}

/// Callback told the new durable zxid after each flush (e.g. to message a core).
pub type OnDurable = Box<dyn Fn(u64) + Send>;

/// A background thread applying a [`FlushPolicy`] with a [`Syncer`].
/// Stop it with [`GroupCommit::stop`] (which flushes one last time); dropping it stops it
/// too. A flush error ends the thread (the log is poisoned; waiters see the error).
pub struct GroupCommit {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
    shared: Arc<Shared>,
}

impl GroupCommit {
    /// Starts the thread. Only one group-commit thread per log makes sense.
    pub fn start(
        syncer: Syncer,
        policy: FlushPolicy,
        on_durable: Option<OnDurable>,
    ) -> Result<Self> {
        let policy = policy.for_mode(syncer.shared.mode);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = syncer.shared.clone();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wal-group-commit".into())
            .spawn(move || run(&syncer, policy, &stop2, on_durable))
            .map_err(|e| WalError::io("spawn group-commit thread", "", e))?;
        shared
            .wake_records
            .store(u64::from(policy.records_max), Ordering::Relaxed);
        shared.wake_bytes.store(policy.bytes_max, Ordering::Relaxed);
        *lock(&shared.flusher) = Some(thread.thread().clone());
        shared.has_flusher.store(true, Ordering::Release);
        // Records appended before registration would otherwise wait for the next wake.
        thread.thread().unpark();
        Ok(GroupCommit {
            stop,
            thread: Some(thread),
            shared,
        })
    }

    /// Stops the thread after a last flush; returns the thread's error if it failed.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.shared.has_flusher.store(false, Ordering::Release);
        *lock(&self.shared.flusher) = None;
        self.stop.store(true, Ordering::SeqCst);
        thread.thread().unpark();
        thread.join().unwrap_or_else(|_| {
            Err(WalError::Poisoned {
                reason: "group-commit thread panicked".into(),
            })
        })
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

fn run(
    syncer: &Syncer,
    policy: FlushPolicy,
    stop: &AtomicBool,
    on_durable: Option<OnDurable>,
) -> Result<()> {
    let shared = &*syncer.shared;
    let mut oldest: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let records = shared.appended_records.load(Ordering::SeqCst)
            - shared.flushed_records.load(Ordering::SeqCst);
        let bytes = shared.appended_bytes.load(Ordering::SeqCst)
            - shared.flushed_bytes.load(Ordering::SeqCst);
        let now = Instant::now();
        let batch = (records > 0).then(|| Batch {
            records,
            bytes,
            oldest: *oldest.get_or_insert(now),
        });
        let decision = if stopping && batch.is_some() {
            FlushDecision::FlushNow
        } else {
            policy.decide(batch, now)
        };
        match decision {
            FlushDecision::FlushNow => {
                let durable = syncer.flush()?;
                oldest = None;
                if let Some(cb) = &on_durable {
                    cb(durable);
                }
            }
            _ if stopping => return Ok(()),
            FlushDecision::Idle => {
                oldest = None;
                std::thread::park();
            }
            FlushDecision::WaitUntil(t) => {
                std::thread::park_timeout(t.saturating_duration_since(now))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FlushPolicy {
        FlushPolicy {
            records_max: 4,
            bytes_max: 1000,
            delay_us_max: 100,
        }
    }

    #[test]
    fn idle_without_records() {
        let now = Instant::now();
        assert_eq!(policy().decide(None, now), FlushDecision::Idle);
        assert_eq!(
            policy().decide(
                Some(Batch {
                    records: 0,
                    bytes: 0,
                    oldest: now
                }),
                now
            ),
            FlushDecision::Idle
        );
    }

    #[test]
    fn waits_until_the_deadline_of_the_oldest_record() {
        let t0 = Instant::now();
        let b = Batch {
            records: 1,
            bytes: 10,
            oldest: t0,
        };
        let deadline = t0 + Duration::from_micros(100);
        assert_eq!(
            policy().decide(Some(b), t0),
            FlushDecision::WaitUntil(deadline)
        );
        assert_eq!(
            policy().decide(Some(b), t0 + Duration::from_micros(99)),
            FlushDecision::WaitUntil(deadline)
        );
        assert_eq!(policy().decide(Some(b), deadline), FlushDecision::FlushNow);
    }

    #[test]
    fn flushes_on_count_or_bytes_whichever_first() {
        let t0 = Instant::now();
        let by_count = Batch {
            records: 4,
            bytes: 10,
            oldest: t0,
        };
        let by_bytes = Batch {
            records: 2,
            bytes: 1000,
            oldest: t0,
        };
        assert_eq!(policy().decide(Some(by_count), t0), FlushDecision::FlushNow);
        assert_eq!(policy().decide(Some(by_bytes), t0), FlushDecision::FlushNow);
    }

    #[test]
    fn always_mode_flushes_each_record() {
        let p = policy().for_mode(SyncMode::Always);
        let t0 = Instant::now();
        assert_eq!(
            p.decide(
                Some(Batch {
                    records: 1,
                    bytes: 1,
                    oldest: t0
                }),
                t0
            ),
            FlushDecision::FlushNow
        );
        assert_eq!(policy().for_mode(SyncMode::Batch), policy());
    }
}
