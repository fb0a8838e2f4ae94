//! The transformer block shared by the GPT and the chess policy, written to
//! TransformerLens's equations and hook sites.
//!
//! Weights are stored for one matmul per projection: `W_Q` as
//! `[d_model, n_heads * d_head]` (TransformerLens's `[n_heads, d_model,
//! d_head]` with the head axis moved next to `d_head`), `W_O` as
//! `[n_heads * d_head, d_model]`, biases as `[1, n]` rows. The conversion
//! to and from TransformerLens's shapes happens only in the weight files.

use crate::causal_attention::{attend, attention_scores, fused_causal_attention};
use crate::error::ModelError;
use burn::tensor::activation::{gelu_approximate, relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use kibitzer_hooks::{Axis, BlockHook, HookError, HookSite, Hooks, LnHook};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The MLP nonlinearity, named as TransformerLens's `act_fn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ActFn {
    /// Exact GELU (`x Φ(x)`, PyTorch's `F.gelu`): TransformerLens `"gelu"`.
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GPT-2: TransformerLens `"gelu_new"`.
    #[serde(rename = "gelu_new")]
    GeluNew,
    /// ReLU: TransformerLens `"relu"`.
    #[serde(rename = "relu")]
    Relu,
}

impl ActFn {
    pub(crate) fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            ActFn::Gelu => crate::flex_kernels::gelu(x),
            ActFn::GeluNew => gelu_approximate(x),
            ActFn::Relu => relu(x),
        }
    }
}

/// The sizes and behaviour of a transformer's blocks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BlockShape {
    pub d_model: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    pub act: ActFn,
    pub eps: f64,
    /// Mask attention to later positions (a decoder); otherwise every
    /// position sees every other (an encoder over board squares).
    pub causal: bool,
    /// Scores are divided by this (TransformerLens's `attn_scale`, `sqrt(d_head)`).
    pub attn_scale: f64,
}

/// One block's weights.
#[derive(Clone, Debug)]
pub struct Block {
    /// `ln1.w` `[1, d_model]`.
    pub ln1_w: Tensor<2>,
    /// `ln1.b` `[1, d_model]`.
    pub ln1_b: Tensor<2>,
    /// `attn.W_Q` `[d_model, n_heads * d_head]`.
    pub w_q: Tensor<2>,
    /// `attn.b_Q` `[1, n_heads * d_head]`.
    pub b_q: Tensor<2>,
    /// `attn.W_K`.
    pub w_k: Tensor<2>,
    /// `attn.b_K`.
    pub b_k: Tensor<2>,
    /// `attn.W_V`.
    pub w_v: Tensor<2>,
    /// `attn.b_V`.
    pub b_v: Tensor<2>,
    /// `attn.W_O` `[n_heads * d_head, d_model]`.
    pub w_o: Tensor<2>,
    /// `attn.b_O` `[1, d_model]`.
    pub b_o: Tensor<2>,
    /// `ln2.w`.
    pub ln2_w: Tensor<2>,
    /// `ln2.b`.
    pub ln2_b: Tensor<2>,
    /// `mlp.W_in` `[d_model, d_mlp]`.
    pub w_in: Tensor<2>,
    /// `mlp.b_in` `[1, d_mlp]`.
    pub b_in: Tensor<2>,
    /// `mlp.W_out` `[d_mlp, d_model]`.
    pub w_out: Tensor<2>,
    /// `mlp.b_out` `[1, d_model]`.
    pub b_out: Tensor<2>,
}

/// A seeded normal initialiser.
pub(crate) struct Init {
    rng: ChaCha8Rng,
    device: Device,
}

impl Init {
    pub fn new(seed: u64, device: &Device) -> Init {
        Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
        }
    }

    pub fn normal(&mut self, rows: usize, cols: usize, std: f64) -> Tensor<2> {
        let dist = Normal::new(0.0f32, std as f32).expect(
            "Normal::new fails only on a non-finite deviation: Gpt::new refuses an initializer_range that is not finite in f32, and every other caller derives it from sizes validated >= 1",
        );
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| dist.sample(&mut self.rng))
            .collect();
        Tensor::from_data(TensorData::new(values, [rows, cols]), &self.device)
    }

    pub fn zeros(&self, rows: usize, cols: usize) -> Tensor<2> {
        Tensor::zeros([rows, cols], &self.device)
    }

    pub fn ones(&self, rows: usize, cols: usize) -> Tensor<2> {
        Tensor::ones([rows, cols], &self.device)
    }
}

/// `x` `[b, p, d]` times `w` `[d, e]` plus `bias` `[1, e]`, as one 2-D matmul.
pub(crate) fn linear3(x: Tensor<3>, w: &Tensor<2>, bias: &Tensor<2>) -> Tensor<3> {
    let [b, p, d] = x.dims();
    let e = w.dims()[1];
    crate::flex_kernels::linear(x.reshape([b * p, d]), w, bias).reshape([b, p, e])
}

/// TransformerLens's LayerNorm: centre, divide by `sqrt(var + eps)`
/// (`hook_scale`), the normalised values (`hook_normalized`, before the
/// weight and bias), then weight and bias.
pub(crate) fn layer_norm(
    x: Tensor<3>,
    w: &Tensor<2>,
    b: &Tensor<2>,
    eps: f64,
    hooks: &mut Hooks<'_>,
    sites: (HookSite, HookSite),
) -> Result<Option<Tensor<3>>, HookError> {
    let centred = x.clone() - x.mean_dim(2);
    let scale = centred.clone().square().mean_dim(2).add_scalar(eps).sqrt();
    let Some(scale) = hooks.visit(sites.0, scale, [Axis::Batch, Axis::Pos, Axis::Hidden])? else {
        return Ok(None);
    };
    let [_, _, d] = centred.dims();
    let Some(normalized) = hooks.visit(
        sites.1,
        centred / scale,
        [Axis::Batch, Axis::Pos, Axis::Hidden],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(
        normalized * w.clone().reshape([1, 1, d]) + b.clone().reshape([1, 1, d]),
    ))
}

impl Block {
    /// TransformerLens's default initialisation: weights from N(0, `std`),
    /// biases 0, LayerNorm weights 1.
    pub(crate) fn init(shape: &BlockShape, init: &mut Init, std: f64) -> Block {
        let (d, hd, m) = (shape.d_model, shape.n_heads * shape.d_head, shape.d_mlp);
        Block {
            ln1_w: init.ones(1, d),
            ln1_b: init.zeros(1, d),
            w_q: init.normal(d, hd, std),
            b_q: init.zeros(1, hd),
            w_k: init.normal(d, hd, std),
            b_k: init.zeros(1, hd),
            w_v: init.normal(d, hd, std),
            b_v: init.zeros(1, hd),
            w_o: init.normal(hd, d, std),
            b_o: init.zeros(1, d),
            ln2_w: init.ones(1, d),
            ln2_b: init.zeros(1, d),
            w_in: init.normal(d, m, std),
            b_in: init.zeros(1, m),
            w_out: init.normal(m, d, std),
            b_out: init.zeros(1, d),
        }
    }

    /// Visits the weights with their TransformerLens names.
    pub(crate) fn visit(&mut self, layer: usize, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        let p = format!("blocks.{layer}.");
        f(&format!("{p}ln1.w"), &mut self.ln1_w);
        f(&format!("{p}ln1.b"), &mut self.ln1_b);
        f(&format!("{p}attn.W_Q"), &mut self.w_q);
        f(&format!("{p}attn.b_Q"), &mut self.b_q);
        f(&format!("{p}attn.W_K"), &mut self.w_k);
        f(&format!("{p}attn.b_K"), &mut self.b_k);
        f(&format!("{p}attn.W_V"), &mut self.w_v);
        f(&format!("{p}attn.b_V"), &mut self.b_v);
        f(&format!("{p}attn.W_O"), &mut self.w_o);
        f(&format!("{p}attn.b_O"), &mut self.b_o);
        f(&format!("{p}ln2.w"), &mut self.ln2_w);
        f(&format!("{p}ln2.b"), &mut self.ln2_b);
        f(&format!("{p}mlp.W_in"), &mut self.w_in);
        f(&format!("{p}mlp.b_in"), &mut self.b_in);
        f(&format!("{p}mlp.W_out"), &mut self.w_out);
        f(&format!("{p}mlp.b_out"), &mut self.b_out);
    }

    /// The block's forward pass from `hook_resid_pre` to `hook_resid_post`.
    pub(crate) fn forward(
        &self,
        layer: usize,
        x: Tensor<3>,
        shape: &BlockShape,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<Tensor<3>>, HookError> {
        use Axis::*;
        let site = |hook| HookSite::block(layer, hook);
        let [b, p, _] = x.dims();
        let (h, dh) = (shape.n_heads, shape.d_head);
        let Some(resid_pre) = hooks.visit(site(BlockHook::ResidPre), x, [Batch, Pos, Hidden])?
        else {
            return Ok(None);
        };
        let ln1 = (
            site(BlockHook::Ln1(LnHook::Scale)),
            site(BlockHook::Ln1(LnHook::Normalized)),
        );
        let Some(normalized) = layer_norm(
            resid_pre.clone(),
            &self.ln1_w,
            &self.ln1_b,
            shape.eps,
            hooks,
            ln1,
        )?
        else {
            return Ok(None);
        };
        let heads = |t: Tensor<3>| -> Tensor<4> { t.reshape([b, p, h, dh]) };
        let q = heads(linear3(normalized.clone(), &self.w_q, &self.b_q));
        let Some(q) = hooks.visit(site(BlockHook::AttnQ), q, [Batch, Pos, Head, Hidden])? else {
            return Ok(None);
        };
        let k = heads(linear3(normalized.clone(), &self.w_k, &self.b_k));
        let Some(k) = hooks.visit(site(BlockHook::AttnK), k, [Batch, Pos, Head, Hidden])? else {
            return Ok(None);
        };
        let v = heads(linear3(normalized, &self.w_v, &self.b_v));
        let Some(v) = hooks.visit(site(BlockHook::AttnV), v, [Batch, Pos, Head, Hidden])? else {
            return Ok(None);
        };
        let scores_wanted =
            hooks.wants(site(BlockHook::AttnScores)) || hooks.wants(site(BlockHook::AttnPattern));
        let (q, k, v) = if shape.causal && !scores_wanted {
            match fused_causal_attention(q, k, v, shape.attn_scale as f32) {
                Ok(z) => return self.after_attention(layer, resid_pre, z, shape, hooks),
                Err([q, k, v]) => (q, k, v),
            }
        } else {
            (q, k, v)
        };
        let scores = attention_scores(q, k, shape.attn_scale, shape.causal);
        let Some(scores) = hooks.visit(
            site(BlockHook::AttnScores),
            scores,
            [Batch, Head, QueryPos, KeyPos],
        )?
        else {
            return Ok(None);
        };
        let pattern = softmax(scores, 3);
        let Some(pattern) = hooks.visit(
            site(BlockHook::AttnPattern),
            pattern,
            [Batch, Head, QueryPos, KeyPos],
        )?
        else {
            return Ok(None);
        };
        self.after_attention(layer, resid_pre, attend(pattern, v), shape, hooks)
    }

    /// The rest of the block from the heads' outputs `z` (`[batch, pos,
    /// heads, d_head]`, `hook_z`) to `hook_resid_post`.
    fn after_attention(
        &self,
        layer: usize,
        resid_pre: Tensor<3>,
        z: Tensor<4>,
        shape: &BlockShape,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<Tensor<3>>, HookError> {
        use Axis::*;
        let site = |hook| HookSite::block(layer, hook);
        let [b, p, h, dh] = z.dims();
        let d = resid_pre.dims()[2];
        let Some(z) = hooks.visit(site(BlockHook::AttnZ), z, [Batch, Pos, Head, Hidden])? else {
            return Ok(None);
        };
        let attn_out = if hooks.wants(site(BlockHook::AttnResult)) {
            // Each head's write, [b, p, h, d], only when someone asks for it.
            let per_head = z.swap_dims(0, 2).reshape([h, p * b, dh]);
            let per_head = per_head
                .matmul(self.w_o.clone().reshape([h, dh, d]))
                .reshape([h, p, b, d])
                .swap_dims(0, 2);
            let Some(result) = hooks.visit(
                site(BlockHook::AttnResult),
                per_head,
                [Batch, Pos, Head, Hidden],
            )?
            else {
                return Ok(None);
            };
            let summed: Tensor<3> = result.sum_dim(2).reshape([b, p, d]);
            summed + self.b_o.clone().reshape([1, 1, d])
        } else {
            linear3(z.reshape([b, p, h * dh]), &self.w_o, &self.b_o)
        };
        let Some(attn_out) =
            hooks.visit(site(BlockHook::AttnOut), attn_out, [Batch, Pos, Hidden])?
        else {
            return Ok(None);
        };
        let Some(resid_mid) = hooks.visit(
            site(BlockHook::ResidMid),
            resid_pre + attn_out,
            [Batch, Pos, Hidden],
        )?
        else {
            return Ok(None);
        };
        let ln2 = (
            site(BlockHook::Ln2(LnHook::Scale)),
            site(BlockHook::Ln2(LnHook::Normalized)),
        );
        let Some(normalized) = layer_norm(
            resid_mid.clone(),
            &self.ln2_w,
            &self.ln2_b,
            shape.eps,
            hooks,
            ln2,
        )?
        else {
            return Ok(None);
        };
        let pre = linear3(normalized, &self.w_in, &self.b_in);
        let Some(pre) = hooks.visit(site(BlockHook::MlpPre), pre, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        let post = shape.act.apply(pre);
        let Some(post) = hooks.visit(site(BlockHook::MlpPost), post, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        let mlp_out = linear3(post, &self.w_out, &self.b_out);
        let Some(mlp_out) = hooks.visit(site(BlockHook::MlpOut), mlp_out, [Batch, Pos, Hidden])?
        else {
            return Ok(None);
        };
        hooks.visit(
            site(BlockHook::ResidPost),
            resid_mid + mlp_out,
            [Batch, Pos, Hidden],
        )
    }
}

/// TransformerLens's shapes of a block's tensors, with how to convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlLayout {
    /// Stored as is (`[rows, cols]`).
    Matrix,
    /// A `[1, n]` row stored as `[n]`.
    Vector,
    /// `[d_model, h * d_head]` stored as `[h, d_model, d_head]` (W_Q, W_K, W_V).
    HeadsIn { heads: usize },
    /// `[1, h * d_head]` stored as `[h, d_head]` (b_Q, b_K, b_V).
    HeadBias { heads: usize },
    /// `[h * d_head, d_model]` stored as `[h, d_head, d_model]` (W_O).
    HeadsOut { heads: usize },
}

impl TlLayout {
    /// The layout of a parameter from its TransformerLens name.
    pub(crate) fn of(name: &str, n_heads: usize) -> TlLayout {
        let last = name.rsplit('.').next().unwrap_or(name);
        match last {
            "W_Q" | "W_K" | "W_V" => TlLayout::HeadsIn { heads: n_heads },
            "b_Q" | "b_K" | "b_V" => TlLayout::HeadBias { heads: n_heads },
            "W_O" => TlLayout::HeadsOut { heads: n_heads },
            _ if last.starts_with("W_") => TlLayout::Matrix,
            _ => TlLayout::Vector,
        }
    }

    /// The file shape of an internal `[rows, cols]` tensor.
    pub(crate) fn file_shape(self, rows: usize, cols: usize) -> Vec<usize> {
        match self {
            TlLayout::Matrix => vec![rows, cols],
            TlLayout::Vector => vec![cols],
            TlLayout::HeadsIn { heads } => vec![heads, rows, cols / heads],
            TlLayout::HeadBias { heads } => vec![heads, cols / heads],
            TlLayout::HeadsOut { heads } => vec![heads, rows / heads, cols],
        }
    }

    /// Internal `[rows, cols]` values from file values.
    pub(crate) fn internal_from_file(self, data: Vec<f32>, rows: usize, cols: usize) -> Vec<f32> {
        match self {
            TlLayout::HeadsIn { heads } => {
                // file [h, rows, dh] -> internal [rows, h * dh]
                let dh = cols / heads;
                let mut out = vec![0f32; rows * cols];
                for hi in 0..heads {
                    for r in 0..rows {
                        let src = (hi * rows + r) * dh;
                        out[r * cols + hi * dh..r * cols + (hi + 1) * dh]
                            .copy_from_slice(&data[src..src + dh]);
                    }
                }
                out
            }
            _ => data,
        }
    }

    /// File values from internal `[rows, cols]` values.
    pub(crate) fn file_from_internal(self, data: Vec<f32>, rows: usize, cols: usize) -> Vec<f32> {
        match self {
            TlLayout::HeadsIn { heads } => {
                let dh = cols / heads;
                let mut out = vec![0f32; rows * cols];
                for hi in 0..heads {
                    for r in 0..rows {
                        let dst = (hi * rows + r) * dh;
                        out[dst..dst + dh]
                            .copy_from_slice(&data[r * cols + hi * dh..r * cols + (hi + 1) * dh]);
                    }
                }
                out
            }
            _ => data,
        }
    }
}

/// Checks the sizes shared by every transformer config.
pub(crate) fn validate_block_sizes(
    d_model: usize,
    n_heads: usize,
    d_head: usize,
    d_mlp: usize,
    n_layers: usize,
) -> Result<(), ModelError> {
    for (name, value) in [
        ("d_model", d_model),
        ("n_heads", n_heads),
        ("d_head", d_head),
        ("d_mlp", d_mlp),
    ] {
        if value == 0 {
            return Err(ModelError::Config(format!("{name} must be at least 1")));
        }
    }
    if n_layers == 0 {
        return Err(ModelError::Config("n_layers must be at least 1".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_layouts_round_trip_and_place_heads_next_to_d_head() {
        // Internal [rows 2, h 3 * dh 2]: value = row * 100 + col.
        let (rows, cols) = (2, 6);
        let internal: Vec<f32> = (0..rows * cols)
            .map(|i| ((i / cols) * 100 + i % cols) as f32)
            .collect();
        let layout = TlLayout::HeadsIn { heads: 3 };
        assert_eq!(layout.file_shape(rows, cols), vec![3, 2, 2]);
        let file = layout.file_from_internal(internal.clone(), rows, cols);
        // File [h, rows, dh]: head 1, row 1 = internal row 1, cols 2..4.
        assert_eq!(&file[(2 + 1) * 2..(2 + 1) * 2 + 2], &[102.0, 103.0]);
        assert_eq!(layout.internal_from_file(file, rows, cols), internal);
        assert_eq!(
            TlLayout::of("blocks.3.attn.W_O", 4).file_shape(8, 5),
            vec![4, 2, 5]
        );
        assert_eq!(
            TlLayout::of("blocks.3.attn.b_K", 4).file_shape(1, 8),
            vec![4, 2]
        );
        assert_eq!(TlLayout::of("ln_final.w", 4).file_shape(1, 8), vec![8]);
        assert_eq!(TlLayout::of("embed.W_E", 4).file_shape(9, 8), vec![9, 8]);
    }
}
