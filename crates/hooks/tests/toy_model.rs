//! The hook machinery on a small model written here: embeddings, two
//! residual blocks with a per-head "attention" stand-in and an MLP, and an
//! unembedding. Each test checks an intervention against the same numbers
//! computed by hand.
#![cfg(feature = "flex")]

use burn::tensor::{Device, Int, Tensor, TensorData};
use kibitzer_hooks::*;
use kibitzer_sae::Sae;
use kibitzer_store::{ActivationSource, ColumnData, ReaderConfig, Store};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::Cell;
use std::sync::Arc;

const VOCAB: usize = 7;
const D: usize = 6;
const HEADS: usize = 2;
const HIDDEN: usize = 10;
const LAYERS: usize = 2;

struct Toy {
    w_e: Tensor<2>,
    w_o: Vec<Tensor<2>>,
    w_in: Vec<Tensor<2>>,
    w_out: Vec<Tensor<2>>,
    w_u: Tensor<2>,
    blocks_run: Cell<usize>,
}

fn random(rng: &mut ChaCha8Rng, rows: usize, cols: usize, dev: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [rows, cols]), dev)
}

impl Toy {
    fn new(seed: u64, dev: &Device) -> Toy {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Toy {
            w_e: random(&mut rng, VOCAB, D, dev),
            w_o: (0..LAYERS).map(|_| random(&mut rng, D, D, dev)).collect(),
            w_in: (0..LAYERS)
                .map(|_| random(&mut rng, D, HIDDEN, dev))
                .collect(),
            w_out: (0..LAYERS)
                .map(|_| random(&mut rng, HIDDEN, D, dev))
                .collect(),
            w_u: random(&mut rng, D, VOCAB, dev),
            blocks_run: Cell::new(0),
        }
    }

    /// The same computation with no hooks at all, for reference.
    fn plain(&self, tokens: &Tensor<2, Int>) -> (Vec<Tensor<3>>, Tensor<3>) {
        let [b, p] = tokens.dims();
        let mut x: Tensor<3> = self
            .w_e
            .clone()
            .select(0, tokens.clone().reshape([b * p]))
            .reshape([b, p, D]);
        let mut resid_posts = Vec::new();
        for l in 0..LAYERS {
            let attn = x
                .clone()
                .reshape([b * p, D])
                .matmul(self.w_o[l].clone())
                .reshape([b, p, D]);
            let mid = x + attn;
            let mlp = mid
                .clone()
                .reshape([b * p, D])
                .matmul(self.w_in[l].clone())
                .clamp_min(0.0)
                .matmul(self.w_out[l].clone());
            x = mid + mlp.reshape([b, p, D]);
            resid_posts.push(x.clone());
        }
        let logits = x
            .reshape([b * p, D])
            .matmul(self.w_u.clone())
            .reshape([b, p, VOCAB]);
        (resid_posts, logits)
    }
}

impl HookedModel for Toy {
    type Input = Tensor<2, Int>;
    type Output = Tensor<3>;

    fn sites(&self) -> Vec<HookSite> {
        let mut sites = vec![HookSite::Embed];
        for l in 0..LAYERS {
            for hook in [
                BlockHook::ResidPre,
                BlockHook::AttnZ,
                BlockHook::AttnOut,
                BlockHook::ResidMid,
                BlockHook::MlpOut,
                BlockHook::ResidPost,
            ] {
                sites.push(HookSite::block(l, hook));
            }
        }
        sites.push(HookSite::UnembedOut);
        sites
    }

    fn forward_hooked(
        &self,
        tokens: &Tensor<2, Int>,
        hooks: &mut Hooks<'_>,
    ) -> Result<Option<Tensor<3>>, HookError> {
        use Axis::*;
        let [b, p] = tokens.dims();
        let embed: Tensor<3> = self
            .w_e
            .clone()
            .select(0, tokens.clone().reshape([b * p]))
            .reshape([b, p, D]);
        let Some(mut x) = hooks.visit(HookSite::Embed, embed, [Batch, Pos, Hidden])? else {
            return Ok(None);
        };
        for l in 0..LAYERS {
            self.blocks_run.set(self.blocks_run.get() + 1);
            let Some(pre) = hooks.visit(HookSite::resid_pre(l), x, [Batch, Pos, Hidden])? else {
                return Ok(None);
            };
            // The "heads": the residual split in two halves, then mixed by W_O.
            let z: Tensor<4> = pre.clone().reshape([b, p, HEADS, D / HEADS]);
            let Some(z) = hooks.visit(HookSite::attn_z(l), z, [Batch, Pos, Head, Hidden])? else {
                return Ok(None);
            };
            let attn = z
                .reshape([b * p, D])
                .matmul(self.w_o[l].clone())
                .reshape([b, p, D]);
            let Some(attn) = hooks.visit(HookSite::attn_out(l), attn, [Batch, Pos, Hidden])? else {
                return Ok(None);
            };
            let Some(mid) =
                hooks.visit(HookSite::resid_mid(l), pre + attn, [Batch, Pos, Hidden])?
            else {
                return Ok(None);
            };
            let mlp = mid
                .clone()
                .reshape([b * p, D])
                .matmul(self.w_in[l].clone())
                .clamp_min(0.0)
                .matmul(self.w_out[l].clone());
            let Some(mlp) = hooks.visit(
                HookSite::mlp_out(l),
                mlp.reshape([b, p, D]),
                [Batch, Pos, Hidden],
            )?
            else {
                return Ok(None);
            };
            let Some(post) =
                hooks.visit(HookSite::resid_post(l), mid + mlp, [Batch, Pos, Hidden])?
            else {
                return Ok(None);
            };
            x = post;
        }
        let logits = x
            .reshape([b * p, D])
            .matmul(self.w_u.clone())
            .reshape([b, p, VOCAB]);
        hooks.visit(HookSite::UnembedOut, logits, [Batch, Pos, Hidden])
    }

    fn bytes_per_example(&self) -> usize {
        4 * 8 * (4 * D + HIDDEN + VOCAB)
    }
}

fn dev() -> Device {
    Device::flex()
}

fn tokens(rows: &[&[i64]]) -> Tensor<2, Int> {
    let p = rows[0].len();
    let flat: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), p]), &dev())
}

fn host<const N: usize>(t: Tensor<N>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn identity_sae(d: usize) -> Sae {
    exact_dictionary(d, &dev())
}

fn sample_tokens() -> Tensor<2, Int> {
    tokens(&[&[1, 2, 3, 4], &[6, 5, 0, 0], &[3, 3, 2, 1]])
}

#[test]
fn cached_activations_equal_the_plain_forward_pass() {
    let toy = Toy::new(1, &dev());
    let input = sample_tokens();
    let (posts, logits) = toy.plain(&input);
    let sites = [HookSite::resid_post(0), HookSite::resid_post(1)];
    let (out, cache) = toy.run_with_cache(&input, &sites).unwrap();
    assert_eq!(max_diff(&host(out), &host(logits.clone())), 0.0);
    for (l, post) in posts.into_iter().enumerate() {
        let cached: Tensor<3> = cache.tensor(HookSite::resid_post(l)).unwrap();
        assert_eq!(max_diff(&host(cached), &host(post)), 0.0);
    }
    assert_eq!(cache.sites(), sites.to_vec());
    // A plain forward through the trait equals the reference too.
    assert_eq!(
        max_diff(&host(toy.forward(&input).unwrap()), &host(logits)),
        0.0
    );
}

#[test]
fn zero_ablation_changes_logits_and_zeroes_the_site() {
    let toy = Toy::new(2, &dev());
    let input = sample_tokens();
    let clean = host(toy.forward(&input).unwrap());
    let mut hooks = Hooks::new()
        .with(HookSite::mlp_out(0), Hook::zero())
        .caching([HookSite::mlp_out(0)]);
    let ablated = host(toy.run_with_hooks(&input, &mut hooks).unwrap());
    assert!(max_diff(&clean, &ablated) > 1e-3);
    assert!(
        host(
            hooks
                .take_cache()
                .tensor::<3>(HookSite::mlp_out(0))
                .unwrap()
        )
        .iter()
        .all(|v| *v == 0.0)
    );
    // Zeroing the last residual stream zeroes the (bias-free) logits.
    let mut hooks = Hooks::new().with(HookSite::resid_post(1), Hook::zero());
    assert!(
        host(toy.run_with_hooks(&input, &mut hooks).unwrap())
            .iter()
            .all(|v| *v == 0.0)
    );
}

#[test]
fn splicing_an_exact_dictionary_leaves_logits_unchanged() {
    let toy = Toy::new(3, &dev());
    let input = sample_tokens();
    let clean = host(toy.forward(&input).unwrap());
    let sae: SharedDictionary = Arc::new(identity_sae(D));
    for site in [
        HookSite::resid_pre(0),
        HookSite::resid_mid(1),
        HookSite::attn_z(0),
    ] {
        let mut hooks = Hooks::new().with(site, Hook::splice(sae.clone()));
        let spliced = host(toy.run_with_hooks(&input, &mut hooks).unwrap());
        assert!(max_diff(&clean, &spliced) < 1e-5, "{site}");
    }
    // A dictionary that reconstructs nothing (zero decoder) is as bad as zero ablation...
    let mut lossy = identity_sae(D);
    lossy.params.w_dec = lossy.params.w_dec.zeros_like();
    let lossy: SharedDictionary = Arc::new(lossy);
    let mut hooks = Hooks::new().with(HookSite::resid_mid(0), Hook::splice(lossy.clone()));
    let spliced = host(toy.run_with_hooks(&input, &mut hooks).unwrap());
    let mut hooks = Hooks::new().with(HookSite::resid_mid(0), Hook::zero());
    let zeroed = host(toy.run_with_hooks(&input, &mut hooks).unwrap());
    assert!(max_diff(&spliced, &zeroed) < 1e-6);
    assert!(max_diff(&clean, &spliced) > 1e-3);
    // ... unless its error term is kept.
    let mut hooks = Hooks::new().with(
        HookSite::resid_mid(0),
        Hook::edit(Intervention::Splice {
            dictionary: lossy,
            error_term: true,
            edits: vec![],
        }),
    );
    assert!(
        max_diff(
            &clean,
            &host(toy.run_with_hooks(&input, &mut hooks).unwrap())
        ) < 1e-5
    );
    // A dictionary of the wrong width is an error naming the site.
    let wide: SharedDictionary = Arc::new(identity_sae(D + 1));
    let mut hooks = Hooks::new().with(HookSite::resid_mid(0), Hook::splice(wide));
    let err = toy
        .run_with_hooks(&input, &mut hooks)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blocks.0.hook_resid_mid") && err.contains("7-wide") && err.contains("6 wide"),
        "{err}"
    );
}

#[test]
fn scaling_a_feature_moves_only_its_direction() {
    let toy = Toy::new(4, &dev());
    let input = sample_tokens();
    let site = HookSite::resid_pre(1);
    let (_, clean) = toy.run_with_cache(&input, &[site]).unwrap();
    let clean = host(clean.tensor::<3>(site).unwrap());
    // Feature 2 is relu(x_2); doubling it adds relu(x_2) to coordinate 2.
    let sae: SharedDictionary = Arc::new(identity_sae(D));
    let mut hooks = Hooks::new()
        .with(site, Hook::scale_feature(sae.clone(), 2, 2.0))
        .caching([site]);
    toy.run_with_hooks(&input, &mut hooks).unwrap();
    let edited = host(hooks.take_cache().tensor::<3>(site).unwrap());
    for (i, (c, e)) in clean.iter().zip(&edited).enumerate() {
        let expected = if i % D == 2 { c + c.max(0.0) } else { *c };
        assert!(
            (expected - e).abs() < 1e-5,
            "{i}: {c} -> {e}, expected {expected}"
        );
    }
    // Setting feature D + 2 (relu(-x_2)) to 1 everywhere.
    let mut hooks = Hooks::new()
        .with(
            site,
            Hook::edit_features(
                sae.clone(),
                vec![FeatureEdit::Set {
                    feature: D + 2,
                    value: 1.0,
                }],
            ),
        )
        .caching([site]);
    toy.run_with_hooks(&input, &mut hooks).unwrap();
    let edited = host(hooks.take_cache().tensor::<3>(site).unwrap());
    for (i, (c, e)) in clean.iter().zip(&edited).enumerate() {
        let expected = if i % D == 2 {
            c + (-c).max(0.0) - 1.0
        } else {
            *c
        };
        assert!(
            (expected - e).abs() < 1e-5,
            "{i}: {c} -> {e}, expected {expected}"
        );
    }
    let mut hooks = Hooks::new().with(site, Hook::scale_feature(sae, 2 * D, 0.0));
    assert!(
        toy.run_with_hooks(&input, &mut hooks)
            .unwrap_err()
            .to_string()
            .contains("feature 12 is out of range")
    );
}

#[test]
fn patching_from_another_run_transplants_its_output() {
    let toy = Toy::new(5, &dev());
    let a = tokens(&[&[1, 2, 3, 4], &[4, 4, 4, 4]]);
    let b = tokens(&[&[5, 6, 1, 2], &[0, 1, 0, 1]]);
    let site = HookSite::resid_post(1);
    let (a_logits, a_cache) = toy
        .run_with_cache(&a, &[site, HookSite::resid_mid(0)])
        .unwrap();
    let source = a_cache.get(site).unwrap().clone();
    let mut hooks = Hooks::new().with(site, Hook::patch(source.clone()));
    let patched = host(toy.run_with_hooks(&b, &mut hooks).unwrap());
    assert_eq!(max_diff(&patched, &host(a_logits.clone())), 0.0);
    // Patching only position 1: logits there come from `a`, elsewhere from `b`.
    let b_logits = host(toy.forward(&b).unwrap());
    let a_logits = host(a_logits);
    let mut hooks = Hooks::new().with(site, Hook::patch(source).at_positions([1]));
    let patched = host(toy.run_with_hooks(&b, &mut hooks).unwrap());
    for (i, v) in patched.iter().enumerate() {
        let pos = (i / VOCAB) % 4;
        let expected = if pos == 1 { a_logits[i] } else { b_logits[i] };
        assert_eq!(*v, expected, "entry {i} (position {pos})");
    }
    // A source of another shape is refused.
    let wrong = a_cache
        .get(HookSite::resid_mid(0))
        .unwrap()
        .map(|t| t.slice([0..1, 0..1, 0..1, 0..D]));
    assert_eq!(wrong.shape(), &[1, 1, D]);
    let mut hooks = Hooks::new().with(site, Hook::patch(wrong));
    assert!(
        toy.run_with_hooks(&b, &mut hooks)
            .unwrap_err()
            .to_string()
            .contains("patch source has shape [1, 1, 6]")
    );
}

#[test]
fn per_head_edits_touch_only_their_head() {
    let toy = Toy::new(6, &dev());
    let input = sample_tokens();
    let site = HookSite::attn_z(0);
    let (_, clean) = toy.run_with_cache(&input, &[site]).unwrap();
    let clean = host(clean.tensor::<4>(site).unwrap());
    let mut hooks = Hooks::new()
        .with(site, Hook::zero().on_heads([1]))
        .caching([site]);
    let ablated_logits = host(toy.run_with_hooks(&input, &mut hooks).unwrap());
    let edited = host(hooks.take_cache().tensor::<4>(site).unwrap());
    let per_head = D / HEADS;
    for (i, (c, e)) in clean.iter().zip(&edited).enumerate() {
        let head = (i / per_head) % HEADS;
        assert_eq!(*e, if head == 1 { 0.0 } else { *c }, "entry {i}");
    }
    assert!(max_diff(&ablated_logits, &host(toy.forward(&input).unwrap())) > 1e-4);
    // Mean ablation over the batch makes every example equal at the site.
    let mut hooks = Hooks::new()
        .with(site, Hook::mean(MeanOf::Batch).on_heads([0]))
        .caching([site]);
    toy.run_with_hooks(&input, &mut hooks).unwrap();
    let meaned = host(hooks.take_cache().tensor::<4>(site).unwrap());
    let per_example = 4 * D;
    for i in 0..per_example {
        let head = (i / per_head) % HEADS;
        let values: Vec<f32> = (0..3).map(|b| meaned[b * per_example + i]).collect();
        if head == 0 {
            let mean = (0..3).map(|b| clean[b * per_example + i]).sum::<f32>() / 3.0;
            assert!(
                values.iter().all(|v| (v - mean).abs() < 1e-6),
                "{i}: {values:?} vs {mean}"
            );
        } else {
            assert_eq!(
                values,
                (0..3)
                    .map(|b| clean[b * per_example + i])
                    .collect::<Vec<_>>()
            );
        }
    }
    // Heads on a site without a head axis are an error naming it.
    let mut hooks = Hooks::new().with(HookSite::resid_pre(0), Hook::zero().on_heads([0]));
    let err = toy
        .run_with_hooks(&input, &mut hooks)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blocks.0.hook_resid_pre") && err.contains("head axis"),
        "{err}"
    );
}

#[test]
fn adding_and_scaling_and_custom_hooks() {
    let toy = Toy::new(7, &dev());
    let input = sample_tokens();
    let site = HookSite::resid_mid(1);
    let (_, clean) = toy.run_with_cache(&input, &[site]).unwrap();
    let clean = host(clean.tensor::<3>(site).unwrap());
    let v: Vec<f32> = (0..D).map(|i| i as f32).collect();
    let vector = Tensor::<1>::from_data(TensorData::new(v.clone(), [D]), &dev());
    let mut hooks = Hooks::new()
        .with(site, Hook::add(vector.clone(), 0.5))
        .with(site, Hook::scale(2.0))
        .caching([site]);
    toy.run_with_hooks(&input, &mut hooks).unwrap();
    let edited = host(hooks.take_cache().tensor::<3>(site).unwrap());
    for (i, (c, e)) in clean.iter().zip(&edited).enumerate() {
        assert!(((c + 0.5 * v[i % D]) * 2.0 - e).abs() < 1e-5);
    }
    let short = Tensor::<1>::from_data(TensorData::new(vec![1.0f32; 3], [3]), &dev());
    let mut hooks = Hooks::new().with(site, Hook::add(short, 1.0));
    assert!(
        toy.run_with_hooks(&input, &mut hooks)
            .unwrap_err()
            .to_string()
            .contains("added vector has shape [3], expected [6]")
    );
    // A read hook sees every site once per run; a shape-changing hook is refused.
    let mut seen = Vec::new();
    let mut hooks = Hooks::new().with(
        HookSite::Embed,
        Hook::read(|s, a| seen.push((s, a.shape().to_vec()))),
    );
    toy.run_with_hooks(&input, &mut hooks).unwrap();
    drop(hooks);
    assert_eq!(seen, vec![(HookSite::Embed, vec![3, 4, D])]);
    let mut hooks = Hooks::new().with(
        site,
        Hook::custom(|_, a| Ok(a.map(|t| t.slice([0..1, 0..2, 0..4, 0..D])))),
    );
    assert!(
        toy.run_with_hooks(&input, &mut hooks)
            .unwrap_err()
            .to_string()
            .contains("changed the shape")
    );
}

#[test]
fn collecting_stops_after_the_last_site_needed() {
    let toy = Toy::new(8, &dev());
    let input = sample_tokens();
    toy.blocks_run.set(0);
    let cache = toy.collect(&input, &[HookSite::resid_mid(0)]).unwrap();
    assert_eq!(toy.blocks_run.get(), 1, "block 1 must not run");
    let (_, full) = toy
        .run_with_cache(&input, &[HookSite::resid_mid(0)])
        .unwrap();
    assert_eq!(
        host(cache.tensor::<3>(HookSite::resid_mid(0)).unwrap()),
        host(full.tensor::<3>(HookSite::resid_mid(0)).unwrap())
    );
    // Stopping early leaves no output for run_with_hooks.
    let mut hooks = Hooks::new().caching([HookSite::Embed]).stopping_early();
    assert!(matches!(
        toy.run_with_hooks(&input, &mut hooks),
        Err(HookError::Incomplete(_))
    ));
}

#[test]
fn unknown_sites_are_errors_listing_the_models_sites() {
    let toy = Toy::new(9, &dev());
    let err = toy
        .site("blocks.5.hook_resid_post")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blocks.5.hook_resid_post") && err.contains("blocks.{0..=1}.hook_resid_post"),
        "{err}"
    );
    let err = toy.site("blocks.0.hook_resid").unwrap_err().to_string();
    assert!(err.contains("blocks.{0..=1}.attn.hook_z"), "{err}");
    assert_eq!(
        toy.site("blocks.1.attn.hook_z").unwrap(),
        HookSite::attn_z(1)
    );
    let err = toy
        .run_with_cache(&sample_tokens(), &[HookSite::attn_pattern(0)])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no hook site blocks.0.attn.hook_pattern"),
        "{err}"
    );
}

#[test]
fn loss_recovered_is_one_for_an_exact_dictionary_and_zero_for_an_empty_one() {
    let toy = Toy::new(10, &dev());
    let inputs = vec![sample_tokens(), tokens(&[&[2, 2, 5, 6], &[1, 1, 1, 1]])];
    let loss = |input: &Tensor<2, Int>, logits: Tensor<3>| {
        next_token_cross_entropy(logits, input.clone(), Some(0))
    };
    let site = HookSite::resid_mid(0);
    let exact = loss_recovered(&toy, &inputs, site, Arc::new(identity_sae(D)), loss).unwrap();
    assert!((exact.fraction - 1.0).abs() < 1e-5, "{exact:?}");
    assert!(exact.zero_ablated != exact.clean);
    let mut empty = identity_sae(D);
    empty.params.w_dec = empty.params.w_dec.zeros_like();
    let none = loss_recovered(&toy, &inputs, site, Arc::new(empty), loss).unwrap();
    assert!(none.fraction.abs() < 1e-6, "{none:?}");
    assert!((none.clean - exact.clean).abs() < 1e-9);
}

#[test]
fn next_token_loss_matches_a_hand_computation() {
    // Two positions, vocab 2; the first predicts token 1 with logits [0, ln 3].
    let logits = Tensor::<3>::from_data(
        TensorData::new(vec![0.0f32, 3f32.ln(), 5.0, 5.0], [1, 2, 2]),
        &dev(),
    );
    let ce = next_token_cross_entropy(logits.clone(), tokens(&[&[0, 1]]), None).unwrap();
    assert!((ce - (4f64 / 3.0).ln()).abs() < 1e-6, "{ce}");
    assert!(next_token_cross_entropy(logits, tokens(&[&[1, 0]]), Some(0)).is_err());
    let p = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0], [1, 2]), &dev());
    let q = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 3f32.ln()], [1, 2]), &dev());
    // KL([.5,.5] || [.25,.75]) = .5 ln 2 + .5 ln(2/3)
    let kl = mean_kl_divergence(p, q);
    assert!(
        (kl - (0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln())).abs() < 1e-6,
        "{kl}"
    );
}

#[test]
fn next_token_loss_from_scores_only_the_later_targets() {
    // Three positions, vocab 2. Position 0 predicts token 1 with logits
    // [0, ln 3] (p = 3/4); position 1 predicts token 0 with logits [ln 4, 0]
    // (p = 4/5); position 2 predicts nothing.
    let logits = Tensor::<3>::from_data(
        TensorData::new(vec![0.0f32, 3f32.ln(), 4f32.ln(), 0.0, 9.0, 9.0], [1, 3, 2]),
        &dev(),
    );
    let seq = || tokens(&[&[1, 1, 0]]);
    let all = next_token_cross_entropy(logits.clone(), seq(), None).unwrap();
    let expected_all = -((0.75f64).ln() + (0.8f64).ln()) / 2.0;
    assert!((all - expected_all).abs() < 1e-6, "{all}");
    let last = next_token_cross_entropy_from(logits.clone(), seq(), None, 2).unwrap();
    assert!((last + (0.8f64).ln()).abs() < 1e-6, "{last}");
    // from = 1 is the plain loss; out-of-range starts are errors.
    let one = next_token_cross_entropy_from(logits.clone(), seq(), None, 1).unwrap();
    assert!((one - all).abs() < 1e-9);
    assert!(next_token_cross_entropy_from(logits.clone(), seq(), None, 0).is_err());
    assert!(next_token_cross_entropy_from(logits, seq(), None, 3).is_err());
}

#[test]
fn harvesting_writes_kept_rows_with_their_example_and_position() {
    let toy = Toy::new(11, &dev());
    let sequences: Vec<Vec<u32>> = (0..9u32)
        .map(|i| (0..(2 + i % 3)).map(|j| 1 + (i + j) % 6).collect())
        .collect();
    let site = HookSite::resid_post(0);
    let data = TokenSequences::new(&sequences, 4, Some(0), false, &dev()).unwrap();
    let kept = data.harvested_rows();
    assert_eq!(kept, sequences.iter().map(Vec::len).sum::<usize>());
    let dir = tempfile::tempdir().unwrap();
    // A ceiling of three examples' worth: several passes.
    let config = HarvestConfig {
        memory_ceiling_bytes: 3 * toy.bytes_per_example() + 3 * 4 * D * 4,
        ..HarvestConfig::new()
    };
    let manifest = harvest(&toy, site, data.clone(), dir.path(), &config).unwrap();
    assert_eq!(manifest.rows as usize, kept);
    assert_eq!(manifest.metadata["hook_site"], "blocks.0.hook_resid_post");
    let store = Store::open(dir.path()).unwrap();
    let mut reader = store
        .reader(ReaderConfig {
            shuffle: false,
            cycle: false,
            ..ReaderConfig::default()
        })
        .unwrap();
    let mut rows = Vec::new();
    assert_eq!(reader.next_batch(1000, &mut rows).unwrap(), kept);
    let ColumnData::I64(examples) = store.column("example").unwrap() else {
        panic!("example is i64")
    };
    let ColumnData::I64(positions) = store.column("position").unwrap() else {
        panic!("position is i64")
    };
    // Every stored row equals the cached activation of its example and position.
    let padded: Vec<Vec<i64>> = sequences
        .iter()
        .map(|s| {
            (0..4)
                .map(|j| s.get(j).map_or(0, |&t| i64::from(t)))
                .collect()
        })
        .collect();
    let all = Tensor::<2, Int>::from_data(TensorData::new(padded.concat(), [9, 4]), &dev());
    let (_, cache) = toy.run_with_cache(&all, &[site]).unwrap();
    let reference = host(cache.tensor::<3>(site).unwrap());
    for (r, (&e, &p)) in examples.iter().zip(&positions).enumerate() {
        assert!(
            (p as usize) < sequences[e as usize].len(),
            "row {r} is a padding position"
        );
        let at = (e as usize * 4 + p as usize) * D;
        assert!(
            max_diff(&rows[r * D..(r + 1) * D], &reference[at..at + D]) < 1e-6,
            "row {r}"
        );
    }
    // The same rows come out of the ActivationSource, under a ceiling that
    // forces one example per pass.
    let data = TokenSequences::new(&sequences, 4, Some(0), false, &dev()).unwrap();
    let mut source = ModelActivations::new(&toy, site, data, toy.bytes_per_example()).unwrap();
    assert_eq!(source.d_in(), D);
    let mut streamed = Vec::new();
    let mut batch = Vec::new();
    while source.next_batch(5, &mut batch).unwrap() > 0 {
        streamed.extend_from_slice(&batch);
    }
    assert_eq!(source.examples_per_pass(), 1);
    assert!(max_diff(&streamed, &rows) < 1e-6);
    // Too small a ceiling, or a site the model lacks, are errors.
    let data = TokenSequences::new(&sequences, 4, Some(0), false, &dev()).unwrap();
    assert!(ModelActivations::new(&toy, site, data.clone(), 10).is_err());
    assert!(ModelActivations::new(&toy, HookSite::attn_pattern(0), data, 1 << 20).is_err());
    assert!(TokenSequences::new(&sequences, 3, Some(0), false, &dev()).is_err());
    assert!(TokenSequences::new(&sequences, 4, None, false, &dev()).is_err());

    // Keeping one token only (ChessGPT's `.`): exactly the rows holding it,
    // in order, each the activation of its own position.
    let only = TokenSequences::new(&sequences, 4, Some(0), false, &dev())
        .unwrap()
        .keeping_only_token(3);
    let want: Vec<(i64, i64)> = sequences
        .iter()
        .enumerate()
        .flat_map(|(e, s)| {
            s.iter()
                .enumerate()
                .filter(|(_, t)| **t == 3)
                .map(move |(p, _)| (e as i64, p as i64))
        })
        .collect();
    assert!(!want.is_empty() && want.len() < kept);
    assert_eq!(only.harvested_rows(), want.len());
    let mut source = ModelActivations::new(&toy, site, only, 1 << 20).unwrap();
    let (mut values, mut ids) = (Vec::new(), Vec::new());
    assert_eq!(
        source
            .next_batch_with_ids(1000, &mut values, &mut ids)
            .unwrap(),
        want.len()
    );
    assert_eq!(ids, want);
    for (r, &(e, p)) in ids.iter().enumerate() {
        let at = (e as usize * 4 + p as usize) * D;
        assert!(max_diff(&values[r * D..(r + 1) * D], &reference[at..at + D]) < 1e-6);
    }
}
