//! The on-disk format: the manifest, the dtypes, and shard files (write,
//! validate, decode).
//!
//! ```text
//! DIR/manifest.json             format, version, d_in, dtype, rows, extra columns,
//!                               shards (file, rows, bytes, xxh64), free-form metadata
//! DIR/shard_00000.safetensors   "activations" [rows, d_in] in f32, f16 or bf16,
//! DIR/shard_00001.safetensors   plus one tensor [rows, ...] per extra column
//! ```
//!
//! Shards are plain safetensors files (`safetensors.numpy.load_file` opens
//! them); tensors are laid out in decreasing alignment so every tensor starts
//! at a multiple of its element size. The manifest is written last: a
//! directory without one is not a store.

use crate::error::StoreError;
use crate::xxh64::{Xxh64, to_hex};
use safetensors::tensor::TensorInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Name of the manifest file in a store directory.
pub const MANIFEST: &str = "manifest.json";
/// The manifest's `format` field.
pub const FORMAT: &str = "kibitzer-activations";
/// The manifest's `version` field written by this crate (and the only one it reads).
pub const VERSION: u32 = 1;
/// Name of the activation tensor in every shard.
pub const ACTIVATIONS: &str = "activations";

/// Bytes decoded per read call: large enough for full-speed sequential reads,
/// small enough to stay in the core's cache while it is hashed, converted
/// and checked.
const CHUNK_BYTES: usize = 256 << 10;
/// safetensors refuses larger headers; so do we, before allocating one.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// File name of shard `index`.
pub fn shard_file_name(index: usize) -> String {
    format!("shard_{index:05}.safetensors")
}

/// Precision of the activations on disk (rows are always read back as f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit float: exact.
    F32,
    /// IEEE half precision: 11 significant bits, largest finite magnitude 65504.
    F16,
    /// bfloat16: 8 significant bits, the range of f32.
    Bf16,
}

impl Dtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// The dtype as safetensors names it.
    pub fn safetensors(self) -> safetensors::Dtype {
        match self {
            Dtype::F32 => safetensors::Dtype::F32,
            Dtype::F16 => safetensors::Dtype::F16,
            Dtype::Bf16 => safetensors::Dtype::BF16,
        }
    }

    /// Largest finite magnitude.
    pub fn max(self) -> f32 {
        match self {
            Dtype::F32 => f32::MAX,
            Dtype::F16 => half::f16::MAX.to_f32(),
            Dtype::Bf16 => half::bf16::MAX.to_f32(),
        }
    }

    /// Whether a finite `value` stays finite once rounded to this dtype.
    pub(crate) fn represents(self, value: f32) -> bool {
        match self {
            Dtype::F32 => true,
            Dtype::F16 => half::f16::from_f32(value).is_finite(),
            Dtype::Bf16 => half::bf16::from_f32(value).is_finite(),
        }
    }

    /// Appends `values` in this dtype, little-endian.
    pub(crate) fn encode(self, values: &[f32], out: &mut Vec<u8>) {
        out.reserve(values.len() * self.size());
        match self {
            Dtype::F32 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            Dtype::F16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
            Dtype::Bf16 => values
                .iter()
                .for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
        })
    }
}

/// Declares the element types an extra column may have, with the owned
/// ([`ColumnData`]) and borrowed ([`ColumnValues`]) forms of its values.
macro_rules! column_types {
    ($($variant:ident $ty:ty, $st:ident;)*) => {
        /// Element type of an extra per-row column.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum ColumnDtype {
            $(
                #[doc = concat!("`", stringify!($ty), "`")]
                $variant,
            )*
        }

        /// Values of an extra column handed to the writer, borrowed.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum ColumnValues<'a> {
            $(
                #[doc = concat!("`", stringify!($ty), "` values")]
                $variant(&'a [$ty]),
            )*
        }

        /// Values of an extra column read back, owned.
        #[derive(Clone, Debug, PartialEq)]
        pub enum ColumnData {
            $(
                #[doc = concat!("`", stringify!($ty), "` values")]
                $variant(Vec<$ty>),
            )*
        }

        impl ColumnDtype {
            /// Bytes per value.
            pub fn size(self) -> usize {
                match self { $(Self::$variant => size_of::<$ty>(),)* }
            }

            /// The dtype as safetensors names it.
            pub fn safetensors(self) -> safetensors::Dtype {
                match self { $(Self::$variant => safetensors::Dtype::$st,)* }
            }
        }

        impl ColumnValues<'_> {
            /// Element type.
            pub fn dtype(&self) -> ColumnDtype {
                match self { $(Self::$variant(_) => ColumnDtype::$variant,)* }
            }

            /// Number of values.
            pub fn len(&self) -> usize {
                match self { $(Self::$variant(v) => v.len(),)* }
            }

            /// Whether there are no values.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            pub(crate) fn encode(&self, out: &mut Vec<u8>) {
                match self {
                    $(Self::$variant(v) => {
                        out.reserve(v.len() * size_of::<$ty>());
                        v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                    })*
                }
            }
        }

        impl ColumnData {
            /// Element type.
            pub fn dtype(&self) -> ColumnDtype {
                match self { $(Self::$variant(_) => ColumnDtype::$variant,)* }
            }

            /// Number of values.
            pub fn len(&self) -> usize {
                match self { $(Self::$variant(v) => v.len(),)* }
            }

            /// Whether there are no values.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The values, borrowed.
            pub fn as_values(&self) -> ColumnValues<'_> {
                match self { $(Self::$variant(v) => ColumnValues::$variant(v),)* }
            }

            pub(crate) fn empty(dtype: ColumnDtype) -> Self {
                match dtype { $(ColumnDtype::$variant => Self::$variant(Vec::new()),)* }
            }

            /// Appends values decoded from little-endian `bytes` (a whole number of values).
            pub(crate) fn extend_from_le(&mut self, bytes: &[u8]) {
                match self {
                    $(Self::$variant(v) => v.extend(
                        bytes
                            .chunks_exact(size_of::<$ty>())
                            .map(|c| <$ty>::from_le_bytes(c.try_into().expect("chunks_exact yields whole values"))),
                    ),)*
                }
            }

            /// Appends the values of `other` (same dtype).
            pub(crate) fn append(&mut self, other: ColumnData) {
                match (self, other) {
                    $((Self::$variant(a), Self::$variant(b)) => a.extend(b),)*
                    _ => unreachable!("columns of one store share their dtype (checked against the manifest)"),
                }
            }
        }
    };
}

column_types! {
    I64 i64, I64;
    U64 u64, U64;
    I32 i32, I32;
    U32 u32, U32;
    U16 u16, U16;
    U8 u8, U8;
    F64 f64, F64;
    F32 f32, F32;
}

/// An extra per-row tensor stored beside the activations (a position index,
/// a game id, a label...), declared when the store is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Tensor name in every shard (not `activations`, not empty, not starting with `__`).
    pub name: String,
    /// Element type.
    pub dtype: ColumnDtype,
    /// Shape of one row's value: `[]` for a scalar per row (tensor `[rows]`),
    /// `[k]` for k values per row (tensor `[rows, k]`), and so on.
    #[serde(default)]
    pub row_shape: Vec<usize>,
}

impl ColumnSpec {
    /// A column of one scalar per row.
    pub fn scalar(name: impl Into<String>, dtype: ColumnDtype) -> Self {
        Self {
            name: name.into(),
            dtype,
            row_shape: Vec::new(),
        }
    }

    /// Values per row (the product of `row_shape`).
    pub fn values_per_row(&self) -> usize {
        self.row_shape.iter().product()
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name == ACTIVATIONS || self.name.starts_with("__") {
            return Err(format!(
                "extra column name {:?} is reserved or empty (names other than `{ACTIVATIONS}`, not starting with `__`)",
                self.name
            ));
        }
        if self.row_shape.contains(&0) {
            return Err(format!(
                "extra column `{}`: row_shape {:?} has a zero dimension",
                self.name, self.row_shape
            ));
        }
        Ok(())
    }
}

/// One shard as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the store directory.
    pub file: String,
    /// Rows in the shard.
    pub rows: u64,
    /// Length of the file in bytes.
    pub bytes: u64,
    /// XXH64 (seed 0) of the whole file, 16 lowercase hex digits
    /// (Python: `xxhash.xxh64(open(f, "rb").read()).hexdigest()`).
    pub xxh64: String,
}

/// The manifest of a store (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Width of every row.
    pub d_in: usize,
    /// Precision of the activations on disk.
    pub dtype: Dtype,
    /// Total rows.
    pub rows: u64,
    /// Rows per shard the writer used (the last shard may hold fewer).
    pub rows_per_shard: u64,
    /// Extra per-row tensors in every shard.
    #[serde(default)]
    pub extra_columns: Vec<ColumnSpec>,
    /// The shards, in writing order (store order).
    pub shards: Vec<ShardInfo>,
    /// Free-form description written by the caller (model, hook site, dataset...).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl Manifest {
    /// Checks that the manifest is self-consistent, naming the field at fault.
    pub(crate) fn validate(&self, path: &Path) -> Result<(), StoreError> {
        let bad = |message: String| StoreError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        if self.format != FORMAT {
            return Err(bad(format!(
                "`format` is {:?}, expected {FORMAT:?}",
                self.format
            )));
        }
        if self.version != VERSION {
            return Err(bad(format!(
                "`version` is {}, this build of kibitzer-store reads version {VERSION}",
                self.version
            )));
        }
        if self.d_in == 0 {
            return Err(bad("`d_in` is 0; rows must have at least one value".into()));
        }
        let mut names = std::collections::HashSet::new();
        for column in &self.extra_columns {
            column
                .validate()
                .map_err(|m| bad(format!("`extra_columns`: {m}")))?;
            if !names.insert(column.name.as_str()) {
                return Err(bad(format!(
                    "`extra_columns` names `{}` twice",
                    column.name
                )));
            }
        }
        let mut files = std::collections::HashSet::new();
        let mut total = 0u64;
        for (i, shard) in self.shards.iter().enumerate() {
            let plain = !shard.file.is_empty()
                && Path::new(&shard.file)
                    .file_name()
                    .is_some_and(|n| n == shard.file.as_str())
                && shard.file != "."
                && shard.file != "..";
            if !plain {
                return Err(bad(format!(
                    "`shards[{i}].file` {:?} is not a plain file name inside the store",
                    shard.file
                )));
            }
            if !files.insert(shard.file.as_str()) {
                return Err(bad(format!("`shards` lists {} twice", shard.file)));
            }
            if shard.rows == 0 {
                return Err(bad(format!("`shards[{i}]` ({}) has 0 rows", shard.file)));
            }
            if shard.xxh64.len() != 16 || u64::from_str_radix(&shard.xxh64, 16).is_err() {
                return Err(bad(format!(
                    "`shards[{i}].xxh64` {:?} is not 16 hex digits",
                    shard.xxh64
                )));
            }
            total = total.checked_add(shard.rows).ok_or_else(|| {
                bad(format!(
                    "`shards[{i}].rows` {} takes the row count past {}",
                    shard.rows,
                    u64::MAX
                ))
            })?;
        }
        if total != self.rows {
            return Err(bad(format!(
                "the shards hold {total} rows but `rows` is {}",
                self.rows
            )));
        }
        Ok(())
    }

    /// Reads and validates `DIR/manifest.json`.
    pub(crate) fn read(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() && !dir.exists() {
                StoreError::MissingDir {
                    dir: dir.to_path_buf(),
                }
            } else if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotAStore {
                    dir: dir.to_path_buf(),
                }
            } else {
                StoreError::io(&path, e)
            }
        })?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| StoreError::Manifest {
            path: path.clone(),
            message: format!("not a valid manifest: {e}"),
        })?;
        manifest.validate(&path)?;
        Ok(manifest)
    }

    /// Shape of `column` for a shard of `rows` rows.
    fn column_shape(column: &ColumnSpec, rows: usize) -> Vec<usize> {
        std::iter::once(rows)
            .chain(column.row_shape.iter().copied())
            .collect()
    }
}

/// Writes `path` atomically ([`kibitzer_io::atomic::write_with`]): on
/// error the temporary file is removed and `path` is untouched.
pub(crate) fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    kibitzer_io::atomic::write_with(path, fill).map_err(|e| io_error(path, e))
}

/// Refuses an output path that exists and is not a regular file
/// ([`kibitzer_io::atomic::check_replaceable`]): the atomic rename would
/// replace a symlink, a character device (`/dev/null`), a FIFO or a socket
/// by a regular file (and fail on a directory).
pub fn check_replaceable(path: &Path) -> Result<(), StoreError> {
    kibitzer_io::atomic::check_replaceable(path).map_err(|e| io_error(path, e))
}

/// A kibitzer-io error as the store's, which names `path`.
fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::io(path, e)
}

/// fsyncs a directory so that renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    kibitzer_io::atomic::sync_dir(dir).map_err(|e| io_error(dir, e))
}

/// Whether `name` is a file the writer may leave in a store directory: a
/// shard or a temporary file of an interrupted atomic write.
pub(crate) fn is_store_file(name: &str) -> bool {
    let shard = name
        .strip_prefix("shard_")
        .and_then(|r| r.strip_suffix(".safetensors"));
    shard.is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        || (name.starts_with(".shard_") && name.contains(".safetensors.tmp-"))
        || (name.starts_with(&format!(".{MANIFEST}.tmp-")))
}

/// One tensor to be written into a shard.
pub(crate) struct TensorToWrite<'a> {
    pub name: &'a str,
    pub dtype: safetensors::Dtype,
    pub element_size: usize,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

/// Writes a shard file atomically; returns its length and XXH64.
pub(crate) fn write_shard(
    path: &Path,
    mut tensors: Vec<TensorToWrite<'_>>,
) -> Result<(u64, u64), StoreError> {
    // Decreasing element size, so each tensor starts aligned to its own
    // element size (the data section starts at a multiple of 8).
    tensors.sort_by(|a, b| {
        b.element_size
            .cmp(&a.element_size)
            .then((a.name != ACTIVATIONS).cmp(&(b.name != ACTIVATIONS)))
            .then(a.name.cmp(b.name))
    });
    let mut header = BTreeMap::new();
    let mut offset = 0usize;
    for t in &tensors {
        let end = offset + t.data.len();
        header.insert(
            t.name,
            TensorInfo {
                dtype: t.dtype,
                shape: t.shape.clone(),
                data_offsets: (offset, end),
            },
        );
        offset = end;
    }
    let mut header_bytes = serde_json::to_vec(&header).map_err(|e| StoreError::ShardLayout {
        path: path.to_path_buf(),
        message: format!("cannot encode the safetensors header: {e}"),
    })?;
    header_bytes.resize(header_bytes.len().next_multiple_of(8), b' ');
    let prefix = (header_bytes.len() as u64).to_le_bytes();
    let mut hasher = Xxh64::new();
    write_atomically(path, |w| {
        for piece in [&prefix[..], &header_bytes]
            .into_iter()
            .chain(tensors.iter().map(|t| t.data))
        {
            hasher.update(piece);
            w.write_all(piece)?;
        }
        Ok(())
    })?;
    Ok((
        8 + header_bytes.len() as u64 + offset as u64,
        hasher.digest(),
    ))
}

/// A parsed shard header: the tensors in file order and where data starts.
struct ShardHeader {
    /// Bytes before the data section (8-byte length + JSON header).
    data_start: u64,
    /// Tensors sorted by their offset in the data section.
    tensors: Vec<(String, TensorInfo)>,
}

/// Opens a shard listed in the manifest and checks that its length matches.
fn open_shard(path: &Path, info: &ShardInfo) -> Result<File, StoreError> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::MissingShard {
                path: path.to_path_buf(),
            }
        } else {
            StoreError::io(path, e)
        }
    })?;
    let found = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
    if found != info.bytes {
        return Err(StoreError::ShardSize {
            path: path.to_path_buf(),
            expected: info.bytes,
            found,
        });
    }
    Ok(file)
}

/// Reads the header of a shard, feeding its bytes to `hasher`.
fn read_header(
    file: &mut File,
    path: &Path,
    file_len: u64,
    hasher: &mut Xxh64,
) -> Result<ShardHeader, StoreError> {
    let layout = |message: String| StoreError::ShardLayout {
        path: path.to_path_buf(),
        message,
    };
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|e| StoreError::io(path, e))?;
    hasher.update(&prefix);
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > file_len {
        return Err(layout(format!(
            "not a safetensors file: header length {header_len} does not fit in a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| StoreError::io(path, e))?;
    hasher.update(&header);
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| layout(format!("not a safetensors file: bad header: {e}")))?;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let info: TensorInfo = serde_json::from_value(value)
            .map_err(|e| layout(format!("tensor `{name}` has a bad header entry: {e}")))?;
        tensors.push((name, info));
    }
    tensors.sort_by_key(|(_, info)| info.data_offsets);
    Ok(ShardHeader {
        data_start: 8 + header_len,
        tensors,
    })
}

/// Checks a shard's header against the manifest: the tensors, their dtypes
/// and shapes, and that they exactly cover the file.
fn check_layout(
    header: &ShardHeader,
    manifest: &Manifest,
    info: &ShardInfo,
    path: &Path,
    file_len: u64,
) -> Result<(), StoreError> {
    let layout = |message: String| StoreError::ShardLayout {
        path: path.to_path_buf(),
        message,
    };
    let rows = info.rows as usize;
    let mut expected: BTreeMap<&str, (safetensors::Dtype, Vec<usize>, usize)> = BTreeMap::new();
    expected.insert(
        ACTIVATIONS,
        (
            manifest.dtype.safetensors(),
            vec![rows, manifest.d_in],
            manifest.dtype.size(),
        ),
    );
    for c in &manifest.extra_columns {
        expected.insert(
            &c.name,
            (
                c.dtype.safetensors(),
                Manifest::column_shape(c, rows),
                c.dtype.size(),
            ),
        );
    }
    let mut cursor = 0usize;
    for (name, t) in &header.tensors {
        let Some((dtype, shape, size)) = expected.remove(name.as_str()) else {
            return Err(layout(format!(
                "holds tensor `{name}` that the manifest does not list"
            )));
        };
        if t.dtype != dtype {
            return Err(layout(format!(
                "tensor `{name}` has dtype {:?} but the manifest says {dtype:?}",
                t.dtype
            )));
        }
        if t.shape != shape {
            let what = if name == ACTIVATIONS {
                " (rows, d_in)"
            } else {
                ""
            };
            return Err(layout(format!(
                "tensor `{name}` has shape {:?} but the manifest says {shape:?}{what}",
                t.shape
            )));
        }
        let (start, end) = t.data_offsets;
        let len = shape.iter().product::<usize>() * size;
        if start != cursor || end.checked_sub(start) != Some(len) {
            return Err(layout(format!(
                "tensor `{name}` occupies bytes {start}..{end} of the data section; expected {cursor}..{}",
                cursor + len
            )));
        }
        cursor = end;
    }
    if let Some(name) = expected.keys().next() {
        return Err(layout(format!(
            "has no tensor `{name}`, which the manifest lists"
        )));
    }
    if header.data_start + cursor as u64 != file_len {
        return Err(layout(format!(
            "the tensors end at byte {} but the file has {file_len} bytes",
            header.data_start + cursor as u64
        )));
    }
    Ok(())
}

/// Checks a shard without reading its data: it exists, has the recorded
/// length, and its header matches the manifest.
pub(crate) fn check_shard(
    dir: &Path,
    manifest: &Manifest,
    info: &ShardInfo,
) -> Result<(), StoreError> {
    let path = dir.join(&info.file);
    let mut file = open_shard(&path, info)?;
    let header = read_header(&mut file, &path, info.bytes, &mut Xxh64::new())?;
    check_layout(&header, manifest, info, &path, info.bytes)
}

/// What to do with the extra columns while loading a shard.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Columns {
    /// Read (and hash) them, keep nothing.
    Skip,
    /// Decode them too.
    Decode,
}

/// Loads a shard: appends its activations as f32 to `out` and returns its
/// extra columns (empty with [`Columns::Skip`]). Every byte is hashed and
/// checked against the manifest before anything is returned, and every
/// activation must be finite; on error `out` is left as it was.
/// `first_row` is the store row of the shard's first row (for error messages).
pub(crate) fn load_shard(
    dir: &Path,
    manifest: &Manifest,
    info: &ShardInfo,
    first_row: u64,
    columns: Columns,
    out: &mut Vec<f32>,
) -> Result<BTreeMap<String, ColumnData>, StoreError> {
    let path = dir.join(&info.file);
    let start_len = out.len();
    let result = load_shard_into(&path, manifest, info, first_row, columns, out);
    if result.is_err() {
        out.truncate(start_len);
    }
    result
}

fn load_shard_into(
    path: &Path,
    manifest: &Manifest,
    info: &ShardInfo,
    first_row: u64,
    columns: Columns,
    out: &mut Vec<f32>,
) -> Result<BTreeMap<String, ColumnData>, StoreError> {
    let mut file = open_shard(path, info)?;
    let mut hasher = Xxh64::new();
    let header = read_header(&mut file, path, info.bytes, &mut hasher)?;
    check_layout(&header, manifest, info, path, info.bytes)?;
    let mut decoded = BTreeMap::new();
    let mut scratch: Vec<u16> = Vec::new();
    let mut bytes_scratch: Vec<u8> = Vec::new();
    let mut first_non_finite = None;
    for (name, t) in &header.tensors {
        if name == ACTIVATIONS {
            let values = info.rows as usize * manifest.d_in;
            first_non_finite = read_activations(
                &mut file,
                path,
                manifest.dtype,
                values,
                &mut hasher,
                &mut scratch,
                out,
            )?;
        } else {
            let spec = manifest
                .extra_columns
                .iter()
                .find(|c| &c.name == name)
                .expect("check_layout accepted only listed columns");
            let mut data = ColumnData::empty(spec.dtype);
            let mut left = t.data_offsets.1 - t.data_offsets.0;
            while left > 0 {
                let take = left.min(CHUNK_BYTES / spec.dtype.size() * spec.dtype.size());
                bytes_scratch.resize(take, 0);
                file.read_exact(&mut bytes_scratch)
                    .map_err(|e| StoreError::io(path, e))?;
                hasher.update(&bytes_scratch);
                if columns == Columns::Decode {
                    data.extend_from_le(&bytes_scratch);
                }
                left -= take;
            }
            if columns == Columns::Decode {
                decoded.insert(name.clone(), data);
            }
        }
    }
    let found = to_hex(hasher.digest());
    if found != info.xxh64 {
        return Err(StoreError::Checksum {
            path: path.to_path_buf(),
            expected: info.xxh64.clone(),
            found,
        });
    }
    // Only after the checksum: a corrupt file is reported as corrupt, not as
    // holding a NaN.
    let d = manifest.d_in;
    if let Some(i) = first_non_finite {
        let row_in_shard = (i / d) as u64;
        return Err(StoreError::NonFiniteInShard {
            path: path.to_path_buf(),
            row_in_shard,
            row: first_row + row_in_shard,
            column: i % d,
            value: out[out.len() - info.rows as usize * d + i],
        });
    }
    Ok(decoded)
}

/// Index of the first NaN or infinity in `values`. The common case (none)
/// is a branch-free pass that vectorises; only a hit pays for the search.
fn first_non_finite(values: &[f32]) -> Option<usize> {
    const EXPONENT: u32 = 0x7f80_0000;
    let any = values
        .iter()
        .fold(false, |acc, v| acc | (v.to_bits() & EXPONENT == EXPONENT));
    if any {
        values.iter().position(|v| !v.is_finite())
    } else {
        None
    }
}

/// Reads `values` activations of `dtype` from `file`, hashing the raw bytes
/// and appending them to `out` as f32. Returns the index (among these
/// values) of the first one that is not finite, if any.
fn read_activations(
    file: &mut File,
    path: &Path,
    dtype: Dtype,
    values: usize,
    hasher: &mut Xxh64,
    scratch: &mut Vec<u16>,
    out: &mut Vec<f32>,
) -> Result<Option<usize>, StoreError> {
    let io = |e| StoreError::io(path, e);
    let start = out.len();
    out.resize(start + values, 0.0);
    let dest = &mut out[start..];
    let mut bad = None;
    // Each chunk is hashed, converted and checked while it is in cache.
    match dtype {
        Dtype::F32 => {
            // Read straight into the destination: on little-endian machines
            // the file's bytes already are the f32 values.
            for (k, chunk) in dest.chunks_mut(CHUNK_BYTES / 4).enumerate() {
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(chunk);
                file.read_exact(bytes).map_err(io)?;
                hasher.update(bytes);
                #[cfg(target_endian = "big")]
                chunk
                    .iter_mut()
                    .for_each(|v| *v = f32::from_bits(u32::from_le(v.to_bits())));
                if bad.is_none() {
                    bad = first_non_finite(chunk).map(|i| k * (CHUNK_BYTES / 4) + i);
                }
            }
        }
        Dtype::F16 | Dtype::Bf16 => {
            for (k, chunk) in dest.chunks_mut(CHUNK_BYTES / 2).enumerate() {
                scratch.resize(chunk.len(), 0);
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(scratch.as_mut_slice());
                file.read_exact(bytes).map_err(io)?;
                hasher.update(bytes);
                #[cfg(target_endian = "big")]
                scratch.iter_mut().for_each(|v| *v = u16::from_le(*v));
                use half::slice::HalfFloatSliceExt;
                if dtype == Dtype::F16 {
                    let halves: &[half::f16] = bytemuck::cast_slice(scratch.as_slice());
                    halves.convert_to_f32_slice(chunk);
                } else {
                    let halves: &[half::bf16] = bytemuck::cast_slice(scratch.as_slice());
                    halves.convert_to_f32_slice(chunk);
                }
                if bad.is_none() {
                    bad = first_non_finite(chunk).map(|i| k * (CHUNK_BYTES / 2) + i);
                }
            }
        }
    }
    Ok(bad)
}

/// Reads one extra column of a shard without reading the activations (so
/// without checking the checksum, which covers the whole file).
pub(crate) fn read_column(
    dir: &Path,
    manifest: &Manifest,
    info: &ShardInfo,
    spec: &ColumnSpec,
) -> Result<ColumnData, StoreError> {
    use std::io::Seek;
    let path = dir.join(&info.file);
    let mut file = open_shard(&path, info)?;
    let header = read_header(&mut file, &path, info.bytes, &mut Xxh64::new())?;
    check_layout(&header, manifest, info, &path, info.bytes)?;
    let (_, t) = header
        .tensors
        .iter()
        .find(|(n, _)| n == &spec.name)
        .expect("check_layout found every listed column");
    let (start, end) = t.data_offsets;
    file.seek(std::io::SeekFrom::Start(header.data_start + start as u64))
        .map_err(|e| StoreError::io(&path, e))?;
    let mut bytes = vec![0u8; end - start];
    file.read_exact(&mut bytes)
        .map_err(|e| StoreError::io(&path, e))?;
    let mut data = ColumnData::empty(spec.dtype);
    data.extend_from_le(&bytes);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20 #2: the atomic rename never replaces a symlink, FIFO or
    /// directory by a regular file; the error names the path and the kind.
    #[cfg(unix)]
    #[test]
    fn atomic_write_refuses_to_replace_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let mut cases = vec![(link.clone(), "symbolic link"), (sub.clone(), "directory")];
        if made.is_ok_and(|s| s.success()) {
            cases.push((fifo.clone(), "FIFO"));
        }
        for (path, kind) in cases {
            let err = crate::atomic_write(&path, b"new").unwrap_err().to_string();
            assert!(
                err.contains(path.to_str().unwrap()) && err.contains(kind),
                "{err}"
            );
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(
                !meta.file_type().is_file(),
                "{} was replaced",
                path.display()
            );
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // No temporary file is left behind; regular files and new paths work.
        crate::atomic_write(&target, b"new").unwrap();
        crate::atomic_write(&dir.path().join("fresh"), b"x").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        #[cfg(target_os = "linux")]
        {
            let err = check_replaceable(Path::new("/dev/null"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("/dev/null") && err.contains("character device"),
                "{err}"
            );
        }
    }

    #[test]
    fn dtype_range_checks_follow_rounding() {
        assert!(Dtype::F16.represents(65504.0));
        assert!(Dtype::F16.represents(65519.0), "rounds down to 65504");
        assert!(!Dtype::F16.represents(65520.0), "rounds up to infinity");
        assert!(!Dtype::F16.represents(-1e6));
        assert!(Dtype::Bf16.represents(1e38));
        assert!(!Dtype::Bf16.represents(f32::MAX));
        assert!(Dtype::F32.represents(f32::MAX));
    }

    #[test]
    fn non_finite_values_are_found() {
        assert_eq!(
            first_non_finite(&[1.0, -0.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45]),
            None
        );
        assert_eq!(first_non_finite(&[1.0, f32::NAN, f32::INFINITY]), Some(1));
        assert_eq!(first_non_finite(&[f32::NEG_INFINITY]), Some(0));
        assert_eq!(first_non_finite(&[]), None);
    }

    #[test]
    fn store_file_names_are_recognised() {
        assert!(is_store_file("shard_00000.safetensors"));
        assert!(is_store_file("shard_123456.safetensors"));
        assert!(is_store_file(".shard_00001.safetensors.tmp-42"));
        assert!(is_store_file(".manifest.json.tmp-7"));
        assert!(!is_store_file("shard_.safetensors"));
        assert!(!is_store_file("shard_0a.safetensors"));
        assert!(!is_store_file("notes.txt"));
        assert!(!is_store_file("manifest.json"));
    }

    #[test]
    fn shard_files_parse_with_the_safetensors_crate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.safetensors");
        let acts: Vec<u8> = [1.5f32, -2.0, 3.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let pos: Vec<u8> = [7i64].iter().flat_map(|v| v.to_le_bytes()).collect();
        let tensors = vec![
            TensorToWrite {
                name: ACTIVATIONS,
                dtype: safetensors::Dtype::F32,
                element_size: 4,
                shape: vec![1, 3],
                data: &acts,
            },
            TensorToWrite {
                name: "pos",
                dtype: safetensors::Dtype::I64,
                element_size: 8,
                shape: vec![1],
                data: &pos,
            },
        ];
        let (len, hash) = write_shard(&path, tensors).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(hash, Xxh64::hash(&bytes));
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let a = st.tensor(ACTIVATIONS).unwrap();
        assert_eq!(a.shape(), [1, 3]);
        assert_eq!(a.data(), &acts[..]);
        let p = st.tensor("pos").unwrap();
        assert_eq!(p.data(), &pos[..]);
        // The 8-byte column comes first, so both tensors are aligned.
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.info("pos").unwrap().data_offsets.0, 0);
        assert_eq!(meta.info(ACTIVATIONS).unwrap().data_offsets.0, 8);
        assert!(
            std::fs::read_dir(dir.path()).unwrap().count() == 1,
            "no temporary file is left behind"
        );
    }
}
