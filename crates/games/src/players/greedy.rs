//! The greedy player: the best position right after its own move.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Agent, Heuristic, PlayerError, legal_moves_or_over};
use crate::game::Outcome;

/// Plays the move after which [`Heuristic::greedy_score`] is highest for
/// itself (a move that wins the game first, one that loses it last); ties
/// are broken at random.
#[derive(Clone, Debug)]
pub struct GreedyAgent {
    rng: ChaCha8Rng,
}

impl GreedyAgent {
    /// A greedy player; `seed` fixes how it breaks ties.
    pub fn new(seed: u64) -> GreedyAgent {
        GreedyAgent {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl<G: Heuristic> Agent<G> for GreedyAgent {
    fn name(&self) -> String {
        "greedy".to_owned()
    }

    fn choose(&mut self, position: &G) -> Result<G::Move, PlayerError> {
        let moves = legal_moves_or_over(position, &|| "greedy".to_owned())?;
        let me = position.to_move();
        let mut best = Vec::new();
        let mut best_score = i64::MIN;
        for mv in moves {
            let mut after = position.clone();
            after
                .play(mv)
                .expect("a move from legal_moves is legal in that position");
            let score = match after.outcome() {
                Some(Outcome::Win(winner)) if winner == me => i64::MAX,
                Some(Outcome::Win(_)) => i64::MIN + 1,
                Some(Outcome::Draw) => 0,
                None => i64::from(after.greedy_score(me)),
            };
            if score > best_score {
                best_score = score;
                best.clear();
            }
            if score == best_score {
                best.push(mv);
            }
        }
        Ok(best[self.rng.random_range(0..best.len())])
    }
}
