//! The log itself: open (lock + recover), append, read, truncate, purge, list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Result, WalError};
use crate::group::{PendingSeg, Shared, Syncer};
use crate::io::{LockGuard, OsStorage, Storage, lock};
use crate::options::{AppendMethod, SyncMode, WalOptions};
use crate::record::{Decoded, RECORD_HEADER_BYTES, RecordRef, decode, encode_header, encoded_len};
use crate::recovery::{Recovery, recover};
use crate::segment::{SEGMENT_HEADER_BYTES, SegShared, prewrite};

/// Name of the lock file in the WAL directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// A segment as the owning `Wal` sees it.
struct Segment {
    shared: Arc<SegShared>,
    /// Zxid of the first and last record (0: no record yet).
    first_zxid: u64,
    last_zxid: u64,
}

/// The next segment: pre-written already, or being pre-written by a background thread.
enum Spare {
    Ready(SegShared),
    Building(JoinHandle<Result<SegShared>>),
    None,
}

/// Where an appended record went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub zxid: u64,
    /// Sequence number of the segment holding it.
    pub segment: u64,
    /// Byte offset of the record in that segment.
    pub offset: u64,
}

/// One segment, as listed by [`Wal::segments`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub seq: u64,
    pub path: PathBuf,
    /// First and last zxid held (`None` for an empty segment).
    pub zxids: Option<(u64, u64)>,
    /// Bytes used by the header and records.
    pub bytes_used: u64,
    /// Size of the file.
    pub bytes_total: u64,
}

/// Counters of the appender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    pub appends: u64,
    pub segment_rolls: u64,
    /// Rolls that had to wait because the next segment was not pre-written yet: the only
    /// way an append waits on the disk.
    pub roll_waits: u64,
    pub roll_wait_ns: u64,
}

/// A segmented, pre-written, memory-mapped write-ahead log. See the crate docs.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    storage: Arc<dyn Storage>,
    segments: Vec<Segment>,
    spare: Spare,
    last_zxid: u64,
    shared: Arc<Shared>,
    stats: WalStats,
    /// Staging buffer of `AppendMethod::Pwrite`.
    scratch: Vec<u8>,
    _lock: LockGuard,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("last_zxid", &self.last_zxid)
            .finish()
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal, Recovery)> {
        Wal::open_with(dir, opts, Arc::new(OsStorage))
    }

    /// Opens (or creates) the log in `dir` through `storage` (tests inject faults here).
    /// The directory must exist and be writable; its `LOCK` file is locked (flock) for as
    /// long as the `Wal` lives, so a second process fails with [`WalError::Locked`].
    pub fn open_with(
        dir: impl AsRef<Path>,
        opts: WalOptions,
        storage: Arc<dyn Storage>,
    ) -> Result<(Wal, Recovery)> {
        let dir = dir.as_ref().to_path_buf();
        opts.validate()?;
        let lock = lock_dir(&*storage, &dir)?;
        let recovered = recover(&*storage, &dir, &opts)?;
        let mut report = recovered.report;
        let shared = Arc::new(Shared::new(
            opts.sync,
            prefault_bytes(&opts),
            report.last_zxid,
        ));
        let mut segments: Vec<Segment> = recovered
            .segments
            .into_iter()
            .map(|s| Segment {
                shared: Arc::new(s.shared),
                first_zxid: s.first_zxid,
                last_zxid: s.last_zxid,
            })
            .collect();
        if segments.is_empty() {
            let first = prewrite(
                &*storage,
                &dir,
                1,
                opts.segment_bytes,
                opts.flush_method,
                resident(&opts),
            )?;
            segments.push(Segment {
                shared: Arc::new(first),
                first_zxid: 0,
                last_zxid: 0,
            });
        }
        if opts.sync != SyncMode::Never {
            make_durable(&segments)?;
        }
        // Recovery read every segment; only the active one may be touched again soon,
        // and only when appends go through the map.
        let keep = usize::from(resident(&opts));
        for seg in &segments[..segments.len() - keep] {
            seg.shared.region.release();
        }
        let active = segments
            .last()
            .expect("at least one segment")
            .shared
            .clone();
        let end = active.end();
        lock_pending(&shared).push(PendingSeg::durable_to(active, end));
        if let Some(spare) = recovered.spare.as_ref().filter(|_| keep == 0) {
            spare.region.release();
        }
        let spare = recovered.spare.map_or(Spare::None, Spare::Ready);
        let mut wal = Wal {
            dir,
            opts,
            storage,
            segments,
            spare,
            last_zxid: report.last_zxid,
            shared,
            stats: WalStats::default(),
            scratch: Vec::new(),
            _lock: lock,
        };
        wal.start_spare();
        report.segments = wal.segments.iter().filter(|s| s.last_zxid > 0).count();
        tracing::info!(dir = %wal.dir.display(), last_zxid = report.last_zxid, records = report.records,
            elapsed_ms = report.elapsed.as_millis() as u64, "wal opened");
        Ok((wal, report))
    }

    /// Appends a record. `zxid` must be greater than every earlier one; `payload` at most
    /// `record_bytes_max` bytes. Copies into the map and returns: it never waits for a
    /// flush. The only wait is a segment roll finding the next segment not yet pre-written
    /// (counted in [`WalStats::roll_waits`]). Durability comes from a [`Syncer`].
    pub fn append(&mut self, zxid: u64, kind: u8, payload: &[u8]) -> Result<Appended> {
        self.shared.check_poisoned()?;
        if payload.len() > self.opts.record_bytes_max as usize {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                max: self.opts.record_bytes_max,
            });
        }
        if zxid <= self.last_zxid {
            return Err(WalError::NonIncreasingZxid {
                zxid,
                last: self.last_zxid,
            });
        }
        let len = encoded_len(payload.len());
        if self.active().shared.end() + len > self.active().shared.region.len() {
            self.roll()?;
        }
        let seg = self.segments.last_mut().expect("an active segment");
        let off = seg.shared.end();
        debug_assert!(
            off.is_multiple_of(8),
            "records start 8-aligned so payloads stay aligned"
        );
        debug_assert!(
            off + len <= seg.shared.region.len(),
            "a roll made room for the record"
        );
        let mut header = [0u8; RECORD_HEADER_BYTES];
        encode_header(&mut header, zxid, kind, payload);
        let pad = len - RECORD_HEADER_BYTES - payload.len();
        match self.opts.append_method {
            AppendMethod::Map => {
                seg.shared.write(off, &header);
                seg.shared.write(off + RECORD_HEADER_BYTES, payload);
                seg.shared
                    .write(off + RECORD_HEADER_BYTES + payload.len(), &[0u8; 8][..pad]);
            }
            AppendMethod::Pwrite => {
                // One system call: header, payload and padding staged together.
                let scratch = &mut self.scratch;
                scratch.clear();
                scratch.extend_from_slice(&header);
                scratch.extend_from_slice(payload);
                scratch.extend_from_slice(&[0u8; 8][..pad]);
                seg.shared
                    .region
                    .pwrite(off, scratch)
                    .map_err(|e| WalError::io("append (pwrite)", &seg.shared.path, e))?;
            }
        }
        seg.shared.end.store(off + len, Ordering::Release);
        if seg.first_zxid == 0 {
            seg.first_zxid = zxid;
        }
        seg.last_zxid = zxid;
        self.last_zxid = zxid;
        self.stats.appends += 1;
        self.shared.note_appended(zxid);
        Ok(Appended {
            zxid,
            segment: seg.shared.seq,
            offset: off as u64,
        })
    }

    /// Appends several records with one write per segment they land in (one `pwrite`
    /// system call instead of one per record with [`AppendMethod::Pwrite`]). All records
    /// are checked (sizes, increasing zxids) before anything is written. If a write or a
    /// roll fails part-way, the records before it stay appended ([`Wal::last_zxid`] says
    /// how far it got) and the error is returned.
    pub fn append_batch(&mut self, records: &[(u64, u8, &[u8])]) -> Result<()> {
        self.shared.check_poisoned()?;
        let mut last = self.last_zxid;
        for &(zxid, _, payload) in records {
            if payload.len() > self.opts.record_bytes_max as usize {
                return Err(WalError::RecordTooLarge {
                    len: payload.len(),
                    max: self.opts.record_bytes_max,
                });
            }
            if zxid <= last {
                return Err(WalError::NonIncreasingZxid { zxid, last });
            }
            last = zxid;
        }
        let mut rest = records;
        while let Some(&(_, _, first)) = rest.first() {
            if self.active().shared.end() + encoded_len(first.len())
                > self.active().shared.region.len()
            {
                self.roll()?;
            }
            let taken = self.append_group(rest)?;
            debug_assert!(taken > 0, "a fresh segment holds at least one record");
            rest = &rest[taken..];
        }
        Ok(())
    }

    /// Writes the leading records of `records` that fit in the active segment, in one
    /// write, and publishes them. Returns how many.
    fn append_group(&mut self, records: &[(u64, u8, &[u8])]) -> Result<usize> {
        let seg = self.segments.last_mut().expect("an active segment");
        let (start, room) = (seg.shared.end(), seg.shared.region.len());
        let scratch = &mut self.scratch;
        scratch.clear();
        let mut taken = 0;
        for &(zxid, kind, payload) in records {
            let len = encoded_len(payload.len());
            if start + scratch.len() + len > room {
                break;
            }
            let mut header = [0u8; RECORD_HEADER_BYTES];
            encode_header(&mut header, zxid, kind, payload);
            scratch.extend_from_slice(&header);
            scratch.extend_from_slice(payload);
            scratch.extend_from_slice(&[0u8; 8][..len - RECORD_HEADER_BYTES - payload.len()]);
            taken += 1;
        }
        if taken == 0 {
            return Ok(0);
        }
        match self.opts.append_method {
            AppendMethod::Map => seg.shared.write(start, scratch),
            AppendMethod::Pwrite => seg
                .shared
                .region
                .pwrite(start, scratch)
                .map_err(|e| WalError::io("append (pwrite)", &seg.shared.path, e))?,
        }
        let bytes = scratch.len();
        seg.shared.end.store(start + bytes, Ordering::Release);
        let (first_zxid, last_zxid) = (records[0].0, records[taken - 1].0);
        if seg.first_zxid == 0 {
            seg.first_zxid = first_zxid;
        }
        seg.last_zxid = last_zxid;
        self.last_zxid = last_zxid;
        self.stats.appends += taken as u64;
        self.shared.note_appended(last_zxid);
        Ok(taken)
    }

    /// A handle to make appended records durable, from any thread.
    pub fn syncer(&self) -> Syncer {
        Syncer {
            shared: self.shared.clone(),
        }
    }

    /// Flushes everything appended so far on this thread; returns the durable zxid.
    pub fn flush(&self) -> Result<u64> {
        self.syncer().flush()
    }

    /// Bumped by every truncation and reset (see [`Syncer::flush_tagged`]).
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Zxid of the last appended record (or the truncation point; 0: empty log).
    pub fn last_zxid(&self) -> u64 {
        self.last_zxid
    }

    /// The durable watermark.
    pub fn durable_zxid(&self) -> u64 {
        self.shared.durable_zxid.load(Ordering::Acquire)
    }

    /// Appender counters.
    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segments holding the log, oldest first (the pre-written spare not included).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|s| SegmentInfo {
                seq: s.shared.seq,
                path: s.shared.path.clone(),
                zxids: (s.last_zxid > 0).then_some((s.first_zxid, s.last_zxid)),
                bytes_used: s.shared.end() as u64,
                bytes_total: s.shared.region.len() as u64,
            })
            .collect()
    }

    /// Records with zxid >= `zxid`, in order. Each is re-checked (crc) as it is read.
    pub fn read_from(&self, zxid: u64) -> ReadIter<'_> {
        let start = self
            .segments
            .iter()
            .rposition(|s| s.last_zxid > 0 && s.first_zxid <= zxid)
            .unwrap_or(0);
        ReadIter {
            wal: self,
            seg: start,
            off: SEGMENT_HEADER_BYTES,
            from: zxid,
            failed: false,
        }
    }

    /// Removes every record with a zxid greater than `zxid` (Zab TRUNC), durably: later
    /// segments are deleted, the rest of the cut segment is zeroed and flushed. Afterwards
    /// appends need a zxid above `zxid`, and the durable watermark is at most `zxid`.
    pub fn truncate_after(&mut self, zxid: u64) -> Result<()> {
        self.shared.check_poisoned()?;
        if zxid >= self.last_zxid {
            return Ok(());
        }
        let shared = self.shared.clone();
        let guard = shared.sync_lock.write().unwrap_or_else(|e| e.into_inner());
        shared.generation.fetch_add(1, Ordering::AcqRel);
        self.discard_spare();
        let (keep, cut, last_kept) = self.cut_point(zxid)?;
        let done = self.truncate_locked(zxid, keep, cut, last_kept);
        if let Err(e) = &done {
            // Half-truncated: the in-memory view may no longer match the files.
            shared.poison(format!("truncate_after({zxid:#x}) failed: {e}"));
        }
        drop(guard);
        self.start_spare();
        done?;
        tracing::info!(zxid, "wal truncated after zxid");
        Ok(())
    }

    /// Makes the log continue after `zxid`, whose state the caller has just made
    /// durable in a snapshot (Zab SNAP): records above `zxid` are removed as by
    /// [`Wal::truncate_after`] (they may diverge from the snapshot's history), records
    /// at or below it stay (recovery skips what the snapshot covers), the next append
    /// must be above `zxid`, and everything up to `zxid` counts as durable. Bumps the
    /// generation even when nothing was removed.
    pub fn reset_to(&mut self, zxid: u64) -> Result<()> {
        self.shared.check_poisoned()?;
        if zxid < self.last_zxid {
            self.truncate_after(zxid)?;
        }
        let shared = self.shared.clone();
        let _guard = shared.sync_lock.write().unwrap_or_else(|e| e.into_inner());
        shared.generation.fetch_add(1, Ordering::AcqRel);
        debug_assert!(self.last_zxid <= zxid, "nothing above the snapshot is left");
        self.last_zxid = zxid;
        shared.appended_zxid.store(zxid, Ordering::Release);
        if shared.durable_zxid.load(Ordering::Acquire) < zxid {
            shared.publish_durable(zxid);
        }
        tracing::info!(zxid, "wal reset to continue after a snapshot");
        Ok(())
    }

    /// The file work of `truncate_after`, under the sync lock: a durable intent first (so
    /// that a crash part-way is completed on open, see [`crate::truncation`]), then later
    /// segments newest first, then the zeroed tail, then the intent is removed.
    fn truncate_locked(
        &mut self,
        zxid: u64,
        keep: usize,
        cut: usize,
        last_kept: u64,
    ) -> Result<()> {
        let seq = self.segments[keep].shared.seq;
        crate::truncation::write_intent(&*self.storage, &self.dir, seq, cut as u64)?;
        while self.segments.len() > keep + 1 {
            let path = self
                .segments
                .last()
                .expect("more than keep + 1 segments")
                .shared
                .path
                .clone();
            self.remove_durably(&path)?;
            self.segments.pop();
        }
        let seg = &mut self.segments[keep];
        let old_end = seg.shared.end();
        seg.shared.write(cut, &vec![0u8; old_end - cut]);
        seg.shared
            .region
            .flush(cut, old_end - cut)
            .map_err(|e| WalError::io("flush truncation", &seg.shared.path, e))?;
        seg.shared.end.store(cut, Ordering::Release);
        seg.shared.sealed.store(false, Ordering::Release);
        seg.last_zxid = last_kept;
        if last_kept == 0 {
            seg.first_zxid = 0;
        }
        let active = seg.shared.clone();
        {
            let mut pending = lock_pending(&self.shared);
            // Bytes of the cut segment below `cut` that were not flushed yet stay
            // pending: only the zeroed tail was flushed here.
            let synced = pending
                .iter()
                .find(|p| p.seg.seq == active.seq)
                .map_or(cut, |p| p.synced.min(cut));
            pending.retain(|p| p.seg.seq < active.seq);
            pending.push(PendingSeg::durable_to(active, synced));
        }
        self.last_zxid = zxid;
        self.shared.appended_zxid.store(zxid, Ordering::Release);
        if self.shared.durable_zxid.load(Ordering::Acquire) > zxid {
            self.shared.publish_durable(zxid);
        }
        crate::truncation::clear_intent(&*self.storage, &self.dir)
    }

    /// Removes a file and fsyncs the directory.
    fn remove_durably(&self, path: &Path) -> Result<()> {
        remove_durably(&*self.storage, &self.dir, path)
    }

    /// Index of the segment to cut, the byte offset to cut at, and the zxid of the last
    /// record kept in it (0: none).
    fn cut_point(&self, zxid: u64) -> Result<(usize, usize, u64)> {
        let Some(keep) = self
            .segments
            .iter()
            .rposition(|s| s.last_zxid > 0 && s.first_zxid <= zxid)
        else {
            return Ok((0, SEGMENT_HEADER_BYTES, 0));
        };
        let seg = &self.segments[keep].shared;
        let (mut off, mut last) = (SEGMENT_HEADER_BYTES, 0);
        // SAFETY: bytes below `end` are published and immutable while we hold `&self`.
        let bytes = unsafe { seg.bytes(seg.end()) };
        while off < bytes.len() {
            match decode(&bytes[off..], u32::MAX) {
                Decoded::Record { record, .. } if record.zxid > zxid => break,
                Decoded::Record { record, len } => {
                    last = record.zxid;
                    off += len;
                }
                _ => {
                    return Err(WalError::Corrupt {
                        path: seg.path.clone(),
                        offset: off as u64,
                        reason: "record no longer valid".into(),
                    });
                }
            }
        }
        Ok((keep, off, last))
    }

    /// Deletes the oldest segments whose records all have zxids below `zxid` (after a
    /// snapshot covers them). The active segment is never deleted. Returns how many.
    /// Blocks on the directory fsyncs: a server's event loop uses
    /// [`Wal::detach_below`] and runs the job elsewhere.
    pub fn purge_below(&mut self, zxid: u64) -> Result<usize> {
        self.detach_below(zxid).run()
    }

    /// Detaches the oldest segments whose records all have zxids below `zxid` (never
    /// the active one) from the log, in memory only, and returns the job that deletes
    /// their files. The job blocks on the disk: run it off the appending thread. Until
    /// it has run, recovery still finds those files; they hold only records below
    /// `zxid`, which are skipped or replayed idempotently, so a crash at any point
    /// leaves a valid log.
    pub fn detach_below(&mut self, zxid: u64) -> PurgeJob {
        let removable = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.last_zxid < zxid)
            .count();
        let gone: Vec<Segment> = self.segments.drain(..removable).collect();
        let seqs: Vec<_> = gone.iter().map(|s| s.shared.seq).collect();
        lock_pending(&self.shared).retain(|p| !seqs.contains(&p.seg.seq));
        PurgeJob {
            storage: self.storage.clone(),
            dir: self.dir.clone(),
            zxid,
            paths: gone.iter().map(|s| s.shared.path.clone()).collect(),
        }
    }

    /// Blocks until the next segment is pre-written (e.g. at startup, or before a latency
    /// measurement), so that the next roll cannot wait. Reports a pre-write failure.
    pub fn prepare_next_segment(&mut self) -> Result<()> {
        let ready = match std::mem::replace(&mut self.spare, Spare::None) {
            Spare::Building(handle) => handle.join().unwrap_or_else(|_| {
                Err(WalError::Poisoned {
                    reason: "pre-write thread panicked".into(),
                })
            }),
            Spare::Ready(seg) => Ok(seg),
            Spare::None => self.prewrite_now(),
        };
        match ready {
            Ok(seg) => {
                self.spare = Spare::Ready(seg);
                Ok(())
            }
            Err(e) => {
                self.start_spare();
                Err(e)
            }
        }
    }

    fn active(&self) -> &Segment {
        self.segments.last().expect("an active segment")
    }

    /// Moves to the next segment, waiting for its pre-write only if it is not done.
    fn roll(&mut self) -> Result<()> {
        let next = match std::mem::replace(&mut self.spare, Spare::None) {
            Spare::Ready(seg) => Ok(seg),
            Spare::Building(handle) => {
                let started = Instant::now();
                let waited = !handle.is_finished();
                let made = handle.join().unwrap_or_else(|_| {
                    Err(WalError::Poisoned {
                        reason: "pre-write thread panicked".into(),
                    })
                });
                if waited {
                    self.stats.roll_waits += 1;
                    self.stats.roll_wait_ns += started.elapsed().as_nanos() as u64;
                    tracing::debug!(
                        waited_us = started.elapsed().as_micros() as u64,
                        "append waited for a segment pre-write"
                    );
                }
                made
            }
            Spare::None => {
                let started = Instant::now();
                let made = self.prewrite_now();
                self.stats.roll_waits += 1;
                self.stats.roll_wait_ns += started.elapsed().as_nanos() as u64;
                made
            }
        };
        let next = match next {
            Ok(seg) => seg,
            Err(e) => {
                // Try again in the background; this append fails with the reason.
                self.start_spare();
                return Err(e);
            }
        };
        debug_assert_eq!(
            next.seq,
            self.active().shared.seq + 1,
            "spare is the next segment"
        );
        self.active().shared.sealed.store(true, Ordering::Release);
        let next = Arc::new(next);
        lock_pending(&self.shared).push(PendingSeg::durable_to(next.clone(), SEGMENT_HEADER_BYTES));
        self.segments.push(Segment {
            shared: next,
            first_zxid: 0,
            last_zxid: 0,
        });
        self.stats.segment_rolls += 1;
        self.start_spare();
        Ok(())
    }

    fn prewrite_now(&self) -> Result<SegShared> {
        prewrite(
            &*self.storage,
            &self.dir,
            self.active().shared.seq + 1,
            self.opts.segment_bytes,
            self.opts.flush_method,
            resident(&self.opts),
        )
    }

    /// Starts pre-writing the segment after the active one, unless one is ready/underway.
    fn start_spare(&mut self) {
        if !matches!(self.spare, Spare::None) {
            return;
        }
        let (storage, dir, seq) = (
            self.storage.clone(),
            self.dir.clone(),
            self.active().shared.seq + 1,
        );
        let (bytes, method) = (self.opts.segment_bytes, self.opts.flush_method);
        let resident = resident(&self.opts);
        let spawned = std::thread::Builder::new()
            .name("wal-prewrite".into())
            .spawn(move || prewrite(&*storage, &dir, seq, bytes, method, resident));
        // If no thread can be spawned, the next roll pre-writes synchronously.
        self.spare = spawned.map_or(Spare::None, Spare::Building);
    }

    /// Drops the spare (it may no longer be the next segment) and deletes its file.
    fn discard_spare(&mut self) {
        let spare = match std::mem::replace(&mut self.spare, Spare::None) {
            Spare::Ready(seg) => Some(seg),
            Spare::Building(handle) => handle.join().ok().and_then(|r| r.ok()),
            Spare::None => None,
        };
        if let Some(seg) = spare {
            let _ = self.storage.remove(&seg.path);
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Let a pre-write finish before the lock is released, so that a process opening
        // the directory next never sees a half-written temp file being renamed under it.
        if let Spare::Building(handle) = std::mem::replace(&mut self.spare, Spare::None) {
            let _ = handle.join();
        }
    }
}

/// Whether the active segment's pages are kept resident: only appends through the map
/// write to them (a `pwrite` append goes to the page cache; the map is then only read,
/// for a DIFF). A 64 MiB segment is 64 MiB of the process's RSS when resident.
fn resident(opts: &WalOptions) -> bool {
    opts.append_method == AppendMethod::Map
}

/// Pre-faulting helps only appends through the map (pwrite appends take no write faults).
fn prefault_bytes(opts: &WalOptions) -> usize {
    match opts.append_method {
        AppendMethod::Map => opts.prefault_bytes_max,
        AppendMethod::Pwrite => 0,
    }
}

/// Segment files detached by [`Wal::detach_below`], to delete off the appending thread.
#[must_use = "the files stay on disk until the job runs"]
pub struct PurgeJob {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    zxid: u64,
    paths: Vec<PathBuf>,
}

impl PurgeJob {
    /// Segment files it deletes.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Deletes the files oldest first, each removal durable (directory fsync) before the
    /// next, so a crash leaves no gap in the log. Returns how many were deleted.
    pub fn run(self) -> Result<usize> {
        for path in &self.paths {
            remove_durably(&*self.storage, &self.dir, path)?;
        }
        if !self.paths.is_empty() {
            tracing::info!(
                zxid = self.zxid,
                segments = self.paths.len(),
                "wal purged segments below zxid"
            );
        }
        Ok(self.paths.len())
    }
}

fn remove_durably(storage: &dyn Storage, dir: &Path, path: &Path) -> Result<()> {
    storage
        .remove(path)
        .map_err(|e| WalError::io("remove segment", path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| WalError::io("fsync directory", dir, e))
}

fn lock_pending(shared: &Shared) -> std::sync::MutexGuard<'_, Vec<PendingSeg>> {
    lock(&shared.pending)
}

fn lock_dir(storage: &dyn Storage, dir: &Path) -> Result<LockGuard> {
    storage.check_dir(dir).map_err(|e| {
        let reason = if e.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_string()
        } else {
            e.to_string()
        };
        WalError::Dir {
            path: dir.to_path_buf(),
            reason,
            source: Some(e),
        }
    })?;
    let path = dir.join(LOCK_FILE_NAME);
    match storage.try_lock(&path) {
        Ok(Some(guard)) => Ok(guard),
        Ok(None) => Err(WalError::Locked { path }),
        Err(e) => Err(WalError::Dir {
            path: dir.to_path_buf(),
            reason: format!("cannot create lock file {}: {e}", path.display()),
            source: Some(e),
        }),
    }
}

/// Flushes recovered segments: their bytes may still be only in the page cache if the
/// previous process died before flushing (it then never reported them durable; now they
/// are part of the log, so they must be on disk before anyone builds on them).
fn make_durable(segments: &[Segment]) -> Result<()> {
    for s in segments.iter().filter(|s| s.last_zxid > 0) {
        let end = s.shared.end();
        s.shared
            .region
            .flush(0, end)
            .map_err(|e| WalError::io("flush recovered segment", &s.shared.path, e))?;
    }
    Ok(())
}

/// Iterator of [`Wal::read_from`]. Stops after the first error.
pub struct ReadIter<'a> {
    wal: &'a Wal,
    seg: usize,
    off: usize,
    from: u64,
    failed: bool,
}

impl<'a> Iterator for ReadIter<'a> {
    type Item = Result<RecordRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            let seg = &self.wal.segments.get(self.seg)?.shared;
            let end = seg.end();
            if self.off >= end {
                self.seg += 1;
                self.off = SEGMENT_HEADER_BYTES;
                continue;
            }
            // SAFETY: bytes below `end` are published and immutable while `&Wal` lives.
            let bytes = unsafe { seg.bytes(end) };
            // No `record_bytes_max` here: it limits appends, not what is already in the log.
            match decode(&bytes[self.off..], u32::MAX) {
                Decoded::Record { record, len } => {
                    self.off += len;
                    if record.zxid >= self.from {
                        return Some(Ok(record));
                    }
                }
                Decoded::End | Decoded::Invalid(_) => {
                    self.failed = true;
                    let reason = "record damaged since it was written or recovered".into();
                    return Some(Err(WalError::Corrupt {
                        path: seg.path.clone(),
                        offset: self.off as u64,
                        reason,
                    }));
                }
            }
        }
        None
    }
}
