//! Criterion benches of the SAE kernels at the size of issue 3's speed
//! targets (d_in 256, d_sae 4096, batch 4096) on the default CPU device:
//!
//! * `encode/*`, `decode/*`: inference through [`Dictionary`] (standard and
//!   TopK k = 32, 64);
//! * `train_step/*`: one full [`DictTrainer::step`] (forward, hand-written
//!   backward, clipping, Adam, decoder constraint, dead-feature tracking) for
//!   standard, TopK k = 32 and 64, BatchTopK k = 32, gated and JumpReLU;
//! * `sweep_step/*`: one step of a sweep of the demo's shape (ten
//!   dictionaries, 256 and 512 features, batch 2048: standard, gated,
//!   JumpReLU, TopK k = 16, BatchTopK k = 16), the members side by side on
//!   the cores (`side_by_side`, what [`Sweep::step_batch`] does on the CPU)
//!   and one after another with every core on each member's products
//!   (`one_after_another`).
//!
//! Run with `cargo bench -p kibitzer-sae --bench sae_kernels` (a few minutes
//! on 2 cores); `RAYON_NUM_THREADS` sets the thread count. Each bench keeps
//! criterion's minimum of 10 samples and short warm-up and measurement
//! times, since one training step takes a sizeable fraction of a second.
//! For steps/s against PyTorch in the same run, see
//! `scripts/compare_torch.sh`.

use burn::tensor::{Device, Tensor};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use kibitzer_sae::ops::{from_host, scalar};
use kibitzer_sae::train::{DictTrainer, Sweep, SweepMember, TrainConfig};
use kibitzer_sae::{Architecture, DeviceChoice, Dictionary, Sae, SaeConfig};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

// glibc's allocator maps and faults in every 64 MiB `[4096, 4096]`
// temporary afresh; mimalloc reuses them (the `kibitzer` binary does the same).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const D_IN: usize = 256;
const D_SAE: usize = 4096;
const BATCH: usize = 4096;

fn device() -> Device {
    DeviceChoice::Cpu
        .device()
        .expect("the bench is built with the default `flex` feature")
}

/// A seeded batch of uniform values in [-1, 1).
fn batch(device: &Device) -> Tensor<2> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let data = (0..BATCH * D_IN)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    from_host(data, BATCH, D_IN, device)
}

fn sae(arch: Architecture, device: &Device) -> Sae {
    Sae::init(SaeConfig::new(arch, D_IN, D_SAE), 0, device)
}

fn short(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    // Flat sampling: every sample runs the same number of iterations, which
    // suits iterations of a tenth of a second or more.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
}

fn inference(c: &mut Criterion) {
    let device = device();
    let x = batch(&device);
    let archs = [
        ("standard", Architecture::Standard),
        ("topk32", Architecture::TopK { k: 32 }),
        ("topk64", Architecture::TopK { k: 64 }),
    ];
    let mut group = c.benchmark_group("encode");
    short(&mut group);
    for (name, arch) in &archs {
        let sae = sae(arch.clone(), &device);
        group.bench_function(*name, |b| b.iter(|| black_box(sae.encode(x.clone()))));
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    short(&mut group);
    for (name, arch) in &archs {
        let sae = sae(arch.clone(), &device);
        let features = sae.encode(x.clone());
        group.bench_function(*name, |b| {
            b.iter(|| black_box(sae.decode(features.clone())))
        });
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    let device = device();
    let x = batch(&device);
    let archs = [
        ("standard", Architecture::Standard),
        ("topk32", Architecture::TopK { k: 32 }),
        ("topk64", Architecture::TopK { k: 64 }),
        ("batchtopk32", Architecture::BatchTopK { k: 32 }),
        ("gated", Architecture::Gated),
        ("jumprelu", Architecture::JumpRelu { bandwidth: 0.001 }),
    ];
    let mut group = c.benchmark_group("train_step");
    short(&mut group);
    // Ten gated steps take about 6 s on 2 cores.
    group.measurement_time(Duration::from_secs(8));
    for (name, arch) in archs {
        let mut config = TrainConfig::for_architecture(&arch, D_SAE, 1_000_000);
        config.batch_size = BATCH;
        config.lr_warmup_steps = 0;
        let mut trainer = DictTrainer::new(sae(arch, &device), config)
            .expect("the architecture's default training config is valid");
        // The first step also sets b_dec to the geometric median: keep it out.
        scalar(trainer.step(x.clone()).l0);
        group.bench_function(name, |b| {
            b.iter(|| {
                let report = trainer.step(x.clone());
                black_box(scalar(report.l0))
            })
        });
    }
    group.finish();
}

fn sweep_step(c: &mut Criterion) {
    let device = device();
    let (d_in, rows) = (256, 2048);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let data = (0..rows * d_in)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let x = from_host(data, rows, d_in, &device);
    let archs = [
        ("standard", Architecture::Standard),
        ("gated", Architecture::Gated),
        ("jumprelu", Architecture::JumpRelu { bandwidth: 0.05 }),
        ("topk16", Architecture::TopK { k: 16 }),
        ("batchtopk16", Architecture::BatchTopK { k: 16 }),
    ];
    let mut members = Vec::new();
    for (name, arch) in archs {
        for d_sae in [256, 512] {
            let mut config = TrainConfig::for_architecture(&arch, d_sae, 1_000_000);
            config.batch_size = rows;
            config.lr_warmup_steps = 0;
            let sae = Sae::init(SaeConfig::new(arch.clone(), d_in, d_sae), 0, &device);
            members.push(SweepMember {
                name: format!("{name}-{d_sae}"),
                trainer: DictTrainer::new(sae, config)
                    .expect("the architecture's default training config is valid"),
            });
        }
    }
    let mut sweep = Sweep::new(members, &device).expect("the members agree on d_in and batch");
    // The first step also sets b_dec to the geometric median: keep it out.
    sweep.step_batch(&x, true);
    assert!(sweep.steps_members_in_parallel() || rayon::current_num_threads() == 1);
    let mut group = c.benchmark_group("sweep_step");
    short(&mut group);
    group.bench_function("side_by_side", |b| {
        b.iter(|| black_box(sweep.step_batch(&x, true)))
    });
    group.bench_function("one_after_another", |b| {
        b.iter(|| {
            for m in &mut sweep.members {
                black_box(m.trainer.step(x.clone()).read());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, inference, train_step, sweep_step);
criterion_main!(benches);
