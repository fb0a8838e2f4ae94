//! [`Xcoder`]: a transcoder or a crosscoder, as the trainer, the file
//! formats and the command line see them.
//!
//! Both read rows made of blocks side by side (see [`crate::blocks`]): a
//! transcoder's training row is `[x | y]` (its input site, then the site it
//! predicts), a crosscoder's is `[x_1 | .. | x_n]`, read and reconstructed
//! whole. [`Xcoder::row_blocks`] lists the blocks of a training row and
//! [`Xcoder::split`] cuts a batch of rows into the dictionary's input and
//! target.

use crate::blocks::{self, Block};
use crate::clt::{Clt, CltConfig};
use crate::crosscoder::{Crosscoder, CrosscoderConfig};
use crate::error::XcoderError;
use crate::transcoder::{Transcoder, TranscoderConfig};
use burn::tensor::{Device, Tensor};
use kibitzer_sae::arch::{StepInputs, StepModel, StepOutput};
use kibitzer_sae::dictionary::{Dictionary, Forward};
use kibitzer_sae::{Architecture, Params, RowNorm, Sae, SaeConfig};

/// Which kind of dictionary, for files and the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Reads one site, predicts another.
    Transcoder,
    /// Reads and reconstructs several blocks.
    Crosscoder,
    /// A cross-layer transcoder: each layer's features read that layer and
    /// write to it and every later layer.
    Clt,
}

impl Kind {
    /// `transcoder` or `crosscoder`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Transcoder => "transcoder",
            Kind::Crosscoder => "crosscoder",
            Kind::Clt => "clt",
        }
    }
}

/// The configuration of an [`Xcoder`]: what [`XcoderConfig::init`] builds
/// and what run manifests and checkpoints record.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum XcoderConfig {
    /// A transcoder.
    Transcoder(TranscoderConfig),
    /// A crosscoder.
    Crosscoder(CrosscoderConfig),
    /// A cross-layer transcoder.
    Clt(CltConfig),
}

impl XcoderConfig {
    /// Checks the configuration, naming what is wrong.
    pub fn validate(&self) -> Result<(), XcoderError> {
        match self {
            XcoderConfig::Transcoder(c) => c.validate(),
            XcoderConfig::Crosscoder(c) => c.validate(),
            XcoderConfig::Clt(c) => c.validate(),
        }
    }

    /// A freshly initialised dictionary, identical for a given seed.
    pub fn init(&self, seed: u64, device: &Device) -> Result<Xcoder, XcoderError> {
        Ok(match self {
            XcoderConfig::Transcoder(c) => Xcoder::Transcoder(Transcoder::init(c, seed, device)?),
            XcoderConfig::Crosscoder(c) => {
                Xcoder::Crosscoder(Crosscoder::init(c.clone(), seed, device)?)
            }
            XcoderConfig::Clt(c) => Xcoder::Clt(Clt::init(c.clone(), seed, device)?),
        })
    }

    /// Transcoder or crosscoder.
    pub fn kind(&self) -> Kind {
        match self {
            XcoderConfig::Transcoder(_) => Kind::Transcoder,
            XcoderConfig::Crosscoder(_) => Kind::Crosscoder,
            XcoderConfig::Clt(_) => Kind::Clt,
        }
    }

    /// The dictionary with these settings and the given weights (checked
    /// against the shapes the configuration implies).
    pub fn with_params(
        &self,
        params: Params,
        block_scales: Vec<f32>,
    ) -> Result<Xcoder, XcoderError> {
        self.validate()?;
        let xcoder = match self {
            XcoderConfig::Transcoder(c) => {
                let sae = Sae {
                    config: SaeConfig {
                        architecture: c.architecture.clone(),
                        d_in: c.d_in,
                        d_sae: c.d_sae,
                        d_out: c.d_out,
                        apply_b_dec_to_input: false,
                        rescale_acts_by_decoder_norm: false,
                        row_norm: RowNorm::None,
                    },
                    params,
                };
                Xcoder::Transcoder(Transcoder::from_sae(sae, &c.input_site, &c.output_site)?)
            }
            XcoderConfig::Crosscoder(c) => {
                if block_scales.len() != c.blocks.len() {
                    return Err(XcoderError::shape(
                        "crosscoder block_scales",
                        format!("{} values, one per block", c.blocks.len()),
                        format!("{} values", block_scales.len()),
                    ));
                }
                Xcoder::Crosscoder(Crosscoder {
                    config: c.clone(),
                    params,
                    block_scales,
                })
            }
            XcoderConfig::Clt(c) => {
                if block_scales.iter().any(|&s| s != 1.0) {
                    return Err(XcoderError::config(
                        "clt block_scales",
                        "a CLT keeps its weights in raw units (scales folded in), so its scales are all 1",
                    ));
                }
                // Checked (shapes, tensors, structure) as it is built.
                return Ok(Xcoder::Clt(Clt::from_params(c.clone(), params)?));
            }
        };
        xcoder.check_shapes()?;
        Ok(xcoder)
    }
}

/// A transcoder, a crosscoder or a cross-layer transcoder.
#[derive(Clone, Debug)]
pub enum Xcoder {
    /// A transcoder (an [`kibitzer_sae::Sae`] with its sites).
    Transcoder(Transcoder),
    /// A crosscoder.
    Crosscoder(Crosscoder),
    /// A cross-layer transcoder.
    Clt(Clt),
}

impl From<Clt> for Xcoder {
    fn from(c: Clt) -> Self {
        Xcoder::Clt(c)
    }
}

impl From<Transcoder> for Xcoder {
    fn from(t: Transcoder) -> Self {
        Xcoder::Transcoder(t)
    }
}

impl From<Crosscoder> for Xcoder {
    fn from(c: Crosscoder) -> Self {
        Xcoder::Crosscoder(c)
    }
}

impl Xcoder {
    /// The configuration that rebuilds this dictionary's shape.
    pub fn config(&self) -> XcoderConfig {
        match self {
            Xcoder::Transcoder(t) => XcoderConfig::Transcoder(t.config()),
            Xcoder::Crosscoder(c) => XcoderConfig::Crosscoder(c.config.clone()),
            Xcoder::Clt(c) => XcoderConfig::Clt(c.config().clone()),
        }
    }

    /// Checks every parameter's shape against the configuration, and that
    /// exactly the optional tensors the architecture uses are present.
    pub fn check_shapes(&self) -> Result<(), XcoderError> {
        if let Xcoder::Clt(c) = self {
            return c.check();
        }
        let (d_in, d_out, d_sae) = (self.d_in(), self.d_out(), Xcoder::d_sae(self));
        let p = self.params();
        let arch = self.architecture().clone();
        let threshold_needed = matches!(arch, Architecture::JumpRelu { .. });
        let threshold_allowed = threshold_needed || matches!(arch, Architecture::BatchTopK { .. });
        match (&p.threshold, threshold_allowed) {
            (Some(_), true) => {}
            (Some(_), false) => {
                return Err(XcoderError::config(
                    "parameters",
                    format!("a {} dictionary has no threshold", arch.name()),
                ));
            }
            (None, _) if threshold_needed => {
                return Err(XcoderError::config(
                    "parameters",
                    "a JumpReLU dictionary needs a threshold",
                ));
            }
            _ => {}
        }
        if p.w_skip.is_some() {
            if self.kind() == Kind::Crosscoder {
                return Err(XcoderError::config(
                    "parameters",
                    "crosscoders have no skip path (w_skip)",
                ));
            }
        }
        let gated = matches!(arch, Architecture::Gated);
        if (p.b_mag.is_some() && p.r_mag.is_some()) != gated
            || p.b_mag.is_some() != p.r_mag.is_some()
        {
            return Err(XcoderError::config(
                "parameters",
                if gated {
                    "a gated dictionary needs b_mag and r_mag".to_string()
                } else {
                    format!("a {} dictionary has no b_mag or r_mag", arch.name())
                },
            ));
        }
        Ok(p.check_dims(d_in, d_sae, d_out)?)
    }

    /// Transcoder or crosscoder.
    pub fn kind(&self) -> Kind {
        match self {
            Xcoder::Transcoder(_) => Kind::Transcoder,
            Xcoder::Crosscoder(_) => Kind::Crosscoder,
            Xcoder::Clt(_) => Kind::Clt,
        }
    }

    /// The weights.
    pub fn params(&self) -> &Params {
        match self {
            Xcoder::Transcoder(t) => &t.sae.params,
            Xcoder::Crosscoder(c) => &c.params,
            Xcoder::Clt(c) => c.params(),
        }
    }

    /// The weights, mutably (the optimiser writes here).
    pub fn params_mut(&mut self) -> &mut Params {
        match self {
            Xcoder::Transcoder(t) => &mut t.sae.params,
            Xcoder::Crosscoder(c) => &mut c.params,
            Xcoder::Clt(c) => c.params_mut(),
        }
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        match self {
            Xcoder::Transcoder(t) => &t.sae.config.architecture,
            Xcoder::Crosscoder(c) => &c.config.architecture,
            Xcoder::Clt(c) => &c.config().architecture,
        }
    }

    /// Number of features.
    pub fn d_sae(&self) -> usize {
        match self {
            Xcoder::Transcoder(t) => t.sae.config.d_sae,
            Xcoder::Crosscoder(c) => c.config.d_sae,
            Xcoder::Clt(c) => c.config().d_sae(),
        }
    }

    /// The blocks of a training row: `[input, output]` for a transcoder, the
    /// crosscoder's blocks otherwise.
    pub fn row_blocks(&self) -> Vec<Block> {
        match self {
            Xcoder::Transcoder(t) => vec![
                Block::new(t.input_site.clone(), t.sae.config.d_in),
                Block::new(t.output_site.clone(), t.sae.config.d_out),
            ],
            Xcoder::Crosscoder(c) => c.config.blocks.clone(),
            Xcoder::Clt(c) => c.config().row_blocks(),
        }
    }

    /// Width of a training row.
    pub fn row_width(&self) -> usize {
        blocks::total_width(&self.row_blocks())
    }

    /// Widths of the output blocks (one FVU each).
    pub fn output_widths(&self) -> Vec<usize> {
        match self {
            Xcoder::Transcoder(t) => vec![t.sae.config.d_out],
            Xcoder::Crosscoder(c) => c.config.widths(),
            Xcoder::Clt(c) => vec![c.config().d_model; c.config().n_layers],
        }
    }

    /// Cuts a batch of training rows `[B, row_width]` into input and target.
    pub fn split(&self, rows: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        match self {
            Xcoder::Transcoder(t) => {
                let d_in = t.sae.config.d_in;
                let d_out = t.sae.config.d_out;
                (rows.clone().narrow(1, 0, d_in), rows.narrow(1, d_in, d_out))
            }
            Xcoder::Crosscoder(_) => (rows.clone(), rows),
            Xcoder::Clt(c) => {
                let width = c.config().d_in();
                (
                    rows.clone().narrow(1, 0, width),
                    rows.narrow(1, width, width),
                )
            }
        }
    }

    /// Whether training keeps decoder rows at unit norm (transcoders with
    /// every architecture but L1, as kibitzer-sae's SAEs; crosscoders never:
    /// their penalty and selection are weighted by decoder norms instead).
    pub fn unit_norm_decoder(&self) -> bool {
        match self {
            Xcoder::Transcoder(t) => t.sae.config.architecture.unit_norm_decoder(),
            Xcoder::Crosscoder(_) => false,
            Xcoder::Clt(c) => c.config().architecture.unit_norm_decoder(),
        }
    }

    /// This dictionary as a training step sees it
    /// ([`kibitzer_sae::arch::step`]: TopK and BatchTopK fused and sparse on
    /// the CPU): its output blocks, and selection by decoder weight for a
    /// crosscoder, whose decoder rows are free.
    pub fn step_model(&self) -> StepModel<'_> {
        let out_blocks = match self {
            Xcoder::Transcoder(t) => std::slice::from_ref(&t.sae.config.d_out).into(),
            Xcoder::Crosscoder(c) => c.config.widths().into(),
            // One FVU per layer in the log; the L1 CLT's penalty weighs the
            // sum of the per-layer decoder norms.
            Xcoder::Clt(_) => self.output_widths().into(),
        };
        StepModel {
            params: self.params(),
            architecture: self.architecture(),
            out_blocks,
            select_by_norm: matches!(self, Xcoder::Crosscoder(_)),
            apply_b_dec_to_input: false,
            cross_layer: match self {
                Xcoder::Clt(c) => Some(c.config().layout()),
                _ => None,
            },
        }
    }

    /// Loss and gradients of one batch (input `x`, target `y`, both
    /// normalised as in training): kibitzer-sae's step for this shape.
    pub fn step(&self, x: Tensor<2>, y: Tensor<2>, inputs: &StepInputs) -> StepOutput {
        kibitzer_sae::arch::step(&self.step_model(), x, y, inputs)
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.params().w_enc.device()
    }

    /// Moves the weights to another device.
    pub fn to_device(&self, device: &Device) -> Xcoder {
        match self {
            Xcoder::Transcoder(t) => Xcoder::Transcoder(Transcoder {
                sae: t.sae.to_device(device),
                ..t.clone()
            }),
            Xcoder::Crosscoder(c) => Xcoder::Crosscoder(c.to_device(device)),
            Xcoder::Clt(c) => Xcoder::Clt(c.to_device(device)),
        }
    }

    /// The scale of each row block the weights expect (see
    /// [`crate::train`]): a crosscoder's [`Crosscoder::block_scales`]; ones
    /// for a transcoder, whose saved weights are always folded to raw units.
    pub fn row_scales(&self) -> Vec<f32> {
        match self {
            Xcoder::Transcoder(_) => vec![1.0; 2],
            Xcoder::Crosscoder(c) => c.block_scales.clone(),
            Xcoder::Clt(c) => vec![1.0; 2 * c.config().n_layers],
        }
    }

    /// The dictionary for raw activations, from weights trained on rows
    /// whose blocks were multiplied by `scales` (one per row block): a
    /// transcoder is folded exactly ([`kibitzer_sae::Sae::fold_activation_scale`]),
    /// a crosscoder records the scales ([`Crosscoder::block_scales`]) and
    /// folds them where that is exact ([`Crosscoder::folded`]).
    pub fn for_raw_activations(&self, scales: &[f32]) -> Result<Xcoder, XcoderError> {
        let blocks = self.row_blocks();
        if scales.len() != blocks.len() || scales.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(XcoderError::shape(
                "activation scales",
                format!(
                    "{} finite positive numbers, one per row block",
                    blocks.len()
                ),
                format!("{scales:?}"),
            ));
        }
        Ok(match self {
            Xcoder::Transcoder(t) => Xcoder::Transcoder(Transcoder {
                sae: t.sae.fold_activation_scale(scales[0], scales[1]),
                ..t.clone()
            }),
            Xcoder::Crosscoder(c) => {
                let mut c = c.clone();
                c.block_scales = scales.to_vec();
                Xcoder::Crosscoder(c.folded())
            }
            Xcoder::Clt(c) => Xcoder::Clt(c.fold_scales(scales)?),
        })
    }
}

impl Dictionary for Xcoder {
    fn d_in(&self) -> usize {
        match self {
            Xcoder::Transcoder(t) => t.d_in(),
            Xcoder::Crosscoder(c) => c.d_in(),
            Xcoder::Clt(c) => c.d_in(),
        }
    }
    fn d_sae(&self) -> usize {
        Xcoder::d_sae(self)
    }
    fn d_out(&self) -> usize {
        match self {
            Xcoder::Transcoder(t) => t.d_out(),
            Xcoder::Crosscoder(c) => c.d_out(),
            Xcoder::Clt(c) => c.d_out(),
        }
    }
    fn encode(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Xcoder::Transcoder(t) => t.encode(x),
            Xcoder::Crosscoder(c) => c.encode(x),
            Xcoder::Clt(c) => c.encode(x),
        }
    }
    fn decode(&self, features: Tensor<2>) -> Tensor<2> {
        match self {
            Xcoder::Transcoder(t) => t.decode(features),
            Xcoder::Crosscoder(c) => c.decode(features),
            Xcoder::Clt(c) => c.decode(features),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Forward {
        match self {
            Xcoder::Transcoder(t) => t.forward(x),
            Xcoder::Crosscoder(c) => c.forward(x),
            Xcoder::Clt(c) => c.forward(x),
        }
    }
    fn decoder_directions(&self) -> Tensor<2> {
        match self {
            Xcoder::Transcoder(t) => t.decoder_directions(),
            Xcoder::Crosscoder(c) => c.decoder_directions(),
            Xcoder::Clt(c) => c.decoder_directions(),
        }
    }
}
