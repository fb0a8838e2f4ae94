//! [`Layout`]: where each grid and marker sits in a quiz's token sequence.

use crate::{MAX_GRID_SIZE, MIN_GRID_SIZE, QuizError};

/// Sequence layout for a grid size `s`:
/// `BOS, A, s*s cells, f(A), s*s, B, s*s, f(B), s*s`.
///
/// For `s = 10` (reference 004) the sequence is 405 tokens long, the prompt
/// (what the model reads before writing) is the first 305 and the answer is
/// at positions `305..405`.
///
/// ```
/// use kibitzer_quizzes::Layout;
/// let l = Layout::new(10)?;
/// assert_eq!((l.cells(), l.seq_len(), l.prompt_len()), (100, 405, 305));
/// assert_eq!(l.grid_start(0), 2);
/// assert_eq!(l.answer_range(), 305..405);
/// # Ok::<(), kibitzer_quizzes::QuizError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// Side of the square grids.
    pub grid_size: usize,
}

impl Layout {
    /// The layout of `grid_size` x `grid_size` quizzes; sizes outside
    /// [`MIN_GRID_SIZE`]..=[`MAX_GRID_SIZE`] are refused.
    pub fn new(grid_size: usize) -> Result<Layout, QuizError> {
        if !(MIN_GRID_SIZE..=MAX_GRID_SIZE).contains(&grid_size) {
            return Err(QuizError::GridSize {
                size: grid_size,
                min: MIN_GRID_SIZE,
                max: MAX_GRID_SIZE,
            });
        }
        Ok(Layout { grid_size })
    }

    /// Cells in one grid, `s*s`.
    pub fn cells(&self) -> usize {
        self.grid_size * self.grid_size
    }

    /// Length of the whole sequence with BOS, `1 + 4*(1 + s*s)` (405 for `s = 10`).
    pub fn seq_len(&self) -> usize {
        1 + 4 * (1 + self.cells())
    }

    /// Length of the prompt: BOS, the three given grids with their markers and
    /// the f(B) marker, `seq_len - s*s` (305 for `s = 10`).
    pub fn prompt_len(&self) -> usize {
        self.seq_len() - self.cells()
    }

    /// Token index of grid `g`'s marker (`g` in `0..4`: A, f(A), B, f(B)).
    pub fn marker_position(&self, g: usize) -> usize {
        1 + g * (1 + self.cells())
    }

    /// Token index of the first cell of grid `g` (`g` in `0..4`).
    pub fn grid_start(&self, g: usize) -> usize {
        self.marker_position(g) + 1
    }

    /// Token positions of grid `g`'s cells.
    pub fn grid_range(&self, g: usize) -> std::ops::Range<usize> {
        self.grid_start(g)..self.grid_start(g) + self.cells()
    }

    /// Token positions of the answer, the f(B) cells: `grid_start(3)..seq_len`.
    pub fn answer_range(&self) -> std::ops::Range<usize> {
        self.grid_start(3)..self.seq_len()
    }
}
