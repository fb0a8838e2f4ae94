//! `kibitzer xcoder ...`: transcoders and crosscoders trained from
//! activation stores read in lockstep, and stage-wise model diffing; a thin
//! layer over [`kibitzer_xcoder::api`].
//!
//! Beside what the library writes in the output directory (`sweep.json`,
//! `checkpoint.json`, `<name>/`, or `stage-*/` and `diff.*`), the command
//! writes `command.json`, the settings it started with (stores, seed,
//! dictionary and training flags): `--resume` reads them, so a run continues
//! over the same stores in the same order whatever else the resuming command
//! line says, and a flag that disagrees with them is refused by name.
//! `xcoder train` also writes `<name>/eval.json`, the metrics of each saved
//! dictionary on rows of its stores. Several values of `--d-sae`, `--k` or
//! `--l1` train one dictionary of each combination from one pass over the
//! stores, as `sae train` does.

use super::CliResult;
use clap::{Args, Subcommand, ValueEnum};
use kibitzer_sae::train::{RunOptions, TrainConfig, TrainFlags};
use kibitzer_sae::{Architecture, DeviceChoice, Family};
use kibitzer_store::{ReaderConfig, Store, atomic_write};
use kibitzer_xcoder::api::{self, DictionaryRequest, DictionarySpec, DiffRequest, TrainRequest};
use kibitzer_xcoder::diff::{DmParent, RankBy, StagewiseDiff};
use kibitzer_xcoder::source::AlignedStores;
use kibitzer_xcoder::{Block, Kind, eval, format};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

type AnyError = Box<dyn std::error::Error>;

/// Where a run's starting settings are kept, in its output directory.
const COMMAND_FILE: &str = "command.json";
/// The library's marker of a run that wrote a checkpoint.
const CHECKPOINT_FILE: &str = "checkpoint.json";
const DEFAULT_BATCH: usize = 4096;
const DEFAULT_SHUFFLE_MIB: usize = 2048;
/// Rows of `diff.md` when ranking saved stages, as `kibitzer xcoder diff`
/// writes it after training.
const DIFF_MD_ROWS: usize = 20;

#[derive(Subcommand, Debug)]
pub enum XcoderCommand {
    /// Train a transcoder (one hook site predicts another), a crosscoder
    /// (several layers or models read and reconstructed through one latent
    /// space) or a cross-layer transcoder (each layer's features write to
    /// that layer's MLP output and every later one's; saved in
    /// circuit-tracer's layout) from activation stores harvested from the
    /// same examples.
    Train(TrainArgs),
    /// Stage-wise model diffing: train one dictionary on (base model, base
    /// data), fine-tune it on (base model, fine-tuning data), (fine-tuned
    /// model, base data) and (fine-tuned model, fine-tuning data), and rank
    /// the features by how their decoders change; or rank four saved stages.
    Diff(DiffArgs),
    /// A cross-layer transcoder (or one transcoder per layer) as the
    /// replacement model of the GPT it was trained on: every covered MLP
    /// replaced by the dictionary's output, layer by layer; the next-token
    /// loss against the clean and MLP-ablated model, KL, top-1 agreement
    /// and L0 per layer (fidelity.json, fidelity.md).
    Fidelity(FidelityArgs),
}

#[derive(Args, Debug)]
pub struct FidelityArgs {
    /// The GPT's directory (`kibitzer gpt train --out`).
    #[arg(long)]
    pub model: PathBuf,
    /// The CLT's directory (what `kibitzer xcoder train --kind clt` saved).
    #[arg(
        long,
        required_unless_present = "transcoders",
        conflicts_with = "transcoders"
    )]
    pub clt: Option<PathBuf>,
    /// Instead of a CLT, one transcoder per layer 0..n, in order
    /// (comma-separated directories): the per-layer baseline.
    #[arg(long, value_delimiter = ',')]
    pub transcoders: Vec<PathBuf>,
    /// Games to score (an Othello dataset or chess games), cut to the
    /// model's context; use games the CLT was not trained on.
    #[arg(long)]
    pub games: PathBuf,
    /// Score the first N games only.
    #[arg(long)]
    pub max_games: Option<usize>,
    /// Games per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Output directory for fidelity.json and fidelity.md.
    #[arg(long)]
    pub out: PathBuf,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

fn fidelity(a: &FidelityArgs) -> CliResult {
    let device = a.device.device()?;
    let dirs = match &a.clt {
        Some(clt) => vec![clt.clone()],
        None => a.transcoders.clone(),
    };
    let report = kibitzer::clt::fidelity_on_games(
        &a.model,
        &dirs,
        &a.games,
        a.max_games,
        a.batch_size,
        &device,
    )?;
    let f = &report.fidelity;
    let mut md = format!(
        "# Replacement-model fidelity\n\n{} `{}` in place of the MLPs of layers 0..{} of `{}`, on {} games of `{}` ({} predictions).\n\n\
         | model | next-token loss (nats) |\n|---|---:|\n\
         | clean | {:.4} |\n| replacement | {:.4} |\n| MLPs zero-ablated | {:.4} |\n\n\
         Loss recovered {:.3}; KL(clean || replacement) {:.4} nats per prediction; top-1 agreement {:.3}.\n\n\
         | layer | active features per token |\n|---:|---:|\n",
        if report.replacement == "clt" {
            "CLT"
        } else {
            "Per-layer transcoders"
        },
        report
            .dictionaries
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join("`, `"),
        f.layers_replaced,
        report.model.display(),
        report.games_scored,
        report.games.display(),
        f.predictions,
        f.clean_loss,
        f.replaced_loss,
        f.mlp_ablated_loss,
        f.loss_recovered,
        f.kl_divergence,
        f.top1_agreement,
    );
    for (l, l0) in f.l0_per_layer.iter().enumerate() {
        md.push_str(&format!("| {l} | {l0:.1} |\n"));
    }
    super::write_report(&a.out, "fidelity", &report, &md)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub fn run(cmd: XcoderCommand) -> CliResult {
    match cmd {
        XcoderCommand::Train(a) => train(&a),
        XcoderCommand::Diff(a) => diff(&a),
        XcoderCommand::Fidelity(a) => fidelity(&a),
    }
}

/// What to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindArg {
    Transcoder,
    Crosscoder,
    /// Cross-layer transcoder: 2n stores, every layer's input site then
    /// every layer's output site; --d-sae counts features per layer.
    Clt,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Transcoder => Kind::Transcoder,
            KindArg::Crosscoder => Kind::Crosscoder,
            KindArg::Clt => Kind::Clt,
        }
    }
}

/// The architectures transcoders and crosscoders support (crosscoders:
/// standard, topk, batchtopk, matryoshka).
const XCODER_FAMILIES: [Family; 6] = [
    Family::Standard,
    Family::Gated,
    Family::Topk,
    Family::Batchtopk,
    Family::Jumprelu,
    Family::Matryoshka,
];

/// Feature rankings of `xcoder diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RankByArg {
    /// Turns when the model changes, on both data sets, and not when only
    /// the data change.
    ModelChange,
    /// Turns when the data change, on both models.
    DataChange,
    /// Turns from stage S to stage DM.
    Total,
    /// Largest relative change of a block's decoder norm from S to DM.
    NormChange,
}

impl From<RankByArg> for RankBy {
    fn from(r: RankByArg) -> Self {
        match r {
            RankByArg::ModelChange => RankBy::ModelChange,
            RankByArg::DataChange => RankBy::DataChange,
            RankByArg::Total => RankBy::Total,
            RankByArg::NormChange => RankBy::NormChange,
        }
    }
}

/// Which stage DM continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmParentArg {
    /// S → D → DM (data first).
    D,
    /// S → M → DM (model first).
    M,
}

/// The dictionary's shape and sparsity, shared by `train` and `diff`.
#[derive(Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DictionaryArgs {
    /// Architecture: standard (L1), topk, batchtopk, matryoshka; gated and
    /// jumprelu for transcoders and CLTs (CLTs: jumprelu, batchtopk,
    /// standard).
    #[arg(long, value_parser = super::family_parser(&XCODER_FAMILIES))]
    pub arch: Option<Family>,
    /// Number of features (a CLT: features per layer); several
    /// (comma-separated) train one dictionary of each size from one pass.
    #[arg(long, conflicts_with = "expansion", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub d_sae: Vec<usize>,
    /// Number of features as a multiple of the input width (a transcoder's
    /// input site; a crosscoder's widest block; a CLT's d_model, per layer).
    #[arg(long)]
    pub expansion: Option<usize>,
    /// TopK/BatchTopK: active features per row [default: 32]; several
    /// (comma-separated) make a grid with the sizes.
    #[arg(long, value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub k: Vec<usize>,
    /// Sparsity coefficient: L1 for standard, L0 for jumprelu [default: the
    /// architecture's]; several (comma-separated) make a grid with the sizes.
    #[arg(long, value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub l1: Vec<f64>,
    /// JumpReLU: bandwidth of the straight-through estimator [default: 0.001].
    #[arg(long)]
    pub bandwidth: Option<f64>,
    /// Transcoders: add an affine skip path from input to output.
    #[arg(long)]
    pub skip: bool,
    /// Transcoder from one store whose rows hold input and output side by
    /// side: the width of the input part.
    #[arg(long)]
    pub input_width: Option<usize>,
    /// Crosscoder from one store whose rows hold every block side by side:
    /// the block widths (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub block_widths: Vec<usize>,
}

/// A list field of the settings, read from a `command.json` written when it
/// held one value (a number, or null for none) or from one that holds a list.
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(v)) => vec![v],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// Optimiser and data-order settings, shared by `train` and `diff`.
#[derive(Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingArgs {
    /// Peak learning rate [default: the architecture's].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Rows per batch [default: 4096].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimiser steps [default: one pass over the (first stage's) stores].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of initialisation and data order [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// TOML file with training settings (any field of the training config,
    /// as for `kibitzer sae train`); flags given on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Memory for shuffling activations, in MiB, for all stores together
    /// [default: 2048].
    #[arg(long)]
    pub shuffle_memory_mib: Option<usize>,
}

/// How a run reports and saves itself; free to change on `--resume`.
#[derive(Args, Debug, Clone)]
pub struct RunFlags {
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Checkpoint every N steps [default: 1000, or what the resumed run
    /// used].
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Log every N steps (log.jsonl and the progress bar) [default: 50, or
    /// what the resumed run used].
    #[arg(long)]
    pub log_every: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// How often a run checkpoints and logs, kept in `command.json` so that a
/// resumed run goes on as it started unless told otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Cadence {
    checkpoint_every: usize,
    log_every: usize,
}

impl RunFlags {
    /// The cadence given now, else the saved one, else the defaults.
    fn cadence(&self, saved: Option<Cadence>) -> Cadence {
        Cadence {
            checkpoint_every: self
                .checkpoint_every
                .or(saved.map(|c| c.checkpoint_every))
                .unwrap_or(1000),
            log_every: self.log_every.or(saved.map(|c| c.log_every)).unwrap_or(50),
        }
    }

    fn options(&self, out: &Path, cadence: Cadence) -> RunOptions {
        RunOptions {
            out_dir: out.to_path_buf(),
            checkpoint_every: cadence.checkpoint_every,
            log_every: cadence.log_every,
            progress: !self.quiet,
            stop_after: None,
        }
    }
}

/// The settings that make a training run (kept in `command.json`).
#[derive(Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// What to train: transcoder, crosscoder or clt (cross-layer transcoder).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Activation stores read in lockstep (comma-separated or repeated): a
    /// transcoder's input site then its output site, a crosscoder's blocks
    /// in order, or a CLT's input sites of layers 0..n then its output sites
    /// of the same layers; or one store with --input-width / --block-widths.
    #[arg(long, value_delimiter = ',')]
    pub stores: Vec<PathBuf>,
    /// Transcoders: the store of the site read (instead of --stores).
    #[arg(long, requires = "output_store", conflicts_with = "stores")]
    pub input_store: Option<PathBuf>,
    /// Transcoders: the store of the site predicted (instead of --stores).
    #[arg(long, requires = "input_store", conflicts_with = "stores")]
    pub output_store: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub dictionary: DictionaryArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub training: TrainingArgs,
    /// Run name, the dictionary's sub-directory of --out [default: e.g.
    /// transcoder-topk-d16384-k32].
    #[arg(long)]
    pub name: Option<String>,
    /// Fine-tune this saved dictionary (same kind and shape) instead of
    /// starting from scratch.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub settings: TrainSettings,
    /// Output directory: the run (sweep.json, checkpoint.json, command.json)
    /// and each dictionary in <name>/ (with its eval.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint, with the stores
    /// and settings it started with (other flags may be left out).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub run: RunFlags,
    /// Rows of the stores (in store order) to evaluate the saved dictionary
    /// on at the end; 0 skips it. These are training rows, not held out.
    #[arg(long, default_value_t = 8192)]
    pub eval_rows: usize,
    /// Stop after N steps of this call without saving the dictionary, as if
    /// killed (for testing --resume).
    #[arg(long, hide = true)]
    pub stop_after: Option<usize>,
}

/// The settings that make a diffing run (kept in `command.json`).
#[derive(Args, Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffSettings {
    /// What to train [default: crosscoder].
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Stage S stores (base model, base data), read in lockstep
    /// (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    pub stage_s: Vec<PathBuf>,
    /// Stage D stores (base model, fine-tuning data).
    #[arg(long, value_delimiter = ',')]
    pub stage_d: Vec<PathBuf>,
    /// Stage M stores (fine-tuned model, base data).
    #[arg(long, value_delimiter = ',')]
    pub stage_m: Vec<PathBuf>,
    /// Stage DM stores (fine-tuned model, fine-tuning data).
    #[arg(long, value_delimiter = ',')]
    pub stage_dm: Vec<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub dictionary: DictionaryArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub training: TrainingArgs,
    /// Fine-tuning steps of stages D, M and DM [default: one pass over the
    /// stage-D stores].
    #[arg(long)]
    pub fine_tune_steps: Option<usize>,
    /// Peak learning rate of the fine-tuning stages [default: --lr].
    #[arg(long)]
    pub fine_tune_lr: Option<f64>,
    /// Which stage DM continues: d (S → D → DM) or m (S → M → DM)
    /// [default: d].
    #[arg(long, value_enum)]
    pub dm_parent: Option<DmParentArg>,
}

#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    #[command(flatten)]
    pub settings: DiffSettings,
    /// Rank four saved stages of one dictionary instead of training: the
    /// dictionary directories of stages S, D, M and DM.
    #[arg(long, num_args = 4, value_names = ["S", "D", "M", "DM"], conflicts_with = "resume")]
    pub from_saved: Vec<PathBuf>,
    /// How to rank the features.
    #[arg(long, value_enum, default_value_t = RankByArg::ModelChange)]
    pub rank_by: RankByArg,
    /// Top-ranked features to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Output directory: stage-S/, stage-D/, stage-M/, stage-DM/, diff.json,
    /// diff.md, command.json (with --from-saved: where diff.json and diff.md
    /// go, if given).
    #[arg(long, required_unless_present = "from_saved")]
    pub out: Option<PathBuf>,
    /// Continue the diffing run in --out (finished stages are not
    /// retrained), with the stores and settings it started with.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub run: RunFlags,
}

/// `path` made absolute, or an error naming it (a missing store or file).
fn canonical(path: &Path, what: &str) -> Result<PathBuf, AnyError> {
    std::fs::canonicalize(path).map_err(|e| format!("{what} {}: {e}", path.display()).into())
}

fn canonical_all(paths: &[PathBuf], what: &str) -> Result<Vec<PathBuf>, AnyError> {
    paths.iter().map(|p| canonical(p, what)).collect()
}

impl TrainSettings {
    /// One spelling of the same settings: --input-store/--output-store as
    /// --stores, every path absolute (so that a resuming command line given
    /// from another directory compares equal).
    fn normalized(mut self) -> Result<Self, AnyError> {
        if let (Some(input), Some(output)) = (self.input_store.take(), self.output_store.take()) {
            if matches!(self.kind, Some(KindArg::Crosscoder | KindArg::Clt)) {
                return Err("--input-store and --output-store are for transcoders; give a crosscoder's or a CLT's stores with --stores".into());
            }
            self.stores = vec![input, output];
        }
        self.stores = canonical_all(&self.stores, "activation store")?;
        self.training.config = self
            .training
            .config
            .as_deref()
            .map(|p| canonical(p, "training config"))
            .transpose()?;
        self.init_from = self
            .init_from
            .as_deref()
            .map(|p| canonical(p, "--init-from dictionary"))
            .transpose()?;
        Ok(self)
    }
}

impl DiffSettings {
    fn normalized(mut self) -> Result<Self, AnyError> {
        for (stage, paths) in [
            ("S", &mut self.stage_s),
            ("D", &mut self.stage_d),
            ("M", &mut self.stage_m),
            ("DM", &mut self.stage_dm),
        ] {
            *paths = canonical_all(paths, &format!("stage {stage} store"))?;
        }
        self.training.config = self
            .training
            .config
            .as_deref()
            .map(|p| canonical(p, "training config"))
            .transpose()?;
        Ok(self)
    }
}

/// The command line's flag for a settings field.
fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// Whether a serialised settings field was given on the command line.
fn is_given(v: &Value) -> bool {
    !(v.is_null() || *v == Value::Bool(false) || v.as_array().is_some_and(|a| a.is_empty()))
}

/// The flags given in `settings`.
fn given_flags<T: Serialize>(settings: &T) -> Result<Vec<String>, AnyError> {
    let value = serde_json::to_value(settings)?;
    Ok(value
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| is_given(v))
                .map(|(k, _)| flag(k))
                .collect()
        })
        .unwrap_or_default())
}

#[derive(Serialize, Deserialize)]
struct SavedCommand<T> {
    /// `xcoder train` or `xcoder diff`.
    command: String,
    cadence: Cadence,
    settings: T,
}

fn save_command<T: Serialize>(
    out: &Path,
    command: &str,
    settings: &T,
    cadence: Cadence,
) -> Result<(), AnyError> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let saved = SavedCommand {
        command: command.to_string(),
        cadence,
        settings,
    };
    let path = out.join(COMMAND_FILE);
    atomic_write(&path, serde_json::to_string_pretty(&saved)?.as_bytes())?;
    Ok(())
}

/// The settings a run in `out` started with, and its cadence. Flags given
/// now must agree with them: a resumed run keeps its stores, data order,
/// dictionary and training config. Without `command.json` (a run started
/// from the library), the given settings are used as they are.
fn resumed_settings<T>(
    out: &Path,
    command: &str,
    given: T,
) -> Result<(T, Option<Cadence>), AnyError>
where
    T: Serialize + DeserializeOwned,
{
    let path = out.join(COMMAND_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && !out.join(CHECKPOINT_FILE).exists() =>
        {
            return Err(format!(
                "{}: no run to resume there (no {COMMAND_FILE} or {CHECKPOINT_FILE}); start one without --resume",
                out.display()
            )
            .into());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((given, None)),
        Err(e) => return Err(format!("{}: {e}", path.display()).into()),
    };
    let saved: SavedCommand<T> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if saved.command != command {
        return Err(format!(
            "{} holds a `kibitzer {}` run, not a `kibitzer {command}` one",
            out.display(),
            saved.command
        )
        .into());
    }
    let (now, then) = (
        serde_json::to_value(&given)?,
        serde_json::to_value(&saved.settings)?,
    );
    let mut differing = Vec::new();
    for (field, value) in now.as_object().into_iter().flatten() {
        let before = then.get(field).unwrap_or(&Value::Null);
        if is_given(value) && value != before {
            let before = if is_given(before) {
                before.to_string()
            } else {
                "not given".to_string()
            };
            differing.push(format!(
                "{}: {value} now, {before} when the run started",
                flag(field)
            ));
        }
    }
    if !differing.is_empty() {
        return Err(format!(
            "{} resumes with the settings it started with (see {}), and these differ; start a new --out to change them:\n  {}",
            out.display(),
            path.display(),
            differing.join("\n  ")
        )
        .into());
    }
    Ok((saved.settings, Some(saved.cadence)))
}

fn reader_config(t: &TrainingArgs) -> ReaderConfig {
    ReaderConfig {
        seed: t.seed.unwrap_or(0),
        memory_ceiling_bytes: t
            .shuffle_memory_mib
            .unwrap_or(DEFAULT_SHUFFLE_MIB)
            .saturating_mul(1 << 20),
        shuffle: true,
        cycle: true,
    }
}

/// Steps of one pass over `store` in batches of `batch`.
fn one_pass(store: &Path, batch: usize) -> Result<usize, AnyError> {
    let rows = Store::open(store)?.rows() as usize;
    Ok((rows / batch.max(1)).max(1))
}

/// The family the flags name, checked against the flags that only some
/// families take.
fn family(d: &DictionaryArgs) -> Result<Family, AnyError> {
    let arch = d
        .arch
        .ok_or("--arch is required: standard, topk, batchtopk, jumprelu or matryoshka")?;
    if !XCODER_FAMILIES.contains(&arch) {
        return Err(format!(
            "--arch {arch}: transcoders and crosscoders are standard, topk, batchtopk, jumprelu or matryoshka"
        )
        .into());
    }
    let uses_k = arch.uses_k();
    let name = arch.name();
    if !uses_k && !d.k.is_empty() {
        return Err(format!("--k applies to topk, batchtopk and matryoshka, not {name}").into());
    }
    if uses_k && !d.l1.is_empty() {
        return Err(
            "--l1 does not apply to topk, batchtopk and matryoshka (their sparsity is k)".into(),
        );
    }
    if arch != Family::Jumprelu && d.bandwidth.is_some() {
        return Err(format!("--bandwidth applies to jumprelu, not {name}").into());
    }
    Ok(arch)
}

/// One dictionary of the grid the flags ask for: its shape and, for the
/// families with a coefficient, the `--l1` value it trains with (`None`:
/// the architecture's default).
#[derive(Clone, Debug)]
struct GridPoint {
    spec: DictionarySpec,
    l1: Option<f64>,
}

/// The dictionaries the flags ask for, over the blocks the stores provide:
/// every `--d-sae` with every `--k` (or `--l1`) value, sizes outermost.
fn dictionary_grid(
    kind: Kind,
    d: &DictionaryArgs,
    store_blocks: &[Block],
) -> Result<Vec<GridPoint>, AnyError> {
    let family = family(d)?;
    let block_widths = (!d.block_widths.is_empty()).then(|| d.block_widths.clone());
    let sizes = match (d.d_sae.as_slice(), d.expansion) {
        ([], Some(e)) => {
            let widths: Vec<usize> = store_blocks.iter().map(|b| b.width).collect();
            let base = match kind {
                Kind::Transcoder => d.input_width.or(widths.first().copied()),
                Kind::Crosscoder => block_widths
                    .as_deref()
                    .unwrap_or(&widths)
                    .iter()
                    .copied()
                    .max(),
                // Features per layer, a multiple of d_model.
                Kind::Clt => widths.first().copied(),
            };
            vec![e * base.ok_or("--expansion needs at least one store")?]
        }
        ([], None) => return Err("--d-sae or --expansion is required".into()),
        (sizes, _) => sizes.to_vec(),
    };
    let bandwidth = d.bandwidth.unwrap_or(0.001);
    // (architecture, coefficient) for each sparsity value.
    let sparsities: Vec<(Architecture, Option<f64>)> = if family.uses_k() {
        let ks = if d.k.is_empty() {
            vec![32]
        } else {
            d.k.clone()
        };
        ks.into_iter()
            .map(|k| (family.architecture(k, bandwidth), None))
            .collect()
    } else if d.l1.is_empty() {
        vec![(family.architecture(32, bandwidth), None)]
    } else {
        d.l1.iter()
            .map(|&l1| (family.architecture(32, bandwidth), Some(l1)))
            .collect()
    };
    let mut grid = Vec::new();
    for &d_sae in &sizes {
        for (architecture, l1) in &sparsities {
            grid.push(GridPoint {
                spec: DictionarySpec {
                    kind,
                    architecture: architecture.clone(),
                    d_sae,
                    skip: d.skip,
                    input_width: d.input_width,
                    block_widths: block_widths.clone(),
                },
                l1: *l1,
            });
        }
    }
    Ok(grid)
}

/// The one dictionary the flags ask for (`xcoder diff` trains one per
/// stage).
fn dictionary_spec(
    kind: Kind,
    d: &DictionaryArgs,
    store_blocks: &[Block],
) -> Result<GridPoint, AnyError> {
    let mut grid = dictionary_grid(kind, d, store_blocks)?;
    if grid.len() != 1 {
        return Err(format!(
            "the flags ask for {} dictionaries; give one --d-sae and one --k or --l1 value",
            grid.len()
        )
        .into());
    }
    Ok(grid.remove(0))
}

/// Refuses dictionaries (`specs`, each held `copies` times at once) whose
/// training would not fit in memory, naming the flags, before anything is
/// allocated. The estimate takes every block as both input and output
/// (exact for a crosscoder, an upper bound for a transcoder).
fn check_memory(
    specs: &[&DictionarySpec],
    blocks: &[Block],
    batch: usize,
    copies: usize,
    on_host: bool,
) -> Result<(), AnyError> {
    let width = blocks
        .iter()
        .fold(0usize, |acc, b| acc.saturating_add(b.width));
    let shape = |spec: &DictionarySpec| match spec.kind {
        // A CLT is a transcoder of its stacked layers (half the blocks in,
        // half out) with d_sae features per layer.
        Kind::Clt => {
            let layers = (blocks.len() / 2).max(1);
            kibitzer_sae::SaeConfig {
                d_out: width / 2,
                ..kibitzer_sae::SaeConfig::new(
                    spec.architecture.clone(),
                    width / 2,
                    spec.d_sae.saturating_mul(layers),
                )
            }
        }
        _ => kibitzer_sae::SaeConfig {
            d_out: width,
            ..kibitzer_sae::SaeConfig::new(spec.architecture.clone(), width, spec.d_sae)
        },
    };
    let shapes: Vec<kibitzer_sae::SaeConfig> = specs
        .iter()
        .flat_map(|spec| std::iter::repeat_n(shape(spec), copies))
        .collect();
    let sizes: Vec<String> = specs.iter().map(|s| s.d_sae.to_string()).collect();
    kibitzer_store::memory::check(
        format!(
            "--d-sae {} (or --expansion) with --batch-size {batch} over blocks {width} wide",
            sizes.join(",")
        ),
        kibitzer_sae::train::memory_needed(&shapes, batch, on_host),
    )?;
    Ok(())
}

/// The training config: the architecture's defaults for `steps`, then the
/// config file, then the flags.
fn training_config(
    t: &TrainingArgs,
    d: &DictionaryArgs,
    point: &GridPoint,
    steps: usize,
    lr: Option<f64>,
) -> Result<TrainConfig, AnyError> {
    let spec = &point.spec;
    let flags = TrainFlags {
        steps,
        seed: t.seed.unwrap_or(0),
        batch_size: t.batch_size,
        lr,
        sparsity_coefficient: point.l1,
        p_anneal: None,
    };
    let mut config =
        super::training_config(&spec.architecture, spec.d_sae, t.config.as_deref(), &flags)?;
    if let Some(family) = d.arch {
        family.apply_training_options(&mut config, spec.d_sae);
    }
    Ok(config)
}

fn train(a: &TrainArgs) -> CliResult {
    let device = a.run.device.device()?;
    let given = a.settings.clone().normalized()?;
    let (settings, saved_cadence) = if a.resume {
        resumed_settings(&a.out, "xcoder train", given)?
    } else {
        (given, None)
    };
    let reader = reader_config(&settings.training);
    let cadence = a.run.cadence(saved_cadence);
    let options = RunOptions {
        stop_after: a.stop_after,
        ..a.run.options(&a.out, cadence)
    };
    let outcome = if a.resume {
        if settings.stores.is_empty() {
            return Err(format!(
                "{}: the stores of the run are unknown (no {COMMAND_FILE}); give them with --stores",
                a.out.display()
            )
            .into());
        }
        eprintln!("resuming {}", a.out.display());
        api::resume(&settings.stores, reader, &options, &device)?
    } else {
        if a.out.join(CHECKPOINT_FILE).exists() {
            return Err(format!(
                "{} already holds a training run; pass --resume to continue it or choose another --out",
                a.out.display()
            )
            .into());
        }
        let kind: Kind = settings
            .kind
            .ok_or("--kind is required: transcoder, crosscoder or clt")?
            .into();
        if settings.stores.is_empty() {
            return Err(
                "give the activation stores: --stores (or --input-store and --output-store)".into(),
            );
        }
        // Check the stores and the dictionaries before writing anything.
        let blocks = AlignedStores::open(&settings.stores, reader)?.blocks();
        let grid = dictionary_grid(kind, &settings.dictionary, &blocks)?;
        if grid.len() > 1 && settings.name.is_some() {
            return Err(format!(
                "--name names one dictionary; the flags ask for {}, each named by its shape",
                grid.len()
            )
            .into());
        }
        let configs = grid
            .iter()
            .map(|point| api::dictionary_config(&point.spec, &blocks))
            .collect::<Result<Vec<_>, _>>()?;
        check_memory(
            &grid.iter().map(|point| &point.spec).collect::<Vec<_>>(),
            &blocks,
            settings.training.batch_size.unwrap_or(DEFAULT_BATCH),
            1,
            kibitzer_sae::device::is_host(&device),
        )?;
        let steps = match settings.training.steps {
            Some(s) => s,
            None => one_pass(
                &settings.stores[0],
                settings.training.batch_size.unwrap_or(DEFAULT_BATCH),
            )?,
        };
        let several_l1 = settings.dictionary.l1.len() > 1;
        let mut dictionaries = Vec::with_capacity(grid.len());
        for (point, config) in grid.iter().zip(&configs) {
            let training = training_config(
                &settings.training,
                &settings.dictionary,
                point,
                steps,
                settings.training.lr,
            )?;
            // The default name says the shape and k; a grid over --l1 adds
            // the coefficient so that every dictionary has its own directory.
            let name = match (&settings.name, point.l1) {
                (Some(name), _) => Some(name.clone()),
                (None, Some(l1)) if several_l1 => {
                    Some(format!("{}-l1_{l1}", api::default_name(config)))
                }
                (None, _) => None,
            };
            dictionaries.push(DictionaryRequest {
                spec: point.spec.clone(),
                training,
                name,
            });
        }
        save_command(&a.out, "xcoder train", &settings, cadence)?;
        let request = TrainRequest {
            dictionaries,
            stores: settings.stores.clone(),
            reader,
            options,
            init_from: settings.init_from.clone(),
        };
        api::train(&request, &device)?
    };

    let run = &outcome.run;
    for d in &outcome.dictionaries {
        match &d.last {
            Some(l) => println!(
                "{}: step {}  loss {:.5}  mse {:.5}  L0 {:.2}  FVU {:.4} (mean of blocks {:.4})  dead {:.1}%",
                d.name,
                run.step(),
                l.loss.loss,
                l.loss.mse,
                l.l0,
                l.fvu,
                l.fvu_mean_of_blocks.unwrap_or(l.fvu),
                100.0 * l.dead_fraction
            ),
            None => println!("{}: step {}", d.name, run.step()),
        }
    }
    if !run.trainer().finished() {
        println!(
            "stopped at step {} of {}; the last checkpoint is in {}: continue with --resume",
            run.step(),
            run.trainer().config.steps,
            a.out.display()
        );
        return Ok(());
    }
    for d in &outcome.dictionaries {
        println!("dictionary: {}", d.dir.display());
    }
    if a.eval_rows > 0 {
        let batch = run.trainer().config.batch_size;
        for d in &outcome.dictionaries {
            evaluate_saved(d, &settings.stores, reader, batch, a.eval_rows, &device)?;
        }
    }
    Ok(())
}

/// Evaluates the saved dictionary `d` on the first `rows` rows of the
/// stores (in store order, `batch` rows at a time) and writes `<its
/// directory>/eval.json`.
fn evaluate_saved(
    d: &api::TrainedDictionary,
    stores: &[PathBuf],
    reader: ReaderConfig,
    batch: usize,
    rows: usize,
    device: &burn::tensor::Device,
) -> CliResult {
    let xcoder = format::load(&d.dir, device)?;
    let mut source = AlignedStores::open(
        stores,
        ReaderConfig {
            seed: 0,
            shuffle: false,
            cycle: false,
            ..reader
        },
    )?;
    let evaluation = eval::evaluate(&xcoder, &mut source, rows, batch, device)?;
    let fvu = &evaluation.fvu;
    let per_block: Vec<String> = fvu.per_block.iter().map(|v| format!("{v:.4}")).collect();
    let path = d.dir.join("eval.json");
    let json = serde_json::json!({
        "dictionary": d.dir,
        "rows": evaluation.metrics.rows,
        "fvu": fvu,
        "metrics": evaluation.metrics,
    });
    atomic_write(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!(
        "{}, on {} rows of the stores: FVU {:.4} over the concatenated outputs, {:.4} mean of blocks [{}]  L0 {:.2}  dead {:.1}%  -> {}",
        d.name,
        evaluation.metrics.rows,
        fvu.concatenated,
        fvu.mean_of_blocks,
        per_block.join(", "),
        evaluation.metrics.l0,
        100.0 * evaluation.metrics.dead_fraction,
        path.display()
    );
    Ok(())
}

fn print_ranking(diff: &StagewiseDiff, top: usize) {
    println!(
        "top {} of {} features by {:?}:",
        top.min(diff.features.len()),
        diff.features.len(),
        diff.rank_by
    );
    print!("{}", diff.to_markdown(top));
}

fn diff(a: &DiffArgs) -> CliResult {
    let device = a.run.device.device()?;
    let rank_by: RankBy = a.rank_by.into();
    if !a.from_saved.is_empty() {
        let flags = given_flags(&a.settings)?;
        if !flags.is_empty() {
            return Err(format!(
                "--from-saved ranks saved stages without training; {} do not apply",
                flags.join(", ")
            )
            .into());
        }
        let dirs = &a.from_saved;
        let diff = api::diff_saved([&dirs[0], &dirs[1], &dirs[2], &dirs[3]], rank_by, &device)?;
        print_ranking(&diff, a.top);
        if let Some(out) = &a.out {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            atomic_write(
                &out.join("diff.json"),
                serde_json::to_string_pretty(&diff)?.as_bytes(),
            )?;
            atomic_write(
                &out.join("diff.md"),
                diff.to_markdown(DIFF_MD_ROWS).as_bytes(),
            )?;
            println!("ranking: {}", out.join("diff.json").display());
        }
        return Ok(());
    }
    let out = a
        .out
        .as_deref()
        .ok_or("--out is required (unless --from-saved)")?;
    let given = a.settings.clone().normalized()?;
    let stage_s_checkpoint = out.join("stage-S").join(CHECKPOINT_FILE);
    let (settings, saved_cadence) = if a.resume {
        if !stage_s_checkpoint.exists() && !out.join(COMMAND_FILE).exists() {
            return Err(format!(
                "{}: no diffing run to resume there; start one without --resume",
                out.display()
            )
            .into());
        }
        resumed_settings(out, "xcoder diff", given)?
    } else {
        if stage_s_checkpoint.exists() {
            return Err(format!(
                "{} already holds a diffing run; pass --resume to continue it or choose another --out",
                out.display()
            )
            .into());
        }
        (given, None)
    };
    let cadence = a.run.cadence(saved_cadence);
    let s = &settings;
    let stores = [
        s.stage_s.clone(),
        s.stage_d.clone(),
        s.stage_m.clone(),
        s.stage_dm.clone(),
    ];
    for (name, paths) in ["--stage-s", "--stage-d", "--stage-m", "--stage-dm"]
        .iter()
        .zip(&stores)
    {
        if paths.is_empty() {
            return Err(format!("{name} is required: the activation stores of that stage").into());
        }
    }
    let kind: Kind = s.kind.unwrap_or(KindArg::Crosscoder).into();
    if kind == Kind::Clt {
        return Err("xcoder diff compares transcoders or crosscoders; stage-wise diffing of cross-layer transcoders is not offered".into());
    }
    let reader = reader_config(&s.training);
    let blocks = AlignedStores::open(&stores[0], reader)?.blocks();
    let point = dictionary_spec(kind, &s.dictionary, &blocks)?;
    api::dictionary_config(&point.spec, &blocks)?;
    let batch = s.training.batch_size.unwrap_or(DEFAULT_BATCH);
    // A stage starts from its parent's weights: two dictionaries at once.
    check_memory(
        &[&point.spec],
        &blocks,
        batch,
        2,
        kibitzer_sae::device::is_host(&device),
    )?;
    let steps = match s.training.steps {
        Some(n) => n,
        None => one_pass(&stores[0][0], batch)?,
    };
    let fine_tune_steps = match s.fine_tune_steps {
        Some(n) => n,
        None => one_pass(&stores[1][0], batch)?,
    };
    let train = training_config(&s.training, &s.dictionary, &point, steps, s.training.lr)?;
    let fine_tune = training_config(
        &s.training,
        &s.dictionary,
        &point,
        fine_tune_steps,
        s.fine_tune_lr.or(s.training.lr),
    )?;
    if !a.resume {
        save_command(out, "xcoder diff", &settings, cadence)?;
    }
    let request = DiffRequest {
        spec: point.spec,
        stores,
        train,
        fine_tune,
        dm_parent: match s.dm_parent.unwrap_or(DmParentArg::D) {
            DmParentArg::D => DmParent::D,
            DmParentArg::M => DmParent::M,
        },
        rank_by,
        reader,
        options: a.run.options(out, cadence),
    };
    let outcome = api::diff(&request, &device)?;
    for run in &outcome.runs {
        println!(
            "stage {}: step {} -> {}",
            run.name(),
            run.step(),
            out.join(format!("stage-{}", run.name()))
                .join(run.name())
                .display()
        );
    }
    print_ranking(&outcome.diff, a.top);
    println!(
        "ranking of every feature: {} and {}",
        out.join("diff.json").display(),
        out.join("diff.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        dictionary: DictionaryArgs,
        #[command(flatten)]
        training: TrainingArgs,
    }

    #[test]
    fn arch_takes_the_xcoder_families_and_a_config_file_keeps_their_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "lr = 0.001\n").unwrap();
        for f in XCODER_FAMILIES {
            let cli = Cli::try_parse_from([
                "t",
                "--arch",
                f.name(),
                "--d-sae",
                "64",
                "--config",
                path.to_str().unwrap(),
                "--batch-size",
                "16",
            ])
            .unwrap();
            assert_eq!(cli.dictionary.arch, Some(f));
            let spec = dictionary_spec(Kind::Crosscoder, &cli.dictionary, &[]).unwrap();
            let c = training_config(&cli.training, &cli.dictionary, &spec, 100, None).unwrap();
            let mut defaults = TrainConfig::for_architecture(&spec.spec.architecture, 64, 100);
            // Matryoshka's nested widths are a training option of BatchTopK.
            f.apply_training_options(&mut defaults, 64);
            assert_eq!(
                c,
                TrainConfig {
                    lr: 0.001,
                    batch_size: 16,
                    ..defaults
                },
                "{f}"
            );
        }
        let e = Cli::try_parse_from(["t", "--arch", "panneal"])
            .err()
            .expect("not an xcoder architecture")
            .to_string();
        assert!(
            e.contains("standard, gated, topk, batchtopk, jumprelu"),
            "{e}"
        );
    }

    #[test]
    fn settings_saved_with_one_size_still_resume_and_lists_make_a_grid() {
        // command.json as `xcoder train` wrote it before --d-sae, --k and
        // --l1 took lists.
        let old = serde_json::json!({
            "arch": "standard", "d_sae": 512, "expansion": null, "k": null, "l1": 2.0,
            "bandwidth": null, "skip": false, "input_width": null, "block_widths": [],
        });
        let d: DictionaryArgs = serde_json::from_value(old).unwrap();
        assert_eq!(
            (d.d_sae.clone(), d.k.clone(), d.l1.clone()),
            (vec![512], vec![], vec![2.0])
        );
        let again: DictionaryArgs =
            serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(again, d);

        let blocks = [Block::new("in", 8), Block::new("out", 4)];
        let grid = |d: &DictionaryArgs| dictionary_grid(Kind::Transcoder, d, &blocks).unwrap();
        let one = grid(&d);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].spec.d_sae, one[0].l1), (512, Some(2.0)));
        let topk = DictionaryArgs {
            arch: Some(Family::Topk),
            d_sae: vec![16, 32],
            k: vec![2, 4, 8],
            l1: vec![],
            ..d.clone()
        };
        let points: Vec<(usize, Architecture)> = grid(&topk)
            .into_iter()
            .map(|g| (g.spec.d_sae, g.spec.architecture))
            .collect();
        assert_eq!(points.len(), 6);
        assert_eq!(points[0], (16, Architecture::TopK { k: 2 }));
        assert_eq!(points[5], (32, Architecture::TopK { k: 8 }));
        let err = dictionary_spec(Kind::Transcoder, &topk, &blocks)
            .unwrap_err()
            .to_string();
        assert!(err.contains("6 dictionaries"), "{err}");
    }
}
