//! The sweep from end to end: train or resume, evaluate every run, write the outputs.

use super::evaluate::run_result;
use super::{
    EvaluationFile, FeatureStats, PositionsFile, RunSpec, ScalingReport, SweepConfig, SweepError,
    SweepGame, SweepSettings, evaluate_member, files, read_json, read_positions, scaling_charts,
    scaling_markdown, write_file, write_json, write_json_compact,
};
use crate::board_eval::{RowCheck, check_rows_match_labels};
use burn::tensor::Device;
use kibitzer_bsp::{BspLabels, TokenRef};
use kibitzer_io::{FileError, FileResultExt};
use kibitzer_sae::train::{RunOptions, Sweep};
use kibitzer_store::{ReaderConfig, Store};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// Trains (or resumes) the sweep `config` describes, evaluates every run
/// (skipping runs already evaluated at the same step, so an interrupted
/// evaluation resumes too), and writes `scaling.json`, `scaling.md`, the
/// charts and the viewer's data. Returns the report.
pub fn run_sweep(config: &SweepConfig, device: &Device) -> Result<ScalingReport, SweepError> {
    let out = &config.out;
    // Labels first: a bad label file should fail before hours of training.
    let catalog = config.game.catalog()?;
    let (mut refs, mut labels) =
        kibitzer_bsp::labelling::read_labels_jsonl(&config.labels, catalog)?;
    if let Some(n) = config.eval.rows
        && n < labels.rows()
    {
        labels = labels.select_rows(&(0..n).collect::<Vec<_>>());
        refs.truncate(n);
    }
    if labels.rows() == 0 {
        return Err(FileError::new(&config.labels, "no labelled position").into());
    }
    let store = Store::open(&config.activations)?;
    // Row i must be labelled position i: checked on the store's row columns
    // (count and order only for a store without them).
    if let RowCheck::Unchecked { warning } = check_rows_match_labels(&store, &refs, &config.labels)?
    {
        eprintln!("{warning}");
    }
    if store.rows() < labels.rows() as u64 {
        return Err(SweepError::TooFewRows {
            labels: config.labels.clone(),
            label_rows: labels.rows(),
            store: config.activations.clone(),
            store_rows: store.rows(),
        });
    }

    let settings_path = out.join(files::SETTINGS);
    let reader_config = ReaderConfig {
        seed: config.seed,
        memory_ceiling_bytes: config.shuffle_memory_bytes,
        shuffle: true,
        cycle: true,
    };
    let (mut sweep, mut reader, mut settings) = if config.resume {
        if !out.join("checkpoint.json").exists() {
            return Err(FileError::new(
                out,
                "holds no sweep checkpoint to resume; run without --resume to start one",
            )
            .into());
        }
        let settings: SweepSettings = read_json(&settings_path)?;
        let (sweep, position) = Sweep::resume(out, device)?;
        let position = serde_json::from_value(position).map_err(|e| {
            FileError::new(
                &out.join("checkpoint.json"),
                format!("the reader position is unreadable: {e}"),
            )
        })?;
        let reader = store.reader_at(reader_config, position)?;
        if config.progress {
            eprintln!(
                "resuming {} at step {} of {}",
                out.display(),
                sweep.step,
                sweep.total_steps()
            );
        }
        (sweep, reader, settings)
    } else {
        if out.join("checkpoint.json").exists() {
            return Err(FileError::new(
                out,
                "already holds a sweep; pass --resume to continue it or choose another --out",
            )
            .into());
        }
        let steps = config.grid.steps_for(store.rows());
        let members = config
            .grid
            .members(store.d_in(), steps, config.seed, device)?;
        std::fs::create_dir_all(out).at_file(out)?;
        let settings = SweepSettings {
            format: "kibitzer-sweep-settings".into(),
            grid: config.grid.clone(),
            steps,
            seed: config.seed,
            train_seconds: None,
        };
        write_json(&settings_path, &settings)?;
        (
            Sweep::new(members, device)?,
            store.reader(reader_config)?,
            settings,
        )
    };

    let saved = sweep
        .members
        .iter()
        .all(|m| out.join(&m.name).join("cfg.json").exists());
    if sweep.step < sweep.total_steps() || !saved {
        if config.progress {
            eprintln!(
                "training {} dictionaries for {} steps of {} rows, every batch shared by all",
                sweep.members.len(),
                sweep.total_steps(),
                sweep.members[0].trainer.config.batch_size
            );
        }
        let started = Instant::now();
        let options = RunOptions {
            out_dir: out.clone(),
            checkpoint_every: config.checkpoint_every,
            log_every: 50,
            progress: config.progress,
            stop_after: None,
        };
        sweep.run(&mut reader, &options)?;
        settings.train_seconds =
            Some(settings.train_seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64());
        write_json(&settings_path, &settings)?;
    }
    drop(reader);

    let (report, shown) =
        evaluate_sweep(config, &sweep, &store, (&labels, &refs), settings, device)?;
    write_outputs(out, &report, &labels, &shown, config)?;
    Ok(report)
}

fn evaluate_sweep(
    config: &SweepConfig,
    sweep: &Sweep,
    store: &Store,
    (labels, refs): (&BspLabels, &[TokenRef]),
    settings: SweepSettings,
    device: &Device,
) -> Result<(ScalingReport, BTreeSet<usize>), SweepError> {
    let out = &config.out;
    let bar =
        kibitzer_io::progress::bar(config.progress, sweep.members.len() as u64, 0, "evaluated");
    let mut runs = Vec::with_capacity(sweep.members.len());
    let mut shown = BTreeSet::new();
    for (member, (name, sae)) in sweep.members.iter().zip(sweep.inference_dictionaries()?) {
        bar.set_message(name.clone());
        let dir = out.join(&name);
        let (eval_path, features_path) = (dir.join(files::EVALUATION), dir.join(files::FEATURES));
        // A run evaluated before, with the same settings and weights, is
        // kept (its statistics re-read for the boards they show); anything
        // unreadable is evaluated again.
        let done = read_json::<EvaluationFile>(&eval_path)
            .ok()
            .filter(|done| {
                done.eval == config.eval
                    && done.seed == config.seed
                    && done.result.step == sweep.step
                    && done.result.rows == labels.rows() as u64
            })
            .and_then(|done| Some((done, read_json::<FeatureStats>(&features_path).ok()?)));
        if let Some((done, stats)) = done {
            shown.extend(
                stats
                    .features
                    .iter()
                    .flat_map(|f| f.top.iter().map(|t| t.row as usize)),
            );
            runs.push(done.result);
            bar.inc(1);
            continue;
        }
        let started = Instant::now();
        let evaluation = evaluate_member(
            &name,
            &sae,
            store,
            labels,
            refs,
            &config.eval,
            config.seed,
            device,
        )?;
        let result = run_result(
            RunSpec::of(member),
            sweep.step,
            &evaluation,
            started.elapsed().as_secs_f64(),
        );
        shown.extend(
            evaluation
                .features
                .iter()
                .flat_map(|f| f.top.iter().map(|t| t.row as usize)),
        );
        write_json_compact(
            &features_path,
            &FeatureStats {
                run: name.clone(),
                rows: labels.rows(),
                features: evaluation.features,
            },
        )?;
        let svg = kibitzer_sae::metrics::density_histogram_svg(
            &evaluation.metrics,
            &format!("Feature density: {name}"),
        );
        write_file(&dir.join(files::DENSITY_SVG), svg.as_bytes())?;
        // Written last: its presence marks the run as evaluated.
        write_json(
            &eval_path,
            &EvaluationFile {
                eval: config.eval.clone(),
                seed: config.seed,
                result: result.clone(),
            },
        )?;
        runs.push(result);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = ScalingReport {
        format: "kibitzer-scaling".into(),
        version: 1,
        activations: config.activations.display().to_string(),
        labels: config.labels.display().to_string(),
        game: config.game.name().into(),
        board_size: config.game.board_size(),
        d_in: store.d_in(),
        store_rows: store.rows(),
        settings,
        eval: config.eval.clone(),
        bsps: labels
            .catalog()
            .bsps()
            .iter()
            .map(|b| b.name.clone())
            .collect(),
        runs,
    };
    Ok((report, shown))
}

fn write_outputs(
    out: &Path,
    report: &ScalingReport,
    labels: &BspLabels,
    shown: &BTreeSet<usize>,
    config: &SweepConfig,
) -> Result<(), SweepError> {
    // The viewer draws Othello boards; a chess sweep has none to show.
    let positions = match config.game {
        SweepGame::Othello { size } => read_positions(&config.labels, shown, labels, size)?,
        #[cfg(feature = "chess")]
        SweepGame::Chess => Vec::new(),
    };
    write_json_compact(
        &out.join(files::POSITIONS),
        &PositionsFile {
            board_size: config.game.board_size(),
            positions,
        },
    )?;
    let charts_dir = out.join(files::CHARTS);
    std::fs::create_dir_all(&charts_dir).at_file(&charts_dir)?;
    let charts = scaling_charts(&report.runs);
    for (file, chart) in &charts {
        write_file(&charts_dir.join(file), chart.svg().as_bytes())?;
    }
    let chart_files: Vec<&str> = charts.iter().map(|(f, _)| f.as_str()).collect();
    write_file(
        &out.join(files::SCALING_MD),
        scaling_markdown(report, &chart_files).as_bytes(),
    )?;
    // Last: scaling.json marks a finished sweep.
    write_json(&out.join(files::SCALING_JSON), report)
}
