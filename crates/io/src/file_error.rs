//! One error for "this file could not be read, written or understood".
//!
//! Every kibitzer error type that touches files holds a [`FileError`] as its
//! `File` variant (`#[error(transparent)] File(#[from] FileError)`), so a
//! file failure reads the same everywhere: the path, then the cause. The
//! cause is kept whole (an [`std::io::Error`], a JSON error, another crate's
//! error, or a message), so [`std::error::Error::source`] walks the chain.
//!
//! ```
//! use kibitzer_io::file_error::{FileError, FileResultExt};
//! let path = std::path::Path::new("/no/such/run.json");
//! let err = std::fs::read(path).at_file(path).unwrap_err();
//! assert_eq!(err.path(), path);
//! assert!(err.to_string().starts_with("/no/such/run.json: "));
//! assert!(err.io_kind() == Some(std::io::ErrorKind::NotFound));
//! let err = FileError::new(path, "field `steps` must be positive");
//! assert_eq!(err.to_string(), "/no/such/run.json: field `steps` must be positive");
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

/// Any cause: an error of any type, or a message (`String`/`&str` convert).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A file (or directory) and what went wrong with it.
#[derive(Debug)]
pub struct FileError {
    path: PathBuf,
    source: BoxError,
}

impl FileError {
    /// `path` failed because of `cause` (an error, or a message saying what
    /// was expected and what was found).
    pub fn new(path: impl Into<PathBuf>, cause: impl Into<BoxError>) -> FileError {
        FileError {
            path: path.into(),
            source: cause.into(),
        }
    }

    /// The file at fault.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cause.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// The kind of the operating-system error, when the cause is one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.source
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// `.at_file(path)` on any result whose error can be a cause: the error
/// becomes a [`FileError`] naming `path`, which `?` then turns into the
/// caller's own error type.
pub trait FileResultExt<T> {
    /// The error, if any, as a failure of `path`.
    fn at_file(self, path: &Path) -> Result<T, FileError>;
}

impl<T, E: Into<BoxError>> FileResultExt<T> for Result<T, E> {
    fn at_file(self, path: &Path) -> Result<T, FileError> {
        self.map_err(|e| FileError::new(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_cause_is_kept_for_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let err = FileError::new("/a/b", io);
        let source = err.source().expect("a file error has a cause");
        assert_eq!(source.to_string(), "denied");
        assert_eq!(err.io_kind(), Some(std::io::ErrorKind::PermissionDenied));
        assert_eq!(FileError::new("/a", "bad").io_kind(), None);
    }
}
