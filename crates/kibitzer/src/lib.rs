//! # kibitzer
//!
//! Dictionary learning on models that play board games. This crate
//! re-exports the workspace's library crates under one name and holds the
//! `kibitzer` command line; each crate is also usable alone:
//!
//! - [`sae`]: the `Dictionary` trait, the SAE family and its trainer
//!   (`kibitzer-sae`);
//! - [`store`]: activations on disk (`kibitzer-store`);
//! - [`games`]: Othello, chess, MCTS, players, arena, datasets
//!   (`kibitzer-games`);
//! - [`bsp`]: board-state properties, coverage, board reconstruction,
//!   probes (`kibitzer-bsp`), and [`board_eval`], which feeds a dictionary's
//!   features to them.

pub mod alphazero;
pub mod board_eval;
pub mod sweep;
pub mod vis;

pub use kibitzer_bsp as bsp;
pub use kibitzer_games as games;
pub use kibitzer_sae as sae;
pub use kibitzer_store as store;
