//! The crate's error type. Every variant that concerns a file names it, and corruption
//! names the byte offset, so an operator can find what is wrong.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The directory is missing, not a directory, or cannot be written.
    #[error("wal directory {path}: {reason}")]
    Dir {
        path: PathBuf,
        reason: String,
        #[source]
        source: Option<io::Error>,
    },
    /// Another process (or another `Wal` in this one) holds the directory's lock file.
    #[error("wal directory is in use by another process: lock file {path} is held (flock)")]
    Locked { path: PathBuf },
    /// An IO call failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The disk filled up while pre-writing a segment (ENOSPC).
    #[error("disk full (ENOSPC) while pre-writing segment {path} at byte offset {offset}")]
    DiskFull {
        path: PathBuf,
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// A payload larger than `record_bytes_max`.
    #[error("record payload of {len} bytes exceeds record_bytes_max ({max} bytes)")]
    RecordTooLarge { len: usize, max: u32 },
    /// An append whose zxid is not greater than the last one.
    #[error("zxid {zxid:#x} is not greater than the last appended zxid {last:#x}")]
    NonIncreasingZxid { zxid: u64, last: u64 },
    /// Corruption that cannot be a torn tail: refusing to guess what was acknowledged.
    #[error("corrupt wal {path} at byte offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A flush failed earlier. After a failed fsync the kernel may have dropped the dirty
    /// pages, so no later flush can be trusted: the process must reopen (recover).
    #[error("wal is poisoned by an earlier failed flush ({reason}); reopen it to recover")]
    Poisoned { reason: String },
    /// Options outside the limits.
    #[error("invalid wal options: {0}")]
    InvalidOptions(String),
    /// A snapshot file that is damaged (only reported by direct reads; `load_newest`
    /// skips such files with a warning).
    #[error("invalid snapshot {path}: {reason}")]
    BadSnapshot { path: PathBuf, reason: String },
}

impl WalError {
    /// Wraps an IO error with the operation and the path it concerned.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias of the crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;
