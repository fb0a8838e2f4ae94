//! The [`Dictionary`] trait: what every later crate (transcoders, crosscoders,
//! interventions, metrics, board-state evaluation) needs of a sparse
//! dictionary, without knowing its architecture.

use burn::tensor::Tensor;

/// Features and reconstruction of one batch.
#[derive(Clone, Debug)]
pub struct Forward {
    /// Feature activations, `[batch, d_sae]`.
    pub features: Tensor<2>,
    /// Reconstruction (or, for a transcoder, prediction), `[batch, d_out]`.
    pub reconstruction: Tensor<2>,
}

/// A sparse dictionary: an encoder to `d_sae` features and a linear decoder.
///
/// Implemented by [`crate::Sae`] for every architecture; the architecture is a
/// value inside it, so code written against this trait works for all of them.
pub trait Dictionary {
    /// Width of the input activations.
    fn d_in(&self) -> usize;
    /// Number of features.
    fn d_sae(&self) -> usize;
    /// Width of the output (equal to `d_in` for an autoencoder).
    fn d_out(&self) -> usize {
        self.d_in()
    }
    /// Feature activations for a batch `[batch, d_in] -> [batch, d_sae]`.
    fn encode(&self, x: Tensor<2>) -> Tensor<2>;
    /// Output for given features `[batch, d_sae] -> [batch, d_out]`.
    ///
    /// For dictionaries with a per-row input normalisation or a skip path this
    /// is the decoder alone; use [`Dictionary::forward`] for the full output.
    fn decode(&self, features: Tensor<2>) -> Tensor<2>;
    /// Features and full output in one pass.
    fn forward(&self, x: Tensor<2>) -> Forward {
        let features = self.encode(x);
        Forward {
            reconstruction: self.decode(features.clone()),
            features,
        }
    }
    /// Decoder directions, one row per feature: `[d_sae, d_out]`.
    fn decoder_directions(&self) -> Tensor<2>;
}
