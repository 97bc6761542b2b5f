//! Durable Zab epochs: the `acceptedEpoch` and `currentEpoch` files in dataDir, as
//! ZooKeeper keeps them (`QuorumPeer.writeLongToFile` / `readLongFromFile`).
//!
//! - accepted epoch: the newest epoch this server promised to follow (discovery's
//!   `DiscoveryAction::PersistAcceptedEpoch`);
//! - current epoch: the epoch of the leader whose history it last took whole
//!   (`zab::Action::SetCurrentEpoch`).
//!
//! Format: the epoch in decimal ASCII, no newline (ZooKeeper's `Long.toString`); on
//! reading, one trailing `\n` or `\r\n` is accepted (a hand-written file).
//!
//! # Contract
//! - [`EpochFiles::store_accepted`] / [`EpochFiles::store_current`] return only once
//!   the new value is durable: write `NAME.tmp`, fdatasync it, rename it over `NAME`,
//!   fsync the directory. The Zab cores' rule "persist before the next action" is
//!   met by calling them before carrying out the next action. A crash at any point
//!   leaves the old or the new value, whole; a leftover `NAME.tmp` is ignored.
//! - An `Err` from a store means the durable value is unknown (old or new): the
//!   caller must stop, as on a failed WAL flush; the in-memory value stays the old
//!   one. Either value is safe after a restart (a promise is only ever raised).
//! - [`EpochFiles::open`]: a missing file reads as epoch 0 (a fresh dataDir); a file
//!   that is empty, not a number, above [`EPOCH_MAX`] or larger than
//!   [`EPOCH_FILE_BYTES_MAX`] is [`EpochError::Corrupt`], naming the file: a torn or
//!   damaged epoch cannot be guessed safely. An accepted epoch below the current one
//!   is refused too (ZooKeeper's `loadDataBase` check).
//!
//! Invariants (checked on every store, refused with an error rather than written):
//! `current <= accepted`; neither ever decreases; both at most [`EPOCH_MAX`].
//!
//! Where corekeeper differs from ZooKeeper: the files live in dataDir itself
//! (ZooKeeper: `dataDir/version-2`); a missing `currentEpoch` beside a non-empty log
//! reads as 0 rather than the last zxid's epoch (ZooKeeper's upgrade path from
//! pre-3.4 data, which corekeeper never had); the runtime checks the log against the
//! epochs when it starts replicating.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;
use wal::io::{Storage, read_all, replace_durably};

use crate::zab::{EPOCH_MAX, Epoch};

/// ZooKeeper's name of the accepted-epoch file.
pub const ACCEPTED_EPOCH_FILE: &str = "acceptedEpoch";
/// ZooKeeper's name of the current-epoch file.
pub const CURRENT_EPOCH_FILE: &str = "currentEpoch";
/// What a store writes first, then renames (ZooKeeper's `AtomicFileOutputStream`).
pub const EPOCH_TMP_SUFFIX: &str = ".tmp";
/// The largest epoch file read; anything longer is corrupt (an epoch has at most 10
/// digits, a line end 2 bytes).
pub const EPOCH_FILE_BYTES_MAX: u64 = 32;

/// The two epochs, as last made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Epochs {
    pub accepted: Epoch,
    pub current: Epoch,
}

/// Why the epoch files cannot be read or written.
#[derive(Debug, Error)]
pub enum EpochError {
    #[error("epoch file {}: cannot {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error(
        "epoch file {} is corrupt ({reason}); it must hold one decimal epoch. It cannot \
         be guessed safely: restore it, or wipe this server's data dir and let it resync",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "epoch files in {}: accepted epoch {accepted} is below current epoch {current}",
        dir.display()
    )]
    Inconsistent {
        dir: PathBuf,
        accepted: Epoch,
        current: Epoch,
    },
    #[error("refusing to store {what} epoch {to}: {why} (it is {from})")]
    Refused {
        what: &'static str,
        from: Epoch,
        to: Epoch,
        why: &'static str,
    },
}

/// The epoch files of one data dir, and their values.
pub struct EpochFiles {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    epochs: Epochs,
}

impl std::fmt::Debug for EpochFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochFiles")
            .field("dir", &self.dir)
            .field("epochs", &self.epochs)
            .finish()
    }
}

impl EpochFiles {
    /// Reads both files of `dir` (see the module docs for what is refused).
    pub fn open(storage: Arc<dyn Storage>, dir: &Path) -> Result<EpochFiles, EpochError> {
        let accepted = read_epoch(&*storage, &dir.join(ACCEPTED_EPOCH_FILE))?;
        let current = read_epoch(&*storage, &dir.join(CURRENT_EPOCH_FILE))?;
        if accepted < current {
            return Err(EpochError::Inconsistent {
                dir: dir.to_path_buf(),
                accepted,
                current,
            });
        }
        Ok(EpochFiles {
            storage,
            dir: dir.to_path_buf(),
            epochs: Epochs { accepted, current },
        })
    }

    /// The values last made durable (or read).
    pub fn epochs(&self) -> Epochs {
        self.epochs
    }

    /// Makes `epoch` the accepted epoch, durably. Storing the value it has is a no-op.
    pub fn store_accepted(&mut self, epoch: Epoch) -> Result<(), EpochError> {
        let refuse = |why| EpochError::Refused {
            what: "accepted",
            from: self.epochs.accepted,
            to: epoch,
            why,
        };
        if epoch > EPOCH_MAX {
            return Err(refuse("above EPOCH_MAX"));
        }
        if epoch < self.epochs.accepted {
            return Err(refuse("a promise is never lowered"));
        }
        if epoch == self.epochs.accepted {
            return Ok(());
        }
        self.write(ACCEPTED_EPOCH_FILE, epoch)?;
        self.epochs.accepted = epoch;
        debug_assert!(
            self.epochs.current <= self.epochs.accepted,
            "accepted only grows, and current was at most the old accepted"
        );
        Ok(())
    }

    /// Makes `epoch` the current epoch, durably. It must not exceed the accepted
    /// epoch (a server takes a leader's history only after accepting its epoch).
    pub fn store_current(&mut self, epoch: Epoch) -> Result<(), EpochError> {
        let refuse = |why| EpochError::Refused {
            what: "current",
            from: self.epochs.current,
            to: epoch,
            why,
        };
        if epoch > self.epochs.accepted {
            return Err(refuse("above the accepted epoch"));
        }
        if epoch < self.epochs.current {
            return Err(refuse("the current epoch never goes back"));
        }
        if epoch == self.epochs.current {
            return Ok(());
        }
        self.write(CURRENT_EPOCH_FILE, epoch)?;
        self.epochs.current = epoch;
        debug_assert!(
            self.epochs.current <= self.epochs.accepted,
            "checked above: current <= accepted"
        );
        Ok(())
    }

    /// Write a temporary file, make it durable, rename it over `name`, make the
    /// rename durable.
    fn write(&self, name: &str, epoch: Epoch) -> Result<(), EpochError> {
        let bytes = epoch.to_string();
        replace_durably(
            &*self.storage,
            &self.dir,
            name,
            EPOCH_TMP_SUFFIX,
            bytes.as_bytes(),
        )
        .map_err(|e| EpochError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        })
    }
}

/// One epoch file: 0 if missing, else its value (see the module docs).
fn read_epoch(storage: &dyn Storage, path: &Path) -> Result<Epoch, EpochError> {
    let io = |op| {
        let path = path.to_path_buf();
        move |source| EpochError::Io { path, op, source }
    };
    let file = match storage.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io("open")(e)),
    };
    let corrupt = |reason: String| EpochError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let len = file.len().map_err(io("read"))?;
    if len > EPOCH_FILE_BYTES_MAX {
        return Err(corrupt(format!(
            "{len} bytes, at most {EPOCH_FILE_BYTES_MAX} expected"
        )));
    }
    let bytes = read_all(&*file).map_err(io("read"))?;
    let text = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(&bytes);
    if text.is_empty() {
        return Err(corrupt("empty: a torn write?".into()));
    }
    let shown = String::from_utf8_lossy(text);
    if !text.iter().all(u8::is_ascii_digit) {
        return Err(corrupt(format!("{shown:?} is not a decimal number")));
    }
    match shown.parse::<u64>() {
        Ok(n) if n <= u64::from(EPOCH_MAX) => Ok(n as Epoch),
        _ => Err(corrupt(format!(
            "{shown} is above the largest epoch {EPOCH_MAX}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wal::io::{FaultStorage, OsStorage};

    fn dir() -> &'static Path {
        Path::new("/data")
    }

    fn mem() -> FaultStorage {
        FaultStorage::with_dir(dir())
    }

    fn open(s: &FaultStorage) -> Result<EpochFiles, EpochError> {
        EpochFiles::open(Arc::new(s.clone()), dir())
    }

    #[test]
    fn a_fresh_data_dir_has_epoch_zero() {
        assert_eq!(open(&mem()).unwrap().epochs(), Epochs::default());
        // Also when the directory does not exist yet (before the first start).
        let files = EpochFiles::open(Arc::new(OsStorage), Path::new("/nonexistent/dir")).unwrap();
        assert_eq!(files.epochs(), Epochs::default());
    }

    #[test]
    fn stores_survive_a_reopen_in_zookeepers_format() {
        let tmp = tempfile::tempdir().unwrap();
        let os: Arc<dyn Storage> = Arc::new(OsStorage);
        let mut files = EpochFiles::open(os.clone(), tmp.path()).unwrap();
        files.store_accepted(5).unwrap();
        files.store_current(4).unwrap();
        files.store_current(5).unwrap();
        assert_eq!(
            files.epochs(),
            Epochs {
                accepted: 5,
                current: 5
            }
        );
        let read = |name| std::fs::read_to_string(tmp.path().join(name)).unwrap();
        assert_eq!(
            (read(ACCEPTED_EPOCH_FILE), read(CURRENT_EPOCH_FILE)),
            ("5".into(), "5".into())
        );
        assert!(!tmp.path().join("acceptedEpoch.tmp").exists());
        let again = EpochFiles::open(os, tmp.path()).unwrap();
        assert_eq!(
            again.epochs(),
            Epochs {
                accepted: 5,
                current: 5
            }
        );
    }

    #[test]
    fn hand_written_files_with_a_newline_are_read() {
        let s = mem();
        s.set_contents(&dir().join(ACCEPTED_EPOCH_FILE), b"12\n".to_vec());
        s.set_contents(&dir().join(CURRENT_EPOCH_FILE), b"11\r\n".to_vec());
        assert_eq!(
            open(&s).unwrap().epochs(),
            Epochs {
                accepted: 12,
                current: 11
            }
        );
        // Only the accepted one (a server that accepted an epoch, then crashed before
        // it synchronised): current is 0.
        let s = mem();
        s.set_contents(&dir().join(ACCEPTED_EPOCH_FILE), b"3".to_vec());
        assert_eq!(
            open(&s).unwrap().epochs(),
            Epochs {
                accepted: 3,
                current: 0
            }
        );
    }

    #[test]
    fn torn_or_garbage_files_are_refused_naming_the_file() {
        let long = vec![b'1'; EPOCH_FILE_BYTES_MAX as usize + 1];
        let cases: [(&[u8], &str); 8] = [
            (b"", "empty"),
            (b"\n", "empty"),
            (b"1x", "not a decimal number"),
            (b"-1", "not a decimal number"),
            (b" 7", "not a decimal number"),
            (b"7\n\n", "not a decimal number"),
            (b"2147483648", "above the largest epoch"),
            (&long, "bytes, at most"),
        ];
        for name in [ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE] {
            for (bytes, needle) in cases {
                let s = mem();
                s.set_contents(&dir().join(name), bytes.to_vec());
                let err = open(&s).unwrap_err();
                let msg = err.to_string();
                assert!(matches!(err, EpochError::Corrupt { .. }), "{msg}");
                assert!(msg.contains(&format!("/data/{name}")), "{msg}");
                assert!(msg.contains(needle), "{bytes:?}: {msg}");
            }
        }
    }

    #[test]
    fn accepted_below_current_is_refused() {
        let s = mem();
        s.set_contents(&dir().join(ACCEPTED_EPOCH_FILE), b"3".to_vec());
        s.set_contents(&dir().join(CURRENT_EPOCH_FILE), b"4".to_vec());
        assert!(matches!(
            open(&s).unwrap_err(),
            EpochError::Inconsistent {
                accepted: 3,
                current: 4,
                ..
            }
        ));
        // A lost acceptedEpoch beside a currentEpoch is the same.
        let s = mem();
        s.set_contents(&dir().join(CURRENT_EPOCH_FILE), b"4".to_vec());
        assert!(matches!(
            open(&s).unwrap_err(),
            EpochError::Inconsistent { .. }
        ));
    }

    #[test]
    fn stores_that_break_the_invariants_are_refused_and_write_nothing() {
        let s = mem();
        let mut files = open(&s).unwrap();
        files.store_accepted(4).unwrap();
        files.store_current(4).unwrap();
        let flushes = s.flush_count();
        for (result, needle) in [
            (files.store_accepted(3), "never lowered"),
            (files.store_current(5), "above the accepted"),
            (files.store_current(3), "never goes back"),
            (files.store_accepted(EPOCH_MAX + 1), "EPOCH_MAX"),
        ] {
            let msg = result.unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg}");
        }
        // Storing the same value again writes nothing either.
        files.store_accepted(4).unwrap();
        files.store_current(4).unwrap();
        assert_eq!(s.flush_count(), flushes);
        assert_eq!(
            files.epochs(),
            Epochs {
                accepted: 4,
                current: 4
            }
        );
    }

    #[test]
    fn a_store_interrupted_anywhere_leaves_the_old_or_the_new_value() {
        // A store does two flushes (the file, then the directory). Let the machine die
        // after 0, 1 or 2 of them, tearing the unflushed bytes at every length: the
        // reopened value is always the old or the new one, never an error.
        for flushes_ok in 0..=2u64 {
            for keep in 0..=4usize {
                let s = mem();
                let mut files = open(&s).unwrap();
                files.store_accepted(7).unwrap();
                s.fail_flushes_after(flushes_ok);
                let result = files.store_accepted(1234);
                assert_eq!(result.is_ok(), flushes_ok == 2, "{flushes_ok}: {result:?}");
                let expected_if_failed = files.epochs().accepted;
                assert_eq!(expected_if_failed, if flushes_ok == 2 { 1234 } else { 7 });
                let after = s.crash(|_, span| keep.min(span));
                let got = open(&after).unwrap().epochs().accepted;
                assert!(
                    got == 7 || got == 1234,
                    "{flushes_ok} flushes, {keep} kept: {got}"
                );
                if flushes_ok == 2 {
                    assert_eq!(got, 1234, "a store that returned Ok is durable");
                }
            }
        }
        // A leftover tmp file from such a crash does not disturb the next store.
        let s = mem();
        s.set_contents(&dir().join("currentEpoch.tmp"), b"99999".to_vec());
        s.set_contents(&dir().join(ACCEPTED_EPOCH_FILE), b"2".to_vec());
        let mut files = open(&s).unwrap();
        assert_eq!(files.epochs().current, 0);
        files.store_current(2).unwrap();
        assert_eq!(
            open(&s).unwrap().epochs(),
            Epochs {
                accepted: 2,
                current: 2
            }
        );
    }
}
