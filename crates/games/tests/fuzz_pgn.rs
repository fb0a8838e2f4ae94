//! Fuzzing the chess readers (issue 20): the PGN reader and FEN parsing
//! take random bytes and mutated valid files and answer `Ok` or a clean
//! error, never a panic or a hang (the PGN reader once looped forever on a
//! no-break space between moves). `KIBITZER_FUZZ_CASES` sets the cases;
//! see testing/fuzz.rs.
#![cfg(feature = "chess")]

#[path = "../../../testing/fuzz.rs"]
mod fuzz;

use kibitzer_games::Game;
use kibitzer_games::chess::pgn::PgnReader;
use kibitzer_games::chess::{Chess, parse_fen};
use proptest::prelude::*;

/// Valid PGN to mutate: tags, comments, variations, NAGs, a set-up
/// position, castling, promotion, several games, and the rest-of-line and
/// escape forms.
const PGN_SEEDS: &[&str] = &[
    r#"[Event "Rated Blitz game"]
[Site "https://lichess.org/abcdefgh"]
[White "alice"]
[Black "bob"]
[Result "1-0"]
[WhiteElo "1850"]
[BlackElo "1720"]

1. e4 { [%eval 0.17] [%clk 0:03:00] } 1... e5 2. Nf3 $1 Nc6
( 2... d6 3. d4 ( 3. Bc4 { a comment with ( and ) } ) exd4 ) 3. Bc4!? Nf6?
; a rest-of-line comment
4. Ng5 d5 5. exd5 Na5 6. Bb5+ c6 7. dxc6 bxc6 8. Qf3 $14 1-0

[Event "Second"]
[Result "1/2-1/2"]

1.d4 d5 2.c4 e6 3.Nc3 Nf6 4.Bg5 Be7 5.e3 O-O 6.Nf3 h6 7.Bh4 b6 1/2-1/2
"#,
    r#"[SetUp "1"]
[FEN "4k3/P7/8/8/8/8/8/4K2R w K - 0 1"]
[Result "*"]

1. a8=Q+ Kd7 2. O-O Kc7 3. Rf7+ *
"#,
    "1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 5. 0-0 Be7 6. Re1 b5 7. Bb3 d6 *\n",
    "% escape line\n[Event \"x\"]\n\n1. f3 e5 2. g4 Qh4# 0-1\n\n1. e4 *\n",
];

const FEN_SEEDS: &[&str] = &[
    "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1",
    "r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1",
    "8/2p5/3p4/KP5r/1R3p1k/8/4P1P1/8 w - - 0 1",
    "rnbqkbnr/ppp1p1pp/8/3pPp2/8/8/PPPP1PPP/RNBQKBNR w KQkq f6 0 3",
    "4k3/P7/8/8/8/8/8/4K2R w K - 12 40",
];

fn seeds(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}

/// Reads every game of `bytes`, with and without skipping invalid games;
/// a game read is written back out. The reader must end: every game or
/// error it yields consumes at least one byte.
fn read_all_games(bytes: &[u8]) {
    for skip in [false, true] {
        let mut items = 0;
        for game in PgnReader::new(bytes, "<fuzz>").skip_invalid(skip) {
            items += 1;
            assert!(
                items <= bytes.len() + 1,
                "the reader yielded more items than the input has bytes (skip_invalid {skip})"
            );
            match game {
                Ok(game) => {
                    let _ = game.to_pgn();
                    let _ = game.game.legal_moves();
                }
                Err(error) => {
                    let message = error.to_string();
                    assert!(!message.is_empty());
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(fuzz::config(30_000))]

    #[test]
    fn pgn_reader_answers_every_input(input in fuzz::inputs(seeds(PGN_SEEDS), 4096)) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || read_all_games(&bytes))?;
    }
}

proptest! {
    #![proptest_config(fuzz::config(15_000))]

    #[test]
    fn fen_parsing_answers_every_input(input in fuzz::inputs(seeds(FEN_SEEDS), 512)) {
        let bytes = input.clone();
        fuzz::within_deadline(&input, move || {
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(position) = parse_fen(&text) {
                let _ = kibitzer_games::chess::fen_of(&position);
            }
            if let Ok(game) = Chess::from_fen(&text) {
                for mv in game.legal_moves() {
                    let mut next = game.clone();
                    next.play(mv).expect("a legal move plays");
                    let _ = next.fen();
                }
            }
        })?;
    }
}
