//! Reference 000 from the command line on tiny data: rated games, a policy
//! trained and resumed to the same bytes, its evaluation, a harvest checked
//! row for row against its positions, an SAE's threat concepts, the
//! intervention, a transcoder's fidelity, calibration, and the errors.

mod common;

use common::{fails, ok, p};
use std::path::Path;

fn games(out: &Path) {
    ok(&[
        "games",
        "generate",
        "chess",
        "--players",
        "random@800",
        "--players",
        "greedy@2100",
        "--games",
        "8",
        "--max-plies",
        "40",
        "--seed",
        "2",
        "--out",
        p(out),
    ]);
}

/// `kibitzer skill <command>` on the games and policy, then `extra`.
fn skill<'a>(
    command: &'a str,
    data: &[&'a str],
    pol: &[&'a str],
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["skill", command];
    args.extend(data);
    args.extend(pol);
    args.extend(extra);
    args
}

fn train(games: &Path, out: &Path, steps: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "skill",
        "train",
        "--games",
        p(games),
        "--test-games",
        "2",
        "--out",
        p(out),
        "--layers",
        "2",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--d-mlp",
        "32",
        "--steps",
        steps,
        "--batch-size",
        "16",
        "--warmup",
        "2",
        "--checkpoint-every",
        "3",
        "--log-every",
        "2",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn reference_000_runs_end_to_end_on_tiny_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = d.join("games.jsonl");
    games(&g);
    let data = ["--games", p(&g), "--test-games", "2"];

    // Training, and a run stopped at 3 steps then resumed to 6 ends with the
    // same weights, byte for byte, as 6 steps straight.
    let printed = train(&g, &d.join("straight"), "6", &[]);
    assert!(printed.contains("held-out move-match"), "{printed}");
    train(&g, &d.join("resumed"), "3", &[]);
    let err = fails(&[
        "skill",
        "train",
        "--games",
        p(&g),
        "--test-games",
        "2",
        "--out",
        p(&d.join("resumed")),
        "--steps",
        "6",
    ]);
    assert!(err.contains("already here; pass --resume"), "{err}");
    train(&g, &d.join("resumed"), "6", &["--resume"]);
    let read = |dir: &str| std::fs::read(d.join(dir).join("policy.safetensors")).unwrap();
    assert_eq!(read("straight"), read("resumed"), "resume must be exact");
    let err = fails(&[
        "skill",
        "train",
        "--games",
        p(&g),
        "--test-games",
        "2",
        "--out",
        p(&d.join("resumed")),
        "--steps",
        "8",
        "--lr",
        "0.5",
        "--resume",
    ]);
    assert!(err.contains("other settings"), "{err}");
    let policy = d.join("straight/policy.safetensors");
    let pol = ["--policy", p(&policy)];

    // Evaluation with the built-in judge.
    let eval = d.join("eval");
    let args = skill(
        "eval",
        &data,
        &pol,
        &[
            "--ratings",
            "800,2100",
            "--judge",
            "search",
            "--judge-nodes",
            "1",
            "--max-judged",
            "5",
            "--sensitivity-positions",
            "20",
            "--out",
            p(&eval),
        ],
    );
    let printed = ok(&args);
    assert!(
        printed.contains("Move-match per rating bucket"),
        "{printed}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval.join("eval.json")).unwrap()).unwrap();
    let buckets = report["buckets"].as_array().unwrap();
    assert_eq!(buckets.last().unwrap()["range"], "all");
    assert_eq!(report["sensitivity"]["positions"], 20);
    assert!(eval.join("accuracy_by_bucket.svg").exists());

    // A harvest of the last residual stream, an SAE on it.
    let acts = d.join("acts");
    let site = "blocks.1.hook_resid_post";
    let args = skill("harvest", &data, &pol, &["--site", site, "--out", p(&acts)]);
    let printed = ok(&args);
    assert!(printed.contains("x 64 square tokens"), "{printed}");
    // One head of a per-head site, as the reference's per-head SAEs read.
    let head = d.join("head");
    let args = skill(
        "harvest",
        &data,
        &pol,
        &[
            "--site",
            "blocks.0.attn.hook_z",
            "--head",
            "1",
            "--max-positions",
            "10",
            "--out",
            p(&head),
        ],
    );
    assert!(ok(&args).contains("640 rows (10 positions"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(head.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["d_in"], 8, "one head of width 16 / 2");
    ok(&[
        "sae",
        "train",
        "--arch",
        "topk",
        "--d-sae",
        "32",
        "--k",
        "4",
        "--steps",
        "30",
        "--batch-size",
        "256",
        "--activations",
        p(&acts),
        "--out",
        p(&d.join("sae")),
        "--quiet",
    ]);
    let sae = d.join("sae/topk-d32-k4");
    assert!(
        sae.join("cfg.json").exists(),
        "the SAE is saved in SAELens's layout"
    );

    // Threat concepts per rating, from the harvest's positions.
    let concepts = d.join("concepts");
    let args = skill(
        "concepts",
        &data,
        &pol,
        &[
            "--sae",
            p(&sae),
            "--site",
            site,
            "--ratings",
            "800,2100",
            "--harvest",
            p(&acts),
            "--max-positions",
            "40",
            "--out",
            p(&concepts),
        ],
    );
    let printed = ok(&args);
    assert!(printed.contains("defensive_threat"), "{printed}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(concepts.join("concepts.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["rows"].as_array().unwrap().len(),
        3,
        "played + two ratings"
    );
    assert!(concepts.join("concept_f1_by_rating.svg").exists());

    // The intervention, from the concepts' salient features.
    let inter = d.join("intervention");
    let concepts_json = concepts.join("concepts.json");
    let args = skill(
        "intervene",
        &data,
        &pol,
        &[
            "--sae",
            p(&sae),
            "--site",
            site,
            "--concepts",
            p(&concepts_json),
            "--low",
            "800",
            "--high",
            "2100",
            "--scales",
            "1,20",
            "--out",
            p(&inter),
        ],
    );
    let printed = ok(&args);
    assert!(printed.contains("| threat | 800 | 1 |"), "{printed}");
    let mut wrong_site = args.clone();
    let at = wrong_site.iter().position(|a| *a == site).unwrap();
    wrong_site[at] = "blocks.0.hook_resid_post";
    let err = fails(&wrong_site);
    assert!(
        err.contains("was measured at blocks.1.hook_resid_post"),
        "{err}"
    );

    // A transcoder on block 0's MLP.
    for (site, dir) in [
        ("blocks.0.ln2.hook_normalized", "mlp-in"),
        ("blocks.0.hook_mlp_out", "mlp-out"),
    ] {
        let out = d.join(dir);
        ok(&skill(
            "harvest",
            &data,
            &pol,
            &["--site", site, "--out", p(&out), "--max-positions", "60"],
        ));
    }
    ok(&[
        "xcoder",
        "train",
        "--kind",
        "transcoder",
        "--input-store",
        p(&d.join("mlp-in")),
        "--output-store",
        p(&d.join("mlp-out")),
        "--arch",
        "topk",
        "--d-sae",
        "32",
        "--k",
        "4",
        "--steps",
        "20",
        "--batch-size",
        "256",
        "--name",
        "tc",
        "--out",
        p(&d.join("transcoder")),
        "--quiet",
    ]);
    let tc = d.join("transcoder-eval");
    let tc_dir = d.join("transcoder/tc");
    let args = skill(
        "transcoder",
        &data,
        &pol,
        &["--transcoder", p(&tc_dir), "--layer", "0", "--out", p(&tc)],
    );
    let printed = ok(&args);
    assert!(
        printed.contains("Transcoder fidelity, block 0"),
        "{printed}"
    );
    let fidelity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tc.join("transcoder.json")).unwrap())
            .unwrap();
    let fvu = fidelity["fvu"].as_f64().unwrap();
    assert!(fvu.is_finite() && fvu >= 0.0, "{fidelity}");
    let mut wrong_layer = args.clone();
    let at = wrong_layer.iter().position(|a| *a == "--layer").unwrap();
    wrong_layer[at + 1] = "5";
    let err = fails(&wrong_layer);
    assert!(err.contains("--layer 5: the policy has 2 blocks"), "{err}");

    // Calibration.
    let cal = d.join("calibration");
    let args = skill(
        "calibrate",
        &data,
        &pol,
        &[
            "--low",
            "800",
            "--high",
            "2100",
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--out",
            p(&cal),
        ],
    );
    let printed = ok(&args);
    assert!(
        printed.contains("| before |") && printed.contains("| after |"),
        "{printed}"
    );
    assert!(cal.join("policy_ft.safetensors").exists());
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = d.join("games.jsonl");
    games(&g);
    // Holding out every game leaves nothing to train on.
    let err = fails(&[
        "skill",
        "train",
        "--games",
        p(&g),
        "--test-games",
        "8",
        "--out",
        p(&d.join("x")),
    ]);
    assert!(err.contains("--test-games 8 of 8 games"), "{err}");
    // Games without ratings cannot condition a skill policy.
    let unrated = d.join("unrated.jsonl");
    ok(&[
        "games",
        "generate",
        "chess",
        "--players",
        "random",
        "--games",
        "3",
        "--max-plies",
        "10",
        "--out",
        p(&unrated),
    ]);
    let err = fails(&[
        "skill",
        "train",
        "--games",
        p(&unrated),
        "--test-games",
        "1",
        "--out",
        p(&d.join("y")),
    ]);
    assert!(err.contains("Elo"), "{err}");
    // A resume with nothing to resume.
    let err = fails(&[
        "skill",
        "train",
        "--games",
        p(&g),
        "--test-games",
        "2",
        "--out",
        p(&d.join("z")),
        "--resume",
    ]);
    assert!(err.contains("no checkpoint to resume"), "{err}");
}
