//! ChessGPT transcripts of real openings: the exact strings and the
//! character-to-position map that board-state probes use.
#![cfg(feature = "chess")]

use kibitzer_games::Game;
use kibitzer_games::chess::Chess;
use kibitzer_games::chess::transcript::{Transcript, white_to_move_positions};

fn play(sans: &str) -> Chess {
    let mut game = Chess::new();
    for san in sans.split_whitespace() {
        game.play_san(san).expect("the test games are legal");
    }
    game
}

#[test]
fn promotion_castling_and_capture_are_written_like_python_chess() {
    let game = play("e4 d5 exd5 Nf6 c4 c6 dxc6 e5 cxb7 Bd6 bxa8=Q O-O");
    let transcript = Transcript::from_game(&game).unwrap();
    assert_eq!(
        transcript.text,
        ";1.e4 d5 2.exd5 Nf6 3.c4 c6 4.dxc6 e5 5.cxb7 Bd6 6.bxa8=Q O-O"
    );
    let (_, back) = Transcript::parse(&transcript.text).unwrap();
    assert_eq!(back.moves(), game.moves());
}

#[test]
fn dots_carry_the_position_before_whites_move() {
    let game = play("e4 e5 Nf3 Nc6 Bb5");
    let transcript = Transcript::from_game(&game).unwrap();
    assert_eq!(transcript.text, ";1.e4 e5 2.Nf3 Nc6 3.Bb5");
    let dots = white_to_move_positions(&game).unwrap();
    let summary: Vec<(usize, usize)> = dots.iter().map(|d| (d.char_index, d.ply)).collect();
    assert_eq!(summary, [(2, 0), (10, 2), (20, 4)]);
    let positions = game.positions();
    for dot in &dots {
        assert_eq!(dot.position, positions[dot.ply]);
        assert_eq!(transcript.positions[dot.char_index], dot.ply);
    }
    // The 'N' of "Nc6" (index 15) is written in the position after Nf3.
    assert_eq!(&transcript.text[15..16], "N");
    assert_eq!(transcript.positions[15], 3);
    assert_eq!(game.ply(), 5);
}
