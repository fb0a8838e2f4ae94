//! Transcoders (Dunefsky et al. 2024, "Transcoders find interpretable LLM
//! feature circuits"): a sparse dictionary that reads one site and predicts
//! another, e.g. an MLP's input (`blocks.6.ln2.hook_normalized`) and its
//! output (`blocks.6.hook_mlp_out`):
//!
//! ```text
//! f = sigma(x W_enc + b_enc),   ŷ = f W_dec + b_dec  (+ x W_skip^T for a skip transcoder)
//! ```
//!
//! trained on `mean_b ||ŷ_b - y_b||^2` plus the sparsity of the
//! architecture: L1 (`Standard`), TopK, BatchTopK or JumpReLU, with the same
//! defaults as kibitzer-sae's SAEs (unit-norm decoders for all but L1, AuxK
//! for TopK/BatchTopK). A skip transcoder (Paulo et al. 2025, "Transcoders
//! beat sparse autoencoders for interpretability") adds the affine skip path
//! `x W_skip^T`, initialised to zero.
//!
//! A transcoder is a kibitzer-sae [`Sae`] with `d_out` the output width,
//! `apply_b_dec_to_input = false` and, for skip transcoders, `W_skip`: it
//! runs wherever an `Sae` runs (hooks, metrics) and saves in SAELens's
//! transcoder layouts where SAELens has one ([`crate::format`]).

use crate::error::XcoderError;
use burn::tensor::{Device, Tensor};
use kibitzer_sae::dictionary::{Dictionary, Forward};
use kibitzer_sae::{Architecture, RowNorm, Sae, SaeConfig};

/// What a transcoder reads and writes, and how it is sparse.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TranscoderConfig {
    /// `Standard` (L1), `TopK`, `BatchTopK` or `JumpRelu`.
    pub architecture: Architecture,
    /// Hook site read (SAELens's `hook_name`).
    pub input_site: String,
    /// Width of the input.
    pub d_in: usize,
    /// Hook site predicted (SAELens's `hook_name_out`).
    pub output_site: String,
    /// Width of the output.
    pub d_out: usize,
    /// Number of features.
    pub d_sae: usize,
    /// Add the affine skip path `x W_skip^T`.
    pub skip: bool,
}

impl TranscoderConfig {
    /// Checks the architecture and sizes, naming what is wrong.
    pub fn validate(&self) -> Result<(), XcoderError> {
        for (what, v) in [
            ("transcoder d_in", self.d_in),
            ("transcoder d_out", self.d_out),
            ("transcoder d_sae", self.d_sae),
        ] {
            if v == 0 {
                return Err(XcoderError::config(what, "must be at least 1"));
            }
        }
        match self.architecture {
            Architecture::TopK { k } | Architecture::BatchTopK { k }
                if k == 0 || k > self.d_sae =>
            {
                Err(XcoderError::config(
                    "transcoder k",
                    format!("must be in 1..={} (d_sae), got {k}", self.d_sae),
                ))
            }
            Architecture::JumpRelu { bandwidth } if !(bandwidth.is_finite() && bandwidth > 0.0) => {
                Err(XcoderError::config(
                    "transcoder JumpReLU bandwidth",
                    format!("must be a positive number, got {bandwidth}"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// A transcoder: an [`Sae`] that predicts `output_site` from `input_site`.
#[derive(Clone, Debug)]
pub struct Transcoder {
    /// The dictionary (`d_out` the output width, no `b_dec` subtracted from
    /// the input, `W_skip` for a skip transcoder).
    pub sae: Sae,
    /// Hook site read.
    pub input_site: String,
    /// Hook site predicted.
    pub output_site: String,
}

impl Transcoder {
    /// A freshly initialised transcoder, identical for a given seed on every
    /// device: kibitzer-sae's initialisation ([`Sae::init`]) for the
    /// architecture, and a zero `W_skip` for a skip transcoder.
    pub fn init(
        config: &TranscoderConfig,
        seed: u64,
        device: &Device,
    ) -> Result<Self, XcoderError> {
        config.validate()?;
        let sae_config = SaeConfig {
            architecture: config.architecture.clone(),
            d_in: config.d_in,
            d_sae: config.d_sae,
            d_out: config.d_out,
            apply_b_dec_to_input: false,
            rescale_acts_by_decoder_norm: false,
            row_norm: RowNorm::None,
        };
        let mut sae = Sae::init(sae_config, seed, device);
        if config.skip {
            sae.params.w_skip = Some(Tensor::zeros([config.d_out, config.d_in], device));
        }
        Ok(Self {
            sae,
            input_site: config.input_site.clone(),
            output_site: config.output_site.clone(),
        })
    }

    /// Wraps a loaded or hand-made [`Sae`], checking that it can be a
    /// transcoder (no `b_dec` subtracted from the input, no row
    /// normalisation).
    pub fn from_sae(
        sae: Sae,
        input_site: impl Into<String>,
        output_site: impl Into<String>,
    ) -> Result<Self, XcoderError> {
        let c = &sae.config;
        if c.apply_b_dec_to_input {
            return Err(XcoderError::config(
                "transcoder apply_b_dec_to_input",
                "a transcoder's b_dec lives in the output space and is never subtracted from the input; it must be false",
            ));
        }
        if c.row_norm != RowNorm::None {
            return Err(XcoderError::config(
                "transcoder row_norm",
                "transcoders do not normalise rows at inference (SAELens has no such transcoder)",
            ));
        }
        if c.rescale_acts_by_decoder_norm {
            return Err(XcoderError::config(
                "transcoder rescale_acts_by_decoder_norm",
                "not supported for transcoders",
            ));
        }
        Ok(Self {
            sae,
            input_site: input_site.into(),
            output_site: output_site.into(),
        })
    }

    /// The config that describes this transcoder.
    pub fn config(&self) -> TranscoderConfig {
        let c = &self.sae.config;
        TranscoderConfig {
            architecture: c.architecture.clone(),
            input_site: self.input_site.clone(),
            d_in: c.d_in,
            output_site: self.output_site.clone(),
            d_out: c.d_out,
            d_sae: c.d_sae,
            skip: self.sae.params.w_skip.is_some(),
        }
    }

    /// Whether it has the affine skip path.
    pub fn has_skip(&self) -> bool {
        self.sae.params.w_skip.is_some()
    }
}

impl Dictionary for Transcoder {
    fn d_in(&self) -> usize {
        self.sae.d_in()
    }
    fn d_sae(&self) -> usize {
        self.sae.d_sae()
    }
    fn d_out(&self) -> usize {
        self.sae.d_out()
    }
    fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        self.sae.encode(x)
    }
    /// The sparse path alone (without `x W_skip^T`); use
    /// [`Dictionary::forward`] for the full prediction.
    fn decode(&self, features: Tensor<2>) -> Tensor<2> {
        self.sae.decode(features)
    }
    fn forward(&self, x: Tensor<2>) -> Forward {
        self.sae.forward(x)
    }
    fn decoder_directions(&self) -> Tensor<2> {
        self.sae.decoder_directions()
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use kibitzer_sae::ops::to_host;

    fn config(arch: Architecture, skip: bool) -> TranscoderConfig {
        TranscoderConfig {
            architecture: arch,
            input_site: "blocks.0.ln2.hook_normalized".into(),
            d_in: 6,
            output_site: "blocks.0.hook_mlp_out".into(),
            d_out: 4,
            d_sae: 10,
            skip,
        }
    }

    #[test]
    fn init_gives_a_transcoder_shaped_sae() {
        let dev = Device::flex();
        let t = Transcoder::init(&config(Architecture::TopK { k: 3 }, true), 1, &dev).unwrap();
        assert_eq!((t.d_in(), t.d_out(), t.d_sae()), (6, 4, 10));
        assert!(!t.sae.config.apply_b_dec_to_input);
        let skip = t.sae.params.w_skip.clone().unwrap();
        assert_eq!(skip.dims(), [4, 6]);
        assert!(to_host(skip).iter().all(|&v| v == 0.0));
        assert_eq!(t.config(), config(Architecture::TopK { k: 3 }, true));
        let y = t.forward(Tensor::ones([2, 6], &dev)).reconstruction;
        assert_eq!(y.dims(), [2, 4]);
    }

    #[test]
    fn bad_configs_are_refused_with_the_field_named() {
        config(Architecture::Gated, true).validate().unwrap();
        let err = config(Architecture::BatchTopK { k: 11 }, false)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("1..=10"), "{err}");
        let mut c = config(Architecture::Standard, false);
        c.d_out = 0;
        assert!(c.validate().unwrap_err().to_string().contains("d_out"));
        let dev = Device::flex();
        let sae = Sae::init(SaeConfig::new(Architecture::Standard, 4, 8), 0, &dev);
        let err = Transcoder::from_sae(sae, "a", "b").unwrap_err().to_string();
        assert!(err.contains("apply_b_dec_to_input"), "{err}");
    }
}
