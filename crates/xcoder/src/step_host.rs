//! The TopK/BatchTopK step of [`crate::step`] fused on the host (burn's
//! `flex` CPU backend), exploiting sparsity: the same loss, gradients,
//! features and by-products, to rounding.
//!
//! Written densely, a TopK step is five `[B, d_sae]`-sized matrix products.
//! Only the encoder needs to be dense: each row keeps `k` of `d_sae`
//! features, so the decoder and every backward product touch `k` decoder
//! rows per row. Here the encoder is one dense product (burn's, on the host
//! device), the selection yields each row's active features, and the rest is
//! `O(B k (d_in + d_out))` work:
//!
//! * `ŷ_b = b_dec (+ x_b W_skip^T) + sum_{j active in b} f_bj W_dec_j`, `g_b = 2 (ŷ_b - y_b) / B`;
//! * `dpre_bj = g_b . W_dec_j` at the active entries (and AuxK's `h_b . W_dec_j`);
//! * per feature `j` (in parallel, each feature owning its output rows):
//!   `dW_dec_j = sum_b f_bj g_b (+ a_bj h_b)`, `dW_enc[:, j] = sum_b dpre_bj x_b`,
//!   `db_enc_j = sum_b dpre_bj`, from the active entries grouped by feature;
//! * `dW_skip = g^T x` is a dense product (burn's).
//!
//! Every reduction runs in a fixed order, so the step is deterministic
//! whatever the number of threads.

use crate::step::StepModel;
use burn::tensor::{Device, Tensor, TensorData};
use kibitzer_sae::Params;
use kibitzer_sae::arch::{LossTensors, StepInputs, StepOutput};
use kibitzer_sae::ops::{from_host, row_from_host, to_host};
use rayon::prelude::*;

/// How the active set is chosen.
#[derive(Clone, Copy, Debug)]
pub enum Selection {
    /// The `k` largest selection values of each row.
    PerRow(usize),
    /// The `k * B` largest selection values of the batch.
    Batch(usize),
}

/// Active entries per row (compressed sparse rows), indices ascending.
struct SparseRows {
    offsets: Vec<usize>,
    idx: Vec<u32>,
    /// Feature activation `relu(pre)`.
    val: Vec<f32>,
}

impl SparseRows {
    fn row(&self, b: usize) -> (&[u32], &[f32]) {
        let r = self.offsets[b]..self.offsets[b + 1];
        (&self.idx[r.clone()], &self.val[r])
    }

    fn from_rows(rows: Vec<Vec<(u32, f32)>>) -> Self {
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        offsets.push(0);
        let total = rows.iter().map(Vec::len).sum();
        let (mut idx, mut val) = (Vec::with_capacity(total), Vec::with_capacity(total));
        for r in rows {
            for (j, v) in r {
                idx.push(j);
                val.push(v);
            }
            offsets.push(idx.len());
        }
        Self { offsets, idx, val }
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums, so the loop vectorises; combined in a fixed order.
    let mut acc = [0f32; 8];
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// The `k` best entries of `row` among `candidates` (by value, then lower
/// index, as kibitzer-sae's `row_topk_mask`) that have `positive`, ascending.
fn top_of_row(
    value: &[f32],
    pre: &[f32],
    k: usize,
    candidates: impl Iterator<Item = u32>,
) -> Vec<u32> {
    let mut order: Vec<u32> = candidates.collect();
    if k < order.len() {
        order.select_nth_unstable_by(k, |&a, &b| {
            value[b as usize]
                .total_cmp(&value[a as usize])
                .then(a.cmp(&b))
        });
        order.truncate(k);
    }
    order.retain(|&j| pre[j as usize] > 0.0);
    order.sort_unstable();
    order
}

/// BatchTopK: the `total` largest positive selection values of the batch
/// at positive pre-activations (ties to the lower flat index), and the smallest
/// kept selection value (`1e30` when none is kept).
fn select_batch(value: &[f32], pre: &[f32], d_sae: usize, total: usize) -> (Vec<Vec<u32>>, f32) {
    let rows = pre.len() / d_sae;
    let mut positive: Vec<f32> = value
        .par_iter()
        .zip(pre.par_iter())
        .filter(|(v, p)| **p > 0.0 && **v > 0.0)
        .map(|(v, _)| *v)
        .collect();
    let n = positive.len();
    let (threshold, mut ties) = if total == 0 {
        (f32::INFINITY, 0)
    } else if total >= n {
        (f32::NEG_INFINITY, 0)
    } else {
        let (_, &mut t, _) = positive.select_nth_unstable_by(n - total, |a, b| a.total_cmp(b));
        let above = positive.iter().filter(|&&v| v > t).count();
        (t, total - above)
    };
    let mut out = Vec::with_capacity(rows);
    let mut min = f32::INFINITY;
    for b in 0..rows {
        let r = b * d_sae..(b + 1) * d_sae;
        let mut kept = Vec::new();
        for (j, (&v, &p)) in value[r.clone()].iter().zip(&pre[r]).enumerate() {
            let take = p > 0.0 && v > 0.0 && (v > threshold || (v == threshold && ties > 0));
            if take {
                if v == threshold {
                    ties -= 1;
                }
                min = min.min(v);
                kept.push(j as u32);
            }
        }
        out.push(kept);
    }
    (out, if min.is_finite() { min } else { 1e30 })
}

/// Entries of every source grouped by feature (counting sort; within a
/// feature by source, then row, so sums run in a fixed order).
struct ByFeature {
    offsets: Vec<usize>,
    /// `(source, row, coefficient of the row of g/h, dpre)`.
    entries: Vec<(u8, u32, f32, f32)>,
}

impl ByFeature {
    fn new(sources: &[(&SparseRows, &[f32])], d_sae: usize) -> Self {
        let mut offsets = vec![0usize; d_sae + 1];
        for (s, _) in sources {
            for &j in &s.idx {
                offsets[j as usize + 1] += 1;
            }
        }
        for j in 0..d_sae {
            offsets[j + 1] += offsets[j];
        }
        let mut cursor = offsets[..d_sae].to_vec();
        let mut entries = vec![(0u8, 0u32, 0f32, 0f32); offsets[d_sae]];
        for (si, (s, dpre)) in sources.iter().enumerate() {
            for b in 0..s.offsets.len() - 1 {
                for e in s.offsets[b]..s.offsets[b + 1] {
                    let j = s.idx[e] as usize;
                    entries[cursor[j]] = (si as u8, b as u32, s.val[e], dpre[e]);
                    cursor[j] += 1;
                }
            }
        }
        Self { offsets, entries }
    }
}

/// Loss and gradients of one batch, as [`crate::step::step`] defines them
/// for TopK/BatchTopK, computed on the host.
pub fn step(
    model: &StepModel<'_>,
    x: Tensor<2>,
    y: Tensor<2>,
    inputs: &StepInputs,
    selection: Selection,
) -> StepOutput {
    let device: Device = x.device();
    let p = model.params;
    let [batch, d_in] = x.dims();
    let d_out = y.dims()[1];
    let d_sae = p.b_enc.dims()[1];

    // The dense products: the encoder, and the skip path when present.
    let mut pre = to_host(x.clone().matmul(p.w_enc.clone()));
    let skip = p
        .w_skip
        .as_ref()
        .map(|w| to_host(x.clone().matmul(w.clone().transpose())));
    let b_enc = to_host(p.b_enc.clone());
    pre.par_chunks_mut(d_sae).for_each(|row| {
        for (v, b) in row.iter_mut().zip(&b_enc) {
            *v += b;
        }
    });
    let x_host = to_host(x.clone());
    let y_host = to_host(y);
    let w_dec = to_host(p.w_dec.clone());
    let b_dec = to_host(p.b_dec.clone());
    let dec = |j: u32| &w_dec[j as usize * d_out..(j as usize + 1) * d_out];

    // Selection values: pre, or relu(pre) times the decoder norm sum.
    let value: Option<Vec<f32>> = model.select_by_norm.then(|| {
        let weights: Vec<f32> = (0..d_sae)
            .into_par_iter()
            .map(|j| {
                let row = dec(j as u32);
                let mut start = 0;
                model
                    .out_blocks
                    .iter()
                    .map(|&w| {
                        let n = row[start..start + w]
                            .iter()
                            .map(|v| v * v)
                            .sum::<f32>()
                            .sqrt();
                        start += w;
                        n
                    })
                    .sum()
            })
            .collect();
        let mut v = pre.clone();
        v.par_chunks_mut(d_sae).for_each(|row| {
            for (a, s) in row.iter_mut().zip(&weights) {
                *a = a.max(0.0) * s;
            }
        });
        v
    });
    let value = value.as_deref().unwrap_or(&pre);

    let (kept, min_kept) = match selection {
        Selection::PerRow(k) => (
            (0..batch)
                .into_par_iter()
                .map(|b| {
                    let r = b * d_sae..(b + 1) * d_sae;
                    top_of_row(&value[r.clone()], &pre[r], k, 0..d_sae as u32)
                })
                .collect(),
            None,
        ),
        Selection::Batch(k) => {
            let (kept, min) = select_batch(value, &pre, d_sae, k.saturating_mul(batch));
            (kept, Some(min))
        }
    };
    let main = SparseRows::from_rows(
        kept.into_iter()
            .enumerate()
            .map(|(b, js)| {
                js.into_iter()
                    .map(|j| (j, pre[b * d_sae + j as usize]))
                    .collect()
            })
            .collect(),
    );

    // Decode, reconstruction gradient and dpre at the active entries.
    let scale = 2.0 / batch as f32;
    let mut y_hat = vec![0f32; batch * d_out];
    let mut g = vec![0f32; batch * d_out];
    let rows: Vec<(f64, Vec<f32>)> = y_hat
        .par_chunks_mut(d_out)
        .zip(g.par_chunks_mut(d_out))
        .enumerate()
        .map(|(b, (yh, gb))| {
            yh.copy_from_slice(&b_dec);
            if let Some(s) = &skip {
                axpy(yh, 1.0, &s[b * d_out..(b + 1) * d_out]);
            }
            let (idx, val) = main.row(b);
            for (&j, &f) in idx.iter().zip(val) {
                axpy(yh, f, dec(j));
            }
            let mut sq = 0f64;
            for ((gv, &h), &t) in gb
                .iter_mut()
                .zip(yh.iter())
                .zip(&y_host[b * d_out..(b + 1) * d_out])
            {
                let e = h - t;
                sq += (e as f64) * (e as f64);
                *gv = e * scale;
            }
            (sq, idx.iter().map(|&j| dot(gb, dec(j))).collect())
        })
        .collect();
    let mse = rows.iter().map(|r| r.0).sum::<f64>() / batch as f64;
    let main_dpre: Vec<f32> = rows.into_iter().flat_map(|r| r.1).collect();

    // AuxK on the residual e = y - ŷ from the dead latents.
    let aux = match (&inputs.dead_mask, inputs.n_dead > 0) {
        (Some(dead), true) => {
            let dead: Vec<u32> = to_host(dead.clone())
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(|(j, _)| j as u32)
                .collect();
            let k_aux = inputs.k_aux.min(inputs.n_dead);
            let sparse = SparseRows::from_rows(
                (0..batch)
                    .into_par_iter()
                    .map(|b| {
                        let r = b * d_sae..(b + 1) * d_sae;
                        top_of_row(&value[r.clone()], &pre[r], k_aux, dead.iter().copied())
                            .into_iter()
                            .map(|j| (j, pre[b * d_sae + j as usize]))
                            .collect()
                    })
                    .collect(),
            );
            let e: Vec<f32> = y_host.iter().zip(&y_hat).map(|(t, h)| t - h).collect();
            let mut mean = vec![0f64; d_out];
            for row in e.chunks(d_out) {
                for (m, &v) in mean.iter_mut().zip(row) {
                    *m += v as f64 / batch as f64;
                }
            }
            let var: f64 = e
                .chunks(d_out)
                .map(|row| {
                    row.iter()
                        .zip(&mean)
                        .map(|(&v, m)| (v as f64 - m).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / batch as f64;
            let denom = var.max(1e-12);
            let alpha = inputs.auxk_alpha;
            let c = (2.0 * alpha / (batch as f64 * denom)) as f32;
            let mut h = vec![0f32; batch * d_out];
            let parts: Vec<(f64, Vec<f32>)> = h
                .par_chunks_mut(d_out)
                .enumerate()
                .map(|(b, hb)| {
                    let (idx, val) = sparse.row(b);
                    for (&j, &a) in idx.iter().zip(val) {
                        axpy(hb, a, dec(j));
                    }
                    let mut sq = 0f64;
                    for (hv, &ev) in hb.iter_mut().zip(&e[b * d_out..(b + 1) * d_out]) {
                        let diff = *hv - ev;
                        sq += (diff as f64).powi(2);
                        *hv = diff * c;
                    }
                    (sq, idx.iter().map(|&j| dot(hb, dec(j))).collect())
                })
                .collect();
            let loss = alpha * parts.iter().map(|p| p.0).sum::<f64>() / batch as f64 / denom;
            let dpre: Vec<f32> = parts.into_iter().flat_map(|p| p.1).collect();
            Some((loss, sparse, dpre, h))
        }
        _ => None,
    };

    // Per-feature gradients.
    let mut sources: Vec<(&SparseRows, &[f32])> = vec![(&main, &main_dpre)];
    let mut row_vectors: Vec<&[f32]> = vec![&g];
    if let Some((_, sparse, dpre, h)) = &aux {
        sources.push((sparse, dpre));
        row_vectors.push(h);
    }
    let grouped = ByFeature::new(&sources, d_sae);
    let mut dw_dec = vec![0f32; d_sae * d_out];
    let mut dw_enc_t = vec![0f32; d_sae * d_in];
    let mut db_enc = vec![0f32; d_sae];
    dw_dec
        .par_chunks_mut(d_out)
        .zip(dw_enc_t.par_chunks_mut(d_in))
        .zip(db_enc.par_iter_mut())
        .enumerate()
        .for_each(|(j, ((wd, we), bj))| {
            let mut sum = 0f32;
            for &(src, row, coef, dpre) in
                &grouped.entries[grouped.offsets[j]..grouped.offsets[j + 1]]
            {
                let row = row as usize;
                axpy(
                    wd,
                    coef,
                    &row_vectors[src as usize][row * d_out..(row + 1) * d_out],
                );
                axpy(we, dpre, &x_host[row * d_in..(row + 1) * d_in]);
                sum += dpre;
            }
            *bj = sum;
        });
    let dw_enc = transpose(&dw_enc_t, d_sae, d_in);
    let mut db_dec = vec![0f32; d_out];
    for gb in g.chunks_exact(d_out) {
        axpy(&mut db_dec, 1.0, gb);
    }
    let g_tensor = from_host(g, batch, d_out, &device);
    let dw_skip = p.w_skip.as_ref().map(|_| g_tensor.transpose().matmul(x));

    // The features as a dense tensor, in the buffer that held `pre`.
    let kept_count = main.idx.len();
    let mut features = pre;
    features
        .par_chunks_mut(d_sae)
        .enumerate()
        .for_each(|(b, row)| {
            row.fill(0.0);
            let (idx, val) = main.row(b);
            for (&j, &f) in idx.iter().zip(val) {
                row[j as usize] = f;
            }
        });
    let one = |v: f64| Tensor::<1>::from_data(TensorData::new(vec![v as f32], [1]), &device);
    StepOutput {
        grads: Params {
            w_enc: from_host(dw_enc, d_in, d_sae, &device),
            b_enc: row_from_host(db_enc, &device),
            w_dec: from_host(dw_dec, d_sae, d_out, &device),
            b_dec: row_from_host(db_dec, &device),
            threshold: None,
            b_mag: None,
            r_mag: None,
            w_skip: dw_skip,
        },
        features: from_host(features, batch, d_sae, &device),
        reconstruction: from_host(y_hat, batch, d_out, &device),
        loss: LossTensors {
            mse: one(mse),
            sparsity: one(kept_count as f64 / batch as f64),
            aux: one(aux.as_ref().map_or(0.0, |a| a.0)),
            coefficient: 0.0,
        },
        min_kept_activation: min_kept.map(|m| one(m as f64)),
    }
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major, in parallel over
/// blocks of output rows.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const BLOCK: usize = 16;
    let mut out = vec![0f32; rows * cols];
    out.par_chunks_mut(rows * BLOCK)
        .enumerate()
        .for_each(|(blk, chunk)| {
            let c0 = blk * BLOCK;
            let n = chunk.len() / rows.max(1);
            for r in 0..rows {
                for (c, &v) in m[r * cols + c0..r * cols + c0 + n].iter().enumerate() {
                    chunk[c * rows + r] = v;
                }
            }
        });
    out
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::step::step as dense_step;
    use kibitzer_sae::Architecture;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const B: usize = 40;
    const M: usize = 50;

    fn random(rng: &mut ChaCha8Rng, rows: usize, cols: usize, scale: f32) -> Tensor<2> {
        let v = (0..rows * cols)
            .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
            .collect();
        from_host(v, rows, cols, &Device::flex())
    }

    /// Values on a coarse grid, so that ties are common.
    fn coarse(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> Tensor<2> {
        let v = (0..rows * cols)
            .map(|_| rng.random_range(-3i32..4) as f32 * 0.5)
            .collect();
        from_host(v, rows, cols, &Device::flex())
    }

    fn params(seed: u64, d_in: usize, d_out: usize, skip: bool, tied: bool) -> Params {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Params {
            w_enc: if tied {
                coarse(&mut rng, d_in, M)
            } else {
                random(&mut rng, d_in, M, 0.6)
            },
            b_enc: if tied {
                coarse(&mut rng, 1, M)
            } else {
                random(&mut rng, 1, M, 0.2)
            },
            w_dec: random(&mut rng, M, d_out, 0.6),
            b_dec: random(&mut rng, 1, d_out, 0.3),
            threshold: None,
            b_mag: None,
            r_mag: None,
            w_skip: skip.then(|| random(&mut rng, d_out, d_in, 0.4)),
        }
    }

    fn inputs(n_dead: usize, k_aux: usize) -> StepInputs {
        let dead: Vec<f32> = (0..M)
            .map(|j| {
                if j % 3 == 0 && j / 3 < n_dead {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        StepInputs {
            sparsity_coefficient: 0.0,
            p: 1.0,
            dead_mask: (n_dead > 0).then(|| row_from_host(dead, &Device::flex())),
            n_dead,
            k_aux,
            auxk_alpha: 1.0 / 32.0,
            l0: Default::default(),
        }
    }

    fn close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * scale,
                "{what}[{i}]: fused {x} vs dense {y}"
            );
        }
    }

    #[test]
    fn fused_step_matches_the_dense_step() {
        let cases = [
            // (d_in, out blocks, skip, by norm, tied values)
            (12, vec![9], true, false, false),
            (12, vec![9], false, false, true),
            (10, vec![4, 6], false, true, false),
            (10, vec![4, 6], false, true, true),
        ];
        for (seed, (d_in, blocks, skip, by_norm, tied)) in cases.into_iter().enumerate() {
            let d_out: usize = blocks.iter().sum();
            let params = params(seed as u64, d_in, d_out, skip, tied);
            let mut rng = ChaCha8Rng::seed_from_u64(seed as u64 + 100);
            let x = if tied {
                coarse(&mut rng, B, d_in)
            } else {
                random(&mut rng, B, d_in, 1.5)
            };
            let y = if by_norm {
                x.clone()
            } else {
                random(&mut rng, B, d_out, 1.0)
            };
            for (arch, selection) in [
                (Architecture::TopK { k: 5 }, Selection::PerRow(5)),
                (Architecture::BatchTopK { k: 4 }, Selection::Batch(4)),
                (Architecture::TopK { k: M + 3 }, Selection::PerRow(M + 3)),
            ] {
                let model = StepModel {
                    params: &params,
                    architecture: &arch,
                    out_blocks: &blocks,
                    select_by_norm: by_norm,
                };
                for (n_dead, k_aux) in [(0, 4), (12, 5), (3, 9)] {
                    let inp = inputs(n_dead, k_aux);
                    let fused = step(&model, x.clone(), y.clone(), &inp, selection);
                    let dense = dense_step(&model, x.clone(), y.clone(), &inp);
                    let what = format!("case {seed} {arch:?} dead {n_dead}");
                    let (ff, df) = (
                        to_host(fused.features.clone()),
                        to_host(dense.features.clone()),
                    );
                    let support = |v: &[f32]| v.iter().map(|a| *a != 0.0).collect::<Vec<_>>();
                    assert_eq!(support(&ff), support(&df), "{what}: active sets");
                    close(&format!("{what} features"), &ff, &df);
                    close(
                        &format!("{what} reconstruction"),
                        &to_host(fused.reconstruction),
                        &to_host(dense.reconstruction),
                    );
                    for ((name, a), (_, b)) in
                        fused.grads.named().into_iter().zip(dense.grads.named())
                    {
                        close(&format!("{what} d{name}"), &to_host(a), &to_host(b));
                    }
                    let (fl, dl) = (fused.loss, dense.loss);
                    for (name, a, b) in [
                        ("mse", fl.mse, dl.mse),
                        ("sparsity", fl.sparsity, dl.sparsity),
                        ("aux", fl.aux, dl.aux),
                    ] {
                        let (a, b) = (kibitzer_sae::ops::scalar(a), kibitzer_sae::ops::scalar(b));
                        assert!(
                            (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
                            "{what} {name}: {a} vs {b}"
                        );
                    }
                    match (fused.min_kept_activation, dense.min_kept_activation) {
                        (Some(a), Some(b)) => {
                            let (a, b) =
                                (kibitzer_sae::ops::scalar(a), kibitzer_sae::ops::scalar(b));
                            assert!(
                                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                                "{what} min kept: {a} vs {b}"
                            );
                        }
                        (None, None) => {}
                        _ => panic!("{what}: min kept present in one step only"),
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// For any shape, selection and set of dead latents, the fused step
        /// computes what the dense one does.
        #[test]
        fn fused_equals_dense_for_random_shapes(
            seed in 0u64..10_000,
            d_in in 1usize..9,
            widths in proptest::collection::vec(1usize..6, 1..4),
            k in 1usize..12,
            batch_wide in proptest::bool::ANY,
            skip in proptest::bool::ANY,
            n_dead in 0usize..17,
        ) {
            let d_out: usize = widths.iter().sum();
            let by_norm = widths.len() > 1;
            let params = params(seed, d_in, d_out, skip && !by_norm, seed % 3 == 0);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfeed);
            let x = random(&mut rng, B, d_in, 1.5);
            let y = random(&mut rng, B, d_out, 1.0);
            let (arch, selection) = if batch_wide {
                (Architecture::BatchTopK { k }, Selection::Batch(k))
            } else {
                (Architecture::TopK { k }, Selection::PerRow(k))
            };
            let model = StepModel { params: &params, architecture: &arch, out_blocks: &widths, select_by_norm: by_norm };
            let inp = inputs(n_dead, 1 + (seed as usize % 5));
            let fused = step(&model, x.clone(), y.clone(), &inp, selection);
            let dense = dense_step(&model, x, y, &inp);
            let (ff, df) = (to_host(fused.features), to_host(dense.features));
            proptest::prop_assert_eq!(
                ff.iter().map(|v| *v != 0.0).collect::<Vec<_>>(),
                df.iter().map(|v| *v != 0.0).collect::<Vec<_>>()
            );
            for ((name, a), (_, b)) in fused.grads.named().into_iter().zip(dense.grads.named()) {
                close(name, &to_host(a), &to_host(b));
            }
        }
    }
}
