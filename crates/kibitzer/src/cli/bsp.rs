//! `kibitzer bsp labels` and `kibitzer eval bsp`: board-state properties at
//! labelled tokens, and a dictionary judged against them.

use super::CliResult;
use clap::{Args, ValueEnum};
use kibitzer::board_eval::{
    Baselines, RowCheck, check_rows_match_labels, dictionary_activations, evaluate_against_board,
    raw_activations,
};
use kibitzer_bsp::labelling::{
    DescribePosition, LabelledPositions, read_labels_jsonl, write_labels_jsonl,
};
use kibitzer_bsp::othello::{OthelloBspOptions, othello_bsps};
use kibitzer_bsp::{BspLabels, BspSet, Catalog, MetricsConfig, ProbeConfig};
use kibitzer_games::dataset::OthelloDataset;
use kibitzer_sae::DeviceChoice;
use kibitzer_store::{ReaderConfig, Store};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Which game's BSP set.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum GameArg {
    Othello,
    #[cfg(feature = "chess")]
    Chess,
}

#[derive(Args, Debug)]
pub struct LabelsArgs {
    /// Which game.
    #[arg(long, value_enum)]
    pub game: GameArg,
    /// Othello: a game dataset (`kibitzer games generate othello`).
    #[arg(long)]
    pub games: Option<PathBuf>,
    /// Chess: the games, a PGN file or rated games as JSON lines (.jsonl).
    #[arg(long)]
    pub pgn: Option<PathBuf>,
    /// Label at most this many games.
    #[arg(long)]
    pub max_games: Option<usize>,
    /// Chess: cut each ChessGPT transcript to this many characters (reference 002: 256).
    #[arg(long)]
    pub max_chars: Option<usize>,
    /// Keep the first N labelled positions of each game (reference 002 keeps 20 dots).
    #[arg(long)]
    pub first_per_game: Option<usize>,
    /// Write here (atomically) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One JSON object per line (the only format; accepted for clarity).
    #[arg(long)]
    pub jsonl: bool,
}

/// The BSP set of a game: Othello of `size` with every family, or chess
/// with the low-level pieces and the high-level concepts.
pub fn othello_set(
    size: usize,
) -> Result<BspSet<kibitzer_games::othello::Othello>, kibitzer_bsp::BspError> {
    othello_bsps(size, OthelloBspOptions::default())
}

#[cfg(feature = "chess")]
use kibitzer::board_eval::chess_set;

fn emit<P: DescribePosition + Clone + Sync>(
    a: &LabelsArgs,
    positions: LabelledPositions<P>,
    set: &BspSet<P>,
) -> CliResult {
    let positions = match a.first_per_game {
        Some(n) => positions.first_per_game(n),
        None => positions,
    };
    let labels = set.label(&positions.positions)?;
    if labels.rows() == 0 {
        let input = a.pgn.as_ref().or(a.games.as_ref());
        return Err(format!(
            "{}: no positions to label (the games have no moves{}); expected at least one game with moves",
            input.map_or_else(|| "the input".to_string(), |p| p.display().to_string()),
            if a.first_per_game == Some(0) { ", or --first-per-game is 0" } else { "" }
        )
        .into());
    }
    // Fault injection (tests): a kill after labelling, before writing.
    kibitzer_store::fault::point("labels.labelled");
    match &a.out {
        Some(path) => {
            // The labeller's atomic rename would replace a device, FIFO or
            // symlink (`--out /dev/null`) with a regular file: refuse first.
            kibitzer_sae::io::check_replaceable(path)?;
            kibitzer_bsp::labelling::save_labels_jsonl(path, &positions, &labels)?;
            eprintln!(
                "{} labelled positions x {} properties -> {}",
                labels.rows(),
                set.len(),
                path.display()
            );
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = std::io::BufWriter::new(stdout.lock());
            write_labels_jsonl(&mut lock, &positions, &labels)?;
            lock.flush()?;
        }
    }
    Ok(())
}

pub fn labels(a: &LabelsArgs) -> CliResult {
    match a.game {
        GameArg::Othello => {
            let path = a
                .games
                .as_ref()
                .ok_or("--game othello needs --games FILE (an Othello game dataset)")?;
            let dataset = OthelloDataset::open(path)?;
            let n = a.max_games.unwrap_or(dataset.len()).min(dataset.len());
            let games: Vec<_> = dataset.iter().take(n).collect();
            let size = dataset.board_size();
            let positions = kibitzer_bsp::labelling::othello_at_moves(size, &games)?;
            emit(a, positions, &othello_set(size)?)
        }
        #[cfg(feature = "chess")]
        GameArg::Chess => {
            let path = a.pgn.as_ref().ok_or("--game chess needs --pgn FILE")?;
            let games = kibitzer_games::files::read_chess_games(path, a.max_games)?;
            let positions = kibitzer_bsp::labelling::chess_at_dots(&games, a.max_chars)?;
            emit(a, positions, &chess_set()?)
        }
    }
}

#[derive(Args, Debug)]
pub struct EvalBspArgs {
    /// A saved dictionary (SAELens layout). Without one, only the baselines
    /// (--neurons, --probes) of the activations are scored.
    #[arg(long)]
    pub sae: Option<PathBuf>,
    /// Activation store: row i is the activation at labelled position i
    /// (checked against the store's example/position columns).
    #[arg(long)]
    pub activations: PathBuf,
    /// Labels from `kibitzer bsp labels` (JSON lines), in the store's row order.
    #[arg(long)]
    pub labels: PathBuf,
    /// Which game's BSP set the labels use.
    #[arg(long, value_enum)]
    pub game: GameArg,
    /// Othello board side.
    #[arg(long, default_value_t = 8)]
    pub size: usize,
    /// Fraction of games held out for board reconstruction.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Seed of the train/test split and of the probes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also score the raw neurons of the site as features.
    #[arg(long)]
    pub neurons: bool,
    /// Also train supervised linear probes on the raw activations.
    #[arg(long)]
    pub probes: bool,
    /// Probes: passes over the train rows (reference 002's defaults suit
    /// millions of rows; small sets need more).
    #[arg(long, default_value_t = ProbeConfig::default().epochs)]
    pub probe_epochs: usize,
    /// Probes: AdamW learning rate.
    #[arg(long, default_value_t = ProbeConfig::default().learning_rate)]
    pub probe_lr: f32,
    /// Rows per batch through the dictionary.
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Write report.json and report.md here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn catalog_of(a: &EvalBspArgs) -> Result<Arc<Catalog>, Box<dyn std::error::Error>> {
    Ok(match a.game {
        GameArg::Othello => othello_set(a.size)?.catalog().clone(),
        #[cfg(feature = "chess")]
        GameArg::Chess => chess_set()?.catalog().clone(),
    })
}

fn open_reader(
    store: &Store,
) -> Result<kibitzer_store::ShuffledReader, Box<dyn std::error::Error>> {
    Ok(store.reader(ReaderConfig::in_order())?)
}

pub fn eval_bsp(a: &EvalBspArgs) -> CliResult {
    let device = a.device.device()?;
    let (refs, labels): (_, BspLabels) = read_labels_jsonl(&a.labels, catalog_of(a)?)?;
    let rows = labels.rows();
    if a.sae.is_none() && !a.neurons && !a.probes {
        return Err("eval bsp scores nothing: give --sae DIR, --neurons or --probes".into());
    }
    let store = Store::open(&a.activations)?;
    if let RowCheck::Unchecked { warning } = check_rows_match_labels(&store, &refs, &a.labels)? {
        eprintln!("{warning}");
    }
    let features = match &a.sae {
        Some(path) => {
            let sae = kibitzer_sae::saelens::load(path, &device)?;
            Some(dictionary_activations(
                &sae,
                &mut open_reader(&store)?,
                rows,
                a.batch_size,
                &device,
            )?)
        }
        None => None,
    };
    let raw = if a.neurons || a.probes {
        Some(raw_activations(&mut open_reader(&store)?, rows)?)
    } else {
        None
    };
    let baselines = Baselines {
        neurons: a.neurons,
        probes: a.probes.then(|| ProbeConfig {
            seed: a.seed,
            epochs: a.probe_epochs,
            learning_rate: a.probe_lr,
            ..ProbeConfig::default()
        }),
    };
    let name = a
        .sae
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dictionary".into());
    let evaluation = evaluate_against_board(
        &name,
        features.as_ref(),
        raw.as_ref(),
        &labels,
        &refs,
        a.test_fraction,
        a.seed,
        &MetricsConfig::default(),
        &baselines,
    )?;
    let mut categories: Vec<&str> = labels
        .catalog()
        .bsps()
        .iter()
        .map(|b| b.category.as_str())
        .collect();
    categories.dedup();
    categories.sort_unstable();
    categories.dedup();
    categories.push("all");
    let reports: Vec<_> = evaluation
        .dictionary
        .iter()
        .chain(evaluation.neurons.as_ref())
        .collect();
    let probes: Vec<_> = evaluation.probes.iter().collect();
    let table = kibitzer_bsp::report::comparison_markdown(&reports, &probes, &categories);
    let json = serde_json::json!({
        "dictionary": evaluation.dictionary,
        "neurons": evaluation.neurons,
        "probes": evaluation.probes,
    });
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        kibitzer_sae::io::check_replaceable(&out.join("report.json"))?;
        kibitzer_sae::io::atomic_write(
            &out.join("report.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
        let mut md = table.clone();
        for r in &reports {
            md.push('\n');
            md.push_str(&r.markdown());
        }
        if let Some(p) = &evaluation.probes {
            md.push('\n');
            md.push_str(&p.markdown());
        }
        kibitzer_sae::io::atomic_write(&out.join("report.md"), md.as_bytes())?;
        eprintln!(
            "report: {} and {}",
            out.join("report.json").display(),
            out.join("report.md").display()
        );
    }
    println!("{table}");
    Ok(())
}
