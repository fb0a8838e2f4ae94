//! Ground truth on synthetic data: every architecture, trained by the shared
//! trainer from one pass, recovers a planted dictionary; the saved files
//! (normalisation folded in) work on raw activations.

use burn::tensor::Device;
use kibitzer_sae::metrics::evaluate;
use kibitzer_sae::synth::{SyntheticActivations, SyntheticConfig, mmcs_of};
use kibitzer_sae::train::presets::{
    PLANTED_RECOVERY_MEMBERS, planted_recovery, planted_recovery_data,
};
use kibitzer_sae::train::{RunOptions, Sweep};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const K: usize = 5;

fn planted() -> SyntheticConfig {
    let config = planted_recovery_data(11);
    assert_eq!(config.mean_active_features, K as f64);
    config
}

#[test]
fn every_architecture_recovers_the_planted_dictionary() {
    let device = Device::flex();
    let config = planted();
    let dir = tempfile::tempdir().unwrap();
    let members = planted_recovery(config.d_in, 256, K, 512, 800, 3, &device).unwrap();
    let mut sweep = Sweep::new(members, &device).unwrap();
    let mut options = RunOptions::new(dir.path());
    options.progress = false;
    options.checkpoint_every = 0;
    options.log_every = 100;
    let mut train_rows = SyntheticActivations::new(config.clone()).unwrap();
    sweep.run(&mut train_rows, &options).unwrap();

    let mut report = Vec::new();
    for name in PLANTED_RECOVERY_MEMBERS {
        // What a user gets: the saved files, loaded back.
        let sae = kibitzer_sae::saelens::load(dir.path().join(name), &device).unwrap();
        let truth = SyntheticActivations::new(config.clone()).unwrap();
        let mmcs = mmcs_of(&sae, &truth).unwrap();
        // Held-out raw rows (far past the training rows), no normalisation.
        let mut held_out = SyntheticActivations::new(config.clone()).unwrap();
        held_out.seek(1 << 40);
        let m = evaluate(&sae, &mut held_out, 8192, 2048, &device)
            .unwrap()
            .metrics;
        report.push(format!(
            "{name}: MMCS {mmcs:.3} L0 {:.2} FVU {:.4}",
            m.l0, m.fvu
        ));
        assert!(
            mmcs >= 0.9,
            "{name}: MMCS {mmcs:.3} < 0.9\n{}",
            report.join("\n")
        );
        assert!(
            m.fvu < 0.15,
            "{name}: FVU {:.4} on raw held-out rows\n{}",
            m.fvu,
            report.join("\n")
        );
        if name == "topk" || name == "batchtopk" {
            let off = (m.l0 - K as f64).abs() / K as f64;
            assert!(
                off <= 0.2,
                "{name}: L0 {:.2} is {:.0}% from k = {K}",
                m.l0,
                100.0 * off
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}
