//! Negamax alpha-beta to a fixed depth on a [`Heuristic`] evaluation.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Agent, Heuristic, PlayerError, legal_moves_or_over};
use crate::game::Outcome;

/// The score of a won game at the root; a win `k` plies away scores
/// `WIN_SCORE - k`, so faster wins (and slower losses) are preferred.
pub const WIN_SCORE: i32 = 1_000_000;

/// The result of [`alphabeta`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlphaBetaResult<M> {
    /// Every move with the best score, in legal-move order.
    pub best_moves: Vec<M>,
    /// The best score for the side to move (`±(WIN_SCORE - plies)` for a
    /// forced result within the depth).
    pub score: i32,
    /// Positions visited.
    pub nodes: u64,
}

/// Searches `position` to `depth` plies (at least 1) and returns every move
/// of the best score: ties are found exactly, with a window one below the
/// best score so far.
///
/// Finished games score `±(WIN_SCORE - ply)`, draws 0; the horizon scores
/// [`Heuristic::evaluate`] for the side to move. At depth 2 or more the
/// moves are tried in the order of their static evaluation.
pub fn alphabeta<G: Heuristic>(position: &G, depth: u32) -> AlphaBetaResult<G::Move> {
    let mut nodes = 1;
    let moves = ordered_moves(position, depth.max(1));
    let mut best_moves = Vec::new();
    let mut best = -WIN_SCORE - 1;
    for (mv, child) in moves {
        // Window (best - 1, +inf): a score >= best comes back exact.
        let score = -negamax(
            &child,
            depth.max(1) - 1,
            -WIN_SCORE - 1,
            -(best - 1),
            1,
            &mut nodes,
        );
        if score > best {
            best = score;
            best_moves.clear();
        }
        if score == best {
            best_moves.push(mv);
        }
    }
    AlphaBetaResult {
        best_moves,
        score: best,
        nodes,
    }
}

/// The legal moves with their positions, best-looking first at depth >= 2.
fn ordered_moves<G: Heuristic>(position: &G, depth: u32) -> Vec<(G::Move, G)> {
    let me = position.to_move();
    let mut children: Vec<(G::Move, G)> = position
        .legal_moves()
        .into_iter()
        .map(|mv| {
            let mut child = position.clone();
            child
                .play(mv)
                .expect("a move from legal_moves is legal in that position");
            (mv, child)
        })
        .collect();
    if depth >= 2 {
        // sort_by_cached_key is stable: equal keys keep legal-move order.
        children.sort_by_cached_key(|(_, child)| match child.outcome() {
            Some(Outcome::Win(winner)) if winner == me => i32::MIN,
            Some(Outcome::Win(_)) => i32::MAX,
            Some(Outcome::Draw) => 0,
            None => -child.evaluate(me),
        });
    }
    children
}

/// Fail-soft negamax: the score of `position` for its side to move.
fn negamax<G: Heuristic>(
    position: &G,
    depth: u32,
    mut alpha: i32,
    beta: i32,
    ply: i32,
    nodes: &mut u64,
) -> i32 {
    *nodes += 1;
    let me = position.to_move();
    if let Some(outcome) = position.outcome() {
        return match outcome {
            Outcome::Win(winner) if winner == me => WIN_SCORE - ply,
            Outcome::Win(_) => -(WIN_SCORE - ply),
            Outcome::Draw => 0,
        };
    }
    if depth == 0 {
        return position.evaluate(me);
    }
    let mut best = -WIN_SCORE - 1;
    for (_, child) in ordered_moves(position, depth) {
        let score = -negamax(&child, depth - 1, -beta, -alpha, ply + 1, nodes);
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
    best
}

/// Plays the best move of [`alphabeta`] at a fixed depth, a random one of
/// the equally good.
#[derive(Clone, Debug)]
pub struct AlphaBetaAgent {
    depth: u32,
    rng: ChaCha8Rng,
}

impl AlphaBetaAgent {
    /// A player searching `depth` plies (0 is taken as 1); `seed` fixes how
    /// it breaks ties.
    pub fn new(depth: u32, seed: u64) -> AlphaBetaAgent {
        AlphaBetaAgent {
            depth: depth.max(1),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The search depth.
    pub fn depth(&self) -> u32 {
        self.depth
    }
}

impl<G: Heuristic> Agent<G> for AlphaBetaAgent {
    fn name(&self) -> String {
        format!("alphabeta:{}", self.depth)
    }

    fn choose(&mut self, position: &G) -> Result<G::Move, PlayerError> {
        legal_moves_or_over(position, &|| format!("alphabeta:{}", self.depth))?;
        let result = alphabeta(position, self.depth);
        Ok(result.best_moves[self.rng.random_range(0..result.best_moves.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Game;
    use crate::othello::Othello;
    use crate::players::solver;

    /// Plain minimax without pruning: what alpha-beta must equal.
    fn minimax<G: Heuristic>(position: &G, depth: u32, ply: i32) -> i32 {
        let me = position.to_move();
        if let Some(outcome) = position.outcome() {
            return match outcome {
                Outcome::Win(winner) if winner == me => WIN_SCORE - ply,
                Outcome::Win(_) => -(WIN_SCORE - ply),
                Outcome::Draw => 0,
            };
        }
        if depth == 0 {
            return position.evaluate(me);
        }
        position
            .legal_moves()
            .into_iter()
            .map(|mv| {
                let mut child = position.clone();
                child.play(mv).expect("legal");
                -minimax(&child, depth - 1, ply + 1)
            })
            .max()
            .expect("a game not over has a move")
    }

    #[test]
    fn alphabeta_equals_minimax_and_finds_every_tie() {
        use rand::SeedableRng;
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for game in 0..6 {
            let mut position = Othello::new(6).expect("6x6 is supported");
            for _ in 0..(4 + 4 * game) {
                let Some(mv) = position.random_move(&mut rng) else {
                    break;
                };
                position.play(mv).expect("legal");
            }
            if position.is_over() {
                continue;
            }
            for depth in 1..=3 {
                let result = alphabeta(&position, depth);
                let mut expected_best = Vec::new();
                let mut expected = i32::MIN;
                for mv in position.legal_moves() {
                    let mut child = position;
                    child.play(mv).expect("legal");
                    let score = -minimax(&child, depth - 1, 1);
                    if score > expected {
                        expected = score;
                        expected_best.clear();
                    }
                    if score == expected {
                        expected_best.push(mv);
                    }
                }
                assert_eq!(
                    result.score,
                    expected,
                    "depth {depth} in {}",
                    position.board_string()
                );
                assert_eq!(result.best_moves, expected_best);
            }
        }
    }

    #[test]
    fn deep_alphabeta_agrees_with_the_solver_on_won_endgames() {
        // With the depth reaching the end, alpha-beta sees the true result.
        let position = Othello::from_board_string("XXXXXX/XXXXXX/XXOOXX/XXO.O./XXXXXX/XXXXX. O")
            .expect("valid board");
        let result = alphabeta(&position, 8);
        let exact = solver::solve(&position);
        assert_eq!(result.score > 0, exact.score > 0);
        assert_eq!(result.score < 0, exact.score < 0);
    }
}
