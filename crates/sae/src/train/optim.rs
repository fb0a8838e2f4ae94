//! The optimisation of one dictionary of any shape (an SAE, a transcoder, a
//! crosscoder: anything [`Trainable`]): Adam, gradient clipping, the
//! unit-norm decoder constraint, dead-feature tracking, AuxK, the BatchTopK
//! threshold, p-annealing and resampling. [`DictTrainer::step`] is one
//! training step on one batch; [`super::Sweep`] drives several of them from
//! one pass over the data.

use super::config::{AdamConfig, TrainConfig};
use super::trainable::Trainable;
use crate::arch::{self, Architecture, LossParts, LossTensors, StepInputs};
use crate::error::ConfigError;
use crate::ops::{from_host, row_from_host, row_norms, scalar, to_host};
use crate::sae::{Params, Sae};
use burn::tensor::{Device, Tensor};
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
    /// FVU of each output block on this batch (one for an SAE or a
    /// transcoder, one per block of a crosscoder).
    pub fvu_per_block: Vec<Tensor<1>>,
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
    /// Fraction of variance unexplained on the batch (over all output
    /// blocks together).
    pub fvu: f64,
    /// FVU of each output block (absent in logs written before it was
    /// added, and then empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fvu_per_block: Vec<f64>,
    /// Mean of `fvu_per_block`: every block weighs the same, whatever its
    /// variance (absent with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fvu_mean_of_blocks: Option<f64>,
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
        let fvu_per_block: Vec<f64> = self.fvu_per_block.into_iter().map(scalar).collect();
        let fvu_mean_of_blocks = (!fvu_per_block.is_empty())
            .then(|| fvu_per_block.iter().sum::<f64>() / fvu_per_block.len() as f64);
        StepLog {
            step: self.step,
            loss: self.loss.read(),
            l0: scalar(self.l0),
            fvu: scalar(self.fvu),
            fvu_per_block,
            fvu_mean_of_blocks,
            lr: self.lr,
            coefficient,
            p: self.p,
            dead_fraction: self.dead_fraction,
        }
    }
}

/// The optimiser state of one dictionary, everything a checkpoint must hold
/// for a resumed run to end with the same weights. `D` is the dictionary:
/// an [`Sae`] by default, or any other [`Trainable`] shape (kibitzer-xcoder's
/// transcoders and crosscoders).
#[derive(Clone, Debug)]
pub struct DictTrainer<D: Trainable = Sae> {
    /// The dictionary being trained (on normalised activations).
    pub dict: D,
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

/// Scalar state of a [`DictTrainer`], saved as JSON in checkpoints. The
/// floats are written twice: as decimals for people, and as bit patterns
/// (`*_bits`), which are what resuming reads, since JSON decimal text does
/// not parse back to the same `f64` in every case and a resumed run must
/// continue from the exact value. Readers of older checkpoints: an SAE
/// sweep's held only the decimals, a transcoder or crosscoder run's only
/// `step` and `threshold_bits` (its coefficient scale and `p` were 1).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ScalarState {
    pub step: usize,
    #[serde(default = "one")]
    pub coefficient_scale: f64,
    #[serde(default = "one")]
    pub p: f64,
    #[serde(default)]
    pub threshold: Option<f64>,
    #[serde(default)]
    pub coefficient_scale_bits: Option<u64>,
    #[serde(default)]
    pub p_bits: Option<u64>,
    #[serde(default)]
    pub threshold_bits: Option<u64>,
}

fn one() -> f64 {
    1.0
}

impl ScalarState {
    /// The exact values: the bit patterns where present, else the decimals.
    fn exact(&self) -> (f64, f64, Option<f64>) {
        (
            self.coefficient_scale_bits
                .map_or(self.coefficient_scale, f64::from_bits),
            self.p_bits.map_or(self.p, f64::from_bits),
            self.threshold_bits.map(f64::from_bits).or(self.threshold),
        )
    }
}

impl<D: Trainable> DictTrainer<D> {
    /// A trainer for a freshly initialised or loaded dictionary. Refuses a
    /// dictionary that [`Trainable::check`] refuses, a config that
    /// [`TrainConfig::validate`] refuses, and settings the dictionary cannot
    /// use (p-annealing for architectures other than the standard and
    /// gated ones, resampling for a standard dictionary whose target is not
    /// its input, the JumpReLU fields for other architectures), with the
    /// error that names the field. A BatchTopK dictionary that holds a
    /// threshold (one being fine-tuned) starts its threshold estimate from
    /// it.
    pub fn new(dict: D, config: TrainConfig) -> Result<Self, D::Error> {
        // The shape first: a zero d_sae would otherwise surface as the
        // infinite default learning rate it implies.
        dict.check()?;
        config.validate()?;
        let model = dict.step_model();
        let architecture = model.architecture;
        let d_sae = dict.d_sae();
        if config.p_anneal.is_some()
            && !matches!(architecture, Architecture::Standard | Architecture::Gated)
        {
            return Err(ConfigError::NotForArchitecture {
                field: "p_anneal",
                applies_to: "the standard and gated dictionaries",
                architecture: architecture.name(),
            }
            .into());
        }
        if config.resample_every.is_some() && !dict.reconstructs_input() {
            return Err(ConfigError::Training {
                field: "resample_every",
                reason: "applies to dictionaries that reconstruct their input (SAEs, \
                         crosscoders): a resampled feature takes an input row's direction, \
                         which is not a direction of a transcoder's output"
                    .into(),
            }
            .into());
        }
        config.check_jumprelu_fields(architecture)?;
        config.check_matryoshka_fields(architecture, d_sae)?;
        if let Some(l0) = config.jumprelu_init_l0
            && l0 >= d_sae as f64
        {
            return Err(ConfigError::Training {
                field: "jumprelu_init_l0",
                reason: format!(
                    "must be below d_sae ({d_sae}): every feature would fire on every row"
                ),
            }
            .into());
        }
        let threshold = match (architecture, &model.params.threshold) {
            (Architecture::BatchTopK { .. }, Some(t)) => Some(scalar(t.clone().max())),
            _ => None,
        };
        let zeros = model.params.zeros_like();
        let p = config.p_anneal.map_or(1.0, |pa| pa.p_start);
        Ok(Self {
            m: zeros.clone(),
            v: zeros,
            step: 0,
            coefficient_scale: 1.0,
            p,
            threshold,
            rows_since_fired: vec![0; d_sae],
            config,
            dict,
        })
    }

    /// The same trainer with the dictionary and Adam's moments on `device`.
    pub fn to_device(&self, device: &Device) -> Self {
        Self {
            dict: self.dict.to_device(device),
            m: self.m.map(|t| t.clone().to_device(device)),
            v: self.v.map(|t| t.clone().to_device(device)),
            ..self.clone()
        }
    }

    /// Adam's first and second moments, as a checkpoint saves them.
    pub fn adam_moments(&self) -> (&Params, &Params) {
        (&self.m, &self.v)
    }

    /// BatchTopK: the inference threshold estimated so far.
    pub fn threshold_estimate(&self) -> Option<f64> {
        self.threshold
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
            coefficient_scale_bits: Some(self.coefficient_scale.to_bits()),
            p_bits: Some(self.p.to_bits()),
            threshold_bits: self.threshold.map(f64::to_bits),
        }
    }

    pub(crate) fn set_scalar_state(&mut self, s: ScalarState) {
        let (coefficient_scale, p, threshold) = s.exact();
        self.step = s.step;
        self.coefficient_scale = coefficient_scale;
        self.p = p;
        self.threshold = threshold;
    }

    /// The checkpoint form of the optimiser state: the scalar state (JSON)
    /// and the rows since each feature fired (JSON), for
    /// [`DictTrainer::restore`].
    pub fn checkpoint_metadata(&self) -> Vec<(String, String)> {
        vec![
            (
                "state".to_string(),
                serde_json::to_string(&self.scalar_state()).expect("plain struct serialises"),
            ),
            (
                "rows_since_fired".to_string(),
                serde_json::to_string(&self.rows_since_fired).expect("a Vec<u64> serialises"),
            ),
        ]
    }

    /// Adam's moments and the metadata of [`DictTrainer::checkpoint_metadata`]
    /// put back, as a checkpoint holds them; `get` looks a metadata key up.
    /// The error names the key at fault and what was expected.
    pub fn restore(
        &mut self,
        m: Params,
        v: Params,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let read =
            |key: &str| get(key).ok_or_else(|| format!("checkpoint metadata has no `{key}`"));
        let state: ScalarState = serde_json::from_str(&read("state")?)
            .map_err(|e| format!("checkpoint metadata `state`: {e}"))?;
        let rows_since_fired: Vec<u64> = serde_json::from_str(&read("rows_since_fired")?)
            .map_err(|e| format!("checkpoint metadata `rows_since_fired`: {e}"))?;
        let d_sae = self.dict.d_sae();
        if rows_since_fired.len() != d_sae {
            return Err(format!(
                "rows_since_fired has {} entries, expected d_sae = {d_sae}",
                rows_since_fired.len()
            ));
        }
        for (what, moments) in [("adam_m", &m), ("adam_v", &v)] {
            for ((name, a), (_, b)) in moments.named().into_iter().zip(self.m.named()) {
                if a.dims() != b.dims() {
                    return Err(format!(
                        "{what}.{name} has shape {:?}, expected {:?} (the parameter's)",
                        a.dims(),
                        b.dims()
                    ));
                }
            }
            if moments.named().len() != self.m.named().len() {
                return Err(format!(
                    "{what} holds {} tensors, the parameters {}",
                    moments.named().len(),
                    self.m.named().len()
                ));
            }
        }
        let device = self.dict.device();
        self.m = m.map(|t| t.clone().to_device(&device));
        self.v = v.map(|t| t.clone().to_device(&device));
        self.rows_since_fired = rows_since_fired;
        self.set_scalar_state(state);
        Ok(())
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
        self.dead_mask().1 as f64 / self.dict.d_sae().max(1) as f64
    }

    /// Before the first step: `b_dec` := geometric median of the targets
    /// `y` (when the config asks for it).
    fn init_b_dec(&mut self, y: &Tensor<2>) {
        if self.step != 0 || !self.config.init_b_dec_geometric_median {
            return;
        }
        let d_out = y.dims()[1];
        let median = crate::ops::geometric_median(&to_host(y.clone()), d_out, 100, 1e-6);
        let device = self.dict.device();
        self.dict.params_mut().b_dec = row_from_host(median, &device);
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
        if self.step != 0 || self.dict.params().threshold.is_none() {
            return;
        }
        let d_sae = self.dict.d_sae();
        let rate = (l0 / d_sae as f64).clamp(0.0, 1.0);
        let model = self.dict.step_model();
        let pre = to_host(model.pre_acts(model.encoder_input(x)));
        let quantiles = crate::ops::column_quantiles(&pre, d_sae, 1.0 - rate);
        // A constant feature gets a small positive threshold all the same.
        let theta: Vec<f32> = crate::ops::column_std(&pre, d_sae)
            .into_iter()
            .map(|sd| sd.max(1e-3))
            .collect();
        let shift: Vec<f32> = theta.iter().zip(&quantiles).map(|(t, q)| t - q).collect();
        let device = self.dict.device();
        let params = self.dict.params_mut();
        params.b_enc = params.b_enc.clone() + row_from_host(shift, &device);
        params.threshold = Some(row_from_host(theta, &device));
    }

    /// One training step on a batch of (normalised) training rows `[batch,
    /// row width]`, which the dictionary [splits](Trainable::split) into
    /// its input and target (an SAE's rows are its input and its target).
    pub fn step(&mut self, rows: Tensor<2>) -> StepReport {
        let (x, y) = self.dict.split(rows);
        self.step_on(x, y)
    }

    /// One training step on input `x [batch, d_in]` and target `y [batch,
    /// d_out]` (normalised as the weights expect).
    pub fn step_on(&mut self, x: Tensor<2>, y: Tensor<2>) -> StepReport {
        self.init_b_dec(&y);
        self.init_threshold_for_l0(&x);
        let arch = self.dict.step_model().architecture.clone();
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
            dead_mask: (uses_auxk && n_dead > 0).then(|| row_from_host(dead, &x.device())),
            n_dead: if uses_auxk { n_dead } else { 0 },
            // Half the target's width (an SAE's d_in / 2).
            k_aux: cfg.k_aux.unwrap_or(y.dims()[1] / 2).max(1),
            auxk_alpha: cfg.auxk_alpha,
            l0: cfg.l0_penalty(),
            levels: cfg.matryoshka_levels(self.dict.d_sae()),
        };
        let out = arch::step(&self.dict.step_model(), x.clone(), y.clone(), &inputs);

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
                // A feature's decoder weight, as the penalty has it.
                let model = self.dict.step_model();
                let norms = arch::norm_sum(&arch::block_row_norms(
                    &model.params.w_dec,
                    &model.out_blocks,
                ))
                .transpose();
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
        let fvu = batch_fvu(&y, &out.reconstruction);
        let fvu_per_block = {
            let widths = self.dict.step_model().out_blocks.to_vec();
            if widths.len() == 1 {
                vec![fvu.clone()]
            } else {
                (0..widths.len())
                    .map(|i| {
                        batch_fvu(
                            &arch::column_block(y.clone(), &widths, i),
                            &arch::column_block(out.reconstruction.clone(), &widths, i),
                        )
                    })
                    .collect()
            }
        };
        let lr = cfg.lr_at(step);
        let mut grads = self.dict.mask_grads(out.grads);
        if let Some(max_norm) = cfg.grad_clip_norm {
            grads = clip_global_norm(grads, max_norm);
        }
        let unit_norm = self.dict.unit_norm_decoder();
        if unit_norm {
            grads.w_dec = remove_radial_component(grads.w_dec, &self.dict.params().w_dec);
        }
        self.adam_update(&grads, lr);
        let params = self.dict.params_mut();
        if unit_norm {
            let w = params.w_dec.clone();
            params.w_dec = w.clone() / row_norms(w).clamp_min(1e-12);
        }
        if let Some(theta) = params.threshold.take() {
            // JumpReLU thresholds must stay positive for the kernel to make sense.
            params.threshold = Some(theta.clamp_min(0.0));
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
            fvu_per_block,
            lr,
            p: self.p,
            dead_fraction,
        }
    }

    fn adam_update(&mut self, grads: &Params, lr: f64) {
        let stepped = adam_step(
            &self.config.adam,
            self.dict.params(),
            &mut self.m,
            &mut self.v,
            grads,
            self.step,
            lr,
        );
        *self.dict.params_mut() = stepped;
    }

    /// Anthropic's resampling (2023, "Towards monosemanticity"): every dead
    /// feature gets the direction of an input drawn with probability
    /// proportional to its squared reconstruction error; its decoder row is
    /// that unit direction, its encoder column the same direction scaled to
    /// 0.2 x the mean norm of the live encoder columns, its bias 0, and its
    /// Adam moments are reset. Deterministic for a given seed and step.
    fn resample_dead(&mut self, x: &Tensor<2>, window_rows: u64) {
        let d_sae = self.dict.d_sae();
        let d_in = x.dims()[1];
        let dead: Vec<usize> = (0..d_sae)
            .filter(|&j| self.rows_since_fired[j] >= window_rows)
            .collect();
        if dead.is_empty() || !self.dict.reconstructs_input() {
            return;
        }
        let model = self.dict.step_model();
        let s = model.encoder_input(x);
        let f = model.pre_acts(s).clamp_min(0.0);
        let recon = model.predict(x, f);
        let err = to_host((recon - x.clone()).square().sum_dim(1));
        let xs = to_host(x.clone());
        let total: f64 = err.iter().map(|&e| e as f64).sum();
        if total <= 0.0 {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.config.seed ^ 0x5eed_5eed ^ (self.step as u64).wrapping_mul(0x9e37_79b9),
        );
        let params = self.dict.params();
        let mut w_enc = to_host(params.w_enc.clone());
        let mut w_dec = to_host(params.w_dec.clone());
        let mut b_enc = to_host(params.b_enc.clone());
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
        let device = self.dict.device();
        let params = self.dict.params_mut();
        params.w_enc = from_host(w_enc, d_in, d_sae, &device);
        params.w_dec = from_host(w_dec, d_sae, d_in, &device);
        params.b_enc = row_from_host(b_enc, &device);
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

    /// The dictionary as it should be used at inference (still in the
    /// units it was trained in): BatchTopK gets its estimated global
    /// threshold.
    pub fn inference(&self) -> D {
        let mut dict = self.dict.clone();
        let batch_topk = matches!(
            dict.step_model().architecture,
            Architecture::BatchTopK { .. }
        );
        if let (true, Some(t)) = (batch_topk, self.threshold) {
            let (d_sae, device) = (dict.d_sae(), dict.device());
            dict.params_mut().threshold = Some(row_from_host(vec![t as f32; d_sae], &device));
        }
        dict
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

#[cfg(test)]
mod scalar_state_tests {
    use super::ScalarState;

    fn exact(json: &str) -> (f64, f64, Option<f64>) {
        serde_json::from_str::<ScalarState>(json).unwrap().exact()
    }

    #[test]
    fn checkpoints_of_both_old_trainers_and_the_new_one_read_back() {
        // An SAE sweep's checkpoint before the trainers were one: decimals.
        assert_eq!(
            exact(r#"{"step":3,"coefficient_scale":0.5,"p":0.75,"threshold":0.25}"#),
            (0.5, 0.75, Some(0.25))
        );
        // A transcoder or crosscoder run's: the threshold's bits only.
        let t = 0.1f64 + 0.2;
        assert_eq!(
            exact(&format!(r#"{{"step":3,"threshold_bits":{}}}"#, t.to_bits())),
            (1.0, 1.0, Some(t))
        );
        assert_eq!(
            exact(r#"{"step":3,"threshold_bits":null}"#),
            (1.0, 1.0, None)
        );
        // Now: both, and the bits win where they disagree with the decimals.
        let (c, p) = (1.0f64 / 3.0, 0.2f64 + 0.1);
        let json = format!(
            r#"{{"step":3,"coefficient_scale":9.0,"p":9.0,"threshold":9.0,"coefficient_scale_bits":{},"p_bits":{},"threshold_bits":{}}}"#,
            c.to_bits(),
            p.to_bits(),
            t.to_bits()
        );
        assert_eq!(exact(&json), (c, p, Some(t)));
    }
}
