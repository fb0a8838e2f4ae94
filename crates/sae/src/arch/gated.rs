//! Gated SAE (Rajamanoharan et al. 2024).
//!
//! `gate = s W_enc + b_gate`, `mag = s (W_enc * exp(r_mag)) + b_mag`,
//! `f = 1[gate > 0] * relu(mag)`. Loss: reconstruction + lambda * Lp(relu(gate))
//! + the auxiliary reconstruction `||x - (relu(gate) W_dec^frozen +
//! b_dec^frozen)||^2`, which gives the gate path a gradient (the Heaviside
//! step has none) without letting it move the decoder. Decoder rows are kept
//! at unit norm, as in the paper; p-annealing applies to the gate penalty.
//! Defaults: r_mag and both biases start at zero.

use super::sparsity::{add_norm_grad, lp_penalty};
use super::{
    LossTensors, StepInputs, StepOutput, decoder_backward, input_bias_grad, linear_backward,
    reconstruction_grad,
};
use crate::ops::row_norms;
use crate::sae::{Params, Sae};
use burn::tensor::Tensor;

/// Loss and gradients of one batch.
pub fn step(sae: &Sae, x: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    let p = &sae.params;
    let d_sae = sae.config.d_sae;
    let device = sae.device();
    let b_mag = p
        .b_mag
        .clone()
        .unwrap_or_else(|| Tensor::zeros([1, d_sae], &device));
    let r_mag = p
        .r_mag
        .clone()
        .unwrap_or_else(|| Tensor::zeros([1, d_sae], &device));
    let scale = r_mag.exp();
    let w_mag = p.w_enc.clone() * scale.clone();

    let s = sae.encoder_input(x.clone());
    let gate = sae.pre_acts(s.clone());
    let gate_on = gate.clone().greater_elem(0.0).float();
    let mag = s.clone().matmul(w_mag.clone()) + b_mag;
    let mag_on = mag.clone().greater_elem(0.0).float();
    let f = gate_on.clone() * mag * mag_on.clone();
    let x_hat = f.clone().matmul(p.w_dec.clone()) + p.b_dec.clone();

    // Main reconstruction through the magnitude path.
    let (mse, g) = reconstruction_grad(x_hat.clone(), x.clone());
    let (mut dw_dec, mut db_dec, df) = decoder_backward(p, f.clone(), g);
    let dmag = df * gate_on.clone() * mag_on;

    // Sparsity and auxiliary reconstruction through the gate path; the
    // decoder is frozen here, so only the gate receives these gradients.
    let gate_act = gate * gate_on.clone();
    let norms = row_norms(p.w_dec.clone()).transpose();
    let penalty = lp_penalty(gate_act.clone(), norms.clone(), inputs.p);
    let x_aux = gate_act.matmul(p.w_dec.clone()) + p.b_dec.clone();
    let (aux, g_aux) = reconstruction_grad(x_aux, x);
    let lambda = inputs.sparsity_coefficient as f32;
    let dgate = (g_aux.matmul(p.w_dec.clone().transpose()) + penalty.d_features.mul_scalar(lambda))
        * gate_on;

    // The penalty's pull on the decoder norms is radial; with the unit-norm
    // constraint the trainer projects it away, but the gradient stays exact.
    dw_dec = add_norm_grad(
        dw_dec,
        &p.w_dec,
        &norms,
        penalty.d_norms,
        inputs.sparsity_coefficient,
    );
    let (dw_gate, db_gate) = linear_backward(s.clone(), dgate);
    let (dw_mag, db_mag) = linear_backward(s, dmag);
    // W_mag = W_enc * exp(r_mag): chain rule to both.
    let dr_mag = (dw_mag.clone() * w_mag.clone()).sum_dim(0);
    let dw_enc = dw_gate + dw_mag * scale;
    if sae.config.apply_b_dec_to_input {
        db_dec = db_dec + input_bias_grad(&p.w_enc, &db_gate) + input_bias_grad(&w_mag, &db_mag);
    }
    StepOutput {
        grads: Params {
            w_enc: dw_enc,
            b_enc: db_gate,
            w_dec: dw_dec,
            b_dec: db_dec,
            threshold: None,
            b_mag: Some(db_mag),
            r_mag: Some(dr_mag),
            w_skip: None,
        },
        loss: LossTensors {
            mse,
            sparsity: penalty.value,
            aux,
            coefficient: inputs.sparsity_coefficient,
        },
        features: f,
        reconstruction: x_hat,
        min_kept_activation: None,
    }
}
