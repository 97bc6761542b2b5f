//! Recovery on open: scan every segment to the last valid record, truncate a torn tail,
//! refuse corruption.
//!
//! Rules (the reasons are in the crate docs):
//! - Segments must have consecutive sequence numbers and valid headers.
//! - Records must decode (magic, version, length, crc) and have strictly increasing zxids.
//! - Let the *tail* be the last segment holding any non-zero byte past its header. Damage
//!   in the tail with no valid record anywhere after it is a torn write: it is zeroed
//!   (and flushed), and reported with `tracing::warn`. Damage before the tail, damage
//!   followed by a valid record, or an empty segment before the tail, is corruption:
//!   [`WalError::Corrupt`] names the file and byte offset, and nothing is changed.
//! - Empty segments after the tail are pre-written spares: the next one is kept, others
//!   are removed. Leftover `*.wal.tmp` files (a pre-write cut short) are removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Result, WalError};
use crate::io::Storage;
use crate::options::{FlushMethod, WalOptions};
use crate::record::{Decoded, RECORD_MAGIC, decode};
use crate::segment::{
    SEGMENT_HEADER_BYTES, SEGMENT_TMP_SUFFIX, SegShared, check_segment_header, parse_segment_name,
};

/// What [`crate::Wal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Zxid of the first record in the log (0: empty).
    pub first_zxid: u64,
    /// Zxid of the last valid record (0: empty). Appends must use a greater zxid.
    pub last_zxid: u64,
    /// Valid records scanned.
    pub records: u64,
    /// Segment files holding records (spares not counted).
    pub segments: usize,
    /// Bytes of a torn tail that were zeroed (0 if none).
    pub bytes_truncated: u64,
    /// Where the torn tail began, if there was one: file and byte offset.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Time the recovery took.
    pub elapsed: Duration,
}

/// A segment as scanned.
pub(crate) struct Scanned {
    pub shared: SegShared,
    pub first_zxid: u64,
    pub last_zxid: u64,
    pub records: u64,
    /// First damaged byte and why, if any.
    pub damage: Option<(usize, &'static str)>,
    /// Whether any byte past the header is non-zero.
    pub has_data: bool,
}

/// The recovered state handed to the `Wal`.
pub(crate) struct Recovered {
    /// Segments with records, plus (if the log is empty) one empty active segment.
    pub segments: Vec<Scanned>,
    /// The next segment, already pre-written, if one was found.
    pub spare: Option<SegShared>,
    pub report: Recovery,
}

/// Scans `dir`. Does not create segments (the caller does when none exist).
pub(crate) fn recover(storage: &dyn Storage, dir: &Path, opts: &WalOptions) -> Result<Recovered> {
    let started = Instant::now();
    crate::truncation::redo(storage, dir, opts.flush_method)?;
    let seqs = list_segments(storage, dir)?;
    let mut scanned = Vec::with_capacity(seqs.len());
    let mut prev_zxid = 0;
    let mut last_log = Instant::now();
    for (i, &seq) in seqs.iter().enumerate() {
        let seg = scan(
            open_segment(storage, dir, seq, opts.flush_method)?,
            prev_zxid,
        )?;
        prev_zxid = prev_zxid.max(seg.last_zxid);
        if last_log.elapsed() >= Duration::from_secs(1) {
            tracing::info!(
                segment = i + 1,
                of = seqs.len(),
                last_zxid = prev_zxid,
                "wal recovery in progress"
            );
            last_log = Instant::now();
        }
        scanned.push(seg);
    }
    let tail = scanned.iter().rposition(|s| s.has_data);
    let mut report = Recovery::default();
    if let Some(tail) = tail {
        check_before_tail(&scanned[..tail])?;
        repair_tail(&mut scanned[tail], &mut report)?;
    }
    let keep = tail.map_or(1.min(scanned.len()), |t| t + 1);
    let mut spares = scanned.split_off(keep).into_iter();
    let spare = spares.next().map(|s| s.shared);
    for extra in spares {
        storage
            .remove(&extra.shared.path)
            .map_err(|e| WalError::io("remove extra spare segment", &extra.shared.path, e))?;
    }
    report.first_zxid = scanned
        .iter()
        .find(|s| s.records > 0)
        .map_or(0, |s| s.first_zxid);
    report.last_zxid = scanned.iter().map(|s| s.last_zxid).max().unwrap_or(0);
    report.records = scanned.iter().map(|s| s.records).sum();
    report.segments = scanned.iter().filter(|s| s.records > 0).count();
    report.elapsed = started.elapsed();
    Ok(Recovered {
        segments: scanned,
        spare,
        report,
    })
}

/// Sorted segment sequence numbers; removes leftover temp files; checks contiguity.
fn list_segments(storage: &dyn Storage, dir: &Path) -> Result<Vec<u64>> {
    let names = storage
        .list_dir(dir)
        .map_err(|e| WalError::io("list directory", dir, e))?;
    let mut seqs = Vec::new();
    for name in names {
        if name.ends_with(SEGMENT_TMP_SUFFIX) {
            let path = dir.join(&name);
            tracing::warn!(path = %path.display(), "removing a segment whose pre-write was cut short");
            storage
                .remove(&path)
                .map_err(|e| WalError::io("remove temp segment", &path, e))?;
        } else if let Some(seq) = parse_segment_name(&name) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    for pair in seqs.windows(2) {
        if pair[1] != pair[0] + 1 {
            let path = dir.join(crate::segment::segment_file_name(pair[0] + 1));
            return Err(WalError::Corrupt {
                path,
                offset: 0,
                reason: "segment file is missing (sequence gap)".into(),
            });
        }
    }
    Ok(seqs)
}

fn open_segment(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
    method: FlushMethod,
) -> Result<SegShared> {
    let path = dir.join(crate::segment::segment_file_name(seq));
    let file = storage
        .open(&path)
        .map_err(|e| WalError::io("open segment", &path, e))?;
    let region = file
        .map(method, true)
        .map_err(|e| WalError::io("map segment", &path, e))?;
    // SAFETY: nothing writes to a segment during recovery.
    let bytes = unsafe { std::slice::from_raw_parts(region.as_ptr(), region.len()) };
    check_segment_header(bytes, seq).map_err(|reason| WalError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason,
    })?;
    Ok(SegShared::new(seq, path, region, SEGMENT_HEADER_BYTES))
}

/// Scans the records of one segment. `prev_zxid`: last zxid of the earlier segments.
/// Records are decoded without the `record_bytes_max` limit (only the segment bounds
/// apply): the limit may have been lowered since they were written, and treating a valid
/// older record as damage could zero an acknowledged record.
pub(crate) fn scan(shared: SegShared, prev_zxid: u64) -> Result<Scanned> {
    // SAFETY: nothing writes to a segment during recovery.
    let bytes = unsafe { shared.bytes(shared.region.len()) };
    let (mut off, mut last, mut first, mut records) = (SEGMENT_HEADER_BYTES, prev_zxid, 0, 0);
    let damage = loop {
        match decode(&bytes[off..], u32::MAX) {
            Decoded::Record { record, .. } if record.zxid <= last => {
                break Some((off, "zxid not increasing"));
            }
            Decoded::Record { record, len } => {
                first = if records == 0 { record.zxid } else { first };
                last = record.zxid;
                records += 1;
                off += len;
            }
            Decoded::End => {
                break bytes[off..]
                    .iter()
                    .any(|&b| b != 0)
                    .then_some((off, "non-zero bytes after the last record"));
            }
            Decoded::Invalid(why) => break Some((off, why)),
        }
    };
    let has_data = records > 0 || damage.is_some();
    shared.end.store(off, std::sync::atomic::Ordering::Release);
    Ok(Scanned {
        shared,
        first_zxid: first,
        last_zxid: if records > 0 { last } else { 0 },
        records,
        damage,
        has_data,
    })
}

fn check_before_tail(segments: &[Scanned]) -> Result<()> {
    for s in segments {
        if let Some((offset, why)) = s.damage {
            return Err(corrupt(
                s,
                offset,
                format!("{why}, in a segment that is not the last"),
            ));
        }
        if s.records == 0 {
            return Err(corrupt(
                s,
                SEGMENT_HEADER_BYTES,
                "segment has no records but a later segment has".into(),
            ));
        }
    }
    Ok(())
}

fn corrupt(s: &Scanned, offset: usize, reason: String) -> WalError {
    WalError::Corrupt {
        path: s.shared.path.clone(),
        offset: offset as u64,
        reason,
    }
}

/// Zeroes a torn tail, unless a valid record follows the damage (then: corruption).
fn repair_tail(s: &mut Scanned, report: &mut Recovery) -> Result<()> {
    let Some((at, why)) = s.damage else {
        return Ok(());
    };
    let len = s.shared.region.len();
    // SAFETY: nothing writes to a segment during recovery.
    let bytes = unsafe { s.shared.bytes(len) };
    if let Some(later) = find_valid_record(bytes, at + 8, s.last_zxid) {
        return Err(corrupt(
            s,
            at,
            format!("{why}, followed by a valid record at byte offset {later}"),
        ));
    }
    let dirty_end = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(at, |i| i + 1)
        .max(at);
    let zeros = vec![0u8; dirty_end - at];
    s.shared.write(at, &zeros);
    s.shared
        .region
        .flush(at, dirty_end - at)
        .map_err(|e| WalError::io("flush zeroed torn tail", &s.shared.path, e))?;
    tracing::warn!(path = %s.shared.path.display(), offset = at, bytes = dirty_end - at, reason = why,
        "wal: torn tail truncated (zeroed); records after the last valid one were never acknowledged");
    report.bytes_truncated = (dirty_end - at) as u64;
    report.torn_tail = Some((s.shared.path.clone(), at as u64));
    s.damage = None;
    s.has_data = s.records > 0;
    Ok(())
}

/// The offset of a valid record at or after `from` (8-aligned) with a zxid above `last`.
fn find_valid_record(bytes: &[u8], from: usize, last: u64) -> Option<usize> {
    let magic = RECORD_MAGIC.to_le_bytes();
    (from.next_multiple_of(8)..bytes.len()).step_by(8).find(|&off| {
        bytes[off..].starts_with(&magic)
            && matches!(decode(&bytes[off..], u32::MAX), Decoded::Record { record, .. } if record.zxid > last)
    })
}
