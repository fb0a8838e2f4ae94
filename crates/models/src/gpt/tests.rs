use super::train::{GptTrainConfig, GptTrainer, TokenDataset, evaluate};
use super::*;
use crate::params::Parameterized;
use crate::transformer::ActFn;
use kibitzer_hooks::{BlockHook, Hook, SharedDictionary, exact_dictionary};
use kibitzer_sae::ops::to_host;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

fn dev() -> Device {
    Device::flex()
}

fn host<const N: usize>(t: Tensor<N>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, f32::max)
}

fn tiny(positional: Positional, act: ActFn, final_ln: bool, seed: u64) -> Gpt {
    let config = GptConfig {
        positional_embedding_type: positional,
        act_fn: act,
        final_ln,
        seed: Some(seed),
        d_head: 5,
        ..GptConfig::new(2, 12, 3, 20, 9, 8)
    };
    // Random biases and norms too, so that no term hides behind a zero.
    let model = Gpt::new(config, &dev()).unwrap();
    let mut init = crate::transformer::Init::new(seed + 100, &dev());
    model.map_params(|name, t| {
        let [r, c] = t.dims();
        if name.ends_with(".w") {
            init.normal(r, c, 0.3).add_scalar(1.0)
        } else if name.contains(".b") {
            init.normal(r, c, 0.3)
        } else {
            t
        }
    })
}

fn batch(model: &Gpt) -> Tensor<2, Int> {
    model
        .tokens(&[
            vec![1, 2, 3, 4, 5, 6, 7, 8],
            vec![8, 0, 3, 3, 1, 2, 0, 0],
            vec![4, 4, 4, 4, 5, 5, 5, 5],
        ])
        .unwrap()
}

/// The forward pass written out element by element in f64, from the
/// weights in TransformerLens layout: an independent check of the math.
#[allow(clippy::needless_range_loop)]
fn naive_logits(model: &Gpt, tokens: &[Vec<u32>]) -> Vec<f32> {
    let c = model.config().clone();
    let sd: std::collections::HashMap<String, (Vec<usize>, Vec<f64>)> = model
        .transformer_lens_state_dict()
        .into_iter()
        .map(|t| {
            (
                t.name,
                (t.shape, t.data.into_iter().map(f64::from).collect()),
            )
        })
        .collect();
    let w = |name: &str| &sd[name].1;
    let (d, h, dh, m) = (c.d_model, c.n_heads, c.d_head, c.d_mlp);
    let ln = |x: &[f64], wn: &str, bn: &str| -> Vec<f64> {
        let mean = x.iter().sum::<f64>() / d as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        let s = (var + c.eps).sqrt();
        (0..d)
            .map(|i| (x[i] - mean) / s * w(wn)[i] + w(bn)[i])
            .collect()
    };
    let act = |v: f64| match c.act_fn {
        ActFn::Relu => v.max(0.0),
        ActFn::Gelu => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
        ActFn::GeluNew => {
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        }
    };
    let mut out = Vec::new();
    for seq in tokens {
        let p = seq.len();
        let mut x: Vec<Vec<f64>> = (0..p)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        w("embed.W_E")[seq[i] as usize * d + j] + w("pos_embed.W_pos")[i * d + j]
                    })
                    .collect()
            })
            .collect();
        for l in 0..c.n_layers {
            let pre = |s: &str| format!("blocks.{l}.{s}");
            let xn: Vec<Vec<f64>> = x
                .iter()
                .map(|r| ln(r, &pre("ln1.w"), &pre("ln1.b")))
                .collect();
            let proj = |wn: &str, bn: &str, i: usize, hh: usize, e: usize| -> f64 {
                w(bn)[hh * dh + e]
                    + (0..d)
                        .map(|k| xn[i][k] * w(wn)[(hh * d + k) * dh + e])
                        .sum::<f64>()
            };
            let mut attn = vec![vec![w(&pre("attn.b_O")).clone(); 1][0].clone(); p];
            for hh in 0..h {
                for qi in 0..p {
                    let scores: Vec<f64> = (0..=qi)
                        .map(|ki| {
                            (0..dh)
                                .map(|e| {
                                    proj(&pre("attn.W_Q"), &pre("attn.b_Q"), qi, hh, e)
                                        * proj(&pre("attn.W_K"), &pre("attn.b_K"), ki, hh, e)
                                })
                                .sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let mx = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - mx).exp()).sum();
                    for e in 0..dh {
                        let ze: f64 = (0..=qi)
                            .map(|ki| {
                                (scores[ki] - mx).exp() / z
                                    * proj(&pre("attn.W_V"), &pre("attn.b_V"), ki, hh, e)
                            })
                            .sum();
                        for j in 0..d {
                            attn[qi][j] += ze * w(&pre("attn.W_O"))[(hh * dh + e) * d + j];
                        }
                    }
                }
            }
            for i in 0..p {
                for j in 0..d {
                    x[i][j] += attn[i][j];
                }
                let xn = ln(&x[i], &pre("ln2.w"), &pre("ln2.b"));
                let hidden: Vec<f64> = (0..m)
                    .map(|k| {
                        act(w(&pre("mlp.b_in"))[k]
                            + (0..d)
                                .map(|j| xn[j] * w(&pre("mlp.W_in"))[j * m + k])
                                .sum::<f64>())
                    })
                    .collect();
                for j in 0..d {
                    x[i][j] += w(&pre("mlp.b_out"))[j]
                        + (0..m)
                            .map(|k| hidden[k] * w(&pre("mlp.W_out"))[k * d + j])
                            .sum::<f64>();
                }
            }
        }
        let v = c.vocab_out();
        for row in &x {
            let r = if c.final_ln {
                ln(row, "ln_final.w", "ln_final.b")
            } else {
                row.clone()
            };
            for t in 0..v {
                out.push(
                    (w("unembed.b_U")[t]
                        + (0..d)
                            .map(|j| r[j] * w("unembed.W_U")[j * v + t])
                            .sum::<f64>()) as f32,
                );
            }
        }
    }
    out
}

/// Abramowitz-Stegun 7.1.26 is too coarse here; use the series/continued
/// fraction split for a double-precision erf.
fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series.
        let mut sum = x;
        let mut term = x;
        for n in 1..60 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // Continued fraction for erfc.
        let t = x.abs();
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (t + f);
        }
        let erfc = (-t * t).exp() / std::f64::consts::PI.sqrt() / (t + f);
        (1.0 - erfc) * x.signum()
    }
}

#[test]
fn forward_matches_a_naive_reference_for_every_variant() {
    let seqs = vec![vec![1, 2, 3, 4, 5, 6], vec![8, 0, 3, 3, 1, 2]];
    for (positional, act, final_ln) in [
        (Positional::Learned, ActFn::Gelu, true),
        (Positional::Sinusoidal, ActFn::Relu, false),
        (Positional::Learned, ActFn::GeluNew, false),
    ] {
        let model = tiny(positional, act, final_ln, 3);
        let logits = host(model.forward(&model.tokens(&seqs).unwrap()).unwrap());
        let reference = naive_logits(&model, &seqs);
        let diff = max_diff(&logits, &reference);
        assert!(
            diff < 1e-4,
            "{positional:?} {act:?} final_ln {final_ln}: max diff {diff}"
        );
    }
}

#[test]
fn sinusoidal_positions_are_the_vaswani_table_and_not_trained() {
    let model = tiny(Positional::Sinusoidal, ActFn::Relu, false, 1);
    assert!(
        !model
            .named_params()
            .iter()
            .any(|(n, _)| n == "pos_embed.W_pos")
    );
    let table = sinusoidal_table(8, 12);
    assert_eq!(host(model.w_pos.clone()), table);
    // p = 3, i = 1: sin(3 / 10000^(2/12)).
    assert!((table[3 * 12 + 2] as f64 - (3.0 / 10000f64.powf(2.0 / 12.0)).sin()).abs() < 1e-6);
    assert_eq!(table[1], 1.0, "cos(0) at position 0");
}

#[test]
fn cached_activations_equal_the_plain_forward_pass() {
    let model = tiny(Positional::Learned, ActFn::Gelu, true, 5);
    let input = batch(&model);
    let plain = host(model.forward(&input).unwrap());
    let sites = model.sites();
    assert_eq!(sites.len(), 2 + 2 * 18 + 4);
    // Caching every site but the per-head results and the attention scores
    // and pattern changes nothing, bit for bit.
    let unfused = |s: &HookSite| {
        matches!(
            s,
            HookSite::Block {
                hook: BlockHook::AttnResult | BlockHook::AttnScores | BlockHook::AttnPattern,
                ..
            }
        )
    };
    let fused_sites: Vec<HookSite> = sites.iter().copied().filter(|s| !unfused(s)).collect();
    let (logits, cache) = model.run_with_cache(&input, &fused_sites).unwrap();
    assert_eq!(host(logits), plain, "caching must not change the logits");
    assert_eq!(cache.len(), fused_sites.len());
    assert_eq!(
        host(cache.tensor::<3>(HookSite::UnembedOut).unwrap()),
        plain
    );
    // Asking for the scores or the pattern runs attention as separate
    // operations (the fused kernel never builds them): equal up to rounding.
    let with_pattern: Vec<HookSite> = sites
        .iter()
        .copied()
        .filter(|s| {
            !matches!(
                s,
                HookSite::Block {
                    hook: BlockHook::AttnResult,
                    ..
                }
            )
        })
        .collect();
    let (logits, _) = model.run_with_cache(&input, &with_pattern).unwrap();
    assert!(max_diff(&host(logits), &plain) < 1e-5);
    // Asking for per-head results sums the heads separately (as
    // TransformerLens's use_attn_result does): equal up to rounding.
    let (logits, cache) = model.run_with_cache(&input, &sites).unwrap();
    assert!(max_diff(&host(logits), &plain) < 1e-5);
    assert_eq!(cache.len(), sites.len());
    // The cached final residual, through the final LayerNorm and unembedding, gives the logits.
    let last: Tensor<3> = cache.tensor(HookSite::resid_post(1)).unwrap();
    let (w, b) = model.ln_final.clone().unwrap();
    let mut hooks = Hooks::new();
    let sites2 = (
        HookSite::LnFinal(LnHook::Scale),
        HookSite::LnFinal(LnHook::Normalized),
    );
    let normalized = layer_norm(last, &w, &b, 1e-5, &mut hooks, sites2)
        .unwrap()
        .unwrap();
    let logits = crate::transformer::linear3(normalized, &model.w_u, &model.b_u);
    assert!(max_diff(&host(logits), &plain) < 1e-5);
    // Per-head results sum (plus b_O) to the attention output.
    let result: Tensor<4> = cache
        .tensor(HookSite::block(1, BlockHook::AttnResult))
        .unwrap();
    let [bb, p, _, d] = result.dims();
    let summed =
        result.sum_dim(2).reshape([bb, p, d]) + model.blocks[1].b_o.clone().reshape([1, 1, d]);
    assert!(
        max_diff(
            &host(summed),
            &host(cache.tensor::<3>(HookSite::attn_out(1)).unwrap())
        ) < 1e-5
    );
    // Patterns are causal distributions.
    let pattern = host(cache.tensor::<4>(HookSite::attn_pattern(0)).unwrap());
    for (row, chunk) in pattern.chunks(8).enumerate() {
        let q = row % 8;
        assert!((chunk.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(
            chunk[q + 1..].iter().all(|v| *v == 0.0),
            "row {row} attends ahead"
        );
    }
    // Residual bookkeeping: resid_mid = resid_pre + attn_out.
    let pre = host(cache.tensor::<3>(HookSite::resid_pre(0)).unwrap());
    let attn = host(cache.tensor::<3>(HookSite::attn_out(0)).unwrap());
    let mid = host(cache.tensor::<3>(HookSite::resid_mid(0)).unwrap());
    let sum: Vec<f32> = pre.iter().zip(&attn).map(|(a, b)| a + b).collect();
    assert!(max_diff(&sum, &mid) < 1e-6);
}

#[test]
fn zero_ablation_changes_logits_and_an_exact_splice_does_not() {
    let model = tiny(Positional::Learned, ActFn::Gelu, true, 6);
    let input = batch(&model);
    let clean = host(model.forward(&input).unwrap());
    for site in [
        HookSite::resid_pre(0),
        HookSite::attn_out(0),
        HookSite::mlp_out(1),
        HookSite::resid_post(1),
        HookSite::attn_z(1),
    ] {
        let mut hooks = Hooks::new().with(site, Hook::zero());
        let ablated = host(model.run_with_hooks(&input, &mut hooks).unwrap());
        assert!(
            max_diff(&clean, &ablated) > 1e-3,
            "zero-ablating {site} changed nothing"
        );
        let width = if site.has_heads() { 15 } else { 12 };
        let exact: SharedDictionary = Arc::new(exact_dictionary(width, &dev()));
        let mut hooks = Hooks::new().with(site, Hook::splice(exact));
        let spliced = host(model.run_with_hooks(&input, &mut hooks).unwrap());
        let diff = max_diff(&clean, &spliced);
        assert!(
            diff < 1e-5,
            "splicing an exact dictionary at {site} moved the logits by {diff}"
        );
    }
    // Ablating one head's result changes the output less than all heads.
    let site = HookSite::block(0, BlockHook::AttnResult);
    let one = host(
        model
            .run_with_hooks(
                &input,
                &mut Hooks::new().with(site, Hook::zero().on_heads([1])),
            )
            .unwrap(),
    );
    let all = host(
        model
            .run_with_hooks(&input, &mut Hooks::new().with(site, Hook::zero()))
            .unwrap(),
    );
    let attn_out = host(
        model
            .run_with_hooks(
                &input,
                &mut Hooks::new().with(HookSite::attn_out(0), Hook::scale(0.0)),
            )
            .unwrap(),
    );
    assert!(max_diff(&clean, &one) > 1e-4);
    assert!(max_diff(&one, &all) > 1e-4);
    // Zeroing every head's result leaves only b_O: not the same as zeroing attn_out.
    assert!(max_diff(&all, &attn_out) > 1e-5);
}

#[test]
fn bad_tokens_and_lengths_are_errors() {
    let model = tiny(Positional::Learned, ActFn::Gelu, true, 7);
    assert!(
        model
            .tokens(&[vec![1, 9]])
            .unwrap_err()
            .to_string()
            .contains("token 9 is outside the vocabulary")
    );
    assert!(
        model
            .tokens(&[vec![1; 9]])
            .unwrap_err()
            .to_string()
            .contains("n_ctx = 8")
    );
    assert!(model.tokens(&[vec![1, 2], vec![1]]).is_err());
    let raw = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 20], [1, 2]), &dev());
    let err = model.forward(&raw).unwrap_err().to_string();
    assert!(err.contains("outside the vocabulary 0..9"), "{err}");
    let err = model
        .site("blocks.2.hook_resid_post")
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks.{0..=1}.hook_resid_post"), "{err}");
}

#[test]
fn transformer_lens_files_round_trip_and_bad_ones_are_named() {
    let model = tiny(Positional::Learned, ActFn::Gelu, true, 8);
    let dir = tempfile::tempdir().unwrap();
    model.save_transformer_lens(dir.path()).unwrap();
    let back = Gpt::load_dir(dir.path(), &dev()).unwrap();
    for ((n, a), (_, b)) in model.named_params().into_iter().zip(back.named_params()) {
        assert_eq!(to_host(a), to_host(b), "{n}");
    }
    let sd = model.transformer_lens_state_dict();
    let wq = sd.iter().find(|t| t.name == "blocks.1.attn.W_Q").unwrap();
    assert_eq!(wq.shape, vec![3, 12, 5]);
    assert_eq!(
        sd.iter()
            .find(|t| t.name == "blocks.0.attn.W_O")
            .unwrap()
            .shape,
        vec![3, 5, 12]
    );
    assert_eq!(
        sd.iter()
            .find(|t| t.name == "blocks.0.attn.b_V")
            .unwrap()
            .shape,
        vec![3, 5]
    );
    assert_eq!(
        sd.iter().find(|t| t.name == "unembed.b_U").unwrap().shape,
        vec![9]
    );

    let write = |tensors: Vec<kibitzer_sae::io::HostTensor>| {
        let path = dir.path().join("edited.safetensors");
        crate::params::write_tensors(&path, &tensors, &serde_json::json!({})).unwrap();
        path
    };
    let config = model.config().clone();
    // A missing tensor.
    let path = write(
        sd.iter()
            .filter(|t| t.name != "blocks.1.mlp.b_in")
            .cloned()
            .collect(),
    );
    let err = Gpt::load_transformer_lens(config.clone(), &path, &dev())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing tensor blocks.1.mlp.b_in") && err.contains("[20]"),
        "{err}"
    );
    // A misshapen one.
    let mut bad = sd.clone();
    let t = bad
        .iter_mut()
        .find(|t| t.name == "blocks.0.attn.W_K")
        .unwrap();
    t.shape = vec![3, 5, 12];
    let err = Gpt::load_transformer_lens(config.clone(), write(bad), &dev())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blocks.0.attn.W_K has shape [3, 5, 12], expected [3, 12, 5]"),
        "{err}"
    );
    // A file with more layers than the config.
    let one_layer = GptConfig {
        n_layers: 1,
        ..config.clone()
    };
    let err = Gpt::load_transformer_lens(one_layer, dir.path().join("model.safetensors"), &dev())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unexpected tensor blocks.1.") && err.contains("n_layers = 1"),
        "{err}"
    );
    // A config with more layers than the file.
    let three = GptConfig {
        n_layers: 3,
        ..config
    };
    let err = Gpt::load_transformer_lens(three, dir.path().join("model.safetensors"), &dev())
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing tensor blocks.2.ln1.w"), "{err}");
    // A sinusoidal model keeps its table through a file.
    let sinus = tiny(Positional::Sinusoidal, ActFn::Relu, false, 9);
    sinus
        .save_transformer_lens(dir.path().join("sinus"))
        .unwrap();
    let back = Gpt::load_dir(dir.path().join("sinus"), &dev()).unwrap();
    let input = batch(&sinus);
    assert_eq!(
        host(back.forward(&input).unwrap()),
        host(sinus.forward(&input).unwrap())
    );
}

fn counting_data(n: usize) -> Vec<Vec<u32>> {
    // Sequences that count up by a fixed step mod 8 (tokens 1..=8): each
    // next token is determined by the previous two.
    (0..n)
        .map(|i| {
            let (start, step) = (i % 8, 1 + (i / 8) % 3);
            (0..8)
                .map(|k| 1 + ((start + k * step) % 8) as u32)
                .collect()
        })
        .collect()
}

#[test]
fn training_lowers_the_loss_and_resumes_bit_identically() {
    let config = GptConfig {
        seed: Some(1),
        ..GptConfig::new(1, 16, 2, 32, 9, 8)
    };
    let data = TokenDataset::new(&counting_data(48), Some(0), 9, 8).unwrap();
    let train = GptTrainConfig {
        steps: 60,
        batch_size: 16,
        lr: 1e-2,
        warmup_steps: 5,
        eval_every: 0,
        checkpoint_every: 0,
        log_every: 10,
        ..GptTrainConfig::default()
    };
    let mut trainer =
        GptTrainer::new(Gpt::new(config.clone(), &dev()).unwrap(), train.clone()).unwrap();
    let before = trainer.eval_loss(&data).unwrap();
    assert!(
        (before - (9f64).ln()).abs() < 0.5,
        "an untrained model is near uniform: {before}"
    );
    let history = trainer.train(&data, Some(&data), None, false).unwrap();
    let after = history.last().unwrap().eval_loss.unwrap();
    assert!(after < 0.5 * before, "loss {before} -> {after}");
    assert_eq!(history.last().unwrap().step, 60);

    // Interrupted at step 30 and resumed: the same weights at the end, bit for bit.
    let short = GptTrainConfig {
        steps: 20,
        ..train.clone()
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt.safetensors");
    let mut a = GptTrainer::new(
        Gpt::new(config.clone(), &dev()).unwrap(),
        GptTrainConfig {
            steps: 40,
            ..train.clone()
        },
    )
    .unwrap();
    a.train(&data, None, None, false).unwrap();
    let mut b = GptTrainer::new(
        Gpt::new(config, &dev()).unwrap(),
        GptTrainConfig { steps: 40, ..short },
    )
    .unwrap();
    for _ in 0..20 {
        b.train_step(&data).unwrap();
    }
    b.save_checkpoint(&ckpt).unwrap();
    let mut resumed = GptTrainer::resume(&ckpt, &dev(), None).unwrap();
    assert_eq!(resumed.step_count(), 20);
    resumed.train(&data, None, Some(&ckpt), false).unwrap();
    for ((n, x), (_, y)) in a
        .model
        .named_params()
        .into_iter()
        .zip(resumed.model.named_params())
    {
        assert_eq!(to_host(x), to_host(y), "{n} differs after resuming");
    }
    // The final checkpoint was written at step 40 and no temporary file is left.
    assert_eq!(
        GptTrainer::resume(&ckpt, &dev(), None)
            .unwrap()
            .step_count(),
        40
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn the_loss_can_score_only_the_answer() {
    // Sequences [a, b, noise x 4, a, b]: the noise cannot be predicted, the
    // answer (the last two tokens) copies the first two. Scored from
    // position 6, a culture-shaped model (sinusoidal positions, no final
    // LayerNorm, ReLU) learns the answer; the eval loss is the answer's.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let seqs: Vec<Vec<u32>> = (0..256)
        .map(|_| {
            let (a, b) = (rng.random_range(1..9u32), rng.random_range(1..9u32));
            let mut s = vec![a, b];
            s.extend((0..4).map(|_| rng.random_range(1..9u32)));
            s.extend([a, b]);
            s
        })
        .collect();
    let data = TokenDataset::new(&seqs, None, 9, 8)
        .unwrap()
        .with_loss_from(6)
        .unwrap();
    assert_eq!(data.scored_targets(), &[6..8]);
    let config = GptConfig {
        seed: Some(2),
        positional_embedding_type: Positional::Sinusoidal,
        final_ln: false,
        act_fn: ActFn::Relu,
        ..GptConfig::new(2, 32, 4, 64, 9, 8)
    };
    let model = Gpt::new(config, &dev()).unwrap();
    let tokens = model.tokens(&seqs[..16]).unwrap();
    let logits = model.forward(&tokens).unwrap();
    let expected = kibitzer_hooks::next_token_cross_entropy_from(logits, tokens, None, 6).unwrap();
    let small = TokenDataset::new(&seqs[..16], None, 9, 8)
        .unwrap()
        .with_loss_from(6)
        .unwrap();
    let got = evaluate(&model, &small, 5).unwrap();
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    let train = GptTrainConfig {
        steps: 200,
        batch_size: 32,
        lr: 3e-3,
        warmup_steps: 10,
        eval_every: 0,
        checkpoint_every: 0,
        ..GptTrainConfig::default()
    };
    let mut trainer = GptTrainer::new(model, train).unwrap();
    let history = trainer.train(&data, Some(&data), None, false).unwrap();
    let after = history.last().unwrap().eval_loss.unwrap();
    // The noise alone would keep a whole-sequence loss near ln 8 = 2.08.
    assert!(after < 0.5, "answer loss after training: {after}");
    assert!(
        TokenDataset::new(&seqs, None, 9, 8)
            .unwrap()
            .with_loss_from(8)
            .is_err()
    );
    assert!(
        TokenDataset::new(&seqs, None, 9, 8)
            .unwrap()
            .with_loss_from(0)
            .is_err()
    );
}

#[test]
fn the_loss_can_score_several_ranges_of_targets() {
    // Scored on targets 2..4 and 6..8, the loss is the mean over those four
    // targets, which the one-sided losses give as
    // (6 CE[2..] - 4 CE[4..] + 2 CE[6..]) / 4.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let seqs: Vec<Vec<u32>> = (0..12)
        .map(|_| (0..8).map(|_| rng.random_range(0..9u32)).collect())
        .collect();
    let config = GptConfig {
        seed: Some(4),
        ..GptConfig::new(2, 32, 4, 64, 9, 8)
    };
    let model = Gpt::new(config, &dev()).unwrap();
    let tokens = model.tokens(&seqs).unwrap();
    let logits = model.forward(&tokens).unwrap();
    let ce = |from| {
        kibitzer_hooks::next_token_cross_entropy_from(logits.clone(), tokens.clone(), None, from)
            .unwrap()
    };
    let expected = (6.0 * ce(2) - 4.0 * ce(4) + 2.0 * ce(6)) / 4.0;
    let data = TokenDataset::new(&seqs, None, 9, 8)
        .unwrap()
        .with_scored_targets(vec![2..4, 6..8])
        .unwrap();
    let got = evaluate(&model, &data, 5).unwrap();
    assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    let plain = || TokenDataset::new(&seqs, None, 9, 8).unwrap();
    for bad in [
        vec![],
        vec![0..2],
        vec![2..4, 3..5],
        vec![4..4],
        vec![6..9],
        vec![5..6, 2..3],
    ] {
        let err = plain().with_scored_targets(bad.clone()).unwrap_err();
        assert!(err.to_string().contains("scored targets"), "{bad:?}: {err}");
    }
    // Padding everywhere the loss looks is refused.
    let padded = TokenDataset::new(&[vec![1, 2, 3, 4], vec![1, 2]], Some(0), 9, 8).unwrap();
    assert!(padded.clone().with_scored_targets(vec![1..2]).is_ok());
    assert!(padded.with_scored_targets(vec![2..4]).is_err());
}

#[test]
fn datasets_and_configs_reject_bad_input() {
    assert!(
        TokenDataset::new(&[vec![1, 2, 9]], Some(0), 9, 8)
            .unwrap_err()
            .to_string()
            .contains("token 9")
    );
    assert!(
        TokenDataset::new(&[vec![1]], Some(0), 9, 8)
            .unwrap_err()
            .to_string()
            .contains("at least 2")
    );
    assert!(
        TokenDataset::new(&[vec![1, 0, 2]], Some(0), 9, 8)
            .unwrap_err()
            .to_string()
            .contains("pad token")
    );
    assert!(
        TokenDataset::new(&[vec![1; 9]], Some(0), 9, 8)
            .unwrap_err()
            .to_string()
            .contains("n_ctx = 8")
    );
    assert!(TokenDataset::new(&[vec![1, 2], vec![1, 2, 3]], None, 9, 8).is_err());
    assert!(
        GptConfig {
            d_mlp: 0,
            ..GptConfig::new(1, 8, 2, 8, 5, 4)
        }
        .validate()
        .unwrap_err()
        .to_string()
        .contains("d_mlp")
    );
    let json = r#"{"n_layers":1,"d_model":8,"n_heads":2,"d_head":4,"d_mlp":8,"d_vocab":5,"n_ctx":4,"act_fn":"gelu","positional_embedding_type":"rotary"}"#;
    let err = serde_json::from_str::<GptConfig>(json)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rotary") && err.contains("standard"), "{err}");
    assert!(
        GptTrainConfig {
            lr: 0.0,
            ..GptTrainConfig::default()
        }
        .validate()
        .is_err()
    );
}

#[test]
fn an_initializer_range_beyond_f32_is_an_error_not_a_panic() {
    let json = r#"{"n_layers":1,"d_model":8,"n_heads":2,"d_head":4,"d_mlp":8,"d_vocab":5,"n_ctx":4,"act_fn":"gelu","initializer_range":1e39}"#;
    let config: GptConfig = serde_json::from_str(json).unwrap();
    let err = Gpt::new(config, &dev()).unwrap_err().to_string();
    assert!(err.contains("initializer_range"), "{err}");
}
