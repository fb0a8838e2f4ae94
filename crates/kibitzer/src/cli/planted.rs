//! `kibitzer sae planted`: planted-dictionary recovery. Synthetic
//! activations with a planted dictionary, one SAE of every architecture
//! trained from one pass over them, and a report of how well each recovered
//! the planted features. The quickest check that every architecture trains.

use super::CliResult;
use clap::Args;
use kibitzer_sae::DeviceChoice;
use kibitzer_sae::train::presets::{planted_recovery, planted_recovery_data};
use kibitzer_sae::train::{RunOptions, Sweep};
use kibitzer_store::{Dtype, ReaderConfig, Store};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct PlantedArgs {
    /// Where the activations, dictionaries and report go.
    #[arg(long, default_value = "runs/planted")]
    pub out: PathBuf,
    /// Synthetic rows to generate and train on.
    #[arg(long, default_value_t = 400_000)]
    pub rows: usize,
    /// Seed of everything.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, cuda, cuda:N or wgpu.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: &PlantedArgs) -> CliResult {
    let started = Instant::now();
    let device = a.device.device()?;
    let synth = planted_recovery_data(a.seed);
    let acts = a.out.join("activations");
    let runs = a.out.join("saes");
    if runs.join("checkpoint.json").exists() || acts.exists() {
        // A finished or interrupted run: start afresh, it is cheap.
        std::fs::remove_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    }
    eprintln!(
        "1/3 writing {} synthetic rows (d_in {}, {} planted features) to {}",
        a.rows,
        synth.d_in,
        synth.n_features,
        acts.display()
    );
    kibitzer_sae::synth::write_store(&synth, &acts, a.rows, Dtype::F32, 65_536, false)?;

    let store = Store::open(&acts)?;
    let d_sae = 2 * synth.n_features;
    let batch = 512; // the batch size the preset was tuned with
    let steps = (store.rows() as usize / batch).max(1);
    let k = synth.mean_active_features.round() as usize;
    let members = planted_recovery(synth.d_in, d_sae, k, batch, steps, a.seed, &device)?;
    eprintln!(
        "2/3 training {} dictionaries ({} steps of {batch} rows, one pass shared by all)",
        members.len(),
        steps
    );
    let mut sweep = Sweep::new(members, &device)?;
    let mut reader = store.reader(ReaderConfig {
        seed: a.seed,
        memory_ceiling_bytes: 512 << 20,
        shuffle: true,
        cycle: true,
    })?;
    let options = RunOptions {
        checkpoint_every: 500,
        log_every: 25,
        progress: !a.quiet,
        stop_after: None,
        out_dir: runs.clone(),
    };
    sweep.run(&mut reader, &options)?;

    eprintln!("3/3 evaluating");
    let mut rows = Vec::new();
    for m in &sweep.members {
        let dir = runs.join(&m.name);
        let (json, evaluation) = super::sae::evaluate(&dir, &acts, Some(100_000), 4096, a.device)?;
        kibitzer_sae::io::atomic_write(
            &dir.join("metrics.json"),
            serde_json::to_string_pretty(&json)?.as_bytes(),
        )?;
        let svg = kibitzer_sae::metrics::density_histogram_svg(
            &evaluation.metrics,
            &format!("Feature density: {}", m.name),
        );
        kibitzer_sae::io::atomic_write(&dir.join("feature_density.svg"), svg.as_bytes())?;
        rows.push((m.name.clone(), json));
    }
    let mut table = String::from(
        "| dictionary | L0 | FVU | explained variance | dead % | MMCS |\n|---|---|---|---|---|---|\n",
    );
    for (name, j) in &rows {
        let num = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
        writeln!(
            table,
            "| {name} | {:.2} | {:.4} | {:.4} | {:.1} | {:.3} |",
            num("l0"),
            num("fvu"),
            num("explained_variance"),
            100.0 * num("dead_fraction"),
            num("mmcs")
        )?;
    }
    let report = serde_json::json!({
        "synthetic": synth,
        "rows": a.rows,
        "d_sae": d_sae,
        "steps": steps,
        "seconds": started.elapsed().as_secs_f64(),
        "dictionaries": rows.iter().map(|(n, j)| serde_json::json!({"name": n, "metrics": j})).collect::<Vec<_>>(),
    });
    kibitzer_sae::io::atomic_write(
        &a.out.join("report.json"),
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    let md = format!(
        "# Planted-dictionary recovery\n\nSynthetic activations: d_in {}, {} planted features, {} rows; dictionaries of {d_sae} features, {steps} steps of {batch} rows.\nMMCS: mean over planted features of the best cosine with any decoder row (1 = every planted feature found).\n\n{table}",
        synth.d_in, synth.n_features, a.rows
    );
    kibitzer_sae::io::atomic_write(&a.out.join("report.md"), md.as_bytes())?;
    println!("{table}");
    println!(
        "done in {:.0} s; report: {}, dictionaries (SAELens layout): {}",
        started.elapsed().as_secs_f64(),
        a.out.join("report.md").display(),
        runs.display()
    );
    Ok(())
}
