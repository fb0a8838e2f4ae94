//! Activations whose ground truth is known, for the sweep and viewer tests:
//! random 6x6 Othello games, their labels from `kibitzer bsp labels`, and an
//! activation store whose row i is the board encoding (mine / yours / empty
//! planes, 108 values) of labelled position i — the "model" is the board
//! itself, so every square's properties have a direction in it. Like a
//! harvest, the store records each row's (game, move token) in its
//! `example` and `position` columns, which the sweep checks against the
//! labels.
#![allow(dead_code)] // each test binary uses its own subset

use crate::common::{ok, p};
use kibitzer_games::Game;
use kibitzer_games::dataset::OthelloDataset;
use kibitzer_store::{ColumnDtype, ColumnSpec, ColumnValues, StoreConfig, StoreWriter};
use std::path::PathBuf;

/// The files of a fixture, in a temporary directory.
pub struct BoardFixture {
    pub dir: tempfile::TempDir,
    pub labels: PathBuf,
    pub store: PathBuf,
    pub rows: usize,
}

/// `games` random 6x6 games with `seed`: labels and board-encoding store.
pub fn board_fixture(games: usize, seed: u64) -> BoardFixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let games_file = dir.path().join("games.bin");
    ok(&[
        "games",
        "generate",
        "othello",
        "--size",
        "6",
        "--games",
        &games.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        p(&games_file),
    ]);
    let labels = dir.path().join("labels.jsonl");
    ok(&[
        "bsp",
        "labels",
        "--game",
        "othello",
        "--games",
        p(&games_file),
        "--out",
        p(&labels),
    ]);
    // The order of `kibitzer bsp labels`: games in order, moves in order.
    let dataset = OthelloDataset::open(&games_file).expect("the dataset just written");
    let all: Vec<_> = dataset.iter().collect();
    let positions =
        kibitzer_bsp::labelling::othello_at_moves(6, &all).expect("generated games are legal");
    let width = 3 * 36;
    let store = dir.path().join("acts");
    let config = StoreConfig {
        rows_per_shard: 1024,
        metadata: serde_json::json!({"game": "othello", "row_ids": "game-token"}),
        extra_columns: vec![
            ColumnSpec::scalar("example", ColumnDtype::I64),
            ColumnSpec::scalar("position", ColumnDtype::I64),
        ],
        ..StoreConfig::new(width)
    };
    let mut writer = StoreWriter::create(&store, config).expect("a new store");
    let mut row = vec![0f32; width];
    for (position, at) in positions.positions.iter().zip(&positions.refs) {
        position.encode(&mut row);
        writer
            .push_rows_with(
                &row,
                &[
                    ("example", ColumnValues::I64(&[at.game as i64])),
                    ("position", ColumnValues::I64(&[at.token as i64])),
                ],
            )
            .expect("rows of the store's width");
    }
    writer.finish().expect("the store closes");
    let lines = std::fs::read_to_string(&labels)
        .expect("labels written")
        .lines()
        .count();
    assert_eq!(lines, positions.positions.len(), "labels and store align");
    BoardFixture {
        dir,
        labels,
        store,
        rows: lines,
    }
}
