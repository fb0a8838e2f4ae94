//! One run judged: reconstruction metrics, board-state coverage and board reconstruction, feature statistics.

use super::{
    EvalConfig, FeatureSummary, RunResult, RunSpec, SummaryConfig, SweepError, feature_summaries,
};
use crate::board_eval::{Baselines, BoardEvalError, evaluate_against_board};
use burn::tensor::Device;
use kibitzer_bsp::{BspLabels, MetricsConfig, SparseActivations, TokenRef};
use kibitzer_sae::metrics::{EvalMetrics, MetricsAccumulator};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_sae::{Dictionary, Sae};
use kibitzer_store::{ActivationSource, ReaderConfig, Store};

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
    let mut reader = store.reader(ReaderConfig::in_order())?;
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

pub(super) fn run_result(
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
