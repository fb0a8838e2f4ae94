//! Linear probes read a board that is linearly encoded in the activations,
//! and fail on the same activations shuffled across positions.

use kibitzer_bsp::labelling::{othello_at_moves, split_by_game};
use kibitzer_bsp::othello::{OthelloBspOptions, othello_bsps};
use kibitzer_bsp::probe::{ProbeConfig, probe_report, probe_variables};
use kibitzer_games::dataset::generate_random_games;
use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn probes_recover_a_linearly_encoded_board() {
    let set = othello_bsps(
        6,
        OthelloBspOptions {
            include_empty: true,
            legal_moves: true,
            last_move: false,
            flipped: false,
        },
    )
    .expect("set");
    let games = generate_random_games(6, 160, 21).expect("6x6");
    let labelled = othello_at_moves(6, &games).expect("legal");
    let labels = set.label(&labelled.positions).expect("labels");
    let board: Vec<usize> = set.catalog().groups()[0].bsps.clone();
    // Activations: a random 64-dim projection of the board's one-hot code
    // (108 values, only 72 free: the third class is implied) plus noise.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let d = 96;
    let projection = Array2::from_shape_fn((board.len(), d), |_| rng.random_range(-1.0f32..1.0));
    let one_hot = Array2::from_shape_fn((labels.rows(), board.len()), |(r, k)| {
        if labels.get(r, board[k]) { 1.0f32 } else { 0.0 }
    });
    let noise = Array2::from_shape_fn((labels.rows(), d), |_| rng.random_range(-0.05f32..0.05));
    let x = one_hot.dot(&projection) + noise;
    let (train, test) = split_by_game(&labelled.refs, 0.25, 2).expect("fraction");
    let (train_labels, test_labels) = (labels.select_rows(&train), labels.select_rows(&test));
    let (train_x, test_x) = (x.select(Axis(0), &train), x.select(Axis(0), &test));
    let config = ProbeConfig {
        epochs: 30,
        batch_size: 256,
        learning_rate: 1e-2,
        ..ProbeConfig::default()
    };
    let report = probe_report(
        "encoded",
        (train_x.view(), &train_labels),
        (test_x.view(), &test_labels),
        &["othello_board"],
        &config,
    )
    .expect("valid");
    assert_eq!(report.groups.len(), 1);
    let board_score = &report.groups[0];
    assert_eq!(board_score.variables, 36);
    assert!(
        board_score.accuracy > 0.97,
        "accuracy {}",
        board_score.accuracy
    );
    assert!(board_score.f1 > 0.97, "f1 {}", board_score.f1);
    assert!(report.epoch_losses.first() > report.epoch_losses.last());
    // Same seed, same probes.
    let again = probe_report(
        "encoded",
        (train_x.view(), &train_labels),
        (test_x.view(), &test_labels),
        &["othello_board"],
        &config,
    )
    .expect("valid");
    assert_eq!(again, report);

    // Shuffled rows carry no board: the probe falls back to class rates.
    let mut order: Vec<usize> = (0..train_x.nrows()).collect();
    order.shuffle(&mut rng);
    let shuffled = train_x.select(Axis(0), &order);
    let report = probe_report(
        "shuffled",
        (shuffled.view(), &train_labels),
        (test_x.view(), &test_labels),
        &["othello_board"],
        &config,
    )
    .expect("valid");
    assert!(
        report.groups[0].accuracy < 0.75,
        "shuffled accuracy {}",
        report.groups[0].accuracy
    );

    // Variables: one per square with mine / yours / empty / none; the legal
    // moves group has one two-class variable per square.
    let variables = probe_variables(set.catalog(), &[]).expect("all groups");
    assert_eq!(variables.len(), 72);
    assert_eq!(variables[0].classes.len(), 4);
    assert_eq!(variables[71].classes.len(), 2);
    assert!(probe_variables(set.catalog(), &["nope"]).is_err());
}
