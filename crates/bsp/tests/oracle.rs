//! The metrics on planted dictionaries over real Othello labels: an oracle
//! whose features are exactly the BSP indicators, the same features
//! shuffled across positions, and features that are precise only above a
//! threshold and miss a fifth of their property.

use kibitzer_bsp::labelling::{othello_at_moves, split_by_game};
use kibitzer_bsp::othello::{OthelloBspOptions, othello_bsps};
use kibitzer_bsp::{Activations, BspLabels, BspReport, MetricsConfig, SparseActivations, evaluate};
use kibitzer_games::dataset::generate_random_games;
use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Data {
    train: BspLabels,
    test: BspLabels,
}

fn data() -> Data {
    let set = othello_bsps(6, OthelloBspOptions::default()).expect("set");
    let games = generate_random_games(6, 400, 3).expect("6x6");
    let labelled = othello_at_moves(6, &games).expect("legal");
    let labels = set.label(&labelled.positions).expect("labels");
    let (train, test) = split_by_game(&labelled.refs, 0.5, 9).expect("fraction");
    Data {
        train: labels.select_rows(&train),
        test: labels.select_rows(&test),
    }
}

fn oracle(labels: &BspLabels) -> Array2<f32> {
    let n = labels.catalog().len();
    Array2::from_shape_fn(
        (labels.rows(), n),
        |(r, b)| if labels.get(r, b) { 1.0 } else { 0.0 },
    )
}

fn run(name: &str, data: &Data, train: &Array2<f32>, test: &Array2<f32>) -> BspReport {
    evaluate(
        name,
        (&Activations::Dense(train.view()), &data.train),
        Some((&Activations::Dense(test.view()), &data.test)),
        None,
        &MetricsConfig::default(),
    )
    .expect("valid inputs")
}

#[test]
fn oracle_scores_one_and_shuffled_scores_chance() {
    let data = data();
    let (train, test) = (oracle(&data.train), oracle(&data.test));
    let report = run("oracle", &data, &train, &test);
    let recon = report.reconstruction.as_ref().expect("test set");
    let train_positives = data.train.positives();
    let catalog = data.train.catalog();
    for (g, group) in report.coverage.groups.iter().enumerate() {
        assert_eq!(group.coverage_present, 1.0, "{}", group.group);
        // Reference arithmetic: properties that never hold score 0.
        assert_eq!(
            group.coverage,
            group.bsps_with_positives as f64 / group.bsps as f64,
            "{}",
            group.group
        );
        assert_eq!(group.best_threshold, 0);
        // Reconstruction is perfect where every property seen on the test
        // rows was seen 10 times on the train rows.
        let learnable = catalog.groups()[g]
            .bsps
            .iter()
            .all(|&b| recon.bsps[b].positives == 0 || train_positives[b] >= 10);
        assert!(
            learnable,
            "{}: the data should make every property learnable",
            group.group
        );
        // Every property is recalled. A feature is also high precision for
        // properties its own property implies 95% of the time on the train
        // rows (the reference keeps all of them), which costs a few false
        // positives on the test rows.
        let r = &recon.groups[g];
        assert_eq!(r.fn_, 0, "{}", group.group);
        assert!(r.f1 > 0.995, "{}: {}", group.group, r.f1);
        assert!(
            r.fp * 200 < r.tp,
            "{}: {} false positives of {}",
            group.group,
            r.fp,
            r.tp
        );
    }
    // The four centre squares are never empty, and corners are never flipped.
    let board = &report.coverage.groups[0];
    assert_eq!(board.bsps - board.bsps_with_positives, 4);
    let all = recon
        .aggregates
        .iter()
        .find(|a| a.name == "all")
        .expect("all");
    assert!(all.f1 > 0.995 && all.recall > 1.0 - 1e-9, "{all:?}");
    // The sparse path gives the same report.
    let sparse_train = SparseActivations::from_dense(train.view(), "train").expect("finite");
    let sparse_test = SparseActivations::from_dense(test.view(), "test").expect("finite");
    let sparse = evaluate(
        "oracle",
        (&Activations::Sparse(&sparse_train), &data.train),
        Some((&Activations::Sparse(&sparse_test), &data.test)),
        None,
        &MetricsConfig::default(),
    )
    .expect("valid");
    assert_eq!(sparse, report);

    // Shuffled across positions, every feature is independent of every
    // property: the best a feature of frequency q can expect on a property
    // of frequency p is 2pq / (p + q).
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut order: Vec<usize> = (0..train.nrows()).collect();
    order.shuffle(&mut rng);
    let shuffled_train = train.select(ndarray::Axis(0), &order);
    let mut order: Vec<usize> = (0..test.nrows()).collect();
    order.shuffle(&mut rng);
    let shuffled_test = test.select(ndarray::Axis(0), &order);
    let shuffled = run("shuffled", &data, &shuffled_train, &shuffled_test);
    let rows = data.train.rows() as f64;
    let q_max = train_positives.iter().copied().max().expect("properties") as f64 / rows;
    for (g, group) in shuffled.coverage.groups.iter().enumerate() {
        let chance: f64 = catalog.groups()[g]
            .bsps
            .iter()
            .map(|&b| {
                let p = train_positives[b] as f64 / rows;
                if p == 0.0 {
                    0.0
                } else {
                    2.0 * p * q_max / (p + q_max)
                }
            })
            .sum::<f64>()
            / group.bsps as f64;
        assert!(
            group.coverage <= chance + 0.03,
            "{}: shuffled coverage {} above chance {chance}",
            group.group,
            group.coverage
        );
        assert!(group.coverage < 0.6, "{} {}", group.group, group.coverage);
    }
    let shuffled_recon = shuffled.reconstruction.as_ref().expect("test");
    for g in &shuffled_recon.groups {
        assert!(g.f1 < 0.05, "{}: shuffled reconstruction {}", g.group, g.f1);
    }
}

#[test]
fn planted_precise_features_are_recovered_above_the_noise_threshold() {
    let data = data();
    let catalog = data.train.catalog().clone();
    let board: Vec<usize> = catalog.groups()[0].bsps.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // Feature k fires (1.0) on 80% of the rows where board property k holds
    // and weakly (0.05) on 30% of the others: precise only from t = 0.1 on.
    let mut plant = |labels: &BspLabels| {
        let mut m = Array2::<f32>::zeros((labels.rows(), board.len()));
        for r in 0..labels.rows() {
            for (k, &b) in board.iter().enumerate() {
                if labels.get(r, b) {
                    if rng.random_bool(0.8) {
                        m[[r, k]] = 1.0;
                    }
                } else if rng.random_bool(0.3) {
                    m[[r, k]] = 0.05;
                }
            }
        }
        SparseActivations::from_dense(m.view(), "planted").expect("finite")
    };
    let (train, test) = (plant(&data.train), plant(&data.test));
    let report = evaluate(
        "planted",
        (&Activations::Sparse(&train), &data.train),
        Some((&Activations::Sparse(&test), &data.test)),
        None,
        &MetricsConfig::default(),
    )
    .expect("valid");
    let recon = &report.reconstruction.as_ref().expect("test").groups[0];
    assert_eq!(recon.group, "othello_board");
    // At t = 0 the noise spoils the precision of every feature.
    assert_eq!(recon.per_threshold[0].high_precision_pairs, 0);
    assert!(recon.best_threshold >= 1);
    // Precision about 1 (a planted feature is also precise for properties its
    // own implies), recall 0.8: F1 = 0.889.
    assert!(recon.precision > 0.99, "{}", recon.precision);
    assert!((recon.recall - 0.8).abs() < 0.02, "{}", recon.recall);
    assert!((recon.f1 - 0.889).abs() < 0.015, "{}", recon.f1);
    // Each planted feature is found for its own property.
    for (k, &b) in board.iter().enumerate() {
        let bsp = &report.coverage.bsps[b];
        if bsp.positives >= 20 {
            assert_eq!(bsp.feature, Some(k), "{}", bsp.name);
            let r = &report.reconstruction.as_ref().expect("test").bsps[b];
            assert!(r.high_precision_features >= 1, "{}", r.name);
        }
    }
    // Coverage is best above the noise too: F1 = 2 x 0.8 / 1.8 there.
    let coverage = &report.coverage.groups[0];
    assert!(coverage.best_threshold >= 1);
    assert!(
        (coverage.coverage_present - 0.889).abs() < 0.02,
        "{}",
        coverage.coverage_present
    );
}
