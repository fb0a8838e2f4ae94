//! The optimisation of one transcoder or crosscoder, on kibitzer-sae's
//! [`TrainConfig`] (the same settings, defaults, schedules and validation as
//! `kibitzer sae train`) and reporting in its [`StepReport`] / [`StepLog`].
//!
//! [`XTrainer::step`] is kibitzer-sae's `DictTrainer::step` for a dictionary
//! whose target is not its input: Adam with PyTorch's update rule,
//! learning-rate warm-up and decay, sparsity warm-up, global gradient
//! clipping, unit-norm decoder rows (transcoders with every architecture but
//! L1) by gradient projection and renormalisation, dead-feature tracking,
//! AuxK for TopK/BatchTopK, the BatchTopK threshold estimate and
//! non-negative JumpReLU thresholds. `b_dec` starts at the geometric median
//! of the first batch's targets, and AuxK's `k_aux` defaults to half the
//! target width (`d_out / 2`; the SAE's `d_in / 2`). JumpReLU's target L0
//! and its L0 gradient to the encoder apply as for SAEs (the step is
//! kibitzer-sae's); p-annealing, resampling and the JumpReLU threshold
//! initialisation from the first batch are SAE-only and refused here.

use crate::error::XcoderError;
use crate::xcoder::Xcoder;
use burn::tensor::Tensor;
use kibitzer_sae::Architecture;
use kibitzer_sae::Params;
use kibitzer_sae::arch::StepInputs;
use kibitzer_sae::ops::{geometric_median, row_from_host, row_norms, scalar, to_host};
use kibitzer_sae::train::{StepLog, StepReport, TrainConfig, batch_fvu};

/// A step's report plus the FVU of each output block (device scalars).
pub struct XStepReport {
    /// kibitzer-sae's report (its `fvu` is over the concatenated outputs).
    pub report: StepReport,
    /// FVU of each output block on this batch; one entry for a transcoder.
    pub fvu_per_block: Vec<Tensor<1>>,
}

/// An [`XStepReport`] read back to the host: one line of `log.jsonl`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct XStepLog {
    /// The SAE family's fields (`fvu` over the concatenated outputs).
    #[serde(flatten)]
    pub log: StepLog,
    /// FVU of each output block.
    pub fvu_per_block: Vec<f64>,
    /// Mean of `fvu_per_block`.
    pub fvu_mean_of_blocks: f64,
}

impl XStepReport {
    /// Reads every term back to the host.
    pub fn read(self) -> XStepLog {
        let fvu_per_block: Vec<f64> = self.fvu_per_block.into_iter().map(scalar).collect();
        let fvu_mean_of_blocks =
            fvu_per_block.iter().sum::<f64>() / fvu_per_block.len().max(1) as f64;
        XStepLog {
            log: self.report.read(),
            fvu_per_block,
            fvu_mean_of_blocks,
        }
    }
}

/// The optimiser state of one dictionary: everything a checkpoint holds so
/// that a resumed run ends with the same weights.
#[derive(Clone, Debug)]
pub struct XTrainer {
    /// The dictionary being trained (weights in normalised units).
    pub xcoder: Xcoder,
    /// Its training settings.
    pub config: TrainConfig,
    pub(crate) m: Params,
    pub(crate) v: Params,
    pub(crate) step: usize,
    /// BatchTopK: running estimate of the inference threshold.
    pub(crate) threshold: Option<f64>,
    /// Rows seen since each feature last fired.
    pub(crate) rows_since_fired: Vec<u64>,
}

/// Scalar state saved in checkpoints. The threshold is kept as its bit
/// pattern: JSON decimal text does not parse back to the same `f64` in every
/// case, and a resumed run must continue from the exact value.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ScalarState {
    pub step: usize,
    pub threshold_bits: Option<u64>,
}

impl XTrainer {
    /// A trainer for a fresh or loaded dictionary; the config is validated
    /// and settings that do not apply are refused, naming the field.
    pub fn new(xcoder: Xcoder, config: TrainConfig) -> Result<Self, XcoderError> {
        config.validate()?;
        xcoder.check_shapes()?;
        let kind = xcoder.kind().name();
        if config.p_anneal.is_some() {
            return Err(XcoderError::config(
                "training config: `p_anneal`",
                format!("p-annealing is implemented for SAEs only, not for a {kind}"),
            ));
        }
        if config.resample_every.is_some() {
            return Err(XcoderError::config(
                "training config: `resample_every`",
                format!(
                    "dead-feature resampling is implemented for SAEs only, not for a {kind}; TopK/BatchTopK use AuxK instead"
                ),
            ));
        }
        if config.jumprelu_init_l0.is_some() {
            return Err(XcoderError::config(
                "training config: `jumprelu_init_l0`",
                format!(
                    "the threshold initialisation from the first batch is implemented for SAEs only, not for a {kind}"
                ),
            ));
        }
        config.check_jumprelu_fields(xcoder.architecture())?;
        let zeros = xcoder.params().zeros_like();
        // A BatchTopK dictionary being fine-tuned starts its threshold
        // estimate from the one it was saved with.
        let threshold = match (xcoder.architecture(), &xcoder.params().threshold) {
            (Architecture::BatchTopK { .. }, Some(t)) => Some(scalar(t.clone().max())),
            _ => None,
        };
        Ok(Self {
            m: zeros.clone(),
            v: zeros,
            step: 0,
            threshold,
            rows_since_fired: vec![0; xcoder.d_sae()],
            config,
            xcoder,
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

    /// BatchTopK: the inference threshold estimated so far.
    pub fn threshold_estimate(&self) -> Option<f64> {
        self.threshold
    }

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
        self.dead_mask().1 as f64 / self.xcoder.d_sae().max(1) as f64
    }

    /// One training step on input `x [B, d_in]` and target `y [B, d_out]`
    /// (normalised as the weights expect).
    pub fn step(&mut self, x: Tensor<2>, y: Tensor<2>) -> XStepReport {
        let cfg = self.config.clone();
        let step = self.step;
        let batch = x.dims()[0];
        if step == 0 && cfg.init_b_dec_geometric_median {
            let d_out = y.dims()[1];
            let median = geometric_median(&to_host(y.clone()), d_out, 100, 1e-6);
            self.xcoder.params_mut().b_dec = row_from_host(median, &y.device());
        }
        let arch = self.xcoder.architecture().clone();
        let uses_auxk = matches!(
            arch,
            Architecture::TopK { .. } | Architecture::BatchTopK { .. }
        );
        let (dead, n_dead) = self.dead_mask();
        let inputs = StepInputs {
            sparsity_coefficient: cfg.sparsity_coefficient * cfg.sparsity_warmup_at(step),
            p: 1.0,
            dead_mask: (uses_auxk && n_dead > 0).then(|| row_from_host(dead, &x.device())),
            n_dead: if uses_auxk { n_dead } else { 0 },
            k_aux: cfg.k_aux.unwrap_or(y.dims()[1] / 2).max(1),
            auxk_alpha: cfg.auxk_alpha,
            l0: cfg.l0_penalty(),
        };
        let out = self.xcoder.step(x, y.clone(), &inputs);

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

        let l0 = active.sum().div_scalar(batch as f32);
        let fvu = batch_fvu(&y, &out.reconstruction);
        let widths = self.xcoder.output_widths();
        let fvu_per_block = if widths.len() == 1 {
            vec![fvu.clone()]
        } else {
            (0..widths.len())
                .map(|i| {
                    batch_fvu(
                        &crate::blocks::column_block(y.clone(), &widths, i),
                        &crate::blocks::column_block(out.reconstruction.clone(), &widths, i),
                    )
                })
                .collect()
        };
        let lr = cfg.lr_at(step);
        let mut grads = out.grads;
        if let Some(max_norm) = cfg.grad_clip_norm {
            grads = clip_global_norm(grads, max_norm);
        }
        let unit_norm = self.xcoder.unit_norm_decoder();
        if unit_norm {
            grads.w_dec = remove_radial_component(grads.w_dec, &self.xcoder.params().w_dec);
        }
        self.adam_update(&grads, lr);
        let params = self.xcoder.params_mut();
        if unit_norm {
            let w = params.w_dec.clone();
            params.w_dec = w.clone() / row_norms(w).clamp_min(1e-12);
        }
        if let Some(theta) = params.threshold.take() {
            // JumpReLU thresholds must stay positive for the kernel to make sense.
            params.threshold = Some(theta.clamp_min(0.0));
        }
        self.step += 1;
        XStepReport {
            report: StepReport {
                step,
                loss: out.loss,
                l0,
                fvu,
                lr,
                p: 1.0,
                dead_fraction: self.dead_fraction(),
            },
            fvu_per_block,
        }
    }

    /// kibitzer-sae's Adam step, so SAEs and xcoders train alike.
    fn adam_update(&mut self, grads: &Params, lr: f64) {
        let stepped = kibitzer_sae::train::adam_step(
            &self.config.adam,
            self.xcoder.params(),
            &mut self.m,
            &mut self.v,
            grads,
            self.step,
            lr,
        );
        *self.xcoder.params_mut() = stepped;
    }

    /// The dictionary as used at inference, still in normalised units:
    /// BatchTopK gets its estimated global threshold.
    pub fn inference(&self) -> Xcoder {
        let mut x = self.xcoder.clone();
        if let (Architecture::BatchTopK { .. }, Some(t)) =
            (x.architecture().clone(), self.threshold)
        {
            let d_sae = x.d_sae();
            let device = x.device();
            x.params_mut().threshold = Some(row_from_host(vec![t as f32; d_sae], &device));
        }
        x
    }

    pub(crate) fn scalar_state(&self) -> ScalarState {
        ScalarState {
            step: self.step,
            threshold_bits: self.threshold.map(f64::to_bits),
        }
    }

    pub(crate) fn set_scalar_state(&mut self, s: ScalarState) {
        self.step = s.step;
        self.threshold = s.threshold_bits.map(f64::from_bits);
    }
}

/// Scales every gradient so that their global L2 norm is at most `max_norm`,
/// without reading anything back from the device.
fn clip_global_norm(grads: Params, max_norm: f64) -> Params {
    let Some(sq) = grads
        .named()
        .into_iter()
        .map(|(_, g)| g.square().sum())
        .reduce(|a, b| a + b)
    else {
        return grads;
    };
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
/// (the constraint `||W_dec_j|| = 1` allows only tangent moves).
fn remove_radial_component(grad: Tensor<2>, w_dec: &Tensor<2>) -> Tensor<2> {
    let w = w_dec.clone();
    let along =
        (grad.clone() * w.clone()).sum_dim(1) / w.clone().square().sum_dim(1).clamp_min(1e-12);
    grad - w * along
}
