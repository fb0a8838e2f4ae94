//! AlphaZero training by self-play, as reference 001 runs it (its `coach.py`,
//! from alpha-zero-general): each iteration plays `episodes` games of the
//! current network against itself with MCTS, adds every position (in its 8
//! board symmetries) with the search's visit distribution and the game's
//! result to a window of recent examples, trains a copy of the network on
//! the window, and keeps the copy only if it beats the current network in an
//! arena.
//!
//! Defaults ([`CoachConfig::reference`]) are reference 001's: 15 iterations
//! of 10 self-play games, 32 simulations a move, temperature 1 for the first
//! 15 plies, update threshold 0.55 over 40 arena games; and
//! alpha-zero-general's: `c_puct` 1, 10 epochs of batches of 64 at learning
//! rate 1e-3, a window of the last 20 iterations.
//!
//! Where kibitzer differs, on purpose:
//! * The policy target is the search's visit distribution at every ply
//!   (AlphaZero's paper); alpha-zero-general turns it one-hot once the
//!   temperature drops to 0.
//! * Arena games start from `arena_opening_plies` random plies (shared by
//!   each pair of games, colours swapped). Two deterministic players (MCTS at
//!   temperature 0) otherwise play the same two games 40 times over, and the
//!   gate would judge one opening.
//! * Self-play games of an iteration run in parallel, each with its own
//!   seed, so the result does not depend on the number of threads.
//!
//! Everything random derives from `seed` and the iteration number, and each
//! iteration ends with an atomic checkpoint (`OUT/coach.json` and the
//! network it kept, `OUT/nets/iter-NNN.safetensors`), so [`Coach::resume`]
//! continues an interrupted run to the same network an uninterrupted run
//! reaches.

use super::{AlphaZeroBatch, AlphaZeroConfig, AlphaZeroNet, AlphaZeroTrainer};
use crate::error::ModelError;
use crate::params::{AdamWConfig, write_json};
use burn::tensor::Device;
use kibitzer_games::Game;
use kibitzer_games::arena::{ArenaConfig, ArenaError, ArenaReport, run_arena};
use kibitzer_games::dataset::game_rng;
use kibitzer_games::mcts::{Fpu, Mcts, MctsConfig, MctsConfigError, MctsError};
use kibitzer_games::othello::{Othello, Symmetry};
use kibitzer_games::players::{GreedyAgent, MctsAgent, RandomAgent};
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File names inside a coach directory.
pub mod files {
    /// Settings, the window of examples and every iteration's report.
    pub const STATE: &str = "coach.json";
    /// The networks kept after each iteration.
    pub const NETS: &str = "nets";
    /// The final network (a copy of the last one kept).
    pub const BEST: &str = "best.safetensors";
}

/// What can go wrong in self-play training.
#[derive(Debug, thiserror::Error)]
pub enum CoachError {
    /// The network, its training or a file.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A search setting out of range.
    #[error("mcts settings: {0}")]
    Mcts(#[from] MctsConfigError),
    /// A search failed (a failing network).
    #[error("self-play search: {0}")]
    Search(#[from] MctsError),
    /// An arena failed.
    #[error("arena: {0}")]
    Arena(#[from] ArenaError),
    /// Settings that cannot work, naming the field.
    #[error("coach setting {field}: {problem}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A directory that holds no run, or another run.
    #[error("{path}: {problem}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// How self-play training runs. See the module docs for the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoachConfig {
    /// The network (its `seed` seeds the initial weights).
    pub net: AlphaZeroConfig,
    /// Iterations of self-play, training and arena.
    pub iterations: usize,
    /// Self-play games per iteration.
    pub episodes: usize,
    /// MCTS simulations per move, in self-play and in the arena.
    pub simulations: u32,
    /// PUCT's exploration weight.
    pub c_puct: f32,
    /// Self-play samples moves in proportion to visits while the ply is below
    /// this, then plays the most visited move.
    pub temperature_plies: u32,
    /// Share of Dirichlet noise in the self-play root priors (0: none, as in
    /// alpha-zero-general).
    pub dirichlet_epsilon: f32,
    /// Dirichlet concentration of that noise.
    pub dirichlet_alpha: f32,
    /// Iterations of examples kept for training.
    pub window_iterations: usize,
    /// Passes over the window per iteration.
    pub epochs: usize,
    /// Examples per optimiser step (at least 2: batch norm).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Arena games between the trained copy and the current network.
    pub arena_games: usize,
    /// Random plies opening each pair of arena games.
    pub arena_opening_plies: usize,
    /// The copy is kept when its wins / (wins + losses) in the arena reach
    /// this.
    pub update_threshold: f64,
    /// Seed of self-play, data order and arenas.
    pub seed: u64,
}

impl CoachConfig {
    /// Reference 001's run on a `board_size` board (see the module docs).
    pub fn reference(board_size: usize) -> CoachConfig {
        CoachConfig {
            net: AlphaZeroConfig::new(board_size),
            iterations: 15,
            episodes: 10,
            simulations: 32,
            c_puct: 1.0,
            temperature_plies: 15,
            dirichlet_epsilon: 0.0,
            dirichlet_alpha: 0.5,
            window_iterations: 20,
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            arena_games: 40,
            arena_opening_plies: 4,
            update_threshold: 0.55,
            seed: 0,
        }
    }

    /// Checks every field, naming the one at fault.
    pub fn validate(&self) -> Result<(), CoachError> {
        let bad = |field, problem: &str| {
            Err(CoachError::Config {
                field,
                problem: problem.to_owned(),
            })
        };
        self.net.validate()?;
        if self.iterations == 0 {
            return bad("iterations", "must be at least 1");
        }
        if self.episodes == 0 {
            return bad("episodes", "must be at least 1");
        }
        if self.window_iterations == 0 {
            return bad("window_iterations", "must be at least 1");
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size < 2 {
            return bad("batch_size", "must be at least 2 (batch norm)");
        }
        if self.lr.is_nan() || self.lr <= 0.0 {
            return bad("lr", "must be positive");
        }
        if !(0.0..=1.0).contains(&self.update_threshold) {
            return bad("update_threshold", "must be in [0, 1]");
        }
        if self.arena_games % 2 == 1 {
            return bad(
                "arena_games",
                "must be even (each opening is played with both colours)",
            );
        }
        self.self_play_mcts().validate()?;
        self.arena_mcts().validate()?;
        Ok(())
    }

    /// The search of self-play games.
    pub fn self_play_mcts(&self) -> MctsConfig {
        MctsConfig {
            simulations: self.simulations,
            c_puct: self.c_puct,
            dirichlet_alpha: self.dirichlet_alpha,
            dirichlet_epsilon: self.dirichlet_epsilon,
            temperature: 1.0,
            temperature_plies: self.temperature_plies,
            // One leaf at a time, as the reference: at 32 simulations,
            // virtual losses would blur the search more than batches save.
            leaf_batch_size: 1,
            virtual_loss: 1.0,
            fpu: Fpu::Absolute(0.0),
            reuse_tree: true,
        }
    }

    /// The search of arena games: no noise, the most visited move.
    pub fn arena_mcts(&self) -> MctsConfig {
        MctsConfig {
            dirichlet_epsilon: 0.0,
            temperature: 0.0,
            temperature_plies: 0,
            ..self.self_play_mcts()
        }
    }
}

/// One training example before its symmetries: a board from the side to
/// move (+1 mine, -1 yours, 0 empty), the search's visit distribution over
/// the squares and the pass, and the game's result for the side to move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// `size * size` values.
    pub board: Vec<f32>,
    /// `size * size + 1` probabilities.
    pub policy: Vec<f32>,
    /// 1 win, 0 draw, -1 loss.
    pub value: f32,
}

impl Example {
    /// The example seen through a board symmetry.
    pub fn transformed(&self, symmetry: Symmetry, size: usize) -> Example {
        let mut board = vec![0.0; self.board.len()];
        for (i, &v) in self.board.iter().enumerate() {
            board[symmetry.apply_index(i, size)] = v;
        }
        Example {
            board,
            policy: symmetry.apply_policy(&self.policy, size),
            value: self.value,
        }
    }
}

/// Plays one self-play game of `net` against itself with `config` and
/// returns one example per position searched.
pub fn self_play_game(
    net: &AlphaZeroNet,
    config: &MctsConfig,
    seed: u64,
) -> Result<Vec<Example>, CoachError> {
    let size = net.config().board_size;
    let mut position = Othello::new(size).map_err(|e| ModelError::Config(e.to_string()))?;
    let mut search = Mcts::new(*config, net.clone(), seed)?;
    let mut pending = Vec::new();
    while position.outcome().is_none() {
        let result = search.search(&position)?;
        let mut board = vec![0.0; position.squares()];
        position.encode_signed(&mut board);
        pending.push((board, result.policy, position.to_move()));
        position
            .play(result.best_move)
            .expect("MCTS chooses a legal move");
        search.advance(result.best_move);
    }
    let outcome = position.outcome().expect("the loop ends at the game's end");
    Ok(pending
        .into_iter()
        .map(|(board, policy, mover)| Example {
            board,
            policy,
            value: outcome.value_for(mover),
        })
        .collect())
}

/// The arena result of a trained copy against the current network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Games the copy won.
    pub new_wins: usize,
    /// Games the current network won.
    pub old_wins: usize,
    /// Drawn games.
    pub draws: usize,
    /// Whether the copy was kept.
    pub accepted: bool,
}

/// What one iteration did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationReport {
    /// From 1.
    pub iteration: usize,
    /// Positions from this iteration's self-play games.
    pub positions: usize,
    /// Training examples in the window (symmetries included).
    pub window_examples: usize,
    /// Optimiser steps taken.
    pub train_steps: usize,
    /// Mean policy cross-entropy over the last epoch.
    pub policy_loss: f64,
    /// Mean value MSE over the last epoch.
    pub value_loss: f64,
    /// The arena against the current network.
    pub gate: Gate,
    /// Seconds of self-play, training and arena.
    pub seconds: [f64; 3],
}

/// The saved state of a run (`OUT/coach.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CoachState {
    format: String,
    config: CoachConfig,
    reports: Vec<IterationReport>,
    /// Examples of the last `window_iterations` iterations, oldest first,
    /// without their symmetries.
    window: Vec<Vec<Example>>,
    /// The network kept after the last iteration (relative to the directory).
    net: Option<String>,
}

const STATE_FORMAT: &str = "kibitzer-alphazero-coach-v1";

/// What is happening, for a progress display.
#[derive(Clone, Debug)]
pub enum CoachEvent<'a> {
    /// An iteration's phase began: "self-play", "training" or "arena".
    Phase {
        /// From 1.
        iteration: usize,
        /// The phase.
        phase: &'static str,
    },
    /// An iteration finished and was saved.
    Iteration(&'a IterationReport),
}

/// A self-play training run in a directory.
pub struct Coach {
    config: CoachConfig,
    dir: PathBuf,
    net: AlphaZeroNet,
    state: CoachState,
}

impl Coach {
    /// A new run in `dir` (created; it must not hold a run already).
    pub fn new(config: CoachConfig, dir: &Path, device: &Device) -> Result<Coach, CoachError> {
        config.validate()?;
        let state_path = dir.join(files::STATE);
        if state_path.exists() {
            return Err(CoachError::State {
                path: state_path,
                problem: "a run is already here: resume it, or choose another directory".into(),
            });
        }
        std::fs::create_dir_all(dir.join(files::NETS)).map_err(|e| ModelError::io(dir, e))?;
        let net = AlphaZeroNet::new(config.net.clone(), device)?;
        Ok(Coach {
            state: CoachState {
                format: STATE_FORMAT.into(),
                config: config.clone(),
                reports: Vec::new(),
                window: Vec::new(),
                net: None,
            },
            config,
            dir: dir.to_owned(),
            net,
        })
    }

    /// The run saved in `dir`, to continue from its last finished
    /// iteration. `iterations`, when given, replaces the saved total (to
    /// train further); every other setting is the saved one.
    pub fn resume(
        dir: &Path,
        iterations: Option<usize>,
        device: &Device,
    ) -> Result<Coach, CoachError> {
        let path = dir.join(files::STATE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let mut state: CoachState = serde_json::from_str(&text).map_err(|e| CoachError::State {
            path: path.clone(),
            problem: format!("not a coach state: {e}"),
        })?;
        if state.format != STATE_FORMAT {
            return Err(CoachError::State {
                path,
                problem: format!("format {:?}, expected {STATE_FORMAT:?}", state.format),
            });
        }
        if let Some(n) = iterations {
            state.config.iterations = n;
        }
        state.config.validate()?;
        let net = match &state.net {
            Some(file) => AlphaZeroNet::load(dir.join(file), device)?,
            None => AlphaZeroNet::new(state.config.net.clone(), device)?,
        };
        if net.config() != &state.config.net {
            return Err(CoachError::State {
                path,
                problem: "the saved network's config differs from the run's".into(),
            });
        }
        Ok(Coach {
            config: state.config.clone(),
            dir: dir.to_owned(),
            net,
            state,
        })
    }

    /// The settings.
    pub fn config(&self) -> &CoachConfig {
        &self.config
    }

    /// The current network (the last one kept).
    pub fn net(&self) -> &AlphaZeroNet {
        &self.net
    }

    /// Reports of the finished iterations.
    pub fn reports(&self) -> &[IterationReport] {
        &self.state.reports
    }

    /// Runs the remaining iterations, saving after each, and copies the
    /// final network to `OUT/best.safetensors`.
    pub fn run(&mut self, on_event: &mut dyn FnMut(CoachEvent<'_>)) -> Result<(), CoachError> {
        while self.state.reports.len() < self.config.iterations {
            let iteration = self.state.reports.len() + 1;
            let report = self.iteration(iteration, on_event)?;
            self.save(iteration, report)?;
            on_event(CoachEvent::Iteration(
                self.state
                    .reports
                    .last()
                    .expect("save pushed this iteration's report"),
            ));
        }
        self.net.save(self.dir.join(files::BEST))?;
        Ok(())
    }

    /// The seed of `purpose` in `iteration`.
    fn seed(&self, iteration: usize, purpose: u64) -> u64 {
        use rand::RngExt;
        game_rng(self.config.seed, ((iteration as u64) << 8) | purpose).random()
    }

    fn iteration(
        &mut self,
        iteration: usize,
        on_event: &mut dyn FnMut(CoachEvent<'_>),
    ) -> Result<IterationReport, CoachError> {
        let size = self.config.net.board_size;
        on_event(CoachEvent::Phase {
            iteration,
            phase: "self-play",
        });
        let clock = Instant::now();
        let mcts = self.config.self_play_mcts();
        let games_seed = self.seed(iteration, 1);
        let games: Vec<Vec<Example>> = (0..self.config.episodes)
            .into_par_iter()
            .map(|g| {
                use rand::RngExt;
                let seed = game_rng(games_seed, g as u64).random();
                self_play_game(&self.net, &mcts, seed)
            })
            .collect::<Result<_, _>>()?;
        let fresh: Vec<Example> = games.into_iter().flatten().collect();
        let positions = fresh.len();
        self.state.window.push(fresh);
        let excess = self
            .state
            .window
            .len()
            .saturating_sub(self.config.window_iterations);
        self.state.window.drain(..excess);
        let self_play_s = clock.elapsed().as_secs_f64();

        on_event(CoachEvent::Phase {
            iteration,
            phase: "training",
        });
        let clock = Instant::now();
        let examples: Vec<Example> = self
            .state
            .window
            .iter()
            .flatten()
            .flat_map(|e| Symmetry::ALL.map(|s| e.transformed(s, size)))
            .collect();
        let mut trainer = AlphaZeroTrainer::new(
            self.net.clone(),
            self.config.lr,
            // alpha-zero-general's Adam: no weight decay, no clipping.
            AdamWConfig {
                weight_decay: 0.0,
                grad_clip_norm: None,
                ..AdamWConfig::default()
            },
        )?;
        let mut rng = game_rng(self.seed(iteration, 2), 0);
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let (mut steps, mut policy_sum, mut value_sum, mut last_epoch_steps) = (0, 0.0, 0.0, 0);
        for epoch in 0..self.config.epochs {
            order.shuffle(&mut rng);
            if epoch + 1 == self.config.epochs {
                (policy_sum, value_sum) = (0.0, 0.0);
            }
            let mut epoch_steps = 0;
            for chunk in order.chunks_exact(self.config.batch_size) {
                let mut batch = AlphaZeroBatch::default();
                for &i in chunk {
                    let e = &examples[i];
                    batch.boards.extend_from_slice(&e.board);
                    batch.policies.extend_from_slice(&e.policy);
                    batch.values.push(e.value);
                }
                let loss = trainer.train_step(&batch)?;
                policy_sum += loss.policy;
                value_sum += loss.value;
                epoch_steps += 1;
            }
            steps += epoch_steps;
            last_epoch_steps = epoch_steps;
        }
        let denominator = last_epoch_steps.max(1) as f64;
        let train_s = clock.elapsed().as_secs_f64();

        on_event(CoachEvent::Phase {
            iteration,
            phase: "arena",
        });
        let clock = Instant::now();
        let candidate = trainer.net;
        let report = net_vs_net(
            &candidate,
            &self.net,
            &self.config.arena_mcts(),
            &ArenaConfig {
                games: self.config.arena_games,
                seed: self.seed(iteration, 3),
                random_opening_plies: self.config.arena_opening_plies,
                max_plies: None,
            },
        )?;
        let (new_wins, old_wins, draws) =
            (report.total.wins, report.total.losses, report.total.draws);
        let decisive = new_wins + old_wins;
        let accepted =
            decisive > 0 && new_wins as f64 / decisive as f64 >= self.config.update_threshold;
        if accepted {
            self.net = candidate;
        }
        Ok(IterationReport {
            iteration,
            positions,
            window_examples: examples.len(),
            train_steps: steps,
            policy_loss: policy_sum / denominator,
            value_loss: value_sum / denominator,
            gate: Gate {
                new_wins,
                old_wins,
                draws,
                accepted,
            },
            seconds: [self_play_s, train_s, clock.elapsed().as_secs_f64()],
        })
    }

    /// Saves the network kept and then the state that names it, so a crash
    /// between the two leaves the previous iteration's state intact.
    fn save(&mut self, iteration: usize, report: IterationReport) -> Result<(), CoachError> {
        let file = format!("{}/iter-{iteration:03}.safetensors", files::NETS);
        self.net.save(self.dir.join(&file))?;
        self.state.net = Some(file);
        self.state.config = self.config.clone();
        self.state.reports.push(report);
        write_json(&self.dir.join(files::STATE), &self.state)?;
        Ok(())
    }
}

/// `a` against `b`, both searching with `mcts`, in an arena.
pub fn net_vs_net(
    a: &AlphaZeroNet,
    b: &AlphaZeroNet,
    mcts: &MctsConfig,
    arena: &ArenaConfig,
) -> Result<ArenaReport, CoachError> {
    let start =
        Othello::new(a.config().board_size).map_err(|e| ModelError::Config(e.to_string()))?;
    Ok(run_arena(
        &start,
        arena,
        |seed| MctsAgent::new(*mcts, a.clone(), seed).map(|p| p.with_name("new")),
        |seed| MctsAgent::new(*mcts, b.clone(), seed).map(|p| p.with_name("old")),
    )?)
}

/// A fixed opponent of the final check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Baseline {
    /// A uniformly random legal move.
    Random,
    /// The move that flips the most discs.
    Greedy,
}

/// `net` (MCTS with `mcts`) against a baseline player in an arena of
/// `arena.games` games, colours alternating.
pub fn net_vs_baseline(
    net: &AlphaZeroNet,
    baseline: Baseline,
    mcts: &MctsConfig,
    arena: &ArenaConfig,
) -> Result<ArenaReport, CoachError> {
    let start =
        Othello::new(net.config().board_size).map_err(|e| ModelError::Config(e.to_string()))?;
    let make_net =
        |seed| MctsAgent::new(*mcts, net.clone(), seed).map(|p| p.with_name("alphazero"));
    Ok(match baseline {
        Baseline::Random => run_arena(&start, arena, make_net, |seed| {
            Ok::<_, Infallible>(RandomAgent::new(seed))
        })?,
        Baseline::Greedy => run_arena(&start, arena, make_net, |seed| {
            Ok::<_, Infallible>(GreedyAgent::new(seed))
        })?,
    })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    fn tiny(seed: u64) -> CoachConfig {
        CoachConfig {
            net: AlphaZeroConfig {
                width: 32,
                n_blocks: 2,
                seed,
                ..AlphaZeroConfig::new(4)
            },
            iterations: 2,
            episodes: 4,
            simulations: 8,
            epochs: 2,
            batch_size: 32,
            arena_games: 4,
            arena_opening_plies: 1,
            seed,
            ..CoachConfig::reference(4)
        }
    }

    #[test]
    fn symmetries_move_board_and_policy_together() {
        let size = 6;
        let mut position = Othello::new(size).unwrap();
        let mv = position.legal_moves()[0];
        position.play(mv).unwrap();
        let mut board = vec![0.0; 36];
        position.encode_signed(&mut board);
        let mut policy = vec![0.0; 37];
        for m in position.legal_moves() {
            policy[position.action_index(m)] = 1.0;
        }
        let example = Example {
            board,
            policy,
            value: 1.0,
        };
        for s in Symmetry::ALL {
            let t = example.transformed(s, size);
            let image = position.transformed(s);
            let mut expected = vec![0.0; 36];
            image.encode_signed(&mut expected);
            assert_eq!(t.board, expected, "{s:?}");
            // The legal moves of the image are the images of the legal moves.
            for m in image.legal_moves() {
                assert_eq!(t.policy[image.action_index(m)], 1.0, "{s:?}");
            }
            assert_eq!(
                t.policy.iter().sum::<f32>(),
                example.policy.iter().sum::<f32>()
            );
        }
    }

    #[test]
    fn self_play_examples_are_consistent_with_the_game() {
        let config = tiny(3);
        let net = AlphaZeroNet::new(config.net.clone(), &Device::flex()).unwrap();
        let examples = self_play_game(&net, &config.self_play_mcts(), 11).unwrap();
        // A 4x4 game has at most 12 square moves plus passes.
        assert!(
            examples.len() >= 4 && examples.len() <= 20,
            "{}",
            examples.len()
        );
        for e in &examples {
            assert!((e.policy.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!([-1.0, 0.0, 1.0].contains(&e.value));
        }
        // Consecutive positions without a pass have opposite movers.
        let first = &examples[0];
        assert_eq!(first.board.iter().filter(|&&v| v != 0.0).count(), 4);
        // Same seed, same game.
        assert_eq!(
            examples,
            self_play_game(&net, &config.self_play_mcts(), 11).unwrap()
        );
    }

    #[test]
    fn a_resumed_run_reaches_the_same_network() {
        let device = Device::flex();
        let whole = tempfile::tempdir().unwrap();
        let mut coach = Coach::new(tiny(5), whole.path(), &device).unwrap();
        coach.run(&mut |_| {}).unwrap();
        assert_eq!(coach.reports().len(), 2);
        let r = &coach.reports()[0];
        assert_eq!(r.window_examples, 8 * r.positions);
        assert!(r.train_steps >= 2 * (r.window_examples / 32));
        assert_eq!(r.gate.new_wins + r.gate.old_wins + r.gate.draws, 4);

        let split = tempfile::tempdir().unwrap();
        let mut first = Coach::new(
            CoachConfig {
                iterations: 1,
                ..tiny(5)
            },
            split.path(),
            &device,
        )
        .unwrap();
        first.run(&mut |_| {}).unwrap();
        let mut rest = Coach::resume(split.path(), Some(2), &device).unwrap();
        rest.run(&mut |_| {}).unwrap();
        let untimed = |reports: &[IterationReport]| {
            reports
                .iter()
                .map(|r| IterationReport {
                    seconds: [0.0; 3],
                    ..r.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(untimed(rest.reports()), untimed(coach.reports()));
        let boards: Vec<Othello> = {
            let mut p = Othello::new(4).unwrap();
            let mut out = vec![p];
            for _ in 0..4 {
                let mv = p.legal_moves()[0];
                p.play(mv).unwrap();
                out.push(p);
            }
            out
        };
        let a = kibitzer_sae::ops::to_host(coach.net().predict(&boards).unwrap().log_policy);
        let b = kibitzer_sae::ops::to_host(rest.net().predict(&boards).unwrap().log_policy);
        assert_eq!(a, b);
        assert!(split.path().join(files::BEST).exists());
        // A second run in the same directory is refused.
        assert!(matches!(
            Coach::new(tiny(5), split.path(), &device),
            Err(CoachError::State { .. })
        ));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let mut c = tiny(1);
        c.batch_size = 1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("batch_size"), "{e}");
        c = tiny(1);
        c.arena_games = 3;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("arena_games")
        );
    }
}
