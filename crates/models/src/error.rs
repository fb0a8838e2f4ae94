//! [`ModelError`]: everything that can go wrong building, loading, saving or
//! training a model.

use std::path::PathBuf;

/// An error of kibitzer-models. Every variant names the file, tensor, field
/// or step at fault and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An operating-system error on a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file that is not valid safetensors or JSON.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A weight file lacks a tensor the config needs.
    #[error("{path}: missing tensor {name} (expected shape {expected:?}){hint}")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Its expected shape.
        expected: Vec<usize>,
        /// A hint at the cause (e.g. the config has more layers than the file).
        hint: String,
    },
    /// A tensor of the wrong shape.
    #[error(
        "{path}: tensor {name} has shape {found:?}, expected {expected:?} for this config{hint}"
    )]
    TensorShape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
        /// A hint at the cause.
        hint: String,
    },
    /// A tensor the config has no place for (the file is of another model).
    #[error("{path}: unexpected tensor {name}: {hint}")]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// Why it does not fit.
        hint: String,
    },
    /// A config that cannot describe a model.
    #[error("config: {0}")]
    Config(String),
    /// Bad input data (a token outside the vocabulary, a sequence too long...).
    #[error("input: {0}")]
    Input(String),
    /// Training produced a non-finite loss or gradient; nothing was saved.
    #[error(
        "step {step}: {what} is not finite; the last checkpoint is untouched (lower the learning rate or enable gradient clipping)"
    )]
    NonFinite {
        /// The step.
        step: u64,
        /// What was not finite.
        what: String,
    },
    /// A checkpoint that does not match the run it should resume.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What does not match.
        message: String,
    },
    /// The hook machinery failed.
    #[error(transparent)]
    Hook(#[from] kibitzer_hooks::HookError),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ModelError {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> ModelError {
        ModelError::Format {
            path: path.into(),
            message: message.into(),
        }
    }
}
