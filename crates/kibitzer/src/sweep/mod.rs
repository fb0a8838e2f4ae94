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

use crate::board_eval::BoardEvalError;
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_sae::metrics::MetricsError;
use kibitzer_sae::train::TrainError;
use kibitzer_store::StoreError;
use serde::Serialize;
use std::path::{Path, PathBuf};

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
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
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

/// Reads and parses a JSON file, naming it in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SweepError> {
    let text = std::fs::read_to_string(path).at_file(path)?;
    serde_json::from_str(&text)
        .map_err(|e| FileError::new(path, format!("not the expected JSON: {e}")).into())
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SweepError> {
    let text = serde_json::to_string_pretty(value).at_file(path)?;
    write_file(path, text.as_bytes())
}

/// Writes `value` as compact JSON, atomically: for the large per-feature
/// and position files.
fn write_json_compact<T: Serialize>(path: &Path, value: &T) -> Result<(), SweepError> {
    let text = serde_json::to_string(value).at_file(path)?;
    write_file(path, text.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    kibitzer_sae::io::atomic_write(path, bytes).map_err(|e| FileError::new(path, e).into())
}

mod config;
mod evaluate;
mod features;
mod grid;
mod positions;
mod report;
mod results;
mod run;

pub use config::{EvalConfig, SweepConfig, SweepGame, SweepSettings};
pub use evaluate::{MemberEvaluation, evaluate_member};
pub use features::{
    BspMatch, FeatureStats, FeatureSummary, SummaryConfig, TopActivation, feature_summaries,
};
pub use grid::{Family, FamilyGrid, Preset, RunSpec, SweepGrid};
pub use positions::{PositionRecord, PositionsFile, read_positions};
pub use report::{SCALING_METRICS, ScalingMetric, scaling_charts, scaling_markdown};
pub use results::{EvaluationFile, RunResult, ScalingReport};
pub use run::run_sweep;

#[cfg(test)]
mod tests;
