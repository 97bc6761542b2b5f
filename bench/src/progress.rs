//! The live progress line: one line per completed second, all workers merged.
//!
//! Contract: the runner calls [`ProgressSink::interval`] once per interval, in order,
//! after every worker has closed it. The line shows that second's throughput and the p99
//! of the measured window so far; warm-up seconds are marked and not in the p99.

use std::io::Write;

/// What one progress line says.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressLine {
    /// Seconds since the start of the run (warm-up included), at the interval's end.
    pub second: u64,
    pub warmup: bool,
    /// Successful ops in this second.
    pub ops: u64,
    /// Failed ops in this second.
    pub errors: u64,
    /// p99 of the measured window so far, microseconds (0 before any measured op).
    pub p99_us_so_far: u64,
}

/// Receives progress lines.
pub trait ProgressSink {
    fn interval(&mut self, line: &ProgressLine);
}

/// Formats a latency in microseconds for people: `850us`, `1.23ms`, `2.50s`.
pub fn fmt_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}us"),
        1_000..1_000_000 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// `[   3s] measure    12345 ops/s  p99 1.23ms  errors 0`.
pub fn format_line(l: &ProgressLine) -> String {
    format!(
        "[{:>5}s] {:<7} {:>10} ops/s  p99 {:<9} errors {}",
        l.second,
        if l.warmup { "warmup" } else { "measure" },
        l.ops,
        if l.warmup {
            "-".to_string()
        } else {
            fmt_us(l.p99_us_so_far)
        },
        l.errors
    )
}

/// Writes each line to stderr (so stdout stays clean for `--format json`).
#[derive(Debug, Default)]
pub struct StderrProgress;

impl ProgressSink for StderrProgress {
    fn interval(&mut self, line: &ProgressLine) {
        // A closed stderr must not stop the run.
        let _ = writeln!(std::io::stderr(), "{}", format_line(line));
    }
}

/// Keeps the lines (tests) or drops them.
#[derive(Debug, Default)]
pub struct CollectProgress {
    pub lines: Vec<ProgressLine>,
}

impl ProgressSink for CollectProgress {
    fn interval(&mut self, line: &ProgressLine) {
        self.lines.push(line.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let l = ProgressLine {
            second: 3,
            warmup: false,
            ops: 12345,
            errors: 2,
            p99_us_so_far: 1234,
        };
        assert_eq!(
            format_line(&l),
            "[    3s] measure      12345 ops/s  p99 1.23ms    errors 2"
        );
        let w = ProgressLine { warmup: true, ..l };
        assert!(format_line(&w).contains("warmup") && format_line(&w).contains("p99 -"));
        assert_eq!(fmt_us(999), "999us");
        assert_eq!(fmt_us(2_500_000), "2.50s");
    }
}
