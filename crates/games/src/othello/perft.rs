//! Perft: the number of move sequences of a given length, the standard check
//! of a move generator.
//!
//! `perft(p, 0) = 1`; a finished game counts 1 whatever the depth left; a
//! pass counts as a move. At the last ply the count is the popcount of the
//! legal-move bitboard (bulk counting), or 1 when the side must pass or the
//! game is over.

use super::Othello;
use super::bitboard::{flips, legal, with_size};

/// The number of move sequences of `depth` plies from `position`, counting
/// passes as moves and a game that ends early as one sequence.
///
/// On x86-64 CPUs with AVX2, BMI2, POPCNT and LZCNT (x86-64-v3: every x86
/// server since about 2015) this runs a copy compiled for them, chosen at
/// run time: the baseline x86-64 target has no popcount instruction, and the
/// vector shifts let the four directions run side by side.
pub fn perft(position: &Othello, depth: u32) -> u64 {
    let (me, you) = (position.mine(), position.yours());
    #[cfg(target_arch = "x86_64")]
    if has_x86_64_v3() {
        // SAFETY: the CPU supports every feature `perft_x86_64_v3` is
        // compiled for (checked just above).
        return with_size!(position.size, N => unsafe { perft_x86_64_v3::<N>(me, you, depth) });
    }
    with_size!(position.size, N => perft_portable::<N>(me, you, depth))
}

/// Whether the CPU has the x86-64-v3 features the fast perft uses.
#[cfg(target_arch = "x86_64")]
fn has_x86_64_v3() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("bmi2")
        && std::is_x86_feature_detected!("popcnt")
        && std::is_x86_feature_detected!("lzcnt")
}

/// Defines the perft recursion under a name, with extra attributes (target
/// features), so the portable and the x86-64-v3 copies share one source.
macro_rules! perft_recursion {
    ($(#[$attr:meta])* fn $name:ident) => {
        $(#[$attr])*
        fn $name<const N: usize>(me: u64, you: u64, depth: u32) -> u64 {
            if depth == 0 {
                return 1;
            }
            let mut moves = legal::<N>(me, you);
            if depth == 1 {
                // A pass or the end of the game is one sequence too.
                return u64::from(moves.count_ones()).max(1);
            }
            if moves == 0 {
                if legal::<N>(you, me) == 0 {
                    return 1;
                }
                return $name::<N>(you, me, depth - 1);
            }
            let mut total = 0;
            if depth == 2 {
                // The last two plies inline: each child's count is its number
                // of moves, or 1 for a pass or a finished game.
                while moves != 0 {
                    let square = moves.trailing_zeros();
                    moves &= moves - 1;
                    let flipped = flips::<N>(me, you, square);
                    let child = legal::<N>(you & !flipped, me | flipped | 1 << square);
                    total += u64::from(child.count_ones()).max(1);
                }
                return total;
            }
            while moves != 0 {
                let square = moves.trailing_zeros();
                moves &= moves - 1;
                let flipped = flips::<N>(me, you, square);
                total += $name::<N>(you & !flipped, me | flipped | 1 << square, depth - 1);
            }
            total
        }
    };
}

perft_recursion!(fn perft_portable);
perft_recursion!(
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
    fn perft_x86_64_v3
);

/// Perft split by first move (the "divide" of move-generator debugging):
/// the count below each legal move (a pass when forced), in move order. The
/// counts sum to `perft(position, depth)` for `depth >= 1` when the game is
/// not over.
pub fn perft_divide(position: &Othello, depth: u32) -> Vec<(super::OthelloMove, u64)> {
    use crate::game::Game;
    let Some(below) = depth.checked_sub(1) else {
        return Vec::new();
    };
    position
        .legal_moves()
        .into_iter()
        .map(|mv| {
            let mut child = *position;
            child.play(mv).expect("legal_moves are legal");
            (mv, perft(&child, below))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known 8x8 counts for depths 1..=11 (passes are moves, finished games
    /// are leaves; games first end at depth 9). Depth 11 is OEIS A124004 and
    /// agrees with the array reference in tests/othello_reference.rs.
    const PERFT_8X8: [u64; 11] = [
        4, 12, 56, 244, 1396, 8200, 55092, 390216, 3005288, 24571284, 212258800,
    ];

    #[test]
    fn perft_8x8_matches_known_counts_to_depth_9() {
        let start = Othello::standard8();
        assert_eq!(perft(&start, 0), 1);
        for (depth, &expected) in PERFT_8X8.iter().enumerate().take(9) {
            assert_eq!(
                perft(&start, depth as u32 + 1),
                expected,
                "depth {}",
                depth + 1
            );
        }
    }

    /// `cargo test -p kibitzer-games --release -- --ignored perft_8x8_depths_10_and_11`
    #[test]
    #[ignore = "about a second in release; run with --release"]
    fn perft_8x8_depths_10_and_11() {
        let start = Othello::standard8();
        assert_eq!(perft(&start, 10), PERFT_8X8[9]);
        assert_eq!(perft(&start, 11), PERFT_8X8[10]);
    }

    /// The dispatcher takes the x86-64-v3 copy where it can; check the
    /// portable copy directly so both are tested on such machines.
    #[test]
    fn portable_copy_matches_known_counts() {
        let start = Othello::standard8();
        assert_eq!(
            perft_portable::<8>(start.mine(), start.yours(), 8),
            PERFT_8X8[7]
        );
        let six = Othello::new(6).expect("supported size");
        assert_eq!(
            perft_portable::<6>(six.mine(), six.yours(), 7),
            perft(&six, 7)
        );
    }

    #[test]
    fn divide_sums_to_perft() {
        let start = Othello::new(6).expect("supported size");
        let divide = perft_divide(&start, 5);
        assert_eq!(divide.len(), 4);
        assert_eq!(divide.iter().map(|(_, n)| n).sum::<u64>(), perft(&start, 5));
        assert!(perft_divide(&start, 0).is_empty());
    }

    #[test]
    fn perft_on_small_boards_counts_pass_and_end() {
        // 4x4 is tiny enough to be solved: every game ends by depth 12
        // (12 empty squares) plus passes, so perft stops growing once
        // every sequence has ended... unless passes extend it. The count at
        // depth 1 is the four start moves on every size.
        for size in [4, 6, 8] {
            let start = Othello::new(size).expect("supported size");
            assert_eq!(perft(&start, 1), 4, "size {size}");
            assert_eq!(perft(&start, 2), 12, "size {size}");
        }
    }
}
