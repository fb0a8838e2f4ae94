//! What MCTS asks of whoever judges a leaf: a policy prior and a value, for a
//! batch of positions at a time, so a neural net sees full batches.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::game::Game;

/// The prior over the moves of one position, as an evaluator gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum Policy {
    /// Every legal move equally likely (rollout evaluators, or a net that has
    /// no opinion).
    Uniform,
    /// One non-negative weight per legal move, in the order of
    /// [`Game::legal_moves`]; MCTS normalises them.
    OverLegalMoves(Vec<f32>),
    /// One non-negative weight per action (`Game::num_actions` values, a
    /// move's weight at [`Game::action_index`]): a net's softmax output. MCTS
    /// keeps the legal moves' weights and renormalises; when they sum to zero
    /// it falls back to uniform.
    OverActions(Vec<f32>),
}

/// An evaluator's verdict on one position.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The prior over the moves.
    pub policy: Policy,
    /// The expected result in `[-1, 1]` for the side to move (1: it wins).
    pub value: f32,
}

/// An evaluator that failed (a net's device error, a closed connection).
#[derive(Debug, thiserror::Error)]
#[error("evaluator failed: {source}")]
pub struct EvaluatorError {
    /// What went wrong.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl EvaluatorError {
    /// Wraps any error (or message) of an evaluator.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EvaluatorError {
        EvaluatorError {
            source: source.into(),
        }
    }
}

/// Judges positions for MCTS: for each position a prior over its moves and a
/// value for its side to move.
///
/// MCTS calls it with up to `leaf_batch_size` positions at once (never a
/// finished game) and expects exactly one [`Evaluation`] per position, in
/// order. `rng` is the search's own seeded generator: an evaluator that draws
/// random numbers takes them from it, so one seed fixes the whole search; a
/// neural net ignores it.
pub trait Evaluator<G: Game> {
    /// Evaluates `positions`.
    fn evaluate(
        &mut self,
        positions: &[G],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Evaluation>, EvaluatorError>;
}

impl<G: Game, E: Evaluator<G> + ?Sized> Evaluator<G> for &mut E {
    fn evaluate(
        &mut self,
        positions: &[G],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Evaluation>, EvaluatorError> {
        (**self).evaluate(positions, rng)
    }
}

impl<G: Game, E: Evaluator<G> + ?Sized> Evaluator<G> for Box<E> {
    fn evaluate(
        &mut self,
        positions: &[G],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Evaluation>, EvaluatorError> {
        (**self).evaluate(positions, rng)
    }
}

/// The evaluator that needs no net: uniform priors and, as the value, the
/// mean result of `rollouts` games of uniformly random moves played from the
/// position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RolloutEvaluator {
    /// Random games per position (at least 1).
    pub rollouts: u32,
    /// A random game still going after this many plies counts as a draw
    /// (chess games of random moves can run for hundreds of plies).
    pub max_plies: u32,
}

impl Default for RolloutEvaluator {
    /// One rollout of at most 400 plies.
    fn default() -> RolloutEvaluator {
        RolloutEvaluator {
            rollouts: 1,
            max_plies: 400,
        }
    }
}

impl RolloutEvaluator {
    /// `rollouts` random games per position (0 is taken as 1), at most
    /// `max_plies` plies each.
    pub fn new(rollouts: u32, max_plies: u32) -> RolloutEvaluator {
        RolloutEvaluator {
            rollouts: rollouts.max(1),
            max_plies,
        }
    }

    /// The mean result for the side to move of `position` over the rollouts.
    pub fn value<G: Game>(&self, position: &G, rng: &mut ChaCha8Rng) -> f32 {
        let mut moves = Vec::new();
        let rollouts = self.rollouts.max(1);
        let total: f32 = (0..rollouts)
            .map(|_| random_playout(position, self.max_plies, rng, &mut moves))
            .sum();
        total / rollouts as f32
    }
}

/// Plays uniformly random moves from `position` until the game ends or
/// `max_plies` plies have been played; the result for the side to move of
/// `position` (0 when cut off). `moves` is scratch space.
pub fn random_playout<G: Game>(
    position: &G,
    max_plies: u32,
    rng: &mut ChaCha8Rng,
    moves: &mut Vec<G::Move>,
) -> f32 {
    let me = position.to_move();
    let mut current = position.clone();
    for _ in 0..max_plies {
        if let Some(outcome) = current.outcome() {
            return outcome.value_for(me);
        }
        current.legal_moves_into(moves);
        // A game that is not over has a legal move (a pass where forced):
        // the Game contract. Guard anyway so a broken game cannot panic here.
        if moves.is_empty() {
            return 0.0;
        }
        let mv = moves[rng.random_range(0..moves.len())];
        current
            .play(mv)
            .expect("a move from legal_moves_into is legal in that position");
    }
    current
        .outcome()
        .map_or(0.0, |outcome| outcome.value_for(me))
}

impl<G: Game> Evaluator<G> for RolloutEvaluator {
    fn evaluate(
        &mut self,
        positions: &[G],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Evaluation>, EvaluatorError> {
        Ok(positions
            .iter()
            .map(|position| Evaluation {
                policy: Policy::Uniform,
                value: self.value(position, rng),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::othello::Othello;
    use rand::SeedableRng;

    #[test]
    fn rollouts_of_a_decided_position_agree_and_are_seeded() {
        // Black to move with every square taken but one it cannot use:
        // White has 4 discs, Black 11: Black has won whatever happens.
        let won = Othello::from_board_string("XXXX/XXXX/XXOO/XXO. X").expect("valid board");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let evaluator = RolloutEvaluator::new(5, 100);
        assert_eq!(evaluator.value(&won, &mut rng), 1.0);
        let start = Othello::new(6).expect("6x6 is supported");
        let mut evaluator = RolloutEvaluator::new(50, 100);
        let a = evaluator
            .evaluate(&[start], &mut ChaCha8Rng::seed_from_u64(9))
            .expect("rollouts cannot fail");
        let b = evaluator
            .evaluate(&[start], &mut ChaCha8Rng::seed_from_u64(9))
            .expect("rollouts cannot fail");
        assert_eq!(a, b);
        assert!(
            a[0].value > -1.0 && a[0].value < 1.0,
            "50 random games of 6x6 are not all won by one side"
        );
        assert_eq!(a[0].policy, Policy::Uniform);
    }

    #[test]
    fn cut_off_rollouts_count_as_draws() {
        let start = Othello::new(8).expect("8x8 is supported");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut moves = Vec::new();
        assert_eq!(random_playout(&start, 10, &mut rng, &mut moves), 0.0);
    }
}
