//! [`Store`]: an opened, validated store on disk.

use crate::error::StoreError;
use crate::format::{
    ColumnData, ColumnSpec, Columns, Dtype, Manifest, ShardInfo, check_shard, load_shard,
    read_column,
};
use crate::reader::{ReaderConfig, ReaderPosition, ShuffledReader};
use crate::shuffle::{WindowPlan, bytes_per_row, plan_epoch};
use crate::xxh64::Xxh64;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An opened store. Cheap to clone (the manifest is shared).
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    manifest: Arc<Manifest>,
    /// Store row of each shard's first row.
    first_rows: Arc<Vec<u64>>,
    fingerprint: u64,
}

/// One shard read back whole.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardData {
    /// The activations, row-major, as f32.
    pub activations: Vec<f32>,
    /// The extra columns, by name.
    pub columns: BTreeMap<String, ColumnData>,
}

impl Store {
    /// Opens the store in `dir`: the manifest must parse and agree with
    /// itself, and every shard must exist with the recorded length and a
    /// header whose tensors, dtypes and shapes match the manifest. Shard data
    /// is not read here: checksums and finiteness are checked whenever a
    /// shard is loaded (and by [`Store::verify`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::read(&dir)?;
        for shard in &manifest.shards {
            check_shard(&dir, &manifest, shard)?;
        }
        let first_rows = manifest
            .shards
            .iter()
            .scan(0u64, |next, s| {
                let first = *next;
                *next += s.rows;
                Some(first)
            })
            .collect();
        let fingerprint = fingerprint(&manifest);
        Ok(Self {
            dir,
            manifest: Arc::new(manifest),
            first_rows: Arc::new(first_rows),
            fingerprint,
        })
    }

    /// A 64-bit fingerprint of the store's content as the manifest
    /// describes it (d_in, dtype, and every shard's name, rows and
    /// checksum): equal fingerprints mean the same rows in the same shards.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Width of every row.
    pub fn d_in(&self) -> usize {
        self.manifest.d_in
    }

    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.manifest.rows
    }

    /// Precision on disk.
    pub fn dtype(&self) -> Dtype {
        self.manifest.dtype
    }

    /// The free-form metadata written with the store.
    pub fn metadata(&self) -> &serde_json::Value {
        &self.manifest.metadata
    }

    /// The shards, in store order.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.manifest.shards
    }

    /// Store row of the first row of shard `index`.
    pub fn first_row_of_shard(&self, index: usize) -> Option<u64> {
        self.first_rows.get(index).copied()
    }

    fn shard(&self, index: usize) -> Result<&ShardInfo, StoreError> {
        self.manifest.shards.get(index).ok_or_else(|| {
            StoreError::Config(format!(
                "shard index {index} is out of range: {} has {} shards",
                self.dir.display(),
                self.manifest.shards.len()
            ))
        })
    }

    /// Appends the activations of shard `index` to `out` as f32, after
    /// checking its checksum and that every value is finite.
    pub(crate) fn load_shard_into(
        &self,
        index: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), StoreError> {
        let info = self.shard(index)?;
        load_shard(
            &self.dir,
            &self.manifest,
            info,
            self.first_rows[index],
            Columns::Skip,
            out,
        )
        .map(|_| ())
    }

    /// The activations of shard `index` (row-major f32), checked (checksum, finite values).
    pub fn read_shard(&self, index: usize) -> Result<Vec<f32>, StoreError> {
        let mut out = Vec::new();
        self.load_shard_into(index, &mut out)?;
        Ok(out)
    }

    /// Shard `index` whole: activations and extra columns, checked.
    pub fn read_shard_with_columns(&self, index: usize) -> Result<ShardData, StoreError> {
        let info = self.shard(index)?;
        let mut activations = Vec::new();
        let columns = load_shard(
            &self.dir,
            &self.manifest,
            info,
            self.first_rows[index],
            Columns::Decode,
            &mut activations,
        )?;
        Ok(ShardData {
            activations,
            columns,
        })
    }

    /// One extra column over the whole store, in store order (the order of
    /// a reader with `shuffle: false`). Reads only that column's bytes, so it
    /// is fast but does not check the shard checksums ([`Store::verify`] does).
    pub fn column(&self, name: &str) -> Result<ColumnData, StoreError> {
        let spec: &ColumnSpec = self
            .manifest
            .extra_columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| StoreError::Column {
                name: name.to_string(),
                message: format!(
                    "{} has no such column (it has {:?})",
                    self.dir.display(),
                    self.manifest
                        .extra_columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                ),
            })?;
        let mut all = ColumnData::empty(spec.dtype);
        for info in &self.manifest.shards {
            all.append(read_column(&self.dir, &self.manifest, info, spec)?);
        }
        Ok(all)
    }

    /// Reads every shard in full: checksums, layouts and finite activations.
    /// Returns the first problem found.
    pub fn verify(&self) -> Result<(), StoreError> {
        let mut scratch = Vec::new();
        for index in 0..self.manifest.shards.len() {
            scratch.clear();
            self.load_shard_into(index, &mut scratch)?;
        }
        Ok(())
    }

    /// Checks that every shard fits in half of `config`'s memory ceiling and
    /// returns that half (the budget of one window).
    pub(crate) fn window_budget(&self, config: &ReaderConfig) -> Result<u64, StoreError> {
        let ceiling = config.memory_ceiling_bytes as u64;
        let budget = ceiling / 2;
        let row_bytes = bytes_per_row(self.d_in(), config.shuffle);
        if let Some(largest) = self.manifest.shards.iter().max_by_key(|s| s.rows) {
            let shard_bytes = largest.rows * row_bytes;
            if shard_bytes > budget || largest.rows > u64::from(u32::MAX) {
                return Err(StoreError::CeilingTooSmall {
                    path: self.dir.join(&largest.file),
                    shard_bytes,
                    ceiling,
                    window_budget: budget,
                    needed: 2 * shard_bytes,
                    max_rows_per_shard: budget / row_bytes,
                });
            }
        }
        Ok(budget)
    }

    /// The windows a reader with `config` goes through in `epoch`: which
    /// shards, how many rows, how much memory each takes once loaded. Every
    /// window takes at most half the memory ceiling.
    pub fn windows(
        &self,
        config: &ReaderConfig,
        epoch: u64,
    ) -> Result<Vec<WindowPlan>, StoreError> {
        let budget = self.window_budget(config)?;
        Ok(plan_epoch(
            &self.manifest,
            config.seed,
            config.shuffle,
            budget,
            epoch,
        ))
    }

    /// A reader from the start of epoch 0 (see [`ReaderConfig`]).
    pub fn reader(&self, config: ReaderConfig) -> Result<ShuffledReader, StoreError> {
        ShuffledReader::new(self.clone(), config, ReaderPosition::default())
    }

    /// A reader resumed at `position` (from [`ShuffledReader::position`], as
    /// saved in a checkpoint): given the same `config` (seed, memory
    /// ceiling, shuffle), it hands out exactly the batches an uninterrupted
    /// reader would have. A position that records a different seed, ceiling,
    /// shuffle setting or store is refused.
    pub fn reader_at(
        &self,
        config: ReaderConfig,
        position: ReaderPosition,
    ) -> Result<ShuffledReader, StoreError> {
        ShuffledReader::new(self.clone(), config, position)
    }
}

fn fingerprint(manifest: &Manifest) -> u64 {
    let mut hasher = Xxh64::new();
    hasher.update(&(manifest.d_in as u64).to_le_bytes());
    hasher.update(manifest.dtype.to_string().as_bytes());
    for shard in &manifest.shards {
        // Lengths first, so that no two shard lists hash the same bytes.
        hasher.update(&(shard.file.len() as u64).to_le_bytes());
        hasher.update(shard.file.as_bytes());
        hasher.update(&shard.rows.to_le_bytes());
        hasher.update(shard.xxh64.as_bytes());
    }
    hasher.digest()
}
