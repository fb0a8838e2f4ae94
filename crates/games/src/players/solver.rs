//! The exact Othello endgame solver: negamax alpha-beta to the end of the
//! game on the final disc difference.
//!
//! Moves are ordered fastest-first (the reply that leaves the opponent the
//! fewest moves first, corners breaking ties) while more than
//! [`ORDERING_EMPTIES`] squares are empty; below that, ordering costs more
//! than it saves. Fast enough for 14 empty squares in well under a second in
//! release builds, which is what endgame tests and the solver player need;
//! it is not meant for whole 6x6 games.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Agent, AlphaBetaAgent, PlayerError};
use crate::game::Game;
use crate::othello::{Othello, OthelloMove};

/// Ordering is worth its cost only with more empty squares than this.
pub const ORDERING_EMPTIES: u32 = 5;

/// The exact value of a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solution {
    /// Final disc difference (own minus opponent's, empty squares counted
    /// for nobody, as [`Game::outcome`] counts) for the side to move with
    /// best play by both sides.
    pub score: i32,
    /// Every move reaching that score, in legal-move order (`[Pass]` when
    /// the side to move must pass; empty when the game is over).
    pub best_moves: Vec<OthelloMove>,
    /// Positions visited.
    pub nodes: u64,
}

/// Solves `position` exactly. Time grows about tenfold per two more empty
/// squares: keep it to endgames (up to 14-16 empties).
pub fn solve(position: &Othello) -> Solution {
    let mut nodes = 0;
    if position.is_over() {
        return Solution {
            score: disc_difference(position),
            best_moves: Vec::new(),
            nodes: 1,
        };
    }
    let mut best = -MAX_SCORE - 1;
    let mut best_moves = Vec::new();
    for (mv, child) in children(position) {
        // Window (best - 1, +inf) for the mover: ties come back exact.
        let score = -negamax(&child, -MAX_SCORE - 1, -(best - 1), &mut nodes);
        if score > best {
            best = score;
            best_moves.clear();
        }
        if score == best {
            best_moves.push(mv);
        }
    }
    Solution {
        score: best,
        best_moves,
        nodes: nodes + 1,
    }
}

/// The exact score of every legal move (after the move, with best play),
/// in legal-move order: for tests that need to know how much worse a move
/// is, not only which is best.
pub fn solve_moves(position: &Othello) -> Vec<(OthelloMove, i32)> {
    let mut nodes = 0;
    children(position)
        .into_iter()
        .map(|(mv, child)| {
            (
                mv,
                -negamax(&child, -MAX_SCORE - 1, MAX_SCORE + 1, &mut nodes),
            )
        })
        .collect()
}

/// No disc difference exceeds this (64 squares).
const MAX_SCORE: i32 = 64;

fn disc_difference(position: &Othello) -> i32 {
    position.mine().count_ones() as i32 - position.yours().count_ones() as i32
}

/// The legal moves and the positions after them, in legal-move order.
fn children(position: &Othello) -> Vec<(OthelloMove, Othello)> {
    position
        .legal_moves()
        .into_iter()
        .map(|mv| {
            let mut child = *position;
            child
                .play(mv)
                .expect("a move from legal_moves is legal in that position");
            (mv, child)
        })
        .collect()
}

/// Fail-soft negamax on the final disc difference for the side to move.
fn negamax(position: &Othello, mut alpha: i32, beta: i32, nodes: &mut u64) -> i32 {
    *nodes += 1;
    let legal = position.legal_bitboard();
    if legal == 0 {
        if position.is_over() {
            return disc_difference(position);
        }
        let mut passed = *position;
        passed
            .play_index(None)
            .expect("a side with no square but a game going on must pass");
        return -negamax(&passed, -beta, -alpha, nodes);
    }
    let empties = position.empty().count_ones();
    let mut best = -MAX_SCORE - 1;
    if empties > ORDERING_EMPTIES {
        let size = position.size();
        let corners = corner_mask(size);
        let mut moves: [(u32, usize, Othello); 64] = [(0, 0, *position); 64];
        let mut count = 0;
        let mut bits = legal;
        while bits != 0 {
            let index = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let mut child = *position;
            child
                .play_index(Some(index))
                .expect("a square of legal_bitboard is legal");
            // Fewest opponent replies first; a corner wins ties.
            let key =
                2 * child.legal_bitboard().count_ones() + u32::from(corners >> index & 1 == 0);
            moves[count] = (key, index, child);
            count += 1;
        }
        let moves = &mut moves[..count];
        moves.sort_unstable_by_key(|&(key, index, _)| (key, index));
        for (_, _, child) in moves.iter() {
            let score = -negamax(child, -beta, -alpha, nodes);
            if score > best {
                best = score;
                if score > alpha {
                    alpha = score;
                    if alpha >= beta {
                        break;
                    }
                }
            }
        }
    } else {
        let mut bits = legal;
        while bits != 0 {
            let index = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let mut child = *position;
            child
                .play_index(Some(index))
                .expect("a square of legal_bitboard is legal");
            let score = -negamax(&child, -beta, -alpha, nodes);
            if score > best {
                best = score;
                if score > alpha {
                    alpha = score;
                    if alpha >= beta {
                        break;
                    }
                }
            }
        }
    }
    best
}

fn corner_mask(size: usize) -> u64 {
    let last = size * size - 1;
    1 << 0 | 1 << (size - 1) | 1 << (last + 1 - size) | 1 << last
}

/// Plays perfectly once at most `exact_empties` squares are empty (a random
/// one of the best moves), and as [`AlphaBetaAgent`] at `midgame_depth`
/// before that: solving a whole 6x6 or 8x8 game is out of reach.
#[derive(Clone, Debug)]
pub struct SolverAgent {
    exact_empties: u32,
    midgame: AlphaBetaAgent,
    rng: ChaCha8Rng,
}

impl SolverAgent {
    /// Exact from 12 empty squares, alpha-beta at depth 4 before.
    pub fn new(seed: u64) -> SolverAgent {
        SolverAgent::with_limits(12, 4, seed)
    }

    /// Exact from `exact_empties` empty squares, alpha-beta at
    /// `midgame_depth` before; `seed` fixes how ties are broken.
    pub fn with_limits(exact_empties: u32, midgame_depth: u32, seed: u64) -> SolverAgent {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let midgame = AlphaBetaAgent::new(midgame_depth, rng.random());
        SolverAgent {
            exact_empties,
            midgame,
            rng,
        }
    }
}

impl Agent<Othello> for SolverAgent {
    fn name(&self) -> String {
        "solver".to_owned()
    }

    fn choose(&mut self, position: &Othello) -> Result<OthelloMove, PlayerError> {
        if position.is_over() {
            return Err(PlayerError::GameOver {
                player: "solver".to_owned(),
                position: position.position_string(),
            });
        }
        if position.empty().count_ones() > self.exact_empties {
            return self.midgame.choose(position);
        }
        let solution = solve(position);
        Ok(solution.best_moves[self.rng.random_range(0..solution.best_moves.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::{Outcome, Player};
    use proptest::prelude::*;

    /// Plain minimax on the final disc difference: what the solver must equal.
    fn minimax(position: &Othello) -> i32 {
        if position.is_over() {
            return disc_difference(position);
        }
        position
            .legal_moves()
            .into_iter()
            .map(|mv| {
                let mut child = *position;
                child.play(mv).expect("legal");
                -minimax(&child)
            })
            .max()
            .expect("a game not over has a move")
    }

    /// A position `plies` random moves into a `size`x`size` game.
    fn random_position(size: usize, plies: usize, seed: u64) -> Othello {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut position = Othello::new(size).expect("supported size");
        for _ in 0..plies {
            let Some(mv) = position.random_move(&mut rng) else {
                break;
            };
            position.play(mv).expect("legal");
        }
        position
    }

    #[test]
    fn solves_4x4_othello_as_a_white_win_by_8() {
        // Known result: 4x4 Othello is won by White 11-3 with perfect play
        // (a disc difference of -8 for Black, who moves first).
        let start = Othello::new(4).expect("4x4 is supported");
        let solution = solve(&start);
        assert_eq!(solution.score, -8);
        assert_eq!(
            solution.best_moves.len(),
            4,
            "all four openings are symmetric"
        );
        assert_eq!(solution.score, minimax(&start));
    }

    #[test]
    fn pass_and_finished_positions() {
        let must_pass = Othello::from_board_string("XXXX/XXXX/XXO./XXXX O").expect("valid board");
        let solution = solve(&must_pass);
        assert_eq!(solution.best_moves, [OthelloMove::Pass]);
        // White passes, Black fills the board: 16-0 for Black.
        assert_eq!(solution.score, -16);
        // Neither side can play with squares empty: over, Black 4-0.
        let over = Othello::from_board_string("XX../XX../..../.... O").expect("valid board");
        assert!(over.is_over());
        assert_eq!(over.outcome(), Some(Outcome::Win(Player::First)));
        assert_eq!(
            solve(&over),
            Solution {
                score: -4,
                best_moves: vec![],
                nodes: 1
            }
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn solver_equals_minimax_on_6x6_endgames(seed in any::<u64>(), empties in 1usize..=8) {
            let position = random_position(6, 32 - empties, seed);
            prop_assume!(!position.is_over());
            let solution = solve(&position);
            prop_assert_eq!(solution.score, minimax(&position));
            let per_move = solve_moves(&position);
            let best = per_move.iter().map(|&(_, score)| score).max();
            prop_assert_eq!(best, Some(solution.score));
            let best_moves: Vec<OthelloMove> = per_move
                .iter()
                .filter(|&&(_, score)| score == solution.score)
                .map(|&(mv, _)| mv)
                .collect();
            prop_assert_eq!(best_moves, solution.best_moves);
        }
    }

    #[test]
    fn solver_agent_plays_best_moves_and_alpha_beta_before() {
        let endgame = random_position(6, 24, 5);
        assert!(!endgame.is_over());
        let best = solve(&endgame).best_moves;
        let mut agent = SolverAgent::new(1);
        for _ in 0..5 {
            let mv = agent.choose(&endgame).expect("a move");
            assert!(best.contains(&mv), "{mv} not among {best:?}");
        }
        let opening = Othello::new(6).expect("6x6 is supported");
        let mv = agent
            .choose(&opening)
            .expect("alpha-beta plays the opening");
        assert!(opening.legal_moves().contains(&mv));
        let over = Othello::from_board_string("XXOO/XXOO/XXOO/XXOO X").expect("valid board");
        assert!(matches!(
            agent.choose(&over),
            Err(PlayerError::GameOver { .. })
        ));
    }
}
