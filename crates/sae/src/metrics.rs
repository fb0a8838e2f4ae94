//! Metrics of a dictionary on activations: sparsity (L0, feature
//! frequencies, dead and dense fractions, a density histogram as data and
//! SVG) and reconstruction quality (MSE, FVU, explained variance, cosine
//! similarity, L2 ratio, relative reconstruction bias).
//!
//! Everything streams: [`MetricsAccumulator`] takes batches and keeps only
//! per-dimension and per-feature sums (in `f64`), so a metric over millions
//! of rows costs one pass and `O(d_in + d_sae)` memory. [`evaluate`] runs a
//! [`Dictionary`] over an [`ActivationSource`] into one.
//!
//! Definitions (`x` an input row, `x̂` its reconstruction, `n` rows, `x̄` the
//! mean row over all `n`):
//!
//! | metric | definition | peer |
//! |---|---|---|
//! | `l0` | mean over rows of the number of features `> 0` | SAELens `l0`, dictionary_learning `l0` |
//! | `mse` | `Σ ‖x − x̂‖² / (n · d_out)` | SAELens `mse` |
//! | `fvu` | `Σ ‖x − x̂‖² / Σ ‖x − x̄‖²` | dictionary_learning `1 − frac_variance_explained` |
//! | `explained_variance` | `1 − fvu` | dictionary_learning `frac_variance_explained` |
//! | `cosine_similarity` | mean over rows of `⟨x, x̂⟩ / (‖x‖ ‖x̂‖)` | both |
//! | `l2_ratio` | mean over rows of `‖x̂‖ / ‖x‖` | SAELens `l2_ratio` |
//! | `relative_reconstruction_bias` | `mean ‖x̂‖² / mean ⟨x, x̂⟩` (1 when unbiased; < 1 is shrinkage) | dictionary_learning |
//! | `feature_frequencies[j]` | fraction of rows where feature `j > 0` | SAELens `feature_density` |
//! | `dead_fraction` | fraction of features with frequency 0 | |
//! | `dense_fraction` | fraction of features with frequency `> dense_threshold` (default 0.1) | |
//!
//! FVU pools the squared error of every output dimension; for dictionaries
//! with several outputs (crosscoders, multi-layer transcoders)
//! [`MetricsAccumulator::fvu_per_block`] gives one FVU per output block, and
//! the two conventions users ask for are the pooled one ([`EvalMetrics::fvu`])
//! and the mean of the per-block values.

use crate::dictionary::Dictionary;
use crate::ops::{from_host, to_host};
use burn::tensor::{Device, Tensor};
use kibitzer_store::ActivationSource;
use serde::{Deserialize, Serialize};

/// What can go wrong while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The activations do not fit the dictionary.
    #[error("activations have width {found}, but the dictionary reads d_in = {expected}")]
    Width {
        /// The dictionary's `d_in`.
        expected: usize,
        /// The source's row width.
        found: usize,
    },
    /// A batch of the wrong shape was given to the accumulator.
    #[error("{what}: expected {expected}, got {found}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The expected shape.
        expected: String,
        /// The shape found.
        found: String,
    },
    /// The source had no rows to evaluate on.
    #[error("no rows to evaluate on: the activation source is empty")]
    NoRows,
    /// Reading the activations failed.
    #[error("reading activations: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
}

/// A histogram of `log10(feature frequency)` over the live features, with
/// the dead ones (frequency 0, `log10 = -inf`) counted apart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DensityHistogram {
    /// Bin edges in `log10(frequency)`, ascending; `counts.len() + 1` of them.
    pub log10_edges: Vec<f64>,
    /// Live features per bin (a frequency on an edge goes to the bin above it;
    /// frequency 1 goes to the last bin).
    pub counts: Vec<u64>,
    /// Features that never fired.
    pub dead: u64,
}

impl DensityHistogram {
    /// Bins `frequencies` (each in `[0, 1]`) in `bins` equal steps of
    /// `log10` from `log10_min` to 0; live frequencies below `10^log10_min`
    /// land in the first bin.
    pub fn new(frequencies: &[f64], log10_min: f64, bins: usize) -> Self {
        let bins = bins.max(1);
        let width = -log10_min / bins as f64;
        let log10_edges = (0..=bins).map(|i| log10_min + width * i as f64).collect();
        let mut counts = vec![0u64; bins];
        let mut dead = 0;
        for &f in frequencies {
            if f <= 0.0 {
                dead += 1;
                continue;
            }
            let bin = ((f.log10() - log10_min) / width).floor();
            counts[(bin.max(0.0) as usize).min(bins - 1)] += 1;
        }
        Self {
            log10_edges,
            counts,
            dead,
        }
    }
}

/// The metrics of one dictionary over a set of rows. See the module
/// documentation for the definitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    /// Rows evaluated.
    pub rows: u64,
    /// Mean number of active features per row.
    pub l0: f64,
    /// Mean squared error per output element.
    pub mse: f64,
    /// Fraction of variance unexplained (pooled over output dimensions).
    pub fvu: f64,
    /// `1 - fvu`.
    pub explained_variance: f64,
    /// Mean cosine similarity of input and reconstruction rows.
    pub cosine_similarity: f64,
    /// Mean `‖x̂‖ / ‖x‖`.
    pub l2_ratio: f64,
    /// `mean ‖x̂‖² / mean ⟨x, x̂⟩`.
    pub relative_reconstruction_bias: f64,
    /// Fraction of features that never fired.
    pub dead_fraction: f64,
    /// Fraction of features firing on more than `dense_threshold` of rows.
    pub dense_fraction: f64,
    /// The frequency above which a feature counts as dense.
    pub dense_threshold: f64,
    /// Histogram of `log10` feature frequencies.
    pub density_histogram: DensityHistogram,
}

/// Metrics plus the per-feature frequencies they summarise (kept apart from
/// [`EvalMetrics`] because they are `d_sae` numbers long).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The summary metrics.
    pub metrics: EvalMetrics,
    /// Fraction of rows on which each feature fired.
    pub feature_frequencies: Vec<f64>,
}

/// Streaming sums behind [`EvalMetrics`]: feed it batches with
/// [`MetricsAccumulator::add_batch`], read the metrics with
/// [`MetricsAccumulator::finish`].
#[derive(Clone, Debug)]
pub struct MetricsAccumulator {
    d_out: usize,
    d_sae: usize,
    rows: u64,
    active_total: f64,
    fire_counts: Vec<u64>,
    /// Per output dimension: Σ x, Σ x², Σ (x − x̂)².
    sum_x: Vec<f64>,
    sum_x2: Vec<f64>,
    sum_err2: Vec<f64>,
    cosine_total: f64,
    l2_ratio_total: f64,
    xhat_norm2_total: f64,
    x_dot_xhat_total: f64,
    /// Frequency above which a feature is dense (default 0.1).
    pub dense_threshold: f64,
}

impl MetricsAccumulator {
    /// Empty sums for a dictionary with `d_sae` features and outputs of width `d_out`.
    pub fn new(d_out: usize, d_sae: usize) -> Self {
        Self {
            d_out,
            d_sae,
            rows: 0,
            active_total: 0.0,
            fire_counts: vec![0; d_sae],
            sum_x: vec![0.0; d_out],
            sum_x2: vec![0.0; d_out],
            sum_err2: vec![0.0; d_out],
            cosine_total: 0.0,
            l2_ratio_total: 0.0,
            xhat_norm2_total: 0.0,
            x_dot_xhat_total: 0.0,
            dense_threshold: 0.1,
        }
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds one batch given on the host, row-major: the targets `x`
    /// (`rows x d_out`), the reconstructions `x_hat` (same shape) and the
    /// feature activations (`rows x d_sae`).
    pub fn add_batch(
        &mut self,
        x: &[f32],
        x_hat: &[f32],
        features: &[f32],
    ) -> Result<(), MetricsError> {
        let rows = x.len() / self.d_out.max(1);
        let shape = |what, len: usize, width: usize| {
            if len == rows * width && x.len() == rows * self.d_out {
                Ok(())
            } else {
                Err(MetricsError::Shape {
                    what,
                    expected: format!("{rows} rows of width {width}"),
                    found: format!("{len} values"),
                })
            }
        };
        shape("reconstruction", x_hat.len(), self.d_out)?;
        shape("features", features.len(), self.d_sae)?;
        for row in features.chunks(self.d_sae) {
            for (count, &f) in self.fire_counts.iter_mut().zip(row) {
                if f > 0.0 {
                    *count += 1;
                    self.active_total += 1.0;
                }
            }
        }
        for (xr, hr) in x.chunks(self.d_out).zip(x_hat.chunks(self.d_out)) {
            let (mut xx, mut hh, mut xh) = (0f64, 0f64, 0f64);
            for j in 0..self.d_out {
                let (a, b) = (xr[j] as f64, hr[j] as f64);
                self.sum_x[j] += a;
                self.sum_x2[j] += a * a;
                self.sum_err2[j] += (a - b) * (a - b);
                xx += a * a;
                hh += b * b;
                xh += a * b;
            }
            self.record_row(xx, hh, xh);
        }
        self.rows += rows as u64;
        Ok(())
    }

    fn record_row(&mut self, xx: f64, hh: f64, xh: f64) {
        let (nx, nh) = (xx.sqrt(), hh.sqrt());
        // A zero row has no direction: it counts as cosine 0 and ratio 0,
        // like SAELens' `F.cosine_similarity` with its epsilon does.
        self.cosine_total += if nx > 0.0 && nh > 0.0 {
            xh / (nx * nh)
        } else {
            0.0
        };
        self.l2_ratio_total += if nx > 0.0 { nh / nx } else { 0.0 };
        self.xhat_norm2_total += hh;
        self.x_dot_xhat_total += xh;
    }

    /// Σ ‖x − x̄‖² over output dimensions `range`, from the running sums.
    fn total_variance(&self, range: std::ops::Range<usize>) -> f64 {
        let n = self.rows as f64;
        range
            .map(|j| (self.sum_x2[j] - self.sum_x[j] * self.sum_x[j] / n).max(0.0))
            .sum()
    }

    /// FVU of each block of output dimensions (widths in `blocks`, summing
    /// to `d_out`): for a crosscoder, one FVU per layer.
    pub fn fvu_per_block(&self, blocks: &[usize]) -> Result<Vec<f64>, MetricsError> {
        if blocks.iter().sum::<usize>() != self.d_out {
            return Err(MetricsError::Shape {
                what: "FVU output blocks",
                expected: format!("widths summing to d_out = {}", self.d_out),
                found: format!("{blocks:?}"),
            });
        }
        let mut start = 0;
        Ok(blocks
            .iter()
            .map(|&w| {
                let range = start..start + w;
                start += w;
                let err: f64 = self.sum_err2[range.clone()].iter().sum();
                err / self.total_variance(range).max(1e-30)
            })
            .collect())
    }

    /// Per-feature firing frequencies so far.
    pub fn feature_frequencies(&self) -> Vec<f64> {
        let n = self.rows.max(1) as f64;
        self.fire_counts.iter().map(|&c| c as f64 / n).collect()
    }

    /// The metrics of every row added.
    pub fn finish(&self) -> Result<Evaluation, MetricsError> {
        if self.rows == 0 {
            return Err(MetricsError::NoRows);
        }
        let n = self.rows as f64;
        let err: f64 = self.sum_err2.iter().sum();
        let fvu = err / self.total_variance(0..self.d_out).max(1e-30);
        let feature_frequencies = self.feature_frequencies();
        let d_sae = self.d_sae.max(1) as f64;
        let metrics = EvalMetrics {
            rows: self.rows,
            l0: self.active_total / n,
            mse: err / (n * self.d_out as f64),
            fvu,
            explained_variance: 1.0 - fvu,
            cosine_similarity: self.cosine_total / n,
            l2_ratio: self.l2_ratio_total / n,
            relative_reconstruction_bias: self.xhat_norm2_total / self.x_dot_xhat_total,
            dead_fraction: feature_frequencies.iter().filter(|&&f| f == 0.0).count() as f64 / d_sae,
            dense_fraction: feature_frequencies
                .iter()
                .filter(|&&f| f > self.dense_threshold)
                .count() as f64
                / d_sae,
            dense_threshold: self.dense_threshold,
            density_histogram: DensityHistogram::new(&feature_frequencies, -8.0, 32),
        };
        Ok(Evaluation {
            metrics,
            feature_frequencies,
        })
    }
}

/// Runs `dict` over up to `max_rows` rows of `source` in batches of
/// `batch_size` on `device` and returns its metrics (the dictionary's output
/// is compared with its input: an autoencoder's reconstruction).
///
/// The forward pass runs on the device; the sums are taken on the host in
/// `f64`, so the result does not depend on the batch size beyond rounding.
pub fn evaluate<S: ActivationSource>(
    dict: &impl Dictionary,
    source: &mut S,
    max_rows: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation, MetricsError> {
    if source.d_in() != dict.d_in() {
        return Err(MetricsError::Width {
            expected: dict.d_in(),
            found: source.d_in(),
        });
    }
    if dict.d_out() != dict.d_in() {
        return Err(MetricsError::Shape {
            what: "dictionary output for reconstruction metrics",
            expected: format!("d_out = d_in = {}", dict.d_in()),
            found: format!(
                "d_out = {} (a transcoder: evaluate it against its target site)",
                dict.d_out()
            ),
        });
    }
    let mut acc = MetricsAccumulator::new(dict.d_out(), dict.d_sae());
    let mut buf = Vec::new();
    let batch_size = batch_size.max(1);
    while (acc.rows() as usize) < max_rows {
        let want = batch_size.min(max_rows - acc.rows() as usize);
        let got = source
            .next_batch(want, &mut buf)
            .map_err(|e| MetricsError::Source(Box::new(e)))?;
        if got == 0 {
            break;
        }
        let x: Tensor<2> = from_host(buf.clone(), got, dict.d_in(), device);
        let out = dict.forward(x);
        acc.add_batch(&buf, &to_host(out.reconstruction), &to_host(out.features))?;
    }
    acc.finish()
}

/// An SVG bar chart of the density histogram, dead features as a separate
/// bar at the left, readable in any browser.
pub fn density_histogram_svg(metrics: &EvalMetrics, title: &str) -> String {
    use kibitzer_charts::{Bar, BarChart};
    let h = &metrics.density_histogram;
    let bar = |value: u64, colour: &str, label: Option<&str>| {
        Some(Bar {
            value: value as f64,
            colour: colour.into(),
            label: label.map(str::to_string),
        })
    };
    // One bar for the dead features, a gap, then the bins.
    let mut slots = vec![bar(h.dead, "#c0392b", Some("dead")), None];
    slots.extend(h.counts.iter().map(|&c| bar(c, "#2e86c1", None)));
    // Label every whole decade of the bins.
    let edge_labels = h
        .log10_edges
        .iter()
        .enumerate()
        .filter(|(_, edge)| (*edge - edge.round()).abs() < 1e-9)
        .map(|(i, edge)| (i + 2, format!("{}", edge.round() as i64)))
        .collect();
    BarChart {
        title: title.to_string(),
        x_label: "log10(feature frequency)".into(),
        slots,
        edge_labels,
        note: Some(format!(
            "L0 {:.2} · FVU {:.4} · dead {:.1}%",
            metrics.l0,
            metrics.fvu,
            100.0 * metrics.dead_fraction
        )),
    }
    .svg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Architecture;
    use crate::sae::{Sae, SaeConfig};
    use kibitzer_store::InMemorySource;

    /// The metrics of a tiny batch, computed by hand.
    #[test]
    fn hand_computed_batch() {
        // Two rows, d = 2, three features.
        let x = [1.0, 0.0, 0.0, 2.0];
        let x_hat = [1.0, 1.0, 0.0, 1.0];
        let features = [0.5, 0.0, 0.0, 0.0, 0.0, 2.0];
        let mut acc = MetricsAccumulator::new(2, 3);
        acc.add_batch(&x, &x_hat, &features).unwrap();
        let m = acc.finish().unwrap();
        // Errors: row 0 (0, -1), row 1 (0, 1): Σ = 2; mean x = (0.5, 1);
        // Σ ‖x − x̄‖² = (0.25 + 0.25) + (1 + 1) = 2.5.
        assert!((m.metrics.fvu - 2.0 / 2.5).abs() < 1e-12);
        assert!((m.metrics.explained_variance - 0.2).abs() < 1e-12);
        assert!((m.metrics.mse - 0.5).abs() < 1e-12);
        assert_eq!(m.metrics.l0, 1.0);
        // cos: row 0 = 1/√2, row 1 = 2/(2·1) = 1.
        assert!((m.metrics.cosine_similarity - (0.5f64.sqrt() + 1.0) / 2.0).abs() < 1e-12);
        // ‖x̂‖/‖x‖: √2/1 and 1/2.
        assert!((m.metrics.l2_ratio - (2f64.sqrt() + 0.5) / 2.0).abs() < 1e-12);
        // mean ‖x̂‖² = (2 + 1)/2, mean ⟨x, x̂⟩ = (1 + 2)/2.
        assert!((m.metrics.relative_reconstruction_bias - 1.0).abs() < 1e-12);
        assert_eq!(m.feature_frequencies, vec![0.5, 0.0, 0.5]);
        assert!((m.metrics.dead_fraction - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.metrics.dense_fraction - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.metrics.density_histogram.dead, 1);
        assert_eq!(m.metrics.density_histogram.counts.iter().sum::<u64>(), 2);
    }

    #[test]
    fn batches_pool_like_one_batch_and_blocks_split_fvu() {
        let x: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let x_hat: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v * 0.8 + (i % 3) as f32 * 0.1)
            .collect();
        let feats: Vec<f32> = (0..10 * 5)
            .map(|i| if i % 4 == 0 { 1.0 } else { 0.0 })
            .collect();
        let mut whole = MetricsAccumulator::new(4, 5);
        whole.add_batch(&x, &x_hat, &feats).unwrap();
        let mut parts = MetricsAccumulator::new(4, 5);
        parts
            .add_batch(&x[..12], &x_hat[..12], &feats[..15])
            .unwrap();
        parts
            .add_batch(&x[12..], &x_hat[12..], &feats[15..])
            .unwrap();
        let (a, b) = (whole.finish().unwrap(), parts.finish().unwrap());
        assert!((a.metrics.fvu - b.metrics.fvu).abs() < 1e-12);
        assert_eq!(a.feature_frequencies, b.feature_frequencies);
        // One block is the pooled FVU; two blocks are each block's own ratio.
        assert!((whole.fvu_per_block(&[4]).unwrap()[0] - a.metrics.fvu).abs() < 1e-12);
        let halves = whole.fvu_per_block(&[2, 2]).unwrap();
        let mut left = MetricsAccumulator::new(2, 5);
        let pick = |v: &[f32]| {
            v.chunks(4)
                .flat_map(|r| r[..2].to_vec())
                .collect::<Vec<_>>()
        };
        left.add_batch(&pick(&x), &pick(&x_hat), &feats).unwrap();
        assert!((halves[0] - left.finish().unwrap().metrics.fvu).abs() < 1e-12);
        assert!(whole.fvu_per_block(&[3, 2]).is_err());
    }

    #[test]
    fn bad_shapes_and_empty_input_are_named() {
        let mut acc = MetricsAccumulator::new(2, 3);
        let err = acc.add_batch(&[1.0, 2.0], &[1.0], &[0.0; 3]).unwrap_err();
        assert!(err.to_string().contains("reconstruction"), "{err}");
        assert!(matches!(acc.finish(), Err(MetricsError::NoRows)));
    }

    #[test]
    fn evaluate_streams_a_dictionary_and_matches_one_batch() {
        let device = Device::flex();
        let sae = Sae::init(
            SaeConfig::new(Architecture::TopK { k: 3 }, 8, 16),
            4,
            &device,
        );
        let data: Vec<f32> = (0..8 * 50)
            .map(|i| ((i * 37) % 17) as f32 / 17.0 - 0.3)
            .collect();
        let run = |batch| {
            let mut source = InMemorySource::new(data.clone(), 8).unwrap();
            evaluate(&sae, &mut source, 45, batch, &device).unwrap()
        };
        let (a, b) = (run(7), run(45));
        assert_eq!(a.metrics.rows, 45);
        // Only f32 rounding of the batched matmuls differs.
        assert!(
            (a.metrics.fvu - b.metrics.fvu).abs() < 1e-5 * b.metrics.fvu,
            "{} vs {}",
            a.metrics.fvu,
            b.metrics.fvu
        );
        // TopK fires exactly k features per row.
        assert!((a.metrics.l0 - 3.0).abs() < 1e-12, "{}", a.metrics.l0);
        let mut wrong = InMemorySource::new(vec![0.0; 10], 5).unwrap();
        assert!(matches!(
            evaluate(&sae, &mut wrong, 2, 2, &device),
            Err(MetricsError::Width {
                expected: 8,
                found: 5
            })
        ));
        let svg = density_histogram_svg(&a.metrics, "a <test>");
        assert!(svg.starts_with("<svg") && svg.contains("a &lt;test&gt;") && svg.contains("dead"));
    }
}
