use super::*;
use kibitzer_games::dataset::generate_random_games;
use kibitzer_games::mcts::{Mcts, MctsConfig};
use kibitzer_games::othello::OthelloMove;
use kibitzer_hooks::{Hook, SharedDictionary, exact_dictionary};
use rand::SeedableRng;
use std::sync::Arc;

fn dev() -> Device {
    Device::flex()
}

fn small(size: usize, seed: u64) -> AlphaZeroNet {
    AlphaZeroNet::new(
        AlphaZeroConfig {
            width: 32,
            seed,
            ..AlphaZeroConfig::new(size)
        },
        &dev(),
    )
    .unwrap()
}

/// Positions along random games (not the final ones).
fn positions(size: usize, games: usize, seed: u64) -> Vec<Othello> {
    let mut out = Vec::new();
    for game in generate_random_games(size, games, seed).unwrap() {
        let mut p = Othello::new(size).unwrap();
        for mv in game {
            out.push(p);
            p.play(mv).unwrap();
        }
    }
    out
}

fn legal_policy(p: &Othello) -> Vec<f32> {
    let mut target = vec![0f32; p.num_actions()];
    let legal = p.legal_moves();
    for mv in &legal {
        target[p.action_index(*mv)] = 1.0 / legal.len() as f32;
    }
    target
}

fn disc_value(p: &Othello) -> f32 {
    ((p.mine().count_ones() as f32 - p.yours().count_ones() as f32) / 4.0).tanh()
}

#[test]
fn reference_001_shape_and_distributions_for_every_size() {
    let net = AlphaZeroNet::new(AlphaZeroConfig::new(6), &dev()).unwrap();
    assert_eq!(net.config().width, 256);
    let sites = net.sites();
    assert_eq!(sites.len(), 1 + 4 * 3);
    assert!(sites.contains(&"blocks.2.hook_resid_post".parse().unwrap()));
    for size in [4, 6, 8] {
        let net = small(size, 1);
        let ps = positions(size, 2, 5);
        let out = net.predict(&ps).unwrap();
        assert_eq!(out.log_policy.dims(), [ps.len(), size * size + 1]);
        let probs = to_host(out.log_policy.exp());
        for row in probs.chunks(size * size + 1) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
        assert!(to_host(out.value).iter().all(|v| v.abs() < 1.0));
    }
    assert!(
        AlphaZeroConfig::new(7)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("board_size 7")
    );
    assert!(
        small(6, 1)
            .predict(&[Othello::new(8).unwrap()])
            .unwrap_err()
            .to_string()
            .contains("8x8")
    );
}

#[test]
fn residual_hooks_are_consistent_and_splicing_an_exact_dictionary_changes_nothing() {
    let net = small(6, 2);
    let boards = net.encode(&positions(6, 3, 6)).unwrap();
    let (clean, cache) = net.run_with_cache(&boards, &net.sites()).unwrap();
    let host2 = |site: HookSite| to_host(cache.tensor::<2>(site).unwrap());
    for l in 0..4 {
        let sum: Vec<f32> = host2(HookSite::resid_pre(l))
            .iter()
            .zip(host2(HookSite::mlp_out(l)))
            .map(|(a, b)| a + b)
            .collect();
        assert_eq!(sum, host2(HookSite::resid_post(l)));
        if l > 0 {
            assert_eq!(
                host2(HookSite::resid_pre(l)),
                host2(HookSite::resid_post(l - 1))
            );
        }
    }
    assert_eq!(host2(HookSite::Embed), host2(HookSite::resid_pre(0)));
    let clean_policy = to_host(clean.log_policy);
    let site = HookSite::resid_post(2);
    let exact: SharedDictionary = Arc::new(exact_dictionary(32, &dev()));
    let spliced = net
        .run_with_hooks(&boards, &mut Hooks::new().with(site, Hook::splice(exact)))
        .unwrap();
    let diff = to_host(spliced.log_policy)
        .iter()
        .zip(&clean_policy)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "{diff}");
    let ablated = net
        .run_with_hooks(&boards, &mut Hooks::new().with(site, Hook::zero()))
        .unwrap();
    let diff = to_host(ablated.log_policy)
        .iter()
        .zip(&clean_policy)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff > 1e-3, "{diff}");
}

#[test]
fn harvesting_the_layer_2_residual_stream() {
    let net = small(6, 3);
    let ps = positions(6, 4, 7);
    let dir = tempfile::tempdir().unwrap();
    let source = PositionSource::new(&net, ps.clone()).unwrap();
    let config = kibitzer_hooks::HarvestConfig {
        memory_ceiling_bytes: 20 * net.bytes_per_example(),
        ..Default::default()
    };
    let manifest =
        kibitzer_hooks::harvest(&net, HookSite::resid_post(2), source, dir.path(), &config)
            .unwrap();
    assert_eq!(manifest.rows as usize, ps.len());
    assert_eq!(manifest.d_in, 32);
    let store = kibitzer_store::Store::open(dir.path()).unwrap();
    let mut reader = store
        .reader(kibitzer_store::ReaderConfig {
            shuffle: false,
            cycle: false,
            ..Default::default()
        })
        .unwrap();
    let mut rows = Vec::new();
    use kibitzer_store::ActivationSource;
    reader.next_batch(ps.len(), &mut rows).unwrap();
    let cache = net
        .collect(&net.encode(&ps).unwrap(), &[HookSite::resid_post(2)])
        .unwrap();
    let expected = to_host(cache.tensor::<2>(HookSite::resid_post(2)).unwrap());
    let diff = rows
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-6, "{diff}");
    assert!(PositionSource::new(&net, vec![Othello::new(4).unwrap()]).is_err());
}

#[test]
fn mcts_searches_with_the_net_in_batches() {
    let net = small(6, 4);
    let config = MctsConfig {
        simulations: 64,
        leaf_batch_size: 8,
        ..MctsConfig::default()
    };
    let mut mcts = Mcts::new(config, net, 9).unwrap();
    let start = Othello::new(6).unwrap();
    let result = mcts.search(&start).unwrap();
    assert_eq!(result.simulations, 64);
    assert!(
        result.evaluator_calls < 64,
        "leaves were evaluated {} times for 64 simulations",
        result.evaluator_calls
    );
    assert_eq!(result.policy.len(), 37);
    assert!(start.legal_moves().contains(&result.best_move));
    // The net's own verdicts, through the trait.
    let mut net = mcts.into_evaluator();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let evals = net.evaluate(&[start, start], &mut rng).unwrap();
    assert_eq!(evals.len(), 2);
    let Policy::OverActions(p) = &evals[0].policy else {
        panic!("a net gives a policy over actions")
    };
    assert_eq!(p.len(), 37);
    assert!(net.evaluate(&[Othello::new(8).unwrap()], &mut rng).is_err());
}

#[test]
fn training_fits_legal_policies_and_values_and_tracks_batch_statistics() {
    let ps = positions(6, 40, 8);
    let mut trainer = AlphaZeroTrainer::new(
        small(6, 5),
        3e-3,
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
    )
    .unwrap();
    let batch_of = |range: std::ops::Range<usize>| {
        let mut b = AlphaZeroBatch::default();
        for p in &ps[range] {
            b.push(p, &legal_policy(p), disc_value(p));
        }
        b
    };
    let legal_mass = |net: &AlphaZeroNet| {
        let out = net.predict(&ps[..200]).unwrap();
        let probs = to_host(out.log_policy.exp());
        let total: f32 = ps[..200]
            .iter()
            .zip(probs.chunks(37))
            .map(|(p, row)| {
                p.legal_moves()
                    .iter()
                    .map(|m| row[p.action_index(*m)])
                    .sum::<f32>()
            })
            .sum();
        total / 200.0
    };
    // The running mean after one step is momentum * the batch mean of the
    // input layer's pre-activations under the weights before the step.
    let first = batch_of(0..64);
    let before = trainer.net.clone();
    let h = from_host(first.boards.clone(), 64, 36, &dev()).matmul(before.input.w.clone())
        + before.input.b.clone();
    let expected = to_host(h.mean_dim(0).mul_scalar(0.1));
    let start = trainer.train_step(&first).unwrap();
    let got = to_host(trainer.net.input.running_mean.clone());
    let diff = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "running mean off by {diff}");
    let mass_before = legal_mass(&before);
    let mut last = start;
    for step in 0..600 {
        let lo = (step * 64) % (ps.len() - 64);
        last = trainer.train_step(&batch_of(lo..lo + 64)).unwrap();
    }
    assert!(
        last.policy < 0.7 * start.policy,
        "policy loss {} -> {}",
        start.policy,
        last.policy
    );
    assert!(
        last.value < 0.2 * start.value,
        "value loss {} -> {}",
        start.value,
        last.value
    );
    let mass_after = legal_mass(&trainer.net);
    // Legality is a hard function for a small MLP; 600 steps move the
    // policy's mass on legal moves from about 0.14 to about 0.55.
    assert!(
        mass_after > mass_before + 0.25,
        "legal mass {mass_before} -> {mass_after}"
    );
    // Bad batches are refused.
    let mut bad = batch_of(0..4);
    bad.values[2] = 3.0;
    assert!(
        trainer
            .train_step(&bad)
            .unwrap_err()
            .to_string()
            .contains("value target 2 is 3")
    );
    assert!(trainer.train_step(&batch_of(0..1)).is_err());
}

#[test]
fn save_and_load_round_trip_and_name_bad_tensors() {
    let mut trainer = AlphaZeroTrainer::new(small(4, 6), 1e-3, AdamWConfig::default()).unwrap();
    let ps = positions(4, 6, 9);
    let mut batch = AlphaZeroBatch::default();
    for p in &ps {
        batch.push(p, &legal_policy(p), disc_value(p));
    }
    trainer.train_step(&batch).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("az.safetensors");
    trainer.net.save(&path).unwrap();
    let back = AlphaZeroNet::load(&path, &dev()).unwrap();
    assert_eq!(back.config(), trainer.net.config());
    let a = trainer.net.predict(&ps).unwrap();
    let b = back.predict(&ps).unwrap();
    assert_eq!(to_host(a.log_policy), to_host(b.log_policy));
    assert_eq!(to_host(a.value), to_host(b.value));
    // A file whose config says 6x6 but whose tensors are 4x4 names the first tensor.
    let bytes = std::fs::read(&path).unwrap();
    let mut file = TensorFile::from_bytes(&path, &bytes).unwrap();
    let err = AlphaZeroNet::from_file(
        AlphaZeroConfig {
            width: 32,
            seed: 6,
            ..AlphaZeroConfig::new(6)
        },
        &mut file,
        &dev(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("input.W_in has shape [16, 32], expected [36, 32]"),
        "{err}"
    );
    let mut file = TensorFile::from_bytes(&path, &bytes).unwrap();
    let err = AlphaZeroNet::from_file(
        AlphaZeroConfig {
            n_blocks: 5,
            width: 32,
            seed: 6,
            ..AlphaZeroConfig::new(4)
        },
        &mut file,
        &dev(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing tensor blocks.4.W_in"), "{err}");
    let _ = OthelloMove::Pass;
}
