//! `kibitzer sweep` end to end on the board encoding (see
//! `sweep_fixture`): a small grid from one pass, every run evaluated on
//! reconstruction and the board, scaling.json / scaling.md / charts written,
//! and an interrupted sweep resumed to the same numbers.

mod common;
mod sweep_fixture;

use common::{fails, kibitzer, ok, p};
use std::path::Path;
use std::time::{Duration, Instant};
use sweep_fixture::board_fixture;

fn sweep_args<'a>(
    fx: &'a sweep_fixture::BoardFixture,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "sweep",
        "--activations",
        p(&fx.store),
        "--labels",
        p(&fx.labels),
        "--game",
        "othello",
        "--size",
        "6",
        "--out",
        p(out),
        "--preset",
        "small",
        "--archs",
        "standard,topk",
        "--features",
        "32,64",
        "--batch-size",
        "256",
        "--lr",
        "0.004",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    args
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The runs of a scaling.json without the timings, for comparing two sweeps.
fn numbers(scaling: &serde_json::Value) -> Vec<serde_json::Value> {
    scaling["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut()
                .expect("a run object")
                .remove("eval_seconds");
            r
        })
        .collect()
}

#[test]
fn small_sweep_writes_scaling_table_charts_and_viewer_data() {
    let fx = board_fixture(120, 3);
    let out = fx.dir.path().join("sweep");
    let started = Instant::now();
    let stdout = ok(&sweep_args(&fx, &out, &["--steps", "150"]));
    eprintln!(
        "sweep of 6 dictionaries on {} rows: {:.1} s",
        fx.rows,
        started.elapsed().as_secs_f64()
    );
    assert!(stdout.contains("scaling.json"), "{stdout}");

    let md = std::fs::read_to_string(out.join("scaling.md")).expect("scaling.md");
    eprintln!("{md}");
    let scaling = json(&out.join("scaling.json"));
    let runs = scaling["runs"].as_array().expect("runs");
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "standard-d32-l1_1",
            "standard-d64-l1_1",
            "standard-d32-l1_3",
            "standard-d64-l1_3",
            "topk-d32-k16",
            "topk-d64-k16"
        ]
    );
    for r in runs {
        let name = r["name"].as_str().expect("name");
        assert_eq!(r["rows"].as_u64(), Some(fx.rows as u64), "{name}");
        let fvu = r["fvu"].as_f64().expect("fvu");
        // A random dictionary explains nothing (FVU >= 1); 150 steps on the
        // 108-wide board encoding explain a good part of it (measured:
        // 0.27 to 0.66).
        assert!(fvu < 0.75, "{name}: FVU {fvu}");
        let l0 = r["l0"].as_f64().expect("l0");
        assert!(l0 > 0.5, "{name}: L0 {l0}");
        if name.starts_with("topk") {
            assert!(l0 <= 16.0 + 1e-9, "{name}: TopK with k 16 has L0 {l0}");
        }
        let coverage = r["coverage"]["board"].as_f64().expect("board coverage");
        assert!(
            coverage > 0.2 && coverage <= 1.0,
            "{name}: coverage {coverage}"
        );
        let reconstruction = r["reconstruction"]["board"]
            .as_f64()
            .expect("reconstruction");
        assert!(
            (0.0..=1.0).contains(&reconstruction),
            "{name}: {reconstruction}"
        );
        assert!(r["dead_fraction"].as_f64().expect("dead") < 1.0);
        assert!(r["mse"].as_f64().expect("mse") > 0.0);
    }
    // A stronger L1 penalty gives sparser codes at the same size, and more
    // features at the same k reconstruct better.
    let metric = |n: &str, m: &str| {
        runs.iter().find(|r| r["name"] == n).expect(n)[m]
            .as_f64()
            .expect(m)
    };
    assert!(metric("standard-d64-l1_3", "l0") < metric("standard-d64-l1_1", "l0"));
    assert!(metric("topk-d64-k16", "fvu") < metric("topk-d32-k16", "fvu"));

    // Per-run viewer data: one summary per feature, tops sorted, and a
    // board for every row a feature shows.
    let features = json(&out.join("topk-d64-k16").join("features.json"));
    let list = features["features"].as_array().expect("features");
    assert_eq!(list.len(), 64);
    let positions = json(&out.join("positions.json"));
    let rows: std::collections::HashSet<u64> = positions["positions"]
        .as_array()
        .expect("positions")
        .iter()
        .map(|p| p["row"].as_u64().expect("row"))
        .collect();
    let mut best_f1 = 0f64;
    for f in list {
        let top = f["top"].as_array().expect("top");
        let acts: Vec<f64> = top
            .iter()
            .map(|t| t["activation"].as_f64().expect("act"))
            .collect();
        assert!(acts.windows(2).all(|w| w[0] >= w[1]), "{acts:?}");
        for t in top {
            assert!(rows.contains(&t["row"].as_u64().expect("row")));
        }
        if let Some(b) = f["bsps"].as_array().expect("bsps").first() {
            best_f1 = best_f1.max(b["f1"].as_f64().expect("f1"));
        }
    }
    // Features of the board encoding match single squares well.
    assert!(best_f1 > 0.6, "best feature-property F1 {best_f1}");
    let first = &positions["positions"][0];
    assert_eq!(first["board"].as_str().expect("board").len(), 6 * 7 - 1 + 2);

    assert_eq!(
        md.matches("\n| standard-d").count() + md.matches("\n| topk-d").count(),
        6,
        "{md}"
    );
    for family in ["standard", "topk"] {
        for metric in [
            "mse",
            "l0",
            "dead_fraction",
            "fvu",
            "coverage_board",
            "reconstruction_board",
        ] {
            let chart = out.join("charts").join(format!("{family}-{metric}.svg"));
            let svg = std::fs::read_to_string(&chart)
                .unwrap_or_else(|e| panic!("{}: {e}", chart.display()));
            assert!(svg.starts_with("<svg"), "{}", chart.display());
            assert!(md.contains(&format!("charts/{family}-{metric}.svg")));
        }
    }
    let standard_l0 = std::fs::read_to_string(out.join("charts/standard-l0.svg")).expect("chart");
    assert_eq!(
        standard_l0.matches("class=\"series\"").count(),
        2,
        "one line per L1 value"
    );

    // A finished sweep is not started again by accident ...
    let err = fails(&sweep_args(&fx, &out, &["--steps", "150"]));
    assert!(err.contains("--resume"), "{err}");
    // ... and resuming it re-evaluates only what is missing.
    let before = numbers(&scaling);
    std::fs::remove_file(out.join("topk-d32-k16").join("evaluation.json")).expect("remove");
    let kept = json(&out.join("standard-d32-l1_1").join("evaluation.json"));
    ok(&sweep_args(&fx, &out, &["--steps", "150", "--resume"]));
    let again = json(&out.join("scaling.json"));
    assert_eq!(numbers(&again), before);
    assert_eq!(
        json(&out.join("standard-d32-l1_1").join("evaluation.json")),
        kept
    );
}

/// A sweep killed after its first checkpoint and resumed ends with the
/// numbers of an uninterrupted one.
#[test]
fn killed_sweep_resumes_to_the_same_numbers() {
    let fx = board_fixture(60, 5);
    let whole = fx.dir.path().join("whole");
    let extra = [
        "--steps",
        "300",
        "--checkpoint-every",
        "20",
        "--archs",
        "topk",
    ];
    ok(&sweep_args(&fx, &whole, &extra));

    let cut = fx.dir.path().join("cut");
    let args = sweep_args(&fx, &cut, &extra);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kibitzer"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the kibitzer binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cut.join("checkpoint.json").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill the sweep");
    child.wait().expect("reap the sweep");
    let checkpoint = json(&cut.join("checkpoint.json"));
    let step = checkpoint["step"].as_u64().expect("step");
    eprintln!("killed at checkpoint step {step} of 300");
    assert!(!cut.join("scaling.json").exists() || step == 300);
    ok(&sweep_args(
        &fx,
        &cut,
        &[&extra[..], &["--resume"]].concat(),
    ));
    assert_eq!(
        numbers(&json(&cut.join("scaling.json"))),
        numbers(&json(&whole.join("scaling.json")))
    );
    // Resuming nothing is an error that says so.
    let empty = fx.dir.path().join("empty");
    let err = fails(&sweep_args(&fx, &empty, &["--resume"]));
    assert!(err.contains("no sweep checkpoint"), "{err}");
}

#[test]
fn bad_inputs_are_named() {
    let fx = board_fixture(8, 1);
    let out = fx.dir.path().join("out");
    // Labels that do not fit the store: other games, another game count;
    // the first row that differs is named.
    let other = board_fixture(12, 2);
    let mut args = sweep_args(&fx, &out, &[]);
    let labels_at = args.iter().position(|a| *a == "--labels").expect("flag") + 1;
    args[labels_at] = p(&other.labels);
    let err = fails(&args);
    assert!(
        err.contains("activation store") && err.contains("first row where they differ"),
        "{err}"
    );
    let err = fails(&sweep_args(&fx, &out, &["--archs", "standard,resnet"]));
    assert!(err.contains("resnet") && err.contains("topk"), "{err}");
    let err = fails(&sweep_args(
        &fx,
        &out,
        &["--features", "8", "--archs", "topk"],
    ));
    assert!(err.contains("k = 16"), "{err}");
    // A label file of another board size.
    let mut args = sweep_args(&fx, &out, &[]);
    let size_at = args.iter().position(|a| *a == "--size").expect("flag") + 1;
    args[size_at] = "8";
    let err = fails(&args);
    assert!(err.contains(p(&fx.labels)), "{err}");
    let out_kib = kibitzer(&["sweep", "--help"]);
    assert!(String::from_utf8_lossy(&out_kib.stdout).contains("--preset"));
}
