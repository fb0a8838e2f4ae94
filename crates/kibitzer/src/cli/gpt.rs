//! `kibitzer gpt ...`: an OthelloGPT or a ChessGPT from the command line.
//! `train` fits a GPT (kibitzer-models) to a games file, `eval` scores its
//! legal-move predictions, and `harvest` writes its activations at a
//! TransformerLens hook site (kibitzer-hooks) into an activation store
//! whose rows line up with the labels of `kibitzer bsp labels` for the same
//! games file.
//!
//! The game comes from the file: an Othello dataset (`kibitzer games
//! generate othello`) makes an OthelloGPT, whose tokens are square moves
//! (passes have no token, as in OthelloGPT's vocabulary; position `i` reads
//! moves `0..=i` and predicts move `i + 1`); chess games (.pgn, or .jsonl
//! from `kibitzer games generate chess`) make a ChessGPT, whose tokens are
//! the characters of the games' transcripts (`;1.e4 e5 2.Nf3`, Karvonen's
//! format; position `i` predicts character `i + 1`).

use super::CliResult;
use super::sae::DtypeArg;
use burn::tensor::{Device, Int, Tensor};
use clap::{Args, Subcommand};
use kibitzer::board_eval::{ROW_IDS_GAME_TOKEN, ROW_IDS_KEY};
use kibitzer_games::cli_support::{GameFileKind, game_file_kind};
use kibitzer_games::dataset::OthelloDataset;
use kibitzer_games::othello::OthelloMove;
use kibitzer_games::othello::transcript::vocab_size;
use kibitzer_hooks::{
    ExampleSource, Examples, HarvestConfig, HookError, HookSite, TokenSequences, harvest,
};
use kibitzer_models::gpt::LegalMoveAccuracy;
use kibitzer_models::gpt::othello::{legal_move_accuracy, othello_gpt_config, othello_sequences};
use kibitzer_models::gpt::train::evaluate;
use kibitzer_models::{Gpt, GptConfig, GptTrainConfig, GptTrainer, TokenDataset, TrainLog};
use kibitzer_sae::DeviceChoice;
use kibitzer_store::{StoreConfig, Xxh64};
use std::error::Error;
use std::path::{Path, PathBuf};

/// The trainer's checkpoint inside `--out` (weights, AdamW state, step, history).
const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// The data a run trains on, written when it starts and checked on `--resume`.
const RUN_FILE: &str = "run.json";
/// The settings and history of a finished run.
const TRAINING_FILE: &str = "training.json";
const RUN_FORMAT: &str = "kibitzer-gpt-run-v1";

/// OthelloGPT's published shape (Li et al. 2023): 8 blocks of width 512
/// with 8 heads; Karvonen's ChessGPT has the same.
const DEFAULT_LAYERS: usize = 8;
const DEFAULT_D_MODEL: usize = 512;
const DEFAULT_HEADS: usize = 8;
/// Characters a ChessGPT reads by default: Karvonen's context (reference
/// 002 reads the board in the first 256).
#[cfg(feature = "chess")]
const DEFAULT_CHESS_N_CTX: usize = 1023;
/// Held-out chess games whose legal-move rate `train` reports at the end:
/// every move is written character by character, a forward pass per
/// character, so all 1000 held-out games would take longer than it should.
#[cfg(feature = "chess")]
const CHESS_LEGAL_RATE_GAMES: usize = 100;

#[derive(Subcommand, Debug)]
pub enum GptCommand {
    /// Train an OthelloGPT (on an Othello dataset) or a ChessGPT (on chess
    /// games); saves it in TransformerLens layout (config.json +
    /// model.safetensors) with checkpoints and resume.
    Train(TrainArgs),
    /// Legal-move accuracy and the next-token loss of a saved GPT on a
    /// games file (Othello: the top-1 next token is a legal square; chess:
    /// the move the model writes greedily is legal SAN).
    Eval(EvalArgs),
    /// Activations of a saved GPT at a hook site into an activation store,
    /// in the row order of `kibitzer bsp labels` (Othello: one row per
    /// move; chess: one row per `.` of the transcript, White to move).
    Harvest(HarvestArgs),
}

/// Runs a `gpt` command. The crates' error messages already carry their
/// causes ("games.bin: No such file or directory"), so the error is passed
/// on as one message rather than a chain that would print each cause twice.
pub fn run(cmd: GptCommand) -> CliResult {
    let result = match cmd {
        GptCommand::Train(a) => train(&a),
        GptCommand::Eval(a) => eval(&a),
        GptCommand::Harvest(a) => harvest_store(&a),
    };
    result.map_err(|error| error.to_string().into())
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Games to train on: an Othello dataset (`kibitzer games generate
    /// othello`; the board size comes from the file) trains an OthelloGPT,
    /// chess games (.pgn or .jsonl) a ChessGPT.
    #[arg(long)]
    pub games: PathBuf,
    /// Output directory: the model (config.json, model.safetensors), the
    /// checkpoint, run.json and training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Blocks [default: 8, OthelloGPT's].
    #[arg(long)]
    pub layers: Option<usize>,
    /// Attention heads per block [default: 8].
    #[arg(long)]
    pub heads: Option<usize>,
    /// Residual stream width, a multiple of --heads [default: 512].
    #[arg(long)]
    pub d_model: Option<usize>,
    /// MLP hidden width [default: 4 x --d-model].
    #[arg(long)]
    pub d_mlp: Option<usize>,
    /// Context length; longer games are cut to their first n_ctx tokens
    /// [default: Othello the longest possible game, size^2 - 4; chess 1023
    /// characters, Karvonen's].
    #[arg(long)]
    pub n_ctx: Option<usize>,
    /// Optimiser steps [default: 1000]; with --resume, extends (or
    /// shortens) the run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Games per step [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (AdamW, cosine decay to 10%) [default: 1e-3].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear warm-up steps [default: 100, or a tenth of --steps if fewer].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Evaluate on the held-out games every N steps (and at the end); 0:
    /// only at the end [default: 100].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Checkpoint every N steps (and at the end); 0: only at the end
    /// [default: 500].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Games held out for the evaluation loss and the legal-move accuracy:
    /// the last N of the file [default: a tenth of the games, at most 1000].
    #[arg(long)]
    pub eval_games: Option<usize>,
    /// Seed of the initial weights and of the batch order [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Continue the run in --out from its checkpoint; the model and
    /// training settings are the run's (only --steps, --eval-every and
    /// --checkpoint-every may change).
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A saved GPT directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Games to score, of the model's game (held-out games: another seed of
    /// `kibitzer games generate`).
    #[arg(long)]
    pub games: PathBuf,
    /// Score the first N games only.
    #[arg(long)]
    pub max_games: Option<usize>,
    /// Games (chess: moves being written) per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct HarvestArgs {
    /// A saved GPT directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Games to run the model on, of the model's game.
    #[arg(long)]
    pub games: PathBuf,
    /// TransformerLens hook site, e.g. blocks.1.hook_resid_post,
    /// blocks.0.mlp.hook_post, blocks.2.attn.hook_z.
    #[arg(long)]
    pub site: String,
    /// Output directory (a new activation store).
    #[arg(long)]
    pub out: PathBuf,
    /// The first N games only (pass the same --max-games to `kibitzer bsp labels`).
    #[arg(long)]
    pub max_games: Option<usize>,
    /// Games per forward pass [default: as many as --memory-mib holds].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Memory a forward pass and the rows it yields may take, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mib: usize,
    /// Keep only the first n_ctx tokens of games longer than the model's
    /// context (label with `kibitzer bsp labels --first-per-game <n_ctx>`
    /// for Othello, `--max-chars <n_ctx>` for chess, so the rows still line
    /// up); without it such a game is an error.
    #[arg(long)]
    pub truncate: bool,
    /// Disk precision.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Rows per shard file.
    #[arg(long, default_value_t = 65_536)]
    pub rows_per_shard: usize,
    /// Replace an existing store in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Activations of a freshly initialised GPT of the same shape, with
    /// this seed, instead of the trained weights: the random-init baseline
    /// of reference 002.
    #[arg(long)]
    pub random_init: Option<u64>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The games of a games file, by game.
enum GameList {
    /// Othello on a `size` board, each game its moves.
    Othello {
        size: usize,
        games: Vec<Vec<OthelloMove>>,
    },
    /// Chess games from the standard start.
    #[cfg(feature = "chess")]
    Chess(Vec<kibitzer_games::chess::Chess>),
}

/// The games of a games file (the first `max_games` when limited).
struct Games {
    path: PathBuf,
    in_file: usize,
    /// XXH64 of every game's moves (Othello: the move bytes; chess: the
    /// transcript), each prefixed by its length: tells one games file from
    /// another on `--resume`.
    checksum: u64,
    list: GameList,
}

impl Games {
    /// The game's name, as `run.json` and the reports write it.
    fn game(&self) -> &'static str {
        match &self.list {
            GameList::Othello { .. } => "othello",
            #[cfg(feature = "chess")]
            GameList::Chess(_) => "chess",
        }
    }

    /// The board side (8 for chess).
    fn board_size(&self) -> usize {
        match &self.list {
            GameList::Othello { size, .. } => *size,
            #[cfg(feature = "chess")]
            GameList::Chess(_) => 8,
        }
    }

    /// Games loaded (the first `max_games` of the file).
    fn len(&self) -> usize {
        match &self.list {
            GameList::Othello { games, .. } => games.len(),
            #[cfg(feature = "chess")]
            GameList::Chess(games) => games.len(),
        }
    }

    /// The padding token of the game's vocabulary.
    fn pad_token(&self) -> u32 {
        match &self.list {
            GameList::Othello { .. } => u32::from(kibitzer_games::othello::transcript::PAD_TOKEN),
            #[cfg(feature = "chess")]
            GameList::Chess(_) => kibitzer_models::gpt::chess::PAD_TOKEN,
        }
    }

    /// How `bsp labels` cuts its positions to a context of `n_ctx` tokens.
    fn label_flag(&self, n_ctx: usize) -> String {
        match &self.list {
            GameList::Othello { .. } => format!("--first-per-game {n_ctx}"),
            #[cfg(feature = "chess")]
            GameList::Chess(_) => format!("--max-chars {n_ctx}"),
        }
    }

    /// What a token is, for messages.
    fn token_name(&self) -> &'static str {
        match &self.list {
            GameList::Othello { .. } => "square moves",
            #[cfg(feature = "chess")]
            GameList::Chess(_) => "transcript characters",
        }
    }

    /// The legal-move score of `model` on games `range` of the list.
    fn legal_moves(
        &self,
        model: &Gpt,
        range: std::ops::Range<usize>,
        batch_size: usize,
    ) -> Result<LegalMoveAccuracy, Box<dyn Error>> {
        Ok(match &self.list {
            GameList::Othello { size, games } => {
                legal_move_accuracy(model, &games[range], *size, batch_size)?
            }
            #[cfg(feature = "chess")]
            GameList::Chess(games) => {
                kibitzer_models::gpt::chess::legal_move_rate(model, &games[range], batch_size)?
            }
        })
    }
}

/// Hashes sequences of bytes, each prefixed by its length.
fn checksum<'a>(items: impl Iterator<Item = &'a [u8]>) -> u64 {
    let mut hasher = Xxh64::new();
    for bytes in items {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hasher.digest()
}

fn open_games(path: &Path, max_games: Option<usize>) -> Result<Games, Box<dyn Error>> {
    match game_file_kind(path)? {
        GameFileKind::OthelloDataset => open_othello_games(path, max_games),
        #[cfg(feature = "chess")]
        GameFileKind::Pgn | GameFileKind::RatedJsonLines => open_chess_games(path, max_games),
        #[cfg(not(feature = "chess"))]
        _ => Err(format!(
            "{}: chess games need the `chess` feature, which this build was compiled without",
            path.display()
        )
        .into()),
    }
}

fn open_othello_games(path: &Path, max_games: Option<usize>) -> Result<Games, Box<dyn Error>> {
    // The dataset's errors name the file (missing, not a dataset, truncated).
    let dataset = OthelloDataset::open(path)?;
    if dataset.is_empty() {
        return Err(format!("{}: the games file holds no games", path.display()).into());
    }
    let n = max_games.unwrap_or(dataset.len()).min(dataset.len());
    let checksum = checksum((0..dataset.len()).map(|index| {
        dataset
            .game_bytes(index)
            .expect("every index below len has a game")
    }));
    Ok(Games {
        path: path.to_path_buf(),
        in_file: dataset.len(),
        checksum,
        list: GameList::Othello {
            size: dataset.board_size(),
            games: dataset.iter().take(n).collect(),
        },
    })
}

/// Chess games, each checked to have a transcript (a standard start).
#[cfg(feature = "chess")]
fn open_chess_games(path: &Path, max_games: Option<usize>) -> Result<Games, Box<dyn Error>> {
    use kibitzer_games::chess::transcript::Transcript;
    // The whole file is read for the checksum; only the first games are kept.
    let mut games = kibitzer_games::cli_support::read_chess_games(path, None)?;
    if games.is_empty() {
        return Err(format!("{}: the file holds no chess games", path.display()).into());
    }
    let transcripts = games
        .iter()
        .enumerate()
        .map(|(i, game)| {
            Transcript::from_game(game)
                .map(|t| t.text)
                .map_err(|e| format!("{}: game {i}: {e}", path.display()))
        })
        .collect::<Result<Vec<String>, String>>()?;
    let in_file = games.len();
    games.truncate(max_games.unwrap_or(in_file));
    Ok(Games {
        path: path.to_path_buf(),
        in_file,
        checksum: checksum(transcripts.iter().map(|t| t.as_bytes())),
        list: GameList::Chess(games),
    })
}

/// Token sequences of some games.
struct Sequences {
    tokens: Vec<Vec<u32>>,
    /// How many games were cut to the model's context.
    cut: usize,
}

/// The games as token sequences, each cut to `n_ctx` tokens when
/// `truncate`; a longer game is an error otherwise.
fn token_sequences(
    games: &Games,
    n_ctx: usize,
    truncate: bool,
) -> Result<Sequences, Box<dyn Error>> {
    let sequences = match &games.list {
        GameList::Othello { size, games } => othello_sequences(games, *size),
        #[cfg(feature = "chess")]
        GameList::Chess(games) => kibitzer_models::gpt::chess::chess_sequences(games),
    };
    let mut sequences = sequences.map_err(|e| format!("{}: {e}", games.path.display()))?;
    let mut cut = 0;
    for (game, sequence) in sequences.iter_mut().enumerate() {
        if sequence.len() > n_ctx {
            if !truncate {
                return Err(format!(
                    "{}: game {game} has {} {}, more than the model's context n_ctx = {n_ctx}; \
                     pass --truncate to keep the first {n_ctx} of each game, and label them with \
                     `kibitzer bsp labels {}` so the rows line up",
                    games.path.display(),
                    sequence.len(),
                    games.token_name(),
                    games.label_flag(n_ctx),
                )
                .into());
            }
            sequence.truncate(n_ctx);
            cut += 1;
        }
    }
    Ok(Sequences {
        tokens: sequences,
        cut,
    })
}

/// A next-token dataset of `sequences` (games `first_game..` of the file),
/// with a file-level error when a game is too short to predict anything.
fn token_dataset(
    sequences: &[Vec<u32>],
    first_game: usize,
    games: &Games,
    config: &GptConfig,
) -> Result<TokenDataset, Box<dyn Error>> {
    if let Some(i) = sequences.iter().position(|s| s.len() < 2) {
        return Err(format!(
            "{}: game {} has {} {}; a game needs at least 2 to train or score a prediction",
            games.path.display(),
            first_game + i,
            sequences[i].len(),
            games.token_name(),
        )
        .into());
    }
    Ok(TokenDataset::new(
        sequences,
        Some(games.pad_token()),
        config.d_vocab,
        config.n_ctx,
    )?)
}

/// Loads a saved GPT and checks that its vocabulary is the one of the game
/// of `games` (OthelloGPT's for its board, or ChessGPT's).
fn load_model(dir: &Path, device: &Device, games: &Games) -> Result<Gpt, Box<dyn Error>> {
    let model = Gpt::load_dir(dir, device)?;
    let c = model.config();
    let (vocab_in, vocab_out, what) = match &games.list {
        GameList::Othello { size, .. } => (
            vocab_size(*size),
            vocab_size(*size),
            format!("OthelloGPT on the {size}x{size} board of"),
        ),
        #[cfg(feature = "chess")]
        GameList::Chess(_) => {
            let vocab = kibitzer_models::gpt::chess::CHESS_VOCAB;
            (
                vocab + 1,
                vocab,
                "a ChessGPT on the chess games of".to_string(),
            )
        }
    };
    if c.d_vocab != vocab_in || c.vocab_out() != vocab_out {
        return Err(format!(
            "{}: the model reads {} and predicts {} tokens, but {what} {} reads {vocab_in} and predicts {vocab_out}",
            dir.display(),
            c.d_vocab,
            c.vocab_out(),
            games.path.display(),
        )
        .into());
    }
    Ok(model)
}

/// The loss of always predicting every token with equal probability.
fn uniform_loss(config: &GptConfig) -> f64 {
    (config.vocab_out() as f64).ln()
}

/// What a run trains on: written to `run.json` when the run starts, so that
/// `--resume` sees the same games split the same way.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RunData {
    format: String,
    games: PathBuf,
    /// `othello` or `chess` (runs written before chess was added are Othello).
    #[serde(default = "othello_name")]
    game: String,
    board_size: usize,
    games_in_file: usize,
    games_checksum: String,
    /// Games `0..train_games` train; the rest are held out.
    train_games: usize,
    eval_games: usize,
}

fn othello_name() -> String {
    "othello".into()
}

impl RunData {
    fn new(games: &Games, eval_games: Option<usize>) -> Result<RunData, Box<dyn Error>> {
        let n = games.in_file;
        let eval_games = eval_games.unwrap_or((n / 10).min(1000));
        if eval_games >= n {
            return Err(format!(
                "--eval-games {eval_games} leaves no game to train on: {} holds {n}",
                games.path.display()
            )
            .into());
        }
        Ok(RunData {
            format: RUN_FORMAT.into(),
            games: games.path.clone(),
            game: games.game().into(),
            board_size: games.board_size(),
            games_in_file: n,
            games_checksum: format!("{:016x}", games.checksum),
            train_games: n - eval_games,
            eval_games,
        })
    }

    fn read(path: &Path) -> Result<RunData, Box<dyn Error>> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let run: RunData =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if run.format != RUN_FORMAT {
            return Err(format!(
                "{}: format is {:?}, expected {RUN_FORMAT:?}",
                path.display(),
                run.format
            )
            .into());
        }
        Ok(run)
    }

    /// Refuses to resume on other games or another split than the run's.
    fn check_resume(
        &self,
        run_file: &Path,
        games: &Games,
        eval_games: Option<usize>,
    ) -> Result<(), Box<dyn Error>> {
        if games.game() != self.game
            || games.board_size() != self.board_size
            || games.in_file != self.games_in_file
            || format!("{:016x}", games.checksum) != self.games_checksum
        {
            return Err(format!(
                "{}: not the games the run was trained on ({}: {} {} games of {}x{}, checksum {}; see {})",
                games.path.display(),
                self.games.display(),
                self.games_in_file,
                self.game,
                self.board_size,
                self.board_size,
                self.games_checksum,
                run_file.display()
            )
            .into());
        }
        if let Some(e) = eval_games
            && e != self.eval_games
        {
            return Err(format!(
                "--eval-games {e}: the run holds out {} games ({}); a resumed run keeps its split",
                self.eval_games,
                run_file.display()
            )
            .into());
        }
        Ok(())
    }
}

/// The model config the flags ask for on the game of `games`.
fn model_config(a: &TrainArgs, games: &Games) -> Result<GptConfig, Box<dyn Error>> {
    let layers = a.layers.unwrap_or(DEFAULT_LAYERS);
    let d_model = a.d_model.unwrap_or(DEFAULT_D_MODEL);
    let heads = a.heads.unwrap_or(DEFAULT_HEADS);
    if heads == 0 || !d_model.is_multiple_of(heads) {
        return Err(format!(
            "--d-model {d_model} must be a positive multiple of --heads {heads} (each head is d_model / heads wide)"
        )
        .into());
    }
    let mut config = match &games.list {
        GameList::Othello { size, .. } => othello_gpt_config(*size, layers, d_model, heads),
        #[cfg(feature = "chess")]
        GameList::Chess(_) => kibitzer_models::gpt::chess::chess_gpt_config(
            layers,
            d_model,
            heads,
            DEFAULT_CHESS_N_CTX,
        ),
    };
    if let Some(d_mlp) = a.d_mlp {
        config.d_mlp = d_mlp;
    }
    if let Some(n_ctx) = a.n_ctx {
        config.n_ctx = n_ctx;
    }
    config.seed = Some(a.seed.unwrap_or(0));
    config.validate()?;
    Ok(config)
}

/// The training settings the flags ask for (the trainer's defaults otherwise).
fn train_config(a: &TrainArgs) -> Result<GptTrainConfig, Box<dyn Error>> {
    let d = GptTrainConfig::default();
    let steps = a.steps.unwrap_or(d.steps);
    if steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    let config = GptTrainConfig {
        steps,
        batch_size: a.batch_size.unwrap_or(d.batch_size),
        lr: a.lr.unwrap_or(d.lr),
        warmup_steps: a.warmup.unwrap_or(d.warmup_steps.min(steps / 10)),
        eval_every: a.eval_every.unwrap_or(d.eval_every),
        checkpoint_every: a.checkpoint_every.unwrap_or(d.checkpoint_every),
        seed: a.seed.unwrap_or(0),
        ..d
    };
    config.validate()?;
    Ok(config)
}

/// Refuses flags that would change a resumed run's model or training (a
/// resumed run must end where the uninterrupted one would).
fn check_resume_flags(a: &TrainArgs, trainer: &GptTrainer) -> Result<(), Box<dyn Error>> {
    let m = trainer.model.config();
    let t = &trainer.config;
    let given: [(&str, Option<String>, String); 9] = [
        (
            "--layers",
            a.layers.map(|v| v.to_string()),
            m.n_layers.to_string(),
        ),
        (
            "--heads",
            a.heads.map(|v| v.to_string()),
            m.n_heads.to_string(),
        ),
        (
            "--d-model",
            a.d_model.map(|v| v.to_string()),
            m.d_model.to_string(),
        ),
        (
            "--d-mlp",
            a.d_mlp.map(|v| v.to_string()),
            m.d_mlp.to_string(),
        ),
        (
            "--n-ctx",
            a.n_ctx.map(|v| v.to_string()),
            m.n_ctx.to_string(),
        ),
        (
            "--batch-size",
            a.batch_size.map(|v| v.to_string()),
            t.batch_size.to_string(),
        ),
        ("--lr", a.lr.map(|v| v.to_string()), t.lr.to_string()),
        (
            "--warmup",
            a.warmup.map(|v| v.to_string()),
            t.warmup_steps.to_string(),
        ),
        ("--seed", a.seed.map(|v| v.to_string()), t.seed.to_string()),
    ];
    let conflicts: Vec<String> = given
        .into_iter()
        .filter_map(|(flag, asked, run)| {
            asked
                .filter(|asked| *asked != run)
                .map(|asked| format!("{flag} {asked} (the run has {run})"))
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(format!(
            "{}: --resume continues the run with its own settings; only --steps, --eval-every and --checkpoint-every may change, but {} differ",
            a.out.display(),
            conflicts.join(", ")
        )
        .into());
    }
    Ok(())
}

/// `kibitzer gpt train`: a new run, or `--resume` of the run in `--out`.
/// Every checkpoint is the trainer's own (one safetensors file, written
/// atomically); a run killed at any moment and resumed ends with the same
/// weights as an uninterrupted one on the same device.
pub fn train(a: &TrainArgs) -> CliResult {
    let device = a.device.device()?;
    let checkpoint = a.out.join(CHECKPOINT_FILE);
    let run_file = a.out.join(RUN_FILE);
    let games = open_games(&a.games, None)?;
    let (mut trainer, run) = if a.resume {
        if !checkpoint.exists() {
            return Err(format!(
                "{}: no checkpoint to resume ({CHECKPOINT_FILE} is missing); start the run without --resume",
                a.out.display()
            )
            .into());
        }
        let run = RunData::read(&run_file)?;
        run.check_resume(&run_file, &games, a.eval_games)?;
        let mut trainer = GptTrainer::resume(&checkpoint, &device, a.steps)?;
        check_resume_flags(a, &trainer)?;
        // Neither changes the weights, so a resumed run may change them.
        if let Some(e) = a.eval_every {
            trainer.config.eval_every = e;
        }
        if let Some(c) = a.checkpoint_every {
            trainer.config.checkpoint_every = c;
        }
        eprintln!(
            "resuming {} at step {} of {}",
            a.out.display(),
            trainer.step_count(),
            trainer.config.steps
        );
        (trainer, run)
    } else {
        if checkpoint.exists() {
            return Err(format!(
                "{} already holds a training run; pass --resume to continue it or choose another --out",
                a.out.display()
            )
            .into());
        }
        let model = model_config(a, &games)?;
        let config = train_config(a)?;
        super::check_gpt_memory(
            format!(
                "--layers {} --d-model {} --d-mlp {} --heads {} --n-ctx {} with --batch-size {}",
                model.n_layers,
                model.d_model,
                model.d_mlp,
                model.n_heads,
                model.n_ctx,
                config.batch_size
            ),
            &model,
            config.batch_size,
            model.n_ctx,
            kibitzer_sae::device::is_host(&device),
        )?;
        let run = RunData::new(&games, a.eval_games)?;
        let trainer = GptTrainer::new(Gpt::new(model, &device)?, config)?;
        (trainer, run)
    };

    let model_config = trainer.model.config().clone();
    let Sequences {
        tokens: sequences,
        cut,
    } = token_sequences(&games, model_config.n_ctx, true)?;
    if cut > 0 {
        eprintln!(
            "{cut} games are longer than n_ctx = {}: the model trains on their first {} {}",
            model_config.n_ctx,
            model_config.n_ctx,
            games.token_name()
        );
    }
    let (train_sequences, eval_sequences) = sequences.split_at(run.train_games);
    let data = token_dataset(train_sequences, 0, &games, &model_config)?;
    let eval = if eval_sequences.is_empty() {
        None
    } else {
        Some(token_dataset(
            eval_sequences,
            run.train_games,
            &games,
            &model_config,
        )?)
    };
    if !a.resume {
        // Only once the games and settings have passed every check, so a
        // refused run leaves no directory behind.
        std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
        kibitzer_sae::io::atomic_write(&run_file, serde_json::to_string_pretty(&run)?.as_bytes())?;
    }
    let history = trainer.train(&data, eval.as_ref(), Some(&checkpoint), !a.quiet)?;
    trainer.model.save_transformer_lens(&a.out)?;

    // Chess writes every move a character at a time: a sample of the
    // held-out games keeps this short.
    let held_out_end = match &games.list {
        GameList::Othello { .. } => games.len(),
        #[cfg(feature = "chess")]
        GameList::Chess(_) => games.len().min(run.train_games + CHESS_LEGAL_RATE_GAMES),
    };
    let accuracy = if run.train_games >= held_out_end {
        None
    } else {
        Some(games.legal_moves(
            &trainer.model,
            run.train_games..held_out_end,
            trainer.config.eval_batch_size,
        )?)
    };
    let last: Option<&TrainLog> = history.last();
    let summary = serde_json::json!({
        "games": run.games,
        "game": run.game,
        "board_size": run.board_size,
        "train_games": run.train_games,
        "eval_games": run.eval_games,
        "model": model_config,
        "train": trainer.config,
        "final": last,
        "uniform_loss": uniform_loss(&model_config),
        "held_out_legal_move_accuracy": accuracy.map(|a| a.fraction()),
        "held_out_legal_move_games": held_out_end - run.train_games,
        "history": history,
    });
    kibitzer_sae::io::atomic_write(
        &a.out.join(TRAINING_FILE),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    match last {
        Some(log) => println!(
            "step {}: train loss {:.4}  eval loss {}  (uniform guess {:.4})  held-out legal moves {}  -> {}",
            log.step,
            log.train_loss,
            log.eval_loss
                .map_or_else(|| "-".into(), |e| format!("{e:.4}")),
            uniform_loss(&model_config),
            accuracy.map_or_else(|| "-".into(), |a| format!("{:.4}", a.fraction())),
            a.out.display()
        ),
        None => println!("no steps taken -> {}", a.out.display()),
    }
    Ok(())
}

/// What `kibitzer gpt eval` reports.
#[derive(Debug, serde::Serialize)]
struct EvalReport {
    model: PathBuf,
    games: PathBuf,
    game: &'static str,
    board_size: usize,
    games_scored: usize,
    /// Positions scored within the model's context: Othello after every
    /// move that does not end the game; chess where every move starts.
    positions: usize,
    /// Positions whose prediction (Othello: the top-1 token; chess: the
    /// move written greedily) is a legal move.
    legal: usize,
    legal_move_accuracy: f64,
    /// Mean next-token cross-entropy over every move after the first.
    eval_loss: f64,
    /// `ln(vocabulary)`: the loss of a uniform guess.
    uniform_loss: f64,
}

/// `kibitzer gpt eval`.
pub fn eval(a: &EvalArgs) -> CliResult {
    let device = a.device.device()?;
    let games = open_games(&a.games, a.max_games)?;
    let model = load_model(&a.model, &device, &games)?;
    let config = model.config().clone();
    // Checks every game (naming the file and game) before any forward pass.
    let sequences = token_sequences(&games, config.n_ctx, true)?.tokens;
    let data = token_dataset(&sequences, 0, &games, &config)?;
    let accuracy = games.legal_moves(&model, 0..games.len(), a.batch_size)?;
    let report = EvalReport {
        model: a.model.clone(),
        games: games.path.clone(),
        game: games.game(),
        board_size: games.board_size(),
        games_scored: games.len(),
        positions: accuracy.positions,
        legal: accuracy.legal,
        legal_move_accuracy: accuracy.fraction(),
        eval_loss: evaluate(&model, &data, a.batch_size)?,
        uniform_loss: uniform_loss(&config),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: legal moves {:.4} ({} of {} positions in {} games)  eval loss {:.4}  (uniform guess {:.4})",
            a.model.display(),
            report.legal_move_accuracy,
            report.legal,
            report.positions,
            report.games_scored,
            report.eval_loss,
            report.uniform_loss
        );
    }
    Ok(())
}

/// Hands out at most `max` games per forward pass (`--batch-size`), below
/// what the memory ceiling would allow.
struct GamesPerPass {
    inner: TokenSequences,
    max: usize,
}

impl ExampleSource<Tensor<2, Int>> for GamesPerPass {
    fn next_examples(&mut self, max: usize) -> Result<Option<Examples<Tensor<2, Int>>>, HookError> {
        self.inner.next_examples(max.min(self.max))
    }
}

/// How the rows of an Othello store are ordered, recorded in its metadata.
const OTHELLO_ROW_ORDER: &str = "one row per square move: games in file order, each game's moves in order \
     (passes have no token and no row); row = the activation at that move's token, which has read \
     the game up to and including the move; the order of `kibitzer bsp labels --game othello` on \
     the same games file (columns example = game, position = token)";

/// How the rows of a chess store are ordered, recorded in its metadata.
#[cfg(feature = "chess")]
const CHESS_ROW_ORDER: &str = "one row per '.' of each game's transcript (White to move, before White's \
     move; reference 002's positions): games in file order, dots in order, within the model's context; \
     the order of `kibitzer bsp labels --game chess --max-chars <n_ctx>` on the same games file \
     (columns example = game, position = character index)";

/// `kibitzer gpt harvest`: the model's activations at `--site` into a new
/// store.
///
/// Chess: one row per `.` of each transcript within the context (games in
/// order, dots in order), the rows of `kibitzer bsp labels --game chess
/// --max-chars <n_ctx>`.
///
/// Othello row order: every game of the file in order (the first `--max-games`),
/// and within a game every square move in order, one row per move: the
/// activation at the move's token position. Passes are not tokens and get
/// no row, and padding positions after a game's last move are dropped. This
/// is exactly the order of `kibitzer_bsp::labelling::othello_at_moves`,
/// which `kibitzer bsp labels --game othello --games FILE` writes (it
/// labels the position after each square move and skips passes): row `r`
/// of the store and line `r` of the labels are the same (game, token),
/// and the store's `example` and `position` columns hold that game and
/// token index. With `--truncate`, games are cut to the model's `n_ctx`
/// moves, which `kibitzer bsp labels --first-per-game <n_ctx>` matches.
/// The order is a checked contract: `eval bsp` and `sweep` compare the
/// columns with the labels' (game, token) row for row
/// (`kibitzer::board_eval::check_rows_match_labels`).
pub fn harvest_store(a: &HarvestArgs) -> CliResult {
    let site: HookSite = a.site.parse().map_err(|e| format!("--site: {e}"))?;
    if a.batch_size == Some(0) {
        return Err("--batch-size must be at least 1".into());
    }
    let device = a.device.device()?;
    let games = open_games(&a.games, a.max_games)?;
    let model = load_model(&a.model, &device, &games)?;
    let model = match a.random_init {
        Some(seed) => Gpt::new(
            GptConfig {
                seed: Some(seed),
                ..model.config().clone()
            },
            &device,
        )?,
        None => model,
    };
    let n_ctx = model.config().n_ctx;
    let Sequences {
        tokens: sequences,
        cut,
    } = token_sequences(&games, n_ctx, a.truncate)?;
    if cut > 0 {
        eprintln!(
            "{cut} games were cut to their first {n_ctx} {}: label them with `kibitzer bsp labels {}`",
            games.token_name(),
            games.label_flag(n_ctx)
        );
    }
    // The model is causal, so padding only to the longest game (not to
    // n_ctx) leaves every kept row as it is and saves the padded positions.
    let seq_len = sequences.iter().map(Vec::len).max().unwrap_or(0).max(1);
    // Forward passes are sized to fit --memory-mib (--batch-size only caps
    // them), so that ceiling, beside the model, is what must fit.
    let config = model.config();
    let params = kibitzer_store::memory::product(&[
        config.n_layers,
        config.d_model,
        config.d_model.saturating_add(config.d_mlp),
        4,
    ]);
    kibitzer_store::memory::check(
        format!("--memory-mib {}", a.memory_mib),
        ((a.memory_mib as u128) << 20).saturating_add(kibitzer_store::memory::f32_bytes(params)),
    )?;
    let source = TokenSequences::new(&sequences, seq_len, Some(games.pad_token()), false, &device)?;
    let (source, row_order) = match &games.list {
        GameList::Othello { .. } => (source, OTHELLO_ROW_ORDER),
        #[cfg(feature = "chess")]
        GameList::Chess(_) => (
            source.keeping_only_token(kibitzer_models::gpt::chess::DOT_TOKEN),
            CHESS_ROW_ORDER,
        ),
    };
    let expected_rows = source.harvested_rows() as u64;
    let source = GamesPerPass {
        inner: source,
        max: a.batch_size.unwrap_or(usize::MAX),
    };
    let metadata = serde_json::json!({
        "model": a.model,
        "random_init": a.random_init,
        "games": games.path,
        "game": games.game(),
        "board_size": games.board_size(),
        "games_harvested": games.len(),
        "truncated_to": a.truncate.then_some(n_ctx),
        "row_order": row_order,
        ROW_IDS_KEY: ROW_IDS_GAME_TOKEN,
    });
    let config = HarvestConfig {
        store: StoreConfig {
            dtype: a.dtype.into(),
            rows_per_shard: a.rows_per_shard,
            metadata,
            overwrite: a.overwrite,
            ..StoreConfig::new(1)
        },
        max_rows: None,
        memory_ceiling_bytes: a.memory_mib.saturating_mul(1 << 20),
        progress: !a.quiet,
        columns: None,
    };
    // An unknown site fails here, before the store is created, with the
    // model's sites listed.
    let manifest = harvest(&model, site, source, &a.out, &config)?;
    if manifest.rows != expected_rows {
        return Err(format!(
            "{}: harvested {} rows, but the games have {expected_rows} positions to harvest",
            a.out.display(),
            manifest.rows
        )
        .into());
    }
    println!(
        "wrote {} rows of width {} at {site} from {} games to {}",
        manifest.rows,
        manifest.d_in,
        games.len(),
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn train_args(flags: &[&str]) -> TrainArgs {
        let mut argv = vec!["train", "--games", "g.bin", "--out", "o"];
        argv.extend_from_slice(flags);
        Train::try_parse_from(argv).unwrap().args
    }

    fn othello_games(size: usize, n: usize) -> Games {
        Games {
            path: "g.bin".into(),
            in_file: n,
            checksum: 1,
            list: GameList::Othello {
                size,
                games: Vec::new(),
            },
        }
    }

    fn games(n: usize) -> Games {
        othello_games(6, n)
    }

    #[test]
    fn model_defaults_follow_othello_gpt_for_the_board() {
        let c = model_config(&train_args(&[]), &games(1)).unwrap();
        assert_eq!(
            (c.n_layers, c.d_model, c.n_heads, c.d_head, c.d_mlp),
            (8, 512, 8, 64, 2048)
        );
        // 32 squares + padding; the longest 6x6 game has 32 moves.
        assert_eq!((c.d_vocab, c.n_ctx, c.seed), (33, 32, Some(0)));
        let c = model_config(
            &train_args(&[
                "--layers",
                "2",
                "--d-model",
                "32",
                "--heads",
                "4",
                "--d-mlp",
                "40",
                "--n-ctx",
                "20",
                "--seed",
                "3",
            ]),
            &othello_games(8, 1),
        )
        .unwrap();
        assert_eq!(
            (
                c.n_layers, c.d_model, c.n_heads, c.d_head, c.d_mlp, c.d_vocab, c.n_ctx, c.seed
            ),
            (2, 32, 4, 8, 40, 61, 20, Some(3))
        );
        let err =
            model_config(&train_args(&["--d-model", "30", "--heads", "4"]), &games(1)).unwrap_err();
        assert!(err.to_string().contains("--d-model 30"), "{err}");
    }

    #[test]
    fn warm_up_is_at_most_a_tenth_of_a_short_run() {
        assert_eq!(train_config(&train_args(&[])).unwrap().warmup_steps, 100);
        assert_eq!(
            train_config(&train_args(&["--steps", "300"]))
                .unwrap()
                .warmup_steps,
            30
        );
        let c = train_config(&train_args(&[
            "--steps", "300", "--warmup", "7", "--lr", "0.01",
        ]))
        .unwrap();
        assert_eq!((c.steps, c.warmup_steps, c.lr), (300, 7, 0.01));
        assert!(train_config(&train_args(&["--steps", "0"])).is_err());
    }

    #[test]
    fn held_out_games_are_a_tenth_capped_at_a_thousand() {
        let run = RunData::new(&games(600), None).unwrap();
        assert_eq!((run.train_games, run.eval_games), (540, 60));
        let run = RunData::new(&games(50_000), None).unwrap();
        assert_eq!((run.train_games, run.eval_games), (49_000, 1000));
        let run = RunData::new(&games(600), Some(0)).unwrap();
        assert_eq!((run.train_games, run.eval_games), (600, 0));
        let err = RunData::new(&games(5), Some(5)).unwrap_err();
        assert!(
            err.to_string().contains("leaves no game to train on"),
            "{err}"
        );
    }

    #[cfg(feature = "chess")]
    #[test]
    fn chess_games_make_a_chess_gpt_and_resume_only_on_chess() {
        let chess = Games {
            path: "g.pgn".into(),
            in_file: 600,
            checksum: 1,
            list: GameList::Chess(Vec::new()),
        };
        let c = model_config(&train_args(&[]), &chess).unwrap();
        assert_eq!((c.d_vocab, c.vocab_out(), c.n_ctx), (33, 32, 1023));
        let c = model_config(&train_args(&["--n-ctx", "256"]), &chess).unwrap();
        assert_eq!(c.n_ctx, 256);
        let run = RunData::new(&chess, None).unwrap();
        assert_eq!((run.game.as_str(), run.board_size), ("chess", 8));
        let file = Path::new("o/run.json");
        assert!(run.check_resume(file, &chess, None).is_ok());
        // The same count and checksum of Othello games on an 8x8 board.
        let err = run
            .check_resume(file, &othello_games(8, 600), None)
            .unwrap_err();
        assert!(err.to_string().contains("600 chess games"), "{err}");
        // A run.json written before chess existed is an Othello run.
        let old = r#"{"format":"kibitzer-gpt-run-v1","games":"g.bin","board_size":6,"games_in_file":600,
            "games_checksum":"0000000000000001","train_games":540,"eval_games":60}"#;
        let run: RunData = serde_json::from_str(old).unwrap();
        assert_eq!(run.game, "othello");
        assert!(run.check_resume(file, &games(600), None).is_ok());
        assert!(run.check_resume(file, &chess, None).is_err());
    }

    #[test]
    fn resume_checks_the_games_and_the_split() {
        let run = RunData::new(&games(600), None).unwrap();
        let file = Path::new("o/run.json");
        assert!(run.check_resume(file, &games(600), None).is_ok());
        assert!(run.check_resume(file, &games(600), Some(60)).is_ok());
        assert!(run.check_resume(file, &games(601), None).is_err());
        let other = Games {
            checksum: 2,
            ..games(600)
        };
        let err = run.check_resume(file, &other, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("not the games the run was trained on"),
            "{err}"
        );
        let err = run.check_resume(file, &games(600), Some(10)).unwrap_err();
        assert!(err.to_string().contains("--eval-games 10"), "{err}");
    }
}
