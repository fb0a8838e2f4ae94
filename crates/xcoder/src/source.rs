//! [`AlignedStores`]: training rows made of several activation stores read
//! in lockstep, e.g. a transcoder's input site and the site it predicts, or
//! the layers a crosscoder reads, each harvested into its own store from the
//! same examples in the same order.
//!
//! Each store gets its own kibitzer-store [`ShuffledReader`], with the same
//! seed and a memory ceiling proportional to its row size. The readers then
//! plan the same windows (a window holds the same number of rows in every
//! store, because the ceilings are in the ratio of the row sizes) and shuffle
//! them with the same permutations (which depend only on the seed and the
//! window), so row `r` of every store lands in the same place of the same
//! batch. The stores must agree shard by shard in row count, which is checked
//! when opening. A single store whose rows already hold every block side by
//! side works the same way.

use crate::blocks::Block;
use crate::error::XcoderError;
use kibitzer_io::FileError;
use kibitzer_sae::train::SourcePosition;
use kibitzer_store::{
    ActivationSource, ReaderConfig, ReaderPosition, ShuffledReader, Store, StoreError,
};
use std::path::{Path, PathBuf};

/// Several stores read as one: each batch row is the concatenation of the
/// same row of every store, in the order the stores were given.
pub struct AlignedStores {
    paths: Vec<PathBuf>,
    config: ReaderConfig,
    readers: Vec<ShuffledReader>,
    widths: Vec<usize>,
    names: Vec<String>,
    scratch: Vec<Vec<f32>>,
}

impl std::fmt::Debug for AlignedStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedStores")
            .field("blocks", &self.blocks())
            .finish_non_exhaustive()
    }
}

/// Memory one row of width `d` takes in a reader's window (kibitzer-store's
/// accounting: the f32 values, plus a 4-byte position when shuffling).
fn row_bytes(d: usize, shuffle: bool) -> usize {
    4 * d + if shuffle { 4 } else { 0 }
}

/// A block name for a store: the hook site its harvest recorded, or its path.
fn block_name(store: &Store, path: &Path) -> String {
    store
        .metadata()
        .get("hook_site")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| path.display().to_string())
}

impl AlignedStores {
    /// Opens `paths` for reading from the start; `config.memory_ceiling_bytes`
    /// is the ceiling for all readers together.
    pub fn open(paths: &[PathBuf], config: ReaderConfig) -> Result<Self, XcoderError> {
        Self::open_with(paths, config, None)
    }

    /// Opens `paths` at a position saved by [`SourcePosition::position`]
    /// (as found in a run's checkpoint).
    pub fn open_at(
        paths: &[PathBuf],
        config: ReaderConfig,
        position: &serde_json::Value,
    ) -> Result<Self, XcoderError> {
        let positions: Vec<ReaderPosition> = position
            .get("aligned_stores")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| XcoderError::config("reader position", format!("unreadable: {e}")))?
            .ok_or_else(|| {
                XcoderError::config(
                    "reader position",
                    format!("expected an object with `aligned_stores`, found {position}"),
                )
            })?;
        if positions.len() != paths.len() {
            return Err(XcoderError::config(
                "reader position",
                format!(
                    "it holds {} store positions but {} stores were given; resume with the stores of the original run",
                    positions.len(),
                    paths.len()
                ),
            ));
        }
        Self::open_with(paths, config, Some(positions))
    }

    fn open_with(
        paths: &[PathBuf],
        config: ReaderConfig,
        positions: Option<Vec<ReaderPosition>>,
    ) -> Result<Self, XcoderError> {
        if paths.is_empty() {
            return Err(XcoderError::config(
                "activation stores",
                "give at least one store",
            ));
        }
        let stores = paths
            .iter()
            .map(Store::open)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let first = &stores[0];
        let layout = |s: &Store| s.shards().iter().map(|sh| sh.rows).collect::<Vec<_>>();
        for (store, path) in stores.iter().zip(paths).skip(1) {
            if layout(store) != layout(first) {
                return Err(FileError::new(
                    path,
                    format!(
                        "its shards hold {:?} rows but {} holds {:?}; aligned stores must be harvested from the same \
                         examples in the same order with the same rows_per_shard",
                        layout(store),
                        paths[0].display(),
                        layout(first)
                    ),
                ).into());
            }
        }
        // Ceilings in the ratio of the row sizes make every reader's windows
        // hold the same number of rows.
        let total_row_bytes: usize = stores
            .iter()
            .map(|s| row_bytes(s.d_in(), config.shuffle))
            .sum();
        let rows_per_window = config.memory_ceiling_bytes / 2 / total_row_bytes.max(1);
        let configs: Vec<ReaderConfig> = stores
            .iter()
            .map(|s| ReaderConfig {
                memory_ceiling_bytes: 2 * rows_per_window * row_bytes(s.d_in(), config.shuffle),
                ..config
            })
            .collect();
        let plans = stores
            .iter()
            .zip(&configs)
            .map(|(s, c)| s.windows(c, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let shards_of = |p: &Vec<kibitzer_store::WindowPlan>| {
            p.iter().map(|w| w.shards.clone()).collect::<Vec<_>>()
        };
        if plans.iter().any(|p| shards_of(p) != shards_of(&plans[0])) {
            return Err(XcoderError::config(
                "activation stores",
                "the readers planned different windows although the shard layouts agree; this is a bug",
            ));
        }
        let readers = stores
            .iter()
            .zip(&configs)
            .enumerate()
            .map(|(i, (s, c))| match &positions {
                Some(p) => s.reader_at(*c, p[i]),
                None => s.reader(*c),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            paths: paths.to_vec(),
            config,
            widths: stores.iter().map(Store::d_in).collect(),
            names: stores
                .iter()
                .zip(paths)
                .map(|(s, p)| block_name(s, p))
                .collect(),
            scratch: vec![Vec::new(); stores.len()],
            readers,
        })
    }

    /// One block per store: its hook site (or path) and width.
    pub fn blocks(&self) -> Vec<Block> {
        self.names
            .iter()
            .zip(&self.widths)
            .map(|(n, &w)| Block::new(n.clone(), w))
            .collect()
    }
}

impl ActivationSource for AlignedStores {
    type Error = StoreError;

    fn d_in(&self) -> usize {
        self.widths.iter().sum()
    }

    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, StoreError> {
        out.clear();
        let mut got = None;
        for (reader, buf) in self.readers.iter_mut().zip(self.scratch.iter_mut()) {
            let n = reader.next_batch(rows, buf)?;
            if got.is_some_and(|g| g != n) {
                return Err(StoreError::Position(format!(
                    "aligned stores handed out different numbers of rows ({} and {n})",
                    got.unwrap_or(0)
                )));
            }
            got = Some(n);
        }
        let n = got.unwrap_or(0);
        if self.readers.len() == 1 {
            std::mem::swap(out, &mut self.scratch[0]);
            return Ok(n);
        }
        out.reserve(n * self.d_in());
        for r in 0..n {
            for (buf, &w) in self.scratch.iter().zip(&self.widths) {
                out.extend_from_slice(&buf[r * w..(r + 1) * w]);
            }
        }
        Ok(n)
    }
}

/// A source of training rows that can be put back at a saved position,
/// so that a resumed run (or a resumed stage of model diffing) reads exactly
/// the rows an uninterrupted one would have.
pub trait RowSource: ActivationSource + SourcePosition {
    /// Continues from `position` (as returned by [`SourcePosition::position`]).
    fn restore(&mut self, position: &serde_json::Value) -> Result<(), XcoderError>;
}

impl RowSource for AlignedStores {
    fn restore(&mut self, position: &serde_json::Value) -> Result<(), XcoderError> {
        *self = AlignedStores::open_at(&self.paths, self.config, position)?;
        Ok(())
    }
}

impl RowSource for crate::planted::Planted {
    fn restore(&mut self, position: &serde_json::Value) -> Result<(), XcoderError> {
        self.seek_to(position)
    }
}

impl SourcePosition for AlignedStores {
    fn position(&self) -> serde_json::Value {
        let positions: Vec<ReaderPosition> =
            self.readers.iter().map(ShuffledReader::position).collect();
        serde_json::json!({ "aligned_stores": positions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_store::{StoreConfig, StoreWriter};

    /// Writes a store whose row `r` is `[r * scale + c for c in 0..d]`.
    fn write(dir: &Path, d: usize, rows: usize, scale: f32, rows_per_shard: usize) {
        let config = StoreConfig {
            rows_per_shard,
            ..StoreConfig::new(d)
        };
        let mut w = StoreWriter::create(dir, config).unwrap();
        let values: Vec<f32> = (0..rows)
            .flat_map(|r| (0..d).map(move |c| r as f32 * scale + c as f32 * 0.001))
            .collect();
        w.push_rows(&values).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn rows_stay_aligned_across_shuffled_stores_and_resume() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        write(&a, 3, 500, 1.0, 50);
        write(&b, 7, 500, 10.0, 50);
        let config = ReaderConfig {
            seed: 5,
            // Small enough for several windows per epoch.
            memory_ceiling_bytes: 2 * 120 * (row_bytes(3, true) + row_bytes(7, true)),
            shuffle: true,
            cycle: true,
        };
        let paths = vec![a.clone(), b.clone()];
        let mut src = AlignedStores::open(&paths, config).unwrap();
        assert_eq!(src.d_in(), 10);
        let mut out = Vec::new();
        let mut firsts = Vec::new();
        for _ in 0..8 {
            // 8 batches of 90 rows: crosses windows and the epoch boundary.
            assert_eq!(src.next_batch(90, &mut out).unwrap(), 90);
            for row in out.chunks_exact(10) {
                let r = row[0].round();
                assert_eq!(row[3], r * 10.0, "store b's row matches store a's");
                firsts.push(r as usize);
            }
        }
        let mut epoch: Vec<usize> = firsts[..500].to_vec();
        epoch.sort_unstable();
        assert_eq!(
            epoch,
            (0..500).collect::<Vec<_>>(),
            "every row once per epoch"
        );
        assert_ne!(&firsts[..20], &(0..20).collect::<Vec<_>>()[..], "shuffled");

        // Resume from a saved position.
        let mut src = AlignedStores::open(&paths, config).unwrap();
        src.next_batch(130, &mut out).unwrap();
        let pos = src.position();
        let mut expected = Vec::new();
        src.next_batch(70, &mut expected).unwrap();
        let mut resumed = AlignedStores::open_at(&paths, config, &pos).unwrap();
        resumed.next_batch(70, &mut out).unwrap();
        assert_eq!(out, expected);
    }

    #[test]
    fn misaligned_stores_are_refused_naming_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        write(&a, 2, 100, 1.0, 50);
        write(&b, 2, 100, 1.0, 40);
        let err = AlignedStores::open(&[a, b.clone()], ReaderConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&b.display().to_string()) && err.contains("rows_per_shard"),
            "{err}"
        );
        let err = AlignedStores::open(&[], ReaderConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one store"), "{err}");
    }
}
