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

/// Rows held in memory, handed out in order: once ([`InMemorySource::new`])
/// or cycled over forever ([`InMemorySource::cycling`]).
#[derive(Clone, Debug)]
pub struct InMemorySource {
    data: Vec<f32>,
    d_in: usize,
    /// Rows handed out so far (over every cycle).
    handed_out: u64,
    cycle: bool,
}

impl InMemorySource {
    /// Rows from row-major `data`, handed out once. `data.len()` must be a
    /// multiple of `d_in` (`d_in > 0`); trailing values that do not fill a
    /// row are an error.
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
            handed_out: 0,
            cycle: false,
        })
    }

    /// Rows from row-major `data`, cycled over forever (epochs without a
    /// shuffle): for tests and small in-memory training runs. At least one
    /// row is needed.
    pub fn cycling(data: Vec<f32>, d_in: usize) -> Result<Self, StoreError> {
        if data.is_empty() {
            return Err(StoreError::RaggedRows { values: 0, d_in });
        }
        Ok(Self {
            cycle: true,
            ..Self::new(data, d_in)?
        })
    }

    /// The same source continuing after `rows` rows were handed out (a
    /// saved [`InMemorySource::position`]).
    pub fn resumed_at(mut self, rows: u64) -> Self {
        self.handed_out = rows;
        self
    }

    /// Rows handed out so far, over every cycle: where a resumed run
    /// continues ([`InMemorySource::resumed_at`]).
    pub fn position(&self) -> u64 {
        self.handed_out
    }

    fn rows(&self) -> u64 {
        (self.data.len() / self.d_in) as u64
    }

    /// Number of rows not yet handed out (`usize::MAX` when cycling).
    pub fn remaining_rows(&self) -> usize {
        if self.cycle {
            usize::MAX
        } else {
            self.rows().saturating_sub(self.handed_out) as usize
        }
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
        out.reserve(take * self.d_in);
        for _ in 0..take {
            let row = (self.handed_out % self.rows()) as usize;
            out.extend_from_slice(&self.data[row * self.d_in..(row + 1) * self.d_in]);
            self.handed_out += 1;
        }
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

    #[test]
    fn cycling_source_wraps_and_resumes() {
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let mut src = InMemorySource::cycling(data.clone(), 2).unwrap();
        let mut out = Vec::new();
        assert_eq!(src.next_batch(4, &mut out).unwrap(), 4);
        assert_eq!(out, vec![0., 1., 2., 3., 4., 5., 0., 1.]);
        assert_eq!(src.position(), 4);
        let mut resumed = InMemorySource::cycling(data, 2).unwrap().resumed_at(4);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        src.next_batch(3, &mut a).unwrap();
        resumed.next_batch(3, &mut b).unwrap();
        assert_eq!(a, vec![2., 3., 4., 5., 0., 1.]);
        assert_eq!(a, b);
        assert!(InMemorySource::cycling(Vec::new(), 2).is_err());
    }
}
