//! A plain array Othello, written only to check the bitboard one: a `Vec` of
//! cells and a loop over the eight directions, nothing clever. Proptests play
//! random games on every size with both and compare them move by move.

use kibitzer_games::othello::{Othello, OthelloMove, Square};
use kibitzer_games::{Game, Outcome, Player};
use proptest::prelude::*;

const DIRECTIONS: [(i32, i32); 8] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

/// 1 black, -1 white, 0 empty; `side` is 1 when Black is to move.
#[derive(Clone, Debug)]
struct ArrayOthello {
    size: i32,
    cells: Vec<i8>,
    side: i8,
}

impl ArrayOthello {
    fn new(size: usize) -> ArrayOthello {
        let n = size as i32;
        let mut board = ArrayOthello {
            size: n,
            cells: vec![0; size * size],
            side: 1,
        };
        let h = n / 2;
        board.set(h - 1, h - 1, -1);
        board.set(h, h, -1);
        board.set(h - 1, h, 1);
        board.set(h, h - 1, 1);
        board
    }

    fn get(&self, row: i32, col: i32) -> Option<i8> {
        (0..self.size)
            .contains(&row)
            .then_some(())
            .filter(|_| (0..self.size).contains(&col))
            .map(|_| self.cells[(row * self.size + col) as usize])
    }

    fn set(&mut self, row: i32, col: i32, value: i8) {
        self.cells[(row * self.size + col) as usize] = value;
    }

    /// The indices flipped by `side` playing at `index`.
    fn flips_for(&self, side: i8, index: usize) -> Vec<usize> {
        let (row, col) = (index as i32 / self.size, index as i32 % self.size);
        if self.cells[index] != 0 {
            return Vec::new();
        }
        let mut flipped = Vec::new();
        for (dr, dc) in DIRECTIONS {
            let mut run = Vec::new();
            let (mut r, mut c) = (row + dr, col + dc);
            while self.get(r, c) == Some(-side) {
                run.push((r * self.size + c) as usize);
                r += dr;
                c += dc;
            }
            if !run.is_empty() && self.get(r, c) == Some(side) {
                flipped.extend(run);
            }
        }
        flipped.sort_unstable();
        flipped
    }

    fn legal_for(&self, side: i8) -> Vec<usize> {
        (0..self.cells.len())
            .filter(|&i| !self.flips_for(side, i).is_empty())
            .collect()
    }

    fn over(&self) -> bool {
        self.legal_for(self.side).is_empty() && self.legal_for(-self.side).is_empty()
    }

    /// Plays `index` (or passes on `None`); returns the flipped squares.
    fn play(&mut self, index: Option<usize>) -> Vec<usize> {
        let mut flipped = Vec::new();
        if let Some(index) = index {
            flipped = self.flips_for(self.side, index);
            assert!(
                !flipped.is_empty(),
                "reference asked to play an illegal move"
            );
            for &i in &flipped {
                self.cells[i] = self.side;
            }
            self.cells[index] = self.side;
        }
        self.side = -self.side;
        flipped
    }

    fn outcome(&self) -> Outcome {
        let black = self.cells.iter().filter(|&&c| c == 1).count();
        let white = self.cells.iter().filter(|&&c| c == -1).count();
        match black.cmp(&white) {
            std::cmp::Ordering::Greater => Outcome::Win(Player::First),
            std::cmp::Ordering::Less => Outcome::Win(Player::Second),
            std::cmp::Ordering::Equal => Outcome::Draw,
        }
    }

    /// Perft with the same definition as the bitboard one, counting the last
    /// ply in bulk (the number of legal moves) so depth 11 on 8x8 is feasible.
    fn perft(&self, depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let moves = self.legal_for(self.side);
        if moves.is_empty() {
            if depth == 1 || self.legal_for(-self.side).is_empty() {
                // A forced pass is one sequence; a finished game is a leaf.
                return 1;
            }
            let mut next = self.clone();
            next.play(None);
            return next.perft(depth - 1);
        }
        if depth == 1 {
            return moves.len() as u64;
        }
        moves
            .into_iter()
            .map(|m| {
                let mut next = self.clone();
                next.play(Some(m));
                next.perft(depth - 1)
            })
            .sum()
    }
}

fn bits_to_indices(bits: u64) -> Vec<usize> {
    (0..64).filter(|i| bits >> i & 1 != 0).collect()
}

fn board_cells(position: &Othello) -> Vec<i8> {
    (0..position.squares())
        .map(|i| {
            if position.black() >> i & 1 != 0 {
                1
            } else if position.white() >> i & 1 != 0 {
                -1
            } else {
                0
            }
        })
        .collect()
}

/// Plays a game on both boards, choosing the `choices[ply] % n`-th legal
/// move, and checks they agree at every step.
fn play_both(size: usize, choices: &[u16]) -> Result<(), TestCaseError> {
    let mut fast = Othello::new(size).expect("4, 6 and 8 are supported sizes");
    let mut slow = ArrayOthello::new(size);
    for (ply, &choice) in choices.iter().enumerate() {
        prop_assert_eq!(board_cells(&fast), slow.cells.clone(), "ply {}", ply);
        let side = if fast.to_move() == Player::First {
            1
        } else {
            -1
        };
        prop_assert_eq!(side, slow.side, "side to move at ply {}", ply);
        let legal = slow.legal_for(slow.side);
        prop_assert_eq!(
            bits_to_indices(fast.legal_bitboard()),
            legal.clone(),
            "legal squares at ply {}",
            ply
        );
        for index in 0..fast.squares() {
            prop_assert_eq!(
                bits_to_indices(fast.flips(index)),
                slow.flips_for(slow.side, index),
                "flips of square {} at ply {}",
                index,
                ply
            );
        }
        if slow.over() {
            prop_assert!(fast.is_over());
            prop_assert!(fast.legal_moves().is_empty());
            prop_assert_eq!(fast.outcome(), Some(slow.outcome()));
            return Ok(());
        }
        prop_assert_eq!(fast.outcome(), None);
        let moves = fast.legal_moves();
        let mv = moves[usize::from(choice) % moves.len()];
        let index = match mv {
            OthelloMove::Square(square) => Some(square.index(size)),
            OthelloMove::Pass => {
                prop_assert!(
                    legal.is_empty(),
                    "pass offered with legal squares at ply {}",
                    ply
                );
                None
            }
        };
        let flipped = slow.play(index);
        fast.play(mv)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            bits_to_indices(fast.last_flipped()),
            flipped,
            "last_flipped at ply {}",
            ply
        );
        prop_assert_eq!(fast.last_move(), Some(mv));
        prop_assert_eq!(fast.ply(), ply + 1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bitboard_agrees_with_array_reference(
        size in prop::sample::select(vec![4usize, 6, 8]),
        // Long enough to finish every game (at most squares - 4 moves plus passes).
        choices in prop::collection::vec(any::<u16>(), 80),
    ) {
        play_both(size, &choices)?;
    }
}

#[test]
fn perft_agrees_with_array_reference_on_every_size() {
    for (size, depth) in [(4, 14), (6, 6), (8, 5)] {
        let start = Othello::new(size).expect("supported size");
        let reference = ArrayOthello::new(size).perft(depth);
        assert_eq!(
            kibitzer_games::othello::perft(&start, depth),
            reference,
            "size {size}, depth {depth}"
        );
    }
}

/// The whole 4x4 game tree: every game is over by depth 16 (12 empty squares,
/// and passes), so perft stops growing; the array reference agrees.
#[test]
fn perft_4x4_reaches_the_end_of_every_game() {
    let start = Othello::new(4).expect("4 is supported");
    let deep = kibitzer_games::othello::perft(&start, 40);
    assert_eq!(kibitzer_games::othello::perft(&start, 41), deep);
    assert!(deep > kibitzer_games::othello::perft(&start, 10));
}

/// Settles the 8x8 count at depth 11 (the first depth where early game ends
/// and passes both matter a lot) with the slow reference.
/// `cargo test -p kibitzer-games --release --test othello_reference -- --ignored`
#[test]
#[ignore = "a minute or more in release"]
fn perft_8x8_depth_11_agrees_with_array_reference() {
    let start = Othello::standard8();
    let fast = kibitzer_games::othello::perft(&start, 11);
    assert_eq!(ArrayOthello::new(8).perft(11), fast);
}

#[test]
fn square_a1_is_the_top_left_and_index_zero() {
    let a1: Square = "a1".parse().expect("a1 is a square name");
    assert_eq!(a1.index(8), 0);
    let start = Othello::standard8();
    let d3: OthelloMove = "d3".parse().expect("d3 is a square name");
    let mut names: Vec<String> = start
        .legal_moves()
        .iter()
        .map(ToString::to_string)
        .collect();
    names.sort();
    assert_eq!(names, ["c4", "d3", "e6", "f5"]);
    assert!(start.legal_moves().contains(&d3));
}
