//! `kibitzer sweep` as a library: a grid of dictionaries of several
//! architectures trained from one pass over an activation store (kibitzer-sae's
//! [`Sweep`]), each then judged on the labelled positions — reconstruction
//! (MSE, L0, dead fraction, FVU) and the board (BSP coverage and board
//! reconstruction) — with the scaling table and charts reference 001
//! publishes, and the per-feature statistics the feature viewer
//! ([`crate::vis`]) draws.
//!
//! The grid ([`SweepGrid`]) is reference 001's: standard SAEs with L1
//! coefficient 1..5 x 256..4096 features, batch 16384, learning rate 1e-4;
//! and "the same grid in spirit" for p-annealing, gated and JumpReLU (five
//! coefficients each) and TopK (five values of k).
//!
//! Output directory:
//!
//! ```text
//! OUT/sweep-settings.json            grid, steps, seed, training time
//! OUT/sweep.json, OUT/checkpoint.json   kibitzer-sae's sweep (resumable)
//! OUT/<run>/cfg.json, sae_weights.safetensors   each dictionary (SAELens layout)
//! OUT/<run>/evaluation.json          its numbers (an entry of scaling.json) and
//!                                    the settings they were measured with
//! OUT/<run>/features.json            per feature: frequency, maximum, histogram,
//!                                    top-activating rows, best-matching BSPs
//! OUT/<run>/feature_density.svg      its feature-density histogram
//! OUT/positions.json                 boards of every row some feature shows
//! OUT/scaling.json                   every run's numbers
//! OUT/scaling.md                     the table, with the charts
//! OUT/charts/<arch>-<metric>.svg     each metric against the number of features
//! ```

use crate::board_eval::{
    Baselines, BoardEvalError, RowCheck, check_rows_match_labels, evaluate_against_board,
};
use burn::tensor::Device;
use kibitzer_bsp::metrics::coverage_f1;
use kibitzer_bsp::{BspLabels, MetricsConfig, SparseActivations, TokenRef};
use kibitzer_sae::metrics::{EvalMetrics, MetricsAccumulator, MetricsError};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_sae::train::{
    DictTrainer, PAnneal, RunOptions, Sweep, SweepMember, TrainConfig, TrainError,
};
use kibitzer_sae::{Architecture, Dictionary, Sae, SaeConfig};
use kibitzer_store::{ActivationSource, ReaderConfig, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File names inside a sweep directory.
pub mod files {
    /// Grid, steps, seed and training time of the sweep.
    pub const SETTINGS: &str = "sweep-settings.json";
    /// Every run's numbers.
    pub const SCALING_JSON: &str = "scaling.json";
    /// The Markdown table.
    pub const SCALING_MD: &str = "scaling.md";
    /// Boards of the rows the feature statistics show.
    pub const POSITIONS: &str = "positions.json";
    /// Charts, one per architecture and metric.
    pub const CHARTS: &str = "charts";
    /// A run's numbers, in its directory.
    pub const EVALUATION: &str = "evaluation.json";
    /// A run's per-feature statistics, in its directory.
    pub const FEATURES: &str = "features.json";
    /// A run's feature-density histogram, in its directory.
    pub const DENSITY_SVG: &str = "feature_density.svg";
}

/// What can go wrong in a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Settings that cannot work together.
    #[error("{0}")]
    Config(String),
    /// A file could not be read, parsed or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The activation store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Training.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Labels or board metrics.
    #[error(transparent)]
    Bsp(#[from] kibitzer_bsp::BspError),
    /// Feature activations against the board.
    #[error(transparent)]
    BoardEval(#[from] BoardEvalError),
    /// Reconstruction metrics of one run.
    #[error("metrics of {run}: {source}")]
    Metrics {
        /// The run.
        run: String,
        /// The cause.
        source: MetricsError,
    },
    /// The store has fewer rows than there are labelled positions.
    #[error(
        "{labels}: {label_rows} labelled positions, but the activation store {store} has {store_rows} rows (row i must be the activation at labelled position i)"
    )]
    TooFewRows {
        /// The label file.
        labels: PathBuf,
        /// Its positions.
        label_rows: usize,
        /// The store.
        store: PathBuf,
        /// Its rows.
        store_rows: u64,
    },
    /// A line of the label file that the positions cannot be read from.
    #[error("{path}, line {line}: {detail}")]
    LabelLine {
        /// The label file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

fn file_err(path: &Path, message: impl ToString) -> SweepError {
    SweepError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads and parses a JSON file, naming it in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SweepError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
    serde_json::from_str(&text).map_err(|e| file_err(path, format!("not the expected JSON: {e}")))
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SweepError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| file_err(path, e))?;
    write_file(path, text.as_bytes())
}

/// Writes `value` as compact JSON, atomically: for the large per-feature
/// and position files.
fn write_json_compact<T: Serialize>(path: &Path, value: &T) -> Result<(), SweepError> {
    let text = serde_json::to_string(value).map_err(|e| file_err(path, e))?;
    write_file(path, text.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    kibitzer_sae::io::atomic_write(path, bytes).map_err(|e| file_err(path, e))
}

/// An architecture of the grid: kibitzer-sae's [`kibitzer_sae::Family`]
/// (p-annealing is a family of its own).
pub use kibitzer_sae::Family;

/// The sparsity values of one family in a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyGrid {
    /// The architecture.
    pub family: Family,
    /// Its sparsity values: coefficients, or k for TopK/BatchTopK.
    pub values: Vec<f64>,
}

/// Which ready-made grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Reference 001's 25 standard SAEs and the same 5 x 5 grid for
    /// p-annealing, gated, TopK and JumpReLU: 125 dictionaries.
    Reference,
    /// Two sizes and a few sparsity values, for the demo and tests.
    Small,
}

/// A grid of dictionaries: every family x sparsity value x number of
/// features, sharing one batch size and learning rate (a sweep shares its
/// batches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepGrid {
    /// Where the grid came from ("reference", "small", or edited).
    pub preset: String,
    /// Numbers of features.
    pub features: Vec<usize>,
    /// Families and their sparsity values.
    pub families: Vec<FamilyGrid>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Peak learning rate of every member.
    pub lr: f64,
    /// Optimiser steps, `None` for one pass over the store.
    pub steps: Option<usize>,
    /// JumpReLU: width of the straight-through estimator's kernel.
    pub jumprelu_bandwidth: f64,
    /// p-annealing: the final exponent.
    pub panneal_p_end: f64,
    /// A feature silent for this many rows counts as dead while training
    /// (TopK's AuxK revives them).
    pub dead_after_rows: u64,
}

impl SweepGrid {
    /// A preset grid.
    ///
    /// Reference: features 256..4096, batch 16384, lr 1e-4 (reference 001's
    /// settings), 12,000 steps (its "epochs": 12,000 batches); L1, Lp and
    /// L0 coefficients 1..5; k in 4..64 (TopK keeps L0 in the range the L1
    /// grid spans). JumpReLU's bandwidth is kibitzer-sae's 0.05 (the
    /// paper's 0.001 suits a much smaller activation scale than the
    /// normalised rows here, see `train::presets`); p anneals to 0.2
    /// (dictionary_learning's default).
    ///
    /// Small: features 256 and 512, batch 2048, lr 1e-3 (few steps want a
    /// higher rate), one pass over the store; L1 1 and 3 for the standard
    /// SAE, k 16 for TopK, coefficient 3 for p-annealing, gated and JumpReLU:
    /// 12 dictionaries.
    pub fn preset(preset: Preset) -> SweepGrid {
        let coefficients = vec![1.0, 2.0, 3.0, 4.0, 5.0];
        match preset {
            Preset::Reference => SweepGrid {
                preset: "reference".into(),
                features: vec![256, 512, 1024, 2048, 4096],
                families: vec![
                    FamilyGrid {
                        family: Family::Standard,
                        values: coefficients.clone(),
                    },
                    FamilyGrid {
                        family: Family::Panneal,
                        values: coefficients.clone(),
                    },
                    FamilyGrid {
                        family: Family::Gated,
                        values: coefficients.clone(),
                    },
                    FamilyGrid {
                        family: Family::Topk,
                        values: vec![4.0, 8.0, 16.0, 32.0, 64.0],
                    },
                    FamilyGrid {
                        family: Family::Jumprelu,
                        values: coefficients,
                    },
                ],
                batch_size: 16384,
                lr: 1e-4,
                steps: Some(12_000),
                jumprelu_bandwidth: 0.05,
                panneal_p_end: 0.2,
                dead_after_rows: 10_000_000,
            },
            Preset::Small => SweepGrid {
                preset: "small".into(),
                features: vec![256, 512],
                families: vec![
                    FamilyGrid {
                        family: Family::Standard,
                        values: vec![1.0, 3.0],
                    },
                    FamilyGrid {
                        family: Family::Panneal,
                        values: vec![3.0],
                    },
                    FamilyGrid {
                        family: Family::Gated,
                        values: vec![3.0],
                    },
                    FamilyGrid {
                        family: Family::Topk,
                        values: vec![16.0],
                    },
                    FamilyGrid {
                        family: Family::Jumprelu,
                        values: vec![3.0],
                    },
                ],
                batch_size: 2048,
                lr: 1e-3,
                steps: None,
                jumprelu_bandwidth: 0.05,
                panneal_p_end: 0.2,
                dead_after_rows: 200_000,
            },
        }
    }

    /// Keeps only `families`, in the grid's order; a family the grid lacks
    /// is added with the reference grid's values.
    pub fn restrict_to(&mut self, families: &[Family]) {
        let reference = SweepGrid::preset(Preset::Reference);
        let mut kept = Vec::new();
        for family in Family::ALL {
            if !families.contains(&family) {
                continue;
            }
            let grid = self
                .families
                .iter()
                .chain(&reference.families)
                .find(|g| g.family == family)
                .cloned()
                .unwrap_or_else(|| FamilyGrid {
                    // BatchTopK has no preset values: TopK's k.
                    family,
                    values: vec![4.0, 8.0, 16.0, 32.0, 64.0],
                });
            kept.push(grid);
        }
        self.families = kept;
    }

    /// Number of dictionaries.
    pub fn len(&self) -> usize {
        self.features.len() * self.families.iter().map(|f| f.values.len()).sum::<usize>()
    }

    /// Whether the grid has no dictionary.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), SweepError> {
        let bad = |what: String| Err(SweepError::Config(format!("sweep grid: {what}")));
        if self.features.is_empty() || self.features.contains(&0) {
            return bad(format!(
                "features {:?}: give at least one size, each at least 1",
                self.features
            ));
        }
        let distinct: BTreeSet<_> = self.features.iter().collect();
        if distinct.len() != self.features.len() {
            return bad(format!("features {:?} repeat a size", self.features));
        }
        if self.families.is_empty() {
            return bad("no architecture".into());
        }
        for g in &self.families {
            if g.values.is_empty() {
                return bad(format!("{} has no sparsity value", g.family.name()));
            }
            for &v in &g.values {
                let ok = if g.family.uses_k() {
                    v >= 1.0 && v.fract() == 0.0
                } else {
                    v.is_finite() && v >= 0.0
                };
                if !ok {
                    return bad(format!(
                        "{} value {v}: expected {}",
                        g.family.name(),
                        if g.family.uses_k() {
                            "a whole number k >= 1"
                        } else {
                            "a coefficient >= 0"
                        }
                    ));
                }
            }
            let distinct: BTreeSet<String> = g.values.iter().map(|v| v.to_string()).collect();
            if distinct.len() != g.values.len() {
                return bad(format!("{} values {:?} repeat", g.family.name(), g.values));
            }
        }
        if self.batch_size == 0 {
            return bad("batch_size 0; expected at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {}; expected a positive number", self.lr));
        }
        if self.steps == Some(0) {
            return bad("steps 0; expected at least 1".into());
        }
        Ok(())
    }

    /// The name of a run: `<family>-d<features>-<kind><value>`, like
    /// `kibitzer sae train` names its grid (`standard-d512-l1_3`,
    /// `topk-d512-k16`, `jumprelu-d512-l0_3`).
    pub fn run_name(family: Family, d_sae: usize, value: f64) -> String {
        match family.sparsity_kind() {
            "k" => format!("{}-d{d_sae}-k{value}", family.name()),
            kind => format!("{}-d{d_sae}-{kind}_{value}", family.name()),
        }
    }

    /// The grid's dictionaries for rows of width `d_in`, freshly
    /// initialised, each trained for `steps` steps; member `i` (in order
    /// family, value, size) has seed `seed + i`.
    pub fn members(
        &self,
        d_in: usize,
        steps: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Vec<SweepMember>, SweepError> {
        self.validate()?;
        // Every member is held at once: check the grid's total first.
        let values: usize = self.families.iter().map(|g| g.values.len()).sum();
        let shapes: Vec<SaeConfig> = self
            .features
            .iter()
            .flat_map(|&d_sae| {
                std::iter::repeat_n(SaeConfig::new(Architecture::Standard, d_in, d_sae), values)
            })
            .collect();
        kibitzer_store::memory::check(
            format!(
                "--features {} ({} dictionaries of width d_in {d_in} from the store, batch size {})",
                self.features
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                self.len(),
                self.batch_size
            ),
            kibitzer_sae::train::memory_needed(
                &shapes,
                self.batch_size,
                kibitzer_sae::device::is_host(device),
            ),
        )
        .map_err(|e| SweepError::Config(e.to_string()))?;
        let mut out = Vec::with_capacity(self.len());
        for g in &self.families {
            for &value in &g.values {
                for &d_sae in &self.features {
                    let architecture = g
                        .family
                        .architecture(value as usize, self.jumprelu_bandwidth);
                    if g.family.uses_k() && value as usize > d_sae {
                        return Err(SweepError::Config(format!(
                            "{} with k = {value} needs at least {value} features, not {d_sae}",
                            g.family.name()
                        )));
                    }
                    let mut config = TrainConfig::for_architecture(&architecture, d_sae, steps);
                    config.batch_size = self.batch_size;
                    config.lr = self.lr;
                    config.dead_after_rows = self.dead_after_rows;
                    config.seed = seed.wrapping_add(out.len() as u64);
                    if !g.family.uses_k() {
                        config.sparsity_coefficient = value;
                    }
                    if g.family == Family::Panneal {
                        config.p_anneal = Some(PAnneal {
                            p_end: self.panneal_p_end,
                            ..PAnneal::default()
                        });
                    }
                    let sae = Sae::init(
                        SaeConfig::new(architecture, d_in, d_sae),
                        config.seed,
                        device,
                    );
                    let trainer = DictTrainer::new(sae, config)
                        .map_err(|e| SweepError::Config(e.to_string()))?;
                    out.push(SweepMember {
                        name: Self::run_name(g.family, d_sae, value),
                        trainer,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// What a trained member is: its family, size and sparsity value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The run (its directory).
    pub name: String,
    /// Architecture family.
    pub family: Family,
    /// Number of features.
    pub d_sae: usize,
    /// `l1`, `k` or `l0`.
    pub sparsity_kind: String,
    /// The coefficient, or k.
    pub sparsity: f64,
    /// Steps it was trained for.
    pub steps: usize,
}

impl RunSpec {
    /// The spec of a sweep member (read from its architecture and config,
    /// so a resumed sweep needs nothing else).
    pub fn of(member: &SweepMember) -> RunSpec {
        let arch = &member.trainer.sae.config.architecture;
        let family = Family::of(arch, &member.trainer.config);
        let sparsity = match arch {
            Architecture::TopK { k } | Architecture::BatchTopK { k } => *k as f64,
            _ => member.trainer.config.sparsity_coefficient,
        };
        RunSpec {
            name: member.name.clone(),
            family,
            d_sae: member.trainer.sae.config.d_sae,
            sparsity_kind: family.sparsity_kind().into(),
            sparsity,
            steps: member.trainer.config.steps,
        }
    }

    /// `L1 3`, `k 16`, `L0 2`: the legend of a chart line.
    pub fn sparsity_label(&self) -> String {
        match self.sparsity_kind.as_str() {
            "k" => format!("k {}", self.sparsity),
            kind => format!("{} {}", kind.to_uppercase(), self.sparsity),
        }
    }
}

/// How the runs are judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Evaluate on the first N labelled positions only (default all).
    pub rows: Option<usize>,
    /// Rows per batch through a dictionary.
    pub batch_size: usize,
    /// Fraction of games held out for board reconstruction.
    pub test_fraction: f64,
    /// Top-activating positions kept per feature.
    pub top_examples: usize,
    /// Best-matching properties kept per feature.
    pub top_bsps: usize,
    /// Bins of each feature's activation histogram.
    pub histogram_bins: usize,
}

impl Default for EvalConfig {
    /// All labelled rows, batches of 4096, 20% of games held out, 24
    /// examples, 5 properties and 16 histogram bins per feature.
    fn default() -> Self {
        EvalConfig {
            rows: None,
            batch_size: 4096,
            test_fraction: 0.2,
            top_examples: 24,
            top_bsps: 5,
            histogram_bins: 16,
        }
    }
}

/// Everything `kibitzer sweep` needs.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Activation store: row i is the activation at labelled position i.
    pub activations: PathBuf,
    /// Label file from `kibitzer bsp labels` (JSON lines).
    pub labels: PathBuf,
    /// Othello board side.
    pub board_size: usize,
    /// Output directory.
    pub out: PathBuf,
    /// The grid (ignored when resuming: the sweep's own members are used).
    pub grid: SweepGrid,
    /// Seed of initialisation, data order and the train/test split.
    pub seed: u64,
    /// Continue the sweep in `out`.
    pub resume: bool,
    /// Evaluation settings.
    pub eval: EvalConfig,
    /// Checkpoint every N steps.
    pub checkpoint_every: usize,
    /// Memory for shuffling activations.
    pub shuffle_memory_bytes: usize,
    /// Progress bars on stderr.
    pub progress: bool,
}

/// `sweep-settings.json`: what the sweep was started with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepSettings {
    /// `kibitzer-sweep-settings`.
    pub format: String,
    /// The grid.
    pub grid: SweepGrid,
    /// Optimiser steps every member takes.
    pub steps: usize,
    /// The seed.
    pub seed: u64,
    /// Seconds spent training by the calls that finished it (a killed call's
    /// time is lost).
    pub train_seconds: Option<f64>,
}

/// One run's numbers: a row of the scaling table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// What was trained.
    #[serde(flatten)]
    pub spec: RunSpec,
    /// Sweep step of the evaluated weights.
    pub step: usize,
    /// Labelled rows evaluated on.
    pub rows: u64,
    /// Mean squared error per element, on raw activations.
    pub mse: f64,
    /// Mean active features per row.
    pub l0: f64,
    /// Fraction of features that never fired on the evaluated rows.
    pub dead_fraction: f64,
    /// Fraction of features firing on more than 10% of rows.
    pub dense_fraction: f64,
    /// Fraction of variance unexplained.
    pub fvu: f64,
    /// `1 - fvu`.
    pub explained_variance: f64,
    /// Mean cosine similarity of rows and reconstructions.
    pub cosine_similarity: f64,
    /// Features that fired.
    pub alive_features: usize,
    /// BSP coverage (reference 002) per category (`board`, `legal_moves`,
    /// `last_move`, `flipped`) and `all`, on the train games.
    pub coverage: BTreeMap<String, f64>,
    /// Board reconstruction F1 per category and `all`, on the held-out games.
    pub reconstruction: BTreeMap<String, f64>,
    /// Seconds this run's evaluation took.
    pub eval_seconds: f64,
}

/// `<run>/evaluation.json`: a run's numbers with the settings they were
/// measured with (a resumed sweep re-evaluates a run when they changed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationFile {
    /// How the run was judged.
    pub eval: EvalConfig,
    /// Seed of the train/test split of games.
    pub seed: u64,
    /// The numbers.
    pub result: RunResult,
}

/// `scaling.json`: every run of a sweep with how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingReport {
    /// `kibitzer-scaling`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// The activation store.
    pub activations: String,
    /// The label file.
    pub labels: String,
    /// The game (`othello`).
    pub game: String,
    /// Board side.
    pub board_size: usize,
    /// Width of the activations.
    pub d_in: usize,
    /// Rows of the store.
    pub store_rows: u64,
    /// What the sweep was started with.
    pub settings: SweepSettings,
    /// How the runs were judged.
    pub eval: EvalConfig,
    /// Names of the board-state properties, in label order (the feature
    /// statistics refer to them by name).
    pub bsps: Vec<String>,
    /// The runs, in sweep order.
    pub runs: Vec<RunResult>,
}

/// One top-activating position of a feature.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopActivation {
    /// Labelled row (the first, in activation order, of its position).
    pub row: u32,
    /// The feature's activation there.
    pub activation: f32,
    /// Rows where the feature fires on this same labelled position (same
    /// values of every property, so the same board, move and flips): a
    /// position reached in many games is shown once.
    pub count: u32,
}

/// How well a feature, thresholded, predicts one property (reference 002's
/// coverage F1, at the feature's best threshold).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BspMatch {
    /// The property.
    pub bsp: String,
    /// F1.
    pub f1: f32,
    /// Of the rows where the feature is active, the fraction where the
    /// property holds.
    pub precision: f32,
    /// Of the rows where the property holds, the fraction where the feature
    /// is active.
    pub recall: f32,
    /// The threshold (fraction of the feature's maximum) reaching it.
    pub threshold: f32,
}

/// What the viewer shows of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// Fraction of rows where it is positive.
    pub frequency: f64,
    /// Its largest activation.
    pub max_activation: f32,
    /// Positive activations in equal bins over `(0, max_activation]`.
    pub histogram: Vec<u32>,
    /// Its largest activations, largest first (ties: lower row first).
    pub top: Vec<TopActivation>,
    /// Its best-matching properties, best first.
    pub bsps: Vec<BspMatch>,
}

/// `features.json` of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// The run.
    pub run: String,
    /// Labelled rows the statistics are over.
    pub rows: usize,
    /// One entry per feature.
    pub features: Vec<FeatureSummary>,
}

/// What [`feature_summaries`] keeps per feature.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryConfig {
    /// Top-activating rows.
    pub top_examples: usize,
    /// Best-matching properties.
    pub top_bsps: usize,
    /// Histogram bins.
    pub histogram_bins: usize,
    /// Thresholds, fractions of the feature's maximum, ascending (a feature
    /// is active where its activation is strictly above).
    pub thresholds: Vec<f32>,
}

impl SummaryConfig {
    fn of(eval: &EvalConfig) -> SummaryConfig {
        SummaryConfig {
            top_examples: eval.top_examples,
            top_bsps: eval.top_bsps,
            histogram_bins: eval.histogram_bins.max(1),
            thresholds: MetricsConfig::default().coverage_thresholds,
        }
    }
}

/// Per-feature statistics of `features` (rows aligned with `labels`):
/// frequency, maximum, a histogram, the top-activating rows, and the
/// properties each feature predicts best.
///
/// A property's match is reference 002's coverage F1 of "feature above `t`
/// x its maximum" against the property, at the best of `config.thresholds`
/// (the highest threshold among equals), over all rows given. The cost is
/// one visit of every positive activation per property true on its row.
pub fn feature_summaries(
    features: &SparseActivations,
    labels: &BspLabels,
    config: &SummaryConfig,
) -> Result<Vec<FeatureSummary>, SweepError> {
    if features.rows() != labels.rows() {
        return Err(kibitzer_bsp::BspError::RowCount {
            what: "feature activations".into(),
            expected: labels.rows(),
            found: features.rows(),
        }
        .into());
    }
    let catalog = labels.catalog();
    let n_bsps = catalog.len();
    let positives = labels.positives();
    let mut offsets = Vec::with_capacity(labels.rows() + 1);
    let mut trues: Vec<u32> = Vec::new();
    offsets.push(0);
    for r in 0..labels.rows() {
        trues.extend(labels.bits().ones_in_row(r).map(|b| b as u32));
        offsets.push(trues.len());
    }
    let n_t = config.thresholds.len();
    let bins = config.histogram_bins.max(1);
    // Entries of level l are above thresholds 0..l; level 0 is never active.
    let mut hist = vec![0u32; (n_t + 1) * n_bsps];
    let mut on = vec![0u64; n_t + 1];
    let mut cumulative = vec![0u64; n_bsps];
    let mut best: Vec<(f32, u64, u64, usize)> = vec![(0.0, 0, 0, 0); n_bsps];
    let mut absolute = vec![0f32; n_t];
    let rows = features.rows().max(1) as f64;
    let mut out = Vec::with_capacity(features.cols());
    for c in 0..features.cols() {
        let (rows_c, values) = features.column(c);
        let entries: Vec<(u32, f32)> = rows_c
            .iter()
            .zip(values)
            .filter(|(_, v)| **v > 0.0)
            .map(|(r, v)| (*r, *v))
            .collect();
        let max = entries.iter().fold(0f32, |m, e| m.max(e.1));
        let mut histogram = vec![0u32; bins];
        for &(_, v) in &entries {
            let bin = ((v / max) * bins as f32) as usize;
            histogram[bin.min(bins - 1)] += 1;
        }
        for (a, &t) in absolute.iter_mut().zip(&config.thresholds) {
            *a = t * max;
        }
        hist.iter_mut().for_each(|h| *h = 0);
        on.iter_mut().for_each(|o| *o = 0);
        for &(r, v) in &entries {
            let level = absolute.iter().take_while(|&&t| v > t).count();
            if level == 0 {
                continue;
            }
            on[level] += 1;
            let h = &mut hist[level * n_bsps..(level + 1) * n_bsps];
            for &b in &trues[offsets[r as usize]..offsets[r as usize + 1]] {
                h[b as usize] += 1;
            }
        }
        cumulative.iter_mut().for_each(|x| *x = 0);
        best.iter_mut().for_each(|b| *b = (0.0, 0, 0, 0));
        let mut active = 0u64;
        for u in (0..n_t).rev() {
            let level = u + 1;
            active += on[level];
            for (x, &h) in cumulative
                .iter_mut()
                .zip(&hist[level * n_bsps..(level + 1) * n_bsps])
            {
                *x += u64::from(h);
            }
            if active == 0 {
                continue;
            }
            for (b, &tp) in cumulative.iter().enumerate() {
                if tp == 0 {
                    continue;
                }
                let f1 = coverage_f1(tp, active, positives[b]);
                if f1 > best[b].0 {
                    best[b] = (f1, tp, active, u);
                }
            }
        }
        let mut ranked: Vec<usize> = (0..n_bsps).filter(|&b| best[b].0 > 0.0).collect();
        ranked.sort_by(|&a, &b| best[b].0.total_cmp(&best[a].0).then(a.cmp(&b)));
        let bsps = ranked
            .into_iter()
            .take(config.top_bsps)
            .map(|b| {
                let (f1, tp, active, u) = best[b];
                BspMatch {
                    bsp: catalog.bsps()[b].name.clone(),
                    f1,
                    precision: tp as f32 / active as f32,
                    recall: tp as f32 / positives[b].max(1) as f32,
                    threshold: config.thresholds[u],
                }
            })
            .collect();
        let frequency = entries.len() as f64 / rows;
        out.push(FeatureSummary {
            frequency,
            max_activation: max,
            histogram,
            top: distinct_top(entries, labels, config.top_examples),
            bsps,
        });
    }
    Ok(out)
}

/// The `n` largest activations of distinct labelled positions, largest
/// first (ties: lower row first), each with how many of `entries` share its
/// position.
fn distinct_top(mut entries: Vec<(u32, f32)>, labels: &BspLabels, n: usize) -> Vec<TopActivation> {
    entries.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut first_of: HashMap<&[u64], usize> = HashMap::new();
    let mut top: Vec<TopActivation> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    for (row, activation) in entries {
        let key = labels.bits().row(row as usize);
        match first_of.get(key) {
            Some(&i) => counts[i] += 1,
            None => {
                first_of.insert(key, counts.len());
                counts.push(1);
                top.push(TopActivation {
                    row,
                    activation,
                    count: 0,
                });
            }
        }
    }
    top.truncate(n);
    for (t, c) in top.iter_mut().zip(counts) {
        t.count = c;
    }
    top
}

/// Everything one run's evaluation produces.
#[derive(Clone, Debug)]
pub struct MemberEvaluation {
    /// Reconstruction metrics on the labelled rows.
    pub metrics: EvalMetrics,
    /// Coverage and board reconstruction.
    pub board: kibitzer_bsp::BspReport,
    /// Per-feature statistics.
    pub features: Vec<FeatureSummary>,
}

/// Runs `sae` over the first `labels.rows()` rows of `store` once, for the
/// reconstruction metrics and the sparse features together, then judges the
/// features against the board (train/test split by game with `seed`) and
/// summarises each feature. Row i of `store` must be labelled position i:
/// the caller checks it once with [`check_rows_match_labels`], as
/// [`run_sweep`] does before training.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_member(
    name: &str,
    sae: &Sae,
    store: &Store,
    labels: &BspLabels,
    refs: &[TokenRef],
    eval: &EvalConfig,
    seed: u64,
    device: &Device,
) -> Result<MemberEvaluation, SweepError> {
    let rows = labels.rows();
    let (d_in, d_sae) = (sae.d_in(), sae.d_sae());
    if store.d_in() != d_in {
        return Err(BoardEvalError::Width {
            expected: d_in,
            found: store.d_in(),
        }
        .into());
    }
    let mut reader = store.reader(ReaderConfig {
        seed: 0,
        memory_ceiling_bytes: 1 << 30,
        shuffle: false,
        cycle: false,
    })?;
    let metrics_err = |source| SweepError::Metrics {
        run: name.to_string(),
        source,
    };
    let mut acc = MetricsAccumulator::new(d_in, d_sae);
    let (mut row_ptr, mut cols, mut values) = (vec![0usize], Vec::new(), Vec::new());
    let mut buf = Vec::new();
    while (acc.rows() as usize) < rows {
        let want = eval.batch_size.max(1).min(rows - acc.rows() as usize);
        let got = reader.next_batch(want, &mut buf)?;
        if got == 0 {
            return Err(BoardEvalError::TooFewRows {
                expected: rows,
                found: acc.rows() as usize,
            }
            .into());
        }
        let out = sae.forward(from_host(buf.clone(), got, d_in, device));
        let features = to_host(out.features);
        acc.add_batch(&buf, &to_host(out.reconstruction), &features)
            .map_err(metrics_err)?;
        for row in features.chunks(d_sae) {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    cols.push(j as u32);
                    values.push(v);
                }
            }
            row_ptr.push(values.len());
        }
    }
    let metrics = acc.finish().map_err(metrics_err)?.metrics;
    let features = SparseActivations::from_csr(rows, d_sae, &row_ptr, &cols, &values)?;
    drop((row_ptr, cols, values));
    let board = evaluate_against_board(
        name,
        Some(&features),
        None,
        labels,
        refs,
        eval.test_fraction,
        seed,
        &MetricsConfig::default(),
        &Baselines::default(),
    )?
    .dictionary
    .expect("a dictionary was passed, so it has a report");
    let features = feature_summaries(&features, labels, &SummaryConfig::of(eval))?;
    Ok(MemberEvaluation {
        metrics,
        board,
        features,
    })
}

fn run_result(
    spec: RunSpec,
    step: usize,
    evaluation: &MemberEvaluation,
    seconds: f64,
) -> RunResult {
    let m = &evaluation.metrics;
    let coverage = evaluation
        .board
        .coverage
        .aggregates
        .iter()
        .map(|a| (a.name.clone(), a.coverage))
        .collect();
    let reconstruction = evaluation
        .board
        .reconstruction
        .as_ref()
        .map(|r| {
            r.aggregates
                .iter()
                .map(|a| (a.name.clone(), a.f1))
                .collect()
        })
        .unwrap_or_default();
    RunResult {
        spec,
        step,
        rows: m.rows,
        mse: m.mse,
        l0: m.l0,
        dead_fraction: m.dead_fraction,
        dense_fraction: m.dense_fraction,
        fvu: m.fvu,
        explained_variance: m.explained_variance,
        cosine_similarity: m.cosine_similarity,
        alive_features: evaluation.board.alive_features,
        coverage,
        reconstruction,
        eval_seconds: seconds,
    }
}

/// The board of one labelled row, as the viewer draws it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionRecord {
    /// Labelled row.
    pub row: usize,
    /// Game index in the label file.
    pub game: usize,
    /// Ply of the position.
    pub ply: usize,
    /// kibitzer-games' board string (`X` black, `O` white, `.` empty, rows
    /// from the top separated by `/`, then the side to move).
    pub board: String,
    /// The move that led here (`c4`), when the labels say.
    pub last_move: Option<String>,
    /// Discs that move flipped.
    pub flipped: Vec<String>,
}

/// `positions.json`: the boards the feature statistics refer to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionsFile {
    /// Board side.
    pub board_size: usize,
    /// Rows ascending.
    pub positions: Vec<PositionRecord>,
}

/// The boards of `rows` (ascending, distinct) from the label file, with
/// the last move and the flipped discs read from `labels` (aligned with the
/// file's non-empty lines).
pub fn read_positions(
    path: &Path,
    rows: &BTreeSet<usize>,
    labels: &BspLabels,
    board_size: usize,
) -> Result<Vec<PositionRecord>, SweepError> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
    let catalog = labels.catalog();
    let mut out = Vec::with_capacity(rows.len());
    let mut wanted = rows.iter().copied().peekable();
    let mut row = 0usize;
    for (i, text) in std::io::BufReader::new(file).lines().enumerate() {
        let Some(&next) = wanted.peek() else { break };
        let text = text.map_err(|e| file_err(path, e))?;
        if text.trim().is_empty() {
            continue;
        }
        if row == next {
            wanted.next();
            let bad = |detail: String| SweepError::LabelLine {
                path: path.to_path_buf(),
                line: i + 1,
                detail,
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
            let board = value
                .get("board")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad("`board` (an Othello board string) is missing".into()))?;
            let position = kibitzer_games::othello::Othello::from_board_string(board)
                .map_err(|e| bad(format!("board {board:?}: {e}")))?;
            if position.size() != board_size {
                return Err(bad(format!(
                    "board {board:?} is {n}x{n}, but the sweep is for {board_size}x{board_size}",
                    n = position.size()
                )));
            }
            let field = |key: &str| {
                value
                    .get(key)
                    .and_then(serde_json::Value::as_u64)
                    .map(|v| v as usize)
                    .ok_or_else(|| bad(format!("`{key}` is missing or not a whole number")))
            };
            let mut last_move = None;
            let mut flipped = Vec::new();
            for b in labels.bits().ones_in_row(row) {
                let name = &catalog.bsps()[b].name;
                if let Some(square) = name.strip_prefix("last_move@") {
                    last_move = Some(square.to_string());
                } else if let Some(square) = name.strip_prefix("flipped@") {
                    flipped.push(square.to_string());
                }
            }
            out.push(PositionRecord {
                row,
                game: field("game")?,
                ply: field("ply")?,
                board: position.board_string(),
                last_move,
                flipped,
            });
        }
        row += 1;
    }
    if let Some(missing) = wanted.next() {
        return Err(file_err(
            path,
            format!("has {row} labelled positions, but row {missing} is needed"),
        ));
    }
    Ok(out)
}

/// Trains (or resumes) the sweep `config` describes, evaluates every run
/// (skipping runs already evaluated at the same step, so an interrupted
/// evaluation resumes too), and writes `scaling.json`, `scaling.md`, the
/// charts and the viewer's data. Returns the report.
pub fn run_sweep(config: &SweepConfig, device: &Device) -> Result<ScalingReport, SweepError> {
    let out = &config.out;
    // Labels first: a bad label file should fail before hours of training.
    let set = kibitzer_bsp::othello::othello_bsps(config.board_size, Default::default())?;
    let (mut refs, mut labels) =
        kibitzer_bsp::labelling::read_labels_jsonl(&config.labels, set.catalog().clone())?;
    if let Some(n) = config.eval.rows
        && n < labels.rows()
    {
        labels = labels.select_rows(&(0..n).collect::<Vec<_>>());
        refs.truncate(n);
    }
    if labels.rows() == 0 {
        return Err(file_err(&config.labels, "no labelled position"));
    }
    let store = Store::open(&config.activations)?;
    // Row i must be labelled position i: checked on the store's row columns
    // (count and order only for a store without them).
    if let RowCheck::Unchecked { warning } = check_rows_match_labels(&store, &refs, &config.labels)?
    {
        eprintln!("{warning}");
    }
    if store.rows() < labels.rows() as u64 {
        return Err(SweepError::TooFewRows {
            labels: config.labels.clone(),
            label_rows: labels.rows(),
            store: config.activations.clone(),
            store_rows: store.rows(),
        });
    }

    let settings_path = out.join(files::SETTINGS);
    let reader_config = ReaderConfig {
        seed: config.seed,
        memory_ceiling_bytes: config.shuffle_memory_bytes,
        shuffle: true,
        cycle: true,
    };
    let (mut sweep, mut reader, mut settings) = if config.resume {
        if !out.join("checkpoint.json").exists() {
            return Err(file_err(
                out,
                "holds no sweep checkpoint to resume; run without --resume to start one",
            ));
        }
        let settings: SweepSettings = read_json(&settings_path)?;
        let (sweep, position) = Sweep::resume(out, device)?;
        let position = serde_json::from_value(position).map_err(|e| {
            file_err(
                &out.join("checkpoint.json"),
                format!("the reader position is unreadable: {e}"),
            )
        })?;
        let reader = store.reader_at(reader_config, position)?;
        if config.progress {
            eprintln!(
                "resuming {} at step {} of {}",
                out.display(),
                sweep.step,
                sweep.total_steps()
            );
        }
        (sweep, reader, settings)
    } else {
        if out.join("checkpoint.json").exists() {
            return Err(file_err(
                out,
                "already holds a sweep; pass --resume to continue it or choose another --out",
            ));
        }
        let steps = config
            .grid
            .steps
            .unwrap_or_else(|| (store.rows() as usize / config.grid.batch_size.max(1)).max(1));
        let members = config
            .grid
            .members(store.d_in(), steps, config.seed, device)?;
        std::fs::create_dir_all(out).map_err(|e| file_err(out, e))?;
        let settings = SweepSettings {
            format: "kibitzer-sweep-settings".into(),
            grid: config.grid.clone(),
            steps,
            seed: config.seed,
            train_seconds: None,
        };
        write_json(&settings_path, &settings)?;
        (
            Sweep::new(members, device)?,
            store.reader(reader_config)?,
            settings,
        )
    };

    let saved = sweep
        .members
        .iter()
        .all(|m| out.join(&m.name).join("cfg.json").exists());
    if sweep.step < sweep.total_steps() || !saved {
        if config.progress {
            eprintln!(
                "training {} dictionaries for {} steps of {} rows, one pass shared by all",
                sweep.members.len(),
                sweep.total_steps(),
                sweep.members[0].trainer.config.batch_size
            );
        }
        let started = Instant::now();
        let options = RunOptions {
            out_dir: out.clone(),
            checkpoint_every: config.checkpoint_every,
            log_every: 50,
            progress: config.progress,
            stop_after: None,
        };
        sweep.run(&mut reader, &options)?;
        settings.train_seconds =
            Some(settings.train_seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64());
        write_json(&settings_path, &settings)?;
    }
    drop(reader);

    let (report, shown) =
        evaluate_sweep(config, &sweep, &store, (&labels, &refs), settings, device)?;
    write_outputs(out, &report, &labels, &shown, config)?;
    Ok(report)
}

fn evaluate_sweep(
    config: &SweepConfig,
    sweep: &Sweep,
    store: &Store,
    (labels, refs): (&BspLabels, &[TokenRef]),
    settings: SweepSettings,
    device: &Device,
) -> Result<(ScalingReport, BTreeSet<usize>), SweepError> {
    let out = &config.out;
    let bar =
        kibitzer_io::progress::bar(config.progress, sweep.members.len() as u64, 0, "evaluated");
    let mut runs = Vec::with_capacity(sweep.members.len());
    let mut shown = BTreeSet::new();
    for (member, (name, sae)) in sweep.members.iter().zip(sweep.inference_saes()) {
        bar.set_message(name.clone());
        let dir = out.join(&name);
        let (eval_path, features_path) = (dir.join(files::EVALUATION), dir.join(files::FEATURES));
        // A run evaluated before, with the same settings and weights, is
        // kept (its statistics re-read for the boards they show); anything
        // unreadable is evaluated again.
        let done = read_json::<EvaluationFile>(&eval_path)
            .ok()
            .filter(|done| {
                done.eval == config.eval
                    && done.seed == config.seed
                    && done.result.step == sweep.step
                    && done.result.rows == labels.rows() as u64
            })
            .and_then(|done| Some((done, read_json::<FeatureStats>(&features_path).ok()?)));
        if let Some((done, stats)) = done {
            shown.extend(
                stats
                    .features
                    .iter()
                    .flat_map(|f| f.top.iter().map(|t| t.row as usize)),
            );
            runs.push(done.result);
            bar.inc(1);
            continue;
        }
        let started = Instant::now();
        let evaluation = evaluate_member(
            &name,
            &sae,
            store,
            labels,
            refs,
            &config.eval,
            config.seed,
            device,
        )?;
        let result = run_result(
            RunSpec::of(member),
            sweep.step,
            &evaluation,
            started.elapsed().as_secs_f64(),
        );
        shown.extend(
            evaluation
                .features
                .iter()
                .flat_map(|f| f.top.iter().map(|t| t.row as usize)),
        );
        write_json_compact(
            &features_path,
            &FeatureStats {
                run: name.clone(),
                rows: labels.rows(),
                features: evaluation.features,
            },
        )?;
        let svg = kibitzer_sae::metrics::density_histogram_svg(
            &evaluation.metrics,
            &format!("Feature density: {name}"),
        );
        write_file(&dir.join(files::DENSITY_SVG), svg.as_bytes())?;
        // Written last: its presence marks the run as evaluated.
        write_json(
            &eval_path,
            &EvaluationFile {
                eval: config.eval.clone(),
                seed: config.seed,
                result: result.clone(),
            },
        )?;
        runs.push(result);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = ScalingReport {
        format: "kibitzer-scaling".into(),
        version: 1,
        activations: config.activations.display().to_string(),
        labels: config.labels.display().to_string(),
        game: "othello".into(),
        board_size: config.board_size,
        d_in: store.d_in(),
        store_rows: store.rows(),
        settings,
        eval: config.eval.clone(),
        bsps: labels
            .catalog()
            .bsps()
            .iter()
            .map(|b| b.name.clone())
            .collect(),
        runs,
    };
    Ok((report, shown))
}

fn write_outputs(
    out: &Path,
    report: &ScalingReport,
    labels: &BspLabels,
    shown: &BTreeSet<usize>,
    config: &SweepConfig,
) -> Result<(), SweepError> {
    let positions = read_positions(&config.labels, shown, labels, config.board_size)?;
    write_json_compact(
        &out.join(files::POSITIONS),
        &PositionsFile {
            board_size: config.board_size,
            positions,
        },
    )?;
    let charts_dir = out.join(files::CHARTS);
    std::fs::create_dir_all(&charts_dir).map_err(|e| file_err(&charts_dir, e))?;
    let charts = scaling_charts(&report.runs);
    for (file, chart) in &charts {
        write_file(&charts_dir.join(file), chart.svg().as_bytes())?;
    }
    let chart_files: Vec<&str> = charts.iter().map(|(f, _)| f.as_str()).collect();
    write_file(
        &out.join(files::SCALING_MD),
        scaling_markdown(report, &chart_files).as_bytes(),
    )?;
    // Last: scaling.json marks a finished sweep.
    write_json(&out.join(files::SCALING_JSON), report)
}

/// A metric of the scaling table and charts.
pub struct ScalingMetric {
    /// File-name part.
    pub key: &'static str,
    /// Axis label.
    pub label: &'static str,
    /// Its value for a run (`None` when not measured).
    pub value: fn(&RunResult) -> Option<f64>,
}

/// The charted metrics: reconstruction (MSE, L0, dead fraction, FVU) and
/// the board (coverage and board reconstruction of the board category and
/// of all properties).
pub const SCALING_METRICS: [ScalingMetric; 8] = [
    ScalingMetric {
        key: "mse",
        label: "MSE",
        value: |r| Some(r.mse),
    },
    ScalingMetric {
        key: "l0",
        label: "L0 (active features per position)",
        value: |r| Some(r.l0),
    },
    ScalingMetric {
        key: "dead_fraction",
        label: "dead features (fraction)",
        value: |r| Some(r.dead_fraction),
    },
    ScalingMetric {
        key: "fvu",
        label: "FVU",
        value: |r| Some(r.fvu),
    },
    ScalingMetric {
        key: "coverage_board",
        label: "BSP coverage, board",
        value: |r| r.coverage.get("board").copied(),
    },
    ScalingMetric {
        key: "coverage_all",
        label: "BSP coverage, all properties",
        value: |r| r.coverage.get("all").copied(),
    },
    ScalingMetric {
        key: "reconstruction_board",
        label: "board reconstruction F1, board",
        value: |r| r.reconstruction.get("board").copied(),
    },
    ScalingMetric {
        key: "reconstruction_all",
        label: "board reconstruction F1, all properties",
        value: |r| r.reconstruction.get("all").copied(),
    },
];

/// One chart per family present and metric: the metric against the number
/// of features (log scale), one line per sparsity value. Returns
/// `(file name, chart)` pairs.
pub fn scaling_charts(runs: &[RunResult]) -> Vec<(String, LineChart)> {
    let families: BTreeSet<Family> = runs.iter().map(|r| r.spec.family).collect();
    let mut out = Vec::new();
    for family in families {
        let of_family: Vec<&RunResult> = runs.iter().filter(|r| r.spec.family == family).collect();
        let mut values: Vec<f64> = of_family.iter().map(|r| r.spec.sparsity).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        for metric in &SCALING_METRICS {
            let series = values
                .iter()
                .map(|&v| {
                    let mut runs: Vec<&&RunResult> =
                        of_family.iter().filter(|r| r.spec.sparsity == v).collect();
                    runs.sort_by_key(|r| r.spec.d_sae);
                    Series {
                        label: runs
                            .first()
                            .map(|r| r.spec.sparsity_label())
                            .unwrap_or_default(),
                        points: runs
                            .iter()
                            .filter_map(|r| (metric.value)(r).map(|y| (r.spec.d_sae as f64, y)))
                            .collect(),
                    }
                })
                .collect();
            out.push((
                format!("{}-{}.svg", family.name(), metric.key),
                LineChart {
                    title: format!("{} SAEs: {}", family.name(), metric.label),
                    x_label: "number of features (log scale)".into(),
                    y_label: metric.label.into(),
                    log_x: true,
                    series,
                },
            ));
        }
    }
    out
}

fn fmt_metric(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "—".into(),
    }
}

/// The scaling table as Markdown, with the settings and the charts.
pub fn scaling_markdown(report: &ScalingReport, charts: &[&str]) -> String {
    let s = &report.settings;
    let mut md = String::new();
    let _ = writeln!(md, "# Sweep: {} dictionaries\n", report.runs.len());
    let _ = writeln!(
        md,
        "Activations `{}` ({} rows of width {}), labels `{}` ({}x{} Othello, {} rows evaluated, {:.0}% of games held out for board reconstruction).",
        report.activations,
        report.store_rows,
        report.d_in,
        report.labels,
        report.board_size,
        report.board_size,
        report.runs.first().map_or(0, |r| r.rows),
        100.0 * report.eval.test_fraction
    );
    let _ = writeln!(
        md,
        "Grid `{}`: {} steps of {} rows, learning rate {}, seed {}{}.\n",
        s.grid.preset,
        s.steps,
        s.grid.batch_size,
        s.grid.lr,
        s.seed,
        s.train_seconds
            .map(|t| format!(", trained in {t:.0} s"))
            .unwrap_or_default()
    );
    md.push_str(
        "| run | architecture | features | sparsity | MSE | L0 | dead % | FVU | coverage (board) | coverage (all) | reconstruction (board) | reconstruction (all) |\n\
         |---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &report.runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.spec.name,
            r.spec.family.name(),
            r.spec.d_sae,
            r.spec.sparsity_label(),
            fmt_metric(Some(r.mse), 5),
            fmt_metric(Some(r.l0), 2),
            fmt_metric(Some(100.0 * r.dead_fraction), 1),
            fmt_metric(Some(r.fvu), 4),
            fmt_metric(r.coverage.get("board").copied(), 3),
            fmt_metric(r.coverage.get("all").copied(), 3),
            fmt_metric(r.reconstruction.get("board").copied(), 3),
            fmt_metric(r.reconstruction.get("all").copied(), 3),
        );
    }
    if !charts.is_empty() {
        md.push_str("\n## Charts\n\n");
        for c in charts {
            let _ = writeln!(md, "![{c}]({}/{c})", files::CHARTS);
        }
    }
    md
}

/// One line of a [`LineChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points, drawn in order; non-finite ones are skipped.
    pub points: Vec<(f64, f64)>,
}

/// A line chart drawn as SVG by hand (no plotting dependency): axes with
/// ticks, one coloured line with markers per series, a legend.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic x axis (base 2, ticks at the data's x values).
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// "Nice" tick values (1, 2, 5 x 10^k steps) covering `lo..=hi`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    };
    let raw = (hi - lo) / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// `s` with `& < > "` escaped for XML and HTML text and attributes.
pub(crate) fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl LineChart {
    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> String {
        let (width, height) = (780.0, 420.0);
        let (left, right, top, bottom) = (78.0, 150.0, 44.0, 58.0);
        let (plot_w, plot_h) = (width - left - right, height - top - bottom);
        let tx = |x: f64| if self.log_x { x.log2() } else { x };
        let points: Vec<Vec<(f64, f64)>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0))
                    .collect()
            })
            .collect();
        let all: Vec<(f64, f64)> = points.iter().flatten().copied().collect();
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
            left + plot_w / 2.0,
            escape_xml(&self.title)
        );
        if all.is_empty() {
            svg += &format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no data</text>\n</svg>\n",
                left + plot_w / 2.0,
                top + plot_h / 2.0
            );
            return svg;
        }
        let (mut x_lo, mut x_hi) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
            (a.min(tx(p.0)), b.max(tx(p.0)))
        });
        if x_hi - x_lo < 1e-12 {
            x_lo -= 0.5;
            x_hi += 0.5;
        }
        let pad = (x_hi - x_lo) * 0.04;
        let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
        let (y_min, y_max) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let y_ticks = nice_ticks(y_min, y_max, 5);
        let (y_lo, y_hi) = (y_ticks[0], y_ticks[y_ticks.len() - 1]);
        let px = |x: f64| left + (tx(x) - x_lo) / (x_hi - x_lo) * plot_w;
        let py = |y: f64| top + plot_h - (y - y_lo) / (y_hi - y_lo) * plot_h;
        for &t in &y_ticks {
            svg += &format!(
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                left + plot_w,
                left - 6.0,
                py(t) + 4.0,
                fmt_tick(t),
                y = py(t)
            );
        }
        let x_ticks: Vec<f64> = if self.log_x {
            let mut xs: Vec<f64> = all.iter().map(|p| p.0).collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            xs
        } else {
            nice_ticks(x_lo, x_hi, 6)
                .into_iter()
                .filter(|&x| x >= x_lo && x <= x_hi)
                .collect()
        };
        let axis_y = top + plot_h;
        for &t in &x_ticks {
            svg += &format!(
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{axis_y}\" stroke=\"#eeeeee\"/>\n\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                axis_y + 16.0,
                fmt_tick(t),
                x = px(t)
            );
        }
        svg += &format!(
            "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{:.1}\" y2=\"{axis_y}\" stroke=\"black\"/>\n\
             <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{axis_y}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
             <text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
            left + plot_w,
            left + plot_w / 2.0,
            height - 14.0,
            escape_xml(&self.x_label),
            top + plot_h / 2.0,
            escape_xml(&self.y_label)
        );
        for (i, (s, pts)) in self.series.iter().zip(&points).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if pts.len() > 1 {
                let path: Vec<String> = pts
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                    .collect();
                svg += &format!(
                    "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
                    path.join(" ")
                );
            }
            for &(x, y) in pts {
                svg += &format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}: {} features, {}</title></circle>\n",
                    px(x),
                    py(y),
                    escape_xml(&s.label),
                    x,
                    fmt_tick(y)
                );
            }
            let ly = top + 8.0 + 18.0 * i as f64;
            let lx = left + plot_w + 14.0;
            svg += &format!(
                "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                lx + 22.0,
                lx + 28.0,
                ly + 4.0,
                escape_xml(&s.label)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_bsp::{BitMatrix, BspInfo, Catalog};
    use std::sync::Arc;

    fn labels(rows: &[&[usize]], n_bsps: usize) -> BspLabels {
        let infos = (0..n_bsps)
            .map(|i| BspInfo::new(format!("p{i}"), "g", "c", None))
            .collect();
        let catalog = Arc::new(Catalog::new(infos).expect("distinct names"));
        let mut bits = BitMatrix::zeros(rows.len(), n_bsps);
        for (r, ones) in rows.iter().enumerate() {
            for &b in *ones {
                bits.set(r, b, true);
            }
        }
        BspLabels::from_bits(catalog, bits).expect("shapes agree")
    }

    fn sparse(dense: &[[f32; 2]]) -> SparseActivations {
        let flat: Vec<f32> = dense.iter().flatten().copied().collect();
        let view = ndarray::ArrayView2::from_shape((dense.len(), 2), &flat).expect("shape");
        SparseActivations::from_dense(view, "test").expect("finite")
    }

    /// Feature 0 fires exactly where p0 holds (F1 1 at threshold 0); feature
    /// 1 fires on rows 0..3 with p1 true on rows 2, 3, where it is largest:
    /// above half its maximum it is exactly p1.
    #[test]
    fn summaries_by_hand() {
        let acts = sparse(&[[2.0, 1.0], [0.0, 1.0], [1.0, 4.0], [0.0, 3.0], [0.0, 0.0]]);
        let l = labels(&[&[0], &[], &[0, 1], &[1], &[]], 2);
        let config = SummaryConfig {
            top_examples: 2,
            top_bsps: 2,
            histogram_bins: 4,
            thresholds: vec![0.0, 0.5],
        };
        let s = feature_summaries(&acts, &l, &config).expect("aligned");
        assert_eq!(s.len(), 2);
        assert!((s[0].frequency - 0.4).abs() < 1e-12);
        assert_eq!(s[0].max_activation, 2.0);
        // 1.0 is half the maximum: bin 2 of 4; 2.0 is the last bin.
        assert_eq!(s[0].histogram, vec![0, 0, 1, 1]);
        assert_eq!(
            s[0].top,
            vec![
                TopActivation {
                    row: 0,
                    activation: 2.0,
                    count: 1
                },
                TopActivation {
                    row: 2,
                    activation: 1.0,
                    count: 1
                }
            ]
        );
        assert_eq!(s[0].bsps[0].bsp, "p0");
        assert!((s[0].bsps[0].f1 - 1.0).abs() < 1e-6);
        assert_eq!(s[0].bsps[0].threshold, 0.0);
        // Feature 1: above 0.5 x 4 = 2 on rows 2 and 3, where p1 holds.
        let f1 = &s[1];
        assert_eq!(f1.bsps[0].bsp, "p1");
        assert!((f1.bsps[0].f1 - 1.0).abs() < 1e-6, "{:?}", f1.bsps);
        assert_eq!(f1.bsps[0].threshold, 0.5);
        // p0 (rows 0, 2) is best matched at threshold 0: active on rows
        // 0..4, precision 1/2 and recall 1 (above 0.5 both would be 1/2).
        assert_eq!(f1.bsps[1].bsp, "p0");
        assert_eq!(f1.bsps[1].threshold, 0.0);
        assert!((f1.bsps[1].precision - 0.5).abs() < 1e-6);
        assert!((f1.bsps[1].recall - 1.0).abs() < 1e-6);
        assert!((f1.bsps[1].f1 - 2.0 / 3.0).abs() < 1e-6);
        // Ties in activation go to the lower row; the top is sorted.
        assert_eq!(f1.top[0].row, 2);
        assert_eq!(f1.top[1].row, 3);
        let wrong = labels(&[&[0]], 2);
        assert!(feature_summaries(&acts, &wrong, &config).is_err());
    }

    /// Rows 0, 2 and 3 are one labelled position (the same properties):
    /// the top shows it once, with its count, and goes on to row 1.
    #[test]
    fn top_examples_show_each_position_once() {
        let acts = sparse(&[[3.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.5, 0.0]]);
        let l = labels(&[&[0], &[1], &[0], &[0]], 2);
        let config = SummaryConfig {
            top_examples: 2,
            top_bsps: 1,
            histogram_bins: 2,
            thresholds: vec![0.0],
        };
        let s = feature_summaries(&acts, &l, &config).expect("aligned");
        let top: Vec<(u32, f32, u32)> = s[0]
            .top
            .iter()
            .map(|t| (t.row, t.activation, t.count))
            .collect();
        assert_eq!(top, vec![(0, 3.0, 3), (1, 1.0, 1)]);
        assert!(s[1].top.is_empty() && s[1].bsps.is_empty() && s[1].frequency == 0.0);
    }

    #[test]
    fn grids_name_and_count_their_members() {
        let reference = SweepGrid::preset(Preset::Reference);
        assert_eq!(reference.len(), 125);
        let standard = reference
            .families
            .iter()
            .find(|g| g.family == Family::Standard)
            .expect("the reference grid has standard SAEs");
        assert_eq!(standard.values, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(reference.features, vec![256, 512, 1024, 2048, 4096]);
        assert_eq!((reference.batch_size, reference.lr), (16384, 1e-4));
        assert_eq!(
            SweepGrid::run_name(Family::Standard, 512, 3.0),
            "standard-d512-l1_3"
        );
        assert_eq!(
            SweepGrid::run_name(Family::Topk, 256, 16.0),
            "topk-d256-k16"
        );
        assert_eq!(
            SweepGrid::run_name(Family::Jumprelu, 256, 0.5),
            "jumprelu-d256-l0_0.5"
        );

        let mut small = SweepGrid::preset(Preset::Small);
        small.restrict_to(&[Family::Topk, Family::Standard, Family::Batchtopk]);
        let order: Vec<Family> = small.families.iter().map(|g| g.family).collect();
        assert_eq!(
            order,
            vec![Family::Standard, Family::Topk, Family::Batchtopk]
        );
        small.features = vec![64, 128];
        let device = Device::default();
        let members = small.members(8, 10, 7, &device).expect("valid grid");
        assert_eq!(members.len(), small.len());
        let specs: Vec<RunSpec> = members.iter().map(RunSpec::of).collect();
        assert_eq!(specs[0].name, "standard-d64-l1_1");
        assert_eq!(
            (specs[0].family, specs[0].d_sae, specs[0].sparsity),
            (Family::Standard, 64, 1.0)
        );
        let topk = specs
            .iter()
            .find(|s| s.name == "topk-d128-k16")
            .expect("topk member");
        assert_eq!(
            (topk.family, topk.sparsity, topk.sparsity_kind.as_str()),
            (Family::Topk, 16.0, "k")
        );
        assert_eq!(topk.sparsity_label(), "k 16");
        assert_eq!(members[1].trainer.config.seed, 8);

        assert!(
            specs.iter().any(|s| s.name == "batchtopk-d64-k64"),
            "BatchTopK gets TopK's reference values of k"
        );
        small.features = vec![8];
        assert!(
            small.members(8, 10, 7, &device).is_err(),
            "k = 16 cannot fit 8 features"
        );
        // Issue 20 #4: a grid that cannot fit in memory is refused before
        // any dictionary is allocated, naming --features and the bytes.
        small.features = vec![4_000_000_000];
        let err = small
            .members(64, 10, 7, &device)
            .expect_err("too large")
            .to_string();
        assert!(
            err.contains("--features 4000000000") && err.contains("needs about"),
            "{err}"
        );
        small.features = vec![16, 16];
        let err = small.validate().expect_err("repeated size").to_string();
        assert!(err.contains("repeat"), "{err}");
        assert!("nonsense".parse::<Family>().is_err());
        assert_eq!("TopK".parse::<Family>().expect("known"), Family::Topk);
    }

    #[test]
    fn charts_have_one_line_per_sparsity_value_on_a_log_axis() {
        let run = |family, d_sae, sparsity: f64, l0| RunResult {
            spec: RunSpec {
                name: SweepGrid::run_name(family, d_sae, sparsity),
                family,
                d_sae,
                sparsity_kind: Family::sparsity_kind(family).into(),
                sparsity,
                steps: 1,
            },
            step: 1,
            rows: 10,
            mse: 0.1,
            l0,
            dead_fraction: 0.0,
            dense_fraction: 0.0,
            fvu: 0.2,
            explained_variance: 0.8,
            cosine_similarity: 0.9,
            alive_features: d_sae,
            coverage: BTreeMap::from([("board".to_string(), 0.5)]),
            reconstruction: BTreeMap::new(),
            eval_seconds: 0.0,
        };
        let runs = vec![
            run(Family::Standard, 256, 1.0, 30.0),
            run(Family::Standard, 1024, 1.0, 20.0),
            run(Family::Standard, 256, 2.0, 10.0),
            run(Family::Topk, 256, 8.0, 8.0),
        ];
        let charts = scaling_charts(&runs);
        assert_eq!(charts.len(), 2 * SCALING_METRICS.len());
        let (name, l0) = charts
            .iter()
            .find(|(n, _)| n == "standard-l0.svg")
            .expect("a standard L0 chart");
        assert_eq!(name, "standard-l0.svg");
        assert_eq!(l0.series.len(), 2);
        assert_eq!(l0.series[0].label, "L1 1");
        assert_eq!(l0.series[0].points, vec![(256.0, 30.0), (1024.0, 20.0)]);
        let svg = l0.svg();
        assert_eq!(
            svg.matches("class=\"series\"").count(),
            1,
            "one line has 2 points"
        );
        assert_eq!(svg.matches("<circle").count(), 3);
        // On a log axis 256 and 1024 are ticks, 512 is not.
        assert!(svg.contains(">256<") && svg.contains(">1024<") && !svg.contains(">512<"));
        // A metric nobody measured draws "no data", not a broken chart.
        let (_, rec) = charts
            .iter()
            .find(|(n, _)| n == "topk-reconstruction_board.svg")
            .expect("chart");
        assert!(rec.svg().contains("no data"));
        let md = scaling_markdown(
            &ScalingReport {
                format: "kibitzer-scaling".into(),
                version: 1,
                activations: "a".into(),
                labels: "l".into(),
                game: "othello".into(),
                board_size: 6,
                d_in: 4,
                store_rows: 10,
                settings: SweepSettings {
                    format: "kibitzer-sweep-settings".into(),
                    grid: SweepGrid::preset(Preset::Small),
                    steps: 1,
                    seed: 0,
                    train_seconds: None,
                },
                eval: EvalConfig::default(),
                bsps: vec![],
                runs: runs.clone(),
            },
            &["standard-l0.svg"],
        );
        assert_eq!(md.matches("\n| standard-d").count(), 3, "{md}");
        assert!(md.contains("| 0.500 |") && md.contains("| — |"), "{md}");
        assert!(md.contains("![standard-l0.svg](charts/standard-l0.svg)"));
    }

    #[test]
    fn nice_ticks_cover_the_range_with_round_steps() {
        let t = nice_ticks(0.13, 0.87, 5);
        assert!(t[0] <= 0.13 && *t.last().expect("ticks") >= 0.87);
        let step = t[1] - t[0];
        assert!((step - 0.2).abs() < 1e-12, "{t:?}");
        let flat = nice_ticks(3.0, 3.0, 5);
        assert!(flat[0] < 3.0 && *flat.last().expect("ticks") > 3.0);
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(4096.0), "4096");
    }
}
