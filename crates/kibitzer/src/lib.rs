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
//!   features to them;
//! - [`hooks`]: TransformerLens-named hook sites, caches, interventions,
//!   harvesting (`kibitzer-hooks`);
//! - [`models`]: GPT, the AlphaZero network and its self-play coach, the
//!   skill-conditioned chess policy (`kibitzer-models`);
//! - [`xcoder`]: transcoders, crosscoders, stage-wise diffing
//!   (`kibitzer-xcoder`);
//! - [`quizzes`]: reference 004's grid-quiz world (`kibitzer-quizzes`).
//!
//! Its own modules join them into reference 001's pipeline: [`alphazero`]
//! (the shipped network, network players, the harvest), [`sweep`] (a grid
//! of SAEs judged on the board) and [`vis`] (the feature viewer); [`gpt`]
//! trains, scores and harvests an OthelloGPT or ChessGPT on a games file
//! (references 001 and 002); [`quiz`]
//! holds reference 004's experiments on a quiz GPT, [`story`] reference
//! 003's, and [`skill`] reference 000's on a skill-conditioned chess policy.
#![warn(missing_docs)]

pub mod alphazero;
pub mod board_eval;
pub mod clt;
pub mod gpt;
pub mod leaderboard;
pub mod quiz;
#[cfg(feature = "chess")]
pub mod skill;
pub mod story;
pub mod sweep;
pub mod vis;

pub use kibitzer_bsp as bsp;
pub use kibitzer_games as games;
pub use kibitzer_hooks as hooks;
pub use kibitzer_models as models;
pub use kibitzer_quizzes as quizzes;
pub use kibitzer_sae as sae;
pub use kibitzer_store as store;
pub use kibitzer_stories as stories;
pub use kibitzer_xcoder as xcoder;

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "flex"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
