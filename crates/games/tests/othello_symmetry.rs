//! The eight board symmetries commute with Othello's rules: the legal moves
//! and flips of a transformed position are the transformed legal moves and
//! flips, for positions reached by random games on every size.

use kibitzer_games::Game;
use kibitzer_games::othello::{Othello, Symmetry};
use proptest::prelude::*;

fn reached_position(size: usize, choices: &[u16]) -> Othello {
    let mut position = Othello::new(size).expect("4, 6 and 8 are supported");
    for &choice in choices {
        let moves = position.legal_moves();
        if moves.is_empty() {
            break;
        }
        position
            .play(moves[usize::from(choice) % moves.len()])
            .expect("legal_moves are legal");
    }
    position
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn symmetries_commute_with_move_generation(
        size in prop::sample::select(vec![4usize, 6, 8]),
        choices in prop::collection::vec(any::<u16>(), 0..60),
        symmetry in prop::sample::select(Symmetry::ALL.to_vec()),
    ) {
        let position = reached_position(size, &choices);
        let image = position.transformed(symmetry);
        prop_assert_eq!(image.legal_bitboard(), symmetry.apply_bitboard(position.legal_bitboard(), size));
        prop_assert_eq!(image.last_flipped(), symmetry.apply_bitboard(position.last_flipped(), size));
        prop_assert_eq!(image.last_move(), position.last_move().map(|mv| symmetry.apply_move(mv, size)));
        prop_assert_eq!(image.outcome(), position.outcome());
        prop_assert_eq!(image.transformed(symmetry.inverse()), position);

        let mut expected: Vec<_> = position.legal_moves().into_iter().map(|mv| symmetry.apply_move(mv, size)).collect();
        expected.sort();
        let mut actual = image.legal_moves();
        actual.sort();
        prop_assert_eq!(&actual, &expected);

        for mv in position.legal_moves() {
            let (mut played, mut image_played) = (position, image);
            played.play(mv).expect("legal");
            image_played.play(symmetry.apply_move(mv, size)).expect("the image of a legal move is legal");
            prop_assert_eq!(played.transformed(symmetry), image_played);
            let action = position.action_index(mv);
            prop_assert_eq!(symmetry.apply_action(action, size), image.action_index(symmetry.apply_move(mv, size)));
        }
        for index in 0..size * size {
            prop_assert_eq!(
                image.flips(symmetry.apply_index(index, size)),
                symmetry.apply_bitboard(position.flips(index), size)
            );
        }
    }
}
