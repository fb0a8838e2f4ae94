//! [`ActivationSource`]: anything that yields batches of activation rows (a
//! store on disk, rows in memory, a synthetic generator, a live model).

use crate::StoreError;
use std::convert::Infallible;

/// A stream of activation rows, each `d_in` floats, handed out in batches.
pub trait ActivationSource {
    /// What can go wrong while producing rows (I/O, a corrupt shard, a model error).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Width of every row.
    fn d_in(&self) -> usize;

    /// Clears `out`, then appends up to `rows` rows (row-major, `rows * d_in`
    /// floats) and returns how many were written. Returns 0 only when the
    /// source is exhausted; a source that cycles over epochs never does.
    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, Self::Error>;
}

/// Rows held in memory, handed out in order, once.
#[derive(Clone, Debug)]
pub struct InMemorySource {
    data: Vec<f32>,
    d_in: usize,
    cursor: usize,
}

impl InMemorySource {
    /// Rows from row-major `data`. `data.len()` must be a multiple of `d_in`
    /// (`d_in > 0`); trailing values that do not fill a row are an error.
    pub fn new(data: Vec<f32>, d_in: usize) -> Result<Self, StoreError> {
        if d_in == 0 || !data.len().is_multiple_of(d_in) {
            return Err(StoreError::RaggedRows {
                values: data.len(),
                d_in,
            });
        }
        Ok(Self {
            data,
            d_in,
            cursor: 0,
        })
    }

    /// Number of rows not yet handed out.
    pub fn remaining_rows(&self) -> usize {
        (self.data.len() - self.cursor) / self.d_in
    }
}

impl ActivationSource for InMemorySource {
    type Error = Infallible;

    fn d_in(&self) -> usize {
        self.d_in
    }

    fn next_batch(&mut self, rows: usize, out: &mut Vec<f32>) -> Result<usize, Infallible> {
        out.clear();
        let take = rows.min(self.remaining_rows());
        let end = self.cursor + take * self.d_in;
        out.extend_from_slice(&self.data[self.cursor..end]);
        self.cursor = end;
        Ok(take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_source_hands_out_rows_once() {
        let mut src = InMemorySource::new((0..10).map(|v| v as f32).collect(), 2).unwrap();
        let mut out = Vec::new();
        assert_eq!(src.next_batch(3, &mut out).unwrap(), 3);
        assert_eq!(out, vec![0., 1., 2., 3., 4., 5.]);
        assert_eq!(src.next_batch(3, &mut out).unwrap(), 2);
        assert_eq!(out, vec![6., 7., 8., 9.]);
        assert_eq!(src.next_batch(3, &mut out).unwrap(), 0);
        assert!(out.is_empty());
        assert!(InMemorySource::new(vec![0.0; 5], 2).is_err());
    }
}
