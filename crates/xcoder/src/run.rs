//! [`XRun`]: one transcoder or crosscoder trained over an activation source,
//! with the checkpoints, resume, logs and progress bar of kibitzer-sae's
//! sweeps (a run killed at any moment resumes from its last checkpoint and
//! ends with the same weights as an uninterrupted one).
//!
//! Output directory:
//!
//! ```text
//! OUT/run.json                          kind, dictionary config, training config, row blocks
//! OUT/checkpoint.json                   last complete checkpoint (step, rows, scales, source position)
//! OUT/<name>/checkpoint-<step>.safetensors   weights, Adam moments, scalar state
//! OUT/<name>/log.jsonl                  one XStepLog per logged step
//! OUT/<name>/cfg.json + weights         the final dictionary for raw activations (crate::format)
//! OUT/<name>/training.json              configs, scales and the last logged step
//! ```
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
use crate::format;
use crate::train::{ScalarState, XStepLog, XTrainer};
use crate::xcoder::{Xcoder, XcoderConfig};
use burn::tensor::Device;
use kibitzer_sae::Params;
use kibitzer_sae::io::{HostTensor, atomic_write, f32_safetensors, read_f32_safetensors};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_sae::train::{
    BoxError, RunOptions, SourcePosition, TrainConfig, TrainError, estimate_input_scale,
    truncate_log,
};
use kibitzer_store::ActivationSource;
use std::collections::HashMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

const RUN_FILE: &str = "run.json";
const CHECKPOINT_FILE: &str = "checkpoint.json";
const RUN_FORMAT: &str = "kibitzer-xcoder-run";

#[derive(serde::Serialize, serde::Deserialize)]
struct RunManifest {
    format: String,
    version: u32,
    name: String,
    xcoder: XcoderConfig,
    training: TrainConfig,
    /// Scales fixed when the run started (fine-tuning), or null.
    fixed_scales: Option<Vec<f32>>,
    /// The same as `f32` bit patterns (exact; the decimals are for people).
    fixed_scales_bits: Option<Vec<u32>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CheckpointManifest {
    step: usize,
    rows_seen: u64,
    row_scales: Option<Vec<f32>>,
    /// `row_scales` as `f32` bit patterns: what resuming reads, since JSON
    /// decimals do not always parse back to the same float.
    row_scales_bits: Option<Vec<u32>>,
    source_position: serde_json::Value,
}

fn to_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn from_bits(v: &[u32]) -> Vec<f32> {
    v.iter().map(|&b| f32::from_bits(b)).collect()
}

/// One dictionary's training run; see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct XRun {
    /// Name, also its sub-directory of the output (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The trainer.
    pub trainer: XTrainer,
    /// Scale of each row block (estimated on the first batch, or fixed).
    pub row_scales: Option<Vec<f32>>,
    fixed_scales: Option<Vec<f32>>,
    /// Rows read so far.
    pub rows_seen: u64,
    device: Device,
}

fn file_err(path: &Path, cause: impl Into<BoxError>) -> XcoderError {
    XcoderError::Train(TrainError::File {
        path: path.to_path_buf(),
        source: cause.into(),
    })
}

impl XRun {
    /// A run of `trainer` (its dictionary moved to `device`). The row scales
    /// are estimated on the first batch when the config normalises
    /// activations, else all ones.
    pub fn new(
        name: impl Into<String>,
        trainer: XTrainer,
        device: &Device,
    ) -> Result<Self, XcoderError> {
        let name = name.into();
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(XcoderError::config(
                "run name",
                format!(
                    "{name:?}: use letters, digits, '-', '_' and '.' only (not starting with '.')"
                ),
            ));
        }
        let trainer = XTrainer {
            xcoder: trainer.xcoder.to_device(device),
            m: trainer.m.map(|t| t.clone().to_device(device)),
            v: trainer.v.map(|t| t.clone().to_device(device)),
            ..trainer
        };
        Ok(Self {
            name,
            trainer,
            row_scales: None,
            fixed_scales: None,
            rows_seen: 0,
            device: device.clone(),
        })
    }

    /// Fixes the row scales instead of estimating them: for fine-tuning a
    /// dictionary whose weights were trained under these scales (a loaded
    /// crosscoder's [`Xcoder::row_scales`]).
    pub fn with_row_scales(mut self, scales: Vec<f32>) -> Result<Self, XcoderError> {
        let n = self.trainer.xcoder.row_blocks().len();
        if scales.len() != n || scales.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(XcoderError::shape(
                "row scales",
                format!("{n} positive numbers"),
                format!("{scales:?}"),
            ));
        }
        self.row_scales = Some(scales.clone());
        self.fixed_scales = Some(scales);
        Ok(self)
    }

    /// Steps taken so far.
    pub fn step(&self) -> usize {
        self.trainer.steps_done()
    }

    /// The dictionary for raw activations as it stands (BatchTopK threshold
    /// set, scales applied).
    pub fn inference_xcoder(&self) -> Result<Xcoder, XcoderError> {
        let scales = self
            .row_scales
            .clone()
            .unwrap_or_else(|| vec![1.0; self.trainer.xcoder.row_blocks().len()]);
        self.trainer.inference().for_raw_activations(&scales)
    }

    /// Scales each row block of host rows in place.
    fn scale_rows(&self, rows: &mut [f32], scales: &[f32]) {
        let widths: Vec<usize> = self
            .trainer
            .xcoder
            .row_blocks()
            .iter()
            .map(|b| b.width)
            .collect();
        let total: usize = widths.iter().sum();
        for row in rows.chunks_exact_mut(total) {
            let mut start = 0;
            for (&w, &c) in widths.iter().zip(scales) {
                row[start..start + w].iter_mut().for_each(|v| *v *= c);
                start += w;
            }
        }
    }

    fn estimate_scales(&self, rows: &[f32]) -> Vec<f32> {
        let widths: Vec<usize> = self
            .trainer
            .xcoder
            .row_blocks()
            .iter()
            .map(|b| b.width)
            .collect();
        (0..widths.len())
            .map(|i| estimate_input_scale(&crate::blocks::host_block(rows, &widths, i), widths[i]))
            .collect()
    }

    /// Trains until the configured number of steps (or `options.stop_after`
    /// steps of this call), checkpointing, logging and showing progress as
    /// `options` say, then saves the dictionary for raw activations in
    /// `OUT/<name>/`. Returns the last logged step.
    pub fn run<S>(
        &mut self,
        source: &mut S,
        options: &RunOptions,
    ) -> Result<Option<XStepLog>, XcoderError>
    where
        S: ActivationSource + SourcePosition,
    {
        let width = self.trainer.xcoder.row_width();
        if source.d_in() != width {
            return Err(XcoderError::Train(TrainError::Width {
                name: self.name.clone(),
                expected: width,
                found: source.d_in(),
            }));
        }
        let out = &options.out_dir;
        let dir = out.join(&self.name);
        fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e))?;
        if self.step() == 0 {
            self.write_manifest(out)?;
        }
        let log_path = dir.join("log.jsonl");
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map(BufWriter::new)
            .map_err(|e| file_err(&log_path, e))?;
        let total = self.trainer.config.steps;
        let batch = self.trainer.config.batch_size;
        let bar =
            kibitzer_io::progress::bar(options.progress, total as u64, self.step() as u64, "steps");
        let mut host = Vec::with_capacity(batch * width);
        let mut last = None;
        let started = Instant::now();
        let mut taken = 0usize;
        while self.step() < total {
            if options.stop_after.is_some_and(|n| taken >= n) {
                bar.abandon();
                log.flush().map_err(|e| file_err(&log_path, e))?;
                return Ok(last);
            }
            let rows = source
                .next_batch(batch, &mut host)
                .map_err(|e| XcoderError::Train(TrainError::Source(Box::new(e))))?;
            if rows == 0 {
                return Err(XcoderError::Train(TrainError::Exhausted {
                    rows: self.rows_seen,
                    step: self.step(),
                }));
            }
            self.rows_seen += rows as u64;
            if self.row_scales.is_none() {
                let n = self.trainer.xcoder.row_blocks().len();
                self.row_scales = Some(if self.trainer.config.normalize_activations {
                    self.estimate_scales(&host)
                } else {
                    vec![1.0; n]
                });
            }
            let scales = self.row_scales.clone().expect("set just above");
            if scales.iter().any(|&c| c != 1.0) {
                self.scale_rows(&mut host, &scales);
            }
            let wide = from_host(std::mem::take(&mut host), rows, width, &self.device);
            let (x, y) = self.trainer.xcoder.split(wide);
            let log_now = (self.step() + 1).is_multiple_of(options.log_every.max(1))
                || self.step() + 1 == total;
            let report = self.trainer.step(x, y);
            if log_now {
                let line = report.read();
                if !line.log.loss.loss.is_finite() {
                    return Err(XcoderError::Train(TrainError::Diverged {
                        name: self.name.clone(),
                        step: line.log.step,
                        loss: line.log.loss.loss,
                    }));
                }
                let text = serde_json::to_string(&line).map_err(|e| file_err(&log_path, e))?;
                writeln!(log, "{text}").map_err(|e| file_err(&log_path, e))?;
                bar.set_message(format!(
                    "loss {:.4}  L0 {:.1}  FVU {:.4} (mean of blocks {:.4})  {:.1} steps/s",
                    line.log.loss.loss,
                    line.log.l0,
                    line.log.fvu,
                    line.fvu_mean_of_blocks,
                    taken as f64 / started.elapsed().as_secs_f64().max(1e-9)
                ));
                last = Some(line);
            }
            host = Vec::with_capacity(batch * width);
            taken += 1;
            bar.set_position(self.step() as u64);
            if options.checkpoint_every > 0
                && self.step().is_multiple_of(options.checkpoint_every)
                && self.step() < total
            {
                log.flush().map_err(|e| file_err(&log_path, e))?;
                self.save_checkpoint(out, source.position())?;
            }
        }
        bar.finish();
        log.flush().map_err(|e| file_err(&log_path, e))?;
        self.save_checkpoint(out, source.position())?;
        self.save_dictionary(out, last.as_ref())?;
        Ok(last)
    }

    fn write_manifest(&self, out: &Path) -> Result<(), XcoderError> {
        let manifest = RunManifest {
            format: RUN_FORMAT.into(),
            version: 1,
            name: self.name.clone(),
            xcoder: self.trainer.xcoder.config(),
            training: self.trainer.config.clone(),
            fixed_scales: self.fixed_scales.clone(),
            fixed_scales_bits: self.fixed_scales.as_deref().map(to_bits),
        };
        let path = out.join(RUN_FILE);
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| file_err(&path, e))?;
        atomic_write(&path, text.as_bytes()).map_err(|e| file_err(&path, e))
    }

    fn checkpoint_name(step: usize) -> String {
        format!("checkpoint-{step:08}.safetensors")
    }

    fn save_checkpoint(&self, out: &Path, position: serde_json::Value) -> Result<(), XcoderError> {
        let t = &self.trainer;
        let prefixed = |prefix: &str, p: &Params| -> Vec<HostTensor> {
            p.named()
                .into_iter()
                .map(|(name, t)| HostTensor {
                    name: format!("{prefix}.{name}"),
                    shape: t.dims().to_vec(),
                    data: to_host(t),
                })
                .collect()
        };
        let mut tensors = prefixed("param", t.xcoder.params());
        tensors.extend(prefixed("adam_m", &t.m));
        tensors.extend(prefixed("adam_v", &t.v));
        let mut meta = HashMap::new();
        meta.insert(
            "state".to_string(),
            serde_json::to_string(&t.scalar_state()).expect("plain struct serialises"),
        );
        meta.insert(
            "rows_since_fired".to_string(),
            serde_json::to_string(&t.rows_since_fired).expect("a Vec<u64> serialises"),
        );
        meta.insert(
            "block_scales".to_string(),
            serde_json::to_string(&to_bits(&t.xcoder.row_scales())).expect("a Vec<u32> serialises"),
        );
        let dir = out.join(&self.name);
        let path = dir.join(Self::checkpoint_name(self.step()));
        let bytes = f32_safetensors(&tensors, Some(meta)).map_err(|e| file_err(&path, e))?;
        atomic_write(&path, &bytes).map_err(|e| file_err(&path, e))?;
        let manifest = CheckpointManifest {
            step: self.step(),
            rows_seen: self.rows_seen,
            row_scales: self.row_scales.clone(),
            row_scales_bits: self.row_scales.as_deref().map(to_bits),
            source_position: position,
        };
        let mpath = out.join(CHECKPOINT_FILE);
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| file_err(&mpath, e))?;
        atomic_write(&mpath, text.as_bytes()).map_err(|e| file_err(&mpath, e))?;
        // Older checkpoints are superseded only now that the new one is complete.
        let keep = Self::checkpoint_name(self.step());
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("checkpoint-") && name.ends_with(".safetensors") && name != keep
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    fn save_dictionary(&self, out: &Path, last: Option<&XStepLog>) -> Result<(), XcoderError> {
        let dir = out.join(&self.name);
        let xcoder = self.inference_xcoder()?;
        let metadata = serde_json::json!({
            "training_config": self.trainer.config,
            "row_scales": self.row_scales,
            "rows_seen": self.rows_seen,
        });
        format::save(&xcoder, &dir, &metadata)?;
        let summary = serde_json::json!({
            "name": self.name,
            "kind": xcoder.kind(),
            "xcoder": self.trainer.xcoder.config(),
            "training_config": self.trainer.config,
            "row_scales": self.row_scales,
            "rows_seen": self.rows_seen,
            "last_step": last,
        });
        let path = dir.join("training.json");
        let text = serde_json::to_string_pretty(&summary).map_err(|e| file_err(&path, e))?;
        atomic_write(&path, text.as_bytes()).map_err(|e| file_err(&path, e))
    }

    /// Reloads a run from the last checkpoint in `out_dir`, with the source
    /// position saved there (give it to the source before calling
    /// [`XRun::run`] again).
    pub fn resume(
        out_dir: &Path,
        device: &Device,
    ) -> Result<(XRun, serde_json::Value), XcoderError> {
        let read_json = |name: &str| -> Result<serde_json::Value, XcoderError> {
            let path = out_dir.join(name);
            let text = fs::read_to_string(&path).map_err(|e| {
                file_err(&path, format!("{e} (is this the output directory of an xcoder run that wrote a checkpoint?)"))
            })?;
            serde_json::from_str(&text).map_err(|e| file_err(&path, e))
        };
        let manifest: RunManifest = serde_json::from_value(read_json(RUN_FILE)?)
            .map_err(|e| file_err(&out_dir.join(RUN_FILE), e))?;
        if manifest.format != RUN_FORMAT || manifest.version != 1 {
            return Err(file_err(
                &out_dir.join(RUN_FILE),
                format!(
                    "format {:?} version {} is not a kibitzer xcoder run (version 1)",
                    manifest.format, manifest.version
                ),
            ));
        }
        let ckpt: CheckpointManifest = serde_json::from_value(read_json(CHECKPOINT_FILE)?)
            .map_err(|e| file_err(&out_dir.join(CHECKPOINT_FILE), e))?;
        let path = out_dir
            .join(&manifest.name)
            .join(Self::checkpoint_name(ckpt.step));
        let bytes = fs::read(&path).map_err(|e| file_err(&path, e))?;
        let (tensors, meta) = read_f32_safetensors(&bytes).map_err(|e| file_err(&path, e))?;
        let mut tensors: HashMap<String, HostTensor> =
            tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut params_of = |prefix: &str| -> Result<Params, XcoderError> {
            let mut named = Vec::new();
            for name in [
                "w_enc",
                "b_enc",
                "w_dec",
                "b_dec",
                "threshold",
                "b_mag",
                "r_mag",
                "w_skip",
            ] {
                if let Some(t) = tensors.remove(&format!("{prefix}.{name}")) {
                    if t.shape.len() != 2 {
                        return Err(file_err(
                            &path,
                            format!(
                                "tensor {prefix}.{name} has shape {:?}, expected 2-D",
                                t.shape
                            ),
                        ));
                    }
                    named.push((name, from_host(t.data, t.shape[0], t.shape[1], device)));
                }
            }
            Params::from_named(named).ok_or_else(|| {
                file_err(
                    &path,
                    format!("checkpoint lacks one of {prefix}.w_enc, b_enc, w_dec, b_dec"),
                )
            })
        };
        let params = params_of("param")?;
        let m = params_of("adam_m")?;
        let v = params_of("adam_v")?;
        let get_meta = |key: &str| {
            meta.get(key)
                .ok_or_else(|| file_err(&path, format!("checkpoint metadata has no `{key}`")))
        };
        let state: ScalarState =
            serde_json::from_str(get_meta("state")?).map_err(|e| file_err(&path, e))?;
        let rows_since_fired: Vec<u64> =
            serde_json::from_str(get_meta("rows_since_fired")?).map_err(|e| file_err(&path, e))?;
        let block_scales: Vec<u32> =
            serde_json::from_str(get_meta("block_scales")?).map_err(|e| file_err(&path, e))?;
        let block_scales = from_bits(&block_scales);
        let xcoder = manifest
            .xcoder
            .with_params(params, block_scales)
            .map_err(|e| file_err(&path, e))?;
        if rows_since_fired.len() != xcoder.d_sae() {
            return Err(file_err(
                &path,
                format!(
                    "rows_since_fired has {} entries, expected d_sae = {}",
                    rows_since_fired.len(),
                    xcoder.d_sae()
                ),
            ));
        }
        let mut trainer = XTrainer::new(xcoder, manifest.training)?;
        trainer.m = m;
        trainer.v = v;
        trainer.rows_since_fired = rows_since_fired;
        trainer.set_scalar_state(state);
        let mut run = XRun::new(manifest.name, trainer, device)?;
        run.fixed_scales = manifest.fixed_scales_bits.as_deref().map(from_bits);
        run.row_scales = ckpt.row_scales_bits.as_deref().map(from_bits);
        run.rows_seen = ckpt.rows_seen;
        truncate_log(&out_dir.join(&run.name).join("log.jsonl"), ckpt.step)
            .map_err(XcoderError::Train)?;
        Ok((run, ckpt.source_position))
    }
}
