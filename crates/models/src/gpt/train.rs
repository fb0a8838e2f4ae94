//! Training a [`Gpt`] on token sequences: AdamW with warm-up and cosine
//! decay, evaluation loss, atomic checkpoints and bit-identical resume.
//!
//! The batch of step `s` is drawn from the seed and `s` alone, so a run
//! resumed from a checkpoint sees exactly the batches the uninterrupted run
//! would have, and ends with the same weights.

use super::{Gpt, GptConfig};
use crate::error::ModelError;
use crate::params::{
    AdamW, AdamWConfig, LrSchedule, Parameterized, TensorFile, kibitzer_metadata, write_tensors,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kibitzer_hooks::{Hooks, check_target_ranges, next_token_loss_over};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ops::Range;
use std::path::Path;

/// Token sequences of one length (padded), checked against a vocabulary.
#[derive(Clone, Debug)]
pub struct TokenDataset {
    tokens: Vec<i64>,
    seq_len: usize,
    pad: Option<u32>,
    /// The target positions the loss scores: ordered, disjoint ranges
    /// inside `1..seq_len` (`[1..seq_len]`: every target).
    scored: Vec<Range<usize>>,
}

impl TokenDataset {
    /// `sequences` padded with `pad` to the longest one's length. Every id
    /// must be below `d_vocab`, no sequence may be longer than `n_ctx`, and
    /// each needs two tokens or more (one prediction).
    pub fn new(
        sequences: &[Vec<u32>],
        pad: Option<u32>,
        d_vocab: usize,
        n_ctx: usize,
    ) -> Result<TokenDataset, ModelError> {
        let seq_len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        if sequences.is_empty() {
            return Err(ModelError::Input(
                "a token dataset needs at least one sequence".into(),
            ));
        }
        if seq_len > n_ctx {
            return Err(ModelError::Input(format!(
                "the longest sequence has {seq_len} tokens, more than n_ctx = {n_ctx}"
            )));
        }
        let mut tokens = Vec::with_capacity(sequences.len() * seq_len);
        for (i, seq) in sequences.iter().enumerate() {
            if seq.len() < 2 {
                return Err(ModelError::Input(format!(
                    "sequence {i} has {} tokens; at least 2 are needed for a prediction",
                    seq.len()
                )));
            }
            if seq.len() < seq_len && pad.is_none() {
                return Err(ModelError::Input(format!(
                    "sequence {i} is shorter than the longest ({seq_len}) and no pad token was given"
                )));
            }
            for (p, &t) in seq.iter().enumerate() {
                if t as usize >= d_vocab {
                    return Err(ModelError::Input(format!(
                        "sequence {i}, position {p}: token {t} is outside the vocabulary (d_vocab = {d_vocab})"
                    )));
                }
                if Some(t) == pad {
                    return Err(ModelError::Input(format!(
                        "sequence {i}, position {p}: the pad token {t} inside a sequence"
                    )));
                }
            }
            tokens.extend(seq.iter().map(|&t| i64::from(t)));
            tokens.extend(std::iter::repeat_n(
                i64::from(pad.unwrap_or(0)),
                seq_len - seq.len(),
            ));
        }
        Ok(TokenDataset {
            tokens,
            seq_len,
            pad,
            scored: vec![1..seq_len],
        })
    }

    /// The same sequences, with the training and evaluation loss on the
    /// targets at positions `from..` only (a prompt is read, not learnt):
    /// a grid quiz scores its answer grid alone. `from` must leave at least
    /// one target (`1 <= from < seq_len`).
    pub fn with_loss_from(self, from: usize) -> Result<TokenDataset, ModelError> {
        if from == 0 || from >= self.seq_len {
            return Err(ModelError::Input(format!(
                "the loss starts at position {from}, but sequences have {} tokens: it must start in 1..{}",
                self.seq_len, self.seq_len
            )));
        }
        let end = self.seq_len;
        self.with_scored_targets(vec![from..end])
    }

    /// The same sequences, with the loss on the targets at the positions in
    /// `ranges` only: ordered, disjoint, non-empty ranges inside
    /// `1..seq_len` (a grid quiz scored on both grids it could be asked to
    /// write, f(A) and f(B)). Every sequence must have a scored target that
    /// is not padding.
    pub fn with_scored_targets(
        mut self,
        ranges: Vec<Range<usize>>,
    ) -> Result<TokenDataset, ModelError> {
        check_target_ranges(&ranges, self.seq_len)
            .map_err(|e| ModelError::Input(format!("scored targets: {e}")))?;
        if let Some(pad) = self.pad {
            let pad = i64::from(pad);
            if let Some(i) = (0..self.len()).find(|&i| {
                let seq = self.sequence(i);
                ranges
                    .iter()
                    .all(|r| seq[r.clone()].iter().all(|&t| t == pad))
            }) {
                return Err(ModelError::Input(format!(
                    "sequence {i} is padding at every scored position ({ranges:?}): it has nothing to score"
                )));
            }
        }
        self.scored = ranges;
        Ok(self)
    }

    /// The target positions the loss scores.
    pub fn scored_targets(&self) -> &[Range<usize>] {
        &self.scored
    }

    /// Scored targets of sequence `i` that are not padding.
    fn scored_count(&self, i: usize) -> usize {
        let seq = self.sequence(i);
        self.scored
            .iter()
            .flat_map(|r| seq[r.clone()].iter())
            .filter(|&&t| self.pad.is_none_or(|p| t != i64::from(p)))
            .count()
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.tokens.len() / self.seq_len
    }

    /// Whether the dataset is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Length of every (padded) sequence.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The padding token.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// Sequence `i`, padding included.
    pub fn sequence(&self, i: usize) -> &[i64] {
        &self.tokens[i * self.seq_len..(i + 1) * self.seq_len]
    }

    /// The sequences at `indices` as a `[indices.len(), seq_len]` tensor.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<2, Int> {
        let mut flat = Vec::with_capacity(indices.len() * self.seq_len);
        for &i in indices {
            flat.extend_from_slice(self.sequence(i));
        }
        Tensor::from_data(TensorData::new(flat, [indices.len(), self.seq_len]), device)
    }
}

/// Settings of a GPT training run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GptTrainConfig {
    /// Optimiser steps.
    pub steps: u64,
    /// Sequences per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Final learning rate as a fraction of the peak (cosine decay).
    pub final_lr_fraction: f64,
    /// AdamW's settings.
    pub adamw: AdamWConfig,
    /// Evaluate every this many steps (and at the end); 0: only at the end.
    pub eval_every: u64,
    /// Sequences per evaluation batch.
    pub eval_batch_size: usize,
    /// Write a checkpoint every this many steps (and at the end); 0: only at the end.
    pub checkpoint_every: u64,
    /// Record the training loss every this many steps.
    pub log_every: u64,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for GptTrainConfig {
    /// 1000 steps of 64 sequences at 1e-3 with 100 warm-up steps, decaying to 10%.
    fn default() -> Self {
        GptTrainConfig {
            steps: 1000,
            batch_size: 64,
            lr: 1e-3,
            warmup_steps: 100,
            final_lr_fraction: 0.1,
            adamw: AdamWConfig::default(),
            eval_every: 100,
            eval_batch_size: 256,
            checkpoint_every: 500,
            log_every: 10,
            seed: 0,
        }
    }
}

impl GptTrainConfig {
    /// Checks the settings, naming the field at fault.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(ModelError::Config(
                "batch_size and eval_batch_size must be at least 1".into(),
            ));
        }
        if self.lr.is_nan() || self.lr <= 0.0 {
            return Err(ModelError::Config(format!(
                "lr must be positive, got {}",
                self.lr
            )));
        }
        if !(0.0..=1.0).contains(&self.final_lr_fraction) {
            return Err(ModelError::Config(format!(
                "final_lr_fraction must be in [0, 1], got {}",
                self.final_lr_fraction
            )));
        }
        if self.log_every == 0 {
            return Err(ModelError::Config("log_every must be at least 1".into()));
        }
        self.adamw.validate()
    }

    /// The learning-rate schedule.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            peak: self.lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
            final_fraction: self.final_lr_fraction,
        }
    }
}

/// One line of the training history.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainLog {
    /// Steps completed.
    pub step: u64,
    /// Training loss of the last step.
    pub train_loss: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Gradient norm of the last step (before clipping).
    pub grad_norm: f64,
    /// Evaluation loss, when evaluated at this step.
    pub eval_loss: Option<f64>,
}

const CHECKPOINT_FORMAT: &str = "kibitzer-gpt-checkpoint-v1";

/// A GPT being trained: the model, the optimiser state, the step count and
/// the history, everything a checkpoint holds.
#[derive(Clone, Debug)]
pub struct GptTrainer {
    /// The model.
    pub model: Gpt,
    /// The run's settings.
    pub config: GptTrainConfig,
    adam: AdamW,
    step: u64,
    history: Vec<TrainLog>,
}

impl GptTrainer {
    /// A trainer starting at step 0.
    pub fn new(model: Gpt, config: GptTrainConfig) -> Result<GptTrainer, ModelError> {
        config.validate()?;
        Ok(GptTrainer {
            adam: AdamW::new(config.adamw),
            model,
            config,
            step: 0,
            history: Vec::new(),
        })
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The history so far.
    pub fn history(&self) -> &[TrainLog] {
        &self.history
    }

    /// The indices of the batch of step `step`.
    fn batch_indices(&self, step: u64, n: usize) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        rng.set_stream(step);
        (0..self.config.batch_size)
            .map(|_| rng.random_range(0..n))
            .collect()
    }

    /// One optimiser step on the batch of the current step. Returns the
    /// training loss; a non-finite loss or gradient is an error and leaves
    /// the trainer unchanged.
    pub fn train_step(&mut self, data: &TokenDataset) -> Result<TrainLog, ModelError> {
        let device = self.model.device();
        let tokens = data.batch(&self.batch_indices(self.step, data.len()), &device);
        let (pad, scored) = (data.pad(), data.scored_targets());
        let (loss, grads) =
            crate::params::gradients(&self.model, |m| -> Result<Tensor<1>, ModelError> {
                let logits = m
                    .logits_unchecked(&tokens, &mut Hooks::new())?
                    .expect("no hooks, so the pass runs to the end");
                Ok(next_token_loss_over(logits, tokens.clone(), pad, scored)?)
            })?;
        if !loss.is_finite() {
            return Err(ModelError::NonFinite {
                step: self.step,
                what: "the training loss".into(),
            });
        }
        let lr = self.config.schedule().at(self.step);
        let (model, stats) = self.adam.step(&self.model, grads, lr)?;
        self.model = model;
        self.step += 1;
        Ok(TrainLog {
            step: self.step,
            train_loss: loss,
            lr,
            grad_norm: stats.grad_norm,
            eval_loss: None,
        })
    }

    /// Mean next-token loss over `data` (every sequence, weighted by its
    /// number of predictions).
    pub fn eval_loss(&self, data: &TokenDataset) -> Result<f64, ModelError> {
        evaluate(&self.model, data, self.config.eval_batch_size)
    }

    /// Trains until `config.steps`, evaluating on `eval` and writing
    /// checkpoints to `checkpoint` as configured (and at the end), with a
    /// progress bar on stderr if `progress`. Returns the history.
    pub fn train(
        &mut self,
        data: &TokenDataset,
        eval: Option<&TokenDataset>,
        checkpoint: Option<&Path>,
        progress: bool,
    ) -> Result<Vec<TrainLog>, ModelError> {
        let bar = kibitzer_io::progress::bar(progress, self.config.steps, self.step, "steps");
        while self.step < self.config.steps {
            let mut log = self.train_step(data)?;
            let last = self.step == self.config.steps;
            if let Some(eval) = eval
                && (last
                    || (self.config.eval_every > 0
                        && self.step.is_multiple_of(self.config.eval_every)))
            {
                log.eval_loss = Some(self.eval_loss(eval)?);
            }
            if last || log.eval_loss.is_some() || self.step.is_multiple_of(self.config.log_every) {
                self.history.push(log);
                bar.set_message(format!(
                    "loss {:.4}{}",
                    log.train_loss,
                    log.eval_loss
                        .map_or(String::new(), |e| format!(" eval {e:.4}"))
                ));
            }
            bar.set_position(self.step);
            if let Some(path) = checkpoint
                && (last
                    || (self.config.checkpoint_every > 0
                        && self.step.is_multiple_of(self.config.checkpoint_every)))
            {
                self.save_checkpoint(path)?;
            }
        }
        bar.finish_and_clear();
        Ok(self.history.clone())
    }

    /// Writes everything needed to resume to one safetensors file,
    /// atomically (temporary file, fsync, rename).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let tensors = self.adam.checkpoint_tensors(&self.model);
        let meta = serde_json::json!({
            "format": CHECKPOINT_FORMAT,
            "model": self.model.config(),
            "train": self.config,
            "step": self.step,
            "history": self.history,
        });
        write_tensors(path.as_ref(), &tensors, &meta)
    }

    /// Resumes from a checkpoint written by [`GptTrainer::save_checkpoint`].
    /// `steps` extends (or shortens) the run; everything else is as saved.
    pub fn resume(
        path: impl AsRef<Path>,
        device: &Device,
        steps: Option<u64>,
    ) -> Result<GptTrainer, ModelError> {
        let path = path.as_ref();
        let mut file = TensorFile::open(path)?;
        let meta = kibitzer_metadata(&file)?;
        let bad = |message: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        if meta["format"] != CHECKPOINT_FORMAT {
            return Err(bad(format!(
                "format is {}, expected {CHECKPOINT_FORMAT}",
                meta["format"]
            )));
        }
        let model_config: GptConfig = serde_json::from_value(meta["model"].clone())
            .map_err(|e| bad(format!("model config: {e}")))?;
        let mut config: GptTrainConfig = serde_json::from_value(meta["train"].clone())
            .map_err(|e| bad(format!("train config: {e}")))?;
        let step: u64 =
            serde_json::from_value(meta["step"].clone()).map_err(|e| bad(format!("step: {e}")))?;
        let history: Vec<TrainLog> = serde_json::from_value(meta["history"].clone())
            .map_err(|e| bad(format!("history: {e}")))?;
        if let Some(steps) = steps {
            config.steps = steps;
        }
        let model = file.take_params(Gpt::new(model_config, device)?, "param/", device)?;
        let adam = AdamW::restore(config.adamw, step, &mut file, &model.named_params(), device)?;
        file.finish(
            |_| false,
            |_| "not part of a GPT checkpoint of this config".into(),
        )?;
        config.validate()?;
        Ok(GptTrainer {
            model,
            config,
            adam,
            step,
            history,
        })
    }
}

/// Mean next-token loss of `model` over every sequence of `data`, in
/// batches of `batch_size` (weighted by predictions, padding and the
/// targets outside [`TokenDataset::scored_targets`] left out).
pub fn evaluate(model: &Gpt, data: &TokenDataset, batch_size: usize) -> Result<f64, ModelError> {
    let device = model.device();
    let (mut total, mut count) = (0.0, 0.0);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let tokens = data.batch(chunk, &device);
        let logits = model
            .logits_unchecked(&tokens, &mut Hooks::new())?
            .expect("no hooks, so the pass runs to the end");
        let predictions = chunk.iter().map(|&i| data.scored_count(i)).sum::<usize>() as f64;
        let mean = kibitzer_sae::ops::scalar(next_token_loss_over(
            logits,
            tokens,
            data.pad(),
            data.scored_targets(),
        )?);
        total += mean * predictions;
        count += predictions;
    }
    Ok(total / count)
}
