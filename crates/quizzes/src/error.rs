//! [`QuizError`]: everything that can go wrong building, parsing or reading quizzes.

use std::path::PathBuf;

/// An error of the quiz world. Every variant says what was expected; file
/// errors name the file and the line (1-based; line 1 is the header).
#[derive(Debug, thiserror::Error)]
pub enum QuizError {
    /// A grid size outside the supported range.
    #[error("grid size {size} is not supported: expected {min}..={max} (reference 004 uses 10)")]
    GridSize {
        /// The size asked for.
        size: usize,
        /// Smallest supported size.
        min: usize,
        /// Largest supported size.
        max: usize,
    },
    /// A generator was asked for no task at all.
    #[error("the task list is empty: give at least one of {valid}")]
    EmptyTaskList {
        /// The valid task names, comma-separated.
        valid: String,
    },
    /// A task name that is not one of the eight.
    #[error("unknown task `{name}`: expected one of {valid}")]
    UnknownTask {
        /// The name given.
        name: String,
        /// The valid task names, comma-separated.
        valid: String,
    },
    /// A grid built from cells that do not make one (wrong length, colour out of range).
    #[error("bad grid: {0}")]
    Grid(String),
    /// A token sequence that is not a quiz (length, BOS, a marker or a colour).
    #[error("bad token sequence: {0}")]
    Tokens(String),
    /// Grids that are not an instance of the task: its parameters cannot be
    /// read from A and f(A), or the grids break one of its rules.
    #[error("not a `{task}` quiz: {reason}")]
    NotAnInstance {
        /// The task's name.
        task: &'static str,
        /// What does not fit.
        reason: String,
    },
    /// A header or a quiz list that cannot be written as given.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file to be written.
        path: PathBuf,
        /// What is inconsistent.
        message: String,
    },
    /// A line of a quiz file that is not what the format expects.
    #[error("{path}:{line}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The line, from 1 (the header).
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// An operating-system error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl QuizError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> QuizError {
        QuizError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn file(
        path: &std::path::Path,
        line: usize,
        message: impl Into<String>,
    ) -> QuizError {
        QuizError::File {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// A rule of the quiz world that a scene or a task's parameters break
/// (three rectangles, at least 3x3, no overlap, distinct colours, and each
/// task's own), saying which and by how much.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

impl From<&str> for Violation {
    fn from(message: &str) -> Violation {
        Violation(message.to_string())
    }
}

impl From<String> for Violation {
    fn from(message: String) -> Violation {
        Violation(message)
    }
}
