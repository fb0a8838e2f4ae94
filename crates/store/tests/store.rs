//! Writing, opening and validating stores.

mod common;

use common::*;
use kibitzer_store::*;
use std::path::Path;

/// Values of varied sign and magnitude (all finite in f16).
fn varied(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.37).sin() * 10f32.powi(i as i32 % 7 - 3))
        .collect()
}

fn shard_path(dir: &Path, index: usize) -> std::path::PathBuf {
    dir.join(shard_file_name(index))
}

#[test]
fn round_trip_in_every_dtype() {
    let d = 4;
    let data = varied(41 * d);
    for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            dtype,
            rows_per_shard: 10,
            metadata: serde_json::json!({"model": "othello-gpt", "hook": "blocks.3.hook_resid_post"}),
            ..StoreConfig::new(d)
        };
        let mut writer = StoreWriter::create(dir.path(), config).unwrap();
        writer.push_rows(&data).unwrap();
        let manifest = writer.finish().unwrap();
        assert_eq!(
            (
                manifest.rows,
                manifest.shards.len(),
                manifest.dtype,
                manifest.d_in
            ),
            (41, 5, dtype, d)
        );
        assert_eq!(
            manifest.shards.iter().map(|s| s.rows).collect::<Vec<_>>(),
            [10, 10, 10, 10, 1]
        );
        for (i, shard) in manifest.shards.iter().enumerate() {
            let bytes = std::fs::read(dir.path().join(&shard.file)).unwrap();
            assert_eq!(shard.file, format!("shard_{i:05}.safetensors"));
            assert_eq!(shard.bytes, bytes.len() as u64);
            assert_eq!(shard.xxh64, format!("{:016x}", Xxh64::hash(&bytes)));
        }

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.manifest(), &manifest);
        assert_eq!(store.metadata()["hook"], "blocks.3.hook_resid_post");
        let mut back = Vec::new();
        for i in 0..store.shards().len() {
            back.extend(store.read_shard(i).unwrap());
        }
        let mut reader = store
            .reader(ReaderConfig {
                shuffle: false,
                cycle: false,
                ..ReaderConfig::default()
            })
            .unwrap();
        let mut batch = Vec::new();
        assert_eq!(reader.next_batch(1000, &mut batch).unwrap(), 41);
        assert_eq!(batch, back, "the reader and read_shard agree");
        // Relative precision of each format (round to nearest: half an ulp),
        // with an absolute floor for f16's subnormals.
        let (relative, absolute) = match dtype {
            Dtype::F32 => (0.0, 0.0),
            Dtype::F16 => (2f32.powi(-11), 2f32.powi(-25)),
            Dtype::Bf16 => (2f32.powi(-8), 0.0),
        };
        for (i, (got, want)) in back.iter().zip(&data).enumerate() {
            let error = (got - want).abs();
            assert!(
                error <= relative * want.abs() + absolute,
                "{dtype}: value {i}: {got} read back for {want}"
            );
        }
        if dtype == Dtype::F32 {
            assert_eq!(back, data, "f32 is exact");
        } else {
            assert_ne!(
                back, data,
                "{dtype} rounds (otherwise this test checks nothing)"
            );
        }
        assert_eq!(reader.next_batch(10, &mut batch).unwrap(), 0);
        store.verify().unwrap();
    }
}

#[test]
fn shards_are_plain_safetensors_with_extra_columns() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        rows_per_shard: 4,
        dtype: Dtype::Bf16,
        extra_columns: vec![
            ColumnSpec::scalar("position_index", ColumnDtype::I64),
            ColumnSpec {
                name: "square".into(),
                dtype: ColumnDtype::U32,
                row_shape: vec![2],
            },
        ],
        ..StoreConfig::new(3)
    };
    let mut writer = StoreWriter::create(dir.path(), config).unwrap();
    for start in [0usize, 3] {
        let rows = if start == 0 { 3 } else { 6 };
        let acts: Vec<f32> = (start..start + rows).flat_map(|r| [r as f32; 3]).collect();
        let positions: Vec<i64> = (start..start + rows).map(|r| 1000 + r as i64).collect();
        let squares: Vec<u32> = (start..start + rows)
            .flat_map(|r| [r as u32, 2 * r as u32])
            .collect();
        writer
            .push_rows_with(
                &acts,
                &[
                    ("square", ColumnValues::U32(&squares)),
                    ("position_index", ColumnValues::I64(&positions)),
                ],
            )
            .unwrap();
    }
    writer.finish().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.rows(), 9);
    assert_eq!(
        store.column("position_index").unwrap(),
        ColumnData::I64((1000..1009).collect())
    );
    assert_eq!(
        store.column("square").unwrap(),
        ColumnData::U32((0..9).flat_map(|r| [r, 2 * r]).collect())
    );
    let shard = store.read_shard_with_columns(1).unwrap();
    assert_eq!(ids(&shard.activations, 3), [4, 5, 6, 7]);
    assert_eq!(
        shard.columns["position_index"],
        ColumnData::I64(vec![1004, 1005, 1006, 1007])
    );
    assert!(
        store
            .column("nope")
            .unwrap_err()
            .to_string()
            .contains("no such column")
    );

    // The safetensors crate (what Python's safetensors wraps) reads the file,
    // with every tensor aligned to its element size.
    let bytes = std::fs::read(shard_path(dir.path(), 1)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let acts = st.tensor(ACTIVATIONS).unwrap();
    assert_eq!(
        (acts.dtype(), acts.shape()),
        (safetensors::Dtype::BF16, &[4usize, 3][..])
    );
    let positions = st.tensor("position_index").unwrap();
    assert_eq!(
        (positions.dtype(), positions.shape()),
        (safetensors::Dtype::I64, &[4usize][..])
    );
    assert_eq!(
        i64::from_le_bytes(positions.data()[..8].try_into().unwrap()),
        1004
    );
    assert_eq!(st.tensor("square").unwrap().shape(), [4, 2]);
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    for name in [ACTIVATIONS, "position_index", "square"] {
        let info = metadata.info(name).unwrap();
        let size = if name == "position_index" {
            8
        } else if name == "square" {
            4
        } else {
            2
        };
        assert_eq!(info.data_offsets.0 % size, 0, "{name} is aligned");
    }
}

#[test]
fn bad_rows_are_refused_naming_row_and_column_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = StoreWriter::create(
        dir.path(),
        StoreConfig {
            rows_per_shard: 2,
            ..StoreConfig::new(3)
        },
    )
    .unwrap();
    writer.push_rows(&[1.0; 9]).unwrap();
    // Rows 3 and 4 of the store: the NaN is in row 4, column 1. The first
    // row of the call would complete a shard, but nothing of a refused call
    // is written.
    let err = writer
        .push_rows(&[2.0, 2.0, 2.0, 0.0, f32::NAN, 0.0])
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NonFiniteInput {
                row: 4,
                row_in_call: 1,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("row 4") && message.contains("column 1") && message.contains("NaN"),
        "{message}"
    );
    let err = writer
        .push_rows(&[f32::NEG_INFINITY, 0.0, 0.0])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 3") && err.contains("column 0") && err.contains("-inf"),
        "{err}"
    );
    let err = writer.push_rows(&[0.0; 4]).unwrap_err().to_string();
    assert!(
        err.contains("4 values") && err.contains("whole rows of 3"),
        "{err}"
    );
    assert_eq!(writer.rows(), 3);
    writer.push_rows(&[5.0; 3]).unwrap();
    let manifest = writer.finish().unwrap();
    assert_eq!(manifest.rows, 4);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.read_shard(1).unwrap(), [1.0, 1.0, 1.0, 5.0, 5.0, 5.0]);
}

#[test]
fn values_beyond_a_half_precision_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = StoreWriter::create(
        dir.path(),
        StoreConfig {
            dtype: Dtype::F16,
            ..StoreConfig::new(2)
        },
    )
    .unwrap();
    writer.push_rows(&[65504.0, -65504.0]).unwrap();
    let err = writer.push_rows(&[1.0, 2.0, 3.0, 70000.0]).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Overflow {
                row: 2,
                column: 1,
                dtype: Dtype::F16,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("65504"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let mut writer = StoreWriter::create(
        dir.path(),
        StoreConfig {
            dtype: Dtype::Bf16,
            ..StoreConfig::new(1)
        },
    )
    .unwrap();
    writer.push_rows(&[1e38]).unwrap();
    assert!(matches!(
        writer.push_rows(&[f32::MAX]),
        Err(StoreError::Overflow { row: 1, .. })
    ));
}

#[test]
fn extra_columns_must_match_their_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        extra_columns: vec![ColumnSpec::scalar("pos", ColumnDtype::I64)],
        ..StoreConfig::new(2)
    };
    let mut writer = StoreWriter::create(dir.path(), config).unwrap();
    let acts = [0.0; 4];
    let cases: Vec<(Vec<(&str, ColumnValues)>, &str)> = vec![
        (vec![], "was not given"),
        (vec![("pos", ColumnValues::U32(&[1, 2]))], "declared I64"),
        (
            vec![("pos", ColumnValues::I64(&[1]))],
            "1 values given for 2 rows",
        ),
        (
            vec![
                ("pos", ColumnValues::I64(&[1, 2])),
                ("other", ColumnValues::I64(&[1, 2])),
            ],
            "not declared",
        ),
        (
            vec![
                ("pos", ColumnValues::I64(&[1, 2])),
                ("pos", ColumnValues::I64(&[1, 2])),
            ],
            "twice",
        ),
    ];
    for (columns, expected) in cases {
        let err = writer
            .push_rows_with(&acts, &columns)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
    assert!(
        writer
            .push_rows(&acts)
            .unwrap_err()
            .to_string()
            .contains("`pos`")
    );
    assert_eq!(writer.rows(), 0);
    writer
        .push_rows_with(&acts, &[("pos", ColumnValues::I64(&[7, 8]))])
        .unwrap();
    assert_eq!(writer.rows(), 2);
}

#[test]
fn bad_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (StoreConfig::new(0), "d_in"),
        (
            StoreConfig {
                rows_per_shard: 0,
                ..StoreConfig::new(2)
            },
            "rows_per_shard",
        ),
        (
            StoreConfig {
                extra_columns: vec![ColumnSpec::scalar(ACTIVATIONS, ColumnDtype::U8)],
                ..StoreConfig::new(2)
            },
            "reserved",
        ),
        (
            StoreConfig {
                extra_columns: vec![
                    ColumnSpec::scalar("a", ColumnDtype::U8),
                    ColumnSpec::scalar("a", ColumnDtype::U8),
                ],
                ..StoreConfig::new(2)
            },
            "twice",
        ),
    ];
    for (config, expected) in cases {
        let err = StoreWriter::create(dir.path(), config)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
    }
}

#[test]
fn a_store_exists_only_once_finished_and_shards_are_never_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = StoreWriter::create(
        dir.path(),
        StoreConfig {
            rows_per_shard: 4,
            ..StoreConfig::new(2)
        },
    )
    .unwrap();
    writer.push_rows(&[1.0; 2 * 10]).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // Two full shards; the two pending rows are not on disk; no temporary files; no manifest.
    assert_eq!(
        names,
        ["shard_00000.safetensors", "shard_00001.safetensors"]
    );
    for name in &names {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor(ACTIVATIONS).unwrap().shape(),
            [4, 2],
            "{name} is complete"
        );
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    assert!(err.to_string().contains("no manifest.json"), "{err}");

    // A writer dropped before finish leaves no store, and its shards are
    // not silently reused or mixed into a new store.
    drop(writer);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::NotAStore { .. })
    ));
    let err = StoreWriter::create(dir.path(), StoreConfig::new(2))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unfinished store") && err.contains("overwrite"),
        "{err}"
    );
}

#[test]
fn existing_stores_are_kept_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    numbered(dir.path(), 10, 1, 2, Dtype::F32);
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = StoreWriter::create(dir.path(), StoreConfig::new(1)).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("already holds an activation store"),
        "{err}"
    );
    assert_eq!(
        Store::open(dir.path()).unwrap().rows(),
        10,
        "the refused writer touched nothing"
    );

    let mut writer = StoreWriter::create(
        dir.path(),
        StoreConfig {
            overwrite: true,
            ..StoreConfig::new(1)
        },
    )
    .unwrap();
    // While the new store is being written, the old one is gone.
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::NotAStore { .. })
    ));
    writer.push_rows(&[9.0]).unwrap();
    writer.finish().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.read_shard(0).unwrap(), [9.0]);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["manifest.json", "notes.txt", "shard_00000.safetensors"]
    );
}

#[test]
fn a_wrong_d_in_is_named_with_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    numbered(dir.path(), 20, 2, 10, Dtype::F32);
    // A manifest claiming d_in 4 over shards of width 2: same byte counts,
    // so only the shapes can tell.
    edit_manifest(dir.path(), |m| {
        m["d_in"] = 4.into();
        m["rows"] = 10.into();
        for shard in m["shards"].as_array_mut().unwrap() {
            shard["rows"] = 5.into();
        }
    });
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::ShardLayout { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("shard_00000.safetensors")
            && message.contains("[10, 2]")
            && message.contains("[5, 4]"),
        "{message}"
    );
}

#[test]
fn missing_and_truncated_shards_are_named() {
    let dir = tempfile::tempdir().unwrap();
    numbered(dir.path(), 30, 2, 10, Dtype::F16);
    let shard = shard_path(dir.path(), 1);
    let bytes = std::fs::read(&shard).unwrap();

    std::fs::write(&shard, &bytes[..bytes.len() - 3]).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::ShardSize { path, found, expected } if path == &shard && *found + 3 == *expected),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("shard_00001.safetensors")
            && err.to_string().contains("truncated"),
        "{err}"
    );

    std::fs::remove_file(&shard).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, StoreError::MissingShard { path } if path == &shard),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("shard_00001.safetensors") && err.to_string().contains("missing"),
        "{err}"
    );
}

#[test]
fn a_checksum_mismatch_is_named_whenever_the_shard_is_read() {
    let dir = tempfile::tempdir().unwrap();
    numbered(dir.path(), 30, 2, 10, Dtype::F32);
    let shard = shard_path(dir.path(), 2);
    let mut bytes = std::fs::read(&shard).unwrap();
    let at = activations_offset(&bytes) + 5;
    bytes[at] ^= 0x10; // a finite value changes; only the checksum can tell
    std::fs::write(&shard, &bytes).unwrap();

    let store = Store::open(dir.path()).unwrap(); // layout and size are fine
    let expect_checksum = |err: StoreError| {
        assert!(
            matches!(&err, StoreError::Checksum { path, .. } if path == &shard),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("shard_00002.safetensors")
                && err.to_string().contains("checksum mismatch"),
            "{err}"
        );
    };
    expect_checksum(store.read_shard(2).unwrap_err());
    expect_checksum(store.verify().unwrap_err());
    assert!(store.read_shard(1).is_ok(), "other shards still read");
    // One shard per window (10 rows of 2 f32, two windows).
    let config = ReaderConfig {
        memory_ceiling_bytes: 2 * 10 * 8,
        shuffle: false,
        cycle: false,
        seed: 0,
    };
    let mut reader = store.reader(config).unwrap();
    let mut batch = Vec::new();
    assert_eq!(reader.next_batch(20, &mut batch).unwrap(), 20);
    expect_checksum(reader.next_batch(20, &mut batch).unwrap_err());
    // The failed window is retried, and fails the same way, rather than hanging.
    expect_checksum(reader.next_batch(20, &mut batch).unwrap_err());
}

#[test]
fn non_finite_values_on_disk_are_named_with_file_and_row() {
    for (value, shown) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let dir = tempfile::tempdir().unwrap();
        numbered(dir.path(), 25, 3, 10, Dtype::F32);
        // Row 7 of shard 1 (row 17 of the store), column 2, written behind
        // the writer's back by some other tool, with a matching checksum.
        let shard = shard_path(dir.path(), 1);
        let mut bytes = std::fs::read(&shard).unwrap();
        let at = activations_offset(&bytes) + (7 * 3 + 2) * 4;
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        std::fs::write(&shard, &bytes).unwrap();
        reseal_shard(dir.path(), 1);

        let store = Store::open(dir.path()).unwrap();
        let err = store.read_shard(1).unwrap_err();
        assert!(
            matches!(&err, StoreError::NonFiniteInShard { path, row_in_shard: 7, row: 17, column: 2, .. } if path == &shard),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("shard_00001.safetensors")
                && message.contains("row 7")
                && message.contains("row 17")
                && message.contains(shown),
            "{message}"
        );
        let config = ReaderConfig {
            memory_ceiling_bytes: 2 * 10 * 12,
            shuffle: false,
            cycle: false,
            seed: 0,
        };
        let mut reader = store.reader(config).unwrap();
        let mut batch = Vec::new();
        assert_eq!(reader.next_batch(10, &mut batch).unwrap(), 10);
        assert!(matches!(
            reader.next_batch(10, &mut batch),
            Err(StoreError::NonFiniteInShard { row: 17, .. })
        ));
    }
}

#[test]
fn non_finite_values_deep_in_a_large_shard_are_named_with_their_row() {
    // 20,000 rows of 4: the bad value lies several read chunks into the file.
    for (dtype, bad) in [
        (Dtype::F32, f32::NAN.to_le_bytes().to_vec()),
        (Dtype::F16, 0x7c00u16.to_le_bytes().to_vec()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            dtype,
            rows_per_shard: 20_000,
            ..StoreConfig::new(4)
        };
        let mut writer = StoreWriter::create(dir.path(), config).unwrap();
        writer.push_rows(&vec![0.25; 4 * 20_000]).unwrap();
        writer.finish().unwrap();
        let shard = shard_path(dir.path(), 0);
        let mut bytes = std::fs::read(&shard).unwrap();
        let at = activations_offset(&bytes) + (17_500 * 4 + 1) * dtype.size();
        bytes[at..at + dtype.size()].copy_from_slice(&bad);
        std::fs::write(&shard, &bytes).unwrap();
        reseal_shard(dir.path(), 0);
        let err = Store::open(dir.path()).unwrap().verify().unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::NonFiniteInShard {
                    row_in_shard: 17_500,
                    row: 17_500,
                    column: 1,
                    ..
                }
            ),
            "{dtype}: {err:?}"
        );
    }
}

#[test]
fn inconsistent_manifests_are_named() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|m| m["version"] = 2.into()), "`version` is 2"),
        (Box::new(|m| m["format"] = "other".into()), "`format`"),
        (
            Box::new(|m| m["rows"] = 11.into()),
            "hold 10 rows but `rows` is 11",
        ),
        (
            Box::new(|m| m["shards"][0]["file"] = "../shard_00000.safetensors".into()),
            "not a plain file name",
        ),
        (
            Box::new(|m| m["shards"][1]["xxh64"] = "xyz".into()),
            "16 hex digits",
        ),
        (
            Box::new(|m| m["dtype"] = "f8".into()),
            "not a valid manifest",
        ),
    ];
    for (edit, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        numbered(dir.path(), 10, 2, 5, Dtype::F32);
        edit_manifest(dir.path(), edit);
        let err = Store::open(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Manifest { .. }), "{err:?}");
        assert!(
            message.contains("manifest.json") && message.contains(expected),
            "expected {expected:?} in: {message}"
        );
    }
}

#[test]
fn write_from_source_drains_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = InMemorySource::new((0..40).map(|v| v as f32).collect(), 2).unwrap();
    let mut progress = Vec::new();
    let config = StoreConfig {
        rows_per_shard: 4,
        ..StoreConfig::new(2)
    };
    let manifest =
        write_from_source(&mut source, dir.path(), config, 7, |n| progress.push(n)).unwrap();
    assert_eq!(manifest.rows, 7);
    assert_eq!(progress.last(), Some(&7));
    assert!(progress.windows(2).all(|w| w[0] < w[1]));
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.read_shard(1).unwrap(), [8., 9., 10., 11., 12., 13.]);
    assert_eq!(
        source.remaining_rows(),
        13,
        "only the rows asked for were taken"
    );

    // A source that runs out first: the store holds what there was.
    let other = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        rows_per_shard: 4,
        ..StoreConfig::new(2)
    };
    assert_eq!(
        write_from_source(&mut source, other.path(), config, 1000, |_| {})
            .unwrap()
            .rows,
        13
    );

    let config = StoreConfig::new(3);
    let err = write_from_source(
        &mut source,
        tempfile::tempdir().unwrap().path(),
        config,
        1,
        |_| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("width 2") && err.to_string().contains("d_in = 3"),
        "{err}"
    );
}

/// Reads a store from Python, as the README shows. Needs `python3` with
/// `numpy`, `safetensors` and `xxhash`:
/// `pip install numpy safetensors xxhash && cargo test -p kibitzer-store -- --ignored python`
#[test]
#[ignore = "needs python3 with numpy, safetensors and xxhash"]
fn python_reads_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        dtype: Dtype::F16,
        rows_per_shard: 6,
        extra_columns: vec![ColumnSpec::scalar("position_index", ColumnDtype::I64)],
        ..StoreConfig::new(3)
    };
    let mut writer = StoreWriter::create(dir.path(), config).unwrap();
    let acts: Vec<f32> = (0..10).flat_map(|r| [r as f32, 0.5, -1.0]).collect();
    let positions: Vec<i64> = (0..10).collect();
    writer
        .push_rows_with(&acts, &[("position_index", ColumnValues::I64(&positions))])
        .unwrap();
    writer.finish().unwrap();
    let script = r#"
import json, sys, xxhash, numpy as np
from safetensors.numpy import load_file
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
acts = np.concatenate([load_file(f"{d}/{s['file']}")["activations"] for s in m["shards"]])
pos = np.concatenate([load_file(f"{d}/{s['file']}")["position_index"] for s in m["shards"]])
assert acts.shape == (m["rows"], m["d_in"]) and acts.dtype == np.float16, (acts.shape, acts.dtype)
assert (acts[:, 0] == np.arange(10)).all() and (acts[:, 1] == 0.5).all() and (pos == np.arange(10)).all()
for s in m["shards"]:
    assert xxhash.xxh64(open(f"{d}/{s['file']}", "rb").read()).hexdigest() == s["xxh64"]
print("ok")
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");

    // The README's numpy fallback for bf16.
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        dtype: Dtype::Bf16,
        ..StoreConfig::new(2)
    };
    let mut writer = StoreWriter::create(dir.path(), config).unwrap();
    writer.push_rows(&[1.5, -2.0, 3.0, 256.0]).unwrap();
    writer.finish().unwrap();
    let script = r#"
import json, sys, numpy as np
def load_bf16(path):
    b = open(path, "rb").read(); n = int.from_bytes(b[:8], "little"); t = json.loads(b[8:8 + n])["activations"]
    bits = np.frombuffer(b[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]], dtype="<u2")
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(t["shape"])
acts = load_bf16(f"{sys.argv[1]}/shard_00000.safetensors")
assert acts.tolist() == [[1.5, -2.0], [3.0, 256.0]], acts
print("ok")
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

/// Issue 20 #8: a store directory that does not exist is reported as
/// missing, not as a directory without a manifest.
#[test]
fn missing_store_directory_is_reported_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    let err = Store::open(&missing).unwrap_err();
    assert!(matches!(err, StoreError::MissingDir { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no-such-store")
            && text.contains("does not exist")
            && !text.contains("manifest"),
        "{text}"
    );
    // An existing directory without a manifest is still "not a store".
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::NotAStore { .. })
    ));
}
