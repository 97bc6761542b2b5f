//! Server counters: per core and per shard, read by four-letter words, the metrics
//! endpoint and `ckbench`'s per-core profile.
//!
//! Contract: every [`CoreStats`] is written only by its own core and every
//! [`ShardStats`] only by the shard's core, each on its own cache lines, so counting
//! never makes cores contend; readers (any core, any time) sum them up. Values are
//! `Relaxed` snapshots: good for monitoring, not for synchronisation.
//!
//! `mntr` names them `ck_core_<n>_<metric>` and `ck_shard_<n>_<metric>` (the
//! convention `ckbench` groups into its per-core table).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::txn::Db;

/// Upper bounds (µs) of the WAL flush latency histogram's buckets; one more bucket
/// counts everything slower.
pub const FLUSH_US_BUCKETS: [u64; 10] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];
/// Upper bounds of the group-commit batch size histogram's buckets (txns per flush).
pub const BATCH_TXNS_BUCKETS: [u64; 8] = [1, 2, 4, 16, 64, 256, 1_024, 4_096];

/// What one core did: its connections' traffic and its executor's busy time.
#[derive(Debug)]
#[repr(align(128))]
pub struct CoreStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub requests: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connections: AtomicU64,
    pub latency_us_sum: AtomicU64,
    pub latency_us_max: AtomicU64,
    pub latency_us_min: AtomicU64,
    /// Time the executor spent running tasks and polling IO (glommio's total runtime).
    pub busy_us: AtomicU64,
    /// Messages waiting for the shard on this core (the driver's inbox on the shard's
    /// core, the uplink elsewhere), sampled.
    pub queue_depth: AtomicU64,
}

impl Default for CoreStats {
    fn default() -> Self {
        CoreStats {
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            latency_us_sum: AtomicU64::new(0),
            latency_us_max: AtomicU64::new(0),
            latency_us_min: AtomicU64::new(u64::MAX),
            busy_us: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
        }
    }
}

impl CoreStats {
    /// One request answered after `us` µs in the server.
    pub fn record_latency(&self, us: u64) {
        self.requests.fetch_add(1, Relaxed);
        self.latency_us_sum.fetch_add(us, Relaxed);
        self.latency_us_max.fetch_max(us, Relaxed);
        self.latency_us_min.fetch_min(us, Relaxed);
    }
}

/// What one shard did: its state's size and its WAL's group commits.
#[derive(Debug)]
#[repr(align(128))]
pub struct ShardStats {
    pub last_zxid: AtomicI64,
    pub znodes: AtomicU64,
    pub sessions: AtomicU64,
    pub watches: AtomicU64,
    /// Writes persisted but not yet applied (proposals in flight).
    pub inflight: AtomicU64,
    pub flushes: AtomicU64,
    pub flushed_txns: AtomicU64,
    pub flush_us_sum: AtomicU64,
    pub flush_us_max: AtomicU64,
    pub flush_us_hist: [AtomicU64; FLUSH_US_BUCKETS.len() + 1],
    pub batch_hist: [AtomicU64; BATCH_TXNS_BUCKETS.len() + 1],
    pub snapshots: AtomicU64,
    /// [`MODE_STANDALONE`], [`MODE_LOOKING`], [`MODE_LEADER`], [`MODE_FOLLOWER`] or
    /// [`MODE_OBSERVER`].
    pub mode: AtomicU64,
    /// Learners synchronised to this leader.
    pub synced_learners: AtomicU64,
    /// Of them, observers.
    pub synced_observers: AtomicU64,
    /// Learners with a quorum link to this leader (synchronised or not).
    pub learners: AtomicU64,
    /// Leader: proposals not yet committed.
    pub proposals_inflight: AtomicU64,
    /// CRAQ: this server's place in its chain (0 = head) and the chain's length; 0
    /// members when it is in none.
    pub chain_position: AtomicU64,
    pub chain_members: AtomicU64,
    /// CRAQ: chain entries in flight here.
    pub chain_uncommitted: AtomicU64,
    /// CRAQ: commit-point queries this member sent the tail (for dirty keys; for
    /// every read at a member other than the tail with `replication=chain`).
    pub chain_queries: AtomicU64,
    /// Leader: learners synchronised by DIFF, TRUNC and SNAP (this epoch).
    pub syncs_diff: AtomicU64,
    pub syncs_trunc: AtomicU64,
    pub syncs_snap: AtomicU64,
    /// Leader: zxid counter rollovers (new epochs without an election) this epoch.
    pub epoch_rollovers: AtomicU64,
    /// Each quorum link's figures (ack latency, traffic), published every tick.
    pub links: std::sync::Mutex<Vec<super::linkstats::LinkFigures>>,
}

pub const MODE_STANDALONE: u64 = 0;
pub const MODE_LOOKING: u64 = 1;
pub const MODE_LEADER: u64 = 2;
pub const MODE_FOLLOWER: u64 = 3;
pub const MODE_OBSERVER: u64 = 4;

/// ZooKeeper's name for a mode (`srvr`'s `Mode:`, `mntr`'s `zk_server_state`).
pub fn mode_name(mode: u64) -> &'static str {
    match mode {
        MODE_LOOKING => "looking",
        MODE_LEADER => "leader",
        MODE_FOLLOWER => "follower",
        MODE_OBSERVER => "observer",
        _ => "standalone",
    }
}

impl Default for ShardStats {
    fn default() -> Self {
        ShardStats {
            last_zxid: AtomicI64::new(0),
            znodes: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            watches: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flushed_txns: AtomicU64::new(0),
            flush_us_sum: AtomicU64::new(0),
            flush_us_max: AtomicU64::new(0),
            flush_us_hist: std::array::from_fn(|_| AtomicU64::new(0)),
            batch_hist: std::array::from_fn(|_| AtomicU64::new(0)),
            snapshots: AtomicU64::new(0),
            mode: AtomicU64::new(MODE_STANDALONE),
            synced_learners: AtomicU64::new(0),
            synced_observers: AtomicU64::new(0),
            learners: AtomicU64::new(0),
            proposals_inflight: AtomicU64::new(0),
            chain_position: AtomicU64::new(0),
            chain_members: AtomicU64::new(0),
            chain_uncommitted: AtomicU64::new(0),
            chain_queries: AtomicU64::new(0),
            syncs_diff: AtomicU64::new(0),
            syncs_trunc: AtomicU64::new(0),
            syncs_snap: AtomicU64::new(0),
            epoch_rollovers: AtomicU64::new(0),
            links: std::sync::Mutex::new(Vec::new()),
        }
    }
}

/// The index of the first bucket whose bound is at least `v` (the last for overflow).
pub(crate) fn bucket(bounds: &[u64], v: u64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

impl ShardStats {
    /// Publishes the size of the shard's state (last zxid, znodes, sessions), as the
    /// driver does after every batch. The driver calls it once more when it is created,
    /// with the recovered state, so `srvr`, `mntr` and `/metrics` show that state
    /// before the first request instead of zeros.
    pub fn publish_db(&self, db: &Db) {
        self.last_zxid.store(db.last_zxid(), Relaxed);
        self.znodes.store(db.tree.len() as u64, Relaxed);
        self.sessions.store(db.sessions.len() as u64, Relaxed);
    }

    /// One WAL flush covering `txns` txns took `us` µs.
    pub fn record_flush(&self, txns: u64, us: u64) {
        self.flushes.fetch_add(1, Relaxed);
        self.flushed_txns.fetch_add(txns, Relaxed);
        self.flush_us_sum.fetch_add(us, Relaxed);
        self.flush_us_max.fetch_max(us, Relaxed);
        self.flush_us_hist[bucket(&FLUSH_US_BUCKETS, us)].fetch_add(1, Relaxed);
        self.batch_hist[bucket(&BATCH_TXNS_BUCKETS, txns)].fetch_add(1, Relaxed);
    }
}

/// All counters of a server.
#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    pub cores: Vec<CoreStats>,
    /// One shard for now (shard 0).
    pub shard: ShardStats,
}

impl Stats {
    pub fn new(cores: usize) -> Stats {
        debug_assert!(cores >= 1, "a server has a core");
        Stats {
            started: Instant::now(),
            cores: (0..cores).map(|_| CoreStats::default()).collect(),
            shard: ShardStats::default(),
        }
    }

    /// The counters of core `i` (clamped, so a stray index cannot panic a connection).
    pub fn core(&self, i: usize) -> &CoreStats {
        &self.cores[i.min(self.cores.len() - 1)]
    }

    /// Sum of one per-core counter.
    pub fn total(&self, f: impl Fn(&CoreStats) -> &AtomicU64) -> u64 {
        self.cores.iter().map(|c| f(c).load(Relaxed)).sum()
    }

    /// (min, avg, max) request latency in ms over all cores, ZooKeeper's
    /// `Latency min/avg/max`.
    pub fn latency_ms(&self) -> (f64, f64, f64) {
        let n = self.total(|c| &c.requests);
        if n == 0 {
            return (0.0, 0.0, 0.0);
        }
        let min = self
            .cores
            .iter()
            .map(|c| c.latency_us_min.load(Relaxed))
            .min()
            .unwrap_or(0);
        let max = self
            .cores
            .iter()
            .map(|c| c.latency_us_max.load(Relaxed))
            .max()
            .unwrap_or(0);
        let sum = self.total(|c| &c.latency_us_sum);
        (
            min as f64 / 1000.0,
            sum as f64 / n as f64 / 1000.0,
            max as f64 / 1000.0,
        )
    }

    /// Resets the latency and packet counters (`srst`).
    pub fn reset(&self) {
        for c in &self.cores {
            for a in [
                &c.packets_received,
                &c.packets_sent,
                &c.requests,
                &c.latency_us_sum,
                &c.latency_us_max,
            ] {
                a.store(0, Relaxed);
            }
            c.latency_us_min.store(u64::MAX, Relaxed);
        }
    }

    /// `ck_core_<n>_<metric>` and `ck_shard_0_<metric>` rows for `mntr`.
    pub fn profile_rows(&self) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        for (i, c) in self.cores.iter().enumerate() {
            let metrics: [(&str, &AtomicU64); 9] = [
                ("requests", &c.requests),
                ("packets_received", &c.packets_received),
                ("packets_sent", &c.packets_sent),
                ("bytes_in", &c.bytes_in),
                ("bytes_out", &c.bytes_out),
                ("connections", &c.connections),
                ("busy_us", &c.busy_us),
                ("queue_depth", &c.queue_depth),
                ("latency_us_sum", &c.latency_us_sum),
            ];
            rows.extend(
                metrics
                    .iter()
                    .map(|(m, a)| (format!("ck_core_{i}_{m}"), a.load(Relaxed).to_string())),
            );
        }
        let s = &self.shard;
        rows.push((
            "ck_shard_0_inflight".into(),
            s.inflight.load(Relaxed).to_string(),
        ));
        rows.push((
            "ck_shard_0_flushes".into(),
            s.flushes.load(Relaxed).to_string(),
        ));
        rows.push((
            "ck_shard_0_flushed_txns".into(),
            s.flushed_txns.load(Relaxed).to_string(),
        ));
        rows.push((
            "ck_shard_0_flush_us_sum".into(),
            s.flush_us_sum.load(Relaxed).to_string(),
        ));
        let mut cum = 0;
        for (i, b) in FLUSH_US_BUCKETS.iter().map(Some).chain([None]).enumerate() {
            cum += s.flush_us_hist[i].load(Relaxed);
            let le = b.map_or("inf".to_string(), u64::to_string);
            rows.push((format!("ck_shard_0_flush_us_le_{le}"), cum.to_string()));
        }
        let mut cum = 0;
        for (i, b) in BATCH_TXNS_BUCKETS
            .iter()
            .map(Some)
            .chain([None])
            .enumerate()
        {
            cum += s.batch_hist[i].load(Relaxed);
            let le = b.map_or("inf".to_string(), u64::to_string);
            rows.push((format!("ck_shard_0_batch_txns_le_{le}"), cum.to_string()));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_by_upper_bound_and_rows_are_cumulative() {
        let s = Stats::new(2);
        s.shard.record_flush(1, 100);
        s.shard.record_flush(3, 101);
        s.shard.record_flush(5000, 10_000_000);
        let rows: std::collections::BTreeMap<_, _> = s.profile_rows().into_iter().collect();
        assert_eq!(rows["ck_shard_0_flush_us_le_100"], "1");
        assert_eq!(rows["ck_shard_0_flush_us_le_200"], "2");
        assert_eq!(rows["ck_shard_0_flush_us_le_inf"], "3");
        assert_eq!(rows["ck_shard_0_batch_txns_le_1"], "1");
        assert_eq!(rows["ck_shard_0_batch_txns_le_4"], "2");
        assert_eq!(rows["ck_shard_0_batch_txns_le_inf"], "3");
        assert!(rows.contains_key("ck_core_1_busy_us"));
    }

    #[test]
    fn publish_db_shows_a_fresh_state_before_any_batch() {
        let s = Stats::new(1);
        assert_eq!(s.shard.znodes.load(Relaxed), 0);
        s.shard
            .publish_db(&Db::new(crate::session::SessionConfig::default()));
        // /, /zookeeper, /zookeeper/quota, /zookeeper/config.
        assert_eq!(s.shard.znodes.load(Relaxed), 4);
        assert_eq!(s.shard.last_zxid.load(Relaxed), 0);
        assert_eq!(s.shard.sessions.load(Relaxed), 0);
    }

    #[test]
    fn latency_aggregates_over_cores() {
        let s = Stats::new(2);
        s.core(0).record_latency(100);
        s.core(1).record_latency(300);
        assert_eq!(s.latency_ms(), (0.1, 0.2, 0.3));
        s.reset();
        assert_eq!(s.latency_ms(), (0.0, 0.0, 0.0));
    }
}
