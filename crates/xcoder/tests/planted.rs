//! Recovery of planted sparse maps: transcoders of every architecture learn
//! a planted map from input to output, a skip transcoder learns the planted
//! dense map beside it, crosscoders recover features shared across layers,
//! stage-wise diffing ranks a feature that only the fine-tuned model has
//! first, and a killed run resumes to the same weights. Each dictionary is
//! small and trains in about a second.

#![cfg(feature = "flex")]

use burn::tensor::Device;
use kibitzer_sae::Architecture;
use kibitzer_sae::dictionary::Dictionary;
use kibitzer_sae::ops::to_host;
use kibitzer_sae::synth::mmcs;
use kibitzer_sae::train::{RunOptions, TrainConfig};
use kibitzer_store::ActivationSource;
use kibitzer_xcoder::diff::{
    DmParent, RankBy, StageSources, StagewiseConfig, model_diff, run_stagewise,
};
use kibitzer_xcoder::eval::evaluate;
use kibitzer_xcoder::planted::{Planted, PlantedConfig};
use kibitzer_xcoder::run::XRun;
use kibitzer_xcoder::source::RowSource;
use kibitzer_xcoder::train::XTrainer;
use kibitzer_xcoder::{Block, CrosscoderConfig, TranscoderConfig, Xcoder, XcoderConfig};
use std::path::Path;

fn dev() -> Device {
    Device::flex()
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        checkpoint_every: 0,
        log_every: 100,
        progress: false,
        ..RunOptions::new(dir)
    }
}

/// Trains `config` on `source` with `training`; the dictionary for raw rows.
fn train(config: XcoderConfig, training: TrainConfig, source: &mut Planted, dir: &Path) -> Xcoder {
    let xcoder = config.init(training.seed, &dev()).unwrap();
    let mut run = XRun::new("dict", XTrainer::new(xcoder, training).unwrap(), &dev()).unwrap();
    run.run(source, &options(dir)).unwrap();
    run.inference_xcoder().unwrap()
}

/// The architecture's defaults, shortened: 512-row batches, a faster
/// learning rate and a short dead-feature window for a 1000-step run.
fn training(arch: &Architecture, d_sae: usize, steps: usize, lr: f64) -> TrainConfig {
    let mut c = TrainConfig::for_architecture(arch, d_sae, steps);
    c.batch_size = 512;
    c.dead_after_rows = 50_000;
    c.lr = lr;
    c
}

fn transcoder(
    arch: Architecture,
    d_in: usize,
    d_out: usize,
    d_sae: usize,
    skip: bool,
) -> XcoderConfig {
    XcoderConfig::Transcoder(TranscoderConfig {
        architecture: arch,
        input_site: "blocks.0.ln2.hook_normalized".into(),
        d_in,
        output_site: "blocks.0.hook_mlp_out".into(),
        d_out,
        d_sae,
        skip,
    })
}

fn transcoder_data(skip_scale: f64) -> PlantedConfig {
    PlantedConfig {
        n_features: 32,
        input_widths: vec![24],
        output_widths: vec![16],
        firing_probability: 0.06,
        block_presence: 1.0,
        noise_std: 0.005,
        dense_input_std: 0.0,
        skip_scale,
        seed: 1,
    }
}

#[test]
fn transcoders_of_every_architecture_recover_a_planted_map() {
    // (architecture, learning rate, sparsity coefficient when it has one)
    let archs = [
        (Architecture::TopK { k: 5 }, 3e-3, None),
        (Architecture::BatchTopK { k: 3 }, 3e-3, None),
        (Architecture::Standard, 1e-3, Some(1.0)),
        (Architecture::JumpRelu { bandwidth: 0.1 }, 3e-3, Some(0.3)),
        (Architecture::Gated, 3e-3, Some(1.0)),
    ];
    for (arch, lr, coefficient) in archs {
        let tmp = tempfile::tempdir().unwrap();
        let mut source = Planted::new(transcoder_data(0.0)).unwrap();
        let mut c = training(&arch, 64, 1000, lr);
        if let Some(coefficient) = coefficient {
            c.sparsity_coefficient = coefficient;
        }
        let t = train(
            transcoder(arch.clone(), 24, 16, 64, false),
            c,
            &mut source,
            tmp.path(),
        );
        // The decoder holds the planted output directions, and the whole
        // map (encoder, selection, decoder) predicts the output on rows
        // it has not seen.
        let (truth, d) = source.target_directions();
        let score = mmcs(truth, 32, &to_host(t.decoder_directions()), 64, d).unwrap();
        let eval = evaluate(&t, &mut source, 4096, 1024, &dev()).unwrap();
        assert!(score > 0.93, "{arch:?}: MMCS {score}");
        assert!(eval.fvu.concatenated < 0.1, "{arch:?}: {:?}", eval.fvu);
        assert_eq!(eval.fvu.per_block.len(), 1);
        assert_eq!(
            eval.fvu.mean_of_blocks, eval.fvu.concatenated,
            "one block: both FVUs agree"
        );
    }
}

#[test]
fn skip_transcoder_learns_the_planted_dense_map() {
    let arch = Architecture::TopK { k: 3 };
    let mut fvus = Vec::new();
    for skip in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        // A dense part of the input that no feature explains, mapped to the
        // output by the planted skip map: only a skip path can carry it.
        let data = PlantedConfig {
            n_features: 16,
            dense_input_std: 0.3,
            ..transcoder_data(1.0)
        };
        let mut source = Planted::new(data).unwrap();
        let t = train(
            transcoder(arch.clone(), 24, 16, 32, skip),
            training(&arch, 32, 1000, 3e-3),
            &mut source,
            tmp.path(),
        );
        fvus.push(
            evaluate(&t, &mut source, 4096, 1024, &dev())
                .unwrap()
                .fvu
                .concatenated,
        );
        if skip {
            let Xcoder::Transcoder(t) = &t else {
                panic!("a transcoder was trained")
            };
            let learnt = to_host(t.sae.params.w_skip.clone().unwrap());
            let truth = source.skip_matrix().unwrap();
            let err: f32 = learnt
                .iter()
                .zip(truth)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                .sqrt();
            let norm: f32 = truth.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!(err < 0.2 * norm, "W_skip relative error {}", err / norm);
        }
    }
    // The sparse path alone cannot carry a dense map.
    assert!(
        fvus[1] < 0.15 && fvus[1] < 0.5 * fvus[0],
        "FVU without / with skip: {fvus:?}"
    );
}

fn layered_data(seed: u64) -> PlantedConfig {
    PlantedConfig {
        n_features: 32,
        input_widths: vec![16, 16, 16],
        output_widths: vec![],
        firing_probability: 0.06,
        // Most features live in some of the layers only.
        block_presence: 0.6,
        noise_std: 0.005,
        dense_input_std: 0.0,
        skip_scale: 0.0,
        seed,
    }
}

fn crosscoder(arch: Architecture, widths: &[usize], d_sae: usize) -> XcoderConfig {
    XcoderConfig::Crosscoder(CrosscoderConfig {
        architecture: arch,
        blocks: widths
            .iter()
            .enumerate()
            .map(|(i, &w)| Block::new(format!("blocks.{i}.hook_resid_post"), w))
            .collect(),
        d_sae,
    })
}

#[test]
fn crosscoders_recover_features_shared_across_layers() {
    for (arch, lr, coefficient) in [
        (Architecture::Standard, 2e-3, Some(2.0)),
        (Architecture::TopK { k: 4 }, 3e-3, None),
        (Architecture::BatchTopK { k: 2 }, 3e-3, None),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut source = Planted::new(layered_data(2)).unwrap();
        let mut c = training(&arch, 64, 1000, lr);
        if let Some(coefficient) = coefficient {
            c.sparsity_coefficient = coefficient;
        }
        let x = train(
            crosscoder(arch.clone(), &[16, 16, 16], 64),
            c,
            &mut source,
            tmp.path(),
        );
        let (truth, d) = source.target_directions();
        let decoder = to_host(x.decoder_directions());
        let score = mmcs(truth, 32, &decoder, 64, d).unwrap();
        assert!(score > 0.93, "{arch:?}: MMCS {score}");
        // A feature recovered well (cosine > 0.95 with its best latent, for
        // most features) is recovered with its layer structure: where the
        // feature is absent, its latent writes (almost) nothing, so the
        // crosscoder found cross-layer features, not one direction per layer.
        let unit = |v: &[f32]| {
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            v.iter().map(|a| a / n).collect::<Vec<f32>>()
        };
        let (mut recovered, mut checked) = (0, 0);
        for t in truth.chunks(d) {
            let t = unit(t);
            let (fit, best) = decoder
                .chunks(d)
                .map(|row| {
                    let row = unit(row);
                    (row.iter().zip(&t).map(|(x, y)| x * y).sum::<f32>(), row)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap();
            if fit < 0.95 {
                continue;
            }
            recovered += 1;
            for layer in 0..3 {
                let range = layer * 16..(layer + 1) * 16;
                if t[range.clone()].iter().all(|v| *v == 0.0) {
                    let leak: f32 = best[range].iter().map(|v| v * v).sum::<f32>().sqrt();
                    assert!(
                        leak < 0.15,
                        "{arch:?}: a latent writes {leak} into a layer its feature is absent from"
                    );
                    checked += 1;
                }
            }
        }
        assert!(
            recovered >= 26,
            "{arch:?}: {recovered} of 32 features recovered"
        );
        assert!(
            checked > 10,
            "the data has layer-specific features ({checked} absences)"
        );
        let eval = evaluate(&x, &mut source, 4096, 1024, &dev()).unwrap();
        assert!(
            eval.fvu.concatenated < 0.1 && eval.fvu.mean_of_blocks < 0.1,
            "{arch:?}: {:?}",
            eval.fvu
        );
        assert_eq!(eval.fvu.per_block.len(), 3);
    }
}

#[test]
fn stagewise_diffing_ranks_the_fine_tuned_models_new_feature_first() {
    // Two layers of 12. Feature 0 is the planted one: the base model writes
    // it into layer 0 only; the fine-tuned model also writes a new direction
    // into layer 1. The fine-tuning data make it (and feature 1) fire more.
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
    let base_model = Planted::new(config.clone()).unwrap();
    let planted = base_model.input_directions()[..24].to_vec();
    let (layer0, new_direction) = (planted[..12].to_vec(), {
        // The layer-1 direction of a feature of another seed: new to the model.
        let other = Planted::new(PlantedConfig {
            seed: 99,
            ..config.clone()
        })
        .unwrap();
        other.input_directions()[12..24].to_vec()
    });
    let mut base_model = base_model;
    let only_layer0: Vec<f32> = layer0
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0.0, 12))
        .collect();
    base_model.set_direction(0, false, &only_layer0).unwrap();
    let mut finetuned_model = base_model.clone();
    let with_new: Vec<f32> = layer0.iter().chain(&new_direction).copied().collect();
    finetuned_model.set_direction(0, false, &with_new).unwrap();
    let finetune_data = |mut p: Planted| {
        p.set_probability(0, 0.3).unwrap();
        p.set_probability(1, 0.3).unwrap();
        p
    };
    let mut s = base_model.clone();
    let mut d = finetune_data(base_model.clone());
    let mut m = finetuned_model.clone();
    let mut dm = finetune_data(finetuned_model);

    // An L1 crosscoder, as reference 003 and Anthropic's crosscoders.
    let arch = Architecture::Standard;
    let mut train_config = training(&arch, 24, 1000, 2e-3);
    train_config.sparsity_coefficient = 2.0;
    let fine_tune = TrainConfig {
        steps: 400,
        lr: 7e-4,
        lr_warmup_steps: 20,
        lr_decay_start: Some(320),
        sparsity_warmup_steps: 0,
        ..train_config.clone()
    };
    let stagewise = StagewiseConfig {
        dictionary: crosscoder(arch, &[12, 12], 24),
        train: train_config,
        fine_tune,
        dm_parent: DmParent::D,
        rank_by: RankBy::ModelChange,
    };
    let tmp = tempfile::tempdir().unwrap();
    let sources = StageSources {
        base_model_base_data: &mut s,
        base_model_finetune_data: &mut d,
        finetuned_model_base_data: &mut m,
        finetuned_model_finetune_data: &mut dm,
    };
    let outcome = run_stagewise(
        &stagewise,
        sources,
        tmp.path(),
        &options(tmp.path()),
        0,
        &dev(),
    )
    .unwrap();
    let diff = &outcome.diff;
    eprintln!("{}", diff.to_markdown(5));

    // The latents that hold the planted feature: its base-model version at
    // stage S, or its fine-tuned version at stage DM (training may spread it
    // over more than one latent).
    let decoder = |stage: usize| to_host(outcome.runs[stage].trainer().dict.params().w_dec.clone());
    let (s_decoder, dm_decoder) = (decoder(0), decoder(3));
    let cos = |a: &[f32], b: &[f32]| {
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (n(a) * n(b))
    };
    let planted_latents: Vec<usize> = (0..24)
        .filter(|&j| {
            cos(&s_decoder[j * 24..(j + 1) * 24], &only_layer0) > 0.9
                || cos(&dm_decoder[j * 24..(j + 1) * 24], &with_new) > 0.9
        })
        .collect();
    assert!(
        !planted_latents.is_empty(),
        "the crosscoder learnt the planted feature"
    );
    let top = &diff.features[0];
    assert!(
        planted_latents.contains(&top.feature),
        "ranked first: {}",
        diff.to_markdown(3)
    );
    // Every other latent is far behind.
    for f in diff
        .features
        .iter()
        .filter(|f| !planted_latents.contains(&f.feature))
    {
        assert!(
            f.score < 0.2 * top.score,
            "latent {} scores {} against {}",
            f.feature,
            f.score,
            top.score
        );
    }
    // The top latent turned toward the fine-tuned model's new direction:
    // it writes it into layer 1 at DM, and wrote nothing there at S.
    let layer1 = &dm_decoder[top.feature * 24 + 12..top.feature * 24 + 24];
    assert!(
        cos(layer1, &new_direction) > 0.9,
        "DM layer 1 of the top latent: cosine {}",
        cos(layer1, &new_direction)
    );
    assert!(
        top.norm_change[1] > 0.5 && top.block_norms[0][1] < 0.2 * top.block_norms[3][1],
        "{top:?}"
    );
    let latent = top.feature;
    // The stages and the report are on disk.
    for stage in ["S", "D", "M", "DM"] {
        assert!(
            tmp.path()
                .join(format!("stage-{stage}/{stage}/cfg.json"))
                .is_file()
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("diff.json")).unwrap())
            .unwrap();
    assert_eq!(json["features"][0]["feature"], latent);
}

/// An uninterrupted run and a resumed one ended alike: the same weights
/// bit for bit, row scales and (estimated) BatchTopK threshold.
fn assert_same_training_state(whole: &XRun, resumed: &XRun) {
    let (p, q) = (
        whole.trainer().dict.params(),
        resumed.trainer().dict.params(),
    );
    for ((name, x), (_, y)) in p.named().into_iter().zip(q.named()) {
        assert_eq!(to_host(x), to_host(y), "{name} differs after resuming");
    }
    assert_eq!(whole.row_scales(), resumed.row_scales());
    assert!(whole.trainer().threshold_estimate().is_some());
    assert_eq!(
        whole.trainer().threshold_estimate(),
        resumed.trainer().threshold_estimate()
    );
}

/// A run directory written before runs were one-member sweeps
/// (`tests/fixtures/legacy_run_v1`: `run.json`, scalar state as bits; made by
/// kibitzer at 8dd9285, killed at step 25 with its checkpoint at 20) resumes
/// with today's trainer and ends with the weights of a run that was never
/// interrupted.
#[test]
fn a_run_directory_of_the_old_layout_resumes_to_the_same_weights() {
    let arch = Architecture::BatchTopK { k: 2 };
    let mut c = training(&arch, 16, 40, 3e-3);
    c.batch_size = 64;
    c.threshold_start_step = 5;
    c.dead_after_rows = 640;
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy_run_v1");
    let old = tmp.path().join("old");
    std::fs::create_dir_all(old.join("cc")).unwrap();
    for file in [
        "run.json",
        "checkpoint.json",
        "cc/checkpoint-00000020.safetensors",
        "cc/log.jsonl",
    ] {
        std::fs::copy(fixture.join(file), old.join(file)).unwrap();
    }
    let (mut resumed, position) = XRun::resume(&old, &dev()).unwrap();
    assert_eq!((resumed.step(), resumed.rows_seen()), (20, 1280));
    let mut source = Planted::new(layered_data(5)).unwrap();
    source.restore(&position).unwrap();
    let opts = RunOptions {
        log_every: 5,
        ..options(&old)
    };
    resumed.run(&mut source, &opts).unwrap();

    let x = crosscoder(arch, &[16, 16, 16], 16).init(7, &dev()).unwrap();
    let mut whole = XRun::new("cc", XTrainer::new(x, c).unwrap(), &dev()).unwrap();
    let new = tmp.path().join("new");
    whole
        .run(
            &mut Planted::new(layered_data(5)).unwrap(),
            &RunOptions {
                log_every: 5,
                ..options(&new)
            },
        )
        .unwrap();
    assert_same_training_state(&whole, &resumed);
    // The old log's lines past the checkpoint (step 24) were dropped and
    // written again: one line per logged step, as in the new run's log.
    let steps = |dir: &Path| -> Vec<u64> {
        std::fs::read_to_string(dir.join("cc/log.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(steps(&old), steps(&new));
    assert_eq!(steps(&new), vec![4, 9, 14, 19, 24, 29, 34, 39]);
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    // BatchTopK crosscoder with normalisation: the checkpoint must carry the
    // Adam moments, the dead-feature counters, the threshold estimate, the
    // estimated scales and the source position.
    let arch = Architecture::BatchTopK { k: 3 };
    let mut c = training(&arch, 32, 120, 3e-3);
    c.threshold_start_step = 10;
    let config = crosscoder(arch, &[16, 16, 16], 32);
    let make = || {
        let x = config.init(7, &dev()).unwrap();
        XRun::new("cc", XTrainer::new(x, c.clone()).unwrap(), &dev()).unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("whole"), tmp.path().join("killed"));
    let mut whole = make();
    whole
        .run(&mut Planted::new(layered_data(5)).unwrap(), &options(&a))
        .unwrap();

    let opts = RunOptions {
        checkpoint_every: 50,
        stop_after: Some(70),
        ..options(&b)
    };
    let mut killed = make();
    killed
        .run(&mut Planted::new(layered_data(5)).unwrap(), &opts)
        .unwrap();
    assert_eq!(killed.step(), 70);
    let (mut resumed, position) = XRun::resume(&b, &dev()).unwrap();
    assert_eq!(resumed.step(), 50, "resumes from the last checkpoint");
    let mut source = Planted::new(layered_data(5)).unwrap();
    source.restore(&position).unwrap();
    resumed.run(&mut source, &options(&b)).unwrap();

    assert_same_training_state(&whole, &resumed);
    // The log has each logged step once.
    let log = std::fs::read_to_string(b.join("cc/log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![99, 119]);
}

#[test]
fn a_two_model_crosscoder_separates_shared_and_exclusive_features() {
    // Two blocks: the same site of model A and model B. With presence 0.6
    // per block, some features exist in one model only.
    let data = PlantedConfig {
        n_features: 24,
        input_widths: vec![12, 12],
        block_presence: 0.6,
        ..layered_data(8)
    };
    let arch = Architecture::Standard;
    let mut c = training(&arch, 48, 1000, 2e-3);
    c.sparsity_coefficient = 2.0;
    let tmp = tempfile::tempdir().unwrap();
    let mut source = Planted::new(data).unwrap();
    let mut run = XRun::new(
        "diff",
        XTrainer::new(crosscoder(arch, &[12, 12], 48).init(0, &dev()).unwrap(), c).unwrap(),
        &dev(),
    )
    .unwrap();
    run.run(&mut source, &options(tmp.path())).unwrap();
    let Xcoder::Crosscoder(cc) = &run.trainer().dict else {
        panic!("a crosscoder was trained")
    };
    let features = model_diff(cc, 0, 1).unwrap();
    let decoder = to_host(cc.params.w_dec.clone());
    let truth = source.input_directions();
    let (mut only_a, mut only_b, mut shared) = (0, 0, 0);
    for t in truth.chunks(24) {
        let present = |r: std::ops::Range<usize>| t[r].iter().any(|v| *v != 0.0);
        let (in_a, in_b) = (present(0..12), present(12..24));
        // The latent whose decoder matches this feature best.
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let (best, fit) = decoder
            .chunks(24)
            .map(|row| row.iter().zip(t).map(|(a, b)| a * b).sum::<f32>() / (n(row) * n(t)))
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(fit > 0.9, "feature recovered (cosine {fit})");
        let r = features[best].relative_norm;
        match (in_a, in_b) {
            (true, false) => {
                assert!(r < 0.1, "model A only, relative norm {r}");
                only_a += 1;
            }
            (false, true) => {
                assert!(r > 0.9, "model B only, relative norm {r}");
                only_b += 1;
            }
            _ => {
                assert!(r > 0.2 && r < 0.8, "shared, relative norm {r}");
                shared += 1;
            }
        }
    }
    assert!(
        only_a > 0 && only_b > 0 && shared > 0,
        "{only_a} {only_b} {shared}"
    );
    assert!(model_diff(cc, 1, 1).is_err());
}

/// JumpReLU's L0 settings reach a transcoder through kibitzer-sae's step:
/// held to a target of 8 active features (the planted map fires about 2 of
/// 32 per row, so the paper's penalty alone would go lower), it ends near
/// the target; settings it cannot honour are refused, naming the field.
#[test]
fn jumprelu_transcoder_is_held_to_its_target_l0() {
    let arch = Architecture::JumpRelu { bandwidth: 0.1 };
    let tmp = tempfile::tempdir().unwrap();
    let mut source = Planted::new(transcoder_data(0.0)).unwrap();
    let mut c = training(&arch, 64, 800, 3e-3);
    c.sparsity_coefficient = 1.0;
    c.jumprelu_target_l0 = Some(8.0);
    c.jumprelu_l0_to_encoder = true;
    let t = train(
        transcoder(arch.clone(), 24, 16, 64, false),
        c,
        &mut source,
        tmp.path(),
    );
    let l0 = evaluate(&t, &mut source, 4096, 1024, &dev())
        .unwrap()
        .metrics
        .l0;
    assert!((4.0..=16.0).contains(&l0), "L0 {l0}, target 8");

    let refused = |arch: Architecture, edit: fn(&mut TrainConfig)| {
        let mut c = training(&arch, 64, 10, 1e-3);
        edit(&mut c);
        let xcoder = transcoder(arch, 24, 16, 64, false).init(0, &dev()).unwrap();
        XTrainer::new(xcoder, c).unwrap_err().to_string()
    };
    let err = refused(Architecture::TopK { k: 4 }, |c| {
        c.jumprelu_target_l0 = Some(8.0)
    });
    assert!(
        err.contains("jumprelu_target_l0") && err.contains("topk"),
        "{err}"
    );
    let err = refused(Architecture::Standard, |c| c.resample_every = Some(5));
    assert!(
        err.contains("resample_every") && err.contains("transcoder"),
        "{err}"
    );

    // The threshold initialisation from the first batch (the shared
    // trainer's, as for SAEs): the very first step already fires about
    // `jumprelu_init_l0` features per row, against ~half of d_sae from the
    // 0.001 thresholds of a fresh dictionary.
    let mut first_step_l0 = |init_l0: Option<f64>| {
        let mut c = training(&arch, 64, 1, 1e-3);
        c.jumprelu_init_l0 = init_l0;
        let xcoder = transcoder(arch.clone(), 24, 16, 64, false)
            .init(0, &dev())
            .unwrap();
        let mut trainer = XTrainer::new(xcoder, c).unwrap();
        let mut rows = Vec::new();
        let n = source.next_batch(512, &mut rows).unwrap();
        let width = 24 + 16;
        trainer
            .step(kibitzer_sae::ops::from_host(rows, n, width, &dev()))
            .read()
            .l0
    };
    let (with, without) = (first_step_l0(Some(8.0)), first_step_l0(None));
    assert!((6.0..=10.0).contains(&with), "L0 {with} at step 0, init 8");
    assert!(without > 16.0, "L0 {without} at step 0 without the init");
}

/// What the shared trainer brought to transcoders and crosscoders:
/// p-annealing (the penalty's exponent lowered during training, the
/// coefficient rescaled at each change) and dead-feature resampling where
/// the target is the input.
#[test]
fn p_annealed_transcoders_and_resampled_crosscoders_train() {
    let arch = Architecture::Standard;
    let tmp = tempfile::tempdir().unwrap();
    let mut source = Planted::new(transcoder_data(0.0)).unwrap();
    let mut c = training(&arch, 64, 1000, 1e-3);
    c.sparsity_coefficient = 1.0;
    c.p_anneal = Some(kibitzer_sae::train::PAnneal {
        p_start: 1.0,
        p_end: 0.5,
        start_fraction: 0.3,
        updates: 5,
    });
    let xcoder = transcoder(arch.clone(), 24, 16, 64, false)
        .init(c.seed, &dev())
        .unwrap();
    let mut run = XRun::new("dict", XTrainer::new(xcoder, c).unwrap(), &dev()).unwrap();
    let last = run
        .run(&mut source, &options(tmp.path()))
        .unwrap()
        .remove(0);
    assert_eq!(last.p, 0.5);
    assert!(last.coefficient != 1.0, "coefficient {}", last.coefficient);
    let t = run.inference_xcoder().unwrap();
    let (truth, d) = source.target_directions();
    let score = mmcs(truth, 32, &to_host(t.decoder_directions()), 64, d).unwrap();
    let eval = evaluate(&t, &mut source, 4096, 1024, &dev()).unwrap();
    assert!(score > 0.9, "MMCS {score}");
    assert!(eval.fvu.concatenated < 0.15, "{:?}", eval.fvu);

    // A crosscoder with too many features for its data: resampling gives
    // the dead ones new directions, and they fire again.
    let dead_at_end = |resample: bool| {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = training(&arch, 256, 600, 2e-3);
        c.sparsity_coefficient = 5.0;
        c.dead_after_rows = 25_600;
        c.resample_every = resample.then_some(100);
        let x = crosscoder(arch.clone(), &[16, 16, 16], 256)
            .init(c.seed, &dev())
            .unwrap();
        let mut run = XRun::new("cc", XTrainer::new(x, c).unwrap(), &dev()).unwrap();
        let last = run
            .run(
                &mut Planted::new(layered_data(2)).unwrap(),
                &options(tmp.path()),
            )
            .unwrap()
            .remove(0);
        assert!(last.fvu < 0.5, "FVU {}", last.fvu);
        last.dead_fraction
    };
    let (with, without) = (dead_at_end(true), dead_at_end(false));
    assert!(without > 0.1, "dead fraction {without} without resampling");
    assert!(
        with < without / 2.0,
        "dead {with} with resampling, {without} without"
    );
}

/// `x` with every feature from `width` on removed from its decoder: what its
/// first `width` features reconstruct alone.
fn prefix_of(x: &Xcoder, width: usize) -> Xcoder {
    let mut prefix = x.clone();
    let p = prefix.params_mut();
    let [d_sae, _] = p.w_dec.dims();
    let keep: Vec<f32> = (0..d_sae).map(|j| (j < width) as u8 as f32).collect();
    let mask = kibitzer_sae::ops::from_host(keep, d_sae, 1, &dev());
    p.w_dec = p.w_dec.clone() * mask;
    prefix
}

#[test]
fn matryoshka_transcoders_and_crosscoders_reconstruct_with_their_first_features() {
    // The same BatchTopK training with and without nested levels: the
    // Matryoshka dictionary's first 8 features must reconstruct on their
    // own (each level's loss trains them to), the plain one's carry no such
    // duty; both recover the planted features with all 64.
    let arch = Architecture::BatchTopK { k: 3 };
    let configs = [
        (
            transcoder(arch.clone(), 24, 16, 64, false),
            transcoder_data(0.0),
        ),
        (crosscoder(arch.clone(), &[16, 16, 16], 64), layered_data(2)),
    ];
    for (config, data) in configs {
        let mut prefix_fvu = Vec::new();
        for widths in [None, Some(vec![8])] {
            let tmp = tempfile::tempdir().unwrap();
            let mut source = Planted::new(data.clone()).unwrap();
            let mut c = training(&arch, 64, 1000, 3e-3);
            c.matryoshka_widths = widths.clone();
            let x = train(config.clone(), c, &mut source, tmp.path());
            let (truth, d) = source.target_directions();
            let score = mmcs(truth, 32, &to_host(x.decoder_directions()), 64, d).unwrap();
            let whole = evaluate(&x, &mut source, 4096, 1024, &dev()).unwrap();
            let prefix = evaluate(&prefix_of(&x, 8), &mut source, 4096, 1024, &dev()).unwrap();
            eprintln!(
                "{} widths {widths:?}: MMCS {score:.3}, FVU {:.3}, first 8 features' FVU {:.3}",
                config.kind().name(),
                whole.fvu.concatenated,
                prefix.fvu.concatenated
            );
            // The nested levels cost some of the planted directions (0.89
            // against 0.96 for the crosscoder, measured): the first features
            // learn broad directions that reconstruct on their own.
            assert!(score > 0.85, "widths {widths:?}: MMCS {score}");
            assert!(whole.fvu.concatenated < 0.15, "{:?}", whole.fvu);
            prefix_fvu.push(prefix.fvu.concatenated);
        }
        let (plain, nested) = (prefix_fvu[0], prefix_fvu[1]);
        assert!(
            nested < plain - 0.1 && nested < 0.9,
            "{}: the first 8 features' FVU is {nested} with nested levels, {plain} without",
            config.kind().name()
        );
    }
}

/// A CLT learns features that write across layers. In the planted rows
/// `[x_0 | x_1 | y_0 | y_1]`, features 0..16 appear only in layer 0's input
/// and write to both layers' outputs; features 16..32 appear only in layer
/// 1's input and write to layer 1's output. Layer 1's output is half made
/// of features its own input never shows (a per-layer transcoder of layer
/// 1 cannot predict that half); the CLT predicts it through layer 0's
/// features, and silencing them costs layer 1's output that half.
#[test]
fn a_clt_predicts_later_layers_through_earlier_features() {
    use kibitzer_xcoder::CltConfig;
    let d = 16;
    let mut planted = Planted::new(PlantedConfig {
        n_features: 32,
        input_widths: vec![d, d],
        output_widths: vec![d, d],
        firing_probability: 0.06,
        block_presence: 1.0,
        noise_std: 0.0,
        dense_input_std: 0.0,
        skip_scale: 0.0,
        seed: 4,
    })
    .unwrap();
    let keep = |dir: &[f32], blocks: &[bool]| -> Vec<f32> {
        let mut v: Vec<f32> = dir
            .chunks(d)
            .zip(blocks)
            .flat_map(|(c, &on)| c.iter().map(move |x| if on { *x } else { 0.0 }))
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    };
    for j in 0..32 {
        let early = j < 16;
        let input = keep(
            &planted.input_directions()[j * 2 * d..][..2 * d],
            &[early, !early],
        );
        let output = keep(
            &planted.output_directions()[j * 2 * d..][..2 * d],
            &[early, true],
        );
        planted.set_direction(j, false, &input).unwrap();
        planted.set_direction(j, true, &output).unwrap();
    }
    let arch = Architecture::BatchTopK { k: 2 };
    let config = CltConfig {
        architecture: arch.clone(),
        n_layers: 2,
        d_model: d,
        d_transcoder: 24,
        input_hook: "hook_resid_mid".into(),
        output_hook: "hook_mlp_out".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut training = training(&arch, 48, 1500, 3e-3);
    training.threshold_start_step = 200;
    let Xcoder::Clt(clt) = train(
        XcoderConfig::Clt(config),
        training,
        &mut planted.clone(),
        dir.path(),
    ) else {
        panic!("a CLT");
    };
    let mut rows = Vec::new();
    planted.generate_rows(1 << 40, 4096, &mut rows);
    let rows = kibitzer_sae::ops::from_host(rows, 4096, 4 * d, &dev());
    let (x, y) = (
        rows.clone().narrow(1, 0, 2 * d),
        rows.narrow(1, 2 * d, 2 * d),
    );
    let fvu = |y_hat: burn::tensor::Tensor<2>, layer: usize| -> f64 {
        let (t, p) = (
            to_host(y.clone().narrow(1, layer * d, d)),
            to_host(y_hat.narrow(1, layer * d, d)),
        );
        let mean: Vec<f64> = (0..d)
            .map(|i| t.iter().skip(i).step_by(d).map(|&v| v as f64).sum::<f64>() / 4096.0)
            .collect();
        let err: f64 = t
            .iter()
            .zip(&p)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let var: f64 = t
            .iter()
            .enumerate()
            .map(|(i, &a)| (a as f64 - mean[i % d]).powi(2))
            .sum();
        err / var
    };
    let forward = clt.forward(x.clone());
    let (fvu_0, fvu_1) = (
        fvu(forward.reconstruction.clone(), 0),
        fvu(forward.reconstruction, 1),
    );
    // Layer 1's output without layer 0's features.
    let features = forward.features;
    let silenced = burn::tensor::Tensor::cat(
        vec![
            features.clone().narrow(1, 0, 24).zeros_like(),
            features.narrow(1, 24, 24),
        ],
        1,
    );
    let fvu_1_silenced = fvu(clt.decode(silenced), 1);
    eprintln!(
        "FVU layer 0 {fvu_0:.4}, layer 1 {fvu_1:.4}, layer 1 without layer 0 features {fvu_1_silenced:.4}"
    );
    assert!(
        fvu_0 < 0.1 && fvu_1 < 0.1,
        "FVU per layer {fvu_0:.3}, {fvu_1:.3}"
    );
    assert!(
        fvu_1_silenced > 0.35,
        "layer 1's output without layer 0's features: FVU {fvu_1_silenced:.3}"
    );
}

/// Transcoders of different architectures and sizes trained as one sweep
/// (every batch read once, every member stepped on it) end with exactly
/// the weights each gets when trained alone on the same rows: the shared
/// pass changes nothing but the reading.
#[test]
fn transcoders_trained_as_one_sweep_equal_each_trained_alone() {
    use kibitzer_sae::train::{Sweep, SweepMember};
    let members = || {
        [
            (Architecture::TopK { k: 5 }, 64, 3e-3, None),
            (Architecture::Standard, 48, 1e-3, Some(1.0)),
            (Architecture::Gated, 32, 3e-3, Some(1.0)),
            (
                Architecture::JumpRelu { bandwidth: 0.1 },
                64,
                3e-3,
                Some(0.3),
            ),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (arch, d_sae, lr, coefficient))| {
            let mut c = training(&arch, d_sae, 60, lr);
            c.batch_size = 128;
            c.seed = 10 + i as u64;
            if let Some(coefficient) = coefficient {
                c.sparsity_coefficient = coefficient;
            }
            let x = transcoder(arch, 24, 16, d_sae, i == 1)
                .init(c.seed, &dev())
                .unwrap();
            SweepMember {
                name: format!("t{i}"),
                trainer: XTrainer::new(x, c).unwrap(),
            }
        })
        .collect::<Vec<_>>()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut together = Sweep::new(members(), &dev()).unwrap();
    // Three threads: the members step side by side on any machine.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    pool.install(|| {
        assert!(together.steps_members_in_parallel());
        together.run(
            &mut Planted::new(transcoder_data(0.3)).unwrap(),
            &options(&tmp.path().join("together")),
        )
    })
    .unwrap();
    for (i, member) in members().into_iter().enumerate() {
        let mut alone = Sweep::new(vec![member], &dev()).unwrap();
        pool.install(|| {
            alone.run(
                &mut Planted::new(transcoder_data(0.3)).unwrap(),
                &options(&tmp.path().join(format!("alone{i}"))),
            )
        })
        .unwrap();
        let (p, q) = (
            together.members[i].trainer.dict.params(),
            alone.members[0].trainer.dict.params(),
        );
        assert_eq!(p.named().len(), q.named().len());
        for ((name, x), (_, y)) in p.named().into_iter().zip(q.named()) {
            assert_eq!(to_host(x), to_host(y), "member {i}: {name} differs");
        }
    }
    assert_eq!(together.step, 60);
    assert!(together.members.iter().all(|m| m.trainer.finished()));
}
