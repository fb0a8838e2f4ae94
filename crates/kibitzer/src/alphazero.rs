//! Reference 001's AlphaZero network as a subject model: the network
//! shipped with kibitzer, players that search with a network, the final
//! check against fixed players, and the harvest that turns a network's own
//! games into what `kibitzer sweep` reads — an Othello game file, board-state
//! labels and the network's activations at a hook site, aligned row for row.
//!
//! Training itself is [`kibitzer_models::alphazero::coach`].

use crate::board_eval::{ROW_IDS_GAME_TOKEN, ROW_IDS_KEY, check_rows_match_labels};
use burn::tensor::Device;
use kibitzer_bsp::labelling::{LabelledPositions, othello_at_moves, save_labels_jsonl};
use kibitzer_bsp::othello::{OthelloBspOptions, othello_bsps};
use kibitzer_games::Game;
use kibitzer_games::arena::{ArenaConfig, ArenaReport};
use kibitzer_games::dataset::{game_rng, write_dataset};
use kibitzer_games::mcts::MctsConfig;
use kibitzer_games::othello::{Othello, OthelloMove};
use kibitzer_games::players::{Agent, MctsAgent};
use kibitzer_hooks::{HarvestConfig as HookHarvestConfig, HookSite};
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_models::alphazero::coach::{Baseline, CoachConfig, net_vs_baseline};
use kibitzer_models::{AlphaZeroNet, ModelError, PositionSource};
use kibitzer_store::StoreConfig;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

/// Errors of this module, each naming the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum AlphaZeroError {
    /// The network or its search.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Self-play, arenas.
    #[error(transparent)]
    Coach(#[from] kibitzer_models::alphazero::coach::CoachError),
    /// Labelling.
    #[error(transparent)]
    Bsp(#[from] kibitzer_bsp::BspError),
    /// Writing the games.
    #[error(transparent)]
    Dataset(#[from] kibitzer_games::dataset::DatasetError),
    /// Running the network with hooks.
    #[error(transparent)]
    Hook(#[from] kibitzer_hooks::HookError),
    /// The store's rows and the labels, checked after writing them.
    #[error(transparent)]
    Rows(#[from] crate::board_eval::BoardEvalError),
    /// A bad setting.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
}

/// Where a network comes from: a file written by `kibitzer alphazero train`
/// (`AlphaZeroNet::save`), or the 6x6 network shipped inside kibitzer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetSource {
    /// The network in the binary (`shipped`).
    Shipped,
    /// A weights file.
    File(PathBuf),
}

impl FromStr for NetSource {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<NetSource, Self::Err> {
        Ok(match s {
            "shipped" => NetSource::Shipped,
            path => NetSource::File(PathBuf::from(path)),
        })
    }
}

impl NetSource {
    /// Loads the network onto `device`.
    pub fn load(&self, device: &Device) -> Result<AlphaZeroNet, ModelError> {
        match self {
            NetSource::Shipped => shipped_net(device),
            NetSource::File(path) => AlphaZeroNet::load(path, device),
        }
    }
}

/// The shipped network's file, as it lies in the repository.
pub const SHIPPED_NET_FILE: &str = "crates/kibitzer/assets/alphazero-othello-6x6.safetensors";

/// The 6x6 Othello network trained by `kibitzer alphazero train --size 6`
/// with the reference settings and seed 0 (see docs/results.md for its
/// arena results), embedded in the binary so the demo needs no training.
pub fn shipped_net(device: &Device) -> Result<AlphaZeroNet, ModelError> {
    const BYTES: &[u8] = include_bytes!("../assets/alphazero-othello-6x6.safetensors");
    AlphaZeroNet::from_bytes(SHIPPED_NET_FILE, BYTES, device)
}

/// MCTS simulations a move when a network plays outside training: in
/// `games play`, `alphazero eval` and the check after `alphazero train`.
///
/// Training searches 32 simulations a move (reference 001). Playing
/// searches more because the search, not the training, pays for it: the
/// shipped network (reference defaults, seed 0) wins 90, 94 and 98 of 100
/// games against the random player at 32, 50 and 100 simulations, and 87,
/// 91 and 100 against the greedy player (docs/RESULTS.md).
/// alpha-zero-general's `pit.py` plays with 50.
pub const PLAY_SIMULATIONS: u32 = 100;

/// A player that searches with a network: `alphazero[:SIMULATIONS][,net=FILE]`
/// (default [`PLAY_SIMULATIONS`] and the shipped network).
#[derive(Clone, Debug, PartialEq)]
pub struct NetPlayerSpec {
    /// MCTS simulations per move.
    pub simulations: u32,
    /// The network.
    pub net: NetSource,
}

impl NetPlayerSpec {
    /// The spec in `text`, `None` when it does not name a network player
    /// (it is then one of kibitzer-games' players).
    pub fn parse(text: &str) -> Option<Result<NetPlayerSpec, AlphaZeroError>> {
        let rest = text.trim().strip_prefix("alphazero")?;
        let mut spec = NetPlayerSpec {
            simulations: PLAY_SIMULATIONS,
            net: NetSource::Shipped,
        };
        let rest = match rest.strip_prefix(':') {
            Some(r) => r,
            None if rest.is_empty() || rest.starts_with(',') => rest.trim_start_matches(','),
            None => return None,
        };
        for (i, part) in rest.split(',').filter(|p| !p.is_empty()).enumerate() {
            if let Some(path) = part.strip_prefix("net=") {
                spec.net = NetSource::File(PathBuf::from(path));
            } else if i == 0
                && let Ok(n) = part.parse::<u32>()
            {
                spec.simulations = n;
            } else {
                return Some(Err(AlphaZeroError::Config(format!(
                    "player {text:?}: unknown setting {part:?}; expected alphazero[:SIMULATIONS][,net=FILE]"
                ))));
            }
        }
        if spec.simulations == 0 {
            return Some(Err(AlphaZeroError::Config(format!(
                "player {text:?}: needs at least 1 simulation"
            ))));
        }
        Some(Ok(spec))
    }

    /// The player (MCTS at temperature 0 with the reference's `c_puct`),
    /// for a board of `size`.
    pub fn agent(
        &self,
        size: usize,
        seed: u64,
        device: &Device,
    ) -> Result<MctsAgent<Othello, AlphaZeroNet>, AlphaZeroError> {
        let net = self.net.load(device)?;
        if net.config().board_size != size {
            return Err(AlphaZeroError::Config(format!(
                "the network plays {0}x{0} Othello, the game is {1}x{1}",
                net.config().board_size,
                size
            )));
        }
        let mcts = search_config(net.config().board_size, self.simulations);
        Ok(MctsAgent::new(mcts, net, seed)
            .map_err(kibitzer_models::alphazero::coach::CoachError::from)?
            .with_name(format!("alphazero:{}", self.simulations)))
    }
}

/// The search a network plays with outside training: the arena's.
fn search_config(size: usize, simulations: u32) -> MctsConfig {
    CoachConfig {
        simulations,
        ..CoachConfig::reference(size)
    }
    .arena_mcts()
}

/// Builds an Othello player from a spec: a network player
/// ([`NetPlayerSpec`]) or any of kibitzer-games' players.
pub fn othello_agent(
    spec: &str,
    size: usize,
    seed: u64,
    device: &Device,
) -> Result<Box<dyn Agent<Othello>>, AlphaZeroError> {
    use kibitzer_games::players::{AgentGame, PlayerSpec};
    match NetPlayerSpec::parse(spec) {
        Some(net) => Ok(Box::new(net?.agent(size, seed, device)?)),
        None => {
            let spec = spec
                .parse::<PlayerSpec>()
                .map_err(|e| AlphaZeroError::Config(e.to_string()))?;
            Othello::build_agent(&spec, seed).map_err(|e| AlphaZeroError::Config(e.to_string()))
        }
    }
}

/// Whether a player spec names a network player.
pub fn is_net_player(spec: &str) -> bool {
    NetPlayerSpec::parse(spec).is_some()
}

/// A match between two Othello players of which either may be a network
/// player, colours alternating, on all of rayon's threads.
pub fn othello_arena(
    size: usize,
    player_a: &str,
    player_b: &str,
    config: &ArenaConfig,
    device: &Device,
) -> Result<ArenaReport, AlphaZeroError> {
    let start = Othello::new(size).map_err(|e| AlphaZeroError::Config(e.to_string()))?;
    kibitzer_games::arena::run_arena(
        &start,
        config,
        |seed| othello_agent(player_a, size, seed, device),
        |seed| othello_agent(player_b, size, seed, device),
    )
    .map_err(|e| AlphaZeroError::Config(e.to_string()))
}

/// Reference 001's check of a network: `games` games (colours alternating)
/// against the random player and against the greedy player, the network
/// searching `simulations` simulations a move at temperature 0.
pub fn final_check(
    net: &AlphaZeroNet,
    simulations: u32,
    games: usize,
    seed: u64,
) -> Result<Vec<ArenaReport>, AlphaZeroError> {
    let mcts = search_config(net.config().board_size, simulations);
    let mut reports = Vec::new();
    for (i, baseline) in [Baseline::Random, Baseline::Greedy].into_iter().enumerate() {
        let arena = ArenaConfig::new(games, seed.wrapping_add(i as u64));
        let mut report = net_vs_baseline(net, baseline, &mcts, &arena)?;
        report.player_a = format!("alphazero:{simulations}");
        reports.push(report);
    }
    Ok(reports)
}

/// Writes arena reports as one JSON array, atomically.
pub fn write_check(path: &Path, reports: &[ArenaReport]) -> Result<(), AlphaZeroError> {
    let text =
        serde_json::to_string_pretty(reports).expect("arena reports have only serialisable fields");
    kibitzer_store::atomic_write(path, text.as_bytes())
        .map_err(|e| FileError::new(path.to_owned(), e).into())
}

/// Games of a network against itself, each move sampled from its policy
/// over the legal moves (probabilities raised to `1 / temperature`;
/// temperature 0 takes the most likely move), `batch` games advanced per
/// forward pass. Game `i` draws from its own generator (`seed`, `i`), so the
/// games do not depend on `batch`, up to the last bit of the forward pass.
pub fn policy_games(
    net: &AlphaZeroNet,
    games: usize,
    temperature: f32,
    batch: usize,
    seed: u64,
) -> Result<Vec<Vec<OthelloMove>>, AlphaZeroError> {
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(AlphaZeroError::Config(format!(
            "temperature {temperature}: expected a finite value >= 0"
        )));
    }
    let size = net.config().board_size;
    let mut out = Vec::with_capacity(games);
    let mut next = 0;
    while next < games {
        let n = batch.max(1).min(games - next);
        let mut positions =
            vec![Othello::new(size).map_err(|e| ModelError::Config(e.to_string()))?; n];
        let mut moves: Vec<Vec<OthelloMove>> = vec![Vec::new(); n];
        let mut rngs: Vec<_> = (next..next + n).map(|i| game_rng(seed, i as u64)).collect();
        loop {
            // Forced passes need no network.
            for (p, m) in positions.iter_mut().zip(&mut moves) {
                while p.outcome().is_none() && p.must_pass() {
                    p.play(OthelloMove::Pass).expect("a forced pass is legal");
                    m.push(OthelloMove::Pass);
                }
            }
            let live: Vec<usize> = (0..n)
                .filter(|&i| positions[i].outcome().is_none())
                .collect();
            if live.is_empty() {
                break;
            }
            let batch: Vec<Othello> = live.iter().map(|&i| positions[i]).collect();
            let log_policy = kibitzer_sae::ops::to_host(net.predict(&batch)?.log_policy);
            let actions = net.config().actions();
            for (row, &i) in live.iter().enumerate() {
                let logits = &log_policy[row * actions..(row + 1) * actions];
                let mv = sample_move(&positions[i], logits, temperature, &mut rngs[i]);
                positions[i].play(mv).expect("sampled among legal moves");
                moves[i].push(mv);
            }
        }
        out.extend(moves);
        next += n;
    }
    Ok(out)
}

/// A legal move of `position` drawn from the log-probabilities `logits`.
fn sample_move(
    position: &Othello,
    logits: &[f32],
    temperature: f32,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> OthelloMove {
    let legal = position.legal_moves();
    let scores: Vec<f32> = legal
        .iter()
        .map(|&mv| logits[position.action_index(mv)])
        .collect();
    if temperature == 0.0 {
        let best = (0..legal.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .expect("a live position has a legal move");
        return legal[best];
    }
    let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = scores
        .iter()
        .map(|&s| (f64::from(s - top) / f64::from(temperature)).exp())
        .collect();
    let mut x = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (mv, w) in legal.iter().zip(&weights) {
        if x < *w {
            return *mv;
        }
        x -= w;
    }
    *legal.last().expect("a live position has a legal move")
}

/// What [`harvest`] makes.
#[derive(Clone, Debug)]
pub struct HarvestConfig {
    /// The network.
    pub net: NetSource,
    /// Draw the network's weights afresh with this seed instead (the
    /// random-init baseline of reference 002): the games still come from
    /// `net`, the activations from the untrained network.
    pub random_init: Option<u64>,
    /// Positions (activation rows) wanted: whole games are played until
    /// there are at least this many (reference 001: 3 million).
    pub positions: usize,
    /// Games whose positions get board-state labels (the first ones).
    pub label_games: usize,
    /// The hook site (reference 001: the layer-2 residual stream).
    pub site: HookSite,
    /// Sampling temperature of the games.
    pub temperature: f32,
    /// Seed of the games.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// Device.
    pub device: Device,
    /// Show progress bars.
    pub progress: bool,
}

/// File names inside a harvest directory.
pub mod harvest_files {
    /// The games (`kibitzer games` Othello dataset).
    pub const GAMES: &str = "games.bin";
    /// Labels of the first games' positions (`kibitzer bsp labels` format).
    pub const LABELS: &str = "labels.jsonl";
    /// The activation store.
    pub const ACTIVATIONS: &str = "activations";
    /// What was made, with the settings.
    pub const REPORT: &str = "harvest.json";
}

/// What [`harvest`] made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HarvestReport {
    /// Games played.
    pub games: usize,
    /// Activation rows (one per square move, in `kibitzer bsp labels` order).
    pub rows: u64,
    /// Labelled positions (the first rows).
    pub labelled_rows: usize,
    /// Width of the activations.
    pub width: usize,
    /// The hook site.
    pub site: String,
    /// Whether the activations come from a freshly initialised network.
    pub random_init: Option<u64>,
    /// The files.
    pub games_file: PathBuf,
    /// Labels.
    pub labels_file: PathBuf,
    /// Activation store.
    pub activations: PathBuf,
    /// Seconds spent playing, labelling and harvesting.
    pub seconds: [f64; 3],
}

/// Plays the network's games, labels the first `label_games` of them and
/// harvests the network's activations at `site` over every position after
/// a square move (passes carry no token), in the order `kibitzer bsp labels`
/// writes: games in order, moves in order. Row `i` of the store is labelled
/// position `i`, so the directory feeds `kibitzer sweep` directly; the
/// store's `example` and `position` columns hold each row's game and square
/// move (the labels' `game` and `token`), checked against the labels here
/// and wherever the two meet again.
pub fn harvest(config: &HarvestConfig) -> Result<HarvestReport, AlphaZeroError> {
    if config.positions == 0 {
        return Err(AlphaZeroError::Config(
            "positions must be at least 1".into(),
        ));
    }
    let out = &config.out;
    std::fs::create_dir_all(out).at_file(out)?;
    let net = config.net.load(&config.device)?;
    let size = net.config().board_size;

    // Games, in chunks until there are enough square moves.
    let clock = Instant::now();
    let bar = kibitzer_io::progress::bar(config.progress, config.positions as u64, 0, "positions");
    bar.set_message("playing");
    let mut games: Vec<Vec<OthelloMove>> = Vec::new();
    let mut positions = 0usize;
    while positions < config.positions {
        let left = config.positions - positions;
        // About 2 * size^2 / 2 square moves a game; a chunk covers what is left.
        let chunk = (left / (size * size - 4)).clamp(16, 4096);
        let more = policy_games(
            &net,
            chunk,
            config.temperature,
            1024,
            game_rng(config.seed, games.len() as u64).random(),
        )?;
        for game in more {
            if positions >= config.positions {
                break;
            }
            positions += game
                .iter()
                .filter(|m| matches!(m, OthelloMove::Square(_)))
                .count();
            games.push(game);
        }
        bar.set_position(positions.min(config.positions) as u64);
    }
    bar.finish_and_clear();
    let games_file = out.join(harvest_files::GAMES);
    write_dataset(&games_file, size, &games)?;
    let play_s = clock.elapsed().as_secs_f64();

    // Every position after a square move, games in order: the rows of the
    // store, of which the first games' are labelled.
    let clock = Instant::now();
    let all = othello_at_moves(size, &games)?;
    let labelled_games = config.label_games.min(games.len());
    let labelled_rows = all.refs.partition_point(|r| r.game < labelled_games);
    let labelled = LabelledPositions {
        positions: all.positions[..labelled_rows].to_vec(),
        refs: all.refs[..labelled_rows].to_vec(),
    };
    let set = othello_bsps(size, OthelloBspOptions::default())?;
    let labels = set.label(&labelled.positions)?;
    let labels_file = out.join(harvest_files::LABELS);
    save_labels_jsonl(&labels_file, &labelled, &labels)?;
    let label_s = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    let subject = match config.random_init {
        Some(seed) => {
            let mut c = net.config().clone();
            c.seed = seed;
            AlphaZeroNet::new(c, &config.device)?
        }
        None => net,
    };
    let activations = out.join(harvest_files::ACTIVATIONS);
    if activations.exists() {
        std::fs::remove_dir_all(&activations).at_file(&activations)?;
    }
    let source = PositionSource::new(&subject, all.positions)?;
    let hook_config = HookHarvestConfig {
        store: StoreConfig {
            metadata: serde_json::json!({
                "model": "alphazero-othello",
                "game": "othello",
                "board_size": size,
                "random_init": config.random_init,
                ROW_IDS_KEY: ROW_IDS_GAME_TOKEN,
            }),
            ..StoreConfig::new(subject.config().width)
        },
        progress: config.progress,
        ..HookHarvestConfig::new()
    };
    // The network reads one board per example: each row records the
    // (game, square move) of its position, as a GPT's store records
    // (game, token), so the labels' token references can be checked.
    let refs = &all.refs;
    let manifest = kibitzer_hooks::harvest::harvest_with_row_ids(
        &subject,
        config.site,
        source,
        &activations,
        &hook_config,
        |example, _| {
            let r = refs[example as usize];
            (r.game as i64, r.token as i64)
        },
    )?;
    let store = kibitzer_store::Store::open(&activations).at_file(&activations)?;
    check_rows_match_labels(&store, &labelled.refs, &labels_file)?;
    let harvest_s = clock.elapsed().as_secs_f64();
    let report = HarvestReport {
        games: games.len(),
        rows: manifest.rows,
        labelled_rows: labels.rows(),
        width: subject.config().width,
        site: config.site.to_string(),
        random_init: config.random_init,
        games_file,
        labels_file,
        activations,
        seconds: [play_s, label_s, harvest_s],
    };
    let path = out.join(harvest_files::REPORT);
    // The report holds paths under `out`, which serialise only as UTF-8.
    let text = serde_json::to_string_pretty(&report).at_file(&path)?;
    kibitzer_store::atomic_write(&path, text.as_bytes()).at_file(&path)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_games::dataset::OthelloDataset;
    use kibitzer_hooks::HookedModel;

    fn cpu() -> Device {
        kibitzer_sae::DeviceChoice::Cpu
            .device()
            .expect("the CPU device exists")
    }

    #[test]
    fn player_specs_name_simulations_and_network() {
        let spec = |t: &str| NetPlayerSpec::parse(t).expect("a network player").unwrap();
        assert_eq!(spec("alphazero").simulations, PLAY_SIMULATIONS);
        assert_eq!(spec("alphazero").net, NetSource::Shipped);
        assert_eq!(spec("alphazero:7").simulations, 7);
        let both = spec("alphazero:9,net=runs/a/best.safetensors");
        assert_eq!(both.simulations, 9);
        assert_eq!(
            both.net,
            NetSource::File(PathBuf::from("runs/a/best.safetensors"))
        );
        assert_eq!(spec("alphazero,net=x").simulations, PLAY_SIMULATIONS);
        // Other players are not network players.
        for other in ["random", "mcts:200", "alphazeroo", "alpha"] {
            assert!(NetPlayerSpec::parse(other).is_none(), "{other}");
        }
        for bad in ["alphazero:0", "alphazero:fast", "alphazero:5,depth=3"] {
            let err = NetPlayerSpec::parse(bad)
                .expect("a network player")
                .unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn a_network_refuses_a_board_of_another_size() {
        let spec = NetPlayerSpec::parse("alphazero:4").unwrap().unwrap();
        let err = spec.agent(8, 0, &cpu()).err().expect("6x6 net on 8x8");
        assert!(err.to_string().contains("6x6"), "{err}");
    }

    /// Row `i` of the store is the network's activation on labelled
    /// position `i`: recomputed here position by position from the game
    /// file, the labels' boards agree and the rows match.
    #[test]
    fn harvested_rows_are_the_labelled_positions_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let device = cpu();
        let site: HookSite = "blocks.1.hook_resid_post".parse().unwrap();
        let config = HarvestConfig {
            net: NetSource::Shipped,
            random_init: None,
            positions: 700,
            label_games: 5,
            site,
            temperature: 1.0,
            seed: 3,
            out: dir.path().to_path_buf(),
            device: device.clone(),
            progress: false,
        };
        let report = harvest(&config).unwrap();
        assert!(report.rows >= 700, "{report:?}");
        let games = OthelloDataset::open(&report.games_file).unwrap();
        assert_eq!(games.len(), report.games);

        // Positions after every square move, games in order.
        let mut positions = Vec::new();
        let mut labelled = 0;
        for g in 0..games.len() {
            let moves = games.game(g).unwrap();
            let mut board = Othello::new(6).unwrap();
            for mv in moves {
                board.play(mv).unwrap();
                if matches!(mv, OthelloMove::Square(_)) {
                    positions.push(board.clone());
                }
            }
            if g < 5 {
                labelled = positions.len();
            }
        }
        assert_eq!(positions.len() as u64, report.rows);
        assert_eq!(report.labelled_rows, labelled);
        let label_lines = std::fs::read_to_string(&report.labels_file).unwrap();
        assert_eq!(label_lines.lines().count(), report.labelled_rows);

        let store = kibitzer_store::Store::open(&report.activations).unwrap();
        assert_eq!(store.rows(), report.rows);
        // Each row records its game and square move: the labels' (game, token).
        let column = |name: &str| match store.column(name).unwrap() {
            kibitzer_store::ColumnData::I64(v) => v,
            other => panic!("{name} is {:?}", other.dtype()),
        };
        let all_games: Vec<_> = (0..games.len()).map(|g| games.game(g).unwrap()).collect();
        let want: Vec<(i64, i64)> = othello_at_moves(6, &all_games)
            .unwrap()
            .refs
            .iter()
            .map(|r| (r.game as i64, r.token as i64))
            .collect();
        let ids: Vec<(i64, i64)> = column("example")
            .into_iter()
            .zip(column("position"))
            .collect();
        assert_eq!(ids, want);
        let stored = store.read_shard(0).unwrap();
        let net = shipped_net(&device).unwrap();
        let take = 40.min(stored.len() / 256);
        let input = net.encode(&positions[..take]).unwrap();
        let cache = net.collect(&input, &[site]).unwrap();
        let expected: Vec<f32> = cache
            .tensor::<2>(site)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        for (i, (a, b)) in expected.iter().zip(&stored[..take * 256]).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                "row {} column {}: recomputed {a}, stored {b}",
                i / 256,
                i % 256
            );
        }

        // The random-init baseline: the same games and labels, other rows.
        let base = dir.path().join("random");
        let baseline = harvest(&HarvestConfig {
            random_init: Some(1),
            out: base.clone(),
            ..config
        })
        .unwrap();
        assert_eq!(
            std::fs::read(&baseline.games_file).unwrap(),
            std::fs::read(&report.games_file).unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(&baseline.labels_file).unwrap(),
            label_lines
        );
        let other = kibitzer_store::Store::open(&baseline.activations)
            .unwrap()
            .read_shard(0)
            .unwrap();
        let differ = other.iter().zip(&stored).filter(|(a, b)| a != b).count();
        assert!(differ > stored.len() / 2, "{differ} of {}", stored.len());
    }
}
