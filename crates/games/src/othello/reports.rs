//! Othello jobs as serialisable reports: a timed perft, a generated random
//! dataset, a dataset's summary (every game replayed) and one game as text.
//! `kibitzer games` prints them.

use std::path::Path;
use std::time::Instant;

use super::{BoardSizeError, Othello, perft};
use crate::dataset::{DatasetError, DatasetSummary, OthelloDataset, write_random_dataset};
use crate::game::{Game, Outcome, Player};

/// A timed perft run (one core).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PerftReport {
    /// Board size.
    pub size: usize,
    /// Depth in plies.
    pub depth: u32,
    /// Move sequences (leaf nodes) counted.
    pub count: u64,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// `count / elapsed_s`: leaf nodes per second (bulk counted).
    pub nodes_per_s: f64,
}

/// Runs perft from the start position of a `size`x`size` board.
pub fn perft_report(size: usize, depth: u32) -> Result<PerftReport, BoardSizeError> {
    let start = Othello::new(size)?;
    let clock = Instant::now();
    let count = perft(&start, depth);
    let elapsed_s = clock.elapsed().as_secs_f64();
    Ok(PerftReport {
        size,
        depth,
        count,
        elapsed_s,
        nodes_per_s: rate(count, elapsed_s),
    })
}

fn rate(count: u64, elapsed_s: f64) -> f64 {
    if elapsed_s > 0.0 {
        count as f64 / elapsed_s
    } else {
        f64::INFINITY
    }
}

/// A timed dataset generation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GenerateReport {
    /// What was written.
    pub summary: DatasetSummary,
    /// The seed.
    pub seed: u64,
    /// rayon threads used.
    pub threads: usize,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// Games per second.
    pub games_per_s: f64,
}

/// Writes `count` games of uniformly random legal moves to `path` (see
/// [`crate::dataset::write_random_dataset`]) on rayon's current pool.
pub fn generate_random_dataset(
    path: impl AsRef<Path>,
    size: usize,
    count: usize,
    seed: u64,
) -> Result<GenerateReport, DatasetError> {
    let clock = Instant::now();
    let summary = write_random_dataset(path, size, count, seed)?;
    let elapsed_s = clock.elapsed().as_secs_f64();
    Ok(GenerateReport {
        games_per_s: rate(summary.games, elapsed_s),
        summary,
        seed,
        threads: rayon::current_num_threads(),
        elapsed_s,
    })
}

/// A checked dataset and its results.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DatasetInfo {
    /// The file's contents, counted.
    pub summary: DatasetSummary,
    /// Games Black won.
    pub black_wins: u64,
    /// Games White won.
    pub white_wins: u64,
    /// Drawn games.
    pub draws: u64,
    /// Games that stop before the end (prefixes).
    pub unfinished: u64,
    /// Mean moves per game (passes included).
    pub mean_moves: f64,
    /// The shortest and longest game, in moves.
    pub min_moves: usize,
    /// See `min_moves`.
    pub max_moves: usize,
}

/// Opens `path`, replays every game (reporting the first illegal move) and
/// counts the results.
pub fn dataset_info(path: impl AsRef<Path>) -> Result<DatasetInfo, DatasetError> {
    let dataset = OthelloDataset::open(path)?;
    let summary = dataset.validate()?;
    let mut info = DatasetInfo {
        mean_moves: if summary.games > 0 {
            summary.moves as f64 / summary.games as f64
        } else {
            0.0
        },
        summary,
        black_wins: 0,
        white_wins: 0,
        draws: 0,
        unfinished: 0,
        min_moves: usize::MAX,
        max_moves: 0,
    };
    for index in 0..dataset.len() {
        let positions = dataset.positions(index)?;
        info.min_moves = info.min_moves.min(positions.len());
        info.max_moves = info.max_moves.max(positions.len());
        let end = positions
            .last()
            .copied()
            .unwrap_or(Othello::new(dataset.board_size())?);
        match end.outcome() {
            Some(Outcome::Win(Player::First)) => info.black_wins += 1,
            Some(Outcome::Win(Player::Second)) => info.white_wins += 1,
            Some(Outcome::Draw) => info.draws += 1,
            None => info.unfinished += 1,
        }
    }
    if dataset.is_empty() {
        info.min_moves = 0;
    }
    Ok(info)
}

/// Game `index` of the dataset at `path`: the moves and the final board, as
/// text for a terminal.
pub fn show_game(path: impl AsRef<Path>, index: usize) -> Result<String, DatasetError> {
    let dataset = OthelloDataset::open(path)?;
    let positions = dataset.positions(index)?;
    let moves: Vec<String> = dataset
        .game(index)
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    let end = positions
        .last()
        .copied()
        .unwrap_or(Othello::new(dataset.board_size())?);
    Ok(format!("game {index}: {}\n{end}\n", moves.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perft_report_counts_and_serialises() {
        let report = perft_report(8, 5).expect("8 is supported");
        assert_eq!(report.count, 1396);
        assert!(report.nodes_per_s > 0.0);
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["count"], 1396);
        assert!(perft_report(3, 1).is_err());
    }

    #[test]
    fn generate_then_inspect() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("six.kbzoth");
        let report = generate_random_dataset(&path, 6, 200, 4).expect("writes");
        assert_eq!(report.summary.games, 200);
        let info = dataset_info(&path).expect("valid");
        assert_eq!(info.black_wins + info.white_wins + info.draws, 200);
        assert_eq!(info.unfinished, 0);
        assert!(info.min_moves <= info.max_moves && info.max_moves >= 28);
        assert!(info.black_wins > 20 && info.white_wins > 20, "{info:?}");
        let text = show_game(&path, 0).expect("game 0 exists");
        assert!(text.starts_with("game 0: "), "{text}");
        assert!(text.contains("wins") || text.contains("Draw"), "{text}");
        let error = show_game(&path, 200).expect_err("only 200 games");
        assert!(error.to_string().contains("no game 200"));
        assert!(
            dataset_info(dir.path().join("missing"))
                .expect_err("no file")
                .to_string()
                .contains("missing")
        );
    }
}
