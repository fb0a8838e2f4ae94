//! MCTS on Othello: strength against a random player and exactness in
//! endgames against the exact solver.

use kibitzer_games::arena::{ArenaConfig, run_arena};
use kibitzer_games::game::Game;
use kibitzer_games::mcts::{Mcts, MctsConfig, RolloutEvaluator};
use kibitzer_games::othello::{Othello, OthelloMove};
use kibitzer_games::players::solver::{solve, solve_moves};
use kibitzer_games::players::{MctsAgent, PlayerError, RandomAgent};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn mcts_vs_random(games: usize, simulations: u32, seed: u64) -> kibitzer_games::arena::ArenaReport {
    let start = Othello::new(6).expect("6x6 is supported");
    let config = ArenaConfig::new(games, seed);
    run_arena(
        &start,
        &config,
        |seed| {
            MctsAgent::new(
                MctsConfig::default().with_simulations(simulations),
                RolloutEvaluator::default(),
                seed,
            )
        },
        |seed| Ok::<_, PlayerError>(RandomAgent::new(seed)),
    )
    .expect("the match runs")
}

/// The bar: at least 90 wins in 100 games of 6x6 Othello.
#[test]
fn rollout_mcts_beats_random_at_6x6_othello() {
    let report = mcts_vs_random(100, 200, 2024);
    println!("{}", report.to_markdown());
    assert!(report.total.wins >= 90, "{:?}", report.total);
    assert!(
        report
            .elo
            .and_then(|elo| elo.lower)
            .is_some_and(|lower| lower > 200.0)
    );
}

/// The sign of a disc difference: the game result it means.
fn result_of(score: i32) -> i32 {
    score.signum()
}

/// Endgame positions with `empties` empty squares from random games, kept
/// only when some legal move gives away the game-theoretic result (so a
/// wrong choice is possible and the test can fail).
fn discriminating_endgames(size: usize, empties: u32, count: usize, seed: u64) -> Vec<Othello> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut found = Vec::new();
    while found.len() < count {
        let mut position = Othello::new(size).expect("supported size");
        while position.empty().count_ones() > empties {
            let Some(mv) = position.random_move(&mut rng) else {
                break;
            };
            position.play(mv).expect("random_move returns legal moves");
        }
        if position.is_over() || position.empty().count_ones() != empties {
            continue;
        }
        let scores = solve_moves(&position);
        let best = scores.iter().map(|&(_, score)| result_of(score)).max();
        if scores
            .iter()
            .any(|&(_, score)| Some(result_of(score)) != best)
        {
            found.push(position);
        }
    }
    found
}

/// With at most 10 empty squares, MCTS (rollouts, MCTS-Solver proofs) picks
/// a move that keeps the best result the exact solver finds. MCTS plays for
/// the result (win, draw, loss), not the disc margin, so "solver-optimal"
/// here means: reaching the solver's best result.
#[test]
fn mcts_endgame_moves_keep_the_solver_result() {
    let mut positions = discriminating_endgames(6, 10, 10, 1);
    positions.extend(discriminating_endgames(8, 10, 10, 2));
    positions.extend(discriminating_endgames(8, 8, 5, 3));
    let mut proven = 0;
    for (index, position) in positions.iter().enumerate() {
        let exact = solve(position);
        let scores = solve_moves(position);
        let optimal: Vec<OthelloMove> = scores
            .iter()
            .filter(|&&(_, score)| result_of(score) == result_of(exact.score))
            .map(|&(mv, _)| mv)
            .collect();
        let mut search = Mcts::new(
            MctsConfig::default(),
            RolloutEvaluator::default(),
            index as u64,
        )
        .expect("valid config");
        let result = search.search_with(position, 30_000).expect("search runs");
        assert!(
            optimal.contains(&result.best_move),
            "{}: MCTS plays {} (solver: {:?}), optimal {:?}, root value {}",
            position.board_string(),
            result.best_move,
            scores,
            optimal,
            result.root_value
        );
        if result.root_proof.value().is_some() {
            proven += 1;
            let expected = result_of(exact.score) as f32;
            assert_eq!(
                result.root_value, expected,
                "a proof must agree with the solver"
            );
        }
    }
    println!("{proven} of {} roots proven", positions.len());
}
