//! The boards of the rows the feature viewer shows.

use super::SweepError;
use kibitzer_bsp::BspLabels;
use kibitzer_io::{FileError, FileResultExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// The board of one labelled row, as the viewer draws it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionRecord {
    /// Labelled row.
    pub row: usize,
    /// Game index in the label file.
    pub game: usize,
    /// Ply of the position.
    pub ply: usize,
    /// kibitzer-games' board string (`X` black, `O` white, `.` empty, rows
    /// from the top separated by `/`, then the side to move).
    pub board: String,
    /// The move that led here (`c4`), when the labels say.
    pub last_move: Option<String>,
    /// Discs that move flipped.
    pub flipped: Vec<String>,
}

/// `positions.json`: the boards the feature statistics refer to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionsFile {
    /// Board side.
    pub board_size: usize,
    /// Rows ascending.
    pub positions: Vec<PositionRecord>,
}

/// The boards of `rows` (ascending, distinct) from the label file, with
/// the last move and the flipped discs read from `labels` (aligned with the
/// file's non-empty lines).
pub fn read_positions(
    path: &Path,
    rows: &BTreeSet<usize>,
    labels: &BspLabels,
    board_size: usize,
) -> Result<Vec<PositionRecord>, SweepError> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).at_file(path)?;
    let catalog = labels.catalog();
    let mut out = Vec::with_capacity(rows.len());
    let mut wanted = rows.iter().copied().peekable();
    let mut row = 0usize;
    for (i, text) in std::io::BufReader::new(file).lines().enumerate() {
        let Some(&next) = wanted.peek() else { break };
        let text = text.at_file(path)?;
        if text.trim().is_empty() {
            continue;
        }
        if row == next {
            wanted.next();
            let bad = |detail: String| SweepError::LabelLine {
                path: path.to_path_buf(),
                line: i + 1,
                detail,
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
            let board = value
                .get("board")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| bad("`board` (an Othello board string) is missing".into()))?;
            let position = kibitzer_games::othello::Othello::from_board_string(board)
                .map_err(|e| bad(format!("board {board:?}: {e}")))?;
            if position.size() != board_size {
                return Err(bad(format!(
                    "board {board:?} is {n}x{n}, but the sweep is for {board_size}x{board_size}",
                    n = position.size()
                )));
            }
            let field = |key: &str| {
                value
                    .get(key)
                    .and_then(serde_json::Value::as_u64)
                    .map(|v| v as usize)
                    .ok_or_else(|| bad(format!("`{key}` is missing or not a whole number")))
            };
            let mut last_move = None;
            let mut flipped = Vec::new();
            for b in labels.bits().ones_in_row(row) {
                let name = &catalog.bsps()[b].name;
                if let Some(square) = name.strip_prefix("last_move@") {
                    last_move = Some(square.to_string());
                } else if let Some(square) = name.strip_prefix("flipped@") {
                    flipped.push(square.to_string());
                }
            }
            out.push(PositionRecord {
                row,
                game: field("game")?,
                ply: field("ply")?,
                board: position.board_string(),
                last_move,
                flipped,
            });
        }
        row += 1;
    }
    if let Some(missing) = wanted.next() {
        return Err(FileError::new(
            path,
            format!("has {row} labelled positions, but row {missing} is needed"),
        )
        .into());
    }
    Ok(out)
}
