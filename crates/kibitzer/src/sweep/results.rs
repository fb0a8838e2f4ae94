//! What a sweep's evaluation produces: one run's numbers, its evaluation file, the scaling report.

use super::{EvalConfig, RunSpec, SweepSettings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
