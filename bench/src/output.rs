//! Writes a run's (or a comparison's) files into an output directory.
//!
//! Files: `<label>.txt` (the summary), `<label>.json` (the [`RunReport`], input of
//! `ckbench compare`), `<label>.hlog` (hdrhistogram interval log), `spectrum.svg` and
//! `throughput.svg` (one line per run). Labels are sanitised into file names.

use std::fs;
use std::path::{Path, PathBuf};

use crate::plot;
use crate::report::{RunReport, compare_table, write_interval_log};
use crate::stats::RunStats;

/// A label as a file name: ASCII letters, digits, `-` and `_`; the rest become `_`.
pub fn file_stem(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "run".into() } else { s }
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<PathBuf, String> {
    fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

fn ensure_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

/// Writes one run's files; returns their paths.
pub fn write_run(dir: &Path, report: &RunReport, stats: &RunStats) -> Result<Vec<PathBuf>, String> {
    ensure_dir(dir)?;
    let stem = file_stem(&report.label);
    let mut files = vec![
        write(dir.join(format!("{stem}.txt")), report.to_text().as_bytes())?,
        write(
            dir.join(format!("{stem}.json")),
            report.to_json().as_bytes(),
        )?,
    ];
    let mut log = Vec::new();
    write_interval_log(stats, &report.label, &mut log)?;
    files.push(write(dir.join(format!("{stem}.hlog")), &log)?);
    files.extend(write_plots(dir, std::slice::from_ref(report))?);
    Ok(files)
}

/// Writes the comparison table and the plots of several runs; returns their paths.
pub fn write_compare(dir: &Path, runs: &[RunReport]) -> Result<Vec<PathBuf>, String> {
    ensure_dir(dir)?;
    let mut files = vec![write(
        dir.join("compare.txt"),
        compare_table(runs).as_bytes(),
    )?];
    files.extend(write_plots(dir, runs)?);
    Ok(files)
}

fn write_plots(dir: &Path, runs: &[RunReport]) -> Result<Vec<PathBuf>, String> {
    let spectrum = dir.join("spectrum.svg");
    plot::spectrum_svg(runs, &spectrum)?;
    let throughput = dir.join("throughput.svg");
    plot::throughput_svg(runs, &throughput)?;
    Ok(vec![spectrum, throughput])
}

/// Reads the reports named on `ckbench compare`'s command line.
pub fn read_reports(paths: &[PathBuf]) -> Result<Vec<RunReport>, String> {
    paths
        .iter()
        .map(|p| {
            let s = fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            RunReport::from_json(&s).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}
