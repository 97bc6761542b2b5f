//! Latency and throughput recording: hdrhistograms per op kind, per-second intervals,
//! errors by ZooKeeper error code, merged across worker threads.
//!
//! Units: latencies are recorded in **microseconds** with 3 significant digits
//! (auto-resizing histograms, so memory follows the largest value seen), clamped to
//! [`LATENCY_US_MAX`]. Only successful replies go into the latency histograms; failed
//! ones are counted by error code.
//!
//! ## Coordinated omission
//! A load generator that waits for a slow reply before sending the next request stops
//! sampling exactly while the system is slow, so a stall shows up as *one* slow request
//! instead of all the requests that should have been sent during it. In open loop
//! (`--rate`) the runner keeps a fixed schedule: request *i* of a worker is **intended**
//! at `t0 + i * period`, whether or not the previous one finished or the driver could
//! send it on time. Each op is recorded twice:
//! - `hist`: completion − intended send time (the corrected latency; what reports show);
//! - `hist_from_send`: completion − actual send time (what a naive tool would show).
//!
//! If sending stalls for `d` seconds at rate `r`, the `d * r` requests that were due meet
//! the stall with latencies spread from `d` down to 0, exactly what a user arriving at
//! those instants would have seen. In closed loop the next request is only due when a
//! slot frees, so intended = actual send and both histograms agree (closed loop measures
//! service time under back-pressure by design; use `--rate` for user-facing latency).
//!
//! Intervals: op completions are binned by completion time into one-second intervals
//! from the worker's start `t0` (interval `i` covers `[t0 + i s, t0 + (i+1) s)`); a
//! completion time earlier than the open interval (possible when real drivers' reader
//! threads race) is counted in the open interval. Workers publish closed intervals; the
//! aggregator merges interval `i` of every worker.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use transport::jute::ErrorCode;

use crate::driver::{NANOS_PER_S, Nanos};
use crate::workload::OpKind;

/// Significant digits kept by every histogram.
pub const SIGFIG: u8 = 3;
/// Largest latency recorded (larger values are clamped): one hour.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Length of a progress / throughput-over-time interval.
pub const INTERVAL_NS: Nanos = NANOS_PER_S;

/// A fresh latency histogram (microseconds, auto-resizing).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new(SIGFIG).expect("3 significant digits is a valid hdrhistogram precision")
}

fn record_us(h: &mut Histogram<u64>, ns: Nanos) {
    // Round up so a sub-microsecond reply still counts as 1 us (hdr's lowest value).
    let us = ns.div_ceil(1_000).clamp(1, LATENCY_US_MAX);
    // `record` grows an auto-resizing histogram (`saturating_record` would clamp to its
    // current top); it cannot fail for a clamped value.
    let recorded = h.record(us);
    debug_assert!(recorded.is_ok(), "auto-resizing histogram records {us}");
}

fn merge_hist(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both auto-resize, so addition cannot run out of range.
    into.add(from)
        .expect("auto-resizing histograms of equal precision always add");
}

/// Name of a ZooKeeper error code for reports (`NoNode`), or the number if unknown.
pub fn error_name(code: i32) -> String {
    match ErrorCode::from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error {code}"),
    }
}

/// Counts by error code (the wire value, so unknown codes survive).
pub type ErrorCounts = BTreeMap<i32, u64>;

fn merge_errors(into: &mut ErrorCounts, from: &ErrorCounts) {
    for (code, n) in from {
        *into.entry(*code).or_default() += n;
    }
}

/// Everything recorded for one op kind over the measured window.
#[derive(Debug, Clone)]
pub struct KindStats {
    /// Completion − intended send (coordinated-omission corrected).
    pub hist: Histogram<u64>,
    /// Completion − actual send.
    pub hist_from_send: Histogram<u64>,
    pub errors: ErrorCounts,
}

impl Default for KindStats {
    fn default() -> Self {
        KindStats {
            hist: new_hist(),
            hist_from_send: new_hist(),
            errors: ErrorCounts::new(),
        }
    }
}

impl KindStats {
    pub fn merge(&mut self, other: &KindStats) {
        merge_hist(&mut self.hist, &other.hist);
        merge_hist(&mut self.hist_from_send, &other.hist_from_send);
        merge_errors(&mut self.errors, &other.errors);
    }

    /// Failed ops.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One second of one worker (or, merged, of all workers).
#[derive(Debug, Clone)]
pub struct IntervalSample {
    /// Interval number from the start of the run (warm-up included).
    pub index: u64,
    /// Successful ops completed in it.
    pub ops: u64,
    /// Failed ops completed in it.
    pub errors: u64,
    /// Latencies (corrected) of the successful ops, all kinds together.
    pub hist: Histogram<u64>,
    /// The same, per op kind (for per-kind interval logs).
    pub by_kind: BTreeMap<OpKind, Histogram<u64>>,
}

impl IntervalSample {
    pub fn empty(index: u64) -> Self {
        IntervalSample {
            index,
            ops: 0,
            errors: 0,
            hist: new_hist(),
            by_kind: BTreeMap::new(),
        }
    }

    pub fn merge(&mut self, other: &IntervalSample) {
        debug_assert_eq!(self.index, other.index, "merge the same interval");
        self.ops += other.ops;
        self.errors += other.errors;
        merge_hist(&mut self.hist, &other.hist);
        for (kind, h) in &other.by_kind {
            merge_hist(self.by_kind.entry(*kind).or_insert_with(new_hist), h);
        }
    }
}

/// The outcome of one op, as the runner hands it to the recorder.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub kind: OpKind,
    /// When the schedule wanted it sent (= `sent` in closed loop).
    pub intended: Nanos,
    pub sent: Nanos,
    pub done: Nanos,
    /// `Ok(())` or the ZooKeeper error code.
    pub result: Result<(), i32>,
    /// Inside the measured window (after warm-up, before the end, within `--max-ops`).
    pub measured: bool,
}

/// One worker's recorder. Not shared: each runner thread owns one.
#[derive(Debug)]
pub struct Recorder {
    t0: Nanos,
    kinds: BTreeMap<OpKind, KindStats>,
    current: IntervalSample,
    closed: Vec<IntervalSample>,
}

impl Recorder {
    /// A recorder whose interval 0 starts at `t0` on the driver's clock.
    pub fn new(t0: Nanos) -> Self {
        Recorder {
            t0,
            kinds: BTreeMap::new(),
            current: IntervalSample::empty(0),
            closed: Vec::new(),
        }
    }

    fn index_of(&self, t: Nanos) -> u64 {
        t.saturating_sub(self.t0) / INTERVAL_NS
    }

    /// Closes every interval that ended at or before `now`.
    pub fn advance(&mut self, now: Nanos) {
        let idx = self.index_of(now);
        while self.current.index < idx {
            let next = IntervalSample::empty(self.current.index + 1);
            self.closed.push(std::mem::replace(&mut self.current, next));
        }
    }

    /// Records one op (closing intervals up to its completion first).
    pub fn record(&mut self, s: Sample) {
        debug_assert!(s.intended <= s.sent, "an op is never sent before it is due");
        self.advance(s.done);
        match s.result {
            Ok(()) => {
                self.current.ops += 1;
                let latency = s.done.saturating_sub(s.intended);
                record_us(&mut self.current.hist, latency);
                let by_kind = self.current.by_kind.entry(s.kind).or_insert_with(new_hist);
                record_us(by_kind, latency);
            }
            Err(_) => self.current.errors += 1,
        }
        if !s.measured {
            return;
        }
        let k = self.kinds.entry(s.kind).or_default();
        match s.result {
            Ok(()) => {
                record_us(&mut k.hist, s.done.saturating_sub(s.intended));
                record_us(&mut k.hist_from_send, s.done.saturating_sub(s.sent));
            }
            Err(code) => *k.errors.entry(code).or_default() += 1,
        }
    }

    /// Intervals closed since the last call.
    pub fn take_closed(&mut self) -> Vec<IntervalSample> {
        std::mem::take(&mut self.closed)
    }

    /// Closes the open interval and returns the totals and the last intervals.
    pub fn finish(mut self) -> (BTreeMap<OpKind, KindStats>, Vec<IntervalSample>) {
        let last = std::mem::replace(&mut self.current, IntervalSample::empty(0));
        if last.ops + last.errors > 0 {
            self.closed.push(last);
        }
        (self.kinds, self.closed)
    }
}

/// Latency summary of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    /// hdrhistogram's value at each quantile (the highest value equivalent to the
    /// recorded ones at 3 significant digits; exact below 2048 us).
    pub fn of(h: &Histogram<u64>) -> Self {
        Percentiles {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// A whole run, merged over workers.
#[derive(Debug, Clone)]
pub struct RunStats {
    pub kinds: BTreeMap<OpKind, KindStats>,
    /// Merged intervals, by index, gaps filled with empty ones.
    pub intervals: Vec<IntervalSample>,
    /// Length of the measured window (longest over workers).
    pub measured_ns: Nanos,
    /// Intervals before this index are warm-up.
    pub first_measured_interval: u64,
}

impl RunStats {
    pub fn new(first_measured_interval: u64) -> Self {
        RunStats {
            kinds: BTreeMap::new(),
            intervals: Vec::new(),
            measured_ns: 0,
            first_measured_interval,
        }
    }

    /// Adds one worker's totals.
    pub fn merge_kinds(&mut self, kinds: &BTreeMap<OpKind, KindStats>) {
        for (kind, k) in kinds {
            self.kinds.entry(*kind).or_default().merge(k);
        }
    }

    /// Adds one worker's interval (any order).
    pub fn merge_interval(&mut self, s: &IntervalSample) {
        while self.intervals.len() as u64 <= s.index {
            let i = self.intervals.len() as u64;
            self.intervals.push(IntervalSample::empty(i));
        }
        self.intervals[s.index as usize].merge(s);
    }

    /// All kinds' corrected latencies together.
    pub fn all(&self) -> Histogram<u64> {
        let mut h = new_hist();
        for k in self.kinds.values() {
            merge_hist(&mut h, &k.hist);
        }
        h
    }

    /// All kinds' latencies from actual send together.
    pub fn all_from_send(&self) -> Histogram<u64> {
        let mut h = new_hist();
        for k in self.kinds.values() {
            merge_hist(&mut h, &k.hist_from_send);
        }
        h
    }

    /// All kinds' errors together.
    pub fn errors(&self) -> ErrorCounts {
        let mut e = ErrorCounts::new();
        for k in self.kinds.values() {
            merge_errors(&mut e, &k.errors);
        }
        e
    }

    /// Successful measured ops.
    pub fn ops(&self) -> u64 {
        self.kinds.values().map(|k| k.hist.len()).sum()
    }

    /// Successful measured ops per second of the measured window.
    pub fn ops_per_s(&self) -> f64 {
        if self.measured_ns == 0 {
            return 0.0;
        }
        self.ops() as f64 * NANOS_PER_S as f64 / self.measured_ns as f64
    }

    /// The intervals of the measured window.
    ///
    /// The drain after the end (replies to the last requests) can spill into one more,
    /// mostly empty, second; it is left out so the throughput series does not end in a
    /// false dip (its ops are still in the totals).
    pub fn measured_intervals(&self) -> &[IntervalSample] {
        let len = self.intervals.len();
        let from = (self.first_measured_interval as usize).min(len);
        let measured = self.measured_ns.div_ceil(INTERVAL_NS).max(1) as usize;
        &self.intervals[from..(from + measured).min(len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn sample(kind: OpKind, intended: Nanos, done: Nanos, result: Result<(), i32>) -> Sample {
        Sample {
            kind,
            intended,
            sent: intended,
            done,
            result,
            measured: true,
        }
    }

    #[test]
    fn percentiles_match_hand_computed_values() {
        // 1..=100 us once each: the q-quantile is the ceil(q*100)th smallest value.
        let mut h = new_hist();
        for v in 1..=100 {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(
            (p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.max_us),
            (50, 90, 99, 100, 100)
        );
        assert_eq!(p.count, 100);
        assert!((p.mean_us - 50.5).abs() < 1e-9);

        // 990 fast (100 us) and 10 slow (5000 us) ops: p99 is still fast, p99.9 slow.
        let mut h = new_hist();
        h.record_n(100, 990).unwrap();
        h.record_n(5000, 10).unwrap();
        let p = Percentiles::of(&h);
        assert_eq!(p.p99_us, 100);
        // 5000 needs 3 significant digits: its bucket is 4 us wide (4096..8191 step 4).
        assert!(h.equivalent(p.p999_us, 5000), "{}", p.p999_us);
        assert!(h.equivalent(p.max_us, 5000));
    }

    #[test]
    fn recorder_bins_by_completion_second_and_counts_errors() {
        let mut r = Recorder::new(10 * MS);
        r.record(sample(OpKind::Get, 10 * MS, 11 * MS, Ok(())));
        r.record(sample(OpKind::Get, 500 * MS, 1_500 * MS, Ok(()))); // ends in interval 1
        r.record(sample(OpKind::Set, 1_500 * MS, 3_200 * MS, Err(-101))); // interval 3
        let closed = r.take_closed();
        assert_eq!(
            closed.iter().map(|i| (i.index, i.ops)).collect::<Vec<_>>(),
            [(0, 1), (1, 1), (2, 0)]
        );
        let (kinds, last) = r.finish();
        assert_eq!(last.len(), 1);
        assert_eq!((last[0].index, last[0].errors), (3, 1));
        assert_eq!(kinds[&OpKind::Get].hist.len(), 2);
        let get = &kinds[&OpKind::Get].hist;
        assert!(get.equivalent(get.max(), 1_000_000), "{}", get.max());
        assert_eq!(kinds[&OpKind::Set].errors[&-101], 1);
        assert_eq!(error_name(-101), "NoNode");
        assert_eq!(error_name(-9999), "error -9999");
    }

    #[test]
    fn warmup_ops_count_in_intervals_only() {
        let mut r = Recorder::new(0);
        let mut s = sample(OpKind::Get, 0, MS, Ok(()));
        s.measured = false;
        r.record(s);
        let (kinds, ivs) = r.finish();
        assert!(kinds.is_empty());
        assert_eq!(ivs[0].ops, 1);
    }

    #[test]
    fn corrected_and_from_send_latencies_differ_when_sending_stalls() {
        let mut r = Recorder::new(0);
        // due at 0, sent at 900 ms (sender stalled), done at 901 ms
        r.record(Sample {
            kind: OpKind::Get,
            intended: 0,
            sent: 900 * MS,
            done: 901 * MS,
            result: Ok(()),
            measured: true,
        });
        let (kinds, _) = r.finish();
        let k = &kinds[&OpKind::Get];
        assert!(k.hist.equivalent(k.hist.max(), 901_000));
        assert_eq!(k.hist_from_send.max(), 1_000);
    }

    #[test]
    fn merge_across_workers() {
        let mut a = Recorder::new(0);
        let mut b = Recorder::new(0);
        for i in 0..10 {
            a.record(sample(OpKind::Get, i * MS, i * MS + 100_000, Ok(())));
            b.record(sample(OpKind::Get, i * MS, i * MS + 300_000, Ok(())));
        }
        b.record(sample(OpKind::Get, 0, 2_100 * MS, Err(-4)));
        let mut run = RunStats::new(0);
        for r in [a, b] {
            let (kinds, ivs) = r.finish();
            run.merge_kinds(&kinds);
            for iv in &ivs {
                run.merge_interval(iv);
            }
        }
        run.measured_ns = NANOS_PER_S;
        assert_eq!(run.ops(), 20);
        assert_eq!(run.ops_per_s(), 20.0);
        let p = Percentiles::of(&run.all());
        assert_eq!((p.p50_us, p.max_us), (100, 300));
        assert_eq!(run.errors()[&-4], 1);
        assert_eq!(run.intervals.len(), 3, "gap interval 1 filled");
        assert_eq!(
            run.measured_intervals().len(),
            1,
            "the drain's spill-over is not plotted"
        );
        assert_eq!(run.intervals[0].ops, 20);
        assert_eq!(run.intervals[2].errors, 1);
    }
}
