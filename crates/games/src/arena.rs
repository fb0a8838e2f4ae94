//! Matches between two players: N games with colours alternating, in
//! parallel, reproducible from one seed whatever the thread count.
//!
//! Game `i` is played by fresh agents built for it: player A takes the first
//! side in even games and the second in odd ones. Games `2k` and `2k + 1`
//! share their random opening (when `random_opening_plies > 0`), so each
//! opening is played once from each side. Every seed of game `i` (opening,
//! both agents) comes from `(seed, i)`, so the results do not depend on how
//! rayon spreads the games. The Elo difference and its interval are those
//! of [`crate::elo`].

use std::time::Instant;

use rand::RngExt;
use rayon::prelude::*;

use crate::dataset::game_rng;
use crate::elo::{self, EloEstimate};
use crate::game::{Game, Outcome, Player};
use crate::players::{Agent, AgentGame, PlayerError, PlayerSpec, PlayerSpecError};

/// How a match is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArenaConfig {
    /// Number of games.
    pub games: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// Uniformly random plies played from the start position before the
    /// agents take over (shared by each pair of games).
    pub random_opening_plies: usize,
    /// A game still going after this many plies is adjudicated a draw.
    pub max_plies: Option<usize>,
}

impl ArenaConfig {
    /// `games` games from `seed`, no random opening, no ply limit.
    pub fn new(games: usize, seed: u64) -> ArenaConfig {
        ArenaConfig {
            games,
            seed,
            random_opening_plies: 0,
            max_plies: None,
        }
    }
}

/// One game of a match.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GameRecord {
    /// The game's index.
    pub index: usize,
    /// Whether player A had the first side.
    pub a_first: bool,
    /// The result (by side, not by player).
    pub outcome: Outcome,
    /// A's score: 1, 0.5 or 0.
    pub a_score: f64,
    /// Plies played, opening included.
    pub plies: usize,
    /// Whether the ply limit ended the game (scored a draw).
    pub adjudicated: bool,
    /// The moves, as written by `Display`.
    pub moves: Vec<String>,
}

/// Wins, draws and losses of player A.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// Games A won.
    pub wins: usize,
    /// Games drawn.
    pub draws: usize,
    /// Games A lost.
    pub losses: usize,
}

impl Tally {
    fn add(&mut self, a_score: f64) {
        if a_score > 0.5 {
            self.wins += 1;
        } else if a_score < 0.5 {
            self.losses += 1;
        } else {
            self.draws += 1;
        }
    }

    /// Games counted.
    pub fn games(&self) -> usize {
        self.wins + self.draws + self.losses
    }
}

/// The result of a match, from player A's point of view.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArenaReport {
    /// Player A's name.
    pub player_a: String,
    /// Player B's name.
    pub player_b: String,
    /// The settings.
    pub config: ArenaConfig,
    /// A's results over all games.
    pub total: Tally,
    /// A's results with the first side.
    pub as_first: Tally,
    /// A's results with the second side.
    pub as_second: Tally,
    /// Games ended by the ply limit.
    pub adjudicated: usize,
    /// A's mean score.
    pub score: f64,
    /// A's Elo difference over B with its 95% interval (`None`: no games).
    pub elo: Option<EloEstimate>,
    /// rayon threads available.
    pub threads: usize,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Every game.
    pub games: Vec<GameRecord>,
}

impl ArenaReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an arena report has only serialisable fields")
    }

    /// The summary as a Markdown table (without the per-game records).
    pub fn to_markdown(&self) -> String {
        let row = |label: &str, tally: &Tally| {
            let score = if tally.games() > 0 {
                format!(
                    "{:.3}",
                    (tally.wins as f64 + tally.draws as f64 / 2.0) / tally.games() as f64
                )
            } else {
                "-".to_owned()
            };
            format!(
                "| {label} | {} | {} | {} | {} | {score} |\n",
                tally.games(),
                tally.wins,
                tally.draws,
                tally.losses
            )
        };
        let mut text = format!("### {} vs {}\n\n", self.player_a, self.player_b);
        text.push_str(&format!(
            "| {} as | games | wins | draws | losses | score |\n",
            self.player_a
        ));
        text.push_str("|---|---:|---:|---:|---:|---:|\n");
        text.push_str(&row("first", &self.as_first));
        text.push_str(&row("second", &self.as_second));
        text.push_str(&row("**total**", &self.total));
        text.push('\n');
        let elo = self
            .elo
            .as_ref()
            .map_or_else(|| "no games".to_owned(), EloEstimate::describe);
        text.push_str(&format!(
            "Elo difference ({} minus {}), 95% interval: {elo}\n",
            self.player_a, self.player_b
        ));
        text.push_str(&format!(
            "\nSeed {}, {} random opening plies, {} adjudicated, {} threads, {:.2} s.\n",
            self.config.seed,
            self.config.random_opening_plies,
            self.adjudicated,
            self.threads,
            self.elapsed_s
        ));
        text
    }
}

/// Why a match stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    /// A player could not be built.
    #[error("game {game}: cannot build player {player}: {source}")]
    Build {
        /// The game.
        game: usize,
        /// "A" or "B".
        player: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A player failed during a game.
    #[error("game {game}, ply {ply}: {source}")]
    Play {
        /// The game.
        game: usize,
        /// The ply.
        ply: usize,
        /// Why.
        #[source]
        source: PlayerError,
    },
    /// A player spec is invalid.
    #[error(transparent)]
    Spec(#[from] PlayerSpecError),
}

/// The two seeds of game `index`'s agents.
fn agent_seeds(seed: u64, index: usize) -> (u64, u64) {
    // Stream 2^63 + index: disjoint from the openings' streams (pair indices).
    let mut rng = game_rng(seed, (1 << 63) | index as u64);
    (rng.random(), rng.random())
}

/// Plays a match between the agents `make_a` and `make_b` build (called
/// once per game with that game's seed) from `start`.
pub fn run_arena<G, A, B, FA, FB, EA, EB>(
    start: &G,
    config: &ArenaConfig,
    make_a: FA,
    make_b: FB,
) -> Result<ArenaReport, ArenaError>
where
    G: Game,
    A: Agent<G>,
    B: Agent<G>,
    FA: Fn(u64) -> Result<A, EA> + Sync,
    FB: Fn(u64) -> Result<B, EB> + Sync,
    EA: std::error::Error + Send + Sync + 'static,
    EB: std::error::Error + Send + Sync + 'static,
{
    let clock = Instant::now();
    let build_error = |game, player| {
        move |source: Box<dyn std::error::Error + Send + Sync>| ArenaError::Build {
            game,
            player,
            source,
        }
    };
    // Names from a probe agent, which also surfaces build errors at once.
    let (seed_a, seed_b) = agent_seeds(config.seed, 0);
    let player_a = make_a(seed_a)
        .map_err(|e| build_error(0, "A")(Box::new(e)))?
        .name();
    let player_b = make_b(seed_b)
        .map_err(|e| build_error(0, "B")(Box::new(e)))?
        .name();
    let games: Vec<GameRecord> = (0..config.games)
        .into_par_iter()
        .map(|index| {
            let (seed_a, seed_b) = agent_seeds(config.seed, index);
            let mut a = make_a(seed_a).map_err(|e| build_error(index, "A")(Box::new(e)))?;
            let mut b = make_b(seed_b).map_err(|e| build_error(index, "B")(Box::new(e)))?;
            play_arena_game(start, config, index, &mut a, &mut b)
        })
        .collect::<Result<_, _>>()?;
    let mut report = ArenaReport {
        player_a,
        player_b,
        config: *config,
        total: Tally::default(),
        as_first: Tally::default(),
        as_second: Tally::default(),
        adjudicated: 0,
        score: 0.0,
        elo: None,
        threads: rayon::current_num_threads(),
        elapsed_s: 0.0,
        games,
    };
    for game in &report.games {
        report.total.add(game.a_score);
        if game.a_first {
            report.as_first.add(game.a_score);
        } else {
            report.as_second.add(game.a_score);
        }
        report.adjudicated += usize::from(game.adjudicated);
    }
    let total = report.total;
    report.score = if total.games() > 0 {
        (total.wins as f64 + total.draws as f64 / 2.0) / total.games() as f64
    } else {
        0.0
    };
    report.elo = elo::estimate(total.wins, total.draws, total.losses);
    report.elapsed_s = clock.elapsed().as_secs_f64();
    Ok(report)
}

/// A game played to its end (or its ply limit) by two agents.
#[derive(Clone, Debug)]
pub struct PlayedGame<G: Game> {
    /// The final position.
    pub position: G,
    /// The moves, opening included.
    pub moves: Vec<G::Move>,
    /// Whether the ply limit stopped it before its end.
    pub adjudicated: bool,
}

/// A move an agent could not give, with the ply it was asked at.
#[derive(Debug, thiserror::Error)]
#[error("ply {ply}: {source}")]
pub struct PlayFailure {
    /// The ply (from 0).
    pub ply: usize,
    /// Why.
    #[source]
    pub source: PlayerError,
}

/// Plays from `start`: `random_opening_plies` uniformly random plies drawn
/// from `opening_rng`, then `first` and `second` (the agents of
/// [`Player::First`] and [`Player::Second`]) until the game ends or
/// `max_plies` plies have been played. The building block of the arena and
/// of self-play data generation.
pub fn play_game<G: Game>(
    start: &G,
    first: &mut dyn Agent<G>,
    second: &mut dyn Agent<G>,
    opening_rng: &mut rand_chacha::ChaCha8Rng,
    random_opening_plies: usize,
    max_plies: Option<usize>,
) -> Result<PlayedGame<G>, PlayFailure> {
    let mut position = start.clone();
    let mut moves = Vec::new();
    let mut legal = Vec::new();
    while position.outcome().is_none() {
        let ply = moves.len();
        if max_plies.is_some_and(|limit| ply >= limit) {
            return Ok(PlayedGame {
                position,
                moves,
                adjudicated: true,
            });
        }
        let first_to_move = position.to_move() == Player::First;
        let mv = if ply < random_opening_plies {
            position.legal_moves_into(&mut legal);
            legal[opening_rng.random_range(0..legal.len())]
        } else {
            let chosen = if first_to_move {
                first.choose(&position)
            } else {
                second.choose(&position)
            };
            chosen.map_err(|source| PlayFailure { ply, source })?
        };
        if let Err(error) = position.play(mv) {
            let player = if first_to_move {
                first.name()
            } else {
                second.name()
            };
            return Err(PlayFailure {
                ply,
                source: PlayerError::IllegalMove {
                    player,
                    mv: error.mv,
                    position: error.position,
                },
            });
        }
        moves.push(mv);
    }
    Ok(PlayedGame {
        position,
        moves,
        adjudicated: false,
    })
}

/// Plays game `index` of a match.
fn play_arena_game<'a, G: Game>(
    start: &G,
    config: &ArenaConfig,
    index: usize,
    a: &'a mut dyn Agent<G>,
    b: &'a mut dyn Agent<G>,
) -> Result<GameRecord, ArenaError> {
    let a_first = index.is_multiple_of(2);
    let mut opening_rng = game_rng(config.seed, (index / 2) as u64);
    let (first, second) = if a_first { (a, b) } else { (b, a) };
    let played = play_game(
        start,
        first,
        second,
        &mut opening_rng,
        config.random_opening_plies,
        config.max_plies,
    )
    .map_err(|failure| ArenaError::Play {
        game: index,
        ply: failure.ply,
        source: failure.source,
    })?;
    let outcome = played.position.outcome().unwrap_or(Outcome::Draw);
    let a_side = if a_first {
        Player::First
    } else {
        Player::Second
    };
    Ok(GameRecord {
        index,
        a_first,
        outcome,
        a_score: outcome.score_for(a_side),
        plies: played.moves.len(),
        adjudicated: played.adjudicated,
        moves: played.moves.iter().map(ToString::to_string).collect(),
    })
}

/// Plays a match between two players named by [`PlayerSpec`] text
/// (`"mcts:200"`, `"alphabeta:4"`): what the command line calls.
pub fn run_arena_by_names<G: AgentGame>(
    start: &G,
    player_a: &str,
    player_b: &str,
    config: &ArenaConfig,
) -> Result<ArenaReport, ArenaError> {
    let spec_a: PlayerSpec = player_a.parse()?;
    let spec_b: PlayerSpec = player_b.parse()?;
    run_arena(
        start,
        config,
        |seed| G::build_agent(&spec_a, seed),
        |seed| G::build_agent(&spec_b, seed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::othello::Othello;
    use crate::players::{GreedyAgent, RandomAgent};

    fn othello6() -> Othello {
        Othello::new(6).expect("6x6 is supported")
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let config = ArenaConfig {
            random_opening_plies: 2,
            ..ArenaConfig::new(16, 42)
        };
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool builds")
                .install(|| {
                    run_arena(
                        &othello6(),
                        &config,
                        |seed| Ok::<_, PlayerError>(GreedyAgent::new(seed)),
                        |seed| Ok::<_, PlayerError>(RandomAgent::new(seed)),
                    )
                    .expect("the match runs")
                })
        };
        let one = run(1);
        let two = run(2);
        assert_eq!(one.games, two.games);
        assert_eq!(one.total, two.total);
        assert_eq!(one.player_a, "greedy");
        assert_eq!(one.player_b, "random");
        // Colours alternate and pairs share their opening.
        for pair in one.games.chunks(2) {
            assert!(pair[0].a_first && !pair[1].a_first);
            assert_eq!(pair[0].moves[..2], pair[1].moves[..2]);
        }
        assert_eq!(one.as_first.games(), 8);
        assert_eq!(one.total.games(), 16);
        let another_seed = run_arena(
            &othello6(),
            &ArenaConfig { seed: 43, ..config },
            |seed| Ok::<_, PlayerError>(GreedyAgent::new(seed)),
            |seed| Ok::<_, PlayerError>(RandomAgent::new(seed)),
        )
        .expect("the match runs");
        assert_ne!(another_seed.games, one.games);
    }

    #[test]
    fn a_player_against_itself_scores_about_half_and_reports_render() {
        let report = run_arena_by_names(&othello6(), "random", "random", &ArenaConfig::new(200, 7))
            .expect("the match runs");
        assert!((report.score - 0.5).abs() < 0.12, "{}", report.score);
        let elo = report.elo.expect("games were played");
        assert!(elo.lower.expect("finite") < 0.0 && elo.upper.expect("finite") > 0.0);
        let markdown = report.to_markdown();
        assert!(markdown.contains("| **total** | 200 |"), "{markdown}");
        assert!(markdown.contains("95% interval"), "{markdown}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(json["total"]["wins"], report.total.wins);
        assert_eq!(json["games"].as_array().map(Vec::len), Some(200));
    }

    #[test]
    fn ply_limits_adjudicate_draws_and_errors_name_the_game() {
        let config = ArenaConfig {
            max_plies: Some(6),
            ..ArenaConfig::new(4, 1)
        };
        let report =
            run_arena_by_names(&othello6(), "greedy", "random", &config).expect("the match runs");
        assert_eq!(report.adjudicated, 4);
        assert_eq!(report.total.draws, 4);
        assert!(report.games.iter().all(|game| game.plies == 6));
        let error = run_arena_by_names(&othello6(), "greedy", "stockfish", &config)
            .expect_err("no engine for Othello");
        assert!(
            error.to_string().contains("does not play Othello"),
            "{error}"
        );
        let error =
            run_arena_by_names(&othello6(), "greed", "random", &config).expect_err("a typo");
        assert!(error.to_string().contains("alphabeta:<depth"), "{error}");
    }
}
