//! `kibitzer gpt train`, `eval` and `harvest` on chess games: a ChessGPT
//! reads the games' character-level transcripts (`;1.e4 e5 2.Nf3`), learns
//! to write legal moves, and its activations at every `.` line up one for
//! one with the labels of `kibitzer bsp labels --game chess`.
#![cfg(all(feature = "flex", feature = "chess"))]

mod common;

use common::{fails, gpt_eval_json, label_refs, ok, p, store_refs};
use kibitzer_games::chess::transcript::Transcript;
use kibitzer_hooks::{HookSite, HookedModel};
use kibitzer_models::Gpt;
use kibitzer_models::gpt::chess::{chess_gpt_config, chess_sequences};
use kibitzer_sae::DeviceChoice;
use kibitzer_store::Store;
use std::path::{Path, PathBuf};

/// Chess games between the built-in random player and one-ply alpha-beta,
/// as PGN.
fn generate(dir: &Path, games: usize, seed: u64) -> PathBuf {
    let path = dir.join(format!("games-{seed}.pgn"));
    ok(&[
        "games",
        "generate",
        "chess",
        "--players",
        "random@400",
        "--players",
        "alphabeta:1@1000",
        "--games",
        &games.to_string(),
        "--seed",
        &seed.to_string(),
        "--max-plies",
        "40",
        "--threads",
        "2",
        "--out",
        p(&path),
    ]);
    path
}

#[test]
fn a_chess_gpt_learns_to_write_legal_moves() {
    let dir = tempfile::tempdir().unwrap();
    // Enough games that 200 steps of 32 see each about twice: the model
    // learns the rules rather than the games.
    let train = generate(dir.path(), 3000, 1);
    let held_out = generate(dir.path(), 30, 2);
    let model = dir.path().join("model");
    let stdout = ok(&[
        "gpt",
        "train",
        "--games",
        p(&train),
        "--out",
        p(&model),
        "--layers",
        "2",
        "--d-model",
        "64",
        "--heads",
        "4",
        "--n-ctx",
        "64",
        "--steps",
        "200",
        "--batch-size",
        "32",
        "--lr",
        "5e-3",
        "--eval-every",
        "0",
        "--seed",
        "3",
        "--quiet",
    ]);
    assert!(stdout.contains("held-out legal moves"), "{stdout}");
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("training.json")).unwrap())
            .unwrap();
    assert_eq!(training["game"], "chess");
    assert_eq!(training["model"]["d_vocab"], 33);
    assert_eq!(training["model"]["d_vocab_out"], 32);

    let trained = gpt_eval_json(&model, &held_out);
    assert_eq!(trained["game"], "chess");
    // Every move start of 30 games within 64 characters (~12 moves each).
    let positions = trained["positions"].as_u64().unwrap();
    assert!(positions > 250, "{trained}");
    let loss = trained["eval_loss"].as_f64().unwrap();
    let uniform = trained["uniform_loss"].as_f64().unwrap();
    assert!((uniform - 32f64.ln()).abs() < 1e-9);
    assert!(
        loss < 0.4 * uniform,
        "eval loss {loss} vs uniform {uniform}"
    );

    // An untrained model of the same shape writes almost no legal move.
    let fresh_dir = dir.path().join("fresh");
    let mut config = chess_gpt_config(2, 64, 4, 64);
    config.seed = Some(3);
    Gpt::new(config, &DeviceChoice::Cpu.device().unwrap())
        .unwrap()
        .save_transformer_lens(&fresh_dir)
        .unwrap();
    let fresh = gpt_eval_json(&fresh_dir, &held_out);
    let (trained_rate, fresh_rate) = (
        trained["legal_move_accuracy"].as_f64().unwrap(),
        fresh["legal_move_accuracy"].as_f64().unwrap(),
    );
    assert!(
        trained_rate > 0.3 && fresh_rate < 0.05,
        "legal moves written: trained {trained_rate}, untrained {fresh_rate}"
    );

    // An OthelloGPT cannot read chess games, and the error says why.
    let othello = dir.path().join("othello");
    let mut config = kibitzer_models::gpt::othello::othello_gpt_config(4, 1, 16, 2);
    config.seed = Some(1);
    Gpt::new(config, &DeviceChoice::Cpu.device().unwrap())
        .unwrap()
        .save_transformer_lens(&othello)
        .unwrap();
    let err = fails(&[
        "gpt",
        "eval",
        "--model",
        p(&othello),
        "--games",
        p(&held_out),
    ]);
    assert!(
        err.contains("reads 13 and predicts 13") && err.contains("ChessGPT"),
        "{err}"
    );
}

#[test]
fn harvest_rows_are_the_dots_of_bsp_labels() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), 24, 5);
    let model_dir = dir.path().join("model");
    let mut config = chess_gpt_config(2, 32, 2, 64);
    config.seed = Some(4);
    let model = Gpt::new(config, &DeviceChoice::Cpu.device().unwrap()).unwrap();
    model.save_transformer_lens(&model_dir).unwrap();

    let acts = dir.path().join("acts");
    let args = [
        "gpt",
        "harvest",
        "--model",
        p(&model_dir),
        "--games",
        p(&games),
        "--site",
        "blocks.1.hook_resid_post",
        "--out",
        p(&acts),
        "--max-games",
        "20",
        "--quiet",
    ];
    // The games are longer than 64 characters: cutting them is asked for,
    // with the labelling flag that matches.
    let err = fails(&args);
    assert!(
        err.contains("n_ctx = 64") && err.contains("--truncate") && err.contains("--max-chars 64"),
        "{err}"
    );
    let mut truncated = args.to_vec();
    truncated.push("--truncate");
    ok(&truncated);

    let labels = dir.path().join("labels.jsonl");
    ok(&[
        "bsp",
        "labels",
        "--game",
        "chess",
        "--pgn",
        p(&games),
        "--max-games",
        "20",
        "--max-chars",
        "64",
        "--out",
        p(&labels),
    ]);
    let refs = label_refs(&labels);
    let store = Store::open(&acts).unwrap();
    let stored = store_refs(&store);
    assert_eq!(stored, refs, "store rows and label lines differ");
    assert_eq!(store.metadata()["game"], "chess");

    // A sweep judges dictionaries on the chess properties of these rows.
    let sweep = dir.path().join("sweep");
    ok(&[
        "sweep",
        "--activations",
        p(&acts),
        "--labels",
        p(&labels),
        "--game",
        "chess",
        "--archs",
        "topk",
        "--features",
        "64",
        "--steps",
        "5",
        "--batch-size",
        "32",
        "--out",
        p(&sweep),
        "--quiet",
    ]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.join("scaling.json")).unwrap())
            .unwrap();
    assert_eq!(report["game"], "chess");
    let coverage = &report["runs"][0]["coverage"];
    assert!(
        coverage["low_level"].as_f64().unwrap() >= 0.0 && coverage.get("board").is_none(),
        "{report}"
    );

    // Every row is a `.` of its game's transcript, and holds the model's
    // activation there.
    let chess_games = kibitzer_games::files::read_chess_games(&games, Some(20)).unwrap();
    let sequences = chess_sequences(&chess_games).unwrap();
    let values: Vec<f32> = (0..store.shards().len())
        .flat_map(|i| store.read_shard(i).unwrap())
        .collect();
    let site = HookSite::resid_post(1);
    for game in [0usize, 13] {
        let text = Transcript::from_game(&chess_games[game]).unwrap().text;
        let tokens: Vec<u32> = sequences[game].iter().copied().take(64).collect();
        let cache = model
            .collect(
                &model.tokens(std::slice::from_ref(&tokens)).unwrap(),
                &[site],
            )
            .unwrap();
        let expected = kibitzer_sae::ops::to_host(cache.get(site).unwrap().position_rows());
        let rows: Vec<usize> = (0..stored.len())
            .filter(|&r| stored[r].0 == game as i64)
            .collect();
        let dots = text[..64.min(text.len())].matches('.').count();
        assert_eq!(rows.len(), dots, "game {game}");
        for r in rows {
            let at = stored[r].1 as usize;
            assert_eq!(&text[at..at + 1], ".", "game {game}, row {r}");
            let (got, want) = (
                &values[r * 32..(r + 1) * 32],
                &expected[at * 32..(at + 1) * 32],
            );
            assert!(
                got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-4),
                "game {game}, character {at}"
            );
        }
    }
}
