//! The trainer shared by every architecture.
//!
//! [`DictTrainer`] optimises one dictionary (Adam with PyTorch's update rule,
//! learning-rate warm-up and linear decay, sparsity warm-up, global gradient
//! clipping, unit-norm decoder rows by gradient projection and
//! renormalisation, dead-feature tracking, AuxK, the BatchTopK threshold,
//! p-annealing and optional resampling). [`Sweep`] trains several
//! dictionaries from one pass over the activations, each batch read once and
//! stepped by every member, with atomic checkpoints every N steps: a run
//! killed at any moment resumes from the last checkpoint and ends with the
//! same weights as an uninterrupted run.
//!
//! Output directory of a sweep:
//!
//! ```text
//! OUT/sweep.json                      members, their configs, input scale
//! OUT/checkpoint.json                 last complete checkpoint (step, source position)
//! OUT/<member>/checkpoint-<step>.safetensors
//! OUT/<member>/log.jsonl              one JSON object per logged step
//! OUT/<member>/cfg.json               final dictionary, SAELens layout,
//! OUT/<member>/sae_weights.safetensors    folded to work on raw activations
//! OUT/<member>/training.json          training config and last logged step
//! ```

mod checkpoint;
mod config;
mod optim;
pub mod presets;
mod trainable;

pub use checkpoint::truncate_log;
pub use config::{AdamConfig, PAnneal, TrainConfig, TrainFlags};
pub use optim::{DictTrainer, StepLog, StepReport, adam_step, batch_fvu};
pub use trainable::Trainable;

use crate::ops::from_host;
use crate::sae::Sae;
use burn::tensor::{Device, Tensor};
use kibitzer_io::FileResultExt;
use kibitzer_store::ActivationSource;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A source whose reading position can be saved in a checkpoint, so that a
/// resumed run reads exactly the batches an uninterrupted run would have.
pub trait SourcePosition {
    /// The current position, as JSON (opaque to the trainer).
    fn position(&self) -> serde_json::Value;
}

impl SourcePosition for kibitzer_store::InMemorySource {
    fn position(&self) -> serde_json::Value {
        serde_json::json!(kibitzer_store::InMemorySource::position(self))
    }
}

impl SourcePosition for kibitzer_store::ShuffledReader {
    fn position(&self) -> serde_json::Value {
        serde_json::to_value(kibitzer_store::ShuffledReader::position(self))
            .expect("a reader position is plain data and serialises")
    }
}

/// A cause of any error type, kept for [`std::error::Error::source`]
/// (kibitzer-io's, which [`kibitzer_io::FileError`] holds).
pub use kibitzer_io::file_error::BoxError;

/// What can stop training. Variants that wrap another error keep it as
/// their [`source`](std::error::Error::source), so the whole chain can be
/// printed or inspected.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The activation source failed (its own error type, boxed).
    #[error("reading activations: {0}")]
    Source(#[source] BoxError),
    /// The source ran dry before training finished.
    #[error(
        "the activation source ran out after {rows} rows at step {step}; use a source that cycles or fewer steps"
    )]
    Exhausted {
        /// Rows read.
        rows: u64,
        /// Step reached.
        step: usize,
    },
    /// A batch had the wrong width.
    #[error(
        "activation rows have width {found}, but the dictionary {name} expects d_in = {expected}"
    )]
    Width {
        /// Member name.
        name: String,
        /// Expected width.
        expected: usize,
        /// Width found.
        found: usize,
    },
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
    /// The sweep is inconsistent (duplicate names, different batch sizes...).
    #[error("{0}")]
    Config(String),
    /// A member's dictionary or training config cannot be trained (in a
    /// checkpoint being resumed, for instance).
    #[error("dictionary {name}: {source}")]
    Member {
        /// Member name.
        name: String,
        /// What is wrong: the [`ConfigError`](crate::ConfigError) naming the field, or the
        /// dictionary's own error for its shapes.
        source: BoxError,
    },
    /// The loss became NaN or infinite.
    #[error(
        "training of {name} diverged at step {step} (loss {loss}); lower the learning rate or the sparsity coefficient"
    )]
    Diverged {
        /// Member name.
        name: String,
        /// Step.
        step: usize,
        /// The loss value seen.
        loss: f64,
    },
}

/// One dictionary of a sweep.
#[derive(Clone, Debug)]
pub struct SweepMember<D: Trainable = Sae> {
    /// Name, also its sub-directory of the output (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Its trainer.
    pub trainer: DictTrainer<D>,
}

/// How a sweep runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Output directory.
    pub out_dir: PathBuf,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Log every this many steps (to log.jsonl and the progress bar).
    pub log_every: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Stop (without a final save) after this many steps of this call: for
    /// tests that simulate a killed run.
    pub stop_after: Option<usize>,
}

impl RunOptions {
    /// Defaults: checkpoint every 1000 steps, log every 50, progress bar on.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into(),
            checkpoint_every: 1000,
            log_every: 50,
            progress: true,
            stop_after: None,
        }
    }
}

/// Several dictionaries trained from one pass over the activations: SAEs
/// (the default), or any other [`Trainable`] shape (kibitzer-xcoder's
/// transcoders and crosscoders, whose single runs are one-member sweeps).
///
/// Every member reads the same training rows, made of the same blocks
/// ([`Trainable::row_widths`]: one block of `d_in` for an SAE). With
/// `normalize_activations`, each block `i` is multiplied by `c_i =
/// sqrt(d_i) / mean_b ||x_bi||`, estimated on the first batch (per block,
/// so that every layer or model weighs the same in a crosscoder's loss);
/// the saved dictionaries work on raw activations
/// ([`Trainable::for_raw_activations`]).
#[derive(Clone, Debug)]
pub struct Sweep<D: Trainable = Sae> {
    /// The dictionaries.
    pub members: Vec<SweepMember<D>>,
    /// The factor applied to each block of every training row (estimated
    /// from the first batch, or fixed by [`Sweep::with_row_scales`]), once
    /// known.
    pub row_scales: Option<Vec<f32>>,
    /// Rows read so far.
    pub rows_seen: u64,
    /// Steps taken so far (all members step together).
    pub step: usize,
    /// Scales fixed when the sweep was made (fine-tuning), for the manifest.
    fixed_scales: Option<Vec<f32>>,
    device: Device,
}

impl<D: Trainable> Sweep<D> {
    /// A sweep over `members` (moved to `device`), which must agree on the
    /// blocks of a training row and the batch size and have distinct,
    /// file-system-safe names.
    pub fn new(members: Vec<SweepMember<D>>, device: &Device) -> Result<Self, TrainError> {
        let Some(first) = members.first() else {
            return Err(TrainError::Config(
                "a sweep needs at least one dictionary".into(),
            ));
        };
        let (widths, batch) = (
            first.trainer.dict.row_widths(),
            first.trainer.config.batch_size,
        );
        let mut names = std::collections::HashSet::new();
        for m in &members {
            check_member_name(&m.name)?;
            if !names.insert(m.name.clone()) {
                return Err(TrainError::Config(format!(
                    "two dictionaries are named {:?}",
                    m.name
                )));
            }
            let w = m.trainer.dict.row_widths();
            if w != widths {
                let what = |w: &[usize]| match w {
                    [d_in] => format!("d_in {d_in}"),
                    blocks => format!("row blocks of widths {blocks:?}"),
                };
                return Err(TrainError::Config(format!(
                    "dictionary {} has {}, but {} has {}: a sweep reads one activation stream",
                    m.name,
                    what(&w),
                    first.name,
                    what(&widths)
                )));
            }
            if m.trainer.config.batch_size != batch {
                return Err(TrainError::Config(format!(
                    "dictionary {} has batch_size {}, but {} has {batch}: a sweep shares its batches",
                    m.name, m.trainer.config.batch_size, first.name
                )));
            }
        }
        let members = members
            .into_iter()
            .map(|m| SweepMember {
                trainer: m.trainer.to_device(device),
                name: m.name,
            })
            .collect();
        Ok(Self {
            members,
            row_scales: None,
            rows_seen: 0,
            step: 0,
            fixed_scales: None,
            device: device.clone(),
        })
    }

    /// Fixes the scale of each row block instead of estimating it: for
    /// fine-tuning dictionaries whose weights were trained under these
    /// scales (a loaded crosscoder's block scales, say).
    pub fn with_row_scales(mut self, scales: Vec<f32>) -> Result<Self, TrainError> {
        let n = self.row_widths().len();
        if scales.len() != n || scales.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(TrainError::Config(format!(
                "row scales {scales:?}: expected {n} finite positive numbers, one per row block"
            )));
        }
        self.row_scales = Some(scales.clone());
        self.fixed_scales = Some(scales);
        Ok(self)
    }

    /// The longest member's step count: the sweep runs until every member is done.
    pub fn total_steps(&self) -> usize {
        self.members
            .iter()
            .map(|m| m.trainer.config.steps)
            .max()
            .unwrap_or(0)
    }

    /// Widths of the blocks of a training row (one, `d_in`, for SAEs).
    pub fn row_widths(&self) -> Vec<usize> {
        self.members[0].trainer.dict.row_widths()
    }

    /// Width of a training row.
    pub fn row_width(&self) -> usize {
        self.row_widths().iter().sum()
    }

    fn batch_size(&self) -> usize {
        self.members[0].trainer.config.batch_size
    }

    /// The row scales in force, ones before they are known.
    fn scales_or_ones(&self) -> Vec<f32> {
        self.row_scales
            .clone()
            .unwrap_or_else(|| vec![1.0; self.row_widths().len()])
    }

    /// Trains until every member has taken its steps (or `stop_after`),
    /// checkpointing and logging as `options` say, then saves every
    /// dictionary for raw activations ([`Trainable::save`]: SAELens's
    /// layout for SAEs). Returns each member's last logged step.
    ///
    /// A run that fails leaves resumable state or nothing: once a
    /// checkpoint is complete, [`Sweep::resume`] continues from it; a run
    /// started at step 0 that fails before its first checkpoint removes
    /// what it wrote (`sweep.json`, the logs, and the directories it
    /// created when they are left empty). A killed process cleans nothing;
    /// starting the run again without resuming replaces what it left.
    pub fn run<S>(
        &mut self,
        source: &mut S,
        options: &RunOptions,
    ) -> Result<Vec<StepLog>, TrainError>
    where
        S: ActivationSource + SourcePosition,
    {
        let fresh = self.step == 0;
        let out_existed = options.out_dir.exists();
        let result = self.run_steps(source, options);
        if result.is_err() && fresh {
            checkpoint::remove_failed_start(self, &options.out_dir, out_existed);
        }
        result
    }

    fn run_steps<S>(
        &mut self,
        source: &mut S,
        options: &RunOptions,
    ) -> Result<Vec<StepLog>, TrainError>
    where
        S: ActivationSource + SourcePosition,
    {
        let widths = self.row_widths();
        let width = self.row_width();
        if source.d_in() != width {
            return Err(TrainError::Width {
                name: self.members[0].name.clone(),
                expected: width,
                found: source.d_in(),
            });
        }
        std::fs::create_dir_all(&options.out_dir).at_file(&options.out_dir)?;
        for m in &self.members {
            let dir = options.out_dir.join(&m.name);
            std::fs::create_dir_all(&dir).at_file(&dir)?;
        }
        // Temporary files of atomic writes by a run that was killed mid-write.
        checkpoint::remove_stale_temp_files(self, &options.out_dir);
        if self.step == 0 {
            checkpoint::write_sweep_manifest(self, &options.out_dir)?;
        }
        let mut logs = checkpoint::open_logs(self, &options.out_dir)?;
        let total = self.total_steps();
        let bar =
            kibitzer_io::progress::bar(options.progress, total as u64, self.step as u64, "steps");
        let batch = self.batch_size();
        let mut host = Vec::with_capacity(batch * width);
        let mut last: Vec<Option<StepLog>> = vec![None; self.members.len()];
        let started = Instant::now();
        let mut taken = 0usize;
        while self.step < total {
            if options.stop_after.is_some_and(|n| taken >= n) {
                bar.abandon();
                for l in logs.iter_mut() {
                    l.flush().at_file(&options.out_dir)?;
                }
                return Ok(last.into_iter().flatten().collect());
            }
            let rows = source
                .next_batch(batch, &mut host)
                .map_err(|e| TrainError::Source(Box::new(e)))?;
            if rows == 0 {
                return Err(TrainError::Exhausted {
                    rows: self.rows_seen,
                    step: self.step,
                });
            }
            self.rows_seen += rows as u64;
            if self.row_scales.is_none() {
                let normalize = self
                    .members
                    .iter()
                    .any(|m| m.trainer.config.normalize_activations);
                self.row_scales = Some(if normalize {
                    (0..widths.len())
                        .map(|i| estimate_input_scale(&host_block(&host, &widths, i), widths[i]))
                        .collect()
                } else {
                    vec![1.0; widths.len()]
                });
            }
            if let Some(scales) = &self.row_scales
                && scales.iter().any(|&c| c != 1.0)
            {
                scale_blocks(&mut host, &widths, scales);
            }
            let x = from_host(std::mem::take(&mut host), rows, width, &self.device);
            let log_now = (self.step + 1) % options.log_every.max(1) == 0 || self.step + 1 == total;
            let stepped = self.step_batch(&x, log_now);
            for (i, log) in stepped.into_iter().enumerate() {
                let Some(log) = log else { continue };
                let m = &self.members[i];
                if !log.loss.loss.is_finite() {
                    return Err(TrainError::Diverged {
                        name: m.name.clone(),
                        step: log.step,
                        loss: log.loss.loss,
                    });
                }
                checkpoint::append_log(&mut logs[i], &log, &options.out_dir.join(&m.name))?;
                last[i] = Some(log);
            }
            host = Vec::with_capacity(batch * width);
            taken += 1;
            kibitzer_store::fault::point("train.step");
            if log_now {
                if let Some(l) = last.iter().flatten().next() {
                    bar.set_message(progress_message(
                        &self.members[0].name,
                        self.members.len(),
                        l,
                        taken as f64 / started.elapsed().as_secs_f64().max(1e-9),
                    ));
                }
            }
            bar.set_position(self.step as u64);
            if options.checkpoint_every > 0
                && self.step % options.checkpoint_every == 0
                && self.step < total
            {
                for l in logs.iter_mut() {
                    l.flush().at_file(&options.out_dir)?;
                }
                checkpoint::save(self, &options.out_dir, source.position())?;
            }
        }
        bar.finish();
        for l in logs.iter_mut() {
            l.flush().at_file(&options.out_dir)?;
        }
        checkpoint::save(self, &options.out_dir, source.position())?;
        self.save_dictionaries(&options.out_dir, &last)?;
        Ok(last.into_iter().flatten().collect())
    }

    /// One step of every member that has steps left, on the batch `x`
    /// (rows already scaled by [`Sweep::row_scales`], as [`Sweep::run`]
    /// scales them); advances [`Sweep::step`]. On the CPU the members step
    /// side by side, one per core (see [`Sweep::steps_members_in_parallel`]).
    /// Returns each member's log of the step, read back when `read_logs` or
    /// when the member has just finished; `None` for a member that did not
    /// step or whose log was not read. Reading a log waits for the device.
    pub fn step_batch(&mut self, x: &Tensor<2>, read_logs: bool) -> Vec<Option<StepLog>> {
        let step_one = |m: &mut SweepMember<D>| {
            if m.trainer.finished() {
                return None;
            }
            let report = m.trainer.step(x.clone());
            (read_logs || m.trainer.finished()).then(|| report.read())
        };
        let logs = if self.steps_members_in_parallel() {
            use rayon::prelude::*;
            // One member per task: members differ in size by up to 16x, so
            // rayon's stealing balances the cores better than fixed halves.
            self.members
                .par_iter_mut()
                .with_max_len(1)
                .map(step_one)
                .collect()
        } else {
            self.members.iter_mut().map(step_one).collect()
        };
        self.step += 1;
        logs
    }

    /// Whether the members step side by side, one per core, rather than
    /// one after another with every core on each member's products. On the
    /// CPU a sweep's products are small (a few hundred features against a
    /// batch of a few thousand rows) and two cores on one product scale by
    /// only ~1.5x, while one core per member keeps each core's product at
    /// its single-thread rate (`kibitzer bench sweep`, docs/RESULTS.md). A
    /// GPU queues each member's work anyway, so there members go one after
    /// another. The members share nothing, so the result is the same either
    /// way (the sweep tests compare every member with its lone training).
    pub fn steps_members_in_parallel(&self) -> bool {
        crate::device::is_host(&self.device)
            && self.members.len() > 1
            && rayon::current_num_threads() > 1
    }

    /// Every member's dictionary as used at inference on raw activations
    /// (row scales folded in or recorded, BatchTopK threshold set).
    pub fn inference_dictionaries(&self) -> Result<Vec<(String, D)>, TrainError> {
        let scales = self.scales_or_ones();
        self.members
            .iter()
            .map(|m| {
                let dict =
                    m.trainer
                        .inference()
                        .for_raw_activations(&scales)
                        .map_err(|source| {
                            TrainError::Config(format!("dictionary {}: {source}", m.name))
                        })?;
                Ok((m.name.clone(), dict))
            })
            .collect()
    }

    fn save_dictionaries(&self, out: &Path, last: &[Option<StepLog>]) -> Result<(), TrainError> {
        // SAELens's own name for an SAE's single scale, kept beside the
        // per-block list.
        let input_scale = match self.row_scales.as_deref() {
            Some([c]) => Some(*c),
            _ => None,
        };
        for ((name, dict), (m, log)) in self
            .inference_dictionaries()?
            .into_iter()
            .zip(self.members.iter().zip(last))
        {
            let dir = out.join(&name);
            let metadata = serde_json::json!({
                "training_config": m.trainer.config,
                "input_scale": input_scale,
                "row_scales": self.row_scales,
                "rows_seen": self.rows_seen,
            });
            dict.save(&dir, metadata).at_file(&dir)?;
            let path = dir.join("training.json");
            let mut summary = serde_json::json!({
                "name": name,
                "architecture": dict.step_model().architecture,
                "d_in": dict.params().w_enc.dims()[0],
                "d_sae": dict.d_sae(),
                "training_config": m.trainer.config,
                "input_scale": input_scale,
                "row_scales": self.row_scales,
                "rows_seen": self.rows_seen,
                "last_step": log,
            });
            summary[D::CONFIG_KEY] =
                serde_json::to_value(m.trainer.dict.config()).at_file(&path)?;
            let text = serde_json::to_string_pretty(&summary).at_file(&path)?;
            crate::io::atomic_write(&path, text.as_bytes()).at_file(&path)?;
        }
        Ok(())
    }

    /// Reloads a sweep of `D` dictionaries from the last checkpoint in
    /// `out_dir`, with the source position saved there (give it to the
    /// source before calling [`Sweep::run`] again). For SAEs,
    /// [`Sweep::resume`] says the same without naming the type.
    pub fn resume_from(
        out_dir: &Path,
        device: &Device,
    ) -> Result<(Sweep<D>, serde_json::Value), TrainError> {
        checkpoint::load(out_dir, device, None)
    }

    /// [`Sweep::resume`] for an output directory whose manifest is not
    /// `sweep.json` (an older layout, read by the caller): the members'
    /// names, configs and training configs, and the scales fixed when the
    /// run was made. The checkpoints are read as [`Sweep::resume`] reads
    /// them.
    pub fn resume_members(
        out_dir: &Path,
        device: &Device,
        members: Vec<MemberSpec<D>>,
        fixed_scales: Option<Vec<f32>>,
    ) -> Result<(Sweep<D>, serde_json::Value), TrainError> {
        checkpoint::load(out_dir, device, Some((members, fixed_scales)))
    }
}

impl Sweep<Sae> {
    /// Reloads an SAE sweep from the last checkpoint in `out_dir`, with the
    /// source position saved there (give it to the source before calling
    /// [`Sweep::run`] again).
    pub fn resume(
        out_dir: &Path,
        device: &Device,
    ) -> Result<(Sweep, serde_json::Value), TrainError> {
        Self::resume_from(out_dir, device)
    }

    /// Width of the activations.
    pub fn d_in(&self) -> usize {
        self.row_width()
    }

    /// The training-time scale of an SAE sweep's rows (its one block).
    pub fn input_scale(&self) -> Option<f32> {
        self.row_scales.as_ref().map(|s| s[0])
    }
}

/// What a checkpoint's manifest records of a member: enough to rebuild its
/// trainer before the weights are read.
#[derive(Clone, Debug)]
pub struct MemberSpec<D: Trainable> {
    /// The member's name (its sub-directory).
    pub name: String,
    /// The dictionary's configuration.
    pub config: D::Config,
    /// Its training settings.
    pub training: TrainConfig,
}

/// Letters, digits, `-`, `_`, `.`, not starting with `.`: a name that is
/// one plain directory.
fn check_member_name(name: &str) -> Result<(), TrainError> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(TrainError::Config(format!(
            "dictionary name {name:?}: use letters, digits, '-', '_' and '.' only (not starting with '.')"
        )));
    }
    Ok(())
}

/// The progress bar's message: the first member's last logged step.
fn progress_message(first: &str, members: usize, l: &StepLog, steps_per_second: f64) -> String {
    let who = if members > 1 {
        format!("[{first} of {members}] ")
    } else {
        String::new()
    };
    let blocks = match (l.fvu_per_block.len(), l.fvu_mean_of_blocks) {
        (n, Some(mean)) if n > 1 => format!(" (mean of blocks {mean:.4})"),
        _ => String::new(),
    };
    format!(
        "{who}loss {:.4}  L0 {:.1}  FVU {:.4}{blocks}  {steps_per_second:.1} steps/s",
        l.loss.loss, l.l0, l.fvu
    )
}

/// Copies block `i` of host rows (`rows x sum(widths)`, row-major) into a
/// new `rows x widths[i]` buffer.
pub fn host_block(rows: &[f32], widths: &[usize], i: usize) -> Vec<f32> {
    let total: usize = widths.iter().sum();
    let start: usize = widths[..i].iter().sum();
    let w = widths[i];
    let n = rows.len() / total.max(1);
    let mut out = Vec::with_capacity(n * w);
    for r in rows.chunks_exact(total) {
        out.extend_from_slice(&r[start..start + w]);
    }
    out
}

/// Multiplies block `i` of every row by `scales[i]`, in place.
fn scale_blocks(rows: &mut [f32], widths: &[usize], scales: &[f32]) {
    let total: usize = widths.iter().sum();
    for row in rows.chunks_exact_mut(total) {
        let mut start = 0;
        for (&w, &c) in widths.iter().zip(scales) {
            row[start..start + w].iter_mut().for_each(|v| *v *= c);
            start += w;
        }
    }
}

/// Host bytes that training the dictionaries of `shapes` together (a
/// [`Sweep`]) on batches of `batch_size` rows needs at least. On the host
/// (`on_host`, burn's `flex` backend): every dictionary's parameters five
/// times over (the weights, their gradients, Adam's two moments, and the
/// host copy made at initialisation), plus the batch temporaries of the
/// largest members that step at once (one per core of rayon's pool, see
/// [`Sweep::steps_members_in_parallel`]): four `[batch, d_sae]` matrices
/// each (pre-activations, features, their gradients) and two of the input
/// and output widths. On a GPU only the host side of initialisation
/// counts (the parameters twice); what lives on the device is the device's
/// business. Callers check it with [`kibitzer_store::memory::check`] before
/// [`Sae::init`](crate::Sae::init) allocates anything. Saturates instead of
/// overflowing.
pub fn memory_needed(shapes: &[crate::SaeConfig], batch_size: usize, on_host: bool) -> u128 {
    use kibitzer_store::memory::{f32_bytes, product};
    let copies = if on_host { 5 } else { 2 };
    let params = shapes
        .iter()
        .map(|c| c.parameter_count().saturating_mul(copies))
        .fold(0u128, u128::saturating_add);
    let mut temporaries: Vec<u128> = shapes
        .iter()
        .map(|c| {
            product(&[batch_size, c.d_sae])
                .saturating_mul(4)
                .saturating_add(
                    product(&[batch_size, c.d_in.saturating_add(c.d_out)]).saturating_mul(2),
                )
        })
        .collect();
    temporaries.sort_unstable_by(|a, b| b.cmp(a));
    let batch = temporaries
        .iter()
        .take(rayon::current_num_threads().max(1))
        .fold(0u128, |sum, &t| sum.saturating_add(t));
    f32_bytes(params.saturating_add(if on_host { batch } else { 0 }))
}

/// `sqrt(d_in) / mean_b ||x_b||`: the factor that gives rows a mean norm of
/// `sqrt(d_in)` (SAELens's `expected_average_only_in`).
pub fn estimate_input_scale(rows: &[f32], d_in: usize) -> f32 {
    let n = rows.len() / d_in.max(1);
    if n == 0 {
        return 1.0;
    }
    let mean_norm = rows
        .chunks_exact(d_in)
        .map(|r| r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt())
        .sum::<f64>()
        / n as f64;
    if mean_norm > 0.0 && mean_norm.is_finite() {
        ((d_in as f64).sqrt() / mean_norm) as f32
    } else {
        1.0
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
