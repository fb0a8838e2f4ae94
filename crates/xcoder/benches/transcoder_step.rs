//! Criterion bench of one full TopK transcoder training step
//! ([`XTrainer::step`]: encoder, fused sparse decoder and backward on the
//! CPU, Adam, unit-norm decoder, dead-feature bookkeeping) at reference
//! 000's size: input and output width 1024 (Maia-2's `dim_vit`), hidden
//! 16384, k 256. The batch is 256 rows (reference 000 trains with 4096) so
//! that criterion's 10 samples take seconds; steps/s at larger batches, and
//! beside PyTorch in the same run, come from the `transcoder_step` example
//! and `crates/xcoder/scripts/compare_torch.py`.
//!
//! Run with `cargo bench -p kibitzer-xcoder --bench transcoder_step`;
//! `RAYON_NUM_THREADS` sets the thread count.

use criterion::{Criterion, criterion_group, criterion_main};
use kibitzer_sae::ops::{from_host, scalar};
use kibitzer_sae::train::TrainConfig;
use kibitzer_sae::{Architecture, DeviceChoice};
use kibitzer_xcoder::train::XTrainer;
use kibitzer_xcoder::{TranscoderConfig, XcoderConfig};
use rand::{RngExt, SeedableRng};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const D_IN: usize = 1024;
const D_OUT: usize = 1024;
const D_SAE: usize = 16384;
const K: usize = 256;
const BATCH: usize = 256;

fn transcoder_step(c: &mut Criterion) {
    let device = DeviceChoice::Cpu
        .device()
        .expect("the bench is built with the default `flex` feature");
    let arch = Architecture::TopK { k: K };
    let config = XcoderConfig::Transcoder(TranscoderConfig {
        architecture: arch.clone(),
        input_site: "blocks.6.ln2.hook_normalized".into(),
        d_in: D_IN,
        output_site: "blocks.6.hook_mlp_out".into(),
        d_out: D_OUT,
        d_sae: D_SAE,
        skip: false,
    });
    let mut training = TrainConfig::for_architecture(&arch, D_SAE, 1_000_000);
    training.batch_size = BATCH;
    training.lr_warmup_steps = 0;
    let xcoder = config.init(0, &device).expect("a valid transcoder config");
    let mut trainer =
        XTrainer::new(xcoder, training).expect("the TopK defaults are a valid training config");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut uniform = |n: usize| {
        (0..n)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect::<Vec<f32>>()
    };
    let x = from_host(uniform(BATCH * D_IN), BATCH, D_IN, &device);
    let y = from_host(uniform(BATCH * D_OUT), BATCH, D_OUT, &device);
    // The first step also sets b_dec to the geometric median: keep it out.
    scalar(trainer.step_on(x.clone(), y.clone()).l0);

    let mut group = c.benchmark_group("transcoder_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("topk_d1024_h16384_k256_b256", |b| {
        b.iter(|| black_box(scalar(trainer.step_on(x.clone(), y.clone()).l0)))
    });
    group.finish();
}

criterion_group!(benches, transcoder_step);
criterion_main!(benches);
