//! JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping ahead").
//!
//! `f = relu(pre) * H(pre - theta)` with a learnt threshold per feature, and
//! the loss `||x - x_hat||^2 + lambda * ||f||_0`. The step function has no
//! useful derivative, so the paper's straight-through estimators are used
//! with the rectangle kernel `K(u) = 1[|u| < 1/2]` of bandwidth `eps`:
//!
//! - `d f_j / d theta_j = -(theta_j / eps) K((pre_j - theta_j) / eps)`,
//! - `d H(pre_j - theta_j) / d theta_j = -(1 / eps) K((pre_j - theta_j) / eps)`,
//! - `d f_j / d pre_j = H(pre_j - theta_j)` and the L0 term gives `pre` no gradient.
//!
//! Defaults (paper and dictionary_learning): `theta` starts at 0.001,
//! bandwidth 0.001, `b_dec` is not subtracted from the input, the L0
//! coefficient is warmed up linearly. Decoder rows are kept at unit norm.
//!
//! With a target L0 `T` ([`L0Penalty::target`], dictionary_learning's
//! `target_l0`) the sparsity term is `(L0 / T - 1)^2`, where `L0` is the
//! batch mean of `||f||_0`; its threshold gradient is the plain L0
//! term's times `2 (L0 / T - 1) / T`, so it changes sign when the batch
//! fires fewer than `T` features per row. With
//! [`L0Penalty::to_encoder`] the L0 term's straight-through gradient also
//! reaches `pre` (`d H(pre - theta) / d pre = (1 / eps) K`), as in
//! Anthropic's January 2025 update, so the encoder itself is pulled
//! towards the sparsity the penalty asks for.

use super::{L0Penalty, LossTensors, StepInputs, StepModel, StepOutput, reconstruction_grad};
use burn::tensor::Tensor;

/// Loss and gradients of one batch: input `x`, target `y`.
pub fn step(
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
    let s = model.encoder_input(&x);
    let pre = model.pre_acts(s.clone());
    // On where pre > theta and pre > 0, i.e. pre > max(theta, 0): one
    // row-broadcast subtraction and one comparison.
    let on = (pre.clone() - theta.clone().clamp_min(0.0))
        .greater_elem(0.0)
        .float();
    let f = pre.clone() * on.clone();
    let y_hat = model.predict(&x, f.clone());

    let (mse, g) = reconstruction_grad(y_hat.clone(), y);
    let df = model.feature_grad(g.clone());
    let eps = bandwidth as f32;
    let kernel = (pre - theta.clone()).abs().lower_elem(eps / 2.0).float();
    let lambda = inputs.sparsity_coefficient as f32;
    let l0 = on.clone().sum().div_scalar(b);
    // d(sparsity term)/d(L0) and the sparsity term itself.
    let L0Penalty { target, to_encoder } = inputs.l0;
    let (dsparsity, sparsity) = match target {
        None => (None, l0),
        Some(target) => {
            let target = target as f32;
            let excess = l0.div_scalar(target).sub_scalar(1.0);
            let slope = excess.clone().mul_scalar(2.0 / target);
            (Some(slope), excess.square())
        }
    };
    // The L0 term's derivative with respect to each H(pre - theta), times
    // the kernel: (lambda / (B eps)) K, times dsparsity/dL0 with a target.
    // It is d/dpre; d/dtheta is its negative.
    // Its column sums are what theta sees; the [B, d_sae] term itself is
    // made only when it reaches the encoder.
    let scale = lambda / (b * eps);
    let slope = dsparsity.map(|s| s.reshape([1, 1]));
    let mut dl0_rows = kernel.clone().sum_dim(0).mul_scalar(scale);
    if let Some(slope) = &slope {
        dl0_rows = dl0_rows * slope.clone();
    }
    // Through f: -(theta/eps) K.
    let dtheta = ((df.clone() * theta).div_scalar(-eps) * kernel.clone()).sum_dim(0) - dl0_rows;
    let mut dpre = df * on.clone();
    if to_encoder {
        let mut dl0 = kernel.mul_scalar(scale);
        if let Some(slope) = slope {
            dl0 = dl0 * slope;
        }
        dpre = dpre + dl0;
    }
    let mut grads = model.linear_grads(s, &x, f.clone(), g, dpre);
    grads.threshold = Some(dtheta);
    StepOutput {
        grads,
        loss: LossTensors {
            mse,
            sparsity,
            aux: Tensor::zeros([1], &f.device()),
            coefficient: inputs.sparsity_coefficient,
        },
        features: f,
        reconstruction: y_hat,
        min_kept_activation: None,
    }
}
