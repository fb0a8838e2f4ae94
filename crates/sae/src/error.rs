//! [`ConfigError`]: a dictionary or training configuration that training
//! cannot use, naming the field at fault.

/// A value of an [`SaeConfig`](crate::SaeConfig) or a
/// [`TrainConfig`](crate::train::TrainConfig) that training cannot use.
/// Every variant names the field, so a command line can point at the flag
/// or config key that set it ([`ConfigError::field`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A field of the dictionary's shape or architecture is out of range.
    #[error("SAE config: `{field}` {reason}")]
    Sae {
        /// The field (`d_in`, `d_sae`, `d_out`, `k`, `bandwidth`).
        field: &'static str,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A field of the training config is out of range.
    #[error("training config: `{field}` {reason}")]
    Training {
        /// The field (`lr`, `batch_size`, `p_anneal.start_fraction`, ...).
        field: &'static str,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// Weights that do not fit the configuration: a checkpoint or file of
    /// other shapes, or without a tensor the architecture needs.
    #[error("SAE parameters: {reason}")]
    Params {
        /// What does not fit, and what was expected.
        reason: String,
    },
    /// A training setting that the dictionary's architecture does not use.
    #[error("training config: `{field}` applies to {applies_to}, not {architecture}")]
    NotForArchitecture {
        /// The setting.
        field: &'static str,
        /// The architectures it applies to.
        applies_to: &'static str,
        /// The dictionary's architecture ([`Architecture::name`](crate::Architecture::name)).
        architecture: &'static str,
    },
}

impl ConfigError {
    /// The field at fault, as spelled in the config.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Sae { field, .. }
            | ConfigError::Training { field, .. }
            | ConfigError::NotForArchitecture { field, .. } => field,
            ConfigError::Params { .. } => "parameters",
        }
    }
}
