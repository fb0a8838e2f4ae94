//! `kibitzer gpt train`, `eval` and `harvest` end to end on 4x4 Othello
//! (13 tokens, games of at most 12 moves): a tiny GPT learns the rules from a
//! few hundred random games, a run killed mid-way resumes to the weights of
//! an uninterrupted one, and harvested rows line up one for one with the
//! labels of `kibitzer bsp labels`.
#![cfg(feature = "flex")]

mod common;

use common::{fails, gpt_eval_json, kibitzer, label_refs, ok, p, store_refs, strs};
use kibitzer_games::dataset::OthelloDataset;
use kibitzer_games::othello::OthelloMove;
use kibitzer_hooks::{HookSite, HookedModel};
use kibitzer_models::gpt::othello::othello_gpt_config;
use kibitzer_models::{Gpt, GptTrainer};
use kibitzer_sae::DeviceChoice;
use kibitzer_store::Store;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn generate(dir: &Path, name: &str, size: usize, games: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    ok(&[
        "games",
        "generate",
        "othello",
        "--size",
        &size.to_string(),
        "--games",
        &games.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        p(&path),
    ]);
    path
}

/// `gpt train` of a 2-block, 32-wide GPT: a few seconds on a CPU.
fn tiny_train(games: &Path, out: &Path, steps: u64, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "gpt",
        "train",
        "--games",
        p(games),
        "--out",
        p(out),
        "--layers",
        "2",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "5e-3",
        "--seed",
        "7",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--steps".to_string(), steps.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// An untrained OthelloGPT of the given shape saved where `gpt eval` and
/// `gpt harvest` read models; returns it.
fn save_fresh_model(dir: &Path, size: usize, n_ctx: Option<usize>, seed: u64) -> Gpt {
    let mut config = othello_gpt_config(size, 2, 32, 2);
    config.seed = Some(seed);
    if let Some(n) = n_ctx {
        config.n_ctx = n;
    }
    let model = Gpt::new(config, &DeviceChoice::Cpu.device().unwrap()).unwrap();
    model.save_transformer_lens(dir).unwrap();
    model
}

fn labels(games: &Path, out: &Path, extra: &[&str]) -> Vec<(i64, i64)> {
    let mut args = vec![
        "bsp",
        "labels",
        "--game",
        "othello",
        "--games",
        p(games),
        "--out",
        p(out),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    label_refs(out)
}

fn store_values(path: &Path) -> Vec<f32> {
    let store = Store::open(path).unwrap();
    (0..store.shards().len())
        .flat_map(|i| store.read_shard(i).unwrap())
        .collect()
}

#[test]
fn training_learns_the_rules_of_4x4_othello() {
    let dir = tempfile::tempdir().unwrap();
    let train_games = generate(dir.path(), "train.bin", 4, 600, 1);
    let held_out = generate(dir.path(), "held_out.bin", 4, 200, 2);
    let model_dir = dir.path().join("model");
    let stdout = ok(&strs(&tiny_train(&train_games, &model_dir, 300, &[])));
    assert!(stdout.contains("step 300"), "{stdout}");
    assert!(stdout.contains("eval loss"), "{stdout}");

    // Saved in TransformerLens layout, with OthelloGPT's 4x4 vocabulary and context.
    let device = DeviceChoice::Cpu.device().unwrap();
    let model = Gpt::load_dir(&model_dir, &device).unwrap();
    let c = model.config();
    assert_eq!(
        (
            c.n_layers, c.d_model, c.n_heads, c.d_mlp, c.d_vocab, c.n_ctx
        ),
        (2, 32, 2, 128, 13, 12)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("training.json")).unwrap())
            .unwrap();
    assert_eq!(summary["final"]["step"], 300);
    assert_eq!(summary["eval_games"], 60);
    assert!(summary["final"]["eval_loss"].as_f64().is_some());

    // The same shape and seed, untrained.
    let fresh_dir = dir.path().join("fresh");
    Gpt::new(c.clone(), &device)
        .unwrap()
        .save_transformer_lens(&fresh_dir)
        .unwrap();

    let trained = gpt_eval_json(&model_dir, &held_out);
    let fresh = gpt_eval_json(&fresh_dir, &held_out);
    let accuracy = |v: &serde_json::Value| v["legal_move_accuracy"].as_f64().unwrap();
    let loss = |v: &serde_json::Value| v["eval_loss"].as_f64().unwrap();
    eprintln!(
        "held-out legal top-1: trained {:.4}, fresh {:.4}; loss trained {:.4}, fresh {:.4}, uniform {:.4}",
        accuracy(&trained),
        accuracy(&fresh),
        loss(&trained),
        loss(&fresh),
        trained["uniform_loss"]
    );
    assert!(
        accuracy(&trained) >= 0.8,
        "trained legal top-1 {}",
        accuracy(&trained)
    );
    assert!(accuracy(&trained) > accuracy(&fresh) + 0.2);
    let uniform = trained["uniform_loss"].as_f64().unwrap();
    assert!((uniform - 13f64.ln()).abs() < 1e-9);
    assert!(
        loss(&trained) < 0.7 * uniform,
        "trained loss {} vs ln(13) = {uniform}",
        loss(&trained)
    );
    assert!(loss(&fresh) > loss(&trained) + 0.5);

    // Positions scored: every move that does not end its game.
    let dataset = OthelloDataset::open(&held_out).unwrap();
    let moves: usize = dataset
        .iter()
        .map(|g| {
            g.iter()
                .filter(|m| matches!(m, OthelloMove::Square(_)))
                .count()
        })
        .sum();
    assert_eq!(trained["positions"], moves - dataset.len());
    assert_eq!(trained["games_scored"], 200);

    // --max-games scores the first N games only.
    let first = ok(&[
        "gpt",
        "eval",
        "--model",
        p(&model_dir),
        "--games",
        p(&held_out),
        "--max-games",
        "10",
        "--json",
    ]);
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["games_scored"], 10);
    assert!(first["positions"].as_u64().unwrap() < trained["positions"].as_u64().unwrap());
}

#[test]
fn a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), "games.bin", 4, 400, 3);
    let steps = 200;
    let whole = dir.path().join("whole");
    ok(&strs(&tiny_train(&games, &whole, steps, &[])));

    // The same run with a checkpoint after every step, killed (SIGKILL) once
    // a checkpoint past a quarter of the run is on disk.
    let split = dir.path().join("split");
    let args = tiny_train(&games, &split, steps, &["--checkpoint-every", "1"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kibitzer"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = split.join("checkpoint.safetensors");
    let device = DeviceChoice::Cpu.device().unwrap();
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint past step {} after 120 s",
            steps / 4
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        // Checkpoints are renamed into place, so a read sees a whole one.
        if checkpoint.exists()
            && GptTrainer::resume(&checkpoint, &device, None)
                .is_ok_and(|t| t.step_count() >= steps / 4)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!split.join("model.safetensors").exists());

    let resumed = kibitzer(&strs(&tiny_train(&games, &split, steps, &["--resume"])));
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    let at: u64 = stderr
        .split("at step ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'resuming ... at step N' in {stderr}"));
    assert!((1..steps).contains(&at), "killed at step {at}, not mid-run");
    eprintln!("killed and resumed at step {at} of {steps}");
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("step 200"));
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(
        weights(&whole) == weights(&split),
        "resumed from step {at}, the weights differ from the uninterrupted run's"
    );

    // A new run over it is refused; so is resuming with other settings or games.
    let err = fails(&strs(&tiny_train(&games, &split, steps, &[])));
    assert!(err.contains("--resume"), "{err}");
    let err = fails(&[
        "gpt",
        "train",
        "--games",
        p(&games),
        "--out",
        p(&split),
        "--resume",
        "--lr",
        "0.01",
        "--layers",
        "3",
    ]);
    assert!(
        err.contains("--lr 0.01 (the run has 0.005)") && err.contains("--layers 3 (the run has 2)"),
        "{err}"
    );
    let other = generate(dir.path(), "other.bin", 4, 400, 4);
    let err = fails(&strs(&tiny_train(&other, &split, steps, &["--resume"])));
    assert!(
        err.contains("not the games the run was trained on"),
        "{err}"
    );
    let err = fails(&strs(&tiny_train(
        &games,
        &whole,
        steps,
        &["--resume", "--eval-games", "5"],
    )));
    assert!(err.contains("--eval-games 5"), "{err}");

    // --steps extends a finished run from its last checkpoint.
    let out = ok(&strs(&tiny_train(
        &games,
        &whole,
        steps + 20,
        &["--resume"],
    )));
    assert!(out.contains("step 220"), "{out}");
    assert!(weights(&whole) != weights(&split));
}

#[test]
fn harvest_rows_line_up_with_bsp_labels() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), "games.bin", 4, 150, 5);
    let model_dir = dir.path().join("model");
    let model = save_fresh_model(&model_dir, 4, None, 5);
    let label_file = dir.path().join("labels.jsonl");
    let refs = labels(&games, &label_file, &["--max-games", "120"]);

    let harvest = |site: &str, out: &Path, extra: &[&str]| -> String {
        let mut args = vec![
            "gpt",
            "harvest",
            "--model",
            p(&model_dir),
            "--games",
            p(&games),
            "--site",
            site,
            "--out",
            p(out),
            "--max-games",
            "120",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let acts = dir.path().join("acts");
    let stdout = harvest("blocks.1.hook_resid_post", &acts, &[]);
    assert!(stdout.contains(&format!("wrote {} rows of width 32", refs.len())));

    let store = Store::open(&acts).unwrap();
    assert_eq!(store.rows() as usize, refs.len());
    assert_eq!(store.d_in(), 32);
    assert_eq!(store.metadata()["hook_site"], "blocks.1.hook_resid_post");
    let stored = store_refs(&store);
    assert_eq!(
        stored, refs,
        "store rows and label lines differ in (game, token)"
    );

    // The rows of game 7 are the model's activations at its move tokens.
    let dataset = OthelloDataset::open(&games).unwrap();
    let game: Vec<_> = dataset.game(7).unwrap();
    let tokens: Vec<u32> = kibitzer_models::gpt::othello::othello_sequences(&[game], 4)
        .unwrap()
        .remove(0);
    let site = HookSite::resid_post(1);
    let cache = model
        .collect(
            &model.tokens(std::slice::from_ref(&tokens)).unwrap(),
            &[site],
        )
        .unwrap();
    let expected = cache.get(site).unwrap().position_rows();
    let expected = kibitzer_sae::ops::to_host(expected);
    let values = store_values(&acts);
    let first_row = stored.iter().position(|&(g, _)| g == 7).unwrap();
    let got = &values[first_row * 32..(first_row + tokens.len()) * 32];
    assert_eq!(got.len(), expected.len());
    for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
        assert!(
            (a - b).abs() < 1e-4,
            "game 7, value {i}: store {a}, model {b}"
        );
    }

    // Games per forward pass change nothing.
    let acts7 = dir.path().join("acts7");
    harvest("blocks.1.hook_resid_post", &acts7, &["--batch-size", "7"]);
    let in_sevens = store_values(&acts7);
    assert_eq!(in_sevens.len(), values.len());
    assert!(
        values
            .iter()
            .zip(&in_sevens)
            .all(|(a, b)| (a - b).abs() < 1e-4)
    );

    // The random-init baseline: as many rows, other values, and the same
    // seed gives the same ones.
    let random = |name: &str| {
        let out = dir.path().join(name);
        harvest("blocks.1.hook_resid_post", &out, &["--random-init", "9"]);
        store_values(&out)
    };
    let baseline = random("random-a");
    assert_eq!(baseline.len(), values.len());
    let same = values
        .iter()
        .zip(&baseline)
        .filter(|(a, b)| (*a - *b).abs() < 1e-4)
        .count();
    assert!(
        same < values.len() / 10,
        "{same} of {} unchanged",
        values.len()
    );
    assert_eq!(baseline, random("random-b"));

    // Another site, another width: the MLP's hidden units.
    let mlp = dir.path().join("mlp");
    harvest("blocks.0.mlp.hook_post", &mlp, &["--dtype", "f16"]);
    let store = Store::open(&mlp).unwrap();
    assert_eq!((store.rows() as usize, store.d_in()), (refs.len(), 128));

    // An existing store is not overwritten unless asked.
    let mut args = vec![
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
        "--quiet",
    ];
    fails(&args);
    args.push("--overwrite");
    ok(&args);
    assert_eq!(Store::open(&acts).unwrap().rows() as usize, {
        let all = dir.path().join("all.jsonl");
        labels(&games, &all, &[]).len()
    });
}

#[test]
fn games_longer_than_the_context_need_truncate_and_match_first_per_game() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), "games.bin", 4, 80, 6);
    let model_dir = dir.path().join("model");
    save_fresh_model(&model_dir, 4, Some(8), 1);
    let acts = dir.path().join("acts");
    let args = [
        "gpt",
        "harvest",
        "--model",
        p(&model_dir),
        "--games",
        p(&games),
        "--site",
        "blocks.0.hook_resid_post",
        "--out",
        p(&acts),
        "--quiet",
    ];
    let err = fails(&args);
    assert!(
        err.contains("n_ctx = 8")
            && err.contains("--truncate")
            && err.contains("--first-per-game 8"),
        "{err}"
    );
    assert!(!acts.exists());

    let mut truncated = args.to_vec();
    truncated.push("--truncate");
    ok(&truncated);
    let refs = labels(
        &games,
        &dir.path().join("labels.jsonl"),
        &["--first-per-game", "8"],
    );
    let store = Store::open(&acts).unwrap();
    assert_eq!(store.rows() as usize, refs.len());
    let stored = store_refs(&store);
    assert_eq!(stored, refs);
    assert_eq!(store.metadata()["truncated_to"], 8);
}

#[test]
fn bad_site_names_list_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), "games.bin", 4, 10, 7);
    let model_dir = dir.path().join("model");
    save_fresh_model(&model_dir, 4, None, 1);
    let out = dir.path().join("acts");
    let harvest = |site: &str| {
        fails(&[
            "gpt",
            "harvest",
            "--model",
            p(&model_dir),
            "--games",
            p(&games),
            "--site",
            site,
            "--out",
            p(&out),
        ])
    };
    // Not a site name at all: every pattern is listed.
    let err = harvest("blocks.1.hook_resid_postt");
    assert!(err.contains("blocks.1.hook_resid_postt"), "{err}");
    assert!(
        err.contains("blocks.{l}.hook_resid_post") && err.contains("blocks.{l}.attn.hook_z"),
        "{err}"
    );
    // A site of a deeper model: this model's sites are listed.
    let err = harvest("blocks.5.hook_resid_post");
    assert!(
        err.contains("no hook site blocks.5.hook_resid_post")
            && err.contains("blocks.{0..=1}.hook_resid_post"),
        "{err}"
    );
    assert!(!out.exists(), "a failed harvest left {}", out.display());
}

#[test]
fn missing_or_mismatched_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no_such_games.bin");
    let model_dir = dir.path().join("model");
    save_fresh_model(&model_dir, 4, None, 1);
    let out = dir.path().join("out");

    let err = fails(&strs(&tiny_train(&missing, &out, 10, &[])));
    assert!(err.contains(p(&missing)), "{err}");
    assert!(!out.exists());
    let err = fails(&[
        "gpt",
        "eval",
        "--model",
        p(&model_dir),
        "--games",
        p(&missing),
    ]);
    assert!(err.contains(p(&missing)), "{err}");
    let err = fails(&[
        "gpt",
        "harvest",
        "--model",
        p(&model_dir),
        "--games",
        p(&missing),
        "--site",
        "blocks.0.hook_resid_post",
        "--out",
        p(&out),
    ]);
    assert!(err.contains(p(&missing)), "{err}");

    // A model directory that is not there, and a model of another board.
    let games6 = generate(dir.path(), "six.bin", 6, 5, 1);
    let no_model = dir.path().join("no_model");
    let err = fails(&[
        "gpt",
        "eval",
        "--model",
        p(&no_model),
        "--games",
        p(&games6),
    ]);
    assert!(err.contains(p(&no_model)), "{err}");
    let err = fails(&[
        "gpt",
        "eval",
        "--model",
        p(&model_dir),
        "--games",
        p(&games6),
    ]);
    assert!(err.contains("6x6") && err.contains(p(&model_dir)), "{err}");

    // --resume with nothing to resume, and a width the heads do not divide.
    let games4 = generate(dir.path(), "four.bin", 4, 20, 1);
    let err = fails(&strs(&tiny_train(&games4, &out, 10, &["--resume"])));
    assert!(err.contains("no checkpoint to resume"), "{err}");
    let err = fails(&[
        "gpt",
        "train",
        "--games",
        p(&games4),
        "--out",
        p(&out),
        "--d-model",
        "30",
        "--heads",
        "4",
    ]);
    assert!(err.contains("--d-model 30"), "{err}");
    assert!(!out.exists(), "a refused run left {}", out.display());
}

/// A cross-layer transcoder from the command line: the MLP input and
/// output of both layers of a GPT harvested as four stores, `xcoder train
/// --kind clt` over them (saved in circuit-tracer's layout, FVU per layer),
/// `xcoder fidelity` of the replacement model on other games; stores out
/// of order and a model of another width are refused by name.
#[test]
fn a_clt_trains_on_a_gpts_mlps_and_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let games = generate(dir.path(), "games.bin", 6, 80, 1);
    let heldout = generate(dir.path(), "heldout.bin", 6, 20, 2);
    let model = dir.path().join("gpt");
    save_fresh_model(&model, 6, None, 3);
    let mut stores = Vec::new();
    for hook in ["hook_resid_mid", "hook_mlp_out"] {
        for layer in 0..2 {
            let out = dir.path().join(format!("{layer}.{hook}"));
            ok(&[
                "gpt",
                "harvest",
                "--model",
                p(&model),
                "--games",
                p(&games),
                "--site",
                &format!("blocks.{layer}.{hook}"),
                "--out",
                p(&out),
                "--quiet",
            ]);
            stores.push(out);
        }
    }
    let list = |order: &[usize]| {
        order
            .iter()
            .map(|&i| p(&stores[i]).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let train = |stores: &str, out: &Path| -> Vec<String> {
        [
            "xcoder",
            "train",
            "--kind",
            "clt",
            "--arch",
            "jumprelu",
            "--d-sae",
            "16",
            "--steps",
            "30",
            "--batch-size",
            "128",
            "--lr",
            "3e-3",
            "--stores",
            stores,
            "--out",
            p(out),
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let out = dir.path().join("clt");
    ok(&common::strs(&train(&list(&[0, 1, 2, 3]), &out)));
    let saved = out.join("clt-jumprelu-d16");
    for file in [
        "W_enc_0.safetensors",
        "W_enc_1.safetensors",
        "W_dec_1.safetensors",
        "config.yaml",
    ] {
        assert!(saved.join(file).is_file(), "{file}");
    }
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.join("eval.json")).unwrap()).unwrap();
    let per_layer = eval["fvu"]["per_block"].as_array().unwrap();
    assert_eq!(per_layer.len(), 2, "{eval}");

    let fid = dir.path().join("fidelity");
    ok(&[
        "xcoder",
        "fidelity",
        "--model",
        p(&model),
        "--clt",
        p(&saved),
        "--games",
        p(&heldout),
        "--out",
        p(&fid),
    ]);
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fid.join("fidelity.json")).unwrap()).unwrap();
    assert_eq!(f["layers_replaced"], 2);
    assert_eq!(f["games_scored"], 20);
    let (clean, ablated) = (
        f["clean_loss"].as_f64().unwrap(),
        f["mlp_ablated_loss"].as_f64().unwrap(),
    );
    assert!(clean > 0.0 && ablated != clean, "{f}");
    assert!(f["loss_recovered"].as_f64().unwrap().is_finite(), "{f}");
    assert!(
        std::fs::read_to_string(fid.join("fidelity.md"))
            .unwrap()
            .contains("| replacement |")
    );

    // Killed after 20 steps (checkpoint at 10), resumed: the weights of the
    // uninterrupted run, bit for bit.
    let killed = dir.path().join("killed");
    let mut stop = train(&list(&[0, 1, 2, 3]), &killed);
    stop.extend(["--checkpoint-every", "10", "--stop-after", "20"].map(String::from));
    let stdout = ok(&common::strs(&stop));
    assert!(stdout.contains("stopped at step 20 of 30"), "{stdout}");
    ok(&[
        "xcoder",
        "train",
        "--out",
        p(&killed),
        "--resume",
        "--quiet",
    ]);
    let (whole, resumed) = (
        kibitzer_xcoder::format::load(&saved, &DeviceChoice::Cpu.device().unwrap()).unwrap(),
        kibitzer_xcoder::format::load(
            killed.join("clt-jumprelu-d16"),
            &DeviceChoice::Cpu.device().unwrap(),
        )
        .unwrap(),
    );
    for ((name, a), (_, b)) in whole
        .params()
        .named()
        .into_iter()
        .zip(resumed.params().named())
    {
        assert_eq!(
            kibitzer_sae::ops::to_host(a),
            kibitzer_sae::ops::to_host(b),
            "{name} differs after resuming"
        );
    }

    // Stage-wise diffing takes transcoders and crosscoders only.
    let stages = list(&[0, 1, 2, 3]);
    let e = fails(&[
        "xcoder",
        "diff",
        "--kind",
        "clt",
        "--d-sae",
        "16",
        "--stage-s",
        &stages,
        "--stage-d",
        &stages,
        "--stage-m",
        &stages,
        "--stage-dm",
        &stages,
        "--out",
        p(&dir.path().join("diff")),
    ]);
    assert!(
        e.contains("stage-wise diffing of cross-layer transcoders is not offered"),
        "{e}"
    );

    // Layer 1's input given before layer 0's.
    let e = fails(&common::strs(&train(
        &list(&[1, 0, 2, 3]),
        &dir.path().join("bad"),
    )));
    assert!(
        e.contains("store 1 holds \"blocks.1.hook_resid_mid\", expected layer 0"),
        "{e}"
    );
    // A CLT of another width than the model's.
    let wider_model = dir.path().join("gpt64");
    let gpt64 = {
        let mut c = othello_gpt_config(6, 2, 64, 2);
        c.seed = Some(1);
        Gpt::new(c, &DeviceChoice::Cpu.device().unwrap()).unwrap()
    };
    gpt64.save_transformer_lens(&wider_model).unwrap();
    let e = fails(&[
        "xcoder",
        "fidelity",
        "--model",
        p(&wider_model),
        "--clt",
        p(&saved),
        "--games",
        p(&heldout),
        "--out",
        p(&dir.path().join("fid2")),
    ]);
    assert!(e.contains("d_model is 64"), "{e}");
}
