//! Perft: the number of legal move sequences of a given length, the
//! standard check of a move generator, through [`shakmaty::perft`].
//!
//! Perft counts move-generator paths: it ignores [`super::DrawRules`]
//! (repetitions and the fifty-move rule) and insufficient material, as the
//! published reference counts do; sequences cut short by mate or stalemate
//! are not counted.

use std::time::Instant;

use super::{Chess, NotationError, parse_fen};

/// The number of legal move sequences of `depth` plies from the current
/// position of `game`.
pub fn perft(game: &Chess, depth: u32) -> u64 {
    shakmaty::perft(game.as_shakmaty(), depth)
}

/// A timed perft run (one core).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PerftReport {
    /// The position, as FEN.
    pub fen: String,
    /// Depth in plies.
    pub depth: u32,
    /// Move sequences (leaf nodes) counted.
    pub count: u64,
    /// Wall time in seconds.
    pub elapsed_s: f64,
    /// `count / elapsed_s`: leaf nodes per second (the last ply bulk
    /// counted, as shakmaty's perft does).
    pub nodes_per_s: f64,
}

/// Runs perft from `fen` (the standard starting position when `None`).
pub fn perft_report(fen: Option<&str>, depth: u32) -> Result<PerftReport, NotationError> {
    let game = match fen {
        Some(fen) => Chess::from_position(parse_fen(fen)?),
        None => Chess::new(),
    };
    let clock = Instant::now();
    let count = perft(&game, depth);
    let elapsed_s = clock.elapsed().as_secs_f64();
    Ok(PerftReport {
        fen: game.fen(),
        depth,
        count,
        elapsed_s,
        nodes_per_s: if elapsed_s > 0.0 {
            count as f64 / elapsed_s
        } else {
            f64::INFINITY
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_names_the_position() {
        let report = perft_report(None, 3).unwrap();
        assert_eq!(report.count, 8902);
        assert_eq!(report.depth, 3);
        assert!(report.fen.starts_with("rnbqkbnr/pppppppp"));
        assert!(report.nodes_per_s > 0.0);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"nodes_per_s\""));
    }

    #[test]
    fn report_rejects_a_bad_fen() {
        let err = perft_report(Some("not a fen"), 1).unwrap_err();
        assert!(err.to_string().contains("not a fen"), "{err}");
    }
}
