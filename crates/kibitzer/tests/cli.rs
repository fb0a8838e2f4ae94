//! The `kibitzer` binary end to end on tiny data: synthetic activations,
//! training a grid, resuming, evaluating, and the errors a user sees.

mod common;

use common::{fails, ok, p, strs};
use std::path::Path;

#[test]
fn synth_train_resume_eval() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts");
    let runs = dir.path().join("runs");
    ok(&[
        "sae",
        "synth",
        "--out",
        p(&acts),
        "--rows",
        "4096",
        "--d-in",
        "16",
        "--features",
        "32",
        "--rows-per-shard",
        "1000",
    ]);

    // A grid of two TopK dictionaries from one pass, stopped after a few
    // steps by --steps and continued by --resume with more steps is not
    // allowed (the config is the checkpoint's); resume continues the same run.
    let train = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<&str> = vec![
            "sae",
            "train",
            "--arch",
            "topk",
            "--d-sae",
            "32,64",
            "--k",
            "4",
            "--activations",
            p(&acts),
            "--out",
            p(&runs),
            "--steps",
            "40",
            "--batch-size",
            "128",
            "--checkpoint-every",
            "10",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let stdout = ok(&strs(&train(&[])));
    assert!(
        stdout.contains("topk-d32-k4") && stdout.contains("topk-d64-k4"),
        "{stdout}"
    );
    for name in ["topk-d32-k4", "topk-d64-k4"] {
        let d = runs.join(name);
        for f in [
            "cfg.json",
            "sae_weights.safetensors",
            "log.jsonl",
            "training.json",
        ] {
            assert!(d.join(f).exists(), "{name}/{f} missing");
        }
    }
    // Starting again over a finished run is refused, naming --resume.
    let err = fails(&strs(&train(&[])));
    assert!(err.contains("--resume"), "{err}");
    // Resuming a finished run is a no-op that saves the same dictionaries.
    ok(&strs(&train(&["--resume"])));

    let json = ok(&[
        "sae",
        "eval",
        "--sae",
        p(&runs.join("topk-d64-k4")),
        "--activations",
        p(&acts),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let l0 = v["l0"].as_f64().unwrap();
    assert!(l0 > 0.0 && l0 <= 4.0 + 1e-9, "TopK k=4 has L0 {l0}");
    assert!(v["fvu"].as_f64().unwrap() < 1.0);
    assert!(v["mmcs"].as_f64().unwrap() > 0.0);
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = fails(&[
        "sae",
        "train",
        "--arch",
        "standard",
        "--d-sae",
        "8",
        "--activations",
        p(&missing),
        "--out",
        p(&dir.path().join("o")),
    ]);
    assert!(err.contains("nowhere"), "{err}");
    let err = fails(&[
        "sae",
        "train",
        "--arch",
        "standard",
        "--d-sae",
        "8",
        "--k",
        "3",
        "--activations",
        p(&missing),
        "--out",
        p(&dir.path().join("o")),
    ]);
    assert!(err.contains("--k") || err.contains("nowhere"), "{err}");
    let err = fails(&[
        "sae",
        "train",
        "--arch",
        "nonsense",
        "--d-sae",
        "8",
        "--activations",
        "x",
        "--out",
        "y",
    ]);
    assert!(err.contains("nonsense"), "{err}");
    let err = fails(&["bench", "sae", "--device", "tpu"]);
    assert!(err.contains("tpu"), "{err}");
    let err = fails(&[
        "sae",
        "eval",
        "--sae",
        p(&missing),
        "--activations",
        p(&missing),
    ]);
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn bench_prints_one_json_object() {
    let out = ok(&[
        "bench", "sae", "--arch", "topk", "--k", "4", "--d-in", "16", "--d-sae", "64", "--batch",
        "64", "--steps", "3", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["steps_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["arch"], "topk");
}

#[test]
fn planted_recovery_runs_end_to_end_on_a_reduced_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("planted");
    let stdout = ok(&[
        "sae",
        "planted",
        "--rows",
        "120000",
        "--quiet",
        "--out",
        p(&out),
    ]);
    for name in [
        "standard",
        "panneal",
        "gated",
        "topk",
        "batchtopk",
        "jumprelu",
    ] {
        assert!(
            stdout.contains(&format!("| {name} |")),
            "{name} missing from\n{stdout}"
        );
        for f in [
            "cfg.json",
            "sae_weights.safetensors",
            "metrics.json",
            "feature_density.svg",
        ] {
            assert!(
                out.join("saes").join(name).join(f).exists(),
                "{name}/{f} missing"
            );
        }
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let dicts = report["dictionaries"].as_array().unwrap();
    assert_eq!(dicts.len(), 6);
    // 234 steps find most planted directions; a broken trainer or a
    // mis-folded save scores near the random-direction level (~0.4).
    for d in dicts {
        let mmcs = d["metrics"]["mmcs"].as_f64().unwrap();
        assert!(mmcs > 0.6, "{}: MMCS {mmcs}", d["name"]);
    }
    // A second run replaces the first rather than failing or mixing them.
    ok(&[
        "sae",
        "planted",
        "--rows",
        "20000",
        "--quiet",
        "--out",
        p(&out),
    ]);
}

#[test]
fn config_file_overrides_defaults_and_unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts");
    ok(&[
        "sae",
        "synth",
        "--out",
        p(&acts),
        "--rows",
        "2048",
        "--d-in",
        "8",
        "--features",
        "16",
    ]);
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "lr = 0.0123\nlr_warmup_steps = 2\n").unwrap();
    let runs = dir.path().join("runs");
    let base = |config: &Path, out: &Path| -> Vec<String> {
        [
            "sae",
            "train",
            "--arch",
            "standard",
            "--d-sae",
            "16",
            "--activations",
            p(&acts),
            "--steps",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            [
                "--batch-size",
                "64",
                "--quiet",
                "--config",
                p(config),
                "--out",
                p(out),
            ]
            .map(String::from),
        )
        .collect()
    };
    ok(&strs(&base(&good, &runs)));
    let training = std::fs::read_to_string(runs.join("standard-d16/training.json")).unwrap();
    assert!(
        training.contains("0.0123"),
        "the file's lr is not in the run's config:\n{training}"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "learning_rate = 0.1\n").unwrap();
    let err = fails(&strs(&base(&bad, &dir.path().join("runs2"))));
    assert!(
        err.contains("bad.toml") && err.contains("learning_rate"),
        "{err}"
    );
}
