//! Causal self-attention fused into one CPU kernel, forward and backward,
//! for burn-flex.
//!
//! Why: a GPT's attention as burn operations is a batched `q kᵀ`, a scale,
//! a causal `mask_fill`, a softmax and a batched `pattern v`, and autodiff
//! records each of them. On burn-flex the products run on every core but
//! the elementwise passes over the `[batch, heads, pos, pos]` scores (the
//! mask, libm's `exp`, the softmax's backward) run on one, and every pass
//! allocates a tensor of that size. Training reference 004's quiz GPT (261
//! tokens) on two cores spent more than half of each step there, with one
//! core idle. Here each (sequence, head) is one task on the rayon pool:
//! its scores stay in a `pos x pos` buffer in cache, only the lower
//! triangle is computed (row blocks of [`BLOCK`]), the exponential is a
//! vectorised polynomial, and the backward pass reads the saved pattern
//! instead of rebuilding it from four recorded operations.
//!
//! [`fused_causal_attention`] takes the fused path for `f32` tensors on the
//! flex backend, with or without autodiff (gradient checkpointing
//! included); on any other backend it hands its inputs back and the caller
//! runs burn's operations, so GPU runs are unchanged.

use burn::tensor::Tensor;

/// Rows (and columns) of the blocks the causal triangle is cut into: each
/// block of rows multiplies only the keys up to its last row.
const BLOCK: usize = 64;

/// Causal attention of `q`, `k`, `v`, each `[batch, pos, heads, d_head]`:
/// `z[b, i, h] = Σ_{j ≤ i} softmax_j(q[b, i, h] · k[b, j, h] / attn_scale) v[b, j, h]`,
/// `[batch, pos, heads, d_head]`, differentiable in all three inputs.
///
/// `Err` gives the inputs back, untouched, where there is no fused kernel:
/// another backend, another float type, or inputs whose shapes differ.
// The error is the caller's own tensors, handed back unmoved; boxing them
// would allocate on every call on the backends that take that path.
#[allow(clippy::result_large_err)]
pub fn fused_causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    attn_scale: f32,
) -> Result<Tensor<4>, [Tensor<4>; 3]> {
    #[cfg(feature = "flex")]
    {
        flex::attention(q, k, v, attn_scale)
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = attn_scale;
        Err([q, k, v])
    }
}

/// The same attention as burn's operations: [`attention_scores`], softmax
/// and [`attend`], all recorded by autodiff. What a block runs, with hooks
/// between the steps, when a hook wants the scores or the pattern; here as
/// the reference the tests and benches hold the fused kernel to, on any
/// backend.
pub fn unfused_causal_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    attn_scale: f32,
) -> Tensor<4> {
    let scores = attention_scores(q, k, attn_scale as f64, true);
    attend(burn::tensor::activation::softmax(scores, 3), v)
}

/// The scores `q kᵀ / attn_scale`, `[batch, heads, query, key]`, from `q`
/// and `k` `[batch, pos, heads, d_head]`; with `causal`, `-inf` where the
/// key comes after the query.
pub(crate) fn attention_scores(
    q: Tensor<4>,
    k: Tensor<4>,
    attn_scale: f64,
    causal: bool,
) -> Tensor<4> {
    use burn::tensor::Bool;
    let [b, p, h, _] = q.dims();
    let scores = q
        .swap_dims(1, 2)
        .matmul(k.swap_dims(1, 2).swap_dims(2, 3))
        .div_scalar(attn_scale);
    if !causal {
        return scores;
    }
    let mask = Tensor::<2, Bool>::tril_mask([p, p], 0, &scores.device())
        .reshape([1, 1, p, p])
        .expand([b, h, p, p]);
    scores.mask_fill(mask, f32::NEG_INFINITY)
}

/// The heads' outputs `pattern v`, `[batch, pos, heads, d_head]`, from the
/// pattern `[batch, heads, query, key]` and `v` `[batch, pos, heads, d_head]`.
pub(crate) fn attend(pattern: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    pattern.matmul(v.swap_dims(1, 2)).swap_dims(1, 2)
}

/// The shape every input and the output share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dims {
    batch: usize,
    pos: usize,
    heads: usize,
    d_head: usize,
}

impl Dims {
    /// The stride between positions in `[batch, pos, heads, d_head]`.
    fn d(self) -> usize {
        self.heads * self.d_head
    }

    fn elements(self) -> usize {
        self.batch * self.pos * self.d()
    }

    /// (sequence, head) tasks.
    fn tasks(self) -> usize {
        self.batch * self.heads
    }

    /// Where task `t`'s first row starts in a `[batch, pos, heads, d_head]` buffer.
    fn base(self, t: usize) -> usize {
        let (b, h) = (t / self.heads, t % self.heads);
        b * self.pos * self.d() + h * self.d_head
    }

    /// The row blocks `[r0, r1)` of the causal triangle.
    fn blocks(self) -> impl Iterator<Item = (usize, usize)> {
        let pos = self.pos;
        (0..pos)
            .step_by(BLOCK)
            .map(move |r0| (r0, (r0 + BLOCK).min(pos)))
    }
}

/// A pointer handed to the rayon tasks, each of which writes its own rows.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: tasks write disjoint elements (their own head's columns of their
// own sequence), and the buffer outlives the parallel loop.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// `dst[m x n] = lhs[m x k] · rhs[k x n]` on one thread, each matrix given
/// by its first element and its (row, column) strides.
///
/// # Safety
/// Every element the strides address must lie inside its buffer, and no
/// other thread may touch `dst`'s elements during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `dst[r0..r1, 0..r1] = a[r0..r1] · b[0..r1]ᵀ` for one task: `a` and `b`
/// are `[batch, pos, heads, d_head]` buffers read at the task's `base`,
/// `dst` a `pos x pos` buffer. The scores `q kᵀ`, and `dz vᵀ`.
///
/// # Safety
/// `a` and `b` hold `dims.elements()` values, `base` is a task's.
unsafe fn rows_times_rows_t(
    dims: Dims,
    base: usize,
    (r0, r1): (usize, usize),
    dst: &mut [f32],
    a: &[f32],
    b: &[f32],
) {
    let (p, d) = (dims.pos, dims.d());
    // SAFETY: rows r0..r1 of a, rows 0..r1 of b (read as bᵀ through its
    // strides), the first r1 columns of dst's rows r0..r1.
    unsafe {
        product(
            (r1 - r0, r1, dims.d_head),
            dst[r0 * p..].as_mut_ptr(),
            p,
            a[base + r0 * d..].as_ptr(),
            (d, 1),
            b[base..].as_ptr(),
            (1, d),
        );
    }
}

/// Which way [`block_times_rows`] reads its `pos x pos` matrix.
#[derive(Clone, Copy)]
enum Read {
    /// Rows `r0..r1` (queries) over keys `0..r1`: `pattern v`, `d score k`.
    Rows,
    /// Columns `r0..r1` (keys) over queries `r0..pos`, transposed: only
    /// queries from `r0` on attend to those keys. `d scoreᵀ q`, `patternᵀ dz`.
    Columns,
}

/// Rows `r0..r1` of the task's `dst` = `m[r0..r1, 0..r1] · b[0..r1]`
/// ([`Read::Rows`]) or `m[r0..pos, r0..r1]ᵀ · b[r0..pos]`
/// ([`Read::Columns`]): `m` a `pos x pos` buffer, `b` and `dst` `[batch,
/// pos, heads, d_head]` at the task's `base`.
///
/// # Safety
/// `b` and `dst` hold `dims.elements()` values, `base` is a task's, and no
/// other thread writes the task's rows of `dst`.
unsafe fn block_times_rows(
    dims: Dims,
    base: usize,
    (r0, r1): (usize, usize),
    read: Read,
    dst: SharedMut,
    m: &[f32],
    b: &[f32],
) {
    let (p, d) = (dims.pos, dims.d());
    let (inner, m_at, m_strides, b_at) = match read {
        Read::Rows => (r1, r0 * p, (p, 1), base),
        Read::Columns => (p - r0, r0 * p + r0, (1, p), base + r0 * d),
    };
    // SAFETY: the caller's contract; m is read inside its pos x pos (rows
    // r0..r1 and the first r1 columns, or rows r0..pos of columns r0..r1),
    // b's rows 0..r1 or r0..pos of this task's head.
    unsafe {
        product(
            (r1 - r0, dims.d_head, inner),
            dst.0.add(base + r0 * d),
            d,
            m[m_at..].as_ptr(),
            m_strides,
            b[b_at..].as_ptr(),
            (d, 1),
        );
    }
}

/// The forward pass of task `t`: writes its pattern into `pattern` (`pos x
/// pos`, row-major; the lower triangle, and zeros above the diagonal inside
/// each diagonal block) and its output rows into `z`.
///
/// # Safety
/// `q`, `k`, `v` and `z` hold `dims.elements()` values; no other thread
/// writes task `t`'s elements of `z`.
unsafe fn forward_task(
    t: usize,
    dims: Dims,
    scale: f32,
    (q, k, v): (&[f32], &[f32], &[f32]),
    pattern: &mut [f32],
    z: SharedMut,
) {
    let (p, base) = (dims.pos, dims.base(t));
    for (r0, r1) in dims.blocks() {
        // SAFETY (both products): the caller's contract.
        unsafe { rows_times_rows_t(dims, base, (r0, r1), pattern, q, k) };
        for i in r0..r1 {
            let row = &mut pattern[i * p..i * p + r1];
            softmax_row(&mut row[..=i], scale);
            row[i + 1..].fill(0.0);
        }
        unsafe { block_times_rows(dims, base, (r0, r1), Read::Rows, z, pattern, v) };
    }
}

/// The backward pass of task `t` from its saved `pattern` and the output's
/// gradient `dz`: writes its rows of `dq`, `dk` and `dv`. `ds` is a `pos x
/// pos` scratch buffer.
///
/// # Safety
/// Every tensor holds `dims.elements()` values; no other thread writes task
/// `t`'s elements of `dq`, `dk`, `dv`.
#[allow(clippy::too_many_arguments)]
unsafe fn backward_task(
    t: usize,
    dims: Dims,
    scale: f32,
    (q, k, v): (&[f32], &[f32], &[f32]),
    pattern: &[f32],
    dz: &[f32],
    ds: &mut [f32],
    (dq, dk, dv): (SharedMut, SharedMut, SharedMut),
) {
    let (p, base) = (dims.pos, dims.base(t));
    // SAFETY (every product): the caller's contract.
    for (r0, r1) in dims.blocks() {
        // d pattern = dz vᵀ.
        unsafe { rows_times_rows_t(dims, base, (r0, r1), ds, dz, v) };
        // Softmax's backward: d score = pattern (d pattern - Σ pattern d pattern),
        // times the scale the scores were divided by.
        for i in r0..r1 {
            let prow = &pattern[i * p..=i * p + i];
            let drow = &mut ds[i * p..i * p + r1];
            softmax_backward_row(prow, &mut drow[..=i], scale);
            drow[i + 1..].fill(0.0);
        }
        // dq = d score k.
        unsafe { block_times_rows(dims, base, (r0, r1), Read::Rows, dq, ds, k) };
    }
    // dk = d scoreᵀ q and dv = patternᵀ dz, by blocks of keys.
    for block in dims.blocks() {
        unsafe { block_times_rows(dims, base, block, Read::Columns, dk, ds, q) };
        unsafe { block_times_rows(dims, base, block, Read::Columns, dv, pattern, dz) };
    }
}

/// The forward pass over every task. With `keep_pattern`, the pattern of
/// every task too (`[batch, heads, pos, pos]`, for the backward pass).
fn forward(
    dims: Dims,
    scale: f32,
    qkv: (&[f32], &[f32], &[f32]),
    keep_pattern: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    use rayon::prelude::*;
    let mut z = vec![0.0f32; dims.elements()];
    let z_ptr = SharedMut(z.as_mut_ptr());
    let pp = dims.pos * dims.pos;
    let pattern = if keep_pattern {
        let mut pattern = vec![0.0f32; dims.tasks() * pp];
        pattern
            .par_chunks_mut(pp.max(1))
            .enumerate()
            .with_max_len(1)
            // SAFETY: each task writes only its own rows of z.
            .for_each(|(t, own)| unsafe { forward_task(t, dims, scale, qkv, own, z_ptr) });
        Some(pattern)
    } else {
        (0..dims.tasks())
            .into_par_iter()
            .with_max_len(1)
            .for_each_init(
                || vec![0.0f32; pp],
                // SAFETY: as above.
                |scratch, t| unsafe { forward_task(t, dims, scale, qkv, scratch, z_ptr) },
            );
        None
    };
    (z, pattern)
}

/// The backward pass over every task: `(dq, dk, dv)`.
fn backward(
    dims: Dims,
    scale: f32,
    qkv: (&[f32], &[f32], &[f32]),
    pattern: &[f32],
    dz: &[f32],
) -> [Vec<f32>; 3] {
    use rayon::prelude::*;
    let n = dims.elements();
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    let grads = (
        SharedMut(dq.as_mut_ptr()),
        SharedMut(dk.as_mut_ptr()),
        SharedMut(dv.as_mut_ptr()),
    );
    let pp = dims.pos * dims.pos;
    (0..dims.tasks())
        .into_par_iter()
        .with_max_len(1)
        .for_each_init(
            || vec![0.0f32; pp],
            // SAFETY: each task writes only its own rows of dq, dk, dv.
            |ds, t| unsafe {
                backward_task(
                    t,
                    dims,
                    scale,
                    qkv,
                    &pattern[t * pp..(t + 1) * pp],
                    dz,
                    ds,
                    grads,
                )
            },
        );
    [dq, dk, dv]
}

/// `row = softmax(row * scale)` in place.
fn softmax_row(row: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { softmax_row_avx2(row, scale) };
            return;
        }
    }
    softmax_row_with(row, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_row_avx2(row: &mut [f32], scale: f32) {
    softmax_row_with(row, scale);
}

#[inline(always)]
fn softmax_row_with(row: &mut [f32], scale: f32) {
    // Eight running maxima and sums, so the reductions vectorise.
    let mut max8 = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (m, x) in max8.iter_mut().zip(chunk.iter_mut()) {
            *x *= scale;
            *m = m.max(*x);
        }
    }
    let mut max = max8.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for x in chunks.into_remainder() {
        *x *= scale;
        max = max.max(*x);
    }
    let mut sum8 = [0.0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (s, x) in sum8.iter_mut().zip(chunk.iter_mut()) {
            *x = exp_f32(*x - max);
            *s += *x;
        }
    }
    let mut sum: f32 = sum8.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_f32(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// `d = pattern (d - Σ pattern d) * scale` in place: the gradient of the
/// scaled scores from the pattern's.
fn softmax_backward_row(pattern: &[f32], d: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { softmax_backward_row_avx2(pattern, d, scale) };
            return;
        }
    }
    softmax_backward_row_with(pattern, d, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_backward_row_avx2(pattern: &[f32], d: &mut [f32], scale: f32) {
    softmax_backward_row_with(pattern, d, scale);
}

#[inline(always)]
fn softmax_backward_row_with(pattern: &[f32], d: &mut [f32], scale: f32) {
    let mut dot8 = [0.0f32; 8];
    let (pc, dc) = (pattern.chunks_exact(8), d.chunks_exact(8));
    let (p_rest, d_rest) = (pc.remainder(), dc.remainder());
    for (pc, dc) in pc.zip(dc) {
        for ((s, &p), &g) in dot8.iter_mut().zip(pc).zip(dc) {
            *s += p * g;
        }
    }
    let mut dot: f32 = dot8.iter().sum();
    for (&p, &g) in p_rest.iter().zip(d_rest) {
        dot += p * g;
    }
    for (g, &p) in d.iter_mut().zip(pattern) {
        *g = p * (*g - dot) * scale;
    }
}

/// `exp(x)` for `x ≤ 0` (a score minus its row's maximum), branch-free so
/// loops over it vectorise: `2^n · e^r` with `n = round(x / ln 2)`, `r`
/// reduced in two parts (Cody-Waite) and `e^r` by its degree-6 Taylor
/// polynomial on `|r| ≤ ln 2 / 2`; within 2 ulp of `exp` (checked in the
/// tests). Below -87.3 (where `2^n` leaves the normal range) it is 0.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 · 2^23: adding it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let underflow = x < -87.3;
    let x = x.max(-87.3);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut poly = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        poly = poly * r + c;
    }
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if underflow { 0.0 } else { poly * two_n }
}

#[cfg(feature = "flex")]
mod flex {
    use super::{Dims, Tensor, backward, forward};
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::{
        BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
    };
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{
        Autodiff, BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind, Flex,
        GradientCheckpointingStrategy,
    };
    use burn::tensor::{DType, TensorData};
    use std::sync::Arc;

    type TrackedTensor = FloatTensor<Autodiff<Flex>>;

    /// One input, as the fused kernel can take it.
    enum Input {
        /// A flex `f32` tensor outside autodiff.
        Plain(FlexTensor),
        /// A flex `f32` tensor under autodiff, with its checkpointing strategy.
        Tracked(TrackedTensor, GradientCheckpointingStrategy),
    }

    impl Input {
        #[allow(clippy::result_large_err)] // the tensor handed back, as above
        fn of(t: Tensor<4>) -> Result<Input, Tensor<4>> {
            match t.into_dispatch() {
                DispatchTensor {
                    kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
                    autodiff: DispatchAutodiffContext::Disabled,
                } if t.dtype() == DType::F32 => Ok(Input::Plain(t)),
                DispatchTensor {
                    kind: DispatchTensorKind::Autodiff(inner),
                    autodiff: DispatchAutodiffContext::Enabled(strategy),
                } => match *inner {
                    DispatchTensorKind::Flex(BackendTensor::Autodiff(t))
                        if t.primitive().dtype() == DType::F32 =>
                    {
                        Ok(Input::Tracked(t, strategy))
                    }
                    inner => Err(Tensor::from_dispatch(DispatchTensor {
                        kind: DispatchTensorKind::Autodiff(Box::new(inner)),
                        autodiff: DispatchAutodiffContext::Enabled(strategy),
                    })),
                },
                other => Err(Tensor::from_dispatch(other)),
            }
        }

        fn back(self) -> Tensor<4> {
            match self {
                Input::Plain(t) => plain(t),
                Input::Tracked(t, strategy) => tracked(t, strategy),
            }
        }

        fn primitive(&self) -> &FlexTensor {
            match self {
                Input::Plain(t) => t,
                Input::Tracked(t, _) => t.primitive(),
            }
        }
    }

    fn plain<const D: usize>(t: FlexTensor) -> Tensor<D> {
        Tensor::from_dispatch(DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
            autodiff: DispatchAutodiffContext::Disabled,
        })
    }

    fn tracked<const D: usize>(
        t: TrackedTensor,
        strategy: GradientCheckpointingStrategy,
    ) -> Tensor<D> {
        Tensor::from_dispatch(DispatchTensor {
            kind: DispatchTensorKind::Autodiff(Box::new(DispatchTensorKind::Flex(
                BackendTensor::Autodiff(t),
            ))),
            autodiff: DispatchAutodiffContext::Enabled(strategy),
        })
    }

    fn dims_of(t: &FlexTensor) -> Option<Dims> {
        let shape = t.layout().shape();
        (shape.num_dims() == 4).then(|| Dims {
            batch: shape[0],
            pos: shape[1],
            heads: shape[2],
            d_head: shape[3],
        })
    }

    fn values(t: &FlexTensor) -> FlexTensor {
        t.to_contiguous()
    }

    fn tensor(data: Vec<f32>, dims: Dims) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(
            data,
            [dims.batch, dims.pos, dims.heads, dims.d_head],
        ))
    }

    #[allow(clippy::result_large_err)] // the inputs handed back, as above
    pub(super) fn attention(
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        attn_scale: f32,
    ) -> Result<Tensor<4>, [Tensor<4>; 3]> {
        let inputs = [Input::of(q), Input::of(k), Input::of(v)];
        let [q, k, v] = match inputs {
            [Ok(q), Ok(k), Ok(v)] => [q, k, v],
            [q, k, v] => {
                let back = |i: Result<Input, Tensor<4>>| i.map_or_else(|t| t, Input::back);
                return Err([back(q), back(k), back(v)]);
            }
        };
        // The shape all three share, if they do.
        let dims = dims_of(q.primitive())
            .filter(|&d| dims_of(k.primitive()) == Some(d) && dims_of(v.primitive()) == Some(d));
        let scale = 1.0 / attn_scale;
        match (dims, q, k, v) {
            (Some(dims), Input::Plain(q), Input::Plain(k), Input::Plain(v)) => {
                let (q, k, v) = (values(&q), values(&k), values(&v));
                let qkv = (q.storage(), k.storage(), v.storage());
                let (z, _) = forward(dims, scale, qkv, false);
                Ok(plain(tensor(z, dims)))
            }
            (Some(dims), Input::Tracked(q, s), Input::Tracked(k, sk), Input::Tracked(v, sv))
                if s == sk && s == sv =>
            {
                let z = match s {
                    GradientCheckpointingStrategy::Disabled => {
                        tracked_forward::<NoCheckpointing>(q, k, v, dims, scale)
                    }
                    GradientCheckpointingStrategy::Balanced => {
                        tracked_forward::<BalancedCheckpointing>(q, k, v, dims, scale)
                    }
                };
                Ok(tracked(z, s))
            }
            (_, q, k, v) => Err([q.back(), k.back(), v.back()]),
        }
    }

    /// What the backward pass reads: the inputs, contiguous, and the pattern.
    #[derive(Clone)]
    struct Saved {
        dims: Dims,
        scale: f32,
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        pattern: Arc<Vec<f32>>,
    }

    impl std::fmt::Debug for Saved {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Saved")
                .field("dims", &self.dims)
                .field("scale", &self.scale)
                .finish_non_exhaustive()
        }
    }

    #[derive(Debug)]
    struct FusedCausalAttention;

    impl Backward<Flex, 3> for FusedCausalAttention {
        type State = Saved;

        fn backward(
            self,
            ops: Ops<Self::State, 3>,
            grads: &mut Gradients,
            _checkpointer: &mut Checkpointer,
        ) {
            let saved = ops.state;
            let dz = values(&grads.consume::<Flex>(&ops.node));
            let qkv = (saved.q.storage(), saved.k.storage(), saved.v.storage());
            let d_inputs = backward(saved.dims, saved.scale, qkv, &saved.pattern, dz.storage());
            for (parent, grad) in ops.parents.into_iter().zip(d_inputs) {
                if let Some(node) = parent {
                    grads.register::<Flex>(node.id, tensor(grad, saved.dims));
                }
            }
        }
    }

    fn tracked_forward<C: CheckpointStrategy>(
        q: TrackedTensor,
        k: TrackedTensor,
        v: TrackedTensor,
        dims: Dims,
        scale: f32,
    ) -> TrackedTensor {
        let (q, q_node) = q.into_parts();
        let (k, k_node) = k.into_parts();
        let (v, v_node) = v.into_parts();
        let (q, k, v) = (values(&q), values(&k), values(&v));
        let qkv = (q.storage(), k.storage(), v.storage());
        match FusedCausalAttention
            .prepare::<C>([q_node, k_node, v_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (z, pattern) = forward(dims, scale, qkv, true);
                let pattern = Arc::new(pattern.expect("asked for the pattern"));
                let saved = Saved {
                    dims,
                    scale,
                    q: q.clone(),
                    k: k.clone(),
                    v: v.clone(),
                    pattern,
                };
                prep.finish(saved, tensor(z, dims))
            }
            OpsKind::UnTracked(prep) => {
                let (z, _) = forward(dims, scale, qkv, false);
                prep.finish(tensor(z, dims))
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
