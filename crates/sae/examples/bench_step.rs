//! Steps per second of a full SAE training step, printed as one JSON object
//! like `kibitzer bench sae --json` (which scripts/compare_torch.sh prefers;
//! this example stands in for it where the `kibitzer` binary is not built):
//!
//! ```text
//! cargo run --release -p kibitzer-sae --example bench_step -- \
//!     --arch topk --d-in 256 --d-sae 4096 --batch 4096 --k 32 --steps 10 --json
//! ```
//!
//! Two warm-up steps (the first also sets `b_dec` to the geometric median)
//! are not timed. `RAYON_NUM_THREADS` sets the thread count, reported as
//! `threads`.

use kibitzer_sae::arch::UnknownFamily;
use kibitzer_sae::ops::{from_host, scalar};
use kibitzer_sae::train::{DictTrainer, TrainConfig};
use kibitzer_sae::{DeviceChoice, Family, Sae, SaeConfig};
use rand::{RngExt, SeedableRng};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARMUP_STEPS: usize = 2;

struct Args {
    arch: String,
    d_in: usize,
    d_sae: usize,
    batch: usize,
    k: usize,
    steps: usize,
    device: DeviceChoice,
    json: bool,
}

const USAGE: &str = "usage: bench_step [--arch standard|panneal|gated|topk|batchtopk|jumprelu|matryoshka] [--d-in N] \
[--d-sae N] [--batch N] [--k K] [--steps N] [--device cpu|cuda|wgpu] [--json]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        arch: "standard".into(),
        d_in: 256,
        d_sae: 4096,
        batch: 4096,
        k: 32,
        steps: 10,
        device: DeviceChoice::Cpu,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" {
            a.json = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || -> Result<usize, String> {
            match value.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{flag} expects a positive integer, got {value:?}")),
            }
        };
        match flag.as_str() {
            "--arch" => a.arch = value.clone(),
            "--d-in" => a.d_in = number()?,
            "--d-sae" => a.d_sae = number()?,
            "--batch" => a.batch = number()?,
            "--k" => a.k = number()?,
            "--steps" => a.steps = number()?,
            "--device" => a.device = value.parse().map_err(|e| format!("--device: {e}"))?,
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn run(a: &Args) -> Result<(), String> {
    let family: Family = a.arch.parse().map_err(|e: UnknownFamily| e.to_string())?;
    let arch = family.architecture(a.k, 0.001);
    let device = a.device.device().map_err(|e| e.to_string())?;
    let sae = Sae::init(SaeConfig::new(arch.clone(), a.d_in, a.d_sae), 0, &device);
    let mut config = TrainConfig::for_architecture(&arch, a.d_sae, a.steps + WARMUP_STEPS);
    config.batch_size = a.batch;
    config.lr_warmup_steps = 0;
    family.apply_training_options(&mut config, a.d_sae);
    let mut trainer = DictTrainer::new(sae, config).map_err(|e| e.to_string())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let rows = (0..a.batch * a.d_in)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let x = from_host(rows, a.batch, a.d_in, &device);
    for _ in 0..WARMUP_STEPS {
        scalar(trainer.step(x.clone()).l0);
    }
    let start = Instant::now();
    let mut last = None;
    for _ in 0..a.steps {
        last = Some(trainer.step(x.clone()));
    }
    // Reading a result waits for any queued device work.
    if let Some(report) = last {
        scalar(report.l0);
    }
    let seconds = start.elapsed().as_secs_f64();
    let steps_per_s = a.steps as f64 / seconds;
    let threads = rayon::current_num_threads();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "implementation": "kibitzer",
                "arch": a.arch, "d_in": a.d_in, "d_sae": a.d_sae, "batch": a.batch, "k": a.k,
                "steps": a.steps, "seconds": seconds, "steps_per_s": steps_per_s,
                "device": a.device.to_string(), "threads": threads,
            })
        );
    } else {
        println!(
            "{}: {steps_per_s:.2} steps/s ({} steps in {seconds:.2} s on {}, {threads} threads)",
            a.arch, a.steps, a.device
        );
    }
    Ok(())
}

fn main() {
    if let Err(e) = parse_args().and_then(|a| run(&a)) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}
