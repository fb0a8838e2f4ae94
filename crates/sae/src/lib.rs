//! # kibitzer-sae
//!
//! Sparse autoencoders on burn 0.22: the [`Dictionary`] trait, one [`Sae`]
//! type whose [`Architecture`] is a value (standard L1, p-annealing, gated,
//! TopK, BatchTopK, JumpReLU), hand-written gradients checked against burn's
//! autodiff, and a shared trainer.

pub mod arch;
pub mod device;
pub mod dictionary;
pub mod io;
pub mod metrics;
pub mod ops;
pub mod sae;
pub mod saelens;
pub mod synth;
pub mod train;

pub use arch::Architecture;
pub use device::DeviceChoice;
pub use dictionary::{Dictionary, Forward};
pub use kibitzer_store as store;
pub use sae::{Params, RowNorm, Sae, SaeConfig};
