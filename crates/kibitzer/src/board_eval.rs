//! Glue between a dictionary and the board: feature activations of a
//! [`Dictionary`] over an activation store, as the host arrays
//! `kibitzer-bsp`'s metrics take, and the whole "coverage, board
//! reconstruction, neurons, probes" evaluation of one dictionary.

use burn::tensor::Device;
use kibitzer_bsp::{
    Activations, BspLabels, BspReport, FeatureScale, MetricsConfig, ProbeConfig, ProbeReport,
    SparseActivations, TokenRef,
};
use kibitzer_sae::Dictionary;
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_store::ActivationSource;
use ndarray::Array2;

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
    /// A metric failed (shapes, labels).
    #[error(transparent)]
    Bsp(#[from] kibitzer_bsp::BspError),
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
    Ok(Array2::from_shape_vec((rows, d), data).expect("exactly rows x d values were read"))
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
