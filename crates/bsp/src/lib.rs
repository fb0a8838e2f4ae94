//! # kibitzer-bsp
//!
//! Board-state properties (BSPs) of Othello and chess positions, and the
//! metrics that judge a dictionary's features against the board: reference
//! 002's **coverage** and **board reconstruction**, computed exactly and
//! fast, and supervised **linear probes** as the upper baseline.
//!
//! The pieces, in the order data flows through them:
//!
//! 1. A [`BspSet`] of property families — [`othello::othello_bsps`],
//!    [`chess::chess_bsps`] (feature `chess`), or your own
//!    [`BoardProperty`] wrapped in a [`SingleProperty`].
//! 2. Positions at labelled tokens ([`labelling`]): every Othello move token,
//!    every `.` of a ChessGPT transcript, or characters of your choice.
//! 3. [`BspSet::label`]: a bit matrix of positions x properties
//!    ([`BspLabels`]), evaluated in parallel; [`labelling::write_labels_jsonl`]
//!    writes it as JSON lines for checking with other libraries.
//! 4. Feature activations of the same tokens as host arrays
//!    ([`Activations`]: a dense `ndarray` matrix or [`SparseActivations`]),
//!    rows = labelled tokens, columns = features — dictionary latents, or raw
//!    neurons for the baseline (the same metrics on the raw matrix).
//! 5. [`metrics::evaluate`]: coverage on the train rows and board
//!    reconstruction on the test rows, as a [`BspReport`] (JSON and
//!    Markdown); [`probe::probe_report`] for linear probes.
//!
//! The metric definitions, with the places where reference 002's code had
//! to be interpreted, are in [`metrics`].

#![warn(missing_docs)]

pub mod activations;
pub mod bits;
#[cfg(feature = "chess")]
pub mod chess;
pub mod error;
pub mod labelling;
pub mod metrics;
pub mod othello;
pub mod probe;
pub mod property;
pub mod report;

pub use activations::{Activations, FeatureScale, SparseActivations};
pub use bits::{BitMatrix, BitSink};
pub use error::{BspError, Result};
pub use labelling::{LabelledPositions, TokenRef};
pub use metrics::{MetricsConfig, board_reconstruction, coverage, evaluate};
pub use probe::{ProbeConfig, probe_report};
pub use property::{
    BoardProperty, BspInfo, BspLabels, BspSet, Catalog, PropertyFamily, SingleProperty,
};
pub use report::{BspReport, CoverageReport, ProbeReport, ReconstructionReport};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
