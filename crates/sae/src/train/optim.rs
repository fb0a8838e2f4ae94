//! The optimisation of one dictionary: Adam, gradient clipping, the unit-norm
//! decoder constraint, dead-feature tracking, the BatchTopK threshold and
//! p-annealing. [`DictTrainer::step`] is one training step on one batch;
//! [`super::Sweep`] drives several of them from one pass over the data.

use super::config::{AdamConfig, TrainConfig};
use crate::arch::{self, Architecture, LossParts, LossTensors, StepInputs};
use crate::error::ConfigError;
use crate::ops::{from_host, row_from_host, row_norms, scalar, to_host};
use crate::sae::{Params, Sae};
use burn::tensor::Tensor;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What one step reports. Loss terms stay on the device until
/// [`StepReport::read`] (reading forces a device sync, so the trainer reads
/// them only at logging steps).
pub struct StepReport {
    /// Step number (0-based) that was taken.
    pub step: usize,
    /// Loss terms as device scalars.
    pub loss: LossTensors,
    /// Mean number of active features per row in this batch (a device scalar).
    pub l0: Tensor<1>,
    /// Fraction of variance unexplained on this batch (a device scalar).
    pub fvu: Tensor<1>,
    /// Learning rate used.
    pub lr: f64,
    /// Exponent of the Lp penalty used.
    pub p: f64,
    /// Fraction of features dead (not fired for `dead_after_rows` rows).
    pub dead_fraction: f64,
}

/// A [`StepReport`] read back to the host.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StepLog {
    /// Step number (0-based).
    pub step: usize,
    /// Loss terms.
    #[serde(flatten)]
    pub loss: LossParts,
    /// Mean active features per row.
    pub l0: f64,
    /// Fraction of variance unexplained on the batch.
    pub fvu: f64,
    /// Learning rate.
    pub lr: f64,
    /// Sparsity coefficient in force (after warm-up and p-annealing rescaling).
    pub coefficient: f64,
    /// Lp exponent.
    pub p: f64,
    /// Fraction of dead features.
    pub dead_fraction: f64,
}

impl StepReport {
    /// Reads every term back to the host.
    pub fn read(self) -> StepLog {
        let coefficient = self.loss.coefficient;
        StepLog {
            step: self.step,
            loss: self.loss.read(),
            l0: scalar(self.l0),
            fvu: scalar(self.fvu),
            lr: self.lr,
            coefficient,
            p: self.p,
            dead_fraction: self.dead_fraction,
        }
    }
}

/// The optimiser state of one dictionary, everything a checkpoint must hold
/// for a resumed run to end with the same weights.
#[derive(Clone, Debug)]
pub struct DictTrainer {
    /// The dictionary being trained (on normalised activations).
    pub sae: Sae,
    /// Its training settings.
    pub config: TrainConfig,
    /// Adam's first moments.
    pub(crate) m: Params,
    /// Adam's second moments.
    pub(crate) v: Params,
    /// Steps taken so far.
    pub(crate) step: usize,
    /// Product of the p-annealing rescalings of the sparsity coefficient.
    pub(crate) coefficient_scale: f64,
    /// Lp exponent in force.
    pub(crate) p: f64,
    /// BatchTopK: running estimate of the inference threshold.
    pub(crate) threshold: Option<f64>,
    /// Rows seen since each feature last fired.
    pub(crate) rows_since_fired: Vec<u64>,
}

/// Scalar state of a [`DictTrainer`], saved as JSON in checkpoints.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ScalarState {
    pub step: usize,
    pub coefficient_scale: f64,
    pub p: f64,
    pub threshold: Option<f64>,
}

impl DictTrainer {
    /// A trainer for a freshly initialised or loaded dictionary. Refuses a
    /// dictionary or config that [`SaeConfig::validate`](crate::SaeConfig::validate)
    /// or [`TrainConfig::validate`] refuses, and p-annealing for an
    /// architecture other than the standard and gated SAEs, with the
    /// [`ConfigError`] that names the field.
    pub fn new(sae: Sae, config: TrainConfig) -> Result<Self, ConfigError> {
        // The shape first: a zero d_sae would otherwise surface as the
        // infinite default learning rate it implies.
        sae.config.validate()?;
        config.validate()?;
        if config.p_anneal.is_some()
            && !matches!(
                sae.config.architecture,
                Architecture::Standard | Architecture::Gated
            )
        {
            return Err(ConfigError::NotForArchitecture {
                field: "p_anneal",
                applies_to: "the standard and gated SAEs",
                architecture: sae.config.architecture.name(),
            });
        }
        config.check_jumprelu_fields(&sae.config.architecture)?;
        if let Some(l0) = config.jumprelu_init_l0
            && l0 >= sae.config.d_sae as f64
        {
            return Err(ConfigError::Training {
                field: "jumprelu_init_l0",
                reason: format!(
                    "must be below d_sae ({}): every feature would fire on every row",
                    sae.config.d_sae
                ),
            });
        }
        let zeros = sae.params.zeros_like();
        let p = config.p_anneal.map_or(1.0, |pa| pa.p_start);
        Ok(Self {
            m: zeros.clone(),
            v: zeros,
            step: 0,
            coefficient_scale: 1.0,
            p,
            threshold: None,
            rows_since_fired: vec![0; sae.config.d_sae],
            config,
            sae,
        })
    }

    /// Steps taken so far.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// Whether the configured number of steps has been taken.
    pub fn finished(&self) -> bool {
        self.step >= self.config.steps
    }

    pub(crate) fn scalar_state(&self) -> ScalarState {
        ScalarState {
            step: self.step,
            coefficient_scale: self.coefficient_scale,
            p: self.p,
            threshold: self.threshold,
        }
    }

    pub(crate) fn set_scalar_state(&mut self, s: ScalarState) {
        self.step = s.step;
        self.coefficient_scale = s.coefficient_scale;
        self.p = s.p;
        self.threshold = s.threshold;
    }

    /// Dead features as a 0/1 row, and their count.
    fn dead_mask(&self) -> (Vec<f32>, usize) {
        let limit = self.config.dead_after_rows;
        let mask: Vec<f32> = self
            .rows_since_fired
            .iter()
            .map(|&r| if r >= limit { 1.0 } else { 0.0 })
            .collect();
        let n = mask.iter().filter(|&&v| v > 0.0).count();
        (mask, n)
    }

    /// Fraction of features that have not fired for `dead_after_rows` rows.
    pub fn dead_fraction(&self) -> f64 {
        self.dead_mask().1 as f64 / self.sae.config.d_sae.max(1) as f64
    }

    /// Before the first step: `b_dec` := geometric median of `x` (when the
    /// config asks for it and the dictionary is an autoencoder).
    fn init_b_dec(&mut self, x: &Tensor<2>) {
        let c = &self.sae.config;
        if self.step != 0 || !self.config.init_b_dec_geometric_median || c.d_out != c.d_in {
            return;
        }
        let median = crate::ops::geometric_median(&to_host(x.clone()), c.d_in, 100, 1e-6);
        self.sae.params.b_dec = row_from_host(median, &self.sae.device());
    }

    /// Before the first step, with `jumprelu_init_l0`: with `q_j` the
    /// `1 - init_l0 / d_sae` quantile of feature `j`'s pre-activation on `x`
    /// and `sigma_j` its standard deviation, `theta_j := sigma_j` and
    /// `b_enc_j += sigma_j - q_j`, so that each feature fires on that
    /// fraction of the rows with a jump at the scale of its own
    /// activations. One `[batch, d_sae]` read-back, once.
    fn init_threshold_for_l0(&mut self, x: &Tensor<2>) {
        let Some(l0) = self.config.jumprelu_init_l0 else {
            return;
        };
        if self.step != 0 || self.sae.params.threshold.is_none() {
            return;
        }
        let d_sae = self.sae.config.d_sae;
        let rate = (l0 / d_sae as f64).clamp(0.0, 1.0);
        let model = self.sae.step_model();
        let pre = to_host(model.pre_acts(model.encoder_input(x)));
        let quantiles = crate::ops::column_quantiles(&pre, d_sae, 1.0 - rate);
        // A constant feature gets a small positive threshold all the same.
        let theta: Vec<f32> = crate::ops::column_std(&pre, d_sae)
            .into_iter()
            .map(|sd| sd.max(1e-3))
            .collect();
        let shift: Vec<f32> = theta.iter().zip(&quantiles).map(|(t, q)| t - q).collect();
        let device = self.sae.device();
        let b_enc = self.sae.params.b_enc.clone() + row_from_host(shift, &device);
        self.sae.params.b_enc = b_enc;
        self.sae.params.threshold = Some(row_from_host(theta, &device));
    }

    /// One training step on a batch `[batch, d_in]` of (normalised)
    /// activations.
    pub fn step(&mut self, x: Tensor<2>) -> StepReport {
        self.init_b_dec(&x);
        self.init_threshold_for_l0(&x);
        let arch = self.sae.config.architecture.clone();
        let step = self.step;
        let cfg = self.config.clone();
        let batch = x.dims()[0];

        let (dead, n_dead) = self.dead_mask();
        let uses_auxk = matches!(
            arch,
            Architecture::TopK { .. } | Architecture::BatchTopK { .. }
        );
        let coefficient =
            cfg.sparsity_coefficient * cfg.sparsity_warmup_at(step) * self.coefficient_scale;
        let inputs = StepInputs {
            sparsity_coefficient: coefficient,
            p: self.p,
            dead_mask: (uses_auxk && n_dead > 0).then(|| row_from_host(dead, &self.sae.device())),
            n_dead: if uses_auxk { n_dead } else { 0 },
            k_aux: cfg.k_aux.unwrap_or(self.sae.config.d_in / 2).max(1),
            auxk_alpha: cfg.auxk_alpha,
            l0: cfg.l0_penalty(),
        };
        let out = arch::step(&self.sae.step_model(), x.clone(), x.clone(), &inputs);

        // Dead-feature bookkeeping: one [d_sae] read-back per step.
        let active = out.features.clone().greater_elem(0.0).float();
        let fired = to_host(active.clone().sum_dim(0));
        for (r, f) in self.rows_since_fired.iter_mut().zip(&fired) {
            *r = if *f > 0.0 {
                0
            } else {
                r.saturating_add(batch as u64)
            };
        }

        if let (Some(min_kept), true) = (
            out.min_kept_activation.clone(),
            step >= cfg.threshold_start_step,
        ) {
            let m = scalar(min_kept);
            if m.is_finite() && m < 1e29 {
                let beta = cfg.threshold_beta;
                self.threshold = Some(match self.threshold {
                    None => m,
                    Some(t) => beta * t + (1.0 - beta) * m,
                });
            }
        }

        // p-annealing: when p changes, rescale the coefficient so the penalty
        // keeps its value on this batch.
        if let Some(pa) = cfg.p_anneal {
            let next_p = pa.p_at(step + 1, cfg.steps);
            if (next_p - self.p).abs() > 1e-12 {
                let norms = row_norms(self.sae.params.w_dec.clone()).transpose();
                let a = out.features.clone() * norms;
                let lp = |p: f64| scalar(a.clone().clamp_min(0.0).powf_scalar(p as f32).sum());
                let (old, new) = (lp(self.p), lp(next_p));
                if old > 0.0 && new > 0.0 {
                    self.coefficient_scale *= old / new;
                }
                self.p = next_p;
            }
        }

        let l0 = active.sum().div_scalar(batch as f32);
        let fvu = batch_fvu(&x, &out.reconstruction);
        let lr = cfg.lr_at(step);
        let mut grads = out.grads;
        if let Some(max_norm) = cfg.grad_clip_norm {
            grads = clip_global_norm(grads, max_norm);
        }
        let unit_norm = arch.unit_norm_decoder();
        if unit_norm {
            grads.w_dec = remove_radial_component(grads.w_dec, &self.sae.params.w_dec);
        }
        self.adam_update(&grads, lr);
        if unit_norm {
            let w = self.sae.params.w_dec.clone();
            self.sae.params.w_dec = w.clone() / row_norms(w).clamp_min(1e-12);
        }
        if let Some(theta) = self.sae.params.threshold.take() {
            // JumpReLU thresholds must stay positive for the kernel to make sense.
            self.sae.params.threshold = Some(theta.clamp_min(0.0));
        }
        if let Some(every) = cfg.resample_every {
            if matches!(arch, Architecture::Standard) && (step + 1) % every == 0 {
                self.resample_dead(&x, every as u64 * batch as u64);
            }
        }
        self.step += 1;
        let dead_fraction = self.dead_fraction();
        StepReport {
            step,
            loss: out.loss,
            l0,
            fvu,
            lr,
            p: self.p,
            dead_fraction,
        }
    }

    fn adam_update(&mut self, grads: &Params, lr: f64) {
        self.sae.params = adam_step(
            &self.config.adam,
            &self.sae.params,
            &mut self.m,
            &mut self.v,
            grads,
            self.step,
            lr,
        );
    }

    /// Anthropic's resampling (2023, "Towards monosemanticity"): every dead
    /// feature gets the direction of an input drawn with probability
    /// proportional to its squared reconstruction error; its decoder row is
    /// that unit direction, its encoder column the same direction scaled to
    /// 0.2 x the mean norm of the live encoder columns, its bias 0, and its
    /// Adam moments are reset. Deterministic for a given seed and step.
    fn resample_dead(&mut self, x: &Tensor<2>, window_rows: u64) {
        let d_sae = self.sae.config.d_sae;
        let d_in = self.sae.config.d_in;
        let dead: Vec<usize> = (0..d_sae)
            .filter(|&j| self.rows_since_fired[j] >= window_rows)
            .collect();
        if dead.is_empty() || self.sae.config.d_out != d_in {
            return;
        }
        let recon = crate::dictionary::Dictionary::forward(&self.sae, x.clone()).reconstruction;
        let err = to_host((recon - x.clone()).square().sum_dim(1));
        let xs = to_host(x.clone());
        let total: f64 = err.iter().map(|&e| e as f64).sum();
        if total <= 0.0 {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.config.seed ^ 0x5eed_5eed ^ (self.step as u64).wrapping_mul(0x9e37_79b9),
        );
        let mut w_enc = to_host(self.sae.params.w_enc.clone());
        let mut w_dec = to_host(self.sae.params.w_dec.clone());
        let mut b_enc = to_host(self.sae.params.b_enc.clone());
        let live: Vec<usize> = (0..d_sae).filter(|j| !dead.contains(j)).collect();
        let mean_live_norm = if live.is_empty() {
            1.0
        } else {
            live.iter()
                .map(|&j| {
                    (0..d_in)
                        .map(|i| w_enc[i * d_sae + j].powi(2))
                        .sum::<f32>()
                        .sqrt()
                })
                .sum::<f32>()
                / live.len() as f32
        };
        for &j in &dead {
            let mut target = rng.random::<f64>() * total;
            let mut row = err.len() - 1;
            for (b, &e) in err.iter().enumerate() {
                target -= e as f64;
                if target <= 0.0 {
                    row = b;
                    break;
                }
            }
            let v = &xs[row * d_in..(row + 1) * d_in];
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            for i in 0..d_in {
                w_dec[j * d_in + i] = v[i] / n;
                w_enc[i * d_sae + j] = v[i] / n * mean_live_norm * 0.2;
            }
            b_enc[j] = 0.0;
            self.rows_since_fired[j] = 0;
        }
        let device = self.sae.device();
        self.sae.params.w_enc = from_host(w_enc, d_in, d_sae, &device);
        self.sae.params.w_dec = from_host(w_dec, d_sae, d_in, &device);
        self.sae.params.b_enc = row_from_host(b_enc, &device);
        // Reset the moments of every resampled feature.
        let keep_row: Vec<f32> = (0..d_sae)
            .map(|j| if dead.contains(&j) { 0.0 } else { 1.0 })
            .collect();
        let keep = row_from_host(keep_row, &device);
        for state in [&mut self.m, &mut self.v] {
            state.w_enc = state.w_enc.clone() * keep.clone();
            state.b_enc = state.b_enc.clone() * keep.clone();
            state.w_dec = state.w_dec.clone() * keep.clone().transpose();
        }
    }

    /// The dictionary as it should be used at inference: BatchTopK gets its
    /// estimated global threshold.
    pub fn inference_sae(&self) -> Sae {
        let mut sae = self.sae.clone();
        if let (Architecture::BatchTopK { .. }, Some(t)) =
            (&sae.config.architecture, self.threshold)
        {
            let d_sae = sae.config.d_sae;
            sae.params.threshold = Some(row_from_host(vec![t as f32; d_sae], &sae.device()));
        }
        sae
    }
}

/// PyTorch's Adam, one step: updates the moments `m` and `v` with `grads`
/// and returns `params - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`
/// with `t = steps_done + 1`. Every kibitzer trainer (SAEs, transcoders,
/// crosscoders) steps through this one function.
pub fn adam_step(
    adam: &AdamConfig,
    params: &Params,
    m: &mut Params,
    v: &mut Params,
    grads: &Params,
    steps_done: usize,
    lr: f64,
) -> Params {
    let (b1, b2, eps) = (adam.beta1, adam.beta2, adam.eps);
    let t = (steps_done + 1) as i32;
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    *m = m.zip_map(grads, |m, g| {
        m.clone().mul_scalar(b1 as f32) + g.clone().mul_scalar((1.0 - b1) as f32)
    });
    *v = v.zip_map(grads, |v, g| {
        v.clone().mul_scalar(b2 as f32) + g.clone().square().mul_scalar((1.0 - b2) as f32)
    });
    let step_size = (lr / bc1) as f32;
    let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
    let update = m.zip_map(v, |m, v| {
        m.clone()
            / v.clone()
                .sqrt()
                .mul_scalar(inv_sqrt_bc2)
                .add_scalar(eps as f32)
    });
    params.zip_map(&update, |p, u| p.clone() - u.clone().mul_scalar(step_size))
}

/// Fraction of variance unexplained on one batch, as a device scalar:
/// `sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`.
pub fn batch_fvu(x: &Tensor<2>, x_hat: &Tensor<2>) -> Tensor<1> {
    let err = (x_hat.clone() - x.clone()).square().sum();
    let var = (x.clone() - x.clone().mean_dim(0))
        .square()
        .sum()
        .clamp_min(1e-12);
    err / var
}

/// Scales every gradient so that their global L2 norm is at most `max_norm`,
/// without reading anything back from the device.
fn clip_global_norm(grads: Params, max_norm: f64) -> Params {
    let sq = grads
        .named()
        .into_iter()
        .map(|(_, g)| g.square().sum())
        .reduce(|a, b| a + b);
    let Some(sq) = sq else { return grads };
    let scale: Tensor<2> = sq
        .sqrt()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm as f32)
        .clamp_max(1.0)
        .reshape([1, 1]);
    grads.map(|g| g.clone() * scale.clone())
}

/// Removes from each decoder row's gradient its component along the row
/// (the constraint ||W_dec_j|| = 1 allows only tangent moves).
fn remove_radial_component(grad: Tensor<2>, w_dec: &Tensor<2>) -> Tensor<2> {
    let w = w_dec.clone();
    let along =
        (grad.clone() * w.clone()).sum_dim(1) / w.clone().square().sum_dim(1).clamp_min(1e-12);
    grad - w * along
}
