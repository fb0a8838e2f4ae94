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

use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;

use super::spec::{PlayerSpec, PlayerSpecError, StockfishSpec};
use super::uci::BUILT_IN_PLAYERS;
use super::{AgentGame, PlayerError};
use crate::arena::play_game;
use crate::chess::Chess;
use crate::chess::pgn::GameResult;
use crate::chess::rated::{RatedError, RatedFormat, RatedGame, RatedWriter};
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
}

/// Plays `config.games` rated games among `players` (see the module docs).
/// Every player is built once before the games start, so a missing engine
/// fails at once with a message naming the built-in players.
pub fn generate_rated_games(
    players: &[RatedPlayer],
    config: &SelfPlayConfig,
) -> Result<Vec<RatedGame>, SelfPlayError> {
    if players.is_empty() {
        return Err(SelfPlayError::NoPlayers);
    }
    let build = |player: &RatedPlayer, seed| {
        Chess::build_agent(&player.spec, seed).map_err(|source| SelfPlayError::Player {
            player: player.spec.to_string(),
            source: Box::new(source),
        })
    };
    for player in players {
        build(player, 0)?;
    }
    let k = players.len();
    let start = Chess::new();
    (0..config.games)
        .into_par_iter()
        .map(|index| {
            let (white, black) = round_robin_pairing(index, k);
            let (white, black) = (&players[white], &players[black]);
            let mut rng = game_rng(config.seed, index as u64);
            let (white_seed, black_seed) = (
                rand::RngExt::random(&mut rng),
                rand::RngExt::random(&mut rng),
            );
            let mut white_agent = build(white, white_seed)?;
            let mut black_agent = build(black, black_seed)?;
            let played = play_game(
                &start,
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
        })
        .collect()
}

/// What [`write_rated_self_play`] wrote.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SelfPlayReport {
    /// The file.
    pub path: PathBuf,
    /// Games written.
    pub games: usize,
    /// Plies over all games.
    pub plies: usize,
    /// Games won by White, drawn, won by Black, unfinished.
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

/// Generates the games and writes them to `path` atomically, as JSON lines
/// (`.jsonl`, `.ndjson`) or PGN (`.pgn`).
pub fn write_rated_self_play(
    path: impl AsRef<Path>,
    players: &[RatedPlayer],
    config: &SelfPlayConfig,
) -> Result<SelfPlayReport, SelfPlayError> {
    let path = path.as_ref();
    let format = RatedFormat::from_path(path).ok_or_else(|| SelfPlayError::Format {
        path: path.to_path_buf(),
    })?;
    let games = generate_rated_games(players, config)?;
    let mut writer = RatedWriter::create(path, format)?;
    let mut report = SelfPlayReport {
        path: path.to_path_buf(),
        games: 0,
        plies: 0,
        white_wins: 0,
        draws: 0,
        black_wins: 0,
        unfinished: 0,
        players: players.to_vec(),
    };
    for game in &games {
        writer.push(game)?;
        report.plies += game.moves.len();
        match game.result {
            GameResult::WhiteWins => report.white_wins += 1,
            GameResult::BlackWins => report.black_wins += 1,
            GameResult::Draw => report.draws += 1,
            GameResult::Unknown => report.unfinished += 1,
        }
    }
    report.games = writer.finish()?;
    Ok(report)
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
        let report = write_rated_self_play(&path, &players, &config).expect("self-play runs");
        assert_eq!(report.games, 4);
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
        let error = write_rated_self_play(dir.path().join("games.txt"), &players, &config)
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
}
