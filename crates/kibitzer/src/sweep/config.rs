//! How a sweep is configured and what it records of its settings.

use super::SweepGrid;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

/// Whose positions the labels describe, and so which board-state
/// properties judge the features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepGame {
    /// Othello on a board of this side (kibitzer-bsp's Othello set; the
    /// ranking category is `board`).
    Othello {
        /// Board side.
        size: usize,
    },
    /// Chess (kibitzer-bsp's pieces and high-level properties, as `kibitzer
    /// bsp labels --game chess` labels them; the pieces are the `low_level`
    /// category). The feature viewer shows no boards for chess.
    #[cfg(feature = "chess")]
    Chess,
}

impl SweepGame {
    /// `othello` or `chess`.
    pub fn name(&self) -> &'static str {
        match self {
            SweepGame::Othello { .. } => "othello",
            #[cfg(feature = "chess")]
            SweepGame::Chess => "chess",
        }
    }

    /// The side of the board.
    pub fn board_size(&self) -> usize {
        match self {
            SweepGame::Othello { size } => *size,
            #[cfg(feature = "chess")]
            SweepGame::Chess => 8,
        }
    }

    /// The properties the labels hold.
    pub fn catalog(&self) -> Result<std::sync::Arc<kibitzer_bsp::Catalog>, kibitzer_bsp::BspError> {
        Ok(match self {
            SweepGame::Othello { size } => {
                kibitzer_bsp::othello::othello_bsps(*size, Default::default())?
                    .catalog()
                    .clone()
            }
            #[cfg(feature = "chess")]
            SweepGame::Chess => crate::board_eval::chess_set()?.catalog().clone(),
        })
    }
}

/// Everything `kibitzer sweep` needs.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Activation store: row i is the activation at labelled position i.
    pub activations: PathBuf,
    /// Label file from `kibitzer bsp labels` (JSON lines).
    pub labels: PathBuf,
    /// Whose positions the labels describe.
    pub game: SweepGame,
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
