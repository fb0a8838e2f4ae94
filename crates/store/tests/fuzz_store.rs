//! Fuzzing the activation store's readers (issue 20): a store whose
//! manifest, shard or saved reader position is random or mutated opens,
//! verifies and reads to `Ok` or a clean error, never a panic, a hang or an
//! allocation the file does not justify. `KIBITZER_FUZZ_CASES` sets the
//! cases; see testing/fuzz.rs.

#[path = "../../../testing/fuzz.rs"]
mod fuzz;

use kibitzer_store::{
    ActivationSource, ColumnDtype, ColumnSpec, ColumnValues, Dtype, MANIFEST, ReaderConfig,
    ReaderPosition, Store, StoreConfig, StoreWriter,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

/// The files of two valid stores: f32 rows with an i64 and a `[2]` u16
/// column over three shards, and bf16 rows in one shard.
fn stores() -> &'static [BTreeMap<String, Vec<u8>>; 2] {
    static STORES: OnceLock<[BTreeMap<String, Vec<u8>>; 2]> = OnceLock::new();
    STORES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let files = |path: &Path| -> BTreeMap<String, Vec<u8>> {
            std::fs::read_dir(path)
                .expect("the store")
                .map(|e| {
                    let e = e.expect("an entry");
                    let name = e.file_name().into_string().expect("UTF-8");
                    (name, std::fs::read(e.path()).expect("readable"))
                })
                .collect()
        };
        let a = dir.path().join("a");
        let config = StoreConfig {
            rows_per_shard: 4,
            extra_columns: vec![
                ColumnSpec::scalar("example", ColumnDtype::I64),
                ColumnSpec {
                    name: "pair".into(),
                    dtype: ColumnDtype::U16,
                    row_shape: vec![2],
                },
            ],
            metadata: serde_json::json!({ "hook_site": "blocks.0.hook_resid_post" }),
            ..StoreConfig::new(3)
        };
        let mut writer = StoreWriter::create(&a, config).expect("a writer");
        let rows: Vec<f32> = (0..30).map(|v| v as f32 * 0.5 - 3.0).collect();
        let examples: Vec<i64> = (0..10).collect();
        let pairs: Vec<u16> = (0..20).collect();
        writer
            .push_rows_with(
                &rows,
                &[
                    ("example", ColumnValues::I64(&examples)),
                    ("pair", ColumnValues::U16(&pairs)),
                ],
            )
            .expect("rows");
        writer.finish().expect("finished");
        let b = dir.path().join("b");
        let config = StoreConfig {
            dtype: Dtype::Bf16,
            rows_per_shard: 8,
            ..StoreConfig::new(5)
        };
        let mut writer = StoreWriter::create(&b, config).expect("a writer");
        writer
            .push_rows(&(0..35).map(|v| v as f32).collect::<Vec<_>>())
            .expect("rows");
        writer.finish().expect("finished");
        [files(&a), files(&b)]
    })
}

/// Opens, verifies and reads everything of the store in `dir` (each step
/// may fail cleanly); a reader must end.
fn exercise(dir: &Path, position: Option<&[u8]>) {
    let Ok(store) = Store::open(dir) else {
        return;
    };
    let _ = store.verify();
    for i in 0..store.shards().len() {
        let _ = store.read_shard_with_columns(i);
        let _ = store.first_row_of_shard(i);
    }
    for column in &store.manifest().extra_columns {
        let _ = store.column(&column.name);
    }
    for shuffle in [false, true] {
        let config = ReaderConfig {
            seed: 3,
            memory_ceiling_bytes: 1 << 16,
            shuffle,
            cycle: false,
        };
        let reader = match position {
            Some(bytes) => match serde_json::from_slice::<ReaderPosition>(bytes) {
                Ok(position) => store.reader_at(config, position),
                Err(_) => return,
            },
            None => store.reader(config),
        };
        let Ok(mut reader) = reader else {
            continue;
        };
        let mut batch = Vec::new();
        for _ in 0..10_000 {
            match reader.next_batch(7, &mut batch) {
                Ok(0) | Err(_) => break,
                Ok(n) => assert_eq!(batch.len(), n * store.d_in()),
            }
        }
    }
}

/// Writes store `which` into a new directory with `file` replaced by
/// `bytes`, and exercises it.
fn with_file(which: usize, file: &str, bytes: &[u8], position: Option<&[u8]>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, content) in &stores()[which] {
        let content = if name == file { bytes } else { content };
        std::fs::write(dir.path().join(name), content).expect("written");
    }
    exercise(dir.path(), position);
}

fn manifests() -> Vec<Vec<u8>> {
    stores().iter().map(|s| s[MANIFEST].clone()).collect()
}

fn first_shards() -> Vec<Vec<u8>> {
    stores()
        .iter()
        .map(|s| {
            s.iter()
                .find(|(name, _)| name.ends_with(".safetensors"))
                .expect("a shard")
                .1
                .clone()
        })
        .collect()
}

proptest! {
    #![proptest_config(fuzz::config(4_000))]

    #[test]
    fn store_manifest_answers_every_input(
        which in 0..2usize,
        input in fuzz::inputs(manifests(), 4096),
    ) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || with_file(which, MANIFEST, &bytes, None))?;
    }

    #[test]
    fn store_shard_answers_every_input(
        which in 0..2usize,
        input in fuzz::inputs(first_shards(), 4096),
    ) {
        let bytes = input.clone();
        let shard = stores()[which]
            .keys()
            .find(|name| name.ends_with(".safetensors"))
            .expect("a shard")
            .clone();
        fuzz::within_deadline(&input, move || with_file(which, &shard, &bytes, None))?;
    }

    #[test]
    fn reader_position_answers_every_input(
        input in fuzz::inputs(
            vec![
                br#"{"epoch":0,"window":1,"offset":3}"#.to_vec(),
                br#"{"epoch":2,"window":0,"offset":0,"check":{"seed":3,"memory_ceiling_bytes":65536,"shuffle":true,"store":1}}"#.to_vec(),
            ],
            512,
        ),
    ) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || {
            let dir = tempfile::tempdir().expect("a temp dir");
            for (name, content) in &stores()[0] {
                std::fs::write(dir.path().join(name), content).expect("written");
            }
            exercise(dir.path(), Some(&bytes));
        })?;
    }
}
