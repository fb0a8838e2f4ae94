use super::*;
use crate::train::XTrainer;
use crate::xcoder::{Xcoder, XcoderConfig};
use kibitzer_sae::train::TrainConfig;

fn dev() -> Device {
    Device::flex()
}

fn config(arch: Architecture) -> CltConfig {
    CltConfig {
        architecture: arch,
        n_layers: 3,
        d_model: 5,
        d_transcoder: 4,
        input_hook: "hook_resid_mid".into(),
        output_hook: "hook_mlp_out".into(),
    }
}

fn jumprelu() -> Architecture {
    Architecture::JumpRelu { bandwidth: 0.05 }
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A CLT with every allowed weight, bias and threshold random (thresholds
/// small, so some features fire and some do not).
fn random_clt(arch: Architecture, seed: u64) -> Clt {
    let c = config(arch);
    let clt = Clt::init(c.clone(), seed, &dev()).unwrap();
    let mut p = clt.params().clone();
    let (d, f) = (c.d_in(), c.d_sae());
    p.b_enc = from_host(values(f, seed + 1), 1, f, &dev()).mul_scalar(0.3);
    p.b_dec = from_host(values(d, seed + 2), 1, d, &dev());
    if p.threshold.is_some() || matches!(c.architecture, Architecture::BatchTopK { .. }) {
        let theta: Vec<f32> = values(f, seed + 3).iter().map(|v| v.abs() * 0.4).collect();
        p.threshold = Some(from_host(theta, 1, f, &dev()));
    }
    Clt::from_params(c, p).unwrap()
}

#[test]
fn init_gives_the_clt_structure() {
    let c = config(jumprelu());
    let clt = Clt::init(c.clone(), 7, &dev()).unwrap();
    let (w_enc, w_dec) = (
        to_host(clt.params().w_enc.clone()),
        to_host(clt.params().w_dec.clone()),
    );
    let (n, d, f) = (3, 5, 4);
    for i in 0..n * d {
        for j in 0..n * f {
            let allowed = i / d == j / f;
            assert_eq!(w_enc[i * n * f + j] != 0.0, allowed, "encoder ({i}, {j})");
        }
    }
    for j in 0..n * f {
        let row = &w_dec[j * n * d..(j + 1) * n * d];
        let source = j / f;
        assert!(
            row[..source * d].iter().all(|&v| v == 0.0),
            "feature {j} writes before its layer"
        );
        assert!(row[source * d..].iter().all(|&v| v != 0.0));
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit decoder row, got {norm}");
    }
    assert_eq!(clt.encoder(1).unwrap().dims(), [d, f]);
    assert_eq!(clt.decoder(1).unwrap().dims(), [f, 2 * d]);
    assert_eq!(clt.decoder(2).unwrap().dims(), [f, d]);
    assert!(clt.decoder(3).is_err());
    // Same seed, same weights.
    let again = Clt::init(c, 7, &dev()).unwrap();
    assert_eq!(to_host(again.params().w_dec.clone()), w_dec);
}

#[test]
fn weights_outside_the_structure_are_refused() {
    let clt = random_clt(jumprelu(), 1);
    let mut p = clt.params().clone();
    // Layer 1's feature 0 writing to layer 0's output: not causal.
    let mut dec = to_host(p.w_dec.clone());
    dec[4 * 15] = 0.5;
    p.w_dec = from_host(dec, 12, 15, &dev());
    let e = Clt::from_params(clt.config().clone(), p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("decoder has weights outside"), "{e}");
    let mut p = clt.params().clone();
    p.threshold = None;
    let e = Clt::from_params(clt.config().clone(), p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a threshold"), "{e}");
}

#[test]
fn configs_name_what_is_wrong() {
    let e = config(Architecture::TopK { k: 2 })
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("batchtopk"), "{e}");
    let e = config(Architecture::BatchTopK { k: 13 })
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("1..=12"), "{e}");
    let mut c = config(jumprelu());
    c.input_hook = "blocks.0.hook_resid_mid".into();
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("without the `blocks.<l>.` prefix")
    );

    let blocks = config(jumprelu()).row_blocks();
    let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "blocks.0.hook_resid_mid",
            "blocks.1.hook_resid_mid",
            "blocks.2.hook_resid_mid",
            "blocks.0.hook_mlp_out",
            "blocks.1.hook_mlp_out",
            "blocks.2.hook_mlp_out"
        ]
    );
    let parsed = CltConfig::from_blocks(jumprelu(), &blocks, 4).unwrap();
    assert_eq!(parsed, config(jumprelu()));
    let mut swapped = blocks.clone();
    swapped.swap(1, 2);
    let e = CltConfig::from_blocks(jumprelu(), &swapped, 4)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("store 2 holds \"blocks.2.hook_resid_mid\", expected layer 1"),
        "{e}"
    );
    let mut mixed = blocks.clone();
    mixed[4] = Block::new("blocks.1.hook_resid_post", 5);
    let e = CltConfig::from_blocks(jumprelu(), &mixed, 4)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("store 5 holds blocks.1.hook_resid_post, expected blocks.1.hook_mlp_out"),
        "{e}"
    );
    let mut narrow = blocks.clone();
    narrow[3].width = 4;
    let e = CltConfig::from_blocks(jumprelu(), &narrow, 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("width 5"), "{e}");
    let e = CltConfig::from_blocks(jumprelu(), &blocks[..3], 4)
        .unwrap_err()
        .to_string();
    assert!(e.contains("got 3 stores"), "{e}");
}

/// A replacement model computes each layer's features from that layer's
/// input alone and each layer's output from the features so far: the same
/// numbers as the stacked dictionary.
#[test]
fn layer_by_layer_matches_the_stacked_forward() {
    for arch in [
        jumprelu(),
        Architecture::Standard,
        Architecture::BatchTopK { k: 3 },
    ] {
        let clt = random_clt(arch.clone(), 11);
        let (n, d) = (3, 5);
        let x = from_host(values(6 * n * d, 12), 6, n * d, &dev()).mul_scalar(2.0);
        let stacked = clt.forward(x.clone());
        let features: Vec<Tensor<2>> = (0..n)
            .map(|l| clt.encode_layer(l, x.clone().narrow(1, l * d, d)).unwrap())
            .collect();
        let got_f = to_host(Tensor::cat(features.clone(), 1));
        let want_f = to_host(stacked.features);
        assert!(
            got_f.iter().any(|&v| v > 0.0) && got_f.contains(&0.0),
            "{arch:?}: some fire, some not"
        );
        for (g, w) in got_f.iter().zip(&want_f) {
            assert!((g - w).abs() < 1e-5, "{arch:?} features {g} vs {w}");
        }
        for t in 0..n {
            let got = to_host(clt.decode_layer(t, &features[..=t]).unwrap());
            let want = to_host(stacked.reconstruction.clone().narrow(1, t * d, d));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{arch:?} layer {t}: {g} vs {w}");
            }
        }
        assert!(clt.decode_layer(2, &features[..2]).is_err());
    }
}

/// circuit-tracer's formula, computed by hand from the saved files: what
/// `load_clt(dir).forward(x)` computes.
#[test]
fn saved_files_hold_circuit_tracers_layout() {
    let dir = tempfile::tempdir().unwrap();
    for arch in [
        jumprelu(),
        Architecture::Standard,
        Architecture::BatchTopK { k: 3 },
    ] {
        let clt = random_clt(arch.clone(), 21);
        let out = dir.path().join(arch.name());
        let meta = serde_json::json!({"model": "test"});
        crate::format::save(&Xcoder::Clt(clt.clone()), &out, &meta).unwrap();
        let (n, d, f) = (3usize, 5usize, 4usize);
        let rows = 4;
        let x = values(rows * n * d, 22)
            .iter()
            .map(|v| v * 2.0)
            .collect::<Vec<f32>>();
        let file = |name: String| {
            let bytes = std::fs::read(out.join(format!("{name}.safetensors"))).unwrap();
            kibitzer_sae::io::read_f32_safetensors(&bytes).unwrap().0
        };
        let get = |tensors: &[HostTensorRef], name: String, shape: &[usize]| -> Vec<f32> {
            let t = tensors
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("{name}"));
            assert_eq!(t.shape, shape, "{name}");
            t.data.clone()
        };
        let mut features = vec![vec![0f32; rows * f]; n];
        let mut recon = vec![vec![0f32; rows * d]; n];
        for l in 0..n {
            let enc = file(format!("W_enc_{l}"));
            let w = get(&enc, format!("W_enc_{l}"), &[f, d]);
            let b = get(&enc, format!("b_enc_{l}"), &[f]);
            let b_dec = get(&enc, format!("b_dec_{l}"), &[d]);
            let theta = enc.iter().any(|t| t.name == format!("threshold_{l}"));
            assert_eq!(theta, !matches!(arch, Architecture::Standard), "{arch:?}");
            let theta = theta.then(|| get(&enc, format!("threshold_{l}"), &[f]));
            for r in 0..rows {
                let xr = &x[r * n * d + l * d..][..d];
                for j in 0..f {
                    let pre: f32 = b[j] + (0..d).map(|i| xr[i] * w[j * d + i]).sum::<f32>();
                    features[l][r * f + j] = match &theta {
                        Some(t) => {
                            if pre > t[j] {
                                pre
                            } else {
                                0.0
                            }
                        }
                        None => pre.max(0.0),
                    };
                }
                for i in 0..d {
                    recon[l][r * d + i] += b_dec[i];
                }
            }
        }
        for l in 0..n {
            let dec = file(format!("W_dec_{l}"));
            let w = get(&dec, format!("W_dec_{l}"), &[f, n - l, d]);
            for r in 0..rows {
                for j in 0..f {
                    let a = features[l][r * f + j];
                    for t in l..n {
                        for i in 0..d {
                            recon[t][r * d + i] += a * w[(j * (n - l) + (t - l)) * d + i];
                        }
                    }
                }
            }
        }
        let ours = clt.forward(from_host(x.clone(), rows, n * d, &dev()));
        let (our_f, our_y) = (to_host(ours.features), to_host(ours.reconstruction));
        for r in 0..rows {
            for l in 0..n {
                for j in 0..f {
                    let (g, w) = (our_f[r * n * f + l * f + j], features[l][r * f + j]);
                    assert!(
                        (g - w).abs() < 1e-5,
                        "{arch:?} feature ({r}, {l}, {j}): {g} vs {w}"
                    );
                }
                for i in 0..d {
                    let (g, w) = (our_y[r * n * d + l * d + i], recon[l][r * d + i]);
                    assert!(
                        (g - w).abs() < 1e-4,
                        "{arch:?} output ({r}, {l}, {i}): {g} vs {w}"
                    );
                }
            }
        }
        let yaml = std::fs::read_to_string(out.join("config.yaml")).unwrap();
        assert!(yaml.contains("model_kind: cross_layer_transcoder"));
        assert!(yaml.contains("feature_input_hook: hook_resid_mid"));
        // And back, exactly.
        let Xcoder::Clt(back) = crate::format::load(&out, &dev()).unwrap() else {
            panic!("loads as a CLT");
        };
        assert_eq!(back.config(), clt.config());
        for ((name, a), (_, b)) in back.params().named().into_iter().zip(clt.params().named()) {
            assert_eq!(to_host(a), to_host(b), "{name}");
        }
        // Without kibitzer's cfg.json (a directory circuit-tracer wrote):
        // JumpReLU or ReLU from the tensors, hooks from config.yaml.
        std::fs::remove_file(out.join("cfg.json")).unwrap();
        let Xcoder::Clt(bare) = crate::format::load(&out, &dev()).unwrap() else {
            panic!("loads as a CLT");
        };
        let expected = match arch {
            Architecture::Standard => "standard",
            _ => "jumprelu",
        };
        assert_eq!(bare.config().architecture.name(), expected);
        assert_eq!((bare.config().n_layers, bare.config().d_transcoder), (3, 4));
        assert_eq!(
            to_host(
                bare.forward(from_host(x, rows, n * d, &dev()))
                    .reconstruction
            ),
            our_y
        );
    }
}

type HostTensorRef = kibitzer_sae::io::HostTensor;

#[test]
fn damaged_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let clt = random_clt(jumprelu(), 3);
    crate::format::save(&Xcoder::Clt(clt), dir.path(), &serde_json::Value::Null).unwrap();
    let dec1 = dir.path().join("W_dec_1.safetensors");
    let bytes = kibitzer_sae::io::f32_safetensors(
        &[kibitzer_sae::io::HostTensor {
            name: "W_dec_1".into(),
            shape: vec![4, 3, 5],
            data: vec![0.0; 60],
        }],
        None,
    )
    .unwrap();
    std::fs::write(&dec1, bytes).unwrap();
    let e = crate::format::load(dir.path(), &dev())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("W_dec_1.safetensors") && e.contains("expected [4, 2, 5]"),
        "{e}"
    );
    std::fs::write(dir.path().join("W_enc_3.safetensors"), b"x").unwrap();
    let e = crate::format::load(dir.path(), &dev())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("W_enc_3.safetensors but its config says n_layers = 3"),
        "{e}"
    );
}

#[test]
fn folding_scales_is_exact() {
    let clt = random_clt(jumprelu(), 5);
    let (n, d) = (3, 5);
    let scales = [0.5f32, 2.0, 3.0, 0.25, 4.0, 1.5];
    let folded = clt.fold_scales(&scales).unwrap();
    let x = values(4 * n * d, 6);
    let scaled_x: Vec<f32> = x
        .chunks(d)
        .enumerate()
        .flat_map(|(i, c)| c.iter().map(move |v| v * scales[i % n]).collect::<Vec<_>>())
        .collect();
    let normalised = clt.forward(from_host(scaled_x, 4, n * d, &dev()));
    let raw = folded.forward(from_host(x, 4, n * d, &dev()));
    for (a, b) in to_host(normalised.features)
        .iter()
        .zip(to_host(raw.features))
    {
        assert!((a - b).abs() < 1e-5, "features {a} vs {b}");
    }
    let (a, b) = (
        to_host(normalised.reconstruction),
        to_host(raw.reconstruction),
    );
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        // Normalised outputs are the raw ones times their block's scale.
        let scale = scales[n + (i % (n * d)) / d];
        assert!(
            (a / scale - b).abs() < 1e-4,
            "output {i}: {a} / {scale} vs {b}"
        );
    }
    assert!(clt.fold_scales(&scales[..5]).is_err());
}

/// Training moves only the weights the structure allows: a broken mask
/// would put weights outside it, which `from_params` refuses.
#[test]
fn training_keeps_the_structure() {
    for arch in [
        jumprelu(),
        Architecture::BatchTopK { k: 3 },
        Architecture::Standard,
    ] {
        let c = config(arch.clone());
        let config = XcoderConfig::Clt(c.clone());
        let clt = config.init(2, &dev()).unwrap();
        let before = to_host(clt.params().w_dec.clone());
        let mut training = TrainConfig::for_architecture(&arch, c.d_sae(), 20);
        training.batch_size = 32;
        training.lr = 1e-2;
        training.threshold_start_step = 1;
        let mut trainer = XTrainer::new(clt, training).unwrap();
        for step in 0..20 {
            let rows = from_host(values(32 * 30, 100 + step), 32, 30, &dev());
            trainer.step(rows);
        }
        let Xcoder::Clt(trained) = trainer.dict.clone() else {
            panic!("still a CLT");
        };
        let after = to_host(trained.params().w_dec.clone());
        assert_ne!(before, after, "{arch:?}: training changed the decoder");
        Clt::from_params(c.clone(), trained.params().clone())
            .unwrap_or_else(|e| panic!("{arch:?}: {e}"));
        assert!(trainer.dict.check_shapes().is_ok());
    }
}

/// The step's structured products give the dense products' loss, features
/// and reconstruction, and their gradients wherever the structure allows a
/// weight (zero elsewhere): for the dense step of every CLT architecture
/// (AuxK on dead features included) and the fused host BatchTopK step.
#[test]
fn structured_products_match_the_dense_step() {
    use kibitzer_sae::arch::{self, L0Penalty, StepInputs};
    let (rows, width) = (16, 15);
    let x = from_host(values(rows * width, 32), rows, width, &dev()).mul_scalar(2.0);
    let y = from_host(values(rows * width, 33), rows, width, &dev());
    let dead: Vec<f32> = (0..12).map(|j| (j % 3 == 0) as u8 as f32).collect();
    let inputs = StepInputs {
        sparsity_coefficient: 0.3,
        p: 1.0,
        dead_mask: Some(from_host(dead, 1, 12, &dev())),
        n_dead: 4,
        k_aux: 3,
        auxk_alpha: 0.25,
        l0: L0Penalty::default(),
        levels: None,
    };
    type Step = fn(&arch::StepModel<'_>, Tensor<2>, Tensor<2>, &StepInputs) -> arch::StepOutput;
    let steps: [(&str, Step); 2] = [("dense", arch::dense_step), ("host", arch::step)];
    for architecture in [
        jumprelu(),
        Architecture::Standard,
        Architecture::BatchTopK { k: 3 },
    ] {
        let clt = random_clt(architecture.clone(), 31);
        let xcoder = Xcoder::Clt(clt.clone());
        let structured = xcoder.step_model();
        assert!(structured.cross_layer.is_some());
        let mut dense = structured.clone();
        dense.cross_layer = None;
        let want = arch::dense_step(&dense, x.clone(), y.clone(), &inputs);
        let want_grads = clt.mask_grads(want.grads);
        let want_loss = want.loss.read();
        for (name, step) in steps {
            let got = step(&structured, x.clone(), y.clone(), &inputs);
            let what = format!("{architecture:?} {name}");
            let close = |a: Vec<f32>, b: Vec<f32>, part: &str| {
                assert_eq!(a.len(), b.len(), "{what} {part}");
                for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{what} {part}[{i}]: {a} vs {b}"
                    );
                }
            };
            close(
                to_host(got.features),
                to_host(want.features.clone()),
                "features",
            );
            close(
                to_host(got.reconstruction),
                to_host(want.reconstruction.clone()),
                "reconstruction",
            );
            let loss = got.loss.read();
            close(
                vec![loss.mse as f32, loss.sparsity as f32, loss.aux as f32],
                vec![
                    want_loss.mse as f32,
                    want_loss.sparsity as f32,
                    want_loss.aux as f32,
                ],
                "loss",
            );
            // The fused host step accumulates dW_enc over whole input rows
            // (sparse in the features, not in the structure): the trainer's
            // mask_grads clears the rest. The structured dense step writes
            // zeros there itself.
            let grads = if name == "host" {
                clt.mask_grads(got.grads)
            } else {
                got.grads
            };
            for ((tensor, a), (_, b)) in grads.named().into_iter().zip(want_grads.named()) {
                close(to_host(a), to_host(b), tensor);
            }
        }
    }
}
