//! Coverage and board reconstruction, reference 002's metrics, computed
//! exactly and fast.
//!
//! # Definitions (reference 002's published code, `SAE_BoardGameEval`)
//!
//! **Feature scale.** For every feature, the maximum activation over the
//! first `max_activation_tokens` rows (256,000 by default) and whether it was
//! ever nonzero there ([`FeatureScale`]). Features that never fired are left
//! out (`get_firing_features`). A feature is **active at threshold `t`** on a
//! token when its activation is strictly greater than `t x |max|`
//! (`activations_FBL > thresholds_TF11`), with `t` and the product in f32
//! (`torch.arange(0.0, 1.1, 0.1)` times the maxima).
//!
//! **Counts.** On the "train" rows, for every threshold `t`, feature `f` and
//! property `b`: `on(t, f)` = tokens where `f` is active, `TP(t, f, b)` =
//! those where `b` also holds, `P(b)` = tokens where `b` holds.
//!
//! **Coverage** (`get_F1_per_feature`, `best_f1_average`). With
//! `eps = 1e-8` and f32 arithmetic:
//! `precision = TP / (on + eps)`, `recall = TP / (P + eps)`,
//! `F1 = 2 precision recall / (precision + recall + eps)`. For every
//! threshold and property, the best feature's F1; its mean over the
//! properties of a group; the maximum over the thresholds
//! `0, 0.1, ..., 1.0` is the group's coverage. The mean runs over *all*
//! properties of the group, also those that never hold (whose F1 is 0): the
//! reference divides by every cell of the board. The report adds the mean
//! over properties that hold at least once ("coverage over present").
//! A category's coverage is the mean of its groups' coverages
//! (`add_average_coverage_for_columns` with weight 1).
//!
//! **High-precision features** (`get_above_below_counts`). At threshold
//! `t`, feature `f` is a high-precision classifier of property `b` when
//! `TP x (1 / on) >= 0.95` (f32) and `TP >= 10`, counted on the train rows.
//!
//! **Board reconstruction** (`eval_board_reconstruction`). On the "test"
//! rows, property `b` is predicted at threshold `t` on a token when some
//! feature that is high precision for `b` at `t` is active there. Counting
//! over all tokens and properties of a group: `TP`, `FP`, `FN`, and `F1` as
//! above (`precision = TP / (TP + FP + eps)`, `recall = TP / (TP + FN +
//! eps)`, f32). The reference also computes a per-square F1 where a square
//! (slot) with exactly one true-positive class and exactly one false-positive
//! class on a token counts its true positive as false
//! (`f1_score_per_square`); the best threshold is the first maximum of that
//! per-square F1 over the thresholds `0, 0.1, ..., 0.9`, and the group's
//! board reconstruction is the plain F1 (`f1_score_per_class`) at that
//! threshold — exactly what its results table reports. A category's board
//! reconstruction pools its groups: the means of `TP`, `FP`, `FN` at each
//! group's own best threshold give the F1 (f64, `eps = 1e-8`,
//! `add_average_board_reconstruction_for_columns`).
//!
//! Places where this code had to choose: the reference's eleventh threshold
//! slot (1.0) in board reconstruction is overwritten with a "highest active
//! threshold" variant and then excluded from the choice of the best
//! threshold, so it never reaches the results; it is not computed here.
//! Sums of per-property F1 run in f64 here (f32 in torch), which can move a
//! coverage in the seventh digit.
//!
//! # Speed
//!
//! Nothing loops over features x properties x tokens. For every feature the
//! tokens where it is active are visited once: each gets a *level* (how many
//! thresholds its activation exceeds), and the properties that hold there (a
//! list built once from the bit matrix) are added to a per-level histogram.
//! Suffix sums over the levels give `TP` at every threshold. The cost is the
//! number of nonzero activations times the number of properties true per
//! token, plus features x thresholds x properties for the F1s, in parallel
//! over blocks of features. Reconstruction only visits the features that are
//! high precision for something, and ORs their property lists into
//! per-threshold bit rows, in parallel over blocks of tokens.

use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::activations::{Activations, FeatureScale};
use crate::bits::{WORD, iter_ones};
use crate::error::{BspError, Result};
use crate::property::{BspLabels, Catalog};
use crate::report::{
    AggregateCoverage, AggregateReconstruction, BspCoverage, BspReconstruction, BspReport,
    CoverageReport, GroupCoverage, GroupReconstruction, ReconstructionReport, ThresholdCounts,
};

/// The epsilon of reference 002's F1 formulas.
pub const EPS: f32 = 1e-8;

/// The thresholds `0, 0.1, ..., (n-1)/10` as f32, computed like
/// `torch.arange(0.0, n / 10, 0.1)`: in f64, then rounded.
pub fn reference_thresholds(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f64 * 0.1) as f32).collect()
}

/// The knobs of the metrics; the defaults are reference 002's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// Coverage thresholds, fractions of each feature's maximum, ascending
    /// (default `0, 0.1, ..., 1.0`).
    pub coverage_thresholds: Vec<f32>,
    /// Board reconstruction thresholds, ascending (default `0, ..., 0.9`).
    pub reconstruction_thresholds: Vec<f32>,
    /// Minimum precision of a high-precision feature (0.95). Compared as
    /// the reference does, `TP x (1 / on) >= precision` in f32, so 1.0
    /// rejects some perfect features (`41 x (1 / 41)` rounds below 1).
    pub precision_threshold: f32,
    /// Minimum true positives of a high-precision feature (10).
    pub min_true_positives: u64,
    /// Rows the maximum activation is taken over (256,000).
    pub max_activation_tokens: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            coverage_thresholds: reference_thresholds(11),
            reconstruction_thresholds: reference_thresholds(10),
            precision_threshold: 0.95,
            min_true_positives: 10,
            max_activation_tokens: 256_000,
        }
    }
}

impl MetricsConfig {
    /// Checks the thresholds (non-empty, finite, at least 0, strictly
    /// ascending) and the precision (in 0..=1).
    pub fn validate(&self) -> Result<()> {
        for (field, list) in [
            ("coverage_thresholds", &self.coverage_thresholds),
            ("reconstruction_thresholds", &self.reconstruction_thresholds),
        ] {
            if list.is_empty() {
                return Err(BspError::Config {
                    field,
                    detail: "no threshold; expected e.g. 0, 0.1, ..., 1.0".into(),
                });
            }
            if let Some(bad) = list.iter().find(|t| !t.is_finite() || **t < 0.0) {
                return Err(BspError::Config {
                    field,
                    detail: format!("threshold {bad}; expected finite fractions >= 0"),
                });
            }
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err(BspError::Config {
                    field,
                    detail: format!("{list:?} is not strictly ascending"),
                });
            }
        }
        if !(0.0..=1.0).contains(&self.precision_threshold) {
            return Err(BspError::Config {
                field: "precision_threshold",
                detail: format!("{}; expected a value in 0..=1", self.precision_threshold),
            });
        }
        if self.max_activation_tokens == 0 {
            return Err(BspError::Config {
                field: "max_activation_tokens",
                detail: "0; expected at least one token".into(),
            });
        }
        Ok(())
    }
}

/// Reference 002's coverage F1 of one feature for one property (f32).
pub fn coverage_f1(true_positives: u64, active: u64, positives: u64) -> f32 {
    let tp = true_positives as f32;
    let precision = tp / (active as f32 + EPS);
    let recall = tp / (positives as f32 + EPS);
    2.0 * (precision * recall) / (precision + recall + EPS)
}

/// Reference 002's precision, recall and F1 from pooled counts (f32).
pub fn counts_f1(tp: u64, fp: u64, fn_: u64) -> (f32, f32, f32) {
    let t = tp as f32;
    let precision = t / ((tp + fp) as f32 + EPS);
    let recall = t / ((tp + fn_) as f32 + EPS);
    let f1 = 2.0 * (precision * recall) / (precision + recall + EPS);
    (precision, recall, f1)
}

/// Whether a feature is a high-precision classifier: `TP x (1 / on) >=
/// precision` in f32 (the reference normalises by multiplying with the
/// inverse count) and `TP >= min_true_positives`.
pub fn is_high_precision(tp: u64, active: u64, precision: f32, min_true_positives: u64) -> bool {
    active > 0 && tp >= min_true_positives && tp as f32 * (1.0 / active as f32) >= precision
}

/// The sorted union of the coverage and reconstruction thresholds, and
/// where each list's thresholds sit in it.
struct Levels {
    fractions: Vec<f32>,
    coverage_of: Vec<Option<usize>>,
    reconstruction_of: Vec<Option<usize>>,
    reconstruction: Vec<usize>,
}

impl Levels {
    fn new(config: &MetricsConfig) -> Levels {
        let mut fractions: Vec<f32> = config
            .coverage_thresholds
            .iter()
            .chain(&config.reconstruction_thresholds)
            .copied()
            .collect();
        fractions.sort_by(f32::total_cmp);
        fractions.dedup();
        let position = |t: f32| fractions.iter().position(|&u| u == t);
        let mut coverage_of = vec![None; fractions.len()];
        for (i, &t) in config.coverage_thresholds.iter().enumerate() {
            coverage_of[position(t).expect(
                "fractions is the union of both lists and validate refused NaN, so t equals an entry",
            )] = Some(i);
        }
        let mut reconstruction_of = vec![None; fractions.len()];
        let mut reconstruction = Vec::new();
        for (i, &t) in config.reconstruction_thresholds.iter().enumerate() {
            let u = position(t).expect(
                "fractions is the union of both lists and validate refused NaN, so t equals an entry",
            );
            reconstruction_of[u] = Some(i);
            reconstruction.push(u);
        }
        Levels {
            fractions,
            coverage_of,
            reconstruction_of,
            reconstruction,
        }
    }

    fn len(&self) -> usize {
        self.fractions.len()
    }

    /// The absolute thresholds of a feature, in f32 as torch computes them.
    fn absolute(&self, max_abs: f32, out: &mut [f32]) {
        for (o, &t) in out.iter_mut().zip(&self.fractions) {
            *o = t * max_abs;
        }
    }
}

/// How many thresholds `value` exceeds (they ascend).
fn level(value: f32, thresholds: &[f32]) -> usize {
    thresholds.iter().take_while(|&&t| value > t).count()
}

/// The best feature for one property at one coverage threshold.
#[derive(Clone, Copy, Debug)]
struct Best {
    f1: f32,
    feature: u32,
}

const NO_FEATURE: u32 = u32::MAX;

/// The high-precision properties of one feature, per reconstruction threshold.
#[derive(Clone, Debug)]
struct HighPrecision {
    feature: usize,
    per_threshold: Vec<Vec<u32>>,
}

/// What the train pass yields.
struct TrainPass {
    /// `[coverage threshold][bsp]`.
    best: Vec<Best>,
    /// Features with at least one high-precision property.
    high_precision: Vec<HighPrecision>,
}

/// The properties that hold at each row, as compressed rows.
struct TrueLists {
    offsets: Vec<usize>,
    bsps: Vec<u32>,
}

impl TrueLists {
    fn of(labels: &BspLabels) -> TrueLists {
        let (offsets, bsps) = labels.bits().true_lists();
        TrueLists { offsets, bsps }
    }

    fn row(&self, row: usize) -> &[u32] {
        &self.bsps[self.offsets[row]..self.offsets[row + 1]]
    }
}

fn check_inputs(
    what: &str,
    activations: &Activations<'_>,
    labels: &BspLabels,
    scale: &FeatureScale,
) -> Result<()> {
    if activations.rows() != labels.rows() {
        return Err(BspError::RowCount {
            what: format!("{what} activations"),
            expected: labels.rows(),
            found: activations.rows(),
        });
    }
    if activations.cols() != scale.len() {
        return Err(BspError::ColumnCount {
            what: format!("{what} activations (features)"),
            expected: scale.len(),
            found: activations.cols(),
        });
    }
    activations.validate(&format!("{what} activations"))
}

/// Feature blocks sized so a block's histograms stay near 8 MiB and every
/// thread gets several blocks.
fn feature_blocks(features: usize, levels: usize, bsps: usize) -> Vec<Range<usize>> {
    const BUDGET: usize = 8 << 20;
    let per_feature = (levels + 1) * bsps.max(1) * 4;
    let by_memory = (BUDGET / per_feature).clamp(1, 256);
    let by_threads = features.div_ceil(4 * rayon::current_num_threads()).max(1);
    let width = by_memory.min(by_threads);
    (0..features.div_ceil(width))
        .map(|i| i * width..((i + 1) * width).min(features))
        .collect()
}

fn train_pass(
    activations: &Activations<'_>,
    labels: &BspLabels,
    scale: &FeatureScale,
    config: &MetricsConfig,
    levels: &Levels,
) -> TrainPass {
    let bsps = labels.catalog().len();
    let n_levels = levels.len();
    let true_lists = TrueLists::of(labels);
    let positives = labels.positives();
    let n_cov = config.coverage_thresholds.len();
    let n_rec = config.reconstruction_thresholds.len();
    let blocks = feature_blocks(activations.cols(), n_levels, bsps);

    let outputs: Vec<TrainPass> = blocks
        .into_par_iter()
        .map(|block| {
            let width = block.len();
            let stride = n_levels + 1;
            let mut thresholds = vec![0f32; width * n_levels];
            for (k, f) in block.clone().enumerate() {
                levels.absolute(
                    scale.max_abs[f],
                    &mut thresholds[k * n_levels..(k + 1) * n_levels],
                );
            }
            // hist[(k * stride + level) * bsps + b]: tokens of feature k at
            // exactly `level` where b holds; on[k * stride + level] likewise.
            let mut hist = vec![0u32; width * stride * bsps];
            let mut on = vec![0u64; width * stride];
            activations.for_each_positive(block.clone(), |c, row, value| {
                if !scale.alive[c] {
                    return;
                }
                let k = c - block.start;
                let l = level(value, &thresholds[k * n_levels..(k + 1) * n_levels]);
                if l == 0 {
                    return;
                }
                on[k * stride + l] += 1;
                let h = &mut hist[(k * stride + l) * bsps..(k * stride + l + 1) * bsps];
                for &b in true_lists.row(row as usize) {
                    h[b as usize] += 1;
                }
            });
            let mut best = vec![
                Best {
                    f1: 0.0,
                    feature: NO_FEATURE,
                };
                n_cov * bsps
            ];
            let mut high_precision = Vec::new();
            let mut cumulative = vec![0u64; bsps];
            for (k, feature) in block.clone().enumerate() {
                if !scale.alive[feature] {
                    continue;
                }
                cumulative.iter_mut().for_each(|c| *c = 0);
                let mut active = 0u64;
                let mut hp: Option<Vec<Vec<u32>>> = None;
                // From the highest threshold down, tokens at level > u are
                // the active ones at threshold u.
                for u in (0..n_levels).rev() {
                    let l = u + 1;
                    active += on[k * stride + l];
                    for (c, &h) in cumulative
                        .iter_mut()
                        .zip(&hist[(k * stride + l) * bsps..(k * stride + l + 1) * bsps])
                    {
                        *c += u64::from(h);
                    }
                    if active == 0 {
                        continue;
                    }
                    if let Some(ci) = levels.coverage_of[u] {
                        let row = &mut best[ci * bsps..(ci + 1) * bsps];
                        for (b, (&tp, slot)) in cumulative.iter().zip(row.iter_mut()).enumerate() {
                            if tp == 0 {
                                continue;
                            }
                            let f1 = coverage_f1(tp, active, positives[b]);
                            if f1 > slot.f1 {
                                *slot = Best {
                                    f1,
                                    feature: feature as u32,
                                };
                            }
                        }
                    }
                    if let Some(ri) = levels.reconstruction_of[u] {
                        for (b, &tp) in cumulative.iter().enumerate() {
                            if is_high_precision(
                                tp,
                                active,
                                config.precision_threshold,
                                config.min_true_positives,
                            ) {
                                hp.get_or_insert_with(|| vec![Vec::new(); n_rec])[ri]
                                    .push(b as u32);
                            }
                        }
                    }
                }
                if let Some(per_threshold) = hp {
                    high_precision.push(HighPrecision {
                        feature,
                        per_threshold,
                    });
                }
            }
            TrainPass {
                best,
                high_precision,
            }
        })
        .collect();

    // Blocks come in feature order, so keeping the first of equal F1s keeps
    // the lowest feature index, whatever the thread count.
    let mut best = vec![
        Best {
            f1: 0.0,
            feature: NO_FEATURE,
        };
        n_cov * bsps
    ];
    let mut high_precision = Vec::new();
    for out in outputs {
        for (b, o) in best.iter_mut().zip(out.best) {
            if o.f1 > b.f1 {
                *b = o;
            }
        }
        high_precision.extend(out.high_precision);
    }
    TrainPass {
        best,
        high_precision,
    }
}

/// Pooled counts of the test pass, per reconstruction threshold.
struct TestCounts {
    /// `[threshold][bsp]`.
    tp: Vec<u64>,
    fp: Vec<u64>,
    fn_: Vec<u64>,
    /// `[threshold][group]`: (token, slot) pairs with exactly one true and
    /// one false positive.
    both: Vec<u64>,
}

fn test_pass(
    activations: &Activations<'_>,
    labels: &BspLabels,
    scale: &FeatureScale,
    levels: &Levels,
    high_precision: &[HighPrecision],
) -> TestCounts {
    let catalog: &Catalog = labels.catalog();
    let bsps = catalog.len();
    let groups = catalog.groups().len();
    let slots = catalog.slots().len();
    let n_rec = levels.reconstruction.len();
    let words = labels.bits().words_per_row();
    let features: Vec<usize> = high_precision.iter().map(|h| h.feature).collect();
    let n_levels = levels.len();
    let mut thresholds = vec![0f32; features.len() * n_levels];
    for (k, &f) in features.iter().enumerate() {
        levels.absolute(
            scale.max_abs[f],
            &mut thresholds[k * n_levels..(k + 1) * n_levels],
        );
    }
    let slot_of: Vec<u32> = (0..bsps)
        .map(|b| catalog.slot_of(b).map_or(u32::MAX, |s| s as u32))
        .collect();
    let group_of_slot: Vec<usize> = catalog.slots().iter().map(|s| s.group).collect();

    const ROWS_PER_TASK: usize = 2048;
    let rows = labels.rows();
    let tasks: Vec<Range<usize>> = (0..rows.div_ceil(ROWS_PER_TASK))
        .map(|i| i * ROWS_PER_TASK..((i + 1) * ROWS_PER_TASK).min(rows))
        .collect();
    let empty = || TestCounts {
        tp: vec![0; n_rec * bsps],
        fp: vec![0; n_rec * bsps],
        fn_: vec![0; n_rec * bsps],
        both: vec![0; n_rec * groups],
    };
    tasks
        .into_par_iter()
        .map(|range| {
            let n = range.len();
            // pred[(ri * n + local_row) * words + w]
            let mut pred = vec![0u64; n_rec * n * words];
            activations.for_each_positive_in_rows(&features, range.clone(), |k, row, value| {
                let l = level(value, &thresholds[k * n_levels..(k + 1) * n_levels]);
                let local = row as usize - range.start;
                for (ri, &u) in levels.reconstruction.iter().enumerate() {
                    // Thresholds ascend: once one is not exceeded, none after is.
                    if l <= u {
                        break;
                    }
                    let out = &mut pred[(ri * n + local) * words..(ri * n + local + 1) * words];
                    for &b in &high_precision[k].per_threshold[ri] {
                        out[b as usize / WORD] |= 1 << (b as usize % WORD);
                    }
                }
            });
            let mut counts = empty();
            let mut stamp = vec![0u32; slots];
            let mut slot_tp = vec![0u32; slots];
            let mut slot_fp = vec![0u32; slots];
            let mut touched: Vec<usize> = Vec::new();
            let mut now = 0u32;
            let mut tp_words = vec![0u64; words];
            let mut fp_words = vec![0u64; words];
            let mut fn_words = vec![0u64; words];
            for ri in 0..n_rec {
                let (tp, fp, fn_) = (
                    &mut counts.tp[ri * bsps..(ri + 1) * bsps],
                    &mut counts.fp[ri * bsps..(ri + 1) * bsps],
                    &mut counts.fn_[ri * bsps..(ri + 1) * bsps],
                );
                for local in 0..n {
                    let truth = labels.bits().row(range.start + local);
                    let predicted = &pred[(ri * n + local) * words..(ri * n + local + 1) * words];
                    for w in 0..words {
                        tp_words[w] = predicted[w] & truth[w];
                        fp_words[w] = predicted[w] & !truth[w];
                        fn_words[w] = !predicted[w] & truth[w];
                    }
                    for b in iter_ones(&fn_words) {
                        fn_[b] += 1;
                    }
                    if predicted.iter().all(|&w| w == 0) {
                        continue;
                    }
                    now = now.wrapping_add(1);
                    if now == 0 {
                        stamp.iter_mut().for_each(|s| *s = 0);
                        now = 1;
                    }
                    touched.clear();
                    for (is_tp, bits) in [(true, &tp_words), (false, &fp_words)] {
                        for b in iter_ones(bits) {
                            if is_tp {
                                tp[b] += 1;
                            } else {
                                fp[b] += 1;
                            }
                            let s = slot_of[b];
                            if s == u32::MAX {
                                continue;
                            }
                            let s = s as usize;
                            if stamp[s] != now {
                                stamp[s] = now;
                                slot_tp[s] = 0;
                                slot_fp[s] = 0;
                                touched.push(s);
                            }
                            if is_tp {
                                slot_tp[s] += 1;
                            } else {
                                slot_fp[s] += 1;
                            }
                        }
                    }
                    for &s in &touched {
                        if slot_tp[s] == 1 && slot_fp[s] == 1 {
                            counts.both[ri * groups + group_of_slot[s]] += 1;
                        }
                    }
                }
            }
            counts
        })
        .reduce(empty, |mut a, b| {
            for (x, y) in [
                (&mut a.tp, &b.tp),
                (&mut a.fp, &b.fp),
                (&mut a.fn_, &b.fn_),
                (&mut a.both, &b.both),
            ] {
                x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
            }
            a
        })
}

/// The index of the first maximum (`torch.argmax`).
fn first_max<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

fn coverage_report(
    catalog: &Catalog,
    config: &MetricsConfig,
    best: &[Best],
    positives: &[u64],
) -> CoverageReport {
    let bsps = catalog.len();
    let n_cov = config.coverage_thresholds.len();
    let at = |ci: usize, b: usize| best[ci * bsps + b];
    let mut groups = Vec::with_capacity(catalog.groups().len());
    let mut best_threshold_of_group = Vec::new();
    for group in catalog.groups() {
        let present: Vec<usize> = group
            .bsps
            .iter()
            .copied()
            .filter(|&b| positives[b] > 0)
            .collect();
        let mean = |members: &[usize], ci: usize| {
            if members.is_empty() {
                0.0
            } else {
                members
                    .iter()
                    .map(|&b| f64::from(at(ci, b).f1))
                    .sum::<f64>()
                    / members.len() as f64
            }
        };
        let per_threshold: Vec<f64> = (0..n_cov).map(|ci| mean(&group.bsps, ci)).collect();
        let per_threshold_present: Vec<f64> = (0..n_cov).map(|ci| mean(&present, ci)).collect();
        let best_threshold = first_max(&per_threshold);
        let best_present = first_max(&per_threshold_present);
        best_threshold_of_group.push(best_threshold);
        groups.push(GroupCoverage {
            group: group.name.clone(),
            category: group.category.clone(),
            bsps: group.bsps.len(),
            bsps_with_positives: present.len(),
            per_threshold: per_threshold.clone(),
            per_threshold_present: per_threshold_present.clone(),
            best_threshold,
            coverage: per_threshold[best_threshold],
            coverage_present: per_threshold_present[best_present],
        });
    }
    let bsp_reports = (0..bsps)
        .map(|b| {
            let ci = best_threshold_of_group[catalog.group_of(b)];
            let here = at(ci, b);
            let any = first_max(&(0..n_cov).map(|c| at(c, b).f1).collect::<Vec<_>>());
            let there = at(any, b);
            let feature = |x: Best| (x.feature != NO_FEATURE).then_some(x.feature as usize);
            BspCoverage {
                name: catalog.bsps()[b].name.clone(),
                group: catalog.bsps()[b].group.clone(),
                positives: positives[b],
                f1: here.f1,
                feature: feature(here),
                best_f1: there.f1,
                best_feature: feature(there),
                best_threshold: any,
            }
        })
        .collect();
    let aggregates = aggregate_names(catalog)
        .into_iter()
        .map(|(name, members)| {
            let n = members.len() as f64;
            AggregateCoverage {
                coverage: members.iter().map(|&g| groups[g].coverage).sum::<f64>() / n,
                coverage_present: members
                    .iter()
                    .map(|&g| groups[g].coverage_present)
                    .sum::<f64>()
                    / n,
                groups: members.iter().map(|&g| groups[g].group.clone()).collect(),
                name,
            }
        })
        .collect();
    CoverageReport {
        thresholds: config.coverage_thresholds.clone(),
        groups,
        aggregates,
        bsps: bsp_reports,
    }
}

/// Every category with its groups, then "all" with every group.
fn aggregate_names(catalog: &Catalog) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for (g, group) in catalog.groups().iter().enumerate() {
        match out.iter_mut().find(|(name, _)| *name == group.category) {
            Some((_, members)) => members.push(g),
            None => out.push((group.category.clone(), vec![g])),
        }
    }
    out.push(("all".into(), (0..catalog.groups().len()).collect()));
    out
}

fn reconstruction_report(
    catalog: &Catalog,
    config: &MetricsConfig,
    high_precision: &[HighPrecision],
    counts: &TestCounts,
    test_positives: &[u64],
) -> ReconstructionReport {
    let bsps = catalog.len();
    let n_groups = catalog.groups().len();
    let n_rec = config.reconstruction_thresholds.len();
    // High-precision (feature, property) pairs and distinct features per
    // threshold and group, and per threshold and property.
    let mut pairs = vec![0u64; n_rec * n_groups];
    let mut group_features = vec![0u64; n_rec * n_groups];
    let mut bsp_features = vec![0u64; n_rec * bsps];
    let mut seen = vec![false; n_groups];
    for hp in high_precision {
        for (ri, list) in hp.per_threshold.iter().enumerate() {
            seen.iter_mut().for_each(|s| *s = false);
            for &b in list {
                let g = catalog.group_of(b as usize);
                pairs[ri * n_groups + g] += 1;
                bsp_features[ri * bsps + b as usize] += 1;
                if !seen[g] {
                    seen[g] = true;
                    group_features[ri * n_groups + g] += 1;
                }
            }
        }
    }
    let mut groups = Vec::with_capacity(n_groups);
    for (g, group) in catalog.groups().iter().enumerate() {
        let per_threshold: Vec<ThresholdCounts> = (0..n_rec)
            .map(|ri| {
                let sum = |v: &[u64]| group.bsps.iter().map(|&b| v[ri * bsps + b]).sum::<u64>();
                let (tp, fp, fn_) = (sum(&counts.tp), sum(&counts.fp), sum(&counts.fn_));
                let both = counts.both[ri * n_groups + g];
                let (precision, recall, f1) = counts_f1(tp, fp, fn_);
                let (_, _, f1_per_square) = counts_f1(tp - both, fp, fn_);
                ThresholdCounts {
                    tp,
                    fp,
                    fn_,
                    true_and_false_positive_slots: both,
                    precision,
                    recall,
                    f1,
                    f1_per_square,
                    high_precision_pairs: pairs[ri * n_groups + g],
                    high_precision_features: group_features[ri * n_groups + g],
                }
            })
            .collect();
        let best_threshold = first_max(
            &per_threshold
                .iter()
                .map(|t| t.f1_per_square)
                .collect::<Vec<_>>(),
        );
        let chosen = &per_threshold[best_threshold];
        groups.push(GroupReconstruction {
            group: group.name.clone(),
            category: group.category.clone(),
            best_threshold,
            f1: chosen.f1,
            precision: chosen.precision,
            recall: chosen.recall,
            tp: chosen.tp,
            fp: chosen.fp,
            fn_: chosen.fn_,
            per_threshold,
        });
    }
    let bsp_reports = (0..bsps)
        .map(|b| {
            let ri = groups[catalog.group_of(b)].best_threshold;
            let (tp, fp, fn_) = (
                counts.tp[ri * bsps + b],
                counts.fp[ri * bsps + b],
                counts.fn_[ri * bsps + b],
            );
            BspReconstruction {
                name: catalog.bsps()[b].name.clone(),
                group: catalog.bsps()[b].group.clone(),
                positives: test_positives[b],
                tp,
                fp,
                fn_,
                f1: counts_f1(tp, fp, fn_).2,
                high_precision_features: bsp_features[ri * bsps + b],
            }
        })
        .collect();
    let aggregates = aggregate_names(catalog)
        .into_iter()
        .map(|(name, members)| {
            let n = members.len() as f64;
            let mean = |f: fn(&GroupReconstruction) -> u64| {
                members.iter().map(|&g| f(&groups[g]) as f64).sum::<f64>() / n
            };
            let (tp, fp, fn_) = (mean(|g| g.tp), mean(|g| g.fp), mean(|g| g.fn_));
            let eps = 1e-8;
            let precision = tp / (tp + fp + eps);
            let recall = tp / (tp + fn_ + eps);
            AggregateReconstruction {
                groups: members.iter().map(|&g| groups[g].group.clone()).collect(),
                name,
                tp_mean: tp,
                fp_mean: fp,
                fn_mean: fn_,
                precision,
                recall,
                f1: 2.0 * precision * recall / (precision + recall + eps),
            }
        })
        .collect();
    ReconstructionReport {
        thresholds: config.reconstruction_thresholds.clone(),
        groups,
        aggregates,
        bsps: bsp_reports,
    }
}

/// Coverage of `activations` (the train rows) against `labels`.
pub fn coverage(
    activations: &Activations<'_>,
    labels: &BspLabels,
    scale: &FeatureScale,
    config: &MetricsConfig,
) -> Result<CoverageReport> {
    config.validate()?;
    check_inputs("train", activations, labels, scale)?;
    let levels = Levels::new(config);
    let pass = train_pass(activations, labels, scale, config, &levels);
    Ok(coverage_report(
        labels.catalog(),
        config,
        &pass.best,
        &labels.positives(),
    ))
}

/// Board reconstruction: high-precision features found on the train rows,
/// scored on the test rows.
pub fn board_reconstruction(
    train: (&Activations<'_>, &BspLabels),
    test: (&Activations<'_>, &BspLabels),
    scale: &FeatureScale,
    config: &MetricsConfig,
) -> Result<ReconstructionReport> {
    Ok(evaluate("", train, Some(test), Some(scale), config)?
        .reconstruction
        .expect("evaluate returns a reconstruction whenever it is given a test set, as here"))
}

/// Coverage (on the train rows) and, given test rows, board reconstruction
/// in one pass over the train activations. `scale` defaults to the maximum
/// over the first `config.max_activation_tokens` train rows.
pub fn evaluate(
    name: &str,
    train: (&Activations<'_>, &BspLabels),
    test: Option<(&Activations<'_>, &BspLabels)>,
    scale: Option<&FeatureScale>,
    config: &MetricsConfig,
) -> Result<BspReport> {
    config.validate()?;
    let (train_acts, train_labels) = train;
    let computed;
    let scale = match scale {
        Some(s) => s,
        None => {
            computed = FeatureScale::from_activations(train_acts, config.max_activation_tokens)?;
            &computed
        }
    };
    check_inputs("train", train_acts, train_labels, scale)?;
    if let Some((test_acts, test_labels)) = test {
        check_inputs("test", test_acts, test_labels, scale)?;
        if test_labels.catalog() != train_labels.catalog() {
            return Err(BspError::CatalogMismatch {
                what: "test labels".into(),
            });
        }
    }
    let levels = Levels::new(config);
    let pass = train_pass(train_acts, train_labels, scale, config, &levels);
    let catalog = train_labels.catalog();
    let coverage = coverage_report(catalog, config, &pass.best, &train_labels.positives());
    let reconstruction = test.map(|(test_acts, test_labels)| {
        let counts = test_pass(test_acts, test_labels, scale, &levels, &pass.high_precision);
        reconstruction_report(
            catalog,
            config,
            &pass.high_precision,
            &counts,
            &test_labels.positives(),
        )
    });
    Ok(BspReport {
        name: name.to_string(),
        features: scale.len(),
        alive_features: scale.alive_count(),
        max_activation_tokens: scale.tokens,
        train_rows: train_labels.rows(),
        test_rows: test.map_or(0, |(_, l)| l.rows()),
        config: config.clone(),
        coverage,
        reconstruction,
    })
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
