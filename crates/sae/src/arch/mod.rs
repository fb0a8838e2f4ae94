//! The dictionary architectures: one small module each over shared pieces,
//! one training step per architecture for every shape of dictionary.
//!
//! Every architecture computes its loss and its gradients by hand (no autodiff
//! graph): dictionaries are shallow, the gradients are a handful of matrix
//! products, and writing them out lets the straight-through estimators, the
//! frozen decoder of the gated auxiliary loss and the sparse TopK structure be
//! exact and cheap. The tests compare every architecture's gradients with
//! burn's autodiff on the same loss, for each shape.
//!
//! A step serves three shapes ([`StepModel`]): an SAE reconstructs its input
//! (`y = x`), a transcoder predicts another site `y` (optionally through a
//! skip path `x W_skip^T`), and a crosscoder reads and writes several sites,
//! its decoder cut into output blocks whose row norms are summed into each
//! feature's weight. An architecture written here trains as all three.
//!
//! Notation used in the modules: `x` the (normalised) input batch `[B, d_in]`,
//! `y` the target `[B, d_out]` (`x` for an SAE), `s` the encoder input (`x -
//! b_dec` when [`StepModel::apply_b_dec_to_input`]), `pre = s W_enc + b_enc`,
//! `f` the features, `ŷ = f W_dec + b_dec (+ x W_skip^T)`. The reconstruction
//! loss is `mean_b ||ŷ_b - y_b||^2` (summed over the width, averaged over the
//! batch, as dictionary_learning and Anthropic's April update do), and `g =
//! dL/dŷ = 2 (ŷ - y) / B`.

pub mod cross_layer;
pub mod family;
pub mod gated;
pub mod jumprelu;
pub mod sparsity;
pub mod standard;
pub mod topk;
pub mod topk_host;

pub use cross_layer::CrossLayer;
pub use family::{Family, UnknownFamily};

use crate::ops::row_norms;
use crate::sae::{Params, Sae};
use burn::tensor::Tensor;
use sparsity::add_norm_grad;

/// Which dictionary architecture, with the settings that change inference.
/// Training-only settings (coefficients, schedules) live in
/// [`crate::train::TrainConfig`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Architecture {
    /// ReLU SAE with an Lp sparsity penalty on decoder-norm-weighted
    /// activations: L1 (Anthropic's April 2024 update: unconstrained decoder,
    /// penalty `sum_j f_j ||W_dec_j||`) or, with
    /// [`crate::train::PAnneal`], Lp annealed from p = 1 down (Karvonen et al.
    /// 2024, "p-annealing").
    Standard,
    /// Gated SAE (Rajamanoharan et al. 2024, "Improving dictionary learning
    /// with gated sparse autoencoders"): a gate path `s W_enc + b_gate` decides
    /// which features are on, a magnitude path `s (W_enc * exp(r_mag)) + b_mag`
    /// sharing the encoder decides how much; sparsity on `relu(gate)`, plus an
    /// auxiliary reconstruction from `relu(gate)` through a frozen decoder.
    /// Decoder rows are kept at unit norm.
    Gated,
    /// TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse
    /// autoencoders"): keep the `k` largest pre-activations of each row;
    /// unit-norm decoder rows (gradient projected, rows renormalised); AuxK
    /// loss on dead latents.
    #[serde(rename = "topk")]
    TopK {
        /// Active features per row.
        k: usize,
    },
    /// BatchTopK SAE (Bussmann et al. 2024): the `k * batch` largest
    /// activations across the whole batch while training; at inference a
    /// single global threshold (an EMA of the smallest kept activation),
    /// which makes it a JumpReLU with a shared threshold.
    #[serde(rename = "batchtopk")]
    BatchTopK {
        /// Average active features per row.
        k: usize,
    },
    /// JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping ahead"): per-feature
    /// thresholds, `f = pre * H(pre - theta)`, trained with straight-through
    /// estimators using a rectangle kernel of width `bandwidth`; L0 penalty.
    /// Decoder rows are kept at unit norm (the Gemma Scope recipe).
    #[serde(rename = "jumprelu")]
    JumpRelu {
        /// Width of the rectangle kernel of the pseudo-derivatives (paper: 0.001).
        bandwidth: f64,
    },
}

impl Architecture {
    /// The name used on the command line and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Standard => "standard",
            Architecture::Gated => "gated",
            Architecture::TopK { .. } => "topk",
            Architecture::BatchTopK { .. } => "batchtopk",
            Architecture::JumpRelu { .. } => "jumprelu",
        }
    }

    /// Whether decoder rows are held at unit norm during training.
    pub fn unit_norm_decoder(&self) -> bool {
        !matches!(self, Architecture::Standard)
    }

    /// Norm of the decoder rows at initialisation.
    pub fn decoder_init_norm(&self) -> f32 {
        if self.unit_norm_decoder() { 1.0 } else { 0.1 }
    }

    /// Whether `b_dec` is subtracted from the input by default. True for all
    /// architectures but JumpReLU, whose paper encodes `x` directly.
    pub fn default_apply_b_dec_to_input(&self) -> bool {
        !matches!(self, Architecture::JumpRelu { .. })
    }
}

/// What one architecture needs from the trainer for one step.
#[derive(Clone, Debug)]
pub struct StepInputs {
    /// Sparsity coefficient after warm-up.
    pub sparsity_coefficient: f64,
    /// Exponent of the Lp penalty (1 for L1).
    pub p: f64,
    /// TopK/BatchTopK: 0/1 row `[1, d_sae]` marking dead latents for AuxK, or
    /// `None` when none are dead.
    pub dead_mask: Option<Tensor<2>>,
    /// Number of dead latents in `dead_mask`.
    pub n_dead: usize,
    /// AuxK: latents used for the auxiliary reconstruction.
    pub k_aux: usize,
    /// AuxK: weight of the auxiliary loss.
    pub auxk_alpha: f64,
    /// JumpReLU: the form of the L0 penalty.
    pub l0: L0Penalty,
    /// TopK/BatchTopK trained as a Matryoshka dictionary: the ascending
    /// prefix widths whose reconstructions are each part of the loss, the
    /// last one `d_sae` ([`crate::train::TrainConfig::matryoshka_levels`]).
    /// `None`: the whole dictionary only.
    pub levels: Option<Vec<usize>>,
}

/// JumpReLU's L0 penalty beyond the paper's (`lambda * L0`, gradient to the
/// thresholds only).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct L0Penalty {
    /// The term is `(L0 / target - 1)^2`
    /// ([`crate::train::TrainConfig::jumprelu_target_l0`]).
    pub target: Option<f64>,
    /// The straight-through gradient of the L0 term also reaches the
    /// pre-activations, and through them the encoder
    /// ([`crate::train::TrainConfig::jumprelu_l0_to_encoder`]).
    pub to_encoder: bool,
}

/// Loss terms of one step (host scalars, for logging).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LossParts {
    /// Total loss that the gradients are of.
    pub loss: f64,
    /// Reconstruction term `mean_b ||x_hat - x||^2`.
    pub mse: f64,
    /// Sparsity term, before multiplying by the coefficient.
    pub sparsity: f64,
    /// Auxiliary terms, weighted: the gated aux reconstruction, AuxK, the
    /// inner levels' reconstructions of a Matryoshka dictionary.
    pub aux: f64,
}

/// Gradients and by-products of one training step.
pub struct StepOutput {
    /// Gradients of the total loss, laid out like the parameters.
    pub grads: Params,
    /// Features of the batch (the training-time activation).
    pub features: Tensor<2>,
    /// Reconstruction of the batch.
    pub reconstruction: Tensor<2>,
    /// Loss terms as tensors of one element, read back only when logging
    /// (reading forces a device sync).
    pub loss: LossTensors,
    /// BatchTopK: smallest activation kept this batch, for the threshold EMA.
    pub min_kept_activation: Option<Tensor<1>>,
}

/// Loss terms as one-element tensors.
pub struct LossTensors {
    /// Reconstruction term.
    pub mse: Tensor<1>,
    /// Sparsity term (unweighted).
    pub sparsity: Tensor<1>,
    /// Weighted auxiliary terms (see [`LossParts::aux`]).
    pub aux: Tensor<1>,
    /// Sparsity coefficient used.
    pub coefficient: f64,
}

impl LossTensors {
    /// Reads the terms back to the host.
    pub fn read(self) -> LossParts {
        let mse = crate::ops::scalar(self.mse);
        let sparsity = crate::ops::scalar(self.sparsity);
        let aux = crate::ops::scalar(self.aux);
        LossParts {
            loss: mse + self.coefficient * sparsity + aux,
            mse,
            sparsity,
            aux,
        }
    }
}

/// What a training step needs to know about a dictionary, whatever its
/// shape (see the module documentation).
#[derive(Clone, Debug)]
pub struct StepModel<'a> {
    /// The weights; a `w_skip` adds the skip path `x W_skip^T`.
    pub params: &'a Params,
    /// Which architecture.
    pub architecture: &'a Architecture,
    /// Widths of the output blocks, summing to `d_out`: `[d_out]` for an
    /// SAE or a transcoder, one block per site for a crosscoder. A
    /// feature's decoder weight is `s_j = sum_i ||W_dec^(i)_j||`.
    /// Borrowed where the dictionary stores them, owned where it derives
    /// them (a crosscoder's block list).
    pub out_blocks: std::borrow::Cow<'a, [usize]>,
    /// TopK and BatchTopK select on `relu(pre) s_j` rather than `pre`
    /// (crosscoders, whose decoder rows are free).
    pub select_by_norm: bool,
    /// The encoder reads `x - b_dec` (SAELens's `apply_b_dec_to_input`; an
    /// autoencoder's setting, as `y` and `x` then share a width).
    pub apply_b_dec_to_input: bool,
    /// A cross-layer transcoder's block structure: the products skip its
    /// structural zeros ([`CrossLayer`]). `None`: dense weights.
    pub cross_layer: Option<CrossLayer>,
}

impl StepModel<'_> {
    /// `s`: what goes into the encoder matrix.
    pub(crate) fn encoder_input(&self, x: &Tensor<2>) -> Tensor<2> {
        if self.apply_b_dec_to_input {
            x.clone() - self.params.b_dec.clone()
        } else {
            x.clone()
        }
    }

    /// `s W_enc`.
    pub(crate) fn encode_product(&self, s: Tensor<2>) -> Tensor<2> {
        match &self.cross_layer {
            Some(c) => c.encode(s, &self.params.w_enc),
            None => s.matmul(self.params.w_enc.clone()),
        }
    }

    /// `pre = s W_enc + b_enc`.
    pub(crate) fn pre_acts(&self, s: Tensor<2>) -> Tensor<2> {
        self.encode_product(s) + self.params.b_enc.clone()
    }

    /// `f W_dec` (no bias).
    pub(crate) fn decode_product(&self, f: Tensor<2>) -> Tensor<2> {
        match &self.cross_layer {
            Some(c) => c.decode(f, &self.params.w_dec),
            None => f.matmul(self.params.w_dec.clone()),
        }
    }

    /// `g W_dec^T`: what a gradient `g` on the output is on the features.
    pub(crate) fn feature_grad(&self, g: Tensor<2>) -> Tensor<2> {
        match &self.cross_layer {
            Some(c) => c.decode_transposed(g, &self.params.w_dec),
            None => g.matmul(self.params.w_dec.clone().transpose()),
        }
    }

    /// `f^T g`: the decoder's gradient from features `f` and output gradient `g`.
    pub(crate) fn decoder_grad(&self, f: Tensor<2>, g: Tensor<2>) -> Tensor<2> {
        match &self.cross_layer {
            Some(c) => c.decoder_grad(f, g),
            None => f.transpose().matmul(g),
        }
    }

    /// `ŷ` of features `f` for input `x`.
    pub(crate) fn predict(&self, x: &Tensor<2>, f: Tensor<2>) -> Tensor<2> {
        let p = self.params;
        let y_hat = self.decode_product(f) + p.b_dec.clone();
        match &p.w_skip {
            Some(w) => y_hat + x.clone().matmul(w.clone().transpose()),
            None => y_hat,
        }
    }

    /// Each output block's decoder row norms (`[d_sae, 1]` each).
    pub(crate) fn block_norms(&self) -> Vec<Tensor<2>> {
        block_row_norms(&self.params.w_dec, &self.out_blocks)
    }

    /// The gradients of the linear parts from `g = dL/dŷ` and `dpre`, given
    /// the encoder input `s`, the input `x` (for the skip path) and the
    /// features `f`; the thresholds and gated parameters are left out.
    pub(crate) fn linear_grads(
        &self,
        s: Tensor<2>,
        x: &Tensor<2>,
        f: Tensor<2>,
        g: Tensor<2>,
        dpre: Tensor<2>,
    ) -> Params {
        let w_dec = self.decoder_grad(f, g.clone());
        self.linear_grads_with_decoder(s, x, w_dec, g, dpre)
    }

    /// [`Self::linear_grads`] with the decoder's gradient computed by the
    /// caller (a Matryoshka step, whose levels each see their own `g`);
    /// `g` is then the sum of the levels' `dL/dŷ`, what `b_dec` and the skip
    /// path see.
    pub(crate) fn linear_grads_with_decoder(
        &self,
        s: Tensor<2>,
        x: &Tensor<2>,
        w_dec: Tensor<2>,
        g: Tensor<2>,
        dpre: Tensor<2>,
    ) -> Params {
        let p = self.params;
        let (w_enc, b_enc) = match &self.cross_layer {
            Some(c) => (c.encoder_grad(s, dpre.clone()), dpre.sum_dim(0)),
            None => linear_backward(s, dpre),
        };
        let mut b_dec = g.clone().sum_dim(0);
        if self.apply_b_dec_to_input {
            b_dec = b_dec + input_bias_grad(&p.w_enc, &b_enc);
        }
        let w_skip = p.w_skip.as_ref().map(|_| g.transpose().matmul(x.clone()));
        Params {
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold: None,
            b_mag: None,
            r_mag: None,
            w_skip,
        }
    }
}

impl Sae {
    /// This dictionary as a training step sees it: one output block of
    /// `d_out`, selection on `pre`.
    pub fn step_model(&self) -> StepModel<'_> {
        StepModel {
            params: &self.params,
            architecture: &self.config.architecture,
            out_blocks: std::slice::from_ref(&self.config.d_out).into(),
            select_by_norm: false,
            apply_b_dec_to_input: self.config.apply_b_dec_to_input,
            cross_layer: None,
        }
    }
}

/// One step's loss and gradients for any architecture and shape: input `x
/// [B, d_in]`, target `y [B, d_out]` (`x` again for an SAE). TopK and
/// BatchTopK dictionaries of every shape on the CPU take the fused sparse
/// step ([`topk_host`]); everything else the dense step ([`dense_step`]).
pub fn step(model: &StepModel<'_>, x: Tensor<2>, y: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    let selection = match model.architecture {
        Architecture::TopK { k } => Some(topk::Selection::PerRow(*k)),
        Architecture::BatchTopK { k } => Some(topk::Selection::Batch(*k)),
        _ => None,
    };
    match selection {
        Some(selection) if crate::device::is_host(&x.device()) => {
            topk_host::step(model, x, y, inputs, selection)
        }
        _ => dense_step(model, x, y, inputs),
    }
}

/// One step's loss and gradients written as dense tensor algebra, on any
/// backend (the reference the fused host steps are tested against).
pub fn dense_step(
    model: &StepModel<'_>,
    x: Tensor<2>,
    y: Tensor<2>,
    inputs: &StepInputs,
) -> StepOutput {
    match model.architecture {
        Architecture::Standard => standard::step(model, x, y, inputs),
        Architecture::Gated => gated::step(model, x, y, inputs),
        Architecture::TopK { k } => topk::step(model, x, y, inputs, topk::Selection::PerRow(*k)),
        Architecture::BatchTopK { k } => {
            topk::step(model, x, y, inputs, topk::Selection::Batch(*k))
        }
        Architecture::JumpRelu { bandwidth } => jumprelu::step(model, x, y, inputs, *bandwidth),
    }
}

// ---- pieces shared by the architectures ----

/// Reconstruction loss and its gradient with respect to `ŷ`:
/// `(mean_b ||e_b||^2, 2 e / B)` with `e = ŷ - y`.
pub(crate) fn reconstruction_grad(y_hat: Tensor<2>, y: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
    let b = y.dims()[0] as f32;
    let e = y_hat - y;
    let loss = e.clone().square().sum().div_scalar(b);
    (loss, e.mul_scalar(2.0 / b))
}

/// The reconstructions of a Matryoshka dictionary's nested levels, their
/// losses and gradients ([`nested_reconstruction`]).
pub(crate) struct Nested {
    /// The whole dictionary's reconstruction.
    pub y_hat: Tensor<2>,
    /// The whole dictionary's reconstruction loss.
    pub mse: Tensor<1>,
    /// The sum of the inner levels' reconstruction losses.
    pub inner: Tensor<1>,
    /// `sum_l dL_l/dŷ_l`: what `b_dec` and the skip path see.
    pub g_sum: Tensor<2>,
    /// `dL/df`, `[B, d_sae]`: feature `j` of level group `m` sees
    /// `G_m W_dec_j` with `G_m = sum_{l >= m} dL_l/dŷ_l`.
    pub df: Tensor<2>,
    /// `dL/dW_dec` of the reconstruction terms: `f_m^T G_m` for each group.
    pub dw_dec: Tensor<2>,
}

/// The nested reconstructions `ŷ_l = b_dec (+ x W_skip^T) + f[:, ..w_l]
/// W_dec[..w_l]` for the ascending `levels` `w_l` (the last one `d_sae`),
/// each scored against `y` with [`reconstruction_grad`], and the gradients
/// of their sum.
pub(crate) fn nested_reconstruction(
    model: &StepModel<'_>,
    x: &Tensor<2>,
    f: &Tensor<2>,
    y: &Tensor<2>,
    levels: &[usize],
) -> Nested {
    let p = model.params;
    let [batch, d_out] = y.dims();
    let mut y_hat: Tensor<2> = Tensor::zeros([batch, d_out], &y.device()) + p.b_dec.clone();
    if let Some(w) = &p.w_skip {
        y_hat = y_hat + x.clone().matmul(w.clone().transpose());
    }
    let groups: Vec<(usize, usize)> = levels
        .iter()
        .scan(0, |start, &end| {
            let group = (*start, end - *start);
            *start = end;
            Some(group)
        })
        .collect();
    let mut gs = Vec::with_capacity(groups.len());
    let mut inner = zero_scalar(y);
    let mut mse = zero_scalar(y);
    for (i, &(start, width)) in groups.iter().enumerate() {
        if width > 0 {
            y_hat = y_hat
                + f.clone()
                    .narrow(1, start, width)
                    .matmul(p.w_dec.clone().narrow(0, start, width));
        }
        let (loss, g) = reconstruction_grad(y_hat.clone(), y.clone());
        if i + 1 < groups.len() {
            inner = inner + loss;
        } else {
            mse = loss;
        }
        gs.push(g);
    }
    let (mut df, mut dw_dec) = (Vec::new(), Vec::new());
    let mut suffix: Option<Tensor<2>> = None;
    for (&(start, width), g) in groups.iter().zip(gs).rev() {
        let big_g = match suffix {
            Some(s) => s + g,
            None => g,
        };
        if width > 0 {
            let w = p.w_dec.clone().narrow(0, start, width);
            df.push(big_g.clone().matmul(w.transpose()));
            dw_dec.push(
                f.clone()
                    .narrow(1, start, width)
                    .transpose()
                    .matmul(big_g.clone()),
            );
        }
        suffix = Some(big_g);
    }
    df.reverse();
    dw_dec.reverse();
    Nested {
        y_hat,
        mse,
        inner,
        g_sum: suffix.expect("the levels are not empty: the only caller (topk::step) passes a Matryoshka dictionary's levels, the last one d_sae"),
        df: Tensor::cat(df, 1),
        dw_dec: Tensor::cat(dw_dec, 0),
    }
}

/// Gradients of `pre = s W + b` given `dpre`: `(dW, db)`.
pub(crate) fn linear_backward(s: Tensor<2>, dpre: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let db = dpre.clone().sum_dim(0);
    (s.transpose().matmul(dpre), db)
}

/// The part of `dL/db_dec` that flows through `s = x - b_dec`:
/// `-(sum_b dpre) W^T`, a vector-matrix product rather than a `[B, d_in]`
/// matrix product, since only the batch sum is needed.
pub(crate) fn input_bias_grad(w: &Tensor<2>, db_pre: &Tensor<2>) -> Tensor<2> {
    db_pre.clone().matmul(w.clone().transpose()).neg()
}

/// The columns of block `i` of a `[rows, sum(widths)]` tensor.
pub fn column_block(t: Tensor<2>, widths: &[usize], i: usize) -> Tensor<2> {
    let start: usize = widths[..i].iter().sum();
    t.narrow(1, start, widths[i])
}

/// Per-block L2 norms of every row of `w` (`[rows, sum(widths)]`): one
/// `[rows, 1]` tensor per block.
pub fn block_row_norms(w: &Tensor<2>, widths: &[usize]) -> Vec<Tensor<2>> {
    if widths.len() == 1 {
        return vec![row_norms(w.clone())];
    }
    (0..widths.len())
        .map(|i| row_norms(column_block(w.clone(), widths, i)))
        .collect()
}

/// `sum_i ||w_j^(i)||` for every row `j` of `w`: a feature's decoder
/// weight (for one block, the row norm), as `[rows, 1]`.
pub fn norm_sum(per_block: &[Tensor<2>]) -> Tensor<2> {
    per_block
        .iter()
        .cloned()
        .reduce(|a, b| a + b)
        .expect("a dictionary has at least one output block")
}

/// Adds the Lp penalty's gradient through the decoder weights `s_j = sum_i
/// n_ij` to `dW_dec`: `dS/dn_ij = dS/ds_j`, so each block's rows get their
/// own `W_dec^(i)_j / n_ij` factor.
pub(crate) fn add_block_norm_grad(
    dw_dec: Tensor<2>,
    model: &StepModel<'_>,
    block_norms: &[Tensor<2>],
    d_norms: Tensor<2>,
    coefficient: f64,
) -> Tensor<2> {
    let w_dec = &model.params.w_dec;
    if let [norms] = block_norms {
        return add_norm_grad(
            dw_dec,
            w_dec,
            &norms.clone().transpose(),
            d_norms,
            coefficient,
        );
    }
    let widths: &[usize] = &model.out_blocks;
    let parts = block_norms
        .iter()
        .enumerate()
        .map(|(i, n)| {
            add_norm_grad(
                column_block(dw_dec.clone(), widths, i),
                &column_block(w_dec.clone(), widths, i),
                &n.clone().transpose(),
                d_norms.clone(),
                coefficient,
            )
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// A `[1, 1]` tensor of zero on `like`'s device, for absent loss terms.
pub(crate) fn zero_scalar(like: &Tensor<2>) -> Tensor<1> {
    Tensor::zeros([1], &like.device())
}

#[cfg(all(test, feature = "flex"))]
mod grad_check;
