#![doc = include_str!("../README.md")]
//!
//! # Modules
//!
//! [`game`] (the trait), [`othello`], `chess` (feature `chess`), [`mcts`],
//! [`players`], [`arena`] and [`elo`], [`dataset`] (Othello datasets; the
//! chess ones are `chess::rated` and `players::selfplay`, and move judging
//! `chess::judge`, feature `chess`),
//! [`files`] (game files of any format: kind, chess games, summaries), [`atomic`]
//! (files complete or absent) and [`fault`] (fault injection for tests).
#![warn(missing_docs)]

pub mod arena;
#[cfg(feature = "chess")]
pub mod chess;
pub mod dataset;
pub mod elo;
pub mod files;
pub mod game;
pub mod mcts;
pub mod othello;
pub mod players;

/// Atomic file writes (kibitzer-io's).
pub use kibitzer_io::atomic;
/// Fault points for the tests of interrupted jobs (kibitzer-io's).
pub use kibitzer_io::fault;

pub use game::{Game, IllegalMove, Outcome, Player};
