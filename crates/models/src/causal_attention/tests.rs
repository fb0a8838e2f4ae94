use super::*;
use burn::tensor::{Device, TensorData};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 values")
}

fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tolerance * (1.0 + w.abs()),
            "{what}[{i}]: fused {g}, burn {w}"
        );
    }
}

/// Shapes that cross block boundaries (64), end inside a block, have one
/// position, or one head.
const SHAPES: [[usize; 4]; 4] = [[2, 70, 3, 5], [1, 130, 2, 8], [3, 1, 2, 4], [1, 64, 1, 16]];

#[test]
fn exp_is_within_two_ulp_of_f64_exp_down_to_underflow() {
    let mut worst = 0.0f64;
    let mut x = 0.0f32;
    while x > -87.0 {
        let want = (x as f64).exp();
        let got = exp_f32(x) as f64;
        worst = worst.max((got - want).abs() / want);
        x -= 1e-3;
    }
    assert!(worst < 2.5e-7, "largest relative error {worst}");
    assert_eq!(exp_f32(-100.0), 0.0);
    assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp_f32(0.0), 1.0);
}

#[test]
fn forward_equals_burns_operations() {
    let device = Device::flex();
    for (n, shape) in SHAPES.into_iter().enumerate() {
        let seed = 10 * n as u64;
        let (q, k, v) = (
            random(shape, seed, &device),
            random(shape, seed + 1, &device),
            random(shape, seed + 2, &device),
        );
        let want = host(unfused_causal_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            2.0,
        ));
        let got = fused_causal_attention(q, k, v, 2.0).unwrap_or_else(|_| panic!("no fused path"));
        assert_eq!(got.dims(), shape);
        assert_close(&format!("z {shape:?}"), &host(got), &want, 1e-5);
    }
}

#[test]
fn gradients_equal_burns_operations() {
    gradients_equal_burns_operations_on(Device::flex().autodiff());
}

#[test]
fn gradients_equal_burns_operations_under_gradient_checkpointing() {
    gradients_equal_burns_operations_on(Device::flex().autodiff().gradient_checkpointing());
}

fn gradients_equal_burns_operations_on(device: Device) {
    for (n, shape) in SHAPES.into_iter().enumerate() {
        let seed = 100 + 10 * n as u64;
        let inputs = || {
            [
                random(shape, seed, &device).require_grad(),
                random(shape, seed + 1, &device).require_grad(),
                random(shape, seed + 2, &device).require_grad(),
            ]
        };
        // A loss that weighs every output element differently, so every
        // gradient element matters.
        let weights = random(shape, seed + 3, &device);
        let [q, k, v] = inputs();
        let grads = (unfused_causal_attention(q.clone(), k.clone(), v.clone(), 1.5)
            * weights.clone())
        .sum()
        .backward();
        let want: Vec<Vec<f32>> = [&q, &k, &v]
            .iter()
            .map(|t| host(t.grad(&grads).expect("burn's gradient")))
            .collect();
        let [q, k, v] = inputs();
        let z = fused_causal_attention(q.clone(), k.clone(), v.clone(), 1.5)
            .unwrap_or_else(|_| panic!("no fused path under autodiff"));
        let grads = (z * weights).sum().backward();
        for (name, (t, want)) in ["q", "k", "v"].iter().zip([&q, &k, &v].iter().zip(&want)) {
            let got = host(t.grad(&grads).expect("fused gradient"));
            assert_close(&format!("d{name} {shape:?}"), &got, want, 1e-4);
        }
    }
}

#[test]
fn the_future_does_not_reach_the_past() {
    // Changing the last position's key and value leaves every earlier
    // output as it was.
    let device = Device::flex();
    let shape = [1, 100, 2, 4];
    let (q, k, v) = (
        random(shape, 1, &device),
        random(shape, 2, &device),
        random(shape, 3, &device),
    );
    let z = host(
        fused_causal_attention(q.clone(), k.clone(), v.clone(), 1.0)
            .unwrap_or_else(|_| panic!("fused")),
    );
    let bump = |t: Tensor<4>| {
        let last = t.clone().slice([0..1, 99..100, 0..2, 0..4]) + 5.0;
        t.slice_assign([0..1, 99..100, 0..2, 0..4], last)
    };
    let z2 =
        host(fused_causal_attention(q, bump(k), bump(v), 1.0).unwrap_or_else(|_| panic!("fused")));
    let earlier = 99 * 2 * 4;
    assert_eq!(z[..earlier], z2[..earlier]);
    assert_ne!(z[earlier..], z2[earlier..]);
}

#[test]
fn inputs_of_different_shapes_are_handed_back_untouched() {
    let device = Device::flex();
    let (q, k, v) = (
        random([1, 4, 2, 3], 1, &device),
        random([1, 5, 2, 3], 2, &device),
        random([1, 5, 2, 3], 3, &device),
    );
    let want = [host(q.clone()), host(k.clone()), host(v.clone())];
    match fused_causal_attention(q, k, v, 1.0) {
        Ok(_) => panic!("q and k differ in length: no fused path"),
        Err(back) => {
            let got = back.map(host);
            assert_eq!(got, want);
        }
    }
}
