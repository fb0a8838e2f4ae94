//! `kibitzer vis`: the static feature viewer of a sweep.

use super::CliResult;
use clap::Args;
use kibitzer::vis::{VisConfig, build_site};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct VisArgs {
    /// A sweep directory (`kibitzer sweep --out`).
    #[arg(long)]
    pub sweep: PathBuf,
    /// Where the site goes (open its index.html in a browser; no server needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Top-activating positions shown per feature (at most what the sweep
    /// kept, `kibitzer sweep --top-examples`).
    #[arg(long, default_value_t = 12)]
    pub top: usize,
}

pub fn run(a: &VisArgs) -> CliResult {
    let summary = build_site(&VisConfig {
        sweep: a.sweep.clone(),
        out: a.out.clone(),
        top: a.top,
    })?;
    if summary.top < a.top {
        eprintln!(
            "note: the sweep kept {} positions per feature; showing {} (rerun the sweep's evaluation with --top-examples {} for more)",
            summary.top, summary.top, a.top
        );
    }
    println!(
        "{} SAEs, {} features, {} positions each: {:.1} MiB (largest run {:.1} MiB) -> open {}",
        summary.runs,
        summary.features,
        summary.top,
        summary.bytes as f64 / (1 << 20) as f64,
        summary.largest_run_bytes as f64 / (1 << 20) as f64,
        summary.index.display()
    );
    Ok(())
}
