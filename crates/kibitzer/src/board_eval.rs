//! Glue between a dictionary and the board: feature activations of a
//! [`Dictionary`] over an activation store, as the host arrays
//! `kibitzer-bsp`'s metrics take, and the whole "coverage, board
//! reconstruction, neurons, probes" evaluation of one dictionary.
//!
//! Rows and labels are a checked contract: [`check_rows_match_labels`]
//! compares a store's `example`/`position` columns with the labels'
//! [`TokenRef`]s row for row wherever activation rows meet board labels.

use burn::tensor::Device;
use kibitzer_bsp::{
    Activations, BspLabels, BspReport, FeatureScale, MetricsConfig, ProbeConfig, ProbeReport,
    SparseActivations, TokenRef,
};
use kibitzer_sae::Dictionary;
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_store::{ActivationSource, ColumnData, Store};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// What can go wrong while evaluating against the board.
#[derive(Debug, thiserror::Error)]
pub enum BoardEvalError {
    /// Reading activations failed.
    #[error("reading activations: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// The store ran out before every labelled position had a row.
    #[error(
        "the activation store has {found} rows, but the labels need {expected} (one row per labelled position, in order)"
    )]
    TooFewRows {
        /// Rows needed.
        expected: usize,
        /// Rows found.
        found: usize,
    },
    /// The activations do not fit the dictionary.
    #[error("activations have width {found}, but the dictionary reads d_in = {expected}")]
    Width {
        /// The dictionary's input width.
        expected: usize,
        /// The store's row width.
        found: usize,
    },
    /// A store row and the labelled position of the same index are not
    /// the same (game, token): the first such row.
    #[error(transparent)]
    RowsDoNotMatchLabels(Box<RowMismatch>),
    /// Reading the store's row columns failed.
    #[error("{path}: reading the row columns: {source}")]
    Store {
        /// The store.
        path: PathBuf,
        /// The cause.
        source: Box<kibitzer_store::StoreError>,
    },
    /// A metric failed (shapes, labels).
    #[error(transparent)]
    Bsp(#[from] kibitzer_bsp::BspError),
}

/// The store metadata key that says what a store's `example` and
/// `position` columns hold ([`ROW_IDS_GAME_TOKEN`]).
pub const ROW_IDS_KEY: &str = "row_ids";

/// [`ROW_IDS_KEY`]'s value when `example` is the game and `position` the
/// token of the game that a label's [`TokenRef`] names (`game`, `token`):
/// what `kibitzer gpt harvest` and `kibitzer alphazero harvest` write.
pub const ROW_IDS_GAME_TOKEN: &str = "game-token";

/// What a store's `example` and `position` columns hold, as its metadata says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowIds {
    /// `example` = game, `position` = the token of the game (Othello: the
    /// square move; chess: the transcript character), compared with a
    /// label's [`TokenRef::game`] and [`TokenRef::token`]. Every store with
    /// the columns whose metadata does not say otherwise.
    GameToken,
    /// `example` = the index of the position among every position of the
    /// harvest, `position` = 0: AlphaZero stores harvested before they
    /// recorded (game, move) (metadata `model` = `alphazero-othello` and no
    /// [`ROW_IDS_KEY`]); row `r` must hold position `r`.
    PositionIndex,
}

/// Where a store's rows and a label file's positions first disagree (see
/// [`check_rows_match_labels`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowMismatch {
    /// The store.
    pub store: PathBuf,
    /// The label file.
    pub labels: PathBuf,
    /// The first row (0-based, of the store and of the labels alike) that
    /// disagrees.
    pub row: usize,
    /// The store's (`example`, `position`) at that row; `None` when the
    /// store ends before it.
    pub store_row: Option<(i64, i64)>,
    /// The store's rows.
    pub store_rows: usize,
    /// What the store's columns hold.
    pub ids: RowIds,
    /// The labelled position at that row.
    pub label: TokenRef,
    /// What a token is ("character" for chess, "token" otherwise).
    pub unit: &'static str,
}

impl std::fmt::Display for RowMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (store, labels, row, unit) = (
            self.store.display(),
            self.labels.display(),
            self.row,
            self.unit,
        );
        let TokenRef { game, ply, token } = self.label;
        let label = format!("game {game}, ply {ply}, {unit} {token}");
        match (self.store_row, self.ids) {
            (None, _) => write!(
                f,
                "the activation store {store} has {} rows, but row {row} of {labels} is {label} \
                 and has no activation row",
                self.store_rows
            )?,
            (Some((example, position)), RowIds::GameToken) => write!(
                f,
                "row {row} of the activation store {store} is game {example}, {unit} {position}, \
                 but row {row} of {labels} is {label}"
            )?,
            (Some((example, position)), RowIds::PositionIndex) => write!(
                f,
                "row {row} of the activation store {store} is harvested position {example} \
                 (example {example}, position {position}), but row {row} of {labels} is \
                 labelled position {row} ({label})"
            )?,
        }
        write!(
            f,
            ": the first row where they differ. The store and the labels come from different \
             games, different cuts (--max-games, --max-chars, --first-per-game, --truncate) or \
             a reordered store; harvest and label the same games with matching cuts"
        )
    }
}

impl std::error::Error for RowMismatch {}

/// What [`check_rows_match_labels`] could check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowCheck {
    /// Every labelled position's row holds that position.
    Matched {
        /// Rows compared (the labels' count).
        rows: usize,
    },
    /// The store has no `example`/`position` columns (harvested before
    /// they were written, or made by another tool): rows and labels are
    /// paired by count and order only. The warning says so, naming both.
    Unchecked {
        /// A one-line warning for the user.
        warning: String,
    },
}

/// The chess properties `kibitzer bsp labels --game chess` labels with:
/// kibitzer-bsp's pieces (absolute colours, the `low_level` category) and
/// its high-level properties, with their default options.
#[cfg(feature = "chess")]
pub fn chess_set()
-> Result<kibitzer_bsp::BspSet<kibitzer_games::chess::shakmaty::Chess>, kibitzer_bsp::BspError> {
    use kibitzer_bsp::chess::{ChessHighLevelOptions, ChessPieceOptions, chess_bsps};
    chess_bsps(
        ChessPieceOptions::default(),
        Some(ChessHighLevelOptions::default()),
    )
}

/// Checks that row `r` of `store` is labelled position `r` of the label
/// file `labels` (whose positions are `refs`), for every labelled position:
/// the store's `example` and `position` columns against each [`TokenRef`]'s
/// game and token ([`RowIds`] says how the columns are read). Fails with a
/// [`RowMismatch`] naming the first row that differs — the store and the
/// labels come from different games, a different `--max-chars` or
/// `--first-per-game`, a different game count, or the store was reordered —
/// or the first labelled position past the store's end.
///
/// The labels may cover a prefix of the store: an AlphaZero harvest labels
/// its first games only, and `kibitzer sweep` trains on every row.
///
/// Fallback: a store without the columns (harvested before they were
/// written, or by another tool) cannot be checked; it is paired by count
/// and order as before, and [`RowCheck::Unchecked`] carries a warning for
/// the caller to print. One linear pass over two i64 columns, read without
/// the activations.
pub fn check_rows_match_labels(
    store: &Store,
    refs: &[TokenRef],
    labels: &Path,
) -> Result<RowCheck, BoardEvalError> {
    let column = |name: &str| -> Result<Option<Vec<i64>>, BoardEvalError> {
        if !store
            .manifest()
            .extra_columns
            .iter()
            .any(|c| c.name == name)
        {
            return Ok(None);
        }
        match store.column(name) {
            Ok(ColumnData::I64(values)) => Ok(Some(values)),
            Ok(_) => Ok(None),
            Err(source) => Err(BoardEvalError::Store {
                path: store.dir().to_path_buf(),
                source: Box::new(source),
            }),
        }
    };
    let (Some(examples), Some(positions)) = (column("example")?, column("position")?) else {
        return Ok(RowCheck::Unchecked {
            warning: format!(
                "warning: the activation store {} has no i64 `example` and `position` columns \
                 (harvested before they were written, or by another tool), so its rows are paired \
                 with the labels of {} by count and order only, unchecked",
                store.dir().display(),
                labels.display()
            ),
        });
    };
    let metadata = store.metadata();
    let ids = match metadata.get(ROW_IDS_KEY).and_then(|v| v.as_str()) {
        None if metadata.get("model").and_then(|v| v.as_str()) == Some("alphazero-othello") => {
            RowIds::PositionIndex
        }
        _ => RowIds::GameToken,
    };
    let unit = match metadata.get("game").and_then(|v| v.as_str()) {
        Some("chess") => "character",
        _ => "token",
    };
    match first_mismatch(&examples, &positions, ids, refs) {
        None => Ok(RowCheck::Matched { rows: refs.len() }),
        Some(row) => Err(BoardEvalError::RowsDoNotMatchLabels(Box::new(
            RowMismatch {
                store: store.dir().to_path_buf(),
                labels: labels.to_path_buf(),
                row,
                store_row: examples.get(row).map(|&e| (e, positions[row])),
                store_rows: examples.len(),
                ids,
                label: refs[row],
                unit,
            },
        ))),
    }
}

/// The first labelled position whose store row is not it (or is missing).
fn first_mismatch(
    examples: &[i64],
    positions: &[i64],
    ids: RowIds,
    refs: &[TokenRef],
) -> Option<usize> {
    let want = |row: usize, r: &TokenRef| match ids {
        RowIds::GameToken => (r.game as i64, r.token as i64),
        RowIds::PositionIndex => (row as i64, 0),
    };
    let rows = examples.len().min(positions.len());
    refs.iter()
        .enumerate()
        .find(|&(row, r)| row >= rows || (examples[row], positions[row]) != want(row, r))
        .map(|(row, _)| row)
}

/// Reads exactly `rows` rows from `source` in batches, handing each batch to `f`.
fn for_each_batch<S: ActivationSource>(
    source: &mut S,
    rows: usize,
    batch: usize,
    mut f: impl FnMut(&[f32], usize),
) -> Result<(), BoardEvalError> {
    let mut buf = Vec::new();
    let mut done = 0;
    while done < rows {
        let got = source
            .next_batch(batch.max(1).min(rows - done), &mut buf)
            .map_err(|e| BoardEvalError::Source(Box::new(e)))?;
        if got == 0 {
            return Err(BoardEvalError::TooFewRows {
                expected: rows,
                found: done,
            });
        }
        f(&buf, got);
        done += got;
    }
    Ok(())
}

/// The feature activations of `dict` on the first `rows` rows of `source`,
/// as sparse columns (only non-zero activations are kept, so a TopK
/// dictionary over millions of tokens fits in memory).
pub fn dictionary_activations<S: ActivationSource>(
    dict: &impl Dictionary,
    source: &mut S,
    rows: usize,
    batch: usize,
    device: &Device,
) -> Result<SparseActivations, BoardEvalError> {
    if source.d_in() != dict.d_in() {
        return Err(BoardEvalError::Width {
            expected: dict.d_in(),
            found: source.d_in(),
        });
    }
    let d_sae = dict.d_sae();
    let (mut row_ptr, mut cols, mut values) = (vec![0usize], Vec::new(), Vec::new());
    for_each_batch(source, rows, batch, |buf, got| {
        let features = to_host(dict.encode(from_host(buf.to_vec(), got, dict.d_in(), device)));
        for row in features.chunks(d_sae) {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    cols.push(j as u32);
                    values.push(v);
                }
            }
            row_ptr.push(values.len());
        }
    })?;
    Ok(SparseActivations::from_csr(
        rows, d_sae, &row_ptr, &cols, &values,
    )?)
}

/// The first `rows` rows of `source` as a dense matrix: the raw-neuron
/// baseline, and the input of the linear probes.
pub fn raw_activations<S: ActivationSource>(
    source: &mut S,
    rows: usize,
) -> Result<Array2<f32>, BoardEvalError> {
    let d = source.d_in();
    let mut data = Vec::with_capacity(rows * d);
    for_each_batch(source, rows, 65_536, |buf, _| data.extend_from_slice(buf))?;
    Ok(Array2::from_shape_vec((rows, d), data).expect(
        "for_each_batch stops after exactly rows rows, and next_batch writes d_in values per row",
    ))
}

/// Which reports [`evaluate_against_board`] writes besides the dictionary's.
#[derive(Clone, Debug, Default)]
pub struct Baselines {
    /// The raw activations of the site, each neuron treated as a feature.
    pub neurons: bool,
    /// Supervised linear probes on the raw activations (the upper baseline).
    pub probes: Option<ProbeConfig>,
}

/// Reports of one evaluation.
#[derive(Clone, Debug)]
pub struct BoardEvaluation {
    /// The dictionary's coverage and board reconstruction, when one was given.
    pub dictionary: Option<BspReport>,
    /// The same metrics on the raw neurons.
    pub neurons: Option<BspReport>,
    /// Linear probes on the raw neurons.
    pub probes: Option<ProbeReport>,
}

/// Coverage on the train games and board reconstruction on held-out games
/// (split by game, seeded) for a dictionary's features (when given) and the
/// chosen baselines. `raw` is needed for the baselines only.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_against_board(
    name: &str,
    features: Option<&SparseActivations>,
    raw: Option<&Array2<f32>>,
    labels: &BspLabels,
    refs: &[TokenRef],
    test_fraction: f64,
    seed: u64,
    config: &MetricsConfig,
    baselines: &Baselines,
) -> Result<BoardEvaluation, BoardEvalError> {
    let (train, test) = kibitzer_bsp::labelling::split_by_game(refs, test_fraction, seed)?;
    let (train_labels, test_labels) = (labels.select_rows(&train), labels.select_rows(&test));
    let dictionary = match features {
        Some(features) => {
            // The maximum activation over every labelled token, as the
            // reference takes it over all tokens it has.
            let all = Activations::Sparse(features);
            let scale = FeatureScale::from_activations(&all, config.max_activation_tokens)?;
            let (f_train, f_test) = (features.select_rows(&train)?, features.select_rows(&test)?);
            Some(kibitzer_bsp::evaluate(
                name,
                (&Activations::Sparse(&f_train), &train_labels),
                Some((&Activations::Sparse(&f_test), &test_labels)),
                Some(&scale),
                config,
            )?)
        }
        None => None,
    };
    let pick = |m: &Array2<f32>, rows: &[usize]| m.select(ndarray::Axis(0), rows);
    let neurons = match (baselines.neurons, raw) {
        (true, Some(raw)) => {
            let (r_train, r_test) = (pick(raw, &train), pick(raw, &test));
            let scale = FeatureScale::from_activations(
                &Activations::Dense(raw.view()),
                config.max_activation_tokens,
            )?;
            Some(kibitzer_bsp::evaluate(
                "neurons",
                (&Activations::Dense(r_train.view()), &train_labels),
                Some((&Activations::Dense(r_test.view()), &test_labels)),
                Some(&scale),
                config,
            )?)
        }
        _ => None,
    };
    let probes = match (&baselines.probes, raw) {
        (Some(probe_config), Some(raw)) => {
            let (r_train, r_test) = (pick(raw, &train), pick(raw, &test));
            Some(kibitzer_bsp::probe_report(
                "linear probes",
                (r_train.view(), &train_labels),
                (r_test.view(), &test_labels),
                &[],
                probe_config,
            )?)
        }
        _ => None,
    };
    Ok(BoardEvaluation {
        dictionary,
        neurons,
        probes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(ids: &[(usize, usize)]) -> Vec<TokenRef> {
        ids.iter()
            .map(|&(game, token)| TokenRef {
                game,
                ply: token + 1,
                token,
            })
            .collect()
    }

    #[test]
    fn the_first_row_that_differs_is_found() {
        let labels = refs(&[(0, 0), (0, 1), (1, 0), (1, 1)]);
        let (examples, positions) = (vec![0, 0, 1, 1, 2], vec![0, 1, 0, 1, 0]);
        let check =
            |e: &[i64], p: &[i64], l: &[TokenRef]| first_mismatch(e, p, RowIds::GameToken, l);
        assert_eq!(check(&examples, &positions, &labels), None);
        // Labels of the first games only: a prefix of the store.
        assert_eq!(check(&examples, &positions, &labels[..2]), None);
        // Rows 1 and 2 swapped.
        assert_eq!(check(&[0, 1, 0, 1], &[0, 0, 1, 1], &labels), Some(1));
        // A store that ends early: the first label past its end.
        assert_eq!(check(&examples[..3], &positions[..3], &labels), Some(3));
        // Position indices: row r must hold position r.
        let by_index = |e: &[i64]| first_mismatch(e, &[0, 0, 0, 0], RowIds::PositionIndex, &labels);
        assert_eq!(by_index(&[0, 1, 2, 3]), None);
        assert_eq!(by_index(&[0, 1, 3, 2]), Some(2));
    }
}
