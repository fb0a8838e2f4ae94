//! Raw bitboard move generation, generic over the board size so the masks
//! and shift amounts are constants in the hot loops (perft, random games).
//!
//! A bitboard is a `u64` with bit `row * N + col` set for an occupied square;
//! bits at or above `N * N` are always zero. Move generation is the
//! "dumb7fill" flood: in each of the eight directions, flood from my discs
//! through a contiguous run of opponent discs and land on an empty square.
//! Wrap-around between rows is prevented by masking the opponent's discs to
//! the inner columns for the six non-vertical directions: a run can only
//! continue through a disc that is not on the edge, so no shift crosses from
//! one row's last column to the next row's first.

/// The squares of an `n`x`n` board.
pub(crate) const fn board_mask(n: usize) -> u64 {
    if n * n >= 64 {
        !0
    } else {
        (1u64 << (n * n)) - 1
    }
}

/// Column `col` of an `n`x`n` board.
pub(crate) const fn column_mask(n: usize, col: usize) -> u64 {
    let mut mask = 0u64;
    let mut row = 0;
    while row < n {
        mask |= 1u64 << (row * n + col);
        row += 1;
    }
    mask
}

/// The squares not on the first or the last column.
const fn inner_columns(n: usize) -> u64 {
    board_mask(n) & !column_mask(n, 0) & !column_mask(n, n - 1)
}

/// The squares where the side owning `me` may play, against `you`.
///
/// Per direction, both senses at once: grow the run of opponent discs
/// adjacent to my discs one step, then double it (a run of length `k`
/// extends by two squares where two opponent discs are adjacent), which
/// needs 2 dependent steps less than a plain one-square flood on 8x8.
#[inline(always)]
pub(crate) fn legal<const N: usize>(me: u64, you: u64) -> u64 {
    let empty = !(me | you) & board_mask(N);
    let inner = you & inner_columns(N);
    let mut moves = 0;
    let mut direction = 0;
    while direction < 4 {
        let (shift, pro) = match direction {
            0 => (1, inner),
            1 => (N as u32, you),
            2 => (N as u32 - 1, inner),
            _ => (N as u32 + 1, inner),
        };
        let mut up = pro & (me << shift);
        let mut down = pro & (me >> shift);
        up |= pro & (up << shift);
        down |= pro & (down >> shift);
        // Opponent discs with an opponent disc just before them (up) or
        // just after them (down): where a run can grow by two at once.
        let pairs_up = pro & (pro << shift);
        let pairs_down = pairs_up >> shift;
        // Runs of up to N - 2 discs: 2 so far, 2 more per doubling step.
        let mut covered = 2;
        while covered < N - 2 {
            up |= pairs_up & (up << (2 * shift));
            down |= pairs_down & (down >> (2 * shift));
            covered += 2;
        }
        moves |= (up << shift) | (down >> shift);
        direction += 1;
    }
    moves & empty
}

/// The eight rays from every square of an `n`x`n` board: the squares
/// strictly beyond it in each direction, to the edge. Directions 0..4 run
/// towards higher bit indices (east, south-west, south, south-east), 4..8
/// towards lower ones (west, north-east, north, north-west).
const fn rays(n: usize) -> [[u64; 8]; 64] {
    const STEPS: [(i32, i32); 8] = [
        (0, 1),
        (1, -1),
        (1, 0),
        (1, 1),
        (0, -1),
        (-1, 1),
        (-1, 0),
        (-1, -1),
    ];
    let mut table = [[0u64; 8]; 64];
    let mut square = 0;
    while square < n * n {
        let mut direction = 0;
        while direction < 8 {
            let (dr, dc) = STEPS[direction];
            let (mut row, mut col) = ((square / n) as i32 + dr, (square % n) as i32 + dc);
            let mut ray = 0u64;
            while row >= 0 && row < n as i32 && col >= 0 && col < n as i32 {
                ray |= 1u64 << (row as usize * n + col as usize);
                row += dr;
                col += dc;
            }
            table[square][direction] = ray;
            direction += 1;
        }
        square += 1;
    }
    table
}

static RAYS_8: [[u64; 8]; 64] = rays(8);
static RAYS_6: [[u64; 8]; 64] = rays(6);
static RAYS_4: [[u64; 8]; 64] = rays(4);

#[inline(always)]
fn rays_of<const N: usize>() -> &'static [[u64; 8]; 64] {
    match N {
        8 => &RAYS_8,
        6 => &RAYS_6,
        _ => &RAYS_4,
    }
}

/// The opponent discs flipped when the side owning `me` plays on `square`
/// (0 if the move flips nothing, i.e. is not legal).
///
/// Along each ray, the first square that is not an opponent disc decides:
/// if it is mine, the opponent discs before it flip. Towards higher bits that
/// square is the lowest set bit of the ray's non-opponent squares, towards
/// lower bits the highest: no loop, so this is much cheaper than a flood.
#[inline(always)]
pub(crate) fn flips<const N: usize>(me: u64, you: u64, square: u32) -> u64 {
    let rays = &rays_of::<N>()[square as usize];
    let mut flipped = 0;
    let mut direction = 0;
    while direction < 4 {
        let ray = rays[direction];
        let stops = ray & !you;
        let first = stops & stops.wrapping_neg();
        let between = first.wrapping_sub(1) & ray;
        flipped |= between & 0u64.wrapping_sub(u64::from(first & me != 0));
        direction += 1;
    }
    while direction < 8 {
        let ray = rays[direction];
        let stops = ray & !you;
        let first = if stops != 0 {
            1u64 << (63 - stops.leading_zeros())
        } else {
            0
        };
        let between = ray & !(first.wrapping_mul(2).wrapping_sub(1));
        flipped |= between & 0u64.wrapping_sub(u64::from(first & me != 0));
        direction += 1;
    }
    flipped
}

/// Calls `$body` with the board size as a const generic `$n`, for the sizes
/// [`super::Othello::new`] accepts.
macro_rules! with_size {
    ($size:expr, $n:ident => $body:expr) => {
        match $size {
            8 => {
                const $n: usize = 8;
                $body
            }
            6 => {
                const $n: usize = 6;
                $body
            }
            4 => {
                const $n: usize = 4;
                $body
            }
            other => unreachable!("board size {other}: Othello::new only builds sizes 4, 6 and 8"),
        }
    };
}
pub(crate) use with_size;

/// [`legal`] for a size known only at run time.
#[inline]
pub(crate) fn legal_dyn(size: u8, me: u64, you: u64) -> u64 {
    with_size!(size, N => legal::<N>(me, you))
}

/// [`flips`] for a size known only at run time.
#[inline]
pub(crate) fn flips_dyn(size: u8, me: u64, you: u64, square: u32) -> u64 {
    with_size!(size, N => flips::<N>(me, you, square))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_the_board() {
        assert_eq!(board_mask(8), u64::MAX);
        assert_eq!(board_mask(6).count_ones(), 36);
        assert_eq!(board_mask(4), 0xffff);
        assert_eq!(column_mask(4, 0), 0b0001_0001_0001_0001);
        assert_eq!(inner_columns(4), 0b0110_0110_0110_0110);
    }

    #[test]
    fn no_move_wraps_around_a_row() {
        // 4x4: me on a2 (index 4), opponent on d1 (index 3). Shifting west
        // from a2 lands on d1 only by wrapping, so there is no move at c1.
        let me = 1 << 4;
        let you = 1 << 3;
        assert_eq!(legal::<4>(me, you), 0);
        // Opponent on b2 (5), me on a2 (4): the move is c2 (6).
        assert_eq!(legal::<4>(1 << 4, 1 << 5), 1 << 6);
        assert_eq!(flips::<4>(1 << 4, 1 << 5, 6), 1 << 5);
    }

    /// Floods from `seeds` through `pro` by `shift` bits (`up`: towards higher
    /// bits), for at most `n - 2` steps: the longest run of opponent discs that
    /// can be flanked on an `n`x`n` board.
    fn flood<const N: usize>(seeds: u64, pro: u64, shift: u32, up: bool) -> u64 {
        let mut run = shifted(seeds, shift, up) & pro;
        let mut i = 0;
        while i + 3 < N {
            run |= shifted(run, shift, up) & pro;
            i += 1;
        }
        run
    }

    fn shifted(b: u64, shift: u32, up: bool) -> u64 {
        if up { b << shift } else { b >> shift }
    }

    /// A plain one-step flood ("dumb7fill"), a second opinion on `legal`.
    fn flood_legal<const N: usize>(me: u64, you: u64) -> u64 {
        let empty = !(me | you) & board_mask(N);
        let inner = you & inner_columns(N);
        let mut moves = 0;
        for (shift, pro) in [
            (1, inner),
            (N as u32, you),
            (N as u32 - 1, inner),
            (N as u32 + 1, inner),
        ] {
            for up in [true, false] {
                moves |= shifted(flood::<N>(me, pro, shift, up), shift, up);
            }
        }
        moves & empty
    }

    /// Flood-based flips, a second opinion on the ray ones.
    fn flood_flips<const N: usize>(me: u64, you: u64, square: u32) -> u64 {
        let placed = 1u64 << square;
        let inner = you & inner_columns(N);
        let mut flipped = 0;
        for (shift, pro) in [
            (1, inner),
            (N as u32, you),
            (N as u32 - 1, inner),
            (N as u32 + 1, inner),
        ] {
            for up in [true, false] {
                let run = flood::<N>(placed, pro, shift, up);
                if shifted(run, shift, up) & me != 0 {
                    flipped |= run;
                }
            }
        }
        flipped
    }

    #[test]
    fn fast_generators_match_floods() {
        // Pseudo-random boards from a fixed mixer (no rand needed here).
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            state = crate::othello::mix64(state);
            let occupied = state;
            state = crate::othello::mix64(state);
            let me8 = occupied & state;
            let you8 = occupied & !state;
            assert_eq!(legal::<8>(me8, you8), flood_legal::<8>(me8, you8));
            let (me6, you6) = (me8 & board_mask(6), you8 & board_mask(6));
            assert_eq!(legal::<6>(me6, you6), flood_legal::<6>(me6, you6));
            let (me4, you4) = (me8 & board_mask(4), you8 & board_mask(4));
            assert_eq!(legal::<4>(me4, you4), flood_legal::<4>(me4, you4));
            for square in 0..64u32 {
                if (me8 | you8) >> square & 1 == 0 {
                    assert_eq!(
                        flips::<8>(me8, you8, square),
                        flood_flips::<8>(me8, you8, square)
                    );
                }
            }
            for square in 0..36u32 {
                if (me6 | you6) >> square & 1 == 0 {
                    assert_eq!(
                        flips::<6>(me6, you6, square),
                        flood_flips::<6>(me6, you6, square)
                    );
                }
            }
        }
    }

    #[test]
    fn longest_run_is_flanked_on_every_size() {
        for n in [4usize, 6, 8] {
            // Row 0: me at col 0, opponents at cols 1..n-1, empty at n-1.
            let me = 1u64;
            let you = ((1u64 << (n - 1)) - 1) & !1;
            let moves = legal_dyn(n as u8, me, you);
            assert_eq!(moves, 1 << (n - 1), "size {n}");
            assert_eq!(flips_dyn(n as u8, me, you, n as u32 - 1), you, "size {n}");
        }
    }
}
