//! A pass-through FUSE filesystem whose fsyncs can be made to stall or fail with EIO.
//!
//! The fault nemesis puts each database server's data directory on a [`FaultFs`]: the
//! server reads and writes `mountpoint`, every operation is passed through to the
//! `backing` directory, and only `fsync`, `fdatasync` and a directory's `fsync` (FUSE
//! `FSYNC` / `FSYNCDIR`) obey the current [`DiskFault`]:
//!
//! - [`DiskFault::Healthy`]: the backing file is `fdatasync`ed (datasync) or `fsync`ed;
//! - [`DiskFault::Stall`]: the call blocks until the fault changes; it then syncs (if
//!   the new fault is `Healthy`) or fails with EIO (if it is `Eio`);
//! - [`DiskFault::Eio`]: the call fails with EIO without syncing anything.
//!
//! Writes, reads, renames and the rest are never faulted: they reach the backing
//! directory's page cache at once (no FUSE writeback cache), so a failed or stalled
//! fsync is, as on a real disk, the only point where durability is in question.
//!
//! Invariants:
//!
//! - a stalled fsync never holds a FUSE session thread: its reply (and an `Arc` of the
//!   backing file) moves to a parked worker thread, so other operations go on while it
//!   waits. At most [`STALLED_FSYNCS_MAX`] fsyncs are parked; beyond that an fsync in
//!   `Stall` fails with EIO at once (counted in [`FaultFs::failed`]) rather than spawn
//!   threads without bound;
//! - [`FaultFs::stalled`] counts fsyncs parked right now; [`FaultFs::failed`] counts
//!   fsyncs answered EIO (by `Eio`, by a stall released into `Eio`, or by the cap);
//! - dropping a [`FaultFs`] releases every parked fsync as `Healthy` (they sync and
//!   succeed), lazily detaches the mount, aborts the FUSE connection (so processes that
//!   still hold files there get `ENOTCONN` instead of pinning the session) and joins the
//!   session thread. It does not hang on open files.
//!
//! The kernel side, which the nemesis should know about:
//!
//! - Linux holds the file's inode lock for the whole of a FUSE fsync, so while an fsync
//!   of a file is stalled, writes and truncates of *that* file wait behind it (reads,
//!   `stat` and other files do not). A stalled directory fsync likewise holds up creates,
//!   unlinks and renames in that directory;
//! - a process blocked in a stalled fsync sleeps uninterruptibly (state D) once the
//!   request has reached us: even SIGKILL takes effect only when the fsync is answered,
//!   that is after [`FaultFs::set`] to `Healthy` or `Eio`, or after the drop.
//!
//! Inodes are path based: inode 1 is the backing directory, every other inode number
//! maps to a backing path (kept right across rename and unlink) and lives until the
//! kernel forgets it. Attribute and entry TTLs are zero, so the kernel asks again on
//! every use and never serves stale metadata. Files the client opens with `O_DIRECT`
//! (glommio's `DmaFile`) are answered `FOPEN_DIRECT_IO`: the kernel then sends each read
//! and write straight through, bypassing its page cache, as the client asked.
//!
//! Mounting needs root: the filesystem is mounted with a direct `mount(2)` of a
//! `/dev/fuse` descriptor (no fusermount, no libfuse) and served by `fuser`.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, Session, SessionACL, TimeOrNow, WriteFlags,
};

/// fsyncs parked in `Stall` at once (one thread each); beyond this an fsync in `Stall`
/// fails with EIO at once. A database has a handful of syncing threads, so hitting the
/// cap means something loops on fsync, and threads without bound would hurt the host.
pub const STALLED_FSYNCS_MAX: usize = 256;

/// FUSE session threads reading `/dev/fuse`. Stalled fsyncs do not hold them, but a
/// healthy fsync of a busy backing disk does, for as long as it takes; several threads
/// keep reads, writes and lookups of other files flowing meanwhile.
const SESSION_THREADS: usize = 8;

/// Attribute and entry cache lifetime given to the kernel. Zero: the kernel asks on
/// every use, so it never sees sizes or names that changed underneath (the cost, one
/// extra round trip per path component, does not matter for fault tests).
const TTL: Duration = Duration::ZERO;

/// Stack of a parked-fsync thread: it only waits, calls fsync and writes a reply.
const STALL_THREAD_STACK: usize = 128 * 1024;

/// How long drop waits for released fsyncs to sync and reply, and then for the session
/// thread to end, before giving up on them (a backing disk that does not answer must not
/// hang the nemesis; the threads are then left detached).
const DROP_WAIT: Duration = Duration::from_secs(10);

/// Polling step while drop waits for the session thread (`JoinHandle` has no timed join).
const JOIN_POLL: Duration = Duration::from_millis(5);

/// Where fusectl is normally mounted; each FUSE connection has a directory there named
/// after its device number, whose `abort` file ends the connection.
const FUSECTL_DIR: &str = "/sys/fs/fuse/connections";

/// Open flags never passed to the backing file: the kernel gives an offset with every
/// read and write (so `O_APPEND` would misplace them), truncates through `setattr` (not
/// `O_TRUNC`), and our buffers are not aligned for `O_DIRECT` (the client's `O_DIRECT`
/// is honoured by the kernel, see [`fopen_flags`]). `open` also drops `O_CREAT` and
/// `O_EXCL`: creation comes through `create`, which keeps them.
const STRIPPED_OPEN_FLAGS: i32 = libc::O_DIRECT | libc::O_APPEND | libc::O_TRUNC | libc::O_NOCTTY;

/// What fsyncs do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// fsync syncs the backing file and succeeds (unless the backing disk fails).
    Healthy,
    /// fsync blocks until the fault changes.
    Stall,
    /// fsync fails with EIO without syncing.
    Eio,
}

/// A mounted fault-injecting pass-through filesystem; dropping it unmounts.
pub struct FaultFs {
    control: Arc<Control>,
    mountpoint: PathBuf,
    /// `O_PATH` descriptor of the mount's root: it keeps the superblock, and with it the
    /// FUSE connection number, alive until drop has aborted the connection, so the abort
    /// can never hit a newer mount that reused the number.
    pin: Option<OwnedFd>,
    /// The FUSE connection's device number (its fusectl directory name), if known.
    connection: Option<u64>,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for FaultFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultFs")
            .field("mountpoint", &self.mountpoint)
            .field("fault", &self.fault())
            .field("stalled", &self.stalled())
            .field("failed", &self.failed())
            .finish()
    }
}

impl FaultFs {
    /// Mounts a pass-through of directory `backing` (created if missing) at `mountpoint`
    /// (created if missing). Root needed (direct mount(2) of a `/dev/fuse` descriptor;
    /// no fusermount, no libfuse).
    pub fn mount(backing: &Path, mountpoint: &Path) -> Result<FaultFs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("faultfs: mounting needs root (mount(2) of /dev/fuse)".into());
        }
        let prepare = |path: &Path, what: &str| {
            fs::create_dir_all(path)
                .and_then(|()| path.canonicalize())
                .map_err(|e| format!("faultfs: {what} {}: {e}", path.display()))
        };
        let backing = prepare(backing, "backing directory")?;
        let mountpoint = prepare(mountpoint, "mountpoint")?;
        // Serving a path through itself would deadlock: our threads would wait on the
        // very requests they are answering.
        if backing.starts_with(&mountpoint) || mountpoint.starts_with(&backing) {
            return Err(format!(
                "faultfs: backing {} and mountpoint {} must not contain each other",
                backing.display(),
                mountpoint.display()
            ));
        }
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(|e| format!("faultfs: open /dev/fuse: {e}"))?;
        let c_mountpoint = c_path(&mountpoint).map_err(|e| format!("faultfs: {e}"))?;
        // No default_permissions (root needs no kernel permission checks); allow_other
        // so servers running under another uid can use it too.
        let options = format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            device.as_raw_fd()
        );
        let options = CString::new(options).expect("mount options hold no NUL");
        // SAFETY: all pointers are NUL-terminated strings that outlive the call.
        let mounted = unsafe {
            libc::mount(
                c"ckfaultfs".as_ptr(),
                c_mountpoint.as_ptr(),
                c"fuse.ckfaultfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            )
        };
        if mounted != 0 {
            return Err(format!(
                "faultfs: mount at {}: {}",
                mountpoint.display(),
                io::Error::last_os_error()
            ));
        }
        let control = Arc::new(Control::default());
        let filesystem = PassFs::new(backing, Arc::clone(&control));
        let mut config = Config::default();
        config.n_threads = Some(SESSION_THREADS);
        config.acl = SessionACL::All;
        let session = Session::from_fd(filesystem, OwnedFd::from(device), SessionACL::All, config)
            .and_then(Session::spawn);
        let session = match session {
            Ok(session) => session,
            Err(e) => {
                // The failed session closed /dev/fuse, which ended the connection.
                detach(&c_mountpoint);
                return Err(format!(
                    "faultfs: FUSE session at {}: {e}",
                    mountpoint.display()
                ));
            }
        };
        // Opening the mountpoint O_PATH walks into the mount's root without any request;
        // fstat asks the (now running) session for its attributes.
        // SAFETY: c_mountpoint is a NUL-terminated path.
        let raw = unsafe {
            libc::open(
                c_mountpoint.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        // SAFETY: a non-negative descriptor from open is ours alone.
        let pin = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) });
        let connection = pin
            .as_ref()
            .and_then(|pin| File::from(pin.try_clone().ok()?).metadata().ok())
            .map(|meta| connection_id(meta.dev()));
        Ok(FaultFs {
            control,
            mountpoint,
            pin,
            connection,
            session: Some(session),
        })
    }

    /// Sets what fsyncs do from now on; a change away from `Stall` releases parked ones.
    pub fn set(&self, fault: DiskFault) {
        self.control.gate().fault = fault;
        self.control.changed.notify_all();
    }

    /// What fsyncs do now.
    pub fn fault(&self) -> DiskFault {
        self.control.gate().fault
    }

    /// fsync/fsyncdir calls that are blocked in Stall right now.
    pub fn stalled(&self) -> usize {
        self.control.gate().stalled
    }

    /// fsync/fsyncdir calls answered EIO so far.
    pub fn failed(&self) -> u64 {
        self.control.failed.load(Ordering::Relaxed)
    }

    /// Where the pass-through is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        // Released first, while the connection is up, so parked fsyncs succeed rather
        // than see the abort below.
        self.set(DiskFault::Healthy);
        self.control.wait_workers(DROP_WAIT);
        if let Ok(c_mountpoint) = c_path(&self.mountpoint) {
            // Detach only if the mount there is still ours (someone may have unmounted
            // it and mounted something else): same device as our connection.
            // (Unknown connection, or a stat that fails, as on a dead connection: the
            // mount there is ours as far as we can tell.)
            let ours = match (self.connection, fs::metadata(&self.mountpoint)) {
                (Some(connection), Ok(meta)) => connection_id(meta.dev()) == connection,
                _ => true,
            };
            if ours {
                detach(&c_mountpoint);
            }
        }
        // Lazy detach leaves the connection alive while any process has a file open
        // there, and the session threads would read /dev/fuse forever: abort it.
        if let Some(connection) = self.connection {
            abort_connection(connection);
        }
        drop(self.pin.take());
        if let Some(session) = self.session.take() {
            let deadline = Instant::now() + DROP_WAIT;
            while !session.guard.is_finished() && Instant::now() < deadline {
                thread::sleep(JOIN_POLL);
            }
            if session.guard.is_finished() {
                let _ = session.join();
            } else {
                // Dropping the handle detaches the thread: better a leaked thread than a
                // hung nemesis.
                eprintln!(
                    "faultfs: FUSE session at {} did not end within {DROP_WAIT:?}; left running",
                    self.mountpoint.display()
                );
            }
        }
    }
}

/// The fault state shared by the [`FaultFs`] handle and the filesystem's threads.
#[derive(Default)]
struct Control {
    gate: Mutex<Gate>,
    /// Signalled when `fault` changes or a parked-fsync worker ends.
    changed: Condvar,
    failed: AtomicU64,
}

struct Gate {
    fault: DiskFault,
    /// fsyncs waiting for `fault` to leave `Stall`.
    stalled: usize,
    /// Parked-fsync threads alive (waiting, or syncing and replying after release).
    workers: usize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            fault: DiskFault::Healthy,
            stalled: 0,
            workers: 0,
        }
    }
}

impl Control {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        // A panicking worker cannot leave the counters half-updated (plain integer
        // stores), so a poisoned lock is still consistent.
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, reply: ReplyEmpty) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        reply.error(Errno::EIO);
    }

    /// Waits until no parked-fsync worker is alive, or `timeout` passes.
    fn wait_workers(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut gate = self.gate();
        while gate.workers > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            gate = self
                .changed
                .wait_timeout(gate, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Answers an fsync of `file` as the current fault says.
    fn fsync(self: &Arc<Self>, file: Arc<File>, datasync: bool, reply: ReplyEmpty) {
        let mut gate = self.gate();
        match gate.fault {
            DiskFault::Healthy => {
                drop(gate);
                sync_reply(&file, datasync, reply);
            }
            DiskFault::Eio => {
                drop(gate);
                self.fail(reply);
            }
            DiskFault::Stall if gate.stalled >= STALLED_FSYNCS_MAX => {
                drop(gate);
                self.fail(reply);
            }
            DiskFault::Stall => {
                gate.stalled += 1;
                gate.workers += 1;
                drop(gate);
                let control = Arc::clone(self);
                let spawned = thread::Builder::new()
                    .name("ckfaultfs-stall".into())
                    .stack_size(STALL_THREAD_STACK)
                    .spawn(move || control.park(file, datasync, reply));
                if spawned.is_err() {
                    // The closure, and the reply in it, are gone: fuser answers a dropped
                    // reply with EIO, so count it as failed.
                    let mut gate = self.gate();
                    gate.stalled -= 1;
                    gate.workers -= 1;
                    drop(gate);
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    self.changed.notify_all();
                }
            }
        }
    }

    /// A parked fsync: waits out `Stall`, then syncs or fails as the new fault says.
    fn park(&self, file: Arc<File>, datasync: bool, reply: ReplyEmpty) {
        let mut gate = self.gate();
        while gate.fault == DiskFault::Stall {
            gate = self
                .changed
                .wait(gate)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let fault = gate.fault;
        gate.stalled -= 1;
        drop(gate);
        if fault == DiskFault::Eio {
            self.fail(reply);
        } else {
            sync_reply(&file, datasync, reply);
        }
        // Counted down only after the reply is sent, so drop (waiting for workers == 0)
        // knows every released fsync has been answered before it aborts the connection.
        self.gate().workers -= 1;
        self.changed.notify_all();
    }
}

fn sync_reply(file: &File, datasync: bool, reply: ReplyEmpty) {
    let synced = if datasync {
        file.sync_data()
    } else {
        file.sync_all()
    };
    match synced {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e.into()),
    }
}

/// The FUSE connection number (fusectl directory name) of a filesystem whose `st_dev`
/// is `dev`: the kernel's own `dev_t` encoding, `major << 20 | minor`.
fn connection_id(dev: u64) -> u64 {
    (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev))
}

/// `umount2(MNT_DETACH)`: succeeds even while files are open there.
fn detach(mountpoint: &CString) {
    // SAFETY: a NUL-terminated path. Failure (already unmounted) needs no handling.
    unsafe { libc::umount2(mountpoint.as_ptr(), libc::MNT_DETACH) };
}

/// Ends FUSE connection `connection` through fusectl, mounting fusectl privately for the
/// moment if the system has not mounted it.
fn abort_connection(connection: u64) {
    let write_abort =
        |dir: &Path| fs::write(dir.join(connection.to_string()).join("abort"), b"1").is_ok();
    if write_abort(Path::new(FUSECTL_DIR)) {
        return;
    }
    let private = std::env::temp_dir().join(format!(
        "ckfaultfs-fusectl-{}-{connection}",
        std::process::id()
    ));
    if fs::create_dir(&private).is_err() {
        return;
    }
    if let Ok(c_private) = c_path(&private) {
        // SAFETY: NUL-terminated strings; fusectl takes no data.
        let mounted = unsafe {
            libc::mount(
                c"fusectl".as_ptr(),
                c_private.as_ptr(),
                c"fusectl".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if mounted == 0 {
            write_abort(&private);
            detach(&c_private);
        }
    }
    let _ = fs::remove_dir(&private);
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Opens a backing file with raw open(2) flags (close-on-exec added).
fn open_backing(path: &Path, flags: i32, mode: u32) -> io::Result<File> {
    let c = c_path(path)?;
    // SAFETY: a NUL-terminated path; mode is read only with O_CREAT.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    check(fd)?;
    // SAFETY: a fresh descriptor, owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// How the kernel should treat a file the client opened with `flags`. `O_DIRECT` opens
/// (glommio's DmaFile) get `FOPEN_DIRECT_IO`: reads and writes come to us as issued,
/// bypassing the kernel page cache, and direct writes may run in parallel.
fn fopen_flags(flags: i32) -> FopenFlags {
    if flags & libc::O_DIRECT != 0 {
        FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
    } else {
        FopenFlags::empty()
    }
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

fn system_time(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = Duration::from_nanos(nsecs.clamp(0, 999_999_999) as u64);
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + nsecs
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + nsecs
    }
}

fn attr_of(ino: u64, meta: &fs::Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: meta.size(),
        blocks: meta.blocks(),
        atime: system_time(meta.atime(), meta.atime_nsec()),
        mtime: system_time(meta.mtime(), meta.mtime_nsec()),
        ctime: system_time(meta.ctime(), meta.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind_of(meta.mode()),
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: meta.blksize() as u32,
        flags: 0,
    }
}

/// A `utimensat` time: `None` leaves it as it is.
fn timespec(time: Option<TimeOrNow>) -> libc::timespec {
    // SAFETY: timespec is plain integers (and, on some targets, padding).
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    match time {
        None => ts.tv_nsec = libc::UTIME_OMIT,
        Some(TimeOrNow::Now) => ts.tv_nsec = libc::UTIME_NOW,
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => {
                ts.tv_sec = d.as_secs() as libc::time_t;
                ts.tv_nsec = d.subsec_nanos().into();
            }
            Err(before) => {
                let d = before.duration();
                let (secs, nanos) = (d.as_secs() as libc::time_t, d.subsec_nanos());
                if nanos == 0 {
                    ts.tv_sec = -secs;
                } else {
                    ts.tv_sec = -secs - 1;
                    ts.tv_nsec = (1_000_000_000 - nanos).into();
                }
            }
        },
    }
    ts
}

/// `rest` appended to `base`, without the trailing separator `join("")` would add.
fn rebase(base: &Path, rest: &Path) -> PathBuf {
    if rest.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rest)
    }
}

/// The inode table: inode numbers the kernel knows, and the backing path of each.
struct Inodes {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    /// Never reused, so generation 0 is always right.
    next: u64,
}

struct Node {
    /// Absolute backing path; `None` once unlinked (open files still reach it by fd).
    path: Option<PathBuf>,
    /// Kernel references (successful lookups less forgets); the node goes at zero.
    lookups: u64,
}

impl Inodes {
    fn new(root: PathBuf) -> Self {
        let ino = INodeNo::ROOT.0;
        let mut nodes = HashMap::new();
        let mut by_path = HashMap::new();
        by_path.insert(root.clone(), ino);
        nodes.insert(
            ino,
            Node {
                path: Some(root),
                lookups: 1,
            },
        );
        Inodes {
            nodes,
            by_path,
            next: ino + 1,
        }
    }

    fn path(&self, ino: u64) -> Option<PathBuf> {
        self.nodes.get(&ino)?.path.clone()
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent).ok_or(Errno::ENOENT)?.join(name))
    }

    /// The inode of `path`, new or known, with one more kernel reference.
    fn remember(&mut self, path: PathBuf) -> u64 {
        if let Some(&ino) = self.by_path.get(&path)
            && let Some(node) = self.nodes.get_mut(&ino)
        {
            node.lookups += 1;
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.by_path.insert(path.clone(), ino);
        self.nodes.insert(
            ino,
            Node {
                path: Some(path),
                lookups: 1,
            },
        );
        ino
    }

    fn forget(&mut self, ino: u64, n: u64) {
        if ino == INodeNo::ROOT.0 {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            let node = self.nodes.remove(&ino).expect("present");
            if let Some(path) = node.path
                && self.by_path.get(&path) == Some(&ino)
            {
                self.by_path.remove(&path);
            }
        }
    }

    /// `path` (and anything under it) is gone from the backing directory.
    fn unlinked(&mut self, path: &Path) {
        self.by_path.retain(|p, _| !p.starts_with(path));
        for node in self.nodes.values_mut() {
            if node.path.as_deref().is_some_and(|p| p.starts_with(path)) {
                node.path = None;
            }
        }
    }

    /// `from` was renamed to `to` (swapped with it if `exchange`); paths under either
    /// move along, and a replaced `to` is unlinked.
    fn renamed(&mut self, from: &Path, to: &Path, exchange: bool) {
        let mut by_path = HashMap::with_capacity(self.by_path.len());
        for (&ino, node) in &mut self.nodes {
            let Some(path) = node.path.take() else {
                continue;
            };
            let moved = if let Ok(rest) = path.strip_prefix(from) {
                Some(rebase(to, rest))
            } else if let Ok(rest) = path.strip_prefix(to) {
                exchange.then(|| rebase(from, rest))
            } else {
                Some(path)
            };
            if let Some(moved) = &moved {
                by_path.insert(moved.clone(), ino);
            }
            node.path = moved;
        }
        self.by_path = by_path;
    }
}

/// An open file or directory.
enum Handle {
    File {
        ino: u64,
        file: Arc<File>,
    },
    Dir {
        file: Arc<File>,
        /// Snapshot taken at offset 0 (opendir, rewinddir): offsets stay valid however
        /// the directory changes while it is paged through.
        entries: Option<Vec<DirEnt>>,
    },
}

struct DirEnt {
    name: OsString,
    kind: FileType,
    ino: u64,
}

#[derive(Default)]
struct Handles {
    map: HashMap<u64, Handle>,
    next: u64,
}

impl Handles {
    fn insert(&mut self, handle: Handle) -> FileHandle {
        self.next += 1;
        self.map.insert(self.next, handle);
        FileHandle(self.next)
    }

    fn file(&self, fh: FileHandle) -> Option<Arc<File>> {
        match self.map.get(&fh.0)? {
            Handle::File { file, .. } | Handle::Dir { file, .. } => Some(Arc::clone(file)),
        }
    }

    /// Any open file of inode `ino` (for an unlinked file, the only way to reach it).
    fn file_of(&self, ino: u64) -> Option<Arc<File>> {
        self.map.values().find_map(|handle| match handle {
            Handle::File { ino: i, file } if *i == ino => Some(Arc::clone(file)),
            _ => None,
        })
    }
}

/// The FUSE filesystem proper. Lock order: never `inodes` and `handles` at once.
struct PassFs {
    root: PathBuf,
    inodes: Mutex<Inodes>,
    handles: Mutex<Handles>,
    control: Arc<Control>,
}

impl PassFs {
    fn new(root: PathBuf, control: Arc<Control>) -> Self {
        PassFs {
            inodes: Mutex::new(Inodes::new(root.clone())),
            root,
            handles: Mutex::default(),
            control,
        }
    }

    fn inodes(&self) -> MutexGuard<'_, Inodes> {
        self.inodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn handles(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.inodes().path(ino.0).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        self.inodes().child(parent.0, name)
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.handles().file(fh).ok_or(Errno::EBADF)
    }

    /// Attributes of `ino`: through the open file if there is one, else by path, else
    /// (unlinked or vanished) through any open file of it.
    fn stat(&self, ino: INodeNo, fh: Option<FileHandle>) -> Result<FileAttr, Errno> {
        if let Some(file) = fh.and_then(|fh| self.handles().file(fh)) {
            return Ok(attr_of(ino.0, &file.metadata()?));
        }
        let by_path = self.inodes().path(ino.0).map(fs::symlink_metadata);
        match by_path {
            Some(Ok(meta)) => Ok(attr_of(ino.0, &meta)),
            Some(Err(e)) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => match self.handles().file_of(ino.0) {
                Some(file) => Ok(attr_of(ino.0, &file.metadata()?)),
                None => Err(Errno::ENOENT),
            },
        }
    }

    /// A new entry at `path` (just looked up or created): its inode and attributes.
    fn entry(&self, path: PathBuf) -> Result<FileAttr, Errno> {
        let meta = fs::symlink_metadata(&path)?;
        let ino = self.inodes().remember(path);
        Ok(attr_of(ino, &meta))
    }

    fn set_attrs(
        &self,
        ino: INodeNo,
        fh: Option<FileHandle>,
        mode: Option<u32>,
        size: Option<u64>,
        times: Option<[libc::timespec; 2]>,
    ) -> io::Result<()> {
        let file = fh.and_then(|fh| self.handles().file(fh));
        let path = self.inodes().path(ino.0);
        let no_path = || io::Error::from_raw_os_error(libc::ENOENT);
        if let Some(mode) = mode {
            let perms = Permissions::from_mode(mode & 0o7777);
            match (&file, &path) {
                (Some(file), _) => file.set_permissions(perms)?,
                (None, Some(path)) => fs::set_permissions(path, perms)?,
                (None, None) => return Err(no_path()),
            }
        }
        if let Some(size) = size {
            let by_file = file.as_ref().map(|file| file.set_len(size));
            match (by_file, &path) {
                (Some(Ok(())), _) => {}
                // A descriptor opened read-only (O_RDONLY|O_TRUNC) cannot ftruncate.
                (Some(Err(e)), Some(path))
                    if matches!(e.raw_os_error(), Some(libc::EBADF | libc::EINVAL)) =>
                {
                    let c = c_path(path)?;
                    // SAFETY: a NUL-terminated path.
                    check(unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) })?;
                }
                (Some(Err(e)), _) => return Err(e),
                (None, Some(path)) => {
                    let c = c_path(path)?;
                    // SAFETY: a NUL-terminated path.
                    check(unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) })?;
                }
                (None, None) => return Err(no_path()),
            }
        }
        if let Some(times) = times {
            match (&file, &path) {
                // SAFETY: an open descriptor and two timespecs.
                (Some(file), _) => {
                    check(unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) })?
                }
                (None, Some(path)) => {
                    let c = c_path(path)?;
                    // SAFETY: a NUL-terminated path and two timespecs.
                    check(unsafe {
                        libc::utimensat(
                            libc::AT_FDCWD,
                            c.as_ptr(),
                            times.as_ptr(),
                            libc::AT_SYMLINK_NOFOLLOW,
                        )
                    })?;
                }
                (None, None) => return Err(no_path()),
            }
        }
        Ok(())
    }

    /// The entries of directory `ino`, with `.` and `..` first.
    fn list(&self, ino: INodeNo) -> Result<Vec<DirEnt>, Errno> {
        let path = self.path(ino)?;
        let mut found = Vec::new();
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let kind = entry
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            found.push((entry.file_name(), kind, entry.ino()));
        }
        let inodes = self.inodes();
        let parent = match path.parent() {
            Some(parent) if path != self.root => inodes.by_path.get(parent).copied(),
            _ => None,
        };
        let mut entries = Vec::with_capacity(found.len() + 2);
        let dot = |name: &str, ino: u64| DirEnt {
            name: name.into(),
            kind: FileType::Directory,
            ino,
        };
        entries.push(dot(".", ino.0));
        entries.push(dot("..", parent.unwrap_or(INodeNo::ROOT.0)));
        for (name, kind, backing_ino) in found {
            // Our inode number where the kernel has one; else the backing one (readdir
            // inode numbers only reach d_ino, never the kernel's inode table).
            let ino = inodes
                .by_path
                .get(&path.join(&name))
                .copied()
                .unwrap_or(backing_ino);
            entries.push(DirEnt { name, kind, ino });
        }
        Ok(entries)
    }
}

impl PassFs {
    /// unlink / rmdir: `remove` on the backing path, then the inode table forgets it.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: fn(&Path) -> io::Result<()>,
        reply: ReplyEmpty,
    ) {
        let removed = self.child(parent, name).and_then(|path| {
            remove(&path)?;
            self.inodes().unlinked(&path);
            Ok(())
        });
        match removed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for PassFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|path| self.entry(path)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.inodes().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.stat(ino, fh) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Ownership changes are ignored: the servers under test run as one user.
        let times =
            (atime.is_some() || mtime.is_some()).then(|| [timespec(atime), timespec(mtime)]);
        let result = self
            .set_attrs(ino, fh, mode, size, times)
            .map_err(Errno::from)
            .and_then(|()| self.stat(ino, fh));
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.path(ino).and_then(|path| Ok(fs::read_link(path)?)) {
            Ok(target) => reply.data(target.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        // The kernel has applied the caller's umask to `mode` already.
        let made = self.child(parent, name).and_then(|path| {
            fs::DirBuilder::new().mode(mode & 0o7777).create(&path)?;
            self.entry(path)
        });
        match made {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_file(p), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_dir(p), reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let made = self.child(parent, link_name).and_then(|path| {
            std::os::unix::fs::symlink(target, &path)?;
            self.entry(path)
        });
        match made {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let renamed = (|| -> Result<(), Errno> {
            let (from, to) = {
                let inodes = self.inodes();
                (
                    inodes.child(parent.0, name)?,
                    inodes.child(newparent.0, newname)?,
                )
            };
            let (c_from, c_to) = (c_path(&from)?, c_path(&to)?);
            // SAFETY: NUL-terminated paths; flags as the caller gave them.
            check(unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    c_from.as_ptr(),
                    libc::AT_FDCWD,
                    c_to.as_ptr(),
                    flags.bits(),
                )
            })?;
            let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
            self.inodes().renamed(&from, &to, exchange);
            Ok(())
        })();
        match renamed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let opened = self.path(ino).and_then(|path| {
            let backing_flags = flags.0 & !(STRIPPED_OPEN_FLAGS | libc::O_CREAT | libc::O_EXCL);
            let file = open_backing(&path, backing_flags, 0)?;
            Ok(self.handles().insert(Handle::File {
                ino: ino.0,
                file: Arc::new(file),
            }))
        });
        match opened {
            Ok(fh) => reply.opened(fh, fopen_flags(flags.0)),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let created = self.child(parent, name).and_then(|path| {
            let file = open_backing(&path, (flags & !STRIPPED_OPEN_FLAGS) | libc::O_CREAT, mode)?;
            let meta = file.metadata()?;
            let ino = self.inodes().remember(path);
            let fh = self.handles().insert(Handle::File {
                ino,
                file: Arc::new(file),
            });
            Ok((attr_of(ino, &meta), fh))
        });
        match created {
            Ok((attr, fh)) => reply.created(&TTL, &attr, Generation(0), fh, fopen_flags(flags)),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let read = self.file(fh).and_then(|file| {
            let mut buf = vec![0; size as usize];
            let mut filled = 0;
            // The kernel takes a short reply for end of file: fill up to it.
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Errno::from(e)),
                }
            }
            buf.truncate(filled);
            Ok(buf)
        });
        match read {
            Ok(buf) => reply.data(&buf),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let written = self
            .file(fh)
            .and_then(|file| Ok(file.write_all_at(data, offset)?));
        match written {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes went to the backing file as they came: nothing is buffered here.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // A parked fsync holds its own Arc: the backing file closes after it answers.
        self.handles().map.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.file(fh) {
            Ok(file) => self.control.fsync(file, datasync, reply),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let opened = self.path(ino).and_then(|path| {
            let file = open_backing(&path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
            Ok(self.handles().insert(Handle::Dir {
                file: Arc::new(file),
                entries: None,
            }))
        });
        match opened {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = match self.handles().map.get(&fh.0) {
            Some(Handle::Dir { entries, .. }) => entries.is_some() && offset > 0,
            _ => return reply.error(Errno::EBADF),
        };
        // Listed outside the handles lock (never both locks at once).
        let fresh = if listed {
            None
        } else {
            match self.list(ino) {
                Ok(entries) => Some(entries),
                Err(e) => return reply.error(e),
            }
        };
        let mut handles = self.handles();
        let Some(Handle::Dir { entries, .. }) = handles.map.get_mut(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        if let Some(fresh) = fresh {
            *entries = Some(fresh);
        }
        // Entry i carries offset i + 1: where the next call resumes after it.
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, entry) in entries.iter().flatten().enumerate().skip(skip) {
            if reply.add(INodeNo(entry.ino), i as u64 + 1, entry.kind, &entry.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.handles().map.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        // A directory's handle is an open backing file too: the same gate.
        self.fsync(req, ino, fh, datasync, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let stat = c_path(&self.root).and_then(|c| {
            // SAFETY: statvfs is plain integers; the call fills it in.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: a NUL-terminated path and a valid out pointer.
            check(unsafe { libc::statvfs(c.as_ptr(), &mut st) })?;
            Ok(st)
        });
        match stat {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(e.into()),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let allowed = self.path(ino).and_then(|path| {
            let c = c_path(&path)?;
            // SAFETY: a NUL-terminated path.
            Ok(check(unsafe { libc::access(c.as_ptr(), mask.bits()) })?)
        });
        match allowed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let allocated = self.file(fh).and_then(|file| {
            // SAFETY: an open descriptor; the kernel checks mode and range.
            Ok(check(unsafe {
                libc::fallocate(
                    file.as_raw_fd(),
                    mode,
                    offset as libc::off_t,
                    length as libc::off_t,
                )
            })?)
        });
        match allocated {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // The kernel asks only for SEEK_DATA / SEEK_HOLE; our descriptor's own position
        // is never used (all I/O is positional), so moving it is harmless.
        let sought = self.file(fh).and_then(|file| {
            // SAFETY: an open descriptor.
            let at = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
            if at < 0 {
                Err(Errno::from(io::Error::last_os_error()))
            } else {
                Ok(at)
            }
        });
        match sought {
            Ok(at) => reply.offset(at),
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File, OpenOptions};
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::{DiskFault, FaultFs};

    /// Bound on polling for a parked fsync (never reached unless the test fails).
    const PARK_TIMEOUT: Duration = Duration::from_secs(10);

    /// A mounted FaultFs over a temporary directory. Field order is drop order: the
    /// mount goes before the directory under it is removed.
    struct Fixture {
        fs: FaultFs,
        backing: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn mnt(&self, rel: &str) -> PathBuf {
            self.fs.mountpoint().join(rel)
        }
    }

    /// None (with a line saying why) where FUSE mounts are impossible.
    fn fixture() -> Option<Fixture> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("faultfs test skipped: not root (mounting FUSE needs root)");
            return None;
        }
        if !Path::new("/dev/fuse").exists() {
            eprintln!("faultfs test skipped: /dev/fuse is missing");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let backing = dir.path().join("backing");
        let fs = FaultFs::mount(&backing, &dir.path().join("mnt")).expect("mount faultfs");
        Some(Fixture {
            fs,
            backing,
            _dir: dir,
        })
    }

    /// Polls until `n` fsyncs are parked (bounded, so a bug fails instead of hanging).
    fn wait_stalled(fs: &FaultFs, n: usize) {
        let deadline = Instant::now() + PARK_TIMEOUT;
        while fs.stalled() != n {
            assert!(Instant::now() < deadline, "{n} fsyncs never parked");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn faultfs_passes_operations_through() {
        let Some(fx) = fixture() else { return };
        assert_eq!(fx.fs.fault(), DiskFault::Healthy);

        fs::write(fx.mnt("a.txt"), b"hello").unwrap();
        assert_eq!(fs::read(fx.mnt("a.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(fx.backing.join("a.txt")).unwrap(), b"hello");

        // Appends land at the end (the kernel gives the offset; O_APPEND is stripped).
        let mut f = OpenOptions::new()
            .append(true)
            .open(fx.mnt("a.txt"))
            .unwrap();
        f.write_all(b", world").unwrap();
        drop(f);
        assert_eq!(fs::read(fx.backing.join("a.txt")).unwrap(), b"hello, world");

        // Truncation through O_TRUNC and through set_len.
        fs::write(fx.mnt("a.txt"), b"abc").unwrap();
        assert_eq!(fs::read(fx.backing.join("a.txt")).unwrap(), b"abc");
        let f = OpenOptions::new()
            .write(true)
            .open(fx.mnt("a.txt"))
            .unwrap();
        f.set_len(1).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 1);
        drop(f);
        assert_eq!(fs::read(fx.backing.join("a.txt")).unwrap(), b"a");

        fs::create_dir(fx.mnt("sub")).unwrap();
        assert!(fx.backing.join("sub").is_dir());
        fs::rename(fx.mnt("a.txt"), fx.mnt("sub/b.txt")).unwrap();
        assert!(!fx.backing.join("a.txt").exists());
        assert_eq!(fs::read(fx.backing.join("sub/b.txt")).unwrap(), b"a");
        assert_eq!(fs::read(fx.mnt("sub/b.txt")).unwrap(), b"a");

        // Renaming a directory moves what the inode table knows under it.
        fs::rename(fx.mnt("sub"), fx.mnt("moved")).unwrap();
        assert_eq!(fs::read(fx.mnt("moved/b.txt")).unwrap(), b"a");
        assert!(!fx.mnt("sub").exists());
        let names: Vec<_> = fs::read_dir(fx.mnt("moved"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["b.txt"]);

        // Overwriting rename.
        fs::write(fx.mnt("moved/c.txt"), b"c").unwrap();
        fs::rename(fx.mnt("moved/c.txt"), fx.mnt("moved/b.txt")).unwrap();
        assert_eq!(fs::read(fx.mnt("moved/b.txt")).unwrap(), b"c");

        // A directory larger than one readdir reply pages through correctly.
        fs::create_dir(fx.mnt("many")).unwrap();
        for i in 0..500 {
            File::create(fx.mnt(&format!("many/file-with-a-longish-name-{i:04}"))).unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(fx.mnt("many"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let expected: Vec<_> = (0..500)
            .map(|i| format!("file-with-a-longish-name-{i:04}"))
            .collect();
        assert_eq!(names, expected);

        // An open file stays usable after unlink.
        let mut open = File::open(fx.mnt("moved/b.txt")).unwrap();
        fs::remove_file(fx.mnt("moved/b.txt")).unwrap();
        assert!(!fx.backing.join("moved/b.txt").exists());
        assert_eq!(open.metadata().unwrap().len(), 1);
        let mut content = String::new();
        open.read_to_string(&mut content).unwrap();
        assert_eq!(content, "c");
        drop(open);

        fs::remove_dir(fx.mnt("moved")).unwrap();
        assert!(!fx.backing.join("moved").exists());
        let stat = fs::metadata(fx.fs.mountpoint()).unwrap();
        assert!(stat.is_dir());
    }

    #[test]
    fn faultfs_supports_o_direct() {
        #[repr(C, align(4096))]
        struct Block([u8; 4096]);
        let Some(fx) = fixture() else { return };
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_DIRECT)
            .open(fx.mnt("direct.dat"))
            .expect("open O_DIRECT on the mount");
        let first = Box::new(Block([0xA5; 4096]));
        let second = Box::new(Block([0x5A; 4096]));
        assert_eq!(f.write_at(&first.0, 0).unwrap(), 4096);
        assert_eq!(f.write_at(&second.0, 4096).unwrap(), 4096);
        let mut back = Box::new(Block([0; 4096]));
        assert_eq!(f.read_at(&mut back.0, 4096).unwrap(), 4096);
        assert!(back.0 == second.0);
        assert_eq!(f.read_at(&mut back.0, 0).unwrap(), 4096);
        assert!(back.0 == first.0);
        f.sync_data().expect("fdatasync");
        drop(f);
        let on_disk = fs::read(fx.backing.join("direct.dat")).unwrap();
        assert_eq!(on_disk.len(), 8192);
        assert!(on_disk[..4096] == first.0 && on_disk[4096..] == second.0);
    }

    /// What the corekeeper server does: glommio's DmaFile (O_DIRECT through io_uring),
    /// including an fdatasync that fails in `Eio` and succeeds once `Healthy` again.
    #[test]
    fn faultfs_serves_glommio_dma_files() {
        let Some(fx) = fixture() else { return };
        let path = fx.mnt("dma.log");
        // Small IO memory: glommio locks it, and `ulimit -l` may be a few MiB.
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(512 << 10)
            .make()
            .expect("glommio executor (ulimit -l?)");
        let fs = &fx.fs;
        ex.run(async move {
            let file = glommio::io::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .dma_open(&path)
                .await
                .expect("DmaFile on the mount");
            for (i, byte) in [0x11u8, 0x22].into_iter().enumerate() {
                let mut buf = file.alloc_dma_buffer(4096);
                buf.as_bytes_mut().fill(byte);
                assert_eq!(file.write_at(buf, i as u64 * 4096).await.unwrap(), 4096);
            }
            file.fdatasync().await.expect("healthy fdatasync");
            let back = file.read_at_aligned(4096, 4096).await.unwrap();
            assert!(back.iter().all(|&b| b == 0x22));
            fs.set(DiskFault::Eio);
            let err = file.fdatasync().await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
            fs.set(DiskFault::Healthy);
            file.fdatasync().await.expect("fdatasync after recovery");
            file.close().await.unwrap();
        });
        assert_eq!(fx.fs.failed(), 1);
        let on_disk = fs::read(fx.backing.join("dma.log")).unwrap();
        assert_eq!(on_disk.len(), 8192);
        assert!(on_disk[..4096].iter().all(|&b| b == 0x11));
    }

    #[test]
    fn faultfs_eio_fails_fsyncs_until_healthy() {
        let Some(fx) = fixture() else { return };
        let f = File::create(fx.mnt("log")).unwrap();
        f.write_all_at(b"record", 0).unwrap();
        f.sync_all().unwrap();
        assert_eq!(fx.fs.failed(), 0);

        fx.fs.set(DiskFault::Eio);
        assert_eq!(fx.fs.fault(), DiskFault::Eio);
        assert_eq!(f.sync_all().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        let dir = File::open(fx.fs.mountpoint()).unwrap();
        assert_eq!(dir.sync_all().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(fx.fs.failed(), 3);
        // Writes are not faulted.
        f.write_all_at(b"more", 6).unwrap();

        fx.fs.set(DiskFault::Healthy);
        f.sync_all().unwrap();
        f.sync_data().unwrap();
        dir.sync_all().unwrap();
        assert_eq!(fx.fs.failed(), 3);
        assert_eq!(fs::read(fx.backing.join("log")).unwrap(), b"recordmore");
    }

    #[test]
    fn faultfs_stall_parks_fsync_until_released() {
        let Some(fx) = fixture() else { return };
        let f = File::create(fx.mnt("log")).unwrap();
        f.write_all_at(b"record", 0).unwrap();
        fs::write(fx.mnt("other"), b"other").unwrap();

        fx.fs.set(DiskFault::Stall);
        let syncer = thread::spawn(move || f.sync_data());
        wait_stalled(&fx.fs, 1);
        // Other operations go on meanwhile: another file, and reads of the stalled one.
        assert_eq!(fs::read(fx.mnt("other")).unwrap(), b"other");
        assert_eq!(fs::read(fx.mnt("log")).unwrap(), b"record");
        fs::write(fx.mnt("third"), b"3").unwrap();
        assert!(!syncer.is_finished());
        assert_eq!(fx.fs.stalled(), 1);

        fx.fs.set(DiskFault::Healthy);
        syncer.join().unwrap().expect("released fsync succeeds");
        assert_eq!(fx.fs.stalled(), 0);
        assert_eq!(fx.fs.failed(), 0);

        // Released into Eio, a parked fsync fails.
        let f = OpenOptions::new().write(true).open(fx.mnt("log")).unwrap();
        fx.fs.set(DiskFault::Stall);
        let syncer = thread::spawn(move || f.sync_all());
        wait_stalled(&fx.fs, 1);
        fx.fs.set(DiskFault::Eio);
        let err = syncer.join().unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert_eq!(fx.fs.failed(), 1);
    }

    #[test]
    fn faultfs_drop_releases_parked_fsync_and_does_not_hang() {
        let Some(fx) = fixture() else { return };
        let f = File::create(fx.mnt("log")).unwrap();
        f.write_all_at(b"record", 0).unwrap();
        // Held open across the drop: the lazily detached mount stays busy.
        fs::write(fx.mnt("other-open"), b"x").unwrap();
        let held = File::open(fx.mnt("other-open")).unwrap();
        let mountpoint = fx.fs.mountpoint().to_path_buf();

        fx.fs.set(DiskFault::Stall);
        let syncer = thread::spawn(move || {
            let synced = f.sync_all();
            (synced, f)
        });
        wait_stalled(&fx.fs, 1);
        let Fixture { fs, backing, _dir } = fx;
        drop(fs);
        let (synced, f) = syncer.join().unwrap();
        synced.expect("fsync released by drop succeeds");
        assert_eq!(fs::read(backing.join("log")).unwrap(), b"record");
        // The mount is gone; files still open there fail instead of hanging.
        assert!(held.metadata().is_err());
        drop((f, held));
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(!mounts.contains(&*mountpoint.to_string_lossy()));
    }
}
