//! Command-line parsing and dispatch. Each area has its own module; this one
//! only names the commands.

mod bench;
mod bsp;
mod demo;
mod games;
mod sae;
mod sweep;
mod vis;

use clap::{Parser, Subcommand};

/// An error for the user: printed with its causes, exit status 1.
pub type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Dictionary learning on models that play board games.
#[derive(Parser, Debug)]
#[command(name = "kibitzer", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The main job on an embedded default: synthetic activations with a
    /// planted dictionary, a small sweep of SAEs, their metrics.
    Demo(demo::DemoArgs),
    /// Sparse autoencoders: make activations, train, evaluate.
    #[command(subcommand)]
    Sae(sae::SaeCommand),
    /// Games: perft, arena, play, datasets, PGN import, UCI engines.
    #[command(subcommand)]
    Games(games::GamesCommand),
    /// Board-state properties: labels at tokens.
    #[command(subcommand)]
    Bsp(BspCommand),
    /// Evaluations that need more than activations.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Speed measurements.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// A grid of SAEs from one pass over activations of labelled positions,
    /// judged on reconstruction and the board: scaling.json, table, charts.
    Sweep(sweep::SweepArgs),
    /// A static HTML feature viewer of a sweep, opened from the file system.
    Vis(vis::VisArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Sae(cmd) => sae::run(cmd),
        Command::Games(cmd) => games::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Bsp(BspCommand::Labels(a)) => bsp::labels(&a),
        Command::Eval(EvalCommand::Bsp(a)) => bsp::eval_bsp(&a),
        Command::Sweep(a) => sweep::run(&a),
        Command::Vis(a) => vis::run(&a),
    }
}

#[derive(Subcommand, Debug)]
enum BspCommand {
    /// Print (or write) one JSON object per labelled position: game, ply,
    /// token, FEN or board, and every board-state property's value.
    Labels(bsp::LabelsArgs),
}

#[derive(Subcommand, Debug)]
enum EvalCommand {
    /// Coverage and board reconstruction of a dictionary's features (and
    /// optionally of the raw neurons and linear probes) against labels.
    Bsp(bsp::EvalBspArgs),
}
