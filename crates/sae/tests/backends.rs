//! The same numbers on every backend: each architecture's training step on a
//! GPU backend (wgpu, also through a software Vulkan driver, or CUDA) agrees
//! with the CPU, and training there lowers the loss.
//!
//! The backend under test comes from `KIBITZER_TEST_DEVICE` (`wgpu`, `cuda`
//! or `cuda:N`) in a build with that feature:
//!
//! ```sh
//! KIBITZER_TEST_DEVICE=wgpu cargo test -p kibitzer-sae --features wgpu --test backends
//! ```
//!
//! Without the variable the tests print why they did nothing.

use burn::tensor::{Device, Tensor};
use kibitzer_sae::arch::{self, Architecture, StepInputs};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_sae::synth::{SyntheticActivations, SyntheticConfig};
use kibitzer_sae::train::estimate_input_scale;
use kibitzer_sae::train::presets::planted_recovery;
use kibitzer_sae::{DeviceChoice, Sae, SaeConfig};
use kibitzer_store::ActivationSource;

fn device_under_test() -> Option<Device> {
    let name = std::env::var("KIBITZER_TEST_DEVICE").ok()?;
    let choice: DeviceChoice = name.parse().expect("KIBITZER_TEST_DEVICE names a device");
    match choice.device() {
        Ok(device) => Some(device),
        Err(e) => panic!("KIBITZER_TEST_DEVICE={name}, but {e}"),
    }
}

fn skip(test: &str) {
    eprintln!("{test}: skipped, KIBITZER_TEST_DEVICE is not set (see this file's header)");
}

fn architectures() -> Vec<Architecture> {
    vec![
        Architecture::Standard,
        Architecture::Gated,
        Architecture::TopK { k: 4 },
        Architecture::BatchTopK { k: 4 },
        Architecture::JumpRelu { bandwidth: 0.05 },
    ]
}

fn rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut synth = SyntheticActivations::new(SyntheticConfig {
        d_in: d,
        n_features: 2 * d,
        mean_active_features: 4.0,
        seed,
        ..SyntheticConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    synth.next_batch(n, &mut out).unwrap();
    out
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn every_architecture_steps_like_the_cpu() {
    let Some(device) = device_under_test() else {
        return skip("every_architecture_steps_like_the_cpu");
    };
    let cpu = Device::flex();
    let (d_in, d_sae, batch) = (32, 96, 64);
    let x = rows(batch, d_in, 5);
    for arch in architectures() {
        let sae_cpu = Sae::init(SaeConfig::new(arch.clone(), d_in, d_sae), 1, &cpu);
        let sae_dev = sae_cpu.to_device(&device);
        let inputs = |dev: &Device| StepInputs {
            sparsity_coefficient: 0.5,
            p: 1.0,
            // Every third latent dead, so AuxK runs.
            dead_mask: Some(from_host(
                (0..d_sae).map(|j| (j % 3 == 0) as u8 as f32).collect(),
                1,
                d_sae,
                dev,
            )),
            n_dead: d_sae.div_ceil(3),
            k_aux: 8,
            auxk_alpha: 1.0 / 32.0,
            l0: Default::default(),
            // BatchTopK trains as a Matryoshka dictionary here: the CPU's
            // fused nested step against the dense one on the device.
            levels: matches!(arch, Architecture::BatchTopK { .. }).then(|| vec![8, 32, d_sae]),
        };
        let on = |sae: &Sae, device: &Device| {
            let rows = from_host(x.clone(), batch, d_in, device);
            arch::step(&sae.step_model(), rows.clone(), rows, &inputs(device))
        };
        let (a, b) = (on(&sae_cpu, &cpu), on(&sae_dev, &device));
        let recon = max_rel_diff(&to_host(b.reconstruction), &to_host(a.reconstruction));
        assert!(
            recon < 1e-4,
            "{}: reconstruction differs by {recon}",
            arch.name()
        );
        for ((name, ga), (_, gb)) in a.grads.named().into_iter().zip(b.grads.named()) {
            let diff = max_rel_diff(&to_host(gb), &to_host(ga));
            assert!(
                diff < 1e-3,
                "{}: gradient of {name} differs by {diff} (relative to its largest entry)",
                arch.name()
            );
        }
    }
}

#[test]
fn training_on_the_device_lowers_the_loss() {
    let Some(device) = device_under_test() else {
        return skip("training_on_the_device_lowers_the_loss");
    };
    let (d_in, d_sae, batch, steps) = (32, 96, 128, 60);
    let mut data = rows(batch * steps, d_in, 9);
    // The presets expect rows of mean norm sqrt(d_in), as the sweep scales them.
    let scale = estimate_input_scale(&data, d_in);
    data.iter_mut().for_each(|v| *v *= scale);
    for member in planted_recovery(d_in, d_sae, 4, batch, steps, 2, &device).unwrap() {
        let mut trainer = member.trainer;
        let fvus: Vec<f32> = data
            .chunks(batch * d_in)
            .map(|chunk| {
                let x: Tensor<2> = from_host(chunk.to_vec(), batch, d_in, &device);
                trainer.step(x).fvu.into_scalar::<f32>()
            })
            .collect();
        let (first, last) = (
            fvus[..5].iter().sum::<f32>() / 5.0,
            fvus[steps - 5..].iter().sum::<f32>() / 5.0,
        );
        assert!(
            last < 0.7 * first,
            "{}: FVU went from {first} to {last} on {device:?}",
            member.name
        );
    }
}
