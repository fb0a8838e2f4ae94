//! MCTS (random rollouts with MCTS-Solver proofs), alpha-beta and greedy
//! find forced mates in known chess positions.
#![cfg(feature = "chess")]

use kibitzer_games::chess::Chess;
use kibitzer_games::game::{Game, Outcome};
use kibitzer_games::mcts::{Mcts, MctsConfig, Proof, RolloutEvaluator};
use kibitzer_games::players::{Agent, GreedyAgent, WIN_SCORE, alphabeta};

/// Positions with a mate in one (checked with Stockfish 15.1, `go depth 8`).
const MATE_IN_ONE: [&str; 6] = [
    // Scholar's mate, Qxf7#, from h5 and from f3.
    "r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4",
    "r1bqkbnr/pppp1ppp/2n5/4p3/2B1P3/5Q2/PPPP1PPP/RNB1K1NR w KQkq - 4 4",
    // Back-rank mates.
    "6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1",
    "6k1/5ppp/8/8/8/8/5PPP/3RR1K1 w - - 0 1",
    "r5k1/8/8/8/8/8/5PPP/6K1 b - - 0 1",
    // Rook and king.
    "k7/8/1K6/8/8/8/8/7R w - - 0 1",
];

/// Positions with a mate in two and none in one (Stockfish: "mate 2").
const MATE_IN_TWO: [&str; 4] = [
    // 1.Nf6+ gxf6 2.Bxf7#.
    "r2qkb1r/pp2nppp/3p4/2pNN1B1/2BnP3/3P4/PPP2PPP/R2bK2R w KQkq - 1 1",
    // Philidor's legacy: 1.Qg8+ Rxg8 2.Nf7#.
    "r6k/6pp/7N/8/2Q5/8/8/7K w - - 0 1",
    // Rook ladder, White and Black.
    "7k/8/8/8/8/8/R7/1R4K1 w - - 0 1",
    "1r4k1/r7/8/8/8/8/8/7K b - - 0 1",
];

fn position(fen: &str) -> Chess {
    Chess::from_fen(fen).expect("the test FENs are valid")
}

/// Whether `mv` mates at once.
fn mates(position: &Chess, mv: <Chess as Game>::Move) -> bool {
    let mover = position.to_move();
    let mut after = position.clone();
    after.play(mv).expect("the move is legal");
    after.outcome() == Some(Outcome::Win(mover))
}

fn has_mate_in_one(position: &Chess) -> bool {
    position
        .legal_moves()
        .into_iter()
        .any(|mv| mates(position, mv))
}

/// Whether `mv` forces mate on the next move: the opponent has a reply,
/// and every reply allows a mate in one.
fn forces_mate_in_two(position: &Chess, mv: <Chess as Game>::Move) -> bool {
    let mut after = position.clone();
    after.play(mv).expect("the move is legal");
    let replies = after.legal_moves();
    !replies.is_empty()
        && replies.into_iter().all(|reply| {
            let mut next = after.clone();
            next.play(reply).expect("the reply is legal");
            has_mate_in_one(&next)
        })
}

fn mcts() -> Mcts<Chess, RolloutEvaluator> {
    // Short rollouts: random chess games rarely end, and the proofs, not
    // the rollout values, find the mates.
    Mcts::new(MctsConfig::default(), RolloutEvaluator::new(1, 40), 7).expect("valid config")
}

#[test]
fn the_test_positions_are_what_they_claim() {
    for fen in MATE_IN_ONE {
        assert!(has_mate_in_one(&position(fen)), "{fen}");
    }
    for fen in MATE_IN_TWO {
        let game = position(fen);
        assert!(!has_mate_in_one(&game), "{fen}");
        assert!(
            game.legal_moves()
                .into_iter()
                .any(|mv| forces_mate_in_two(&game, mv)),
            "{fen}"
        );
    }
}

#[test]
fn mcts_finds_mate_in_one() {
    for fen in MATE_IN_ONE {
        let game = position(fen);
        let result = mcts().search_with(&game, 2_000).expect("search runs");
        assert!(
            mates(&game, result.best_move),
            "{fen}: MCTS plays {}",
            result.best_move
        );
        assert_eq!(result.root_proof, Proof::Win { plies: 1 }, "{fen}");
    }
}

#[test]
fn mcts_finds_mate_in_two() {
    for fen in MATE_IN_TWO {
        let game = position(fen);
        let result = mcts().search_with(&game, 30_000).expect("search runs");
        assert!(
            forces_mate_in_two(&game, result.best_move),
            "{fen}: MCTS plays {} after {} simulations, root {:?}",
            result.best_move,
            result.simulations,
            result.root_proof
        );
        assert_eq!(result.root_proof, Proof::Win { plies: 3 }, "{fen}");
    }
}

#[test]
fn alphabeta_and_greedy_find_mates() {
    for fen in MATE_IN_ONE {
        let game = position(fen);
        let mv = GreedyAgent::new(0).choose(&game).expect("a move");
        assert!(mates(&game, mv), "{fen}: greedy plays {mv}");
        let result = alphabeta(&game, 2);
        assert_eq!(result.score, WIN_SCORE - 1, "{fen}");
        assert!(result.best_moves.iter().all(|&mv| mates(&game, mv)));
    }
    for fen in MATE_IN_TWO {
        let game = position(fen);
        let result = alphabeta(&game, 3);
        assert_eq!(result.score, WIN_SCORE - 3, "{fen}");
        assert!(
            result
                .best_moves
                .iter()
                .all(|&mv| forces_mate_in_two(&game, mv)),
            "{fen}"
        );
    }
}
