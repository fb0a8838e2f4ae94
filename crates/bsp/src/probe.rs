//! Supervised linear probes, the upper baseline of reference 002's table:
//! for every slot of the chosen groups (an Othello square: mine / yours /
//! empty; a chess square: its piece types) a multinomial logistic
//! regression over the slot's classes plus a "none of them" class, and for
//! every property without a slot a two-class one (holds / does not). All
//! probes read the same activations and train together with AdamW
//! (decoupled weight decay on the weights, not the biases) on minibatches in
//! a seeded order; they are scored on held-out rows by accuracy and, with
//! every predicted class read as a predicted property, by the F1 of board
//! reconstruction (pooled counts per group; aggregates average the counts of
//! their groups).

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{BspError, Result};
use crate::property::{BspLabels, Catalog};
use crate::report::{ProbeGroupScore, ProbeReport};

/// Training settings of the probes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Passes over the train rows.
    pub epochs: usize,
    /// Rows per AdamW step.
    pub batch_size: usize,
    /// Learning rate.
    pub learning_rate: f32,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f32,
    /// Adam's beta1.
    pub beta1: f32,
    /// Adam's beta2.
    pub beta2: f32,
    /// Adam's epsilon.
    pub epsilon: f32,
    /// Seed of the minibatch order.
    pub seed: u64,
}

impl Default for ProbeConfig {
    /// Reference 002's probes (chess_llm_interpretability): AdamW, lr 1e-3,
    /// betas (0.9, 0.99), weight decay 0.01.
    fn default() -> Self {
        ProbeConfig {
            epochs: 5,
            batch_size: 1024,
            learning_rate: 1e-3,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            epsilon: 1e-8,
            seed: 0,
        }
    }
}

impl ProbeConfig {
    fn validate(&self) -> Result<()> {
        let bad = |field, detail: String| Err(BspError::Config { field, detail });
        if self.epochs == 0 {
            return bad("epochs", "0; expected at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "0; expected at least 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                format!("{}; expected > 0", self.learning_rate),
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("{}; expected >= 0", self.weight_decay),
            );
        }
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(field, format!("{beta}; expected a value in 0..1"));
            }
        }
        Ok(())
    }
}

/// One probe: a categorical variable and its classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeVariable {
    /// The slot name, or the property name for a standalone property.
    pub name: String,
    /// Group index in the catalog.
    pub group: usize,
    /// The classes: a property index, or `None` for "none of them".
    pub classes: Vec<Option<usize>>,
}

/// The probe variables of the given groups (all groups when `groups` is
/// empty), in catalog order.
pub fn probe_variables(catalog: &Catalog, groups: &[&str]) -> Result<Vec<ProbeVariable>> {
    let chosen: Vec<usize> = if groups.is_empty() {
        (0..catalog.groups().len()).collect()
    } else {
        groups
            .iter()
            .map(|name| {
                catalog
                    .group_index(name)
                    .ok_or_else(|| BspError::UnknownName {
                        what: "probe groups".into(),
                        kind: "group",
                        name: name.to_string(),
                    })
            })
            .collect::<Result<_>>()?
    };
    let mut variables = Vec::new();
    for &g in &chosen {
        let mut done_slots = Vec::new();
        for &b in &catalog.groups()[g].bsps {
            match catalog.slot_of(b) {
                Some(s) => {
                    if !done_slots.contains(&s) {
                        done_slots.push(s);
                        let slot = &catalog.slots()[s];
                        let mut classes: Vec<Option<usize>> =
                            slot.bsps.iter().map(|&b| Some(b)).collect();
                        classes.push(None);
                        variables.push(ProbeVariable {
                            name: slot.name.clone(),
                            group: g,
                            classes,
                        });
                    }
                }
                None => variables.push(ProbeVariable {
                    name: catalog.bsps()[b].name.clone(),
                    group: g,
                    classes: vec![Some(b), None],
                }),
            }
        }
    }
    Ok(variables)
}

/// The class index of every (row, variable): `targets[row * variables + v]`.
fn targets(variables: &[ProbeVariable], labels: &BspLabels, what: &str) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(labels.rows() * variables.len());
    for row in 0..labels.rows() {
        for v in variables {
            let mut target = None;
            for (c, class) in v.classes.iter().enumerate() {
                if let Some(b) = class
                    && labels.get(row, *b)
                {
                    if target.is_some() {
                        return Err(BspError::Position {
                            what: format!("{what} row {row}"),
                            detail: format!(
                                "two classes of slot {} hold at once; a slot's properties must exclude each other",
                                v.name
                            ),
                        });
                    }
                    target = Some(c);
                }
            }
            let none = v.classes.len() - 1;
            out.push(target.unwrap_or(none) as u32);
        }
    }
    Ok(out)
}

/// A trained set of probes: weights `[d, classes]`, biases, and where each
/// variable's classes start.
#[derive(Clone, Debug)]
pub struct LinearProbes {
    /// The variables.
    pub variables: Vec<ProbeVariable>,
    /// Weights, `[input dim, total classes]`.
    pub weights: Array2<f32>,
    /// Biases, `[total classes]`.
    pub bias: Array1<f32>,
    offsets: Vec<usize>,
}

impl LinearProbes {
    /// The predicted class of every variable for every row of `x`:
    /// `out[row * variables + v]`.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<u32>> {
        if x.ncols() != self.weights.nrows() {
            return Err(BspError::ColumnCount {
                what: "probe inputs".into(),
                expected: self.weights.nrows(),
                found: x.ncols(),
            });
        }
        const CHUNK: usize = 1024;
        let n_vars = self.variables.len();
        let chunks: Vec<Vec<u32>> = (0..x.nrows().div_ceil(CHUNK))
            .into_par_iter()
            .map(|i| {
                let rows = x.slice(s![i * CHUNK..((i + 1) * CHUNK).min(x.nrows()), ..]);
                let logits = rows.dot(&self.weights) + &self.bias;
                let mut out = Vec::with_capacity(rows.nrows() * n_vars);
                for row in logits.outer_iter() {
                    for v in 0..n_vars {
                        let seg = row.slice(s![self.offsets[v]..self.offsets[v + 1]]);
                        let mut best = 0;
                        for (c, &z) in seg.iter().enumerate() {
                            if z > seg[best] {
                                best = c;
                            }
                        }
                        out.push(best as u32);
                    }
                }
                out
            })
            .collect();
        Ok(chunks.concat())
    }
}

fn check_rows(x: ArrayView2<'_, f32>, labels: &BspLabels, what: &str) -> Result<()> {
    if x.nrows() != labels.rows() {
        return Err(BspError::RowCount {
            what: format!("{what} probe inputs"),
            expected: labels.rows(),
            found: x.nrows(),
        });
    }
    for (r, row) in x.outer_iter().enumerate() {
        if let Some((c, &v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(BspError::NonFinite {
                what: format!("{what} probe inputs"),
                row: r,
                column: c,
                value: v,
            });
        }
    }
    Ok(())
}

/// Trains probes for the variables of `groups` (all when empty) on
/// `train_x` / `train_labels`.
pub fn train_probes(
    train_x: ArrayView2<'_, f32>,
    train_labels: &BspLabels,
    groups: &[&str],
    config: &ProbeConfig,
) -> Result<(LinearProbes, Vec<f32>)> {
    config.validate()?;
    check_rows(train_x, train_labels, "train")?;
    if train_x.nrows() == 0 {
        return Err(BspError::RowCount {
            what: "train probe inputs".into(),
            expected: 1,
            found: 0,
        });
    }
    let variables = probe_variables(train_labels.catalog(), groups)?;
    let y = targets(&variables, train_labels, "train labels")?;
    let mut offsets = vec![0];
    for v in &variables {
        offsets.push(offsets.last().expect("starts with 0") + v.classes.len());
    }
    let (n, d, k, n_vars) = (
        train_x.nrows(),
        train_x.ncols(),
        *offsets.last().expect("starts with 0"),
        variables.len(),
    );
    let mut w = Array2::<f32>::zeros((d, k));
    let mut b = Array1::<f32>::zeros(k);
    let (mut m_w, mut v_w) = (Array2::<f32>::zeros((d, k)), Array2::<f32>::zeros((d, k)));
    let (mut m_b, mut v_b) = (Array1::<f32>::zeros(k), Array1::<f32>::zeros(k));
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut losses = Vec::with_capacity(config.epochs);
    let mut step = 0i32;
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        let mut epoch_loss = 0f64;
        for batch in order.chunks(config.batch_size) {
            const SUB: usize = 256;
            let scale = 1.0 / batch.len() as f32;
            // Parallel over pieces of the batch: logits, softmax gradient,
            // and the piece's share of the weight gradient.
            let (grad_w, grad_b, loss) = batch
                .par_chunks(SUB)
                .map(|piece| {
                    let xb = train_x.select(Axis(0), piece);
                    let mut g = xb.dot(&w) + &b;
                    let mut loss = 0f64;
                    for (mut row, &r) in g.outer_iter_mut().zip(piece) {
                        for v in 0..n_vars {
                            let mut seg = row.slice_mut(s![offsets[v]..offsets[v + 1]]);
                            let max = seg.fold(f32::NEG_INFINITY, |a, &z| a.max(z));
                            seg.mapv_inplace(|z| (z - max).exp());
                            let sum = seg.sum();
                            seg.mapv_inplace(|e| e / sum);
                            let t = y[r * n_vars + v] as usize;
                            loss -= f64::from(seg[t].max(1e-30).ln());
                            seg[t] -= 1.0;
                        }
                    }
                    g.mapv_inplace(|z| z * scale);
                    (xb.t().dot(&g), g.sum_axis(Axis(0)), loss)
                })
                .reduce(
                    || (Array2::zeros((d, k)), Array1::zeros(k), 0f64),
                    |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2),
                );
            epoch_loss += loss;
            step += 1;
            let (b1, b2, lr) = (config.beta1, config.beta2, config.learning_rate);
            let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
            w.mapv_inplace(|p| p * (1.0 - lr * config.weight_decay));
            ndarray::Zip::from(&mut w)
                .and(&mut m_w)
                .and(&mut v_w)
                .and(&grad_w)
                .for_each(|p, m, v, &g| {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + config.epsilon);
                });
            ndarray::Zip::from(&mut b)
                .and(&mut m_b)
                .and(&mut v_b)
                .and(&grad_b)
                .for_each(|p, m, v, &g| {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + config.epsilon);
                });
        }
        losses.push((epoch_loss / (n * n_vars.max(1)) as f64) as f32);
    }
    Ok((
        LinearProbes {
            variables,
            weights: w,
            bias: b,
            offsets,
        },
        losses,
    ))
}

/// Held-out accuracy and F1 of trained probes.
pub fn score_probes(
    name: &str,
    probes: &LinearProbes,
    test_x: ArrayView2<'_, f32>,
    test_labels: &BspLabels,
    train_rows: usize,
    epoch_losses: Vec<f32>,
) -> Result<ProbeReport> {
    check_rows(test_x, test_labels, "test")?;
    let catalog = test_labels.catalog();
    let y = targets(&probes.variables, test_labels, "test labels")?;
    let predicted = probes.predict(test_x)?;
    let n_vars = probes.variables.len();
    let n_groups = catalog.groups().len();
    // Per group: variables, correct, pairs, tp, fp, fn.
    let mut tally = vec![[0u64; 6]; n_groups];
    for v in &probes.variables {
        tally[v.group][0] += 1;
    }
    for row in 0..test_labels.rows() {
        for (i, v) in probes.variables.iter().enumerate() {
            let (t, p) = (
                y[row * n_vars + i] as usize,
                predicted[row * n_vars + i] as usize,
            );
            let g = &mut tally[v.group];
            g[2] += 1;
            if t == p {
                g[1] += 1;
                if v.classes[t].is_some() {
                    g[3] += 1;
                }
            } else {
                if v.classes[p].is_some() {
                    g[4] += 1;
                }
                if v.classes[t].is_some() {
                    g[5] += 1;
                }
            }
        }
    }
    let score = |name: String, members: &[usize]| {
        let n = members.len().max(1) as f64;
        let sum = |i: usize| members.iter().map(|&g| tally[g][i]).sum::<u64>();
        let (tp, fp, fn_) = (sum(3) as f64 / n, sum(4) as f64 / n, sum(5) as f64 / n);
        let eps = 1e-8;
        let precision = tp / (tp + fp + eps);
        let recall = tp / (tp + fn_ + eps);
        ProbeGroupScore {
            name,
            variables: sum(0) as usize,
            accuracy: sum(1) as f64 / (sum(2).max(1)) as f64,
            precision,
            recall,
            f1: 2.0 * precision * recall / (precision + recall + eps),
        }
    };
    let used: Vec<usize> = (0..n_groups).filter(|&g| tally[g][0] > 0).collect();
    let groups = used
        .iter()
        .map(|&g| score(catalog.groups()[g].name.clone(), &[g]))
        .collect();
    let mut categories: Vec<(String, Vec<usize>)> = Vec::new();
    for &g in &used {
        let category = &catalog.groups()[g].category;
        match categories.iter_mut().find(|(c, _)| c == category) {
            Some((_, members)) => members.push(g),
            None => categories.push((category.clone(), vec![g])),
        }
    }
    categories.push(("all".into(), used.clone()));
    Ok(ProbeReport {
        name: name.to_string(),
        train_rows,
        test_rows: test_labels.rows(),
        groups,
        aggregates: categories
            .into_iter()
            .map(|(name, members)| score(name, &members))
            .collect(),
        epoch_losses,
    })
}

/// Trains probes on the train rows and scores them on the held-out rows.
pub fn probe_report(
    name: &str,
    train: (ArrayView2<'_, f32>, &BspLabels),
    test: (ArrayView2<'_, f32>, &BspLabels),
    groups: &[&str],
    config: &ProbeConfig,
) -> Result<ProbeReport> {
    if train.1.catalog() != test.1.catalog() {
        return Err(BspError::CatalogMismatch {
            what: "probe test labels".into(),
        });
    }
    let (probes, losses) = train_probes(train.0, train.1, groups, config)?;
    score_probes(name, &probes, test.0, test.1, train.1.rows(), losses)
}
