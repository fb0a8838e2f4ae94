//! # kibitzer-hooks
//!
//! Hooked burn models, TransformerLens style:
//!
//! - [`HookSite`]: sites named as TransformerLens names them
//!   (`blocks.3.hook_resid_post`, `blocks.0.attn.hook_pattern`, ...); an
//!   unknown name is an error listing the valid ones.
//! - [`HookedModel`]: run a model with a cache of chosen sites, with hooks
//!   that read or replace activations, or only up to the last site needed.
//! - [`Hook`]: zero and mean ablation, patching from another run's cache,
//!   adding a vector, scaling, splicing any kibitzer-sae [`Dictionary`]
//!   (optionally with its error term and feature edits), any closure; each
//!   built-in edit can be limited to some examples, positions or heads.
//! - [`ModelActivations`] and [`harvest()`]: a model's activations at a site
//!   over a dataset, as an [`ActivationSource`] or straight into a
//!   kibitzer-store store, under a memory ceiling.
//! - [`metrics`]: loss recovered and the change an intervention makes.
//!
//! Models implementing [`HookedModel`] live in kibitzer-models (GPT,
//! the AlphaZero Othello net, the skill-conditioned chess policy).
//!
//! [`Dictionary`]: kibitzer_sae::Dictionary
//! [`ActivationSource`]: kibitzer_store::ActivationSource
#![warn(missing_docs)]

pub mod activation;
pub mod error;
pub mod harvest;
pub mod hooks;
pub mod metrics;
pub mod model;
pub mod site;

pub use activation::{Activation, Axis};
pub use error::HookError;
pub use harvest::{
    ExampleSource, Examples, HarvestConfig, ModelActivations, TokenSequences, harvest,
};
pub use hooks::{
    ActivationCache, FeatureEdit, Hook, Hooks, Intervention, MeanOf, Selection, SharedDictionary,
    exact_dictionary,
};
pub use metrics::{
    LossRecovered, check_target_ranges, loss_recovered, mean_kl_divergence,
    next_token_cross_entropy, next_token_cross_entropy_from, next_token_loss, next_token_loss_from,
    next_token_loss_over, output_change,
};
pub use model::HookedModel;
pub use site::{BlockHook, HookSite, LnHook, ParseSiteError, SITE_PATTERNS};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
