//! # kibitzer-store
//!
//! Activations on disk for dictionary learning, with no dependency on a
//! tensor library: rows of `d_in` floats in safetensors shards (f32, f16 or
//! bf16, plus optional per-row columns such as a position index) under a
//! JSON manifest, read back in seeded, resumable shuffled batches under a
//! memory ceiling, so data larger than RAM trains and a resumed run sees the
//! same batches.
//!
//! ```
//! use kibitzer_store::{ActivationSource, ReaderConfig, Store, StoreConfig, StoreWriter};
//! let dir = tempfile::tempdir()?;
//! let mut writer = StoreWriter::create(dir.path(), StoreConfig { rows_per_shard: 2, ..StoreConfig::new(3) })?;
//! writer.push_rows(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])?;
//! writer.finish()?;
//! let store = Store::open(dir.path())?;
//! let mut reader = store.reader(ReaderConfig { cycle: false, ..ReaderConfig::default() })?;
//! let mut batch = Vec::new();
//! assert_eq!(reader.next_batch(10, &mut batch)?, 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See the crate's README for the file format and how to read it from Python.
#![warn(missing_docs)]

mod error;
mod format;
pub mod memory;
mod reader;
mod shuffle;
mod source;
mod store;
mod writer;
mod xxh64;

pub use error::StoreError;
pub use format::{
    ACTIVATIONS, ColumnData, ColumnDtype, ColumnSpec, ColumnValues, Dtype, FORMAT, MANIFEST,
    Manifest, ShardInfo, VERSION, check_replaceable, shard_file_name,
};
/// Fault points for the tests of interrupted jobs (kibitzer-io's).
pub use kibitzer_io::fault;
pub use memory::MemoryError;
pub use reader::{PositionCheck, ReaderConfig, ReaderPosition, ShuffledReader};
pub use shuffle::WindowPlan;
pub use source::{ActivationSource, InMemorySource};
pub use store::{ShardData, Store};
pub use writer::{StoreConfig, StoreWriter, atomic_write, write_from_source};
pub use xxh64::Xxh64;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
