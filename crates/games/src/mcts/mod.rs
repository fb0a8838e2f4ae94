//! Monte Carlo tree search with PUCT (AlphaZero's selection rule), generic
//! over any [`Game`] and any [`Evaluator`].
//!
//! # The search
//!
//! Each simulation walks from the root, at every node taking the child `a`
//! that maximises
//!
//! ```text
//! Q(a) + c_puct * P(a) * sqrt(max(1, N)) / (1 + N(a))
//! ```
//!
//! (`N` the visits of the node, `N(a)`, `Q(a)` the visits and mean value of
//! the child for the side to move, `P(a)` its prior; an unvisited child's `Q`
//! is the first-play urgency, [`Fpu`]). It stops at a position not yet in the
//! tree, asks the evaluator for its prior and value, adds it, and backs the
//! value up the path. A finished game is scored by its outcome instead.
//!
//! * **Batches.** Up to `leaf_batch_size` leaves are gathered before one call
//!   to the evaluator. While a leaf waits, every node on its path carries a
//!   virtual loss (`virtual_loss` per waiting simulation, counted as a visit
//!   that lost), so the next walks spread out. A walk that reaches a leaf
//!   already waiting ends the batch early.
//! * **Proofs** (MCTS-Solver). Finished games are exact; a node whose child
//!   wins for the side to move is a proven win, one whose children all lose
//!   a proven loss, and so on up. Proven-losing moves are not explored, a
//!   proven win is always played (the fastest one), and the search stops
//!   once the root is proven. This makes mates and endgames exact once the
//!   tree covers them.
//! * **Noise.** With `dirichlet_epsilon > 0` the root priors become
//!   `(1 - eps) * P + eps * Dir(alpha)` once per root (AlphaZero self-play).
//! * **Move choice.** Visit counts raised to `1 / temperature`, sampled;
//!   temperature 0 takes the most visited move (ties: the better mean value,
//!   then the first). The temperature applies while the position's ply is
//!   below `temperature_plies`, 0 after.
//! * **Tree reuse.** [`Mcts::advance`] moves the root to the child of the
//!   move played, keeping its subtree; [`Mcts::search`] on a position one or
//!   two plies below the root finds it there, otherwise starts afresh.
//! * **Seeds.** One [`ChaCha8Rng`] drives the noise, the move choice and the
//!   evaluator, so the same seed and the same calls give the same moves.

mod evaluator;
mod tree;

pub use evaluator::{
    Evaluation, Evaluator, EvaluatorError, Policy, RolloutEvaluator, random_playout,
};
pub use tree::Proof;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use crate::game::{Game, Player};
use tree::{NodeState, Tree};

/// The value an unvisited child is given in the selection rule.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Fpu {
    /// This fixed value (AlphaZero: 0, a draw).
    Absolute(f32),
    /// The parent's mean value for the side to move minus this reduction
    /// (Leela Chess Zero's choice: unexplored moves look a bit worse than
    /// the position).
    ParentMinus(f32),
}

/// How a search runs. `Default` is a plain strong search (no noise,
/// temperature 0); [`MctsConfig::self_play`] is AlphaZero's self-play setup.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MctsConfig {
    /// New simulations per [`Mcts::search`] call (at least 1).
    pub simulations: u32,
    /// Weight of the prior term of PUCT (>= 0).
    pub c_puct: f32,
    /// Dirichlet concentration of the root noise (> 0 when noise is on;
    /// AlphaZero: 0.3 chess, 0.15 shogi, 0.03 Go; about 10 / legal moves).
    pub dirichlet_alpha: f32,
    /// Share of noise in the root priors, in `[0, 1]` (0: no noise).
    pub dirichlet_epsilon: f32,
    /// Move choice temperature (>= 0; 0: the most visited move).
    pub temperature: f32,
    /// The temperature applies while the game's ply is below this; 0 after
    /// (AlphaZero: 30 plies). `u32::MAX`: always.
    pub temperature_plies: u32,
    /// Leaves gathered per evaluator call (at least 1).
    pub leaf_batch_size: usize,
    /// The loss each waiting simulation counts as on its path (>= 0).
    pub virtual_loss: f32,
    /// The value of unvisited children.
    pub fpu: Fpu,
    /// Keep the subtree of the move played for the next search.
    pub reuse_tree: bool,
}

impl Default for MctsConfig {
    fn default() -> MctsConfig {
        MctsConfig {
            simulations: 800,
            c_puct: 1.5,
            dirichlet_alpha: 0.3,
            dirichlet_epsilon: 0.0,
            temperature: 0.0,
            temperature_plies: u32::MAX,
            leaf_batch_size: 1,
            virtual_loss: 1.0,
            fpu: Fpu::Absolute(0.0),
            reuse_tree: true,
        }
    }
}

impl MctsConfig {
    /// AlphaZero's self-play settings: root noise (alpha 0.3, epsilon 0.25),
    /// temperature 1 for the first 30 plies, leaves in batches of 16.
    pub fn self_play(simulations: u32) -> MctsConfig {
        MctsConfig {
            simulations,
            dirichlet_epsilon: 0.25,
            temperature: 1.0,
            temperature_plies: 30,
            leaf_batch_size: 16,
            ..MctsConfig::default()
        }
    }

    /// The same settings with `simulations` simulations per search.
    #[must_use]
    pub fn with_simulations(self, simulations: u32) -> MctsConfig {
        MctsConfig {
            simulations,
            ..self
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), MctsConfigError> {
        let bad = |field: &'static str, value: String, expected: &'static str| {
            Err(MctsConfigError {
                field,
                value,
                expected,
            })
        };
        let finite_non_negative = |x: f32| x.is_finite() && x >= 0.0;
        if self.simulations == 0 {
            return bad("simulations", "0".into(), "at least 1");
        }
        if !finite_non_negative(self.c_puct) {
            return bad("c_puct", self.c_puct.to_string(), "a finite number >= 0");
        }
        if !(0.0..=1.0).contains(&self.dirichlet_epsilon) {
            return bad(
                "dirichlet_epsilon",
                self.dirichlet_epsilon.to_string(),
                "a number in [0, 1]",
            );
        }
        if self.dirichlet_epsilon > 0.0
            && !(self.dirichlet_alpha.is_finite() && self.dirichlet_alpha > 0.0)
        {
            return bad(
                "dirichlet_alpha",
                self.dirichlet_alpha.to_string(),
                "a finite number > 0 when dirichlet_epsilon > 0",
            );
        }
        if !finite_non_negative(self.temperature) {
            return bad(
                "temperature",
                self.temperature.to_string(),
                "a finite number >= 0",
            );
        }
        if self.leaf_batch_size == 0 {
            return bad("leaf_batch_size", "0".into(), "at least 1");
        }
        if !finite_non_negative(self.virtual_loss) {
            return bad(
                "virtual_loss",
                self.virtual_loss.to_string(),
                "a finite number >= 0",
            );
        }
        match self.fpu {
            Fpu::Absolute(v) | Fpu::ParentMinus(v) if !v.is_finite() => {
                bad("fpu", v.to_string(), "a finite value")
            }
            _ => Ok(()),
        }
    }
}

/// A field of [`MctsConfig`] out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MCTS config: {field} = {value}, expected {expected}")]
pub struct MctsConfigError {
    /// The field.
    pub field: &'static str,
    /// Its value.
    pub value: String,
    /// What it must be.
    pub expected: &'static str,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum MctsError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] MctsConfigError),
    /// The position is a finished game.
    #[error("cannot search a finished game: {position}")]
    GameOver {
        /// The position as text.
        position: String,
    },
    /// The evaluator returned an error.
    #[error(transparent)]
    Evaluator(#[from] EvaluatorError),
    /// The evaluator broke its contract.
    #[error("evaluator returned a bad evaluation for position {position}: {problem}")]
    BadEvaluation {
        /// The position as text.
        position: String,
        /// What was wrong (count, length, value range).
        problem: String,
    },
}

/// What the search knows of one move at the root.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MoveStats<M> {
    /// The move.
    pub mv: M,
    /// Its index in the policy vector ([`Game::action_index`]).
    pub action: usize,
    /// Completed simulations through it.
    pub visits: u32,
    /// Its prior (with the root noise, when on).
    pub prior: f32,
    /// Mean value for the side to move at the root (`None`: never visited).
    pub value: Option<f32>,
    /// What is proven of it, for the side to move at the root.
    pub proof: Proof,
}

/// The result of one [`Mcts::search`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchResult<M> {
    /// The move chosen with the config's temperature for this ply.
    pub best_move: M,
    /// Every legal move with its statistics, in [`Game::legal_moves`] order.
    pub moves: Vec<MoveStats<M>>,
    /// The visit distribution over `num_actions` actions (visits of each
    /// move over all root visits; zero for illegal actions): the policy
    /// target of AlphaZero training.
    pub policy: Vec<f32>,
    /// The root's value for its side to move: the mean over its simulations
    /// in `[-1, 1]`, or the exact value when proven.
    pub root_value: f32,
    /// What is proven of the root, for its side to move.
    pub root_proof: Proof,
    /// Simulations run by this call (fewer than asked when the root got
    /// proven).
    pub simulations: u32,
    /// Completed simulations in the root's tree, reused ones included.
    pub root_visits: u32,
    /// Evaluator calls made by this search.
    pub evaluator_calls: u32,
}

/// A leaf waiting for its evaluation.
struct PendingLeaf<G> {
    path: Vec<usize>,
    position: G,
}

/// A reusable search: the config, the evaluator, the seeded generator and
/// the tree of the current root.
pub struct Mcts<G: Game, E> {
    config: MctsConfig,
    evaluator: E,
    rng: ChaCha8Rng,
    root_position: Option<G>,
    tree: Tree<G::Move>,
    root_noised: bool,
    moves_scratch: Vec<G::Move>,
}

impl<G: Game, E: Evaluator<G>> Mcts<G, E> {
    /// A search with an empty tree; `seed` fixes every random choice.
    pub fn new(config: MctsConfig, evaluator: E, seed: u64) -> Result<Mcts<G, E>, MctsConfigError> {
        config.validate()?;
        Ok(Mcts {
            config,
            evaluator,
            rng: ChaCha8Rng::seed_from_u64(seed),
            root_position: None,
            tree: Tree::new(Player::First),
            root_noised: false,
            moves_scratch: Vec::new(),
        })
    }

    /// The config.
    pub fn config(&self) -> &MctsConfig {
        &self.config
    }

    /// Replaces the config (the tree is kept).
    pub fn set_config(&mut self, config: MctsConfig) -> Result<(), MctsConfigError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The evaluator.
    pub fn evaluator(&self) -> &E {
        &self.evaluator
    }

    /// The evaluator, mutably (to swap a net's weights between games).
    pub fn evaluator_mut(&mut self) -> &mut E {
        &mut self.evaluator
    }

    /// The evaluator, dropping the search.
    pub fn into_evaluator(self) -> E {
        self.evaluator
    }

    /// Forgets the tree.
    pub fn reset(&mut self) {
        self.root_position = None;
        self.tree = Tree::new(Player::First);
        self.root_noised = false;
    }

    /// Nodes in the tree (memory grows with it: about 64 bytes a node).
    pub fn tree_size(&self) -> usize {
        if self.root_position.is_some() {
            self.tree.nodes.len()
        } else {
            0
        }
    }

    /// Completed simulations at the root of the current tree (0 when empty).
    pub fn root_visits(&self) -> u32 {
        if self.root_position.is_some() {
            self.tree.root().visits
        } else {
            0
        }
    }

    /// Moves the root to the position after `mv`, keeping that subtree when
    /// tree reuse is on and `mv` was searched; forgets the tree otherwise.
    pub fn advance(&mut self, mv: G::Move) {
        let Some(position) = self.root_position.as_mut() else {
            return;
        };
        let child = self
            .tree
            .root()
            .children()
            .find(|&child| self.tree.nodes[child].mv == Some(mv));
        let mut next = position.clone();
        if next.play(mv).is_err() {
            self.reset();
            return;
        }
        match child {
            Some(child) if self.config.reuse_tree => {
                self.tree.reroot(child);
                self.root_position = Some(next);
                self.root_noised = false;
            }
            _ => {
                self.tree = Tree::new(next.to_move());
                self.root_position = Some(next);
                self.root_noised = false;
            }
        }
    }

    /// Runs `config.simulations` simulations from `position` and chooses a
    /// move with the temperature for its ply.
    pub fn search(&mut self, position: &G) -> Result<SearchResult<G::Move>, MctsError> {
        self.search_with(position, self.config.simulations)
    }

    /// [`Mcts::search`] with another simulation count.
    pub fn search_with(
        &mut self,
        position: &G,
        simulations: u32,
    ) -> Result<SearchResult<G::Move>, MctsError> {
        if position.outcome().is_some() {
            return Err(MctsError::GameOver {
                position: position.position_string(),
            });
        }
        self.sync_root(position);
        if self.tree.root().state == NodeState::Expanded && !self.root_noised {
            self.add_root_noise();
        }
        let mut done = 0u32;
        let mut evaluator_calls = 0u32;
        let mut batch: Vec<PendingLeaf<G>> = Vec::with_capacity(self.config.leaf_batch_size);
        while done < simulations && self.tree.root().proof == Proof::Unknown {
            batch.clear();
            let wanted = self
                .config
                .leaf_batch_size
                .min((simulations - done) as usize);
            while batch.len() < wanted && done + (batch.len() as u32) < simulations {
                let (path, leaf_position) = self.select();
                let leaf = *path.last().expect("a path holds at least the root");
                let node = &self.tree.nodes[leaf];
                match node.state {
                    NodeState::Pending => {
                        // Collision with a walk of this batch: evaluate what
                        // we have rather than bias the tree.
                        self.tree.revert_virtual(&path);
                        break;
                    }
                    NodeState::Leaf => {
                        if let Some(outcome) = leaf_position.outcome() {
                            let node = &mut self.tree.nodes[leaf];
                            node.state = NodeState::Terminal;
                            node.proof = Proof::of_outcome(outcome, node.mover);
                            let mover = node.mover;
                            self.tree
                                .backup(&path, outcome.value_for(mover), mover, true);
                            self.tree.propagate_proof(&path);
                            done += 1;
                        } else {
                            self.tree.nodes[leaf].state = NodeState::Pending;
                            batch.push(PendingLeaf {
                                path,
                                position: leaf_position,
                            });
                        }
                    }
                    NodeState::Terminal | NodeState::Expanded => {
                        // A proven node (finished or decided): its exact
                        // value, no evaluation needed.
                        let value = node
                            .proof
                            .value()
                            .expect("selection stops only at leaves and proven nodes");
                        let mover = node.mover;
                        self.tree.backup(&path, value, mover, true);
                        done += 1;
                    }
                }
                if self.tree.root().proof != Proof::Unknown {
                    break;
                }
            }
            if batch.is_empty() {
                continue;
            }
            let positions: Vec<G> = batch.iter().map(|leaf| leaf.position.clone()).collect();
            let evaluations = self.evaluator.evaluate(&positions, &mut self.rng);
            evaluator_calls += 1;
            let evaluations = match evaluations {
                Ok(evaluations) => evaluations,
                Err(error) => {
                    self.abandon(&batch);
                    return Err(error.into());
                }
            };
            if evaluations.len() != batch.len() {
                self.abandon(&batch);
                return Err(MctsError::BadEvaluation {
                    position: positions[0].position_string(),
                    problem: format!(
                        "{} evaluations for a batch of {} positions",
                        evaluations.len(),
                        batch.len()
                    ),
                });
            }
            for (index, (leaf, evaluation)) in batch.iter().zip(evaluations).enumerate() {
                if let Err(error) = self.expand(leaf, evaluation) {
                    self.abandon(&batch[index..]);
                    return Err(error);
                }
                done += 1;
            }
        }
        Ok(self.result(position, done, evaluator_calls))
    }

    /// Puts the root on `position`: reuses the tree when `position` is the
    /// root or one or two plies below it, starts afresh otherwise.
    fn sync_root(&mut self, position: &G) {
        let same = |a: &G, b: &G| {
            a.position_hash() == b.position_hash()
                && a.to_move() == b.to_move()
                && a.ply() == b.ply()
        };
        if let Some(root) = &self.root_position {
            if same(root, position) {
                return;
            }
            if self.config.reuse_tree {
                let root = root.clone();
                for child in self.tree.root().children() {
                    let Some(mv) = self.tree.nodes[child].mv else {
                        continue;
                    };
                    let mut after = root.clone();
                    after
                        .play(mv)
                        .expect("tree moves are legal in the position they were generated in");
                    if same(&after, position) {
                        self.advance(mv);
                        return;
                    }
                    for grandchild in self.tree.nodes[child].children() {
                        let Some(reply) = self.tree.nodes[grandchild].mv else {
                            continue;
                        };
                        let mut after_reply = after.clone();
                        after_reply
                            .play(reply)
                            .expect("tree moves are legal in the position they were generated in");
                        if same(&after_reply, position) {
                            self.advance(mv);
                            self.advance(reply);
                            return;
                        }
                    }
                }
            }
        }
        self.tree = Tree::new(position.to_move());
        self.root_position = Some(position.clone());
        self.root_noised = false;
    }

    /// Walks from the root to a leaf or proven node, adding a virtual visit
    /// to each node on the way; returns the path and the position there.
    fn select(&mut self) -> (Vec<usize>, G) {
        let mut position = self
            .root_position
            .clone()
            .expect("search sets the root position before selecting");
        let mut path = vec![0];
        let mut current = 0;
        self.tree.nodes[0].virtual_visits += 1;
        loop {
            let node = &self.tree.nodes[current];
            if node.state != NodeState::Expanded || node.proof != Proof::Unknown {
                return (path, position);
            }
            let child = self.best_child(current);
            let mv = self.tree.nodes[child]
                .mv
                .expect("every node but the root has a move");
            position
                .play(mv)
                .expect("tree moves are legal in the position they were generated in");
            self.tree.nodes[child].virtual_visits += 1;
            path.push(child);
            current = child;
        }
    }

    /// The PUCT choice among the children of an expanded, unproven node.
    fn best_child(&self, parent: usize) -> usize {
        let node = &self.tree.nodes[parent];
        let parent_visits = f64::from(node.visits + node.virtual_visits);
        let sqrt_visits = parent_visits.max(1.0).sqrt();
        let virtual_loss = f64::from(self.config.virtual_loss);
        let c_puct = f64::from(self.config.c_puct);
        let fpu = match self.config.fpu {
            Fpu::Absolute(value) => f64::from(value),
            // The parent's statistics are for its mover: negate for the side
            // to move there (moves alternate between the two players).
            Fpu::ParentMinus(reduction) => -node.mean_value().unwrap_or(0.0) - f64::from(reduction),
        };
        let mut best = None;
        let mut best_score = f64::NEG_INFINITY;
        for index in node.children() {
            let child = &self.tree.nodes[index];
            if child.proof.is_win() {
                return index;
            }
            if child.proof.is_loss() {
                continue;
            }
            let visits = f64::from(child.visits + child.virtual_visits);
            let q = if visits > 0.0 {
                (child.value_sum - virtual_loss * f64::from(child.virtual_visits)) / visits
            } else {
                fpu
            };
            let score = q + c_puct * f64::from(child.prior) * sqrt_visits / (1.0 + visits);
            if score > best_score {
                best_score = score;
                best = Some(index);
            }
        }
        best.expect("an unproven node has a child that is not a proven loss")
    }

    /// Adds the children of an evaluated leaf and backs its value up.
    fn expand(&mut self, leaf: &PendingLeaf<G>, evaluation: Evaluation) -> Result<(), MctsError> {
        let bad = |problem: String| MctsError::BadEvaluation {
            position: leaf.position.position_string(),
            problem,
        };
        let value = evaluation.value;
        if !value.is_finite() || value.abs() > 1.0 + 1e-4 {
            return Err(bad(format!("value {value} outside [-1, 1]")));
        }
        let value = value.clamp(-1.0, 1.0);
        let mut moves = std::mem::take(&mut self.moves_scratch);
        leaf.position.legal_moves_into(&mut moves);
        let priors = priors(&leaf.position, &moves, evaluation.policy).map_err(bad)?;
        let index = *leaf.path.last().expect("a path holds at least the root");
        let side = leaf.position.to_move();
        self.tree
            .expand(index, side, moves.iter().copied().zip(priors));
        self.moves_scratch = moves;
        if index == 0 && !self.root_noised {
            self.add_root_noise();
        }
        self.tree.backup(&leaf.path, value, side, true);
        Ok(())
    }

    /// Takes the virtual visits of evaluations that will never come back off
    /// the tree, so a failed search leaves it usable.
    fn abandon(&mut self, leaves: &[PendingLeaf<G>]) {
        for leaf in leaves {
            let index = *leaf.path.last().expect("a path holds at least the root");
            self.tree.nodes[index].state = NodeState::Leaf;
            self.tree.revert_virtual(&leaf.path);
        }
    }

    /// Mixes Dirichlet noise into the root priors (when on).
    fn add_root_noise(&mut self) {
        self.root_noised = true;
        let epsilon = self.config.dirichlet_epsilon;
        let children = self.tree.root().children();
        if epsilon <= 0.0 || children.len() < 2 {
            return;
        }
        // Dir(alpha) is Gamma(alpha, 1) draws normalised; Gamma works for
        // any count of moves, Dirichlet needs two or more of a fixed count.
        let gamma = Gamma::new(f64::from(self.config.dirichlet_alpha), 1.0)
            .expect("validate checked alpha > 0 and finite");
        let draws: Vec<f64> = children
            .clone()
            .map(|_| gamma.sample(&mut self.rng))
            .collect();
        let total: f64 = draws.iter().sum();
        if total.is_nan() || total <= 0.0 {
            // All draws underflowed (tiny alpha): no usable noise this time.
            return;
        }
        for (child, draw) in children.zip(draws) {
            let node = &mut self.tree.nodes[child];
            node.prior = (1.0 - epsilon) * node.prior + epsilon * (draw / total) as f32;
        }
    }

    /// Collects the statistics and chooses the move.
    fn result(
        &mut self,
        position: &G,
        simulations: u32,
        evaluator_calls: u32,
    ) -> SearchResult<G::Move> {
        let root = self.tree.root();
        let side = position.to_move();
        let moves: Vec<MoveStats<G::Move>> = root
            .children()
            .map(|index| {
                let child = &self.tree.nodes[index];
                let mv = child.mv.expect("every node but the root has a move");
                MoveStats {
                    mv,
                    action: position.action_index(mv),
                    visits: child.visits,
                    prior: child.prior,
                    value: child.mean_value().map(|v| v as f32),
                    proof: child.proof,
                }
            })
            .collect();
        let mut policy = vec![0.0; position.num_actions()];
        let total: u32 = moves.iter().map(|stats| stats.visits).sum();
        if total > 0 {
            for stats in &moves {
                policy[stats.action] += stats.visits as f32 / total as f32;
            }
        }
        // The root's statistics are for its mover, the opponent of `side`.
        let root_proof = if root.mover == side {
            root.proof
        } else {
            root.proof.flipped()
        };
        let root_value = match root_proof.value() {
            Some(value) => value,
            None => {
                root.mean_value()
                    .map_or(0.0, |v| if root.mover == side { v } else { -v }) as f32
            }
        };
        let temperature = if position.ply() < self.config.temperature_plies as usize {
            self.config.temperature
        } else {
            0.0
        };
        let best = choose_move(&moves, temperature, &mut self.rng);
        SearchResult {
            best_move: moves[best].mv,
            moves,
            policy,
            root_value,
            root_proof,
            simulations,
            root_visits: root.visits,
            evaluator_calls,
        }
    }
}

/// The normalised priors of `moves` from an evaluator's policy.
fn priors<G: Game>(position: &G, moves: &[G::Move], policy: Policy) -> Result<Vec<f32>, String> {
    let uniform = || vec![1.0 / moves.len() as f32; moves.len()];
    let weights = match policy {
        Policy::Uniform => return Ok(uniform()),
        Policy::OverLegalMoves(weights) => {
            if weights.len() != moves.len() {
                return Err(format!(
                    "policy over legal moves has {} weights, the position has {} legal moves",
                    weights.len(),
                    moves.len()
                ));
            }
            weights
        }
        Policy::OverActions(weights) => {
            if weights.len() != position.num_actions() {
                return Err(format!(
                    "policy over actions has {} weights, expected num_actions = {}",
                    weights.len(),
                    position.num_actions()
                ));
            }
            moves
                .iter()
                .map(|&mv| weights[position.action_index(mv)])
                .collect()
        }
    };
    if let Some(bad) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(format!(
            "policy weight {bad} is not a finite number >= 0 (pass probabilities, not logits)"
        ));
    }
    let total: f32 = weights.iter().sum();
    if total > 0.0 {
        Ok(weights.iter().map(|w| w / total).collect())
    } else {
        // The net put all its mass on illegal moves: nothing to go by.
        Ok(uniform())
    }
}

/// The index in `moves` of the move to play: a proven win if any (the
/// fastest); otherwise among moves not proven lost (all of them if every
/// move is), the most visited at temperature 0, or one sampled with
/// probability proportional to `visits^(1 / temperature)`.
pub fn choose_move<M>(moves: &[MoveStats<M>], temperature: f32, rng: &mut ChaCha8Rng) -> usize {
    assert!(!moves.is_empty(), "choose_move needs at least one move");
    if let Some((index, _)) = moves
        .iter()
        .enumerate()
        .filter(|(_, stats)| stats.proof.is_win())
        .min_by_key(|(_, stats)| stats.proof.plies())
    {
        return index;
    }
    let all_lost = moves.iter().all(|stats| stats.proof.is_loss());
    let candidates: Vec<usize> = (0..moves.len())
        .filter(|&index| all_lost || !moves[index].proof.is_loss())
        .collect();
    if all_lost {
        // Every move loses: the slowest loss gives the opponent most room to err.
        return *candidates
            .iter()
            .max_by_key(|&&index| moves[index].proof.plies())
            .expect("candidates is not empty");
    }
    let greedy = || {
        let key = |index: usize| {
            let stats = &moves[index];
            (stats.visits, stats.value.unwrap_or(f32::NEG_INFINITY))
        };
        let mut best = candidates[0];
        for &index in &candidates[1..] {
            let (visits, value) = key(index);
            let (best_visits, best_value) = key(best);
            if visits > best_visits || (visits == best_visits && value > best_value) {
                best = index;
            }
        }
        best
    };
    if temperature <= 0.0 {
        return greedy();
    }
    let max_visits = candidates
        .iter()
        .map(|&index| moves[index].visits)
        .max()
        .unwrap_or(0);
    if max_visits == 0 {
        return greedy();
    }
    // Powers of visits relative to the largest, so 1/T large cannot overflow.
    let exponent = 1.0 / f64::from(temperature);
    let weights: Vec<f64> = candidates
        .iter()
        .map(|&index| (f64::from(moves[index].visits) / f64::from(max_visits)).powf(exponent))
        .collect();
    let total: f64 = weights.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return greedy();
    }
    let mut draw = rng.random::<f64>() * total;
    for (&index, weight) in candidates.iter().zip(&weights) {
        if draw < *weight {
            return index;
        }
        draw -= weight;
    }
    *candidates
        .iter()
        .zip(&weights)
        .rev()
        .find(|(_, weight)| **weight > 0.0)
        .map(|(index, _)| index)
        .expect("some weight is positive")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Outcome;
    use crate::othello::{Othello, OthelloMove};

    fn rollout_search(config: MctsConfig, seed: u64) -> Mcts<Othello, RolloutEvaluator> {
        Mcts::new(config, RolloutEvaluator::new(1, 200), seed).expect("valid config")
    }

    /// An evaluator that records batch sizes and answers with a fixed
    /// policy kind, to test what MCTS does with evaluator output.
    struct Scripted {
        batches: Vec<usize>,
        policy: fn(&Othello) -> Policy,
        value: f32,
        fail: bool,
    }

    impl Evaluator<Othello> for Scripted {
        fn evaluate(
            &mut self,
            positions: &[Othello],
            _rng: &mut ChaCha8Rng,
        ) -> Result<Vec<Evaluation>, EvaluatorError> {
            if self.fail {
                return Err(EvaluatorError::new("device lost"));
            }
            self.batches.push(positions.len());
            Ok(positions
                .iter()
                .map(|position| Evaluation {
                    policy: (self.policy)(position),
                    value: self.value,
                })
                .collect())
        }
    }

    fn scripted(policy: fn(&Othello) -> Policy) -> Scripted {
        Scripted {
            batches: Vec::new(),
            policy,
            value: 0.0,
            fail: false,
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (
                MctsConfig {
                    simulations: 0,
                    ..MctsConfig::default()
                },
                "simulations",
            ),
            (
                MctsConfig {
                    c_puct: f32::NAN,
                    ..MctsConfig::default()
                },
                "c_puct",
            ),
            (
                MctsConfig {
                    dirichlet_epsilon: 1.5,
                    ..MctsConfig::default()
                },
                "dirichlet_epsilon",
            ),
            (
                MctsConfig {
                    dirichlet_epsilon: 0.25,
                    dirichlet_alpha: 0.0,
                    ..MctsConfig::default()
                },
                "dirichlet_alpha",
            ),
            (
                MctsConfig {
                    temperature: -1.0,
                    ..MctsConfig::default()
                },
                "temperature",
            ),
            (
                MctsConfig {
                    leaf_batch_size: 0,
                    ..MctsConfig::default()
                },
                "leaf_batch_size",
            ),
            (
                MctsConfig {
                    virtual_loss: -0.5,
                    ..MctsConfig::default()
                },
                "virtual_loss",
            ),
            (
                MctsConfig {
                    fpu: Fpu::ParentMinus(f32::INFINITY),
                    ..MctsConfig::default()
                },
                "fpu",
            ),
        ];
        for (config, field) in cases {
            let error = config.validate().expect_err("the config is bad");
            assert_eq!(error.field, field);
            assert!(error.to_string().contains(field));
            assert!(
                Mcts::<Othello, RolloutEvaluator>::new(config, RolloutEvaluator::default(), 0)
                    .is_err()
            );
        }
        assert_eq!(MctsConfig::default().validate(), Ok(()));
        assert_eq!(MctsConfig::self_play(100).validate(), Ok(()));
    }

    #[test]
    fn search_statistics_are_consistent_and_seeded() {
        let start = Othello::new(6).expect("6x6 is supported");
        let config = MctsConfig::default().with_simulations(300);
        let result = rollout_search(config, 5)
            .search(&start)
            .expect("search runs");
        assert_eq!(result.simulations, 300);
        assert_eq!(result.root_visits, 300);
        // The root's first simulation evaluates the root itself.
        let child_visits: u32 = result.moves.iter().map(|stats| stats.visits).sum();
        assert_eq!(child_visits, 299);
        assert_eq!(result.moves.len(), 4);
        assert_eq!(result.policy.len(), 37);
        let total: f32 = result.policy.iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
        for (action, &p) in result.policy.iter().enumerate() {
            let legal = result.moves.iter().any(|stats| stats.action == action);
            assert_eq!(p > 0.0, legal, "action {action}");
        }
        assert!(result.root_value.abs() <= 1.0);
        let most_visited = result.moves.iter().map(|stats| stats.visits).max();
        let best = result
            .moves
            .iter()
            .find(|stats| stats.mv == result.best_move);
        assert_eq!(best.map(|stats| stats.visits), most_visited);
        let again = rollout_search(config, 5)
            .search(&start)
            .expect("search runs");
        assert_eq!(result, again, "the same seed gives the same search");
        let other = rollout_search(config, 6)
            .search(&start)
            .expect("search runs");
        assert_ne!(
            result.moves, other.moves,
            "another seed gives other rollouts"
        );
    }

    #[test]
    fn proves_4x4_othello_lost_for_black() {
        // 4x4 Othello is a known win for White (the second player).
        let start = Othello::new(4).expect("4x4 is supported");
        let mut search = rollout_search(MctsConfig::default(), 1);
        let result = search.search_with(&start, 200_000).expect("search runs");
        assert!(
            result.root_proof.is_loss(),
            "root proof {:?} after {} simulations",
            result.root_proof,
            result.simulations
        );
        assert_eq!(result.root_value, -1.0);
        assert!(
            result.simulations < 200_000,
            "the search stops once the root is proven"
        );
        assert!(result.moves.iter().all(|stats| stats.proof.is_loss()));
    }

    #[test]
    fn plays_a_winning_last_move_and_proves_it() {
        // Black to move; d4, the last empty square, fills the board and wins.
        let position = Othello::from_board_string("XXXX/XXXX/XXOO/XXO. X").expect("valid board");
        let mut search = rollout_search(MctsConfig::default(), 2);
        let result = search.search_with(&position, 50).expect("search runs");
        assert_eq!(
            result.best_move,
            "d4".parse::<OthelloMove>().expect("valid move")
        );
        assert_eq!(result.moves[0].proof, Proof::Win { plies: 0 });
        assert_eq!(result.root_proof, Proof::Win { plies: 1 });
        assert_eq!(result.root_value, 1.0);
    }

    #[test]
    fn finished_games_are_refused() {
        let over = Othello::from_board_string("XXOO/XXOO/XXOO/XXOO X").expect("valid board");
        assert_eq!(over.outcome(), Some(Outcome::Draw));
        let error = rollout_search(MctsConfig::default(), 0)
            .search(&over)
            .expect_err("nothing to search");
        assert!(matches!(error, MctsError::GameOver { .. }));
    }

    #[test]
    fn leaves_are_batched_under_virtual_loss() {
        let start = Othello::new(6).expect("6x6 is supported");
        let config = MctsConfig {
            leaf_batch_size: 8,
            simulations: 200,
            ..MctsConfig::default()
        };
        let mut evaluator = scripted(|_| Policy::Uniform);
        let result = Mcts::new(config, &mut evaluator, 0)
            .expect("valid config")
            .search(&start)
            .expect("search runs");
        assert_eq!(evaluator.batches[0], 1, "the first batch is the root alone");
        let full = evaluator.batches.iter().filter(|&&size| size == 8).count();
        assert!(
            full * 2 > evaluator.batches.len(),
            "{:?}",
            evaluator.batches
        );
        assert!(evaluator.batches.iter().all(|&size| size <= 8));
        // No finished game is within reach: every simulation was evaluated.
        let evaluated: usize = evaluator.batches.iter().sum();
        assert_eq!(evaluated as u32, result.simulations);
        assert_eq!(result.simulations, 200);
        assert_eq!(result.evaluator_calls as usize, evaluator.batches.len());
    }

    #[test]
    fn priors_are_masked_to_legal_moves_and_renormalised() {
        let start = Othello::new(6).expect("6x6 is supported");
        // Weight 3 on the last legal move, 1 on the first, and mass on
        // illegal actions that must be masked out.
        let mut evaluator = scripted(|position| {
            let mut weights = vec![0.5; position.num_actions()];
            let moves = position.legal_moves();
            for &mv in &moves {
                weights[position.action_index(mv)] = 0.0;
            }
            weights[position.action_index(moves[0])] = 1.0;
            weights[position.action_index(*moves.last().expect("a move"))] = 3.0;
            Policy::OverActions(weights)
        });
        let result = Mcts::new(
            MctsConfig::default().with_simulations(30),
            &mut evaluator,
            0,
        )
        .expect("valid config")
        .search(&start)
        .expect("search runs");
        let priors: Vec<f32> = result.moves.iter().map(|stats| stats.prior).collect();
        assert_eq!(priors, [0.25, 0.0, 0.0, 0.75]);
        assert_eq!(result.best_move, result.moves[3].mv);
        // All mass on illegal actions: uniform.
        let mut illegal_only = scripted(|position| {
            let mut weights = vec![1.0; position.num_actions()];
            for mv in position.legal_moves() {
                weights[position.action_index(mv)] = 0.0;
            }
            Policy::OverActions(weights)
        });
        let result = Mcts::new(
            MctsConfig::default().with_simulations(5),
            &mut illegal_only,
            0,
        )
        .expect("valid config")
        .search(&start)
        .expect("search runs");
        assert!(result.moves.iter().all(|stats| stats.prior == 0.25));
        let mut over_legal = scripted(|_| Policy::OverLegalMoves(vec![2.0, 2.0, 4.0, 0.0]));
        // One simulation: only the root is evaluated.
        let result = Mcts::new(
            MctsConfig::default().with_simulations(1),
            &mut over_legal,
            0,
        )
        .expect("valid config")
        .search(&start)
        .expect("search runs");
        let priors: Vec<f32> = result.moves.iter().map(|stats| stats.prior).collect();
        assert_eq!(priors, [0.25, 0.25, 0.5, 0.0]);
    }

    #[test]
    fn bad_evaluations_are_reported_and_the_tree_stays_usable() {
        let start = Othello::new(6).expect("6x6 is supported");
        let config = MctsConfig::default().with_simulations(50);
        let mut short = scripted(|_| Policy::OverLegalMoves(vec![1.0]));
        let error = Mcts::new(config, &mut short, 0)
            .expect("valid config")
            .search(&start)
            .expect_err("one weight for four moves");
        assert!(error.to_string().contains("1 weights"), "{error}");
        let mut negative =
            scripted(|position| Policy::OverActions(vec![-1.0; position.num_actions()]));
        let error = Mcts::new(config, &mut negative, 0)
            .expect("valid config")
            .search(&start)
            .expect_err("negative weights");
        assert!(
            error.to_string().contains("not a finite number >= 0"),
            "{error}"
        );
        let mut out_of_range = scripted(|_| Policy::Uniform);
        out_of_range.value = 2.0;
        let error = Mcts::new(config, &mut out_of_range, 0)
            .expect("valid config")
            .search(&start)
            .expect_err("value 2");
        assert!(error.to_string().contains("outside [-1, 1]"), "{error}");

        let mut flaky = scripted(|_| Policy::Uniform);
        let mut search = Mcts::new(config, &mut flaky, 0).expect("valid config");
        search.search(&start).expect("search runs");
        let visits = search.root_visits();
        search.evaluator_mut().fail = true;
        let error = search.search(&start).expect_err("the evaluator fails");
        assert!(error.to_string().contains("device lost"));
        search.evaluator_mut().fail = false;
        let result = search.search(&start).expect("the tree is still usable");
        assert_eq!(result.root_visits, visits + 50);
        assert!(
            search
                .tree
                .nodes
                .iter()
                .all(|node| node.virtual_visits == 0)
        );
    }

    #[test]
    fn tree_reuse_keeps_the_subtree_of_the_moves_played() {
        let start = Othello::new(6).expect("6x6 is supported");
        let mut search = rollout_search(MctsConfig::default().with_simulations(400), 3);
        let first = search.search(&start).expect("search runs");
        let kept = first
            .moves
            .iter()
            .find(|stats| stats.mv == first.best_move)
            .map(|stats| stats.visits)
            .expect("the best move is a root move");
        search.advance(first.best_move);
        assert_eq!(search.root_visits(), kept);
        let mut after = start;
        after.play(first.best_move).expect("legal");
        let second = search.search(&after).expect("search runs");
        assert_eq!(second.root_visits, kept + 400);
        // The opponent's reply is found two plies below the root without
        // advance: search from the position after both moves.
        let reply = second.best_move;
        let reply_visits = second
            .moves
            .iter()
            .find(|stats| stats.mv == reply)
            .map(|stats| stats.visits)
            .expect("a root move");
        after.play(reply).expect("legal");
        let third = search.search(&after).expect("search runs");
        assert_eq!(third.root_visits, reply_visits + 400);
        // A position not in the tree starts afresh.
        let fresh = search.search(&start).expect("search runs");
        assert_eq!(fresh.root_visits, 400);
        let mut no_reuse = rollout_search(
            MctsConfig {
                reuse_tree: false,
                ..MctsConfig::default().with_simulations(400)
            },
            3,
        );
        let first = no_reuse.search(&start).expect("search runs");
        no_reuse.advance(first.best_move);
        assert_eq!(no_reuse.root_visits(), 0);
    }

    #[test]
    fn root_noise_changes_priors_but_keeps_a_distribution() {
        let start = Othello::new(8).expect("8x8 is supported");
        let noisy = MctsConfig {
            dirichlet_epsilon: 0.25,
            dirichlet_alpha: 0.3,
            simulations: 20,
            ..MctsConfig::default()
        };
        let result = rollout_search(noisy, 11)
            .search(&start)
            .expect("search runs");
        let priors: Vec<f32> = result.moves.iter().map(|stats| stats.prior).collect();
        assert!((priors.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(priors.iter().all(|&p| p >= 0.75 * 0.25 - 1e-6));
        assert!(
            priors.iter().any(|&p| (p - 0.25).abs() > 1e-3),
            "{priors:?}"
        );
        let plain = rollout_search(MctsConfig::default().with_simulations(20), 11)
            .search(&start)
            .expect("search runs");
        assert!(plain.moves.iter().all(|stats| stats.prior == 0.25));
    }

    fn stats(visits: &[u32]) -> Vec<MoveStats<usize>> {
        visits
            .iter()
            .enumerate()
            .map(|(index, &visits)| MoveStats {
                mv: index,
                action: index,
                visits,
                prior: 0.0,
                value: Some(0.0),
                proof: Proof::Unknown,
            })
            .collect()
    }

    #[test]
    fn temperature_samples_visit_powers() {
        let moves = stats(&[10, 30, 60]);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        assert_eq!(choose_move(&moves, 0.0, &mut rng), 2);
        let mut counts = [0u32; 3];
        for _ in 0..6000 {
            counts[choose_move(&moves, 1.0, &mut rng)] += 1;
        }
        for (count, expected) in counts.iter().zip([600.0, 1800.0, 3600.0]) {
            assert!((f64::from(*count) - expected).abs() < 150.0, "{counts:?}");
        }
        // T = 0.5 squares the visits: 100 : 900 : 3600.
        let mut counts = [0u32; 3];
        for _ in 0..4600 {
            counts[choose_move(&moves, 0.5, &mut rng)] += 1;
        }
        assert!((f64::from(counts[2]) - 3600.0).abs() < 150.0, "{counts:?}");
        // Proven wins are played and proven losses avoided at any temperature.
        let mut proven = stats(&[50, 40, 1]);
        proven[0].proof = Proof::Loss { plies: 3 };
        proven[2].proof = Proof::Win { plies: 5 };
        assert_eq!(choose_move(&proven, 1.0, &mut rng), 2);
        proven[2].proof = Proof::Unknown;
        for _ in 0..100 {
            assert_ne!(choose_move(&proven, 1.0, &mut rng), 0);
        }
    }
}
