//! Helpers shared by the integration tests.
#![allow(dead_code)]

use kibitzer_store::*;
use std::path::Path;

/// Writes a store whose row r holds the value r in every column, so each row
/// read back says which row it is. Rows are pushed in pieces of 7 so that
/// pushes straddle shard boundaries.
pub fn numbered(dir: &Path, rows: usize, d: usize, per_shard: usize, dtype: Dtype) -> Store {
    let config = StoreConfig {
        dtype,
        rows_per_shard: per_shard,
        ..StoreConfig::new(d)
    };
    let mut writer = StoreWriter::create(dir, config).unwrap();
    let data: Vec<f32> = (0..rows)
        .flat_map(|r| std::iter::repeat_n(r as f32, d))
        .collect();
    for piece in data.chunks(7 * d) {
        writer.push_rows(piece).unwrap();
    }
    writer.finish().unwrap();
    Store::open(dir).unwrap()
}

/// The row ids of a batch of numbered rows (checking no row is torn).
pub fn ids(batch: &[f32], d: usize) -> Vec<usize> {
    batch
        .chunks(d)
        .map(|row| {
            assert!(
                row.iter().all(|v| *v == row[0]),
                "a row mixes values of several rows: {row:?}"
            );
            row[0] as usize
        })
        .collect()
}

/// Reads `n` rows in batches of `batch` (the last one shorter) and returns their ids.
pub fn read_ids(reader: &mut ShuffledReader, n: usize, batch: usize) -> Vec<usize> {
    let d = reader.d_in();
    let mut out = Vec::with_capacity(n);
    let mut buffer = Vec::new();
    while out.len() < n {
        let got = reader
            .next_batch(batch.min(n - out.len()), &mut buffer)
            .unwrap();
        assert!(got > 0, "the reader ran dry after {} rows", out.len());
        assert_eq!(buffer.len(), got * d);
        out.extend(ids(&buffer, d));
    }
    out
}

/// A shuffling, cycling reader config whose ceiling holds two windows of
/// `window_rows` rows of width `d` (each row also costs 4 bytes of order).
pub fn config(seed: u64, window_rows: usize, d: usize) -> ReaderConfig {
    ReaderConfig {
        seed,
        memory_ceiling_bytes: 2 * window_rows * (4 * d + 4),
        shuffle: true,
        cycle: true,
    }
}

/// After a test edits a shard's bytes on purpose, records its new length and
/// checksum in the manifest, so only the edit itself is left to be caught.
pub fn reseal_shard(dir: &Path, index: usize) {
    let path = dir.join(MANIFEST);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let file = manifest["shards"][index]["file"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = std::fs::read(dir.join(file)).unwrap();
    manifest["shards"][index]["bytes"] = bytes.len().into();
    manifest["shards"][index]["xxh64"] = format!("{:016x}", Xxh64::hash(&bytes)).into();
    std::fs::write(&path, manifest.to_string()).unwrap();
}

/// Edits the manifest as JSON.
pub fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(MANIFEST);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, manifest.to_string()).unwrap();
}

/// Byte offset of the activation tensor's data in a shard file.
pub fn activations_offset(bytes: &[u8]) -> usize {
    let (header_len, metadata) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    8 + header_len + metadata.info(ACTIVATIONS).unwrap().data_offsets.0
}
