//! `ckbench`: measure corekeeper and Apache ZooKeeper with the same workload.
//!
//! `ckbench run ...` runs one benchmark, prints the summary (text or JSON) to stdout and
//! the live progress line to stderr, and with `--out DIR` writes the text, JSON, hdr
//! interval log and SVG plots. `ckbench compare A.json B.json ...` puts runs side by side;
//! `ckbench compare --systems zookeeper,corekeeper ...` starts both servers and runs a
//! matrix against them, interleaved (see `bench::matrix`).
//! Exit status: 0 on success, 2 on a bad command line, 1 when the run fails.

use std::process::ExitCode;

use bench::config::{Command, Format, RunConfig, Target, USAGE, parse_args};
use bench::matrix::{self, MatrixConfig};
use bench::mock::{MockConfig, MockConnector};
use bench::output;
use bench::progress::StderrProgress;
use bench::report::{RunReport, compare_table};
use bench::runner;
use bench::server_stats;
use bench::zk::ZkConnector;

fn main() -> ExitCode {
    // A seed from the clock unless --seed is given; it is printed in every report.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("failover") {
        return failover(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("modes") {
        return modes(&args[1..], seed);
    }
    let cmd = match parse_args(std::env::args().skip(1), seed) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ckbench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Command::Help => {
            print!("{USAGE}");
            Ok(())
        }
        Command::Run(cfg) => run(&cfg),
        Command::Compare {
            inputs,
            out,
            format,
        } => compare(&inputs, out.as_deref(), format),
        Command::CompareRun(cfg) => compare_run(&cfg),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ckbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ckbench failover ...` (see `bench::failover`).
fn modes(args: &[String], seed: u64) -> ExitCode {
    let cfg = match bench::modes::parse(args, seed) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ckbench modes: {e}\n\n{}", bench::modes::USAGE);
            return ExitCode::from(2);
        }
    };
    match bench::modes::run(&cfg) {
        Ok(rows) => {
            print!("{}", bench::modes::table(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ckbench modes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn failover(args: &[String]) -> ExitCode {
    let cfg = match bench::failover::parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ckbench failover: {e}\n\n{}", bench::failover::USAGE);
            return ExitCode::from(2);
        }
    };
    match bench::failover::run(&cfg) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ckbench failover: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: &RunConfig) -> Result<(), String> {
    let servers = &cfg.connect.servers;
    let mut mntr_warnings = Vec::new();
    let (outcome, before) = match cfg.target {
        Target::Mock => {
            let mock = MockConfig {
                seed: cfg.seed,
                ..MockConfig::default()
            };
            (
                runner::run(cfg, &MockConnector::new(mock), &mut StderrProgress),
                None,
            )
        }
        Target::Corekeeper | Target::Zookeeper => {
            let before = server_stats::snapshot(servers, &mut mntr_warnings);
            let zk = ZkConnector::new(cfg.connect.chroot.clone())
                .with_failover(servers.clone())
                .with_sync_reads(cfg.sync_reads);
            (runner::run(cfg, &zk, &mut StderrProgress), Some(before))
        }
    };
    let outcome = outcome.map_err(|e| e.to_string())?;
    let mut warnings = outcome.warnings;
    let server_stats = before.map(|b| {
        let after = server_stats::snapshot(servers, &mut Vec::new());
        server_stats::pair(servers, b, after)
    });
    warnings.extend(mntr_warnings);
    let mut report = RunReport::new(cfg, &outcome.stats, warnings);
    report.servers = server_stats.unwrap_or_default();
    match cfg.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", report.to_json()),
    }
    if let Some(dir) = &cfg.out {
        for f in output::write_run(dir, &report, &outcome.stats)? {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

fn compare(
    inputs: &[std::path::PathBuf],
    out: Option<&std::path::Path>,
    format: Format,
) -> Result<(), String> {
    let runs = output::read_reports(inputs)?;
    match format {
        Format::Text => print!("{}", compare_table(&runs)),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&runs).map_err(|e| e.to_string())?
        ),
    }
    if let Some(dir) = out {
        for f in output::write_compare(dir, &runs)? {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

fn compare_run(cfg: &MatrixConfig) -> Result<(), String> {
    let outcome = matrix::run(cfg)?;
    print!(
        "\n{}\n{}",
        matrix::summary_header(cfg, &outcome.deployments),
        matrix::summary_table(cfg, &outcome.runs)
    );
    if let Some(dir) = &cfg.out {
        let files = matrix::write_outputs(dir, cfg, &outcome)?;
        eprintln!("wrote {} files under {}", files.len(), dir.display());
    }
    Ok(())
}
