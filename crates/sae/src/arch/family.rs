//! [`Family`]: the architecture names users type (`--arch`, `--archs`) and
//! that saved runs carry.

use super::Architecture;
use crate::train::TrainConfig;

/// An architecture family, by the name users type. p-annealing is the
/// standard SAE with its Lp exponent annealed, and Matryoshka a BatchTopK
/// SAE trained on nested prefixes, so each is a family of its own here
/// while [`Architecture`] counts it as a training option
/// ([`crate::train::PAnneal`], [`TrainConfig::matryoshka_widths`]).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// ReLU SAE with an L1 penalty.
    Standard,
    /// The standard SAE with p annealed from 1 towards `p_end`.
    Panneal,
    /// Gated SAE, L1 on the gate.
    Gated,
    /// TopK SAE.
    Topk,
    /// BatchTopK SAE.
    Batchtopk,
    /// JumpReLU SAE, L0 penalty.
    Jumprelu,
    /// Matryoshka BatchTopK SAE: BatchTopK whose nested prefixes each
    /// reconstruct on their own.
    Matryoshka,
}

/// A name that is not a [`Family`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown architecture {name:?}; expected one of {expected}")]
pub struct UnknownFamily {
    /// The name given.
    pub name: String,
    /// The accepted names, comma-separated.
    pub expected: String,
}

impl Family {
    /// Every family, in table order.
    pub const ALL: [Family; 7] = [
        Family::Standard,
        Family::Panneal,
        Family::Gated,
        Family::Topk,
        Family::Batchtopk,
        Family::Jumprelu,
        Family::Matryoshka,
    ];

    /// The name on the command line and in run names.
    pub fn name(self) -> &'static str {
        match self {
            Family::Standard => "standard",
            Family::Panneal => "panneal",
            Family::Gated => "gated",
            Family::Topk => "topk",
            Family::Batchtopk => "batchtopk",
            Family::Jumprelu => "jumprelu",
            Family::Matryoshka => "matryoshka",
        }
    }

    /// What the family's sparsity value is: `l1` (an L1 or Lp
    /// coefficient), `k` (active features per row) or `l0` (an L0
    /// coefficient).
    pub fn sparsity_kind(self) -> &'static str {
        match self {
            Family::Standard | Family::Panneal | Family::Gated => "l1",
            Family::Topk | Family::Batchtopk | Family::Matryoshka => "k",
            Family::Jumprelu => "l0",
        }
    }

    /// Whether the sparsity value is a count (k) rather than a coefficient.
    pub fn uses_k(self) -> bool {
        self.sparsity_kind() == "k"
    }

    /// The architecture of this family with `k` active features
    /// (TopK/BatchTopK/Matryoshka) and the JumpReLU `bandwidth`; the other
    /// families ignore both.
    pub fn architecture(self, k: usize, bandwidth: f64) -> Architecture {
        match self {
            Family::Standard | Family::Panneal => Architecture::Standard,
            Family::Gated => Architecture::Gated,
            Family::Topk => Architecture::TopK { k },
            Family::Batchtopk | Family::Matryoshka => Architecture::BatchTopK { k },
            Family::Jumprelu => Architecture::JumpRelu { bandwidth },
        }
    }

    /// The training options that make this family out of its
    /// [`Self::architecture`] for a dictionary of `d_sae` features: p-annealing's
    /// defaults for [`Family::Panneal`], the default nested widths
    /// ([`TrainConfig::default_matryoshka_widths`]) for
    /// [`Family::Matryoshka`]; nothing for the others.
    pub fn apply_training_options(self, training: &mut TrainConfig, d_sae: usize) {
        match self {
            Family::Panneal => {
                training.p_anneal.get_or_insert_with(Default::default);
            }
            Family::Matryoshka => {
                training
                    .matryoshka_widths
                    .get_or_insert_with(|| TrainConfig::default_matryoshka_widths(d_sae));
            }
            _ => {}
        }
    }

    /// The family of a trained dictionary, from its architecture and
    /// training config.
    pub fn of(architecture: &Architecture, training: &TrainConfig) -> Family {
        match architecture {
            Architecture::Standard if training.p_anneal.is_some() => Family::Panneal,
            Architecture::Standard => Family::Standard,
            Architecture::Gated => Family::Gated,
            Architecture::TopK { .. } => Family::Topk,
            Architecture::BatchTopK { .. } if training.matryoshka_widths.is_some() => {
                Family::Matryoshka
            }
            Architecture::BatchTopK { .. } => Family::Batchtopk,
            Architecture::JumpRelu { .. } => Family::Jumprelu,
        }
    }

    /// Parses one of `families` (a command line that accepts only some):
    /// a name outside them is an error listing them.
    pub fn parse_among(s: &str, families: &[Family]) -> Result<Family, UnknownFamily> {
        let wanted = s.trim().to_ascii_lowercase();
        families
            .iter()
            .copied()
            .find(|f| f.name() == wanted)
            .ok_or_else(|| UnknownFamily {
                name: s.to_string(),
                expected: families
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl std::str::FromStr for Family {
    type Err = UnknownFamily;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::parse_among(s, &Family::ALL)
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_parse_display_and_serde() {
        for f in Family::ALL {
            assert_eq!(f.to_string().parse::<Family>().unwrap(), f);
            assert_eq!(f.to_string().to_uppercase().parse::<Family>().unwrap(), f);
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.name())
            );
            let arch = f.architecture(8, 0.001);
            let mut training = TrainConfig::for_architecture(&arch, 64, 100);
            f.apply_training_options(&mut training, 64);
            assert_eq!(Family::of(&arch, &training), f);
        }
        let e = "relu".parse::<Family>().unwrap_err();
        assert!(
            e.to_string().contains("standard, panneal, gated, topk"),
            "{e}"
        );
        let e = Family::parse_among("gated", &[Family::Standard, Family::Topk]).unwrap_err();
        assert!(
            e.to_string().ends_with("expected one of standard, topk"),
            "{e}"
        );
    }
}
