//! Synthetic activations with a planted dictionary: the ground truth that a
//! dictionary-learning method should recover, and MMCS to score how well it did.
//!
//! A [`SyntheticActivations`] draws `n_features` random unit directions in
//! `d_in` dimensions (the *true dictionary*), then produces rows
//!
//! ```text
//! x_r = sum_{j active in row r} a_{r,j} d_j + noise_r,   noise_r ~ N(0, noise_std^2 I)
//! ```
//!
//! where feature `j` (0-based) is active independently with probability
//! `p_j = min(1, c (j+1)^-frequency_exponent)`, `c` chosen so that
//! `sum_j p_j = mean_active_features` (a power law of feature frequencies, as
//! in Sharkey et al. 2022, "Taking features out of superposition with sparse
//! autoencoders"), and the magnitudes `a_{r,j}` follow a
//! [`MagnitudeDistribution`] (uniform on `[0.5, 1.5]` by default).
//!
//! Row `r` depends only on `(seed, r)` (a ChaCha8 stream per row), so any range
//! of rows can be regenerated identically, in any order, on any number of
//! threads.

use crate::dictionary::Dictionary;
use crate::io::{HostTensor, atomic_write, f32_safetensors, read_f32_safetensors};
use crate::ops::to_host;
use crate::sae::normal;
use kibitzer_store::{ActivationSource, Dtype, StoreConfig, StoreError, write_from_source};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::convert::Infallible;
use std::path::{Path, PathBuf};

/// File holding the planted dictionary beside a synthetic store's shards.
pub const TRUE_DICTIONARY_FILE: &str = "true_dictionary.safetensors";
/// Tensor of [`TRUE_DICTIONARY_FILE`] with the true directions `[n_features, d_in]`.
pub const TRUE_DIRECTIONS_TENSOR: &str = "directions";
/// Tensor of [`TRUE_DICTIONARY_FILE`] with the firing probabilities `[n_features]`.
pub const FIRING_PROBABILITIES_TENSOR: &str = "firing_probabilities";

/// ChaCha stream of the generator that derives the per-row key from the seed
/// (stream 0 of the same seed draws the dictionary), so the two never share
/// random numbers.
const ROW_KEY_STREAM: u64 = 1;

/// How large an active feature's coefficient is.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MagnitudeDistribution {
    /// Uniform on `[low, high]`. The default, `[0.5, 1.5]`, has mean 1 and
    /// keeps every active feature clearly above zero, so a feature's presence
    /// is never ambiguous in the ground truth.
    Uniform {
        /// Smallest magnitude (at least 0).
        low: f64,
        /// Largest magnitude (at least `low`).
        high: f64,
    },
    /// `|N(mean, std^2)|`: mostly near `mean`, occasionally near zero.
    FoldedNormal {
        /// Mean of the normal before folding.
        mean: f64,
        /// Standard deviation of the normal before folding (at least 0).
        std: f64,
    },
}

impl Default for MagnitudeDistribution {
    fn default() -> Self {
        MagnitudeDistribution::Uniform {
            low: 0.5,
            high: 1.5,
        }
    }
}

impl MagnitudeDistribution {
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> f32 {
        match *self {
            MagnitudeDistribution::Uniform { low, high } => {
                (low + (high - low) * rng.random::<f64>()) as f32
            }
            MagnitudeDistribution::FoldedNormal { mean, std } => {
                (mean + std * normal(rng) as f64).abs() as f32
            }
        }
    }
}

/// Settings of a [`SyntheticActivations`]. Missing fields in a file take the
/// defaults: `d_in` 64, `n_features` 512, `mean_active_features` 5,
/// `frequency_exponent` 1, magnitudes uniform on `[0.5, 1.5]`, `noise_std`
/// 0.01, `seed` 0.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Width of every row.
    pub d_in: usize,
    /// Number of planted features (rows of the true dictionary).
    pub n_features: usize,
    /// Expected number of active features per row (at most `n_features`).
    pub mean_active_features: f64,
    /// Power-law exponent of the feature frequencies: feature `j` fires with
    /// probability proportional to `(j+1)^-frequency_exponent` (0: all equal).
    pub frequency_exponent: f64,
    /// Distribution of an active feature's coefficient.
    pub magnitude: MagnitudeDistribution,
    /// Standard deviation of the Gaussian noise added to every value.
    pub noise_std: f64,
    /// Seed of the dictionary and of every row.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            d_in: 64,
            n_features: 512,
            mean_active_features: 5.0,
            frequency_exponent: 1.0,
            magnitude: MagnitudeDistribution::default(),
            noise_std: 0.01,
            seed: 0,
        }
    }
}

impl SyntheticConfig {
    /// Checks every field, naming the first one that is out of range.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |field: &'static str, message: String| Err(SynthError::Config { field, message });
        if self.d_in == 0 {
            return bad("d_in", "must be at least 1".into());
        }
        if self.n_features == 0 {
            return bad("n_features", "must be at least 1".into());
        }
        if self.n_features > u32::MAX as usize {
            return bad("n_features", format!("must be at most {}", u32::MAX));
        }
        let m = self.mean_active_features;
        if !(m.is_finite() && m > 0.0 && m <= self.n_features as f64) {
            return bad(
                "mean_active_features",
                format!(
                    "is {m}; it must be in (0, n_features = {}]",
                    self.n_features
                ),
            );
        }
        let a = self.frequency_exponent;
        if !(a.is_finite() && a >= 0.0) {
            return bad(
                "frequency_exponent",
                format!("is {a}; it must be finite and at least 0"),
            );
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return bad(
                "noise_std",
                format!("is {}; it must be finite and at least 0", self.noise_std),
            );
        }
        match self.magnitude {
            MagnitudeDistribution::Uniform { low, high } => {
                if !(low.is_finite() && high.is_finite() && 0.0 <= low && low <= high) {
                    return bad(
                        "magnitude",
                        format!("uniform on [{low}, {high}]; it needs finite 0 <= low <= high"),
                    );
                }
            }
            MagnitudeDistribution::FoldedNormal { mean, std } => {
                if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
                    return bad(
                        "magnitude",
                        format!(
                            "folded normal with mean {mean}, std {std}; it needs finite values and std >= 0"
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

/// What can go wrong generating, writing or scoring against synthetic data.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A [`SyntheticConfig`] field is out of range.
    #[error("synthetic config: `{field}` {message}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Two sets of directions cannot be compared (MMCS).
    #[error("{what}: expected {expected}, got {found}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// The shape or length required.
        expected: String,
        /// The shape or length given.
        found: String,
    },
    /// Writing the activation store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The planted dictionary file cannot be written or read.
    #[error("{path}: {message}")]
    TrueDictionary {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// True sparse codes of a batch of rows in compressed-row form: the active
/// features of row `i` are `features[offsets[i]..offsets[i+1]]` (ascending),
/// with coefficients `magnitudes[offsets[i]..offsets[i+1]]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseCodes {
    /// Row starts into `features` and `magnitudes`; `rows + 1` entries.
    pub offsets: Vec<usize>,
    /// Active feature indices.
    pub features: Vec<u32>,
    /// Coefficients of the active features.
    pub magnitudes: Vec<f32>,
}

impl SparseCodes {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// The active `(feature, magnitude)` pairs of row `i`.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let range = self.offsets[i]..self.offsets[i + 1];
        self.features[range.clone()]
            .iter()
            .copied()
            .zip(self.magnitudes[range].iter().copied())
    }

    /// Dense `[rows, n_features]` row-major coefficients (zeros where inactive).
    pub fn to_dense(&self, n_features: usize) -> Vec<f32> {
        let mut dense = vec![0f32; self.rows() * n_features];
        for (i, row) in dense
            .chunks_mut(n_features.max(1))
            .enumerate()
            .take(self.rows())
        {
            for (j, a) in self.row(i) {
                row[j as usize] = a;
            }
        }
        dense
    }

    fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.features.clear();
        self.magnitudes.clear();
    }
}

/// An endless stream of synthetic activation rows with a known dictionary.
/// See the [module documentation](self) for the generative model.
#[derive(Clone, Debug)]
pub struct SyntheticActivations {
    config: SyntheticConfig,
    /// `[n_features, d_in]`, unit rows.
    directions: Vec<f32>,
    probabilities: Vec<f64>,
    /// Feature `j` fires when a uniform `u32` is below `thresholds[j]`
    /// (`p_j * 2^32`, so `p_j = 1` always fires).
    thresholds: Vec<u64>,
    row_key: [u8; 32],
    next_row: u64,
}

impl SyntheticActivations {
    /// Draws the true dictionary for `config` (after validating it); the
    /// stream starts at row 0.
    pub fn new(config: SyntheticConfig) -> Result<Self, SynthError> {
        config.validate()?;
        let (n, d) = (config.n_features, config.d_in);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut directions = vec![0f32; n * d];
        for row in directions.chunks_mut(d) {
            // Resample the (measure-zero) all-zero draw so every direction has norm 1.
            loop {
                row.iter_mut().for_each(|v| *v = normal(&mut rng));
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 1e-6 {
                    row.iter_mut().for_each(|v| *v /= norm);
                    break;
                }
            }
        }
        let probabilities =
            power_law_probabilities(n, config.mean_active_features, config.frequency_exponent);
        let thresholds = probabilities
            .iter()
            .map(|p| (p * 4_294_967_296.0).round() as u64)
            .collect();
        let mut key_rng = ChaCha8Rng::seed_from_u64(config.seed);
        key_rng.set_stream(ROW_KEY_STREAM);
        let mut row_key = [0u8; 32];
        key_rng.fill_bytes(&mut row_key);
        Ok(Self {
            config,
            directions,
            probabilities,
            thresholds,
            row_key,
            next_row: 0,
        })
    }

    /// The settings it was built with.
    pub fn config(&self) -> &SyntheticConfig {
        &self.config
    }

    /// The true dictionary: `[n_features, d_in]` row-major, unit rows.
    pub fn true_directions(&self) -> &[f32] {
        &self.directions
    }

    /// Probability that each feature is active in a row (sums to
    /// `mean_active_features`; non-increasing in the feature index).
    pub fn firing_probabilities(&self) -> &[f64] {
        &self.probabilities
    }

    /// Index of the next row [`ActivationSource::next_batch`] will hand out.
    pub fn position(&self) -> u64 {
        self.next_row
    }

    /// Makes the stream continue from row `row`.
    pub fn seek(&mut self, row: u64) {
        self.next_row = row;
    }

    /// Writes rows `start .. start + count` into `out` (cleared first,
    /// `count * d_in` values), independently of the stream position.
    pub fn generate_rows(&self, start: u64, count: usize, out: &mut Vec<f32>) {
        let d = self.config.d_in;
        out.clear();
        out.resize(count * d, 0.0);
        out.par_chunks_mut(d)
            .enumerate()
            .for_each_init(Vec::new, |code, (i, row)| {
                self.fill_row(start + i as u64, row, code)
            });
    }

    /// Like [`SyntheticActivations::generate_rows`], also writing the rows'
    /// true sparse codes into `codes`.
    pub fn generate_rows_with_codes(
        &self,
        start: u64,
        count: usize,
        out: &mut Vec<f32>,
        codes: &mut SparseCodes,
    ) {
        let d = self.config.d_in;
        out.clear();
        out.resize(count * d, 0.0);
        let per_row: Vec<Vec<(u32, f32)>> = out
            .par_chunks_mut(d)
            .enumerate()
            .map(|(i, row)| {
                let mut code = Vec::new();
                self.fill_row(start + i as u64, row, &mut code);
                code
            })
            .collect();
        codes.clear();
        for code in per_row {
            for (j, a) in code {
                codes.features.push(j);
                codes.magnitudes.push(a);
            }
            codes.offsets.push(codes.features.len());
        }
    }

    /// The next `rows` rows of the stream with their true sparse codes;
    /// returns `rows` (the stream never ends).
    pub fn next_batch_with_codes(
        &mut self,
        rows: usize,
        out: &mut Vec<f32>,
        codes: &mut SparseCodes,
    ) -> usize {
        self.generate_rows_with_codes(self.next_row, rows, out, codes);
        self.next_row += rows as u64;
        rows
    }

    /// Row `row` into `out` (`d_in` values); its active features and
    /// magnitudes into `code` (ascending feature order).
    fn fill_row(&self, row: u64, out: &mut [f32], code: &mut Vec<(u32, f32)>) {
        let mut rng = ChaCha8Rng::from_seed(self.row_key);
        rng.set_stream(row);
        code.clear();
        for (j, &threshold) in self.thresholds.iter().enumerate() {
            if u64::from(rng.next_u32()) < threshold {
                code.push((j as u32, self.config.magnitude.sample(&mut rng)));
            }
        }
        let noise = self.config.noise_std as f32;
        if noise > 0.0 {
            out.iter_mut().for_each(|v| *v = noise * normal(&mut rng));
        } else {
            out.fill(0.0);
        }
        let d = self.config.d_in;
        for &(j, a) in code.iter() {
            let direction = &self.directions[j as usize * d..(j as usize + 1) * d];
            for (v, &u) in out.iter_mut().zip(direction) {
                *v += a * u;
            }
        }
    }
}

impl ActivationSource for SyntheticActivations {
    type Error = Infallible;

    fn d_in(&self) -> usize {
        self.config.d_in
    }

    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, Infallible> {
        self.generate_rows(self.next_row, rows, out);
        self.next_row += rows as u64;
        Ok(rows)
    }
}

impl crate::train::SourcePosition for SyntheticActivations {
    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "synthetic_row": self.next_row })
    }
}

/// `p_j = min(1, c (j+1)^-exponent)` with `c` such that `sum_j p_j = mean_active`
/// (`0 < mean_active <= n`).
///
/// With the first `k` features capped at 1, the rest share `mean_active - k`
/// in proportion to their weights; the answer is the smallest `k` for which
/// feature `k` is not pushed above 1 (then all features before it are, since
/// the weights are non-increasing).
fn power_law_probabilities(n: usize, mean_active: f64, exponent: f64) -> Vec<f64> {
    let weights: Vec<f64> = (0..n).map(|j| ((j + 1) as f64).powf(-exponent)).collect();
    let mut tail = vec![0f64; n + 1];
    for j in (0..n).rev() {
        tail[j] = tail[j + 1] + weights[j];
    }
    for k in 0..n {
        let c = (mean_active - k as f64) / tail[k];
        if c * weights[k] <= 1.0 + 1e-12 {
            return (0..n)
                .map(|j| {
                    if j < k {
                        1.0
                    } else {
                        (c * weights[j]).min(1.0)
                    }
                })
                .collect();
        }
    }
    vec![1.0; n]
}

/// Mean max cosine similarity: for every true direction, the largest cosine
/// with any decoder row, averaged over the true directions,
///
/// ```text
/// MMCS = (1/n_true) sum_i max_k <t_i, w_k> / (||t_i|| ||w_k||)
/// ```
///
/// Both sets are `[n, d]` row-major. A zero row has cosine 0 with everything.
/// 1 means every true feature has an exact copy (up to positive scale) in the
/// decoder; random directions in `d` dimensions score about
/// `sqrt(2 ln(n_dec) / d)`.
pub fn mmcs(
    true_directions: &[f32],
    n_true: usize,
    decoder_rows: &[f32],
    n_dec: usize,
    d: usize,
) -> Result<f64, SynthError> {
    let check = |what: &'static str, data: &[f32], n: usize| {
        if n == 0 || d == 0 || data.len() != n * d {
            Err(SynthError::Shape {
                what,
                expected: format!("a non-empty [{n}, {d}] matrix ({} values)", n * d),
                found: format!("{} values", data.len()),
            })
        } else {
            Ok(())
        }
    };
    check("MMCS true directions", true_directions, n_true)?;
    check("MMCS decoder rows", decoder_rows, n_dec)?;
    let truth = unit_rows(true_directions, d);
    let decoder = unit_rows(decoder_rows, d);
    let total: f64 = truth
        .par_chunks(d)
        .map(|t| {
            decoder
                .chunks(d)
                .map(|w| t.iter().zip(w).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max) as f64
        })
        .sum();
    Ok(total / n_true as f64)
}

/// Rows scaled to unit norm (zero rows stay zero).
fn unit_rows(data: &[f32], d: usize) -> Vec<f32> {
    let mut out = data.to_vec();
    for row in out.chunks_mut(d) {
        let norm = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
        }
    }
    out
}

/// [`mmcs`] of a dictionary's decoder against the planted dictionary of
/// `synth`; the dictionary's output width must be the synthetic `d_in`.
pub fn mmcs_of(dict: &impl Dictionary, synth: &SyntheticActivations) -> Result<f64, SynthError> {
    let d = synth.config.d_in;
    if dict.d_out() != d {
        return Err(SynthError::Shape {
            what: "dictionary output width for MMCS",
            expected: format!("the synthetic d_in, {d}"),
            found: dict.d_out().to_string(),
        });
    }
    let decoder = to_host(dict.decoder_directions());
    mmcs(
        &synth.directions,
        synth.config.n_features,
        &decoder,
        dict.d_sae(),
        d,
    )
}

/// What [`write_store`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenStore {
    /// Rows in the store.
    pub rows: u64,
    /// The store directory.
    pub dir: PathBuf,
    /// The planted dictionary file ([`TRUE_DICTIONARY_FILE`] in the store directory).
    pub true_dictionary: PathBuf,
}

/// Writes rows `0 .. rows` of `config`'s stream as an activation store in
/// `dir` (the config goes into the manifest metadata under `"synthetic"`),
/// then the planted dictionary beside the shards as [`TRUE_DICTIONARY_FILE`]:
/// safetensors with [`TRUE_DIRECTIONS_TENSOR`] `[n_features, d_in]` and
/// [`FIRING_PROBABILITIES_TENSOR`] `[n_features]`, written atomically.
/// An existing store in `dir` is refused unless `overwrite`.
pub fn write_store(
    config: &SyntheticConfig,
    dir: &Path,
    rows: usize,
    dtype: Dtype,
    rows_per_shard: usize,
    overwrite: bool,
) -> Result<WrittenStore, SynthError> {
    if rows == 0 {
        return Err(SynthError::Config {
            field: "rows",
            message: "must be at least 1: a store of no rows trains and evaluates nothing".into(),
        });
    }
    let mut synth = SyntheticActivations::new(config.clone())?;
    let store_config = StoreConfig {
        dtype,
        rows_per_shard,
        overwrite,
        metadata: serde_json::json!({
            "synthetic": config,
            "true_dictionary": TRUE_DICTIONARY_FILE,
        }),
        ..StoreConfig::new(config.d_in)
    };
    let manifest = write_from_source(&mut synth, dir, store_config, rows as u64, |_| {})?;
    let path = dir.join(TRUE_DICTIONARY_FILE);
    let metadata = [(
        "synthetic".to_string(),
        serde_json::to_string(config).expect("a synthetic config is plain data and serialises"),
    )]
    .into();
    let tensors = [
        HostTensor {
            name: TRUE_DIRECTIONS_TENSOR.into(),
            shape: vec![config.n_features, config.d_in],
            data: synth.directions.clone(),
        },
        HostTensor {
            name: FIRING_PROBABILITIES_TENSOR.into(),
            shape: vec![config.n_features],
            data: synth.probabilities.iter().map(|&p| p as f32).collect(),
        },
    ];
    let bytes = f32_safetensors(&tensors, Some(metadata)).map_err(|message| {
        SynthError::TrueDictionary {
            path: path.clone(),
            message,
        }
    })?;
    atomic_write(&path, &bytes)?;
    Ok(WrittenStore {
        rows: manifest.rows,
        dir: dir.to_path_buf(),
        true_dictionary: path,
    })
}

/// Reads the planted directions `[n_features, d_in]` of a store written by
/// [`write_store`]: `Ok(None)` when `store_dir` has no [`TRUE_DICTIONARY_FILE`]
/// (real activations), an error when the file is there but unreadable.
pub fn read_true_directions(store_dir: &Path) -> Result<Option<HostTensor>, SynthError> {
    let path = store_dir.join(TRUE_DICTIONARY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SynthError::TrueDictionary {
                path,
                message: e.to_string(),
            });
        }
    };
    let err = |message: String| SynthError::TrueDictionary {
        path: path.clone(),
        message,
    };
    let (tensors, _) = read_f32_safetensors(&bytes).map_err(err)?;
    let directions = tensors
        .into_iter()
        .find(|t| t.name == TRUE_DIRECTIONS_TENSOR)
        .ok_or_else(|| err(format!("has no tensor `{TRUE_DIRECTIONS_TENSOR}`")))?;
    if directions.shape.len() != 2 || directions.shape.iter().any(|&s| s == 0) {
        return Err(err(format!(
            "tensor `{TRUE_DIRECTIONS_TENSOR}` has shape {:?}; expected [n_features, d_in], both non-zero",
            directions.shape
        )));
    }
    Ok(Some(directions))
}

/// MMCS of `dict` against the planted dictionary of the store in
/// `store_dir`, or `None` when the store has none (it is not synthetic).
pub fn mmcs_against_store(
    dict: &impl Dictionary,
    store_dir: &Path,
) -> Result<Option<f64>, SynthError> {
    let Some(truth) = read_true_directions(store_dir)? else {
        return Ok(None);
    };
    let (n_true, d) = (truth.shape[0], truth.shape[1]);
    if dict.d_out() != d {
        return Err(SynthError::Shape {
            what: "dictionary output width for MMCS",
            expected: format!(
                "the planted dictionary's width, {d} ({})",
                store_dir.join(TRUE_DICTIONARY_FILE).display()
            ),
            found: dict.d_out().to_string(),
        });
    }
    let decoder = to_host(dict.decoder_directions());
    mmcs(&truth.data, n_true, &decoder, dict.d_sae(), d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> SyntheticConfig {
        SyntheticConfig {
            d_in: 16,
            n_features: 64,
            mean_active_features: 3.0,
            seed,
            ..SyntheticConfig::default()
        }
    }

    fn rows_of(synth: &mut SyntheticActivations, rows: usize) -> Vec<f32> {
        let mut out = Vec::new();
        assert_eq!(synth.next_batch(rows, &mut out).unwrap(), rows);
        out
    }

    #[test]
    fn synth_same_seed_same_rows_other_seed_other_rows() {
        let mut a = SyntheticActivations::new(small(7)).unwrap();
        let mut b = SyntheticActivations::new(small(7)).unwrap();
        let mut c = SyntheticActivations::new(small(8)).unwrap();
        assert_eq!(a.true_directions(), b.true_directions());
        assert_ne!(a.true_directions(), c.true_directions());
        let (ra, rb, rc) = (
            rows_of(&mut a, 50),
            rows_of(&mut b, 50),
            rows_of(&mut c, 50),
        );
        assert_eq!(ra, rb);
        assert_ne!(ra, rc);
        // The stream moves on: the next batch differs from the first.
        assert_ne!(rows_of(&mut a, 50), ra);
    }

    #[test]
    fn synth_directions_are_unit_and_probabilities_follow_the_power_law() {
        let synth = SyntheticActivations::new(small(1)).unwrap();
        for row in synth.true_directions().chunks(16) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        }
        let p = synth.firing_probabilities();
        assert!((p.iter().sum::<f64>() - 3.0).abs() < 1e-9);
        // Exponent 1: p_j (j+1) is constant while below the cap.
        for j in 0..63 {
            assert!(p[j] >= p[j + 1]);
            if p[j] < 1.0 {
                assert!((p[j] * (j + 1) as f64 - p[63] * 64.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn synth_capped_probabilities_still_sum_to_the_mean() {
        // Exponent 2 with 10 of 20 features active on average forces the
        // first features to probability 1.
        let p = power_law_probabilities(20, 10.0, 2.0);
        assert!((p.iter().sum::<f64>() - 10.0).abs() < 1e-9, "{p:?}");
        assert_eq!(p[0], 1.0);
        assert!(p.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(p.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(power_law_probabilities(4, 4.0, 1.5), vec![1.0; 4]);
        assert_eq!(power_law_probabilities(4, 2.0, 0.0), vec![0.5; 4]);
    }

    #[test]
    fn synth_mean_active_count_matches_config() {
        // Default config: 512 features, power law exponent 1, 5 active on average.
        let mut synth = SyntheticActivations::new(SyntheticConfig::default()).unwrap();
        let mut out = Vec::new();
        let mut codes = SparseCodes::default();
        synth.next_batch_with_codes(20_000, &mut out, &mut codes);
        let mean = codes.features.len() as f64 / 20_000.0;
        assert!((mean - 5.0).abs() < 0.5, "mean active {mean}");
        // The most frequent feature fires about as often as its probability says.
        let p0 = synth.firing_probabilities()[0];
        let f0 = codes.features.iter().filter(|&&j| j == 0).count() as f64 / 20_000.0;
        assert!(
            (f0 - p0).abs() < 5.0 * (p0 * (1.0 - p0) / 20_000.0).sqrt(),
            "{f0} vs {p0}"
        );
    }

    #[test]
    fn synth_rows_are_codes_times_directions_plus_noise() {
        let config = SyntheticConfig {
            noise_std: 0.0,
            ..small(3)
        };
        let mut synth = SyntheticActivations::new(config).unwrap();
        let mut out = Vec::new();
        let mut codes = SparseCodes::default();
        synth.next_batch_with_codes(40, &mut out, &mut codes);
        let dense = codes.to_dense(64);
        for r in 0..40 {
            for i in 0..16 {
                let expected: f32 = (0..64)
                    .map(|j| dense[r * 64 + j] * synth.true_directions()[j * 16 + i])
                    .sum();
                assert!((out[r * 16 + i] - expected).abs() < 1e-5);
            }
            for (_, a) in codes.row(r) {
                assert!((0.5..=1.5).contains(&a), "{a}");
            }
        }
        // With noise the rows move off the span by about noise_std.
        let mut noisy = SyntheticActivations::new(small(3)).unwrap();
        let with_noise = rows_of(&mut noisy, 40);
        let diff: f64 = with_noise
            .iter()
            .zip(&out)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / (40.0 * 16.0);
        assert!(
            (diff.sqrt() - 0.01).abs() < 0.002,
            "noise rms {}",
            diff.sqrt()
        );
    }

    #[test]
    fn synth_any_range_regenerates_identically() {
        let mut synth = SyntheticActivations::new(small(11)).unwrap();
        let all = rows_of(&mut synth, 300);
        let mut out = Vec::new();
        for (start, count) in [(0usize, 1usize), (17, 40), (123, 177), (299, 1)] {
            synth.generate_rows(start as u64, count, &mut out);
            assert_eq!(out, all[start * 16..(start + count) * 16]);
        }
        // Seeking back replays the stream; batch sizes do not matter.
        synth.seek(100);
        let mut pieces = rows_of(&mut synth, 7);
        pieces.extend(rows_of(&mut synth, 93));
        assert_eq!(pieces, all[100 * 16..200 * 16]);
        let mut codes = SparseCodes::default();
        synth.generate_rows_with_codes(100, 100, &mut out, &mut codes);
        assert_eq!(out, all[100 * 16..200 * 16]);
        assert_eq!(codes.rows(), 100);
    }

    #[test]
    fn synth_bad_config_names_the_field() {
        let cases = [
            (
                SyntheticConfig {
                    d_in: 0,
                    ..small(0)
                },
                "d_in",
            ),
            (
                SyntheticConfig {
                    mean_active_features: 65.0,
                    ..small(0)
                },
                "mean_active_features",
            ),
            (
                SyntheticConfig {
                    mean_active_features: 0.0,
                    ..small(0)
                },
                "mean_active_features",
            ),
            (
                SyntheticConfig {
                    frequency_exponent: f64::NAN,
                    ..small(0)
                },
                "frequency_exponent",
            ),
            (
                SyntheticConfig {
                    noise_std: -1.0,
                    ..small(0)
                },
                "noise_std",
            ),
            (
                SyntheticConfig {
                    magnitude: MagnitudeDistribution::Uniform {
                        low: 2.0,
                        high: 1.0,
                    },
                    ..small(0)
                },
                "magnitude",
            ),
        ];
        for (config, field) in cases {
            let err = SyntheticActivations::new(config).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let parsed: SyntheticConfig = serde_json::from_str(r#"{"d_in": 8}"#).unwrap();
        assert_eq!(
            parsed,
            SyntheticConfig {
                d_in: 8,
                ..SyntheticConfig::default()
            }
        );
        assert!(serde_json::from_str::<SyntheticConfig>(r#"{"d_inn": 8}"#).is_err());
    }

    #[test]
    fn synth_folded_normal_magnitudes_are_nonnegative() {
        let config = SyntheticConfig {
            magnitude: MagnitudeDistribution::FoldedNormal {
                mean: 1.0,
                std: 0.25,
            },
            ..small(5)
        };
        let mut synth = SyntheticActivations::new(config).unwrap();
        let mut codes = SparseCodes::default();
        synth.next_batch_with_codes(2000, &mut Vec::new(), &mut codes);
        assert!(codes.magnitudes.iter().all(|&a| a >= 0.0));
        let mean =
            codes.magnitudes.iter().map(|&a| a as f64).sum::<f64>() / codes.magnitudes.len() as f64;
        assert!((mean - 1.0).abs() < 0.03, "{mean}");
    }

    /// A seeded random `[n, d]` matrix.
    fn random_rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d).map(|_| normal(&mut rng)).collect()
    }

    #[test]
    fn mmcs_of_planted_decoder_is_one() {
        let synth = SyntheticActivations::new(SyntheticConfig::default()).unwrap();
        let (n, d) = (512, 64);
        // The true directions permuted, rescaled by positive factors, among 256 random rows.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut decoder = random_rows(256, d, 10);
        for &j in &order {
            let scale = 0.1 + 3.0 * rng.random::<f32>();
            decoder.extend(
                synth.true_directions()[j * d..(j + 1) * d]
                    .iter()
                    .map(|v| v * scale),
            );
        }
        let score = mmcs(synth.true_directions(), n, &decoder, n + 256, d).unwrap();
        assert!((score - 1.0).abs() < 1e-6, "{score}");
        // Flipping the sign of the planted rows loses them.
        let flipped: Vec<f32> = decoder[256 * d..].iter().map(|v| -v).collect();
        assert!(mmcs(synth.true_directions(), n, &flipped, n, d).unwrap() < 0.5);
    }

    #[test]
    fn mmcs_of_random_decoder_is_low() {
        let synth = SyntheticActivations::new(SyntheticConfig::default()).unwrap();
        let decoder = random_rows(1024, 64, 4);
        let score = mmcs(synth.true_directions(), 512, &decoder, 1024, 64).unwrap();
        assert!(score > 0.2 && score < 0.5, "{score}");
        // Half planted, half random: in between.
        let mut half = synth.true_directions()[..256 * 64].to_vec();
        half.extend(random_rows(256, 64, 5));
        let mixed = mmcs(synth.true_directions(), 512, &half, 512, 64).unwrap();
        assert!(mixed > 0.55 && mixed < 0.8, "{mixed}");
        let err = mmcs(synth.true_directions(), 512, &decoder, 1000, 64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("decoder") && err.contains("64000"), "{err}");
    }

    #[cfg(feature = "flex")]
    #[test]
    fn mmcs_of_a_dictionary_and_of_a_written_store() {
        use crate::{Architecture, Sae, SaeConfig};
        use burn::tensor::Device;
        let device = Device::flex();
        let config = small(2);
        let synth = SyntheticActivations::new(config.clone()).unwrap();
        let mut sae = Sae::init(
            SaeConfig::new(Architecture::TopK { k: 3 }, 16, 64),
            0,
            &device,
        );
        let random_score = mmcs_of(&sae, &synth).unwrap();
        sae.params.w_dec = crate::ops::from_host(synth.true_directions().to_vec(), 64, 16, &device);
        assert!((mmcs_of(&sae, &synth).unwrap() - 1.0).abs() < 1e-6);
        assert!(random_score < 0.9, "{random_score}");

        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("acts");
        let written = write_store(&config, &store_dir, 250, Dtype::F32, 100, false).unwrap();
        assert_eq!(written.rows, 250);
        let store = kibitzer_store::Store::open(&store_dir).unwrap();
        assert_eq!(store.metadata()["synthetic"]["n_features"], 64);
        let mut expected = Vec::new();
        synth.generate_rows(200, 50, &mut expected);
        assert_eq!(store.read_shard(2).unwrap(), expected);
        assert!((mmcs_against_store(&sae, &store_dir).unwrap().unwrap() - 1.0).abs() < 1e-6);
        // Not synthetic: no score. Refused without overwrite.
        assert_eq!(mmcs_against_store(&sae, dir.path()).unwrap(), None);
        assert!(write_store(&config, &store_dir, 10, Dtype::F32, 100, false).is_err());
        // No rows: refused, naming the field, and nothing is written.
        let empty = dir.path().join("empty");
        let err = write_store(&config, &empty, 0, Dtype::F32, 100, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`rows`") && err.contains("at least 1"),
            "{err}"
        );
        assert!(!empty.exists());
        // A dictionary of another width is an error naming both widths.
        let wide = Sae::init(
            SaeConfig::new(Architecture::TopK { k: 3 }, 8, 64),
            0,
            &device,
        );
        let err = mmcs_against_store(&wide, &store_dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("16") && err.contains('8'), "{err}");
    }
}
