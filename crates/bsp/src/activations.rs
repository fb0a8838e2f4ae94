//! Feature activations as the metrics read them: a dense host matrix or a
//! sparse column store (rows = labelled tokens, columns = features), and the
//! per-feature scale (maximum activation) the thresholds are fractions of.

use std::ops::Range;

use ndarray::ArrayView2;

use crate::error::{BspError, Result};

/// Sparse activations in compressed sparse column form: for every feature
/// the rows where it is nonzero, ascending, and the values. The natural form
/// of SAE features (a TopK SAE with k = 32 of 4096 features stores 1% of the
/// dense matrix).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseActivations {
    rows: usize,
    cols: usize,
    col_ptr: Vec<usize>,
    row_index: Vec<u32>,
    values: Vec<f32>,
}

impl SparseActivations {
    /// The nonzero entries of a dense matrix; fails on NaN or infinity.
    pub fn from_dense(view: ArrayView2<'_, f32>, what: &str) -> Result<SparseActivations> {
        let (rows, cols) = view.dim();
        check_rows_fit(rows, what)?;
        let mut counts = vec![0usize; cols];
        for (r, row) in view.outer_iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    return Err(BspError::NonFinite {
                        what: what.into(),
                        row: r,
                        column: c,
                        value: v,
                    });
                }
                if v != 0.0 {
                    counts[c] += 1;
                }
            }
        }
        let col_ptr = prefix_sums(&counts);
        let nnz = col_ptr[cols];
        let mut next = col_ptr.clone();
        let mut row_index = vec![0u32; nnz];
        let mut values = vec![0f32; nnz];
        for (r, row) in view.outer_iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    row_index[next[c]] = r as u32;
                    values[next[c]] = v;
                    next[c] += 1;
                }
            }
        }
        Ok(SparseActivations {
            rows,
            cols,
            col_ptr,
            row_index,
            values,
        })
    }

    /// Activations from compressed sparse rows (`row_ptr.len() == rows + 1`,
    /// column indices strictly ascending within a row), as a TopK encoder
    /// writes them. Zeros are dropped; NaN, infinity and bad indices fail.
    pub fn from_csr(
        rows: usize,
        cols: usize,
        row_ptr: &[usize],
        col_index: &[u32],
        values: &[f32],
    ) -> Result<SparseActivations> {
        check_rows_fit(rows, "sparse activations")?;
        if row_ptr.len() != rows + 1 {
            return Err(BspError::Sparse(format!(
                "row_ptr has {} entries, expected rows + 1 = {}",
                row_ptr.len(),
                rows + 1
            )));
        }
        if col_index.len() != values.len() || row_ptr[rows] != values.len() || row_ptr[0] != 0 {
            return Err(BspError::Sparse(format!(
                "row_ptr ends at {} and starts at {}, with {} column indices and {} values; expected 0, and all three equal",
                row_ptr[rows],
                row_ptr[0],
                col_index.len(),
                values.len()
            )));
        }
        let mut counts = vec![0usize; cols];
        for r in 0..rows {
            let (a, b) = (row_ptr[r], row_ptr[r + 1]);
            if a > b {
                return Err(BspError::Sparse(format!(
                    "row_ptr decreases at row {r} ({a} > {b})"
                )));
            }
            for k in a..b {
                let c = col_index[k] as usize;
                if c >= cols {
                    return Err(BspError::Sparse(format!(
                        "row {r}: column {c} out of range (matrix has {cols} columns)"
                    )));
                }
                if k > a && col_index[k - 1] >= col_index[k] {
                    return Err(BspError::Sparse(format!(
                        "row {r}: column indices not strictly ascending ({} then {})",
                        col_index[k - 1],
                        col_index[k]
                    )));
                }
                if !values[k].is_finite() {
                    return Err(BspError::NonFinite {
                        what: "sparse activations".into(),
                        row: r,
                        column: c,
                        value: values[k],
                    });
                }
                if values[k] != 0.0 {
                    counts[c] += 1;
                }
            }
        }
        let col_ptr = prefix_sums(&counts);
        let mut next = col_ptr.clone();
        let mut row_index = vec![0u32; col_ptr[cols]];
        let mut out_values = vec![0f32; col_ptr[cols]];
        for r in 0..rows {
            for k in row_ptr[r]..row_ptr[r + 1] {
                if values[k] != 0.0 {
                    let c = col_index[k] as usize;
                    row_index[next[c]] = r as u32;
                    out_values[next[c]] = values[k];
                    next[c] += 1;
                }
            }
        }
        Ok(SparseActivations {
            rows,
            cols,
            col_ptr,
            row_index,
            values: out_values,
        })
    }

    /// Number of rows (labelled tokens).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of stored (nonzero) entries.
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The rows and values of feature `col`, rows ascending.
    pub fn column(&self, col: usize) -> (&[u32], &[f32]) {
        let range = self.col_ptr[col]..self.col_ptr[col + 1];
        (&self.row_index[range.clone()], &self.values[range])
    }

    /// The activations of the given rows, in that order (a train / test split).
    pub fn select_rows(&self, rows: &[usize]) -> Result<SparseActivations> {
        let mut new_row = vec![u32::MAX; self.rows];
        for (to, &from) in rows.iter().enumerate() {
            if from >= self.rows {
                return Err(BspError::Sparse(format!(
                    "row {from} selected from a matrix of {} rows",
                    self.rows
                )));
            }
            if new_row[from] != u32::MAX {
                return Err(BspError::Sparse(format!("row {from} selected twice")));
            }
            new_row[from] = to as u32;
        }
        let mut col_ptr = Vec::with_capacity(self.cols + 1);
        let mut row_index = Vec::new();
        let mut values = Vec::new();
        col_ptr.push(0);
        let mut entries: Vec<(u32, f32)> = Vec::new();
        for c in 0..self.cols {
            let (r, v) = self.column(c);
            entries.clear();
            entries.extend(
                r.iter()
                    .zip(v)
                    .filter(|(r, _)| new_row[**r as usize] != u32::MAX)
                    .map(|(r, v)| (new_row[*r as usize], *v)),
            );
            entries.sort_unstable_by_key(|e| e.0);
            row_index.extend(entries.iter().map(|e| e.0));
            values.extend(entries.iter().map(|e| e.1));
            col_ptr.push(row_index.len());
        }
        Ok(SparseActivations {
            rows: rows.len(),
            cols: self.cols,
            col_ptr,
            row_index,
            values,
        })
    }
}

fn check_rows_fit(rows: usize, what: &str) -> Result<()> {
    if rows > u32::MAX as usize {
        return Err(BspError::Sparse(format!(
            "{what}: {rows} rows, at most {} supported",
            u32::MAX
        )));
    }
    Ok(())
}

fn prefix_sums(counts: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(counts.len() + 1);
    let mut total = 0;
    out.push(0);
    for &c in counts {
        total += c;
        out.push(total);
    }
    out
}

/// Feature activations, dense or sparse. Rows are labelled tokens (aligned
/// with the rows of [`crate::BspLabels`]), columns are features (dictionary
/// latents, or raw neurons for the baseline).
#[derive(Clone, Copy, Debug)]
pub enum Activations<'a> {
    /// A dense host matrix.
    Dense(ArrayView2<'a, f32>),
    /// Sparse columns.
    Sparse(&'a SparseActivations),
}

impl<'a> Activations<'a> {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Activations::Dense(v) => v.nrows(),
            Activations::Sparse(s) => s.rows,
        }
    }

    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        match self {
            Activations::Dense(v) => v.ncols(),
            Activations::Sparse(s) => s.cols,
        }
    }

    /// Fails on a NaN or infinite value (sparse activations were checked
    /// when built).
    pub fn validate(&self, what: &str) -> Result<()> {
        check_rows_fit(self.rows(), what)?;
        if let Activations::Dense(view) = self {
            for (r, row) in view.outer_iter().enumerate() {
                if let Some((c, &v)) = row.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(BspError::NonFinite {
                        what: what.into(),
                        row: r,
                        column: c,
                        value: v,
                    });
                }
            }
        }
        Ok(())
    }

    /// Calls `visit(column, row, value)` for every entry of the given
    /// columns with a value above zero (the only ones any threshold of the
    /// metrics can count as active), in no particular order.
    pub(crate) fn for_each_positive(
        &self,
        cols: Range<usize>,
        mut visit: impl FnMut(usize, u32, f32),
    ) {
        match self {
            Activations::Dense(view) => {
                for (r, row) in view.outer_iter().enumerate() {
                    for c in cols.clone() {
                        let v = row[c];
                        if v > 0.0 {
                            visit(c, r as u32, v);
                        }
                    }
                }
            }
            Activations::Sparse(s) => {
                for c in cols {
                    let (rows, values) = s.column(c);
                    for (&r, &v) in rows.iter().zip(values) {
                        if v > 0.0 {
                            visit(c, r, v);
                        }
                    }
                }
            }
        }
    }

    /// Calls `visit(k, row, value)` for every entry above zero of feature
    /// `features[k]` in the rows `rows`.
    pub(crate) fn for_each_positive_in_rows(
        &self,
        features: &[usize],
        rows: Range<usize>,
        mut visit: impl FnMut(usize, u32, f32),
    ) {
        match self {
            Activations::Dense(view) => {
                for r in rows {
                    let row = view.row(r);
                    for (k, &c) in features.iter().enumerate() {
                        let v = row[c];
                        if v > 0.0 {
                            visit(k, r as u32, v);
                        }
                    }
                }
            }
            Activations::Sparse(s) => {
                for (k, &c) in features.iter().enumerate() {
                    let (col_rows, values) = s.column(c);
                    let start = col_rows.partition_point(|&r| (r as usize) < rows.start);
                    for (&r, &v) in col_rows[start..].iter().zip(&values[start..]) {
                        if r as usize >= rows.end {
                            break;
                        }
                        if v > 0.0 {
                            visit(k, r, v);
                        }
                    }
                }
            }
        }
    }
}

/// The per-feature scale of reference 002: the maximum activation of every
/// feature over the first `tokens` rows, and whether the feature fired
/// (was nonzero) there at all.
///
/// Reference 002 (`get_firing_features`) keeps only features that fired and
/// uses the absolute value of the maximum (raw MLP neurons can have a
/// negative maximum); a threshold `t` then means "activation > t x |max|".
/// The reference takes the maximum over *every* token of its activation
/// buffer, not only the labelled ones; to match it, compute the maximum over
/// all tokens and pass it with [`FeatureScale::from_max`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureScale {
    /// |maximum activation| per feature.
    pub max_abs: Vec<f32>,
    /// Whether the feature was nonzero at least once.
    pub alive: Vec<bool>,
    /// How many rows the maximum was taken over.
    pub tokens: usize,
}

impl FeatureScale {
    /// The scale over the first `max_tokens` rows of `activations` (all rows
    /// when there are fewer).
    pub fn from_activations(
        activations: &Activations<'_>,
        max_tokens: usize,
    ) -> Result<FeatureScale> {
        activations.validate("activations for the feature scale")?;
        let rows = activations.rows().min(max_tokens);
        if rows == 0 {
            return Err(BspError::Config {
                field: "max_activation_tokens",
                detail: format!(
                    "the maximum activation needs at least one row ({} rows given, limit {max_tokens})",
                    activations.rows()
                ),
            });
        }
        let cols = activations.cols();
        let mut max = vec![f32::NEG_INFINITY; cols];
        let mut alive = vec![false; cols];
        match activations {
            Activations::Dense(view) => {
                for row in view.outer_iter().take(rows) {
                    for (c, &v) in row.iter().enumerate() {
                        max[c] = max[c].max(v);
                        alive[c] |= v != 0.0;
                    }
                }
            }
            Activations::Sparse(s) => {
                for c in 0..cols {
                    let (r, v) = s.column(c);
                    let stored = r.partition_point(|&r| (r as usize) < rows);
                    for &v in &v[..stored] {
                        max[c] = max[c].max(v);
                    }
                    alive[c] = stored > 0;
                    // Rows not stored hold zeros.
                    if stored < rows {
                        max[c] = max[c].max(0.0);
                    }
                }
            }
        }
        Ok(FeatureScale {
            max_abs: max.iter().map(|m| m.abs()).collect(),
            alive,
            tokens: rows,
        })
    }

    /// A scale computed elsewhere (e.g. streamed over all tokens of a
    /// dataset while only some tokens are labelled).
    pub fn from_max(max: &[f32], alive: Vec<bool>, tokens: usize) -> Result<FeatureScale> {
        if alive.len() != max.len() {
            return Err(BspError::ColumnCount {
                what: "feature scale alive flags".into(),
                expected: max.len(),
                found: alive.len(),
            });
        }
        if let Some((c, &m)) = max.iter().enumerate().find(|(_, m)| !m.is_finite()) {
            return Err(BspError::NonFinite {
                what: "feature scale maxima".into(),
                row: 0,
                column: c,
                value: m,
            });
        }
        Ok(FeatureScale {
            max_abs: max.iter().map(|m| m.abs()).collect(),
            alive,
            tokens,
        })
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.max_abs.len()
    }

    /// Whether there are no features.
    pub fn is_empty(&self) -> bool {
        self.max_abs.is_empty()
    }

    /// Number of features that fired.
    pub fn alive_count(&self) -> usize {
        self.alive.iter().filter(|&&a| a).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn sparse_from_dense_and_csr_agree() {
        let dense = array![[0.0f32, 2.0, 0.0], [1.5, 0.0, -1.0], [0.0, 3.0, 0.0]];
        let a = SparseActivations::from_dense(dense.view(), "test").expect("finite");
        let b =
            SparseActivations::from_csr(3, 3, &[0, 1, 3, 4], &[1, 0, 2, 1], &[2.0, 1.5, -1.0, 3.0])
                .expect("valid csr");
        assert_eq!(a, b);
        assert_eq!(a.column(1), (&[0u32, 2][..], &[2.0f32, 3.0][..]));
        let picked = a.select_rows(&[2, 0]).expect("rows exist");
        assert_eq!(picked.column(1), (&[0u32, 1][..], &[3.0f32, 2.0][..]));
        assert!(a.select_rows(&[0, 0]).is_err());
        let error =
            SparseActivations::from_csr(1, 2, &[0, 2], &[1, 0], &[1.0, 1.0]).expect_err("unsorted");
        assert!(error.to_string().contains("ascending"), "{error}");
        let nan = array![[f32::NAN]];
        let error = SparseActivations::from_dense(nan.view(), "acts").expect_err("nan");
        assert!(error.to_string().contains("row 0, column 0"), "{error}");
    }

    #[test]
    fn feature_scale_dense_and_sparse() {
        let dense = array![[0.0f32, -2.0, 0.0], [1.5, -0.5, 0.0], [4.0, -3.0, 0.0]];
        let sparse = SparseActivations::from_dense(dense.view(), "t").expect("finite");
        for acts in [
            Activations::Dense(dense.view()),
            Activations::Sparse(&sparse),
        ] {
            let scale = FeatureScale::from_activations(&acts, 2).expect("rows");
            assert_eq!(scale.max_abs, vec![1.5, 0.5, 0.0]);
            assert_eq!(scale.alive, vec![true, true, false]);
            assert_eq!(scale.tokens, 2);
            let all = FeatureScale::from_activations(&acts, 100).expect("rows");
            assert_eq!(all.max_abs, vec![4.0, 0.5, 0.0]);
        }
    }
}
