//! SVG plots of one or several runs, one line per system (run label).
//!
//! - latency percentile spectrum: x is the percentile on a "nines" axis
//!   (x = -log10(1 - q): 0 = p0, 1 = p90, 2 = p99, 3 = p99.9), y is latency in ms;
//! - throughput over time: x is seconds into the measured window, y is ops/s.
//!
//! SVG only (plotters' `svg_backend`): text is left to the viewer's fonts, so no font
//! rasteriser and no system library is needed; any browser opens the files.

use std::path::Path;

use plotters::prelude::*;

use crate::report::RunReport;

/// Plot size in pixels.
pub const PLOT_SIZE: (u32, u32) = (960, 540);

fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-12).log10()
}

/// `0%`, `90%`, `99%`, `99.9%`, ... for whole nines; fractional ticks as percentiles.
pub fn nines_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x - 2.0).ceil().max(0.0) as usize;
    format!("{p:.digits$}%")
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    COLORS[i % COLORS.len()]
}

fn err<E: std::fmt::Debug>(what: &str, path: &Path) -> impl FnOnce(E) -> String {
    let p = path.display().to_string();
    let what = what.to_string();
    move |e| format!("plotting {what} to {p}: {e:?}")
}

type Series = (String, Vec<(f64, f64)>);

fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    nines_axis: bool,
) -> Result<(), String> {
    let e = || err(title, path);
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        * 1.1;
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let root = SVGBackend::new(path, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(e())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .margin_right(48) // room for the last x label (e.g. "99.999%")
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(e())?;
    let fmt_x = |x: &f64| {
        if nines_axis {
            nines_label(*x)
        } else {
            format!("{x:.0}")
        }
    };
    let x_labels = if nines_axis {
        x_max.round() as usize + 1
    } else {
        10
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(x_labels)
        .x_label_formatter(&fmt_x)
        .draw()
        .map_err(e())?;
    for (i, (label, points)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(e())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e())?;
    root.present().map_err(e())?;
    Ok(())
}

/// Latency percentile spectrum of `runs` to `path` (SVG).
pub fn spectrum_svg(runs: &[RunReport], path: &Path) -> Result<(), String> {
    let series: Vec<Series> = runs
        .iter()
        .map(|r| {
            let pts = r
                .spectrum
                .iter()
                .map(|p| (nines(p.quantile), p.latency_us as f64 / 1e3))
                .collect();
            (r.label.clone(), pts)
        })
        .collect();
    line_chart(
        path,
        "latency by percentile",
        "percentile",
        "latency (ms)",
        &series,
        true,
    )
}

/// Least part of a second an interval must cover to be plotted as a rate.
pub const INTERVAL_COVER_MIN: f64 = 0.5;

/// (end of second, ops/s) of each interval, as a rate over the part of the second inside
/// the measured window. The last interval often holds only the replies that landed
/// after the deadline (a few ms' worth): plotted as a whole second it would show a
/// false drop to zero, so intervals covering less than [`INTERVAL_COVER_MIN`] are left
/// out (their ops still count in every total).
pub fn throughput_points(r: &RunReport) -> Vec<(f64, f64)> {
    let len_s = crate::stats::INTERVAL_NS as f64 / crate::driver::NANOS_PER_S as f64;
    r.intervals
        .iter()
        .filter_map(|i| {
            let cover = (i.t_s.min(r.measured_s) - (i.t_s - len_s)) / len_s;
            (cover >= INTERVAL_COVER_MIN).then(|| (i.t_s, i.ops as f64 / (cover * len_s)))
        })
        .collect()
}

/// Lines of `(x, y)` points, one per named series, to `path` (SVG).
pub fn lines_svg(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    line_chart(path, title, x_desc, y_desc, series, false)
}

/// Throughput over time of `runs` to `path` (SVG).
pub fn throughput_svg(runs: &[RunReport], path: &Path) -> Result<(), String> {
    let series: Vec<Series> = runs
        .iter()
        .map(|r| (r.label.clone(), throughput_points(r)))
        .collect();
    line_chart(
        path,
        "throughput over time",
        "seconds",
        "ops/s",
        &series,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_labels() {
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(5.0), "99.999%");
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn throughput_leaves_out_the_sliver_after_the_deadline() {
        let c = crate::config::RunConfig::defaults(1);
        let mut r = RunReport::new(&c, &crate::stats::RunStats::new(0), vec![]);
        r.measured_s = 2.6;
        r.intervals = [(1.0, 100), (2.0, 110), (3.0, 30), (4.0, 2)]
            .iter()
            .map(|&(t_s, ops)| crate::report::IntervalReport {
                t_s,
                ops,
                errors: 0,
                p50_us: 1,
                p99_us: 1,
                max_us: 1,
            })
            .collect();
        let p = throughput_points(&r);
        assert_eq!(p.len(), 3, "{p:?}");
        assert_eq!(p[..2], [(1.0, 100.0), (2.0, 110.0)]);
        assert!((p[2].1 - 50.0).abs() < 1e-9, "30 ops in 0.6 s: {p:?}");
    }
}
