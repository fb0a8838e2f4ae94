//! [`Trainable`]: what the shared trainer ([`DictTrainer`](super::DictTrainer))
//! needs to know about a dictionary, so that SAEs, transcoders and
//! crosscoders are optimised by one implementation of Adam, the schedules,
//! the decoder constraint, dead-feature tracking, AuxK, the BatchTopK
//! threshold, p-annealing and resampling.
//!
//! A dictionary reads training rows made of blocks side by side and
//! [splits](Trainable::split) them into the input `x` and the target `y`
//! its step is given: an SAE's row is `x` and its target `x` again; a
//! transcoder's row is `[x | y]`; a crosscoder's is its blocks, read and
//! reconstructed whole. Everything else the trainer needs (weights,
//! architecture, output blocks, selection) is the dictionary's
//! [`StepModel`].

use super::BoxError;
use crate::arch::{Architecture, StepModel};
use crate::error::ConfigError;
use crate::sae::{Params, Sae, SaeConfig};
use burn::tensor::{Device, Tensor};
use std::path::Path;

/// A dictionary the shared trainer can optimise. `Send`, because a
/// [`Sweep`](super::Sweep) on the CPU steps its members on several threads
/// ([`Sweep::step_batch`](super::Sweep::step_batch)).
pub trait Trainable: Clone + std::fmt::Debug + Send {
    /// What [`Trainable::check`] and the trainer's constructor return: a
    /// [`ConfigError`] for a training setting, or the dictionary's own
    /// error for its shapes.
    type Error: From<ConfigError> + std::error::Error + Send + Sync + 'static;

    /// Checks the dictionary's configuration and parameter shapes, naming
    /// what is wrong.
    fn check(&self) -> Result<(), Self::Error>;

    /// The dictionary as a training step sees it.
    fn step_model(&self) -> StepModel<'_>;

    /// The weights, for the optimiser to write.
    fn params_mut(&mut self) -> &mut Params;

    /// Whether training keeps decoder rows at unit norm (by gradient
    /// projection and renormalisation after each step).
    fn unit_norm_decoder(&self) -> bool;

    /// The gradients with every weight the dictionary's structure fixes at
    /// zero left out (unchanged by default: every weight is free). A
    /// cross-layer transcoder's encoder is block-diagonal and its decoder
    /// block-triangular; zeroing those gradients before clipping and Adam
    /// keeps the structural zeros exactly zero (Adam's update of a weight
    /// whose gradients have all been zero is zero).
    fn mask_grads(&self, grads: Params) -> Params {
        grads
    }

    /// Cuts a batch of training rows `[B, row width]` into the input `x
    /// [B, d_in]` and the target `y [B, d_out]`.
    fn split(&self, rows: Tensor<2>) -> (Tensor<2>, Tensor<2>);

    /// Whether the target is the input (SAEs and crosscoders, not
    /// transcoders): resampling a dead feature gives its encoder and
    /// decoder the direction of an input row, which is only a direction
    /// of the output space when the two are one.
    fn reconstructs_input(&self) -> bool;

    /// The same dictionary with its weights on `device`.
    fn to_device(&self, device: &Device) -> Self;

    /// What a sweep's manifest records of the dictionary: everything but
    /// the weights.
    type Config: serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug;

    /// The key of [`Trainable::Config`] in a member of `sweep.json` (`sae`,
    /// `xcoder`).
    const CONFIG_KEY: &'static str;

    /// The dictionary's configuration.
    fn config(&self) -> Self::Config;

    /// The dictionary of `config` with a checkpoint's weights; `meta` looks
    /// up the checkpoint's metadata (what [`Trainable::dictionary_metadata`]
    /// wrote). The error says what is wrong.
    fn from_checkpoint(
        config: Self::Config,
        params: Params,
        meta: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Self::Error>;

    /// What the dictionary keeps in a checkpoint's metadata beside its
    /// weights (nothing, unless it holds more than [`Params`]).
    fn dictionary_metadata(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Widths of the blocks of a training row, each scaled on its own when
    /// activations are normalised: `[d_in]` for an SAE.
    fn row_widths(&self) -> Vec<usize>;

    /// The dictionary for raw activations, from weights trained on rows
    /// whose blocks were multiplied by `scales` (one per row block).
    fn for_raw_activations(&self, scales: &[f32]) -> Result<Self, Self::Error>;

    /// Saves the dictionary in `dir` in the layout other tools open (an
    /// SAE: SAELens's), with `metadata` recorded beside the weights.
    fn save(&self, dir: &Path, metadata: serde_json::Value) -> Result<(), BoxError>;

    /// The weights.
    fn params(&self) -> &Params {
        self.step_model().params
    }

    /// Number of features.
    fn d_sae(&self) -> usize {
        self.params().w_enc.dims()[1]
    }

    /// The device the weights live on.
    fn device(&self) -> Device {
        self.params().w_enc.device()
    }
}

impl Trainable for Sae {
    type Error = ConfigError;

    fn check(&self) -> Result<(), ConfigError> {
        self.config.validate()
    }

    fn step_model(&self) -> StepModel<'_> {
        Sae::step_model(self)
    }

    fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    fn unit_norm_decoder(&self) -> bool {
        self.config.architecture.unit_norm_decoder()
    }

    fn split(&self, rows: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        (rows.clone(), rows)
    }

    fn reconstructs_input(&self) -> bool {
        self.config.d_out == self.config.d_in
    }

    fn to_device(&self, device: &Device) -> Self {
        Sae::to_device(self, device)
    }

    type Config = SaeConfig;

    const CONFIG_KEY: &'static str = "sae";

    fn config(&self) -> SaeConfig {
        self.config.clone()
    }

    fn from_checkpoint(
        config: SaeConfig,
        params: Params,
        _meta: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // A checkpoint beside a sweep.json of other sizes (an edited or
        // mixed-up directory) is refused here, not at the first product.
        params.check_dims(config.d_in, config.d_sae, config.d_out)?;
        let needs = |present: bool, what: &str| {
            if present {
                Ok(())
            } else {
                Err(ConfigError::Params {
                    reason: format!(
                        "a {} SAE needs {what}, which the checkpoint lacks",
                        config.architecture.name()
                    ),
                })
            }
        };
        match config.architecture {
            Architecture::Gated => needs(
                params.b_mag.is_some() && params.r_mag.is_some(),
                "b_mag and r_mag",
            )?,
            Architecture::JumpRelu { .. } => needs(params.threshold.is_some(), "threshold")?,
            _ => {}
        }
        Ok(Sae { config, params })
    }

    fn row_widths(&self) -> Vec<usize> {
        vec![self.config.d_in]
    }

    fn for_raw_activations(&self, scales: &[f32]) -> Result<Self, ConfigError> {
        match scales {
            [c] => Ok(self.fold_activation_scale(*c, *c)),
            _ => Err(ConfigError::Sae {
                field: "activation scales",
                reason: format!(
                    "an SAE reads one row block, but {} scales were given",
                    scales.len()
                ),
            }),
        }
    }

    fn save(&self, dir: &Path, metadata: serde_json::Value) -> Result<(), BoxError> {
        let options = crate::saelens::SaveOptions {
            metadata,
            ..Default::default()
        };
        crate::saelens::save(self, dir, &options)?;
        Ok(())
    }
}

#[cfg(test)]
mod checkpoint_shape_tests {
    use super::*;

    #[test]
    fn an_sae_checkpoint_must_fit_its_config() {
        let device = Device::flex();
        let sae = Sae::init(SaeConfig::new(Architecture::Standard, 8, 16), 0, &device);
        let meta = |_: &str| None;
        let fits =
            <Sae as Trainable>::from_checkpoint(sae.config.clone(), sae.params.clone(), &meta);
        assert!(fits.is_ok());
        let wider = SaeConfig::new(Architecture::Standard, 8, 32);
        let e = <Sae as Trainable>::from_checkpoint(wider, sae.params.clone(), &meta).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("w_enc has shape [8, 16], expected [8, 32]"),
            "{e}"
        );
        let jumprelu = SaeConfig::new(Architecture::JumpRelu { bandwidth: 0.001 }, 8, 16);
        let e = <Sae as Trainable>::from_checkpoint(jumprelu, sae.params.clone(), &meta)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs threshold"), "{e}");
    }
}
