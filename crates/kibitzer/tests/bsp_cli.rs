//! `kibitzer bsp labels` and `kibitzer eval bsp` end to end on activations
//! whose ground truth is known: the "model" is the board encoding itself
//! (mine / yours / empty planes), so every board property has a neuron equal
//! to it, the linear probes must be near perfect, and an SAE trained on the
//! encoding must cover much of the board.

use kibitzer_games::Game;
use kibitzer_games::dataset::OthelloDataset;
use kibitzer_store::{StoreConfig, StoreWriter};
mod common;

use common::{fails, ok as run, p};

#[test]
fn labels_then_board_evaluation_of_an_sae_on_the_board_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let games = dir.path().join("games.bin");
    run(&[
        "games",
        "generate",
        "othello",
        "--size",
        "6",
        "--games",
        "120",
        "--seed",
        "3",
        "--out",
        p(&games),
    ]);
    let labels = dir.path().join("labels.jsonl");
    run(&[
        "bsp",
        "labels",
        "--game",
        "othello",
        "--games",
        p(&games),
        "--out",
        p(&labels),
    ]);

    // Activations: the board encoding after every move, in label order
    // (the order of `othello_at_moves`: games in order, moves in order).
    let dataset = OthelloDataset::open(&games).unwrap();
    let all: Vec<_> = dataset.iter().collect();
    let positions = kibitzer_bsp::labelling::othello_at_moves(6, &all).unwrap();
    let width = 3 * 36;
    let store = dir.path().join("acts");
    let mut writer = StoreWriter::create(&store, StoreConfig::new(width)).unwrap();
    let mut row = vec![0f32; width];
    for position in &positions.positions {
        position.encode(&mut row);
        writer.push_rows(&row).unwrap();
    }
    writer.finish().unwrap();
    let label_lines = std::fs::read_to_string(&labels).unwrap().lines().count();
    assert_eq!(label_lines, positions.positions.len());

    let runs = dir.path().join("runs");
    run(&[
        "sae",
        "train",
        "--arch",
        "topk",
        "--d-sae",
        "512",
        "--k",
        "32",
        "--activations",
        p(&store),
        "--out",
        p(&runs),
        "--steps",
        "300",
        "--batch-size",
        "256",
        "--lr",
        "0.004",
        "--quiet",
    ]);
    // The evaluation's common arguments: activations, labels, game, output.
    let eval_args = |out: &std::path::Path, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "eval",
            "bsp",
            "--activations",
            p(&store),
            "--labels",
            p(&labels),
            "--game",
            "othello",
            "--size",
            "6",
            "--out",
            p(out),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let out = dir.path().join("report");
    let sae_dir = runs.join("topk-d512-k32");
    let table = run(&common::strs(&eval_args(
        &out,
        &[
            "--sae",
            p(&sae_dir),
            "--neurons",
            "--probes",
            "--probe-epochs",
            "40",
            "--probe-lr",
            "0.01",
        ],
    )));
    assert!(table.contains("|"), "{table}");
    eprintln!("{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let group = |who: &str, metric: &str, name: &str| -> f64 {
        let score = if metric == "coverage" {
            "coverage"
        } else {
            "f1"
        };
        report[who][metric]["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("{who}.{metric}.groups missing in {report:#}"))
            .iter()
            .find(|g| g["group"] == name)
            .unwrap_or_else(|| panic!("{who}.{metric}: no group {name}"))[score]
            .as_f64()
            .unwrap()
    };
    let neurons_board = group("neurons", "coverage", "othello_board");
    // Every mine/yours/empty property is a neuron; only never-true cells
    // (the centre is never empty) keep reference-style coverage below 1.
    assert!(
        neurons_board > 0.9,
        "neuron coverage of the board {neurons_board}"
    );
    let sae_board = group("dictionary", "coverage", "othello_board");
    assert!(sae_board > 0.3, "SAE coverage of the board {sae_board}");
    let sae_reconstruction = group("dictionary", "reconstruction", "othello_board");
    // k = 32 of 36 one-hot planes per row: a TopK SAE cannot keep every
    // square, but rows misaligned with their labels would score ~0.
    assert!(
        sae_reconstruction > 0.15,
        "SAE board reconstruction {sae_reconstruction}"
    );
    let probe_board = report["probes"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "othello_board")
        .expect("probe scores of the board")["accuracy"]
        .as_f64()
        .unwrap();
    assert!(
        probe_board > 0.95,
        "probe accuracy on the board {probe_board}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("linear probes"), "{md}");

    // Without a dictionary only the baselines are scored (reference 002's
    // MLP-neuron baseline: a site no SAE was trained on), with the same
    // numbers as beside one.
    let alone = dir.path().join("neurons-alone");
    run(&common::strs(&eval_args(&alone, &["--neurons"])));
    let alone_report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(alone.join("report.json")).unwrap()).unwrap();
    assert!(alone_report["dictionary"].is_null(), "{alone_report:#}");
    assert!(alone_report["probes"].is_null(), "{alone_report:#}");
    assert_eq!(alone_report["neurons"], report["neurons"]);
    let err = fails(&common::strs(&eval_args(&dir.path().join("nothing"), &[])));
    assert!(err.contains("--sae DIR, --neurons or --probes"), "{err}");
}
