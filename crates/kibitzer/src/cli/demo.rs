//! `kibitzer demo`: the main job on an embedded default. Reference 001 end
//! to end at a reduced size: the shipped AlphaZero network plays itself,
//! its layer-2 residual stream is harvested with the board of every
//! position, a small sweep of SAEs is trained and judged on the board, and
//! the feature viewer is built.

use super::CliResult;
use super::sweep::{PresetArg, SweepArgs};
use clap::Args;
use kibitzer::alphazero::{HarvestConfig, NetSource, harvest, harvest_files};
use kibitzer::sweep::SweepGame;
use kibitzer::sweep::{EvalConfig, SweepConfig, files, run_sweep};
use kibitzer::vis::{VisConfig, build_site};
use kibitzer_hooks::HookSite;
use kibitzer_sae::DeviceChoice;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the harvest, the sweep, the viewer and the report go.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// The network: "shipped" (trained by `kibitzer alphazero train`, in
    /// the binary) or a file of weights.
    #[arg(long, default_value = "shipped")]
    pub net: NetSource,
    /// Activation rows to harvest (reference 001: 3 million; the full job
    /// is `kibitzer alphazero harvest` then `kibitzer sweep`).
    #[arg(long, default_value_t = 400_000)]
    pub positions: usize,
    /// Games whose positions are labelled with board-state properties; the
    /// SAEs are judged on them.
    #[arg(long, default_value_t = 1500)]
    pub label_games: usize,
    /// Seed of the games, the SAEs and the train/test split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: DemoArgs) -> CliResult {
    let started = Instant::now();
    let device = a.device.device()?;
    let harvest_dir = a.out.join("harvest");
    let sweep_dir = a.out.join("sweep");
    let site_dir = a.out.join("site");
    // A finished or interrupted demo starts afresh: every part is cheap and
    // a half-written sweep from other settings must not be mixed in.
    for dir in [&harvest_dir, &sweep_dir, &site_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }

    eprintln!(
        "1/3 the network plays itself: {} positions, the first {} games labelled; harvesting blocks.1.hook_resid_post",
        a.positions, a.label_games
    );
    let harvested = harvest(&HarvestConfig {
        net: a.net.clone(),
        random_init: None,
        positions: a.positions,
        label_games: a.label_games,
        site: "blocks.1.hook_resid_post".parse::<HookSite>()?,
        temperature: 1.0,
        seed: a.seed,
        out: harvest_dir.clone(),
        device: device.clone(),
        progress: !a.quiet,
    })?;
    let harvest_s = started.elapsed().as_secs_f64();
    eprintln!(
        "    {} games, {} rows of width {}, {} labelled ({harvest_s:.0} s)",
        harvested.games, harvested.rows, harvested.width, harvested.labelled_rows
    );

    // The sweep exactly as `kibitzer sweep --preset small` runs it.
    let sweep_args = SweepArgs {
        activations: harvest_dir.join(harvest_files::ACTIVATIONS),
        labels: harvest_dir.join(harvest_files::LABELS),
        game: super::bsp::GameArg::Othello,
        size: 6,
        out: sweep_dir.clone(),
        preset: PresetArg::Small,
        archs: Vec::new(),
        features: Vec::new(),
        steps: None,
        batch_size: None,
        lr: None,
        seed: a.seed,
        resume: false,
        eval_rows: None,
        test_fraction: 0.2,
        top_examples: EvalConfig::default().top_examples,
        checkpoint_every: 1000,
        shuffle_memory_mib: 1024,
        device: a.device,
        quiet: a.quiet,
    };
    let grid = super::sweep::grid(&sweep_args)?;
    eprintln!(
        "2/3 training and judging {} SAEs on the board (small grid; the reference grid is `kibitzer sweep`)",
        grid.len()
    );
    let sweep_started = Instant::now();
    let report = run_sweep(
        &SweepConfig {
            activations: sweep_args.activations.clone(),
            labels: sweep_args.labels.clone(),
            game: SweepGame::Othello {
                size: sweep_args.size,
            },
            out: sweep_dir.clone(),
            grid,
            seed: a.seed,
            resume: false,
            eval: EvalConfig {
                test_fraction: sweep_args.test_fraction,
                ..EvalConfig::default()
            },
            checkpoint_every: sweep_args.checkpoint_every,
            shuffle_memory_bytes: sweep_args.shuffle_memory_mib << 20,
            progress: !a.quiet,
        },
        &device,
    )?;
    let sweep_s = sweep_started.elapsed().as_secs_f64();

    eprintln!("3/3 building the feature viewer");
    let site = build_site(&VisConfig {
        sweep: sweep_dir.clone(),
        out: site_dir,
        top: 12,
    })?;

    let table = std::fs::read_to_string(sweep_dir.join(files::SCALING_MD))
        .map_err(|e| format!("{}: {e}", sweep_dir.join(files::SCALING_MD).display()))?;
    // The table without the list of charts that follows it.
    println!(
        "{}",
        table
            .split("\n## Charts")
            .next()
            .unwrap_or(&table)
            .trim_end()
    );
    println!(
        "{} SAEs on {} activations in {:.0} s (harvest {harvest_s:.0} s, sweep {sweep_s:.0} s)",
        report.runs.len(),
        harvested.rows,
        started.elapsed().as_secs_f64()
    );
    println!(
        "report: {}\ncharts: {}\nviewer: {} (open it in a browser)",
        sweep_dir.join(files::SCALING_MD).display(),
        sweep_dir.join(files::CHARTS).display(),
        site.index.display()
    );
    Ok(())
}
