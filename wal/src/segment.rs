//! Segment files: naming, the segment header, pre-writing, and the in-memory handle.
//!
//! A segment is a file `<seq:020>.wal` of exactly `segment_bytes` bytes, pre-written
//! with zeros (not sparse: on ext4 an fdatasync after overwriting allocated blocks is about
//! twice as fast as after extending a file) and memory-mapped. It starts with a 32-byte
//! header, then records back to back from offset 32:
//!
//! ```text
//!  0        8         12        16        24               32
//!  +--------+---------+---------+---------+----------------+------------------------+
//!  |CKWALSEG| version | crc32c  |   seq   | segment_bytes  | records ... | zeros ...|
//!  +--------+---------+---------+---------+----------------+------------------------+
//! ```
//! The crc covers bytes `0..12` and `16..32`. A segment is created as `<name>.tmp`,
//! zero-filled, given its header, `fdatasync`ed, renamed into place and the directory
//! fsynced, so a segment file under its final name is always complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Result, WalError};
use crate::io::{Region, Storage, write_all_at};
use crate::options::FlushMethod;

/// Size of the segment header; the first record starts right after it.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"CKWALSEG";
/// Segment format version.
pub const SEGMENT_VERSION: u32 = 1;
/// Suffix of a segment file that is still being pre-written.
pub const SEGMENT_TMP_SUFFIX: &str = ".wal.tmp";
/// Size of one zero-filling write while pre-writing.
const PREWRITE_CHUNK_BYTES: usize = 1 << 20;

/// File name of segment `seq`.
pub fn segment_file_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

/// The sequence number in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of segment `seq` of `segment_bytes` bytes.
pub fn encode_segment_header(seq: u64, segment_bytes: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&segment_bytes.to_le_bytes());
    let crc = header_crc(&h);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

fn header_crc(h: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&h[0..12]), &h[16..32])
}

/// Checks a segment header against the sequence number it must have and the file's
/// length (segments keep their own size, so `segment_bytes` may change between runs).
pub fn check_segment_header(bytes: &[u8], seq: u64) -> std::result::Result<(), String> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err("file shorter than a segment header".into());
    }
    let h = &bytes[..SEGMENT_HEADER_BYTES];
    if &h[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic".into());
    }
    let crc = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    if crc != header_crc(h) {
        return Err("segment header crc mismatch".into());
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if version != SEGMENT_VERSION {
        return Err(format!("unknown segment version {version}"));
    }
    let found_seq = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    if found_seq != seq {
        return Err(format!(
            "header says segment {found_seq}, file name says {seq}"
        ));
    }
    let found_size = u64::from_le_bytes(h[24..32].try_into().expect("8 bytes"));
    if found_size != bytes.len() as u64 {
        return Err(format!(
            "segment file is {} bytes but its header says {found_size}",
            bytes.len()
        ));
    }
    Ok(())
}

/// The part of a segment shared between the appender and the syncer.
pub(crate) struct SegShared {
    pub seq: u64,
    pub path: PathBuf,
    pub region: Arc<dyn Region>,
    /// End of the published (completely written) records. Only the owning `Wal` stores.
    pub end: AtomicUsize,
    /// No record will be appended to this segment any more.
    pub sealed: AtomicBool,
}

impl SegShared {
    pub fn new(seq: u64, path: PathBuf, region: Arc<dyn Region>, end: usize) -> Self {
        debug_assert!(
            end >= SEGMENT_HEADER_BYTES && end <= region.len(),
            "end lies within the records area"
        );
        SegShared {
            seq,
            path,
            region,
            end: AtomicUsize::new(end),
            sealed: AtomicBool::new(false),
        }
    }

    /// The whole map as bytes.
    ///
    /// # Safety
    /// No one may write to the map while the returned slice lives. The `Wal` guarantees
    /// this for bytes below `end` (published records are immutable until `&mut`
    /// truncation) and for the whole map during recovery.
    pub unsafe fn bytes(&self, len: usize) -> &[u8] {
        debug_assert!(len <= self.region.len(), "slice lies within the map");
        // SAFETY: in bounds; the caller rules out concurrent writes.
        unsafe { std::slice::from_raw_parts(self.region.as_ptr(), len) }
    }

    /// Copies `data` into the map at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= self.region.len(),
            "write within the map"
        );
        // SAFETY: bounds checked above; only the owning `Wal` (one thread, `&mut self`)
        // writes, and only beyond the published end, which no reader looks at.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.region.as_ptr().add(offset),
                data.len(),
            )
        };
    }

    pub fn end(&self) -> usize {
        self.end.load(Ordering::Acquire)
    }
}

/// Creates segment `seq`: zero-filled temp file, header, fdatasync, rename, fsync dir; then
/// maps it. ENOSPC is reported as [`WalError::DiskFull`]; the temp file is removed on error.
/// `resident`: fault the (cached, pre-written) pages in now, so appends through the map
/// take no faults; otherwise the map is only read (records for a DIFF) and its pages
/// come in as they are read.
pub(crate) fn prewrite(
    storage: &dyn Storage,
    dir: &Path,
    seq: u64,
    segment_bytes: u64,
    method: FlushMethod,
    resident: bool,
) -> Result<SegShared> {
    let path = dir.join(segment_file_name(seq));
    let tmp = dir.join(format!("{}.tmp", segment_file_name(seq)));
    let made = fill(storage, &tmp, seq, segment_bytes).and_then(|file| {
        storage
            .rename(&tmp, &path)
            .map_err(|e| WalError::io("rename pre-written segment", &tmp, e))?;
        storage
            .sync_dir(dir)
            .map_err(|e| WalError::io("fsync directory", dir, e))?;
        file.map(method, resident)
            .map_err(|e| WalError::io("map segment", &path, e))
    });
    match made {
        Ok(region) => Ok(SegShared::new(seq, path, region, SEGMENT_HEADER_BYTES)),
        Err(e) => {
            let _ = storage.remove(&tmp);
            Err(e)
        }
    }
}

fn fill(
    storage: &dyn Storage,
    tmp: &Path,
    seq: u64,
    segment_bytes: u64,
) -> Result<Box<dyn crate::io::StorageFile>> {
    let file = storage
        .create(tmp)
        .map_err(|e| WalError::io("create segment", tmp, e))?;
    let zeros = vec![0u8; PREWRITE_CHUNK_BYTES];
    let mut offset = 0u64;
    while offset < segment_bytes {
        let n = (segment_bytes - offset).min(PREWRITE_CHUNK_BYTES as u64) as usize;
        write_all_at(&*file, &zeros[..n], offset).map_err(|e| write_error(tmp, offset, e))?;
        offset += n as u64;
    }
    write_all_at(&*file, &encode_segment_header(seq, segment_bytes), 0)
        .map_err(|e| write_error(tmp, 0, e))?;
    file.sync_data()
        .map_err(|e| WalError::io("fdatasync pre-written segment", tmp, e))?;
    Ok(file)
}

fn write_error(path: &Path, offset: u64, e: std::io::Error) -> WalError {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        WalError::DiskFull {
            path: path.to_path_buf(),
            offset,
            source: e,
        }
    } else {
        WalError::io("pre-write segment", path, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        assert_eq!(parse_segment_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000042.wal.tmp"), None);
    }

    #[test]
    fn header_checks() {
        let mut file = encode_segment_header(3, 4096).to_vec();
        file.resize(4096, 0);
        assert_eq!(check_segment_header(&file, 3), Ok(()));
        assert!(
            check_segment_header(&file, 4)
                .unwrap_err()
                .contains("file name says 4")
        );
        assert!(
            check_segment_header(&file[..2048], 3)
                .unwrap_err()
                .contains("header says 4096")
        );
        file[17] ^= 1;
        assert!(check_segment_header(&file, 3).unwrap_err().contains("crc"));
    }
}
