//! Standard ReLU SAE with an Lp penalty (L1 by default; p-annealing when the
//! trainer lowers `p`).
//!
//! Defaults (Anthropic's April 2024 update, as dictionary_learning's
//! `StandardTrainerAprilUpdate` and SAELens's standard SAE): unconstrained
//! decoder initialised with rows of norm 0.1, encoder = decoder transpose,
//! penalty weighted by decoder row norms, `b_dec` initialised to the geometric
//! median of a sample, sparsity coefficient warmed up linearly, gradients
//! clipped to norm 1.

use super::sparsity::lp_penalty;
use super::{LossTensors, StepInputs, StepModel, StepOutput, add_block_norm_grad, norm_sum};
use super::{reconstruction_grad, zero_scalar};
use burn::tensor::Tensor;

/// Loss and gradients of one batch: input `x`, target `y`.
pub fn step(model: &StepModel<'_>, x: Tensor<2>, y: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    let s = model.encoder_input(&x);
    let pre = model.pre_acts(s.clone());
    let on = pre.clone().greater_elem(0.0).float();
    let f = pre * on.clone();
    let y_hat = model.predict(&x, f.clone());

    let (mse, g) = reconstruction_grad(y_hat.clone(), y);
    let df = model.feature_grad(g.clone());
    let block_norms = model.block_norms();
    let penalty = lp_penalty(f.clone(), norm_sum(&block_norms).transpose(), inputs.p);
    let lambda = inputs.sparsity_coefficient;
    let dpre = (df + penalty.d_features.mul_scalar(lambda as f32)) * on;
    let mut grads = model.linear_grads(s, &x, f.clone(), g, dpre);
    grads.w_dec = add_block_norm_grad(grads.w_dec, model, &block_norms, penalty.d_norms, lambda);
    StepOutput {
        grads,
        loss: LossTensors {
            mse,
            sparsity: penalty.value,
            aux: zero_scalar(&f),
            coefficient: lambda,
        },
        features: f,
        reconstruction: y_hat,
        min_kept_activation: None,
    }
}
