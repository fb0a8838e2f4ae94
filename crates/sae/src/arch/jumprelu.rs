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

use super::{
    LossTensors, StepInputs, StepOutput, decoder_backward, input_bias_grad, linear_backward,
    reconstruction_grad,
};
use crate::sae::{Params, Sae};
use burn::tensor::Tensor;

/// Loss and gradients of one batch.
pub fn step(sae: &Sae, x: Tensor<2>, inputs: &StepInputs, bandwidth: f64) -> StepOutput {
    let p = &sae.params;
    let b = x.dims()[0] as f32;
    let theta = p
        .threshold
        .clone()
        .unwrap_or_else(|| Tensor::zeros([1, sae.config.d_sae], &sae.device()));
    let s = sae.encoder_input(x.clone());
    let pre = sae.pre_acts(s.clone());
    let on = pre
        .clone()
        .greater(theta.clone().expand(pre.dims()))
        .float()
        * pre.clone().greater_elem(0.0).float();
    let f = pre.clone() * on.clone();
    let x_hat = f.clone().matmul(p.w_dec.clone()) + p.b_dec.clone();

    let (mse, g) = reconstruction_grad(x_hat.clone(), x);
    let (dw_dec, mut db_dec, df) = decoder_backward(p, f.clone(), g);
    let eps = bandwidth as f32;
    let kernel = (pre - theta.clone()).abs().lower_elem(eps / 2.0).float();
    let lambda = inputs.sparsity_coefficient as f32;
    // Through f: -(theta/eps) K; through the L0 term: -(lambda / (B eps)) K.
    let dtheta = ((df.clone() * theta.clone()).div_scalar(-eps) * kernel.clone()).sum_dim(0)
        + kernel.sum_dim(0).mul_scalar(-lambda / (b * eps));
    let dpre = df * on.clone();
    let (dw_enc, db_enc) = linear_backward(s, dpre);
    if sae.config.apply_b_dec_to_input {
        db_dec = db_dec + input_bias_grad(&p.w_enc, &db_enc);
    }
    StepOutput {
        grads: Params {
            w_enc: dw_enc,
            b_enc: db_enc,
            w_dec: dw_dec,
            b_dec: db_dec,
            threshold: Some(dtheta),
            b_mag: None,
            r_mag: None,
            w_skip: None,
        },
        loss: LossTensors {
            mse,
            sparsity: on.sum().div_scalar(b),
            aux: Tensor::zeros([1], &f.device()),
            coefficient: inputs.sparsity_coefficient,
        },
        features: f,
        reconstruction: x_hat,
        min_kept_activation: None,
    }
}
