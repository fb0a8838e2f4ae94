//! circuit-tracer's own loader opens CLTs kibitzer wrote and computes the
//! same features and reconstructions (`scripts/check_circuit_tracer.py`).
//!
//! Needs Python with circuit-tracer (`pip install circuit-tracer`, with
//! torch and safetensors); skipped, saying so, when it cannot be imported,
//! unless `KIBITZER_REQUIRE_CIRCUIT_TRACER=1` makes that a failure.

#![cfg(feature = "flex")]

use burn::tensor::Device;
use kibitzer_sae::Architecture;
use kibitzer_sae::dictionary::Dictionary;
use kibitzer_sae::io::{HostTensor, f32_safetensors};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_xcoder::{Clt, CltConfig, Xcoder, format};
use rand::{RngExt, SeedableRng};
use std::path::Path;
use std::process::Command;

fn circuit_tracer_available() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import circuit_tracer.transcoder.cross_layer_transcoder",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A CLT of `arch` with random weights within its structure, random
/// biases and small thresholds.
fn clt(arch: Architecture, seed: u64) -> Clt {
    let device = Device::flex();
    let config = CltConfig {
        architecture: arch.clone(),
        n_layers: 3,
        d_model: 8,
        d_transcoder: 6,
        input_hook: "hook_resid_mid".into(),
        output_hook: "hook_mlp_out".into(),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut p = Clt::init(config.clone(), seed, &device)
        .unwrap()
        .params()
        .clone();
    let mut random = |n: usize, scale: f32| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    };
    p.b_enc = from_host(random(18, 0.3), 1, 18, &device);
    p.b_dec = from_host(random(24, 1.0), 1, 24, &device);
    if !matches!(arch, Architecture::Standard) {
        let theta = random(18, 0.3).into_iter().map(f32::abs).collect();
        p.threshold = Some(from_host(theta, 1, 18, &device));
    }
    Clt::from_params(config, p).unwrap()
}

/// `[rows, n d]` stacked rows as `[n, rows, d]`.
fn layer_major(data: &[f32], rows: usize, n: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for r in 0..rows {
        for l in 0..n {
            out[(l * rows + r) * d..][..d].copy_from_slice(&data[(r * n + l) * d..][..d]);
        }
    }
    out
}

fn write_probe(clt: &Clt, path: &Path, seed: u64) {
    let (n, d, f) = (3, 8, 6);
    let rows = 5;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..rows * n * d)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let forward = clt.forward(from_host(x.clone(), rows, n * d, &Device::flex()));
    let features = to_host(forward.features);
    assert!(
        features
            .chunks(n * f)
            .all(|row| row.iter().any(|&v| v > 0.0)),
        "every probe row has an active feature"
    );
    let tensor = |name: &str, data: Vec<f32>, width: usize| HostTensor {
        name: name.into(),
        shape: vec![n, rows, width],
        data,
    };
    let bytes = f32_safetensors(
        &[
            tensor("x", layer_major(&x, rows, n, d), d),
            tensor("features", layer_major(&features, rows, n, f), f),
            tensor(
                "reconstruction",
                layer_major(&to_host(forward.reconstruction), rows, n, d),
                d,
            ),
        ],
        None,
    )
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn circuit_tracer_opens_kibitzer_clts() {
    if !circuit_tracer_available() {
        assert!(
            std::env::var("KIBITZER_REQUIRE_CIRCUIT_TRACER").as_deref() != Ok("1"),
            "KIBITZER_REQUIRE_CIRCUIT_TRACER=1 but `import circuit_tracer` fails"
        );
        eprintln!("skipped: circuit-tracer is not importable (pip install circuit-tracer)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, arch) in [
        Architecture::JumpRelu { bandwidth: 0.001 },
        Architecture::BatchTopK { k: 4 },
        Architecture::Standard,
    ]
    .into_iter()
    .enumerate()
    {
        let clt = clt(arch.clone(), i as u64 + 1);
        let out = dir.path().join(arch.name());
        format::save(&Xcoder::Clt(clt.clone()), &out, &serde_json::Value::Null).unwrap();
        write_probe(
            &clt,
            &dir.path()
                .join(format!("{}.probe.safetensors", arch.name())),
            9,
        );
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_circuit_tracer.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "circuit-tracer disagrees:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.contains("\"activation\": \"jump_relu\"")
            && stdout.contains("\"activation\": \"relu\"")
    );
}
