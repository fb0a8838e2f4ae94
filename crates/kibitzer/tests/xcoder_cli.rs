//! `kibitzer xcoder train` and `kibitzer xcoder diff` end to end on stores of
//! planted rows (kibitzer-xcoder's `Planted`: a known sparse map from input
//! to output, or features shared across layers): the dictionaries recover
//! the map, a killed run resumes to the same weights, diffing ranks the
//! feature only the fine-tuned model has first, and bad input is refused
//! with the file or shape at fault.

mod common;

use burn::tensor::Device;
use common::{fails, ok, p};
use kibitzer_sae::DeviceChoice;
use kibitzer_sae::dictionary::Dictionary;
use kibitzer_sae::ops::to_host;
use kibitzer_sae::synth::mmcs;
use kibitzer_store::{StoreConfig, StoreWriter};
use kibitzer_xcoder::planted::{Planted, PlantedConfig};
use kibitzer_xcoder::{Xcoder, eval, format};
use std::ops::Range;
use std::path::{Path, PathBuf};

fn dev() -> Device {
    DeviceChoice::Cpu
        .device()
        .expect("the default build has the CPU backend")
}

/// Writes columns `cols` of the first `rows` rows of `planted` into a store
/// at `dir` whose harvest recorded the hook site `site`.
fn store(dir: &Path, planted: &Planted, cols: Range<usize>, site: &str, rows: usize) {
    let mut data = Vec::new();
    planted.generate_rows(0, rows, &mut data);
    let values: Vec<f32> = data
        .chunks(planted.row_width())
        .flat_map(|r| r[cols.clone()].to_vec())
        .collect();
    let config = StoreConfig {
        rows_per_shard: 2048,
        metadata: serde_json::json!({ "hook_site": site }),
        ..StoreConfig::new(cols.len())
    };
    let mut writer = StoreWriter::create(dir, config).unwrap();
    writer.push_rows(&values).unwrap();
    writer.finish().unwrap();
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn run_ok(v: &[String]) -> String {
    ok(&common::strs(v))
}

fn run_fails(v: &[String]) -> String {
    fails(&common::strs(v))
}

/// A planted map from a 24-wide input site to a 16-wide output site.
fn transcoder_data() -> Planted {
    Planted::new(PlantedConfig {
        n_features: 32,
        input_widths: vec![24],
        output_widths: vec![16],
        firing_probability: 0.06,
        block_presence: 1.0,
        noise_std: 0.005,
        dense_input_std: 0.0,
        skip_scale: 0.0,
        seed: 1,
    })
    .unwrap()
}

const INPUT_SITE: &str = "blocks.0.ln2.hook_normalized";
const OUTPUT_SITE: &str = "blocks.0.hook_mlp_out";

/// Input and output stores of 8192 planted rows under `dir`.
fn transcoder_stores(dir: &Path, planted: &Planted) -> (PathBuf, PathBuf) {
    let (input, output) = (dir.join("mlp_in"), dir.join("mlp_out"));
    store(&input, planted, 0..24, INPUT_SITE, 8192);
    store(&output, planted, 24..40, OUTPUT_SITE, 8192);
    (input, output)
}

#[test]
fn a_transcoder_trained_from_two_stores_recovers_the_planted_map() {
    let tmp = tempfile::tempdir().unwrap();
    let planted = transcoder_data();
    let (input, output) = transcoder_stores(tmp.path(), &planted);
    let out = tmp.path().join("run");
    let stdout = ok(&[
        "xcoder",
        "train",
        "--kind",
        "transcoder",
        "--arch",
        "topk",
        "--k",
        "5",
        "--d-sae",
        "64",
        "--input-store",
        p(&input),
        "--output-store",
        p(&output),
        "--steps",
        "800",
        "--batch-size",
        "512",
        "--lr",
        "3e-3",
        "--out",
        p(&out),
        "--quiet",
    ]);
    let name = "transcoder-topk-d64-k5";
    assert!(stdout.contains(&format!("{name}: step 800")), "{stdout}");
    let dir = out.join(name);
    for f in ["cfg.json", "log.jsonl", "training.json"] {
        assert!(dir.join(f).is_file(), "{f} missing: {stdout}");
    }
    // The saved files load as a transcoder between the stores' sites.
    let saved = format::load(&dir, &dev()).unwrap();
    let Xcoder::Transcoder(t) = &saved else {
        panic!("a transcoder was saved")
    };
    assert_eq!(
        (t.input_site.as_str(), t.output_site.as_str()),
        (INPUT_SITE, OUTPUT_SITE)
    );
    // Its decoder holds the planted output directions, and it predicts the
    // output on rows it never saw (far past the 8192 in the stores).
    let (truth, d) = planted.target_directions();
    let score = mmcs(truth, 32, &to_host(saved.decoder_directions()), 64, d).unwrap();
    assert!(score > 0.9, "MMCS {score}");
    let mut held_out = transcoder_data();
    held_out
        .seek_to(&serde_json::json!({ "planted_row": 1_000_000 }))
        .unwrap();
    let fresh = eval::evaluate(&saved, &mut held_out, 4096, 1024, &dev()).unwrap();
    assert!(fresh.fvu.concatenated < 0.1, "{:?}", fresh.fvu);
    // The command's own evaluation, on rows of the stores, agrees.
    let e = json(&dir.join("eval.json"));
    let fvu = e["fvu"]["concatenated"].as_f64().unwrap();
    assert!(fvu < 0.1, "{e}");
    assert_eq!(e["fvu"]["mean_of_blocks"].as_f64().unwrap(), fvu);
    assert_eq!(e["rows"], 8192);
    assert!(stdout.contains(&format!("FVU {fvu:.4}")), "{stdout}");
}

fn layered_data() -> Planted {
    Planted::new(PlantedConfig {
        n_features: 32,
        input_widths: vec![16, 16, 16],
        output_widths: vec![],
        firing_probability: 0.06,
        block_presence: 0.6,
        noise_std: 0.005,
        dense_input_std: 0.0,
        skip_scale: 0.0,
        seed: 2,
    })
    .unwrap()
}

#[test]
fn a_crosscoder_reads_one_store_per_layer_or_one_wide_store() {
    let tmp = tempfile::tempdir().unwrap();
    let planted = layered_data();
    let layers: Vec<PathBuf> = (0..3)
        .map(|i| {
            let dir = tmp.path().join(format!("layer{i}"));
            store(
                &dir,
                &planted,
                16 * i..16 * (i + 1),
                &format!("blocks.{i}.hook_resid_post"),
                8192,
            );
            dir
        })
        .collect();
    let out = tmp.path().join("cc");
    let stores = layers
        .iter()
        .map(|l| p(l).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let stdout = ok(&[
        "xcoder",
        "train",
        "--kind",
        "crosscoder",
        "--arch",
        "batchtopk",
        "--k",
        "2",
        "--d-sae",
        "64",
        "--stores",
        &stores,
        "--steps",
        "800",
        "--batch-size",
        "512",
        "--lr",
        "3e-3",
        "--out",
        p(&out),
        "--quiet",
    ]);
    let dir = out.join("crosscoder-batchtopk-d64-k2");
    let Xcoder::Crosscoder(c) = format::load(&dir, &dev()).unwrap() else {
        panic!("a crosscoder was saved: {stdout}")
    };
    let names: Vec<&str> = c.config.blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "blocks.0.hook_resid_post",
            "blocks.1.hook_resid_post",
            "blocks.2.hook_resid_post"
        ]
    );
    let (truth, d) = planted.target_directions();
    let score = mmcs(truth, 32, &to_host(c.params.w_dec.clone()), 64, d).unwrap();
    assert!(score > 0.9, "MMCS {score}");
    // Both FVUs are reported, with one value per layer.
    let e = json(&dir.join("eval.json"));
    let per_block = e["fvu"]["per_block"].as_array().unwrap();
    assert_eq!(per_block.len(), 3, "{e}");
    for key in ["concatenated", "mean_of_blocks"] {
        assert!(e["fvu"][key].as_f64().unwrap() < 0.15, "{e}");
    }

    // The same rows as one wide store split by --block-widths, sized by
    // --expansion (4 x the widest block), with training settings from a
    // TOML file: the fields it names replace the architecture's defaults
    // (`[adam]` field by field), the rest keep them, flags win.
    let wide = tmp.path().join("wide");
    store(&wide, &planted, 0..48, "resid", 4096);
    let config = tmp.path().join("train.toml");
    std::fs::write(
        &config,
        "dead_after_rows = 12345\nbatch_size = 999\n[adam]\nbeta2 = 0.99\n",
    )
    .unwrap();
    let out = tmp.path().join("cc-wide");
    ok(&[
        "xcoder",
        "train",
        "--kind",
        "crosscoder",
        "--arch",
        "topk",
        "--k",
        "4",
        "--expansion",
        "4",
        "--stores",
        p(&wide),
        "--block-widths",
        "16,16,16",
        "--config",
        p(&config),
        "--steps",
        "20",
        "--batch-size",
        "256",
        "--out",
        p(&out),
        "--eval-rows",
        "0",
        "--quiet",
    ]);
    let dir = out.join("crosscoder-topk-d64-k4");
    let Xcoder::Crosscoder(c) = format::load(&dir, &dev()).unwrap() else {
        panic!("a crosscoder was saved")
    };
    assert_eq!(c.config.widths(), vec![16, 16, 16]);
    assert_eq!(c.config.blocks[2].name, "resid[2]");
    assert!(!dir.join("eval.json").exists(), "--eval-rows 0 skips it");
    let used = &json(&dir.join("training.json"))["training_config"];
    assert_eq!(used["dead_after_rows"], 12345);
    assert_eq!(used["batch_size"], 256, "--batch-size beats the file");
    assert_eq!(used["adam"]["beta2"], 0.99);
    assert_eq!(used["adam"]["beta1"], 0.9);
    assert!(used["grad_clip_norm"].is_null(), "TopK's default: {used}");
    // An unknown field is named with the file.
    std::fs::write(&config, "learning_rate = 0.1\n").unwrap();
    let err = fails(&[
        "xcoder",
        "train",
        "--kind",
        "crosscoder",
        "--arch",
        "topk",
        "--d-sae",
        "64",
        "--stores",
        p(&wide),
        "--block-widths",
        "16,16,16",
        "--config",
        p(&config),
        "--out",
        p(&tmp.path().join("cc-bad")),
    ]);
    assert!(
        err.contains("train.toml") && err.contains("learning_rate"),
        "{err}"
    );
}

#[test]
fn a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let planted = transcoder_data();
    let (input, output) = transcoder_stores(tmp.path(), &planted);
    let stores = format!("{},{}", p(&input), p(&output));
    let command = |out: &Path, extra: &[&str]| -> Vec<String> {
        let mut v = args(&[
            "xcoder",
            "train",
            "--kind",
            "transcoder",
            "--arch",
            "batchtopk",
            "--k",
            "3",
            "--d-sae",
            "32",
            "--stores",
            &stores,
            "--steps",
            "60",
            "--batch-size",
            "128",
            "--seed",
            "5",
            "--shuffle-memory-mib",
            "1",
            "--checkpoint-every",
            "20",
            "--log-every",
            "10",
            "--eval-rows",
            "0",
            "--quiet",
            "--out",
            p(out),
        ]);
        v.extend(args(extra));
        v
    };
    let (whole, killed) = (tmp.path().join("whole"), tmp.path().join("killed"));
    run_ok(&command(&whole, &[]));
    // Killed after 30 steps: the last checkpoint is at step 20 and no
    // dictionary is saved.
    let stdout = run_ok(&command(&killed, &["--stop-after", "30"]));
    assert!(stdout.contains("stopped at step 30 of 60"), "{stdout}");
    let name = "transcoder-batchtopk-d32-k3";
    assert!(!killed.join(name).join("cfg.json").exists());
    assert_eq!(json(&killed.join("checkpoint.json"))["step"], 20);
    // Starting over it is refused, naming --resume.
    let err = run_fails(&command(&killed, &[]));
    assert!(err.contains("--resume"), "{err}");
    // A resuming command that changes the run is refused, naming the flag.
    let mut longer = command(&killed, &["--resume"]);
    let at = longer.iter().position(|a| a == "60").unwrap();
    longer[at] = "120".into();
    let err = run_fails(&longer);
    assert!(
        err.contains("--steps: 120 now, 60 when the run started"),
        "{err}"
    );
    // --out and --resume are enough: the stores and the data order come
    // from command.json.
    let stdout = ok(&[
        "xcoder",
        "train",
        "--out",
        p(&killed),
        "--resume",
        "--quiet",
    ]);
    assert!(stdout.contains(&format!("{name}: step 60")), "{stdout}");
    let (a, b) = (
        format::load(whole.join(name), &dev()).unwrap(),
        format::load(killed.join(name), &dev()).unwrap(),
    );
    for ((param, x), (_, y)) in a.params().named().into_iter().zip(b.params().named()) {
        assert_eq!(to_host(x), to_host(y), "{param} differs after resuming");
    }
    // Every logged step is in the log once: step 29, logged by the killed
    // call after the step-20 checkpoint, is not there twice.
    let log = std::fs::read_to_string(killed.join(name).join("log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [9, 19, 29, 39, 49, 59]);
    // Resuming a finished run with its full command line changes nothing.
    run_ok(&command(&killed, &["--resume"]));
    let c = format::load(killed.join(name), &dev()).unwrap();
    for ((param, x), (_, y)) in a.params().named().into_iter().zip(c.params().named()) {
        assert_eq!(to_host(x), to_host(y), "{param} changed by a second resume");
    }
}

/// Two layers of 12; feature 0 is written into layer 0 by the base model,
/// and also into layer 1 (a direction new to the model) by the fine-tuned
/// one; the fine-tuning data make features 0 and 1 fire more. The stores of
/// each stage (one per layer) and the two layer-1 directions of feature 0.
fn diff_stores(dir: &Path, rows: usize) -> ([String; 4], Vec<f32>, Vec<f32>) {
    let config = PlantedConfig {
        n_features: 16,
        input_widths: vec![12, 12],
        output_widths: vec![],
        firing_probability: 0.1,
        block_presence: 1.0,
        noise_std: 0.005,
        dense_input_std: 0.0,
        skip_scale: 0.0,
        seed: 3,
    };
    let mut base_model = Planted::new(config.clone()).unwrap();
    let layer0 = base_model.input_directions()[..12].to_vec();
    let other = Planted::new(PlantedConfig { seed: 99, ..config }).unwrap();
    let new_direction = other.input_directions()[12..24].to_vec();
    let only_layer0: Vec<f32> = layer0.iter().copied().chain([0.0; 12]).collect();
    base_model.set_direction(0, false, &only_layer0).unwrap();
    let mut finetuned_model = base_model.clone();
    let with_new: Vec<f32> = layer0.iter().chain(&new_direction).copied().collect();
    finetuned_model.set_direction(0, false, &with_new).unwrap();
    let finetune_data = |mut p: Planted| {
        p.set_probability(0, 0.3).unwrap();
        p.set_probability(1, 0.3).unwrap();
        p
    };
    let stages = [
        ("s", base_model.clone()),
        ("d", finetune_data(base_model)),
        ("m", finetuned_model.clone()),
        ("dm", finetune_data(finetuned_model)),
    ];
    let lists = stages.map(|(name, planted)| {
        (0..2)
            .map(|layer| {
                let path = dir.join(format!("{name}-layer{layer}"));
                let site = format!("blocks.{layer}.hook_resid_post");
                store(&path, &planted, 12 * layer..12 * (layer + 1), &site, rows);
                p(&path).to_string()
            })
            .collect::<Vec<_>>()
            .join(",")
    });
    (lists, layer0, new_direction)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (n(a) * n(b))
}

#[test]
fn diff_ranks_the_feature_only_the_fine_tuned_model_has_first() {
    let tmp = tempfile::tempdir().unwrap();
    let ([s, d, m, dm], layer0, new_direction) = diff_stores(tmp.path(), 8192);
    let out = tmp.path().join("diff");
    let command = args(&[
        "xcoder",
        "diff",
        "--stage-s",
        &s,
        "--stage-d",
        &d,
        "--stage-m",
        &m,
        "--stage-dm",
        &dm,
        "--arch",
        "topk",
        "--k",
        "3",
        "--d-sae",
        "24",
        "--steps",
        "1000",
        "--fine-tune-steps",
        "400",
        "--lr",
        "3e-3",
        "--fine-tune-lr",
        "1e-3",
        "--batch-size",
        "512",
        "--top",
        "3",
        "--out",
        p(&out),
        "--quiet",
    ]);
    let stdout = run_ok(&command);
    assert!(stdout.contains("stage DM: step 400"), "{stdout}");
    let ranking = json(&out.join("diff.json"));
    let features = ranking["features"].as_array().unwrap();
    let ranked = |rank: usize| features[rank]["feature"].as_u64().unwrap() as usize;
    let score = |rank: usize| features[rank]["score"].as_f64().unwrap();
    let top = ranked(0);
    assert!(stdout.contains(&format!("| 1 | {top} |")), "{stdout}");
    // Per-block cosines of the saved decoders (they do not depend on the
    // per-layer scales).
    let decoder = |stage: &str| {
        let x = format::load(out.join(format!("stage-{stage}/{stage}")), &dev()).unwrap();
        to_host(x.params().w_dec.clone())
    };
    let (at_s, at_dm) = (decoder("S"), decoder("DM"));
    let layer = |w: &[f32], j: usize, l: usize| w[j * 24 + 12 * l..j * 24 + 12 * (l + 1)].to_vec();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    // The latent of the planted feature: at S the base model's layer-0
    // direction and (almost) nothing in layer 1; at DM the new layer-1
    // direction as well.
    let planted: Vec<usize> = (0..24)
        .filter(|&j| {
            cosine(&layer(&at_s, j, 0), &layer0) > 0.95
                && norm(&layer(&at_s, j, 1)) < 0.1 * norm(&layer(&at_s, j, 0))
                && cosine(&layer(&at_dm, j, 1), &new_direction) > 0.95
        })
        .collect();
    assert_eq!(
        planted.len(),
        1,
        "the planted latent: {planted:?}\n{stdout}"
    );
    // The top-ranked latent writes the fine-tuned model's new layer-1
    // direction at DM and did not at S: with this seed it is the planted
    // latent. (Over seeds 0 to 7, a second latent sometimes takes part of
    // the new direction at M and DM and ranks first, with the planted one
    // second: both turn when the model changes.)
    assert!(
        planted[0] == ranked(0) || planted[0] == ranked(1),
        "{stdout}"
    );
    assert!(
        cosine(&layer(&at_dm, top, 1), &new_direction).abs() > 0.8
            && cosine(&layer(&at_s, top, 1), &new_direction).abs() < 0.6,
        "{stdout}"
    );
    // Every latent from the third on scores far below it.
    for rank in 2..features.len() {
        assert!(
            score(rank) < 0.2 * score(0),
            "rank {rank}: latent {} scores {} against {}",
            ranked(rank),
            score(rank),
            score(0)
        );
    }

    // Resuming a finished diff retrains nothing and ranks the same way.
    let before = std::fs::read_to_string(out.join("diff.json")).unwrap();
    ok(&["xcoder", "diff", "--out", p(&out), "--resume", "--quiet"]);
    assert_eq!(
        std::fs::read_to_string(out.join("diff.json")).unwrap(),
        before
    );
    // Starting it again is refused, naming --resume.
    let err = run_fails(&command);
    assert!(err.contains("--resume"), "{err}");

    // The saved stages ranked from disk put the same feature first.
    let stage = |s: &str| out.join(format!("stage-{s}/{s}"));
    let saved_out = tmp.path().join("saved");
    let stdout = ok(&[
        "xcoder",
        "diff",
        "--from-saved",
        p(&stage("S")),
        p(&stage("D")),
        p(&stage("M")),
        p(&stage("DM")),
        "--out",
        p(&saved_out),
    ]);
    let saved = json(&saved_out.join("diff.json"));
    assert_eq!(saved["features"].as_array().unwrap().len(), 24);
    assert_eq!(saved["features"][0]["feature"], top, "{stdout}");
}

#[test]
fn bad_input_is_refused_naming_the_file_or_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let planted = transcoder_data();
    let (input, output) = transcoder_stores(tmp.path(), &planted);
    let out = tmp.path().join("out");
    let train = |extra: &[&str]| -> Vec<String> {
        let mut v = args(&[
            "xcoder",
            "train",
            "--arch",
            "topk",
            "--k",
            "4",
            "--d-sae",
            "32",
            "--steps",
            "5",
            "--batch-size",
            "64",
            "--quiet",
            "--out",
            p(&out),
        ]);
        v.extend(args(extra));
        v
    };
    // A store that does not exist is named.
    let missing = tmp.path().join("nowhere");
    let err = run_fails(&train(&[
        "--kind",
        "transcoder",
        "--input-store",
        p(&input),
        "--output-store",
        p(&missing),
    ]));
    assert!(
        err.contains("activation store") && err.contains("nowhere"),
        "{err}"
    );
    // Stores that were not harvested from the same examples (other row
    // counts) are refused naming the store.
    let short = tmp.path().join("short");
    store(&short, &planted, 24..40, OUTPUT_SITE, 4000);
    let err = run_fails(&train(&[
        "--kind",
        "transcoder",
        "--stores",
        &format!("{},{}", p(&input), p(&short)),
    ]));
    assert!(err.contains("short") && err.contains("same"), "{err}");
    // A transcoder reads two blocks.
    let err = run_fails(&train(&[
        "--kind",
        "transcoder",
        "--stores",
        &format!("{},{},{}", p(&input), p(&output), p(&output)),
    ]));
    assert!(err.contains("two blocks") && err.contains("got 3"), "{err}");
    // Block widths that do not add up to the store's row width.
    let err = run_fails(&train(&[
        "--kind",
        "crosscoder",
        "--stores",
        p(&input),
        "--block-widths",
        "10,10",
    ]));
    assert!(
        err.contains("row width 24") && err.contains("[10, 10]"),
        "{err}"
    );
    // Flags of another architecture or kind.
    let err = run_fails(&train(&[
        "--kind",
        "transcoder",
        "--stores",
        &format!("{},{}", p(&input), p(&output)),
        "--l1",
        "3",
    ]));
    assert!(err.contains("--l1"), "{err}");
    let err = run_fails(&train(&[
        "--kind",
        "crosscoder",
        "--input-store",
        p(&input),
        "--output-store",
        p(&output),
    ]));
    assert!(err.contains("--input-store"), "{err}");
    assert!(
        !out.exists(),
        "nothing is written before the input is checked"
    );
    // Resuming where there is no run names the directory.
    let err = fails(&["xcoder", "train", "--out", p(&out), "--resume"]);
    assert!(err.contains(p(&out)) && err.contains("no run"), "{err}");

    // Diffing: a stage whose stores have other widths is named.
    let (i, o) = (p(&input).to_string(), p(&output).to_string());
    let err = fails(&[
        "xcoder",
        "diff",
        "--stage-s",
        &i,
        "--stage-d",
        &i,
        "--stage-m",
        &o,
        "--stage-dm",
        &i,
        "--arch",
        "standard",
        "--d-sae",
        "8",
        "--steps",
        "5",
        "--batch-size",
        "64",
        "--out",
        p(&tmp.path().join("diff")),
    ]);
    assert!(
        err.contains("stage M") && err.contains("[24]") && err.contains("[16]"),
        "{err}"
    );
    // Training flags do not go with --from-saved.
    let err = fails(&[
        "xcoder",
        "diff",
        "--from-saved",
        &i,
        &i,
        &i,
        &i,
        "--steps",
        "5",
    ]);
    assert!(
        err.contains("--steps") && err.contains("--from-saved"),
        "{err}"
    );
}

/// Several sizes and coefficients train one transcoder of each from one
/// pass over the stores, each saved, evaluated and named by its shape; a
/// killed grid resumes to the end; `--name`, which names one dictionary, is
/// refused for a grid.
#[test]
fn a_grid_of_transcoders_trains_from_one_pass_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let planted = transcoder_data();
    let (input, output) = transcoder_stores(tmp.path(), &planted);
    let out = tmp.path().join("grid");
    let stores = format!("{},{}", p(&input), p(&output));
    // Two sizes; the run below adds two coefficients (a 2 x 2 grid).
    let grid = [
        "xcoder",
        "train",
        "--kind",
        "transcoder",
        "--arch",
        "standard",
        "--d-sae",
        "32,64",
        "--stores",
        &stores,
    ];
    let base = [
        &grid[..],
        &["--l1", "0.5,2"],
        &[
            "--steps",
            "120",
            "--batch-size",
            "256",
            "--lr",
            "3e-3",
            "--eval-rows",
            "2048",
            "--checkpoint-every",
            "25",
            "--out",
            p(&out),
            "--quiet",
        ],
    ]
    .concat();
    let mut killed = base.to_vec();
    killed.extend(["--stop-after", "50"]);
    let stdout = ok(&killed);
    assert!(stdout.contains("stopped at step 50"), "{stdout}");
    assert_eq!(json(&out.join("checkpoint.json"))["step"], 50);
    let stdout = ok(&["xcoder", "train", "--out", p(&out), "--resume", "--quiet"]);
    let names = [
        "transcoder-standard-d32-l1_0.5",
        "transcoder-standard-d32-l1_2",
        "transcoder-standard-d64-l1_0.5",
        "transcoder-standard-d64-l1_2",
    ];
    let mut l0 = Vec::new();
    for name in names {
        assert!(stdout.contains(&format!("{name}: step 120")), "{stdout}");
        let dir = out.join(name);
        let Xcoder::Transcoder(t) = format::load(&dir, &dev()).unwrap() else {
            panic!("{name}: a transcoder was saved")
        };
        let e = json(&dir.join("eval.json"));
        // The resuming call's --eval-rows, its default: all 8192 rows.
        assert_eq!(e["rows"], 8192, "{e}");
        l0.push(e["metrics"]["l0"].as_f64().unwrap());
        let used = &json(&dir.join("training.json"))["training_config"];
        let coefficient = if name.ends_with("0.5") { 0.5 } else { 2.0 };
        assert_eq!(used["sparsity_coefficient"], coefficient, "{name}");
        assert_eq!(
            t.sae.config.d_sae,
            if name.contains("d32") { 32 } else { 64 }
        );
    }
    // The larger coefficient gives the sparser dictionary at each size.
    assert!(l0[1] < l0[0] && l0[3] < l0[2], "L0 {l0:?}");

    let named_out = tmp.path().join("named");
    let named = p(&named_out);
    let err = fails(&[&grid[..], &["--name", "one", "--out", named]].concat());
    assert!(err.contains("--name names one dictionary"), "{err}");
}
