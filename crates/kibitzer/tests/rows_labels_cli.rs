//! Rows and labels are a checked contract: `kibitzer eval bsp` and
//! `kibitzer sweep` compare the store's `example`/`position` columns with
//! the labels' (game, token) row for row, and a store and a label file from
//! different games, a different cut (`--first-per-game`, `--max-chars`), a
//! different label-game count, or a reordered store fail naming the first
//! row that differs. Tiny inputs: 4x4 Othello and an untrained 2-block GPT.
#![cfg(feature = "flex")]

mod common;

use common::{kibitzer, label_refs, ok, p, store_refs};
use kibitzer_models::Gpt;
use kibitzer_models::gpt::othello::othello_gpt_config;
use kibitzer_sae::DeviceChoice;
use kibitzer_store::{ColumnDtype, ColumnSpec, ColumnValues, Store, StoreConfig, StoreWriter};
use std::path::{Path, PathBuf};

fn generate(dir: &Path, name: &str, games: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    ok(&[
        "games",
        "generate",
        "othello",
        "--size",
        "4",
        "--games",
        &games.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        p(&path),
    ]);
    path
}

/// An untrained 4x4 OthelloGPT (2 blocks, width 32) saved in `dir`.
fn save_model(dir: &Path) {
    let mut config = othello_gpt_config(4, 2, 32, 2);
    config.seed = Some(3);
    let model = Gpt::new(config, &DeviceChoice::Cpu.device().unwrap()).unwrap();
    model.save_transformer_lens(dir).unwrap();
}

fn harvest(model: &Path, games: &Path, out: &Path, max_games: &str) {
    ok(&[
        "gpt",
        "harvest",
        "--model",
        p(model),
        "--games",
        p(games),
        "--site",
        "blocks.1.hook_resid_post",
        "--out",
        p(out),
        "--max-games",
        max_games,
        "--quiet",
    ]);
}

fn othello_labels(games: &Path, out: &Path, extra: &[&str]) -> Vec<(i64, i64)> {
    let mut args = vec![
        "bsp",
        "labels",
        "--game",
        "othello",
        "--games",
        p(games),
        "--out",
        p(out),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    label_refs(out)
}

/// `kibitzer eval bsp --neurons` of a store against a label file: (passed, stderr).
fn eval_bsp(store: &Path, labels: &Path, game: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "eval",
        "bsp",
        "--activations",
        p(store),
        "--labels",
        p(labels),
        "--game",
        game,
        "--size",
        "4",
        "--neurons",
    ];
    args.extend_from_slice(extra);
    let out = kibitzer(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first row at which the store's (example, position) and the labels'
/// (game, token) differ, or the first label row past the store's end.
fn first_difference(store: &[(i64, i64)], labels: &[(i64, i64)]) -> usize {
    (0..labels.len())
        .find(|&r| store.get(r) != Some(&labels[r]))
        .expect("the store and the labels differ")
}

/// Asserts that `eval bsp` fails naming row `row` and what each side holds there.
fn assert_fails_at(store: &Path, labels: &Path, game: &str, unit: &str, row: usize) -> String {
    let stored = store_refs(&Store::open(store).unwrap());
    let labelled = label_refs(labels);
    let (passed, err) = eval_bsp(store, labels, game, &[]);
    assert!(!passed, "eval bsp should have failed");
    let (g, t) = labelled[row];
    assert!(
        err.contains(&format!("row {row} of {}", p(labels)))
            && err.contains(&format!("is game {g}, ply "))
            && err.contains(&format!("{unit} {t}")),
        "{err}"
    );
    match stored.get(row) {
        Some((e, q)) => assert!(
            err.contains(&format!(
                "row {row} of the activation store {} is game {e}, {unit} {q}",
                p(store)
            )),
            "{err}"
        ),
        None => assert!(err.contains(&format!("has {} rows", stored.len())), "{err}"),
    }
    assert!(err.contains("first row where they differ"), "{err}");
    err
}

/// Rewrites the store at `from` into `to` with its rows (and their
/// columns) in the order `order`; without columns when `columns` is false.
fn rewrite_store(
    from: &Path,
    to: &Path,
    order: &[usize],
    columns: bool,
    metadata: serde_json::Value,
) {
    let store = Store::open(from).unwrap();
    let d = store.d_in();
    let values: Vec<f32> = (0..store.shards().len())
        .flat_map(|i| store.read_shard(i).unwrap())
        .collect();
    let ids = store_refs(&store);
    let config = StoreConfig {
        metadata,
        extra_columns: if columns {
            vec![
                ColumnSpec::scalar("example", ColumnDtype::I64),
                ColumnSpec::scalar("position", ColumnDtype::I64),
            ]
        } else {
            Vec::new()
        },
        ..StoreConfig::new(d)
    };
    let mut writer = StoreWriter::create(to, config).unwrap();
    for &r in order {
        let row = &values[r * d..(r + 1) * d];
        if columns {
            writer
                .push_rows_with(
                    row,
                    &[
                        ("example", ColumnValues::I64(&[ids[r].0])),
                        ("position", ColumnValues::I64(&[ids[r].1])),
                    ],
                )
                .unwrap();
        } else {
            writer.push_rows(row).unwrap();
        }
    }
    writer.finish().unwrap();
}

#[test]
fn othello_stores_and_labels_are_checked_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), "games.bin", 30, 1);
    let other_games = generate(dir.path(), "other.bin", 30, 2);
    let model = dir.path().join("model");
    save_model(&model);
    let acts = dir.path().join("acts");
    harvest(&model, &games, &acts, "20");
    let store = Store::open(&acts).unwrap();
    assert_eq!(store.metadata()["row_ids"], "game-token");
    let stored = store_refs(&store);

    // The matching case: same games, same count, same order.
    let labels = dir.path().join("labels.jsonl");
    assert_eq!(
        othello_labels(&games, &labels, &["--max-games", "20"]),
        stored
    );
    let (passed, err) = eval_bsp(&acts, &labels, "othello", &[]);
    assert!(passed, "{err}");
    assert!(!err.contains("warning"), "{err}");
    // Labels of the first games only are a prefix of the store's rows.
    let fewer = dir.path().join("fewer.jsonl");
    othello_labels(&games, &fewer, &["--max-games", "12"]);
    let (passed, err) = eval_bsp(&acts, &fewer, "othello", &[]);
    assert!(passed, "{err}");

    // Another games file.
    let other = dir.path().join("other.jsonl");
    let refs = othello_labels(&other_games, &other, &["--max-games", "20"]);
    let row = first_difference(&stored, &refs);
    assert_fails_at(&acts, &other, "othello", "token", row);

    // Another label-game count: more games labelled than harvested.
    let more = dir.path().join("more.jsonl");
    othello_labels(&games, &more, &["--max-games", "25"]);
    let err = assert_fails_at(&acts, &more, "othello", "token", stored.len());
    assert!(err.contains("game 20, ply"), "{err}");

    // Another cut: the first 5 moves of each game (the Othello counterpart
    // of --max-chars), against a store of every move.
    let cut = dir.path().join("cut.jsonl");
    let refs = othello_labels(
        &games,
        &cut,
        &["--max-games", "20", "--first-per-game", "5"],
    );
    let row = first_difference(&stored, &refs);
    assert_fails_at(&acts, &cut, "othello", "token", row);

    // A reordered store: rows 3 and 4 swapped.
    let shuffled = dir.path().join("shuffled");
    let mut order: Vec<usize> = (0..stored.len()).collect();
    order.swap(3, 4);
    let metadata = Store::open(&acts).unwrap().metadata().clone();
    rewrite_store(&acts, &shuffled, &order, true, metadata);
    assert_fails_at(&shuffled, &labels, "othello", "token", 3);

    // `kibitzer sweep` refuses the reordered store before training.
    let sweep = |store: &Path, out: &Path| {
        kibitzer(&[
            "sweep",
            "--activations",
            p(store),
            "--labels",
            p(&labels),
            "--game",
            "othello",
            "--size",
            "4",
            "--out",
            p(out),
            "--preset",
            "small",
            "--archs",
            "standard",
            "--features",
            "16",
            "--steps",
            "20",
            "--batch-size",
            "64",
            "--quiet",
        ])
    };
    let out = sweep(&shuffled, &dir.path().join("sweep-shuffled"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("row 3 of the activation store {}", p(&shuffled)))
            && err.contains("first row where they differ"),
        "{err}"
    );
    assert!(!dir.path().join("sweep-shuffled/checkpoint.json").exists());
    // ... and runs on the store in order.
    let out = sweep(&acts, &dir.path().join("sweep"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A store without the columns (harvested before they were written) is
    // paired by count and order, with a warning.
    let bare = dir.path().join("bare");
    rewrite_store(
        &acts,
        &bare,
        &(0..stored.len()).collect::<Vec<_>>(),
        false,
        serde_json::Value::Null,
    );
    let (passed, err) = eval_bsp(&bare, &labels, "othello", &[]);
    assert!(passed, "{err}");
    assert!(
        err.contains("warning") && err.contains("by count and order only"),
        "{err}"
    );
}

/// AlphaZero stores harvested before they recorded (game, move) hold each
/// row's position index: row r must be position r.
#[test]
fn legacy_alphazero_stores_are_checked_by_position_index() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), "games.bin", 6, 4);
    let labels = dir.path().join("labels.jsonl");
    let refs = othello_labels(&games, &labels, &[]);
    let write = |name: &str, order: &[usize]| {
        let path = dir.path().join(name);
        let config = StoreConfig {
            metadata: serde_json::json!({"model": "alphazero-othello", "board_size": 4}),
            extra_columns: vec![
                ColumnSpec::scalar("example", ColumnDtype::I64),
                ColumnSpec::scalar("position", ColumnDtype::I64),
            ],
            ..StoreConfig::new(4)
        };
        let mut writer = StoreWriter::create(&path, config).unwrap();
        for &r in order {
            let row = [r as f32, (r % 3) as f32, 1.0, -(r as f32)];
            writer
                .push_rows_with(
                    &row,
                    &[
                        ("example", ColumnValues::I64(&[r as i64])),
                        ("position", ColumnValues::I64(&[0])),
                    ],
                )
                .unwrap();
        }
        writer.finish().unwrap();
        path
    };
    let mut order: Vec<usize> = (0..refs.len()).collect();
    let in_order = write("in-order", &order);
    let (passed, err) = eval_bsp(&in_order, &labels, "othello", &["--test-fraction", "0.4"]);
    assert!(passed, "{err}");
    order.swap(7, 2);
    let swapped = write("swapped", &order);
    let (passed, err) = eval_bsp(&swapped, &labels, "othello", &[]);
    assert!(!passed);
    assert!(
        err.contains("row 2 of the activation store")
            && err.contains("harvested position 7")
            && err.contains("labelled position 2"),
        "{err}"
    );
}

/// Chess: a store cut to the model's 64 characters against labels cut to
/// another `--max-chars`.
#[cfg(feature = "chess")]
#[test]
fn chess_labels_of_another_max_chars_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let games = dir.path().join("games.pgn");
    ok(&[
        "games",
        "generate",
        "chess",
        "--players",
        "random@400",
        "--players",
        "random@500",
        "--games",
        "6",
        "--seed",
        "5",
        "--max-plies",
        "30",
        "--threads",
        "1",
        "--out",
        p(&games),
    ]);
    let model = dir.path().join("model");
    let mut config = kibitzer_models::gpt::chess::chess_gpt_config(2, 32, 2, 64);
    config.seed = Some(4);
    Gpt::new(config, &DeviceChoice::Cpu.device().unwrap())
        .unwrap()
        .save_transformer_lens(&model)
        .unwrap();
    let acts = dir.path().join("acts");
    ok(&[
        "gpt",
        "harvest",
        "--model",
        p(&model),
        "--games",
        p(&games),
        "--site",
        "blocks.0.hook_resid_post",
        "--out",
        p(&acts),
        "--truncate",
        "--quiet",
    ]);
    let labels = |max_chars: &str| {
        let out = dir.path().join(format!("labels-{max_chars}.jsonl"));
        ok(&[
            "bsp",
            "labels",
            "--game",
            "chess",
            "--pgn",
            p(&games),
            "--max-chars",
            max_chars,
            "--out",
            p(&out),
        ]);
        out
    };
    let matching = labels("64");
    let (passed, err) = eval_bsp(&acts, &matching, "chess", &["--test-fraction", "0.3"]);
    assert!(passed, "{err}");
    let longer = labels("128");
    let stored = store_refs(&Store::open(&acts).unwrap());
    let row = first_difference(&stored, &label_refs(&longer));
    assert_fails_at(&acts, &longer, "chess", "character", row);
}
