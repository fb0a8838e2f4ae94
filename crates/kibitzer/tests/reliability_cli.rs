//! Issue 20 through the binary: sizes that cannot fit in memory are refused
//! up front (#4); a failed training run leaves resumable state or nothing
//! (#9); and every long job, killed at fault points (`KIBITZER_FAULT`, see
//! docs/RELIABILITY.md), either resumes or reruns to the bytes of an
//! uninterrupted run, and never leaves a half-written output in place.
#![cfg(feature = "flex")]

mod common;

use common::{fails, ok, p, strs};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// `kibitzer args` with `env` set.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kibitzer"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the kibitzer binary runs")
}

/// Runs `args` killed at fault point `fault` (`name:hit`): asserts that it
/// died there, as `kill -9` would have killed it.
fn killed_at(args: &[&str], fault: &str) {
    let out = run_env(args, &[("KIBITZER_FAULT", fault)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(137),
        "kibitzer {args:?} with KIBITZER_FAULT={fault} was not killed there:\n{stderr}"
    );
    assert!(stderr.contains("killed at fault point"), "{stderr}");
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy().into();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The names in `dir` that start with `prefix`.
fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn synth(dir: &Path, rows: &str) {
    ok(&[
        "sae",
        "synth",
        "--out",
        p(dir),
        "--rows",
        rows,
        "--d-in",
        "8",
        "--features",
        "16",
        "--rows-per-shard",
        "256",
    ]);
}

fn generate_othello(path: &Path, games: &str) {
    ok(&[
        "games",
        "generate",
        "othello",
        "--size",
        "4",
        "--games",
        games,
        "--seed",
        "3",
        "--out",
        p(path),
    ]);
}

/// Issue 20 #4: sizes that cannot fit in memory are refused before anything
/// is allocated or written, naming the flag, the bytes needed and the bytes
/// available.
#[test]
fn huge_sizes_are_refused_naming_flag_and_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts");
    synth(&acts, "512");
    let refused = |args: &[&str], flag: &str| {
        let err = fails(args);
        assert!(
            err.contains(flag) && err.contains("needs about") && err.contains("bytes"),
            "kibitzer {args:?}: {err}"
        );
        assert!(err.contains("available"), "{err}");
        assert!(!err.contains("memory allocation"), "{err}");
    };
    let out = tmp.path().join("out");
    refused(
        &[
            "sae",
            "train",
            "--arch",
            "topk",
            "--d-sae",
            "4000000000",
            "--k",
            "4",
            "--activations",
            p(&acts),
            "--out",
            p(&out),
        ],
        "--d-sae 4000000000",
    );
    refused(
        &[
            "sae",
            "synth",
            "--d-in",
            "99999999999",
            "--rows",
            "10",
            "--out",
            p(&out),
        ],
        "--d-in 99999999999",
    );
    refused(
        &[
            "xcoder",
            "train",
            "--kind",
            "crosscoder",
            "--arch",
            "topk",
            "--d-sae",
            "4000000000",
            "--stores",
            &format!("{},{}", p(&acts), p(&acts)),
            "--out",
            p(&out),
            "--quiet",
        ],
        "--d-sae 4000000000",
    );
    refused(
        &["bench", "sae", "--d-in", "99999999", "--d-sae", "99999999"],
        "--d-in 99999999",
    );
    let games = tmp.path().join("games.bin");
    generate_othello(&games, "20");
    refused(
        &[
            "gpt",
            "train",
            "--games",
            p(&games),
            "--out",
            p(&out),
            "--d-model",
            "4000000",
            "--heads",
            "1",
        ],
        "--d-model 4000000",
    );
    let quizzes = tmp.path().join("quizzes.jsonl");
    ok(&[
        "quiz",
        "generate",
        "--size",
        "8",
        "--count",
        "4",
        "--out",
        p(&quizzes),
    ]);
    refused(
        &[
            "quiz",
            "train",
            "--quizzes",
            p(&quizzes),
            "--eval-quizzes",
            "1",
            "--out",
            p(&out),
            "--d-model",
            "4000000",
            "--heads",
            "1",
        ],
        "--d-model 4000000",
    );
    assert!(!out.exists(), "a refused command wrote {}", out.display());

    // KIBITZER_MEMORY_BYTES sets what the check allows: a harvest whose
    // --memory-mib (the ceiling its forward passes are sized to) does not
    // fit is refused naming it.
    let model = tmp.path().join("model");
    let mut config = kibitzer_models::gpt::othello::othello_gpt_config(4, 1, 16, 2);
    config.seed = Some(1);
    let device = kibitzer_sae::DeviceChoice::Cpu.device().unwrap();
    kibitzer_models::Gpt::new(config, &device)
        .unwrap()
        .save_transformer_lens(&model)
        .unwrap();
    let harvest = [
        "gpt",
        "harvest",
        "--model",
        p(&model),
        "--games",
        p(&games),
        "--site",
        "blocks.0.hook_resid_post",
        "--out",
        p(&out),
        "--quiet",
    ];
    let denied = run_env(&harvest, &[("KIBITZER_MEMORY_BYTES", "20000")]);
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success());
    assert!(
        err.contains("--memory-mib 1024") && err.contains("KIBITZER_MEMORY_BYTES=20000"),
        "{err}"
    );
    assert!(!out.exists());
    ok(&harvest);
}

fn sae_train(acts: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "sae",
        "train",
        "--arch",
        "topk",
        "--d-sae",
        "16,32",
        "--k",
        "3",
        "--activations",
        p(acts),
        "--out",
        p(out),
        "--steps",
        "30",
        "--batch-size",
        "32",
        "--checkpoint-every",
        "10",
        "--log-every",
        "5",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// What must match between an interrupted-then-resumed and an
/// uninterrupted training run: the saved dictionaries and the logs.
fn trained(out: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(out)
        .into_iter()
        .filter(|(name, _)| {
            name.ends_with("sae_weights.safetensors") || name.ends_with("log.jsonl")
        })
        .collect()
}

/// Fault injection for training (`sae train`): killed mid-step between
/// checkpoints, while writing a checkpoint (member files written, not yet
/// named by checkpoint.json), and before the first checkpoint; each resumes
/// or restarts to the bytes of an uninterrupted run. A corrupted checkpoint
/// is refused.
#[test]
fn killed_training_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts");
    synth(&acts, "1024");
    let whole = tmp.path().join("whole");
    let args = |out: &Path, extra: &[&str]| sae_train(&acts, out, extra);
    let run = |v: Vec<String>| ok(&strs(&v));
    let kill = |v: Vec<String>, fault: &str| killed_at(&strs(&v), fault);
    run(args(&whole, &[]));
    let expected = trained(&whole);
    assert_eq!(expected.len(), 4);

    for (i, fault) in ["train.step:15", "train.checkpoint:2"].iter().enumerate() {
        let out = tmp.path().join(format!("killed{i}"));
        kill(args(&out, &[]), fault);
        assert!(out.join("checkpoint.json").exists(), "{fault}");
        run(args(&out, &["--resume"]));
        assert_eq!(trained(&out), expected, "killed at {fault}, then resumed");
    }

    // Killed before the first checkpoint: nothing to resume, and a new
    // start replaces what the killed one left.
    let out = tmp.path().join("early");
    kill(args(&out, &[]), "train.step:7");
    assert!(!out.join("checkpoint.json").exists());
    let err = fails(&strs(&args(&out, &["--resume"])));
    assert!(err.contains("checkpoint"), "{err}");
    run(args(&out, &[]));
    assert_eq!(trained(&out), expected, "killed early, then started over");

    // A checkpoint file with flipped bytes is refused, naming it.
    let out = tmp.path().join("corrupt");
    kill(args(&out, &[]), "train.step:15");
    let ckpt = out.join("topk-d16-k3/checkpoint-00000010.safetensors");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    std::fs::write(&ckpt, bytes).unwrap();
    let err = fails(&strs(&args(&out, &["--resume"])));
    assert!(
        err.contains("checkpoint-00000010.safetensors") && err.contains("checksum"),
        "{err}"
    );
}

/// Issue 20 #9: a training run that fails before its first checkpoint (a
/// shard of the store is corrupt) leaves nothing behind; the error names
/// the shard.
#[test]
fn failed_training_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let acts = tmp.path().join("acts");
    synth(&acts, "1024");
    let shard = acts.join(
        names_starting(&acts, "shard")
            .into_iter()
            .min()
            .expect("a shard"),
    );
    let mut bytes = std::fs::read(&shard).unwrap();
    let at = bytes.len() - 9;
    bytes[at] ^= 0x10;
    std::fs::write(&shard, bytes).unwrap();
    let out = tmp.path().join("run");
    let err = fails(&strs(&sae_train(
        &acts,
        &out,
        &["--shuffle-memory-mib", "1"],
    )));
    assert!(
        err.contains(&shard.file_name().unwrap().to_string_lossy().to_string()),
        "{err}"
    );
    assert!(!out.exists(), "the failed run left {:?}", tree(&out).keys());
}

/// Fault injection for harvesting (`gpt harvest`): killed after the first
/// and third shards and before the manifest, the directory is not a store
/// (readers refuse it), a rerun without --overwrite refuses it naming the
/// unfinished store, and one with --overwrite writes the bytes of an
/// uninterrupted harvest.
#[test]
fn killed_harvest_reruns_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let games = tmp.path().join("games.bin");
    generate_othello(&games, "40");
    let model = tmp.path().join("model");
    let mut config = kibitzer_models::gpt::othello::othello_gpt_config(4, 1, 16, 2);
    config.seed = Some(2);
    let device = kibitzer_sae::DeviceChoice::Cpu.device().unwrap();
    kibitzer_models::Gpt::new(config, &device)
        .unwrap()
        .save_transformer_lens(&model)
        .unwrap();
    let harvest = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "gpt",
            "harvest",
            "--model",
            p(&model),
            "--games",
            p(&games),
            "--site",
            "blocks.0.hook_resid_post",
            "--out",
            p(out),
            "--rows-per-shard",
            "64",
            "--batch-size",
            "8",
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let whole = tmp.path().join("whole");
    ok(&strs(&(harvest(&whole, &[]))));
    let expected = tree(&whole);
    assert!(
        expected.len() >= 5,
        "want several shards: {:?}",
        expected.keys()
    );
    for fault in ["store.shard:1", "store.shard:3", "store.manifest:1"] {
        let out = tmp.path().join(fault.replace([':', '.'], "_"));
        killed_at(&strs(&harvest(&out, &[])), fault);
        let err = kibitzer_store::Store::open(&out).unwrap_err().to_string();
        assert!(err.contains("not an activation store"), "{fault}: {err}");
        let err = fails(&strs(&harvest(&out, &[])));
        assert!(
            err.contains("unfinished store") && err.contains("overwrite"),
            "{fault}: {err}"
        );
        ok(&strs(&harvest(&out, &["--overwrite"])));
        assert_eq!(tree(&out), expected, "killed at {fault}, then rerun");
    }
}

/// Fault injection for game generation (`games generate chess --resume`):
/// killed after the first and second chunks of games, resumed to the bytes
/// of an uninterrupted run; an Othello dataset killed before its rename
/// leaves the old file whole. (Torn lines and corrupt games on resume:
/// kibitzer-games `players::selfplay` tests.)
#[test]
fn killed_game_generation_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let generate = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "games",
            "generate",
            "chess",
            "--players",
            "random@400",
            "--players",
            "greedy@700",
            "--games",
            "12",
            "--max-plies",
            "40",
            "--threads",
            "1",
            "--seed",
            "5",
            "--out",
            p(out),
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let whole = tmp.path().join("whole.jsonl");
    ok(&strs(&generate(&whole, &[])));
    let expected = std::fs::read(&whole).unwrap();
    for fault in ["selfplay.chunk:1", "selfplay.chunk:2"] {
        let out = tmp
            .path()
            .join(format!("{}.jsonl", fault.replace([':', '.'], "_")));
        killed_at(&strs(&generate(&out, &[])), fault);
        let part = std::fs::read(&out).unwrap();
        assert!(part.len() < expected.len() && expected.starts_with(&part));
        ok(&strs(&generate(&out, &["--resume"])));
        assert_eq!(std::fs::read(&out).unwrap(), expected, "killed at {fault}");
    }

    let games = tmp.path().join("games.bin");
    generate_othello(&games, "5");
    let old = std::fs::read(&games).unwrap();
    killed_at(
        &[
            "games",
            "generate",
            "othello",
            "--size",
            "4",
            "--games",
            "9",
            "--out",
            p(&games),
        ],
        "atomic.commit:1",
    );
    assert_eq!(
        std::fs::read(&games).unwrap(),
        old,
        "the old dataset is whole"
    );
}

/// Fault injection for label writing (`bsp labels --out`): killed after
/// labelling and after the temporary file is complete but before its
/// rename, the previous labels file is left as it was; a rerun writes the
/// bytes of an uninterrupted run.
#[test]
fn killed_label_writing_keeps_the_old_file() {
    let tmp = tempfile::tempdir().unwrap();
    let games = tmp.path().join("games.bin");
    generate_othello(&games, "30");
    let labels = |out: &Path, max: &str| -> Vec<String> {
        [
            "bsp",
            "labels",
            "--game",
            "othello",
            "--games",
            p(&games),
            "--max-games",
            max,
            "--out",
            p(out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let whole = tmp.path().join("whole.jsonl");
    ok(&strs(&labels(&whole, "30")));
    let expected = std::fs::read(&whole).unwrap();
    for fault in ["labels.labelled:1", "atomic.commit:1"] {
        let dir = tmp.path().join(fault.replace([':', '.'], "_"));
        std::fs::create_dir(&dir).unwrap();
        let out = dir.join("labels.jsonl");
        ok(&strs(&labels(&out, "3")));
        let old = std::fs::read(&out).unwrap();
        killed_at(&strs(&labels(&out, "30")), fault);
        assert_eq!(std::fs::read(&out).unwrap(), old, "killed at {fault}");
        ok(&strs(&labels(&out, "30")));
        assert_eq!(
            std::fs::read(&out).unwrap(),
            expected,
            "rerun after {fault}"
        );
    }
}
