//! # kibitzer-games
//!
//! The testbed kibitzer stands on: the [`Game`] trait, Othello of any even
//! size on bitboards, chess on shakmaty (feature `chess`, GPL-3.0-or-later),
//! MCTS with PUCT, players, an arena and game datasets.

pub mod game;
pub mod dataset;
pub mod othello;

pub use game::{Game, IllegalMove, Outcome, Player};
