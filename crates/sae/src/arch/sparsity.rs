//! The Lp sparsity penalty on decoder-norm-weighted activations, shared by
//! the standard and gated SAEs (L1 when `p = 1`, p-annealing below 1).
//!
//! `S = mean_b sum_j (f_bj n_j)^p` with `n_j = ||W_dec_j||`. Weighting by the
//! decoder norm (Anthropic's April 2024 update) stops the optimiser from
//! shrinking activations while growing decoder rows; with a unit-norm decoder
//! it is the plain Lp penalty.

use burn::tensor::Tensor;

/// Smallest weighted activation used in `a^(p-1)` for `p < 1`, where the
/// derivative is unbounded at 0.
const LP_FLOOR: f32 = 1e-6;

/// Value and gradients of the penalty.
pub struct Penalty {
    /// `S`, one element.
    pub value: Tensor<1>,
    /// `dS/df`, `[B, d_sae]`, or `[1, d_sae]` when it is the same for every
    /// row (L1); it broadcasts either way (only meaningful where `f > 0`).
    pub d_features: Tensor<2>,
    /// `dS/dn_j`, `[1, d_sae]`.
    pub d_norms: Tensor<2>,
}

/// The penalty for features `f [B, d_sae]` and decoder row norms `n [1, d_sae]`.
pub fn lp_penalty(f: Tensor<2>, norms: Tensor<2>, p: f64) -> Penalty {
    let b = f.dims()[0] as f32;
    if (p - 1.0).abs() < 1e-12 {
        // L1 is linear in f: one column sum gives the value and dS/dn, and
        // dS/df is the same row for every example (a [1, d_sae] row that
        // broadcasts), so no [B, d_sae] product is made.
        let column = f.sum_dim(0).div_scalar(b);
        return Penalty {
            value: (column.clone() * norms.clone()).sum(),
            d_features: norms.div_scalar(b),
            d_norms: column,
        };
    }
    let a = f.clone() * norms.clone();
    let p32 = p as f32;
    let active = f.clone().greater_elem(0.0).float();
    // p a^(p-1) / B on active entries.
    let t = a.clone().clamp_min(LP_FLOOR).powf_scalar(p32 - 1.0) * active * (p32 / b);
    Penalty {
        value: a.powf_scalar(p32).sum().div_scalar(b),
        d_features: t.clone() * norms,
        d_norms: (t * f).sum_dim(0),
    }
}

/// Adds the penalty's gradient through the decoder norms to `dW_dec`:
/// `dn_j/dW_dec_j = W_dec_j / n_j`.
pub fn add_norm_grad(
    dw_dec: Tensor<2>,
    w_dec: &Tensor<2>,
    norms: &Tensor<2>,
    d_norms: Tensor<2>,
    coefficient: f64,
) -> Tensor<2> {
    let scale = (d_norms / norms.clone().clamp_min(1e-12)).mul_scalar(coefficient as f32);
    dw_dec + w_dec.clone() * scale.transpose()
}
