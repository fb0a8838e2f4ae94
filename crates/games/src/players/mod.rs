//! Players: anything that picks a move in a position, behind one trait
//! ([`Agent`]; named so it does not clash with [`crate::Player`], the side).
//!
//! * [`RandomAgent`]: a uniformly random legal move.
//! * [`GreedyAgent`]: the move that is best right away by the game's
//!   [`Heuristic::greedy_score`] (Othello: discs; chess: material).
//! * [`AlphaBetaAgent`]: negamax alpha-beta to a fixed depth on the game's
//!   [`Heuristic::evaluate`].
//! * [`SolverAgent`]: Othello's exact endgame solver (alpha-beta after a
//!   depth when too many squares are empty).
//! * [`MctsAgent`]: the [`crate::mcts`] search with any evaluator.
//! * [`UciAgent`]: an external UCI chess engine (Stockfish).
//!
//! Every agent with a random choice owns a seeded [`rand_chacha::ChaCha8Rng`]:
//! the same seed and the same positions give the same moves.
//! [`PlayerSpec`] builds agents from text (`"alphabeta:4"`), for the command
//! line; [`play_human`] runs a game against a person at the terminal.

mod alphabeta;
mod greedy;
mod heuristic;
mod human;
mod mcts_agent;
mod random;
#[cfg(feature = "chess")]
pub mod selfplay;
pub mod solver;
mod spec;
pub mod uci;

pub use alphabeta::{AlphaBetaAgent, AlphaBetaResult, WIN_SCORE, alphabeta};
pub use greedy::GreedyAgent;
pub use heuristic::Heuristic;
pub use human::{HumanGameEnd, HumanGameError, HumanGameReport, TextGame, play_human};
pub use mcts_agent::MctsAgent;
pub use random::RandomAgent;
pub use solver::{Solution, SolverAgent};
pub use spec::{AgentGame, PLAYER_SPEC_FORMS, PlayerSpec, PlayerSpecError, StockfishSpec};
pub use uci::{
    EngineScore, ScoreBound, SearchLimit, UciAgent, UciConfig, UciEngine, UciError, UciScore,
    default_engine_path, find_engine, parse_info_score,
};

use crate::game::Game;
use crate::mcts::MctsError;

/// Why an agent could not give a move.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    /// The game is over: there is no move to choose.
    #[error("{player}: the game is over in position {position}; there is no move to choose")]
    GameOver {
        /// The agent's name.
        player: String,
        /// The position as text.
        position: String,
    },
    /// The search failed (bad evaluator output, a failing net).
    #[error("{player}: search failed: {source}")]
    Search {
        /// The agent's name.
        player: String,
        /// What failed.
        #[source]
        source: MctsError,
    },
    /// The external engine failed (missing, hung, died, spoke nonsense).
    #[error("{player}: {source}")]
    Engine {
        /// The agent's name.
        player: String,
        /// What failed.
        #[source]
        source: UciError,
    },
    /// The agent answered with a move that is not legal.
    #[error("{player} chose {mv}, which is not legal in {position}")]
    IllegalMove {
        /// The agent's name.
        player: String,
        /// The move as the agent wrote it.
        mv: String,
        /// The position as text.
        position: String,
    },
}

/// Something that chooses moves: a search, a heuristic, an engine or a net.
pub trait Agent<G: Game> {
    /// A short name for reports (`"alphabeta:4"`).
    fn name(&self) -> String;

    /// A legal move in `position`, which is not over.
    fn choose(&mut self, position: &G) -> Result<G::Move, PlayerError>;
}

impl<G: Game, A: Agent<G> + ?Sized> Agent<G> for Box<A> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn choose(&mut self, position: &G) -> Result<G::Move, PlayerError> {
        (**self).choose(position)
    }
}

impl<G: Game, A: Agent<G> + ?Sized> Agent<G> for &mut A {
    fn name(&self) -> String {
        (**self).name()
    }

    fn choose(&mut self, position: &G) -> Result<G::Move, PlayerError> {
        (**self).choose(position)
    }
}

/// The legal moves of `position`, or [`PlayerError::GameOver`] when there
/// are none.
pub(crate) fn legal_moves_or_over<G: Game>(
    position: &G,
    player: &dyn Fn() -> String,
) -> Result<Vec<G::Move>, PlayerError> {
    let moves = position.legal_moves();
    if moves.is_empty() {
        return Err(PlayerError::GameOver {
            player: player(),
            position: position.position_string(),
        });
    }
    Ok(moves)
}
