//! The eight symmetries of the square board (the dihedral group D4), for
//! data augmentation: a position, a move and a policy vector transform
//! together, and legal moves commute with every symmetry.

use super::{OthelloMove, Square};

/// A symmetry of the square board. `apply` maps square (`row`, `col`) of an
/// `n`x`n` board to the square given per variant (with `m = n - 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Symmetry {
    /// (row, col) -> (row, col).
    Identity,
    /// Quarter turn clockwise: (row, col) -> (col, m - row).
    Rotate90,
    /// Half turn: (row, col) -> (m - row, m - col).
    Rotate180,
    /// Quarter turn anticlockwise: (row, col) -> (m - col, row).
    Rotate270,
    /// Mirror left-right: (row, col) -> (row, m - col).
    FlipHorizontal,
    /// Mirror top-bottom: (row, col) -> (m - row, col).
    FlipVertical,
    /// Mirror in the a1-h8 diagonal: (row, col) -> (col, row).
    Transpose,
    /// Mirror in the h1-a8 diagonal: (row, col) -> (m - col, m - row).
    AntiTranspose,
}

impl Symmetry {
    /// All eight, identity first.
    pub const ALL: [Symmetry; 8] = [
        Symmetry::Identity,
        Symmetry::Rotate90,
        Symmetry::Rotate180,
        Symmetry::Rotate270,
        Symmetry::FlipHorizontal,
        Symmetry::FlipVertical,
        Symmetry::Transpose,
        Symmetry::AntiTranspose,
    ];

    /// The symmetry that undoes this one.
    pub fn inverse(self) -> Symmetry {
        match self {
            Symmetry::Rotate90 => Symmetry::Rotate270,
            Symmetry::Rotate270 => Symmetry::Rotate90,
            other => other,
        }
    }

    /// The image of (`row`, `col`) on an `n`x`n` board.
    fn apply_coords(self, row: usize, col: usize, n: usize) -> (usize, usize) {
        let m = n - 1;
        match self {
            Symmetry::Identity => (row, col),
            Symmetry::Rotate90 => (col, m - row),
            Symmetry::Rotate180 => (m - row, m - col),
            Symmetry::Rotate270 => (m - col, row),
            Symmetry::FlipHorizontal => (row, m - col),
            Symmetry::FlipVertical => (m - row, col),
            Symmetry::Transpose => (col, row),
            Symmetry::AntiTranspose => (m - col, m - row),
        }
    }

    /// The image of the square with index `index` on a `size`x`size` board
    /// (`index < size * size`).
    pub fn apply_index(self, index: usize, size: usize) -> usize {
        assert!(
            index < size * size,
            "square index {index} is off the {size}x{size} board"
        );
        let (row, col) = self.apply_coords(index / size, index % size, size);
        row * size + col
    }

    /// The image of a square on a `size`x`size` board.
    pub fn apply_square(self, square: Square, size: usize) -> Square {
        let (row, col) =
            self.apply_coords(usize::from(square.row()), usize::from(square.col()), size);
        Square::new(row as u8, col as u8).expect("a symmetry keeps squares on the board")
    }

    /// The image of a move (a pass stays a pass).
    pub fn apply_move(self, mv: OthelloMove, size: usize) -> OthelloMove {
        match mv {
            OthelloMove::Square(square) => OthelloMove::Square(self.apply_square(square, size)),
            OthelloMove::Pass => OthelloMove::Pass,
        }
    }

    /// The image of a bitboard of a `size`x`size` board.
    pub fn apply_bitboard(self, bits: u64, size: usize) -> u64 {
        if self == Symmetry::Identity {
            return bits;
        }
        let mut rest = bits;
        let mut image = 0;
        while rest != 0 {
            let index = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            image |= 1 << self.apply_index(index, size);
        }
        image
    }

    /// The image of a policy index (`0..size*size` squares, `size*size` the
    /// pass, which is fixed).
    pub fn apply_action(self, action: usize, size: usize) -> usize {
        if action == size * size {
            action
        } else {
            self.apply_index(action, size)
        }
    }

    /// The policy vector of the transformed position: `out[apply_action(a)] =
    /// policy[a]`. `policy` has `size * size + 1` entries (pass last).
    pub fn apply_policy(self, policy: &[f32], size: usize) -> Vec<f32> {
        assert_eq!(
            policy.len(),
            size * size + 1,
            "an Othello policy has size*size+1 entries"
        );
        let mut out = vec![0.0; policy.len()];
        for (action, &p) in policy.iter().enumerate() {
            out[self.apply_action(action, size)] = p;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetries_are_distinct_bijections_with_inverses() {
        for size in [4, 6, 8] {
            let mut images = Vec::new();
            for symmetry in Symmetry::ALL {
                let image: Vec<usize> = (0..size * size)
                    .map(|i| symmetry.apply_index(i, size))
                    .collect();
                let mut sorted = image.clone();
                sorted.sort_unstable();
                assert_eq!(
                    sorted,
                    (0..size * size).collect::<Vec<_>>(),
                    "{symmetry:?} on {size}x{size}"
                );
                for index in 0..size * size {
                    assert_eq!(
                        symmetry
                            .inverse()
                            .apply_index(symmetry.apply_index(index, size), size),
                        index
                    );
                }
                images.push(image);
            }
            images.sort();
            images.dedup();
            assert_eq!(images.len(), 8, "eight different maps on {size}x{size}");
        }
    }

    #[test]
    fn rotations_move_the_corners_clockwise() {
        // a1 (top-left) goes to h1 (top-right) under a clockwise quarter turn.
        assert_eq!(Symmetry::Rotate90.apply_index(0, 8), 7);
        assert_eq!(Symmetry::Rotate90.apply_index(7, 8), 63);
        assert_eq!(Symmetry::Rotate270.apply_index(0, 8), 56);
        assert_eq!(Symmetry::Transpose.apply_index(1, 8), 8);
        assert_eq!(Symmetry::AntiTranspose.apply_index(0, 8), 63);
        assert_eq!(
            Symmetry::Rotate90.apply_bitboard(0b11, 4),
            (1 << 3) | (1 << 7)
        );
        let policy: Vec<f32> = (0..17).map(|i| i as f32).collect();
        let moved = Symmetry::FlipHorizontal.apply_policy(&policy, 4);
        assert_eq!(moved[3], 0.0, "a1's probability moves to d1");
        assert_eq!(moved[16], 16.0, "the pass stays last");
    }
}
