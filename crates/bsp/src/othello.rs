//! Othello board-state properties, for every board size kibitzer-games
//! plays (4x4, 6x6, 8x8).
//!
//! All properties are read from the [`Othello`] position a token is labelled
//! with — the position *after* the move of that token (see
//! [`crate::labelling`]) — and are relative to the side to move there:
//!
//! | group | properties | holds when |
//! |---|---|---|
//! | `othello_board` | `mine@c4`, `yours@c4`, `empty@c4` per square | the square holds a disc of the side to move / of the other side / nothing |
//! | `othello_legal_moves` | `legal@c4` per square | the side to move may play there |
//! | `othello_last_move` | `last_move@c4` per square | the last move (the token's move) was played there |
//! | `othello_flipped` | `flipped@c4` per square | the last move flipped the disc there |
//!
//! Square names follow kibitzer-games: column letter, row number from the
//! top (`a1` is index 0).
//!
//! Reference 002's code labels "mine / yours" by the parity of the move
//! index (`flip = -1` on odd moves), which ignores passes; here "mine" is the
//! side to move of the position, which is the same except after a pass. Its
//! legal moves are those of the player about to move, as here; when that
//! player must pass the set is empty. Its "blank masked" Othello board config
//! forgets `one_hot_mask_idx` (its code says `#Fix`), so it divides coverage
//! by 192 cells with the 64 blank ones at 0; with `include_empty: false`
//! this crate divides by the 128 properties the group has.

use kibitzer_games::Game;
use kibitzer_games::othello::{BOARD_SIZES, Othello, OthelloMove, square_name};

use crate::bits::BitSink;
use crate::error::{BspError, Result};
use crate::property::{BspInfo, BspSet, PropertyFamily};

/// Which Othello properties a set holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OthelloBspOptions {
    /// Include `empty@sq` in `othello_board` (reference 002 scores Othello
    /// both with and without the blank class).
    pub include_empty: bool,
    /// Include `othello_legal_moves`.
    pub legal_moves: bool,
    /// Include `othello_last_move`.
    pub last_move: bool,
    /// Include `othello_flipped`.
    pub flipped: bool,
}

impl Default for OthelloBspOptions {
    fn default() -> Self {
        OthelloBspOptions {
            include_empty: true,
            legal_moves: true,
            last_move: true,
            flipped: true,
        }
    }
}

/// The Othello properties of a `size`x`size` board chosen by `options`.
pub fn othello_bsps(size: usize, options: OthelloBspOptions) -> Result<BspSet<Othello>> {
    let mut families: Vec<Box<dyn PropertyFamily<Othello>>> =
        vec![Box::new(OthelloBoard::new(size, options.include_empty)?)];
    if options.legal_moves {
        families.push(Box::new(OthelloSquares::new(size, SquareKind::Legal)?));
    }
    if options.last_move {
        families.push(Box::new(OthelloSquares::new(size, SquareKind::LastMove)?));
    }
    if options.flipped {
        families.push(Box::new(OthelloSquares::new(size, SquareKind::Flipped)?));
    }
    BspSet::new(families)
}

fn check_size(size: usize) -> Result<()> {
    if BOARD_SIZES.contains(&size) {
        Ok(())
    } else {
        Err(BspError::Config {
            field: "othello board size",
            detail: format!("{size} is not a board size kibitzer-games plays (4, 6 or 8)"),
        })
    }
}

fn check_position(size: usize, position: &Othello) -> Result<()> {
    if position.size() == size {
        Ok(())
    } else {
        Err(BspError::Position {
            what: "Othello position".into(),
            detail: format!(
                "board is {n}x{n}, but the BSP set is for {size}x{size}",
                n = position.size()
            ),
        })
    }
}

fn name_of(index: usize, size: usize) -> String {
    square_name(index, size)
        .expect("callers pass index < size * size for a size check_size accepted (4, 6 or 8), which names a square")
}

/// The `othello_board` group: mine / yours (/ empty) per square.
pub struct OthelloBoard {
    size: usize,
    include_empty: bool,
    infos: Vec<BspInfo>,
}

impl OthelloBoard {
    /// The board family of a `size`x`size` board.
    pub fn new(size: usize, include_empty: bool) -> Result<OthelloBoard> {
        check_size(size)?;
        let squares = size * size;
        let classes: &[&str] = if include_empty {
            &["mine", "yours", "empty"]
        } else {
            &["mine", "yours"]
        };
        // Class-major, so each class is one bitboard written at once.
        let infos = classes
            .iter()
            .flat_map(|class| {
                (0..squares).map(move |sq| {
                    let square = name_of(sq, size);
                    BspInfo::new(
                        format!("{class}@{square}"),
                        "othello_board",
                        "board",
                        Some(format!("othello_board/{square}")),
                    )
                })
            })
            .collect();
        Ok(OthelloBoard {
            size,
            include_empty,
            infos,
        })
    }
}

impl PropertyFamily<Othello> for OthelloBoard {
    fn properties(&self) -> &[BspInfo] {
        &self.infos
    }

    fn check(&self, position: &Othello) -> Result<()> {
        check_position(self.size, position)
    }

    fn evaluate(&self, position: &Othello, out: &mut BitSink<'_>) {
        let n = self.size * self.size;
        out.put_bits(0, position.mine(), n);
        out.put_bits(n, position.yours(), n);
        if self.include_empty {
            out.put_bits(2 * n, position.empty(), n);
        }
    }
}

/// Which per-square fact an [`OthelloSquares`] family records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SquareKind {
    /// The side to move may play on the square.
    Legal,
    /// The last move was played on the square.
    LastMove,
    /// The last move flipped the disc on the square.
    Flipped,
}

impl SquareKind {
    fn prefix(self) -> &'static str {
        match self {
            SquareKind::Legal => "legal",
            SquareKind::LastMove => "last_move",
            SquareKind::Flipped => "flipped",
        }
    }

    fn group(self) -> &'static str {
        match self {
            SquareKind::Legal => "othello_legal_moves",
            SquareKind::LastMove => "othello_last_move",
            SquareKind::Flipped => "othello_flipped",
        }
    }

    fn category(self) -> &'static str {
        match self {
            SquareKind::Legal => "legal_moves",
            SquareKind::LastMove => "last_move",
            SquareKind::Flipped => "flipped",
        }
    }
}

/// One binary property per square: legal moves, the last move or the flips.
pub struct OthelloSquares {
    size: usize,
    kind: SquareKind,
    infos: Vec<BspInfo>,
}

impl OthelloSquares {
    /// The family of `kind` on a `size`x`size` board.
    pub fn new(size: usize, kind: SquareKind) -> Result<OthelloSquares> {
        check_size(size)?;
        let infos = (0..size * size)
            .map(|sq| {
                BspInfo::new(
                    format!("{}@{}", kind.prefix(), name_of(sq, size)),
                    kind.group(),
                    kind.category(),
                    None,
                )
            })
            .collect();
        Ok(OthelloSquares { size, kind, infos })
    }
}

impl PropertyFamily<Othello> for OthelloSquares {
    fn properties(&self) -> &[BspInfo] {
        &self.infos
    }

    fn check(&self, position: &Othello) -> Result<()> {
        check_position(self.size, position)
    }

    fn evaluate(&self, position: &Othello, out: &mut BitSink<'_>) {
        let n = self.size * self.size;
        match self.kind {
            // A finished game has no legal square; `legal_bitboard` is 0 then.
            SquareKind::Legal => out.put_bits(0, position.legal_bitboard(), n),
            SquareKind::LastMove => {
                if let Some(OthelloMove::Square(square)) = position.last_move() {
                    out.set(square.index(self.size));
                }
            }
            SquareKind::Flipped => out.put_bits(0, position.last_flipped(), n),
        }
    }
}

/// The side-to-move-relative board of a position as text, for error
/// messages and label files: the board string of kibitzer-games.
pub fn describe(position: &Othello) -> String {
    position.position_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_games::othello::Square;

    fn play(moves: &[&str]) -> Othello {
        let mut position = Othello::standard8();
        for text in moves {
            let mv: OthelloMove = text.parse().expect("test moves parse");
            position.play(mv).expect("test moves are legal");
        }
        position
    }

    #[test]
    fn first_move_labels_by_hand() {
        // Black plays d3 (index 19), flipping d4 (index 27); White to move.
        let set = othello_bsps(8, OthelloBspOptions::default()).expect("set");
        let position = play(&["d3"]);
        let values = set.evaluate(&position).expect("8x8");
        let catalog = set.catalog();
        let value = |name: &str| values[catalog.index_of(name).expect(name)];
        // White (to move) owns e5 only; Black owns d3, d4, e4, d5.
        assert!(value("mine@e5"));
        for sq in ["d3", "d4", "e4", "d5"] {
            assert!(value(&format!("yours@{sq}")), "{sq}");
            assert!(!value(&format!("mine@{sq}")), "{sq}");
        }
        assert!(value("empty@a1") && !value("empty@d4"));
        assert!(value("last_move@d3") && !value("last_move@d4"));
        assert!(value("flipped@d4") && !value("flipped@d3"));
        // White's replies to d3: c3, e3, c5.
        let legal: Vec<&str> = catalog
            .bsps()
            .iter()
            .enumerate()
            .filter(|(i, b)| b.group == "othello_legal_moves" && values[*i])
            .map(|(_, b)| b.name.as_str())
            .collect();
        assert_eq!(legal, vec!["legal@c3", "legal@e3", "legal@c5"]);
        assert_eq!(catalog.len(), 64 * 3 + 64 * 3);
        assert_eq!(Square::new(2, 3).map(|s| s.index(8)), Some(19));
    }

    #[test]
    fn every_size_and_the_wrong_size() {
        for size in [4, 6, 8] {
            let set = othello_bsps(size, OthelloBspOptions::default()).expect("set");
            assert_eq!(set.len(), 6 * size * size);
            let start = Othello::new(size).expect("size");
            let values = set.evaluate(&start).expect("fits");
            // Two discs each, nothing played yet.
            assert_eq!(
                values.iter().filter(|&&v| v).count(),
                2 + 2 + (size * size - 4) + 4
            );
        }
        let set = othello_bsps(6, OthelloBspOptions::default()).expect("set");
        let error = set
            .label(&[Othello::standard8()])
            .expect_err("8x8 on a 6x6 set");
        assert!(error.to_string().contains("6x6"), "{error}");
        assert!(othello_bsps(5, OthelloBspOptions::default()).is_err());
    }
}
