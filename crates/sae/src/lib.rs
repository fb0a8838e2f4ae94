//! # kibitzer-sae
//!
//! Sparse autoencoders on burn 0.22: the [`Dictionary`] trait, one [`Sae`]
//! type whose [`Architecture`] is a value (standard L1, p-annealing, gated,
//! TopK, BatchTopK, JumpReLU, Matryoshka BatchTopK), hand-written gradients
//! checked against burn's autodiff, and a shared trainer.
#![warn(missing_docs)]

pub mod arch;
pub mod device;
pub mod dictionary;
pub mod error;
pub mod hierarchy;
pub mod io;
pub mod metrics;
pub mod ops;
pub mod sae;
pub mod saelens;
pub mod synth;
pub mod train;

pub use arch::{Architecture, Family};
pub use device::DeviceChoice;
pub use dictionary::{Dictionary, Forward};
pub use error::ConfigError;
pub use kibitzer_store as store;
pub use sae::{Params, RowNorm, Sae, SaeConfig};

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "flex"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
