//! The MCTS player.

use super::{Agent, PlayerError};
use crate::game::Game;
use crate::mcts::{Evaluator, Mcts, MctsConfig, MctsConfigError, SearchResult};

/// Plays the move of an [`Mcts`] search, keeping the tree between moves
/// (the move played and the opponent's reply are found in it).
pub struct MctsAgent<G: Game, E> {
    search: Mcts<G, E>,
    name: String,
    last: Option<SearchResult<G::Move>>,
}

impl<G: Game, E: Evaluator<G>> MctsAgent<G, E> {
    /// A player searching with `config` and `evaluator`; `seed` fixes every
    /// random choice.
    pub fn new(
        config: MctsConfig,
        evaluator: E,
        seed: u64,
    ) -> Result<MctsAgent<G, E>, MctsConfigError> {
        Ok(MctsAgent {
            name: format!("mcts:{}", config.simulations),
            search: Mcts::new(config, evaluator, seed)?,
            last: None,
        })
    }

    /// Renames the player (the default is `mcts:<simulations>`).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> MctsAgent<G, E> {
        self.name = name.into();
        self
    }

    /// The result of the last search (visit counts, policy target, value).
    pub fn last_search(&self) -> Option<&SearchResult<G::Move>> {
        self.last.as_ref()
    }

    /// The search (to read the tree size or change the config).
    pub fn search_mut(&mut self) -> &mut Mcts<G, E> {
        &mut self.search
    }
}

impl<G: Game, E: Evaluator<G>> Agent<G> for MctsAgent<G, E> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn choose(&mut self, position: &G) -> Result<G::Move, PlayerError> {
        if position.outcome().is_some() {
            return Err(PlayerError::GameOver {
                player: self.name.clone(),
                position: position.position_string(),
            });
        }
        let result = self
            .search
            .search(position)
            .map_err(|source| PlayerError::Search {
                player: self.name.clone(),
                source,
            })?;
        let mv = result.best_move;
        self.search.advance(mv);
        self.last = Some(result);
        Ok(mv)
    }
}
