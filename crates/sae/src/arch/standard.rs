//! Standard ReLU SAE with an Lp penalty (L1 by default; p-annealing when the
//! trainer lowers `p`).
//!
//! Defaults (Anthropic's April 2024 update, as dictionary_learning's
//! `StandardTrainerAprilUpdate` and SAELens's standard SAE): unconstrained
//! decoder initialised with rows of norm 0.1, encoder = decoder transpose,
//! penalty weighted by decoder row norms, `b_dec` initialised to the geometric
//! median of a sample, sparsity coefficient warmed up linearly, gradients
//! clipped to norm 1.

use super::sparsity::{add_norm_grad, lp_penalty};
use super::{
    LossTensors, StepInputs, StepOutput, decoder_backward, input_bias_grad, linear_backward,
    reconstruction_grad, zero_scalar,
};
use crate::ops::row_norms;
use crate::sae::{Params, Sae};
use burn::tensor::Tensor;

/// Loss and gradients of one batch.
pub fn step(sae: &Sae, x: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    let p = &sae.params;
    let s = sae.encoder_input(x.clone());
    let pre = sae.pre_acts(s.clone());
    let on = pre.clone().greater_elem(0.0).float();
    let f = pre * on.clone();
    let x_hat = f.clone().matmul(p.w_dec.clone()) + p.b_dec.clone();

    let (mse, g) = reconstruction_grad(x_hat.clone(), x);
    let (dw_dec, mut db_dec, df) = decoder_backward(p, f.clone(), g);
    let norms = row_norms(p.w_dec.clone()).transpose();
    let penalty = lp_penalty(f.clone(), norms.clone(), inputs.p);
    let lambda = inputs.sparsity_coefficient;
    let dpre = (df + penalty.d_features.mul_scalar(lambda as f32)) * on;
    let (dw_enc, db_enc) = linear_backward(s, dpre);
    if sae.config.apply_b_dec_to_input {
        db_dec = db_dec + input_bias_grad(&p.w_enc, &db_enc);
    }
    let dw_dec = add_norm_grad(dw_dec, &p.w_dec, &norms, penalty.d_norms, lambda);
    StepOutput {
        grads: Params {
            w_enc: dw_enc,
            b_enc: db_enc,
            w_dec: dw_dec,
            b_dec: db_dec,
            threshold: None,
            b_mag: None,
            r_mag: None,
            w_skip: None,
        },
        loss: LossTensors {
            mse,
            sparsity: penalty.value,
            aux: zero_scalar(&f),
            coefficient: lambda,
        },
        features: f,
        reconstruction: x_hat,
        min_kept_activation: None,
    }
}
