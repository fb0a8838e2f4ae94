//! Acausal crosscoders (Lindsey et al. 2024, "Sparse crosscoders for
//! cross-layer features and model diffing"): one latent space read from
//! several blocks and written back to all of them.
//!
//! With blocks `x_1 .. x_n` (the layers of one model, or one site of several
//! models), a crosscoder computes
//!
//! ```text
//! pre  = sum_i x_i W_enc^(i) + b_enc        (one encoder per block, summed)
//! f    = sigma(pre)                         (ReLU, TopK or BatchTopK)
//! x̂_i  = f W_dec^(i) + b_dec^(i)            (one decoder per block)
//! ```
//!
//! Stacking the blocks side by side, `x = [x_1 | .. | x_n]`, the encoder is
//! `W_enc = [W_enc^(1); ..; W_enc^(n)]` (`[sum d_i, d_sae]`) and the decoder
//! `W_dec = [W_dec^(1) | .. | W_dec^(n)]` (`[d_sae, sum d_i]`), which is how
//! [`Params`] holds them. The feature weight `s_j = sum_i ||W_dec^(i)_j||`
//! (the sum of the per-block decoder norms) weights the L1 penalty
//! `lambda mean_b sum_j s_j f_bj`; the TopK and BatchTopK variants select on
//! `f_bj s_j` (as the BatchTopK crosscoders of Minder et al. 2025), so that
//! neither the penalty nor the selection can be gamed by moving scale
//! between `f` and the decoder. Decoders are unconstrained.
//!
//! Training normalises every block to mean row norm `sqrt(d_i)` (Anthropic's
//! recipe for crosscoders); the factors are kept in
//! [`Crosscoder::block_scales`] and applied by [`Dictionary`], so the weights
//! stay in normalised units (where the decoder norms of different blocks are
//! comparable) while `encode`/`forward` take raw activations.

use crate::blocks::{self, Block};
use crate::error::XcoderError;
use burn::tensor::{Device, Tensor};
use kibitzer_sae::dictionary::{Dictionary, Forward};
use kibitzer_sae::ops::{batch_topk_mask, from_host, row_from_host, row_topk_mask};
use kibitzer_sae::{Architecture, Params};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The shape and behaviour of a [`Crosscoder`], apart from its weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CrosscoderConfig {
    /// `Standard` (ReLU with the decoder-norm-weighted L1 penalty), `TopK`
    /// or `BatchTopK`.
    pub architecture: Architecture,
    /// The blocks read and reconstructed, in row order.
    pub blocks: Vec<Block>,
    /// Number of features.
    pub d_sae: usize,
}

impl CrosscoderConfig {
    /// Checks the architecture, blocks and sizes, naming what is wrong.
    pub fn validate(&self) -> Result<(), XcoderError> {
        blocks::validate(&self.blocks, "crosscoder blocks")?;
        if self.d_sae == 0 {
            return Err(XcoderError::config(
                "crosscoder d_sae",
                "must be at least 1",
            ));
        }
        match self.architecture {
            Architecture::Standard => Ok(()),
            Architecture::TopK { k } | Architecture::BatchTopK { k } => {
                if k == 0 || k > self.d_sae {
                    Err(XcoderError::config(
                        "crosscoder k",
                        format!("must be in 1..={} (d_sae), got {k}", self.d_sae),
                    ))
                } else {
                    Ok(())
                }
            }
            // The gated step serves crosscoders (checked against autodiff),
            // but trained so, gated crosscoders recovered 14 of 32 planted
            // cross-layer features where L1, TopK and BatchTopK recover
            // 26 or more: the gated SAE assumes unit-norm decoder rows, and
            // a crosscoder's decoder norms are free.
            Architecture::Gated => Err(XcoderError::config(
                "crosscoder architecture",
                "gated crosscoders are not offered (the gated SAE assumes unit-norm decoder rows, which crosscoders do not keep); use standard (L1), topk or batchtopk",
            )),
            ref other => Err(XcoderError::config(
                "crosscoder architecture",
                format!(
                    "{} is not a crosscoder architecture; use standard (L1), topk or batchtopk",
                    other.name()
                ),
            )),
        }
    }

    /// Width of a row: the sum of the block widths.
    pub fn width(&self) -> usize {
        blocks::total_width(&self.blocks)
    }

    /// Block widths in order.
    pub fn widths(&self) -> Vec<usize> {
        blocks::widths(&self.blocks)
    }
}

/// An acausal crosscoder; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Crosscoder {
    /// Shape and behaviour.
    pub config: CrosscoderConfig,
    /// Weights in normalised units: `w_enc [width, d_sae]`, `b_enc [1, d_sae]`,
    /// `w_dec [d_sae, width]`, `b_dec [1, width]`; `threshold [1, d_sae]` is
    /// BatchTopK's inference threshold on `f_j s_j` once estimated.
    pub params: Params,
    /// Factor each block is multiplied by before encoding (and its
    /// reconstruction divided by after decoding): the normalisation the
    /// weights were trained under. All ones when trained on raw activations.
    pub block_scales: Vec<f32>,
}

/// Norm of each block of a decoder row at initialisation: 0.1 for the L1
/// crosscoder (small, as the standard SAE's, so the penalty starts gentle),
/// `1 / sqrt(n)` for TopK/BatchTopK (unit rows over the concatenation).
fn init_block_norm(arch: &Architecture, n_blocks: usize) -> f32 {
    match arch {
        Architecture::Standard => 0.1,
        _ => 1.0 / (n_blocks as f32).sqrt(),
    }
}

impl Crosscoder {
    /// A freshly initialised crosscoder, identical for a given seed on every
    /// device: each block of each decoder row a random direction of norm
    /// [`init_block_norm`], the encoder the decoder's transpose, biases zero.
    pub fn init(config: CrosscoderConfig, seed: u64, device: &Device) -> Result<Self, XcoderError> {
        config.validate()?;
        let widths = config.widths();
        let (m, width) = (config.d_sae, config.width());
        let norm = init_block_norm(&config.architecture, widths.len());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut dec = vec![0f32; m * width];
        for row in dec.chunks_mut(width) {
            let mut start = 0;
            for &w in &widths {
                let block = &mut row[start..start + w];
                for v in block.iter_mut() {
                    *v = rng.sample(rand_distr::StandardNormal);
                }
                let n = block.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                block.iter_mut().for_each(|v| *v *= norm / n);
                start += w;
            }
        }
        let w_dec = from_host(dec, m, width, device);
        let params = Params {
            w_enc: w_dec.clone().transpose(),
            b_enc: Tensor::zeros([1, m], device),
            w_dec,
            b_dec: Tensor::zeros([1, width], device),
            threshold: None,
            b_mag: None,
            r_mag: None,
            w_skip: None,
        };
        Ok(Self {
            block_scales: vec![1.0; widths.len()],
            config,
            params,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.params.w_enc.device()
    }

    /// Moves the weights to another device.
    pub fn to_device(&self, device: &Device) -> Crosscoder {
        Crosscoder {
            config: self.config.clone(),
            params: self.params.map(|t| t.clone().to_device(device)),
            block_scales: self.block_scales.clone(),
        }
    }

    /// Per-block decoder norms `||W_dec^(i)_j||`, one `[d_sae, 1]` tensor per block.
    pub fn decoder_block_norms(&self) -> Vec<Tensor<2>> {
        blocks::block_row_norms(&self.params.w_dec, &self.config.widths())
    }

    /// The feature weights `s_j = sum_i ||W_dec^(i)_j||` as a `[1, d_sae]` row.
    pub fn feature_weights(&self) -> Tensor<2> {
        blocks::norm_sum(&self.decoder_block_norms()).transpose()
    }

    /// `block_scales` spread over the columns: `[1, width]`.
    fn scale_row(&self) -> Tensor<2> {
        let row: Vec<f32> = self
            .config
            .blocks
            .iter()
            .zip(&self.block_scales)
            .flat_map(|(b, &c)| std::iter::repeat_n(c, b.width))
            .collect();
        row_from_host(row, &self.device())
    }

    fn scales_are_one(&self) -> bool {
        self.block_scales.iter().all(|&c| c == 1.0)
    }

    /// Features of an already normalised batch (inference behaviour).
    pub fn encode_normalised(&self, x: Tensor<2>) -> Tensor<2> {
        let pre = x.matmul(self.params.w_enc.clone()) + self.params.b_enc.clone();
        let relu = pre.clamp_min(0.0);
        match self.config.architecture {
            Architecture::TopK { k } => {
                let v = relu.clone() * self.feature_weights();
                row_topk_mask(v, k) * relu.clone().greater_elem(0.0).float() * relu
            }
            Architecture::BatchTopK { k } => {
                let v = relu.clone() * self.feature_weights();
                match &self.params.threshold {
                    // Inference: a JumpReLU on f_j s_j with the global threshold.
                    Some(theta) => v.clone().greater(theta.clone().expand(v.dims())).float() * relu,
                    None => {
                        let total = k * v.dims()[0];
                        batch_topk_mask(v, total) * relu
                    }
                }
            }
            // Standard (validated: no other architecture reaches here).
            _ => relu,
        }
    }

    /// Output of the decoder in normalised units.
    pub fn decode_normalised(&self, f: Tensor<2>) -> Tensor<2> {
        f.matmul(self.params.w_dec.clone()) + self.params.b_dec.clone()
    }

    /// The same crosscoder with its weights folded to raw activations where
    /// that is exact (`block_scales` all ones afterwards), for the L1
    /// crosscoder only: TopK and BatchTopK select on decoder norms measured in
    /// normalised units, which no rescaling of the weights preserves, so they
    /// keep their scales. Folding: `W_enc^(i) *= c_i`, `W_dec^(i), b_dec^(i) /= c_i`.
    pub fn folded(&self) -> Crosscoder {
        if !matches!(self.config.architecture, Architecture::Standard) || self.scales_are_one() {
            return self.clone();
        }
        let scale = self.scale_row();
        let mut out = self.clone();
        out.params.w_enc = self.params.w_enc.clone() * scale.clone().transpose();
        out.params.w_dec = self.params.w_dec.clone() / scale.clone();
        out.params.b_dec = self.params.b_dec.clone() / scale;
        out.block_scales = vec![1.0; self.block_scales.len()];
        out
    }
}

impl Dictionary for Crosscoder {
    fn d_in(&self) -> usize {
        self.config.width()
    }
    fn d_sae(&self) -> usize {
        self.config.d_sae
    }
    fn d_out(&self) -> usize {
        self.config.width()
    }
    fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        if self.scales_are_one() {
            self.encode_normalised(x)
        } else {
            self.encode_normalised(x * self.scale_row())
        }
    }
    fn decode(&self, features: Tensor<2>) -> Tensor<2> {
        let out = self.decode_normalised(features);
        if self.scales_are_one() {
            out
        } else {
            out / self.scale_row()
        }
    }
    /// Decoder rows in raw units (`W_dec^(i) / c_i`), one per feature.
    fn decoder_directions(&self) -> Tensor<2> {
        if self.scales_are_one() {
            self.params.w_dec.clone()
        } else {
            self.params.w_dec.clone() / self.scale_row()
        }
    }
    fn forward(&self, x: Tensor<2>) -> Forward {
        let features = self.encode(x);
        Forward {
            reconstruction: self.decode(features.clone()),
            features,
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use kibitzer_sae::ops::to_host;

    fn config(arch: Architecture) -> CrosscoderConfig {
        CrosscoderConfig {
            architecture: arch,
            blocks: vec![Block::new("l0", 3), Block::new("l1", 5)],
            d_sae: 6,
        }
    }

    #[test]
    fn init_is_seeded_and_sets_block_norms() {
        let dev = Device::flex();
        let a = Crosscoder::init(config(Architecture::Standard), 3, &dev).unwrap();
        let b = Crosscoder::init(config(Architecture::Standard), 3, &dev).unwrap();
        let c = Crosscoder::init(config(Architecture::Standard), 4, &dev).unwrap();
        assert_eq!(
            to_host(a.params.w_dec.clone()),
            to_host(b.params.w_dec.clone())
        );
        assert_ne!(
            to_host(a.params.w_dec.clone()),
            to_host(c.params.w_dec.clone())
        );
        for n in a.decoder_block_norms() {
            for v in to_host(n) {
                assert!((v - 0.1).abs() < 1e-5, "{v}");
            }
        }
        assert_eq!(
            to_host(a.params.w_enc.clone().transpose()),
            to_host(a.params.w_dec.clone())
        );
        let t = Crosscoder::init(config(Architecture::TopK { k: 2 }), 3, &dev).unwrap();
        for v in to_host(t.feature_weights()) {
            assert!((v - 2.0 / 2f32.sqrt()).abs() < 1e-5, "{v}");
        }
    }

    #[test]
    fn config_errors_name_the_problem() {
        let err = config(Architecture::Gated)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("gated"), "{err}");
        let err = config(Architecture::TopK { k: 7 })
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("1..=6"), "{err}");
    }

    #[test]
    fn topk_selects_on_decoder_weighted_activations() {
        let dev = Device::flex();
        let mut cc = Crosscoder::init(config(Architecture::TopK { k: 1 }), 0, &dev).unwrap();
        // Two features with pre-activations 1.0 and 0.8; the second has a
        // decoder twice as long, so it wins the single slot.
        let m = 6;
        let mut enc = vec![0f32; 8 * m];
        enc[0] = 1.0; // x[0] -> feature 0
        enc[1] = 0.8; // x[0] -> feature 1
        cc.params.w_enc = from_host(enc, 8, m, &dev);
        let mut dec = vec![0f32; m * 8];
        dec[0] = 1.0; // feature 0: norm 1 in block 0
        dec[8] = 1.0; // feature 1: norm 1 in block 0 ...
        dec[8 + 3] = 1.0; // ... and 1 in block 1
        cc.params.w_dec = from_host(dec, m, 8, &dev);
        let mut x = vec![0f32; 8];
        x[0] = 1.0;
        let f = to_host(cc.encode(from_host(x, 1, 8, &dev)));
        assert_eq!(f[0], 0.0);
        assert!((f[1] - 0.8).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn block_scales_apply_and_fold_exactly() {
        let dev = Device::flex();
        let mut cc = Crosscoder::init(config(Architecture::Standard), 1, &dev).unwrap();
        cc.params.b_enc = row_from_host(vec![0.05; 6], &dev);
        cc.params.b_dec = row_from_host((0..8).map(|i| i as f32 * 0.1).collect(), &dev);
        cc.block_scales = vec![2.0, 0.5];
        let x = from_host(
            (0..16).map(|i| (i as f32 * 0.37).sin()).collect(),
            2,
            8,
            &dev,
        );
        let raw = cc.forward(x.clone());
        let folded = cc.folded();
        assert_eq!(folded.block_scales, vec![1.0, 1.0]);
        let f2 = folded.forward(x);
        for (a, b) in to_host(raw.reconstruction)
            .iter()
            .zip(to_host(f2.reconstruction))
        {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        for (a, b) in to_host(raw.features).iter().zip(to_host(f2.features)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
