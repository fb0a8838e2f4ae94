//! Files written atomically: into a temporary file beside the target
//! (`.<name>.tmp-<pid>`), synced, renamed into place, and the directory
//! synced so the rename survives a crash. A reader never sees half a file;
//! a failed or dropped write leaves the old file (or none) and removes its
//! temporary file; a killed one leaves a temporary file that
//! [`temp_file_owner`] recognises for clean-up.
//!
//! Errors are the operating system's (or say what the path is); they do
//! not repeat the path, which the caller's error names.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written; [`AtomicFile::commit`] moves it into place, and
/// dropping it uncommitted removes the temporary file.
pub struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path`. A `path` that exists and is not a regular file
    /// (a symlink, a device such as `/dev/null`, a FIFO, a directory) is
    /// refused ([`check_replaceable`]); other errors name the path.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        check_replaceable(path)?;
        let temp = temp_path(path);
        let file = File::create(&temp)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            temp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The writer (buffered).
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.out
            .as_mut()
            .expect("the writer is taken only by commit, which consumes the file")
    }

    /// Flushes, syncs and renames the file into place, then syncs the
    /// directory.
    pub fn commit(mut self) -> io::Result<()> {
        let out = self
            .out
            .take()
            .expect("the writer is taken only here, once");
        let result = (|| {
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            // A kill here leaves the complete temporary file and the old output.
            crate::fault::point("atomic.commit");
            std::fs::rename(&self.temp, &self.path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&self.temp);
            return Err(e);
        }
        sync_dir(parent_dir(&self.path))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically with what `fill` writes; on error `path` is
/// untouched and the temporary file removed.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    fill(file.writer())?;
    file.commit()
}

/// The temporary file an atomic write of `path` by this process uses.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

/// If `name` is the temporary file of an atomic write (`.<file>.tmp-<pid>`),
/// the file it was for and the process that wrote it.
pub fn temp_file_owner(name: &str) -> Option<(&str, u32)> {
    let (head, pid) = name.rsplit_once(".tmp-")?;
    let target = head.strip_prefix('.')?;
    let pid = pid.parse().ok()?;
    (!target.is_empty()).then_some((target, pid))
}

/// Whether `name` is the temporary file of an atomic write by a process
/// other than this one that is no longer running: safe to remove when a
/// killed job starts again. A writer that is still alive (another process
/// on the same output) keeps its file; where liveness cannot be checked
/// (not Linux), the caller's own start is taken as proof that no one else
/// writes there.
pub fn is_stale_temp_file(name: &str) -> bool {
    match temp_file_owner(name) {
        Some((_, pid)) if pid != std::process::id() => {
            !(cfg!(target_os = "linux") && Path::new(&format!("/proc/{pid}")).exists())
        }
        _ => false,
    }
}

/// Refuses an output path that exists and is not a regular file: the
/// atomic rename would replace a symlink, a character device (`/dev/null`),
/// a FIFO or a socket by a regular file (and fail on a directory). Such
/// outputs are refused rather than written through as a stream, so every
/// file kibitzer writes is complete or absent. A missing path or a regular
/// file is fine. The error says what the path is.
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
        special_kind(&kind)
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "exists and is {what}; kibitzer writes outputs by atomic rename and will not replace it with a regular file: give a path to a regular file or a new name"
        ),
    ))
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

/// fsyncs a directory so that renames and removals in it are durable (a
/// no-op where directories cannot be opened).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all())?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
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
        assert!(temp_path(&path).exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Readable by others like any new file (umasks rarely hide read).
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o644, 0o644, "mode {mode:o}");
        }
        write(&path, b"again").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"again");

        let other = dir.path().join("b.txt");
        let mut dropped = AtomicFile::create(&other).unwrap();
        dropped.write_all(b"x").unwrap();
        drop(dropped);
        assert!(!other.exists());
        let failed = write_with(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("the source broke"))
        })
        .unwrap_err()
        .to_string();
        assert!(failed.contains("the source broke"), "{failed}");
        assert_eq!(std::fs::read(&path).unwrap(), b"again");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_files_are_recognised() {
        let temp = temp_path(Path::new("runs/checkpoint.json"));
        let name = temp.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            temp_file_owner(name),
            Some(("checkpoint.json", std::process::id()))
        );
        assert_eq!(temp_file_owner(".notes.tmp-abc"), None);
        assert_eq!(temp_file_owner("notes.tmp-12"), None);
        assert!(!is_stale_temp_file(name), "this process is alive");
        assert!(is_stale_temp_file(".checkpoint.json.tmp-999999999"));
        assert!(!is_stale_temp_file(".notes.tmp-abc"));
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
            (Path::new("/dev/null"), "character device"),
        ] {
            let err = check_replaceable(path).unwrap_err().to_string();
            assert!(
                err.starts_with("exists and is") && err.contains(kind),
                "{err}"
            );
            assert!(write(path, b"x").is_err());
        }
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
