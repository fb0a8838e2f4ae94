//! The [`Game`] trait: what MCTS, the players, the arena, the dataset writers
//! and the board-state properties need of a two-player, perfect-information,
//! turn-based game, without knowing which game it is.

use std::fmt::{Debug, Display};
use std::hash::Hash;

/// One of the two players. `First` moves first: Black in Othello, White in chess.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Player {
    /// The player who moves first (Othello: Black; chess: White).
    First,
    /// The player who moves second (Othello: White; chess: Black).
    Second,
}

impl Player {
    /// The other player.
    #[must_use]
    pub fn opponent(self) -> Player {
        match self {
            Player::First => Player::Second,
            Player::Second => Player::First,
        }
    }

    /// 0 for `First`, 1 for `Second` (for indexing per-player arrays).
    pub fn index(self) -> usize {
        match self {
            Player::First => 0,
            Player::Second => 1,
        }
    }
}

/// How a finished game ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// This player won.
    Win(Player),
    /// Nobody won.
    Draw,
}

impl Outcome {
    /// The result from `player`'s point of view: 1 win, 0 draw, -1 loss.
    pub fn value_for(self, player: Player) -> f32 {
        match self {
            Outcome::Win(p) if p == player => 1.0,
            Outcome::Win(_) => -1.0,
            Outcome::Draw => 0.0,
        }
    }

    /// The score from `player`'s point of view: 1 win, 0.5 draw, 0 loss
    /// (the convention of Elo tables).
    pub fn score_for(self, player: Player) -> f64 {
        (f64::from(self.value_for(player)) + 1.0) / 2.0
    }
}

/// A move that is not legal in the position it was played in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal move {mv} in position {position}")]
pub struct IllegalMove {
    /// The move as text (square name, UCI or SAN).
    pub mv: String,
    /// The position as text (FEN or board string).
    pub position: String,
}

/// A two-player, perfect-information, turn-based game.
///
/// Positions are values: `play` changes `self`, `Clone` keeps a copy. Every
/// method is deterministic, so a seeded search over a `Game` is reproducible.
pub trait Game: Clone + Debug + Send + Sync + 'static {
    /// A move. `Display` writes it the way users type it (Othello: `c4`, or
    /// `pass`; chess: UCI).
    type Move: Copy + Eq + Hash + Debug + Display + Send + Sync + 'static;

    /// Appends the legal moves of the position to `out` (cleared first). A
    /// finished game has none; a position whose side to move must pass has
    /// exactly the pass move, where the game has one.
    fn legal_moves_into(&self, out: &mut Vec<Self::Move>);

    /// The legal moves of the position, in a fixed order.
    fn legal_moves(&self) -> Vec<Self::Move> {
        let mut out = Vec::new();
        self.legal_moves_into(&mut out);
        out
    }

    /// Plays `mv`, or returns an error (and leaves `self` unchanged) if it is
    /// not legal here.
    fn play(&mut self, mv: Self::Move) -> Result<(), IllegalMove>;

    /// `None` while the game goes on; the result once it is over.
    fn outcome(&self) -> Option<Outcome>;

    /// The player whose turn it is.
    fn to_move(&self) -> Player;

    /// Moves played since the start (passes included).
    fn ply(&self) -> usize;

    /// A hash of the position (pieces, side to move and whatever else changes
    /// the legal moves), the same on every platform and every run.
    fn position_hash(&self) -> u64;

    /// Number of planes of [`Game::encode`]: the encoding has
    /// `encoding_planes() * squares()` values.
    fn encoding_planes(&self) -> usize;

    /// Number of squares of the board.
    fn squares(&self) -> usize;

    /// Writes the position, seen from the side to move, into `out`
    /// (`encoding_planes() * squares()` values, plane-major, square `i` of
    /// plane `p` at `p * squares() + i`).
    fn encode(&self, out: &mut [f32]);

    /// Size of the policy vector of a neural net for this game.
    fn num_actions(&self) -> usize;

    /// The index of `mv` in the policy vector, in `0..num_actions()`.
    fn action_index(&self, mv: Self::Move) -> usize;

    /// The position as text (FEN for chess, a board string for Othello).
    fn position_string(&self) -> String;
}
