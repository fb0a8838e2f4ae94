//! Concept-aware feature extraction: for each threat concept, the dictionary
//! features that signal it best and a linear probe on the raw activations,
//! at every rating the policy is told. If the concepts are as readable at a
//! low rating as at a high one while the moves differ, the policy keeps the
//! concept inside and modulates only its externalisation (the reference's
//! question).
//!
//! Rows are square tokens (`64 * position + token`); the first
//! `train_fraction` of the positions select features and train probes, the
//! rest score them (kibitzer-bsp's coverage and board reconstruction, and
//! its probes).

use burn::tensor::Device;
use kibitzer_bsp::{Activations, BspLabels, MetricsConfig, ProbeConfig, SparseActivations};
use kibitzer_games::chess::Chess;
use kibitzer_hooks::HookSite;
use kibitzer_models::chess_policy::ChessPolicy;
use kibitzer_sae::Dictionary;
use kibitzer_sae::ops::{from_host, to_host};
use ndarray::ArrayView2;

use super::{
    Conditioning, RatedPosition, Result, SkillError, THREAT_CONCEPTS, handles_threat, has_threat,
    predict_moves, site_rows, threat_labels,
};

/// Settings of [`concept_report`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConceptConfig {
    /// The conditionings compared; the first selects the salient features.
    pub conditionings: Vec<Conditioning>,
    /// Only this head's columns of a per-head site.
    pub head: Option<usize>,
    /// Salient features kept per concept.
    pub top_features: usize,
    /// Share of the positions that select features and train probes.
    pub train_fraction: f64,
    /// Positions per forward pass.
    pub batch: usize,
    /// The probes.
    pub probe: ProbeConfig,
    /// kibitzer-bsp's metrics.
    pub metrics: MetricsConfig,
}

impl Default for ConceptConfig {
    /// The played ratings, 5 features per concept, half the positions to
    /// select, kibitzer-bsp's metrics, probes trained for 200 passes of 256
    /// rows at lr 1e-2.
    fn default() -> ConceptConfig {
        ConceptConfig {
            conditionings: vec![Conditioning::Played],
            head: None,
            top_features: 5,
            train_fraction: 0.5,
            batch: 64,
            // The balanced probe rows are few (twice the threatened squares:
            // about a thousand for a thousand positions), so the probes need
            // many passes to train; a linear probe on them is cheap.
            probe: ProbeConfig {
                epochs: 200,
                batch_size: 256,
                learning_rate: 1e-2,
                ..ProbeConfig::default()
            },
            metrics: MetricsConfig::default(),
        }
    }
}

/// A feature scored as a classifier of a concept (active = predicted).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureScore {
    /// The feature.
    pub feature: usize,
    /// F1 of "the feature is active" against the concept.
    pub f1: f64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
}

/// The salient features of one concept, chosen on the first conditioning's
/// training rows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SalientFeatures {
    /// The concept.
    pub concept: String,
    /// Training rows where the concept holds.
    pub positives: u64,
    /// The features, best F1 first.
    pub features: Vec<FeatureScore>,
}

/// How readable one concept is under one conditioning.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConceptScore {
    /// The concept.
    pub concept: String,
    /// kibitzer-bsp coverage: the best feature's F1 at its best threshold
    /// (training rows).
    pub best_f1: f64,
    /// That feature.
    pub best_feature: Option<usize>,
    /// kibitzer-bsp board reconstruction F1 of the high-precision features
    /// (held-out rows).
    pub reconstruction_f1: f64,
    /// The first salient feature's F1 (held-out rows, active = predicted).
    pub salient_f1: f64,
    /// Mean activation of the salient features on held-out rows where the
    /// concept holds.
    pub salient_activation_on: f64,
    /// ... and where it does not.
    pub salient_activation_off: f64,
    /// Linear probe on the raw activations: held-out accuracy.
    pub probe_accuracy: f64,
    /// ... and F1.
    pub probe_f1: f64,
}

/// One conditioning's row of the table.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConditioningScores {
    /// The conditioning.
    pub conditioning: Conditioning,
    /// Its rating bucket (none for the played ratings).
    pub bucket: Option<usize>,
    /// Per concept.
    pub concepts: Vec<ConceptScore>,
    /// Positions with a threat.
    pub threat_positions: usize,
    /// Of those, where the policy's move handles one.
    pub handled: usize,
    /// `handled / threat_positions`.
    pub handled_rate: f64,
}

/// Everything [`concept_report`] measured.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConceptReport {
    /// The hook site.
    pub site: String,
    /// The head, for a per-head site read one head at a time.
    #[serde(default)]
    pub head: Option<usize>,
    /// The dictionary's features.
    pub d_sae: usize,
    /// Positions scored.
    pub positions: usize,
    /// Of those, selecting features and training probes.
    pub train_positions: usize,
    /// The salient features per concept.
    pub salient: Vec<SalientFeatures>,
    /// One row per conditioning.
    pub rows: Vec<ConditioningScores>,
}

/// Feature activations of `rows` (host, `[n, width]`) as sparse columns,
/// encoded in batches on `device`.
pub fn encode_sparse(
    dictionary: &dyn Dictionary,
    rows: &[f32],
    width: usize,
    device: &Device,
) -> Result<SparseActivations> {
    let n = rows.len() / width.max(1);
    let d_sae = dictionary.d_sae();
    let (mut row_ptr, mut cols, mut values) = (vec![0usize], Vec::new(), Vec::new());
    for start in (0..n).step_by(4096) {
        let m = (n - start).min(4096);
        let x = from_host(
            rows[start * width..(start + m) * width].to_vec(),
            m,
            width,
            device,
        );
        let f = to_host(dictionary.encode(x));
        for r in 0..m {
            for (c, &v) in f[r * d_sae..(r + 1) * d_sae].iter().enumerate() {
                if v > 0.0 {
                    cols.push(c as u32);
                    values.push(v);
                }
            }
            row_ptr.push(values.len());
        }
    }
    Ok(SparseActivations::from_csr(
        n, d_sae, &row_ptr, &cols, &values,
    )?)
}

/// Rows of `range` where `concept` holds.
fn positives_in(labels: &BspLabels, concept: usize, range: std::ops::Range<usize>) -> u64 {
    range.filter(|&r| labels.bits().get(r, concept)).count() as u64
}

/// F1, precision and recall of "`feature` active" against `concept` over the
/// rows `range` (one pass over the feature's column).
fn score_feature(
    acts: &SparseActivations,
    labels: &BspLabels,
    concept: usize,
    feature: usize,
    range: std::ops::Range<usize>,
    positives: u64,
) -> FeatureScore {
    let (rows, _) = acts.column(feature);
    let (mut tp, mut active) = (0u64, 0u64);
    for &r in rows {
        let r = r as usize;
        if range.contains(&r) {
            active += 1;
            tp += u64::from(labels.bits().get(r, concept));
        }
    }
    let precision = if active == 0 {
        0.0
    } else {
        tp as f64 / active as f64
    };
    let recall = if positives == 0 {
        0.0
    } else {
        tp as f64 / positives as f64
    };
    let f1 = if tp == 0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    FeatureScore {
        feature,
        f1,
        precision,
        recall,
    }
}

/// [`score_feature`] of every feature.
fn feature_scores(
    acts: &SparseActivations,
    labels: &BspLabels,
    concept: usize,
    range: std::ops::Range<usize>,
) -> Vec<FeatureScore> {
    let positives = positives_in(labels, concept, range.clone());
    (0..acts.cols())
        .map(|feature| score_feature(acts, labels, concept, feature, range.clone(), positives))
        .collect()
}

/// Mean activation of `features` over rows of `range` where the concept
/// holds (`on`) and where it does not.
fn mean_activation(
    acts: &SparseActivations,
    labels: &BspLabels,
    concept: usize,
    features: &[usize],
    range: std::ops::Range<usize>,
) -> (f64, f64) {
    let on_rows = range
        .clone()
        .filter(|&r| labels.bits().get(r, concept))
        .count();
    let off_rows = range.len() - on_rows;
    let (mut on, mut off) = (0f64, 0f64);
    for &feature in features {
        let (rows, values) = acts.column(feature);
        for (&r, &v) in rows.iter().zip(values) {
            let r = r as usize;
            if range.contains(&r) {
                if labels.bits().get(r, concept) {
                    on += f64::from(v);
                } else {
                    off += f64::from(v);
                }
            }
        }
    }
    let k = features.len().max(1) as f64;
    (
        on / (k * on_rows.max(1) as f64),
        off / (k * off_rows.max(1) as f64),
    )
}

/// The rows a probe trains on: every row where a concept holds and as many
/// others drawn with `seed` (threatened squares are about 1% of the square
/// tokens; on the natural mix a probe learns to say "no threat" everywhere).
/// All rows when no concept holds anywhere.
fn balanced_rows(labels: &BspLabels, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let (mut positive, mut negative): (Vec<usize>, Vec<usize>) =
        (0..labels.rows()).partition(|&r| labels.bits().ones_in_row(r).next().is_some());
    if positive.is_empty() {
        return negative;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    negative.shuffle(&mut rng);
    negative.truncate(positive.len());
    positive.extend(negative);
    positive.sort_unstable();
    positive
}

/// The salient features, readability and probe per conditioning (see the
/// module docs). Probes train on the balanced training rows
/// ([`balanced_rows`]) and are scored on every held-out row. `positions` should be held-out positions of the policy.
pub fn concept_report(
    policy: &ChessPolicy,
    dictionary: &dyn Dictionary,
    site: HookSite,
    positions: &[RatedPosition],
    config: &ConceptConfig,
) -> Result<ConceptReport> {
    if config.conditionings.is_empty() {
        return Err(SkillError::Input(
            "no conditioning to score; expected at least one rating".into(),
        ));
    }
    let n = positions.len();
    let n_train = ((n as f64) * config.train_fraction).round() as usize;
    if n_train == 0 || n_train >= n {
        return Err(SkillError::Input(format!(
            "{n} positions with train fraction {}: expected positions on both sides of the split",
            config.train_fraction
        )));
    }
    let chess: Vec<Chess> = positions.iter().map(|p| p.position.clone()).collect();
    let labels = threat_labels(&chess);
    let (train_rows, test_rows) = (0..n_train * 64, n_train * 64..n * 64);
    let train_index: Vec<usize> = train_rows.clone().collect();
    let test_index: Vec<usize> = test_rows.clone().collect();
    let (train_labels, test_labels) = (
        labels.select_rows(&train_index),
        labels.select_rows(&test_index),
    );
    let probe_rows = balanced_rows(&train_labels, config.probe.seed);
    let probe_labels = train_labels.select_rows(&probe_rows);
    let device = policy.device();
    let mut salient: Vec<SalientFeatures> = Vec::new();
    let mut rows_out = Vec::new();
    for (ci, conditioning) in config.conditionings.iter().enumerate() {
        let inputs = conditioning.inputs(positions);
        let (rows, width) = site_rows(policy, &inputs, site, config.head, config.batch)?;
        if width != dictionary.d_in() {
            return Err(SkillError::Input(format!(
                "{site} rows are {width} wide but the dictionary reads {}; expected a dictionary trained on this site of this policy",
                dictionary.d_in()
            )));
        }
        let acts = encode_sparse(dictionary, &rows, width, &device)?;
        if ci == 0 {
            for (c, name) in THREAT_CONCEPTS.iter().enumerate() {
                let mut scores = feature_scores(&acts, &labels, c, train_rows.clone());
                scores.sort_by(|a, b| b.f1.total_cmp(&a.f1).then(a.feature.cmp(&b.feature)));
                scores.truncate(config.top_features);
                salient.push(SalientFeatures {
                    concept: name.to_string(),
                    positives: train_labels.positives()[c],
                    features: scores,
                });
            }
        }
        let train_acts = acts.select_rows(&train_index)?;
        let test_acts = acts.select_rows(&test_index)?;
        let bsp = kibitzer_bsp::evaluate(
            &conditioning.label(),
            (&Activations::Sparse(&train_acts), &train_labels),
            Some((&Activations::Sparse(&test_acts), &test_labels)),
            None,
            &config.metrics,
        )?;
        let raw = ArrayView2::from_shape((n * 64, width), &rows)
            .map_err(|e| SkillError::Input(format!("activation rows: {e}")))?;
        let probe_x = raw.select(ndarray::Axis(0), &probe_rows);
        let probes = kibitzer_bsp::probe_report(
            &conditioning.label(),
            (probe_x.view(), &probe_labels),
            (raw.slice(ndarray::s![n_train * 64.., ..]), &test_labels),
            &[],
            &config.probe,
        )?;
        let concepts = THREAT_CONCEPTS
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let coverage = bsp.coverage.bsps.iter().find(|b| b.name == *name);
                let recon = bsp
                    .reconstruction
                    .as_ref()
                    .and_then(|r| r.bsps.iter().find(|b| b.name == *name));
                let probe = probes.groups.iter().find(|g| g.name == *name);
                let chosen: Vec<usize> = salient[c].features.iter().map(|f| f.feature).collect();
                let positives = positives_in(&labels, c, test_rows.clone());
                let salient_f1 = chosen.first().map_or(0.0, |&f| {
                    score_feature(&acts, &labels, c, f, test_rows.clone(), positives).f1
                });
                let (on, off) = mean_activation(&acts, &labels, c, &chosen, test_rows.clone());
                ConceptScore {
                    concept: name.to_string(),
                    best_f1: coverage.map_or(0.0, |b| f64::from(b.best_f1)),
                    best_feature: coverage.and_then(|b| b.best_feature),
                    reconstruction_f1: recon.map_or(0.0, |b| f64::from(b.f1)),
                    salient_f1,
                    salient_activation_on: on,
                    salient_activation_off: off,
                    probe_accuracy: probe.map_or(0.0, |p| p.accuracy),
                    probe_f1: probe.map_or(0.0, |p| p.f1),
                }
            })
            .collect();
        let (threat_positions, handled) = handling(policy, &inputs, config.batch)?;
        rows_out.push(ConditioningScores {
            conditioning: *conditioning,
            bucket: match conditioning {
                Conditioning::Played => None,
                Conditioning::Rating(r) => Some(policy.config().bucket(*r)),
            },
            concepts,
            threat_positions,
            handled,
            handled_rate: handled as f64 / threat_positions.max(1) as f64,
        });
    }
    Ok(ConceptReport {
        site: site.to_string(),
        head: config.head,
        d_sae: dictionary.d_sae(),
        positions: n,
        train_positions: n_train,
        salient,
        rows: rows_out,
    })
}

/// (positions with a threat, of those where the policy's move handles one).
pub fn handling(
    policy: &ChessPolicy,
    inputs: &[(Chess, u32, u32)],
    batch: usize,
) -> Result<(usize, usize)> {
    let threats: Vec<(Chess, u32, u32)> = inputs
        .iter()
        .filter(|(p, _, _)| has_threat(p))
        .cloned()
        .collect();
    let moves = predict_moves(policy, &threats, batch)?;
    let handled = threats
        .iter()
        .zip(moves)
        .filter(|((p, _, _), mv)| handles_threat(p, *mv))
        .count();
    Ok((threats.len(), handled))
}

/// The report as a Markdown table.
pub fn concept_markdown(report: &ConceptReport) -> String {
    let mut md = format!(
        "# Threat concepts at {}\n\n{} held-out positions ({} select features and train probes), {} features.\n\n",
        report.site, report.positions, report.train_positions, report.d_sae
    );
    md.push_str("## Salient features (chosen under the first conditioning)\n\n| concept | positives | features (F1) |\n|---|---:|---|\n");
    for s in &report.salient {
        let list: Vec<String> = s
            .features
            .iter()
            .map(|f| format!("{} ({:.3})", f.feature, f.f1))
            .collect();
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            s.concept,
            s.positives,
            list.join(", ")
        ));
    }
    md.push_str("\n## Readability per rating\n\nbest F1: kibitzer-bsp coverage (best feature, best threshold); recon F1: board reconstruction by the high-precision features on held-out rows; salient F1 and activations: the first salient feature / all salient features on held-out rows; probe: logistic regression on the raw activations, trained on the threatened squares and as many others, scored on every held-out row. Handled: share of threat positions where the policy's move handles a threat.\n\n");
    md.push_str("| rating | concept | best F1 | recon F1 | salient F1 | act on / off | probe acc | probe F1 | handled |\n|---|---|---:|---:|---:|---|---:|---:|---:|\n");
    for row in &report.rows {
        for c in &row.concepts {
            md.push_str(&format!(
                "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} / {:.3} | {:.3} | {:.3} | {:.3} ({}/{}) |\n",
                row.conditioning.label(),
                c.concept,
                c.best_f1,
                c.reconstruction_f1,
                c.salient_f1,
                c.salient_activation_on,
                c.salient_activation_off,
                c.probe_accuracy,
                c.probe_f1,
                row.handled_rate,
                row.handled,
                row.threat_positions
            ));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_bsp::BitMatrix;

    #[test]
    fn probes_train_on_every_positive_and_as_many_negatives() {
        let mut bits = BitMatrix::zeros(100, 2);
        for (r, c) in [(3, 0), (40, 1), (41, 0), (41, 1)] {
            bits.set(r, c, true);
        }
        let labels = BspLabels::from_bits(crate::skill::threat_catalog(), bits).unwrap();
        let rows = balanced_rows(&labels, 7);
        assert_eq!(rows.len(), 6, "3 positive rows and 3 others: {rows:?}");
        assert!([3, 40, 41].iter().all(|r| rows.contains(r)));
        assert_eq!(rows, balanced_rows(&labels, 7), "seeded");
        let none =
            BspLabels::from_bits(crate::skill::threat_catalog(), BitMatrix::zeros(5, 2)).unwrap();
        assert_eq!(balanced_rows(&none, 0), vec![0, 1, 2, 3, 4]);
    }
}
