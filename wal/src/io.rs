//! The small IO trait behind every file operation of the WAL, so that tests can inject
//! faults.
//!
//! [`Storage`] is a directory-level interface (open, list, rename, remove, fsync a
//! directory, lock), [`StorageFile`] a file (positioned writes that may be short, reads,
//! `fdatasync`, map) and [`Region`] a shared writable memory map with a flush of a byte
//! range. [`OsStorage`] is the real implementation (std + memmap2 + flock);
//! [`FaultStorage`] is an in-memory one that keeps, per file, the bytes the program sees
//! and the bytes that are durable, and can fail flushes, shorten writes, run out of space
//! and "crash" (keeping durable bytes plus a torn prefix of the rest).
//!
//! Contract: writes may be short (callers loop with [`write_all_at`]); a failed `flush`
//! or `sync_data` guarantees nothing about the range; a region stays valid as long as any
//! `Arc` to it lives.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::options::FlushMethod;

/// A held directory lock; dropping it releases the lock.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// Directory-level file operations.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Fails unless `dir` exists and is a directory.
    fn check_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (created if missing). `Ok(None)`: someone else
    /// holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>>;
    /// Names of the entries of `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates (or truncates) `path` for writing and reading.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Atomically renames `from` to `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// One open file.
pub trait StorageFile: Send + Sync {
    /// Writes some prefix of `buf` at `offset`; returns how many bytes (maybe fewer).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Reads into `buf` from `offset`; returns how many bytes (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Current length.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// `fdatasync`: makes the written data durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Maps the whole file, shared and writable; flushes use `method`. `populate`:
    /// fault every page in now (a map about to be read or appended to through), else
    /// pages fault in as they are touched.
    fn map(&self, method: FlushMethod, populate: bool) -> io::Result<Arc<dyn Region>>;
}

/// A shared, writable memory map of a whole file.
pub trait Region: Send + Sync {
    /// Start of the map. Valid for `len()` bytes while this region lives.
    fn as_ptr(&self) -> *mut u8;
    /// Length of the map in bytes.
    fn len(&self) -> usize;
    /// Whether the map is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes bytes `offset..offset + len` durable.
    fn flush(&self, offset: usize, len: usize) -> io::Result<()>;
    /// Writes `data` at `offset` with a positional write system call (`pwrite`) rather
    /// than through the map; the map sees the bytes at once (one page cache). The default
    /// copies through the map.
    fn pwrite(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        let end = offset.checked_add(data.len()).filter(|&e| e <= self.len());
        if end.is_none() {
            return Err(io::Error::other("write past the end of the map"));
        }
        // SAFETY: in bounds (checked above); callers write only beyond published data.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.as_ptr().add(offset), data.len())
        };
        Ok(())
    }
    /// Hint: take the write faults of `offset..offset + len` now (without changing a
    /// byte), so that the appender does not take them. Best effort; errors are ignored.
    fn prefault(&self, _offset: usize, _len: usize) {}
    /// Hint: the process will not touch this map for a while (a sealed segment, read
    /// again only by a learner's DIFF), so its pages may leave the process's resident
    /// set; they stay in the page cache and fault back in on the next read, with the
    /// same bytes. Never changes what the map reads. Best effort.
    fn release(&self) {}
}

/// A step of [`replace_durably`] that failed: what it was doing, to which path.
#[derive(Debug)]
pub struct ReplaceError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

/// Replaces `dir/name` with `bytes` so that a crash leaves the old or the new file,
/// whole (ZooKeeper's `AtomicFileOutputStream`): writes `dir/name{tmp_suffix}`, makes
/// it durable, renames it over `name`, makes the rename durable. A leftover temporary
/// file is the caller's to ignore.
pub fn replace_durably(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    tmp_suffix: &str,
    bytes: &[u8],
) -> Result<(), ReplaceError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{tmp_suffix}"));
    let fail = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| ReplaceError { op, path, source }
    };
    let file = storage.create(&tmp).map_err(fail("create", &tmp))?;
    write_all_at(&*file, bytes, 0).map_err(fail("write", &tmp))?;
    file.sync_data().map_err(fail("sync", &tmp))?;
    drop(file);
    storage
        .rename(&tmp, &path)
        .map_err(fail("rename over", &path))?;
    storage
        .sync_dir(dir)
        .map_err(fail("sync the directory of", dir))
}

/// Writes all of `buf` at `offset`, looping over short writes and `EINTR`.
pub fn write_all_at(file: &dyn StorageFile, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write returned 0 bytes",
                ));
            }
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a whole file.
pub fn read_all(file: &dyn StorageFile) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.len()?).map_err(|_| io::Error::other("file too large"))?;
    let mut out = vec![0u8; len];
    let done = read_into(file, &mut out)?;
    out.truncate(done);
    Ok(out)
}

/// Reads `file` from its start into `buf` until `buf` is full or the file ends,
/// looping over short reads and `EINTR`; returns the bytes read.
pub fn read_into(file: &dyn StorageFile, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsStorage;

struct OsFile(File);

struct OsRegion {
    map: memmap2::MmapRaw,
    file: File,
    method: FlushMethod,
}

impl Storage for OsStorage {
    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        if std::fs::metadata(dir)?.is_dir() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ))
        }
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // SAFETY: flock on a valid, owned descriptor has no memory effects.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(Box::new(file)));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(err)
        }
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(OsFile(f)))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(OsFile(
            OpenOptions::new().read(true).write(true).open(path)?,
        )))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl StorageFile for OsFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn map(&self, method: FlushMethod, populate: bool) -> io::Result<Arc<dyn Region>> {
        let mut options = memmap2::MmapOptions::new();
        if populate {
            options.populate();
        }
        let map = options.map_raw(&self.0)?;
        Ok(Arc::new(OsRegion {
            map,
            file: self.0.try_clone()?,
            method,
        }))
    }
}

impl Region for OsRegion {
    fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn pwrite(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        if offset
            .checked_add(data.len())
            .is_none_or(|e| e > self.map.len())
        {
            return Err(io::Error::other("write past the end of the segment"));
        }
        self.file.write_all_at(data, offset as u64)
    }

    fn prefault(&self, offset: usize, len: usize) {
        const PAGE: usize = 4096;
        // fdatasync writes every dirty page of the file, and a write fault dirties the
        // page: pre-faulting would make each flush write the zero pages ahead again.
        if self.method == FlushMethod::Fdatasync {
            return;
        }
        let start = offset / PAGE * PAGE;
        let end = offset.saturating_add(len).min(self.map.len());
        if end <= start {
            return;
        }
        // SAFETY: the range lies within the map; MADV_POPULATE_WRITE (Linux 5.14+) only
        // faults pages in writable and never changes their contents, so it is safe while
        // the appender writes to the same pages. Older kernels return EINVAL: ignored.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(start).cast(),
                end - start,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }

    fn release(&self) {
        // SAFETY: MADV_DONTNEED on a shared file mapping only drops this process's page
        // table entries: the pages (dirty ones included, whose state moves to the page
        // cache) stay in the file's page cache, later reads fault the same bytes back
        // in, and flushes (fdatasync, or msync, which syncs the file's range) still
        // write every dirty page. 1.1M records of a 1M-znode tree left 390 MB of sealed
        // segments resident after a restart.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().cast(),
                self.map.len(),
                libc::MADV_DONTNEED,
            );
        }
    }

    fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        match self.method {
            // memmap2 aligns the range down to a page boundary itself.
            FlushMethod::Msync => self.map.flush_range(offset, len),
            FlushMethod::Fdatasync => self.file.sync_data(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------

/// Faults a [`FaultStorage`] injects; shared by all its files and maps.
#[derive(Debug, Default)]
struct Faults {
    /// When non-zero, every write writes at most this many bytes.
    short_write_max: AtomicUsize,
    /// This many of the next flushes/syncs fail with EIO.
    failing_flushes: AtomicU32,
    /// Bytes that may still be written before ENOSPC (`u64::MAX`: unlimited).
    space_left: AtomicU64,
    /// Flushes and syncs that succeeded (to observe that flushes happen).
    flushes: AtomicU64,
    /// Successful flushes/syncs still allowed before every later one fails.
    flushes_until_failure: AtomicU64,
    /// When set, map flushes wait at this gate (tests of overlapping flushes).
    gate: Mutex<Option<Arc<FlushGate>>>,
}

/// Holds map flushes until a test lets each one through, so that overlapping flushes
/// can be made to finish in a chosen order. Flushes are numbered in the order they
/// reach the gate.
#[derive(Debug, Default)]
pub struct FlushGate {
    state: Mutex<GateState>,
    cv: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    arrived: usize,
    released: Vec<usize>,
}

impl FlushGate {
    /// Blocks until `n` flushes have reached the gate.
    pub fn wait_arrived(&self, n: usize) {
        let mut st = lock(&self.state);
        while st.arrived < n {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Lets the `i`-th flush (0-based, in order of arrival) through.
    pub fn release(&self, i: usize) {
        lock(&self.state).released.push(i);
        self.cv.notify_all();
    }

    fn pass(&self) {
        let mut st = lock(&self.state);
        let me = st.arrived;
        st.arrived += 1;
        self.cv.notify_all();
        while !st.released.contains(&me) {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Faults {
    fn take_flush_failure(&self) -> io::Result<()> {
        let failing = self
            .failing_flushes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        let allowed =
            self.flushes_until_failure
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() || allowed.is_err() {
            return Err(io::Error::other("injected flush failure (EIO)"));
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A file of the in-memory file system: what the program sees, and what is durable.
#[derive(Default)]
struct MemFile {
    /// Contents as seen through `read_at` (the "page cache"), when not mapped.
    cache: Mutex<Vec<u8>>,
    /// Contents that survive a crash.
    durable: Mutex<Vec<u8>>,
    /// Once mapped, the map holds the authoritative contents.
    region: Mutex<Option<Arc<MemRegion>>>,
}

struct MemRegion {
    ptr: *mut u8,
    len: usize,
    file: Arc<MemFile>,
    faults: Arc<Faults>,
}

// SAFETY: the buffer is a plain heap allocation owned by the region; concurrent access is
// governed by the WAL's publication protocol (writers only write beyond the published
// end, flushes only read below it), exactly as for a real shared memory map.
unsafe impl Send for MemRegion {}
// SAFETY: see above.
unsafe impl Sync for MemRegion {}

impl Drop for MemRegion {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from `Box::into_raw` of a boxed slice in `map`.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

impl MemRegion {
    fn contents(&self) -> Vec<u8> {
        // SAFETY: the allocation is `len` bytes and alive while `self` is.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }.to_vec()
    }
}

impl Region for MemRegion {
    fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
    fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        let gate = lock(&self.faults.gate).clone();
        if let Some(gate) = gate {
            gate.pass();
        }
        self.faults.take_flush_failure()?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| io::Error::other("flush range out of the map"))?;
        // SAFETY: in bounds (checked above); the range is published and not being written.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr.add(offset), end - offset) };
        let mut durable = lock(&self.file.durable);
        if durable.len() < end {
            durable.resize(end, 0);
        }
        durable[offset..end].copy_from_slice(bytes);
        Ok(())
    }
}

struct MemHandle {
    file: Arc<MemFile>,
    faults: Arc<Faults>,
}

impl StorageFile for MemHandle {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if lock(&self.file.region).is_some() {
            return Err(io::Error::other(
                "FaultStorage: write_at on a mapped file is not modelled",
            ));
        }
        let short = self.faults.short_write_max.load(Ordering::SeqCst);
        let n = if short == 0 {
            buf.len()
        } else {
            buf.len().min(short)
        };
        let took =
            self.faults
                .space_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(n as u64)
                });
        if took.is_err() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let mut cache = lock(&self.file.cache);
        let off = offset as usize;
        if cache.len() < off + n {
            cache.resize(off + n, 0);
        }
        cache[off..off + n].copy_from_slice(&buf[..n]);
        Ok(n)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let contents = self.file.contents();
        let off = (offset as usize).min(contents.len());
        let n = buf.len().min(contents.len() - off);
        buf[..n].copy_from_slice(&contents[off..off + n]);
        Ok(n)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.contents().len() as u64)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.take_flush_failure()?;
        *lock(&self.file.durable) = self.file.contents();
        Ok(())
    }
    fn map(&self, _method: FlushMethod, _populate: bool) -> io::Result<Arc<dyn Region>> {
        let mut slot = lock(&self.file.region);
        if let Some(region) = slot.as_ref() {
            return Ok(region.clone());
        }
        let boxed = lock(&self.file.cache).clone().into_boxed_slice();
        let len = boxed.len();
        let ptr = Box::into_raw(boxed) as *mut u8;
        let region = Arc::new(MemRegion {
            ptr,
            len,
            file: self.file.clone(),
            faults: self.faults.clone(),
        });
        *slot = Some(region.clone());
        Ok(region)
    }
}

impl MemFile {
    fn contents(&self) -> Vec<u8> {
        match lock(&self.region).as_ref() {
            Some(region) => region.contents(),
            None => lock(&self.cache).clone(),
        }
    }
}

/// An in-memory file system that injects faults; `Clone` shares the same state.
#[derive(Clone, Default)]
pub struct FaultStorage {
    files: Arc<Mutex<BTreeMap<PathBuf, Arc<MemFile>>>>,
    dirs: Arc<Mutex<Vec<PathBuf>>>,
    locks: Arc<Mutex<Vec<PathBuf>>>,
    faults: Arc<Faults>,
}

impl fmt::Debug for FaultStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultStorage")
            .field("files", &lock(&self.files).keys().collect::<Vec<_>>())
            .finish()
    }
}

struct MemLock {
    locks: Arc<Mutex<Vec<PathBuf>>>,
    path: PathBuf,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        lock(&self.locks).retain(|p| p != &self.path);
    }
}

impl FaultStorage {
    /// An empty file system with one directory, `dir`.
    pub fn with_dir(dir: &Path) -> Self {
        let s = FaultStorage::default();
        s.faults.space_left.store(u64::MAX, Ordering::SeqCst);
        s.faults
            .flushes_until_failure
            .store(u64::MAX, Ordering::SeqCst);
        lock(&s.dirs).push(dir.to_path_buf());
        s
    }

    /// From now on every write writes at most `bytes` (0: no limit).
    pub fn set_short_write_max(&self, bytes: usize) {
        self.faults.short_write_max.store(bytes, Ordering::SeqCst);
    }

    /// The next `n` flushes (map flushes and `sync_data`) fail with an IO error.
    pub fn fail_next_flushes(&self, n: u32) {
        self.faults.failing_flushes.store(n, Ordering::SeqCst);
    }

    /// The next `n` flushes and syncs (directory syncs included) succeed; every later one
    /// fails, as if the machine died right after the `n`-th.
    pub fn fail_flushes_after(&self, n: u64) {
        self.faults.flushes_until_failure.store(n, Ordering::SeqCst);
    }

    /// From now on every map flush waits at the returned gate until released.
    pub fn gate_flushes(&self) -> Arc<FlushGate> {
        let gate = Arc::new(FlushGate::default());
        *lock(&self.faults.gate) = Some(gate.clone());
        gate
    }

    /// Only `bytes` more bytes may be written; then writes fail with ENOSPC.
    pub fn set_space_left(&self, bytes: u64) {
        self.faults.space_left.store(bytes, Ordering::SeqCst);
    }

    /// Flushes and syncs that succeeded so far.
    pub fn flush_count(&self) -> u64 {
        self.faults.flushes.load(Ordering::SeqCst)
    }

    /// The bytes of `path` as the program sees them now.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        lock(&self.files).get(path).map(|f| f.contents())
    }

    /// Replaces the contents of `path` (as if written and synced by someone else).
    pub fn set_contents(&self, path: &Path, bytes: Vec<u8>) {
        let file = Arc::new(MemFile::default());
        *lock(&file.durable) = bytes.clone();
        *lock(&file.cache) = bytes;
        lock(&self.files).insert(path.to_path_buf(), file);
    }

    /// Simulates a power loss: returns a new file system holding, per file, the durable
    /// bytes plus a prefix of the not-yet-durable ones (from the first byte that differs),
    /// of a length drawn from `tear(path, span)`, which returns how many of the file's
    /// `span` dirty bytes reached the disk (0: lose everything unflushed; `span`: keep
    /// everything). This models a disk that writes back in order and tears at any byte.
    /// Locks are released (the process died). Directory entries are modelled as durable
    /// at once (the WAL fsyncs its directory after every change anyway).
    pub fn crash(&self, mut tear: impl FnMut(&Path, usize) -> usize) -> FaultStorage {
        let new = FaultStorage::with_dir(Path::new("/"));
        *lock(&new.dirs) = lock(&self.dirs).clone();
        for (path, file) in lock(&self.files).iter() {
            let now = file.contents();
            let mut disk = lock(&file.durable).clone();
            let first = (0..now.len()).find(|&i| disk.get(i) != Some(&now[i]));
            if let Some(first) = first {
                let last = (first..now.len())
                    .rev()
                    .find(|&i| disk.get(i) != Some(&now[i]))
                    .unwrap_or(first);
                let span = last + 1 - first;
                let keep = tear(path, span).min(span);
                if disk.len() < first + keep {
                    disk.resize(first + keep, 0);
                }
                disk[first..first + keep].copy_from_slice(&now[first..first + keep]);
            }
            new.set_contents(path, disk);
        }
        new
    }

    fn file(&self, path: &Path) -> io::Result<Arc<MemFile>> {
        lock(&self.files)
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn handle(&self, file: Arc<MemFile>) -> Box<dyn StorageFile> {
        Box::new(MemHandle {
            file,
            faults: self.faults.clone(),
        })
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if lock(&self.dirs).iter().any(|d| d == parent) => Ok(()),
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }
}

impl Storage for FaultStorage {
    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        if lock(&self.dirs).iter().any(|d| d == dir) {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::NotFound))
        }
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        self.check_parent(path)?;
        let mut locks = lock(&self.locks);
        if locks.iter().any(|p| p == path) {
            return Ok(None);
        }
        locks.push(path.to_path_buf());
        Ok(Some(Box::new(MemLock {
            locks: self.locks.clone(),
            path: path.to_path_buf(),
        })))
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check_dir(dir)?;
        let files = lock(&self.files);
        let names = files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(String::from));
        Ok(names.collect())
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.check_parent(path)?;
        let file = Arc::new(MemFile::default());
        lock(&self.files).insert(path.to_path_buf(), file.clone());
        Ok(self.handle(file))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(self.handle(self.file(path)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check_parent(to)?;
        let mut files = lock(&self.files);
        let file = files
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        files.insert(to.to_path_buf(), file);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.files)
            .remove(path)
            .map(drop)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check_dir(dir)?;
        self.faults.take_flush_failure()
    }
}

/// Locks a mutex, ignoring poisoning: the protected data stays consistent because no
/// critical section here can panic half-way through an update.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
