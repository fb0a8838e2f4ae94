//! The errors of kibitzer-xcoder: one enum, each variant naming the file,
//! field or shape at fault and what was expected.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum XcoderError {
    /// A configuration value is out of range or inconsistent.
    #[error("{what}: {message}")]
    Config {
        /// The setting (a field name, or the object it belongs to).
        what: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A tensor or a batch has the wrong shape.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The expected shape.
        expected: String,
        /// The shape found.
        found: String,
    },
    /// A file could not be read or written, or holds what it should not:
    /// its path, then the cause.
    #[error(transparent)]
    File(#[from] kibitzer_io::FileError),
    /// A training config value is out of range (the field named).
    #[error(transparent)]
    TrainConfig(#[from] kibitzer_sae::ConfigError),
    /// Training failed (source exhausted, divergence, checkpoint I/O, ...).
    #[error(transparent)]
    Train(#[from] kibitzer_sae::train::TrainError),
    /// Reading or writing an SAELens directory failed.
    #[error(transparent)]
    SaeLens(#[from] kibitzer_sae::saelens::SaeLensError),
    /// The activation store failed.
    #[error(transparent)]
    Store(#[from] kibitzer_store::StoreError),
    /// Computing metrics failed.
    #[error(transparent)]
    Metrics(#[from] kibitzer_sae::metrics::MetricsError),
}

impl XcoderError {
    /// A [`XcoderError::Config`] error.
    pub fn config(what: impl Into<String>, message: impl Into<String>) -> Self {
        XcoderError::Config {
            what: what.into(),
            message: message.into(),
        }
    }

    /// A [`XcoderError::Shape`] error.
    pub fn shape(
        what: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        XcoderError::Shape {
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }
}
