//! Chess on [`shakmaty`] (GPL-3.0-or-later; behind the default `chess`
//! feature): the [`Game`] implementation, FEN, SAN and UCI in and out, a
//! streaming PGN reader and writer ([`pgn`]), perft ([`perft()`]), the
//! character-level transcripts of ChessGPT ([`transcript`]), rated-game
//! datasets for skill-conditioned models ([`rated`]) and move judging by
//! Stockfish or alpha-beta ([`judge`]: [`MoveJudge`]).
//!
//! # Positions and games
//!
//! [`Chess`] is a game, not just a position: the starting position, the moves
//! played since, and what the draw rules need (the halfmove clock and the
//! positions since the last capture or pawn move). [`Chess::as_shakmaty`]
//! gives the current [`shakmaty::Chess`] position for everything this module
//! does not wrap (pieces by square, checkers, pins, attacks, castling rights,
//! en passant); the crate re-exports [`shakmaty`] so callers use the same
//! version.
//!
//! # When the game ends
//!
//! Checkmate (a win), stalemate and insufficient material (shakmaty's
//! [`Position::is_insufficient_material`]: neither side has mating material)
//! always end the game. The fifty-move rule (100 plies without a capture or a
//! pawn move) and threefold repetition (the same position — pieces, side to
//! move, castling rights and a legal en-passant capture — for the third time
//! since the game started here) depend on [`DrawRules`]:
//!
//! * [`DrawRules::Automatic`] (the default, the convention of engine
//!   self-play and AlphaZero/Leela training): both end the game at once.
//! * [`DrawRules::OnClaim`] (what recorded games need, as FIDE makes both
//!   draws claimable rather than automatic): the game goes on;
//!   [`Chess::claimable_draw`] says whether a player could claim. Games read
//!   from PGN and transcripts use these rules, so a recorded game that played
//!   on past a repetition replays. The FIDE seventy-five-move and fivefold
//!   rules are not applied.
//!
//! Checkmate takes precedence: a mating move that is also the hundredth
//! reversible ply wins.
//!
//! # Encoding for neural nets
//!
//! [`Game::encode`] writes 12 planes of 64 squares, from the point of view of
//! the side to move: planes 0–5 the mover's pawns, knights, bishops, rooks,
//! queens and king, planes 6–11 the opponent's in the same order. Square `i`
//! of a plane is `rank * 8 + file` with the mover's first rank as rank 0: for
//! White `a1` = 0, `h1` = 7, `a8` = 56; for Black the board is flipped
//! vertically (`a8` = 0, `h8` = 7, `a1` = 56), so the mover's pawns always
//! advance towards higher indices. Castling rights, en passant and the move
//! clocks are not in the planes.
//!
//! # Policy index
//!
//! [`Game::num_actions`] is [`NUM_ACTIONS`] = 4168: 64 × 64 from–to pairs in
//! the same mover-relative squares as the encoding (`from * 64 + to`; a
//! queen promotion and castling, written as the king's two-square move,
//! use their from–to pair), then 72 underpromotions at `4096 + (file * 3 +
//! direction) * 3 + piece`, where `file` is the pawn's file (0 = a),
//! `direction` 0, 1, 2 a capture towards the a-file, a push, a capture
//! towards the h-file, and `piece` 0, 1, 2 a knight, bishop, rook. Two legal
//! moves of a position never share an index (they would have to share from,
//! to and promotion). [`Chess::action_move`] maps an index back.

pub mod judge;
pub mod perft;
pub mod pgn;
pub mod rated;
pub mod transcript;

use std::fmt;
use std::str::FromStr;

pub use shakmaty;
use shakmaty::fen::Fen;
use shakmaty::san::{San, SanError, SanPlus};
use shakmaty::uci::UciMove;
use shakmaty::zobrist::Zobrist64;
use shakmaty::{CastlingMode, Color, EnPassantMode, Move, Position, Rank, Role, Square};

use crate::game::{Game, IllegalMove, Outcome, Player};

pub use judge::{JudgeError, MoveJudge, Score};
pub use perft::{PerftReport, perft, perft_report};

/// Planes of [`Game::encode`].
pub const ENCODING_PLANES: usize = 12;
/// Squares of the board.
pub const SQUARES: usize = 64;
/// Size of the policy vector: 64 × 64 from–to pairs and 72 underpromotions.
pub const NUM_ACTIONS: usize = 64 * 64 + 8 * 3 * 3;
/// The first underpromotion index.
const UNDERPROMOTION_BASE: usize = 64 * 64;
/// Underpromotion pieces in policy order.
const UNDERPROMOTIONS: [Role; 3] = [Role::Knight, Role::Bishop, Role::Rook];

/// Which draws end the game by themselves (see the module docs).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum DrawRules {
    /// Threefold repetition and the fifty-move rule end the game at once.
    #[default]
    Automatic,
    /// Threefold repetition and the fifty-move rule only allow a claim; the
    /// game goes on.
    OnClaim,
}

/// Why a game ended (or, from [`Chess::claimable_draw`], why a draw can be
/// claimed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Termination {
    /// The side to move is in check and has no legal move.
    Checkmate,
    /// The side to move is not in check and has no legal move.
    Stalemate,
    /// Neither side has material to mate with.
    InsufficientMaterial,
    /// 100 plies without a capture or a pawn move.
    FiftyMoveRule,
    /// The position occurred for the third time.
    ThreefoldRepetition,
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Termination::Checkmate => "checkmate",
            Termination::Stalemate => "stalemate",
            Termination::InsufficientMaterial => "insufficient material",
            Termination::FiftyMoveRule => "fifty-move rule",
            Termination::ThreefoldRepetition => "threefold repetition",
        })
    }
}

/// Text that is not a FEN, a UCI move or a SAN move, or a move that is not
/// legal where it is played.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotationError {
    /// A FEN that does not parse or describes an impossible position.
    #[error("malformed FEN {fen:?}: {reason}")]
    Fen {
        /// The text.
        fen: String,
        /// What is wrong, in shakmaty's words.
        reason: String,
    },
    /// Not a UCI move.
    #[error(
        "{text:?} is not a UCI move: expected the from and to squares and an optional promotion piece (n, b, r, q), like e2e4 or e7e8q"
    )]
    Uci {
        /// The text.
        text: String,
    },
    /// Not a SAN move.
    #[error("{text:?} is not a SAN move (like e4, Nf3, exd5, O-O, e8=Q+)")]
    San {
        /// The text.
        text: String,
    },
    /// A SAN move that fits more than one legal move.
    #[error("{san} is ambiguous in position {fen}")]
    Ambiguous {
        /// The move.
        san: String,
        /// The position.
        fen: String,
    },
    /// A well-formed move that is not legal here.
    #[error(transparent)]
    Illegal(#[from] IllegalMove),
}

/// A chess move in the compact form of UCI: from, to, and the promotion
/// piece. Castling is the king's two-square move (`e1g1`), as in UCI for
/// standard chess. `Display` and `FromStr` use UCI; serde uses the UCI
/// string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChessMove {
    /// The square the piece leaves.
    pub from: Square,
    /// The square it goes to (for castling: the king's destination).
    pub to: Square,
    /// The piece a pawn promotes to.
    pub promotion: Option<Role>,
}

impl ChessMove {
    /// The compact form of a shakmaty move of standard chess.
    pub fn from_shakmaty(m: Move) -> ChessMove {
        match UciMove::from_standard(m) {
            UciMove::Normal {
                from,
                to,
                promotion,
            } => ChessMove {
                from,
                to,
                promotion,
            },
            // Standard chess has no drops; `from_standard` only makes `Put`
            // from `Move::Put`, which no standard position generates.
            other => unreachable!("standard chess move {m:?} gave UCI {other}"),
        }
    }

    /// The move as a shakmaty UCI move.
    pub fn to_uci(self) -> UciMove {
        UciMove::Normal {
            from: self.from,
            to: self.to,
            promotion: self.promotion,
        }
    }
}

impl fmt::Display for ChessMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_uci())
    }
}

impl fmt::Debug for ChessMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_uci())
    }
}

impl FromStr for ChessMove {
    type Err = NotationError;

    /// Parses UCI syntax (`e2e4`, `e7e8q`); legality needs a position, see
    /// [`Chess::parse_uci`].
    fn from_str(text: &str) -> Result<ChessMove, NotationError> {
        let error = || NotationError::Uci {
            text: text.to_string(),
        };
        let bytes = text.as_bytes();
        if !(bytes.len() == 4 || bytes.len() == 5) {
            return Err(error());
        }
        let from = Square::from_ascii(&bytes[0..2]).map_err(|_| error())?;
        let to = Square::from_ascii(&bytes[2..4]).map_err(|_| error())?;
        let promotion = match bytes.get(4) {
            None => None,
            Some(b'n') => Some(Role::Knight),
            Some(b'b') => Some(Role::Bishop),
            Some(b'r') => Some(Role::Rook),
            Some(b'q') => Some(Role::Queen),
            Some(_) => return Err(error()),
        };
        Ok(ChessMove {
            from,
            to,
            promotion,
        })
    }
}

impl serde::Serialize for ChessMove {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ChessMove {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ChessMove, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A chess game: the starting position, the moves played since, and what
/// the draw rules need. See the module docs for when it ends, the encoding
/// and the policy index.
#[derive(Clone, Debug)]
pub struct Chess {
    start: shakmaty::Chess,
    position: shakmaty::Chess,
    moves: Vec<ChessMove>,
    /// Zobrist hash of `position` (legal en passant only).
    hash: u64,
    /// Hashes of the positions since the last capture or pawn move (or the
    /// start), the current one last: all that repetition needs, as no
    /// earlier position can recur.
    since_zeroing: Vec<u64>,
    rules: DrawRules,
}

impl Default for Chess {
    fn default() -> Chess {
        Chess::new()
    }
}

impl Chess {
    /// The standard starting position, [`DrawRules::Automatic`].
    pub fn new() -> Chess {
        Chess::from_position(shakmaty::Chess::default())
    }

    /// A game starting at `position`, [`DrawRules::Automatic`]. Repetitions
    /// are counted from here (earlier positions are unknown).
    pub fn from_position(position: shakmaty::Chess) -> Chess {
        let hash = zobrist(&position);
        Chess {
            start: position.clone(),
            position,
            moves: Vec::new(),
            hash,
            since_zeroing: vec![hash],
            rules: DrawRules::Automatic,
        }
    }

    /// A game starting at the position of a FEN (standard castling).
    pub fn from_fen(fen: &str) -> Result<Chess, NotationError> {
        Ok(Chess::from_position(parse_fen(fen)?))
    }

    /// The same game under other draw rules.
    #[must_use]
    pub fn with_draw_rules(mut self, rules: DrawRules) -> Chess {
        self.rules = rules;
        self
    }

    /// Changes the draw rules.
    pub fn set_draw_rules(&mut self, rules: DrawRules) {
        self.rules = rules;
    }

    /// The draw rules.
    pub fn draw_rules(&self) -> DrawRules {
        self.rules
    }

    /// The current position, for everything shakmaty can say about it
    /// (`board().piece_at(sq)`, `checkers()`, `castles()`,
    /// `legal_ep_square()`, `legal_moves()`, `board().attacks_to(..)`, ...).
    pub fn as_shakmaty(&self) -> &shakmaty::Chess {
        &self.position
    }

    /// The position the game started from.
    pub fn start_position(&self) -> &shakmaty::Chess {
        &self.start
    }

    /// Whether the game started from the standard starting position (move
    /// counters included).
    pub fn starts_from_standard(&self) -> bool {
        self.start == shakmaty::Chess::default()
            && self.start.fullmoves().get() == 1
            && self.start.halfmoves() == 0
    }

    /// The moves played since the start.
    pub fn moves(&self) -> &[ChessMove] {
        &self.moves
    }

    /// The side to move in shakmaty's terms.
    pub fn turn(&self) -> Color {
        self.position.turn()
    }

    /// The current position as FEN (en passant square only when a capture
    /// there is legal, as python-chess writes it).
    pub fn fen(&self) -> String {
        fen_of(&self.position)
    }

    /// The starting position as FEN.
    pub fn start_fen(&self) -> String {
        fen_of(&self.start)
    }

    /// Plies since the last capture or pawn move (the FEN halfmove clock).
    pub fn halfmove_clock(&self) -> u32 {
        self.position.halfmoves()
    }

    /// How often the current position has occurred since the start
    /// (1 the first time).
    pub fn repetitions(&self) -> usize {
        self.since_zeroing
            .iter()
            .filter(|&&h| h == self.hash)
            .count()
    }

    /// The draws that end the game whatever the moves: insufficient
    /// material, and under [`DrawRules::Automatic`] the fifty-move rule and
    /// threefold repetition.
    fn drawn_by_rule(&self) -> Option<Termination> {
        if self.position.is_insufficient_material() {
            return Some(Termination::InsufficientMaterial);
        }
        match self.rules {
            DrawRules::Automatic => self.claimable_draw(),
            DrawRules::OnClaim => None,
        }
    }

    /// The draw a player could claim now (fifty-move rule first, then
    /// threefold repetition), whatever the draw rules.
    pub fn claimable_draw(&self) -> Option<Termination> {
        if self.position.halfmoves() >= 100 {
            Some(Termination::FiftyMoveRule)
        } else if self.repetitions() >= 3 {
            Some(Termination::ThreefoldRepetition)
        } else {
            None
        }
    }

    /// Why the game is over, or `None` while it goes on.
    pub fn termination(&self) -> Option<Termination> {
        if self.position.legal_moves().is_empty() {
            return Some(if self.position.is_check() {
                Termination::Checkmate
            } else {
                Termination::Stalemate
            });
        }
        self.drawn_by_rule()
    }

    /// The shakmaty move of `mv` here, or why it cannot be played.
    pub fn to_shakmaty_move(&self, mv: ChessMove) -> Result<Move, IllegalMove> {
        if let Some(end) = self.drawn_by_rule() {
            return Err(self.illegal(format!("{mv} (the game is over: {end})")));
        }
        mv.to_uci()
            .to_move(&self.position)
            .map_err(|_| self.illegal(mv.to_string()))
    }

    fn illegal(&self, mv: String) -> IllegalMove {
        IllegalMove {
            mv,
            position: self.fen(),
        }
    }

    /// Plays a move known to be legal here.
    fn play_legal(&mut self, m: Move) {
        let zeroing = m.is_zeroing();
        let next_hash =
            self.position
                .update_zobrist_hash(Zobrist64(self.hash), m, EnPassantMode::Legal);
        self.position.play_unchecked(m);
        self.hash = match next_hash {
            Some(Zobrist64(hash)) => hash,
            None => zobrist(&self.position),
        };
        if zeroing {
            self.since_zeroing.clear();
        }
        self.since_zeroing.push(self.hash);
        self.moves.push(ChessMove::from_shakmaty(m));
    }

    /// Plays a shakmaty move, or returns an error if it is not legal here.
    pub fn play_shakmaty(&mut self, m: Move) -> Result<(), IllegalMove> {
        self.play(ChessMove::from_shakmaty(m))
    }

    /// The move in SAN with its check (`+`) or mate (`#`) suffix.
    pub fn san(&self, mv: ChessMove) -> Result<String, IllegalMove> {
        let m = self.to_shakmaty_move(mv)?;
        Ok(SanPlus::from_move(self.position.clone(), m).to_string())
    }

    /// The legal move written `text` in SAN (check and mate suffixes are
    /// optional and not checked).
    pub fn parse_san(&self, text: &str) -> Result<ChessMove, NotationError> {
        let san = San::from_ascii(text.as_bytes()).map_err(|_| NotationError::San {
            text: text.to_string(),
        })?;
        self.resolve_san(san, text).map(ChessMove::from_shakmaty)
    }

    /// The legal move of a parsed SAN (`text` names it in errors).
    fn resolve_san(&self, san: San, text: &str) -> Result<Move, NotationError> {
        if let Some(end) = self.drawn_by_rule() {
            return Err(self
                .illegal(format!("{text} (the game is over: {end})"))
                .into());
        }
        match san.to_move(&self.position) {
            Ok(m) => Ok(m),
            Err(SanError::AmbiguousSan) => Err(NotationError::Ambiguous {
                san: text.to_string(),
                fen: self.fen(),
            }),
            Err(SanError::IllegalSan) => Err(self.illegal(text.to_string()).into()),
        }
    }

    /// Plays a move given in SAN and returns it.
    pub fn play_san(&mut self, text: &str) -> Result<ChessMove, NotationError> {
        let san = San::from_ascii(text.as_bytes()).map_err(|_| NotationError::San {
            text: text.to_string(),
        })?;
        let m = self.resolve_san(san, text)?;
        self.play_legal(m);
        Ok(ChessMove::from_shakmaty(m))
    }

    /// The legal move written `text` in UCI.
    pub fn parse_uci(&self, text: &str) -> Result<ChessMove, NotationError> {
        let mv: ChessMove = text.parse()?;
        self.to_shakmaty_move(mv)?;
        Ok(mv)
    }

    /// Plays a move given in UCI and returns it.
    pub fn play_uci(&mut self, text: &str) -> Result<ChessMove, NotationError> {
        let mv = self.parse_uci(text)?;
        self.play(mv)?;
        Ok(mv)
    }

    /// The positions of the game: the start, then the position after each
    /// move (`ply() + 1` of them).
    pub fn positions(&self) -> Vec<shakmaty::Chess> {
        let mut position = self.start.clone();
        let mut out = Vec::with_capacity(self.moves.len() + 1);
        out.push(position.clone());
        for &mv in &self.moves {
            let m = mv
                .to_uci()
                .to_move(&position)
                .expect("moves in the history were legal when played");
            position.play_unchecked(m);
            out.push(position.clone());
        }
        out
    }

    /// The moves of the game in SAN with check and mate suffixes.
    pub fn san_moves(&self) -> Vec<String> {
        let mut position = self.start.clone();
        self.moves
            .iter()
            .map(|&mv| {
                let m = mv
                    .to_uci()
                    .to_move(&position)
                    .expect("moves in the history were legal when played");
                SanPlus::from_move_and_play_unchecked(&mut position, m).to_string()
            })
            .collect()
    }

    /// A legal move chosen uniformly at random, or `None` when the game is
    /// over. Draws one number from `rng` per move.
    pub fn random_move<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Option<ChessMove> {
        self.random_shakmaty_move(rng).map(ChessMove::from_shakmaty)
    }

    fn random_shakmaty_move<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> Option<Move> {
        if self.drawn_by_rule().is_some() {
            return None;
        }
        let moves = self.position.legal_moves();
        if moves.is_empty() {
            return None;
        }
        let index = rand::RngExt::random_range(rng, 0..moves.len());
        Some(moves[index])
    }

    /// The legal move with policy index `index`, if there is one.
    pub fn action_move(&self, index: usize) -> Option<ChessMove> {
        let turn = self.position.turn();
        let mv = if index < UNDERPROMOTION_BASE {
            let from = relative_square(Square::new((index / 64) as u32), turn);
            let to = relative_square(Square::new((index % 64) as u32), turn);
            let is_pawn = self.position.board().role_at(from) == Some(Role::Pawn);
            let promotion = (is_pawn && to.rank() == turn.fold_wb(Rank::Eighth, Rank::First))
                .then_some(Role::Queen);
            ChessMove {
                from,
                to,
                promotion,
            }
        } else if index < NUM_ACTIONS {
            let rest = index - UNDERPROMOTION_BASE;
            let (file, direction, piece) = (rest / 9, rest / 3 % 3, rest % 3);
            let to_file = (file + direction).checked_sub(1).filter(|&f| f < 8)?;
            let from = relative_square(Square::new((6 * 8 + file) as u32), turn);
            let to = relative_square(Square::new((7 * 8 + to_file) as u32), turn);
            ChessMove {
                from,
                to,
                promotion: Some(UNDERPROMOTIONS[piece]),
            }
        } else {
            return None;
        };
        self.to_shakmaty_move(mv).ok().map(|_| mv)
    }
}

/// The square as seen by `turn`: itself for White, flipped vertically for
/// Black (an involution, so it also maps back).
fn relative_square(square: Square, turn: Color) -> Square {
    match turn {
        Color::White => square,
        Color::Black => square.flip_vertical(),
    }
}

/// The position of a FEN, with standard castling.
pub fn parse_fen(fen: &str) -> Result<shakmaty::Chess, NotationError> {
    let error = |reason: String| NotationError::Fen {
        fen: fen.to_string(),
        reason,
    };
    let parsed = Fen::from_ascii(fen.trim().as_bytes()).map_err(|e| error(e.to_string()))?;
    parsed
        .into_position(CastlingMode::Standard)
        .map_err(|e| error(e.to_string()))
}

/// The FEN of a position (en passant square only when a capture is legal).
pub fn fen_of(position: &shakmaty::Chess) -> String {
    Fen::from_position(position, EnPassantMode::Legal).to_string()
}

/// The Zobrist64 hash of a position (en passant only when a capture is
/// legal, so positions equal under the repetition rule hash the same).
pub fn zobrist(position: &shakmaty::Chess) -> u64 {
    let Zobrist64(hash) = position.zobrist_hash(EnPassantMode::Legal);
    hash
}

/// A game of uniformly random legal moves from the start, at most
/// `max_plies` long (shorter if it ends), under [`DrawRules::Automatic`].
pub fn random_game<R: rand::Rng + ?Sized>(rng: &mut R, max_plies: usize) -> Chess {
    let mut game = Chess::new();
    while game.ply() < max_plies {
        let Some(m) = game.random_shakmaty_move(rng) else {
            break;
        };
        game.play_legal(m);
    }
    game
}

impl Game for Chess {
    type Move = ChessMove;

    /// In shakmaty's generation order; none once the game is over.
    fn legal_moves_into(&self, out: &mut Vec<ChessMove>) {
        out.clear();
        if self.drawn_by_rule().is_some() {
            return;
        }
        out.extend(
            self.position
                .legal_moves()
                .into_iter()
                .map(ChessMove::from_shakmaty),
        );
    }

    fn play(&mut self, mv: ChessMove) -> Result<(), IllegalMove> {
        let m = self.to_shakmaty_move(mv)?;
        self.play_legal(m);
        Ok(())
    }

    fn outcome(&self) -> Option<Outcome> {
        self.termination().map(|end| match end {
            // The side to move is mated: the other side won.
            Termination::Checkmate => Outcome::Win(player_of(!self.position.turn())),
            _ => Outcome::Draw,
        })
    }

    fn to_move(&self) -> Player {
        player_of(self.position.turn())
    }

    fn ply(&self) -> usize {
        self.moves.len()
    }

    /// shakmaty's Zobrist64 of the position: pieces, side to move, castling
    /// rights and a legal en-passant file (not the move clocks or the
    /// repetition count).
    fn position_hash(&self) -> u64 {
        self.hash
    }

    fn encoding_planes(&self) -> usize {
        ENCODING_PLANES
    }

    fn squares(&self) -> usize {
        SQUARES
    }

    fn encode(&self, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            ENCODING_PLANES * SQUARES,
            "encode needs encoding_planes() * squares() = 768 values"
        );
        out.fill(0.0);
        let turn = self.position.turn();
        let board = self.position.board();
        for square in board.occupied() {
            let piece = board
                .piece_at(square)
                .expect("occupied squares hold a piece");
            let role_plane = piece.role as usize - Role::Pawn as usize;
            let plane = if piece.color == turn {
                role_plane
            } else {
                role_plane + 6
            };
            out[plane * SQUARES + relative_square(square, turn).to_usize()] = 1.0;
        }
    }

    fn num_actions(&self) -> usize {
        NUM_ACTIONS
    }

    fn action_index(&self, mv: ChessMove) -> usize {
        let turn = self.position.turn();
        let from = relative_square(mv.from, turn).to_usize();
        let to = relative_square(mv.to, turn).to_usize();
        match mv.promotion {
            Some(role @ (Role::Knight | Role::Bishop | Role::Rook)) => {
                let piece = UNDERPROMOTIONS
                    .iter()
                    .position(|&r| r == role)
                    .expect("the match arm admits only underpromotion pieces");
                let (from_file, to_file) = (from % 8, to % 8);
                // A legal underpromotion moves to a neighbouring or the same
                // file; clamping keeps even an illegal move in range.
                let direction = (to_file + 1).saturating_sub(from_file).min(2);
                UNDERPROMOTION_BASE + (from_file * 3 + direction) * 3 + piece
            }
            _ => from * 64 + to,
        }
    }

    fn position_string(&self) -> String {
        self.fen()
    }
}

/// The player of a colour: White moves first.
pub fn player_of(color: Color) -> Player {
    match color {
        Color::White => Player::First,
        Color::Black => Player::Second,
    }
}

/// The colour of a player: `First` is White.
pub fn color_of(player: Player) -> Color {
    match player {
        Player::First => Color::White,
        Player::Second => Color::Black,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn play_all(game: &mut Chess, uci: &str) {
        for mv in uci.split_whitespace() {
            game.play_uci(mv).unwrap_or_else(|e| panic!("{mv}: {e}"));
        }
    }

    #[test]
    fn start_position_basics() {
        let game = Chess::new();
        assert_eq!(game.legal_moves().len(), 20);
        assert_eq!(game.to_move(), Player::First);
        assert_eq!(game.ply(), 0);
        assert_eq!(game.outcome(), None);
        assert_eq!(
            game.position_string(),
            "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1"
        );
        assert!(game.starts_from_standard());
    }

    #[test]
    fn uci_display_and_parse() {
        let mv: ChessMove = "e7e8q".parse().unwrap();
        assert_eq!(mv.promotion, Some(Role::Queen));
        assert_eq!(mv.to_string(), "e7e8q");
        for bad in ["e2e9", "e2", "e2e4k", "0000", "e2e4qq", "E2E4"] {
            assert!(bad.parse::<ChessMove>().is_err(), "{bad} parsed");
        }
        let json = serde_json::to_string(&mv).unwrap();
        assert_eq!(json, "\"e7e8q\"");
        assert_eq!(serde_json::from_str::<ChessMove>(&json).unwrap(), mv);
    }

    #[test]
    fn castling_is_the_kings_two_square_move() {
        let mut game = Chess::new();
        play_all(&mut game, "e2e4 e7e5 g1f3 b8c6 f1c4 g8f6");
        let castle = game.parse_san("O-O").unwrap();
        assert_eq!(castle.to_string(), "e1g1");
        assert_eq!(game.san(castle).unwrap(), "O-O");
        game.play(castle).unwrap();
        assert_eq!(
            game.as_shakmaty().board().role_at(Square::F1),
            Some(Role::Rook)
        );
    }

    #[test]
    fn illegal_move_is_an_error_and_changes_nothing() {
        let mut game = Chess::new();
        let before = game.position_hash();
        let err = game.play("e2e5".parse().unwrap()).unwrap_err();
        assert_eq!(err.mv, "e2e5");
        assert_eq!(game.position_hash(), before);
        assert_eq!(game.ply(), 0);
        assert!(matches!(
            game.parse_san("Nf6"),
            Err(NotationError::Illegal(_))
        ));
        assert!(matches!(
            game.parse_san("Zz9"),
            Err(NotationError::San { .. })
        ));
    }

    #[test]
    fn ambiguous_san_is_named() {
        let game = Chess::from_fen("4k3/8/8/8/8/8/4K3/R6R w - - 0 1").unwrap();
        assert!(matches!(
            game.parse_san("Rd1"),
            Err(NotationError::Ambiguous { .. })
        ));
        assert_eq!(game.parse_san("Rad1").unwrap().to_string(), "a1d1");
    }

    #[test]
    fn fools_mate_is_a_black_win() {
        let mut game = Chess::new();
        for san in ["f3", "e5", "g4"] {
            game.play_san(san).unwrap();
        }
        let mate = game.parse_san("Qh4").unwrap();
        assert_eq!(game.san(mate).unwrap(), "Qh4#");
        game.play(mate).unwrap();
        assert_eq!(game.termination(), Some(Termination::Checkmate));
        assert_eq!(game.outcome(), Some(Outcome::Win(Player::Second)));
        assert!(game.legal_moves().is_empty());
    }

    #[test]
    fn stalemate_and_insufficient_material_are_draws() {
        let stalemate = Chess::from_fen("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1").unwrap();
        assert_eq!(stalemate.termination(), Some(Termination::Stalemate));
        assert_eq!(stalemate.outcome(), Some(Outcome::Draw));
        let bare = Chess::from_fen("8/8/4k3/8/8/3NK3/8/8 w - - 0 1").unwrap();
        assert_eq!(bare.termination(), Some(Termination::InsufficientMaterial));
        assert!(bare.legal_moves().is_empty());
        let rook = Chess::from_fen("8/8/4k3/8/8/3RK3/8/8 w - - 0 1").unwrap();
        assert_eq!(rook.termination(), None);
    }

    #[test]
    fn threefold_repetition_depends_on_the_rules() {
        let shuffle = "g1f3 g8f6 f3g1 f6g8 g1f3 g8f6 f3g1 f6g8";
        let mut auto = Chess::new();
        play_all(&mut auto, shuffle);
        // The start position is back for the third time.
        assert_eq!(auto.repetitions(), 3);
        assert_eq!(auto.termination(), Some(Termination::ThreefoldRepetition));
        assert_eq!(auto.outcome(), Some(Outcome::Draw));
        assert!(auto.legal_moves().is_empty());
        assert!(auto.play("e2e4".parse().unwrap()).is_err());

        let mut claim = Chess::new().with_draw_rules(DrawRules::OnClaim);
        play_all(&mut claim, shuffle);
        assert_eq!(claim.termination(), None);
        assert_eq!(
            claim.claimable_draw(),
            Some(Termination::ThreefoldRepetition)
        );
        claim.play_uci("e2e4").unwrap();
        assert_eq!(claim.claimable_draw(), None);
    }

    #[test]
    fn twofold_is_not_a_draw() {
        let mut game = Chess::new();
        play_all(&mut game, "g1f3 g8f6 f3g1 f6g8");
        assert_eq!(game.repetitions(), 2);
        assert_eq!(game.termination(), None);
    }

    #[test]
    fn fifty_move_rule_at_100_plies() {
        let mut game = Chess::from_fen("8/8/4k3/8/8/3RK3/8/8 w - - 99 80").unwrap();
        assert_eq!(game.termination(), None);
        game.play_uci("d3d1").unwrap();
        assert_eq!(game.halfmove_clock(), 100);
        assert_eq!(game.termination(), Some(Termination::FiftyMoveRule));
        let claim = Chess::from_fen("8/8/4k3/8/8/3RK3/8/8 b - - 100 80")
            .unwrap()
            .with_draw_rules(DrawRules::OnClaim);
        assert_eq!(claim.termination(), None);
        assert_eq!(claim.claimable_draw(), Some(Termination::FiftyMoveRule));
    }

    #[test]
    fn mate_on_the_hundredth_ply_wins() {
        // Rh1-h8 is mate and the hundredth reversible ply.
        let mut game = Chess::from_fen("k7/8/1K6/8/8/8/8/7R w - - 99 90").unwrap();
        game.play_uci("h1h8").unwrap();
        assert_eq!(game.halfmove_clock(), 100);
        assert_eq!(game.termination(), Some(Termination::Checkmate));
        assert_eq!(game.outcome(), Some(Outcome::Win(Player::First)));
    }

    #[test]
    fn hash_is_incremental_and_matches_a_fresh_position() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..20 {
            let game = random_game(&mut rng, 120);
            assert_eq!(game.position_hash(), zobrist(game.as_shakmaty()));
            let again = Chess::from_fen(&game.fen()).unwrap();
            assert_eq!(again.position_hash(), game.position_hash());
        }
    }

    #[test]
    fn encoding_is_relative_to_the_mover() {
        let mut out = vec![0.0; 768];
        let mut game = Chess::new();
        game.encode(&mut out);
        // White to move: own pawns on rank 2 (indices 8..16), own king on e1 (4).
        assert!((8..16).all(|i| out[i] == 1.0));
        assert_eq!(out[5 * 64 + 4], 1.0);
        // Opponent pawns (plane 6) on rank 7 (48..56).
        assert!((48..56).all(|i| out[6 * 64 + i] == 1.0));
        let white_view = out.clone();
        game.play_uci("g1f3").unwrap();
        game.encode(&mut out);
        // Black to move: Black's own pawns also on indices 8..16, king on e8 -> 4.
        assert!((8..16).all(|i| out[i] == 1.0));
        assert_eq!(out[5 * 64 + 4], 1.0);
        // White's knight on f3 is an opponent knight (plane 7) at f6 -> 45.
        assert_eq!(out[7 * 64 + 45], 1.0);
        assert_eq!(out[7 * 64 + 6], 0.0);
        assert_eq!(out.iter().sum::<f32>(), 32.0);
        assert_ne!(out, white_view);
    }

    #[test]
    fn action_indices_of_promotions() {
        let game = Chess::from_fen("1n2k3/P7/8/8/8/8/8/4K3 w - - 0 1").unwrap();
        let moves = game.legal_moves();
        let mut indices: Vec<usize> = moves.iter().map(|&m| game.action_index(m)).collect();
        indices.sort_unstable();
        indices.dedup();
        assert_eq!(indices.len(), moves.len());
        // a7b8n: file a (0), capture towards the h-file (2), knight (0).
        let capture_knight: ChessMove = "a7b8n".parse().unwrap();
        assert_eq!(game.action_index(capture_knight), 4096 + 2 * 3);
        // a7a8q: the plain from-to pair.
        let push_queen: ChessMove = "a7a8q".parse().unwrap();
        assert_eq!(game.action_index(push_queen), 48 * 64 + 56);
        for &mv in &moves {
            assert_eq!(game.action_move(game.action_index(mv)), Some(mv));
        }
        // a-file pawn capturing towards the a-file: no such move.
        assert_eq!(game.action_move(UNDERPROMOTION_BASE), None);
        assert_eq!(game.action_move(NUM_ACTIONS), None);
    }

    #[test]
    fn black_actions_mirror_white() {
        let mut game = Chess::new();
        let white_e4 = game.action_index("e2e4".parse().unwrap());
        game.play_uci("g1f3").unwrap();
        assert_eq!(game.action_index("e7e5".parse().unwrap()), white_e4);
        assert_eq!(game.action_move(white_e4).unwrap().to_string(), "e7e5");
    }

    #[test]
    fn fen_errors_name_the_fen() {
        let err = Chess::from_fen("rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP w KQkq - 0 1").unwrap_err();
        assert!(matches!(err, NotationError::Fen { .. }));
        assert!(err.to_string().contains("PPPPPPPP w"), "{err}");
        // Well-formed but impossible: both kings missing.
        assert!(Chess::from_fen("8/8/8/8/8/8/8/8 w - - 0 1").is_err());
    }

    #[test]
    fn random_games_are_seeded() {
        let a = random_game(&mut ChaCha8Rng::seed_from_u64(3), 200);
        let b = random_game(&mut ChaCha8Rng::seed_from_u64(3), 200);
        let c = random_game(&mut ChaCha8Rng::seed_from_u64(4), 200);
        assert_eq!(a.moves(), b.moves());
        assert_ne!(a.moves(), c.moves());
    }
}
