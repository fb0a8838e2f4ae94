//! A compact positions x properties bit matrix and the writer families use
//! to fill one row of it.

/// Bits per storage word.
pub(crate) const WORD: usize = 64;

/// A row-major bit matrix: one row per labelled position, one column per
/// board-state property, 64 properties per `u64` word. Bits past the last
/// column of a row are always zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitMatrix {
    rows: usize,
    cols: usize,
    words_per_row: usize,
    words: Vec<u64>,
}

impl BitMatrix {
    /// An all-false matrix.
    pub fn zeros(rows: usize, cols: usize) -> BitMatrix {
        let words_per_row = cols.div_ceil(WORD);
        BitMatrix {
            rows,
            cols,
            words_per_row,
            words: vec![0; rows * words_per_row],
        }
    }

    /// Number of rows (labelled positions).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (properties).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Storage words per row.
    pub fn words_per_row(&self) -> usize {
        self.words_per_row
    }

    /// The bit at `row`, `col`. Panics when out of range (a programming error).
    pub fn get(&self, row: usize, col: usize) -> bool {
        assert!(
            row < self.rows && col < self.cols,
            "bit ({row}, {col}) outside {}x{}",
            self.rows,
            self.cols
        );
        self.words[row * self.words_per_row + col / WORD] >> (col % WORD) & 1 == 1
    }

    /// Sets the bit at `row`, `col` to `value`. Panics when out of range.
    pub fn set(&mut self, row: usize, col: usize, value: bool) {
        assert!(
            row < self.rows && col < self.cols,
            "bit ({row}, {col}) outside {}x{}",
            self.rows,
            self.cols
        );
        let word = &mut self.words[row * self.words_per_row + col / WORD];
        let mask = 1u64 << (col % WORD);
        if value {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }

    /// The words of one row.
    pub fn row(&self, row: usize) -> &[u64] {
        &self.words[row * self.words_per_row..(row + 1) * self.words_per_row]
    }

    /// All words, row after row.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// The columns set in `row`, ascending.
    pub fn ones_in_row(&self, row: usize) -> impl Iterator<Item = usize> + '_ {
        iter_ones(self.row(row))
    }

    /// How many rows have each column set.
    pub fn column_counts(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.cols];
        for row in 0..self.rows {
            for col in self.ones_in_row(row) {
                counts[col] += 1;
            }
        }
        counts
    }

    /// A matrix of the given rows, in the given order.
    pub fn select_rows(&self, rows: &[usize]) -> BitMatrix {
        let mut out = BitMatrix::zeros(rows.len(), self.cols);
        for (to, &from) in rows.iter().enumerate() {
            out.words[to * self.words_per_row..(to + 1) * self.words_per_row]
                .copy_from_slice(self.row(from));
        }
        out
    }

    /// For every row, the columns set in it: a compressed sparse row list
    /// (`offsets.len() == rows + 1`), the form the metrics iterate.
    pub(crate) fn true_lists(&self) -> (Vec<usize>, Vec<u32>) {
        let mut offsets = Vec::with_capacity(self.rows + 1);
        let total: usize = self.words.iter().map(|w| w.count_ones() as usize).sum();
        let mut cols = Vec::with_capacity(total);
        offsets.push(0);
        for row in 0..self.rows {
            cols.extend(self.ones_in_row(row).map(|c| c as u32));
            offsets.push(cols.len());
        }
        (offsets, cols)
    }
}

/// The set bits of a word slice, ascending.
pub(crate) fn iter_ones(words: &[u64]) -> impl Iterator<Item = usize> + '_ {
    words.iter().enumerate().flat_map(|(w, &word)| {
        let mut rest = word;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let bit = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            Some(w * WORD + bit)
        })
    })
}

/// Where a property family writes its bits: a window of `len` bits of one
/// cleared matrix row, starting at the family's offset. Bits can only be set
/// (the row starts all false).
pub struct BitSink<'a> {
    row: &'a mut [u64],
    offset: usize,
    len: usize,
}

impl<'a> BitSink<'a> {
    pub(crate) fn new(row: &'a mut [u64], offset: usize, len: usize) -> BitSink<'a> {
        debug_assert!(offset + len <= row.len() * WORD);
        BitSink { row, offset, len }
    }

    /// Number of bits of the window (the family's property count).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets property `index` of the family. Panics past the window (a bug in
    /// the family).
    pub fn set(&mut self, index: usize) {
        assert!(
            index < self.len,
            "property {index} outside a family of {}",
            self.len
        );
        let bit = self.offset + index;
        self.row[bit / WORD] |= 1 << (bit % WORD);
    }

    /// Sets property `index` when `value` holds.
    pub fn put(&mut self, index: usize, value: bool) {
        if value {
            self.set(index);
        }
    }

    /// Sets properties `start..start + n` from the low `n` bits of `bits`
    /// (bit `i` of `bits` is property `start + i`): a whole bitboard at once.
    pub fn put_bits(&mut self, start: usize, bits: u64, n: usize) {
        assert!(
            n <= WORD && start + n <= self.len,
            "bits {start}..{} outside a family of {}",
            start + n,
            self.len
        );
        if n == 0 {
            return;
        }
        let bits = if n == WORD {
            bits
        } else {
            bits & ((1u64 << n) - 1)
        };
        let at = self.offset + start;
        let (word, shift) = (at / WORD, at % WORD);
        self.row[word] |= bits << shift;
        if shift != 0 && shift + n > WORD {
            self.row[word + 1] |= bits >> (WORD - shift);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_get_and_counts() {
        let mut m = BitMatrix::zeros(3, 130);
        m.set(0, 0, true);
        m.set(0, 129, true);
        m.set(2, 64, true);
        m.set(2, 64, false);
        m.set(2, 65, true);
        assert!(m.get(0, 0) && m.get(0, 129) && !m.get(2, 64) && m.get(2, 65));
        assert_eq!(m.words_per_row(), 3);
        let counts = m.column_counts();
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert_eq!(counts[129], 1);
        let (offsets, cols) = m.true_lists();
        assert_eq!(offsets, vec![0, 2, 2, 3]);
        assert_eq!(cols, vec![0, 129, 65]);
        let picked = m.select_rows(&[2, 0]);
        assert!(picked.get(0, 65) && picked.get(1, 129) && !picked.get(1, 65));
    }

    proptest! {
        /// Writing a bitboard at any offset sets exactly the bits it names,
        /// including across a word boundary.
        #[test]
        fn put_bits_matches_bit_by_bit(offset in 0usize..130, start in 0usize..20, n in 0usize..=64, bits: u64) {
            let len = start + n + 3;
            let cols = offset + len;
            let mut fast = BitMatrix::zeros(1, cols);
            let mut slow = BitMatrix::zeros(1, cols);
            {
                let wpr = fast.words_per_row();
                let mut sink = BitSink::new(&mut fast.words_mut()[..wpr], offset, len);
                sink.put_bits(start, bits, n);
            }
            for i in 0..n {
                if bits >> i & 1 == 1 {
                    slow.set(0, offset + start + i, true);
                }
            }
            prop_assert_eq!(fast, slow);
        }
    }
}
