//! `kibitzer alphazero`: reference 001's AlphaZero on Othello — train by
//! self-play, check the network against fixed players, harvest its
//! activations over its own games for dictionaries.

use super::CliResult;
use clap::{Args, Subcommand};
use kibitzer::alphazero::{HarvestConfig, NetSource, PLAY_SIMULATIONS, final_check};
use kibitzer_games::arena::ArenaReport;
use kibitzer_hooks::HookSite;
use kibitzer_models::alphazero::coach::{Coach, CoachConfig, CoachEvent, files};
use kibitzer_sae::DeviceChoice;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand, Debug)]
pub enum AlphaZeroCommand {
    /// Train a network by self-play with MCTS, keeping each new network
    /// only if it beats the previous one in an arena; then play it against
    /// the random and greedy players.
    Train(TrainArgs),
    /// Play a network (MCTS on it) against the random and greedy players.
    Eval(EvalArgs),
    /// Games of a network against itself, their board-state labels and its
    /// activations at a hook site, aligned row for row (the input of
    /// `kibitzer sweep`).
    Harvest(HarvestArgs),
}

#[derive(Args, Debug)]
pub struct HarvestArgs {
    /// The network: a file from `alphazero train`, or "shipped".
    #[arg(long, default_value = "shipped")]
    pub net: NetSource,
    /// Activation rows (positions) wanted (reference 001: 3 million).
    #[arg(long, default_value_t = 3_000_000)]
    pub positions: usize,
    /// Games whose positions get board-state labels (the first ones).
    #[arg(long, default_value_t = 2000)]
    pub label_games: usize,
    /// Hook site (reference 001's "layer 2 residual stream": the output of
    /// the second residual block).
    #[arg(long, default_value = "blocks.1.hook_resid_post")]
    pub site: HookSite,
    /// Sampling temperature of the network's moves.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Activations of a freshly initialised network with this seed instead
    /// (the random-init baseline); the games still come from --net.
    #[arg(long)]
    pub random_init: Option<u64>,
    /// Seed of the games.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: games.bin, labels.jsonl, activations/, harvest.json.
    #[arg(long, default_value = "runs/harvest")]
    pub out: PathBuf,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl HarvestArgs {
    /// The library's settings.
    pub fn config(&self) -> Result<HarvestConfig, Box<dyn std::error::Error>> {
        Ok(HarvestConfig {
            net: self.net.clone(),
            random_init: self.random_init,
            positions: self.positions,
            label_games: self.label_games,
            site: self.site,
            temperature: self.temperature,
            seed: self.seed,
            out: self.out.clone(),
            device: self.device.device()?,
            progress: !self.quiet,
        })
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Othello board side (4, 6 or 8).
    #[arg(long, default_value_t = 6)]
    pub size: usize,
    /// Output directory (checkpoints, coach.json, best.safetensors).
    #[arg(long, default_value = "runs/alphazero")]
    pub out: PathBuf,
    /// Iterations of self-play, training and arena (reference 001: 15).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Self-play games per iteration (reference 001: 10).
    #[arg(long)]
    pub episodes: Option<usize>,
    /// MCTS simulations per move (reference 001: 32).
    #[arg(long)]
    pub simulations: Option<u32>,
    /// Arena games deciding whether a new network is kept (reference 001: 40).
    #[arg(long)]
    pub arena_games: Option<usize>,
    /// Share of wins over decisive arena games a new network needs (reference 001: 0.55).
    #[arg(long)]
    pub update_threshold: Option<f64>,
    /// Training epochs over the example window per iteration (10).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Width of the network's residual stream (reference 001: 256).
    #[arg(long)]
    pub width: Option<usize>,
    /// Seed of the weights, self-play, data order and arenas.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the run in --out from its last finished iteration (with
    /// --iterations, train further).
    #[arg(long)]
    pub resume: bool,
    /// Games against each fixed player in the final check (0: skip it).
    #[arg(long, default_value_t = 100)]
    pub check_games: usize,
    /// MCTS simulations per move of the network in the final check.
    #[arg(long, default_value_t = PLAY_SIMULATIONS)]
    pub check_simulations: u32,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide progress.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    fn config(&self) -> CoachConfig {
        let mut c = CoachConfig::reference(self.size);
        c.seed = self.seed;
        c.net.seed = self.seed;
        if let Some(v) = self.iterations {
            c.iterations = v;
        }
        if let Some(v) = self.episodes {
            c.episodes = v;
        }
        if let Some(v) = self.simulations {
            c.simulations = v;
        }
        if let Some(v) = self.arena_games {
            c.arena_games = v;
        }
        if let Some(v) = self.update_threshold {
            c.update_threshold = v;
        }
        if let Some(v) = self.epochs {
            c.epochs = v;
        }
        if let Some(v) = self.width {
            c.net.width = v;
        }
        c
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The network: a file from `alphazero train`, or "shipped" for the
    /// 6x6 network in the binary.
    #[arg(long, default_value = "shipped")]
    pub net: NetSource,
    /// Games against each fixed player.
    #[arg(long, default_value_t = 100)]
    pub games: usize,
    /// MCTS simulations per move (training searches 32).
    #[arg(long, default_value_t = PLAY_SIMULATIONS)]
    pub simulations: u32,
    /// Seed of the players.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the reports as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

pub fn run(cmd: AlphaZeroCommand) -> CliResult {
    match cmd {
        AlphaZeroCommand::Train(a) => train(&a),
        AlphaZeroCommand::Eval(a) => {
            let device = a.device.device()?;
            let net = a.net.load(&device)?;
            let reports = final_check(&net, a.simulations, a.games, a.seed)?;
            print_check(&reports);
            if let Some(path) = &a.json {
                kibitzer::alphazero::write_check(path, &reports)?;
            }
            Ok(())
        }
        AlphaZeroCommand::Harvest(a) => {
            let report = kibitzer::alphazero::harvest(&a.config()?)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

fn train(a: &TrainArgs) -> CliResult {
    let started = Instant::now();
    let device = a.device.device()?;
    let mut coach = if a.resume {
        Coach::resume(&a.out, a.iterations, &device)?
    } else {
        Coach::new(a.config(), &a.out, &device)?
    };
    let c = coach.config().clone();
    let bar = kibitzer_io::progress::bar(
        !a.quiet,
        c.iterations as u64,
        coach.reports().len() as u64,
        "iterations",
    );
    coach.run(&mut |event| match event {
        CoachEvent::Phase { phase, .. } => bar.set_message(phase),
        CoachEvent::Iteration(r) => {
            bar.inc(1);
            let line = format!(
                "iteration {:>2}: {} positions, window {} examples, {} steps, loss policy {:.3} value {:.3}; arena new {} - old {} (draws {}): {}  [{:.0} s self-play, {:.0} s training, {:.0} s arena]",
                r.iteration,
                r.positions,
                r.window_examples,
                r.train_steps,
                r.policy_loss,
                r.value_loss,
                r.gate.new_wins,
                r.gate.old_wins,
                r.gate.draws,
                if r.gate.accepted { "kept" } else { "rejected" },
                r.seconds[0],
                r.seconds[1],
                r.seconds[2],
            );
            if a.quiet {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    })?;
    bar.finish_and_clear();
    let trained_s = started.elapsed().as_secs_f64();
    let best = a.out.join(files::BEST);
    println!(
        "trained {} iterations in {:.0} s -> {}",
        c.iterations,
        trained_s,
        best.display()
    );
    if a.check_games > 0 {
        let reports = final_check(coach.net(), a.check_simulations, a.check_games, c.seed)?;
        print_check(&reports);
        kibitzer::alphazero::write_check(&a.out.join("check.json"), &reports)?;
    }
    Ok(())
}

fn print_check(reports: &[ArenaReport]) {
    for r in reports {
        println!(
            "{} vs {}: {} wins, {} draws, {} losses of {} ({:.1}% score)",
            r.player_a,
            r.player_b,
            r.total.wins,
            r.total.draws,
            r.total.losses,
            r.total.games(),
            100.0 * r.score
        );
    }
}
