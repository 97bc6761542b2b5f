//! `ckctl top`: corekeeper's per-core profile, live.
//!
//! Polls the `mntr` four-letter word (or, with `-a`, the admin port's `/metrics`,
//! which needs no 4lw whitelist entry) every interval and prints, per core, what happened
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

/// Why `top` cannot sample a server whose whitelist refuses `mntr`, and what to do.
pub const MNTR_REFUSED: &str = "top: mntr is not in the server's 4lw.commands.whitelist \
     (by default only srvr is): add mntr to it, or pass -a ADMIN_PORT to read /metrics \
     from the server's admin port (adminPort, corekeeper --admin-port)";

/// Whether `text` is the server's refusal to run `mntr` (ZooKeeper's wording, which
/// corekeeper answers too).
pub fn mntr_refused(text: &str) -> bool {
    text.starts_with("mntr is not executed because it is not in the whitelist")
}

/// Parses `key<TAB>value` lines.
pub fn parse(text: &str) -> Sample {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A Prometheus exposition from corekeeper's admin port (`GET /metrics`) as the `mntr`
/// keys [`render`] reads; metrics it does not know are left out.
pub fn from_metrics(text: &str) -> Sample {
    let mut out = Sample::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, label) = match key.split_once('{') {
            Some((name, rest)) => (name, rest.split('"').nth(1)),
            None => (key, None),
        };
        let core = |m: &str| label.map(|c| format!("ck_core_{c}_{m}"));
        let (k, v) = match name {
            "corekeeper_core_requests_total" => (core("requests"), v),
            "corekeeper_core_bytes_in_total" => (core("bytes_in"), v),
            "corekeeper_core_bytes_out_total" => (core("bytes_out"), v),
            "corekeeper_core_connections" => (core("connections"), v),
            "corekeeper_core_queue_depth" => (core("queue_depth"), v),
            "corekeeper_core_busy_seconds_total" => (core("busy_us"), v * 1e6),
            "corekeeper_last_zxid" => {
                out.insert("zk_last_zxid".into(), format!("0x{:x}", v as u64));
                continue;
            }
            "corekeeper_znodes" => (Some("zk_znode_count".into()), v),
            "corekeeper_sessions" => (Some("zk_global_sessions".into()), v),
            "corekeeper_inflight_txns" => (Some("ck_shard_0_inflight".into()), v),
            "corekeeper_wal_flush_seconds_count" => (Some("ck_shard_0_flushes".into()), v),
            "corekeeper_wal_flush_seconds_sum" => (Some("ck_shard_0_flush_us_sum".into()), v * 1e6),
            "corekeeper_wal_batch_txns_sum" => (Some("ck_shard_0_flushed_txns".into()), v),
            "corekeeper_wal_flush_seconds_bucket" => {
                let le = match label {
                    Some("+Inf") => "inf".to_string(),
                    Some(s) => match s.parse::<f64>() {
                        Ok(b) => format!("{}", (b * 1e6).round() as u64),
                        Err(_) => continue,
                    },
                    None => continue,
                };
                (Some(format!("ck_shard_0_flush_us_le_{le}")), v)
            }
            _ => continue,
        };
        if let Some(k) = k {
            out.insert(k, format!("{v}"));
        }
    }
    out
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
    // Keys sort as text (core 10 before core 2): order the numbers.
    v.sort_unstable();
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

    /// What corekeeper's `/metrics` says in the state of `AFTER` (the lines `top` reads,
    /// and one it does not).
    const AFTER_METRICS: &str = "# HELP corekeeper_core_requests_total Requests answered, by core.\n# TYPE corekeeper_core_requests_total counter\ncorekeeper_core_requests_total{core=\"0\"} 300\ncorekeeper_core_requests_total{core=\"1\"} 50\ncorekeeper_core_bytes_in_total{core=\"0\"} 2048\ncorekeeper_core_connections{core=\"0\"} 3\ncorekeeper_core_busy_seconds_total{core=\"0\"} 0.5\ncorekeeper_core_busy_seconds_total{core=\"1\"} 0.1\ncorekeeper_last_zxid 32\ncorekeeper_znodes 9\ncorekeeper_uptime_seconds 12.5\ncorekeeper_wal_flush_seconds_bucket{le=\"0.0001\"} 1\ncorekeeper_wal_flush_seconds_bucket{le=\"0.0005\"} 15\ncorekeeper_wal_flush_seconds_bucket{le=\"+Inf\"} 20\ncorekeeper_wal_flush_seconds_sum 0.004\ncorekeeper_wal_flush_seconds_count 20\ncorekeeper_wal_batch_txns_sum 60\n";

    #[test]
    fn metrics_read_as_the_same_sample() {
        let m = from_metrics(AFTER_METRICS);
        let a = parse(AFTER);
        for (k, v) in &a {
            let got = m.get(k).unwrap_or_else(|| panic!("{k} missing from {m:?}"));
            if k == "zk_last_zxid" {
                continue;
            }
            let (got, want): (f64, f64) = (got.parse().unwrap(), v.parse().unwrap());
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{k}: {got}"
            );
        }
        assert_eq!(m["zk_last_zxid"], "0x20");
        let text = render("x", &parse(BEFORE), &m, 2.0);
        assert_eq!(text, render("x", &parse(BEFORE), &a, 2.0));
    }

    #[test]
    fn cores_are_in_numeric_order() {
        let s = parse("ck_core_10_requests\t1\nck_core_2_requests\t1\nck_core_1_requests\t1\n");
        assert_eq!(cores(&s), vec![1, 2, 10]);
    }

    #[test]
    fn a_refused_mntr_is_recognised() {
        assert!(mntr_refused(
            "mntr is not executed because it is not in the whitelist.\n"
        ));
        assert!(!mntr_refused("zk_version\t3.8.0\n"));
    }

    #[test]
    fn no_flushes_shows_dashes_and_no_cores_no_rows() {
        let s = parse("zk_last_zxid\t0x1\n");
        let text = render("x", &s, &s, 1.0);
        assert!(text.contains("p50 - p99 -"), "{text}");
        assert_eq!(text.lines().count(), 3);
    }
}
