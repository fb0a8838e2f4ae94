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
use kibitzer_games::chess::pgn::GameResult;
use kibitzer_games::chess::rated::RatedGame;
use kibitzer_games::chess::{Chess, ChessMove, ENCODING_PLANES, NUM_ACTIONS, SQUARES};
use kibitzer_games::{Game, Player};
use kibitzer_hooks::{Axis, HookError, HookSite, HookedModel, Hooks, LnHook};
use kibitzer_sae::ops::{from_host, to_host};
use std::path::Path;

/// The format string of [`ChessPolicyTrainer::save_checkpoint`]'s files.
pub const CHECKPOINT_FORMAT: &str = "kibitzer-chess-policy-checkpoint-v1";

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
    /// How the square tokens become move logits. Files saved before this
    /// field existed hold the pooled head.
    #[serde(default = "PolicyHead::pooled")]
    pub policy_head: PolicyHead,
}

/// How a [`ChessPolicy`] turns its square tokens into move logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyHead {
    /// A linear map of the mean over squares to every action: each move's
    /// logit must be read out of one pooled vector.
    Pooled,
    /// A move from square `f` to square `t` scores `q_f . k_t / sqrt(d_key)`
    /// with queries and keys projected from the square tokens (the
    /// attention policy head of Leela Chess Zero): the logit of a move is
    /// a function of the two squares it joins. Underpromotions, which share
    /// their squares with queen promotions, come from the pooled vector.
    SquarePairs {
        /// Width of the queries and keys.
        d_key: usize,
    },
}

impl PolicyHead {
    fn pooled() -> PolicyHead {
        PolicyHead::Pooled
    }
}

/// Actions that are a from-square and a to-square (all but the
/// underpromotions, which follow them).
const SQUARE_PAIR_ACTIONS: usize = SQUARES * SQUARES;

impl ChessPolicyConfig {
    /// A policy with Maia-2's rating buckets, GELU, eps 1e-5, seed 0 and the
    /// square-pair policy head with keys as wide as the tokens.
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
            policy_head: PolicyHead::SquarePairs { d_key: d_model },
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
        if let PolicyHead::SquarePairs { d_key: 0 } = self.policy_head {
            return Err(ModelError::Config(
                "policy_head.d_key must be at least 1".into(),
            ));
        }
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
    /// Pooled head: every action. Square-pair head: the underpromotions.
    w_policy: Tensor<2>,
    b_policy: Tensor<2>,
    /// Square-pair head: queries and keys of the squares.
    w_query: Option<Tensor<2>>,
    w_key: Option<Tensor<2>>,
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
        if let Some(w) = &mut self.w_query {
            f("policy.W_query", w);
        }
        if let Some(w) = &mut self.w_key {
            f("policy.W_key", w);
        }
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
        let key_width = match config.policy_head {
            PolicyHead::Pooled => None,
            PolicyHead::SquarePairs { d_key } => Some(d_key),
        };
        let pair_actions = if key_width.is_some() {
            SQUARE_PAIR_ACTIONS
        } else {
            0
        };
        Ok(ChessPolicy {
            w_piece: init.normal(1 + ENCODING_PLANES, d, std),
            w_square: init.normal(SQUARES, d, std),
            w_own: init.normal(config.buckets(), d, std),
            w_opp: init.normal(config.buckets(), d, std),
            blocks: (0..config.n_layers)
                .map(|_| Block::init(&shape, &mut init, std))
                .collect(),
            ln_final: (init.ones(1, d), init.zeros(1, d)),
            w_policy: init.normal(d, NUM_ACTIONS - pair_actions, std),
            b_policy: init.zeros(1, NUM_ACTIONS - pair_actions),
            w_query: key_width.map(|k| init.normal(d, k, std)),
            w_key: key_width.map(|k| init.normal(d, k, std)),
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
        let pooled: Tensor<2> = x.clone().mean_dim(1).reshape([b, d]);
        let Some(pooled) = hooks.visit(HookSite::UnembedIn, pooled, [Batch, Hidden])? else {
            return Ok(None);
        };
        let pooled_logits =
            crate::flex_kernels::linear(pooled.clone(), &self.w_policy, &self.b_policy);
        let logits = match (&self.w_query, &self.w_key) {
            (Some(wq), Some(wk)) => {
                let k_width = wq.dims()[1];
                let project = |w: &Tensor<2>| -> Tensor<3> {
                    x.clone()
                        .reshape([b * s, d])
                        .matmul(w.clone())
                        .reshape([b, s, k_width])
                };
                let (q, k) = (project(wq), project(wk));
                let pairs = q
                    .matmul(k.swap_dims(1, 2))
                    .div_scalar((k_width as f32).sqrt())
                    .reshape([b, SQUARE_PAIR_ACTIONS]);
                Tensor::cat(vec![pairs, pooled_logits], 1)
            }
            _ => pooled_logits,
        };
        let Some(logits) = hooks.visit(HookSite::UnembedOut, logits, [Batch, Hidden])? else {
            return Ok(None);
        };
        let value = crate::flex_kernels::linear(pooled, &self.w_value, &self.b_value).tanh();
        Ok(Some(ChessPolicyOutput {
            policy_logits: logits,
            value,
        }))
    }

    /// Log-probabilities of the policy over the legal moves of each
    /// position, `[batch, actions]`, from a pass under `hooks` (so the
    /// caller can intervene: `Hooks::new().with(site, Hook::zero())`, or
    /// cache sites and take the cache afterwards).
    ///
    /// The logits of illegal moves are set to `f32::NEG_INFINITY` before
    /// the log-softmax, so their entries are exactly `f32::NEG_INFINITY`
    /// (probability 0) and each row's legal probabilities sum to 1. (The
    /// training loss masks with `-1e9` instead, to keep gradients finite;
    /// this pass is for inference only.)
    ///
    /// Errors if `input.legal` is not `[batch, actions]`, if a hook names a
    /// site this policy lacks, or if the hooks stop the pass early
    /// ([`Hooks::stopping_early`]): there are then no logits.
    pub fn log_probs(
        &self,
        input: &ChessInput,
        hooks: &mut Hooks<'_>,
    ) -> Result<Tensor<2>, ModelError> {
        let [b, _] = input.pieces.dims();
        if input.legal.dims() != [b, NUM_ACTIONS] {
            return Err(ModelError::Input(format!(
                "chess input: legal mask {:?}, expected [{b}, {NUM_ACTIONS}]",
                input.legal.dims()
            )));
        }
        const STOPPED: &str = "chess policy log_probs: the hooks stopped the pass early \
            (Hooks::stopping_early), so there are no policy logits; run without stopping early";
        let out = self.run_with_hooks(input, hooks).map_err(|e| match e {
            HookError::Incomplete(_) => ModelError::Input(STOPPED.into()),
            e => e.into(),
        })?;
        let masked = out
            .policy_logits
            .mask_fill(input.legal.clone().bool_not(), f32::NEG_INFINITY);
        Ok(log_softmax(masked, 1))
    }

    /// The most likely legal move of each example, as the policy sees it.
    pub fn predict_moves(
        &self,
        examples: &[(Chess, u32, u32)],
    ) -> Result<Vec<ChessMove>, ModelError> {
        self.predict_moves_with_hooks(examples, &mut Hooks::new())
    }

    /// The most likely legal move of each example under `hooks` (an
    /// intervention, a cache): the argmax of [`ChessPolicy::log_probs`].
    pub fn predict_moves_with_hooks(
        &self,
        examples: &[(Chess, u32, u32)],
        hooks: &mut Hooks<'_>,
    ) -> Result<Vec<ChessMove>, ModelError> {
        let input = self.encode(examples)?;
        let best = to_host(self.log_probs(&input, hooks)?.argmax(1).float());
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
        let policy = file.take_params(ChessPolicy::new(config, device)?, "", device)?;
        file.finish(
            |_| false,
            |_| "not a weight of a chess policy of this config".into(),
        )?;
        Ok(policy)
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
        4 * (SQUARES * (10 * c.d_model + 3 * c.d_mlp + 3 * c.n_heads * SQUARES) + 4 * NUM_ACTIONS)
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

impl ChessExample {
    /// The examples of a rated game: one per move, the position before it
    /// with the side to move's Elo as `own_rating`, the other side's as
    /// `opponent_rating`, the move as `played`, and the game's result for
    /// the side to move (`1-0`: 1 for White, -1 for Black; `0-1` the
    /// reverse; `1/2-1/2` 0). An unfinished or unknown result (`*`) also
    /// gives 0, which the value head then learns as a draw: drop such games
    /// ([`GameResult::Unknown`]) first if that is unwanted.
    ///
    /// The game is replayed from its `start_fen` (or the standard start).
    /// Each position is a fresh [`Chess`] starting there, without the
    /// game's history: the policy sees only the board and the ratings.
    /// A game without moves gives no examples.
    ///
    /// Errors, naming the game as `game {index_hint}` (the caller's index,
    /// e.g. its line in a file), if either player's Elo is unknown (a
    /// skill-conditioned policy needs both) or if the game does not replay.
    pub fn from_rated_game(
        game: &RatedGame,
        index_hint: usize,
    ) -> Result<Vec<ChessExample>, ModelError> {
        let (white, black) = match (game.white_elo, game.black_elo) {
            (Some(w), Some(b)) => (w, b),
            (w, b) => {
                let missing = match (w, b) {
                    (None, None) => "White's and Black's Elo are",
                    (None, _) => "White's Elo is",
                    _ => "Black's Elo is",
                };
                return Err(ModelError::Input(format!(
                    "game {index_hint}: {missing} unknown; a skill-conditioned policy needs both players' ratings"
                )));
            }
        };
        let white_result = match game.result {
            GameResult::WhiteWins => 1.0,
            GameResult::BlackWins => -1.0,
            GameResult::Draw | GameResult::Unknown => 0.0,
        };
        let replayed = game
            .replay()
            .map_err(|e| ModelError::Input(format!("game {index_hint}: {e}")))?;
        Ok(replayed
            .positions()
            .into_iter()
            .zip(&game.moves)
            .map(|(position, &played)| {
                let position = Chess::from_position(position);
                let (own_rating, opponent_rating, result) = match position.to_move() {
                    Player::First => (white, black, white_result),
                    Player::Second => (black, white, -white_result),
                };
                ChessExample {
                    position,
                    own_rating,
                    opponent_rating,
                    played,
                    result,
                }
            })
            .collect())
    }
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
        self.train_step_weighted(batch, 1.0)
    }

    /// One optimiser step on the policy's cross-entropy plus `value_weight`
    /// times the value's squared error (0 trains the policy head alone; 1
    /// is [`ChessPolicyTrainer::train_step`]). The returned terms are
    /// unweighted. `value_weight` must be finite and at least 0.
    pub fn train_step_weighted(
        &mut self,
        batch: &[ChessExample],
        value_weight: f32,
    ) -> Result<ChessLoss, ModelError> {
        if !value_weight.is_finite() || value_weight < 0.0 {
            return Err(ModelError::Config(format!(
                "value_weight must be finite and at least 0, got {value_weight}"
            )));
        }
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
            Ok(policy_loss + value_loss.mul_scalar(value_weight))
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

    /// AdamW steps taken (restored by [`ChessPolicyTrainer::resume`]).
    pub fn steps(&self) -> u64 {
        self.adam.steps()
    }

    /// Writes everything needed to resume to one safetensors file,
    /// atomically: the weights (`param/<name>`), AdamW's moments
    /// (`adam_m/<name>`, `adam_v/<name>`, none before the first step), and
    /// as metadata the step, the learning rate, the AdamW settings, the
    /// policy's config and the caller's `extra` (its run config, loss
    /// history, data position...), which [`ChessPolicyTrainer::resume`]
    /// hands back untouched.
    pub fn save_checkpoint(
        &self,
        path: impl AsRef<Path>,
        extra: &serde_json::Value,
    ) -> Result<(), ModelError> {
        let tensors = self.adam.checkpoint_tensors(&self.policy);
        let meta = serde_json::json!({
            "format": CHECKPOINT_FORMAT,
            "policy": self.policy.config(),
            "adamw": self.adam.config,
            "step": self.adam.steps(),
            "lr": self.lr,
            "extra": extra,
        });
        write_tensors(path.as_ref(), &tensors, &meta)
    }

    /// Resumes from a checkpoint written by
    /// [`ChessPolicyTrainer::save_checkpoint`]: the trainer (weights,
    /// AdamW state and step, learning rate) and the caller's `extra`.
    /// Training on from here gives the same weights as never stopping.
    ///
    /// A file that cannot be read is [`ModelError::Io`]; anything else
    /// wrong (not safetensors, another format such as a
    /// [`ChessPolicy::save`] file, a missing, misshapen or unexpected
    /// tensor, a bad config) is [`ModelError::Checkpoint`] naming the file
    /// and what is wrong.
    pub fn resume(
        path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<(ChessPolicyTrainer, serde_json::Value), ModelError> {
        let path = path.as_ref();
        Self::read_checkpoint(path, device).map_err(|e| match e {
            e @ (ModelError::Io { .. } | ModelError::Checkpoint { .. }) => e,
            ModelError::Format { message, .. } => ModelError::Checkpoint {
                path: path.to_path_buf(),
                message,
            },
            e => {
                let text = e.to_string();
                let prefix = format!("{}: ", path.display());
                ModelError::Checkpoint {
                    path: path.to_path_buf(),
                    message: text.strip_prefix(&prefix).unwrap_or(&text).to_string(),
                }
            }
        })
    }

    fn read_checkpoint(
        path: &Path,
        device: &Device,
    ) -> Result<(ChessPolicyTrainer, serde_json::Value), ModelError> {
        let mut file = TensorFile::open(path)?;
        let meta = kibitzer_metadata(&file)?;
        let bad = |message: String| ModelError::Checkpoint {
            path: path.to_path_buf(),
            message,
        };
        if meta["format"] != CHECKPOINT_FORMAT {
            let hint = if meta["format"] == "kibitzer-chess-policy-v1" {
                " (a policy's weights alone: read it with ChessPolicy::load)"
            } else {
                ""
            };
            return Err(bad(format!(
                "format is {}, expected {CHECKPOINT_FORMAT}{hint}",
                meta["format"]
            )));
        }
        let field = |name: &str| {
            meta.get(name)
                .cloned()
                .ok_or_else(|| bad(format!("metadata has no `{name}`")))
        };
        let config: ChessPolicyConfig = serde_json::from_value(field("policy")?)
            .map_err(|e| bad(format!("policy config: {e}")))?;
        let adamw: AdamWConfig = serde_json::from_value(field("adamw")?)
            .map_err(|e| bad(format!("adamw config: {e}")))?;
        let step: u64 =
            serde_json::from_value(field("step")?).map_err(|e| bad(format!("step: {e}")))?;
        let lr: f64 = serde_json::from_value(field("lr")?).map_err(|e| bad(format!("lr: {e}")))?;
        let extra = field("extra")?;
        let policy = file.take_params(ChessPolicy::new(config, device)?, "param/", device)?;
        let adam = AdamW::restore(adamw, step, &mut file, &policy.named_params(), device)?;
        file.finish(
            |_| false,
            |_| "not part of a chess policy checkpoint of this config".into(),
        )?;
        let mut trainer = ChessPolicyTrainer::new(policy, lr, adamw)?;
        trainer.adam = adam;
        Ok((trainer, extra))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests;
