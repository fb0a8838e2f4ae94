//! `kibitzer sae ...`: synthetic activations, training (one dictionary or a
//! grid from one pass over the data), evaluation.

use super::CliResult;
use clap::{Args, Subcommand, ValueEnum};
use kibitzer_sae::train::{DictTrainer, PAnneal, RunOptions, Sweep, SweepMember, TrainConfig};
use kibitzer_sae::{Architecture, DeviceChoice, Sae, SaeConfig};
use kibitzer_store::{Dtype, ReaderConfig, Store};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum SaeCommand {
    /// Write a store of synthetic activations: sparse non-negative
    /// combinations of known unit directions, with the true dictionary saved
    /// beside them for MMCS.
    Synth(SynthArgs),
    /// Train one dictionary, or a grid of them from one pass over the data
    /// (comma-separated values of --d-sae, --l1, --k make the grid).
    Train(TrainArgs),
    /// Evaluate a saved dictionary on activations; prints JSON.
    Eval(EvalArgs),
    /// Planted-dictionary recovery: synthetic activations with a known
    /// dictionary, one SAE of every architecture, and how well each found it.
    Planted(super::planted::PlantedArgs),
}

pub fn run(cmd: SaeCommand) -> CliResult {
    match cmd {
        SaeCommand::Synth(a) => synth(&a),
        SaeCommand::Train(a) => train(&a).map(|_| ()),
        SaeCommand::Eval(a) => eval(&a),
        SaeCommand::Planted(a) => super::planted::run(&a),
    }
}

/// Disk precision of the activations.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
    Bf16,
}

impl From<DtypeArg> for Dtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => Dtype::F32,
            DtypeArg::F16 => Dtype::F16,
            DtypeArg::Bf16 => Dtype::Bf16,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// Output directory (a new activation store).
    #[arg(long)]
    pub out: PathBuf,
    /// Rows to write.
    #[arg(long, default_value_t = 200_000)]
    pub rows: usize,
    /// Width of each row.
    #[arg(long, default_value_t = 64)]
    pub d_in: usize,
    /// Number of planted features.
    #[arg(long, default_value_t = 512)]
    pub features: usize,
    /// Mean number of planted features active per row.
    #[arg(long, default_value_t = 5.0)]
    pub mean_active: f64,
    /// Power-law exponent of the feature frequencies (feature j fires with
    /// probability proportional to (j+1)^-exponent; 0: all equally often).
    #[arg(long, default_value_t = 1.0)]
    pub frequency_exponent: f64,
    /// Standard deviation of the Gaussian noise added to each value.
    #[arg(long, default_value_t = 0.01)]
    pub noise: f64,
    /// Disk precision.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Rows per shard file.
    #[arg(long, default_value_t = 65_536)]
    pub rows_per_shard: usize,
    /// Seed of the planted dictionary and the rows.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing store in --out.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn synth(a: &SynthArgs) -> CliResult {
    let config = kibitzer_sae::synth::SyntheticConfig {
        d_in: a.d_in,
        n_features: a.features,
        mean_active_features: a.mean_active,
        frequency_exponent: a.frequency_exponent,
        noise_std: a.noise,
        seed: a.seed,
        ..Default::default()
    };
    let written = kibitzer_sae::synth::write_store(
        &config,
        &a.out,
        a.rows,
        a.dtype.into(),
        a.rows_per_shard,
        a.overwrite,
    )?;
    println!(
        "wrote {} rows of width {} to {} (true dictionary: {})",
        written.rows,
        a.d_in,
        a.out.display(),
        written.true_dictionary.display()
    );
    Ok(())
}

/// Architecture names on the command line.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ArchArg {
    Standard,
    Gated,
    Panneal,
    Topk,
    Batchtopk,
    Jumprelu,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Architecture.
    #[arg(long, value_enum)]
    pub arch: ArchArg,
    /// Number of features (comma-separated for a grid).
    #[arg(long, value_delimiter = ',', required = true)]
    pub d_sae: Vec<usize>,
    /// TopK/BatchTopK: active features per row (comma-separated for a grid).
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<usize>,
    /// Sparsity coefficient: L1/Lp for standard, gated and panneal, L0 for
    /// JumpReLU (comma-separated for a grid).
    #[arg(long, value_delimiter = ',')]
    pub l1: Vec<f64>,
    /// JumpReLU: bandwidth of the straight-through estimator.
    #[arg(long, default_value_t = 0.001)]
    pub bandwidth: f64,
    /// p-annealing: final exponent.
    #[arg(long, default_value_t = 0.2)]
    pub p_end: f64,
    /// Activation store to train on.
    #[arg(long)]
    pub activations: PathBuf,
    /// Output directory (one sub-directory per dictionary).
    #[arg(long)]
    pub out: PathBuf,
    /// TOML file with training settings (any field of the training config);
    /// flags given on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seed of initialisation and data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue from the last checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Optimiser steps (default: one pass over the store).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Rows per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (default: the architecture's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: usize,
    /// Log every N steps.
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// Memory for shuffling activations, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub shuffle_memory_mib: usize,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn architecture(a: &TrainArgs, k: Option<usize>) -> Architecture {
    match a.arch {
        ArchArg::Standard | ArchArg::Panneal => Architecture::Standard,
        ArchArg::Gated => Architecture::Gated,
        ArchArg::Topk => Architecture::TopK { k: k.unwrap_or(32) },
        ArchArg::Batchtopk => Architecture::BatchTopK { k: k.unwrap_or(32) },
        ArchArg::Jumprelu => Architecture::JumpRelu {
            bandwidth: a.bandwidth,
        },
    }
}

fn base_config(
    a: &TrainArgs,
    arch: &Architecture,
    d_sae: usize,
    steps: usize,
) -> Result<TrainConfig, Box<dyn std::error::Error>> {
    let mut c = TrainConfig::for_architecture(arch, d_sae, steps);
    if let Some(path) = &a.config {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Fields of the file override the architecture defaults.
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let defaults = toml::Table::try_from(&c)?;
        for (k, v) in defaults {
            table.entry(k).or_insert(v);
        }
        c = table
            .try_into()
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    c.steps = steps;
    c.seed = a.seed;
    if let Some(b) = a.batch_size {
        c.batch_size = b;
    }
    if let Some(lr) = a.lr {
        c.lr = lr;
    }
    if a.arch == ArchArg::Panneal {
        c.p_anneal = Some(PAnneal {
            p_end: a.p_end,
            ..PAnneal::default()
        });
    }
    Ok(c)
}

/// The grid of dictionaries the arguments ask for, with readable names.
pub fn members(
    a: &TrainArgs,
    d_in: usize,
    steps: usize,
) -> Result<Vec<SweepMember>, Box<dyn std::error::Error>> {
    let device = a.device.device()?;
    let ks: Vec<Option<usize>> = if a.k.is_empty() {
        vec![None]
    } else {
        a.k.iter().map(|&k| Some(k)).collect()
    };
    let l1s: Vec<Option<f64>> = if a.l1.is_empty() {
        vec![None]
    } else {
        a.l1.iter().map(|&c| Some(c)).collect()
    };
    let uses_k = matches!(a.arch, ArchArg::Topk | ArchArg::Batchtopk);
    if !uses_k && !a.k.is_empty() {
        return Err(format!("--k applies to topk and batchtopk, not {:?}", a.arch).into());
    }
    if uses_k && !a.l1.is_empty() {
        return Err("--l1 does not apply to topk and batchtopk (their sparsity is k)".into());
    }
    let mut out = Vec::new();
    let mut index = 0u64;
    for &d_sae in &a.d_sae {
        for &k in &ks {
            for &l1 in &l1s {
                let arch = architecture(a, k);
                let mut config = base_config(a, &arch, d_sae, steps)?;
                if let Some(c) = l1 {
                    config.sparsity_coefficient = c;
                }
                config.seed = a.seed.wrapping_add(index);
                let mut name = format!("{}-d{d_sae}", format!("{:?}", a.arch).to_lowercase());
                if let Some(k) = k {
                    name.push_str(&format!("-k{k}"));
                }
                if let Some(c) = l1 {
                    name.push_str(&format!("-l1_{c}"));
                }
                let sae = Sae::init(SaeConfig::new(arch, d_in, d_sae), config.seed, &device);
                let trainer = DictTrainer::new(sae, config)?;
                out.push(SweepMember { name, trainer });
                index += 1;
            }
        }
    }
    Ok(out)
}

fn reader_config(a: &TrainArgs) -> ReaderConfig {
    ReaderConfig {
        seed: a.seed,
        memory_ceiling_bytes: a.shuffle_memory_mib.saturating_mul(1 << 20),
        shuffle: true,
        cycle: true,
    }
}

/// Trains what `a` asks for and returns the output directory's members.
pub fn train(a: &TrainArgs) -> Result<Sweep, Box<dyn std::error::Error>> {
    let store = Store::open(&a.activations)?;
    let device = a.device.device()?;
    let options = RunOptions {
        checkpoint_every: a.checkpoint_every,
        log_every: a.log_every,
        progress: !a.quiet,
        stop_after: None,
        out_dir: a.out.clone(),
    };
    let (mut sweep, mut reader) = if a.resume {
        let (sweep, position) = Sweep::resume(&a.out, &device)?;
        let position = serde_json::from_value(position).map_err(|e| {
            format!(
                "{}: the checkpoint's reader position is unreadable: {e}",
                a.out.display()
            )
        })?;
        let reader = store.reader_at(reader_config(a), position)?;
        eprintln!("resuming {} at step {}", a.out.display(), sweep.step);
        (sweep, reader)
    } else {
        if a.out.join("checkpoint.json").exists() {
            return Err(format!(
                "{} already holds a training run; pass --resume to continue it or choose another --out",
                a.out.display()
            )
            .into());
        }
        let batch = a.batch_size.unwrap_or(4096).max(1);
        let steps = a
            .steps
            .unwrap_or_else(|| (store.rows() as usize / batch).max(1));
        let sweep = Sweep::new(members(a, store.d_in(), steps)?, &device)?;
        (sweep, store.reader(reader_config(a))?)
    };
    let logs = sweep.run(&mut reader, &options)?;
    for (m, log) in sweep.members.iter().zip(&logs) {
        println!(
            "{}: step {}  loss {:.5}  mse {:.5}  L0 {:.2}  FVU {:.4}  dead {:.1}%  -> {}",
            m.name,
            log.step + 1,
            log.loss.loss,
            log.loss.mse,
            log.l0,
            log.fvu,
            100.0 * log.dead_fraction,
            a.out.join(&m.name).display()
        );
    }
    Ok(sweep)
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A saved dictionary (SAELens layout: cfg.json + sae_weights.safetensors).
    #[arg(long)]
    pub sae: PathBuf,
    /// Activation store.
    #[arg(long)]
    pub activations: PathBuf,
    /// Rows to evaluate on (default: the whole store).
    #[arg(long)]
    pub rows: Option<usize>,
    /// Rows per batch.
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Also write the metrics JSON and a feature-density histogram (SVG) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Metrics of a saved dictionary, with MMCS when the store has a planted
/// dictionary: the summary as JSON, and the per-feature frequencies.
pub fn evaluate(
    sae_dir: &Path,
    activations: &Path,
    rows: Option<usize>,
    batch: usize,
    choice: DeviceChoice,
) -> Result<(serde_json::Value, kibitzer_sae::metrics::Evaluation), Box<dyn std::error::Error>> {
    let device = choice.device()?;
    let sae = kibitzer_sae::saelens::load(sae_dir, &device)?;
    let store = Store::open(activations)?;
    let mut reader = store.reader(ReaderConfig {
        seed: 0,
        memory_ceiling_bytes: 1 << 30,
        shuffle: false,
        cycle: false,
    })?;
    let max_rows = rows.unwrap_or(store.rows() as usize);
    let evaluation = kibitzer_sae::metrics::evaluate(&sae, &mut reader, max_rows, batch, &device)?;
    let mut json = serde_json::to_value(&evaluation.metrics)?;
    if let Some(mmcs) = kibitzer_sae::synth::mmcs_against_store(&sae, activations)? {
        json["mmcs"] = serde_json::json!(mmcs);
    }
    Ok((json, evaluation))
}

pub fn eval(a: &EvalArgs) -> CliResult {
    let (json, evaluation) = evaluate(&a.sae, &a.activations, a.rows, a.batch_size, a.device)?;
    let text = serde_json::to_string_pretty(&json)?;
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        kibitzer_sae::io::atomic_write(&out.join("metrics.json"), text.as_bytes())?;
        let frequencies = serde_json::to_string(&evaluation.feature_frequencies)?;
        kibitzer_sae::io::atomic_write(
            &out.join("feature_frequencies.json"),
            frequencies.as_bytes(),
        )?;
        let svg = kibitzer_sae::metrics::density_histogram_svg(
            &evaluation.metrics,
            &format!("Feature density: {}", a.sae.display()),
        );
        kibitzer_sae::io::atomic_write(&out.join("feature_density.svg"), svg.as_bytes())?;
    }
    println!("{text}");
    Ok(())
}
