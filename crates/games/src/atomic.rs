//! Files written atomically: into a temporary file in the target's
//! directory, synced, then renamed into place, so a reader never sees half
//! a file and a crash leaves the old file (or none).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written; [`AtomicFile::commit`] moves it into place, and
/// dropping it uncommitted leaves nothing behind.
pub struct AtomicFile {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
    out: BufWriter<File>,
}

impl AtomicFile {
    /// Starts writing `path`. A `path` that exists and is not a regular file
    /// (a symlink, a device such as `/dev/null`, a FIFO, a directory) is
    /// refused: the rename would replace it with a regular file.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        check_replaceable(path)?;
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".kibitzer-").suffix(".tmp");
        // A temporary file is private (0600) by default; the file it becomes
        // gets the permissions of any new file (0666 less the umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder.tempfile_in(&dir)?;
        let out = BufWriter::new(temp.as_file().try_clone()?);
        Ok(AtomicFile {
            path: path.to_path_buf(),
            temp,
            out,
        })
    }

    /// The writer.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.out
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(self) -> io::Result<()> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        // A kill here leaves the complete temporary file and the old output.
        crate::fault::point("atomic.commit");
        self.temp.persist(&self.path).map_err(|e| e.error)?;
        // The rename is durable only once the directory is synced.
        #[cfg(unix)]
        {
            let dir = match self.path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Refuses an output path that exists and is not a regular file (the same
/// rule as `kibitzer_store::check_replaceable`); the error names the path.
pub fn check_replaceable(path: &Path) -> io::Result<()> {
    let kind = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(meta) => meta.file_type(),
    };
    if kind.is_file() {
        return Ok(());
    }
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a device, FIFO or socket"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} exists and is {what}; outputs are written by atomic rename and it will not be replaced by a regular file: give a path to a regular file or a new name",
            path.display()
        ),
    ))
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_writes_and_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"hello").unwrap();
        assert!(!path.exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Readable by others like any new file (umasks rarely hide read).
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o644, 0o644, "mode {mode:o}");
        }

        let other = dir.path().join("b.txt");
        let mut dropped = AtomicFile::create(&other).unwrap();
        dropped.write_all(b"x").unwrap();
        drop(dropped);
        assert!(!other.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_to_replace_symlinks_devices_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.txt");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for (path, kind) in [
            (link.as_path(), "symbolic link"),
            (dir.path(), "directory"),
            (Path::new("/dev/null"), "device"),
        ] {
            let err = check_replaceable(path).unwrap_err().to_string();
            assert!(
                err.contains(path.to_str().unwrap()) && err.contains(kind),
                "{err}"
            );
        }
        assert!(AtomicFile::create(&link).is_err());
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
