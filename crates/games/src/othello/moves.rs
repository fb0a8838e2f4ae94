//! Squares and moves, named the way Othello players write them.

use std::fmt;
use std::str::FromStr;

/// The largest board side [`Square`] can name.
const MAX_SIDE: u8 = 8;

/// A square, as a row and a column counted from the top-left corner `a1`.
///
/// The name is the column letter then the row number (`c4` is column 2,
/// row 3, both from 0), as in Othello notation with `a1` at the top left as
/// OthelloGPT draws the board. The index of a square in a bitboard or a policy
/// vector of an `n`x`n` board is `row * n + col` ([`Square::index`]): the
/// same index OthelloGPT's datasets use for 8x8 (`a1` = 0, `h1` = 7,
/// `a2` = 8, `h8` = 63).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Square {
    row: u8,
    col: u8,
}

impl Square {
    /// The square at `row`, `col` (from 0), or `None` when either is 8 or more.
    pub fn new(row: u8, col: u8) -> Option<Square> {
        (row < MAX_SIDE && col < MAX_SIDE).then_some(Square { row, col })
    }

    /// The square with index `index` (`row * size + col`) on a `size`x`size`
    /// board, or `None` when the index is off the board or the size is not
    /// 1..=8.
    pub fn from_index(index: usize, size: usize) -> Option<Square> {
        if size == 0 || size > usize::from(MAX_SIDE) || index >= size * size {
            return None;
        }
        // Both fit in u8: size <= 8.
        Some(Square {
            row: (index / size) as u8,
            col: (index % size) as u8,
        })
    }

    /// The row, from 0 (the top row, named `1`).
    pub fn row(self) -> u8 {
        self.row
    }

    /// The column, from 0 (the left column, named `a`).
    pub fn col(self) -> u8 {
        self.col
    }

    /// The index `row * size + col` of the square on a `size`x`size` board
    /// (not checked against the size; see [`Square::is_on_board`]).
    pub fn index(self, size: usize) -> usize {
        usize::from(self.row) * size + usize::from(self.col)
    }

    /// Whether the square lies on a `size`x`size` board.
    pub fn is_on_board(self, size: usize) -> bool {
        usize::from(self.row) < size && usize::from(self.col) < size
    }
}

impl fmt::Display for Square {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", char::from(b'a' + self.col), self.row + 1)
    }
}

/// The name (`c4`) of the square with index `index` on a `size`x`size` board,
/// or `None` when the index is off the board.
pub fn square_name(index: usize, size: usize) -> Option<String> {
    Square::from_index(index, size).map(|square| square.to_string())
}

/// Text that is not a square name or `pass`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read {text:?} as an Othello move: expected a square name, a column letter a-h then a row number 1-8 (like \"c4\"), or \"pass\""
)]
pub struct ParseMoveError {
    /// The text that was given.
    pub text: String,
}

impl FromStr for Square {
    type Err = ParseMoveError;

    /// Reads `c4` (case-insensitive).
    fn from_str(text: &str) -> Result<Square, ParseMoveError> {
        let error = || ParseMoveError {
            text: text.to_owned(),
        };
        let bytes = text.trim().as_bytes();
        let [letter, digit] = bytes else {
            return Err(error());
        };
        let col = letter.to_ascii_lowercase().wrapping_sub(b'a');
        let row = digit.wrapping_sub(b'1');
        Square::new(row, col).ok_or_else(error)
    }
}

/// An Othello move: a disc placed on a square, or a pass (legal only when the
/// side to move has no square to play).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OthelloMove {
    /// Place a disc on this square.
    Square(Square),
    /// No legal square: the turn goes to the opponent.
    Pass,
}

impl OthelloMove {
    /// The move on the square with index `index` of a `size`x`size` board.
    pub fn from_index(index: usize, size: usize) -> Option<OthelloMove> {
        Square::from_index(index, size).map(OthelloMove::Square)
    }

    /// The square, or `None` for a pass.
    pub fn square(self) -> Option<Square> {
        match self {
            OthelloMove::Square(square) => Some(square),
            OthelloMove::Pass => None,
        }
    }
}

impl From<Square> for OthelloMove {
    fn from(square: Square) -> OthelloMove {
        OthelloMove::Square(square)
    }
}

impl fmt::Display for OthelloMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OthelloMove::Square(square) => square.fmt(f),
            OthelloMove::Pass => f.write_str("pass"),
        }
    }
}

impl FromStr for OthelloMove {
    type Err = ParseMoveError;

    /// Reads a square name (`c4`) or `pass` (case-insensitive).
    fn from_str(text: &str) -> Result<OthelloMove, ParseMoveError> {
        if text.trim().eq_ignore_ascii_case("pass") {
            return Ok(OthelloMove::Pass);
        }
        text.parse().map(OthelloMove::Square)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_othello_notation() {
        let c4 = Square::new(3, 2).expect("row 3, column 2 is on an 8x8 board");
        assert_eq!(c4.to_string(), "c4");
        assert_eq!(c4.index(8), 26);
        assert_eq!(c4.index(6), 20);
        assert_eq!(square_name(63, 8).as_deref(), Some("h8"));
        assert_eq!(square_name(35, 6).as_deref(), Some("f6"));
        assert_eq!(square_name(36, 6), None);
        assert_eq!(square_name(7, 8).as_deref(), Some("h1"));
    }

    #[test]
    fn parsing_round_trips_and_rejects_junk() {
        for index in 0..64 {
            let mv = OthelloMove::from_index(index, 8).expect("index < 64");
            assert_eq!(mv.to_string().parse::<OthelloMove>(), Ok(mv));
        }
        assert_eq!("PASS".parse::<OthelloMove>(), Ok(OthelloMove::Pass));
        assert_eq!(
            "C4".parse::<OthelloMove>().map(|m| m.to_string()),
            Ok("c4".to_owned())
        );
        for junk in ["", "c", "c9", "i1", "c0", "c44", "pas", "4c"] {
            let error = junk.parse::<OthelloMove>().expect_err(junk);
            assert_eq!(error.text, junk);
            assert!(error.to_string().contains("square name"));
        }
    }
}

/// Serialised as its name (`"c4"`, `"pass"`), as users write it.
impl serde::Serialize for OthelloMove {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for OthelloMove {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<OthelloMove, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Serialised as its name (`"c4"`).
impl serde::Serialize for Square {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Square {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Square, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod serde_tests {
    use super::*;

    #[test]
    fn moves_serialise_as_their_names() {
        let moves: Vec<OthelloMove> = vec!["c4".parse().expect("name"), OthelloMove::Pass];
        let json = serde_json::to_string(&moves).expect("moves serialise");
        assert_eq!(json, r#"["c4","pass"]"#);
        assert_eq!(
            serde_json::from_str::<Vec<OthelloMove>>(&json).expect("round trip"),
            moves
        );
        let error = serde_json::from_str::<OthelloMove>(r#""z9""#).expect_err("not a square");
        assert!(error.to_string().contains("\"z9\""), "{error}");
    }
}
