//! `kibitzer bench ...`: throughput of a full training step (SAEs,
//! transcoders) or of a GPT forward or training pass, as a sentence or one
//! JSON object, for comparison scripts (scripts/compare_torch.sh) and the
//! GPU report (scripts/gpu_check.sh).

use super::CliResult;
use clap::{Args, Subcommand};
use kibitzer::sweep::SweepGrid;
use kibitzer_hooks::{HookedModel, Hooks};
use kibitzer_models::gpt::othello::othello_gpt_config;
use kibitzer_models::{Gpt, GptTrainConfig, GptTrainer, TokenDataset};
use kibitzer_sae::ops::{from_host, scalar};
use kibitzer_sae::train::{DictTrainer, Sweep, TrainConfig};
use kibitzer_sae::{DeviceChoice, Family, Sae, SaeConfig};
use kibitzer_xcoder::train::XTrainer;
use kibitzer_xcoder::{TranscoderConfig, XcoderConfig};
use rand::{RngExt, SeedableRng};
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time full SAE training steps (forward, backward, Adam, constraints).
    Sae(BenchSaeArgs),
    /// Time full transcoder training steps (reference 000's transcoder
    /// reads 1024 and writes 1024 through 16384 features, k 256).
    Transcoder(BenchTranscoderArgs),
    /// Time a whole sweep: every dictionary of a grid (the demo's `small`,
    /// or reference 001's) stepping on the same batches, as `kibitzer
    /// sweep` trains them. Reports dictionary-steps/s and the achieved
    /// GFLOP/s against the device's sgemm peak, measured in the same run.
    Sweep(BenchSweepArgs),
    /// Time GPT forward passes (or training steps with --train): tokens/s.
    /// The default shape is OthelloGPT's (8 blocks, d_model 512, 8 heads,
    /// 60 positions).
    Gpt(BenchGptArgs),
}

/// What every benchmark shares: how long, where, how to report.
#[derive(Args, Debug)]
pub struct BenchRun {
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

#[derive(Args, Debug)]
pub struct BenchSaeArgs {
    /// Architecture.
    #[arg(long, default_value = "standard", value_parser = super::family_parser(&Family::ALL))]
    pub arch: Family,
    /// Input width.
    #[arg(long, default_value_t = 256)]
    pub d_in: usize,
    /// Number of features.
    #[arg(long, default_value_t = 4096)]
    pub d_sae: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// TopK/BatchTopK/Matryoshka: active features per row.
    #[arg(long, default_value_t = 32)]
    pub k: usize,
    #[command(flatten)]
    pub run: BenchRun,
}

#[derive(Args, Debug)]
pub struct BenchSweepArgs {
    /// Which grid: small (the demo's 12 dictionaries) or reference
    /// (reference 001's 125; use --steps 1).
    #[arg(long, value_enum, default_value = "small")]
    pub grid: super::sweep::PresetArg,
    /// Input width (the demo's residual stream is 256 wide).
    #[arg(long, default_value_t = 256)]
    pub d_in: usize,
    /// Rows per batch [default: the grid's].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Side of the square product that measures the sgemm peak.
    #[arg(long, default_value_t = 2048)]
    pub peak_size: usize,
    #[command(flatten)]
    pub run: BenchRun,
}

#[derive(Args, Debug)]
pub struct BenchTranscoderArgs {
    /// Architecture (standard, topk, batchtopk, jumprelu, matryoshka).
    #[arg(long, default_value = "topk", value_parser = super::family_parser(&TRANSCODER_FAMILIES))]
    pub arch: Family,
    /// Input width.
    #[arg(long, default_value_t = 1024)]
    pub d_in: usize,
    /// Output width.
    #[arg(long, default_value_t = 1024)]
    pub d_out: usize,
    /// Number of features.
    #[arg(long, default_value_t = 16384)]
    pub d_sae: usize,
    /// Rows per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// TopK/BatchTopK: active features per row.
    #[arg(long, default_value_t = 256)]
    pub k: usize,
    #[command(flatten)]
    pub run: BenchRun,
}

/// The architectures a transcoder can have.
const TRANSCODER_FAMILIES: [Family; 5] = [
    Family::Standard,
    Family::Topk,
    Family::Batchtopk,
    Family::Jumprelu,
    Family::Matryoshka,
];

#[derive(Args, Debug)]
pub struct BenchGptArgs {
    /// Blocks.
    #[arg(long, default_value_t = 8)]
    pub layers: usize,
    /// Residual stream width.
    #[arg(long, default_value_t = 512)]
    pub d_model: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 8)]
    pub heads: usize,
    /// Othello board size: the vocabulary and the context (60 positions for 8).
    #[arg(long, default_value_t = 8)]
    pub board: usize,
    /// Sequences per pass.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Time training steps (forward, backward, AdamW) instead of forward passes.
    #[arg(long)]
    pub train: bool,
    #[command(flatten)]
    pub run: BenchRun,
}

pub fn run(cmd: BenchCommand) -> CliResult {
    match cmd {
        BenchCommand::Sae(a) => bench_sae(&a),
        BenchCommand::Transcoder(a) => bench_transcoder(&a),
        BenchCommand::Sweep(a) => bench_sweep(&a),
        BenchCommand::Gpt(a) => bench_gpt(&a),
    }
}

/// The training config of `family` for `steps` steps without warm-up (the
/// timed steps run at the full learning rate, as in a long run).
fn bench_training(family: Family, d_sae: usize, k: usize, steps: usize) -> TrainConfig {
    let arch = family.architecture(k, 0.001);
    let mut config = TrainConfig::for_architecture(&arch, d_sae, steps + 2);
    config.lr_warmup_steps = 0;
    family.apply_training_options(&mut config, d_sae);
    config
}

/// Runs `step` twice to warm up, then `run.steps` times; `step` returns a
/// scalar of its result, read after the last step so that the time covers
/// the queued device work. Returns seconds for the timed steps.
fn time_steps(
    run: &BenchRun,
    mut step: impl FnMut() -> Result<f64, Box<dyn std::error::Error>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    if run.steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    for _ in 0..2 {
        step()?;
    }
    let start = Instant::now();
    for _ in 0..run.steps {
        step()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Prints the result as a sentence, or one JSON object holding `fields`,
/// the rate and the run's settings.
fn report(
    run: &BenchRun,
    what: &str,
    seconds: f64,
    per_step: Option<(&str, f64)>,
    fields: serde_json::Value,
) {
    let steps_per_s = run.steps as f64 / seconds;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if run.json {
        let mut out = serde_json::json!({
            "implementation": "kibitzer",
            "steps": run.steps, "seconds": seconds, "steps_per_s": steps_per_s,
            "device": run.device.to_string(), "threads": threads,
        });
        if let Some((unit, n)) = per_step {
            out[unit] = serde_json::json!(n * steps_per_s);
        }
        if let (Some(out), serde_json::Value::Object(fields)) = (out.as_object_mut(), fields) {
            out.extend(fields);
        }
        println!("{out}");
    } else {
        let rate = per_step.map_or(String::new(), |(unit, n)| {
            format!(", {:.0} {}", n * steps_per_s, unit.replace('_', " "))
        });
        println!(
            "{what}: {steps_per_s:.2} steps/s{rate} ({} steps in {seconds:.2} s on {})",
            run.steps, run.device
        );
    }
}

fn bench_sae(a: &BenchSaeArgs) -> CliResult {
    let device = a.run.device.device()?;
    let config = bench_training(a.arch, a.d_sae, a.k, a.run.steps);
    let shape = SaeConfig::new(a.arch.architecture(a.k, 0.001), a.d_in, a.d_sae);
    shape.validate()?;
    kibitzer_store::memory::check(
        format!("--d-in {} --d-sae {} --batch {}", a.d_in, a.d_sae, a.batch),
        kibitzer_sae::train::memory_needed(
            std::slice::from_ref(&shape),
            a.batch,
            kibitzer_sae::device::is_host(&device),
        ),
    )?;
    let mut trainer = DictTrainer::new(
        Sae::init(shape, 0, &device),
        TrainConfig {
            batch_size: a.batch,
            ..config
        },
    )?;
    let x = from_host(uniform_rows(a.batch, a.d_in, 7), a.batch, a.d_in, &device);
    let seconds = time_steps(&a.run, || Ok(scalar(trainer.step(x.clone()).l0)))?;
    report(
        &a.run,
        a.arch.name(),
        seconds,
        None,
        serde_json::json!({
            "arch": a.arch.name(), "d_in": a.d_in, "d_sae": a.d_sae, "batch": a.batch, "k": a.k,
        }),
    );
    Ok(())
}

/// Floating-point operations of the five dense products of one training
/// step of a dictionary reading `d_in` and writing `d_out` through `d_sae`
/// features: the encoder, the decoder, and the three gradient products (of
/// the decoder, of the features, of the encoder), `2 B F (2 d_in + 3
/// d_out)`. This is the work every architecture's step is measured
/// against ("dense-equivalent"): gated and JumpReLU do a little more, the
/// TopK family much less (sparse products), so their GFLOP/s is a
/// dense-equivalent rate and can exceed the sgemm peak.
fn dense_step_flops(batch: usize, d_in: usize, d_out: usize, d_sae: usize) -> f64 {
    2.0 * batch as f64 * d_sae as f64 * (2 * d_in + 3 * d_out) as f64
}

/// The device's sgemm rate: the best of five `[n, n] x [n, n]` products
/// (after one warm-up), in GFLOP/s, read back so that queued device work
/// is included.
fn sgemm_peak(n: usize, device: &burn::tensor::Device) -> Result<f64, Box<dyn std::error::Error>> {
    if n == 0 {
        return Err("--peak-size must be at least 1".into());
    }
    let a = from_host(uniform_rows(n, n, 11), n, n, device);
    let b = from_host(uniform_rows(n, n, 12), n, n, device);
    let product = || scalar(a.clone().matmul(b.clone()).slice([0..1, 0..1]).reshape([1]));
    product();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        product();
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

fn bench_sweep(a: &BenchSweepArgs) -> CliResult {
    let device = a.run.device.device()?;
    let mut grid = SweepGrid::preset(a.grid.into());
    if let Some(batch) = a.batch {
        grid.batch_size = batch;
    }
    // The timed steps run at the full learning rate, as in the middle of
    // a long run: no warm-up, nothing finishes.
    let mut members = grid.members(a.d_in, a.run.steps + 2 + 1000, 0, &device)?;
    for m in &mut members {
        m.trainer.config.lr_warmup_steps = 0;
    }
    let flops_per_step: f64 = members
        .iter()
        .map(|m| {
            let c = &m.trainer.dict.config;
            dense_step_flops(grid.batch_size, c.d_in, c.d_out, c.d_sae)
        })
        .sum();
    let peak = sgemm_peak(a.peak_size, &device)?;
    let batch = grid.batch_size;
    let x = from_host(uniform_rows(batch, a.d_in, 7), batch, a.d_in, &device);
    let n = members.len();
    // The step `kibitzer sweep` takes: members side by side on the CPU.
    let mut sweep = Sweep::new(members, &device)?;
    let seconds = time_steps(&a.run, || {
        sweep.step_batch(&x, false);
        // Reading a weight waits for queued device work.
        let last = &sweep.members[n - 1].trainer.dict.params.b_dec;
        Ok(scalar(last.clone().sum()))
    })?;
    let gflops = flops_per_step * a.run.steps as f64 / seconds / 1e9;
    report(
        &a.run,
        &format!(
            "sweep `{}` ({n} dictionaries, d_in {}, batch {batch}; {gflops:.1} GFLOP/s dense-equivalent, {:.0}% of the sgemm peak {peak:.1} GFLOP/s)",
            grid.preset,
            a.d_in,
            100.0 * gflops / peak
        ),
        seconds,
        Some(("dictionary_steps_per_s", n as f64)),
        serde_json::json!({
            "kind": "sweep", "grid": grid.preset, "dictionaries": n, "d_in": a.d_in,
            "batch": batch, "dense_equivalent_gflops": gflops, "sgemm_peak_gflops": peak,
            "fraction_of_peak": gflops / peak,
        }),
    );
    Ok(())
}

fn bench_transcoder(a: &BenchTranscoderArgs) -> CliResult {
    let device = a.run.device.device()?;
    let mut config = bench_training(a.arch, a.d_sae, a.k, a.run.steps);
    config.batch_size = a.batch;
    let xcoder = XcoderConfig::Transcoder(TranscoderConfig {
        architecture: a.arch.architecture(a.k, 0.001),
        input_site: "bench.input".into(),
        d_in: a.d_in,
        output_site: "bench.output".into(),
        d_out: a.d_out,
        d_sae: a.d_sae,
        skip: false,
    });
    xcoder.validate()?;
    let mut shape = SaeConfig::new(a.arch.architecture(a.k, 0.001), a.d_in, a.d_sae);
    shape.d_out = a.d_out;
    kibitzer_store::memory::check(
        format!(
            "--d-in {} --d-out {} --d-sae {} --batch {}",
            a.d_in, a.d_out, a.d_sae, a.batch
        ),
        kibitzer_sae::train::memory_needed(
            std::slice::from_ref(&shape),
            a.batch,
            kibitzer_sae::device::is_host(&device),
        ),
    )?;
    let mut trainer = XTrainer::new(xcoder.init(0, &device)?, config)?;
    let x = from_host(uniform_rows(a.batch, a.d_in, 7), a.batch, a.d_in, &device);
    let y = from_host(uniform_rows(a.batch, a.d_out, 8), a.batch, a.d_out, &device);
    let seconds = time_steps(&a.run, || {
        Ok(scalar(trainer.step_on(x.clone(), y.clone()).l0))
    })?;
    report(
        &a.run,
        &format!("{} transcoder", a.arch.name()),
        seconds,
        None,
        serde_json::json!({
            "arch": a.arch.name(), "kind": "transcoder", "d_in": a.d_in, "d_out": a.d_out,
            "d_sae": a.d_sae, "batch": a.batch, "k": a.k,
        }),
    );
    Ok(())
}

fn bench_gpt(a: &BenchGptArgs) -> CliResult {
    let device = a.run.device.device()?;
    if a.heads == 0 || !a.d_model.is_multiple_of(a.heads) {
        return Err(format!(
            "--d-model {} must be a positive multiple of --heads {}",
            a.d_model, a.heads
        )
        .into());
    }
    let config = othello_gpt_config(a.board, a.layers, a.d_model, a.heads);
    config.validate()?;
    kibitzer::gpt::check_training_memory(
        format!(
            "--layers {} --d-model {} --heads {} with --batch {}",
            a.layers, a.d_model, a.heads, a.batch
        ),
        &config,
        a.batch,
        config.n_ctx,
        kibitzer_sae::device::is_host(&device),
    )?;
    let (seq, vocab) = (config.n_ctx, config.d_vocab);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let sequences: Vec<Vec<u32>> = (0..a.batch)
        .map(|_| {
            (0..seq)
                .map(|_| rng.random_range(1..vocab as u32))
                .collect()
        })
        .collect();
    let tokens_per_step = (a.batch * seq) as f64;
    let (what, seconds) = if a.train {
        let data = TokenDataset::new(&sequences, None, vocab, seq)?;
        let train = GptTrainConfig {
            steps: (a.run.steps + 2) as u64,
            batch_size: a.batch,
            warmup_steps: 0,
            eval_every: 0,
            checkpoint_every: 0,
            ..GptTrainConfig::default()
        };
        let mut trainer = GptTrainer::new(Gpt::new(config, &device)?, train)?;
        let seconds = time_steps(&a.run, || Ok(trainer.train_step(&data)?.train_loss))?;
        ("GPT training", seconds)
    } else {
        let model = Gpt::new(config, &device)?;
        let tokens = model.tokens(&sequences)?;
        let seconds = time_steps(&a.run, || {
            let logits = model.run_with_hooks(&tokens, &mut Hooks::new())?;
            Ok(scalar(logits.slice([0..1, 0..1, 0..1]).reshape([1])))
        })?;
        ("GPT forward", seconds)
    };
    report(
        &a.run,
        what,
        seconds,
        Some(("tokens_per_s", tokens_per_step)),
        serde_json::json!({
            "kind": if a.train { "gpt_train" } else { "gpt_forward" },
            "layers": a.layers, "d_model": a.d_model, "heads": a.heads,
            "context": seq, "batch": a.batch,
        }),
    );
    Ok(())
}

/// Uniform values in [-1, 1), seeded.
fn uniform_rows(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..rows * cols)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect()
}
