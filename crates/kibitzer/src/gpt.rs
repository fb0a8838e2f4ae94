//! A GPT on games, from a games file to an activation store: train an
//! OthelloGPT or a ChessGPT ([`train`]), score its legal moves
//! ([`evaluate_games`]) and harvest its activations at a TransformerLens hook
//! site into a store whose rows are the rows of `kibitzer bsp labels` for
//! the same file ([`harvest_games`]). `kibitzer gpt train|eval|harvest` is
//! this module behind flags.
//!
//! The game comes from the file ([`GameCorpus`]): an Othello dataset
//! (`kibitzer games generate othello`) makes an OthelloGPT, whose tokens
//! are square moves (passes have no token, as in OthelloGPT's vocabulary;
//! position `i` reads moves `0..=i` and predicts move `i + 1`); chess games
//! (.pgn, or .jsonl from `kibitzer games generate chess`) make a ChessGPT,
//! whose tokens are the characters of the games' transcripts
//! (`;1.e4 e5 2.Nf3`, Karvonen's format; position `i` predicts character
//! `i + 1`).
//!
//! A run directory holds the model in TransformerLens layout
//! (`config.json`, `model.safetensors`) and the files named in [`files`].

use crate::board_eval::{ROW_IDS_GAME_TOKEN, ROW_IDS_KEY};
use burn::tensor::{Device, Int, Tensor};
use kibitzer_games::dataset::{DatasetError, OthelloDataset};
use kibitzer_games::files::{GameFileError, GameFileKind, game_file_kind};
use kibitzer_games::othello::OthelloMove;
use kibitzer_games::othello::transcript::vocab_size;
use kibitzer_hooks::{
    ExampleSource, Examples, HarvestConfig, HookError, HookSite, TokenSequences, harvest,
};
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_models::gpt::LegalMoveAccuracy;
use kibitzer_models::gpt::othello::{legal_move_accuracy, othello_gpt_config, othello_sequences};
use kibitzer_models::{
    Gpt, GptConfig, GptTrainConfig, GptTrainer, ModelError, TokenDataset, TrainLog,
};
use kibitzer_store::{Dtype, MemoryError, StoreConfig, StoreError, Xxh64};
use std::path::{Path, PathBuf};

/// File names inside a run directory (beside the model's `config.json`
/// and `model.safetensors`).
pub mod files {
    /// The trainer's checkpoint (weights, AdamW state, step, history).
    pub const CHECKPOINT: &str = "checkpoint.safetensors";
    /// The data a run trains on, written when it starts and checked on
    /// resume ([`super::GptRun`]).
    pub const RUN: &str = "run.json";
    /// The settings and history of a finished run.
    pub const TRAINING: &str = "training.json";
}

/// The `format` of [`files::RUN`].
pub const RUN_FORMAT: &str = "kibitzer-gpt-run-v1";

/// OthelloGPT's published shape (Li et al. 2023): 8 blocks of width 512
/// with 8 heads; Karvonen's ChessGPT has the same.
pub const DEFAULT_LAYERS: usize = 8;
/// See [`DEFAULT_LAYERS`].
pub const DEFAULT_D_MODEL: usize = 512;
/// See [`DEFAULT_LAYERS`].
pub const DEFAULT_HEADS: usize = 8;
/// Characters a ChessGPT reads by default: Karvonen's context (reference
/// 002 reads the board in the first 256).
pub const DEFAULT_CHESS_N_CTX: usize = 1023;
/// Held-out chess games whose legal-move rate [`train`] reports at the end:
/// every move is written character by character, a forward pass per
/// character, so all 1000 held-out games would take longer than it should.
pub const CHESS_LEGAL_RATE_GAMES: usize = 100;

/// What can go wrong in the GPT pipeline. Every message names the file,
/// game or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum GptRunError {
    /// Settings or data that cannot work (the message says what and why).
    #[error("{0}")]
    Invalid(String),
    /// The model, its training or its checkpoint.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A chess games file.
    #[error(transparent)]
    GameFile(#[from] GameFileError),
    /// An Othello dataset.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Hooks and harvesting.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The activation store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A run that cannot fit in memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
}

/// The pipeline's results.
pub type Result<T> = std::result::Result<T, GptRunError>;

fn invalid(message: impl Into<String>) -> GptRunError {
    GptRunError::Invalid(message.into())
}

/// The games of a games file, by game.
#[derive(Clone, Debug)]
pub enum GameList {
    /// Othello on a `size` board, each game its moves.
    Othello {
        /// Board side.
        size: usize,
        /// Each game's moves.
        games: Vec<Vec<OthelloMove>>,
    },
    /// Chess games from the standard start.
    #[cfg(feature = "chess")]
    Chess(Vec<kibitzer_games::chess::Chess>),
}

/// The games of a games file (the first `max_games` when limited), with
/// what tells the file from another on resume.
#[derive(Clone, Debug)]
pub struct GameCorpus {
    /// The file.
    pub path: PathBuf,
    /// Games in the file (all of them, also when fewer were loaded).
    pub in_file: usize,
    /// XXH64 of every game's moves (Othello: the move bytes; chess: the
    /// transcript), each prefixed by its length.
    pub checksum: u64,
    /// The games loaded.
    pub list: GameList,
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

/// Token sequences of some games.
#[derive(Clone, Debug)]
pub struct Sequences {
    /// One sequence per game.
    pub tokens: Vec<Vec<u32>>,
    /// How many games were cut to the model's context.
    pub cut: usize,
}

impl GameCorpus {
    /// The first `max_games` games (all when `None`) of `path`: an Othello
    /// dataset, or chess games (.pgn, .jsonl) each checked to have a
    /// transcript (a standard start). The checksum covers the whole file.
    pub fn open(path: &Path, max_games: Option<usize>) -> Result<GameCorpus> {
        match game_file_kind(path)? {
            GameFileKind::OthelloDataset => Self::open_othello(path, max_games),
            #[cfg(feature = "chess")]
            GameFileKind::Pgn | GameFileKind::RatedJsonLines => Self::open_chess(path, max_games),
            #[cfg(not(feature = "chess"))]
            _ => Err(invalid(format!(
                "{}: chess games need the `chess` feature, which this build was compiled without",
                path.display()
            ))),
        }
    }

    fn open_othello(path: &Path, max_games: Option<usize>) -> Result<GameCorpus> {
        // The dataset's errors name the file (missing, not a dataset, truncated).
        let dataset = OthelloDataset::open(path)?;
        if dataset.is_empty() {
            return Err(invalid(format!(
                "{}: the games file holds no games",
                path.display()
            )));
        }
        let n = max_games.unwrap_or(dataset.len()).min(dataset.len());
        let checksum = checksum((0..dataset.len()).map(|index| {
            dataset
                .game_bytes(index)
                .expect("every index below len has a game")
        }));
        Ok(GameCorpus {
            path: path.to_path_buf(),
            in_file: dataset.len(),
            checksum,
            list: GameList::Othello {
                size: dataset.board_size(),
                games: dataset.iter().take(n).collect(),
            },
        })
    }

    #[cfg(feature = "chess")]
    fn open_chess(path: &Path, max_games: Option<usize>) -> Result<GameCorpus> {
        use kibitzer_games::chess::transcript::Transcript;
        // The whole file is read for the checksum; only the first games are kept.
        let mut games = kibitzer_games::files::read_chess_games(path, None)?;
        if games.is_empty() {
            return Err(invalid(format!(
                "{}: the file holds no chess games",
                path.display()
            )));
        }
        let transcripts = games
            .iter()
            .enumerate()
            .map(|(i, game)| {
                Transcript::from_game(game)
                    .map(|t| t.text)
                    .map_err(|e| invalid(format!("{}: game {i}: {e}", path.display())))
            })
            .collect::<Result<Vec<String>>>()?;
        let in_file = games.len();
        games.truncate(max_games.unwrap_or(in_file));
        Ok(GameCorpus {
            path: path.to_path_buf(),
            in_file,
            checksum: checksum(transcripts.iter().map(|t| t.as_bytes())),
            list: GameList::Chess(games),
        })
    }

    /// The game's name, as `run.json` and the reports write it.
    pub fn game(&self) -> &'static str {
        match &self.list {
            GameList::Othello { .. } => "othello",
            #[cfg(feature = "chess")]
            GameList::Chess(_) => "chess",
        }
    }

    /// The board side (8 for chess).
    pub fn board_size(&self) -> usize {
        match &self.list {
            GameList::Othello { size, .. } => *size,
            #[cfg(feature = "chess")]
            GameList::Chess(_) => 8,
        }
    }

    /// Games loaded (the first `max_games` of the file).
    pub fn len(&self) -> usize {
        match &self.list {
            GameList::Othello { games, .. } => games.len(),
            #[cfg(feature = "chess")]
            GameList::Chess(games) => games.len(),
        }
    }

    /// Whether no game was loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The padding token of the game's vocabulary.
    pub fn pad_token(&self) -> u32 {
        match &self.list {
            GameList::Othello { .. } => u32::from(kibitzer_games::othello::transcript::PAD_TOKEN),
            #[cfg(feature = "chess")]
            GameList::Chess(_) => kibitzer_models::gpt::chess::PAD_TOKEN,
        }
    }

    /// How `bsp labels` cuts its positions to a context of `n_ctx` tokens.
    pub fn label_flag(&self, n_ctx: usize) -> String {
        match &self.list {
            GameList::Othello { .. } => format!("--first-per-game {n_ctx}"),
            #[cfg(feature = "chess")]
            GameList::Chess(_) => format!("--max-chars {n_ctx}"),
        }
    }

    /// What a token is, for messages.
    pub fn token_name(&self) -> &'static str {
        match &self.list {
            GameList::Othello { .. } => "square moves",
            #[cfg(feature = "chess")]
            GameList::Chess(_) => "transcript characters",
        }
    }

    /// The legal-move score of `model` on games `range` of the list.
    pub fn legal_moves(
        &self,
        model: &Gpt,
        range: std::ops::Range<usize>,
        batch_size: usize,
    ) -> Result<LegalMoveAccuracy> {
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

    /// The games as token sequences, each cut to `n_ctx` tokens when
    /// `truncate`; a longer game is an error otherwise.
    pub fn token_sequences(&self, n_ctx: usize, truncate: bool) -> Result<Sequences> {
        let sequences = match &self.list {
            GameList::Othello { size, games } => othello_sequences(games, *size),
            #[cfg(feature = "chess")]
            GameList::Chess(games) => kibitzer_models::gpt::chess::chess_sequences(games),
        };
        let mut sequences =
            sequences.map_err(|e| invalid(format!("{}: {e}", self.path.display())))?;
        let mut cut = 0;
        for (game, sequence) in sequences.iter_mut().enumerate() {
            if sequence.len() > n_ctx {
                if !truncate {
                    return Err(invalid(format!(
                        "{}: game {game} has {} {}, more than the model's context n_ctx = {n_ctx}; \
                         pass --truncate to keep the first {n_ctx} of each game, and label them with \
                         `kibitzer bsp labels {}` so the rows line up",
                        self.path.display(),
                        sequence.len(),
                        self.token_name(),
                        self.label_flag(n_ctx),
                    )));
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

    /// A next-token dataset of `sequences` (games `first_game..` of the
    /// file), with a file-level error when a game is too short to predict
    /// anything.
    pub fn token_dataset(
        &self,
        sequences: &[Vec<u32>],
        first_game: usize,
        config: &GptConfig,
    ) -> Result<TokenDataset> {
        if let Some(i) = sequences.iter().position(|s| s.len() < 2) {
            return Err(invalid(format!(
                "{}: game {} has {} {}; a game needs at least 2 to train or score a prediction",
                self.path.display(),
                first_game + i,
                sequences[i].len(),
                self.token_name(),
            )));
        }
        Ok(TokenDataset::new(
            sequences,
            Some(self.pad_token()),
            config.d_vocab,
            config.n_ctx,
        )?)
    }

    /// Loads a saved GPT and checks that its vocabulary is the one of this
    /// corpus's game (OthelloGPT's for its board, or ChessGPT's).
    pub fn load_model(&self, dir: &Path, device: &Device) -> Result<Gpt> {
        let model = Gpt::load_dir(dir, device)?;
        let c = model.config();
        let (vocab_in, vocab_out, what) = match &self.list {
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
            return Err(invalid(format!(
                "{}: the model reads {} and predicts {} tokens, but {what} {} reads {vocab_in} and predicts {vocab_out}",
                dir.display(),
                c.d_vocab,
                c.vocab_out(),
                self.path.display(),
            )));
        }
        Ok(model)
    }
}

/// `sequences` as one `[sequences, longest]` batch of token ids, the
/// shorter ones padded with `pad` at the end: the ids (row-major), the
/// width, and the tensor on `device`.
pub fn padded_batch(
    sequences: &[Vec<u32>],
    pad: u32,
    device: &Device,
) -> (Vec<i64>, usize, Tensor<2, Int>) {
    let len = sequences.iter().map(Vec::len).max().unwrap_or(0);
    let ids: Vec<i64> = sequences
        .iter()
        .flat_map(|s| {
            s.iter()
                .map(|&t| t as i64)
                .chain(std::iter::repeat_n(pad as i64, len - s.len()))
        })
        .collect();
    let tensor = Tensor::from_data(
        burn::tensor::TensorData::new(ids.clone(), [sequences.len(), len]),
        device,
    );
    (ids, len, tensor)
}

/// The loss of always predicting every token with equal probability.
pub fn uniform_loss(config: &GptConfig) -> f64 {
    (config.vocab_out() as f64).ln()
}

/// Refuses to train a GPT of `config` on batches of `batch` sequences of
/// `seq_len` tokens when it cannot fit in memory, before anything is
/// allocated; `what` names the settings. The estimate aims low, so that no
/// run that fits is refused: the parameters five times (weights,
/// gradients, Adam's moments, the host copy) and, per token and layer, the
/// residual stream and its sub-layer outputs (8 x `d_model`), the MLP's
/// hidden units (2 x `d_mlp`) and the attention pattern (2 x `n_heads` x
/// `seq_len`), once, plus the logits. On a GPU (`on_host` false) only the
/// parameters, once, are checked against the host's memory.
pub fn check_training_memory(
    what: String,
    config: &GptConfig,
    batch: usize,
    seq_len: usize,
    on_host: bool,
) -> std::result::Result<(), MemoryError> {
    use kibitzer_store::memory::{check, f32_bytes, product};
    let c = config;
    let attention = product(&[4, c.d_model, c.n_heads, c.d_head]);
    let mlp = product(&[2, c.d_model, c.d_mlp]);
    let vocab = c.d_vocab.max(usize::try_from(c.d_vocab_out).unwrap_or(0));
    let params = product(&[c.n_layers])
        .saturating_mul(attention.saturating_add(mlp))
        .saturating_add(product(&[vocab, c.d_model, 2]))
        .saturating_add(product(&[c.n_ctx, c.d_model]));
    if !on_host {
        return check(what, f32_bytes(params));
    }
    let per_token = product(&[8, c.d_model])
        .saturating_add(product(&[2, c.d_mlp]))
        .saturating_add(product(&[2, c.n_heads, seq_len]));
    let activations = product(&[batch, seq_len, c.n_layers.max(1)])
        .saturating_mul(per_token)
        .saturating_add(product(&[batch, seq_len, vocab]));
    check(
        what,
        f32_bytes(params.saturating_mul(5).saturating_add(activations)),
    )
}

/// What a run trains on: written to [`files::RUN`] when the run starts, so
/// that a resumed run sees the same games split the same way.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GptRun {
    /// [`RUN_FORMAT`].
    pub format: String,
    /// The games file.
    pub games: PathBuf,
    /// `othello` or `chess` (runs written before chess was added are Othello).
    #[serde(default = "othello_name")]
    pub game: String,
    /// Board side.
    pub board_size: usize,
    /// Games in the file.
    pub games_in_file: usize,
    /// [`GameCorpus::checksum`] in hex.
    pub games_checksum: String,
    /// Games `0..train_games` train; the rest are held out.
    pub train_games: usize,
    /// The last games of the file, held out.
    pub eval_games: usize,
}

fn othello_name() -> String {
    "othello".into()
}

impl GptRun {
    /// A run on `games` holding out the last `eval_games` (a tenth of the
    /// file, at most 1000, when `None`).
    pub fn new(games: &GameCorpus, eval_games: Option<usize>) -> Result<GptRun> {
        let n = games.in_file;
        let eval_games = eval_games.unwrap_or((n / 10).min(1000));
        if eval_games >= n {
            return Err(invalid(format!(
                "--eval-games {eval_games} leaves no game to train on: {} holds {n}",
                games.path.display()
            )));
        }
        Ok(GptRun {
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

    /// Reads a run file, checking its format.
    pub fn read(path: &Path) -> Result<GptRun> {
        let text = std::fs::read_to_string(path).at_file(path)?;
        let run: GptRun = serde_json::from_str(&text).at_file(path)?;
        if run.format != RUN_FORMAT {
            return Err(FileError::new(
                path,
                format!("format is {:?}, expected {RUN_FORMAT:?}", run.format),
            )
            .into());
        }
        Ok(run)
    }

    /// Refuses to resume on other games or another split than the run's.
    pub fn check_resume(
        &self,
        run_file: &Path,
        games: &GameCorpus,
        eval_games: Option<usize>,
    ) -> Result<()> {
        if games.game() != self.game
            || games.board_size() != self.board_size
            || games.in_file != self.games_in_file
            || format!("{:016x}", games.checksum) != self.games_checksum
        {
            return Err(invalid(format!(
                "{}: not the games the run was trained on ({}: {} {} games of {}x{}, checksum {}; see {})",
                games.path.display(),
                self.games.display(),
                self.games_in_file,
                self.game,
                self.board_size,
                self.board_size,
                self.games_checksum,
                run_file.display()
            )));
        }
        if let Some(e) = eval_games
            && e != self.eval_games
        {
            return Err(invalid(format!(
                "--eval-games {e}: the run holds out {} games ({}); a resumed run keeps its split",
                self.eval_games,
                run_file.display()
            )));
        }
        Ok(())
    }
}

/// The settings of a training run; `None` takes the default (OthelloGPT's
/// shape, [`GptTrainConfig::default`]'s training). Each is a flag of
/// `kibitzer gpt train`, and the messages name them so.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainSettings {
    /// Blocks [default: 8].
    pub layers: Option<usize>,
    /// Attention heads per block [default: 8].
    pub heads: Option<usize>,
    /// Residual stream width, a multiple of `heads` [default: 512].
    pub d_model: Option<usize>,
    /// MLP hidden width [default: 4 x `d_model`].
    pub d_mlp: Option<usize>,
    /// Context length [default: Othello the longest possible game; chess
    /// [`DEFAULT_CHESS_N_CTX`]].
    pub n_ctx: Option<usize>,
    /// Optimiser steps; on resume, extends (or shortens) the run.
    pub steps: Option<u64>,
    /// Games per step.
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    pub lr: Option<f64>,
    /// Linear warm-up steps [default: 100, or a tenth of `steps` if fewer].
    pub warmup: Option<u64>,
    /// Evaluate every N steps (and at the end); 0: only at the end.
    pub eval_every: Option<u64>,
    /// Checkpoint every N steps (and at the end); 0: only at the end.
    pub checkpoint_every: Option<u64>,
    /// Games held out at the end of the file (see [`GptRun::new`]).
    pub eval_games: Option<usize>,
    /// Seed of the initial weights and of the batch order [default: 0].
    pub seed: Option<u64>,
}

impl TrainSettings {
    /// The model config these settings ask for on the game of `games`.
    pub fn model_config(&self, games: &GameCorpus) -> Result<GptConfig> {
        let layers = self.layers.unwrap_or(DEFAULT_LAYERS);
        let d_model = self.d_model.unwrap_or(DEFAULT_D_MODEL);
        let heads = self.heads.unwrap_or(DEFAULT_HEADS);
        if heads == 0 || !d_model.is_multiple_of(heads) {
            return Err(invalid(format!(
                "--d-model {d_model} must be a positive multiple of --heads {heads} (each head is d_model / heads wide)"
            )));
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
        if let Some(d_mlp) = self.d_mlp {
            config.d_mlp = d_mlp;
        }
        if let Some(n_ctx) = self.n_ctx {
            config.n_ctx = n_ctx;
        }
        config.seed = Some(self.seed.unwrap_or(0));
        config.validate()?;
        Ok(config)
    }

    /// The training settings asked for (the trainer's defaults otherwise).
    pub fn train_config(&self) -> Result<GptTrainConfig> {
        let d = GptTrainConfig::default();
        let steps = self.steps.unwrap_or(d.steps);
        if steps == 0 {
            return Err(invalid("--steps must be at least 1"));
        }
        let config = GptTrainConfig {
            steps,
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(d.lr),
            warmup_steps: self.warmup.unwrap_or(d.warmup_steps.min(steps / 10)),
            eval_every: self.eval_every.unwrap_or(d.eval_every),
            checkpoint_every: self.checkpoint_every.unwrap_or(d.checkpoint_every),
            seed: self.seed.unwrap_or(0),
            ..d
        };
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings that would change a resumed run's model or training
    /// (a resumed run must end where the uninterrupted one would).
    fn check_resume(&self, out: &Path, trainer: &GptTrainer) -> Result<()> {
        let m = trainer.model.config();
        let t = &trainer.config;
        let given: [(&str, Option<String>, String); 9] = [
            (
                "--layers",
                self.layers.map(|v| v.to_string()),
                m.n_layers.to_string(),
            ),
            (
                "--heads",
                self.heads.map(|v| v.to_string()),
                m.n_heads.to_string(),
            ),
            (
                "--d-model",
                self.d_model.map(|v| v.to_string()),
                m.d_model.to_string(),
            ),
            (
                "--d-mlp",
                self.d_mlp.map(|v| v.to_string()),
                m.d_mlp.to_string(),
            ),
            (
                "--n-ctx",
                self.n_ctx.map(|v| v.to_string()),
                m.n_ctx.to_string(),
            ),
            (
                "--batch-size",
                self.batch_size.map(|v| v.to_string()),
                t.batch_size.to_string(),
            ),
            ("--lr", self.lr.map(|v| v.to_string()), t.lr.to_string()),
            (
                "--warmup",
                self.warmup.map(|v| v.to_string()),
                t.warmup_steps.to_string(),
            ),
            (
                "--seed",
                self.seed.map(|v| v.to_string()),
                t.seed.to_string(),
            ),
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
            return Err(invalid(format!(
                "{}: --resume continues the run with its own settings; only --steps, --eval-every and --checkpoint-every may change, but {} differ",
                out.display(),
                conflicts.join(", ")
            )));
        }
        Ok(())
    }
}

/// What [`train`] did.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// The run's games and split.
    pub run: GptRun,
    /// The model trained.
    pub model: GptConfig,
    /// Its training settings.
    pub train: GptTrainConfig,
    /// The last log entry (`None`: no step taken).
    pub last: Option<TrainLog>,
    /// [`uniform_loss`] of the model.
    pub uniform_loss: f64,
    /// The held-out legal-move accuracy (`None`: nothing held out).
    pub held_out_legal_move_accuracy: Option<f64>,
    /// Games it was measured on.
    pub held_out_legal_move_games: usize,
    /// Games longer than the context, cut to it.
    pub cut: usize,
    /// Whether the run was resumed.
    pub resumed_at: Option<u64>,
}

/// Trains a GPT on `games_path` into the run directory `out`, or with
/// `resume` continues the run there from its checkpoint (with its own
/// settings: only `steps`, `eval_every` and `checkpoint_every` may change).
/// Every checkpoint is the trainer's own (one safetensors file, written
/// atomically); a run killed at any moment and resumed ends with the same
/// weights as an uninterrupted one on the same device. At the end the model
/// is saved in TransformerLens layout and [`files::TRAINING`] written.
pub fn train(
    games_path: &Path,
    out: &Path,
    settings: &TrainSettings,
    resume: bool,
    device: &Device,
    progress: bool,
) -> Result<TrainReport> {
    let checkpoint = out.join(files::CHECKPOINT);
    let run_file = out.join(files::RUN);
    let games = GameCorpus::open(games_path, None)?;
    let (mut trainer, run, resumed_at) = if resume {
        if !checkpoint.exists() {
            return Err(invalid(format!(
                "{}: no checkpoint to resume ({} is missing); start the run without --resume",
                out.display(),
                files::CHECKPOINT
            )));
        }
        let run = GptRun::read(&run_file)?;
        run.check_resume(&run_file, &games, settings.eval_games)?;
        let mut trainer = GptTrainer::resume(&checkpoint, device, settings.steps)?;
        settings.check_resume(out, &trainer)?;
        // Neither changes the weights, so a resumed run may change them.
        if let Some(e) = settings.eval_every {
            trainer.config.eval_every = e;
        }
        if let Some(c) = settings.checkpoint_every {
            trainer.config.checkpoint_every = c;
        }
        let at = trainer.step_count();
        (trainer, run, Some(at))
    } else {
        if checkpoint.exists() {
            return Err(invalid(format!(
                "{} already holds a training run; pass --resume to continue it or choose another --out",
                out.display()
            )));
        }
        let model = settings.model_config(&games)?;
        let config = settings.train_config()?;
        check_training_memory(
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
            kibitzer_sae::device::is_host(device),
        )?;
        let run = GptRun::new(&games, settings.eval_games)?;
        let trainer = GptTrainer::new(Gpt::new(model, device)?, config)?;
        (trainer, run, None)
    };

    let model_config = trainer.model.config().clone();
    let Sequences {
        tokens: sequences,
        cut,
    } = games.token_sequences(model_config.n_ctx, true)?;
    let (train_sequences, eval_sequences) = sequences.split_at(run.train_games);
    let data = games.token_dataset(train_sequences, 0, &model_config)?;
    let eval = if eval_sequences.is_empty() {
        None
    } else {
        Some(games.token_dataset(eval_sequences, run.train_games, &model_config)?)
    };
    if !resume {
        // Only once the games and settings have passed every check, so a
        // refused run leaves no directory behind.
        std::fs::create_dir_all(out).at_file(out)?;
        let text = serde_json::to_string_pretty(&run).at_file(&run_file)?;
        kibitzer_io::atomic::write(&run_file, text.as_bytes()).at_file(&run_file)?;
    }
    let history = trainer.train(&data, eval.as_ref(), Some(&checkpoint), progress)?;
    trainer.model.save_transformer_lens(out)?;

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
    let report = TrainReport {
        model: model_config,
        train: trainer.config.clone(),
        last: history.last().cloned(),
        uniform_loss: uniform_loss(trainer.model.config()),
        held_out_legal_move_accuracy: accuracy.map(|a| a.fraction()),
        held_out_legal_move_games: held_out_end - run.train_games,
        cut,
        resumed_at,
        run,
    };
    let summary = serde_json::json!({
        "games": report.run.games,
        "game": report.run.game,
        "board_size": report.run.board_size,
        "train_games": report.run.train_games,
        "eval_games": report.run.eval_games,
        "model": report.model,
        "train": report.train,
        "final": report.last,
        "uniform_loss": report.uniform_loss,
        "held_out_legal_move_accuracy": report.held_out_legal_move_accuracy,
        "held_out_legal_move_games": report.held_out_legal_move_games,
        "history": history,
    });
    let training = out.join(files::TRAINING);
    let text = serde_json::to_string_pretty(&summary).at_file(&training)?;
    kibitzer_io::atomic::write(&training, text.as_bytes()).at_file(&training)?;
    Ok(report)
}

/// What [`evaluate_games`] reports (`kibitzer gpt eval --json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// The model directory.
    pub model: PathBuf,
    /// The games file.
    pub games: PathBuf,
    /// `othello` or `chess`.
    pub game: String,
    /// Board side.
    pub board_size: usize,
    /// Games scored.
    pub games_scored: usize,
    /// Positions scored within the model's context: Othello after every
    /// move that does not end the game; chess where every move starts.
    pub positions: usize,
    /// Positions whose prediction (Othello: the top-1 token; chess: the
    /// move written greedily) is a legal move.
    pub legal: usize,
    /// `legal / positions`.
    pub legal_move_accuracy: f64,
    /// Mean next-token cross-entropy over every move after the first.
    pub eval_loss: f64,
    /// `ln(vocabulary)`: the loss of a uniform guess.
    pub uniform_loss: f64,
}

/// The legal-move accuracy and next-token loss of the GPT saved in
/// `model_dir` on the first `max_games` games of `games_path` (all when
/// `None`), `batch_size` games (chess: moves being written) per forward pass.
pub fn evaluate_games(
    model_dir: &Path,
    games_path: &Path,
    max_games: Option<usize>,
    batch_size: usize,
    device: &Device,
) -> Result<EvalReport> {
    let games = GameCorpus::open(games_path, max_games)?;
    let model = games.load_model(model_dir, device)?;
    let config = model.config().clone();
    // Checks every game (naming the file and game) before any forward pass.
    let sequences = games.token_sequences(config.n_ctx, true)?.tokens;
    let data = games.token_dataset(&sequences, 0, &config)?;
    let accuracy = games.legal_moves(&model, 0..games.len(), batch_size)?;
    Ok(EvalReport {
        model: model_dir.to_path_buf(),
        games: games.path.clone(),
        game: games.game().into(),
        board_size: games.board_size(),
        games_scored: games.len(),
        positions: accuracy.positions,
        legal: accuracy.legal,
        legal_move_accuracy: accuracy.fraction(),
        eval_loss: kibitzer_models::gpt::train::evaluate(&model, &data, batch_size)?,
        uniform_loss: uniform_loss(&config),
    })
}

/// Hands out at most `max` games per forward pass, below what the memory
/// ceiling would allow.
struct GamesPerPass {
    inner: TokenSequences,
    max: usize,
}

impl ExampleSource<Tensor<2, Int>> for GamesPerPass {
    fn next_examples(
        &mut self,
        max: usize,
    ) -> std::result::Result<Option<Examples<Tensor<2, Int>>>, HookError> {
        self.inner.next_examples(max.min(self.max))
    }
}

/// How the rows of an Othello store are ordered, recorded in its metadata.
pub const OTHELLO_ROW_ORDER: &str = "one row per square move: games in file order, each game's moves in order \
     (passes have no token and no row); row = the activation at that move's token, which has read \
     the game up to and including the move; the order of `kibitzer bsp labels --game othello` on \
     the same games file (columns example = game, position = token)";

/// How the rows of a chess store are ordered, recorded in its metadata.
#[cfg(feature = "chess")]
pub const CHESS_ROW_ORDER: &str = "one row per '.' of each game's transcript (White to move, before White's \
     move; reference 002's positions): games in file order, dots in order, within the model's context; \
     the order of `kibitzer bsp labels --game chess --max-chars <n_ctx>` on the same games file \
     (columns example = game, position = character index)";

/// The settings of [`harvest_games`].
#[derive(Clone, Debug, PartialEq)]
pub struct HarvestSettings {
    /// The hook site.
    pub site: HookSite,
    /// The first N games only (pass the same to `kibitzer bsp labels`).
    pub max_games: Option<usize>,
    /// Games per forward pass at most [default: as many as `memory_mib` holds].
    pub batch_size: Option<usize>,
    /// Memory a forward pass and the rows it yields may take, in MiB.
    pub memory_mib: usize,
    /// Keep only the first n_ctx tokens of longer games (else an error).
    pub truncate: bool,
    /// Disk precision.
    pub dtype: Dtype,
    /// Rows per shard file.
    pub rows_per_shard: usize,
    /// Replace an existing store.
    pub overwrite: bool,
    /// A freshly initialised GPT of the same shape with this seed instead
    /// of the trained weights: reference 002's random-init baseline.
    pub random_init: Option<u64>,
    /// Show a progress bar.
    pub progress: bool,
}

/// What [`harvest_games`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct HarvestReport {
    /// Rows written.
    pub rows: u64,
    /// Their width.
    pub d_in: usize,
    /// Games harvested.
    pub games: usize,
    /// Games cut to the model's context.
    pub cut: usize,
    /// The model's context.
    pub n_ctx: usize,
    /// How `kibitzer bsp labels` cuts its positions the same way.
    pub label_flag: String,
    /// What a token is.
    pub token_name: &'static str,
}

/// The activations of the GPT saved in `model_dir` at `settings.site` on the
/// games of `games_path`, written to a new store in `out`.
///
/// Chess: one row per `.` of each transcript within the context (games in
/// order, dots in order), the rows of `kibitzer bsp labels --game chess
/// --max-chars <n_ctx>`.
///
/// Othello row order: every game of the file in order (the first
/// `max_games`), and within a game every square move in order, one row per
/// move: the activation at the move's token position. Passes are not
/// tokens and get no row, and padding positions after a game's last move
/// are dropped. This is exactly the order of
/// `kibitzer_bsp::labelling::othello_at_moves`, which `kibitzer bsp labels
/// --game othello --games FILE` writes (it labels the position after each
/// square move and skips passes): row `r` of the store and line `r` of the
/// labels are the same (game, token), and the store's `example` and
/// `position` columns hold that game and token index. With `truncate`,
/// games are cut to the model's `n_ctx` moves, which `kibitzer bsp labels
/// --first-per-game <n_ctx>` matches. The order is a checked contract:
/// `eval bsp` and `sweep` compare the columns with the labels' (game,
/// token) row for row ([`crate::board_eval::check_rows_match_labels`]).
pub fn harvest_games(
    model_dir: &Path,
    games_path: &Path,
    out: &Path,
    settings: &HarvestSettings,
    device: &Device,
) -> Result<HarvestReport> {
    if settings.batch_size == Some(0) {
        return Err(invalid("--batch-size must be at least 1"));
    }
    let games = GameCorpus::open(games_path, settings.max_games)?;
    let model = games.load_model(model_dir, device)?;
    let model = match settings.random_init {
        Some(seed) => Gpt::new(
            GptConfig {
                seed: Some(seed),
                ..model.config().clone()
            },
            device,
        )?,
        None => model,
    };
    let n_ctx = model.config().n_ctx;
    let Sequences {
        tokens: sequences,
        cut,
    } = games.token_sequences(n_ctx, settings.truncate)?;
    // The model is causal, so padding only to the longest game (not to
    // n_ctx) leaves every kept row as it is and saves the padded positions.
    let seq_len = sequences.iter().map(Vec::len).max().unwrap_or(0).max(1);
    // Forward passes are sized to fit the memory ceiling (batch_size only
    // caps them), so that ceiling, beside the model, is what must fit.
    let config = model.config();
    let params = kibitzer_store::memory::product(&[
        config.n_layers,
        config.d_model,
        config.d_model.saturating_add(config.d_mlp),
        4,
    ]);
    kibitzer_store::memory::check(
        format!("--memory-mib {}", settings.memory_mib),
        ((settings.memory_mib as u128) << 20)
            .saturating_add(kibitzer_store::memory::f32_bytes(params)),
    )?;
    let source = TokenSequences::new(&sequences, seq_len, Some(games.pad_token()), false, device)?;
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
        max: settings.batch_size.unwrap_or(usize::MAX),
    };
    let metadata = serde_json::json!({
        "model": model_dir,
        "random_init": settings.random_init,
        "games": games.path,
        "game": games.game(),
        "board_size": games.board_size(),
        "games_harvested": games.len(),
        "truncated_to": settings.truncate.then_some(n_ctx),
        "row_order": row_order,
        ROW_IDS_KEY: ROW_IDS_GAME_TOKEN,
    });
    let config = HarvestConfig {
        store: StoreConfig {
            dtype: settings.dtype,
            rows_per_shard: settings.rows_per_shard,
            metadata,
            overwrite: settings.overwrite,
            ..StoreConfig::new(1)
        },
        max_rows: None,
        memory_ceiling_bytes: settings.memory_mib.saturating_mul(1 << 20),
        progress: settings.progress,
        columns: None,
    };
    // An unknown site fails here, before the store is created, with the
    // model's sites listed.
    let manifest = harvest(&model, settings.site, source, out, &config)?;
    if manifest.rows != expected_rows {
        return Err(invalid(format!(
            "{}: harvested {} rows, but the games have {expected_rows} positions to harvest",
            out.display(),
            manifest.rows
        )));
    }
    Ok(HarvestReport {
        rows: manifest.rows,
        d_in: manifest.d_in,
        games: games.len(),
        cut,
        n_ctx,
        label_flag: games.label_flag(n_ctx),
        token_name: games.token_name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn othello_games(size: usize, n: usize) -> GameCorpus {
        GameCorpus {
            path: "g.bin".into(),
            in_file: n,
            checksum: 1,
            list: GameList::Othello {
                size,
                games: Vec::new(),
            },
        }
    }

    fn games(n: usize) -> GameCorpus {
        othello_games(6, n)
    }

    #[test]
    fn model_defaults_follow_othello_gpt_for_the_board() {
        let c = TrainSettings::default().model_config(&games(1)).unwrap();
        assert_eq!(
            (c.n_layers, c.d_model, c.n_heads, c.d_head, c.d_mlp),
            (8, 512, 8, 64, 2048)
        );
        // 32 squares + padding; the longest 6x6 game has 32 moves.
        assert_eq!((c.d_vocab, c.n_ctx, c.seed), (33, 32, Some(0)));
        let settings = TrainSettings {
            layers: Some(2),
            d_model: Some(32),
            heads: Some(4),
            d_mlp: Some(40),
            n_ctx: Some(20),
            seed: Some(3),
            ..TrainSettings::default()
        };
        let c = settings.model_config(&othello_games(8, 1)).unwrap();
        assert_eq!(
            (
                c.n_layers, c.d_model, c.n_heads, c.d_head, c.d_mlp, c.d_vocab, c.n_ctx, c.seed
            ),
            (2, 32, 4, 8, 40, 61, 20, Some(3))
        );
        let err = TrainSettings {
            d_model: Some(30),
            heads: Some(4),
            ..TrainSettings::default()
        }
        .model_config(&games(1))
        .unwrap_err();
        assert!(err.to_string().contains("--d-model 30"), "{err}");
    }

    #[test]
    fn warm_up_is_at_most_a_tenth_of_a_short_run() {
        let with_steps = |steps| TrainSettings {
            steps: Some(steps),
            ..TrainSettings::default()
        };
        assert_eq!(
            TrainSettings::default()
                .train_config()
                .unwrap()
                .warmup_steps,
            100
        );
        assert_eq!(with_steps(300).train_config().unwrap().warmup_steps, 30);
        let c = TrainSettings {
            warmup: Some(7),
            lr: Some(0.01),
            ..with_steps(300)
        }
        .train_config()
        .unwrap();
        assert_eq!((c.steps, c.warmup_steps, c.lr), (300, 7, 0.01));
        assert!(with_steps(0).train_config().is_err());
    }

    #[test]
    fn held_out_games_are_a_tenth_capped_at_a_thousand() {
        let run = GptRun::new(&games(600), None).unwrap();
        assert_eq!((run.train_games, run.eval_games), (540, 60));
        let run = GptRun::new(&games(50_000), None).unwrap();
        assert_eq!((run.train_games, run.eval_games), (49_000, 1000));
        let run = GptRun::new(&games(600), Some(0)).unwrap();
        assert_eq!((run.train_games, run.eval_games), (600, 0));
        let err = GptRun::new(&games(5), Some(5)).unwrap_err();
        assert!(
            err.to_string().contains("leaves no game to train on"),
            "{err}"
        );
    }

    #[cfg(feature = "chess")]
    #[test]
    fn chess_games_make_a_chess_gpt_and_resume_only_on_chess() {
        let chess = GameCorpus {
            path: "g.pgn".into(),
            in_file: 600,
            checksum: 1,
            list: GameList::Chess(Vec::new()),
        };
        let c = TrainSettings::default().model_config(&chess).unwrap();
        assert_eq!((c.d_vocab, c.vocab_out(), c.n_ctx), (33, 32, 1023));
        let c = TrainSettings {
            n_ctx: Some(256),
            ..TrainSettings::default()
        }
        .model_config(&chess)
        .unwrap();
        assert_eq!(c.n_ctx, 256);
        let run = GptRun::new(&chess, None).unwrap();
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
        let run: GptRun = serde_json::from_str(old).unwrap();
        assert_eq!(run.game, "othello");
        assert!(run.check_resume(file, &games(600), None).is_ok());
        assert!(run.check_resume(file, &chess, None).is_err());
    }

    #[test]
    fn resume_checks_the_games_and_the_split() {
        let run = GptRun::new(&games(600), None).unwrap();
        let file = Path::new("o/run.json");
        assert!(run.check_resume(file, &games(600), None).is_ok());
        assert!(run.check_resume(file, &games(600), Some(60)).is_ok());
        assert!(run.check_resume(file, &games(601), None).is_err());
        let other = GameCorpus {
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
