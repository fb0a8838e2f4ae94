//! Per-feature statistics for the feature viewer: frequency, maximum, histogram, top-activating positions, best-matching board-state properties.

use super::{EvalConfig, SweepError};
use kibitzer_bsp::metrics::coverage_f1;
use kibitzer_bsp::{BspLabels, MetricsConfig, SparseActivations};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One top-activating position of a feature.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopActivation {
    /// Labelled row (the first, in activation order, of its position).
    pub row: u32,
    /// The feature's activation there.
    pub activation: f32,
    /// Rows where the feature fires on this same labelled position (same
    /// values of every property, so the same board, move and flips): a
    /// position reached in many games is shown once.
    pub count: u32,
}

/// How well a feature, thresholded, predicts one property (reference 002's
/// coverage F1, at the feature's best threshold).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BspMatch {
    /// The property.
    pub bsp: String,
    /// F1.
    pub f1: f32,
    /// Of the rows where the feature is active, the fraction where the
    /// property holds.
    pub precision: f32,
    /// Of the rows where the property holds, the fraction where the feature
    /// is active.
    pub recall: f32,
    /// The threshold (fraction of the feature's maximum) reaching it.
    pub threshold: f32,
}

/// What the viewer shows of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// Fraction of rows where it is positive.
    pub frequency: f64,
    /// Its largest activation.
    pub max_activation: f32,
    /// Positive activations in equal bins over `(0, max_activation]`.
    pub histogram: Vec<u32>,
    /// Its largest activations, largest first (ties: lower row first).
    pub top: Vec<TopActivation>,
    /// Its best-matching properties, best first.
    pub bsps: Vec<BspMatch>,
}

/// `features.json` of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// The run.
    pub run: String,
    /// Labelled rows the statistics are over.
    pub rows: usize,
    /// One entry per feature.
    pub features: Vec<FeatureSummary>,
}

/// What [`feature_summaries`] keeps per feature.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryConfig {
    /// Top-activating rows.
    pub top_examples: usize,
    /// Best-matching properties.
    pub top_bsps: usize,
    /// Histogram bins.
    pub histogram_bins: usize,
    /// Thresholds, fractions of the feature's maximum, ascending (a feature
    /// is active where its activation is strictly above).
    pub thresholds: Vec<f32>,
}

impl SummaryConfig {
    pub(super) fn of(eval: &EvalConfig) -> SummaryConfig {
        SummaryConfig {
            top_examples: eval.top_examples,
            top_bsps: eval.top_bsps,
            histogram_bins: eval.histogram_bins.max(1),
            thresholds: MetricsConfig::default().coverage_thresholds,
        }
    }
}

/// Per-feature statistics of `features` (rows aligned with `labels`):
/// frequency, maximum, a histogram, the top-activating rows, and the
/// properties each feature predicts best.
///
/// A property's match is reference 002's coverage F1 of "feature above `t`
/// x its maximum" against the property, at the best of `config.thresholds`
/// (the highest threshold among equals), over all rows given. The cost is
/// one visit of every positive activation per property true on its row.
pub fn feature_summaries(
    features: &SparseActivations,
    labels: &BspLabels,
    config: &SummaryConfig,
) -> Result<Vec<FeatureSummary>, SweepError> {
    if features.rows() != labels.rows() {
        return Err(kibitzer_bsp::BspError::RowCount {
            what: "feature activations".into(),
            expected: labels.rows(),
            found: features.rows(),
        }
        .into());
    }
    let catalog = labels.catalog();
    let n_bsps = catalog.len();
    let positives = labels.positives();
    let mut offsets = Vec::with_capacity(labels.rows() + 1);
    let mut trues: Vec<u32> = Vec::new();
    offsets.push(0);
    for r in 0..labels.rows() {
        trues.extend(labels.bits().ones_in_row(r).map(|b| b as u32));
        offsets.push(trues.len());
    }
    let n_t = config.thresholds.len();
    let bins = config.histogram_bins.max(1);
    // Entries of level l are above thresholds 0..l; level 0 is never active.
    let mut hist = vec![0u32; (n_t + 1) * n_bsps];
    let mut on = vec![0u64; n_t + 1];
    let mut cumulative = vec![0u64; n_bsps];
    let mut best: Vec<(f32, u64, u64, usize)> = vec![(0.0, 0, 0, 0); n_bsps];
    let mut absolute = vec![0f32; n_t];
    let rows = features.rows().max(1) as f64;
    let mut out = Vec::with_capacity(features.cols());
    for c in 0..features.cols() {
        let (rows_c, values) = features.column(c);
        let entries: Vec<(u32, f32)> = rows_c
            .iter()
            .zip(values)
            .filter(|(_, v)| **v > 0.0)
            .map(|(r, v)| (*r, *v))
            .collect();
        let max = entries.iter().fold(0f32, |m, e| m.max(e.1));
        let mut histogram = vec![0u32; bins];
        for &(_, v) in &entries {
            let bin = ((v / max) * bins as f32) as usize;
            histogram[bin.min(bins - 1)] += 1;
        }
        for (a, &t) in absolute.iter_mut().zip(&config.thresholds) {
            *a = t * max;
        }
        hist.iter_mut().for_each(|h| *h = 0);
        on.iter_mut().for_each(|o| *o = 0);
        for &(r, v) in &entries {
            let level = absolute.iter().take_while(|&&t| v > t).count();
            if level == 0 {
                continue;
            }
            on[level] += 1;
            let h = &mut hist[level * n_bsps..(level + 1) * n_bsps];
            for &b in &trues[offsets[r as usize]..offsets[r as usize + 1]] {
                h[b as usize] += 1;
            }
        }
        cumulative.iter_mut().for_each(|x| *x = 0);
        best.iter_mut().for_each(|b| *b = (0.0, 0, 0, 0));
        let mut active = 0u64;
        for u in (0..n_t).rev() {
            let level = u + 1;
            active += on[level];
            for (x, &h) in cumulative
                .iter_mut()
                .zip(&hist[level * n_bsps..(level + 1) * n_bsps])
            {
                *x += u64::from(h);
            }
            if active == 0 {
                continue;
            }
            for (b, &tp) in cumulative.iter().enumerate() {
                if tp == 0 {
                    continue;
                }
                let f1 = coverage_f1(tp, active, positives[b]);
                if f1 > best[b].0 {
                    best[b] = (f1, tp, active, u);
                }
            }
        }
        let mut ranked: Vec<usize> = (0..n_bsps).filter(|&b| best[b].0 > 0.0).collect();
        ranked.sort_by(|&a, &b| best[b].0.total_cmp(&best[a].0).then(a.cmp(&b)));
        let bsps = ranked
            .into_iter()
            .take(config.top_bsps)
            .map(|b| {
                let (f1, tp, active, u) = best[b];
                BspMatch {
                    bsp: catalog.bsps()[b].name.clone(),
                    f1,
                    precision: tp as f32 / active as f32,
                    recall: tp as f32 / positives[b].max(1) as f32,
                    threshold: config.thresholds[u],
                }
            })
            .collect();
        let frequency = entries.len() as f64 / rows;
        out.push(FeatureSummary {
            frequency,
            max_activation: max,
            histogram,
            top: distinct_top(entries, labels, config.top_examples),
            bsps,
        });
    }
    Ok(out)
}

/// The `n` largest activations of distinct labelled positions, largest
/// first (ties: lower row first), each with how many of `entries` share its
/// position.
fn distinct_top(mut entries: Vec<(u32, f32)>, labels: &BspLabels, n: usize) -> Vec<TopActivation> {
    entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut first_of: HashMap<&[u64], usize> = HashMap::new();
    let mut top: Vec<TopActivation> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    for (row, activation) in entries {
        let key = labels.bits().row(row as usize);
        match first_of.get(key) {
            Some(&i) => counts[i] += 1,
            None => {
                first_of.insert(key, counts.len());
                counts.push(1);
                top.push(TopActivation {
                    row,
                    activation,
                    count: 0,
                });
            }
        }
    }
    top.truncate(n);
    for (t, c) in top.iter_mut().zip(counts) {
        t.count = c;
    }
    top
}
