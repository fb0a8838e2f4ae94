//! A decoder-only transformer written to TransformerLens's equations, with
//! a hook at every TransformerLens site: OthelloGPT, ChessGPT (character
//! level), and the grid-quiz GPTs of reference 004 (sinusoidal positions,
//! no final LayerNorm).
//!
//! - [`GptConfig`] uses TransformerLens's field names, so a config exported
//!   from Python (`model.cfg`) reads here.
//! - [`Gpt::load_transformer_lens`] / [`Gpt::save_transformer_lens`] read
//!   and write TransformerLens state dicts in safetensors.
//! - [`train`] trains on token datasets; [`othello`] makes OthelloGPT
//!   datasets from kibitzer-games and scores legal-move predictions.

pub mod answer;
#[cfg(feature = "chess")]
pub mod chess;
pub mod othello;
mod tl;
pub mod train;

use crate::error::ModelError;
use crate::params::Parameterized;
use crate::transformer::{ActFn, Block, BlockShape, Init, layer_norm, validate_block_sizes};
use burn::tensor::{Device, Int, Tensor, TensorData};
use kibitzer_hooks::{Axis, HookError, HookSite, HookedModel, Hooks, LnHook};

/// How often a model's prediction is a legal move: OthelloGPT's top-1
/// next token ([`othello::legal_move_accuracy`]), ChessGPT's greedily
/// written move ([`chess::legal_move_rate`]).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LegalMoveAccuracy {
    /// Positions scored.
    pub positions: usize,
    /// Positions whose prediction is a legal move.
    pub legal: usize,
}

impl LegalMoveAccuracy {
    /// `legal / positions`.
    pub fn fraction(&self) -> f64 {
        self.legal as f64 / self.positions.max(1) as f64
    }
}

/// How positions are embedded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Positional {
    /// A learned table `pos_embed.W_pos` (TransformerLens `"standard"`).
    #[default]
    #[serde(rename = "standard")]
    Learned,
    /// The fixed sine/cosine table of Vaswani et al. (not trained; saved as
    /// `pos_embed.W_pos` so TransformerLens reads it as a learned table).
    #[serde(rename = "sinusoidal")]
    Sinusoidal,
}

/// The normalisation of the blocks (TransformerLens `normalization_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Normalization {
    /// LayerNorm with weight and bias.
    #[default]
    #[serde(rename = "LN")]
    LayerNorm,
}

fn default_eps() -> f64 {
    1e-5
}
fn minus_one() -> i64 {
    -1
}
fn minus_one_f() -> f64 {
    -1.0
}
fn yes() -> bool {
    true
}

/// The shape of a [`Gpt`], in TransformerLens's `HookedTransformerConfig`
/// field names (unknown fields of a full TransformerLens config are
/// ignored; the ones that change the computation are checked).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GptConfig {
    /// Number of blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Attention heads per block.
    pub n_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// MLP hidden width.
    pub d_mlp: usize,
    /// Input vocabulary size.
    pub d_vocab: usize,
    /// Context length (longest sequence).
    pub n_ctx: usize,
    /// Output vocabulary size; -1 (TransformerLens's default) means `d_vocab`.
    #[serde(default = "minus_one")]
    pub d_vocab_out: i64,
    /// MLP nonlinearity.
    pub act_fn: ActFn,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Block normalisation (only `"LN"`).
    #[serde(default)]
    pub normalization_type: Normalization,
    /// Learned or sinusoidal positions.
    #[serde(default)]
    pub positional_embedding_type: Positional,
    /// Whether a LayerNorm precedes the unembedding (kibitzer's field;
    /// TransformerLens always has one with `"LN"`).
    #[serde(default = "yes")]
    pub final_ln: bool,
    /// TransformerLens's attention-only models are not supported; must be false.
    #[serde(default)]
    pub attn_only: bool,
    /// TransformerLens's gated MLPs are not supported; must be false.
    #[serde(default)]
    pub gated_mlp: bool,
    /// Standard deviation of the initial weights; -1 means `0.8 / sqrt(d_model)` (TransformerLens's default).
    #[serde(default = "minus_one_f")]
    pub initializer_range: f64,
    /// Seed of the initial weights.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl GptConfig {
    /// A config with TransformerLens's defaults for everything but the sizes
    /// (learned positions, final LayerNorm, GELU, eps 1e-5, seed 0).
    pub fn new(
        n_layers: usize,
        d_model: usize,
        n_heads: usize,
        d_mlp: usize,
        d_vocab: usize,
        n_ctx: usize,
    ) -> GptConfig {
        GptConfig {
            n_layers,
            d_model,
            n_heads,
            d_head: d_model / n_heads.max(1),
            d_mlp,
            d_vocab,
            n_ctx,
            d_vocab_out: -1,
            act_fn: ActFn::Gelu,
            eps: 1e-5,
            normalization_type: Normalization::LayerNorm,
            positional_embedding_type: Positional::Learned,
            final_ln: true,
            attn_only: false,
            gated_mlp: false,
            initializer_range: -1.0,
            seed: Some(0),
        }
    }

    /// The output vocabulary size.
    pub fn vocab_out(&self) -> usize {
        if self.d_vocab_out > 0 {
            self.d_vocab_out as usize
        } else {
            self.d_vocab
        }
    }

    /// Checks the config, naming the field at fault.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_block_sizes(
            self.d_model,
            self.n_heads,
            self.d_head,
            self.d_mlp,
            self.n_layers,
        )?;
        if self.d_vocab == 0 || self.n_ctx == 0 {
            return Err(ModelError::Config(
                "d_vocab and n_ctx must be at least 1".into(),
            ));
        }
        if self.attn_only {
            return Err(ModelError::Config(
                "attn_only = true (attention-only models) is not supported".into(),
            ));
        }
        if self.gated_mlp {
            return Err(ModelError::Config(
                "gated_mlp = true is not supported".into(),
            ));
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(ModelError::Config(format!(
                "eps must be positive, got {}",
                self.eps
            )));
        }
        if self.positional_embedding_type == Positional::Sinusoidal
            && !self.d_model.is_multiple_of(2)
        {
            return Err(ModelError::Config(format!(
                "sinusoidal positions need an even d_model, got {}",
                self.d_model
            )));
        }
        Ok(())
    }

    pub(crate) fn block_shape(&self) -> BlockShape {
        BlockShape {
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_head: self.d_head,
            d_mlp: self.d_mlp,
            act: self.act_fn,
            eps: self.eps,
            causal: true,
            attn_scale: (self.d_head as f64).sqrt(),
        }
    }

    fn init_std(&self) -> f64 {
        if self.initializer_range > 0.0 {
            self.initializer_range
        } else {
            0.8 / (self.d_model as f64).sqrt()
        }
    }
}

/// The sine/cosine position table `[n_ctx, d_model]`:
/// `PE[p, 2i] = sin(p / 10000^(2i/d))`, `PE[p, 2i+1] = cos(p / 10000^(2i/d))`.
pub fn sinusoidal_table(n_ctx: usize, d_model: usize) -> Vec<f32> {
    let mut table = vec![0f32; n_ctx * d_model];
    for p in 0..n_ctx {
        for i in 0..d_model / 2 {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / d_model as f64);
            table[p * d_model + 2 * i] = angle.sin() as f32;
            table[p * d_model + 2 * i + 1] = angle.cos() as f32;
        }
    }
    table
}

/// A decoder-only transformer. See the module docs.
#[derive(Clone, Debug)]
pub struct Gpt {
    config: GptConfig,
    /// `embed.W_E` `[d_vocab, d_model]`.
    pub(crate) w_e: Tensor<2>,
    /// `pos_embed.W_pos` `[n_ctx, d_model]` (a constant when sinusoidal).
    pub(crate) w_pos: Tensor<2>,
    pub(crate) blocks: Vec<Block>,
    /// `ln_final.w`, `ln_final.b`.
    pub(crate) ln_final: Option<(Tensor<2>, Tensor<2>)>,
    /// `unembed.W_U` `[d_model, d_vocab_out]`.
    pub(crate) w_u: Tensor<2>,
    /// `unembed.b_U` `[1, d_vocab_out]`.
    pub(crate) b_u: Tensor<2>,
}

impl Parameterized for Gpt {
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        f("embed.W_E", &mut self.w_e);
        if self.config.positional_embedding_type == Positional::Learned {
            f("pos_embed.W_pos", &mut self.w_pos);
        }
        for (layer, block) in self.blocks.iter_mut().enumerate() {
            block.visit(layer, f);
        }
        if let Some((w, b)) = &mut self.ln_final {
            f("ln_final.w", w);
            f("ln_final.b", b);
        }
        f("unembed.W_U", &mut self.w_u);
        f("unembed.b_U", &mut self.b_u);
    }
}

impl Gpt {
    /// A freshly initialised model (TransformerLens's initialisation:
    /// weights from N(0, `initializer_range`), biases 0, LayerNorm weights
    /// 1), seeded by `config.seed`.
    pub fn new(config: GptConfig, device: &Device) -> Result<Gpt, ModelError> {
        config.validate()?;
        let mut init = Init::new(config.seed.unwrap_or(0), device);
        let std = config.init_std();
        // The weights are drawn in f32: a larger (or infinite) range from a
        // config file has no normal distribution to draw from.
        if !(std as f32).is_finite() {
            return Err(ModelError::Config(format!(
                "initializer_range = {}: expected a standard deviation that is finite in f32 (or -1 for 0.8 / sqrt(d_model))",
                config.initializer_range
            )));
        }
        let (d, v, n) = (config.d_model, config.vocab_out(), config.n_ctx);
        let w_e = init.normal(config.d_vocab, d, std);
        let w_pos = match config.positional_embedding_type {
            Positional::Learned => init.normal(n, d, std),
            Positional::Sinusoidal => {
                Tensor::from_data(TensorData::new(sinusoidal_table(n, d), [n, d]), device)
            }
        };
        let shape = config.block_shape();
        let blocks = (0..config.n_layers)
            .map(|_| Block::init(&shape, &mut init, std))
            .collect();
        let ln_final = config.final_ln.then(|| (init.ones(1, d), init.zeros(1, d)));
        let w_u = init.normal(d, v, std);
        let b_u = init.zeros(1, v);
        Ok(Gpt {
            config,
            w_e,
            w_pos,
            blocks,
            ln_final,
            w_u,
            b_u,
        })
    }

    /// The config.
    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.w_e.device()
    }

    /// The same model on another device.
    pub fn to_device(&self, device: &Device) -> Gpt {
        let mut moved = self.map_params(|_, t| t.to_device(device));
        moved.w_pos = self.w_pos.clone().to_device(device);
        moved
    }

    /// Token ids `[batch, pos]` as a tensor on the model's device, after
    /// checking every id is in the vocabulary and no sequence is longer than
    /// `n_ctx`. Sequences must all have the same length.
    pub fn tokens(&self, sequences: &[Vec<u32>]) -> Result<Tensor<2, Int>, ModelError> {
        let len = sequences.first().map_or(0, Vec::len);
        if len == 0 || len > self.config.n_ctx {
            return Err(ModelError::Input(format!(
                "sequences must have 1 to n_ctx = {} tokens, the first has {len}",
                self.config.n_ctx
            )));
        }
        let mut flat = Vec::with_capacity(sequences.len() * len);
        for (i, seq) in sequences.iter().enumerate() {
            if seq.len() != len {
                return Err(ModelError::Input(format!(
                    "sequence {i} has {} tokens, sequence 0 has {len}: pad them to one length",
                    seq.len()
                )));
            }
            for (p, &t) in seq.iter().enumerate() {
                if t as usize >= self.config.d_vocab {
                    return Err(ModelError::Input(format!(
                        "sequence {i}, position {p}: token {t} is outside the vocabulary (d_vocab = {})",
                        self.config.d_vocab
                    )));
                }
                flat.push(i64::from(t));
            }
        }
        Ok(Tensor::from_data(
            TensorData::new(flat, [sequences.len(), len]),
            &self.device(),
        ))
    }

    /// Logits `[batch, pos, d_vocab_out]` of token ids `[batch, pos]`,
    /// without checking the ids (the training loop's path; datasets are
    /// checked once when built).
    pub(crate) fn logits_unchecked(
        &self,
        tokens: &Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<Tensor<3>>, HookError> {
        use Axis::*;
        let [b, p] = tokens.dims();
        let d = self.config.d_model;
        let embed: Tensor<3> = self
            .w_e
            .clone()
            .select(0, tokens.clone().reshape([b * p]))
            .reshape([b, p, d]);
        let Some(embed) = hooks.visit(HookSite::Embed, embed, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        let pos: Tensor<3> = self
            .w_pos
            .clone()
            .slice([0..p, 0..d])
            .reshape([1, p, d])
            .expand([b, p, d]);
        let Some(pos) = hooks.visit(HookSite::PosEmbed, pos, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        let shape = self.config.block_shape();
        let mut x = embed + pos;
        for (layer, block) in self.blocks.iter().enumerate() {
            let Some(next) = block.forward(layer, x, &shape, hooks)? else {
                return Ok(None);
            };
            x = next;
        }
        if let Some((w, bias)) = &self.ln_final {
            let sites = (
                HookSite::LnFinal(LnHook::Scale),
                HookSite::LnFinal(LnHook::Normalized),
            );
            let Some(normalized) = layer_norm(x, w, bias, self.config.eps, hooks, sites)? else {
                return Ok(None);
            };
            x = normalized;
        }
        let Some(x) = hooks.visit(HookSite::UnembedIn, x, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        let logits = crate::transformer::linear3(x, &self.w_u, &self.b_u);
        hooks.visit(HookSite::UnembedOut, logits, [Batch, Pos, Hidden])
    }
}

impl HookedModel for Gpt {
    type Input = Tensor<2, Int>;
    type Output = Tensor<3>;

    fn sites(&self) -> Vec<HookSite> {
        HookSite::transformer_sites(self.config.n_layers, true, self.config.final_ln)
    }

    /// Checks the shape and the token ids (one small device read), then runs.
    fn forward_hooked(
        &self,
        tokens: &Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<Tensor<3>>, HookError> {
        let [b, p] = tokens.dims();
        if b == 0 || p == 0 || p > self.config.n_ctx {
            return Err(HookError::Input(format!(
                "tokens are [{b}, {p}]: need a batch of sequences of 1 to n_ctx = {} tokens",
                self.config.n_ctx
            )));
        }
        let low = tokens.clone().min().into_scalar::<i64>();
        let high = tokens.clone().max().into_scalar::<i64>();
        if low < 0 || high >= self.config.d_vocab as i64 {
            return Err(HookError::Input(format!(
                "token ids range over {low}..={high}, outside the vocabulary 0..{}",
                self.config.d_vocab
            )));
        }
        self.logits_unchecked(tokens, hooks)
    }

    fn bytes_per_example(&self) -> usize {
        let c = &self.config;
        4 * c.n_ctx * (10 * c.d_model + 3 * c.d_mlp + 3 * c.n_heads * c.n_ctx + 2 * c.vocab_out())
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
