//! `kibitzer leaderboard`: every SAE architecture kibitzer trains, at
//! matched sparsity, on one subject model's activations, ranked on what only
//! a game can give (board-state coverage, board reconstruction, board
//! reconstruction relative to a supervised probe) beside FVU, loss recovered
//! and the dead fraction. SAEBench's idea, with a ground truth.
//!
//! Sparsity is matched by L0. TopK, BatchTopK and Matryoshka take k = the
//! target; JumpReLU is trained towards the target L0 (kibitzer-sae's
//! `jumprelu_target_l0`, one small sweep per target since the target is a
//! setting of the whole grid); the L1 families (standard, p-annealing,
//! gated) have no knob that sets L0, so each trains a ladder of
//! coefficients and the rung whose L0 is nearest the target (in log L0)
//! stands for it, its real L0 shown beside it. The dictionaries of a sweep
//! train together, each batch read once for all of them.
//!
//! The work is resumable at every stage: the harvest is kept once finished,
//! each sweep resumes from its checkpoint and keeps evaluated runs, and a
//! second call with the same settings only rebuilds the table.

use crate::alphazero::{AlphaZeroError, HarvestConfig, NetSource, harvest, harvest_files};
use crate::board_eval::{Baselines, BoardEvalError, evaluate_against_board, raw_activations};
use crate::gpt::GameCorpus;
use crate::sweep::{
    EvalConfig, Family, FamilyGrid, RunResult, ScalingReport, SweepConfig, SweepError, SweepGame,
    SweepGrid, run_sweep,
};
use burn::tensor::Int;
use burn::tensor::{Device, Tensor};
use kibitzer_bsp::labelling::{othello_at_moves, read_labels_jsonl, save_labels_jsonl};
use kibitzer_bsp::{MetricsConfig, ProbeConfig};
use kibitzer_games::dataset::OthelloDataset;
use kibitzer_hooks::{
    HookError, HookSite, HookedModel, LossRecovered, SharedDictionary, next_token_cross_entropy,
};
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_models::{AlphaZeroNet, Gpt};
use kibitzer_store::{ReaderConfig, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File and directory names inside a leaderboard's output directory.
pub mod files {
    /// The settings the leaderboard was started with.
    pub const SETTINGS: &str = "leaderboard-settings.json";
    /// The harvest (games, labels, activations).
    pub const HARVEST: &str = "harvest";
    /// One directory per sweep.
    pub const SWEEPS: &str = "sweeps";
    /// The sweep of the L1 ladders and the k families.
    pub const MAIN_SWEEP: &str = "main";
    /// Every entry with its numbers.
    pub const JSON: &str = "leaderboard.json";
    /// The tables.
    pub const MARKDOWN: &str = "leaderboard.md";
    /// The tables as a page.
    pub const HTML: &str = "leaderboard.html";
}

/// What a leaderboard is made from; a second call must give the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardSettings {
    /// The subject network: `shipped` or a weights file (the AlphaZero
    /// network; ignored when `model` is set).
    pub net: String,
    /// An OthelloGPT or ChessGPT as the subject instead: its directory
    /// (`kibitzer gpt train --out`). Its activations are harvested on
    /// `games`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// The games the GPT is harvested on (an Othello dataset of `kibitzer
    /// games generate othello`, or chess games in .pgn or .jsonl); the
    /// first games until `positions` rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub games: Option<PathBuf>,
    /// Activation rows to harvest (whole games are played until there are
    /// at least this many).
    pub positions: usize,
    /// Games whose positions are labelled; every dictionary is judged on them.
    pub label_games: usize,
    /// The hook site the dictionaries read.
    pub site: String,
    /// Features of every dictionary.
    pub d_sae: usize,
    /// The L0 targets, ascending.
    pub targets: Vec<usize>,
    /// The coefficients each L1 family (standard, p-annealing, gated) trains.
    pub ladder: Vec<f64>,
    /// The architectures.
    pub families: Vec<Family>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Optimiser steps, `None` for one pass over the store.
    pub steps: Option<usize>,
    /// JumpReLU's coefficient on `(L0 / target - 1)^2`.
    pub jumprelu_coefficient: f64,
    /// Labelled positions the network runs on for loss recovered.
    pub splice_positions: usize,
    /// Passes of the linear probes over their train rows.
    pub probe_epochs: usize,
    /// Fraction of labelled games held out for board reconstruction and
    /// the probes.
    pub test_fraction: f64,
    /// Seed of the games, the dictionaries, the data order and the split.
    pub seed: u64,
}

impl Default for LeaderboardSettings {
    /// The shipped 6x6 AlphaZero network at `blocks.1.hook_resid_post`
    /// (reference 001's site), 300,000 positions with the first 1,000 games
    /// labelled, 512 features, L0 10, 20 and 40, the L1 ladder 1..16, 600
    /// steps of batch 2048 (four passes over the store) at lr 1e-3 (the
    /// demo's), every architecture: 27 dictionaries, about 10 minutes on 2
    /// CPU cores.
    fn default() -> Self {
        LeaderboardSettings {
            net: "shipped".into(),
            model: None,
            games: None,
            positions: 300_000,
            label_games: 1000,
            site: "blocks.1.hook_resid_post".into(),
            d_sae: 512,
            targets: vec![10, 20, 40],
            ladder: vec![1.0, 2.0, 4.0, 8.0, 16.0],
            families: Family::ALL.to_vec(),
            batch_size: 2048,
            lr: 1e-3,
            steps: Some(600),
            jumprelu_coefficient: 3.0,
            splice_positions: 4096,
            probe_epochs: 5,
            test_fraction: 0.2,
            seed: 0,
        }
    }
}

impl LeaderboardSettings {
    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), LeaderboardError> {
        let bad = |what: &str, message: String| {
            Err(LeaderboardError::Config(format!("{what}: {message}")))
        };
        if self.families.is_empty() {
            return bad("families", "no architecture".into());
        }
        match (&self.model, &self.games) {
            (Some(_), None) => {
                return bad(
                    "games",
                    "an OthelloGPT (model) is harvested on an Othello games file: give games"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return bad(
                    "games",
                    "applies to an OthelloGPT (model); the AlphaZero network plays its own games"
                        .into(),
                );
            }
            (Some(_), Some(_)) if self.net != "shipped" => {
                return bad(
                    "net",
                    format!("{:?} and a model name two subjects; give one", self.net),
                );
            }
            _ => {}
        }
        if self.targets.is_empty() || self.targets.contains(&0) {
            return bad(
                "targets",
                format!("{:?}: give at least one L0, each at least 1", self.targets),
            );
        }
        if self.targets.windows(2).any(|w| w[0] >= w[1]) {
            return bad(
                "targets",
                format!("{:?}: expected strictly increasing", self.targets),
            );
        }
        if let Some(&big) = self.targets.iter().find(|&&t| t > self.d_sae) {
            return bad(
                "targets",
                format!("L0 {big} is more than the {} features", self.d_sae),
            );
        }
        let ladder_used = self.families.iter().any(|f| is_ladder_family(*f));
        if ladder_used && self.ladder.is_empty() {
            return bad(
                "ladder",
                "empty, but standard, panneal or gated is ranked: give coefficients".into(),
            );
        }
        if self.splice_positions == 0 {
            return bad("splice_positions", "0; expected at least 1".into());
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return bad(
                "test_fraction",
                format!("{}: expected between 0 and 1", self.test_fraction),
            );
        }
        if !(self.jumprelu_coefficient.is_finite() && self.jumprelu_coefficient > 0.0) {
            return bad(
                "jumprelu_coefficient",
                format!("{}: expected a positive number", self.jumprelu_coefficient),
            );
        }
        self.site
            .parse::<HookSite>()
            .map_err(|e| LeaderboardError::Config(format!("site {:?}: {e}", self.site)))?;
        // The grids check the rest (batch size, learning rate, steps,
        // coefficients) before anything trains.
        for (_, grid) in self.grids() {
            grid.validate()?;
        }
        Ok(())
    }

    /// The sweeps: (directory name, grid). The main sweep holds the L1
    /// ladders and the k families; JumpReLU gets one sweep per target.
    pub fn grids(&self) -> Vec<(String, SweepGrid)> {
        let grid = |families: Vec<FamilyGrid>, target: Option<f64>| SweepGrid {
            preset: "leaderboard".into(),
            features: vec![self.d_sae],
            families,
            batch_size: self.batch_size,
            lr: self.lr,
            steps: self.steps,
            passes: 1,
            jumprelu_bandwidth: 0.05,
            jumprelu_target_l0: target,
            panneal_p_end: 0.2,
            dead_after_rows: 200_000,
        };
        let mut out = Vec::new();
        let main: Vec<FamilyGrid> = self
            .families
            .iter()
            .filter(|f| **f != Family::Jumprelu)
            .map(|&family| FamilyGrid {
                family,
                values: if family.uses_k() {
                    self.targets.iter().map(|&t| t as f64).collect()
                } else {
                    self.ladder.clone()
                },
            })
            .collect();
        if !main.is_empty() {
            out.push((files::MAIN_SWEEP.to_string(), grid(main, None)));
        }
        if self.families.contains(&Family::Jumprelu) {
            for &t in &self.targets {
                let family = FamilyGrid {
                    family: Family::Jumprelu,
                    values: vec![self.jumprelu_coefficient],
                };
                out.push((jumprelu_sweep(t), grid(vec![family], Some(t as f64))));
            }
        }
        out
    }
}

/// The probes' board F1 below which "vs probe" is not computed (0): a
/// ratio to a probe that reads next to nothing is noise.
const MIN_PROBE_F1: f64 = 0.01;

/// The sweep directory of JumpReLU trained towards L0 `target`.
fn jumprelu_sweep(target: usize) -> String {
    format!("jumprelu-l0-{target}")
}

/// Whether a family's sparsity is a coefficient with no L0 target: it trains
/// the ladder.
fn is_ladder_family(family: Family) -> bool {
    !family.uses_k() && family != Family::Jumprelu
}

/// Everything [`run_leaderboard`] needs.
#[derive(Clone, Debug)]
pub struct LeaderboardConfig {
    /// What to train and judge.
    pub settings: LeaderboardSettings,
    /// Output directory.
    pub out: PathBuf,
    /// Device of the network and the dictionaries.
    pub device: Device,
    /// Progress bars on stderr.
    pub progress: bool,
}

/// One architecture at one target L0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The L0 it stands for.
    pub target_l0: usize,
    /// The architecture.
    pub family: Family,
    /// 1 = best board reconstruction among the entries of this target.
    pub rank: usize,
    /// The sweep directory the run is in.
    pub sweep: String,
    /// Its numbers (the run's `evaluation.json`).
    pub result: RunResult,
    /// Board reconstruction F1 (board category) over the probes' F1 on the
    /// same held-out games: how much of what a supervised linear probe reads
    /// off the activations the dictionary's single features recover; 0 when
    /// the probes read less than 0.01 F1.
    pub probe_relative: f64,
    /// The network's policy with the dictionary spliced in at the site.
    pub loss_recovered: LossRecovered,
}

/// An architecture's mean rank over the targets, on each metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanRanks {
    /// The architecture.
    pub family: Family,
    /// Board reconstruction (board category), higher is better.
    pub reconstruction: f64,
    /// Coverage (board category), higher is better.
    pub coverage: f64,
    /// FVU, lower is better.
    pub fvu: f64,
    /// Loss recovered, higher is better.
    pub loss_recovered: f64,
    /// Dead fraction, lower is better.
    pub dead: f64,
}

/// `leaderboard.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// `kibitzer-leaderboard`.
    pub format: String,
    /// Format version.
    pub version: u32,
    /// What it was made from.
    pub settings: LeaderboardSettings,
    /// Labelled positions the dictionaries were judged on.
    pub labelled_rows: usize,
    /// Width of the activations.
    pub d_in: usize,
    /// The probes' held-out F1 per category (`board`, ..., `all`).
    pub probe_f1: BTreeMap<String, f64>,
    /// Every entry, by target, then rank.
    pub entries: Vec<Entry>,
    /// Each architecture's mean ranks, best mean board-reconstruction rank
    /// first.
    pub mean_ranks: Vec<MeanRanks>,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum LeaderboardError {
    /// Settings that cannot work.
    #[error("leaderboard: {0}")]
    Config(String),
    /// The harvest.
    #[error(transparent)]
    Harvest(#[from] AlphaZeroError),
    /// A sweep.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// The probes.
    #[error(transparent)]
    BoardEval(#[from] BoardEvalError),
    /// Labels and positions.
    #[error(transparent)]
    Bsp(#[from] kibitzer_bsp::BspError),
    /// The network with a dictionary spliced in.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The network.
    #[error(transparent)]
    Model(#[from] kibitzer_models::ModelError),
    /// The activation store.
    #[error(transparent)]
    Store(#[from] kibitzer_store::StoreError),
    /// The OthelloGPT, its games and its harvest.
    #[error(transparent)]
    Gpt(#[from] crate::gpt::GptRunError),
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
}

/// Harvests (or reuses the harvest), trains and judges every sweep (or
/// resumes them), scores the chosen dictionaries spliced into the network,
/// and writes `leaderboard.json`, `.md` and `.html` to `config.out`.
pub fn run_leaderboard(config: &LeaderboardConfig) -> Result<Leaderboard, LeaderboardError> {
    let s = &config.settings;
    s.validate()?;
    let out = &config.out;
    std::fs::create_dir_all(out).at_file(out)?;
    check_settings(out, s)?;
    let say = |text: String| {
        if config.progress {
            eprintln!("{text}");
        }
    };
    let site: HookSite = s
        .site
        .parse()
        .map_err(|e| LeaderboardError::Config(format!("site {:?}: {e}", s.site)))?;
    // Any text names a network ("shipped" or a file): parsing cannot fail.
    let Ok(net_source) = s.net.parse::<NetSource>();

    // 1. The harvest, kept once its report is written (its last file).
    let harvest_dir = out.join(files::HARVEST);
    if harvest_dir.join(harvest_files::REPORT).exists() {
        say(format!(
            "1/4 reusing the harvest in {}",
            harvest_dir.display()
        ));
    } else if let (Some(model), Some(games)) = (&s.model, &s.games) {
        say(format!(
            "1/4 harvesting {site} of the OthelloGPT {} on {}: {} positions, the first {} games labelled",
            model.display(),
            games.display(),
            s.positions,
            s.label_games
        ));
        harvest_gpt(model, games, s, site, &harvest_dir, config)?;
    } else {
        say(format!(
            "1/4 the network plays itself: {} positions, the first {} games labelled; harvesting {site}",
            s.positions, s.label_games
        ));
        harvest(&HarvestConfig {
            net: net_source.clone(),
            random_init: None,
            positions: s.positions,
            label_games: s.label_games,
            site,
            temperature: 1.0,
            seed: s.seed,
            out: harvest_dir.clone(),
            device: config.device.clone(),
            progress: config.progress,
        })?;
    }
    let activations = harvest_dir.join(harvest_files::ACTIVATIONS);
    let labels_file = harvest_dir.join(harvest_files::LABELS);
    let games_file = match &s.games {
        Some(games) => games.clone(),
        None => harvest_dir.join(harvest_files::GAMES),
    };
    let game = match &s.model {
        Some(_) => sweep_game(&GameCorpus::open(&games_file, Some(1))?),
        None => SweepGame::Othello {
            size: OthelloDataset::open(&games_file)
                .at_file(&games_file)?
                .board_size(),
        },
    };

    // 2. The sweeps.
    let grids = s.grids();
    let sweeps = grids.len();
    let mut reports: Vec<(String, ScalingReport)> = Vec::new();
    for (i, (name, grid)) in grids.into_iter().enumerate() {
        let dir = out.join(files::SWEEPS).join(&name);
        say(format!(
            "2/4 sweep {} of {}: {name} ({} dictionaries)",
            i + 1,
            sweeps,
            grid.len()
        ));
        let report = run_sweep(
            &SweepConfig {
                activations: activations.clone(),
                labels: labels_file.clone(),
                game,
                out: dir.clone(),
                grid,
                seed: s.seed,
                resume: dir.join("checkpoint.json").exists(),
                eval: EvalConfig {
                    test_fraction: s.test_fraction,
                    ..EvalConfig::default()
                },
                checkpoint_every: 200,
                shuffle_memory_bytes: 1 << 30,
                progress: config.progress,
            },
            &config.device,
        )?;
        reports.push((name, report));
    }

    // 3. The probes: the upper baseline of board reconstruction.
    say("3/4 linear probes on the raw activations (the supervised baseline)".into());
    let (refs, labels) = read_labels_jsonl(&labels_file, game.catalog()?)?;
    let store = Store::open(&activations)?;
    let mut reader = store.reader(ReaderConfig::in_order())?;
    let raw = raw_activations(&mut reader, labels.rows())?;
    drop(reader);
    let probes = evaluate_against_board(
        "probes",
        None,
        Some(&raw),
        &labels,
        &refs,
        s.test_fraction,
        s.seed,
        &MetricsConfig::default(),
        &Baselines {
            neurons: false,
            probes: Some(ProbeConfig {
                epochs: s.probe_epochs,
                seed: s.seed,
                ..ProbeConfig::default()
            }),
        },
    )?
    .probes
    .expect(
        "probes and raw activations were passed, so evaluate_against_board returns a probe report",
    );
    drop(raw);
    let probe_f1: BTreeMap<String, f64> = probes
        .aggregates
        .iter()
        .map(|a| (a.name.clone(), a.f1))
        .collect();

    // 4. The chosen dictionaries, spliced into the network.
    say(format!(
        "4/4 loss recovered: each chosen dictionary spliced in at {site} on {} positions",
        s.splice_positions
    ));
    let subject = Subject::load(s, &net_source, &games_file, &config.device)?;
    let chosen = choose(s, &reports)?;
    let mut spliced: BTreeMap<(String, String), LossRecovered> = BTreeMap::new();
    let mut entries = Vec::with_capacity(chosen.len());
    for (target_l0, family, sweep, result) in chosen {
        let key = (sweep.clone(), result.spec.name.clone());
        let loss_recovered = match spliced.get(&key) {
            Some(l) => *l,
            None => {
                let dir = out.join(files::SWEEPS).join(&sweep).join(&result.spec.name);
                let sae = kibitzer_sae::saelens::load(&dir, &config.device).at_file(&dir)?;
                let l = subject.loss_recovered(site, Arc::new(sae))?;
                spliced.insert(key, l);
                l
            }
        };
        let probe_board = board(&probe_f1);
        entries.push(Entry {
            target_l0,
            family,
            rank: 0,
            sweep,
            // Against probes that read next to nothing the ratio is noise.
            probe_relative: if probe_board >= MIN_PROBE_F1 {
                board(&result.reconstruction) / probe_board
            } else {
                0.0
            },
            result,
            loss_recovered,
        });
    }
    rank_entries(&mut entries);
    let leaderboard = Leaderboard {
        format: "kibitzer-leaderboard".into(),
        version: 1,
        settings: s.clone(),
        labelled_rows: labels.rows(),
        d_in: store.d_in(),
        probe_f1,
        mean_ranks: mean_ranks(&entries),
        entries,
    };
    write(out, &leaderboard)?;
    Ok(leaderboard)
}

/// Writes the settings on a first call; on a later one, refuses settings
/// that differ from those the directory was started with.
fn check_settings(out: &Path, s: &LeaderboardSettings) -> Result<(), LeaderboardError> {
    let path = out.join(files::SETTINGS);
    if path.exists() {
        let text = std::fs::read_to_string(&path).at_file(&path)?;
        let before: LeaderboardSettings = serde_json::from_str(&text).at_file(&path)?;
        if &before != s {
            // A path given on the command line that is not UTF-8 does not
            // serialise: an error naming the settings file, not a panic.
            let (a, b) = (
                serde_json::to_value(&before).at_file(&path)?,
                serde_json::to_value(s).at_file(&path)?,
            );
            let changed: Vec<String> = a
                .as_object()
                .expect("LeaderboardSettings is a struct, which serialises to a JSON object")
                .iter()
                .filter(|(k, v)| b.get(k.as_str()) != Some(v))
                .map(|(k, v)| format!("{k} (was {v}, now {})", b[k.as_str()]))
                .collect();
            return Err(FileError::new(
                &path,
                format!(
                    "this directory holds a leaderboard made with other settings: {}; choose another --out",
                    changed.join(", ")
                ),
            ).into());
        }
        return Ok(());
    }
    let text = serde_json::to_string_pretty(s).at_file(&path)?;
    kibitzer_store::atomic_write(&path, text.as_bytes())
        .map_err(|e| FileError::new(&path, e).into())
}

/// The network dictionaries are spliced into, with the inputs it runs on
/// for loss recovered.
enum Subject {
    /// The AlphaZero network and encoded boards.
    AlphaZero(AlphaZeroNet, Vec<Tensor<2>>),
    /// An OthelloGPT, batches of games' tokens and its padding token.
    Gpt(Gpt, Vec<Tensor<2, Int>>, u32),
}

impl Subject {
    /// The subject of `s` with the first `splice_positions` positions of
    /// `games_file` (the labelled games come first).
    fn load(
        s: &LeaderboardSettings,
        net: &NetSource,
        games_file: &Path,
        device: &Device,
    ) -> Result<Subject, LeaderboardError> {
        let Some(model_dir) = &s.model else {
            let games = OthelloDataset::open(games_file).at_file(games_file)?;
            let net = net.load(device)?;
            let boards = splice_inputs(&net, &games, s.splice_positions)?;
            return Ok(Subject::AlphaZero(net, boards));
        };
        let corpus = GameCorpus::open(games_file, None)?;
        let model = corpus.load_model(model_dir, device)?;
        let sequences = corpus.token_sequences(model.config().n_ctx, true)?.tokens;
        let (mut tokens, mut taken) = (0, 0);
        while taken < sequences.len() && tokens < s.splice_positions {
            tokens += sequences[taken].len();
            taken += 1;
        }
        let pad = corpus.pad_token();
        let batches = sequences[..taken]
            .chunks(64)
            .map(|chunk| crate::gpt::padded_batch(chunk, pad, device).2)
            .collect();
        Ok(Subject::Gpt(model, batches, pad))
    }

    /// Loss recovered with `dictionary` spliced in at `site`: for the
    /// AlphaZero network against its own clean policy
    /// ([`policy_loss_recovered`]); for a GPT, the next-token loss on the
    /// games (SAELens's `ce_loss_score`).
    fn loss_recovered(
        &self,
        site: HookSite,
        dictionary: SharedDictionary,
    ) -> Result<LossRecovered, HookError> {
        match self {
            Subject::AlphaZero(net, boards) => policy_loss_recovered(net, boards, site, dictionary),
            Subject::Gpt(model, batches, pad) => {
                kibitzer_hooks::loss_recovered(model, batches, site, dictionary, |input, out| {
                    next_token_cross_entropy(out, input.clone(), Some(*pad))
                })
            }
        }
    }
}

/// A GPT's activations at `site` on the first games of `games` with at
/// least `s.positions` rows (an OthelloGPT's square moves, a ChessGPT's
/// dots within its context), the first `s.label_games` labelled, into the
/// harvest directory `out` (the files an AlphaZero harvest writes, but the
/// games, which stay in their file).
fn harvest_gpt(
    model_dir: &Path,
    games: &Path,
    s: &LeaderboardSettings,
    site: HookSite,
    out: &Path,
    config: &LeaderboardConfig,
) -> Result<(), LeaderboardError> {
    let corpus = GameCorpus::open(games, None)?;
    let model = corpus.load_model(model_dir, &config.device)?;
    let n_ctx = model.config().n_ctx;
    drop(model);
    let sequences = corpus.token_sequences(n_ctx, true)?.tokens;
    let game = sweep_game(&corpus);
    // One row per token of an Othello game, per dot of a chess transcript.
    let rows_of = |tokens: &[u32]| -> usize {
        match game {
            SweepGame::Othello { .. } => tokens.len(),
            #[cfg(feature = "chess")]
            SweepGame::Chess => {
                let dot = kibitzer_models::gpt::chess::DOT_TOKEN;
                tokens.iter().filter(|&&t| t == dot).count()
            }
        }
    };
    let (mut rows, mut taken) = (0, 0);
    while taken < sequences.len() && rows < s.positions {
        rows += rows_of(&sequences[taken]);
        taken += 1;
    }
    if rows < s.positions {
        return Err(FileError::new(
            games,
            format!(
                "{} games hold {rows} positions, fewer than the {} asked for (--positions)",
                sequences.len(),
                s.positions
            ),
        )
        .into());
    }
    std::fs::create_dir_all(out).at_file(out)?;
    let report = crate::gpt::harvest_games(
        model_dir,
        games,
        &out.join(harvest_files::ACTIVATIONS),
        &crate::gpt::HarvestSettings {
            site,
            max_games: Some(taken),
            batch_size: None,
            memory_mib: 1024,
            truncate: true,
            dtype: kibitzer_store::Dtype::F32,
            rows_per_shard: 65_536,
            overwrite: true,
            random_init: None,
            progress: config.progress,
        },
        &config.device,
    )?;
    // The labels of the first games, in the harvest's row order.
    let labelled_games = s.label_games.min(taken);
    let labels_file = out.join(harvest_files::LABELS);
    let labelled_rows = match game {
        SweepGame::Othello { size } => {
            let dataset = OthelloDataset::open(games).at_file(games)?;
            let moves: Vec<_> = dataset.iter().take(labelled_games).collect();
            let labelled = othello_at_moves(size, &moves)?;
            let set = kibitzer_bsp::othello::othello_bsps(size, Default::default())?;
            save_labels_jsonl(&labels_file, &labelled, &set.label(&labelled.positions)?)?;
            labelled.positions.len()
        }
        #[cfg(feature = "chess")]
        SweepGame::Chess => {
            let chess = kibitzer_games::files::read_chess_games(games, Some(labelled_games))
                .at_file(games)?;
            let labelled = kibitzer_bsp::labelling::chess_at_dots(&chess, Some(n_ctx))?;
            let set = crate::board_eval::chess_set()?;
            save_labels_jsonl(&labels_file, &labelled, &set.label(&labelled.positions)?)?;
            labelled.positions.len()
        }
    };
    let summary = serde_json::json!({
        "model": model_dir,
        "games_file": games,
        "game": game.name(),
        "games": taken,
        "rows": report.rows,
        "labelled_rows": labelled_rows,
        "d_in": report.d_in,
        "site": site.to_string(),
    });
    let path = out.join(harvest_files::REPORT);
    let text = serde_json::to_string_pretty(&summary).expect("a JSON value serialises");
    kibitzer_store::atomic_write(&path, text.as_bytes())
        .map_err(|e| FileError::new(&path, e).into())
}

/// The game of a GPT's corpus, as the sweep judges it.
fn sweep_game(corpus: &GameCorpus) -> SweepGame {
    match corpus.game() {
        #[cfg(feature = "chess")]
        "chess" => SweepGame::Chess,
        _ => SweepGame::Othello {
            size: corpus.board_size(),
        },
    }
}

/// The boards of the first `n` positions of the harvest's `games` (its
/// labelled ones first), encoded for `net`, in batches of 512.
fn splice_inputs(
    net: &AlphaZeroNet,
    games: &OthelloDataset,
    n: usize,
) -> Result<Vec<Tensor<2>>, LeaderboardError> {
    let mut moves = Vec::new();
    let mut positions = 0;
    for g in 0..games.len() {
        if positions >= n {
            break;
        }
        let game = games
            .game(g)
            .ok_or_else(|| FileError::new(games.path(), format!("game {g} is unreadable")))?;
        positions += game.len();
        moves.push(game);
    }
    let all = othello_at_moves(games.board_size(), &moves)?;
    let take = n.min(all.positions.len());
    all.positions[..take]
        .chunks(512)
        .map(|chunk| Ok(net.encode(chunk)?))
        .collect()
}

/// Loss recovered with `dictionary` spliced in at `site`, the loss being the
/// cross-entropy of the network's policy against its own clean policy (a
/// self-play network has no other target at every position): clean scores
/// the policy's entropy, so the fraction is `1 - KL(spliced) /
/// KL(zero-ablated)`, SAEBench's KL score.
fn policy_loss_recovered(
    net: &AlphaZeroNet,
    boards: &[Tensor<2>],
    site: HookSite,
    dictionary: SharedDictionary,
) -> Result<LossRecovered, HookError> {
    kibitzer_hooks::loss_recovered(net, boards, site, dictionary, |input, out| {
        let clean = net.forward(input)?.log_policy.exp();
        let ce = (clean * out.log_policy).sum_dim(1).mean().neg();
        Ok(kibitzer_sae::ops::scalar(ce))
    })
}

/// `log |ln a - ln b|`: how far apart two L0s are, as ratios.
fn log_distance(a: f64, b: f64) -> f64 {
    (a.max(1e-9).ln() - b.max(1e-9).ln()).abs()
}

/// The run of each family at each target: (target, family, sweep, result).
fn choose(
    s: &LeaderboardSettings,
    reports: &[(String, ScalingReport)],
) -> Result<Vec<(usize, Family, String, RunResult)>, LeaderboardError> {
    let missing = |what: String| {
        LeaderboardError::Config(format!(
            "{what} is missing from its sweep's results (a sweep directory edited by hand?)"
        ))
    };
    let runs_of = |sweep: &str| {
        reports
            .iter()
            .find(|(name, _)| name == sweep)
            .map(|(_, r)| r.runs.as_slice())
            .unwrap_or(&[])
    };
    let mut out = Vec::new();
    for &target in &s.targets {
        for &family in &s.families {
            let (sweep, run) = if family == Family::Jumprelu {
                let sweep = jumprelu_sweep(target);
                let run = runs_of(&sweep).first().cloned();
                (sweep, run)
            } else if family.uses_k() {
                let run = runs_of(files::MAIN_SWEEP)
                    .iter()
                    .find(|r| r.spec.family == family && r.spec.sparsity == target as f64)
                    .cloned();
                (files::MAIN_SWEEP.to_string(), run)
            } else {
                let run = nearest_by_l0(
                    runs_of(files::MAIN_SWEEP)
                        .iter()
                        .filter(|r| r.spec.family == family),
                    target as f64,
                )
                .cloned();
                (files::MAIN_SWEEP.to_string(), run)
            };
            let run = run.ok_or_else(|| missing(format!("{} at L0 {target}", family.name())))?;
            out.push((target, family, sweep, run));
        }
    }
    Ok(out)
}

/// The run whose L0 is nearest `target` as a ratio (10 is as far from 20 as
/// 40 is); the earlier one on a tie.
pub fn nearest_by_l0<'a>(
    runs: impl IntoIterator<Item = &'a RunResult>,
    target: f64,
) -> Option<&'a RunResult> {
    runs.into_iter()
        .fold(None, |best: Option<&RunResult>, r| match best {
            Some(b) if log_distance(b.l0, target) <= log_distance(r.l0, target) => Some(b),
            _ => Some(r),
        })
}

/// The board's state: Othello's `board` category, or chess's pieces (the
/// `low_level` category).
fn board(m: &BTreeMap<String, f64>) -> f64 {
    m.get("board")
        .or_else(|| m.get("low_level"))
        .copied()
        .unwrap_or(0.0)
}

/// Orders each target's entries by board reconstruction (board category),
/// best first, ties broken by FVU, and numbers them from 1.
fn rank_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        a.target_l0.cmp(&b.target_l0).then(
            board(&b.result.reconstruction)
                .total_cmp(&board(&a.result.reconstruction))
                .then(a.result.fvu.total_cmp(&b.result.fvu)),
        )
    });
    let mut previous = None;
    let mut rank = 0;
    for e in entries.iter_mut() {
        if previous != Some(e.target_l0) {
            previous = Some(e.target_l0);
            rank = 0;
        }
        rank += 1;
        e.rank = rank;
    }
}

/// Each family's rank within its target on one metric (`better` orders two
/// entries, best first), averaged over the targets.
fn mean_rank_on(
    entries: &[Entry],
    better: impl Fn(&Entry, &Entry) -> std::cmp::Ordering,
) -> BTreeMap<Family, f64> {
    let mut sums: BTreeMap<Family, (f64, usize)> = BTreeMap::new();
    let mut targets: Vec<usize> = entries.iter().map(|e| e.target_l0).collect();
    targets.dedup();
    for t in targets {
        let mut of_target: Vec<&Entry> = entries.iter().filter(|e| e.target_l0 == t).collect();
        of_target.sort_by(|a, b| better(a, b));
        for (i, e) in of_target.iter().enumerate() {
            let s = sums.entry(e.family).or_default();
            s.0 += (i + 1) as f64;
            s.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(f, (sum, n))| (f, sum / n as f64))
        .collect()
}

fn mean_ranks(entries: &[Entry]) -> Vec<MeanRanks> {
    let reconstruction = mean_rank_on(entries, |a, b| {
        board(&b.result.reconstruction).total_cmp(&board(&a.result.reconstruction))
    });
    let coverage = mean_rank_on(entries, |a, b| {
        board(&b.result.coverage).total_cmp(&board(&a.result.coverage))
    });
    let fvu = mean_rank_on(entries, |a, b| a.result.fvu.total_cmp(&b.result.fvu));
    let loss = mean_rank_on(entries, |a, b| {
        b.loss_recovered
            .fraction
            .total_cmp(&a.loss_recovered.fraction)
    });
    let dead = mean_rank_on(entries, |a, b| {
        a.result.dead_fraction.total_cmp(&b.result.dead_fraction)
    });
    let mut out: Vec<MeanRanks> = reconstruction
        .iter()
        .map(|(&family, &r)| MeanRanks {
            family,
            reconstruction: r,
            coverage: coverage[&family],
            fvu: fvu[&family],
            loss_recovered: loss[&family],
            dead: dead[&family],
        })
        .collect();
    out.sort_by(|a, b| a.reconstruction.total_cmp(&b.reconstruction));
    out
}

/// A table as a header and rows of cells, rendered to Markdown or HTML.
struct Table {
    title: String,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Leaderboard {
    fn tables(&self) -> Vec<Table> {
        let mut tables = Vec::new();
        let mut targets: Vec<usize> = self.entries.iter().map(|e| e.target_l0).collect();
        targets.dedup();
        for t in targets {
            let rows = self
                .entries
                .iter()
                .filter(|e| e.target_l0 == t)
                .map(|e| {
                    let r = &e.result;
                    vec![
                        e.rank.to_string(),
                        e.family.name().to_string(),
                        match e.family {
                            // Its coefficient weighs the distance to the target.
                            Family::Jumprelu => format!("to L0 {t}"),
                            _ => r.spec.sparsity_label(),
                        },
                        format!("{:.1}", r.l0),
                        format!("{:.3}", r.fvu),
                        format!("{:.1}", 100.0 * r.dead_fraction),
                        format!("{:.3}", board(&r.coverage)),
                        format!("{:.3}", board(&r.reconstruction)),
                        format!("{:.3}", e.probe_relative),
                        format!("{:.3}", e.loss_recovered.fraction),
                    ]
                })
                .collect();
            tables.push(Table {
                title: format!("L0 {t}"),
                header: vec![
                    "rank",
                    "architecture",
                    "sparsity",
                    "L0",
                    "FVU",
                    "dead %",
                    "coverage (board)",
                    "board reconstruction",
                    "vs probe",
                    "loss recovered",
                ],
                rows,
            });
        }
        tables.push(Table {
            title: "Mean rank over the targets (1 = best)".into(),
            header: vec![
                "architecture",
                "board reconstruction",
                "coverage",
                "FVU",
                "loss recovered",
                "dead %",
            ],
            rows: self
                .mean_ranks
                .iter()
                .map(|m| {
                    vec![
                        m.family.name().to_string(),
                        format!("{:.2}", m.reconstruction),
                        format!("{:.2}", m.coverage),
                        format!("{:.2}", m.fvu),
                        format!("{:.2}", m.loss_recovered),
                        format!("{:.2}", m.dead),
                    ]
                })
                .collect(),
        });
        tables
    }

    fn summary(&self) -> String {
        let s = &self.settings;
        let subject = match &s.model {
            Some(model) => format!(
                "the GPT `{}` (loss recovered: next-token loss)",
                model.display()
            ),
            None => format!(
                "the `{}` AlphaZero network (loss recovered: against its clean policy)",
                s.net
            ),
        };
        format!(
            "{} features per dictionary on `{}` of {} ({} labelled positions, width {}); {:.0}% of labelled games held out. \
             The probes' board F1 is {:.3}. Ranked by board reconstruction ({}) within each target. \
             TopK, BatchTopK and Matryoshka use k = the target, JumpReLU is trained towards it, \
             and standard, p-annealing and gated show the rung of the coefficient ladder {:?} nearest it in L0.",
            s.d_sae,
            s.site,
            subject,
            self.labelled_rows,
            self.d_in,
            100.0 * s.test_fraction,
            board(&self.probe_f1),
            if self.probe_f1.contains_key("board") {
                "Othello's board category"
            } else {
                "chess's pieces, the low_level category"
            },
            s.ladder
        )
    }

    /// The tables as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = format!("# Leaderboard\n\n{}\n", self.summary());
        for t in self.tables() {
            md.push_str(&format!(
                "\n## {}\n\n| {} |\n|",
                t.title,
                t.header.join(" | ")
            ));
            md.push_str(&"---|".repeat(t.header.len()));
            md.push('\n');
            for row in &t.rows {
                md.push_str(&format!("| {} |\n", row.join(" | ")));
            }
        }
        md
    }

    /// The tables as a self-contained HTML page.
    pub fn html(&self) -> String {
        let esc = kibitzer_charts::escape_xml;
        let mut h = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>kibitzer leaderboard</title>\n\
             <style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin-bottom:2em}\
             th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f0f0f0}\
             .text{text-align:left}</style></head><body>\n<h1>Leaderboard</h1>\n",
        );
        h.push_str(&format!(
            "<p>{}</p>\n",
            esc(&self.summary().replace('`', ""))
        ));
        for t in self.tables() {
            h.push_str(&format!("<h2>{}</h2>\n<table>\n<tr>", esc(&t.title)));
            for c in &t.header {
                h.push_str(&format!("<th>{}</th>", esc(c)));
            }
            h.push_str("</tr>\n");
            for row in &t.rows {
                h.push_str("<tr>");
                for c in row {
                    // Names and labels read from the left, numbers line up on the right.
                    let class = if c.parse::<f64>().is_ok() {
                        ""
                    } else {
                        " class=\"text\""
                    };
                    h.push_str(&format!("<td{class}>{}</td>", esc(c)));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table>\n");
        }
        h.push_str("</body></html>\n");
        h
    }
}

fn write(out: &Path, leaderboard: &Leaderboard) -> Result<(), LeaderboardError> {
    let put = |name: &str, text: &str| {
        let path = out.join(name);
        kibitzer_store::atomic_write(&path, text.as_bytes())
            .map_err(|e| FileError::new(&path, e).into())
    };
    put(files::MARKDOWN, &leaderboard.markdown())?;
    put(files::HTML, &leaderboard.html())?;
    let json_path = out.join(files::JSON);
    // The settings hold command-line paths, which serialise only as UTF-8.
    let json = serde_json::to_string_pretty(leaderboard).at_file(&json_path)?;
    put(files::JSON, &json)
}

#[cfg(test)]
mod tests;
