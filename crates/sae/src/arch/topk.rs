//! TopK (Gao et al. 2024) and BatchTopK (Bussmann et al. 2024) SAEs.
//!
//! TopK keeps the `k` largest pre-activations of each row (then ReLU);
//! BatchTopK keeps the `k * B` largest positive activations of the batch.
//! Both train with unit-norm decoder rows (the trainer projects out the
//! radial part of the decoder gradient and renormalises after each step) and
//! the AuxK loss of Gao et al.: the residual `e = x - x_hat` (no gradient) is
//! reconstructed from the `k_aux` largest activations among dead latents,
//! `L_aux = alpha * mean_b ||e_hat - e||^2 / mean_b ||e - mean(e)||^2`
//! (defaults alpha = 1/32, k_aux = d_in / 2, as in dictionary_learning).

use super::{
    LossTensors, StepInputs, StepOutput, decoder_backward, input_bias_grad, linear_backward,
    reconstruction_grad, zero_scalar,
};
use crate::ops::{batch_topk_mask, row_topk_mask};
use crate::sae::{Params, Sae};
use burn::tensor::Tensor;

/// How the active set is chosen.
#[derive(Clone, Copy, Debug)]
pub enum Selection {
    /// `k` per row.
    PerRow(usize),
    /// `k * batch` across the batch.
    Batch(usize),
}

/// Loss and gradients of one batch.
pub fn step(sae: &Sae, x: Tensor<2>, inputs: &StepInputs, selection: Selection) -> StepOutput {
    let p = &sae.params;
    let s = sae.encoder_input(x.clone());
    let pre = sae.pre_acts(s.clone());
    let positive = pre.clone().greater_elem(0.0).float();
    let relu = pre.clone() * positive.clone();
    let keep = match selection {
        Selection::PerRow(k) => row_topk_mask(pre.clone(), k) * positive.clone(),
        Selection::Batch(k) => batch_topk_mask(relu.clone(), k * x.dims()[0]),
    };
    let f = relu.clone() * keep.clone();
    let x_hat = f.clone().matmul(p.w_dec.clone()) + p.b_dec.clone();

    let (mse, g) = reconstruction_grad(x_hat.clone(), x.clone());
    let (mut dw_dec, mut db_dec, df) = decoder_backward(p, f.clone(), g);
    let mut dpre = df * keep.clone();

    let mut aux = zero_scalar(&f);
    if let (Some(dead), true) = (&inputs.dead_mask, inputs.n_dead > 0) {
        let b = x.dims()[0] as f32;
        let e = x - x_hat.clone();
        let var = (e.clone() - e.clone().mean_dim(0))
            .square()
            .sum()
            .div_scalar(b);
        // Non-dead latents are pushed far down so that top-k picks dead ones.
        let dead_pre = pre.clone() + (dead.clone() - 1.0).mul_scalar(1e30);
        let k_aux = inputs.k_aux.min(inputs.n_dead);
        let aux_keep = row_topk_mask(dead_pre, k_aux) * dead.clone() * positive;
        let a = relu * aux_keep.clone();
        let e_hat = a.clone().matmul(p.w_dec.clone());
        let diff = e_hat - e;
        let denom = var.clone().clamp_min(1e-12);
        let alpha = inputs.auxk_alpha as f32;
        aux = diff
            .clone()
            .square()
            .sum()
            .div_scalar(b)
            .div(denom.clone())
            .mul_scalar(alpha);
        // h = dL_aux / de_hat
        let h = diff.div(denom.reshape([1, 1])).mul_scalar(2.0 * alpha / b);
        dw_dec = dw_dec + a.transpose().matmul(h.clone());
        dpre = dpre + h.matmul(p.w_dec.clone().transpose()) * aux_keep;
    }

    let (dw_enc, db_enc) = linear_backward(s, dpre);
    if sae.config.apply_b_dec_to_input {
        db_dec = db_dec + input_bias_grad(&p.w_enc, &db_enc);
    }
    let min_kept_activation = match selection {
        Selection::Batch(_) => {
            // Smallest kept activation; unkept entries pushed out of the way.
            Some((f.clone() + (keep.clone().neg() + 1.0).mul_scalar(1e30)).min())
        }
        Selection::PerRow(_) => None,
    };
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
            sparsity: keep.sum().div_scalar(f.dims()[0] as f32),
            aux,
            coefficient: 0.0,
        },
        features: f,
        reconstruction: x_hat,
        min_kept_activation,
    }
}
