//! # kibitzer-io
//!
//! What every kibitzer crate that writes files shares, in one place:
//!
//! - [`atomic`]: a file is written to a temporary file beside it, synced,
//!   renamed into place and the directory synced, so a reader never sees
//!   half a file and a crash leaves the old one (or none). A path that
//!   exists and is not a regular file (a symbolic link, `/dev/null`, a
//!   FIFO, a directory) is refused rather than replaced.
//! - [`file_error`]: [`FileError`], the one error for a file that could
//!   not be read, written or understood: its path and its cause, kept whole.
//! - [`fault`]: named kill points for the tests of interrupted jobs
//!   (`KIBITZER_FAULT=<point>:<n>`).
//! - [`progress`]: the progress bar of every long job.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("report.json");
//! kibitzer_io::atomic::write(&path, b"{}")?;
//! assert_eq!(std::fs::read(&path)?, b"{}");
//! assert!(kibitzer_io::atomic::write("/dev/null".as_ref(), b"x").is_err());
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

pub mod atomic;
pub mod fault;
pub mod file_error;
pub mod progress;

pub use file_error::{FileError, FileResultExt};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
