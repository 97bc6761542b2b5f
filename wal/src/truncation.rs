//! Crash-safe truncation (`Wal::truncate_after`) through a redo intent.
//!
//! Zeroing the tail of a segment is not atomic: a power loss in the middle can leave
//! zeros followed by old records, which recovery (rightly) refuses as corruption. So a
//! truncation first makes durable a small intent file `TRUNCATE` naming the segment and
//! byte offset to cut at (written as `TRUNCATE.tmp`, fdatasync, rename, fsync of the
//! directory), then removes later segments and zeroes the tail, then removes the intent.
//! On open, an intent that is present is carried out again before scanning, so a crash at
//! any point ends in the truncated log.
//!
//! ```text
//!  0          8      16       24       28    32
//!  | CKTRUNC1 | seq  | offset | crc32c | 0u32 |
//! ```

use std::path::Path;

use crate::error::{Result, WalError};
use crate::io::{Storage, read_all, write_all_at};
use crate::options::FlushMethod;
use crate::segment::{parse_segment_name, segment_file_name};

/// Name of the intent file.
pub const TRUNCATE_INTENT_FILE: &str = "TRUNCATE";
const TMP_NAME: &str = "TRUNCATE.tmp";
const MAGIC: &[u8; 8] = b"CKTRUNC1";
const INTENT_BYTES: usize = 32;

fn encode(seq: u64, offset: u64) -> [u8; INTENT_BYTES] {
    let mut b = [0u8; INTENT_BYTES];
    b[0..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..24].copy_from_slice(&offset.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> std::result::Result<(u64, u64), &'static str> {
    if b.len() != INTENT_BYTES || &b[0..8] != MAGIC {
        return Err("not a truncation intent (size or magic)");
    }
    if u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")) != crc32c::crc32c(&b[0..24]) {
        return Err("truncation intent crc mismatch");
    }
    let seq = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    Ok((
        seq,
        u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
    ))
}

/// Makes durable the intent to cut segment `seq` at `offset`.
pub(crate) fn write_intent(storage: &dyn Storage, dir: &Path, seq: u64, offset: u64) -> Result<()> {
    let (tmp, path) = (dir.join(TMP_NAME), dir.join(TRUNCATE_INTENT_FILE));
    let file = storage
        .create(&tmp)
        .map_err(|e| WalError::io("create truncation intent", &tmp, e))?;
    write_all_at(&*file, &encode(seq, offset), 0)
        .map_err(|e| WalError::io("write truncation intent", &tmp, e))?;
    file.sync_data()
        .map_err(|e| WalError::io("fdatasync truncation intent", &tmp, e))?;
    storage
        .rename(&tmp, &path)
        .map_err(|e| WalError::io("rename truncation intent", &tmp, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| WalError::io("fsync directory", dir, e))
}

/// Removes the intent once the truncation is durable.
pub(crate) fn clear_intent(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = dir.join(TRUNCATE_INTENT_FILE);
    storage
        .remove(&path)
        .map_err(|e| WalError::io("remove truncation intent", &path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| WalError::io("fsync directory", dir, e))
}

/// Carries out an interrupted truncation, if an intent is present. Returns whether one was.
pub(crate) fn redo(storage: &dyn Storage, dir: &Path, method: FlushMethod) -> Result<bool> {
    let _ = storage.remove(&dir.join(TMP_NAME)); // never acted upon: harmless leftover
    let path = dir.join(TRUNCATE_INTENT_FILE);
    let file = match storage.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(WalError::io("open truncation intent", &path, e)),
    };
    let bytes = read_all(&*file).map_err(|e| WalError::io("read truncation intent", &path, e))?;
    let (seq, offset) = decode(&bytes).map_err(|reason| WalError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason: reason.into(),
    })?;
    tracing::warn!(
        seq,
        offset,
        "wal: completing a truncation interrupted by a crash"
    );
    let names = storage
        .list_dir(dir)
        .map_err(|e| WalError::io("list directory", dir, e))?;
    let mut later: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .filter(|&s| s > seq)
        .collect();
    later.sort_unstable_by(|a, b| b.cmp(a));
    for s in later {
        let p = dir.join(segment_file_name(s));
        storage
            .remove(&p)
            .map_err(|e| WalError::io("remove segment", &p, e))?;
        storage
            .sync_dir(dir)
            .map_err(|e| WalError::io("fsync directory", dir, e))?;
    }
    zero_from(storage, &dir.join(segment_file_name(seq)), offset, method)?;
    clear_intent(storage, dir)?;
    Ok(true)
}

fn zero_from(storage: &dyn Storage, path: &Path, offset: u64, method: FlushMethod) -> Result<()> {
    let file = storage
        .open(path)
        .map_err(|e| WalError::io("open segment to truncate", path, e))?;
    let region = file
        .map(method, true)
        .map_err(|e| WalError::io("map segment", path, e))?;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(region.len());
    // SAFETY: nothing else uses the segment during recovery; the range is in bounds.
    let tail =
        unsafe { std::slice::from_raw_parts_mut(region.as_ptr().add(start), region.len() - start) };
    if let Some(last) = tail.iter().rposition(|&b| b != 0) {
        tail[..=last].fill(0);
        region
            .flush(start, last + 1)
            .map_err(|e| WalError::io("flush truncation", path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_roundtrip_and_damage() {
        let b = encode(7, 4096);
        assert_eq!(decode(&b), Ok((7, 4096)));
        for i in 0..28 {
            let mut bad = b;
            bad[i] ^= 1;
            assert!(decode(&bad).is_err(), "flip at {i}");
        }
        assert!(decode(&b[..31]).is_err());
    }
}
