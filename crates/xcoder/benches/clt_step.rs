//! Criterion bench of one cross-layer transcoder training step
//! ([`kibitzer_sae::arch::step`], JumpReLU) with the CLT's block structure
//! in the products (`structured`) and with the dense products of the
//! equivalent stacked transcoder (`dense`, what the trainer would do without
//! [`kibitzer_sae::arch::CrossLayer`]): 4 layers of width 128 (this
//! project's CPU-scale OthelloGPT), 1024 features per layer, batch 1024.
//!
//! Run with `cargo bench -p kibitzer-xcoder --bench clt_step`;
//! `RAYON_NUM_THREADS` sets the thread count.

use criterion::{Criterion, criterion_group, criterion_main};
use kibitzer_sae::arch::{self, L0Penalty, StepInputs};
use kibitzer_sae::ops::{from_host, scalar};
use kibitzer_sae::{Architecture, DeviceChoice};
use kibitzer_xcoder::{Clt, CltConfig, Xcoder};
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LAYERS: usize = 4;
const D_MODEL: usize = 128;
const FEATURES: usize = 1024;
const BATCH: usize = 1024;

fn clt_step(c: &mut Criterion) {
    let device = DeviceChoice::Cpu
        .device()
        .expect("the bench is built with the default `flex` feature");
    let config = CltConfig {
        architecture: Architecture::JumpRelu { bandwidth: 0.05 },
        n_layers: LAYERS,
        d_model: D_MODEL,
        d_transcoder: FEATURES,
        input_hook: "hook_resid_mid".into(),
        output_hook: "hook_mlp_out".into(),
    };
    let xcoder = Xcoder::Clt(Clt::init(config, 0, &device).expect("a valid CLT config"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut uniform = |n: usize| {
        (0..n)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect::<Vec<f32>>()
    };
    let width = LAYERS * D_MODEL;
    let x = from_host(uniform(BATCH * width), BATCH, width, &device);
    let y = from_host(uniform(BATCH * width), BATCH, width, &device);
    let inputs = StepInputs {
        sparsity_coefficient: 1.0,
        p: 1.0,
        dead_mask: None,
        n_dead: 0,
        k_aux: 0,
        auxk_alpha: 0.0,
        l0: L0Penalty::default(),
        levels: None,
    };
    let structured = xcoder.step_model();
    let mut dense = structured.clone();
    dense.cross_layer = None;
    let mut group = c.benchmark_group("clt_step_jumprelu_4x128_f1024_b1024");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, model) in [("structured", &structured), ("dense", &dense)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let out = arch::step(model, x.clone(), y.clone(), &inputs);
                // Force the lazy work: read the loss back.
                black_box(scalar(out.loss.mse));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, clt_step);
criterion_main!(benches);
