//! The block structure of a cross-layer transcoder's weights, so that a
//! step's products skip its structural zeros.
//!
//! A CLT over `L` layers of width `d` with `F` features per layer is a
//! transcoder of input and output width `L d` and `L F` features (layer-major)
//! whose encoder is block-diagonal (layer `l`'s features read only `x_l`) and
//! whose decoder is block upper-triangular (layer `l`'s features write only
//! to outputs `l..L`). The dense products of a step multiply every zero
//! block too: `L` times the encoder's work and about twice the decoder's.
//! These products compute only the blocks that exist, and give the dense
//! products' results exactly where the weights may be non-zero (the
//! gradients are zero elsewhere, which keeps the structure).

use burn::tensor::Tensor;

/// `L` layers of width `d_model` with `features` features each; see the
/// [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossLayer {
    /// `L`.
    pub layers: usize,
    /// `d`, the width of every input and output block.
    pub d_model: usize,
    /// `F`, features per layer.
    pub features: usize,
}

impl CrossLayer {
    /// `s W_enc` for the block-diagonal `W_enc [L d, L F]`: `[B, L d] -> [B, L F]`.
    pub fn encode(&self, s: Tensor<2>, w_enc: &Tensor<2>) -> Tensor<2> {
        let (d, f) = (self.d_model, self.features);
        let parts = (0..self.layers)
            .map(|l| {
                s.clone().narrow(1, l * d, d).matmul(
                    w_enc
                        .clone()
                        .slice([l * d..(l + 1) * d, l * f..(l + 1) * f]),
                )
            })
            .collect();
        Tensor::cat(parts, 1)
    }

    /// `f W_dec` for the block upper-triangular `W_dec [L F, L d]`: output
    /// block `t` is `f[:, ..(t+1) F] W_dec[..(t+1) F, block t]` (the
    /// features of layers `0..=t`): `[B, L F] -> [B, L d]`.
    pub fn decode(&self, f: Tensor<2>, w_dec: &Tensor<2>) -> Tensor<2> {
        let (d, m) = (self.d_model, self.features);
        let parts = (0..self.layers)
            .map(|t| {
                let written_by = (t + 1) * m;
                f.clone()
                    .narrow(1, 0, written_by)
                    .matmul(w_dec.clone().slice([0..written_by, t * d..(t + 1) * d]))
            })
            .collect();
        Tensor::cat(parts, 1)
    }

    /// `g W_dec^T`: layer `l`'s features see `g[:, block l..] W_dec[layer
    /// l, block l..]^T`: `[B, L d] -> [B, L F]`.
    pub fn decode_transposed(&self, g: Tensor<2>, w_dec: &Tensor<2>) -> Tensor<2> {
        let (d, m, n) = (self.d_model, self.features, self.layers);
        let parts = (0..n)
            .map(|l| {
                g.clone().narrow(1, l * d, (n - l) * d).matmul(
                    w_dec
                        .clone()
                        .slice([l * m..(l + 1) * m, l * d..n * d])
                        .transpose(),
                )
            })
            .collect();
        Tensor::cat(parts, 1)
    }

    /// `f^T g` on the decoder's blocks, zero elsewhere: `[L F, L d]`.
    pub fn decoder_grad(&self, f: Tensor<2>, g: Tensor<2>) -> Tensor<2> {
        let (d, m, n) = (self.d_model, self.features, self.layers);
        let device = g.device();
        let rows = (0..n)
            .map(|l| {
                let written = f
                    .clone()
                    .narrow(1, l * m, m)
                    .transpose()
                    .matmul(g.clone().narrow(1, l * d, (n - l) * d));
                if l == 0 {
                    written
                } else {
                    Tensor::cat(vec![Tensor::zeros([m, l * d], &device), written], 1)
                }
            })
            .collect();
        Tensor::cat(rows, 0)
    }

    /// `s^T dpre` on the encoder's diagonal blocks, zero elsewhere: `[L d, L F]`.
    pub fn encoder_grad(&self, s: Tensor<2>, dpre: Tensor<2>) -> Tensor<2> {
        let (d, m, n) = (self.d_model, self.features, self.layers);
        let device = s.device();
        let rows = (0..n)
            .map(|l| {
                let block = s
                    .clone()
                    .narrow(1, l * d, d)
                    .transpose()
                    .matmul(dpre.clone().narrow(1, l * m, m));
                let mut parts = Vec::with_capacity(3);
                if l > 0 {
                    parts.push(Tensor::zeros([d, l * m], &device));
                }
                parts.push(block);
                if l + 1 < n {
                    parts.push(Tensor::zeros([d, (n - l - 1) * m], &device));
                }
                Tensor::cat(parts, 1)
            })
            .collect();
        Tensor::cat(rows, 0)
    }
}
