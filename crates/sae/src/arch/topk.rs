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
//!
//! Either trains as a Matryoshka dictionary ([`StepInputs::levels`]): the
//! selection is unchanged, and every nested prefix of features also
//! reconstructs the target, its loss added to the whole dictionary's (the
//! inner levels' losses are reported with the auxiliary terms). AuxK
//! reconstructs the whole dictionary's residual, as SAELens's default does.

use super::{
    LossTensors, StepInputs, StepModel, StepOutput, nested_reconstruction, norm_sum,
    reconstruction_grad, zero_scalar,
};
use crate::ops::{batch_topk_mask, row_topk_mask};
use burn::tensor::Tensor;

/// How the active set is chosen.
#[derive(Clone, Copy, Debug)]
pub enum Selection {
    /// `k` per row.
    PerRow(usize),
    /// `k * batch` across the batch.
    Batch(usize),
}

/// Loss and gradients of one batch: input `x`, target `y`.
///
/// The selection value is `v = pre`, or `v = relu(pre) s_j` with
/// [`StepModel::select_by_norm`]; AuxK ranks dead latents by the same value
/// and BatchTopK's inference threshold is the smallest kept `relu(v)`.
pub fn step(
    model: &StepModel<'_>,
    x: Tensor<2>,
    y: Tensor<2>,
    inputs: &StepInputs,
    selection: Selection,
) -> StepOutput {
    let batch = x.dims()[0];
    let s = model.encoder_input(&x);
    let pre = model.pre_acts(s.clone());
    let positive = pre.clone().greater_elem(0.0).float();
    let relu = pre.clone() * positive.clone();
    let value = if model.select_by_norm {
        relu.clone() * norm_sum(&model.block_norms()).transpose()
    } else {
        pre
    };
    let kept_value = value.clone() * positive.clone();
    let keep = match selection {
        Selection::PerRow(k) => row_topk_mask(value.clone(), k) * positive.clone(),
        Selection::Batch(k) => batch_topk_mask(kept_value.clone(), k * batch),
    };
    let f = relu.clone() * keep.clone();
    // A Matryoshka dictionary scores every nested prefix's reconstruction;
    // a plain one is the single level `d_sae`.
    let nested = match inputs.levels.as_deref() {
        Some(levels) if levels.len() > 1 => Some(nested_reconstruction(model, &x, &f, &y, levels)),
        _ => None,
    };
    let (y_hat, mse, g, df, dw_dec, inner) = match nested {
        Some(n) => (n.y_hat, n.mse, n.g_sum, n.df, Some(n.dw_dec), Some(n.inner)),
        None => {
            let y_hat = model.predict(&x, f.clone());
            let (mse, g) = reconstruction_grad(y_hat.clone(), y.clone());
            let df = model.feature_grad(g.clone());
            (y_hat, mse, g, df, None, None)
        }
    };
    let mut dpre = df * keep.clone();
    let mut aux_dw_dec = None;

    let mut aux = inner.unwrap_or_else(|| zero_scalar(&f));
    if let (Some(dead), true) = (&inputs.dead_mask, inputs.n_dead > 0) {
        let b = batch as f32;
        let e = y - y_hat.clone();
        let var = (e.clone() - e.clone().mean_dim(0))
            .square()
            .sum()
            .div_scalar(b);
        // Non-dead latents are pushed far down so that top-k picks dead ones.
        let dead_value = value + (dead.clone() - 1.0).mul_scalar(1e30);
        let k_aux = inputs.k_aux.min(inputs.n_dead);
        let aux_keep = row_topk_mask(dead_value, k_aux) * dead.clone() * positive;
        let a = relu * aux_keep.clone();
        let e_hat = model.decode_product(a.clone());
        let diff = e_hat - e;
        let denom = var.clamp_min(1e-12);
        let alpha = inputs.auxk_alpha as f32;
        aux = aux
            + diff
                .clone()
                .square()
                .sum()
                .div_scalar(b)
                .div(denom.clone())
                .mul_scalar(alpha);
        // h = dL_aux / de_hat
        let h = diff.div(denom.reshape([1, 1])).mul_scalar(2.0 * alpha / b);
        aux_dw_dec = Some(model.decoder_grad(a, h.clone()));
        dpre = dpre + model.feature_grad(h) * aux_keep;
    }

    let mut grads = match dw_dec {
        Some(dw_dec) => model.linear_grads_with_decoder(s, &x, dw_dec, g, dpre),
        None => model.linear_grads(s, &x, f.clone(), g, dpre),
    };
    if let Some(extra) = aux_dw_dec {
        grads.w_dec = grads.w_dec + extra;
    }
    let min_kept_activation = match selection {
        // Smallest kept selection value; unkept entries pushed out of the way.
        Selection::Batch(_) => {
            Some((kept_value * keep.clone() + (keep.clone().neg() + 1.0).mul_scalar(1e30)).min())
        }
        Selection::PerRow(_) => None,
    };
    StepOutput {
        grads,
        loss: LossTensors {
            mse,
            sparsity: keep.sum().div_scalar(batch as f32),
            aux,
            coefficient: 0.0,
        },
        features: f,
        reconstruction: y_hat,
        min_kept_activation,
    }
}
