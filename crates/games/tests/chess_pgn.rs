//! Reading multi-game PGN as users download it: tags, comments (Lichess
//! clock and eval annotations), nested variations, NAGs, move numbers and
//! results; errors that name the game and the move; skipping bad games.
#![cfg(feature = "chess")]

use std::io::Write;

use kibitzer_games::chess::pgn::{GameResult, PgnError, PgnReader};
use kibitzer_games::{Game, Player};

const THREE_GAMES: &str = r#"[Event "Rated Blitz game"]
[Site "https://lichess.org/abcdefgh"]
[White "alice"]
[Black "bob"]
[Result "1-0"]
[WhiteElo "1850"]
[BlackElo "1720"]
[TimeControl "180+2"]

1. e4 { [%eval 0.17] [%clk 0:03:00] } 1... e5 { [%clk 0:03:00] } 2. Nf3 $1 Nc6
( 2... d6 3. d4 ( 3. Bc4 { a comment with ( and ) } ) exd4 ) 3. Bc4!? Nf6?
; a rest-of-line comment 4. Qxf7#
4. Ng5 d5 5. exd5 Na5 {
a comment over
two lines } 6. Bb5+ c6 7. dxc6 bxc6 8. Qf3 $14 1-0

[Event "Second"]
[Result "1/2-1/2"]
[WhiteElo "2100"]
[BlackElo "2050"]

1. d4 d5 2. c4 e6 3. Nc3 Nf6 1/2-1/2

[Event "From a position"]
[SetUp "1"]
[FEN "4k3/8/8/8/8/8/4P3/4K3 w - - 0 40"]
[Result "*"]

40. e4 Kd7 41. e5 *
"#;

#[test]
fn reads_three_games_with_annotations() {
    let games: Vec<_> = PgnReader::new(THREE_GAMES.as_bytes(), "three.pgn")
        .map(|g| g.expect("the sample is valid"))
        .collect();
    assert_eq!(games.len(), 3);

    let first = &games[0];
    assert_eq!(first.at.game, 1);
    assert_eq!(first.at.line, 1);
    assert_eq!(first.tag("White"), Some("alice"));
    assert_eq!(first.tag("TimeControl"), Some("180+2"));
    assert_eq!(first.elo(Player::First).unwrap(), Some(1850));
    assert_eq!(first.elo(Player::Second).unwrap(), Some(1720));
    assert_eq!(first.result, GameResult::WhiteWins);
    assert_eq!(
        first.game.san_moves().join(" "),
        "e4 e5 Nf3 Nc6 Bc4 Nf6 Ng5 d5 exd5 Na5 Bb5+ c6 dxc6 bxc6 Qf3"
    );

    let second = &games[1];
    assert_eq!(second.at.game, 2);
    assert_eq!(second.result, GameResult::Draw);
    assert_eq!(second.game.ply(), 6);

    let third = &games[2];
    assert_eq!(third.game.start_fen(), "4k3/8/8/8/8/8/4P3/4K3 w - - 0 40");
    assert_eq!(
        third
            .game
            .moves()
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>(),
        ["e2e4", "e8d7", "e4e5"]
    );
    assert_eq!(third.result, GameResult::Unknown);

    // Written back and read again, the games are the same.
    let rewritten: String = games.iter().map(|g| g.to_pgn()).collect();
    let again: Vec<_> = PgnReader::new(rewritten.as_bytes(), "rewritten.pgn")
        .map(|g| g.expect("our output is valid"))
        .collect();
    assert_eq!(again.len(), 3);
    for (a, b) in games.iter().zip(&again) {
        assert_eq!(a.game.moves(), b.game.moves());
        assert_eq!(a.result, b.result);
        assert_eq!(a.tag("WhiteElo"), b.tag("WhiteElo"));
    }
}

const WITH_ERRORS: &str = r#"[Event "Good"]
[Result "*"]

1. e4 e5 *

[Event "Illegal"]
[Result "*"]

1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Bxc6 Ke7 5. Bxe8 *

[Event "Bad FEN"]
[FEN "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR x KQkq - 0 1"]
[Result "*"]

1. e4 *

[Event "Good again"]
[Result "0-1"]

1. f3 e5 2. g4 Qh4# 0-1
"#;

#[test]
fn errors_name_file_game_and_move() {
    let results: Vec<_> = PgnReader::new(WITH_ERRORS.as_bytes(), "errors.pgn").collect();
    assert_eq!(results.len(), 4, "the reader goes on after a bad game");
    assert!(results[0].is_ok());
    assert!(results[3].is_ok());

    match &results[1] {
        Err(PgnError::IllegalMove {
            at,
            move_number,
            side,
            san,
            ..
        }) => {
            assert_eq!(at.source, "errors.pgn");
            assert_eq!(at.game, 2);
            assert_eq!(at.line, 9);
            assert_eq!(*move_number, 5);
            assert_eq!(*side, Player::First);
            assert_eq!(san, "Bxe8");
        }
        other => panic!("expected an illegal move, got {other:?}"),
    }
    let message = results[1].as_ref().unwrap_err().to_string();
    assert!(
        message.starts_with("errors.pgn:9: game 2, move 5. Bxe8: illegal in position "),
        "{message}"
    );

    match &results[2] {
        Err(PgnError::Fen { at, .. }) => {
            assert_eq!((at.game, at.line), (3, 12));
        }
        other => panic!("expected a FEN error, got {other:?}"),
    }
    let message = results[2].as_ref().unwrap_err().to_string();
    assert!(
        message.contains("game 3") && message.contains("malformed FEN"),
        "{message}"
    );
}

#[test]
fn skip_invalid_counts_what_it_skips() {
    let mut reader = PgnReader::new(WITH_ERRORS.as_bytes(), "errors.pgn").skip_invalid(true);
    let games: Vec<_> = reader
        .by_ref()
        .map(|g| g.expect("bad games are skipped"))
        .collect();
    assert_eq!(games.len(), 2);
    assert_eq!(games[1].tag("Event"), Some("Good again"));
    assert_eq!(games[1].at.game, 4);
    assert_eq!(reader.skipped(), 2);
    assert_eq!(reader.games_read(), 4);
    let games_of_errors: Vec<usize> = reader
        .skipped_errors()
        .iter()
        .map(|e| e.location().expect("parse errors have a location").game)
        .collect();
    assert_eq!(games_of_errors, [2, 3]);
}

#[test]
fn moves_after_mate_are_illegal() {
    let text = "1. f3 e5 2. g4 Qh4# 3. e4 0-1\n";
    let results: Vec<_> = PgnReader::new(text.as_bytes(), "m.pgn").collect();
    let message = results[0].as_ref().unwrap_err().to_string();
    assert!(
        message.contains("move 3. e4: the game is already over (checkmate)"),
        "{message}"
    );
}

#[test]
fn recorded_games_play_on_past_a_threefold_repetition() {
    let text = "1. Nf3 Nf6 2. Ng1 Ng8 3. Nf3 Nf6 4. Ng1 Ng8 5. e4 *\n";
    let games: Vec<_> = PgnReader::new(text.as_bytes(), "r.pgn").collect();
    let game = games[0]
        .as_ref()
        .expect("a claimable draw does not end a recorded game");
    assert_eq!(game.game.ply(), 9);
}

#[test]
fn streams_a_file_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.pgn");
    let mut file = std::fs::File::create(&path).unwrap();
    for i in 0..500 {
        writeln!(
            file,
            "[Event \"{i}\"]\n[Result \"*\"]\n\n1. e4 {{ c }} e5 (1... c5) 2. Nf3 *\n"
        )
        .unwrap();
    }
    drop(file);
    let mut count = 0;
    for (i, game) in PgnReader::open(&path).unwrap().enumerate() {
        let game = game.unwrap();
        assert_eq!(game.tag("Event"), Some(i.to_string().as_str()));
        assert_eq!(game.game.ply(), 3);
        count += 1;
    }
    assert_eq!(count, 500);
    let missing = PgnReader::open(dir.path().join("nope.pgn"))
        .err()
        .expect("a missing file is an error");
    assert!(missing.to_string().contains("nope.pgn"), "{missing}");
}
