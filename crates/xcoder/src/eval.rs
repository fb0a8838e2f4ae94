//! Metrics of a transcoder or crosscoder on raw activations, with the
//! fraction of variance unexplained (FVU) computed both ways users ask for
//! when a dictionary has several outputs (reference 003's question).
//!
//! With rows `b = 1..n`, output blocks `i = 1..L` (the crosscoder's layers or
//! models; one block for a transcoder), targets `y_bi`, predictions `ŷ_bi`
//! and block means `ȳ_i = (1/n) sum_b y_bi`:
//!
//! ```text
//! FVU_concat = sum_i sum_b ||y_bi - ŷ_bi||^2  /  sum_i sum_b ||y_bi - ȳ_i||^2
//! FVU_mean   = (1/L) sum_i [ sum_b ||y_bi - ŷ_bi||^2 / sum_b ||y_bi - ȳ_i||^2 ]
//! ```
//!
//! `FVU_concat` treats the concatenated outputs as one vector (the squared
//! norm of the concatenation is the sum of the blocks' squared norms), so a
//! block with more variance weighs more; `FVU_mean` weighs every block the
//! same. Both are rotation invariant within each block, both equal the
//! ordinary FVU when there is one block, and `1 - FVU` is the explained
//! variance. They are computed in one streaming pass with kibitzer-sae's
//! [`MetricsAccumulator`] (which also gives L0, feature frequencies, dead and
//! dense fractions, cosine similarity and the rest of [`EvalMetrics`]).

use crate::error::XcoderError;
use crate::xcoder::Xcoder;
use burn::tensor::Device;
use kibitzer_sae::dictionary::Dictionary;
use kibitzer_sae::metrics::{EvalMetrics, MetricsAccumulator};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_store::ActivationSource;

/// FVU of a multi-output dictionary, both ways.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlockFvu {
    /// Over the concatenated outputs (`FVU_concat`).
    pub concatenated: f64,
    /// Mean of the per-block FVUs (`FVU_mean`).
    pub mean_of_blocks: f64,
    /// FVU of each output block.
    pub per_block: Vec<f64>,
}

impl BlockFvu {
    /// Both conventions from a filled accumulator and the output block widths.
    pub fn from_accumulator(
        acc: &MetricsAccumulator,
        widths: &[usize],
    ) -> Result<Self, XcoderError> {
        let per_block = acc.fvu_per_block(widths)?;
        let concatenated = acc.finish()?.metrics.fvu;
        Ok(Self {
            concatenated,
            mean_of_blocks: per_block.iter().sum::<f64>() / per_block.len().max(1) as f64,
            per_block,
        })
    }
}

/// What [`evaluate`] measures.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct XEvaluation {
    /// kibitzer-sae's metrics of the predictions against the targets (its
    /// `fvu` is `FVU_concat`).
    pub metrics: EvalMetrics,
    /// FVU both ways.
    pub fvu: BlockFvu,
    /// Fraction of rows on which each feature fired.
    pub feature_frequencies: Vec<f64>,
}

/// Runs `xcoder` (for raw activations) over up to `max_rows` training rows
/// of `source` (its row blocks side by side, see [`Xcoder::row_blocks`]) in
/// batches of `batch_size` on `device`.
pub fn evaluate<S: ActivationSource>(
    xcoder: &Xcoder,
    source: &mut S,
    max_rows: usize,
    batch_size: usize,
    device: &Device,
) -> Result<XEvaluation, XcoderError> {
    let width = xcoder.row_width();
    if source.d_in() != width {
        return Err(XcoderError::shape(
            "evaluation rows",
            format!("width {width} (the blocks {:?})", xcoder.row_blocks()),
            format!("width {}", source.d_in()),
        ));
    }
    if batch_size == 0 {
        return Err(XcoderError::config(
            "evaluation batch_size",
            "must be at least 1",
        ));
    }
    let widths = xcoder.output_widths();
    let mut acc = MetricsAccumulator::new(xcoder.d_out(), xcoder.d_sae());
    let xcoder = xcoder.to_device(device);
    let mut host = Vec::new();
    let mut done = 0usize;
    while done < max_rows {
        let rows = source
            .next_batch(batch_size.min(max_rows - done), &mut host)
            .map_err(|e| XcoderError::config("evaluation source", e.to_string()))?;
        if rows == 0 {
            break;
        }
        let (x, y) = xcoder.split(from_host(std::mem::take(&mut host), rows, width, device));
        let out = xcoder.forward(x);
        acc.add_batch(
            &to_host(y),
            &to_host(out.reconstruction),
            &to_host(out.features),
        )?;
        done += rows;
    }
    let evaluation = acc.finish()?;
    Ok(XEvaluation {
        fvu: BlockFvu::from_accumulator(&acc, &widths)?,
        metrics: evaluation.metrics,
        feature_frequencies: evaluation.feature_frequencies,
    })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    #[test]
    fn both_fvus_match_their_formulas_by_hand() {
        // Blocks of width 1 and 2, three rows. Block 0 takes 0, 1, 2 (total
        // variance 2) and is off by 1 in one row; block 1 takes 0, 2, 4 in
        // each of its dimensions (total variance 16) and is off by 1 once.
        let y = [0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0];
        let y_hat = [1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 4.0, 3.0];
        let mut acc = MetricsAccumulator::new(3, 1);
        acc.add_batch(&y, &y_hat, &[1.0, 1.0, 1.0]).unwrap();
        let f = BlockFvu::from_accumulator(&acc, &[1, 2]).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(
            close(f.per_block[0], 1.0 / 2.0) && close(f.per_block[1], 1.0 / 16.0),
            "{f:?}"
        );
        assert!(close(f.concatenated, 2.0 / 18.0), "{f:?}");
        assert!(close(f.mean_of_blocks, (0.5 + 1.0 / 16.0) / 2.0), "{f:?}");
        // The block widths must add up to the output width.
        assert!(BlockFvu::from_accumulator(&acc, &[2, 2]).is_err());
    }
}
