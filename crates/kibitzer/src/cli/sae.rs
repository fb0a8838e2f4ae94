//! `kibitzer sae ...`: synthetic activations, training (one dictionary or a
//! grid from one pass over the data), evaluation.

use super::CliResult;
use clap::{Args, Subcommand, ValueEnum};
use kibitzer_sae::train::{
    DictTrainer, PAnneal, RunOptions, Sweep, SweepMember, TrainConfig, TrainFlags,
};
use kibitzer_sae::{Architecture, DeviceChoice, Family, Sae, SaeConfig};
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
    if a.rows == 0 {
        return Err(
            "--rows 0: must be at least 1 (a store of no rows trains and evaluates nothing)".into(),
        );
    }
    // The planted directions (kept, copied into the saved file) and a
    // shard's rows (pending, encoded): checked before any is allocated.
    let shard_rows = a.rows.min(a.rows_per_shard.max(1));
    let needed = kibitzer_store::memory::f32_bytes(
        kibitzer_store::memory::product(&[3, a.features, a.d_in])
            .saturating_add(kibitzer_store::memory::product(&[3, shard_rows, a.d_in])),
    );
    kibitzer_store::memory::check(
        format!(
            "--d-in {} with --features {} and --rows-per-shard {}",
            a.d_in, a.features, a.rows_per_shard
        ),
        needed,
    )?;
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

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Architecture.
    #[arg(long, value_parser = super::family_parser(&Family::ALL))]
    pub arch: Family,
    /// Number of features (comma-separated for a grid).
    #[arg(long, value_delimiter = ',', required = true)]
    pub d_sae: Vec<usize>,
    /// TopK/BatchTopK/Matryoshka: active features per row (comma-separated
    /// for a grid).
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<usize>,
    /// Matryoshka: the nested prefix widths that each reconstruct on their
    /// own, ascending (comma-separated; d_sae is always the last level)
    /// [default: d_sae/64, d_sae/16, d_sae/4].
    #[arg(long, value_delimiter = ',')]
    pub matryoshka_widths: Vec<usize>,
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
    a.arch.architecture(k.unwrap_or(32), a.bandwidth)
}

fn base_config(
    a: &TrainArgs,
    arch: &Architecture,
    d_sae: usize,
    steps: usize,
) -> Result<TrainConfig, Box<dyn std::error::Error>> {
    let flags = TrainFlags {
        steps,
        seed: a.seed,
        batch_size: a.batch_size,
        lr: a.lr,
        sparsity_coefficient: None,
        p_anneal: (a.arch == Family::Panneal).then_some(PAnneal {
            p_end: a.p_end,
            ..PAnneal::default()
        }),
    };
    super::training_config(arch, d_sae, a.config.as_deref(), &flags)
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
    let uses_k = a.arch.uses_k();
    if !uses_k && !a.k.is_empty() {
        return Err(format!(
            "--k applies to topk, batchtopk and matryoshka, not {}",
            a.arch
        )
        .into());
    }
    if uses_k && !a.l1.is_empty() {
        return Err(
            "--l1 does not apply to topk, batchtopk and matryoshka (their sparsity is k)".into(),
        );
    }
    let mut planned = Vec::new();
    let mut index = 0u64;
    for &d_sae in &a.d_sae {
        for &k in &ks {
            for &l1 in &l1s {
                let arch = architecture(a, k);
                let mut config = base_config(a, &arch, d_sae, steps)?;
                if let Some(c) = l1 {
                    config.sparsity_coefficient = c;
                }
                if !a.matryoshka_widths.is_empty() {
                    config.matryoshka_widths = Some(a.matryoshka_widths.clone());
                }
                a.arch.apply_training_options(&mut config, d_sae);
                config.seed = a.seed.wrapping_add(index);
                let mut name = format!("{}-d{d_sae}", a.arch.name());
                if let Some(k) = k {
                    name.push_str(&format!("-k{k}"));
                }
                if let Some(c) = l1 {
                    name.push_str(&format!("-l1_{c}"));
                }
                planned.push((name, SaeConfig::new(arch, d_in, d_sae), config));
                index += 1;
            }
        }
    }
    // Every member is held in memory at once: check the grid's total before
    // the first dictionary is allocated.
    let shapes: Vec<SaeConfig> = planned.iter().map(|(_, sae, _)| sae.clone()).collect();
    let batch = planned.first().map_or(0, |(_, _, c)| c.batch_size);
    let needed =
        kibitzer_sae::train::memory_needed(&shapes, batch, kibitzer_sae::device::is_host(&device));
    kibitzer_store::memory::check(
        format!(
            "--d-sae {} ({} dictionar{} of width d_in {d_in} from the store, --batch-size {batch})",
            join_sizes(&a.d_sae),
            planned.len(),
            if planned.len() == 1 { "y" } else { "ies" }
        ),
        needed,
    )?;
    let mut out = Vec::new();
    for (name, sae_config, config) in planned {
        let sae = Sae::init(sae_config, config.seed, &device);
        let trainer = DictTrainer::new(sae, config)?;
        out.push(SweepMember { name, trainer });
    }
    Ok(out)
}

/// Sizes as a comma-separated flag value.
fn join_sizes(v: &[usize]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn reader_config(a: &TrainArgs) -> ReaderConfig {
    ReaderConfig {
        seed: a.seed,
        memory_ceiling_bytes: a.shuffle_memory_mib.saturating_mul(1 << 20),
        shuffle: true,
        cycle: true,
    }
}

/// Refuses flag values that would train a dictionary nothing could load (or
/// no dictionary at all), naming the flag. The library checks the same
/// values by field name ([`SaeConfig::validate`], [`TrainConfig::validate`]).
fn check_train_flags(a: &TrainArgs) -> Result<(), String> {
    if let Some(&d) = a.d_sae.iter().find(|&&d| d == 0) {
        return Err(format!(
            "--d-sae {d}: the number of features must be at least 1"
        ));
    }
    let min_d_sae = a.d_sae.iter().copied().min().unwrap_or(0);
    for &k in &a.k {
        if k == 0 {
            return Err("--k 0: at least one feature must be active per row".into());
        }
        if k > min_d_sae {
            return Err(format!(
                "--k {k} is larger than --d-sae {min_d_sae}: a row cannot have more active features than the dictionary has"
            ));
        }
    }
    if !a.matryoshka_widths.is_empty() {
        if a.arch != Family::Matryoshka {
            return Err(format!(
                "--matryoshka-widths applies to --arch matryoshka, not {}",
                a.arch
            ));
        }
        let w = &a.matryoshka_widths;
        if w[0] == 0 || w.windows(2).any(|p| p[0] >= p[1]) {
            return Err(format!(
                "--matryoshka-widths {}: must be strictly increasing widths of at least 1",
                join_sizes(w)
            ));
        }
        if let Some(&big) = w.iter().find(|&&x| x > min_d_sae) {
            return Err(format!(
                "--matryoshka-widths: {big} is larger than --d-sae {min_d_sae}"
            ));
        }
    }
    if a.arch == Family::Jumprelu && !(a.bandwidth.is_finite() && a.bandwidth > 0.0) {
        return Err(format!(
            "--bandwidth {}: must be a positive number (the width of JumpReLU's straight-through kernel, e.g. 0.001)",
            a.bandwidth
        ));
    }
    if a.batch_size == Some(0) {
        return Err("--batch-size 0: must be at least 1".into());
    }
    if a.steps == Some(0) {
        return Err("--steps 0: must be at least 1".into());
    }
    if let Some(lr) = a.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("--lr {lr}: must be a positive number"));
        }
    }
    Ok(())
}

/// Refuses a `--resume` whose flags ask for a different shape or schedule
/// than the run in `out` was started with: the checkpoint's values win, so
/// silently ignoring a changed flag would train something else than asked.
fn check_resume_flags(a: &TrainArgs, sweep: &Sweep) -> Result<(), String> {
    let sweep_file = a.out.join("sweep.json");
    let differs = |flag: &str, given: String, run: String| {
        format!(
            "--resume: {flag} {given} differs from the run's {run} (recorded in {}); a resumed run keeps the shape and schedule it was started with: pass the run's values, or start a new run in another --out",
            sweep_file.display()
        )
    };
    let mut run_d_sae: Vec<usize> = sweep
        .members
        .iter()
        .map(|m| m.trainer.dict.config.d_sae)
        .collect();
    run_d_sae.sort_unstable();
    run_d_sae.dedup();
    let mut given_d_sae = a.d_sae.clone();
    given_d_sae.sort_unstable();
    given_d_sae.dedup();
    let join = |v: &[usize]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if run_d_sae != given_d_sae {
        return Err(differs(
            "--d-sae",
            join(&given_d_sae),
            format!("d_sae {}", join(&run_d_sae)),
        ));
    }
    let run_arch =
        |m: &SweepMember| Family::of(&m.trainer.dict.config.architecture, &m.trainer.config);
    if let Some(m) = sweep.members.iter().find(|m| run_arch(m) != a.arch) {
        return Err(differs(
            "--arch",
            a.arch.to_string(),
            format!("architecture {}", run_arch(m)),
        ));
    }
    if !a.k.is_empty() {
        let mut run_k: Vec<usize> = sweep
            .members
            .iter()
            .filter_map(|m| match m.trainer.dict.config.architecture {
                Architecture::TopK { k } | Architecture::BatchTopK { k } => Some(k),
                _ => None,
            })
            .collect();
        run_k.sort_unstable();
        run_k.dedup();
        let mut given_k = a.k.clone();
        given_k.sort_unstable();
        given_k.dedup();
        if run_k != given_k {
            return Err(differs(
                "--k",
                join(&given_k),
                format!("k {}", join(&run_k)),
            ));
        }
    }
    for m in &sweep.members {
        let t = &m.trainer.config;
        if let Some(lr) = a.lr {
            if lr != t.lr {
                return Err(differs(
                    "--lr",
                    lr.to_string(),
                    format!("lr {} ({})", t.lr, m.name),
                ));
            }
        }
        if let Some(b) = a.batch_size {
            if b != t.batch_size {
                return Err(differs(
                    "--batch-size",
                    b.to_string(),
                    format!("batch size {}", t.batch_size),
                ));
            }
        }
        if let Some(steps) = a.steps {
            if steps != t.steps {
                return Err(format!(
                    "{} (the trainer cannot extend or shorten a run: its learning-rate warm-up and decay are fixed by the step count it started with)",
                    differs("--steps", steps.to_string(), format!("steps {}", t.steps))
                ));
            }
        }
    }
    Ok(())
}

/// Trains what `a` asks for and returns the output directory's members.
pub fn train(a: &TrainArgs) -> Result<Sweep, Box<dyn std::error::Error>> {
    check_train_flags(a)?;
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
        check_resume_flags(a, &sweep)?;
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
    // A batch's rows, features and reconstruction, checked before the
    // first batch is allocated.
    let c = &sae.config;
    let needed = kibitzer_store::memory::f32_bytes(kibitzer_store::memory::product(&[
        batch,
        c.d_sae.saturating_add(c.d_in).saturating_add(c.d_out),
        3,
    ]));
    kibitzer_store::memory::check(
        format!("--batch-size {batch} (d_sae {}, d_in {})", c.d_sae, c.d_in),
        needed,
    )?;
    let store = Store::open(activations)?;
    let mut reader = store.reader(ReaderConfig::in_order())?;
    let max_rows = rows.unwrap_or(store.rows() as usize);
    let evaluation = kibitzer_sae::metrics::evaluate(&sae, &mut reader, max_rows, batch, &device)?;
    let mut json = serde_json::to_value(&evaluation.metrics)?;
    if let Some(mmcs) = kibitzer_sae::synth::mmcs_against_store(&sae, activations)? {
        json["mmcs"] = serde_json::json!(mmcs);
    }
    Ok((json, evaluation))
}

pub fn eval(a: &EvalArgs) -> CliResult {
    if a.batch_size == 0 {
        return Err("--batch-size 0: must be at least 1".into());
    }
    if a.rows == Some(0) {
        return Err("--rows 0: must be at least 1 (omit it to evaluate on the whole store)".into());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn args(extra: &[&str]) -> TrainArgs {
        let mut argv = vec!["t", "--d-sae", "64", "--activations", "a", "--out", "o"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().train
    }

    #[test]
    fn config_file_keeps_topk_without_gradient_clipping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "lr = 0.001\n").unwrap();
        let a = args(&["--arch", "topk", "--config", path.to_str().unwrap()]);
        let arch = architecture(&a, None);
        let c = base_config(&a, &arch, 64, 100).unwrap();
        assert_eq!(c.lr, 0.001);
        assert_eq!(c.grad_clip_norm, None);
    }

    #[test]
    fn matryoshka_takes_default_or_given_widths_and_refuses_bad_ones() {
        let widths = |extra: &[&str]| {
            let mut argv = vec!["--arch", "matryoshka", "--k", "4"];
            argv.extend_from_slice(extra);
            let mut a = args(&argv);
            a.d_sae = vec![256];
            check_train_flags(&a)?;
            let m = members(&a, 8, 10).map_err(|e| e.to_string())?;
            let t = &m[0].trainer;
            assert_eq!(
                Family::of(&t.dict.config.architecture, &t.config),
                Family::Matryoshka
            );
            Ok::<_, String>(t.config.matryoshka_widths.clone())
        };
        assert_eq!(widths(&[]).unwrap(), Some(vec![4, 16, 64]));
        assert_eq!(
            widths(&["--matryoshka-widths", "8,32"]).unwrap(),
            Some(vec![8, 32])
        );
        let e = widths(&["--matryoshka-widths", "32,8"]).unwrap_err();
        assert!(e.contains("strictly increasing"), "{e}");
        let e = widths(&["--matryoshka-widths", "300"]).unwrap_err();
        assert!(e.contains("larger than --d-sae 256"), "{e}");
        let a = args(&["--arch", "batchtopk", "--matryoshka-widths", "8"]);
        let e = check_train_flags(&a).unwrap_err();
        assert!(e.contains("applies to --arch matryoshka"), "{e}");
    }

    #[test]
    fn every_family_name_parses_and_names_the_runs() {
        for f in Family::ALL {
            let a = args(&["--arch", f.name()]);
            assert_eq!(a.arch, f);
        }
        let e = Cli::try_parse_from(["t", "--arch", "relu", "--d-sae", "8"])
            .err()
            .expect("unknown name refused")
            .to_string();
        assert!(
            e.contains("standard, panneal, gated, topk, batchtopk, jumprelu"),
            "{e}"
        );
    }
}
