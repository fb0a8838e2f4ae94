//! The scaling table and charts reference 001 publishes.

use super::{Family, RunResult, ScalingReport, files};
use kibitzer_charts::{LineChart, Series, XAxis};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// A metric of the scaling table and charts.
pub struct ScalingMetric {
    /// File-name part.
    pub key: &'static str,
    /// Axis label.
    pub label: &'static str,
    /// Its value for a run (`None` when not measured).
    pub value: fn(&RunResult) -> Option<f64>,
}

/// The charted metrics: reconstruction (MSE, L0, dead fraction, FVU) and
/// the board (coverage and board reconstruction of the board category and
/// of all properties).
pub const SCALING_METRICS: [ScalingMetric; 8] = [
    ScalingMetric {
        key: "mse",
        label: "MSE",
        value: |r| Some(r.mse),
    },
    ScalingMetric {
        key: "l0",
        label: "L0 (active features per position)",
        value: |r| Some(r.l0),
    },
    ScalingMetric {
        key: "dead_fraction",
        label: "dead features (fraction)",
        value: |r| Some(r.dead_fraction),
    },
    ScalingMetric {
        key: "fvu",
        label: "FVU",
        value: |r| Some(r.fvu),
    },
    ScalingMetric {
        key: "coverage_board",
        label: "BSP coverage, board",
        value: |r| r.coverage.get("board").copied(),
    },
    ScalingMetric {
        key: "coverage_all",
        label: "BSP coverage, all properties",
        value: |r| r.coverage.get("all").copied(),
    },
    ScalingMetric {
        key: "reconstruction_board",
        label: "board reconstruction F1, board",
        value: |r| r.reconstruction.get("board").copied(),
    },
    ScalingMetric {
        key: "reconstruction_all",
        label: "board reconstruction F1, all properties",
        value: |r| r.reconstruction.get("all").copied(),
    },
];

/// One chart per family present and metric: the metric against the number
/// of features (log scale), one line per sparsity value. Returns
/// `(file name, chart)` pairs.
pub fn scaling_charts(runs: &[RunResult]) -> Vec<(String, LineChart)> {
    let families: BTreeSet<Family> = runs.iter().map(|r| r.spec.family).collect();
    let mut out = Vec::new();
    for family in families {
        let of_family: Vec<&RunResult> = runs.iter().filter(|r| r.spec.family == family).collect();
        let mut values: Vec<f64> = of_family.iter().map(|r| r.spec.sparsity).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        for metric in &SCALING_METRICS {
            let series = values
                .iter()
                .map(|&v| {
                    let mut runs: Vec<&&RunResult> =
                        of_family.iter().filter(|r| r.spec.sparsity == v).collect();
                    runs.sort_by_key(|r| r.spec.d_sae);
                    Series::new(
                        runs.first()
                            .map(|r| r.spec.sparsity_label())
                            .unwrap_or_default(),
                        runs.iter()
                            .filter_map(|r| (metric.value)(r).map(|y| (r.spec.d_sae as f64, y)))
                            .collect(),
                    )
                })
                .collect();
            out.push((
                format!("{}-{}.svg", family.name(), metric.key),
                LineChart {
                    title: format!("{} SAEs: {}", family.name(), metric.label),
                    x_label: "number of features (log scale)".into(),
                    y_label: metric.label.into(),
                    x_axis: XAxis::Log2,
                    series,
                },
            ));
        }
    }
    out
}

fn fmt_metric(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "—".into(),
    }
}

/// The scaling table as Markdown, with the settings and the charts.
pub fn scaling_markdown(report: &ScalingReport, charts: &[&str]) -> String {
    let s = &report.settings;
    let mut md = String::new();
    let _ = writeln!(md, "# Sweep: {} dictionaries\n", report.runs.len());
    let _ = writeln!(
        md,
        "Activations `{}` ({} rows of width {}), labels `{}` ({}, {} rows evaluated, {:.0}% of games held out for board reconstruction).",
        report.activations,
        report.store_rows,
        report.d_in,
        report.labels,
        if report.game == "othello" {
            format!("{}x{} Othello", report.board_size, report.board_size)
        } else {
            report.game.clone()
        },
        report.runs.first().map_or(0, |r| r.rows),
        100.0 * report.eval.test_fraction
    );
    let _ = writeln!(
        md,
        "Grid `{}`: {} steps of {} rows, learning rate {}, seed {}{}.\n",
        s.grid.preset,
        s.steps,
        s.grid.batch_size,
        s.grid.lr,
        s.seed,
        s.train_seconds
            .map(|t| format!(", trained in {t:.0} s"))
            .unwrap_or_default()
    );
    md.push_str(
        "| run | architecture | features | sparsity | MSE | L0 | dead % | FVU | coverage (board) | coverage (all) | reconstruction (board) | reconstruction (all) |\n\
         |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.spec.name,
            r.spec.family.name(),
            r.spec.d_sae,
            r.spec.sparsity_label(),
            fmt_metric(Some(r.mse), 5),
            fmt_metric(Some(r.l0), 2),
            fmt_metric(Some(100.0 * r.dead_fraction), 1),
            fmt_metric(Some(r.fvu), 4),
            fmt_metric(r.coverage.get("board").copied(), 3),
            fmt_metric(r.coverage.get("all").copied(), 3),
            fmt_metric(r.reconstruction.get("board").copied(), 3),
            fmt_metric(r.reconstruction.get("all").copied(), 3),
        );
    }
    if !charts.is_empty() {
        md.push_str("\n## Charts\n\n");
        for c in charts {
            let _ = writeln!(md, "![{c}]({}/{c})", files::CHARTS);
        }
    }
    md
}
