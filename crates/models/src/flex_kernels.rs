//! Faster CPU kernels for the two places where a transformer's forward pass
//! on burn-flex spent time outside its matrix products.
//!
//! - burn-flex computes the exact GELU element by element with libm's
//!   `erff` on one thread: on OthelloGPT's shape that was a fifth of the
//!   forward pass. [`gelu`] computes the same function on every thread with
//!   a rational `erf` the compiler vectorises.
//! - A linear layer is a matmul into a zeroed buffer, then a second pass to
//!   add the bias. [`linear`] starts the output from the bias rows and has
//!   gemm (the kernel burn-flex uses) accumulate the product onto them, and
//!   reads strided inputs in place.
//!
//! Each takes its fast path only for `f32` tensors on the flex backend
//! outside autodiff (inference, harvesting, evaluation). On any other
//! backend, and whenever gradients are tracked, it is burn's own operation,
//! so training and GPU runs are unchanged.

use burn::tensor::Tensor;
use burn::tensor::activation;

/// Exact GELU, `x Φ(x) = x (1 + erf(x / √2)) / 2` (PyTorch's `F.gelu`,
/// TransformerLens's `"gelu"`), within 1.5e-6 of the value computed in f64
/// (the error of its `erf`, times `x / 2`).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    {
        flex::gelu(x)
    }
    #[cfg(not(feature = "flex"))]
    {
        activation::gelu(x)
    }
}

/// `x` `[rows, d]` times `w` `[d, e]` plus `bias` `[1, e]`.
pub fn linear(x: Tensor<2>, w: &Tensor<2>, bias: &Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    {
        flex::linear(x, w, bias)
    }
    #[cfg(not(feature = "flex"))]
    {
        x.matmul(w.clone()) + bias.clone()
    }
}

#[cfg(feature = "flex")]
mod flex {
    use super::{Tensor, activation, gelu_in_place};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{
        BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind,
    };
    use burn::tensor::{DType, TensorData};

    /// The flex `f32` tensor inside, when there is one and autodiff is not
    /// tracking it; otherwise the tensor back, untouched.
    fn plain_flex_f32<const D: usize>(x: Tensor<D>) -> Result<FlexTensor, Tensor<D>> {
        match x.into_dispatch() {
            DispatchTensor {
                kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
                autodiff: DispatchAutodiffContext::Disabled,
            } if t.dtype() == DType::F32 => Ok(t),
            other => Err(Tensor::from_dispatch(other)),
        }
    }

    fn wrap<const D: usize>(t: FlexTensor) -> Tensor<D> {
        Tensor::from_dispatch(DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
            autodiff: DispatchAutodiffContext::Disabled,
        })
    }

    /// A contiguous tensor from offset 0 whose buffer is exactly its
    /// elements: `t` itself when it is one (then the caller's handle is the
    /// only one left, so writing in place copies nothing), a copy otherwise.
    fn contiguous(t: FlexTensor) -> FlexTensor {
        t.to_contiguous()
    }

    pub(super) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        match plain_flex_f32(x) {
            Ok(t) => {
                let mut t = contiguous(t);
                // Copy-on-write: a buffer another tensor shares is copied first.
                gelu_in_place(t.storage_mut::<f32>());
                wrap(t)
            }
            Err(x) => activation::gelu(x),
        }
    }

    /// The smallest product (m n k) gemm is asked to split across threads,
    /// burn-flex's own threshold.
    const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

    pub(super) fn linear(x: Tensor<2>, w: &Tensor<2>, bias: &Tensor<2>) -> Tensor<2> {
        let fallback = |x: Tensor<2>| x.matmul(w.clone()) + bias.clone();
        let x = match plain_flex_f32(x) {
            Ok(x) => x,
            Err(x) => return fallback(x),
        };
        let (w_flex, b_flex) = match (plain_flex_f32(w.clone()), plain_flex_f32(bias.clone())) {
            (Ok(w), Ok(b)) => (w, contiguous(b)),
            _ => return fallback(wrap(x)),
        };
        let (x_shape, w_shape) = (x.layout().shape(), w_flex.layout().shape());
        let (m, k, n) = (x_shape[0], x_shape[1], w_shape[1]);
        assert_eq!(
            w_shape[0], k,
            "linear: x is [{m}, {k}] but w is {w_shape:?}"
        );
        let b: &[f32] = b_flex.storage();
        assert_eq!(
            b.len(),
            n,
            "linear: bias has {} values for {n} outputs",
            b.len()
        );

        // Every row starts as the bias (written once, in parallel, with no
        // zeroing pass before it).
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        if n > 0 {
            use rayon::prelude::*;
            out.spare_capacity_mut()[..m * n]
                .par_chunks_mut(n)
                .for_each(|row| {
                    for (slot, &value) in row.iter_mut().zip(b) {
                        slot.write(value);
                    }
                });
        }
        // SAFETY: the loop above wrote all m * n values (none when n == 0).
        unsafe { out.set_len(m * n) };
        let (x_rs, x_cs) = (x.layout().strides()[0], x.layout().strides()[1]);
        let (w_rs, w_cs) = (w_flex.layout().strides()[0], w_flex.layout().strides()[1]);
        let x_data: &[f32] = x.storage();
        let w_data: &[f32] = w_flex.storage();
        let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        if m > 0 && n > 0 {
            // SAFETY: the pointers address the tensors' own buffers at
            // their start offsets, and every element (i, j) read at
            // start + i * row_stride + j * col_stride lies inside them,
            // since the layouts describe views of those buffers; `out` is
            // m x n, row-major, owned here.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    true, // out = out (the bias) + x w
                    x_data.as_ptr().add(x.layout().start_offset()),
                    x_cs,
                    x_rs,
                    w_data.as_ptr().add(w_flex.layout().start_offset()),
                    w_cs,
                    w_rs,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                );
            }
        }
        wrap(FlexTensor::from_data(TensorData::new(out, [m, n])))
    }
}

/// GELU over a slice, in parallel chunks, each vectorised (AVX2 + FMA where
/// the CPU has them, SSE2 otherwise).
pub fn gelu_in_place(values: &mut [f32]) {
    use rayon::prelude::*;
    // Large enough that a chunk's work dwarfs rayon's hand-off.
    const CHUNK: usize = 1 << 14;
    values.par_chunks_mut(CHUNK).for_each(gelu_chunk);
}

fn gelu_chunk(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { gelu_chunk_avx2(values) };
            return;
        }
    }
    gelu_chunk_with::<false>(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn gelu_chunk_avx2(values: &mut [f32]) {
    gelu_chunk_with::<true>(values);
}

/// `FUSED` says whether the CPU has fused multiply-add: without it
/// `mul_add` is a call into libm, which neither vectorises nor is fast.
#[inline(always)]
fn gelu_chunk_with<const FUSED: bool>(values: &mut [f32]) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    for v in values.iter_mut() {
        let x = *v;
        *v = 0.5 * x * (1.0 + erf_f32::<FUSED>(x * FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

/// `erf` for `f32` as a branch-free rational function, so loops over it
/// vectorise: `x P(x²) / Q(x²)` on `x` clamped to [-4, 4] (beyond which
/// `erf` is ±1 in f32). The coefficients are Eigen's (also XLA's and
/// TensorFlow's f32 `erf`); the largest error against f64 `erf` is about
/// 4.3e-7, near |x| = 3.6 (checked in the tests below over [-10, 10]).
#[inline(always)]
fn erf_f32<const FUSED: bool>(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -1.609_603_3e-2,
        -2.954_599_8e-3,
        -7.349_906_3e-4,
        -5.692_506_4e-5,
        -2.101_024e-6,
        2.770_681_4e-8,
        -2.726_142_3e-10,
    ];
    const BETA: [f32; 5] = [
        -1.426_473_9e-2,
        -7.373_329e-3,
        -1.682_827e-3,
        -2.133_740_6e-4,
        -1.456_607_2e-5,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ALPHA[6];
    for &a in ALPHA[..6].iter().rev() {
        p = madd::<FUSED>(p, x2, a);
    }
    let mut q = BETA[4];
    for &b in BETA[..4].iter().rev() {
        q = madd::<FUSED>(q, x2, b);
    }
    x * p / q
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// erf in f64 by its Taylor series (|x| <= 3) and continued fraction
    /// of erfc beyond, accurate to ~1e-15: independent of the function
    /// under test and of libm.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let value = if a <= 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0f64);
            loop {
                n += 1.0;
                term *= -a * a / n;
                let add = term / (2.0 * n + 1.0);
                sum += add;
                if add.abs() < 1e-17 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...))))
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
        };
        value.copysign(x)
    }

    #[test]
    fn erf_is_within_five_tenths_of_a_millionth_everywhere() {
        let mut worst = 0.0f64;
        for i in -200_000..=200_000 {
            let x = (i as f64 * 5e-5) as f32;
            for value in [erf_f32::<false>(x), erf_f32::<true>(x)] {
                worst = worst.max((value as f64 - erf_f64(x as f64)).abs());
            }
        }
        assert!(worst < 5e-7, "worst erf error {worst}");
        // The reference itself: erf(1) and erf(3.5) to 12 digits.
        assert!((erf_f64(1.0) - 0.842_700_792_949_715).abs() < 1e-12);
        assert!((erf_f64(3.5) - 0.999_999_256_901_628).abs() < 1e-12);
    }

    #[test]
    fn gelu_in_place_matches_exact_gelu_on_every_chunk_path() {
        // Longer than one chunk and not a multiple of the vector width.
        let xs: Vec<f32> = (0..40_003).map(|i| (i as f32 - 20_000.0) * 6e-4).collect();
        let mut ys = xs.clone();
        gelu_in_place(&mut ys);
        let mut portable = xs.clone();
        gelu_chunk_with::<false>(&mut portable);
        for ((&x, &y), &p) in xs.iter().zip(&ys).zip(&portable) {
            let exact = 0.5 * x as f64 * (1.0 + erf_f64(x as f64 / 2f64.sqrt()));
            for (path, value) in [("dispatched", y), ("portable", p)] {
                let err = (value as f64 - exact).abs();
                assert!(err < 1.5e-6, "{path} gelu({x}) = {value}, exact {exact}");
            }
        }
    }

    #[test]
    fn tensor_gelu_agrees_with_burns_on_views_and_leaves_the_input_alone() {
        let device = Device::flex();
        let values: Vec<f32> = (0..6 * 7).map(|i| (i as f32 - 20.0) * 0.37).collect();
        let x = Tensor::<2>::from_data(TensorData::new(values.clone(), [6, 7]), &device);
        // A transposed view and a shared tensor both take the copying path.
        let ours = gelu(x.clone().transpose()).into_data();
        let burns = activation::gelu(x.clone().transpose()).into_data();
        ours.assert_approx_eq::<f32>(&burns, burn::tensor::Tolerance::absolute(2e-6));
        let after: Vec<f32> = x.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(after, values, "the input tensor was written to");
    }

    fn tensor(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32")
    }

    /// `x w + b` in f64 on the host, row-major.
    fn reference_linear(x: &[f32], w: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|l| x[i * k + l] as f64 * w[l * n + j] as f64)
                    .sum();
                out[i * n + j] = (dot + b[j] as f64) as f32;
            }
        }
        out
    }

    #[test]
    fn linear_adds_the_bias_to_every_row_for_contiguous_strided_and_large_inputs() {
        let device = Device::flex();
        // Small (one thread) and large enough for gemm to split the work.
        for (m, k, n) in [(5, 3, 4), (300, 200, 250)] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
                .collect();
            let w: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.02)
                .collect();
            let b: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 1.0).collect();
            let want = reference_linear(&x, &w, &b, m, k, n);
            let (wt, bt) = (
                tensor(w.clone(), [k, n], &device),
                tensor(b.clone(), [1, n], &device),
            );
            let got = host(linear(tensor(x.clone(), [m, k], &device), &wt, &bt));
            // x stored transposed and viewed back: strides (1, m), read in place.
            let mut x_t = vec![0f32; m * k];
            for i in 0..m {
                for l in 0..k {
                    x_t[l * m + i] = x[i * k + l];
                }
            }
            let strided = tensor(x_t, [k, m], &device).transpose();
            let got_strided = host(linear(strided, &wt, &bt));
            for (name, got) in [("contiguous", got), ("strided", got_strided)] {
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{name} {m}x{k}x{n}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn linear_under_autodiff_is_burns_and_differentiates() {
        let device = Device::flex().autodiff();
        let x = tensor(vec![1.0, 2.0, 3.0, 4.0], [2, 2], &device);
        let w = tensor(vec![0.5, -1.0, 2.0, 0.25], [2, 2], &device).require_grad();
        let b = tensor(vec![10.0, 20.0], [1, 2], &device).require_grad();
        let y = linear(x, &w, &b);
        let grads = y.clone().sum().backward();
        assert_eq!(host(y.inner()), vec![14.5, 19.5, 19.5, 18.0]);
        // d sum / d w[l][j] = sum_i x[i][l]; d sum / d b[j] = rows.
        assert_eq!(
            host(w.grad(&grads).expect("w grad")),
            vec![4.0, 4.0, 6.0, 6.0]
        );
        assert_eq!(host(b.grad(&grads).expect("b grad")), vec![2.0, 2.0]);
    }

    #[test]
    fn autodiff_tensors_take_burns_gelu_and_keep_their_gradient() {
        let device = Device::flex().autodiff();
        let x = Tensor::<1>::from_data(TensorData::new(vec![-1.0f32, 0.0, 2.0], [3]), &device)
            .require_grad();
        let grads = gelu(x.clone()).sum().backward();
        let g: Vec<f32> = x
            .grad(&grads)
            .expect("a gradient")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        // d/dx GELU = Φ(x) + x φ(x)
        for (x, g) in [-1.0f64, 0.0, 2.0].into_iter().zip(g) {
            let phi = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let cdf = 0.5 * (1.0 + erf_f64(x / 2f64.sqrt()));
            assert!(
                (g as f64 - (cdf + x * phi)).abs() < 1e-5,
                "grad at {x}: {g}"
            );
        }
    }
}
