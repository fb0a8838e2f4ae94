//! A skill-conditioned chess policy in the style of Maia-2 (reference 000):
//! the 64 squares are tokens (a piece embedding plus a square embedding,
//! seen from the side to move), embeddings of both players' rating buckets
//! are added to every token, transformer blocks attend over all squares, and
//! the final LayerNorm's mean over squares feeds a policy over kibitzer-games'
//! chess actions and a tanh value head.
//!
//! Hook sites (TransformerLens names): `hook_embed` (pieces),
//! `hook_pos_embed` (squares), `hook_rating_embed` (both ratings), every
//! block site (`blocks.{l}.attn.hook_z` and the other per-head sites,
//! `hook_resid_*`, `hook_mlp_out`, ...), `ln_final.*`, `unembed.hook_in`
//! (the pooled representation `[batch, d_model]`) and `unembed.hook_out`
//! (the policy logits).

use crate::error::ModelError;
use crate::params::{
    AdamW, AdamWConfig, Parameterized, TensorFile, gradients, host_tensor, kibitzer_metadata,
    write_tensors,
};
use crate::transformer::{ActFn, Block, BlockShape, Init, layer_norm, validate_block_sizes};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use kibitzer_games::Game;
use kibitzer_games::chess::{Chess, ChessMove, ENCODING_PLANES, NUM_ACTIONS, SQUARES};
use kibitzer_hooks::{Axis, HookError, HookSite, HookedModel, Hooks, LnHook};
use kibitzer_sae::ops::{from_host, to_host};
use std::path::Path;

/// Maia-2's rating buckets: below 1100, 1100-1199, ..., 1900-1999, 2000 and up.
pub const MAIA2_RATING_EDGES: [u32; 10] =
    [1100, 1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900, 2000];

/// The shape of a [`ChessPolicy`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChessPolicyConfig {
    /// Transformer blocks.
    pub n_layers: usize,
    /// Width of a square's token.
    pub d_model: usize,
    /// Attention heads per block.
    pub n_heads: usize,
    /// Width of one head.
    pub d_head: usize,
    /// MLP hidden width.
    pub d_mlp: usize,
    /// Rating bucket edges, increasing: bucket `i` holds ratings below
    /// `edges[i]` (and at least `edges[i - 1]`); the last bucket the rest.
    pub rating_edges: Vec<u32>,
    /// MLP nonlinearity.
    pub act_fn: ActFn,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl ChessPolicyConfig {
    /// A policy with Maia-2's rating buckets, GELU, eps 1e-5, seed 0.
    pub fn new(n_layers: usize, d_model: usize, n_heads: usize, d_mlp: usize) -> ChessPolicyConfig {
        ChessPolicyConfig {
            n_layers,
            d_model,
            n_heads,
            d_head: d_model / n_heads.max(1),
            d_mlp,
            rating_edges: MAIA2_RATING_EDGES.to_vec(),
            act_fn: ActFn::Gelu,
            eps: 1e-5,
            seed: 0,
        }
    }

    /// Number of rating buckets.
    pub fn buckets(&self) -> usize {
        self.rating_edges.len() + 1
    }

    /// The bucket of a rating.
    pub fn bucket(&self, rating: u32) -> usize {
        self.rating_edges
            .iter()
            .take_while(|&&edge| rating >= edge)
            .count()
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
        if !self.rating_edges.windows(2).all(|w| w[0] < w[1]) {
            return Err(ModelError::Config(format!(
                "rating_edges must increase strictly: {:?}",
                self.rating_edges
            )));
        }
        Ok(())
    }

    fn block_shape(&self) -> BlockShape {
        BlockShape {
            d_model: self.d_model,
            n_heads: self.n_heads,
            d_head: self.d_head,
            d_mlp: self.d_mlp,
            act: self.act_fn,
            eps: self.eps,
            causal: false,
            attn_scale: (self.d_head as f64).sqrt(),
        }
    }
}

/// Positions and both players' ratings as a batch.
#[derive(Clone, Debug)]
pub struct ChessInput {
    /// Piece on each square, from the side to move: 0 empty, 1-6 own pawn to
    /// king, 7-12 the opponent's; squares mirrored for Black. `[batch, 64]`.
    pub pieces: Tensor<2, Int>,
    /// Rating bucket of the side to move, `[batch]`.
    pub own_rating: Tensor<1, Int>,
    /// Rating bucket of the opponent, `[batch]`.
    pub opponent_rating: Tensor<1, Int>,
    /// Legal actions of each position (policy masks), `[batch, actions]`.
    pub legal: Tensor<2, Bool>,
}

/// Policy logits and values of a batch.
#[derive(Clone, Debug)]
pub struct ChessPolicyOutput {
    /// Logits over kibitzer-games' chess actions, `[batch, actions]`.
    pub policy_logits: Tensor<2>,
    /// Values in `(-1, 1)` for the side to move, `[batch, 1]`.
    pub value: Tensor<2>,
}

/// The skill-conditioned chess policy. See the module docs.
#[derive(Clone, Debug)]
pub struct ChessPolicy {
    config: ChessPolicyConfig,
    w_piece: Tensor<2>,
    w_square: Tensor<2>,
    w_own: Tensor<2>,
    w_opp: Tensor<2>,
    blocks: Vec<Block>,
    ln_final: (Tensor<2>, Tensor<2>),
    w_policy: Tensor<2>,
    b_policy: Tensor<2>,
    w_value: Tensor<2>,
    b_value: Tensor<2>,
}

impl Parameterized for ChessPolicy {
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        f("embed.W_E", &mut self.w_piece);
        f("pos_embed.W_pos", &mut self.w_square);
        f("rating_embed.W_own", &mut self.w_own);
        f("rating_embed.W_opponent", &mut self.w_opp);
        for (layer, block) in self.blocks.iter_mut().enumerate() {
            block.visit(layer, f);
        }
        f("ln_final.w", &mut self.ln_final.0);
        f("ln_final.b", &mut self.ln_final.1);
        f("policy.W_policy", &mut self.w_policy);
        f("policy.b_policy", &mut self.b_policy);
        f("value.W_value", &mut self.w_value);
        f("value.b_value", &mut self.b_value);
    }
}

/// Pieces (0 empty, 1-12) on the 64 squares of `position`, from the side to move.
fn piece_indices(position: &Chess, planes: &mut [f32], out: &mut [i64]) {
    position.encode(planes);
    for (square, piece) in out.iter_mut().enumerate() {
        *piece = (0..ENCODING_PLANES)
            .find(|&p| planes[p * SQUARES + square] == 1.0)
            .map_or(0, |p| p as i64 + 1);
    }
}

impl ChessPolicy {
    /// A freshly initialised policy, seeded by `config.seed`.
    pub fn new(config: ChessPolicyConfig, device: &Device) -> Result<ChessPolicy, ModelError> {
        config.validate()?;
        let mut init = Init::new(config.seed, device);
        let d = config.d_model;
        let std = 0.8 / (d as f64).sqrt();
        let shape = config.block_shape();
        Ok(ChessPolicy {
            w_piece: init.normal(1 + ENCODING_PLANES, d, std),
            w_square: init.normal(SQUARES, d, std),
            w_own: init.normal(config.buckets(), d, std),
            w_opp: init.normal(config.buckets(), d, std),
            blocks: (0..config.n_layers)
                .map(|_| Block::init(&shape, &mut init, std))
                .collect(),
            ln_final: (init.ones(1, d), init.zeros(1, d)),
            w_policy: init.normal(d, NUM_ACTIONS, std),
            b_policy: init.zeros(1, NUM_ACTIONS),
            w_value: init.normal(d, 1, std),
            b_value: init.zeros(1, 1),
            config,
        })
    }

    /// The config.
    pub fn config(&self) -> &ChessPolicyConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.w_piece.device()
    }

    /// The same policy on another device.
    pub fn to_device(&self, device: &Device) -> ChessPolicy {
        self.map_params(|_, t| t.to_device(device))
    }

    /// A batch from positions and the ratings of the side to move and of its opponent.
    pub fn encode(&self, examples: &[(Chess, u32, u32)]) -> Result<ChessInput, ModelError> {
        if examples.is_empty() {
            return Err(ModelError::Input(
                "an empty batch of chess positions".into(),
            ));
        }
        let n = examples.len();
        let mut planes = vec![0f32; ENCODING_PLANES * SQUARES];
        let mut pieces = vec![0i64; n * SQUARES];
        let mut legal = vec![false; n * NUM_ACTIONS];
        let (mut own, mut opp) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (i, (position, own_rating, opp_rating)) in examples.iter().enumerate() {
            piece_indices(
                position,
                &mut planes,
                &mut pieces[i * SQUARES..(i + 1) * SQUARES],
            );
            let moves = position.legal_moves();
            if moves.is_empty() {
                return Err(ModelError::Input(format!(
                    "position {i} ({}) is over: no move to predict",
                    position.position_string()
                )));
            }
            for mv in moves {
                legal[i * NUM_ACTIONS + position.action_index(mv)] = true;
            }
            own.push(self.config.bucket(*own_rating) as i64);
            opp.push(self.config.bucket(*opp_rating) as i64);
        }
        let device = self.device();
        Ok(ChessInput {
            pieces: Tensor::from_data(TensorData::new(pieces, [n, SQUARES]), &device),
            own_rating: Tensor::from_data(TensorData::new(own, [n]), &device),
            opponent_rating: Tensor::from_data(TensorData::new(opp, [n]), &device),
            legal: Tensor::from_data(TensorData::new(legal, [n, NUM_ACTIONS]), &device),
        })
    }

    fn run(
        &self,
        input: &ChessInput,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<ChessPolicyOutput>, HookError> {
        use Axis::*;
        let [b, s] = input.pieces.dims();
        let d = self.config.d_model;
        let pieces: Tensor<3> = self
            .w_piece
            .clone()
            .select(0, input.pieces.clone().reshape([b * s]))
            .reshape([b, s, d]);
        let Some(pieces) = hooks.visit(HookSite::Embed, pieces, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        let squares: Tensor<3> = self.w_square.clone().reshape([1, s, d]).expand([b, s, d]);
        let Some(squares) = hooks.visit(HookSite::PosEmbed, squares, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        let ratings = self.w_own.clone().select(0, input.own_rating.clone())
            + self.w_opp.clone().select(0, input.opponent_rating.clone());
        let ratings: Tensor<3> = ratings.reshape([b, 1, d]).expand([b, s, d]);
        let Some(ratings) = hooks.visit(HookSite::RatingEmbed, ratings, [Batch, Pos, Hidden])?
        else {
            return Ok(None);
        };
        let mut x = pieces + squares + ratings;
        let shape = self.config.block_shape();
        for (layer, block) in self.blocks.iter().enumerate() {
            let Some(next) = block.forward(layer, x, &shape, hooks)? else {
                return Ok(None);
            };
            x = next;
        }
        let sites = (
            HookSite::LnFinal(LnHook::Scale),
            HookSite::LnFinal(LnHook::Normalized),
        );
        let Some(x) = layer_norm(
            x,
            &self.ln_final.0,
            &self.ln_final.1,
            self.config.eps,
            hooks,
            sites,
        )?
        else {
            return Ok(None);
        };
        let pooled: Tensor<2> = x.mean_dim(1).reshape([b, d]);
        let Some(pooled) = hooks.visit(HookSite::UnembedIn, pooled, [Batch, Hidden])? else {
            return Ok(None);
        };
        let logits = crate::flex_kernels::linear(pooled.clone(), &self.w_policy, &self.b_policy);
        let Some(logits) = hooks.visit(HookSite::UnembedOut, logits, [Batch, Hidden])? else {
            return Ok(None);
        };
        let value = crate::flex_kernels::linear(pooled, &self.w_value, &self.b_value).tanh();
        Ok(Some(ChessPolicyOutput {
            policy_logits: logits,
            value,
        }))
    }

    /// The most likely legal move of each example, as the policy sees it.
    pub fn predict_moves(
        &self,
        examples: &[(Chess, u32, u32)],
    ) -> Result<Vec<ChessMove>, ModelError> {
        let input = self.encode(examples)?;
        let out = self.run_with_hooks(&input, &mut Hooks::new())?;
        let masked = out
            .policy_logits
            .mask_fill(input.legal.bool_not(), f32::NEG_INFINITY);
        let best = to_host(masked.argmax(1).float());
        examples
            .iter()
            .zip(best)
            .map(|((position, _, _), action)| {
                position.action_move(action as usize).ok_or_else(|| {
                    ModelError::Input(format!(
                        "action {action} is no move in {}",
                        position.position_string()
                    ))
                })
            })
            .collect()
    }

    /// Saves weights and config to one safetensors file, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let tensors: Vec<_> = self
            .named_params()
            .iter()
            .map(|(n, t)| host_tensor(n.clone(), t))
            .collect();
        write_tensors(
            path.as_ref(),
            &tensors,
            &serde_json::json!({"format": "kibitzer-chess-policy-v1", "config": self.config}),
        )
    }

    /// Loads a file written by [`ChessPolicy::save`].
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<ChessPolicy, ModelError> {
        let mut file = TensorFile::open(path.as_ref())?;
        let meta = kibitzer_metadata(&file)?;
        let config: ChessPolicyConfig = serde_json::from_value(meta["config"].clone())
            .map_err(|e| ModelError::format(path.as_ref(), format!("config: {e}")))?;
        let template = ChessPolicy::new(config, device)?;
        let mut loaded = Vec::new();
        for (name, t) in template.named_params() {
            let [r, c] = t.dims();
            loaded.push(from_host(file.take(&name, &[r, c])?, r, c, device));
        }
        file.finish(
            |_| false,
            |_| "not a weight of a chess policy of this config".into(),
        )?;
        Ok(template.with_params(loaded))
    }
}

impl HookedModel for ChessPolicy {
    type Input = ChessInput;
    type Output = ChessPolicyOutput;

    fn sites(&self) -> Vec<HookSite> {
        let mut sites = HookSite::transformer_sites(self.config.n_layers, true, true);
        sites.insert(2, HookSite::RatingEmbed);
        sites
    }

    fn forward_hooked(
        &self,
        input: &ChessInput,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<ChessPolicyOutput>, HookError> {
        let [b, s] = input.pieces.dims();
        if s != SQUARES || input.own_rating.dims() != [b] || input.opponent_rating.dims() != [b] {
            return Err(HookError::Input(format!(
                "chess input: pieces {:?} (expected [batch, 64]), ratings {:?} and {:?} (expected [{b}])",
                input.pieces.dims(),
                input.own_rating.dims(),
                input.opponent_rating.dims()
            )));
        }
        self.run(input, hooks)
    }

    fn bytes_per_example(&self) -> usize {
        let c = &self.config;
        4 * (SQUARES * (10 * c.d_model + 3 * c.d_mlp + 3 * c.n_heads * SQUARES) + 2 * NUM_ACTIONS)
    }
}

/// One training example: a position, the ratings, the move played and the
/// game's result for the side to move.
#[derive(Clone, Debug)]
pub struct ChessExample {
    /// The position.
    pub position: Chess,
    /// Rating of the side to move.
    pub own_rating: u32,
    /// Rating of the opponent.
    pub opponent_rating: u32,
    /// The move played.
    pub played: ChessMove,
    /// Result for the side to move: 1 win, 0 draw, -1 loss.
    pub result: f32,
}

/// The two terms of the chess policy's loss on one batch.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChessLoss {
    /// Cross-entropy of the played move (illegal moves masked out).
    pub policy: f64,
    /// Mean squared error of the value.
    pub value: f64,
}

/// Trains a [`ChessPolicy`] with AdamW on played moves and results.
#[derive(Clone, Debug)]
pub struct ChessPolicyTrainer {
    /// The policy.
    pub policy: ChessPolicy,
    adam: AdamW,
    /// Learning rate.
    pub lr: f64,
}

impl ChessPolicyTrainer {
    /// A trainer at learning rate `lr`.
    pub fn new(
        policy: ChessPolicy,
        lr: f64,
        adamw: AdamWConfig,
    ) -> Result<ChessPolicyTrainer, ModelError> {
        adamw.validate()?;
        if lr.is_nan() || lr <= 0.0 {
            return Err(ModelError::Config(format!("lr must be positive, got {lr}")));
        }
        Ok(ChessPolicyTrainer {
            policy,
            adam: AdamW::new(adamw),
            lr,
        })
    }

    /// One optimiser step: cross-entropy of the played move over the legal
    /// moves, plus the value's squared error.
    pub fn train_step(&mut self, batch: &[ChessExample]) -> Result<ChessLoss, ModelError> {
        let examples: Vec<(Chess, u32, u32)> = batch
            .iter()
            .map(|e| (e.position.clone(), e.own_rating, e.opponent_rating))
            .collect();
        let input = self.policy.encode(&examples)?;
        let n = batch.len();
        let mut targets = Vec::with_capacity(n);
        for (i, e) in batch.iter().enumerate() {
            if !e.position.legal_moves().contains(&e.played) {
                return Err(ModelError::Input(format!(
                    "example {i}: {} is not legal in {}",
                    e.played,
                    e.position.position_string()
                )));
            }
            if !(-1.0..=1.0).contains(&e.result) {
                return Err(ModelError::Input(format!(
                    "example {i}: result {} is outside [-1, 1]",
                    e.result
                )));
            }
            targets.push(e.position.action_index(e.played) as i64);
        }
        let device = self.policy.device();
        let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), &device);
        let results = from_host(batch.iter().map(|e| e.result).collect(), n, 1, &device);
        let mut terms = None;
        let (_, grads) = gradients(&self.policy, |policy| -> Result<Tensor<1>, ModelError> {
            let out = policy
                .run(&input, &mut Hooks::new())?
                .expect("no hooks, so the pass runs to the end");
            // Illegal moves get a large negative logit (not -inf: their
            // gradient must stay finite) before the softmax.
            let logits = out
                .policy_logits
                .mask_fill(input.legal.clone().bool_not(), -1e9);
            let log_probs = log_softmax(logits, 1);
            let policy_loss = log_probs
                .gather(1, targets.clone())
                .sum()
                .neg()
                .div_scalar(n as f32);
            let value_loss = (out.value - results.clone()).square().mean();
            terms = Some((
                policy_loss.clone().detach().inner(),
                value_loss.clone().detach().inner(),
            ));
            Ok(policy_loss + value_loss)
        })?;
        let (p, v) = terms.expect("the loss closure ran");
        let loss = ChessLoss {
            policy: kibitzer_sae::ops::scalar(p),
            value: kibitzer_sae::ops::scalar(v),
        };
        if !loss.policy.is_finite() || !loss.value.is_finite() {
            return Err(ModelError::NonFinite {
                step: self.adam.steps(),
                what: "the chess policy loss".into(),
            });
        }
        self.policy = self.adam.step(&self.policy, grads, self.lr)?.0;
        Ok(loss)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
