//! Synthetic rows with a planted sparse map: the ground truth a transcoder or
//! crosscoder should recover.
//!
//! [`Planted`] draws, for each of `n_features` features, a direction in every
//! input block and (for a transcoder) in every output block, then produces
//! rows
//!
//! ```text
//! z_r = sum_{j active in r} a_rj u_j + dense_r,   x_r = z_r + noise,   y_r = sum_{j active in r} a_rj w_j + z_r W_skip^T + noise
//! ```
//!
//! with feature `j` active independently with probability `p_j`,
//! `a_rj ~ U[0.5, 1.5]`, `dense_r ~ N(0, dense_input_std^2 I)` and
//! `noise ~ N(0, noise_std^2 I)`. A feature's direction in each block is a random unit
//! vector, kept with probability `block_presence` (at least one block of
//! every feature is kept), so a crosscoder's features may live in some
//! layers only. Training rows are `[x | y]` for a transcoder and `[x]` for a
//! crosscoder (which reconstructs its input). Row `r` depends only on the
//! seed and `r` (a ChaCha8 stream per row), so any range of rows is
//! reproducible in any order, and two [`Planted`] sources that share a seed
//! draw the same codes: the directions or probabilities can be changed
//! ([`Planted::set_direction`], [`Planted::set_probability`]) to make "the
//! same data through another model" or "another data set through the same
//! model" for model diffing.

use crate::blocks::Block;
use crate::error::XcoderError;
use kibitzer_sae::train::SourcePosition;
use kibitzer_store::ActivationSource;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::convert::Infallible;

/// Settings of a [`Planted`] source.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlantedConfig {
    /// Number of planted features.
    pub n_features: usize,
    /// Widths of the input blocks.
    pub input_widths: Vec<usize>,
    /// Widths of the output blocks; empty for a crosscoder's rows (`y = x`).
    pub output_widths: Vec<usize>,
    /// Probability that a feature is active in a row (the same for all).
    pub firing_probability: f64,
    /// Probability that a feature has a direction in a given block.
    pub block_presence: f64,
    /// Standard deviation of the Gaussian noise on every value.
    pub noise_std: f64,
    /// Standard deviation of a dense Gaussian part of `x` (no feature
    /// explains it; `y` sees it only through the skip map).
    pub dense_input_std: f64,
    /// Scale of a dense affine map `x W_skip^T` added to `y` (0: none);
    /// entries are `N(0, (skip_scale^2 / d_in))`.
    pub skip_scale: f64,
    /// Seed of the directions and of every row.
    pub seed: u64,
}

impl PlantedConfig {
    /// Checks every field, naming the first that is out of range.
    pub fn validate(&self) -> Result<(), XcoderError> {
        let bad =
            |what: &str, msg: String| Err(XcoderError::config(format!("planted {what}"), msg));
        if self.n_features == 0 {
            return bad("n_features", "must be at least 1".into());
        }
        if self.input_widths.is_empty() || self.input_widths.contains(&0) {
            return bad(
                "input_widths",
                format!(
                    "need at least one block, none empty: {:?}",
                    self.input_widths
                ),
            );
        }
        if self.output_widths.contains(&0) {
            return bad(
                "output_widths",
                format!("no block may be empty: {:?}", self.output_widths),
            );
        }
        for (what, p) in [
            ("firing_probability", self.firing_probability),
            ("block_presence", self.block_presence),
        ] {
            if !(p > 0.0 && p <= 1.0) {
                return bad(what, format!("must be in (0, 1], got {p}"));
            }
        }
        for (what, v) in [
            ("noise_std", self.noise_std),
            ("dense_input_std", self.dense_input_std),
            ("skip_scale", self.skip_scale),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(what, format!("must be a non-negative number, got {v}"));
            }
        }
        if self.skip_scale > 0.0 && self.output_widths.is_empty() {
            return bad("skip_scale", "a skip map needs output blocks".into());
        }
        Ok(())
    }
}

/// Planted sparse rows; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Planted {
    config: PlantedConfig,
    d_in: usize,
    d_out: usize,
    /// `[n_features, d_in]`.
    input_directions: Vec<f32>,
    /// `[n_features, d_out]`.
    output_directions: Vec<f32>,
    /// `[d_out, d_in]` when `skip_scale > 0`.
    skip: Option<Vec<f32>>,
    probabilities: Vec<f64>,
    next_row: u64,
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    rng.sample(rand_distr::StandardNormal)
}

/// Block-wise random unit directions, each block kept with probability
/// `presence` (at least one kept per feature).
fn directions(rng: &mut ChaCha8Rng, n: usize, widths: &[usize], presence: f64) -> Vec<f32> {
    let d: usize = widths.iter().sum();
    let mut out = vec![0f32; n * d];
    for row in out.chunks_mut(d.max(1)) {
        let mut kept: Vec<bool> = widths
            .iter()
            .map(|_| rng.random::<f64>() < presence)
            .collect();
        if !kept.iter().any(|&k| k) {
            let i = rng.random_range(0..widths.len());
            kept[i] = true;
        }
        let mut start = 0;
        for (&w, keep) in widths.iter().zip(kept) {
            let block = &mut row[start..start + w];
            block.iter_mut().for_each(|v| *v = normal(rng));
            let norm = block.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            let scale = if keep { 1.0 / norm } else { 0.0 };
            block.iter_mut().for_each(|v| *v *= scale);
            start += w;
        }
    }
    out
}

impl Planted {
    /// Draws the planted map for `config`; the stream starts at row 0.
    pub fn new(config: PlantedConfig) -> Result<Self, XcoderError> {
        config.validate()?;
        let d_in: usize = config.input_widths.iter().sum();
        let d_out: usize = config.output_widths.iter().sum();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let input_directions = directions(
            &mut rng,
            config.n_features,
            &config.input_widths,
            config.block_presence,
        );
        let output_directions = if d_out > 0 {
            directions(
                &mut rng,
                config.n_features,
                &config.output_widths,
                config.block_presence,
            )
        } else {
            Vec::new()
        };
        let skip = (config.skip_scale > 0.0).then(|| {
            let s = (config.skip_scale / (d_in as f64).sqrt()) as f32;
            (0..d_out * d_in).map(|_| normal(&mut rng) * s).collect()
        });
        Ok(Self {
            probabilities: vec![config.firing_probability; config.n_features],
            config,
            d_in,
            d_out,
            input_directions,
            output_directions,
            skip,
            next_row: 0,
        })
    }

    /// The settings it was built with.
    pub fn config(&self) -> &PlantedConfig {
        &self.config
    }

    /// Input directions, `[n_features, d_in]` row-major.
    pub fn input_directions(&self) -> &[f32] {
        &self.input_directions
    }

    /// Output directions, `[n_features, d_out]` row-major (empty for
    /// crosscoder rows, whose target is the input).
    pub fn output_directions(&self) -> &[f32] {
        &self.output_directions
    }

    /// The planted skip map `W_skip`, `[d_out, d_in]` row-major, if any.
    pub fn skip_matrix(&self) -> Option<&[f32]> {
        self.skip.as_deref()
    }

    /// The directions a dictionary's decoder should recover: the output
    /// directions, or the input ones for crosscoder rows.
    pub fn target_directions(&self) -> (&[f32], usize) {
        if self.d_out > 0 {
            (&self.output_directions, self.d_out)
        } else {
            (&self.input_directions, self.d_in)
        }
    }

    /// The blocks of a training row, named `in{i}` and `out{i}`.
    pub fn row_blocks(&self) -> Vec<Block> {
        let named = |prefix: &str, widths: &[usize]| -> Vec<Block> {
            widths
                .iter()
                .enumerate()
                .map(|(i, &w)| Block::new(format!("{prefix}{i}"), w))
                .collect()
        };
        let mut out = named("in", &self.config.input_widths);
        out.extend(named("out", &self.config.output_widths));
        out
    }

    /// Replaces feature `j`'s direction in the input (`output = false`) or
    /// output space; `direction` must have that space's width.
    pub fn set_direction(
        &mut self,
        j: usize,
        output: bool,
        direction: &[f32],
    ) -> Result<(), XcoderError> {
        let (d, dirs) = if output {
            (self.d_out, &mut self.output_directions)
        } else {
            (self.d_in, &mut self.input_directions)
        };
        if j >= self.config.n_features || direction.len() != d || d == 0 {
            return Err(XcoderError::shape(
                "planted direction",
                format!("feature < {} and {d} values", self.config.n_features),
                format!("feature {j} and {} values", direction.len()),
            ));
        }
        dirs[j * d..(j + 1) * d].copy_from_slice(direction);
        Ok(())
    }

    /// Sets feature `j`'s firing probability (in `[0, 1]`).
    pub fn set_probability(&mut self, j: usize, p: f64) -> Result<(), XcoderError> {
        if j >= self.config.n_features || !(0.0..=1.0).contains(&p) {
            return Err(XcoderError::config(
                "planted probability",
                format!(
                    "feature {j} (of {}) and p = {p}: need a feature index in range and p in [0, 1]",
                    self.config.n_features
                ),
            ));
        }
        self.probabilities[j] = p;
        Ok(())
    }

    /// Width of a training row: `d_in + d_out`.
    pub fn row_width(&self) -> usize {
        self.d_in + self.d_out
    }

    /// Rows `start .. start + count` into `out` (cleared first), independently
    /// of the stream position.
    pub fn generate_rows(&self, start: u64, count: usize, out: &mut Vec<f32>) {
        let w = self.row_width();
        out.clear();
        out.resize(count * w, 0.0);
        out.par_chunks_mut(w)
            .enumerate()
            .for_each(|(i, row)| self.fill_row(start + i as u64, row));
    }

    fn fill_row(&self, r: u64, row: &mut [f32]) {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x9e37_79b9_7f4a_7c15);
        rng.set_stream(r);
        let (x, y) = row.split_at_mut(self.d_in);
        let noise = self.config.noise_std as f32;
        let dense = self.config.dense_input_std as f32;
        x.iter_mut().for_each(|v| *v = dense * normal(&mut rng));
        let mut y_noise: Vec<f32> = (0..self.d_out).map(|_| noise * normal(&mut rng)).collect();
        for (j, &p) in self.probabilities.iter().enumerate() {
            // Every feature draws both numbers, so changing one feature's
            // probability leaves the other features' codes unchanged.
            let (u, a) = (rng.random::<f64>(), 0.5 + rng.random::<f32>());
            if u < p {
                for (v, &d) in x
                    .iter_mut()
                    .zip(&self.input_directions[j * self.d_in..(j + 1) * self.d_in])
                {
                    *v += a * d;
                }
                if self.d_out > 0 {
                    for (v, &d) in y_noise
                        .iter_mut()
                        .zip(&self.output_directions[j * self.d_out..(j + 1) * self.d_out])
                    {
                        *v += a * d;
                    }
                }
            }
        }
        if let Some(skip) = &self.skip {
            for (o, v) in y_noise.iter_mut().enumerate() {
                *v += skip[o * self.d_in..(o + 1) * self.d_in]
                    .iter()
                    .zip(x.iter())
                    .map(|(a, b)| a * b)
                    .sum::<f32>();
            }
        }
        // Measurement noise on x comes last: y does not see it.
        x.iter_mut().for_each(|v| *v += noise * normal(&mut rng));
        y.copy_from_slice(&y_noise);
    }

    /// Output widths as blocks (for per-block FVU); the input's for crosscoder rows.
    pub fn target_widths(&self) -> Vec<usize> {
        if self.d_out > 0 {
            self.config.output_widths.clone()
        } else {
            self.config.input_widths.clone()
        }
    }

    /// Total width of the target blocks.
    pub fn target_width(&self) -> usize {
        self.target_widths().iter().sum()
    }
}

impl ActivationSource for Planted {
    type Error = Infallible;

    fn d_in(&self) -> usize {
        self.row_width()
    }

    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, Infallible> {
        self.generate_rows(self.next_row, rows, out);
        self.next_row += rows as u64;
        Ok(rows)
    }
}

impl SourcePosition for Planted {
    fn position(&self) -> serde_json::Value {
        serde_json::json!({ "planted_row": self.next_row })
    }
}

impl Planted {
    /// Continues the stream from a position saved by [`SourcePosition::position`].
    pub fn seek_to(&mut self, position: &serde_json::Value) -> Result<(), XcoderError> {
        let row = position
            .get("planted_row")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| {
                XcoderError::config(
                    "planted position",
                    format!("expected {{\"planted_row\": N}}, found {position}"),
                )
            })?;
        self.next_row = row;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PlantedConfig {
        PlantedConfig {
            n_features: 10,
            input_widths: vec![4, 6],
            output_widths: vec![3],
            firing_probability: 0.3,
            block_presence: 0.5,
            noise_std: 0.0,
            dense_input_std: 0.0,
            skip_scale: 0.0,
            seed: 9,
        }
    }

    #[test]
    fn rows_are_reproducible_and_follow_the_map() {
        let p = Planted::new(config()).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        p.generate_rows(5, 20, &mut a);
        p.generate_rows(0, 25, &mut b);
        assert_eq!(a, b[5 * 13..]);
        // Every feature has a unit direction in at least one input block,
        // and zero blocks are exactly zero.
        for f in p.input_directions().chunks(10) {
            let n0: f32 = f[..4].iter().map(|v| v * v).sum();
            let n1: f32 = f[4..].iter().map(|v| v * v).sum();
            assert!(
                (n0 < 1e-12 || (n0 - 1.0).abs() < 1e-5) && (n1 < 1e-12 || (n1 - 1.0).abs() < 1e-5)
            );
            assert!(n0 + n1 > 0.5);
        }
        // Without noise, y is in the span of the output directions weighted
        // like x: the row sums of x and y use the same codes, so a row with
        // x = 0 has y = 0.
        for row in b.chunks(13) {
            let x0 = row[..10].iter().all(|v| *v == 0.0);
            let y0 = row[10..].iter().all(|v| *v == 0.0);
            assert_eq!(x0, y0);
        }
    }

    #[test]
    fn changing_one_probability_keeps_other_codes() {
        let base = Planted::new(PlantedConfig {
            block_presence: 1.0,
            ..config()
        })
        .unwrap();
        let mut other = base.clone();
        other.set_probability(3, 0.0).unwrap();
        let mut dir = vec![0f32; 10];
        dir[0] = 1.0;
        other.set_direction(3, false, &dir).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        base.generate_rows(0, 200, &mut a);
        other.generate_rows(0, 200, &mut b);
        // Rows differ only by feature 3's contribution: where it was off in
        // the base rows, they are identical.
        let mut same = 0;
        for (ra, rb) in a.chunks(13).zip(b.chunks(13)) {
            if ra == rb {
                same += 1;
            }
        }
        assert!(same > 100 && same < 200, "{same}");
        assert!(other.set_probability(10, 0.5).is_err());
        assert!(other.set_direction(0, false, &[1.0]).is_err());
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = PlantedConfig {
            firing_probability: 0.0,
            ..config()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("firing_probability"), "{err}");
        let err = PlantedConfig {
            output_widths: vec![],
            skip_scale: 1.0,
            ..config()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("skip_scale"), "{err}");
    }
}
