//! Snapshots: written atomically, tagged with their zxid, checksummed.
//!
//! A snapshot is a file `snap-<zxid:016x>.snap`:
//! ```text
//!  0          8       16           24            28            32
//!  +----------+-------+------------+-------------+-------------+-------------+
//!  | CKSNAP01 | zxid  | payload_len| payload crc | header crc  | payload ... |
//!  +----------+-------+------------+-------------+-------------+-------------+
//! ```
//! (crc32c; the header crc covers bytes `0..28`). [`SnapshotStore::write`] writes
//! `<name>.tmp`, fsyncs it, renames it into place and fsyncs the directory, so a crash
//! leaves either the complete snapshot or a temp file that is ignored and cleaned up.
//! [`SnapshotStore::load_newest`] returns the newest snapshot that validates, skipping
//! (with a warning) any that do not, so a damaged newest snapshot falls back to the
//! previous one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, WalError};
use crate::io::{OsStorage, Storage, write_all_at};
use crate::options::SNAPSHOTS_RETAINED_DEFAULT;

/// Magic bytes at the start of every snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CKSNAP01";
/// Size of the snapshot header.
pub const SNAPSHOT_HEADER_BYTES: usize = 32;
/// Alignment of a [`SnapshotFile`]'s payload in memory, so that an archive (rkyv) is
/// read in place.
pub const SNAPSHOT_PAYLOAD_ALIGN: usize = 16;
const _: () = assert!(
    SNAPSHOT_HEADER_BYTES.is_multiple_of(SNAPSHOT_PAYLOAD_ALIGN),
    "a payload aligned in memory starts a whole header after an aligned file start"
);
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";

/// A snapshot file read whole and validated ([`SnapshotStore::read_file`]).
pub struct SnapshotFile {
    bytes: FileBytes,
}

enum FileBytes {
    /// The file mapped (page-aligned, so the payload is aligned).
    Mapped(Arc<dyn crate::io::Region>),
    /// The file read into `buf` from `at`, where its payload is aligned.
    Read { buf: Vec<u8>, at: usize },
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("bytes", &self.whole().len())
            .finish()
    }
}

impl SnapshotFile {
    /// The whole file, header included.
    fn whole(&self) -> &[u8] {
        match &self.bytes {
            // SAFETY: the region maps `len()` bytes for as long as it lives (it lives
            // in `self`). A snapshot file is written once under a temporary name and
            // renamed into place; nothing writes or truncates it afterwards, and this
            // server only reads through the map.
            FileBytes::Mapped(r) => unsafe { std::slice::from_raw_parts(r.as_ptr(), r.len()) },
            FileBytes::Read { buf, at } => &buf[*at..],
        }
    }

    /// The bytes the snapshot was written with, aligned to [`SNAPSHOT_PAYLOAD_ALIGN`].
    pub fn payload(&self) -> &[u8] {
        &self.whole()[SNAPSHOT_HEADER_BYTES..]
    }
}

/// Reads all of `file` into a fresh buffer, placed so that its payload is aligned.
fn read_aligned(file: &dyn crate::io::StorageFile) -> std::io::Result<FileBytes> {
    let len = usize::try_from(file.len()?).map_err(|_| std::io::Error::other("too large"))?;
    // Zeroed by the allocator's fresh pages, not by a pass over them.
    let mut buf = vec![0u8; len + SNAPSHOT_PAYLOAD_ALIGN - 1];
    let at = buf.as_ptr().align_offset(SNAPSHOT_PAYLOAD_ALIGN);
    debug_assert!(
        at < SNAPSHOT_PAYLOAD_ALIGN,
        "bytes are aligned within ALIGN - 1"
    );
    let done = crate::io::read_into(file, &mut buf[at..at + len])?;
    buf.truncate(at + done);
    Ok(FileBytes::Read { buf, at })
}

/// The snapshots in one directory.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
}

/// File name of the snapshot at `zxid`.
pub fn snapshot_file_name(zxid: u64) -> String {
    format!("snap-{zxid:016x}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("snap-")?.strip_suffix(SUFFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Encodes a snapshot file.
pub fn encode_snapshot(zxid: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = header(zxid, payload.len() as u64, crc32c::crc32c(payload)).to_vec();
    out.reserve(payload.len());
    out.extend_from_slice(payload);
    out
}

fn header(zxid: u64, len: u64, payload_crc: u32) -> [u8; SNAPSHOT_HEADER_BYTES] {
    let mut h = [0u8; SNAPSHOT_HEADER_BYTES];
    h[0..8].copy_from_slice(SNAPSHOT_MAGIC);
    h[8..16].copy_from_slice(&zxid.to_le_bytes());
    h[16..24].copy_from_slice(&len.to_le_bytes());
    h[24..28].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&h[..28]);
    h[28..32].copy_from_slice(&header_crc.to_le_bytes());
    h
}

/// A snapshot written piece by piece as it arrives (a learner receiving its leader's
/// image), so it never has to be whole in memory: [`SnapshotWriter::append`] the
/// payload in order, then [`SnapshotWriter::finish`] writes the header and puts the
/// file in place as [`SnapshotStore::write`] does (fdatasync, rename, directory
/// fsync). Dropped unfinished, it removes its temp file.
pub struct SnapshotWriter {
    zxid: u64,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    file: Option<Box<dyn crate::io::StorageFile>>,
    len: u64,
    crc: u32,
}

impl SnapshotWriter {
    /// Appends the next payload bytes.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self
            .file
            .as_deref()
            .expect("an unfinished writer has its file");
        write_all_at(file, bytes, SNAPSHOT_HEADER_BYTES as u64 + self.len)
            .map_err(|e| WalError::io("write snapshot", &self.tmp, e))?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Payload bytes appended so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the header and makes the snapshot durable under its name.
    pub fn finish(mut self) -> Result<PathBuf> {
        let file = self.file.take().expect("finished once");
        let h = header(self.zxid, self.len, self.crc);
        write_all_at(&*file, &h, 0).map_err(|e| WalError::io("write snapshot", &self.tmp, e))?;
        file.sync_data()
            .map_err(|e| WalError::io("fdatasync snapshot", &self.tmp, e))?;
        drop(file);
        self.storage
            .rename(&self.tmp, &self.path)
            .map_err(|e| WalError::io("rename snapshot", &self.tmp, e))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| WalError::io("fsync directory", &self.dir, e))?;
        Ok(self.path.clone())
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = self.storage.remove(&self.tmp);
        }
    }
}

/// Validates a snapshot file; returns its payload.
pub fn decode_snapshot(bytes: &[u8], zxid: u64) -> std::result::Result<&[u8], String> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let crc_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if &bytes[0..8] != SNAPSHOT_MAGIC {
        return Err("bad magic".into());
    }
    if crc_at(28) != crc32c::crc32c(&bytes[..28]) {
        return Err("header crc mismatch".into());
    }
    if field(8) != zxid {
        return Err(format!(
            "header says zxid {:#x}, file name says {zxid:#x}",
            field(8)
        ));
    }
    let payload = &bytes[SNAPSHOT_HEADER_BYTES..];
    if field(16) != payload.len() as u64 {
        return Err(format!(
            "header says {} payload bytes, file has {}",
            field(16),
            payload.len()
        ));
    }
    if crc_at(24) != crc32c::crc32c(payload) {
        return Err("payload crc mismatch".into());
    }
    Ok(payload)
}

impl SnapshotStore {
    /// Opens the snapshot directory on the real file system (it must exist).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        SnapshotStore::open_with(dir, Arc::new(OsStorage))
    }

    /// Opens through `storage`; removes temp files left by an interrupted write.
    pub fn open_with(dir: impl AsRef<Path>, storage: Arc<dyn Storage>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        storage.check_dir(&dir).map_err(|e| WalError::Dir {
            path: dir.clone(),
            reason: e.to_string(),
            source: Some(e),
        })?;
        let store = SnapshotStore { dir, storage };
        for name in store.names()? {
            if name.ends_with(TMP_SUFFIX) {
                let path = store.dir.join(&name);
                tracing::warn!(path = %path.display(), "removing a snapshot whose write was cut short");
                store
                    .storage
                    .remove(&path)
                    .map_err(|e| WalError::io("remove temp snapshot", &path, e))?;
            }
        }
        Ok(store)
    }

    fn names(&self) -> Result<Vec<String>> {
        self.storage
            .list_dir(&self.dir)
            .map_err(|e| WalError::io("list directory", &self.dir, e))
    }

    /// Zxids of the snapshot files present, newest first (valid or not).
    pub fn list(&self) -> Result<Vec<u64>> {
        let mut zxids: Vec<u64> = self.names()?.iter().filter_map(|n| parse_name(n)).collect();
        zxids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(zxids)
    }

    /// Path of the snapshot at `zxid`.
    pub fn path(&self, zxid: u64) -> PathBuf {
        self.dir.join(snapshot_file_name(zxid))
    }

    /// Writes a snapshot atomically: temp file, fdatasync, rename, fsync of the directory.
    pub fn write(&self, zxid: u64, payload: &[u8]) -> Result<PathBuf> {
        let mut w = self.writer(zxid)?;
        w.append(payload)?;
        w.finish()
    }

    /// Starts a snapshot at `zxid` written piece by piece ([`SnapshotWriter`]).
    pub fn writer(&self, zxid: u64) -> Result<SnapshotWriter> {
        let tmp = self.dir.join(format!("snap-{zxid:016x}{TMP_SUFFIX}"));
        let file = self
            .storage
            .create(&tmp)
            .map_err(|e| WalError::io("create snapshot", &tmp, e))?;
        Ok(SnapshotWriter {
            zxid,
            path: self.path(zxid),
            tmp,
            dir: self.dir.clone(),
            storage: self.storage.clone(),
            file: Some(file),
            len: 0,
            crc: 0,
        })
    }

    /// Deletes the snapshot at `zxid` (one that turned out not to load).
    pub fn remove(&self, zxid: u64) -> Result<()> {
        let path = self.path(zxid);
        self.storage
            .remove(&path)
            .map_err(|e| WalError::io("remove snapshot", &path, e))
    }

    /// Reads and validates the snapshot at `zxid`.
    pub fn read(&self, zxid: u64) -> Result<Vec<u8>> {
        self.read_file(zxid).map(|f| f.payload().to_vec())
    }

    /// The snapshot at `zxid`, validated, with its payload aligned in memory
    /// ([`SNAPSHOT_PAYLOAD_ALIGN`]) so that it is decoded in place: the file mapped
    /// (no copy: a 1M-znode snapshot is ~260 MB, and reading it cost 0.16 s with the
    /// page faults of a fresh buffer), else, where it cannot be mapped, read once.
    pub fn read_file(&self, zxid: u64) -> Result<SnapshotFile> {
        let path = self.path(zxid);
        let file = self
            .storage
            .open(&path)
            .map_err(|e| WalError::io("open snapshot", &path, e))?;
        let bytes = match file.map(crate::options::FlushMethod::Msync, true) {
            Ok(region) if region.len() >= SNAPSHOT_HEADER_BYTES => FileBytes::Mapped(region),
            _ => read_aligned(&*file).map_err(|e| WalError::io("read snapshot", &path, e))?,
        };
        let f = SnapshotFile { bytes };
        match decode_snapshot(f.whole(), zxid) {
            Ok(payload) => {
                debug_assert!(
                    (payload.as_ptr() as usize).is_multiple_of(SNAPSHOT_PAYLOAD_ALIGN),
                    "the payload is aligned"
                );
                Ok(f)
            }
            Err(reason) => Err(WalError::BadSnapshot { path, reason }),
        }
    }

    /// The newest snapshot that validates, as `(zxid, file)`; invalid newer ones are
    /// skipped with a warning. `None` if there is no valid snapshot.
    pub fn load_newest(&self) -> Result<Option<(u64, SnapshotFile)>> {
        for zxid in self.list()? {
            match self.read_file(zxid) {
                Ok(payload) => return Ok(Some((zxid, payload))),
                Err(e) => tracing::warn!(error = %e, "skipping an invalid snapshot"),
            }
        }
        Ok(None)
    }

    /// Keeps the newest `n` snapshot files (at least one; see
    /// [`SNAPSHOTS_RETAINED_DEFAULT`]) and deletes the older ones. Returns how many went.
    pub fn retain(&self, n: usize) -> Result<usize> {
        let zxids = self.list()?;
        let doomed = zxids.iter().skip(n.max(1));
        let mut removed = 0;
        for &zxid in doomed {
            let path = self.path(zxid);
            self.storage
                .remove(&path)
                .map_err(|e| WalError::io("remove snapshot", &path, e))?;
            removed += 1;
        }
        if removed > 0 {
            self.storage
                .sync_dir(&self.dir)
                .map_err(|e| WalError::io("fsync directory", &self.dir, e))?;
        }
        Ok(removed)
    }
}

const _: () = assert!(SNAPSHOTS_RETAINED_DEFAULT >= 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode() {
        let bytes = encode_snapshot(5, b"tree");
        assert_eq!(decode_snapshot(&bytes, 5), Ok(&b"tree"[..]));
        assert!(decode_snapshot(&bytes, 6).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_snapshot(&bad, 5).is_err(), "flip at {i} undetected");
        }
        assert!(decode_snapshot(&bytes[..bytes.len() - 1], 5).is_err());
        assert_eq!(parse_name(&snapshot_file_name(0xabc)), Some(0xabc));
    }

    #[test]
    fn a_snapshot_written_in_pieces_reads_back_as_one_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut w = store.writer(9).unwrap();
        for piece in payload.chunks(4096) {
            w.append(piece).unwrap();
        }
        assert_eq!(w.len(), payload.len() as u64);
        w.finish().unwrap();
        assert_eq!(store.read(9).unwrap(), payload);
        let whole = std::fs::read(store.path(9)).unwrap();
        assert_eq!(
            whole,
            encode_snapshot(9, &payload),
            "the same file, byte for byte"
        );
        // An unfinished writer leaves nothing behind.
        let mut w = store.writer(10).unwrap();
        w.append(b"half").unwrap();
        drop(w);
        assert_eq!(store.list().unwrap(), [9]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        store.remove(9).unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
