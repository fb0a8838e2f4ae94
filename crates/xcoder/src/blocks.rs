//! Blocks: the named pieces of a dictionary's input and output (one hook
//! site of one model each), side by side in every row.
//!
//! A transcoder reads one block and writes another; an acausal crosscoder
//! reads and writes the same `n` blocks (the layers of one model, or one site
//! of several models). Rows travel as the concatenation of their blocks in
//! order, so `[x_1 | x_2 | ... | x_n]` is one row of width `sum_i d_i`, and a
//! block-wise matrix is the row-major concatenation of its blocks.

use crate::error::XcoderError;

/// One block: a hook site (of one model) and its width.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Block {
    /// What the block holds, e.g. `blocks.6.hook_mlp_out` or
    /// `base:blocks.3.hook_resid_post` (free text, kept in saved files).
    pub name: String,
    /// Width of the block.
    pub width: usize,
}

impl Block {
    /// A block named `name` of width `width`.
    pub fn new(name: impl Into<String>, width: usize) -> Self {
        Self {
            name: name.into(),
            width,
        }
    }
}

/// Total width of `blocks`.
pub fn total_width(blocks: &[Block]) -> usize {
    blocks.iter().map(|b| b.width).sum()
}

/// Widths of `blocks`.
pub fn widths(blocks: &[Block]) -> Vec<usize> {
    blocks.iter().map(|b| b.width).collect()
}

/// Checks that there is at least one block and none is empty.
pub fn validate(blocks: &[Block], what: &str) -> Result<(), XcoderError> {
    if blocks.is_empty() {
        return Err(XcoderError::config(what, "needs at least one block"));
    }
    if let Some(b) = blocks.iter().find(|b| b.width == 0) {
        return Err(XcoderError::config(
            what,
            format!(
                "block {:?} has width 0; every block needs width >= 1",
                b.name
            ),
        ));
    }
    Ok(())
}

// The tensor helpers over blocks live beside the step that uses them, the
// host one beside the sweep that scales row blocks.
pub use kibitzer_sae::arch::{block_row_norms, column_block, norm_sum};
pub use kibitzer_sae::train::host_block;

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use kibitzer_sae::ops::{from_host, to_host};

    #[test]
    fn block_norms_and_columns_follow_the_widths() {
        let dev = Device::flex();
        // Two rows, blocks of widths 1 and 2.
        let w = from_host(vec![3.0, 0.0, 4.0, -1.0, 2.0, 2.0], 2, 3, &dev);
        let norms = block_row_norms(&w, &[1, 2]);
        assert_eq!(to_host(norms[0].clone()), vec![3.0, 1.0]);
        assert_eq!(to_host(norms[1].clone()), vec![4.0, (8.0f32).sqrt()]);
        assert_eq!(to_host(norm_sum(&norms)), vec![7.0, 1.0 + (8.0f32).sqrt()]);
        assert_eq!(
            to_host(column_block(w, &[1, 2], 1)),
            vec![0.0, 4.0, 2.0, 2.0]
        );
        let host = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(host_block(&host, &[1, 2], 1), vec![2.0, 3.0, 5.0, 6.0]);
        assert_eq!(host_block(&host, &[1, 2], 0), vec![1.0, 4.0]);
    }

    #[test]
    fn validation_names_the_empty_block() {
        let err = validate(
            &[Block::new("a", 3), Block::new("b", 0)],
            "crosscoder blocks",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"b\"") && err.contains("crosscoder blocks"),
            "{err}"
        );
        assert!(validate(&[], "x").is_err());
        assert!(validate(&[Block::new("a", 1)], "x").is_ok());
    }
}
