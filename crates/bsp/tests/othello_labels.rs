//! Othello labels checked against the game's own rules, position by
//! position, for random games on every board size: the board from the
//! board string, legal squares from the legal move list, the last move from
//! the move list and the flips from the change between two board strings.

use kibitzer_bsp::labelling::{othello_at_move_tokens, othello_at_moves};
use kibitzer_bsp::othello::{OthelloBspOptions, othello_bsps};
use kibitzer_games::Game;
use kibitzer_games::dataset::generate_random_games;
use kibitzer_games::othello::transcript::encode_game;
use kibitzer_games::othello::{Othello, OthelloMove, square_name};

/// The cells of a board string (`X`, `O`, `.`) and the side to move.
fn cells(position: &Othello) -> (Vec<char>, char) {
    let text = position.board_string();
    let (board, side) = text.split_once(' ').expect("board, space, side");
    let cells: Vec<char> = board.chars().filter(|c| *c != '/').collect();
    (cells, side.chars().next().expect("side to move"))
}

#[test]
fn labels_follow_the_rules_on_random_games() {
    for (size, games) in [(4, 60), (6, 60), (8, 40)] {
        let set = othello_bsps(size, OthelloBspOptions::default()).expect("set");
        let catalog = set.catalog().clone();
        let index = |name: String| {
            catalog
                .index_of(&name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let games = generate_random_games(size, games, 11).expect("size");
        let labelled = othello_at_moves(size, &games).expect("legal games");
        let labels = set.label(&labelled.positions).expect("labels");
        // The token path labels the same positions.
        let tokens: Vec<Vec<u8>> = games
            .iter()
            .map(|g| encode_game(size, g).expect("tokenizable"))
            .collect();
        let by_tokens = othello_at_move_tokens(size, &tokens).expect("legal transcripts");
        assert_eq!(by_tokens.positions, labelled.positions);
        assert_eq!(by_tokens.refs, labelled.refs);

        let mut row = 0;
        let mut seen_pass = false;
        for (g, moves) in games.iter().enumerate() {
            let mut position = Othello::new(size).expect("size");
            for mv in moves {
                let before = cells(&position).0;
                position.play(*mv).expect("legal");
                let OthelloMove::Square(played) = *mv else {
                    seen_pass = true;
                    continue;
                };
                assert_eq!(labelled.refs[row].game, g);
                assert_eq!(labelled.positions[row], position);
                let (after, side) = cells(&position);
                let legal = position.legal_moves();
                for sq in 0..size * size {
                    let name = square_name(sq, size).expect("on board");
                    let get = |prefix: &str| labels.get(row, index(format!("{prefix}@{name}")));
                    let (mine, yours) = match after[sq] {
                        '.' => (false, false),
                        c => (c == side, c != side),
                    };
                    assert_eq!(get("mine"), mine, "game {g} row {row} {name}");
                    assert_eq!(get("yours"), yours, "game {g} row {row} {name}");
                    assert_eq!(get("empty"), after[sq] == '.', "game {g} row {row} {name}");
                    let is_legal = legal
                        .iter()
                        .any(|m| matches!(m, OthelloMove::Square(s) if s.index(size) == sq));
                    assert_eq!(get("legal"), is_legal, "game {g} row {row} {name}");
                    assert_eq!(get("last_move"), played.index(size) == sq);
                    let flipped = before[sq] != '.' && after[sq] != before[sq];
                    assert_eq!(get("flipped"), flipped, "game {g} row {row} {name}");
                }
                row += 1;
            }
        }
        assert_eq!(row, labels.rows());
        // Non-vacuous: the sets of every group hold somewhere and fail somewhere.
        let positives = labels.positives();
        for group in catalog.groups() {
            let total: u64 = group.bsps.iter().map(|&b| positives[b]).sum();
            assert!(
                total > 0 && total < (group.bsps.len() * labels.rows()) as u64,
                "{}",
                group.name
            );
        }
        if size == 4 {
            assert!(seen_pass, "4x4 random games pass now and then");
        }
    }
}
