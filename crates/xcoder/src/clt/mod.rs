//! Cross-layer transcoders (CLT; Ameisen et al. 2025, "Circuit tracing:
//! revealing computational graphs in language models", the dictionary
//! behind circuit-tracer's attribution graphs).
//!
//! A CLT over layers `0..n` has `F` features per layer. Layer `l`'s features
//! read that layer's MLP input (e.g. `blocks.l.hook_resid_mid`) and write to
//! the MLP outputs (`blocks.t.hook_mlp_out`) of that layer and every later
//! one:
//!
//! ```text
//! a_l  = sigma(x_l W_enc^(l) + b_enc^(l))                 (JumpReLU, ReLU or BatchTopK)
//! ŷ_t  = sum_{l <= t} a_l W_dec^(l -> t) + b_dec^(t)
//! ```
//!
//! Stacking the layers side by side (`x = [x_0 | .. | x_{n-1}]`, `y = [y_0 |
//! .. | y_{n-1}]`, features layer-major), that is one transcoder of input
//! width `n d`, `n F` features and output width `n d` whose encoder is
//! block-diagonal and whose decoder is block upper-triangular (feature
//! block `l` writes output blocks `l..n`). kibitzer trains it as exactly
//! that: a transcoder through kibitzer-sae's one step and trainer, with the
//! structural zeros held at zero by [`Clt::mask_grads`]
//! ([`kibitzer_sae::train::Trainable::mask_grads`]). So every training
//! feature of the trainer (Adam, schedules, JumpReLU's thresholds and L0
//! target, BatchTopK's threshold and AuxK, checkpoints, resume) serves CLTs
//! unchanged. The step's products follow the structure
//! ([`kibitzer_sae::arch::CrossLayer`]): they skip the zero blocks, which
//! dense products would multiply too (`n` times the encoder's work, about
//! twice the decoder's).
//!
//! Sparsity is causal at inference: a feature of layer `l` is decided by
//! `x_l` alone (JumpReLU and ReLU per feature; BatchTopK, which selects
//! across the batch and all layers in training, becomes a JumpReLU with
//! its global threshold). A per-row TopK over every layer's features would
//! need all layers' inputs at once, which a replacement model does not have
//! when it runs layer by layer, so CLTs refuse `topk` and take `batchtopk`.
//!
//! Decoder rows are unit norm over all the layers a feature writes to for
//! JumpReLU and BatchTopK (kibitzer-sae's transcoder recipe); the L1
//! (`standard`) CLT is penalised by the sum of its per-layer decoder norms,
//! the crosscoders' weighting.
//!
//! Saved in circuit-tracer's layout ([`format`]).

pub mod format;

use crate::blocks::Block;
use crate::error::XcoderError;
use burn::tensor::{Device, Tensor};
use kibitzer_sae::dictionary::{Dictionary, Forward};
use kibitzer_sae::ops::{from_host, row_from_host, to_host};
use kibitzer_sae::{Architecture, Params, RowNorm, Sae, SaeConfig};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The shape and behaviour of a [`Clt`], apart from its weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CltConfig {
    /// `JumpRelu`, `BatchTopK` (its `k` counts features per row over all
    /// layers) or `Standard` (ReLU with an L1 penalty).
    pub architecture: Architecture,
    /// Layers `0..n_layers` of the model.
    pub n_layers: usize,
    /// Width of every input and output site.
    pub d_model: usize,
    /// Features per layer (circuit-tracer's `d_transcoder`).
    pub d_transcoder: usize,
    /// The hook every layer's features read, without the `blocks.{l}.`
    /// prefix (circuit-tracer's `feature_input_hook`, e.g. `hook_resid_mid`
    /// or `ln2.hook_normalized`).
    pub input_hook: String,
    /// The hook the features write to (`feature_output_hook`, e.g.
    /// `hook_mlp_out`).
    pub output_hook: String,
}

impl CltConfig {
    /// Checks the architecture and sizes, naming what is wrong.
    pub fn validate(&self) -> Result<(), XcoderError> {
        for (what, v) in [
            ("clt n_layers", self.n_layers),
            ("clt d_model", self.d_model),
            ("clt d_transcoder", self.d_transcoder),
        ] {
            if v == 0 {
                return Err(XcoderError::config(what, "must be at least 1"));
            }
        }
        for (what, hook) in [
            ("clt input_hook", &self.input_hook),
            ("clt output_hook", &self.output_hook),
        ] {
            if hook.is_empty() || hook.starts_with("blocks.") {
                return Err(XcoderError::config(
                    what,
                    format!(
                        "must name a hook inside a block without the `blocks.<l>.` prefix (e.g. hook_resid_mid), got {hook:?}"
                    ),
                ));
            }
        }
        self.d_sae().checked_mul(self.d_in()).ok_or_else(|| {
            XcoderError::config(
                "clt size",
                "n_layers x d_model x n_layers x d_transcoder overflows",
            )
        })?;
        match self.architecture {
            Architecture::Standard | Architecture::JumpRelu { .. } => Ok(()),
            Architecture::BatchTopK { k } => {
                if k == 0 || k > self.d_sae() {
                    Err(XcoderError::config(
                        "clt k",
                        format!(
                            "must be in 1..={} (n_layers x d_transcoder), got {k}",
                            self.d_sae()
                        ),
                    ))
                } else {
                    Ok(())
                }
            }
            Architecture::TopK { .. } => Err(XcoderError::config(
                "clt architecture",
                "topk selects over every layer's features at once, which a model run layer by layer cannot do; \
                 use batchtopk (k features per row on average in training, a threshold at inference) or jumprelu",
            )),
            Architecture::Gated => Err(XcoderError::config(
                "clt architecture",
                "gated CLTs are not supported; use jumprelu, batchtopk or standard",
            )),
        }
    }

    /// Width of the stacked input (and of the stacked output): `n_layers x d_model`.
    pub fn d_in(&self) -> usize {
        self.n_layers.saturating_mul(self.d_model)
    }

    /// All features: `n_layers x d_transcoder`.
    pub fn d_sae(&self) -> usize {
        self.n_layers.saturating_mul(self.d_transcoder)
    }

    /// The site layer `layer`'s features read, e.g. `blocks.2.hook_resid_mid`.
    pub fn input_site(&self, layer: usize) -> String {
        format!("blocks.{layer}.{}", self.input_hook)
    }

    /// The site layer `layer`'s reconstruction replaces, e.g. `blocks.2.hook_mlp_out`.
    pub fn output_site(&self, layer: usize) -> String {
        format!("blocks.{layer}.{}", self.output_hook)
    }

    /// The blocks of a training row: every layer's input site, then every
    /// layer's output site.
    pub fn row_blocks(&self) -> Vec<Block> {
        let inputs = (0..self.n_layers).map(|l| Block::new(self.input_site(l), self.d_model));
        let outputs = (0..self.n_layers).map(|l| Block::new(self.output_site(l), self.d_model));
        inputs.chain(outputs).collect()
    }

    /// The configuration whose [`CltConfig::row_blocks`] are `blocks`: `n`
    /// input sites `blocks.0.<in> .. blocks.{n-1}.<in>`, then the `n` output
    /// sites `blocks.0.<out> ..`, all of one width. The error names the
    /// first block out of place.
    pub fn from_blocks(
        architecture: Architecture,
        blocks: &[Block],
        d_transcoder: usize,
    ) -> Result<CltConfig, XcoderError> {
        let order = "a CLT reads 2n stores: the input site of layers 0..n in order (e.g. blocks.0.hook_resid_mid, blocks.1.hook_resid_mid, ..), then the output site of the same layers (blocks.0.hook_mlp_out, ..)";
        if blocks.len() < 2 || blocks.len() % 2 != 0 {
            return Err(XcoderError::config(
                "clt stores",
                format!("{order}; got {} stores", blocks.len()),
            ));
        }
        let n = blocks.len() / 2;
        let hook_of = |i: usize, layer: usize| -> Result<String, XcoderError> {
            let name = &blocks[i].name;
            let prefix = format!("blocks.{layer}.");
            match name.strip_prefix(&prefix) {
                Some(hook) if !hook.is_empty() => Ok(hook.to_string()),
                _ => Err(XcoderError::config(
                    "clt stores",
                    format!(
                        "store {} holds {name:?}, expected layer {layer}'s site ({prefix}<hook>); {order}",
                        i + 1
                    ),
                )),
            }
        };
        let input_hook = hook_of(0, 0)?;
        let output_hook = hook_of(n, 0)?;
        let d_model = blocks[0].width;
        for layer in 0..n {
            for (i, hook) in [(layer, &input_hook), (n + layer, &output_hook)] {
                let found = hook_of(i, layer)?;
                if &found != hook {
                    return Err(XcoderError::config(
                        "clt stores",
                        format!(
                            "store {} holds blocks.{layer}.{found}, expected blocks.{layer}.{hook} (one hook for every layer's {}); {order}",
                            i + 1,
                            if i < n { "input" } else { "output" }
                        ),
                    ));
                }
                if blocks[i].width != d_model {
                    return Err(XcoderError::shape(
                        format!("clt store {} ({})", i + 1, blocks[i].name),
                        format!("width {d_model}, the width of every site"),
                        format!("width {}", blocks[i].width),
                    ));
                }
            }
        }
        let config = CltConfig {
            architecture,
            n_layers: n,
            d_model,
            d_transcoder,
            input_hook,
            output_hook,
        };
        config.validate()?;
        Ok(config)
    }

    /// The block structure the training step's products follow.
    pub fn layout(&self) -> kibitzer_sae::arch::CrossLayer {
        kibitzer_sae::arch::CrossLayer {
            layers: self.n_layers,
            d_model: self.d_model,
            features: self.d_transcoder,
        }
    }

    /// The equivalent stacked transcoder's SAE configuration.
    fn sae_config(&self) -> SaeConfig {
        SaeConfig {
            architecture: self.architecture.clone(),
            d_in: self.d_in(),
            d_sae: self.d_sae(),
            d_out: self.d_in(),
            apply_b_dec_to_input: false,
            rescale_acts_by_decoder_norm: false,
            row_norm: RowNorm::None,
        }
    }

    /// `1` where the stacked encoder `[n d, n F]` may be non-zero (the
    /// diagonal blocks), row-major.
    fn encoder_mask(&self) -> Vec<f32> {
        let (d, f, cols) = (self.d_model, self.d_transcoder, self.d_sae());
        (0..self.d_in() * cols)
            .map(|i| ((i / cols) / d == (i % cols) / f) as u8 as f32)
            .collect()
    }

    /// `1` where the stacked decoder `[n F, n d]` may be non-zero (feature
    /// block `l`, output blocks `l..n`), row-major.
    fn decoder_mask(&self) -> Vec<f32> {
        let (d, f, cols) = (self.d_model, self.d_transcoder, self.d_in());
        (0..self.d_sae() * cols)
            .map(|i| ((i % cols) / d >= (i / cols) / f) as u8 as f32)
            .collect()
    }
}

/// A cross-layer transcoder; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Clt {
    config: CltConfig,
    /// The stacked transcoder (weights, inference for every architecture).
    sae: Sae,
    /// The structure's masks on the weights' device: encoder `[n d, n F]`,
    /// decoder `[n F, n d]`.
    masks: (Tensor<2>, Tensor<2>),
}

impl Clt {
    /// A freshly initialised CLT, identical for a given seed on every
    /// device: each feature's decoder a random direction over the layers it
    /// writes to, of the architecture's initial norm (kibitzer-sae's:
    /// unit for JumpReLU and BatchTopK, 0.1 for L1); each layer's encoder
    /// independent Gaussian entries of that norm over `sqrt(d_model)`;
    /// biases zero; JumpReLU thresholds 0.001 (as [`Sae::init`]).
    pub fn init(config: CltConfig, seed: u64, device: &Device) -> Result<Clt, XcoderError> {
        config.validate()?;
        let (n, d, f) = (config.n_layers, config.d_model, config.d_transcoder);
        let norm = config.architecture.decoder_init_norm();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut normal = || -> f32 { rng.sample(rand_distr::StandardNormal) };
        let width = n * d;
        let mut dec = vec![0f32; n * f * width];
        for (j, row) in dec.chunks_mut(width).enumerate() {
            let written = &mut row[(j / f) * d..];
            written.iter_mut().for_each(|v| *v = normal());
            let len = written.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            written.iter_mut().for_each(|v| *v *= norm / len);
        }
        let mut enc = vec![0f32; width * n * f];
        let scale = norm / (d as f32).sqrt();
        for (i, row) in enc.chunks_mut(n * f).enumerate() {
            let layer = i / d;
            row[layer * f..(layer + 1) * f]
                .iter_mut()
                .for_each(|v| *v = normal() * scale);
        }
        let zeros_sae = || Tensor::<2>::zeros([1, n * f], device);
        let params = Params {
            w_enc: from_host(enc, width, n * f, device),
            b_enc: zeros_sae(),
            w_dec: from_host(dec, n * f, width, device),
            b_dec: Tensor::zeros([1, width], device),
            threshold: matches!(config.architecture, Architecture::JumpRelu { .. })
                .then(|| zeros_sae().add_scalar(0.001)),
            b_mag: None,
            r_mag: None,
            w_skip: None,
        };
        Clt::from_params(config, params)
    }

    /// A CLT with these weights (stacked, see the [module
    /// documentation](self)), checked against the configuration: shapes,
    /// the tensors the architecture needs, and zeros outside the structure.
    pub fn from_params(config: CltConfig, params: Params) -> Result<Clt, XcoderError> {
        config.validate()?;
        // The masks need the shapes checked first (a wrong width would
        // only surface as a broadcast error).
        params.check_dims(config.d_in(), config.d_sae(), config.d_in())?;
        let device = params.w_enc.device();
        let masks = (
            from_host(
                config.encoder_mask(),
                config.d_in(),
                config.d_sae(),
                &device,
            ),
            from_host(
                config.decoder_mask(),
                config.d_sae(),
                config.d_in(),
                &device,
            ),
        );
        let clt = Clt {
            sae: Sae {
                config: config.sae_config(),
                params,
            },
            config,
            masks,
        };
        clt.check()?;
        Ok(clt)
    }

    /// Checks the weights against the configuration: shapes, the tensors
    /// the architecture needs, and zeros outside the structure (with the
    /// masks this CLT already holds).
    pub fn check(&self) -> Result<(), XcoderError> {
        let (config, params) = (&self.config, &self.sae.params);
        params.check_dims(config.d_in(), config.d_sae(), config.d_in())?;
        match (&params.threshold, &config.architecture) {
            (None, Architecture::JumpRelu { .. }) => {
                return Err(XcoderError::config(
                    "clt parameters",
                    "a JumpReLU CLT needs a threshold",
                ));
            }
            (Some(_), Architecture::Standard) => {
                return Err(XcoderError::config(
                    "clt parameters",
                    "an L1 (standard) CLT has no threshold",
                ));
            }
            _ => {}
        }
        if params.b_mag.is_some() || params.r_mag.is_some() || params.w_skip.is_some() {
            return Err(XcoderError::config(
                "clt parameters",
                "a CLT has no gated parameters (b_mag, r_mag) and no skip path (w_skip)",
            ));
        }
        for (what, w, mask) in [
            ("encoder", &params.w_enc, &self.masks.0),
            ("decoder", &params.w_dec, &self.masks.1),
        ] {
            let outside = to_host(
                (w.clone() * (mask.clone().neg().add_scalar(1.0)))
                    .abs()
                    .max()
                    .reshape([1, 1]),
            )[0];
            if outside != 0.0 {
                return Err(XcoderError::config(
                    "clt parameters",
                    format!(
                        "the stacked {what} has weights outside the CLT's structure (largest |w| there: {outside}); \
                         the encoder must be block-diagonal, the decoder of layer l's features zero before layer l"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Shape and behaviour.
    pub fn config(&self) -> &CltConfig {
        &self.config
    }

    /// The stacked weights.
    pub fn params(&self) -> &Params {
        &self.sae.params
    }

    /// The stacked weights, mutably (the optimiser writes here; keep the
    /// structure: see [`Clt::mask_grads`]).
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.sae.params
    }

    /// The stacked transcoder as an [`Sae`] of input and output width `n
    /// d` (what the training step reads).
    pub fn stacked(&self) -> &Sae {
        &self.sae
    }

    /// `grads` with the structural zeros' gradients zeroed.
    pub fn mask_grads(&self, mut grads: Params) -> Params {
        grads.w_enc = grads.w_enc * self.masks.0.clone();
        grads.w_dec = grads.w_dec * self.masks.1.clone();
        grads
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.sae.params.w_enc.device()
    }

    /// Moves the weights to another device.
    pub fn to_device(&self, device: &Device) -> Clt {
        Clt {
            config: self.config.clone(),
            sae: self.sae.to_device(device),
            masks: (
                self.masks.0.clone().to_device(device),
                self.masks.1.clone().to_device(device),
            ),
        }
    }

    fn check_layer(&self, layer: usize) -> Result<(), XcoderError> {
        if layer < self.config.n_layers {
            Ok(())
        } else {
            Err(XcoderError::config(
                "clt layer",
                format!(
                    "{layer} is not a layer of this CLT (layers 0..{})",
                    self.config.n_layers
                ),
            ))
        }
    }

    /// Layer `layer`'s encoder, `[d_model, d_transcoder]`.
    pub fn encoder(&self, layer: usize) -> Result<Tensor<2>, XcoderError> {
        self.check_layer(layer)?;
        let (d, f) = (self.config.d_model, self.config.d_transcoder);
        Ok(self
            .sae
            .params
            .w_enc
            .clone()
            .slice([layer * d..(layer + 1) * d, layer * f..(layer + 1) * f]))
    }

    /// Layer `layer`'s features' decoders to layers `layer..n` side by
    /// side, `[d_transcoder, (n - layer) d_model]` (circuit-tracer's
    /// `W_dec_{layer}` flattened).
    pub fn decoder(&self, layer: usize) -> Result<Tensor<2>, XcoderError> {
        self.check_layer(layer)?;
        let (n, d, f) = (
            self.config.n_layers,
            self.config.d_model,
            self.config.d_transcoder,
        );
        Ok(self
            .sae
            .params
            .w_dec
            .clone()
            .slice([layer * f..(layer + 1) * f, layer * d..n * d]))
    }

    /// Layer `layer`'s slice `[1, width]` of a stacked row `[1, n width]`.
    fn layer_row(row: &Tensor<2>, layer: usize, width: usize) -> Tensor<2> {
        row.clone()
            .slice([0..1, layer * width..(layer + 1) * width])
    }

    /// The features of layer `layer` from that layer's input `x [B,
    /// d_model]` alone (what a replacement model computes as it reaches the
    /// layer): `[B, d_transcoder]`. A BatchTopK CLT needs its inference
    /// threshold (estimated in training).
    pub fn encode_layer(&self, layer: usize, x: Tensor<2>) -> Result<Tensor<2>, XcoderError> {
        let f = self.config.d_transcoder;
        let p = &self.sae.params;
        let pre = x.matmul(self.encoder(layer)?) + Self::layer_row(&p.b_enc, layer, f);
        Ok(match (&self.config.architecture, &p.threshold) {
            (Architecture::Standard, _) => pre.clamp_min(0.0),
            (_, Some(theta)) => {
                let theta = Self::layer_row(theta, layer, f);
                pre.clone().greater(theta.expand(pre.dims())).float() * pre.clamp_min(0.0)
            }
            (arch, None) => {
                return Err(XcoderError::config(
                    "clt parameters",
                    format!(
                        "a {} CLT without a threshold cannot encode one layer at a time (a BatchTopK CLT gets its threshold in training, after threshold_start_step)",
                        arch.name()
                    ),
                ));
            }
        })
    }

    /// Layer `layer`'s reconstruction `[B, d_model]` from the features of
    /// layers `0..=layer` (`features[l]` is layer `l`'s, `[B,
    /// d_transcoder]`; later entries are ignored): `sum_{l <= layer} a_l
    /// W_dec^(l -> layer) + b_dec^(layer)`.
    pub fn decode_layer(
        &self,
        layer: usize,
        features: &[Tensor<2>],
    ) -> Result<Tensor<2>, XcoderError> {
        self.check_layer(layer)?;
        if features.len() <= layer {
            return Err(XcoderError::config(
                "clt features",
                format!(
                    "decoding layer {layer} needs the features of layers 0..={layer}, got {} layers",
                    features.len()
                ),
            ));
        }
        let (d, f) = (self.config.d_model, self.config.d_transcoder);
        let p = &self.sae.params;
        let mut y = Self::layer_row(&p.b_dec, layer, d);
        for (source, a) in features.iter().enumerate().take(layer + 1) {
            let w = p
                .w_dec
                .clone()
                .slice([source * f..(source + 1) * f, layer * d..(layer + 1) * d]);
            y = a.clone().matmul(w) + y;
        }
        Ok(y)
    }

    /// The CLT for raw activations, from weights trained on rows whose
    /// blocks were multiplied by `scales` (one per row block: the `n` input
    /// sites, then the `n` output sites). Exact: layer `l`'s encoder rows
    /// are multiplied by its input scale, output block `t`'s decoder
    /// columns and `b_dec` divided by its output scale; biases of the
    /// features and thresholds are unchanged.
    pub fn fold_scales(&self, scales: &[f32]) -> Result<Clt, XcoderError> {
        let (n, d) = (self.config.n_layers, self.config.d_model);
        if scales.len() != 2 * n || scales.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(XcoderError::shape(
                "clt activation scales",
                format!("{} finite positive numbers, one per row block", 2 * n),
                format!("{scales:?}"),
            ));
        }
        let spread =
            |s: &[f32]| -> Vec<f32> { s.iter().flat_map(|&c| std::iter::repeat_n(c, d)).collect() };
        let device = self.device();
        let input = from_host(spread(&scales[..n]), n * d, 1, &device);
        let output = row_from_host(spread(&scales[n..]), &device);
        let mut params = self.sae.params.clone();
        params.w_enc = params.w_enc * input;
        params.w_dec = params.w_dec / output.clone();
        params.b_dec = params.b_dec / output;
        Clt::from_params(self.config.clone(), params)
    }
}

impl Dictionary for Clt {
    fn d_in(&self) -> usize {
        self.config.d_in()
    }
    fn d_sae(&self) -> usize {
        self.config.d_sae()
    }
    fn d_out(&self) -> usize {
        self.config.d_in()
    }
    /// Features of stacked inputs `[B, n d] -> [B, n F]`, layer-major.
    fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        self.sae.encode(x)
    }
    /// Stacked reconstructions `[B, n F] -> [B, n d]`.
    fn decode(&self, features: Tensor<2>) -> Tensor<2> {
        self.sae.decode(features)
    }
    fn forward(&self, x: Tensor<2>) -> Forward {
        self.sae.forward(x)
    }
    fn decoder_directions(&self) -> Tensor<2> {
        self.sae.params.w_dec.clone()
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
