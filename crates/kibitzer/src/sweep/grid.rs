//! The grid of a sweep: which architectures, sparsity values and sizes, and the runs it expands to.

use super::SweepError;
use burn::tensor::Device;
use kibitzer_sae::train::{DictTrainer, PAnneal, SweepMember, TrainConfig};
use kibitzer_sae::{Architecture, Sae, SaeConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// An architecture of the grid: kibitzer-sae's [`kibitzer_sae::Family`]
/// (p-annealing is a family of its own).
pub use kibitzer_sae::Family;

/// The sparsity values of one family in a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyGrid {
    /// The architecture.
    pub family: Family,
    /// Its sparsity values: coefficients, or k for TopK/BatchTopK.
    pub values: Vec<f64>,
}

/// Which ready-made grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Reference 001's 25 standard SAEs and the same 5 x 5 grid for
    /// p-annealing, gated, TopK and JumpReLU: 125 dictionaries.
    Reference,
    /// Two sizes and a few sparsity values, for the demo and tests.
    Small,
}

/// A grid of dictionaries: every family x sparsity value x number of
/// features, sharing one batch size and learning rate (a sweep shares its
/// batches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepGrid {
    /// Where the grid came from ("reference", "small", or edited).
    pub preset: String,
    /// Numbers of features.
    pub features: Vec<usize>,
    /// Families and their sparsity values.
    pub families: Vec<FamilyGrid>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Peak learning rate of every member.
    pub lr: f64,
    /// Optimiser steps, `None` for [`SweepGrid::passes`] passes over the
    /// store.
    pub steps: Option<usize>,
    /// Passes over the store when `steps` is `None` (settings written
    /// before this field existed meant one).
    #[serde(default = "one_pass")]
    pub passes: usize,
    /// JumpReLU: width of the straight-through estimator's kernel.
    pub jumprelu_bandwidth: f64,
    /// JumpReLU: the L0 each dictionary starts at and is trained towards,
    /// with the penalty's gradient reaching the encoder (kibitzer-sae's
    /// `jumprelu_init_l0`, `jumprelu_target_l0` and
    /// `jumprelu_l0_to_encoder`); `None` for the paper's plain L0 penalty
    /// from a threshold of 0.001.
    #[serde(default)]
    pub jumprelu_target_l0: Option<f64>,
    /// p-annealing: the final exponent.
    pub panneal_p_end: f64,
    /// A feature silent for this many rows counts as dead while training
    /// (TopK's AuxK revives them).
    pub dead_after_rows: u64,
}

fn one_pass() -> usize {
    1
}

impl SweepGrid {
    /// Optimiser steps over a store of `rows` rows: `steps` if set, else
    /// `passes` passes of whole batches (at least one step).
    pub fn steps_for(&self, rows: u64) -> usize {
        self.steps.unwrap_or_else(|| {
            (rows as usize / self.batch_size.max(1))
                .saturating_mul(self.passes)
                .max(1)
        })
    }

    /// A preset grid.
    ///
    /// Reference: features 256..4096, batch 16384, lr 1e-4 (reference 001's
    /// settings), 12,000 steps (its "epochs": 12,000 batches); L1, Lp and
    /// L0 coefficients 1..5; k in 4..64 (TopK keeps L0 in the range the L1
    /// grid spans). JumpReLU's bandwidth is kibitzer-sae's 0.05 (the
    /// paper's 0.001 suits a much smaller activation scale than the
    /// normalised rows here, see `train::presets`); p anneals to 0.2
    /// (dictionary_learning's default).
    ///
    /// Small: features 256 and 512, batch 2048, lr 3e-3 (few steps want a
    /// higher rate), three passes over the store (on the demo's 400k rows,
    /// 585 steps: one pass left every dictionary far from trained, FVU
    /// 0.27-0.56); L1 1 and 3 for the standard
    /// SAE, k 16 for TopK, coefficient 3 for p-annealing, gated and JumpReLU:
    /// 12 dictionaries. JumpReLU starts at and is held to L0 16, TopK's k:
    /// in a few hundred steps its thresholds cannot climb from 0.001 to the
    /// scale of the activations on their own.
    pub fn preset(preset: Preset) -> SweepGrid {
        let coefficients = vec![1.0, 2.0, 3.0, 4.0, 5.0];
        match preset {
            Preset::Reference => SweepGrid {
                preset: "reference".into(),
                features: vec![256, 512, 1024, 2048, 4096],
                families: vec![
                    FamilyGrid {
                        family: Family::Standard,
                        values: coefficients.clone(),
                    },
                    FamilyGrid {
                        family: Family::Panneal,
                        values: coefficients.clone(),
                    },
                    FamilyGrid {
                        family: Family::Gated,
                        values: coefficients.clone(),
                    },
                    FamilyGrid {
                        family: Family::Topk,
                        values: vec![4.0, 8.0, 16.0, 32.0, 64.0],
                    },
                    FamilyGrid {
                        family: Family::Jumprelu,
                        values: coefficients,
                    },
                ],
                batch_size: 16384,
                lr: 1e-4,
                steps: Some(12_000),
                passes: 1,
                jumprelu_bandwidth: 0.05,
                jumprelu_target_l0: None,
                panneal_p_end: 0.2,
                dead_after_rows: 10_000_000,
            },
            Preset::Small => SweepGrid {
                preset: "small".into(),
                features: vec![256, 512],
                families: vec![
                    FamilyGrid {
                        family: Family::Standard,
                        values: vec![1.0, 3.0],
                    },
                    FamilyGrid {
                        family: Family::Panneal,
                        values: vec![3.0],
                    },
                    FamilyGrid {
                        family: Family::Gated,
                        values: vec![3.0],
                    },
                    FamilyGrid {
                        family: Family::Topk,
                        values: vec![16.0],
                    },
                    FamilyGrid {
                        family: Family::Jumprelu,
                        values: vec![3.0],
                    },
                ],
                batch_size: 2048,
                lr: 3e-3,
                steps: None,
                passes: 3,
                jumprelu_bandwidth: 0.05,
                jumprelu_target_l0: Some(16.0),
                panneal_p_end: 0.2,
                dead_after_rows: 200_000,
            },
        }
    }

    /// Keeps only `families`, in the grid's order; a family the grid lacks
    /// is added with the reference grid's values.
    pub fn restrict_to(&mut self, families: &[Family]) {
        let reference = SweepGrid::preset(Preset::Reference);
        let mut kept = Vec::new();
        for family in Family::ALL {
            if !families.contains(&family) {
                continue;
            }
            let grid = self
                .families
                .iter()
                .chain(&reference.families)
                .find(|g| g.family == family)
                .cloned()
                .unwrap_or_else(|| FamilyGrid {
                    // BatchTopK and Matryoshka have no preset values: TopK's k.
                    family,
                    values: vec![4.0, 8.0, 16.0, 32.0, 64.0],
                });
            kept.push(grid);
        }
        self.families = kept;
    }

    /// Number of dictionaries.
    pub fn len(&self) -> usize {
        self.features.len() * self.families.iter().map(|f| f.values.len()).sum::<usize>()
    }

    /// Whether the grid has no dictionary.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what a user could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), SweepError> {
        let bad = |what: String| Err(SweepError::Config(format!("sweep grid: {what}")));
        if self.features.is_empty() || self.features.contains(&0) {
            return bad(format!(
                "features {:?}: give at least one size, each at least 1",
                self.features
            ));
        }
        let distinct: BTreeSet<_> = self.features.iter().collect();
        if distinct.len() != self.features.len() {
            return bad(format!("features {:?} repeat a size", self.features));
        }
        if self.families.is_empty() {
            return bad("no architecture".into());
        }
        for g in &self.families {
            if g.values.is_empty() {
                return bad(format!("{} has no sparsity value", g.family.name()));
            }
            for &v in &g.values {
                let ok = if g.family.uses_k() {
                    v >= 1.0 && v.fract() == 0.0
                } else {
                    v.is_finite() && v >= 0.0
                };
                if !ok {
                    return bad(format!(
                        "{} value {v}: expected {}",
                        g.family.name(),
                        if g.family.uses_k() {
                            "a whole number k >= 1"
                        } else {
                            "a coefficient >= 0"
                        }
                    ));
                }
            }
            let distinct: BTreeSet<String> = g.values.iter().map(|v| v.to_string()).collect();
            if distinct.len() != g.values.len() {
                return bad(format!("{} values {:?} repeat", g.family.name(), g.values));
            }
        }
        if self.batch_size == 0 {
            return bad("batch_size 0; expected at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr {}; expected a positive number", self.lr));
        }
        if self.steps == Some(0) {
            return bad("steps 0; expected at least 1".into());
        }
        if self.passes == 0 {
            return bad("passes 0; expected at least 1".into());
        }
        Ok(())
    }

    /// The name of a run: `<family>-d<features>-<kind><value>`, like
    /// `kibitzer sae train` names its grid (`standard-d512-l1_3`,
    /// `topk-d512-k16`, `jumprelu-d512-l0_3`).
    pub fn run_name(family: Family, d_sae: usize, value: f64) -> String {
        match family.sparsity_kind() {
            "k" => format!("{}-d{d_sae}-k{value}", family.name()),
            kind => format!("{}-d{d_sae}-{kind}_{value}", family.name()),
        }
    }

    /// The grid's dictionaries for rows of width `d_in`, freshly
    /// initialised, each trained for `steps` steps; member `i` (in order
    /// family, value, size) has seed `seed + i`.
    pub fn members(
        &self,
        d_in: usize,
        steps: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Vec<SweepMember>, SweepError> {
        self.validate()?;
        // Every member is held at once: check the grid's total first.
        let values: usize = self.families.iter().map(|g| g.values.len()).sum();
        let shapes: Vec<SaeConfig> = self
            .features
            .iter()
            .flat_map(|&d_sae| {
                std::iter::repeat_n(SaeConfig::new(Architecture::Standard, d_in, d_sae), values)
            })
            .collect();
        kibitzer_store::memory::check(
            format!(
                "--features {} ({} dictionaries of width d_in {d_in} from the store, batch size {})",
                self.features
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                self.len(),
                self.batch_size
            ),
            kibitzer_sae::train::memory_needed(
                &shapes,
                self.batch_size,
                kibitzer_sae::device::is_host(device),
            ),
        )
        .map_err(|e| SweepError::Config(e.to_string()))?;
        let mut out = Vec::with_capacity(self.len());
        for g in &self.families {
            for &value in &g.values {
                for &d_sae in &self.features {
                    let architecture = g
                        .family
                        .architecture(value as usize, self.jumprelu_bandwidth);
                    if g.family.uses_k() && value as usize > d_sae {
                        return Err(SweepError::Config(format!(
                            "{} with k = {value} needs at least {value} features, not {d_sae}",
                            g.family.name()
                        )));
                    }
                    let mut config = TrainConfig::for_architecture(&architecture, d_sae, steps);
                    config.batch_size = self.batch_size;
                    config.lr = self.lr;
                    config.dead_after_rows = self.dead_after_rows;
                    config.seed = seed.wrapping_add(out.len() as u64);
                    if !g.family.uses_k() {
                        config.sparsity_coefficient = value;
                    }
                    if g.family == Family::Jumprelu {
                        config.jumprelu_target_l0 = self.jumprelu_target_l0;
                        config.jumprelu_init_l0 = self.jumprelu_target_l0;
                        config.jumprelu_l0_to_encoder = self.jumprelu_target_l0.is_some();
                    }
                    if g.family == Family::Panneal {
                        config.p_anneal = Some(PAnneal {
                            p_end: self.panneal_p_end,
                            ..PAnneal::default()
                        });
                    }
                    g.family.apply_training_options(&mut config, d_sae);
                    let sae = Sae::init(
                        SaeConfig::new(architecture, d_in, d_sae),
                        config.seed,
                        device,
                    );
                    let trainer = DictTrainer::new(sae, config)
                        .map_err(|e| SweepError::Config(e.to_string()))?;
                    out.push(SweepMember {
                        name: Self::run_name(g.family, d_sae, value),
                        trainer,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// What a trained member is: its family, size and sparsity value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The run (its directory).
    pub name: String,
    /// Architecture family.
    pub family: Family,
    /// Number of features.
    pub d_sae: usize,
    /// `l1`, `k` or `l0`.
    pub sparsity_kind: String,
    /// The coefficient, or k.
    pub sparsity: f64,
    /// Steps it was trained for.
    pub steps: usize,
}

impl RunSpec {
    /// The spec of a sweep member (read from its architecture and config,
    /// so a resumed sweep needs nothing else).
    pub fn of(member: &SweepMember) -> RunSpec {
        let arch = &member.trainer.dict.config.architecture;
        let family = Family::of(arch, &member.trainer.config);
        let sparsity = match arch {
            Architecture::TopK { k } | Architecture::BatchTopK { k } => *k as f64,
            _ => member.trainer.config.sparsity_coefficient,
        };
        RunSpec {
            name: member.name.clone(),
            family,
            d_sae: member.trainer.dict.config.d_sae,
            sparsity_kind: family.sparsity_kind().into(),
            sparsity,
            steps: member.trainer.config.steps,
        }
    }

    /// `L1 3`, `k 16`, `L0 2`: the legend of a chart line.
    pub fn sparsity_label(&self) -> String {
        match self.sparsity_kind.as_str() {
            "k" => format!("k {}", self.sparsity),
            kind => format!("{} {}", kind.to_uppercase(), self.sparsity),
        }
    }
}
