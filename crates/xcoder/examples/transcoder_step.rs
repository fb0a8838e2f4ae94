//! Steps per second of a full TopK transcoder training step
//! ([`XTrainer::step`]: forward, hand-written backward, Adam, unit-norm
//! decoder), printed as one JSON object; `scripts/compare_torch.py` in this
//! crate runs it beside the same step in PyTorch.
//!
//! ```text
//! cargo run --release -p kibitzer-xcoder --example transcoder_step -- \
//!     --d-in 1024 --d-out 1024 --d-sae 16384 --k 256 --batch 1024 --steps 5
//! ```
//!
//! Defaults: reference 000's transcoder (Maia-2's `dim_vit` 1024 in and out,
//! hidden 16384, k 256) at batch 1024. Two warm-up steps are not timed (the
//! first also sets `b_dec` to the geometric median). `RAYON_NUM_THREADS`
//! sets the thread count, reported as `threads`.

use kibitzer_sae::ops::{from_host, scalar};
use kibitzer_sae::train::TrainConfig;
use kibitzer_sae::{Architecture, DeviceChoice};
use kibitzer_xcoder::train::XTrainer;
use kibitzer_xcoder::{TranscoderConfig, XcoderConfig};
use rand::{RngExt, SeedableRng};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: transcoder_step [--d-in N] [--d-out N] [--d-sae N] [--k K] [--batch N] [--steps N] [--device cpu|cuda|wgpu]";

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut d_in, mut d_out, mut d_sae, mut k, mut batch, mut steps) =
        (1024, 1024, 16384, 256, 1024, 5);
    let mut device = DeviceChoice::Cpu;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let n = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: {value:?} is not a whole number\n{USAGE}"))
        };
        match flag.as_str() {
            "--d-in" => d_in = n()?,
            "--d-out" => d_out = n()?,
            "--d-sae" => d_sae = n()?,
            "--k" => k = n()?,
            "--batch" => batch = n()?,
            "--steps" => steps = n()?.max(1),
            "--device" => device = value.parse()?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
    }
    let device = device.device()?;
    let arch = Architecture::TopK { k };
    let config = XcoderConfig::Transcoder(TranscoderConfig {
        architecture: arch.clone(),
        input_site: "input".into(),
        d_in,
        output_site: "output".into(),
        d_out,
        d_sae,
        skip: false,
    });
    let mut training = TrainConfig::for_architecture(&arch, d_sae, 1_000_000);
    training.batch_size = batch;
    training.lr_warmup_steps = 0;
    let mut trainer = XTrainer::new(config.init(0, &device)?, training)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut uniform = |n: usize| {
        (0..n)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect::<Vec<f32>>()
    };
    let x = from_host(uniform(batch * d_in), batch, d_in, &device);
    let y = from_host(uniform(batch * d_out), batch, d_out, &device);
    for _ in 0..2 {
        scalar(trainer.step_on(x.clone(), y.clone()).l0);
    }
    let start = Instant::now();
    for _ in 0..steps {
        // Reading a scalar back waits for the step to finish on any device.
        scalar(trainer.step_on(x.clone(), y.clone()).l0);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "implementation": "kibitzer",
            "d_in": d_in, "d_out": d_out, "d_sae": d_sae, "k": k, "batch": batch,
            "steps": steps,
            "seconds": seconds,
            "steps_per_second": steps as f64 / seconds,
            "threads": rayon::current_num_threads(),
        })
    );
    Ok(())
}
