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
    let ps = positions(96, 2);
    let mut trainer = ChessPolicyTrainer::new(
        small(3),
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
