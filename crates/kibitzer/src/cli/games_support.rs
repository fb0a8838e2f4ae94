//! Plain functions behind `kibitzer games ...`: each does one job over
//! kibitzer-games and returns a serialisable report (or text to print), so
//! the command parsers in [`super::games`] only parse arguments and print.
//! The readers of any game file live in the library
//! ([`kibitzer_games::files`]) and are re-exported here.
//!
//! | command | function |
//! |---|---|
//! | `games perft othello --size N --depth D` | [`othello_perft`] |
//! | `games perft chess [--fen FEN] --depth D` | `chess_perft` (feature `chess`) |
//! | `games arena --game G --a P --b P --games N` | [`arena`] |
//! | `games generate othello --players ...` | [`generate_othello`] |
//! | `games generate chess --players ...` | `generate_chess_self_play` (feature `chess`) |
//! | `games import-pgn IN OUT` | `import_pgn` (feature `chess`) |
//! | `games info FILE`, `games show FILE` | [`file_info`], [`show_game`] |
//! | `games play G --human` | [`play_human_game`], [`play_agents_game`] |
//! | `games engine` | [`engine_status`] |
//!
//! Players are [`PlayerSpec`] texts: `random`, `greedy`, `alphabeta:4`,
//! `mcts:200`, `solver` (Othello), `stockfish:skill=3`,
//! `uci:stockfish:skill=3` or `uci:/path/to/engine:nodes=1000` (chess).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use kibitzer_games::arena::{ArenaConfig, ArenaError, ArenaReport, play_game, run_arena_by_names};
use kibitzer_games::dataset::{
    AgentDatasetInfo, DatasetError, DatasetSummary, MatchConfig, players_sidecar_path,
    write_agent_dataset,
};
use kibitzer_games::game::{Outcome, Player};
use kibitzer_games::othello::{BoardSizeError, Othello};
use kibitzer_games::players::{
    Agent, AgentGame, HumanGameError, HumanGameReport, PlayerSpec, PlayerSpecError, TextGame,
    default_engine_path, play_human,
};

pub use kibitzer_games::files::{GameFileError, file_info, show_game};
pub use kibitzer_games::othello::reports::{
    generate_random_dataset as generate_othello_random, perft_report as othello_perft,
};

#[cfg(feature = "chess")]
pub use kibitzer_games::chess::perft::perft_report as chess_perft;
#[cfg(feature = "chess")]
use kibitzer_games::chess::{
    Chess, NotationError,
    pgn::PgnError,
    rated::{ImportReport, RatedError, RatedFormat},
};
#[cfg(feature = "chess")]
use kibitzer_games::players::selfplay::{
    RatedPlayer, SelfPlayConfig, SelfPlayError, SelfPlayOptions, SelfPlayReport, no_engine_hint,
    write_rated_self_play,
};

/// What can go wrong in a `games` command.
#[derive(Debug, thiserror::Error)]
pub enum GamesCliError {
    /// An Othello dataset could not be read, written or generated.
    #[error(transparent)]
    Dataset(Box<DatasetError>),
    /// A match failed.
    #[error(transparent)]
    Arena(Box<ArenaError>),
    /// A player spec is invalid or its player cannot be built.
    #[error(transparent)]
    Spec(Box<PlayerSpecError>),
    /// Not an Othello board size.
    #[error(transparent)]
    BoardSize(#[from] BoardSizeError),
    /// A game at the terminal failed.
    #[error(transparent)]
    Human(Box<HumanGameError>),
    /// A game between two agents failed.
    #[error("{0}")]
    Play(String),
    /// A FEN or move that does not parse.
    #[cfg(feature = "chess")]
    #[error(transparent)]
    Notation(#[from] NotationError),
    /// Chess self-play failed.
    #[cfg(feature = "chess")]
    #[error(transparent)]
    SelfPlay(Box<SelfPlayError>),
    /// A rated-games file could not be read or written.
    #[cfg(feature = "chess")]
    #[error(transparent)]
    Rated(Box<RatedError>),
    /// A PGN file could not be read.
    #[cfg(feature = "chess")]
    #[error(transparent)]
    Pgn(Box<PgnError>),
    /// An engine player was asked for and no engine is installed.
    #[error("{hint}")]
    NoEngine {
        /// What to install, or which built-in players to use instead.
        hint: String,
    },
    /// A file whose kind cannot be told.
    #[cfg(feature = "chess")]
    #[error("{path}: {problem}; expected {expected}")]
    UnknownFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
        /// What would do.
        expected: &'static str,
    },
    /// No player was named.
    #[error("no players given: name at least one ({forms})")]
    NoPlayers {
        /// The player forms.
        forms: &'static str,
    },
    /// A game file could not be read.
    #[error(transparent)]
    File(#[from] GameFileError),
    /// A thread pool could not be built.
    #[error("threads: {0}")]
    Threads(String),
    /// The file system failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// `?` on the crate's errors: the large ones are boxed, so every `Result`
/// of this module stays small.
macro_rules! boxed_from {
    ($($(#[$cfg:meta])* $variant:ident($error:ty)),* $(,)?) => {
        $(
            $(#[$cfg])*
            impl From<$error> for GamesCliError {
                fn from(error: $error) -> GamesCliError {
                    GamesCliError::$variant(Box::new(error))
                }
            }
        )*
    };
}

boxed_from!(
    Dataset(DatasetError),
    Arena(ArenaError),
    Spec(PlayerSpecError),
    Human(HumanGameError),
    #[cfg(feature = "chess")]
    SelfPlay(SelfPlayError),
    #[cfg(feature = "chess")]
    Rated(RatedError),
    #[cfg(feature = "chess")]
    Pgn(PgnError),
);

/// Runs `work` on a pool of `threads` threads (for `--threads`), or on
/// rayon's global pool (every core) when `None`. Every generator and the
/// arena give the same results on any number of threads.
pub fn with_threads<T: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> T + Send,
) -> Result<T, GamesCliError> {
    match threads {
        None => Ok(work()),
        Some(0) => Err(GamesCliError::Threads(
            "expected at least 1 thread, got 0".to_owned(),
        )),
        Some(threads) => Ok(rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|error| GamesCliError::Threads(error.to_string()))?
            .install(work)),
    }
}

/// The game a command is about and the position it starts from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GameSetup {
    /// Othello on a `size`x`size` board (4, 6 or 8) from its start.
    Othello {
        /// Board side.
        size: usize,
    },
    /// Chess from a FEN (the standard start when `None`).
    Chess {
        /// The starting position.
        fen: Option<String>,
    },
}

impl GameSetup {
    /// The starting Othello position (an error for a size other than 4, 6, 8).
    fn othello(size: usize) -> Result<Othello, GamesCliError> {
        Ok(Othello::new(size)?)
    }

    /// The starting chess position.
    #[cfg(feature = "chess")]
    fn chess(fen: Option<&str>) -> Result<Chess, GamesCliError> {
        Ok(match fen {
            Some(fen) => Chess::from_fen(fen)?,
            None => Chess::new(),
        })
    }
}

/// The error for chess in a build without the `chess` feature: the game
/// files' own ([`GameFileError::NoChess`]), so the message is written once.
#[cfg(not(feature = "chess"))]
fn no_chess(what: &str) -> GamesCliError {
    GamesCliError::File(GameFileError::NoChess {
        what: what.to_owned(),
    })
}

/// Plays a match of `config.games` games between the players named
/// `player_a` and `player_b` ([`PlayerSpec`] texts), colours alternating,
/// on all of rayon's threads (see [`kibitzer_games::arena`]). Print the report with
/// [`ArenaReport::to_markdown`] or [`ArenaReport::to_json`].
pub fn arena(
    setup: &GameSetup,
    player_a: &str,
    player_b: &str,
    config: &ArenaConfig,
) -> Result<ArenaReport, GamesCliError> {
    check_engines(&[player_a, player_b])?;
    match setup {
        GameSetup::Othello { size } => Ok(run_arena_by_names(
            &GameSetup::othello(*size)?,
            player_a,
            player_b,
            config,
        )?),
        #[cfg(feature = "chess")]
        GameSetup::Chess { fen } => Ok(run_arena_by_names(
            &GameSetup::chess(fen.as_deref())?,
            player_a,
            player_b,
            config,
        )?),
        #[cfg(not(feature = "chess"))]
        GameSetup::Chess { .. } => Err(no_chess("a chess arena")),
    }
}

/// Fails with [`GamesCliError::NoEngine`] when a spec asks for Stockfish by
/// default (no path, no `uci:<engine>`) and none is installed, so the user
/// reads what to install and which built-in players to use instead. Specs
/// that do not parse are left for the caller to report.
fn check_engines(specs: &[&str]) -> Result<(), GamesCliError> {
    check_engines_with(specs, default_engine_path().as_deref())
}

/// [`check_engines`] with the engine found (or not) given.
fn check_engines_with(specs: &[&str], engine: Option<&Path>) -> Result<(), GamesCliError> {
    let wants_default_engine = specs.iter().any(|text| {
        matches!(text.parse::<PlayerSpec>(), Ok(PlayerSpec::Stockfish(settings)) if settings.path.is_none())
    });
    if wants_default_engine && engine.is_none() {
        return Err(GamesCliError::NoEngine {
            hint: no_engine_message(),
        });
    }
    Ok(())
}

/// What to do without an engine.
fn no_engine_message() -> String {
    #[cfg(feature = "chess")]
    {
        no_engine_hint()
    }
    #[cfg(not(feature = "chess"))]
    {
        format!(
            "no UCI engine found (install Stockfish: apt-get install stockfish, or set KIBITZER_STOCKFISH); use a built-in player instead: {}",
            kibitzer_games::players::uci::BUILT_IN_PLAYERS
        )
    }
}

/// A player's results in a generated set.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standing {
    /// The player's spec.
    pub player: String,
    /// Games played (a game against itself counts twice).
    pub games: usize,
    /// Points: 1 a win, 0.5 a draw.
    pub points: f64,
    /// Points per game.
    pub score: f64,
}

/// What [`generate_othello`] wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OthelloGenerateReport {
    /// The dataset written.
    pub summary: DatasetSummary,
    /// The seed.
    pub seed: u64,
    /// rayon threads used.
    pub threads: usize,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Games per second.
    pub games_per_s: f64,
    /// The players (`["random"]` for the synthetic set).
    pub players: Vec<String>,
    /// Each player's results (empty for the synthetic random set).
    pub standings: Vec<Standing>,
    /// The file naming who played each game (absent for the synthetic set).
    pub players_file: Option<PathBuf>,
}

/// Writes `count` Othello games to `path`. With the single player `random`
/// and no opening plies: the OthelloGPT synthetic set
/// ([`kibitzer_games::dataset::write_random_dataset`], fast, multi-threaded).
/// Otherwise the players meet in turn ([`write_agent_dataset`]; for a
/// "championship-like" set name alpha-beta players at several depths) after
/// `random_opening_plies` random plies, and who played what goes to
/// [`players_sidecar_path`].
pub fn generate_othello(
    path: impl AsRef<Path>,
    size: usize,
    count: usize,
    seed: u64,
    players: &[String],
    random_opening_plies: usize,
) -> Result<OthelloGenerateReport, GamesCliError> {
    let path = path.as_ref();
    if players.is_empty() {
        return Err(GamesCliError::NoPlayers {
            forms: kibitzer_games::players::PLAYER_SPEC_FORMS,
        });
    }
    let specs = players
        .iter()
        .map(|text| text.parse::<PlayerSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    if specs == [PlayerSpec::Random] && random_opening_plies == 0 {
        let report = generate_othello_random(path, size, count, seed)?;
        return Ok(OthelloGenerateReport {
            summary: report.summary,
            seed,
            threads: report.threads,
            elapsed_s: report.elapsed_s,
            games_per_s: report.games_per_s,
            players: vec!["random".to_owned()],
            standings: Vec::new(),
            players_file: None,
        });
    }
    let config = MatchConfig {
        size,
        count,
        seed,
        random_opening_plies,
    };
    let clock = Instant::now();
    let (summary, info) = write_agent_dataset(path, &config, &specs)?;
    let elapsed_s = clock.elapsed().as_secs_f64();
    Ok(OthelloGenerateReport {
        games_per_s: rate(summary.games, elapsed_s),
        summary,
        seed,
        threads: rayon::current_num_threads(),
        elapsed_s,
        standings: standings(&info),
        players: info.players,
        players_file: Some(players_sidecar_path(path)),
    })
}

fn standings(info: &AgentDatasetInfo) -> Vec<Standing> {
    info.players
        .iter()
        .zip(&info.points)
        .zip(&info.games_played)
        .map(|((player, &points), &games)| Standing {
            player: player.clone(),
            games,
            points,
            score: if games > 0 {
                points / games as f64
            } else {
                0.0
            },
        })
        .collect()
}

fn rate(count: u64, elapsed_s: f64) -> f64 {
    if elapsed_s > 0.0 {
        count as f64 / elapsed_s
    } else {
        f64::INFINITY
    }
}

/// What [`generate_chess_self_play`] wrote.
#[cfg(feature = "chess")]
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChessGenerateReport {
    /// The games written and who played them.
    pub report: SelfPlayReport,
    /// The engine used for `stockfish` players (`None`: none needed).
    pub engine: Option<PathBuf>,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Games played by this call (resumed ones not counted) per second.
    pub games_per_s: f64,
}

/// Plays rated chess games among `players` ([`RatedPlayer`] texts: a
/// [`PlayerSpec`] with an optional `@<elo>`, like `stockfish:skill=3` or
/// `alphabeta:2@1000`) and writes them to `path` (`.jsonl` or `.pgn`) with
/// each side's Elo (see [`kibitzer_games::players::selfplay`]). Without an installed
/// engine, a `stockfish` player gives [`GamesCliError::NoEngine`], naming the
/// built-in players to use instead. `options` resumes an interrupted run and
/// shows progress (see [`write_rated_self_play`]).
#[cfg(feature = "chess")]
pub fn generate_chess_self_play(
    path: impl AsRef<Path>,
    players: &[String],
    config: &SelfPlayConfig,
    options: &SelfPlayOptions,
) -> Result<ChessGenerateReport, GamesCliError> {
    if players.is_empty() {
        return Err(GamesCliError::NoPlayers {
            forms: kibitzer_games::players::PLAYER_SPEC_FORMS,
        });
    }
    let rated = players
        .iter()
        .map(|text| text.parse::<RatedPlayer>())
        .collect::<Result<Vec<_>, _>>()?;
    let needs_engine = rated
        .iter()
        .any(|player| matches!(player.spec, PlayerSpec::Stockfish(_)));
    let default_engine = rated
        .iter()
        .any(|player| matches!(&player.spec, PlayerSpec::Stockfish(s) if s.path.is_none()));
    let engine = default_engine_path();
    if default_engine && engine.is_none() {
        return Err(GamesCliError::NoEngine {
            hint: no_engine_hint(),
        });
    }
    let clock = Instant::now();
    let report = write_rated_self_play(path, &rated, config, options)?;
    let elapsed_s = clock.elapsed().as_secs_f64();
    Ok(ChessGenerateReport {
        games_per_s: rate(report.played as u64, elapsed_s),
        report,
        engine: if needs_engine { engine } else { None },
        elapsed_s,
    })
}

/// The format a rated-games file name asks for, or an error naming the
/// extensions that work.
#[cfg(feature = "chess")]
fn rated_format(path: &Path) -> Result<RatedFormat, GamesCliError> {
    RatedFormat::from_path(path).ok_or_else(|| GamesCliError::UnknownFile {
        path: path.to_path_buf(),
        problem: "cannot tell the format from the extension".to_owned(),
        expected: ".jsonl, .ndjson or .pgn",
    })
}

/// Streams the PGN file `pgn_path` (any size) into rated games at
/// `out_path` (`.jsonl` or `.pgn`), keeping both players' Elo and the time
/// control. Without `skip_invalid` the first bad game is an error naming the
/// file, line, game and move, and nothing is written; with it, bad games are
/// skipped and counted in the report.
#[cfg(feature = "chess")]
pub fn import_pgn(
    pgn_path: impl AsRef<Path>,
    out_path: impl AsRef<Path>,
    skip_invalid: bool,
) -> Result<ImportReport, GamesCliError> {
    let format = rated_format(out_path.as_ref())?;
    Ok(kibitzer_games::chess::rated::import_pgn(
        pgn_path,
        out_path,
        format,
        skip_invalid,
    )?)
}

/// Whether a UCI engine is installed, and which.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStatus {
    /// Where Stockfish was found (`$KIBITZER_STOCKFISH`, the `PATH`,
    /// `/usr/games`), if anywhere.
    pub path: Option<PathBuf>,
    /// Its `id name` (started once to ask), when it runs.
    pub name: Option<String>,
    /// Why it could not be used, and what to do instead.
    pub problem: Option<String>,
}

/// Looks for Stockfish and, when found, starts it to read its name.
pub fn engine_status() -> EngineStatus {
    let Some(path) = default_engine_path() else {
        return EngineStatus {
            path: None,
            name: None,
            problem: Some(no_engine_message()),
        };
    };
    match kibitzer_games::players::UciEngine::start(&path, std::time::Duration::from_secs(10)) {
        Ok(engine) => EngineStatus {
            name: Some(engine.name().to_owned()),
            path: Some(path),
            problem: None,
        },
        Err(error) => EngineStatus {
            path: Some(path),
            name: None,
            problem: Some(error.to_string()),
        },
    }
}

/// Plays a game at the terminal: the person on `human_side` types moves on
/// `input` (Othello: squares like `c4`, or `pass`; chess: UCI or SAN; `moves`
/// lists the legal ones, `quit` resigns) against the player `opponent`
/// ([`PlayerSpec`] text, seeded with `seed`); boards and prompts go to
/// `output`.
pub fn play_human_game(
    setup: &GameSetup,
    opponent: &str,
    human_side: Player,
    seed: u64,
    input: impl BufRead,
    output: impl Write,
) -> Result<HumanGameReport, GamesCliError> {
    check_engines(&[opponent])?;
    let spec: PlayerSpec = opponent.parse()?;
    match setup {
        GameSetup::Othello { size } => {
            let start = GameSetup::othello(*size)?;
            let mut agent = Othello::build_agent(&spec, seed)?;
            Ok(play_human(start, &mut *agent, human_side, input, output)?)
        }
        #[cfg(feature = "chess")]
        GameSetup::Chess { fen } => {
            let start = GameSetup::chess(fen.as_deref())?;
            let mut agent = Chess::build_agent(&spec, seed)?;
            Ok(play_human(start, &mut *agent, human_side, input, output)?)
        }
        #[cfg(not(feature = "chess"))]
        GameSetup::Chess { .. } => {
            let _ = (input, output, human_side);
            Err(no_chess("playing chess"))
        }
    }
}

/// A game between two agents, as [`play_agents_game`] reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WatchedGame {
    /// The first player (Black in Othello, White in chess).
    pub first: String,
    /// The second player.
    pub second: String,
    /// The moves as the game writes them.
    pub moves: Vec<String>,
    /// The result (`None`: stopped by `max_plies`).
    pub outcome: Option<Outcome>,
    /// The final position as text.
    pub final_position: String,
}

/// Plays one game between the players `first` and `second` (seeded from
/// `seed`), writing each move and the final board to `output`.
pub fn play_agents_game(
    setup: &GameSetup,
    first: &str,
    second: &str,
    seed: u64,
    max_plies: Option<usize>,
    output: impl Write,
) -> Result<WatchedGame, GamesCliError> {
    check_engines(&[first, second])?;
    let first_spec: PlayerSpec = first.parse()?;
    let second_spec: PlayerSpec = second.parse()?;
    match setup {
        GameSetup::Othello { size } => watch(
            GameSetup::othello(*size)?,
            &first_spec,
            &second_spec,
            seed,
            max_plies,
            output,
        ),
        #[cfg(feature = "chess")]
        GameSetup::Chess { fen } => watch(
            GameSetup::chess(fen.as_deref())?,
            &first_spec,
            &second_spec,
            seed,
            max_plies,
            output,
        ),
        #[cfg(not(feature = "chess"))]
        GameSetup::Chess { .. } => {
            let _ = output;
            Err(no_chess("playing chess"))
        }
    }
}

fn watch<G: AgentGame + TextGame>(
    start: G,
    first: &PlayerSpec,
    second: &PlayerSpec,
    seed: u64,
    max_plies: Option<usize>,
    output: impl Write,
) -> Result<WatchedGame, GamesCliError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (first_seed, second_seed) = (
        rand::RngExt::random(&mut rng),
        rand::RngExt::random(&mut rng),
    );
    let mut first_agent = G::build_agent(first, first_seed)?;
    let mut second_agent = G::build_agent(second, second_seed)?;
    watch_agents(
        start,
        &mut *first_agent,
        &mut *second_agent,
        max_plies,
        output,
    )
}

/// Plays one game between two agents built by the caller (players this
/// crate cannot build from text, such as a neural network's), writing each
/// move and the final board to `output`, as [`play_agents_game`] does.
pub fn watch_agents<G: TextGame>(
    start: G,
    first_agent: &mut dyn Agent<G>,
    second_agent: &mut dyn Agent<G>,
    max_plies: Option<usize>,
    mut output: impl Write,
) -> Result<WatchedGame, GamesCliError> {
    let io_error = |source| GamesCliError::Io {
        path: PathBuf::from("<output>"),
        source,
    };
    // No random opening plies: the generator is never drawn from.
    let mut no_opening = ChaCha8Rng::seed_from_u64(0);
    let played = play_game(
        &start,
        first_agent,
        second_agent,
        &mut no_opening,
        0,
        max_plies,
    )
    .map_err(|failure| GamesCliError::Play(failure.to_string()))?;
    let moves: Vec<String> = played.moves.iter().map(ToString::to_string).collect();
    let mut position = start;
    for (ply, mv) in played.moves.iter().enumerate() {
        let side = position.side_name(position.to_move());
        writeln!(output, "{:>3}. {side}: {mv}", ply + 1).map_err(io_error)?;
        position
            .play(*mv)
            .map_err(|error| GamesCliError::Play(error.to_string()))?;
    }
    writeln!(output, "{}", position.board_text()).map_err(io_error)?;
    let outcome = played.position.outcome();
    let verdict = match outcome {
        Some(Outcome::Win(winner)) => format!("{} wins", position.side_name(winner)),
        Some(Outcome::Draw) => "draw".to_owned(),
        None => format!("stopped after {} plies", moves.len()),
    };
    writeln!(output, "Result: {verdict}").map_err(io_error)?;
    Ok(WatchedGame {
        first: first_agent.name(),
        second: second_agent.name(),
        moves,
        outcome,
        final_position: played.position.position_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_games::Game;
    use kibitzer_games::files::FileInfo;

    fn othello6() -> GameSetup {
        GameSetup::Othello { size: 6 }
    }

    #[test]
    fn bad_sizes_are_refused() {
        let error = arena(
            &GameSetup::Othello { size: 5 },
            "random",
            "random",
            &ArenaConfig::new(2, 0),
        )
        .expect_err("5x5 Othello does not exist");
        assert!(error.to_string().contains('5'), "{error}");
    }

    #[test]
    fn arena_reports_a_stronger_player() {
        let report = arena(
            &othello6(),
            "alphabeta:2",
            "random",
            &ArenaConfig::new(20, 3),
        )
        .expect("the match runs");
        assert_eq!(report.total.games(), 20);
        assert_eq!(report.as_first.games(), 10);
        assert!(report.total.wins >= 15, "{:?}", report.total);
        assert!(report.to_markdown().contains("alphabeta:2 vs random"));
        let again = arena(
            &othello6(),
            "alphabeta:2",
            "random",
            &ArenaConfig::new(20, 3),
        )
        .expect("the match runs");
        assert_eq!(again.games, report.games, "seeded");
        let error = arena(
            &othello6(),
            "alphabeta:2",
            "minimax",
            &ArenaConfig::new(2, 0),
        )
        .expect_err("unknown player");
        assert!(
            error.to_string().contains("unknown player \"minimax\""),
            "{error}"
        );
    }

    #[cfg(feature = "chess")]
    #[test]
    fn chess_arena_from_a_fen() {
        // White to move with a queen against a bare king: greedy keeps the
        // material, random gives it away or mates by chance, never loses.
        let setup = GameSetup::Chess {
            fen: Some("4k3/8/8/8/8/8/8/3QK3 w - - 0 1".to_owned()),
        };
        let config = ArenaConfig {
            max_plies: Some(60),
            ..ArenaConfig::new(4, 1)
        };
        let report = arena(&setup, "greedy", "random", &config).expect("the match runs");
        assert_eq!(report.total.games(), 4);
        // Whoever has Black has only a king: Black can never win.
        for game in &report.games {
            assert_ne!(game.outcome, Outcome::Win(Player::Second), "{game:?}");
        }
        let bad = GameSetup::Chess {
            fen: Some("not a fen".to_owned()),
        };
        let error = arena(&bad, "random", "random", &config).expect_err("bad FEN");
        assert!(error.to_string().contains("not a fen"), "{error}");
    }

    #[test]
    // Without chess, FileInfo has one variant and the match below is infallible.
    #[cfg_attr(not(feature = "chess"), allow(clippy::infallible_destructuring_match))]
    fn othello_generation_random_and_by_players() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let random = dir.path().join("random.kbzoth");
        let report =
            generate_othello(&random, 6, 50, 1, &["random".to_owned()], 0).expect("writes");
        assert_eq!(report.summary.games, 50);
        assert_eq!(report.players_file, None);
        assert!(report.standings.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).expect("lists").count(), 1);

        let champ = dir.path().join("champ.kbzoth");
        let players = ["alphabeta:1".to_owned(), "alphabeta:3".to_owned()];
        let report = generate_othello(&champ, 6, 8, 2, &players, 2).expect("writes");
        assert_eq!(report.summary.games, 8);
        let sidecar = report.players_file.clone().expect("players are recorded");
        assert!(sidecar.is_file());
        assert_eq!(report.standings.len(), 2);
        assert_eq!(report.standings.iter().map(|s| s.games).sum::<usize>(), 16);
        let info = match file_info(&champ, false).expect("reads") {
            FileInfo::Othello(info) => info,
            #[cfg(feature = "chess")]
            other => panic!("an Othello dataset, not {other:?}"),
        };
        assert_eq!(info.unfinished, 0);
        assert_eq!(info.black_wins + info.white_wins + info.draws, 8);
        assert!(
            show_game(&champ, 7)
                .expect("game 7 exists")
                .starts_with("game 7: ")
        );

        let error =
            generate_othello(dir.path().join("x"), 6, 1, 0, &[], 0).expect_err("no players");
        assert!(error.to_string().contains("alphabeta"), "{error}");
        let error = generate_othello(dir.path().join("x"), 6, 1, 0, &["stockfish".to_owned()], 0)
            .expect_err("no engine for Othello");
        assert!(
            error.to_string().contains("does not play Othello"),
            "{error}"
        );
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn thread_pools_of_any_size_give_the_same_games() {
        let run = |threads| {
            with_threads(threads, || {
                arena(&othello6(), "greedy", "random", &ArenaConfig::new(6, 2))
            })
            .expect("a pool builds")
            .expect("the match runs")
        };
        let one = run(Some(1));
        assert_eq!(one.threads, 1);
        assert_eq!(run(Some(3)).games, one.games);
        assert_eq!(run(None).games, one.games);
        let error = with_threads(Some(0), || ()).expect_err("no threads");
        assert!(error.to_string().contains("at least 1"), "{error}");
    }

    #[test]
    fn without_an_engine_the_built_in_players_are_offered() {
        let error =
            check_engines_with(&["random", "stockfish:skill=3"], None).expect_err("no engine");
        let text = error.to_string();
        assert!(text.contains("apt-get install stockfish"), "{text}");
        assert!(text.contains("random, greedy, alphabeta"), "{text}");
        assert!(
            check_engines_with(&["random", "uci:/opt/sf"], None).is_ok(),
            "an explicit engine is checked when it starts"
        );
        assert!(
            check_engines_with(&["stockfish"], Some(Path::new("/usr/games/stockfish"))).is_ok()
        );
        assert!(check_engines_with(&["greedy", "mcts:20"], None).is_ok());
    }

    #[cfg(feature = "chess")]
    #[test]
    fn pgn_import_info_and_show() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pgn = dir.path().join("games.pgn");
        std::fs::write(
            &pgn,
            r#"[Event "Rated Blitz"]
[White "a"]
[Black "b"]
[Result "1-0"]
[WhiteElo "1850"]
[BlackElo "1720"]

1. e4 e5 2. Qh5 Nc6 3. Bc4 Nf6 4. Qxf7# 1-0

[Event "Bad"]
[Result "*"]

1. e4 e5 2. Ke3 *

[Event "Casual"]
[Result "1/2-1/2"]
[WhiteElo "2100"]

1. d4 d5 1/2-1/2
"#,
        )
        .expect("written");
        let error =
            import_pgn(&pgn, dir.path().join("out.jsonl"), false).expect_err("game 2 is illegal");
        let text = error.to_string();
        assert!(text.contains("game 2") && text.contains("Ke3"), "{text}");
        assert!(
            !dir.path().join("out.jsonl").exists(),
            "nothing is written on error"
        );
        let out = dir.path().join("out.jsonl");
        let report = import_pgn(&pgn, &out, true).expect("skips the bad game");
        assert_eq!(
            (report.games, report.skipped, report.with_both_elo),
            (2, 1, 1)
        );
        let error = import_pgn(&pgn, dir.path().join("out.csv"), true).expect_err("unknown format");
        assert!(error.to_string().contains(".jsonl"), "{error}");

        let FileInfo::Chess(info) = file_info(&out, false).expect("reads") else {
            panic!("chess games")
        };
        assert_eq!((info.games, info.white_wins, info.draws), (2, 1, 1));
        assert_eq!((info.min_elo, info.max_elo), (Some(1720), Some(2100)));
        assert_eq!(info.mean_elo, Some((1850.0 + 1720.0 + 2100.0) / 3.0));
        assert_eq!(info.moves, 9);
        let FileInfo::Chess(info) = file_info(&pgn, true).expect("reads, skipping") else {
            panic!("chess games")
        };
        assert_eq!((info.games, info.skipped), (2, 1));
        assert!(
            file_info(&pgn, false).is_err(),
            "the bad game is an error unless skipped"
        );

        let shown = show_game(&out, 0).expect("game 0 exists");
        assert!(shown.contains("4. Qxf7# 1-0"), "{shown}");
        assert!(shown.contains("[WhiteElo \"1850\"]"), "{shown}");
        assert!(
            shown.contains("7  p p p p . Q p p"),
            "the final board: {shown}"
        );
        let shown = show_game(&pgn, 0).expect("game 0 exists");
        assert!(shown.contains("[Event \"Rated Blitz\"]"), "{shown}");
        let error = show_game(&out, 2).expect_err("two games");
        assert!(error.to_string().contains("holds 2 games"), "{error}");
    }

    #[cfg(feature = "chess")]
    #[test]
    fn chess_self_play_with_built_in_players() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("selfplay.pgn");
        let config = SelfPlayConfig {
            games: 2,
            seed: 4,
            random_opening_plies: 2,
            max_plies: 40,
        };
        let players = ["random@500".to_owned(), "greedy@800".to_owned()];
        let options = SelfPlayOptions::default();
        let report =
            generate_chess_self_play(&path, &players, &config, &options).expect("self-play runs");
        assert_eq!(report.report.games, 2);
        assert_eq!(report.engine, None);
        let FileInfo::Chess(info) = file_info(&path, false).expect("reads") else {
            panic!("chess games")
        };
        assert_eq!(info.games, 2);
        assert_eq!((info.min_elo, info.max_elo), (Some(500), Some(800)));
        let error =
            generate_chess_self_play(&path, &[], &config, &options).expect_err("no players");
        assert!(error.to_string().contains("no players"), "{error}");
    }

    #[test]
    fn games_at_the_terminal() {
        let report = play_human_game(
            &othello6(),
            "greedy",
            Player::Second,
            1,
            "moves\nquit\n".as_bytes(),
            Vec::new(),
        )
        .expect("the game runs");
        assert_eq!(report.moves.len(), 1, "the agent (Black) opened");
        assert_eq!(report.outcome, Some(Outcome::Win(Player::First)));
        let mut output = Vec::new();
        let watched = play_agents_game(
            &GameSetup::Othello { size: 4 },
            "greedy",
            "random",
            9,
            None,
            &mut output,
        )
        .expect("the game runs");
        let text = String::from_utf8(output).expect("utf-8");
        assert_eq!(
            (watched.first.as_str(), watched.second.as_str()),
            ("greedy", "random")
        );
        assert!(watched.outcome.is_some());
        assert!(text.contains("  1. Black (X): "), "{text}");
        assert!(text.contains("Result: "), "{text}");
        let mut replay = Othello::new(4).expect("4x4 is supported");
        for mv in &watched.moves {
            replay
                .play(mv.parse().expect("a move name"))
                .expect("legal");
        }
        assert_eq!(replay.position_string(), watched.final_position);
        let again = play_agents_game(
            &GameSetup::Othello { size: 4 },
            "greedy",
            "random",
            9,
            None,
            Vec::new(),
        )
        .expect("the game runs");
        assert_eq!(again, watched, "seeded");
    }
}
