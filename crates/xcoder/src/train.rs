//! Training transcoders and crosscoders: kibitzer-sae's shared trainer
//! ([`DictTrainer`]) over an [`Xcoder`], on kibitzer-sae's [`TrainConfig`]
//! (the same settings, defaults, schedules and validation as `kibitzer sae
//! train`), reporting in its [`StepLog`](kibitzer_sae::train::StepLog).
//!
//! An [`Xcoder`] is [`Trainable`]: its training rows are its row blocks side
//! by side ([`Xcoder::row_blocks`]), [split](Xcoder::split) into input and
//! target; its step is kibitzer-sae's for its shape ([`Xcoder::step_model`]).
//! So transcoders and crosscoders get everything SAEs get: Adam with
//! PyTorch's update rule, learning-rate warm-up and decay, sparsity warm-up,
//! global gradient clipping, unit-norm decoder rows (transcoders with every
//! architecture but L1), dead-feature tracking, AuxK for TopK/BatchTopK
//! (`k_aux` defaults to half the target width), the BatchTopK threshold
//! estimate, JumpReLU's target L0 and threshold initialisation from the
//! first batch, p-annealing, and resampling where the target is the input
//! (crosscoders). `b_dec` starts at the geometric median of the first
//! batch's targets. The log's `fvu_per_block` has one FVU per output block.

use crate::error::XcoderError;
use crate::xcoder::{Xcoder, XcoderConfig};
use burn::tensor::{Device, Tensor};
use kibitzer_sae::Params;
use kibitzer_sae::arch::StepModel;
use kibitzer_sae::train::{BoxError, DictTrainer, Trainable};
use std::path::Path;

/// The checkpoint metadata key of a crosscoder's block scales (as `f32`
/// bit patterns; ones for a transcoder).
const BLOCK_SCALES: &str = "block_scales";

/// The trainer of a transcoder or crosscoder.
pub type XTrainer = DictTrainer<Xcoder>;

impl Trainable for Xcoder {
    type Error = XcoderError;

    fn check(&self) -> Result<(), XcoderError> {
        self.check_shapes()
    }

    fn step_model(&self) -> StepModel<'_> {
        Xcoder::step_model(self)
    }

    fn params_mut(&mut self) -> &mut Params {
        Xcoder::params_mut(self)
    }

    fn unit_norm_decoder(&self) -> bool {
        Xcoder::unit_norm_decoder(self)
    }

    fn mask_grads(&self, grads: Params) -> Params {
        match self {
            Xcoder::Clt(c) => c.mask_grads(grads),
            _ => grads,
        }
    }

    fn split(&self, rows: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        Xcoder::split(self, rows)
    }

    fn reconstructs_input(&self) -> bool {
        matches!(self, Xcoder::Crosscoder(_))
    }

    fn to_device(&self, device: &Device) -> Self {
        Xcoder::to_device(self, device)
    }

    type Config = XcoderConfig;

    const CONFIG_KEY: &'static str = "xcoder";

    fn config(&self) -> XcoderConfig {
        Xcoder::config(self)
    }

    fn from_checkpoint(
        config: XcoderConfig,
        params: Params,
        meta: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, XcoderError> {
        let bits = meta(BLOCK_SCALES).ok_or_else(|| {
            XcoderError::config("checkpoint metadata", format!("has no `{BLOCK_SCALES}`"))
        })?;
        let bits: Vec<u32> = serde_json::from_str(&bits).map_err(|e| {
            XcoderError::config(
                format!("checkpoint metadata `{BLOCK_SCALES}`"),
                e.to_string(),
            )
        })?;
        let scales = bits.into_iter().map(f32::from_bits).collect();
        config.with_params(params, scales)
    }

    fn dictionary_metadata(&self) -> Vec<(String, String)> {
        let bits: Vec<u32> = self.row_scales().iter().map(|c| c.to_bits()).collect();
        vec![(
            BLOCK_SCALES.to_string(),
            serde_json::to_string(&bits).expect("a Vec<u32> serialises"),
        )]
    }

    fn row_widths(&self) -> Vec<usize> {
        self.row_blocks().iter().map(|b| b.width).collect()
    }

    fn for_raw_activations(&self, scales: &[f32]) -> Result<Self, XcoderError> {
        Xcoder::for_raw_activations(self, scales)
    }

    fn save(&self, dir: &Path, metadata: serde_json::Value) -> Result<(), BoxError> {
        crate::format::save(self, dir, &metadata)?;
        Ok(())
    }
}
