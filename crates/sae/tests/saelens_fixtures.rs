//! SAELens compatibility of `kibitzer_sae::saelens`:
//!
//! - the golden fixtures made with sae-lens 6.54.12 (`shared/fixtures/saelens`,
//!   beside the repository): every directory loads, and `encode` / `forward`
//!   on its `x` reproduce SAELens's `feature_acts` / `x_hat` within 1e-5
//!   **absolute** (the values are O(1); the fixtures' own float64 cross-check
//!   is ~1e-6);
//! - save then load is the identity for every architecture (configs equal,
//!   tensors bit-equal in f32), and a fixture saved again has exactly
//!   SAELens's architecture name, tensor names and shapes;
//! - float16 / bfloat16 saves load back within their precision;
//! - the errors SAELens's strict loader raises (unknown architecture, shapes
//!   that disagree with the widths, missing or extra tensors, missing `dtype`)
//!   are errors here, with messages naming the problem;
//! - legacy (pre-6) configs;
//! - folding a training-time activation scale.
//!
//! The `#[ignore]`d `export_for_python_check` writes directories for
//! `scripts/saelens_check.py` (real SAELens):
//! `KIBITZER_SAELENS_EXPORT=/tmp/kibitzer_saelens cargo test -p kibitzer-sae --test saelens_fixtures export_for_python_check -- --ignored`
#![cfg(feature = "flex")]

use burn::tensor::{Device, Tensor};
use kibitzer_sae::io::{HostTensor, f32_safetensors, read_f32_safetensors};
use kibitzer_sae::ops::{from_host, to_host};
use kibitzer_sae::saelens::{self, SaeLensError, SaveDtype, SaveOptions};
use kibitzer_sae::{Architecture, Dictionary, Params, RowNorm, Sae, SaeConfig};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Absolute tolerance against SAELens's outputs.
const TOL: f32 = 1e-5;

/// Every fixture directory and the kibitzer architecture it loads as.
const FIXTURES: [(&str, &str); 12] = [
    ("standard", "standard"),
    ("standard_no_bdec_in", "standard"),
    ("standard_constant_norm", "standard"),
    ("standard_layer_norm", "standard"),
    ("gated", "gated"),
    ("topk", "topk"),
    ("topk_rescale", "topk"),
    ("jumprelu", "jumprelu"),
    ("batchtopk", "batchtopk"),
    ("transcoder", "standard"),
    ("skip_transcoder", "standard"),
    ("jumprelu_transcoder", "jumprelu"),
];

fn dev() -> Device {
    Device::flex()
}

/// `shared/fixtures/saelens` beside the repository; a missing folder fails
/// the test rather than skipping it.
fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/saelens");
    assert!(
        dir.join("FORMAT.md").is_file(),
        "SAELens fixtures not found: looked for {} (the repository must be checked out with \
         shared/ beside it)",
        dir.join("FORMAT.md").display()
    );
    dir
}

fn read_tensors(path: &Path) -> BTreeMap<String, HostTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (tensors, _) =
        read_f32_safetensors(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tensors.into_iter().map(|t| (t.name.clone(), t)).collect()
}

fn matrix(t: &HostTensor) -> Tensor<2> {
    assert_eq!(t.shape.len(), 2, "{} is not a matrix", t.name);
    from_host(t.data.clone(), t.shape[0], t.shape[1], &dev())
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Max abs errors of `sae` against a fixture's `io.safetensors`.
fn io_errors(sae: &Sae, io_path: &Path) -> (f32, f32) {
    let io = read_tensors(io_path);
    let x = matrix(&io["x"]);
    let features = to_host(sae.encode(x.clone()));
    let forward = sae.forward(x);
    assert_eq!(forward.reconstruction.dims()[1], io["x_hat"].shape[1]);
    let f_err = max_abs_diff(&features, &io["feature_acts"].data);
    // forward's features are encode's.
    assert_eq!(to_host(forward.features), features);
    let x_err = max_abs_diff(&to_host(forward.reconstruction), &io["x_hat"].data);
    (f_err, x_err)
}

/// kibitzer parameter name, shape and f32 bits of every tensor.
fn param_bits(params: &Params) -> Vec<(&'static str, [usize; 2], Vec<u32>)> {
    params
        .named()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.dims(),
                to_host(t).into_iter().map(f32::to_bits).collect(),
            )
        })
        .collect()
}

fn assert_same_sae(a: &Sae, b: &Sae, what: &str) {
    assert_eq!(a.config, b.config, "{what}: configs differ");
    assert_eq!(
        param_bits(&a.params),
        param_bits(&b.params),
        "{what}: tensors differ"
    );
}

#[test]
fn every_fixture_matches_saelens_outputs() {
    let root = fixtures_dir();
    let mut found: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("cfg.json").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut expected: Vec<String> = FIXTURES.iter().map(|(d, _)| d.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected, "fixture directories in {}", root.display());

    let mut report = Vec::new();
    for (name, arch) in FIXTURES {
        let dir = root.join(name);
        let sae = saelens::load(&dir, &dev()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sae.config.architecture.name(), arch, "{name}");
        let (f_err, x_err) = io_errors(&sae, &dir.join("io.safetensors"));
        report.push(format!(
            "{name}: feature_acts {f_err:.2e}, x_hat {x_err:.2e}"
        ));
        assert!(
            f_err <= TOL && x_err <= TOL,
            "{name}: max abs error feature_acts {f_err}, x_hat {x_err}"
        );
    }
    println!(
        "max abs error against SAELens 6.54.12:\n{}",
        report.join("\n")
    );
}

#[test]
fn fixture_configs_map_to_kibitzer_configs() {
    let root = fixtures_dir();
    let load = |name: &str| saelens::load(root.join(name), &dev()).unwrap();
    assert_eq!(
        load("batchtopk").config.architecture,
        Architecture::BatchTopK { k: 4 }
    );
    assert!(load("batchtopk").config.rescale_acts_by_decoder_norm);
    assert_eq!(
        load("topk").config.architecture,
        Architecture::TopK { k: 4 }
    );
    assert!(load("topk_rescale").config.rescale_acts_by_decoder_norm);
    assert!(!load("standard_no_bdec_in").config.apply_b_dec_to_input);
    assert_eq!(
        load("standard_layer_norm").config.row_norm,
        RowNorm::LayerNorm
    );
    assert_eq!(
        load("standard_constant_norm").config.row_norm,
        RowNorm::ConstantNormRescale
    );
    let skip = load("skip_transcoder");
    assert_eq!((skip.config.d_in, skip.config.d_out), (16, 24));
    assert!(!skip.config.apply_b_dec_to_input);
    assert_eq!(skip.params.w_skip.as_ref().unwrap().dims(), [24, 16]);
    assert_eq!(
        load("jumprelu").config.architecture,
        Architecture::JumpRelu {
            bandwidth: saelens::DEFAULT_JUMPRELU_BANDWIDTH
        }
    );
}

#[test]
fn fixtures_saved_again_keep_saelens_layout_and_load_identically() {
    let root = fixtures_dir();
    for (name, _) in FIXTURES {
        let src = root.join(name);
        let sae = saelens::load(&src, &dev()).unwrap();
        let out = tempfile::tempdir().unwrap();
        saelens::save(&sae, out.path(), &SaveOptions::default()).unwrap();
        let back = saelens::load(out.path(), &dev()).unwrap();
        assert_same_sae(&sae, &back, name);

        let ours = read_json(&out.path().join("cfg.json"));
        let theirs = read_json(&src.join("cfg.json"));
        for key in [
            "architecture",
            "d_in",
            "d_sae",
            "d_out",
            "apply_b_dec_to_input",
            "normalize_activations",
            "k",
            "rescale_acts_by_decoder_norm",
            "dtype",
        ] {
            assert_eq!(ours.get(key), theirs.get(key), "{name}: cfg key {key}");
        }
        assert_eq!(
            ours["metadata"]
                .get("training_architecture")
                .is_some_and(|v| v == "batchtopk"),
            name == "batchtopk",
            "{name}: training_architecture"
        );
        let ours_t = read_tensors(&out.path().join("sae_weights.safetensors"));
        let theirs_t = read_tensors(&src.join("sae_weights.safetensors"));
        let layout = |m: &BTreeMap<String, HostTensor>| {
            m.values()
                .map(|t| (t.name.clone(), t.shape.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            layout(&ours_t),
            layout(&theirs_t),
            "{name}: tensor names and shapes"
        );
        for (n, t) in &theirs_t {
            assert_eq!(ours_t[n].data, t.data, "{name}: tensor {n} values");
        }
    }
}

// ---------- random dictionaries of every architecture ----------

/// One dictionary shape to test.
#[derive(Clone, Debug)]
struct Case {
    name: &'static str,
    architecture: Architecture,
    d_out: Option<usize>,
    skip: bool,
    apply_b_dec: bool,
    rescale: bool,
    row_norm: RowNorm,
}

const D_IN: usize = 6;
const D_SAE: usize = 10;

fn case(name: &'static str, architecture: Architecture) -> Case {
    Case {
        name,
        apply_b_dec: architecture.default_apply_b_dec_to_input(),
        architecture,
        d_out: None,
        skip: false,
        rescale: false,
        row_norm: RowNorm::None,
    }
}

/// Every architecture and option SAELens can hold.
fn cases() -> Vec<Case> {
    let jump = Architecture::JumpRelu { bandwidth: 0.0123 };
    let transcoder = |name, architecture, skip| Case {
        d_out: Some(4),
        skip,
        apply_b_dec: false,
        ..case(name, architecture)
    };
    vec![
        case("standard", Architecture::Standard),
        Case {
            apply_b_dec: false,
            ..case("standard_no_bdec_in", Architecture::Standard)
        },
        Case {
            row_norm: RowNorm::ConstantNormRescale,
            ..case("standard_constant_norm", Architecture::Standard)
        },
        Case {
            row_norm: RowNorm::LayerNorm,
            ..case("standard_layer_norm", Architecture::Standard)
        },
        case("gated", Architecture::Gated),
        case("topk", Architecture::TopK { k: 3 }),
        Case {
            rescale: true,
            ..case("topk_rescale", Architecture::TopK { k: 3 })
        },
        case("jumprelu", jump.clone()),
        Case {
            apply_b_dec: true,
            ..case("jumprelu_b_dec_in", jump.clone())
        },
        case("batchtopk", Architecture::BatchTopK { k: 3 }),
        transcoder("transcoder", Architecture::Standard, false),
        transcoder("skip_transcoder", Architecture::Standard, true),
        transcoder("jumprelu_transcoder", jump.clone(), false),
        transcoder("jumprelu_skip_transcoder", jump, true),
        transcoder(
            "batchtopk_transcoder",
            Architecture::BatchTopK { k: 3 },
            false,
        ),
        // A skip transcoder between layers of the same width.
        Case {
            d_out: None,
            ..transcoder("skip_transcoder_same_width", Architecture::Standard, true)
        },
    ]
}

/// A dictionary with every tensor random and nonzero (biases included).
fn random_sae(case: &Case, seed: u64) -> Sae {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d_out = case.d_out.unwrap_or(D_IN);
    let mut m = |rows: usize, cols: usize, lo: f32, hi: f32| {
        let data = (0..rows * cols).map(|_| rng.random_range(lo..hi)).collect();
        from_host(data, rows, cols, &dev())
    };
    let thresholded = matches!(
        case.architecture,
        Architecture::JumpRelu { .. } | Architecture::BatchTopK { .. }
    );
    let gated = case.architecture == Architecture::Gated;
    let params = Params {
        w_enc: m(D_IN, D_SAE, -1.0, 1.0),
        b_enc: m(1, D_SAE, -0.3, 0.3),
        w_dec: m(D_SAE, d_out, -1.0, 1.0),
        b_dec: m(1, d_out, -0.5, 0.5),
        threshold: thresholded.then(|| m(1, D_SAE, 0.05, 0.5)),
        b_mag: gated.then(|| m(1, D_SAE, -0.3, 0.3)),
        r_mag: gated.then(|| m(1, D_SAE, -0.5, 0.5)),
        w_skip: case.skip.then(|| m(d_out, D_IN, -0.5, 0.5)),
    };
    Sae {
        config: SaeConfig {
            architecture: case.architecture.clone(),
            d_in: D_IN,
            d_sae: D_SAE,
            d_out,
            apply_b_dec_to_input: case.apply_b_dec,
            rescale_acts_by_decoder_norm: case.rescale,
            row_norm: case.row_norm,
        },
        params,
    }
}

fn random_rows(rows: usize, cols: usize, seed: u64) -> Tensor<2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (0..rows * cols)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    from_host(data, rows, cols, &dev())
}

/// The SAELens architecture each case is written as.
fn saelens_name(case: &Case) -> &'static str {
    match case.name {
        "standard_no_bdec_in" | "standard_constant_norm" | "standard_layer_norm" => "standard",
        "topk_rescale" => "topk",
        "jumprelu_b_dec_in" | "batchtopk" => "jumprelu",
        "batchtopk_transcoder" => "jumprelu_transcoder",
        "skip_transcoder_same_width" => "skip_transcoder",
        other => other,
    }
}

#[test]
fn save_then_load_is_the_identity_for_every_architecture() {
    for (i, case) in cases().iter().enumerate() {
        let sae = random_sae(case, 100 + i as u64);
        let dir = tempfile::tempdir().unwrap();
        saelens::save(&sae, dir.path(), &SaveOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let back =
            saelens::load(dir.path(), &dev()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_same_sae(&sae, &back, case.name);

        let cfg = read_json(&dir.path().join("cfg.json"));
        assert_eq!(cfg["architecture"], saelens_name(case), "{}", case.name);
        assert_eq!(cfg["metadata"]["sae_lens_version"], "6.0.0");
        assert_eq!(cfg["dtype"], "float32");
        let tensors = read_tensors(&dir.path().join("sae_weights.safetensors"));
        for bias in ["b_enc", "b_gate", "b_mag", "r_mag", "b_dec", "threshold"] {
            if let Some(t) = tensors.get(bias) {
                assert_eq!(t.shape.len(), 1, "{}: {bias} must be 1-D", case.name);
            }
        }
        assert_eq!(
            tensors.contains_key("b_gate"),
            case.architecture == Architecture::Gated
        );
        assert_eq!(
            tensors.contains_key("b_enc"),
            case.architecture != Architecture::Gated
        );
        // Only the two files, no temporary files left behind.
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["cfg.json", "sae_weights.safetensors"],
            "{}",
            case.name
        );

        let x = random_rows(5, D_IN, 7);
        let (a, b) = (sae.forward(x.clone()), back.forward(x));
        assert_eq!(
            to_host(a.reconstruction),
            to_host(b.reconstruction),
            "{}",
            case.name
        );
    }
}

#[test]
fn cfg_json_has_saelens_types_and_keeps_caller_metadata() {
    let topk = random_sae(&case("topk", Architecture::TopK { k: 3 }), 1);
    let dir = tempfile::tempdir().unwrap();
    let options = SaveOptions {
        metadata: json!({
            "model_name": "othello-gpt",
            "hook_name": "blocks.5.hook_resid_post",
            // The caller cannot override the version SAELens parses.
            "sae_lens_version": "0.1.0-kibitzer",
        }),
        ..Default::default()
    };
    saelens::save(&topk, dir.path(), &options).unwrap();
    let cfg = read_json(&dir.path().join("cfg.json"));
    assert!(cfg["k"].is_u64(), "k must be a JSON integer: {}", cfg["k"]);
    assert_eq!(cfg["k"], 3);
    assert_eq!(cfg["rescale_acts_by_decoder_norm"], false);
    assert_eq!(cfg["metadata"]["model_name"], "othello-gpt");
    assert_eq!(cfg["metadata"]["hook_name"], "blocks.5.hook_resid_post");
    assert_eq!(cfg["metadata"]["sae_lens_version"], "6.0.0");
    assert_eq!(
        cfg["metadata"]["kibitzer_version"],
        env!("CARGO_PKG_VERSION")
    );

    let batch = random_sae(&case("batchtopk", Architecture::BatchTopK { k: 3 }), 2);
    let options = SaveOptions {
        metadata: json!({ "training_architecture_details": { "topk_threshold_lr": 0.01 } }),
        ..Default::default()
    };
    saelens::save(&batch, dir.path(), &options).unwrap();
    let cfg = read_json(&dir.path().join("cfg.json"));
    assert_eq!(cfg["architecture"], "jumprelu");
    assert_eq!(cfg["metadata"]["training_architecture"], "batchtopk");
    let details = &cfg["metadata"]["training_architecture_details"];
    assert_eq!(details["k"], 3);
    assert_eq!(details["topk_threshold_lr"], 0.01);
    let weights = read_tensors(&dir.path().join("sae_weights.safetensors"));
    assert_eq!(
        weights["threshold"].data,
        to_host(batch.params.threshold.clone().unwrap())
    );

    // A Matryoshka BatchTopK saves the same way under SAELens's training
    // name, its widths ending at d_sae, and loads back as the BatchTopK it
    // is at inference.
    let nested = tempfile::tempdir().unwrap();
    let options = SaveOptions {
        metadata: json!({ "training_config": { "matryoshka_widths": [2, 5] } }),
        ..Default::default()
    };
    saelens::save(&batch, nested.path(), &options).unwrap();
    let cfg = read_json(&nested.path().join("cfg.json"));
    assert_eq!(cfg["architecture"], "jumprelu");
    assert_eq!(
        cfg["metadata"]["training_architecture"],
        "matryoshka_batchtopk"
    );
    let details = &cfg["metadata"]["training_architecture_details"];
    assert_eq!(details["k"], 3);
    assert_eq!(
        details["matryoshka_widths"],
        json!([2, 5, batch.config.d_sae])
    );
    let back = saelens::load(nested.path(), &Device::flex()).unwrap();
    assert_eq!(back.config.architecture, Architecture::BatchTopK { k: 3 });

    // A transcoder of equal widths is recognised by its output hook.
    let tc = random_sae(
        &Case {
            apply_b_dec: false,
            ..case("transcoder", Architecture::Standard)
        },
        3,
    );
    let plain = tempfile::tempdir().unwrap();
    saelens::save(&tc, plain.path(), &SaveOptions::default()).unwrap();
    assert_eq!(
        read_json(&plain.path().join("cfg.json"))["architecture"],
        "standard"
    );
    let options = SaveOptions {
        metadata: json!({ "hook_name_out": "blocks.5.hook_mlp_out" }),
        ..Default::default()
    };
    saelens::save(&tc, dir.path(), &options).unwrap();
    let cfg = read_json(&dir.path().join("cfg.json"));
    assert_eq!(cfg["architecture"], "transcoder");
    assert_eq!(cfg["apply_b_dec_to_input"], false);
    assert_eq!(cfg["d_out"], D_IN);
    assert_same_sae(
        &tc,
        &saelens::load(dir.path(), &dev()).unwrap(),
        "same-width transcoder",
    );
}

#[test]
fn half_precision_saves_load_within_precision() {
    // Round to nearest: relative error at most 2^-11 (f16) or 2^-8 (bf16);
    // f16 subnormals (below 2^-14) have absolute spacing 2^-24.
    for (dtype, rel, name) in [
        (SaveDtype::Float16, 2f32.powi(-11), "float16"),
        (SaveDtype::BFloat16, 2f32.powi(-8), "bfloat16"),
    ] {
        for (i, case) in cases().iter().enumerate() {
            let sae = random_sae(case, 200 + i as u64);
            let dir = tempfile::tempdir().unwrap();
            saelens::save(
                &sae,
                dir.path(),
                &SaveOptions {
                    dtype,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(read_json(&dir.path().join("cfg.json"))["dtype"], name);
            let bytes = std::fs::read(dir.path().join("sae_weights.safetensors")).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let want = match dtype {
                SaveDtype::Float16 => safetensors::Dtype::F16,
                _ => safetensors::Dtype::BF16,
            };
            assert!(
                st.tensors().iter().all(|(_, v)| v.dtype() == want),
                "{name} {}",
                case.name
            );

            let back = saelens::load(dir.path(), &dev()).unwrap();
            assert_eq!(back.config, sae.config, "{name} {}", case.name);
            let mut changed = false;
            for ((n, a), (_, b)) in sae.params.named().into_iter().zip(back.params.named()) {
                for (x, y) in to_host(a).into_iter().zip(to_host(b)) {
                    assert!(
                        (x - y).abs() <= (x.abs() * rel).max(2f32.powi(-24)),
                        "{name} {} {n}: {x} loaded as {y}",
                        case.name
                    );
                    changed |= x != y;
                }
            }
            assert!(
                changed,
                "{name} {}: random f32 values should not all survive {name}",
                case.name
            );
        }
    }
}

// ---------- errors ----------

/// A writable copy of a fixture's cfg.json and weights.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let src = fixtures_dir().join(name);
    let dir = tempfile::tempdir().unwrap();
    for f in ["cfg.json", "sae_weights.safetensors"] {
        std::fs::write(dir.path().join(f), std::fs::read(src.join(f)).unwrap()).unwrap();
    }
    dir
}

fn edit_cfg(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("cfg.json");
    let mut cfg = read_json(&path);
    edit(cfg.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
}

fn edit_weights(dir: &Path, edit: impl FnOnce(&mut BTreeMap<String, HostTensor>)) {
    let path = dir.join("sae_weights.safetensors");
    let mut tensors = read_tensors(&path);
    edit(&mut tensors);
    let list: Vec<HostTensor> = tensors.into_values().collect();
    std::fs::write(&path, f32_safetensors(&list, None).unwrap()).unwrap();
}

fn load_err(dir: &Path) -> String {
    match saelens::load(dir, &dev()) {
        Ok(sae) => panic!("expected an error, loaded {:?}", sae.config),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "error message lacks {p:?}: {message}");
    }
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    let dir = copy_fixture("standard");
    edit_cfg(dir.path(), |c| {
        c.insert("architecture".into(), json!("batchtopk"));
    });
    let msg = load_err(dir.path());
    assert_mentions(
        &msg,
        &[
            "cfg.json",
            "\"batchtopk\"",
            "standard",
            "gated",
            "topk",
            "jumprelu_skip_transcoder",
        ],
    );
    let dir = copy_fixture("standard");
    edit_cfg(dir.path(), |c| {
        c.insert("architecture".into(), json!("abstopk"));
    });
    assert_mentions(
        &load_err(dir.path()),
        &["unknown SAE architecture", "abstopk"],
    );
}

#[test]
fn shapes_that_disagree_with_the_config_are_refused() {
    let dir = copy_fixture("standard");
    edit_cfg(dir.path(), |c| {
        c.insert("d_sae".into(), json!(47));
    });
    let err = saelens::load(dir.path(), &dev()).unwrap_err();
    assert!(matches!(err, SaeLensError::Shape { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &[
            "sae_weights.safetensors",
            "W_enc",
            "[16, 48]",
            "expected [16, 47]",
            "d_sae = 47",
        ],
    );

    // A transposed decoder.
    let dir = copy_fixture("standard");
    edit_weights(dir.path(), |t| {
        let w = t.get_mut("W_dec").unwrap();
        let (r, c) = (w.shape[0], w.shape[1]);
        w.data = (0..r * c).map(|i| w.data[(i % r) * c + i / r]).collect();
        w.shape = vec![c, r];
    });
    assert_mentions(
        &load_err(dir.path()),
        &["W_dec", "shape [16, 48]", "expected [48, 16]"],
    );

    // A bias stored as a [1, n] row.
    let dir = copy_fixture("standard");
    edit_weights(dir.path(), |t| {
        t.get_mut("b_enc").unwrap().shape = vec![1, 48]
    });
    assert_mentions(
        &load_err(dir.path()),
        &["b_enc", "[1, 48]", "expected [48]"],
    );

    // A transcoder whose d_out disagrees.
    let dir = copy_fixture("transcoder");
    edit_cfg(dir.path(), |c| {
        c.insert("d_out".into(), json!(16));
    });
    assert_mentions(
        &load_err(dir.path()),
        &["W_dec", "expected [48, 16]", "d_out = 16"],
    );
}

#[test]
fn missing_and_extra_tensors_are_refused() {
    let dir = copy_fixture("jumprelu");
    edit_weights(dir.path(), |t| {
        t.remove("threshold");
    });
    let msg = load_err(dir.path());
    assert_mentions(
        &msg,
        &[
            "sae_weights.safetensors",
            "`threshold` is missing",
            "jumprelu",
        ],
    );

    // SAELens's gated class has b_gate and no b_enc.
    let dir = copy_fixture("gated");
    edit_weights(dir.path(), |t| {
        let mut b = t["b_gate"].clone();
        b.name = "b_enc".into();
        t.insert("b_enc".into(), b);
    });
    assert_mentions(
        &load_err(dir.path()),
        &["unexpected tensor `b_enc`", "gated", "b_gate"],
    );

    // The training-only log_threshold is not the inference threshold.
    let dir = copy_fixture("jumprelu");
    edit_weights(dir.path(), |t| {
        let mut th = t.remove("threshold").unwrap();
        th.name = "log_threshold".into();
        t.insert("log_threshold".into(), th);
    });
    assert_mentions(&load_err(dir.path()), &["`threshold` is missing"]);

    // A non-unit scaling_factor (also refused by SAELens).
    let dir = copy_fixture("standard");
    edit_weights(dir.path(), |t| {
        t.insert(
            "scaling_factor".into(),
            HostTensor {
                name: "scaling_factor".into(),
                shape: vec![48],
                data: vec![2.0; 48],
            },
        );
    });
    assert_mentions(&load_err(dir.path()), &["scaling_factor", "not all ones"]);

    let dir = copy_fixture("standard");
    std::fs::remove_file(dir.path().join("sae_weights.safetensors")).unwrap();
    assert_mentions(&load_err(dir.path()), &["sae_weights.safetensors"]);
}

#[test]
fn required_and_invalid_config_keys_are_named() {
    for key in ["dtype", "d_in", "d_sae"] {
        let dir = copy_fixture("standard");
        edit_cfg(dir.path(), |c| {
            c.remove(key);
        });
        assert_mentions(
            &load_err(dir.path()),
            &["cfg.json", &format!("`{key}` is missing")],
        );
    }
    // v6 configs must name their architecture.
    let dir = copy_fixture("standard");
    edit_cfg(dir.path(), |c| {
        c.remove("architecture");
    });
    assert_mentions(&load_err(dir.path()), &["`architecture` is missing"]);

    for (key, value, parts) in [
        (
            "dtype",
            json!("int8"),
            vec!["`dtype`", "\"int8\"", "float32"],
        ),
        ("d_in", json!(16.5), vec!["`d_in`", "positive integer"]),
        (
            "normalize_activations",
            json!("constant_scalar_rescale"),
            vec!["`normalize_activations`", "layer_norm"],
        ),
        (
            "reshape_activations",
            json!("hook_q"),
            vec!["`reshape_activations`"],
        ),
        (
            "metadata",
            json!({"sae_lens_version": "0.1.0-kibitzer"}),
            vec!["metadata.sae_lens_version", "PEP 440"],
        ),
    ] {
        let dir = copy_fixture("standard");
        edit_cfg(dir.path(), |c| {
            c.insert(key.into(), value.clone());
        });
        assert_mentions(&load_err(dir.path()), &parts);
    }

    let dir = copy_fixture("topk");
    edit_cfg(dir.path(), |c| {
        c.insert("k".into(), json!(4.0));
    });
    assert_mentions(&load_err(dir.path()), &["`k`", "4.0"]);
    // SAELens's default k = 100 exceeds d_sae = 48.
    let dir = copy_fixture("topk");
    edit_cfg(dir.path(), |c| {
        c.remove("k");
    });
    assert_mentions(&load_err(dir.path()), &["`k`", "d_sae = 48"]);

    let dir = copy_fixture("transcoder");
    edit_cfg(dir.path(), |c| {
        c.insert("apply_b_dec_to_input".into(), json!(true));
    });
    assert_mentions(&load_err(dir.path()), &["apply_b_dec_to_input", "false"]);

    let dir = copy_fixture("batchtopk");
    edit_cfg(dir.path(), |c| {
        c["metadata"]["training_architecture_details"]
            .as_object_mut()
            .unwrap()
            .remove("k");
    });
    assert_mentions(
        &load_err(dir.path()),
        &["metadata.training_architecture_details.k"],
    );

    let dir = tempfile::tempdir().unwrap();
    assert_mentions(&load_err(dir.path()), &["cfg.json"]);
}

#[test]
fn legacy_configs_load_like_saelens() {
    // A pre-6 TopK: no version, no architecture, activation_fn_str + kwargs,
    // boolean normalize_activations, torch-style dtype, a unit scaling_factor
    // and keys SAELens has since dropped.
    let dir = copy_fixture("topk");
    edit_cfg(dir.path(), |c| {
        c.clear();
        c.extend(
            json!({
                "d_in": 16, "d_sae": 48, "dtype": "torch.float32",
                "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4},
                "normalize_activations": false, "hook_point": "blocks.0.hook_resid_pre",
                "hook_point_layer": 0, "finetuning_scaling_factor": false, "device": "cuda:3"
            })
            .as_object()
            .unwrap()
            .clone(),
        );
    });
    edit_weights(dir.path(), |t| {
        t.insert(
            "scaling_factor".into(),
            HostTensor {
                name: "scaling_factor".into(),
                shape: vec![48],
                data: vec![1.0; 48],
            },
        );
    });
    let sae = saelens::load(dir.path(), &dev()).unwrap();
    assert_eq!(sae.config.architecture, Architecture::TopK { k: 4 });
    let (f, x) = io_errors(&sae, &fixtures_dir().join("topk/io.safetensors"));
    assert!(f <= TOL && x <= TOL, "{f} {x}");

    // Legacy standard (architecture absent) with normalize_activations true
    // (expected_average_only_in, folded into the weights: identity), and a
    // v6 config saying so explicitly.
    for (legacy, norm) in [
        (true, json!(true)),
        (false, json!("expected_average_only_in")),
        (false, json!("covariance_whitening")),
    ] {
        let dir = copy_fixture("standard");
        edit_cfg(dir.path(), |c| {
            if legacy {
                c.remove("metadata");
                c.remove("architecture");
            }
            c.insert("normalize_activations".into(), norm.clone());
        });
        let sae = saelens::load(dir.path(), &dev()).unwrap();
        assert_eq!(sae.config.row_norm, RowNorm::None);
        let (f, x) = io_errors(&sae, &fixtures_dir().join("standard/io.safetensors"));
        assert!(f <= TOL && x <= TOL, "{norm}: {f} {x}");
    }
}

#[test]
fn other_float_tensor_types_are_cast() {
    // Weights stored as f64 and bf16 while cfg says float32 (SAELens casts).
    for dtype in [safetensors::Dtype::F64, safetensors::Dtype::BF16] {
        let dir = copy_fixture("jumprelu");
        let path = dir.path().join("sae_weights.safetensors");
        let tensors = read_tensors(&path);
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .values()
            .map(|t| {
                let b = match dtype {
                    safetensors::Dtype::F64 => t
                        .data
                        .iter()
                        .flat_map(|v| (*v as f64).to_le_bytes())
                        .collect(),
                    _ => t
                        .data
                        .iter()
                        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                };
                (t.name.clone(), t.shape.clone(), b)
            })
            .collect();
        let views: Vec<_> = bytes
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap(),
                )
            })
            .collect();
        std::fs::write(&path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
        let sae = saelens::load(dir.path(), &dev()).unwrap();
        let threshold = to_host(sae.params.threshold.clone().unwrap());
        for (a, b) in threshold.iter().zip(&tensors["threshold"].data) {
            match dtype {
                safetensors::Dtype::F64 => assert_eq!(a, b),
                _ => assert_eq!(*a, half::bf16::from_f32(*b).to_f32()),
            }
        }
        if dtype == safetensors::Dtype::F64 {
            let (f, x) = io_errors(&sae, &fixtures_dir().join("jumprelu/io.safetensors"));
            assert!(f <= TOL && x <= TOL, "{f} {x}");
        }
    }
}

#[test]
fn unsaveable_dictionaries_are_refused_before_writing() {
    let save_err = |sae: &Sae, options: &SaveOptions| {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("sae");
        let err = saelens::save(sae, &dir, options)
            .expect_err("save should fail")
            .to_string();
        assert!(!dir.exists(), "nothing is written when saving fails: {err}");
        err
    };
    let mut batch = random_sae(&case("batchtopk", Architecture::BatchTopK { k: 3 }), 1);
    batch.params.threshold = None;
    assert_mentions(
        &save_err(&batch, &SaveOptions::default()),
        &["BatchTopK", "threshold"],
    );

    let mut jump = random_sae(
        &case("jumprelu", Architecture::JumpRelu { bandwidth: 0.001 }),
        1,
    );
    jump.params.threshold = None;
    assert_mentions(
        &save_err(&jump, &SaveOptions::default()),
        &["jumprelu", "`threshold`"],
    );

    let gated_tc = random_sae(
        &Case {
            d_out: Some(4),
            apply_b_dec: false,
            ..case("g", Architecture::Gated)
        },
        1,
    );
    assert_mentions(
        &save_err(&gated_tc, &SaveOptions::default()),
        &["no gated transcoder"],
    );
    let topk_tc = random_sae(
        &Case {
            d_out: Some(4),
            apply_b_dec: false,
            ..case("t", Architecture::TopK { k: 3 })
        },
        1,
    );
    assert_mentions(
        &save_err(&topk_tc, &SaveOptions::default()),
        &["no topk transcoder"],
    );

    let skip_b_dec = random_sae(
        &Case {
            skip: true,
            apply_b_dec: true,
            ..case("s", Architecture::Standard)
        },
        1,
    );
    assert_mentions(
        &save_err(&skip_b_dec, &SaveOptions::default()),
        &["apply_b_dec_to_input = true"],
    );
    let tc_norm = random_sae(
        &Case {
            d_out: Some(4),
            apply_b_dec: false,
            row_norm: RowNorm::LayerNorm,
            ..case("n", Architecture::Standard)
        },
        1,
    );
    assert_mentions(
        &save_err(&tc_norm, &SaveOptions::default()),
        &["layer_norm"],
    );

    let mut extra = random_sae(&case("standard", Architecture::Standard), 1);
    extra.params.b_mag = Some(extra.params.b_enc.clone());
    assert_mentions(
        &save_err(&extra, &SaveOptions::default()),
        &["`b_mag`", "standard"],
    );

    let mut bad_shape = random_sae(&case("standard", Architecture::Standard), 1);
    bad_shape.params.b_dec = Tensor::zeros([1, D_IN + 1], &dev());
    assert_mentions(
        &save_err(&bad_shape, &SaveOptions::default()),
        &["`b_dec`", "[1, 7]", "expected [1, 6]"],
    );

    let sae = random_sae(&case("standard", Architecture::Standard), 1);
    let options = SaveOptions {
        metadata: json!(["not", "an", "object"]),
        ..Default::default()
    };
    assert_mentions(&save_err(&sae, &options), &["metadata", "an array"]);
}

// ---------- folding a training-time activation scale ----------

/// Max of `|folded(x) - original(c_in x) / c_out|`, relative to
/// `max(1, |reference|)`, for the reconstruction (and, when
/// `features_unchanged`, the features).
fn fold_error(sae: &Sae, c_in: f32, c_out: f32, features_unchanged: bool) -> f32 {
    let folded = sae.fold_activation_scale(c_in, c_out);
    let x = random_rows(16, sae.config.d_in, 99);
    let original = sae.forward(x.clone().mul_scalar(c_in));
    let raw = folded.forward(x);
    // Relative to the largest entry, not entry by entry: an entry near zero
    // is a sum of large terms, and f32 rounding of those terms (which grows
    // with the scales) would read as a large relative error in it.
    let rel = |a: Vec<f32>, b: Vec<f32>| {
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs() / scale)
            .fold(0.0f32, f32::max)
    };
    let mut err = rel(
        to_host(raw.reconstruction),
        to_host(original.reconstruction.div_scalar(c_out)),
    );
    if features_unchanged {
        err = err.max(rel(to_host(raw.features), to_host(original.features)));
    }
    err
}

#[test]
fn folded_dictionaries_work_on_raw_activations() {
    // Power-of-two scales are exact in floating point, so thresholds, gates
    // and top-k selections cannot flip; 3.7 checks the general case on the
    // same seeds (deterministic, away from every decision boundary).
    for (i, case) in cases().iter().enumerate() {
        let sae = random_sae(case, 300 + i as u64);
        let rescale_topk = case.rescale;
        // LayerNorm divides by `sd + 1e-5`, and that 1e-5 does not scale with
        // the input: the fold is exact only up to ~1e-5 / sd relative.
        for (c_in, c_out) in [(4.0f32, 4.0), (0.125, 0.125), (3.7, 3.7)] {
            // Shrinking the input shrinks `sd` by `c_in`, so that 1e-5 weighs
            // `1 / c_in` times more.
            let tol = if case.row_norm == RowNorm::LayerNorm {
                1e-4 / c_in.min(1.0)
            } else {
                1e-5
            };
            let err = fold_error(&sae, c_in, c_out, !rescale_topk);
            assert!(err <= tol, "{} c = {c_in}: {err}", case.name);
        }
        if case.row_norm != RowNorm::LayerNorm {
            let err = fold_error(&sae, 2.0, 0.5, !rescale_topk);
            assert!(err <= 1e-5, "{} c_in = 2, c_out = 0.5: {err}", case.name);
        }
    }
    // A case the property test below once drew, when errors were measured
    // entry by entry: large scales left f32 rounding of ~1e-5 in an entry
    // near zero.
    let no_bdec_in = cases()
        .into_iter()
        .find(|c| c.name == "standard_no_bdec_in")
        .unwrap();
    let err = fold_error(&random_sae(&no_bdec_in, 579), 11.273168, 0.05, true);
    assert!(
        err <= 1e-5,
        "standard_no_bdec_in c_in = 11.27, c_out = 0.05: {err}"
    );
    // Folding a unit scale changes nothing.
    let sae = random_sae(&case("gated", Architecture::Gated), 5);
    assert_same_sae(&sae, &sae.fold_activation_scale(1.0, 1.0), "unit fold");
}

#[test]
fn folding_scales_exactly_the_documented_tensors() {
    let tc = random_sae(
        &cases()
            .into_iter()
            .find(|c| c.name == "jumprelu_skip_transcoder")
            .unwrap(),
        8,
    );
    let f = tc.fold_activation_scale(2.0, 8.0);
    let scaled = |a: &Tensor<2>, b: &Tensor<2>, s: f32| {
        assert_eq!(to_host(a.clone().mul_scalar(s)), to_host(b.clone()));
    };
    scaled(&tc.params.w_enc, &f.params.w_enc, 2.0);
    scaled(&tc.params.b_enc, &f.params.b_enc, 1.0);
    scaled(&tc.params.w_dec, &f.params.w_dec, 0.125);
    scaled(&tc.params.b_dec, &f.params.b_dec, 0.125);
    scaled(
        tc.params.threshold.as_ref().unwrap(),
        f.params.threshold.as_ref().unwrap(),
        1.0,
    );
    scaled(
        tc.params.w_skip.as_ref().unwrap(),
        f.params.w_skip.as_ref().unwrap(),
        0.25,
    );
    assert_eq!(f.config, tc.config);

    // An autoencoder subtracting b_dec, folded with different scales, moves
    // b_dec out of its input.
    let sae = random_sae(&case("gated", Architecture::Gated), 9);
    let f = sae.fold_activation_scale(2.0, 0.5);
    assert!(!f.config.apply_b_dec_to_input);
    assert_ne!(
        to_host(f.params.b_enc.clone()),
        to_host(sae.params.b_enc.clone())
    );
    assert_ne!(
        to_host(f.params.b_mag.clone().unwrap()),
        to_host(sae.params.b_mag.clone().unwrap())
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Continuous architectures (ReLU, with or without skip path and row
    /// normalisation) fold exactly for any scales.
    #[test]
    fn folding_holds_for_any_scale(
        which in 0usize..5,
        c_in in 0.05f32..20.0,
        c_out in 0.05f32..20.0,
        seed in 0u64..1000,
    ) {
        let all = cases();
        let name = ["standard", "standard_no_bdec_in", "standard_constant_norm", "skip_transcoder", "transcoder"][which];
        let case = all.iter().find(|c| c.name == name).unwrap();
        let sae = random_sae(case, seed);
        let err = fold_error(&sae, c_in, c_out, case.row_norm == RowNorm::None);
        prop_assert!(err <= 1e-5, "{name} c_in = {c_in} c_out = {c_out}: {err}");
    }
}

/// Writes one directory per architecture (a random dictionary saved by
/// `saelens::save`, plus `io.safetensors` with kibitzer's outputs) for
/// `scripts/saelens_check.py`:
/// `KIBITZER_SAELENS_EXPORT=/tmp/kibitzer_saelens cargo test -p kibitzer-sae --test saelens_fixtures export_for_python_check -- --ignored`
/// then `python scripts/saelens_check.py /tmp/kibitzer_saelens/*`.
#[test]
#[ignore = "writes directories for the Python SAELens checker; needs KIBITZER_SAELENS_EXPORT"]
fn export_for_python_check() {
    let root = PathBuf::from(
        std::env::var("KIBITZER_SAELENS_EXPORT")
            .expect("set KIBITZER_SAELENS_EXPORT to an output directory"),
    );
    for (i, case) in cases().iter().enumerate() {
        for (dtype, suffix) in [(SaveDtype::Float32, ""), (SaveDtype::Float16, "_f16")] {
            let sae = random_sae(case, 400 + i as u64);
            let dir = root.join(format!("{}{suffix}", case.name));
            saelens::save(
                &sae,
                &dir,
                &SaveOptions {
                    dtype,
                    ..Default::default()
                },
            )
            .unwrap();
            // Outputs of what was saved (the f16 copy computes in f32 here).
            let saved = saelens::load(&dir, &dev()).unwrap();
            let x = random_rows(8, D_IN, 500 + i as u64);
            let out = saved.forward(x.clone());
            let t = |name: &str, t: Tensor<2>| HostTensor {
                name: name.into(),
                shape: t.dims().to_vec(),
                data: to_host(t),
            };
            let io = [
                t("x", x),
                t("feature_acts", out.features),
                t("x_hat", out.reconstruction),
            ];
            std::fs::write(
                dir.join("io.safetensors"),
                f32_safetensors(&io, None).unwrap(),
            )
            .unwrap();
        }
    }
    println!("wrote {}", root.display());
}
