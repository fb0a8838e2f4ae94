//! One training step of a transcoder or crosscoder: loss and hand-written
//! gradients, returned in kibitzer-sae's [`StepOutput`] so that the loss
//! terms, the logging and the optimiser bookkeeping are the SAE family's.
//!
//! The step generalises kibitzer-sae's `arch` steps in three ways: the
//! target `y` is a tensor of its own (a transcoder predicts another site;
//! for a crosscoder `y = x`), the decoder's output is cut into blocks whose
//! norms are summed into the feature weight `s_j = sum_i ||W_dec^(i)_j||`
//! (one block: the SAE's `||W_dec_j||`), and a skip transcoder's
//! `ŷ += x W_skip^T` gets its gradient. Notation: `x [B, d_in]`,
//! `y [B, d_out]`, `pre = x W_enc + b_enc`, `f` the features,
//! `ŷ = f W_dec + b_dec (+ x W_skip^T)`, `g = dL/dŷ = 2 (ŷ - y) / B`.
//!
//! | architecture | features | loss beyond `mean_b ||ŷ - y||^2` |
//! |---|---|---|
//! | `Standard` (L1 / Lp) | `relu(pre)` | `lambda mean_b sum_j (f_bj s_j)^p` |
//! | `JumpRelu` | `pre H(pre - theta) H(pre)` | `lambda mean_b ||f_b||_0`, straight-through gradients (rectangle kernel) |
//! | `TopK` | `relu(pre)` at the `k` largest `v_bj` of each row | AuxK on dead latents |
//! | `BatchTopK` | `relu(pre)` at the `k B` largest `v_bj` of the batch | AuxK on dead latents |
//!
//! The selection value is `v = pre` for a unit-norm decoder (transcoders,
//! as kibitzer-sae's TopK SAEs) and `v = relu(pre) s` when
//! [`StepModel::select_by_norm`] (crosscoders, whose decoders are free).
//! AuxK follows Gao et al. 2024 on the residual `e = y - ŷ` (no gradient):
//! `alpha mean_b ||e_hat_b - e_b||^2 / mean_b ||e_b - mean(e)||^2` with
//! `e_hat = a W_dec`, `a` the `k_aux` largest selection values among dead
//! latents.

use crate::blocks::{block_row_norms, column_block, norm_sum};
use crate::step_host::Selection;
use burn::tensor::Tensor;
use kibitzer_sae::arch::sparsity::{add_norm_grad, lp_penalty};
use kibitzer_sae::arch::{LossTensors, StepInputs, StepOutput};
use kibitzer_sae::ops::{batch_topk_mask, row_topk_mask};
use kibitzer_sae::{Architecture, Params};

/// What the step needs to know about the dictionary.
#[derive(Clone, Copy, Debug)]
pub struct StepModel<'a> {
    /// The weights (a `w_skip` adds the skip path).
    pub params: &'a Params,
    /// Standard, JumpReLU, TopK or BatchTopK.
    pub architecture: &'a Architecture,
    /// Widths of the output blocks (`[d_out]` for a transcoder).
    pub out_blocks: &'a [usize],
    /// TopK/BatchTopK select on `relu(pre) s` rather than `pre`.
    pub select_by_norm: bool,
}

/// Reconstruction loss `mean_b ||ŷ_b - y_b||^2` and `dL/dŷ`.
fn reconstruction(y_hat: Tensor<2>, y: Tensor<2>) -> (Tensor<1>, Tensor<2>) {
    let b = y.dims()[0] as f32;
    let e = y_hat - y;
    (
        e.clone().square().sum().div_scalar(b),
        e.mul_scalar(2.0 / b),
    )
}

/// `ŷ` of features `f` for input `x`.
fn predict(p: &Params, x: &Tensor<2>, f: Tensor<2>) -> Tensor<2> {
    let y_hat = f.matmul(p.w_dec.clone()) + p.b_dec.clone();
    match &p.w_skip {
        Some(w) => y_hat + x.clone().matmul(w.clone().transpose()),
        None => y_hat,
    }
}

/// Gradients of the linear parts given `g = dL/dŷ` and `dpre`.
struct Linear {
    w_enc: Tensor<2>,
    b_enc: Tensor<2>,
    w_dec: Tensor<2>,
    b_dec: Tensor<2>,
    w_skip: Option<Tensor<2>>,
}

fn linear_grads(p: &Params, x: &Tensor<2>, f: Tensor<2>, g: &Tensor<2>, dpre: Tensor<2>) -> Linear {
    Linear {
        w_enc: x.clone().transpose().matmul(dpre.clone()),
        b_enc: dpre.sum_dim(0),
        w_dec: f.transpose().matmul(g.clone()),
        b_dec: g.clone().sum_dim(0),
        w_skip: p
            .w_skip
            .as_ref()
            .map(|_| g.clone().transpose().matmul(x.clone())),
    }
}

fn grads(l: Linear, threshold: Option<Tensor<2>>) -> Params {
    Params {
        w_enc: l.w_enc,
        b_enc: l.b_enc,
        w_dec: l.w_dec,
        b_dec: l.b_dec,
        threshold,
        b_mag: None,
        r_mag: None,
        w_skip: l.w_skip,
    }
}

/// Loss and gradients of one batch: input `x [B, d_in]`, target `y [B, d_out]`.
pub fn step(model: &StepModel<'_>, x: Tensor<2>, y: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    match model.architecture {
        Architecture::TopK { k } => topk_step(model, x, y, inputs, Selection::PerRow(*k)),
        Architecture::BatchTopK { k } => topk_step(model, x, y, inputs, Selection::Batch(*k)),
        Architecture::JumpRelu { bandwidth } => jumprelu_step(model, x, y, inputs, *bandwidth),
        // Standard; gated dictionaries are refused when they are built.
        _ => lp_step(model, x, y, inputs),
    }
}

/// ReLU features with the decoder-norm-weighted Lp penalty.
fn lp_step(model: &StepModel<'_>, x: Tensor<2>, y: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    let p = model.params;
    let pre = x.clone().matmul(p.w_enc.clone()) + p.b_enc.clone();
    let on = pre.clone().greater_elem(0.0).float();
    let f = pre * on.clone();
    let y_hat = predict(p, &x, f.clone());
    let (mse, g) = reconstruction(y_hat.clone(), y);

    let block_norms = block_row_norms(&p.w_dec, model.out_blocks);
    let weights = norm_sum(&block_norms).transpose();
    let penalty = lp_penalty(f.clone(), weights, inputs.p);
    let lambda = inputs.sparsity_coefficient;
    let df = g.clone().matmul(p.w_dec.clone().transpose());
    let dpre = (df + penalty.d_features.mul_scalar(lambda as f32)) * on;
    let mut l = linear_grads(p, &x, f.clone(), &g, dpre);
    // s_j = sum_i n_ij, so dS/dn_ij = dS/ds_j: each block's rows get their
    // own `W_dec^(i)_j / n_ij` factor.
    l.w_dec = if model.out_blocks.len() == 1 {
        add_norm_grad(
            l.w_dec,
            &p.w_dec,
            &block_norms[0].clone().transpose(),
            penalty.d_norms,
            lambda,
        )
    } else {
        let parts = block_norms
            .iter()
            .enumerate()
            .map(|(i, n)| {
                add_norm_grad(
                    column_block(l.w_dec.clone(), model.out_blocks, i),
                    &column_block(p.w_dec.clone(), model.out_blocks, i),
                    &n.clone().transpose(),
                    penalty.d_norms.clone(),
                    lambda,
                )
            })
            .collect();
        Tensor::cat(parts, 1)
    };
    StepOutput {
        grads: grads(l, None),
        loss: LossTensors {
            mse,
            sparsity: penalty.value,
            aux: Tensor::zeros([1], &f.device()),
            coefficient: lambda,
        },
        features: f,
        reconstruction: y_hat,
        min_kept_activation: None,
    }
}

/// JumpReLU with the paper's straight-through estimators (see kibitzer-sae's
/// `arch::jumprelu` for the formulas; only the target differs).
fn jumprelu_step(
    model: &StepModel<'_>,
    x: Tensor<2>,
    y: Tensor<2>,
    inputs: &StepInputs,
    bandwidth: f64,
) -> StepOutput {
    let p = model.params;
    let b = x.dims()[0] as f32;
    let d_sae = p.b_enc.dims()[1];
    let theta = p
        .threshold
        .clone()
        .unwrap_or_else(|| Tensor::zeros([1, d_sae], &x.device()));
    let pre = x.clone().matmul(p.w_enc.clone()) + p.b_enc.clone();
    let on = pre
        .clone()
        .greater(theta.clone().expand(pre.dims()))
        .float()
        * pre.clone().greater_elem(0.0).float();
    let f = pre.clone() * on.clone();
    let y_hat = predict(p, &x, f.clone());
    let (mse, g) = reconstruction(y_hat.clone(), y);
    let df = g.clone().matmul(p.w_dec.clone().transpose());
    let eps = bandwidth as f32;
    let kernel = (pre - theta.clone()).abs().lower_elem(eps / 2.0).float();
    let lambda = inputs.sparsity_coefficient as f32;
    // Through f: -(theta/eps) K; through the L0 term: -(lambda / (B eps)) K.
    let dtheta = ((df.clone() * theta).div_scalar(-eps) * kernel.clone()).sum_dim(0)
        + kernel.sum_dim(0).mul_scalar(-lambda / (b * eps));
    let l = linear_grads(p, &x, f.clone(), &g, df * on.clone());
    StepOutput {
        grads: grads(l, Some(dtheta)),
        loss: LossTensors {
            mse,
            sparsity: on.sum().div_scalar(b),
            aux: Tensor::zeros([1], &f.device()),
            coefficient: inputs.sparsity_coefficient,
        },
        features: f,
        reconstruction: y_hat,
        min_kept_activation: None,
    }
}

fn topk_step(
    model: &StepModel<'_>,
    x: Tensor<2>,
    y: Tensor<2>,
    inputs: &StepInputs,
    selection: Selection,
) -> StepOutput {
    let p = model.params;
    let batch = x.dims()[0];
    let b = batch as f32;
    let pre = x.clone().matmul(p.w_enc.clone()) + p.b_enc.clone();
    let positive = pre.clone().greater_elem(0.0).float();
    let relu = pre.clone() * positive.clone();
    let value = if model.select_by_norm {
        relu.clone() * norm_sum(&block_row_norms(&p.w_dec, model.out_blocks)).transpose()
    } else {
        pre
    };
    let keep = match selection {
        Selection::PerRow(k) => row_topk_mask(value.clone(), k) * positive.clone(),
        Selection::Batch(k) => batch_topk_mask(value.clone() * positive.clone(), k * batch),
    };
    let f = relu.clone() * keep.clone();
    let y_hat = predict(p, &x, f.clone());
    let (mse, g) = reconstruction(y_hat.clone(), y.clone());
    let df = g.clone().matmul(p.w_dec.clone().transpose());
    let mut dpre = df * keep.clone();
    let mut aux_dw_dec = None;

    let mut aux = Tensor::zeros([1], &x.device());
    if let (Some(dead), true) = (&inputs.dead_mask, inputs.n_dead > 0) {
        let e = y - y_hat.clone();
        let var = (e.clone() - e.clone().mean_dim(0))
            .square()
            .sum()
            .div_scalar(b);
        // Live latents are pushed far down so that top-k picks dead ones.
        let dead_value = value.clone() + (dead.clone() - 1.0).mul_scalar(1e30);
        let k_aux = inputs.k_aux.min(inputs.n_dead);
        let aux_keep = row_topk_mask(dead_value, k_aux) * dead.clone() * positive;
        let a = relu * aux_keep.clone();
        let diff = a.clone().matmul(p.w_dec.clone()) - e;
        let denom = var.clamp_min(1e-12);
        let alpha = inputs.auxk_alpha as f32;
        aux = diff
            .clone()
            .square()
            .sum()
            .div_scalar(b)
            .div(denom.clone())
            .mul_scalar(alpha);
        let h = diff.div(denom.reshape([1, 1])).mul_scalar(2.0 * alpha / b);
        aux_dw_dec = Some(a.transpose().matmul(h.clone()));
        dpre = dpre + h.matmul(p.w_dec.clone().transpose()) * aux_keep;
    }

    let mut l = linear_grads(p, &x, f.clone(), &g, dpre);
    if let Some(extra) = aux_dw_dec {
        l.w_dec = l.w_dec + extra;
    }
    let min_kept_activation = match selection {
        // The BatchTopK inference threshold is on the selection value.
        Selection::Batch(_) => {
            Some((value * keep.clone() + (keep.clone().neg() + 1.0).mul_scalar(1e30)).min())
        }
        Selection::PerRow(_) => None,
    };
    StepOutput {
        grads: grads(l, None),
        loss: LossTensors {
            mse,
            sparsity: keep.sum().div_scalar(b),
            aux,
            coefficient: 0.0,
        },
        features: f,
        reconstruction: y_hat,
        min_kept_activation,
    }
}
