//! `kibitzer sweep`: reference 001's grid of SAEs (and the same grid for the
//! other architectures) trained together on the same batches of activations, judged
//! on reconstruction and on the board, with the scaling table and charts.

use super::CliResult;
use super::bsp::GameArg;
use clap::{Args, ValueEnum};
use kibitzer::sweep::{
    EvalConfig, Family, Preset, SweepConfig, SweepGame, SweepGrid, files, run_sweep,
};
use kibitzer_sae::DeviceChoice;
use std::path::PathBuf;
use std::time::Instant;

/// Ready-made grids.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PresetArg {
    /// Reference 001: L1 1..5 x features 256..4096, batch 16384, lr 1e-4,
    /// 12,000 steps; the same 5 x 5 grid for p-annealing, gated, TopK and
    /// JumpReLU.
    Reference,
    /// Features 256 and 512, a few sparsity values, batch 2048, lr 3e-3,
    /// three passes over the store: the demo's grid.
    Small,
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Preset {
        match p {
            PresetArg::Reference => Preset::Reference,
            PresetArg::Small => Preset::Small,
        }
    }
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Activation store: row i is the activation at labelled position i.
    #[arg(long)]
    pub activations: PathBuf,
    /// Labels from `kibitzer bsp labels` (JSON lines), in the store's row order.
    #[arg(long)]
    pub labels: PathBuf,
    /// The game of the labels.
    #[arg(long, value_enum)]
    pub game: GameArg,
    /// Othello board side (chess: ignored).
    #[arg(long, default_value_t = 6)]
    pub size: usize,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Which grid.
    #[arg(long, value_enum, default_value_t = PresetArg::Reference)]
    pub preset: PresetArg,
    /// Only these architectures (comma-separated: standard, panneal, gated,
    /// topk, batchtopk, jumprelu).
    #[arg(long, value_delimiter = ',')]
    pub archs: Vec<String>,
    /// Numbers of features instead of the preset's (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<usize>,
    /// Optimiser steps (default: the preset's; small: three passes over the store).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Rows per batch (default: the preset's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate of every dictionary (default: the preset's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of initialisation, data order and the train/test split of games.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the sweep in --out (training from its last checkpoint,
    /// evaluation from the first run not yet evaluated).
    #[arg(long)]
    pub resume: bool,
    /// Evaluate on the first N labelled positions only (default: all).
    #[arg(long)]
    pub eval_rows: Option<usize>,
    /// Fraction of games held out for board reconstruction.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Top-activating positions kept per feature for the viewer.
    #[arg(long, default_value_t = EvalConfig::default().top_examples)]
    pub top_examples: usize,
    /// Checkpoint every N steps.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: usize,
    /// Memory for shuffling activations, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub shuffle_memory_mib: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The grid the arguments ask for.
pub fn grid(a: &SweepArgs) -> Result<SweepGrid, Box<dyn std::error::Error>> {
    let mut grid = SweepGrid::preset(a.preset.into());
    if !a.archs.is_empty() {
        let families = a
            .archs
            .iter()
            .map(|s| s.parse::<Family>())
            .collect::<Result<Vec<_>, _>>()?;
        grid.restrict_to(&families);
    }
    if !a.features.is_empty() {
        grid.features = a.features.clone();
    }
    if let Some(s) = a.steps {
        grid.steps = Some(s);
    }
    if let Some(b) = a.batch_size {
        grid.batch_size = b;
    }
    if let Some(lr) = a.lr {
        grid.lr = lr;
    }
    grid.validate()?;
    Ok(grid)
}

pub fn run(a: &SweepArgs) -> CliResult {
    let game = match a.game {
        GameArg::Othello => SweepGame::Othello { size: a.size },
        // Chess labels (`bsp labels --game chess`): no boards for the viewer.
        #[cfg(feature = "chess")]
        GameArg::Chess => SweepGame::Chess,
    };
    if !(0.0..1.0).contains(&a.test_fraction) || a.test_fraction <= 0.0 {
        return Err(format!(
            "--test-fraction {}: expected a fraction of games in (0, 1)",
            a.test_fraction
        )
        .into());
    }
    let started = Instant::now();
    let config = SweepConfig {
        activations: a.activations.clone(),
        labels: a.labels.clone(),
        game,
        out: a.out.clone(),
        grid: grid(a)?,
        seed: a.seed,
        resume: a.resume,
        eval: EvalConfig {
            rows: a.eval_rows,
            test_fraction: a.test_fraction,
            top_examples: a.top_examples,
            ..EvalConfig::default()
        },
        checkpoint_every: a.checkpoint_every,
        shuffle_memory_bytes: a.shuffle_memory_mib.saturating_mul(1 << 20),
        progress: !a.quiet,
    };
    let report = run_sweep(&config, &a.device.device()?)?;
    for r in &report.runs {
        println!(
            "{}: MSE {:.5}  L0 {:.2}  dead {:.1}%  FVU {:.4}  coverage(board) {:.3}  reconstruction(board) {:.3}",
            r.spec.name,
            r.mse,
            r.l0,
            100.0 * r.dead_fraction,
            r.fvu,
            r.coverage.get("board").copied().unwrap_or(f64::NAN),
            r.reconstruction.get("board").copied().unwrap_or(f64::NAN),
        );
    }
    println!(
        "{} dictionaries in {:.1} s -> {} and {} (charts in {})",
        report.runs.len(),
        started.elapsed().as_secs_f64(),
        a.out.join(files::SCALING_JSON).display(),
        a.out.join(files::SCALING_MD).display(),
        a.out.join(files::CHARTS).display(),
    );
    Ok(())
}
