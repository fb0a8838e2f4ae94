//! # kibitzer-parity
//!
//! Backend parity: what kibitzer trains and runs on a GPU backend equals
//! the same computation on burn's CPU backend (`flex`) within a stated
//! tolerance. The tests (`tests/parity.rs`) start both devices from the
//! same weights (every kibitzer initialiser draws on the host, so a seed
//! gives the same numbers on every device) and the same batches, and
//! compare: training steps of every SAE architecture, a transcoder and a
//! crosscoder step, a GPT forward with cached hooks and interventions, a
//! GPT training step, the AlphaZero network's forward, harvesting into a
//! store, and a checkpoint written on one device and resumed on the other.
//!
//! Which GPU backend is compiled in is a cargo feature (`wgpu` by default,
//! so `cargo test --workspace` builds the parity tests with the rest and CI
//! compiles burn and kibitzer once); which device the tests use is
//! [`TEST_DEVICE_VAR`], and without it they skip:
//!
//! ```text
//! KIBITZER_TEST_DEVICE=wgpu cargo test -p kibitzer-parity   # any Vulkan driver
//! CUBECL_WGPU_DEFAULT_DEVICE=Cpu KIBITZER_TEST_DEVICE=wgpu cargo test -p kibitzer-parity   # lavapipe, as CI
//! KIBITZER_TEST_DEVICE=cuda:0 cargo test -p kibitzer-parity --features cuda
//! ```
//!
//! Without the `wgpu` or `cuda` feature the crate holds only these helpers
//! and runs no test: there would be nothing to compare the CPU with.
#![warn(missing_docs)]

use burn::tensor::{Device, Tensor};
use kibitzer_sae::DeviceChoice;

/// Environment variable naming the device to compare with the CPU
/// (`wgpu`, `cuda`, `cuda:N`). Unset: the parity tests skip, printing why,
/// unless `KIBITZER_REQUIRE_TOOLS` is set (CI sets both), which makes the
/// missing device a failure.
pub const TEST_DEVICE_VAR: &str = "KIBITZER_TEST_DEVICE";

#[path = "../../../testing/tools.rs"]
mod tools;

/// The device under test, from [`TEST_DEVICE_VAR`], or `None` (with a note
/// on stderr) when the variable is unset and no tool is required: `cargo
/// test --workspace` builds this crate with wgpu on every machine, and a
/// machine without a Vulkan driver has nothing to compare.
///
/// # Panics
/// When the variable names no GPU device, one this build lacks, or one that
/// cannot be opened; and when it is unset while `KIBITZER_REQUIRE_TOOLS` is
/// set. A parity run that silently compared the CPU with itself, or
/// nothing, would prove nothing.
pub fn device_under_test() -> Option<Device> {
    let Ok(name) = std::env::var(TEST_DEVICE_VAR) else {
        return tools::require(
            None,
            &format!("a GPU device to compare with the CPU ({TEST_DEVICE_VAR} is unset)"),
            &format!(
                "{TEST_DEVICE_VAR}=wgpu with a Vulkan driver (on a machine without a GPU: \
                 Mesa's lavapipe, apt-get install mesa-vulkan-drivers, and \
                 CUBECL_WGPU_DEFAULT_DEVICE=Cpu), or {TEST_DEVICE_VAR}=cuda in a --features cuda build"
            ),
        );
    };
    let choice = name
        .parse::<DeviceChoice>()
        .unwrap_or_else(|e| panic!("{TEST_DEVICE_VAR}={name}: {e}"));
    assert!(
        choice != DeviceChoice::Cpu,
        "{TEST_DEVICE_VAR} must name a GPU backend (wgpu, cuda, cuda:N), not the CPU it is compared with"
    );
    Some(
        choice
            .device()
            .unwrap_or_else(|e| panic!("{TEST_DEVICE_VAR}={name}: {e}")),
    )
}

/// The CPU device every comparison is made against.
pub fn cpu() -> Device {
    Device::flex()
}

/// A tensor's values on the host, in row-major order.
pub fn host<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("a float tensor converted to f32 reads back as f32")
}

/// Largest absolute difference between `a` and `b`, and where it is.
pub fn max_difference(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len(), "compared values differ in length");
    a.iter()
        .zip(b)
        .enumerate()
        .map(|(i, (x, y))| ((x - y).abs(), i))
        .fold((0.0, 0), |best, cur| {
            if cur.0 > best.0 || cur.0.is_nan() {
                cur
            } else {
                best
            }
        })
}

/// Asserts that `actual` (the device under test) equals `expected` (the
/// CPU) within `rel_tol` of the largest magnitude in `expected`. Both must
/// be finite. The message names `what`, the worst element and both values.
pub fn assert_close(what: &str, expected: &[f32], actual: &[f32], rel_tol: f32) {
    let scale = expected
        .iter()
        .fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    assert_within(what, expected, actual, rel_tol * scale);
}

/// Asserts that every element of `actual` is within `abs_tol` of
/// `expected` and finite; for values compared on a scale of their own (the
/// gradients of all of a model's parameters, of which some are zero but
/// for float noise).
pub fn assert_within(what: &str, expected: &[f32], actual: &[f32], abs_tol: f32) {
    assert_eq!(
        expected.len(),
        actual.len(),
        "{what}: {} values on the CPU, {} on the device",
        expected.len(),
        actual.len()
    );
    if let Some(i) = actual.iter().position(|v| !v.is_finite()) {
        panic!("{what}: value {i} is {} on the device", actual[i]);
    }
    let (diff, at) = max_difference(expected, actual);
    assert!(
        diff <= abs_tol,
        "{what}: element {at} is {} on the CPU and {} on the device (difference {diff:e}, allowed {abs_tol:e})",
        expected[at],
        actual[at],
    );
}

/// `rows x cols` values of a seeded, sparse, non-negative mixture of a few
/// directions plus an offset: activations that every dictionary
/// architecture has something to learn from, with no ties for a top-k to
/// break differently on two devices.
pub fn activations(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n_dirs = 12;
    let dirs: Vec<f32> = (0..n_dirs * cols)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    let mut out = vec![0f32; rows * cols];
    for row in out.chunks_mut(cols) {
        for k in 0..n_dirs {
            if rng.random::<f32>() < 0.3 {
                let a = rng.random::<f32>() * 2.0;
                for (v, d) in row.iter_mut().zip(&dirs[k * cols..(k + 1) * cols]) {
                    *v += a * d;
                }
            }
        }
        for v in row.iter_mut() {
            *v += 0.25 + 0.01 * (rng.random::<f32>() - 0.5);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_values_pass_and_far_ones_are_named() {
        assert_close("same", &[1.0, -2.0], &[1.0, -2.0 + 1e-6], 1e-5);
        let err =
            std::panic::catch_unwind(|| assert_close("w_enc", &[1.0, 2.0], &[1.0, 2.1], 1e-3))
                .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("w_enc") && msg.contains("element 1"), "{msg}");
        assert!(
            std::panic::catch_unwind(|| assert_close("nan", &[1.0], &[f32::NAN], 1.0)).is_err()
        );
    }

    #[test]
    fn activations_are_seeded() {
        assert_eq!(activations(4, 3, 7), activations(4, 3, 7));
        assert_ne!(activations(4, 3, 7), activations(4, 3, 8));
    }
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
