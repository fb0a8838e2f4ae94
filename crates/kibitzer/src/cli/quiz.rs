//! `kibitzer quiz ...`: reference 004 from the command line. Grid quizzes
//! (kibitzer-quizzes) are generated into a file, a culture-style GPT is
//! trained on them with the loss on the fourth grid only, scored by
//! autoregressive exact-grid accuracy per task, and interpreted:
//! attention and MLP ablations, layer 0's patterns, an SAE on the MLP that
//! carries "contact", the features at the transform cell, steering.

use super::CliResult;
use super::sae::DtypeArg;
use burn::tensor::{Int, Tensor};
use clap::{Args, Subcommand};
use kibitzer::quiz::{
    self, AccuracyTable, LossOn, MultiplierConfig, Run, TransformCell, culture_gpt_config,
};
use kibitzer_hooks::{
    ExampleSource, Examples, HarvestConfig, HookError, HookSite, TokenSequences, harvest,
};
use kibitzer_models::{Gpt, GptTrainConfig, GptTrainer, Parameterized, TokenDataset};
use kibitzer_quizzes::{
    Layout, Quiz, QuizFileHeader, QuizGenerator, TaskKind, VOCAB, read_quiz_file, render,
    write_quiz_file,
};
use kibitzer_sae::{DeviceChoice, Dictionary};
use kibitzer_store::{StoreConfig, Xxh64};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const RUN_FILE: &str = "run.json";
const TRAINING_FILE: &str = "training.json";

#[derive(Subcommand, Debug)]
pub enum QuizCommand {
    /// Generate quizzes (seeded) into a quiz file (JSON lines).
    Generate(GenerateArgs),
    /// Render quizzes as an HTML page, optionally with the grids a model
    /// writes (and what it writes with an MLP ablated).
    Show(ShowArgs),
    /// Train a culture-style GPT on a quiz file (loss on the fourth grid,
    /// or on both transformed grids with --loss-on answers).
    Train(TrainArgs),
    /// Exact-grid accuracy per task of a saved quiz GPT.
    Eval(EvalArgs),
    /// Experiments 1-3: attention-layer ablation, layer 0's patterns and
    /// direct path, per-task MLP ablation.
    Ablate(AblateArgs),
    /// Activations of a quiz GPT at a hook site into an activation store.
    Harvest(HarvestArgs),
    /// Experiments 4-6: an SAE spliced into the MLP, the features at the
    /// transform cells, feature recovery and steering.
    Features(FeaturesArgs),
}

/// Runs a `quiz` command.
pub fn run(cmd: QuizCommand) -> CliResult {
    let result = match cmd {
        QuizCommand::Generate(a) => generate(&a),
        QuizCommand::Show(a) => show(&a),
        QuizCommand::Train(a) => train(&a),
        QuizCommand::Eval(a) => eval(&a),
        QuizCommand::Ablate(a) => ablate(&a),
        QuizCommand::Harvest(a) => harvest_store(&a),
        QuizCommand::Features(a) => features(&a),
    };
    result.map_err(|error| error.to_string().into())
}

type Res<T> = Result<T, Box<dyn Error>>;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Output quiz file (JSON lines).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of quizzes.
    #[arg(long)]
    pub count: u64,
    /// Tasks, comma separated [default: all eight].
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<TaskKind>,
    /// Grid size.
    #[arg(long, default_value_t = kibitzer_quizzes::DEFAULT_GRID_SIZE)]
    pub size: usize,
    /// Seed: quiz i depends only on the seed, i, the tasks and the size.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Index of the first quiz (another range of the same seed's stream).
    #[arg(long, default_value_t = 0)]
    pub first: u64,
}

fn tasks_or_all(tasks: &[TaskKind]) -> Vec<TaskKind> {
    if tasks.is_empty() {
        TaskKind::ALL.to_vec()
    } else {
        tasks.to_vec()
    }
}

/// `kibitzer quiz generate`.
pub fn generate(a: &GenerateArgs) -> CliResult {
    if a.count == 0 {
        return Err("--count must be at least 1".into());
    }
    let tasks = tasks_or_all(&a.tasks);
    let generator = QuizGenerator::new(a.size, &tasks, a.seed)?;
    let quizzes = generator.generate(a.first..a.first + a.count);
    let header = QuizFileHeader::new(a.size, &tasks, a.seed, quizzes.len() as u64);
    write_quiz_file(&a.out, &header, &quizzes)?;
    println!(
        "wrote {} quizzes of {} ({}x{} grids, seed {}) to {}",
        quizzes.len(),
        tasks
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
        a.size,
        a.size,
        a.seed,
        a.out.display()
    );
    Ok(())
}

/// Reads a quiz file and its layout.
fn open_quizzes(path: &Path, max: Option<usize>) -> Res<(Layout, Vec<Quiz>)> {
    let (header, mut quizzes) = read_quiz_file(path)?;
    if let Some(max) = max {
        quizzes.truncate(max);
    }
    if quizzes.is_empty() {
        return Err(format!("{}: holds no quizzes", path.display()).into());
    }
    Ok((Layout::new(header.grid_size)?, quizzes))
}

/// Loads a saved quiz GPT and checks it reads quizzes of `layout`.
fn load_model(dir: &Path, layout: &Layout, device: &burn::tensor::Device) -> Res<Gpt> {
    let model = Gpt::load_dir(dir, device)?;
    quiz::check_model(&model, layout).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(model)
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Quiz file.
    #[arg(long)]
    pub quizzes: PathBuf,
    /// Output HTML page.
    #[arg(long)]
    pub out: PathBuf,
    /// Show the first N quizzes.
    #[arg(long, default_value_t = 16)]
    pub max: usize,
    /// Only quizzes of this task.
    #[arg(long)]
    pub task: Option<TaskKind>,
    /// A saved quiz GPT: show the grid it writes (wrong cells marked).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// With --model: zero-ablate this block's MLP output while writing.
    #[arg(long)]
    pub ablate_mlp: Option<usize>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// `kibitzer quiz show`.
pub fn show(a: &ShowArgs) -> CliResult {
    let (layout, quizzes) = open_quizzes(&a.quizzes, None)?;
    let picked: Vec<Quiz> = quizzes
        .into_iter()
        .filter(|q| a.task.is_none_or(|t| q.task == t))
        .take(a.max)
        .collect();
    if picked.is_empty() {
        return Err(format!("{}: no quizzes of that task", a.quizzes.display()).into());
    }
    let written: Vec<Option<kibitzer_quizzes::Grid>> = match &a.model {
        None => vec![None; picked.len()],
        Some(dir) => {
            let device = a.device.device()?;
            let model = load_model(dir, &layout, &device)?;
            let run = match a.ablate_mlp {
                Some(l) if l >= model.config().n_layers => {
                    return Err(format!(
                        "--ablate-mlp {l}: the model has {} blocks",
                        model.config().n_layers
                    )
                    .into());
                }
                Some(l) => Run::Zero(vec![HookSite::mlp_out(l)]),
                None => Run::Clean,
            };
            quiz::written_grids(&model, &layout, &picked, &run, 16)?
                .into_iter()
                .map(|w| Some(w.grid))
                .collect()
        }
    };
    let items: Vec<(Quiz, Option<kibitzer_quizzes::Grid>)> =
        picked.into_iter().zip(written).collect();
    let title = format!("Quizzes of {}", a.quizzes.display());
    kibitzer_sae::io::atomic_write(&a.out, render::quizzes_html(&items, &title).as_bytes())?;
    println!("wrote {} quizzes to {}", items.len(), a.out.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Quiz file to train on (`kibitzer quiz generate`); the last
    /// --eval-quizzes are held out.
    #[arg(long)]
    pub quizzes: PathBuf,
    /// Output directory: the model (config.json, model.safetensors), the
    /// checkpoint, run.json and training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Blocks [default: 12, reference 004's].
    #[arg(long, default_value_t = 12)]
    pub layers: usize,
    /// Residual stream width [default: 512].
    #[arg(long, default_value_t = 512)]
    pub d_model: usize,
    /// Attention heads [default: 8].
    #[arg(long, default_value_t = 8)]
    pub heads: usize,
    /// MLP width [default: 4 x --d-model].
    #[arg(long)]
    pub d_mlp: Option<usize>,
    /// Optimiser steps; with --resume, extends (or shortens) the run.
    #[arg(long, default_value_t = 5000)]
    pub steps: u64,
    /// Quizzes per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW, warm-up, cosine decay to 10%).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Warm-up steps [default: a tenth of --steps, at most 200].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// What the training loss scores: `final` (f(B), the grid the model
    /// writes), `answers` (f(A) and f(B)) or `all` (every token). The
    /// held-out loss is always the final grid's.
    #[arg(long, default_value_t = LossOn::Final)]
    pub loss_on: LossOn,
    /// Held-out quizzes: the last N of the file.
    #[arg(long, default_value_t = 500)]
    pub eval_quizzes: usize,
    /// Evaluate the held-out loss every N steps (0: only at the end).
    #[arg(long, default_value_t = 250)]
    pub eval_every: u64,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 250)]
    pub checkpoint_every: u64,
    /// Seed of the weights and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Continue the run in --out from its checkpoint (same quiz file).
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a run trains on, checked on --resume.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunData {
    quizzes: PathBuf,
    checksum: String,
    count: usize,
    grid_size: usize,
    train_quizzes: usize,
    eval_quizzes: usize,
    /// Runs from before `--loss-on` scored the final grid.
    #[serde(default)]
    loss_on: LossOn,
}

fn quiz_checksum(quizzes: &[Quiz]) -> String {
    let mut h = Xxh64::new();
    for q in quizzes {
        h.update(q.task.name().as_bytes());
        for t in q.tokens() {
            h.update(&[t as u8]);
        }
    }
    format!("{:016x}", h.digest())
}

/// A dataset of quiz sequences scored on the grids `loss_on` names.
fn dataset(quizzes: &[Quiz], layout: &Layout, loss_on: LossOn) -> Res<TokenDataset> {
    let seqs = quiz::sequences(quizzes, layout)?;
    Ok(TokenDataset::new(&seqs, None, VOCAB, layout.seq_len())?
        .with_scored_targets(loss_on.targets(layout))?)
}

/// `kibitzer quiz train`.
pub fn train(a: &TrainArgs) -> CliResult {
    let device = a.device.device()?;
    let (layout, quizzes) = open_quizzes(&a.quizzes, None)?;
    let checkpoint = a.out.join(CHECKPOINT_FILE);
    let run_file = a.out.join(RUN_FILE);
    if a.eval_quizzes >= quizzes.len() {
        return Err(format!(
            "--eval-quizzes {} leaves nothing to train on: {} holds {} quizzes",
            a.eval_quizzes,
            a.quizzes.display(),
            quizzes.len()
        )
        .into());
    }
    let run = RunData {
        quizzes: a.quizzes.clone(),
        checksum: quiz_checksum(&quizzes),
        count: quizzes.len(),
        grid_size: layout.grid_size,
        train_quizzes: quizzes.len() - a.eval_quizzes,
        eval_quizzes: a.eval_quizzes,
        loss_on: a.loss_on,
    };
    let mut trainer = if a.resume {
        if !checkpoint.exists() {
            return Err(format!(
                "{}: no checkpoint to resume ({CHECKPOINT_FILE} is missing); start without --resume",
                a.out.display()
            )
            .into());
        }
        let text = std::fs::read_to_string(&run_file)
            .map_err(|e| format!("{}: {e}", run_file.display()))?;
        let saved: RunData =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", run_file.display()))?;
        if saved.loss_on != run.loss_on {
            return Err(format!(
                "{}: the run's loss scores --loss-on {}, not {}",
                run_file.display(),
                saved.loss_on,
                run.loss_on
            )
            .into());
        }
        if saved.checksum != run.checksum || saved.eval_quizzes != run.eval_quizzes {
            return Err(format!(
                "{}: the run trained on {} ({} quizzes, checksum {}, {} held out); --quizzes {} has {} quizzes, checksum {}, {} held out",
                run_file.display(),
                saved.quizzes.display(),
                saved.count,
                saved.checksum,
                saved.eval_quizzes,
                a.quizzes.display(),
                run.count,
                run.checksum,
                run.eval_quizzes
            )
            .into());
        }
        let mut t = GptTrainer::resume(&checkpoint, &device, Some(a.steps))?;
        t.config.eval_every = a.eval_every;
        t.config.checkpoint_every = a.checkpoint_every;
        eprintln!(
            "resuming {} at step {} of {}",
            a.out.display(),
            t.step_count(),
            a.steps
        );
        t
    } else {
        if checkpoint.exists() {
            return Err(format!(
                "{} already holds a training run; pass --resume to continue it or choose another --out",
                a.out.display()
            )
            .into());
        }
        if a.heads == 0 || !a.d_model.is_multiple_of(a.heads) {
            return Err(format!(
                "--d-model {} must be a positive multiple of --heads {}",
                a.d_model, a.heads
            )
            .into());
        }
        if a.steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        let config = culture_gpt_config(
            &layout,
            a.layers,
            a.d_model,
            a.heads,
            a.d_mlp.unwrap_or(4 * a.d_model),
            a.seed,
        );
        let train = GptTrainConfig {
            steps: a.steps,
            batch_size: a.batch_size,
            lr: a.lr,
            warmup_steps: a.warmup.unwrap_or((a.steps / 10).min(200)),
            eval_every: a.eval_every,
            eval_batch_size: 32,
            checkpoint_every: a.checkpoint_every,
            seed: a.seed,
            ..GptTrainConfig::default()
        };
        kibitzer::gpt::check_training_memory(
            format!(
                "--layers {} --d-model {} --d-mlp {} --heads {} with --batch-size {}",
                a.layers, a.d_model, config.d_mlp, a.heads, a.batch_size
            ),
            &config,
            a.batch_size,
            config.n_ctx,
            kibitzer_sae::device::is_host(&device),
        )?;
        GptTrainer::new(Gpt::new(config, &device)?, train)?
    };
    let (train_q, eval_q) = quizzes.split_at(run.train_quizzes);
    let data = dataset(train_q, &layout, a.loss_on)?;
    let eval = dataset(eval_q, &layout, LossOn::Final)?;
    if !a.resume {
        std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
        kibitzer_sae::io::atomic_write(&run_file, serde_json::to_string_pretty(&run)?.as_bytes())?;
    }
    let history = trainer.train(&data, Some(&eval), Some(&checkpoint), !a.quiet)?;
    trainer.model.save_transformer_lens(&a.out)?;
    let scores = quiz::score(&trainer.model, &layout, eval_q, &Run::Clean, 32)?;
    let table = AccuracyTable::new(eval_q, &scores);
    let summary = serde_json::json!({
        "run": run,
        "model": trainer.model.config(),
        "parameters": trainer.model.num_params(),
        "train": trainer.config,
        "final": history.last(),
        "uniform_loss": (VOCAB as f64).ln(),
        "held_out": table,
        "history": history,
    });
    kibitzer_sae::io::atomic_write(
        &a.out.join(TRAINING_FILE),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    println!("{}", table.markdown());
    println!(
        "step {}: held-out final-grid loss {} (uniform {:.4}), exact grids {:.3} -> {}",
        trainer.step_count(),
        history
            .last()
            .and_then(|l| l.eval_loss)
            .map_or_else(|| "-".into(), |e| format!("{e:.4}")),
        (VOCAB as f64).ln(),
        table.overall.accuracy,
        a.out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A saved quiz GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Quiz file (of the model's grid size).
    #[arg(long)]
    pub quizzes: PathBuf,
    /// Score the first N quizzes only.
    #[arg(long)]
    pub max_quizzes: Option<usize>,
    /// Quizzes per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Zero-ablate these blocks' MLP outputs (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub ablate_mlp: Vec<usize>,
    /// Zero-ablate these blocks' attention outputs (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub ablate_attn: Vec<usize>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn check_layers(layers: &[usize], n: usize, flag: &str) -> Res<()> {
    match layers.iter().find(|&&l| l >= n) {
        Some(l) => Err(format!("{flag} {l}: the model has {n} blocks (0..{n})").into()),
        None => Ok(()),
    }
}

/// `kibitzer quiz eval`.
pub fn eval(a: &EvalArgs) -> CliResult {
    if a.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let device = a.device.device()?;
    let (layout, quizzes) = open_quizzes(&a.quizzes, a.max_quizzes)?;
    let model = load_model(&a.model, &layout, &device)?;
    let n = model.config().n_layers;
    check_layers(&a.ablate_mlp, n, "--ablate-mlp")?;
    check_layers(&a.ablate_attn, n, "--ablate-attn")?;
    let mut sites: Vec<HookSite> = a.ablate_mlp.iter().map(|&l| HookSite::mlp_out(l)).collect();
    sites.extend(a.ablate_attn.iter().map(|&l| HookSite::attn_out(l)));
    let run = if sites.is_empty() {
        Run::Clean
    } else {
        Run::Zero(sites)
    };
    let scores = quiz::score(&model, &layout, &quizzes, &run, a.batch_size)?;
    let table = AccuracyTable::new(&quizzes, &scores);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&table)?);
    } else {
        print!("{}", table.markdown());
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct AblateArgs {
    /// A saved quiz GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Quiz file (held-out quizzes of the model's grid size).
    #[arg(long)]
    pub quizzes: PathBuf,
    /// Use the first N quizzes only.
    #[arg(long)]
    pub max_quizzes: Option<usize>,
    /// Output directory: ablations.json, ablations.md, pictures.
    #[arg(long)]
    pub out: PathBuf,
    /// Quizzes per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// Reference 004's attention-ablation table (loss on the final grid).
const REFERENCE_ATTENTION: [(&str, f64); 13] = [
    ("clean", 2.84e-3),
    ("0", 2.65),
    ("1", 6.48e-3),
    ("2", 2.92e-3),
    ("3", 2.02e-3),
    ("4", 2.85e-3),
    ("5", 3.26e-3),
    ("6", 3.03e-3),
    ("7", 2.63e-3),
    ("8", 2.85e-3),
    ("9", 2.95e-3),
    ("10", 3.18e-3),
    ("11", 3.44e-3),
];

/// `kibitzer quiz ablate`: experiments 1-3.
pub fn ablate(a: &AblateArgs) -> CliResult {
    let device = a.device.device()?;
    let (layout, quizzes) = open_quizzes(&a.quizzes, a.max_quizzes)?;
    let model = load_model(&a.model, &layout, &device)?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let bar = super::steps_bar(6, "ablations");
    let attention = quiz::attention_ablation(&model, &layout, &quizzes, a.batch_size)?;
    bar.inc(1);
    let window = (2 * (layout.cells() + 1) + 1).min(layout.seq_len());
    let pattern_quizzes = &quizzes[..quizzes.len().min(64)];
    let (heads, picture, best_head) =
        quiz::layer0_attention(&model, &layout, pattern_quizzes, 8, window)?;
    bar.inc(1);
    let svg = quiz::pattern_svg(
        &picture,
        window,
        &format!(
            "layer 0, head {best_head}: mean attention over the first {window} positions (BOS, A, f(A))"
        ),
    );
    kibitzer_sae::io::atomic_write(&a.out.join("layer0_attention.svg"), svg.as_bytes())?;
    let direct = quiz::direct_path(&model, &layout, &quizzes, a.batch_size)?;
    bar.inc(1);
    let mlp = quiz::mlp_ablation(&model, &layout, &quizzes, a.batch_size)?;
    bar.inc(1);
    // What the contact block's ablation writes, beside the clean model.
    let contact: Vec<Quiz> = quizzes
        .iter()
        .filter(|q| q.task == TaskKind::Contact)
        .take(8)
        .cloned()
        .collect();
    if let (Some(block), false) = (mlp.contact_block, contact.is_empty()) {
        let clean = quiz::written_grids(&model, &layout, &contact, &Run::Clean, 8)?;
        let ablated = quiz::written_grids(
            &model,
            &layout,
            &contact,
            &Run::Zero(vec![HookSite::mlp_out(block)]),
            8,
        )?;
        let mut items = Vec::new();
        for ((q, c), ab) in contact.iter().zip(clean).zip(ablated) {
            items.push((q.clone(), Some(c.grid)));
            items.push((q.clone(), Some(ab.grid)));
        }
        let html = render::quizzes_html(
            &items,
            &format!(
                "Contact quizzes: the clean model, then block {block}'s MLP zero-ablated (each quiz twice)"
            ),
        );
        kibitzer_sae::io::atomic_write(&a.out.join("contact_ablated.html"), html.as_bytes())?;
    }
    bar.inc(1);
    let report = serde_json::json!({
        "model": a.model,
        "quizzes": a.quizzes,
        "quizzes_scored": quizzes.len(),
        "attention_ablation": attention,
        "layer0_heads": heads,
        "layer0_best_head": best_head,
        "direct_path": direct,
        "mlp_ablation": mlp,
    });
    let md = ablation_markdown(&attention, &heads, best_head, &direct, &mlp);
    bar.finish_and_clear();
    write_report(&a.out, "ablations", &report, &md)
}

/// Writes `NAME.json` and `NAME.md` into `out` and prints the Markdown.
fn write_report(out: &Path, name: &str, json: &serde_json::Value, md: &str) -> CliResult {
    super::write_report(out, name, json, md)?;
    print!("{md}");
    println!("-> {}", out.display());
    Ok(())
}

fn ablation_markdown(
    attention: &[quiz::AttentionAblationRow],
    heads: &[quiz::HeadAttention],
    best_head: usize,
    direct: &quiz::DirectPath,
    mlp: &quiz::MlpAblation,
) -> String {
    let mut md = String::from(
        "## 1. Attention layers zero-ablated\n\n| ablated | loss (final grid) | x clean | exact grids | reference loss |\n|---|---:|---:|---:|---:|\n",
    );
    for row in attention {
        let name = row
            .layer
            .map_or_else(|| "none (clean)".to_string(), |l| format!("attn {l}"));
        let key = row
            .layer
            .map_or_else(|| "clean".to_string(), |l| l.to_string());
        let reference = REFERENCE_ATTENTION
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| "-".to_string(), |(_, v)| format!("{v:.2e}"));
        md += &format!(
            "| {name} | {:.3e} | {:.1} | {:.3} | {reference} |\n",
            row.loss, row.loss_ratio, row.accuracy
        );
    }
    md += "\n## 2. Layer 0's heads\n\nMean attention from positions that predict a cell of grids 2-4, and (last column) from grid A.\n\n| head | same cell, previous grid | previous token | itself | previous token (grid A) |\n|---|---:|---:|---:|---:|\n";
    for h in heads {
        md += &format!(
            "| {}{} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            h.head,
            if h.head == best_head {
                " (pictured)"
            } else {
                ""
            },
            h.same_cell_previous_grid,
            h.previous_token,
            h.itself,
            h.previous_token_first_grid
        );
    }
    md += &format!(
        "\nDirect path (embeddings, attention layer 0, unembedding; everything else zero-ablated) on {} quizzes: writes the previous grid exactly in {:.3} of quizzes, {:.3} of cells; right answers {:.3}.\n",
        direct.quizzes, direct.writes_previous_grid, direct.previous_grid_cells, direct.accuracy
    );
    md += "\n## 3. Per-task accuracy with each block's MLP zero-ablated\n\n| task | clean |";
    for l in 0..mlp.ablated.len() {
        md += &format!(" mlp {l} |");
    }
    md += "\n|---|---:|";
    md += &"---:|".repeat(mlp.ablated.len());
    md += "\n";
    for (task, row) in &mlp.clean.tasks {
        md += &format!("| {task} | {:.3} |", row.accuracy);
        for t in &mlp.ablated {
            md += &format!(" {:.3} |", t.tasks.get(task).map_or(0.0, |r| r.accuracy));
        }
        md += "\n";
    }
    if let Some(b) = mlp.contact_block {
        md += &format!(
            "\nThe block whose MLP ablation hurts contact most beyond the other tasks (contact's drop minus their mean drop): **{b}** (the reference's 12-layer model: block 8, which \"primarily impacted the contact task\")."
        );
        if let Some(w) = mlp.largest_contact_drop.filter(|&w| w != b) {
            md += &format!(
                " Contact's largest drop alone is block {w}'s, which costs the other tasks as much or more."
            );
        }
        md += "\n";
    }
    md
}

#[derive(Args, Debug)]
pub struct HarvestArgs {
    /// A saved quiz GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Quiz file (of the model's grid size).
    #[arg(long)]
    pub quizzes: PathBuf,
    /// Hook site, e.g. blocks.2.hook_mlp_out.
    #[arg(long)]
    pub site: String,
    /// Output directory (a new activation store).
    #[arg(long)]
    pub out: PathBuf,
    /// The first N quizzes only.
    #[arg(long)]
    pub max_quizzes: Option<usize>,
    /// Quizzes per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Disk precision.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Replace an existing store in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

struct QuizzesPerPass {
    inner: TokenSequences,
    max: usize,
}

impl ExampleSource<Tensor<2, Int>> for QuizzesPerPass {
    fn next_examples(&mut self, max: usize) -> Result<Option<Examples<Tensor<2, Int>>>, HookError> {
        self.inner.next_examples(max.min(self.max))
    }
}

/// `kibitzer quiz harvest`: one row per token of every quiz but the BOS
/// token (example = quiz, position = token index).
pub fn harvest_store(a: &HarvestArgs) -> CliResult {
    if a.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let site: HookSite = a.site.parse().map_err(|e| format!("--site: {e}"))?;
    let device = a.device.device()?;
    let (layout, quizzes) = open_quizzes(&a.quizzes, a.max_quizzes)?;
    let model = load_model(&a.model, &layout, &device)?;
    let seqs = quiz::sequences(&quizzes, &layout)?;
    let source =
        TokenSequences::new(&seqs, layout.seq_len(), None, false, &device)?.skipping_first(1);
    let expected = source.harvested_rows() as u64;
    let config = HarvestConfig {
        store: StoreConfig {
            dtype: a.dtype.into(),
            metadata: serde_json::json!({
                "model": a.model,
                "quizzes": a.quizzes,
                "grid_size": layout.grid_size,
                "quizzes_harvested": quizzes.len(),
                "row_order": "every token of every quiz but the BOS token: quizzes in file order, tokens in order (columns example = quiz, position = token index)",
            }),
            overwrite: a.overwrite,
            ..StoreConfig::new(1)
        },
        max_rows: None,
        memory_ceiling_bytes: 1 << 30,
        progress: !a.quiet,
        columns: None,
    };
    let source = QuizzesPerPass {
        inner: source,
        max: a.batch_size,
    };
    let manifest = harvest(&model, site, source, &a.out, &config)?;
    if manifest.rows != expected {
        return Err(format!(
            "{}: harvested {} rows, expected {expected}",
            a.out.display(),
            manifest.rows
        )
        .into());
    }
    println!(
        "wrote {} rows of width {} at {site} from {} quizzes to {}",
        manifest.rows,
        manifest.d_in,
        quizzes.len(),
        a.out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct FeaturesArgs {
    /// A saved quiz GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A saved SAE (SAELens layout) trained on --layer's MLP output.
    #[arg(long)]
    pub sae: PathBuf,
    /// The block whose MLP output the SAE reads (`kibitzer quiz ablate`
    /// names the one that carries contact).
    #[arg(long)]
    pub layer: usize,
    /// Held-out quiz file (of the model's grid size).
    #[arg(long)]
    pub quizzes: PathBuf,
    /// Use the first N quizzes only.
    #[arg(long)]
    pub max_quizzes: Option<usize>,
    /// Output directory: features.json, features.md, transform_cells.html.
    #[arg(long)]
    pub out: PathBuf,
    /// Feature-multiplier optimiser steps.
    #[arg(long, default_value_t = 60)]
    pub multiplier_steps: usize,
    /// Feature-multiplier weight decay (the reference's 2).
    #[arg(long, default_value_t = 2.0)]
    pub multiplier_decay: f64,
    /// Quizzes per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// `kibitzer quiz features`: experiments 4-6.
pub fn features(a: &FeaturesArgs) -> CliResult {
    let device = a.device.device()?;
    let (layout, quizzes) = open_quizzes(&a.quizzes, a.max_quizzes)?;
    let model = load_model(&a.model, &layout, &device)?;
    check_layers(&[a.layer], model.config().n_layers, "--layer")?;
    let site = HookSite::mlp_out(a.layer);
    let sae = Arc::new(
        kibitzer_sae::saelens::load(&a.sae, &device)
            .map_err(|e| format!("{}: {e}", a.sae.display()))?,
    );
    quiz::check_dictionary(&model, site, &sae).map_err(|e| format!("{}: {e}", a.sae.display()))?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let bar = super::steps_bar(6, "features");

    // 4. The SAE spliced in.
    let splice = quiz::splice_report(&model, &layout, &quizzes, site, sae.clone(), a.batch_size)?;
    bar.inc(1);

    // 5. Transform cells of contact quizzes the ablated model gets wrong.
    let cells = quiz::transform_cells(
        &model,
        &layout,
        &quizzes,
        site,
        TaskKind::Contact,
        a.batch_size,
    )?;
    bar.inc(1);
    let mut by_activation = Vec::new();
    let mut by_multiplier: Vec<(usize, f32)> = Vec::new();
    let mut multiplier_losses = Vec::new();
    let mut recovery = Vec::new();
    let mut steer = Vec::new();
    if !cells.is_empty() {
        let feats =
            quiz::transform_cell_features(&model, &quizzes, &cells, site, &sae, a.batch_size)?;
        by_activation = quiz::rank_by_activation(&feats, 8);
        let (m, losses) = quiz::train_feature_multiplier(
            &model,
            &quizzes,
            &cells,
            site,
            sae.clone(),
            &MultiplierConfig {
                steps: a.multiplier_steps,
                weight_decay: a.multiplier_decay,
                ..MultiplierConfig::default()
            },
        )?;
        multiplier_losses = losses;
        let mut order: Vec<usize> = (0..m.len()).collect();
        order.sort_by(|&x, &y| m[y].total_cmp(&m[x]));
        by_multiplier = order.iter().take(8).map(|&f| (f, m[f])).collect();
        for r in &mut by_activation {
            r.multiplier = Some(f64::from(m[r.feature]));
        }
        bar.inc(1);
        let top = by_multiplier[0].0;
        let top3: Vec<usize> = by_multiplier.iter().take(3).map(|&(f, _)| f).collect();
        let keep = vec![
            (
                "all features (the SAE spliced)".to_string(),
                (0..sae.d_sae()).collect(),
                1.0,
            ),
            ("top feature only".to_string(), vec![top], 1.0),
            ("top feature x15".to_string(), vec![top], 15.0),
            ("top 3 x5".to_string(), top3.clone(), 5.0),
        ];
        recovery = quiz::feature_recovery(
            &model,
            &layout,
            &quizzes,
            &cells,
            site,
            sae.clone(),
            &keep,
            a.batch_size,
        )?;
        bar.inc(1);
        // 6. Steering: the top features on the other tasks.
        let others: Vec<Quiz> = quizzes
            .iter()
            .filter(|q| q.task != TaskKind::Contact)
            .take(256)
            .cloned()
            .collect();
        let typical = by_activation
            .iter()
            .find(|r| r.feature == top)
            .map_or(1.0, |r| r.mean_activation.max(1e-3)) as f32;
        let mean_top = feats.iter().map(|row| row[top] as f64).sum::<f64>() / feats.len() as f64;
        let base = (mean_top as f32).max(typical).max(1e-3);
        if !others.is_empty() {
            steer = quiz::steering(
                &model,
                &layout,
                &others,
                site,
                &sae,
                &[top],
                &[base, 5.0 * base, 15.0 * base, 50.0 * base],
                a.batch_size,
            )?;
            steer.extend(quiz::steering(
                &model,
                &layout,
                &others,
                site,
                &sae,
                &top3,
                &[5.0 * base, 15.0 * base],
                a.batch_size,
            )?);
        }
        bar.inc(1);
        transform_cell_page(&model, &layout, &quizzes, &cells, site, &a.out)?;
    }
    bar.finish_and_clear();
    let report = serde_json::json!({
        "model": a.model,
        "sae": a.sae,
        "site": site.to_string(),
        "quizzes_scored": quizzes.len(),
        "splice": splice,
        "transform_cells": cells,
        "top_by_activation": by_activation,
        "top_by_multiplier": by_multiplier,
        "multiplier_losses": multiplier_losses,
        "recovery": recovery,
        "steering": steer,
    });
    let md = features_markdown(
        &splice,
        &cells,
        &by_activation,
        &by_multiplier,
        &recovery,
        &steer,
    );
    write_report(&a.out, "features", &report, &md)
}

/// The first transform-cell quizzes: the clean model's grid and the
/// ablated model's, as a page.
fn transform_cell_page(
    model: &Gpt,
    layout: &Layout,
    quizzes: &[Quiz],
    cells: &[TransformCell],
    site: HookSite,
    out: &Path,
) -> Res<()> {
    let picked: Vec<Quiz> = cells
        .iter()
        .take(6)
        .map(|c| quizzes[c.quiz].clone())
        .collect();
    let ablated = quiz::written_grids(model, layout, &picked, &Run::Zero(vec![site]), 6)?;
    let items: Vec<(Quiz, Option<kibitzer_quizzes::Grid>)> = picked
        .into_iter()
        .zip(ablated.into_iter().map(|w| Some(w.grid)))
        .collect();
    let html = render::quizzes_html(
        &items,
        &format!(
            "Contact quizzes the model gets right and gets wrong with {site} zero-ablated (the written grid last)"
        ),
    );
    kibitzer_sae::io::atomic_write(&out.join("transform_cells.html"), html.as_bytes())?;
    Ok(())
}

fn features_markdown(
    splice: &quiz::SpliceReport,
    cells: &[TransformCell],
    by_activation: &[quiz::RankedFeature],
    by_multiplier: &[(usize, f32)],
    recovery: &[quiz::Recovery],
    steer: &[quiz::SteeringRow],
) -> String {
    let mut md = format!(
        "## 4. The SAE spliced in at {}\n\n| run | exact grids | loss (final grid) |\n|---|---:|---:|\n| clean | {:.3} | {:.4} |\n| SAE spliced | {:.3} | {:.4} |\n| zero-ablated | {:.3} | {:.4} |\n\nLoss recovered {:.3}, accuracy recovered {:.3}.\n",
        splice.site,
        splice.clean.overall.accuracy,
        splice.clean.overall.loss,
        splice.spliced.overall.accuracy,
        splice.spliced.overall.loss,
        splice.zero_ablated.overall.accuracy,
        splice.zero_ablated.overall.loss,
        splice.loss_recovered,
        splice.accuracy_recovered
    );
    md += &format!(
        "\n## 5. Transform cells\n\n{} contact quizzes the clean model gets right and the ablated model gets wrong.\n",
        cells.len()
    );
    if cells.is_empty() {
        return md;
    }
    md += "\nTop features by activation at the transform cells (count among each cell's top 3):\n\n| feature | top-3 count | mean activation | multiplier |\n|---:|---:|---:|---:|\n";
    for r in by_activation {
        md += &format!(
            "| {} | {} | {:.3} | {} |\n",
            r.feature,
            r.top3_count,
            r.mean_activation,
            r.multiplier
                .map_or_else(|| "-".into(), |m| format!("{m:.3}"))
        );
    }
    md += "\nTop features by trained multiplier (reference: 0.67 for the top feature against 0.30 for the next):\n\n| feature | multiplier |\n|---:|---:|\n";
    for (f, m) in by_multiplier {
        md += &format!("| {f} | {m:.3} |\n");
    }
    md += "\nAccuracy on those quizzes with the MLP output replaced by the SAE's reconstruction from some features (reference: top feature alone 29.4%, x15 64.7%, top 3 x5 67.6%):\n\n| kept | features | accuracy |\n|---|---|---:|\n";
    for r in recovery {
        let feats = if r.features.len() > 8 {
            format!("{} features", r.features.len())
        } else {
            format!("{:?}", r.features)
        };
        md += &format!("| {} | {feats} | {:.3} |\n", r.name, r.accuracy);
    }
    md += "\n## 6. Steering non-contact quizzes with the top features (reference: no effect)\n\n| features | scale | accuracy | clean accuracy | grids changed | cells changed |\n|---|---:|---:|---:|---:|---:|\n";
    for s in steer {
        md += &format!(
            "| {:?} | {:.2} | {:.3} | {:.3} | {:.3} | {:.4} |\n",
            s.features, s.scale, s.accuracy, s.clean_accuracy, s.changed, s.changed_cells
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_quizzes_must_leave_some_to_train_on() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("q.jsonl");
        generate(&GenerateArgs {
            out: file.clone(),
            count: 4,
            tasks: vec![TaskKind::Frame],
            size: 8,
            seed: 1,
            first: 0,
        })
        .unwrap();
        let args = TrainArgs {
            quizzes: file,
            out: dir.path().join("run"),
            layers: 1,
            d_model: 16,
            heads: 2,
            d_mlp: None,
            steps: 1,
            batch_size: 2,
            lr: 1e-3,
            warmup: None,
            loss_on: LossOn::Final,
            eval_quizzes: 4,
            eval_every: 0,
            checkpoint_every: 0,
            seed: 0,
            device: DeviceChoice::Cpu,
            resume: false,
            quiet: true,
        };
        let err = train(&args).unwrap_err().to_string();
        assert!(err.contains("--eval-quizzes 4"), "{err}");
        assert!(!dir.path().join("run").exists());
    }
}
