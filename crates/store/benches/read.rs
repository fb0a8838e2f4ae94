//! Reading throughput, d_in 256, shuffled (and in store order, to show what
//! the shuffle costs): one epoch's worth of rows per iteration from a
//! cycling reader (so the background loader is in its steady state),
//! batches of 4096 rows, 8192-row shards (8 MiB of f32) under a 64 MiB
//! ceiling. The store was just written, so its files are in the page
//! cache: this measures decoding, checksumming, shuffling and copying, not
//! the disk.
//!
//! `cargo bench -p kibitzer-store --bench read`
//! (criterion reports bytes/s of f32 rows handed out; rows/s = bytes/s / 1024).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kibitzer_store::{ActivationSource, Dtype, ReaderConfig, Store, StoreConfig, StoreWriter};
use std::time::Duration;

const D_IN: usize = 256;
const ROWS: usize = 65_536;
const BATCH: usize = 4096;

fn write_store(dir: &std::path::Path, dtype: Dtype) -> Store {
    let config = StoreConfig {
        dtype,
        rows_per_shard: 8192,
        ..StoreConfig::new(D_IN)
    };
    let mut writer =
        StoreWriter::create(dir, config).expect("a fresh temporary directory takes a store");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rows = vec![0f32; BATCH * D_IN];
    for _ in 0..ROWS / BATCH {
        for v in rows.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *v = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        }
        writer.push_rows(&rows).expect("finite values in range");
    }
    writer.finish().expect("writing the bench store");
    Store::open(dir).expect("the store just written opens")
}

fn shuffled_reading(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_d256");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes((ROWS * D_IN * 4) as u64));
    for dtype in [Dtype::F32, Dtype::F16] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = write_store(dir.path(), dtype);
        // Store order too, to show what the shuffle costs.
        for shuffle in [true, false] {
            let config = ReaderConfig {
                seed: 1,
                memory_ceiling_bytes: 64 << 20,
                shuffle,
                cycle: true,
            };
            let mut reader = store.reader(config).expect("shards fit the ceiling");
            let mut batch = Vec::with_capacity(BATCH * D_IN);
            let order = if shuffle { "shuffled" } else { "in_order" };
            group.bench_function(format!("{dtype}_{order}_epoch_of_{ROWS}_rows"), |b| {
                b.iter(|| {
                    let mut rows = 0;
                    while rows < ROWS {
                        rows += reader
                            .next_batch(BATCH, &mut batch)
                            .expect("reading the bench store");
                    }
                    std::hint::black_box(&batch);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, shuffled_reading);
criterion_main!(benches);
