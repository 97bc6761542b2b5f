//! End to end on the mock target: the `ckbench` binary runs a bounded number of ops on
//! the virtual clock and writes text, JSON, hdr log and SVG plots; `compare` reads the
//! JSON back. Bounded by op count (`--max-ops`), never by wall time.

use std::path::Path;
use std::process::Command;

use bench::report::RunReport;

fn ckbench(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ckbench"))
        .args(args)
        .output()
        .expect("run ckbench");
    assert!(
        out.status.success(),
        "ckbench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_mock(dir: &Path, label: &str, extra: &[&str]) -> RunReport {
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "run",
        "--target",
        "mock",
        "--label",
        label,
        "--workload",
        "mix:80/20",
        "--sessions",
        "4",
        "--inflight",
        "2",
        "--keys",
        "200",
        "--dist",
        "zipf:0.99",
        "--warmup-s",
        "1",
        "--duration-s",
        "3600",
        "--max-ops",
        "20000",
        "--seed",
        "17",
        "--out",
        d,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = ckbench(&args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let report = RunReport::from_json(&stdout).expect("stdout is the JSON report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ops/s  p99"),
        "progress line on stderr: {stderr}"
    );
    report
}

#[test]
fn run_writes_every_output_and_compare_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = run_mock(dir.path(), "mock-a", &[]);
    assert_eq!(a.ops, 20_000, "bounded by --max-ops");
    assert_eq!(a.config.seed, 17);
    assert!(a.ops_per_s > 0.0);
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    let kinds: Vec<_> = a.kinds.iter().map(|k| (k.kind.name(), k.ops)).collect();
    assert_eq!(
        kinds,
        [("get", 16_000), ("set", 4_000)],
        "mix 80/20 is exact"
    );
    // mock latencies: reads 100-150 us, writes 400-450 us, FIFO behind each other
    assert!(
        a.latency.p50_us >= 100 && a.latency.max_us < 2_000,
        "{:?}",
        a.latency
    );

    for f in [
        "mock-a.txt",
        "mock-a.json",
        "mock-a.hlog",
        "spectrum.svg",
        "throughput.svg",
    ] {
        let p = dir.path().join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 200, "{f} missing or trivial ({len} bytes)");
    }
    let svg = std::fs::read_to_string(dir.path().join("spectrum.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polyline") && svg.contains("mock-a"),
        "spectrum.svg"
    );
    assert!(svg.contains("99%"), "nines axis labelled");
    let text = std::fs::read_to_string(dir.path().join("mock-a.txt")).unwrap();
    assert!(
        text.contains("seed 17") && text.contains("ops 20000"),
        "{text}"
    );
    let hlog = std::fs::read_to_string(dir.path().join("mock-a.hlog")).unwrap();
    assert!(hlog.contains("Tag=mock-a"), "{hlog}");

    // Same seed, same numbers: the mock pipeline is deterministic.
    let dir2 = tempfile::tempdir().unwrap();
    let again = run_mock(dir2.path(), "mock-a", &[]);
    assert_eq!(again.latency, a.latency);
    assert_eq!(again.intervals, a.intervals);

    // A second "system" and the comparison of both.
    let b = run_mock(dir.path(), "mock-b", &["--seed", "18"]);
    assert_eq!(b.ops, 20_000);
    let cmp_dir = dir.path().join("cmp");
    let out = ckbench(&[
        "compare",
        dir.path().join("mock-a.json").to_str().unwrap(),
        dir.path().join("mock-b.json").to_str().unwrap(),
        "--out",
        cmp_dir.to_str().unwrap(),
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("mock-a") && table.contains("mock-b") && table.contains("x)"),
        "{table}"
    );
    let svg = std::fs::read_to_string(cmp_dir.join("throughput.svg")).unwrap();
    assert!(
        svg.contains("mock-a") && svg.contains("mock-b"),
        "one line per system"
    );
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ckbench"))
        .args(["run", "--sessions", "zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--sessions: \"zero\" is not a number"),
        "{err}"
    );
}

#[test]
fn open_loop_on_the_mock() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = ckbench(&[
        "run",
        "--target",
        "mock",
        "--workload",
        "get",
        "--rate",
        "5000",
        "--sessions",
        "3",
        "--warmup-s",
        "0",
        "--duration-s",
        "3600",
        "--max-ops",
        "10000",
        "--seed",
        "3",
        "--out",
        d,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("open loop") && text.contains("throughput 5000.0 ops/s"),
        "{text}"
    );
    assert!(text.contains("uncorrected"), "{text}");
}
