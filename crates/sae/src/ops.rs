//! Small tensor helpers shared by the architectures, the trainer and the metrics.

use crate::device::is_host;
use burn::tensor::{Device, IndexingUpdateOp, Tensor, TensorData};
use rayon::prelude::*;

/// Copies a rank-2 tensor to the host as row-major `f32`.
pub fn to_host(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converted to f32 reads back as f32")
}

/// A rank-2 tensor from row-major host data.
pub fn from_host(data: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    debug_assert_eq!(data.len(), rows * cols);
    Tensor::from_data(TensorData::new(data, [rows, cols]), device)
}

/// A row vector `[1, n]` from host data.
pub fn row_from_host(data: Vec<f32>, device: &Device) -> Tensor<2> {
    let n = data.len();
    from_host(data, 1, n, device)
}

/// Reads a scalar tensor (any rank, one element) back to the host.
pub fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

/// L2 norm of every row: `[r, c] -> [r, 1]`.
pub fn row_norms(t: Tensor<2>) -> Tensor<2> {
    t.square().sum_dim(1).sqrt()
}

/// The largest `k` for which burn 0.22's `topk` is used on a GPU backend.
/// Above it, cubecl's top-k kernel returns wrong values (found by the
/// parity tests on wgpu: for k = 128 or 256 it returns one value and fills
/// the rest with `f32::MIN`), so the device sorts instead: slower, still on
/// the device, and right.
pub const DEVICE_TOPK_MAX_K: usize = 64;

/// A 0/1 mask with exactly `k` ones per row, at the row's `k` largest values
/// (ties broken towards the lower index on the host path).
///
/// On the CPU the k-th value of each row is found with `select_nth_unstable`
/// in linear time, in parallel over rows; burn's generic `topk` sorts every row.
pub fn row_topk_mask(pre: Tensor<2>, k: usize) -> Tensor<2> {
    let [rows, cols] = pre.dims();
    let k = k.min(cols);
    let device = pre.device();
    if k == 0 {
        return Tensor::zeros([rows, cols], &device);
    }
    if is_host(&device) {
        let values = to_host(pre);
        let mut mask = vec![0f32; rows * cols];
        mask.par_chunks_mut(cols)
            .zip(values.par_chunks(cols))
            .for_each_init(Vec::new, |order: &mut Vec<u32>, (m, v)| {
                order.clear();
                order.extend(0..cols as u32);
                order.select_nth_unstable_by(k - 1, |&a, &b| {
                    v[b as usize].total_cmp(&v[a as usize]).then(a.cmp(&b))
                });
                for &i in &order[..k] {
                    m[i as usize] = 1.0;
                }
            });
        from_host(mask, rows, cols, &device)
    } else {
        let idx = if k <= DEVICE_TOPK_MAX_K {
            pre.topk_with_indices(k, 1).1
        } else {
            pre.sort_descending_with_indices(1).1.narrow(1, 0, k)
        };
        Tensor::zeros([rows, cols], &device).scatter(
            1,
            idx,
            Tensor::ones([rows, k], &device),
            IndexingUpdateOp::Assign,
        )
    }
}

/// A 0/1 mask of the `total` largest values of the whole tensor that are also
/// strictly positive (BatchTopK: k x batch activations shared across the batch).
pub fn batch_topk_mask(acts: Tensor<2>, total: usize) -> Tensor<2> {
    let [rows, cols] = acts.dims();
    let device = acts.device();
    let n = rows * cols;
    let total = total.min(n);
    if total == 0 {
        return Tensor::zeros([rows, cols], &device);
    }
    if is_host(&device) {
        let values = to_host(acts);
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.par_sort_unstable_by(|&a, &b| {
            values[b as usize]
                .total_cmp(&values[a as usize])
                .then(a.cmp(&b))
        });
        let mut mask = vec![0f32; n];
        for &i in &order[..total] {
            if values[i as usize] > 0.0 {
                mask[i as usize] = 1.0;
            }
        }
        from_host(mask, rows, cols, &device)
    } else {
        let flat: Tensor<1> = acts.clone().reshape([n]);
        let kth: Tensor<2> = if total <= DEVICE_TOPK_MAX_K {
            flat.topk(total, 0).min().reshape([1, 1])
        } else {
            flat.sort_descending(0)
                .slice([total - 1..total])
                .reshape([1, 1])
        };
        let keep = acts.clone().greater_equal(kth).float();
        keep * acts.greater_elem(0.0).float()
    }
}

/// The `q` quantile (`0 <= q <= 1`) of every column of the row-major
/// `[rows, cols]` matrix `x`, interpolated linearly between the two nearest
/// ranks (`torch.quantile`'s default), on the host. An empty matrix gives
/// zeros.
pub fn column_quantiles(x: &[f32], cols: usize, q: f64) -> Vec<f32> {
    let rows = if cols == 0 { 0 } else { x.len() / cols };
    if rows == 0 {
        return vec![0.0; cols];
    }
    let position = q.clamp(0.0, 1.0) * (rows - 1) as f64;
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    let frac = (position - lo as f64) as f32;
    let mut column = vec![0.0f32; rows];
    (0..cols)
        .map(|j| {
            for (r, v) in column.iter_mut().enumerate() {
                *v = x[r * cols + j];
            }
            column.sort_unstable_by(f32::total_cmp);
            column[lo] + (column[hi] - column[lo]) * frac
        })
        .collect()
}

/// The standard deviation (population) of every column of the row-major
/// `[rows, cols]` matrix `x`, on the host in f64. An empty matrix gives
/// zeros.
pub fn column_std(x: &[f32], cols: usize) -> Vec<f32> {
    let rows = if cols == 0 { 0 } else { x.len() / cols };
    if rows == 0 {
        return vec![0.0; cols];
    }
    let mut sum = vec![0f64; cols];
    let mut sq = vec![0f64; cols];
    for row in x.chunks(cols) {
        for ((s, q), &v) in sum.iter_mut().zip(&mut sq).zip(row) {
            *s += v as f64;
            *q += v as f64 * v as f64;
        }
    }
    sum.iter()
        .zip(&sq)
        .map(|(s, q)| {
            let mean = s / rows as f64;
            (q / rows as f64 - mean * mean).max(0.0).sqrt() as f32
        })
        .collect()
}

/// Geometric median of the rows of `x` (Weiszfeld's algorithm), computed on
/// the host in f64. Used to initialise `b_dec`, as in Anthropic's recipe and
/// dictionary_learning.
pub fn geometric_median(x: &[f32], d: usize, max_iter: usize, tol: f64) -> Vec<f32> {
    let n = x.len() / d;
    if n == 0 {
        return vec![0.0; d];
    }
    let mut guess: Vec<f64> = vec![0.0; d];
    for row in x.chunks(d) {
        for (g, &v) in guess.iter_mut().zip(row) {
            *g += v as f64 / n as f64;
        }
    }
    for _ in 0..max_iter {
        let (num, den) = x
            .par_chunks(d)
            .fold(
                || (vec![0f64; d], 0f64),
                |(mut num, mut den), row| {
                    let dist = row
                        .iter()
                        .zip(&guess)
                        .map(|(&a, &g)| (a as f64 - g).powi(2))
                        .sum::<f64>()
                        .sqrt()
                        .max(1e-12);
                    let w = 1.0 / dist;
                    for (acc, &a) in num.iter_mut().zip(row) {
                        *acc += w * a as f64;
                    }
                    den += w;
                    (num, den)
                },
            )
            .reduce(
                || (vec![0f64; d], 0f64),
                |(mut a, da), (b, db)| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    (a, da + db)
                },
            );
        let next: Vec<f64> = num.iter().map(|v| v / den).collect();
        let shift = next
            .iter()
            .zip(&guess)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        guess = next;
        if shift < tol {
            break;
        }
    }
    guess.into_iter().map(|v| v as f32).collect()
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    #[test]
    fn column_quantiles_interpolate_like_torch_and_std_is_the_population_one() {
        // Columns [0, 1, 2, 3, 4] and [40, 30, 20, 10, 0] (rows of 2).
        let x: Vec<f32> = (0..5)
            .flat_map(|i| [i as f32, 40.0 - 10.0 * i as f32])
            .collect();
        assert_eq!(column_quantiles(&x, 2, 0.5), vec![2.0, 20.0]);
        // torch.quantile([0, 1, 2, 3, 4], 0.9) = 3.6; [0, 10, ..., 40] -> 36.
        let q = column_quantiles(&x, 2, 0.9);
        assert!(
            (q[0] - 3.6).abs() < 1e-6 && (q[1] - 36.0).abs() < 1e-5,
            "{q:?}"
        );
        assert_eq!(column_quantiles(&x, 2, 0.0), vec![0.0, 0.0]);
        assert_eq!(column_quantiles(&x, 2, 1.0), vec![4.0, 40.0]);
        assert_eq!(column_quantiles(&[], 3, 0.5), vec![0.0; 3]);
        // Population std of [0..4] is sqrt(2); of [40, 30, .., 0] 10 sqrt(2).
        let sd = column_std(&x, 2);
        assert!((sd[0] - 2f32.sqrt()).abs() < 1e-6 && (sd[1] - 200f32.sqrt()).abs() < 1e-5);
        assert_eq!(column_std(&[], 2), vec![0.0; 2]);
    }

    fn dev() -> Device {
        Device::flex()
    }

    #[test]
    fn topk_mask_keeps_k_largest_per_row() {
        let x = from_host(vec![0.1, 3.0, -1.0, 2.0, 5.0, 4.0, 0.0, -2.0], 2, 4, &dev());
        assert_eq!(
            to_host(row_topk_mask(x, 2)),
            vec![0., 1., 0., 1., 1., 1., 0., 0.]
        );
    }

    #[test]
    fn batch_topk_mask_shares_budget_and_drops_nonpositive() {
        let x = from_host(vec![0.1, 3.0, 0.0, 2.0, 5.0, 4.0, 0.0, 0.0], 2, 4, &dev());
        assert_eq!(
            to_host(batch_topk_mask(x.clone(), 3)),
            vec![0., 0., 0., 0., 1., 1., 0., 0.]
                .iter()
                .zip([0., 1., 0., 0., 0., 0., 0., 0.])
                .map(|(a, b)| a + b)
                .collect::<Vec<f32>>()
        );
        // Asking for more than the positive entries keeps only positives.
        let m = to_host(batch_topk_mask(x, 7));
        assert_eq!(m.iter().sum::<f32>(), 5.0);
    }

    #[test]
    fn geometric_median_resists_outliers() {
        // Five points near the origin and one far outlier: the mean moves,
        // the geometric median stays near the cluster.
        let pts = vec![
            0.0, 0.0, 0.1, 0.0, 0.0, 0.1, -0.1, 0.0, 0.0, -0.1, 100.0, 100.0,
        ];
        let m = geometric_median(&pts, 2, 200, 1e-9);
        assert!(m[0].abs() < 0.2 && m[1].abs() < 0.2, "{m:?}");
    }
}
