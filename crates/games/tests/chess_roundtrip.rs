//! Round trips over random legal games: FEN, SAN, UCI, PGN and ChessGPT
//! transcripts give back the same game, and the policy index is injective
//! over the legal moves of every position.
#![cfg(feature = "chess")]

use std::collections::HashSet;

use kibitzer_games::Game;
use kibitzer_games::chess::pgn::{GameResult, PgnReader, pgn_string};
use kibitzer_games::chess::shakmaty::Position;
use kibitzer_games::chess::transcript::{Transcript, encode};
use kibitzer_games::chess::{Chess, ChessMove, DrawRules, NUM_ACTIONS, random_game};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn game(seed: u64, max_plies: usize) -> Chess {
    random_game(&mut ChaCha8Rng::seed_from_u64(seed), max_plies)
}

/// Replays `game` move by move, calling `check` on every position before
/// each move (and on the final one with `None`).
fn walk(game: &Chess, mut check: impl FnMut(&Chess, Option<ChessMove>)) {
    let mut replay = Chess::from_position(game.start_position().clone());
    for &mv in game.moves() {
        check(&replay, Some(mv));
        replay.play(mv).expect("the game's moves are legal");
    }
    check(&replay, None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn fen_round_trip(seed in any::<u64>(), plies in 0usize..300) {
        walk(&game(seed, plies), |position, _| {
            let fen = position.fen();
            let back = Chess::from_fen(&fen).expect("our FENs parse");
            assert_eq!(back.position_hash(), position.position_hash(), "{fen}");
            assert_eq!(back.fen(), fen);
            assert_eq!(back.as_shakmaty(), position.as_shakmaty());
            assert_eq!(back.halfmove_clock(), position.halfmove_clock());
        });
    }

    #[test]
    fn san_and_uci_round_trip(seed in any::<u64>(), plies in 0usize..300) {
        walk(&game(seed, plies), |position, _| {
            for mv in position.legal_moves() {
                let san = position.san(mv).expect("legal moves have SAN");
                assert_eq!(position.parse_san(&san).expect("our SAN parses"), mv, "{san}");
                let uci = mv.to_string();
                assert_eq!(position.parse_uci(&uci).expect("our UCI parses"), mv);
                assert_eq!(uci.parse::<ChessMove>().expect("UCI syntax"), mv);
            }
        });
    }

    #[test]
    fn action_index_is_injective_and_invertible(seed in any::<u64>(), plies in 0usize..300) {
        walk(&game(seed, plies), |position, _| {
            let moves = position.legal_moves();
            let mut seen = HashSet::new();
            for &mv in &moves {
                let index = position.action_index(mv);
                assert!(index < NUM_ACTIONS);
                assert!(seen.insert(index), "{mv} shares index {index} in {}", position.fen());
                assert_eq!(position.action_move(index), Some(mv));
            }
        });
    }

    #[test]
    fn encoding_counts_every_piece_once(seed in any::<u64>(), plies in 0usize..300) {
        let mut planes = vec![0.0f32; 768];
        walk(&game(seed, plies), |position, _| {
            position.encode(&mut planes);
            let pieces = position.as_shakmaty().board().occupied().count();
            assert_eq!(planes.iter().sum::<f32>() as usize, pieces);
            // Exactly one own king (plane 5) and one opposing king (plane 11).
            assert_eq!(planes[5 * 64..6 * 64].iter().sum::<f32>(), 1.0);
            assert_eq!(planes[11 * 64..12 * 64].iter().sum::<f32>(), 1.0);
        });
    }

    #[test]
    fn pgn_round_trip(seed in any::<u64>(), plies in 0usize..300) {
        let original = game(seed, plies);
        let result = GameResult::from_outcome(original.outcome());
        let tags = vec![
            ("White".to_string(), format!("seed {seed}")),
            ("WhiteElo".to_string(), "1500".to_string()),
        ];
        let text = pgn_string(&tags, &original, result);
        let games: Vec<_> = PgnReader::new(text.as_bytes(), "<proptest>").collect();
        prop_assert_eq!(games.len(), 1);
        let read = games.into_iter().next().unwrap().expect("our PGN reads back");
        prop_assert_eq!(read.game.moves(), original.moves());
        prop_assert_eq!(read.result, result);
        let white = format!("seed {seed}");
        prop_assert_eq!(read.tag("White"), Some(white.as_str()));
        prop_assert_eq!(read.tag("WhiteElo"), Some("1500"));
        prop_assert_eq!(read.game.position_hash(), original.position_hash());
    }

    #[test]
    fn transcript_round_trip(seed in any::<u64>(), plies in 0usize..300) {
        let original = game(seed, plies);
        let transcript = Transcript::from_game(&original).expect("random games start from the start");
        prop_assert_eq!(transcript.positions.len(), transcript.text.len());
        prop_assert_eq!(encode(&transcript.text).expect("in the vocabulary").len(), transcript.text.len());
        let (parsed, game) = Transcript::parse(&transcript.text).expect("our transcripts parse");
        prop_assert_eq!(game.moves(), original.moves());
        prop_assert_eq!(game.draw_rules(), DrawRules::OnClaim);
        prop_assert_eq!(&parsed, &transcript);
        // Positions never go down, and step by one at each space.
        for (i, w) in transcript.positions.windows(2).enumerate() {
            let step = w[1] - w[0];
            let is_space = transcript.text.as_bytes()[i + 1] == b' ';
            prop_assert_eq!(step, usize::from(is_space));
        }
        // Every '.' is a White-to-move position.
        let positions = original.positions();
        for dot in transcript.dot_plies() {
            prop_assert_eq!(dot.ply % 2, 0);
            prop_assert!(positions[dot.ply].turn().is_white());
        }
    }
}
