//! Shuffled, resumable reading.

mod common;

use common::*;
use kibitzer_store::*;
use proptest::prelude::*;

fn sorted(mut ids: Vec<usize>) -> Vec<usize> {
    ids.sort_unstable();
    ids
}

#[test]
fn every_epoch_is_a_permutation_of_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = numbered(dir.path(), 103, 2, 10, Dtype::F32);
    // Windows of 1, 3 and all 11 shards.
    for window_rows in [10, 30, 200] {
        let mut reader = store.reader(config(5, window_rows, 2)).unwrap();
        let epochs: Vec<Vec<usize>> = (0..3).map(|_| read_ids(&mut reader, 103, 17)).collect();
        for epoch in &epochs {
            assert_eq!(
                sorted(epoch.clone()),
                (0..103).collect::<Vec<_>>(),
                "window of {window_rows} rows"
            );
        }
        assert_ne!(epochs[0], (0..103).collect::<Vec<_>>(), "rows are shuffled");
        assert_ne!(epochs[0], epochs[1], "each epoch is reshuffled");
        assert_ne!(epochs[1], epochs[2]);
        assert_eq!(reader.position().epoch, 3);
    }
}

#[test]
fn same_seed_same_order_whatever_the_batch_size_and_other_seeds_differ() {
    let dir = tempfile::tempdir().unwrap();
    let store = numbered(dir.path(), 90, 3, 8, Dtype::F16);
    let first = read_ids(&mut store.reader(config(11, 20, 3)).unwrap(), 270, 13);
    assert_eq!(
        first,
        read_ids(&mut store.reader(config(11, 20, 3)).unwrap(), 270, 64)
    );
    assert_eq!(
        first,
        read_ids(&mut store.reader(config(11, 20, 3)).unwrap(), 270, 1)
    );
    let other = read_ids(&mut store.reader(config(12, 20, 3)).unwrap(), 270, 13);
    assert_ne!(first, other);
    assert_eq!(sorted(first[..90].to_vec()), sorted(other[..90].to_vec()));
}

#[test]
fn unshuffled_reading_is_store_order_and_stops_without_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = numbered(dir.path(), 25, 2, 4, Dtype::Bf16);
    let config = ReaderConfig {
        seed: 3,
        memory_ceiling_bytes: 2 * 8 * 8,
        shuffle: false,
        cycle: false,
    };
    let mut reader = store.reader(config).unwrap();
    assert_eq!(read_ids(&mut reader, 25, 6), (0..25).collect::<Vec<_>>());
    let mut batch = vec![1.0];
    assert_eq!(reader.next_batch(6, &mut batch).unwrap(), 0);
    assert!(batch.is_empty(), "the batch is cleared");
    assert_eq!(
        reader.next_batch(6, &mut batch).unwrap(),
        0,
        "and stays exhausted"
    );
    assert!(reader.finished());
    let end = reader.position();
    assert_eq!(
        (end.epoch, end.window, end.offset),
        (0, reader.windows().len(), 0)
    );
    let mut resumed = store.reader_at(config, end).unwrap();
    assert_eq!(
        resumed.next_batch(6, &mut batch).unwrap(),
        0,
        "a finished position resumes finished"
    );

    let cycling = ReaderConfig {
        cycle: true,
        ..config
    };
    let mut reader = store.reader(cycling).unwrap();
    let twice = read_ids(&mut reader, 50, 7);
    assert_eq!(
        twice,
        (0..25).chain(0..25).collect::<Vec<_>>(),
        "cycling repeats store order"
    );
}

#[test]
fn windows_fit_the_memory_ceiling_and_batches_drain_one_window_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = numbered(dir.path(), 100, 2, 10, Dtype::F32);
    let config = config(1, 25, 2); // room for two shards of 10 rows per window, not three
    let windows = store.windows(&config, 0).unwrap();
    assert_eq!(windows.len(), 5);
    let budget = (config.memory_ceiling_bytes / 2) as u64;
    for window in &windows {
        assert_eq!(
            (window.shards.len(), window.rows, window.bytes),
            (2, 20, 20 * (4 * 2 + 4))
        );
        assert!(window.bytes <= budget);
    }
    let shard_sets: Vec<Vec<usize>> = windows.iter().map(|w| sorted(w.shards.clone())).collect();
    assert_ne!(
        shard_sets,
        store
            .windows(&config, 1)
            .unwrap()
            .iter()
            .map(|w| sorted(w.shards.clone()))
            .collect::<Vec<_>>()
    );

    let mut reader = store.reader(config).unwrap();
    let epoch = read_ids(&mut reader, 100, 9);
    // The rows of window k are exactly the rows handed out in places 20k..20k+20.
    for (k, window) in windows.iter().enumerate() {
        let expected = sorted(
            window
                .shards
                .iter()
                .flat_map(|&s| s * 10..s * 10 + 10)
                .collect(),
        );
        assert_eq!(
            sorted(epoch[20 * k..20 * k + 20].to_vec()),
            expected,
            "window {k}"
        );
    }
    let peak = reader.peak_memory_bytes();
    assert!(
        peak <= config.memory_ceiling_bytes as u64,
        "peak {peak} over the ceiling"
    );
    assert!(
        peak > windows[0].bytes,
        "two windows were held at once (peak {peak})"
    );
}

#[test]
fn a_shard_larger_than_half_the_ceiling_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let store = numbered(dir.path(), 30, 4, 10, Dtype::F16);
    let config = config(0, 9, 4); // each window fits 9 rows; shards hold 10
    let err = store.reader(config).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CeilingTooSmall {
                needed: 400,
                max_rows_per_shard: 9,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("shard_0000")
            && message.contains("raise the ceiling to at least 400")
            && message.contains("at most 9 rows per shard"),
        "{message}"
    );
    assert!(store.windows(&config, 0).is_err());
    assert!(
        store
            .reader(ReaderConfig {
                memory_ceiling_bytes: 400,
                ..config
            })
            .is_ok(),
        "the advised ceiling works"
    );
}

#[test]
fn positions_survive_json_and_mismatched_resumes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = numbered(dir.path(), 60, 2, 10, Dtype::F32);
    let config = config(9, 20, 2);
    let mut reader = store.reader(config).unwrap();
    read_ids(&mut reader, 37, 5);
    let position = reader.position();
    let json = serde_json::to_value(position).unwrap();
    let back: ReaderPosition = serde_json::from_value(json).unwrap();
    assert_eq!(back, position);
    let rest = read_ids(&mut reader, 100, 8);
    assert_eq!(
        read_ids(&mut store.reader_at(config, back).unwrap(), 100, 8),
        rest
    );

    for other in [
        ReaderConfig { seed: 10, ..config },
        ReaderConfig {
            memory_ceiling_bytes: config.memory_ceiling_bytes * 2,
            ..config
        },
        ReaderConfig {
            shuffle: false,
            ..config
        },
    ] {
        let err = store.reader_at(other, position).unwrap_err();
        assert!(matches!(err, StoreError::Position(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("resume with the original settings"),
            "{err}"
        );
    }
    // The same position on another store (same shape, other values) is refused too.
    let other_dir = tempfile::tempdir().unwrap();
    let mut writer = StoreWriter::create(
        other_dir.path(),
        StoreConfig {
            rows_per_shard: 10,
            ..StoreConfig::new(2)
        },
    )
    .unwrap();
    writer.push_rows(&vec![0.5; 120]).unwrap();
    writer.finish().unwrap();
    assert!(matches!(
        Store::open(other_dir.path())
            .unwrap()
            .reader_at(config, position),
        Err(StoreError::Position(_))
    ));

    // A bare position (no check) outside the store is refused.
    let windows = store.windows(&config, 0).unwrap().len();
    for (window, offset) in [(windows + 1, 0), (0, 21), (windows, 1)] {
        let bare = ReaderPosition {
            epoch: 0,
            window,
            offset,
            check: None,
        };
        let err = store.reader_at(config, bare).unwrap_err();
        assert!(err.to_string().contains("outside the store"), "{err}");
    }
}

#[test]
fn rows_come_back_as_f32_whatever_the_dtype() {
    for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
        let dir = tempfile::tempdir().unwrap();
        // Integers up to 256 are exact in every dtype.
        let store = numbered(dir.path(), 200, 5, 16, dtype);
        let epoch = read_ids(&mut store.reader(config(2, 64, 5)).unwrap(), 200, 33);
        assert_eq!(sorted(epoch), (0..200).collect::<Vec<_>>(), "{dtype}");
    }
}

#[test]
fn an_empty_store_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = StoreWriter::create(dir.path(), StoreConfig::new(4))
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!((manifest.rows, manifest.shards.len()), (0, 0));
    let store = Store::open(dir.path()).unwrap();
    let mut reader = store
        .reader(ReaderConfig {
            cycle: false,
            ..ReaderConfig::default()
        })
        .unwrap();
    assert_eq!(reader.next_batch(8, &mut Vec::new()).unwrap(), 0);
    let err = store.reader(ReaderConfig::default()).unwrap_err();
    assert!(err.to_string().contains("holds no rows"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Stopping anywhere (any epoch, window and offset, batches of changing
    /// sizes) and resuming from the saved position hands out exactly what
    /// an uninterrupted reader does.
    #[test]
    fn resuming_anywhere_equals_reading_on(
        rows in 1usize..90,
        per_shard in 1usize..25,
        window_shards in 1usize..5,
        seed in any::<u64>(),
        shuffle in any::<bool>(),
        batches in proptest::collection::vec(1usize..40, 1..12),
        stop in 0usize..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let d = 2;
        let store = numbered(dir.path(), rows, d, per_shard, Dtype::F32);
        let config = ReaderConfig { shuffle, ..common::config(seed, window_shards * per_shard, d) };
        let total: usize = batches.iter().sum::<usize>() + 3 * rows;
        let whole = {
            let mut reader = store.reader(config).unwrap();
            let mut out = Vec::new();
            for &b in &batches {
                out.extend(read_ids(&mut reader, b, b));
            }
            out.extend(read_ids(&mut reader, total - out.len(), 17));
            out
        };
        let stop = stop.min(batches.len());
        let mut first = store.reader(config).unwrap();
        let mut out = Vec::new();
        for &b in &batches[..stop] {
            out.extend(read_ids(&mut first, b, b));
        }
        let position = first.position();
        drop(first);
        let mut resumed = store.reader_at(config, position).unwrap();
        for &b in &batches[stop..] {
            out.extend(read_ids(&mut resumed, b, b));
        }
        out.extend(read_ids(&mut resumed, total - out.len(), 17));
        prop_assert_eq!(out, whole);
    }
}
