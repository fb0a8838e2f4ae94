//! The few random draws generation makes, written out so that a quiz depends
//! only on the ChaCha8 stream (not on how a `rand` version maps words to ranges).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A uniform integer in `0..n` (`n > 0`) from exactly one 64-bit word
/// (multiply-shift; the bias, at most `n / 2^64`, is far below anything measurable).
pub fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    debug_assert!(n > 0);
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// `k` distinct colours from `1..=10` in random order (a partial Fisher-Yates shuffle).
pub fn palette(rng: &mut ChaCha8Rng, k: usize) -> Vec<u8> {
    let mut colours: Vec<u8> = (1..crate::N_COLOURS as u8).collect();
    let k = k.min(colours.len());
    for i in 0..k {
        let j = i + below(rng, colours.len() - i);
        colours.swap(i, j);
    }
    colours.truncate(k);
    colours
}
