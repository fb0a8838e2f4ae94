//! Ready-made sweeps. [`planted_recovery`] is the recipe set that the demo
//! runs and the recovery tests check: one dictionary of every architecture,
//! tuned to recover a planted dictionary from synthetic activations.

use super::{DictTrainer, PAnneal, SweepMember, TrainConfig};
use crate::arch::Architecture;
use crate::error::ConfigError;
use crate::sae::{Sae, SaeConfig};
use crate::synth::SyntheticConfig;
use burn::tensor::Device;

/// The planted data [`planted_recovery`] was tuned on: d_in 64, 128 unit
/// directions with power-law frequencies (exponent 0.5), 5 active per row on
/// average, noise 0.01. The demo and the recovery tests train on it.
pub fn planted_recovery_data(seed: u64) -> SyntheticConfig {
    SyntheticConfig {
        d_in: 64,
        n_features: 128,
        mean_active_features: 5.0,
        frequency_exponent: 0.5,
        seed,
        ..SyntheticConfig::default()
    }
}

/// The architectures of [`planted_recovery`], by member name.
pub const PLANTED_RECOVERY_MEMBERS: [&str; 6] = [
    "standard",
    "panneal",
    "gated",
    "topk",
    "batchtopk",
    "jumprelu",
];

/// One dictionary of every architecture (p-annealing as a variant of the
/// standard SAE), for activations normalised to mean norm `sqrt(d_in)`
/// with about `k` planted features active per row.
///
/// Settings (found on planted data with d_in 64, 128 features, `k` = 5,
/// 2x overcomplete dictionaries, batches of 512): learning rate 4e-3 for
/// all (small dictionaries train well with a high rate); L1 coefficient 2 for
/// the standard SAE and its p-annealed variant (p from 1 to 0.5 from 20% of
/// training); 4 for the gated SAE's gate; L0 coefficient 1 with bandwidth
/// 0.05 for JumpReLU (the paper's 0.001 is for activations of a much smaller
/// scale per feature); TopK and BatchTopK use `k`. Dead features are those
/// silent for 200,000 rows.
pub fn planted_recovery(
    d_in: usize,
    d_sae: usize,
    k: usize,
    batch_size: usize,
    steps: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<SweepMember>, ConfigError> {
    let specs: [(&str, Architecture, f64); 6] = [
        ("standard", Architecture::Standard, 2.0),
        ("panneal", Architecture::Standard, 2.0),
        ("gated", Architecture::Gated, 4.0),
        ("topk", Architecture::TopK { k }, 0.0),
        ("batchtopk", Architecture::BatchTopK { k }, 0.0),
        ("jumprelu", Architecture::JumpRelu { bandwidth: 0.05 }, 1.0),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (name, arch, coefficient))| {
            let mut config = TrainConfig::for_architecture(&arch, d_sae, steps);
            config.batch_size = batch_size;
            config.lr = 4e-3;
            config.sparsity_coefficient = coefficient;
            config.dead_after_rows = 200_000;
            config.seed = seed.wrapping_add(i as u64);
            if name == "panneal" {
                config.p_anneal = Some(PAnneal {
                    p_start: 1.0,
                    p_end: 0.5,
                    start_fraction: 0.2,
                    updates: 10,
                });
            }
            let sae = Sae::init(SaeConfig::new(arch, d_in, d_sae), config.seed, device);
            Ok(SweepMember {
                name: name.to_string(),
                trainer: DictTrainer::new(sae, config)?,
            })
        })
        .collect()
}
