//! Reference 004 from the command line on tiny data: quizzes, a quiz GPT
//! that learns (cells right far above an untrained model's), resume, the
//! ablation experiments, a harvest, an SAE and the feature experiments,
//! and the errors for quizzes that do not fit a model.

mod common;

use common::{fails, ok, p};
use std::path::Path;

fn generate(out: &Path, count: &str, seed: &str, size: &str) {
    ok(&[
        "quiz",
        "generate",
        "--tasks",
        "frame,contact",
        "--size",
        size,
        "--count",
        count,
        "--seed",
        seed,
        "--out",
        p(out),
    ]);
}

fn eval_json(model: &Path, quizzes: &Path) -> serde_json::Value {
    let out = ok(&[
        "quiz",
        "eval",
        "--model",
        p(model),
        "--quizzes",
        p(quizzes),
        "--json",
    ]);
    serde_json::from_str(&out).expect("quiz eval --json prints JSON")
}

fn train(quizzes: &Path, out: &Path, steps: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "quiz",
        "train",
        "--quizzes",
        p(quizzes),
        "--out",
        p(out),
        "--layers",
        "2",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--steps",
        steps,
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--eval-quizzes",
        "32",
        "--eval-every",
        "0",
        "--checkpoint-every",
        "100",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn a_quiz_gpt_trains_scores_and_is_interpreted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (train_q, held) = (d.join("train.jsonl"), d.join("held.jsonl"));
    generate(&train_q, "800", "1", "8");
    generate(&held, "48", "2", "8");

    // A one-step model is the untrained baseline.
    train(&train_q, &d.join("untrained"), "1", &[]);
    let before = eval_json(&d.join("untrained"), &held);
    let printed = train(&train_q, &d.join("gpt"), "240", &[]);
    assert!(printed.contains("exact grids"), "{printed}");
    let after = eval_json(&d.join("gpt"), &held);
    let cells = |v: &serde_json::Value| v["overall"]["cell_accuracy"].as_f64().unwrap();
    let loss = |v: &serde_json::Value| v["overall"]["loss"].as_f64().unwrap();
    assert!(
        cells(&after) > cells(&before) + 0.3 && cells(&after) > 0.6,
        "cells right: untrained {} trained {}",
        cells(&before),
        cells(&after)
    );
    assert!(
        loss(&after) < 0.5 * loss(&before),
        "{} -> {}",
        loss(&before),
        loss(&after)
    );
    for task in ["frame", "contact"] {
        assert!(
            after["tasks"][task]["quizzes"].as_u64().unwrap() > 0,
            "{after}"
        );
    }
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("gpt/training.json")).unwrap())
            .unwrap();
    assert_eq!(training["model"]["final_ln"], false);
    assert_eq!(training["model"]["positional_embedding_type"], "sinusoidal");
    assert_eq!(training["model"]["n_ctx"], 261);

    // Resume extends the run; another quiz file is refused.
    train(&train_q, &d.join("gpt"), "260", &["--resume"]);
    let err = fails(&[
        "quiz",
        "train",
        "--quizzes",
        p(&held),
        "--out",
        p(&d.join("gpt")),
        "--steps",
        "300",
        "--eval-quizzes",
        "8",
        "--resume",
    ]);
    assert!(err.contains("checksum"), "{err}");
    // The run scored the final grid; resuming it with another loss is refused.
    let err = fails(&[
        "quiz",
        "train",
        "--quizzes",
        p(&train_q),
        "--out",
        p(&d.join("gpt")),
        "--steps",
        "300",
        "--loss-on",
        "answers",
        "--resume",
    ]);
    assert!(err.contains("--loss-on") && err.contains("final"), "{err}");

    // Quizzes of another grid size, or a file that is not a quiz file.
    let ten = d.join("ten.jsonl");
    generate(&ten, "4", "3", "10");
    let err = fails(&[
        "quiz",
        "eval",
        "--model",
        p(&d.join("gpt")),
        "--quizzes",
        p(&ten),
    ]);
    assert!(err.contains("8x8") && err.contains("10x10"), "{err}");
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"format\":\"something-else\"}\n").unwrap();
    let err = fails(&[
        "quiz",
        "eval",
        "--model",
        p(&d.join("gpt")),
        "--quizzes",
        p(&bad),
    ]);
    assert!(err.contains("bad.jsonl"), "{err}");

    // Experiments 1-3.
    let ab = d.join("ablations");
    let printed = ok(&[
        "quiz",
        "ablate",
        "--model",
        p(&d.join("gpt")),
        "--quizzes",
        p(&held),
        "--out",
        p(&ab),
    ]);
    assert!(
        printed.contains("Attention layers zero-ablated"),
        "{printed}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ab.join("ablations.json")).unwrap()).unwrap();
    assert_eq!(report["attention_ablation"].as_array().unwrap().len(), 3);
    assert_eq!(report["layer0_heads"].as_array().unwrap().len(), 2);
    assert_eq!(
        report["mlp_ablation"]["ablated"].as_array().unwrap().len(),
        2
    );
    let block = report["mlp_ablation"]["contact_block"].as_u64().unwrap();
    assert!(
        std::fs::read_to_string(ab.join("layer0_attention.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    assert!(ab.join("contact_ablated.html").exists());

    // Experiment 4's SAE: harvest the block's MLP output, train, splice.
    let acts = d.join("acts");
    let site = format!("blocks.{block}.hook_mlp_out");
    let printed = ok(&[
        "quiz",
        "harvest",
        "--model",
        p(&d.join("gpt")),
        "--quizzes",
        p(&held),
        "--site",
        &site,
        "--max-quizzes",
        "20",
        "--out",
        p(&acts),
        "--quiet",
    ]);
    assert!(printed.contains("wrote 5200 rows of width 32"), "{printed}");
    ok(&[
        "sae",
        "train",
        "--arch",
        "standard",
        "--d-sae",
        "64",
        "--l1",
        "1",
        "--steps",
        "60",
        "--batch-size",
        "256",
        "--activations",
        p(&acts),
        "--out",
        p(&d.join("sae")),
        "--quiet",
    ]);
    let sae = d.join("sae/standard-d64-l1_1");
    assert!(sae.join("cfg.json").exists());
    let feats = d.join("features");
    ok(&[
        "quiz",
        "features",
        "--model",
        p(&d.join("gpt")),
        "--sae",
        p(&sae),
        "--layer",
        &block.to_string(),
        "--quizzes",
        p(&held),
        "--multiplier-steps",
        "3",
        "--out",
        p(&feats),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(feats.join("features.json")).unwrap())
            .unwrap();
    let splice = &report["splice"];
    assert!(
        splice["spliced"]["overall"]["loss"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    assert_eq!(splice["site"], site);
    // An SAE of another width, or a block the model lacks, is refused.
    let wide = d.join("wide");
    ok(&[
        "quiz",
        "harvest",
        "--model",
        p(&d.join("gpt")),
        "--quizzes",
        p(&held),
        "--site",
        "blocks.0.mlp.hook_post",
        "--max-quizzes",
        "2",
        "--out",
        p(&wide),
        "--quiet",
    ]);
    ok(&[
        "sae",
        "train",
        "--arch",
        "standard",
        "--d-sae",
        "16",
        "--l1",
        "1",
        "--steps",
        "2",
        "--batch-size",
        "64",
        "--activations",
        p(&wide),
        "--out",
        p(&d.join("sae-wide")),
        "--quiet",
    ]);
    let err = fails(&[
        "quiz",
        "features",
        "--model",
        p(&d.join("gpt")),
        "--sae",
        p(&d.join("sae-wide/standard-d16-l1_1")),
        "--layer",
        "0",
        "--quizzes",
        p(&held),
        "--out",
        p(&d.join("f2")),
    ]);
    assert!(
        err.contains("reads 128") && err.contains("standard-d16-l1_1"),
        "{err}"
    );
    let err = fails(&[
        "quiz",
        "features",
        "--model",
        p(&d.join("gpt")),
        "--sae",
        p(&sae),
        "--layer",
        "7",
        "--quizzes",
        p(&held),
        "--out",
        p(&feats),
    ]);
    assert!(err.contains("--layer 7"), "{err}");
}

#[test]
fn quiz_files_render_and_bad_generation_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.jsonl");
    generate(&file, "6", "5", "10");
    let page = dir.path().join("q.html");
    ok(&["quiz", "show", "--quizzes", p(&file), "--out", p(&page)]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<svg").count(), 6, "one picture per quiz");
    let err = fails(&[
        "quiz",
        "generate",
        "--size",
        "5",
        "--count",
        "2",
        "--out",
        p(&file),
    ]);
    assert!(err.contains('5'), "{err}");
    let err = fails(&[
        "quiz",
        "generate",
        "--tasks",
        "juggle",
        "--count",
        "2",
        "--out",
        p(&file),
    ]);
    assert!(err.contains("contact"), "the valid names are listed: {err}");
    assert!(fails(&["quiz", "generate", "--count", "0", "--out", p(&file)]).contains("--count"));
}
