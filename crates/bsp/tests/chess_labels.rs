//! Chess labels agree with shakmaty's own queries (and with independent
//! re-implementations where shakmaty has none) on every position of two
//! thousand random games, and chess labelling picks the right characters.

#![cfg(feature = "chess")]

use kibitzer_bsp::chess::{ChessHighLevelOptions, ChessPieceOptions, Perspective, chess_bsps};
use kibitzer_bsp::labelling::{chess_at_chars, chess_at_dots};
use kibitzer_games::chess::shakmaty::san::{San, SanPlus};
use kibitzer_games::chess::shakmaty::{
    self, Board, CastlingMode, CastlingSide, Color, Piece, Position, Role, Square, attacks,
};
use kibitzer_games::chess::{random_game, transcript::Transcript};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn value(role: Role) -> i32 {
    match role {
        Role::Pawn => 1,
        Role::Knight | Role::Bishop => 3,
        Role::Rook => 5,
        Role::Queen => 9,
        Role::King => 0,
    }
}

/// Pinned the python-chess way, by removing the piece: does an enemy slider
/// newly attack the king?
fn naive_pinned(board: &Board, color: Color) -> Vec<Square> {
    let Some(king) = board.king_of(color) else {
        return Vec::new();
    };
    let occupied = board.occupied();
    let sliders = board.sliders() & board.by_color(!color);
    let before = board.attacks_to(king, !color, occupied) & sliders;
    board
        .by_color(color)
        .into_iter()
        .filter(|&sq| sq != king)
        .filter(|&sq| {
            let after = board.attacks_to(king, !color, occupied.without(sq)) & sliders;
            (after & !before).any()
        })
        .collect()
}

/// Attackers of `target` of `color`, piece by piece.
fn naive_attackers(board: &Board, target: Square, color: Color) -> usize {
    board
        .by_color(color)
        .into_iter()
        .filter(|&sq| {
            let piece = board.piece_at(sq).expect("occupied");
            attacks::attacks(sq, piece, board.occupied()).contains(target)
        })
        .count()
}

fn naive_fork(board: &Board, color: Color) -> bool {
    let pinned = naive_pinned(board, color);
    board.by_color(color).into_iter().any(|sq| {
        let piece = board.piece_at(sq).expect("occupied");
        if pinned.contains(&sq) || matches!(piece.role, Role::Queen | Role::King) {
            return false;
        }
        let targets = attacks::attacks(sq, piece, board.occupied())
            .into_iter()
            .filter(|&t| {
                board.piece_at(t).is_some_and(|p| {
                    p.color != color && (p.role == Role::King || value(p.role) > value(piece.role))
                })
            })
            .count();
        targets >= 2
    })
}

#[test]
fn labels_agree_with_shakmaty_on_random_games() {
    let set = chess_bsps(
        ChessPieceOptions {
            perspective: Perspective::Relative,
            mask_initial: true,
            include_blank: true,
        },
        Some(ChessHighLevelOptions::default()),
    )
    .expect("set");
    let catalog = set.catalog().clone();
    let idx = |name: &str| {
        catalog
            .index_of(name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let games: Vec<_> = (0..2000).map(|_| random_game(&mut rng, 60)).collect();
    let positions: Vec<shakmaty::Chess> = games.iter().flat_map(|g| g.positions()).collect();
    let labels = set.label(&positions).expect("labels");
    let initial = Board::new();
    let named = |prefix: &str| -> Vec<usize> {
        (0..64u32)
            .map(|s| idx(&format!("{prefix}@{}", Square::new(s))))
            .collect()
    };
    let (legal_to, defensive, offensive) = (
        named("legal_move_to"),
        named("defensive_threat"),
        named("offensive_threat"),
    );
    const ROLES: [Role; 6] = [
        Role::Pawn,
        Role::Knight,
        Role::Bishop,
        Role::Rook,
        Role::Queen,
        Role::King,
    ];
    // Indices looked up once: name lookups are linear in the catalog.
    let pieces: Vec<Vec<Vec<usize>>> = ["my", "their"]
        .iter()
        .map(|side| {
            ROLES
                .iter()
                .map(|role| named(&format!("{side}_{}", format!("{role:?}").to_lowercase())))
                .collect()
        })
        .collect();
    let empty = named("empty");
    let singles: std::collections::HashMap<String, usize> = catalog
        .bsps()
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.clone(), i))
        .collect();
    let mut holds = vec![0usize; catalog.len()];
    for (row, pos) in positions.iter().enumerate() {
        let board = pos.board();
        let (us, them) = (pos.turn(), !pos.turn());
        let get = |name: &str| labels.get(row, singles[name]);
        let legal = pos.legal_moves();
        assert_eq!(get("in_check"), pos.is_check(), "row {row}");
        let sans: Vec<SanPlus> = legal
            .iter()
            .map(|m| SanPlus::from_move(pos.clone(), *m))
            .collect();
        let gives_check = sans.iter().any(|s| s.suffix.is_some());
        assert_eq!(get("can_give_check"), gives_check, "row {row}");
        let ambiguous = sans.iter().any(|s| {
            matches!(s.san, San::Normal { role, file, rank, .. } if role != Role::Pawn && (file.is_some() || rank.is_some()))
        });
        assert_eq!(
            get("ambiguous_move"),
            ambiguous,
            "row {row} {}",
            kibitzer_bsp::chess::describe(pos)
        );
        let queen_capture = legal.iter().any(|m| {
            board
                .piece_at(m.to())
                .is_some_and(|p| p.role == Role::Queen && p.color == them)
        });
        assert_eq!(get("can_capture_queen"), queen_capture, "row {row}");
        let count = |c: Color, r: Role| board.by_piece(Piece { color: c, role: r }).count();
        assert_eq!(get("has_queen"), count(us, Role::Queen) > 0);
        assert_eq!(get("bishop_pair"), count(us, Role::Bishop) >= 2);
        assert_eq!(
            get("en_passant"),
            pos.legal_ep_square().is_some(),
            "row {row}"
        );
        for (side, color) in [("mine", us), ("theirs", them)] {
            let k = pos.castles().has(color, CastlingSide::KingSide);
            let q = pos.castles().has(color, CastlingSide::QueenSide);
            assert_eq!(get(&format!("castle_kingside_{side}")), k);
            assert_eq!(get(&format!("castle_queenside_{side}")), q);
            assert_eq!(get(&format!("castling_rights_{side}")), k || q);
        }
        let (pin_us, pin_them) = (
            !naive_pinned(board, us).is_empty(),
            !naive_pinned(board, them).is_empty(),
        );
        assert_eq!(
            get("pinned_mine"),
            pin_us,
            "row {row} {}",
            kibitzer_bsp::chess::describe(pos)
        );
        assert_eq!(get("pinned_theirs"), pin_them, "row {row}");
        assert_eq!(get("pinned_any"), pin_us || pin_them);
        let (fork_us, fork_them) = (naive_fork(board, us), naive_fork(board, them));
        assert_eq!(
            get("fork_mine"),
            fork_us,
            "row {row} {}",
            kibitzer_bsp::chess::describe(pos)
        );
        assert_eq!(get("fork_theirs"), fork_them, "row {row}");
        assert_eq!(get("fork_any"), fork_us || fork_them);
        let material = |c: Color| -> i32 {
            board
                .by_color(c)
                .into_iter()
                .map(|s| value(board.role_at(s).expect("occupied")))
                .sum()
        };
        let diff = material(us) - material(them);
        for k in [1, 3, 5] {
            assert_eq!(get(&format!("material_mine>={k}")), diff >= k);
            assert_eq!(get(&format!("material_theirs>={k}")), -diff >= k);
        }
        // Castling's UCI target is the king's square under standard mode.
        let mut uci_target = [false; 64];
        for m in &legal {
            let uci = m.to_uci(CastlingMode::Standard).to_string();
            let to = Square::from_ascii(&uci.as_bytes()[2..4]).expect("uci squares");
            uci_target[to as usize] = true;
        }
        for s in 0..64u32 {
            let sq = Square::new(s);
            let i = s as usize;
            assert_eq!(
                labels.get(row, legal_to[i]),
                uci_target[i],
                "row {row} {sq}"
            );
            let piece = board.piece_at(sq);
            let threat = |color: Color| {
                piece.is_some_and(|p| p.color == color)
                    && naive_attackers(board, sq, !color) > naive_attackers(board, sq, color)
            };
            assert_eq!(labels.get(row, defensive[i]), threat(us), "row {row} {sq}");
            assert_eq!(
                labels.get(row, offensive[i]),
                threat(them),
                "row {row} {sq}"
            );
            for (r, &role) in ROLES.iter().enumerate() {
                for (side, color) in [us, them].into_iter().enumerate() {
                    let p = Piece { color, role };
                    let expected = piece == Some(p) && initial.piece_at(sq) != Some(p);
                    assert_eq!(
                        labels.get(row, pieces[side][r][i]),
                        expected,
                        "row {row} {p:?}@{sq}"
                    );
                }
            }
            assert_eq!(labels.get(row, empty[i]), piece.is_none());
        }
        for (b, n) in holds.iter_mut().enumerate() {
            *n += usize::from(labels.get(row, b));
        }
    }
    // Non-vacuous: every high-level concept holds somewhere and fails somewhere.
    for name in [
        "in_check",
        "can_give_check",
        "has_queen",
        "can_capture_queen",
        "bishop_pair",
        "ambiguous_move",
        "fork_mine",
        "fork_theirs",
        "pinned_mine",
        "pinned_theirs",
        "en_passant",
        "castle_kingside_mine",
        "castle_queenside_theirs",
        "material_mine>=5",
        "defensive_threat@e4",
        "offensive_threat@d5",
    ] {
        let n = holds[idx(name)];
        assert!(
            n > 0 && n < positions.len(),
            "{name} holds on {n} of {} positions",
            positions.len()
        );
    }
}

#[test]
fn chess_tokens_dots_and_chosen_characters() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let games: Vec<_> = (0..20).map(|_| random_game(&mut rng, 40)).collect();
    let dots = chess_at_dots(&games, Some(256)).expect("standard starts");
    for (position, at) in dots.positions.iter().zip(&dots.refs) {
        assert_eq!(position.turn(), Color::White);
        assert_eq!(at.ply % 2, 0);
        let text = Transcript::from_game(&games[at.game])
            .expect("transcript")
            .text;
        assert!(at.token < 256);
        assert_eq!(text.as_bytes()[at.token], b'.');
        assert_eq!(*position, games[at.game].positions()[at.ply]);
    }
    let reference = dots.first_per_game(3);
    assert!(reference.len() < dots.len());
    for game in 0..games.len() {
        let kept: Vec<_> = reference.refs.iter().filter(|r| r.game == game).collect();
        let all: Vec<_> = dots
            .refs
            .iter()
            .filter(|r| r.game == game)
            .take(3)
            .collect();
        assert_eq!(kept, all);
    }
    // Spaces belong to the next move: the position after the previous one.
    let spaces = chess_at_chars(&games[..1], None, |_, c| c == ' ').expect("transcript");
    for (k, at) in spaces.refs.iter().enumerate() {
        assert_eq!(at.ply, k + 1, "the k-th space starts move k + 1");
    }
    let from_text = kibitzer_bsp::labelling::chess_transcripts_at_chars(
        &[";1.e4 e5 2.Nf3".to_string()],
        None,
        |_, c| c == '.',
    )
    .expect("valid transcript");
    assert_eq!(
        from_text
            .refs
            .iter()
            .map(|r| (r.token, r.ply))
            .collect::<Vec<_>>(),
        vec![(2, 0), (10, 2)]
    );
    let bad = kibitzer_bsp::labelling::chess_transcripts_at_chars(
        &[";1.e5".to_string()],
        None,
        |_, _| true,
    )
    .expect_err("e5 is not a legal first move");
    assert!(bad.to_string().contains("chess game 0"), "{bad}");
}
