//! `ckctl top`: corekeeper's per-core profile, live.
//!
//! Polls the `mntr` four-letter word every interval and prints, per core, what happened
//! since the previous sample: requests/s, bytes in/out per second, executor busy
//! percentage, messages queued for the shard, and open connections; then the shard's
//! group commits (flushes/s, txns per flush, flush latency percentiles read from the
//! cumulative `ck_shard_0_flush_us_le_*` histogram). Rendering is a pure function of two
//! samples, so it is tested without a server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One `mntr` answer: `key -> value`.
pub type Sample = BTreeMap<String, String>;

/// Shortest and longest sampling interval, ms.
pub const TOP_INTERVAL_MS_MIN: u64 = 100;
pub const TOP_INTERVAL_MS_MAX: u64 = 60_000;

/// Parses `key<TAB>value` lines.
pub fn parse(text: &str) -> Sample {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn num(s: &Sample, key: &str) -> f64 {
    s.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn delta(prev: &Sample, cur: &Sample, key: &str) -> f64 {
    (num(cur, key) - num(prev, key)).max(0.0)
}

/// The core numbers present in a sample (`ck_core_<n>_...`).
fn cores(s: &Sample) -> Vec<u32> {
    let mut v: Vec<u32> = s
        .keys()
        .filter_map(|k| k.strip_prefix("ck_core_")?.split_once('_')?.0.parse().ok())
        .collect();
    v.dedup();
    v
}

/// The upper bound (µs) of the histogram bucket holding quantile `q` of the flushes
/// between the samples; `None` without flushes, `f64::INFINITY` past the last bound.
fn flush_quantile_us(prev: &Sample, cur: &Sample, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = cur
        .keys()
        .filter_map(|k| {
            let le = k.strip_prefix("ck_shard_0_flush_us_le_")?;
            let bound = if le == "inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, delta(prev, cur, k)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, cum)| *cum >= q * total)
        .map(|(b, _)| *b)
}

fn bound(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(b) if b.is_infinite() => ">100ms".into(),
        Some(b) => format!("<={b}us"),
    }
}

/// The report for the `dt_s` seconds between two samples.
pub fn render(server: &str, prev: &Sample, cur: &Sample, dt_s: f64) -> String {
    let dt = dt_s.max(1e-3);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{server}  zxid {}  znodes {}  sessions {}  inflight {}",
        cur.get("zk_last_zxid").map_or("?", String::as_str),
        num(cur, "zk_znode_count"),
        num(cur, "zk_global_sessions"),
        num(cur, "ck_shard_0_inflight"),
    );
    let _ = writeln!(
        out,
        "core      req/s   in KiB/s  out KiB/s  busy%  queue  conns"
    );
    for c in cores(cur) {
        let k = |m: &str| format!("ck_core_{c}_{m}");
        let _ = writeln!(
            out,
            "{c:>4} {:>10.1} {:>10.1} {:>10.1} {:>6.1} {:>6} {:>6}",
            delta(prev, cur, &k("requests")) / dt,
            delta(prev, cur, &k("bytes_in")) / dt / 1024.0,
            delta(prev, cur, &k("bytes_out")) / dt / 1024.0,
            (delta(prev, cur, &k("busy_us")) / (dt * 1e6) * 100.0).min(100.0),
            num(cur, &k("queue_depth")),
            num(cur, &k("connections")),
        );
    }
    let flushes = delta(prev, cur, "ck_shard_0_flushes");
    let txns = delta(prev, cur, "ck_shard_0_flushed_txns");
    let us = delta(prev, cur, "ck_shard_0_flush_us_sum");
    let per = |a: f64| if flushes > 0.0 { a / flushes } else { 0.0 };
    let _ = writeln!(
        out,
        "shard 0: {:.1} flushes/s, {:.1} txns/flush, flush avg {:.0}us p50 {} p99 {}",
        flushes / dt,
        per(txns),
        per(us),
        bound(flush_quantile_us(prev, cur, 0.5)),
        bound(flush_quantile_us(prev, cur, 0.99)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "zk_last_zxid\t0x10\nck_core_0_requests\t100\nck_core_0_bytes_in\t0\nck_core_0_busy_us\t0\nck_core_1_requests\t0\nck_core_1_busy_us\t0\nck_shard_0_flushes\t10\nck_shard_0_flushed_txns\t10\nck_shard_0_flush_us_sum\t1000\nck_shard_0_flush_us_le_100\t0\nck_shard_0_flush_us_le_500\t10\nck_shard_0_flush_us_le_inf\t10\n";
    const AFTER: &str = "zk_last_zxid\t0x20\nzk_znode_count\t9\nck_core_0_requests\t300\nck_core_0_bytes_in\t2048\nck_core_0_busy_us\t500000\nck_core_0_connections\t3\nck_core_1_requests\t50\nck_core_1_busy_us\t100000\nck_shard_0_flushes\t20\nck_shard_0_flushed_txns\t60\nck_shard_0_flush_us_sum\t4000\nck_shard_0_flush_us_le_100\t1\nck_shard_0_flush_us_le_500\t15\nck_shard_0_flush_us_le_inf\t20\n";

    #[test]
    fn rates_are_deltas_over_the_interval() {
        let text = render("127.0.0.1:2181", &parse(BEFORE), &parse(AFTER), 2.0);
        assert!(text.contains("zxid 0x20"), "{text}");
        // core 0: 200 requests in 2 s, 2 KiB in 2 s, 0.5 s busy of 2 s, 3 connections.
        assert!(
            text.contains("   0      100.0        1.0        0.0   25.0      0      3"),
            "{text}"
        );
        assert!(
            text.contains("   1       25.0        0.0        0.0    5.0      0      0"),
            "{text}"
        );
        // 10 flushes of 50 txns in 3000 µs: 5 txns/flush, 300 µs each; of the 10,
        // 1 took <=100 µs, 5 <=500 µs, 4 more: p50 in the <=500 bucket, p99 beyond.
        assert!(
            text.contains("5.0 flushes/s, 5.0 txns/flush, flush avg 300us p50 <=500us p99 >100ms"),
            "{text}"
        );
    }

    #[test]
    fn no_flushes_shows_dashes_and_no_cores_no_rows() {
        let s = parse("zk_last_zxid\t0x1\n");
        let text = render("x", &s, &s, 1.0);
        assert!(text.contains("p50 - p99 -"), "{text}");
        assert_eq!(text.lines().count(), 3);
    }
}
