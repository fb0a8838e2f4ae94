//! Fuzzing the Othello game file (issue 20): `OthelloDataset` takes random
//! bytes and mutated valid datasets and answers `Ok` or a clean error,
//! never a panic or a hang; a dataset it accepts replays or names the
//! illegal move. `KIBITZER_FUZZ_CASES` sets the cases; see testing/fuzz.rs.

#[path = "../../../testing/fuzz.rs"]
mod fuzz;

use kibitzer_games::dataset::{OthelloDataset, write_random_dataset};
use proptest::prelude::*;
use std::path::PathBuf;

/// Valid datasets of a few random games on 4x4, 6x6 and 8x8 boards, and
/// one with no game.
fn seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("a temp dir");
    [(4, 5), (6, 3), (8, 2), (6, 0)]
        .iter()
        .enumerate()
        .map(|(i, &(size, games))| {
            let path = dir.path().join(format!("{i}.bin"));
            write_random_dataset(&path, size, games, i as u64).expect("a dataset");
            std::fs::read(&path).expect("written")
        })
        .collect()
}

proptest! {
    #![proptest_config(fuzz::config(30_000))]

    #[test]
    fn othello_dataset_answers_every_input(input in fuzz::inputs(seeds(), 2048)) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || {
            let Ok(dataset) = OthelloDataset::from_bytes(PathBuf::from("<fuzz>"), bytes) else {
                return;
            };
            for (i, moves) in dataset.iter().enumerate() {
                assert_eq!(dataset.game(i).as_ref(), Some(&moves));
                let _ = dataset.positions(i);
            }
            assert!(dataset.game(dataset.len()).is_none());
            if let Err(error) = dataset.validate() {
                assert!(error.to_string().contains("<fuzz>"), "{error}");
            }
        })?;
    }
}
