//! Transcripts round-trip: tokens of a game decode to the same moves, passes
//! included, on every size.

use kibitzer_games::Game;
use kibitzer_games::othello::transcript::{decode_game, encode_game, replay_tokens, vocab_size};
use kibitzer_games::othello::{Othello, OthelloMove};
use proptest::prelude::*;

/// A game (full when `choices` is long enough) and its positions.
fn game(size: usize, choices: &[u16]) -> (Vec<OthelloMove>, Vec<Othello>) {
    let mut position = Othello::new(size).expect("4, 6 and 8 are supported");
    let (mut moves, mut positions) = (Vec::new(), Vec::new());
    for &choice in choices {
        let legal = position.legal_moves();
        if legal.is_empty() {
            break;
        }
        let mv = legal[usize::from(choice) % legal.len()];
        position.play(mv).expect("legal_moves are legal");
        moves.push(mv);
        positions.push(position);
    }
    (moves, positions)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn transcripts_round_trip(
        size in prop::sample::select(vec![4usize, 6, 8]),
        choices in prop::collection::vec(any::<u16>(), 0..80),
    ) {
        let (mut moves, positions) = game(size, &choices);
        // A prefix cut right after a forced pass cannot carry that pass
        // (documented); drop trailing passes before comparing.
        while moves.last() == Some(&OthelloMove::Pass) {
            moves.pop();
        }
        let tokens = encode_game(size, &moves).expect("a legal game encodes");
        let squares = moves.iter().filter(|mv| **mv != OthelloMove::Pass).count();
        prop_assert_eq!(tokens.len(), squares);
        prop_assert!(tokens.iter().all(|&t| t >= 1 && usize::from(t) < vocab_size(size)));
        prop_assert_eq!(decode_game(size, &tokens).expect("encoded games decode"), moves.clone());

        // Positions after each token are the positions after each square move.
        let replayed = replay_tokens(size, &tokens).expect("encoded games replay");
        let after_squares: Vec<Othello> = moves
            .iter()
            .zip(&positions)
            .filter(|(mv, _)| **mv != OthelloMove::Pass)
            .map(|(_, p)| *p)
            .collect();
        prop_assert_eq!(replayed, after_squares);
    }
}

#[test]
fn full_games_with_passes_round_trip() {
    // Search seeds for finished games that contain a pass, so the test
    // exercises pass re-insertion (they are common on 4x4).
    let mut with_pass = 0;
    for seed in 0..200u16 {
        let choices: Vec<u16> = (0..80)
            .map(|i| seed.wrapping_mul(7919).wrapping_add(i * 104))
            .collect();
        let (moves, positions) = game(4, &choices);
        assert!(
            positions.last().is_some_and(Othello::is_over),
            "80 plies finish a 4x4 game"
        );
        if moves.contains(&OthelloMove::Pass) {
            with_pass += 1;
            let tokens = encode_game(4, &moves).expect("legal");
            assert_eq!(decode_game(4, &tokens).expect("decodes"), moves);
        }
    }
    assert!(with_pass > 0, "no 4x4 game with a pass among 200");
}

#[test]
fn illegal_games_are_refused_with_the_move_number() {
    let moves: Vec<OthelloMove> = ["d3", "c3", "a1"]
        .iter()
        .map(|m| m.parse().expect("names"))
        .collect();
    let error = encode_game(8, &moves).expect_err("a1 is illegal");
    assert!(error.to_string().contains("move 3 (a1)"), "{error}");
    assert!(encode_game(5, &[]).is_err(), "5x5 is not a supported board");
}
