//! # kibitzer-xcoder
//!
//! Transcoders, crosscoders and cross-layer transcoders trained with kibitzer-sae's pieces (its
//! [`kibitzer_sae::Sae`], architectures, sparsity penalties, masks,
//! training config, logs, metrics and SAELens files), and stage-wise model
//! diffing.
//!
//! - [`transcoder`]: read one hook site, predict another, with every sparsity
//!   of the SAE family (TopK, BatchTopK, JumpReLU, L1) and an optional affine
//!   skip path; saved in SAELens's transcoder layouts where SAELens has one.
//! - [`clt`]: cross-layer transcoders (each layer's features write to that
//!   layer's MLP output and every later one's), JumpReLU, BatchTopK or L1,
//!   saved in circuit-tracer's layout.
//! - [`crosscoder`]: acausal crosscoders over several blocks (the layers of a
//!   model, or one site of two models for model diffing): one latent space
//!   read through the sum of per-block encoders, one decoder per block,
//!   sparsity weighted by the sum of the per-block decoder norms; L1, TopK
//!   and BatchTopK.
//! - The loss and hand-written gradients of one batch are kibitzer-sae's
//!   ([`kibitzer_sae::arch::step`]): one step per architecture serves SAEs,
//!   transcoders and crosscoders ([`kibitzer_sae::arch::StepModel`]).
//! - [`train`] / [`run`]: the optimiser and a training run with atomic
//!   checkpoints, bit-identical resume, `log.jsonl` and a progress bar.
//! - [`diff`]: stage-wise model diffing (four stages, per-feature decoder
//!   direction and norm changes, ranking).
//! - [`eval`]: metrics with the FVU of multi-output dictionaries computed
//!   both ways (concatenated, and mean of per-block), with the formulas.
//! - [`source`]: activation stores read in lockstep; [`planted`]: synthetic
//!   rows with a planted sparse map.
//! - [`api`]: what `kibitzer xcoder train` and `kibitzer xcoder diff` call.
//!
//! See the README for an example.

#![warn(missing_docs)]

pub mod api;
pub mod blocks;
pub mod clt;
pub mod crosscoder;
pub mod diff;
pub mod error;
pub mod eval;
pub mod format;
pub mod planted;
pub mod run;
pub mod source;
pub mod train;
pub mod transcoder;
pub mod xcoder;

pub use blocks::Block;
pub use clt::{Clt, CltConfig};
pub use crosscoder::{Crosscoder, CrosscoderConfig};
pub use error::XcoderError;
pub use transcoder::{Transcoder, TranscoderConfig};
pub use xcoder::{Kind, Xcoder, XcoderConfig};

#[cfg(all(doctest, feature = "flex"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
