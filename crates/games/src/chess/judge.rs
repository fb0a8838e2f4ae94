//! Judging chess moves: how good is a move, in centipawns, by Stockfish or
//! by the built-in alpha-beta search. The question it answers is the one of
//! skill-conditioned models: is the move a high-rated player picks the
//! stronger one?
//!
//! A [`Score`] is the value of playing a move, from the mover's point of
//! view, in centipawns. Forced mates map to [`MATE_SCORE`] less the plies
//! to mate (counting the judged move): a mating move scores
//! `MATE_SCORE - 1`, a move that lets the opponent mate at once
//! `-(MATE_SCORE - 2)`; centipawn scores are clamped to
//! [`MAX_CENTIPAWNS`], so every mate outranks every material edge.
//!
//! ```no_run
//! use kibitzer_games::chess::Chess;
//! use kibitzer_games::chess::judge::MoveJudge;
//! use kibitzer_games::players::SearchLimit;
//!
//! let mut judge = MoveJudge::stockfish(SearchLimit::Nodes(20_000))?;
//! let position = Chess::new();
//! let e4 = position.parse_uci("e2e4")?;
//! let a3 = position.parse_uci("a2a3")?;
//! println!("{}: e4 {} a3", judge.describe(), match judge.compare(&position, e4, a3)? {
//!     std::cmp::Ordering::Greater => "beats",
//!     std::cmp::Ordering::Equal => "equals",
//!     std::cmp::Ordering::Less => "loses to",
//! });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::cmp::Ordering;
use std::fmt;

use super::{Chess, ChessMove};
use crate::game::{Game, Outcome};
use crate::players::selfplay::no_engine_hint;
use crate::players::uci::start_configured;
use crate::players::{
    Heuristic, SearchLimit, UciConfig, UciEngine, UciError, UciScore, WIN_SCORE, alphabeta,
    default_engine_path,
};

/// The score of a move that mates at once; a mate `n` plies away (the
/// judged move being ply 1) scores `MATE_SCORE - n`, being mated after `n`
/// plies `-(MATE_SCORE - n)`.
pub const MATE_SCORE: i32 = 100_000;

/// The largest centipawn score: engine and search scores beyond it are
/// clamped, so they stay below every mate.
pub const MAX_CENTIPAWNS: i32 = 50_000;

/// Mates further than this many plies are scored as if this far (they
/// still outrank every centipawn score).
const MAX_MATE_PLIES: i32 = MATE_SCORE - MAX_CENTIPAWNS - 1;

/// The value of a move for the side that plays it, in centipawns (see the
/// module docs for mates). Larger is better; scores compare as numbers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Score(i32);

impl Score {
    /// A material or positional score, clamped to `±MAX_CENTIPAWNS`.
    pub fn from_centipawns(centipawns: i32) -> Score {
        Score(centipawns.clamp(-MAX_CENTIPAWNS, MAX_CENTIPAWNS))
    }

    /// The mover mates `plies` plies from the judged position (1: the
    /// judged move mates).
    pub fn mate_in(plies: u32) -> Score {
        Score(MATE_SCORE - plies_value(plies))
    }

    /// The mover is mated `plies` plies from the judged position (2: the
    /// opponent mates right after the judged move).
    pub fn mated_in(plies: u32) -> Score {
        Score(-(MATE_SCORE - plies_value(plies)))
    }

    /// The score as one number: centipawns, or `±(MATE_SCORE - plies)`.
    pub fn centipawns(self) -> i32 {
        self.0
    }

    /// `Some(n)` when the mover mates in `n` plies, `Some(-n)` when it is
    /// mated in `n`, `None` for a centipawn score.
    pub fn mate_plies(self) -> Option<i32> {
        (self.0.abs() > MAX_CENTIPAWNS).then(|| self.0.signum() * (MATE_SCORE - self.0.abs()))
    }

    /// The mover's score of a move from an engine's `score` in the position
    /// after it, where the opponent is to move (so the sign flips, and a
    /// mate in `y` of the engine's moves is `2y` plies from the judged
    /// position, a mated in `y` is `2y + 1`).
    pub fn after_move(engine: UciScore) -> Score {
        match engine {
            UciScore::Centipawns(cp) => Score::from_centipawns(cp.saturating_neg()),
            // The opponent mates with its y-th move: ply 2y from here.
            UciScore::Mate(y) if y > 0 => Score::mated_in(y.unsigned_abs().saturating_mul(2)),
            // The opponent is mated after the mover's y-th reply (0: by the
            // judged move itself).
            UciScore::Mate(y) => {
                Score::mate_in(y.unsigned_abs().saturating_mul(2).saturating_add(1))
            }
        }
    }
}

fn plies_value(plies: u32) -> i32 {
    i32::try_from(plies).map_or(MAX_MATE_PLIES, |p| p.clamp(1, MAX_MATE_PLIES))
}

impl fmt::Display for Score {
    /// `+125 cp`, `mate in 3 plies`, `mated in 2 plies`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mate_plies() {
            Some(n) if n > 0 => write!(f, "mate in {n} plies"),
            Some(n) => write!(f, "mated in {} plies", -n),
            None => write!(f, "{:+} cp", self.0),
        }
    }
}

/// Why a move could not be judged.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    /// No Stockfish is installed: what to install.
    #[error("move judge: {hint}")]
    NoEngine {
        /// How to install one, and the built-in alternatives.
        hint: String,
    },
    /// The engine failed (died, hung, gave no score).
    #[error("move judge {judge}: {source}")]
    Engine {
        /// The judge's description.
        judge: String,
        /// What failed.
        #[source]
        source: UciError,
    },
    /// The move is not legal in the position (or the game is over there).
    #[error("move {mv} is not legal in {fen}{}; expected one of its legal moves", if *over { " (the game is over)" } else { "" })]
    IllegalMove {
        /// The move, in UCI.
        mv: String,
        /// The position, as FEN.
        fen: String,
        /// Whether the game is over in the position.
        over: bool,
    },
    /// A search depth of 0.
    #[error("alpha-beta move judge: depth 0; expected a depth of at least 1 ply")]
    ZeroDepth,
}

/// Scores chess moves: an external UCI engine (Stockfish) or the built-in
/// alpha-beta on material ([`crate::players::alphabeta`] with the chess
/// [`Heuristic`]). Build it with [`MoveJudge::stockfish`],
/// [`MoveJudge::engine`] or [`MoveJudge::search`].
pub enum MoveJudge {
    /// A running engine, searching each position after the move to `limit`
    /// from a cleared hash (`ucinewgame`), so a score does not depend on
    /// what was judged before.
    Engine {
        /// The engine.
        engine: UciEngine,
        /// The search per judged move.
        limit: SearchLimit,
    },
    /// Alpha-beta to `depth` plies counting the judged move (1: material
    /// right after it; 2: and the opponent's best reply), scored by
    /// material in centipawns.
    Search {
        /// Plies searched, at least 1.
        depth: u32,
    },
}

impl fmt::Debug for MoveJudge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl MoveJudge {
    /// Stockfish at [`default_engine_path`] (`$KIBITZER_STOCKFISH`, the
    /// `PATH`, `/usr/games`), one thread, 16 MiB hash, full strength,
    /// searching `limit` per move. Without an engine the error says how to
    /// install one.
    pub fn stockfish(limit: SearchLimit) -> Result<MoveJudge, JudgeError> {
        let path = default_engine_path().ok_or_else(|| JudgeError::NoEngine {
            hint: no_engine_hint(),
        })?;
        MoveJudge::engine(&UciConfig {
            path,
            limit,
            ..UciConfig::stockfish()
        })
    }

    /// The engine of `config` at its strength (`skill_level` and `elo` are
    /// applied: leave them `None` to judge at full strength), searching
    /// `config.limit` per move.
    pub fn engine(config: &UciConfig) -> Result<MoveJudge, JudgeError> {
        let engine = start_configured(config).map_err(|source| JudgeError::Engine {
            judge: config.describe(),
            source,
        })?;
        Ok(MoveJudge::Engine {
            engine,
            limit: config.limit,
        })
    }

    /// The built-in alpha-beta to `depth` plies (see [`MoveJudge::Search`]);
    /// depth 0 is an error.
    pub fn search(depth: u32) -> Result<MoveJudge, JudgeError> {
        if depth == 0 {
            return Err(JudgeError::ZeroDepth);
        }
        Ok(MoveJudge::Search { depth })
    }

    /// What judges, for reports: `Stockfish 16 at 20000 nodes`,
    /// `alpha-beta depth 2 (material)`.
    pub fn describe(&self) -> String {
        match self {
            MoveJudge::Engine { engine, limit } => {
                let name = if engine.name().is_empty() {
                    engine.path().display().to_string()
                } else {
                    engine.name().to_owned()
                };
                let limit = match limit {
                    SearchLimit::Nodes(nodes) => format!("{nodes} nodes"),
                    SearchLimit::MoveTimeMs(ms) => format!("{ms} ms"),
                    SearchLimit::Depth(depth) => format!("depth {depth}"),
                };
                format!("{name} at {limit}")
            }
            MoveJudge::Search { depth } => format!("alpha-beta depth {depth} (material)"),
        }
    }

    /// The value of playing `mv` in `position` for the side to move there
    /// (see [`Score`]). A move that ends the game scores without a search:
    /// checkmate `MATE_SCORE - 1`, a draw (stalemate, insufficient material,
    /// and under [`super::DrawRules::Automatic`] repetition and the
    /// fifty-move rule) 0. The engine sees the game's moves from its start,
    /// so it knows about repetitions.
    pub fn score_move(&mut self, position: &Chess, mv: ChessMove) -> Result<Score, JudgeError> {
        let illegal = || JudgeError::IllegalMove {
            mv: mv.to_string(),
            fen: position.fen(),
            over: position.outcome().is_some(),
        };
        if position.outcome().is_some() || !position.legal_moves().contains(&mv) {
            return Err(illegal());
        }
        let mover = position.to_move();
        let mut after = position.clone();
        after.play(mv).map_err(|_| illegal())?;
        match after.outcome() {
            Some(Outcome::Win(winner)) if winner == mover => return Ok(Score::mate_in(1)),
            // A move never loses on the spot; kept for completeness.
            Some(Outcome::Win(_)) => return Ok(Score::mated_in(1)),
            Some(Outcome::Draw) => return Ok(Score::from_centipawns(0)),
            None => {}
        }
        match self {
            MoveJudge::Search { depth } => Ok(search_score(&after, *depth, mover)),
            MoveJudge::Engine { engine, limit } => {
                let moves: Vec<String> = after.moves().iter().map(ToString::to_string).collect();
                let start = after.start_fen();
                let limit = *limit;
                let found = engine
                    .new_game()
                    .and_then(|()| engine.evaluate(&start, &moves, limit));
                match found {
                    Ok(found) => Ok(Score::after_move(found.score)),
                    Err(source) => Err(JudgeError::Engine {
                        judge: self.describe(),
                        source,
                    }),
                }
            }
        }
    }

    /// Which of `a` and `b` is the stronger move in `position`: `Greater`
    /// when `a` scores higher, `Less` when `b` does, `Equal` on a tie.
    pub fn compare(
        &mut self,
        position: &Chess,
        a: ChessMove,
        b: ChessMove,
    ) -> Result<Ordering, JudgeError> {
        Ok(self
            .score_move(position, a)?
            .cmp(&self.score_move(position, b)?))
    }
}

/// The built-in search's score of the position `after` the judged move, not
/// over, for `mover` (who just moved).
fn search_score(after: &Chess, depth: u32, mover: crate::game::Player) -> Score {
    if depth <= 1 {
        return Score::from_centipawns(after.evaluate(mover));
    }
    // The opponent's best, `depth - 1` plies deep, from its point of view.
    let reply = alphabeta(after, depth - 1).score;
    if reply.abs() > WIN_SCORE / 2 {
        // A forced result `WIN_SCORE - reply.abs()` plies after the judged
        // move.
        let plies = u32::try_from(WIN_SCORE - reply.abs())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        if reply > 0 {
            Score::mated_in(plies)
        } else {
            Score::mate_in(plies)
        }
    } else {
        Score::from_centipawns(-reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// White's rook takes a hanging queen (d1xd5), or plays a quiet move.
    const HANGING_QUEEN: &str = "4k3/8/8/3q4/8/8/8/3RK3 w - - 0 1";
    /// Ra8 mates on the back rank; Kxh2 wins a rook; Ra2 is quiet.
    const BACK_RANK: &str = "6k1/5ppp/8/8/8/8/7r/R5K1 w - - 0 1";
    /// Black to move (the sign check): Black's rook takes White's hanging
    /// queen (d8xd1).
    const BLACK_TAKES: &str = "3rk3/8/8/8/8/8/P7/3Q2K1 b - - 0 1";
    /// Ra7?? lets Black mate on the back rank (Re1#); h3 makes room.
    const BACK_RANK_BLUNDER: &str = "4r1k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1";

    fn mv(position: &Chess, uci: &str) -> ChessMove {
        position
            .parse_uci(uci)
            .expect("a legal move in the test position")
    }

    /// The judge's verdicts on the test positions that every judge must
    /// share.
    fn check_judge(judge: &mut MoveJudge) {
        let queen = Chess::from_fen(HANGING_QUEEN).expect("valid FEN");
        let take = judge
            .score_move(&queen, mv(&queen, "d1d5"))
            .expect("judged");
        let quiet = judge
            .score_move(&queen, mv(&queen, "e1f2"))
            .expect("judged");
        assert!(
            take.centipawns() > 300 && take > quiet,
            "{}: Rxd5 {take}, Kf2 {quiet}",
            judge.describe()
        );
        assert_eq!(
            judge
                .compare(&queen, mv(&queen, "d1d5"), mv(&queen, "e1f2"))
                .expect("judged"),
            Ordering::Greater
        );
        assert_eq!(
            judge
                .compare(&queen, mv(&queen, "e1f2"), mv(&queen, "d1d5"))
                .expect("judged"),
            Ordering::Less
        );

        let black = Chess::from_fen(BLACK_TAKES).expect("valid FEN");
        let take = judge
            .score_move(&black, mv(&black, "d8d1"))
            .expect("judged");
        assert!(
            take.centipawns() > 300,
            "{}: Black's Rxd1 {take}",
            judge.describe()
        );

        let back_rank = Chess::from_fen(BACK_RANK).expect("valid FEN");
        let mate = judge
            .score_move(&back_rank, mv(&back_rank, "a1a8"))
            .expect("judged");
        let rook = judge
            .score_move(&back_rank, mv(&back_rank, "g1h2"))
            .expect("judged");
        let quiet = judge
            .score_move(&back_rank, mv(&back_rank, "a1a2"))
            .expect("judged");
        assert_eq!(mate, Score::mate_in(1), "{}", judge.describe());
        assert_eq!(mate.mate_plies(), Some(1));
        assert!(
            mate > rook && rook > quiet,
            "{}: Ra8# {mate}, Kxh2 {rook}, Ra2 {quiet}",
            judge.describe()
        );
        let error = judge
            .score_move(&back_rank, mv(&queen, "d1d5"))
            .expect_err("not legal here");
        assert!(
            error.to_string().contains("d1d5") && error.to_string().contains(BACK_RANK),
            "{error}"
        );
    }

    #[test]
    fn the_search_judge_prefers_material_and_mate() {
        for depth in [1, 2, 3] {
            let mut judge = MoveJudge::search(depth).expect("a depth");
            check_judge(&mut judge);
        }
        let mut judge = MoveJudge::search(2).expect("a depth");
        assert_eq!(judge.describe(), "alpha-beta depth 2 (material)");
        // Depth 1 counts material after the move; depth 2 also sees the
        // rook that Kf2 leaves hanging (Qxd1).
        let queen = Chess::from_fen(HANGING_QUEEN).expect("valid FEN");
        let quiet = mv(&queen, "e1f2");
        assert_eq!(
            judge.score_move(&queen, quiet).expect("judged"),
            Score::from_centipawns(-900)
        );
        let mut shallow = MoveJudge::search(1).expect("a depth");
        assert_eq!(
            shallow.score_move(&queen, quiet).expect("judged"),
            Score::from_centipawns(-400)
        );
        assert!(matches!(MoveJudge::search(0), Err(JudgeError::ZeroDepth)));
    }

    #[test]
    fn the_search_judge_sees_being_mated() {
        let position = Chess::from_fen(BACK_RANK_BLUNDER).expect("valid FEN");
        for depth in [2, 3] {
            let mut judge = MoveJudge::search(depth).expect("a depth");
            let blunder = judge
                .score_move(&position, mv(&position, "a1a7"))
                .expect("judged");
            assert_eq!(blunder, Score::mated_in(2), "depth {depth}: {blunder}");
            assert_eq!(blunder.mate_plies(), Some(-2));
            let luft = judge
                .score_move(&position, mv(&position, "h2h3"))
                .expect("judged");
            assert_eq!(luft.mate_plies(), None, "depth {depth}: {luft}");
            assert!(luft > blunder, "h3 {luft}, Ra7 {blunder}");
        }
    }

    #[test]
    fn scores_map_engine_mates_to_plies() {
        assert_eq!(
            Score::after_move(UciScore::Centipawns(-250)),
            Score::from_centipawns(250)
        );
        // The opponent mates with its first move: mated after 2 plies.
        assert_eq!(Score::after_move(UciScore::Mate(1)), Score::mated_in(2));
        // The opponent is mated after the mover's next move: 3 plies.
        assert_eq!(Score::after_move(UciScore::Mate(-1)), Score::mate_in(3));
        assert_eq!(Score::after_move(UciScore::Mate(0)), Score::mate_in(1));
        // Absurd mates stay mates, beyond every centipawn score.
        assert!(Score::after_move(UciScore::Mate(i32::MIN)) > Score::from_centipawns(i32::MAX));
        assert!(Score::after_move(UciScore::Mate(i32::MAX)) < Score::from_centipawns(i32::MIN));
        assert_eq!(Score::mate_in(3).centipawns(), MATE_SCORE - 3);
        assert_eq!(Score::mated_in(2).centipawns(), -(MATE_SCORE - 2));
        assert!(Score::mate_in(40) < Score::mate_in(3));
        assert!(Score::mated_in(40) > Score::mated_in(2));
        assert!(Score::from_centipawns(i32::MAX) < Score::mate_in(10_000_000));
        assert_eq!(
            Score::after_move(UciScore::Centipawns(i32::MIN)).mate_plies(),
            None
        );
        assert_eq!(Score::from_centipawns(7).mate_plies(), None);
        assert_eq!(Score::mate_in(3).to_string(), "mate in 3 plies");
        assert_eq!(Score::mated_in(2).to_string(), "mated in 2 plies");
        assert_eq!(Score::from_centipawns(-40).to_string(), "-40 cp");
    }

    /// Stockfish is installed where these tests run (here and in CI): a
    /// missing engine fails the test rather than skipping it.
    #[test]
    fn the_stockfish_judge_prefers_material_and_mate() {
        let mut judge = match MoveJudge::stockfish(SearchLimit::Nodes(20_000)) {
            Ok(judge) => judge,
            Err(error) => panic!(
                "Stockfish is required by this test (apt-get install stockfish, or set KIBITZER_STOCKFISH): {error}"
            ),
        };
        assert!(
            judge.describe().contains("Stockfish") && judge.describe().ends_with("at 20000 nodes"),
            "{}",
            judge.describe()
        );
        check_judge(&mut judge);
        // A mate the engine reports (`score mate 1` for Black after Ra7).
        let position = Chess::from_fen(BACK_RANK_BLUNDER).expect("valid FEN");
        let blunder = judge
            .score_move(&position, mv(&position, "a1a7"))
            .expect("judged");
        assert_eq!(blunder, Score::mated_in(2), "{blunder}");
        // Deterministic: one thread, a node limit, a cleared hash.
        let queen = Chess::from_fen(HANGING_QUEEN).expect("valid FEN");
        let quiet = mv(&queen, "e1f2");
        let first = judge.score_move(&queen, quiet).expect("judged");
        judge
            .score_move(&queen, mv(&queen, "d1d5"))
            .expect("judged");
        assert_eq!(judge.score_move(&queen, quiet).expect("judged"), first);
    }

    #[test]
    fn a_missing_engine_says_how_to_install_one() {
        let error = MoveJudge::engine(&UciConfig {
            path: "/nonexistent/stockfish".into(),
            ..UciConfig::stockfish()
        })
        .expect_err("no engine there");
        let message = error.to_string();
        assert!(message.contains("apt-get install stockfish"), "{message}");
        assert!(message.contains("/nonexistent/stockfish"), "{message}");
        let hint = JudgeError::NoEngine {
            hint: no_engine_hint(),
        }
        .to_string();
        assert!(hint.contains("apt-get install stockfish"), "{hint}");
    }
}
