use super::*;
use kibitzer_hooks::{BlockHook, Hook};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn dev() -> Device {
    Device::flex()
}

fn small(seed: u64) -> ChessPolicy {
    ChessPolicy::new(
        ChessPolicyConfig {
            seed,
            ..ChessPolicyConfig::new(1, 32, 4, 64)
        },
        &dev(),
    )
    .unwrap()
}

/// Positions along random games, at least `plies` of them.
fn positions(count: usize, seed: u64) -> Vec<Chess> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    while out.len() < count {
        let mut p = Chess::new();
        for _ in 0..40 {
            let moves = p.legal_moves();
            if moves.is_empty() {
                break;
            }
            out.push(p.clone());
            p.play(moves[rng.random_range(0..moves.len())]).unwrap();
        }
    }
    out.truncate(count);
    out
}

/// Weak players play their first legal move, strong ones their last.
fn skilled_move(p: &Chess, rating: u32) -> ChessMove {
    let moves = p.legal_moves();
    if rating < 1500 {
        moves[0]
    } else {
        *moves.last().unwrap()
    }
}

#[test]
fn rating_buckets_follow_maia2() {
    let c = ChessPolicyConfig::new(1, 8, 2, 8);
    assert_eq!(c.buckets(), 11);
    assert_eq!(c.bucket(800), 0);
    assert_eq!(c.bucket(1100), 1);
    assert_eq!(c.bucket(1999), 9);
    assert_eq!(c.bucket(2850), 10);
    assert!(
        ChessPolicyConfig {
            rating_edges: vec![1500, 1200],
            ..c
        }
        .validate()
        .is_err()
    );
}

#[test]
fn hooks_cover_heads_residual_and_ratings_and_attention_is_bidirectional() {
    let policy = small(1);
    let ps = positions(3, 1);
    let input = policy
        .encode(
            &ps.iter()
                .map(|p| (p.clone(), 1200, 1800))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let sites = policy.sites();
    for name in [
        "hook_rating_embed",
        "blocks.0.attn.hook_z",
        "blocks.0.hook_resid_post",
        "blocks.0.hook_mlp_out",
        "unembed.hook_in",
    ] {
        assert!(policy.site(name).is_ok(), "{name}");
    }
    let (out, cache) = policy.run_with_cache(&input, &sites).unwrap();
    let plain = policy.forward(&input).unwrap();
    let diff = to_host(out.policy_logits.clone())
        .iter()
        .zip(to_host(plain.policy_logits))
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "{diff}");
    assert_eq!(
        cache
            .get(HookSite::block(0, BlockHook::AttnZ))
            .unwrap()
            .shape(),
        &[3, 64, 4, 8]
    );
    let pattern = cache.get(HookSite::attn_pattern(0)).unwrap().to_host();
    // Square 0 attends to later squares too.
    assert!(pattern[1..64].iter().any(|v| *v > 0.0));
    // Without the rating embeddings, both ratings give the same policy.
    let swapped = policy
        .encode(
            &ps.iter()
                .map(|p| (p.clone(), 2400, 900))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let a = policy.forward(&input).unwrap().policy_logits;
    let b = policy.forward(&swapped).unwrap().policy_logits;
    assert!(
        to_host(a - b).iter().any(|v| v.abs() > 1e-4),
        "ratings change the policy"
    );
    let ablate = |x: &ChessInput| {
        policy
            .run_with_hooks(
                x,
                &mut Hooks::new().with(HookSite::RatingEmbed, Hook::zero()),
            )
            .unwrap()
            .policy_logits
    };
    assert_eq!(to_host(ablate(&input)), to_host(ablate(&swapped)));
}

#[test]
fn learns_skill_dependent_moves_and_saves() {
    learns_skill_dependent_moves_with(PolicyHead::SquarePairs { d_key: 32 });
}

#[test]
fn the_pooled_head_learns_them_too_and_old_configs_load_with_it() {
    learns_skill_dependent_moves_with(PolicyHead::Pooled);
    // A config saved before `policy_head` existed reads as the pooled head.
    let mut json = serde_json::to_value(ChessPolicyConfig::new(1, 8, 2, 8)).unwrap();
    json.as_object_mut().unwrap().remove("policy_head");
    let old: ChessPolicyConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.policy_head, PolicyHead::Pooled);
    let zero = ChessPolicyConfig {
        policy_head: PolicyHead::SquarePairs { d_key: 0 },
        ..ChessPolicyConfig::new(1, 8, 2, 8)
    };
    assert!(zero.validate().unwrap_err().to_string().contains("d_key"));
}

fn learns_skill_dependent_moves_with(head: PolicyHead) {
    let ps = positions(96, 2);
    let mut config = small(3).config().clone();
    config.policy_head = head;
    let mut trainer = ChessPolicyTrainer::new(
        ChessPolicy::new(config, &dev()).unwrap(),
        3e-3,
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
    )
    .unwrap();
    let examples: Vec<ChessExample> = ps
        .iter()
        .flat_map(|p| {
            [1000u32, 2100].map(|r| ChessExample {
                position: p.clone(),
                own_rating: r,
                opponent_rating: 1500,
                played: skilled_move(p, r),
                result: if r > 1500 { 1.0 } else { -1.0 },
            })
        })
        .collect();
    let first = trainer.train_step(&examples[..64]).unwrap();
    let mut last = first;
    for step in 0..120 {
        let lo = (step * 32) % (examples.len() - 32);
        last = trainer.train_step(&examples[lo..lo + 32]).unwrap();
    }
    assert!(
        last.policy < 0.5 * first.policy,
        "policy loss {} -> {}",
        first.policy,
        last.policy
    );
    assert!(
        last.value < 0.5 * first.value,
        "value loss {} -> {}",
        first.value,
        last.value
    );
    // The same positions, told the player is weak or strong.
    let policy = &trainer.policy;
    let weak = policy
        .predict_moves(
            &ps.iter()
                .map(|p| (p.clone(), 1000, 1500))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let strong = policy
        .predict_moves(
            &ps.iter()
                .map(|p| (p.clone(), 2100, 1500))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let right = |moves: &[ChessMove], r: u32| {
        moves
            .iter()
            .zip(&ps)
            .filter(|(m, p)| **m == skilled_move(p, r))
            .count() as f64
            / ps.len() as f64
    };
    let (w, s) = (right(&weak, 1000), right(&strong, 2100));
    assert!(w > 0.8 && s > 0.8, "weak {w}, strong {s}");
    // Save and load: the same predictions.
    let dir = tempfile::tempdir().unwrap();
    policy.save(dir.path().join("p.safetensors")).unwrap();
    let back = ChessPolicy::load(dir.path().join("p.safetensors"), &dev()).unwrap();
    assert_eq!(
        back.predict_moves(
            &ps.iter()
                .map(|p| (p.clone(), 2100, 1500))
                .collect::<Vec<_>>()
        )
        .unwrap(),
        strong
    );
    // An illegal played move is refused.
    let mut bad = examples[0].clone();
    bad.played = examples[1].played;
    bad.position = positions(1, 99)[0].clone();
    if !bad.position.legal_moves().contains(&bad.played) {
        assert!(
            trainer
                .train_step(&[bad])
                .unwrap_err()
                .to_string()
                .contains("is not legal")
        );
    }
}

fn played_examples(count: usize, seed: u64) -> Vec<ChessExample> {
    positions(count, seed)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let r = if i % 2 == 0 { 1000 } else { 2100 };
            ChessExample {
                played: skilled_move(&p, r),
                position: p,
                own_rating: r,
                opponent_rating: 1600,
                result: [1.0, 0.0, -1.0][i % 3],
            }
        })
        .collect()
}

fn host_params(policy: &ChessPolicy) -> Vec<(String, Vec<f32>)> {
    policy
        .named_params()
        .into_iter()
        .map(|(n, t)| (n, to_host(t)))
        .collect()
}

#[test]
fn checkpoint_resume_matches_training_straight() {
    let examples = played_examples(48, 4);
    let batches: Vec<&[ChessExample]> = examples.chunks(8).collect();
    let new = || ChessPolicyTrainer::new(small(5), 2e-3, AdamWConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");

    // Step 0: no moments yet, still resumable.
    let fresh = new();
    fresh
        .save_checkpoint(&path, &serde_json::json!(null))
        .unwrap();
    let (back, extra) = ChessPolicyTrainer::resume(&path, &dev()).unwrap();
    assert_eq!((back.steps(), extra), (0, serde_json::json!(null)));
    assert_eq!(host_params(&back.policy), host_params(&fresh.policy));

    let mut straight = new();
    for b in &batches {
        straight.train_step(b).unwrap();
    }
    assert_eq!(straight.steps(), 6);

    let mut first = new();
    let mut history = Vec::new();
    for b in &batches[..3] {
        history.push(first.train_step(b).unwrap());
    }
    let extra = serde_json::json!({"run": {"batch": 8}, "history": history});
    first.save_checkpoint(&path, &extra).unwrap();
    let (mut resumed, back_extra) = ChessPolicyTrainer::resume(&path, &dev()).unwrap();
    assert_eq!(back_extra, extra);
    assert_eq!(resumed.steps(), 3);
    assert_eq!(resumed.lr, first.lr);
    assert_eq!(resumed.policy.config(), first.policy.config());
    for b in &batches[3..] {
        resumed.train_step(b).unwrap();
    }
    assert_eq!(resumed.steps(), 6);
    // Bit for bit: the moments and weights travel as f32 unchanged.
    assert_eq!(host_params(&resumed.policy), host_params(&straight.policy));
}

#[test]
fn resume_refuses_other_files_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |name: &str| {
        let path = dir.path().join(name);
        let err = ChessPolicyTrainer::resume(&path, &dev()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ModelError::Checkpoint { .. }),
            "{name}: {err:?}"
        );
        assert!(text.contains(name), "{text}");
        text
    };
    // Not safetensors at all.
    std::fs::write(dir.path().join("junk.safetensors"), b"not a checkpoint").unwrap();
    assert!(refused("junk.safetensors").contains("not a safetensors file"));
    // A policy's weights alone: another format.
    small(1)
        .save(dir.path().join("weights.safetensors"))
        .unwrap();
    let text = refused("weights.safetensors");
    assert!(
        text.contains("format") && text.contains("ChessPolicy::load"),
        "{text}"
    );
    // A checkpoint that lost a tensor.
    let mut trainer = ChessPolicyTrainer::new(small(2), 1e-3, AdamWConfig::default()).unwrap();
    trainer.train_step(&played_examples(4, 1)).unwrap();
    let full = dir.path().join("full.safetensors");
    trainer
        .save_checkpoint(&full, &serde_json::json!({}))
        .unwrap();
    let meta = kibitzer_metadata(&TensorFile::open(&full).unwrap()).unwrap();
    let mut tensors: Vec<_> = trainer
        .policy
        .named_params()
        .iter()
        .map(|(n, t)| host_tensor(format!("param/{n}"), t))
        .collect();
    tensors.retain(|t| t.name != "param/value.b_value");
    write_tensors(&dir.path().join("cut.safetensors"), &tensors, &meta).unwrap();
    let text = refused("cut.safetensors");
    assert!(text.contains("param/value.b_value"), "{text}");
    // A missing file is an I/O error naming it.
    let err =
        ChessPolicyTrainer::resume(dir.path().join("absent.safetensors"), &dev()).unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.safetensors"));
}

#[test]
fn log_probs_cover_legal_moves_only_and_follow_hooks() {
    let policy = small(6);
    let ps = positions(5, 7);
    let examples: Vec<_> = ps.iter().map(|p| (p.clone(), 1300, 1700)).collect();
    let input = policy.encode(&examples).unwrap();
    let lp = policy.log_probs(&input, &mut Hooks::new()).unwrap();
    assert_eq!(lp.dims(), [5, NUM_ACTIONS]);
    let values = to_host(lp.clone());
    for (i, p) in ps.iter().enumerate() {
        let row = &values[i * NUM_ACTIONS..(i + 1) * NUM_ACTIONS];
        let legal: Vec<usize> = p
            .legal_moves()
            .into_iter()
            .map(|m| p.action_index(m))
            .collect();
        let total: f64 = legal.iter().map(|&a| (row[a] as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "row {i}: {total}");
        for (a, v) in row.iter().enumerate() {
            if legal.contains(&a) {
                assert!(v.is_finite(), "row {i} action {a}: {v}");
            } else {
                assert_eq!(*v, f32::NEG_INFINITY, "row {i} action {a}");
            }
        }
    }
    // predict_moves is the argmax of log_probs.
    let best = to_host(lp.argmax(1).float());
    let predicted = policy.predict_moves(&examples).unwrap();
    for ((p, mv), a) in ps.iter().zip(&predicted).zip(&best) {
        assert_eq!(p.action_index(*mv), *a as usize);
    }
    // Zeroing the MLP's output changes the log-probabilities.
    let site = HookSite::block(0, BlockHook::MlpOut);
    assert_eq!(policy.site("blocks.0.hook_mlp_out").unwrap(), site);
    let ablated = to_host(
        policy
            .log_probs(&input, &mut Hooks::new().with(site, Hook::zero()))
            .unwrap(),
    );
    let diff = values
        .iter()
        .zip(&ablated)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff > 1e-4, "{diff}");
    // Illegal moves stay masked under the intervention.
    assert_eq!(
        ablated.iter().filter(|v| v.is_finite()).count(),
        values.iter().filter(|v| v.is_finite()).count()
    );
    let mut hooks = Hooks::new().with(site, Hook::zero());
    let moves = policy
        .predict_moves_with_hooks(&examples, &mut hooks)
        .unwrap();
    for (p, mv) in ps.iter().zip(&moves) {
        assert!(p.legal_moves().contains(mv));
    }
    // Hooks that stop early leave no logits: an error saying so.
    let mut early = Hooks::new()
        .caching([HookSite::block(0, BlockHook::ResidPost)])
        .stopping_early();
    let err = policy
        .log_probs(&input, &mut early)
        .unwrap_err()
        .to_string();
    assert!(err.contains("stopped the pass early"), "{err}");
}

#[test]
fn examples_from_a_rated_game_alternate_sides() {
    use kibitzer_games::chess::pgn::GameResult;
    use kibitzer_games::chess::rated::RatedGame;
    let moves: Vec<ChessMove> = ["e2e4", "e7e5", "g1f3", "b8c6"]
        .iter()
        .map(|m| m.parse().unwrap())
        .collect();
    let game = RatedGame {
        moves: moves.clone(),
        white_elo: Some(1850),
        black_elo: Some(1200),
        result: GameResult::BlackWins,
        time_control: None,
        start_fen: None,
    };
    let examples = ChessExample::from_rated_game(&game, 3).unwrap();
    assert_eq!(examples.len(), 4);
    let mut replay = Chess::new();
    for (i, e) in examples.iter().enumerate() {
        let white = i % 2 == 0;
        assert_eq!(
            (e.own_rating, e.opponent_rating),
            if white { (1850, 1200) } else { (1200, 1850) }
        );
        assert_eq!(e.result, if white { -1.0 } else { 1.0 });
        assert_eq!(e.played, moves[i]);
        assert_eq!(e.position.fen(), replay.fen());
        replay.play(moves[i]).unwrap();
    }
    // Usable for training as they are.
    let mut trainer = ChessPolicyTrainer::new(small(8), 1e-3, AdamWConfig::default()).unwrap();
    assert!(trainer.train_step(&examples).unwrap().policy.is_finite());

    // A start from FEN with Black to move; a draw and an unknown result give 0.
    let fen = "4k3/8/8/8/8/8/4P3/4K3 b - - 0 1";
    let from_fen = RatedGame {
        moves: vec!["e8d8".parse().unwrap(), "e2e4".parse().unwrap()],
        white_elo: Some(1500),
        black_elo: Some(2200),
        result: GameResult::Unknown,
        time_control: None,
        start_fen: Some(fen.to_string()),
    };
    let examples = ChessExample::from_rated_game(&from_fen, 0).unwrap();
    assert_eq!(examples[0].position.fen(), fen);
    assert_eq!(
        examples
            .iter()
            .map(|e| (e.own_rating, e.opponent_rating, e.result))
            .collect::<Vec<_>>(),
        [(2200, 1500, 0.0), (1500, 2200, 0.0)]
    );
    let draw = RatedGame {
        result: GameResult::Draw,
        ..game.clone()
    };
    assert!(
        ChessExample::from_rated_game(&draw, 0)
            .unwrap()
            .iter()
            .all(|e| e.result == 0.0)
    );

    // A missing Elo names the game and the side.
    let unrated = RatedGame {
        black_elo: None,
        ..game.clone()
    };
    let err = ChessExample::from_rated_game(&unrated, 17)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("game 17") && err.contains("Black's Elo"),
        "{err}"
    );
    // An illegal move names the game and the ply.
    let broken = RatedGame {
        moves: vec![moves[0], moves[0]],
        ..game
    };
    let err = ChessExample::from_rated_game(&broken, 9)
        .unwrap_err()
        .to_string();
    assert!(err.contains("game 9") && err.contains("ply 2"), "{err}");
}

#[test]
fn value_weight_zero_leaves_the_value_head_alone() {
    let examples = played_examples(8, 9);
    let adamw = AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let mut trainer = ChessPolicyTrainer::new(small(10), 1e-2, adamw).unwrap();
    let value_head = |p: &ChessPolicy| {
        host_params(p)
            .into_iter()
            .filter(|(n, _)| n.starts_with("value."))
            .collect::<Vec<_>>()
    };
    let before = value_head(&trainer.policy);
    let policy_before = host_params(&trainer.policy);
    trainer.train_step_weighted(&examples, 0.0).unwrap();
    assert_eq!(value_head(&trainer.policy), before);
    assert_ne!(host_params(&trainer.policy), policy_before);
    let err = trainer
        .train_step_weighted(&examples, -1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("value_weight"), "{err}");
    // Weight 1 is train_step.
    let mut a = ChessPolicyTrainer::new(small(11), 1e-3, adamw).unwrap();
    let mut b = a.clone();
    a.train_step(&examples).unwrap();
    b.train_step_weighted(&examples, 1.0).unwrap();
    assert_eq!(host_params(&a.policy), host_params(&b.policy));
}
