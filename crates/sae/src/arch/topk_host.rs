//! The TopK and BatchTopK training step fused on the host (burn's `flex`
//! CPU backend), exploiting sparsity.
//!
//! [`super::topk::step`] writes the step as dense tensor algebra: five
//! `[B, d_sae]`-sized matrix products (encoder, decoder, `df = g W_dec^T`,
//! `dW_dec = f^T g`, `dW_enc = s^T dpre`). Only the encoder needs to be dense:
//! each row keeps `k` of `d_sae` features, so the decoder and every backward
//! product touch `k` decoder rows per sample. Here the encoder is one dense
//! matrix product, the selection produces a sparse representation (indices and
//! values per row), and the rest is `O(B k d_in)` work:
//!
//! * decode: `ŷ_b = b_dec (+ x_b W_skip^T) + sum_{j active in b} f_bj W_dec_j`;
//! * `dpre_bj = g_b . W_dec_j` only at active entries;
//! * `dW_dec_j = sum_{b: j active} f_bj g_b` and `dW_enc[:, j] = sum_b dpre_bj s_b`
//!   computed per feature from the transposed sparse structure (each feature
//!   owns its output row, so the features run in parallel without races);
//! * AuxK the same way over its `k_aux` dead latents per row.
//!
//! It serves every shape of dictionary: a transcoder's target `y` and skip
//! path, a crosscoder's selection by decoder weight (see [`StepModel`]).
//! The results (gradients, features, reconstruction, losses, the smallest kept
//! BatchTopK selection value) are those of [`super::topk::step`], to rounding, and
//! come back as burn tensors on the host device so the trainer is unchanged.
//! Every reduction runs in a fixed order, so a step is deterministic whatever
//! the number of threads.

use super::topk::Selection;
use super::{LossTensors, StepInputs, StepModel, StepOutput, norm_sum};
use crate::ops::{from_host, row_from_host, to_host};
use crate::sae::Params;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// Loss and gradients of one batch (input `x`, target `y`), as
/// [`super::topk::step`] defines them, for every shape of dictionary
/// ([`StepModel`]): the skip path's product and its gradient `g^T x` are the
/// two dense products besides the encoder.
pub fn step(
    model: &StepModel<'_>,
    x: Tensor<2>,
    y: Tensor<2>,
    inputs: &StepInputs,
    selection: Selection,
) -> StepOutput {
    let device = x.device();
    let p = model.params;
    let [batch, d_in] = x.dims();
    let d_sae = p.b_enc.dims()[1];
    let d_out = p.b_dec.dims()[1];
    // `ŷ` starts from `b_dec + x W_skip^T` (a dense product, burn's).
    let skip = p
        .w_skip
        .as_ref()
        .map(|w| to_host(x.clone().matmul(w.clone().transpose())));
    let skip_input = p.w_skip.as_ref().map(|_| x.clone());
    let y = to_host(y);
    let x = to_host(x);
    let b_dec = to_host(p.b_dec.clone());
    let w_dec = to_host(p.w_dec.clone());
    let b_enc = to_host(p.b_enc.clone());
    let s = if model.apply_b_dec_to_input {
        let mut s = x;
        s.par_chunks_mut(d_in).for_each(|row| {
            for (v, b) in row.iter_mut().zip(&b_dec) {
                *v -= b;
            }
        });
        s
    } else {
        x
    };

    // The one dense product. burn's matmul (the `gemm` crate, multi-threaded)
    // writes a fresh buffer, worked on in place through `TensorData` (a
    // `Vec<f32>` would cost a 64 MiB copy at d_sae 4096, batch 4096) and
    // handed back as the features tensor at the end. The bias is added here,
    // in the same order as `s W_enc + b_enc`.
    let mut pre_data = model
        .encode_product(from_host(s.clone(), batch, d_in, &device))
        .into_data()
        .convert::<f32>();
    let pre = pre_data
        .as_mut_slice::<f32>()
        .expect("data converted to f32 has an f32 view");
    pre.par_chunks_mut(d_sae).for_each(|row| {
        for (v, b) in row.iter_mut().zip(&b_enc) {
            *v += b;
        }
    });
    // The selection value: `pre`, or `relu(pre) s_j` for a dictionary that
    // selects by its decoder weights (the kept entries then take their
    // activations from `pre`).
    let by_norm: Option<Vec<f32>> = model.select_by_norm.then(|| {
        let weights = to_host(norm_sum(&model.block_norms()));
        let mut value = vec![0f32; pre.len()];
        value
            .par_chunks_mut(d_sae)
            .zip(pre.par_chunks(d_sae))
            .for_each(|(v, row)| {
                for ((v, &a), &w) in v.iter_mut().zip(row).zip(&weights) {
                    *v = a.max(0.0) * w;
                }
            });
        value
    });
    let value: &[f32] = by_norm.as_deref().unwrap_or(pre);

    let (mut main, min_kept) = match selection {
        Selection::PerRow(k) => (select_per_row(value, d_sae, k.min(d_sae)), None),
        Selection::Batch(k) => {
            let (sel, min) = select_batch(value, d_sae, k.saturating_mul(batch));
            (sel, Some(min))
        }
    };
    if by_norm.is_some() {
        main.take_values_from(pre, d_sae);
    }

    // Decode, reconstruction gradient g = 2 (ŷ - y) / B, and dpre at the
    // active entries, one row at a time. A Matryoshka dictionary's rows
    // decode level by level (a row's entries are in ascending feature
    // order, so each level's prefix is a prefix of the entries): `gl` holds
    // each row's `G_m = sum_{l >= m} dL_l/dŷ_l`, one `[d_out]` vector per
    // level, and feature `j` of level group `m` sees `G_m`. One level is
    // the plain step (`G_0 = g`).
    let one_level = [d_sae];
    let levels: &[usize] = match inputs.levels.as_deref() {
        Some(levels) if levels.len() > 1 => levels,
        _ => &one_level,
    };
    let n_levels = levels.len();
    let scale = 2.0 / batch as f32;
    let mut y_hat = vec![0f32; batch * d_out];
    let mut gl = vec![0f32; batch * n_levels * d_out];
    let mut main_dpre = vec![0f32; main.idx.len()];
    let sq_rows: Vec<Vec<f64>> = y_hat
        .par_chunks_mut(d_out)
        .zip(gl.par_chunks_mut(n_levels * d_out))
        .zip(split_rows_mut(&mut main_dpre, &main.offsets).into_par_iter())
        .enumerate()
        .map(|(b, ((yh, gb), dpre))| {
            let row = b * d_out..(b + 1) * d_out;
            yh.copy_from_slice(&b_dec);
            if let Some(skip) = &skip {
                for (v, &k) in yh.iter_mut().zip(&skip[row.clone()]) {
                    *v += k;
                }
            }
            let (idx, val) = main.row(b);
            let mut sq = vec![0f64; n_levels];
            let mut next = 0;
            for ((&end, g_level), sq) in levels.iter().zip(gb.chunks_exact_mut(d_out)).zip(&mut sq)
            {
                while next < idx.len() && (idx[next] as usize) < end {
                    kernels::axpy(yh, val[next], dec_row(&w_dec, idx[next], d_out));
                    next += 1;
                }
                for ((gv, &h), &yv) in g_level.iter_mut().zip(yh.iter()).zip(&y[row.clone()]) {
                    let e = h - yv;
                    *sq += (e as f64) * (e as f64);
                    *gv = e * scale;
                }
            }
            // Suffix sums: level m's vector becomes G_m.
            for m in (0..n_levels - 1).rev() {
                let (inner, outer) = gb.split_at_mut((m + 1) * d_out);
                for (a, &o) in inner[m * d_out..].iter_mut().zip(&outer[..d_out]) {
                    *a += o;
                }
            }
            let mut level = 0;
            for (d, &j) in dpre.iter_mut().zip(idx) {
                while j as usize >= levels[level] {
                    level += 1;
                }
                *d = kernels::dot(
                    &gb[level * d_out..(level + 1) * d_out],
                    dec_row(&w_dec, j, d_out),
                );
            }
            sq
        })
        .collect();
    let level_mse = |l: usize| sq_rows.iter().map(|sq| sq[l]).sum::<f64>() / batch as f64;
    let mse = level_mse(n_levels - 1);
    let inner_mse: f64 = (0..n_levels - 1).map(level_mse).sum();
    // `G_0`, the sum over levels of dL/dŷ: what b_dec and the skip path see.
    let g: Vec<f32> = if n_levels == 1 {
        std::mem::take(&mut gl)
    } else {
        gl.chunks_exact(n_levels * d_out)
            .flat_map(|r| r[..d_out].iter().copied())
            .collect()
    };
    let main_rows: &[f32] = if n_levels == 1 { &g } else { &gl };

    let aux = match (&inputs.dead_mask, inputs.n_dead > 0) {
        (Some(dead), true) => Some(auxk(
            value,
            pre,
            &y,
            &y_hat,
            &w_dec,
            &dead_latents(dead),
            inputs.k_aux.min(inputs.n_dead),
            inputs.auxk_alpha as f32,
            d_sae,
        )),
        _ => None,
    };

    // Per-feature gradients from the transposed sparse structure.
    let mut sources: Vec<Source> = vec![Source {
        sparse: &main,
        dpre: &main_dpre,
        rows: main_rows,
        levels,
    }];
    if let Some(a) = &aux {
        sources.push(Source {
            sparse: &a.sparse,
            dpre: &a.dpre,
            rows: &a.h,
            levels: &one_level,
        });
    }
    let cols = Transposed::new(&sources, d_sae);
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
            for e in cols.offsets[j]..cols.offsets[j + 1] {
                let (src, row) = (cols.source[e] as usize, cols.row[e] as usize);
                let source = &sources[src];
                let at = row * source.levels.len() + source.level_of(j);
                kernels::axpy(wd, cols.coef[e], &source.rows[at * d_out..(at + 1) * d_out]);
                kernels::axpy(we, cols.dpre[e], &s[row * d_in..(row + 1) * d_in]);
                sum += cols.dpre[e];
            }
            *bj = sum;
        });
    let dw_enc = transpose(&dw_enc_t, d_sae, d_in);

    let mut db_dec = vec![0f32; d_out];
    for gb in g.chunks_exact(d_out) {
        for (d, &v) in db_dec.iter_mut().zip(gb) {
            *d += v;
        }
    }
    if model.apply_b_dec_to_input {
        // s = x - b_dec: dL/db_dec gains -(sum_b dpre_b) W_enc^T.
        let w_enc = to_host(p.w_enc.clone());
        let through_input: Vec<f32> = w_enc
            .par_chunks(d_sae)
            .map(|row| kernels::dot(row, &db_enc))
            .collect();
        for (d, t) in db_dec.iter_mut().zip(through_input) {
            *d -= t;
        }
    }

    // dW_skip = g^T x, the second dense product.
    let dw_skip = skip_input.map(|x| {
        from_host(g.clone(), batch, d_out, &device)
            .transpose()
            .matmul(x)
    });

    // The features as a dense tensor, in the buffer that held `pre`.
    let kept = main.idx.len();
    pre.par_chunks_mut(d_sae).enumerate().for_each(|(b, row)| {
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
        features: Tensor::from_data(pre_data, &device),
        reconstruction: from_host(y_hat, batch, d_out, &device),
        loss: LossTensors {
            mse: one(mse),
            sparsity: one(kept as f64 / batch as f64),
            aux: one(inner_mse + aux.as_ref().map_or(0.0, |a| a.loss)),
            coefficient: 0.0,
        },
        min_kept_activation: min_kept.map(|m| one(m as f64)),
    }
}

/// Row `j` of a row-major `[_, width]` matrix.
#[inline]
fn dec_row(w: &[f32], j: u32, width: usize) -> &[f32] {
    let j = j as usize;
    &w[j * width..(j + 1) * width]
}

/// Active entries per row (compressed sparse rows).
struct SparseRows {
    /// `offsets[b]..offsets[b + 1]` are row `b`'s entries.
    offsets: Vec<usize>,
    /// Feature of each entry, ascending within a row.
    idx: Vec<u32>,
    /// Activation of each entry.
    val: Vec<f32>,
}

impl SparseRows {
    fn row(&self, b: usize) -> (&[u32], &[f32]) {
        let r = self.offsets[b]..self.offsets[b + 1];
        (&self.idx[r.clone()], &self.val[r])
    }

    /// Each entry's value read from `pre` (`[rows, width]`), for entries
    /// selected on another value.
    fn take_values_from(&mut self, pre: &[f32], width: usize) {
        let Self { offsets, idx, val } = self;
        split_rows_mut(val, offsets)
            .into_par_iter()
            .zip(pre.par_chunks(width))
            .enumerate()
            .for_each(|(b, (val, row))| {
                for (v, &j) in val.iter_mut().zip(&idx[offsets[b]..offsets[b + 1]]) {
                    *v = row[j as usize];
                }
            });
    }

    /// Compacts rows written into fixed slots of `width` with `lens[b]` used.
    fn from_slots(idx: Vec<u32>, val: Vec<f32>, lens: &[usize], width: usize) -> Self {
        let mut offsets = Vec::with_capacity(lens.len() + 1);
        offsets.push(0);
        let total: usize = lens.iter().sum();
        let (mut out_idx, mut out_val) = (Vec::with_capacity(total), Vec::with_capacity(total));
        for (b, &n) in lens.iter().enumerate() {
            out_idx.extend_from_slice(&idx[b * width..b * width + n]);
            out_val.extend_from_slice(&val[b * width..b * width + n]);
            offsets.push(out_idx.len());
        }
        Self {
            offsets,
            idx: out_idx,
            val: out_val,
        }
    }
}

/// Splits `data` into the disjoint row slices `offsets` delimits.
fn split_rows_mut<'a, T>(mut data: &'a mut [T], offsets: &[usize]) -> Vec<&'a mut [T]> {
    let mut rows = Vec::with_capacity(offsets.len().saturating_sub(1));
    for w in offsets.windows(2) {
        let (head, tail) = std::mem::take(&mut data).split_at_mut(w[1] - w[0]);
        rows.push(head);
        data = tail;
    }
    rows
}

/// A key whose unsigned order is `f32::total_cmp`'s order: negative values
/// have all their bits flipped, the others their sign bit set. Written
/// without a branch (pre-activations change sign in no predictable order).
#[inline(always)]
fn ordered_bits(v: f32) -> u32 {
    let b = v.to_bits();
    b ^ (((b as i32 >> 31) as u32) | 0x8000_0000)
}

/// Ranking key: larger value first, then lower index (the order of
/// [`crate::ops::row_topk_mask`]).
#[inline]
fn rank_key(v: f32, j: u32) -> u64 {
    ((ordered_bits(v) as u64) << 32) | (u32::MAX - j) as u64
}

#[inline]
fn key_index(key: u64) -> u32 {
    u32::MAX - key as u32
}

/// Writes into `slot` the indices (ascending) of the `k` best `candidates` of
/// `row` that are strictly positive, and returns how many there are.
fn top_positive(
    row: &[f32],
    candidates: impl Iterator<Item = u32>,
    k: usize,
    keys: &mut Vec<u64>,
    slot: &mut [u32],
) -> usize {
    keys.clear();
    keys.extend(candidates.map(|j| rank_key(row[j as usize], j)));
    best_positive(row, keys, k, slot)
}

/// [`top_positive`] over a whole row, without ranking every entry.
///
/// The row is cut into blocks of [`kernels::BLOCK`] entries and the blocks
/// into `k` groups. Each group's maximum is reached by one entry, so at least
/// `k` entries reach the smallest group maximum (the cut-off): nothing below
/// it can be among the `k` best, and only blocks whose maximum reaches it
/// are scanned. On a row of 4096 pre-activations and `k` = 32 about 3% of the
/// entries pass, instead of all of them going through `select_nth_unstable`.
/// Rows too short for `k` groups of two blocks rank every entry.
fn top_positive_row(
    row: &[f32],
    k: usize,
    keys: &mut Vec<u64>,
    block_max: &mut Vec<u32>,
    slot: &mut [u32],
) -> usize {
    let n_blocks = row.len().div_ceil(kernels::BLOCK);
    if k == 0 || 2 * k > n_blocks {
        return top_positive(row, 0..row.len() as u32, k, keys, slot);
    }
    kernels::block_max_keys(row, block_max);
    let mut cutoff = u32::MAX;
    for g in 0..k {
        let group = &block_max[g * n_blocks / k..(g + 1) * n_blocks / k];
        let max = group
            .iter()
            .copied()
            .max()
            .expect("2k <= n_blocks leaves every group a block");
        cutoff = cutoff.min(max);
    }
    keys.clear();
    for (b, _) in block_max.iter().enumerate().filter(|(_, m)| **m >= cutoff) {
        let start = b * kernels::BLOCK;
        let end = (start + kernels::BLOCK).min(row.len());
        for (j, &v) in (start..end).zip(&row[start..end]) {
            if ordered_bits(v) >= cutoff {
                keys.push(rank_key(v, j as u32));
            }
        }
    }
    best_positive(row, keys, k, slot)
}

/// The `k` best of the ranking `keys` of `row`'s entries, kept where
/// strictly positive: written ascending into `slot`, their number returned.
fn best_positive(row: &[f32], keys: &mut [u64], k: usize, slot: &mut [u32]) -> usize {
    if k == 0 || keys.is_empty() {
        return 0;
    }
    let k = k.min(keys.len());
    let n = keys.len();
    keys.select_nth_unstable(n - k);
    let mut len = 0;
    for &key in &keys[n - k..] {
        let j = key_index(key);
        if row[j as usize] > 0.0 {
            slot[len] = j;
            len += 1;
        }
    }
    slot[..len].sort_unstable();
    len
}

/// TopK: the `k` largest pre-activations of each row, kept where positive.
fn select_per_row(pre: &[f32], d_sae: usize, k: usize) -> SparseRows {
    select_among(pre, d_sae, k, None)
}

/// The `k` best of `candidates` (all features when `None`) in each row,
/// kept where positive; values are the pre-activations.
fn select_among(pre: &[f32], d_sae: usize, k: usize, candidates: Option<&[u32]>) -> SparseRows {
    let rows = pre.len() / d_sae.max(1);
    let width = k.max(1);
    let mut idx = vec![0u32; rows * width];
    let mut val = vec![0f32; rows * width];
    let mut lens = vec![0usize; rows];
    idx.par_chunks_mut(width)
        .zip(val.par_chunks_mut(width))
        .zip(lens.par_iter_mut())
        .zip(pre.par_chunks(d_sae))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(keys, block_max), (((slot, vals), len), row)| {
                *len = match candidates {
                    None => top_positive_row(row, k, keys, block_max, slot),
                    Some(c) => top_positive(row, c.iter().copied(), k, keys, slot),
                };
                for (v, &j) in vals.iter_mut().zip(&slot[..*len]) {
                    *v = row[j as usize];
                }
            },
        );
    SparseRows::from_slots(idx, val, &lens, width)
}

/// The bits of a strictly positive value, 0 for the rest (no positive `f32`
/// has the bits 0). Positive `f32`s order like their bit patterns.
#[inline(always)]
fn positive_key(v: f32) -> u32 {
    let bits = v.to_bits();
    // 1..=0x7f80_0000 are the positive values up to +inf (NaN excluded).
    let positive = bits.wrapping_sub(1) < 0x7f80_0000;
    bits & (positive as u32).wrapping_neg()
}

/// BatchTopK: the `total` largest strictly positive pre-activations of the
/// whole batch (ties to the lower flat index, as
/// [`crate::ops::batch_topk_mask`]), and the smallest kept value (`1e30`
/// when none is kept, the dense step's sentinel).
///
/// Linear time in two passes over the batch. A histogram of the high 16
/// bits of the positive values finds the bin holding the threshold (the
/// `total`-th largest value): everything above the bin is kept, everything
/// below dropped. One pass then collects each row's entries from that bin
/// up (about 1% of them, found block by block with [`kernels::block_max_keys`]);
/// ranking the bin's entries alone gives the exact threshold, and each row
/// keeps its entries above it and, in flat order, as many equal to it as
/// the budget leaves.
fn select_batch(pre: &[f32], d_sae: usize, total: usize) -> (SparseRows, f32) {
    let d_sae = d_sae.max(1);
    let rows = pre.len() / d_sae;
    if total == 0 {
        let empty = SparseRows {
            offsets: vec![0; rows + 1],
            idx: Vec::new(),
            val: Vec::new(),
        };
        return (empty, 1e30);
    }
    let high = high_bits_histogram(pre, d_sae);
    let n_positive: u64 = high.iter().sum();
    // `bin`: the histogram bin of the threshold; `above`: entries above it.
    let keep_all = total as u64 >= n_positive;
    let (bin, above) = if keep_all {
        (0, 0)
    } else {
        let mut above = 0u64;
        let mut bin = 0usize;
        for b in (0..high.len()).rev() {
            if above + high[b] >= total as u64 {
                bin = b;
                break;
            }
            above += high[b];
        }
        (bin as u32, above as usize)
    };
    // Positive keys from the threshold's bin up; `| 0x8000_0000` turns a
    // positive key into its `ordered_bits` form, which the block maxima use.
    let floor = (bin << 16).max(1);
    let candidates: Vec<Vec<(u32, u32)>> = pre
        .par_chunks(d_sae)
        .map_init(Vec::new, |block_max, row| {
            kernels::block_max_keys(row, block_max);
            let mut found = Vec::new();
            for (b, _) in block_max
                .iter()
                .enumerate()
                .filter(|(_, m)| **m >= floor | 0x8000_0000)
            {
                let start = b * kernels::BLOCK;
                let end = (start + kernels::BLOCK).min(row.len());
                for (j, &v) in (start..end).zip(&row[start..end]) {
                    let key = positive_key(v);
                    if key >= floor {
                        found.push((j as u32, key));
                    }
                }
            }
            found
        })
        .collect();
    // Keep keys above `threshold`, plus `ties` keys equal to it in flat
    // order; keeping every positive entry is threshold 0, no ties.
    let (threshold, ties) = if keep_all {
        (0u32, 0usize)
    } else {
        let mut in_bin: Vec<u32> = candidates
            .iter()
            .flatten()
            .map(|&(_, key)| key)
            .filter(|key| key >> 16 == bin)
            .collect();
        let need = total - above;
        let n = in_bin.len();
        let (_, &mut t, _) = in_bin.select_nth_unstable(n - need);
        let above_t = in_bin.iter().filter(|&&key| key > t).count();
        (t, need - above_t)
    };

    let mut ties_left = ties;
    let mut row_ties = Vec::with_capacity(rows);
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0usize);
    for found in &candidates {
        let (mut above, mut equal) = (0, 0);
        for &(_, key) in found {
            above += (key > threshold) as usize;
            equal += (key == threshold) as usize;
        }
        let t = equal.min(ties_left);
        ties_left -= t;
        row_ties.push(t);
        offsets.push(offsets[offsets.len() - 1] + above + t);
    }
    let nnz = offsets[rows];
    let mut idx = vec![0u32; nnz];
    let mut val = vec![0f32; nnz];
    let mins: Vec<f32> = split_rows_mut(&mut idx, &offsets)
        .into_par_iter()
        .zip(split_rows_mut(&mut val, &offsets).into_par_iter())
        .zip(pre.par_chunks(d_sae))
        .zip(candidates.par_iter().zip(row_ties.par_iter()))
        .map(|(((idx, val), row), (found, &ties))| {
            let (mut n, mut ties, mut min) = (0, ties, f32::INFINITY);
            for &(j, key) in found {
                let keep = key > threshold || (key == threshold && ties > 0);
                if keep {
                    ties -= (key == threshold) as usize;
                    idx[n] = j;
                    val[n] = row[j as usize];
                    min = min.min(val[n]);
                    n += 1;
                }
            }
            min
        })
        .collect();
    let min = mins.into_iter().fold(f32::INFINITY, f32::min);
    (
        SparseRows { offsets, idx, val },
        if min.is_finite() { min } else { 1e30 },
    )
}

/// Counts of the positive values of `pre` by the high 16 bits of their bit
/// pattern, over row blocks in parallel.
fn high_bits_histogram(pre: &[f32], d_sae: usize) -> Vec<u64> {
    const BINS: usize = 1 << 16;
    // Non-positive values go to one of 8 spare bins in turn rather than
    // through a branch (about half the pre-activations are negative, in no
    // predictable pattern) or into one bin (a chain of dependent increments).
    const SPARE: usize = 8;
    let partial: Vec<Vec<u32>> = pre
        .par_chunks(block_rows(pre.len(), d_sae) * d_sae)
        .map(|chunk| {
            let mut h = vec![0u32; BINS + SPARE];
            for (i, &v) in chunk.iter().enumerate() {
                let key = positive_key(v);
                let bin = if key != 0 {
                    (key >> 16) as usize
                } else {
                    BINS + (i % SPARE)
                };
                h[bin] += 1;
            }
            h
        })
        .collect();
    let mut total = vec![0u64; BINS];
    for h in &partial {
        for (t, &c) in total.iter_mut().zip(&h[..BINS]) {
            *t += c as u64;
        }
    }
    total
}

/// Rows per block when a `[_, width]` matrix is cut into a few blocks per
/// thread, for passes that build a buffer per block.
fn block_rows(len: usize, width: usize) -> usize {
    let rows = len / width.max(1);
    let blocks = (4 * rayon::current_num_threads()).clamp(1, rows.max(1));
    rows.div_ceil(blocks).max(1)
}

/// Indices of the latents a 0/1 `[1, d_sae]` mask marks dead.
fn dead_latents(mask: &Tensor<2>) -> Vec<u32> {
    to_host(mask.clone())
        .iter()
        .enumerate()
        .filter(|(_, v)| **v > 0.5)
        .map(|(j, _)| j as u32)
        .collect()
}

/// The AuxK term: its weighted loss, the active dead latents of each row,
/// `dL_aux/dpre` at them and `h = dL_aux/de_hat`.
struct AuxK {
    loss: f64,
    sparse: SparseRows,
    dpre: Vec<f32>,
    h: Vec<f32>,
}

/// AuxK (Gao et al.) as [`super::topk::step`] defines it: the residual
/// `e = y - ŷ` is reconstructed from the activations `a` of each row's
/// `k_aux` largest positive selection values (`value`) among dead latents,
/// `e_hat = a W_dec`, and
/// `L = alpha mean_b ||e_hat - e||^2 / mean_b ||e - mean(e)||^2`.
#[allow(clippy::too_many_arguments)]
fn auxk(
    value: &[f32],
    pre: &[f32],
    y: &[f32],
    y_hat: &[f32],
    w_dec: &[f32],
    dead: &[u32],
    k_aux: usize,
    alpha: f32,
    d_sae: usize,
) -> AuxK {
    let d = y.len() / (pre.len() / d_sae.max(1)).max(1);
    let batch = y.len() / d.max(1);
    let residual: Vec<f32> = y.par_iter().zip(y_hat).map(|(a, b)| a - b).collect();
    let mut mean = vec![0f32; d];
    for row in residual.chunks_exact(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    for m in mean.iter_mut() {
        *m /= batch as f32;
    }
    let var = residual
        .par_chunks(d)
        .map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(v, m)| ((v - m) as f64).powi(2))
                .sum::<f64>()
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum::<f64>()
        / batch as f64;
    let denom = (var as f32).max(1e-12);
    let mut sparse = select_among(value, d_sae, k_aux, Some(dead));
    sparse.take_values_from(pre, d_sae);
    let h_scale = 2.0 * alpha / batch as f32 / denom;
    let mut h = vec![0f32; batch * d];
    let mut dpre = vec![0f32; sparse.idx.len()];
    let sq_rows: Vec<f64> = h
        .par_chunks_mut(d)
        .zip(split_rows_mut(&mut dpre, &sparse.offsets).into_par_iter())
        .enumerate()
        .map(|(b, (hb, dp))| {
            let (idx, val) = sparse.row(b);
            for (&j, &a) in idx.iter().zip(val) {
                kernels::axpy(hb, a, dec_row(w_dec, j, d));
            }
            let mut sq = 0f64;
            for (hv, &r) in hb.iter_mut().zip(&residual[b * d..(b + 1) * d]) {
                let diff = *hv - r;
                sq += (diff as f64) * (diff as f64);
                *hv = diff * h_scale;
            }
            for (g, &j) in dp.iter_mut().zip(idx) {
                *g = kernels::dot(hb, dec_row(w_dec, j, d));
            }
            sq
        })
        .collect();
    let loss = alpha as f64 * sq_rows.iter().sum::<f64>() / batch as f64 / denom as f64;
    AuxK {
        loss,
        sparse,
        dpre,
        h,
    }
}

/// One set of sparse entries feeding the per-feature gradients: entry
/// `(b, j)` adds `val * rows[b]` to `dW_dec_j` and `dpre * s_b` to
/// `dW_enc[:, j]`.
struct Source<'a> {
    sparse: &'a SparseRows,
    dpre: &'a [f32],
    /// `g` (reconstruction) or `h` (AuxK), `[B, d_out]`; a Matryoshka
    /// reconstruction's `G_m` of every level, `[B, levels, d_out]`.
    rows: &'a [f32],
    /// The ascending level widths `rows` has a vector for (`[d_sae]`: one).
    levels: &'a [usize],
}

impl Source<'_> {
    /// The level group of feature `j`: its `rows` vector within a row.
    fn level_of(&self, j: usize) -> usize {
        if self.levels.len() == 1 {
            0
        } else {
            self.levels.partition_point(|&w| w <= j)
        }
    }
}

/// Every source's entries grouped by feature (counting sort; within a
/// feature, by source then row, so sums run in a fixed order).
struct Transposed {
    offsets: Vec<usize>,
    source: Vec<u8>,
    row: Vec<u32>,
    coef: Vec<f32>,
    dpre: Vec<f32>,
}

impl Transposed {
    fn new(sources: &[Source<'_>], d_sae: usize) -> Self {
        let mut offsets = vec![0usize; d_sae + 1];
        for s in sources {
            for &j in &s.sparse.idx {
                offsets[j as usize + 1] += 1;
            }
        }
        for j in 0..d_sae {
            offsets[j + 1] += offsets[j];
        }
        let nnz = offsets[d_sae];
        let mut cursor = offsets[..d_sae].to_vec();
        let mut t = Transposed {
            source: vec![0; nnz],
            row: vec![0; nnz],
            coef: vec![0.0; nnz],
            dpre: vec![0.0; nnz],
            offsets,
        };
        for (si, s) in sources.iter().enumerate() {
            for b in 0..s.sparse.offsets.len() - 1 {
                for e in s.sparse.offsets[b]..s.sparse.offsets[b + 1] {
                    let j = s.sparse.idx[e] as usize;
                    let at = cursor[j];
                    cursor[j] += 1;
                    t.source[at] = si as u8;
                    t.row[at] = b as u32;
                    t.coef[at] = s.sparse.val[e];
                    t.dpre[at] = s.dpre[e];
                }
            }
        }
        t
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
                let src = &m[r * cols + c0..r * cols + c0 + n];
                for (c, &v) in src.iter().enumerate() {
                    chunk[c * rows + r] = v;
                }
            }
        });
    out
}

/// Dot products, `y += a x` and block maxima on `f32` slices, compiled for AVX2 + FMA
/// and chosen at run time (the crate is built for baseline x86-64, whose
/// SSE2 code is half as wide and has no fused multiply-add).
mod kernels {
    const LANES: usize = 16;

    #[inline(always)]
    fn dot_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; LANES];
        let (ca, ra) = a.as_chunks::<LANES>();
        let (cb, rb) = b.as_chunks::<LANES>();
        for (x, y) in ca.iter().zip(cb) {
            for i in 0..LANES {
                acc[i] = if FMA {
                    x[i].mul_add(y[i], acc[i])
                } else {
                    acc[i] + x[i] * y[i]
                };
            }
        }
        let mut tail = 0f32;
        for (x, y) in ra.iter().zip(rb) {
            tail += x * y;
        }
        // Pairwise, so the lanes combine the same way on every path.
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for i in 0..width {
                acc[i] += acc[i + width];
            }
        }
        acc[0] + tail
    }

    #[inline(always)]
    fn axpy_body<const FMA: bool>(y: &mut [f32], a: f32, x: &[f32]) {
        let n = y.len().min(x.len());
        let (y, x) = (&mut y[..n], &x[..n]);
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = if FMA {
                a.mul_add(xi, *yi)
            } else {
                *yi + a * xi
            };
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        dot_body::<true>(a, b)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn axpy_avx2(y: &mut [f32], a: f32, x: &[f32]) {
        axpy_body::<true>(y, a, x)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn has_avx2_fma() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    /// Entries per block of [`block_max_keys`].
    pub const BLOCK: usize = 16;

    #[inline(always)]
    fn block_max_body(row: &[f32], out: &mut Vec<u32>) {
        let block_max = |b: &[f32]| b.iter().fold(0u32, |m, &v| m.max(super::ordered_bits(v)));
        out.clear();
        let (blocks, rest) = row.as_chunks::<BLOCK>();
        out.extend(blocks.iter().map(|b| block_max(b)));
        if !rest.is_empty() {
            out.push(block_max(rest));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn block_max_avx2(row: &[f32], out: &mut Vec<u32>) {
        block_max_body(row, out)
    }

    /// The largest [`super::ordered_bits`] key of each block of [`BLOCK`]
    /// entries of `row` (the last block may be shorter), into `out`.
    pub fn block_max_keys(row: &[f32], out: &mut Vec<u32>) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU was just checked to support AVX2 and FMA.
            return unsafe { block_max_avx2(row, out) };
        }
        block_max_body(row, out)
    }

    /// `sum_i a_i b_i` over the common length.
    #[inline]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU was just checked to support AVX2 and FMA.
            return unsafe { dot_avx2(a, b) };
        }
        dot_body::<false>(a, b)
    }

    /// `y += a x` over the common length.
    #[inline]
    pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU was just checked to support AVX2 and FMA.
            return unsafe { axpy_avx2(y, a, x) };
        }
        axpy_body::<false>(y, a, x)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
