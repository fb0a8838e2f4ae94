//! [`StoreError`]: everything that can go wrong writing or reading a store.

use std::path::PathBuf;

/// An error of the activation store. Every variant names the file, row,
/// column or setting at fault and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system error on a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The writer's configuration is unusable.
    #[error("store config: {0}")]
    Config(String),
    /// Row-major values that do not make whole rows of the width given.
    #[error("in-memory activations: {values} values do not make whole rows of width {d_in}")]
    RaggedRows {
        /// How many values there are.
        values: usize,
        /// The row width (0 is refused too).
        d_in: usize,
    },
    /// The directory already holds a store (or the shards of an unfinished one).
    #[error(
        "{dir} already holds {what}; pass `overwrite: true` to replace it, or choose another directory"
    )]
    AlreadyExists {
        /// The directory.
        dir: PathBuf,
        /// What was found there.
        what: String,
    },
    /// The store directory does not exist.
    #[error("{dir}: the activation store directory does not exist")]
    MissingDir {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory has no `manifest.json`: not a store, or a store whose writer never finished.
    #[error(
        "{dir} is not an activation store: it has no manifest.json (a store is complete only once its writer's finish() returns)"
    )]
    NotAStore {
        /// The directory.
        dir: PathBuf,
    },
    /// The manifest cannot be read or contradicts itself.
    #[error("{path}: {message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A shard listed in the manifest is not there.
    #[error("{path}: shard listed in the manifest is missing")]
    MissingShard {
        /// The shard file.
        path: PathBuf,
    },
    /// A shard file does not have the length the manifest records.
    #[error("{path}: shard is {found} bytes long but the manifest records {expected} bytes ({})", if found < expected { "truncated" } else { "extra bytes at the end" })]
    ShardSize {
        /// The shard file.
        path: PathBuf,
        /// Length recorded in the manifest.
        expected: u64,
        /// Length on disk.
        found: u64,
    },
    /// A shard's tensors are not what the manifest describes.
    #[error("{path}: {message}")]
    ShardLayout {
        /// The shard file.
        path: PathBuf,
        /// What differs (tensor, shape or dtype found and expected).
        message: String,
    },
    /// A shard's bytes do not hash to the manifest's checksum.
    #[error(
        "{path}: checksum mismatch: the file hashes to xxh64 {found} but the manifest records {expected}; the shard is corrupt or was replaced"
    )]
    Checksum {
        /// The shard file.
        path: PathBuf,
        /// Checksum in the manifest.
        expected: String,
        /// Checksum of the file.
        found: String,
    },
    /// A NaN or infinite activation in a shard on disk.
    #[error(
        "{path}: row {row_in_shard} (row {row} of the store), column {column}: activation {value} is not finite"
    )]
    NonFiniteInShard {
        /// The shard file.
        path: PathBuf,
        /// Row within the shard, from 0.
        row_in_shard: u64,
        /// Row within the whole store, from 0.
        row: u64,
        /// Column, from 0.
        column: usize,
        /// The value found.
        value: f32,
    },
    /// A NaN or infinite value handed to the writer.
    #[error(
        "row {row} of the store (row {row_in_call} of this call), column {column}: activation {value} is not finite; nothing of this call was written"
    )]
    NonFiniteInput {
        /// Row the value would have had in the store.
        row: u64,
        /// Row within the slice passed to the call.
        row_in_call: usize,
        /// Column.
        column: usize,
        /// The value.
        value: f32,
    },
    /// A finite value that the store's dtype cannot hold (it would become infinite).
    #[error(
        "row {row} of the store (row {row_in_call} of this call), column {column}: activation {value} overflows {dtype} (largest finite magnitude {max}); store f32 or bf16, or scale the activations; nothing of this call was written"
    )]
    Overflow {
        /// Row the value would have had in the store.
        row: u64,
        /// Row within the slice passed to the call.
        row_in_call: usize,
        /// Column.
        column: usize,
        /// The value.
        value: f32,
        /// The store's dtype.
        dtype: crate::Dtype,
        /// Largest finite magnitude of that dtype.
        max: f32,
    },
    /// A slice of values that is not a whole number of rows.
    #[error("{what}: {values} values do not make whole rows of {per_row} values each")]
    RowLength {
        /// What was passed (activations or a named column).
        what: String,
        /// Number of values passed.
        values: usize,
        /// Values per row.
        per_row: usize,
    },
    /// Extra columns passed to the writer that do not match its configuration.
    #[error("extra column `{name}`: {message}")]
    Column {
        /// The column.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The memory ceiling cannot hold the reader's two windows.
    #[error(
        "{path}: this shard decodes to {shard_bytes} bytes of f32 (plus its shuffle order), but the reader keeps two windows (the one being read and the next one loading) under memory_ceiling_bytes = {ceiling}, so each window gets {window_budget} bytes; raise the ceiling to at least {needed} bytes or rewrite the store with at most {max_rows_per_shard} rows per shard"
    )]
    CeilingTooSmall {
        /// The largest shard.
        path: PathBuf,
        /// Bytes one window needs for that shard.
        shard_bytes: u64,
        /// The ceiling given.
        ceiling: u64,
        /// Half the ceiling.
        window_budget: u64,
        /// The smallest ceiling that works.
        needed: u64,
        /// The most rows per shard the given ceiling allows.
        max_rows_per_shard: u64,
    },
    /// A reader position that does not fit this store or reader configuration.
    #[error("reader position: {0}")]
    Position(String),
    /// The activation source being drained into a store failed.
    #[error("activation source: {0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// The background thread that loads windows could not be started.
    #[error("cannot start the reader's background loader thread: {0}")]
    Thread(std::io::Error),
    /// The background thread that loads windows stopped without an answer.
    #[error(
        "the reader's background loader stopped unexpectedly (it panicked); see the message printed above"
    )]
    LoaderStopped,
}

impl StoreError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
