//! The AlphaZero Othello network of reference 001: the board flattened to
//! one value per square (+1 a disc of the side to move, -1 an opponent's,
//! 0 empty) into a linear layer of width 256 with batch norm and ReLU, a
//! residual tower of 4 blocks (each a linear layer with batch norm and ReLU
//! added back onto the residual stream), a policy head over the squares
//! plus pass (log-softmax) and a tanh value head. Any even board size.
//!
//! Hook sites (TransformerLens names, `[batch, width]` activations):
//! `hook_embed` (the input layer's output), and per block
//! `blocks.{l}.hook_resid_pre`, `blocks.{l}.hook_mlp_out` (the block's
//! feed-forward branch) and `blocks.{l}.hook_resid_post`. Reference 001's
//! SAEs read its "layer 2 residual stream" (256 wide): `blocks.1.hook_resid_post`
//! if its layers count from 1, `blocks.2.hook_resid_post` if from 0 (the
//! reference does not say).
//!
//! It implements kibitzer-games' MCTS [`Evaluator`] for [`Othello`],
//! evaluating the leaves of a batch in one forward pass.

use crate::error::ModelError;
use crate::params::{
    AdamW, AdamWConfig, Parameterized, TensorFile, gradients, host_tensor, kibitzer_metadata,
    write_tensors,
};
use crate::transformer::Init;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Tensor, TensorData};
use kibitzer_games::Game;
use kibitzer_games::mcts::{Evaluation, Evaluator, EvaluatorError, Policy};
use kibitzer_games::othello::Othello;
use kibitzer_hooks::{Axis, HookError, HookSite, HookedModel, Hooks};
use kibitzer_sae::ops::{from_host, to_host};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The shape of an [`AlphaZeroNet`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlphaZeroConfig {
    /// Board side (an even number from 4 to 8).
    pub board_size: usize,
    /// Width of the residual stream (reference 001: 256).
    pub width: usize,
    /// Residual blocks (reference 001: 4).
    pub n_blocks: usize,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
    /// Batch-norm running-statistics momentum (PyTorch's convention: the
    /// weight of the new batch).
    pub bn_momentum: f64,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl AlphaZeroConfig {
    /// Reference 001's network for a `board_size` board: width 256, 4 blocks.
    pub fn new(board_size: usize) -> AlphaZeroConfig {
        AlphaZeroConfig {
            board_size,
            width: 256,
            n_blocks: 4,
            bn_eps: 1e-5,
            bn_momentum: 0.1,
            seed: 0,
        }
    }

    /// Squares on the board.
    pub fn squares(&self) -> usize {
        self.board_size * self.board_size
    }

    /// Policy entries: the squares, then the pass.
    pub fn actions(&self) -> usize {
        self.squares() + 1
    }

    /// Checks the config, naming the field at fault.
    pub fn validate(&self) -> Result<(), ModelError> {
        if Othello::new(self.board_size).is_err() {
            return Err(ModelError::Config(format!(
                "board_size {} is not an Othello board size here (even, 4 to 8)",
                self.board_size
            )));
        }
        if self.width == 0 || self.n_blocks == 0 {
            return Err(ModelError::Config(
                "width and n_blocks must be at least 1".into(),
            ));
        }
        if self.bn_eps.is_nan() || self.bn_eps <= 0.0 || !(0.0..=1.0).contains(&self.bn_momentum) {
            return Err(ModelError::Config(
                "bn_eps must be positive and bn_momentum in [0, 1]".into(),
            ));
        }
        Ok(())
    }
}

/// A linear layer followed by batch norm (and, in the net, ReLU).
#[derive(Clone, Debug)]
struct DenseBn {
    w: Tensor<2>,
    b: Tensor<2>,
    gamma: Tensor<2>,
    beta: Tensor<2>,
    running_mean: Tensor<2>,
    running_var: Tensor<2>,
}

impl DenseBn {
    fn init(init: &mut Init, fan_in: usize, width: usize) -> DenseBn {
        // PyTorch's nn.Linear default scale (uniform ±1/sqrt(fan_in)) as a
        // normal of the same variance.
        let std = (1.0 / (3.0 * fan_in as f64)).sqrt();
        DenseBn {
            w: init.normal(fan_in, width, std),
            b: init.normal(1, width, std),
            gamma: init.ones(1, width),
            beta: init.zeros(1, width),
            running_mean: init.zeros(1, width),
            running_var: init.ones(1, width),
        }
    }

    fn visit(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        f(&format!("{prefix}.W_in"), &mut self.w);
        f(&format!("{prefix}.b_in"), &mut self.b);
        f(&format!("{prefix}.bn.weight"), &mut self.gamma);
        f(&format!("{prefix}.bn.bias"), &mut self.beta);
    }

    fn visit_buffers(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        f(&format!("{prefix}.bn.running_mean"), &mut self.running_mean);
        f(&format!("{prefix}.bn.running_var"), &mut self.running_var);
    }

    /// `relu(bn(x W + b))`; in training mode with the batch's statistics,
    /// which are returned (detached) for the running averages.
    fn forward(
        &self,
        x: Tensor<2>,
        train: bool,
        eps: f64,
    ) -> (Tensor<2>, Option<(Tensor<2>, Tensor<2>)>) {
        let h = crate::flex_kernels::linear(x, &self.w, &self.b);
        let (mean, var, stats) = if train {
            let mean = h.clone().mean_dim(0);
            let var = (h.clone() - mean.clone()).square().mean_dim(0);
            let stats = Some((mean.clone().detach().inner(), var.clone().detach().inner()));
            (mean, var, stats)
        } else {
            (self.running_mean.clone(), self.running_var.clone(), None)
        };
        let normalized = (h - mean) / var.add_scalar(eps).sqrt();
        (
            relu(normalized * self.gamma.clone() + self.beta.clone()),
            stats,
        )
    }
}

/// The AlphaZero Othello network. See the module docs.
#[derive(Clone, Debug)]
pub struct AlphaZeroNet {
    config: AlphaZeroConfig,
    input: DenseBn,
    blocks: Vec<DenseBn>,
    w_pi: Tensor<2>,
    b_pi: Tensor<2>,
    w_v: Tensor<2>,
    b_v: Tensor<2>,
}

/// The policy and value of a batch of positions.
#[derive(Clone, Debug)]
pub struct AlphaZeroOutput {
    /// Log-probabilities over the squares and the pass, `[batch, squares + 1]`.
    pub log_policy: Tensor<2>,
    /// Values in `(-1, 1)` for the side to move, `[batch, 1]`.
    pub value: Tensor<2>,
}

impl Parameterized for AlphaZeroNet {
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        self.input.visit("input", f);
        for (l, block) in self.blocks.iter_mut().enumerate() {
            block.visit(&format!("blocks.{l}"), f);
        }
        f("policy.W_pi", &mut self.w_pi);
        f("policy.b_pi", &mut self.b_pi);
        f("value.W_v", &mut self.w_v);
        f("value.b_v", &mut self.b_v);
    }
}

impl AlphaZeroNet {
    /// A freshly initialised net, seeded by `config.seed`.
    pub fn new(config: AlphaZeroConfig, device: &Device) -> Result<AlphaZeroNet, ModelError> {
        config.validate()?;
        let mut init = Init::new(config.seed, device);
        let (s, w) = (config.squares(), config.width);
        let input = DenseBn::init(&mut init, s, w);
        let blocks = (0..config.n_blocks)
            .map(|_| DenseBn::init(&mut init, w, w))
            .collect();
        let std = (1.0 / (3.0 * w as f64)).sqrt();
        let (w_pi, b_pi) = (
            init.normal(w, config.actions(), std),
            init.normal(1, config.actions(), std),
        );
        let (w_v, b_v) = (init.normal(w, 1, std), init.normal(1, 1, std));
        Ok(AlphaZeroNet {
            config,
            input,
            blocks,
            w_pi,
            b_pi,
            w_v,
            b_v,
        })
    }

    /// The config.
    pub fn config(&self) -> &AlphaZeroConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.w_pi.device()
    }

    /// The same net on another device.
    pub fn to_device(&self, device: &Device) -> AlphaZeroNet {
        let mut moved = self.map_params(|_, t| t.to_device(device));
        moved.visit_buffers_mut(&mut |_, t| *t = t.clone().to_device(device));
        moved
    }

    fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor<2>)) {
        self.input.visit_buffers("input", f);
        for (l, block) in self.blocks.iter_mut().enumerate() {
            block.visit_buffers(&format!("blocks.{l}"), f);
        }
    }

    /// Encodes positions (+1 mine, -1 yours, 0 empty) as a `[n, squares]`
    /// batch on the net's device; every position must be of the net's size.
    pub fn encode(&self, positions: &[Othello]) -> Result<Tensor<2>, ModelError> {
        let s = self.config.squares();
        let mut values = vec![0f32; positions.len() * s];
        for (i, (position, out)) in positions.iter().zip(values.chunks_mut(s)).enumerate() {
            if position.size() != self.config.board_size {
                return Err(ModelError::Input(format!(
                    "position {i} is {0}x{0}, the net plays {1}x{1}",
                    position.size(),
                    self.config.board_size
                )));
            }
            position.encode_signed(out);
        }
        Ok(from_host(values, positions.len(), s, &self.device()))
    }

    /// The forward pass; in training mode batch norm uses (and returns) the
    /// batch's statistics.
    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        boards: &Tensor<2>,
        train: bool,
        hooks: &mut Hooks<'_>,
    ) -> Result<(Option<AlphaZeroOutput>, Vec<(Tensor<2>, Tensor<2>)>), HookError> {
        use Axis::{Batch, Hidden};
        let eps = self.config.bn_eps;
        let mut stats = Vec::new();
        let (x, s) = self.input.forward(boards.clone(), train, eps);
        stats.extend(s);
        let Some(mut x) = hooks.visit(HookSite::Embed, x, [Batch, Hidden])? else {
            return Ok((None, stats));
        };
        for (l, block) in self.blocks.iter().enumerate() {
            let Some(pre) = hooks.visit(HookSite::resid_pre(l), x, [Batch, Hidden])? else {
                return Ok((None, stats));
            };
            let (branch, s) = block.forward(pre.clone(), train, eps);
            stats.extend(s);
            let Some(branch) = hooks.visit(HookSite::mlp_out(l), branch, [Batch, Hidden])? else {
                return Ok((None, stats));
            };
            let Some(post) = hooks.visit(HookSite::resid_post(l), pre + branch, [Batch, Hidden])?
            else {
                return Ok((None, stats));
            };
            x = post;
        }
        let log_policy = log_softmax(
            crate::flex_kernels::linear(x.clone(), &self.w_pi, &self.b_pi),
            1,
        );
        let value = crate::flex_kernels::linear(x, &self.w_v, &self.b_v).tanh();
        Ok((Some(AlphaZeroOutput { log_policy, value }), stats))
    }

    /// Policy and value of `positions` (inference mode: batch norm uses its
    /// running statistics).
    pub fn predict(&self, positions: &[Othello]) -> Result<AlphaZeroOutput, ModelError> {
        let boards = self.encode(positions)?;
        Ok(self.run_with_hooks(&boards, &mut Hooks::new())?)
    }

    /// Saves weights, batch-norm statistics and config to one safetensors
    /// file (tensors `[in, out]`, biases and norms `[1, n]`), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let mut tensors: Vec<_> = self
            .named_params()
            .iter()
            .map(|(n, t)| host_tensor(n.clone(), t))
            .collect();
        let mut copy = self.clone();
        copy.visit_buffers_mut(&mut |n, t| tensors.push(host_tensor(n.to_string(), t)));
        write_tensors(
            path.as_ref(),
            &tensors,
            &serde_json::json!({"format": "kibitzer-alphazero-v1", "config": self.config}),
        )
    }

    /// Loads a file written by [`AlphaZeroNet::save`]; a missing, extra or
    /// misshapen tensor is an error naming it.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<AlphaZeroNet, ModelError> {
        let bytes = std::fs::read(path.as_ref()).map_err(|e| ModelError::io(path.as_ref(), e))?;
        AlphaZeroNet::from_bytes(path.as_ref(), &bytes, device)
    }

    /// [`AlphaZeroNet::load`] from the bytes of such a file (weights
    /// embedded in a binary); `name` names them in errors.
    pub fn from_bytes(
        name: impl AsRef<Path>,
        bytes: &[u8],
        device: &Device,
    ) -> Result<AlphaZeroNet, ModelError> {
        let mut file = TensorFile::from_bytes(name.as_ref(), bytes)?;
        let meta = kibitzer_metadata(&file)?;
        let config: AlphaZeroConfig = serde_json::from_value(meta["config"].clone())
            .map_err(|e| ModelError::format(name.as_ref(), format!("config: {e}")))?;
        AlphaZeroNet::from_file(config, &mut file, device)
    }

    fn from_file(
        config: AlphaZeroConfig,
        file: &mut TensorFile,
        device: &Device,
    ) -> Result<AlphaZeroNet, ModelError> {
        let mut net = AlphaZeroNet::new(config, device)?;
        let mut failure = None;
        let mut take = |name: &str, t: &mut Tensor<2>| {
            if failure.is_some() {
                return;
            }
            let [r, c] = t.dims();
            match file.take(name, &[r, c]) {
                Ok(data) => *t = from_host(data, r, c, device),
                Err(e) => failure = Some(e),
            }
        };
        net.visit_params_mut(&mut take);
        net.visit_buffers_mut(&mut take);
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(net)
    }
}

impl HookedModel for AlphaZeroNet {
    /// Boards `[batch, squares]`: +1 a disc of the side to move, -1 an opponent's, 0 empty.
    type Input = Tensor<2>;
    type Output = AlphaZeroOutput;

    fn sites(&self) -> Vec<HookSite> {
        let mut sites = vec![HookSite::Embed];
        for l in 0..self.config.n_blocks {
            sites.extend([
                HookSite::resid_pre(l),
                HookSite::mlp_out(l),
                HookSite::resid_post(l),
            ]);
        }
        sites
    }

    fn forward_hooked(
        &self,
        boards: &Tensor<2>,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<AlphaZeroOutput>, HookError> {
        let [_, s] = boards.dims();
        if s != self.config.squares() {
            return Err(HookError::Input(format!(
                "boards have {s} squares, the net reads {}",
                self.config.squares()
            )));
        }
        Ok(self.run(boards, false, hooks)?.0)
    }

    fn bytes_per_example(&self) -> usize {
        4 * (self.config.squares()
            + (3 * self.config.n_blocks + 2) * self.config.width
            + 2 * self.config.actions())
    }
}

impl Evaluator<Othello> for AlphaZeroNet {
    /// One forward pass for the whole batch of leaves; the policy over
    /// every action (softmax), the value for the side to move.
    fn evaluate(
        &mut self,
        positions: &[Othello],
        _rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Evaluation>, EvaluatorError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.predict(positions).map_err(EvaluatorError::new)?;
        let actions = self.config.actions();
        let probs = to_host(out.log_policy.exp());
        let values = to_host(out.value);
        Ok(probs
            .chunks(actions)
            .zip(values)
            .map(|(p, value)| Evaluation {
                policy: Policy::OverActions(p.to_vec()),
                value,
            })
            .collect())
    }
}

/// Othello positions as an [`ExampleSource`](kibitzer_hooks::ExampleSource)
/// for [`AlphaZeroNet`]: harvest its activations over a set of positions
/// (one row per position) with [`kibitzer_hooks::harvest()`].
#[derive(Clone, Debug)]
pub struct PositionSource {
    positions: Vec<Othello>,
    board_size: usize,
    device: Device,
    cursor: usize,
}

impl PositionSource {
    /// The positions, for `net` (every position must be of its size).
    pub fn new(net: &AlphaZeroNet, positions: Vec<Othello>) -> Result<PositionSource, ModelError> {
        if let Some(i) = positions
            .iter()
            .position(|p| p.size() != net.config.board_size)
        {
            return Err(ModelError::Input(format!(
                "position {i} is {0}x{0}, the net plays {1}x{1}",
                positions[i].size(),
                net.config.board_size
            )));
        }
        Ok(PositionSource {
            positions,
            board_size: net.config.board_size,
            device: net.device(),
            cursor: 0,
        })
    }
}

impl kibitzer_hooks::ExampleSource<Tensor<2>> for PositionSource {
    fn next_examples(
        &mut self,
        max: usize,
    ) -> Result<Option<kibitzer_hooks::Examples<Tensor<2>>>, HookError> {
        let left = self.positions.len() - self.cursor;
        if left == 0 {
            return Ok(None);
        }
        let count = left.min(max.max(1));
        let squares = self.board_size * self.board_size;
        let mut values = vec![0f32; count * squares];
        for (position, out) in self.positions[self.cursor..self.cursor + count]
            .iter()
            .zip(values.chunks_mut(squares))
        {
            position.encode_signed(out);
        }
        let first = self.cursor as u64;
        self.cursor += count;
        Ok(Some(kibitzer_hooks::Examples {
            input: Tensor::from_data(TensorData::new(values, [count, squares]), &self.device),
            first_example: first,
            count,
            keep: None,
        }))
    }
}

/// A batch of training examples: positions with their targets.
#[derive(Clone, Debug, Default)]
pub struct AlphaZeroBatch {
    /// Boards, `squares` values each (+1 / -1 / 0 from the side to move).
    pub boards: Vec<f32>,
    /// Policy targets (MCTS visit distributions), `squares + 1` each.
    pub policies: Vec<f32>,
    /// Value targets in `[-1, 1]` (the game's result for the side to move).
    pub values: Vec<f32>,
}

impl AlphaZeroBatch {
    /// Adds one example from a position, its MCTS policy and the result.
    pub fn push(&mut self, position: &Othello, policy: &[f32], value: f32) {
        let start = self.boards.len();
        self.boards.resize(start + position.squares(), 0.0);
        position.encode_signed(&mut self.boards[start..]);
        self.policies.extend_from_slice(policy);
        self.values.push(value);
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The two terms of the AlphaZero loss on one batch.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlphaZeroLoss {
    /// Cross-entropy of the policy head against the targets.
    pub policy: f64,
    /// Mean squared error of the value head.
    pub value: f64,
}

/// Trains an [`AlphaZeroNet`] with AdamW on (position, policy, value)
/// batches: loss = `-sum(pi * log p) / n + mean((v - z)^2)`, as in
/// alpha-zero-general, whose training loop reference 001 uses.
#[derive(Clone, Debug)]
pub struct AlphaZeroTrainer {
    /// The net.
    pub net: AlphaZeroNet,
    adam: AdamW,
    /// Learning rate.
    pub lr: f64,
}

impl AlphaZeroTrainer {
    /// A trainer with learning rate `lr` (alpha-zero-general: 1e-3, no weight decay).
    pub fn new(
        net: AlphaZeroNet,
        lr: f64,
        adamw: AdamWConfig,
    ) -> Result<AlphaZeroTrainer, ModelError> {
        adamw.validate()?;
        if lr.is_nan() || lr <= 0.0 {
            return Err(ModelError::Config(format!("lr must be positive, got {lr}")));
        }
        Ok(AlphaZeroTrainer {
            net,
            adam: AdamW::new(adamw),
            lr,
        })
    }

    /// One optimiser step on `batch`; batch norm's running statistics move
    /// towards the batch's. Needs two examples or more (batch statistics).
    pub fn train_step(&mut self, batch: &AlphaZeroBatch) -> Result<AlphaZeroLoss, ModelError> {
        let (s, a) = (self.net.config.squares(), self.net.config.actions());
        let n = batch.len();
        if n < 2 || batch.boards.len() != n * s || batch.policies.len() != n * a {
            return Err(ModelError::Input(format!(
                "a training batch needs at least 2 examples of {s} board values and {a} policy values each; got {} values, {} boards, {} policy values",
                n,
                batch.boards.len(),
                batch.policies.len()
            )));
        }
        if let Some(i) = batch.values.iter().position(|v| !(-1.0..=1.0).contains(v)) {
            return Err(ModelError::Input(format!(
                "value target {i} is {}, outside [-1, 1]",
                batch.values[i]
            )));
        }
        let device = self.net.device();
        let boards = from_host(batch.boards.clone(), n, s, &device);
        let pi = from_host(batch.policies.clone(), n, a, &device);
        let z = from_host(batch.values.clone(), n, 1, &device);
        let mut stats = Vec::new();
        let mut terms = None;
        let (_, grads) = gradients(&self.net, |net| -> Result<Tensor<1>, ModelError> {
            let (out, batch_stats) = net.run(&boards, true, &mut Hooks::new())?;
            let out = out.expect("no hooks, so the pass runs to the end");
            stats = batch_stats;
            let policy = (pi.clone() * out.log_policy)
                .sum()
                .neg()
                .div_scalar(n as f32);
            let value = (out.value - z.clone()).square().mean();
            terms = Some((
                policy.clone().detach().inner(),
                value.clone().detach().inner(),
            ));
            Ok(policy + value)
        })?;
        let (policy, value) = terms.expect("the loss closure ran");
        let loss = AlphaZeroLoss {
            policy: kibitzer_sae::ops::scalar(policy),
            value: kibitzer_sae::ops::scalar(value),
        };
        if !loss.policy.is_finite() || !loss.value.is_finite() {
            return Err(ModelError::NonFinite {
                step: self.adam.steps(),
                what: "the AlphaZero loss".into(),
            });
        }
        let (net, _) = self.adam.step(&self.net, grads, self.lr)?;
        self.net = net;
        // Running statistics: PyTorch's update, with the unbiased batch variance.
        let momentum = self.net.config.bn_momentum as f32;
        let unbias = n as f32 / (n as f32 - 1.0);
        let mut index = 0;
        self.net.visit_buffers_mut(&mut |name, t| {
            let (mean, var) = &stats[index / 2];
            *t = if name.ends_with("running_mean") {
                t.clone().mul_scalar(1.0 - momentum) + mean.clone().mul_scalar(momentum)
            } else {
                t.clone().mul_scalar(1.0 - momentum) + var.clone().mul_scalar(momentum * unbias)
            };
            index += 1;
        });
        Ok(loss)
    }
}

pub mod coach;

#[cfg(all(test, feature = "flex"))]
mod tests;
