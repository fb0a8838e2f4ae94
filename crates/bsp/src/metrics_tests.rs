//! Tests of the metrics against a naive implementation that loops over
//! thresholds x features x properties x rows, and against numbers worked
//! out by hand with reference 002's formulas.

use std::sync::Arc;

use ndarray::Array2;
use proptest::prelude::*;

use super::*;
use crate::bits::BitMatrix;
use crate::property::{BspInfo, BspLabels, Catalog};
use crate::{Activations, FeatureScale, SparseActivations};

fn labels_from(catalog: &Arc<Catalog>, rows: &[Vec<bool>]) -> BspLabels {
    let mut bits = BitMatrix::zeros(rows.len(), catalog.len());
    for (r, row) in rows.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            bits.set(r, c, v);
        }
    }
    BspLabels::from_bits(Arc::clone(catalog), bits).expect("one column per property")
}

/// Two groups: one with two 3-class slots, one of three standalone
/// properties.
fn small_catalog() -> Arc<Catalog> {
    let mut infos = Vec::new();
    for slot in ["s0", "s1"] {
        for class in ["a", "b", "c"] {
            infos.push(BspInfo::new(
                format!("{class}@{slot}"),
                "board",
                "low",
                Some(format!("board/{slot}")),
            ));
        }
    }
    for name in ["x", "y", "z"] {
        infos.push(BspInfo::new(name, "flags", "high", None));
    }
    Arc::new(Catalog::new(infos).expect("valid catalog"))
}

#[test]
fn hand_computed_f1_matches_the_reference_arithmetic() {
    // One property, one feature, 8 rows. The property holds on rows 0..5
    // (P = 5). The feature (max 1.0) is 0.5 on rows 0, 1 and 6, 1.0 on row
    // 2, 0 elsewhere.
    let catalog = Arc::new(
        Catalog::new(vec![
            BspInfo::new("p", "g", "c", None),
            BspInfo::new("never", "g", "c", None),
        ])
        .expect("catalog"),
    );
    let truth: Vec<Vec<bool>> = (0..8).map(|r| vec![r < 5, false]).collect();
    let labels = labels_from(&catalog, &truth);
    let mut acts = Array2::<f32>::zeros((8, 1));
    for (r, v) in [(0, 0.5), (1, 0.5), (6, 0.5), (2, 1.0)] {
        acts[[r, 0]] = v;
    }
    let config = MetricsConfig::default();
    let report = evaluate(
        "hand",
        (&Activations::Dense(acts.view()), &labels),
        None,
        None,
        &config,
    )
    .expect("valid inputs");
    // Thresholds 0 .. 0.4: active on rows 0, 1, 2, 6: on = 4, TP = 3.
    // precision = 3 / 4 = 0.75, recall = 3 / 5 = 0.6,
    // F1 = 2 * 0.45 / 1.35 = 0.6666...
    let p = 3f32 / (4f32 + 1e-8);
    let r = 3f32 / (5f32 + 1e-8);
    let low = 2.0 * (p * r) / (p + r + 1e-8);
    assert!((low - 2.0 / 3.0).abs() < 1e-6);
    // Thresholds 0.5 .. 0.9: only row 2 (0.5 > 0.5 is false): on = 1, TP = 1,
    // precision 1, recall 0.2, F1 = 0.4 / 1.2 = 1/3.
    let high = {
        let p = 1f32 / (1f32 + 1e-8);
        let r = 1f32 / (5f32 + 1e-8);
        2.0 * (p * r) / (p + r + 1e-8)
    };
    let bsp = &report.coverage.bsps[0];
    assert_eq!(bsp.f1, low);
    assert_eq!(bsp.feature, Some(0));
    let group = &report.coverage.groups[0];
    // The group also holds "never" (F1 0): the reference divides by both.
    for (i, &value) in group.per_threshold.iter().enumerate() {
        let expected = match i {
            0..=4 => f64::from(low) / 2.0,
            5..=9 => f64::from(high) / 2.0,
            _ => 0.0, // t = 1.0: nothing exceeds the maximum
        };
        assert_eq!(value, expected, "threshold {i}");
    }
    assert_eq!(group.best_threshold, 0);
    assert_eq!(group.coverage, f64::from(low) / 2.0);
    assert_eq!(group.coverage_present, f64::from(low));
    assert_eq!(group.bsps_with_positives, 1);
}

#[test]
fn high_precision_uses_the_reference_float_arithmetic() {
    // 19 of 20 is exactly 0.95 in f32 after 19 x (1 / 20).
    assert!(is_high_precision(19, 20, 0.95, 10));
    assert!(!is_high_precision(18, 19, 0.95, 10));
    // Fewer than 10 true positives never count.
    assert!(!is_high_precision(9, 9, 0.95, 10));
    // 41 x (1 / 41) rounds below 1 in f32: a perfect feature fails at 1.0.
    assert!(!is_high_precision(41, 41, 1.0, 10));
    assert!(is_high_precision(40, 40, 1.0, 10));
    assert!(!is_high_precision(0, 0, 0.0, 0));
}

#[test]
fn reconstruction_counts_by_hand() {
    // Train: feature 0 fires (1.0) on the 12 rows where property x holds and
    // on nothing else: precision 1, TP 12 >= 10 -> high precision for x.
    // Feature 1 fires on x's rows and on 12 others: precision 0.5, not.
    let catalog = small_catalog();
    let n = 24;
    let truth: Vec<Vec<bool>> = (0..n)
        .map(|r| {
            let mut row = vec![false; 9];
            row[6] = r < 12; // x
            row
        })
        .collect();
    let train_labels = labels_from(&catalog, &truth);
    let mut train = Array2::<f32>::zeros((n, 2));
    for r in 0..n {
        if r < 12 {
            train[[r, 0]] = 1.0;
        }
        train[[r, 1]] = 1.0;
    }
    // Test: x holds on rows 0..4; feature 0 fires on rows 0, 1, 2 and 5.
    let test_truth: Vec<Vec<bool>> = (0..8)
        .map(|r| {
            let mut row = vec![false; 9];
            row[6] = r < 4;
            row
        })
        .collect();
    let test_labels = labels_from(&catalog, &test_truth);
    let mut test = Array2::<f32>::zeros((8, 2));
    for r in [0, 1, 2, 5] {
        test[[r, 0]] = 1.0;
    }
    let report = evaluate(
        "hand",
        (&Activations::Dense(train.view()), &train_labels),
        Some((&Activations::Dense(test.view()), &test_labels)),
        None,
        &MetricsConfig::default(),
    )
    .expect("valid");
    let recon = report.reconstruction.expect("test set given");
    let flags = recon
        .groups
        .iter()
        .find(|g| g.group == "flags")
        .expect("group");
    // TP 3 (rows 0-2), FP 1 (row 5), FN 1 (row 3).
    assert_eq!((flags.tp, flags.fp, flags.fn_), (3, 1, 1));
    let (p, r) = (3f32 / (4f32 + 1e-8), 3f32 / (4f32 + 1e-8));
    assert_eq!(flags.f1, 2.0 * (p * r) / (p + r + 1e-8));
    assert!((flags.f1 - 0.75).abs() < 1e-6);
    assert_eq!(flags.per_threshold[0].high_precision_pairs, 1);
    assert_eq!(flags.per_threshold[0].high_precision_features, 1);
    let x = recon.bsps.iter().find(|b| b.name == "x").expect("x");
    assert_eq!((x.tp, x.fp, x.fn_, x.positives), (3, 1, 1, 4));
    // With fewer than 10 true positives nothing would be high precision.
    let strict = MetricsConfig {
        min_true_positives: 13,
        ..MetricsConfig::default()
    };
    let none = board_reconstruction(
        (&Activations::Dense(train.view()), &train_labels),
        (&Activations::Dense(test.view()), &test_labels),
        &FeatureScale::from_activations(&Activations::Dense(train.view()), 1000).expect("rows"),
        &strict,
    )
    .expect("valid");
    let flags = none
        .groups
        .iter()
        .find(|g| g.group == "flags")
        .expect("group");
    assert_eq!((flags.tp, flags.fp, flags.fn_), (0, 0, 4));
    assert_eq!(flags.f1, 0.0);
}

#[test]
fn per_square_correction_picks_the_threshold() {
    // Slot s0 with classes a, b, c. On the train rows feature 0 (1.0) marks
    // a everywhere; feature 2 marks a too, but only at threshold 0 (0.05,
    // its maximum 1.0 on one row); feature 1 marks b, also only at
    // threshold 0.
    let catalog = small_catalog();
    let mut truth = Vec::new();
    let mut train = Array2::<f32>::zeros((50, 3));
    for r in 0..50 {
        let mut row = vec![false; 9];
        if r < 30 {
            row[0] = true;
            train[[r, 0]] = 1.0;
            train[[r, 2]] = if r == 0 { 1.0 } else { 0.05 };
        } else {
            row[1] = true;
            train[[r, 1]] = if r == 30 { 1.0 } else { 0.05 };
        }
        truth.push(row);
    }
    let train_labels = labels_from(&catalog, &truth);
    // Test: a holds on all 20 rows. Feature 0 fires on rows 0..12, feature
    // 2 weakly everywhere, feature 1 weakly on rows 0..10.
    let test_truth: Vec<Vec<bool>> = (0..20)
        .map(|_| {
            let mut row = vec![false; 9];
            row[0] = true;
            row
        })
        .collect();
    let test_labels = labels_from(&catalog, &test_truth);
    let mut test = Array2::<f32>::zeros((20, 3));
    for r in 0..20 {
        test[[r, 2]] = 0.05;
        if r < 12 {
            test[[r, 0]] = 1.0;
        }
        if r < 10 {
            test[[r, 1]] = 0.05;
        }
    }
    let report = evaluate(
        "slot",
        (&Activations::Dense(train.view()), &train_labels),
        Some((&Activations::Dense(test.view()), &test_labels)),
        None,
        &MetricsConfig::default(),
    )
    .expect("valid");
    let board = &report.reconstruction.as_ref().expect("test").groups[0];
    // Threshold 0: a predicted on all 20 rows, b wrongly on 10 of them.
    let t0 = &board.per_threshold[0];
    assert_eq!(
        (t0.tp, t0.fp, t0.fn_, t0.true_and_false_positive_slots),
        (20, 10, 0, 10)
    );
    assert_eq!(t0.f1, counts_f1(20, 10, 0).2); // 0.8
    assert_eq!(t0.f1_per_square, counts_f1(10, 10, 0).2); // 0.667
    // Threshold 0.1 and up: a on rows 0..12 only.
    let t1 = &board.per_threshold[1];
    assert_eq!(
        (t1.tp, t1.fp, t1.fn_, t1.true_and_false_positive_slots),
        (12, 0, 8, 0)
    );
    // The plain F1 prefers threshold 0 (0.8 > 0.75); the reference chooses
    // by the per-square F1 (0.75 > 0.667) and reports the plain F1 there.
    assert_eq!(board.best_threshold, 1);
    assert_eq!(board.f1, counts_f1(12, 0, 8).2);
    assert!((board.f1 - 0.75).abs() < 1e-6);
}

/// Everything the naive implementation computes.
#[derive(Debug, PartialEq)]
struct Naive {
    per_threshold: Vec<Vec<f64>>,
    best_features: Vec<Option<usize>>,
    hp_pairs: Vec<Vec<u64>>,
    counts: Vec<Vec<(u64, u64, u64, u64)>>,
    best_threshold: Vec<usize>,
    f1: Vec<f32>,
}

fn naive(
    train: &Array2<f32>,
    train_labels: &BspLabels,
    test: &Array2<f32>,
    test_labels: &BspLabels,
    config: &MetricsConfig,
) -> Naive {
    let catalog = train_labels.catalog();
    let scale = FeatureScale::from_activations(
        &Activations::Dense(train.view()),
        config.max_activation_tokens,
    )
    .expect("rows");
    let (features, bsps) = (train.ncols(), catalog.len());
    let active = |m: &Array2<f32>, r: usize, f: usize, t: f32| {
        scale.alive[f] && m[[r, f]] > t * scale.max_abs[f]
    };
    let positives = train_labels.positives();
    let mut per_threshold = vec![Vec::new(); catalog.groups().len()];
    let mut best_at = Vec::new();
    for &t in &config.coverage_thresholds {
        let mut best = vec![(0f32, None); bsps];
        for (b, slot) in best.iter_mut().enumerate() {
            for f in 0..features {
                let on = (0..train.nrows())
                    .filter(|&r| active(train, r, f, t))
                    .count() as u64;
                let tp = (0..train.nrows())
                    .filter(|&r| active(train, r, f, t) && train_labels.get(r, b))
                    .count() as u64;
                if on == 0 || tp == 0 {
                    continue;
                }
                let f1 = coverage_f1(tp, on, positives[b]);
                if f1 > slot.0 {
                    *slot = (f1, Some(f));
                }
            }
        }
        for (g, group) in catalog.groups().iter().enumerate() {
            per_threshold[g].push(
                group
                    .bsps
                    .iter()
                    .map(|&b| f64::from(best[b].0))
                    .sum::<f64>()
                    / group.bsps.len() as f64,
            );
        }
        best_at.push(best);
    }
    let mut best_features = vec![None; bsps];
    for (g, group) in catalog.groups().iter().enumerate() {
        let ci = first_max(&per_threshold[g]);
        for &b in &group.bsps {
            best_features[b] = best_at[ci][b].1;
        }
    }
    let n_groups = catalog.groups().len();
    let mut hp_pairs = vec![vec![0u64; config.reconstruction_thresholds.len()]; n_groups];
    let mut counts = vec![Vec::new(); n_groups];
    for (ri, &t) in config.reconstruction_thresholds.iter().enumerate() {
        let mut hp = vec![vec![false; bsps]; features];
        for (f, hp_f) in hp.iter_mut().enumerate() {
            for b in 0..bsps {
                let on = (0..train.nrows())
                    .filter(|&r| active(train, r, f, t))
                    .count() as u64;
                let tp = (0..train.nrows())
                    .filter(|&r| active(train, r, f, t) && train_labels.get(r, b))
                    .count() as u64;
                if is_high_precision(
                    tp,
                    on,
                    config.precision_threshold,
                    config.min_true_positives,
                ) {
                    hp_f[b] = true;
                    hp_pairs[catalog.group_of(b)][ri] += 1;
                }
            }
        }
        let mut tally = vec![(0u64, 0u64, 0u64, 0u64); n_groups];
        for r in 0..test.nrows() {
            let predicted: Vec<bool> = (0..bsps)
                .map(|b| (0..features).any(|f| hp[f][b] && active(test, r, f, t)))
                .collect();
            for b in 0..bsps {
                let g = &mut tally[catalog.group_of(b)];
                match (predicted[b], test_labels.get(r, b)) {
                    (true, true) => g.0 += 1,
                    (true, false) => g.1 += 1,
                    (false, true) => g.2 += 1,
                    (false, false) => {}
                }
            }
            for slot in catalog.slots() {
                let tp = slot
                    .bsps
                    .iter()
                    .filter(|&&b| predicted[b] && test_labels.get(r, b))
                    .count();
                let fp = slot
                    .bsps
                    .iter()
                    .filter(|&&b| predicted[b] && !test_labels.get(r, b))
                    .count();
                if tp == 1 && fp == 1 {
                    tally[slot.group].3 += 1;
                }
            }
        }
        for g in 0..n_groups {
            counts[g].push(tally[g]);
        }
    }
    let mut best_threshold = Vec::new();
    let mut f1 = Vec::new();
    for per in &counts {
        let per_square: Vec<f32> = per
            .iter()
            .map(|&(tp, fp, fn_, both)| counts_f1(tp - both, fp, fn_).2)
            .collect();
        let best = first_max(&per_square);
        best_threshold.push(best);
        f1.push(counts_f1(per[best].0, per[best].1, per[best].2).2);
    }
    Naive {
        per_threshold,
        best_features,
        hp_pairs,
        counts,
        best_threshold,
        f1,
    }
}

fn fast(report: &BspReport) -> Naive {
    let recon = report.reconstruction.as_ref().expect("test set given");
    Naive {
        per_threshold: report
            .coverage
            .groups
            .iter()
            .map(|g| g.per_threshold.clone())
            .collect(),
        best_features: report.coverage.bsps.iter().map(|b| b.feature).collect(),
        hp_pairs: recon
            .groups
            .iter()
            .map(|g| {
                g.per_threshold
                    .iter()
                    .map(|t| t.high_precision_pairs)
                    .collect()
            })
            .collect(),
        counts: recon
            .groups
            .iter()
            .map(|g| {
                g.per_threshold
                    .iter()
                    .map(|t| (t.tp, t.fp, t.fn_, t.true_and_false_positive_slots))
                    .collect()
            })
            .collect(),
        best_threshold: recon.groups.iter().map(|g| g.best_threshold).collect(),
        f1: recon.groups.iter().map(|g| g.f1).collect(),
    }
}

/// Random labels of the small catalog: one class per slot (or none), the
/// flags independent.
fn label_rows(seeds: &[u8]) -> Vec<Vec<bool>> {
    seeds
        .iter()
        .map(|&s| {
            let mut row = vec![false; 9];
            for (slot, shift) in [(0usize, 0u8), (1, 2)] {
                let class = (s >> shift) & 3;
                if class < 3 {
                    row[slot * 3 + class as usize] = true;
                }
            }
            for (i, bit) in [4u8, 5, 6].into_iter().enumerate() {
                row[6 + i] = s >> bit & 1 == 1;
            }
            row
        })
        .collect()
}

const VALUES: [f32; 7] = [0.0, 0.0, 0.3, 0.55, 1.0, 2.0, -0.4];

fn matrix(rows: usize, cols: usize, picks: &[u8]) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        VALUES[picks[(r * cols + c) % picks.len()] as usize % VALUES.len()]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The fast metrics equal the naive loops, dense or sparse, for random
    /// labels and activations with ties at the threshold boundaries.
    #[test]
    fn fast_equals_naive(
        train_seeds in prop::collection::vec(any::<u8>(), 12..40),
        test_seeds in prop::collection::vec(any::<u8>(), 5..30),
        features in 1usize..6,
        picks in prop::collection::vec(0u8..7, 1..300),
        test_picks in prop::collection::vec(0u8..7, 1..300),
        precision in prop::sample::select(vec![0.5f32, 0.75, 0.95]),
        min_tp in 1u64..4,
        max_tokens in prop::sample::select(vec![5usize, 1000]),
    ) {
        let catalog = small_catalog();
        let train_labels = labels_from(&catalog, &label_rows(&train_seeds));
        let test_labels = labels_from(&catalog, &label_rows(&test_seeds));
        let train = matrix(train_seeds.len(), features, &picks);
        let test = matrix(test_seeds.len(), features, &test_picks);
        let config = MetricsConfig {
            precision_threshold: precision,
            min_true_positives: min_tp,
            max_activation_tokens: max_tokens,
            ..MetricsConfig::default()
        };
        let expected = naive(&train, &train_labels, &test, &test_labels, &config);
        let dense = evaluate(
            "dense",
            (&Activations::Dense(train.view()), &train_labels),
            Some((&Activations::Dense(test.view()), &test_labels)),
            None,
            &config,
        ).expect("valid");
        prop_assert_eq!(&fast(&dense), &expected);
        let sparse_train = SparseActivations::from_dense(train.view(), "train").expect("finite");
        let sparse_test = SparseActivations::from_dense(test.view(), "test").expect("finite");
        let sparse = evaluate(
            "sparse",
            (&Activations::Sparse(&sparse_train), &train_labels),
            Some((&Activations::Sparse(&sparse_test), &test_labels)),
            None,
            &config,
        ).expect("valid");
        prop_assert_eq!(&fast(&sparse), &expected);
        prop_assert_eq!(&sparse.coverage, &dense.coverage);
        prop_assert_eq!(&sparse.reconstruction, &dense.reconstruction);
    }
}

#[test]
fn bad_inputs_are_named() {
    let catalog = small_catalog();
    let labels = labels_from(&catalog, &label_rows(&[1, 2, 3]));
    let acts = Array2::<f32>::zeros((4, 2));
    let error = coverage(
        &Activations::Dense(acts.view()),
        &labels,
        &FeatureScale::from_max(&[1.0, 1.0], vec![true, true], 4).expect("finite"),
        &MetricsConfig::default(),
    )
    .expect_err("row mismatch");
    assert!(error.to_string().contains("4 rows, expected 3"), "{error}");
    let mut nan = Array2::<f32>::zeros((3, 2));
    nan[[2, 1]] = f32::NAN;
    let error = evaluate(
        "nan",
        (&Activations::Dense(nan.view()), &labels),
        None,
        None,
        &MetricsConfig::default(),
    )
    .expect_err("nan");
    assert!(error.to_string().contains("row 2, column 1"), "{error}");
    let config = MetricsConfig {
        coverage_thresholds: vec![0.5, 0.1],
        ..MetricsConfig::default()
    };
    let error = config.validate().expect_err("descending");
    assert!(error.to_string().contains("coverage_thresholds"), "{error}");
}
