//! `kibitzer bench ...`: steps per second of a full training step, as one
//! JSON object, for comparison scripts (scripts/compare_torch.sh).

use super::CliResult;
use clap::{Args, Subcommand};
use kibitzer_sae::ops::{from_host, scalar};
use kibitzer_sae::train::{DictTrainer, TrainConfig};
use kibitzer_sae::{Architecture, DeviceChoice, Sae, SaeConfig};
use rand::{RngExt, SeedableRng};
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time full SAE training steps (forward, backward, Adam, constraints).
    Sae(BenchSaeArgs),
}

#[derive(Args, Debug)]
pub struct BenchSaeArgs {
    /// standard, gated, topk, batchtopk or jumprelu.
    #[arg(long, default_value = "standard")]
    pub arch: String,
    /// Input width.
    #[arg(long, default_value_t = 256)]
    pub d_in: usize,
    /// Number of features.
    #[arg(long, default_value_t = 4096)]
    pub d_sae: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// TopK/BatchTopK: active features per row.
    #[arg(long, default_value_t = 32)]
    pub k: usize,
    /// Timed steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Print one JSON object instead of a sentence.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: BenchCommand) -> CliResult {
    match cmd {
        BenchCommand::Sae(a) => bench_sae(&a),
    }
}

fn parse_arch(name: &str, k: usize) -> Result<Architecture, String> {
    Ok(match name {
        "standard" | "panneal" => Architecture::Standard,
        "gated" => Architecture::Gated,
        "topk" => Architecture::TopK { k },
        "batchtopk" => Architecture::BatchTopK { k },
        "jumprelu" => Architecture::JumpRelu { bandwidth: 0.001 },
        other => {
            return Err(format!(
                "unknown architecture {other:?}: expected standard, panneal, gated, topk, batchtopk or jumprelu"
            ));
        }
    })
}

fn bench_sae(a: &BenchSaeArgs) -> CliResult {
    let arch = parse_arch(&a.arch, a.k)?;
    let device = a.device.device()?;
    let shape = SaeConfig::new(arch.clone(), a.d_in, a.d_sae);
    kibitzer_store::memory::check(
        format!("--d-in {} --d-sae {} --batch {}", a.d_in, a.d_sae, a.batch),
        kibitzer_sae::train::memory_needed(
            std::slice::from_ref(&shape),
            a.batch,
            kibitzer_sae::device::is_host(&device),
        ),
    )?;
    let sae = Sae::init(shape, 0, &device);
    let mut config = TrainConfig::for_architecture(&arch, a.d_sae, a.steps + 2);
    config.batch_size = a.batch;
    config.lr_warmup_steps = 0;
    let mut trainer = DictTrainer::new(sae, config)?;
    let x = from_host(uniform_rows(a.batch, a.d_in, 7), a.batch, a.d_in, &device);
    for _ in 0..2 {
        scalar(trainer.step(x.clone()).l0);
    }
    let start = Instant::now();
    let mut last = None;
    for _ in 0..a.steps {
        last = Some(trainer.step(x.clone()));
    }
    // Reading a result waits for the device to finish the queued work.
    if let Some(r) = last {
        scalar(r.l0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let steps_per_s = a.steps as f64 / elapsed;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "implementation": "kibitzer",
                "arch": a.arch, "d_in": a.d_in, "d_sae": a.d_sae, "batch": a.batch, "k": a.k,
                "steps": a.steps, "seconds": elapsed, "steps_per_s": steps_per_s,
                "device": a.device.to_string(), "threads": threads,
            })
        );
    } else {
        println!(
            "{}: {steps_per_s:.2} steps/s ({} steps in {elapsed:.2} s on {})",
            a.arch, a.steps, a.device
        );
    }
    Ok(())
}

/// Uniform values in [-1, 1), seeded.
fn uniform_rows(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..rows * cols)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect()
}
