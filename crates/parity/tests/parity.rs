//! Backend parity: the device under test (`KIBITZER_TEST_DEVICE`, wgpu by
//! default) against the CPU, from the same weights and batches.
//!
//! Tolerances are relative to the largest magnitude compared. Forward
//! passes agree to ~1e-5 (different summation orders in the matrix
//! products); a few training steps compound that through Adam's division by
//! the root of the second moment, hence 1e-3 for trained weights.
#![cfg(any(feature = "wgpu", feature = "cuda"))]

use burn::tensor::{Device, Int, Tensor, TensorData};
use kibitzer_games::Game;
use kibitzer_games::othello::Othello;
use kibitzer_hooks::{
    HarvestConfig, Hook, HookSite, HookedModel, Hooks, TokenSequences, harvest, next_token_loss,
};
use kibitzer_models::{
    AlphaZeroConfig, AlphaZeroNet, Gpt, GptConfig, GptTrainConfig, GptTrainer, Parameterized,
    TokenDataset,
};
use kibitzer_parity::{activations, assert_close, assert_within, cpu, device_under_test, host};
use kibitzer_sae::train::{DictTrainer, PAnneal, RunOptions, Sweep, SweepMember, TrainConfig};
use kibitzer_sae::{Architecture, Family, Sae, SaeConfig};
use kibitzer_store::{InMemorySource, Store};
use kibitzer_xcoder::train::XTrainer;
use kibitzer_xcoder::{Block, CltConfig, CrosscoderConfig, TranscoderConfig, XcoderConfig};

/// Forward passes: summation order only.
const FORWARD_TOL: f32 = 1e-4;
/// A few optimiser steps.
const TRAINED_TOL: f32 = 1e-3;

fn rows_of(data: &[f32], cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(data.to_vec(), [data.len() / cols, cols]),
        device,
    )
}

/// The training config of `family` as the CLI builds it, shortened to
/// `steps` steps with every schedule (warm-ups, p-annealing, the JumpReLU
/// threshold start, dead-feature accounting) inside them.
fn sae_training(family: Family, d_sae: usize, steps: usize) -> (Architecture, TrainConfig) {
    let arch = family.architecture(4, 0.05);
    let mut c = TrainConfig::for_architecture(&arch, d_sae, steps);
    c.batch_size = 64;
    c.lr = 3e-3;
    c.lr_warmup_steps = 1;
    c.threshold_start_step = 1;
    c.dead_after_rows = 64;
    c.sparsity_coefficient = if family.uses_k() { 0.0 } else { 0.05 };
    if family == Family::Panneal {
        c.p_anneal = Some(PAnneal {
            p_start: 1.0,
            p_end: 0.5,
            start_fraction: 0.2,
            updates: 2,
        });
    }
    family.apply_training_options(&mut c, d_sae);
    (arch, c)
}

fn sae_weights(sae: &Sae) -> Vec<(String, Vec<f32>)> {
    sae.params
        .named()
        .into_iter()
        .map(|(name, t)| (name.to_string(), host(&t)))
        .collect()
}

#[test]
fn every_sae_architecture_trains_as_on_the_cpu() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let (d_in, d_sae, steps) = (32, 64, 6);
    let data = activations(64 * steps, d_in, 1);
    for family in Family::ALL {
        let (arch, config) = sae_training(family, d_sae, steps);
        let run = |device: &Device| {
            let sae = Sae::init(SaeConfig::new(arch.clone(), d_in, d_sae), 7, device);
            let mut trainer = DictTrainer::new(sae, config.clone()).unwrap();
            let logs: Vec<_> = data
                .chunks(64 * d_in)
                .map(|batch| trainer.step(rows_of(batch, d_in, device)).read())
                .collect();
            (trainer, logs)
        };
        let (on_cpu, cpu_logs) = run(&cpu());
        let (on_gpu, gpu_logs) = run(&gpu);
        let name = family.name();
        for (step, (c, g)) in cpu_logs.iter().zip(&gpu_logs).enumerate() {
            assert_close(
                &format!("{name} step {step}: loss, L0, FVU"),
                &[c.loss.loss as f32, c.l0 as f32, c.fvu as f32],
                &[g.loss.loss as f32, g.l0 as f32, g.fvu as f32],
                TRAINED_TOL,
            );
        }
        for ((tensor, c), (_, g)) in sae_weights(&on_cpu.dict)
            .into_iter()
            .zip(sae_weights(&on_gpu.dict))
        {
            assert_close(&format!("{name} {tensor}"), &c, &g, TRAINED_TOL);
        }
        // BatchTopK's inference threshold is estimated while training.
        for ((tensor, c), (_, g)) in sae_weights(&on_cpu.inference())
            .into_iter()
            .zip(sae_weights(&on_gpu.inference()))
        {
            assert_close(&format!("{name} inference {tensor}"), &c, &g, TRAINED_TOL);
        }
    }
}

#[test]
fn transcoder_clt_and_crosscoder_steps_match_the_cpu() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let (d_in, d_out, steps) = (24, 16, 5);
    let data = activations(64 * steps, d_in + d_out, 2);
    let transcoder = |arch: Architecture| {
        XcoderConfig::Transcoder(TranscoderConfig {
            architecture: arch,
            input_site: "blocks.0.ln2.hook_normalized".into(),
            d_in,
            output_site: "blocks.0.hook_mlp_out".into(),
            d_out,
            d_sae: 48,
            skip: true,
        })
    };
    let configs = [
        ("topk transcoder", transcoder(Architecture::TopK { k: 4 })),
        (
            // 2 layers of width 10: rows [x_0 | x_1 | y_0 | y_1], 40 wide.
            "jumprelu clt",
            XcoderConfig::Clt(CltConfig {
                architecture: Architecture::JumpRelu { bandwidth: 0.05 },
                n_layers: 2,
                d_model: (d_in + d_out) / 4,
                d_transcoder: 24,
                input_hook: "hook_resid_mid".into(),
                output_hook: "hook_mlp_out".into(),
            }),
        ),
        (
            "jumprelu transcoder",
            transcoder(Architecture::JumpRelu { bandwidth: 0.05 }),
        ),
        (
            "crosscoder",
            XcoderConfig::Crosscoder(CrosscoderConfig {
                architecture: Architecture::Standard,
                blocks: vec![
                    Block::new("base:blocks.0.hook_resid_post", d_in),
                    Block::new("chat:blocks.0.hook_resid_post", d_out),
                ],
                d_sae: 48,
            }),
        ),
        (
            "batchtopk crosscoder",
            XcoderConfig::Crosscoder(CrosscoderConfig {
                architecture: Architecture::BatchTopK { k: 4 },
                blocks: vec![
                    Block::new("base:blocks.0.hook_resid_post", d_in),
                    Block::new("chat:blocks.0.hook_resid_post", d_out),
                ],
                d_sae: 48,
            }),
        ),
    ];
    for (name, config) in configs {
        let arch = match &config {
            XcoderConfig::Transcoder(c) => c.architecture.clone(),
            XcoderConfig::Crosscoder(c) => c.architecture.clone(),
            XcoderConfig::Clt(c) => c.architecture.clone(),
        };
        let mut train = TrainConfig::for_architecture(&arch, 48, steps);
        train.batch_size = 64;
        train.lr = 3e-3;
        train.lr_warmup_steps = 1;
        train.threshold_start_step = 1;
        train.sparsity_coefficient = if matches!(
            arch,
            Architecture::TopK { .. } | Architecture::BatchTopK { .. }
        ) {
            0.0
        } else {
            0.05
        };
        let run = |device: &Device| {
            let mut trainer =
                XTrainer::new(config.init(3, device).unwrap(), train.clone()).unwrap();
            let losses: Vec<f32> = data
                .chunks(64 * (d_in + d_out))
                .map(|batch| {
                    trainer
                        .step(rows_of(batch, d_in + d_out, device))
                        .read()
                        .loss
                        .loss as f32
                })
                .collect();
            (trainer, losses)
        };
        let (on_cpu, cpu_losses) = run(&cpu());
        let (on_gpu, gpu_losses) = run(&gpu);
        assert_close(
            &format!("{name} losses"),
            &cpu_losses,
            &gpu_losses,
            TRAINED_TOL,
        );
        let named = |t: &XTrainer| t.dict.params().named();
        for ((tensor, c), (_, g)) in named(&on_cpu).into_iter().zip(named(&on_gpu)) {
            assert_close(
                &format!("{name} {tensor}"),
                &host(&c),
                &host(&g),
                TRAINED_TOL,
            );
        }
    }
}

fn tiny_gpt(device: &Device) -> Gpt {
    let mut config = GptConfig::new(2, 32, 4, 64, 13, 12);
    config.seed = Some(5);
    Gpt::new(config, device).unwrap()
}

fn token_rows(device: &Device) -> Tensor<2, Int> {
    let tokens: Vec<i64> = (0..3 * 12).map(|i| (i * 7 % 13) as i64).collect();
    Tensor::from_data(TensorData::new(tokens, [3, 12]), device)
}

#[test]
fn gpt_forward_with_cache_and_interventions_matches_the_cpu() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let sites = [
        HookSite::resid_post(0),
        HookSite::attn_pattern(1),
        HookSite::mlp_out(1),
    ];
    let run = |device: &Device| {
        let model = tiny_gpt(device);
        let tokens = token_rows(device);
        let (logits, cache) = model.run_with_cache(&tokens, &sites).unwrap();
        let cached: Vec<Vec<f32>> = sites
            .iter()
            .map(|s| cache.get(*s).unwrap().to_host())
            .collect();
        let steer = Tensor::<1>::from_data(
            TensorData::new(
                (0..32).map(|i| (i as f32 * 0.3).sin()).collect::<Vec<_>>(),
                [32],
            ),
            device,
        );
        let mut hooks = Hooks::new()
            .with(HookSite::mlp_out(0), Hook::zero().at_positions([3, 4]))
            .with(HookSite::resid_post(0), Hook::add(steer, 2.0));
        let edited = model.run_with_hooks(&tokens, &mut hooks).unwrap();
        (host(&logits), cached, host(&edited))
    };
    let (c_logits, c_cache, c_edit) = run(&cpu());
    let (g_logits, g_cache, g_edit) = run(&gpu);
    assert_close("GPT logits", &c_logits, &g_logits, FORWARD_TOL);
    for ((site, c), g) in sites.iter().zip(&c_cache).zip(&g_cache) {
        assert_close(&format!("cached {site}"), c, g, FORWARD_TOL);
    }
    assert_close("GPT logits under hooks", &c_edit, &g_edit, FORWARD_TOL);
    assert!(
        kibitzer_parity::max_difference(&c_logits, &c_edit).0 > 1e-3,
        "the interventions changed nothing: the comparison would not see a hook ignored"
    );
}

/// The gradients of the next-token loss through burn's autodiff, then a few
/// AdamW steps. Adam divides each gradient by its own running magnitude, so
/// a coordinate whose gradient is float noise on both devices can move by
/// up to `lr` per step in opposite directions: the weights are compared
/// within that bound (`2 x lr x steps`), the gradients and losses tightly.
#[test]
fn gpt_gradients_and_training_steps_match_the_cpu() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let sequences: Vec<Vec<u32>> = (0..16)
        .map(|s| (0..12).map(|i| ((s * 5 + i * 3) % 13) as u32).collect())
        .collect();
    let data = TokenDataset::new(&sequences, None, 13, 12).unwrap();
    let (lr, steps) = (1e-3, 3);
    let run = |device: &Device| {
        let model = tiny_gpt(device);
        let tokens = model.tokens(&sequences).unwrap();
        let (loss, grads) = kibitzer_models::params::gradients(&model, |m| {
            let logits = m.run_with_hooks(&tokens, &mut Hooks::new())?;
            next_token_loss(logits, tokens.clone(), None)
        })
        .unwrap();
        let grads: Vec<Vec<f32>> = grads.iter().map(host).collect();
        let config = GptTrainConfig {
            steps,
            batch_size: 8,
            lr,
            warmup_steps: 0,
            eval_every: 0,
            checkpoint_every: 0,
            seed: 2,
            ..GptTrainConfig::default()
        };
        let mut trainer = GptTrainer::new(model, config).unwrap();
        let mut losses = vec![loss as f32];
        for _ in 0..steps {
            losses.push(trainer.train_step(&data).unwrap().train_loss as f32);
        }
        let weights: Vec<(String, Vec<f32>)> = trainer
            .model
            .named_params()
            .into_iter()
            .map(|(n, t)| (n, host(&t)))
            .collect();
        (losses, grads, weights)
    };
    let (c_losses, c_grads, c_weights) = run(&cpu());
    let (g_losses, g_grads, g_weights) = run(&gpu);
    assert_close("GPT losses", &c_losses, &g_losses, FORWARD_TOL);
    // Some gradients are zero but for float noise (a key bias cannot change
    // a softmax): every gradient is compared on the scale of the largest.
    let largest = c_grads.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    for (((name, _), c), g) in c_weights.iter().zip(&c_grads).zip(&g_grads) {
        assert_within(
            &format!("GPT gradient of {name}"),
            c,
            g,
            TRAINED_TOL * largest,
        );
    }
    let adam_bound = (2.0 * lr * steps as f64) as f32;
    for ((name, c), (_, g)) in c_weights.iter().zip(&g_weights) {
        assert_within(&format!("trained GPT {name}"), c, g, adam_bound);
    }
}

#[test]
fn alphazero_forward_matches_the_cpu() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    // Positions along one game: the first legal move each time.
    let mut positions = Vec::new();
    let mut p = Othello::new(6).unwrap();
    for _ in 0..10 {
        positions.push(p);
        let Some(&mv) = p.legal_moves().first() else {
            break;
        };
        p.play(mv).unwrap();
    }
    let run = |device: &Device| {
        let config = AlphaZeroConfig {
            width: 32,
            n_blocks: 2,
            seed: 4,
            ..AlphaZeroConfig::new(6)
        };
        let net = AlphaZeroNet::new(config, device).unwrap();
        let out = net.predict(&positions).unwrap();
        (host(&out.log_policy), host(&out.value))
    };
    let (c_policy, c_value) = run(&cpu());
    let (g_policy, g_value) = run(&gpu);
    assert_close("AlphaZero log-policy", &c_policy, &g_policy, FORWARD_TOL);
    assert_close("AlphaZero value", &c_value, &g_value, FORWARD_TOL);
}

#[test]
fn harvesting_into_a_store_matches_the_cpu() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let sequences: Vec<Vec<u32>> = (0..9)
        .map(|s| {
            (0..(6 + s % 5))
                .map(|i| ((s + i * 4) % 13) as u32)
                .collect()
        })
        .collect();
    let site = HookSite::resid_post(1);
    let run = |device: &Device| {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_gpt(device);
        let data = TokenSequences::new(&sequences, 12, Some(0), false, device).unwrap();
        let config = HarvestConfig {
            // A few sequences a pass: several passes, as a real harvest.
            memory_ceiling_bytes: 4 * 12 * 32 * 4 * 40,
            progress: false,
            ..HarvestConfig::new()
        };
        let manifest = harvest(&model, site, data, dir.path(), &config).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut values = Vec::new();
        let mut columns = Vec::new();
        for shard in 0..store.shards().len() {
            let data = store.read_shard_with_columns(shard).unwrap();
            values.extend(data.activations);
            columns.push(format!("{:?}", data.columns));
        }
        (manifest.rows, values, columns)
    };
    let (c_rows, c_values, c_columns) = run(&cpu());
    let (g_rows, g_values, g_columns) = run(&gpu);
    assert_eq!(c_rows, g_rows, "harvested row counts differ");
    assert_eq!(c_columns, g_columns, "example/position columns differ");
    assert_close("harvested activations", &c_values, &g_values, FORWARD_TOL);
}

fn sweep(steps: usize, device: &Device) -> Sweep {
    let members = [
        Family::Standard,
        Family::Topk,
        Family::Batchtopk,
        Family::Jumprelu,
    ]
    .into_iter()
    .map(|family| {
        let (arch, config) = sae_training(family, 32, steps);
        let sae = Sae::init(SaeConfig::new(arch, 16, 32), 11, device);
        SweepMember {
            name: family.name().into(),
            trainer: DictTrainer::new(sae, config).unwrap(),
        }
    })
    .collect();
    Sweep::new(members, device).unwrap()
}

fn sweep_weights(sweep: &Sweep) -> Vec<(String, Vec<f32>)> {
    sweep
        .members
        .iter()
        .flat_map(|m| {
            sae_weights(&m.trainer.dict)
                .into_iter()
                .map(move |(t, v)| (format!("{} {t}", m.name), v))
        })
        .collect()
}

/// A run checkpointed on one device resumes on the other and ends where
/// an uninterrupted CPU run ends (issue 17, item 4), both ways.
#[test]
fn checkpoints_resume_across_devices() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let data = activations(200, 16, 3);
    let steps = 12;
    let options = |dir: &std::path::Path| RunOptions {
        checkpoint_every: 5,
        log_every: 5,
        progress: false,
        stop_after: None,
        out_dir: dir.to_path_buf(),
    };
    let source = |rows: u64| {
        InMemorySource::cycling(data.clone(), 16)
            .unwrap()
            .resumed_at(rows)
    };
    let whole_dir = tempfile::tempdir().unwrap();
    let mut whole = sweep(steps, &cpu());
    whole
        .run(&mut source(0), &options(whole_dir.path()))
        .unwrap();
    let expected = sweep_weights(&whole);

    for (first, then, label) in [
        (cpu(), gpu.clone(), "cpu -> gpu"),
        (gpu.clone(), cpu(), "gpu -> cpu"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut killed = sweep(steps, &first);
        let mut opts = options(dir.path());
        opts.stop_after = Some(7); // between the checkpoints at 5 and 10
        killed.run(&mut source(0), &opts).unwrap();
        drop(killed);
        let (mut resumed, position) = Sweep::resume(dir.path(), &then).unwrap();
        assert_eq!(resumed.step, 5, "{label}: resumed at the wrong step");
        let cursor: u64 = serde_json::from_value(position).unwrap();
        resumed
            .run(&mut source(cursor), &options(dir.path()))
            .unwrap();
        for ((name, e), (_, a)) in expected.iter().zip(sweep_weights(&resumed)) {
            assert_close(&format!("{label}: {name}"), e, &a, TRAINED_TOL);
        }
        // The saved dictionaries load on either device.
        for member in ["standard", "topk"] {
            let saved = dir.path().join(member);
            for device in [cpu(), gpu.clone()] {
                kibitzer_sae::saelens::load(&saved, &device)
                    .unwrap_or_else(|e| panic!("{label}: {} on {device:?}: {e}", saved.display()));
            }
        }
    }
}

/// The TopK selections themselves, around [`DEVICE_TOPK_MAX_K`] where the
/// device path changes (burn's top-k kernel, then a sort).
#[test]
fn topk_selections_match_the_cpu() {
    let Some(gpu) = device_under_test() else {
        return;
    };
    let (rows, cols) = (32, 512);
    let data = activations(rows, cols, 5);
    let limit = kibitzer_sae::ops::DEVICE_TOPK_MAX_K;
    for k in [1, 4, 32, limit, limit + 1, 128, 256] {
        let mask = |device: &Device| {
            host(&kibitzer_sae::ops::row_topk_mask(
                rows_of(&data, cols, device),
                k,
            ))
        };
        let (c, g) = (mask(&cpu()), mask(&gpu));
        assert_eq!(c.iter().sum::<f32>(), (rows * k) as f32);
        assert_close(&format!("row top-{k} mask"), &c, &g, 0.0);
        let batch = |device: &Device| {
            host(&kibitzer_sae::ops::batch_topk_mask(
                rows_of(&data, cols, device),
                k * rows,
            ))
        };
        assert_close(
            &format!("batch top-{k} mask"),
            &batch(&cpu()),
            &batch(&gpu),
            0.0,
        );
    }
}
