//! [`Sae`]: the one dictionary type. Its architecture is a value
//! ([`Architecture`]), so the trainer, the file formats and every consumer of
//! [`Dictionary`] handle all architectures through the same code.

use crate::arch::Architecture;
use crate::dictionary::{Dictionary, Forward};
use crate::error::ConfigError;
use crate::ops::{batch_topk_mask, row_norms, row_topk_mask};
use burn::tensor::{Device, Tensor};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Per-row input normalisation applied at inference (SAELens's
/// `normalize_activations` values that survive saving). Training-time
/// normalisation by a constant is folded into the weights instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowNorm {
    /// Raw activations.
    None,
    /// Each row scaled to norm `sqrt(d_in)`; the output scaled back.
    ConstantNormRescale,
    /// Each row centred and divided by its (n-1) standard deviation + 1e-5;
    /// the output de-normalised with the same statistics.
    LayerNorm,
}

/// The shape and behaviour of an [`Sae`], apart from its weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SaeConfig {
    /// Which encoder nonlinearity and training recipe.
    pub architecture: Architecture,
    /// Input width.
    pub d_in: usize,
    /// Number of features.
    pub d_sae: usize,
    /// Output width: `d_in` for an autoencoder, another width for a transcoder.
    pub d_out: usize,
    /// Subtract `b_dec` from the input before encoding (SAELens's
    /// `apply_b_dec_to_input`; must be false when `d_out != d_in`).
    pub apply_b_dec_to_input: bool,
    /// TopK only: multiply pre-activations by the decoder row norms before
    /// selecting, and divide before decoding (SAELens's
    /// `rescale_acts_by_decoder_norm`). Always false for SAEs trained here,
    /// whose TopK decoders have unit rows.
    pub rescale_acts_by_decoder_norm: bool,
    /// Per-row normalisation at inference.
    pub row_norm: RowNorm,
}

impl SaeConfig {
    /// A config for an autoencoder (`d_out = d_in`) with the architecture's
    /// default for subtracting `b_dec`.
    pub fn new(architecture: Architecture, d_in: usize, d_sae: usize) -> Self {
        Self {
            apply_b_dec_to_input: architecture.default_apply_b_dec_to_input(),
            architecture,
            d_in,
            d_sae,
            d_out: d_in,
            rescale_acts_by_decoder_norm: false,
            row_norm: RowNorm::None,
        }
    }

    /// Parameters of a dictionary of this shape: the encoder and decoder
    /// matrices plus at most three `d_sae` vectors (biases, thresholds, the
    /// gated SAE's magnitude parameters) and the two bias vectors of width
    /// `d_in` and `d_out`. Saturates instead of overflowing.
    pub fn parameter_count(&self) -> u128 {
        use kibitzer_store::memory::product;
        let (d_in, d_sae, d_out) = (self.d_in, self.d_sae, self.d_out);
        product(&[d_in, d_sae])
            .saturating_add(product(&[d_sae, d_out]))
            .saturating_add(product(&[3, d_sae]))
            .saturating_add(d_in as u128 + d_out as u128)
    }

    /// Checks the sizes and architecture parameters a user could get wrong,
    /// naming the field: widths of at least 1, `1 <= k <= d_sae` for TopK and
    /// BatchTopK, a positive finite JumpReLU `bandwidth`. The trainer calls
    /// it before training, so nothing is trained that could not be loaded.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, reason: String| Err(ConfigError::Sae { field, reason });
        for (field, value) in [
            ("d_in", self.d_in),
            ("d_sae", self.d_sae),
            ("d_out", self.d_out),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1, got 0".into());
            }
        }
        match self.architecture {
            Architecture::TopK { k } | Architecture::BatchTopK { k } => {
                if k == 0 || k > self.d_sae {
                    return bad(
                        "k",
                        format!("must be between 1 and d_sae = {}, got {k}", self.d_sae),
                    );
                }
            }
            Architecture::JumpRelu { bandwidth } => {
                if !(bandwidth.is_finite() && bandwidth > 0.0) {
                    return bad(
                        "bandwidth",
                        format!("must be a positive number, got {bandwidth}"),
                    );
                }
            }
            Architecture::Standard | Architecture::Gated => {}
        }
        Ok(())
    }
}

/// The trainable tensors of an [`Sae`]. Biases are stored as `[1, n]` rows so
/// that they broadcast over a batch. The same struct holds gradients and
/// optimiser moments, so every per-parameter loop is written once
/// ([`Params::zip_map`]).
#[derive(Clone, Debug)]
pub struct Params {
    /// Encoder `[d_in, d_sae]` (SAELens `W_enc`).
    pub w_enc: Tensor<2>,
    /// Encoder bias `[1, d_sae]` (SAELens `b_enc`; `b_gate` for gated SAEs).
    pub b_enc: Tensor<2>,
    /// Decoder `[d_sae, d_out]`, one row per feature (SAELens `W_dec`).
    pub w_dec: Tensor<2>,
    /// Decoder bias `[1, d_out]` (SAELens `b_dec`).
    pub b_dec: Tensor<2>,
    /// JumpReLU thresholds `[1, d_sae]`; BatchTopK's global inference
    /// threshold broadcast to `[1, d_sae]` once estimated.
    pub threshold: Option<Tensor<2>>,
    /// Gated: magnitude-path bias `[1, d_sae]`.
    pub b_mag: Option<Tensor<2>>,
    /// Gated: log of the per-feature rescale of the shared encoder `[1, d_sae]`.
    pub r_mag: Option<Tensor<2>>,
    /// Skip transcoders: affine skip path `[d_out, d_in]` (SAELens `W_skip`).
    pub w_skip: Option<Tensor<2>>,
}

/// The names and tensors of a [`Params`], in a fixed order.
pub type NamedTensors = Vec<(&'static str, Tensor<2>)>;

impl Params {
    /// Zeros shaped like `self` (gradient accumulators, Adam moments).
    pub fn zeros_like(&self) -> Params {
        self.map(|t| t.zeros_like())
    }

    /// Applies `f` to every tensor present.
    pub fn map(&self, mut f: impl FnMut(&Tensor<2>) -> Tensor<2>) -> Params {
        Params {
            w_enc: f(&self.w_enc),
            b_enc: f(&self.b_enc),
            w_dec: f(&self.w_dec),
            b_dec: f(&self.b_dec),
            threshold: self.threshold.as_ref().map(&mut f),
            b_mag: self.b_mag.as_ref().map(&mut f),
            r_mag: self.r_mag.as_ref().map(&mut f),
            w_skip: self.w_skip.as_ref().map(&mut f),
        }
    }

    /// Combines two parameter sets of the same layout tensor by tensor
    /// (`other`'s missing optional tensors are treated as absent in both).
    pub fn zip_map(
        &self,
        other: &Params,
        mut f: impl FnMut(&Tensor<2>, &Tensor<2>) -> Tensor<2>,
    ) -> Params {
        fn opt(
            a: &Option<Tensor<2>>,
            b: &Option<Tensor<2>>,
            f: &mut impl FnMut(&Tensor<2>, &Tensor<2>) -> Tensor<2>,
        ) -> Option<Tensor<2>> {
            match (a, b) {
                (Some(a), Some(b)) => Some(f(a, b)),
                (Some(a), None) => Some(a.clone()),
                _ => None,
            }
        }
        Params {
            w_enc: f(&self.w_enc, &other.w_enc),
            b_enc: f(&self.b_enc, &other.b_enc),
            w_dec: f(&self.w_dec, &other.w_dec),
            b_dec: f(&self.b_dec, &other.b_dec),
            threshold: opt(&self.threshold, &other.threshold, &mut f),
            b_mag: opt(&self.b_mag, &other.b_mag, &mut f),
            r_mag: opt(&self.r_mag, &other.r_mag, &mut f),
            w_skip: opt(&self.w_skip, &other.w_skip, &mut f),
        }
    }

    /// The tensors present, with kibitzer's parameter names.
    pub fn named(&self) -> NamedTensors {
        let mut out = vec![
            ("w_enc", self.w_enc.clone()),
            ("b_enc", self.b_enc.clone()),
            ("w_dec", self.w_dec.clone()),
            ("b_dec", self.b_dec.clone()),
        ];
        for (name, t) in [
            ("threshold", &self.threshold),
            ("b_mag", &self.b_mag),
            ("r_mag", &self.r_mag),
            ("w_skip", &self.w_skip),
        ] {
            if let Some(t) = t {
                out.push((name, t.clone()));
            }
        }
        out
    }

    /// Checks every tensor present against the shapes of a dictionary of
    /// `d_in` inputs, `d_sae` features and `d_out` outputs (biases and
    /// per-feature vectors are `[1, n]` rows); the error names the first
    /// tensor that disagrees, with both shapes.
    pub fn check_dims(
        &self,
        d_in: usize,
        d_sae: usize,
        d_out: usize,
    ) -> Result<(), crate::ConfigError> {
        for (name, t) in self.named() {
            let expected = match name {
                "w_enc" => [d_in, d_sae],
                "b_enc" | "threshold" | "b_mag" | "r_mag" => [1, d_sae],
                "w_dec" => [d_sae, d_out],
                "b_dec" => [1, d_out],
                "w_skip" => [d_out, d_in],
                other => unreachable!("Params::named has no tensor {other}"),
            };
            if t.dims() != expected {
                return Err(crate::ConfigError::Params {
                    reason: format!(
                        "parameter {name} has shape {:?}, expected {expected:?} (d_in {d_in}, d_sae {d_sae}, d_out {d_out})",
                        t.dims()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Rebuilds a parameter set from [`Params::named`] output.
    pub fn from_named(mut named: NamedTensors) -> Option<Params> {
        let mut take = |name: &str| {
            named
                .iter()
                .position(|(n, _)| *n == name)
                .map(|i| named.swap_remove(i).1)
        };
        Some(Params {
            w_enc: take("w_enc")?,
            b_enc: take("b_enc")?,
            w_dec: take("w_dec")?,
            b_dec: take("b_dec")?,
            threshold: take("threshold"),
            b_mag: take("b_mag"),
            r_mag: take("r_mag"),
            w_skip: take("w_skip"),
        })
    }
}

/// A sparse autoencoder (or transcoder) of any supported architecture.
#[derive(Clone, Debug)]
pub struct Sae {
    /// Shape and behaviour.
    pub config: SaeConfig,
    /// Weights.
    pub params: Params,
}

/// Standard normal sample by Box-Muller (keeps initialisation free of extra
/// dependencies and identical on every platform for a given seed).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-300);
    let u2: f64 = rng.random::<f64>();
    ((-2.0f64 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

impl Sae {
    /// A freshly initialised dictionary, identical for a given seed on every
    /// device.
    ///
    /// Following Anthropic's April 2024 recipe (also used by dictionary_learning
    /// and SAELens): decoder rows are random directions, scaled to norm
    /// `decoder_init_norm` (0.1 for the standard SAE, 1 for the unit-norm
    /// architectures); the encoder is the decoder's transpose; biases are zero.
    /// JumpReLU thresholds start at 0.001 and gated `r_mag` at 0.
    pub fn init(config: SaeConfig, seed: u64, device: &Device) -> Sae {
        let (d_in, d_sae, d_out) = (config.d_in, config.d_sae, config.d_out);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let norm = config.architecture.decoder_init_norm();
        let mut dec = vec![0f32; d_sae * d_out];
        for row in dec.chunks_mut(d_out) {
            for v in row.iter_mut() {
                *v = normal(&mut rng);
            }
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            for v in row.iter_mut() {
                *v *= norm / n;
            }
        }
        let w_dec = crate::ops::from_host(dec.clone(), d_sae, d_out, device);
        // Encoder = decoder transpose when the widths agree; a transcoder gets an
        // independent random encoder of the same scale.
        let w_enc = if d_in == d_out {
            w_dec.clone().transpose()
        } else {
            let mut enc = vec![0f32; d_in * d_sae];
            for v in enc.iter_mut() {
                *v = normal(&mut rng) * norm / (d_in as f32).sqrt();
            }
            crate::ops::from_host(enc, d_in, d_sae, device)
        };
        let zeros_sae = || Tensor::<2>::zeros([1, d_sae], device);
        let params = Params {
            w_enc,
            b_enc: zeros_sae(),
            w_dec,
            b_dec: Tensor::zeros([1, d_out], device),
            threshold: match config.architecture {
                Architecture::JumpRelu { .. } => Some(zeros_sae().add_scalar(0.001)),
                _ => None,
            },
            b_mag: matches!(config.architecture, Architecture::Gated).then(zeros_sae),
            r_mag: matches!(config.architecture, Architecture::Gated).then(zeros_sae),
            w_skip: None,
        };
        Sae { config, params }
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.params.w_enc.device()
    }

    /// Moves the weights to another device.
    pub fn to_device(&self, device: &Device) -> Sae {
        Sae {
            config: self.config.clone(),
            params: self.params.map(|t| t.clone().to_device(device)),
        }
    }

    /// Per-row normalisation of the input, returning the normalised input and
    /// what is needed to undo it on the output.
    fn norm_in(&self, x: Tensor<2>) -> (Tensor<2>, Option<(Tensor<2>, Tensor<2>)>) {
        match self.config.row_norm {
            RowNorm::None => (x, None),
            RowNorm::ConstantNormRescale => {
                let c = row_norms(x.clone())
                    .recip()
                    .mul_scalar((self.config.d_in as f32).sqrt());
                (
                    x * c.clone(),
                    Some((c.recip(), Tensor::zeros([1, 1], &self.device()))),
                )
            }
            RowNorm::LayerNorm => {
                let d = self.config.d_in as f32;
                let mu = x.clone().mean_dim(1);
                let centred = x - mu.clone();
                let sd = (centred.clone().square().sum_dim(1) / (d - 1.0).max(1.0)).sqrt();
                (centred / sd.clone().add_scalar(1e-5), Some((sd, mu)))
            }
        }
    }

    /// What goes into the encoder matrix: `x - b_dec` or `x` (as the
    /// training step computes it).
    pub(crate) fn encoder_input(&self, x: Tensor<2>) -> Tensor<2> {
        self.step_model().encoder_input(&x)
    }

    /// Pre-activations `s @ W_enc + b_enc` of an already normalised input.
    pub(crate) fn pre_acts(&self, s: Tensor<2>) -> Tensor<2> {
        self.step_model().pre_acts(s)
    }

    /// Features of an already normalised input (inference behaviour).
    fn encode_normalised(&self, x: Tensor<2>) -> Tensor<2> {
        let p = &self.params;
        let s = self.encoder_input(x);
        match &self.config.architecture {
            Architecture::Standard => self.pre_acts(s).clamp_min(0.0),
            Architecture::Gated => {
                let gate = self.pre_acts(s.clone());
                let (b_mag, r_mag) = self.gated_params();
                let mag = s.matmul(p.w_enc.clone() * r_mag.exp()) + b_mag;
                gate.greater_elem(0.0).float() * mag.clamp_min(0.0)
            }
            Architecture::JumpRelu { .. } => {
                let pre = self.pre_acts(s);
                let theta = p
                    .threshold
                    .clone()
                    .unwrap_or_else(|| pre.zeros_like().slice([0..1]));
                pre.clone().greater(theta.expand(pre.dims())).float() * pre.clamp_min(0.0)
            }
            Architecture::TopK { k } => {
                let mut pre = self.pre_acts(s);
                if self.config.rescale_acts_by_decoder_norm {
                    pre = pre * row_norms(p.w_dec.clone()).transpose();
                }
                row_topk_mask(pre.clone(), *k) * pre.clamp_min(0.0)
            }
            Architecture::BatchTopK { k } => {
                let pre = self.pre_acts(s);
                match &p.threshold {
                    // Inference: a JumpReLU with the global threshold learnt in training.
                    Some(theta) => {
                        pre.clone()
                            .greater(theta.clone().expand(pre.dims()))
                            .float()
                            * pre.clamp_min(0.0)
                    }
                    None => {
                        let acts = pre.clamp_min(0.0);
                        let total = k * acts.dims()[0];
                        batch_topk_mask(acts.clone(), total) * acts
                    }
                }
            }
        }
    }

    /// Gated magnitude bias and log-rescale; zeros if absent (a malformed
    /// in-memory SAE cannot panic here).
    fn gated_params(&self) -> (Tensor<2>, Tensor<2>) {
        let zeros = || Tensor::zeros([1, self.config.d_sae], &self.device());
        (
            self.params.b_mag.clone().unwrap_or_else(zeros),
            self.params.r_mag.clone().unwrap_or_else(zeros),
        )
    }

    /// Decoder without per-row de-normalisation or skip path.
    fn decode_raw(&self, f: Tensor<2>) -> Tensor<2> {
        let f = if self.config.rescale_acts_by_decoder_norm
            && matches!(self.config.architecture, Architecture::TopK { .. })
        {
            f / row_norms(self.params.w_dec.clone()).transpose()
        } else {
            f
        };
        f.matmul(self.params.w_dec.clone()) + self.params.b_dec.clone()
    }

    /// Fraction of features whose decoder row has norm ~1 (used in tests and
    /// to check the unit-norm constraint after loading).
    pub fn decoder_norms(&self) -> Tensor<2> {
        row_norms(self.params.w_dec.clone())
    }
}

impl Dictionary for Sae {
    fn d_in(&self) -> usize {
        self.config.d_in
    }
    fn d_sae(&self) -> usize {
        self.config.d_sae
    }
    fn d_out(&self) -> usize {
        self.config.d_out
    }
    fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        let (x, _) = self.norm_in(x);
        self.encode_normalised(x)
    }
    fn decode(&self, features: Tensor<2>) -> Tensor<2> {
        self.decode_raw(features)
    }
    fn forward(&self, x: Tensor<2>) -> Forward {
        let (xn, undo) = self.norm_in(x.clone());
        let features = self.encode_normalised(xn);
        let mut reconstruction = self.decode_raw(features.clone());
        if let Some((scale, shift)) = undo {
            reconstruction = reconstruction * scale + shift;
        }
        if let Some(w_skip) = &self.params.w_skip {
            reconstruction = reconstruction + x.matmul(w_skip.clone().transpose());
        }
        Forward {
            features,
            reconstruction,
        }
    }
    fn decoder_directions(&self) -> Tensor<2> {
        self.params.w_dec.clone()
    }
}
