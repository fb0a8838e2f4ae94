//! [`Grid`] (a square of colours) and [`Rect`] (a rectangle on it).

use crate::{N_COLOURS, QuizError};

/// A square grid of colours `0..N_COLOURS`, row-major; 0 is empty (white).
///
/// The colours are an invariant: every way of building a grid checks them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "GridRepr")]
pub struct Grid {
    size: usize,
    cells: Vec<u8>,
}

/// The serialised form of a grid, checked on the way in.
#[derive(serde::Deserialize)]
struct GridRepr {
    size: usize,
    cells: Vec<u8>,
}

impl TryFrom<GridRepr> for Grid {
    type Error = QuizError;
    fn try_from(r: GridRepr) -> Result<Grid, QuizError> {
        Grid::from_cells(r.size, r.cells)
    }
}

impl Grid {
    /// An empty (all 0) `size` x `size` grid.
    pub fn new(size: usize) -> Grid {
        Grid {
            size,
            cells: vec![0; size * size],
        }
    }

    /// A grid from its cells, row-major; refuses a length other than
    /// `size*size` and colours `>= N_COLOURS`.
    pub fn from_cells(size: usize, cells: Vec<u8>) -> Result<Grid, QuizError> {
        if cells.len() != size * size {
            return Err(QuizError::Grid(format!(
                "{} cells for a {size}x{size} grid: expected {}",
                cells.len(),
                size * size
            )));
        }
        if let Some(i) = cells.iter().position(|&c| u32::from(c) >= N_COLOURS) {
            return Err(QuizError::Grid(format!(
                "cell {i} (row {}, column {}) has colour {}: expected 0..={}",
                i / size,
                i % size,
                cells[i],
                N_COLOURS - 1
            )));
        }
        Ok(Grid { size, cells })
    }

    /// A grid from tokens (for instance the `s*s` tokens a model wrote for
    /// f(B)); refuses a length other than `size*size` and tokens that are not
    /// colours (markers, out of the vocabulary).
    pub fn from_tokens(size: usize, tokens: &[u32]) -> Result<Grid, QuizError> {
        if tokens.len() != size * size {
            return Err(QuizError::Grid(format!(
                "{} tokens for a {size}x{size} grid: expected {}",
                tokens.len(),
                size * size
            )));
        }
        let mut cells = Vec::with_capacity(tokens.len());
        for (i, &t) in tokens.iter().enumerate() {
            if t >= N_COLOURS {
                return Err(QuizError::Grid(format!(
                    "token {i} (row {}, column {}) is {t}: expected a colour 0..={}",
                    i / size,
                    i % size,
                    N_COLOURS - 1
                )));
            }
            cells.push(t as u8);
        }
        Ok(Grid { size, cells })
    }

    /// Side of the grid.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The cells, row-major.
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }

    /// The colour at row `r`, column `c`.
    ///
    /// # Panics
    /// If `r` or `c` is not below [`Grid::size`].
    pub fn get(&self, r: usize, c: usize) -> u8 {
        assert!(
            r < self.size && c < self.size,
            "cell ({r}, {c}) outside a {0}x{0} grid",
            self.size
        );
        self.cells[r * self.size + c]
    }

    /// Sets row `r`, column `c` to colour `v`.
    ///
    /// # Panics
    /// If `r` or `c` is not below [`Grid::size`], or `v >= N_COLOURS`.
    pub fn set(&mut self, r: usize, c: usize, v: u8) {
        assert!(
            r < self.size && c < self.size,
            "cell ({r}, {c}) outside a {0}x{0} grid",
            self.size
        );
        assert!(
            u32::from(v) < N_COLOURS,
            "colour {v} is not below {N_COLOURS}"
        );
        self.cells[r * self.size + c] = v;
    }

    /// The cells as tokens.
    pub fn tokens(&self) -> impl Iterator<Item = u32> + '_ {
        self.cells.iter().map(|&c| u32::from(c))
    }

    /// Positions (row-major indices) where `self` and `other` differ; every
    /// cell when the sizes differ.
    pub fn diff(&self, other: &Grid) -> Vec<usize> {
        if self.size != other.size {
            return (0..self.cells.len().max(other.cells.len())).collect();
        }
        (0..self.cells.len())
            .filter(|&i| self.cells[i] != other.cells[i])
            .collect()
    }

    /// Which colours `1..N_COLOURS` occur, as a bit set (bit `k` for colour `k`).
    pub fn colour_set(&self) -> u16 {
        self.cells.iter().fold(0u16, |m, &c| m | (1 << c)) & !1
    }

    /// The colours `1..N_COLOURS` that occur, ascending.
    pub fn colours(&self) -> Vec<u8> {
        colours_of(self.colour_set())
    }

    /// The smallest rectangle holding every cell of colour `colour`, if any.
    pub fn bbox(&self, colour: u8) -> Option<Rect> {
        let (mut top, mut left, mut bottom, mut right) = (usize::MAX, usize::MAX, 0, 0);
        for (i, &v) in self.cells.iter().enumerate() {
            if v == colour {
                let (r, c) = (i / self.size, i % self.size);
                top = top.min(r);
                left = left.min(c);
                bottom = bottom.max(r + 1);
                right = right.max(c + 1);
            }
        }
        (top != usize::MAX).then_some(Rect {
            top,
            left,
            bottom,
            right,
        })
    }

    /// A one-line-per-row text picture: `.` for empty, `0`-`9` and `a` for colours 1..=10.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(self.cells.len() + self.size);
        for r in 0..self.size {
            for c in 0..self.size {
                let v = self.cells[r * self.size + c];
                s.push(match v {
                    0 => '.',
                    10 => 'a',
                    v => char::from(b'0' + v),
                });
            }
            s.push('\n');
        }
        s
    }

    // Crate-internal writers: the tasks only ever write valid colours.

    pub(crate) fn put(&mut self, r: usize, c: usize, v: u8) {
        debug_assert!(u32::from(v) < N_COLOURS);
        self.cells[r * self.size + c] = v;
    }

    pub(crate) fn at(&self, r: usize, c: usize) -> u8 {
        self.cells[r * self.size + c]
    }

    /// Paints every cell of `rect` (clipped to the grid) with `v`.
    pub(crate) fn fill(&mut self, rect: Rect, v: u8) {
        for r in rect.top..rect.bottom.min(self.size) {
            for c in rect.left..rect.right.min(self.size) {
                self.put(r, c, v);
            }
        }
    }

    /// Paints the one-cell outer ring of `rect` (clipped to the grid) with `v`.
    pub(crate) fn ring(&mut self, rect: Rect, v: u8) {
        for r in rect.top..rect.bottom.min(self.size) {
            for c in rect.left..rect.right.min(self.size) {
                if rect.on_border(r, c) {
                    self.put(r, c, v);
                }
            }
        }
    }

    /// Sets every cell of colour `from` to `to`.
    pub(crate) fn recolour(&mut self, from: u8, to: u8) {
        for v in &mut self.cells {
            if *v == from {
                *v = to;
            }
        }
    }
}

/// The colours of a bit set from [`Grid::colour_set`], ascending.
pub(crate) fn colours_of(set: u16) -> Vec<u8> {
    (1..N_COLOURS as u8)
        .filter(|&k| set & (1 << k) != 0)
        .collect()
}

/// A rectangle of cells: rows `top..bottom`, columns `left..right` (ends exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Rect {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// One past the last row.
    pub bottom: usize,
    /// One past the last column.
    pub right: usize,
}

impl Rect {
    /// The rectangle of `height` x `width` cells whose top-left cell is (`top`, `left`).
    pub fn new(top: usize, left: usize, height: usize, width: usize) -> Rect {
        Rect {
            top,
            left,
            bottom: top + height,
            right: left + width,
        }
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.bottom.saturating_sub(self.top)
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.right.saturating_sub(self.left)
    }

    /// Cells.
    pub fn area(&self) -> usize {
        self.height() * self.width()
    }

    /// Whether the rectangle lies inside a `size` x `size` grid.
    pub fn fits(&self, size: usize) -> bool {
        self.bottom <= size && self.right <= size
    }

    /// Whether the two share a cell.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.top < other.bottom
            && other.top < self.bottom
            && self.left < other.right
            && other.left < self.right
    }

    /// Whether the two touch along a side: they share no cell, and some cell
    /// of one is the up, down, left or right neighbour of a cell of the other
    /// (touching only at a corner does not count).
    pub fn touches(&self, other: &Rect) -> bool {
        if self.overlaps(other) {
            return false;
        }
        let rows_overlap = self.top < other.bottom && other.top < self.bottom;
        let cols_overlap = self.left < other.right && other.left < self.right;
        ((self.bottom == other.top || other.bottom == self.top) && cols_overlap)
            || ((self.right == other.left || other.right == self.left) && rows_overlap)
    }

    /// Whether (`r`, `c`) is a cell of the rectangle.
    pub fn contains(&self, r: usize, c: usize) -> bool {
        (self.top..self.bottom).contains(&r) && (self.left..self.right).contains(&c)
    }

    /// Whether (`r`, `c`) is a cell of the rectangle's one-cell outer ring.
    pub fn on_border(&self, r: usize, c: usize) -> bool {
        self.contains(r, c)
            && (r == self.top || r + 1 == self.bottom || c == self.left || c + 1 == self.right)
    }

    /// The rectangle one cell larger on every side, if it stays inside a `size` grid.
    pub fn grown(&self, size: usize) -> Option<Rect> {
        let g = Rect {
            top: self.top.checked_sub(1)?,
            left: self.left.checked_sub(1)?,
            bottom: self.bottom + 1,
            right: self.right + 1,
        };
        g.fits(size).then_some(g)
    }

    /// The rectangle one cell smaller on every side, if anything is left.
    pub fn shrunk(&self) -> Option<Rect> {
        (self.height() > 2 && self.width() > 2).then(|| Rect {
            top: self.top + 1,
            left: self.left + 1,
            bottom: self.bottom - 1,
            right: self.right - 1,
        })
    }

    /// The rectangle moved by (`dr`, `dc`), if it stays inside a `size` grid.
    pub fn shifted(&self, dr: i8, dc: i8, size: usize) -> Option<Rect> {
        let top = self.top.checked_add_signed(isize::from(dr))?;
        let left = self.left.checked_add_signed(isize::from(dc))?;
        let s = Rect {
            top,
            left,
            bottom: top + self.height(),
            right: left + self.width(),
        };
        s.fits(size).then_some(s)
    }
}
