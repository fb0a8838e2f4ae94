//! Atomic file writes.

use std::path::Path;

use crate::error::{Result, StoriesError};

/// Writes `bytes` to `path` atomically (kibitzer-io's: a temporary file
/// in the same directory, fsync, rename, fsync of the directory). A reader
/// sees the old file or the new one, never a part; a symlink or device at
/// `path` is refused, not replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    kibitzer_io::atomic::write(path, bytes).map_err(|source| StoriesError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/a.json");
        let err = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(err.contains("no/such/dir/a.json"), "{err}");
    }
}
