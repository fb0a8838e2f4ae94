//! `kibitzer gpt ...`: an OthelloGPT or a ChessGPT from the command line,
//! over [`kibitzer::gpt`]: `train` fits a GPT to a games file, `eval`
//! scores its legal-move predictions, and `harvest` writes its activations
//! at a TransformerLens hook site into an activation store whose rows line
//! up with the labels of `kibitzer bsp labels` for the same games file.

use super::CliResult;
use super::sae::DtypeArg;
use clap::{Args, Subcommand};
use kibitzer::gpt::{self, EvalReport, HarvestSettings, TrainSettings};
use kibitzer_hooks::HookSite;
use kibitzer_sae::DeviceChoice;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum GptCommand {
    /// Train an OthelloGPT (on an Othello dataset) or a ChessGPT (on chess
    /// games); saves it in TransformerLens layout (config.json +
    /// model.safetensors) with checkpoints and resume.
    Train(TrainArgs),
    /// Legal-move accuracy and the next-token loss of a saved GPT on a
    /// games file (Othello: the top-1 next token is a legal square; chess:
    /// the move the model writes greedily is legal SAN).
    Eval(EvalArgs),
    /// Activations of a saved GPT at a hook site into an activation store,
    /// in the row order of `kibitzer bsp labels` (Othello: one row per
    /// move; chess: one row per `.` of the transcript, White to move).
    Harvest(HarvestArgs),
}

/// Runs a `gpt` command. The crates' error messages already carry their
/// causes ("games.bin: No such file or directory"), so the error is passed
/// on as one message rather than a chain that would print each cause twice.
pub fn run(cmd: GptCommand) -> CliResult {
    let result = match cmd {
        GptCommand::Train(a) => train(&a),
        GptCommand::Eval(a) => eval(&a),
        GptCommand::Harvest(a) => harvest_store(&a),
    };
    result.map_err(|error| error.to_string().into())
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Games to train on: an Othello dataset (`kibitzer games generate
    /// othello`; the board size comes from the file) trains an OthelloGPT,
    /// chess games (.pgn or .jsonl) a ChessGPT.
    #[arg(long)]
    pub games: PathBuf,
    /// Output directory: the model (config.json, model.safetensors), the
    /// checkpoint, run.json and training.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Blocks [default: 8, OthelloGPT's].
    #[arg(long)]
    pub layers: Option<usize>,
    /// Attention heads per block [default: 8].
    #[arg(long)]
    pub heads: Option<usize>,
    /// Residual stream width, a multiple of --heads [default: 512].
    #[arg(long)]
    pub d_model: Option<usize>,
    /// MLP hidden width [default: 4 x --d-model].
    #[arg(long)]
    pub d_mlp: Option<usize>,
    /// Context length; longer games are cut to their first n_ctx tokens
    /// [default: Othello the longest possible game, size^2 - 4; chess 1023
    /// characters, Karvonen's].
    #[arg(long)]
    pub n_ctx: Option<usize>,
    /// Optimiser steps [default: 1000]; with --resume, extends (or
    /// shortens) the run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Games per step [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (AdamW, cosine decay to 10%) [default: 1e-3].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear warm-up steps [default: 100, or a tenth of --steps if fewer].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Evaluate on the held-out games every N steps (and at the end); 0:
    /// only at the end [default: 100].
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Checkpoint every N steps (and at the end); 0: only at the end
    /// [default: 500].
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Games held out for the evaluation loss and the legal-move accuracy:
    /// the last N of the file [default: a tenth of the games, at most 1000].
    #[arg(long)]
    pub eval_games: Option<usize>,
    /// Seed of the initial weights and of the batch order [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Continue the run in --out from its checkpoint; the model and
    /// training settings are the run's (only --steps, --eval-every and
    /// --checkpoint-every may change).
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A saved GPT directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Games to score, of the model's game (held-out games: another seed of
    /// `kibitzer games generate`).
    #[arg(long)]
    pub games: PathBuf,
    /// Score the first N games only.
    #[arg(long)]
    pub max_games: Option<usize>,
    /// Games (chess: moves being written) per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct HarvestArgs {
    /// A saved GPT directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Games to run the model on, of the model's game.
    #[arg(long)]
    pub games: PathBuf,
    /// TransformerLens hook site, e.g. blocks.1.hook_resid_post,
    /// blocks.0.mlp.hook_post, blocks.2.attn.hook_z.
    #[arg(long)]
    pub site: String,
    /// Output directory (a new activation store).
    #[arg(long)]
    pub out: PathBuf,
    /// The first N games only (pass the same --max-games to `kibitzer bsp labels`).
    #[arg(long)]
    pub max_games: Option<usize>,
    /// Games per forward pass [default: as many as --memory-mib holds].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Memory a forward pass and the rows it yields may take, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mib: usize,
    /// Keep only the first n_ctx tokens of games longer than the model's
    /// context (label with `kibitzer bsp labels --first-per-game <n_ctx>`
    /// for Othello, `--max-chars <n_ctx>` for chess, so the rows still line
    /// up); without it such a game is an error.
    #[arg(long)]
    pub truncate: bool,
    /// Disk precision.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Rows per shard file.
    #[arg(long, default_value_t = 65_536)]
    pub rows_per_shard: usize,
    /// Replace an existing store in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Activations of a freshly initialised GPT of the same shape, with
    /// this seed, instead of the trained weights: the random-init baseline
    /// of reference 002.
    #[arg(long)]
    pub random_init: Option<u64>,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    fn settings(&self) -> TrainSettings {
        TrainSettings {
            layers: self.layers,
            heads: self.heads,
            d_model: self.d_model,
            d_mlp: self.d_mlp,
            n_ctx: self.n_ctx,
            steps: self.steps,
            batch_size: self.batch_size,
            lr: self.lr,
            warmup: self.warmup,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            eval_games: self.eval_games,
            seed: self.seed,
        }
    }
}

/// `kibitzer gpt train`: a new run, or `--resume` of the run in `--out`
/// ([`gpt::train`]).
pub fn train(a: &TrainArgs) -> CliResult {
    let device = a.device.device()?;
    let report = gpt::train(&a.games, &a.out, &a.settings(), a.resume, &device, !a.quiet)?;
    if let Some(step) = report.resumed_at {
        eprintln!(
            "resumed {} at step {step} of {}",
            a.out.display(),
            report.train.steps
        );
    }
    if report.cut > 0 {
        eprintln!(
            "{} games are longer than n_ctx = {}: the model trained on their first {1} tokens",
            report.cut, report.model.n_ctx
        );
    }
    match report.last {
        Some(log) => println!(
            "step {}: train loss {:.4}  eval loss {}  (uniform guess {:.4})  held-out legal moves {}  -> {}",
            log.step,
            log.train_loss,
            log.eval_loss
                .map_or_else(|| "-".into(), |e| format!("{e:.4}")),
            report.uniform_loss,
            report
                .held_out_legal_move_accuracy
                .map_or_else(|| "-".into(), |a| format!("{a:.4}")),
            a.out.display()
        ),
        None => println!("no steps taken -> {}", a.out.display()),
    }
    Ok(())
}

/// `kibitzer gpt eval` ([`gpt::evaluate_games`]).
pub fn eval(a: &EvalArgs) -> CliResult {
    let device = a.device.device()?;
    let report: EvalReport =
        gpt::evaluate_games(&a.model, &a.games, a.max_games, a.batch_size, &device)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: legal moves {:.4} ({} of {} positions in {} games)  eval loss {:.4}  (uniform guess {:.4})",
            a.model.display(),
            report.legal_move_accuracy,
            report.legal,
            report.positions,
            report.games_scored,
            report.eval_loss,
            report.uniform_loss
        );
    }
    Ok(())
}

/// `kibitzer gpt harvest`: the model's activations at `--site` into a new
/// store, in the row order of `kibitzer bsp labels` ([`gpt::harvest_games`]
/// states it).
pub fn harvest_store(a: &HarvestArgs) -> CliResult {
    let site: HookSite = a.site.parse().map_err(|e| format!("--site: {e}"))?;
    let device = a.device.device()?;
    let settings = HarvestSettings {
        site,
        max_games: a.max_games,
        batch_size: a.batch_size,
        memory_mib: a.memory_mib,
        truncate: a.truncate,
        dtype: a.dtype.into(),
        rows_per_shard: a.rows_per_shard,
        overwrite: a.overwrite,
        random_init: a.random_init,
        progress: !a.quiet,
    };
    let report = gpt::harvest_games(&a.model, &a.games, &a.out, &settings, &device)?;
    if report.cut > 0 {
        eprintln!(
            "{} games were cut to their first {} {}: label them with `kibitzer bsp labels {}`",
            report.cut, report.n_ctx, report.token_name, report.label_flag
        );
    }
    println!(
        "wrote {} rows of width {} at {site} from {} games to {}",
        report.rows,
        report.d_in,
        report.games,
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }

    /// Every flag lands in its setting; unset flags stay `None` (the
    /// library's defaults, and no conflict on `--resume`).
    #[test]
    fn flags_become_settings() {
        let argv = [
            "train",
            "--games",
            "g.bin",
            "--out",
            "o",
            "--layers",
            "2",
            "--heads",
            "4",
            "--d-model",
            "32",
            "--d-mlp",
            "40",
            "--n-ctx",
            "20",
            "--steps",
            "300",
            "--batch-size",
            "16",
            "--lr",
            "0.01",
            "--warmup",
            "7",
            "--eval-every",
            "50",
            "--checkpoint-every",
            "100",
            "--eval-games",
            "9",
            "--seed",
            "3",
        ];
        let s = Train::try_parse_from(argv).unwrap().args.settings();
        assert_eq!(
            s,
            TrainSettings {
                layers: Some(2),
                heads: Some(4),
                d_model: Some(32),
                d_mlp: Some(40),
                n_ctx: Some(20),
                steps: Some(300),
                batch_size: Some(16),
                lr: Some(0.01),
                warmup: Some(7),
                eval_every: Some(50),
                checkpoint_every: Some(100),
                eval_games: Some(9),
                seed: Some(3),
            }
        );
        let s = Train::try_parse_from(["train", "--games", "g", "--out", "o"])
            .unwrap()
            .args
            .settings();
        assert_eq!(s, TrainSettings::default());
    }
}
