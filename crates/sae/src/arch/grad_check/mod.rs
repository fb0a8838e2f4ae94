//! Hand-written gradients against burn's autodiff on the same losses: the
//! SAE shape here, transcoders and crosscoders in [`shapes`].
//!
//! Each loss below is written independently, straight from the paper's
//! formulas, with burn's autodiff doing the calculus (straight-through
//! estimators as value-preserving surrogates: `(t - t.detach()) * c` has value
//! 0 and gradient `c`). A wrong sign, a missing chain-rule factor or a
//! gradient leaking into a frozen tensor makes these tests fail.

use super::*;

mod shapes;
use crate::ops::{from_host, to_host};
use crate::sae::{Params, RowNorm, SaeConfig};
use burn::tensor::Device;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const B: usize = 16;
const D: usize = 8;
const M: usize = 12;

fn rand_tensor(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    scale: f32,
    dev: &Device,
) -> Tensor<2> {
    let v = (0..rows * cols)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
        .collect();
    from_host(v, rows, cols, dev)
}

fn random_sae(arch: Architecture, seed: u64, dev: &Device) -> Sae {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let config = SaeConfig {
        apply_b_dec_to_input: true,
        row_norm: RowNorm::None,
        ..SaeConfig::new(arch.clone(), D, M)
    };
    let mut params = Params {
        w_enc: rand_tensor(&mut rng, D, M, 0.8, dev),
        b_enc: rand_tensor(&mut rng, 1, M, 0.3, dev),
        w_dec: rand_tensor(&mut rng, M, D, 0.8, dev),
        b_dec: rand_tensor(&mut rng, 1, D, 0.3, dev),
        threshold: None,
        b_mag: None,
        r_mag: None,
        w_skip: None,
    };
    match arch {
        Architecture::Gated => {
            params.b_mag = Some(rand_tensor(&mut rng, 1, M, 0.3, dev));
            params.r_mag = Some(rand_tensor(&mut rng, 1, M, 0.3, dev));
        }
        Architecture::JumpRelu { .. } => {
            params.threshold = Some(rand_tensor(&mut rng, 1, M, 0.2, dev).abs().add_scalar(0.05));
        }
        _ => {}
    }
    Sae { config, params }
}

fn batch(seed: u64, dev: &Device) -> Tensor<2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xabc);
    rand_tensor(&mut rng, B, D, 1.5, dev)
}

/// Copies the parameters onto an autodiff device, tracked.
fn tracked(sae: &Sae, dev: &Device) -> Sae {
    Sae {
        config: sae.config.clone(),
        params: sae
            .params
            .map(|t| Tensor::from_data(t.to_data(), dev).require_grad()),
    }
}

fn assert_close(name: &str, manual: &Tensor<2>, auto: Tensor<2>) {
    let a = to_host(manual.clone());
    let b = to_host(auto.reshape(manual.dims()));
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 2e-4 * scale,
            "{name}[{i}]: manual {x} vs autodiff {y} (scale {scale})"
        );
    }
}

/// Every parameter's manual gradient in `out` equals autodiff's of `loss`
/// with respect to the tracked parameters `auto` (zero where autodiff saw
/// none).
fn check(out: &StepOutput, auto: &Params, loss: Tensor<1>) {
    let grads = loss.backward();
    let manual = out.grads.named();
    assert_eq!(
        manual.len(),
        auto.named().len(),
        "one gradient per parameter"
    );
    for (name, tensor) in auto.named() {
        let manual_grad = manual
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, g)| g.clone())
            .unwrap_or_else(|| panic!("no manual gradient for {name}"));
        let auto_grad = tensor
            .grad(&grads)
            .unwrap_or_else(|| tensor.zeros_like().inner());
        assert_close(
            name,
            &manual_grad,
            Tensor::from_data(auto_grad.to_data(), &Device::flex()),
        );
    }
}

fn inputs(p: f64) -> StepInputs {
    StepInputs {
        sparsity_coefficient: 0.7,
        p,
        dead_mask: None,
        n_dead: 0,
        k_aux: 4,
        auxk_alpha: 1.0 / 32.0,
        l0: Default::default(),
        levels: None,
    }
}

fn mse(x_hat: Tensor<2>, x: Tensor<2>) -> Tensor<1> {
    (x_hat - x).square().sum().div_scalar(B as f32)
}

fn norms_row(w_dec: &Tensor<2>) -> Tensor<2> {
    w_dec.clone().square().sum_dim(1).sqrt().transpose()
}

#[test]
fn standard_l1_and_lp_match_autodiff() {
    let cpu = Device::flex();
    let ad = Device::flex().autodiff();
    for p in [1.0, 0.6] {
        let sae = random_sae(Architecture::Standard, 1, &cpu);
        let out = standard::step(
            &sae.step_model(),
            batch(1, &cpu),
            batch(1, &cpu),
            &inputs(p),
        );
        let a = tracked(&sae, &ad);
        let x = batch(1, &ad);
        let pr = &a.params;
        let f = ((x.clone() - pr.b_dec.clone()).matmul(pr.w_enc.clone()) + pr.b_enc.clone())
            .clamp_min(0.0);
        let x_hat = f.clone().matmul(pr.w_dec.clone()) + pr.b_dec.clone();
        let weighted = f.clone() * norms_row(&pr.w_dec);
        // Lp over the active entries only: x^p has an infinite derivative at
        // 0, so inactive entries are lifted to 1 (a constant) and masked out.
        let active = f.greater_elem(0.0).float().detach();
        let lifted = weighted + (active.clone().neg() + 1.0);
        let s = (lifted.powf_scalar(p as f32) * active).sum();
        let loss = mse(x_hat, x) + s.div_scalar(B as f32).mul_scalar(0.7);
        check(&out, &a.params, loss);
    }
}

#[test]
fn gated_matches_autodiff_with_frozen_aux_decoder() {
    let cpu = Device::flex();
    let ad = Device::flex().autodiff();
    let sae = random_sae(Architecture::Gated, 2, &cpu);
    let out = gated::step(
        &sae.step_model(),
        batch(2, &cpu),
        batch(2, &cpu),
        &inputs(1.0),
    );
    let a = tracked(&sae, &ad);
    let x = batch(2, &ad);
    let pr = &a.params;
    let s = x.clone() - pr.b_dec.clone();
    let gate = s.clone().matmul(pr.w_enc.clone()) + pr.b_enc.clone();
    let r = pr.r_mag.clone().unwrap();
    let mag = s.matmul(pr.w_enc.clone() * r.exp()) + pr.b_mag.clone().unwrap();
    let f = gate.clone().greater_elem(0.0).float() * mag.clamp_min(0.0);
    let x_hat = f.matmul(pr.w_dec.clone()) + pr.b_dec.clone();
    let gate_act = gate.clamp_min(0.0);
    let sparsity = (gate_act.clone() * norms_row(&pr.w_dec.clone().detach()))
        .sum()
        .div_scalar(B as f32);
    let x_aux = gate_act.matmul(pr.w_dec.clone().detach()) + pr.b_dec.clone().detach();
    let loss = mse(x_hat, x.clone()) + sparsity.mul_scalar(0.7) + mse(x_aux, x);
    // The paper's decoder is unit norm, so the penalty's pull on decoder
    // norms is projected away in training; the manual step still computes
    // it. Compare everything but W_dec against the frozen-norm loss, and W_dec
    // separately below.
    let grads = loss.backward();
    for (name, tensor) in a.params.named() {
        if name == "w_dec" {
            continue;
        }
        let manual = out
            .grads
            .named()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        let g = tensor.grad(&grads).unwrap();
        assert_close(name, &manual, Tensor::from_data(g.to_data(), &cpu));
    }
    let _ = sae;
}

#[test]
fn gated_decoder_gradient_includes_norm_weighting() {
    let cpu = Device::flex();
    let ad = Device::flex().autodiff();
    let sae = random_sae(Architecture::Gated, 3, &cpu);
    let out = gated::step(
        &sae.step_model(),
        batch(3, &cpu),
        batch(3, &cpu),
        &inputs(1.0),
    );
    let a = tracked(&sae, &ad);
    let x = batch(3, &ad);
    let pr = &a.params;
    let s = x.clone() - pr.b_dec.clone().detach();
    let gate = s.clone().matmul(pr.w_enc.clone().detach()) + pr.b_enc.clone().detach();
    let r = pr.r_mag.clone().unwrap().detach();
    let mag = s.matmul(pr.w_enc.clone().detach() * r.exp()) + pr.b_mag.clone().unwrap().detach();
    let f = gate.clone().greater_elem(0.0).float() * mag.clamp_min(0.0);
    let x_hat = f.matmul(pr.w_dec.clone()) + pr.b_dec.clone().detach();
    let sparsity = (gate.clamp_min(0.0) * norms_row(&pr.w_dec))
        .sum()
        .div_scalar(B as f32);
    let loss = mse(x_hat, x) + sparsity.mul_scalar(0.7);
    let grads = loss.backward();
    let g = pr.w_dec.grad(&grads).unwrap();
    assert_close(
        "w_dec",
        &out.grads.w_dec,
        Tensor::from_data(g.to_data(), &cpu),
    );
}

fn topk_loss(a: &Sae, x: Tensor<2>, keep: Tensor<2>, aux_keep: Option<Tensor<2>>) -> Tensor<1> {
    let pr = &a.params;
    let pre = (x.clone() - pr.b_dec.clone()).matmul(pr.w_enc.clone()) + pr.b_enc.clone();
    let relu = pre.clamp_min(0.0);
    let f = relu.clone() * keep;
    let x_hat = f.matmul(pr.w_dec.clone()) + pr.b_dec.clone();
    let mut loss = mse(x_hat.clone(), x.clone());
    if let Some(aux_keep) = aux_keep {
        let e = (x - x_hat).detach();
        let var = (e.clone() - e.clone().mean_dim(0))
            .square()
            .sum()
            .div_scalar(B as f32);
        let e_hat = (relu * aux_keep).matmul(pr.w_dec.clone());
        loss = loss
            + (e_hat - e)
                .square()
                .sum()
                .div_scalar(B as f32)
                .div(var)
                .mul_scalar(1.0 / 32.0);
    }
    loss
}

#[test]
fn topk_with_auxk_matches_autodiff() {
    let cpu = Device::flex();
    let ad = Device::flex().autodiff();
    let sae = random_sae(Architecture::TopK { k: 3 }, 4, &cpu);
    let dead: Vec<f32> = (0..M).map(|j| if j % 3 == 0 { 1.0 } else { 0.0 }).collect();
    let mut inp = inputs(1.0);
    inp.dead_mask = Some(from_host(dead.clone(), 1, M, &cpu));
    inp.n_dead = 4;
    inp.k_aux = 2;
    let x = batch(4, &cpu);
    let out = topk::step(
        &sae.step_model(),
        x.clone(),
        x.clone(),
        &inp,
        topk::Selection::PerRow(3),
    );
    // The active sets, recomputed independently from the pre-activations.
    let pre = to_host(sae.pre_acts(sae.encoder_input(x)));
    let (mut keep, mut aux_keep) = (vec![0f32; B * M], vec![0f32; B * M]);
    for b in 0..B {
        let row = &pre[b * M..(b + 1) * M];
        let mut order: Vec<usize> = (0..M).collect();
        order.sort_by(|&i, &j| row[j].total_cmp(&row[i]));
        for &j in order.iter().take(3) {
            if row[j] > 0.0 {
                keep[b * M + j] = 1.0;
            }
        }
        for &j in order.iter().filter(|&&j| dead[j] == 1.0).take(2) {
            if row[j] > 0.0 {
                aux_keep[b * M + j] = 1.0;
            }
        }
    }
    let a = tracked(&sae, &ad);
    let loss = topk_loss(
        &a,
        batch(4, &ad),
        from_host(keep, B, M, &ad),
        Some(from_host(aux_keep, B, M, &ad)),
    );
    check(&out, &a.params, loss);
}

#[test]
fn batchtopk_matches_autodiff() {
    let cpu = Device::flex();
    let ad = Device::flex().autodiff();
    let sae = random_sae(Architecture::BatchTopK { k: 2 }, 5, &cpu);
    let x = batch(5, &cpu);
    let out = topk::step(
        &sae.step_model(),
        x.clone(),
        x.clone(),
        &inputs(1.0),
        topk::Selection::Batch(2),
    );
    let pre = to_host(sae.pre_acts(sae.encoder_input(x)));
    let mut order: Vec<usize> = (0..B * M).collect();
    order.sort_by(|&i, &j| pre[j].total_cmp(&pre[i]));
    let mut keep = vec![0f32; B * M];
    for &i in order.iter().take(2 * B) {
        if pre[i] > 0.0 {
            keep[i] = 1.0;
        }
    }
    let kept_min = order
        .iter()
        .take(2 * B)
        .map(|&i| pre[i])
        .filter(|v| *v > 0.0)
        .fold(f32::MAX, f32::min);
    let a = tracked(&sae, &ad);
    let loss = topk_loss(&a, batch(5, &ad), from_host(keep, B, M, &ad), None);
    check(&out, &a.params, loss);
    let got = crate::ops::scalar(out.min_kept_activation.unwrap()) as f32;
    assert!((got - kept_min).abs() < 1e-5, "{got} vs {kept_min}");
}

/// A Matryoshka BatchTopK (Bussmann et al. 2025): the loss is the sum of
/// every nested prefix's reconstruction loss, written here as the paper
/// states it, with AuxK on dead latents beside it.
#[test]
fn matryoshka_batchtopk_matches_autodiff() {
    let cpu = Device::flex();
    let ad = Device::flex().autodiff();
    let sae = random_sae(Architecture::BatchTopK { k: 3 }, 6, &cpu);
    let levels = vec![2, 5, 9, M];
    let dead: Vec<f32> = (0..M).map(|j| if j % 4 == 1 { 1.0 } else { 0.0 }).collect();
    let mut inp = inputs(1.0);
    inp.levels = Some(levels.clone());
    inp.dead_mask = Some(from_host(dead.clone(), 1, M, &cpu));
    inp.n_dead = 3;
    inp.k_aux = 2;
    let x = batch(6, &cpu);
    let out = topk::step(
        &sae.step_model(),
        x.clone(),
        x.clone(),
        &inp,
        topk::Selection::Batch(3),
    );
    let pre = to_host(sae.pre_acts(sae.encoder_input(x)));
    let mut order: Vec<usize> = (0..B * M).collect();
    order.sort_by(|&i, &j| pre[j].total_cmp(&pre[i]));
    let mut keep = vec![0f32; B * M];
    for &i in order.iter().take(3 * B) {
        if pre[i] > 0.0 {
            keep[i] = 1.0;
        }
    }
    let mut aux_keep = vec![0f32; B * M];
    for b in 0..B {
        let row = &pre[b * M..(b + 1) * M];
        let mut dead_order: Vec<usize> = (0..M).filter(|&j| dead[j] == 1.0).collect();
        dead_order.sort_by(|&i, &j| row[j].total_cmp(&row[i]));
        for &j in dead_order.iter().take(2) {
            if row[j] > 0.0 {
                aux_keep[b * M + j] = 1.0;
            }
        }
    }
    let a = tracked(&sae, &ad);
    let xa = batch(6, &ad);
    let keep = from_host(keep, B, M, &ad);
    // The whole dictionary's loss with AuxK, as plain BatchTopK's, plus each
    // inner level's reconstruction from its prefix alone, through a 0/1 mask
    // over the features (no slicing, unlike the step).
    let mut loss = topk_loss(
        &a,
        xa.clone(),
        keep.clone(),
        Some(from_host(aux_keep, B, M, &ad)),
    );
    let pr = &a.params;
    let f = (xa.clone() - pr.b_dec.clone())
        .matmul(pr.w_enc.clone())
        .add(pr.b_enc.clone())
        .clamp_min(0.0)
        * keep;
    for &w in &levels[..levels.len() - 1] {
        let prefix: Vec<f32> = (0..M).map(|j| if j < w { 1.0 } else { 0.0 }).collect();
        let x_hat =
            (f.clone() * from_host(prefix, 1, M, &ad)).matmul(pr.w_dec.clone()) + pr.b_dec.clone();
        loss = loss + mse(x_hat, xa.clone());
    }
    let total = scalar_of(&loss);
    check(&out, &a.params, loss);
    let parts = out.loss.read();
    assert!(
        (parts.loss - total).abs() <= 1e-4 * total.abs(),
        "reported loss {} vs autodiff's {total}",
        parts.loss
    );
}

fn scalar_of(t: &Tensor<1>) -> f64 {
    to_host(t.clone().reshape([1, 1]))[0] as f64
}

/// JumpReLU against autodiff on the straight-through form of its loss, with
/// the paper's L0 term or dictionary_learning's `(L0 / target - 1)^2`.
/// Returns the batch's L0 and the manual threshold gradient.
fn check_jumprelu(l0: L0Penalty) -> (f64, Vec<f32>) {
    let cpu = Device::flex();
    let ad = Device::flex().autodiff();
    let eps = 0.3f32; // wide, so that some pre-activations fall in the kernel
    let mut sae = random_sae(
        Architecture::JumpRelu {
            bandwidth: eps as f64,
        },
        6,
        &cpu,
    );
    sae.config.apply_b_dec_to_input = false;
    let step_inputs = StepInputs { l0, ..inputs(1.0) };
    let out = jumprelu::step(
        &sae.step_model(),
        batch(6, &cpu),
        batch(6, &cpu),
        &step_inputs,
        eps as f64,
    );
    let a = tracked(&sae, &ad);
    let x = batch(6, &ad);
    let pr = &a.params;
    let theta = pr.threshold.clone().unwrap();
    let theta_c = theta.clone().detach();
    let pre = x.clone().matmul(pr.w_enc.clone()) + pr.b_enc.clone();
    let pre_c = pre.clone().detach();
    let on = pre_c
        .clone()
        .greater(theta_c.clone().expand([B, M]))
        .float();
    let kernel = (pre_c.clone() - theta_c.clone())
        .abs()
        .lower_elem(eps / 2.0)
        .float();
    let dtheta_only = (theta.clone() - theta_c.clone()).expand([B, M]);
    let f = pre.clone().clamp_min(0.0) * on.clone()
        + dtheta_only.clone() * (kernel.clone() * theta_c.div_scalar(-eps));
    let x_hat = f.matmul(pr.w_dec.clone()) + pr.b_dec.clone();
    // With `to_encoder`, H(pre - theta) also passes (1/eps) K to pre.
    let dpre_only = if l0.to_encoder {
        pre - pre_c.clone()
    } else {
        pre_c.zeros_like()
    };
    let l0_value =
        (on + dtheta_only * kernel.clone().div_scalar(-eps) + dpre_only * kernel.div_scalar(eps))
            .sum()
            .div_scalar(B as f32);
    let sparsity = match l0.target {
        None => l0_value,
        Some(t) => l0_value.div_scalar(t as f32).sub_scalar(1.0).square(),
    };
    let loss = mse(x_hat, x) + sparsity.mul_scalar(0.7);
    check(&out, &a.params, loss);
    // The kernel was actually exercised.
    assert!(
        to_host(out.grads.threshold.clone().unwrap())
            .iter()
            .any(|v| v.abs() > 1e-6)
    );
    let fired = crate::ops::scalar(out.features.greater_elem(0.0).float().sum()) / B as f64;
    (fired, to_host(out.grads.threshold.unwrap()))
}

#[test]
fn jumprelu_straight_through_matches_paper() {
    let (l0, _) = check_jumprelu(L0Penalty::default());
    assert!(l0 > 1.0 && l0 < M as f64 - 1.0, "L0 {l0}");
}

#[test]
fn jumprelu_target_l0_matches_autodiff_on_both_sides_of_the_target() {
    let (l0, _) = check_jumprelu(L0Penalty::default());
    // Below the batch's L0 the term pulls the thresholds up (a more
    // negative gradient), above it down; with and without the gradient
    // reaching the encoder.
    for to_encoder in [false, true] {
        let penalty = |target: f64| L0Penalty {
            target: Some(target),
            to_encoder,
        };
        let (_, low) = check_jumprelu(penalty(l0 / 2.0));
        let (_, high) = check_jumprelu(penalty((l0 * 1.5).min(M as f64)));
        let sum = |g: &[f32]| g.iter().sum::<f32>();
        assert!(sum(&low) < sum(&high), "{low:?} vs {high:?}");
    }
    check_jumprelu(L0Penalty {
        target: None,
        to_encoder: true,
    });
}
