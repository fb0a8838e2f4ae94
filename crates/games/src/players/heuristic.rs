//! Per-game scores for the greedy and alpha-beta players.

use crate::game::{Game, Player};
use crate::othello::Othello;

/// Cheap judgements of a position, for players that search by hand-written
/// rules instead of a net. Larger is better for `player`; both are static
/// (the game's outcome is handled by the players, not here).
pub trait Heuristic: Game {
    /// What a greedy player maximises right after its move (Othello: disc
    /// difference, the same order as "most discs"; chess: material
    /// difference).
    fn greedy_score(&self, player: Player) -> i32;

    /// The static evaluation of alpha-beta at its horizon. Must stay well
    /// inside `±WIN_SCORE / 2` so a won game always scores higher.
    fn evaluate(&self, player: Player) -> i32;
}

/// Corner squares are never flipped once taken: worth many discs.
const OTHELLO_CORNER_WEIGHT: i32 = 25;
/// Each legal move of the side to move: options keep a position alive.
const OTHELLO_MOBILITY_WEIGHT: i32 = 4;

fn othello_corners(size: usize) -> u64 {
    let last = size * size - 1;
    1 << 0 | 1 << (size - 1) | 1 << (last + 1 - size) | 1 << last
}

impl Heuristic for Othello {
    fn greedy_score(&self, player: Player) -> i32 {
        self.disc_count(player) as i32 - self.disc_count(player.opponent()) as i32
    }

    /// Disc difference + 4 x the legal moves of the side to move (counted
    /// for `player` when it is to move, against otherwise; the Othello API
    /// gives the mobility of the side to move only) + 25 x corner difference.
    fn evaluate(&self, player: Player) -> i32 {
        let corners = othello_corners(self.size());
        let corner_difference = (self.discs(player) & corners).count_ones() as i32
            - (self.discs(player.opponent()) & corners).count_ones() as i32;
        let mobility = self.legal_bitboard().count_ones() as i32;
        let mobility_for_player = if self.to_move() == player {
            mobility
        } else {
            -mobility
        };
        self.greedy_score(player)
            + OTHELLO_MOBILITY_WEIGHT * mobility_for_player
            + OTHELLO_CORNER_WEIGHT * corner_difference
    }
}

#[cfg(feature = "chess")]
mod chess_heuristic {
    use super::Heuristic;
    use crate::chess::{Chess, color_of};
    use crate::game::Player;
    use shakmaty::Position;

    /// Centipawn values of pawn, knight, bishop, rook, queen.
    const PIECE_VALUES: [i32; 5] = [100, 320, 330, 500, 900];

    fn material(position: &Chess, player: Player) -> i32 {
        let side = position
            .as_shakmaty()
            .board()
            .material_side(color_of(player));
        let counts = [side.pawn, side.knight, side.bishop, side.rook, side.queen];
        counts
            .iter()
            .zip(PIECE_VALUES)
            .map(|(&count, value)| i32::from(count) * value)
            .sum()
    }

    impl Heuristic for Chess {
        /// Material difference in centipawns (1, 3.2, 3.3, 5, 9 pawns).
        fn greedy_score(&self, player: Player) -> i32 {
            material(self, player) - material(self, player.opponent())
        }

        /// Material difference in centipawns.
        fn evaluate(&self, player: Player) -> i32 {
            self.greedy_score(player)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn othello_scores_count_discs_corners_and_mobility() {
        let start = Othello::new(6).expect("6x6 is supported");
        assert_eq!(start.greedy_score(Player::First), 0);
        // Black to move with 4 moves: +16 for Black, -16 for White.
        assert_eq!(start.evaluate(Player::First), 16);
        assert_eq!(start.evaluate(Player::Second), -16);
        // Black holds the a1 corner and 3 more discs; White to move.
        let corner = Othello::from_board_string("XX../XO../..../.... O").expect("valid board");
        let white_moves = corner.legal_bitboard().count_ones() as i32;
        assert_eq!(corner.greedy_score(Player::First), 2);
        assert_eq!(
            corner.evaluate(Player::First),
            2 - OTHELLO_MOBILITY_WEIGHT * white_moves + OTHELLO_CORNER_WEIGHT
        );
    }

    #[cfg(feature = "chess")]
    #[test]
    fn chess_material_is_signed_by_side() {
        use crate::chess::Chess;
        let start = Chess::new();
        assert_eq!(start.greedy_score(Player::First), 0);
        // White is a queen up (Black's queen removed).
        let up = Chess::from_fen("rnb1kbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1")
            .expect("valid FEN");
        assert_eq!(up.greedy_score(Player::First), 900);
        assert_eq!(up.evaluate(Player::Second), -900);
    }
}
