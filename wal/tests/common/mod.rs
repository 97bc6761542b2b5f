//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wal::{Syncer, Wal, WalOptions};

/// Small segments so that tests roll often.
pub fn opts() -> WalOptions {
    WalOptions {
        segment_bytes: 64 << 10,
        record_bytes_max: 4096,
        ..WalOptions::default()
    }
}

/// The payload record `zxid` carries: its length and bytes follow from the zxid, so a
/// reader can check every record without remembering what was written.
pub fn payload(zxid: u64) -> Vec<u8> {
    let len = (zxid.wrapping_mul(2_654_435_761) % 700) as usize;
    (0..len)
        .map(|i| (zxid as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

pub fn kind(zxid: u64) -> u8 {
    (zxid % 7) as u8
}

/// Appends zxids `from..=to` with [`payload`].
pub fn append_range(wal: &mut Wal, from: u64, to: u64) {
    for z in from..=to {
        wal.append(z, kind(z), &payload(z)).expect("append");
    }
}

/// All records from `zxid` on, as zxids, after checking each payload and kind.
pub fn check_all_from(wal: &Wal, zxid: u64) -> Vec<u64> {
    wal.read_from(zxid)
        .map(|r| {
            let r = r.expect("readable record");
            assert_eq!(
                r.payload,
                &payload(r.zxid)[..],
                "payload of zxid {}",
                r.zxid
            );
            assert_eq!(r.kind, kind(r.zxid), "kind of zxid {}", r.zxid);
            assert_eq!(r.payload.as_ptr() as usize % 8, 0, "payload 8-byte aligned");
            r.zxid
        })
        .collect()
}

pub fn open(dir: &Path) -> (Wal, wal::Recovery) {
    Wal::open(dir, opts()).expect("open wal")
}

/// Group commit as the server does it: a thread other than the appender's runs one
/// [`Syncer::flush`] at a time, each covering everything appended so far, whenever
/// something is appended and not yet durable. Stops at the first failed flush.
pub struct FlushLoop {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<wal::Result<()>>>,
}

impl FlushLoop {
    pub fn start(syncer: Syncer) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Acquire) {
                if syncer.appended_zxid() > syncer.durable_zxid() {
                    syncer.flush()?;
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            syncer.flush().map(|_| ())
        });
        FlushLoop {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop after a last flush; the error of the flush that ended it, if any.
    pub fn stop(mut self) -> wal::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> wal::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::Release);
        thread.join().expect("flush loop panicked")
    }
}

impl Drop for FlushLoop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.stop_inner();
        }
    }
}
