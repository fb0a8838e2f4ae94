//! Benchmarks of BSP labelling and of coverage + board reconstruction.
//!
//! `cargo bench -p kibitzer-bsp` measures, on all 8x8 Othello BSPs (384)
//! and a synthetic sparse 4096-feature dictionary (32 active features per
//! token, most of them tied to a property that holds on the token):
//!
//! * labelling 16,384 positions;
//! * coverage + board reconstruction on 32,768 train / 8,192 test tokens
//!   (criterion);
//! * the same once at the size, 256,000 train tokens (plus 64,000
//!   test tokens), timed in one shot;
//! * a straightforward NumPy implementation (`benches/numpy_metrics.py`) on
//!   the 32,768-token data, timed in the same run for the ratio and checked
//!   to give the same per-group numbers. Skipped when `python3` with NumPy is
//!   missing; set `KIBITZER_BSP_NUMPY_FULL=1` to also run NumPy at full size
//!   (minutes).

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use kibitzer_bsp::labelling::othello_at_moves;
use kibitzer_bsp::othello::{OthelloBspOptions, othello_bsps};
use kibitzer_bsp::{Activations, BspLabels, BspReport, MetricsConfig, SparseActivations, evaluate};
use kibitzer_games::dataset::generate_random_games;
use kibitzer_games::othello::Othello;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const FEATURES: usize = 4096;
const ACTIVE_PER_TOKEN: usize = 32;

/// At least `tokens` labelled 8x8 positions from random games, cut to size.
fn positions(tokens: usize, seed: u64) -> Vec<Othello> {
    let games = generate_random_games(8, tokens / 55 + 10, seed).expect("8x8");
    let mut labelled = othello_at_moves(8, &games).expect("legal").positions;
    assert!(labelled.len() >= tokens, "not enough positions");
    labelled.truncate(tokens);
    labelled
}

/// A synthetic dictionary: feature k is "about" property k mod B. On each
/// token, 3/4 of the active features are about properties that hold there
/// (strong values), 1/4 are noise (weak values).
fn features(labels: &BspLabels, seed: u64) -> SparseActivations {
    let bsps = labels.catalog().len();
    let per_bsp = FEATURES / bsps;
    let rows = labels.rows();
    const CHUNK: usize = 4096;
    let per_chunk: Vec<(Vec<usize>, Vec<u32>, Vec<f32>)> = (0..rows.div_ceil(CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(chunk as u64);
            let (mut counts, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
            let mut row_entries: Vec<(u32, f32)> = Vec::with_capacity(ACTIVE_PER_TOKEN);
            for r in chunk * CHUNK..((chunk + 1) * CHUNK).min(rows) {
                let truth: Vec<usize> = labels.bits().ones_in_row(r).collect();
                row_entries.clear();
                for i in 0..ACTIVE_PER_TOKEN {
                    let (f, v) = if i % 4 != 3 && !truth.is_empty() {
                        let b = truth[rng.random_range(0..truth.len())];
                        (
                            b + bsps * rng.random_range(0..per_bsp),
                            rng.random_range(0.3f32..1.0),
                        )
                    } else {
                        (rng.random_range(0..FEATURES), rng.random_range(0.0f32..0.3))
                    };
                    row_entries.push((f as u32, v));
                }
                row_entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
                row_entries.dedup_by_key(|e| e.0);
                counts.push(row_entries.len());
                cols.extend(row_entries.iter().map(|e| e.0));
                vals.extend(row_entries.iter().map(|e| e.1));
            }
            (counts, cols, vals)
        })
        .collect();
    let mut row_ptr = vec![0usize];
    let (mut cols, mut vals) = (Vec::new(), Vec::new());
    for (counts, c, v) in per_chunk {
        for n in counts {
            row_ptr.push(row_ptr.last().expect("starts with 0") + n);
        }
        cols.extend(c);
        vals.extend(v);
    }
    SparseActivations::from_csr(rows, FEATURES, &row_ptr, &cols, &vals).expect("valid CSR")
}

struct Data {
    train_labels: BspLabels,
    test_labels: BspLabels,
    train: SparseActivations,
    test: SparseActivations,
}

fn data(train_tokens: usize, test_tokens: usize) -> Data {
    let set = othello_bsps(8, OthelloBspOptions::default()).expect("set");
    let train_labels = set.label(&positions(train_tokens, 1)).expect("labels");
    let test_labels = set.label(&positions(test_tokens, 2)).expect("labels");
    let train = features(&train_labels, 3);
    let test = features(&test_labels, 4);
    Data {
        train_labels,
        test_labels,
        train,
        test,
    }
}

fn run(d: &Data) -> BspReport {
    evaluate(
        "bench",
        (&Activations::Sparse(&d.train), &d.train_labels),
        Some((&Activations::Sparse(&d.test), &d.test_labels)),
        None,
        &MetricsConfig::default(),
    )
    .expect("valid inputs")
}

fn write_raw(dir: &Path, prefix: &str, acts: &SparseActivations, labels: &BspLabels) {
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
    for c in 0..acts.cols() {
        let (r, v) = acts.column(c);
        indices.extend_from_slice(r);
        data.extend_from_slice(v);
        indptr.push(indices.len() as i64);
    }
    let bytes =
        |v: Vec<u8>, name: &str| std::fs::write(dir.join(name), v).expect("write bench data");
    bytes(
        indptr.iter().flat_map(|x| x.to_le_bytes()).collect(),
        &format!("{prefix}_indptr.bin"),
    );
    bytes(
        indices.iter().flat_map(|x| x.to_le_bytes()).collect(),
        &format!("{prefix}_indices.bin"),
    );
    bytes(
        data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        &format!("{prefix}_data.bin"),
    );
    bytes(
        labels
            .bits()
            .words()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        &format!("{prefix}_labels.bin"),
    );
}

/// Runs the NumPy implementation on `d`, prints its time next to `rust`
/// and checks that both give the same per-group numbers.
fn numpy_comparison(d: &Data, rust: Duration, report: &BspReport) {
    let has_numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_numpy {
        eprintln!("numpy comparison skipped: python3 with numpy not found");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    write_raw(dir.path(), "train", &d.train, &d.train_labels);
    write_raw(dir.path(), "test", &d.test, &d.test_labels);
    let catalog = d.train_labels.catalog();
    let meta = serde_json::json!({
        "rows": d.train_labels.rows(),
        "test_rows": d.test_labels.rows(),
        "features": d.train.cols(),
        "bsps": catalog.len(),
        "words": d.train_labels.bits().words_per_row(),
        "max_tokens": MetricsConfig::default().max_activation_tokens,
        "groups": catalog.groups().iter().map(|g| serde_json::json!({"name": g.name, "bsps": g.bsps})).collect::<Vec<_>>(),
        "slots": catalog.slots().iter().map(|s| serde_json::json!({"group": catalog.groups()[s.group].name, "bsps": s.bsps})).collect::<Vec<_>>(),
    });
    std::fs::write(dir.path().join("meta.json"), meta.to_string()).expect("write meta");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/numpy_metrics.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(dir.path())
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "numpy implementation failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).expect("numpy JSON");
    let seconds = result["seconds"].as_f64().expect("seconds");
    let recon = report.reconstruction.as_ref().expect("test set");
    for (g, group) in report.coverage.groups.iter().enumerate() {
        let np_cov = result["coverage"][&group.group].as_f64().expect("coverage");
        let np_rec = result["reconstruction"][&group.group]
            .as_f64()
            .expect("reconstruction");
        assert!(
            (np_cov - group.coverage).abs() < 1e-5,
            "{}: coverage rust {} numpy {np_cov}",
            group.group,
            group.coverage
        );
        assert!(
            (np_rec - f64::from(recon.groups[g].f1)).abs() < 1e-5,
            "{}: reconstruction rust {} numpy {np_rec}",
            group.group,
            recon.groups[g].f1
        );
    }
    eprintln!(
        "numpy ({} train tokens): {seconds:.2} s; rust: {:.2} s; numpy / rust = {:.1}x (same per-group numbers)",
        d.train_labels.rows(),
        rust.as_secs_f64(),
        seconds / rust.as_secs_f64()
    );
}

fn bench(c: &mut Criterion) {
    let set = othello_bsps(8, OthelloBspOptions::default()).expect("set");
    let label_positions = positions(16_384, 9);
    c.bench_function("label 16384 positions x 384 othello BSPs", |b| {
        b.iter(|| black_box(set.label(&label_positions).expect("labels")))
    });

    let small = data(32_768, 8_192);
    let mut group = c.benchmark_group("coverage + reconstruction");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("4096 features, 32768 train / 8192 test tokens", |b| {
        b.iter(|| black_box(run(&small)))
    });
    group.finish();

    let start = Instant::now();
    let report = run(&small);
    let rust_small = start.elapsed();
    numpy_comparison(&small, rust_small, &report);

    let full = data(256_000, 64_000);
    let start = Instant::now();
    let report = run(&full);
    let rust_full = start.elapsed();
    let all = report
        .reconstruction
        .as_ref()
        .and_then(|r| r.aggregates.iter().find(|a| a.name == "all"))
        .map_or(f64::NAN, |a| a.f1);
    eprintln!(
        "full size: 4096 features, 256000 train + 64000 test tokens, 384 BSPs, {} nonzero train activations: {:.2} s (coverage + board reconstruction; reconstruction F1 over all groups {all:.3})",
        full.train.nnz(),
        rust_full.as_secs_f64()
    );
    if std::env::var("KIBITZER_BSP_NUMPY_FULL").is_ok_and(|v| v == "1") {
        numpy_comparison(&full, rust_full, &report);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
