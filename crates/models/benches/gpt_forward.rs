//! Criterion benches of a GPT's inference on the CPU at OthelloGPT's shape
//! (8 layers, d_model 512, 8 heads, d_mlp 2048, 61 tokens, 59 positions),
//! batch 32 (1,888 tokens per iteration):
//!
//! * `gpt/forward`: the whole forward pass to the logits;
//! * `gpt/harvest_resid_post_5`: the pass stopped after
//!   `blocks.5.hook_resid_post`, its rows copied to the host (what
//!   `gpt harvest` does per batch);
//! * `kernels/*`: the two flex kernels of [`kibitzer_models::flex_kernels`]
//!   beside burn's own operations, on the MLP's `[1888, 512] x [512, 2048]`
//!   shape.
//! * `attention/*`: causal attention's forward and backward pass at
//!   reference 004's quick shape (32 quizzes of 261 tokens, 4 heads of 32),
//!   fused ([`kibitzer_models::causal_attention`]) and as burn's operations.
//!
//! Run with `cargo bench -p kibitzer-models --bench gpt_forward`. Tokens/s
//! beside TransformerLens in one run: `python3
//! crates/models/scripts/compare_torch.py`.

use burn::tensor::activation;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kibitzer_hooks::{HookSite, HookedModel, Hooks};
use kibitzer_models::causal_attention::{fused_causal_attention, unfused_causal_attention};
use kibitzer_models::{Gpt, GptConfig, flex_kernels};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 32;
const N_CTX: usize = 59;
const D_VOCAB: usize = 61;

fn short(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
}

fn gpt(c: &mut Criterion) {
    let device = Device::flex();
    let model = Gpt::new(GptConfig::new(8, 512, 8, 2048, D_VOCAB, N_CTX), &device)
        .expect("OthelloGPT's configuration is valid");
    let tokens: Vec<i64> = (0..BATCH * N_CTX)
        .map(|i| ((i * 7919) % (D_VOCAB - 1) + 1) as i64)
        .collect();
    let input = Tensor::<2, Int>::from_data(TensorData::new(tokens, [BATCH, N_CTX]), &device);
    let site = HookSite::resid_post(5);
    let mut group = c.benchmark_group("gpt");
    short(&mut group);
    group.throughput(Throughput::Elements((BATCH * N_CTX) as u64));
    group.bench_function("forward", |b| {
        b.iter(|| {
            let logits = model
                .run_with_hooks(&input, &mut Hooks::new())
                .expect("valid tokens");
            black_box(logits.sum().into_scalar::<f32>())
        })
    });
    group.bench_function("harvest_resid_post_5", |b| {
        b.iter(|| {
            let cache = model.collect(&input, &[site]).expect("the site exists");
            let rows = cache.get(site).expect("collected").position_rows();
            black_box(kibitzer_sae::ops::to_host(rows))
        })
    });
    group.finish();
}

fn kernels(c: &mut Criterion) {
    let device = Device::flex();
    let (m, k, n) = (BATCH * N_CTX, 512, 2048);
    let x = Tensor::<2>::random([m, k], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<2>::random([k, n], Distribution::Normal(0.0, 0.05), &device);
    let bias = Tensor::<2>::random([1, n], Distribution::Normal(0.0, 0.1), &device);
    let pre = Tensor::<2>::random([m, n], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("kernels");
    short(&mut group);
    group.throughput(Throughput::Elements(m as u64));
    group.bench_function("linear/flex_kernels", |b| {
        b.iter(|| black_box(flex_kernels::linear(x.clone(), &w, &bias).into_data()))
    });
    group.bench_function("linear/burn_matmul_plus_bias", |b| {
        b.iter(|| black_box((x.clone().matmul(w.clone()) + bias.clone()).into_data()))
    });
    group.bench_function("gelu/flex_kernels", |b| {
        b.iter(|| black_box(flex_kernels::gelu(pre.clone() * 1.0).into_data()))
    });
    group.bench_function("gelu/burn", |b| {
        b.iter(|| black_box(activation::gelu(pre.clone() * 1.0).into_data()))
    });
    group.finish();
}

/// One training step's worth of one block's attention: forward, then the
/// gradients of q, k and v.
fn attention(c: &mut Criterion) {
    let device = Device::flex().autodiff();
    let shape = [32, 261, 4, 32];
    let input =
        || Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
    let (q, k, v) = (input(), input(), input());
    let scale = (shape[3] as f32).sqrt();
    let mut group = c.benchmark_group("attention");
    short(&mut group);
    group.throughput(Throughput::Elements((shape[0] * shape[1]) as u64));
    let step = |z: Tensor<4>| {
        let grads = z.sum().backward();
        black_box(q.grad(&grads).expect("q's gradient").into_data())
    };
    group.bench_function("forward_backward/fused", |b| {
        b.iter(|| {
            let z = fused_causal_attention(q.clone(), k.clone(), v.clone(), scale)
                .unwrap_or_else(|_| panic!("flex f32 tensors take the fused path"));
            step(z)
        })
    });
    group.bench_function("forward_backward/burn", |b| {
        b.iter(|| {
            step(unfused_causal_attention(
                q.clone(),
                k.clone(),
                v.clone(),
                scale,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, gpt, kernels, attention);
criterion_main!(benches);
