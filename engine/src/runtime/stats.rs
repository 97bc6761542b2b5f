//! Server-wide counters, read by four-letter words and the metrics endpoint.
//!
//! Atomics, written by the shard driver and the connections, read by whoever asks: a
//! `mntr` must not cost the shard a message.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The counters. One instance per server, shared by every core.
#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub last_zxid: AtomicI64,
    pub znodes: AtomicU64,
    pub sessions: AtomicU64,
    pub watches: AtomicU64,
    pub ephemerals: AtomicU64,
    pub connections: AtomicU64,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding: AtomicU64,
    pub requests: AtomicU64,
    pub latency_us_sum: AtomicU64,
    pub latency_us_max: AtomicU64,
    pub latency_us_min: AtomicU64,
    pub flushes: AtomicU64,
    pub flushed_txns: AtomicU64,
    pub flush_us_sum: AtomicU64,
    pub flush_us_max: AtomicU64,
    pub data_bytes: AtomicU64,
    pub snapshots: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            last_zxid: AtomicI64::new(0),
            znodes: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            watches: AtomicU64::new(0),
            ephemerals: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            latency_us_sum: AtomicU64::new(0),
            latency_us_max: AtomicU64::new(0),
            latency_us_min: AtomicU64::new(u64::MAX),
            flushes: AtomicU64::new(0),
            flushed_txns: AtomicU64::new(0),
            flush_us_sum: AtomicU64::new(0),
            flush_us_max: AtomicU64::new(0),
            data_bytes: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
        }
    }
}

impl Stats {
    /// One request answered after `us` µs in the server.
    pub fn record_latency(&self, us: u64) {
        self.requests.fetch_add(1, Relaxed);
        self.latency_us_sum.fetch_add(us, Relaxed);
        self.latency_us_max.fetch_max(us, Relaxed);
        self.latency_us_min.fetch_min(us, Relaxed);
    }

    /// One WAL flush covering `txns` txns took `us` µs.
    pub fn record_flush(&self, txns: u64, us: u64) {
        self.flushes.fetch_add(1, Relaxed);
        self.flushed_txns.fetch_add(txns, Relaxed);
        self.flush_us_sum.fetch_add(us, Relaxed);
        self.flush_us_max.fetch_max(us, Relaxed);
    }

    /// (min, avg, max) request latency in ms, ZooKeeper's `Latency min/avg/max`.
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let n = self.requests.load(Relaxed);
        if n == 0 {
            return (0.0, 0.0, 0.0);
        }
        let min = self.latency_us_min.load(Relaxed) as f64 / 1000.0;
        let avg = self.latency_us_sum.load(Relaxed) as f64 / n as f64 / 1000.0;
        let max = self.latency_us_max.load(Relaxed) as f64 / 1000.0;
        (min, avg, max)
    }

    /// Resets the latency and packet counters (`srst`).
    pub fn reset(&self) {
        for c in [
            &self.packets_received,
            &self.packets_sent,
            &self.requests,
            &self.latency_us_sum,
            &self.latency_us_max,
        ] {
            c.store(0, Relaxed);
        }
        self.latency_us_min.store(u64::MAX, Relaxed);
    }
}
