//! Chess board-state properties on shakmaty positions (feature `chess`).
//!
//! # Low level: pieces per square ([`ChessPieces`])
//!
//! `white_knight@f3` (absolute colours, group `chess_pieces`) or
//! `my_knight@f3` / `their_knight@f3` (relative to the side to move, group
//! `chess_pieces_relative`), one property per square and piece type, the
//! square as the slot. Reference 002 leaves two things out of its scores,
//! and so do the defaults here:
//!
//! * **Blank squares** ([`ChessPieceOptions::include_blank`], default
//!   `false`): its `one_hot_mask_idx` drops the blank class, so the group has
//!   64 x 12 properties.
//! * **Pieces on their initial squares** ([`ChessPieceOptions::mask_initial`],
//!   default `true`): a piece standing on a square where the initial position
//!   has the same piece does not count (reference 002,
//!   `board_to_piece_masked_blank_and_initial_state`: such a piece says little
//!   beyond "how far into the game is this token"). The properties stay in
//!   the group — `white_rook@a1` never holds — because the reference divides
//!   coverage by all 64 x 12 cells; [`crate::metrics`] reports the coverage
//!   over properties that occur as well. With `include_blank`, "blank" means
//!   an empty square (the reference would also count masked pieces as blank).
//!
//! # High level ([`ChessHighLevel`])
//!
//! All relative to the side to move ("mine"), one group per concept:
//!
//! | group | properties | holds when |
//! |---|---|---|
//! | `in_check` | `in_check` | the side to move is in check |
//! | `can_give_check` | `can_give_check` | some legal move gives check |
//! | `has_queen` | `has_queen` | the side to move has a queen |
//! | `can_capture_queen` | `can_capture_queen` | some legal move captures a queen |
//! | `bishop_pair` | `bishop_pair` | the side to move has two or more bishops |
//! | `legal_move_targets` | `legal_move_to@e4` per square | some legal move ends there (castling: the king's square) |
//! | `ambiguous_move` | `ambiguous_move` | two pieces of one kind (not pawns) can move to one square, so SAN must disambiguate |
//! | `fork` | `fork_mine`, `fork_theirs`, `fork_any` | an unpinned pawn / knight / bishop / rook attacks two or more enemy pieces of higher value (pawn: N B R Q K; knight, bishop: R Q K; rook: Q K) |
//! | `pin` | `pinned_any`, `pinned_mine`, `pinned_theirs` | a piece is the only piece between its own king and an enemy rook, bishop or queen on their line |
//! | `en_passant` | `en_passant` | an en passant capture is legal |
//! | `castling_rights` | `castling_rights_mine`, `castle_kingside_mine`, `castle_queenside_mine`, and `_theirs` | the side keeps the right (FEN rights) |
//! | `material_advantage` | `material_mine>=k`, `material_theirs>=k` | that side's material (P 1, N 3, B 3, R 5, Q 9) exceeds the other's by at least `k` |
//! | `defensive_threats` | `defensive_threat@e4` per square | a piece of mine stands there with more enemy attackers than own defenders (reference 000) |
//! | `offensive_threats` | `offensive_threat@e4` per square | an enemy piece stands there with more of my attackers than its defenders (reference 000) |
//!
//! Where reference 002's python-chess code differs: its fork counts the
//! high-value targets of *all* unpinned attackers of one type together, per
//! single target type (two knights each attacking one rook count as a fork,
//! a knight attacking king and queen does not); here one piece must attack
//! two targets, the usual meaning. Its "ambiguous moves" also counts pawn
//! captures (`cxd5` and `exd5`), which SAN never disambiguates; here only
//! pieces count. Its "can capture queen" looks at the first enemy queen only.

use kibitzer_games::chess::shakmaty::{
    self, Bitboard, Board, CastlingSide, Color, Move, Piece, Position, Role, Square, attacks,
};

use crate::bits::BitSink;
use crate::error::Result;
use crate::property::{BspInfo, BspSet, PropertyFamily};

const ROLES: [Role; 6] = [
    Role::Pawn,
    Role::Knight,
    Role::Bishop,
    Role::Rook,
    Role::Queen,
    Role::King,
];

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Pawn => "pawn",
        Role::Knight => "knight",
        Role::Bishop => "bishop",
        Role::Rook => "rook",
        Role::Queen => "queen",
        Role::King => "king",
    }
}

fn square_names() -> impl Iterator<Item = (usize, String)> {
    (0..64u32).map(|i| (i as usize, Square::new(i).to_string()))
}

/// Absolute colours or relative to the side to move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Perspective {
    /// White / black.
    Absolute,
    /// Mine (the side to move) / theirs.
    Relative,
}

/// Options of [`ChessPieces`] (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChessPieceOptions {
    /// Absolute or relative colours.
    pub perspective: Perspective,
    /// Pieces on the square they start on do not count.
    pub mask_initial: bool,
    /// Add a `blank@sq` class per square.
    pub include_blank: bool,
}

impl Default for ChessPieceOptions {
    fn default() -> Self {
        ChessPieceOptions {
            perspective: Perspective::Absolute,
            mask_initial: true,
            include_blank: false,
        }
    }
}

/// Square x piece type properties.
pub struct ChessPieces {
    options: ChessPieceOptions,
    infos: Vec<BspInfo>,
    initial: Board,
}

impl ChessPieces {
    /// The family for `options`.
    pub fn new(options: ChessPieceOptions) -> ChessPieces {
        let (group, sides, blank) = match options.perspective {
            Perspective::Absolute => ("chess_pieces", ["white", "black"], "blank"),
            Perspective::Relative => ("chess_pieces_relative", ["my", "their"], "empty"),
        };
        let mut classes: Vec<String> = sides
            .iter()
            .flat_map(|side| {
                ROLES
                    .iter()
                    .map(move |&r| format!("{side}_{}", role_name(r)))
            })
            .collect();
        if options.include_blank {
            classes.push(blank.to_string());
        }
        let infos = classes
            .iter()
            .flat_map(|class| {
                square_names().map(move |(_, square)| {
                    BspInfo::new(
                        format!("{class}@{square}"),
                        group,
                        "low_level",
                        Some(format!("{group}/{square}")),
                    )
                })
            })
            .collect();
        ChessPieces {
            options,
            infos,
            initial: Board::new(),
        }
    }
}

impl PropertyFamily<shakmaty::Chess> for ChessPieces {
    fn properties(&self) -> &[BspInfo] {
        &self.infos
    }

    fn evaluate(&self, position: &shakmaty::Chess, out: &mut BitSink<'_>) {
        let board = position.board();
        let colors = match self.options.perspective {
            Perspective::Absolute => [Color::White, Color::Black],
            Perspective::Relative => [position.turn(), !position.turn()],
        };
        for (side, color) in colors.into_iter().enumerate() {
            for (r, role) in ROLES.into_iter().enumerate() {
                let piece = Piece { color, role };
                let mut squares = board.by_piece(piece);
                if self.options.mask_initial {
                    squares = squares.without(self.initial.by_piece(piece));
                }
                out.put_bits((side * 6 + r) * 64, squares.0, 64);
            }
        }
        if self.options.include_blank {
            out.put_bits(12 * 64, (!board.occupied()).0, 64);
        }
    }
}

/// Which high-level concepts a [`ChessHighLevel`] family holds, and the
/// material thresholds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChessHighLevelOptions {
    /// Material differences (pawns) for `material_advantage`; empty leaves
    /// the group out.
    pub material_thresholds: Vec<u32>,
    /// Include the 64-square groups (`legal_move_targets`,
    /// `defensive_threats`, `offensive_threats`).
    pub per_square: bool,
}

impl Default for ChessHighLevelOptions {
    fn default() -> Self {
        ChessHighLevelOptions {
            material_thresholds: vec![1, 3, 5],
            per_square: true,
        }
    }
}

/// The high-level chess concepts of the module docs, computed from one move
/// generation per position.
pub struct ChessHighLevel {
    options: ChessHighLevelOptions,
    infos: Vec<BspInfo>,
    layout: Layout,
}

/// Bit offsets of the concepts inside the family.
#[derive(Clone, Copy, Debug)]
struct Layout {
    in_check: usize,
    can_give_check: usize,
    has_queen: usize,
    can_capture_queen: usize,
    bishop_pair: usize,
    ambiguous: usize,
    fork: usize,
    pin: usize,
    en_passant: usize,
    castling: usize,
    material: usize,
    legal_targets: Option<usize>,
    defensive: Option<usize>,
    offensive: Option<usize>,
}

impl ChessHighLevel {
    /// The family for `options`.
    pub fn new(options: ChessHighLevelOptions) -> ChessHighLevel {
        let mut infos: Vec<BspInfo> = Vec::new();
        let single = |infos: &mut Vec<BspInfo>, name: &str, group: &str| {
            infos.push(BspInfo::new(name, group, "high_level", None));
            infos.len() - 1
        };
        let in_check = single(&mut infos, "in_check", "in_check");
        let can_give_check = single(&mut infos, "can_give_check", "can_give_check");
        let has_queen = single(&mut infos, "has_queen", "has_queen");
        let can_capture_queen = single(&mut infos, "can_capture_queen", "can_capture_queen");
        let bishop_pair = single(&mut infos, "bishop_pair", "bishop_pair");
        let ambiguous = single(&mut infos, "ambiguous_move", "ambiguous_move");
        let fork = single(&mut infos, "fork_mine", "fork");
        single(&mut infos, "fork_theirs", "fork");
        single(&mut infos, "fork_any", "fork");
        let pin = single(&mut infos, "pinned_any", "pin");
        single(&mut infos, "pinned_mine", "pin");
        single(&mut infos, "pinned_theirs", "pin");
        let en_passant = single(&mut infos, "en_passant", "en_passant");
        let castling = infos.len();
        for side in ["mine", "theirs"] {
            for what in ["castling_rights", "castle_kingside", "castle_queenside"] {
                single(&mut infos, &format!("{what}_{side}"), "castling_rights");
            }
        }
        let material = infos.len();
        for side in ["mine", "theirs"] {
            for k in &options.material_thresholds {
                single(
                    &mut infos,
                    &format!("material_{side}>={k}"),
                    "material_advantage",
                );
            }
        }
        let mut per_square = |prefix: &str, group: &str| {
            let start = infos.len();
            for (_, square) in square_names() {
                infos.push(BspInfo::new(
                    format!("{prefix}@{square}"),
                    group,
                    "high_level",
                    None,
                ));
            }
            start
        };
        let (legal_targets, defensive, offensive) = if options.per_square {
            (
                Some(per_square("legal_move_to", "legal_move_targets")),
                Some(per_square("defensive_threat", "defensive_threats")),
                Some(per_square("offensive_threat", "offensive_threats")),
            )
        } else {
            (None, None, None)
        };
        ChessHighLevel {
            options,
            infos,
            layout: Layout {
                in_check,
                can_give_check,
                has_queen,
                can_capture_queen,
                bishop_pair,
                ambiguous,
                fork,
                pin,
                en_passant,
                castling,
                material,
                legal_targets,
                defensive,
                offensive,
            },
        }
    }
}

/// The squares of pieces of `color` that are the only piece between their
/// own king and an enemy slider on the slider's line (an absolute pin;
/// python-chess `is_pinned` for pieces of that colour).
pub fn pinned(board: &Board, color: Color) -> Bitboard {
    let Some(king) = board.king_of(color) else {
        return Bitboard::EMPTY;
    };
    let snipers = ((attacks::rook_attacks(king, Bitboard::EMPTY) & board.rooks_and_queens())
        | (attacks::bishop_attacks(king, Bitboard::EMPTY) & board.bishops_and_queens()))
        & board.by_color(!color);
    let mut pinned = Bitboard::EMPTY;
    for sniper in snipers {
        let blockers = attacks::between(king, sniper) & board.occupied();
        if let Some(square) = blockers.single_square()
            && board.by_color(color).contains(square)
        {
            pinned.add(square);
        }
    }
    pinned
}

/// Whether an unpinned pawn, knight, bishop or rook of `color` attacks two
/// or more enemy pieces of higher value (see the module docs).
pub fn has_fork(board: &Board, color: Color) -> bool {
    let pinned = pinned(board, color);
    let enemy = board.by_color(!color);
    let kings_queens = board.kings() | board.queens();
    let targets_of = |role: Role| match role {
        Role::Pawn => enemy & !board.pawns(),
        Role::Knight | Role::Bishop => enemy & (kings_queens | board.rooks()),
        Role::Rook => enemy & kings_queens,
        Role::Queen | Role::King => Bitboard::EMPTY,
    };
    [Role::Pawn, Role::Knight, Role::Bishop, Role::Rook]
        .into_iter()
        .any(|role| {
            let targets = targets_of(role);
            (board.by_piece(Piece { color, role }) & !pinned)
                .into_iter()
                .any(|square| (board.attacks_from(square) & targets).more_than_one())
        })
}

/// A piece's material value in pawns: P 1, N 3, B 3, R 5, Q 9; the king 0
/// (it cannot be traded).
pub fn piece_value(role: Role) -> i32 {
    match role {
        Role::Pawn => 1,
        Role::Knight | Role::Bishop => 3,
        Role::Rook => 5,
        Role::Queen => 9,
        Role::King => 0,
    }
}

/// Material of `color` in pawns ([`piece_value`]).
pub fn material(board: &Board, color: Color) -> i32 {
    let side = board.by_color(color);
    Role::ALL
        .into_iter()
        .map(|role| piece_value(role) * (side & board.by_role(role)).count() as i32)
        .sum()
}

/// Squares holding a piece of `color` attacked by more enemy pieces than
/// pieces of `color` defend it (reference 000's square-wise threat: with
/// `color` the side to move, the defensive threats; with the other side, the
/// offensive ones).
pub fn threatened(board: &Board, color: Color) -> Bitboard {
    let occupied = board.occupied();
    let mut out = Bitboard::EMPTY;
    for square in board.by_color(color) {
        let attackers = board.attacks_to(square, !color, occupied).count();
        let defenders = board.attacks_to(square, color, occupied).count();
        if attackers > defenders {
            out.add(square);
        }
    }
    out
}

/// The square a legal move ends on, the king's square for castling.
fn target(m: &Move, turn: Color) -> Square {
    match m.castling_side() {
        Some(side) => side.king_to(turn),
        None => m.to(),
    }
}

impl PropertyFamily<shakmaty::Chess> for ChessHighLevel {
    fn properties(&self) -> &[BspInfo] {
        &self.infos
    }

    fn evaluate(&self, position: &shakmaty::Chess, out: &mut BitSink<'_>) {
        let l = self.layout;
        let board = position.board();
        let us = position.turn();
        let them = !us;
        let legal = position.legal_moves();

        out.put(l.in_check, position.is_check());
        out.put(
            l.can_give_check,
            legal.iter().any(|m| {
                let mut after = position.clone();
                after.play_unchecked(*m);
                after.is_check()
            }),
        );
        out.put(l.has_queen, board.by_piece(us.queen()).any());
        out.put(
            l.can_capture_queen,
            legal.iter().any(|m| m.capture() == Some(Role::Queen)),
        );
        out.put(l.bishop_pair, board.by_piece(us.bishop()).count() >= 2);

        let mut ambiguous = false;
        for (i, a) in legal.iter().enumerate() {
            if a.role() == Role::Pawn || a.role() == Role::King {
                continue;
            }
            if legal[i + 1..]
                .iter()
                .any(|b| b.role() == a.role() && b.to() == a.to() && b.from() != a.from())
            {
                ambiguous = true;
                break;
            }
        }
        out.put(l.ambiguous, ambiguous);

        let (fork_mine, fork_theirs) = (has_fork(board, us), has_fork(board, them));
        out.put(l.fork, fork_mine);
        out.put(l.fork + 1, fork_theirs);
        out.put(l.fork + 2, fork_mine || fork_theirs);

        let (pin_mine, pin_theirs) = (pinned(board, us).any(), pinned(board, them).any());
        out.put(l.pin, pin_mine || pin_theirs);
        out.put(l.pin + 1, pin_mine);
        out.put(l.pin + 2, pin_theirs);

        out.put(l.en_passant, position.legal_ep_square().is_some());

        let castles = position.castles();
        for (k, color) in [us, them].into_iter().enumerate() {
            let king = castles.has(color, CastlingSide::KingSide);
            let queen = castles.has(color, CastlingSide::QueenSide);
            out.put(l.castling + 3 * k, king || queen);
            out.put(l.castling + 3 * k + 1, king);
            out.put(l.castling + 3 * k + 2, queen);
        }

        let difference = material(board, us) - material(board, them);
        let n = self.options.material_thresholds.len();
        for (j, &k) in self.options.material_thresholds.iter().enumerate() {
            out.put(l.material + j, difference >= k as i32);
            out.put(l.material + n + j, -difference >= k as i32);
        }

        if let Some(start) = l.legal_targets {
            let mut targets = Bitboard::EMPTY;
            for m in &legal {
                targets.add(target(m, us));
            }
            out.put_bits(start, targets.0, 64);
        }
        if let Some(start) = l.defensive {
            out.put_bits(start, threatened(board, us).0, 64);
        }
        if let Some(start) = l.offensive {
            out.put_bits(start, threatened(board, them).0, 64);
        }
    }
}

/// The reference 002 low-level set: absolute pieces, initial squares and
/// blanks left out.
pub fn chess_low_level_bsps() -> Result<BspSet<shakmaty::Chess>> {
    BspSet::new(vec![Box::new(ChessPieces::new(
        ChessPieceOptions::default(),
    ))])
}

/// The high-level set with default options.
pub fn chess_high_level_bsps() -> Result<BspSet<shakmaty::Chess>> {
    BspSet::new(vec![Box::new(ChessHighLevel::new(
        ChessHighLevelOptions::default(),
    ))])
}

/// Low-level (absolute and relative pieces) and high-level properties in
/// one set.
pub fn chess_bsps(
    pieces: ChessPieceOptions,
    high_level: Option<ChessHighLevelOptions>,
) -> Result<BspSet<shakmaty::Chess>> {
    let mut families: Vec<Box<dyn PropertyFamily<shakmaty::Chess>>> =
        vec![Box::new(ChessPieces::new(pieces))];
    if let Some(options) = high_level {
        families.push(Box::new(ChessHighLevel::new(options)));
    }
    BspSet::new(families)
}

/// The FEN of a position (en passant square only when a capture there is
/// legal, as python-chess writes it).
pub fn describe(position: &shakmaty::Chess) -> String {
    kibitzer_games::chess::fen_of(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kibitzer_games::chess::parse_fen;

    fn values(set: &BspSet<shakmaty::Chess>, fen: &str) -> impl Fn(&str) -> bool + use<> {
        let position = parse_fen(fen).expect("test FENs are valid");
        let values = set.evaluate(&position).expect("chess positions fit");
        let catalog = set.catalog().clone();
        move |name: &str| {
            values[catalog
                .index_of(name)
                .unwrap_or_else(|| panic!("no {name}"))]
        }
    }

    fn high() -> BspSet<shakmaty::Chess> {
        chess_high_level_bsps().expect("set")
    }

    #[test]
    fn start_position() {
        let v = values(
            &high(),
            "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1",
        );
        assert!(!v("in_check") && !v("can_give_check") && v("has_queen"));
        assert!(!v("can_capture_queen") && v("bishop_pair") && !v("ambiguous_move"));
        assert!(!v("fork_any") && !v("pinned_any") && !v("en_passant"));
        for name in [
            "castle_kingside_mine",
            "castle_queenside_theirs",
            "castling_rights_mine",
        ] {
            assert!(v(name), "{name}");
        }
        assert!(!v("material_mine>=1") && !v("material_theirs>=1"));
        // 20 legal moves reach 16 squares: a3..h3, a4..h4.
        assert!(v("legal_move_to@a3") && v("legal_move_to@h4") && !v("legal_move_to@e5"));
        assert!(!v("defensive_threat@e2") && !v("offensive_threat@e7"));
        let low = values(
            &chess_low_level_bsps().expect("set"),
            "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1",
        );
        // Every piece is on its initial square: nothing counts.
        assert!(!low("white_rook@a1") && !low("black_king@e8") && !low("white_pawn@e2"));
    }

    #[test]
    fn pieces_off_their_initial_squares_and_relative_colours() {
        let fen = "rnbqkbnr/pppp1ppp/8/4p3/4P3/5N2/PPPP1PPP/RNBQKB1R b KQkq - 1 2";
        let low = values(&chess_low_level_bsps().expect("set"), fen);
        assert!(low("white_knight@f3") && low("white_pawn@e4") && low("black_pawn@e5"));
        assert!(!low("white_knight@g1") && !low("white_knight@b1"));
        let relative = chess_bsps(
            ChessPieceOptions {
                perspective: Perspective::Relative,
                mask_initial: false,
                include_blank: true,
            },
            None,
        )
        .expect("set");
        let rel = values(&relative, fen);
        // Black to move: mine = black.
        assert!(rel("my_pawn@e5") && rel("their_knight@f3") && rel("my_king@e8"));
        assert!(rel("empty@g1") && !rel("empty@e4"));
    }

    #[test]
    fn a_known_pin_fork_and_check() {
        // The white bishop b5 pins the black knight c6 to the king e8 (d7 is
        // empty); the white knight c7 gives check and forks king e8 and rook
        // a8. Black to move.
        let fen = "r1bqkbnr/ppN2ppp/2n5/1B2p3/4P3/8/PPPP1PPP/R1BQK1NR b KQkq - 0 5";
        let v = values(&high(), fen);
        assert!(v("in_check"));
        assert!(v("pinned_mine") && !v("pinned_theirs") && v("pinned_any"));
        assert!(v("fork_theirs") && v("fork_any") && !v("fork_mine"));
        // No legal move takes the white queen on d1.
        assert!(!v("can_capture_queen"));
        // The knight on c7: attacked by the black queen, defended by nobody.
        assert!(v("offensive_threat@c7"));
        // The rook a8: attacked by the knight, defended by nobody.
        assert!(v("defensive_threat@a8"));
        // The king e8: one attacker (the knight), one defender (the queen d8).
        assert!(!v("defensive_threat@e8"));
        // In check, the only legal moves are Qxc7, Kd7 and Ke7.
        assert!(v("legal_move_to@c7") && v("legal_move_to@d7") && v("legal_move_to@e7"));
        assert!(!v("legal_move_to@a6") && !v("legal_move_to@f6") && v("castling_rights_mine"));
        // The pin makes the same position without the d7 pawn differ from
        // one with it: with the pawn back the knight is free.
        let v = values(
            &high(),
            "r1bqkbnr/ppNp1ppp/2n5/1B2p3/4P3/8/PPPP1PPP/R1BQK1NR b KQkq - 0 5",
        );
        assert!(!v("pinned_mine") && !v("pinned_any"));
    }

    #[test]
    fn en_passant_castling_and_material_from_fen() {
        // White pawn e5, black just played d7-d5: exd6 e.p. is legal. White
        // may castle queenside only; Black kingside only.
        let v = values(
            &high(),
            "r3k2r/ppp2ppp/8/3pP3/8/8/PPP2PPP/R3K2R w Qk d6 0 1",
        );
        assert!(v("en_passant"));
        assert!(
            v("castle_queenside_mine") && !v("castle_kingside_mine") && v("castling_rights_mine")
        );
        assert!(v("castle_kingside_theirs") && !v("castle_queenside_theirs"));
        assert!(!v("material_mine>=1") && !v("material_theirs>=1"));
        assert!(v("legal_move_to@c1") && v("legal_move_to@d6"));
        // Same position without the black pawn's double step: no en passant.
        let v = values(&high(), "r3k2r/ppp2ppp/8/3pP3/8/8/PPP2PPP/R3K2R w Qk - 0 1");
        assert!(!v("en_passant"));
        // Black is a rook down.
        let v = values(&high(), "4k3/8/8/8/8/8/8/R3K3 b - - 0 1");
        assert!(v("material_theirs>=5") && !v("material_mine>=1") && !v("castling_rights_mine"));
        assert!(!v("has_queen") && !v("bishop_pair"));
    }

    #[test]
    fn ambiguity_queen_capture_and_giving_check() {
        // Knights b1 and f3 can both reach d2 (Nbd2 / Nfd2); Rh1 checks the
        // king on h8; Nxd4 takes the queen.
        let v = values(&high(), "7k/8/8/8/3q4/5N2/8/1N2K1R1 w - - 0 1");
        assert!(v("ambiguous_move") && v("can_give_check") && v("can_capture_queen"));
        // Two pawns that can both capture on d5 are not a SAN ambiguity.
        let v = values(&high(), "4k3/8/8/3p4/2P1P3/8/8/4K3 w - - 0 1");
        assert!(!v("ambiguous_move"));
        // Pawn fork: e5 attacks knights d6 and f6.
        let v = values(&high(), "4k3/8/3n1n2/4P3/8/8/8/4K3 b - - 0 1");
        assert!(v("fork_theirs") && !v("fork_mine"));
    }
}
