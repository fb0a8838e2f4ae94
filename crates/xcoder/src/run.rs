//! [`XRun`]: transcoders or crosscoders trained over an activation source,
//! one ([`XRun::new`]) or several from one pass over it ([`XRun::grid`]:
//! every batch is read once and steps each of them). It is a [`Sweep`] of
//! kibitzer-sae's shared trainer, so it has
//! the sweeps' checkpoints, resume, logs, progress bar, checksums and
//! clean-up of a failed start (a run killed at any moment resumes from its
//! last checkpoint and ends with the same weights as an uninterrupted one).
//!
//! Output directory (a sweep's):
//!
//! ```text
//! OUT/sweep.json                        each member's name, dictionary config (`xcoder`) and training config
//! OUT/checkpoint.json                   last complete checkpoint (step, rows, row scales, source position, checksum)
//! OUT/<name>/checkpoint-<step>.safetensors   weights, Adam moments, scalar state, block scales
//! OUT/<name>/log.jsonl                  one StepLog per logged step (with the FVU of each output block)
//! OUT/<name>/cfg.json + weights         the final dictionary for raw activations (crate::format)
//! OUT/<name>/training.json              configs, scales and the last logged step
//! ```
//!
//! Directories written before runs were sweeps (`run.json` instead of
//! `sweep.json`) resume all the same.
//!
//! Rows come from any [`ActivationSource`] whose rows are the dictionary's
//! row blocks side by side ([`Xcoder::row_blocks`]): `[x | y]` for a
//! transcoder, `[x_1 | .. | x_n]` for a crosscoder. With
//! `normalize_activations`, each block `i` is scaled by
//! `c_i = sqrt(d_i) / mean_b ||x_bi||`, estimated on the first batch (per
//! block, so that every layer or model weighs the same in a crosscoder's
//! loss); the saved dictionary works on raw activations (see
//! [`Xcoder::for_raw_activations`]).

use crate::error::XcoderError;
use crate::train::XTrainer;
use crate::xcoder::{Xcoder, XcoderConfig};
use burn::tensor::Device;
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_sae::train::{
    MemberSpec, RunOptions, SourcePosition, StepLog, Sweep, SweepMember, TrainConfig,
};
use kibitzer_store::ActivationSource;
use std::path::Path;

/// The manifest of a run directory written before runs were one-member
/// sweeps: what resuming one needs from it.
#[derive(serde::Deserialize)]
struct LegacyRunManifest {
    format: String,
    version: u32,
    name: String,
    xcoder: XcoderConfig,
    training: TrainConfig,
    fixed_scales_bits: Option<Vec<u32>>,
}

const LEGACY_RUN_FILE: &str = "run.json";
const LEGACY_RUN_FORMAT: &str = "kibitzer-xcoder-run";

/// A training run of one dictionary or several; see the [module
/// documentation](self).
#[derive(Clone, Debug)]
pub struct XRun {
    sweep: Sweep<Xcoder>,
}

impl XRun {
    /// A run of `trainer` (its dictionary and optimiser state moved to
    /// `device`), named `name` (letters, digits, `-`, `_`, `.`; also its
    /// sub-directory of the output). The row scales are estimated on the
    /// first batch when the config normalises activations, else all ones.
    pub fn new(
        name: impl Into<String>,
        trainer: XTrainer,
        device: &Device,
    ) -> Result<Self, XcoderError> {
        Self::grid(vec![(name.into(), trainer)], device)
    }

    /// A run of several dictionaries over the same rows (the same row
    /// blocks), trained from one pass: each `(name, trainer)` as in
    /// [`XRun::new`], names distinct.
    pub fn grid(members: Vec<(String, XTrainer)>, device: &Device) -> Result<Self, XcoderError> {
        let members = members
            .into_iter()
            .map(|(name, trainer)| SweepMember { name, trainer })
            .collect();
        Ok(Self {
            sweep: Sweep::new(members, device)?,
        })
    }

    /// Fixes the row scales instead of estimating them: for fine-tuning a
    /// dictionary whose weights were trained under these scales (a loaded
    /// crosscoder's [`Xcoder::row_scales`]).
    pub fn with_row_scales(self, scales: Vec<f32>) -> Result<Self, XcoderError> {
        Ok(Self {
            sweep: self.sweep.with_row_scales(scales)?,
        })
    }

    /// The first dictionary's name (the only one of a run made by
    /// [`XRun::new`]).
    pub fn name(&self) -> &str {
        &self.sweep.members[0].name
    }

    /// The first dictionary's trainer: the dictionary in training units and
    /// its optimiser state.
    pub fn trainer(&self) -> &XTrainer {
        &self.sweep.members[0].trainer
    }

    /// Every dictionary of the run with its trainer, in order.
    pub fn members(&self) -> &[SweepMember<Xcoder>] {
        &self.sweep.members
    }

    /// The sweep this run is.
    pub fn sweep(&self) -> &Sweep<Xcoder> {
        &self.sweep
    }

    /// Steps taken so far (every dictionary of a run steps together).
    pub fn step(&self) -> usize {
        self.trainer().steps_done()
    }

    /// Rows read so far.
    pub fn rows_seen(&self) -> u64 {
        self.sweep.rows_seen
    }

    /// The scale of each row block, once estimated or fixed.
    pub fn row_scales(&self) -> Option<&[f32]> {
        self.sweep.row_scales.as_deref()
    }

    /// The first dictionary for raw activations as it stands (BatchTopK
    /// threshold set, scales applied).
    pub fn inference_xcoder(&self) -> Result<Xcoder, XcoderError> {
        let mut dictionaries = self.sweep.inference_dictionaries()?;
        Ok(dictionaries.remove(0).1) // a sweep has at least one member
    }

    /// Trains until the configured number of steps (or `options.stop_after`
    /// steps of this call), checkpointing, logging and showing progress as
    /// `options` say, then saves each dictionary for raw activations in
    /// `OUT/<name>/`. Returns each dictionary's last logged step, in order
    /// (none when this call logged nothing).
    pub fn run<S>(
        &mut self,
        source: &mut S,
        options: &RunOptions,
    ) -> Result<Vec<StepLog>, XcoderError>
    where
        S: ActivationSource + SourcePosition,
    {
        Ok(self.sweep.run(source, options)?)
    }

    /// Reloads a run from the last checkpoint in `out_dir`, with the source
    /// position saved there (give it to the source before calling
    /// [`XRun::run`] again). Reads directories of either layout: a sweep's
    /// `sweep.json`, or the `run.json` runs wrote before.
    pub fn resume(
        out_dir: &Path,
        device: &Device,
    ) -> Result<(XRun, serde_json::Value), XcoderError> {
        let legacy = out_dir.join(LEGACY_RUN_FILE);
        let (sweep, position) = if !out_dir.join("sweep.json").exists() && legacy.exists() {
            let manifest = read_legacy_manifest(&legacy)?;
            let member = MemberSpec {
                name: manifest.name,
                config: manifest.xcoder,
                training: manifest.training,
            };
            let fixed = manifest
                .fixed_scales_bits
                .map(|b| b.into_iter().map(f32::from_bits).collect());
            Sweep::resume_members(out_dir, device, vec![member], fixed)?
        } else {
            Sweep::resume_from(out_dir, device)?
        };
        Ok((XRun { sweep }, position))
    }
}

fn read_legacy_manifest(path: &Path) -> Result<LegacyRunManifest, XcoderError> {
    let text = std::fs::read_to_string(path).at_file(path)?;
    let manifest: LegacyRunManifest = serde_json::from_str(&text).at_file(path)?;
    if manifest.format != LEGACY_RUN_FORMAT || manifest.version != 1 {
        return Err(FileError::new(
            path,
            format!(
                "format {:?} version {} is not a kibitzer xcoder run ({LEGACY_RUN_FORMAT:?} version 1)",
                manifest.format, manifest.version
            ),
        ).into());
    }
    Ok(manifest)
}
