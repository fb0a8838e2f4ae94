//! [`StoreWriter`]: writes rows into a new store, one shard at a time.

use crate::error::StoreError;
use crate::format::{
    ACTIVATIONS, ColumnSpec, ColumnValues, Dtype, FORMAT, MANIFEST, Manifest, ShardInfo,
    TensorToWrite, VERSION, is_store_file, shard_file_name, sync_dir, write_atomically,
    write_shard,
};
use crate::source::ActivationSource;
use crate::xxh64::to_hex;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How a new store is laid out. Build it with [`StoreConfig::new`] and
/// struct update syntax, so that fields added later keep your code compiling:
/// `StoreConfig { dtype: Dtype::F16, ..StoreConfig::new(512) }`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreConfig {
    /// Width of every row.
    pub d_in: usize,
    /// Precision on disk.
    pub dtype: Dtype,
    /// Rows per shard. A shard is the unit of reading: the reader's memory
    /// ceiling must hold two windows of at least one shard each.
    pub rows_per_shard: usize,
    /// Free-form description stored in the manifest (model, hook site, dataset...).
    pub metadata: serde_json::Value,
    /// Replace a store (or the shards of an unfinished one) already in the directory.
    pub overwrite: bool,
    /// Extra per-row tensors written beside the activations.
    pub extra_columns: Vec<ColumnSpec>,
}

impl StoreConfig {
    /// f32, 65,536 rows per shard, no metadata, no extra columns, no overwrite.
    pub fn new(d_in: usize) -> Self {
        Self {
            d_in,
            dtype: Dtype::F32,
            rows_per_shard: 65_536,
            metadata: serde_json::Value::Null,
            overwrite: false,
            extra_columns: Vec::new(),
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        if self.d_in == 0 {
            return Err(StoreError::Config("d_in must be at least 1".into()));
        }
        if self.rows_per_shard == 0 {
            return Err(StoreError::Config(
                "rows_per_shard must be at least 1".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for column in &self.extra_columns {
            column.validate().map_err(StoreError::Config)?;
            if !names.insert(column.name.as_str()) {
                return Err(StoreError::Config(format!(
                    "extra column `{}` is declared twice",
                    column.name
                )));
            }
        }
        Ok(())
    }
}

/// Writes rows into a new store. Full shards are written as they fill
/// (atomically: temporary file, fsync, rename); the manifest is written by
/// [`StoreWriter::finish`], last, so a directory whose writer did not finish
/// is never mistaken for a store.
#[derive(Debug)]
pub struct StoreWriter {
    dir: PathBuf,
    config: StoreConfig,
    /// Activations of the rows not yet in a shard, encoded in the store's dtype.
    pending: Vec<u8>,
    /// Encoded values of each extra column (config order) for those rows.
    pending_columns: Vec<Vec<u8>>,
    pending_rows: usize,
    shards: Vec<ShardInfo>,
    rows: u64,
}

impl StoreWriter {
    /// Prepares `dir` (created with its parents if needed) for a new store.
    /// A directory that already holds a store, or the shards of an unfinished
    /// one, is refused unless `config.overwrite`, in which case the old
    /// manifest is removed first (so the old store stops being one) and then
    /// its shards. Other files in the directory are left alone.
    pub fn create(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let manifest = dir.join(MANIFEST);
        let has_manifest = manifest.exists();
        let leftovers: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| StoreError::io(&dir, e))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| is_store_file(&entry.file_name().to_string_lossy()))
            .map(|entry| entry.path())
            .collect();
        if has_manifest || !leftovers.is_empty() {
            if !config.overwrite {
                let what = if has_manifest {
                    "an activation store (manifest.json)".to_string()
                } else {
                    format!(
                        "{} shard or temporary files of an unfinished store (no manifest.json)",
                        leftovers.len()
                    )
                };
                return Err(StoreError::AlreadyExists { dir, what });
            }
            if has_manifest {
                std::fs::remove_file(&manifest).map_err(|e| StoreError::io(&manifest, e))?;
                sync_dir(&dir)?;
            }
            for path in leftovers {
                std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
            }
            sync_dir(&dir)?;
        }
        let pending_columns = vec![Vec::new(); config.extra_columns.len()];
        Ok(Self {
            dir,
            config,
            pending: Vec::new(),
            pending_columns,
            pending_rows: 0,
            shards: Vec::new(),
            rows: 0,
        })
    }

    /// Rows accepted so far (including those not yet in a shard file).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the store is written with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Appends rows (row-major, `d_in` values each) to a store without extra
    /// columns. The length must be a multiple of `d_in` and every value
    /// finite (and within the range of the store's dtype); otherwise nothing
    /// of this call is written and the error names the row and column.
    pub fn push_rows(&mut self, values: &[f32]) -> Result<(), StoreError> {
        self.push_rows_with(values, &[])
    }

    /// Appends rows with their extra columns: each column declared in
    /// [`StoreConfig::extra_columns`] must be given exactly once, by name,
    /// with `values_per_row` values per row of the right dtype. Nothing is
    /// written unless everything checks out.
    pub fn push_rows_with(
        &mut self,
        values: &[f32],
        columns: &[(&str, ColumnValues<'_>)],
    ) -> Result<(), StoreError> {
        let d = self.config.d_in;
        if !values.len().is_multiple_of(d) {
            return Err(StoreError::RowLength {
                what: ACTIVATIONS.into(),
                values: values.len(),
                per_row: d,
            });
        }
        let rows = values.len() / d;
        let ordered = self.match_columns(columns, rows)?;
        let dtype = self.config.dtype;
        for (i, &value) in values.iter().enumerate() {
            if !value.is_finite() || !dtype.represents(value) {
                let (row_in_call, column) = (i / d, i % d);
                let row = self.rows + row_in_call as u64;
                return Err(if value.is_finite() {
                    StoreError::Overflow {
                        row,
                        row_in_call,
                        column,
                        value,
                        dtype,
                        max: dtype.max(),
                    }
                } else {
                    StoreError::NonFiniteInput {
                        row,
                        row_in_call,
                        column,
                        value,
                    }
                });
            }
        }
        // Everything is valid: from here on only I/O can fail.
        let mut done = 0;
        while done < rows {
            let take = (self.config.rows_per_shard - self.pending_rows).min(rows - done);
            dtype.encode(&values[done * d..(done + take) * d], &mut self.pending);
            for (buffer, (spec, column)) in self
                .pending_columns
                .iter_mut()
                .zip(self.config.extra_columns.iter().zip(&ordered))
            {
                let per_row = spec.values_per_row();
                slice_rows(column, done * per_row, (done + take) * per_row).encode(buffer);
            }
            self.pending_rows += take;
            self.rows += take as u64;
            done += take;
            if self.pending_rows == self.config.rows_per_shard {
                self.flush_shard()?;
            }
        }
        Ok(())
    }

    /// The given columns in configuration order, after checking names,
    /// dtypes and lengths.
    fn match_columns<'a>(
        &self,
        columns: &[(&str, ColumnValues<'a>)],
        rows: usize,
    ) -> Result<Vec<ColumnValues<'a>>, StoreError> {
        let column_err = |name: &str, message: String| StoreError::Column {
            name: name.to_string(),
            message,
        };
        for (i, (name, _)) in columns.iter().enumerate() {
            if !self.config.extra_columns.iter().any(|c| c.name == *name) {
                let declared: Vec<&str> = self
                    .config
                    .extra_columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(column_err(
                    name,
                    format!(
                        "was not declared in StoreConfig::extra_columns (declared: {declared:?})"
                    ),
                ));
            }
            if columns[..i].iter().any(|(n, _)| n == name) {
                return Err(column_err(name, "is given twice".into()));
            }
        }
        let mut ordered = Vec::with_capacity(self.config.extra_columns.len());
        for spec in &self.config.extra_columns {
            let Some((_, values)) = columns.iter().find(|(n, _)| *n == spec.name) else {
                return Err(column_err(
                    &spec.name,
                    "is declared but was not given; every call must give every declared column"
                        .into(),
                ));
            };
            if values.dtype() != spec.dtype {
                return Err(column_err(
                    &spec.name,
                    format!(
                        "values are {:?}, the column is declared {:?}",
                        values.dtype(),
                        spec.dtype
                    ),
                ));
            }
            let per_row = spec.values_per_row();
            if values.len() != rows * per_row {
                return Err(column_err(
                    &spec.name,
                    format!(
                        "{} values given for {rows} rows of {per_row} value(s) each; expected {}",
                        values.len(),
                        rows * per_row
                    ),
                ));
            }
            ordered.push(*values);
        }
        Ok(ordered)
    }

    /// Writes the pending rows as the next shard.
    fn flush_shard(&mut self) -> Result<(), StoreError> {
        let rows = self.pending_rows;
        let file = shard_file_name(self.shards.len());
        let path = self.dir.join(&file);
        let mut tensors = vec![TensorToWrite {
            name: ACTIVATIONS,
            dtype: self.config.dtype.safetensors(),
            element_size: self.config.dtype.size(),
            shape: vec![rows, self.config.d_in],
            data: &self.pending,
        }];
        for (spec, data) in self.config.extra_columns.iter().zip(&self.pending_columns) {
            tensors.push(TensorToWrite {
                name: &spec.name,
                dtype: spec.dtype.safetensors(),
                element_size: spec.dtype.size(),
                shape: std::iter::once(rows)
                    .chain(spec.row_shape.iter().copied())
                    .collect(),
                data,
            });
        }
        let (bytes, hash) = write_shard(&path, tensors)?;
        self.shards.push(ShardInfo {
            file,
            rows: rows as u64,
            bytes,
            xxh64: to_hex(hash),
        });
        self.pending.clear();
        self.pending_columns.iter_mut().for_each(Vec::clear);
        self.pending_rows = 0;
        crate::fault::point("store.shard");
        Ok(())
    }

    /// Writes the last partial shard, then the manifest (atomically), and
    /// returns the manifest. Until this returns, the directory is not a store.
    pub fn finish(mut self) -> Result<Manifest, StoreError> {
        if self.pending_rows > 0 {
            self.flush_shard()?;
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            d_in: self.config.d_in,
            dtype: self.config.dtype,
            rows: self.rows,
            rows_per_shard: self.config.rows_per_shard as u64,
            extra_columns: self.config.extra_columns.clone(),
            shards: std::mem::take(&mut self.shards),
            metadata: std::mem::take(&mut self.config.metadata),
        };
        let path = self.dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| StoreError::Manifest {
            path: path.clone(),
            message: format!("cannot encode: {e}"),
        })?;
        crate::fault::point("store.manifest");
        write_atomically(&path, |w| w.write_all(text.as_bytes()))?;
        Ok(manifest)
    }
}

/// Values `start..end` of a borrowed column.
fn slice_rows<'a>(values: &ColumnValues<'a>, start: usize, end: usize) -> ColumnValues<'a> {
    macro_rules! slice {
        ($($variant:ident)*) => {
            match values { $(ColumnValues::$variant(v) => ColumnValues::$variant(&v[start..end]),)* }
        };
    }
    slice!(I64 U64 I32 U32 U16 U8 F64 F32)
}

/// Writes `bytes` to `path` atomically (temporary file in the same
/// directory, fsync, rename, fsync of the directory).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomically(path, |w| w.write_all(bytes))
}

/// Drains up to `rows` rows of `source` into a new store at `dir` (fewer if
/// the source runs out first: the manifest's `rows` says how many), calling
/// `progress` with the rows written so far after each batch. The store has
/// no extra columns (use [`StoreWriter::push_rows_with`] for those).
pub fn write_from_source<S: ActivationSource>(
    source: &mut S,
    dir: impl AsRef<Path>,
    config: StoreConfig,
    rows: u64,
    mut progress: impl FnMut(u64),
) -> Result<Manifest, StoreError> {
    if source.d_in() != config.d_in {
        return Err(StoreError::Config(format!(
            "the source has rows of width {}, but the store is configured for d_in = {}",
            source.d_in(),
            config.d_in
        )));
    }
    if !config.extra_columns.is_empty() {
        return Err(StoreError::Config(
            "write_from_source writes activations only; declare no extra_columns (or push them with StoreWriter::push_rows_with)".into(),
        ));
    }
    // Large enough to amortise the source's per-call cost, small enough not to
    // hold much beyond one shard.
    let batch = config.rows_per_shard.clamp(1, 8192);
    let mut writer = StoreWriter::create(dir, config)?;
    let mut buffer = Vec::new();
    while writer.rows() < rows {
        let want = (rows - writer.rows()).min(batch as u64) as usize;
        let got = source
            .next_batch(want, &mut buffer)
            .map_err(|e| StoreError::Source(Box::new(e)))?;
        if got == 0 {
            break;
        }
        if got > want || buffer.len() != got * writer.config.d_in {
            return Err(StoreError::Source(
                format!(
                    "asked for {want} rows of width {}, the source said it wrote {got} rows but handed {} values",
                    writer.config.d_in,
                    buffer.len()
                )
                .into(),
            ));
        }
        writer.push_rows(&buffer)?;
        progress(writer.rows());
    }
    writer.finish()
}
