//! Reference 001 reproduced from Rust: AlphaZero trained on 6x6 Othello by
//! self-play, SAEs on its layer-2 residual stream at every L1 coefficient
//! and size of the reference grid, judged on the board, and the feature
//! viewer. The same steps as `kibitzer alphazero train`, `alphazero
//! harvest`, `sweep --archs standard` and `vis`, called as a library.
//!
//! ```sh
//! # Quick (about 5 minutes on 2 cores): the shipped network, 300k
//! # activations, features 256..1024, 300 steps of 2048 rows.
//! cargo run --release -p kibitzer --example reference_001_alphazero_othello -- --quick
//! # The reference: train the network (3-6 minutes), 3M activations, the
//! # 5 x 5 grid at batch 16384, lr 1e-4, 12,000 steps (hours on a CPU;
//! # add --device cuda in a build with --features cuda).
//! cargo run --release -p kibitzer --example reference_001_alphazero_othello
//! ```
//!
//! Everything lands in `runs/reference-001/`; the table is printed at the end.

use kibitzer::alphazero::{HarvestConfig, NetSource, harvest, harvest_files};
use kibitzer::sweep::{
    EvalConfig, Family, Preset, SweepConfig, SweepGame, SweepGrid, files, run_sweep,
};
use kibitzer::vis::{VisConfig, build_site};
use kibitzer_models::alphazero::coach::{Coach, CoachConfig, CoachEvent};
use kibitzer_sae::DeviceChoice;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let device_name = args
        .iter()
        .position(|a| a == "--device")
        .and_then(|i| args.get(i + 1))
        .map_or("cpu", String::as_str);
    let device = device_name.parse::<DeviceChoice>()?.device()?;
    let out = PathBuf::from("runs/reference-001");

    // 1. The network: reference 001's self-play settings, seed 0 (the
    //    shipped network is exactly this run).
    let net = if quick {
        NetSource::Shipped
    } else {
        let dir = out.join("alphazero");
        let mut coach = if dir.join("coach.json").exists() {
            Coach::resume(&dir, None, &device)?
        } else {
            Coach::new(CoachConfig::reference(6), &dir, &device)?
        };
        coach.run(&mut |event| {
            if let CoachEvent::Iteration(r) = event {
                eprintln!(
                    "iteration {:>2}: arena {}-{} (draws {}), {}",
                    r.iteration,
                    r.gate.new_wins,
                    r.gate.old_wins,
                    r.gate.draws,
                    if r.gate.accepted { "kept" } else { "rejected" }
                );
            }
        })?;
        NetSource::File(dir.join(kibitzer_models::alphazero::coach::files::BEST))
    };

    // 2. Activations of the layer-2 residual stream over the network's own
    //    games, with the board of the first games' positions.
    let harvest_dir = out.join("harvest");
    let harvested = harvest(&HarvestConfig {
        net,
        random_init: None,
        positions: if quick { 300_000 } else { 3_000_000 },
        label_games: if quick { 1000 } else { 2000 },
        site: "blocks.1.hook_resid_post".parse()?,
        temperature: 1.0,
        seed: 0,
        out: harvest_dir.clone(),
        device: device.clone(),
        progress: true,
    })?;
    eprintln!(
        "{} activations from {} games",
        harvested.rows, harvested.games
    );

    // 3. Reference 001's 25 SAEs: L1 1..5 x 256..4096 features.
    let mut grid = SweepGrid::preset(Preset::Reference);
    grid.restrict_to(&[Family::Standard]);
    if quick {
        grid.features = vec![256, 512, 1024];
        grid.batch_size = 2048;
        grid.lr = 1e-3;
        grid.steps = Some(300);
    }
    let sweep_dir = out.join("sweep");
    let report = run_sweep(
        &SweepConfig {
            activations: harvest_dir.join(harvest_files::ACTIVATIONS),
            labels: harvest_dir.join(harvest_files::LABELS),
            game: SweepGame::Othello { size: 6 },
            out: sweep_dir.clone(),
            grid,
            seed: 0,
            // A killed run continues from its last checkpoint.
            resume: sweep_dir.join("checkpoint.json").exists(),
            eval: EvalConfig::default(),
            checkpoint_every: 500,
            shuffle_memory_bytes: 2 << 30,
            progress: true,
        },
        &device,
    )?;

    // 4. The viewer.
    let site = build_site(&VisConfig {
        sweep: sweep_dir.clone(),
        out: out.join("site"),
        top: 12,
    })?;
    let table = std::fs::read_to_string(sweep_dir.join(files::SCALING_MD))?;
    println!("{}", table.split("\n## Charts").next().unwrap_or(&table));
    println!(
        "{} SAEs; scaling.json and charts in {}; viewer {}",
        report.runs.len(),
        sweep_dir.display(),
        site.index.display()
    );
    Ok(())
}
