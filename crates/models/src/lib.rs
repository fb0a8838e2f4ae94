//! # kibitzer-models
//!
//! The subject models of kibitzer, in burn, each with a config, seeded
//! initialisation, a training loop, weight files and a hook at every site
//! (kibitzer-hooks' [`HookedModel`](kibitzer_hooks::HookedModel)):
//!
//! - [`gpt`]: a decoder-only transformer (OthelloGPT, ChessGPT, grid-quiz
//!   GPTs) that reads and writes TransformerLens state dicts, trained with
//!   AdamW, warm-up and cosine decay, checkpoints and bit-identical resume.
//! - [`alphazero`]: the AlphaZero Othello network of reference 001 (a
//!   residual tower of linear layers with batch norm, policy and value
//!   heads), usable by kibitzer-games' MCTS as a batched `Evaluator`.
//! - [`chess_policy`]: a skill-conditioned chess policy in the style of
//!   Maia-2 (squares as tokens, rating embeddings, policy and value heads).
//!
//! Parameters are plain `[rows, cols]` tensors listed by name
//! ([`Parameterized`]); gradients come from burn's autodiff on a tracked
//! copy ([`params::gradients`]) and [`AdamW`] updates them.
#![warn(missing_docs)]

pub mod alphazero;
pub mod causal_attention;
#[cfg(feature = "chess")]
pub mod chess_policy;
pub mod error;
pub mod flex_kernels;
pub mod gpt;
pub mod params;
pub mod transformer;

pub use alphazero::{
    AlphaZeroBatch, AlphaZeroConfig, AlphaZeroLoss, AlphaZeroNet, AlphaZeroOutput,
    AlphaZeroTrainer, PositionSource,
};
pub use error::ModelError;
pub use gpt::train::{GptTrainConfig, GptTrainer, TokenDataset, TrainLog};
pub use gpt::{Gpt, GptConfig, Positional};
pub use params::{AdamW, AdamWConfig, LrSchedule, Parameterized};
pub use transformer::ActFn;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
