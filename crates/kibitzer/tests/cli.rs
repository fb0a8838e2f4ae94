//! The `kibitzer` binary end to end on tiny data: synthetic activations,
//! training a grid, resuming, evaluating, and the errors a user sees.

mod common;

use common::{fails, ok, p, strs};
#[cfg(unix)]
use std::os::unix::fs::FileTypeExt;
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

/// Issue 20 #6: sizes and parameters that would train a dictionary
/// `sae eval` refuses are refused before training, naming the flag.
#[test]
fn train_and_eval_refuse_bad_sizes_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts");
    let out = dir.path().join("o");
    let train = |arch: &str, d_sae: &str, extra: &[&str]| -> String {
        let mut args = vec![
            "sae",
            "train",
            "--arch",
            arch,
            "--d-sae",
            d_sae,
            "--activations",
            p(&acts),
            "--out",
            p(&out),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        fails(&args)
    };
    for (arch, d_sae, extra, flag) in [
        ("topk", "16", &["--k", "0"][..], "--k 0"),
        ("batchtopk", "16", &["--k", "17"][..], "--k 17"),
        ("topk", "16,8", &["--k", "12"][..], "--d-sae 8"),
        (
            "jumprelu",
            "16",
            &["--bandwidth=-0.5"][..],
            "--bandwidth -0.5",
        ),
        ("jumprelu", "16", &["--bandwidth", "0"][..], "--bandwidth 0"),
        ("topk", "0", &[][..], "--d-sae 0"),
        (
            "standard",
            "16",
            &["--batch-size", "0"][..],
            "--batch-size 0",
        ),
        ("standard", "16", &["--steps", "0"][..], "--steps 0"),
    ] {
        let err = train(arch, d_sae, extra);
        assert!(err.contains(flag), "{arch} {extra:?}: {err}");
        assert!(!err.contains("inf"), "{arch} {extra:?}: {err}");
    }
    assert!(!out.exists(), "a refused run left {}", out.display());
    let err = fails(&[
        "sae",
        "eval",
        "--sae",
        p(&out),
        "--activations",
        p(&acts),
        "--batch-size",
        "0",
    ]);
    assert!(err.contains("--batch-size 0"), "{err}");
}

/// Issue 20 #5: `--resume` with a changed shape or schedule is refused,
/// naming the flag and the run's value; the same flags resume.
#[test]
fn resume_refuses_changed_shape_or_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts");
    let runs = dir.path().join("runs");
    ok(&[
        "sae",
        "synth",
        "--out",
        p(&acts),
        "--rows",
        "1024",
        "--d-in",
        "8",
        "--features",
        "16",
    ]);
    let train = |d_sae: &str, k: &str, steps: &str, batch: &str, lr: &str| -> Vec<String> {
        [
            "sae",
            "train",
            "--arch",
            "topk",
            "--d-sae",
            d_sae,
            "--k",
            k,
            "--steps",
            steps,
            "--batch-size",
            batch,
            "--lr",
            lr,
            "--activations",
            p(&acts),
            "--out",
            p(&runs),
            "--checkpoint-every",
            "2",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    ok(&strs(&train("16", "2", "6", "32", "0.001")));
    let resume = |args: Vec<String>| {
        let mut args = args;
        args.push("--resume".into());
        args
    };
    for (args, flag, run) in [
        (
            train("32", "2", "6", "32", "0.001"),
            "--d-sae 32",
            "d_sae 16",
        ),
        (train("16", "3", "6", "32", "0.001"), "--k 3", "k 2"),
        (train("16", "2", "9", "32", "0.001"), "--steps 9", "steps 6"),
        (
            train("16", "2", "6", "64", "0.001"),
            "--batch-size 64",
            "batch size 32",
        ),
        (
            train("16", "2", "6", "32", "0.002"),
            "--lr 0.002",
            "lr 0.001",
        ),
    ] {
        let err = fails(&strs(&resume(args)));
        assert!(
            err.contains(flag) && err.contains(run) && err.contains("sweep.json"),
            "{flag}: {err}"
        );
    }
    ok(&strs(&resume(train("16", "2", "6", "32", "0.001"))));
}

/// Issue 20 #8 and #2: empty inputs, zero sizes, missing stores, flags that
/// do not apply and outputs that are not regular files are errors naming
/// the file or flag, not exit 0.
#[test]
fn hostile_inputs_are_refused_naming_the_file_or_flag() {
    let dir = tempfile::tempdir().unwrap();
    // Empty, blank and tags-only PGN files hold no game to label or import.
    for (name, text) in [
        ("empty.pgn", ""),
        ("blank.pgn", "\n   \n\t\n"),
        ("tags.pgn", "[Event \"x\"]\n[White \"a\"]\n[Black \"b\"]\n"),
    ] {
        let pgn = dir.path().join(name);
        std::fs::write(&pgn, text).unwrap();
        let out = dir.path().join("out.jsonl");
        for args in [
            vec![
                "bsp",
                "labels",
                "--game",
                "chess",
                "--pgn",
                p(&pgn),
                "--out",
                p(&out),
            ],
            vec!["games", "import-pgn", p(&pgn), "--out", p(&out)],
            vec!["games", "info", p(&pgn)],
        ] {
            let err = fails(&args);
            assert!(
                err.contains(name) && err.contains("no game"),
                "{args:?}: {err}"
            );
            assert!(!out.exists(), "{args:?} wrote {}", out.display());
        }
    }
    // No rows.
    let acts = dir.path().join("acts");
    let err = fails(&["sae", "synth", "--out", p(&acts), "--rows", "0"]);
    assert!(err.contains("--rows 0"), "{err}");
    assert!(!acts.exists());
    // A missing store directory is reported as missing.
    let missing = dir.path().join("no-store");
    let err = fails(&[
        "sae",
        "eval",
        "--sae",
        p(&missing),
        "--activations",
        p(&missing),
    ]);
    assert!(err.contains("no-store"), "{err}");
    let err = fails(&[
        "sae",
        "train",
        "--arch",
        "topk",
        "--d-sae",
        "8",
        "--k",
        "2",
        "--activations",
        p(&missing),
        "--out",
        p(&dir.path().join("runs")),
    ]);
    assert!(
        err.contains("no-store") && err.contains("does not exist") && !err.contains("manifest"),
        "{err}"
    );
    // --fen is chess-only.
    let err = fails(&[
        "games",
        "arena",
        "--game",
        "othello",
        "--size",
        "6",
        "--fen",
        "8/8/8/8/8/8/8/8 w - - 0 1",
        "--a",
        "random",
        "--b",
        "random",
        "--games",
        "1",
    ]);
    assert!(err.contains("--fen") && err.contains("Othello"), "{err}");
}

/// Issue 20 #2: `--out` naming a symlink, FIFO or character device is
/// refused by the atomic writers instead of being replaced by a file.
#[cfg(unix)]
#[test]
fn outputs_that_are_not_regular_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.bin");
    std::fs::write(&target, "keep").unwrap();
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let games = dir.path().join("games.bin");
    let generate = |out: &Path| -> Vec<String> {
        [
            "games",
            "generate",
            "othello",
            "--size",
            "6",
            "--games",
            "2",
            "--out",
            p(out),
        ]
        .map(String::from)
        .to_vec()
    };
    for out in [link.as_path(), Path::new("/dev/null")] {
        let err = fails(&strs(&generate(out)));
        assert!(
            err.contains(p(out)) && err.contains("will not replace it"),
            "{}: {err}",
            out.display()
        );
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    ok(&strs(&generate(&games)));
    for out in [link.as_path(), Path::new("/dev/null")] {
        let err = fails(&[
            "bsp",
            "labels",
            "--game",
            "othello",
            "--games",
            p(&games),
            "--out",
            p(out),
        ]);
        assert!(
            err.contains(p(out)) && err.contains("not replace"),
            "{}: {err}",
            out.display()
        );
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    #[cfg(target_os = "linux")]
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device(),
        "/dev/null was replaced"
    );
}
