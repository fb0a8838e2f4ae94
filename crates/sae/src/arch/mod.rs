//! The SAE architectures: one small module each over shared pieces.
//!
//! Every architecture computes its loss and its gradients by hand (no autodiff
//! graph): SAEs are shallow, the gradients are a handful of matrix products,
//! and writing them out lets the straight-through estimators, the frozen
//! decoder of the gated auxiliary loss and the sparse TopK structure be exact
//! and cheap. The tests compare every architecture's gradients with burn's
//! autodiff on the same loss.
//!
//! Notation used in the modules: `x` the (normalised) batch `[B, d_in]`, `s`
//! the encoder input (`x - b_dec` when `apply_b_dec_to_input`), `pre = s W_enc
//! + b_enc`, `f` the features, `x_hat = f W_dec + b_dec`. The reconstruction
//! loss is `mean_b ||x_hat_b - x_b||^2` (summed over the width, averaged over
//! the batch, as dictionary_learning and Anthropic's April update do).

pub mod family;
pub mod gated;
pub mod jumprelu;
pub mod sparsity;
pub mod standard;
pub mod topk;
pub mod topk_host;

pub use family::{Family, UnknownFamily};

use crate::sae::{Params, Sae};
use burn::tensor::Tensor;

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
    /// Auxiliary term (gated aux reconstruction, AuxK), weighted.
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
    /// Weighted auxiliary term.
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

/// One step's loss and gradients for any architecture.
pub fn step(sae: &Sae, x: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    match &sae.config.architecture {
        Architecture::Standard => standard::step(sae, x, inputs),
        Architecture::Gated => gated::step(sae, x, inputs),
        Architecture::TopK { k } => topk_step(sae, x, inputs, topk::Selection::PerRow(*k)),
        Architecture::BatchTopK { k } => topk_step(sae, x, inputs, topk::Selection::Batch(*k)),
        Architecture::JumpRelu { bandwidth } => jumprelu::step(sae, x, inputs, *bandwidth),
    }
}

/// TopK/BatchTopK: the fused sparse step on the host, the dense one elsewhere.
fn topk_step(
    sae: &Sae,
    x: Tensor<2>,
    inputs: &StepInputs,
    selection: topk::Selection,
) -> StepOutput {
    if crate::device::is_host(&sae.device()) {
        topk_host::step(sae, x, inputs, selection)
    } else {
        topk::step(sae, x, inputs, selection)
    }
}

// ---- pieces shared by the architectures ----

/// Reconstruction loss and its gradient with respect to `x_hat`:
/// `(mean_b ||e_b||^2, 2 e / B)` with `e = x_hat - x`.
pub(crate) fn reconstruction_grad(x_hat: Tensor<2>, x: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
    let b = x.dims()[0] as f32;
    let e = x_hat - x;
    let loss = e.clone().square().sum().div_scalar(b);
    (loss, e.mul_scalar(2.0 / b))
}

/// Gradients of `x_hat = f W_dec + b_dec` given `g = dL/dx_hat`:
/// `(dW_dec, db_dec, df)`.
pub(crate) fn decoder_backward(
    params: &Params,
    f: Tensor<2>,
    g: Tensor<2>,
) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let df = g.clone().matmul(params.w_dec.clone().transpose());
    let dw_dec = f.transpose().matmul(g.clone());
    let db_dec = g.sum_dim(0);
    (dw_dec, db_dec, df)
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

/// A `[1, 1]` tensor of zero on `like`'s device, for absent loss terms.
pub(crate) fn zero_scalar(like: &Tensor<2>) -> Tensor<1> {
    Tensor::zeros([1], &like.device())
}

#[cfg(all(test, feature = "flex"))]
mod grad_check;
