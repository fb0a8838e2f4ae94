//! Chess games between players of known strength, recorded as
//! [`RatedGame`]s: the data of skill-conditioned chess models.
//!
//! A pool of [`RatedPlayer`]s (usually Stockfish at several `UCI_Elo` or
//! skill levels) plays every ordered pairing in turn
//! ([`round_robin_pairing`]: game `i` has White = `players[(i / k) % k]` and
//! Black = `players[i % k]` for `k` players), so each pairing recurs evenly,
//! a player against itself included. Every game
//! is seeded from `(seed, i)` and played in parallel; an engine's own
//! randomness (Stockfish's weakened levels) is outside the seed.
//!
//! [`write_rated_self_play`] appends the games to their file a chunk at a
//! time, next to a run file ([`SelfPlayRun`], `<out>.run.json`) that records
//! the settings, so a killed run can be resumed
//! ([`SelfPlayOptions::resume`]) and ends byte for byte like one that was
//! never interrupted.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;

use super::spec::{PlayerSpec, PlayerSpecError, StockfishSpec};
use super::uci::BUILT_IN_PLAYERS;
use super::{AgentGame, PlayerError};
use crate::arena::play_game;
use crate::atomic::{AtomicFile, check_replaceable};
use crate::chess::Chess;
use crate::chess::pgn::{GameResult, write_pgn};
use crate::chess::rated::{RatedError, RatedFormat, RatedGame};
use crate::dataset::{game_rng, round_robin_pairing};
use crate::game::Game;

/// A player and the Elo recorded for it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RatedPlayer {
    /// The player.
    pub spec: PlayerSpec,
    /// The strength written into each game (`None`: unknown).
    pub elo: Option<u32>,
}

/// Stockfish's own estimate of the Elo of a `Skill Level` below 20: the
/// inverse of the fit Stockfish 15 uses to turn `UCI_Elo` into a skill
/// level, `elo = 1346.6 + 143.4 * level^0.806` (anchored to CCRL, games at
/// 60+0.6 s). Approximate, and specific to Stockfish 15; `None` at 20 (full
/// strength, far stronger than the fit's range).
pub fn stockfish_skill_elo(skill: u32) -> Option<u32> {
    (skill < 20).then(|| (1346.6 + 143.4 * f64::from(skill).powf(0.806)).round() as u32)
}

impl RatedPlayer {
    /// The player with the Elo its spec implies: a Stockfish `elo=` setting,
    /// else [`stockfish_skill_elo`] of its `skill=`; `None` for others.
    pub fn new(spec: PlayerSpec) -> RatedPlayer {
        let elo = match &spec {
            PlayerSpec::Stockfish(StockfishSpec { elo: Some(elo), .. }) => Some(*elo),
            PlayerSpec::Stockfish(StockfishSpec {
                skill: Some(skill), ..
            }) => stockfish_skill_elo(*skill),
            _ => None,
        };
        RatedPlayer { spec, elo }
    }
}

impl FromStr for RatedPlayer {
    type Err = PlayerSpecError;

    /// A [`PlayerSpec`], optionally followed by `@<elo>` to record that
    /// Elo (`alphabeta:3@1100`, `stockfish:skill=5`).
    fn from_str(text: &str) -> Result<RatedPlayer, PlayerSpecError> {
        match text.rsplit_once('@') {
            Some((spec, elo)) => {
                let elo = elo
                    .trim()
                    .parse()
                    .map_err(|_| PlayerSpecError::BadParameter {
                        spec: text.to_owned(),
                        problem: format!("Elo {elo:?} is not a whole number"),
                        expected: "<player>[@<elo>]",
                    })?;
                Ok(RatedPlayer {
                    spec: spec.parse()?,
                    elo: Some(elo),
                })
            }
            None => Ok(RatedPlayer::new(text.parse()?)),
        }
    }
}

/// How self-play games are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SelfPlayConfig {
    /// Number of games.
    pub games: usize,
    /// The seed of every random choice of ours.
    pub seed: u64,
    /// Uniformly random plies before the players take over, so games
    /// between deterministic players differ.
    pub random_opening_plies: usize,
    /// A game still going after this many plies is recorded unfinished
    /// (result `*`).
    pub max_plies: usize,
}

impl Default for SelfPlayConfig {
    /// 100 games, seed 0, 4 random plies, at most 400 plies.
    fn default() -> SelfPlayConfig {
        SelfPlayConfig {
            games: 100,
            seed: 0,
            random_opening_plies: 4,
            max_plies: 400,
        }
    }
}

/// Why self-play stopped.
#[derive(Debug, thiserror::Error)]
pub enum SelfPlayError {
    /// No player was given.
    #[error("self-play needs at least one player")]
    NoPlayers,
    /// A player could not be built (a missing engine names the built-in
    /// players to use instead).
    #[error("self-play player {player}: {source}")]
    Player {
        /// The player's spec.
        player: String,
        /// Why.
        #[source]
        source: Box<PlayerSpecError>,
    },
    /// A player failed during a game.
    #[error("self-play game {game}, ply {ply}: {source}")]
    Play {
        /// The game.
        game: usize,
        /// The ply.
        ply: usize,
        /// Why.
        #[source]
        source: Box<PlayerError>,
    },
    /// The output file has no known format.
    #[error("{path}: cannot tell the format from the extension; expected .jsonl, .ndjson or .pgn")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] RatedError),
    /// The file system failed on the output or its run file.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A run file that cannot be read as one.
    #[error(
        "{path}: not a self-play run file ({problem}); expected the JSON that `write_rated_self_play` writes next to its output"
    )]
    RunFile {
        /// The run file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Resuming was asked for where it cannot work.
    #[error("cannot resume {path}: {problem}")]
    Resume {
        /// The output file.
        path: PathBuf,
        /// Why, and what to do.
        problem: String,
    },
    /// Resuming with settings other than the run's: the games would not be
    /// those an uninterrupted run makes.
    #[error(
        "cannot resume {path}: {field} differs from the run being resumed (recorded in {run_file}: {recorded}; asked now: {requested}); resume with the same {field}, or start over without resume (this overwrites {path})"
    )]
    ResumeMismatch {
        /// The output file.
        path: PathBuf,
        /// The run file.
        run_file: PathBuf,
        /// The setting that differs: `players`, `seed`,
        /// `random_opening_plies` or `max_plies`.
        field: &'static str,
        /// Its value in the run file.
        recorded: String,
        /// Its value now.
        requested: String,
    },
}

/// How [`write_rated_self_play`] treats an existing output and whether it
/// shows progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SelfPlayOptions {
    /// Continue an interrupted (or finished) run of the same settings
    /// instead of starting over; see [`write_rated_self_play`]. JSON lines
    /// only.
    pub resume: bool,
    /// Show a progress bar (games done of all, games per second) on
    /// standard error; it stays hidden when standard error is not a
    /// terminal.
    pub progress: bool,
}

/// The run file of a self-play output, `<out>.run.json`: the settings that
/// decide its games, so a resumed run can be checked against them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfPlayRun {
    /// The version of this file's layout (1).
    pub version: u32,
    /// The players, in pairing order, with the Elo recorded for each.
    pub players: Vec<RatedPlayer>,
    /// The games asked for, the seed, the random opening plies and the ply
    /// limit.
    pub config: SelfPlayConfig,
}

/// The layout version [`SelfPlayRun`] writes.
pub const SELF_PLAY_RUN_VERSION: u32 = 1;

impl SelfPlayRun {
    /// The run of `players` under `config`.
    pub fn new(players: &[RatedPlayer], config: &SelfPlayConfig) -> SelfPlayRun {
        SelfPlayRun {
            version: SELF_PLAY_RUN_VERSION,
            players: players.to_vec(),
            config: *config,
        }
    }

    /// Reads a run file; an error names the file and what is wrong.
    pub fn read(path: impl AsRef<Path>) -> Result<SelfPlayRun, SelfPlayError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SelfPlayError::Io {
            path: path.to_path_buf(),
            what: "cannot read the run file",
            source,
        })?;
        let run: SelfPlayRun =
            serde_json::from_str(&text).map_err(|error| SelfPlayError::RunFile {
                path: path.to_path_buf(),
                problem: error.to_string(),
            })?;
        if run.version != SELF_PLAY_RUN_VERSION {
            return Err(SelfPlayError::RunFile {
                path: path.to_path_buf(),
                problem: format!(
                    "version {} (this build reads version {SELF_PLAY_RUN_VERSION})",
                    run.version
                ),
            });
        }
        Ok(run)
    }

    /// Writes the run file atomically (a temporary file, synced, renamed).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), SelfPlayError> {
        let path = path.as_ref();
        let io_error = |source| SelfPlayError::Io {
            path: path.to_path_buf(),
            what: "cannot write the run file",
            source,
        };
        let mut file = AtomicFile::create(path).map_err(io_error)?;
        serde_json::to_writer_pretty(file.writer(), self)
            .map_err(|error| io_error(error.into()))?;
        file.write_all(b"\n").map_err(io_error)?;
        file.commit().map_err(io_error)
    }

    /// The first setting, other than the number of games, in which `now`
    /// differs from this recorded run: its name, the recorded value and the
    /// value now.
    pub fn difference(&self, now: &SelfPlayRun) -> Option<(&'static str, String, String)> {
        let players = |run: &SelfPlayRun| {
            let texts: Vec<String> = run.players.iter().map(player_text).collect();
            format!("[{}]", texts.join(", "))
        };
        let (was, is) = (&self.config, &now.config);
        if players(self) != players(now) {
            Some(("players", players(self), players(now)))
        } else if was.seed != is.seed {
            Some(("seed", was.seed.to_string(), is.seed.to_string()))
        } else if was.random_opening_plies != is.random_opening_plies {
            Some((
                "random_opening_plies",
                was.random_opening_plies.to_string(),
                is.random_opening_plies.to_string(),
            ))
        } else if was.max_plies != is.max_plies {
            Some((
                "max_plies",
                was.max_plies.to_string(),
                is.max_plies.to_string(),
            ))
        } else {
            None
        }
    }
}

/// A player as text that parses back to it: its spec, then `@<elo>` when
/// one is recorded.
fn player_text(player: &RatedPlayer) -> String {
    match player.elo {
        Some(elo) => format!("{}@{elo}", player.spec),
        None => player.spec.to_string(),
    }
}

/// The run file of a self-play output: `<out>.run.json` (`games.jsonl` ->
/// `games.jsonl.run.json`).
pub fn run_file_path(out: impl AsRef<Path>) -> PathBuf {
    let mut name = out.as_ref().as_os_str().to_owned();
    name.push(".run.json");
    PathBuf::from(name)
}

/// Builds every player once, so a missing engine fails before any game.
fn check_players(players: &[RatedPlayer]) -> Result<(), SelfPlayError> {
    if players.is_empty() {
        return Err(SelfPlayError::NoPlayers);
    }
    for player in players {
        build_agent(player, 0)?;
    }
    Ok(())
}

fn build_agent(
    player: &RatedPlayer,
    seed: u64,
) -> Result<Box<dyn super::Agent<Chess>>, SelfPlayError> {
    Chess::build_agent(&player.spec, seed).map_err(|source| SelfPlayError::Player {
        player: player.spec.to_string(),
        source: Box::new(source),
    })
}

/// The Elo of White and Black in game `index` (see [`round_robin_pairing`]).
fn pairing_elo(players: &[RatedPlayer], index: usize) -> (Option<u32>, Option<u32>) {
    let (white, black) = round_robin_pairing(index, players.len());
    (players[white].elo, players[black].elo)
}

/// Plays game `index`: the pairing of [`round_robin_pairing`], both agents
/// and the opening seeded from `(config.seed, index)` only.
fn play_rated_game(
    players: &[RatedPlayer],
    config: &SelfPlayConfig,
    index: usize,
) -> Result<RatedGame, SelfPlayError> {
    let (white, black) = round_robin_pairing(index, players.len());
    let (white, black) = (&players[white], &players[black]);
    let mut rng = game_rng(config.seed, index as u64);
    let (white_seed, black_seed) = (
        rand::RngExt::random(&mut rng),
        rand::RngExt::random(&mut rng),
    );
    let mut white_agent = build_agent(white, white_seed)?;
    let mut black_agent = build_agent(black, black_seed)?;
    let played = play_game(
        &Chess::new(),
        &mut *white_agent,
        &mut *black_agent,
        &mut rng,
        config.random_opening_plies,
        Some(config.max_plies),
    )
    .map_err(|failure| SelfPlayError::Play {
        game: index,
        ply: failure.ply,
        source: Box::new(failure.source),
    })?;
    let result = GameResult::from_outcome(played.position.outcome());
    Ok(RatedGame::from_game(
        &played.position,
        white.elo,
        black.elo,
        result,
    ))
}

/// Plays `config.games` rated games among `players` (see the module docs)
/// and keeps them in memory; [`write_rated_self_play`] streams them to a
/// file instead. Every player is built once before the games start, so a
/// missing engine fails at once with a message naming the built-in players.
pub fn generate_rated_games(
    players: &[RatedPlayer],
    config: &SelfPlayConfig,
) -> Result<Vec<RatedGame>, SelfPlayError> {
    check_players(players)?;
    (0..config.games)
        .into_par_iter()
        .map(|index| play_rated_game(players, config, index))
        .collect()
}

/// What [`write_rated_self_play`] wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SelfPlayReport {
    /// The file.
    pub path: PathBuf,
    /// The run file next to it ([`run_file_path`]).
    pub run_file: PathBuf,
    /// Games in the file: `resumed + played`.
    pub games: usize,
    /// Games already in the file and kept (0 unless resuming).
    pub resumed: usize,
    /// Games played by this call.
    pub played: usize,
    /// Plies over all games in the file.
    pub plies: usize,
    /// Games won by White (all games in the file, as for the counts below).
    pub white_wins: usize,
    /// Drawn games.
    pub draws: usize,
    /// Games won by Black.
    pub black_wins: usize,
    /// Games stopped by the ply limit.
    pub unfinished: usize,
    /// The players and their recorded Elo.
    pub players: Vec<RatedPlayer>,
}

impl SelfPlayReport {
    fn count(&mut self, game: &RatedGame) {
        self.plies += game.moves.len();
        match game.result {
            GameResult::WhiteWins => self.white_wins += 1,
            GameResult::BlackWins => self.black_wins += 1,
            GameResult::Draw => self.draws += 1,
            GameResult::Unknown => self.unfinished += 1,
        }
    }
}

/// Games played in parallel per rayon thread before each append to the
/// file: a killed run loses at most this many games per thread.
pub const GAMES_PER_THREAD_PER_CHUNK: usize = 4;

/// Generates the games and appends them to `path`, as JSON lines (`.jsonl`,
/// `.ndjson`) or PGN (`.pgn`), with the run file [`run_file_path`] next to
/// it ([`SelfPlayRun`], written atomically before any game).
///
/// Games are played in parallel in chunks of
/// [`GAMES_PER_THREAD_PER_CHUNK`] x the rayon threads; each chunk is
/// appended in game order, flushed and synced, so a killed run loses at
/// most one chunk. A game that fails ends the run after the games of its
/// chunk before it are written.
///
/// * Without `options.resume`, an existing `path` (a regular file: a
///   symbolic link, a device or a directory is refused) is overwritten from
///   the start, and so is its run file.
/// * With `options.resume` and an existing `path` (JSON lines only), the run
///   file must exist and record the same players (with their Elo), seed,
///   random opening plies and ply limit; `config.games` may differ (ask for
///   more to extend a finished file). A torn last line (no newline: the run
///   was killed while writing it) is dropped; every complete line must be a
///   game that replays, with the Elo of its pairing; generation continues
///   at the next game. Game `i` depends on `(seed, i)` only, so with
///   players that are deterministic given their seed (all built-in ones;
///   not Stockfish's weakened levels) a resumed file is byte for byte the
///   file an uninterrupted run writes. Without an existing `path`, resuming
///   starts a new run.
///
/// The report counts every game in the file, the resumed ones included.
pub fn write_rated_self_play(
    path: impl AsRef<Path>,
    players: &[RatedPlayer],
    config: &SelfPlayConfig,
    options: &SelfPlayOptions,
) -> Result<SelfPlayReport, SelfPlayError> {
    let path = path.as_ref();
    let format = RatedFormat::from_path(path).ok_or_else(|| SelfPlayError::Format {
        path: path.to_path_buf(),
    })?;
    check_players(players)?;
    let io_error = |what: &'static str| {
        move |source| SelfPlayError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    check_replaceable(path).map_err(io_error("cannot write the output"))?;
    let run = SelfPlayRun::new(players, config);
    let run_file = run_file_path(path);
    let mut report = SelfPlayReport {
        path: path.to_path_buf(),
        run_file: run_file.clone(),
        games: 0,
        resumed: 0,
        played: 0,
        plies: 0,
        white_wins: 0,
        draws: 0,
        black_wins: 0,
        unfinished: 0,
        players: players.to_vec(),
    };
    let mut file = if options.resume && path.exists() {
        if format == RatedFormat::Pgn {
            return Err(SelfPlayError::Resume {
                path: path.to_path_buf(),
                problem: "resuming works on JSON lines (.jsonl, .ndjson) only; write .jsonl for a run that may be interrupted, or run without resume to start this PGN file over".to_owned(),
            });
        }
        if !run_file.exists() {
            return Err(SelfPlayError::Resume {
                path: path.to_path_buf(),
                problem: format!(
                    "its run file {} is missing, so the settings of the games already there are unknown; run without resume to start over (this overwrites {})",
                    run_file.display(),
                    path.display()
                ),
            });
        }
        let recorded = SelfPlayRun::read(&run_file)?;
        if let Some((field, recorded, requested)) = recorded.difference(&run) {
            return Err(SelfPlayError::ResumeMismatch {
                path: path.to_path_buf(),
                run_file,
                field,
                recorded,
                requested,
            });
        }
        let file = resume_games(path, players, &mut report)?;
        if report.resumed > config.games {
            return Err(SelfPlayError::Resume {
                path: path.to_path_buf(),
                problem: format!(
                    "it holds {} games, more than the {} asked for; ask for at least {} games",
                    report.resumed, config.games, report.resumed
                ),
            });
        }
        run.write(&run_file)?;
        file
    } else {
        run.write(&run_file)?;
        File::create(path).map_err(io_error("cannot create the output"))?
    };
    let bar = kibitzer_io::progress::bar(
        options.progress,
        config.games as u64,
        report.resumed as u64,
        "games",
    );
    let chunk = GAMES_PER_THREAD_PER_CHUNK * rayon::current_num_threads().max(1);
    let mut next = report.resumed;
    let mut buffer = Vec::new();
    while next < config.games {
        let end = config.games.min(next + chunk);
        let results: Vec<Result<RatedGame, SelfPlayError>> = (next..end)
            .into_par_iter()
            .map(|index| {
                let game = play_rated_game(players, config, index);
                bar.inc(1);
                game
            })
            .collect();
        buffer.clear();
        let mut failure = None;
        for result in results {
            match result {
                Ok(game) => {
                    encode_game(&mut buffer, format, &game, report.games + 1, path)?;
                    report.count(&game);
                    report.games += 1;
                    report.played += 1;
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        file.write_all(&buffer)
            .and_then(|()| file.sync_data())
            .map_err(io_error("cannot append games"))?;
        crate::fault::point("selfplay.chunk");
        if let Some(error) = failure {
            bar.abandon();
            return Err(error);
        }
        next = end;
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Writes `game` (game number `number`, from 1) in `format` to `out`.
fn encode_game(
    out: &mut Vec<u8>,
    format: RatedFormat,
    game: &RatedGame,
    number: usize,
    path: &Path,
) -> Result<(), SelfPlayError> {
    let io_error = |source| {
        SelfPlayError::Write(RatedError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    match format {
        RatedFormat::JsonLines => {
            serde_json::to_writer(&mut *out, game).map_err(|e| io_error(e.into()))?;
            out.push(b'\n');
        }
        RatedFormat::Pgn => {
            let replayed = game.replay().map_err(|error| RatedError::Replay {
                source_name: path.display().to_string(),
                game: number,
                error,
            })?;
            write_pgn(out, &game.tags(), &replayed, game.result).map_err(io_error)?;
        }
    }
    Ok(())
}

/// Reads the games of the JSON-lines file `path` for a resume: drops a torn
/// last line, checks that every complete line is a game that replays with
/// the Elo of its pairing, counts them into `report`, and returns the file
/// open for appending.
fn resume_games(
    path: &Path,
    players: &[RatedPlayer],
    report: &mut SelfPlayReport,
) -> Result<File, SelfPlayError> {
    let io_error = |what: &'static str| {
        move |source| SelfPlayError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error("cannot open the output to resume it"))?;
    let mut reader = BufReader::new(&mut file);
    let mut line = Vec::new();
    let mut complete: u64 = 0;
    let mut number = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(io_error("cannot read the output to resume it"))?;
        if read == 0 || line.last() != Some(&b'\n') {
            // The end, or a torn line written when the run was killed.
            break;
        }
        number += 1;
        let game = resumed_game(path, players, &line, number)?;
        report.count(&game);
        report.resumed += 1;
        report.games += 1;
        complete += read as u64;
    }
    drop(reader);
    if file
        .metadata()
        .map_err(io_error("cannot read the output to resume it"))?
        .len()
        > complete
    {
        file.set_len(complete)
            .and_then(|()| file.sync_all())
            .map_err(io_error("cannot drop the torn last line"))?;
    }
    file.seek(SeekFrom::End(0))
        .map_err(io_error("cannot append to the output"))?;
    Ok(file)
}

/// Game `number` (from 1; its line) of a file being resumed, checked.
fn resumed_game(
    path: &Path,
    players: &[RatedPlayer],
    line: &[u8],
    number: usize,
) -> Result<RatedGame, SelfPlayError> {
    let game: RatedGame = serde_json::from_slice(line).map_err(|source| RatedError::Json {
        path: path.to_path_buf(),
        line: number,
        source,
    })?;
    game.replay().map_err(|error| RatedError::Replay {
        source_name: path.display().to_string(),
        game: number,
        error,
    })?;
    let expected = pairing_elo(players, number - 1);
    if (game.white_elo, game.black_elo) != expected {
        let show = |elo: Option<u32>| elo.map_or_else(|| "none".to_owned(), |e| e.to_string());
        return Err(SelfPlayError::Resume {
            path: path.to_path_buf(),
            problem: format!(
                "line {number} has White Elo {} and Black Elo {}, but game {} of this run pairs Elo {} with {}: the file was not written by this run",
                show(game.white_elo),
                show(game.black_elo),
                number - 1,
                show(expected.0),
                show(expected.1)
            ),
        });
    }
    Ok(game)
}

/// The message for a machine without an engine: which built-in players can
/// make self-play data instead.
pub fn no_engine_hint() -> String {
    format!(
        "no UCI engine found (install Stockfish: apt-get install stockfish, or set KIBITZER_STOCKFISH); self-play can use the built-in players instead, with an Elo you assign: {BUILT_IN_PLAYERS} (for example \"alphabeta:2@1000\")"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chess::rated::RatedJsonlReader;

    #[test]
    fn rated_players_parse_and_take_their_elo_from_the_spec() {
        let player: RatedPlayer = "stockfish:elo=1600,nodes=100".parse().expect("valid");
        assert_eq!(player.elo, Some(1600));
        let player: RatedPlayer = "stockfish:skill=0".parse().expect("valid");
        assert_eq!(player.elo, Some(1347));
        let player: RatedPlayer = "stockfish:skill=10".parse().expect("valid");
        assert_eq!(player.elo, stockfish_skill_elo(10));
        assert!(
            player.elo.is_some_and(|elo| elo > 2200 && elo < 2300),
            "{player:?}"
        );
        assert_eq!("stockfish".parse::<RatedPlayer>().expect("valid").elo, None);
        let player: RatedPlayer = "alphabeta:2@1100".parse().expect("valid");
        assert_eq!(
            player,
            RatedPlayer {
                spec: PlayerSpec::AlphaBeta { depth: 2 },
                elo: Some(1100)
            }
        );
        let error = "greedy@strong"
            .parse::<RatedPlayer>()
            .expect_err("not a number");
        assert!(error.to_string().contains("\"strong\""), "{error}");
    }

    #[test]
    fn built_in_players_make_a_rated_dataset() {
        let players: Vec<RatedPlayer> = ["random@400", "greedy@700"]
            .iter()
            .map(|text| text.parse().expect("valid"))
            .collect();
        let config = SelfPlayConfig {
            games: 4,
            seed: 3,
            random_opening_plies: 2,
            max_plies: 60,
        };
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("games.jsonl");
        let report = write_rated_self_play(&path, &players, &config, &SelfPlayOptions::default())
            .expect("self-play runs");
        assert_eq!(report.games, 4);
        assert_eq!((report.resumed, report.played), (0, 4));
        let games: Vec<RatedGame> = RatedJsonlReader::open(&path)
            .expect("the file opens")
            .map(|game| game.expect("every game replays"))
            .collect();
        let elos: Vec<(Option<u32>, Option<u32>)> =
            games.iter().map(|g| (g.white_elo, g.black_elo)).collect();
        assert_eq!(
            elos,
            [
                (Some(400), Some(400)),
                (Some(400), Some(700)),
                (Some(700), Some(400)),
                (Some(700), Some(700))
            ]
        );
        assert_eq!(
            report.plies,
            games.iter().map(|g| g.moves.len()).sum::<usize>()
        );
        assert!(games.iter().all(|g| g.moves.len() <= 60));
        assert_eq!(
            games,
            generate_rated_games(&players, &config).expect("runs again"),
            "seeded"
        );
        let error = write_rated_self_play(
            dir.path().join("games.txt"),
            &players,
            &config,
            &SelfPlayOptions::default(),
        )
        .expect_err("no format");
        assert!(error.to_string().contains(".jsonl"), "{error}");
    }

    #[test]
    fn a_missing_engine_names_the_built_in_players() {
        let players = vec![
            "stockfish:path=/nonexistent/stockfish,skill=3"
                .parse::<RatedPlayer>()
                .expect("valid"),
        ];
        let error = generate_rated_games(&players, &SelfPlayConfig::default())
            .expect_err("no engine there");
        let message = error.to_string();
        assert!(message.contains("/nonexistent/stockfish"), "{message}");
        assert!(message.contains("random, greedy, alphabeta"), "{message}");
        assert!(no_engine_hint().contains("alphabeta:2@1000"));
    }

    fn players(texts: &[&str]) -> Vec<RatedPlayer> {
        texts
            .iter()
            .map(|text| text.parse().expect("valid"))
            .collect()
    }

    fn small_config(games: usize) -> SelfPlayConfig {
        SelfPlayConfig {
            games,
            seed: 11,
            random_opening_plies: 2,
            max_plies: 24,
        }
    }

    const RESUME: SelfPlayOptions = SelfPlayOptions {
        resume: true,
        progress: false,
    };

    /// The byte offset where line `n` (from 0) starts.
    fn line_start(bytes: &[u8], n: usize) -> usize {
        let mut at = 0;
        for _ in 0..n {
            at += bytes[at..]
                .iter()
                .position(|&b| b == b'\n')
                .expect("enough lines")
                + 1;
        }
        at
    }

    #[test]
    fn a_killed_run_resumes_to_the_same_bytes() {
        let players = players(&["random@400", "greedy@700", "alphabeta:1@900"]);
        let dir = tempfile::tempdir().expect("a temp dir");
        let whole = dir.path().join("whole.jsonl");
        let report = write_rated_self_play(
            &whole,
            &players,
            &small_config(11),
            &SelfPlayOptions::default(),
        )
        .expect("self-play runs");
        assert_eq!(report.games, 11);
        let expected = std::fs::read(&whole).expect("written");
        let run = SelfPlayRun::read(run_file_path(&whole)).expect("a run file");
        assert_eq!(run, SelfPlayRun::new(&players, &small_config(11)));

        // Killed after 4 games and half of the fifth line.
        let part = dir.path().join("part.jsonl");
        std::fs::copy(&whole, &part).expect("copied");
        std::fs::copy(run_file_path(&whole), run_file_path(&part)).expect("copied");
        let cut =
            line_start(&expected, 4) + (line_start(&expected, 5) - line_start(&expected, 4)) / 2;
        std::fs::write(&part, &expected[..cut]).expect("truncated");
        let report =
            write_rated_self_play(&part, &players, &small_config(11), &RESUME).expect("resumes");
        assert_eq!((report.resumed, report.played, report.games), (4, 7, 11));
        assert_eq!(std::fs::read(&part).expect("written"), expected);
        let whole_report = write_rated_self_play(
            dir.path().join("again.jsonl"),
            &players,
            &small_config(11),
            &SelfPlayOptions::default(),
        )
        .expect("self-play runs");
        assert_eq!(
            (
                report.plies,
                report.white_wins,
                report.draws,
                report.black_wins,
                report.unfinished
            ),
            (
                whole_report.plies,
                whole_report.white_wins,
                whole_report.draws,
                whole_report.black_wins,
                whole_report.unfinished
            ),
            "the report counts the resumed games too"
        );

        // Killed exactly between lines, and a finished file asked for more.
        std::fs::write(&part, &expected[..line_start(&expected, 6)]).expect("truncated");
        let report =
            write_rated_self_play(&part, &players, &small_config(8), &RESUME).expect("resumes");
        assert_eq!((report.resumed, report.played), (6, 2));
        assert_eq!(
            std::fs::read(&part).expect("written"),
            &expected[..line_start(&expected, 8)]
        );
        assert_eq!(
            SelfPlayRun::read(run_file_path(&part))
                .expect("a run file")
                .config
                .games,
            8
        );
        let report =
            write_rated_self_play(&part, &players, &small_config(11), &RESUME).expect("resumes");
        assert_eq!((report.resumed, report.played), (8, 3));
        assert_eq!(std::fs::read(&part).expect("written"), expected);
        // Nothing left to play.
        let report =
            write_rated_self_play(&part, &players, &small_config(11), &RESUME).expect("resumes");
        assert_eq!((report.resumed, report.played), (11, 0));
        assert_eq!(std::fs::read(&part).expect("unchanged"), expected);
        let error = write_rated_self_play(&part, &players, &small_config(5), &RESUME)
            .expect_err("fewer games than the file holds");
        assert!(error.to_string().contains("at least 11 games"), "{error}");

        // Resuming a file that does not exist starts it.
        let fresh = dir.path().join("fresh.jsonl");
        let report =
            write_rated_self_play(&fresh, &players, &small_config(11), &RESUME).expect("starts");
        assert_eq!((report.resumed, report.played), (0, 11));
        assert_eq!(std::fs::read(&fresh).expect("written"), expected);
    }

    #[test]
    fn resuming_refuses_other_settings_and_foreign_files() {
        let players = players(&["random@400", "greedy@700"]);
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("games.jsonl");
        write_rated_self_play(
            &path,
            &players,
            &small_config(4),
            &SelfPlayOptions::default(),
        )
        .expect("self-play runs");
        let original = std::fs::read(&path).expect("written");
        let refused = |players: &[RatedPlayer], config: SelfPlayConfig| {
            write_rated_self_play(&path, players, &config, &RESUME)
                .expect_err("other settings")
                .to_string()
        };
        let message = refused(
            &players,
            SelfPlayConfig {
                seed: 12,
                ..small_config(6)
            },
        );
        assert!(
            message.contains("seed differs") && message.contains("11") && message.contains("12"),
            "{message}"
        );
        let message = refused(
            &players,
            SelfPlayConfig {
                max_plies: 30,
                ..small_config(6)
            },
        );
        assert!(message.contains("max_plies differs"), "{message}");
        let message = refused(
            &players,
            SelfPlayConfig {
                random_opening_plies: 3,
                ..small_config(6)
            },
        );
        assert!(
            message.contains("random_opening_plies differs"),
            "{message}"
        );
        let other = self::players(&["random@400", "greedy@800"]);
        let message = refused(&other, small_config(6));
        assert!(
            message.contains("players differs") && message.contains("greedy@700"),
            "{message}"
        );
        assert_eq!(std::fs::read(&path).expect("unchanged"), original);

        // No run file: the settings of the games there are unknown.
        std::fs::remove_file(run_file_path(&path)).expect("removed");
        let message = refused(&players, small_config(6));
        assert!(
            message.contains("run file") && message.contains("missing"),
            "{message}"
        );
        assert_eq!(std::fs::read(&path).expect("unchanged"), original);

        // A broken complete line is an error naming its line, not dropped.
        write_rated_self_play(
            &path,
            &players,
            &small_config(4),
            &SelfPlayOptions::default(),
        )
        .expect("self-play runs");
        let mut broken = original.clone();
        let second = line_start(&original, 1);
        broken[second] = b'[';
        std::fs::write(&path, &broken).expect("written");
        let message = refused(&players, small_config(6));
        assert!(message.contains(":2:"), "{message}");
        // Games of other players (Elo of another pairing) are refused.
        let mut swapped: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
        swapped.swap(0, 1);
        std::fs::write(&path, swapped.concat()).expect("written");
        let message = refused(&players, small_config(6));
        assert!(
            message.contains("line 1") && message.contains("pairs Elo 400 with 400"),
            "{message}"
        );

        // PGN output starts over or is refused for resuming.
        let pgn = dir.path().join("games.pgn");
        write_rated_self_play(
            &pgn,
            &players,
            &small_config(2),
            &SelfPlayOptions::default(),
        )
        .expect("self-play runs");
        let error = write_rated_self_play(&pgn, &players, &small_config(2), &RESUME)
            .expect_err("PGN does not resume");
        assert!(error.to_string().contains(".jsonl"), "{error}");
    }

    #[test]
    fn without_resume_an_existing_output_is_overwritten() {
        let players = players(&["random@400"]);
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("games.jsonl");
        std::fs::write(&path, "not games at all\n".repeat(100)).expect("written");
        std::fs::write(run_file_path(&path), "{}").expect("written");
        let report = write_rated_self_play(
            &path,
            &players,
            &small_config(3),
            &SelfPlayOptions::default(),
        )
        .expect("overwrites");
        assert_eq!((report.resumed, report.played), (0, 3));
        let games: Vec<RatedGame> = RatedJsonlReader::open(&path)
            .expect("the file opens")
            .map(|game| game.expect("every game replays"))
            .collect();
        assert_eq!(
            games,
            generate_rated_games(&players, &small_config(3)).expect("runs")
        );
        assert_eq!(
            SelfPlayRun::read(run_file_path(&path)).expect("rewritten"),
            SelfPlayRun::new(&players, &small_config(3))
        );
        #[cfg(unix)]
        {
            let link = dir.path().join("link.jsonl");
            std::os::unix::fs::symlink(&path, &link).expect("a link");
            let error = write_rated_self_play(
                &link,
                &players,
                &small_config(3),
                &SelfPlayOptions::default(),
            )
            .expect_err("a symbolic link");
            assert!(error.to_string().contains("symbolic link"), "{error}");
        }
    }

    #[test]
    fn pgn_output_is_the_same_chunked() {
        let players = players(&["random@400", "greedy@700"]);
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("games.pgn");
        let config = small_config(GAMES_PER_THREAD_PER_CHUNK * rayon::current_num_threads() + 3);
        write_rated_self_play(&path, &players, &config, &SelfPlayOptions::default())
            .expect("self-play runs");
        let expected = dir.path().join("expected.pgn");
        crate::chess::rated::write_rated_games(
            &expected,
            RatedFormat::Pgn,
            &generate_rated_games(&players, &config).expect("runs"),
        )
        .expect("written");
        assert_eq!(
            std::fs::read(&path).expect("written"),
            std::fs::read(&expected).expect("written")
        );
    }
}
