//! The uniformly random player.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Agent, PlayerError, legal_moves_or_over};
use crate::game::Game;

/// Plays a uniformly random legal move.
#[derive(Clone, Debug)]
pub struct RandomAgent {
    rng: ChaCha8Rng,
}

impl RandomAgent {
    /// A random player; `seed` fixes its moves.
    pub fn new(seed: u64) -> RandomAgent {
        RandomAgent {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl<G: Game> Agent<G> for RandomAgent {
    fn name(&self) -> String {
        "random".to_owned()
    }

    fn choose(&mut self, position: &G) -> Result<G::Move, PlayerError> {
        let moves = legal_moves_or_over(position, &|| "random".to_owned())?;
        Ok(moves[self.rng.random_range(0..moves.len())])
    }
}
