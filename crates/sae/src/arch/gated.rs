//! Gated SAE (Rajamanoharan et al. 2024).
//!
//! `gate = s W_enc + b_gate`, `mag = s (W_enc * exp(r_mag)) + b_mag`,
//! `f = 1[gate > 0] * relu(mag)`. Loss: reconstruction + lambda * Lp(relu(gate))
//! + the auxiliary reconstruction `||x - (relu(gate) W_dec^frozen +
//! b_dec^frozen)||^2`, which gives the gate path a gradient (the Heaviside
//! step has none) without letting it move the decoder. Decoder rows are kept
//! at unit norm, as in the paper; p-annealing applies to the gate penalty.
//! Defaults: r_mag and both biases start at zero.

use super::sparsity::lp_penalty;
use super::{
    LossTensors, StepInputs, StepModel, StepOutput, add_block_norm_grad, input_bias_grad, norm_sum,
    reconstruction_grad,
};
use crate::sae::Params;
use burn::tensor::Tensor;

/// Loss and gradients of one batch: input `x`, target `y`. The auxiliary
/// reconstruction goes through the frozen decoder (and the skip path, when
/// there is one, which it does not train).
pub fn step(model: &StepModel<'_>, x: Tensor<2>, y: Tensor<2>, inputs: &StepInputs) -> StepOutput {
    let p = model.params;
    let d_sae = p.b_enc.dims()[1];
    let device = x.device();
    let b_mag = p
        .b_mag
        .clone()
        .unwrap_or_else(|| Tensor::zeros([1, d_sae], &device));
    let r_mag = p
        .r_mag
        .clone()
        .unwrap_or_else(|| Tensor::zeros([1, d_sae], &device));
    let scale = r_mag.exp();

    // W_mag = W_enc * exp(r_mag) scales W_enc's columns, so both paths
    // share one product: s W_mag = (s W_enc) * exp(r_mag). The same holds
    // backwards, where the two encoder gradients fold into one product.
    let s = model.encoder_input(&x);
    let enc = model.encode_product(s.clone());
    let gate = enc.clone() + p.b_enc.clone();
    let gate_on = gate.clone().greater_elem(0.0).float();
    let mag = enc.clone() * scale.clone() + b_mag;
    let mag_on = mag.clone().greater_elem(0.0).float();
    let f = gate_on.clone() * mag * mag_on.clone();
    let y_hat = model.predict(&x, f.clone());

    // Main reconstruction through the magnitude path.
    let (mse, g) = reconstruction_grad(y_hat.clone(), y.clone());
    let df = g.clone().matmul(p.w_dec.clone().transpose());
    let dmag = df * gate_on.clone() * mag_on;

    // Sparsity and auxiliary reconstruction through the gate path; the
    // decoder is frozen here, so only the gate receives these gradients.
    let gate_act = gate * gate_on.clone();
    let block_norms = model.block_norms();
    let penalty = lp_penalty(
        gate_act.clone(),
        norm_sum(&block_norms).transpose(),
        inputs.p,
    );
    let y_aux = model.predict(&x, gate_act);
    let (aux, g_aux) = reconstruction_grad(y_aux, y);
    let lambda = inputs.sparsity_coefficient as f32;
    let dgate = (g_aux.matmul(p.w_dec.clone().transpose()) + penalty.d_features.mul_scalar(lambda))
        * gate_on;

    // The penalty's pull on the decoder norms is radial; with the unit-norm
    // constraint the trainer projects it away, but the gradient stays exact.
    let dw_dec = add_block_norm_grad(
        f.clone().transpose().matmul(g.clone()),
        model,
        &block_norms,
        penalty.d_norms,
        inputs.sparsity_coefficient,
    );
    // dL/dW_enc = s^T dgate + (s^T dmag) * exp(r_mag) = s^T (dgate + dmag *
    // exp(r_mag)); dL/dr_mag_j = exp(r_mag_j) sum_b dmag_bj (s W_enc)_bj.
    let db_gate = dgate.clone().sum_dim(0);
    let db_mag = dmag.clone().sum_dim(0);
    let dr_mag = (dmag.clone() * enc).sum_dim(0) * scale.clone();
    let dw_enc = s.transpose().matmul(dgate + dmag * scale.clone());
    let mut db_dec = g.clone().sum_dim(0);
    if model.apply_b_dec_to_input {
        // The batch sum of the folded gradient, from the two bias gradients.
        let db_enc_input = db_gate.clone() + db_mag.clone() * scale;
        db_dec = db_dec + input_bias_grad(&p.w_enc, &db_enc_input);
    }
    let dw_skip = p.w_skip.as_ref().map(|_| g.transpose().matmul(x));
    let grads = Params {
        w_enc: dw_enc,
        b_enc: db_gate,
        w_dec: dw_dec,
        b_dec: db_dec,
        threshold: None,
        b_mag: Some(db_mag),
        r_mag: Some(dr_mag),
        w_skip: dw_skip,
    };
    StepOutput {
        grads,
        loss: LossTensors {
            mse,
            sparsity: penalty.value,
            aux,
            coefficient: inputs.sparsity_coefficient,
        },
        features: f,
        reconstruction: y_hat,
        min_kept_activation: None,
    }
}
