//! Reports: the text summary, JSON, the hdrhistogram interval log and the comparison
//! table of several runs.
//!
//! Contract: a [`RunReport`] holds everything a later `ckbench compare` needs (the
//! configuration with its seed, totals, per-kind percentiles, errors by name, the
//! per-second series and the percentile spectrum), so runs made at different times or on
//! different systems compare from their JSON alone. Latencies are microseconds
//! throughout; the text renders them for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use serde::{Deserialize, Serialize};

use crate::config::{Load, RunConfig};
use crate::driver::NANOS_PER_S;
use crate::progress::fmt_us;
use crate::server_stats::ServerStats;
use crate::stats::{ErrorCounts, INTERVAL_NS, Percentiles, RunStats, error_name};
use crate::workload::OpKind;

/// Most nines the percentile spectrum goes to (99.9999%).
pub const SPECTRUM_NINES_MAX: f64 = 6.0;
/// Spectrum points per nine.
pub const SPECTRUM_STEPS_PER_NINE: u32 = 20;

/// One op kind's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindReport {
    pub kind: OpKind,
    pub ops: u64,
    pub ops_per_s: f64,
    pub latency: Percentiles,
    /// Error name (`NoNode (-101)`) to count.
    pub errors: BTreeMap<String, u64>,
}

/// One second of the measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalReport {
    /// End of the second, seconds since the measured window began.
    pub t_s: f64,
    pub ops: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// A point of the latency percentile spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// In [0, 1).
    pub quantile: f64,
    pub latency_us: u64,
}

/// Everything about one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The system's name in tables and plots.
    pub label: String,
    pub config: RunConfig,
    pub ops: u64,
    pub ops_per_s: f64,
    pub measured_s: f64,
    /// All kinds; coordinated-omission corrected in open loop.
    pub latency: Percentiles,
    /// Open loop only: latency from the actual send, for contrast.
    pub latency_from_send: Option<Percentiles>,
    pub kinds: Vec<KindReport>,
    pub errors: BTreeMap<String, u64>,
    pub intervals: Vec<IntervalReport>,
    pub spectrum: Vec<SpectrumPoint>,
    pub warnings: Vec<String>,
    /// `mntr` of each server before and after (real targets; empty if refused).
    #[serde(default)]
    pub servers: Vec<ServerStats>,
}

fn error_names(e: &ErrorCounts) -> BTreeMap<String, u64> {
    e.iter()
        .map(|(code, n)| (format!("{} ({code})", error_name(*code)), *n))
        .collect()
}

/// Latency at quantiles 1 - 10^-x for x = 0, 1/steps, ... up to the nines the sample
/// count supports (no point claiming p99.99 of 1000 ops).
pub fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let nines = (h.len() as f64).log10().clamp(1.0, SPECTRUM_NINES_MAX);
    let steps = (nines * SPECTRUM_STEPS_PER_NINE as f64).round() as u32;
    (0..=steps)
        .map(|i| {
            let x = i as f64 / SPECTRUM_STEPS_PER_NINE as f64;
            let quantile = 1.0 - 10f64.powf(-x);
            SpectrumPoint {
                quantile,
                latency_us: h.value_at_quantile(quantile),
            }
        })
        .collect()
}

impl RunReport {
    /// Builds the report of a finished run.
    pub fn new(config: &RunConfig, stats: &RunStats, warnings: Vec<String>) -> Self {
        let secs = stats.measured_ns as f64 / NANOS_PER_S as f64;
        let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let kinds = stats
            .kinds
            .iter()
            .map(|(kind, k)| KindReport {
                kind: *kind,
                ops: k.hist.len(),
                ops_per_s: per_s(k.hist.len()),
                latency: Percentiles::of(&k.hist),
                errors: error_names(&k.errors),
            })
            .collect();
        let interval_s = INTERVAL_NS as f64 / NANOS_PER_S as f64;
        let intervals = stats
            .measured_intervals()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = Percentiles::of(&s.hist);
                IntervalReport {
                    t_s: (i + 1) as f64 * interval_s,
                    ops: s.ops,
                    errors: s.errors,
                    p50_us: p.p50_us,
                    p99_us: p.p99_us,
                    max_us: p.max_us,
                }
            })
            .collect();
        let all = stats.all();
        RunReport {
            label: config.label.clone(),
            config: config.clone(),
            ops: stats.ops(),
            ops_per_s: stats.ops_per_s(),
            measured_s: secs,
            latency: Percentiles::of(&all),
            latency_from_send: matches!(config.load, Load::Open { .. })
                .then(|| Percentiles::of(&stats.all_from_send())),
            kinds,
            errors: error_names(&stats.errors()),
            intervals,
            spectrum: spectrum(&all),
            warnings,
            servers: Vec::new(),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data and always serialises")
    }

    /// Parses a report written by [`RunReport::to_json`].
    pub fn from_json(s: &str) -> Result<Self, String> {
        serde_json::from_str(s).map_err(|e| format!("not a ckbench run report: {e}"))
    }

    /// The human summary.
    pub fn to_text(&self) -> String {
        let c = &self.config;
        let mut t = String::new();
        let load = match c.load {
            Load::Closed { inflight } => format!(
                "sessions {} x inflight {inflight} (closed loop)",
                c.sessions
            ),
            Load::Open { rate } => format!(
                "sessions {}, rate {rate} ops/s (open loop; latency from intended send time)",
                c.sessions
            ),
        };
        let w = &c.workload;
        let _ = writeln!(t, "ckbench {}: workload {}, {load}", self.label, w.kind);
        let _ = writeln!(
            t,
            "  servers {}, keys {} {}, value {} B, warm-up {} s, seed {}",
            c.connect.servers.join(","),
            w.key_count,
            w.dist,
            w.value_bytes,
            c.warmup_s,
            c.seed
        );
        let _ = writeln!(
            t,
            "  ops {}  measured {:.2} s  throughput {:.1} ops/s",
            self.ops, self.measured_s, self.ops_per_s
        );
        let _ = writeln!(t, "  latency {}", percentile_line(&self.latency));
        if let Some(p) = &self.latency_from_send {
            let _ = writeln!(
                t,
                "  (from actual send, uncorrected: {})",
                percentile_line(p)
            );
        }
        let _ = writeln!(
            t,
            "\n  {:<13}{:>10}{:>12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>8}",
            "kind", "ops", "ops/s", "p50", "p90", "p99", "p99.9", "max", "errors"
        );
        for k in &self.kinds {
            let l = &k.latency;
            let _ = writeln!(
                t,
                "  {:<13}{:>10}{:>12.1}{:>10}{:>10}{:>10}{:>10}{:>10}{:>8}",
                k.kind.name(),
                k.ops,
                k.ops_per_s,
                fmt_us(l.p50_us),
                fmt_us(l.p90_us),
                fmt_us(l.p99_us),
                fmt_us(l.p999_us),
                fmt_us(l.max_us),
                k.errors.values().sum::<u64>()
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(t, "\n  errors: none");
        } else {
            let _ = writeln!(t, "\n  errors by code:");
            for (name, n) in &self.errors {
                let _ = writeln!(t, "    {name:<28}{n:>10}");
            }
        }
        for s in &self.servers {
            server_text(&mut t, s, self.measured_s);
        }
        for w in &self.warnings {
            let _ = writeln!(t, "  warning: {w}");
        }
        t
    }
}

/// Counters whose change during the run the summary shows.
const SERVER_DELTA_KEYS: [&str; 4] = [
    "zk_packets_received",
    "zk_packets_sent",
    "ck_wal_flushes",
    "ck_snapshots",
];
/// Gauges the summary shows as they were after the run.
const SERVER_AFTER_KEYS: [&str; 4] = [
    "zk_avg_latency",
    "zk_max_latency",
    "ck_wal_txns_per_flush_avg",
    "ck_wal_flush_us_avg",
];

/// The server's side of the run: a few `mntr` counters and the per-core table.
fn server_text(t: &mut String, s: &ServerStats, secs: f64) {
    let deltas = s.deltas();
    let _ = writeln!(t, "\n  server {} (mntr after - before):", s.server);
    for k in SERVER_DELTA_KEYS {
        if let Some(d) = deltas.get(k) {
            let _ = writeln!(t, "    {k:<28}{d:>14.0}");
        }
    }
    for k in SERVER_AFTER_KEYS {
        if let Some(v) = s.after.get(k) {
            let _ = writeln!(t, "    {k:<28}{v:>14} (after)");
        }
    }
    let cores = s.per_core();
    let metrics: std::collections::BTreeSet<&String> =
        cores.values().flat_map(|m| m.keys()).collect();
    if cores.is_empty() {
        return;
    }
    let _ = write!(t, "    {:<6}", "core");
    for m in &metrics {
        let _ = write!(t, "{:>16}{:>14}", m, format!("{m}/s"));
    }
    t.push('\n');
    for (core, m) in &cores {
        let _ = write!(t, "    {core:<6}");
        for name in &metrics {
            let d = m.get(*name).copied().unwrap_or(0.0);
            let rate = if secs > 0.0 { d / secs } else { 0.0 };
            let _ = write!(t, "{d:>16.0}{rate:>14.1}");
        }
        t.push('\n');
    }
}

fn percentile_line(p: &Percentiles) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        fmt_us(p.p50_us),
        fmt_us(p.p90_us),
        fmt_us(p.p99_us),
        fmt_us(p.p999_us),
        fmt_us(p.max_us)
    )
}

/// Writes the measured intervals as an hdrhistogram interval log (values in
/// microseconds; the log's max column divided by 1000, i.e. milliseconds): per second,
/// all kinds tagged with the run's label and, when the run mixes kinds, each kind
/// tagged `<label>-<kind>` (e.g. `corekeeper-get`). HdrHistogram's `HistogramLogProcessor` and plotters read it.
pub fn write_interval_log<W: io::Write>(
    stats: &RunStats,
    label: &str,
    out: &mut W,
) -> Result<(), String> {
    let mut ser = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("ckbench interval log: latency in microseconds, one histogram per second")
        .with_max_value_divisor(1000.0)
        .begin_log_with(out, &mut ser)
        .map_err(|e| format!("writing interval log: {e}"))?;
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let all_tag = clean(label);
    let len = std::time::Duration::from_nanos(INTERVAL_NS);
    for (i, s) in stats.measured_intervals().iter().enumerate() {
        let start = len * i as u32;
        log.write_histogram(&s.hist, start, len, Tag::new(&all_tag))
            .map_err(|e| format!("writing interval log: {e:?}"))?;
        if s.by_kind.len() < 2 {
            continue; // one kind: the all-kinds histogram says it all
        }
        for (kind, h) in &s.by_kind {
            let tag = clean(&format!("{label}-{kind}"));
            log.write_histogram(h, start, len, Tag::new(&tag))
                .map_err(|e| format!("writing interval log: {e:?}"))?;
        }
    }
    Ok(())
}

/// A side-by-side table of runs; every column after the first also shows its ratio to
/// the first run (`2.00x` = twice the first's value).
pub fn compare_table(runs: &[RunReport]) -> String {
    let mut t = String::new();
    if runs.is_empty() {
        return t;
    }
    let width = runs
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(0)
        .max(18)
        + 2;
    let _ = write!(t, "{:<12}", "metric");
    for r in runs {
        let _ = write!(t, "{:>width$}", r.label);
    }
    t.push('\n');
    type Get = fn(&RunReport) -> f64;
    let rows: [(&str, Get, bool); 7] = [
        ("ops/s", |r| r.ops_per_s, false),
        ("p50", |r| r.latency.p50_us as f64, true),
        ("p90", |r| r.latency.p90_us as f64, true),
        ("p99", |r| r.latency.p99_us as f64, true),
        ("p99.9", |r| r.latency.p999_us as f64, true),
        ("max", |r| r.latency.max_us as f64, true),
        ("errors", |r| r.errors.values().sum::<u64>() as f64, false),
    ];
    for (name, get, is_latency) in rows {
        let _ = write!(t, "{name:<12}");
        let base = get(&runs[0]);
        for (i, r) in runs.iter().enumerate() {
            let v = get(r);
            let mut cell = if is_latency {
                fmt_us(v as u64)
            } else {
                format!("{v:.1}")
            };
            if i > 0 && base > 0.0 {
                let _ = write!(cell, " ({:.2}x)", v / base);
            }
            let _ = write!(t, "{cell:>width$}");
        }
        t.push('\n');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{IntervalSample, KindStats, new_hist};

    fn stats() -> RunStats {
        let mut s = RunStats::new(1);
        let mut k = KindStats::default();
        for v in 1..=100 {
            k.hist.record(v * 10).unwrap();
            k.hist_from_send.record(v).unwrap();
        }
        k.errors.insert(-101, 3);
        s.kinds.insert(OpKind::Get, k);
        for i in 0..3 {
            let mut iv = IntervalSample::empty(i);
            iv.ops = 50 * i;
            iv.hist = new_hist();
            iv.hist.record(100 * (i + 1)).unwrap();
            for kind in [OpKind::Get, OpKind::Set] {
                let mut h = new_hist();
                h.record(100 * (i + 1)).unwrap();
                iv.by_kind.insert(kind, h);
            }
            s.merge_interval(&iv);
        }
        s.measured_ns = 2 * NANOS_PER_S;
        s
    }

    fn report() -> RunReport {
        let mut c = RunConfig::defaults(1234);
        c.label = "corekeeper".into();
        RunReport::new(&c, &stats(), vec![])
    }

    #[test]
    fn text_has_the_numbers() {
        let r = report();
        let t = r.to_text();
        assert!(t.contains("throughput 50.0 ops/s"), "{t}");
        assert!(
            t.contains("p50 500us  p90 900us  p99 990us  p99.9 1.00ms  max 1.00ms"),
            "{t}"
        );
        assert!(t.contains("NoNode (-101)") && t.contains(" 3\n"), "{t}");
        assert!(t.contains("seed 1234"), "{t}");
        assert!(t.contains("get"), "{t}");
    }

    #[test]
    fn server_counters_and_per_core_table() {
        let mut r = report();
        let m = |s: &str| crate::server_stats::parse_mntr(s);
        r.servers.push(ServerStats {
            server: "127.0.0.1:2181".into(),
            before: m("zk_packets_received\t10\nck_core_0_requests\t0\nck_core_1_requests\t0\n"),
            after: m("zk_packets_received\t110\nck_core_0_requests\t60\nck_core_1_requests\t40\nzk_avg_latency\t0.5\n"),
        });
        let t = r.to_text();
        assert!(t.contains("server 127.0.0.1:2181"), "{t}");
        assert!(
            t.contains("zk_packets_received") && t.contains("100\n"),
            "{t}"
        );
        assert!(t.contains("0.5 (after)"), "{t}");
        // 60 and 40 requests over the 2 s window
        assert!(
            t.contains("    0                   60          30.0"),
            "{t}"
        );
        assert!(
            t.contains("    1                   40          20.0"),
            "{t}"
        );
        assert_eq!(RunReport::from_json(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let back = RunReport::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.intervals.len(), 2, "warm-up second left out");
        assert_eq!(back.intervals[0].ops, 50);
        assert_eq!(back.intervals[1].p99_us, 300);
        assert!(
            RunReport::from_json("{}")
                .unwrap_err()
                .contains("not a ckbench")
        );
    }

    #[test]
    fn spectrum_follows_the_nines() {
        let r = report();
        let s = &r.spectrum;
        // 100 samples: 2 nines, 20 steps each, plus the 0 point
        assert_eq!(s.len(), 41);
        assert_eq!(s[0].latency_us, 10);
        assert_eq!(s[20].latency_us, 900); // p90
        assert_eq!(s[40].latency_us, 990); // p99
        assert!(s.windows(2).all(|w| w[0].latency_us <= w[1].latency_us));
    }

    #[test]
    fn interval_log_is_readable() {
        let mut buf = Vec::new();
        write_interval_log(&stats(), "core keeper", &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.contains("Tag=core_keeper"), "{text}");
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        let hists: Vec<_> = IntervalLogIterator::new(&buf)
            .filter_map(|e| match e.unwrap() {
                LogEntry::Interval(h) => Some((
                    h.tag().map(|t| t.as_str().to_string()),
                    h.start_timestamp().as_secs(),
                    h.max(),
                )),
                _ => None,
            })
            .collect();
        let t = |s: &str| Some(s.to_string());
        assert_eq!(
            hists,
            [
                (t("core_keeper"), 0, 0.2),
                (t("core_keeper-get"), 0, 0.2),
                (t("core_keeper-set"), 0, 0.2),
                (t("core_keeper"), 1, 0.3),
                (t("core_keeper-get"), 1, 0.3),
                (t("core_keeper-set"), 1, 0.3),
            ]
        );
    }

    #[test]
    fn compare_shows_ratios() {
        let a = report();
        let mut b = report();
        b.label = "zookeeper".into();
        b.ops_per_s = 25.0;
        b.latency.p99_us = 1980;
        let t = compare_table(&[a, b]);
        assert!(t.contains("corekeeper") && t.contains("zookeeper"), "{t}");
        let ops = t.lines().find(|l| l.starts_with("ops/s")).unwrap();
        assert!(
            ops.contains("50.0") && ops.contains("25.0 (0.50x)"),
            "{ops}"
        );
        let p99 = t.lines().find(|l| l.starts_with("p99 ")).unwrap();
        assert!(p99.contains("1.98ms (2.00x)"), "{p99}");
    }
}
